#include "crypto.h"

#include "mem.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

int mc_crypto_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void mc_random(void *out, size_t n)
{
	randombytes_buf(out, n);
}

uint32_t mc_random_uniform(uint32_t upper)
{
	return randombytes_uniform(upper);
}

void mc_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

bool mc_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

void mc_hex_encode(char *out, const void *in, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

int mc_hex_decode(void *out, size_t n, const char *hex, size_t hex_len)
{
	size_t got = 0;
	const char *end = NULL;
	if (hex_len != 2 * n ||
	    sodium_hex2bin(out, n, hex, hex_len, NULL, &got, &end) != 0 ||
	    got != n || end != hex + hex_len)
		return -EINVAL;
	return 0;
}

static char *b64_encode(const void *in, size_t n, int variant)
{
	size_t cap = sodium_base64_encoded_len(n, variant);
	char *out = xmalloc(cap);
	sodium_bin2base64(out, cap, in, n, variant);
	return out;
}

static long b64_decode(void *out, size_t cap, const char *in, size_t len,
                       int variant)
{
	size_t got = 0;
	const char *end = NULL;
	if (sodium_base642bin(out, cap, in, len, NULL, &got, &end, variant) !=
	        0 ||
	    end != in + len)
		return -EINVAL;
	return (long)got;
}

char *mc_b64url_encode(const void *in, size_t n)
{
	return b64_encode(in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

long mc_b64url_decode(void *out, size_t cap, const char *in, size_t len)
{
	return b64_decode(out, cap, in, len,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

char *mc_b64_encode(const void *in, size_t n)
{
	return b64_encode(in, n, sodium_base64_VARIANT_ORIGINAL);
}

long mc_b64_decode(void *out, size_t cap, const char *in, size_t len)
{
	return b64_decode(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
}

void mc_seal(struct mc_buf *out, const uint8_t key[MC_KEY_BYTES],
             const void *ad, size_t ad_len, const void *msg, size_t n)
{
	uint8_t *dst = mc_buf_reserve(out, n + MC_SEAL_OVERHEAD);
	uint8_t *nonce = dst;
	randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(
	    dst + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, msg, n,
	    ad, ad_len, NULL, nonce, key);
	out->len += crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + clen;
}

int mc_open(struct mc_buf *out, const uint8_t key[MC_KEY_BYTES], const void *ad,
            size_t ad_len, const void *sealed, size_t n)
{
	if (n < MC_SEAL_OVERHEAD)
		return -EBADMSG;
	const uint8_t *nonce = sealed;
	const uint8_t *ct =
	    nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	size_t ct_len = n - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	uint8_t *dst = mc_buf_reserve(out, ct_len);
	unsigned long long mlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        dst, &mlen, NULL, ct, ct_len, ad, ad_len, nonce, key) != 0)
		return -EBADMSG;
	out->len += mlen;
	return 0;
}

void mc_sha256(uint8_t out[32], const void *in, size_t n)
{
	crypto_hash_sha256(out, in, n);
}

void mc_hmac_sha256(uint8_t out[32], const void *key, size_t key_len,
                    const void *in, size_t n)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, key_len);
	crypto_auth_hmacsha256_update(&st, in, n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

void mc_hash(void *out, size_t out_len, const void *in, size_t n)
{
	crypto_generichash(out, out_len, in, n, NULL, 0);
}

void mc_identity_generate(struct mc_identity *id)
{
	crypto_sign_keypair(id->sign_pk, id->sign_sk);
	crypto_box_keypair(id->box_pk, id->box_sk);
}

void mc_box_public(uint8_t pk[MC_BOX_PK_BYTES],
                   const uint8_t sk[MC_BOX_SK_BYTES])
{
	crypto_scalarmult_base(pk, sk);
}

bool mc_identity_check(const struct mc_identity *id)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t bpk[crypto_box_PUBLICKEYBYTES];
	crypto_sign_ed25519_sk_to_pk(pk, id->sign_sk);
	crypto_scalarmult_base(bpk, id->box_sk);
	return memcmp(pk, id->sign_pk, sizeof(pk)) == 0 &&
	       memcmp(bpk, id->box_pk, sizeof(bpk)) == 0;
}

int mc_box_precompute(uint8_t key[MC_BOX_KEY_BYTES],
                      const uint8_t their_pk[MC_BOX_PK_BYTES],
                      const uint8_t our_sk[MC_BOX_SK_BYTES])
{
	return crypto_box_beforenm(key, their_pk, our_sk) == 0 ? 0 : -EINVAL;
}

void mc_box_seal(struct mc_buf *out, const uint8_t key[MC_BOX_KEY_BYTES],
                 const void *msg, size_t n)
{
	uint8_t *dst = mc_buf_reserve(out, n + MC_BOX_OVERHEAD);
	randombytes_buf(dst, crypto_box_NONCEBYTES);
	crypto_box_easy_afternm(dst + crypto_box_NONCEBYTES, msg, n, dst, key);
	out->len += n + MC_BOX_OVERHEAD;
}

int mc_box_open(struct mc_buf *out, const uint8_t key[MC_BOX_KEY_BYTES],
                const void *sealed, size_t n)
{
	if (n < MC_BOX_OVERHEAD)
		return -EBADMSG;
	const uint8_t *nonce = sealed;
	size_t ct_len = n - crypto_box_NONCEBYTES;
	uint8_t *dst = mc_buf_reserve(out, ct_len - crypto_box_MACBYTES);
	if (crypto_box_open_easy_afternm(dst, nonce + crypto_box_NONCEBYTES,
	                                 ct_len, nonce, key) != 0)
		return -EBADMSG;
	out->len += ct_len - crypto_box_MACBYTES;
	return 0;
}
