/*
 * The peer's EC2 API edge (when started with --edge): the apiedge server on
 * the peer's loop, and the cloud interface it reads and writes through,
 * backed by this peer's store and membership.
 */
#ifndef PEER_EDGE_H
#define PEER_EDGE_H

#include <stddef.h>

struct peer;

/* Starts serving on cfg.api_listen; 0, or a negative errno with err. */
int peer_edge_start(struct peer *p, char *err, size_t err_size);
/* Stops it; the memory goes once its handles have closed. */
void peer_edge_stop(struct peer *p);

#endif
