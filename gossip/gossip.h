/*
 * Membership by gossip: SWIM with the Lifeguard refinements, as a state
 * machine with no I/O of its own. The caller feeds it received packets
 * (gossip_recv) and the passing of time (gossip_tick), both with the current
 * time in milliseconds; it answers through callbacks: packets to send,
 * membership events, and user broadcasts received. It never reads a clock, a
 * socket or a random source (its PRNG is seeded from the config), so the
 * daemon and the simulator run the same code, and a simulation is
 * reproducible from its seed.
 *
 * Callbacks run synchronously from inside the gossip_* call that caused them
 * and must not call back into the same instance, except for the read-only
 * getters (gossip_member_get, gossip_counters, ...).
 *
 * Anything that needs a stream (join and anti-entropy push-pull) is the
 * caller's: it moves the bytes of gossip_snapshot_encode to the other side,
 * which hands them to gossip_snapshot_merge.
 */
#ifndef MALLEE_GOSSIP_H
#define MALLEE_GOSSIP_H

#include "addr.h"
#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOSSIP_ID_LEN        16 /* hex digits of a node id */
#define GOSSIP_NAME_MAX      64 /* sizes include the NUL */
#define GOSSIP_ZONE_MAX      32
#define GOSSIP_VERSION_MAX   32
#define GOSSIP_UKEY_MAX      64   /* user broadcast key */
#define GOSSIP_USER_MAX      1024 /* user broadcast body */
#define GOSSIP_PACKET_MAX    1400 /* default and largest UDP payload */
#define GOSSIP_KEYRING_MAX   4
#define GOSSIP_KEY_BYTES     32
#define GOSSIP_SEAL_OVERHEAD (17 + 24 + 16) /* header, nonce, tag */

enum gossip_state {
	GOSSIP_ALIVE,
	GOSSIP_SUSPECT,
	GOSSIP_DEAD,
	GOSSIP_LEFT,
};

enum gossip_event {
	GOSSIP_EV_JOINED, /* first seen, or back after dead/left */
	GOSSIP_EV_ALIVE,  /* suspect member refuted */
	GOSSIP_EV_SUSPECT,
	GOSSIP_EV_DEAD,
	GOSSIP_EV_LEFT,
	GOSSIP_EV_UPDATED, /* node info changed (capacity, ...) */
};

enum gossip_drop {
	GOSSIP_DROP_BAD_KEY,   /* no key of the ring opens it, or forged */
	GOSSIP_DROP_TRUNCATED, /* shorter than any valid packet */
	GOSSIP_DROP_MALFORMED, /* authentic but does not decode */
	GOSSIP_DROP_REPLAY,    /* sequence already seen or too old */
	GOSSIP_DROP_TOO_BIG,
	GOSSIP_DROP_NOT_FOR_US, /* ping for another node id */
	GOSSIP_DROP_MAX,
};

struct gossip_capacity {
	uint32_t vcpu_total;
	uint32_t vcpu_free;
	uint64_t mem_mib_total;
	uint64_t mem_mib_free;
	uint64_t disk_mib_total;
	uint64_t disk_mib_free;
};

/* What a member advertises about itself. */
struct gossip_node {
	char id[GOSSIP_ID_LEN + 1]; /* 16 lowercase hex digits */
	char name[GOSSIP_NAME_MAX];
	struct mc_addr addr; /* where its gossip packets go */
	char zone[GOSSIP_ZONE_MAX];
	uint32_t roles;
	struct gossip_capacity cap;
	uint8_t sign_pk[32]; /* Ed25519 identity */
	uint8_t box_pk[32];  /* X25519, for tunnels */
	char version[GOSSIP_VERSION_MAX];
};

/*
 * A snapshot of one member's entry; node is valid until the call returns.
 * reached says whether this node ever had a direct ack from the member: a
 * path to it exists from here (the overlay may send to it directly), while
 * one never reached is only known through others, e.g. a private host of
 * another cluster, to be reached through a gateway. Only members this node
 * has reached are suspected by its own failed probes; the others' liveness
 * is judged by those who reach them and learnt by gossip. Ourselves: true.
 */
struct gossip_member {
	const struct gossip_node *node;
	uint32_t incarnation;
	enum gossip_state state;
	uint64_t state_change_ms;
	bool reached;
};

struct gossip_counters {
	uint64_t packets_in;
	uint64_t packets_out;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t suspicions; /* members this node suspected itself */
	uint64_t refuted;    /* accusations against this node it refuted */
	uint64_t declared_dead;
	/* Failed probes of members never reached, which raise no suspicion. */
	uint64_t unreached_probes;
	uint64_t broadcasts_queued;
	uint64_t drops[GOSSIP_DROP_MAX];
};

struct gossip_callbacks {
	void *ctx;
	/* Sends one datagram; pkt is borrowed for the call. */
	void (*send)(void *ctx, const struct mc_addr *to, const uint8_t *pkt,
	             size_t len);
	/* May be NULL. m is borrowed for the call. */
	void (*event)(void *ctx, enum gossip_event ev,
	              const struct gossip_member *m);
	/*
	 * May be NULL. A user broadcast arrived; return true when it was new
	 * to the receiver, so gossip passes it on (it keeps no history).
	 */
	bool (*user)(void *ctx, const char *key, const uint8_t *body,
	             size_t len);
};

/* Shares node infos between instances in one thread (the simulator). */
struct gossip_intern;

