/*
 * The security-group compiler on fixed inputs: the nftables text it makes
 * (key lines, and one whole small ruleset exactly), what it skips, and the
 * rule record decoder.
 */
#include "check.h"
#include "secgroups.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACCT "111122223333"

static struct peer_sg_instance inst(const char *id, const char *ip, bool local,
                                    const char *g1, const char *g2)
{
	struct peer_sg_instance x;
	memset(&x, 0, sizeof(x));
	snprintf(x.id, sizeof(x.id), "%s", id);
	snprintf(x.account, sizeof(x.account), "%s", ACCT);
	snprintf(x.ip, sizeof(x.ip), "%s", ip);
	x.local = local;
	if (g1)
		snprintf(x.groups[x.n_groups++], 32, "%s", g1);
	if (g2)
		snprintf(x.groups[x.n_groups++], 32, "%s", g2);
	return x;
}

static struct peer_sg_rule rule(const char *group, bool egress,
                                const char *proto, int from, int to,
                                enum peer_sg_peer peer, const char *target)
{
	struct peer_sg_rule r;
	memset(&r, 0, sizeof(r));
	snprintf(r.account, sizeof(r.account), "%s", ACCT);
	snprintf(r.group, sizeof(r.group), "%s", group);
	r.egress = egress;
	snprintf(r.proto, sizeof(r.proto), "%s", proto);
	r.from = from;
	r.to = to;
	r.peer = peer;
	snprintf(r.target, sizeof(r.target), "%s", target);
	snprintf(r.user, sizeof(r.user), "%s", ACCT);
	return r;
}

static char *compile(const struct peer_sg_instance *is, size_t ni,
                     const struct peer_sg_rule *rs, size_t nr, bool bridge,
                     struct peer_sg_counts *c)
{
	struct peer_sg_input in = {is, ni, rs, nr, bridge};
	struct mc_buf b;
	mc_buf_init(&b);
	peer_sg_compile(&in, &b, c);
	char *s = mc_buf_strdup(&b);
	mc_buf_free(&b);
	return s;
}

/* The text between "chain NAME {" and its closing "\t}\n". */
static char *chain(const char *text, const char *name)
{
	char head[64];
	snprintf(head, sizeof(head), "\tchain %s {\n", name);
	const char *s = strstr(text, head);
	if (!s)
		return strdup("");
	const char *e = strstr(s, "\n\t}\n");
	return strndup(s, (size_t)(e - s) + 4);
}

