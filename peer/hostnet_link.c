/* The bridge and its addresses through rtnetlink (libnl-route-3). */
#include "hostnet_int.h"
#include "rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <stdio.h>
#include <string.h>

int peer_link_bridge_ensure(const char *name, int *ifindex, char *err,
                            size_t err_size)
{
	struct rtnl_link *link = NULL, *change = NULL;
	int r;
	struct nl_sock *sk = peer_rtnl_open();
	if (!sk) {
		snprintf(err, err_size, "cannot open a netlink socket");
		return -EIO;
	}
	r = rtnl_link_get_kernel(sk, 0, name, &link);
	if (r < 0) {
		struct rtnl_link *br = rtnl_link_bridge_alloc();
		if (!br) {
			r = -ENOMEM;
			snprintf(err, err_size, "out of memory");
			goto out;
		}
		rtnl_link_set_name(br, name);
		r = rtnl_link_add(sk, br, NLM_F_CREATE | NLM_F_EXCL);
		rtnl_link_put(br);
		if (r < 0 && r != -NLE_EXIST) {
			snprintf(err, err_size, "cannot create bridge %s: %s",
			         name, nl_geterror(r));
			r = peer_rtnl_errno(r);
			goto out;
		}
		r = rtnl_link_get_kernel(sk, 0, name, &link);
		if (r < 0) {
			snprintf(err, err_size, "bridge %s vanished: %s", name,
			         nl_geterror(r));
			r = peer_rtnl_errno(r);
			goto out;
		}
	} else if (!rtnl_link_is_bridge(link)) {
		snprintf(err, err_size, "link %s exists and is no bridge",
		         name);
		r = -EEXIST;
		goto out;
	}
	if (!(rtnl_link_get_flags(link) & IFF_UP)) {
		change = rtnl_link_alloc();
		rtnl_link_set_flags(change, IFF_UP);
		r = rtnl_link_change(sk, link, change, 0);
		if (r < 0) {
			snprintf(err, err_size, "cannot set %s up: %s", name,
			         nl_geterror(r));
			r = peer_rtnl_errno(r);
			goto out;
		}
	}
	*ifindex = rtnl_link_get_ifindex(link);
	r = 0;
out:
	if (change)
		rtnl_link_put(change);
	if (link)
		rtnl_link_put(link);
	nl_socket_free(sk);
	return r;
}

/* An rtnl_addr for addr/prefix on ifindex, with its broadcast address. */
static struct rtnl_addr *make_addr(int ifindex, uint32_t addr, int prefix)
{
	struct rtnl_addr *a = rtnl_addr_alloc();
	if (!a)
		return NULL;
	struct in_addr in = {.s_addr = htonl(addr)};
	struct nl_addr *local = nl_addr_build(AF_INET, &in, sizeof(in));
	uint32_t mask = prefix ? 0xffffffffu << (32 - prefix) : 0;
	struct in_addr bin = {.s_addr = htonl(addr | ~mask)};
	struct nl_addr *bcast = nl_addr_build(AF_INET, &bin, sizeof(bin));
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_family(a, AF_INET);
	if (local) {
		nl_addr_set_prefixlen(local, prefix);
		rtnl_addr_set_local(a, local);
		nl_addr_put(local);
	}
	if (bcast && prefix < 31)
		rtnl_addr_set_broadcast(a, bcast);
	if (bcast)
		nl_addr_put(bcast);
	rtnl_addr_set_prefixlen(a, prefix);
	return a;
}

static int addr_op(int ifindex, uint32_t addr, int prefix, bool add)
{
	struct nl_sock *sk = peer_rtnl_open();
	if (!sk)
		return -EIO;
	struct rtnl_addr *a = make_addr(ifindex, addr, prefix);
	int r = -ENOMEM;
	if (a) {
		r = add ? rtnl_addr_add(sk, a, NLM_F_CREATE | NLM_F_EXCL)
		        : rtnl_addr_delete(sk, a, 0);
		rtnl_addr_put(a);
		if (add && r == -NLE_EXIST)
			r = 0;
		if (!add && (r == -NLE_NOADDR || r == -NLE_OBJ_NOTFOUND ||
		             r == -NLE_NODEV))
			r = 0;
		r = peer_rtnl_errno(r);
	}
	nl_socket_free(sk);
	return r;
}

int peer_link_addr_add(int ifindex, uint32_t addr, int prefix)
{
	return addr_op(ifindex, addr, prefix, true);
}

int peer_link_addr_del(int ifindex, uint32_t addr, int prefix)
{
	return addr_op(ifindex, addr, prefix, false);
}
