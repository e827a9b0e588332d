/*
 * For the API edge's action tests: an edge on a real loop (its own thread)
 * over the in-memory cloud of fake_cloud.h, two accounts with a key each,
 * and two ways to call an action:
 *   ec2_http()   a SigV4-signed POST over a real socket, as an SDK sends it;
 *   ec2_call()   the action run directly on a synthesized call, for the
 *                many cases where HTTP adds nothing but time.
 * Only one of them runs at a time, so the cloud is never shared at once.
 */
#ifndef MALLEE_EDGE_HARNESS_H
#define MALLEE_EDGE_HARNESS_H

#include "check.h"
#include "fake_cloud.h"
#include "sigv4_client.h"

#include "apiedge_int.h"
#include "crypto.h"
#include "mem.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define KEY_A     "AKIAMALLEEACCOUNTA01"
#define SECRET_A  "secret/of+account/a"
#define ACCOUNT_A "111111111111"
#define KEY_B     "AKIAMALLEEACCOUNTB01"
#define SECRET_B  "secret/of+account/b"
#define ACCOUNT_B "222222222222"

static struct harness {
	uv_loop_t loop;
	uv_async_t stopper;
	struct api_edge *edge;
	struct fake_cloud fake;
	struct api_cloud cloud;
	struct api_edge_config cfg;
	pthread_t thread;
	int port;
	bool stopped;
} h;

static void harness_edge_stopped(void *arg)
{
	(void)arg;
	h.stopped = true;
}

