/*
 * Internals shared by the instances files; nothing outside peer/instances*.c
 * includes this.
 *
 *   instances.c         the table, records, states, capacity, events, timers
 *   instances_admit.c   the "admit" RPC and the launch pipeline (image,
 *                       disk, domain)
 *   instances_ops.c     the "op" RPC: stop, start, reboot, terminate,
 *                       console, modify
 *   instances_adopt.c   re-adoption after a restart or reconnection, and
 *                       records of local instances written by other peers
 */
#ifndef PEER_INSTANCES_INT_H
#define PEER_INSTANCES_INT_H

#include "instances.h"
#include "peer.h"
#include "rpc.h"
#include "virt.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define INST_SUB             "instances"
#define INST_TICK_MS         1000
#define INST_RECONNECT_MS    3000
#define INST_WATCH_MS        2000
#define INST_STOP_GRACE_MS   20000 /* ACPI shutdown, then destroy */
#define INST_REBOOT_GRACE_MS 10000 /* ACPI reboot, then reset */
#define INST_CONSOLE_MAX     (64 * 1024)
/* A console log past INST_CONSOLE_CAP is cut back to its last
 * INST_CONSOLE_KEEP bytes, checked every INST_CONSOLE_CHECK_MS. */
#define INST_CONSOLE_CAP      (1024 * 1024)
#define INST_CONSOLE_KEEP     (256 * 1024)
#define INST_CONSOLE_CHECK_MS 30000
/* Under --virt-type auto, the first kvm guests must print on their
 * console within this long, or kvm is taken as unusable (see kvm_probe). */
#define INST_KVM_PROBE_MS 20000
/* Store meta: when kvm was found not to run guests here ("" or unset:
 * never), so a restarted peer does not put it on probation again. */
#define INST_META_KVM_FAILED "kvm-failed-at"
/* A started guest without an address after this long gets a state reason
 * saying so (MALLEE_TEST_ADDRESS_DUE_MS shortens it for tests). */
#define INST_ADDRESS_DUE_MS (5 * 60 * 1000)

/* What this host does with an instance's domain, beside its record. */
enum inst_dom {
	INST_DOM_NONE,     /* no domain */
	INST_DOM_STARTING, /* image, disk or virt_start under way */
	INST_DOM_UP,       /* a domain runs */
};

struct peer_instances;

/*
 * One instance of this host that is not terminated. Reference counted:
 * the table holds one reference and each asynchronous step another, so a
 * step that finishes after the instance left the table finds it intact
 * (and gone set).
 */
struct inst {
	struct inst *next;
	struct peer_instances *pi;
	unsigned refs;
	bool gone; /* out of the table */

	struct mc_instance rec; /* as last written */
	char rid[48];           /* record id "ACCOUNT:i-..." */
	uint64_t hlc;           /* stamp of the record as last written/seen */
	char writer[PEER_ID_HEX_LEN + 1];

	enum inst_dom dom;
	uint32_t seq;   /* bumps per launch: a stale launch step knows */
	int early_stop; /* 1 + virt_stop_reason seen while starting, or 0 */
	/* Deadlines in loop time (ms), 0 when none. */
	uint64_t stop_deadline;
	uint64_t reboot_deadline;
	uint64_t kvm_probe_at; /* see kvm_probe() in instances.c */
	uint64_t address_due;  /* see address_overdue() in instances.c */
	bool relaunch;         /* destroyed to start again under TCG */
	bool boot_deferred;    /* to boot again once this peer has synced */
};

struct peer_instances {
	struct peer *p;
	struct virt *virt; /* NULL: --virt-uri none */
	bool connected;
	bool connecting;
	uint64_t next_connect; /* loop time of the next attempt */
	char connect_error[256];
	bool hostnet_started;
	bool kvm_proven; /* a kvm guest has printed on its console */
	bool stopping;
	uv_timer_t tick;
	uint64_t next_watch;
	uint64_t next_console_check;
	uint64_t address_due_ms; /* INST_ADDRESS_DUE_MS, or the test's */
	unsigned handles;        /* tick and virt, open */
	unsigned live;           /* struct inst allocated */
	struct inst *list;
	uint64_t total_vcpu_cfg, total_mem_cfg;
};

