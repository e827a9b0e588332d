/*
 * One host's datapath: packets read from the TUN are routed by destination
 * to a peer, sealed and sent over UDP; packets received over UDP are opened,
 * checked against the sending peer's prefixes and written to the TUN. Two
 * threads of its own, one per direction, never the peer's libuv loop:
 *
 *   tx: TUN -> (cut GSO super-packets) -> seal -> sendmmsg (+ UDP GSO)
 *   rx: recvmmsg (+ UDP GRO) -> open -> (merge TCP segments) -> TUN
 *
 * A read-write lock guards the core, the peers and the prefixes. Sealing
 * and opening transport packets share it (one thread each, see ovl.h);
 * handshakes, timers and the API's changes take it alone. Packets for a
 * peer with no session yet wait in a small queue until its handshake ends.
 *
 * Each peer has paths (path.c): its own endpoint, or a gateway that relays
 * for it. A packet on a relayed path carries a relay header in front
 * (relay.c); a gateway forwards such packets on its own path to their
 * destination, and the destination learns from where an authentic packet
 * came which way to answer. A peer's path state has a mutex of its own, so
 * either thread may update it under the shared lock.
 *
 * The two threads' loops are in datapath_tx.c and datapath_rx.c; this file
 * holds the peers, their routes, the staged packets, the path timers, the
 * set-up and the API.
 */
#include "datapath_int.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define DP_STAGED_MS 10000

struct dp_peer *dp_peer_find(struct ovl_dp *dp, const uint8_t *pk)
{
	struct dp_peer *p;

	for (p = dp->peers; p; p = p->next)
		if (memcmp(p->pk, pk, OVL_KEY_BYTES) == 0)
			return p;
	return NULL;
}

/* Resolves a path of p's to an address (the lock held, either way). */
bool dp_route_of(struct ovl_dp *dp, const struct dp_peer *p,
                 const struct ovl_path *path, struct dp_route *rt)
{
	const struct sockaddr_storage *ep;
	socklen_t len;

	rt->relay = false;
	rt->ep_len = 0;
	switch (path->kind) {
	case OVL_PATH_DIRECT:
		ep = &p->ep;
		len = p->ep_len;
		break;
	case OVL_PATH_VIA: {
		const struct dp_peer *g = dp_peer_find(dp, path->via);

		if (!g || g == p)
			return false;
		ep = &g->ep;
		len = g->ep_len;
		rt->relay = true;
		break;
	}
	case OVL_PATH_VIA_ADDR:
		ep = &path->addr;
		len = path->addr_len;
		rt->relay = true;
		break;
	default:
		return false;
	}
	if (!len)
		return false;
	memcpy(&rt->ep, ep, len);
	rt->ep_len = len;
	if (rt->relay) {
		struct ovl_relay_header h = {.hops = OVL_RELAY_HOPS};

		memcpy(h.dst, p->id, OVL_PEER_ID_BYTES);
		memcpy(h.src, dp->id, OVL_PEER_ID_BYTES);
		ovl_relay_encode(rt->hdr, &h);
	}
	return true;
}

static void send_route(struct ovl_dp *dp, const struct dp_route *rt,
                       const uint8_t *pkt, size_t len)
{
	struct iovec iov[2];
	int n = 0;

	if (rt->relay)
		iov[n++] = (struct iovec){(void *)rt->hdr, OVL_RELAY_LEN};
	iov[n++] = (struct iovec){(void *)pkt, len};
	struct msghdr h = {
	    .msg_name = (void *)&rt->ep,
	    .msg_namelen = rt->ep_len,
	    .msg_iov = iov,
	    .msg_iovlen = (size_t)n,
	};

	(void)sendmsg(dp->udp_fd, &h, MSG_DONTWAIT);
}

void dp_send_to(struct ovl_dp *dp, struct dp_peer *p, const uint8_t *pkt,
                size_t len, enum dp_send what)
{
	struct dp_route rt;

	if (peer_route(dp, p, now_ms(), what, &rt))
		send_route(dp, &rt, pkt, len);
}

