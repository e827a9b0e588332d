/*
 * The instances of this host: the table of those not terminated, their
 * records and states, the capacity they hold, libvirt's events, and the one
 * timer that keeps every deadline (instances_int.h lists the other files).
 *
 * Everything runs on the loop thread, so a check of free capacity and the
 * write that takes it cannot interleave with another admission.
 */
#include "instances_int.h"

#include "console_log.h"
#include "crypto.h"
#include "hostnet.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the table ---- */

struct inst *inst_find(struct peer_instances *pi, const char *id)
{
	for (struct inst *in = pi->list; in; in = in->next)
		if (strcmp(in->rec.id, id) == 0)
			return in;
	return NULL;
}

struct inst *inst_add(struct peer_instances *pi, const struct mc_instance *rec)
{
	struct inst *in = xcalloc(1, sizeof(*in));
	in->pi = pi;
	in->refs = 1;
	mc_instance_copy(&in->rec, rec);
	mc_instance_record_id(rec, in->rid, sizeof(in->rid));
	in->next = pi->list;
	pi->list = in;
	pi->live++;
	return in;
}

void inst_ref(struct inst *in)
{
	in->refs++;
}

static void maybe_free_all(struct peer_instances *pi)
{
	if (pi->stopping && pi->handles == 0 && pi->live == 0)
		free(pi);
}

void inst_unref(struct inst *in)
{
	if (--in->refs > 0)
		return;
	struct peer_instances *pi = in->pi;
	mc_instance_clear(&in->rec);
	free(in);
	pi->live--;
	maybe_free_all(pi);
}

