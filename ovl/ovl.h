/*
 * The overlay's tunnels between peers, in two layers.
 *
 * The core (ovl_core_*, ovl_tunnel_*) is a state machine with no I/O: a
 * Noise-IK-like handshake between two peers' static X25519 keys, sessions of
 * two ChaCha20-Poly1305 keys with counter nonces, a replay window, rekeying
 * and expiry. The caller hands it received UDP payloads and the time, and
 * gets back plaintext, replies to send, or a drop reason that is counted.
 *
 * The datapath (ovl_dp_*) is one host's use of the core: a TUN device, a UDP
 * socket (port 7701 by default), a table of peers with their endpoints and
 * the overlay prefixes routed to them, kernel routes through netlink, all
 * run on threads of its own. The peer calls it to add and remove peers and
 * prefixes and to read counters; every call is safe from any thread.
 */
#ifndef MALLEE_OVL_H
#define MALLEE_OVL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define OVL_KEY_BYTES      32
#define OVL_PORT           7701
#define OVL_HEADER_LEN     16 /* type, 3 zero bytes, receiver index, counter */
#define OVL_TAG_LEN        16
#define OVL_OVERHEAD       (OVL_HEADER_LEN + OVL_TAG_LEN)
#define OVL_INITIATION_LEN 132
#define OVL_RESPONSE_LEN   76
#define OVL_HANDSHAKE_MAX  OVL_INITIATION_LEN
/*
 * A relayed packet: a relay header (type 5, a hop limit, two zero bytes, the
 * destination's and the source's peer ids), then the sealed packet
 * (handshake or transport) unchanged. Relays rewrite only the hop limit, so
 * a chain of gateways costs one header; the overlay MTU leaves room for it.
 */
#define OVL_PEER_ID_BYTES 8 /* the first 8 bytes of BLAKE2b-256(public key) */
#define OVL_RELAY_LEN     (4 + 2 * OVL_PEER_ID_BYTES)
#define OVL_RELAY_HOPS    4 /* gateways a packet may pass, at most */
#define OVL_VIA_MAX       7 /* gateways per peer in ovl_dp_set_paths */

/* Why a packet was dropped; each has a counter. */
enum ovl_drop {
	OVL_DROP_SHORT,         /* shorter than its type's fixed part */
	OVL_DROP_BAD_TYPE,      /* unknown type byte or nonzero reserved */
	OVL_DROP_BAD_LENGTH,    /* handshake of the wrong size */
	OVL_DROP_BAD_MAC,       /* handshake not addressed to our key */
	OVL_DROP_UNKNOWN_PEER,  /* authentic initiator we have no tunnel for */
	OVL_DROP_UNKNOWN_INDEX, /* no session or handshake under that index */
	OVL_DROP_DECRYPT,       /* forged, tampered or under the wrong key */
	OVL_DROP_REPLAY,        /* counter seen before or behind the window */
	OVL_DROP_HANDSHAKE_REPLAY,  /* initiation timestamp not newer */
	OVL_DROP_HANDSHAKE_CROSSED, /* theirs crossed ours, and ours wins */
	OVL_DROP_EXPIRED,           /* session too old or its counter used up */
	OVL_DROP_NO_ROUTE,          /* from the TUN: no peer for the address */
	OVL_DROP_NO_SESSION,    /* queued too long waiting for a handshake */
	OVL_DROP_TOO_BIG,       /* from the TUN: over the overlay MTU */
	OVL_DROP_BAD_INNER,     /* plaintext not an IP packet of the peer's */
	OVL_DROP_RELAY_REFUSED, /* relay header malformed or not ours to relay
	                           (relaying off, a peer not in our table, hops
	                           spent, a loop), or a source the packet's key
	                           denies */
	OVL_DROP_MAX,
};

struct ovl_counters {
	uint64_t rx_packets, rx_bytes; /* authentic transport packets */
	uint64_t tx_packets, tx_bytes;
	uint64_t handshakes_sent, handshakes_done;
	uint64_t relayed_packets, relayed_bytes; /* forwarded as a gateway */
	uint64_t path_changes; /* a peer's path moved (failover, roaming) */
	uint64_t keepalives_sent;
	uint64_t drops[OVL_DROP_MAX];
};

/* A name for a drop reason ("decrypt", "replay", ...). */
const char *ovl_drop_name(enum ovl_drop reason);

/* --- core ------------------------------------------------------------ */

struct ovl_core;
struct ovl_tunnel;

