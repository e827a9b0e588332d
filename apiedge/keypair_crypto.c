/*
 * The cryptography of EC2 key pairs, over OpenSSL's EVP and encoder APIs:
 * generating RSA-2048 and ED25519 keys in the formats EC2 hands out (PKCS#1
 * PEM for RSA, OpenSSH's own format for ED25519), reading the public keys
 * ImportKeyPair accepts (OpenSSH lines, RFC 4716, PEM and DER), and EC2's
 * fingerprints:
 *
 *   created RSA    SHA-1 of the DER PKCS#8 private key, colon hex
 *   imported RSA   MD5 of the DER SubjectPublicKeyInfo, colon hex
 *   ED25519        base64 SHA-256 of the OpenSSH public key blob
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "mem.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#define ED25519_BYTES 32
#define SSH_RSA       "ssh-rsa"
#define SSH_ED25519   "ssh-ed25519"
#define RSA_BITS_MIN  1024
#define RSA_BITS_MAX  16384

/* ---- SSH wire format ---------------------------------------------------- */

static void ssh_put_string(struct mc_buf *b, const void *p, size_t n)
{
	mc_buf_put_be32(b, (uint32_t)n);
	mc_buf_append(b, p, n);
}

static void ssh_put_cstr(struct mc_buf *b, const char *s)
{
	ssh_put_string(b, s, strlen(s));
}

/* An mpint: big-endian, a leading zero byte when the top bit is set. */
static void ssh_put_bn(struct mc_buf *b, const BIGNUM *bn)
{
	int n = BN_num_bytes(bn);
	uint8_t *tmp = xmalloc((size_t)n + 1);
	tmp[0] = 0;
	BN_bn2bin(bn, tmp + 1);
	bool pad = n > 0 && (tmp[1] & 0x80);
	ssh_put_string(b, pad ? tmp : tmp + 1, (size_t)n + pad);
	free(tmp);
}

static bool ssh_get_string(struct mc_cursor *c, const uint8_t **p, size_t *n)
{
	uint32_t len;
	if (!mc_cursor_get_be32(c, &len) || len > c->left)
		return false;
	*n = len;
	return mc_cursor_get_view(c, p, len);
}

static bool ssh_string_is(const uint8_t *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* ---- fingerprints ------------------------------------------------------- */

static void colon_hex(char *out, size_t size, const uint8_t *d, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 3 < size; i++) {
		if (i)
			out[o++] = ':';
		out[o++] = hex[d[i] >> 4];
		out[o++] = hex[d[i] & 15];
	}
	out[o] = 0;
}

static void digest_colon(char *out, size_t size, const EVP_MD *md,
                         const void *p, size_t n)
{
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(p, n, d, &len, md, NULL) != 1)
		abort(); /* only allocation fails here */
	colon_hex(out, size, d, len);
}

static void sha256_b64(char *out, size_t size, const void *p, size_t n)
{
	uint8_t d[API_SHA256_BYTES];
	api_sha256(d, p, n);
	char *b64 = mc_b64_encode(d, sizeof(d));
	snprintf(out, size, "%s", b64);
	free(b64);
}

/* ---- public keys -------------------------------------------------------- */

/* The OpenSSH public key blob of an RSA or ED25519 key. */
static int ssh_blob(EVP_PKEY *pkey, struct mc_buf *blob)
{
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		uint8_t pk[ED25519_BYTES];
		size_t n = sizeof(pk);
		if (EVP_PKEY_get_raw_public_key(pkey, pk, &n) != 1 ||
		    n != sizeof(pk))
			return -EINVAL;
		ssh_put_cstr(blob, SSH_ED25519);
		ssh_put_string(blob, pk, n);
		return 0;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA"))
		return -ENOTSUP;
	BIGNUM *n = NULL, *e = NULL;
	int r = -EINVAL;
	/* An exponent that is even or below 3 (DER allows 0) is no RSA key,
	 * and its OpenSSH line would not read back. */
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
	    BN_is_odd(e) && !BN_is_one(e)) {
		ssh_put_cstr(blob, SSH_RSA);
		ssh_put_bn(blob, e);
		ssh_put_bn(blob, n);
		r = 0;
	}
	BN_free(n);
	BN_free(e);
	return r;
}

