/*
 * One HTTP/1.1 connection's protocol, with no sockets: bytes come in through
 * api_http_conn_feed(), responses leave through ops->send(). Requests are
 * parsed by http-parser; one request is handled at a time and the parser is
 * paused at the end of each, so pipelined requests are answered in order and
 * a handler may answer later (API_HTTP_PENDING) without any queue.
 */
#include "apiedge_int.h"

#include "mem.h"

#include <errno.h>
#include <http_parser.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Unparsed input kept while a request waits; past it the transport stops
 * reading, so a client that pipelines without reading cannot grow us. */
#define INPUT_HIGH_WATER (64 * 1024)
/* Buffers larger than this are freed between requests, not kept. */
#define KEEP_BUF_CAP (64 * 1024)

enum piece {
	PIECE_URL,
	PIECE_FIELD,
	PIECE_VALUE,
};

struct header_span {
	size_t name, name_len, value, value_len;
};

struct api_http_conn {
	struct api_http_limits lim;
	struct api_http_conn_ops ops;
	char *peer;
	http_parser parser;
	struct mc_buf in; /* received, not yet parsed */

	/* The request being parsed: the URL, names and values, each followed
	 * by a NUL, in head; spans index into it until the request is whole. */
	struct mc_buf head;
	struct header_span *spans;
	size_t n_spans, cap_spans;
	size_t url_len;
	enum piece piece;
	struct mc_buf body;
	bool in_message, headers_done, message_done;
	int fail_status; /* what to answer when a callback stops the parser */

	/* The request being answered. */
	struct api_http_request req;
	struct api_http_header *headers;
	struct api_http_response resp;
	bool pending, in_handler, answered_inside;
	bool keep_alive, is_head;

	bool blocked, closing, free_wanted;
	struct mc_buf out;
};

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t n);
static int on_header_field(http_parser *p, const char *at, size_t n);
static int on_header_value(http_parser *p, const char *at, size_t n);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t n);
static int on_message_complete(http_parser *p);

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void api_http_limits_default(struct api_http_limits *lim)
{
	lim->max_header_bytes = 16 * 1024;
	lim->max_headers = 100;
	lim->max_body_bytes = 1024 * 1024;
	lim->max_conns = 4096;
	lim->idle_timeout_ms = 60 * 1000;
	lim->header_timeout_ms = 10 * 1000;
}

const char *api_http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Payload Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 500 ? "Bad Request" : "Internal Server Error";
	}
}

