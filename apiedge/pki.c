/*
 * The cloud's own certificate authority: a CA made at `mallee init`, and
 * the certificates each edge issues itself from it for the addresses it
 * serves. EC P-256 keys, SHA-256 signatures: what every EC2 client's TLS
 * stack accepts.
 */
#include "apiedge.h"
#include "buf.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#define CA_DAYS   3650
#define LEAF_DAYS 825 /* the longest most TLS clients accept */

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

static bool pem_out(struct mc_buf *out, X509 *cert, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	bool ok = bio && (cert ? PEM_write_bio_X509(bio, cert)
	                       : PEM_write_bio_PrivateKey(bio, key, NULL, NULL,
	                                                  0, NULL, NULL));
	if (ok) {
		char *data;
		long n = BIO_get_mem_data(bio, &data);
		mc_buf_append(out, data, (size_t)n);
	}
	BIO_free(bio);
	return ok;
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	bool ok = ext && X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for key with subject cn, valid from now for days. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, int days)
{
	X509 *cert = X509_new();
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	if (!cert || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* a positive serial */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) ||
	    !X509_set_version(cert, 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert),
	                     (long)days * 24 * 3600) ||
	    !X509_set_pubkey(cert, key))
		goto fail;
	X509_NAME *name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                                (const unsigned char *)"mallee", -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                (const unsigned char *)cn, -1, -1, 0))
		goto fail;
	BN_free(bn);
	return cert;
fail:
	BN_free(bn);
	X509_free(cert);
	return NULL;
}

int api_pki_ca_create(const char *cn, struct mc_buf *cert_pem,
                      struct mc_buf *key_pem)
{
	EVP_PKEY *key = new_key();
	X509 *cert = key ? new_cert(key, cn, CA_DAYS) : NULL;
	int r = -EIO;
	if (cert && X509_set_issuer_name(cert, X509_get_subject_name(cert)) &&
	    add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") &&
	    add_ext(cert, cert, NID_key_usage,
	            "critical,keyCertSign,cRLSign") &&
	    add_ext(cert, cert, NID_subject_key_identifier, "hash") &&
	    X509_sign(cert, key, EVP_sha256()) &&
	    pem_out(cert_pem, cert, NULL) && pem_out(key_pem, NULL, key))
		r = 0;
	if (r)
		ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

static X509 *read_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *c = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return c;
}

static EVP_PKEY *read_key(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k =
	    bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return k;
}

/* "IP:a,IP:b,DNS:c": what subjectAltName wants. */
static void san_list(char *out, size_t size, const char *const *names, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char bin[16];
		bool ip = inet_pton(AF_INET, names[i], bin) == 1 ||
		          inet_pton(AF_INET6, names[i], bin) == 1;
		int w = snprintf(out + len, size - len, "%s%s:%s",
		                 len ? "," : "", ip ? "IP" : "DNS", names[i]);
		if (w < 0 || (size_t)w >= size - len)
			break;
		len += (size_t)w;
	}
}

int api_pki_issue(const char *ca_cert_pem, const char *ca_key_pem,
                  const char *cn, const char *const *names, size_t n_names,
                  struct mc_buf *cert_pem, struct mc_buf *key_pem)
{
	X509 *ca = read_cert(ca_cert_pem);
	EVP_PKEY *ca_key = read_key(ca_key_pem);
	EVP_PKEY *key = ca && ca_key ? new_key() : NULL;
	X509 *cert = key ? new_cert(key, cn, LEAF_DAYS) : NULL;
	char sans[2048];
	int r = -EIO;
	san_list(sans, sizeof(sans), names, n_names);
	if (cert && X509_set_issuer_name(cert, X509_get_subject_name(ca)) &&
	    add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") &&
	    add_ext(cert, ca, NID_key_usage,
	            "critical,digitalSignature,keyEncipherment") &&
	    add_ext(cert, ca, NID_ext_key_usage, "serverAuth") &&
	    add_ext(cert, ca, NID_authority_key_identifier, "keyid") &&
	    (!sans[0] || add_ext(cert, ca, NID_subject_alt_name, sans)) &&
	    X509_sign(cert, ca_key, EVP_sha256()) &&
	    pem_out(cert_pem, cert, NULL) && pem_out(key_pem, NULL, key))
		r = 0;
	if (r) {
		unsigned long e = ERR_get_error();
		char msg[256] = "bad CA";
		if (e)
			ERR_error_string_n(e, msg, sizeof(msg));
		mc_error("apiedge", "issuing the edge certificate: %s", msg);
		ERR_clear_error();
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return r;
}
