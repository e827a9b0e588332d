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
	OVL_DROP_NO_SESSION, /* queued too long waiting for a handshake */
	OVL_DROP_TOO_BIG,    /* from the TUN: over the overlay MTU */
	OVL_DROP_BAD_INNER,  /* plaintext not an IP packet of the peer's */
	OVL_DROP_MAX,
};

struct ovl_counters {
	uint64_t rx_packets, rx_bytes; /* authentic transport packets */
	uint64_t tx_packets, tx_bytes;
	uint64_t handshakes_sent, handshakes_done;
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
/* The overlay MTU set on the TUN (what instances should get by DHCP). */
unsigned ovl_dp_mtu(const struct ovl_dp *dp);
bool ovl_dp_offload(const struct ovl_dp *dp);

/* Adds or updates a peer and where its packets go. */
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

#endif
