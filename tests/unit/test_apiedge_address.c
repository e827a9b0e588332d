/*
 * Elastic IPs through a real edge over fake_cloud.h, with gateway pools
 * put in as the peers would ("public-pool" records): AllocateAddress from
 * the lowest free address of every pool (claims, stale claims, no pool,
 * an exhausted pool, the per-account limit), DescribeAddresses (ids,
 * filters, tags, account isolation), AssociateAddress (by allocation id,
 * public address or ENI; reassociation both ways), DisassociateAddress,
 * ReleaseAddress (refused while associated), DryRun, EC2's error codes,
 * the association dropped when its instance terminates, and
 * DescribeInstances showing ipAddress.
 */
#include "edge_client.h"

#include "hlc.h"
#include "instance.h"
#include "wire.h"

#define GW_A "fa4e00000000a001"
#define GW_B "fa4e00000000b001"

static char image_id[32];
static char inst[2][32];
static char alloc_a1[32], alloc_a2[32]; /* 198.51.100.5, 203.0.113.10 */
static char alloc_b[8][32];
static size_t n_alloc_b;

static void put_pool(const char *peer, const char *zone, const char *first,
                     const char *last)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 3);
	mc_pack_kv_str(&b, "zone", zone);
	mc_pack_kv_str(&b, "first", first);
	mc_pack_kv_str(&b, "last", last);
	CHECK(fake_put(&ec_fake, API_KIND_PUBLIC_POOL, peer, b.data, b.len) ==
	      0);
	mc_buf_free(&b);
}

static void put_claim(const char *ip, const char *allocation, uint64_t created)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "allocation", allocation);
	mc_pack_kv_uint(&b, "created", created);
	CHECK(fake_put(&ec_fake, API_KIND_PUBLIC_IP, ip, b.data, b.len) == 0);
	mc_buf_free(&b);
}

/* A string field of a record in the fake, or false. */
static bool record_str(const char *kind, const char *id, const char *key,
                       char *out, size_t size)
{
	uint8_t *body;
	size_t len;
	if (fake_get(&ec_fake, kind, id, &body, &len) != 0)
		return false;
	struct mc_doc *doc = mc_unpack(body, len);
	free(body);
	bool ok = doc && mc_get_str(mc_doc_root(doc), key, out, size);
	mc_doc_free(doc);
	return ok;
}

static bool record_exists(const char *kind, const char *id)
{
	size_t pos;
	return fake_find(&ec_fake, kind, id, &pos) != NULL;
}

/* AllocateAddress as key; the public address and allocation id. */
static int allocate(const char *key, const char *secret, char ip[32],
                    char alloc[32], char **body)
{
	int st = ec_do_as(key, secret, body, "AllocateAddress", "Domain", "vpc",
	                  NULL);
	if (st == 200) {
		CHECK(ec_text(*body, "publicIp", ip, 32));
		CHECK(ec_text(*body, "allocationId", alloc, 32));
	}
	return st;
}

static void setup(void)
{
	char *body;
	int st = ec_do(&body, "RegisterImage", "Name", "debian-12", NULL);
	ec_check_ok(st, body, "RegisterImage");
	CHECK(ec_text(body, "imageId", image_id, sizeof(image_id)));
	free(body);
	st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount", "2",
	           "MaxCount", "2", "InstanceType", "t3.micro", NULL);
	ec_check_ok(st, body, "RunInstances");
	const char *p = strstr(body, "<item><instanceId>");
	for (int i = 0; i < 2 && p; i++) {
		CHECK(ec_text(p, "instanceId", inst[i], sizeof(inst[i])));
		p = strstr(p + 1, "<item><instanceId>");
	}
	free(body);
	fake_host_settle(&ec_fake);
}

static void test_no_pool(void)
{
	char *body;
	int st = ec_do(&body, "AllocateAddress", NULL);
	ec_check_error(st, body, 500, "InsufficientAddressCapacity");
	CHECK(strstr(body, "--public-pool") != NULL);
	free(body);
	/* Nothing was written for it. */
	CHECK(!record_exists(API_KIND_PUBLIC_IP, "198.51.100.5"));
}

