/*
 * The "ping" method, and `mallee admin ping PEER`: the control socket
 * answers each request at once, so the CLI starts a ping ("ping" -> a
 * ticket) and asks for its outcome ("ping-result") until it is in. The
 * round trip is timed here, between the call and its answer.
 */
#include "rpc_int.h"

#include "gossip.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PINGS_MAX     64
#define PING_KEEP_MS  60000 /* an outcome nobody asked for is dropped */
#define PING_NAME_MAX GOSSIP_NAME_MAX

struct ping_slot {
	uint64_t ticket;
	bool used, done;
	int status;
	char message[256];
	char id[GOSSIP_ID_LEN + 1];
	char name[PING_NAME_MAX];
	uint64_t started_ns, rtt_ns;
	uint64_t done_ms;
};

/* The ticket table; lives in the RPC state so it goes with it. */
struct rpc_ping {
	struct ping_slot slot[PINGS_MAX];
	uint64_t next_ticket;
};

static void on_ping(struct peer *p, struct peer_rpc_req *req, const char *from,
                    const struct mc_val *args)
{
	(void)p;
	(void)from;
	(void)args;
	peer_rpc_reply(req, 0, NULL, NULL);
}

void rpc_ping_register(struct peer *p)
{
	peer_rpc_register(p, "ping", on_ping);
}

void rpc_ping_free_all(struct rpc_ping *pings)
{
	free(pings);
}

static struct rpc_ping *table(struct peer *p)
{
	struct rpc_ping **slot = rpc_pings(p);
	if (!slot)
		return NULL;
	if (!*slot)
		*slot = xcalloc(1, sizeof(**slot));
	return *slot;
}

/* The ping's context is its ticket, looked up again: the table may have
 * gone (the peer stopping) by the time the answer comes. */
struct ping_ctx {
	struct peer *p;
	uint64_t ticket;
};

static void ping_done(void *arg, int status, const char *message,
                      const struct mc_val *reply)
{
	struct ping_ctx *ctx = arg;
	struct rpc_ping *t = table(ctx->p);
	(void)reply;
	for (unsigned i = 0; t && i < PINGS_MAX; i++) {
		struct ping_slot *g = &t->slot[i];
		if (!g->used || g->ticket != ctx->ticket)
			continue;
		g->done = true;
		g->status = status;
		g->rtt_ns = uv_hrtime() - g->started_ns;
		g->done_ms = uv_now(ctx->p->loop);
		snprintf(g->message, sizeof(g->message), "%s",
		         message ? message : "");
	}
	free(ctx);
}

struct find_state {
	const char *want;
	char id[GOSSIP_ID_LEN + 1];
	char name[PING_NAME_MAX];
	bool found, left;
};

static void find_by_name(void *arg, const struct gossip_member *m)
{
	struct find_state *f = arg;
	if (strcmp(m->node->name, f->want) != 0)
		return;
	/* A name reused after a member left: the one still here wins. */
	if (f->found && !f->left)
		return;
	f->found = true;
	f->left = m->state == GOSSIP_LEFT || m->state == GOSSIP_DEAD;
	snprintf(f->id, sizeof(f->id), "%s", m->node->id);
	snprintf(f->name, sizeof(f->name), "%s", m->node->name);
}

/* A slot for a new ping: a free one, else the oldest finished one. */
static struct ping_slot *new_slot(struct rpc_ping *t, uint64_t now)
{
	struct ping_slot *best = NULL;
	for (unsigned i = 0; i < PINGS_MAX; i++) {
		struct ping_slot *g = &t->slot[i];
		if (g->used && g->done && now - g->done_ms > PING_KEEP_MS)
			g->used = false;
		if (!g->used)
			return g;
		if (g->done && (!best || g->done_ms < best->done_ms))
			best = g;
	}
	return best;
}

void peer_cmd_ping(struct peer *p, const struct mc_val *req,
                   struct mc_buf *reply)
{
	char want[PING_NAME_MAX];
	struct rpc_ping *t = table(p);
	if (!t || !p->net) {
		peer_ctl_reply_error(reply, "RPC is not running");
		return;
	}
	if (!mc_get_str(req, "to", want, sizeof(want)) || !want[0]) {
		peer_ctl_reply_error(reply, "ping needs a peer id or name");
		return;
	}
	const struct gossip *g = peer_net_gossip(p->net);
	struct find_state f = {.want = want};
	struct gossip_member m;
	if (gossip_id_valid(want) && gossip_member_get(g, want, &m)) {
		f.found = true;
		snprintf(f.id, sizeof(f.id), "%s", m.node->id);
		snprintf(f.name, sizeof(f.name), "%s", m.node->name);
	} else {
		gossip_members_foreach(g, find_by_name, &f);
	}
	if (!f.found) {
		peer_ctl_reply_error(reply, "no member has the id or name %s",
		                     want);
		return;
	}
	struct ping_slot *slot = new_slot(t, uv_now(p->loop));
	if (!slot) {
		peer_ctl_reply_error(reply, "too many pings under way");
		return;
	}
	struct ping_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->p = p;
	ctx->ticket = ++t->next_ticket;
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	slot->ticket = ctx->ticket;
	snprintf(slot->id, sizeof(slot->id), "%s", f.id);
	snprintf(slot->name, sizeof(slot->name), "%s", f.name);
	slot->started_ns = uv_hrtime();
	int r = peer_rpc_call(p, f.id, "ping", NULL, 0, ping_done, ctx);
	if (r) {
		slot->used = false;
		free(ctx);
		peer_ctl_reply_error(reply, "cannot ping %s: %s", want,
		                     strerror(-r));
		return;
	}
	mc_pack_map(reply, 4);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_uint(reply, "ticket", slot->ticket);
	mc_pack_kv_str(reply, "id", slot->id);
	mc_pack_kv_str(reply, "name", slot->name);
}

void peer_cmd_ping_result(struct peer *p, const struct mc_val *req,
                          struct mc_buf *reply)
{
	uint64_t ticket;
	struct rpc_ping *t = table(p);
	if (!t || !mc_get_uint(req, "ticket", &ticket)) {
		peer_ctl_reply_error(reply, "no such ping");
		return;
	}
	for (unsigned i = 0; i < PINGS_MAX; i++) {
		struct ping_slot *g = &t->slot[i];
		if (!g->used || g->ticket != ticket)
			continue;
		if (!g->done) {
			mc_pack_map(reply, 2);
			mc_pack_kv_bool(reply, "ok", true);
			mc_pack_kv_bool(reply, "done", false);
			return;
		}
		g->used = false;
		if (g->status) {
			peer_ctl_reply_error(reply, "ping %s (%s): %s", g->name,
			                     g->id, g->message);
			return;
		}
		mc_pack_map(reply, 5);
		mc_pack_kv_bool(reply, "ok", true);
		mc_pack_kv_bool(reply, "done", true);
		mc_pack_kv_str(reply, "id", g->id);
		mc_pack_kv_str(reply, "name", g->name);
		mc_pack_kv_uint(reply, "rtt_us", g->rtt_ns / 1000);
		return;
	}
	peer_ctl_reply_error(reply, "no such ping (it finished long ago)");
}
