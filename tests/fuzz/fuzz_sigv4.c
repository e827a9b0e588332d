/* Signature canonicalisation of arbitrary requests: the input is split at
 * newlines into method, path, query, signed headers, Authorization, then
 * header lines "name:value", a blank line and the body. Canonical requests,
 * both verifiers and SigV2's string to sign must never crash. */
#include "apiedge_int.h"
#include "crypto.h"
#include "mem.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 16

static int lookup(void *arg, const char *id, struct api_key_info *out)
{
	(void)arg;
	if (strcmp(id, "AKIDEXAMPLE") != 0)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	strcpy(out->account_id, "123456789012");
	strcpy(out->secret, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
	return 0;
}

static char *next_line(char **s)
{
	char *line = *s;
	if (!line)
		return (char *)"";
	char *nl = strchr(line, '\n');
	if (nl) {
		*nl = 0;
		*s = nl + 1;
	} else {
		*s = NULL;
	}
	return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (mc_crypto_init() != 0)
			abort();
		ready = 1;
	}
	char *text = xstrndup((const char *)data, size);
	char *s = text;
	struct api_http_header h[MAX_HEADERS + 1];
	struct api_http_request req = {0};
	req.method = next_line(&s);
	req.path = next_line(&s);
	req.query = next_line(&s);
	const char *signed_headers = next_line(&s);
	size_t n = 0;
	h[n].name = "Authorization";
	h[n++].value = next_line(&s);
	while (s && *s && *s != '\n' && n < MAX_HEADERS) {
		char *line = next_line(&s);
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		h[n].name = line;
		h[n++].value = colon + 1;
	}
	if (s && *s == '\n')
		s++;
	req.headers = h;
	req.n_headers = n;
	req.body = (const uint8_t *)(s ? s : "");
	req.body_len = s ? strlen(s) : 0;

	struct mc_buf out;
	mc_buf_init(&out);
	api_sigv4_canonical_request(&req, signed_headers, false, &out);
	mc_buf_reset(&out);
	api_sigv4_canonical_request(&req, signed_headers, true, &out);
	mc_buf_free(&out);

	struct api_cloud cloud = {.lookup_key = lookup};
	struct api_auth auth;
	struct api_error err;
	time_t now = 1440938160;
	api_sigv4_verify(&req, &cloud, now, &auth, &err);
	req.n_headers = n - 1; /* presigned: no Authorization */
	req.headers = h + 1;
	api_sigv4_verify(&req, &cloud, now, &auth, &err);

	struct api_params p;
	api_params_init(&p);
	if (api_params_parse(&p, req.query, strlen(req.query)) == 0) {
		struct mc_buf sts;
		mc_buf_init(&sts);
		api_sigv2_string_to_sign(&req, &p, &sts);
		mc_buf_free(&sts);
		api_sig_scheme(&req, &p);
		api_sigv2_verify(&req, &p, &cloud, now, &auth, &err);
	}
	api_params_free(&p);
	time_t t;
	api_parse_amz_date(req.path, &t);
	api_parse_iso8601(req.path, &t);
	free(text);
	return 0;
}
