/*
 * The peer's side of gossip: the sockets, timers and streams around the
 * I/O-free state machine in gossip/, and the replication of records over
 * them. UDP carries SWIM packets and small record deltas; TCP on the same
 * port carries joins and periodic anti-entropy (push-pull of the member list
 * and a digest-first exchange of records).
 */
#ifndef PEER_NET_H
#define PEER_NET_H

#include "buf.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct peer;
struct peer_net;

struct peer_net_counters {
	uint64_t records_received;  /* deltas from broadcasts and streams */
	uint64_t records_applied;   /* of those, the ones that won */
	uint64_t records_refused;   /* malformed, or stamped too far ahead */
	uint64_t pushpulls;         /* completed, either side */
	uint64_t pushpull_failures; /* refused, timed out, or bad frames */
	uint64_t stream_bytes_in;
	uint64_t stream_bytes_out;
};

/*
 * Binds the gossip port (UDP+TCP on cfg.listen), starts the membership
 * with this peer as its only member, and joins through seeds (comma-
 * separated addresses; may be empty). Returns NULL with err filled when it
 * cannot bind.
 */
struct peer_net *peer_net_start(struct peer *p, const char *seeds, char *err,
                                size_t err_size);
/*
 * Applies a record another peer wrote and sent in an RPC answer, as if it
 * had come by gossip (same stamp checks, same LWW), so an edge sees the
 * host's change before gossip brings it.
 */
void peer_net_apply(struct peer_net *n, const struct peer_record *r);
/*
 * True once this peer has caught up with the cloud's records since it
 * started: a push-pull (a join counts) has completed, or it knows no other
 * live member to catch up from.
 */
bool peer_net_synced(struct peer_net *n);
/* Spreads a local write to the other peers. */
void peer_net_publish(struct peer_net *n, const struct peer_record *r);
/*
 * Tells the others this peer is leaving, then calls done once they have
 * been told or a short deadline passed.
 */
void peer_net_leave(struct peer_net *n, void (*done)(struct peer *p));
/* Closes every handle; the memory goes once the loop runs them down. */
void peer_net_stop(struct peer_net *n);

/* Appends the "members" array and "gossip" counters to a status map. */
void peer_net_pack_members(struct peer_net *n, struct mc_buf *b);
void peer_net_pack_counters(struct peer_net *n, struct mc_buf *b);
/* Addresses of alive members other than this peer, for join tokens. */
unsigned peer_net_alive_addrs(struct peer_net *n, char addrs[][64],
                              unsigned max);
/*
 * Calls cb once per zone of the members that have not left, with how many
 * are alive and how many there are; stops at cb's first non-zero return.
 */
int peer_net_zones(struct peer_net *n,
                   int (*cb)(void *ctx, const char *zone, unsigned alive,
                             unsigned hosts),
                   void *ctx);
/* The incarnation to save for the next start. */
uint32_t peer_net_incarnation(struct peer_net *n);

/*
 * The membership, read-only (gossip.h's getters), for the peer's other
 * parts: RPC finds members' addresses and keys there, placement their
 * capacity. Valid until peer_net_stop.
 */
struct gossip;
const struct gossip *peer_net_gossip(const struct peer_net *n);

/*
 * Re-reads p->capacity (the free numbers a host's admissions change) into
 * what this peer advertises, so edges place with them. Cheap when nothing
 * changed.
 */
void peer_net_capacity_changed(struct peer_net *n);

#endif
