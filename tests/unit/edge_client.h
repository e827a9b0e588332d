/*
 * A test harness for the EC2 actions: an edge on a real loop (in its own
 * thread) over fake_cloud.h with two accounts, and a client that signs
 * POST forms with SigV4 as an SDK does. The fake's list refuses to nest,
 * as the peer's store does (-EBUSY), so an action that lists inside a
 * list's callback fails here too.
 */
#ifndef MALLEE_EDGE_CLIENT_H
#define MALLEE_EDGE_CLIENT_H

#include "check.h"
#include "fake_cloud.h"
#include "sigv4_client.h"

#include "apiedge_int.h"
#include "crypto.h"
#include "mem.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define KEY_A     "AKIAMALLEETESTAAAAAA"
#define SECRET_A  "secret/for+account/a"
#define ACCOUNT_A "111122223333"
#define KEY_B     "AKIAMALLEETESTBBBBBB"
#define SECRET_B  "secret/for+account/b"
#define ACCOUNT_B "444455556666"

static uv_loop_t ec_loop;
static uv_async_t ec_stopper;
static struct api_edge *ec_edge;
static int ec_port;
static bool ec_stopped;
static pthread_t ec_thread;
static struct fake_cloud ec_fake;
static struct api_cloud ec_cloud;
static bool ec_listing;
static unsigned ec_nested_lists;

static inline int ec_list(void *arg, const char *kind, const char *prefix,
                          int (*cb)(void *ctx, const char *id,
                                    const uint8_t *body, size_t len),
                          void *ctx)
{
	if (ec_listing) {
		ec_nested_lists++;
		return -EBUSY;
	}
	ec_listing = true;
	int r = fake_list(arg, kind, prefix, cb, ctx);
	ec_listing = false;
	return r;
}

static inline void ec_on_edge_stopped(void *arg)
{
	(void)arg;
	ec_stopped = true;
}

