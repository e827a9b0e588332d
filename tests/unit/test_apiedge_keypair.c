/*
 * Key pairs through a real edge with SigV4-signed requests: Create (RSA
 * and ED25519, their key material and EC2's fingerprints checked
 * independently), Import (every accepted format against fingerprints the
 * openssl and ssh-keygen tools computed), Describe (names, ids, filters,
 * tags), Delete, errors, DryRun, XML escaping and account isolation.
 */
#include "edge_client.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/*
 * A fixed RSA key and its forms. Fingerprint from
 * `ssh-keygen -e -m PKCS8 -f fx.pub | openssl pkey -pubin -outform DER |
 *  openssl md5 -c`.
 */
static const char rsa_line[] =
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQCQw68I+/A9Q5tpk3a5XTcGhjfsqFngkWnHkHHbud"
    "ITTsvse4zuWSD2CHPDySkJF5Zxbx7dXdkDjMKPnWB/Nb7xALP+VCm2FnyzCI2JewoheVvI"
    "X5kF9xyLneaQELRNun3CJOVTy6o7JsMK9K4u4/N7UGkSbpVFEKoDGRVqjj1XePtvCB4kP4"
    "NHvPKFek25BEbCYs10jYYz54SGpR8AxFFdoPzUOoWtGLZm4Gck4/cmEIdhdpcztRBqnbGI"
    "wamEk37FqscZ2MvgDBp2MbOaAdR4tN3gYsl3xVoqsbKPcQkxQhuFc85/AT9ec53Dx7E6mj"
    "BfLGiGxLVb/dWGHJ2vq9e5 fixed@test\n";
static const char rsa_md5[] = "d2:d9:d9:66:f2:6a:9f:f2:cd:a1:82:4e:15:fc:a8:95";
static const char rsa_spki_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkMOvCPvwPUObaZN2uV03\n"
    "BoY37KhZ4JFpx5Bx27nSE07L7HuM7lkg9ghzw8kpCReWcW8e3V3ZA4zCj51gfzW+\n"
    "8QCz/lQpthZ8swiNiXsKIXlbyF+ZBfcci53mkBC0Tbp9wiTlU8uqOybDCvSuLuPz\n"
    "e1BpEm6VRRCqAxkVao49V3j7bwgeJD+DR7zyhXpNuQRGwmLNdI2GM+eEhqUfAMRR\n"
    "XaD81DqFrRi2ZuBnJOP3JhCHYXaXM7UQap2xiMGphJN+xarHGdjL4AwadjGzmgHU\n"
    "eLTd4GLJd8VaKrGyj3EJMUIbhXPOfwE/XnOdw8exOpowXyxohsS1W/3Vhhydr6vX\n"
    "uQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char rsa_pkcs1_pem[] =
    "-----BEGIN RSA PUBLIC KEY-----\n"
    "MIIBCgKCAQEAkMOvCPvwPUObaZN2uV03BoY37KhZ4JFpx5Bx27nSE07L7HuM7lkg\n"
    "9ghzw8kpCReWcW8e3V3ZA4zCj51gfzW+8QCz/lQpthZ8swiNiXsKIXlbyF+ZBfcc\n"
    "i53mkBC0Tbp9wiTlU8uqOybDCvSuLuPze1BpEm6VRRCqAxkVao49V3j7bwgeJD+D\n"
    "R7zyhXpNuQRGwmLNdI2GM+eEhqUfAMRRXaD81DqFrRi2ZuBnJOP3JhCHYXaXM7UQ\n"
    "ap2xiMGphJN+xarHGdjL4AwadjGzmgHUeLTd4GLJd8VaKrGyj3EJMUIbhXPOfwE/\n"
    "XnOdw8exOpowXyxohsS1W/3Vhhydr6vXuQIDAQAB\n"
    "-----END RSA PUBLIC KEY-----\n";
