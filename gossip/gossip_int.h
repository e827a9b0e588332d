/*
 * What the files of gossip/ share. No other folder includes this.
 *
 * Members are kept in one vector of compact entries (the simulator holds
 * N^2 of them) with an open-addressed index by id; what a member advertises
 * lives in reference-counted, interned node infos, so N instances in one
 * process share one copy of each.
 */
#ifndef MALLEE_GOSSIP_INT_H
#define MALLEE_GOSSIP_INT_H

#include "gossip.h"
#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

#define GOSSIP_LEVELS        64  /* cap on the retransmit limit */
#define GOSSIP_CONFIRM_MAX   8   /* cap on Lifeguard's K */
#define GOSSIP_RELAYS_MAX    256 /* ping-reqs being served at once */
#define GOSSIP_ENVELOPE_MAX  9   /* {"v":1,"m":[...]} headers */
#define GOSSIP_MSGS_MAX      255 /* messages in one packet */
#define GOSSIP_REPLAY_WINDOW 64
#define GOSSIP_REPLAY_MAX    65536 /* senders remembered */
#define GOSSIP_RECV_MAX      65536
#define GOSSIP_REACH_PINGS   16 /* reach pings outstanding at once */
#define GOSSIP_REACH_SCAN    64 /* entries looked at per gossip round */

enum gossip_msg_type {
	GOSSIP_MSG_PING = 1,
	GOSSIP_MSG_ACK,
	GOSSIP_MSG_PING_REQ,
	GOSSIP_MSG_NACK,
	GOSSIP_MSG_ALIVE,
	GOSSIP_MSG_SUSPECT,
	GOSSIP_MSG_DEAD,
	GOSSIP_MSG_USER,
	GOSSIP_MSG_MAX,
};

/* One decoded message; pointers borrow from the packet's mc_doc. */
struct gossip_msg {
	enum gossip_msg_type type;
	uint32_t seq;
	uint32_t incarnation;
	uint64_t node; /* ping/ping-req target, suspect/dead subject */
	uint64_t from; /* suspect/dead accuser */
	bool want_nack;
	bool quiet;              /* ping: ack without broadcasts */
	struct mc_addr addr;     /* ping-req target */
	struct gossip_node info; /* alive */
	uint8_t state;           /* snapshot entries only */
	char ukey[GOSSIP_UKEY_MAX];
	const uint8_t *body;
	size_t body_len;
};

/* An interned node info. */
struct gossip_nref {
	struct gossip_nref *next;
	uint64_t key;
	uint32_t refs;
	struct gossip_node node;
};

struct gossip_intern {
	uint32_t users;
	uint32_t count;
	uint32_t nbuckets;
	struct gossip_nref **buckets;
};

struct gossip_suspicion {
	struct gossip_suspicion *next;
	uint64_t key;
	uint32_t incarnation;
	uint32_t k; /* confirmations that bring the timeout down to min */
	uint32_t n; /* independent confirmations so far */
	uint64_t start_ms;
	uint64_t min_ms;
	uint64_t max_ms;
	uint64_t deadline_ms;
	uint64_t accusers[GOSSIP_CONFIRM_MAX + 1];
};

/*
 * Whether this node can reach a member directly, learnt from our own pings:
 * a member is suspected by our failed probes only once reached, so members
 * behind other clusters' gateways do not flap.
 */
enum gossip_reach {
	GOSSIP_REACH_UNTRIED, /* no direct ping of ours has been answered
	                         or timed out yet */
	GOSSIP_REACH_NEVER,   /* direct pings timed out, none was answered */
	GOSSIP_REACH_YES,     /* a direct ack came back at least once */
};

/* 40 bytes: the simulator holds N^2 of these. */
struct gossip_entry {
	uint64_t key;
	struct gossip_nref *info;
	struct gossip_suspicion *susp;
	uint64_t state_change_ms;
	uint32_t incarnation;
	uint8_t state;
	uint8_t reach; /* enum gossip_reach */
};

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct gossip_entry) == 40,
               "gossip_entry grew: the simulator holds N^2 of them");
#endif

struct gossip_probe {
	bool active;
	bool acked;
	bool indirect_sent;
	uint64_t key;
	uint32_t seq;     /* of the direct ping: its ack proves a path */
	uint32_t ind_seq; /* of the ping-reqs, 0 before they go */
	uint32_t expected_nacks;
	uint32_t nacks;
	uint64_t timeout_ms; /* direct ack due; then ping-req */
	uint64_t end_ms;     /* any ack due; then suspect */
};

