/*
 * The datapath's packet surgery against a naive reference: GSO super-packets
 * cut into segments whose IP and TCP checksums are checked with a plain
 * byte-by-byte sum, merged back into the same bytes, checksum completion,
 * ICMP "fragmentation needed", and the prefix table's longest match.
 */
#include "check.h"
#include "ovl.h"
#include "ovl_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>

/* The naive reference: the RFC 1071 sum, one 16-bit word at a time. */
static uint32_t ref_sum(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)(p[n - 1] << 8);
	return sum;
}

static uint16_t ref_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static bool ipv4_ok(const uint8_t *ip)
{
	return ref_fold(ref_sum(0, ip, 20)) == 0xffff;
}

static bool l4_ok(const uint8_t *ip, size_t len, uint8_t proto)
{
	bool v6 = ip[0] >> 4 == 6;
	size_t hl = v6 ? 40 : 20;
	uint32_t sum = v6 ? ref_sum(0, ip + 8, 32) : ref_sum(0, ip + 12, 8);

	sum += proto + (uint32_t)(len - hl);
	return ref_fold(ref_sum(sum, ip + hl, len - hl)) == 0xffff;
}

static size_t make_tcp(uint8_t *p, bool v6, size_t payload, uint32_t seq,
                       uint8_t flags)
{
	size_t hl = v6 ? 40 : 20;

	memset(p, 0, hl + 32);
	if (v6) {
		p[0] = 0x60;
		p[4] = (uint8_t)((32 + payload) >> 8);
		p[5] = (uint8_t)(32 + payload);
		p[6] = 6;
		p[7] = 64;
		p[8] = 0xfd;
		p[23] = 1;
		p[24] = 0xfd;
		p[39] = 2;
	} else {
		p[0] = 0x45;
		p[2] = (uint8_t)((hl + 32 + payload) >> 8);
		p[3] = (uint8_t)(hl + 32 + payload);
		p[4] = 0x12;
		p[5] = 0x34;
		p[6] = 0x40;
		p[8] = 64;
		p[9] = 6;
		memcpy(p + 12, "\x0a\x09\x01\x0a\x0a\x09\x02\x0a", 8);
	}
	uint8_t *t = p + hl;

	t[0] = 0x13;
	t[1] = 0x88;
	t[2] = 0x14;
	t[3] = 0x51;
	t[4] = (uint8_t)(seq >> 24);
	t[5] = (uint8_t)(seq >> 16);
	t[6] = (uint8_t)(seq >> 8);
	t[7] = (uint8_t)seq;
	t[11] = 7;    /* ack */
	t[12] = 0x80; /* 32-byte header: timestamps */
	t[13] = flags;
	t[14] = 0x01; /* window */
	memcpy(t + 20, "\x01\x01\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02", 12);
	for (size_t i = 0; i < payload; i++)
		t[32 + i] = (uint8_t)(i * 7 + 3);
	return hl + 32 + payload;
}

static uint8_t super[sizeof(struct virtio_net_hdr) + 65536];
static uint8_t segs[64][2048];
static uint8_t merged[sizeof(struct virtio_net_hdr) + 65536];

static void split_and_check(bool v6)
{
	struct virtio_net_hdr vh = {
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
	    .gso_type =
	        v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
	    .gso_size = 1388,
	    .csum_start = v6 ? 40 : 20,
	    .csum_offset = 16,
	};
	size_t payload = 5000, hl = v6 ? 40 : 20;
	size_t len = make_tcp(super + sizeof(vh), v6, payload, 1000, 0x18);
	uint8_t *out[64];
	size_t lens[64];

	memcpy(super, &vh, sizeof(vh));
	for (int i = 0; i < 64; i++)
		out[i] = segs[i];
	int k = ovl_offload_split(super, sizeof(vh) + len, out, lens, 64, 2048);

	CHECK(k == 4);
	size_t at = 0;

	for (int i = 0; i < k; i++) {
		uint8_t *s = segs[i], *t = s + hl;
		size_t pl = lens[i] - hl - 32;

		CHECK(pl == (i < 3 ? 1388u : 5000u - 3 * 1388));
		if (!v6) {
			CHECK(ipv4_ok(s));
			CHECK((size_t)(s[2] << 8 | s[3]) == lens[i]);
			CHECK(s[5] == (uint8_t)(0x34 + i));
		} else {
			CHECK((size_t)(s[4] << 8 | s[5]) == lens[i] - 40);
		}
		CHECK(l4_ok(s, lens[i], 6));
		uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 |
		               (uint32_t)t[6] << 8 | t[7];

		CHECK(seq == 1000 + at);
		CHECK((t[13] & 0x08) == (i == k - 1 ? 0x08 : 0));
		CHECK(memcmp(t + 32, super + sizeof(vh) + hl + 32 + at, pl) ==
		      0);
		at += pl;
	}
	if (v6)
		return;
	/* Merge them back: one super-packet with the same payload. */
	size_t mlen;
	int m = ovl_offload_merge(out, lens, k, merged, sizeof(merged), &mlen);

	CHECK(m == 4);
	struct virtio_net_hdr mh;

	memcpy(&mh, merged, sizeof(mh));
	CHECK(mh.gso_type == VIRTIO_NET_HDR_GSO_TCPV4);
	CHECK(mh.gso_size == 1388);
	CHECK(mh.csum_start == 20 && mh.csum_offset == 16);
	CHECK(mlen == sizeof(mh) + len);
	uint8_t *ip = merged + sizeof(mh);

	CHECK(ipv4_ok(ip));
	CHECK(memcmp(ip + 52, super + sizeof(vh) + 52, payload) == 0);
	CHECK(ip[33] & 0x08); /* PSH of the last */
	/* The partial checksum plus the data sums to a valid one. */
	uint32_t sum = ref_sum(0, ip + 20, len - 20);

	CHECK(ref_fold(sum) != 0); /* sanity: data present */
	/* A gap in the sequence stops the merge at it. */
	segs[2][20 + 7] ^= 1;
	m = ovl_offload_merge(out, lens, k, merged, sizeof(merged), &mlen);
	CHECK(m == 2);
	/* Other flows and non-TCP go alone. */
	segs[0][9] = 17;
	CHECK(ovl_offload_merge(out, lens, k, merged, sizeof(merged), &mlen) ==
	      1);
}

