/*
 * Opening the store (store.h): checking that a file is a mallee database of
 * a version this mallee understands before anything writes to it, then
 * migrating and preparing the statements. Failures come back as negative
 * errno values with a one-line reason.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"

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
    [ST_LIST_PREFIX] = "SELECT " RECORD_COLUMNS " FROM records"
                       " WHERE kind = ?1 AND id >= ?2 AND id < ?3"
                       " AND deleted = 0 ORDER BY id",
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

void store_set_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void store_set_err(char *err, size_t size, const char *fmt, ...)
{
	if (!err || size == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

static bool store_errno_is_permission(int e)
{
	return e == EACCES || e == EPERM || e == EROFS;
}

/* Permission problems are -EACCES; anything else unreadable is -EIO. */
static int store_errno_result(int e)
{
	if (store_errno_is_permission(e))
		return -EACCES;
	return e == ENOENT ? -ENOENT : -EIO;
}

/* Maps a SQLite result code to the negative errno the store returns. */
int store_sqlite_errno(struct peer_store *s, int rc)
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
		if (s && store_errno_is_permission(sqlite3_system_errno(s->db)))
			return -EACCES;
		return -EIO;
	default:
		return -EIO;
	}
}

/* Logs a failed statement and returns its errno; what names the action. */
int store_fail(struct peer_store *s, const char *what, int rc)
{
	mc_error("store", "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
	return store_sqlite_errno(s, rc);
}

/*
 * Describes a failure while opening in err, in terms of the file rather than
 * of SQLite, and returns the errno: a file that is not a database or is
 * damaged is -EIO, as is one that cannot be read for any other reason.
 */
static int store_open_fail(struct peer_store *s, int rc, const char *what,
                           char *err, size_t size)
{
	int sys = s->db ? sqlite3_system_errno(s->db) : 0;
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		store_set_err(err, size, "%s is not a mallee database (%s)",
		              s->path, msg);
		return -EIO;
	case SQLITE_CORRUPT:
		store_set_err(err, size, "%s is damaged (%s)", s->path, msg);
		return -EIO;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_PERM:
		if (sys) {
			store_set_err(err, size, "cannot %s %s: %s", what,
			              s->path, strerror(sys));
			return store_errno_result(sys);
		}
		break;
	}
	store_set_err(err, size, "cannot %s %s: %s", what, s->path, msg);
	int e = store_sqlite_errno(s, rc);
	return e ? e : -EIO;
}

/* Runs a one-off statement that yields at most one integer (0 if none). */
static int store_exec_int(sqlite3 *db, const char *sql, int64_t *out)
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
int store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_reset(st);
	return rc;
}

void store_stmt_release(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int store_tx_begin(struct peer_store *s)
{
	int rc = store_step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return store_fail(s, "begin", rc);
	return 0;
}

/*
 * Commits when ret is 0, else rolls back; returns ret, or the commit's error.
 * SQLite may already have rolled back on its own (a full disk, an I/O
 * error), so ROLLBACK runs only while a transaction is still open.
 */
int store_digest_rebuild(struct peer_store *s);

int store_tx_end(struct peer_store *s, int ret)
{
	if (ret == 0) {
		int rc = store_step_done(s->st[ST_COMMIT]);
		if (rc == SQLITE_OK)
			return 0;
		ret = store_fail(s, "commit", rc);
	}
	if (!sqlite3_get_autocommit(s->db)) {
		int rc = store_step_done(s->st[ST_ROLLBACK]);
		if (rc != SQLITE_OK)
			store_fail(s, "rollback", rc);
		/* The digest followed changes that are now undone. */
		store_digest_rebuild(s);
	}
	return ret;
}

static int newer_schema(struct peer_store *s, int64_t version, char *err,
                        size_t size)
{
	store_set_err(
	    err, size,
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
		store_set_err(
		    err, size,
		    "%s is not a mallee database (%jd bytes is too short)",
		    s->path, (intmax_t)sb.st_size);
		return -EIO;
	}

	int64_t version, app_id, n_tables;
	int rc = store_exec_int(s->db, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK)
		rc = store_exec_int(s->db, "PRAGMA application_id", &app_id);
	if (rc == SQLITE_OK)
		rc = store_exec_int(s->db, "SELECT count(*) FROM sqlite_master",
		                    &n_tables);
	if (rc != SQLITE_OK)
		return store_open_fail(s, rc, "read", err, size);

	if (app_id != 0 && app_id != STORE_APPLICATION_ID) {
		store_set_err(
		    err, size,
		    "%s is not a mallee database (application id %#" PRIx64 ")",
		    s->path, (uint64_t)app_id);
		return -EIO;
	}
	if (version > PEER_STORE_SCHEMA_VERSION)
		return newer_schema(s, version, err, size);
	if (version < 0 || (version > 0 && app_id != STORE_APPLICATION_ID) ||
	    (version == 0 && n_tables > 0)) {
		store_set_err(err, size,
		              "%s is not a mallee database (unknown schema)",
		              s->path);
		return -EIO;
	}

	/* SQLite quietly opens a file it may not write read-only. */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		store_set_err(err, size,
		              "cannot open %s for writing: it is read-only",
		              s->path);
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
		return store_open_fail(s, rc, "set up", err, size);
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
		return store_open_fail(s, rc, "write", err, size);
	rc = store_exec_int(s->db, "PRAGMA user_version", &version);
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
	ret = store_open_fail(s, rc, "migrate", err, size);
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
				store_set_err(
				    err, size,
				    "%s is not a mallee database (%s)", s->path,
				    sqlite3_errmsg(s->db));
				return -EIO;
			}
			return store_open_fail(s, rc, "read", err, size);
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
		store_set_err(err, size, "cannot create %s: %s", path,
		              strerror(e));
		return store_errno_result(e);
	}
	store_set_err(err, size, "cannot open %s: %s", path, strerror(e));
	return store_errno_result(e);
}

/*
 * A damaged page would otherwise surface later as a failed read with a
 * puzzling message; quick_check reads every page once (milliseconds for a
 * store of 100,000 records) and names the damage at open.
 */
static int quick_check(struct peer_store *s, char *err, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	const char *verdict =
	    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	int ret = 0;
	if (!verdict || strcmp(verdict, "ok") != 0) {
		/* One line: the verdict is several, under a banner. */
		char what[256];
		const char *v = verdict ? verdict : sqlite3_errmsg(s->db);
		const char *banner = "*** in database main ***\n";
		if (strncmp(v, banner, strlen(banner)) == 0)
			v += strlen(banner);
		snprintf(what, sizeof(what), "%s", v);
		for (char *c = what; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
		store_set_err(err, size, "%s is damaged (%s)", s->path, what);
		ret = -EIO;
	}
	sqlite3_finalize(st);
	return ret;
}

int peer_store_open(const char *path, bool create, struct peer_store **out,
                    char *err, size_t err_size)
{
	*out = NULL;
	store_set_err(err, err_size, "%s", "");

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
		ret = store_open_fail(s, rc, "open", err, err_size);
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
	ret = quick_check(s, err, err_size);
	if (ret)
		goto err_db;
	ret = store_digest_rebuild(s);
	if (ret) {
		store_set_err(err, err_size, "cannot read %s", path);
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
