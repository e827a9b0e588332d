/*
 * The core: peers' tunnels, their sessions, the index table that maps the
 * receiver index of a packet to its session, and the dispatch of received
 * packets by type. A tunnel has up to three sessions, as in WireGuard:
 * current (used to send), previous (kept briefly for packets in flight
 * across a rekey) and next (a responder's new session, used to send only
 * once the initiator's first packet under it confirms it).
 */
#include "log.h"
#include "mem.h"
#include "ovl_int.h"

#include <errno.h>
#include <string.h>

static const char *const drop_names[OVL_DROP_MAX] = {
    [OVL_DROP_SHORT] = "short",
    [OVL_DROP_BAD_TYPE] = "bad_type",
    [OVL_DROP_BAD_LENGTH] = "bad_length",
    [OVL_DROP_BAD_MAC] = "bad_mac",
    [OVL_DROP_UNKNOWN_PEER] = "unknown_peer",
    [OVL_DROP_UNKNOWN_INDEX] = "unknown_index",
    [OVL_DROP_DECRYPT] = "decrypt",
    [OVL_DROP_REPLAY] = "replay",
    [OVL_DROP_HANDSHAKE_REPLAY] = "handshake_replay",
    [OVL_DROP_HANDSHAKE_CROSSED] = "handshake_crossed",
    [OVL_DROP_EXPIRED] = "expired",
    [OVL_DROP_NO_ROUTE] = "no_route",
    [OVL_DROP_NO_SESSION] = "no_session",
    [OVL_DROP_TOO_BIG] = "too_big",
    [OVL_DROP_BAD_INNER] = "bad_inner",
    [OVL_DROP_RELAY_REFUSED] = "relay_refused",
};

const char *ovl_drop_name(enum ovl_drop reason)
{
	if ((unsigned)reason >= OVL_DROP_MAX)
		return "?";
	return drop_names[reason];
}

