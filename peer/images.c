/*
 * The image store on the loop: which images are here, pulling the chunks of
 * one that is not from the peers that hold it, and serving our chunks to
 * others. File work runs on libuv's thread pool (images_files.c); the loop
 * only decides what to fetch next.
 *
 * A pull: CHECK (which chunks are here already, off the loop), FETCH (up to
 * PULL_INFLIGHT "chunk" calls at once, at most PULL_PER_HOLDER per holder,
 * each answer verified and written off the loop; a failed call or a chunk
 * that does not match its hash is asked of another holder), ASSEMBLE
 * (the files the hypervisor reads), then every waiter is told.
 */
#include "images_int.h"

#include "crypto.h"
#include "log.h"
#include "mem.h"
#include "peer.h"
#include "rpc.h"
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PULL_INFLIGHT   6  /* chunk calls at once, per pull */
#define PULL_PER_HOLDER 2  /* of which to any one holder */
#define PULL_BUFFERED   10 /* calls plus chunks waiting to be written */
#define PULL_HOLDERS    64
#define PULL_ATTEMPTS   2 /* CHECK again after a bad local chunk */

typedef void (*ensure_cb)(void *ctx, int status, const char *message,
                          const struct peer_image_files *files);

struct pull_waiter {
	ensure_cb cb;
	void *ctx;
	uint64_t *bytes;
	struct pull_waiter *next;
};

struct pull_chunk {
	uint8_t hash[IMAGES_HASH_BYTES];
	uint64_t tried; /* holders asked for it without success */
	bool done, busy;
};

struct pull_holder {
	char id[PEER_ID_HEX_LEN + 1];
	unsigned inflight;
	bool down; /* a call failed in transport: ask others first */
};

enum pull_phase { PULL_CHECK, PULL_FETCH, PULL_ASSEMBLE };

struct image_pull {
	struct peer_images *im;
	struct image_pull *next;
	char ami[32];
	struct images_manifest man;
	struct pull_waiter *waiters;
	enum pull_phase phase;
	struct pull_chunk *chunks;
	size_t n_chunks, n_done;
	struct pull_holder holders[PULL_HOLDERS];
	size_t n_holders;
	unsigned inflight, writing;
	unsigned attempts;
	bool failing, assembled_now;
	int status;
	char message[512];
	uint64_t bytes;
};

/* ---- the module's life -------------------------------------------------- */

void images_busy(struct peer_images *im)
{
	im->busy++;
}

void images_unbusy(struct peer_images *im)
{
	if (--im->busy == 0 && im->stopping) {
		images_jobs_free(im);
		images_gc_free(im);
		free(im);
	}
}

static bool hash_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, IMAGES_HASH_BYTES) == 0;
}

static void hex_of(const uint8_t *hash, char out[2 * IMAGES_HASH_BYTES + 1])
{
	mc_hex_encode(out, hash, IMAGES_HASH_BYTES);
}

int images_manifest_load(struct peer *p, const char *ami,
                         struct images_manifest *m)
{
	struct peer_record r;
	memset(m, 0, sizeof(*m));
	int e = peer_store_get(p->store, IMAGES_KIND_CONTENT, ami, &r);
	if (e)
		return e;
	if (r.deleted) {
		peer_record_clear(&r);
		return -ENOENT;
	}
	e = images_manifest_read(r.body, r.body_len, m);
	peer_record_clear(&r);
	if (e)
		images_manifest_free(m);
	return e;
}

bool peer_image_known(struct peer *p, const char *image_id)
{
	struct images_manifest m;
	if (!images_ami_ok(image_id) ||
	    images_manifest_load(p, image_id, &m) != 0)
		return false;
	images_manifest_free(&m);
	return true;
}

/* ---- finishing a pull --------------------------------------------------- */

static void pull_unlink(struct image_pull *pl)
{
	struct image_pull **pp = &pl->im->pulls;
	while (*pp && *pp != pl)
		pp = &(*pp)->next;
	if (*pp)
		*pp = pl->next;
}

