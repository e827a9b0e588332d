/*
 * Admission ("admit" RPC) and the launch pipeline: the image's files here
 * (pulled if need be), a copy-on-write root disk over the image's disk, and
 * the domain. pending becomes running only when the guest has its address
 * (instances.c, peer_instances_addressed).
 */
#include "instances_int.h"

#include "hostnet.h"
#include "images.h"
#include "log.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "i-" and hex: the id names a directory and a domain. */
static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n < 3 || n > MC_INSTANCE_ID_LEN || strncmp(id, "i-", 2) != 0)
		return false;
	for (size_t i = 2; i < n; i++)
		if (!isxdigit((unsigned char)id[i]))
			return false;
	return true;
}

static bool account_ok(const char *a)
{
	if (strlen(a) != 12)
		return false;
	for (size_t i = 0; i < 12; i++)
		if (!isdigit((unsigned char)a[i]))
			return false;
	return true;
}

static void reply_inst(struct peer_rpc_req *req, const struct inst *in,
                       const struct mc_instance *rec)
{
	struct mc_buf b;
	mc_buf_init(&b);
	inst_pack_reply(&b, in, rec, NULL, 0, false);
	peer_rpc_reply(req, 0, NULL, &b);
	mc_buf_free(&b);
}

/* The "inst" of a request: a record body (bin). */
static int get_inst(const struct mc_val *args, struct mc_instance *out)
{
	const uint8_t *body;
	size_t len;
	if (!mc_get_bytes(args, "inst", &body, &len))
		return -EINVAL;
	return mc_instance_unpack(body, len, out);
}

static void mac_parse(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	memset(mac, 0, 6);
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
	           &v[5]) == 6)
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)v[i];
}

