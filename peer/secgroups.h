/*
 * Security groups on this host: EC2's rules turned into one nftables
 * ruleset (table inet mallee, and a bridge mallee table when bridged
 * traffic bypasses the inet hooks), rebuilt whenever an instance record or
 * a rule record changes and swapped in atomically through libnftables.
 *
 * The compiler is pure (records in, nftables text out) so that it can be
 * tested without a kernel; the applier watches the store and drives it.
 * Ingress is enforced where the receiving instance runs, egress where the
 * sending one runs; both are stateful (conntrack), as in EC2.
 */
#ifndef PEER_SECGROUPS_H
#define PEER_SECGROUPS_H

#include "buf.h"
#include "instance.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer;

#define PEER_SG_KIND_RULE   "security-group-rule" /* account:sg-X:sgr-Y */
#define PEER_SG_TABLE       "mallee"
#define PEER_SG_GUARD_TABLE "mallee_guard"

/* ---- the compiler ---- */

enum peer_sg_peer {
	PEER_SG_CIDR,  /* target is an IPv4 CIDR */
	PEER_SG_GROUP, /* target is a group id, owned by user */
	PEER_SG_OTHER, /* IPv6 or a prefix list: not enforced (IPv4 cloud) */
};

/* An instance, as far as security groups care. */
struct peer_sg_instance {
	char id[MC_INSTANCE_ID_LEN + 1];
	char account[13];
	char ip[16];
	char mac[18]; /* its NIC's, "" when unknown (then left unguarded) */
	bool local;   /* runs on this host */
	char groups[MC_INSTANCE_GROUPS][32];
	size_t n_groups;
};

/* One rule record. */
struct peer_sg_rule {
	char account[13]; /* the group's owner */
	char group[32];   /* sg-... the rule belongs to */
	bool egress;
	char proto[8]; /* "tcp", "udp", "icmp", "icmpv6", "-1" or a number */
	int from, to;  /* ports, or ICMP type and code; -1: any */
	enum peer_sg_peer peer;
	char target[64]; /* CIDR or sg-... */
	char user[13];   /* the target group's owner */
};

struct peer_sg_input {
	const struct peer_sg_instance
	    *instances; /* every live one, cloud-wide */
	size_t n_instances;
	const struct peer_sg_rule *rules; /* every rule, cloud-wide */
	size_t n_rules;
	/*
	 * True when bridged frames do not pass the inet hooks (no
	 * br_netfilter): traffic between two instances of this host is then
	 * filtered in a bridge table, without conntrack (see
	 * secgroups_compile.c).
	 */
	bool bridge_fallback;
};

struct peer_sg_counts {
	unsigned instances; /* local ones with a chain pair */
	unsigned rules;     /* (instance, group rule) pairs emitted */
	unsigned skipped;   /* pairs that match nothing enforceable */
	unsigned guarded;   /* local instances whose tap is guarded */
};

/*
 * Appends the whole ruleset (a replacement of this module's tables, to be
 * run as one transaction) for in's local instances. Every string taken from
 * a record is checked and re-printed before it reaches the text; what does
 * not pass is skipped and counted. counts may be NULL.
 */
void peer_sg_compile(const struct peer_sg_input *in, struct mc_buf *out,
                     struct peer_sg_counts *counts);

/*
 * Appends the anti-spoofing guard of in's local instances' taps
 * (secgroups_guard.c; peer_sg_compile includes it); guarded (may be NULL)
 * gets how many taps it covers.
 */
void peer_sg_guard(const struct peer_sg_input *in, struct mc_buf *out,
                   unsigned *guarded);

/* Decodes a rule record (its id "account:sg-X:sgr-Y" and body); 0 or
 * -EINVAL. */
int peer_sg_rule_decode(const char *record_id, const void *body, size_t len,
                        struct peer_sg_rule *out);

/* ---- the applier (secgroups.c) ---- */

struct peer_sg_stats {
	uint64_t applies;                   /* rulesets the kernel took */
	uint64_t failures;                  /* rulesets it refused */
	unsigned instances, rules, skipped; /* of the last one applied */
};

/*
 * Starts watching: while host networking runs (p->hostnet), the ruleset is
 * rebuilt ~200 ms after the records settle and applied when it changed.
 * 0 or a negative errno (no nftables context).
 */
int peer_secgroups_start(struct peer *p);
/* Stops watching; the ruleset stays in the kernel for running guests. */
void peer_secgroups_stop(struct peer *p);
/* Counters so far (zeros when not started). */
void peer_secgroups_stats(const struct peer *p, struct peer_sg_stats *out);

/* ---- nftables (secgroups_nft.c, the one file with nftables.h) ---- */

struct peer_sg_nft;
struct peer_sg_nft *peer_sg_nft_new(void);
void peer_sg_nft_free(struct peer_sg_nft *n);
/* Runs text as one transaction; 0, or -EINVAL with nft's message in err. */
int peer_sg_nft_run(struct peer_sg_nft *n, const char *text, char *err,
                    size_t err_size);

#endif
