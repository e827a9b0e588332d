/*
 * An in-memory cloud for the API edge's unit tests: the records interface
 * of struct api_cloud over a sorted array, one account key per test, and
 * fixed zones. The real one (peer/edge.c) sits on the store and gossip.
 */
#ifndef MALLEE_FAKE_CLOUD_H
#define MALLEE_FAKE_CLOUD_H

#include "apiedge.h"
#include "hlc.h"
#include "instance.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_RECORDS_MAX 20000

struct fake_record {
	char kind[130];
	char id[130];
	uint8_t *body;
	size_t len;
};

struct fake_cloud {
	struct fake_record *recs;
	size_t n;
	struct {
		const char *key_id, *secret, *account;
	} keys[4];
	size_t n_keys;
	unsigned puts, dels;
	bool listing; /* the store refuses a list inside a list: so do we */

	/*
	 * One fake host behind launch, instance_op and host_state (see
	 * fake_host_* below). Its answers are deferred on loop (set it; NULL
	 * refuses launches) as the real cloud's are.
	 */
	uv_loop_t *loop;
	unsigned capacity;     /* instances holding capacity at most */
	const char *host_says; /* host_state's answer ("alive"; NULL) */
	const char *console;   /* API_OP_CONSOLE's bytes */
	size_t console_len;
	bool hold;          /* keep launches until release is set */
	atomic_int release; /* a held launch's answer (-ECANCELED) */
	atomic_uint held;   /* launches held right now */
	unsigned launches, ops, addresses;
};

static int fake_cmp(const char *k1, const char *i1, const char *k2,
                    const char *i2)
{
	int c = strcmp(k1, k2);
	return c ? c : strcmp(i1, i2);
}

static struct fake_record *fake_find(struct fake_cloud *c, const char *kind,
                                     const char *id, size_t *pos)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = fake_cmp(c->recs[mid].kind, c->recs[mid].id, kind, id);
		if (r == 0) {
			*pos = mid;
			return &c->recs[mid];
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

static int fake_lookup_key(void *arg, const char *key_id,
                           struct api_key_info *out)
{
	struct fake_cloud *c = arg;
	for (size_t i = 0; i < c->n_keys; i++) {
		if (strcmp(c->keys[i].key_id, key_id) != 0)
			continue;
		memset(out, 0, sizeof(*out));
		snprintf(out->account_id, sizeof(out->account_id), "%s",
		         c->keys[i].account);
		snprintf(out->secret, sizeof(out->secret), "%s",
		         c->keys[i].secret);
		return 0;
	}
	return -ENOENT;
}

static int fake_get(void *arg, const char *kind, const char *id, uint8_t **body,
                    size_t *len)
{
	struct fake_cloud *c = arg;
	size_t pos;
	struct fake_record *r = fake_find(c, kind, id, &pos);
	if (!r)
		return -ENOENT;
	*body = malloc(r->len + 1);
	memcpy(*body, r->body, r->len);
	*len = r->len;
	return 0;
}

static int fake_list(void *arg, const char *kind, const char *prefix,
                     int (*cb)(void *ctx, const char *id, const uint8_t *body,
                               size_t len),
                     void *ctx)
{
	struct fake_cloud *c = arg;
	size_t pos, n = strlen(prefix);
	if (c->listing)
		return -EBUSY;
	c->listing = true;
	fake_find(c, kind, prefix, &pos);
	int e = 0;
	for (; pos < c->n && e == 0; pos++) {
		struct fake_record *r = &c->recs[pos];
		if (strcmp(r->kind, kind) != 0 ||
		    strncmp(r->id, prefix, n) != 0)
			break;
		e = cb(ctx, r->id, r->body, r->len);
	}
	c->listing = false;
	return e;
}

static int fake_put(void *arg, const char *kind, const char *id,
                    const void *body, size_t len)
{
	struct fake_cloud *c = arg;
	size_t pos;
	struct fake_record *r = fake_find(c, kind, id, &pos);
	if (!r) {
		if (c->n == FAKE_RECORDS_MAX)
			return -ENOSPC;
		memmove(&c->recs[pos + 1], &c->recs[pos],
		        (c->n - pos) * sizeof(*r));
		r = &c->recs[pos];
		memset(r, 0, sizeof(*r));
		snprintf(r->kind, sizeof(r->kind), "%s", kind);
		snprintf(r->id, sizeof(r->id), "%s", id);
		c->n++;
	}
	free(r->body);
	r->body = malloc(len + 1);
	memcpy(r->body, body, len);
	r->len = len;
	c->puts++;
	return 0;
}

static int fake_del(void *arg, const char *kind, const char *id)
{
	struct fake_cloud *c = arg;
	size_t pos;
	struct fake_record *r = fake_find(c, kind, id, &pos);
	c->dels++;
	if (!r)
		return 0;
	free(r->body);
	memmove(r, r + 1, (c->n - pos - 1) * sizeof(*r));
	c->n--;
	return 0;
}

static int fake_zones(void *arg,
                      int (*cb)(void *ctx, const char *zone, unsigned alive,
                                unsigned hosts),
                      void *ctx)
{
	(void)arg;
	int r = cb(ctx, "us-east-1a", 2, 2);
	return r ? r : cb(ctx, "us-east-1b", 0, 1);
}

/* ---- the fake host ------------------------------------------------------ */

#define FAKE_HOST_ID "fa4e0000000000a1"

/* One deferred answer of the fake host. */
struct fake_defer {
	uv_timer_t timer;
	struct fake_cloud *c;
	bool is_launch;
	struct mc_instance want; /* launch */
	void (*launch_cb)(void *ctx, int status, const char *message,
	                  const struct mc_instance *admitted);
	struct api_instance_request req; /* op; strings copied below */
	char account[16], instance_id[32], type[32];
	uint8_t *user_data;
	void (*op_cb)(void *ctx, int status, const char *message,
	              const struct mc_instance *after, const uint8_t *data,
	              size_t len);
	void *ctx;
};

static inline int fake_host_put(struct fake_cloud *c,
                                const struct mc_instance *in)
{
	char id[64];
	struct mc_buf b;
	mc_instance_record_id(in, id, sizeof(id));
	mc_buf_init(&b);
	mc_instance_pack(in, &b);
	int r = fake_put(c, MC_INSTANCE_KIND, id, b.data, b.len);
	mc_buf_free(&b);
	return r;
}

/* Instances holding capacity now, over every account. */
static inline unsigned fake_host_used(struct fake_cloud *c)
{
	unsigned n = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct mc_instance in;
		if (strcmp(c->recs[i].kind, MC_INSTANCE_KIND) != 0 ||
		    mc_instance_unpack(c->recs[i].body, c->recs[i].len, &in))
			continue;
		n += mc_instance_holds_capacity(in.state);
		mc_instance_clear(&in);
	}
	return n;
}

