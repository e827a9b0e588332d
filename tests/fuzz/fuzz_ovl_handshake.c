/*
 * Handshake messages come from anyone on the network. The first byte picks
 * the way in: 0 the input as an initiation or response to a host that knows
 * one peer; 1 a real initiation from that peer with the input XORed over it
 * (reaching the DH, decryption and timestamp checks); 2 the same over a real
 * response to an initiation of ours. A changed message must never complete
 * a handshake, and an unchanged one must.
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

static void setup(void)
{
	uint8_t sk[32], pk[32];

	memset(sk, 3, sizeof(sk));
	a = ovl_core_new(sk);
	memset(sk, 4, sizeof(sk));
	b = ovl_core_new(sk);
	ovl_core_public_key(b, pk);
	ab = ovl_core_add_peer(a, pk);
	ovl_core_public_key(a, pk);
	ba = ovl_core_add_peer(b, pk);
}

static bool xor_in(uint8_t *msg, size_t len, const uint8_t *in, size_t n)
{
	bool changed = false;

	for (size_t i = 0; i < n && i < len; i++) {
		msg[i] ^= in[i];
		changed |= in[i] != 0;
	}
	return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t msg[OVL_HANDSHAKE_MAX + 64], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	if (!a) {
		mc_crypto_init();
		mc_log_set_level(MC_LOG_ERROR);
		setup();
	}
	if (size < 1 || size > sizeof(msg))
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;

	switch (data[0] % 3) {
	case 0:
		memcpy(msg, in, n);
		ovl_core_recv(b, msg, n, 1, wall, reply, &r);
		if (r.kind != OVL_RECV_DROP)
			abort();
		ovl_core_recv(a, msg, n, 1, wall, reply, &r);
		if (r.kind != OVL_RECV_DROP)
			abort();
		break;
	case 1: {
		int len = ovl_tunnel_initiate(a, ab, 1, ++wall, msg);
		bool changed = xor_in(msg, (size_t)len, in, n);

		ovl_core_recv(b, msg, (size_t)len, 1, wall, reply, &r);
		if (changed != (r.kind == OVL_RECV_DROP))
			abort();
		if (r.kind == OVL_RECV_REPLY && r.len != OVL_RESPONSE_LEN)
			abort();
		break;
	}
	default: {
		int len = ovl_tunnel_initiate(a, ab, 1, ++wall, msg);

		ovl_core_recv(b, msg, (size_t)len, 1, wall, reply, &r);
		if (r.kind != OVL_RECV_REPLY)
			abort();
		memcpy(msg, r.data, r.len);
		bool changed = xor_in(msg, r.len, in, n);

		ovl_core_recv(a, msg, OVL_RESPONSE_LEN, 1, wall, reply, &r);
		if (changed != (r.kind == OVL_RECV_DROP))
			abort();
		break;
	}
	}
	return 0;
}
