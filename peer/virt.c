/*
 * The libvirt driver's libvirt side (virt.h, virt_int.h): the only file of
 * mallee that includes libvirt.
 *
 * Threads and the hand-back. libvirt delivers domain events only while some
 * thread runs its event loop (virEventRunDefaultImpl). That loop is one per
 * process, so one thread of ours runs it for every driver of the process
 * (evloop below: started by the first virt_new(), stopped by the last
 * virt_close()). Its callbacks do no work: each copies the event into the
 * driver's mailbox under the mailbox's mutex and calls uv_async_send(); the
 * libuv loop then drains the mailbox and calls the driver's event callback,
 * in order (virt_loop.c). libvirt holds a mailbox reference per callback
 * and drops it through the callback's free function, which may come after
 * the driver closed; a closed driver's mailbox has forgotten its uv_async_t
 * (under the mutex), so a late event is dropped, never sent to a closed
 * handle.
 *
 * Blocking calls (virt_work) run on libuv's thread pool, each with its own
 * reference on the connection; errors are read from libvirt's per-thread
 * last error on that same thread.
 */
#include "virt_int.h"

#include "log.h"
#include "mem.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SUB "virt"

/* What libvirt holds as a callback's opaque. */
struct virt_reg {
	struct virt_mailbox *mb;
	unsigned gen;
};

/* libvirt's event loop thread, shared by every driver of the process. */
static struct {
	pthread_mutex_t lock;
	int users;
	pthread_t thread;
	atomic_bool quit;
} evloop = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t virt_once = PTHREAD_ONCE_INIT;
static int virt_init_status;

/* libvirt prints every error on stderr by default; ours are read per call
 * with virGetLastError() instead, and logged at debug level here. */
static void quiet_error(void *arg, virErrorPtr err)
{
	(void)arg;
	if (err && err->message)
		mc_debug(SUB, "libvirt: %s", err->message);
}

static void virt_init_once(void)
{
	virSetErrorFunc(NULL, quiet_error);
	/* The event implementation must exist before any connection opens,
	 * or the connection gets neither events nor keepalives. */
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
		virt_init_status = -EIO;
}

static void *evloop_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&evloop.quit)) {
		if (virEventRunDefaultImpl() < 0)
			mc_warn(SUB, "libvirt event loop: %s",
			        virGetLastErrorMessage());
	}
	return NULL;
}

static void evloop_wake(int timer, void *opaque)
{
	(void)opaque;
	virEventRemoveTimeout(timer);
}

int virt_evloop_get(void)
{
	pthread_once(&virt_once, virt_init_once);
	if (virt_init_status < 0)
		return virt_init_status;
	int err = 0;
	pthread_mutex_lock(&evloop.lock);
	if (evloop.users == 0) {
		atomic_store(&evloop.quit, false);
		err = -pthread_create(&evloop.thread, NULL, evloop_main, NULL);
	}
	if (err == 0)
		evloop.users++;
	pthread_mutex_unlock(&evloop.lock);
	return err;
}

void virt_evloop_put(void)
{
	pthread_mutex_lock(&evloop.lock);
	if (--evloop.users == 0) {
		atomic_store(&evloop.quit, true);
		/* A timer due now ends the thread's current iteration. */
		virEventAddTimeout(0, evloop_wake, NULL, NULL);
		pthread_join(evloop.thread, NULL);
	}
	pthread_mutex_unlock(&evloop.lock);
}

int virt_conn_ref(void *conn)
{
	return virConnectRef(conn) < 0 ? -ENOTCONN : 0;
}

void virt_conn_unref(void *conn)
{
	if (conn)
		virConnectClose(conn);
}

static void reg_free(void *opaque)
{
	struct virt_reg *reg = opaque;
	virt_mailbox_unref(reg->mb);
	free(reg);
}

static enum virt_stop_reason stop_reason(int detail)
{
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return VIRT_STOP_SHUTDOWN;
	case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
		return VIRT_STOP_DESTROYED;
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
		return VIRT_STOP_CRASHED;
	case VIR_DOMAIN_EVENT_STOPPED_FAILED:
		return VIRT_STOP_FAILED;
	default:
		return VIRT_STOP_OTHER;
	}
}

static enum virt_event_kind event_kind(int event)
{
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		return VIRT_EV_DEFINED;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		return VIRT_EV_UNDEFINED;
	case VIR_DOMAIN_EVENT_STARTED:
		return VIRT_EV_STARTED;
	case VIR_DOMAIN_EVENT_SUSPENDED:
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		return VIRT_EV_SUSPENDED;
	case VIR_DOMAIN_EVENT_RESUMED:
		return VIRT_EV_RESUMED;
	case VIR_DOMAIN_EVENT_STOPPED:
		return VIRT_EV_STOPPED;
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		return VIRT_EV_SHUTDOWN;
	case VIR_DOMAIN_EVENT_CRASHED:
		return VIRT_EV_CRASHED;
	default:
		return VIRT_EV_OTHER;
	}
}

