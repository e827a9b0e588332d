/*
 * Tunnel packets come from anyone on the network. The first byte picks the
 * way in: 0 the input as a UDP payload to a host with an established
 * session (type dispatch, header checks, index lookup, replay window,
 * AEAD); 1 the input sealed by the peer and opened, which must give it back
 * exactly, then replayed, which must be dropped; 2 the input as what the TUN
 * hands over with a vnet header (cutting GSO super-packets); 3 the input cut
 * into packets to merge back (GRO); 4 the input as a prefix and a packet
 * to look up.
 */
#include "crypto.h"
#include "log.h"
#include "ovl.h"
#include "ovl_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ovl_core *a, *b;
static struct ovl_tunnel *ab, *ba;
static uint64_t wall = 1;

static void establish(void)
{
	uint8_t sk[32], pk[32], init[OVL_HANDSHAKE_MAX],
	    reply[OVL_HANDSHAKE_MAX];
	uint8_t resp[OVL_HANDSHAKE_MAX], ka[OVL_OVERHEAD];
	struct ovl_recv r;

	memset(sk, 1, sizeof(sk));
	a = ovl_core_new(sk);
	memset(sk, 2, sizeof(sk));
	b = ovl_core_new(sk);
	ovl_core_public_key(b, pk);
	ab = ovl_core_add_peer(a, pk);
	ovl_core_public_key(a, pk);
	ba = ovl_core_add_peer(b, pk);
	int n = ovl_tunnel_initiate(a, ab, 1, wall++, init);

	ovl_core_recv(b, init, (size_t)n, 1, wall, reply, &r);
	if (r.kind != OVL_RECV_REPLY)
		abort();
	memcpy(resp, r.data, r.len);
	ovl_core_recv(a, resp, r.len, 1, wall, reply, &r);
	if (r.kind != OVL_RECV_ESTABLISHED)
		abort();
	if (ovl_tunnel_seal(ab, ka, 0, 1) != OVL_OVERHEAD)
		abort();
	ovl_core_recv(b, ka, sizeof(ka), 1, wall, reply, &r);
	if (r.kind != OVL_RECV_DATA)
		abort();
}

static uint8_t buf[70000], copy[70000], segs[64][2048];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	if (!a) {
		mc_crypto_init();
		mc_log_set_level(MC_LOG_ERROR);
		establish();
	}
	if (size < 1 || size > 65536)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;

	switch (data[0] % 5) {
	case 0:
		memcpy(buf, in, n);
		ovl_core_recv(b, buf, n, 2, wall, reply, &r);
		if (r.kind == OVL_RECV_DATA &&
		    (r.data < buf || r.data + r.len > buf + n))
			abort();
		break;
	case 1: {
		memcpy(buf + OVL_HEADER_LEN, in, n);
		int len = ovl_tunnel_seal(ab, buf, n, 2);

		if (len != (int)(n + OVL_OVERHEAD))
			abort();
		memcpy(copy, buf, (size_t)len);
		ovl_core_recv(b, buf, (size_t)len, 2, wall, reply, &r);
		if (r.kind != OVL_RECV_DATA || r.len != n ||
		    memcmp(r.data, in, n) != 0)
			abort();
		ovl_core_recv(b, copy, (size_t)len, 2, wall, reply, &r);
		if (r.kind != OVL_RECV_DROP || r.drop != OVL_DROP_REPLAY)
			abort();
		break;
	}
	case 2: {
		uint8_t *out[64];
		size_t lens[64];

		for (int i = 0; i < 64; i++)
			out[i] = segs[i];
		int k =
		    ovl_offload_split(in, n, out, lens, 64, sizeof(segs[0]));

		for (int i = 0; i < k; i++)
			if (lens[i] > sizeof(segs[0]))
				abort();
		break;
	}
	case 3: {
		/* Each packet: a length byte pair, then that many bytes. */
		uint8_t *pk[64];
		size_t lens[64], out_len = 0;
		int np = 0;

		for (size_t at = 0; at + 2 <= n && np < 64;) {
			size_t l = (size_t)in[at] << 8 | in[at + 1];

			at += 2;
			if (l > n - at || l > sizeof(segs[0]))
				l = n - at < sizeof(segs[0]) ? n - at
				                             : sizeof(segs[0]);
			memcpy(segs[np], in + at, l);
			pk[np] = segs[np];
			lens[np++] = l;
			at += l;
		}
		if (np > 0) {
			int k = ovl_offload_merge(pk, lens, np, buf,
			                          sizeof(buf), &out_len);

			if (k < 1 || k > np || (k > 1 && out_len > sizeof(buf)))
				abort();
		}
		break;
	}
	default: {
		struct ovl_prefix_table tab = {0};
		struct ovl_prefix p;
		char cidr[64];
		size_t l = n < 63 ? n : 63;

		memcpy(cidr, in, l);
		cidr[l] = 0;
		if (ovl_prefix_parse(cidr, &p) == 0) {
			p.peer = &tab;
			ovl_prefix_add(&tab, &p);
			(void)ovl_prefix_lookup(&tab, in, n, false);
			(void)ovl_prefix_lookup(&tab, in, n, true);
			if (!ovl_prefix_remove(&tab, &p))
				abort();
		}
		ovl_prefix_free(&tab);
		break;
	}
	}
	return 0;
}
