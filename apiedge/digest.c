/*
 * The digests the AWS signatures need: SHA-256, HMAC-SHA256 (SigV4, SigV2)
 * and HMAC-SHA1 (SigV2), from OpenSSL, which apiedge links for TLS anyway
 * and which alone of our libraries has SHA-1.
 */
#include "apiedge_int.h"

#include "crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

/*
 * SHA-256 and its HMAC come from libsodium: OpenSSL 3's one-shot calls look
 * the algorithm up in its provider on every call, which cost more than the
 * hashing itself at tens of thousands of signed requests a second. SHA-1
 * (SigV2's HmacSHA1 only) stays with OpenSSL.
 */
void api_sha256(uint8_t out[API_SHA256_BYTES], const void *p, size_t n)
{
	mc_sha256(out, p, n);
}

static void hmac(const EVP_MD *md, uint8_t *out, unsigned int want,
                 const void *key, size_t key_len, const void *p, size_t n)
{
	unsigned int len = 0;
	if (key_len > (size_t)INT32_MAX ||
	    !HMAC(md, key, (int)key_len, p, n, out, &len) || len != want)
		abort();
}

void api_hmac_sha256(uint8_t out[API_SHA256_BYTES], const void *key,
                     size_t key_len, const void *p, size_t n)
{
	mc_hmac_sha256(out, key, key_len, p, n);
}

void api_hmac_sha1(uint8_t out[API_SHA1_BYTES], const void *key, size_t key_len,
                   const void *p, size_t n)
{
	hmac(EVP_sha1(), out, API_SHA1_BYTES, key, key_len, p, n);
}