static void test_allocate(void)
{
	char *body, ip[32], alloc[32], text[128];
	put_pool(GW_B, "us-east-1b", "198.51.100.5", "198.51.100.5");
	unsigned puts = ec_fake.puts;
	int st = ec_do(&body, "AllocateAddress", "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	CHECK_EQ_U64(ec_fake.puts, puts);

	st = ec_do(&body, "AllocateAddress", "Domain", "vpc",
	           "TagSpecification.1.ResourceType", "elastic-ip",
	           "TagSpecification.1.Tag.1.Key", "Name",
	           "TagSpecification.1.Tag.1.Value", "web", NULL);
	ec_check_ok(st, body, "AllocateAddress");
	CHECK(ec_text(body, "allocationId", alloc_a1, sizeof(alloc_a1)));
	CHECK(api_res_id_valid("eipalloc", alloc_a1) && strlen(alloc_a1) == 26);
	snprintf(text, sizeof(text),
	         "</requestId><publicIp>198.51.100.5</publicIp><domain>vpc"
	         "</domain><allocationId>%s</allocationId><publicIpv4Pool>"
	         "amazon</publicIpv4Pool><networkBorderGroup>us-east-1"
	         "</networkBorderGroup></AllocateAddressResponse>",
	         alloc_a1);
	CHECK(strstr(body, text) != NULL);
	free(body);
	/* The records the gateway reads: the address and its claim. */
	char rid[64], v[64];
	snprintf(rid, sizeof(rid), ACCOUNT_A ":%s", alloc_a1);
	CHECK(record_str(API_KIND_ADDRESS, rid, "public_ip", v, sizeof(v)) &&
	      strcmp(v, "198.51.100.5") == 0);
	CHECK(record_str(API_KIND_ADDRESS, rid, "pool_peer", v, sizeof(v)) &&
	      strcmp(v, GW_B) == 0);
	CHECK(record_str(API_KIND_ADDRESS, rid, "zone", v, sizeof(v)) &&
	      strcmp(v, "us-east-1b") == 0);
	CHECK(record_str(API_KIND_ADDRESS, rid, "instance_id", v, sizeof(v)) &&
	      v[0] == 0);
	CHECK(record_str(API_KIND_PUBLIC_IP, "198.51.100.5", "allocation", v,
	                 sizeof(v)) &&
	      strcmp(v, rid) == 0);

	/* The only address is taken: none for anyone. */
	st = allocate(KEY_B, SECRET_B, ip, alloc, &body);
	ec_check_error(st, body, 500, "InsufficientAddressCapacity");
	free(body);

	/* A second gateway: the lowest free address of all pools next. */
	put_pool(GW_A, "us-east-1a", "203.0.113.10", "203.0.113.30");
	st = ec_do(&body, "AllocateAddress", "Domain", "standard", NULL);
	ec_check_ok(st, body, "AllocateAddress");
	CHECK(ec_text(body, "publicIp", ip, sizeof(ip)));
	CHECK_STR(ip, "203.0.113.10");
	CHECK(strstr(body, "<domain>standard</domain>") != NULL);
	CHECK(ec_text(body, "allocationId", alloc_a2, sizeof(alloc_a2)));
	free(body);

	static const char *const bad[][2] = {
	    {"Domain", "classic"},
	    {"NetworkBorderGroup", "eu-west-1"},
	    {"PublicIpv4Pool", "ipv4pool-ec2-0123"},
	    {"Address", "203.0.113.20"},
	    {"TagSpecification.1.ResourceType", "elastic-ip"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = ec_do(&body, "AllocateAddress", bad[i][0], bad[i][1],
		           "TagSpecification.1.Tag.1.Key", "aws:x", NULL);
		ec_check_error(st, body, 400, "InvalidParameterValue");
		free(body);
	}
}

static void test_claims_and_limit(void)
{
	char *body, ip[32], alloc[32];
	char ips[8][32];
	/* Another edge's fresh claim holds .11; a dead edge's claim on .12
	 * (old, with no address record) does not. */
	put_claim("203.0.113.11", "999999999999:eipalloc-0123456789abcdef0",
	          mc_wall_ms());
	put_claim("203.0.113.12", "999999999999:eipalloc-0fedcba987654321f", 1);
	static const char *const want[] = {"203.0.113.12", "203.0.113.13",
	                                   "203.0.113.14", "203.0.113.15",
	                                   "203.0.113.16"};
	for (size_t i = 0; i < 5; i++) {
		int st = allocate(KEY_B, SECRET_B, ips[i], alloc_b[i], &body);
		ec_check_ok(st, body, "AllocateAddress");
		CHECK_STR(ips[i], want[i]);
		free(body);
	}
	n_alloc_b = 5;
	int st = allocate(KEY_B, SECRET_B, ip, alloc, &body);
	ec_check_error(st, body, 400, "AddressLimitExceeded");
	free(body);
	/* No two allocations ever hold the same address. */
	for (size_t i = 0; i < 5; i++) {
		CHECK(strcmp(ips[i], "198.51.100.5") != 0 &&
		      strcmp(ips[i], "203.0.113.10") != 0);
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(ips[i], ips[k]) != 0);
	}
	/* Releasing one frees a slot and its address (still the lowest). */
	st = ec_do_as(KEY_B, SECRET_B, &body, "ReleaseAddress", "AllocationId",
	              alloc_b[1], NULL);
	ec_check_ok(st, body, "ReleaseAddress");
	CHECK(strstr(body, "<return>true</return>") != NULL);
	free(body);
	CHECK(!record_exists(API_KIND_PUBLIC_IP, "203.0.113.13"));
	st = allocate(KEY_B, SECRET_B, ip, alloc_b[1], &body);
	ec_check_ok(st, body, "AllocateAddress");
	CHECK_STR(ip, "203.0.113.13");
	free(body);
	/* The fresh claim was never taken over. */
	char v[64];
	CHECK(record_str(API_KIND_PUBLIC_IP, "203.0.113.11", "allocation", v,
	                 sizeof(v)) &&
	      strncmp(v, "999999999999:", 13) == 0);
}

static void test_describe(void)
{
	char *body, text[512];
	int st = ec_do(&body, "DescribeAddresses", NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), 2);
	snprintf(text, sizeof(text),
	         "<item><publicIp>198.51.100.5</publicIp><allocationId>%s"
	         "</allocationId><domain>vpc</domain><tagSet><item><key>Name"
	         "</key><value>web</value></item></tagSet><publicIpv4Pool>"
	         "amazon</publicIpv4Pool><networkBorderGroup>us-east-1"
	         "</networkBorderGroup></item>",
	         alloc_a1);
	CHECK(strstr(body, text) != NULL);
	free(body);

	static const struct {
		const char *name, *value;
		size_t n;
	} filters[] = {
	    {"public-ip", "203.0.113.10", 1},
	    {"public-ip", "203.0.113.*", 1},
	    {"domain", "standard", 1},
	    {"domain", "vpc", 1},
	    {"tag:Name", "web", 1},
	    {"tag-key", "Name", 1},
	    {"tag:Name", "db", 0},
	    {"allocation-id", alloc_a1, 1},
	    {"instance-id", "i-12345678", 0},
	    {"association-id", "*", 0},
	    {"private-ip-address", "*", 0},
	    {"network-border-group", "us-east-1", 2},
	};
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		st = ec_do(&body, "DescribeAddresses", "Filter.1.Name",
		           filters[i].name, "Filter.1.Value.1",
		           filters[i].value, NULL);
		ec_check_ok(st, body, "DescribeAddresses");
		if (ec_count(body, "<item><publicIp>") != filters[i].n)
			fprintf(stderr, "filter %s=%s: %s\n", filters[i].name,
			        filters[i].value, body);
		CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), filters[i].n);
		free(body);
	}
	st = ec_do(&body, "DescribeAddresses", "Filter.1.Name", "color",
	           "Filter.1.Value.1", "red", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);

	/* By id: each kind, both kinds, index 0, unknown ones. */
	st = ec_do(&body, "DescribeAddresses", "PublicIp.0", "203.0.113.10",
	           NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), 1);
	free(body);
	st = ec_do(&body, "DescribeAddresses", "PublicIp.1", "203.0.113.10",
	           "AllocationId.1", alloc_a1, NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), 2);
	free(body);
	st = ec_do(&body, "DescribeAddresses", "PublicIp.1", "203.0.113.10",
	           "PublicIp.2", "203.0.113.12", NULL);
	ec_check_error(st, body, 400, "InvalidAddress.NotFound");
	CHECK(strstr(body, "203.0.113.12") != NULL);
	free(body);
	/* Another account's allocation is unknown here. */
	st = ec_do(&body, "DescribeAddresses", "AllocationId.1", alloc_b[0],
	           NULL);
	ec_check_error(st, body, 400, "InvalidAllocationID.NotFound");
	free(body);
	st = ec_do(&body, "DescribeAddresses", "AllocationId.1", "eip-1", NULL);
	ec_check_error(st, body, 400, "InvalidAllocationID.Malformed");
	free(body);
	st = ec_do(&body, "DescribeAddresses", "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeAddresses", NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), 5);
	CHECK(strstr(body, "198.51.100.5") == NULL);
	free(body);
}

