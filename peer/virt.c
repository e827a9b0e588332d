/*
 * The libvirt driver (virt.h): the only file that includes libvirt.
 *
 * Threads and the hand-back. libvirt delivers domain events only while some
 * thread runs its event loop (virEventRunDefaultImpl). That loop is one per
 * process, so one thread of ours runs it for every driver of the process
 * (evloop below, started by the first virt_new() and stopped by the last
 * virt_close()). Its callbacks do no work: each copies the event into the
 * driver's mailbox under the mailbox's mutex and calls uv_async_send(); the
 * libuv loop then drains the mailbox and calls the driver's event callback,
 * in order. The mailbox is reference counted because libvirt may still hold
 * it (as a callback's opaque) after the driver asked to close: libvirt
 * drops each reference through the callback's free function. Once the
 * driver closes, the mailbox forgets its uv_async_t (under the mutex), so a
 * late event is dropped instead of touching a closed handle.
 *
 * Blocking libvirt calls run on libuv's thread pool (uv_queue_work) with
 * their own reference on the connection; their results go back through the
 * request's after-work callback on the loop.
 */
#include "virt.h"

#include "log.h"
#include "mem.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SUB "virt"

enum virt_op {
	OP_CONNECT,
	OP_START,
	OP_SHUTDOWN,
	OP_DESTROY,
	OP_REBOOT,
	OP_RESET,
	OP_UNDEFINE,
	OP_STATE,
	OP_LIST,
	OP_OVERLAY,
	OP_TEARDOWN, /* internal: virt_close() */
};

/* Registrations made on each connection, in req->reg_ids order. */
enum { REG_LIFECYCLE, REG_REBOOT, REG_CLOSE, REG_COUNT };

struct virt_item {
	struct virt_item *next;
	struct virt_event ev;
	unsigned gen; /* connection the event came from */
	char name[];
};

struct virt_mailbox {
	atomic_int refs;
	pthread_mutex_t lock;
	uv_async_t *async; /* NULL once the driver closes */
	struct virt_item *head, *tail;
};

/* What libvirt holds as a callback's opaque. */
struct virt_reg {
	struct virt_mailbox *mb;
	unsigned gen;
};

struct virt {
	uv_loop_t *loop;
	char *uri;
	enum virt_type want; /* as asked */
	enum virt_type type; /* in use, once connected */
	virt_event_cb event_cb;
	void *event_arg;
	uv_async_t async;
	struct virt_mailbox *mb;
	virConnectPtr conn;
	bool conn_dead; /* the daemon went away: conn awaits closing */
	bool connecting;
	unsigned gen;
	int reg_ids[REG_COUNT];
	unsigned pending; /* requests on the thread pool */
	bool closing;
	struct virt_req teardown;
	void (*close_cb)(void *arg);
	void *close_arg;
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

static int evloop_get(void)
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

/* Blocks until the thread is gone when this was the last user. */
static void evloop_put(void)
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

static struct virt_mailbox *mailbox_ref(struct virt_mailbox *mb)
{
	atomic_fetch_add(&mb->refs, 1);
	return mb;
}

static void mailbox_unref(struct virt_mailbox *mb)
{
	if (atomic_fetch_sub(&mb->refs, 1) != 1)
		return;
	struct virt_item *it = mb->head;
	while (it) {
		struct virt_item *next = it->next;
		free(it);
		it = next;
	}
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}

static void reg_free(void *opaque)
{
	struct virt_reg *reg = opaque;
	mailbox_unref(reg->mb);
	free(reg);
}

/* On libvirt's thread: queue one event and wake the loop. */
static void mailbox_post(struct virt_reg *reg, const char *name,
                         const unsigned char *uuid, enum virt_event_kind kind,
                         enum virt_stop_reason reason, int detail)
{
	size_t n = strlen(name);
	struct virt_item *it = xcalloc(1, sizeof(*it) + n + 1);
	memcpy(it->name, name, n + 1);
	it->gen = reg->gen;
	it->ev.kind = kind;
	it->ev.reason = reason;
	it->ev.detail = detail;
	it->ev.received_ns = uv_hrtime();
	if (uuid)
		memcpy(it->ev.uuid, uuid, 16);

