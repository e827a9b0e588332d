/*
 * The member table and SWIM's rules for merging what others say about
 * members (memberlist's aliveNode, suspectNode, deadNode): a message about a
 * member counts only when it carries a newer incarnation, or the same one
 * and a worse state; accusations against ourselves are refuted by a higher
 * incarnation.
 */
#include "gossip_int.h"

#include "log.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static uint32_t mix32(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* Interned node infos, by id; a few versions of one id may coexist. */

struct gossip_intern *gossip_intern_new(void)
{
	struct gossip_intern *in = xcalloc(1, sizeof(*in));
	in->users = 1;
	in->nbuckets = 64;
	in->buckets = xcalloc(in->nbuckets, sizeof(*in->buckets));
	return in;
}

void gossip_intern_unref(struct gossip_intern *in)
{
	if (!in || --in->users)
		return;
	for (uint32_t i = 0; i < in->nbuckets; i++) {
		struct gossip_nref *r = in->buckets[i], *next;
		for (; r; r = next) {
			next = r->next;
			free(r);
		}
	}
	free(in->buckets);
	free(in);
}

static void intern_grow(struct gossip_intern *in)
{
	struct gossip_nref **old = in->buckets;
	uint32_t old_n = in->nbuckets;

	in->nbuckets *= 2;
	in->buckets = xcalloc(in->nbuckets, sizeof(*in->buckets));
	for (uint32_t i = 0; i < old_n; i++) {
		struct gossip_nref *r = old[i], *next;
		for (; r; r = next) {
			next = r->next;
			uint32_t b = mix32(r->key) & (in->nbuckets - 1);
			r->next = in->buckets[b];
			in->buckets[b] = r;
		}
	}
	free(old);
}

/*
 * Returns a reference to the interned copy of node. node must be zeroed
 * past its strings (as decoding leaves it), since copies compare bytewise.
 */
struct gossip_nref *gossip_intern_get(struct gossip_intern *in,
                                      const struct gossip_node *node)
{
	uint64_t key = gossip_id_key(node->id);
	uint32_t b = mix32(key) & (in->nbuckets - 1);

	for (struct gossip_nref *r = in->buckets[b]; r; r = r->next) {
		if (r->key == key &&
		    (&r->node == node ||
		     memcmp(&r->node, node, sizeof(*node)) == 0)) {
			r->refs++;
			return r;
		}
	}
	struct gossip_nref *r = xmalloc(sizeof(*r));
	r->key = key;
	r->refs = 1;
	r->node = *node;
	r->next = in->buckets[b];
	in->buckets[b] = r;
	if (++in->count > in->nbuckets)
		intern_grow(in);
	return r;
}

void gossip_intern_put(struct gossip_intern *in, struct gossip_nref *r)
{
	if (!r || --r->refs)
		return;
	struct gossip_nref **pp =
	    &in->buckets[mix32(r->key) & (in->nbuckets - 1)];
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	in->count--;
	free(r);
}

/* The entry table: a vector and a linear-probing index over it. */

static uint32_t *slot_of(const struct gossip *g, uint64_t key)
{
	uint32_t mask = g->nslots - 1;
	for (uint32_t i = mix32(key) & mask;; i = (i + 1) & mask) {
		uint32_t *s = &g->slots[i];
		if (*s == UINT32_MAX || g->ents[*s].key == key)
			return s;
	}
}

struct gossip_entry *gossip_entry_find(const struct gossip *g, uint64_t key)
{
	uint32_t *s = slot_of(g, key);
	return *s == UINT32_MAX ? NULL : &g->ents[*s];
}

static void index_rebuild(struct gossip *g, uint32_t nslots)
{
	free(g->slots);
	g->nslots = nslots;
	g->slots = xmalloc(sizeof(*g->slots) * nslots);
	memset(g->slots, 0xff, sizeof(*g->slots) * nslots);
	for (uint32_t i = 0; i < g->nents; i++)
		*slot_of(g, g->ents[i].key) = i;
}

/* Makes room for n entries without moving them again. */
void gossip_entries_reserve(struct gossip *g, uint32_t n)
{
	if (n > g->cap_ents) {
		g->cap_ents = n;
		g->ents = xrealloc(g->ents, sizeof(*g->ents) * n);
	}
	uint32_t nslots = g->nslots ? g->nslots : 32;
	while ((uint64_t)n * 2 > nslots)
		nslots *= 2;
	if (nslots != g->nslots)
		index_rebuild(g, nslots);
}

