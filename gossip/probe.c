/*
 * All of gossip's timing policy, in one place: the probe cycle (ping, then
 * ping-req through k peers, then suspicion), relayed pings, the gossip
 * rounds, suspicion timeouts and Lifeguard's local health.
 *
 * Lifeguard (Dadgar et al., 2018) as memberlist does it:
 * - local health: a score in [0, awareness_max) that grows when our probes
 *   fail without nacks from the relays (we may be the slow one) and when we
 *   must refute, and shrinks with each ack; probe interval and timeout are
 *   scaled by score + 1;
 * - suspicion timeouts start at max and shrink towards min as independent
 *   accusers confirm: max(min, max - (max - min) * log(C + 1) / log(K + 1));
 * - buddy system: a ping to a suspect member carries the suspicion, so it
 *   can refute at once.
 *
 * Reachability, for clouds made of clusters on private networks joined by
 * gateways, where some members can never reach others: a member counts as
 * reached once one of our direct pings (probe, reach ping, or a ping we
 * relayed) was acked. Only reached members are suspected by our failed
 * probes; a failed probe of one never reached raises no suspicion and costs
 * no local health (unreached_probes counts it), and gets no ping-req: its
 * own cluster judges it, and the verdict comes by gossip. Unreached members
 * stay in the probe cycle, so a path that appears is found; a member learnt
 * of gets a reach ping soon, so a flat cloud reaches everyone in a few
 * gossip rounds and behaves as plain SWIM. Gossip targets and ping-req
 * helpers are drawn from the members reached or not tried yet first.
 */
#include "gossip_int.h"

#include "log.h"
#include "mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t gossip_scale(const struct gossip *g, uint64_t ms)
{
	return ms * (g->awareness + 1);
}

void gossip_awareness_delta(struct gossip *g, int delta)
{
	int64_t v = (int64_t)g->awareness + delta;
	int64_t max = (int64_t)g->cfg.awareness_max - 1;
	if (v < 0)
		v = 0;
	if (v > max)
		v = max;
	if ((uint32_t)v != g->awareness)
		mc_debug("gossip", "%s: local health %u -> %u", g->cfg.local.id,
		         g->awareness, (uint32_t)v);
	g->awareness = (uint32_t)v;
}

void gossip_timers_init(struct gossip *g, uint64_t now_ms)
{
	/* Stagger instances started together, as memberlist does. */
	g->next_probe_ms =
	    now_ms + gossip_rand_below(g, g->cfg.probe_interval_ms);
	g->next_gossip_ms =
	    now_ms + gossip_rand_below(g, g->cfg.gossip_interval_ms);
}

/* Suspicion. */

static uint64_t suspicion_timeout(const struct gossip_suspicion *s)
{
	if (s->k < 1)
		return s->min_ms;
	double frac = log((double)s->n + 1.0) / log((double)s->k + 1.0);
	double raw = (double)s->max_ms - frac * (double)(s->max_ms - s->min_ms);
	uint64_t t = raw < (double)s->min_ms ? s->min_ms : (uint64_t)raw;
	return t;
}

void gossip_suspicion_start(struct gossip *g, struct gossip_entry *e,
                            uint64_t from, uint64_t now_ms)
{
	struct gossip_suspicion *s = xcalloc(1, sizeof(*s));
	uint32_t n = g->nents;
	double scale = log10(n > 1 ? (double)n : 1.0);

	if (scale < 1.0)
		scale = 1.0;
	s->key = e->key;
	s->incarnation = e->incarnation;
	s->k = g->cfg.suspicion_mult > 2 ? g->cfg.suspicion_mult - 2 : 0;
	if (s->k > GOSSIP_CONFIRM_MAX)
		s->k = GOSSIP_CONFIRM_MAX;
	if (n < s->k + 2)
		s->k = 0;
	s->min_ms = (uint64_t)((double)g->cfg.suspicion_mult * scale *
	                       g->cfg.probe_interval_ms);
	s->max_ms = s->min_ms * g->cfg.suspicion_max_mult;
	s->start_ms = now_ms;
	s->accusers[0] = from;
	s->deadline_ms = now_ms + (s->k < 1 ? s->min_ms : s->max_ms);
	s->next = g->suspicions;
	g->suspicions = s;
	e->susp = s;
}

