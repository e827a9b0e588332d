/* Control-socket commands for accounts and their access keys. */
#include "peer.h"

#include "cloud.h"
#include "log.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool account_exists(struct peer *p, const char *account)
{
	struct peer_record r;
	if (!peer_record_name_ok(account) ||
	    peer_store_get(p->store, PEER_KIND_ACCOUNT, account, &r) != 0)
		return false;
	bool live = !r.deleted;
	peer_record_clear(&r);
	return live;
}

static void reply_key(struct mc_buf *reply, const struct peer_access_key *k)
{
	mc_pack_map(reply, 4);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_str(reply, "account", k->account);
	mc_pack_kv_str(reply, "key_id", k->key_id);
	mc_pack_kv_str(reply, "secret", k->secret);
}

static bool user_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("+=,.@_-", s[i])))
			return false;
	return true;
}

void peer_cmd_account_create(struct peer *p, const struct mc_val *req,
                             struct mc_buf *reply)
{
	char name[65];
	struct peer_access_key key;
	if (!mc_get_str(req, "name", name, sizeof(name)) ||
	    !user_name_ok(name)) {
		peer_ctl_reply_error(reply, "an account name is 1-64 of "
		                            "letters, digits and +=,.@_-");
		return;
	}
	int r = peer_account_create(&p->writer, name, key.account);
	if (r == 0)
		r = peer_access_key_create(&p->writer, &p->keyring, key.account,
		                           "admin", &key);
	if (r) {
		peer_ctl_reply_error(reply, "cannot create the account: %s",
		                     strerror(-r));
		return;
	}
	mc_info("keys", "account %s (%s) created with access key %s",
	        key.account, name, key.key_id);
	reply_key(reply, &key);
	mc_wipe(&key, sizeof(key));
}

void peer_cmd_key_create(struct peer *p, const struct mc_val *req,
                         struct mc_buf *reply)
{
	char account[16], user[65] = "admin";
	struct peer_access_key key;
	if (!mc_get_str(req, "account", account, sizeof(account)) ||
	    !account_exists(p, account)) {
		peer_ctl_reply_error(reply, "no such account");
		return;
	}
	if (mc_map_get(req, "user") &&
	    (!mc_get_str(req, "user", user, sizeof(user)) ||
	     !user_name_ok(user))) {
		peer_ctl_reply_error(reply, "a user name is 1-64 of letters, "
		                            "digits and +=,.@_-");
		return;
	}
	int r = peer_access_key_create(&p->writer, &p->keyring, account, user,
	                               &key);
	if (r) {
		peer_ctl_reply_error(reply, "cannot create the key: %s",
		                     strerror(-r));
		return;
	}
	mc_info("keys", "access key %s created for %s/%s", key.key_id, account,
	        user);
	reply_key(reply, &key);
	mc_wipe(&key, sizeof(key));
}

struct key_list {
	struct mc_buf items;
	uint32_t n;
	const char *account; /* NULL: every account */
};

static int list_key(const struct peer_record *r, void *arg)
{
	struct key_list *l = arg;
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	char account[16] = "", user[65] = "", state[16] = "";
	uint64_t created = 0;
	if (v && mc_get_str(v, "account", account, sizeof(account)) &&
	    (!l->account || strcmp(l->account, account) == 0)) {
		mc_get_str(v, "user", user, sizeof(user));
		mc_get_str(v, "state", state, sizeof(state));
		mc_get_uint(v, "created", &created);
		mc_pack_map(&l->items, 5);
		mc_pack_kv_str(&l->items, "key_id", r->id);
		mc_pack_kv_str(&l->items, "account", account);
		mc_pack_kv_str(&l->items, "user", user);
		mc_pack_kv_str(&l->items, "state", state);
		mc_pack_kv_uint(&l->items, "created", created);
		l->n++;
	}
	mc_doc_free(doc);
	return 0;
}

void peer_cmd_key_list(struct peer *p, const struct mc_val *req,
                       struct mc_buf *reply)
{
	char account[16];
	struct key_list l = {.n = 0};
	if (mc_map_get(req, "account")) {
		if (!mc_get_str(req, "account", account, sizeof(account))) {
			peer_ctl_reply_error(reply, "bad account");
			return;
		}
		l.account = account;
	}
	mc_buf_init(&l.items);
	int r = peer_store_list(p->store, PEER_KIND_ACCESS_KEY, false, list_key,
	                        &l);
	if (r) {
		peer_ctl_reply_error(reply, "cannot list keys: %s",
		                     strerror(-r));
	} else {
		mc_pack_map(reply, 2);
		mc_pack_kv_bool(reply, "ok", true);
		mc_pack_str(reply, "keys");
		mc_pack_array(reply, l.n);
		mc_buf_append(reply, l.items.data, l.items.len);
	}
	mc_buf_free(&l.items);
}

/*
 * Revoking rewrites the key's record without its secret and with state
 * "revoked": the new version wins everywhere by LWW, and every edge stops
 * accepting the key as soon as it has it.
 */
void peer_cmd_key_revoke(struct peer *p, const struct mc_val *req,
                         struct mc_buf *reply)
{
	char key_id[64];
	struct peer_record r;
	if (!mc_get_str(req, "key_id", key_id, sizeof(key_id)) ||
	    !peer_record_name_ok(key_id) ||
	    peer_store_get(p->store, PEER_KIND_ACCESS_KEY, key_id, &r) != 0) {
		peer_ctl_reply_error(reply, "no such access key");
		return;
	}
	struct mc_doc *doc = r.deleted ? NULL : mc_unpack(r.body, r.body_len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	char account[16] = "", user[65] = "";
	int e = -ENOENT;
	if (v && mc_get_str(v, "account", account, sizeof(account))) {
		mc_get_str(v, "user", user, sizeof(user));
		struct mc_buf b;
		mc_buf_init(&b);
		mc_pack_map(&b, 4);
		mc_pack_kv_str(&b, "account", account);
		mc_pack_kv_str(&b, "user", user);
		mc_pack_kv_str(&b, "state", "revoked");
		mc_pack_kv_uint(&b, "created", mc_wall_ms());
		e = peer_records_put(&p->writer, PEER_KIND_ACCESS_KEY, key_id,
		                     b.data, b.len, NULL);
		mc_buf_free(&b);
	}
	mc_doc_free(doc);
	peer_record_clear(&r);
	if (e) {
		peer_ctl_reply_error(reply, "cannot revoke %s: %s", key_id,
		                     strerror(-e));
		return;
	}
	mc_info("keys", "access key %s revoked", key_id);
	mc_pack_map(reply, 1);
	mc_pack_kv_bool(reply, "ok", true);
}
