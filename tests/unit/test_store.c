/*
 * The store against real SQLite files in a scratch directory: persistence,
 * the last-writer-wins rule, tombstones, and how open treats files it must
 * not touch (newer schema, garbage, another program's database).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "hlc.h"
#include "log.h"
#include "store.h"

#define WRITER_A "000000000000000a"
#define WRITER_B "000000000000000b"

static char tmpdir[64];
static char err[256];

/* A fresh database path per test, so tests never see each other's data. */
static const char *db_path(const char *name)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static struct peer_store *open_new(const char *name)
{
	struct peer_store *s = NULL;
	int r = peer_store_open(db_path(name), true, &s, err, sizeof(err));
	CHECK(r == 0);
	if (r)
		fprintf(stderr, "open %s: %s\n", name, err);
	return s;
}

static struct peer_record rec(const char *kind, const char *id,
                              const char *body, uint64_t hlc,
                              const char *writer, bool deleted)
{
	struct peer_record r = {
	    .kind = (char *)kind,
	    .id = (char *)id,
	    .body = (uint8_t *)body,
	    .body_len = body ? strlen(body) : 0,
	    .hlc = hlc,
	    .deleted = deleted,
	};
	snprintf(r.writer, sizeof(r.writer), "%s", writer);
	return r;
}

static bool apply(struct peer_store *s, const char *kind, const char *id,
                  const char *body, uint64_t hlc, const char *writer,
                  bool deleted)
{
	struct peer_record r = rec(kind, id, body, hlc, writer, deleted);
	bool applied = false;
	int e = peer_store_apply(s, &r, &applied);
	CHECK(e == 0);
	return e == 0 && applied;
}

/* True when (kind, id) holds exactly body. */
static bool body_is(struct peer_store *s, const char *kind, const char *id,
                    const char *body)
{
	struct peer_record r;
	if (peer_store_get(s, kind, id, &r) != 0)
		return false;
	bool same = r.body_len == strlen(body) &&
	            (r.body_len == 0 || memcmp(r.body, body, r.body_len) == 0);
	peer_record_clear(&r);
	return same;
}

static uint64_t count(struct peer_store *s, const char *kind)
{
	uint64_t n = UINT64_MAX;
	CHECK(peer_store_count(s, kind, &n) == 0);
	return n;
}

/* Reads a whole file; NULL when it cannot. The caller frees. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *p = NULL;
	size_t cap = 0;
	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			p = realloc(p, cap);
			if (!p)
				abort();
		}
		size_t n = fread(p + *len, 1, cap - *len, f);
		if (n == 0)
			break;
		*len += n;
	}
	fclose(f);
	return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(fwrite(p, 1, n, f) == n);
	fclose(f);
}

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static void test_create_reopen(void)
{
	const char *path = db_path("reopen.db");
	struct peer_store *s = open_new("reopen.db");
	if (!s)
		return;
	CHECK(count(s, NULL) == 0);
	CHECK(apply(s, "account", "alice", "{\"n\":1}", 100, WRITER_A, false));
	CHECK(peer_store_meta_set(s, "cloud-id", "c0ffee") == 0);
	peer_store_close(s);

	s = NULL;
	CHECK(peer_store_open(path, false, &s, err, sizeof(err)) == 0);
	if (!s)
		return;
	CHECK(count(s, NULL) == 1);
	CHECK(body_is(s, "account", "alice", "{\"n\":1}"));
	char v[32];
	CHECK(peer_store_meta_get(s, "cloud-id", v, sizeof(v)) == 0);
	CHECK_STR(v, "c0ffee");
	peer_store_close(s);

	/* The file says who wrote it and at which schema version. */
	sqlite3 *db = NULL;
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	      SQLITE_OK);
	sqlite3_stmt *st = NULL;
	CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
	      SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK(sqlite3_column_int(st, 0) == PEER_STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) ==
	      SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);

	peer_store_close(NULL);
}

