/*
 * The datapath's rx thread (see datapath.c): receives with recvmmsg (and
 * UDP GRO), opens each datagram under the shared lock, forwards what a
 * gateway relays for others, and writes the plaintext to the TUN, TCP
 * segments merged where the TUN takes GSO. Handshakes and the first packet
 * of a new session wait for the exclusive lock, taken after the round.
 * Between rounds, every DP_TICK_MS, the timers run: the paths', the
 * core's, and the staged packets' expiry.
 */
#include "datapath_int.h"
#include "mem.h"

#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DP_RX_MSGS 32    /* messages per recvmmsg */
#define DP_RX_BUF  65536 /* one message; more with UDP GRO */
#define DP_TICK_MS 250

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
		dp_path_moved(p, "roamed", &p->paths);
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
		dp_path_moved(src, "relayed from there", &src->paths);
	pthread_mutex_unlock(&src->path_lock);
	pthread_mutex_lock(&dst->path_lock);
	path = *ovl_paths_current(&dst->paths);
	pthread_mutex_unlock(&dst->path_lock);
	struct dp_route rt;

	/* Never back where it came from: two gateways would ping-pong. */
	if (!dp_route_of(dp, dst, &path, &rt) ||
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
		dp_send_to(dp, p, r.data, r.len, DP_SEND_KEEPALIVE);
	else if (r.kind == OVL_RECV_ESTABLISHED)
		dp_flush_staged(dp, p, now, true);
	else if (r.len && inner_ok(dp, &r))
		tun_write_one(dp, (uint8_t *)r.data, r.len);
	else if (r.len)
		ovl_count_drop(dp->core, OVL_DROP_BAD_INNER);
	/* A session of theirs just became current: what waited for our own
	 * (abandoned, crossed) handshake can go now. */
	if (r.kind == OVL_RECV_DATA)
		dp_flush_staged(dp, p, now, false);
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

void *dp_rx_main(void *arg)
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
			dp_paths_tick(dp, now);
			ovl_core_tick(dp->core, now, dp_initiate, dp);
			dp_expire_staged(dp, now);
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