/* Adds a zeroed entry for key, which must be absent. Moves other entries. */
struct gossip_entry *gossip_entry_add(struct gossip *g, uint64_t key)
{
	if (g->nents == g->cap_ents) {
		g->cap_ents = g->cap_ents ? g->cap_ents * 2 : 16;
		g->ents = xrealloc(g->ents, sizeof(*g->ents) * g->cap_ents);
	}
	if ((g->nents + 1) * 2 > g->nslots)
		index_rebuild(g, g->nslots ? g->nslots * 2 : 32);
	struct gossip_entry *e = &g->ents[g->nents];
	memset(e, 0, sizeof(*e));
	e->key = key;
	e->reach = GOSSIP_REACH_UNTRIED;
	g->nuntried++;
	*slot_of(g, key) = g->nents++;
	return e;
}

/* Knuth's deletion for linear probing: no tombstones. */
static void slot_delete(struct gossip *g, uint32_t *s)
{
	uint32_t mask = g->nslots - 1;
	uint32_t i = (uint32_t)(s - g->slots), j = i;

	for (;;) {
		g->slots[i] = UINT32_MAX;
		for (;;) {
			j = (j + 1) & mask;
			if (g->slots[j] == UINT32_MAX)
				return;
			uint32_t h = mix32(g->ents[g->slots[j]].key) & mask;
			/* Can slot j's entry move to the hole at i? */
			if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
				continue;
			break;
		}
		g->slots[i] = g->slots[j];
		i = j;
	}
}

/* Removes e; the last entry takes its place in the vector. */
void gossip_entry_remove(struct gossip *g, struct gossip_entry *e)
{
	uint32_t idx = (uint32_t)(e - g->ents);
	uint32_t last = g->nents - 1;

	gossip_suspicion_stop(g, e);
	if (e->reach == GOSSIP_REACH_UNTRIED)
		g->nuntried--;
	gossip_intern_put(g->intern, e->info);
	slot_delete(g, slot_of(g, e->key));
	if (idx != last) {
		g->ents[idx] = g->ents[last];
		*slot_of(g, g->ents[idx].key) = idx;
	}
	g->nents--;
	if (g->probe_index != UINT32_MAX && g->probe_index > idx)
		g->probe_index--;
}

/*
 * Starts a probe round (memberlist's resetNodes): forgets members dead or
 * left for longer than reap_ms, then shuffles the probe order.
 */
void gossip_entries_reset(struct gossip *g, uint64_t now_ms)
{
	for (uint32_t i = 0; i < g->nents;) {
		struct gossip_entry *e = &g->ents[i];
		if ((e->state == GOSSIP_DEAD || e->state == GOSSIP_LEFT) &&
		    now_ms - e->state_change_ms >= g->cfg.reap_ms) {
			mc_debug("gossip", "%s: reaping %016llx",
			         g->cfg.local.id, (unsigned long long)e->key);
			gossip_entry_remove(g, e);
			continue;
		}
		i++;
	}
	for (uint32_t i = g->nents; i > 1; i--) {
		uint32_t j = gossip_rand_below(g, i);
		struct gossip_entry t = g->ents[i - 1];
		g->ents[i - 1] = g->ents[j];
		g->ents[j] = t;
	}
	index_rebuild(g, g->nslots);
	g->probe_index = 0;
}

static void fill_member(const struct gossip_entry *e, struct gossip_member *m)
{
	m->node = &e->info->node;
	m->incarnation = e->incarnation;
	m->state = (enum gossip_state)e->state;
	m->state_change_ms = e->state_change_ms;
	m->reached = e->reach == GOSSIP_REACH_YES;
}

void gossip_emit(struct gossip *g, enum gossip_event ev,
                 const struct gossip_entry *e)
{
	struct gossip_member m;
	if (!g->cfg.cb.event || e->key == g->self_key)
		return;
	fill_member(e, &m);
	g->cfg.cb.event(g->cfg.cb.ctx, ev, &m);
}

void gossip_set_state(struct gossip *g, struct gossip_entry *e,
                      enum gossip_state st, uint64_t now_ms)
{
	if (e->state != st)
		mc_debug("gossip", "%s: member %s %s -> %s inc %u",
		         g->cfg.local.id, e->info->node.id,
		         gossip_state_name((enum gossip_state)e->state),
		         gossip_state_name(st), e->incarnation);
	if (st != GOSSIP_SUSPECT)
		gossip_suspicion_stop(g, e);
	e->state = (uint8_t)st;
	e->state_change_ms = now_ms;
}

static const char *reach_name(enum gossip_reach r)
{
	static const char *const names[] = {"untried", "never reached",
	                                    "reached"};
	return (unsigned)r <= GOSSIP_REACH_YES ? names[r] : "?";
}