/* Fills the public line and (for imports) the fingerprint of pkey. */
static int describe_public(EVP_PKEY *pkey, bool imported,
                           struct api_key_material *m)
{
	struct mc_buf blob;
	mc_buf_init(&blob);
	int r = ssh_blob(pkey, &blob);
	if (r < 0)
		goto out;
	m->type = EVP_PKEY_is_a(pkey, "RSA") ? API_KEY_RSA : API_KEY_ED25519;
	char *b64 = mc_b64_encode(blob.data, blob.len);
	m->public_line = xasprintf(
	    "%s %s", m->type == API_KEY_RSA ? SSH_RSA : SSH_ED25519, b64);
	free(b64);
	if (m->type == API_KEY_ED25519) {
		sha256_b64(m->fingerprint, sizeof(m->fingerprint), blob.data,
		           blob.len);
	} else if (imported) {
		uint8_t *der = NULL;
		int n = i2d_PUBKEY(pkey, &der);
		if (n <= 0) {
			r = -EINVAL;
			goto out;
		}
		digest_colon(m->fingerprint, sizeof(m->fingerprint), EVP_md5(),
		             der, (size_t)n);
		OPENSSL_free(der);
	}
out:
	mc_buf_free(&blob);
	return r;
}

static EVP_PKEY *rsa_from_ssh(const uint8_t *e, size_t en, const uint8_t *n,
                              size_t nn)
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn_e = BN_bin2bn(e, (int)en, NULL);
	BIGNUM *bn_n = BN_bin2bn(n, (int)nn, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (bn_e && bn_n && bld && ctx &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1 &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_e);
	BN_free(bn_n);
	return pkey;
}

/* A key from an OpenSSH public key blob; NULL when malformed. */
static EVP_PKEY *from_ssh_blob(const uint8_t *p, size_t n, int *err)
{
	struct mc_cursor c;
	const uint8_t *type, *a, *b;
	size_t tn, an, bn;
	mc_cursor_init(&c, p, n);
	*err = -EINVAL;
	if (!ssh_get_string(&c, &type, &tn))
		return NULL;
	if (ssh_string_is(type, tn, SSH_ED25519)) {
		if (!ssh_get_string(&c, &a, &an) || an != ED25519_BYTES ||
		    c.left)
			return NULL;
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a,
		                                   an);
	}
	if (!ssh_string_is(type, tn, SSH_RSA)) {
		*err = -ENOTSUP;
		return NULL;
	}
	if (!ssh_get_string(&c, &a, &an) || !ssh_get_string(&c, &b, &bn) ||
	    c.left || an == 0 || bn == 0 || an > 64 || bn > 2049)
		return NULL;
	return rsa_from_ssh(a, an, b, bn);
}

/* "ssh-rsa AAAA... comment": the blob's base64 is the second field, and
 * the blob must be of the type the first field names. */
static EVP_PKEY *from_openssh_line(const char *s, size_t n, int *err)
{
	const char *sp = memchr(s, ' ', n);
	*err = -EINVAL;
	if (!sp)
		return NULL;
	size_t tn = (size_t)(sp - s);
	const char *b64 = sp + 1;
	while (b64 < s + n && *b64 == ' ')
		b64++;
	size_t len = 0;
	while (b64 + len < s + n && b64[len] != ' ' && b64[len] != '\r' &&
	       b64[len] != '\n')
		len++;
	uint8_t *blob = xmalloc(len + 1);
	long bl = mc_b64_decode(blob, len + 1, b64, len);
	EVP_PKEY *pkey = NULL;
	if (bl > 4 && mc_load_be32(blob) == tn && (size_t)bl >= 4 + tn &&
	    memcmp(blob + 4, s, tn) == 0)
		pkey = from_ssh_blob(blob, (size_t)bl, err);
	free(blob);
	return pkey;
}