static void test_meta(void)
{
	struct peer_store *s = open_new("meta.db");
	if (!s)
		return;
	char v[16];
	CHECK(peer_store_meta_get(s, "name", v, sizeof(v)) == -ENOENT);
	CHECK(peer_store_meta_set(s, "name", "first") == 0);
	CHECK(peer_store_meta_get(s, "name", v, sizeof(v)) == 0);
	CHECK_STR(v, "first");
	CHECK(peer_store_meta_set(s, "name", "second") == 0);
	CHECK(peer_store_meta_get(s, "name", v, sizeof(v)) == 0);
	CHECK_STR(v, "second");
	CHECK(peer_store_meta_set(s, "empty", "") == 0);
	CHECK(peer_store_meta_get(s, "empty", v, sizeof(v)) == 0);
	CHECK_STR(v, "");
	/* "second" needs 7 bytes with its NUL. */
	CHECK(peer_store_meta_get(s, "name", v, 6) == -ERANGE);
	CHECK(peer_store_meta_get(s, "name", v, 7) == 0);
	peer_store_close(s);
}

static void test_lww(void)
{
	struct peer_store *s = open_new("lww.db");
	if (!s)
		return;
	CHECK(apply(s, "k", "x", "v100", 100, WRITER_A, false));
	CHECK(!apply(s, "k", "x", "v50", 50, WRITER_B, false));
	CHECK(body_is(s, "k", "x", "v100"));
	CHECK(apply(s, "k", "x", "v200a", 200, WRITER_A, false));
	CHECK(body_is(s, "k", "x", "v200a"));

	/* Equal stamps: the greater writer id wins, whichever came first. */
	CHECK(apply(s, "k", "x", "v200b", 200, WRITER_B, false));
	CHECK(body_is(s, "k", "x", "v200b"));
	CHECK(!apply(s, "k", "x", "v200a", 200, WRITER_A, false));
	CHECK(body_is(s, "k", "x", "v200b"));

	/* The same record again changes nothing. */
	CHECK(!apply(s, "k", "x", "v200b", 200, WRITER_B, false));

	struct peer_record r;
	CHECK(peer_store_get(s, "k", "x", &r) == 0);
	CHECK_STR(r.kind, "k");
	CHECK_STR(r.id, "x");
	CHECK_EQ_U64(r.hlc, 200);
	CHECK_STR(r.writer, WRITER_B);
	CHECK(!r.deleted);
	peer_record_clear(&r);
	CHECK(r.kind == NULL && r.body == NULL && r.hlc == 0);

	/* applied may be NULL. */
	struct peer_record up = rec("k", "x", "v300", 300, WRITER_A, false);
	CHECK(peer_store_apply(s, &up, NULL) == 0);
	CHECK(body_is(s, "k", "x", "v300"));
	CHECK(count(s, NULL) == 1);
	peer_store_close(s);
}

static void test_binary_body(void)
{
	struct peer_store *s = open_new("binary.db");
	if (!s)
		return;
	uint8_t blob[300];
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7);
	blob[5] = 0;
	struct peer_record in = rec("bin", "b", NULL, 1, WRITER_A, false);
	in.body = blob;
	in.body_len = sizeof(blob);
	CHECK(peer_store_apply(s, &in, NULL) == 0);

	struct peer_record out;
	CHECK(peer_store_get(s, "bin", "b", &out) == 0);
	CHECK(out.body_len == sizeof(blob));
	CHECK(out.body && memcmp(out.body, blob, sizeof(blob)) == 0);
	peer_record_clear(&out);

	/* A live record may be empty; it is not a tombstone. */
	CHECK(apply(s, "bin", "empty", "", 1, WRITER_A, false));
	CHECK(peer_store_get(s, "bin", "empty", &out) == 0);
	CHECK(out.body_len == 0 && !out.deleted);
	peer_record_clear(&out);
	CHECK(count(s, "bin") == 2);
	peer_store_close(s);
}

static void test_invalid(void)
{
	struct peer_store *s = open_new("invalid.db");
	if (!s)
		return;
	struct peer_record r = rec("k", "x", "v", 1, WRITER_A, false);
	r.hlc = UINT64_MAX;
	CHECK(peer_store_apply(s, &r, NULL) == -ERANGE);
	r = rec("k", "x", "v", 1, WRITER_A, false);
	r.kind = NULL;
	CHECK(peer_store_apply(s, &r, NULL) == -EINVAL);
	r = rec("k", "", "v", 1, WRITER_A, false);
	CHECK(peer_store_apply(s, &r, NULL) == -EINVAL);
	r = rec("k", "x", "v", 1, WRITER_A, false);
	memset(r.writer, 'f', sizeof(r.writer));
	CHECK(peer_store_apply(s, &r, NULL) == -EINVAL);
	r = rec("k", "x", NULL, 1, WRITER_A, false);
	r.body_len = 4;
	CHECK(peer_store_apply(s, &r, NULL) == -EINVAL);
	CHECK(count(s, NULL) == 0);
	peer_store_close(s);
}