void inst_remove(struct inst *in)
{
	if (in->gone)
		return;
	for (struct inst **pp = &in->pi->list; *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	in->gone = true;
	in->next = NULL;
	inst_unref(in);
}

/* ---- records and states ---- */

int inst_write(struct inst *in)
{
	struct peer *p = in->pi->p;
	struct mc_buf b;
	in->rec.updated_ms = mc_wall_ms();
	mc_buf_init(&b);
	mc_instance_pack(&in->rec, &b);
	int r = peer_records_put(&p->writer, MC_INSTANCE_KIND, in->rid, b.data,
	                         b.len, &in->hlc);
	mc_buf_free(&b);
	if (r)
		mc_error(INST_SUB, "%s: cannot write its record: %s",
		         in->rec.id, strerror(-r));
	else
		memcpy(in->writer, p->id, sizeof(in->writer));
	return r;
}

static void set_state_v(struct inst *in, enum mc_instance_state state,
                        const char *code, const char *fmt, va_list ap)
{
	enum mc_instance_state was = in->rec.state;
	in->rec.state = state;
	if (code) {
		snprintf(in->rec.state_reason_code,
		         sizeof(in->rec.state_reason_code), "%s", code);
		vsnprintf(in->rec.state_reason, sizeof(in->rec.state_reason),
		          fmt, ap);
	}
	if (state == MC_INST_STOPPED || state == MC_INST_TERMINATED ||
	    state == MC_INST_STOPPING || state == MC_INST_SHUTTING_DOWN)
		in->stop_deadline = in->reboot_deadline = 0;
	inst_write(in);
	mc_info(INST_SUB, "%s: %s -> %s%s%s%s%s%s", in->rec.id,
	        mc_instance_state_name(was), mc_instance_state_name(state),
	        code ? " (" : "", code ? code : "", code ? ": " : "",
	        code ? in->rec.state_reason : "", code ? ")" : "");
	if (mc_instance_holds_capacity(was) !=
	    mc_instance_holds_capacity(state))
		inst_capacity_update(in->pi);
}

void inst_set_state(struct inst *in, enum mc_instance_state state,
                    const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_state_v(in, state, code, fmt, ap);
	va_end(ap);
}

void inst_terminated(struct inst *in, const char *code, const char *fmt, ...)
{
	struct peer_instances *pi = in->pi;
	va_list ap;
	va_start(ap, fmt);
	set_state_v(in, MC_INST_TERMINATED, code, fmt, ap);
	va_end(ap);
	if (pi->hostnet_started)
		peer_hostnet_release(pi->p, in->rec.id);
	inst_remove_dir(pi, in->rec.id);
	inst_remove(in);
	inst_capacity_update(pi);
}

void inst_settle(struct inst *in)
{
	if (in->dom != INST_DOM_NONE)
		return;
	if (in->rec.state == MC_INST_STOPPING)
		inst_set_state(in, MC_INST_STOPPED,
		               "Client.UserInitiatedShutdown",
		               "User initiated shutdown");
	else if (in->rec.state == MC_INST_SHUTTING_DOWN)
		inst_terminated(in, "Client.UserInitiatedShutdown",
		                "User initiated shutdown");
}

/* ---- capacity ---- */

static void reserved(struct peer_instances *pi, uint32_t *vcpu, uint64_t *mem,
                     uint64_t *disk)
{
	*vcpu = 0;
	*mem = *disk = 0;
	for (struct inst *in = pi ? pi->list : NULL; in; in = in->next) {
		if (!mc_instance_holds_capacity(in->rec.state))
			continue;
		*vcpu += in->rec.vcpu;
		*mem += in->rec.mem_mib;
		*disk += in->rec.disk_mib;
	}
}

void peer_instances_reserved(struct peer *p, uint32_t *vcpu, uint64_t *mem_mib,
                             uint64_t *disk_mib)
{
	reserved(p->instances, vcpu, mem_mib, disk_mib);
}

static uint64_t minus(uint64_t total, uint64_t used)
{
	return used >= total ? 0 : total - used;
}

/* Totals from the settings (or measured) and free from the table. */
static void apply_capacity(struct peer *p, struct peer_capacity *c)
{
	uint32_t vcpu;
	uint64_t mem, disk;
	if (p->cfg.capacity_vcpu)
		c->vcpu_total = p->cfg.capacity_vcpu;
	if (p->cfg.capacity_memory_mib)
		c->memory_mib_total = p->cfg.capacity_memory_mib;
	reserved(p->instances, &vcpu, &mem, &disk);
	c->vcpu_free = (uint32_t)minus(c->vcpu_total, vcpu);
	c->memory_mib_free = minus(c->memory_mib_total, mem);
	c->disk_mib_free = minus(c->disk_mib_total, disk);
}

void peer_instances_capacity(struct peer *p)
{
	struct peer_capacity c = p->capacity;
	if (peer_capacity_measure(p->cfg.data_dir, &c) == 0)
		p->capacity = c;
	apply_capacity(p, &p->capacity);
}

void inst_capacity_free(struct peer_instances *pi, uint32_t *vcpu,
                        uint64_t *mem, uint64_t *disk)
{
	struct peer_capacity c = pi->p->capacity;
	apply_capacity(pi->p, &c);
	*vcpu = c.vcpu_free;
	*mem = c.memory_mib_free;
	*disk = c.disk_mib_free;
}

void inst_capacity_update(struct peer_instances *pi)
{
	struct peer *p = pi->p;
	struct peer_capacity before = p->capacity;
	apply_capacity(p, &p->capacity);
	if (memcmp(&before, &p->capacity, sizeof(before)) != 0 && p->net)
		peer_net_capacity_changed(p->net);
}

/* ---- paths ---- */

char *inst_path(struct peer_instances *pi, const char *id, const char *file)
{
	return xasprintf("%s/instances/%s%s%s", pi->p->cfg.data_dir, id,
	                 file ? "/" : "", file ? file : "");
}

static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		mc_warn(INST_SUB, "cannot remove %s: %s", path,
		        strerror(errno));
	return 0;
}

