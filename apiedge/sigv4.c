/*
 * AWS Signature Version 4, verified the way AWS computes it: the canonical
 * request from the method, the path as sent, the query sorted by encoded
 * name then value, the signed headers lowercased with blanks trimmed and
 * runs of spaces collapsed, and the payload hash (X-Amz-Content-SHA256 when
 * sent, else SHA-256 of the body as received). Any region and service in the
 * credential scope is accepted: the key is recomputed with the scope the
 * client used, as clients derive it from whatever host name they were given.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "log.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALGORITHM           "AWS4-HMAC-SHA256"
#define PRESIGN_MAX_EXPIRES (7 * 24 * 3600)
#define AUTH_FAILED                                                            \
	"AWS was not able to validate the provided access credentials"

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* Builds a UTC time, refusing fields out of range. */
static int make_time(int y, int mo, int d, int h, int mi, int s, time_t *out)
{
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || s > 60)
		return -EINVAL;
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mo - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi,
	                .tm_sec = s};
	*out = timegm(&tm);
	return 0;
}

int api_parse_amz_date(const char *s, time_t *out)
{
	if (strlen(s) != 16 || !all_digits(s, 8) || s[8] != 'T' ||
	    !all_digits(s + 9, 6) || s[15] != 'Z')
		return -EINVAL;
	return make_time(num(s, 4), num(s + 4, 2), num(s + 6, 2), num(s + 9, 2),
	                 num(s + 11, 2), num(s + 13, 2), out);
}

int api_parse_iso8601(const char *s, time_t *out)
{
	/* YYYY-MM-DDTHH:MM:SS */
	if (strlen(s) < 19 || !all_digits(s, 4) || s[4] != '-' ||
	    !all_digits(s + 5, 2) || s[7] != '-' || !all_digits(s + 8, 2) ||
	    s[10] != 'T' || !all_digits(s + 11, 2) || s[13] != ':' ||
	    !all_digits(s + 14, 2) || s[16] != ':' || !all_digits(s + 17, 2))
		return -EINVAL;
	const char *t = s + 19;
	if (*t == '.') {
		t++;
		size_t n = 0;
		while (t[n] >= '0' && t[n] <= '9')
			n++;
		if (n == 0 || n > 9)
			return -EINVAL;
		t += n;
	}
	if (strcmp(t, "Z") != 0 && strcmp(t, "") != 0 &&
	    strcmp(t, "+00:00") != 0 && strcmp(t, "+0000") != 0)
		return -EINVAL;
	return make_time(num(s, 4), num(s + 5, 2), num(s + 8, 2),
	                 num(s + 11, 2), num(s + 14, 2), num(s + 17, 2), out);
}

int api_sig_scheme(const struct api_http_request *req,
                   const struct api_params *params)
{
	const char *auth = api_http_header(req, "Authorization");
	if (auth && strncmp(auth, "AWS4-", 5) == 0)
		return 4;
	if (params && api_params_get(params, "X-Amz-Algorithm"))
		return 4;
	if (params && api_params_get(params, "Signature") &&
	    api_params_get(params, "SignatureVersion"))
		return 2;
	if (auth)
		return 4; /* something else: let SigV4 refuse it */
	return 0;
}

/* ---- canonical request -------------------------------------------------- */

static bool unreserved_or_slash(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
	       c == '/' || c == '%';
}

/* The path as sent: EC2 signs it once-encoded; bytes a client left raw
 * (and that the parser let through) are encoded as the client would. */
static void canonical_uri(struct mc_buf *out, const char *path)
{
	if (!*path) {
		mc_buf_put_u8(out, '/');
		return;
	}
	for (const char *p = path; *p; p++) {
		if (unreserved_or_slash((unsigned char)*p))
			mc_buf_put_u8(out, (uint8_t)*p);
		else
			api_uri_encode(out, p, 1);
	}
}

struct qpair {
	char *name;
	char *value;
};

