/* Internals shared by rpc.c, rpc_frame.c, rpc_seen.c and rpc_ping.c (and
 * net_stream.c, for peer_rpc_adopt); no other file includes it. */
#ifndef PEER_RPC_INT_H
#define PEER_RPC_INT_H

#include "crypto.h"
#include "gossip.h"
#include "peer.h"
#include "rpc.h"
#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * An RPC connection opens with these 4 bytes. Read as a push-pull frame's
 * big-endian length they say 0x4d525031, far past the 64 MiB any push-pull
 * frame may have, so the shared listener tells the two apart from the first
 * 4 bytes (net_stream.c).
 */
#define RPC_MAGIC       "MRP1"
#define RPC_MAGIC_LEN   4
#define RPC_MAX_FRAME   (64u << 20) /* image chunks travel as replies */
#define RPC_MAX_AGE_MS  60000       /* older (or further ahead) is refused */
#define RPC_RID_LEN     16
#define RPC_IDLE_MS     10000 /* for a request to arrive on a connection */
#define RPC_KEY_BUCKETS 256
#define RPC_METHOD_MAX  64  /* bytes of a method's name, its NUL included */
#define RPC_MESSAGE_MAX 512 /* bytes of an error reply's message, with NUL */
/* The shortest frame after its length: the sender's id and an empty box. */
#define RPC_MIN_FRAME (GOSSIP_ID_LEN + MC_BOX_OVERHEAD)

/*
 * Request ids seen lately: an open-addressing set of random 16-byte ids,
 * each kept until the time its request would be refused as too old anyway.
 */
struct rpc_seen_slot {
	uint8_t rid[RPC_RID_LEN];
	uint64_t until; /* wall ms; 0: empty slot */
};

struct rpc_seen {
	struct rpc_seen_slot *slots;
	size_t cap, used;
};

/* True when rid was seen before (and not expired); else remembers it
 * until `until`. now is the wall clock (ms). */
bool rpc_seen_check_add(struct rpc_seen *s, const uint8_t rid[RPC_RID_LEN],
                        uint64_t until, uint64_t now);
void rpc_seen_free(struct rpc_seen *s);

/*
 * Takes over a connection the gossip listener accepted (net_stream.c) once
 * its first bytes showed RPC_MAGIC: fd is ours (closed on failure), head
 * the bytes already read (magic included), borrowed.
 */
int peer_rpc_adopt(struct peer *p, int fd, const uint8_t *head, size_t len,
                   const char *peer_addr);

/*
 * Frames and maps as they come off the wire (rpc_frame.c): pure checks of
 * untrusted bytes with no connection state, so the unit tests and the
 * fuzzer reach every one of them.
 */

/* What the bytes buffered on a connection amount to so far. */
enum rpc_frame_status {
	RPC_FRAME_NEED_HEADER, /* too few bytes to judge anything: read on */
	RPC_FRAME_NEED_BODY,   /* the header is in and sound: read on */
	RPC_FRAME_COMPLETE,    /* one whole frame */
	RPC_FRAME_TRAILING,    /* one whole frame and bytes after it */
	RPC_FRAME_BAD_MAGIC,
	RPC_FRAME_BAD_LENGTH, /* below RPC_MIN_FRAME or above RPC_MAX_FRAME */
	RPC_FRAME_BAD_ID,     /* the sender's id is not a member id */
};

/* Where a frame's parts lie in the bytes it was parsed from. */
struct rpc_frame {
	char from[GOSSIP_ID_LEN + 1]; /* the sender's id, "" until known */
	size_t sealed_off;            /* nonce and box: [sealed_off, end) */
	size_t sealed_len;
	size_t end; /* just past the frame; may lie past what is buffered */
};

/*
 * Judges in[0..len) (borrowed), the bytes a remote peer has sent so far on
 * a connection it opened to ask us something, magic included. Nothing is
 * judged before the whole header (magic, length, id) is in; then the magic,
 * the length and the id are checked in that order. From
 * RPC_FRAME_NEED_BODY on, every field of out is set and from is a valid
 * member id, so the caller can pick the sender's key before it buffers a
 * large frame, and only members can make it hold one.
 */
enum rpc_frame_status rpc_request_frame_parse(const uint8_t *in, size_t len,
                                              struct rpc_frame *out);

/*
 * The same for a reply on a call's connection, which has no magic: the
 * length is judged as soon as its 4 bytes are in. from is the id as sent
 * (cut at a NUL, never checked here: the caller compares it with the member
 * it called), set at RPC_FRAME_COMPLETE. Bytes after the reply are left
 * alone, so this never says RPC_FRAME_TRAILING.
 */
enum rpc_frame_status rpc_reply_frame_parse(const uint8_t *in, size_t len,
                                            struct rpc_frame *out);

/* A request map, decoded and checked by rpc_request_decode. */
struct rpc_request {
	char from[GOSSIP_ID_LEN + 1];
	char to[GOSSIP_ID_LEN + 1];
	uint8_t rid[RPC_RID_LEN];
	uint64_t time_ms; /* the caller's wall clock when it asked */
	char method[RPC_METHOD_MAX];
	const struct mc_val *args; /* a map, borrowed from the decoded doc */
};

/*
 * Decodes an opened request map m (borrowed: out->args points into it) and
 * checks that it is a request from member `from` to member `to` with each
 * field present and of its type. Returns 0, or -EPROTO with *why set to
 * the message the refusal logs (out then means nothing). The time is not judged
 * here: how old is too old depends on this peer's clock, and a stale request is
 * answered.
 */
int rpc_request_decode(const struct mc_val *m, const char *from, const char *to,
                       struct rpc_request *out, const char **why);

/* A reply map, decoded and checked by rpc_reply_decode. */
struct rpc_reply {
	char from[GOSSIP_ID_LEN + 1];
	char to[GOSSIP_ID_LEN + 1];
	uint8_t rid[RPC_RID_LEN];
	int status; /* 0, or the remote's negative errno (down to -4095) */
	/* With an error status, its message; "" when none came or it was too
	 * long. Always "" with status 0. */
	char message[RPC_MESSAGE_MAX];
	/* With status 0, the answer (a map, borrowed from the decoded doc), or
	 * NULL when the remote sent none. Always NULL with an error status. */
	const struct mc_val *reply;
};

/*
 * Decodes an opened reply map m (borrowed: out->reply points into it) and
 * checks that it answers request rid, from member `from` to member `to`.
 * Returns 0, or -EPROTO with *why set to the message the call ends with
 * (out then means nothing).
 */
int rpc_reply_decode(const struct mc_val *m, const char *from, const char *to,
                     const uint8_t rid[RPC_RID_LEN], struct rpc_reply *out,
                     const char **why);

struct rpc_ping;

/* The ping handler and the control socket's ping bookkeeping (rpc_ping.c). */
void rpc_ping_register(struct peer *p);
void rpc_ping_free_all(struct rpc_ping *pings);

/* Where rpc_ping.c keeps its tickets: a field of the daemon's RPC state
 * (rpc.c); NULL before peer_rpc_start and after peer_rpc_stop. */
struct rpc_ping **rpc_pings(struct peer *p);

#endif
