/*
 * The applier: watches the store and keeps the kernel's ruleset in step
 * with the records. Records arrive from gossip, anti-entropy and local
 * writes by different paths; all of them move the store's change counters
 * of their kinds (peer_store_changes). So a timer reads the counters of
 * instances and rules every SG_TICK_MS, and once they moved and then held
 * still for a tick (the debounce), the ruleset is rebuilt from the records
 * and applied only when its text differs from the last one applied.
 */
#include "secgroups.h"

#include "log.h"
#include "mem.h"
#include "peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SG_SUB          "secgroups"
#define SG_TICK_MS      200
#define SG_SETTLE_MAX   1000 /* rebuild at least this often while busy */
#define SG_RETRY_MS     5000 /* after the kernel refused a ruleset */
#define SG_BR_NETFILTER "/proc/sys/net/bridge/bridge-nf-call-iptables"

struct peer_secgroups {
	struct peer *p;
	uv_timer_t tick;
	struct peer_sg_nft *nft;
	uint64_t changes; /* of the kinds read, at the last tick */
	bool running;     /* hostnet ran at the last tick */
	bool pending;     /* records changed since the last rebuild */
	uint64_t since;   /* when pending began (loop ms) */
	uint64_t retry_at;
	char *applied; /* the text in the kernel, or NULL */
	struct peer_sg_stats stats;
};

/* ---- gathering the input ---- */

struct gather {
	const char *self;
	struct peer_sg_instance *inst;
	size_t n_inst, cap_inst;
	struct peer_sg_rule *rules;
	size_t n_rules, cap_rules;
};

static int gather_instance(const struct peer_record *r, void *arg)
{
	struct gather *g = arg;
	struct mc_instance rec;
	if (mc_instance_unpack(r->body, r->body_len, &rec) != 0)
		return 0;
	if (mc_instance_holds_capacity(rec.state) && rec.private_ip[0]) {
		if (g->n_inst == g->cap_inst) {
			g->cap_inst = g->cap_inst ? 2 * g->cap_inst : 16;
			g->inst =
			    xrealloc(g->inst, g->cap_inst * sizeof(*g->inst));
		}
		struct peer_sg_instance *x = &g->inst[g->n_inst++];
		memset(x, 0, sizeof(*x));
		snprintf(x->id, sizeof(x->id), "%s", rec.id);
		snprintf(x->account, sizeof(x->account), "%s", rec.account);
		snprintf(x->ip, sizeof(x->ip), "%s", rec.private_ip);
		snprintf(x->mac, sizeof(x->mac), "%s", rec.mac);
		x->local = strcmp(rec.host, g->self) == 0;
		for (size_t i = 0; i < rec.n_groups; i++)
			snprintf(x->groups[i], sizeof(x->groups[i]), "%s",
			         rec.groups[i].id);
		x->n_groups = rec.n_groups;
	}
	mc_instance_clear(&rec);
	return 0;
}

static int gather_rule(const struct peer_record *r, void *arg)
{
	struct gather *g = arg;
	if (g->n_rules == g->cap_rules) {
		g->cap_rules = g->cap_rules ? 2 * g->cap_rules : 16;
		g->rules = xrealloc(g->rules, g->cap_rules * sizeof(*g->rules));
	}
	if (peer_sg_rule_decode(r->id, r->body, r->body_len,
	                        &g->rules[g->n_rules]) == 0)
		g->n_rules++;
	return 0;
}

/* True when bridged IPv4 passes the inet hooks (br_netfilter). */
static bool bridged_via_inet(void)
{
	FILE *f = fopen(SG_BR_NETFILTER, "r");
	if (!f)
		return false;
	int c = fgetc(f);
	fclose(f);
	return c == '1';
}

/* ---- rebuilding ---- */