void inst_remove_dir(struct peer_instances *pi, const char *id)
{
	/* Instance ids are checked at admission ("i-" and hex), so this
	 * never names anything but the instance's own directory. */
	if (strncmp(id, "i-", 2) != 0 || strchr(id, '/') || strstr(id, ".."))
		return;
	char *dir = inst_path(pi, id, NULL);
	if (access(dir, F_OK) == 0)
		nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

void inst_pack_reply(struct mc_buf *b, const struct inst *in,
                     const struct mc_instance *rec, const void *data,
                     size_t len, bool with_data)
{
	struct peer_record stored;
	memset(&stored, 0, sizeof(stored));
	bool have = in &&
	            peer_store_get(in->pi->p->store, MC_INSTANCE_KIND, in->rid,
	                           &stored) == 0 &&
	            !stored.deleted;
	struct mc_buf body;
	mc_buf_init(&body);
	if (!have)
		mc_instance_pack(rec, &body);
	mc_pack_map(b, 1 + with_data + 2 * have);
	if (have) {
		mc_pack_kv_bin(b, "inst", stored.body, stored.body_len);
		mc_pack_kv_uint(b, "hlc", stored.hlc);
		mc_pack_kv_str(b, "writer", stored.writer);
	} else {
		mc_pack_kv_bin(b, "inst", body.data, body.len);
	}
	if (with_data)
		mc_pack_kv_bin(b, "data", data ? data : "", len);
	mc_buf_free(&body);
	peer_record_clear(&stored);
}

/* ---- libvirt requests ---- */

struct inst_call {
	struct virt_req req;
	struct inst *in;
	inst_virt_done done;
};

static void call_done(struct virt_req *req)
{
	struct inst_call *c = req->data;
	struct inst *in = c->in;
	if (!in->pi->stopping)
		c->done(in, req);
	virt_req_cleanup(req);
	free(c);
	inst_unref(in);
}

int inst_virt(struct inst *in, enum inst_virt_op op, inst_virt_done done)
{
	struct peer_instances *pi = in->pi;
	if (!pi->virt)
		return -EHOSTDOWN;
	struct inst_call *c = xcalloc(1, sizeof(*c));
	c->req.data = c;
	c->in = in;
	c->done = done;
	int r;
	switch (op) {
	case INST_VIRT_SHUTDOWN:
		r = virt_shutdown(pi->virt, &c->req, in->rec.id, call_done);
		break;
	case INST_VIRT_DESTROY:
		r = virt_destroy(pi->virt, &c->req, in->rec.id, call_done);
		break;
	case INST_VIRT_REBOOT:
		r = virt_reboot(pi->virt, &c->req, in->rec.id, call_done);
		break;
	default:
		r = virt_reset(pi->virt, &c->req, in->rec.id, call_done);
		break;
	}
	if (r) {
		free(c);
		return r;
	}
	inst_ref(in);
	return 0;
}

static void destroyed(struct inst *in, struct virt_req *req)
{
	if (req->status == -ENOENT) {
		/* Already gone: no STOPPED event will come. */
		in->dom = INST_DOM_NONE;
		inst_settle(in);
	} else if (req->status) {
		mc_warn(INST_SUB, "%s: destroy failed: %s", in->rec.id,
		        req->error[0] ? req->error : strerror(-req->status));
	}
}

void inst_destroy(struct inst *in, const char *why)
{
	mc_info(INST_SUB, "%s: destroying its domain (%s)", in->rec.id, why);
	int r = inst_virt(in, INST_VIRT_DESTROY, destroyed);
	if (r)
		mc_warn(INST_SUB, "%s: cannot destroy: %s", in->rec.id,
		        strerror(-r));
}

/* ---- libvirt's events ---- */

/* The domain stopped while the record says it should run. */
static void stopped_unasked(struct inst *in, enum virt_stop_reason why)
{
	bool first = in->rec.state == MC_INST_PENDING && in->rec.boots <= 1;
	switch (why) {
	case VIRT_STOP_SHUTDOWN:
		inst_set_state(in, MC_INST_STOPPED,
		               "Client.InstanceInitiatedShutdown",
		               "Instance initiated shutdown");
		break;
	case VIRT_STOP_CRASHED:
		inst_set_state(in, MC_INST_STOPPED, "Server.InternalError",
		               "The guest crashed");
		break;
	case VIRT_STOP_FAILED:
		if (first)
			inst_terminated(in, "Server.InternalError",
			                "The hypervisor failed to run the "
			                "instance (QEMU exited)");
		else
			inst_set_state(in, MC_INST_STOPPED,
			               "Server.InternalError",
			               "The hypervisor failed (QEMU exited)");
		break;
	default:
		inst_set_state(in, MC_INST_STOPPED, "Server.InternalError",
		               "The domain was stopped outside mallee (%s)",
		               virt_stop_reason_name(why));
	}
}

static void on_stopped(struct inst *in, enum virt_stop_reason why)
{
	if (in->dom == INST_DOM_STARTING) {
		/* The start's own answer is still to come. */
		in->early_stop = 1 + (int)why;
		return;
	}
	in->dom = INST_DOM_NONE;
	in->kvm_probe_at = 0;
	if (in->relaunch) {
		in->relaunch = false;
		if (in->rec.state == MC_INST_PENDING) {
			inst_launch(in);
			return;
		}
	}
	in->stop_deadline = in->reboot_deadline = 0;
	switch (in->rec.state) {
	case MC_INST_STOPPING:
	case MC_INST_SHUTTING_DOWN:
		inst_settle(in);
		break;
	case MC_INST_PENDING:
	case MC_INST_RUNNING:
		stopped_unasked(in, why);
		break;
	default:
		break;
	}
}

static void on_event(struct virt *virt, const struct virt_event *ev, void *arg)
{
	struct peer_instances *pi = arg;
	(void)virt;
	if (ev->kind == VIRT_EV_DISCONNECTED) {
		pi->connected = false;
		pi->next_connect = uv_now(pi->p->loop) + INST_RECONNECT_MS;
		mc_warn(INST_SUB, "lost the hypervisor; reconnecting");
		return;
	}
	struct inst *in = inst_find(pi, ev->name);
	if (!in) {
		mc_debug(INST_SUB, "event %s of %s, not an instance here",
		         virt_event_name(ev->kind), ev->name);
		return;
	}
	mc_debug(INST_SUB, "%s: event %s (%s)", in->rec.id,
	         virt_event_name(ev->kind), virt_stop_reason_name(ev->reason));
	switch (ev->kind) {
	case VIRT_EV_STARTED:
		if (in->dom == INST_DOM_NONE)
			in->dom = INST_DOM_UP;
		break;
	case VIRT_EV_STOPPED:
		on_stopped(in, ev->reason);
		break;
	case VIRT_EV_CRASHED:
		mc_warn(INST_SUB, "%s: the guest crashed", in->rec.id);
		break;
	case VIRT_EV_REBOOTED:
		if (in->reboot_deadline)
			mc_info(INST_SUB, "%s: rebooted", in->rec.id);
		in->reboot_deadline = 0;
		break;
	default:
		break;
	}
}

/* ---- connection and the timer ---- */

static void connected(struct virt_req *req)
{
	struct peer_instances *pi = req->data;
	pi->connecting = false;
	if (pi->stopping) {
		virt_req_cleanup(req);
		free(req);
		return;
	}
	if (req->status) {
		if (strcmp(pi->connect_error, req->error) != 0)
			mc_warn(INST_SUB,
			        "no hypervisor at %s: %s (retrying every %u s)",
			        pi->p->cfg.virt_uri, req->error,
			        INST_RECONNECT_MS / 1000);
		snprintf(pi->connect_error, sizeof(pi->connect_error), "%s",
		         req->error[0] ? req->error : strerror(-req->status));
		pi->next_connect = uv_now(pi->p->loop) + INST_RECONNECT_MS;
		virt_req_cleanup(req);
		free(req);
		return;
	}
	virt_req_cleanup(req);
	free(req);
	pi->connected = true;
	pi->connect_error[0] = '\0';
	mc_info(INST_SUB, "hypervisor ready at %s", pi->p->cfg.virt_uri);
	if (!pi->hostnet_started) {
		char err[256] = "";
		int r = peer_hostnet_start(pi->p, peer_instances_addressed, err,
		                           sizeof(err));
		if (r)
			mc_error(INST_SUB, "host networking: %s",
			         err[0] ? err : strerror(-r));
		else
			pi->hostnet_started = true;
	}
	inst_adopt(pi);
}

static void try_connect(struct peer_instances *pi)
{
	struct virt_req *req = xcalloc(1, sizeof(*req));
	req->data = pi;
	pi->connecting = true;
	int r = virt_connect(pi->virt, req, connected);
	if (r == -EISCONN) {
		free(req);
		pi->connecting = false;
		pi->connected = true;
	} else if (r) {
		free(req);
		pi->connecting = false;
		pi->next_connect = uv_now(pi->p->loop) + INST_RECONNECT_MS;
		mc_warn(INST_SUB, "cannot connect to %s: %s",
		        pi->p->cfg.virt_uri, strerror(-r));
	}
}

/* Every deadline: a stop that the guest ignored, a reboot that did not
 * happen, the hypervisor to reconnect, records to look at. */
static void timer_stop_grace(struct inst *in)
{
	in->stop_deadline = 0;
	if (in->dom == INST_DOM_UP && in->rec.state == MC_INST_STOPPING)
		inst_destroy(in, "the guest ignored the shutdown request");
}

static void reset_done(struct inst *in, struct virt_req *req)
{
	if (req->status)
		mc_warn(INST_SUB, "%s: reset failed: %s", in->rec.id,
		        req->error);
}

static void timer_reboot_grace(struct inst *in)
{
	in->reboot_deadline = 0;
	if (in->dom != INST_DOM_UP)
		return;
	mc_info(INST_SUB, "%s: no reboot within %u s; resetting", in->rec.id,
	        INST_REBOOT_GRACE_MS / 1000);
	if (inst_virt(in, INST_VIRT_RESET, reset_done))
		mc_warn(INST_SUB, "%s: cannot reset", in->rec.id);
}

/*
 * A host may offer /dev/kvm that passes libvirt's checks but cannot run a
 * real guest (nested virtualisation with a CPU model the guest kernel
 * chokes on: QEMU spins, the console stays empty). So, under --virt-type
 * auto, kvm is on probation until a kvm guest prints on its serial
 * console; a pending guest that printed nothing after INST_KVM_PROBE_MS
 * (TCG guests print within a few seconds) is destroyed and launched again
 * under QEMU TCG, which is used from then on, also after a restart (the
 * verdict is kept in the store; --virt-type kvm tries kvm again).
 */
static void kvm_probe(struct inst *in)
{
	struct peer_instances *pi = in->pi;
	in->kvm_probe_at = 0;
	if (in->dom != INST_DOM_UP || pi->kvm_proven)
		return;
	char *log = inst_path(pi, in->rec.id, "console.log");
	struct stat st;
	bool quiet = stat(log, &st) != 0 || st.st_size == 0;
	free(log);
	if (!quiet) {
		pi->kvm_proven = true;
		mc_info(INST_SUB, "kvm runs guests on this host");
		return;
	}
	if (in->rec.state == MC_INST_PENDING) {
		char when[32];
		time_t now = time(NULL);
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
		         gmtime_r(&now, &tm));
		if (peer_store_meta_set(pi->p->store, INST_META_KVM_FAILED,
		                        when) != 0)
			mc_warn(INST_SUB, "cannot keep the kvm verdict");
	}
	if (in->rec.state != MC_INST_PENDING)
		return;
	mc_warn(INST_SUB,
	        "%s: no console output %d s after its start under kvm: kvm "
	        "does not run guests on this host; using QEMU TCG from now on",
	        in->rec.id, INST_KVM_PROBE_MS / 1000);
	virt_use_software(pi->virt);
	in->relaunch = true;
	inst_destroy(in, "to start it again under QEMU TCG");
}

