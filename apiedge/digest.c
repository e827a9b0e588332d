/*
 * The digests the AWS signatures need: SHA-256, HMAC-SHA256 (SigV4, SigV2)
 * and HMAC-SHA1 (SigV2), from OpenSSL, which apiedge links for TLS anyway
 * and which alone of our libraries has SHA-1.
 */
#include "apiedge_int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

void api_sha256(uint8_t out[API_SHA256_BYTES], const void *p, size_t n)
{
	unsigned int len = 0;
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 ||
	    len != API_SHA256_BYTES)
		abort(); /* only allocation can fail here */
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
	hmac(EVP_sha256(), out, API_SHA256_BYTES, key, key_len, p, n);
}

void api_hmac_sha1(uint8_t out[API_SHA1_BYTES], const void *key, size_t key_len,
                   const void *p, size_t n)
{
	hmac(EVP_sha1(), out, API_SHA1_BYTES, key, key_len, p, n);
}
