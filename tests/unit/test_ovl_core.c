/*
 * The tunnel core without I/O: two cores hand each other packets directly.
 * Handshakes both ways, transport round trips, the replay window's edges,
 * rekeying with the old session kept briefly, wrong keys, a tampered byte at
 * every position, counter exhaustion, and replayed handshakes.
 */
#include "check.h"
#include "crypto.h"
#include "ovl.h"
#include "ovl_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct host {
	struct ovl_core *core;
	uint8_t pk[32];
	struct ovl_tunnel *peer;
};

static uint64_t wall = 1700000000ull * 1000000000ull;

static void host_init(struct host *h, uint8_t seed)
{
	uint8_t sk[32];

	memset(sk, seed, sizeof(sk));
	h->core = ovl_core_new(sk);
	ovl_core_public_key(h->core, h->pk);
}

static void pair(struct host *a, struct host *b, uint8_t sa, uint8_t sb)
{
	host_init(a, sa);
	host_init(b, sb);
	a->peer = ovl_core_add_peer(a->core, b->pk);
	b->peer = ovl_core_add_peer(b->core, a->pk);
}

static void unpair(struct host *a, struct host *b)
{
	ovl_core_free(a->core);
	ovl_core_free(b->core);
}

static uint64_t drops(struct host *h, enum ovl_drop r)
{
	struct ovl_counters c;

	ovl_core_counters(h->core, &c);
	return c.drops[r];
}

/* a initiates, b responds, a confirms with a keepalive. */
static bool handshake(struct host *a, struct host *b, uint64_t now)
{
	uint8_t init[OVL_HANDSHAKE_MAX], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	wall += 1000000;
	int n = ovl_tunnel_initiate(a->core, a->peer, now, wall, init);

	if (n != OVL_INITIATION_LEN)
		return false;
	ovl_core_recv(b->core, init, (size_t)n, now, wall, reply, &r);
	if (r.kind != OVL_RECV_REPLY || r.tunnel != b->peer ||
	    r.len != OVL_RESPONSE_LEN)
		return false;
	uint8_t resp[OVL_RESPONSE_LEN];

	memcpy(resp, r.data, r.len);
	ovl_core_recv(a->core, resp, sizeof(resp), now, wall, reply, &r);
	if (r.kind != OVL_RECV_ESTABLISHED || r.tunnel != a->peer)
		return false;
	uint8_t ka[OVL_OVERHEAD];

	if (ovl_tunnel_seal(a->peer, ka, 0, now) != OVL_OVERHEAD)
		return false;
	ovl_core_recv(b->core, ka, sizeof(ka), now, wall, reply, &r);
	return r.kind == OVL_RECV_DATA && r.len == 0;
}

/* Seals msg from x to y and opens it; returns the receive kind. */
static enum ovl_recv_kind send_one(struct host *x, struct host *y,
                                   const char *msg, uint64_t now)
{
	uint8_t pkt[256], reply[OVL_HANDSHAKE_MAX];
	size_t len = strlen(msg);
	struct ovl_recv r;

	memcpy(pkt + OVL_HEADER_LEN, msg, len);
	int n = ovl_tunnel_seal(x->peer, pkt, len, now);

	if (n < 0)
		return OVL_RECV_DROP;
	ovl_core_recv(y->core, pkt, (size_t)n, now, wall, reply, &r);
	if (r.kind == OVL_RECV_DATA &&
	    (r.len != len || memcmp(r.data, msg, len) != 0))
		return OVL_RECV_DROP;
	return r.kind;
}

static void test_handshake_and_round_trip(void)
{
	struct host a, b;

	pair(&a, &b, 1, 2);
	CHECK(!ovl_tunnel_established(a.peer, 10));
	CHECK(ovl_tunnel_wants_handshake(a.peer, 10));
	uint8_t pkt[64];

	CHECK(ovl_tunnel_seal(a.peer, pkt, 4, 10) == -ENOKEY);
	CHECK(handshake(&a, &b, 10));
	CHECK(ovl_tunnel_established(a.peer, 10));
	CHECK(ovl_tunnel_established(b.peer, 10));
	CHECK(!ovl_tunnel_wants_handshake(a.peer, 10));
	CHECK(send_one(&a, &b, "hello from a", 11) == OVL_RECV_DATA);
	CHECK(send_one(&b, &a, "hello from b", 12) == OVL_RECV_DATA);
	for (int i = 0; i < 1000; i++)
		CHECK(send_one(&a, &b, "bulk", 13) == OVL_RECV_DATA);
	struct ovl_counters c;

	ovl_core_counters(b.core, &c);
	CHECK_EQ_U64(c.rx_packets, 1002);
	CHECK_EQ_U64(c.handshakes_done, 1);
	unpair(&a, &b);
}