static const char rsa_rfc4716[] =
    "---- BEGIN SSH2 PUBLIC KEY ----\n"
    "Comment: \"2048-bit RSA, converted by root@vm from OpenSSH\"\n"
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQCQw68I+/A9Q5tpk3a5XTcGhjfsqFngkWnHkHHbud\n"
    "ITTsvse4zuWSD2CHPDySkJF5Zxbx7dXdkDjMKPnWB/Nb7xALP+VCm2FnyzCI2JewoheVvI\n"
    "X5kF9xyLneaQELRNun3CJOVTy6o7JsMK9K4u4/N7UGkSbpVFEKoDGRVqjj1XePtvCB4kP4\n"
    "NHvPKFek25BEbCYs10jYYz54SGpR8AxFFdoPzUOoWtGLZm4Gck4/cmEIdhdpcztRBqnbGI\n"
    "wamEk37FqscZ2MvgDBp2MbOaAdR4tN3gYsl3xVoqsbKPcQkxQhuFc85/AT9ec53Dx7E6mj\n"
    "BfLGiGxLVb/dWGHJ2vq9e5\n"
    "---- END SSH2 PUBLIC KEY ----\n";
/* The SPKI DER, base64 (`openssl pkey -pubin -outform DER | base64`). */
static const char rsa_der_b64[] =
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkMOvCPvwPUObaZN2uV03BoY37K"
    "hZ4JFpx5Bx27nSE07L7HuM7lkg9ghzw8kpCReWcW8e3V3ZA4zCj51gfzW+8QCz/lQpthZ8"
    "swiNiXsKIXlbyF+ZBfcci53mkBC0Tbp9wiTlU8uqOybDCvSuLuPze1BpEm6VRRCqAxkVao"
    "49V3j7bwgeJD+DR7zyhXpNuQRGwmLNdI2GM+eEhqUfAMRRXaD81DqFrRi2ZuBnJOP3JhCH"
    "YXaXM7UQap2xiMGphJN+xarHGdjL4AwadjGzmgHUeLTd4GLJd8VaKrGyj3EJMUIbhXPOfw"
    "E/XnOdw8exOpowXyxohsS1W/3Vhhydr6vXuQIDAQAB";

/* A fixed ED25519 key; `ssh-keygen -lf` gives SHA256:ZZHq...4SI. */
static const char ed_line[] = "ssh-ed25519 "
                              "AAAAC3NzaC1lZDI1NTE5AAAAIOkB+IgJZakyKBUcX6/"
                              "Lsux0z8QzjLY+RhAyzpyCNoFX fixed@test";
static const char ed_sha256[] = "ZZHqY9x6Tt229gfDwl9xiAu3bsomBbc03OGRKoNj4SI=";

static const char ecdsa_line[] =
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAA"
    "BBBDWIypVFcjlmvb3LVtxdWZTeW6y45es32ksMNJV47B9L6L+/pEQK/OxgNrgGDQiabW3l"
    "WvMBW1njAyK4Oly/bJs= c";

/* PublicKeyMaterial as SDKs send it: base64 of the file. */
static char *b64(const char *s)
{
	return mc_b64_encode(s, strlen(s));
}

static int import(const char *name, const char *material, char **body)
{
	char *m = b64(material);
	int st = ec_do(body, "ImportKeyPair", "KeyName", name,
	               "PublicKeyMaterial", m, NULL);
	free(m);
	return st;
}

static void delete_name(const char *name)
{
	char *body;
	int st = ec_do(&body, "DeleteKeyPair", "KeyName", name, NULL);
	CHECK_EQ_U64(st, 200);
	free(body);
}

/* SHA-1 of the PKCS#8 DER of a PEM private key, colon hex. */
static void pkcs8_sha1(const char *pem, char *out, size_t size)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	PKCS8_PRIV_KEY_INFO *p8 = pkey ? EVP_PKEY2PKCS8(pkey) : NULL;
	uint8_t *der = NULL, md[20];
	int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : 0;
	unsigned int mdn = 0;
	out[0] = 0;
	if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdn, EVP_sha1(), NULL))
		for (unsigned i = 0; i < mdn && 3 * i + 3 <= size; i++)
			snprintf(out + 3 * i, size - 3 * i, "%02x%s", md[i],
			         i + 1 < mdn ? ":" : "");
	CHECK(pkey != NULL);
	CHECK_EQ_U64(EVP_PKEY_get_bits(pkey), 2048);
	OPENSSL_free(der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
}

