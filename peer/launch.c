/*
 * launch, instance_op and host_state for the edge (launch.h).
 *
 * Every answer reaches the edge from a timer on the loop, never from
 * within the call that asked, whether it came over RPC or was known at
 * once (no host fits, no such instance).
 */
#include "launch.h"

#include "log.h"
#include "mem.h"
#include "peer.h"
#include "rpc.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOADS_TTL_MS 1000 /* instance records are counted once a second */
#define REASONS_MAX  2048 /* of the message listing hosts' refusals */

typedef void (*launch_cb)(void *ctx, int status, const char *message,
                          const struct mc_instance *admitted);
typedef void (*op_cb)(void *ctx, int status, const char *message,
                      const struct mc_instance *after, const uint8_t *data,
                      size_t len);

struct launch_op;

struct peer_launch {
	struct peer *p;
	uv_timer_t flush; /* hands over answers that are ready */
	struct launch_op *ops;
	unsigned refs; /* ops, plus one until stopped */
	bool stopping;
	struct peer_launch_loads loads;
	uint64_t loads_at; /* loop ms when counted; 0: never */
};

struct launch_op {
	struct peer_launch *l;
	struct launch_op *next, **pprev;
	bool is_launch;
	launch_cb lcb;
	op_cb ocb;
	void *ctx;
	bool in_flight; /* an RPC is out; its callback frees us if done */
	bool answered;  /* the edge has its answer */
	bool ready;     /* an answer waits for the flush timer */

	/* launch */
	struct mc_instance want;
	struct peer_launch_host *hosts;
	size_t *order;
	long n_order, tried; /* candidates, and how many were asked */
	struct mc_buf args;
	struct mc_buf reasons;
	int first_err; /* errno every refusal shared, or 0 once they differ */
	bool errs_differ;

	/* instance_op */
	char host[GOSSIP_ID_LEN + 1];
	char host_name[GOSSIP_NAME_MAX];

	/* the answer */
	int status;
	char *message;
	struct mc_instance result;
	bool has_result;
	uint8_t *data;
	size_t data_len;
};

static void launch_unref(struct peer_launch *l)
{
	if (--l->refs > 0)
		return;
	peer_launch_loads_free(&l->loads);
	free(l);
}

static void flush_closed(uv_handle_t *h)
{
	launch_unref(h->data);
}

static void on_flush(uv_timer_t *t);

static struct peer_launch *state(struct peer *p)
{
	if (!p->launch) {
		struct peer_launch *l = xcalloc(1, sizeof(*l));
		l->p = p;
		l->refs = 1;
		uv_timer_init(p->loop, &l->flush);
		l->flush.data = l;
		p->launch = l;
	}
	return p->launch;
}

static struct launch_op *op_new(struct peer_launch *l, void *ctx)
{
	struct launch_op *op = xcalloc(1, sizeof(*op));
	op->l = l;
	l->refs++;
	op->ctx = ctx;
	mc_buf_init(&op->args);
	mc_buf_init(&op->reasons);
	op->next = l->ops;
	if (op->next)
		op->next->pprev = &op->next;
	op->pprev = &l->ops;
	l->ops = op;
	return op;
}

static void op_free(struct launch_op *op)
{
	struct peer_launch *l = op->l;
	*op->pprev = op->next;
	if (op->next)
		op->next->pprev = op->pprev;
	mc_instance_clear(&op->want);
	mc_instance_clear(&op->result);
	free(op->hosts);
	free(op->order);
	mc_buf_free(&op->args);
	mc_buf_free(&op->reasons);
	free(op->message);
	free(op->data);
	free(op);
	launch_unref(l);
}

/* Keeps the answer for the flush timer. inst and data are copied. */
static void op_answer(struct launch_op *op, int status, const char *message,
                      const struct mc_instance *inst, const uint8_t *data,
                      size_t len)
{
	if (op->answered || op->ready)
		return;
	op->ready = true;
	op->status = status;
	op->message = message ? xstrdup(message) : NULL;
	if (inst) {
		mc_instance_copy(&op->result, inst);
		op->has_result = true;
	}
	if (data && len) {
		op->data = xmalloc(len);
		memcpy(op->data, data, len);
		op->data_len = len;
	}
	if (!op->l->stopping)
		uv_timer_start(&op->l->flush, on_flush, 0, 0);
}