/*
 * A host's core under its static X25519 secret key (copied, wiped on free).
 * Not thread-safe by itself; see ovl_core_recv for what may run at once.
 */
struct ovl_core *ovl_core_new(const uint8_t secret_key[OVL_KEY_BYTES]);
void ovl_core_free(struct ovl_core *core);
void ovl_core_public_key(const struct ovl_core *core,
                         uint8_t out[OVL_KEY_BYTES]);
/* Adds a peer by its static public key, or returns the one already there. */
struct ovl_tunnel *ovl_core_add_peer(struct ovl_core *core,
                                     const uint8_t public_key[OVL_KEY_BYTES]);
struct ovl_tunnel *ovl_core_find_peer(struct ovl_core *core,
                                      const uint8_t public_key[OVL_KEY_BYTES]);
/* Removes a peer, wiping its keys; the pointer is invalid afterwards. */
void ovl_core_remove_peer(struct ovl_core *core, struct ovl_tunnel *t);
void ovl_core_counters(const struct ovl_core *core, struct ovl_counters *out);

void ovl_tunnel_public_key(const struct ovl_tunnel *t,
                           uint8_t out[OVL_KEY_BYTES]);
/* One opaque pointer for the caller (the datapath keeps its peer there). */
void ovl_tunnel_set_user(struct ovl_tunnel *t, void *user);
void *ovl_tunnel_user(const struct ovl_tunnel *t);

/*
 * Writes a handshake initiation to the peer into out and returns its length
 * (OVL_INITIATION_LEN). now_ms is a monotonic clock, wall_ns the wall clock
 * (the responder rejects an initiation whose timestamp is not newer than the
 * last it accepted from us, so a recorded initiation cannot be replayed).
 */
int ovl_tunnel_initiate(struct ovl_core *core, struct ovl_tunnel *t,
                        uint64_t now_ms, uint64_t wall_ns,
                        uint8_t out[OVL_HANDSHAKE_MAX]);

/*
 * Seals a transport packet in place: the plaintext is at pkt + OVL_HEADER_LEN
 * (len bytes) and pkt has room for OVL_OVERHEAD + len bytes. Returns the
 * packet's length, or -ENOKEY when there is no usable session (the caller
 * keeps the packet and initiates), or -EMSGSIZE.
 */
int ovl_tunnel_seal(struct ovl_tunnel *t, uint8_t *pkt, size_t len,
                    uint64_t now_ms);
/* Whether the caller should send an initiation now (none in flight). */
bool ovl_tunnel_wants_handshake(const struct ovl_tunnel *t, uint64_t now_ms);
/* Whether a usable session exists for sending. */
bool ovl_tunnel_established(const struct ovl_tunnel *t, uint64_t now_ms);

enum ovl_recv_kind {
	OVL_RECV_DROP,  /* counted under drop */
	OVL_RECV_DATA,  /* plaintext at data, len bytes (inside the packet) */
	OVL_RECV_REPLY, /* a handshake response to send back, at data */
	OVL_RECV_ESTABLISHED, /* our initiation answered: flush queued data */
};

struct ovl_recv {
	enum ovl_recv_kind kind;
	enum ovl_drop drop;
	struct ovl_tunnel *tunnel;
	const uint8_t *data;
	size_t len;
};

/* The type byte of a packet, or 0 when it has none. */
uint8_t ovl_packet_type(const uint8_t *pkt, size_t len);
#define OVL_TYPE_INITIATION 1
#define OVL_TYPE_RESPONSE   2
#define OVL_TYPE_TRANSPORT  4
#define OVL_TYPE_RELAY      5 /* handled by the datapath, never the core */

/* A peer's id in relay headers: the first 8 bytes of BLAKE2b-256(pk). */
void ovl_peer_id(const uint8_t pk[OVL_KEY_BYTES],
                 uint8_t out[OVL_PEER_ID_BYTES]);

/*
 * Takes one received UDP payload (decrypted in place; pkt is modified).
 * reply must have OVL_HANDSHAKE_MAX bytes; a REPLY points into it.
 * Concurrency: transport packets may be opened by one thread while another
 * seals, both under a shared lock; handshake packets and everything else
 * need the core to themselves.
 */
void ovl_core_recv(struct ovl_core *core, uint8_t *pkt, size_t len,
                   uint64_t now_ms, uint64_t wall_ns, uint8_t *reply,
                   struct ovl_recv *out);