/* Called with the lock held exclusively. */
void dp_initiate(void *ctx, struct ovl_tunnel *t)
{
	struct ovl_dp *dp = ctx;
	struct dp_peer *p = ovl_tunnel_user(t);
	uint8_t msg[OVL_HANDSHAKE_MAX];
	int n = ovl_tunnel_initiate(dp->core, t, now_ms(), wall_ns(), msg);

	if (n > 0 && p)
		dp_send_to(dp, p, msg, (size_t)n, DP_SEND_INITIATION);
}

/*
 * Seals and sends what waited for a session; exclusive lock held. With
 * keepalive, an empty packet goes when nothing waited, to confirm the new
 * session to the responder.
 */
void dp_flush_staged(struct ovl_dp *dp, struct dp_peer *p, uint64_t now,
                     bool keepalive)
{
	int sent = 0;

	pthread_mutex_lock(&p->staged_lock);
	for (int i = 0; i < p->nstaged; i++) {
		struct dp_staged *s = &p->staged[i];
		int n = ovl_tunnel_seal(p->tunnel, s->pkt, s->len, now);

		if (n > 0) {
			dp_send_to(dp, p, s->pkt, (size_t)n, DP_SEND_DATA);
			atomic_fetch_add(&dp->core->tx_packets, 1);
			atomic_fetch_add(&dp->core->tx_bytes, s->len);
			sent++;
		}
		free(s->pkt);
	}
	p->nstaged = 0;
	pthread_mutex_unlock(&p->staged_lock);
	if (!sent && keepalive) {
		uint8_t ka[OVL_OVERHEAD];

		if (ovl_tunnel_seal(p->tunnel, ka, 0, now) > 0)
			dp_send_to(dp, p, ka, sizeof(ka), DP_SEND_KEEPALIVE);
	}
}

void dp_stage(struct ovl_dp *dp, struct dp_peer *p, const uint8_t *pkt,
              size_t len, uint64_t now)
{
	pthread_mutex_lock(&p->staged_lock);
	if (p->nstaged == DP_STAGED_MAX) {
		ovl_count_drop(dp->core, OVL_DROP_NO_SESSION);
	} else {
		struct dp_staged *s = &p->staged[p->nstaged++];

		s->pkt = xmalloc(OVL_OVERHEAD + len);
		memcpy(s->pkt + OVL_HEADER_LEN, pkt, len);
		s->len = len;
		s->since_ms = now;
	}
	pthread_mutex_unlock(&p->staged_lock);
}

void dp_expire_staged(struct ovl_dp *dp, uint64_t now)
{
	for (struct dp_peer *p = dp->peers; p; p = p->next) {
		pthread_mutex_lock(&p->staged_lock);
		int keep = 0;

		for (int i = 0; i < p->nstaged; i++) {
			if (now - p->staged[i].since_ms >= DP_STAGED_MS) {
				free(p->staged[i].pkt);
				ovl_count_drop(dp->core, OVL_DROP_NO_SESSION);
			} else {
				p->staged[keep++] = p->staged[i];
			}
		}
		p->nstaged = keep;
		pthread_mutex_unlock(&p->staged_lock);
	}
}

void dp_path_moved(const struct dp_peer *p, const char *why,
                   const struct ovl_pathset *ps)
{
	char desc[80];

	ovl_path_describe(ovl_paths_current(ps), desc, sizeof(desc));
	mc_info("ovl", "peer %02x%02x%02x%02x: path now %s (%s)", p->pk[0],
	        p->pk[1], p->pk[2], p->pk[3], desc, why);
}

/*
 * The path timers of every peer (exclusive lock): move off a dead path and
 * handshake on the next, answer received data with a keepalive, probe the
 * direct path now and then.
 */
