/* Internals shared by net.c and net_stream.c; no other file includes it. */
#ifndef PEER_NET_INT_H
#define PEER_NET_INT_H

#include "gossip.h"
#include "net.h"
#include "peer.h"
#include "record_wire.h"

#include <uv.h>

#define NET_ROLE_EDGE         1u
#define NET_ROLE_GATEWAY      2u
#define NET_PUSHPULL_MS       30000
#define NET_JOIN_RETRY_MS     2000
#define NET_SOON_MS           500
#define NET_LEAVE_WAIT_MS     1500
#define NET_STREAM_TIMEOUT_MS 10000
#define NET_STREAM_MAX_FRAME  (64u << 20)
#define NET_MAX_SEEDS         16

struct net_stream;

struct peer_net {
	struct peer *p;
	uv_loop_t *loop;
	struct gossip *g;
	uv_udp_t udp;
	uv_timer_t tick;
	uv_timer_t pushpull;
	uv_timer_t soon; /* a push-pull shortly after local writes */
	uv_tcp_t listener;
	struct net_stream *streams;
	int open_handles;
	bool stopping;

	struct mc_addr seeds[NET_MAX_SEEDS];
	unsigned n_seeds;
	bool joined;
	uint32_t pushpull_ms;
	bool pushpull_staggered; /* the first periodic round is scheduled */

	void (*leave_done)(struct peer *p);
	uint64_t leave_deadline;

	struct peer_net_counters c;
	uint8_t rx[65536];
};

/* Runs gossip's timers that are due and re-arms for the next one. */
void net_rearm(struct peer_net *n);
/* Counts a closed handle; frees n when the last one of a stop closes. */
void net_handle_closed(uv_handle_t *h);

void net_save_seeds(struct peer_net *n);

/* Applies remote records (one or an array), checking their stamps. */
void net_apply_remote(struct peer_net *n, const struct peer_record *rs,
                      size_t count);

int net_stream_listen(struct peer_net *n, const struct mc_addr *addr, char *err,
                      size_t err_size);
/* Starts a push-pull (a join when join) with the peer at to. */
void net_pushpull_start(struct peer_net *n, const struct mc_addr *to,
                        bool join);
void net_streams_close_all(struct peer_net *n);

#endif