struct walk {
	char seen[16][32];
	bool deleted[16];
	int n;
	int stop_after;
};

static int collect_cb(const struct peer_record *r, void *arg)
{
	struct walk *w = arg;
	if (w->n < 16) {
		snprintf(w->seen[w->n], sizeof(w->seen[0]), "%s/%s", r->kind,
		         r->id);
		w->deleted[w->n] = r->deleted;
		if (r->deleted)
			CHECK(r->body_len == 0);
	}
	w->n++;
	if (w->stop_after && w->n == w->stop_after)
		return 7;
	return 0;
}

static void test_tombstones(void)
{
	struct peer_store *s = open_new("tomb.db");
	if (!s)
		return;
	CHECK(apply(s, "k", "x", "live", 10, WRITER_A, false));
	CHECK(count(s, NULL) == 1);
	/* The tombstone's body is dropped whatever the caller passed. */
	CHECK(apply(s, "k", "x", "ignored", 20, WRITER_A, true));
	CHECK(count(s, NULL) == 0);
	CHECK(count(s, "k") == 0);

	struct walk w = {0};
	CHECK(peer_store_list(s, NULL, false, collect_cb, &w) == 0);
	CHECK(w.n == 0);
	w = (struct walk){0};
	CHECK(peer_store_list(s, "k", true, collect_cb, &w) == 0);
	CHECK(w.n == 1 && w.deleted[0]);

	struct peer_record r;
	CHECK(peer_store_get(s, "k", "x", &r) == 0);
	CHECK(r.deleted && r.body_len == 0 && r.hlc == 20);
	peer_record_clear(&r);

	/* An older write does not bring it back; a newer one does. */
	CHECK(!apply(s, "k", "x", "stale", 15, WRITER_B, false));
	CHECK(count(s, NULL) == 0);
	CHECK(apply(s, "k", "x", "again", 30, WRITER_A, false));
	CHECK(count(s, NULL) == 1);
	CHECK(body_is(s, "k", "x", "again"));
	CHECK(peer_store_get(s, "k", "x", &r) == 0);
	CHECK(!r.deleted);
	peer_record_clear(&r);

	/* Deleting what was never there still leaves a tombstone. */
	CHECK(apply(s, "k", "never", NULL, 40, WRITER_A, true));
	CHECK(count(s, NULL) == 1);
	w = (struct walk){0};
	CHECK(peer_store_list(s, NULL, true, collect_cb, &w) == 0);
	CHECK(w.n == 2);
	peer_store_close(s);
}

static void test_collect_tombstones(void)
{
	struct peer_store *s = open_new("collect.db");
	if (!s)
		return;
	CHECK(apply(s, "k", "old", NULL, mc_hlc_make(1000, 3), WRITER_A, true));
	CHECK(
	    apply(s, "k", "edge", NULL, mc_hlc_make(2000, 0), WRITER_A, true));
	CHECK(apply(s, "k", "new", NULL, mc_hlc_make(2000, 5), WRITER_A, true));
	CHECK(apply(s, "k", "live", "v", mc_hlc_make(500, 0), WRITER_A, false));

	uint64_t removed = 99;
	CHECK(peer_store_collect_tombstones(s, 0, &removed) == 0);
	CHECK_EQ_U64(removed, 0);
	CHECK(peer_store_collect_tombstones(s, 2000, &removed) == 0);
	CHECK_EQ_U64(removed, 1);
	struct peer_record r;
	CHECK(peer_store_get(s, "k", "old", &r) == -ENOENT);
	CHECK(peer_store_get(s, "k", "edge", &r) == 0);
	peer_record_clear(&r);
	CHECK(peer_store_get(s, "k", "new", &r) == 0);
	peer_record_clear(&r);

	CHECK(peer_store_collect_tombstones(s, 2001, &removed) == 0);
	CHECK_EQ_U64(removed, 2);
	/* Live records are never collected, however old. */
	CHECK(peer_store_collect_tombstones(s, UINT64_MAX, &removed) == 0);
	CHECK_EQ_U64(removed, 0);
	CHECK(peer_store_collect_tombstones(s, UINT64_MAX, NULL) == 0);
	CHECK(count(s, NULL) == 1);
	CHECK(body_is(s, "k", "live", "v"));
	peer_store_close(s);
}

