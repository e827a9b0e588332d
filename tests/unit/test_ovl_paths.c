/*
 * The relay header codec and a peer's path choice, with the clock passed
 * in: the header round trip and every malformed variant, then the path
 * rotation (direct first, gateways in order, round-robin), moving on after
 * an unanswered handshake or silent data, keepalives on the quiet side,
 * roaming to where an authentic packet came from, relays learning only
 * configured paths, and the direct probe.
 */
#include "check.h"
#include "crypto.h"
#include "ovl.h"
#include "ovl_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static void relay_packet(uint8_t *pkt, uint8_t hops, uint8_t inner_type,
                         size_t inner_len)
{
	struct ovl_relay_header h = {.hops = hops};

	memset(h.dst, 0xd1, sizeof(h.dst));
	memset(h.src, 0x51, sizeof(h.src));
	ovl_relay_encode(pkt, &h);
	memset(pkt + OVL_RELAY_LEN, 0x77, inner_len);
	pkt[OVL_RELAY_LEN] = inner_type;
	memset(pkt + OVL_RELAY_LEN + 1, 0, 3);
}

static void test_relay_codec(void)
{
	uint8_t pkt[OVL_RELAY_LEN + 200];
	struct ovl_relay_header h;

	relay_packet(pkt, 4, OVL_TYPE_TRANSPORT, OVL_OVERHEAD + 10);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_OVERHEAD + 10, &h) ==
	      OVL_RELAY_LEN);
	CHECK(h.hops == 4);
	CHECK(h.dst[0] == 0xd1 && h.dst[7] == 0xd1);
	CHECK(h.src[0] == 0x51 && h.src[7] == 0x51);
	CHECK(pkt[0] == OVL_TYPE_RELAY && pkt[2] == 0 && pkt[3] == 0);
	/* A keepalive, the smallest transport packet, goes through. */
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_OVERHEAD, &h) ==
	      OVL_RELAY_LEN);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_OVERHEAD - 1, &h) ==
	      -EBADMSG);
	/* Handshakes: their exact sizes only. */
	relay_packet(pkt, 0, OVL_TYPE_INITIATION, OVL_INITIATION_LEN);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_INITIATION_LEN, &h) ==
	      OVL_RELAY_LEN);
	CHECK(h.hops == 0);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_INITIATION_LEN - 1,
	                       &h) == -EBADMSG);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_INITIATION_LEN + 1,
	                       &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_RESPONSE, OVL_RESPONSE_LEN);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_RESPONSE_LEN, &h) ==
	      OVL_RELAY_LEN);
	CHECK(ovl_relay_decode(pkt, OVL_RELAY_LEN + OVL_RESPONSE_LEN + 4, &h) ==
	      -EBADMSG);
	/* Every other malformed variant. */
	size_t len = OVL_RELAY_LEN + OVL_OVERHEAD;

	relay_packet(pkt, OVL_RELAY_HOPS + 1, OVL_TYPE_TRANSPORT, OVL_OVERHEAD);
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_TRANSPORT, OVL_OVERHEAD);
	pkt[2] = 1;
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_TRANSPORT, OVL_OVERHEAD);
	pkt[3] = 1;
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_TRANSPORT, OVL_OVERHEAD);
	pkt[0] = OVL_TYPE_TRANSPORT;
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_TRANSPORT, OVL_OVERHEAD);
	pkt[OVL_RELAY_LEN + 2] = 1; /* inner reserved byte */
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_RELAY, OVL_OVERHEAD); /* nested */
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, 9, OVL_OVERHEAD);
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG);
	relay_packet(pkt, 1, OVL_TYPE_TRANSPORT, OVL_OVERHEAD);
	memset(pkt + 4 + OVL_PEER_ID_BYTES, 0xd1, OVL_PEER_ID_BYTES);
	CHECK(ovl_relay_decode(pkt, len, &h) == -EBADMSG); /* dst == src */
	for (size_t n = 0; n < OVL_RELAY_LEN + 4; n++)
		CHECK(ovl_relay_decode(pkt, n, &h) == -EBADMSG);
	CHECK(ovl_relay_decode(NULL, 0, &h) == -EBADMSG);
}