/* This peer holds every chunk of ami now: say so, once. */
static void announce_copy(struct peer *p, const char *ami)
{
	char id[64];
	struct peer_record r;
	snprintf(id, sizeof(id), "%s:%s", ami, p->id);
	if (peer_store_get(p->store, IMAGES_KIND_COPY, id, &r) == 0) {
		bool live = !r.deleted;
		peer_record_clear(&r);
		if (live)
			return;
	}
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "peer", p->id);
	mc_pack_kv_uint(&b, "at", mc_wall_ms());
	int e = peer_records_put(&p->writer, IMAGES_KIND_COPY, id, b.data,
	                         b.len, NULL);
	mc_buf_free(&b);
	if (e)
		mc_warn("images", "cannot record our copy of %s: %s", ami,
		        strerror(-e));
}

static void pull_finish(struct image_pull *pl)
{
	struct peer_images *im = pl->im;
	struct peer_image_files files;
	pull_unlink(pl);
	if (pl->status == 0) {
		images_files_fill(im->p->cfg.data_dir, pl->ami, &pl->man,
		                  &files);
		if (!im->stopping)
			announce_copy(im->p, pl->ami);
		if (pl->assembled_now)
			mc_info("images", "%s is here: %llu bytes pulled",
			        pl->ami, (unsigned long long)pl->bytes);
	} else {
		mc_warn("images", "%s: %s", pl->ami, pl->message);
	}
	while (pl->waiters) {
		struct pull_waiter *w = pl->waiters;
		pl->waiters = w->next;
		if (w->bytes)
			*w->bytes = pl->bytes;
		w->cb(w->ctx, pl->status, pl->status ? pl->message : "",
		      pl->status ? NULL : &files);
		free(w);
	}
	images_manifest_free(&pl->man);
	free(pl->chunks);
	free(pl);
	images_unbusy(im);
}

static void pull_fail(struct image_pull *pl, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pull_fail(struct image_pull *pl, int status, const char *fmt, ...)
{
	if (pl->failing)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pl->message, sizeof(pl->message), fmt, ap);
	va_end(ap);
	pl->failing = true;
	pl->status = status;
}

static void pull_check(struct image_pull *pl);
static void pull_assemble(struct image_pull *pl);
static void pull_dispatch(struct image_pull *pl);

/* ---- FETCH -------------------------------------------------------------- */

struct chunk_call {
	struct image_pull *pl;
	size_t chunk, holder;
};

struct chunk_write {
	uv_work_t work;
	struct image_pull *pl;
	size_t chunk, holder;
	uint8_t *data;
	size_t len;
	int status;
	bool mismatch;
	char err[512];
};

static void write_work(uv_work_t *w)
{
	struct chunk_write *cw = w->data;
	struct image_pull *pl = cw->pl;
	uint8_t h[IMAGES_HASH_BYTES];
	mc_hash(h, sizeof(h), cw->data, cw->len);
	if (!hash_eq(h, pl->chunks[cw->chunk].hash)) {
		cw->mismatch = true;
		return;
	}
	cw->status = images_chunk_write(pl->im->p->cfg.data_dir, h, cw->data,
	                                cw->len, cw->err, sizeof(cw->err));
}

static void write_done(uv_work_t *w, int status)
{
	struct chunk_write *cw = w->data;
	struct image_pull *pl = cw->pl;
	struct pull_chunk *c = &pl->chunks[cw->chunk];
	struct pull_holder *h = &pl->holders[cw->holder];
	char hex[2 * IMAGES_HASH_BYTES + 1];
	hex_of(c->hash, hex);
	pl->writing--;
	c->busy = false;
	if (status == UV_ECANCELED) {
		pull_fail(pl, -ECANCELED, "this peer is stopping");
	} else if (cw->mismatch) {
		c->tried |= 1ull << cw->holder;
		mc_warn("images",
		        "%s: chunk %.16s from %s does not match its hash: "
		        "rejected, asking another holder",
		        pl->ami, hex, h->id);
	} else if (cw->status) {
		pull_fail(pl, cw->status, "%s", cw->err);
	} else {
		c->done = true;
		pl->n_done++;
		pl->bytes += cw->len;
	}
	free(cw->data);
	free(cw);
	images_unbusy(pl->im);
	pull_dispatch(pl);
}

