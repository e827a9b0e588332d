/*
 * The RPC's frame parsers and map decoders (peer/rpc_frame.c), each
 * outcome on its own: frames as a connection buffers them (every prefix of
 * a good one, bad magic, lengths at and past the limits, bad ids, trailing
 * bytes), and request and reply maps with one field at a time missing,
 * mistyped or wrong. The maps are packed here field by field rather than
 * by rpc.c, so a change on either side shows.
 */
#include "check.h"
#include "mem.h"
#include "rpc_int.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ALICE "00000000000000aa"
#define BOB   "00000000000000bb"

static const uint8_t RID[RPC_RID_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
                                         9, 10, 11, 12, 13, 14, 15, 16};

/* magic (when with_magic) | be32 len | id | body_len bytes of 0x5a; len
 * says GOSSIP_ID_LEN + body_len unless declared is non-zero. */
static void make_frame(struct mc_buf *b, bool with_magic, const char *id,
                       size_t body_len, uint32_t declared)
{
	mc_buf_reset(b);
	if (with_magic)
		mc_buf_append(b, RPC_MAGIC, RPC_MAGIC_LEN);
	mc_buf_put_be32(b, declared ? declared
	                            : (uint32_t)(GOSSIP_ID_LEN + body_len));
	mc_buf_append(b, id, GOSSIP_ID_LEN);
	memset(mc_buf_reserve(b, body_len), 0x5a, body_len);
	b->len += body_len;
}

static enum rpc_frame_status request_frame(const struct mc_buf *b,
                                           struct rpc_frame *f)
{
	return rpc_request_frame_parse(b->data, b->len, f);
}

/* ------------------------------------------------------------------ */
/* Request frames */

static void test_request_frame_prefixes(void)
{
	struct mc_buf b;
	struct rpc_frame f;
	const size_t header = RPC_MAGIC_LEN + 4 + GOSSIP_ID_LEN;
	const size_t body = MC_BOX_OVERHEAD + 30;
	mc_buf_init(&b);
	make_frame(&b, true, ALICE, body, 0);
	CHECK_EQ_U64(b.len, header + body);

	CHECK(rpc_request_frame_parse(NULL, 0, &f) == RPC_FRAME_NEED_HEADER);
	/* Every prefix, as reads might cut it: the header is judged as a
	 * whole, then the body waits, then the frame is complete. */
	bool ok = true;
	for (size_t n = 0; n <= b.len; n++) {
		enum rpc_frame_status st =
		    rpc_request_frame_parse(b.data, n, &f);
		enum rpc_frame_status want = n < header  ? RPC_FRAME_NEED_HEADER
		                             : n < b.len ? RPC_FRAME_NEED_BODY
		                                         : RPC_FRAME_COMPLETE;
		if (st != want) {
			fprintf(stderr, "prefix %zu: status %d, want %d\n", n,
			        (int)st, (int)want);
			ok = false;
		}
		if (st == RPC_FRAME_NEED_BODY && strcmp(f.from, ALICE) != 0)
			ok = false;
	}
	CHECK(ok);

	/* The id and offsets are there as soon as the header is: the caller
	 * keys the connection before it buffers the body. */
	CHECK(rpc_request_frame_parse(b.data, header, &f) ==
	      RPC_FRAME_NEED_BODY);
	CHECK_STR(f.from, ALICE);
	CHECK_EQ_U64(f.sealed_off, header);
	CHECK_EQ_U64(f.sealed_len, body);
	CHECK_EQ_U64(f.end, b.len);

	CHECK(request_frame(&b, &f) == RPC_FRAME_COMPLETE);
	CHECK_STR(f.from, ALICE);
	CHECK_EQ_U64(f.sealed_off, header);
	CHECK_EQ_U64(f.sealed_len, body);
	CHECK_EQ_U64(f.end, b.len);
	CHECK(f.sealed_off + f.sealed_len == f.end);
	mc_buf_free(&b);
}