static void test_peer_id(void)
{
	uint8_t pk[OVL_KEY_BYTES], id[OVL_PEER_ID_BYTES], h[32];

	memset(pk, 0x42, sizeof(pk));
	ovl_peer_id(pk, id);
	mc_hash(h, sizeof(h), pk, sizeof(pk)); /* BLAKE2b-256 */
	CHECK(memcmp(id, h, sizeof(id)) == 0);
}

static uint8_t gw[3][OVL_KEY_BYTES];

static bool is_via(const struct ovl_pathset *ps, int g)
{
	const struct ovl_path *p = ovl_paths_current(ps);

	return p->kind == OVL_PATH_VIA &&
	       memcmp(p->via, gw[g], OVL_KEY_BYTES) == 0;
}

static bool is_direct(const struct ovl_pathset *ps)
{
	return ovl_paths_current(ps)->kind == OVL_PATH_DIRECT;
}

static void test_defaults_and_set(void)
{
	struct ovl_pathset ps;
	char desc[80];

	ovl_paths_init(&ps);
	CHECK(is_direct(&ps));
	CHECK(!ovl_paths_rotate(&ps, 1)); /* one path: stays */
	CHECK(is_direct(&ps));
	CHECK_EQ_U64(ps.changes, 0);
	ovl_paths_set(&ps, false, (const void *)gw, 2, 1);
	CHECK(is_via(&ps, 0));
	CHECK_EQ_U64(ps.n, 2);
	CHECK_EQ_U64(ps.changes, 1);
	ovl_path_describe(ovl_paths_current(&ps), desc, sizeof(desc));
	CHECK_STR(desc, "via a0a1a2a3");
	ovl_paths_set(&ps, true, (const void *)gw, 3, 1);
	CHECK(is_direct(&ps));
	ovl_path_describe(ovl_paths_current(&ps), desc, sizeof(desc));
	CHECK_STR(desc, "direct");
	CHECK(ovl_paths_has_via(&ps, gw[2]));
	ovl_paths_set(&ps, true, (const void *)gw, 2, 1);
	CHECK(!ovl_paths_has_via(&ps, gw[2]));
	ovl_paths_set(&ps, false, NULL, 0, 1);
	ovl_path_describe(ovl_paths_current(&ps), desc, sizeof(desc));
	CHECK_STR(desc, "none");
}