/* On libvirt's thread, like the two callbacks below. */
static void post(void *opaque, virDomainPtr dom, enum virt_event_kind kind,
                 enum virt_stop_reason reason, int detail)
{
	struct virt_reg *reg = opaque;
	unsigned char uuid[VIR_UUID_BUFLEN];
	const char *name = dom ? virDomainGetName(dom) : NULL;
	bool have_uuid = dom && virDomainGetUUID(dom, uuid) == 0;
	virt_mailbox_post(reg->mb, reg->gen, name ? name : "",
	                  have_uuid ? uuid : NULL, kind, reason, detail);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
                        int detail, void *opaque)
{
	(void)conn;
	enum virt_event_kind kind = event_kind(event);
	post(opaque, dom, kind,
	     kind == VIRT_EV_STOPPED ? stop_reason(detail) : VIRT_STOP_NONE,
	     detail);
	return 0;
}

static int on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque)
{
	(void)conn;
	post(opaque, dom, VIRT_EV_REBOOTED, VIRT_STOP_NONE, 0);
	return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	(void)conn;
	post(opaque, NULL, VIRT_EV_DISCONNECTED, VIRT_STOP_NONE, reason);
}

/* The calling thread's libvirt error into the request. */
static void req_fail(struct virt_req *req)
{
	virErrorPtr e = virGetLastError();
	int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
	switch (code) {
	case VIR_ERR_NO_DOMAIN:
		req->status = -ENOENT;
		break;
	case VIR_ERR_DOM_EXIST:
		req->status = -EEXIST;
		break;
	case VIR_ERR_OPERATION_INVALID:
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_XML_DETAIL:
	case VIR_ERR_INVALID_ARG:
	case VIR_ERR_CONFIG_UNSUPPORTED:
		req->status = -EINVAL;
		break;
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_OPERATION_UNSUPPORTED:
		req->status = -ENOTSUP;
		break;
	case VIR_ERR_AUTH_FAILED:
	case VIR_ERR_AUTH_UNAVAILABLE:
	case VIR_ERR_ACCESS_DENIED:
		req->status = -EACCES;
		break;
	case VIR_ERR_OPERATION_TIMEOUT:
		req->status = -ETIMEDOUT;
		break;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_RPC:
		req->status = -ENOTCONN;
		break;
	default:
		req->status = -EIO;
	}
	snprintf(req->error, sizeof(req->error), "%s",
	         e && e->message ? e->message : "libvirt call failed");
}

/* Registers the three callbacks; on failure, unregisters none (closing the
 * connection drops them) and returns -1. */
static int register_callbacks(virConnectPtr conn, struct virt_req *req)
{
	struct virt_reg *regs[VIRT_REG_COUNT];
	for (int i = 0; i < VIRT_REG_COUNT; i++) {
		regs[i] = xmalloc(sizeof(*regs[i]));
		regs[i]->mb = virt_mailbox_ref(req->virt->mb);
		regs[i]->gen = req->gen;
	}
	int *ids = req->reg_ids;
	ids[VIRT_REG_LIFECYCLE] = virConnectDomainEventRegisterAny(
	    conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), regs[VIRT_REG_LIFECYCLE],
	    reg_free);
	ids[VIRT_REG_REBOOT] = virConnectDomainEventRegisterAny(
	    conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
	    VIR_DOMAIN_EVENT_CALLBACK(on_reboot), regs[VIRT_REG_REBOOT],
	    reg_free);
	ids[VIRT_REG_CLOSE] = virConnectRegisterCloseCallback(
	    conn, on_close, regs[VIRT_REG_CLOSE], reg_free);
	int rc = 0;
	for (int i = 0; i < VIRT_REG_COUNT; i++) {
		/* libvirt frees only what it accepted. */
		if (ids[i] < 0) {
			if (rc == 0)
				req_fail(req);
			reg_free(regs[i]);
			rc = -1;
		}
	}
	return rc;
}

static void work_connect(struct virt_req *req)
{
	struct virt *virt = req->virt; /* uri, want and mb never change */
	/* The old connection of a daemon that went away. */
	virt_conn_unref(req->conn);
	req->conn = NULL;
	for (int i = 0; i < VIRT_REG_COUNT; i++)
		req->reg_ids[i] = -1;

	virConnectPtr conn = virConnectOpen(virt->uri);
	if (!conn) {
		req_fail(req);
		return;
	}
	req->type = virt->want;
	if (req->type == VIRT_TYPE_AUTO) {
		/* The daemon lists a kvm domain type only when QEMU can use
		 * /dev/kvm. */
		char *caps = virConnectGetCapabilities(conn);
		if (!caps) {
			req_fail(req);
			goto err_conn;
		}
		req->type = strstr(caps, "<domain type='kvm'") ? VIRT_TYPE_KVM
		                                               : VIRT_TYPE_QEMU;
		free(caps);
	}
	if (register_callbacks(conn, req) < 0)
		goto err_conn;
	/* Notice a dead daemon within ~15 s even when idle. */
	if (virConnectSetKeepAlive(conn, 5, 3) < 0)
		mc_warn(SUB, "no keepalive on %s: %s", virt->uri,
		        virGetLastErrorMessage());
	req->conn = conn;
	return;

err_conn:
	virConnectClose(conn); /* drops whatever it registered */
	for (int i = 0; i < VIRT_REG_COUNT; i++)
		req->reg_ids[i] = -1;
}

