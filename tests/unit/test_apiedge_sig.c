/*
 * SigV4 against AWS's published aws-sig-v4-test-suite (the .req requests
 * with their expected canonical requests and Authorization headers), AWS's
 * IAM examples (header and presigned), and SigV2 against the example of
 * AWS's "Signature Version 2 signing process"; then the failures EC2 names.
 */
#include "check.h"

#include "apiedge_int.h"
#include "crypto.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SUITE_KEY    "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define V2_KEY       "AKIAIOSFODNN7EXAMPLE"
#define V2_SECRET    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA256                                                           \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SUITE_AUTH                                                             \
	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"  \
	"aws4_request, "

static int lookups;

static int fake_lookup(void *arg, const char *id, struct api_key_info *out)
{
	(void)arg;
	lookups++;
	const char *secret;
	if (strcmp(id, SUITE_KEY) == 0)
		secret = SUITE_SECRET;
	else if (strcmp(id, V2_KEY) == 0)
		secret = V2_SECRET;
	else if (strcmp(id, "BROKEN") == 0)
		return -EIO;
	else
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	snprintf(out->account_id, sizeof(out->account_id), "123456789012");
	snprintf(out->secret, sizeof(out->secret), "%s", secret);
	return 0;
}

static const struct api_cloud cloud = {.lookup_key = fake_lookup};

/* A request parsed from the suite's .req text ("\n" line ends). */
struct raw_req {
	char *text;
	struct api_http_header headers[16];
	struct api_http_request req;
};

static void raw_parse(struct raw_req *r, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->text = xstrdup(text);
	char *body = strstr(r->text, "\n\n");
	if (body) {
		*body = 0;
		body += 2;
	}
	char *line = r->text, *next = strchr(line, '\n');
	if (next)
		*next++ = 0;
	/* METHOD target HTTP/1.1 */
	char *sp = strchr(line, ' ');
	*sp = 0;
	r->req.method = line;
	char *target = sp + 1;
	*strrchr(target, ' ') = 0;
	r->req.target = target;
	char *q = strchr(target, '?');
	static char paths[16][256];
	static int slot;
	char *path = paths[slot++ % 16];
	snprintf(path, 256, "%.*s", q ? (int)(q - target) : (int)strlen(target),
	         target);
	r->req.path = path;
	r->req.query = q ? q + 1 : "";
	size_t n = 0;
	for (line = next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *colon = strchr(line, ':');
		*colon = 0;
		char *v = colon + 1;
		while (*v == ' ')
			v++;
		r->headers[n].name = line;
		r->headers[n].value = v;
		n++;
	}
	r->req.headers = r->headers;
	r->req.n_headers = n;
	r->req.body = (const uint8_t *)(body ? body : "");
	r->req.body_len = body ? strlen(body) : 0;
}

/* Adds an Authorization header (the arrays have room). */
static void raw_sign(struct raw_req *r, const char *authz)
{
	r->headers[r->req.n_headers].name = "Authorization";
	r->headers[r->req.n_headers].value = authz;
	r->req.n_headers++;
}

static time_t suite_now(void)
{
	time_t t;
	api_parse_amz_date("20150830T123600Z", &t);
	return t;
}

static int verify(const struct raw_req *r, time_t now, struct api_error *err)
{
	struct api_auth auth;
	memset(err, 0, sizeof(*err));
	return api_sigv4_verify(&r->req, &cloud, now, &auth, err);
}

struct vector {
	const char *name, *req, *creq, *authz;
};

