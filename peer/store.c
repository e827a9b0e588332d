/*
 * The peer's store (store.h) on SQLite. Statements are prepared once at open
 * and reset after each use; every write runs in BEGIN IMMEDIATE ... COMMIT
 * so that a busy database fails at BEGIN, before anything was done, rather
 * than half-way through. Failures come back as negative errno values; the
 * SQLite message goes to the log (or to err, for open and check).
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto.h"
#include "hlc.h"
#include "log.h"
#include "mem.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof(*(a)))

/* Marks the file as ours ("mlle"), for file(1) and for open's checks. */
#define STORE_APPLICATION_ID  0x6d6c6c65
#define STORE_BUSY_TIMEOUT_MS 5000
/* No SQLite database file is smaller than one page of the smallest size. */
#define STORE_MIN_PAGE_SIZE 512
/* Stamps are stored as SQLite's signed 64-bit integers. */
#define STORE_MAX_HLC ((uint64_t)INT64_MAX)

/*
 * migrations[v] takes a database from user_version v to v + 1. A step that
 * has been released is never edited: a change is a new step at the end.
 */
static const char *const migrations[] = {
    /* 0 -> 1: the replicated record map and this peer's settings. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE records(kind TEXT NOT NULL, id TEXT NOT NULL,"
    " body BLOB NOT NULL, hlc INTEGER NOT NULL, writer TEXT NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0, bucket INTEGER NOT NULL,"
    " PRIMARY KEY(kind, id)) WITHOUT ROWID;"
    "CREATE INDEX records_hlc ON records(hlc);"
    "CREATE INDEX records_bucket ON records(bucket);",
};

_Static_assert(ARRAY_SIZE(migrations) == PEER_STORE_SCHEMA_VERSION,
               "one migration step per schema version");

enum store_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_META_GET,
	ST_META_SET,
	ST_APPLY,
	ST_GET,
	ST_LIST_ALL,
	ST_LIST_KIND,
	ST_COUNT_ALL,
	ST_COUNT_KIND,
	ST_MAX_HLC,
	ST_COLLECT,
	ST_CHECK,
	ST_VERSION,
	ST_LIST_BUCKET,
	ST_ALL_VERSIONS,
	ST_N,
};

#define RECORD_COLUMNS "kind, id, body, hlc, writer, deleted"

static const char *const stmt_sql[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    /*
     * The whole last-writer-wins rule: the row changes only when the
     * incoming (hlc, writer) is greater, so sqlite3_changes() says
     * whether the record won.
     */
    [ST_APPLY] = "INSERT INTO records(" RECORD_COLUMNS ", bucket)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                 " ON CONFLICT(kind, id) DO UPDATE SET"
                 " body = excluded.body, hlc = excluded.hlc,"
                 " writer = excluded.writer, deleted = excluded.deleted"
                 " WHERE excluded.hlc > records.hlc"
                 " OR (excluded.hlc = records.hlc"
                 " AND excluded.writer > records.writer)",
    [ST_GET] =
        "SELECT " RECORD_COLUMNS " FROM records WHERE kind = ?1 AND id = ?2",
    [ST_LIST_ALL] = "SELECT " RECORD_COLUMNS " FROM records"
                    " WHERE ?1 OR deleted = 0 ORDER BY kind, id",
    [ST_LIST_KIND] = "SELECT " RECORD_COLUMNS " FROM records"
                     " WHERE kind = ?2 AND (?1 OR deleted = 0)"
                     " ORDER BY id",
    [ST_COUNT_ALL] = "SELECT count(*) FROM records WHERE deleted = 0",
    [ST_COUNT_KIND] = "SELECT count(*) FROM records"
                      " WHERE kind = ?1 AND deleted = 0",
    [ST_MAX_HLC] = "SELECT max(hlc) FROM records",
    [ST_COLLECT] = "DELETE FROM records WHERE deleted = 1 AND hlc <= ?1",
    [ST_CHECK] = "PRAGMA integrity_check",
    [ST_VERSION] =
        "SELECT hlc, writer FROM records WHERE kind = ?1 AND id = ?2",
    [ST_LIST_BUCKET] = "SELECT " RECORD_COLUMNS " FROM records"
                       " WHERE bucket = ?1 ORDER BY kind, id",
    [ST_ALL_VERSIONS] = "SELECT kind, id, hlc, writer FROM records",
};

struct peer_store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[ST_N];
	/*
	 * XOR of the version hashes of the records in each bucket, kept in
	 * step with every change so anti-entropy can compare two stores in
	 * PEER_STORE_BUCKETS words without reading the table.
	 */
	uint64_t digest[PEER_STORE_BUCKETS];
};

