/*
 * What the files of ovl/ share. No other folder includes this, except the
 * unit tests that check the replay window and counter limits directly.
 */
#ifndef MALLEE_OVL_INT_H
#define MALLEE_OVL_INT_H

#include "ovl.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Timing policy, as WireGuard's (milliseconds). */
#define OVL_REKEY_AFTER_MS    120000 /* the initiator starts a new one */
#define OVL_REJECT_AFTER_MS   180000 /* a session is unusable after */
#define OVL_REKEY_TIMEOUT_MS  5000   /* retry an unanswered initiation */
#define OVL_REKEY_ATTEMPT_MS  90000  /* give up retrying after */
#define OVL_REKEY_AFTER_MSGS  (1ull << 60)
#define OVL_REJECT_AFTER_MSGS (UINT64_MAX - (1ull << 13) - 1)
#define OVL_PREVIOUS_KEEP_MS  10000 /* old session kept for late packets */

/* The replay window: a ring of 64-bit words, one bit per counter. */
#define OVL_REPLAY_WORDS  256 /* a power of two */
#define OVL_REPLAY_BITS   (OVL_REPLAY_WORDS * 64)
#define OVL_REPLAY_WINDOW (OVL_REPLAY_BITS - 64) /* 16,320 packets */

struct ovl_replay {
	uint64_t greatest; /* highest counter accepted + 1; 0 for none */
	uint64_t bitmap[OVL_REPLAY_WORDS];
};

void ovl_replay_init(struct ovl_replay *r);
/* Whether counter could be new (no change), for the check before decrypt. */
bool ovl_replay_check(const struct ovl_replay *r, uint64_t counter);
/* Marks counter seen; false if it was seen or is too old. */
bool ovl_replay_update(struct ovl_replay *r, uint64_t counter);

/* A session: two keys from one completed handshake. */
struct ovl_session {
	struct ovl_session *index_next; /* in the core's index table */
	struct ovl_tunnel *tunnel;
	uint32_t local_index; /* the peer writes this in its packets to us */
	uint32_t remote_index;
	bool keyed; /* false while it only holds a handshake's index */
	bool initiator;
	bool confirmed; /* the responder may send only after the first packet */
	uint64_t created_ms;
	_Atomic uint64_t send_counter;
	uint8_t send_key[OVL_KEY_BYTES];
	uint8_t recv_key[OVL_KEY_BYTES];
	struct ovl_replay replay;
};

enum ovl_hs_state {
	OVL_HS_NONE,
	OVL_HS_INIT_SENT,     /* we initiated, awaiting the response */
	OVL_HS_INIT_RECEIVED, /* responder mid-way (only inside one call) */
};

/* Handshake state: the Noise chaining key and hash, ephemeral key. */
struct ovl_handshake {
	enum ovl_hs_state state;
	struct ovl_session *index_slot; /* placeholder holding our index */
	uint32_t local_index;
	uint32_t remote_index;
	uint8_t chain[32];
	uint8_t hash[32];
	uint8_t eph_sk[32];
	uint8_t eph_pk[32];
	uint8_t remote_eph[32];
};

struct ovl_tunnel {
	struct ovl_tunnel *next;
	struct ovl_core *core;
	void *user;
	uint8_t remote_pk[OVL_KEY_BYTES];
	uint8_t ss[32];       /* DH(our static, their static), precomputed */
	uint8_t mac1_key[32]; /* for initiations we send them */
	uint8_t last_timestamp[12]; /* greatest accepted from them */
	struct ovl_handshake hs;
	uint64_t hs_first_ms; /* when the current attempt series began */
	uint64_t hs_sent_ms;
	bool want_handshake;
	struct ovl_session *current, *previous, *next_session;
	uint64_t previous_since_ms;
};

#define OVL_INDEX_BUCKETS 1024

struct ovl_core {
	uint8_t sk[OVL_KEY_BYTES];
	uint8_t pk[OVL_KEY_BYTES];
	uint8_t mac1_key[32]; /* for initiations and responses sent to us */
	struct ovl_tunnel *tunnels;
	struct ovl_session *index[OVL_INDEX_BUCKETS];
	/* Counters written by the threads of the datapath: atomic. */
	_Atomic uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	_Atomic uint64_t handshakes_sent, handshakes_done;
	_Atomic uint64_t drops[OVL_DROP_MAX];
};

