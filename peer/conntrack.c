/* Forgetting an address's conntrack entries; see peer/conntrack.h. */
#include "conntrack.h"

#include "rtnl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/cache.h>
#include <netlink/netfilter/ct.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/netlink.h>

struct forget {
	struct nl_sock *sk;
	uint32_t ip_be;
	int deleted;
};

static int addr_is(const struct nl_addr *a, uint32_t ip_be)
{
	return a && nl_addr_get_family(a) == AF_INET &&
	       nl_addr_get_len(a) == sizeof(ip_be) &&
	       memcmp(nl_addr_get_binary_addr(a), &ip_be, sizeof(ip_be)) == 0;
}

static void forget_one(struct nl_object *obj, void *arg)
{
	struct forget *f = arg;
	struct nfnl_ct *ct = (struct nfnl_ct *)obj;
	if (nfnl_ct_get_family(ct) != AF_INET)
		return;
	int match = 0;
	for (int repl = 0; repl <= 1 && !match; repl++)
		match = addr_is(nfnl_ct_get_src(ct, repl), f->ip_be) ||
		        addr_is(nfnl_ct_get_dst(ct, repl), f->ip_be);
	/* Deleted by its original tuple; one that expired meanwhile is
	 * gone already, which is what was wanted. */
	if (match && nfnl_ct_del(f->sk, ct, 0) == 0)
		f->deleted++;
}

int peer_conntrack_forget(uint32_t ip)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	int r = nfnl_connect(sk);
	if (r < 0) {
		nl_socket_free(sk);
		return peer_rtnl_errno(r);
	}
	/* The whole table is read: the kernel filters deletions by mark
	 * only, and a lease changes hands once per launch. */
	struct nl_cache *cache = NULL;
	r = nfnl_ct_alloc_cache(sk, &cache);
	if (r < 0) {
		nl_socket_free(sk);
		return peer_rtnl_errno(r);
	}
	struct forget f = {.sk = sk, .ip_be = htonl(ip)};
	nl_cache_foreach(cache, forget_one, &f);
	nl_cache_free(cache);
	nl_socket_free(sk);
	return f.deleted;
}