static void op_deliver(struct launch_op *op)
{
	op->answered = true;
	const char *msg =
	    op->status && !op->message ? strerror(-op->status) : op->message;
	const struct mc_instance *inst = op->has_result ? &op->result : NULL;
	if (op->is_launch)
		op->lcb(op->ctx, op->status, op->status ? msg : NULL,
		        op->status ? NULL : inst);
	else
		op->ocb(op->ctx, op->status, op->status ? msg : NULL,
		        op->status ? NULL : inst, op->data, op->data_len);
}

static void on_flush(uv_timer_t *t)
{
	struct peer_launch *l = t->data;
	/* An answer may start new work (another launch): restart the walk
	 * after each one. */
	for (;;) {
		struct launch_op *op = l->ops;
		while (op && !(op->ready && !op->answered))
			op = op->next;
		if (!op)
			break;
		op_deliver(op);
		if (!op->in_flight)
			op_free(op);
	}
}

/* ------------------------------------------------------------------ */
/* Loads */

static int count_one(const struct peer_record *r, void *arg)
{
	struct peer_launch_loads *loads = arg;
	struct mc_instance inst;
	if (mc_instance_unpack(r->body, r->body_len, &inst) == 0) {
		peer_launch_loads_add(loads, &inst);
		mc_instance_clear(&inst);
	}
	return 0;
}

static const struct peer_launch_loads *loads(struct peer_launch *l)
{
	uint64_t now = uv_now(l->p->loop);
	if (l->loads_at && now - l->loads_at < LOADS_TTL_MS)
		return &l->loads;
	peer_launch_loads_free(&l->loads);
	peer_store_list(l->p->store, MC_INSTANCE_KIND, false, count_one,
	                &l->loads);
	peer_launch_loads_seal(&l->loads);
	l->loads_at = now ? now : 1;
	return &l->loads;
}

/* ------------------------------------------------------------------ */
/* Launch */

struct hosts_state {
	struct peer_launch_host *v;
	size_t n, cap;
	const struct peer_launch_loads *loads;
};

static void collect_host(void *ctx, const struct gossip_member *m)
{
	struct hosts_state *s = ctx;
	if (m->state != GOSSIP_ALIVE)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	struct peer_launch_host *h = &s->v[s->n++];
	memset(h, 0, sizeof(*h));
	snprintf(h->id, sizeof(h->id), "%s", m->node->id);
	snprintf(h->name, sizeof(h->name), "%s", m->node->name);
	snprintf(h->zone, sizeof(h->zone), "%s", m->node->zone);
	h->cap = m->node->cap;
	h->alive = true;
	h->load = peer_launch_loads_get(s->loads, m->node->id);
}

/* Adds "NAME: why" to the refusals, and tracks whether they agree. */
static void note_refusal(struct launch_op *op, const struct peer_launch_host *h,
                         int status, const char *why)
{
	if (op->reasons.len < REASONS_MAX)
		mc_buf_printf(&op->reasons, "%s%s (%s): %s",
		              op->reasons.len ? "; " : "", h->name, h->id,
		              why ? why : strerror(-status));
	if (!op->first_err)
		op->first_err = status;
	else if (op->first_err != status)
		op->errs_differ = true;
}

/* Retryable refusals: another host may well say yes. */
static bool is_capacity_error(int status)
{
	return status == -ENOSPC || status == -EHOSTUNREACH ||
	       status == -ETIMEDOUT || status == -EPROTO || status == -ENOSYS ||
	       status == -EBUSY || status == -EAGAIN || status == -EHOSTDOWN;
}

static void launch_give_up(struct launch_op *op)
{
	char *msg;
	if (op->n_order == 0) {
		msg = xasprintf(
		    "no host fits %u vCPU, %llu MiB memory%s%s "
		    "(of the hosts alive, none has that free)",
		    op->want.vcpu, (unsigned long long)op->want.mem_mib,
		    op->want.zone[0] ? " in zone " : "", op->want.zone);
		op_answer(op, -ENOSPC, msg, NULL, NULL, 0);
	} else if (!op->errs_differ && op->first_err &&
	           !is_capacity_error(op->first_err)) {
		/* Every host said the same thing, and not "full": pass it
		 * on (an image nobody knows, a bad request). */
		msg = xasprintf("%.*s", (int)op->reasons.len,
		                (const char *)op->reasons.data);
		op_answer(op, op->first_err, msg, NULL, NULL, 0);
	} else {
		msg = xasprintf("no host could take it: %.*s",
		                (int)op->reasons.len,
		                (const char *)op->reasons.data);
		op_answer(op, -ENOSPC, msg, NULL, NULL, 0);
	}
	free(msg);
}