void inst_rpc_admit(struct peer *p, struct peer_rpc_req *req, const char *from,
                    const struct mc_val *args)
{
	struct peer_instances *pi = p->instances;
	struct mc_instance want;
	char why[300];

	if (get_inst(args, &want) != 0 || !id_ok(want.id) ||
	    !account_ok(want.account) || want.vcpu < 1 || want.vcpu > 256 ||
	    want.mem_mib < 16 || want.mem_mib > (1u << 24) ||
	    !want.image_id[0]) {
		peer_rpc_reply(req, -EINVAL, "malformed instance", NULL);
		return;
	}
	if (!pi) {
		peer_rpc_reply(req, -EHOSTDOWN, "this host runs no instances",
		               NULL);
		goto out;
	}
	struct inst *have = inst_find(pi, want.id);
	if (have) {
		/* A retried admit: the same answer as the first time. */
		reply_inst(req, have, &have->rec);
		goto out;
	}
	struct peer_record old;
	char rid[48];
	mc_instance_record_id(&want, rid, sizeof(rid));
	if (peer_store_get(p->store, MC_INSTANCE_KIND, rid, &old) == 0) {
		struct mc_instance was;
		bool taken = old.deleted ||
		             mc_instance_unpack(old.body, old.body_len, &was);
		if (!taken) {
			taken = true;
			if (strcmp(was.host, p->id) == 0)
				reply_inst(req, NULL, &was);
			else
				peer_rpc_reply(req, -EEXIST,
				               "the instance id is taken",
				               NULL);
			mc_instance_clear(&was);
		} else {
			peer_rpc_reply(req, -EEXIST, "the instance id is taken",
			               NULL);
		}
		peer_record_clear(&old);
		goto out;
	}
	if (!inst_hypervisor_ready(pi, why, sizeof(why))) {
		peer_rpc_reply(req, -EHOSTDOWN, why, NULL);
		goto out;
	}
	if (want.zone[0] && strcmp(want.zone, p->cfg.zone) != 0) {
		snprintf(why, sizeof(why), "this host is in zone %s, not %s",
		         p->cfg.zone, want.zone);
		peer_rpc_reply(req, -EINVAL, why, NULL);
		goto out;
	}
	if (!peer_image_known(p, want.image_id)) {
		snprintf(why, sizeof(why), "image %s has no content to boot",
		         want.image_id);
		peer_rpc_reply(req, -ENOENT, why, NULL);
		goto out;
	}
	uint32_t vcpu;
	uint64_t mem, disk;
	inst_capacity_free(pi, &vcpu, &mem, &disk);
	if (want.vcpu > vcpu || want.mem_mib > mem || want.disk_mib > disk) {
		snprintf(why, sizeof(why),
		         "not enough room: asked %u vCPU %llu MiB memory %llu "
		         "MiB disk, free %u vCPU %llu MiB memory %llu MiB disk",
		         want.vcpu, (unsigned long long)want.mem_mib,
		         (unsigned long long)want.disk_mib, vcpu,
		         (unsigned long long)mem, (unsigned long long)disk);
		peer_rpc_reply(req, -ENOSPC, why, NULL);
		goto out;
	}
	char ip[16], mac[18];
	int r = peer_hostnet_lease(p, want.id, ip, mac);
	if (r) {
		snprintf(why, sizeof(why), "no address for the instance: %s",
		         r == -ENOSPC   ? "this host's slice is full"
		         : r == -EAGAIN ? "this host's address slice is not "
		                          "confirmed yet"
		                        : strerror(-r));
		peer_rpc_reply(req, r == -ENOSPC ? -ENOSPC : r, why, NULL);
		goto out;
	}

	snprintf(want.host, sizeof(want.host), "%s", p->id);
	if (!want.zone[0])
		snprintf(want.zone, sizeof(want.zone), "%s", p->cfg.zone);
	snprintf(want.private_ip, sizeof(want.private_ip), "%s", ip);
	snprintf(want.mac, sizeof(want.mac), "%s", mac);
	snprintf(want.architecture, sizeof(want.architecture), "x86_64");
	snprintf(want.root_device, sizeof(want.root_device), "/dev/vda");
	want.state = MC_INST_PENDING;
	want.state_reason_code[0] = want.state_reason[0] = '\0';
	want.launch_ms = mc_wall_ms();
	want.boots = 1;

	struct inst *in = inst_add(pi, &want);
	if ((r = inst_write(in)) != 0) {
		peer_hostnet_release(p, want.id);
		inst_remove(in);
		peer_rpc_reply(req, r, "cannot write the instance record",
		               NULL);
		goto out;
	}
	mc_info(INST_SUB,
	        "%s: admitted for account %s from %s: %s, %u vCPU, %llu MiB, "
	        "%s, %s",
	        want.id, want.account, from, want.image_id, want.vcpu,
	        (unsigned long long)want.mem_mib, ip, mac);
	inst_capacity_update(pi);
	reply_inst(req, in, &in->rec);
	inst_launch(in);
out:
	mc_instance_clear(&want);
}

/* ---- the launch pipeline ---- */

struct launch {
	struct inst *in;
	uint32_t seq;
	struct peer_image_files files;
	char *dir, *disk, *console;
	struct virt_req req;
	bool tried_kvm; /* a kvm start failed: retried under TCG */
};

static void launch_free(struct launch *l)
{
	struct inst *in = l->in;
	virt_req_cleanup(&l->req);
	free(l->dir);
	free(l->disk);
	free(l->console);
	free(l);
	inst_unref(in);
}

/* True when the launch should go on: the peer runs, the instance is
 * still pending, and no newer launch replaced this one. */
static bool launch_current(struct launch *l)
{
	struct inst *in = l->in;
	return !in->pi->stopping && !in->gone && in->seq == l->seq &&
	       in->rec.state == MC_INST_PENDING;
}

/* The launch stopped short: a stop or terminate came meanwhile. */
static void launch_abandoned(struct launch *l)
{
	struct inst *in = l->in;
	if (!in->pi->stopping && !in->gone && in->seq == l->seq) {
		in->dom = INST_DOM_NONE;
		inst_settle(in);
	}
	launch_free(l);
}

