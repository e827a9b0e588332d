/*
 * Push-pull over TCP: joins and periodic anti-entropy, every frame a 4-byte
 * length and a message sealed with the cloud's primary key (opened with any
 * key of the ring). A periodic exchange starts with two small hashes, so
 * peers in sync exchange about a hundred bytes each way:
 *
 *   client -> server  PP      hash of its member table, hash of its records
 *   server -> client  PP      done, when both match; else its member list
 *                             (if those differ) and its 256 record-bucket
 *                             digests (if those differ)
 *   client -> server  ENTRIES its member list (if they differed) and its
 *                             (keyhash, hlc, writer) entries for every bucket
 *                             whose digest differs
 *   server -> client  RECS    the records it holds newer, and the keyhashes
 *                             it wants
 *   client -> server  RECS    the wanted records
 *
 * A join sends everything at once: the client's PP carries its member list
 * and bucket digests, the server answers with its own and its entries for
 * the differing buckets, the client sends RECS (newer records and wants) and
 * the server the wanted records.
 *
 * RPC shares the listener: a connection whose first 4 bytes are RPC_MAGIC
 * (a length no push-pull frame can have) is handed to rpc.c.
 */
#include "net_int.h"
#include "rpc_int.h"

#include "log.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM_AD "mallee-stream-1"

enum stream_step {
	STEP_CONNECTING,
	STEP_OPEN,  /* frames are exchanged */
	STEP_DRAIN, /* sent its last frame, waits for the other to close */
};

#define STREAM_MAX_FRAMES 4 /* no exchange needs more from one side */

struct net_stream {
	uv_tcp_t tcp;
	uv_timer_t timeout;
	uv_connect_t connect;
	struct peer_net *n;
	struct net_stream *next, **pprev;
	int open_handles;
	bool client, join, closing, succeeded;
	bool close_after_write; /* the client's last frame is on its way */
	bool handed_over;       /* an RPC connection, now rpc.c's */
	unsigned frames_in;
	enum stream_step step;
	struct mc_buf in;
	char peer_addr[64];
};

struct stream_write {
	uv_write_t req;
	struct mc_buf frame;
	struct net_stream *s;
};

static void stream_freed(uv_handle_t *h)
{
	struct net_stream *s = h->data;
	if (--s->open_handles > 0)
		return;
	mc_buf_free(&s->in);
	free(s);
}

static void stream_close(struct net_stream *s, bool ok)
{
	if (s->closing)
		return;
	s->closing = true;
	if (s->handed_over) {
		/* Not a push-pull: counted by neither. */
	} else if (ok || s->succeeded) {
		s->n->c.pushpulls++;
	} else {
		s->n->c.pushpull_failures++;
		mc_debug("gossip", "push-pull with %s failed", s->peer_addr);
	}
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	uv_close((uv_handle_t *)&s->tcp, stream_freed);
	uv_close((uv_handle_t *)&s->timeout, stream_freed);
}

void net_streams_close_all(struct peer_net *n)
{
	while (n->streams)
		stream_close(n->streams, false);
}

static void write_done(uv_write_t *req, int status)
{
	struct stream_write *w = (struct stream_write *)req;
	struct net_stream *s = w->s;
	mc_buf_free(&w->frame);
	free(w);
	/* A failed write shows up as a read error too; a cancelled one
	 * means the stream is already closing. */
	if (status == 0 && s->close_after_write && !s->closing)
		stream_close(s, true);
}

/* Seals msg under the primary key and queues it as one frame. */
static void send_frame(struct net_stream *s, const struct mc_buf *msg)
{
	struct stream_write *w = xcalloc(1, sizeof(*w));
	w->s = s;
	mc_buf_init(&w->frame);
	mc_buf_put_be32(&w->frame, 0);
	mc_seal(&w->frame, s->n->p->keyring.keys[0], STREAM_AD,
	        strlen(STREAM_AD), msg->data, msg->len);
	mc_store_be32(w->frame.data, (uint32_t)(w->frame.len - 4));
	s->n->c.stream_bytes_out += w->frame.len;
	uv_buf_t buf =
	    uv_buf_init((char *)w->frame.data, (unsigned)w->frame.len);
	if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, write_done)) {
		mc_buf_free(&w->frame);
		free(w);
		stream_close(s, false);
	}
}