/* True when from is a new, independent accuser. */
bool gossip_suspicion_confirm(struct gossip *g, struct gossip_entry *e,
                              uint64_t from, uint64_t now_ms)
{
	struct gossip_suspicion *s = e->susp;
	(void)g;
	(void)now_ms;
	if (!s || s->n >= s->k)
		return false;
	for (uint32_t i = 0; i <= s->n; i++)
		if (s->accusers[i] == from)
			return false;
	s->accusers[++s->n] = from;
	s->deadline_ms = s->start_ms + suspicion_timeout(s);
	return true;
}

void gossip_suspicion_stop(struct gossip *g, struct gossip_entry *e)
{
	struct gossip_suspicion *s = e->susp, **pp;
	if (!s)
		return;
	for (pp = &g->suspicions; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	free(s);
	e->susp = NULL;
}

static void suspicions_run(struct gossip *g, uint64_t now_ms)
{
	struct gossip_suspicion *s = g->suspicions;
	while (s) {
		if (now_ms < s->deadline_ms) {
			s = s->next;
			continue;
		}
		uint64_t key = s->key;
		uint32_t inc = s->incarnation;
		mc_debug("gossip", "%s: suspicion of %016llx timed out",
		         g->cfg.local.id, (unsigned long long)key);
		g->ctr.declared_dead++;
		/* Declaring the member dead ends (frees) the suspicion. */
		gossip_on_dead(g, inc, key, g->self_key, now_ms);
		struct gossip_entry *e = gossip_entry_find(g, key);
		if (e && e->susp)
			gossip_suspicion_stop(g, e);
		s = g->suspicions;
	}
}

/* Picking peers. */

static bool probe_candidate(const struct gossip *g,
                            const struct gossip_entry *e)
{
	return e->key != g->self_key &&
	       (e->state == GOSSIP_ALIVE || e->state == GOSSIP_SUSPECT);
}

/* Adds to out[0..n) up to k random members as random_members says; with
 * unreached false, skips those we never reached and tells so in *skipped. */
static uint32_t pick_members(struct gossip *g, uint32_t k, uint64_t exclude,
                             bool to_dead, bool unreached, uint64_t now_ms,
                             uint32_t *out, uint32_t n, bool *skipped)
{
	for (uint32_t tries = 0; tries < 3 * g->nents && n < k; tries++) {
		uint32_t i = gossip_rand_below(g, g->nents);
		const struct gossip_entry *e = &g->ents[i];
		bool ok = probe_candidate(g, e);
		if (!ok && to_dead && e->state == GOSSIP_DEAD &&
		    now_ms - e->state_change_ms < g->cfg.gossip_to_dead_ms)
			ok = true;
		if (!ok || e->key == exclude)
			continue;
		if (!unreached && e->reach == GOSSIP_REACH_NEVER) {
			*skipped = true;
			continue;
		}
		bool dup = false;
		for (uint32_t j = 0; j < n; j++)
			dup |= out[j] == i;
		if (!dup)
			out[n++] = i;
	}
	return n;
}

/*
 * Up to k random live members other than us and exclude; memberlist's
 * kRandomNodes, with gossip to the recently dead when to_dead. Members we
 * tried and never reached are drawn only when too few others turn up: a
 * packet sent where it cannot arrive spends one of a broadcast's few
 * transmits. Those reached and those not tried yet are drawn alike, so a
 * flat cloud picks as plain SWIM does (preferring the reached would favour
 * the members known longest, who tend to know the news already).
 */
static uint32_t random_members(struct gossip *g, uint32_t k, uint64_t exclude,
                               bool to_dead, uint64_t now_ms, uint32_t *out)
{
	bool skipped = false;
	uint32_t n = pick_members(g, k, exclude, to_dead, false, now_ms, out, 0,
	                          &skipped);
	if (n < k && skipped)
		n = pick_members(g, k, exclude, to_dead, true, now_ms, out, n,
		                 &skipped);
	return n;
}

static void mark_reached(struct gossip *g, uint64_t key)
{
	struct gossip_entry *e = gossip_entry_find(g, key);
	if (e)
		gossip_set_reach(g, e, GOSSIP_REACH_YES);
}

/* The probe cycle. */

static void probe_finish(struct gossip *g, uint64_t now_ms)
{
	struct gossip_probe *p = &g->probe;

	p->active = false;
	if (p->acked)
		return;
	struct gossip_entry *e = gossip_entry_find(g, p->key);
	/* Never reached from here: it may be a private host of another
	 * cluster. Its silence says nothing of it, nor of our health. */
	if (e && e->reach != GOSSIP_REACH_YES) {
		gossip_set_reach(g, e, GOSSIP_REACH_NEVER);
		g->ctr.unreached_probes++;
		return;
	}
	/* With relays that nack, missing nacks say we are the sick one;
	 * without them, any failed probe counts against us. */
	if (p->expected_nacks > 0) {
		if (p->nacks < p->expected_nacks)
			gossip_awareness_delta(
			    g, (int)(p->expected_nacks - p->nacks));
	} else {
		gossip_awareness_delta(g, 1);
	}
	/* A member already suspect gets our independent confirmation,
	 * which shortens its suspicion (Lifeguard). */
	if (!e || (e->state != GOSSIP_ALIVE && e->state != GOSSIP_SUSPECT))
		return;
	mc_debug("gossip", "%s: probe of %s failed, suspecting",
	         g->cfg.local.id, e->info->node.id);
	g->ctr.suspicions++;
	gossip_on_suspect(g, e->incarnation, e->key, g->self_key, now_ms);
}

static void probe_start(struct gossip *g, uint64_t now_ms)
{
	struct gossip_probe *p = &g->probe;
	struct gossip_entry *e = NULL;

	for (uint32_t scanned = 0; scanned < g->nents; scanned++) {
		if (g->probe_index >= g->nents)
			gossip_entries_reset(g, now_ms);
		if (g->probe_index >= g->nents)
			break;
		struct gossip_entry *c = &g->ents[g->probe_index++];
		if (probe_candidate(g, c)) {
			e = c;
			break;
		}
	}
	if (!e)
		return;
	memset(p, 0, sizeof(*p));
	p->active = true;
	p->key = e->key;
	p->seq = ++g->next_seq;
	p->timeout_ms = now_ms + gossip_scale(g, g->cfg.probe_timeout_ms);
	p->end_ms = now_ms + gossip_scale(g, g->cfg.probe_interval_ms);

	mc_buf_reset(&g->msgs);
	gossip_enc_ping(&g->msgs, p->seq, e->key, false);
	uint32_t nmsgs = 1;
	if (e->state == GOSSIP_SUSPECT) {
		gossip_enc_accuse(&g->msgs, GOSSIP_MSG_SUSPECT, e->incarnation,
		                  e->key, g->self_key);
		nmsgs++;
	}
	struct mc_addr to = e->info->node.addr;
	/* Broadcasts ride only towards members that may get them. */
	if (e->reach == GOSSIP_REACH_NEVER)
		gossip_send_only(g, &to, nmsgs);
	else
		gossip_send(g, &to, nmsgs);
}

static void probe_indirect(struct gossip *g, uint64_t now_ms)
{
	struct gossip_probe *p = &g->probe;
	uint32_t idx[GOSSIP_CONFIRM_MAX];
	uint32_t k = g->cfg.indirect_checks;
	struct gossip_entry *target = gossip_entry_find(g, p->key);

	p->indirect_sent = true;
	/* Only a member reached before can be suspected by us: others'
	 * help could not change the outcome. */
	if (!target || target->reach != GOSSIP_REACH_YES)
		return;
	if (k > GOSSIP_CONFIRM_MAX)
		k = GOSSIP_CONFIRM_MAX;
	struct mc_addr taddr = target->info->node.addr;
	uint32_t n = random_members(g, k, p->key, false, now_ms, idx);
	struct mc_addr to[GOSSIP_CONFIRM_MAX];
	for (uint32_t i = 0; i < n; i++)
		to[i] = g->ents[idx[i]].info->node.addr;
	p->expected_nacks = n;
	/* A sequence of their own tells relayed acks from direct ones. */
	p->ind_seq = ++g->next_seq;
	for (uint32_t i = 0; i < n; i++) {
		mc_buf_reset(&g->msgs);
		gossip_enc_ping_req(&g->msgs, p->ind_seq, p->key, &taddr, true);
		gossip_send(g, &to[i], 1);
	}
}

void gossip_probe_on_ack(struct gossip *g, uint32_t seq, uint64_t now_ms)
{
	struct gossip_probe *p = &g->probe;

	(void)now_ms;
	if (p->active && (seq == p->seq || (p->ind_seq && seq == p->ind_seq))) {
		if (seq == p->seq)
			mark_reached(g, p->key);
		if (!p->acked) {
			p->acked = true;
			gossip_awareness_delta(g, -1);
		}
		return;
	}
	for (uint32_t i = 0; i < g->nreach_pings; i++) {
		if (g->reach_pings[i].seq != seq)
			continue;
		mark_reached(g, g->reach_pings[i].key);
		g->reach_pings[i] = g->reach_pings[--g->nreach_pings];
		return;
	}
	for (uint32_t i = 0; i < g->nrelays; i++) {
		struct gossip_relay *r = &g->relays[i];
		if (r->seq != seq)
			continue;
		/* The target answered our own ping: we reach it too. */
		mark_reached(g, r->target);
		struct mc_addr to = r->requester;
		uint32_t req_seq = r->req_seq;
		g->relays[i] = g->relays[--g->nrelays];
		mc_buf_reset(&g->msgs);
		gossip_enc_seq(&g->msgs, GOSSIP_MSG_ACK, req_seq);
		gossip_send(g, &to, 1);
		return;
	}
}

void gossip_probe_on_nack(struct gossip *g, uint32_t seq)
{
	if (g->probe.active && g->probe.ind_seq && seq == g->probe.ind_seq)
		g->probe.nacks++;
}

/* Serves a ping-req: pings the target for the requester. */
void gossip_relay_start(struct gossip *g, const struct mc_addr *requester,
                        const struct gossip_msg *m, uint64_t now_ms)
{
	if (g->nrelays == GOSSIP_RELAYS_MAX)
		return;
	struct gossip_relay *r = &g->relays[g->nrelays++];
	r->seq = ++g->next_seq;
	r->req_seq = m->seq;
	r->want_nack = m->want_nack;
	r->target = m->node;
	r->requester = *requester;
	/* Nack early enough to reach the requester before its probe ends
	 * (probe_interval - probe_timeout after it asked us, unscaled). */
	r->deadline_ms = now_ms + g->cfg.probe_timeout_ms * 4 / 5;
	mc_buf_reset(&g->msgs);
	gossip_enc_ping(&g->msgs, r->seq, m->node, false);
	gossip_send(g, &m->addr, 1);
}

static void relays_run(struct gossip *g, uint64_t now_ms)
{
	for (uint32_t i = 0; i < g->nrelays;) {
		struct gossip_relay *r = &g->relays[i];
		if (now_ms < r->deadline_ms) {
			i++;
			continue;
		}
		struct gossip_relay done = *r;
		g->relays[i] = g->relays[--g->nrelays];
		if (done.want_nack) {
			mc_buf_reset(&g->msgs);
			gossip_enc_seq(&g->msgs, GOSSIP_MSG_NACK, done.req_seq);
			gossip_send(g, &done.requester, 1);
		}
	}
}

/* One gossip round: pending broadcasts to a few random peers. */
static void gossip_round(struct gossip *g, uint64_t now_ms)
{
	uint32_t idx[16];
	uint32_t k = g->cfg.gossip_nodes < 16 ? g->cfg.gossip_nodes : 16;

	if (!g->dissem.count)
		return;
	uint32_t n = random_members(g, k, g->self_key, true, now_ms, idx);
	struct mc_addr to[16];
	for (uint32_t i = 0; i < n; i++)
		to[i] = g->ents[idx[i]].info->node.addr;
	for (uint32_t i = 0; i < n && g->dissem.count; i++) {
		mc_buf_reset(&g->msgs);
		gossip_send(g, &to[i], 0);
	}
}

static bool reach_ping_pending(const struct gossip *g, uint64_t key)
{
	for (uint32_t i = 0; i < g->nreach_pings; i++)
		if (g->reach_pings[i].key == key)
			return true;
	return false;
}

/*
 * Reach pings, each gossip round: a few live members we never pinged get a
 * ping outside the probe cycle, so that we know soon whether we reach them
 * (and may suspect them), not only when the probe cycle comes round. They
 * are quiet: neither they nor their acks carry broadcasts, so they take no
 * share of a broadcast's transmits and dissemination goes as in plain SWIM.
 * An unanswered one leaves the member unreached until a probe of it is
 * acked.
 */
static void reach_pings_run(struct gossip *g, uint64_t now_ms)
{
	for (uint32_t i = 0; i < g->nreach_pings;) {
		struct gossip_reach_ping *r = &g->reach_pings[i];
		if (now_ms < r->deadline_ms) {
			i++;
			continue;
		}
		struct gossip_entry *e = gossip_entry_find(g, r->key);
		if (e && e->reach == GOSSIP_REACH_UNTRIED)
			gossip_set_reach(g, e, GOSSIP_REACH_NEVER);
		*r = g->reach_pings[--g->nreach_pings];
	}
	uint32_t budget = g->cfg.gossip_nodes;
	for (uint32_t scanned = 0;
	     g->nuntried && !g->leaving && budget &&
	     g->nreach_pings < GOSSIP_REACH_PINGS &&
	     scanned < GOSSIP_REACH_SCAN && scanned < g->nents;
	     scanned++) {
		if (g->reach_cursor >= g->nents)
			g->reach_cursor = 0;
		struct gossip_entry *e = &g->ents[g->reach_cursor++];
		if (e->reach != GOSSIP_REACH_UNTRIED ||
		    !probe_candidate(g, e) || reach_ping_pending(g, e->key))
			continue;
		struct gossip_reach_ping *r =
		    &g->reach_pings[g->nreach_pings++];
		r->seq = ++g->next_seq;
		r->key = e->key;
		r->deadline_ms =
		    now_ms + gossip_scale(g, g->cfg.probe_interval_ms);
		struct mc_addr to = e->info->node.addr;
		mc_buf_reset(&g->msgs);
		gossip_enc_ping(&g->msgs, r->seq, e->key, true);
		gossip_send_only(g, &to, 1);
		budget--;
	}
}

void gossip_timers_run(struct gossip *g, uint64_t now_ms)
{
	struct gossip_probe *p = &g->probe;

	if (p->active && !p->acked && !p->indirect_sent &&
	    now_ms >= p->timeout_ms)
		probe_indirect(g, now_ms);
	if (p->active && now_ms >= p->end_ms)
		probe_finish(g, now_ms);
	if (now_ms >= g->next_probe_ms) {
		if (p->active)
			probe_finish(g, now_ms);
		if (!g->leaving)
			probe_start(g, now_ms);
		g->next_probe_ms =
		    now_ms + gossip_scale(g, g->cfg.probe_interval_ms);
	}
	relays_run(g, now_ms);
	suspicions_run(g, now_ms);
	if (now_ms >= g->next_gossip_ms) {
		gossip_round(g, now_ms);
		reach_pings_run(g, now_ms);
		g->next_gossip_ms = now_ms + g->cfg.gossip_interval_ms;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t gossip_timers_next(const struct gossip *g)
{
	const struct gossip_probe *p = &g->probe;
	uint64_t t = min_u64(g->next_probe_ms, g->next_gossip_ms);

	if (p->active) {
		if (!p->acked && !p->indirect_sent)
			t = min_u64(t, p->timeout_ms);
		t = min_u64(t, p->end_ms);
	}
	for (uint32_t i = 0; i < g->nrelays; i++)
		t = min_u64(t, g->relays[i].deadline_ms);
	for (const struct gossip_suspicion *s = g->suspicions; s; s = s->next)
		t = min_u64(t, s->deadline_ms);
	return t;
}
