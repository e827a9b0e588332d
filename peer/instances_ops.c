/*
 * The "op" RPC: what an edge asks of an instance this host runs. Each op
 * writes the state it leads to at once (stopping, pending, shutting-down)
 * and answers with that record; libvirt's events finish the transition
 * (instances.c). A state that does not allow the op answers -EBUSY with a
 * message naming the state, as EC2's IncorrectInstanceState does.
 */
#include "instances_int.h"

#include "log.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const op_names[] = {
    [API_OP_STOP] = "stop",           [API_OP_FORCE_STOP] = "force-stop",
    [API_OP_START] = "start",         [API_OP_REBOOT] = "reboot",
    [API_OP_TERMINATE] = "terminate", [API_OP_CONSOLE] = "console",
    [API_OP_MODIFY] = "modify",
};
#define N_OPS (sizeof(op_names) / sizeof(op_names[0]))

/* The op of a request: its enum value, or its name. */
static int get_op(const struct mc_val *args, enum api_instance_op *out)
{
	uint64_t v;
	char name[32];
	if (mc_get_uint(args, "op", &v) && v < N_OPS) {
		*out = (enum api_instance_op)v;
		return 0;
	}
	if (mc_get_str(args, "op", name, sizeof(name)))
		for (size_t i = 0; i < N_OPS; i++)
			if (strcmp(name, op_names[i]) == 0) {
				*out = (enum api_instance_op)i;
				return 0;
			}
	return -EINVAL;
}

static void reply(struct peer_rpc_req *req, const struct inst *in,
                  const struct mc_instance *rec, const void *data, size_t len,
                  bool with_data)
{
	struct mc_buf b;
	mc_buf_init(&b);
	inst_pack_reply(&b, in, rec, data, len, with_data);
	peer_rpc_reply(req, 0, NULL, &b);
	mc_buf_free(&b);
}

static void reply_state(struct peer_rpc_req *req, const struct inst *in,
                        const char *op)
{
	char msg[160];
	snprintf(msg, sizeof(msg),
	         "IncorrectInstanceState: the instance is %s (cannot %s)",
	         mc_instance_state_name(in->rec.state), op);
	peer_rpc_reply(req, -EBUSY, msg, NULL);
}

/* ---- stop ---- */

static void shutdown_sent(struct inst *in, struct virt_req *req)
{
	if (req->status == -ENOENT) {
		in->dom = INST_DOM_NONE;
		inst_settle(in);
	} else if (req->status && in->rec.state == MC_INST_STOPPING) {
		mc_warn(INST_SUB, "%s: shutdown request failed: %s", in->rec.id,
		        req->error);
		inst_destroy(in, "the shutdown request failed");
	}
}