/* Transport failures: the holder is likely gone, so others go first. */
static bool transport_error(int status)
{
	return status == -EHOSTUNREACH || status == -ETIMEDOUT ||
	       status == -EPROTO || status == -ECONNREFUSED ||
	       status == -ECONNRESET;
}

static void chunk_answered(void *ctx, int status, const char *message,
                           const struct mc_val *reply)
{
	struct chunk_call *cc = ctx;
	struct image_pull *pl = cc->pl;
	struct pull_chunk *c = &pl->chunks[cc->chunk];
	struct pull_holder *h = &pl->holders[cc->holder];
	const uint8_t *data;
	size_t len = 0;
	char hex[2 * IMAGES_HASH_BYTES + 1];
	hex_of(c->hash, hex);
	pl->inflight--;
	h->inflight--;
	if (status == 0 && (!mc_get_bytes(reply, "data", &data, &len) ||
	                    len == 0 || len > IMAGES_CHUNK_BYTES)) {
		status = -EPROTO;
		message = "no chunk data in the answer";
	}
	if (status == -ECANCELED || (status && pl->im->stopping)) {
		c->busy = false;
		pull_fail(pl, -ECANCELED, "this peer is stopping");
	} else if (status) {
		c->busy = false;
		c->tried |= 1ull << cc->holder;
		if (transport_error(status))
			h->down = true;
		mc_info("images", "%s: chunk %.16s from %s failed: %s", pl->ami,
		        hex, h->id, message);
	} else {
		struct chunk_write *cw = xcalloc(1, sizeof(*cw));
		cw->work.data = cw;
		cw->pl = pl;
		cw->chunk = cc->chunk;
		cw->holder = cc->holder;
		cw->data = xmalloc(len);
		memcpy(cw->data, data, len);
		cw->len = len;
		pl->writing++;
		images_busy(pl->im);
		int e = uv_queue_work(pl->im->p->loop, &cw->work, write_work,
		                      write_done);
		if (e) {
			pl->writing--;
			c->busy = false;
			free(cw->data);
			free(cw);
			images_unbusy(pl->im);
			pull_fail(pl, -EIO, "cannot queue a chunk write: %s",
			          uv_strerror(e));
		}
	}
	free(cc);
	images_unbusy(pl->im);
	pull_dispatch(pl);
}

/*
 * The holder to ask for chunk c: one not yet tried for it, under its
 * share of calls, preferring holders that have not failed in transport,
 * then the least busy, spreading chunks across holders. -1: wait for a
 * call to end; -2: every holder has been tried.
 */
static int choose_holder(const struct image_pull *pl, size_t ci)
{
	const struct pull_chunk *c = &pl->chunks[ci];
	int best = -1;
	bool untried_up = false, untried = false;
	for (size_t k = 0; k < pl->n_holders; k++) {
		size_t i = (ci + k) % pl->n_holders;
		const struct pull_holder *h = &pl->holders[i];
		if (c->tried & (1ull << i))
			continue;
		untried = true;
		untried_up |= !h->down;
	}
	if (!untried)
		return -2;
	for (size_t k = 0; k < pl->n_holders; k++) {
		size_t i = (ci + k) % pl->n_holders;
		const struct pull_holder *h = &pl->holders[i];
		if ((c->tried & (1ull << i)) || (untried_up && h->down) ||
		    h->inflight >= PULL_PER_HOLDER)
			continue;
		if (best < 0 || h->inflight < pl->holders[best].inflight)
			best = (int)i;
	}
	return best;
}