/* The other direction, and a responder that must not send before confirm. */
static void test_responder_waits_for_confirmation(void)
{
	struct host a, b;
	uint8_t init[OVL_HANDSHAKE_MAX], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	pair(&a, &b, 3, 4);
	int n = ovl_tunnel_initiate(b.core, b.peer, 5, wall += 1000, init);

	ovl_core_recv(a.core, init, (size_t)n, 5, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_REPLY);
	CHECK(!ovl_tunnel_established(a.peer, 5));
	uint8_t resp[OVL_RESPONSE_LEN];

	memcpy(resp, r.data, sizeof(resp));
	ovl_core_recv(b.core, resp, sizeof(resp), 5, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_ESTABLISHED);
	/* A second copy of the response finds no handshake under its index. */
	ovl_core_recv(b.core, resp, sizeof(resp), 5, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_UNKNOWN_INDEX);
	CHECK(send_one(&b, &a, "confirm", 6) == OVL_RECV_DATA);
	CHECK(ovl_tunnel_established(a.peer, 6));
	CHECK(send_one(&a, &b, "now a sends", 7) == OVL_RECV_DATA);
	unpair(&a, &b);
}

static void test_handshake_replay_and_wrong_key(void)
{
	struct host a, b, m;
	uint8_t init[OVL_HANDSHAKE_MAX], copy[OVL_HANDSHAKE_MAX];
	uint8_t reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	pair(&a, &b, 5, 6);
	int n = ovl_tunnel_initiate(a.core, a.peer, 1, wall += 1000, init);

	memcpy(copy, init, (size_t)n);
	ovl_core_recv(b.core, init, (size_t)n, 1, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_REPLY);
	ovl_core_recv(b.core, copy, (size_t)n, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_HANDSHAKE_REPLAY);

	/* A host b does not know: authentic, but no tunnel for its key. */
	host_init(&m, 7);
	struct ovl_tunnel *mt = ovl_core_add_peer(m.core, b.pk);

	n = ovl_tunnel_initiate(m.core, mt, 1, wall += 1000, init);
	ovl_core_recv(b.core, init, (size_t)n, 1, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_UNKNOWN_PEER);

	/* Addressed to another key: the MAC fails before any DH. */
	struct ovl_tunnel *ma = ovl_core_add_peer(m.core, a.pk);

	n = ovl_tunnel_initiate(m.core, ma, 1, wall += 1000, init);
	ovl_core_recv(b.core, init, (size_t)n, 1, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_BAD_MAC);

	/* Same sender index and MAC recomputed is impossible without the key;
	 * a corrupted static key field fails to decrypt. */
	n = ovl_tunnel_initiate(a.core, a.peer, 3, wall += 1000, init);
	init[50] ^= 1;
	ovl_core_recv(b.core, init, (size_t)n, 3, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_BAD_MAC);
	ovl_core_free(m.core);
	unpair(&a, &b);
}

static void test_wrong_session_key(void)
{
	struct host a, b, c, d;

	/* Two separate pairs; a's packet delivered to d (same index) fails. */
	pair(&a, &b, 8, 9);
	pair(&c, &d, 10, 11);
	CHECK(handshake(&a, &b, 1));
	CHECK(handshake(&c, &d, 1));
	uint8_t pkt[64], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	memcpy(pkt + OVL_HEADER_LEN, "secret", 6);
	int n = ovl_tunnel_seal(a.peer, pkt, 6, 2);
	/* Point it at d's session index so only the key is wrong. */
	uint32_t idx = d.peer->current->local_index;

	memcpy(pkt + 4, &idx, 4);
	ovl_core_recv(d.core, pkt, (size_t)n, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_DECRYPT);
	idx ^= 0x5a5a5a5a;
	memcpy(pkt + 4, &idx, 4);
	ovl_core_recv(d.core, pkt, (size_t)n, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_UNKNOWN_INDEX);
	unpair(&a, &b);
	unpair(&c, &d);
}