static void try_next(struct launch_op *op);

/*
 * The host's answer carries its record as stored, with its stamp: apply it
 * here so this edge's next Describe shows the change (clients wait on
 * states right after asking for them; gossip would bring it a moment
 * later).
 */
static void apply_answer(struct peer_launch *l, const struct mc_instance *in,
                         const uint8_t *body, size_t len,
                         const struct mc_val *reply)
{
	uint64_t hlc;
	struct peer_record r;
	memset(&r, 0, sizeof(r));
	if (!mc_get_uint(reply, "hlc", &hlc) ||
	    !mc_get_str(reply, "writer", r.writer, sizeof(r.writer)) ||
	    !l->p->net)
		return;
	char rid[64];
	mc_instance_record_id(in, rid, sizeof(rid));
	r.kind = (char *)MC_INSTANCE_KIND;
	r.id = rid;
	r.body = (uint8_t *)body;
	r.body_len = len;
	r.hlc = hlc;
	peer_net_apply(l->p->net, &r);
}

static void on_admit(void *ctx, int status, const char *message,
                     const struct mc_val *reply)
{
	struct launch_op *op = ctx;
	op->in_flight = false;
	if (op->answered || op->l->stopping) {
		if (!op->answered && !op->ready)
			op_answer(op, -ECANCELED, "the edge is stopping", NULL,
			          NULL, 0);
		if (op->answered)
			op_free(op);
		return;
	}
	const struct peer_launch_host *h = &op->hosts[op->order[op->tried - 1]];
	if (status == 0) {
		const uint8_t *body;
		size_t len;
		struct mc_instance inst;
		if (mc_get_bytes(reply, "inst", &body, &len) &&
		    mc_instance_unpack(body, len, &inst) == 0) {
			apply_answer(op->l, &inst, body, len, reply);
			peer_launch_loads_bump(&op->l->loads, h->id);
			mc_info("launch", "%s admitted by %s (%s)", inst.id,
			        h->name, h->id);
			op_answer(op, 0, NULL, &inst, NULL, 0);
			mc_instance_clear(&inst);
			return;
		}
		status = -EPROTO;
		message = "its answer carries no instance record";
	}
	if (status == -ECANCELED) {
		op_answer(op, -ECANCELED, message, NULL, NULL, 0);
		return;
	}
	mc_debug("launch", "%s refused by %s: %s", op->want.id, h->name,
	         message ? message : strerror(-status));
	note_refusal(op, h, status, message);
	try_next(op);
}

static void try_next(struct launch_op *op)
{
	struct peer *p = op->l->p;
	while (op->tried < op->n_order) {
		const struct peer_launch_host *h =
		    &op->hosts[op->order[op->tried++]];
		int r = peer_rpc_call(p, h->id, "admit", &op->args, 0, on_admit,
		                      op);
		if (r == 0) {
			op->in_flight = true;
			return;
		}
		if (r == -ECANCELED) {
			op_answer(op, -ECANCELED, "this peer is stopping", NULL,
			          NULL, 0);
			return;
		}
		note_refusal(op, h, r, NULL);
	}
	launch_give_up(op);
}

