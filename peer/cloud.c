#include "cloud.h"

#include "addr.h"
#include "apiedge.h"
#include "log.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void random_chars(char *out, size_t n, const char *alphabet)
{
	uint32_t len = (uint32_t)strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[mc_random_uniform(len)];
	out[n] = '\0';
}

int peer_account_create(struct peer_writer *w, const char *name,
                        char account[13])
{
	account[0] = (char)('1' + mc_random_uniform(9));
	random_chars(account + 1, 11, "0123456789");

	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "name", name);
	mc_pack_kv_uint(&b, "created", mc_wall_ms());
	int r = peer_records_put(w, PEER_KIND_ACCOUNT, account, b.data, b.len,
	                         NULL);
	mc_buf_free(&b);
	return r;
}

int peer_access_key_create(struct peer_writer *w,
                           const struct peer_keyring *ring, const char *account,
                           const char *user, struct peer_access_key *out)
{
	memcpy(out->key_id, "AKIA", 4);
	random_chars(out->key_id + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
	random_chars(out->secret, 40,
	             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	             "0123456789");
	if (out->account != account)
		snprintf(out->account, sizeof(out->account), "%s", account);

	/* The key id is the associated data: a sealed secret cannot be
	 * moved to another key's record. */
	struct mc_buf sealed;
	mc_buf_init(&sealed);
	mc_seal(&sealed, ring->keys[0], out->key_id, strlen(out->key_id),
	        out->secret, strlen(out->secret));

	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 5);
	mc_pack_kv_str(&b, "account", account);
	mc_pack_kv_str(&b, "user", user);
	mc_pack_kv_str(&b, "state", "active");
	mc_pack_kv_uint(&b, "created", mc_wall_ms());
	mc_pack_kv_bin(&b, "secret", sealed.data, sealed.len);
	int r = peer_records_put(w, PEER_KIND_ACCESS_KEY, out->key_id, b.data,
	                         b.len, NULL);
	mc_buf_free(&b);
	mc_buf_free(&sealed);
	return r;
}

static void remove_cloud_files(const char *dir)
{
	static const char *const files[] = {
	    "cloud.keys",    "identity.key",  "mallee.db",
	    "mallee.db-wal", "mallee.db-shm",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		char *p = peer_datadir_path(dir, files[i]);
		unlink(p);
		free(p);
	}
}

/*
 * The common part of creating and joining: identity, keyring and a store
 * holding the cloud's settings. The data dir must be locked by the caller.
 */
static int lay_down(const char *dir, const struct mc_identity *id,
                    const struct peer_keyring *ring, const char *cloud_id,
                    const char *name, const char *cidr,
                    struct peer_store **store_out, char *err, size_t err_size)
{
	int r = peer_identity_save(dir, id);
	if (r == 0)
		r = peer_keyring_save(dir, ring);
	if (r) {
		snprintf(err, err_size, "cannot write keys in %s: %s", dir,
		         strerror(-r));
		return r;
	}
	char *db = peer_datadir_path(dir, "mallee.db");
	struct peer_store *store = NULL;
	r = peer_store_open(db, true, &store, err, err_size);
	free(db);
	if (r)
		return r;
	char peer_id[17];
	peer_id_of(id, peer_id);
	if ((r = peer_store_meta_set(store, "cloud-id", cloud_id)) ||
	    (r = peer_store_meta_set(store, "name", name)) ||
	    (r = peer_store_meta_set(store, "cidr", cidr)) ||
	    (r = peer_store_meta_set(store, "peer-id", peer_id))) {
		snprintf(err, err_size, "cannot write the store in %s: %s", dir,
		         strerror(-r));
		peer_store_close(store);
		return r;
	}
	*store_out = store;
	return 0;
}

static bool region_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return s[0] != '-' && s[n - 1] != '-';
}