static int ask_chunk(struct image_pull *pl, size_t ci, size_t hi)
{
	struct pull_chunk *c = &pl->chunks[ci];
	struct chunk_call *cc = xcalloc(1, sizeof(*cc));
	struct mc_buf args;
	cc->pl = pl;
	cc->chunk = ci;
	cc->holder = hi;
	mc_buf_init(&args);
	mc_pack_map(&args, 1);
	mc_pack_kv_bin(&args, "hash", c->hash, IMAGES_HASH_BYTES);
	int e = peer_rpc_call(pl->im->p, pl->holders[hi].id, "chunk", &args, 0,
	                      chunk_answered, cc);
	mc_buf_free(&args);
	if (e) {
		free(cc);
		return e;
	}
	images_busy(pl->im);
	c->busy = true;
	pl->inflight++;
	pl->holders[hi].inflight++;
	return 0;
}

static void pull_dispatch(struct image_pull *pl)
{
	if (pl->phase != PULL_FETCH)
		return;
	if (pl->failing) {
		if (pl->inflight == 0 && pl->writing == 0)
			pull_finish(pl);
		return;
	}
	for (size_t i = 0; i < pl->n_chunks; i++) {
		struct pull_chunk *c = &pl->chunks[i];
		if (c->done || c->busy)
			continue;
		if (pl->inflight >= PULL_INFLIGHT ||
		    pl->inflight + pl->writing >= PULL_BUFFERED)
			break;
		int h = choose_holder(pl, i);
		if (h == -1)
			continue;
		char hex[2 * IMAGES_HASH_BYTES + 1];
		hex_of(c->hash, hex);
		if (h == -2) {
			pull_fail(pl, -EIO,
			          "no source had chunk %s of %s (asked %zu "
			          "holder%s)",
			          hex, pl->ami, pl->n_holders,
			          pl->n_holders == 1 ? "" : "s");
			break;
		}
		int e = ask_chunk(pl, i, (size_t)h);
		if (e == -ECANCELED) {
			pull_fail(pl, -ECANCELED, "this peer is stopping");
			break;
		}
		if (e) {
			c->tried |= 1ull << h;
			i--; /* the same chunk, from another holder */
		}
	}
	if (pl->failing) {
		if (pl->inflight == 0 && pl->writing == 0)
			pull_finish(pl);
		return;
	}
	if (pl->n_done == pl->n_chunks && pl->inflight == 0 && pl->writing == 0)
		pull_assemble(pl);
}

struct holder_scan {
	struct image_pull *pl;
	const char *self;
};

static int holder_one(const struct peer_record *r, void *arg)
{
	struct holder_scan *s = arg;
	struct image_pull *pl = s->pl;
	const char *colon = strrchr(r->id, ':');
	if (!colon || strlen(colon + 1) != PEER_ID_HEX_LEN ||
	    strcmp(colon + 1, s->self) == 0 || pl->n_holders >= PULL_HOLDERS)
		return 0;
	snprintf(pl->holders[pl->n_holders++].id, PEER_ID_HEX_LEN + 1, "%s",
	         colon + 1);
	return 0;
}

static void pull_fetch(struct image_pull *pl)
{
	char prefix[64];
	struct holder_scan s = {pl, pl->im->p->id};
	snprintf(prefix, sizeof(prefix), "%s:", pl->ami);
	pl->n_holders = 0;
	int e = peer_store_list_prefix(pl->im->p->store, IMAGES_KIND_COPY,
	                               prefix, holder_one, &s);
	pl->phase = PULL_FETCH;
	if (e) {
		pull_fail(pl, e, "cannot list the holders of %s: %s", pl->ami,
		          strerror(-e));
	} else if (pl->n_holders == 0) {
		pull_fail(pl, -EIO, "no peer holds %s (%zu of %zu chunks here)",
		          pl->ami, pl->n_done, pl->n_chunks);
	} else {
		mc_info("images",
		        "%s: pulling %zu of %zu chunks from %zu "
		        "holder%s",
		        pl->ami, pl->n_chunks - pl->n_done, pl->n_chunks,
		        pl->n_holders, pl->n_holders == 1 ? "" : "s");
	}
	pull_dispatch(pl);
}

