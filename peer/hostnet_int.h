/*
 * Internals of host networking (peer/hostnet*.c). hostnet_link.c is its
 * only file that includes libnl's headers; what it shares with the
 * overlay's overlay_link.c is in peer/rtnl.c.
 */
#ifndef PEER_HOSTNET_INT_H
#define PEER_HOSTNET_INT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Makes the bridge name (or adopts the one that exists; a link of that
 * name that is no bridge is refused with -EEXIST) and sets it up.
 * Returns 0 and its *ifindex, or a negative errno with err filled.
 */
int peer_link_bridge_ensure(const char *name, int *ifindex, char *err,
                            size_t err_size);
/* Adds addr/prefix (host byte order) to ifindex; one it already has is
 * fine. 0 or a negative errno. */
int peer_link_addr_add(int ifindex, uint32_t addr, int prefix);
/* Removes addr/prefix from ifindex; one it does not have is fine. */
int peer_link_addr_del(int ifindex, uint32_t addr, int prefix);

#endif