static int qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes then RFC 3986-encodes s[0..n) into a fresh string. */
static char *reencode(const char *s, size_t n, bool plus_literal)
{
	struct mc_buf raw, enc;
	mc_buf_init(&raw);
	mc_buf_init(&enc);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == '%') {
			int hi = n - i >= 3 ? hexval(s[i + 1]) : -1;
			int lo = n - i >= 3 ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				mc_buf_free(&raw);
				return NULL;
			}
			c = (uint8_t)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && !plus_literal) {
			c = ' ';
		}
		mc_buf_put_u8(&raw, c);
	}
	api_uri_encode(&enc, (const char *)raw.data, raw.len);
	mc_buf_put_u8(&enc, 0);
	mc_buf_free(&raw);
	return (char *)enc.data;
}

static int canonical_query(struct mc_buf *out, const char *q, bool presigned,
                           bool plus_literal)
{
	size_t n = strlen(q), cap = 1, count = 0;
	for (size_t i = 0; i < n; i++)
		cap += q[i] == '&';
	if (cap > API_PARAMS_MAX)
		return -E2BIG;
	struct qpair *pairs = xcalloc(cap, sizeof(*pairs));
	int rc = 0;
	for (size_t i = 0; i < n;) {
		size_t end = i + strcspn(q + i, "&");
		if (end > i) {
			const char *eq = memchr(q + i, '=', end - i);
			size_t nl = eq ? (size_t)(eq - (q + i)) : end - i;
			struct qpair *p = &pairs[count];
			p->name = reencode(q + i, nl, plus_literal);
			p->value = eq ? reencode(eq + 1, end - i - nl - 1,
			                         plus_literal)
			              : xstrdup("");
			count++;
			if (!p->name || !p->value) {
				rc = -EINVAL;
				break;
			}
			if (presigned &&
			    strcmp(p->name, "X-Amz-Signature") == 0) {
				free(p->name);
				free(p->value);
				count--;
			}
		}
		i = end + 1;
	}
	if (rc == 0) {
		qsort(pairs, count, sizeof(*pairs), qpair_cmp);
		for (size_t i = 0; i < count; i++) {
			if (i)
				mc_buf_put_u8(out, '&');
			mc_buf_append_str(out, pairs[i].name);
			mc_buf_put_u8(out, '=');
			mc_buf_append_str(out, pairs[i].value);
		}
	}
	for (size_t i = 0; i < count; i++) {
		free(pairs[i].name);
		free(pairs[i].value);
	}
	free(pairs);
	return rc;
}

/* "value" trimmed with every run of blanks made one space. */
static void canonical_value(struct mc_buf *out, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	bool space = false;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = true;
			continue;
		}
		if (space)
			mc_buf_put_u8(out, ' ');
		space = false;
		mc_buf_put_u8(out, (uint8_t)*v);
	}
}

/* One line per signed header, in the order the client listed them. */
static void canonical_headers(struct mc_buf *out,
                              const struct api_http_request *req,
                              const char *signed_headers)
{
	const char *s = signed_headers;
	while (*s) {
		size_t len = strcspn(s, ";");
		for (size_t i = 0; i < len; i++)
			mc_buf_put_u8(out,
			              (uint8_t)tolower((unsigned char)s[i]));
		mc_buf_put_u8(out, ':');
		bool first = true;
		for (size_t i = 0; i < req->n_headers; i++) {
			const char *name = req->headers[i].name;
			if (strlen(name) != len || strncasecmp(name, s, len))
				continue;
			if (!first)
				mc_buf_put_u8(out, ',');
			canonical_value(out, req->headers[i].value);
			first = false;
		}
		mc_buf_put_u8(out, '\n');
		s += len;
		if (*s == ';')
			s++;
	}
}