/*
 * `running` waits for the guest's address, so a guest that never gets one
 * (a kernel panic, a network that never comes up) would stay pending with
 * nothing said. Past the due time it stays pending, but its state reason
 * (EC2 gives pending instances one too) says what is missing and where to
 * look; the address, when it comes, clears it.
 */
static void address_overdue(struct inst *in)
{
	in->address_due = 0;
	if (in->rec.state != MC_INST_PENDING || in->dom != INST_DOM_UP)
		return;
	unsigned s = (unsigned)(in->pi->address_due_ms / 1000);
	mc_warn(INST_SUB, "%s: no address %u s after its start", in->rec.id, s);
	inst_set_state(in, MC_INST_PENDING, "pending",
	               "the guest has no address %u s after its start; its "
	               "console output shows why",
	               s);
}

/* Guests that print without end must not fill the host's disk. */
static void consoles_cap(struct peer_instances *pi)
{
	for (struct inst *in = pi->list; in; in = in->next) {
		if (in->dom != INST_DOM_UP)
			continue;
		char *path = inst_path(pi, in->rec.id, "console.log");
		int64_t r = peer_console_log_cap(path, INST_CONSOLE_CAP,
		                                 INST_CONSOLE_KEEP);
		free(path);
		if (r < 0)
			mc_warn(INST_SUB,
			        "%s: cannot bound the console log: %s",
			        in->rec.id, strerror((int)-r));
		else if (r > 0)
			mc_info(INST_SUB,
			        "%s: console log cut back to its last %d KiB "
			        "(%lld bytes dropped)",
			        in->rec.id, INST_CONSOLE_KEEP / 1024,
			        (long long)r);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct peer_instances *pi = t->data;
	uint64_t now = uv_now(pi->p->loop);
	if (pi->virt && !pi->connected && !pi->connecting &&
	    now >= pi->next_connect)
		try_connect(pi);
	/* Neither grace hook takes an instance out of the table. */
	for (struct inst *in = pi->list; in; in = in->next) {
		if (in->stop_deadline && now >= in->stop_deadline)
			timer_stop_grace(in);
		if (in->reboot_deadline && now >= in->reboot_deadline)
			timer_reboot_grace(in);
		if (in->kvm_probe_at && now >= in->kvm_probe_at)
			kvm_probe(in);
		if (in->address_due && now >= in->address_due)
			address_overdue(in);
	}
	if (now >= pi->next_console_check) {
		pi->next_console_check = now + INST_CONSOLE_CHECK_MS;
		consoles_cap(pi);
	}
	if (now >= pi->next_watch) {
		pi->next_watch = now + INST_WATCH_MS;
		inst_watch(pi);
		/* After the watch: a terminate that arrived with the sync
		 * wins over booting again. */
		inst_adopt_deferred(pi);
	}
}

bool inst_hypervisor_ready(struct peer_instances *pi, char *why,
                           size_t why_size)
{
	if (!pi || !pi->virt) {
		snprintf(why, why_size, "this host runs no instances");
		return false;
	}
	if (!pi->connected) {
		snprintf(why, why_size, "no hypervisor connection%s%s",
		         pi->connect_error[0] ? ": " : "", pi->connect_error);
		return false;
	}
	if (!pi->hostnet_started) {
		snprintf(why, why_size, "host networking is not up");
		return false;
	}
	return true;
}

/* ---- the module ---- */

static enum virt_type parse_type(const char *s)
{
	if (strcmp(s, "kvm") == 0)
		return VIRT_TYPE_KVM;
	if (strcmp(s, "qemu") == 0)
		return VIRT_TYPE_QEMU;
	return VIRT_TYPE_AUTO;
}

/* Under auto, a kvm found unable to run guests before is not tried again;
 * an explicit --virt-type kvm forgets that verdict. */
static void kvm_verdict(struct peer_instances *pi)
{
	char when[32] = "";
	enum virt_type t = parse_type(pi->p->cfg.virt_type);
	if (t == VIRT_TYPE_KVM) {
		peer_store_meta_set(pi->p->store, INST_META_KVM_FAILED, "");
		return;
	}
	if (t != VIRT_TYPE_AUTO ||
	    peer_store_meta_get(pi->p->store, INST_META_KVM_FAILED, when,
	                        sizeof(when)) != 0 ||
	    !when[0])
		return;
	mc_info(INST_SUB,
	        "kvm did not run guests on this host at %s: QEMU TCG is used "
	        "(--virt-type kvm tries kvm again)",
	        when);
	virt_use_software(pi->virt);
}

/*
 * QEMU runs as its own user (libvirt-qemu on Debian) and must reach the
 * disks libvirt hands it under the data dir, which `mallee init` makes
 * 0700: others get search permission (not read), so the path can be
 * walked but not listed; the key files stay 0600.
 */
static void open_data_dir(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0 || (st.st_mode & 0011) == 0011)
		return;
	if (chmod(dir, (st.st_mode & 07777) | 0011) == 0)
		mc_info(INST_SUB,
		        "%s: search permission for the hypervisor's "
		        "user",
		        dir);
	else
		mc_warn(INST_SUB,
		        "chmod %s: %s (guests may not reach their "
		        "disks)",
		        dir, strerror(errno));
}

