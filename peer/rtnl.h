/*
 * What the files of peer/ that speak rtnetlink through libnl-route
 * (hostnet_link.c, overlay_link.c) share: a connected socket and one
 * mapping of libnl's error codes to errno values. Only those files include
 * this header; it names libnl's socket without including libnl.
 */
#ifndef PEER_RTNL_H
#define PEER_RTNL_H

struct nl_sock;

/* A socket connected to NETLINK_ROUTE (the caller frees it with
 * nl_socket_free), or NULL. */
struct nl_sock *peer_rtnl_open(void);

/* libnl's error code (of either sign) as a negative errno-style code;
 * 0 stays 0 and codes without a close errno become -EIO. */
int peer_rtnl_errno(int nlerr);

#endif
