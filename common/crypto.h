/*
 * The crypto mallee needs, over libsodium: randomness, encodings, sealing
 * with a symmetric key, hashing, and peer identities. Only crypto.c includes
 * sodium.h.
 */
#ifndef MC_CRYPTO_H
#define MC_CRYPTO_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_KEY_BYTES       32
#define MC_SEAL_OVERHEAD   (24 + 16) /* XChaCha20 nonce + Poly1305 tag */
#define MC_SIGN_PK_BYTES   32
#define MC_SIGN_SK_BYTES   64
#define MC_SIGNATURE_BYTES 64
#define MC_BOX_PK_BYTES    32
#define MC_BOX_SK_BYTES    32

/* Returns 0, or -1 when libsodium cannot start (no entropy source). */
int mc_crypto_init(void);
void mc_random(void *out, size_t n);
uint32_t mc_random_uniform(uint32_t upper);
void mc_wipe(void *p, size_t n);
/* Constant-time equality of two n-byte strings. */
bool mc_equal(const void *a, const void *b, size_t n);

/* out gets 2n+1 bytes (lowercase, NUL-terminated). */
void mc_hex_encode(char *out, const void *in, size_t n);
/* Decodes exactly n bytes from 2n hex digits; -EINVAL otherwise. */
int mc_hex_decode(void *out, size_t n, const char *hex, size_t hex_len);

/* URL-safe base64 without padding, into a fresh string the caller frees. */
char *mc_b64url_encode(const void *in, size_t n);
/* Decodes into out (up to cap bytes); returns the length or -EINVAL. */
long mc_b64url_decode(void *out, size_t cap, const char *in, size_t len);
/* Standard base64 with padding (what EC2 and PEM use). */
char *mc_b64_encode(const void *in, size_t n);
long mc_b64_decode(void *out, size_t cap, const char *in, size_t len);

/*
 * XChaCha20-Poly1305 under a 32-byte key with a random nonce; appends
 * nonce || ciphertext || tag (n + MC_SEAL_OVERHEAD bytes) to out. The
 * associated data ad (may be NULL) is authenticated, not stored.
 */
void mc_seal(struct mc_buf *out, const uint8_t key[MC_KEY_BYTES],
             const void *ad, size_t ad_len, const void *msg, size_t n);
/* Opens what mc_seal made, appending the plaintext; -EBADMSG on failure. */
int mc_open(struct mc_buf *out, const uint8_t key[MC_KEY_BYTES], const void *ad,
            size_t ad_len, const void *sealed, size_t n);

/* SHA-256 and HMAC-SHA-256 (what AWS signatures are made of). */
void mc_sha256(uint8_t out[32], const void *in, size_t n);
void mc_hmac_sha256(uint8_t out[32], const void *key, size_t key_len,
                    const void *in, size_t n);

/* BLAKE2b of in, out_len between 16 and 64 bytes. */
void mc_hash(void *out, size_t out_len, const void *in, size_t n);

struct mc_identity {
	uint8_t sign_pk[MC_SIGN_PK_BYTES];
	uint8_t sign_sk[MC_SIGN_SK_BYTES];
	uint8_t box_pk[MC_BOX_PK_BYTES];
	uint8_t box_sk[MC_BOX_SK_BYTES];
};

void mc_identity_generate(struct mc_identity *id);
/* Derives the X25519 public key of a secret one. */
void mc_box_public(uint8_t pk[MC_BOX_PK_BYTES],
                   const uint8_t sk[MC_BOX_SK_BYTES]);
/* Recomputes both public keys from the secrets; false if inconsistent. */
bool mc_identity_check(const struct mc_identity *id);

/*
 * crypto_box between two identities' X25519 keys (XSalsa20-Poly1305), with
 * the shared key computed once (crypto_box_beforenm) and kept by the
 * caller. Both directions share the key: what a message is, and who sent
 * it to whom, must be inside it. -EINVAL for a public key that gives a
 * weak shared secret.
 */
#define MC_BOX_KEY_BYTES 32
#define MC_BOX_OVERHEAD  (24 + 16) /* nonce + Poly1305 tag */
int mc_box_precompute(uint8_t key[MC_BOX_KEY_BYTES],
                      const uint8_t their_pk[MC_BOX_PK_BYTES],
                      const uint8_t our_sk[MC_BOX_SK_BYTES]);
/* Appends nonce || box (n + MC_BOX_OVERHEAD bytes) to out, random nonce. */
void mc_box_seal(struct mc_buf *out, const uint8_t key[MC_BOX_KEY_BYTES],
                 const void *msg, size_t n);
/* Opens what mc_box_seal made, appending the plaintext; -EBADMSG. */
int mc_box_open(struct mc_buf *out, const uint8_t key[MC_BOX_KEY_BYTES],
                const void *sealed, size_t n);

#endif