	struct virt_mailbox *mb = reg->mb;
	pthread_mutex_lock(&mb->lock);
	if (!mb->async) {
		pthread_mutex_unlock(&mb->lock);
		free(it);
		return;
	}
	if (mb->tail)
		mb->tail->next = it;
	else
		mb->head = it;
	mb->tail = it;
	uv_async_send(mb->async);
	pthread_mutex_unlock(&mb->lock);
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

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
                        int detail, void *opaque)
{
	(void)conn;
	enum virt_event_kind kind;
	enum virt_stop_reason reason = VIRT_STOP_NONE;
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		kind = VIRT_EV_DEFINED;
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		kind = VIRT_EV_UNDEFINED;
		break;
	case VIR_DOMAIN_EVENT_STARTED:
		kind = VIRT_EV_STARTED;
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		kind = VIRT_EV_SUSPENDED;
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		kind = VIRT_EV_RESUMED;
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		kind = VIRT_EV_STOPPED;
		reason = stop_reason(detail);
		break;
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		kind = VIRT_EV_SHUTDOWN;
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		kind = VIRT_EV_CRASHED;
		break;
	default:
		kind = VIRT_EV_OTHER;
	}
	unsigned char uuid[VIR_UUID_BUFLEN];
	const char *name = virDomainGetName(dom);
	bool have_uuid = virDomainGetUUID(dom, uuid) == 0;
	mailbox_post(opaque, name ? name : "", have_uuid ? uuid : NULL, kind,
	             reason, detail);
	return 0;
}

static int on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque)
{
	(void)conn;
	unsigned char uuid[VIR_UUID_BUFLEN];
	const char *name = virDomainGetName(dom);
	bool have_uuid = virDomainGetUUID(dom, uuid) == 0;
	mailbox_post(opaque, name ? name : "", have_uuid ? uuid : NULL,
	             VIRT_EV_REBOOTED, VIRT_STOP_NONE, 0);
	return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	(void)conn;
	mailbox_post(opaque, "", NULL, VIRT_EV_DISCONNECTED, VIRT_STOP_NONE,
	             reason);
}

/* On the loop: deliver what libvirt's thread queued. */
static void on_async(uv_async_t *async)
{
	struct virt *virt = async->data;
	pthread_mutex_lock(&virt->mb->lock);
	struct virt_item *it = virt->mb->head;
	virt->mb->head = virt->mb->tail = NULL;
	pthread_mutex_unlock(&virt->mb->lock);

	while (it) {
		struct virt_item *next = it->next;
		/* A late word from a connection already replaced is stale. */
		bool current = it->gen == virt->gen;
		if (it->ev.kind == VIRT_EV_DISCONNECTED && current) {
			mc_warn(SUB, "lost the connection to %s", virt->uri);
			virt->conn_dead = true;
		}
		if (current && !virt->closing) {
			it->ev.name = it->name;
			virt->event_cb(virt, &it->ev, virt->event_arg);
		}
		free(it);
		it = next;
	}
}

static void free_on_close(uv_handle_t *handle)
{
	free(handle->data);
}

struct virt *virt_new(uv_loop_t *loop, const char *uri, enum virt_type type,
                      virt_event_cb cb, void *arg)
{
	if (!loop || !uri || !cb || type > VIRT_TYPE_QEMU)
		return NULL;
	struct virt *virt = xcalloc(1, sizeof(*virt));
	if (uv_async_init(loop, &virt->async, on_async) < 0) {
		free(virt); /* an async that failed to init needs no close */
		return NULL;
	}
	if (evloop_get() < 0) {
		virt->async.data = virt;
		uv_close((uv_handle_t *)&virt->async, free_on_close);
		return NULL;
	}
	virt->loop = loop;
	virt->uri = xstrdup(uri);
	virt->want = type;
	virt->type = type;
	virt->event_cb = cb;
	virt->event_arg = arg;
	virt->mb = xcalloc(1, sizeof(*virt->mb));
	atomic_init(&virt->mb->refs, 1);
	pthread_mutex_init(&virt->mb->lock, NULL);
	virt->async.data = virt;
	virt->mb->async = &virt->async;
	for (int i = 0; i < REG_COUNT; i++)
		virt->reg_ids[i] = -1;
	return virt;
}