static void test_split_merge_v4(void)
{
	split_and_check(false);
}

static void test_split_v6(void)
{
	split_and_check(true);
}

static void test_checksum_completion(void)
{
	struct virtio_net_hdr vh = {
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
	    .csum_start = 20,
	    .csum_offset = 16,
	};
	uint8_t *ip = super + sizeof(vh);
	size_t len = make_tcp(ip, false, 333, 5, 0x18);
	/* What the kernel leaves: the pseudo-header sum in the field. */
	uint16_t ps = ref_fold(ref_sum(6 + (uint32_t)(len - 20), ip + 12, 8));

	ip[36] = (uint8_t)(ps >> 8);
	ip[37] = (uint8_t)ps;
	memcpy(super, &vh, sizeof(vh));
	uint8_t *out[1] = {segs[0]};
	size_t lens[1];

	CHECK(ovl_offload_split(super, sizeof(vh) + len, out, lens, 1, 2048) ==
	      1);
	CHECK(lens[0] == len);
	CHECK(l4_ok(segs[0], len, 6));
	/* Bad offsets and truncations are refused, not followed. */
	vh.csum_start = 2000;
	memcpy(super, &vh, sizeof(vh));
	CHECK(ovl_offload_split(super, sizeof(vh) + len, out, lens, 1, 2048) ==
	      -1);
	CHECK(ovl_offload_split(super, 5, out, lens, 1, 2048) == -1);
	vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	vh.gso_size = 0;
	memcpy(super, &vh, sizeof(vh));
	CHECK(ovl_offload_split(super, sizeof(vh) + len, out, lens, 1, 2048) ==
	      -1);
}

static void test_icmp_frag_needed(void)
{
	uint8_t pkt[1600], out[128];
	uint8_t src[4] = {10, 9, 1, 1};
	size_t len = make_tcp(pkt, false, 1500, 1, 0x10);
	int n = ovl_icmp_frag_needed(pkt, len, 1440, src, out, sizeof(out));

	CHECK(n == 20 + 8 + 28);
	CHECK(ipv4_ok(out));
	CHECK(out[9] == 1);
	CHECK(memcmp(out + 12, src, 4) == 0);
	CHECK(memcmp(out + 16, pkt + 12, 4) == 0);
	CHECK(out[20] == 3 && out[21] == 4);
	CHECK((out[26] << 8 | out[27]) == 1440);
	CHECK(ref_fold(ref_sum(0, out + 20, (size_t)n - 20)) == 0xffff);
	CHECK(memcmp(out + 28, pkt, 28) == 0);
	CHECK(ovl_icmp_frag_needed(pkt, 10, 1440, src, out, sizeof(out)) < 0);
}

static void test_prefixes(void)
{
	struct ovl_prefix_table tab = {0};
	struct ovl_prefix p;
	int a, b, c;
	const char *bad[] = {"",
	                     "x",
	                     "/8",
	                     "10.0.0.1/",
	                     "10.0.0.0/33",
	                     "10.0.0.0/-1",
	                     "10.0.0.0/8x",
	                     "fd00::/129"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(ovl_prefix_parse(bad[i], &p) == -EINVAL);
	CHECK(ovl_prefix_parse("10.9.0.0/16", &p) == 0);
	p.peer = &a;
	ovl_prefix_add(&tab, &p);
	CHECK(ovl_prefix_parse("10.9.2.77/24", &p) == 0); /* host bits */
	p.peer = &b;
	ovl_prefix_add(&tab, &p);
	CHECK(ovl_prefix_parse("fd00::/8", &p) == 0);
	p.peer = &c;
	ovl_prefix_add(&tab, &p);
	uint8_t pkt[128];

	make_tcp(pkt, false, 0, 0, 0x10); /* 10.9.1.10 -> 10.9.2.10 */
	CHECK(ovl_prefix_lookup(&tab, pkt, 52, false) == &b);
	CHECK(ovl_prefix_lookup(&tab, pkt, 52, true) == &a);
	CHECK(ovl_prefix_lookup(&tab, pkt, 10, true) == NULL);
	make_tcp(pkt, true, 0, 0, 0x10);
	CHECK(ovl_prefix_lookup(&tab, pkt, 72, false) == &c);
	CHECK(ovl_prefix_parse("10.9.2.0/24", &p) == 0);
	CHECK(ovl_prefix_remove(&tab, &p));
	CHECK(!ovl_prefix_remove(&tab, &p));
	make_tcp(pkt, false, 0, 0, 0x10);
	CHECK(ovl_prefix_lookup(&tab, pkt, 52, false) == &a);
	ovl_prefix_remove_peer(&tab, &a);
	CHECK(ovl_prefix_lookup(&tab, pkt, 52, false) == NULL);
	ovl_prefix_free(&tab);
}

int main(void)
{
	RUN(test_split_merge_v4);
	RUN(test_split_v6);
	RUN(test_checksum_completion);
	RUN(test_icmp_frag_needed);
	RUN(test_prefixes);
	return check_summary();
}
