/*
 * The relay header that lets a gateway forward a sealed packet it cannot
 * read. Everything in it comes from the network: decoded through exact
 * checks, the inner packet's size checked by its type as the core would, so
 * a gateway never forwards what no end host could accept.
 */
#include "ovl_int.h"

#include <errno.h>
#include <string.h>

static bool inner_size_ok(const uint8_t *in, size_t len)
{
	if (len < 4 || (in[1] | in[2] | in[3]))
		return false;
	switch (in[0]) {
	case OVL_TYPE_INITIATION:
		return len == OVL_INITIATION_LEN;
	case OVL_TYPE_RESPONSE:
		return len == OVL_RESPONSE_LEN;
	case OVL_TYPE_TRANSPORT:
		return len >= OVL_OVERHEAD;
	default:
		return false; /* relays are never nested */
	}
}

int ovl_relay_decode(const uint8_t *pkt, size_t len,
                     struct ovl_relay_header *out)
{
	if (len < OVL_RELAY_LEN || pkt[0] != OVL_TYPE_RELAY || pkt[2] ||
	    pkt[3] || pkt[1] > OVL_RELAY_HOPS)
		return -EBADMSG;
	const uint8_t *dst = pkt + 4, *src = dst + OVL_PEER_ID_BYTES;

	if (memcmp(dst, src, OVL_PEER_ID_BYTES) == 0)
		return -EBADMSG;
	if (!inner_size_ok(pkt + OVL_RELAY_LEN, len - OVL_RELAY_LEN))
		return -EBADMSG;
	out->hops = pkt[1];
	memcpy(out->dst, dst, OVL_PEER_ID_BYTES);
	memcpy(out->src, src, OVL_PEER_ID_BYTES);
	return OVL_RELAY_LEN;
}

void ovl_relay_encode(uint8_t out[OVL_RELAY_LEN],
                      const struct ovl_relay_header *h)
{
	out[0] = OVL_TYPE_RELAY;
	out[1] = h->hops;
	out[2] = out[3] = 0;
	memcpy(out + 4, h->dst, OVL_PEER_ID_BYTES);
	memcpy(out + 4 + OVL_PEER_ID_BYTES, h->src, OVL_PEER_ID_BYTES);
}