void dp_paths_tick(struct ovl_dp *dp, uint64_t now)
{
	for (struct dp_peer *p = dp->peers; p; p = p->next) {
		pthread_mutex_lock(&p->path_lock);
		unsigned act = ovl_paths_tick(&p->paths, now);

		if (act & OVL_PATH_ACT_ROTATED)
			dp_path_moved(p, "no answer", &p->paths);
		pthread_mutex_unlock(&p->path_lock);
		bool up = ovl_tunnel_established(p->tunnel, now);

		if (act & OVL_PATH_ACT_ROTATED)
			dp_initiate(dp, p->tunnel);
		if ((act & OVL_PATH_ACT_KEEPALIVE) && up) {
			uint8_t ka[OVL_OVERHEAD];

			if (ovl_tunnel_seal(p->tunnel, ka, 0, now) > 0) {
				dp_send_to(dp, p, ka, sizeof(ka),
				           DP_SEND_KEEPALIVE);
				atomic_fetch_add(&dp->keepalives_sent, 1);
			}
		}
		if ((act & OVL_PATH_ACT_PROBE) && up && p->ep_len) {
			uint8_t msg[OVL_HANDSHAKE_MAX];
			struct ovl_path direct = {.kind = OVL_PATH_DIRECT};
			struct dp_route rt;
			int n = ovl_tunnel_initiate(dp->core, p->tunnel, now,
			                            wall_ns(), msg);

			/* Answered straight back, it moves the path there
			 * (arrived); if not, the retry goes the usual way. */
			if (n > 0 && dp_route_of(dp, p, &direct, &rt))
				send_route(dp, &rt, msg, (size_t)n);
		}
	}
}

/* --- set-up and the API ---------------------------------------------- */

static int udp_open(struct ovl_dp *dp, const struct sockaddr_storage *addr)
{
	socklen_t len = addr->ss_family == AF_INET6
	                    ? sizeof(struct sockaddr_in6)
	                    : sizeof(struct sockaddr_in);
	int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0, big = 8 << 20;

	if (fd < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)addr, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	dp->udp_gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	dp->udp_gso =
	    setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
	return fd;
}

struct ovl_dp *ovl_dp_start(const struct ovl_dp_config *cfg, int *err)
{
	struct ovl_dp *dp = xcalloc(1, sizeof(*dp));
	unsigned underlay = cfg->underlay_mtu ? cfg->underlay_mtu : 1500;
	unsigned ip_hdr = cfg->listen.ss_family == AF_INET6 ? 40 : 20;
	int rc;

	dp->tun_fd = dp->udp_fd = dp->stop_fd = -1;
	snprintf(dp->ifname, sizeof(dp->ifname), "%s",
	         cfg->ifname ? cfg->ifname : "mallee0");
	if (underlay < 576 + ip_hdr + 8 + OVL_OVERHEAD + OVL_RELAY_LEN) {
		rc = -EINVAL;
		goto err;
	}
	/* Nothing may fragment: the outer IP and UDP headers, ours, and a
	 * relay header (a relayed path must carry what a direct one does). */
	dp->mtu = underlay - ip_hdr - 8 - OVL_OVERHEAD - OVL_RELAY_LEN;
	if (cfg->address) {
		struct ovl_prefix a;

		rc = ovl_prefix_parse(cfg->address, &a);
		if (rc < 0)
			goto err;
		if (a.family == 4) {
			/* parse cleared host bits: take the address itself */
			char host[64];
			const char *slash = strchr(cfg->address, '/');
			size_t n = slash ? (size_t)(slash - cfg->address)
			                 : strlen(cfg->address);

			snprintf(host, sizeof(host), "%.*s", (int)n,
			         cfg->address);
			struct ovl_prefix h;

			if (ovl_prefix_parse(host, &h) == 0)
				memcpy(dp->addr4, h.addr, 4);
		}
	}
	rc = pthread_rwlock_init(&dp->lock, NULL);
	if (rc) {
		rc = -rc;
		goto err;
	}
	dp->core = ovl_core_new(cfg->secret_key);
	{
		uint8_t pk[OVL_KEY_BYTES];

		ovl_core_public_key(dp->core, pk);
		ovl_peer_id(pk, dp->id);
	}
	rc = ovl_tun_open(dp->ifname, !cfg->no_offload, &dp->offload);
	if (rc < 0)
		goto err;
	dp->tun_fd = rc;
	rc = ovl_nl_link_up(dp->ifname, dp->mtu, cfg->address);
	if (rc < 0)
		goto err;
	rc = udp_open(dp, &cfg->listen);
	if (rc < 0)
		goto err;
	dp->udp_fd = rc;
	dp->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dp->stop_fd < 0) {
		rc = -errno;
		goto err;
	}
	rc = -pthread_create(&dp->rx, NULL, dp_rx_main, dp);
	if (rc)
		goto err;
	dp->rx_started = true;
	rc = -pthread_create(&dp->tx, NULL, dp_tx_main, dp);
	if (rc)
		goto err;
	dp->tx_started = true;
	mc_info("ovl", "%s up: mtu %u, tun offload %s, udp gso %s gro %s",
	        dp->ifname, dp->mtu, dp->offload ? "on" : "off",
	        dp->udp_gso ? "on" : "off", dp->udp_gro ? "on" : "off");
	return dp;