static inline void ec_on_stop(uv_async_t *a)
{
	api_edge_stop(ec_edge, ec_on_edge_stopped, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static inline void *ec_loop_main(void *arg)
{
	(void)arg;
	uv_run(&ec_loop, UV_RUN_DEFAULT);
	return NULL;
}

/* Replaces the fake's zones when set before ec_start. */
static int (*ec_zones)(void *arg,
                       int (*cb)(void *ctx, const char *zone, unsigned alive,
                                 unsigned hosts),
                       void *ctx);

/* Starts the edge for region over the fake cloud. */
static inline void ec_start(const char *region)
{
	if (mc_crypto_init() != 0)
		abort();
	fake_cloud_init(&ec_fake, &ec_cloud);
	if (ec_zones)
		ec_cloud.zones = ec_zones;
	ec_cloud.list = ec_list;
	fake_cloud_add_key(&ec_fake, KEY_A, SECRET_A, ACCOUNT_A);
	fake_cloud_add_key(&ec_fake, KEY_B, SECRET_B, ACCOUNT_B);
	CHECK(uv_loop_init(&ec_loop) == 0);
	struct api_edge_config cfg = {.region = region,
	                              .endpoint = "127.0.0.1:8773"};
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	CHECK(api_edge_start(&ec_edge, &ec_loop, (struct sockaddr *)&a, &cfg,
	                     &ec_cloud) == 0);
	ec_port = api_edge_port(ec_edge);
	CHECK(ec_port > 0);
	uv_async_init(&ec_loop, &ec_stopper, ec_on_stop);
	pthread_create(&ec_thread, NULL, ec_loop_main, NULL);
}

static inline void ec_stop(void)
{
	uv_async_send(&ec_stopper);
	pthread_join(ec_thread, NULL);
	CHECK(ec_stopped);
	CHECK(uv_loop_close(&ec_loop) == 0);
	CHECK_EQ_U64(ec_nested_lists, 0);
	fake_cloud_free(&ec_fake);
}

/* Sends one request on a new connection to the edge. */
static inline int ec_exchange(const char *raw, char **body)
{
	return sc_exchange(ec_port, raw, body);
}

/* POSTs form (already encoded) signed with SigV4 by key/secret. */
static inline int ec_call_as(const char *key, const char *secret,
                             const char *form, char **body)
{
	return sc_post_signed(ec_port, key, secret, form, body);
}

static inline int ec_call(const char *form, char **body)
{
	return ec_call_as(KEY_A, SECRET_A, form, body);
}

/* Appends &name=value (RFC 3986 encoded) to a form being built. */
static inline void ec_form(struct mc_buf *f, const char *name,
                           const char *value)
{
	if (f->len)
		mc_buf_put_u8(f, '&');
	api_uri_encode(f, name, strlen(name));
	mc_buf_put_u8(f, '=');
	api_uri_encode(f, value, strlen(value));
}

/*
 * Calls action (Version 2016-11-15) as key with the NULL-terminated
 * name, value pairs that follow; the body in *body (the caller frees).
 */
static inline int ec_vdo(const char *key, const char *secret, char **body,
                         const char *action, va_list ap)
{
	struct mc_buf f;
	mc_buf_init(&f);
	ec_form(&f, "Action", action);
	ec_form(&f, "Version", "2016-11-15");
	const char *name;
	while ((name = va_arg(ap, const char *)) != NULL)
		ec_form(&f, name, va_arg(ap, const char *));
	mc_buf_put_u8(&f, 0);
	int st = ec_call_as(key, secret, (const char *)f.data, body);
	mc_buf_free(&f);
	return st;
}

__attribute__((sentinel)) static inline int ec_do_as(const char *key,
                                                     const char *secret,
                                                     char **body,
                                                     const char *action, ...)
{
	va_list ap;
	va_start(ap, action);
	int st = ec_vdo(key, secret, body, action, ap);
	va_end(ap);
	return st;
}

/* As ec_do_as, for account A. */
__attribute__((sentinel)) static inline int ec_do(char **body,
                                                  const char *action, ...)
{
	va_list ap;
	va_start(ap, action);
	int st = ec_vdo(KEY_A, SECRET_A, body, action, ap);
	va_end(ap);
	return st;
}

/* The text of the first <tag> in xml into out (raw, not unescaped);
 * false when absent. */
static inline bool ec_text(const char *xml, const char *tag, char *out,
                           size_t size)
{
	char open[128], close[128];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *s = strstr(xml, open);
	if (!s)
		return false;
	s += strlen(open);
	const char *e = strstr(s, close);
	if (!e || (size_t)(e - s) >= size)
		return false;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = 0;
	return true;
}

/* How many times needle occurs in hay. */
static inline size_t ec_count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p;
	     p = strstr(p + strlen(needle), needle))
		n++;
	return n;
}

/* Checks an EC2 error document with its status and code. */
static inline void ec_check_error(int status, const char *body, int want_status,
                                  const char *code)
{
	char want[160];
	snprintf(want, sizeof(want),
	         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>"
	         "<Errors><Error><Code>%s</Code><Message>",
	         code);
	if (status != want_status || strncmp(body, want, strlen(want)) != 0)
		fprintf(stderr, "want %d %s, got %d %s\n", want_status, code,
		        status, body);
	CHECK_EQ_U64(status, want_status);
	CHECK(strncmp(body, want, strlen(want)) == 0);
}

/* Checks a success envelope: 200, the action's element, xmlns with the
 * version and its trailing slash. */
static inline void ec_check_ok(int status, const char *body, const char *action)
{
	char want[256];
	snprintf(want, sizeof(want),
	         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%sResponse "
	         "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
	         "<requestId>",
	         action);
	if (status != 200 || strncmp(body, want, strlen(want)) != 0)
		fprintf(stderr, "want 200 %s, got %d %s\n", action, status,
		        body);
	CHECK_EQ_U64(status, 200);
	CHECK(strncmp(body, want, strlen(want)) == 0);
	char end[128];
	snprintf(end, sizeof(end), "</%sResponse>", action);
	size_t bl = strlen(body), el = strlen(end);
	CHECK(bl >= el && strcmp(body + bl - el, end) == 0);
}

#endif
