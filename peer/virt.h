/*
 * The libvirt driver: one connection to a libvirt daemon, the domains that
 * carry instances, and their lifecycle events delivered on the libuv loop.
 *
 * Only virt.c includes libvirt's headers; the rest of mallee sees these
 * types. Every call that talks to libvirt takes a request and a callback,
 * like libuv's uv_fs_*: the work runs on libuv's thread pool (libvirt calls
 * block, create and destroy for about a second), the callback runs once on
 * the loop. If the function fails synchronously (a negative return) the
 * callback never runs. Lifecycle events (started, stopped, ...) come from
 * libvirt's own event loop, which runs in a thread of ours and hands each
 * event to the libuv loop at once (no polling).
 */
#ifndef PEER_VIRT_H
#define PEER_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct virt;

/* Longest domain name the driver makes (instance names are far shorter). */
#define VIRT_NAME_MAX 64

enum virt_type {
	VIRT_TYPE_AUTO, /* kvm when the daemon offers it, else qemu */
	VIRT_TYPE_KVM,
	VIRT_TYPE_QEMU, /* QEMU TCG: software emulation */
};

enum virt_state {
	VIRT_STATE_NONE, /* no such domain */
	VIRT_STATE_RUNNING,
	VIRT_STATE_PAUSED,
	VIRT_STATE_SHUTDOWN, /* the guest is shutting down */
	VIRT_STATE_SHUTOFF,  /* defined but not running (persistent only) */
	VIRT_STATE_CRASHED,
	VIRT_STATE_OTHER,
};

enum virt_event_kind {
	VIRT_EV_STARTED,
	VIRT_EV_STOPPED,  /* the domain is gone (transient) or shut off */
	VIRT_EV_SHUTDOWN, /* the guest began or finished its shutdown */
	VIRT_EV_CRASHED,
	VIRT_EV_SUSPENDED,
	VIRT_EV_RESUMED,
	VIRT_EV_REBOOTED, /* guest reboot or reset, same QEMU process */
	VIRT_EV_DEFINED,
	VIRT_EV_UNDEFINED,
	VIRT_EV_OTHER,
	/* The connection to the daemon is lost; name is empty. Requests fail
	 * with -ENOTCONN until virt_connect() succeeds again. */
	VIRT_EV_DISCONNECTED,
};

enum virt_stop_reason {
	VIRT_STOP_NONE,      /* not a VIRT_EV_STOPPED event */
	VIRT_STOP_SHUTDOWN,  /* the guest powered off */
	VIRT_STOP_DESTROYED, /* virt_destroy() or another client */
	VIRT_STOP_CRASHED,
	VIRT_STOP_FAILED, /* QEMU died or failed to start */
	VIRT_STOP_OTHER,  /* saved, migrated, restored from a snapshot */
};

struct virt_event {
	enum virt_event_kind kind;
	enum virt_stop_reason reason;
	const char *name; /* borrowed: valid during the callback */
	uint8_t uuid[16];
	int detail;           /* libvirt's detail code, for logs */
	uint64_t received_ns; /* uv_hrtime() when libvirt's thread got it */
};

/* Runs on the loop thread, once per event, in the order libvirt sent them. */
typedef void (*virt_event_cb)(struct virt *virt, const struct virt_event *ev,
                              void *arg);

/*
 * What to run. Strings are borrowed for the duration of virt_start() (the
 * domain XML is built before it returns). Paths must be absolute.
 */
struct virt_spec {
	const char *name; /* [A-Za-z0-9_.-], at most VIRT_NAME_MAX */
	uint8_t uuid[16]; /* all zero: libvirt picks one */
	unsigned vcpus;   /* 1..256 */
	unsigned memory_mib;
	/* Direct kernel boot when kernel is set; "panic=1" is added to the
	 * command line unless it names a panic= of its own. */
	const char *kernel;
	const char *initrd;      /* or NULL */
	const char *cmdline;     /* or NULL */
	const char *disk;        /* root disk (virtio vda), or NULL */
	const char *disk_format; /* "qcow2" (NULL means that) or "raw" */
	const char *console_log; /* serial console appended to this file */
	/* One virtio NIC on a bridge (through a tap libvirt makes, named tap
	 * when that is set), or on a tap made beforehand (tap alone: libvirt
	 * leaves it alone), or none when both are NULL. */
	const char *bridge;
	const char *tap;
	uint8_t mac[6]; /* all zero: libvirt picks one */
	/* Defined and started (stays defined when it stops) rather than
	 * transient (gone when it stops). */
	bool persistent;
};

struct virt_domain {
	char *name;
	uint8_t uuid[16];
	enum virt_state state;
	bool persistent;
};

struct virt_req;
typedef void (*virt_req_cb)(struct virt_req *req);

/*
 * One request. The caller owns the memory, keeps it alive until the callback
 * and may reuse it afterwards (after virt_req_cleanup()).
 */
