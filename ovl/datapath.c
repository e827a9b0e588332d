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
 */
#include "log.h"
#include "mem.h"
#include "ovl_int.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DP_SEGS       192   /* sealed packets per tx round */
#define DP_SLOT       2048  /* one sealed packet, with room */
#define DP_RX_MSGS    32    /* messages per recvmmsg */
#define DP_RX_BUF     65536 /* one message; more with UDP GRO */
#define DP_STAGED_MAX 64
#define DP_STAGED_MS  10000
#define DP_TICK_MS    250
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

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct dp_peer *peer_find(struct ovl_dp *dp, const uint8_t *pk)
{
	struct dp_peer *p;

	for (p = dp->peers; p; p = p->next)
		if (memcmp(p->pk, pk, OVL_KEY_BYTES) == 0)
			return p;
	return NULL;
}

static struct dp_peer *peer_by_id(struct ovl_dp *dp, const uint8_t *id)
{
	struct dp_peer *p;

	for (p = dp->peers; p; p = p->next)
		if (memcmp(p->id, id, OVL_PEER_ID_BYTES) == 0)
			return p;
	return NULL;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen,
                      const struct sockaddr_storage *b, socklen_t blen)
{
	if (!alen || alen != blen || a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a,
		                         *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a,
		                          *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	return false;
}

/* The peer (other than except) whose endpoint is addr, or NULL. */
static struct dp_peer *peer_at(struct ovl_dp *dp,
                               const struct sockaddr_storage *addr,
                               socklen_t len, const struct dp_peer *except)
{
	for (struct dp_peer *p = dp->peers; p; p = p->next)
		if (p != except && same_addr(&p->ep, p->ep_len, addr, len))
			return p;
	return NULL;
}

/* Resolves a path of p's to an address (the lock held, either way). */
static bool route_of(struct ovl_dp *dp, const struct dp_peer *p,
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
		const struct dp_peer *g = peer_find(dp, path->via);

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

/* p's current route, noting what is sent for the path timers. */
static bool peer_route(struct ovl_dp *dp, struct dp_peer *p, uint64_t now,
                       enum dp_send what, struct dp_route *rt)
{
	struct ovl_path path;

	pthread_mutex_lock(&p->path_lock);
	path = *ovl_paths_current(&p->paths);
	ovl_paths_sent(&p->paths, now, what == DP_SEND_DATA);
	if (what == DP_SEND_INITIATION)
		ovl_paths_initiated(&p->paths, now);
	pthread_mutex_unlock(&p->path_lock);
	return route_of(dp, p, &path, rt);
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

static void send_to(struct ovl_dp *dp, struct dp_peer *p, const uint8_t *pkt,
                    size_t len, enum dp_send what)
{
	struct dp_route rt;

	if (peer_route(dp, p, now_ms(), what, &rt))
		send_route(dp, &rt, pkt, len);
}

/* Called with the lock held exclusively. */
static void initiate(void *ctx, struct ovl_tunnel *t)
{
	struct ovl_dp *dp = ctx;
	struct dp_peer *p = ovl_tunnel_user(t);
	uint8_t msg[OVL_HANDSHAKE_MAX];
	int n = ovl_tunnel_initiate(dp->core, t, now_ms(), wall_ns(), msg);

	if (n > 0 && p)
		send_to(dp, p, msg, (size_t)n, DP_SEND_INITIATION);
}

/*
 * Seals and sends what waited for a session; exclusive lock held. With
 * keepalive, an empty packet goes when nothing waited, to confirm the new
 * session to the responder.
 */
static void flush_staged(struct ovl_dp *dp, struct dp_peer *p, uint64_t now,
                         bool keepalive)
{
	int sent = 0;

	pthread_mutex_lock(&p->staged_lock);
	for (int i = 0; i < p->nstaged; i++) {
		struct dp_staged *s = &p->staged[i];
		int n = ovl_tunnel_seal(p->tunnel, s->pkt, s->len, now);

		if (n > 0) {
			send_to(dp, p, s->pkt, (size_t)n, DP_SEND_DATA);
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
			send_to(dp, p, ka, sizeof(ka), DP_SEND_KEEPALIVE);
	}
}

static void stage(struct ovl_dp *dp, struct dp_peer *p, const uint8_t *pkt,
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

static void expire_staged(struct ovl_dp *dp, uint64_t now)
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

/* --- tx: TUN to UDP -------------------------------------------------- */

struct tx_state {
	uint8_t rbuf[VNET_LEN + 65536];
	uint8_t slots[DP_SEGS][DP_SLOT];
	uint8_t *plain[DP_SEGS]; /* slot + OVL_RELAY_LEN + OVL_HEADER_LEN */
	size_t len[DP_SEGS];
	int sealed[DP_SEGS]; /* length sent, or 0 to skip */
	int off[DP_SEGS];    /* where it starts: 0 with a relay header */
	struct sockaddr_storage ep[DP_SEGS];
	socklen_t ep_len[DP_SEGS];
	struct iovec iov[DP_SEGS];
	struct mmsghdr msgs[DP_SEGS];
	char cmsg[DP_SEGS][CMSG_SPACE(sizeof(uint16_t))];
};

/* Oversize from the TUN: tell the sender (IPv4 with DF), then drop. */
static void too_big(struct ovl_dp *dp, const uint8_t *pkt, size_t len)
{
	uint8_t icmp[64];

	ovl_count_drop(dp->core, OVL_DROP_TOO_BIG);
	if (len < 20 || pkt[0] >> 4 != 4 || !(pkt[6] & 0x40))
		return;
	int n = ovl_icmp_frag_needed(pkt, len, dp->mtu, dp->addr4,
	                             icmp + VNET_LEN, sizeof(icmp) - VNET_LEN);

	if (n < 0)
		return;
	if (dp->offload) {
		memset(icmp, 0, VNET_LEN);
		(void)write(dp->tun_fd, icmp, VNET_LEN + (size_t)n);
	} else {
		(void)write(dp->tun_fd, icmp + VNET_LEN, (size_t)n);
	}
}

/* Reads what the TUN has, up to a round's worth; returns the count. */
static int tx_read(struct ovl_dp *dp, struct tx_state *st)
{
	int n = 0;

	while (n <= DP_SEGS - DP_GSO_MAX) {
		ssize_t r;
		int k;

		if (dp->offload) {
			r = read(dp->tun_fd, st->rbuf, sizeof(st->rbuf));
			if (r <= 0)
				break;
			k = ovl_offload_split(
			    st->rbuf, (size_t)r, st->plain + n, st->len + n,
			    DP_SEGS - n,
			    DP_SLOT - OVL_OVERHEAD - OVL_RELAY_LEN);
			if (k < 0) {
				ovl_count_drop(dp->core, OVL_DROP_BAD_INNER);
				continue;
			}
		} else {
			r = read(dp->tun_fd, st->plain[n],
			         DP_SLOT - OVL_OVERHEAD - OVL_RELAY_LEN);
			if (r <= 0)
				break;
			st->len[n] = (size_t)r;
			k = 1;
		}
		for (int i = n; i < n + k; i++) {
			st->sealed[i] = 0;
			if (st->len[i] > dp->mtu) {
				too_big(dp, st->plain[i], st->len[i]);
				st->len[i] = 0;
			}
		}
		n += k;
	}
	return n;
}

/* Groups sealed packets into messages: UDP GSO where they line up. */
static void tx_send(struct ovl_dp *dp, struct tx_state *st, int n)
{
	int m = 0;

	for (int i = 0; i < n;) {
		if (!st->sealed[i]) {
			i++;
			continue;
		}
		int j = i + 1;
		size_t seg = (size_t)st->sealed[i];

		if (dp->udp_gso) {
			size_t total = seg;

			while (j < n && j - i < DP_GSO_MAX && st->sealed[j] &&
			       (size_t)st->sealed[j] <= seg &&
			       total + (size_t)st->sealed[j] <= 65000 &&
			       (size_t)st->sealed[j - 1] == seg &&
			       st->ep_len[j] == st->ep_len[i] &&
			       memcmp(&st->ep[j], &st->ep[i], st->ep_len[i]) ==
			           0) {
				total += (size_t)st->sealed[j];
				j++;
			}
		}
		struct msghdr *h = &st->msgs[m].msg_hdr;

		memset(h, 0, sizeof(*h));
		for (int k = i; k < j; k++) {
			st->iov[k].iov_base = st->slots[k] + st->off[k];
			st->iov[k].iov_len = (size_t)st->sealed[k];
		}
		h->msg_name = &st->ep[i];
		h->msg_namelen = st->ep_len[i];
		h->msg_iov = &st->iov[i];
		h->msg_iovlen = (size_t)(j - i);
		if (j - i > 1) {
			uint16_t gso = (uint16_t)seg;

			h->msg_control = st->cmsg[m];
			h->msg_controllen = CMSG_SPACE(sizeof(gso));
			struct cmsghdr *c = CMSG_FIRSTHDR(h);

			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(gso));
			memcpy(CMSG_DATA(c), &gso, sizeof(gso));
		}
		m++;
		i = j;
	}
	for (int done = 0; done < m;) {
		int r = sendmmsg(dp->udp_fd, st->msgs + done,
		                 (unsigned)(m - done), 0);

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break; /* the network is gone: UDP drops too */
		}
		done += r;
	}
}

static void tx_round(struct ovl_dp *dp, struct tx_state *st, int n)
{
	uint8_t want[8][OVL_KEY_BYTES];
	int nwant = 0;
	uint64_t now = now_ms(), packets = 0, bytes = 0;
	struct dp_peer *last = NULL;
	struct dp_route rt;
	bool routed = false;

	pthread_rwlock_rdlock(&dp->lock);
	for (int i = 0; i < n; i++) {
		if (!st->len[i])
			continue;
		struct dp_peer *p = ovl_prefix_lookup(
		    &dp->prefixes, st->plain[i], st->len[i], false);

		if (!p) {
			ovl_count_drop(dp->core, OVL_DROP_NO_ROUTE);
			continue;
		}
		if (p != last) {
			/* Data sent counts toward the path's liveness only
			 * when there is a session to carry it. */
			bool up = ovl_tunnel_established(p->tunnel, now);

			routed = peer_route(
			    dp, p, now, up ? DP_SEND_DATA : DP_SEND_KEEPALIVE,
			    &rt);
			if (nwant < 8 &&
			    ovl_tunnel_wants_handshake(p->tunnel, now))
				memcpy(want[nwant++], p->pk, OVL_KEY_BYTES);
			last = p;
		}
		int r = ovl_tunnel_seal(p->tunnel, st->slots[i] + OVL_RELAY_LEN,
		                        st->len[i], now);

		if (r == -ENOKEY)
			stage(dp, p, st->plain[i], st->len[i], now);
		if (r > 0 && !routed)
			ovl_count_drop(dp->core, OVL_DROP_NO_ROUTE);
		if (r > 0 && routed) {
			st->off[i] = OVL_RELAY_LEN;
			if (rt.relay) {
				memcpy(st->slots[i], rt.hdr, OVL_RELAY_LEN);
				st->off[i] = 0;
				r += OVL_RELAY_LEN;
			}
			st->sealed[i] = r;
			memcpy(&st->ep[i], &rt.ep, rt.ep_len);
			st->ep_len[i] = rt.ep_len;
			packets++;
			bytes += st->len[i];
		}
	}
	pthread_rwlock_unlock(&dp->lock);
	atomic_fetch_add(&dp->core->tx_packets, packets);
	atomic_fetch_add(&dp->core->tx_bytes, bytes);
	tx_send(dp, st, n);
	if (!nwant)
		return;
	pthread_rwlock_wrlock(&dp->lock);
	for (int i = 0; i < nwant; i++) {
		struct dp_peer *p = peer_find(dp, want[i]);

		if (p && ovl_tunnel_wants_handshake(p->tunnel, now))
			initiate(dp, p->tunnel);
	}
	pthread_rwlock_unlock(&dp->lock);
}

static void *tx_main(void *arg)
{
	struct ovl_dp *dp = arg;
	struct tx_state *st = xcalloc(1, sizeof(*st));
	struct pollfd pfd[2] = {{dp->tun_fd, POLLIN, 0},
	                        {dp->stop_fd, POLLIN, 0}};

	pthread_setname_np(pthread_self(), "ovl-tx");
	for (int i = 0; i < DP_SEGS; i++)
		st->plain[i] = st->slots[i] + OVL_RELAY_LEN + OVL_HEADER_LEN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		int n = tx_read(dp, st);

		if (n > 0)
			tx_round(dp, st, n);
	}
	free(st);
	return NULL;
}

/* --- rx: UDP to TUN -------------------------------------------------- */

struct rx_dgram {
	uint8_t *pkt;
	size_t len;
	int msg;      /* which message: its source address */
	bool relayed; /* came with a relay header naming src as its sender */
	uint8_t src[OVL_PEER_ID_BYTES];
};

struct rx_state {
	uint8_t bufs[DP_RX_MSGS][DP_RX_BUF];
	struct sockaddr_storage src[DP_RX_MSGS];
	struct iovec iov[DP_RX_MSGS];
	struct mmsghdr msgs[DP_RX_MSGS];
	char cmsg[DP_RX_MSGS][CMSG_SPACE(sizeof(int))];
	struct rx_dgram dg[DP_RX_MSGS * DP_GSO_MAX];
	bool later[DP_RX_MSGS * DP_GSO_MAX];
	uint8_t *out[DP_RX_MSGS * DP_GSO_MAX]; /* plaintext for the TUN */
	size_t out_len[DP_RX_MSGS * DP_GSO_MAX];
	uint8_t gro[VNET_LEN + 65536];
	uint8_t reply[OVL_HANDSHAKE_MAX];
};

static void tun_write_one(struct ovl_dp *dp, uint8_t *pkt, size_t len)
{
	if (dp->offload) {
		/* The header's room in front of the plaintext takes the
		 * vnet header; the AEAD already vouched for the data. */
		memset(pkt - VNET_LEN, 0, VNET_LEN);
		(void)write(dp->tun_fd, pkt - VNET_LEN, len + VNET_LEN);
	} else {
		(void)write(dp->tun_fd, pkt, len);
	}
}

static void tun_write(struct ovl_dp *dp, struct rx_state *st, int n)
{
	for (int i = 0; i < n;) {
		int k = 1;
		size_t glen;

		if (dp->offload)
			k = ovl_offload_merge(st->out + i, st->out_len + i,
			                      n - i, st->gro, sizeof(st->gro),
			                      &glen);
		if (k > 1)
			(void)write(dp->tun_fd, st->gro, glen);
		else
			tun_write_one(dp, st->out[i], st->out_len[i]);
		i += k;
	}
}

/* An authentic packet's plaintext may only come from the peer's prefixes. */
static bool inner_ok(struct ovl_dp *dp, const struct ovl_recv *r)
{
	return ovl_prefix_lookup(&dp->prefixes, r->data, r->len, true) ==
	       ovl_tunnel_user(r->tunnel);
}

static int rx_split(struct rx_state *st, int nmsg)
{
	int n = 0;

	for (int m = 0; m < nmsg; m++) {
		struct msghdr *h = &st->msgs[m].msg_hdr;
		size_t len = st->msgs[m].msg_len, seg = len;

		for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c;
		     c = CMSG_NXTHDR(h, c)) {
			int v;

			if (c->cmsg_level == SOL_UDP &&
			    c->cmsg_type == UDP_GRO &&
			    c->cmsg_len >= CMSG_LEN(sizeof(v))) {
				memcpy(&v, CMSG_DATA(c), sizeof(v));
				if (v > 0)
					seg = (size_t)v;
			}
		}
		for (size_t off = 0; off < len && n < DP_RX_MSGS * DP_GSO_MAX;
		     off += seg) {
			st->dg[n].pkt = st->bufs[m] + off;
			st->dg[n].len = len - off < seg ? len - off : seg;
			st->dg[n].msg = m;
			st->dg[n].relayed = false;
			n++;
		}
	}
	return n;
}

static void path_moved(const struct dp_peer *p, const char *why,
                       const struct ovl_pathset *ps)
{
	char desc[80];

	ovl_path_describe(ovl_paths_current(ps), desc, sizeof(desc));
	mc_info("ovl", "peer %02x%02x%02x%02x: path now %s (%s)", p->pk[0],
	        p->pk[1], p->pk[2], p->pk[3], desc, why);
}

/*
 * An authentic packet from p came by d: the path moves to where it came
 * from (a gateway of our table if one sits at that address). A relay
 * header naming someone else than the key that sealed it is refused.
 * Either lock mode.
 */
static bool arrived(struct ovl_dp *dp, struct rx_state *st,
                    const struct rx_dgram *d, struct dp_peer *p, bool data,
                    uint64_t now)
{
	struct ovl_path a = {.kind = OVL_PATH_DIRECT};

	if (d->relayed) {
		if (memcmp(d->src, p->id, OVL_PEER_ID_BYTES) != 0) {
			ovl_count_drop(dp->core, OVL_DROP_RELAY_REFUSED);
			return false;
		}
		socklen_t len = st->msgs[d->msg].msg_hdr.msg_namelen;
		const struct dp_peer *g = peer_at(dp, &st->src[d->msg], len, p);

		if (g) {
			a.kind = OVL_PATH_VIA;
			memcpy(a.via, g->pk, OVL_KEY_BYTES);
		} else {
			a.kind = OVL_PATH_VIA_ADDR;
			memcpy(&a.addr, &st->src[d->msg], len);
			a.addr_len = len;
		}
	}
	pthread_mutex_lock(&p->path_lock);
	if (ovl_paths_received(&p->paths, now, data, &a))
		path_moved(p, "roamed", &p->paths);
	pthread_mutex_unlock(&p->path_lock);
	return true;
}

static void refuse(struct ovl_dp *dp)
{
	ovl_count_drop(dp->core, OVL_DROP_RELAY_REFUSED);
}

/*
 * A gateway forwards a packet for another peer on its own path there. The
 * source's way back is learned too, but only onto one of its configured
 * paths: an unauthenticated packet must not send its traffic elsewhere.
 * Shared lock held.
 */
static void relay_forward(struct ovl_dp *dp, struct rx_state *st,
                          struct rx_dgram *d, const struct ovl_relay_header *h,
                          uint64_t now)
{
	const struct sockaddr_storage *from = &st->src[d->msg];
	socklen_t from_len = st->msgs[d->msg].msg_hdr.msg_namelen;

	if (!atomic_load_explicit(&dp->relay, memory_order_relaxed))
		return refuse(dp);
	struct dp_peer *dst = peer_by_id(dp, h->dst),
	               *src = peer_by_id(dp, h->src);

	if (!dst || !src || h->hops == 0)
		return refuse(dp);
	struct ovl_path back = {.kind = OVL_PATH_NONE};
	const struct dp_peer *g;

	if (same_addr(&src->ep, src->ep_len, from, from_len))
		back.kind = OVL_PATH_DIRECT;
	else if ((g = peer_at(dp, from, from_len, src))) {
		back.kind = OVL_PATH_VIA;
		memcpy(back.via, g->pk, OVL_KEY_BYTES);
	}
	struct ovl_path path;

	pthread_mutex_lock(&src->path_lock);
	if (back.kind != OVL_PATH_NONE &&
	    ovl_paths_learn(&src->paths, now, &back))
		path_moved(src, "relayed from there", &src->paths);
	pthread_mutex_unlock(&src->path_lock);
	pthread_mutex_lock(&dst->path_lock);
	path = *ovl_paths_current(&dst->paths);
	pthread_mutex_unlock(&dst->path_lock);
	struct dp_route rt;

	/* Never back where it came from: two gateways would ping-pong. */
	if (!route_of(dp, dst, &path, &rt) ||
	    same_addr(&rt.ep, rt.ep_len, from, from_len))
		return refuse(dp);
	d->pkt[1] = (uint8_t)(h->hops - 1);
	(void)sendto(dp->udp_fd, d->pkt, d->len, MSG_DONTWAIT,
	             (const struct sockaddr *)&rt.ep, rt.ep_len);
	atomic_fetch_add_explicit(&dp->relayed_packets, 1,
	                          memory_order_relaxed);
	atomic_fetch_add_explicit(&dp->relayed_bytes, d->len,
	                          memory_order_relaxed);
}

/*
 * A relayed packet: ours (d now points at the sealed packet inside, and
 * true), or another's to forward or refuse (false). Shared lock held.
 */
static bool relay_in(struct ovl_dp *dp, struct rx_state *st, struct rx_dgram *d,
                     uint64_t now)
{
	struct ovl_relay_header h;
	int off = ovl_relay_decode(d->pkt, d->len, &h);

	if (off < 0) {
		refuse(dp);
		return false;
	}
	if (memcmp(h.dst, dp->id, OVL_PEER_ID_BYTES) != 0) {
		relay_forward(dp, st, d, &h, now);
		return false;
	}
	d->pkt += off;
	d->len -= (size_t)off;
	d->relayed = true;
	memcpy(d->src, h.src, OVL_PEER_ID_BYTES);
	return true;
}

static void rx_exclusive(struct ovl_dp *dp, struct rx_state *st,
                         struct rx_dgram *d)
{
	struct ovl_recv r;
	uint64_t now = now_ms();

	ovl_core_recv(dp->core, d->pkt, d->len, now, wall_ns(), st->reply, &r);
	if (r.kind == OVL_RECV_DROP)
		return;
	struct dp_peer *p = ovl_tunnel_user(r.tunnel);
	const struct sockaddr_storage *src = &st->src[d->msg];

	if (!arrived(dp, st, d, p, r.kind == OVL_RECV_DATA && r.len, now))
		return;
	/* An authentic handshake sent straight tells us where the peer is
	 * now; one through a gateway, which gateway (arrived). */
	if (!d->relayed &&
	    (r.kind == OVL_RECV_REPLY || r.kind == OVL_RECV_ESTABLISHED)) {
		memcpy(&p->ep, src, st->msgs[d->msg].msg_hdr.msg_namelen);
		p->ep_len = st->msgs[d->msg].msg_hdr.msg_namelen;
	}
	if (r.kind == OVL_RECV_REPLY)
		send_to(dp, p, r.data, r.len, DP_SEND_KEEPALIVE);
	else if (r.kind == OVL_RECV_ESTABLISHED)
		flush_staged(dp, p, now, true);
	else if (r.len && inner_ok(dp, &r))
		tun_write_one(dp, (uint8_t *)r.data, r.len);
	else if (r.len)
		ovl_count_drop(dp->core, OVL_DROP_BAD_INNER);
	/* A session of theirs just became current: what waited for our own
	 * (abandoned, crossed) handshake can go now. */
	if (r.kind == OVL_RECV_DATA)
		flush_staged(dp, p, now, false);
}

static void rx_round(struct ovl_dp *dp, struct rx_state *st, int nmsg)
{
	int n = rx_split(st, nmsg), nout = 0, nlater = 0;
	uint64_t now = now_ms();

	pthread_rwlock_rdlock(&dp->lock);
	for (int i = 0; i < n; i++) {
		struct rx_dgram *d = &st->dg[i];
		struct ovl_recv r;

		st->later[i] = false;
		if (ovl_packet_type(d->pkt, d->len) == OVL_TYPE_RELAY &&
		    !relay_in(dp, st, d, now))
			continue;
		st->later[i] =
		    ovl_core_recv_exclusive(dp->core, d->pkt, d->len);
		if (st->later[i]) {
			nlater++;
			continue;
		}
		ovl_core_recv(dp->core, d->pkt, d->len, now, 0, st->reply, &r);
		if (r.kind != OVL_RECV_DATA ||
		    !arrived(dp, st, d, ovl_tunnel_user(r.tunnel), r.len > 0,
		             now) ||
		    !r.len)
			continue;
		if (!inner_ok(dp, &r)) {
			ovl_count_drop(dp->core, OVL_DROP_BAD_INNER);
			continue;
		}
		st->out[nout] = (uint8_t *)r.data;
		st->out_len[nout++] = r.len;
	}
	pthread_rwlock_unlock(&dp->lock);
	tun_write(dp, st, nout);
	if (!nlater)
		return;
	pthread_rwlock_wrlock(&dp->lock);
	for (int i = 0; i < n; i++)
		if (st->later[i])
			rx_exclusive(dp, st, &st->dg[i]);
	pthread_rwlock_unlock(&dp->lock);
}

/*
 * The path timers of every peer (exclusive lock): move off a dead path and
 * handshake on the next, answer received data with a keepalive, probe the
 * direct path now and then.
 */
static void paths_tick(struct ovl_dp *dp, uint64_t now)
{
	for (struct dp_peer *p = dp->peers; p; p = p->next) {
		pthread_mutex_lock(&p->path_lock);
		unsigned act = ovl_paths_tick(&p->paths, now);

		if (act & OVL_PATH_ACT_ROTATED)
			path_moved(p, "no answer", &p->paths);
		pthread_mutex_unlock(&p->path_lock);
		bool up = ovl_tunnel_established(p->tunnel, now);

		if (act & OVL_PATH_ACT_ROTATED)
			initiate(dp, p->tunnel);
		if ((act & OVL_PATH_ACT_KEEPALIVE) && up) {
			uint8_t ka[OVL_OVERHEAD];

			if (ovl_tunnel_seal(p->tunnel, ka, 0, now) > 0) {
				send_to(dp, p, ka, sizeof(ka),
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
			if (n > 0 && route_of(dp, p, &direct, &rt))
				send_route(dp, &rt, msg, (size_t)n);
		}
	}
}

static void *rx_main(void *arg)
{
	struct ovl_dp *dp = arg;
	struct rx_state *st = xcalloc(1, sizeof(*st));
	struct pollfd pfd[2] = {{dp->udp_fd, POLLIN, 0},
	                        {dp->stop_fd, POLLIN, 0}};
	uint64_t next_tick = now_ms() + DP_TICK_MS;

	pthread_setname_np(pthread_self(), "ovl-rx");
	for (;;) {
		uint64_t now = now_ms();

		if (now >= next_tick) {
			pthread_rwlock_wrlock(&dp->lock);
			paths_tick(dp, now);
			ovl_core_tick(dp->core, now, initiate, dp);
			expire_staged(dp, now);
			pthread_rwlock_unlock(&dp->lock);
			next_tick = now + DP_TICK_MS;
		}
		int r = poll(pfd, 2, (int)(next_tick - now));

		if (r < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (r <= 0 || !(pfd[0].revents & POLLIN))
			continue;
		for (int i = 0; i < DP_RX_MSGS; i++) {
			struct msghdr *h = &st->msgs[i].msg_hdr;

			st->iov[i].iov_base = st->bufs[i];
			st->iov[i].iov_len = DP_RX_BUF;
			memset(h, 0, sizeof(*h));
			h->msg_name = &st->src[i];
			h->msg_namelen = sizeof(st->src[i]);
			h->msg_iov = &st->iov[i];
			h->msg_iovlen = 1;
			h->msg_control = st->cmsg[i];
			h->msg_controllen = sizeof(st->cmsg[i]);
		}
		int m = recvmmsg(dp->udp_fd, st->msgs, DP_RX_MSGS, MSG_DONTWAIT,
		                 NULL);

		if (m > 0)
			rx_round(dp, st, m);
	}
	free(st);
	return NULL;
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
	rc = -pthread_create(&dp->rx, NULL, rx_main, dp);
	if (rc)
		goto err;
	dp->rx_started = true;
	rc = -pthread_create(&dp->tx, NULL, tx_main, dp);
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
	struct dp_peer *p = peer_find(dp, pk);

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
	pre.peer = peer_find(dp, pk);
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
	struct dp_peer *p = peer_find(dp, pk);

	if (p) {
		pthread_mutex_lock(&p->path_lock);
		ovl_paths_set(&p->paths, direct_ok, via, n_via, now_ms());
		path_moved(p, "configured", &p->paths);
		pthread_mutex_unlock(&p->path_lock);
	}
	pthread_rwlock_unlock(&dp->lock);
	return p ? 0 : -ENOENT;
}

int ovl_dp_peer_path(struct ovl_dp *dp, const uint8_t pk[OVL_KEY_BYTES],
                     char *out, size_t n)
{
	pthread_rwlock_rdlock(&dp->lock);
	struct dp_peer *p = peer_find(dp, pk);

	if (p) {
		pthread_mutex_lock(&p->path_lock);
		ovl_path_describe(ovl_paths_current(&p->paths), out, n);
		pthread_mutex_unlock(&p->path_lock);
	}
	pthread_rwlock_unlock(&dp->lock);
	return p ? 0 : -ENOENT;
}
