/*
 * Relay headers come from anyone on the network, and a gateway decodes
 * them before anything is authenticated. The first byte picks the way in:
 * even, the input as a relayed packet (decoded; when accepted, encoding the
 * header again must give the input's first bytes back, and what follows
 * must be a sealed packet the core would size-check the same way); odd,
 * the input as a sequence of path events on a clock (the path state must
 * stay in range whatever arrives).
 */
#include "crypto.h"
#include "log.h"
#include "ovl.h"
#include "ovl_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(const uint8_t *in, size_t n)
{
	struct ovl_relay_header h;
	uint8_t again[OVL_RELAY_LEN];
	int off = ovl_relay_decode(in, n, &h);

	if (off < 0)
		return;
	if (off != OVL_RELAY_LEN || n < OVL_RELAY_LEN + 4 ||
	    h.hops > OVL_RELAY_HOPS ||
	    memcmp(h.dst, h.src, OVL_PEER_ID_BYTES) == 0)
		abort();
	ovl_relay_encode(again, &h);
	if (memcmp(again, in, OVL_RELAY_LEN) != 0)
		abort();
	uint8_t t = ovl_packet_type(in + off, n - (size_t)off);

	if (t != OVL_TYPE_INITIATION && t != OVL_TYPE_RESPONSE &&
	    t != OVL_TYPE_TRANSPORT)
		abort();
}

static void paths(const uint8_t *in, size_t n)
{
	static const uint8_t via[3][OVL_KEY_BYTES] = {{1}, {2}, {3}};
	struct ovl_pathset ps;
	uint64_t now = 1;

	ovl_paths_init(&ps);
	for (size_t i = 0; i < n; i++) {
		struct ovl_path a = {.kind = (enum ovl_path_kind)(in[i] & 3)};

		memcpy(a.via, via[(in[i] >> 2) % 3], OVL_KEY_BYTES);
		a.addr_len = a.kind == OVL_PATH_VIA_ADDR ? 16 : 0;
		now += (uint64_t)(in[i] >> 4) * 700;
		switch ((in[i] >> 2) % 7) {
		case 0:
			ovl_paths_set(&ps, in[i] & 1, via, (in[i] >> 5) % 4,
			              now);
			break;
		case 1:
			ovl_paths_sent(&ps, now, in[i] & 1);
			break;
		case 2:
			ovl_paths_initiated(&ps, now);
			break;
		case 3:
			ovl_paths_received(&ps, now, in[i] & 1, &a);
			break;
		case 4:
			ovl_paths_learn(&ps, now, &a);
			break;
		case 5:
			ovl_paths_rotate(&ps, now);
			break;
		default:
			(void)ovl_paths_tick(&ps, now);
			break;
		}
		if (ps.n < 0 || ps.n > OVL_VIA_MAX + 1 || ps.cur < -1 ||
		    ps.cur >= ps.n + (ps.n == 0))
			abort();
		char desc[80];

		ovl_path_describe(ovl_paths_current(&ps), desc, sizeof(desc));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	if (data[0] & 1)
		paths(data + 1, size - 1);
	else
		decode(data + 1, size - 1);
	return 0;
}