/* ---- CHECK and ASSEMBLE (off the loop) ---------------------------------- */

struct pull_work {
	uv_work_t work;
	struct image_pull *pl;
	bool complete; /* CHECK: assembled already */
	int status;
	char err[512];
};

static void check_work(uv_work_t *w)
{
	struct pull_work *pw = w->data;
	struct image_pull *pl = pw->pl;
	const char *dir = pl->im->p->cfg.data_dir;
	if (pl->failing)
		return;
	if (images_assembled(dir, pl->ami)) {
		pw->complete = true;
		return;
	}
	for (size_t i = 0; i < pl->n_chunks; i++)
		pl->chunks[i].done =
		    images_chunk_present(dir, pl->chunks[i].hash);
}

static void assemble_work(uv_work_t *w)
{
	struct pull_work *pw = w->data;
	struct image_pull *pl = pw->pl;
	pw->status = images_assemble(pl->im->p->cfg.data_dir, pl->ami, &pl->man,
	                             pw->err, sizeof(pw->err));
}

static void check_done(uv_work_t *w, int status)
{
	struct pull_work *pw = w->data;
	struct image_pull *pl = pw->pl;
	bool complete = pw->complete;
	free(pw);
	images_unbusy(pl->im);
	if (status == UV_ECANCELED)
		pull_fail(pl, -ECANCELED, "this peer is stopping");
	if (pl->failing || complete) {
		pull_finish(pl);
		return;
	}
	pl->n_done = 0;
	for (size_t i = 0; i < pl->n_chunks; i++) {
		pl->chunks[i].tried = 0;
		pl->n_done += pl->chunks[i].done;
	}
	if (pl->n_done == pl->n_chunks)
		pull_assemble(pl);
	else
		pull_fetch(pl);
}

static void assemble_done(uv_work_t *w, int status)
{
	struct pull_work *pw = w->data;
	struct image_pull *pl = pw->pl;
	int r = status == UV_ECANCELED ? -ECANCELED : pw->status;
	images_unbusy(pl->im);
	if (r == -EBADMSG && ++pl->attempts < PULL_ATTEMPTS &&
	    !pl->im->stopping) {
		mc_warn("images", "%s: %s; fetching it again", pl->ami,
		        pw->err);
		free(pw);
		pull_check(pl);
		return;
	}
	if (r)
		pull_fail(pl, r, "cannot assemble %s: %s", pl->ami,
		          r == -ECANCELED ? "this peer is stopping" : pw->err);
	else
		pl->assembled_now = true;
	free(pw);
	pull_finish(pl);
}

static void pull_queue(struct image_pull *pl, uv_work_cb work,
                       uv_after_work_cb after)
{
	struct pull_work *pw = xcalloc(1, sizeof(*pw));
	pw->work.data = pw;
	pw->pl = pl;
	images_busy(pl->im);
	int e = uv_queue_work(pl->im->p->loop, &pw->work, work, after);
	if (e) {
		/* Only fails for a bad argument: finish from here. */
		free(pw);
		images_unbusy(pl->im);
		pull_fail(pl, -EIO, "cannot queue work: %s", uv_strerror(e));
		pull_finish(pl);
	}
}

static void pull_check(struct image_pull *pl)
{
	pl->phase = PULL_CHECK;
	pull_queue(pl, check_work, check_done);
}

static void pull_assemble(struct image_pull *pl)
{
	pl->phase = PULL_ASSEMBLE;
	pull_queue(pl, assemble_work, assemble_done);
}

