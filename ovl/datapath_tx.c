/*
 * The datapath's tx thread (see datapath.c): reads what the TUN has, cuts
 * GSO super-packets into segments, routes each by destination, seals it in
 * place behind room for a relay header and sends the round with sendmmsg,
 * as UDP GSO groups where consecutive packets go to one address at one
 * size. A packet for a peer with no session is staged; peers that want a
 * handshake get one after the round, under the exclusive lock.
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

#define DP_SEGS 192  /* sealed packets per tx round */
#define DP_SLOT 2048 /* one sealed packet, with room */

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
			dp_stage(dp, p, st->plain[i], st->len[i], now);
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
		struct dp_peer *p = dp_peer_find(dp, want[i]);

		if (p && ovl_tunnel_wants_handshake(p->tunnel, now))
			dp_initiate(dp, p->tunnel);
	}
	pthread_rwlock_unlock(&dp->lock);
}

void *dp_tx_main(void *arg)
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
