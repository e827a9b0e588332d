/*
 * The peer's durable state: one SQLite database in WAL mode holding the
 * cloud's replicated record map (kind, id) -> body, each record stamped with
 * a hybrid-logical-clock value and the id of the peer that wrote it, plus a
 * small table of this peer's own settings. Only store.c includes sqlite3.h.
 *
 * Every write is one transaction and is durable when the call returns
 * (synchronous=FULL), so a write acknowledged to a client survives kill -9.
 * The store is used from one thread at a time.
 */
#ifndef PEER_STORE_H
#define PEER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema version this mallee writes (PRAGMA user_version). */
#define PEER_STORE_SCHEMA_VERSION 1
#define PEER_ID_HEX_LEN           16

struct peer_store;

/*
 * A record. Filled by the caller for peer_store_apply (fields borrowed), or
 * by the store for peer_store_get and list callbacks (then owned by the
 * store for a callback's duration, or by the caller after get, released with
 * peer_record_clear). body may be NULL when body_len is 0. Out-parameters
 * that count (applied, n_applied, removed) may be NULL.
 */
struct peer_record {
	char *kind;
	char *id;
	uint8_t *body;
	size_t body_len;
	uint64_t hlc;
	char writer[PEER_ID_HEX_LEN + 1];
	bool deleted; /* a tombstone: body is empty */
};

void peer_record_clear(struct peer_record *r);

/*
 * Opens (and with create, creates) the database at path, migrating an older
 * schema forward. Returns 0 and sets *out, or a negative errno with a
 * one-line reason in err: -ENOENT (absent and !create), -EPROTO (written by a
 * newer mallee: refused, never altered), -EIO (corrupt, or not a mallee
 * database), -EACCES (no permission). A new file is created mode 0600: it
 * holds sealed access keys.
 */
int peer_store_open(const char *path, bool create, struct peer_store **out,
                    char *err, size_t err_size);
void peer_store_close(struct peer_store *s);

/* This peer's settings (cloud id, name, ...). get: -ENOENT when unset,
 * -ERANGE when out is too small. */
int peer_store_meta_get(struct peer_store *s, const char *key, char *out,
                        size_t size);
int peer_store_meta_set(struct peer_store *s, const char *key,
                        const char *value);

/*
 * Last-writer-wins merge of one record: it replaces the stored one only when
 * (hlc, writer) is greater. *applied (may be NULL) tells whether it did.
 * Returns 0 or a negative errno.
 */
int peer_store_apply(struct peer_store *s, const struct peer_record *r,
                     bool *applied);
/* Applies many in one transaction; *n_applied counts those that won. */
int peer_store_apply_batch(struct peer_store *s, const struct peer_record *rs,
                           size_t n, size_t *n_applied);

/* Fills *out (tombstones included); -ENOENT when there is no such record. */
int peer_store_get(struct peer_store *s, const char *kind, const char *id,
                   struct peer_record *out);

/*
 * Calls cb for each record of kind (all kinds when kind is NULL) in (kind,
 * id) order, tombstones only when with_tombstones. The record is borrowed
 * for the call. A non-zero return from cb stops the walk and is returned.
 */
typedef int (*peer_record_cb)(const struct peer_record *r, void *arg);
int peer_store_list(struct peer_store *s, const char *kind,
                    bool with_tombstones, peer_record_cb cb, void *arg);

/* Live records of kind whose id starts with prefix, in id order. */
int peer_store_list_prefix(struct peer_store *s, const char *kind,
                           const char *prefix, peer_record_cb cb, void *arg);

/* Number of live (non-tombstone) records; of kind, or all when NULL. */
int peer_store_count(struct peer_store *s, const char *kind, uint64_t *out);
/* The greatest hlc stored, 0 for an empty store (seeds this peer's clock). */
int peer_store_max_hlc(struct peer_store *s, uint64_t *out);

/* Drops tombstones whose hlc wall time is older than before_ms. */
int peer_store_collect_tombstones(struct peer_store *s, uint64_t before_ms,
                                  uint64_t *removed);

/*
 * Anti-entropy support. Records fall into PEER_STORE_BUCKETS buckets by a
 * hash of (kind, id); each bucket's digest is the XOR of its records'
 * version hashes (tombstones included), kept current on every write, so two
 * stores compare in a few kilobytes and then list only differing buckets.
 */
#define PEER_STORE_BUCKETS 256
uint64_t peer_record_keyhash(const char *kind, const char *id);
unsigned peer_record_bucket(uint64_t keyhash);
void peer_store_digest(struct peer_store *s, uint64_t out[PEER_STORE_BUCKETS]);
/* One hash of the whole record set: equal sets, equal hashes. */
void peer_store_digest_total(struct peer_store *s, uint8_t out[16]);
/* Every record of a bucket, tombstones included, as peer_store_list. */
int peer_store_list_bucket(struct peer_store *s, unsigned bucket,
                           peer_record_cb cb, void *arg);

/*
 * How many writes of kind have won so far in this process (by gossip,
 * anti-entropy or a local write alike): the one signal the parts that
 * mirror records elsewhere (security groups into nftables, the overlay's
 * slices and pools, the gateway's NAT) watch instead of re-reading the
 * store on a timer. The counter is shared by the kinds whose names hash
 * alike, so it may move without a change of kind: a reason to look, never
 * one to skip looking.
 */
uint64_t peer_store_changes(const struct peer_store *s, const char *kind);

/* Runs PRAGMA integrity_check; 0 when it says ok, else -EIO and err. */
int peer_store_check(struct peer_store *s, char *err, size_t err_size);

#endif