static void pack_digest(struct mc_buf *b, struct peer_store *store)
{
	uint64_t d[PEER_STORE_BUCKETS];
	uint8_t raw[PEER_STORE_BUCKETS * 8];
	peer_store_digest(store, d);
	for (int i = 0; i < PEER_STORE_BUCKETS; i++)
		for (int j = 0; j < 8; j++)
			raw[i * 8 + j] = (uint8_t)(d[i] >> (56 - 8 * j));
	mc_pack_kv_bin(b, "digest", raw, sizeof(raw));
}

/* Which buckets differ from the digest in msg; false if it is malformed. */
static bool diff_buckets(struct peer_store *store, const struct mc_val *msg,
                         bool differ[PEER_STORE_BUCKETS])
{
	const uint8_t *raw;
	size_t len;
	uint64_t mine[PEER_STORE_BUCKETS];
	if (!mc_get_bytes(msg, "digest", &raw, &len) ||
	    len != PEER_STORE_BUCKETS * 8)
		return false;
	peer_store_digest(store, mine);
	for (int i = 0; i < PEER_STORE_BUCKETS; i++) {
		uint64_t theirs = 0;
		for (int j = 0; j < 8; j++)
			theirs = theirs << 8 | raw[i * 8 + j];
		differ[i] = theirs != mine[i];
	}
	return true;
}

/*
 * The member table's hash: XOR of a hash of each member's (id,
 * incarnation, state), so equal views hash equal whatever their order.
 */
struct mdig_state {
	uint64_t h;
};

static void mdig_one(void *ctx, const struct gossip_member *m)
{
	struct mdig_state *d = ctx;
	uint8_t in[GOSSIP_ID_LEN + 5], h[16];
	memcpy(in, m->node->id, GOSSIP_ID_LEN);
	mc_store_be32(in + GOSSIP_ID_LEN, m->incarnation);
	in[GOSSIP_ID_LEN + 4] = (uint8_t)m->state;
	mc_hash(h, sizeof(h), in, sizeof(in));
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	d->h ^= v;
}

static uint64_t members_hash(struct peer_net *n)
{
	struct mdig_state d = {.h = 0};
	gossip_members_foreach(n->g, mdig_one, &d);
	return d.h;
}

static void pack_members(struct net_stream *s, struct mc_buf *b)
{
	struct mc_buf members;
	mc_buf_init(&members);
	gossip_snapshot_encode(s->n->g, &members);
	mc_pack_kv_bin(b, "members", members.data, members.len);
	mc_buf_free(&members);
}

static void pack_hashes(struct net_stream *s, struct mc_buf *b)
{
	uint8_t total[16];
	peer_store_digest_total(s->n->p->store, total);
	mc_pack_kv_uint(b, "mdig", members_hash(s->n));
	mc_pack_kv_bin(b, "rdig", total, sizeof(total));
}

/* Whether msg's hashes differ from ours; absent hashes differ. */
static void compare_hashes(struct net_stream *s, const struct mc_val *msg,
                           bool *members, bool *records)
{
	uint64_t mdig;
	const uint8_t *rdig;
	size_t len;
	uint8_t total[16];
	peer_store_digest_total(s->n->p->store, total);
	*members =
	    !mc_get_uint(msg, "mdig", &mdig) || mdig != members_hash(s->n);
	*records = !mc_get_bytes(msg, "rdig", &rdig, &len) ||
	           len != sizeof(total) || memcmp(rdig, total, len) != 0;
}

