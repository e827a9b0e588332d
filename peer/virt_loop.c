/*
 * The libvirt driver's loop side (virt.h, virt_int.h): the driver object,
 * requests queued to libuv's thread pool and their hand-back, and the
 * mailbox through which libvirt's event thread hands events to the loop.
 * Everything here runs on the loop thread except the mailbox's post and
 * unref, which any thread may call.
 */
#include "virt_int.h"

#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SUB "virt"

static struct virt_mailbox *mailbox_new(void)
{
	struct virt_mailbox *mb = xcalloc(1, sizeof(*mb));
	atomic_init(&mb->refs, 1);
	pthread_mutex_init(&mb->lock, NULL);
	return mb;
}

struct virt_mailbox *virt_mailbox_ref(struct virt_mailbox *mb)
{
	atomic_fetch_add(&mb->refs, 1);
	return mb;
}

void virt_mailbox_unref(struct virt_mailbox *mb)
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

void virt_mailbox_post(struct virt_mailbox *mb, unsigned gen, const char *name,
                       const uint8_t *uuid, enum virt_event_kind kind,
                       enum virt_stop_reason reason, int detail)
{
	size_t n = strlen(name);
	struct virt_item *it = xcalloc(1, sizeof(*it) + n + 1);
	memcpy(it->name, name, n + 1);
	it->gen = gen;
	it->ev.kind = kind;
	it->ev.reason = reason;
	it->ev.detail = detail;
	it->ev.received_ns = uv_hrtime();
	if (uuid)
		memcpy(it->ev.uuid, uuid, 16);

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

/* Delivers what libvirt's thread queued, in order. */
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
	virt->async.data = virt;
	if (virt_evloop_get() < 0) {
		uv_close((uv_handle_t *)&virt->async, free_on_close);
		return NULL;
	}
	virt->loop = loop;
	virt->uri = xstrdup(uri);
	virt->want = type;
	virt->type = type;
	virt->event_cb = cb;
	virt->event_arg = arg;
	virt->mb = mailbox_new();
	virt->mb->async = &virt->async;
	for (int i = 0; i < VIRT_REG_COUNT; i++)
		virt->reg_ids[i] = -1;
	return virt;
}

bool virt_is_connected(const struct virt *virt)
{
	return virt->conn && !virt->conn_dead;
}

void virt_use_software(struct virt *virt)
{
	virt->want = VIRT_TYPE_QEMU;
	virt->type = VIRT_TYPE_QEMU;
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

static void req_work(uv_work_t *work)
{
	virt_work(work->data);
}

static void req_free_args(struct virt_req *req)
{
	free(req->name);
	free(req->text);
	free(req->base);
	free(req->base_format);
	req->name = req->text = req->base = req->base_format = NULL;
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
	if (req->op == VIRT_OP_CONNECT) {
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
	}
	req_free_args(req);
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

/* On failure the request's arguments and connection reference are gone;
 * a connect request's conn is left for its caller to restore. */
static int req_submit(struct virt *virt, struct virt_req *req)
{
	int err = uv_queue_work(virt->loop, &req->work, req_work, req_after);
	if (err < 0) {
		if (req->op != VIRT_OP_CONNECT) {
			virt_conn_unref(req->conn);
			req->conn = NULL;
		}
		req_free_args(req);
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
	req_init(virt, req, VIRT_OP_CONNECT, cb);
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
	int err = virt_conn_ref(virt->conn);
	if (err < 0)
		return err;
	req->conn = virt->conn;
	return 0;
}

int virt_start(struct virt *virt, struct virt_req *req,
               const struct virt_spec *spec, virt_req_cb cb)
{
	if (virt->closing)
		return -ECANCELED;
	if (!virt_is_connected(virt))
		return -ENOTCONN;
	char *xml;
	int err = virt_domain_xml(spec, virt->type, &xml);
	if (err < 0)
		return err;
	err = req_with_conn(virt, req, VIRT_OP_START, cb);
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
	return domain_op(virt, req, VIRT_OP_SHUTDOWN, name, cb);
}

int virt_destroy(struct virt *virt, struct virt_req *req, const char *name,
                 virt_req_cb cb)
{
	return domain_op(virt, req, VIRT_OP_DESTROY, name, cb);
}

int virt_reboot(struct virt *virt, struct virt_req *req, const char *name,
                virt_req_cb cb)
{
	return domain_op(virt, req, VIRT_OP_REBOOT, name, cb);
}

int virt_reset(struct virt *virt, struct virt_req *req, const char *name,
               virt_req_cb cb)
{
	return domain_op(virt, req, VIRT_OP_RESET, name, cb);
}

int virt_undefine(struct virt *virt, struct virt_req *req, const char *name,
                  virt_req_cb cb)
{
	return domain_op(virt, req, VIRT_OP_UNDEFINE, name, cb);
}

int virt_state_query(struct virt *virt, struct virt_req *req, const char *name,
                     virt_req_cb cb)
{
	return domain_op(virt, req, VIRT_OP_STATE, name, cb);
}

int virt_list(struct virt *virt, struct virt_req *req, const char *prefix,
              virt_req_cb cb)
{
	int err = req_with_conn(virt, req, VIRT_OP_LIST, cb);
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
	req_init(virt, req, VIRT_OP_OVERLAY, cb);
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
	virt_mailbox_unref(virt->mb);
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

/* Every request is back: a worker drops the connection (which may block)
 * and stops libvirt's event thread if this was its last driver. */
static void virt_finish_close(struct virt *virt)
{
	struct virt_req *req = &virt->teardown;
	if (req->op == VIRT_OP_TEARDOWN)
		return; /* already on its way */
	req_init(virt, req, VIRT_OP_TEARDOWN, teardown_done);
	req->conn = virt->conn;
	memcpy(req->reg_ids, virt->reg_ids, sizeof(req->reg_ids));
	virt->conn = NULL;
	if (req_submit(virt, req) < 0) {
		/* The pool refused: do it here rather than leak. */
		virt_work(req);
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