void ovl_count_drop(struct ovl_core *core, enum ovl_drop reason)
{
	atomic_fetch_add_explicit(&core->drops[reason], 1,
	                          memory_order_relaxed);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* --- the index table ------------------------------------------------- */

static unsigned bucket_of(uint32_t index)
{
	return (index * 2654435761u) >> 22; /* 10 bits: OVL_INDEX_BUCKETS */
}

struct ovl_session *ovl_index_find(struct ovl_core *core, uint32_t index)
{
	struct ovl_session *s = core->index[bucket_of(index)];

	while (s && s->local_index != index)
		s = s->index_next;
	return s;
}

uint32_t ovl_index_reserve(struct ovl_core *core, struct ovl_session *s)
{
	uint32_t index;

	do
		index = ovl_noise_random_index();
	while (index == 0 || ovl_index_find(core, index));
	s->local_index = index;
	s->index_next = core->index[bucket_of(index)];
	core->index[bucket_of(index)] = s;
	return index;
}

void ovl_index_remove(struct ovl_core *core, struct ovl_session *s)
{
	struct ovl_session **pp = &core->index[bucket_of(s->local_index)];

	while (*pp && *pp != s)
		pp = &(*pp)->index_next;
	if (*pp)
		*pp = s->index_next;
}

static struct ovl_session *session_new(struct ovl_core *core,
                                       struct ovl_tunnel *t, bool initiator)
{
	struct ovl_session *s = xcalloc(1, sizeof(*s));

	s->tunnel = t;
	s->initiator = initiator;
	ovl_replay_init(&s->replay);
	ovl_index_reserve(core, s);
	return s;
}

/* Drops a session: out of the index, keys wiped. NULL is fine. */
static void session_free(struct ovl_core *core, struct ovl_session *s)
{
	if (!s)
		return;
	ovl_index_remove(core, s);
	ovl_noise_wipe(s, sizeof(*s));
	free(s);
}

/* --- core and tunnels ------------------------------------------------ */

struct ovl_core *ovl_core_new(const uint8_t secret_key[OVL_KEY_BYTES])
{
	struct ovl_core *core = xcalloc(1, sizeof(*core));

	memcpy(core->sk, secret_key, OVL_KEY_BYTES);
	ovl_noise_public(core->pk, core->sk);
	ovl_noise_mac1_key(core->mac1_key, core->pk);
	return core;
}

void ovl_core_free(struct ovl_core *core)
{
	if (!core)
		return;
	while (core->tunnels)
		ovl_core_remove_peer(core, core->tunnels);
	ovl_noise_wipe(core, sizeof(*core));
	free(core);
}

void ovl_core_public_key(const struct ovl_core *core,
                         uint8_t out[OVL_KEY_BYTES])
{
	memcpy(out, core->pk, OVL_KEY_BYTES);
}

struct ovl_tunnel *ovl_core_find_peer(struct ovl_core *core,
                                      const uint8_t public_key[OVL_KEY_BYTES])
{
	struct ovl_tunnel *t;

	/* A list: peers are few per host, and looked up only in handshakes. */
	for (t = core->tunnels; t; t = t->next)
		if (memcmp(t->remote_pk, public_key, OVL_KEY_BYTES) == 0)
			return t;
	return NULL;
}

struct ovl_tunnel *ovl_core_add_peer(struct ovl_core *core,
                                     const uint8_t public_key[OVL_KEY_BYTES])
{
	struct ovl_tunnel *t = ovl_core_find_peer(core, public_key);

	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->core = core;
	memcpy(t->remote_pk, public_key, OVL_KEY_BYTES);
	/* A low-order key gives no shared secret: every handshake fails. */
	if (!ovl_noise_dh(t->ss, core->sk, public_key))
		memset(t->ss, 0, sizeof(t->ss));
	ovl_noise_mac1_key(t->mac1_key, public_key);
	t->next = core->tunnels;
	core->tunnels = t;
	return t;
}

void ovl_core_remove_peer(struct ovl_core *core, struct ovl_tunnel *t)
{
	struct ovl_tunnel **pp = &core->tunnels;

	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = t->next;
	session_free(core, t->current);
	session_free(core, t->previous);
	session_free(core, t->next_session);
	session_free(core, t->hs.index_slot);
	ovl_noise_wipe(t, sizeof(*t));
	free(t);
}

void ovl_core_counters(const struct ovl_core *core, struct ovl_counters *out)
{
	out->rx_packets = atomic_load(&core->rx_packets);
	out->rx_bytes = atomic_load(&core->rx_bytes);
	out->tx_packets = atomic_load(&core->tx_packets);
	out->tx_bytes = atomic_load(&core->tx_bytes);
	out->handshakes_sent = atomic_load(&core->handshakes_sent);
	out->handshakes_done = atomic_load(&core->handshakes_done);
	for (int i = 0; i < OVL_DROP_MAX; i++)
		out->drops[i] = atomic_load(&core->drops[i]);
}

void ovl_tunnel_public_key(const struct ovl_tunnel *t,
                           uint8_t out[OVL_KEY_BYTES])
{
	memcpy(out, t->remote_pk, OVL_KEY_BYTES);
}

void ovl_tunnel_set_user(struct ovl_tunnel *t, void *user)
{
	t->user = user;
}

void *ovl_tunnel_user(const struct ovl_tunnel *t)
{
	return t->user;
}

static const char *const hs_state_names[] = {
    [OVL_HS_NONE] = "none",
    [OVL_HS_INIT_SENT] = "init-sent",
    [OVL_HS_INIT_RECEIVED] = "init-received",
};

void ovl_hs_set_state(struct ovl_tunnel *t, enum ovl_hs_state state)
{
	if (t->hs.state != state)
		mc_debug("ovl", "tunnel %02x%02x%02x%02x: handshake %s -> %s",
		         t->remote_pk[0], t->remote_pk[1], t->remote_pk[2],
		         t->remote_pk[3], hs_state_names[t->hs.state],
		         hs_state_names[state]);
	t->hs.state = state;
}

/* --- sending --------------------------------------------------------- */

int ovl_tunnel_initiate(struct ovl_core *core, struct ovl_tunnel *t,
                        uint64_t now_ms, uint64_t wall_ns,
                        uint8_t out[OVL_HANDSHAKE_MAX])
{
	session_free(core, t->hs.index_slot);
	t->hs.index_slot = session_new(core, t, true);
	t->hs.local_index = t->hs.index_slot->local_index;
	if (t->hs.state != OVL_HS_INIT_SENT || !t->hs_first_ms)
		t->hs_first_ms = now_ms ? now_ms : 1;
	int n = ovl_noise_create_initiation(core, t, wall_ns, out);

	if (n < 0) {
		session_free(core, t->hs.index_slot);
		t->hs.index_slot = NULL;
		ovl_hs_set_state(t, OVL_HS_NONE);
		return n;
	}
	t->hs_sent_ms = now_ms;
	t->want_handshake = false;
	atomic_fetch_add(&core->handshakes_sent, 1);
	return n;
}

static bool session_usable(const struct ovl_session *s, uint64_t now_ms)
{
	return s && s->keyed && now_ms - s->created_ms < OVL_REJECT_AFTER_MS &&
	       atomic_load_explicit(&s->send_counter, memory_order_relaxed) <
	           OVL_REJECT_AFTER_MSGS;
}

bool ovl_tunnel_established(const struct ovl_tunnel *t, uint64_t now_ms)
{
	return session_usable(t->current, now_ms);
}

bool ovl_tunnel_wants_handshake(const struct ovl_tunnel *t, uint64_t now_ms)
{
	const struct ovl_session *s = t->current;

	if (t->hs.state == OVL_HS_INIT_SENT &&
	    now_ms - t->hs_sent_ms < OVL_REKEY_TIMEOUT_MS)
		return false;
	if (!session_usable(s, now_ms))
		return true;
	if (atomic_load_explicit(&s->send_counter, memory_order_relaxed) >=
	    OVL_REKEY_AFTER_MSGS)
		return true;
	uint64_t age = now_ms - s->created_ms;

	/* The initiator rekeys; a responder only if the initiator is quiet. */
	if (s->initiator)
		return age >= OVL_REKEY_AFTER_MS;
	return age >= OVL_REJECT_AFTER_MS - 3 * OVL_REKEY_TIMEOUT_MS;
}

int ovl_tunnel_seal(struct ovl_tunnel *t, uint8_t *pkt, size_t len,
                    uint64_t now_ms)
{
	struct ovl_session *s = t->current;

	if (len > 65535)
		return -EMSGSIZE;
	if (!s || !s->keyed || now_ms - s->created_ms >= OVL_REJECT_AFTER_MS)
		return -ENOKEY;
	uint64_t counter = atomic_fetch_add_explicit(&s->send_counter, 1,
	                                             memory_order_relaxed);

	if (counter >= OVL_REJECT_AFTER_MSGS) {
		/* Keep it pinned at the limit, never wrapping. */
		atomic_store(&s->send_counter, OVL_REJECT_AFTER_MSGS);
		return -ENOKEY;
	}
	pkt[0] = OVL_TYPE_TRANSPORT;
	pkt[1] = pkt[2] = pkt[3] = 0;
	put_le32(pkt + 4, s->remote_index);
	put_le64(pkt + 8, counter);
	ovl_aead_seal(pkt, len, s->send_key, counter);
	return (int)(len + OVL_OVERHEAD);
}

/* --- receiving ------------------------------------------------------- */

uint8_t ovl_packet_type(const uint8_t *pkt, size_t len)
{
	return len >= 1 ? pkt[0] : 0;
}

bool ovl_core_recv_exclusive(struct ovl_core *core, const uint8_t *pkt,
                             size_t len)
{
	if (len < OVL_HEADER_LEN || pkt[0] != OVL_TYPE_TRANSPORT)
		return true;
	struct ovl_session *s = ovl_index_find(core, get_le32(pkt + 4));

	return s && s == s->tunnel->next_session;
}

static void drop(struct ovl_core *core, struct ovl_recv *out,
                 enum ovl_drop reason)
{
	out->kind = OVL_RECV_DROP;
	out->drop = reason;
	ovl_count_drop(core, reason);
}

/* Makes a confirmed next session current; the old current stays briefly. */
static void promote(struct ovl_core *core, struct ovl_tunnel *t,
                    struct ovl_session *s, uint64_t now_ms)
{
	session_free(core, t->previous);
	t->previous = t->current;
	t->previous_since_ms = now_ms;
	t->current = s;
	if (t->next_session == s)
		t->next_session = NULL;
	s->confirmed = true;
}

static void recv_transport(struct ovl_core *core, uint8_t *pkt, size_t len,
                           uint64_t now_ms, struct ovl_recv *out)
{
	if (len < OVL_OVERHEAD)
		return drop(core, out, OVL_DROP_SHORT);
	struct ovl_session *s = ovl_index_find(core, get_le32(pkt + 4));

	if (!s || !s->keyed)
		return drop(core, out, OVL_DROP_UNKNOWN_INDEX);
	uint64_t counter = get_le64(pkt + 8);

	if (now_ms - s->created_ms >= OVL_REJECT_AFTER_MS)
		return drop(core, out, OVL_DROP_EXPIRED);
	if (!ovl_replay_check(&s->replay, counter))
		return drop(core, out, OVL_DROP_REPLAY);
	size_t clen = len - OVL_OVERHEAD;

	if (!ovl_aead_open(pkt, clen, s->recv_key, counter))
		return drop(core, out, OVL_DROP_DECRYPT);
	if (!ovl_replay_update(&s->replay, counter))
		return drop(core, out, OVL_DROP_REPLAY);
	if (s == s->tunnel->next_session) {
		promote(core, s->tunnel, s, now_ms);
		atomic_fetch_add(&core->handshakes_done, 1);
	}
	atomic_fetch_add_explicit(&core->rx_packets, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&core->rx_bytes, clen, memory_order_relaxed);
	out->kind = OVL_RECV_DATA;
	out->tunnel = s->tunnel;
	out->data = pkt + OVL_HEADER_LEN;
	out->len = clen;
}

static void recv_initiation(struct ovl_core *core, const uint8_t *pkt,
                            size_t len, uint64_t now_ms, uint8_t *reply,
                            struct ovl_recv *out)
{
	enum ovl_drop reason;
	struct ovl_tunnel *t =
	    ovl_noise_consume_initiation(core, pkt, len, &reason);

	if (!t)
		return drop(core, out, reason);
	/* Our own initiation in flight is abandoned for theirs. */
	session_free(core, t->hs.index_slot);
	struct ovl_session *s = session_new(core, t, false);

	t->hs.index_slot = NULL;
	t->hs.local_index = s->local_index;
	int n = ovl_noise_create_response(core, t, reply);

	if (n < 0) {
		session_free(core, s);
		ovl_hs_set_state(t, OVL_HS_NONE);
		return drop(core, out, OVL_DROP_DECRYPT);
	}
	ovl_noise_derive(&t->hs, s);
	ovl_hs_set_state(t, OVL_HS_NONE);
	s->created_ms = now_ms;
	session_free(core, t->next_session);
	t->next_session = s;
	t->hs_first_ms = 0;
	out->kind = OVL_RECV_REPLY;
	out->tunnel = t;
	out->data = reply;
	out->len = (size_t)n;
}

static void recv_response(struct ovl_core *core, const uint8_t *pkt, size_t len,
                          uint64_t now_ms, struct ovl_recv *out)
{
	enum ovl_drop reason;
	struct ovl_tunnel *t =
	    ovl_noise_consume_response(core, pkt, len, &reason);

	if (!t)
		return drop(core, out, reason);
	struct ovl_session *s = t->hs.index_slot;

	ovl_noise_derive(&t->hs, s);
	ovl_hs_set_state(t, OVL_HS_NONE);
	s->created_ms = now_ms;
	promote(core, t, s, now_ms);
	t->hs_first_ms = 0;
	atomic_fetch_add(&core->handshakes_done, 1);
	out->kind = OVL_RECV_ESTABLISHED;
	out->tunnel = t;
}

void ovl_core_recv(struct ovl_core *core, uint8_t *pkt, size_t len,
                   uint64_t now_ms, uint64_t wall_ns, uint8_t *reply,
                   struct ovl_recv *out)
{
	(void)wall_ns;
	memset(out, 0, sizeof(*out));
	if (len < 4)
		return drop(core, out, OVL_DROP_SHORT);
	if (pkt[1] | pkt[2] | pkt[3])
		return drop(core, out, OVL_DROP_BAD_TYPE);
	switch (pkt[0]) {
	case OVL_TYPE_TRANSPORT:
		return recv_transport(core, pkt, len, now_ms, out);
	case OVL_TYPE_INITIATION:
		return recv_initiation(core, pkt, len, now_ms, reply, out);
	case OVL_TYPE_RESPONSE:
		return recv_response(core, pkt, len, now_ms, out);
	default:
		return drop(core, out, OVL_DROP_BAD_TYPE);
	}
}