struct virt_req {
	void *data; /* for the caller */
	/* Results, valid in the callback. */
	int status;      /* 0 or a negative errno (-ENOENT: no such domain) */
	char error[256]; /* libvirt's message when status < 0 */
	enum virt_state state;       /* virt_state_query() */
	struct virt_domain *domains; /* virt_list(), freed by cleanup */
	size_t n_domains;
	/* Private. */
	uv_work_t work;
	struct virt *virt;
	void *conn;
	int op;
	char *name;
	char *text; /* domain XML, list prefix or overlay path */
	char *base;
	char *base_format;
	uint64_t size;
	bool persistent;
	virt_req_cb cb;
	/* Filled by a connect request for the loop side. */
	enum virt_type type;
	int reg_ids[3];
	unsigned gen;
};

/*
 * A driver for URI (e.g. "qemu:///system"), not yet connected; type picks
 * the domain type (VIRT_TYPE_AUTO asks the daemon's capabilities). cb gets
 * every lifecycle event of every domain of that daemon. Starts libvirt's
 * event thread when it is the first driver of the process. Returns NULL
 * only for a bad argument.
 */
struct virt *virt_new(uv_loop_t *loop, const char *uri, enum virt_type type,
                      virt_event_cb cb, void *arg);

/*
 * Stops the driver: waits for its pending requests, drops its event
 * registrations and the connection, and calls cb (may be NULL) from the
 * loop when the memory is gone. No event callback runs after virt_close().
 */
void virt_close(struct virt *virt, void (*cb)(void *arg), void *arg);

/* Opens the connection and registers for events. -EISCONN if connected. */
int virt_connect(struct virt *virt, struct virt_req *req, virt_req_cb cb);

bool virt_is_connected(const struct virt *virt);
/*
 * Uses QEMU TCG from now on (also after a reconnect): for a daemon that
 * lists kvm although /dev/kvm cannot run guests, found when a kvm domain
 * failed to start.
 */
void virt_use_software(struct virt *virt);
/* The domain type in use: "kvm" or "qemu" (known once connected). */
const char *virt_type_name(const struct virt *virt);

/* Defines (if persistent) and starts a domain. -EINVAL for a bad spec. */
int virt_start(struct virt *virt, struct virt_req *req,
               const struct virt_spec *spec, virt_req_cb cb);

/* ACPI power button: the guest decides. STOPPED follows if it obeys. */
int virt_shutdown(struct virt *virt, struct virt_req *req, const char *name,
                  virt_req_cb cb);
/* Kills QEMU (SIGTERM, then SIGKILL). The domain stays defined if it was. */
int virt_destroy(struct virt *virt, struct virt_req *req, const char *name,
                 virt_req_cb cb);
/* Asks the guest to reboot (ACPI); virt_reset() is the hard reset. */
int virt_reboot(struct virt *virt, struct virt_req *req, const char *name,
                virt_req_cb cb);
int virt_reset(struct virt *virt, struct virt_req *req, const char *name,
               virt_req_cb cb);
/* Forgets a persistent domain's definition (it must not be running). */
int virt_undefine(struct virt *virt, struct virt_req *req, const char *name,
                  virt_req_cb cb);
/* req->state; a missing domain is status 0 and VIRT_STATE_NONE. */
int virt_state_query(struct virt *virt, struct virt_req *req, const char *name,
                     virt_req_cb cb);
/* Running and defined domains whose name starts with prefix (re-adoption
 * after a restart) into req->domains. */
int virt_list(struct virt *virt, struct virt_req *req, const char *prefix,
              virt_req_cb cb);

/*
 * A qcow2 copy-on-write overlay at overlay (which must not exist) over base
 * (format "qcow2" or "raw"), size bytes or, when 0, the base's size. Runs
 * qemu-img on the thread pool; needs no connection.
 */
int virt_overlay(struct virt *virt, struct virt_req *req, const char *base,
                 const char *base_format, const char *overlay, uint64_t size,
                 virt_req_cb cb);

/* Frees what a request's results hold (req->domains); the request may then
 * be reused. */
void virt_req_cleanup(struct virt_req *req);

const char *virt_state_name(enum virt_state state);
const char *virt_event_name(enum virt_event_kind kind);
const char *virt_stop_reason_name(enum virt_stop_reason reason);

/*
 * Blocking pieces, for tests and worker threads.
 */

/* The domain XML for spec with every string escaped; *xml is the caller's.
 * Returns 0 or -EINVAL (bad or missing field, or a string that cannot be
 * put in XML). */
int virt_domain_xml(const struct virt_spec *spec, enum virt_type type,
                    char **xml);

/* What virt_overlay() runs: qemu-img create. Returns 0, -EEXIST, -EINVAL,
 * or -EIO with qemu-img's message in err. */
int virt_overlay_create(const char *base, const char *base_format,
                        const char *overlay, uint64_t size, char *err,
                        size_t errlen);

#endif