static int build_canonical(const struct api_http_request *req,
                           const char *signed_headers, bool presigned,
                           bool plus_literal, struct mc_buf *out)
{
	mc_buf_append_str(out, req->method);
	mc_buf_put_u8(out, '\n');
	canonical_uri(out, req->path);
	mc_buf_put_u8(out, '\n');
	int rc = canonical_query(out, req->query, presigned, plus_literal);
	if (rc < 0)
		return rc;
	mc_buf_put_u8(out, '\n');
	canonical_headers(out, req, signed_headers);
	mc_buf_put_u8(out, '\n');
	mc_buf_append_str(out, signed_headers);
	mc_buf_put_u8(out, '\n');
	const char *payload = api_http_header(req, "X-Amz-Content-SHA256");
	if (payload) {
		mc_buf_append_str(out, payload);
	} else {
		uint8_t h[API_SHA256_BYTES];
		char hex[2 * API_SHA256_BYTES + 1];
		api_sha256(h, req->body, req->body_len);
		mc_hex_encode(hex, h, sizeof(h));
		mc_buf_append_str(out, hex);
	}
	return 0;
}

int api_sigv4_canonical_request(const struct api_http_request *req,
                                const char *signed_headers, bool presigned,
                                struct mc_buf *out)
{
	return build_canonical(req, signed_headers, presigned, false, out);
}

void api_sigv4_sign(char out[65], const char *secret, const char *date,
                    const char *region, const char *service,
                    const char *string_to_sign)
{
	uint8_t k[API_SHA256_BYTES];
	char *kst = xasprintf("AWS4%s", secret);
	api_hmac_sha256(k, kst, strlen(kst), date, strlen(date));
	mc_wipe(kst, strlen(kst));
	free(kst);
	api_hmac_sha256(k, k, sizeof(k), region, strlen(region));
	api_hmac_sha256(k, k, sizeof(k), service, strlen(service));
	api_hmac_sha256(k, k, sizeof(k), "aws4_request", 12);
	uint8_t sig[API_SHA256_BYTES];
	api_hmac_sha256(sig, k, sizeof(k), string_to_sign,
	                strlen(string_to_sign));
	mc_hex_encode(out, sig, sizeof(sig));
	mc_wipe(k, sizeof(k));
}

/* ---- verification ------------------------------------------------------- */

struct sigv4_parts {
	char *credential, *signed_headers, *signature, *date, *expires;
	bool presigned;
	/* The credential split up (pointers into scope). */
	char *scope, *key_id, *scope_date, *region, *service, *terminal;
};

static void parts_free(struct sigv4_parts *p)
{
	free(p->credential);
	free(p->signed_headers);
	free(p->signature);
	free(p->date);
	free(p->expires);
	free(p->scope);
}

/* Reads "Credential=..., SignedHeaders=..., Signature=..." (spaces after
 * the commas optional). */