static void test_tamper_every_byte(void)
{
	struct host a, b;
	uint8_t pkt[128], copy[128], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;
	int accepted = 0;

	pair(&a, &b, 12, 13);
	CHECK(handshake(&a, &b, 1));
	memcpy(pkt + OVL_HEADER_LEN, "a payload of some length", 24);
	int n = ovl_tunnel_seal(a.peer, pkt, 24, 2);

	for (int i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, pkt, (size_t)n);
			copy[i] ^= (uint8_t)(1u << bit);
			ovl_core_recv(b.core, copy, (size_t)n, 2, wall, reply,
			              &r);
			accepted += r.kind != OVL_RECV_DROP;
		}
	}
	CHECK(accepted == 0);
	/* Truncations too. */
	for (int len = 0; len < n; len++) {
		memcpy(copy, pkt, (size_t)n);
		ovl_core_recv(b.core, copy, (size_t)len, 2, wall, reply, &r);
		accepted += r.kind != OVL_RECV_DROP;
	}
	CHECK(accepted == 0);
	/* The untouched packet still opens: nothing above advanced state. */
	memcpy(copy, pkt, (size_t)n);
	ovl_core_recv(b.core, copy, (size_t)n, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DATA && r.len == 24);
	memcpy(copy, pkt, (size_t)n);
	ovl_core_recv(b.core, copy, (size_t)n, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_REPLAY);
	CHECK(drops(&b, OVL_DROP_DECRYPT) > 0);
	CHECK(drops(&b, OVL_DROP_BAD_TYPE) > 0);
	CHECK(drops(&b, OVL_DROP_SHORT) > 0);
	unpair(&a, &b);
}

/* Seal n packets and deliver them in a chosen order. */
static void test_replay_through_core(void)
{
	struct host a, b;
	enum { N = 20000 };
	static uint8_t pkts[N][48];
	uint8_t reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	pair(&a, &b, 14, 15);
	CHECK(handshake(&a, &b, 1));
	for (int i = 0; i < N; i++) {
		memcpy(pkts[i] + OVL_HEADER_LEN, "x", 1);
		CHECK(ovl_tunnel_seal(a.peer, pkts[i], 1, 2) == 33);
	}
	uint8_t copy[48];
	/* Deliver the last first, then one just inside and one just outside
	 * the window behind it (counter 0 was the keepalive). */
	int last = N - 1;

	memcpy(copy, pkts[last], 33);
	ovl_core_recv(b.core, copy, 33, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DATA);
	int inside = last - OVL_REPLAY_WINDOW + 1;
	int outside = last - OVL_REPLAY_WINDOW - 1;

	memcpy(copy, pkts[inside], 33);
	ovl_core_recv(b.core, copy, 33, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DATA);
	memcpy(copy, pkts[outside], 33);
	ovl_core_recv(b.core, copy, 33, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_REPLAY);
	memcpy(copy, pkts[inside], 33);
	ovl_core_recv(b.core, copy, 33, 2, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_REPLAY);
	unpair(&a, &b);
}

static void test_replay_window(void)
{
	struct ovl_replay w;

	CHECK(OVL_REPLAY_WINDOW >= 8192);
	ovl_replay_init(&w);
	CHECK(ovl_replay_update(&w, 0));
	CHECK(!ovl_replay_update(&w, 0));
	CHECK(ovl_replay_update(&w, 1));
	CHECK(ovl_replay_update(&w, 3));
	CHECK(ovl_replay_check(&w, 2));
	CHECK(ovl_replay_update(&w, 2));
	CHECK(!ovl_replay_check(&w, 2));
	/* Far ahead: everything older than the window is then rejected. */
	uint64_t far = 1000000;

	CHECK(ovl_replay_update(&w, far));
	CHECK(!ovl_replay_update(&w, 3));
	CHECK(!ovl_replay_update(&w, far - OVL_REPLAY_WINDOW - 1));
	CHECK(ovl_replay_update(&w, far - OVL_REPLAY_WINDOW));
	CHECK(!ovl_replay_update(&w, far - OVL_REPLAY_WINDOW));
	CHECK(ovl_replay_update(&w, far - 1));
	CHECK(ovl_replay_update(&w, far - 8192));
	CHECK(!ovl_replay_update(&w, far));
	/* Every counter in a sliding range, in reverse, then duplicates. */
	ovl_replay_init(&w);
	ovl_replay_update(&w, 20000);
	int ok = 0, dup = 0;

	for (uint64_t c = 20000; c > 20000 - OVL_REPLAY_WINDOW; c--)
		ok += ovl_replay_update(&w, c - 1);
	for (uint64_t c = 20000; c > 20000 - OVL_REPLAY_WINDOW; c--)
		dup += ovl_replay_update(&w, c - 1);
	CHECK(ok == OVL_REPLAY_WINDOW);
	CHECK(dup == 0);
	/* A jump of exactly the ring size clears every word. */
	ovl_replay_init(&w);
	for (uint64_t c = 0; c < 200; c++)
		CHECK(ovl_replay_update(&w, c));
	CHECK(ovl_replay_update(&w, 200 + OVL_REPLAY_BITS));
	CHECK(ovl_replay_update(&w, 200 + OVL_REPLAY_BITS - 64));
	CHECK(!ovl_replay_update(&w, 150));
	/* The limit. */
	CHECK(!ovl_replay_check(&w, OVL_REJECT_AFTER_MSGS));
	CHECK(!ovl_replay_update(&w, UINT64_MAX));
	CHECK(ovl_replay_update(&w, OVL_REJECT_AFTER_MSGS - 1));
}

