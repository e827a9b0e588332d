/*
 * Host networking for instances: this host's bridge (made through libnl),
 * its slice of the cloud's private CIDR (claimed through a record so that
 * addresses are unique cloud-wide), a lease (address + MAC) per instance,
 * DHCP on the bridge, and 169.254.169.254 on the bridge for the metadata
 * service (which peer/imds glue serves with apiedge's api_imds).
 */
#ifndef PEER_HOSTNET_H
#define PEER_HOSTNET_H

#include <stdbool.h>
#include <stddef.h>

struct peer;
struct peer_hostnet;
struct mc_val;
struct mc_buf;

/*
 * Called when an instance's guest has its address: the DHCP server sent it
 * an ACK (or it spoke to the metadata service from that address).
 */
typedef void (*peer_hostnet_addr_cb)(struct peer *p, const char *instance_id,
                                     const char *ip);

/*
 * Makes or adopts the bridge (cfg.bridge), claims a slice, puts the
 * slice's first address and 169.254.169.254/32 on the bridge, starts DHCP
 * and the metadata service. 0, or a negative errno with err filled.
 */
int peer_hostnet_start(struct peer *p, peer_hostnet_addr_cb on_addr, char *err,
                       size_t err_size);
/* Stops DHCP and the metadata service; the bridge stays (guests use it). */
void peer_hostnet_stop(struct peer *p);

/* Appends "hostnet" and a map {bridge, slice, ready} to a status map;
 * ready: the slice is confirmed, so new instances get addresses. */
struct mc_buf;
void peer_hostnet_pack_status(struct peer *p, struct mc_buf *b);

/* The bridge's name, for the domains' NICs ("" when not started). */
const char *peer_hostnet_bridge(const struct peer *p);

/*
 * The name of the bridge port (tap) of the instance at ip (dotted quad):
 * PEER_TAP_PREFIX and the address in hex, so the ruleset that guards the
 * port against spoofing (secgroups_compile.c) names it from the instance
 * record alone. 0, or -EINVAL when ip is no IPv4 address.
 */
#define PEER_TAP_PREFIX "mlv"
int peer_hostnet_tap_name(const char *ip, char out[16]);

/*
 * A lease for instance_id: its address and MAC (the same again when it
 * already has one). Leases live in the store, so a restarted peer keeps
 * them. 0; -ENOSPC when the slice is full; -ENETDOWN when host
 * networking is not running.
 */
int peer_hostnet_lease(struct peer *p, const char *instance_id, char ip[16],
                       char mac[18]);
/* Gives the address back (terminate). */
void peer_hostnet_release(struct peer *p, const char *instance_id);

/* The MTU DHCP offers (option 26; 1500 until the overlay lowers it). */
void peer_hostnet_set_mtu(struct peer *p, unsigned mtu);

/*
 * Control socket "hostnet-lease" {id, release?}: a diagnostic (and what
 * tests/cluster/test_hostnet.py uses) that starts host networking when it
 * is not running and leases (or releases) an address for an instance id
 * without an instance. Replies {ok, ip, mac, bridge, slice, confirmed}.
 */
void peer_cmd_hostnet_lease(struct peer *p, const struct mc_val *req,
                            struct mc_buf *reply);

#endif