static int parse_header(const char *v, struct sigv4_parts *p,
                        struct api_error *err)
{
	size_t alg = strlen(ALGORITHM);
	if (strncmp(v, ALGORITHM, alg) != 0 || (v[alg] != ' ' && v[alg]))
		return api_error_set(err, "IncompleteSignature",
		                     "Unsupported Authorization Type");
	const char *s = v + alg;
	while (*s) {
		while (*s == ' ' || *s == ',')
			s++;
		if (!*s)
			break;
		const char *eq = strchr(s, '=');
		if (!eq)
			break;
		size_t kl = (size_t)(eq - s);
		size_t vl = strcspn(eq + 1, ",");
		size_t tl = vl;
		while (tl && eq[tl] == ' ')
			tl--;
		char **dst = NULL;
		if (kl == 10 && strncmp(s, "Credential", kl) == 0)
			dst = &p->credential;
		else if (kl == 13 && strncmp(s, "SignedHeaders", kl) == 0)
			dst = &p->signed_headers;
		else if (kl == 9 && strncmp(s, "Signature", kl) == 0)
			dst = &p->signature;
		if (dst && !*dst)
			*dst = xstrndup(eq + 1, tl);
		s = eq + 1 + vl;
	}
	if (!p->credential || !p->signed_headers || !p->signature)
		return api_error_set(
		    err, "IncompleteSignature",
		    "Authorization header requires 'Credential', "
		    "'SignedHeaders' and 'Signature' parameters.");
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static int parse_query(const struct api_http_request *req,
                       struct sigv4_parts *p, struct api_error *err)
{
	struct api_params q;
	api_params_init(&q);
	int rc = api_params_parse(&q, req->query, strlen(req->query));
	if (rc == 0) {
		const char *alg = api_params_get(&q, "X-Amz-Algorithm");
		if (!alg || strcmp(alg, ALGORITHM) != 0)
			rc = api_error_set(err, "IncompleteSignature",
			                   "Unsupported X-Amz-Algorithm");
		p->credential =
		    dup_or_null(api_params_get(&q, "X-Amz-Credential"));
		p->signed_headers =
		    dup_or_null(api_params_get(&q, "X-Amz-SignedHeaders"));
		p->signature =
		    dup_or_null(api_params_get(&q, "X-Amz-Signature"));
		p->date = dup_or_null(api_params_get(&q, "X-Amz-Date"));
		p->expires = dup_or_null(api_params_get(&q, "X-Amz-Expires"));
	} else {
		rc = api_error_set(err, "MalformedQueryString",
		                   "The query string is malformed.");
	}
	api_params_free(&q);
	if (rc == 0 &&
	    (!p->credential || !p->signed_headers || !p->signature || !p->date))
		rc = api_error_set(err, "IncompleteSignature",
		                   "The request signature does not conform to "
		                   "AWS standards.");
	p->presigned = true;
	return rc;
}

/* Splits AKID/YYYYMMDD/region/service/aws4_request. */
static int split_credential(struct sigv4_parts *p, struct api_error *err)
{
	p->scope = xstrdup(p->credential);
	char *f[5];
	char *s = p->scope;
	for (int i = 0; i < 5; i++) {
		f[i] = s;
		char *slash = i < 4 ? strchr(s, '/') : NULL;
		if (i < 4 && !slash)
			goto bad;
		if (slash) {
			*slash = 0;
			s = slash + 1;
		}
	}
	if (strchr(f[4], '/') || !*f[0] || strlen(f[0]) > API_KEY_ID_MAX ||
	    strlen(f[1]) != 8 || !all_digits(f[1], 8) || !*f[2] ||
	    strlen(f[2]) >= 64 || !*f[3] || strlen(f[3]) >= 64 ||
	    strcmp(f[4], "aws4_request") != 0)
		goto bad;
	p->key_id = f[0];
	p->scope_date = f[1];
	p->region = f[2];
	p->service = f[3];
	p->terminal = f[4];
	return 0;
bad:
	return api_error_set(err, "IncompleteSignature",
	                     "Credential should be scoped to a valid region, "
	                     "not '%s'.",
	                     p->credential);
}

static int check_time(const struct sigv4_parts *p, time_t now,
                      struct api_error *err)
{
	time_t t;
	if (api_parse_amz_date(p->date, &t) != 0)
		return api_error_set(err, "IncompleteSignature",
		                     "Invalid X-Amz-Date '%s'.", p->date);
	if (strncmp(p->date, p->scope_date, 8) != 0)
		return api_error_set(err, "AuthFailure",
		                     "Credential should be scoped to a valid "
		                     "date: '%s' does not match '%.8s'.",
		                     p->scope_date, p->date);
	if (t > now + API_MAX_SKEW_S)
		return api_error_set(err, "RequestExpired",
		                     "Request is not yet valid: %s.", p->date);
	if (p->presigned && p->expires) {
		char *end;
		long e = strtol(p->expires, &end, 10);
		if (*end || end == p->expires || e < 1 ||
		    e > PRESIGN_MAX_EXPIRES)
			return api_error_set(err, "AuthFailure",
			                     "X-Amz-Expires must be between 1 "
			                     "and %d seconds.",
			                     PRESIGN_MAX_EXPIRES);
		if (now > t + e)
			return api_error_set(err, "RequestExpired",
			                     "Request has expired.");
		return 0;
	}
	if (now > t + API_MAX_SKEW_S)
		return api_error_set(err, "RequestExpired",
		                     "Request has expired.");
	return 0;
}

/* Computes the signature for one way of reading '+' in the query. */
static int compute(const struct api_http_request *req,
                   const struct sigv4_parts *p, const char *secret,
                   bool plus_literal, char sig[65])
{
	struct mc_buf creq;
	mc_buf_init(&creq);
	int rc = build_canonical(req, p->signed_headers, p->presigned,
	                         plus_literal, &creq);
	if (rc == 0) {
		uint8_t h[API_SHA256_BYTES];
		char hex[2 * API_SHA256_BYTES + 1];
		api_sha256(h, creq.data, creq.len);
		mc_hex_encode(hex, h, sizeof(h));
		char *sts = xasprintf("%s\n%s\n%s/%s/%s/aws4_request\n%s",
		                      ALGORITHM, p->date, p->scope_date,
		                      p->region, p->service, hex);
		api_sigv4_sign(sig, secret, p->scope_date, p->region,
		               p->service, sts);
		if (mc_log_get_level() == MC_LOG_DEBUG) {
			mc_buf_put_u8(&creq, 0);
			mc_debug("apiedge", "sigv4 canonical request:\n%s",
			         (const char *)creq.data);
		}
		free(sts);
	}
	mc_buf_free(&creq);
	return rc;
}

int api_sigv4_verify(const struct api_http_request *req,
                     const struct api_cloud *cloud, time_t now,
                     struct api_auth *auth, struct api_error *err)
{
	struct sigv4_parts p = {0};
	const char *hdr = api_http_header(req, "Authorization");
	int rc = hdr ? parse_header(hdr, &p, err) : parse_query(req, &p, err);
	if (rc == 0 && !p.presigned) {
		const char *d = api_http_header(req, "X-Amz-Date");
		if (!d)
			rc = api_error_set(
			    err, "IncompleteSignature",
			    "Authorization header requires "
			    "existence of a 'X-Amz-Date' header.");
		else
			p.date = xstrdup(d);
	}
	if (rc == 0)
		rc = split_credential(&p, err);
	if (rc == 0)
		rc = check_time(&p, now, err);
	if (rc == 0 && strlen(p.signature) != 64)
		rc = api_error_set(err, "AuthFailure", AUTH_FAILED);
	if (rc < 0)
		goto out;