static int chunk_cmp(const void *a, const void *b)
{
	return memcmp(((const struct pull_chunk *)a)->hash,
	              ((const struct pull_chunk *)b)->hash, IMAGES_HASH_BYTES);
}

/* The distinct chunks of every part (a disk of zeros repeats one). */
static void pull_collect_chunks(struct image_pull *pl)
{
	size_t total = 0, n = 0;
	for (int i = 0; i < IMAGES_PARTS; i++)
		total += pl->man.part[i].n_chunks;
	pl->chunks = xcalloc(total ? total : 1, sizeof(*pl->chunks));
	for (int i = 0; i < IMAGES_PARTS; i++) {
		const struct images_part *pt = &pl->man.part[i];
		for (uint32_t c = 0; c < pt->n_chunks; c++)
			memcpy(pl->chunks[n++].hash, pt->chunks[c],
			       IMAGES_HASH_BYTES);
	}
	if (n)
		qsort(pl->chunks, n, sizeof(*pl->chunks), chunk_cmp);
	pl->n_chunks = 0;
	for (size_t k = 0; k < n; k++)
		if (pl->n_chunks == 0 ||
		    !hash_eq(pl->chunks[pl->n_chunks - 1].hash,
		             pl->chunks[k].hash))
			pl->chunks[pl->n_chunks++] = pl->chunks[k];
}

int images_ensure(struct peer *p, const char *image_id, ensure_cb cb, void *ctx,
                  uint64_t *bytes)
{
	struct peer_images *im = p->images;
	if (!cb || !image_id || !images_ami_ok(image_id))
		return -EINVAL;
	if (!im || im->stopping)
		return -ECANCELED;
	struct pull_waiter *w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->ctx = ctx;
	w->bytes = bytes;
	for (struct image_pull *pl = im->pulls; pl; pl = pl->next) {
		if (strcmp(pl->ami, image_id) == 0 && !pl->failing) {
			w->next = pl->waiters;
			pl->waiters = w;
			return 0;
		}
	}
	/* Before it looks at the disk: a collection under way stops. */
	images_gc_writer_started(im);
	struct image_pull *pl = xcalloc(1, sizeof(*pl));
	pl->im = im;
	snprintf(pl->ami, sizeof(pl->ami), "%s", image_id);
	pl->waiters = w;
	images_busy(im);
	pl->next = im->pulls;
	im->pulls = pl;
	int e = images_manifest_load(p, image_id, &pl->man);
	if (e == -ENOENT)
		pull_fail(pl, -ENOENT, "no image %s in the cloud", image_id);
	else if (e)
		pull_fail(pl, -EIO, "the content record of %s is unreadable",
		          image_id);
	else
		pull_collect_chunks(pl);
	pull_check(pl);
	return 0;
}

int peer_image_ensure(struct peer *p, const char *image_id, ensure_cb cb,
                      void *ctx)
{
	return images_ensure(p, image_id, cb, ctx, NULL);
}

void images_pulls_each(struct peer_images *im,
                       void (*fn)(void *arg, const char *ami,
                                  const uint8_t *hash),
                       void *arg)
{
	for (struct image_pull *pl = im->pulls; pl; pl = pl->next) {
		fn(arg, pl->ami, NULL);
		for (size_t i = 0; i < pl->n_chunks; i++)
			fn(arg, pl->ami, pl->chunks[i].hash);
	}
}

/* ---- serving chunks ----------------------------------------------------- */

struct chunk_serve {
	uv_work_t work;
	struct peer_images *im;
	struct peer_rpc_req *req;
	uint8_t hash[IMAGES_HASH_BYTES];
	uint8_t *data;
	size_t len;
	int status;
};

static void serve_work(uv_work_t *w)
{
	struct chunk_serve *s = w->data;
	if (s->im->chunk_delay_ms)
		usleep(s->im->chunk_delay_ms * 1000u);
	s->status = images_chunk_read(s->im->p->cfg.data_dir, s->hash, &s->data,
	                              &s->len);
}