/* RFC 4716: "---- BEGIN SSH2 PUBLIC KEY ----", headers, base64 lines. */
static EVP_PKEY *from_rfc4716(const char *s, size_t n, int *err)
{
	struct mc_buf b64;
	mc_buf_init(&b64);
	const char *end = s + n, *line = s;
	bool in_header_cont = false;
	*err = -EINVAL;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
		if (len && line[len - 1] == '\r')
			len--;
		bool cont = len && line[len - 1] == '\\';
		if (len >= 8 && memcmp(line, "---- END", 8) == 0)
			break;
		if (in_header_cont || memchr(line, ':', len)) {
			in_header_cont = cont;
		} else if (len < 4 || memcmp(line, "----", 4) != 0) {
			mc_buf_append(&b64, line, len);
		}
		line = nl ? nl + 1 : end;
	}
	if (b64.len == 0) {
		mc_buf_free(&b64);
		return NULL;
	}
	uint8_t *blob = xmalloc(b64.len + 1);
	long bl =
	    mc_b64_decode(blob, b64.len + 1, (const char *)b64.data, b64.len);
	EVP_PKEY *pkey = bl > 0 ? from_ssh_blob(blob, (size_t)bl, err) : NULL;
	free(blob);
	mc_buf_free(&b64);
	return pkey;
}

/* PEM or DER: SubjectPublicKeyInfo or PKCS#1 RSAPublicKey. */
static EVP_PKEY *from_pem_or_der(const uint8_t *p, size_t n, int *err)
{
	EVP_PKEY *pkey = NULL;
	*err = -EINVAL;
	OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
	    &pkey, NULL, NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
	if (!dctx)
		return NULL;
	const unsigned char *data = p;
	size_t left = n;
	if (OSSL_DECODER_from_data(dctx, &data, &left) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	OSSL_DECODER_CTX_free(dctx);
	if (pkey && !EVP_PKEY_is_a(pkey, "RSA") &&
	    !EVP_PKEY_is_a(pkey, "ED25519")) {
		*err = -ENOTSUP;
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

static bool starts_with(const uint8_t *p, size_t n, const char *s)
{
	size_t l = strlen(s);
	return n >= l && memcmp(p, s, l) == 0;
}

static bool contains(const uint8_t *p, size_t n, const char *s)
{
	size_t l = strlen(s);
	for (size_t i = 0; i + l <= n; i++)
		if (memcmp(p + i, s, l) == 0)
			return true;
	return false;
}

int api_keypair_import(const void *material, size_t n,
                       struct api_key_material *out)
{
	memset(out, 0, sizeof(*out));
	const uint8_t *p = material;
	while (n && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
		p++;
		n--;
	}
	/* A private key is never what anyone means to upload. */
	if (n == 0 || n > API_PUBLIC_KEY_MAX || contains(p, n, "PRIVATE KEY"))
		return -EINVAL;
	int err = -EINVAL;
	EVP_PKEY *pkey;
	if (starts_with(p, n, "ssh-"))
		pkey = from_openssh_line((const char *)p, n, &err);
	else if (starts_with(p, n, "---- BEGIN SSH2 PUBLIC KEY"))
		pkey = from_rfc4716((const char *)p, n, &err);
	else if (starts_with(p, n, "ecdsa-") || starts_with(p, n, "sk-"))
		return -ENOTSUP;
	else
		pkey = from_pem_or_der(p, n, &err);
	if (!pkey)
		return err;
	int r = 0;
	if (EVP_PKEY_is_a(pkey, "RSA") &&
	    (EVP_PKEY_get_bits(pkey) < RSA_BITS_MIN ||
	     EVP_PKEY_get_bits(pkey) > RSA_BITS_MAX))
		r = -ERANGE;
	if (r == 0)
		r = describe_public(pkey, true, out);
	EVP_PKEY_free(pkey);
	if (r < 0)
		api_key_material_free(out);
	return r;
}

/* ---- generated keys ----------------------------------------------------- */

static char *bio_string(BIO *bio)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	return n > 0 ? xstrndup(data, (size_t)n) : NULL;
}

/* PKCS#1 PEM and the SHA-1 of the PKCS#8 DER, as EC2 gives them. */
static int rsa_private(EVP_PKEY *pkey, struct api_key_material *m)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
	uint8_t *der = NULL;
	int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	int r = -ENOMEM;
	if (bio && n > 0 &&
	    PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL,
	                                         NULL) == 1 &&
	    (m->private_pem = bio_string(bio)) != NULL) {
		digest_colon(m->fingerprint, sizeof(m->fingerprint), EVP_sha1(),
		             der, (size_t)n);
		r = 0;
	}
	if (der)
		OPENSSL_clear_free(der, (size_t)n);
	PKCS8_PRIV_KEY_INFO_free(p8);
	BIO_free(bio);
	return r;
}