int peer_instances_start(struct peer *p, char *err, size_t err_size)
{
	struct peer_instances *pi = xcalloc(1, sizeof(*pi));
	pi->p = p;
	pi->address_due_ms = INST_ADDRESS_DUE_MS;
	const char *due = getenv("MALLEE_TEST_ADDRESS_DUE_MS");
	if (due && atoll(due) > 0)
		pi->address_due_ms = (uint64_t)atoll(due);
	p->instances = pi;
	int r = inst_load(pi);
	if (r) {
		snprintf(err, err_size, "cannot read instance records: %s",
		         strerror(-r));
		goto err_load;
	}
	inst_capacity_update(pi);
	peer_rpc_register(p, "admit", inst_rpc_admit);
	peer_rpc_register(p, "op", inst_rpc_op);
	uv_timer_init(p->loop, &pi->tick);
	pi->tick.data = pi;
	pi->handles = 1;
	uv_timer_start(&pi->tick, on_tick, INST_TICK_MS, INST_TICK_MS);
	if (strcmp(p->cfg.virt_uri, "none") == 0 || !p->cfg.virt_uri[0]) {
		mc_info(INST_SUB, "--virt-uri none: this peer hosts no "
		                  "instances");
		return 0;
	}
	open_data_dir(p->cfg.data_dir);
	pi->virt = virt_new(p->loop, p->cfg.virt_uri,
	                    parse_type(p->cfg.virt_type), on_event, pi);
	if (!pi->virt) {
		snprintf(err, err_size, "--virt-uri %s: cannot make a driver",
		         p->cfg.virt_uri);
		peer_instances_stop(p);
		return -EINVAL;
	}
	pi->handles++;
	kvm_verdict(pi);
	try_connect(pi);
	return 0;

err_load:
	p->instances = NULL;
	for (struct inst *in = pi->list, *next; in; in = next) {
		next = in->next;
		mc_instance_clear(&in->rec);
		free(in);
	}
	free(pi);
	return r;
}

