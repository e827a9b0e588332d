/*
 * Internals shared by the libvirt driver's files; nothing outside
 * peer/virt*.c includes this.
 *
 *   virt.c       the libvirt side: its event thread and callbacks, and the
 *                blocking calls that run on the thread pool (the only file
 *                that includes libvirt)
 *   virt_loop.c  the loop side: the driver object, requests, the mailbox
 *   virt_xml.c   domain XML;  virt_disk.c  qcow2 overlays
 */
#ifndef PEER_VIRT_INT_H
#define PEER_VIRT_INT_H

#include "virt.h"

#include <pthread.h>
#include <stdatomic.h>

enum virt_op {
	VIRT_OP_CONNECT,
	VIRT_OP_START,
	VIRT_OP_SHUTDOWN,
	VIRT_OP_DESTROY,
	VIRT_OP_REBOOT,
	VIRT_OP_RESET,
	VIRT_OP_UNDEFINE,
	VIRT_OP_STATE,
	VIRT_OP_LIST,
	VIRT_OP_OVERLAY,
	VIRT_OP_TEARDOWN, /* virt_close(): drop the connection */
};

/* Registrations made on each connection, in req->reg_ids order. */
enum { VIRT_REG_LIFECYCLE, VIRT_REG_REBOOT, VIRT_REG_CLOSE, VIRT_REG_COUNT };

/* One event on its way from libvirt's thread to the loop. */
struct virt_item {
	struct virt_item *next;
	struct virt_event ev;
	unsigned gen; /* the connection it came from */
	char name[];
};

/*
 * The hand-back queue. Reference counted: the driver holds one reference
 * and each libvirt registration another, dropped by libvirt through the
 * registration's free function, possibly after the driver is gone.
 */
struct virt_mailbox {
	atomic_int refs;
	pthread_mutex_t lock;
	uv_async_t *async; /* NULL once the driver closes */
	struct virt_item *head, *tail;
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
	void *conn;     /* virConnectPtr */
	bool conn_dead; /* the daemon went away: conn awaits closing */
	bool connecting;
	unsigned gen; /* of the newest connection */
	int reg_ids[VIRT_REG_COUNT];
	unsigned pending; /* requests on the thread pool */
	bool closing;
	struct virt_req teardown;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* virt_loop.c: the mailbox; post and unref are safe from any thread. */
struct virt_mailbox *virt_mailbox_ref(struct virt_mailbox *mb);
void virt_mailbox_unref(struct virt_mailbox *mb);
void virt_mailbox_post(struct virt_mailbox *mb, unsigned gen, const char *name,
                       const uint8_t *uuid, enum virt_event_kind kind,
                       enum virt_stop_reason reason, int detail);

/* virt.c: libvirt's event thread, shared by the process's drivers. get
 * starts it for the first user; put stops it (blocking) after the last. */
int virt_evloop_get(void);
void virt_evloop_put(void);

/* virt.c: runs req's operation; on a worker thread. Drops the request's
 * connection reference, except for a connect's new connection. */
void virt_work(struct virt_req *req);

/* virt.c: a reference on a connection; cheap, no I/O. */
int virt_conn_ref(void *conn);
void virt_conn_unref(void *conn);

#endif
