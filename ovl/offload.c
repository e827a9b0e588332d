/*
 * The TUN's offloads done by hand: with IFF_VNET_HDR the kernel hands us
 * TCP "super-packets" of up to 64 KiB (GSO) with the checksum left to us,
 * which we cut into segments that fit the overlay MTU; on the way back we
 * merge consecutive segments of one TCP flow into one super-packet (GRO),
 * so the kernel's TCP stack sees few large packets, as wireguard-go does.
 * Every length is checked against the buffer before it is used.
 */
#include "ovl_int.h"

#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <string.h>

static uint64_t sum_bytes(uint64_t sum, const uint8_t *p, size_t n)
{
	while (n >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		sum += w;
		p += 4;
		n -= 4;
	}
	if (n >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		sum += w;
		p += 2;
		n -= 2;
	}
	if (n) {
		uint16_t w = 0;

		memcpy(&w, p, 1);
		sum += w;
	}
	return sum;
}

static uint16_t fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The pseudo-header sum for TCP/UDP over IPv4 or IPv6 (network order). */
static uint64_t pseudo_sum(const uint8_t *ip, bool v6, uint8_t proto,
                           uint32_t l4len)
{
	uint64_t sum = v6 ? sum_bytes(0, ip + 8, 32) : sum_bytes(0, ip + 12, 8);

	sum += htons(proto);
	sum += htons((uint16_t)(l4len >> 16)) + htons((uint16_t)l4len);
	return sum;
}

