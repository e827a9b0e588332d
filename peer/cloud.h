/*
 * Creating a cloud (`mallee init`), joining one from a token, and the
 * accounts and access keys every cloud starts with.
 */
#ifndef PEER_CLOUD_H
#define PEER_CLOUD_H

#include "datadir.h"
#include "records.h"
#include "token.h"

#include <stdbool.h>
#include <stddef.h>

#define PEER_DEFAULT_REGION "us-east-1"
#define PEER_DEFAULT_CIDR   "172.31.0.0/16"

struct peer_access_key {
	char key_id[21]; /* AKIA + 16 */
	char secret[41];
	char account[13]; /* 12 digits */
};

struct peer_cloud_spec {
	const char *data_dir;
	const char *name; /* region name */
	const char *cidr;
	bool force; /* replace a cloud already in data_dir */
};

/*
 * Creates a new cloud in spec->data_dir: cloud id, keyring, this peer's
 * identity, the store, the admin account and its first access key (the
 * secret is returned in *admin, and nowhere else in the clear). Returns 0,
 * -EEXIST when a cloud is there and !force, or another negative errno; err
 * says why.
 */
int peer_cloud_create(const struct peer_cloud_spec *spec,
                      struct peer_access_key *admin, char cloud_id[33],
                      char *err, size_t err_size);

/*
 * Makes an empty data dir a member of the token's cloud: a fresh identity,
 * the token's keyring, a store holding the cloud's id, name and CIDR.
 */
int peer_cloud_adopt(const char *dir, const struct peer_token *t, char *err,
                     size_t err_size);

/* Creates an account record with a fresh 12-digit id. */
int peer_account_create(struct peer_writer *w, const char *name,
                        char account[13]);
/* Creates an active access key for account, sealing its secret. */
int peer_access_key_create(struct peer_writer *w,
                           const struct peer_keyring *ring, const char *account,
                           const char *user, struct peer_access_key *out);

/* Opens an access key's sealed secret with any key of ring. */
int peer_access_key_open(const struct peer_keyring *ring, const char *key_id,
                         const uint8_t *sealed, size_t len,
                         struct mc_buf *plain);
/* Re-seals every access key's secret under ring's primary key. */
int peer_access_keys_reseal(struct peer_writer *w,
                            const struct peer_keyring *ring);
/* A stable IAM-style user id ("AIDA" + 17) for (account, user). */
void peer_user_id(const char *account, const char *user, char *out,
                  size_t size);

/*
 * The cloud's CA: a record (kind "ca", id "cloud") holding the certificate
 * and the private key sealed under the cloud key, so any edge can issue its
 * own certificate. Made at `mallee init`.
 */
#define PEER_KIND_CA "ca"
#define PEER_CA_ID   "cloud"
int peer_ca_create(struct peer_writer *w, const struct peer_keyring *ring,
                   const char *cloud_id);
/* Both PEM strings are fresh (caller frees; wipe the key). */
int peer_ca_load(struct peer_store *store, const struct peer_keyring *ring,
                 char **cert_pem, char **key_pem);

#endif