static void rebuild(struct peer_secgroups *sg)
{
	struct peer *p = sg->p;
	struct gather g = {.self = p->id};
	int r = peer_store_list(p->store, MC_INSTANCE_KIND, false,
	                        gather_instance, &g);
	if (r == 0)
		r = peer_store_list(p->store, PEER_SG_KIND_RULE, false,
		                    gather_rule, &g);
	if (r) {
		mc_warn(SG_SUB, "cannot read the records: %s", strerror(-r));
		sg->pending = true;
		goto out;
	}
	struct peer_sg_input in = {
	    .instances = g.inst,
	    .n_instances = g.n_inst,
	    .rules = g.rules,
	    .n_rules = g.n_rules,
	    .bridge_fallback = !bridged_via_inet(),
	};
	struct peer_sg_counts c;
	struct mc_buf text;
	mc_buf_init(&text);
	peer_sg_compile(&in, &text, &c);
	char *s = mc_buf_strdup(&text);
	mc_buf_free(&text);
	if (sg->applied && strcmp(sg->applied, s) == 0) {
		free(s);
		goto out;
	}
	char err[512];
	if (peer_sg_nft_run(sg->nft, s, err, sizeof(err)) != 0) {
		sg->stats.failures++;
		mc_error(SG_SUB, "ruleset refused (%u instances, %u rules): %s",
		         c.instances, c.rules, err);
		free(s);
		sg->pending = true;
		sg->retry_at = uv_now(p->loop) + SG_RETRY_MS;
		goto out;
	}
	free(sg->applied);
	sg->applied = s;
	sg->stats.applies++;
	sg->stats.instances = c.instances;
	sg->stats.rules = c.rules;
	sg->stats.skipped = c.skipped;
	mc_info(SG_SUB,
	        "applied: %u local instances, %u rules (%u skipped) of %zu "
	        "instances and %zu rules in the cloud, %u taps guarded%s",
	        c.instances, c.rules, c.skipped, g.n_inst, g.n_rules, c.guarded,
	        in.bridge_fallback ? "; bridged traffic without conntrack"
	                           : "");
out:
	free(g.inst);
	free(g.rules);
}

static void on_tick(uv_timer_t *t)
{
	struct peer_secgroups *sg = t->data;
	struct peer *p = sg->p;
	uint64_t now = uv_now(p->loop);
	if (!p->hostnet) {
		sg->running = false;
		return;
	}
	uint64_t c = peer_store_changes(p->store, MC_INSTANCE_KIND) +
	             peer_store_changes(p->store, PEER_SG_KIND_RULE);
	bool changed = !sg->running || c != sg->changes;
	sg->running = true;
	if (changed) {
		sg->changes = c;
		if (!sg->pending)
			sg->since = now;
		sg->pending = true;
		/* Wait for the records to hold still, but not forever. */
		if (now - sg->since < SG_SETTLE_MAX)
			return;
	}
	if (!sg->pending || now < sg->retry_at)
		return;
	sg->pending = false;
	sg->retry_at = 0;
	rebuild(sg);
}

/* ---- start and stop ---- */

int peer_secgroups_start(struct peer *p)
{
	if (p->secgroups)
		return 0;
	struct peer_sg_nft *nft = peer_sg_nft_new();
	if (!nft) {
		mc_error(SG_SUB, "no nftables context: groups not enforced");
		return -ENOMEM;
	}
	struct peer_secgroups *sg = xcalloc(1, sizeof(*sg));
	sg->p = p;
	sg->nft = nft;
	uv_timer_init(p->loop, &sg->tick);
	sg->tick.data = sg;
	uv_timer_start(&sg->tick, on_tick, SG_TICK_MS, SG_TICK_MS);
	p->secgroups = sg;
	return 0;
}

static void closed(uv_handle_t *h)
{
	struct peer_secgroups *sg = h->data;
	peer_sg_nft_free(sg->nft);
	free(sg->applied);
	free(sg);
}

void peer_secgroups_stop(struct peer *p)
{
	struct peer_secgroups *sg = p->secgroups;
	if (!sg)
		return;
	p->secgroups = NULL;
	uv_close((uv_handle_t *)&sg->tick, closed);
}

void peer_secgroups_stats(const struct peer *p, struct peer_sg_stats *out)
{
	if (p->secgroups)
		*out = p->secgroups->stats;
	else
		memset(out, 0, sizeof(*out));
}
