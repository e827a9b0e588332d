/*
 * The HTTP server on a real loop (in its own thread) with real sockets from
 * the test: keep-alive, pipelining in order, chunked bodies, 100-continue,
 * asynchronous answers, the limits (431, 413, 505, 400, 408, connections),
 * 1000 concurrent connections, and a clean uv_loop_close() at the end.
 */
#include "check.h"

#include "apiedge_int.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MANY 1000

static uv_loop_t loop;
static uv_async_t stopper;
static struct api_http_server *srv, *small_srv;
static int port, small_port;
static int closed_servers;

struct slow {
	uv_timer_t timer;
	struct api_http_response *resp;
};

static void on_slow_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_slow(uv_timer_t *t)
{
	struct slow *s = t->data;
	mc_buf_append_str(&s->resp->body, "slow");
	api_http_respond(s->resp);
	uv_close((uv_handle_t *)&s->timer, on_slow_closed);
}

/* Echoes what it got; "/slow" answers 50 ms later. */
static enum api_http_result handler(void *arg,
                                    const struct api_http_request *req,
                                    struct api_http_response *resp)
{
	(void)arg;
	if (strcmp(req->path, "/slow") == 0) {
		struct slow *s = xcalloc(1, sizeof(*s));
		s->resp = resp;
		uv_timer_init(&loop, &s->timer);
		s->timer.data = s;
		uv_timer_start(&s->timer, on_slow, 50, 0);
		return API_HTTP_PENDING;
	}
	if (strcmp(req->path, "/inside") == 0) {
		/* Answering from inside the handler is allowed too. */
		mc_buf_append_str(&resp->body, "inside");
		api_http_respond(resp);
		return API_HTTP_PENDING;
	}
	const char *x = api_http_header(req, "x-test");
	mc_buf_printf(&resp->body, "%s %s ?%s body=%zu:", req->method,
	              req->path, req->query, req->body_len);
	mc_buf_append(&resp->body, req->body, req->body_len);
	if (x)
		mc_buf_printf(&resp->body, " x=[%s]", x);
	api_http_response_header(resp, "Content-Type", "text/plain");
	if (strcmp(req->path, "/close") == 0)
		resp->close = true;
	return API_HTTP_DONE;
}

static void error_body(void *arg, struct api_http_response *resp)
{
	(void)arg;
	mc_buf_printf(&resp->body, "error %d", resp->status);
}

static void on_server_closed(void *arg)
{
	(void)arg;
	closed_servers++;
}

static void on_stop(uv_async_t *a)
{
	api_http_server_close(srv, on_server_closed, NULL);
	api_http_server_close(small_srv, on_server_closed, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
	(void)arg;
	uv_run(&loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ---- a blocking client -------------------------------------------------- */

struct client {
	int fd;
	char buf[1 << 16];
	size_t len;
};

struct reply {
	int status;
	char head[4096];
	char body[4096];
	size_t body_len;
};

static int client_open(struct client *c, int to_port)
{
	c->len = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = 10};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)to_port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = -errno;
		close(c->fd);
		return e;
	}
	return 0;
}

static void client_send(struct client *c, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* Reads more; returns false at EOF, error or timeout. */
static bool client_fill(struct client *c)
{
	if (c->len == sizeof(c->buf))
		return false;
	ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (r <= 0)
		return false;
	c->len += (size_t)r;
	return true;
}

static bool head_reply; /* the next reply answers HEAD: no body */

/* Reads one response; false when the connection ended first. */
static bool client_reply(struct client *c, struct reply *r)
{
	memset(r, 0, sizeof(*r));
	char *end;
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (!client_fill(c))
			return false;
	size_t hlen = (size_t)(end - c->buf) + 4;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, c->buf);
	r->status = atoi(r->head + 9);
	const char *cl = strcasestr(r->head, "\r\nContent-Length:");
	size_t blen = cl ? (size_t)atol(cl + 17) : 0;
	if (r->status == 100 || head_reply) {
		head_reply = false;
		blen = 0;
	}
	while (c->len < hlen + blen)
		if (!client_fill(c))
			return false;
	r->body_len = blen < sizeof(r->body) - 1 ? blen : sizeof(r->body) - 1;
	memcpy(r->body, c->buf + hlen, r->body_len);
	r->body[r->body_len] = 0;
	memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
	c->len -= hlen + blen;
	return true;
}

/* True once the server has closed the connection. */
static bool client_eof(struct client *c)
{
	char b[256];
	ssize_t r;
	while ((r = recv(c->fd, b, sizeof(b), 0)) > 0)
		;
	return r == 0 || errno == ECONNRESET;
}

static void client_close(struct client *c)
{
	close(c->fd);
}

/* ---- tests -------------------------------------------------------------- */

