#include "edge.h"

#include "apiedge.h"
#include "cloud.h"
#include "launch.h"
#include "log.h"
#include "mem.h"
#include "peer.h"
#include "wire.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * Finds an active access key and opens its sealed secret with any key of
 * the ring (a rotation may be half-way).
 */
static int lookup_key_store(struct peer *p, const char *key_id,
                            struct api_key_info *out);

/*
 * Verified keys are kept for a second: the store read and the unsealing
 * cost more than the rest of a small request, and a second is well inside
 * what revocation promises ("within seconds").
 */
#define KEY_CACHE_MS 1000

/* A direct-mapped slot per key id: one probe, no scan. */
static unsigned key_slot(const char *key_id)
{
	uint32_t h = 2166136261u;
	for (const char *c = key_id; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	return h % PEER_KEY_CACHE;
}

static int lookup_key(void *arg, const char *key_id, struct api_key_info *out)
{
	struct peer *p = arg;
	uint64_t now = uv_now(p->loop);
	struct peer_key_cache *c = &p->key_cache[key_slot(key_id)];
	if (c->until > now && strcmp(c->key_id, key_id) == 0) {
		*out = c->info;
		return 0;
	}
	int r = lookup_key_store(p, key_id, out);
	if (r == 0 && strlen(key_id) < sizeof(c->key_id)) {
		snprintf(c->key_id, sizeof(c->key_id), "%s", key_id);
		c->info = *out;
		c->until = now + KEY_CACHE_MS;
	}
	return r;
}

static int lookup_key_store(struct peer *p, const char *key_id,
                            struct api_key_info *out)
{
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
                       int (*cb)(void *ctx, const char *id, const uint8_t *body,
                                 size_t len),
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

static bool is_loopback(const struct mc_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)
		                  ->sin_addr.s_addr) >>
		        24) == 127;
	return a->ss.ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(
	           &((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

/* The host part of "HOST:PORT" or "[HOST]:PORT". */
static void host_of(const struct mc_addr *a, char *out, size_t size)
{
	char text[80];
	mc_addr_format(a, text, sizeof(text));
	char *colon = strrchr(text, ':');
	if (colon)
		*colon = '\0';
	char *h = text;
	if (*h == '[') {
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	snprintf(out, size, "%s", h);
}

/*
 * Issues this edge's certificate from the cloud's CA for every name a
 * client may dial, into DATA_DIR/edge.crt and edge.key. Returns 0, -ENOENT
 * while the CA record has not arrived by gossip yet, or another error.
 */
static int issue_cert(struct peer *p, const struct mc_addr *listen)
{
	char *ca_cert, *ca_key;
	int r = peer_ca_load(p->store, &p->keyring, &ca_cert, &ca_key);
	if (r)
		return r;
	char listen_host[64], adv_host[64], hostname[64] = "";
	struct mc_addr adv;
	const char *names[5];
	size_t n = 0;
	host_of(listen, listen_host, sizeof(listen_host));
	if (!mc_addr_is_any(listen))
		names[n++] = listen_host;
	if (mc_addr_parse(&adv, p->advertise, PEER_DEFAULT_GOSSIP_PORT) == 0) {
		host_of(&adv, adv_host, sizeof(adv_host));
		names[n++] = adv_host;
	}
	names[n++] = "localhost";
	names[n++] = "127.0.0.1";
	if (gethostname(hostname, sizeof(hostname) - 1) == 0 && hostname[0])
		names[n++] = hostname;

	struct mc_buf cert, key;
	mc_buf_init(&cert);
	mc_buf_init(&key);
	r = api_pki_issue(ca_cert, ca_key, p->cfg.name, names, n, &cert, &key);
	if (r == 0) {
		/* The chain a client needs: this certificate, then the CA. */
		mc_buf_append_str(&cert, ca_cert);
		r = peer_write_file_atomic(p->cfg.data_dir, "edge.crt",
		                           cert.data, cert.len, 0644);
		if (r == 0)
			r = peer_write_file_atomic(p->cfg.data_dir, "edge.key",
			                           key.data, key.len, 0600);
	}
	mc_wipe(ca_key, strlen(ca_key));
	free(ca_key);
	free(ca_cert);
	if (key.data)
		mc_wipe(key.data, key.len);
	mc_buf_free(&cert);
	mc_buf_free(&key);
	return r;
}

/* 0: serving; 1: waiting for the CA; negative: failed (err says why). */
static int try_start(struct peer *p, char *err, size_t err_size)
{
	struct mc_addr addr;
	char endpoint[96];
	if (mc_addr_parse(&addr, p->cfg.api_listen, PEER_DEFAULT_API_PORT)) {
		snprintf(err, err_size, "bad --api-listen %s",
		         p->cfg.api_listen);
		return -EINVAL;
	}
	bool tls = strcmp(p->cfg.api_tls, "on") == 0 ||
	           (strcmp(p->cfg.api_tls, "auto") == 0 && !is_loopback(&addr));
	char *crt = NULL, *key = NULL;
	if (tls) {
		int r = issue_cert(p, &addr);
		if (r == -ENOENT)
			return 1;
		if (r) {
			snprintf(err, err_size,
			         "cannot make the edge's TLS certificate: %s",
			         strerror(-r));
			return r;
		}
		crt = peer_datadir_path(p->cfg.data_dir, "edge.crt");
		key = peer_datadir_path(p->cfg.data_dir, "edge.key");
	}
	mc_addr_format(&addr, endpoint, sizeof(endpoint));
	struct api_edge_config cfg = {
	    .region = p->region,
	    .endpoint = endpoint,
	    .tls_cert_file = crt,
	    .tls_key_file = key,
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
	    .launch = peer_launch,
	    .instance_op = peer_instance_op,
	    .host_state = peer_host_state,
	};
	int r = api_edge_start(&p->edge, p->loop,
	                       (const struct sockaddr *)&addr.ss, &cfg, &cloud);
	free(crt);
	free(key);
	if (r) {
		snprintf(err, err_size, "EC2 API on %s: %s", p->cfg.api_listen,
		         r == -EINVAL ? "bad TLS certificate" : uv_strerror(r));
		return r;
	}
	mc_info("edge", "serving the EC2 API on %s://%s/",
	        tls ? "https" : "http", endpoint);
	return 0;
}

static void on_edge_wait(uv_timer_t *t)
{
	struct peer *p = t->data;
	char err[512];
	int r = try_start(p, err, sizeof(err));
	if (r == 1)
		return; /* still waiting; the timer repeats */
	uv_timer_stop(t);
	if (r < 0)
		mc_error("edge", "%s", err);
}

int peer_edge_start(struct peer *p, char *err, size_t err_size)
{
	int r = try_start(p, err, err_size);
	if (r != 1)
		return r;
	/* A peer that just joined gets the CA by gossip in a moment. */
	mc_info("edge", "waiting for the cloud's CA record to serve HTTPS");
	uv_timer_init(p->loop, &p->edge_wait);
	p->edge_wait.data = p;
	p->edge_waiting = true;
	uv_timer_start(&p->edge_wait, on_edge_wait, 500, 500);
	return 0;
}

void peer_edge_stop(struct peer *p)
{
	mc_wipe(p->key_cache, sizeof(p->key_cache));
	if (p->edge_waiting) {
		uv_close((uv_handle_t *)&p->edge_wait, NULL);
		p->edge_waiting = false;
	}
	/* Launches and operations still waiting are answered while the
	 * edge that asked is still there. */
	peer_launch_stop(p);
	if (p->edge) {
		api_edge_stop(p->edge, NULL, NULL);
		p->edge = NULL;
	}
}
