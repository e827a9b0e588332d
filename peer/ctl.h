/*
 * The control socket: a unix socket in the data dir (mode 0600) through
 * which the CLI asks the running peer things. Each message is a frame: a
 * 4-byte big-endian length, then one msgpack map. A request has "cmd";
 * a reply has "ok" (bool) and either the answer's fields or "error".
 */
#ifndef PEER_CTL_H
#define PEER_CTL_H

#include "buf.h"
#include "wire.h"

#include <uv.h>

#define PEER_CTL_SOCKET    "ctl.sock"
#define PEER_CTL_MAX_FRAME (16u << 20)

/* Handles one request; writes one complete reply map into reply. */
typedef void (*peer_ctl_handler)(void *arg, const struct mc_val *request,
                                 struct mc_buf *reply);

struct peer_ctl;

/* Listens on path; NULL with err filled when it cannot. */
struct peer_ctl *peer_ctl_start(uv_loop_t *loop, const char *path,
                                peer_ctl_handler handler, void *arg, char *err,
                                size_t err_size);
/* Closes the listener and every client; memory is freed from the loop. */
void peer_ctl_stop(struct peer_ctl *ctl);

/*
 * Client side (blocking, for the CLI): sends request (a packed map) to the
 * peer running on data dir dir and waits up to timeout_ms for the reply.
 * Returns 0 and *reply (caller frees), -ECONNREFUSED/-ENOENT when no peer
 * runs there, or another negative errno; err says why.
 */
int peer_ctl_call(const char *dir, const struct mc_buf *request, int timeout_ms,
                  struct mc_doc **reply, char *err, size_t err_size);

/* Reply helpers for handlers. */
void peer_ctl_reply_error(struct mc_buf *reply, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