err:
	if (err)
		*err = rc;
	ovl_dp_stop(dp);
	return NULL;
}

void ovl_dp_stop(struct ovl_dp *dp)
{
	if (!dp)
		return;
	if (dp->stop_fd >= 0) {
		uint64_t one = 1;

		(void)write(dp->stop_fd, &one, sizeof(one));
	}
	if (dp->tx_started)
		pthread_join(dp->tx, NULL);
	if (dp->rx_started)
		pthread_join(dp->rx, NULL);
	while (dp->peers) {
		struct dp_peer *p = dp->peers;

		dp->peers = p->next;
		for (int i = 0; i < p->nstaged; i++)
			free(p->staged[i].pkt);
		pthread_mutex_destroy(&p->staged_lock);
		pthread_mutex_destroy(&p->path_lock);
		free(p);
	}
	ovl_prefix_free(&dp->prefixes);
	ovl_core_free(dp->core); /* wipes every key */
	if (dp->tun_fd >= 0)
		close(dp->tun_fd);
	if (dp->udp_fd >= 0)
		close(dp->udp_fd);
	if (dp->stop_fd >= 0)
		close(dp->stop_fd);
	if (dp->core)
		pthread_rwlock_destroy(&dp->lock);
	free(dp);
}

unsigned ovl_dp_mtu(const struct ovl_dp *dp)
{
	return dp->mtu;
}

bool ovl_dp_offload(const struct ovl_dp *dp)
{
	return dp->offload;
}

int ovl_dp_add_peer(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                    const struct sockaddr *endpoint, socklen_t len)
{
	if (len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	pthread_rwlock_wrlock(&dp->lock);
	struct dp_peer *p = dp_peer_find(dp, pk);

	if (!p) {
		p = xcalloc(1, sizeof(*p));
		memcpy(p->pk, pk, OVL_KEY_BYTES);
		ovl_peer_id(pk, p->id);
		pthread_mutex_init(&p->staged_lock, NULL);
		pthread_mutex_init(&p->path_lock, NULL);
		ovl_paths_init(&p->paths);
		p->tunnel = ovl_core_add_peer(dp->core, pk);
		ovl_tunnel_set_user(p->tunnel, p);
		p->next = dp->peers;
		dp->peers = p;
	}
	/* No endpoint: the peer is reached through gateways only. */
	if (endpoint && len)
		memcpy(&p->ep, endpoint, len);
	p->ep_len = endpoint ? len : 0;
	pthread_rwlock_unlock(&dp->lock);
	return 0;
}

int ovl_dp_remove_peer(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES])
{
	pthread_rwlock_wrlock(&dp->lock);
	struct dp_peer **pp = &dp->peers;

	while (*pp && memcmp((*pp)->pk, pk, OVL_KEY_BYTES))
		pp = &(*pp)->next;
	struct dp_peer *p = *pp;

	if (p) {
		*pp = p->next;
		ovl_prefix_remove_peer(&dp->prefixes, p);
		ovl_core_remove_peer(dp->core, p->tunnel);
		for (int i = 0; i < p->nstaged; i++)
			free(p->staged[i].pkt);
		pthread_mutex_destroy(&p->staged_lock);
		pthread_mutex_destroy(&p->path_lock);
		free(p);
	}
	pthread_rwlock_unlock(&dp->lock);
	return p ? 0 : -ENOENT;
}