static void tick_closed(uv_handle_t *h)
{
	struct peer_instances *pi = h->data;
	pi->handles--;
	maybe_free_all(pi);
}

static void virt_closed(void *arg)
{
	struct peer_instances *pi = arg;
	pi->handles--;
	maybe_free_all(pi);
}

void peer_instances_stop(struct peer *p)
{
	struct peer_instances *pi = p->instances;
	if (!pi)
		return;
	p->instances = NULL;
	pi->stopping = true;
	/* Domains keep running: the next start re-adopts them. */
	if (pi->hostnet_started)
		peer_hostnet_stop(p);
	pi->hostnet_started = false;
	while (pi->list)
		inst_remove(pi->list);
	if (pi->handles == 0) {
		maybe_free_all(pi);
		return;
	}
	/* Count down through the close callbacks; the last frees pi. */
	struct virt *virt = pi->virt;
	pi->virt = NULL;
	uv_close((uv_handle_t *)&pi->tick, tick_closed);
	if (virt)
		virt_close(virt, virt_closed, pi);
}

int peer_instances_by_ip(struct peer *p, const char *ip,
                         struct mc_instance *out)
{
	struct peer_instances *pi = p->instances;
	for (struct inst *in = pi ? pi->list : NULL; in; in = in->next)
		if (strcmp(in->rec.private_ip, ip) == 0 &&
		    in->rec.state != MC_INST_TERMINATED) {
			mc_instance_copy(out, &in->rec);
			return 0;
		}
	return -ENOENT;
}

void peer_instances_addressed(struct peer *p, const char *instance_id,
                              const char *ip)
{
	struct peer_instances *pi = p->instances;
	struct inst *in = pi ? inst_find(pi, instance_id) : NULL;
	if (!in)
		return;
	if (in->rec.state != MC_INST_PENDING || in->dom == INST_DOM_NONE)
		return;
	if (strcmp(in->rec.private_ip, ip) != 0)
		mc_warn(INST_SUB, "%s: the guest took %s, not %s", instance_id,
		        ip, in->rec.private_ip);
	in->rec.state_reason_code[0] = '\0';
	in->rec.state_reason[0] = '\0';
	inst_set_state(in, MC_INST_RUNNING, NULL, "%s", "");
}

void inst_uuid(const char *id, uint8_t uuid[16])
{
	/* A name-based UUID (version 5 layout, BLAKE2b instead of SHA-1):
	 * the same instance always gets the same one. */
	mc_hash(uuid, 16, id, strlen(id));
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x50);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}