struct entries_state {
	struct mc_buf *b;
	uint32_t n;
};

static int pack_entry(const struct peer_record *r, void *arg)
{
	struct entries_state *e = arg;
	mc_pack_array(e->b, 3);
	mc_pack_uint(e->b, peer_record_keyhash(r->kind, r->id));
	mc_pack_uint(e->b, r->hlc);
	mc_pack_str(e->b, r->writer);
	e->n++;
	return 0;
}

/* [[bucket, [[keyhash, hlc, writer]...]]...] for the differing buckets. */
static void pack_entries(struct net_stream *s, struct mc_buf *b,
                         const bool differ[PEER_STORE_BUCKETS])
{
	uint32_t n = 0;
	for (int i = 0; i < PEER_STORE_BUCKETS; i++)
		n += differ[i];
	mc_pack_str(b, "entries");
	mc_pack_array(b, n);
	for (int i = 0; i < PEER_STORE_BUCKETS; i++) {
		if (!differ[i])
			continue;
		struct mc_buf items;
		mc_buf_init(&items);
		struct entries_state e = {.b = &items};
		peer_store_list_bucket(s->n->p->store, (unsigned)i, pack_entry,
		                       &e);
		mc_pack_array(b, 2);
		mc_pack_uint(b, (uint64_t)i);
		mc_pack_array(b, e.n);
		mc_buf_append(b, items.data, items.len);
		mc_buf_free(&items);
	}
}

/* Merges msg's member list, if it carries one; false if it is bad. */
static bool merge_members(struct net_stream *s, const struct mc_val *msg)
{
	const uint8_t *p;
	size_t len;
	if (!mc_map_get(msg, "members"))
		return true;
	if (!mc_get_bytes(msg, "members", &p, &len) ||
	    gossip_snapshot_merge(s->n->g, p, len, uv_now(s->n->loop)) != 0)
		return false;
	net_rearm(s->n);
	return true;
}

/* Applies the "records" array of msg. */
static bool apply_records(struct net_stream *s, const struct mc_val *msg)
{
	const struct mc_val *recs = mc_map_get(msg, "records");
	if (!recs || recs->type != MC_VAL_ARRAY)
		return false;
	uint32_t count = recs->v.array.n;
	struct peer_record_view *views =
	    xcalloc(count ? count : 1, sizeof(*views));
	struct peer_record *rs = xcalloc(count ? count : 1, sizeof(*rs));
	bool ok = true;
	for (uint32_t i = 0; i < count && ok; i++) {
		ok =
		    peer_record_unpack(&recs->v.array.items[i], &views[i]) == 0;
		rs[i] = views[i].r; /* points into views[i], which stays */
	}
	if (ok)
		net_apply_remote(s->n, rs, count);
	free(rs);
	free(views);
	return ok;
}

/* An entry from the other side: a version of one key. */
struct entry {
	uint64_t keyhash;
	uint64_t hlc;
	char writer[PEER_ID_HEX_LEN + 1];
	bool matched;
};

static int entry_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct entry *)a)->keyhash;
	uint64_t y = ((const struct entry *)b)->keyhash;
	return x < y ? -1 : x > y;
}

/* >0 when version (h1, w1) is newer than (h2, w2). */
static int version_cmp(uint64_t h1, const char *w1, uint64_t h2, const char *w2)
{
	if (h1 != h2)
		return h1 > h2 ? 1 : -1;
	return strcmp(w1, w2);
}

struct offer_state {
	struct entry *theirs;
	size_t n_theirs;
	struct mc_buf *records;
	uint32_t n_records;
};

static int offer_one(const struct peer_record *r, void *arg)
{
	struct offer_state *o = arg;
	struct entry key = {.keyhash = peer_record_keyhash(r->kind, r->id)};
	struct entry *e = bsearch(&key, o->theirs, o->n_theirs,
	                          sizeof(*o->theirs), entry_cmp);
	/* Theirs is wanted only when it is newer than ours. */
	if (e)
		e->matched =
		    version_cmp(r->hlc, r->writer, e->hlc, e->writer) >= 0;
	if (!e || version_cmp(r->hlc, r->writer, e->hlc, e->writer) > 0) {
		peer_record_pack(o->records, r);
		o->n_records++;
	}
	return 0;
}