static inline void fake_defer_closed(uv_handle_t *h)
{
	struct fake_defer *d = h->data;
	mc_instance_clear(&d->want);
	free(d->user_data);
	free(d);
}

static inline void fake_host_admit(struct fake_defer *d)
{
	struct fake_cloud *c = d->c;
	char why[128];
	if (fake_host_used(c) >= c->capacity) {
		snprintf(why, sizeof(why),
		         "host " FAKE_HOST_ID " has no room for a %s",
		         d->want.instance_type);
		d->launch_cb(d->ctx, -ENOSPC, why, NULL);
		return;
	}
	struct mc_instance *in = &d->want;
	unsigned n = ++c->addresses;
	if (!in->zone[0])
		snprintf(in->zone, sizeof(in->zone), "us-east-1a");
	snprintf(in->host, sizeof(in->host), FAKE_HOST_ID);
	snprintf(in->private_ip, sizeof(in->private_ip), "172.31.%u.%u",
	         strcmp(in->zone, "us-east-1b") == 0 ? 16 + n / 250 : n / 250,
	         10 + n % 250);
	snprintf(in->mac, sizeof(in->mac), "02:00:00:00:%02x:%02x",
	         (n >> 8) & 0xff, n & 0xff);
	snprintf(in->architecture, sizeof(in->architecture), "x86_64");
	snprintf(in->root_device, sizeof(in->root_device), "/dev/vda");
	in->state = MC_INST_PENDING;
	in->launch_ms = in->updated_ms = mc_wall_ms();
	in->boots = 1;
	fake_host_put(c, in);
	d->launch_cb(d->ctx, 0, NULL, in);
}