static void serve_done(uv_work_t *w, int status)
{
	struct chunk_serve *s = w->data;
	char hex[2 * IMAGES_HASH_BYTES + 1];
	hex_of(s->hash, hex);
	if (status == UV_ECANCELED) {
		peer_rpc_reply(s->req, -ECANCELED, "this peer is stopping",
		               NULL);
	} else if (s->status == -ENOENT) {
		peer_rpc_reply(s->req, -ENOENT, "no such chunk here", NULL);
	} else if (s->status) {
		peer_rpc_reply(s->req, s->status, "cannot read the chunk",
		               NULL);
	} else {
		struct mc_buf b;
		mc_buf_init(&b);
		mc_pack_map(&b, 1);
		mc_pack_kv_bin(&b, "data", s->data, s->len);
		peer_rpc_reply(s->req, 0, NULL, &b);
		mc_buf_free(&b);
	}
	struct peer_images *im = s->im;
	free(s->data);
	free(s);
	images_unbusy(im);
}

static void on_chunk(struct peer *p, struct peer_rpc_req *req, const char *from,
                     const struct mc_val *args)
{
	const uint8_t *hash;
	size_t n;
	(void)from;
	struct peer_images *im = p->images;
	if (!im || im->stopping) {
		peer_rpc_reply(req, -ECANCELED, "this peer is stopping", NULL);
		return;
	}
	if (!mc_get_bytes(args, "hash", &hash, &n) || n != IMAGES_HASH_BYTES) {
		peer_rpc_reply(req, -EINVAL, "chunk needs a 32-byte hash",
		               NULL);
		return;
	}
	struct chunk_serve *s = xcalloc(1, sizeof(*s));
	s->work.data = s;
	s->im = im;
	s->req = req;
	memcpy(s->hash, hash, sizeof(s->hash));
	images_busy(im);
	int e = uv_queue_work(p->loop, &s->work, serve_work, serve_done);
	if (e) {
		free(s);
		images_unbusy(im);
		peer_rpc_reply(req, -EIO, "cannot queue the read", NULL);
	}
}

/* ---- start and stop ----------------------------------------------------- */

int peer_images_start(struct peer *p, char *err, size_t err_size)
{
	(void)err;
	(void)err_size;
	struct peer_images *im = xcalloc(1, sizeof(*im));
	im->p = p;
	/* Nothing of this process writes yet: every temporary file is a
	 * killed peer's. Before the loop runs, so it blocks nobody. */
	uint64_t files, bytes;
	images_gc_sweep_temp(p->cfg.data_dir, &files, &bytes);
	mc_log(files ? MC_LOG_INFO : MC_LOG_DEBUG, "images",
	       "removed %llu temporary files (%llu bytes) left by an earlier "
	       "run",
	       (unsigned long long)files, (unsigned long long)bytes);
	/* Test knob: a slow source, so a test can kill it mid-pull. */
	const char *delay = getenv("MALLEE_TEST_CHUNK_DELAY_MS");
	if (delay)
		im->chunk_delay_ms = (unsigned)strtoul(delay, NULL, 10) % 60000;
	/* Held until stop, so the module outlives no caller. */
	images_busy(im);
	p->images = im;
	images_gc_start(im);
	peer_rpc_register(p, "chunk", on_chunk);
	return 0;
}

void peer_images_stop(struct peer *p)
{
	struct peer_images *im = p->images;
	if (!im)
		return;
	p->images = NULL;
	im->stopping = true;
	images_gc_stop(im);
	/* Pulls end as their calls are cancelled and their work returns. */
	for (struct image_pull *pl = im->pulls; pl; pl = pl->next)
		pull_fail(pl, -ECANCELED, "this peer is stopping");
	images_unbusy(im);
}