static void ipv4_fix_checksum(uint8_t *ip, size_t ihl)
{
	ip[10] = ip[11] = 0;
	uint16_t c = (uint16_t)~fold(sum_bytes(0, ip, ihl));

	memcpy(ip + 10, &c, 2);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

int ovl_offload_split(const uint8_t *pkt, size_t len, uint8_t *const *out,
                      size_t *out_len, int max_out, size_t seg_cap)
{
	struct virtio_net_hdr vh;

	if (len < sizeof(vh))
		return -1;
	memcpy(&vh, pkt, sizeof(vh));
	pkt += sizeof(vh);
	len -= sizeof(vh);
	if (len < 20 || len > 65535)
		return -1;
	bool v6 = (pkt[0] >> 4) == 6;
	uint8_t gso = vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;

	if (gso == VIRTIO_NET_HDR_GSO_NONE) {
		if (len > seg_cap || max_out < 1)
			return -1;
		memcpy(out[0], pkt, len);
		out_len[0] = len;
		if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
			size_t start = vh.csum_start, off = vh.csum_offset;

			if (start >= len || start + off + 2 > len)
				return -1;
			out[0][start + off] = out[0][start + off + 1] = 0;
			/* The field held the pseudo-header sum; fold it in. */
			uint64_t s = sum_bytes(0, pkt + start, len - start);
			uint16_t c = (uint16_t)~fold(s);

			memcpy(out[0] + start + off, &c, 2);
		}
		return 1;
	}
	if (gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
		return -1;
	size_t iphl = v6 ? 40 : (size_t)(pkt[0] & 15) * 4;

	if ((gso == VIRTIO_NET_HDR_GSO_TCPV6) != v6 || iphl < 20 ||
	    iphl + 20 > len)
		return -1;
	if (v6 ? pkt[6] != IPPROTO_TCP : pkt[9] != IPPROTO_TCP)
		return -1;
	size_t thl = (size_t)(pkt[iphl + 12] >> 4) * 4;
	size_t hdr = iphl + thl;
	size_t mss = vh.gso_size;

	if (thl < 20 || hdr > len || mss == 0 || hdr + mss > seg_cap)
		return -1;
	size_t payload = len - hdr;
	int nseg = (int)((payload + mss - 1) / mss);

	if (nseg < 1 || nseg > max_out)
		return -1;
	uint32_t seq = get_be32(pkt + iphl + 4);
	uint16_t id = v6 ? 0 : get_be16(pkt + 4);
	uint8_t flags = pkt[iphl + 13];

	for (int i = 0; i < nseg; i++) {
		size_t off = (size_t)i * mss;
		size_t n = payload - off < mss ? payload - off : mss;
		uint8_t *s = out[i];

		memcpy(s, pkt, hdr);
		memcpy(s + hdr, pkt + hdr + off, n);
		out_len[i] = hdr + n;
		if (v6) {
			put_be16(s + 4, (uint16_t)(thl + n));
		} else {
			put_be16(s + 2, (uint16_t)(hdr + n));
			put_be16(s + 4, (uint16_t)(id + i));
			ipv4_fix_checksum(s, iphl);
		}
		uint8_t *th = s + iphl;

		put_be32(th + 4, seq + (uint32_t)off);
		uint8_t f = flags;

		if (i + 1 < nseg)
			f &= (uint8_t) ~(0x01 | 0x08); /* FIN, PSH: last only */
		if (i > 0)
			f &= (uint8_t)~0x80; /* CWR: first only */
		th[13] = f;
		th[16] = th[17] = 0;
		uint64_t sum =
		    pseudo_sum(s, v6, IPPROTO_TCP, (uint32_t)(thl + n));
		uint16_t c = (uint16_t)~fold(sum_bytes(sum, th, thl + n));

		memcpy(th + 16, &c, 2);
	}
	return nseg;
}

/* Whether p is an IPv4 TCP segment that may take part in a merge. */
static bool mergeable(const uint8_t *p, size_t len)
{
	if (len < 40 || p[0] != 0x45 || p[9] != IPPROTO_TCP)
		return false;
	if (get_be16(p + 2) != len || (get_be16(p + 6) & 0x3fff))
		return false; /* fragments */
	size_t thl = (size_t)(p[20 + 12] >> 4) * 4;

	if (thl < 20 || 20 + thl >= len)
		return false; /* no payload */
	/* Only ACK (and PSH on the last); SYN, FIN, RST, URG, CWR end it. */
	return (p[33] & ~0x18) == 0 && (p[33] & 0x10);
}

/* Whether q continues prev (which follows first) in the same flow. */
static bool continues(const uint8_t *first, const uint8_t *prev,
                      size_t prev_len, const uint8_t *q, size_t qlen)
{
	size_t thl = (size_t)(first[32] >> 4) * 4;

	if (!mergeable(q, qlen) || (size_t)(q[32] >> 4) * 4 != thl)
		return false;
	/* Same addresses, ports, TTL, TOS and DF; same ACK; same options. */
	if (memcmp(first + 12, q + 12, 8) || memcmp(first + 20, q + 20, 4) ||
	    first[1] != q[1] || first[8] != q[8] ||
	    (first[6] & 0x40) != (q[6] & 0x40) ||
	    memcmp(first + 28, q + 28, 4) ||
	    memcmp(first + 40, q + 40, thl - 20))
		return false;
	if (prev[33] & 0x08)
		return false; /* PSH ended the run */
	size_t prev_payload = prev_len - 20 - thl;

	return get_be32(q + 24) == get_be32(prev + 24) + prev_payload;
}

int ovl_offload_merge(uint8_t *const *pkts, const size_t *lens, int n,
                      uint8_t *out, size_t cap, size_t *out_len)
{
	if (n < 2 || !mergeable(pkts[0], lens[0]))
		return 1;
	const uint8_t *first = pkts[0];
	size_t thl = (size_t)(first[32] >> 4) * 4, hdr = 20 + thl;
	size_t mss = lens[0] - hdr;
	size_t total = lens[0];
	int k = 1;

	while (k < n &&
	       continues(first, pkts[k - 1], lens[k - 1], pkts[k], lens[k])) {
		size_t pl = lens[k] - hdr;

		/* Every segment but the last has the first one's size. */
		if (lens[k - 1] - hdr != mss || pl > mss ||
		    total + pl > 65535 ||
		    sizeof(struct virtio_net_hdr) + total + pl > cap)
			break;
		total += pl;
		k++;
	}
	if (k < 2)
		return 1;
	struct virtio_net_hdr vh = {
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
	    .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
	    .hdr_len = (uint16_t)hdr,
	    .gso_size = (uint16_t)mss,
	    .csum_start = 20,
	    .csum_offset = 16,
	};
	uint8_t *p = out + sizeof(vh);

	memcpy(out, &vh, sizeof(vh));
	memcpy(p, first, hdr);
	size_t at = hdr;

	for (int i = 0; i < k; i++) {
		memcpy(p + at, pkts[i] + hdr, lens[i] - hdr);
		at += lens[i] - hdr;
	}
	const uint8_t *last = pkts[k - 1];

	put_be16(p + 2, (uint16_t)total);
	ipv4_fix_checksum(p, 20);
	p[33] |= last[33] & 0x08;     /* PSH of the last */
	memcpy(p + 34, last + 34, 2); /* its window */
	/* Checksum left partial: the pseudo-header sum, not inverted. */
	uint16_t c =
	    fold(pseudo_sum(p, false, IPPROTO_TCP, (uint32_t)(total - 20)));

	memcpy(p + 36, &c, 2);
	*out_len = sizeof(vh) + total;
	return k;
}

int ovl_icmp_frag_needed(const uint8_t *pkt, size_t len, unsigned mtu,
                         const uint8_t src[4], uint8_t *out, size_t cap)
{
	size_t quote = len < 28 ? len : 28; /* IP header + 8 bytes */
	size_t n = 20 + 8 + quote;

	if (len < 20 || (pkt[0] >> 4) != 4 || cap < n)
		return -1;
	memset(out, 0, 28);
	out[0] = 0x45;
	put_be16(out + 2, (uint16_t)n);
	out[8] = 64;
	out[9] = IPPROTO_ICMP;
	memcpy(out + 12, src, 4);
	memcpy(out + 16, pkt + 12, 4); /* back to the sender */
	ipv4_fix_checksum(out, 20);
	uint8_t *icmp = out + 20;

	icmp[0] = 3; /* destination unreachable */
	icmp[1] = 4; /* fragmentation needed */
	put_be16(icmp + 6, (uint16_t)mtu);
	memcpy(icmp + 8, pkt, quote);
	uint16_t c = (uint16_t)~fold(sum_bytes(0, icmp, 8 + quote));

	memcpy(icmp + 2, &c, 2);
	return (int)n;
}
