/*
 * The anti-spoofing guard: what an instance sends into the bridge must
 * carry its own MAC and address, or security groups, which judge a packet
 * by its source address, would take a guest's word for who it is. The
 * shape, for each local instance X at address I with MAC M, whose tap is
 * named from I (peer_hostnet_tap_name):
 *
 *   table bridge mallee_guard {
 *     chain prerouting {            # every frame a port brings in
 *       iifname vmap { "mlvI" : jump g_mlvI, ... }
 *       iifname "mlv*" drop          # a tap of no instance we know
 *     }
 *     chain g_mlvI {
 *       ether saddr != M drop
 *       arp saddr ether M arp saddr ip { I, 0.0.0.0 } accept
 *       ip saddr I accept
 *       ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept   # DHCP
 *       drop                         # anything else (IPv6 among it)
 *     }
 *   }
 *
 * The hook runs before br_netfilter hands frames to the inet tables, so
 * the security groups see only addresses the guard let through. A tap's
 * chain accepts rather than returns (a return would fall to the drop for
 * unknown taps); an accept ends only this table's say. Ports
 * that are no instance tap (the host's own, a test's veth) are left alone.
 */
#include "secgroups.h"

#include "hostnet.h"
#include "mem.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "02:xx:xx:xx:xx:xx" in lower-case hex, as hostnet hands them out. */
static bool mac_ok(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		char c = s[i];
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		if (i % 3 == 2 ? c != ':' : !hex)
			return false;
	}
	return true;
}

struct guarded {
	char tap[16];
	char ip[16];
	const char *mac;
};

void peer_sg_guard(const struct peer_sg_input *in, struct mc_buf *out,
                   unsigned *guarded)
{
	struct guarded *g =
	    xcalloc(in->n_instances ? in->n_instances : 1, sizeof(*g));
	size_t n = 0;
	for (size_t i = 0; i < in->n_instances; i++) {
		const struct peer_sg_instance *x = &in->instances[i];
		struct in_addr a;
		if (!x->local || !mac_ok(x->mac) ||
		    inet_pton(AF_INET, x->ip, &a) != 1 ||
		    peer_hostnet_tap_name(x->ip, g[n].tap) != 0)
			continue;
		/* One chain per tap: a stale record sharing it loses. */
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = strcmp(g[k].tap, g[n].tap) == 0;
		if (dup)
			continue;
		inet_ntop(AF_INET, &a, g[n].ip, sizeof(g[n].ip));
		g[n++].mac = x->mac;
	}

	mc_buf_printf(out, "table bridge " PEER_SG_GUARD_TABLE "\n"
	                   "delete table bridge " PEER_SG_GUARD_TABLE "\n"
	                   "table bridge " PEER_SG_GUARD_TABLE " {\n"
	                   "\tchain prerouting {\n"
	                   "\t\ttype filter hook prerouting priority -300; "
	                   "policy accept;\n");
	if (n) {
		mc_buf_printf(out, "\t\tiifname vmap { ");
		for (size_t i = 0; i < n; i++)
			mc_buf_printf(out, "%s\"%s\" : jump g_%s",
			              i ? ", " : "", g[i].tap, g[i].tap);
		mc_buf_printf(out, " }\n");
	}
	mc_buf_printf(out, "\t\tiifname \"" PEER_TAP_PREFIX "*\" counter drop\n"
	                   "\t}\n");
	for (size_t i = 0; i < n; i++)
		mc_buf_printf(
		    out,
		    "\tchain g_%s {\n"
		    "\t\tether saddr != %s counter drop\n"
		    "\t\tarp saddr ether %s arp saddr ip { %s, 0.0.0.0 } "
		    "accept\n"
		    "\t\tip saddr %s accept\n"
		    "\t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 "
		    "accept\n"
		    "\t\tcounter drop\n"
		    "\t}\n",
		    g[i].tap, g[i].mac, g[i].mac, g[i].ip, g[i].ip);
	mc_buf_printf(out, "}\n");
	free(g);
	if (guarded)
		*guarded = (unsigned)n;
}