static void launch_failed(struct launch *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void launch_failed(struct launch *l, const char *fmt, ...)
{
	struct inst *in = l->in;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	in->dom = INST_DOM_NONE;
	mc_warn(INST_SUB, "%s: launch failed: %s", in->rec.id, msg);
	/* A first launch leaves nothing worth keeping; a stopped instance
	 * that fails to start again keeps its disk. */
	if (in->rec.boots <= 1)
		inst_terminated(in, "Server.InternalError", "%s", msg);
	else
		inst_set_state(in, MC_INST_STOPPED, "Server.InternalError",
		               "%s", msg);
	launch_free(l);
}

/*
 * With --virt-type auto, a daemon may list kvm because /dev/kvm exists
 * although it cannot run guests (a nested or restricted host): a kvm start
 * that fails naming KVM is retried under TCG.
 */
static bool kvm_unusable(struct peer_instances *pi, const struct virt_req *req)
{
	return strcmp(pi->p->cfg.virt_type, "auto") == 0 &&
	       strcmp(virt_type_name(pi->virt), "kvm") == 0 &&
	       (strcasestr(req->error, "kvm") != NULL);
}

static void start_domain(struct launch *l);

static void started(struct virt_req *req)
{
	struct launch *l = req->data;
	struct inst *in = l->in;
	if (in->pi->stopping || in->gone || in->seq != l->seq) {
		launch_free(l);
		return;
	}
	if (req->status && !l->tried_kvm && kvm_unusable(in->pi, req)) {
		mc_warn(
		    INST_SUB,
		    "%s: kvm did not start it (%s); using QEMU TCG from now "
		    "on",
		    in->rec.id, req->error);
		l->tried_kvm = true;
		virt_use_software(in->pi->virt);
		virt_req_cleanup(req);
		start_domain(l);
		return;
	}
	if (req->status) {
		launch_failed(l, "the hypervisor refused the domain: %s",
		              req->error[0] ? req->error
		                            : strerror(-req->status));
		return;
	}
	in->dom = INST_DOM_UP;
	if (in->rec.state == MC_INST_PENDING)
		in->address_due =
		    uv_now(in->pi->p->loop) + in->pi->address_due_ms;
	if (strcmp(in->pi->p->cfg.virt_type, "auto") == 0 &&
	    strcmp(virt_type_name(in->pi->virt), "kvm") == 0 &&
	    !in->pi->kvm_proven)
		in->kvm_probe_at = uv_now(in->pi->p->loop) + INST_KVM_PROBE_MS;
	mc_info(INST_SUB, "%s: domain started (boot %u)", in->rec.id,
	        in->rec.boots);
	int early = in->early_stop;
	in->early_stop = 0;
	if (early) {
		/* It stopped before we heard that it started. */
		enum virt_stop_reason why = (enum virt_stop_reason)(early - 1);
		in->dom = INST_DOM_NONE;
		bool wanted = in->rec.state == MC_INST_PENDING ||
		              in->rec.state == MC_INST_RUNNING;
		if (wanted && why != VIRT_STOP_SHUTDOWN) {
			launch_failed(l, "the domain stopped at once (%s)",
			              virt_stop_reason_name(why));
			return;
		}
		if (wanted)
			inst_set_state(in, MC_INST_STOPPED,
			               "Client.InstanceInitiatedShutdown",
			               "Instance initiated shutdown");
		else
			inst_settle(in);
	} else if (in->rec.state == MC_INST_STOPPING) {
		inst_destroy(in, "stopped while it was starting");
	} else if (in->rec.state == MC_INST_SHUTTING_DOWN) {
		inst_destroy(in, "terminated while it was starting");
	}
	launch_free(l);
}

/* The image's own command line, else one for a root disk (if any) and the
 * serial console GetConsoleOutput reads. */
static const char *boot_cmdline(const struct peer_image_files *f)
{
	if (!f->kernel[0])
		return NULL;
	if (f->cmdline[0])
		return f->cmdline;
	return f->disk[0] ? "root=/dev/vda console=ttyS0" : "console=ttyS0";
}

static void start_domain(struct launch *l)
{
	struct inst *in = l->in;
	struct peer_instances *pi = in->pi;
	const struct peer_image_files *f = &l->files;
	struct virt_spec spec = {
	    .name = in->rec.id,
	    .vcpus = in->rec.vcpu,
	    .memory_mib = (unsigned)in->rec.mem_mib,
	    .kernel = f->kernel[0] ? f->kernel : NULL,
	    .initrd = f->kernel[0] && f->ramdisk[0] ? f->ramdisk : NULL,
	    .cmdline = boot_cmdline(f),
	    .disk = l->disk,
	    .disk_format = "qcow2",
	    .console_log = l->console,
	    .bridge = peer_hostnet_bridge(pi->p)[0] ? peer_hostnet_bridge(pi->p)
	                                            : NULL,
	};
	/* A port name the anti-spoofing guard knows it by. */
	char tap[16];
	if (spec.bridge && peer_hostnet_tap_name(in->rec.private_ip, tap) == 0)
		spec.tap = tap;
	inst_uuid(in->rec.id, spec.uuid);
	mac_parse(in->rec.mac, spec.mac);
	l->req.data = l;
	int r = virt_start(pi->virt, &l->req, &spec, started);
	if (r)
		launch_failed(l, "cannot start the domain: %s", strerror(-r));
}

static void overlaid(struct virt_req *req)
{
	struct launch *l = req->data;
	if (!launch_current(l)) {
		launch_abandoned(l);
		return;
	}
	if (req->status) {
		launch_failed(l, "cannot make the root disk: %s",
		              req->error[0] ? req->error
		                            : strerror(-req->status));
		return;
	}
	virt_req_cleanup(req);
	start_domain(l);
}

static void image_ready(void *ctx, int status, const char *message,
                        const struct peer_image_files *files)
{
	struct launch *l = ctx;
	struct inst *in = l->in;
	if (!launch_current(l)) {
		launch_abandoned(l);
		return;
	}
	if (status) {
		launch_failed(l, "image %s: %s", in->rec.image_id,
		              message && message[0] ? message
		                                    : strerror(-status));
		return;
	}
	l->files = *files;
	if (!files->kernel[0] && !files->disk[0]) {
		launch_failed(l, "image %s has neither a kernel nor a disk",
		              in->rec.image_id);
		return;
	}
	struct peer_instances *pi = in->pi;
	char *parent = inst_path(pi, "", NULL);
	parent[strlen(parent) - 1] = '\0'; /* DATA_DIR/instances */
	mkdir(parent, 0711);               /* QEMU's user walks to the disk */
	free(parent);
	if (mkdir(l->dir, 0711) != 0 && errno != EEXIST) {
		launch_failed(l, "cannot make %s: %s", l->dir, strerror(errno));
		return;
	}
	if (!files->disk[0]) {
		free(l->disk);
		l->disk = NULL;
		start_domain(l);
		return;
	}
	/* A restart boots the disk it had: data survive a stop. */
	if (access(l->disk, F_OK) == 0) {
		start_domain(l);
		return;
	}
	uint64_t size = in->rec.disk_mib * 1024 * 1024;
	if (size < files->disk_bytes)
		size = 0; /* never smaller than the image */
	l->req.data = l;
	int r =
	    virt_overlay(pi->virt, &l->req, files->disk,
	                 files->disk_format[0] ? files->disk_format : "qcow2",
	                 l->disk, size, overlaid);
	if (r)
		launch_failed(l, "cannot make the root disk: %s", strerror(-r));
}

void inst_launch(struct inst *in)
{
	struct peer_instances *pi = in->pi;
	struct launch *l = xcalloc(1, sizeof(*l));
	inst_ref(in);
	l->in = in;
	l->seq = ++in->seq;
	l->dir = inst_path(pi, in->rec.id, NULL);
	l->disk = inst_path(pi, in->rec.id, "root.qcow2");
	l->console = inst_path(pi, in->rec.id, "console.log");
	in->dom = INST_DOM_STARTING;
	in->early_stop = 0;
	mc_info(INST_SUB, "%s: launching (boot %u)", in->rec.id, in->rec.boots);
	int r = peer_image_ensure(pi->p, in->rec.image_id, image_ready, l);
	if (r)
		launch_failed(l, "image %s: %s", in->rec.image_id,
		              strerror(-r));
}
