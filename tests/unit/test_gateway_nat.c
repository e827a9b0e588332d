/*
 * Gateway NAT's pure parts: the --public-pool parser (ranges, CIDRs and
 * the errors) and the nftables text the compiler makes.
 */
#include "check.h"
#include "gateway_nat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d)
{
	return (uint32_t)a << 24 | b << 16 | c << 8 | d;
}

static void test_pool_parse(void)
{
	uint32_t f, l;
	char err[256];
	CHECK(peer_gateway_pool_parse("198.18.0.100-198.18.0.110", &f, &l, err,
	                              sizeof(err)) == 0);
	CHECK(f == ip(198, 18, 0, 100) && l == ip(198, 18, 0, 110));
	CHECK(peer_gateway_pool_parse("198.18.0.7-198.18.0.7", &f, &l, err,
	                              sizeof(err)) == 0 &&
	      f == l);
	CHECK(peer_gateway_pool_parse("198.18.0.96/28", &f, &l, err,
	                              sizeof(err)) == 0);
	CHECK(f == ip(198, 18, 0, 97) && l == ip(198, 18, 0, 110));
	CHECK(peer_gateway_pool_parse("198.18.0.5/32", &f, &l, err,
	                              sizeof(err)) == 0 &&
	      f == l);
	CHECK(peer_gateway_pool_parse("198.18.0.4/31", &f, &l, err,
	                              sizeof(err)) == 0 &&
	      l == f + 1);

	CHECK(peer_gateway_pool_parse("198.18.0.110-198.18.0.100", &f, &l, err,
	                              sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "ends before it starts") != NULL);
	CHECK(peer_gateway_pool_parse("198.18.0.97/28", &f, &l, err,
	                              sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "--public-pool") != NULL);
	CHECK(peer_gateway_pool_parse("10.0.0.0/8", &f, &l, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "more than") != NULL);
	CHECK(peer_gateway_pool_parse("10.0.0.0-10.2.0.0", &f, &l, err,
	                              sizeof(err)) == -EINVAL);
	CHECK(peer_gateway_pool_parse("126.255.255.250-127.0.0.3", &f, &l, err,
	                              sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "unicast") != NULL);
	CHECK(peer_gateway_pool_parse("224.0.0.1-224.0.0.9", &f, &l, err,
	                              sizeof(err)) == -EINVAL);
	static const char *bad[] = {"",
	                            "1.2.3",
	                            "1.2.3.4-",
	                            "-1.2.3.4",
	                            "a-b",
	                            "1.2.3.4/33",
	                            "1.2.3.4/",
	                            "1.2.3.0/24-1.2.3.9",
	                            "1.2.3.4 - 1.2.3.5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(peer_gateway_pool_parse(bad[i], &f, &l, err,
		                              sizeof(err)) == -EINVAL);
}

static char *compile_with(const char *ifname, const struct peer_nat_eip *e,
                          size_t n, uint32_t public_addr, int *rc)
{
	struct peer_nat_input in = {
	    .ifname = ifname,
	    .cloud_net = ip(172, 31, 0, 0),
	    .cloud_prefix = 16,
	    .eips = e,
	    .n_eips = n,
	    .public_addr = public_addr,
	};
	struct mc_buf b;
	mc_buf_init(&b);
	*rc = peer_gateway_nat_compile(&in, &b);
	char *s = mc_buf_strdup(&b);
	mc_buf_free(&b);
	return s;
}

static char *compile(const char *ifname, const struct peer_nat_eip *e, size_t n,
                     int *rc)
{
	return compile_with(ifname, e, n, 0, rc);
}

static void test_compile(void)
{
	int rc;
	struct peer_nat_eip e[2] = {
	    {ip(198, 18, 0, 100), ip(172, 31, 5, 2), "i-1"},
	    {ip(198, 18, 0, 101), ip(172, 31, 6, 9), "i-2"},
	};
	char *s = compile("eth1", e, 2, &rc);
	CHECK(rc == 0);
	CHECK(strncmp(s,
	              "add table ip mallee-nat\ndelete table ip mallee-nat\n",
	              50) == 0);
	CHECK(strstr(s, "elements = { 198.18.0.100 : 172.31.5.2, "
	                "198.18.0.101 : 172.31.6.9 }") != NULL);
	CHECK(strstr(s, "elements = { 172.31.5.2 : 198.18.0.100, "
	                "172.31.6.9 : 198.18.0.101 }") != NULL);
	CHECK(strstr(s, "dnat to ip daddr map @eip_in") != NULL);
	/* The instance's own address before the masquerade. */
	char *snat =
	    strstr(s, "oifname \"eth1\" snat to ip saddr map @eip_out");
	char *masq =
	    strstr(s, "oifname \"eth1\" ip saddr 172.31.0.0/16 counter "
	              "masquerade");
	CHECK(snat && masq && snat < masq);
	/* Hairpin: back into the cloud after the DNAT, the source too; with
	 * no interface address known, only sources with an elastic IP. */
	const char *hair_eip = "ct status dnat ip saddr 172.31.0.0/16 ip daddr "
	                       "172.31.0.0/16 snat to ip saddr map @eip_out\n";
	CHECK(strstr(s, hair_eip) != NULL);
	CHECK(strstr(s, "counter snat to") == NULL);
	free(s);

	s = compile_with("eth1", e, 2, ip(198, 18, 0, 1), &rc);
	CHECK(rc == 0);
	char *own = strstr(s, hair_eip);
	char *gw = strstr(s, "ct status dnat ip saddr 172.31.0.0/16 ip daddr "
	                     "172.31.0.0/16 counter snat to 198.18.0.1\n");
	CHECK(own && gw && own < gw);
	free(s);

	s = compile("eth1", NULL, 0, &rc);
	CHECK(rc == 0 && strstr(s, "elements") == NULL &&
	      strstr(s, "masquerade") != NULL);
	free(s);

	s = compile("", NULL, 0, &rc);
	CHECK(rc == 0);
	CHECK_STR(s, "add table ip mallee-nat\ndelete table ip mallee-nat\n");
	free(s);

	s = compile("eth1\"; flush ruleset", e, 1, &rc);
	CHECK(rc == -EINVAL);
	free(s);
}

int main(void)
{
	test_pool_parse();
	test_compile();
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed != 0;
}
