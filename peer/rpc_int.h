/* Internals shared by rpc.c, rpc_seen.c and rpc_ping.c; no other file
 * includes it. */
#ifndef PEER_RPC_INT_H
#define PEER_RPC_INT_H

#include "peer.h"
#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * An RPC connection opens with these 4 bytes. Read as a push-pull frame's
 * big-endian length they say 0x4d525031, far past the 64 MiB any push-pull
 * frame may have, so the shared listener tells the two apart from the first
 * 4 bytes (net_stream.c).
 */
#define RPC_MAGIC       "MRP1"
#define RPC_MAGIC_LEN   4
#define RPC_MAX_FRAME   (64u << 20) /* image chunks travel as replies */
#define RPC_MAX_AGE_MS  60000       /* older (or further ahead) is refused */
#define RPC_RID_LEN     16
#define RPC_IDLE_MS     10000 /* for a request to arrive on a connection */
#define RPC_KEY_BUCKETS 256

/*
 * Request ids seen lately: an open-addressing set of random 16-byte ids,
 * each kept until the time its request would be refused as too old anyway.
 */
struct rpc_seen_slot {
	uint8_t rid[RPC_RID_LEN];
	uint64_t until; /* wall ms; 0: empty slot */
};

struct rpc_seen {
	struct rpc_seen_slot *slots;
	size_t cap, used;
};

/* True when rid was seen before (and not expired); else remembers it
 * until `until`. now is the wall clock (ms). */
bool rpc_seen_check_add(struct rpc_seen *s, const uint8_t rid[RPC_RID_LEN],
                        uint64_t until, uint64_t now);
void rpc_seen_free(struct rpc_seen *s);

/*
 * Takes over a connection the gossip listener accepted (net_stream.c) once
 * its first bytes showed RPC_MAGIC: fd is ours (closed on failure), head
 * the bytes already read (magic included), borrowed.
 */
int peer_rpc_adopt(struct peer *p, int fd, const uint8_t *head, size_t len,
                   const char *peer_addr);

struct rpc_ping;

/* The ping handler and the control socket's ping bookkeeping (rpc_ping.c). */
void rpc_ping_register(struct peer *p);
void rpc_ping_free_all(struct rpc_ping *pings);

/* Where rpc_ping.c keeps its tickets: a field of the daemon's RPC state
 * (rpc.c); NULL before peer_rpc_start and after peer_rpc_stop. */
struct rpc_ping **rpc_pings(struct peer *p);

#endif
