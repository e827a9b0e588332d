/*
 * RPC bytes come from anyone who can reach the gossip port, and a reply
 * from whatever answers a call. The first byte picks the way in: 0 a
 * request frame as a connection buffers it, 1 a reply frame as a call
 * buffers it, 2 an opened request map, 3 an opened reply map (both through
 * the msgpack unpacker); the rest is the input.
 *
 * Frames are parsed at every prefix, as reads may cut them anywhere: the
 * verdicts must follow each other as rpc.c relies on (the id is known and
 * fixed from the moment the header is in, a refusal never turns into
 * anything else, the frame ends where its header said) and every offset
 * must lie within what the header declared.
 */
#include "rpc_int.h"
#include "wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FROM "00000000000000aa"
#define TO   "00000000000000bb"

/* The same request id as the seeds in corpus/rpc_frame/. */
static const uint8_t RID[RPC_RID_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
                                         9, 10, 11, 12, 13, 14, 15, 16};

static bool same_frame(const struct rpc_frame *a, const struct rpc_frame *b)
{
	return strcmp(a->from, b->from) == 0 &&
	       a->sealed_off == b->sealed_off &&
	       a->sealed_len == b->sealed_len && a->end == b->end;
}

static bool is_refusal(enum rpc_frame_status st)
{
	return st == RPC_FRAME_BAD_MAGIC || st == RPC_FRAME_BAD_LENGTH ||
	       st == RPC_FRAME_BAD_ID;
}

/* What must hold of any frame whose header was sound. */
static void check_placed(const struct rpc_frame *f, size_t id_off)
{
	if (f->sealed_off != id_off + GOSSIP_ID_LEN ||
	    f->sealed_len < MC_BOX_OVERHEAD ||
	    f->sealed_len > RPC_MAX_FRAME - GOSSIP_ID_LEN ||
	    f->sealed_off + f->sealed_len != f->end)
		abort();
}

static void fuzz_request_frame(const uint8_t *in, size_t len)
{
	const size_t header = RPC_MAGIC_LEN + 4 + GOSSIP_ID_LEN;
	enum rpc_frame_status first = RPC_FRAME_NEED_HEADER;
	struct rpc_frame f, at_header;

	memset(&at_header, 0, sizeof(at_header));
	for (size_t n = 0; n <= len; n++) {
		enum rpc_frame_status st = rpc_request_frame_parse(in, n, &f);
		if ((st == RPC_FRAME_NEED_HEADER) != (n < header))
			abort();
		if (n == header) {
			first = st;
			at_header = f;
		}
		if (n <= header)
			continue;
		/* Later bytes never change the header's verdict. */
		if (is_refusal(first) != is_refusal(st) ||
		    (is_refusal(st) && st != first))
			abort();
		if (is_refusal(st)) {
			if (f.from[0] || f.end)
				abort();
			continue;
		}
		if (!same_frame(&f, &at_header))
			abort();
		if (st != (n < f.end    ? RPC_FRAME_NEED_BODY
		           : n == f.end ? RPC_FRAME_COMPLETE
		                        : RPC_FRAME_TRAILING))
			abort();
	}
	if (len < header || is_refusal(first))
		return;
	/* The caller keys the connection by this id before the body. */
	if (!gossip_id_valid(at_header.from) ||
	    memcmp(at_header.from, in + RPC_MAGIC_LEN + 4, GOSSIP_ID_LEN) != 0)
		abort();
	check_placed(&at_header, RPC_MAGIC_LEN + 4);
}

static void fuzz_reply_frame(const uint8_t *in, size_t len)
{
	struct rpc_frame f, at_header;
	enum rpc_frame_status first = RPC_FRAME_NEED_HEADER;

	memset(&at_header, 0, sizeof(at_header));
	for (size_t n = 0; n <= len; n++) {
		enum rpc_frame_status st = rpc_reply_frame_parse(in, n, &f);
		if ((st == RPC_FRAME_NEED_HEADER) != (n < 4) ||
		    st == RPC_FRAME_TRAILING || st == RPC_FRAME_BAD_MAGIC ||
		    st == RPC_FRAME_BAD_ID)
			abort();
		if (n == 4) {
			first = st;
			at_header = f;
		}
		if (n < 4)
			continue;
		if ((first == RPC_FRAME_BAD_LENGTH) !=
		    (st == RPC_FRAME_BAD_LENGTH))
			abort();
		if (st == RPC_FRAME_BAD_LENGTH)
			continue;
		check_placed(&f, 4);
		if (f.end != at_header.end ||
		    st !=
		        (n < f.end ? RPC_FRAME_NEED_BODY : RPC_FRAME_COMPLETE))
			abort();
		/* The id is handed over as sent, cut at a NUL. */
		if (st == RPC_FRAME_NEED_BODY
		        ? f.from[0] != '\0'
		        : strncmp(f.from, (const char *)in + 4,
		                  GOSSIP_ID_LEN) != 0)
			abort();
	}
}

static void fuzz_request_map(const uint8_t *in, size_t len)
{
	struct mc_doc *doc = mc_unpack(in, len);
	if (!doc)
		return;
	struct rpc_request r;
	const char *why = NULL;
	int rc = rpc_request_decode(mc_doc_root(doc), FROM, TO, &r, &why);
	if (rc != 0) {
		if (rc != -EPROTO || !why || !why[0])
			abort();
	} else {
		if (why || strcmp(r.from, FROM) != 0 || strcmp(r.to, TO) != 0 ||
		    strnlen(r.method, sizeof(r.method)) == sizeof(r.method) ||
		    !r.args || r.args->type != MC_VAL_MAP)
			abort();
		/* args is the map's own "args", borrowed from the doc. */
		if (r.args != mc_map_get(mc_doc_root(doc), "args"))
			abort();
	}
	mc_doc_free(doc);
}

static void fuzz_reply_map(const uint8_t *in, size_t len)
{
	struct mc_doc *doc = mc_unpack(in, len);
	if (!doc)
		return;
	struct rpc_reply r;
	const char *why = NULL;
	int rc = rpc_reply_decode(mc_doc_root(doc), FROM, TO, RID, &r, &why);
	if (rc != 0) {
		if (rc != -EPROTO || !why || !why[0])
			abort();
	} else {
		if (why || strcmp(r.from, FROM) != 0 || strcmp(r.to, TO) != 0 ||
		    memcmp(r.rid, RID, RPC_RID_LEN) != 0 || r.status > 0 ||
		    r.status < -4095 ||
		    strnlen(r.message, sizeof(r.message)) == sizeof(r.message))
			abort();
		if (r.status == 0 &&
		    (r.message[0] || (r.reply && r.reply->type != MC_VAL_MAP)))
			abort();
		if (r.status != 0 && r.reply)
			abort();
	}
	mc_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_request_frame(data + 1, size - 1);
		break;
	case 1:
		fuzz_reply_frame(data + 1, size - 1);
		break;
	case 2:
		fuzz_request_map(data + 1, size - 1);
		break;
	default:
		fuzz_reply_map(data + 1, size - 1);
		break;
	}
	return 0;
}