/* From the suite: request, canonical request, Authorization. */
static const struct vector suite[] = {
    {"get-vanilla",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA256,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key-case",
     "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\n"
     "X-Amz-Date:20150830T123600Z",
     "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
     "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA256,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-header-value-trim",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\n"
     "My-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
     "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
     "host;my-header1;my-header2;x-amz-date\n" EMPTY_SHA256,
     SUITE_AUTH
     "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
     "Signature="
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-header-key-duplicate",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\n"
     "My-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
     "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA256,
     SUITE_AUTH
     "SignedHeaders=host;my-header1;x-amz-date, Signature="
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"post-vanilla",
     "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
     "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA256,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-x-www-form-urlencoded",
     "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\n"
     "Host:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
     "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "content-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     SUITE_AUTH
     "SignedHeaders=content-type;host;x-amz-date, Signature="
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-x-www-form-urlencoded-parameters",
     "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; "
     "charset=utf8\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z"
     "\n\nParam1=value1",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; "
     "charset=utf8\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
     "\n\ncontent-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     SUITE_AUTH
     "SignedHeaders=content-type;host;x-amz-date, Signature="
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
};

/* More of the suite, with the Authorization only. */
static const struct vector suite_authz_only[] = {
    {"get-header-value-multiline",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\n"
     "My-Header1:value1,value2,value3\nX-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;my-header1;x-amz-date, Signature="
     "ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790"},
    {"get-header-value-order",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\n"
     "My-Header1:value4,value1,value3,value2\nX-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;my-header1;x-amz-date, Signature="
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"get-unreserved",
     "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz "
     "HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-utf8",
     "GET /\xe1\x88\xb4 HTTP/1.1\nHost:example.amazonaws.com\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-vanilla-empty-query-key",
     "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
    {"get-vanilla-query-unreserved",
     "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
     "=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz "
     "HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query",
     "GET /?%E1%88%B4=bar HTTP/1.1\nHost:example.amazonaws.com\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"post-header-key-sort",
     "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;my-header1;x-amz-date, Signature="
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
    {"post-header-value-case",
     "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;my-header1;x-amz-date, Signature="
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-vanilla-query",
     "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-vanilla-query-nonunreserved",
     "POST /?%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D"
     " HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e"},
    {"post-vanilla-query-space",
     "POST /?p HTTP/1.1\nHost:example.amazonaws.com\n"
     "X-Amz-Date:20150830T123600Z",
     NULL,
     SUITE_AUTH
     "SignedHeaders=host;x-amz-date, Signature="
     "e71688addb58a26418614085fb730ba3faa623b461c17f48f2fbdb9361b94a9b"},
};

static void check_vector(const struct vector *v)
{
	struct raw_req r;
	raw_parse(&r, v->req);
	if (v->creq) {
		struct mc_buf b;
		mc_buf_init(&b);
		const char *sh = strstr(v->authz, "SignedHeaders=") + 14;
		char *signed_headers = xstrndup(sh, strcspn(sh, ","));
		CHECK(api_sigv4_canonical_request(&r.req, signed_headers, false,
		                                  &b) == 0);
		mc_buf_put_u8(&b, 0);
		if (strcmp((char *)b.data, v->creq) != 0)
			fprintf(stderr, "%s: canonical request\n%s\n", v->name,
			        (char *)b.data);
		CHECK_STR((char *)b.data, v->creq);
		free(signed_headers);
		mc_buf_free(&b);
	}
	raw_sign(&r, v->authz);
	struct api_error err;
	int rc = verify(&r, suite_now(), &err);
	if (rc != 0)
		fprintf(stderr, "%s: %s %s\n", v->name, err.code, err.message);
	CHECK(rc == 0);
	free(r.text);
}

static void test_sigv4_suite(void)
{
	for (size_t i = 0; i < sizeof(suite) / sizeof(suite[0]); i++)
		check_vector(&suite[i]);
	for (size_t i = 0;
	     i < sizeof(suite_authz_only) / sizeof(suite_authz_only[0]); i++)
		check_vector(&suite_authz_only[i]);
}

/* The suite's string to sign and signature, through api_sigv4_sign. */
static void test_sigv4_sign(void)
{
	char sig[65];
	api_sigv4_sign(
	    sig, SUITE_SECRET, "20150830", "us-east-1", "service",
	    "AWS4-HMAC-SHA256\n20150830T123600Z\n"
	    "20150830/us-east-1/service/aws4_request\n"
	    "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c2529"
	    "2927e63");
	CHECK_STR(sig,
	          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d"
	          "763fbf31");
}

/* AWS's IAM ListUsers examples: a header and a presigned request. */
static void test_sigv4_iam_examples(void)
{
	struct raw_req r;
	struct api_error err;
	raw_parse(&r, "GET /?Action=ListUsers&Version=2010-05-08 HTTP/1.1\n"
	              "Content-Type: application/x-www-form-urlencoded; "
	              "charset=utf-8\nHost: iam.amazonaws.com\n"
	              "X-Amz-Date: 20150830T123600Z");
	raw_sign(&r,
	         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
	         "us-east-1/iam/aws4_request, SignedHeaders=content-type;"
	         "host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba"
	         "6789a8edb4c82c400e06b5924a6f2b5d7");
	CHECK(verify(&r, suite_now(), &err) == 0);
	free(r.text);

	/* Without spaces after the commas, as some clients send it. */
	raw_parse(&r, "GET /?Action=ListUsers&Version=2010-05-08 HTTP/1.1\n"
	              "Content-Type: application/x-www-form-urlencoded; "
	              "charset=utf-8\nHost: iam.amazonaws.com\n"
	              "X-Amz-Date: 20150830T123600Z");
	raw_sign(&r, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
	             "us-east-1/iam/aws4_request,SignedHeaders=content-type;"
	             "host;x-amz-date,Signature=5d672d79c15b13162d9279b0855cfba"
	             "6789a8edb4c82c400e06b5924a6f2b5d7");
	CHECK(verify(&r, suite_now(), &err) == 0);
	free(r.text);

	const char *presigned =
	    "GET /?Action=ListUsers&Version=2010-05-08&X-Amz-Algorithm="
	    "AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2F"
	    "us-east-1%2Fiam%2Faws4_request&X-Amz-Date=20150830T123600Z&"
	    "X-Amz-Expires=60&X-Amz-SignedHeaders=content-type%3Bhost&"
	    "X-Amz-Signature=37ac2f4fde00b0ac9bd9eadeb459b1bbee224158d66e7ae5"
	    "fcadb70b2d181d02 HTTP/1.1\nContent-Type: application/"
	    "x-www-form-urlencoded; charset=utf-8\nHost: iam.amazonaws.com";
	raw_parse(&r, presigned);
	struct api_params params;
	api_params_init(&params);
	CHECK(api_params_parse(&params, r.req.query, strlen(r.req.query)) == 0);
	CHECK(api_sig_scheme(&r.req, &params) == 4);
	api_params_free(&params);
	CHECK(verify(&r, suite_now() + 30, &err) == 0);
	/* X-Amz-Expires=60: a minute and a bit later it has expired. */
	CHECK(verify(&r, suite_now() + 61, &err) < 0);
	CHECK_STR(err.code, "RequestExpired");
	free(r.text);
}

static void test_sigv4_failures(void)
{
	struct raw_req r;
	struct api_error err;
	const char *req = "GET / HTTP/1.1\nHost:example.amazonaws.com\n"
	                  "X-Amz-Date:20150830T123600Z";
	const char *good = suite[0].authz;

	raw_parse(&r, req);
	raw_sign(&r, good);
	/* 15 minutes of skew either way, and no more. */
	CHECK(verify(&r, suite_now() + 900, &err) == 0);
	CHECK(verify(&r, suite_now() - 900, &err) == 0);
	CHECK(verify(&r, suite_now() + 901, &err) < 0);
	CHECK_STR(err.code, "RequestExpired");
	CHECK(verify(&r, suite_now() - 901, &err) < 0);
	CHECK_STR(err.code, "RequestExpired");
	CHECK_EQ_U64(err.status, 400);
	free(r.text);

	/* One changed hex digit of the signature. */
	char *bad = xstrdup(good);
	bad[strlen(bad) - 1] = '0';
	raw_parse(&r, req);
	raw_sign(&r, bad);
	CHECK(verify(&r, suite_now(), &err) < 0);
	CHECK_STR(err.code, "AuthFailure");
	CHECK_EQ_U64(err.status, 401);
	free(r.text);
	free(bad);

	/* A header value changed after signing. */
	raw_parse(&r, "GET / HTTP/1.1\nHost:example.amazonaws.com:8773\n"
	              "X-Amz-Date:20150830T123600Z");
	raw_sign(&r, good);
	CHECK(verify(&r, suite_now(), &err) < 0);
	CHECK_STR(err.code, "AuthFailure");
	free(r.text);

	/* Unknown key, store failure, malformed headers. */
	static const struct {
		const char *authz, *code;
	} cases[] = {
	    {"AWS4-HMAC-SHA256 Credential=NOSUCHKEY/20150830/us-east-1/service/"
	     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
	     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
	     "AuthFailure"},
	    {"AWS4-HMAC-SHA256 Credential=BROKEN/20150830/us-east-1/service/"
	     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
	     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
	     "InternalError"},
	    {"AWS4-HMAC-SHA256 "
	     "Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
	     "aws4_request, SignedHeaders=host;x-amz-date",
	     "IncompleteSignature"},
	    {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
	     "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
	     "IncompleteSignature"},
	    {"AWS4-HMAC-SHA256 "
	     "Credential=AKIDEXAMPLE/20150831/us-east-1/service/"
	     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
	     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
	     "AuthFailure"},
	    {"AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
	     "aws4_request, SignedHeaders=host, Signature=00",
	     "IncompleteSignature"},
	    {"AWS4-HMAC-SHA256 "
	     "Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
	     "aws4_request, SignedHeaders=host;x-amz-date, Signature=short",
	     "AuthFailure"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_parse(&r, req);
		raw_sign(&r, cases[i].authz);
		CHECK(verify(&r, suite_now(), &err) < 0);
		CHECK_STR(err.code, cases[i].code);
		free(r.text);
	}

	/* No X-Amz-Date at all. */
	raw_parse(&r, "GET / HTTP/1.1\nHost:example.amazonaws.com");
	raw_sign(&r, good);
	CHECK(verify(&r, suite_now(), &err) < 0);
	CHECK_STR(err.code, "IncompleteSignature");
	free(r.text);
}

/* The example of AWS's "Signature Version 2 signing process". */
static void test_sigv2_example(void)
{
	struct raw_req r;
	raw_parse(&r,
	          "GET /?Action=DescribeJobFlows&Version=2009-03-31&"
	          "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&SignatureVersion=2&"
	          "SignatureMethod=HmacSHA256&Timestamp=2011-10-03T15%3A19%3A30"
	          "&Signature=i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf%2FMj6vPxyYIs%3D"
	          " HTTP/1.1\nHost: elasticmapreduce.amazonaws.com");
	struct api_params params;
	api_params_init(&params);
	CHECK(api_params_parse(&params, r.req.query, strlen(r.req.query)) == 0);
	CHECK(api_sig_scheme(&r.req, &params) == 2);

	struct mc_buf sts;
	mc_buf_init(&sts);
	api_sigv2_string_to_sign(&r.req, &params, &sts);
	mc_buf_put_u8(&sts, 0);
	CHECK_STR(
	    (char *)sts.data,
	    "GET\nelasticmapreduce.amazonaws.com\n/\nAWSAccessKeyId="
	    "AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&SignatureMethod="
	    "HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30"
	    "&Version=2009-03-31");
	mc_buf_free(&sts);

	time_t t;
	CHECK(api_parse_iso8601("2011-10-03T15:19:30", &t) == 0);
	struct api_auth auth;
	struct api_error err;
	CHECK(api_sigv2_verify(&r.req, &params, &cloud, t + 60, &auth, &err) ==
	      0);
	CHECK_STR(auth.access_key_id, V2_KEY);
	CHECK(auth.version == 2);
	CHECK(api_sigv2_verify(&r.req, &params, &cloud, t + 901, &auth, &err) <
	      0);
	CHECK_STR(err.code, "RequestExpired");
	api_params_free(&params);

	/* The Host header is lowercased, as received: the port stays. */
	free(r.text);
	raw_parse(&r,
	          "GET /?Action=DescribeJobFlows&Version=2009-03-31&"
	          "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&SignatureVersion=2&"
	          "SignatureMethod=HmacSHA256&Timestamp=2011-10-03T15%3A19%3A30"
	          "&Signature=i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf%2FMj6vPxyYIs%3D"
	          " HTTP/1.1\nHost: ElasticMapReduce.amazonaws.com");
	api_params_init(&params);
	api_params_parse(&params, r.req.query, strlen(r.req.query));
	CHECK(api_sigv2_verify(&r.req, &params, &cloud, t, &auth, &err) == 0);
	api_params_free(&params);
	free(r.text);
}

/* Signs params the way a SigV2 client does, then verifies. */
static int sigv2_roundtrip(const char *method, const char *host,
                           const char *sig_method, const char *extra,
                           bool tamper)
{
	char query[1024];
	snprintf(query, sizeof(query),
	         "Action=DescribeRegions&Version=2014-10-01&AWSAccessKeyId="
	         "AKIDEXAMPLE&SignatureVersion=2&SignatureMethod=%s&Timestamp="
	         "2015-08-30T12%%3A36%%3A00Z%s",
	         sig_method, extra);
	struct api_params params;
	api_params_init(&params);
	api_params_parse(&params, query, strlen(query));
	struct api_http_header h[1] = {{"Host", host}};
	struct api_http_request req = {.method = method,
	                               .path = "/services/compute/",
	                               .query = "",
	                               .headers = h,
	                               .n_headers = 1,
	                               .body = (const uint8_t *)""};
	struct mc_buf sts;
	mc_buf_init(&sts);
	api_sigv2_string_to_sign(&req, &params, &sts);
	uint8_t mac[API_SHA256_BYTES];
	size_t n = API_SHA256_BYTES;
	if (strcmp(sig_method, "HmacSHA1") == 0) {
		api_hmac_sha1(mac, SUITE_SECRET, strlen(SUITE_SECRET), sts.data,
		              sts.len);
		n = API_SHA1_BYTES;
	} else {
		api_hmac_sha256(mac, SUITE_SECRET, strlen(SUITE_SECRET),
		                sts.data, sts.len);
	}
	mc_buf_free(&sts);
	if (tamper)
		mac[0] ^= 1;
	char *b64 = mc_b64_encode(mac, n);
	struct mc_buf q;
	mc_buf_init(&q);
	mc_buf_append_str(&q, "Signature=");
	api_uri_encode(&q, b64, strlen(b64));
	api_params_parse(&params, (const char *)q.data, q.len);
	mc_buf_free(&q);
	free(b64);
	struct api_auth auth;
	struct api_error err;
	int rc =
	    api_sigv2_verify(&req, &params, &cloud, suite_now(), &auth, &err);
	api_params_free(&params);
	return rc;
}

static void test_sigv2_roundtrip(void)
{
	CHECK(sigv2_roundtrip("GET", "127.0.0.1", "HmacSHA256", "", false) ==
	      0);
	CHECK(sigv2_roundtrip("POST", "127.0.0.1:8773", "HmacSHA1",
	                      "&InstanceId.1=i-0123&Tag.0.Value=a%20b%2Bc",
	                      false) == 0);
	CHECK(sigv2_roundtrip("POST", "127.0.0.1:8773", "HmacSHA256",
	                      "&Description=%7E%2A%27%28%29", false) == 0);
	CHECK(sigv2_roundtrip("GET", "127.0.0.1", "HmacSHA256", "", true) < 0);
	CHECK(sigv2_roundtrip("GET", "127.0.0.1", "HmacMD5", "", false) < 0);
}

static void test_dates(void)
{
	time_t t;
	CHECK(api_parse_amz_date("20150830T123600Z", &t) == 0);
	CHECK_EQ_U64((uint64_t)t, 1440938160);
	CHECK(api_parse_amz_date("20150830T123600", &t) < 0);
	CHECK(api_parse_amz_date("20151330T123600Z", &t) < 0);
	CHECK(api_parse_iso8601("2015-08-30T12:36:00Z", &t) == 0);
	CHECK_EQ_U64((uint64_t)t, 1440938160);
	CHECK(api_parse_iso8601("2015-08-30T12:36:00.123Z", &t) == 0);
	CHECK_EQ_U64((uint64_t)t, 1440938160);
	CHECK(api_parse_iso8601("2015-08-30T12:36:00+00:00", &t) == 0);
	CHECK(api_parse_iso8601("2015-08-30 12:36:00", &t) < 0);
	CHECK(api_parse_iso8601("2015-08-30T12:36:00+02:00", &t) < 0);
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	RUN(test_sigv4_suite);
	RUN(test_sigv4_sign);
	RUN(test_sigv4_iam_examples);
	RUN(test_sigv4_failures);
	RUN(test_sigv2_example);
	RUN(test_sigv2_roundtrip);
	RUN(test_dates);
	return check_summary();
}
