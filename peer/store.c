/*
 * The peer's records (store.h) on SQLite: last-writer-wins upserts,
 * tombstones, listing, and the per-bucket digests anti-entropy compares.
 * Statements are prepared once at open (store_open.c) and reset after each
 * use; every write runs in BEGIN IMMEDIATE ... COMMIT so that a busy
 * database fails at BEGIN, before anything was done.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "hlc.h"
#include "log.h"
#include "mem.h"

void peer_record_clear(struct peer_record *r)
{
	free(r->kind);
	free(r->id);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int peer_store_meta_get(struct peer_store *s, const char *key, char *out,
                        size_t size)
{
	if (!key || !out || size == 0)
		return -EINVAL;
	out[0] = '\0';

	sqlite3_stmt *st = s->st[ST_META_GET];
	int ret = 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		if (!v)
			ret = -ENOMEM;
		else if (len >= size)
			ret = -ERANGE;
		else
			memcpy(out, v, len + 1);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = store_fail(s, "read setting", rc);
	}
	store_stmt_release(st);
	return ret;
}

int peer_store_meta_set(struct peer_store *s, const char *key,
                        const char *value)
{
	if (!key || !value)
		return -EINVAL;
	int ret = store_tx_begin(s);
	if (ret)
		return ret;

	sqlite3_stmt *st = s->st[ST_META_SET];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	int rc = store_step_done(st);
	if (rc != SQLITE_OK)
		ret = store_fail(s, "write setting", rc);
	store_stmt_release(st);
	return store_tx_end(s, ret);
}

/* Input from gossip reaches apply: check it before it reaches the table. */
static int record_valid(const struct peer_record *r)
{
	if (!r->kind || !r->id || !r->kind[0] || !r->id[0])
		return -EINVAL;
	if (!memchr(r->writer, '\0', sizeof(r->writer)))
		return -EINVAL;
	if (!r->deleted && r->body_len > 0 && !r->body)
		return -EINVAL;
	if (r->hlc > STORE_MAX_HLC)
		return -ERANGE;
	return 0;
}