/*
 * On the other side's entries (a join's PP from the server, or ENTRIES from
 * a client): for each bucket listed, send what we hold newer and ask for
 * what it holds newer.
 */
static bool send_offer(struct net_stream *s, const struct mc_val *msg)
{
	const struct mc_val *buckets = mc_map_get(msg, "entries");
	if (!buckets || buckets->type != MC_VAL_ARRAY)
		return false;
	struct mc_buf records, wants;
	uint32_t n_records = 0, n_wants = 0;
	bool ok = true;
	mc_buf_init(&records);
	mc_buf_init(&wants);
	for (uint32_t i = 0; i < buckets->v.array.n && ok; i++) {
		const struct mc_val *bk = &buckets->v.array.items[i];
		ok = bk->type == MC_VAL_ARRAY && bk->v.array.n == 2 &&
		     bk->v.array.items[0].type == MC_VAL_UINT &&
		     bk->v.array.items[0].v.u < PEER_STORE_BUCKETS &&
		     bk->v.array.items[1].type == MC_VAL_ARRAY;
		if (!ok)
			break;
		unsigned bucket = (unsigned)bk->v.array.items[0].v.u;
		const struct mc_val *list = &bk->v.array.items[1];
		struct entry *theirs =
		    xcalloc(list->v.array.n + 1, sizeof(*theirs));
		for (uint32_t j = 0; j < list->v.array.n && ok; j++) {
			const struct mc_val *e = &list->v.array.items[j];
			const struct mc_val *it = e->v.array.items;
			ok = e->type == MC_VAL_ARRAY && e->v.array.n == 3 &&
			     it[0].type == MC_VAL_UINT &&
			     it[1].type == MC_VAL_UINT &&
			     it[2].type == MC_VAL_STR &&
			     it[2].v.s.n <= PEER_ID_HEX_LEN;
			if (!ok)
				break;
			theirs[j].keyhash = it[0].v.u;
			theirs[j].hlc = it[1].v.u;
			memcpy(theirs[j].writer, it[2].v.s.p, it[2].v.s.n);
		}
		if (ok) {
			qsort(theirs, list->v.array.n, sizeof(*theirs),
			      entry_cmp);
			struct offer_state o = {.theirs = theirs,
			                        .n_theirs = list->v.array.n,
			                        .records = &records};
			peer_store_list_bucket(s->n->p->store, bucket,
			                       offer_one, &o);
			n_records += o.n_records;
			for (uint32_t j = 0; j < list->v.array.n; j++) {
				if (theirs[j].matched)
					continue;
				mc_pack_uint(&wants, theirs[j].keyhash);
				n_wants++;
			}
		}
		free(theirs);
	}
	if (ok) {
		struct mc_buf b;
		mc_buf_init(&b);
		mc_pack_map(&b, 3);
		mc_pack_kv_str(&b, "t", "recs");
		mc_pack_str(&b, "records");
		mc_pack_array(&b, n_records);
		mc_buf_append(&b, records.data, records.len);
		mc_pack_str(&b, "want");
		mc_pack_array(&b, n_wants);
		mc_buf_append(&b, wants.data, wants.len);
		send_frame(s, &b);
		mc_buf_free(&b);
	}
	mc_buf_free(&records);
	mc_buf_free(&wants);
	return ok;
}

struct want_state {
	const uint64_t *wants;
	size_t n_wants;
	struct mc_buf *records;
	uint32_t n_records;
};

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int give_wanted(const struct peer_record *r, void *arg)
{
	struct want_state *w = arg;
	uint64_t kh = peer_record_keyhash(r->kind, r->id);
	if (bsearch(&kh, w->wants, w->n_wants, sizeof(kh), u64_cmp)) {
		peer_record_pack(w->records, r);
		w->n_records++;
	}
	return 0;
}