static void test_request_frame_trailing(void)
{
	struct mc_buf b;
	struct rpc_frame f;
	mc_buf_init(&b);
	make_frame(&b, true, ALICE, MC_BOX_OVERHEAD + 8, 0);
	size_t end = b.len;
	mc_buf_put_u8(&b, 0);
	CHECK(request_frame(&b, &f) == RPC_FRAME_TRAILING);
	CHECK_STR(f.from, ALICE);
	CHECK_EQ_U64(f.end, end);
	/* A second whole frame is still trailing data: one per connection. */
	uint8_t *again = xmalloc(end);
	memcpy(again, b.data, end);
	b.len = end;
	mc_buf_append(&b, again, end);
	free(again);
	CHECK(request_frame(&b, &f) == RPC_FRAME_TRAILING);
	CHECK_EQ_U64(f.end, end);
	mc_buf_free(&b);
}

static void test_request_frame_bad_magic(void)
{
	struct mc_buf b;
	struct rpc_frame f;
	mc_buf_init(&b);
	make_frame(&b, true, ALICE, MC_BOX_OVERHEAD, 0);
	b.data[3] = '2';
	CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_MAGIC);
	CHECK_STR(f.from, "");
	/* Not judged before the whole header is in, even when the first
	 * byte already shows it. */
	CHECK(rpc_request_frame_parse(b.data, RPC_MAGIC_LEN + 4, &f) ==
	      RPC_FRAME_NEED_HEADER);
	/* The magic is checked first: a bad length and id behind it do not
	 * change the verdict. */
	make_frame(&b, true, "not a member id!", 0, 1);
	b.data[0] = 'X';
	CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_MAGIC);
	/* A push-pull frame (no magic) is no RPC. */
	make_frame(&b, false, ALICE, 200, 0);
	CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_MAGIC);
	mc_buf_free(&b);
}

static void test_request_frame_lengths(void)
{
	struct mc_buf b;
	struct rpc_frame f;
	const size_t header = RPC_MAGIC_LEN + 4 + GOSSIP_ID_LEN;
	mc_buf_init(&b);

	/* Below the shortest: the id and an empty box. */
	const uint32_t too_short[] = {1, GOSSIP_ID_LEN, RPC_MIN_FRAME - 1};
	for (size_t i = 0; i < sizeof(too_short) / sizeof(*too_short); i++) {
		make_frame(&b, true, ALICE, MC_BOX_OVERHEAD, too_short[i]);
		CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_LENGTH);
	}
	/* A declared length of 0 (make_frame's "compute it" is 0, so set
	 * it by hand). */
	make_frame(&b, true, ALICE, MC_BOX_OVERHEAD, 0);
	mc_store_be32(b.data + RPC_MAGIC_LEN, 0);
	CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_LENGTH);

	/* The shortest frame is whole with an empty box. */
	make_frame(&b, true, ALICE, MC_BOX_OVERHEAD, 0);
	CHECK(request_frame(&b, &f) == RPC_FRAME_COMPLETE);
	CHECK_EQ_U64(f.sealed_len, MC_BOX_OVERHEAD);

	/* Past 64 MiB, whatever the rest says; the length is judged before
	 * the id. */
	const uint32_t too_long[] = {RPC_MAX_FRAME + 1, 0x4d525031u,
	                             UINT32_MAX};
	for (size_t i = 0; i < sizeof(too_long) / sizeof(*too_long); i++) {
		make_frame(&b, true, ALICE, 0, too_long[i]);
		CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_LENGTH);
		make_frame(&b, true, "ZZZZZZZZZZZZZZZZ", 0, too_long[i]);
		CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_LENGTH);
	}

	/* Exactly 64 MiB: the header alone says wait for the body... */
	make_frame(&b, true, ALICE, 0, RPC_MAX_FRAME);
	CHECK(request_frame(&b, &f) == RPC_FRAME_NEED_BODY);
	CHECK_EQ_U64(f.end, header - GOSSIP_ID_LEN + (size_t)RPC_MAX_FRAME);
	CHECK_EQ_U64(f.sealed_len, RPC_MAX_FRAME - GOSSIP_ID_LEN);
	/* ...and with all of it in, the frame is whole. */
	size_t whole = f.end;
	uint8_t *big = xcalloc(1, whole + 1);
	memcpy(big, b.data, header);
	CHECK(rpc_request_frame_parse(big, whole - 1, &f) ==
	      RPC_FRAME_NEED_BODY);
	CHECK(rpc_request_frame_parse(big, whole, &f) == RPC_FRAME_COMPLETE);
	CHECK_EQ_U64(f.sealed_off + f.sealed_len, whole);
	CHECK(rpc_request_frame_parse(big, whole + 1, &f) ==
	      RPC_FRAME_TRAILING);
	free(big);
	mc_buf_free(&b);
}