/* What the host does to one instance; the record after it in *in. */
static inline int fake_host_act(struct fake_defer *d, struct mc_instance *in,
                                char *why, size_t size)
{
	struct fake_cloud *c = d->c;
	const char *name = mc_instance_state_name(in->state);
	enum mc_instance_state s = in->state;
	switch (d->req.op) {
	case API_OP_STOP:
	case API_OP_FORCE_STOP:
		if (s != MC_INST_RUNNING)
			goto busy;
		in->state = MC_INST_STOPPING;
		snprintf(in->state_reason_code, sizeof(in->state_reason_code),
		         "Client.UserInitiatedShutdown");
		snprintf(in->state_reason, sizeof(in->state_reason),
		         "Client.UserInitiatedShutdown: User initiated "
		         "shutdown");
		snprintf(in->transition_reason, sizeof(in->transition_reason),
		         "User initiated");
		break;
	case API_OP_START:
		if (s != MC_INST_STOPPED)
			goto busy;
		if (fake_host_used(c) >= c->capacity) {
			snprintf(why, size, "no room to start it");
			return -ENOSPC;
		}
		in->state = MC_INST_PENDING;
		in->state_reason_code[0] = in->state_reason[0] = 0;
		in->transition_reason[0] = 0;
		in->boots++;
		break;
	case API_OP_REBOOT:
		if (s != MC_INST_RUNNING)
			goto busy;
		break;
	case API_OP_TERMINATE:
		if (s != MC_INST_TERMINATED)
			in->state = MC_INST_SHUTTING_DOWN;
		snprintf(in->state_reason_code, sizeof(in->state_reason_code),
		         "Client.UserInitiatedShutdown");
		break;
	case API_OP_CONSOLE:
		return 0;
	case API_OP_MODIFY:
		if (s != MC_INST_STOPPED)
			goto busy;
		if (d->req.instance_type) {
			snprintf(in->instance_type, sizeof(in->instance_type),
			         "%s", d->req.instance_type);
			in->vcpu = d->req.vcpu;
			in->mem_mib = d->req.mem_mib;
		}
		if (d->req.set_user_data) {
			free(in->user_data);
			in->user_data = d->user_data;
			in->user_data_len = d->req.user_data_len;
			d->user_data = NULL;
		}
		break;
	}
	in->updated_ms = mc_wall_ms();
	fake_host_put(c, in);
	return 0;
busy:
	snprintf(why, size, "the instance is %s", name);
	return -EBUSY;
}

static inline void fake_host_op(struct fake_defer *d)
{
	struct fake_cloud *c = d->c;
	char id[64], why[128] = "";
	snprintf(id, sizeof(id), "%s:%s", d->req.account, d->req.instance_id);
	size_t pos;
	struct fake_record *rec = fake_find(c, MC_INSTANCE_KIND, id, &pos);
	struct mc_instance in;
	if (!rec || mc_instance_unpack(rec->body, rec->len, &in) != 0) {
		d->op_cb(d->ctx, -ENOENT, "no such instance", NULL, NULL, 0);
		return;
	}
	int r = fake_host_act(d, &in, why, sizeof(why));
	if (r < 0)
		d->op_cb(d->ctx, r, why, NULL, NULL, 0);
	else if (d->req.op == API_OP_CONSOLE)
		d->op_cb(d->ctx, 0, NULL, &in, (const uint8_t *)c->console,
		         c->console_len);
	else
		d->op_cb(d->ctx, 0, NULL, &in, NULL, 0);
	mc_instance_clear(&in);
}

static inline void fake_defer_fire(uv_timer_t *t)
{
	struct fake_defer *d = t->data;
	struct fake_cloud *c = d->c;
	if (d->is_launch && c->hold) {
		int release = atomic_load(&c->release);
		if (!release)
			return; /* the repeating timer looks again */
		atomic_fetch_sub(&c->held, 1);
		d->launch_cb(d->ctx, release, "the cloud is stopping", NULL);
	} else if (d->is_launch) {
		fake_host_admit(d);
	} else {
		fake_host_op(d);
	}
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, fake_defer_closed);
}

static inline struct fake_defer *fake_defer_new(struct fake_cloud *c, void *ctx)
{
	struct fake_defer *d = calloc(1, sizeof(*d));
	d->c = c;
	d->ctx = ctx;
	uv_timer_init(c->loop, &d->timer);
	d->timer.data = d;
	return d;
}

