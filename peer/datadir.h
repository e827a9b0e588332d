/*
 * A peer's data dir: the files that make it a member of one cloud.
 *
 *   cloud.keys     the cloud keyring: hex keys, one a line, primary first
 *   identity.key   this peer's Ed25519 + X25519 secrets
 *   mallee.db      the SQLite store (with -wal and -shm beside it)
 *   lock           held (flock) by the running peer, holds its pid
 *   ctl.sock       the control socket of the running peer
 *   mallee.conf    optional settings (see config.h)
 *
 * Secrets are written 0600 through a temporary file, fsync and rename, so a
 * crash leaves either the old file or the new one.
 */
#ifndef PEER_DATADIR_H
#define PEER_DATADIR_H

#include "crypto.h"

#include <stdbool.h>
#include <stddef.h>

#define PEER_KEYRING_MAX 4

struct peer_keyring {
	unsigned n; /* keys[0] is the primary */
	uint8_t keys[PEER_KEYRING_MAX][MC_KEY_BYTES];
};

/* A path inside dir, freshly allocated. */
char *peer_datadir_path(const char *dir, const char *file);

/*
 * Makes sure dir exists (creating it 0700 when create) and is a writable
 * directory. Returns 0 or a negative errno with a reason in err.
 */
int peer_datadir_prepare(const char *dir, bool create, char *err,
                         size_t err_size);
/* True when dir already holds a cloud (a keyring or a database). */
bool peer_datadir_has_cloud(const char *dir);

/*
 * Takes the data dir's lock so no second peer can run on it. Returns the
 * lock's fd, or -EBUSY (another peer holds it; its pid is in err) or
 * another negative errno.
 */
int peer_datadir_lock(const char *dir, char *err, size_t err_size);
void peer_datadir_unlock(int fd);

int peer_keyring_load(const char *dir, struct peer_keyring *out, char *err,
                      size_t err_size);
int peer_keyring_save(const char *dir, const struct peer_keyring *k);

int peer_identity_load(const char *dir, struct mc_identity *out, char *err,
                       size_t err_size);
int peer_identity_save(const char *dir, const struct mc_identity *id);
/* The peer id: hex of the first 8 bytes of BLAKE2b(Ed25519 public key). */
void peer_id_of(const struct mc_identity *id, char out[17]);

/* Writes data to dir/file atomically with the given mode. */
int peer_write_file_atomic(const char *dir, const char *file, const void *data,
                           size_t len, int mode);

#endif