static void test_request_frame_bad_id(void)
{
	struct mc_buf b;
	struct rpc_frame f;
	mc_buf_init(&b);
	const char *bad[] = {
	    "00000000000000AA", /* upper case */
	    "00000000000000ag", /* not hex */
	    "0000000 000000aa", /* a space */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		make_frame(&b, true, bad[i], MC_BOX_OVERHEAD, 0);
		CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_ID);
		CHECK_STR(f.from, "");
		/* Judged with the header, before the body arrives. */
		CHECK(rpc_request_frame_parse(b.data, b.len - 1, &f) ==
		      RPC_FRAME_BAD_ID);
	}
	/* A NUL inside the id. */
	make_frame(&b, true, ALICE, MC_BOX_OVERHEAD, 0);
	b.data[RPC_MAGIC_LEN + 4 + 3] = '\0';
	CHECK(request_frame(&b, &f) == RPC_FRAME_BAD_ID);
	CHECK_STR(f.from, "");
	mc_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Reply frames */

static void test_reply_frame(void)
{
	struct mc_buf b;
	struct rpc_frame f;
	const size_t body = MC_BOX_OVERHEAD + 12;
	mc_buf_init(&b);
	make_frame(&b, false, BOB, body, 0);

	/* The length is judged as soon as it is in; the id waits for the
	 * whole frame. */
	bool ok = true;
	for (size_t n = 0; n <= b.len; n++) {
		enum rpc_frame_status st = rpc_reply_frame_parse(b.data, n, &f);
		enum rpc_frame_status want = n < 4       ? RPC_FRAME_NEED_HEADER
		                             : n < b.len ? RPC_FRAME_NEED_BODY
		                                         : RPC_FRAME_COMPLETE;
		if (st != want || (st != RPC_FRAME_COMPLETE && f.from[0]))
			ok = false;
	}
	CHECK(ok);
	CHECK(rpc_reply_frame_parse(b.data, b.len, &f) == RPC_FRAME_COMPLETE);
	CHECK_STR(f.from, BOB);
	CHECK_EQ_U64(f.sealed_off, 4 + GOSSIP_ID_LEN);
	CHECK_EQ_U64(f.sealed_len, body);
	CHECK_EQ_U64(f.end, b.len);

	/* Bytes after the reply are the caller's business. */
	mc_buf_put_u8(&b, 7);
	CHECK(rpc_reply_frame_parse(b.data, b.len, &f) == RPC_FRAME_COMPLETE);
	CHECK_EQ_U64(f.end, b.len - 1);

	/* Lengths at and past the limits, judged from 4 bytes. */
	uint8_t head[4];
	mc_store_be32(head, RPC_MIN_FRAME - 1);
	CHECK(rpc_reply_frame_parse(head, 4, &f) == RPC_FRAME_BAD_LENGTH);
	mc_store_be32(head, RPC_MIN_FRAME);
	CHECK(rpc_reply_frame_parse(head, 4, &f) == RPC_FRAME_NEED_BODY);
	CHECK_EQ_U64(f.end, 4 + RPC_MIN_FRAME);
	mc_store_be32(head, RPC_MAX_FRAME);
	CHECK(rpc_reply_frame_parse(head, 4, &f) == RPC_FRAME_NEED_BODY);
	CHECK_EQ_U64(f.end, 4 + (size_t)RPC_MAX_FRAME);
	mc_store_be32(head, RPC_MAX_FRAME + 1);
	CHECK(rpc_reply_frame_parse(head, 4, &f) == RPC_FRAME_BAD_LENGTH);
	CHECK(rpc_reply_frame_parse(head, 3, &f) == RPC_FRAME_NEED_HEADER);

	/* The id is not judged here, only handed over as sent (the caller
	 * compares it with the member it called). */
	make_frame(&b, false, "0000000\0\0\0\0\0\0\0\0\0", MC_BOX_OVERHEAD, 0);
	CHECK(rpc_reply_frame_parse(b.data, b.len, &f) == RPC_FRAME_COMPLETE);
	CHECK_STR(f.from, "0000000");
	make_frame(&b, false, "ZZZZZZZZZZZZZZZZ", MC_BOX_OVERHEAD, 0);
	CHECK(rpc_reply_frame_parse(b.data, b.len, &f) == RPC_FRAME_COMPLETE);
	CHECK_STR(f.from, "ZZZZZZZZZZZZZZZZ");
	mc_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Maps */

/* One field of a map: its key and its value, packed. */
struct field {
	const char *key;
	struct mc_buf value;
};

#define MAX_FIELDS 8

struct map {
	struct field f[MAX_FIELDS];
	size_t n;
};

static struct mc_buf *map_set(struct map *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->f[i].key, key) == 0) {
			mc_buf_reset(&m->f[i].value);
			return &m->f[i].value;
		}
	}
	if (m->n == MAX_FIELDS)
		abort(); /* the test's own mistake */
	m->f[m->n].key = key;
	mc_buf_init(&m->f[m->n].value);
	return &m->f[m->n++].value;
}

