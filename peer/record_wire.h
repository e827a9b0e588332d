/* Records on the wire (gossip broadcasts and anti-entropy streams). */
#ifndef PEER_RECORD_WIRE_H
#define PEER_RECORD_WIRE_H

#include "buf.h"
#include "store.h"
#include "wire.h"

/* Appends r as a msgpack map {k, i, b, h, w, d}. */
void peer_record_pack(struct mc_buf *b, const struct peer_record *r);
/*
 * Reads a record out of v, pointing into v's doc (valid while the doc
 * lives); kind and id are copied into the caller's buffers. 0 or -EINVAL
 * for anything malformed: missing fields, bad names, a wrong-sized writer.
 */
struct peer_record_view {
	struct peer_record r;
	char kind[129];
	char id[129];
};
int peer_record_unpack(const struct mc_val *v, struct peer_record_view *out);

#endif