/* Base64 wrapped at 70 columns between BEGIN and END lines. */
static char *pem_wrap(const char *label, const uint8_t *p, size_t n)
{
	char *b64 = mc_b64_encode(p, n);
	size_t len = strlen(b64);
	struct mc_buf b;
	mc_buf_init(&b);
	mc_buf_printf(&b, "-----BEGIN %s-----\n", label);
	for (size_t i = 0; i < len; i += 70) {
		mc_buf_append(&b, b64 + i, len - i < 70 ? len - i : 70);
		mc_buf_put_u8(&b, '\n');
	}
	mc_buf_printf(&b, "-----END %s-----\n", label);
	char *s = mc_buf_strdup(&b);
	mc_wipe(b.data, b.len);
	mc_wipe(b64, len);
	mc_buf_free(&b);
	free(b64);
	return s;
}

/* OpenSSH's "openssh-key-v1" format, unencrypted (PROTOCOL.key). */
static int ed25519_private(EVP_PKEY *pkey, const char *comment,
                           struct api_key_material *m)
{
	uint8_t sk[2 * ED25519_BYTES], pk[ED25519_BYTES];
	size_t skn = ED25519_BYTES, pkn = sizeof(pk);
	if (EVP_PKEY_get_raw_private_key(pkey, sk, &skn) != 1 ||
	    EVP_PKEY_get_raw_public_key(pkey, pk, &pkn) != 1 ||
	    skn != ED25519_BYTES || pkn != ED25519_BYTES)
		return -EINVAL;
	memcpy(sk + ED25519_BYTES, pk, sizeof(pk)); /* seed || public */

	struct mc_buf pub, priv, file;
	mc_buf_init(&pub);
	mc_buf_init(&priv);
	mc_buf_init(&file);
	ssh_put_cstr(&pub, SSH_ED25519);
	ssh_put_string(&pub, pk, sizeof(pk));

	uint32_t check;
	mc_random(&check, sizeof(check));
	mc_buf_put_be32(&priv, check);
	mc_buf_put_be32(&priv, check);
	ssh_put_cstr(&priv, SSH_ED25519);
	ssh_put_string(&priv, pk, sizeof(pk));
	ssh_put_string(&priv, sk, sizeof(sk));
	ssh_put_cstr(&priv, comment);
	for (uint8_t pad = 1; priv.len % 8; pad++)
		mc_buf_put_u8(&priv, pad);

	mc_buf_append(&file, "openssh-key-v1", 15); /* with its NUL */
	ssh_put_cstr(&file, "none");
	ssh_put_cstr(&file, "none");
	ssh_put_cstr(&file, "");
	mc_buf_put_be32(&file, 1);
	ssh_put_string(&file, pub.data, pub.len);
	ssh_put_string(&file, priv.data, priv.len);
	m->private_pem = pem_wrap("OPENSSH PRIVATE KEY", file.data, file.len);

	mc_wipe(sk, sizeof(sk));
	mc_wipe(priv.data, priv.len);
	mc_wipe(file.data, file.len);
	mc_buf_free(&pub);
	mc_buf_free(&priv);
	mc_buf_free(&file);
	return 0;
}

int api_keypair_generate(struct api_keypool *pool, enum api_key_type type,
                         const char *comment, struct api_key_material *out)
{
	memset(out, 0, sizeof(*out));
	EVP_PKEY *pkey = NULL;
	if (type == API_KEY_RSA) {
		pkey = api_keypool_take(pool);
		if (!pkey)
			pkey =
			    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	} else {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
	if (!pkey)
		return -ENOMEM;
	int r = describe_public(pkey, false, out);
	if (r == 0)
		r = type == API_KEY_RSA ? rsa_private(pkey, out)
		                        : ed25519_private(pkey, comment, out);
	EVP_PKEY_free(pkey);
	if (r < 0)
		api_key_material_free(out);
	return r;
}

void api_key_material_free(struct api_key_material *m)
{
	if (m->private_pem) {
		mc_wipe(m->private_pem, strlen(m->private_pem));
		free(m->private_pem);
	}
	free(m->public_line);
	memset(m, 0, sizeof(*m));
}