/* The change counters move with every write that wins, of its own kind,
 * by whichever path, and with nothing else. */
static void test_changes(void)
{
	struct peer_store *s = open_new("changes.db");
	if (!s)
		return;
	/* Two kinds in different counter slots (the hash puts these two
	 * apart; a shared slot would only make the test below weaker). */
	const char *a = "instance", *b = "slice";
	uint64_t a0 = peer_store_changes(s, a), b0 = peer_store_changes(s, b);
	CHECK_EQ_U64(a0, 0);
	CHECK_EQ_U64(b0, 0);
	CHECK(apply(s, a, "x", "v1", 10, WRITER_A, false));
	CHECK_EQ_U64(peer_store_changes(s, a), 1);
	CHECK_EQ_U64(peer_store_changes(s, b), 0);
	/* A losing write and a repeat move nothing. */
	CHECK(!apply(s, a, "x", "v0", 5, WRITER_A, false));
	CHECK(!apply(s, a, "x", "v1", 10, WRITER_A, false));
	CHECK_EQ_U64(peer_store_changes(s, a), 1);
	/* A tombstone is a change. */
	CHECK(apply(s, a, "x", NULL, 20, WRITER_A, true));
	CHECK_EQ_U64(peer_store_changes(s, a), 2);
	/* A batch counts each winner under its kind. */
	struct peer_record rs[] = {
	    rec(b, "10.0.1.0", "s1", 10, WRITER_A, false),
	    rec(b, "10.0.2.0", "s2", 10, WRITER_A, false),
	    rec(a, "x", "old", 1, WRITER_B, false), /* loses */
	};
	size_t n = 0;
	CHECK(peer_store_apply_batch(s, rs, 3, &n) == 0);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_U64(peer_store_changes(s, a), 2);
	CHECK_EQ_U64(peer_store_changes(s, b), 2);
	/* Meta settings are not records. */
	CHECK(peer_store_meta_set(s, "name", "p1") == 0);
	CHECK_EQ_U64(peer_store_changes(s, a) + peer_store_changes(s, b), 4);
	peer_store_close(s);
}

static void test_batch(void)
{
	struct peer_store *s = open_new("batch.db");
	if (!s)
		return;
	CHECK(apply(s, "k", "b", "held", 500, WRITER_A, false));

	struct peer_record rs[] = {
	    rec("k", "a", "a1", 10, WRITER_A, false),
	    rec("k", "b", "loses", 100, WRITER_A, false),
	    rec("k", "c", "c1", 10, WRITER_A, false),
	    /* A later entry for the same key is merged like any other. */
	    rec("k", "c", "c2", 20, WRITER_B, false),
	    rec("k", "d", NULL, 10, WRITER_B, true),
	};
	size_t n = 99;
	CHECK(peer_store_apply_batch(s, rs, 5, &n) == 0);
	CHECK(n == 4);
	CHECK(body_is(s, "k", "b", "held"));
	CHECK(body_is(s, "k", "c", "c2"));
	CHECK(count(s, "k") == 3);

	/* The same batch again: nothing wins. */
	CHECK(peer_store_apply_batch(s, rs, 5, &n) == 0);
	CHECK(n == 0);
	CHECK(peer_store_apply_batch(s, rs, 0, &n) == 0);
	CHECK(n == 0);

	/* One bad record refuses the whole batch. */
	struct peer_record bad[] = {
	    rec("k", "e", "e1", 10, WRITER_A, false),
	    rec("k", "f", "f1", UINT64_MAX, WRITER_A, false),
	};
	CHECK(peer_store_apply_batch(s, bad, 2, &n) == -ERANGE);
	CHECK(n == 0);
	struct peer_record r;
	CHECK(peer_store_get(s, "k", "e", &r) == -ENOENT);
	CHECK(peer_store_apply_batch(s, bad, 1, NULL) == 0);
	CHECK(body_is(s, "k", "e", "e1"));
	peer_store_close(s);
}