uint64_t peer_record_keyhash(const char *kind, const char *id)
{
	size_t kl = strlen(kind), il = strlen(id);
	uint8_t in[2 * 129 + 1], h[16];
	if (kl > 128 || il > 128)
		return 0;
	memcpy(in, kind, kl);
	in[kl] = '\0';
	memcpy(in + kl + 1, id, il);
	mc_hash(h, sizeof(h), in, kl + 1 + il);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

unsigned peer_record_bucket(uint64_t keyhash)
{
	return (unsigned)(keyhash >> 56);
}

/* A version's fingerprint: changes whenever (kind, id, hlc, writer) does. */
static uint64_t version_hash(uint64_t keyhash, uint64_t hlc, const char *writer)
{
	uint8_t in[16 + PEER_ID_HEX_LEN], h[16];
	for (int i = 0; i < 8; i++) {
		in[i] = (uint8_t)(keyhash >> (56 - 8 * i));
		in[8 + i] = (uint8_t)(hlc >> (56 - 8 * i));
	}
	size_t wl = strnlen(writer, PEER_ID_HEX_LEN);
	memset(in + 16, 0, PEER_ID_HEX_LEN);
	memcpy(in + 16, writer, wl);
	mc_hash(h, sizeof(h), in, sizeof(in));
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

/* Reads every version once to build the digest (at open, after GC). */
int store_digest_rebuild(struct peer_store *s)
{
	sqlite3_stmt *st = s->st[ST_ALL_VERSIONS];
	int rc;
	memset(s->digest, 0, sizeof(s->digest));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(st, 0);
		const char *id = (const char *)sqlite3_column_text(st, 1);
		const char *writer = (const char *)sqlite3_column_text(st, 3);
		if (!kind || !id || !writer)
			continue;
		uint64_t kh = peer_record_keyhash(kind, id);
		s->digest[peer_record_bucket(kh)] ^= version_hash(
		    kh, (uint64_t)sqlite3_column_int64(st, 2), writer);
	}
	store_stmt_release(st);
	return rc == SQLITE_DONE ? 0 : store_fail(s, "read versions", rc);
}

/* The version hash of what is stored under (kind, id), 0 when nothing. */
static int stored_version(struct peer_store *s, const struct peer_record *r,
                          uint64_t keyhash, uint64_t *out)
{
	sqlite3_stmt *st = s->st[ST_VERSION];
	sqlite3_bind_text(st, 1, r->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int ret = 0;
	*out = 0;
	if (rc == SQLITE_ROW) {
		const char *w = (const char *)sqlite3_column_text(st, 1);
		*out = version_hash(
		    keyhash, (uint64_t)sqlite3_column_int64(st, 0), w ? w : "");
	} else if (rc != SQLITE_DONE) {
		ret = store_fail(s, "read version", rc);
	}
	store_stmt_release(st);
	return ret;
}

static unsigned kind_slot(const char *kind)
{
	return (unsigned)(peer_record_keyhash(kind, "") % STORE_KIND_SLOTS);
}

uint64_t peer_store_changes(const struct peer_store *s, const char *kind)
{
	return s->kind_changes[kind_slot(kind)];
}

/* One upsert, inside the caller's transaction. */
static int apply_one(struct peer_store *s, const struct peer_record *r,
                     bool *applied)
{
	uint64_t kh = peer_record_keyhash(r->kind, r->id);
	uint64_t old;
	int vret = stored_version(s, r, kh, &old);
	if (vret)
		return vret;

	sqlite3_stmt *st = s->st[ST_APPLY];
	sqlite3_bind_text(st, 1, r->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
	/* A NULL blob pointer would bind SQL NULL, which body refuses. */
	if (r->deleted || r->body_len == 0)
		sqlite3_bind_zeroblob(st, 3, 0);
	else
		sqlite3_bind_blob64(st, 3, r->body, r->body_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)r->hlc);
	sqlite3_bind_text(st, 5, r->writer, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, r->deleted ? 1 : 0);
	sqlite3_bind_int(st, 7, (int)peer_record_bucket(kh));

	int ret = 0;
	int rc = store_step_done(st);
	if (rc == SQLITE_OK) {
		*applied = sqlite3_changes(s->db) > 0;
		/* A rolled-back transaction is rare enough to rebuild after. */
		if (*applied) {
			s->digest[peer_record_bucket(kh)] ^=
			    old ^ version_hash(kh, r->hlc, r->writer);
			s->kind_changes[kind_slot(r->kind)]++;
		}
	} else
		ret = store_fail(s, "apply", rc);
	store_stmt_release(st);
	return ret;
}

int peer_store_apply(struct peer_store *s, const struct peer_record *r,
                     bool *applied)
{
	bool won = false;
	if (applied)
		*applied = false;
	int ret = record_valid(r);
	if (ret)
		return ret;
	ret = store_tx_begin(s);
	if (ret)
		return ret;
	ret = store_tx_end(s, apply_one(s, r, &won));
	if (ret == 0 && applied)
		*applied = won;
	return ret;
}

int peer_store_apply_batch(struct peer_store *s, const struct peer_record *rs,
                           size_t n, size_t *n_applied)
{
	size_t won = 0;
	if (n_applied)
		*n_applied = 0;
	/* All or nothing: one bad record refuses the batch before it starts. */
	for (size_t i = 0; i < n; i++) {
		int ret = record_valid(&rs[i]);
		if (ret)
			return ret;
	}
	if (n == 0)
		return 0;

	int ret = store_tx_begin(s);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++) {
		bool applied = false;
		ret = apply_one(s, &rs[i], &applied);
		won += applied;
	}
	ret = store_tx_end(s, ret);
	if (ret == 0 && n_applied)
		*n_applied = won;
	return ret;
}

/*
 * Points r at the current row of st: the strings and body live in SQLite's
 * column memory until the statement is stepped or reset.
 */
static int row_borrow(sqlite3_stmt *st, struct peer_record *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = (char *)sqlite3_column_text(st, 0);
	r->id = (char *)sqlite3_column_text(st, 1);
	r->body = (uint8_t *)sqlite3_column_blob(st, 2);
	r->body_len = (size_t)sqlite3_column_bytes(st, 2);
	r->hlc = (uint64_t)sqlite3_column_int64(st, 3);
	const char *writer = (const char *)sqlite3_column_text(st, 4);
	r->deleted = sqlite3_column_int(st, 5) != 0;
	/* Every column is NOT NULL, so NULL means SQLite ran out of memory. */
	if (!r->kind || !r->id || !writer || (r->body_len > 0 && !r->body))
		return -ENOMEM;
	snprintf(r->writer, sizeof(r->writer), "%s", writer);
	return 0;
}

/*
 * Steps a bound statement, handing each row to cb (borrowed), until the end,
 * an error, or cb's first non-zero return, which is returned.
 */
static int walk_rows(struct peer_store *s, sqlite3_stmt *st, const char *what,
                     peer_record_cb cb, void *arg)
{
	int ret = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct peer_record r;
		ret = row_borrow(st, &r);
		if (ret == 0)
			ret = cb(&r, arg);
		if (ret)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = store_fail(s, what, rc);
	store_stmt_release(st);
	return ret;
}

int peer_store_get(struct peer_store *s, const char *kind, const char *id,
                   struct peer_record *out)
{
	memset(out, 0, sizeof(*out));
	if (!kind || !id)
		return -EINVAL;

	sqlite3_stmt *st = s->st[ST_GET];
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	int ret = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		struct peer_record r;
		ret = row_borrow(st, &r);
		if (ret == 0) {
			*out = r;
			out->kind = xstrdup(r.kind);
			out->id = xstrdup(r.id);
			out->body = NULL;
			if (r.body_len > 0) {
				out->body = xmalloc(r.body_len);
				memcpy(out->body, r.body, r.body_len);
			}
		}
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = store_fail(s, "get", rc);
	}
	store_stmt_release(st);
	return ret;
}

