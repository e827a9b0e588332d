/*
 * The RPC's untrusted bytes, judged without any connection state
 * (rpc_int.h): a request frame as a connection buffers it, a reply frame as
 * a call buffers it, and the maps inside them once opened. rpc.c acts on
 * the verdicts; the unit tests and tests/fuzz/fuzz_rpc_frame.c call these
 * directly.
 */
#include "rpc_int.h"

#include "buf.h"
#include "gossip.h"
#include "wire.h"

#include <errno.h>
#include <string.h>

/* Magic, length and the sender's id: all a request frame's clear bytes. */
#define RPC_REQUEST_HEADER (RPC_MAGIC_LEN + 4 + GOSSIP_ID_LEN)
/* A reply frame's length, then its sender's id. */
#define RPC_REPLY_HEADER 4

/* The refusals' messages, as rpc.c has always logged or answered them. */
#define NOT_A_REQUEST   "not a request for this peer"
#define REPLY_MALFORMED "the reply is malformed"

/* The length a frame's header declares, counting from the sender's id. */
static bool frame_length_ok(uint32_t len)
{
	return len >= RPC_MIN_FRAME && len <= RPC_MAX_FRAME;
}

/* Fills out's offsets for a frame whose id starts at id_off. */
static void frame_place(struct rpc_frame *out, size_t id_off, uint32_t len)
{
	out->sealed_off = id_off + GOSSIP_ID_LEN;
	out->sealed_len = (size_t)len - GOSSIP_ID_LEN;
	out->end = id_off + (size_t)len;
}

enum rpc_frame_status rpc_request_frame_parse(const uint8_t *in, size_t len,
                                              struct rpc_frame *out)
{
	struct mc_cursor c;
	const uint8_t *magic, *id;
	uint32_t frame_len;

	memset(out, 0, sizeof(*out));
	mc_cursor_init(&c, in, len);
	if (!mc_cursor_get_view(&c, &magic, RPC_MAGIC_LEN) ||
	    !mc_cursor_get_be32(&c, &frame_len) ||
	    !mc_cursor_get_view(&c, &id, GOSSIP_ID_LEN))
		return RPC_FRAME_NEED_HEADER;
	if (memcmp(magic, RPC_MAGIC, RPC_MAGIC_LEN) != 0)
		return RPC_FRAME_BAD_MAGIC;
	if (!frame_length_ok(frame_len))
		return RPC_FRAME_BAD_LENGTH;
	/* Checked before the frame's bulk arrives: the caller keys the
	 * connection by this id as soon as the header is in. */
	char from[GOSSIP_ID_LEN + 1];
	memcpy(from, id, GOSSIP_ID_LEN);
	from[GOSSIP_ID_LEN] = '\0';
	if (!gossip_id_valid(from))
		return RPC_FRAME_BAD_ID;
	memcpy(out->from, from, sizeof(out->from));
	frame_place(out, RPC_MAGIC_LEN + 4, frame_len);
	if (len < out->end)
		return RPC_FRAME_NEED_BODY;
	/* One request per connection: the client sends nothing after it. */
	return len == out->end ? RPC_FRAME_COMPLETE : RPC_FRAME_TRAILING;
}

enum rpc_frame_status rpc_reply_frame_parse(const uint8_t *in, size_t len,
                                            struct rpc_frame *out)
{
	struct mc_cursor c;
	const uint8_t *id;
	uint32_t frame_len;

	memset(out, 0, sizeof(*out));
	mc_cursor_init(&c, in, len);
	if (!mc_cursor_get_be32(&c, &frame_len))
		return RPC_FRAME_NEED_HEADER;
	if (!frame_length_ok(frame_len))
		return RPC_FRAME_BAD_LENGTH;
	frame_place(out, RPC_REPLY_HEADER, frame_len);
	if (len < out->end || !mc_cursor_get_view(&c, &id, GOSSIP_ID_LEN))
		return RPC_FRAME_NEED_BODY;
	memcpy(out->from, id, GOSSIP_ID_LEN);
	out->from[GOSSIP_ID_LEN] = '\0';
	return RPC_FRAME_COMPLETE;
}

/* Copies the 16-byte request id under "rid": bin, though a str of 16 bytes
 * has always passed too. */
static bool get_rid(const struct mc_val *m, uint8_t rid[RPC_RID_LEN])
{
	const uint8_t *p;
	size_t n;
	if (!mc_get_bytes(m, "rid", &p, &n) || n != RPC_RID_LEN)
		return false;
	memcpy(rid, p, RPC_RID_LEN);
	return true;
}

int rpc_request_decode(const struct mc_val *m, const char *from, const char *to,
                       struct rpc_request *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	*why = NOT_A_REQUEST;
	/* The box key is the same both ways, so the map must say who sent it
	 * to whom: a frame reflected back to its sender must not pass. */
	if (!mc_val_is_str(mc_map_get(m, "t"), "req") ||
	    !mc_get_str(m, "from", out->from, sizeof(out->from)) ||
	    strcmp(out->from, from) != 0 ||
	    !mc_get_str(m, "to", out->to, sizeof(out->to)) ||
	    strcmp(out->to, to) != 0 || !get_rid(m, out->rid) ||
	    !mc_get_uint(m, "time", &out->time_ms) ||
	    !mc_get_str(m, "method", out->method, sizeof(out->method)))
		return -EPROTO;
	const struct mc_val *args = mc_map_get(m, "args");
	if (!args || args->type != MC_VAL_MAP)
		return -EPROTO;
	out->args = args;
	*why = NULL;
	return 0;
}

/* A reply's status: 0, or a negative errno. msgpack decodes by sign, so 0
 * arrives as a uint and an errno as an int. */
static bool get_status(const struct mc_val *m, int *status)
{
	const struct mc_val *v = mc_map_get(m, "status");
	if (v && v->type == MC_VAL_UINT && v->v.u == 0) {
		*status = 0;
		return true;
	}
	if (!v || v->type != MC_VAL_INT || v->v.i > 0 || v->v.i < -4095)
		return false;
	*status = (int)v->v.i;
	return true;
}

int rpc_reply_decode(const struct mc_val *m, const char *from, const char *to,
                     const uint8_t rid[RPC_RID_LEN], struct rpc_reply *out,
                     const char **why)
{
	memset(out, 0, sizeof(*out));
	*why = REPLY_MALFORMED;
	if (!mc_val_is_str(mc_map_get(m, "t"), "rep") ||
	    !get_status(m, &out->status) ||
	    !mc_get_str(m, "from", out->from, sizeof(out->from)) ||
	    strcmp(out->from, from) != 0 ||
	    !mc_get_str(m, "to", out->to, sizeof(out->to)) ||
	    strcmp(out->to, to) != 0 || !get_rid(m, out->rid) ||
	    memcmp(out->rid, rid, RPC_RID_LEN) != 0)
		return -EPROTO;
	if (out->status) {
		/* A message that does not fit is dropped, not cut: the
		 * caller falls back to strerror. */
		if (!mc_get_str(m, "message", out->message,
		                sizeof(out->message)))
			out->message[0] = '\0';
		*why = NULL;
		return 0;
	}
	const struct mc_val *reply = mc_map_get(m, "reply");
	if (reply && reply->type != MC_VAL_MAP)
		return -EPROTO;
	out->reply = reply;
	*why = NULL;
	return 0;
}