static void test_list_order(void)
{
	struct peer_store *s = open_new("list.db");
	if (!s)
		return;
	const char *const keys[][2] = {
	    {"vm", "b"},      {"account", "z"}, {"vm", "a"},      {"net", "m"},
	    {"account", "a"}, {"vm", "c"},      {"account", "m"},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		CHECK(apply(s, keys[i][0], keys[i][1], "v", 10 + i, WRITER_A,
		            false));
	CHECK(apply(s, "vm", "a", NULL, 100, WRITER_A, true));

	struct walk w = {0};
	CHECK(peer_store_list(s, NULL, false, collect_cb, &w) == 0);
	const char *const all[] = {"account/a", "account/m", "account/z",
	                           "net/m",     "vm/b",      "vm/c"};
	CHECK(w.n == 6);
	for (int i = 0; i < 6 && i < w.n; i++)
		CHECK_STR(w.seen[i], all[i]);

	w = (struct walk){0};
	CHECK(peer_store_list(s, "vm", true, collect_cb, &w) == 0);
	CHECK(w.n == 3);
	CHECK_STR(w.seen[0], "vm/a");
	CHECK(w.deleted[0]);
	CHECK_STR(w.seen[2], "vm/c");

	w = (struct walk){0};
	CHECK(peer_store_list(s, "none", true, collect_cb, &w) == 0);
	CHECK(w.n == 0);

	/* A non-zero return stops the walk and comes back as the result. */
	w = (struct walk){.stop_after = 2};
	CHECK(peer_store_list(s, NULL, true, collect_cb, &w) == 7);
	CHECK(w.n == 2);
	/* The walk's statement was reset: the next one starts afresh. */
	w = (struct walk){0};
	CHECK(peer_store_list(s, NULL, true, collect_cb, &w) == 0);
	CHECK(w.n == 7);
	CHECK(count(s, "account") == 3);
	CHECK(count(s, "vm") == 2);
	peer_store_close(s);
}

static void test_get_missing(void)
{
	struct peer_store *s = open_new("missing.db");
	if (!s)
		return;
	struct peer_record r;
	memset(&r, 0xaa, sizeof(r));
	CHECK(peer_store_get(s, "k", "nope", &r) == -ENOENT);
	CHECK(r.kind == NULL && r.id == NULL && r.body == NULL);
	peer_record_clear(&r);
	peer_store_close(s);
}

static void test_max_hlc(void)
{
	struct peer_store *s = open_new("maxhlc.db");
	if (!s)
		return;
	uint64_t m = 1;
	CHECK(peer_store_max_hlc(s, &m) == 0);
	CHECK_EQ_U64(m, 0);
	uint64_t big = mc_hlc_make(1700000000000ull, 42);
	CHECK(apply(s, "a", "1", "v", big - 5, WRITER_A, false));
	CHECK(apply(s, "b", "1", NULL, big, WRITER_A, true));
	CHECK(apply(s, "c", "1", "v", 7, WRITER_A, false));
	CHECK(peer_store_max_hlc(s, &m) == 0);
	CHECK_EQ_U64(m, big);
	peer_store_close(s);
}

static void set_user_version(const char *path, int v)
{
	sqlite3 *db = NULL;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
	      SQLITE_OK);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_close(db) == SQLITE_OK);
}

/* Opening must fail with want and leave the file's bytes as they were. */
static void check_refused(const char *path, bool create, int want,
                          const char *needle)
{
	size_t before_len = 0, after_len = 0;
	char *before = slurp(path, &before_len);
	CHECK(before != NULL);

	struct peer_store *s = NULL;
	err[0] = '\0';
	int r = peer_store_open(path, create, &s, err, sizeof(err));
	CHECK(r == want);
	if (r != want)
		fprintf(stderr, "  got %d (%s): %s\n", r, strerror(-r), err);
	CHECK(s == NULL);
	CHECK(strstr(err, path) != NULL);
	CHECK(strstr(err, needle) != NULL);
	CHECK(strchr(err, '\n') == NULL);
	if (s)
		peer_store_close(s);

	char *after = slurp(path, &after_len);
	CHECK(after != NULL);
	CHECK(before_len == after_len);
	CHECK(before && after && before_len == after_len &&
	      memcmp(before, after, before_len) == 0);
	free(before);
	free(after);
}

