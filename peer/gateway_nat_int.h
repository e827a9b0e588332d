/* Internals of gateway NAT (peer/gateway_nat*.c); no other file. */
#ifndef PEER_GATEWAY_NAT_INT_H
#define PEER_GATEWAY_NAT_INT_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- addresses (gateway_nat_compile.c); all in host byte order ---- */

/* Writes ip in dotted form into out. */
void peer_gateway_ip_format(uint32_t ip, char out[INET_ADDRSTRLEN]);
/* Reads a dotted IPv4 address; false when text is not one. */
bool peer_gateway_ip_parse(const char *text, uint32_t *out);
/* The netmask of a prefix length (0..32). */
uint32_t peer_gateway_prefix_mask(unsigned prefix);
/* Whether ip lies in net/prefix. */
bool peer_gateway_in_net(uint32_t ip, uint32_t net, unsigned prefix);
/* Whether s may name an interface in the ruleset (quoted, so only
 * letters, digits and "._-@:", shorter than IF_NAMESIZE). */
bool peer_gateway_ifname_ok(const char *s);

#endif