static void set_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t size, const char *fmt, ...)
{
	if (!err || size == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

static bool errno_is_permission(int e)
{
	return e == EACCES || e == EPERM || e == EROFS;
}

/* Permission problems are -EACCES; anything else unreadable is -EIO. */
static int errno_result(int e)
{
	if (errno_is_permission(e))
		return -EACCES;
	return e == ENOENT ? -ENOENT : -EIO;
}

/* Maps a SQLite result code to the negative errno the store returns. */
static int sqlite_errno(struct peer_store *s, int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_TOOBIG:
		return -EMSGSIZE;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		if (s && errno_is_permission(sqlite3_system_errno(s->db)))
			return -EACCES;
		return -EIO;
	default:
		return -EIO;
	}
}

/* Logs a failed statement and returns its errno; what names the action. */
static int store_fail(struct peer_store *s, const char *what, int rc)
{
	mc_error("store", "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
	return sqlite_errno(s, rc);
}

/*
 * Describes a failure while opening in err, in terms of the file rather than
 * of SQLite, and returns the errno: a file that is not a database or is
 * damaged is -EIO, as is one that cannot be read for any other reason.
 */
static int open_fail(struct peer_store *s, int rc, const char *what, char *err,
                     size_t size)
{
	int sys = s->db ? sqlite3_system_errno(s->db) : 0;
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		set_err(err, size, "%s is not a mallee database (%s)", s->path,
		        msg);
		return -EIO;
	case SQLITE_CORRUPT:
		set_err(err, size, "%s is damaged (%s)", s->path, msg);
		return -EIO;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_PERM:
		if (sys) {
			set_err(err, size, "cannot %s %s: %s", what, s->path,
			        strerror(sys));
			return errno_result(sys);
		}
		break;
	}
	set_err(err, size, "cannot %s %s: %s", what, s->path, msg);
	int e = sqlite_errno(s, rc);
	return e ? e : -EIO;
}

/* Runs a one-off statement that yields at most one integer (0 if none). */
static int exec_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	*out = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	}
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return SQLITE_OK;
	}
	/* Finalizing keeps the error for sqlite3_errmsg(). */
	sqlite3_finalize(st);
	return rc;
}

/* Steps a statement that returns no rows, then resets it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_reset(st);
	return rc;
}

static void stmt_release(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int tx_begin(struct peer_store *s)
{
	int rc = step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return store_fail(s, "begin", rc);
	return 0;
}

/*
 * Commits when ret is 0, else rolls back; returns ret, or the commit's error.
 * SQLite may already have rolled back on its own (a full disk, an I/O
 * error), so ROLLBACK runs only while a transaction is still open.
 */
static int digest_rebuild(struct peer_store *s);

static int tx_end(struct peer_store *s, int ret)
{
	if (ret == 0) {
		int rc = step_done(s->st[ST_COMMIT]);
		if (rc == SQLITE_OK)
			return 0;
		ret = store_fail(s, "commit", rc);
	}
	if (!sqlite3_get_autocommit(s->db)) {
		int rc = step_done(s->st[ST_ROLLBACK]);
		if (rc != SQLITE_OK)
			store_fail(s, "rollback", rc);
		/* The digest followed changes that are now undone. */
		digest_rebuild(s);
	}
	return ret;
}

static int newer_schema(struct peer_store *s, int64_t version, char *err,
                        size_t size)
{
	set_err(err, size,
	        "%s: database schema version %" PRId64
	        " is newer than this mallee understands (%d); upgrade mallee",
	        s->path, version, PEER_STORE_SCHEMA_VERSION);
	return -EPROTO;
}

/*
 * Reads what open must know before writing anything: the schema version,
 * whether the file is ours, and whether it is empty. A file of another
 * application, or one too short to be a database that SQLite would take for
 * an empty one, is refused here so that migrating can never overwrite it.
 */