/* On RECS with wants: take its records, send what it wants. */
static bool send_wanted(struct net_stream *s, const struct mc_val *msg)
{
	const struct mc_val *want = mc_map_get(msg, "want");
	if (!want || want->type != MC_VAL_ARRAY || !apply_records(s, msg))
		return false;
	uint32_t n = want->v.array.n;
	uint64_t *wants = xcalloc(n + 1, sizeof(*wants));
	for (uint32_t i = 0; i < n; i++) {
		if (want->v.array.items[i].type != MC_VAL_UINT) {
			free(wants);
			return false;
		}
		wants[i] = want->v.array.items[i].v.u;
	}
	qsort(wants, n, sizeof(*wants), u64_cmp);

	struct mc_buf records;
	mc_buf_init(&records);
	struct want_state w = {
	    .wants = wants, .n_wants = n, .records = &records};
	for (uint32_t i = 0; i < n; i++) {
		unsigned bucket = peer_record_bucket(wants[i]);
		if (i > 0 && peer_record_bucket(wants[i - 1]) == bucket)
			continue; /* sorted: each bucket is listed once */
		peer_store_list_bucket(s->n->p->store, bucket, give_wanted, &w);
	}
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "t", "recs");
	mc_pack_str(&b, "records");
	mc_pack_array(&b, w.n_records);
	mc_buf_append(&b, records.data, records.len);
	send_frame(s, &b);
	mc_buf_free(&b);
	mc_buf_free(&records);
	free(wants);
	return true;
}

/* The exchange ended well on this side. */
static void finished(struct net_stream *s)
{
	s->succeeded = true;
	if (s->client && s->join) {
		if (!s->n->joined) {
			s->n->joined = true;
			mc_info("gossip", "joined through %s", s->peer_addr);
		}
		net_save_seeds(s->n);
	}
}

/* Server, on the client's PP. */
static bool server_pp(struct net_stream *s, const struct mc_val *msg)
{
	struct mc_buf b;
	bool join = false, members, records;
	bool differ[PEER_STORE_BUCKETS];

	mc_get_bool(msg, "join", &join);
	mc_buf_init(&b);
	if (join) {
		mc_info("gossip", "join from %s", s->peer_addr);
		if (!merge_members(s, msg) ||
		    !diff_buckets(s->n->p->store, msg, differ)) {
			mc_buf_free(&b);
			return false;
		}
		mc_pack_map(&b, 4);
		mc_pack_kv_str(&b, "t", "pp");
		pack_members(s, &b);
		pack_digest(&b, s->n->p->store);
		pack_entries(s, &b, differ);
	} else {
		compare_hashes(s, msg, &members, &records);
		mc_pack_map(&b, 2 + members + records);
		mc_pack_kv_str(&b, "t", "pp");
		mc_pack_kv_bool(&b, "done", !members && !records);
		if (members)
			pack_members(s, &b);
		if (records)
			pack_digest(&b, s->n->p->store);
		if (!members && !records) {
			finished(s);
			s->step = STEP_DRAIN;
		}
	}
	send_frame(s, &b);
	mc_buf_free(&b);
	return true;
}

/* Client, on the server's PP. */
static bool client_pp(struct net_stream *s, const struct mc_val *msg)
{
	bool done = false;
	bool differ[PEER_STORE_BUCKETS] = {false};
	mc_get_bool(msg, "done", &done);
	if (done) {
		finished(s);
		stream_close(s, true);
		return true;
	}
	if (!merge_members(s, msg))
		return false;
	if (mc_map_get(msg, "entries")) /* a join: the server listed its */
		return send_offer(s, msg);
	if (mc_map_get(msg, "digest") &&
	    !diff_buckets(s->n->p->store, msg, differ))
		return false;
	struct mc_buf b;
	bool members = mc_map_get(msg, "members") != NULL;
	mc_buf_init(&b);
	mc_pack_map(&b, 2 + members);
	mc_pack_kv_str(&b, "t", "entries");
	if (members) /* ours differ too: the server wants them */
		pack_members(s, &b);
	pack_entries(s, &b, differ);
	send_frame(s, &b);
	mc_buf_free(&b);
	return true;
}