	memset(auth, 0, sizeof(*auth));
	int lk = cloud->lookup_key
	             ? cloud->lookup_key(cloud->arg, p.key_id, &auth->key)
	             : -ENOSYS;
	if (lk == -ENOENT) {
		rc = api_error_set(err, "AuthFailure", AUTH_FAILED);
		goto out;
	} else if (lk < 0) {
		rc = api_error_set(err, "InternalError",
		                   "An internal error has occurred.");
		goto out;
	}
	char sig[65];
	rc = compute(req, &p, auth->key.secret, false, sig);
	bool ok = rc == 0 && mc_equal(sig, p.signature, 64);
	if (!ok && strchr(req->query, '+')) {
		/* Some clients sign a literal '+' as %2B. */
		rc = compute(req, &p, auth->key.secret, true, sig);
		ok = rc == 0 && mc_equal(sig, p.signature, 64);
	}
	mc_wipe(sig, sizeof(sig));
	if (!ok) {
		mc_wipe(&auth->key, sizeof(auth->key));
		rc = rc < 0 ? api_error_set(err, "MalformedQueryString",
		                            "The query string is malformed.")
		            : api_error_set(err, "AuthFailure", AUTH_FAILED);
		goto out;
	}
	snprintf(auth->access_key_id, sizeof(auth->access_key_id), "%s",
	         p.key_id);
	snprintf(auth->region, sizeof(auth->region), "%s", p.region);
	snprintf(auth->service, sizeof(auth->service), "%s", p.service);
	auth->version = 4;
out:
	parts_free(&p);
	return rc;
}