static inline int fake_launch(void *arg, const struct mc_instance *want,
                              void (*cb)(void *ctx, int status,
                                         const char *message,
                                         const struct mc_instance *admitted),
                              void *ctx)
{
	struct fake_cloud *c = arg;
	if (!c->loop)
		return -ENOSYS;
	struct fake_defer *d = fake_defer_new(c, ctx);
	d->is_launch = true;
	mc_instance_copy(&d->want, want);
	d->launch_cb = cb;
	c->launches++;
	if (c->hold)
		atomic_fetch_add(&c->held, 1);
	uv_timer_start(&d->timer, fake_defer_fire, 1, c->hold ? 5 : 0);
	return 0;
}

static inline int
fake_instance_op(void *arg, const struct api_instance_request *req,
                 void (*cb)(void *ctx, int status, const char *message,
                            const struct mc_instance *after,
                            const uint8_t *data, size_t len),
                 void *ctx)
{
	struct fake_cloud *c = arg;
	if (!c->loop)
		return -ENOSYS;
	struct fake_defer *d = fake_defer_new(c, ctx);
	d->req = *req;
	snprintf(d->account, sizeof(d->account), "%s", req->account);
	snprintf(d->instance_id, sizeof(d->instance_id), "%s",
	         req->instance_id);
	d->req.account = d->account;
	d->req.instance_id = d->instance_id;
	if (req->instance_type) {
		snprintf(d->type, sizeof(d->type), "%s", req->instance_type);
		d->req.instance_type = d->type;
	}
	if (req->set_user_data && req->user_data_len) {
		d->user_data = malloc(req->user_data_len);
		memcpy(d->user_data, req->user_data, req->user_data_len);
	}
	d->req.user_data = NULL;
	d->op_cb = cb;
	c->ops++;
	uv_timer_start(&d->timer, fake_defer_fire, 1, 0);
	return 0;
}

static inline const char *fake_host_state(void *arg, const char *host_id)
{
	struct fake_cloud *c = arg;
	return strcmp(host_id, FAKE_HOST_ID) == 0 ? c->host_says : NULL;
}

/* Finishes every transition, as time would: pending -> running,
 * stopping -> stopped, shutting-down -> terminated. Call only while no
 * request is in flight (the loop thread owns the cloud then). */
static inline void fake_host_settle(struct fake_cloud *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct mc_instance in;
		if (strcmp(c->recs[i].kind, MC_INSTANCE_KIND) != 0 ||
		    mc_instance_unpack(c->recs[i].body, c->recs[i].len, &in))
			continue;
		enum mc_instance_state s = in.state;
		in.state = s == MC_INST_PENDING         ? MC_INST_RUNNING
		           : s == MC_INST_STOPPING      ? MC_INST_STOPPED
		           : s == MC_INST_SHUTTING_DOWN ? MC_INST_TERMINATED
		                                        : s;
		if (in.state != s) {
			in.updated_ms = mc_wall_ms();
			fake_host_put(c, &in);
		}
		mc_instance_clear(&in);
	}
}

static inline void fake_host_attach(struct fake_cloud *c, struct api_cloud *api)
{
	c->capacity = 1000;
	c->host_says = "alive";
	c->console = "booting\n";
	c->console_len = strlen(c->console);
	api->launch = fake_launch;
	api->instance_op = fake_instance_op;
	api->host_state = fake_host_state;
}

static void fake_cloud_init(struct fake_cloud *c, struct api_cloud *api)
{
	memset(c, 0, sizeof(*c));
	c->recs = calloc(FAKE_RECORDS_MAX, sizeof(*c->recs));
	*api = (struct api_cloud){
	    .arg = c,
	    .lookup_key = fake_lookup_key,
	    .get = fake_get,
	    .list = fake_list,
	    .put = fake_put,
	    .del = fake_del,
	    .zones = fake_zones,
	};
	fake_host_attach(c, api);
}

static void fake_cloud_add_key(struct fake_cloud *c, const char *key_id,
                               const char *secret, const char *account)
{
	c->keys[c->n_keys].key_id = key_id;
	c->keys[c->n_keys].secret = secret;
	c->keys[c->n_keys].account = account;
	c->n_keys++;
}

static void fake_cloud_free(struct fake_cloud *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->recs[i].body);
	free(c->recs);
}

#endif