/* The ipAddress DescribeInstances shows for instance i ("" for none). */
static void instance_ip(int i, char *out, size_t size)
{
	char *body;
	int st =
	    ec_do(&body, "DescribeInstances", "InstanceId.1", inst[i], NULL);
	ec_check_ok(st, body, "DescribeInstances");
	if (!ec_text(body, "ipAddress", out, size))
		out[0] = '\0';
	else {
		/* The ENI and its private address carry the association. */
		char want[256];
		snprintf(want, sizeof(want),
		         "</attachment><association><publicIp>%s</publicIp>"
		         "<publicDnsName></publicDnsName><ipOwnerId>" ACCOUNT_A
		         "</ipOwnerId></association><privateIpAddressesSet>",
		         out);
		CHECK(strstr(body, want) != NULL);
		CHECK_EQ_U64(ec_count(body, "<association>"), 2);
		CHECK(strstr(body, "</privateIpAddress><ipAddress>") != NULL);
	}
	free(body);
}

static void test_associate(void)
{
	char *body, assoc1[32], assoc2[32], ip[32], text[512];
	int st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a1,
	               "InstanceId", inst[0], "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	instance_ip(0, ip, sizeof(ip));
	CHECK_STR(ip, "");

	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a1,
	           "InstanceId", inst[0], NULL);
	ec_check_ok(st, body, "AssociateAddress");
	CHECK(ec_text(body, "associationId", assoc1, sizeof(assoc1)));
	CHECK(api_res_id_valid("eipassoc", assoc1));
	CHECK(strstr(body, "</requestId><return>true</return>"
	                   "<associationId>eipassoc-") != NULL);
	free(body);
	instance_ip(0, ip, sizeof(ip));
	CHECK_STR(ip, "198.51.100.5");
	instance_ip(1, ip, sizeof(ip));
	CHECK_STR(ip, "");

	/* The record the gateway forwards by. */
	char rid[64], priv[32], v[32];
	snprintf(rid, sizeof(rid), ACCOUNT_A ":%s", alloc_a1);
	CHECK(record_str(API_KIND_ADDRESS, rid, "instance_id", v, sizeof(v)) &&
	      strcmp(v, inst[0]) == 0);
	CHECK(record_str(API_KIND_ADDRESS, rid, "private_ip", priv,
	                 sizeof(priv)) &&
	      strncmp(priv, "172.31.", 7) == 0);

	st = ec_do(&body, "DescribeAddresses", "Filter.1.Name", "instance-id",
	           "Filter.1.Value.1", inst[0], NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	snprintf(text, sizeof(text),
	         "<domain>vpc</domain><instanceId>%s</instanceId>"
	         "<associationId>%s</associationId><networkInterfaceId>eni-",
	         inst[0], assoc1);
	CHECK(strstr(body, text) != NULL);
	snprintf(text, sizeof(text),
	         "<networkInterfaceOwnerId>" ACCOUNT_A
	         "</networkInterfaceOwnerId><privateIpAddress>%s"
	         "</privateIpAddress><tagSet>",
	         priv);
	CHECK(strstr(body, text) != NULL);
	CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), 1);
	free(body);
	static const char *const by[] = {"association-id",
	                                 "private-ip-address"};
	const char *val[] = {assoc1, priv};
	for (int i = 0; i < 2; i++) {
		st = ec_do(&body, "DescribeAddresses", "Filter.1.Name", by[i],
		           "Filter.1.Value.1", val[i], NULL);
		ec_check_ok(st, body, "DescribeAddresses");
		CHECK_EQ_U64(ec_count(body, "<item><publicIp>"), 1);
		free(body);
	}

	/* Associated: not released. */
	st = ec_do(&body, "ReleaseAddress", "AllocationId", alloc_a1, NULL);
	ec_check_error(st, body, 400, "InvalidIPAddress.InUse");
	free(body);

	/* The same association again is the same. */
	st = ec_do(&body, "AssociateAddress", "PublicIp", "198.51.100.5",
	           "InstanceId", inst[0], NULL);
	ec_check_ok(st, body, "AssociateAddress");
	CHECK(ec_text(body, "associationId", v, sizeof(v)));
	CHECK_STR(v, assoc1);
	free(body);

	/* Moving it needs AllowReassociation. */
	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a1,
	           "InstanceId", inst[1], NULL);
	ec_check_error(st, body, 400, "Resource.AlreadyAssociated");
	free(body);
	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a1,
	           "InstanceId", inst[1], "AllowReassociation", "true", NULL);
	ec_check_ok(st, body, "AssociateAddress");
	CHECK(ec_text(body, "associationId", assoc2, sizeof(assoc2)));
	CHECK(strcmp(assoc1, assoc2) != 0);
	free(body);
	instance_ip(0, ip, sizeof(ip));
	CHECK_STR(ip, "");
	instance_ip(1, ip, sizeof(ip));
	CHECK_STR(ip, "198.51.100.5");

	/* An instance with an address takes another only with it too; the
	 * old one stays allocated, unassociated. */
	st = ec_do(&body, "AssociateAddress", "PublicIp", "203.0.113.10",
	           "InstanceId", inst[1], NULL);
	ec_check_error(st, body, 400, "Resource.AlreadyAssociated");
	free(body);
	st = ec_do(&body, "AssociateAddress", "PublicIp", "203.0.113.10",
	           "InstanceId", inst[1], "AllowReassociation", "true", NULL);
	ec_check_ok(st, body, "AssociateAddress");
	free(body);
	instance_ip(1, ip, sizeof(ip));
	CHECK_STR(ip, "203.0.113.10");
	st =
	    ec_do(&body, "DescribeAddresses", "AllocationId.1", alloc_a1, NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK(strstr(body, "<instanceId>") == NULL);
	free(body);

	/* By network interface, as DescribeInstances names it. */
	st = ec_do(&body, "DescribeInstances", "InstanceId.1", inst[0], NULL);
	char eni[32];
	CHECK(ec_text(body, "networkInterfaceId", eni, sizeof(eni)));
	free(body);
	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a1,
	           "NetworkInterfaceId", eni, NULL);
	ec_check_ok(st, body, "AssociateAddress");
	free(body);
	instance_ip(0, ip, sizeof(ip));
	CHECK_STR(ip, "198.51.100.5");
}

