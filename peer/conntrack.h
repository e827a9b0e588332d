/*
 * Forgetting the kernel's connection tracking state of one address.
 *
 * Security groups are stateful: a packet of a tracked connection is
 * accepted before any group rule is read. When an address passes from one
 * instance to the next (a terminated instance's lease is reused), the
 * entries of the old instance's flows would let the new one's peers in
 * through rules it never had: an ICMP echo from the same source with the
 * same identifier, a UDP flow on the same ports. The host forgets them
 * whenever a lease changes hands.
 */
#ifndef PEER_CONNTRACK_H
#define PEER_CONNTRACK_H

#include <stdint.h>

/*
 * Deletes every IPv4 conntrack entry of this network namespace with ip
 * (host byte order) as source or destination of either direction. Returns
 * how many were deleted (entries that vanished meanwhile are not counted),
 * or a negative errno-style code when the table cannot be read.
 */
int peer_conntrack_forget(uint32_t ip);

#endif