int peer_cloud_create(const struct peer_cloud_spec *spec,
                      struct peer_access_key *admin, char cloud_id[33],
                      char *err, size_t err_size)
{
	struct mc_cidr cidr;
	if (!region_name_ok(spec->name)) {
		snprintf(err, err_size,
		         "--name \"%s\": a region name is 1-63 of a-z, 0-9 "
		         "and '-' (e.g. us-east-1)",
		         spec->name);
		return -EINVAL;
	}
	if (mc_cidr_parse(&cidr, spec->cidr, 8, 24) != 0) {
		snprintf(err, err_size,
		         "--cidr \"%s\" is not an IPv4 network from /8 to "
		         "/24 (e.g. 172.31.0.0/16)",
		         spec->cidr);
		return -EINVAL;
	}
	int r = peer_datadir_prepare(spec->data_dir, true, err, err_size);
	if (r)
		return r;
	int lock = peer_datadir_lock(spec->data_dir, err, err_size);
	if (lock < 0)
		return lock;
	if (peer_datadir_has_cloud(spec->data_dir)) {
		if (!spec->force) {
			snprintf(err, err_size,
			         "%s already holds a cloud; use --force to "
			         "replace it (its keys and records are lost)",
			         spec->data_dir);
			peer_datadir_unlock(lock);
			return -EEXIST;
		}
		remove_cloud_files(spec->data_dir);
	}

	uint8_t raw_id[PEER_CLOUD_ID_BYTES];
	struct mc_identity id;
	struct peer_keyring ring = {.n = 1};
	mc_random(raw_id, sizeof(raw_id));
	mc_hex_encode(cloud_id, raw_id, sizeof(raw_id));
	mc_random(ring.keys[0], MC_KEY_BYTES);
	mc_identity_generate(&id);

	struct peer_store *store = NULL;
	r = lay_down(spec->data_dir, &id, &ring, cloud_id, spec->name,
	             spec->cidr, &store, err, err_size);
	if (r)
		goto out;

	struct mc_hlc clock;
	struct peer_writer w;
	char peer_id[17];
	peer_id_of(&id, peer_id);
	mc_hlc_init(&clock, MC_HLC_DEFAULT_MAX_SKEW_MS);
	r = peer_writer_init(&w, store, &clock, peer_id);
	if (r == 0)
		r = peer_account_create(&w, "admin", admin->account);
	if (r == 0)
		r = peer_access_key_create(&w, &ring, admin->account, "admin",
		                           admin);
	if (r)
		snprintf(err, err_size, "cannot write the admin account: %s",
		         strerror(-r));
	if (r == 0 && (r = peer_ca_create(&w, &ring, cloud_id)) != 0)
		snprintf(err, err_size, "cannot create the cloud's CA: %s",
		         strerror(-r));
	peer_store_close(store);
out:
	mc_wipe(&id, sizeof(id));
	mc_wipe(&ring, sizeof(ring));
	peer_datadir_unlock(lock);
	return r;
}

int peer_cloud_adopt(const char *dir, const struct peer_token *t, char *err,
                     size_t err_size)
{
	int r = peer_datadir_prepare(dir, true, err, err_size);
	if (r)
		return r;
	if (peer_datadir_has_cloud(dir)) {
		snprintf(err, err_size, "%s already holds a cloud", dir);
		return -EEXIST;
	}
	char cloud_id[33];
	struct mc_identity id;
	struct peer_keyring ring = {.n = 1};
	mc_hex_encode(cloud_id, t->cloud_id, sizeof(t->cloud_id));
	memcpy(ring.keys[0], t->cloud_key, MC_KEY_BYTES);
	mc_identity_generate(&id);

	struct peer_store *store = NULL;
	r = lay_down(dir, &id, &ring, cloud_id, t->name, t->cidr, &store, err,
	             err_size);
	if (r == 0) {
		peer_store_close(store);
		char peer_id[17];
		peer_id_of(&id, peer_id);
		mc_info("cloud", "joined cloud %s (%s) as peer %s", cloud_id,
		        t->name, peer_id);
	}
	mc_wipe(&id, sizeof(id));
	mc_wipe(&ring, sizeof(ring));
	return r;
}

int peer_access_key_open(const struct peer_keyring *ring, const char *key_id,
                         const uint8_t *sealed, size_t len,
                         struct mc_buf *plain)
{
	for (unsigned k = 0; k < ring->n; k++) {
		mc_buf_reset(plain);
		if (mc_open(plain, ring->keys[k], key_id, strlen(key_id),
		            sealed, len) == 0)
			return 0;
	}
	return -EBADMSG;
}

void peer_user_id(const char *account, const char *user, char *out, size_t size)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	char in[160];
	uint8_t h[17];
	snprintf(in, sizeof(in), "%s/%s", account, user);
	mc_hash(h, 16, in, strlen(in));
	char id[22] = "AIDA";
	for (int i = 0; i < 17; i++)
		id[4 + i] = alphabet[h[i % 16] % 32];
	id[21] = '\0';
	snprintf(out, size, "%s", id);
}

struct reseal_state {
	struct peer_writer *w;
	const struct peer_keyring *ring;
	struct peer_record *todo;
	size_t n, cap;
};

static int collect_key(const struct peer_record *r, void *arg)
{
	struct reseal_state *s = arg;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->todo = xrealloc(s->todo, s->cap * sizeof(*s->todo));
	}
	struct peer_record *c = &s->todo[s->n++];
	memset(c, 0, sizeof(*c));
	c->kind = xstrdup(r->kind);
	c->id = xstrdup(r->id);
	c->body = xmalloc(r->body_len + 1);
	memcpy(c->body, r->body, r->body_len);
	c->body_len = r->body_len;
	return 0;
}