/* instances.c */
struct inst *inst_find(struct peer_instances *pi, const char *id);
struct inst *inst_add(struct peer_instances *pi, const struct mc_instance *rec);
/* Drops the table's reference (the instance is terminated). */
void inst_remove(struct inst *in);
void inst_ref(struct inst *in);
void inst_unref(struct inst *in);
/* Writes in->rec durably (updated_ms now) and spreads it. */
int inst_write(struct inst *in);
/* Changes the record's state (and reason, when code is not NULL), writes
 * it and logs one line. */
void inst_set_state(struct inst *in, enum mc_instance_state state,
                    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Terminated: the record written, the lease, disk and capacity released,
 * and the instance out of the table. */
void inst_terminated(struct inst *in, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The domain is gone: finishes a stop or terminate under way. */
void inst_settle(struct inst *in);
/* Recomputes free capacity and tells gossip when it changed. */
void inst_capacity_update(struct peer_instances *pi);
/* What is free now (total - reserved). */
void inst_capacity_free(struct peer_instances *pi, uint32_t *vcpu,
                        uint64_t *mem, uint64_t *disk);
bool inst_hypervisor_ready(struct peer_instances *pi, char *why,
                           size_t why_size);
/* DATA_DIR/instances/ID[/file]; the caller frees. */
char *inst_path(struct peer_instances *pi, const char *id, const char *file);
/* Removes DATA_DIR/instances/ID and what it holds. */
void inst_remove_dir(struct peer_instances *pi, const char *id);
/*
 * An RPC answer {inst, data?}; with in, inst is the record exactly as
 * stored here, with its "hlc" and "writer", so the asking edge can apply
 * it to its own store at once (read-your-writes for the API's caller).
 */
void inst_pack_reply(struct mc_buf *b, const struct inst *in,
                     const struct mc_instance *rec, const void *data,
                     size_t len, bool with_data);

/*
 * A libvirt request about one instance: done runs on the loop (unless the
 * peer is stopping) with the request's results; the instance is held
 * meanwhile. Returns 0, or a negative errno and done never runs.
 */
typedef void (*inst_virt_done)(struct inst *in, struct virt_req *req);
enum inst_virt_op {
	INST_VIRT_SHUTDOWN,
	INST_VIRT_DESTROY,
	INST_VIRT_REBOOT,
	INST_VIRT_RESET,
};
int inst_virt(struct inst *in, enum inst_virt_op op, inst_virt_done done);
/* A destroy whose failure is only logged (STOPPED settles the rest). */
void inst_destroy(struct inst *in, const char *why);

/* A UUID derived from the instance id (the same on every start). */
void inst_uuid(const char *id, uint8_t uuid[16]);

/* instances_admit.c */
void inst_rpc_admit(struct peer *p, struct peer_rpc_req *req, const char *from,
                    const struct mc_val *args);
/* Starts the pipeline: image, disk, domain (state pending). */
void inst_launch(struct inst *in);

/* instances_ops.c */
void inst_rpc_op(struct peer *p, struct peer_rpc_req *req, const char *from,
                 const struct mc_val *args);

/* instances_adopt.c */
/* Loads this host's instance records into the table (at start). */
int inst_load(struct peer_instances *pi);
/* Compares the table with the daemon's domains (after each connection). */
void inst_adopt(struct peer_instances *pi);
/* Acts on records of local instances that other peers wrote. */
void inst_watch(struct peer_instances *pi);
/* Boots the instances re-adoption left for after the first sync. */
void inst_adopt_deferred(struct peer_instances *pi);

#endif