static void test_rotation(void)
{
	struct ovl_pathset ps;
	uint64_t t = 1000;

	ovl_paths_init(&ps);
	ovl_paths_set(&ps, true, (const void *)gw, 2, t);
	/* Round-robin: direct, gw0, gw1, direct. */
	CHECK(ovl_paths_rotate(&ps, t) && is_via(&ps, 0));
	CHECK(ovl_paths_rotate(&ps, t) && is_via(&ps, 1));
	CHECK(ovl_paths_rotate(&ps, t) && is_direct(&ps));
	CHECK_EQ_U64(ps.changes, 3);

	/* An initiation unanswered: nothing before the bound, a move at it. */
	ovl_paths_initiated(&ps, t);
	CHECK(ovl_paths_tick(&ps, t + OVL_PATH_HANDSHAKE_MS - 1) == 0);
	CHECK(ovl_paths_tick(&ps, t + OVL_PATH_HANDSHAKE_MS) &
	      OVL_PATH_ACT_ROTATED);
	CHECK(is_via(&ps, 0));
	t += OVL_PATH_HANDSHAKE_MS;
	/* Answered in time: it stays. */
	ovl_paths_initiated(&ps, t);
	CHECK(!ovl_paths_received(&ps, t + 10, false, ovl_paths_current(&ps)));
	CHECK(!(ovl_paths_tick(&ps, t + 60000) & OVL_PATH_ACT_ROTATED));
	CHECK(is_via(&ps, 0));
	t += 60000;

	/* Data sent, then silence: a move after OVL_PATH_DEAD_MS; sending
	 * more does not restart the clock. */
	ovl_paths_sent(&ps, t, true);
	ovl_paths_sent(&ps, t + 3000, true);
	CHECK(!(ovl_paths_tick(&ps, t + OVL_PATH_DEAD_MS - 1) &
	        OVL_PATH_ACT_ROTATED));
	CHECK(ovl_paths_tick(&ps, t + OVL_PATH_DEAD_MS) & OVL_PATH_ACT_ROTATED);
	CHECK(is_via(&ps, 1));
	t += OVL_PATH_DEAD_MS;
	/* Keepalives (not data) start no clock. */
	ovl_paths_sent(&ps, t, false);
	CHECK(!(ovl_paths_tick(&ps, t + 100000) & OVL_PATH_ACT_ROTATED));
	/* Data answered by anything authentic: no move. */
	t += 100000;
	ovl_paths_sent(&ps, t, true);
	ovl_paths_received(&ps, t + 3000, false, ovl_paths_current(&ps));
	CHECK(!(ovl_paths_tick(&ps, t + OVL_PATH_DEAD_MS + 1) &
	        OVL_PATH_ACT_ROTATED));
	CHECK(is_via(&ps, 1));

	/* With a single path a dead one still asks for a new handshake. */
	ovl_paths_set(&ps, false, (const void *)gw, 1, t);
	ovl_paths_sent(&ps, t, true);
	CHECK(ovl_paths_tick(&ps, t + OVL_PATH_DEAD_MS) & OVL_PATH_ACT_ROTATED);
	CHECK(is_via(&ps, 0));
}

static void test_keepalive(void)
{
	struct ovl_pathset ps;
	uint64_t t = 5000;

	ovl_paths_init(&ps);
	CHECK(ovl_paths_tick(&ps, t) == 0);
	/* Data received and nothing sent back: a keepalive after a second. */
	ovl_paths_received(&ps, t, true, NULL);
	CHECK(!(ovl_paths_tick(&ps, t + OVL_PATH_KEEPALIVE_MS - 1) &
	        OVL_PATH_ACT_KEEPALIVE));
	CHECK(ovl_paths_tick(&ps, t + OVL_PATH_KEEPALIVE_MS) &
	      OVL_PATH_ACT_KEEPALIVE);
	ovl_paths_sent(&ps, t + OVL_PATH_KEEPALIVE_MS, false);
	CHECK(!(ovl_paths_tick(&ps, t + 10 * OVL_PATH_KEEPALIVE_MS) &
	        OVL_PATH_ACT_KEEPALIVE));
	/* A keepalive received asks for none. */
	t += 20000;
	ovl_paths_received(&ps, t, false, NULL);
	CHECK(!(ovl_paths_tick(&ps, t + 10 * OVL_PATH_KEEPALIVE_MS) &
	        OVL_PATH_ACT_KEEPALIVE));
	/* Data answered by data: none either. */
	ovl_paths_received(&ps, t, true, NULL);
	ovl_paths_sent(&ps, t + 5, true);
	CHECK(!(ovl_paths_tick(&ps, t + OVL_PATH_KEEPALIVE_MS + 5) &
	        OVL_PATH_ACT_KEEPALIVE));
}