static void map_omit(struct map *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->f[i].key, key) == 0) {
			mc_buf_free(&m->f[i].value);
			m->f[i] = m->f[--m->n];
			return;
		}
	}
}

static void map_free(struct map *m)
{
	for (size_t i = 0; i < m->n; i++)
		mc_buf_free(&m->f[i].value);
	m->n = 0;
}

static struct mc_doc *map_doc(const struct map *m)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, (uint32_t)m->n);
	for (size_t i = 0; i < m->n; i++) {
		mc_pack_str(&b, m->f[i].key);
		mc_buf_append(&b, m->f[i].value.data, m->f[i].value.len);
	}
	struct mc_doc *doc = mc_unpack(b.data, b.len);
	mc_buf_free(&b);
	if (!doc)
		abort();
	return doc;
}

/* A request from ALICE to BOB, as rpc.c's on_call_connect packs one. */
static void good_request(struct map *m)
{
	map_free(m);
	mc_pack_str(map_set(m, "t"), "req");
	mc_pack_str(map_set(m, "from"), ALICE);
	mc_pack_str(map_set(m, "to"), BOB);
	mc_pack_bin(map_set(m, "rid"), RID, sizeof(RID));
	mc_pack_uint(map_set(m, "time"), 1700000000000ull);
	mc_pack_str(map_set(m, "method"), "ping");
	struct mc_buf *args = map_set(m, "args");
	mc_pack_map(args, 1);
	mc_pack_kv_uint(args, "n", 7);
}

static int decode_request(const struct map *m, struct rpc_request *r,
                          const char **why)
{
	struct mc_doc *doc = map_doc(m);
	int rc = rpc_request_decode(mc_doc_root(doc), ALICE, BOB, r, why);
	mc_doc_free(doc);
	return rc;
}

/* The request with one field spoilt is refused, as a whole. */
static void check_request_refused(const struct map *m, int line)
{
	struct rpc_request r;
	const char *why = NULL;
	int rc = decode_request(m, &r, &why);
	if (rc != -EPROTO || !why ||
	    strcmp(why, "not a request for this peer") != 0) {
		fprintf(stderr, "line %d: rc %d, why %s\n", line, rc,
		        why ? why : "(null)");
		check_failed++;
	} else {
		check_passed++;
	}
}

