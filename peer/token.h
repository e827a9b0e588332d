/*
 * Join tokens: everything a new host needs to join a cloud, in one
 * copy-pasteable string: "mallee1-" + base64url(msgpack payload || check),
 * where check is 4 bytes of BLAKE2b over the payload so a mistyped or cut
 * token is caught before anything is created. The token carries the cloud
 * key: it is a secret.
 */
#ifndef PEER_TOKEN_H
#define PEER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define PEER_TOKEN_PREFIX    "mallee1-"
#define PEER_CLOUD_ID_BYTES  16
#define PEER_TOKEN_MAX_ADDRS 8
#define PEER_TOKEN_MAX_TEXT  4096

struct peer_token {
	uint8_t cloud_id[PEER_CLOUD_ID_BYTES];
	uint8_t cloud_key[32];
	char name[64]; /* region name */
	char cidr[48]; /* the cloud's private CIDR */
	unsigned n_addrs;
	char addrs[PEER_TOKEN_MAX_ADDRS][64]; /* gossip addresses, HOST:PORT */
};

/* Returns a fresh string the caller frees (and should wipe: it is secret). */
char *peer_token_encode(const struct peer_token *t);
/*
 * Parses and checks text (surrounding whitespace allowed). Returns 0, or
 * -EINVAL with *why set to a static one-line reason.
 */
int peer_token_decode(const char *text, struct peer_token *out,
                      const char **why);

#endif