static void test_associate_errors(void)
{
	static const struct {
		const char *n1, *v1, *n2, *v2, *code;
	} bad[] = {
	    {"InstanceId", "i-12345678", NULL, NULL, "MissingParameter"},
	    {"AllocationId", "eipalloc-12345678", "PublicIp", "203.0.113.10",
	     "InvalidParameterCombination"},
	    {"AllocationId", "eipalloc-12345678", "InstanceId", "i-12345678",
	     "InvalidAllocationID.NotFound"},
	    {"AllocationId", "alloc-1", "InstanceId", "i-12345678",
	     "InvalidAllocationID.Malformed"},
	    {"PublicIp", "192.0.2.1", "InstanceId", "i-12345678",
	     "InvalidAddress.NotFound"},
	    {"PublicIp", "203.0.113.10", "InstanceId", "i-12345678",
	     "InvalidInstanceID.NotFound"},
	    {"PublicIp", "203.0.113.10", "InstanceId", "i-12",
	     "InvalidInstanceID.Malformed"},
	    {"PublicIp", "203.0.113.10", NULL, NULL, "MissingParameter"},
	    {"PublicIp", "203.0.113.10", "NetworkInterfaceId",
	     "eni-0123456789abcdef0", "InvalidNetworkInterfaceID.NotFound"},
	    {"PublicIp", "203.0.113.10", "AllowReassociation", "maybe",
	     "InvalidParameterValue"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *body;
		int st = bad[i].n2
		             ? ec_do(&body, "AssociateAddress", bad[i].n1,
		                     bad[i].v1, bad[i].n2, bad[i].v2, NULL)
		             : ec_do(&body, "AssociateAddress", bad[i].n1,
		                     bad[i].v1, NULL);
		ec_check_error(st, body, 400, bad[i].code);
		free(body);
	}
	/* Another account's instance and address are unknown. */
	char *body;
	int st =
	    ec_do_as(KEY_B, SECRET_B, &body, "AssociateAddress", "AllocationId",
	             alloc_b[0], "InstanceId", inst[0], NULL);
	ec_check_error(st, body, 400, "InvalidInstanceID.NotFound");
	free(body);
	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_b[0],
	           "InstanceId", inst[0], NULL);
	ec_check_error(st, body, 400, "InvalidAllocationID.NotFound");
	free(body);
}