/* On RECS: with wants, answer them; without, it was the last frame. */
static bool on_recs(struct net_stream *s, const struct mc_val *msg)
{
	if (mc_map_get(msg, "want")) {
		if (!send_wanted(s, msg))
			return false;
		if (s->client) {
			/* Our frame is the exchange's last: close once sent. */
			finished(s);
			s->close_after_write = true;
		} else {
			finished(s);
			s->step = STEP_DRAIN;
		}
		return true;
	}
	if (!apply_records(s, msg))
		return false;
	finished(s);
	stream_close(s, true);
	return true;
}

/* One opened frame: advance the exchange. False ends it as a failure. */
static bool handle_message(struct net_stream *s, const struct mc_val *msg)
{
	const struct mc_val *t = mc_map_get(msg, "t");
	if (s->step != STEP_OPEN || ++s->frames_in > STREAM_MAX_FRAMES)
		return false;
	if (mc_val_is_str(t, "pp") && s->frames_in == 1)
		return s->client ? client_pp(s, msg) : server_pp(s, msg);
	if (mc_val_is_str(t, "entries") && !s->client)
		return merge_members(s, msg) && send_offer(s, msg);
	if (mc_val_is_str(t, "recs"))
		return on_recs(s, msg);
	return false;
}

/*
 * Gives the socket to rpc.c: a duplicate of its descriptor goes there with
 * the bytes read so far, and this stream closes its own.
 */
static void hand_over_rpc(struct net_stream *s)
{
	uv_os_fd_t fd;
	int dup_fd = -1;
	if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
		dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	s->handed_over = true;
	if (dup_fd >= 0)
		peer_rpc_adopt(s->n->p, dup_fd, s->in.data, s->in.len,
		               s->peer_addr);
	else
		mc_warn("rpc", "cannot take the connection from %s",
		        s->peer_addr);
	stream_close(s, false);
}

static void handle_frames(struct net_stream *s)
{
	const struct peer_keyring *ring = &s->n->p->keyring;
	if (!s->client && s->frames_in == 0 && s->in.len >= RPC_MAGIC_LEN &&
	    memcmp(s->in.data, RPC_MAGIC, RPC_MAGIC_LEN) == 0) {
		hand_over_rpc(s);
		return;
	}
	while (!s->closing && s->in.len >= 4) {
		uint32_t len = mc_load_be32(s->in.data);
		if (len > NET_STREAM_MAX_FRAME || len < MC_SEAL_OVERHEAD) {
			stream_close(s, false);
			return;
		}
		if (s->in.len < 4 + (size_t)len)
			return;
		struct mc_buf plain;
		mc_buf_init(&plain);
		int opened = -EBADMSG;
		for (unsigned k = 0; k < ring->n && opened; k++) {
			mc_buf_reset(&plain);
			opened =
			    mc_open(&plain, ring->keys[k], STREAM_AD,
			            strlen(STREAM_AD), s->in.data + 4, len);
		}
		struct mc_doc *doc =
		    opened == 0 ? mc_unpack(plain.data, plain.len) : NULL;
		mc_buf_free(&plain);
		mc_buf_consume(&s->in, 4 + (size_t)len);
		if (!doc) {
			mc_warn("gossip", "stream from %s: %s", s->peer_addr,
			        opened ? "no key of the ring opens it"
			               : "malformed message");
			stream_close(s, false);
			return;
		}
		bool ok = handle_message(s, mc_doc_root(doc));
		mc_doc_free(doc);
		if (!ok) {
			stream_close(s, false);
			return;
		}
	}
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct net_stream *s = h->data;
	(void)suggested;
	buf->base = (char *)mc_buf_reserve(&s->in, 65536);
	buf->len = 65536;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct net_stream *s = st->data;
	(void)buf;
	if (nread < 0) {
		stream_close(s, s->step == STEP_DRAIN);
		return;
	}
	s->in.len += (size_t)nread;
	s->n->c.stream_bytes_in += (uint64_t)nread;
	handle_frames(s);
}