bool virt_is_connected(const struct virt *virt)
{
	return virt->conn && !virt->conn_dead;
}

const char *virt_type_name(const struct virt *virt)
{
	switch (virt->type) {
	case VIRT_TYPE_KVM:
		return "kvm";
	case VIRT_TYPE_QEMU:
		return "qemu";
	default:
		return "auto";
	}
}

/* On a worker: the calling thread's libvirt error into the request. */
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

static void work_connect(struct virt_req *req)
{
	struct virt *virt = req->virt;
	/* The old connection of a daemon that went away. */
	if (req->conn)
		virConnectClose(req->conn);
	req->conn = NULL;

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
		if (!caps)
			goto err_conn;
		req->type = strstr(caps, "<domain type='kvm'") ? VIRT_TYPE_KVM
		                                               : VIRT_TYPE_QEMU;
		free(caps);
	}

	struct virt_reg *regs[REG_COUNT];
	for (int i = 0; i < REG_COUNT; i++) {
		regs[i] = xmalloc(sizeof(*regs[i]));
		regs[i]->mb = mailbox_ref(virt->mb);
		regs[i]->gen = req->gen;
		req->reg_ids[i] = -1;
	}
	req->reg_ids[REG_LIFECYCLE] = virConnectDomainEventRegisterAny(
	    conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), regs[REG_LIFECYCLE],
	    reg_free);
	req->reg_ids[REG_REBOOT] = virConnectDomainEventRegisterAny(
	    conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
	    VIR_DOMAIN_EVENT_CALLBACK(on_reboot), regs[REG_REBOOT], reg_free);
	req->reg_ids[REG_CLOSE] =
	    virConnectRegisterCloseCallback(conn, on_close, regs[REG_CLOSE],
	                                    reg_free) == 0
	        ? 0
	        : -1;
	bool ok = true;
	for (int i = 0; i < REG_COUNT; i++) {
		/* libvirt frees only what it accepted. */
		if (req->reg_ids[i] < 0) {
			if (ok)
				req_fail(req);
			reg_free(regs[i]);
			ok = false;
		}
	}
	if (!ok)
		goto err_conn;
	/* Notice a dead daemon within ~15 s even when idle. */
	if (virConnectSetKeepAlive(conn, 5, 3) < 0)
		mc_warn(SUB, "no keepalive on %s: %s", virt->uri,
		        virGetLastErrorMessage());
	req->conn = conn;
	return;

err_conn:
	if (req->status == 0)
		req_fail(req);
	/* Closing the connection drops whatever registrations it holds. */
	virConnectClose(conn);
	for (int i = 0; i < REG_COUNT; i++)
		req->reg_ids[i] = -1;
}