struct gossip_config {
	struct gossip_node local;
	uint32_t incarnation; /* to start from, e.g. one saved on disk */
	uint64_t seed;        /* PRNG seed: randomness comes from the caller */
	uint64_t epoch_ms;    /* wall clock at start: bases packet sequences */
	uint32_t probe_interval_ms;
	uint32_t probe_timeout_ms;
	uint32_t gossip_interval_ms;
	uint32_t gossip_nodes;       /* peers per gossip round */
	uint32_t indirect_checks;    /* k of ping-req */
	uint32_t suspicion_mult;     /* min timeout = mult * log10(N) * probe */
	uint32_t suspicion_max_mult; /* max timeout = this * min */
	uint32_t retransmit_mult;    /* transmits = mult * ceil(log10(N+1)) */
	uint32_t awareness_max;      /* Lifeguard local health, 1..8 */
	uint32_t gossip_to_dead_ms;  /* keep telling the dead they are dead */
	uint32_t reap_ms;            /* forget dead/left members after this */
	uint32_t packet_max;         /* <= GOSSIP_PACKET_MAX */
	struct gossip_callbacks cb;
	struct gossip_intern *intern; /* NULL: the instance keeps its own */
	uint32_t members_hint;        /* expected cluster size, or 0 */
};

struct gossip;

/* memberlist's LAN profile; local, seed and callbacks left zero. */
void gossip_config_default(struct gossip_config *c);

/* NULL when the config is invalid (bad id, zero intervals, ...). */
struct gossip *gossip_new(const struct gossip_config *c, uint64_t now_ms);
void gossip_free(struct gossip *g);

/*
 * Keyring. With no key installed packets go out in the clear (tests and
 * the simulator); with keys, they are sealed with the primary and opened
 * with any. gossip_keyring_add installs a key (the first becomes primary);
 * gossip_keyring_use makes an installed key primary; gossip_keyring_remove
 * refuses (-EBUSY) to remove the primary. -EEXIST, -ENOENT, -ENOSPC.
 */
int gossip_keyring_add(struct gossip *g, const uint8_t key[GOSSIP_KEY_BYTES]);
int gossip_keyring_use(struct gossip *g, const uint8_t key[GOSSIP_KEY_BYTES]);
int gossip_keyring_remove(struct gossip *g,
                          const uint8_t key[GOSSIP_KEY_BYTES]);

/* Feeds one received datagram (borrowed). Bad input is counted, no more. */
void gossip_recv(struct gossip *g, const struct mc_addr *from,
                 const uint8_t *pkt, size_t len, uint64_t now_ms);
/* Runs the timers due at now_ms. */
void gossip_tick(struct gossip *g, uint64_t now_ms);
/* When gossip_tick next has work to do. */
uint64_t gossip_next_deadline(const struct gossip *g);

/* Sends our alive message to addr: a UDP join hint beside push-pull. */
void gossip_announce(struct gossip *g, const struct mc_addr *addr,
                     uint64_t now_ms);

/*
 * Changes what we advertise (node->id must stay the same): bumps our
 * incarnation and broadcasts it. 0 or -EINVAL.
 */
int gossip_set_local_node(struct gossip *g, const struct gossip_node *node,
                          uint64_t now_ms);

/*
 * Queues opaque bytes for epidemic broadcast under key; a newer broadcast
 * with the same key replaces an older one still queued. 0, -EINVAL for an
 * empty or long key, -EMSGSIZE for a body over GOSSIP_USER_MAX.
 */
int gossip_broadcast_user(struct gossip *g, const char *key,
                          const uint8_t *body, size_t len);

/* Announces a graceful leave; keep ticking until gossip_leave_sent. */
void gossip_leave(struct gossip *g, uint64_t now_ms);
bool gossip_leave_sent(const struct gossip *g);

/* The full member list, for push-pull over a stream. Appends to out. */
void gossip_snapshot_encode(struct gossip *g, struct mc_buf *out);
/* Merges a peer's snapshot as memberlist does. 0 or -EBADMSG. */
int gossip_snapshot_merge(struct gossip *g, const uint8_t *p, size_t len,
                          uint64_t now_ms);

/*
 * Inserts node as alive without disseminating it or raising an event: for
 * simulators and tests that start a cluster in steady state, so the member
 * counts as reached (steady state: it has been probed before).
 */
void gossip_seed(struct gossip *g, const struct gossip_node *node,
                 uint32_t incarnation, uint64_t now_ms);

/* Fills *out for the member with this id; false when unknown. */
bool gossip_member_get(const struct gossip *g, const char *id,
                       struct gossip_member *out);
/* Calls fn for every member, ourselves included. */
void gossip_members_foreach(const struct gossip *g,
                            void (*fn)(void *ctx,
                                       const struct gossip_member *m),
                            void *ctx);
/* Members by state, ourselves included; counts may be NULL. */
uint32_t gossip_num_members(const struct gossip *g,
                            uint32_t counts[GOSSIP_LEFT + 1]);
const struct gossip_node *gossip_local_node(const struct gossip *g);
uint32_t gossip_incarnation(const struct gossip *g);
/* Lifeguard local health: 0 is healthy, awareness_max - 1 the worst. */
uint32_t gossip_health(const struct gossip *g);
const struct gossip_counters *gossip_counters(const struct gossip *g);

struct gossip_intern *gossip_intern_new(void);
/* Drops the caller's reference; instances hold their own. */
void gossip_intern_unref(struct gossip_intern *in);

const char *gossip_state_name(enum gossip_state s);
const char *gossip_event_name(enum gossip_event e);
const char *gossip_drop_name(enum gossip_drop d);
/* True for exactly 16 lowercase hex digits. */
bool gossip_id_valid(const char *id);

#endif