static void harness_on_stop(uv_async_t *a)
{
	api_edge_stop(h.edge, harness_edge_stopped, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static void *harness_loop(void *arg)
{
	(void)arg;
	uv_run(&h.loop, UV_RUN_DEFAULT);
	return NULL;
}

static inline void harness_start(void)
{
	if (mc_crypto_init() != 0)
		exit(1);
	fake_cloud_init(&h.fake, &h.cloud);
	fake_cloud_add_key(&h.fake, KEY_A, SECRET_A, ACCOUNT_A);
	fake_cloud_add_key(&h.fake, KEY_B, SECRET_B, ACCOUNT_B);
	h.cfg = (struct api_edge_config){.region = "us-east-1",
	                                 .endpoint = "127.0.0.1:8773"};
	CHECK(uv_loop_init(&h.loop) == 0);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	CHECK(api_edge_start(&h.edge, &h.loop, (struct sockaddr *)&a, &h.cfg,
	                     &h.cloud) == 0);
	h.port = api_edge_port(h.edge);
	uv_async_init(&h.loop, &h.stopper, harness_on_stop);
	pthread_create(&h.thread, NULL, harness_loop, NULL);
}

static inline void harness_stop(void)
{
	uv_async_send(&h.stopper);
	pthread_join(h.thread, NULL);
	CHECK(h.stopped);
	CHECK(uv_loop_close(&h.loop) == 0);
	fake_cloud_free(&h.fake);
}

/* A SigV4 POST of form (already URL-encoded) as an SDK would send it. */
static inline int ec2_http(const char *key, const char *secret,
                           const char *form, char **body)
{
	return sc_post_signed(h.port, key, secret, form, body);
}

/* Runs the form's Action directly as account; the edge's status. */
static inline int ec2_call(const char *account, const char *form, char **body)
{
	struct api_params params;
	struct api_auth auth;
	struct mc_buf out;
	api_params_init(&params);
	mc_buf_init(&out);
	memset(&auth, 0, sizeof(auth));
	snprintf(auth.key.account_id, sizeof(auth.key.account_id), "%s",
	         account);
	struct api_http_request req = {.method = "POST", .path = "/"};
	struct api_call call = {.cfg = &h.cfg,
	                        .cloud = &h.cloud,
	                        .http = &req,
	                        .params = &params,
	                        .auth = &auth,
	                        .version = API_DEFAULT_VERSION,
	                        .request_id = "req-1",
	                        .out = &out};
	int status;
	if (api_params_parse(&params, form, strlen(form)) != 0) {
		status = -1;
	} else {
		call.action = api_params_get(&params, "Action");
		const struct api_action *a =
		    call.action ? api_action_find(call.action) : NULL;
		if (!a) {
			status = -1;
		} else if (a->run(&call) < 0) {
			mc_buf_reset(&out);
			api_xml_error(&out, call.err.code, call.err.message,
			              call.request_id);
			status = call.err.status;
		} else {
			status = 200;
		}
	}
	mc_buf_put_u8(&out, 0);
	*body = xstrdup((const char *)out.data);
	mc_buf_free(&out);
	api_params_free(&params);
	return status;
}

/* ec2_call expecting an error code; prints what came otherwise. */
static inline bool ec2_fails(const char *account, const char *form, int status,
                             const char *code)
{
	char *body;
	int st = ec2_call(account, form, &body);
	char want[160];
	snprintf(want, sizeof(want),
	         "<Response><Errors><Error><Code>%s</Code><Message>", code);
	bool ok = st == status && strstr(body, want) != NULL;
	if (!ok)
		fprintf(stderr, "%s: want %d %s, got %d %s\n", form, status,
		        code, st, body);
	free(body);
	return ok;
}

/* ec2_call expecting success; returns the body (caller frees). */
static inline char *ec2_ok(const char *account, const char *form)
{
	char *body;
	int st = ec2_call(account, form, &body);
	if (st != 200)
		fprintf(stderr, "%s: want 200, got %d %s\n", form, st, body);
	CHECK_EQ_U64(st, 200);
	return body;
}

/* The first needle in [p, end), or NULL. Bounded, so that walking a
 * large body costs what the walk covers (ASan's strstr measures the whole
 * rest of the string at every call). */
static inline const char *find_in(const char *p, const char *end,
                                  const char *needle)
{
	size_t n = strlen(needle);
	for (; p && end - p >= (ptrdiff_t)n; p++) {
		p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
		if (!p || memcmp(p, needle, n) == 0)
			return p;
	}
	return NULL;
}

/* Copies the text of the first <tag> in [from, end) into out. */
static inline bool xml_text_in(const char *from, const char *end,
                               const char *tag, char *out, size_t size)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *a = from ? find_in(from, end, open) : NULL;
	const char *b = a ? find_in(a, end, close) : NULL;
	if (!b || (size_t)(b - a - strlen(open)) >= size)
		return false;
	a += strlen(open);
	memcpy(out, a, (size_t)(b - a));
	out[b - a] = '\0';
	return true;
}

static inline bool xml_text(const char *from, const char *tag, char *out,
                            size_t size)
{
	return from && xml_text_in(from, from + strlen(from), tag, out, size);
}

/* "Name=value&..." from NULL-terminated name, value pairs, each value
 * URL-encoded; the caller frees. */
static inline char *form_of(const char *name, ...)
{
	struct mc_buf b;
	mc_buf_init(&b);
	va_list ap;
	va_start(ap, name);
	for (const char *n = name; n; n = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);
		if (b.len)
			mc_buf_put_u8(&b, '&');
		mc_buf_append_str(&b, n);
		mc_buf_put_u8(&b, '=');
		api_uri_encode(&b, v, strlen(v));
	}
	va_end(ap);
	mc_buf_put_u8(&b, 0);
	return (char *)b.data;
}

/* How many times needle occurs in hay. */
static inline size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	const char *end = hay + strlen(hay);
	for (const char *p = hay; (p = find_in(p, end, needle));
	     p += strlen(needle))
		n++;
	return n;
}

/* Follows NextToken through every page; returns how many groups. */
static inline size_t walk_pages(const char *account, const char *extra,
                                size_t max, size_t *pages)
{
	char token[512] = "", form[1024], last[32] = "";
	size_t total = 0;
	*pages = 0;
	for (;;) {
		snprintf(form, sizeof(form),
		         "Action=DescribeSecurityGroups&MaxResults=%zu%s%s%s",
		         max, extra, token[0] ? "&NextToken=" : "", token);
		char *body = ec2_ok(account, form);
		(*pages)++;
		size_t n = count_of(body, "<item><ownerId>");
		CHECK(n <= max);
		/* Ascending ids, none twice across pages. */
		const char *p = body, *end = body + strlen(body);
		char id[32];
		while ((p = find_in(p, end, "<item><ownerId>")) &&
		       xml_text_in(p, end, "groupId", id, sizeof(id))) {
			CHECK(strcmp(last, id) < 0);
			snprintf(last, sizeof(last), "%s", id);
			p++;
		}
		total += n;
		bool more = xml_text(body, "nextToken", token, sizeof(token));
		free(body);
		if (!more || *pages > 100)
			break;
	}
	return total;
}

#endif