static void test_create_rsa(void)
{
	char *body, name[64], fp[128], id[64], mat[4096], want[64];
	int st = ec_do(&body, "CreateKeyPair", "KeyName", "rsa-1",
	               "TagSpecification.1.ResourceType", "key-pair",
	               "TagSpecification.1.Tag.1.Key", "Name",
	               "TagSpecification.1.Tag.1.Value", "web <&>", NULL);
	ec_check_ok(st, body, "CreateKeyPair");
	CHECK(ec_text(body, "keyName", name, sizeof(name)));
	CHECK_STR(name, "rsa-1");
	CHECK(ec_text(body, "keyFingerprint", fp, sizeof(fp)));
	CHECK_EQ_U64(strlen(fp), 59);
	CHECK(ec_text(body, "keyPairId", id, sizeof(id)));
	CHECK(api_res_id_valid("key", id) && strlen(id) == 21);
	CHECK(ec_text(body, "keyMaterial", mat, sizeof(mat)));
	CHECK(strncmp(mat, "-----BEGIN RSA PRIVATE KEY-----\n", 32) == 0);
	CHECK(strstr(mat, "-----END RSA PRIVATE KEY-----") != NULL);
	pkcs8_sha1(mat, want, sizeof(want));
	CHECK_STR(fp, want);
	CHECK(strstr(body, "<tagSet><item><key>Name</key><value>web &lt;&amp;"
	                   "&gt;</value></item></tagSet>") != NULL);
	free(body);

	st = ec_do(&body, "DescribeKeyPairs", "KeyName.1", "rsa-1", NULL);
	ec_check_ok(st, body, "DescribeKeyPairs");
	char item[1024];
	snprintf(item, sizeof(item),
	         "<keySet><item><keyPairId>%s</keyPairId><keyType>rsa"
	         "</keyType><tagSet><item><key>Name</key><value>web &lt;&amp;"
	         "&gt;</value></item></tagSet><createTime>",
	         id);
	CHECK(strstr(body, item) != NULL);
	snprintf(item, sizeof(item),
	         "Z</createTime><keyName>rsa-1</keyName><keyFingerprint>%s"
	         "</keyFingerprint></item></keySet>",
	         fp);
	CHECK(strstr(body, item) != NULL);
	CHECK(strstr(body, "<publicKey>") == NULL);
	free(body);

	st = ec_do(&body, "CreateKeyPair", "KeyName", "rsa-1", NULL);
	ec_check_error(st, body, 400, "InvalidKeyPair.Duplicate");
	free(body);
	delete_name("rsa-1");
}

/* Reads one SSH string from an openssh-key-v1 buffer. */
static bool take(struct mc_cursor *c, const uint8_t **p, size_t *n)
{
	uint32_t len;
	if (!mc_cursor_get_be32(c, &len))
		return false;
	*n = len;
	return mc_cursor_get_view(c, p, len);
}

/* Checks an OpenSSH private key file: its structure, that the secret
 * derives its public key, and returns the public blob's line. */