/* Keeps the count of untried entries, which reach pings look for. */
void gossip_set_reach(struct gossip *g, struct gossip_entry *e,
                      enum gossip_reach r)
{
	if (e->reach == r)
		return;
	mc_debug("gossip", "%s: member %s %s -> %s", g->cfg.local.id,
	         e->info ? e->info->node.id : "?",
	         reach_name((enum gossip_reach)e->reach), reach_name(r));
	if (e->reach == GOSSIP_REACH_UNTRIED)
		g->nuntried--;
	if (r == GOSSIP_REACH_UNTRIED)
		g->nuntried++;
	e->reach = (uint8_t)r;
}

static void member_key(uint8_t key[9], uint64_t node)
{
	key[0] = 'm';
	for (int i = 0; i < 8; i++)
		key[1 + i] = (uint8_t)(node >> (56 - 8 * i));
}

void gossip_queue_alive(struct gossip *g, const struct gossip_entry *e)
{
	uint8_t key[9];
	struct mc_buf b;

	mc_buf_init(&b);
	gossip_enc_alive(&b, e->incarnation, &e->info->node, -1);
	member_key(key, e->key);
	gossip_dissem_put(&g->dissem, key, sizeof(key), GOSSIP_BC_MEMBER,
	                  b.data, b.len);
	g->ctr.broadcasts_queued++;
	mc_buf_free(&b);
}

static void queue_accuse(struct gossip *g, enum gossip_msg_type t, uint32_t inc,
                         uint64_t node, uint64_t from)
{
	uint8_t key[9];
	struct mc_buf b;
	uint8_t flags = GOSSIP_BC_MEMBER;

	mc_buf_init(&b);
	gossip_enc_accuse(&b, t, inc, node, from);
	member_key(key, node);
	if (t == GOSSIP_MSG_DEAD && node == g->self_key && from == node)
		flags |= GOSSIP_BC_LEAVE;
	gossip_dissem_put(&g->dissem, key, sizeof(key), flags, b.data, b.len);
	g->ctr.broadcasts_queued++;
	mc_buf_free(&b);
}

/* Answers an accusation at incarnation inc with a higher one of ours. */
static void refute(struct gossip *g, uint32_t inc, uint64_t now_ms)
{
	struct gossip_entry *self = gossip_entry_find(g, g->self_key);

	g->incarnation = (inc >= g->incarnation ? inc : g->incarnation) + 1;
	self->incarnation = g->incarnation;
	gossip_set_state(g, self, GOSSIP_ALIVE, now_ms);
	g->ctr.refuted++;
	gossip_awareness_delta(g, 1);
	gossip_queue_alive(g, self);
	mc_debug("gossip", "%s: refuting at incarnation %u", g->cfg.local.id,
	         g->incarnation);
}

void gossip_on_alive(struct gossip *g, const struct gossip_msg *m,
                     uint64_t now_ms)
{
	struct gossip_entry *e = gossip_entry_find(g, m->node);

	if (m->node == g->self_key) {
		/* Someone speaks of us: only a differing story needs an
		 * answer (memberlist refutes it). */
		if (g->leaving ||
		    (m->incarnation <= g->incarnation &&
		     memcmp(&m->info, &e->info->node, sizeof(m->info)) == 0) ||
		    m->incarnation < g->incarnation)
			return;
		refute(g, m->incarnation, now_ms);
		return;
	}
	if (!e) {
		e = gossip_entry_add(g, m->node);
		e->info = gossip_intern_get(g->intern, &m->info);
		e->incarnation = m->incarnation;
		e->state = GOSSIP_ALIVE;
		e->state_change_ms = now_ms;
		mc_debug("gossip", "%s: member %s joined inc %u",
		         g->cfg.local.id, m->info.id, m->incarnation);
		gossip_queue_alive(g, e);
		gossip_emit(g, GOSSIP_EV_JOINED, e);
		return;
	}
	if (m->incarnation <= e->incarnation)
		return;
	enum gossip_state was = (enum gossip_state)e->state;
	bool changed = memcmp(&m->info, &e->info->node, sizeof(m->info)) != 0;
	if (changed) {
		/* What we learnt about the path holds for the old address. */
		if (memcmp(&m->info.addr, &e->info->node.addr,
		           sizeof(m->info.addr)) != 0)
			gossip_set_reach(g, e, GOSSIP_REACH_UNTRIED);
		struct gossip_nref *r = gossip_intern_get(g->intern, &m->info);
		gossip_intern_put(g->intern, e->info);
		e->info = r;
	}
	e->incarnation = m->incarnation;
	gossip_set_state(g, e, GOSSIP_ALIVE, now_ms);
	gossip_queue_alive(g, e);
	if (was == GOSSIP_DEAD || was == GOSSIP_LEFT)
		gossip_emit(g, GOSSIP_EV_JOINED, e);
	else if (changed)
		gossip_emit(g, GOSSIP_EV_UPDATED, e);
	else if (was == GOSSIP_SUSPECT)
		gossip_emit(g, GOSSIP_EV_ALIVE, e);
}