/* noise.c: the handshake messages and the AEAD of transport packets. */
int ovl_noise_create_initiation(struct ovl_core *core, struct ovl_tunnel *t,
                                uint64_t wall_ns, uint8_t *out);
/* On success returns the tunnel, its handshake filled for the response. */
struct ovl_tunnel *ovl_noise_consume_initiation(struct ovl_core *core,
                                                const uint8_t *msg, size_t len,
                                                enum ovl_drop *drop);
int ovl_noise_create_response(struct ovl_core *core, struct ovl_tunnel *t,
                              uint8_t *out);
struct ovl_tunnel *ovl_noise_consume_response(struct ovl_core *core,
                                              const uint8_t *msg, size_t len,
                                              enum ovl_drop *drop);
/* Derives the session keys of a finished handshake and wipes it. */
void ovl_noise_derive(struct ovl_handshake *hs, struct ovl_session *s);
void ovl_noise_mac1_key(uint8_t out[32], const uint8_t pk[OVL_KEY_BYTES]);
bool ovl_noise_dh(uint8_t out[32], const uint8_t sk[32], const uint8_t pk[32]);
void ovl_noise_keypair(uint8_t sk[32], uint8_t pk[32]);
void ovl_noise_public(uint8_t pk[32], const uint8_t sk[32]);
uint32_t ovl_noise_random_index(void);
void ovl_noise_wipe(void *p, size_t n);
void ovl_aead_seal(uint8_t *pkt, size_t len, const uint8_t key[32],
                   uint64_t counter);
bool ovl_aead_open(uint8_t *pkt, size_t len, const uint8_t key[32],
                   uint64_t counter);

/* tunnel.c: sessions and the index table. */
struct ovl_session *ovl_index_find(struct ovl_core *core, uint32_t index);
uint32_t ovl_index_reserve(struct ovl_core *core, struct ovl_session *s);
void ovl_index_remove(struct ovl_core *core, struct ovl_session *s);
void ovl_count_drop(struct ovl_core *core, enum ovl_drop reason);
/* Every handshake state change goes through here, and is logged. */
void ovl_hs_set_state(struct ovl_tunnel *t, enum ovl_hs_state state);

/* offload.c: GSO super-packets cut and merged by hand (with vnet headers). */
/*
 * Cuts what the TUN gave (a virtio_net_hdr, then an IP packet) into at most
 * max_out packets of up to seg_cap bytes each, completing checksums.
 * Returns the count, or -1 for something we cannot cut.
 */
int ovl_offload_split(const uint8_t *pkt, size_t len, uint8_t *const *out,
                      size_t *out_len, int max_out, size_t seg_cap);
/*
 * Merges the longest run of TCP segments at the start of pkts into out (a
 * virtio_net_hdr and one super-packet). Returns how many it took; 1 means
 * nothing was written and pkts[0] goes alone.
 */
int ovl_offload_merge(uint8_t *const *pkts, const size_t *lens, int n,
                      uint8_t *out, size_t cap, size_t *out_len);
/* An ICMP "fragmentation needed" from src back to pkt's sender. */
int ovl_icmp_frag_needed(const uint8_t *pkt, size_t len, unsigned mtu,
                         const uint8_t src[4], uint8_t *out, size_t cap);

/* tun.c */
/* Opens a TUN (IFF_NO_PI), with vnet headers and TSO when offload is asked
 * and the kernel takes it; *offload says which. Returns the fd or -errno. */
int ovl_tun_open(const char *name, bool want_offload, bool *offload);

/* netlink.c: the only file that includes libnl's headers. */
int ovl_nl_link_up(const char *ifname, unsigned mtu, const char *cidr);
int ovl_nl_route(const char *ifname, const char *cidr, bool add);

/* relay.c: the relay header (ovl.h describes the layout). */
struct ovl_relay_header {
	uint8_t hops; /* gateways it may still pass */
	uint8_t dst[OVL_PEER_ID_BYTES];
	uint8_t src[OVL_PEER_ID_BYTES];
};

/*
 * Checks a relayed packet: the header, then that what follows is a sealed
 * packet of a known type and its exact or minimum size. Returns
 * OVL_RELAY_LEN (where the inner packet starts) or -EBADMSG.
 */
