/*
 * Internals shared by store_open.c (opening, checking and migrating the
 * file) and store.c (the records); no other file includes this.
 */
#ifndef PEER_STORE_INT_H
#define PEER_STORE_INT_H

#include "store.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof(*(a)))

/* Marks the file as ours ("mlle"), for file(1) and for open's checks. */
#define STORE_APPLICATION_ID  0x6d6c6c65
#define STORE_BUSY_TIMEOUT_MS 5000
/* No SQLite database file is smaller than one page of the smallest size. */
#define STORE_MIN_PAGE_SIZE 512
/* Slots of the per-kind change counters; kinds are a dozen or so. */
#define STORE_KIND_SLOTS 64
/* Stamps are stored as SQLite's signed 64-bit integers. */
#define STORE_MAX_HLC ((uint64_t)INT64_MAX)

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
	ST_LIST_PREFIX,
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
	/* Writes that won, by a hash of their kind (peer_store_changes). */
	uint64_t kind_changes[STORE_KIND_SLOTS];
};

void store_set_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The negative errno for a SQLite result code. */
int store_sqlite_errno(struct peer_store *s, int rc);
/* Logs a failed SQLite call and returns the negative errno for it. */
int store_fail(struct peer_store *s, const char *what, int rc);
int store_step_done(sqlite3_stmt *st);
void store_stmt_release(sqlite3_stmt *st);
int store_tx_begin(struct peer_store *s);
/* Commits when ret is 0, else rolls back; returns the outcome. */
int store_tx_end(struct peer_store *s, int ret);
/* Recomputes the bucket digests from the table. */
int store_digest_rebuild(struct peer_store *s);

#endif