/*
 * Whether ovl_core_recv of this packet needs the core to itself: handshake
 * packets, and the first transport packet of a new session (which makes it
 * current). Only reads; safe under the shared lock.
 */
bool ovl_core_recv_exclusive(struct ovl_core *core, const uint8_t *pkt,
                             size_t len);

/*
 * Runs the timers: expires old sessions (wiping them) and reports, through
 * initiate, each tunnel that should start a handshake now (rekey, retry).
 */
void ovl_core_tick(struct ovl_core *core, uint64_t now_ms,
                   void (*initiate)(void *ctx, struct ovl_tunnel *t),
                   void *ctx);

/* --- datapath -------------------------------------------------------- */

struct ovl_dp;

struct ovl_dp_config {
	uint8_t secret_key[OVL_KEY_BYTES];
	const char *ifname;             /* TUN name, "mallee0" if NULL */
	struct sockaddr_storage listen; /* UDP address to bind */
	unsigned underlay_mtu;          /* 1500 if 0 */
	const char *address;            /* CIDR put on the TUN, or NULL */
	bool no_offload;                /* don't ask the TUN for GSO */
};

/* Opens the TUN and socket and starts the threads; NULL and *err on error. */
struct ovl_dp *ovl_dp_start(const struct ovl_dp_config *cfg, int *err);
/* Stops the threads, closes everything and wipes the keys. */
void ovl_dp_stop(struct ovl_dp *dp);
/* The overlay MTU set on the TUN (what instances should get by DHCP): the
 * underlay's less the outer IP and UDP headers, ours, and a relay header. */
unsigned ovl_dp_mtu(const struct ovl_dp *dp);
bool ovl_dp_offload(const struct ovl_dp *dp);

/* Adds or updates a peer and where its packets go (endpoint NULL: none,
 * reachable only through gateways, see ovl_dp_set_paths). */
int ovl_dp_add_peer(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                    const struct sockaddr *endpoint, socklen_t len);
int ovl_dp_remove_peer(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES]);
/* Routes an overlay prefix ("10.9.2.0/24") to a peer, or removes it. */
int ovl_dp_add_prefix(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                      const char *cidr);
int ovl_dp_remove_prefix(struct ovl_dp *dp, const char *cidr);
/* Routes a CIDR of the cloud into the TUN in the kernel's table. */
int ovl_dp_add_route(struct ovl_dp *dp, const char *cidr);
void ovl_dp_counters(struct ovl_dp *dp, struct ovl_counters *out);

/*
 * Makes this host a gateway (off by default): relayed packets for another
 * peer are forwarded on this host's own path to that peer, as long as both
 * the source and the destination are peers in its table. It cannot read
 * them; the destination authenticates them. Counted in relayed_packets and
 * drops[OVL_DROP_RELAY_REFUSED].
 */
void ovl_dp_set_relay(struct ovl_dp *dp, bool on);

/*
 * The ways to reach a peer, tried in order: its endpoint (from
 * ovl_dp_add_peer) when direct_ok and it has one, then through each
 * gateway in via (n_via <= OVL_VIA_MAX; each a peer added with an
 * endpoint, before or after this call). The datapath starts on the first;
 * when a handshake goes unanswered for OVL_PATH_HANDSHAKE_MS or sent data
 * hears nothing back for OVL_PATH_DEAD_MS (the far side sends keepalives
 * while it receives), it moves to the next, round-robin, and probes the
 * direct path every OVL_PATH_DIRECT_RETRY_MS while on a gateway. An
 * authentic packet moves the path to the way it came (roaming). Without a
 * call a peer has the direct path only. Returns 0, -ENOENT for an unknown
 * peer, -EINVAL for too many gateways or none at all.
 */
#define OVL_PATH_HANDSHAKE_MS    5000
#define OVL_PATH_DEAD_MS         4000
#define OVL_PATH_KEEPALIVE_MS    1000
#define OVL_PATH_DIRECT_RETRY_MS 30000
int ovl_dp_set_paths(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                     bool direct_ok, const uint8_t (*via)[OVL_KEY_BYTES],
                     size_t n_via);

/*
 * Writes the peer's current path to out: "direct", "via <hex8>" (the first
 * 4 bytes of the gateway's public key in hex), "via <address>" (a gateway
 * not in the table that an authentic packet came through) or "none".
 * Returns 0 or -ENOENT.
 */
int ovl_dp_peer_path(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                     char *out, size_t n);

#endif