int ovl_relay_decode(const uint8_t *pkt, size_t len,
                     struct ovl_relay_header *out);
void ovl_relay_encode(uint8_t out[OVL_RELAY_LEN],
                      const struct ovl_relay_header *h);

/* path.c: which way a peer's packets go, and when to move (no I/O). */
enum ovl_path_kind {
	OVL_PATH_NONE,
	OVL_PATH_DIRECT,   /* to the peer's own endpoint */
	OVL_PATH_VIA,      /* relayed by a gateway peer of our table */
	OVL_PATH_VIA_ADDR, /* relayed by whoever is at addr (learned only) */
};

struct ovl_path {
	enum ovl_path_kind kind;
	uint8_t via[OVL_KEY_BYTES];
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

enum ovl_path_action {
	OVL_PATH_ACT_ROTATED = 1,   /* moved on: initiate on the new path */
	OVL_PATH_ACT_KEEPALIVE = 2, /* send a keepalive */
	OVL_PATH_ACT_PROBE = 4,     /* send an initiation on the direct path */
};

struct ovl_pathset {
	struct ovl_path list[OVL_VIA_MAX + 1];
	int n;
	int cur; /* index into list, or -1 for learned */
	struct ovl_path learned;
	uint64_t hs_since_ms;   /* our initiation unanswered since; 0 none */
	uint64_t data_since_ms; /* data sent, nothing heard back since */
	uint64_t last_tx_ms, last_rx_data_ms;
	uint64_t probe_ms; /* last direct probe, or when we left direct */
	uint64_t changes;
};

void ovl_paths_init(struct ovl_pathset *ps);
/* Direct first when direct_ok, then the gateways; starts on the first. */
void ovl_paths_set(struct ovl_pathset *ps, bool direct_ok,
                   const uint8_t (*via)[OVL_KEY_BYTES], size_t n_via,
                   uint64_t now_ms);
const struct ovl_path *ovl_paths_current(const struct ovl_pathset *ps);
void ovl_paths_sent(struct ovl_pathset *ps, uint64_t now_ms, bool data);
void ovl_paths_initiated(struct ovl_pathset *ps, uint64_t now_ms);
/* An authentic packet came by arrival; returns whether the path moved. */
bool ovl_paths_received(struct ovl_pathset *ps, uint64_t now_ms, bool data,
                        const struct ovl_path *arrival);
/*
 * A relay saw the peer's packets come by arrival, unauthenticated: moves
 * there only if it is one of the configured paths, timers untouched.
 */
bool ovl_paths_learn(struct ovl_pathset *ps, uint64_t now_ms,
                     const struct ovl_path *arrival);
/* Moves to the next configured path; returns whether it changed. */
bool ovl_paths_rotate(struct ovl_pathset *ps, uint64_t now_ms);
/* The timers: a mask of enum ovl_path_action for the caller to carry out. */
unsigned ovl_paths_tick(struct ovl_pathset *ps, uint64_t now_ms);
bool ovl_path_equal(const struct ovl_path *a, const struct ovl_path *b);
/* Whether the configured list holds gateway pk (for learning at relays). */
bool ovl_paths_has_via(const struct ovl_pathset *ps,
                       const uint8_t pk[OVL_KEY_BYTES]);
void ovl_path_describe(const struct ovl_path *p, char *out, size_t n);

/* prefix.c: overlay prefixes and the peer each routes to. */
struct ovl_prefix {
	uint8_t family; /* 4 or 6 */
	uint8_t bits;
	uint8_t addr[16];
	void *peer;
};

struct ovl_prefix_table {
	struct ovl_prefix *v;
	size_t n, cap;
};

int ovl_prefix_parse(const char *cidr, struct ovl_prefix *out);
void ovl_prefix_add(struct ovl_prefix_table *tab, const struct ovl_prefix *p);
bool ovl_prefix_remove(struct ovl_prefix_table *tab,
                       const struct ovl_prefix *p);
void ovl_prefix_remove_peer(struct ovl_prefix_table *tab, void *peer);
/* The peer of the longest prefix holding the packet's address (dst or
 * src), or NULL. */
void *ovl_prefix_lookup(const struct ovl_prefix_table *tab, const uint8_t *ip,
                        size_t len, bool source);
void ovl_prefix_free(struct ovl_prefix_table *tab);

#endif