static enum virt_state state_from(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
		return VIRT_STATE_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VIRT_STATE_PAUSED;
	case VIR_DOMAIN_SHUTDOWN:
		return VIRT_STATE_SHUTDOWN;
	case VIR_DOMAIN_SHUTOFF:
		return VIRT_STATE_SHUTOFF;
	case VIR_DOMAIN_CRASHED:
		return VIRT_STATE_CRASHED;
	default:
		return VIRT_STATE_OTHER;
	}
}

static void work_start(struct virt_req *req)
{
	virDomainPtr dom;
	if (req->persistent) {
		/* A definition that fails to start stays defined: the
		 * caller may start it again or undefine it. */
		dom = virDomainDefineXML(req->conn, req->text);
		if (dom && virDomainCreate(dom) < 0) {
			req_fail(req);
			virDomainFree(dom);
			return;
		}
	} else {
		dom = virDomainCreateXML(req->conn, req->text, 0);
	}
	if (!dom) {
		req_fail(req);
		return;
	}
	virDomainFree(dom);
}

static void work_domain(struct virt_req *req)
{
	virDomainPtr dom = virDomainLookupByName(req->conn, req->name);
	if (!dom) {
		req_fail(req);
		if (req->op == VIRT_OP_STATE && req->status == -ENOENT) {
			req->status = 0;
			req->error[0] = '\0';
			req->state = VIRT_STATE_NONE;
		}
		return;
	}
	int rc = 0, state, reason;
	switch (req->op) {
	case VIRT_OP_SHUTDOWN:
		rc = virDomainShutdown(dom);
		break;
	case VIRT_OP_DESTROY:
		rc = virDomainDestroy(dom);
		break;
	case VIRT_OP_REBOOT:
		rc = virDomainReboot(dom, 0);
		break;
	case VIRT_OP_RESET:
		rc = virDomainReset(dom, 0);
		break;
	case VIRT_OP_UNDEFINE:
		rc = virDomainUndefine(dom);
		break;
	case VIRT_OP_STATE:
		rc = virDomainGetState(dom, &state, &reason, 0);
		if (rc == 0)
			req->state = state_from(state);
		break;
	}
	if (rc < 0)
		req_fail(req);
	virDomainFree(dom);
}

static void work_list(struct virt_req *req)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(req->conn, &doms, 0);
	if (n < 0) {
		req_fail(req);
		return;
	}
	size_t plen = strlen(req->text);
	req->domains = n ? xcalloc((size_t)n, sizeof(*req->domains)) : NULL;
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);
		int state, reason;
		/* A domain that vanished meanwhile is simply not listed. */
		if (name && strncmp(name, req->text, plen) == 0 &&
		    virDomainGetState(doms[i], &state, &reason, 0) == 0) {
			struct virt_domain *d = &req->domains[req->n_domains++];
			d->name = xstrdup(name);
			virDomainGetUUID(doms[i], d->uuid);
			d->persistent = virDomainIsPersistent(doms[i]) == 1;
			d->state = state_from(state);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
}

static void work_teardown(struct virt_req *req)
{
	virConnectPtr conn = req->conn;
	if (conn) {
		const int *ids = req->reg_ids;
		if (ids[VIRT_REG_LIFECYCLE] >= 0)
			virConnectDomainEventDeregisterAny(
			    conn, ids[VIRT_REG_LIFECYCLE]);
		if (ids[VIRT_REG_REBOOT] >= 0)
			virConnectDomainEventDeregisterAny(
			    conn, ids[VIRT_REG_REBOOT]);
		if (ids[VIRT_REG_CLOSE] >= 0)
			virConnectUnregisterCloseCallback(conn, on_close);
	}
	virt_conn_unref(conn);
	req->conn = NULL;
	virt_evloop_put();
}

void virt_work(struct virt_req *req)
{
	switch (req->op) {
	case VIRT_OP_CONNECT:
		work_connect(req);
		return; /* req->conn is the new connection */
	case VIRT_OP_TEARDOWN:
		work_teardown(req);
		return;
	case VIRT_OP_OVERLAY:
		req->status = virt_overlay_create(
		    req->base, req->base_format, req->text, req->size,
		    req->error, sizeof(req->error));
		break;
	case VIRT_OP_START:
		work_start(req);
		break;
	case VIRT_OP_LIST:
		work_list(req);
		break;
	default:
		work_domain(req);
	}
	virt_conn_unref(req->conn);
	req->conn = NULL;
}
