/*
 * Writing the cloud's records locally: stamp with this peer's hybrid logical
 * clock and id, apply to the store (durable on return). Record kinds are
 * the names in DESIGN.md ("Records").
 */
#ifndef PEER_RECORDS_H
#define PEER_RECORDS_H

#include "hlc.h"
#include "store.h"

#define PEER_KIND_ACCOUNT    "account"
#define PEER_KIND_ACCESS_KEY "access-key"

/* Who writes: the store, the clock and the writer id, all borrowed. */
struct peer_writer {
	struct peer_store *store;
	struct mc_hlc *clock;
	const char *id; /* this peer's id, PEER_ID_HEX_LEN hex digits */
	/* Told of each durable local write, to spread it (may be NULL). */
	void (*published)(void *arg, const struct peer_record *r);
	void *published_arg;
};

/* Seeds the clock so no new stamp is below one already stored. */
int peer_writer_init(struct peer_writer *w, struct peer_store *store,
                     struct mc_hlc *clock, const char *id);

/* Writes (kind, id) -> body; *stamp (may be NULL) gets the record's hlc. */
int peer_records_put(struct peer_writer *w, const char *kind, const char *id,
                     const void *body, size_t len, uint64_t *stamp);
/* Writes a tombstone for (kind, id). */
int peer_records_delete(struct peer_writer *w, const char *kind, const char *id,
                        uint64_t *stamp);

/* True for names fit to be a record kind or id: 1..128 printable ASCII. */
bool peer_record_name_ok(const char *s);

#endif