static void test_request_decode_good(void)
{
	struct map m = {0};
	struct rpc_request r;
	const char *why = "unset";
	good_request(&m);
	struct mc_doc *doc = map_doc(&m);
	CHECK(rpc_request_decode(mc_doc_root(doc), ALICE, BOB, &r, &why) == 0);
	CHECK(why == NULL);
	CHECK_STR(r.from, ALICE);
	CHECK_STR(r.to, BOB);
	CHECK(memcmp(r.rid, RID, RPC_RID_LEN) == 0);
	CHECK_EQ_U64(r.time_ms, 1700000000000ull);
	CHECK_STR(r.method, "ping");
	uint64_t n = 0;
	CHECK(r.args && r.args->type == MC_VAL_MAP);
	CHECK(mc_get_uint(r.args, "n", &n) && n == 7);
	mc_doc_free(doc);

	/* Fields it does not know are ignored; so is their order. */
	mc_pack_bool(map_set(&m, "later"), true);
	map_omit(&m, "t");
	mc_pack_str(map_set(&m, "t"), "req");
	CHECK(decode_request(&m, &r, &why) == 0);

	/* The edges of what fits: an empty args map, a 63-byte method, the
	 * time 0 (how old is too old is rpc.c's business). */
	mc_pack_map(map_set(&m, "args"), 0);
	char method[RPC_METHOD_MAX];
	memset(method, 'm', sizeof(method) - 1);
	method[sizeof(method) - 1] = '\0';
	mc_pack_str(map_set(&m, "method"), method);
	mc_pack_uint(map_set(&m, "time"), 0);
	doc = map_doc(&m);
	CHECK(rpc_request_decode(mc_doc_root(doc), ALICE, BOB, &r, &why) == 0);
	CHECK_STR(r.method, method);
	CHECK_EQ_U64(r.time_ms, 0);
	CHECK(r.args && r.args->type == MC_VAL_MAP && r.args->v.map.n == 0);
	mc_doc_free(doc);
	map_free(&m);
}

static void test_request_decode_missing(void)
{
	const char *keys[] = {"t",    "from",   "to",  "rid",
	                      "time", "method", "args"};
	struct map m = {0};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		good_request(&m);
		map_omit(&m, keys[i]);
		check_request_refused(&m, __LINE__);
		map_free(&m);
	}
	/* Not a map at all. */
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_array(&b, 0);
	struct mc_doc *doc = mc_unpack(b.data, b.len);
	struct rpc_request r;
	const char *why;
	CHECK(rpc_request_decode(mc_doc_root(doc), ALICE, BOB, &r, &why) ==
	      -EPROTO);
	mc_doc_free(doc);
	mc_buf_free(&b);
}

static void test_request_decode_mistyped(void)
{
	struct map m = {0};
	/* Each field as a type it may not have. */
	const char *as_uint[] = {"t", "from", "to", "rid", "method", "args"};
	for (size_t i = 0; i < sizeof(as_uint) / sizeof(*as_uint); i++) {
		good_request(&m);
		mc_pack_uint(map_set(&m, as_uint[i]), 1);
		check_request_refused(&m, __LINE__);
		map_free(&m);
	}
	good_request(&m);
	mc_pack_bin(map_set(&m, "from"), ALICE, GOSSIP_ID_LEN);
	check_request_refused(&m, __LINE__);
	good_request(&m);
	mc_pack_str(map_set(&m, "time"), "1700000000000");
	check_request_refused(&m, __LINE__);
	good_request(&m);
	mc_pack_int(map_set(&m, "time"), -1);
	check_request_refused(&m, __LINE__);
	good_request(&m);
	mc_pack_array(map_set(&m, "args"), 0);
	check_request_refused(&m, __LINE__);
	good_request(&m);
	mc_pack_nil(map_set(&m, "args"));
	check_request_refused(&m, __LINE__);
	map_free(&m);
}

static void test_request_decode_wrong(void)
{
	struct map m = {0};

	good_request(&m); /* a reply where a request belongs */
	mc_pack_str(map_set(&m, "t"), "rep");
	check_request_refused(&m, __LINE__);
	good_request(&m); /* inside, from another than the frame said */
	mc_pack_str(map_set(&m, "from"), "00000000000000cc");
	check_request_refused(&m, __LINE__);
	good_request(&m); /* meant for another peer, or reflected back */
	mc_pack_str(map_set(&m, "to"), ALICE);
	check_request_refused(&m, __LINE__);
	good_request(&m); /* an id with a character more */
	mc_pack_str(map_set(&m, "to"), BOB "0");
	check_request_refused(&m, __LINE__);
	good_request(&m);
	mc_pack_strn(map_set(&m, "method"), "pi\0ng", 5);
	check_request_refused(&m, __LINE__);

	char method[RPC_METHOD_MAX + 1];
	memset(method, 'm', sizeof(method) - 1);
	method[sizeof(method) - 1] = '\0';
	good_request(&m); /* a method that does not fit */
	mc_pack_str(map_set(&m, "method"), method);
	check_request_refused(&m, __LINE__);

	/* The request id is 16 bytes, no fewer or more. */
	uint8_t rid[RPC_RID_LEN + 1] = {0};
	const size_t rid_lens[] = {0, RPC_RID_LEN - 1, RPC_RID_LEN + 1};
	for (size_t i = 0; i < sizeof(rid_lens) / sizeof(*rid_lens); i++) {
		good_request(&m);
		mc_pack_bin(map_set(&m, "rid"), rid, rid_lens[i]);
		check_request_refused(&m, __LINE__);
	}
	map_free(&m);
}