static void test_keep_alive(void)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct reply r;
	CHECK(client_open(c, port) == 0);
	for (int i = 0; i < 3; i++) {
		client_send(c, "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n"
		               "X-Test:   spaced value  \r\n\r\n");
		CHECK(client_reply(c, &r));
		CHECK_EQ_U64(r.status, 200);
		CHECK_STR(r.body, "GET /a ?x=1 body=0: x=[spaced value]");
		CHECK(strcasestr(r.head, "Connection: close") == NULL);
	}
	/* HTTP/1.0 with keep-alive asked for. */
	client_send(c, "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	CHECK(client_reply(c, &r));
	CHECK(strcasestr(r.head, "Connection: keep-alive") != NULL);
	/* HEAD: the length of the body, not the body. */
	client_send(c, "HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n"
	               "GET /d HTTP/1.1\r\nHost: h\r\n\r\n");
	head_reply = true;
	CHECK(client_reply(c, &r));
	CHECK(strstr(r.head, "Content-Length: 17\r\n") != NULL);
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "GET /d ? body=0:");
	client_close(c);
	free(c);
}

static void test_pipelining(void)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct reply r;
	CHECK(client_open(c, port) == 0);
	/* The slow one first: the others must wait for it. */
	client_send(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"
	               "POST /p1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	               "\r\nhello"
	               "GET /inside HTTP/1.1\r\nHost: h\r\n\r\n"
	               "GET /p3 HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "slow");
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "POST /p1 ? body=5:hello");
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "inside");
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "GET /p3 ? body=0:");
	/* Byte by byte works as well. */
	const char *req = "POST /bytes HTTP/1.1\r\nHost: h\r\n"
	                  "Content-Length: 3\r\n\r\nabc";
	for (const char *p = req; *p; p++) {
		char one[2] = {*p, 0};
		client_send(c, one);
	}
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "POST /bytes ? body=3:abc");
	client_close(c);
	free(c);
}

static void test_chunked_and_continue(void)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct reply r;
	CHECK(client_open(c, port) == 0);
	client_send(c, "POST /chunk HTTP/1.1\r\nHost: h\r\n"
	               "Transfer-Encoding: chunked\r\n\r\n"
	               "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n"
	               "Trailer: x\r\n\r\n");
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "POST /chunk ? body=11:hello world");

	client_send(c, "POST /cont HTTP/1.1\r\nHost: h\r\nContent-Length: 4"
	               "\r\nExpect: 100-continue\r\n\r\n");
	CHECK(client_reply(c, &r));
	CHECK_EQ_U64(r.status, 100);
	client_send(c, "data");
	CHECK(client_reply(c, &r));
	CHECK_STR(r.body, "POST /cont ? body=4:data");
	client_close(c);
	free(c);
}

/* Sends req on a new connection; expects status and then a close. */
static void expect_error(const char *req, int status)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct reply r;
	CHECK(client_open(c, port) == 0);
	client_send(c, req);
	CHECK(client_reply(c, &r));
	if (r.status != status)
		fprintf(stderr, "got %d for %.40s\n", r.status, req);
	CHECK_EQ_U64(r.status, status);
	CHECK(strcasestr(r.head, "Connection: close") != NULL);
	char want[32];
	snprintf(want, sizeof(want), "error %d", status);
	CHECK_STR(r.body, want);
	CHECK(client_eof(c));
	client_close(c);
	free(c);
}