/* A ping we sent on behalf of a ping-req. */
struct gossip_relay {
	uint32_t seq;
	uint32_t req_seq;
	bool want_nack;
	uint64_t target;
	uint64_t deadline_ms;
	struct mc_addr requester;
};

/* A ping outside the probe cycle, to learn whether a new member is reached. */
struct gossip_reach_ping {
	uint32_t seq;
	uint64_t key;
	uint64_t deadline_ms;
};

enum {
	GOSSIP_BC_MEMBER = 1,
	GOSSIP_BC_USER = 2,
	GOSSIP_BC_LEAVE = 4,
};

struct gossip_bcast {
	struct gossip_bcast *prev, *next; /* in its transmit level */
	struct gossip_bcast *hnext;       /* in its hash bucket */
	uint64_t hash;
	uint32_t transmits;
	uint16_t len;
	uint8_t keylen;
	uint8_t flags;
	uint8_t key[GOSSIP_UKEY_MAX + 1];
	uint8_t data[];
};

/* memberlist's TransmitLimitedQueue: fewest transmits first. */
struct gossip_dissem {
	struct gossip_bcast *level[GOSSIP_LEVELS];
	struct gossip_bcast **buckets;
	uint32_t nbuckets;
	uint32_t count;
};

struct gossip_replay {
	uint64_t sender;
	uint64_t top;
	uint64_t bitmap;
	uint64_t last_ms;
	bool used;
};

struct gossip_seal {
	uint8_t keys[GOSSIP_KEYRING_MAX][GOSSIP_KEY_BYTES]; /* [0] primary */
	uint32_t nkeys;
	uint64_t self_key;
	uint64_t seq;
	struct gossip_replay *tab;
	uint32_t tab_size;
	uint32_t tab_count;
};

struct gossip {
	struct gossip_config cfg;
	struct gossip_intern *intern;
	struct gossip_nref *self_info;
	uint64_t self_key;
	uint32_t incarnation;
	bool leaving;
	uint32_t leave_sends;
	uint64_t rng[4];

	struct gossip_entry *ents;
	uint32_t nents;
	uint32_t cap_ents;
	uint32_t *slots; /* index into ents, or UINT32_MAX */
	uint32_t nslots;

	uint32_t probe_index;
	struct gossip_probe probe;
	uint32_t next_seq;
	uint64_t next_probe_ms;
	uint64_t next_gossip_ms;
	uint32_t awareness;
	struct gossip_suspicion *suspicions;
	struct gossip_relay relays[GOSSIP_RELAYS_MAX];
	uint32_t nrelays;
	struct gossip_reach_ping reach_pings[GOSSIP_REACH_PINGS];
	uint32_t nreach_pings;
	uint32_t nuntried;     /* entries in GOSSIP_REACH_UNTRIED */
	uint32_t reach_cursor; /* where the search for untried ones goes on */

	struct gossip_dissem dissem;
	struct gossip_seal seal;
	struct gossip_counters ctr;

	/* Scratch for building packets, reused; never nested. */
	struct mc_buf msgs;
	struct mc_buf bcasts;
	struct mc_buf plain;
	struct mc_buf sealed;
	struct mc_buf opened;
};

/* gossip.c */
uint64_t gossip_rand(struct gossip *g);
uint32_t gossip_rand_below(struct gossip *g, uint32_t n);
void gossip_send(struct gossip *g, const struct mc_addr *to, uint32_t nmsgs);
/* The same without broadcasts: for members we may not reach. */
void gossip_send_only(struct gossip *g, const struct mc_addr *to,
                      uint32_t nmsgs);
uint64_t gossip_id_key(const char *id);
void gossip_key_id(uint64_t key, char out[GOSSIP_ID_LEN + 1]);
void gossip_dispatch(struct gossip *g, const struct mc_addr *from,
                     const struct gossip_msg *m, uint64_t now_ms);

/* member.c */
struct gossip_entry *gossip_entry_find(const struct gossip *g, uint64_t key);
void gossip_entries_reserve(struct gossip *g, uint32_t n);
struct gossip_entry *gossip_entry_add(struct gossip *g, uint64_t key);
void gossip_entry_remove(struct gossip *g, struct gossip_entry *e);
void gossip_entries_reset(struct gossip *g, uint64_t now_ms);
void gossip_set_state(struct gossip *g, struct gossip_entry *e,
                      enum gossip_state st, uint64_t now_ms);