static int check_file(struct peer_store *s, int64_t *version_out, char *err,
                      size_t size)
{
	struct stat sb;
	if (stat(s->path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
	    sb.st_size < STORE_MIN_PAGE_SIZE) {
		set_err(err, size,
		        "%s is not a mallee database (%jd bytes is too short)",
		        s->path, (intmax_t)sb.st_size);
		return -EIO;
	}

	int64_t version, app_id, n_tables;
	int rc = exec_int(s->db, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK)
		rc = exec_int(s->db, "PRAGMA application_id", &app_id);
	if (rc == SQLITE_OK)
		rc = exec_int(s->db, "SELECT count(*) FROM sqlite_master",
		              &n_tables);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, "read", err, size);

	if (app_id != 0 && app_id != STORE_APPLICATION_ID) {
		set_err(err, size,
		        "%s is not a mallee database (application id %#" PRIx64
		        ")",
		        s->path, (uint64_t)app_id);
		return -EIO;
	}
	if (version > PEER_STORE_SCHEMA_VERSION)
		return newer_schema(s, version, err, size);
	if (version < 0 || (version > 0 && app_id != STORE_APPLICATION_ID) ||
	    (version == 0 && n_tables > 0)) {
		set_err(err, size,
		        "%s is not a mallee database (unknown schema)",
		        s->path);
		return -EIO;
	}

	/* SQLite quietly opens a file it may not write read-only. */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		set_err(err, size,
		        "cannot open %s for writing: it is read-only", s->path);
		return -EACCES;
	}
	*version_out = version;
	return 0;
}

static int configure(struct peer_store *s, char *err, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
	                            NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *mode =
			    (const char *)sqlite3_column_text(st, 0);
			/* Still durable, but readers then block writers. */
			if (!mode || strcmp(mode, "wal") != 0)
				mc_warn("store",
				        "%s: write-ahead log unavailable, "
				        "journal mode is %s",
				        s->path, mode ? mode : "unknown");
			rc = SQLITE_OK;
		}
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL,
		                  NULL, NULL);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, "set up", err, size);
	return 0;
}

/*
 * Brings the schema from version to PEER_STORE_SCHEMA_VERSION in one
 * transaction, so a crash leaves the database at its old version, never in
 * between. The version is read again inside it: another process may have
 * migrated (or a newer mallee upgraded) the file since check_file.
 */
static int migrate(struct peer_store *s, int64_t version, char *err,
                   size_t size)
{
	int ret = 0;
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return open_fail(s, rc, "write", err, size);
	rc = exec_int(s->db, "PRAGMA user_version", &version);
	if (rc != SQLITE_OK)
		goto err_sql;
	if (version > PEER_STORE_SCHEMA_VERSION) {
		ret = newer_schema(s, version, err, size);
		goto err_rollback;
	}
	if (version == PEER_STORE_SCHEMA_VERSION)
		goto err_rollback; /* nothing left to do: ret is 0 */

	for (int64_t v = version; v < PEER_STORE_SCHEMA_VERSION; v++) {
		rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto err_sql;
	}
	char sql[96];
	snprintf(sql, sizeof(sql),
	         "PRAGMA application_id = %d; PRAGMA user_version = %d;",
	         STORE_APPLICATION_ID, PEER_STORE_SCHEMA_VERSION);
	rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto err_sql;

	if (version == 0)
		mc_info("store", "%s: created, schema version %d", s->path,
		        PEER_STORE_SCHEMA_VERSION);
	else
		mc_info("store",
		        "%s: migrated schema version %" PRId64 " to %d",
		        s->path, version, PEER_STORE_SCHEMA_VERSION);
	return 0;

err_sql:
	ret = open_fail(s, rc, "migrate", err, size);
err_rollback:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int prepare_all(struct peer_store *s, char *err, size_t size)
{
	for (int i = 0; i < ST_N; i++) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
		                            SQLITE_PREPARE_PERSISTENT,
		                            &s->st[i], NULL);
		if (rc != SQLITE_OK) {
			/* Tables missing or misshapen: not one of ours. */
			if ((rc & 0xff) == SQLITE_ERROR) {
				set_err(err, size,
				        "%s is not a mallee database (%s)",
				        s->path, sqlite3_errmsg(s->db));
				return -EIO;
			}
			return open_fail(s, rc, "read", err, size);
		}
	}
	return 0;
}

static void store_free(struct peer_store *s)
{
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db) {
		int rc = sqlite3_close(s->db);
		if (rc != SQLITE_OK)
			mc_error("store", "%s: close: %s", s->path,
			         sqlite3_errstr(rc));
	}
	free(s->path);
	free(s);
}

/*
 * Creates an absent file before SQLite sees it: SQLite retries a failed
 * create read-only, which turns "permission denied" into "no such file".
 * The store holds access keys, so the file is the owner's alone; SQLite
 * gives its -wal and -shm files the same mode.
 */
static int create_file(const char *path, bool create, char *err, size_t size)
{
	struct stat sb;
	if (stat(path, &sb) == 0)
		return 0;
	int e = errno;
	if (e == ENOENT && create) {
		int fd =
		    open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		/* Another process may have just created it: open that. */
		if (errno == EEXIST)
			return 0;
		e = errno;
		set_err(err, size, "cannot create %s: %s", path, strerror(e));
		return errno_result(e);
	}
	set_err(err, size, "cannot open %s: %s", path, strerror(e));
	return errno_result(e);
}