void gossip_on_suspect(struct gossip *g, uint32_t inc, uint64_t node,
                       uint64_t from, uint64_t now_ms)
{
	struct gossip_entry *e = gossip_entry_find(g, node);

	if (!e || inc < e->incarnation)
		return;
	if (node == g->self_key) {
		if (!g->leaving)
			refute(g, inc, now_ms);
		return;
	}
	if (e->state == GOSSIP_SUSPECT) {
		/* Another accuser: the suspicion gets shorter, and others
		 * should hear of it. */
		if (gossip_suspicion_confirm(g, e, from, now_ms))
			queue_accuse(g, GOSSIP_MSG_SUSPECT, inc, node, from);
		return;
	}
	if (e->state != GOSSIP_ALIVE)
		return;
	e->incarnation = inc;
	gossip_set_state(g, e, GOSSIP_SUSPECT, now_ms);
	queue_accuse(g, GOSSIP_MSG_SUSPECT, inc, node, from);
	gossip_suspicion_start(g, e, from, now_ms);
	gossip_emit(g, GOSSIP_EV_SUSPECT, e);
}

void gossip_on_dead(struct gossip *g, uint32_t inc, uint64_t node,
                    uint64_t from, uint64_t now_ms)
{
	struct gossip_entry *e = gossip_entry_find(g, node);

	if (!e || inc < e->incarnation)
		return;
	if (e->state == GOSSIP_DEAD || e->state == GOSSIP_LEFT)
		return;
	if (node == g->self_key) {
		if (!g->leaving) {
			refute(g, inc, now_ms);
			return;
		}
		gossip_set_state(g, e, GOSSIP_LEFT, now_ms);
		queue_accuse(g, GOSSIP_MSG_DEAD, inc, node, from);
		return;
	}
	bool left = from == node;
	e->incarnation = inc;
	gossip_set_state(g, e, left ? GOSSIP_LEFT : GOSSIP_DEAD, now_ms);
	queue_accuse(g, GOSSIP_MSG_DEAD, inc, node, from);
	gossip_emit(g, left ? GOSSIP_EV_LEFT : GOSSIP_EV_DEAD, e);
}

/* Public getters over the table. */

bool gossip_member_get(const struct gossip *g, const char *id,
                       struct gossip_member *out)
{
	if (!gossip_id_valid(id))
		return false;
	const struct gossip_entry *e = gossip_entry_find(g, gossip_id_key(id));
	if (!e)
		return false;
	fill_member(e, out);
	return true;
}

void gossip_members_foreach(const struct gossip *g,
                            void (*fn)(void *ctx,
                                       const struct gossip_member *m),
                            void *ctx)
{
	struct gossip_member m;
	for (uint32_t i = 0; i < g->nents; i++) {
		fill_member(&g->ents[i], &m);
		fn(ctx, &m);
	}
}

uint32_t gossip_num_members(const struct gossip *g,
                            uint32_t counts[GOSSIP_LEFT + 1])
{
	if (counts) {
		memset(counts, 0, sizeof(uint32_t) * (GOSSIP_LEFT + 1));
		for (uint32_t i = 0; i < g->nents; i++)
			counts[g->ents[i].state]++;
	}
	return g->nents;
}

/* Inserts without dissemination: steady-state starts for tests and sims. */
void gossip_seed(struct gossip *g, const struct gossip_node *node,
                 uint32_t incarnation, uint64_t now_ms)
{
	if (!gossip_id_valid(node->id))
		return;
	uint64_t key = gossip_id_key(node->id);
	if (key == g->self_key || gossip_entry_find(g, key))
		return;
	struct gossip_entry *e = gossip_entry_add(g, key);
	e->info = gossip_intern_get(g->intern, node);
	e->incarnation = incarnation;
	e->state = GOSSIP_ALIVE;
	e->state_change_ms = now_ms;
	/* Reached, without a log line each: simulators seed N^2 of these. */
	e->reach = GOSSIP_REACH_YES;
	g->nuntried--;
}
