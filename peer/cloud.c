#include "cloud.h"

#include "addr.h"
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
