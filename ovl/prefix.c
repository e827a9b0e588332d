/*
 * Overlay prefixes and the peer each is routed to: the datapath's
 * "cryptokey routing" (which peer a packet goes to by its destination, and
 * which sources a peer may send from). A flat array searched for the
 * longest match: a host has few peers; a trie can replace it behind the
 * same functions when clouds grow.
 */
#include "mem.h"
#include "ovl_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ovl_prefix_parse(const char *cidr, struct ovl_prefix *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(cidr, '/');
	size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);

	memset(out, 0, sizeof(*out));
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, cidr, n);
	host[n] = 0;
	if (inet_pton(AF_INET, host, out->addr) == 1)
		out->family = 4;
	else if (inet_pton(AF_INET6, host, out->addr) == 1)
		out->family = 6;
	else
		return -EINVAL;
	unsigned max = out->family == 4 ? 32 : 128;
	unsigned long bits = max;

	if (slash) {
		char *end;

		if (!slash[1] || slash[1] == '-')
			return -EINVAL;
		bits = strtoul(slash + 1, &end, 10);
		if (*end || bits > max)
			return -EINVAL;
	}
	out->bits = (uint8_t)bits;
	/* Clear the host bits so equal prefixes compare equal. */
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits > i * 8 ? bits - i * 8 : 0;

		if (keep < 8)
			out->addr[i] &= (uint8_t)(0xff00 >> keep);
	}
	return 0;
}

static bool contains(const struct ovl_prefix *p, const uint8_t *addr)
{
	unsigned full = p->bits / 8, rest = p->bits % 8;

	if (memcmp(p->addr, addr, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff00 >> rest);

	return (addr[full] & mask) == p->addr[full];
}

static bool same(const struct ovl_prefix *a, const struct ovl_prefix *b)
{
	return a->family == b->family && a->bits == b->bits &&
	       memcmp(a->addr, b->addr, 16) == 0;
}

void ovl_prefix_add(struct ovl_prefix_table *tab, const struct ovl_prefix *p)
{
	for (size_t i = 0; i < tab->n; i++) {
		if (same(&tab->v[i], p)) {
			tab->v[i].peer = p->peer;
			return;
		}
	}
	if (tab->n == tab->cap) {
		tab->cap = tab->cap ? tab->cap * 2 : 8;
		tab->v = xrealloc(tab->v, tab->cap * sizeof(*tab->v));
	}
	tab->v[tab->n++] = *p;
}

bool ovl_prefix_remove(struct ovl_prefix_table *tab, const struct ovl_prefix *p)
{
	for (size_t i = 0; i < tab->n; i++) {
		if (same(&tab->v[i], p)) {
			tab->v[i] = tab->v[--tab->n];
			return true;
		}
	}
	return false;
}

void ovl_prefix_remove_peer(struct ovl_prefix_table *tab, void *peer)
{
	for (size_t i = 0; i < tab->n;) {
		if (tab->v[i].peer == peer)
			tab->v[i] = tab->v[--tab->n];
		else
			i++;
	}
}

void *ovl_prefix_lookup(const struct ovl_prefix_table *tab, const uint8_t *ip,
                        size_t len, bool source)
{
	const struct ovl_prefix *best = NULL;
	const uint8_t *addr;
	uint8_t family;

	if (len >= 20 && ip[0] >> 4 == 4) {
		family = 4;
		addr = ip + (source ? 12 : 16);
	} else if (len >= 40 && ip[0] >> 4 == 6) {
		family = 6;
		addr = ip + (source ? 8 : 24);
	} else {
		return NULL;
	}
	for (size_t i = 0; i < tab->n; i++) {
		const struct ovl_prefix *p = &tab->v[i];

		if (p->family == family && (!best || p->bits > best->bits) &&
		    contains(p, addr))
			best = p;
	}
	return best ? best->peer : NULL;
}

void ovl_prefix_free(struct ovl_prefix_table *tab)
{
	free(tab->v);
	memset(tab, 0, sizeof(*tab));
}
