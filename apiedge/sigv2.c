/*
 * AWS Signature Version 2 (SignatureVersion=2, HmacSHA256 or HmacSHA1),
 * still sent by older EC2 libraries. The string to sign is
 *   METHOD \n host header as received, lowercased \n path as sent \n
 *   every parameter but Signature, RFC 3986-encoded, sorted by name
 * and the signature is the base64 of the HMAC under the secret key.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_FAILED                                                            \
	"AWS was not able to validate the provided access credentials"

struct v2pair {
	const char *name, *value;
	size_t order;
};

static int v2pair_cmp(const void *a, const void *b)
{
	const struct v2pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

void api_sigv2_string_to_sign(const struct api_http_request *req,
                              const struct api_params *params,
                              struct mc_buf *out)
{
	mc_buf_append_str(out, req->method);
	mc_buf_put_u8(out, '\n');
	const char *host = api_http_header(req, "Host");
	for (const char *h = host ? host : ""; *h; h++)
		mc_buf_put_u8(out, (uint8_t)tolower((unsigned char)*h));
	mc_buf_put_u8(out, '\n');
	mc_buf_append_str(out, *req->path ? req->path : "/");
	mc_buf_put_u8(out, '\n');

	struct v2pair *pairs = xmalloc((params->n + 1) * sizeof(*pairs));
	size_t n = 0;
	for (size_t i = 0; i < params->n; i++) {
		if (strcmp(params->items[i].name, "Signature") == 0)
			continue;
		pairs[n].name = params->items[i].name;
		pairs[n].value = params->items[i].value;
		pairs[n].order = i;
		n++;
	}
	qsort(pairs, n, sizeof(*pairs), v2pair_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i)
			mc_buf_put_u8(out, '&');
		api_uri_encode(out, pairs[i].name, strlen(pairs[i].name));
		mc_buf_put_u8(out, '=');
		api_uri_encode(out, pairs[i].value, strlen(pairs[i].value));
	}
	free(pairs);
}

static int check_time(const struct api_params *params, time_t now,
                      struct api_error *err)
{
	const char *ts = api_params_get(params, "Timestamp");
	const char *ex = api_params_get(params, "Expires");
	time_t t;
	if (ts && ex)
		return api_error_set(err, "InvalidParameterCombination",
		                     "The parameter Timestamp cannot be used "
		                     "with the parameter Expires");
	if (ex) {
		if (api_parse_iso8601(ex, &t) != 0)
			return api_error_set(err, "InvalidParameterValue",
			                     "Invalid Expires '%s'.", ex);
		if (now > t)
			return api_error_set(err, "RequestExpired",
			                     "Request has expired.");
		return 0;
	}
	if (!ts)
		return api_error_set(err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "Timestamp or Expires");
	if (api_parse_iso8601(ts, &t) != 0)
		return api_error_set(err, "InvalidParameterValue",
		                     "Invalid Timestamp '%s'.", ts);
	if (t > now + API_MAX_SKEW_S || now > t + API_MAX_SKEW_S)
		return api_error_set(err, "RequestExpired",
		                     "Request has expired.");
	return 0;
}

int api_sigv2_verify(const struct api_http_request *req,
                     const struct api_params *params,
                     const struct api_cloud *cloud, time_t now,
                     struct api_auth *auth, struct api_error *err)
{
	const char *key_id = api_params_get(params, "AWSAccessKeyId");
	const char *sig = api_params_get(params, "Signature");
	const char *method = api_params_get(params, "SignatureMethod");
	const char *version = api_params_get(params, "SignatureVersion");
	if (!key_id || !sig || !method || !version)
		return api_error_set(err, "IncompleteSignature",
		                     "The request signature does not conform "
		                     "to AWS standards.");
	if (strcmp(version, "2") != 0)
		return api_error_set(err, "AuthFailure",
		                     "Unsupported SignatureVersion '%s'.",
		                     version);
	bool sha256 = strcmp(method, "HmacSHA256") == 0;
	if (!sha256 && strcmp(method, "HmacSHA1") != 0)
		return api_error_set(err, "AuthFailure",
		                     "Unsupported SignatureMethod '%s'.",
		                     method);
	if (strlen(key_id) > API_KEY_ID_MAX)
		return api_error_set(err, "AuthFailure", AUTH_FAILED);
	int rc = check_time(params, now, err);
	if (rc < 0)
		return rc;

	/* The signature is base64; a client that did not encode its '+'
	 * has it decoded to a space. */
	uint8_t given[API_SHA256_BYTES + 4];
	size_t slen = strlen(sig);
	if (slen > 64)
		return api_error_set(err, "AuthFailure", AUTH_FAILED);
	char fixed[65];
	for (size_t i = 0; i <= slen; i++)
		fixed[i] = sig[i] == ' ' ? '+' : sig[i];
	long glen = mc_b64_decode(given, sizeof(given), fixed, slen);
	size_t want = sha256 ? API_SHA256_BYTES : API_SHA1_BYTES;
	if (glen != (long)want)
		return api_error_set(err, "AuthFailure", AUTH_FAILED);

	memset(auth, 0, sizeof(*auth));
	int lk = cloud->lookup_key
	             ? cloud->lookup_key(cloud->arg, key_id, &auth->key)
	             : -ENOSYS;
	if (lk == -ENOENT)
		return api_error_set(err, "AuthFailure", AUTH_FAILED);
	if (lk < 0)
		return api_error_set(err, "InternalError",
		                     "An internal error has occurred.");
	struct mc_buf sts;
	mc_buf_init(&sts);
	api_sigv2_string_to_sign(req, params, &sts);
	uint8_t mac[API_SHA256_BYTES];
	const char *secret = auth->key.secret;
	if (sha256)
		api_hmac_sha256(mac, secret, strlen(secret), sts.data, sts.len);
	else
		api_hmac_sha1(mac, secret, strlen(secret), sts.data, sts.len);
	mc_buf_free(&sts);
	bool ok = mc_equal(mac, given, want);
	mc_wipe(mac, sizeof(mac));
	if (!ok) {
		mc_wipe(&auth->key, sizeof(auth->key));
		return api_error_set(err, "AuthFailure", AUTH_FAILED);
	}
	snprintf(auth->access_key_id, sizeof(auth->access_key_id), "%s",
	         key_id);
	auth->version = 2;
	return 0;
}