/* Rewrites one access-key body with its secret sealed under the primary. */
static int reseal_one(struct reseal_state *s, const struct peer_record *r)
{
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	const uint8_t *sealed;
	size_t len;
	int e = 0;
	if (!v || v->type != MC_VAL_MAP ||
	    !mc_get_bytes(v, "secret", &sealed, &len)) {
		mc_doc_free(doc);
		return 0; /* not ours to mend */
	}
	struct mc_buf plain, resealed, body;
	mc_buf_init(&plain);
	mc_buf_init(&resealed);
	mc_buf_init(&body);
	e = peer_access_key_open(s->ring, r->id, sealed, len, &plain);
	if (e == 0) {
		mc_seal(&resealed, s->ring->keys[0], r->id, strlen(r->id),
		        plain.data, plain.len);
		/* Copy every field, replacing only the secret. */
		mc_pack_map(&body, v->v.map.n);
		for (uint32_t i = 0; i < v->v.map.n; i++) {
			const struct mc_kv *kv = &v->v.map.kv[i];
			if (kv->key.type != MC_VAL_STR)
				continue;
			mc_pack_strn(&body, kv->key.v.s.p, kv->key.v.s.n);
			if (mc_val_is_str(&kv->key, "secret"))
				mc_pack_bin(&body, resealed.data, resealed.len);
			else if (kv->val.type == MC_VAL_STR)
				mc_pack_strn(&body, kv->val.v.s.p,
				             kv->val.v.s.n);
			else if (kv->val.type == MC_VAL_UINT)
				mc_pack_uint(&body, kv->val.v.u);
			else if (kv->val.type == MC_VAL_BOOL)
				mc_pack_bool(&body, kv->val.v.b);
			else
				mc_pack_nil(&body);
		}
		e = peer_records_put(s->w, r->kind, r->id, body.data, body.len,
		                     NULL);
	}
	if (plain.data)
		mc_wipe(plain.data, plain.len);
	mc_buf_free(&plain);
	mc_buf_free(&resealed);
	mc_buf_free(&body);
	mc_doc_free(doc);
	return e;
}

int peer_access_keys_reseal(struct peer_writer *w,
                            const struct peer_keyring *ring)
{
	struct reseal_state s = {.w = w, .ring = ring};
	/* Collect first: writing while the list statement runs would reset
	 * it under us. */
	int e = peer_store_list(w->store, PEER_KIND_ACCESS_KEY, false,
	                        collect_key, &s);
	if (e == 0)
		e = peer_store_list(w->store, PEER_KIND_CA, false, collect_key,
		                    &s);
	for (size_t i = 0; i < s.n; i++) {
		if (e == 0) {
			int r = reseal_one(&s, &s.todo[i]);
			if (r)
				e = r;
		}
		peer_record_clear(&s.todo[i]);
	}
	free(s.todo);
	return e;
}

int peer_ca_create(struct peer_writer *w, const struct peer_keyring *ring,
                   const char *cloud_id)
{
	struct mc_buf cert, key, sealed, body;
	char cn[96];
	mc_buf_init(&cert);
	mc_buf_init(&key);
	mc_buf_init(&sealed);
	mc_buf_init(&body);
	snprintf(cn, sizeof(cn), "mallee cloud %.32s CA", cloud_id);
	int r = api_pki_ca_create(cn, &cert, &key);
	if (r == 0) {
		mc_seal(&sealed, ring->keys[0], PEER_CA_ID, strlen(PEER_CA_ID),
		        key.data, key.len);
		mc_pack_map(&body, 2);
		mc_pack_str(&body, "cert");
		mc_pack_strn(&body, (const char *)cert.data, cert.len);
		mc_pack_kv_bin(&body, "secret", sealed.data, sealed.len);
		r = peer_records_put(w, PEER_KIND_CA, PEER_CA_ID, body.data,
		                     body.len, NULL);
	}
	if (key.data)
		mc_wipe(key.data, key.len);
	mc_buf_free(&cert);
	mc_buf_free(&key);
	mc_buf_free(&sealed);
	mc_buf_free(&body);
	return r;
}

int peer_ca_load(struct peer_store *store, const struct peer_keyring *ring,
                 char **cert_pem, char **key_pem)
{
	struct peer_record r;
	*cert_pem = *key_pem = NULL;
	int e = peer_store_get(store, PEER_KIND_CA, PEER_CA_ID, &r);
	if (e)
		return e;
	struct mc_doc *doc = r.deleted ? NULL : mc_unpack(r.body, r.body_len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	const uint8_t *cert, *sealed;
	size_t cert_len, sealed_len;
	e = -EINVAL;
	if (v && mc_get_bytes(v, "cert", &cert, &cert_len) &&
	    mc_get_bytes(v, "secret", &sealed, &sealed_len)) {
		struct mc_buf plain;
		mc_buf_init(&plain);
		e = peer_access_key_open(ring, PEER_CA_ID, sealed, sealed_len,
		                         &plain);
		if (e == 0) {
			*cert_pem = xstrndup((const char *)cert, cert_len);
			*key_pem =
			    xstrndup((const char *)plain.data, plain.len);
		}
		if (plain.data)
			mc_wipe(plain.data, plain.len);
		mc_buf_free(&plain);
	}
	mc_doc_free(doc);
	peer_record_clear(&r);
	return e;
}