static void test_roaming_and_learning(void)
{
	struct ovl_pathset ps;
	struct ovl_path a = {.kind = OVL_PATH_VIA};
	char desc[80];

	ovl_paths_init(&ps);
	ovl_paths_set(&ps, false, (const void *)gw, 2, 1);
	/* An authentic packet through gw1: answer that way. */
	memcpy(a.via, gw[1], OVL_KEY_BYTES);
	CHECK(ovl_paths_received(&ps, 10, false, &a));
	CHECK(is_via(&ps, 1));
	CHECK(!ovl_paths_received(&ps, 11, false, &a)); /* no change */
	/* Through an address no gateway of ours has: learned, then a
	 * rotation goes back to the configured list's start. */
	struct ovl_path x = {.kind = OVL_PATH_VIA_ADDR};
	struct sockaddr_in *in = (struct sockaddr_in *)&x.addr;

	in->sin_family = AF_INET;
	in->sin_port = htons(7701);
	in->sin_addr.s_addr = htonl(0xc6120009);
	x.addr_len = sizeof(*in);
	CHECK(ovl_paths_received(&ps, 12, false, &x));
	CHECK(ps.cur == -1);
	ovl_path_describe(ovl_paths_current(&ps), desc, sizeof(desc));
	CHECK_STR(desc, "via 198.18.0.9:7701");
	CHECK(ovl_paths_rotate(&ps, 13) && is_via(&ps, 0));
	/* Straight from the peer: direct, even if not configured. */
	struct ovl_path d = {.kind = OVL_PATH_DIRECT};

	CHECK(ovl_paths_received(&ps, 14, false, &d) && is_direct(&ps));

	/* A relay learns only configured paths, and keeps the timers. */
	ovl_paths_set(&ps, false, (const void *)gw, 2, 20);
	ovl_paths_sent(&ps, 20, true);
	CHECK(!ovl_paths_learn(&ps, 21, &x));
	CHECK(!ovl_paths_learn(&ps, 21, &d));
	CHECK(is_via(&ps, 0));
	CHECK(ovl_paths_learn(&ps, 22, &a) && is_via(&ps, 1));
	CHECK(ps.data_since_ms == 20);
	a.kind = OVL_PATH_VIA;
	memcpy(a.via, gw[2], OVL_KEY_BYTES); /* not in the list */
	CHECK(!ovl_paths_learn(&ps, 23, &a));
}

static void test_direct_probe(void)
{
	struct ovl_pathset ps;
	uint64_t t = 1000;

	ovl_paths_init(&ps);
	ovl_paths_set(&ps, true, (const void *)gw, 1, t);
	CHECK(!(ovl_paths_tick(&ps, t + 2 * OVL_PATH_DIRECT_RETRY_MS) &
	        OVL_PATH_ACT_PROBE)); /* on direct already */
	t += 2 * OVL_PATH_DIRECT_RETRY_MS;
	CHECK(ovl_paths_rotate(&ps, t) && is_via(&ps, 0));
	CHECK(!(ovl_paths_tick(&ps, t + OVL_PATH_DIRECT_RETRY_MS - 1) &
	        OVL_PATH_ACT_PROBE));
	CHECK(ovl_paths_tick(&ps, t + OVL_PATH_DIRECT_RETRY_MS) &
	      OVL_PATH_ACT_PROBE);
	CHECK(!(ovl_paths_tick(&ps, t + OVL_PATH_DIRECT_RETRY_MS + 1) &
	        OVL_PATH_ACT_PROBE));
	CHECK(ovl_paths_tick(&ps, t + 2 * OVL_PATH_DIRECT_RETRY_MS) &
	      OVL_PATH_ACT_PROBE);
	CHECK(is_via(&ps, 0)); /* probing moves nothing by itself */
	/* Answered straight: back to direct. */
	struct ovl_path d = {.kind = OVL_PATH_DIRECT};

	CHECK(ovl_paths_received(&ps, t + 2 * OVL_PATH_DIRECT_RETRY_MS + 5,
	                         false, &d));
	CHECK(is_direct(&ps));
	/* No direct path configured: never a probe. */
	ovl_paths_set(&ps, false, (const void *)gw, 1, t);
	CHECK(!(ovl_paths_tick(&ps, t + 10 * OVL_PATH_DIRECT_RETRY_MS) &
	        OVL_PATH_ACT_PROBE));
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	for (int g = 0; g < 3; g++)
		for (int i = 0; i < OVL_KEY_BYTES; i++)
			gw[g][i] = (uint8_t)(0xa0 + 0x10 * g + i);
	RUN(test_relay_codec);
	RUN(test_peer_id);
	RUN(test_defaults_and_set);
	RUN(test_rotation);
	RUN(test_keepalive);
	RUN(test_roaming_and_learning);
	RUN(test_direct_probe);
	return check_summary();
}