static void check_openssh(const char *pem, const char *name, char *line,
                          size_t size)
{
	const char *b = strchr(pem, '\n'), *e = strstr(pem, "-----END");
	CHECK(strncmp(pem, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0);
	CHECK(b && e && e > b);
	line[0] = 0;
	if (!b || !e || e < b)
		return;
	char *text = xmalloc((size_t)(e - b) + 1);
	size_t t = 0;
	for (const char *p = b; p < e; p++)
		if (*p != '\n')
			text[t++] = *p;
	uint8_t raw[2048];
	long n = mc_b64_decode(raw, sizeof(raw), text, t);
	free(text);
	CHECK(n > 15 && memcmp(raw, "openssh-key-v1", 15) == 0);
	struct mc_cursor c;
	mc_cursor_init(&c, raw + 15, (size_t)n - 15);
	const uint8_t *p, *pub, *priv;
	size_t pn, pubn, privn;
	uint32_t nkeys = 0;
	CHECK(take(&c, &p, &pn) && pn == 4 && memcmp(p, "none", 4) == 0);
	CHECK(take(&c, &p, &pn) && pn == 4 && memcmp(p, "none", 4) == 0);
	CHECK(take(&c, &p, &pn) && pn == 0);
	CHECK(mc_cursor_get_be32(&c, &nkeys) && nkeys == 1);
	CHECK(take(&c, &pub, &pubn) && pubn == 51);
	CHECK(take(&c, &priv, &privn) && privn % 8 == 0 && c.left == 0);
	struct mc_cursor s;
	uint32_t c1 = 0, c2 = 1;
	const uint8_t *pk, *sk;
	size_t pkn = 0, skn = 0;
	mc_cursor_init(&s, priv, privn);
	CHECK(mc_cursor_get_be32(&s, &c1) && mc_cursor_get_be32(&s, &c2));
	CHECK(c1 == c2);
	CHECK(take(&s, &p, &pn) && pn == 11 &&
	      memcmp(p, "ssh-ed25519", 11) == 0);
	CHECK(take(&s, &pk, &pkn) && pkn == 32);
	CHECK(take(&s, &sk, &skn) && skn == 64);
	CHECK(take(&s, &p, &pn) && pn == strlen(name) &&
	      memcmp(p, name, pn) == 0);
	if (pkn != 32 || skn != 64 || pubn != 51)
		return;
	CHECK(memcmp(pub + 19, pk, 32) == 0 && memcmp(sk + 32, pk, 32) == 0);
	EVP_PKEY *key =
	    EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
	uint8_t derived[32];
	size_t dn = sizeof(derived);
	CHECK(key && EVP_PKEY_get_raw_public_key(key, derived, &dn) == 1);
	CHECK(memcmp(derived, pk, 32) == 0);
	EVP_PKEY_free(key);
	char *pb = mc_b64_encode(pub, pubn);
	snprintf(line, size, "ssh-ed25519 %s", pb);
	free(pb);
	uint8_t h[32];
	api_sha256(h, pub, pubn);
	char *hb = mc_b64_encode(h, 32);
	snprintf(line + strlen(line), size - strlen(line), "\n%s", hb);
	free(hb);
}

static void test_create_ed25519(void)
{
	char *body, fp[128], mat[4096], line[512], pubkey[512], id[64];
	int st = ec_do(&body, "CreateKeyPair", "KeyName", "ed-1", "KeyType",
	               "ed25519", "KeyFormat", "pem", NULL);
	ec_check_ok(st, body, "CreateKeyPair");
	CHECK(ec_text(body, "keyFingerprint", fp, sizeof(fp)));
	CHECK(ec_text(body, "keyMaterial", mat, sizeof(mat)));
	CHECK(ec_text(body, "keyPairId", id, sizeof(id)));
	CHECK(strstr(body, "<tagSet></tagSet>") != NULL);
	free(body);
	check_openssh(mat, "ed-1", line, sizeof(line));
	char *nl = strchr(line, '\n');
	CHECK(nl != NULL);
	if (!nl)
		return;
	*nl = 0;
	CHECK_STR(nl + 1, fp); /* base64 SHA-256 of the blob, padded */
	CHECK_EQ_U64(strlen(fp), 44);

	st = ec_do(&body, "DescribeKeyPairs", "KeyPairId.1", id,
	           "IncludePublicKey", "true", NULL);
	ec_check_ok(st, body, "DescribeKeyPairs");
	CHECK(ec_text(body, "publicKey", pubkey, sizeof(pubkey)));
	strcat(line, " ed-1"); /* EC2 shows the name as the comment */
	CHECK_STR(pubkey, line);
	CHECK(strstr(body, "<keyType>ed25519</keyType>") != NULL);
	free(body);

	st = ec_do(&body, "CreateKeyPair", "KeyName", "x", "KeyType", "dsa",
	           NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "CreateKeyPair", "KeyName", "x", "KeyFormat", "ppk",
	           NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	delete_name("ed-1");
}

static void test_import(void)
{
	static const struct {
		const char *name, *material, *fp, *type;
	} ok[] = {
	    {"imp-line", rsa_line, rsa_md5, "rsa"},
	    {"imp-spki", rsa_spki_pem, rsa_md5, "rsa"},
	    {"imp-pkcs1", rsa_pkcs1_pem, rsa_md5, "rsa"},
	    {"imp-rfc4716", rsa_rfc4716, rsa_md5, "rsa"},
	    {"imp-ed", ed_line, ed_sha256, "ed25519"},
	};
	char *body, fp[128], want[128];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int st = import(ok[i].name, ok[i].material, &body);
		ec_check_ok(st, body, "ImportKeyPair");
		CHECK(ec_text(body, "keyFingerprint", fp, sizeof(fp)));
		CHECK_STR(fp, ok[i].fp);
		CHECK(strstr(body, "<keyMaterial>") == NULL);
		free(body);
		st = ec_do(&body, "DescribeKeyPairs", "Filter.1.Name",
		           "key-type", "Filter.1.Value.1", ok[i].type,
		           "KeyName.1", ok[i].name, "IncludePublicKey", "true",
		           NULL);
		snprintf(want, sizeof(want), "<keyFingerprint>%s<", ok[i].fp);
		CHECK(strstr(body, want) != NULL);
		free(body);
	}
	/* DER sent as base64 of its bytes (the SDK's blob encoding). */
	int st = ec_do(&body, "ImportKeyPair", "KeyName", "imp-der",
	               "PublicKeyMaterial", rsa_der_b64, NULL);
	ec_check_ok(st, body, "ImportKeyPair");
	CHECK(ec_text(body, "keyFingerprint", fp, sizeof(fp)));
	CHECK_STR(fp, rsa_md5);
	free(body);
	/* Some clients send the OpenSSH line itself, not base64. */
	st = ec_do(&body, "ImportKeyPair", "KeyName", "imp-raw",
	           "PublicKeyMaterial", rsa_line, NULL);
	ec_check_ok(st, body, "ImportKeyPair");
	CHECK(ec_text(body, "keyFingerprint", fp, sizeof(fp)));
	CHECK_STR(fp, rsa_md5);
	free(body);
	/* The metadata service's line: type, blob and the key's name. */
	st = ec_do(&body, "DescribeKeyPairs", "KeyName.0", "imp-spki",
	           "IncludePublicKey", "true", NULL);
	char pub[1024], line[1024];
	snprintf(line, sizeof(line), "%.*s imp-spki",
	         (int)(strstr(rsa_line, " fixed@") - rsa_line), rsa_line);
	CHECK(ec_text(body, "publicKey", pub, sizeof(pub)));
	CHECK_STR(pub, line);
	free(body);

	const char *bad[] = {
	    ecdsa_line, "ssh-rsa AAAAnotakey", "hello",
	    "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n"
	    "-----END RSA PRIVATE KEY-----\n",
	    /* a type that contradicts the blob's */
	    "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQCQw68I"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = import("imp-bad", bad[i], &body);
		ec_check_error(st, body, 400, "InvalidKey.Format");
		free(body);
	}
	st = ec_do(&body, "ImportKeyPair", "KeyName", "imp-none", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	st = import("imp-line", rsa_line, &body);
	ec_check_error(st, body, 400, "InvalidKeyPair.Duplicate");
	free(body);
	const char *names[] = {"imp-line",    "imp-spki", "imp-pkcs1",
	                       "imp-rfc4716", "imp-ed",   "imp-der",
	                       "imp-raw"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		delete_name(names[i]);
}

static void test_names(void)
{
	char *body, name[256];
	/* Markup in a name comes back escaped; spaces and '%' are fine. */
	const char *odd = "a<b>&\"c' d%e";
	int st = import(odd, ed_line, &body);
	ec_check_ok(st, body, "ImportKeyPair");
	CHECK(strstr(body, "<keyName>a&lt;b&gt;&amp;&quot;c&apos; d%e"
	                   "</keyName>") != NULL);
	free(body);
	st = ec_do(&body, "DescribeKeyPairs", "KeyName.1", odd, NULL);
	CHECK(ec_text(body, "keyName", name, sizeof(name)));
	CHECK_STR(name, "a&lt;b&gt;&amp;&quot;c&apos; d%e");
	free(body);
	delete_name(odd);

	/* mallee's limit: 115 characters fit a record id, 116 do not. */
	memset(name, 'k', 115);
	name[115] = 0;
	st = import(name, ed_line, &body);
	ec_check_ok(st, body, "ImportKeyPair");
	free(body);
	delete_name(name);
	strcat(name, "k");
	st = import(name, ed_line, &body);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	CHECK(strstr(body, "115 characters") != NULL);
	free(body);
	st = ec_do(&body, "CreateKeyPair", "KeyName", "", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	st = ec_do(&body, "CreateKeyPair", "KeyName", "tab\there", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
}

static void test_describe_delete(void)
{
	char *body, id1[64], id2[64];
	int st = import("alpha", rsa_line, &body);
	CHECK(ec_text(body, "keyPairId", id1, sizeof(id1)));
	free(body);
	st = ec_do(&body, "ImportKeyPair", "KeyName", "beta",
	           "PublicKeyMaterial", ed_line,
	           "TagSpecification.1.ResourceType", "key-pair",
	           "TagSpecification.1.Tag.1.Key", "env",
	           "TagSpecification.1.Tag.1.Value", "prod",
	           /* tags for another resource type are not this one's */
	           "TagSpecification.2.ResourceType", "instance",
	           "TagSpecification.2.Tag.1.Key", "other",
	           "TagSpecification.2.Tag.1.Value", "x", NULL);
	ec_check_ok(st, body, "ImportKeyPair");
	CHECK(strstr(body, "<tagSet><item><key>env</key><value>prod</value>"
	                   "</item></tagSet>") != NULL);
	CHECK(ec_text(body, "keyPairId", id2, sizeof(id2)));
	free(body);

	st = ec_do(&body, "DescribeKeyPairs", NULL);
	ec_check_ok(st, body, "DescribeKeyPairs");
	CHECK_EQ_U64(ec_count(body, "<keyName>"), 2);
	CHECK(strstr(body, "<keyName>alpha</keyName>") <
	      strstr(body, "<keyName>beta</keyName>"));
	free(body);
	static const struct {
		const char *name, *value, *want;
	} filters[] = {
	    {"key-name", "al*", "alpha"},      {"key-pair-id", NULL, "beta"},
	    {"fingerprint", rsa_md5, "alpha"}, {"key-type", "ed25519", "beta"},
	    {"tag:env", "prod", "beta"},       {"tag-key", "env", "beta"},
	    {"tag-value", "pr?d", "beta"},     {"tag:env", "dev", NULL},
	};
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		st = ec_do(&body, "DescribeKeyPairs", "Filter.1.Name",
		           filters[i].name, "Filter.1.Value.1",
		           filters[i].value ? filters[i].value : id2, NULL);
		ec_check_ok(st, body, "DescribeKeyPairs");
		CHECK_EQ_U64(ec_count(body, "<keyName>"), filters[i].want != 0);
		if (filters[i].want) {
			char want[64];
			snprintf(want, sizeof(want), "<keyName>%s</keyName>",
			         filters[i].want);
			CHECK(strstr(body, want) != NULL);
		}
		free(body);
	}
	st = ec_do(&body, "DescribeKeyPairs", "Filter.1.Name", "color",
	           "Filter.1.Value.1", "x", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "DescribeKeyPairs", "KeyName.1", "alpha", "KeyName.2",
	           "gamma", NULL);
	ec_check_error(st, body, 400, "InvalidKeyPair.NotFound");
	CHECK(strstr(body, "&apos;gamma&apos;") != NULL);
	free(body);
	/* An un-indexed name, as some libraries send it. */
	st = ec_do(&body, "DescribeKeyPairs", "KeyName", "beta", NULL);
	ec_check_ok(st, body, "DescribeKeyPairs");
	CHECK_EQ_U64(ec_count(body, "<keyName>beta</keyName>"), 1);
	CHECK_EQ_U64(ec_count(body, "<keyName>"), 1);
	free(body);
	st = ec_do(&body, "DescribeKeyPairs", "KeyPairId.1",
	           "key-0123456789abcdef0", NULL);
	ec_check_error(st, body, 400, "InvalidKeyPair.NotFound");
	free(body);

	/* By id; then by name; a missing one succeeds as in EC2. */
	st = ec_do(&body, "DeleteKeyPair", "KeyPairId", id2, NULL);
	ec_check_ok(st, body, "DeleteKeyPair");
	char want[128];
	snprintf(want, sizeof(want),
	         "<return>true</return><keyPairId>%s</keyPairId>"
	         "</DeleteKeyPairResponse>",
	         id2);
	CHECK(strstr(body, want) != NULL);
	free(body);
	st = ec_do(&body, "DeleteKeyPair", "KeyName", "alpha", NULL);
	ec_check_ok(st, body, "DeleteKeyPair");
	free(body);
	st = ec_do(&body, "DeleteKeyPair", "KeyName", "alpha", NULL);
	ec_check_ok(st, body, "DeleteKeyPair");
	CHECK(strstr(body, "</requestId><return>true</return>"
	                   "</DeleteKeyPairResponse>") != NULL);
	free(body);
	st = ec_do(&body, "DeleteKeyPair", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	st = ec_do(&body, "DescribeKeyPairs", NULL);
	CHECK(strstr(body, "<keySet></keySet>") != NULL);
	free(body);
	/* The key pairs' tags went with them. */
	size_t tags = 0;
	for (size_t i = 0; i < ec_fake.n; i++)
		tags += strcmp(ec_fake.recs[i].kind, API_KIND_TAG) == 0;
	CHECK_EQ_U64(tags, 0);
}

static void test_dry_run(void)
{
	char *body;
	unsigned puts = ec_fake.puts;
	int st = ec_do(&body, "CreateKeyPair", "KeyName", "dry", "DryRun",
	               "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = import("dry", ed_line, &body);
	CHECK_EQ_U64(st, 200);
	free(body);
	CHECK_EQ_U64(ec_fake.puts, puts + 1);
	char *m = b64(ed_line);
	st = ec_do(&body, "ImportKeyPair", "KeyName", "dry2",
	           "PublicKeyMaterial", m, "DryRun", "true", NULL);
	free(m);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = ec_do(&body, "DescribeKeyPairs", "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = ec_do(&body, "DeleteKeyPair", "KeyName", "dry", "DryRun", "true",
	           NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	CHECK_EQ_U64(ec_fake.puts, puts + 1);
	delete_name("dry");
}

static void test_isolation(void)
{
	char *body;
	int st = import("mine", rsa_line, &body);
	CHECK_EQ_U64(st, 200);
	char id[64];
	CHECK(ec_text(body, "keyPairId", id, sizeof(id)));
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeKeyPairs", NULL);
	ec_check_ok(st, body, "DescribeKeyPairs");
	CHECK(strstr(body, "<keySet></keySet>") != NULL);
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeKeyPairs", "KeyName.1",
	              "mine", NULL);
	ec_check_error(st, body, 400, "InvalidKeyPair.NotFound");
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeKeyPairs", "KeyPairId.1",
	              id, NULL);
	ec_check_error(st, body, 400, "InvalidKeyPair.NotFound");
	free(body);
	/* B's deletes succeed (nothing of B's by that name) and touch
	 * nothing of A's. */
	st = ec_do_as(KEY_B, SECRET_B, &body, "DeleteKeyPair", "KeyName",
	              "mine", NULL);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<keyPairId>") == NULL);
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DeleteKeyPair", "KeyPairId", id,
	              NULL);
	CHECK_EQ_U64(st, 200);
	free(body);
	st = ec_do(&body, "DescribeKeyPairs", "KeyName.1", "mine", NULL);
	ec_check_ok(st, body, "DescribeKeyPairs");
	CHECK(strstr(body, id) != NULL);
	free(body);
	/* Names are per account. */
	char *m = b64(ed_line);
	st = ec_do_as(KEY_B, SECRET_B, &body, "ImportKeyPair", "KeyName",
	              "mine", "PublicKeyMaterial", m, NULL);
	free(m);
	ec_check_ok(st, body, "ImportKeyPair");
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeKeyPairs", NULL);
	CHECK_EQ_U64(ec_count(body, "<keyName>mine</keyName>"), 1);
	CHECK(strstr(body, "<keyType>ed25519</keyType>") != NULL);
	free(body);
	delete_name("mine");
	st = ec_do_as(KEY_B, SECRET_B, &body, "DeleteKeyPair", "KeyName",
	              "mine", NULL);
	free(body);
}

/* The crypto directly: bounds of what api_keypair_import takes. */
static void test_import_direct(void)
{
	struct api_key_material m;
	CHECK(api_keypair_import("", 0, &m) == -EINVAL);
	CHECK(api_keypair_import(ecdsa_line, strlen(ecdsa_line), &m) ==
	      -ENOTSUP);
	CHECK(api_keypair_import(rsa_line, strlen(rsa_line), &m) == 0);
	CHECK_STR(m.fingerprint, rsa_md5);
	CHECK(m.type == API_KEY_RSA && m.private_pem == NULL);
	CHECK(strncmp(m.public_line, rsa_line, strlen(m.public_line)) == 0);
	api_key_material_free(&m);
	/* A 512-bit RSA key is refused. */
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	uint8_t *der = NULL;
	int n = i2d_PUBKEY(small, &der);
	CHECK(n > 0 && api_keypair_import(der, (size_t)n, &m) == -ERANGE);
	OPENSSL_free(der);
	EVP_PKEY_free(small);
	/* Truncations of a valid line never crash and never succeed but
	 * for the comment. */
	for (size_t len = 1; len < strlen(rsa_line) - 20; len += 7) {
		int r = api_keypair_import(rsa_line, len, &m);
		CHECK(r < 0);
	}
}

int main(void)
{
	ec_start("us-east-1");
	RUN(test_create_rsa);
	RUN(test_create_ed25519);
	RUN(test_import);
	RUN(test_names);
	RUN(test_describe_delete);
	RUN(test_dry_run);
	RUN(test_isolation);
	RUN(test_import_direct);
	ec_stop();
	return check_summary();
}