static void drop_registrations(virConnectPtr conn, const int *ids)
{
	if (ids[REG_LIFECYCLE] >= 0)
		virConnectDomainEventDeregisterAny(conn, ids[REG_LIFECYCLE]);
	if (ids[REG_REBOOT] >= 0)
		virConnectDomainEventDeregisterAny(conn, ids[REG_REBOOT]);
	if (ids[REG_CLOSE] >= 0)
		virConnectUnregisterCloseCallback(conn, on_close);
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

static void work_domain(struct virt_req *req)
{
	virConnectPtr conn = req->conn;
	virDomainPtr dom;
	if (req->op == OP_START) {
		if (req->persistent) {
			dom = virDomainDefineXML(conn, req->text);
			if (dom && virDomainCreate(dom) < 0) {
				req_fail(req);
				virDomainFree(dom);
				return;
			}
		} else {
			dom = virDomainCreateXML(conn, req->text, 0);
		}
		if (!dom)
			req_fail(req);
		else
			virDomainFree(dom);
		return;
	}

	dom = virDomainLookupByName(conn, req->name);
	if (!dom) {
		req_fail(req);
		if (req->op == OP_STATE && req->status == -ENOENT) {
			req->status = 0;
			req->error[0] = '\0';
			req->state = VIRT_STATE_NONE;
		}
		return;
	}
	int rc = 0, state, reason;
	switch (req->op) {
	case OP_SHUTDOWN:
		rc = virDomainShutdown(dom);
		break;
	case OP_DESTROY:
		rc = virDomainDestroy(dom);
		break;
	case OP_REBOOT:
		rc = virDomainReboot(dom, 0);
		break;
	case OP_RESET:
		rc = virDomainReset(dom, 0);
		break;
	case OP_UNDEFINE:
		rc = virDomainUndefine(dom);
		break;
	case OP_STATE:
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
		int state = 0, reason;
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
	if (req->conn) {
		drop_registrations(req->conn, req->reg_ids);
		virConnectClose(req->conn);
		req->conn = NULL;
	}
	evloop_put();
}

static void req_work(uv_work_t *work)
{
	struct virt_req *req = work->data;
	switch (req->op) {
	case OP_CONNECT:
		work_connect(req);
		break;
	case OP_LIST:
		work_list(req);
		break;
	case OP_OVERLAY:
		req->status = virt_overlay_create(
		    req->base, req->base_format, req->text, req->size,
		    req->error, sizeof(req->error));
		break;
	case OP_TEARDOWN:
		work_teardown(req);
		break;
	default:
		work_domain(req);
	}
}

static void virt_finish_close(struct virt *virt);

static void req_after(uv_work_t *work, int status)
{
	struct virt_req *req = work->data;
	struct virt *virt = req->virt;
	if (status == UV_ECANCELED && req->status == 0) {
		req->status = -ECANCELED;
		snprintf(req->error, sizeof(req->error), "cancelled");
	}
	if (req->op == OP_CONNECT) {
		virt->connecting = false;
		if (req->conn) {
			virt->conn = req->conn;
			virt->type = req->type;
			memcpy(virt->reg_ids, req->reg_ids,
			       sizeof(virt->reg_ids));
			mc_info(SUB, "connected to %s, domain type %s",
			        virt->uri, virt_type_name(virt));
		}
		req->conn = NULL;
	} else if (req->conn) {
		virConnectClose(req->conn); /* drops the request's reference */
		req->conn = NULL;
	}
	free(req->name);
	free(req->text);
	free(req->base);
	free(req->base_format);
	req->name = req->text = req->base = req->base_format = NULL;
	virt->pending--;
	req->cb(req);
	if (virt->closing && virt->pending == 0)
		virt_finish_close(virt);
}

static void req_init(struct virt *virt, struct virt_req *req, int op,
                     virt_req_cb cb)
{
	void *data = req->data;
	memset(req, 0, sizeof(*req));
	req->data = data;
	req->virt = virt;
	req->op = op;
	req->cb = cb;
	req->work.data = req;
}

static int req_submit(struct virt *virt, struct virt_req *req)
{
	int err = uv_queue_work(virt->loop, &req->work, req_work, req_after);
	if (err < 0) {
		/* A connect request's conn is the caller's to restore. */
		if (req->conn && req->op != OP_CONNECT) {
			virConnectClose(req->conn);
			req->conn = NULL;
		}
		free(req->name);
		free(req->text);
		free(req->base);
		free(req->base_format);
		req->name = req->text = req->base = req->base_format = NULL;
		return err;
	}
	virt->pending++;
	return 0;
}

int virt_connect(struct virt *virt, struct virt_req *req, virt_req_cb cb)
{
	if (virt->closing)
		return -ECANCELED;
	if (virt->connecting)
		return -EALREADY;
	if (virt_is_connected(virt))
		return -EISCONN;
	req_init(virt, req, OP_CONNECT, cb);
	/* The worker closes a dead predecessor (closing may block). */
	req->conn = virt->conn;
	virt->conn = NULL;
	req->gen = ++virt->gen;
	virt->conn_dead = false;
	virt->connecting = true;
	int err = req_submit(virt, req);
	if (err < 0) {
		virt->connecting = false;
		virt->conn = req->conn;
		virt->conn_dead = virt->conn != NULL;
		req->conn = NULL;
	}
	return err;
}

/* A request that needs the connection takes a reference of its own. */
static int req_with_conn(struct virt *virt, struct virt_req *req, int op,
                         virt_req_cb cb)
{
	if (virt->closing)
		return -ECANCELED;
	if (!virt_is_connected(virt))
		return -ENOTCONN;
	req_init(virt, req, op, cb);
	if (virConnectRef(virt->conn) < 0)
		return -ENOTCONN;
	req->conn = virt->conn;
	return 0;
}

int virt_start(struct virt *virt, struct virt_req *req,
               const struct virt_spec *spec, virt_req_cb cb)
{
	char *xml;
	if (!virt_is_connected(virt))
		return virt->closing ? -ECANCELED : -ENOTCONN;
	int err = virt_domain_xml(spec, virt->type, &xml);
	if (err < 0)
		return err;
	err = req_with_conn(virt, req, OP_START, cb);
	if (err < 0) {
		free(xml);
		return err;
	}
	req->text = xml;
	req->name = xstrdup(spec->name);
	req->persistent = spec->persistent;
	return req_submit(virt, req);
}

static int domain_op(struct virt *virt, struct virt_req *req, int op,
                     const char *name, virt_req_cb cb)
{
	if (!name || !*name)
		return -EINVAL;
	int err = req_with_conn(virt, req, op, cb);
	if (err < 0)
		return err;
	req->name = xstrdup(name);
	return req_submit(virt, req);
}

int virt_shutdown(struct virt *virt, struct virt_req *req, const char *name,
                  virt_req_cb cb)
{
	return domain_op(virt, req, OP_SHUTDOWN, name, cb);
}

int virt_destroy(struct virt *virt, struct virt_req *req, const char *name,
                 virt_req_cb cb)
{
	return domain_op(virt, req, OP_DESTROY, name, cb);
}

int virt_reboot(struct virt *virt, struct virt_req *req, const char *name,
                virt_req_cb cb)
{
	return domain_op(virt, req, OP_REBOOT, name, cb);
}

int virt_reset(struct virt *virt, struct virt_req *req, const char *name,
               virt_req_cb cb)
{
	return domain_op(virt, req, OP_RESET, name, cb);
}

int virt_undefine(struct virt *virt, struct virt_req *req, const char *name,
                  virt_req_cb cb)
{
	return domain_op(virt, req, OP_UNDEFINE, name, cb);
}

int virt_state_query(struct virt *virt, struct virt_req *req, const char *name,
                     virt_req_cb cb)
{
	return domain_op(virt, req, OP_STATE, name, cb);
}

int virt_list(struct virt *virt, struct virt_req *req, const char *prefix,
              virt_req_cb cb)
{
	int err = req_with_conn(virt, req, OP_LIST, cb);
	if (err < 0)
		return err;
	req->text = xstrdup(prefix ? prefix : "");
	return req_submit(virt, req);
}

int virt_overlay(struct virt *virt, struct virt_req *req, const char *base,
                 const char *base_format, const char *overlay, uint64_t size,
                 virt_req_cb cb)
{
	if (virt->closing)
		return -ECANCELED;
	if (!base || !base_format || !overlay)
		return -EINVAL;
	req_init(virt, req, OP_OVERLAY, cb);
	req->base = xstrdup(base);
	req->base_format = xstrdup(base_format);
	req->text = xstrdup(overlay);
	req->size = size;
	return req_submit(virt, req);
}

void virt_req_cleanup(struct virt_req *req)
{
	for (size_t i = 0; i < req->n_domains; i++)
		free(req->domains[i].name);
	free(req->domains);
	req->domains = NULL;
	req->n_domains = 0;
}

static void on_async_closed(uv_handle_t *handle)
{
	struct virt *virt = handle->data;
	void (*cb)(void *) = virt->close_cb;
	void *arg = virt->close_arg;
	mailbox_unref(virt->mb);
	free(virt->uri);
	free(virt);
	if (cb)
		cb(arg);
}

static void teardown_done(struct virt_req *req)
{
	struct virt *virt = req->virt;
	/* From here on libvirt's thread drops events instead of waking us. */
	pthread_mutex_lock(&virt->mb->lock);
	virt->mb->async = NULL;
	pthread_mutex_unlock(&virt->mb->lock);
	uv_close((uv_handle_t *)&virt->async, on_async_closed);
}

/* Every request is back: hand the connection to a worker to close. */
static void virt_finish_close(struct virt *virt)
{
	struct virt_req *req = &virt->teardown;
	if (req->op == OP_TEARDOWN)
		return; /* already on its way */
	req_init(virt, req, OP_TEARDOWN, teardown_done);
	req->conn = virt->conn;
	memcpy(req->reg_ids, virt->reg_ids, sizeof(req->reg_ids));
	virt->conn = NULL;
	if (req_submit(virt, req) < 0) {
		/* The pool refused: close here rather than leak. */
		work_teardown(req);
		teardown_done(req);
	}
}

void virt_close(struct virt *virt, void (*cb)(void *arg), void *arg)
{
	if (virt->closing)
		return;
	virt->closing = true;
	virt->close_cb = cb;
	virt->close_arg = arg;
	if (virt->pending == 0)
		virt_finish_close(virt);
}

const char *virt_state_name(enum virt_state state)
{
	static const char *const names[] = {
	    [VIRT_STATE_NONE] = "none",
	    [VIRT_STATE_RUNNING] = "running",
	    [VIRT_STATE_PAUSED] = "paused",
	    [VIRT_STATE_SHUTDOWN] = "shutdown",
	    [VIRT_STATE_SHUTOFF] = "shutoff",
	    [VIRT_STATE_CRASHED] = "crashed",
	    [VIRT_STATE_OTHER] = "other",
	};
	return (unsigned)state < sizeof(names) / sizeof(*names) ? names[state]
	                                                        : "?";
}

const char *virt_event_name(enum virt_event_kind kind)
{
	static const char *const names[] = {
	    [VIRT_EV_STARTED] = "started",
	    [VIRT_EV_STOPPED] = "stopped",
	    [VIRT_EV_SHUTDOWN] = "shutdown",
	    [VIRT_EV_CRASHED] = "crashed",
	    [VIRT_EV_SUSPENDED] = "suspended",
	    [VIRT_EV_RESUMED] = "resumed",
	    [VIRT_EV_REBOOTED] = "rebooted",
	    [VIRT_EV_DEFINED] = "defined",
	    [VIRT_EV_UNDEFINED] = "undefined",
	    [VIRT_EV_OTHER] = "other",
	    [VIRT_EV_DISCONNECTED] = "disconnected",
	};
	return (unsigned)kind < sizeof(names) / sizeof(*names) ? names[kind]
	                                                       : "?";
}

const char *virt_stop_reason_name(enum virt_stop_reason reason)
{
	static const char *const names[] = {
	    [VIRT_STOP_NONE] = "none",
	    [VIRT_STOP_SHUTDOWN] = "shutdown",
	    [VIRT_STOP_DESTROYED] = "destroyed",
	    [VIRT_STOP_CRASHED] = "crashed",
	    [VIRT_STOP_FAILED] = "failed",
	    [VIRT_STOP_OTHER] = "other",
	};
	return (unsigned)reason < sizeof(names) / sizeof(*names) ? names[reason]
	                                                         : "?";
}