int peer_launch(void *arg, const struct mc_instance *want,
                void (*cb)(void *ctx, int status, const char *message,
                           const struct mc_instance *admitted),
                void *ctx)
{
	struct peer *p = arg;
	if (!want || !cb || !want->id[0])
		return -EINVAL;
	if (!p->net || p->stopping)
		return -ECANCELED;
	struct peer_launch *l = state(p);
	if (l->stopping)
		return -ECANCELED;
	struct launch_op *op = op_new(l, ctx);
	op->is_launch = true;
	op->lcb = cb;
	mc_instance_copy(&op->want, want);
	mc_pack_map(&op->args, 1);
	mc_pack_str(&op->args, "inst");
	struct mc_buf body;
	mc_buf_init(&body);
	mc_instance_pack(want, &body);
	mc_pack_bin(&op->args, body.data, body.len);
	mc_buf_free(&body);

	struct hosts_state hs = {.loads = loads(l)};
	gossip_members_foreach(peer_net_gossip(p->net), collect_host, &hs);
	op->hosts = hs.v;
	op->order = xcalloc(hs.n + 1, sizeof(*op->order));
	long n = peer_launch_candidates(hs.v, hs.n, want, op->order, hs.n);
	op->n_order = n > 0 ? n : 0;
	try_next(op);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Operations on instances */

static const char *op_name(enum api_instance_op op)
{
	switch (op) {
	case API_OP_STOP:
		return "stop";
	case API_OP_FORCE_STOP:
		return "force-stop";
	case API_OP_START:
		return "start";
	case API_OP_REBOOT:
		return "reboot";
	case API_OP_TERMINATE:
		return "terminate";
	case API_OP_CONSOLE:
		return "console";
	case API_OP_MODIFY:
		return "modify";
	}
	return "?";
}

static void on_op(void *ctx, int status, const char *message,
                  const struct mc_val *reply)
{
	struct launch_op *op = ctx;
	op->in_flight = false;
	if (op->answered) {
		op_free(op);
		return;
	}
	if (status) {
		char *msg = NULL;
		if (status == -EHOSTUNREACH || status == -ETIMEDOUT)
			msg = xasprintf("host %s (%s) cannot be reached: %s",
			                op->host_name, op->host,
			                message ? message : strerror(-status));
		op_answer(op, status == -ETIMEDOUT ? -EHOSTUNREACH : status,
		          msg ? msg : message, NULL, NULL, 0);
		free(msg);
		return;
	}
	const uint8_t *body, *data = NULL;
	size_t len, data_len = 0;
	struct mc_instance inst;
	if (!mc_get_bytes(reply, "inst", &body, &len) ||
	    mc_instance_unpack(body, len, &inst) != 0) {
		op_answer(op, -EPROTO, "the host's answer carries no instance",
		          NULL, NULL, 0);
		return;
	}
	apply_answer(op->l, &inst, body, len, reply);
	mc_get_bytes(reply, "data", &data, &data_len);
	op_answer(op, 0, NULL, &inst, data, data_len);
	mc_instance_clear(&inst);
}

/*
 * Terminates an instance whose host is gone: this peer writes the record
 * (the host, if it comes back, finds the newer record and destroys the
 * domain).
 */
static void terminate_orphan(struct launch_op *op, struct mc_instance *inst,
                             const char *host_state)
{
	struct peer *p = op->l->p;
	if (inst->state == MC_INST_TERMINATED) {
		op_answer(op, 0, NULL, inst, NULL, 0);
		return;
	}
	uint64_t now = mc_wall_ms();
	inst->state = MC_INST_TERMINATED;
	inst->updated_ms = now;
	snprintf(inst->state_reason_code, sizeof(inst->state_reason_code),
	         "Client.UserInitiatedShutdown");
	snprintf(inst->state_reason, sizeof(inst->state_reason),
	         "Client.UserInitiatedShutdown: User initiated shutdown "
	         "(its host %s (%s) was unreachable: %s)",
	         op->host_name, inst->host, host_state);
	snprintf(inst->transition_reason, sizeof(inst->transition_reason),
	         "User initiated (host unreachable)");
	char rid[64];
	struct mc_buf body;
	mc_buf_init(&body);
	mc_instance_record_id(inst, rid, sizeof(rid));
	mc_instance_pack(inst, &body);
	int r = peer_records_put(&p->writer, MC_INSTANCE_KIND, rid, body.data,
	                         body.len, NULL);
	mc_buf_free(&body);
	if (r) {
		char *msg = xasprintf("cannot write the terminated record: %s",
		                      strerror(-r));
		op_answer(op, r, msg, NULL, NULL, 0);
		free(msg);
		return;
	}
	mc_info("launch", "%s terminated here: its host %s is %s", inst->id,
	        inst->host, host_state);
	op_answer(op, 0, NULL, inst, NULL, 0);
}

static void pack_op_args(struct mc_buf *b,
                         const struct api_instance_request *req)
{
	bool modify_type = req->op == API_OP_MODIFY && req->instance_type;
	bool user_data = req->op == API_OP_MODIFY && req->set_user_data;
	mc_pack_map(b, 3 + 3 * modify_type + user_data);
	mc_pack_kv_uint(b, "op", (uint64_t)req->op);
	mc_pack_kv_str(b, "account", req->account);
	mc_pack_kv_str(b, "id", req->instance_id);
	if (modify_type) {
		mc_pack_kv_str(b, "instance_type", req->instance_type);
		mc_pack_kv_uint(b, "vcpu", req->vcpu);
		mc_pack_kv_uint(b, "mem_mib", req->mem_mib);
	}
	if (user_data)
		mc_pack_kv_bin(b, "user_data", req->user_data,
		               req->user_data_len);
}

int peer_instance_op(void *arg, const struct api_instance_request *req,
                     void (*cb)(void *ctx, int status, const char *message,
                                const struct mc_instance *after,
                                const uint8_t *data, size_t len),
                     void *ctx)
{
	struct peer *p = arg;
	if (!req || !cb || !req->account || !req->instance_id)
		return -EINVAL;
	if (!p->net || p->stopping)
		return -ECANCELED;
	struct peer_launch *l = state(p);
	if (l->stopping)
		return -ECANCELED;
	struct launch_op *op = op_new(l, ctx);
	op->ocb = cb;

	char rid[160];
	snprintf(rid, sizeof(rid), "%s:%s", req->account, req->instance_id);
	struct peer_record r;
	struct mc_instance inst;
	memset(&inst, 0, sizeof(inst));
	int e = peer_record_name_ok(rid)
	            ? peer_store_get(p->store, MC_INSTANCE_KIND, rid, &r)
	            : -ENOENT;
	if (e == 0) {
		if (r.deleted)
			e = -ENOENT;
		else if (mc_instance_unpack(r.body, r.body_len, &inst) != 0)
			e = -EIO;
		peer_record_clear(&r);
	} else if (e != -ENOENT) {
		e = -EIO;
	}
	if (e) {
		char *msg = e == -ENOENT
		                ? xasprintf("The instance ID '%s' does not "
		                            "exist",
		                            req->instance_id)
		                : xasprintf("the record of %s cannot be read",
		                            req->instance_id);
		op_answer(op, e, msg, NULL, NULL, 0);
		free(msg);
		return 0;
	}

	snprintf(op->host, sizeof(op->host), "%s", inst.host);
	snprintf(op->host_name, sizeof(op->host_name), "%s", inst.host);
	struct gossip_member m;
	const char *hs = "unknown";
	bool known = inst.host[0] &&
	             gossip_member_get(peer_net_gossip(p->net), inst.host, &m);
	if (known) {
		snprintf(op->host_name, sizeof(op->host_name), "%s",
		         m.node->name);
		hs = gossip_state_name(m.state);
	}
	if (known && (m.state == GOSSIP_ALIVE || m.state == GOSSIP_SUSPECT)) {
		pack_op_args(&op->args, req);
		int rc =
		    peer_rpc_call(p, inst.host, "op", &op->args, 0, on_op, op);
		if (rc == 0) {
			op->in_flight = true;
		} else {
			char *msg = xasprintf("cannot ask host %s: %s",
			                      op->host_name, strerror(-rc));
			op_answer(op, rc, msg, NULL, NULL, 0);
			free(msg);
		}
	} else if (req->op == API_OP_TERMINATE) {
		terminate_orphan(op, &inst, hs);
	} else {
		char *msg =
		    xasprintf("cannot %s %s: its host %s (%s) is %s",
		              op_name(req->op), req->instance_id, op->host_name,
		              inst.host[0] ? inst.host : "?", hs);
		op_answer(op, -EHOSTUNREACH, msg, NULL, NULL, 0);
		free(msg);
	}
	mc_instance_clear(&inst);
	return 0;
}

const char *peer_host_state(void *arg, const char *host_id)
{
	struct peer *p = arg;
	struct gossip_member m;
	if (!p->net || !host_id ||
	    !gossip_member_get(peer_net_gossip(p->net), host_id, &m))
		return NULL;
	return gossip_state_name(m.state);
}

void peer_launch_stop(struct peer *p)
{
	struct peer_launch *l = p->launch;
	if (!l)
		return;
	l->stopping = true;
	/* Answer everything now: what is ready as it is, the rest
	 * -ECANCELED. Ops with an RPC out stay until it ends. */
	struct launch_op *op = l->ops;
	while (op) {
		struct launch_op *next = op->next;
		if (!op->answered) {
			if (!op->ready) {
				op->status = -ECANCELED;
				op->message = xstrdup("the edge is stopping");
				op->ready = true;
			}
			op_deliver(op);
		}
		if (!op->in_flight)
			op_free(op);
		op = next;
	}
	p->launch = NULL;
	uv_close((uv_handle_t *)&l->flush, flush_closed);
}