const char *api_http_header(const struct api_http_request *req,
                            const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

void api_http_response_header(struct api_http_response *resp, const char *name,
                              const char *value)
{
	mc_buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

static void trim_buf(struct mc_buf *b)
{
	if (b->cap > KEEP_BUF_CAP)
		mc_buf_free(b);
	else
		mc_buf_reset(b);
}

static void request_reset(struct api_http_conn *c)
{
	trim_buf(&c->head);
	trim_buf(&c->body);
	c->n_spans = 0;
	c->url_len = 0;
	c->piece = PIECE_URL;
	c->in_message = c->headers_done = c->message_done = false;
	c->fail_status = 400;
	free(c->headers);
	c->headers = NULL;
	memset(&c->req, 0, sizeof(c->req));
}

struct api_http_conn *api_http_conn_new(const struct api_http_limits *lim,
                                        const struct api_http_conn_ops *ops,
                                        const char *peer)
{
	struct api_http_conn *c = xcalloc(1, sizeof(*c));
	c->lim = *lim;
	c->ops = *ops;
	c->peer = xstrdup(peer ? peer : "");
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	mc_buf_init(&c->in);
	mc_buf_init(&c->head);
	mc_buf_init(&c->body);
	mc_buf_init(&c->out);
	mc_buf_init(&c->resp.headers);
	mc_buf_init(&c->resp.body);
	request_reset(c);
	return c;
}

static void conn_destroy(struct api_http_conn *c)
{
	mc_buf_free(&c->in);
	mc_buf_free(&c->head);
	mc_buf_free(&c->body);
	mc_buf_free(&c->out);
	mc_buf_free(&c->resp.headers);
	mc_buf_free(&c->resp.body);
	free(c->spans);
	free(c->headers);
	free(c->peer);
	free(c);
}

void api_http_conn_free(struct api_http_conn *c)
{
	if (!c)
		return;
	if (c->pending) {
		/* The handler still holds req and resp: free on its answer. */
		c->free_wanted = true;
		return;
	}
	conn_destroy(c);
}

enum api_http_phase api_http_conn_phase(const struct api_http_conn *c)
{
	if (c->closing)
		return API_HTTP_CLOSING;
	if (c->pending || c->blocked)
		return API_HTTP_WAITING;
	if (c->in_message)
		return c->headers_done ? API_HTTP_BODY : API_HTTP_HEAD;
	return c->in.len ? API_HTTP_HEAD : API_HTTP_IDLE;
}

bool api_http_conn_wants_input(const struct api_http_conn *c)
{
	return !c->closing && c->in.len < INPUT_HIGH_WATER;
}

/* ---- parser callbacks --------------------------------------------------- */

static struct api_http_conn *conn_of(http_parser *p)
{
	return p->data;
}

/* Stops the parser with the status to answer. */
static int stop(struct api_http_conn *c, int status)
{
	c->fail_status = status;
	return -1;
}

static int on_message_begin(http_parser *p)
{
	struct api_http_conn *c = conn_of(p);
	c->in_message = true;
	return 0;
}

/* Counts toward the header limit everything the head holds. */
static bool head_fits(struct api_http_conn *c, size_t more)
{
	return c->head.len + more <= c->lim.max_header_bytes;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct api_http_conn *c = conn_of(p);
	if (!head_fits(c, n))
		return stop(c, 431);
	mc_buf_append(&c->head, at, n);
	c->url_len += n;
	return 0;
}

static void end_piece(struct api_http_conn *c)
{
	mc_buf_put_u8(&c->head, 0);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct api_http_conn *c = conn_of(p);
	/* Trailers of a chunked body come after the head is complete: the
	 * EC2 API has no use for them, and the head must not grow. */
	if (c->headers_done)
		return 0;
	if (!head_fits(c, n + 2))
		return stop(c, 431);
	if (c->piece != PIECE_FIELD) {
		end_piece(c); /* the URL's or the previous value's */
		if (c->n_spans >= c->lim.max_headers)
			return stop(c, 431);
		if (c->n_spans == c->cap_spans) {
			c->cap_spans = c->cap_spans ? 2 * c->cap_spans : 16;
			c->spans = xrealloc(c->spans,
			                    c->cap_spans * sizeof(*c->spans));
		}
		struct header_span *h = &c->spans[c->n_spans++];
		h->name = c->head.len;
		h->name_len = 0;
		h->value = 0;
		h->value_len = 0;
		c->piece = PIECE_FIELD;
	}
	mc_buf_append(&c->head, at, n);
	c->spans[c->n_spans - 1].name_len += n;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct api_http_conn *c = conn_of(p);
	if (c->headers_done)
		return 0; /* a trailer */
	if (!head_fits(c, n + 2))
		return stop(c, 431);
	if (c->n_spans == 0)
		return stop(c, 400);
	struct header_span *h = &c->spans[c->n_spans - 1];
	if (c->piece != PIECE_VALUE) {
		end_piece(c); /* the name */
		h->value = c->head.len;
		c->piece = PIECE_VALUE;
	}
	mc_buf_append(&c->head, at, n);
	h->value_len += n;
	return 0;
}

static void send_continue(struct api_http_conn *c)
{
	static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	mc_buf_append(&c->out, line, sizeof(line) - 1);
	c->ops.send(c->ops.owner, &c->out);
	mc_buf_reset(&c->out);
}

static bool span_is(const struct api_http_conn *c, size_t off, size_t len,
                    const char *s)
{
	return strlen(s) == len &&
	       strncasecmp((const char *)c->head.data + off, s, len) == 0;
}

static int on_headers_complete(http_parser *p)
{
	struct api_http_conn *c = conn_of(p);
	if (c->piece == PIECE_FIELD)
		return stop(c, 400); /* a name without a value */
	end_piece(c);
	c->headers_done = true;
	if (p->http_major != 1)
		return stop(c, 505);
	if (p->method == HTTP_CONNECT)
		return stop(c, 400);
	if ((p->flags & F_CONTENTLENGTH) &&
	    p->content_length > c->lim.max_body_bytes)
		return stop(c, 413);
	for (size_t i = 0; i < c->n_spans; i++) {
		const struct header_span *h = &c->spans[i];
		if (span_is(c, h->name, h->name_len, "expect") &&
		    span_is(c, h->value, h->value_len, "100-continue") &&
		    p->http_minor >= 1 && http_body_is_final(p) == 0)
			send_continue(c);
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct api_http_conn *c = conn_of(p);
	if (c->body.len + n > c->lim.max_body_bytes)
		return stop(c, 413);
	mc_buf_append(&c->body, at, n);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct api_http_conn *c = conn_of(p);
	c->message_done = true;
	/* Hand the request over before the parser looks at the next one. */
	http_parser_pause(p, 1);
	return 0;
}

/* ---- requests and responses --------------------------------------------- */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Points req at the finished head; trims blanks around values in place. */
static void request_build(struct api_http_conn *c)
{
	char *head = (char *)c->head.data;
	struct api_http_request *r = &c->req;
	r->method = http_method_str((enum http_method)c->parser.method);
	r->target = head;
	r->http_minor = c->parser.http_minor;
	r->peer = c->peer;

	/* The path ends at '?' (or '#', which clients should not send). */
	size_t plen = strcspn(head, "?#");
	mc_buf_put_u8(&c->body, 0); /* NUL after the body, not counted */
	c->body.len--;
	r->body = c->body.data;
	r->body_len = c->body.len;

	c->headers = xcalloc(c->n_spans + 1, sizeof(*c->headers));
	for (size_t i = 0; i < c->n_spans; i++) {
		struct header_span *h = &c->spans[i];
		char *v = head + h->value;
		size_t len = h->value_len;
		while (len && is_blank(v[len - 1]))
			len--;
		v[len] = 0;
		while (is_blank(*v))
			v++;
		c->headers[i].name = head + h->name;
		c->headers[i].value = v;
	}
	r->headers = c->headers;
	r->n_headers = c->n_spans;

	/* Path and query as separate strings: copies at the end of head
	 * (head no longer grows, so earlier pointers stay valid only if we
	 * reserve first). */
	size_t qlen = 0;
	const char *q = "";
	if (head[plen] == '?') {
		q = head + plen + 1;
		qlen = strcspn(q, "#");
	}
	mc_buf_reserve(&c->head, plen + qlen + 2);
	/* reserve may have moved head: recompute every pointer */
	if ((char *)c->head.data != head) {
		ptrdiff_t d = (char *)c->head.data - head;
		r->target += d;
		for (size_t i = 0; i < c->n_spans; i++) {
			c->headers[i].name += d;
			c->headers[i].value += d;
		}
		q = qlen ? q + d : "";
		head = (char *)c->head.data;
	}
	char *path = (char *)c->head.data + c->head.len;
	memcpy(path, head, plen);
	path[plen] = 0;
	char *query = path + plen + 1;
	memcpy(query, q, qlen);
	query[qlen] = 0;
	c->head.len += plen + qlen + 2;
	r->path = path;
	r->query = query;
}

static void response_reset(struct api_http_response *resp)
{
	resp->status = 200;
	trim_buf(&resp->headers);
	trim_buf(&resp->body);
	resp->close = false;
}

/* Writes resp to out and sends it. */
static void response_send(struct api_http_conn *c, struct api_http_response *r,
                          bool keep_alive, bool is_head, int http_minor)
{
	mc_buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", r->status,
	              api_http_reason(r->status));
	mc_buf_printf(&c->out, "Content-Length: %zu\r\n", r->body.len);
	if (!keep_alive)
		mc_buf_append_str(&c->out, "Connection: close\r\n");
	else if (http_minor == 0)
		mc_buf_append_str(&c->out, "Connection: keep-alive\r\n");
	mc_buf_append(&c->out, r->headers.data, r->headers.len);
	mc_buf_append_str(&c->out, "\r\n");
	if (!is_head)
		mc_buf_append(&c->out, r->body.data, r->body.len);
	c->ops.send(c->ops.owner, &c->out);
	mc_buf_reset(&c->out);
}

/* Answers an error of our own and stops reading the connection. */
static void conn_fail(struct api_http_conn *c, int status)
{
	struct api_http_response *r = &c->resp;
	response_reset(r);
	r->status = status;
	if (c->ops.error_body)
		c->ops.error_body(c->ops.arg, r);
	c->closing = true;
	response_send(c, r, false, false, 1);
	mc_buf_free(&c->in);
}

static void conn_run(struct api_http_conn *c);

static void exchange_finish(struct api_http_conn *c)
{
	struct api_http_response *r = &c->resp;
	bool keep = c->keep_alive && !r->close;
	c->pending = false;
	c->answered_inside = false;
	if (c->free_wanted) {
		conn_destroy(c);
		return;
	}
	response_send(c, r, keep, c->is_head, c->req.http_minor);
	response_reset(r);
	request_reset(c);
	if (!keep) {
		c->closing = true;
		mc_buf_free(&c->in);
	}
}

void api_http_respond(struct api_http_response *resp)
{
	struct api_http_conn *c =
	    (struct api_http_conn *)((char *)resp -
	                             offsetof(struct api_http_conn, resp));
	if (c->in_handler) {
		c->answered_inside = true;
		return;
	}
	bool destroy = c->free_wanted;
	exchange_finish(c);
	if (!destroy)
		conn_run(c);
}

static void dispatch(struct api_http_conn *c)
{
	request_build(c);
	c->keep_alive =
	    http_should_keep_alive(&c->parser) && !c->parser.upgrade;
	c->is_head = c->parser.method == HTTP_HEAD;
	response_reset(&c->resp);
	c->pending = true;
	c->in_handler = true;
	enum api_http_result res = c->ops.handle(c->ops.arg, &c->req, &c->resp);
	c->in_handler = false;
	if (res == API_HTTP_DONE || c->answered_inside)
		exchange_finish(c);
}

static int status_of(const struct api_http_conn *c, enum http_errno e)
{
	switch (e) {
	case HPE_CB_url:
	case HPE_CB_header_field:
	case HPE_CB_header_value:
	case HPE_CB_headers_complete:
	case HPE_CB_body:
		return c->fail_status;
	case HPE_HEADER_OVERFLOW:
		return 431;
	case HPE_INVALID_VERSION:
		return 505;
	default:
		return 400;
	}
}

/* Parses what is buffered until a request waits or the input runs out. */
static void conn_run(struct api_http_conn *c)
{
	while (!c->closing && !c->pending && !c->blocked && c->in.len) {
		size_t used = http_parser_execute(
		    &c->parser, &settings, (const char *)c->in.data, c->in.len);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			mc_buf_consume(&c->in, used);
			dispatch(c);
			continue;
		}
		if (e != HPE_OK) {
			conn_fail(c, status_of(c, e));
			return;
		}
		if (used != c->in.len) {
			/* After an upgrade the bytes are not HTTP anymore. */
			conn_fail(c, 400);
			return;
		}
		mc_buf_reset(&c->in);
	}
}

void api_http_conn_feed(struct api_http_conn *c, const void *data, size_t n)
{
	if (c->closing || n == 0)
		return;
	mc_buf_append(&c->in, data, n);
	conn_run(c);
}

void api_http_conn_set_blocked(struct api_http_conn *c, bool blocked)
{
	c->blocked = blocked;
	if (!blocked)
		conn_run(c);
}

void api_http_conn_timeout(struct api_http_conn *c)
{
	if (c->closing || c->pending)
		return;
	if (c->in_message || c->in.len)
		conn_fail(c, 408);
	else
		c->closing = true; /* idle: just close */
}