/* A reply from BOB to ALICE answering RID with status. */
static void good_reply(struct map *m, int status)
{
	map_free(m);
	mc_pack_str(map_set(m, "t"), "rep");
	mc_pack_str(map_set(m, "from"), BOB);
	mc_pack_str(map_set(m, "to"), ALICE);
	mc_pack_bin(map_set(m, "rid"), RID, sizeof(RID));
	mc_pack_int(map_set(m, "status"), status);
	mc_pack_str(map_set(m, "message"), status ? "no such thing" : "");
	struct mc_buf *reply = map_set(m, "reply");
	if (status) {
		mc_pack_map(reply, 0);
	} else {
		mc_pack_map(reply, 1);
		mc_pack_kv_str(reply, "pong", "yes");
	}
}

/* Stands for the reply map once its doc is gone. */
static const struct mc_val ANSWERED = {.type = MC_VAL_MAP};

/* Decodes m as a reply to RID from BOB; r->reply is only ever NULL or
 * &ANSWERED afterwards, as the doc it pointed into is freed. */
static int decode_reply(const struct map *m, struct rpc_reply *r)
{
	struct mc_doc *doc = map_doc(m);
	const char *why = "unset";
	int rc = rpc_reply_decode(mc_doc_root(doc), BOB, ALICE, RID, r, &why);
	if (r->reply)
		r->reply = &ANSWERED;
	mc_doc_free(doc);
	if ((rc == 0) != (why == NULL) ||
	    (rc && strcmp(why, "the reply is malformed") != 0))
		return -1000; /* a verdict with the wrong message */
	return rc;
}

static void test_reply_decode_good(void)
{
	struct map m = {0};
	struct rpc_reply r;
	const char *why;
	good_reply(&m, 0);
	struct mc_doc *doc = map_doc(&m);
	CHECK(rpc_reply_decode(mc_doc_root(doc), BOB, ALICE, RID, &r, &why) ==
	      0);
	CHECK(why == NULL);
	CHECK_STR(r.from, BOB);
	CHECK_STR(r.to, ALICE);
	CHECK(memcmp(r.rid, RID, RPC_RID_LEN) == 0);
	CHECK(r.status == 0);
	CHECK_STR(r.message, "");
	CHECK(r.reply && r.reply->type == MC_VAL_MAP);
	CHECK(mc_val_is_str(mc_map_get(r.reply, "pong"), "yes"));
	mc_doc_free(doc);

	/* Status 0 however it is packed: msgpack makes it a uint. */
	mc_pack_uint(map_set(&m, "status"), 0);
	CHECK(decode_reply(&m, &r) == 0 && r.status == 0);
	/* No reply map: the caller hands over an empty one. */
	map_omit(&m, "reply");
	CHECK(decode_reply(&m, &r) == 0 && r.reply == NULL);
	/* A message with status 0 is ignored, as is no message. */
	mc_pack_str(map_set(&m, "message"), "ignored");
	CHECK(decode_reply(&m, &r) == 0);
	CHECK_STR(r.message, "");
	map_omit(&m, "message");
	CHECK(decode_reply(&m, &r) == 0);
	map_free(&m);
}

