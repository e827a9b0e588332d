/*
 * The gossip instance: configuration, the way in (gossip_recv), the way out
 * (gossip_send), and the public actions. Membership rules are in member.c,
 * timing in probe.c, the broadcast queue in dissem.c, the wire in codec.c
 * and sealing in seal.c.
 */
#include "gossip_int.h"

#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* xoshiro256** seeded through splitmix64: fast, and reproducible. */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t gossip_rand(struct gossip *g)
{
	uint64_t *s = g->rng;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint32_t gossip_rand_below(struct gossip *g, uint32_t n)
{
	if (n == 0)
		return 0;
	return (uint32_t)(((gossip_rand(g) >> 32) * n) >> 32);
}

/* Ids: 16 lowercase hex digits outside, a uint64 inside. */

bool gossip_id_valid(const char *id)
{
	for (int i = 0; i < GOSSIP_ID_LEN; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return id[GOSSIP_ID_LEN] == '\0';
}

uint64_t gossip_id_key(const char *id)
{
	uint64_t key = 0;
	for (int i = 0; i < GOSSIP_ID_LEN; i++) {
		char c = id[i];
		key = key << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return key;
}

void gossip_key_id(uint64_t key, char out[GOSSIP_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = GOSSIP_ID_LEN - 1; i >= 0; i--) {
		out[i] = hex[key & 0xf];
		key >>= 4;
	}
	out[GOSSIP_ID_LEN] = '\0';
}

static bool copy_str(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size);
	if (n == size)
		return false;
	memcpy(dst, src, n);
	return true;
}

/*
 * Copies in into a zeroed out, the address put through its text form: node
 * infos compare bytewise, and must equal what the wire gives back.
 */
static int node_normalize(struct gossip_node *out, const struct gossip_node *in)
{
	char text[64];

	memset(out, 0, sizeof(*out));
	if (!gossip_id_valid(in->id) || in->addr.len == 0)
		return -EINVAL;
	memcpy(out->id, in->id, sizeof(out->id));
	if (!copy_str(out->name, in->name, sizeof(out->name)) ||
	    !copy_str(out->zone, in->zone, sizeof(out->zone)) ||
	    !copy_str(out->version, in->version, sizeof(out->version)))
		return -EINVAL;
	mc_addr_format(&in->addr, text, sizeof(text));
	if (mc_addr_parse(&out->addr, text, 0) != 0)
		return -EINVAL;
	out->roles = in->roles;
	out->cap = in->cap;
	memcpy(out->sign_pk, in->sign_pk, sizeof(out->sign_pk));
	memcpy(out->box_pk, in->box_pk, sizeof(out->box_pk));
	return 0;
}

void gossip_config_default(struct gossip_config *c)
{
	memset(c, 0, sizeof(*c));
	c->probe_interval_ms = 1000;
	c->probe_timeout_ms = 500;
	c->gossip_interval_ms = 200;
	c->gossip_nodes = 3;
	c->indirect_checks = 3;
	c->suspicion_mult = 4;
	c->suspicion_max_mult = 6;
	c->retransmit_mult = 4;
	c->awareness_max = 8;
	c->gossip_to_dead_ms = 30 * 1000;
	c->reap_ms = 24 * 3600 * 1000;
	c->packet_max = GOSSIP_PACKET_MAX;
}

static bool config_valid(const struct gossip_config *c)
{
	return c->probe_interval_ms > 0 && c->probe_timeout_ms > 0 &&
	       c->gossip_interval_ms > 0 && c->gossip_nodes > 0 &&
	       c->suspicion_mult > 0 && c->suspicion_max_mult > 0 &&
	       c->retransmit_mult > 0 && c->awareness_max > 0 &&
	       c->packet_max >= 512 && c->packet_max <= GOSSIP_PACKET_MAX &&
	       c->members_hint <= (1u << 24) && c->cb.send;
}

struct gossip *gossip_new(const struct gossip_config *c, uint64_t now_ms)
{
	struct gossip_node local;

	if (!config_valid(c) || node_normalize(&local, &c->local) != 0)
		return NULL;
	struct gossip *g = xcalloc(1, sizeof(*g));
	g->cfg = *c;
	g->cfg.local = local;
	uint64_t x = c->seed;
	for (int i = 0; i < 4; i++)
		g->rng[i] = splitmix64(&x);
	if (c->intern) {
		g->intern = c->intern;
		g->intern->users++;
	} else {
		g->intern = gossip_intern_new();
	}
	g->self_key = gossip_id_key(local.id);
	g->incarnation = c->incarnation;
	/* The first probe shuffles: instances seeded in the same order
	 * must not all probe the same member at once. */
	g->probe_index = UINT32_MAX;
	mc_buf_init(&g->msgs);
	mc_buf_init(&g->bcasts);
	mc_buf_init(&g->plain);
	mc_buf_init(&g->sealed);
	mc_buf_init(&g->opened);
	gossip_dissem_init(&g->dissem);
	gossip_seal_init(&g->seal, g->self_key, c->epoch_ms);

	if (c->members_hint)
		gossip_entries_reserve(g, c->members_hint);
	struct gossip_entry *self = gossip_entry_add(g, g->self_key);
	self->info = gossip_intern_get(g->intern, &local);
	self->incarnation = g->incarnation;
	self->state = GOSSIP_ALIVE;
	self->state_change_ms = now_ms;
	gossip_set_reach(g, self, GOSSIP_REACH_YES);
	gossip_queue_alive(g, self);
	gossip_timers_init(g, now_ms);
	return g;
}

void gossip_free(struct gossip *g)
{
	if (!g)
		return;
	while (g->suspicions) {
		struct gossip_suspicion *s = g->suspicions;
		g->suspicions = s->next;
		free(s);
	}
	for (uint32_t i = 0; i < g->nents; i++)
		gossip_intern_put(g->intern, g->ents[i].info);
	free(g->ents);
	free(g->slots);
	gossip_dissem_free(&g->dissem);
	gossip_seal_free(&g->seal);
	mc_buf_free(&g->msgs);
	mc_buf_free(&g->bcasts);
	mc_buf_free(&g->plain);
	mc_buf_free(&g->sealed);
	mc_buf_free(&g->opened);
	gossip_intern_unref(g->intern);
	free(g);
}

/* Keyring. */

static int key_index(const struct gossip *g, const uint8_t *key)
{
	for (uint32_t i = 0; i < g->seal.nkeys; i++)
		if (memcmp(g->seal.keys[i], key, GOSSIP_KEY_BYTES) == 0)
			return (int)i;
	return -1;
}

int gossip_keyring_add(struct gossip *g, const uint8_t key[GOSSIP_KEY_BYTES])
{
	if (key_index(g, key) >= 0)
		return -EEXIST;
	if (g->seal.nkeys == GOSSIP_KEYRING_MAX)
		return -ENOSPC;
	memcpy(g->seal.keys[g->seal.nkeys++], key, GOSSIP_KEY_BYTES);
	return 0;
}

int gossip_keyring_use(struct gossip *g, const uint8_t key[GOSSIP_KEY_BYTES])
{
	int i = key_index(g, key);
	uint8_t tmp[GOSSIP_KEY_BYTES];

	if (i < 0)
		return -ENOENT;
	memcpy(tmp, g->seal.keys[0], sizeof(tmp));
	memcpy(g->seal.keys[0], g->seal.keys[i], sizeof(tmp));
	memcpy(g->seal.keys[i], tmp, sizeof(tmp));
	memset(tmp, 0, sizeof(tmp));
	return 0;
}

int gossip_keyring_remove(struct gossip *g, const uint8_t key[GOSSIP_KEY_BYTES])
{
	int i = key_index(g, key);

	if (i < 0)
		return -ENOENT;
	if (i == 0)
		return -EBUSY;
	memmove(g->seal.keys[i], g->seal.keys[i + 1],
	        GOSSIP_KEY_BYTES * (g->seal.nkeys - (uint32_t)i - 1));
	g->seal.nkeys--;
	memset(g->seal.keys[g->seal.nkeys], 0, GOSSIP_KEY_BYTES);
	return 0;
}

/*
 * Sends the nmsgs messages encoded in g->msgs to `to`, with as many queued
 * broadcasts as fit in the packet when piggyback. Nothing goes out when
 * there is nothing to say.
 */
static void send_msgs(struct gossip *g, const struct mc_addr *to,
                      uint32_t nmsgs, bool piggyback)
{
	size_t budget = g->cfg.packet_max - GOSSIP_ENVELOPE_MAX -
	                (g->seal.nkeys ? GOSSIP_SEAL_OVERHEAD : 0);
	size_t space = budget > g->msgs.len ? budget - g->msgs.len : 0;
	uint32_t flags = 0, nb = 0;

	mc_buf_reset(&g->bcasts);
	if (piggyback && g->dissem.count)
		nb = gossip_dissem_fill(&g->dissem, gossip_retransmit_limit(g),
		                        &g->bcasts, space,
		                        GOSSIP_MSGS_MAX - nmsgs, &flags);
	if (nmsgs + nb == 0)
		return;
	if (flags & GOSSIP_BC_LEAVE)
		g->leave_sends++;
	mc_buf_reset(&g->plain);
	gossip_enc_envelope(&g->plain, nmsgs + nb);
	mc_buf_append(&g->plain, g->msgs.data, g->msgs.len);
	mc_buf_append(&g->plain, g->bcasts.data, g->bcasts.len);
	const struct mc_buf *out = &g->plain;
	if (g->seal.nkeys) {
		mc_buf_reset(&g->sealed);
		gossip_seal_wrap(&g->seal, &g->sealed, g->plain.data,
		                 g->plain.len);
		out = &g->sealed;
	}
	g->ctr.packets_out++;
	g->ctr.bytes_out += out->len;
	g->cfg.cb.send(g->cfg.cb.ctx, to, out->data, out->len);
}

void gossip_send(struct gossip *g, const struct mc_addr *to, uint32_t nmsgs)
{
	send_msgs(g, to, nmsgs, true);
}

void gossip_send_only(struct gossip *g, const struct mc_addr *to,
                      uint32_t nmsgs)
{
	send_msgs(g, to, nmsgs, false);
}

static void drop(struct gossip *g, enum gossip_drop why)
{
	g->ctr.drops[why]++;
}

void gossip_dispatch(struct gossip *g, const struct mc_addr *from,
                     const struct gossip_msg *m, uint64_t now_ms)
{
	switch (m->type) {
	case GOSSIP_MSG_PING:
		if (m->node != g->self_key) {
			drop(g, GOSSIP_DROP_NOT_FOR_US);
			return;
		}
		mc_buf_reset(&g->msgs);
		gossip_enc_seq(&g->msgs, GOSSIP_MSG_ACK, m->seq);
		if (m->quiet)
			gossip_send_only(g, from, 1);
		else
			gossip_send(g, from, 1);
		return;
	case GOSSIP_MSG_PING_REQ:
		if (m->node != g->self_key)
			gossip_relay_start(g, from, m, now_ms);
		return;
	case GOSSIP_MSG_ACK:
		gossip_probe_on_ack(g, m->seq, now_ms);
		return;
	case GOSSIP_MSG_NACK:
		gossip_probe_on_nack(g, m->seq);
		return;
	case GOSSIP_MSG_ALIVE:
		gossip_on_alive(g, m, now_ms);
		return;
	case GOSSIP_MSG_SUSPECT:
		gossip_on_suspect(g, m->incarnation, m->node, m->from, now_ms);
		return;
	case GOSSIP_MSG_DEAD:
		gossip_on_dead(g, m->incarnation, m->node, m->from, now_ms);
		return;
	case GOSSIP_MSG_USER:
		if (g->cfg.cb.user && g->cfg.cb.user(g->cfg.cb.ctx, m->ukey,
		                                     m->body, m->body_len))
			gossip_broadcast_user(g, m->ukey, m->body, m->body_len);
		return;
	default:
		return;
	}
}

void gossip_recv(struct gossip *g, const struct mc_addr *from,
                 const uint8_t *pkt, size_t len, uint64_t now_ms)
{
	const uint8_t *plain = pkt;
	size_t plain_len = len;
	enum gossip_drop why;
	const struct mc_val *msgs;
	uint32_t n;
	struct gossip_msg m;

	g->ctr.packets_in++;
	g->ctr.bytes_in += len;
	if (len > GOSSIP_RECV_MAX) {
		drop(g, GOSSIP_DROP_TOO_BIG);
		return;
	}
	if (g->seal.nkeys) {
		mc_buf_reset(&g->opened);
		if (gossip_seal_unwrap(&g->seal, pkt, len, &g->opened, now_ms,
		                       &why) != 0) {
			drop(g, why);
			return;
		}
		plain = g->opened.data;
		plain_len = g->opened.len;
	}
	if (plain_len == 0) {
		drop(g, GOSSIP_DROP_TRUNCATED);
		return;
	}
	struct mc_doc *doc = mc_unpack(plain, plain_len);
	if (!doc) {
		drop(g, GOSSIP_DROP_MALFORMED);
		return;
	}
	/* All or nothing: check every message before acting on any. */
	if (gossip_dec_envelope(mc_doc_root(doc), &msgs, &n) != 0 ||
	    n > GOSSIP_MSGS_MAX)
		goto malformed;
	for (uint32_t i = 0; i < n; i++)
		if (gossip_dec_msg(&msgs[i], &m) < 0)
			goto malformed;
	for (uint32_t i = 0; i < n; i++)
		if (gossip_dec_msg(&msgs[i], &m) == 0)
			gossip_dispatch(g, from, &m, now_ms);
	mc_doc_free(doc);
	return;
malformed:
	drop(g, GOSSIP_DROP_MALFORMED);
	mc_doc_free(doc);
}

void gossip_tick(struct gossip *g, uint64_t now_ms)
{
	gossip_timers_run(g, now_ms);
}

uint64_t gossip_next_deadline(const struct gossip *g)
{
	return gossip_timers_next(g);
}

void gossip_announce(struct gossip *g, const struct mc_addr *addr,
                     uint64_t now_ms)
{
	const struct gossip_entry *self = gossip_entry_find(g, g->self_key);
	(void)now_ms;
	mc_buf_reset(&g->msgs);
	gossip_enc_alive(&g->msgs, g->incarnation, &self->info->node, -1);
	gossip_send(g, addr, 1);
}

int gossip_set_local_node(struct gossip *g, const struct gossip_node *node,
                          uint64_t now_ms)
{
	struct gossip_node n;

	if (node_normalize(&n, node) != 0 || gossip_id_key(n.id) != g->self_key)
		return -EINVAL;
	struct gossip_entry *self = gossip_entry_find(g, g->self_key);
	struct gossip_nref *r = gossip_intern_get(g->intern, &n);
	gossip_intern_put(g->intern, self->info);
	self->info = r;
	g->cfg.local = n;
	self->incarnation = ++g->incarnation;
	self->state_change_ms = now_ms;
	gossip_queue_alive(g, self);
	return 0;
}

int gossip_broadcast_user(struct gossip *g, const char *key,
                          const uint8_t *body, size_t len)
{
	uint8_t k[GOSSIP_UKEY_MAX + 1];
	size_t klen = strnlen(key, GOSSIP_UKEY_MAX);
	struct mc_buf b;

	if (klen == 0 || klen == GOSSIP_UKEY_MAX)
		return -EINVAL;
	if (len > GOSSIP_USER_MAX)
		return -EMSGSIZE;
	k[0] = 'u';
	memcpy(k + 1, key, klen);
	mc_buf_init(&b);
	gossip_enc_user(&b, key, body, len);
	gossip_dissem_put(&g->dissem, k, klen + 1, GOSSIP_BC_USER, b.data,
	                  b.len);
	g->ctr.broadcasts_queued++;
	mc_buf_free(&b);
	return 0;
}

void gossip_leave(struct gossip *g, uint64_t now_ms)
{
	if (g->leaving)
		return;
	g->leaving = true;
	g->probe.active = false;
	mc_info("gossip", "%s: leaving", g->cfg.local.id);
	gossip_on_dead(g, g->incarnation, g->self_key, g->self_key, now_ms);
}

bool gossip_leave_sent(const struct gossip *g)
{
	if (!g->leaving)
		return false;
	if (g->leave_sends >= g->cfg.gossip_nodes)
		return true;
	for (uint32_t i = 0; i < g->nents; i++)
		if (g->ents[i].key != g->self_key &&
		    g->ents[i].state == GOSSIP_ALIVE)
			return false;
	return true;
}

void gossip_snapshot_encode(struct gossip *g, struct mc_buf *out)
{
	gossip_enc_envelope(out, g->nents);
	for (uint32_t i = 0; i < g->nents; i++) {
		const struct gossip_entry *e = &g->ents[i];
		gossip_enc_alive(out, e->incarnation, &e->info->node, e->state);
	}
}

/*
 * memberlist's mergeRemoteState: alive entries are alive messages, left
 * ones leave messages; a member the peer holds suspect or dead is only
 * suspected here, so it gets the chance to refute.
 */
int gossip_snapshot_merge(struct gossip *g, const uint8_t *p, size_t len,
                          uint64_t now_ms)
{
	const struct mc_val *items;
	uint32_t n;
	struct gossip_msg m;
	int rc = -EBADMSG;

	struct mc_doc *doc = mc_unpack(p, len);
	if (!doc)
		return -EBADMSG;
	if (gossip_dec_envelope(mc_doc_root(doc), &items, &n) != 0)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		if (gossip_dec_msg(&items[i], &m) != 0 ||
		    m.type != GOSSIP_MSG_ALIVE)
			goto out;
	for (uint32_t i = 0; i < n; i++) {
		gossip_dec_msg(&items[i], &m);
		switch (m.state) {
		case GOSSIP_ALIVE:
			gossip_on_alive(g, &m, now_ms);
			break;
		case GOSSIP_LEFT:
			gossip_on_dead(g, m.incarnation, m.node, m.node,
			               now_ms);
			break;
		default:
			gossip_on_suspect(g, m.incarnation, m.node, g->self_key,
			                  now_ms);
			break;
		}
	}
	rc = 0;
out:
	mc_doc_free(doc);
	return rc;
}

const struct gossip_node *gossip_local_node(const struct gossip *g)
{
	return &gossip_entry_find(g, g->self_key)->info->node;
}

uint32_t gossip_incarnation(const struct gossip *g)
{
	return g->incarnation;
}

uint32_t gossip_health(const struct gossip *g)
{
	return g->awareness;
}

const struct gossip_counters *gossip_counters(const struct gossip *g)
{
	return &g->ctr;
}

const char *gossip_state_name(enum gossip_state s)
{
	static const char *const names[] = {"alive", "suspect", "dead", "left"};
	return (unsigned)s <= GOSSIP_LEFT ? names[s] : "?";
}

const char *gossip_event_name(enum gossip_event e)
{
	static const char *const names[] = {"joined", "alive", "suspect",
	                                    "dead",   "left",  "updated"};
	return (unsigned)e <= GOSSIP_EV_UPDATED ? names[e] : "?";
}

const char *gossip_drop_name(enum gossip_drop d)
{
	static const char *const names[] = {"bad_key",   "truncated",
	                                    "malformed", "replay",
	                                    "too_big",   "not_for_us"};
	return (unsigned)d < GOSSIP_DROP_MAX ? names[d] : "?";
}