static void test_newer_schema(void)
{
	const char *path = db_path("newer.db");
	struct peer_store *s = open_new("newer.db");
	if (!s)
		return;
	CHECK(apply(s, "k", "x", "v", 1, WRITER_A, false));
	peer_store_close(s);
	set_user_version(path, 99);

	check_refused(path, false, -EPROTO, "newer than this mallee");
	CHECK(strstr(err, "99") != NULL);
	check_refused(path, true, -EPROTO, "upgrade mallee");

	/* Not even a write-ahead log was left behind. */
	char side[160];
	snprintf(side, sizeof(side), "%s-wal", path);
	CHECK(!exists(side));
	snprintf(side, sizeof(side), "%s-shm", path);
	CHECK(!exists(side));
}

static void test_corrupt(void)
{
	/* Bytes that are not SQLite at all. */
	const char *path = db_path("garbage.db");
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 17);
	write_file(path, junk, sizeof(junk));
	check_refused(path, false, -EIO, "not a mallee database");
	check_refused(path, true, -EIO, "not a mallee database");

	/* A real header cut short, which SQLite would take for empty. */
	struct peer_store *s = open_new("source.db");
	if (!s)
		return;
	char body[2048];
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	for (int i = 0; i < 64; i++) {
		char id[16];
		snprintf(id, sizeof(id), "r%d", i);
		CHECK(
		    apply(s, "k", id, body, 1 + (uint64_t)i, WRITER_A, false));
	}
	peer_store_close(s);
	size_t len = 0;
	char *whole = slurp(db_path("source.db"), &len);
	CHECK(whole != NULL && len > 4 * 4096);
	if (!whole)
		return;
	path = db_path("short.db");
	write_file(path, whole, 60);
	check_refused(path, true, -EIO, "not a mallee database");

	/* Whole pages missing from the end. */
	path = db_path("truncated.db");
	write_file(path, whole, 4096);
	check_refused(path, false, -EIO, "truncated.db");
	free(whole);
}

static void test_foreign(void)
{
	const char *path = db_path("foreign.db");
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)",
	                   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	check_refused(path, true, -EIO, "not a mallee database");

	path = db_path("other-app.db");
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA application_id = 42; CREATE TABLE t(x)",
	                   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	check_refused(path, true, -EIO, "not a mallee database");
}

static void test_absent(void)
{
	const char *path = db_path("absent.db");
	struct peer_store *s = NULL;
	CHECK(peer_store_open(path, false, &s, err, sizeof(err)) == -ENOENT);
	CHECK(s == NULL);
	CHECK(strstr(err, path) != NULL);
	CHECK(!exists(path));

	/* An empty file is a new database, not a damaged one. */
	path = db_path("empty.db");
	write_file(path, "", 0);
	CHECK(peer_store_open(path, false, &s, err, sizeof(err)) == 0);
	if (s)
		CHECK(count(s, NULL) == 0);
	peer_store_close(s);

	/* The directory itself is missing. */
	s = NULL;
	char deep[160];
	snprintf(deep, sizeof(deep), "%s/no/such/dir.db", tmpdir);
	CHECK(peer_store_open(deep, true, &s, err, sizeof(err)) < 0);
	CHECK(s == NULL);
	CHECK(strstr(err, deep) != NULL);
}

static void test_readonly_dir(void)
{
	/* root writes anywhere, so there is nothing to see as root. */
	if (geteuid() == 0)
		return;
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/ro", tmpdir);
	CHECK(mkdir(dir, 0500) == 0);
	char path[192];
	snprintf(path, sizeof(path), "%s/store.db", dir);
	struct peer_store *s = NULL;
	CHECK(peer_store_open(path, true, &s, err, sizeof(err)) == -EACCES);
	CHECK(s == NULL);
	CHECK(strstr(err, path) != NULL);
	chmod(dir, 0700);
}

