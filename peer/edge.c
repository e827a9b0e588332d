#include "edge.h"

#include "apiedge.h"
#include "cloud.h"
#include "log.h"
#include "mem.h"
#include "peer.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * Finds an active access key and opens its sealed secret with any key of
 * the ring (a rotation may be half-way).
 */
static int lookup_key(void *arg, const char *key_id, struct api_key_info *out)
{
	struct peer *p = arg;
	struct peer_record r;
	int e;

	if (!peer_record_name_ok(key_id))
		return -ENOENT;
	e = peer_store_get(p->store, PEER_KIND_ACCESS_KEY, key_id, &r);
	if (e)
		return e;
	struct mc_doc *doc = r.deleted ? NULL : mc_unpack(r.body, r.body_len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	char state[16], user[64];
	const uint8_t *sealed;
	size_t sealed_len;
	e = -ENOENT;
	if (v && mc_get_str(v, "state", state, sizeof(state)) &&
	    strcmp(state, "active") == 0 &&
	    mc_get_str(v, "account", out->account_id,
	               sizeof(out->account_id)) &&
	    mc_get_str(v, "user", user, sizeof(user)) &&
	    mc_get_bytes(v, "secret", &sealed, &sealed_len)) {
		struct mc_buf plain;
		mc_buf_init(&plain);
		e = peer_access_key_open(&p->keyring, key_id, sealed,
		                         sealed_len, &plain);
		if (e == 0 && plain.len < sizeof(out->secret)) {
			memcpy(out->secret, plain.data, plain.len);
			out->secret[plain.len] = '\0';
			snprintf(out->user_arn, sizeof(out->user_arn),
			         "arn:aws:iam::%s:user/%s", out->account_id,
			         user);
			peer_user_id(out->account_id, user, out->user_id,
			             sizeof(out->user_id));
		} else if (e == 0) {
			e = -EINVAL;
		}
		if (e)
			mc_warn("edge",
			        "access key %s: its secret cannot be "
			        "opened with the cloud keys",
			        key_id);
		if (plain.data)
			mc_wipe(plain.data, plain.len);
		mc_buf_free(&plain);
	}
	mc_doc_free(doc);
	peer_record_clear(&r);
	return e;
}

static int record_get(void *arg, const char *kind, const char *id,
		      uint8_t **body, size_t *len)
{
	struct peer *p = arg;
	struct peer_record r;
	if (!peer_record_name_ok(kind) || !peer_record_name_ok(id))
		return -ENOENT;
	int e = peer_store_get(p->store, kind, id, &r);
	if (e)
		return e;
	if (r.deleted) {
		peer_record_clear(&r);
		return -ENOENT;
	}
	/* Hand the body over; an empty one still gets a buffer. */
	*len = r.body_len;
	*body = r.body ? r.body : xcalloc(1, 1);
	r.body = NULL;
	peer_record_clear(&r);
	return 0;
}

struct list_ctx {
	int (*cb)(void *ctx, const char *id, const uint8_t *body, size_t len);
	void *ctx;
};

static int list_one(const struct peer_record *r, void *arg)
{
	struct list_ctx *l = arg;
	return l->cb(l->ctx, r->id, r->body, r->body_len);
}

static int record_list(void *arg, const char *kind, const char *prefix,
		       int (*cb)(void *ctx, const char *id,
				 const uint8_t *body, size_t len),
		       void *ctx)
{
	struct peer *p = arg;
	struct list_ctx l = {.cb = cb, .ctx = ctx};
	if (!peer_record_name_ok(kind))
		return -EINVAL;
	return peer_store_list_prefix(p->store, kind, prefix, list_one, &l);
}

static int record_put(void *arg, const char *kind, const char *id,
		      const void *body, size_t len)
{
	struct peer *p = arg;
	return peer_records_put(&p->writer, kind, id, body, len, NULL);
}

static int record_del(void *arg, const char *kind, const char *id)
{
	struct peer *p = arg;
	return peer_records_delete(&p->writer, kind, id, NULL);
}

static int zones(void *arg,
		 int (*cb)(void *ctx, const char *zone, unsigned alive,
			   unsigned hosts),
		 void *ctx)
{
	struct peer *p = arg;
	return peer_net_zones(p->net, cb, ctx);
}

int peer_edge_start(struct peer *p, char *err, size_t err_size)
{
	struct mc_addr addr;
	char endpoint[96];
	if (mc_addr_parse(&addr, p->cfg.api_listen, PEER_DEFAULT_API_PORT)) {
		snprintf(err, err_size, "bad --api-listen %s",
		         p->cfg.api_listen);
		return -EINVAL;
	}
	mc_addr_format(&addr, endpoint, sizeof(endpoint));
	struct api_edge_config cfg = {
	    .region = p->region,
	    .endpoint = endpoint,
	    .throttle_rate = 200,
	    .throttle_burst = 400,
	};
	struct api_cloud cloud = {
	    .arg = p,
	    .lookup_key = lookup_key,
	    .get = record_get,
	    .list = record_list,
	    .put = record_put,
	    .del = record_del,
	    .zones = zones,
	};
	int r = api_edge_start(&p->edge, p->loop,
	                       (const struct sockaddr *)&addr.ss, &cfg, &cloud);
	if (r) {
		snprintf(err, err_size, "EC2 API on %s: %s", p->cfg.api_listen,
		         uv_strerror(r));
		return r;
	}
	mc_info("edge", "serving the EC2 API on http://%s/", endpoint);
	return 0;
}

void peer_edge_stop(struct peer *p)
{
	if (p->edge) {
		api_edge_stop(p->edge, NULL, NULL);
		p->edge = NULL;
	}
}
