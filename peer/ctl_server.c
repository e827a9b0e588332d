#include "ctl.h"

#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ctl_client;

struct peer_ctl {
	uv_pipe_t listener;
	peer_ctl_handler handler;
	void *arg;
	char *path;
	struct ctl_client *clients;
	bool stopping;
};

struct ctl_client {
	uv_pipe_t pipe;
	struct peer_ctl *ctl;
	struct mc_buf in;
	struct ctl_client *next, **pprev;
};

struct ctl_write {
	uv_write_t req;
	struct mc_buf frame;
};

void peer_ctl_reply_error(struct mc_buf *reply, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mc_buf_reset(reply);
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", false);
	mc_pack_kv_str(reply, "error", msg);
}

static void client_closed(uv_handle_t *h)
{
	struct ctl_client *c = h->data;
	mc_buf_free(&c->in);
	free(c);
}

static void client_close(struct ctl_client *c)
{
	if (uv_is_closing((uv_handle_t *)&c->pipe))
		return;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void write_done(uv_write_t *req, int status)
{
	struct ctl_write *w = (struct ctl_write *)req;
	(void)status; /* a client that went away needs no answer */
	mc_buf_free(&w->frame);
	free(w);
}

static void send_reply(struct ctl_client *c, struct mc_buf *reply)
{
	struct ctl_write *w = xcalloc(1, sizeof(*w));
	mc_buf_init(&w->frame);
	mc_buf_put_be32(&w->frame, (uint32_t)reply->len);
	mc_buf_append(&w->frame, reply->data, reply->len);
	uv_buf_t buf =
	    uv_buf_init((char *)w->frame.data, (unsigned)w->frame.len);
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, write_done)) {
		mc_buf_free(&w->frame);
		free(w);
		client_close(c);
	}
}

static void handle_frames(struct ctl_client *c)
{
	while (c->in.len >= 4) {
		uint32_t len = mc_load_be32(c->in.data);
		if (len > PEER_CTL_MAX_FRAME) {
			mc_warn("ctl", "dropping client: frame of %u bytes",
			        len);
			client_close(c);
			return;
		}
		if (c->in.len < 4 + (size_t)len)
			return;
		struct mc_buf reply;
		mc_buf_init(&reply);
		struct mc_doc *doc = mc_unpack(c->in.data + 4, len);
		const struct mc_val *req = doc ? mc_doc_root(doc) : NULL;
		if (!req || req->type != MC_VAL_MAP)
			peer_ctl_reply_error(&reply, "malformed request");
		else
			c->ctl->handler(c->ctl->arg, req, &reply);
		mc_doc_free(doc);
		mc_buf_consume(&c->in, 4 + (size_t)len);
		send_reply(c, &reply);
		mc_buf_free(&reply);
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_client *c = h->data;
	(void)suggested;
	buf->base = (char *)mc_buf_reserve(&c->in, 65536);
	buf->len = 65536;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct ctl_client *c = s->data;
	(void)buf;
	if (n < 0) {
		client_close(c);
		return;
	}
	c->in.len += (size_t)n;
	handle_frames(c);
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct peer_ctl *ctl = server->data;
	if (status < 0) {
		mc_warn("ctl", "accept: %s", uv_strerror(status));
		return;
	}
	struct ctl_client *c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	mc_buf_init(&c->in);
	uv_pipe_init(server->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
		uv_close((uv_handle_t *)&c->pipe, client_closed);
		return;
	}
	c->next = ctl->clients;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &ctl->clients;
	ctl->clients = c;
	uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

static void listener_closed(uv_handle_t *h)
{
	struct peer_ctl *ctl = h->data;
	free(ctl->path);
	free(ctl);
}

struct peer_ctl *peer_ctl_start(uv_loop_t *loop, const char *path,
                                peer_ctl_handler handler, void *arg, char *err,
                                size_t err_size)
{
	struct peer_ctl *ctl = xcalloc(1, sizeof(*ctl));
	ctl->handler = handler;
	ctl->arg = arg;
	ctl->path = xstrdup(path);

	/* The data dir lock is ours, so a socket file left here is stale. */
	unlink(path);
	uv_pipe_init(loop, &ctl->listener, 0);
	ctl->listener.data = ctl;
	/* umask makes the socket 0600 from birth, with no window. */
	mode_t old = umask(0177);
	int r = uv_pipe_bind(&ctl->listener, path);
	umask(old);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&ctl->listener, 16, connection_cb);
	if (r) {
		snprintf(err, err_size, "control socket %s: %s", path,
		         uv_strerror(r));
		/* Freed by listener_closed once the loop runs again. */
		uv_close((uv_handle_t *)&ctl->listener, listener_closed);
		return NULL;
	}
	return ctl;
}

void peer_ctl_stop(struct peer_ctl *ctl)
{
	if (!ctl || ctl->stopping)
		return;
	ctl->stopping = true;
	while (ctl->clients)
		client_close(ctl->clients);
	unlink(ctl->path);
	uv_close((uv_handle_t *)&ctl->listener, listener_closed);
}
