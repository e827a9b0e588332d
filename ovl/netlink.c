/*
 * The kernel's view of the overlay, set through rtnetlink with libnl-route:
 * the TUN's MTU, state and address, and the routes of the cloud's CIDRs
 * into it. The only file that includes libnl's headers.
 */
#include "log.h"
#include "ovl_int.h"

#include <errno.h>
#include <linux/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

static struct nl_sock *nl_open(void)
{
	struct nl_sock *sk = nl_socket_alloc();

	if (!sk)
		return NULL;
	if (nl_connect(sk, NETLINK_ROUTE) < 0) {
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* libnl's error codes are its own; we report one errno-style code. */
static int nl_errno(int err)
{
	return err == -NLE_EXIST ? -EEXIST : -EIO;
}

int ovl_nl_link_up(const char *ifname, unsigned mtu, const char *cidr)
{
	struct rtnl_link *link = NULL, *change = NULL;
	struct rtnl_addr *addr = NULL;
	struct nl_addr *local = NULL;
	struct nl_sock *sk = nl_open();
	int rc;

	if (!sk)
		return -EIO;
	rc = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (rc < 0)
		goto out;
	change = rtnl_link_alloc();
	rtnl_link_set_mtu(change, mtu);
	rtnl_link_set_flags(change, IFF_UP);
	rc = rtnl_link_change(sk, link, change, 0);
	if (rc < 0 || !cidr)
		goto out;
	rc = nl_addr_parse(cidr, AF_UNSPEC, &local);
	if (rc < 0)
		goto out;
	addr = rtnl_addr_alloc();
	rtnl_addr_set_ifindex(addr, rtnl_link_get_ifindex(link));
	rtnl_addr_set_local(addr, local);
	rc = rtnl_addr_add(sk, addr, 0);
	if (rc == -NLE_EXIST)
		rc = 0;
out:
	if (rc < 0)
		mc_warn("ovl", "netlink: %s: %s", ifname, nl_geterror(rc));
	if (addr)
		rtnl_addr_put(addr);
	if (local)
		nl_addr_put(local);
	if (change)
		rtnl_link_put(change);
	if (link)
		rtnl_link_put(link);
	nl_socket_free(sk);
	return rc < 0 ? nl_errno(rc) : 0;
}

int ovl_nl_route(const char *ifname, const char *cidr, bool add)
{
	struct rtnl_link *link = NULL;
	struct rtnl_route *route = NULL;
	struct nl_addr *dst = NULL;
	struct nl_sock *sk = nl_open();
	int rc;

	if (!sk)
		return -EIO;
	rc = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (rc < 0)
		goto out;
	rc = nl_addr_parse(cidr, AF_UNSPEC, &dst);
	if (rc < 0)
		goto out;
	route = rtnl_route_alloc();
	rtnl_route_set_family(route, (uint8_t)nl_addr_get_family(dst));
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_scope(route, RT_SCOPE_LINK);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();

	rtnl_route_nh_set_ifindex(nh, rtnl_link_get_ifindex(link));
	rtnl_route_add_nexthop(route, nh);
	if (add)
		rc = rtnl_route_add(sk, route, NLM_F_REPLACE);
	else
		rc = rtnl_route_delete(sk, route, 0);
out:
	if (rc < 0)
		mc_warn("ovl", "netlink: route %s via %s: %s", cidr, ifname,
		        nl_geterror(rc));
	if (route)
		rtnl_route_put(route);
	if (dst)
		nl_addr_put(dst);
	if (link)
		rtnl_link_put(link);
	nl_socket_free(sk);
	return rc < 0 ? nl_errno(rc) : 0;
}
