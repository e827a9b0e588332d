/*
 * The HTTP server on the loop: accepts TCP connections, feeds what they send
 * to their http_conn, writes the responses, and enforces the limits that
 * need a clock or a socket (connections, idle and slow clients, backlog of
 * unread responses). All protocol decisions are in http_conn.c.
 */
#include "apiedge_int.h"

#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READ_BUF_BYTES (64 * 1024)
/* Responses queued but unread by the client before we stop answering. */
#define WRITE_HIGH_WATER (1024 * 1024)
#define WRITE_LOW_WATER  (256 * 1024)
/* After `Connection: close`, how long we drain the client before closing. */
#define LINGER_MS 5000

struct http_client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown;
	struct api_http_server *srv;
	struct api_http_conn *conn;
	struct api_tls_conn *tls; /* NULL on plain HTTP */
	struct http_client *prev, *next;
	enum api_http_phase timed_phase; /* what the timer is set for */
	int handles;                     /* open uv handles */
	bool reading, eof, broken, closing, shut;
};

struct http_write {
	uv_write_t req;
	struct http_client *cl;
	uint8_t *data;
	size_t len;
};

struct api_http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	struct api_http_limits lim;
	struct api_http_conn_ops ops;
	struct api_tls *tls;
	struct http_client *clients;
	size_t n_clients;
	size_t rejecting; /* refused connections still closing */
	bool listening, closing, listener_open;
	void (*done)(void *);
	void *done_arg;
	char read_buf[READ_BUF_BYTES];
};

static void client_update(struct http_client *cl);
static void client_close(struct http_client *cl);

static void server_maybe_done(struct api_http_server *s)
{
	if (!s->closing || s->listener_open || s->n_clients || s->rejecting)
		return;
	void (*done)(void *) = s->done;
	void *arg = s->done_arg;
	free(s);
	if (done)
		done(arg);
}

static void on_client_handle_closed(uv_handle_t *h)
{
	struct http_client *cl = h->data;
	if (--cl->handles > 0)
		return;
	struct api_http_server *s = cl->srv;
	free(cl);
	s->n_clients--;
	server_maybe_done(s);
}

static void client_close(struct http_client *cl)
{
	if (cl->closing)
		return;
	cl->closing = true;
	struct api_http_server *s = cl->srv;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	/* A conn whose handler still works is freed when it answers; it
	 * never calls send again. */
	api_http_conn_free(cl->conn);
	cl->conn = NULL;
	api_tls_conn_free(cl->tls);
	cl->tls = NULL;
	uv_close((uv_handle_t *)&cl->timer, on_client_handle_closed);
	uv_close((uv_handle_t *)&cl->tcp, on_client_handle_closed);
}

static void on_write(uv_write_t *req, int status)
{
	struct http_write *w = (struct http_write *)req;
	struct http_client *cl = w->cl;
	free(w->data);
	free(w);
	if (cl->closing)
		return;
	if (status < 0) {
		client_close(cl);
		return;
	}
	if (cl->tcp.write_queue_size < WRITE_LOW_WATER &&
	    api_http_conn_phase(cl->conn) == API_HTTP_WAITING)
		api_http_conn_set_blocked(cl->conn, false);
	client_update(cl);
}

static void on_timer(uv_timer_t *t)
{
	struct http_client *cl = t->data;
	if (cl->broken || cl->shut) {
		client_close(cl);
		return;
	}
	api_http_conn_timeout(cl->conn);
	client_update(cl);
}

/* Writes the bytes of out (taking its buffer) to the socket. */
static void raw_write(struct http_client *cl, struct mc_buf *out)
{
	if (cl->closing || cl->broken || out->len == 0)
		return;
	struct http_write *w = xmalloc(sizeof(*w));
	w->cl = cl;
	w->data = out->data;
	w->len = out->len;
	mc_buf_init(out);
	uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
	int rc = uv_write(&w->req, (uv_stream_t *)&cl->tcp, &buf, 1, on_write);
	if (rc < 0) {
		free(w->data);
		free(w);
		/* We may be deep inside the conn: close from the timer. */
		cl->broken = true;
		uv_timer_start(&cl->timer, on_timer, 0, 0);
		return;
	}
	if (cl->conn && cl->tcp.write_queue_size > WRITE_HIGH_WATER)
		api_http_conn_set_blocked(cl->conn, true);
}