int peer_store_list(struct peer_store *s, const char *kind,
                    bool with_tombstones, peer_record_cb cb, void *arg)
{
	sqlite3_stmt *st = s->st[kind ? ST_LIST_KIND : ST_LIST_ALL];
	/*
	 * The statement is shared: a callback that starts the same walk again
	 * would reset the one in progress under it.
	 */
	if (sqlite3_stmt_busy(st)) {
		mc_error("store", "%s: list called from a list callback",
		         s->path);
		return -EBUSY;
	}
	sqlite3_bind_int(st, 1, with_tombstones ? 1 : 0);
	if (kind)
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);

	return walk_rows(s, st, "list", cb, arg);
}

/* Runs a statement yielding one integer; NULL reads as 0. */
static int query_u64(struct peer_store *s, sqlite3_stmt *st, const char *what,
                     uint64_t *out)
{
	int ret = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	else
		ret =
		    store_fail(s, what, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
	store_stmt_release(st);
	return ret;
}

int peer_store_count(struct peer_store *s, const char *kind, uint64_t *out)
{
	*out = 0;
	sqlite3_stmt *st = s->st[kind ? ST_COUNT_KIND : ST_COUNT_ALL];
	if (kind)
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	return query_u64(s, st, "count", out);
}

int peer_store_max_hlc(struct peer_store *s, uint64_t *out)
{
	*out = 0;
	return query_u64(s, s->st[ST_MAX_HLC], "max hlc", out);
}

int peer_store_collect_tombstones(struct peer_store *s, uint64_t before_ms,
                                  uint64_t *removed)
{
	if (removed)
		*removed = 0;
	if (before_ms == 0)
		return 0;
	/*
	 * Older than before_ms means hlc < mc_hlc_make(before_ms, 0). Past
	 * the last millisecond a stored stamp can hold, every one is older.
	 */
	uint64_t last;
	if (before_ms > STORE_MAX_HLC >> MC_HLC_LOGICAL_BITS)
		last = STORE_MAX_HLC;
	else
		last = mc_hlc_make(before_ms, 0) - 1;

	int ret = store_tx_begin(s);
	if (ret)
		return ret;
	sqlite3_stmt *st = s->st[ST_COLLECT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)last);
	int rc = store_step_done(st);
	uint64_t n = 0;
	if (rc == SQLITE_OK)
		n = (uint64_t)sqlite3_changes64(s->db);
	else
		ret = store_fail(s, "collect tombstones", rc);
	store_stmt_release(st);
	ret = store_tx_end(s, ret);
	if (ret == 0 && removed)
		*removed = n;
	if (ret == 0 && n > 0)
		ret = store_digest_rebuild(s);
	return ret;
}

int peer_store_check(struct peer_store *s, char *err, size_t err_size)
{
	store_set_err(err, err_size, "%s", "");
	sqlite3_stmt *st = s->st[ST_CHECK];
	int ret = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *first = (const char *)sqlite3_column_text(st, 0);
		if (!first || strcmp(first, "ok") != 0) {
			/* The first problem found stands for the rest. */
			store_set_err(err, err_size,
			              "%s failed its integrity check: %s",
			              s->path, first ? first : "(no detail)");
			ret = -EIO;
		}
	} else {
		store_set_err(err, err_size,
		              "%s: integrity check could not run: %s", s->path,
		              sqlite3_errmsg(s->db));
		ret = store_sqlite_errno(s, rc);
		if (ret == 0)
			ret = -EIO;
	}
	store_stmt_release(st);
	return ret;
}

void peer_store_digest(struct peer_store *s, uint64_t out[PEER_STORE_BUCKETS])
{
	memcpy(out, s->digest, sizeof(s->digest));
}

void peer_store_digest_total(struct peer_store *s, uint8_t out[16])
{
	uint8_t words[PEER_STORE_BUCKETS * 8];
	for (int b = 0; b < PEER_STORE_BUCKETS; b++)
		for (int i = 0; i < 8; i++)
			words[b * 8 + i] =
			    (uint8_t)(s->digest[b] >> (56 - 8 * i));
	mc_hash(out, 16, words, sizeof(words));
}

int peer_store_list_bucket(struct peer_store *s, unsigned bucket,
                           peer_record_cb cb, void *arg)
{
	if (bucket >= PEER_STORE_BUCKETS)
		return -EINVAL;
	sqlite3_stmt *st = s->st[ST_LIST_BUCKET];
	if (sqlite3_stmt_busy(st))
		return -EBUSY;
	sqlite3_bind_int(st, 1, (int)bucket);
	return walk_rows(s, st, "list bucket", cb, arg);
}

int peer_store_list_prefix(struct peer_store *s, const char *kind,
                           const char *prefix, peer_record_cb cb, void *arg)
{
	size_t n = strlen(prefix);
	if (n > 128)
		return -EINVAL;
	sqlite3_stmt *st = s->st[ST_LIST_PREFIX];
	if (sqlite3_stmt_busy(st))
		return -EBUSY;
	/* Ids are printable ASCII, so prefix + DEL bounds every id that
	 * starts with prefix, and the primary key's order serves the range. */
	char upper[130];
	memcpy(upper, prefix, n);
	upper[n] = 0x7f;
	upper[n + 1] = '\0';
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, upper, -1, SQLITE_STATIC);
	return walk_rows(s, st, "list prefix", cb, arg);
}