static void test_check(void)
{
	struct peer_store *s = open_new("check.db");
	if (!s)
		return;
	CHECK(apply(s, "k", "x", "v", 1, WRITER_A, false));
	strcpy(err, "stale");
	CHECK(peer_store_check(s, err, sizeof(err)) == 0);
	CHECK_STR(err, "");
	peer_store_close(s);
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct bucket_count {
	unsigned bucket;
	int n;
	bool wrong;
};

static int count_in_bucket(const struct peer_record *r, void *arg)
{
	struct bucket_count *c = arg;
	c->n++;
	if (peer_record_bucket(peer_record_keyhash(r->kind, r->id)) !=
	    c->bucket)
		c->wrong = true;
	return 0;
}

static void test_digest(void)
{
	struct peer_store *a = open_new("digest-a.db");
	struct peer_store *b = open_new("digest-b.db");
	uint8_t ta[16], tb[16], empty[16];
	if (!a || !b)
		return;
	peer_store_digest_total(a, empty);

	/* The same final set reached in different orders digests the same. */
	char id[32];
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		apply(a, "k", id, "one", 100 + (uint64_t)i, WRITER_A, false);
	}
	for (int i = 199; i >= 0; i--) {
		snprintf(id, sizeof(id), "r%d", i);
		apply(b, "k", id, "old", 50, WRITER_B, false);
		apply(b, "k", id, "one", 100 + (uint64_t)i, WRITER_A, false);
		apply(b, "k", id, "stale", 60, WRITER_B, false);
	}
	peer_store_digest_total(a, ta);
	peer_store_digest_total(b, tb);
	CHECK(memcmp(ta, tb, 16) == 0);
	CHECK(memcmp(ta, empty, 16) != 0);

	/* One newer version anywhere changes exactly one bucket. */
	uint64_t da[PEER_STORE_BUCKETS], db[PEER_STORE_BUCKETS];
	apply(b, "k", "r7", "two", 1000, WRITER_B, false);
	peer_store_digest(a, da);
	peer_store_digest(b, db);
	int differ = 0;
	unsigned which = 0;
	for (unsigned i = 0; i < PEER_STORE_BUCKETS; i++)
		if (da[i] != db[i]) {
			differ++;
			which = i;
		}
	CHECK(differ == 1);
	CHECK(which == peer_record_bucket(peer_record_keyhash("k", "r7")));
	struct bucket_count c = {.bucket = which};
	CHECK(peer_store_list_bucket(b, which, count_in_bucket, &c) == 0);
	CHECK(c.n >= 1 && !c.wrong);

	/* Tombstones count; collecting them keeps the digest true. */
	apply(a, "k", "r7", "", 1001, WRITER_B, true);
	apply(b, "k", "r7", "", 1001, WRITER_B, true);
	peer_store_digest_total(a, ta);
	peer_store_digest_total(b, tb);
	CHECK(memcmp(ta, tb, 16) == 0);
	uint64_t removed = 0;
	CHECK(peer_store_collect_tombstones(a, UINT64_MAX >> 20, &removed) ==
	      0);
	CHECK(removed == 1);
	peer_store_close(a);
	a = NULL;
	CHECK(peer_store_open(db_path("digest-a.db"), false, &a, err,
	                      sizeof(err)) == 0);
	/* Rebuilt from the table at open: the same as kept in memory. */
	uint8_t reopened[16];
	peer_store_digest_total(a, reopened);
	peer_store_collect_tombstones(b, UINT64_MAX >> 20, &removed);
	peer_store_digest_total(b, tb);
	CHECK(memcmp(reopened, tb, 16) == 0);
	peer_store_close(a);
	peer_store_close(b);
}

int main(void)
{
	mc_log_set_level(MC_LOG_WARN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mallee-store-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}

	RUN(test_create_reopen);
	RUN(test_meta);
	RUN(test_lww);
	RUN(test_binary_body);
	RUN(test_invalid);
	RUN(test_tombstones);
	RUN(test_collect_tombstones);
	RUN(test_batch);
	RUN(test_changes);
	RUN(test_list_order);
	RUN(test_get_missing);
	RUN(test_max_hlc);
	RUN(test_newer_schema);
	RUN(test_corrupt);
	RUN(test_foreign);
	RUN(test_absent);
	RUN(test_readonly_dir);
	RUN(test_check);
	RUN(test_digest);

	nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