/* ops.send: the conn's responses, encrypted first under TLS. */
static void client_send(void *owner, struct mc_buf *out)
{
	struct http_client *cl = owner;
	if (!cl->tls) {
		raw_write(cl, out);
		return;
	}
	struct mc_buf enc;
	mc_buf_init(&enc);
	api_tls_conn_send(cl->tls, out->data, out->len, &enc);
	mc_buf_reset(out);
	raw_write(cl, &enc);
	mc_buf_free(&enc);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status;
	/* The client reads the rest and closes; the timer or EOF ends us. */
}

static void arm(struct http_client *cl, uint64_t ms)
{
	uv_timer_start(&cl->timer, on_timer, ms, 0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void set_reading(struct http_client *cl, bool on)
{
	if (on == cl->reading || cl->eof)
		return;
	if (on)
		cl->reading = uv_read_start((uv_stream_t *)&cl->tcp, on_alloc,
		                            on_read) == 0;
	else {
		uv_read_stop((uv_stream_t *)&cl->tcp);
		cl->reading = false;
	}
}

/* Brings timers, reading and closing in line with the conn's phase. */
static void client_update(struct http_client *cl)
{
	if (cl->closing || cl->broken)
		return;
	const struct api_http_limits *lim = &cl->srv->lim;
	enum api_http_phase ph = api_http_conn_phase(cl->conn);
	if (ph == API_HTTP_CLOSING) {
		if (cl->shut)
			return;
		if (cl->eof) {
			if (cl->tcp.write_queue_size == 0)
				client_close(cl);
			return;
		}
		if (cl->tcp.write_queue_size)
			return; /* on_write comes back here */
		/* Half-close, then drain whatever the client still sends so
		 * that our last response is not lost to a reset. */
		if (cl->tls) {
			struct mc_buf enc;
			mc_buf_init(&enc);
			api_tls_conn_close_notify(cl->tls, &enc);
			raw_write(cl, &enc);
			mc_buf_free(&enc);
		}
		cl->shut = true;
		if (uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->tcp,
		                on_shutdown) < 0) {
			client_close(cl);
			return;
		}
		set_reading(cl, true);
		arm(cl, LINGER_MS);
		return;
	}
	if (cl->eof && ph != API_HTTP_WAITING &&
	    cl->tcp.write_queue_size == 0) {
		client_close(cl);
		return;
	}
	set_reading(cl, api_http_conn_wants_input(cl->conn));
	switch (ph) {
	case API_HTTP_WAITING:
		uv_timer_stop(&cl->timer);
		break;
	case API_HTTP_HEAD:
		/* From the request's first byte, not from its last read. */
		if (cl->timed_phase != API_HTTP_HEAD)
			arm(cl, lim->header_timeout_ms);
		break;
	default:
		arm(cl, lim->idle_timeout_ms);
		break;
	}
	cl->timed_phase = ph;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct http_client *cl = h->data;
	/* One buffer per server: the loop runs read callbacks one at a time
	 * and the conn copies what it keeps. */
	*buf = uv_buf_init(cl->srv->read_buf, READ_BUF_BYTES);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct http_client *cl = stream->data;
	if (cl->closing)
		return;
	if (nread == UV_EOF) {
		cl->eof = true;
		uv_read_stop(stream);
		cl->reading = false;
		if (cl->shut) {
			client_close(cl);
			return;
		}
		client_update(cl);
		return;
	}
	if (nread < 0) {
		client_close(cl);
		return;
	}
	if (nread == 0 || cl->shut)
		return; /* lingering: discard */
	if (!cl->tls) {
		api_http_conn_feed(cl->conn, buf->base, (size_t)nread);
		client_update(cl);
		return;
	}
	struct mc_buf plain, enc;
	mc_buf_init(&plain);
	mc_buf_init(&enc);
	int rc =
	    api_tls_conn_recv(cl->tls, buf->base, (size_t)nread, &plain, &enc);
	raw_write(cl, &enc);
	if (plain.len)
		api_http_conn_feed(cl->conn, plain.data, plain.len);
	mc_buf_free(&plain);
	mc_buf_free(&enc);
	if (rc < 0 && !cl->closing) {
		/* A TLS error or close_notify: nothing more can be read. */
		cl->eof = true;
		uv_read_stop(stream);
		cl->reading = false;
	}
	client_update(cl);
}

static void on_reject_closed(uv_handle_t *h)
{
	struct api_http_server *s = h->data;
	free(h);
	s->rejecting--;
	server_maybe_done(s);
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	out[0] = 0;
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
	else if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct api_http_server *s = listener->data;
	if (status < 0 || s->closing)
		return;
	if (s->n_clients >= s->lim.max_conns) {
		/* Accept and close at once: a full backlog helps no one. */
		uv_tcp_t *t = xmalloc(sizeof(*t));
		uv_tcp_init(s->loop, t);
		t->data = s;
		s->rejecting++;
		if (uv_accept(listener, (uv_stream_t *)t) == 0)
			uv_tcp_close_reset(t, on_reject_closed);
		else
			uv_close((uv_handle_t *)t, on_reject_closed);
		return;
	}
	struct http_client *cl = xcalloc(1, sizeof(*cl));
	cl->srv = s;
	uv_tcp_init(s->loop, &cl->tcp);
	uv_timer_init(s->loop, &cl->timer);
	cl->tcp.data = cl;
	cl->timer.data = cl;
	cl->handles = 2;
	s->n_clients++;
	cl->next = s->clients;
	if (s->clients)
		s->clients->prev = cl;
	s->clients = cl;
	if (uv_accept(listener, (uv_stream_t *)&cl->tcp) != 0) {
		cl->conn = NULL;
		client_close(cl);
		return;
	}
	uv_tcp_nodelay(&cl->tcp, 1);
	char peer[64];
	peer_name(&cl->tcp, peer, sizeof(peer));
	struct api_http_conn_ops ops = s->ops;
	ops.send = client_send;
	ops.owner = cl;
	cl->conn = api_http_conn_new(&s->lim, &ops, peer);
	if (s->tls)
		cl->tls = api_tls_conn_new(s->tls);
	cl->timed_phase = API_HTTP_CLOSING; /* nothing armed yet */
	client_update(cl);
}

struct api_http_server *api_http_server_new(uv_loop_t *loop,
                                            const struct api_http_limits *lim,
                                            const struct api_http_conn_ops *ops)
{
	struct api_http_server *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->lim = *lim;
	s->ops = *ops;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	s->listener_open = true;
	return s;
}

void api_http_server_set_tls(struct api_http_server *s, struct api_tls *tls)
{
	s->tls = tls;
}

int api_http_server_listen(struct api_http_server *s,
                           const struct sockaddr *addr, int backlog)
{
	int rc = uv_tcp_bind(&s->listener, addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, backlog,
		               on_connection);
	if (rc == 0)
		s->listening = true;
	return rc;
}

int api_http_server_port(const struct api_http_server *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (!s->listening ||
	    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

size_t api_http_server_conn_count(const struct api_http_server *s)
{
	return s->n_clients;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct api_http_server *s = h->data;
	s->listener_open = false;
	server_maybe_done(s);
}

void api_http_server_close(struct api_http_server *s, void (*done)(void *),
                           void *arg)
{
	s->closing = true;
	s->done = done;
	s->done_arg = arg;
	while (s->clients)
		client_close(s->clients);
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