static void on_timeout(uv_timer_t *t)
{
	struct net_stream *s = t->data;
	mc_debug("gossip", "push-pull with %s timed out", s->peer_addr);
	stream_close(s, false);
}

static struct net_stream *stream_new(struct peer_net *n)
{
	struct net_stream *s = xcalloc(1, sizeof(*s));
	s->n = n;
	mc_buf_init(&s->in);
	uv_tcp_init(n->loop, &s->tcp);
	uv_timer_init(n->loop, &s->timeout);
	s->tcp.data = s->timeout.data = s;
	s->open_handles = 2;
	s->next = n->streams;
	if (s->next)
		s->next->pprev = &s->next;
	s->pprev = &n->streams;
	n->streams = s;
	uv_timer_start(&s->timeout, on_timeout, NET_STREAM_TIMEOUT_MS, 0);
	return s;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct net_stream *s = req->data;
	if (s->closing)
		return;
	if (status < 0) {
		mc_debug("gossip", "connect %s: %s", s->peer_addr,
		         uv_strerror(status));
		stream_close(s, false);
		return;
	}
	uv_read_start((uv_stream_t *)&s->tcp, alloc_in, on_read);
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 4 + 2 * s->join);
	mc_pack_kv_str(&b, "t", "pp");
	mc_pack_kv_bool(&b, "join", s->join);
	pack_hashes(s, &b);
	if (s->join) {
		pack_members(s, &b);
		pack_digest(&b, s->n->p->store);
	}
	send_frame(s, &b);
	mc_buf_free(&b);
	s->step = STEP_OPEN;
}

void net_pushpull_start(struct peer_net *n, const struct mc_addr *to, bool join)
{
	if (n->stopping)
		return;
	struct net_stream *s = stream_new(n);
	s->client = true;
	s->join = join;
	s->step = STEP_CONNECTING;
	mc_addr_format(to, s->peer_addr, sizeof(s->peer_addr));
	s->connect.data = s;
	int r = uv_tcp_connect(&s->connect, &s->tcp,
	                       (const struct sockaddr *)&to->ss, on_connect);
	if (r) {
		mc_debug("gossip", "connect %s: %s", s->peer_addr,
		         uv_strerror(r));
		stream_close(s, false);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct peer_net *n = server->data;
	if (status < 0 || n->stopping)
		return;
	struct net_stream *s = stream_new(n);
	s->step = STEP_OPEN;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
		stream_close(s, false);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	struct mc_addr a;
	memset(&a, 0, sizeof(a));
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
		memcpy(&a.ss, &ss, sizeof(ss));
		a.len = (socklen_t)len;
		mc_addr_format(&a, s->peer_addr, sizeof(s->peer_addr));
	}
	uv_read_start((uv_stream_t *)&s->tcp, alloc_in, on_read);
}

int net_stream_listen(struct peer_net *n, const struct mc_addr *addr, char *err,
                      size_t err_size)
{
	int r =
	    uv_tcp_bind(&n->listener, (const struct sockaddr *)&addr->ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&n->listener, 128, on_connection);
	if (r) {
		char text[64];
		mc_addr_format(addr, text, sizeof(text));
		snprintf(err, err_size, "gossip TCP %s: %s", text,
		         uv_strerror(r));
		return r;
	}
	return 0;
}
