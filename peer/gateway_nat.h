/*
 * NAT on gateway peers (--gateway): the zone's instances reach outside
 * through this peer (their traffic masqueraded on the public interface),
 * and the elastic IPs of this peer's public pool (--public-pool) are held
 * on that interface and forwarded to their instances' private addresses.
 *
 * One nftables table, ip mallee-nat, rebuilt from the records and swapped
 * in atomically (through secgroups_nft.c's libnftables context):
 *
 *   prerouting/output  public -> private   (DNAT: the client's source is
 *                                            kept, the instance sees it)
 *   postrouting        private -> public   (SNAT of an associated
 *                                            instance's outbound traffic)
 *                      cloud CIDR -> masquerade, out the public interface
 *
 * The records followed (written by the API edge, apiedge/action_address.c):
 * "public-pool" PEERID {zone, first, last}, which this peer writes at
 * start, and "address" ACCOUNT:eipalloc-... {public_ip, pool_peer,
 * instance_id, private_ip, association_id, ...}, of which those whose
 * pool_peer is this peer are forwarded while their instance's record
 * still holds its address.
 */
#ifndef PEER_GATEWAY_NAT_H
#define PEER_GATEWAY_NAT_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer;

#define PEER_KIND_PUBLIC_POOL "public-pool"
#define PEER_KIND_ADDRESS     "address"
#define PEER_NAT_TABLE        "mallee-nat"
#define PEER_NAT_POOL_MAX     65536 /* addresses in one pool */

/*
 * Parses a public pool, "A.B.C.D-A.B.C.E" (both ends included) or a CIDR
 * "A.B.C.D/N" (its network and broadcast addresses left out from /30 on
 * down to /16), into first..last in host byte order. Refuses reversed
 * ranges, pools of more than PEER_NAT_POOL_MAX addresses, and addresses
 * that are not unicast (0/8, 127/8, 169.254/16, 224/3). 0, or -EINVAL
 * with a one-line reason (naming the flag) in err.
 */
int peer_gateway_pool_parse(const char *text, uint32_t *first, uint32_t *last,
                            char *err, size_t err_size);

/* ---- the compiler (pure: records in, nftables text out) ---- */

/* One elastic IP to forward. */
struct peer_nat_eip {
	uint32_t public_ip;  /* host byte order */
	uint32_t private_ip; /* host byte order */
	char instance_id[20];
};

struct peer_nat_input {
	const char *ifname; /* the public interface ("": no NAT at all) */
	uint32_t cloud_net; /* the cloud's CIDR, host byte order */
	uint8_t cloud_prefix;
	const struct peer_nat_eip *eips; /* sorted by public_ip, unique */
	size_t n_eips;
	/* The interface's own address, for hairpinned traffic of instances
	 * without an elastic IP; 0 when it has none (they then get none). */
	uint32_t public_addr;
};

/*
 * Appends the replacement of table ip mallee-nat (one transaction). With
 * no interface the text only removes the table. The interface name is
 * checked; a name nftables could misread yields -EINVAL and no text.
 */
int peer_gateway_nat_compile(const struct peer_nat_input *in,
                             struct mc_buf *out);

/* ---- the applier ---- */

struct peer_nat_stats {
	uint64_t applies;  /* rulesets the kernel took */
	uint64_t failures; /* rulesets or address changes refused */
	unsigned eips;     /* elastic IPs forwarded now */
	unsigned skipped;  /* address records of this pool not forwarded */
};

/*
 * On a --gateway peer: checks the flags (a pool outside the cloud's CIDR,
 * a public interface that does not exist or cannot be found), writes or
 * deletes this peer's public-pool record, turns on IPv4 forwarding and
 * starts following the records (re-applied ~200 ms after they settle).
 * Does nothing on other peers. 0, or a negative errno with err filled.
 */
int peer_gateway_nat_start(struct peer *p, char *err, size_t err_size);
/* Stops following; the table and the addresses stay (traffic flows on). */
void peer_gateway_nat_stop(struct peer *p);
/* Counters so far (zeros when not started). */
void peer_gateway_nat_stats(const struct peer *p, struct peer_nat_stats *out);
/* True while the applier runs (status maps count the entry below). */
bool peer_gateway_nat_running(const struct peer *p);
/* Appends "gateway" and a map {interface, pool, eips, skipped, applies,
 * failures} to a status map; nothing when not running. */
void peer_gateway_nat_pack_status(const struct peer *p, struct mc_buf *b);

#endif
