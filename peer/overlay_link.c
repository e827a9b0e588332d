/*
 * The overlay's policy routing through rtnetlink (libnl-route-3): the rule
 * that sends what the instances of this host's slice route off-host into
 * the overlay's table, and that table's default route into the TUN. The
 * only file of the overlay that includes libnl's headers.
 */
#include "overlay_int.h"
#include "rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <stdio.h>

/* The rule "from SLICE/24 iif BRIDGE lookup OVERLAY_TABLE". */
static struct rtnl_rule *slice_rule(uint32_t slice, const char *bridge)
{
	char text[32];
	struct nl_addr *src = NULL;
	snprintf(text, sizeof(text), "%u.%u.%u.%u/24", slice >> 24,
	         (slice >> 16) & 255, (slice >> 8) & 255, slice & 255);
	if (nl_addr_parse(text, AF_INET, &src) < 0)
		return NULL;
	struct rtnl_rule *rule = rtnl_rule_alloc();
	rtnl_rule_set_family(rule, AF_INET);
	rtnl_rule_set_prio(rule, OVERLAY_RULE_PRIO);
	rtnl_rule_set_src(rule, src);
	rtnl_rule_set_iif(rule, bridge);
	rtnl_rule_set_table(rule, OVERLAY_TABLE);
	rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
	nl_addr_put(src);
	return rule;
}

int overlay_link_rule(uint32_t slice, const char *bridge, bool add)
{
	struct nl_sock *sk = peer_rtnl_open();
	if (!sk)
		return -EIO;
	struct rtnl_rule *rule = slice_rule(slice, bridge);
	int r = -EINVAL;
	if (rule) {
		r = add ? rtnl_rule_add(sk, rule, NLM_F_CREATE | NLM_F_EXCL)
		        : rtnl_rule_delete(sk, rule, 0);
		r = peer_rtnl_errno(r);
		if ((add && r == -EEXIST) || (!add && r == -ENODEV))
			r = 0;
		rtnl_rule_put(rule);
	}
	nl_socket_free(sk);
	return r;
}

int overlay_link_default(const char *ifname)
{
	struct nl_sock *sk = peer_rtnl_open();
	struct rtnl_link *link = NULL;
	struct nl_addr *dst = NULL;
	int r;
	if (!sk)
		return -EIO;
	r = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (r < 0) {
		nl_socket_free(sk);
		return peer_rtnl_errno(r);
	}
	r = nl_addr_parse("0.0.0.0/0", AF_INET, &dst);
	if (r < 0)
		goto out;
	struct rtnl_route *route = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	rtnl_route_set_family(route, AF_INET);
	rtnl_route_set_table(route, OVERLAY_TABLE);
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_scope(route, RT_SCOPE_LINK);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	rtnl_route_nh_set_ifindex(nh, rtnl_link_get_ifindex(link));
	rtnl_route_add_nexthop(route, nh); /* the route owns nh now */
	r = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_route_put(route);
	nl_addr_put(dst);
out:
	rtnl_link_put(link);
	nl_socket_free(sk);
	return peer_rtnl_errno(r);
}