void gossip_set_reach(struct gossip *g, struct gossip_entry *e,
                      enum gossip_reach r);
void gossip_emit(struct gossip *g, enum gossip_event ev,
                 const struct gossip_entry *e);
void gossip_on_alive(struct gossip *g, const struct gossip_msg *m,
                     uint64_t now_ms);
void gossip_on_suspect(struct gossip *g, uint32_t inc, uint64_t node,
                       uint64_t from, uint64_t now_ms);
void gossip_on_dead(struct gossip *g, uint32_t inc, uint64_t node,
                    uint64_t from, uint64_t now_ms);
void gossip_queue_alive(struct gossip *g, const struct gossip_entry *e);
struct gossip_nref *gossip_intern_get(struct gossip_intern *in,
                                      const struct gossip_node *node);
void gossip_intern_put(struct gossip_intern *in, struct gossip_nref *r);

/* probe.c: all timing policy */
void gossip_timers_init(struct gossip *g, uint64_t now_ms);
void gossip_timers_run(struct gossip *g, uint64_t now_ms);
uint64_t gossip_timers_next(const struct gossip *g);
void gossip_probe_on_ack(struct gossip *g, uint32_t seq, uint64_t now_ms);
void gossip_probe_on_nack(struct gossip *g, uint32_t seq);
void gossip_relay_start(struct gossip *g, const struct mc_addr *requester,
                        const struct gossip_msg *m, uint64_t now_ms);
void gossip_awareness_delta(struct gossip *g, int delta);
uint64_t gossip_scale(const struct gossip *g, uint64_t ms);
void gossip_suspicion_start(struct gossip *g, struct gossip_entry *e,
                            uint64_t from, uint64_t now_ms);
bool gossip_suspicion_confirm(struct gossip *g, struct gossip_entry *e,
                              uint64_t from, uint64_t now_ms);
void gossip_suspicion_stop(struct gossip *g, struct gossip_entry *e);

/* dissem.c */
void gossip_dissem_init(struct gossip_dissem *d);
void gossip_dissem_free(struct gossip_dissem *d);
void gossip_dissem_put(struct gossip_dissem *d, const uint8_t *key,
                       size_t keylen, uint8_t flags, const uint8_t *data,
                       size_t len);
uint32_t gossip_dissem_fill(struct gossip_dissem *d, uint32_t limit,
                            struct mc_buf *out, size_t space, uint32_t max_msgs,
                            uint32_t *flags_sent);
uint32_t gossip_retransmit_limit(const struct gossip *g);

/* codec.c */
void gossip_enc_ping(struct mc_buf *b, uint32_t seq, uint64_t target,
                     bool quiet);
void gossip_enc_seq(struct mc_buf *b, enum gossip_msg_type t, uint32_t seq);
void gossip_enc_ping_req(struct mc_buf *b, uint32_t seq, uint64_t target,
                         const struct mc_addr *addr, bool want_nack);
void gossip_enc_alive(struct mc_buf *b, uint32_t inc,
                      const struct gossip_node *n, int state);
void gossip_enc_accuse(struct mc_buf *b, enum gossip_msg_type t, uint32_t inc,
                       uint64_t node, uint64_t from);
void gossip_enc_user(struct mc_buf *b, const char *key, const uint8_t *body,
                     size_t len);
void gossip_enc_envelope(struct mc_buf *b, uint32_t nmsgs);
int gossip_dec_msg(const struct mc_val *v, struct gossip_msg *m);
int gossip_dec_envelope(const struct mc_val *root, const struct mc_val **msgs,
                        uint32_t *n);

/* seal.c */
void gossip_seal_init(struct gossip_seal *s, uint64_t self_key,
                      uint64_t epoch_ms);
void gossip_seal_free(struct gossip_seal *s);
void gossip_seal_wrap(struct gossip_seal *s, struct mc_buf *out,
                      const uint8_t *plain, size_t len);
int gossip_seal_unwrap(struct gossip_seal *s, const uint8_t *pkt, size_t len,
                       struct mc_buf *plain, uint64_t now_ms,
                       enum gossip_drop *why);

#endif