int ovl_dp_add_prefix(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                      const char *cidr)
{
	struct ovl_prefix pre;
	int rc = ovl_prefix_parse(cidr, &pre);

	if (rc < 0)
		return rc;
	pthread_rwlock_wrlock(&dp->lock);
	pre.peer = dp_peer_find(dp, pk);
	if (pre.peer)
		ovl_prefix_add(&dp->prefixes, &pre);
	pthread_rwlock_unlock(&dp->lock);
	return pre.peer ? 0 : -ENOENT;
}

int ovl_dp_remove_prefix(struct ovl_dp *dp, const char *cidr)
{
	struct ovl_prefix pre;
	int rc = ovl_prefix_parse(cidr, &pre);

	if (rc < 0)
		return rc;
	pthread_rwlock_wrlock(&dp->lock);
	bool found = ovl_prefix_remove(&dp->prefixes, &pre);

	pthread_rwlock_unlock(&dp->lock);
	return found ? 0 : -ENOENT;
}

int ovl_dp_add_route(struct ovl_dp *dp, const char *cidr)
{
	struct ovl_prefix pre;

	if (ovl_prefix_parse(cidr, &pre) < 0)
		return -EINVAL;
	return ovl_nl_route(dp->ifname, cidr, true);
}

void ovl_dp_counters(struct ovl_dp *dp, struct ovl_counters *out)
{
	ovl_core_counters(dp->core, out);
	out->relayed_packets = atomic_load(&dp->relayed_packets);
	out->relayed_bytes = atomic_load(&dp->relayed_bytes);
	out->keepalives_sent = atomic_load(&dp->keepalives_sent);
	out->path_changes = 0;
	pthread_rwlock_rdlock(&dp->lock);
	for (struct dp_peer *p = dp->peers; p; p = p->next) {
		pthread_mutex_lock(&p->path_lock);
		out->path_changes += p->paths.changes;
		pthread_mutex_unlock(&p->path_lock);
	}
	pthread_rwlock_unlock(&dp->lock);
}

void ovl_dp_set_relay(struct ovl_dp *dp, bool on)
{
	atomic_store(&dp->relay, on);
	mc_info("ovl", "relaying for peers %s", on ? "on" : "off");
}

int ovl_dp_set_paths(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                     bool direct_ok, const uint8_t (*via)[OVL_KEY_BYTES],
                     size_t n_via)
{
	if (n_via > OVL_VIA_MAX || (!direct_ok && !n_via) || (n_via && !via))
		return -EINVAL;
	for (size_t i = 0; i < n_via; i++)
		if (memcmp(via[i], pk, OVL_KEY_BYTES) == 0)
			return -EINVAL;
	pthread_rwlock_wrlock(&dp->lock);
	struct dp_peer *p = dp_peer_find(dp, pk);

	if (p) {
		pthread_mutex_lock(&p->path_lock);
		ovl_paths_set(&p->paths, direct_ok, via, n_via, now_ms());
		dp_path_moved(p, "configured", &p->paths);
		pthread_mutex_unlock(&p->path_lock);
	}
	pthread_rwlock_unlock(&dp->lock);
	return p ? 0 : -ENOENT;
}

int ovl_dp_peer_path(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                     char *out, size_t n)
{
	pthread_rwlock_rdlock(&dp->lock);
	struct dp_peer *p = dp_peer_find(dp, pk);

	if (p) {
		pthread_mutex_lock(&p->path_lock);
		ovl_path_describe(ovl_paths_current(&p->paths), out, n);
		pthread_mutex_unlock(&p->path_lock);
	}
	pthread_rwlock_unlock(&dp->lock);
	return p ? 0 : -ENOENT;
}