static void test_errors(void)
{
	char *big = xmalloc(20000);
	strcpy(big, "GET / HTTP/1.1\r\nX-Big: ");
	size_t n = strlen(big);
	memset(big + n, 'a', 17000);
	strcpy(big + n + 17000, "\r\n\r\n");
	expect_error(big, 431);
	free(big);

	struct mc_buf many;
	mc_buf_init(&many);
	mc_buf_append_str(&many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 150; i++)
		mc_buf_printf(&many, "X-H%d: v\r\n", i);
	mc_buf_append_str(&many, "\r\n");
	char *m = mc_buf_strdup(&many);
	expect_error(m, 431);
	free(m);
	mc_buf_free(&many);

	expect_error("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413);
	/* A chunked body past the limit. */
	struct mc_buf ch;
	mc_buf_init(&ch);
	mc_buf_append_str(&ch, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
	                       "\r\n\r\n");
	char *chunk = xmalloc(65536 + 1);
	memset(chunk, 'z', 65536);
	chunk[65536] = 0;
	for (int i = 0; i < 17; i++) {
		mc_buf_append_str(&ch, "10000\r\n");
		mc_buf_append_str(&ch, chunk);
		mc_buf_append_str(&ch, "\r\n");
	}
	char *cs = mc_buf_strdup(&ch);
	expect_error(cs, 413);
	free(cs);
	free(chunk);
	mc_buf_free(&ch);

	expect_error("GET / HTTP/2.0\r\n\r\n", 505);
	expect_error("GARBAGE\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nContent-Length: 1\r\n"
	             "Transfer-Encoding: chunked\r\n\r\n",
	             400);
	expect_error("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400);
	expect_error("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void test_connection_close(void)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct reply r;
	CHECK(client_open(c, port) == 0);
	client_send(c, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close, TE\r\n"
	               "\r\n");
	CHECK(client_reply(c, &r));
	CHECK_EQ_U64(r.status, 200);
	CHECK(strcasestr(r.head, "Connection: close") != NULL);
	CHECK(client_eof(c));
	client_close(c);

	/* The handler can close too; a request after it is not answered. */
	CHECK(client_open(c, port) == 0);
	client_send(c, "GET /close HTTP/1.1\r\nHost: h\r\n\r\n"
	               "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(client_reply(c, &r));
	CHECK(strcasestr(r.head, "Connection: close") != NULL);
	CHECK(!client_reply(c, &r));
	client_close(c);

	/* HTTP/1.0 without keep-alive closes. */
	CHECK(client_open(c, port) == 0);
	client_send(c, "GET /old HTTP/1.0\r\n\r\n");
	CHECK(client_reply(c, &r));
	CHECK(client_eof(c));
	client_close(c);
	free(c);
}

static void test_slow_client(void)
{
	struct client *c = xcalloc(1, sizeof(*c));
	struct reply r;
	CHECK(client_open(c, port) == 0);
	client_send(c, "GET /slowloris HTTP/1.1\r\nHost: h\r\n");
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	CHECK(client_reply(c, &r));
	gettimeofday(&t1, NULL);
	CHECK_EQ_U64(r.status, 408);
	double s = (double)(t1.tv_sec - t0.tv_sec) +
	           (double)(t1.tv_usec - t0.tv_usec) / 1e6;
	CHECK(s > 0.2 && s < 3);
	CHECK(client_eof(c));
	client_close(c);
	free(c);
}

static void test_max_conns(void)
{
	struct client *c = xcalloc(3, sizeof(*c));
	struct reply r;
	for (int i = 0; i < 2; i++) {
		CHECK(client_open(&c[i], small_port) == 0);
		client_send(&c[i], "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
		CHECK(client_reply(&c[i], &r));
	}
	CHECK(client_open(&c[2], small_port) == 0);
	client_send(&c[2], "GET /no HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK(!client_reply(&c[2], &r));
	for (int i = 0; i < 3; i++)
		client_close(&c[i]);
	free(c);
}

static void test_many(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * MANY + 64) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct client *c = xcalloc(MANY, sizeof(*c));
	int opened = 0, answered = 0;
	for (int i = 0; i < MANY; i++)
		opened += client_open(&c[i], port) == 0;
	CHECK_EQ_U64(opened, MANY);
	for (int i = 0; i < opened; i++) {
		char req[128];
		snprintf(req, sizeof(req),
		         "GET /n%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
		client_send(&c[i], req);
	}
	for (int i = 0; i < opened; i++) {
		struct reply r;
		char want[64];
		snprintf(want, sizeof(want), "GET /n%d ? body=0:", i);
		answered += client_reply(&c[i], &r) && r.status == 200 &&
		            strcmp(r.body, want) == 0;
	}
	CHECK_EQ_U64(answered, MANY);
	for (int i = 0; i < opened; i++)
		client_close(&c[i]);
	free(c);
}

int main(void)
{
	struct api_http_limits lim;
	api_http_limits_default(&lim);
	lim.header_timeout_ms = 400;
	lim.idle_timeout_ms = 5000;
	struct api_http_conn_ops ops = {.handle = handler,
	                                .error_body = error_body};
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);

	CHECK(uv_loop_init(&loop) == 0);
	srv = api_http_server_new(&loop, &lim, &ops);
	CHECK(api_http_server_listen(srv, (struct sockaddr *)&a, 1024) == 0);
	port = api_http_server_port(srv);
	lim.max_conns = 2;
	small_srv = api_http_server_new(&loop, &lim, &ops);
	CHECK(api_http_server_listen(small_srv, (struct sockaddr *)&a, 16) ==
	      0);
	small_port = api_http_server_port(small_srv);
	CHECK(port > 0 && small_port > 0);
	uv_async_init(&loop, &stopper, on_stop);
	pthread_t th;
	pthread_create(&th, NULL, loop_main, NULL);

	RUN(test_keep_alive);
	RUN(test_pipelining);
	RUN(test_chunked_and_continue);
	RUN(test_errors);
	RUN(test_connection_close);
	RUN(test_slow_client);
	RUN(test_max_conns);
	RUN(test_many);

	uv_async_send(&stopper);
	pthread_join(th, NULL);
	CHECK_EQ_U64(closed_servers, 2);
	CHECK(uv_loop_close(&loop) == 0);
	return check_summary();
}