static void test_small_exact(void)
{
	struct peer_sg_instance is[] = {
	    inst("i-0a", "10.1.0.2", true, "sg-web", NULL),
	};
	struct peer_sg_rule rs[] = {
	    rule("sg-web", false, "tcp", 22, 22, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-web", true, "-1", -1, -1, PEER_SG_CIDR, "0.0.0.0/0"),
	};
	struct peer_sg_counts c;
	char *t = compile(is, 1, rs, 2, false, &c);
	const char *want =
	    "table inet mallee\n"
	    "delete table inet mallee\n"
	    "table inet mallee {\n"
	    "\tchain forward {\n"
	    "\t\ttype filter hook forward priority filter; policy accept;\n"
	    "\t\tct state established,related accept\n"
	    "\t\tip saddr vmap { 10.1.0.2 : jump out_0a }\n"
	    "\t\tip daddr vmap { 10.1.0.2 : jump in_0a }\n"
	    "\t}\n"
	    "\tchain out_0a {\n"
	    "\t\t# i-0a 10.1.0.2 sg-web\n"
	    "\t\treturn\n"
	    "\t\tdrop\n"
	    "\t}\n"
	    "\tchain in_0a {\n"
	    "\t\t# i-0a 10.1.0.2 sg-web\n"
	    "\t\ttcp dport 22 accept\n"
	    "\t\tdrop\n"
	    "\t}\n"
	    "}\n"
	    "table bridge mallee\n"
	    "delete table bridge mallee\n"
	    /* No MAC in the record: no tap to guard, unknown ones dropped. */
	    "table bridge mallee_guard\n"
	    "delete table bridge mallee_guard\n"
	    "table bridge mallee_guard {\n"
	    "\tchain prerouting {\n"
	    "\t\ttype filter hook prerouting priority -300; policy accept;\n"
	    "\t\tiifname \"mlv*\" counter drop\n"
	    "\t}\n"
	    "}\n";
	CHECK_STR(t, want);
	CHECK_EQ_U64(c.instances, 1);
	CHECK_EQ_U64(c.rules, 2);
	CHECK_EQ_U64(c.skipped, 0);
	CHECK_EQ_U64(c.guarded, 0);
	free(t);
}

/* The anti-spoofing guard: one chain per local tap, named from the
 * address; remote instances, bad MACs and a second record on one address
 * get none. */
static void test_guard(void)
{
	struct peer_sg_instance is[] = {
	    inst("i-0a", "172.31.144.2", true, "sg-web", NULL),
	    inst("i-0b", "172.31.144.3", true, "sg-web", NULL),
	    inst("i-0c", "172.31.145.2", false, "sg-web", NULL), /* remote */
	    inst("i-0d", "172.31.144.4", true, "sg-web", NULL),  /* bad MAC */
	    inst("i-0e", "172.31.144.2", true, "sg-web", NULL),  /* stale */
	    inst("i-0f", "172.31.144.5", true, "sg-web", NULL),  /* no MAC */
	};
	snprintf(is[0].mac, 18, "02:00:ac:1f:90:02");
	snprintf(is[1].mac, 18, "02:00:ac:1f:90:03");
	snprintf(is[2].mac, 18, "02:00:ac:1f:91:02");
	snprintf(is[3].mac, 18, "02:00:ac:1f:90:0\"");
	snprintf(is[4].mac, 18, "02:00:ac:1f:90:99");
	struct peer_sg_counts c;
	char *t = compile(is, 6, NULL, 0, false, &c);
	CHECK_EQ_U64(c.guarded, 2);
	CHECK(strstr(t,
	             "\t\tiifname vmap { \"mlvac1f9002\" : jump "
	             "g_mlvac1f9002, \"mlvac1f9003\" : jump g_mlvac1f9003 }\n"
	             "\t\tiifname \"mlv*\" counter drop\n") != NULL);
	char *g = chain(t, "g_mlvac1f9002");
	CHECK_STR(g, "\tchain g_mlvac1f9002 {\n"
	             "\t\tether saddr != 02:00:ac:1f:90:02 counter drop\n"
	             "\t\tarp saddr ether 02:00:ac:1f:90:02 arp saddr ip "
	             "{ 172.31.144.2, 0.0.0.0 } accept\n"
	             "\t\tip saddr 172.31.144.2 accept\n"
	             "\t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 accept\n"
	             "\t\tcounter drop\n"
	             "\t}\n");
	free(g);
	CHECK(strstr(t, "mlvac1f9102") == NULL);
	CHECK(strstr(t, "mlvac1f9004") == NULL);
	CHECK(strstr(t, "mlvac1f9005") == NULL);
	CHECK(strstr(t, "90:99") == NULL);
	CHECK(strstr(t, "0:0\"") == NULL);
	free(t);
}

static void test_groups_and_protocols(void)
{
	struct peer_sg_instance is[] = {
	    inst("i-0b", "10.1.0.3", true, "sg-db", NULL),
	    inst("i-0a", "10.1.0.2", true, "sg-web", "sg-extra"),
	    inst("i-0c", "10.1.1.5", false, "sg-web", NULL), /* elsewhere */
	    inst("i-0d", "10.1.1.6", false, "sg-other", NULL),
	};
	struct peer_sg_rule rs[] = {
	    rule("sg-web", false, "tcp", 80, 81, PEER_SG_CIDR, "10.0.0.0/8"),
	    rule("sg-web", false, "udp", 0, 65535, PEER_SG_CIDR,
	         "192.168.1.0/24"),
	    rule("sg-web", true, "tcp", 443, 443, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-extra", false, "47", -1, -1, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-db", false, "tcp", 5432, 5432, PEER_SG_GROUP, "sg-web"),
	    rule("sg-db", false, "icmp", 8, -1, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-db", false, "icmp", 3, 4, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-db", false, "icmp", -1, -1, PEER_SG_GROUP, "sg-db"),
	    /* Skipped: IPv6, a group nobody is in, a bad CIDR, icmpv6. */
	    rule("sg-db", false, "tcp", 1, 2, PEER_SG_OTHER, "::/0"),
	    rule("sg-db", false, "tcp", 1, 2, PEER_SG_GROUP, "sg-empty"),
	    rule("sg-db", false, "tcp", 1, 2, PEER_SG_CIDR, "10.0.0.1/8"),
	    rule("sg-db", false, "icmpv6", -1, -1, PEER_SG_CIDR, "0.0.0.0/0"),
	    /* Another account's group of the same name applies to nobody. */
	    rule("sg-db", false, "tcp", 9, 9, PEER_SG_CIDR, "0.0.0.0/0"),
	};
	snprintf(rs[12].account, sizeof(rs[12].account), "999999999999");
	struct peer_sg_counts c;
	char *t = compile(is, 4, rs, sizeof(rs) / sizeof(rs[0]), false, &c);
	CHECK(strstr(t, "\t\tip saddr vmap { 10.1.0.2 : jump out_0a, "
	                "10.1.0.3 : jump out_0b }\n") != NULL);
	CHECK(strstr(t, "\t\tip daddr vmap { 10.1.0.2 : jump in_0a, "
	                "10.1.0.3 : jump in_0b }\n") != NULL);
	CHECK(strstr(t, "out_0c") == NULL);

	char *in_a = chain(t, "in_0a");
	CHECK_STR(in_a, "\tchain in_0a {\n"
	                "\t\t# i-0a 10.1.0.2 sg-web sg-extra\n"
	                "\t\tip saddr 10.0.0.0/8 tcp dport 80-81 accept\n"
	                "\t\tip saddr 192.168.1.0/24 meta l4proto udp accept\n"
	                "\t\tmeta l4proto 47 accept\n"
	                "\t\tdrop\n"
	                "\t}\n");
	char *out_a = chain(t, "out_0a");
	CHECK_STR(out_a, "\tchain out_0a {\n"
	                 "\t\t# i-0a 10.1.0.2 sg-web sg-extra\n"
	                 "\t\ttcp dport 443 return\n"
	                 "\t\tdrop\n"
	                 "\t}\n");
	char *in_b = chain(t, "in_0b");
	CHECK_STR(in_b, "\tchain in_0b {\n"
	                "\t\t# i-0b 10.1.0.3 sg-db\n"
	                "\t\tip saddr { 10.1.0.2, 10.1.1.5 } tcp dport 5432 "
	                "accept\n"
	                "\t\ticmp type 8 accept\n"
	                "\t\ticmp type 3 icmp code 4 accept\n"
	                "\t\tip saddr { 10.1.0.3 } meta l4proto icmp accept\n"
	                "\t\tdrop\n"
	                "\t}\n");
	/* No egress rule in sg-db: everything out is dropped. */
	char *out_b = chain(t, "out_0b");
	CHECK_STR(out_b, "\tchain out_0b {\n"
	                 "\t\t# i-0b 10.1.0.3 sg-db\n"
	                 "\t\tdrop\n"
	                 "\t}\n");
	CHECK_EQ_U64(c.instances, 2);
	CHECK_EQ_U64(c.rules, 8);
	CHECK_EQ_U64(c.skipped, 4);
	free(in_a);
	free(out_a);
	free(in_b);
	free(out_b);
	free(t);
}

static void test_bridge_fallback(void)
{
	struct peer_sg_instance is[] = {
	    inst("i-0a", "10.1.0.2", true, "sg-web", NULL),
	};
	struct peer_sg_rule rs[] = {
	    rule("sg-web", false, "tcp", 22, 22, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-web", false, "icmp", 8, -1, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-web", true, "-1", -1, -1, PEER_SG_CIDR, "10.0.0.0/8"),
	};
	struct peer_sg_counts c;
	char *t = compile(is, 1, rs, 3, true, &c);
	const char *br = strstr(t, "table bridge mallee {\n");
	CHECK(br != NULL);
	CHECK(strstr(t, "delete table bridge mallee\ntable bridge") != NULL);
	char *out_a = chain(br ? br : "", "out_0a");
	/* Its own egress, then replies to what its ingress allows. */
	CHECK_STR(out_a,
	          "\tchain out_0a {\n"
	          "\t\t# i-0a 10.1.0.2 sg-web\n"
	          "\t\ttcp sport 22 tcp flags & (syn | ack) != syn return\n"
	          "\t\ticmp type echo-reply return\n"
	          "\t\tip daddr 10.0.0.0/8 return\n"
	          "\t\tdrop\n"
	          "\t}\n");
	char *in_a = chain(br ? br : "", "in_0a");
	CHECK_STR(in_a, "\tchain in_0a {\n"
	                "\t\t# i-0a 10.1.0.2 sg-web\n"
	                "\t\ttcp dport 22 accept\n"
	                "\t\ticmp type 8 accept\n"
	                "\t\tip saddr 10.0.0.0/8 meta l4proto != tcp accept\n"
	                "\t\tip saddr 10.0.0.0/8 tcp flags & (syn | ack) != "
	                "syn accept\n"
	                "\t\tdrop\n"
	                "\t}\n");
	/* No conntrack in the bridge family here. */
	CHECK(strstr(br ? br : "", "ct state") == NULL);
	CHECK_EQ_U64(c.rules, 3);
	free(out_a);
	free(in_a);
	free(t);
}

static void test_hostile_and_empty(void)
{
	struct peer_sg_instance is[] = {
	    inst("i-0a", "10.1.0.2 } ; flush ruleset", true, "sg-web", NULL),
	    inst("i-0b; x", "10.1.0.3", true, "sg-web", NULL),
	    inst("i-0c", "10.1.0.4", true, "sg-web\"}", NULL),
	    /* Two records claim one address: one chain pair only. */
	    inst("i-0e", "10.1.0.9", true, "sg-web", NULL),
	    inst("i-0d", "10.1.0.9", true, "sg-web", NULL),
	};
	struct peer_sg_rule rs[] = {
	    rule("sg-web", false, "tcp;", 1, 1, PEER_SG_CIDR, "0.0.0.0/0"),
	    rule("sg-web", false, "tcp", 1, 1, PEER_SG_CIDR,
	         "0.0.0.0/0 accept"),
	};
	struct peer_sg_counts c;
	char *t = compile(is, 5, rs, 2, false, &c);
	CHECK(strstr(t, "flush") == NULL);
	CHECK(strstr(t, "; x") == NULL);
	CHECK(strstr(t, "sg-web\"") == NULL);
	CHECK(strstr(t, "10.1.0.9 : jump out_0d }") != NULL);
	CHECK(strstr(t, "out_0e") == NULL);
	CHECK_EQ_U64(c.instances, 2);
	/* Both rules, for the one instance in sg-web. */
	CHECK_EQ_U64(c.skipped, 2);
	free(t);

	/* No instances at all: a table with no dispatch, still valid. */
	t = compile(NULL, 0, NULL, 0, false, &c);
	CHECK(strstr(t, "vmap") == NULL);
	CHECK(strstr(t, "policy accept;\n\t\tct state established,related "
	                "accept\n\t}\n}\n") != NULL);
	CHECK_EQ_U64(c.instances, 0);
	free(t);
}

static void test_decode(void)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 8);
	mc_pack_kv_str(&b, "group", "sg-1");
	mc_pack_kv_bool(&b, "egress", false);
	mc_pack_kv_str(&b, "proto", "tcp");
	mc_pack_kv_int(&b, "from", 22);
	mc_pack_kv_int(&b, "to", 22);
	mc_pack_kv_str(&b, "peer", "group");
	mc_pack_kv_str(&b, "target", "sg-2");
	mc_pack_kv_str(&b, "user", "");
	struct peer_sg_rule r;
	CHECK(peer_sg_rule_decode(ACCT ":sg-1:sgr-9", b.data, b.len, &r) == 0);
	CHECK_STR(r.account, ACCT);
	CHECK_STR(r.group, "sg-1");
	CHECK_STR(r.proto, "tcp");
	CHECK(r.from == 22 && r.to == 22 && !r.egress);
	CHECK(r.peer == PEER_SG_GROUP);
	CHECK_STR(r.target, "sg-2");
	CHECK_STR(r.user, ACCT); /* defaults to the rule's account */
	CHECK(peer_sg_rule_decode("no-colon", b.data, b.len, &r) == -EINVAL);
	CHECK(peer_sg_rule_decode(ACCT ":x", b.data, b.len - 1, &r) == -EINVAL);
	mc_buf_free(&b);

	mc_buf_init(&b);
	mc_pack_map(&b, 1);
	mc_pack_kv_int(&b, "from", 70000);
	CHECK(peer_sg_rule_decode(ACCT ":x", b.data, b.len, &r) == -EINVAL);
	mc_buf_free(&b);
}

int main(void)
{
	RUN(test_small_exact);
	RUN(test_guard);
	RUN(test_groups_and_protocols);
	RUN(test_bridge_fallback);
	RUN(test_hostile_and_empty);
	RUN(test_decode);
	return check_summary();
}