/* EC2's words for a stop a client asked for, with its time in UTC. */
static void user_initiated(char *out, size_t size)
{
	time_t now = (time_t)(mc_wall_ms() / 1000);
	struct tm tm;
	char when[32] = "";
	if (gmtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S GMT", &tm);
	snprintf(out, size, "User initiated (%s)", when);
}

static void op_stop(struct inst *in, bool force, struct peer_rpc_req *req)
{
	struct peer_instances *pi = in->pi;
	switch (in->rec.state) {
	case MC_INST_PENDING:
	case MC_INST_RUNNING:
		user_initiated(in->rec.transition_reason,
		               sizeof(in->rec.transition_reason));
		inst_set_state(in, MC_INST_STOPPING, NULL, "%s", "");
		break;
	case MC_INST_STOPPING:
		if (!force) {
			reply(req, in, &in->rec, NULL, 0, false);
			return;
		}
		break;
	case MC_INST_STOPPED: {
		reply(req, in, &in->rec, NULL, 0, false);
		return;
	}
	default: {
		reply_state(req, in, "stop it");
		return;
	}
	}
	/* Starting: the launch sees "stopping" when its step returns. */
	if (in->dom == INST_DOM_NONE) {
		inst_settle(in);
	} else if (in->dom == INST_DOM_UP && force) {
		inst_destroy(in, "forced stop");
	} else if (in->dom == INST_DOM_UP) {
		int r = inst_virt(in, INST_VIRT_SHUTDOWN, shutdown_sent);
		if (r)
			inst_destroy(in, "cannot ask the guest to shut down");
		else
			in->stop_deadline =
			    uv_now(pi->p->loop) + INST_STOP_GRACE_MS;
	}
	reply(req, in, &in->rec, NULL, 0, false);
}

/* ---- start ---- */

static void op_start(struct inst *in, struct peer_rpc_req *req)
{
	struct peer_instances *pi = in->pi;
	char why[300];
	switch (in->rec.state) {
	case MC_INST_PENDING:
	case MC_INST_RUNNING: {
		reply(req, in, &in->rec, NULL, 0, false);
		return;
	}
	case MC_INST_STOPPED:
		break;
	default: {
		reply_state(req, in, "start it");
		return;
	}
	}
	if (!inst_hypervisor_ready(pi, why, sizeof(why))) {
		peer_rpc_reply(req, -EHOSTDOWN, why, NULL);
		return;
	}
	uint32_t vcpu;
	uint64_t mem, disk;
	inst_capacity_free(pi, &vcpu, &mem, &disk);
	if (in->rec.vcpu > vcpu || in->rec.mem_mib > mem ||
	    in->rec.disk_mib > disk) {
		snprintf(
		    why, sizeof(why),
		    "InsufficientInstanceCapacity: this host has %u vCPU "
		    "%llu MiB memory free, the instance needs %u vCPU %llu "
		    "MiB",
		    vcpu, (unsigned long long)mem, in->rec.vcpu,
		    (unsigned long long)in->rec.mem_mib);
		peer_rpc_reply(req, -ENOSPC, why, NULL);
		return;
	}
	in->rec.boots++;
	in->rec.state_reason_code[0] = in->rec.state_reason[0] = '\0';
	in->rec.transition_reason[0] = '\0';
	inst_set_state(in, MC_INST_PENDING, NULL, "%s", "");
	reply(req, in, &in->rec, NULL, 0, false);
	inst_launch(in);
}

/* ---- reboot ---- */

static void reboot_sent(struct inst *in, struct virt_req *req)
{
	if (req->status && in->dom == INST_DOM_UP) {
		mc_warn(INST_SUB, "%s: reboot request failed (%s); resetting",
		        in->rec.id, req->error);
		in->reboot_deadline = uv_now(in->pi->p->loop);
	}
}

static void op_reboot(struct inst *in, struct peer_rpc_req *req)
{
	if ((in->rec.state != MC_INST_RUNNING &&
	     in->rec.state != MC_INST_PENDING) ||
	    in->dom != INST_DOM_UP) {
		reply_state(req, in, "reboot it");
		return;
	}
	int r = inst_virt(in, INST_VIRT_REBOOT, reboot_sent);
	if (r) {
		peer_rpc_reply(req, r, "cannot reach the hypervisor", NULL);
		return;
	}
	mc_info(INST_SUB, "%s: rebooting", in->rec.id);
	in->reboot_deadline = uv_now(in->pi->p->loop) + INST_REBOOT_GRACE_MS;
	reply(req, in, &in->rec, NULL, 0, false);
}

/* ---- terminate ---- */

static void op_terminate(struct inst *in, struct peer_rpc_req *req)
{
	switch (in->rec.state) {
	case MC_INST_SHUTTING_DOWN:
	case MC_INST_TERMINATED: {
		reply(req, in, &in->rec, NULL, 0, false);
		return;
	}
	case MC_INST_STOPPED:
		if (in->dom == INST_DOM_NONE) {
			user_initiated(in->rec.transition_reason,
			               sizeof(in->rec.transition_reason));
			inst_terminated(in, "Client.UserInitiatedShutdown",
			                "User initiated shutdown");
			reply(req, in, &in->rec, NULL, 0, false);
			return;
		}
		break;
	default:
		break;
	}
	user_initiated(in->rec.transition_reason,
	               sizeof(in->rec.transition_reason));
	inst_set_state(in, MC_INST_SHUTTING_DOWN, NULL, "%s", "");
	if (in->dom == INST_DOM_UP)
		inst_destroy(in, "terminate");
	else if (in->dom == INST_DOM_NONE)
		inst_settle(in);
	reply(req, in, &in->rec, NULL, 0, false);
}

/* ---- console ---- */

/* The last INST_CONSOLE_MAX bytes of the console log (none: empty). */
static void op_console(struct inst *in, struct peer_rpc_req *req)
{
	char *path = inst_path(in->pi, in->rec.id, "console.log");
	uint8_t *data = NULL;
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd >= 0) {
		struct stat st;
		off_t from = 0;
		if (fstat(fd, &st) == 0 && st.st_size > INST_CONSOLE_MAX)
			from = st.st_size - INST_CONSOLE_MAX;
		data = xmalloc(INST_CONSOLE_MAX);
		n = pread(fd, data, INST_CONSOLE_MAX, from);
		if (n < 0)
			n = 0;
		close(fd);
	}
	reply(req, in, &in->rec, data, (size_t)n, true);
	free(data);
}

/* ---- modify ---- */

