/*
 * Gateway NAT's pure part (see gateway_nat.h): the --public-pool parser
 * and the compiler that turns the elastic IPs to forward into the text of
 * table ip mallee-nat, with the address helpers the applier
 * (gateway_nat.c) shares. No store, no loop, no kernel.
 */
#include "gateway_nat.h"
#include "gateway_nat_int.h"

#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

/* ---- addresses ---- */

void peer_gateway_ip_format(uint32_t ip, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = htonl(ip)};
	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

bool peer_gateway_ip_parse(const char *text, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, text, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

uint32_t peer_gateway_prefix_mask(unsigned prefix)
{
	return prefix ? 0xffffffffu << (32 - prefix) : 0;
}

bool peer_gateway_in_net(uint32_t ip, uint32_t net, unsigned prefix)
{
	return (ip & peer_gateway_prefix_mask(prefix)) == net;
}

/* ---- the pool flag ---- */

static bool unicast(uint32_t ip)
{
	return !peer_gateway_in_net(ip, 0, 8) &&
	       !peer_gateway_in_net(ip, 0x7f000000u, 8) &&
	       !peer_gateway_in_net(ip, 0xa9fe0000u, 16) &&
	       !peer_gateway_in_net(ip, 0xe0000000u, 3);
}

int peer_gateway_pool_parse(const char *text, uint32_t *first, uint32_t *last,
                            char *err, size_t err_size)
{
	char a[32], b[32];
	const char *dash = strchr(text, '-');
	const char *slash = strchr(text, '/');
	char sa[INET_ADDRSTRLEN], sb[INET_ADDRSTRLEN];
	if (dash && !slash) {
		size_t n = (size_t)(dash - text);
		if (n >= sizeof(a) || strlen(dash + 1) >= sizeof(b))
			goto bad;
		memcpy(a, text, n);
		a[n] = '\0';
		snprintf(b, sizeof(b), "%s", dash + 1);
		if (!peer_gateway_ip_parse(a, first) ||
		    !peer_gateway_ip_parse(b, last))
			goto bad;
		if (*first > *last) {
			snprintf(err, err_size,
			         "--public-pool: \"%s\" ends before it starts",
			         text);
			return -EINVAL;
		}
	} else if (slash && !dash) {
		struct mc_cidr c;
		if (mc_cidr_parse(&c, text, 0, 32) != 0)
			goto bad;
		if (c.prefix < 16) {
			snprintf(err, err_size,
			         "--public-pool: %s holds more than %u "
			         "addresses",
			         text, PEER_NAT_POOL_MAX);
			return -EINVAL;
		}
		*first = c.network;
		*last = c.network | ~peer_gateway_prefix_mask(c.prefix);
		if (c.prefix <= 30) { /* not the network, not broadcast */
			(*first)++;
			(*last)--;
		}
	} else {
		goto bad;
	}
	if ((uint64_t)*last - *first + 1 > PEER_NAT_POOL_MAX) {
		snprintf(err, err_size,
		         "--public-pool: \"%s\" holds more than %u addresses",
		         text, PEER_NAT_POOL_MAX);
		return -EINVAL;
	}
	if (!unicast(*first) || !unicast(*last) ||
	    (*first < 0x7f000000u && *last >= 0x7f000000u) ||
	    (*first < 0xa9fe0000u && *last > 0xa9fe0000u)) {
		peer_gateway_ip_format(*first, sa);
		peer_gateway_ip_format(*last, sb);
		snprintf(err, err_size,
		         "--public-pool: %s-%s reaches beyond unicast "
		         "addresses (0/8, 127/8, 169.254/16 and 224/3 are "
		         "not for hosts)",
		         sa, sb);
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(err, err_size,
	         "--public-pool: \"%s\" is neither a range like "
	         "198.18.0.100-198.18.0.110 nor a network like 198.18.0.96/28 "
	         "(no host bits set)",
	         text);
	return -EINVAL;
}

/* ---- the compiler ---- */

/* Interface names reach the ruleset quoted: only these characters. */
bool peer_gateway_ifname_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= IF_NAMESIZE)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-@:", s[i]))
			return false;
	return true;
}

int peer_gateway_nat_compile(const struct peer_nat_input *in,
                             struct mc_buf *out)
{
	char pub[INET_ADDRSTRLEN], priv[INET_ADDRSTRLEN], net[INET_ADDRSTRLEN];
	if (in->ifname[0] && !peer_gateway_ifname_ok(in->ifname))
		return -EINVAL;
	/* Creating the table first makes the delete safe when it is absent. */
	mc_buf_printf(out, "add table ip " PEER_NAT_TABLE "\n"
	                   "delete table ip " PEER_NAT_TABLE "\n");
	if (!in->ifname[0])
		return 0;
	mc_buf_printf(out, "table ip " PEER_NAT_TABLE " {\n");
	/* Two maps rather than a rule per address: one lookup each way. */
	const char *dir[2] = {"eip_in", "eip_out"};
	for (int d = 0; d < 2; d++) {
		mc_buf_printf(out,
		              "\tmap %s {\n\t\ttype ipv4_addr : ipv4_addr\n",
		              dir[d]);
		for (size_t i = 0; i < in->n_eips; i++) {
			peer_gateway_ip_format(in->eips[i].public_ip, pub);
			peer_gateway_ip_format(in->eips[i].private_ip, priv);
			mc_buf_printf(out, "%s%s : %s",
			              i ? ", " : "\t\telements = { ",
			              d ? priv : pub, d ? pub : priv);
		}
		mc_buf_printf(out, "%s\t}\n", in->n_eips ? " }\n" : "");
	}
	peer_gateway_ip_format(in->cloud_net, net);
	/*
	 * A lookup that misses ends the rule and the packet goes on: an
	 * address that is no elastic IP is left alone, and traffic of an
	 * instance without one falls through to the masquerade.
	 *
	 * Hairpin: an instance reaching another's (or its own) elastic IP
	 * comes back into the cloud after the DNAT. Its source is rewritten
	 * too (its own elastic IP, else this interface's address), or the
	 * reply would go straight to it from a private address it never
	 * called; the rewritten source is outside the cloud, so the reply
	 * comes back here to be un-NATed.
	 */
	mc_buf_printf(out,
	              "\tchain prerouting {\n"
	              "\t\ttype nat hook prerouting priority dstnat; "
	              "policy accept;\n"
	              "\t\tdnat to ip daddr map @eip_in\n"
	              "\t}\n"
	              "\tchain output {\n"
	              "\t\ttype nat hook output priority -100; "
	              "policy accept;\n"
	              "\t\tdnat to ip daddr map @eip_in\n"
	              "\t}\n"
	              "\tchain postrouting {\n"
	              "\t\ttype nat hook postrouting priority srcnat; "
	              "policy accept;\n"
	              "\t\toifname \"%s\" snat to ip saddr map @eip_out\n"
	              "\t\toifname \"%s\" ip saddr %s/%u counter masquerade\n"
	              "\t\tct status dnat ip saddr %s/%u ip daddr %s/%u "
	              "snat to ip saddr map @eip_out\n",
	              in->ifname, in->ifname, net, in->cloud_prefix, net,
	              in->cloud_prefix, net, in->cloud_prefix);
	if (in->public_addr) {
		peer_gateway_ip_format(in->public_addr, pub);
		mc_buf_printf(
		    out,
		    "\t\tct status dnat ip saddr %s/%u ip daddr %s/%u "
		    "counter snat to %s\n",
		    net, in->cloud_prefix, net, in->cloud_prefix, pub);
	}
	mc_buf_printf(out, "\t}\n}\n");
	return 0;
}
