/*
 * Peer-to-peer RPC: one peer asks another (by member id) to do something
 * and gets an answer. Used for admission (an edge asks a host to take an
 * instance), instance operations, and image chunks.
 *
 * Transport: TCP to the member's gossip address (the port that already
 * carries push-pull). Every frame is sealed with crypto_box (X25519 +
 * XSalsa20-Poly1305) between the two peers' identity keys, the public one
 * learnt from gossip (whose packets the cloud key protects), so the
 * receiver knows which member sent it and nobody else can read or forge
 * it. Requests carry a time and a random id; a host refuses requests more
 * than a minute old and ids it has seen lately.
 *
 * Methods and their maps (msgpack; "inst" is an mc_instance record body):
 *   "ping"    {}                               -> {}
 *   "admit"   {inst}                           -> {inst}
 *   "op"      {op, account, id, instance_type?, vcpu?, mem_mib?,
 *              user_data? (bin; present = set it)}
 *                                              -> {inst, data? (bin)}
 *   "chunk"   {hash (bin 32)}                  -> {data (bin)}
 * Errors travel as a negative errno and a message.
 */
#ifndef PEER_RPC_H
#define PEER_RPC_H

#include "buf.h"
#include "wire.h"

#include <stdint.h>

struct peer;
struct peer_rpc_req;

#define PEER_RPC_TIMEOUT_MS 15000

/*
 * The answer to a call. status 0: reply is the remote's map (borrowed for
 * the call; an empty map when it sent none). Otherwise reply is NULL and
 * status is the remote's error, or -ETIMEDOUT, -EHOSTUNREACH (unknown or
 * dead member, connection refused or lost), -ECANCELED (this peer is
 * stopping), -EPROTO (a frame that does not open or parse); message says
 * what happened.
 */
typedef void (*peer_rpc_done)(void *ctx, int status, const char *message,
                              const struct mc_val *reply);

/*
 * Calls method on the member to (its id; this peer's own id works and
 * never touches the network). args is a msgpack map, or NULL for an empty
 * one; it is copied. timeout_ms 0 means PEER_RPC_TIMEOUT_MS. Returns 0 and
 * cb runs exactly once later from the loop, or a negative errno (-EINVAL,
 * -ECANCELED) and cb never runs.
 */
int peer_rpc_call(struct peer *p, const char *to, const char *method,
                  const struct mc_buf *args, uint32_t timeout_ms,
                  peer_rpc_done cb, void *ctx);

/*
 * A handler gets the caller's member id and the request's map (borrowed
 * for the call) and answers with peer_rpc_reply(), at once or later.
 */
typedef void (*peer_rpc_handler)(struct peer *p, struct peer_rpc_req *req,
                                 const char *from, const struct mc_val *args);

/* One handler per method; registering a method again replaces it. */
void peer_rpc_register(struct peer *p, const char *method,
                       peer_rpc_handler handler);

/*
 * Answers req exactly once: status 0 with reply (a msgpack map, or NULL for
 * an empty one), or a negative errno with message. req is freed; if the
 * caller has gone the answer is dropped.
 */
void peer_rpc_reply(struct peer_rpc_req *req, int status, const char *message,
                    const struct mc_buf *reply);

/* Setup and teardown, from daemon.c. stop answers -ECANCELED to every call
 * still waiting and drops requests still being handled. */
int peer_rpc_start(struct peer *p);
void peer_rpc_stop(struct peer *p);

#endif