static int retries;

static void count_initiate(void *ctx, struct ovl_tunnel *t)
{
	(void)t;
	(void)ctx;
	retries++;
}

static void test_rekey(void)
{
	struct host a, b;
	uint8_t pkt[64], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	pair(&a, &b, 16, 17);
	CHECK(handshake(&a, &b, 1000));
	uint64_t t = 1000 + OVL_REKEY_AFTER_MS - 1;

	CHECK(!ovl_tunnel_wants_handshake(a.peer, t));
	/* A packet sealed under the old session, still in flight. */
	memcpy(pkt + OVL_HEADER_LEN, "late", 4);
	int n = ovl_tunnel_seal(a.peer, pkt, 4, t);

	t++;
	CHECK(ovl_tunnel_wants_handshake(a.peer, t));
	CHECK(!ovl_tunnel_wants_handshake(b.peer, t)); /* responder waits */
	retries = 0;
	ovl_core_tick(a.core, t, count_initiate, NULL);
	CHECK(retries == 1);
	ovl_core_tick(b.core, t, count_initiate, NULL);
	CHECK(retries == 1);
	struct ovl_session *old = a.peer->current;
	uint32_t old_index = old->local_index;

	CHECK(handshake(&a, &b, t));
	CHECK(a.peer->current != old);
	CHECK(a.peer->previous == old);
	/* The in-flight packet of the old session still opens at b. */
	ovl_core_recv(b.core, pkt, (size_t)n, t, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_DATA && r.len == 4);
	CHECK(send_one(&a, &b, "new", t) == OVL_RECV_DATA);
	CHECK(send_one(&b, &a, "new back", t) == OVL_RECV_DATA);
	/* After a while the old one is wiped and its index forgotten. */
	ovl_core_tick(a.core, t + OVL_PREVIOUS_KEEP_MS, NULL, NULL);
	CHECK(a.peer->previous == NULL);
	CHECK(ovl_index_find(a.core, old_index) == NULL);
	/* Without a rekey, sessions expire at REJECT_AFTER. */
	uint64_t dead = t + OVL_REJECT_AFTER_MS;

	CHECK(send_one(&a, &b, "too late", dead) == OVL_RECV_DROP);
	ovl_core_tick(a.core, dead, NULL, NULL);
	CHECK(a.peer->current == NULL);
	CHECK(ovl_tunnel_wants_handshake(a.peer, dead));
	unpair(&a, &b);
}