static void op_modify(struct inst *in, const struct mc_val *args,
                      struct peer_rpc_req *req)
{
	char type[32] = "";
	uint64_t vcpu = 0, mem = 0;
	const uint8_t *ud = NULL;
	size_t ud_len = 0;
	bool set_type = mc_get_str(args, "instance_type", type, sizeof(type));
	bool set_ud = mc_map_get(args, "user_data") != NULL;
	if (set_ud && !mc_get_bytes(args, "user_data", &ud, &ud_len)) {
		peer_rpc_reply(req, -EINVAL, "malformed user data", NULL);
		return;
	}
	if (set_ud && ud_len > MC_INSTANCE_USER_DATA) {
		peer_rpc_reply(req, -EINVAL, "user data larger than 16 KiB",
		               NULL);
		return;
	}
	if (set_type && (!mc_get_uint(args, "vcpu", &vcpu) ||
	                 !mc_get_uint(args, "mem_mib", &mem) || vcpu < 1 ||
	                 vcpu > 256 || mem < 16 || mem > (1u << 24))) {
		peer_rpc_reply(req, -EINVAL,
		               "an instance type needs vcpu and mem_mib", NULL);
		return;
	}
	if (in->rec.state != MC_INST_STOPPED) {
		char msg[160];
		snprintf(msg, sizeof(msg),
		         "IncorrectInstanceState: the instance is %s",
		         mc_instance_state_name(in->rec.state));
		peer_rpc_reply(req, -EBUSY, msg, NULL);
		return;
	}
	if (set_type) {
		snprintf(in->rec.instance_type, sizeof(in->rec.instance_type),
		         "%s", type);
		in->rec.vcpu = (uint32_t)vcpu;
		in->rec.mem_mib = mem;
	}
	if (set_ud) {
		free(in->rec.user_data);
		in->rec.user_data = NULL;
		in->rec.user_data_len = 0;
		if (ud_len) {
			in->rec.user_data = xmalloc(ud_len + 1);
			memcpy(in->rec.user_data, ud, ud_len);
			in->rec.user_data_len = ud_len;
		}
	}
	int r = inst_write(in);
	if (r) {
		peer_rpc_reply(req, r, "cannot write the instance record",
		               NULL);
		return;
	}
	mc_info(INST_SUB, "%s: modified%s%s%s", in->rec.id,
	        set_type ? " type " : "", set_type ? type : "",
	        set_ud ? " user data" : "");
	reply(req, in, &in->rec, NULL, 0, false);
}

/* ---- dispatch ---- */

/* An instance not in the table: terminated here, elsewhere, or unknown. */
static void op_absent(struct peer *p, enum api_instance_op op,
                      const char *account, const char *id,
                      struct peer_rpc_req *req)
{
	char rid[48];
	struct peer_record r;
	struct mc_instance rec;
	snprintf(rid, sizeof(rid), "%s:%s", account, id);
	if (peer_store_get(p->store, MC_INSTANCE_KIND, rid, &r) != 0) {
		peer_rpc_reply(req, -ENOENT, "no such instance", NULL);
		return;
	}
	int e =
	    r.deleted ? -ENOENT : mc_instance_unpack(r.body, r.body_len, &rec);
	peer_record_clear(&r);
	if (e) {
		peer_rpc_reply(req, -ENOENT, "no such instance", NULL);
		return;
	}
	if (strcmp(rec.host, p->id) != 0) {
		peer_rpc_reply(req, -ENOENT, "the instance is not on this host",
		               NULL);
	} else if (op == API_OP_TERMINATE || op == API_OP_CONSOLE) {
		reply(req, NULL, &rec, NULL, 0, op == API_OP_CONSOLE);
	} else {
		char msg[160];
		snprintf(msg, sizeof(msg),
		         "IncorrectInstanceState: the instance is %s",
		         mc_instance_state_name(rec.state));
		peer_rpc_reply(req, -EBUSY, msg, NULL);
	}
	mc_instance_clear(&rec);
}

void inst_rpc_op(struct peer *p, struct peer_rpc_req *req, const char *from,
                 const struct mc_val *args)
{
	struct peer_instances *pi = p->instances;
	enum api_instance_op op;
	char account[13], id[MC_INSTANCE_ID_LEN + 1];
	if (get_op(args, &op) ||
	    !mc_get_str(args, "account", account, sizeof(account)) ||
	    !mc_get_str(args, "id", id, sizeof(id))) {
		peer_rpc_reply(req, -EINVAL, "malformed instance op", NULL);
		return;
	}
	struct inst *in = pi ? inst_find(pi, id) : NULL;
	if (!in || strcmp(in->rec.account, account) != 0) {
		op_absent(p, op, account, id, req);
		return;
	}
	mc_debug(INST_SUB, "%s: %s asked by %s", id, op_names[op], from);
	/* Held: a terminate may take it out of the table before we answer. */
	inst_ref(in);
	switch (op) {
	case API_OP_STOP:
		op_stop(in, false, req);
		break;
	case API_OP_FORCE_STOP:
		op_stop(in, true, req);
		break;
	case API_OP_START:
		op_start(in, req);
		break;
	case API_OP_REBOOT:
		op_reboot(in, req);
		break;
	case API_OP_TERMINATE:
		op_terminate(in, req);
		break;
	case API_OP_CONSOLE:
		op_console(in, req);
		break;
	case API_OP_MODIFY:
		op_modify(in, args, req);
		break;
	}
	inst_unref(in);
}
