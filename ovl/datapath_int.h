/*
 * What datapath.c (peers, routes, staged packets, path timers, set-up and
 * the API), datapath_tx.c and datapath_rx.c (the two threads) share; no
 * other file includes this.
 */
#ifndef MALLEE_OVL_DATAPATH_INT_H
#define MALLEE_OVL_DATAPATH_INT_H

#include "ovl_int.h"

#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define DP_STAGED_MAX 64
#define DP_GSO_MAX    64 /* datagrams in one UDP GSO send */
#define VNET_LEN      ((size_t)sizeof(struct virtio_net_hdr))

struct dp_staged {
	uint8_t *pkt; /* OVL_HEADER_LEN of room, then the plaintext */
	size_t len;
	uint64_t since_ms;
};

struct dp_peer {
	struct dp_peer *next;
	uint8_t pk[OVL_KEY_BYTES];
	uint8_t id[OVL_PEER_ID_BYTES];
	struct ovl_tunnel *tunnel;
	struct sockaddr_storage ep;
	socklen_t ep_len;
	pthread_mutex_t staged_lock;
	struct dp_staged staged[DP_STAGED_MAX];
	int nstaged;
	pthread_mutex_t path_lock;
	struct ovl_pathset paths;
};

/* Where one packet goes: an address, and a relay header when relayed. */
struct dp_route {
	struct sockaddr_storage ep;
	socklen_t ep_len;
	bool relay;
	uint8_t hdr[OVL_RELAY_LEN];
};

enum dp_send {
	DP_SEND_DATA,
	DP_SEND_KEEPALIVE, /* and responses: nothing expected back */
	DP_SEND_INITIATION,
};

struct ovl_dp {
	struct ovl_core *core;
	uint8_t id[OVL_PEER_ID_BYTES];
	_Atomic bool relay;
	_Atomic uint64_t relayed_packets, relayed_bytes, keepalives_sent;
	pthread_rwlock_t lock;
	struct dp_peer *peers;
	struct ovl_prefix_table prefixes;
	int tun_fd, udp_fd, stop_fd;
	bool offload, udp_gso, udp_gro;
	unsigned mtu;
	char ifname[IFNAMSIZ];
	uint8_t addr4[4];
	pthread_t tx, rx;
	bool tx_started, rx_started;
};

/* The tx thread (datapath_tx.c): TUN to UDP until stop_fd is written. */
void *dp_tx_main(void *arg);
/* The rx thread (datapath_rx.c): UDP to TUN, and the timers, likewise. */
void *dp_rx_main(void *arg);

/* The peer whose public key is pk, or NULL (the lock held, either way). */
struct dp_peer *dp_peer_find(struct ovl_dp *dp, const uint8_t *pk);
/* Resolves a path of p's to an address (the lock held, either way). */
bool dp_route_of(struct ovl_dp *dp, const struct dp_peer *p,
                 const struct ovl_path *path, struct dp_route *rt);
/* Sends pkt to p on its current path. */
void dp_send_to(struct ovl_dp *dp, struct dp_peer *p, const uint8_t *pkt,
                size_t len, enum dp_send what);
/* Starts a handshake with t's peer (ovl_core_tick's callback); exclusive. */
void dp_initiate(void *ctx, struct ovl_tunnel *t);
/* Sends what waited for p's new session; exclusive lock held. */
void dp_flush_staged(struct ovl_dp *dp, struct dp_peer *p, uint64_t now,
                     bool keepalive);
/* Keeps a packet for p until its handshake ends; takes a copy. */
void dp_stage(struct ovl_dp *dp, struct dp_peer *p, const uint8_t *pkt,
              size_t len, uint64_t now);
/* Drops what waited too long for a session (exclusive lock). */
void dp_expire_staged(struct ovl_dp *dp, uint64_t now);
/* Logs that p's path changed, and why; p's path_lock held. */
void dp_path_moved(const struct dp_peer *p, const char *why,
                   const struct ovl_pathset *ps);
/* Runs every peer's path timers (exclusive lock). */
void dp_paths_tick(struct ovl_dp *dp, uint64_t now);

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * p's current route, noting what is sent for the path timers. Inline: the
 * tx loop calls it whenever the destination peer changes.
 */
static inline bool peer_route(struct ovl_dp *dp, struct dp_peer *p,
                              uint64_t now, enum dp_send what,
                              struct dp_route *rt)
{
	struct ovl_path path;

	pthread_mutex_lock(&p->path_lock);
	path = *ovl_paths_current(&p->paths);
	ovl_paths_sent(&p->paths, now, what == DP_SEND_DATA);
	if (what == DP_SEND_INITIATION)
		ovl_paths_initiated(&p->paths, now);
	pthread_mutex_unlock(&p->path_lock);
	return dp_route_of(dp, p, &path, rt);
}

#endif
