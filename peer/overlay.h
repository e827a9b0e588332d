/*
 * The peer's overlay: runs ovl's datapath on hosts with instances and on
 * gateways, and keeps it in step with the cloud. Peers are the alive gossip
 * members (their X25519 key, their gossip address's IP at the tunnel
 * port); prefixes are the slice records (each /24 to its host's key) and,
 * on hosts, 0.0.0.0/0 to this zone's first alive gateway; the path to a
 * member not reached directly goes through gateways.
 *
 * Kernel state, in the peer's network namespace: the TUN "mlt0"
 * (OVERLAY_IFNAME) with the overlay MTU, the cloud's CIDR routed into it,
 * IPv4 forwarding on, and for the instances of this host's slice the rule
 * "from SLICE iif BRIDGE lookup 7701" whose table holds a default route
 * into the TUN (their traffic leaves through the zone's gateway).
 */
#ifndef PEER_OVERLAY_H
#define PEER_OVERLAY_H

struct peer;
struct mc_buf;

#define OVERLAY_IFNAME "mlt0"

/*
 * Starts the datapath when --overlay is on and it is not running yet (a
 * second call is a no-op; hostnet calls it once the bridge is up, the
 * daemon at start for gateways). 0; -EPERM-like errors are logged and
 * returned, and the peer runs on without an overlay.
 */
int peer_overlay_start(struct peer *p);
/* Stops the datapath (the TUN and its routes go with it) and the rule. */
void peer_overlay_stop(struct peer *p);

/* The TUN's name while the overlay runs, else NULL (gateway NAT). */
const char *peer_overlay_ifname(struct peer *p);

/* Appends "overlay" and a map {running, ifname, mtu, port, peers,
 * default_gateway, counters} to a status map. */
void peer_overlay_pack_status(struct peer *p, struct mc_buf *b);

#endif
