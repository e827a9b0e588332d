/* Internals of the peer's overlay (peer/overlay*.c); no other file. */
#ifndef PEER_OVERLAY_INT_H
#define PEER_OVERLAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define OVERLAY_TABLE      7701u /* the instances' table for outside */
#define OVERLAY_RULE_PRIO  7701u
#define OVERLAY_MAX_RELAYS 7 /* OVL_VIA_MAX */

/* One gossip member as the overlay sees it. */
struct overlay_member {
	char id[17];
	char name[64];
	char zone[64];
	uint8_t pk[32];
	struct sockaddr_storage ep; /* its IP at the tunnel port */
	socklen_t ep_len;
	bool alive;     /* alive or suspect: keep its tunnel */
	bool gateway;   /* NET_ROLE_GATEWAY */
	bool unreached; /* gossip never had a direct ack from it */
	bool pool;      /* a gateway holding a public pool (elastic IPs) */
	/* The plan's output: the gateways its packets may go through, in
	 * order, after the direct path unless unreached. */
	unsigned n_relays;
	unsigned relays[OVERLAY_MAX_RELAYS]; /* indexes into the member set */
};

/*
 * Plans paths for members[0..n) (self excluded) as seen from a peer in
 * self_zone (self_gateway when it is one): a member is tried directly
 * unless unreached, then through this zone's alive gateways, then the
 * member's zone's, each by id (the datapath fails over in that order).
 * Returns the index
 * of the gateway outside traffic goes to (the first alive gateway of
 * self_zone holding a public pool, else the first by id: replies from an
 * elastic IP's instance must leave through the gateway that DNATs it), or
 * -1 (none, or this peer is a gateway itself).
 */
int overlay_plan(struct overlay_member *m, size_t n, const char *self_zone,
                 bool self_gateway);

/* overlay_link.c: the rule for slice (host order) arriving on bridge. */
int overlay_link_rule(uint32_t slice, const char *bridge, bool add);
/* The overlay table's default route into ifname (replaced if there). */
int overlay_link_default(const char *ifname);

#endif