int peer_store_open(const char *path, bool create, struct peer_store **out,
                    char *err, size_t err_size)
{
	*out = NULL;
	set_err(err, err_size, "%s", "");

	int ret = create_file(path, create, err, err_size);
	if (ret)
		return ret;

	struct peer_store *s = xcalloc(1, sizeof(*s));
	s->path = xstrdup(path);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		ret = open_fail(s, rc, "open", err, err_size);
		goto err_db;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

	/* Everything up to here only reads: a refused file stays as it was. */
	int64_t version = 0;
	ret = check_file(s, &version, err, err_size);
	if (ret)
		goto err_db;
	ret = configure(s, err, err_size);
	if (ret)
		goto err_db;
	if (version < PEER_STORE_SCHEMA_VERSION) {
		ret = migrate(s, version, err, err_size);
		if (ret)
			goto err_db;
	}
	ret = prepare_all(s, err, err_size);
	if (ret)
		goto err_db;
	ret = digest_rebuild(s);
	if (ret) {
		set_err(err, err_size, "cannot read %s", path);
		goto err_db;
	}

	*out = s;
	return 0;

err_db:
	store_free(s);
	return ret;
}

void peer_store_close(struct peer_store *s)
{
	if (s)
		store_free(s);
}

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
	stmt_release(st);
	return ret;
}

int peer_store_meta_set(struct peer_store *s, const char *key,
                        const char *value)
{
	if (!key || !value)
		return -EINVAL;
	int ret = tx_begin(s);
	if (ret)
		return ret;

	sqlite3_stmt *st = s->st[ST_META_SET];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	int rc = step_done(st);
	if (rc != SQLITE_OK)
		ret = store_fail(s, "write setting", rc);
	stmt_release(st);
	return tx_end(s, ret);
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
static int digest_rebuild(struct peer_store *s)
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
	stmt_release(st);
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
	stmt_release(st);
	return ret;
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
	int rc = step_done(st);
	if (rc == SQLITE_OK) {
		*applied = sqlite3_changes(s->db) > 0;
		/* A rolled-back transaction is rare enough to rebuild after. */
		if (*applied)
			s->digest[peer_record_bucket(kh)] ^=
			    old ^ version_hash(kh, r->hlc, r->writer);
	} else
		ret = store_fail(s, "apply", rc);
	stmt_release(st);
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
	ret = tx_begin(s);
	if (ret)
		return ret;
	ret = tx_end(s, apply_one(s, r, &won));
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

	int ret = tx_begin(s);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++) {
		bool applied = false;
		ret = apply_one(s, &rs[i], &applied);
		won += applied;
	}
	ret = tx_end(s, ret);
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
	stmt_release(st);
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

	int ret = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct peer_record r;
		ret = row_borrow(st, &r);
		if (ret == 0)
			ret = cb(&r, arg);
		if (ret)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = store_fail(s, "list", rc);
	stmt_release(st);
	return ret;
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
	stmt_release(st);
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

	int ret = tx_begin(s);
	if (ret)
		return ret;
	sqlite3_stmt *st = s->st[ST_COLLECT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)last);
	int rc = step_done(st);
	uint64_t n = 0;
	if (rc == SQLITE_OK)
		n = (uint64_t)sqlite3_changes64(s->db);
	else
		ret = store_fail(s, "collect tombstones", rc);
	stmt_release(st);
	ret = tx_end(s, ret);
	if (ret == 0 && removed)
		*removed = n;
	if (ret == 0 && n > 0)
		ret = digest_rebuild(s);
	return ret;
}

int peer_store_check(struct peer_store *s, char *err, size_t err_size)
{
	set_err(err, err_size, "%s", "");
	sqlite3_stmt *st = s->st[ST_CHECK];
	int ret = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *first = (const char *)sqlite3_column_text(st, 0);
		if (!first || strcmp(first, "ok") != 0) {
			/* The first problem found stands for the rest. */
			set_err(err, err_size,
			        "%s failed its integrity check: %s", s->path,
			        first ? first : "(no detail)");
			ret = -EIO;
		}
	} else {
		set_err(err, err_size, "%s: integrity check could not run: %s",
		        s->path, sqlite3_errmsg(s->db));
		ret = sqlite_errno(s, rc);
		if (ret == 0)
			ret = -EIO;
	}
	stmt_release(st);
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
		ret = store_fail(s, "list bucket", rc);
	stmt_release(st);
	return ret;
}