static void test_retry_and_crossed(void)
{
	struct host a, b;
	uint8_t ia[OVL_HANDSHAKE_MAX], ib[OVL_HANDSHAKE_MAX];
	uint8_t reply[OVL_HANDSHAKE_MAX], resp[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	pair(&a, &b, 18, 19);
	ovl_tunnel_initiate(a.core, a.peer, 100, wall += 1000, ia);
	retries = 0;
	ovl_core_tick(a.core, 100 + OVL_REKEY_TIMEOUT_MS - 1, count_initiate,
	              NULL);
	CHECK(retries == 0);
	ovl_core_tick(a.core, 100 + OVL_REKEY_TIMEOUT_MS, count_initiate, NULL);
	CHECK(retries == 1);

	/* Both initiate at once: exactly one handshake completes. */
	ovl_tunnel_initiate(a.core, a.peer, 200, wall += 1000, ia);
	ovl_tunnel_initiate(b.core, b.peer, 200, wall += 1000, ib);
	struct host *big = memcmp(a.pk, b.pk, 32) > 0 ? &a : &b;
	struct host *small = big == &a ? &b : &a;
	uint8_t *to_big = big == &a ? ib : ia, *to_small = big == &a ? ia : ib;

	ovl_core_recv(big->core, to_big, OVL_INITIATION_LEN, 200, wall, reply,
	              &r);
	CHECK(r.kind == OVL_RECV_DROP && r.drop == OVL_DROP_HANDSHAKE_CROSSED);
	ovl_core_recv(small->core, to_small, OVL_INITIATION_LEN, 200, wall,
	              reply, &r);
	CHECK(r.kind == OVL_RECV_REPLY);
	memcpy(resp, r.data, r.len);
	ovl_core_recv(big->core, resp, OVL_RESPONSE_LEN, 200, wall, reply, &r);
	CHECK(r.kind == OVL_RECV_ESTABLISHED);
	CHECK(send_one(big, small, "ok", 201) == OVL_RECV_DATA);
	CHECK(send_one(small, big, "ok", 201) == OVL_RECV_DATA);

	/* Unanswered for REKEY_ATTEMPT: give up. */
	struct host c, d;

	pair(&c, &d, 20, 21);
	ovl_tunnel_initiate(c.core, c.peer, 1, wall += 1000, ia);
	retries = 0;
	ovl_core_tick(c.core, 1 + OVL_REKEY_ATTEMPT_MS, count_initiate, NULL);
	CHECK(retries == 0);
	CHECK(c.peer->hs.index_slot == NULL);
	unpair(&c, &d);
	unpair(&a, &b);
}

static void test_counter_exhaustion(void)
{
	struct host a, b;
	uint8_t pkt[64];

	pair(&a, &b, 22, 23);
	CHECK(handshake(&a, &b, 1));
	atomic_store(&a.peer->current->send_counter, OVL_REKEY_AFTER_MSGS);
	CHECK(ovl_tunnel_wants_handshake(a.peer, 2));
	CHECK(send_one(&a, &b, "still fine", 2) == OVL_RECV_DATA);
	atomic_store(&a.peer->current->send_counter, OVL_REJECT_AFTER_MSGS - 1);
	CHECK(send_one(&a, &b, "the last", 2) == OVL_RECV_DATA);
	CHECK(ovl_tunnel_seal(a.peer, pkt, 1, 2) == -ENOKEY);
	CHECK(ovl_tunnel_seal(a.peer, pkt, 1, 2) == -ENOKEY);
	CHECK(!ovl_tunnel_established(a.peer, 2));
	CHECK(atomic_load(&a.peer->current->send_counter) ==
	      OVL_REJECT_AFTER_MSGS);
	CHECK(handshake(&a, &b, 3));
	CHECK(send_one(&a, &b, "fresh", 3) == OVL_RECV_DATA);
	unpair(&a, &b);
}

static void test_junk(void)
{
	struct host a, b;
	uint8_t buf[256], reply[OVL_HANDSHAKE_MAX];
	struct ovl_recv r;

	pair(&a, &b, 24, 25);
	for (int i = 0; i < 2000; i++) {
		size_t len = mc_random_uniform(sizeof(buf));

		mc_random(buf, len);
		if (len && i % 3 == 0)
			buf[0] = (uint8_t)(1 + i % 4);
		if (len >= 4 && i % 2 == 0)
			buf[1] = buf[2] = buf[3] = 0;
		ovl_core_recv(b.core, buf, len, 1, wall, reply, &r);
		CHECK(r.kind == OVL_RECV_DROP);
	}
	unpair(&a, &b);
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	RUN(test_handshake_and_round_trip);
	RUN(test_responder_waits_for_confirmation);
	RUN(test_handshake_replay_and_wrong_key);
	RUN(test_wrong_session_key);
	RUN(test_tamper_every_byte);
	RUN(test_replay_through_core);
	RUN(test_replay_window);
	RUN(test_rekey);
	RUN(test_retry_and_crossed);
	RUN(test_counter_exhaustion);
	RUN(test_junk);
	return check_summary();
}