static void test_disassociate(void)
{
	char *body, assoc[32], ip[32];
	int st =
	    ec_do(&body, "DescribeAddresses", "AllocationId.1", alloc_a1, NULL);
	CHECK(ec_text(body, "associationId", assoc, sizeof(assoc)));
	free(body);
	st = ec_do(&body, "DisassociateAddress", "AssociationId", assoc,
	           "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = ec_do(&body, "DisassociateAddress", "AssociationId", assoc, NULL);
	ec_check_ok(st, body, "DisassociateAddress");
	CHECK(strstr(body, "<return>true</return>") != NULL);
	free(body);
	instance_ip(0, ip, sizeof(ip));
	CHECK_STR(ip, "");
	st = ec_do(&body, "DisassociateAddress", "AssociationId", assoc, NULL);
	ec_check_error(st, body, 400, "InvalidAssociationID.NotFound");
	free(body);
	st = ec_do(&body, "DisassociateAddress", "PublicIp", "203.0.113.10",
	           NULL);
	ec_check_ok(st, body, "DisassociateAddress");
	free(body);
	instance_ip(1, ip, sizeof(ip));
	CHECK_STR(ip, "");
	st = ec_do(&body, "DisassociateAddress", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	st = ec_do(&body, "DisassociateAddress", "PublicIp", "203.0.113.10",
	           "AssociationId", assoc, NULL);
	ec_check_error(st, body, 400, "InvalidParameterCombination");
	free(body);
	st = ec_do(&body, "DisassociateAddress", "PublicIp", "192.0.2.7", NULL);
	ec_check_error(st, body, 400, "InvalidAddress.NotFound");
	free(body);
}

/* A terminated instance loses its address (which stays allocated). */
static void test_terminated(void)
{
	char *body;
	int st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a2,
	               "InstanceId", inst[1], NULL);
	ec_check_ok(st, body, "AssociateAddress");
	free(body);
	st = ec_do(&body, "TerminateInstances", "InstanceId.1", inst[1], NULL);
	ec_check_ok(st, body, "TerminateInstances");
	free(body);
	fake_host_settle(&ec_fake);
	st =
	    ec_do(&body, "DescribeAddresses", "AllocationId.1", alloc_a2, NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK(strstr(body, "<instanceId>") == NULL);
	free(body);
	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a2,
	           "InstanceId", inst[1], NULL);
	ec_check_error(st, body, 400, "IncorrectInstanceState");
	free(body);
	/* Free to go to the live instance without AllowReassociation. */
	st = ec_do(&body, "AssociateAddress", "AllocationId", alloc_a2,
	           "InstanceId", inst[0], NULL);
	ec_check_ok(st, body, "AssociateAddress");
	free(body);
	st = ec_do(&body, "DisassociateAddress", "PublicIp", "203.0.113.10",
	           NULL);
	ec_check_ok(st, body, "DisassociateAddress");
	free(body);
}

static void test_release(void)
{
	char *body, rid[64];
	int st = ec_do(&body, "ReleaseAddress", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	st = ec_do(&body, "ReleaseAddress", "AllocationId", alloc_a1,
	           "PublicIp", "198.51.100.5", NULL);
	ec_check_error(st, body, 400, "InvalidParameterCombination");
	free(body);
	st = ec_do(&body, "ReleaseAddress", "AllocationId", alloc_a1, "DryRun",
	           "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = ec_do(&body, "ReleaseAddress", "AllocationId", alloc_b[0], NULL);
	ec_check_error(st, body, 400, "InvalidAllocationID.NotFound");
	free(body);

	st = ec_do(&body, "ReleaseAddress", "AllocationId", alloc_a1, NULL);
	ec_check_ok(st, body, "ReleaseAddress");
	free(body);
	snprintf(rid, sizeof(rid), ACCOUNT_A ":%s", alloc_a1);
	CHECK(!record_exists(API_KIND_ADDRESS, rid));
	CHECK(!record_exists(API_KIND_PUBLIC_IP, "198.51.100.5"));
	st = ec_do(&body, "ReleaseAddress", "PublicIp", "203.0.113.10", NULL);
	ec_check_ok(st, body, "ReleaseAddress");
	free(body);
	st = ec_do(&body, "ReleaseAddress", "PublicIp", "203.0.113.10", NULL);
	ec_check_error(st, body, 400, "InvalidAddress.NotFound");
	free(body);
	st = ec_do(&body, "ReleaseAddress", "AllocationId", alloc_a1, NULL);
	ec_check_error(st, body, 400, "InvalidAllocationID.NotFound");
	free(body);
	/* Its tags went with it. */
	st = ec_do(&body, "DescribeTags", NULL);
	ec_check_ok(st, body, "DescribeTags");
	CHECK(strstr(body, "eipalloc-") == NULL);
	free(body);
	st = ec_do(&body, "DescribeAddresses", NULL);
	ec_check_ok(st, body, "DescribeAddresses");
	CHECK(strstr(body, "<addressesSet></addressesSet>") != NULL);
	free(body);
	/* The lowest address is handed out again. */
	char ip[32], alloc[32];
	st = allocate(KEY_A, SECRET_A, ip, alloc, &body);
	ec_check_ok(st, body, "AllocateAddress");
	CHECK_STR(ip, "198.51.100.5");
	free(body);
}

int main(void)
{
	ec_start("us-east-1");
	ec_fake.loop = &ec_loop;
	RUN(setup);
	RUN(test_no_pool);
	RUN(test_allocate);
	RUN(test_claims_and_limit);
	RUN(test_describe);
	RUN(test_associate);
	RUN(test_associate_errors);
	RUN(test_disassociate);
	RUN(test_terminated);
	RUN(test_release);
	ec_stop();
	return check_summary();
}