static void test_reply_decode_error(void)
{
	struct map m = {0};
	struct rpc_reply r;
	good_reply(&m, -ENOENT);
	CHECK(decode_reply(&m, &r) == 0);
	CHECK(r.status == -ENOENT);
	CHECK_STR(r.message, "no such thing");
	CHECK(r.reply == NULL);

	/* The errno range's ends. */
	mc_pack_int(map_set(&m, "status"), -4095);
	CHECK(decode_reply(&m, &r) == 0 && r.status == -4095);
	mc_pack_int(map_set(&m, "status"), -1);
	CHECK(decode_reply(&m, &r) == 0 && r.status == -1);

	/* An error's reply is not looked at, whatever it is. */
	mc_pack_uint(map_set(&m, "reply"), 3);
	CHECK(decode_reply(&m, &r) == 0 && r.reply == NULL);

	/* A message that is missing, mistyped or too long: none. */
	map_omit(&m, "message");
	CHECK(decode_reply(&m, &r) == 0);
	CHECK_STR(r.message, "");
	mc_pack_uint(map_set(&m, "message"), 5);
	CHECK(decode_reply(&m, &r) == 0);
	CHECK_STR(r.message, "");
	char msg[RPC_MESSAGE_MAX + 1];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	mc_pack_str(map_set(&m, "message"), msg);
	CHECK(decode_reply(&m, &r) == 0);
	CHECK_STR(r.message, "");
	msg[RPC_MESSAGE_MAX - 1] = '\0'; /* 511 bytes fit */
	mc_pack_str(map_set(&m, "message"), msg);
	CHECK(decode_reply(&m, &r) == 0);
	CHECK_EQ_U64(strlen(r.message), RPC_MESSAGE_MAX - 1);
	map_free(&m);
}

static void test_reply_decode_refused(void)
{
	struct map m = {0};
	struct rpc_reply r;
	const char *keys[] = {"t", "from", "to", "rid", "status"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		good_reply(&m, 0);
		map_omit(&m, keys[i]);
		CHECK(decode_reply(&m, &r) == -EPROTO);
		good_reply(&m, 0);
		mc_pack_nil(map_set(&m, keys[i]));
		CHECK(decode_reply(&m, &r) == -EPROTO);
	}
	good_reply(&m, 0); /* a request where a reply belongs */
	mc_pack_str(map_set(&m, "t"), "req");
	CHECK(decode_reply(&m, &r) == -EPROTO);
	good_reply(&m, 0); /* from another member than the one called */
	mc_pack_str(map_set(&m, "from"), "00000000000000cc");
	CHECK(decode_reply(&m, &r) == -EPROTO);
	good_reply(&m, 0); /* our own request reflected back */
	mc_pack_str(map_set(&m, "to"), BOB);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	good_reply(&m, 0); /* another call's answer */
	uint8_t rid[RPC_RID_LEN + 1];
	memcpy(rid, RID, RPC_RID_LEN);
	rid[0] ^= 1;
	mc_pack_bin(map_set(&m, "rid"), rid, RPC_RID_LEN);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	mc_pack_bin(map_set(&m, "rid"), RID, RPC_RID_LEN - 1);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	memcpy(rid, RID, RPC_RID_LEN);
	mc_pack_bin(map_set(&m, "rid"), rid, RPC_RID_LEN + 1);
	CHECK(decode_reply(&m, &r) == -EPROTO);

	/* Statuses that are no errno. */
	good_reply(&m, 0);
	mc_pack_uint(map_set(&m, "status"), 1);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	mc_pack_int(map_set(&m, "status"), -4096);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	mc_pack_int(map_set(&m, "status"), INT64_MIN);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	mc_pack_str(map_set(&m, "status"), "0");
	CHECK(decode_reply(&m, &r) == -EPROTO);

	/* A success whose answer is not a map. */
	good_reply(&m, 0);
	mc_pack_array(map_set(&m, "reply"), 0);
	CHECK(decode_reply(&m, &r) == -EPROTO);
	mc_pack_nil(map_set(&m, "reply"));
	CHECK(decode_reply(&m, &r) == -EPROTO);
	map_free(&m);
}

int main(void)
{
	RUN(test_request_frame_prefixes);
	RUN(test_request_frame_trailing);
	RUN(test_request_frame_bad_magic);
	RUN(test_request_frame_lengths);
	RUN(test_request_frame_bad_id);
	RUN(test_reply_frame);
	RUN(test_request_decode_good);
	RUN(test_request_decode_missing);
	RUN(test_request_decode_mistyped);
	RUN(test_request_decode_wrong);
	RUN(test_reply_decode_good);
	RUN(test_reply_decode_error);
	RUN(test_reply_decode_refused);
	return check_summary();
}
