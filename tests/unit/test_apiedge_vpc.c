/*
 * The default VPC and its subnets (DescribeVpcs, DescribeSubnets): ids
 * derived per account, EC2's element names, filters, ids that are unknown
 * or malformed, tags, DryRun; over real HTTP and directly.
 */
#include "edge_harness.h"

static void vpc_id_of(const char *account, char out[32])
{
	struct api_auth auth;
	memset(&auth, 0, sizeof(auth));
	snprintf(auth.key.account_id, sizeof(auth.key.account_id), "%s",
	         account);
	struct api_call call = {.auth = &auth};
	api_default_vpc_id(&call, out);
}

static void test_describe_vpcs_http(void)
{
	char *body, vpc[32], id[64];
	vpc_id_of(ACCOUNT_A, vpc);
	CHECK(api_res_id_valid("vpc", vpc));
	CHECK_EQ_U64(strlen(vpc), 21);
	int st = ec2_http(KEY_A, SECRET_A,
	                  "Action=DescribeVpcs&Version=2016-11-15&"
	                  "Filter.1.Name=isDefault&Filter.1.Value.1=true",
	                  &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<DescribeVpcsResponse xmlns=\"http://"
	                   "ec2.amazonaws.com/doc/2016-11-15/\">") != NULL);
	CHECK(xml_text(body, "vpcId", id, sizeof(id)));
	CHECK_STR(id, vpc);
	char want[1024];
	snprintf(want, sizeof(want),
	         "<vpcSet><item><vpcId>%s</vpcId><ownerId>" ACCOUNT_A
	         "</ownerId><state>available</state><cidrBlock>172.31.0.0/16"
	         "</cidrBlock><cidrBlockAssociationSet><item><cidrBlock>"
	         "172.31.0.0/16</cidrBlock><associationId>vpc-cidr-assoc-",
	         vpc);
	CHECK(strstr(body, want) != NULL);
	CHECK(strstr(body,
	             "</associationId><cidrBlockState><state>associated"
	             "</state></cidrBlockState></item>"
	             "</cidrBlockAssociationSet><dhcpOptionsId>dopt-") != NULL);
	CHECK(strstr(body, "</dhcpOptionsId><tagSet></tagSet><instanceTenancy>"
	                   "default</instanceTenancy><isDefault>true"
	                   "</isDefault></item></vpcSet>") != NULL);
	free(body);

	/* Another account has another VPC, and sees only its own. */
	char other[32];
	vpc_id_of(ACCOUNT_B, other);
	CHECK(strcmp(other, vpc) != 0);
	st = ec2_http(KEY_B, SECRET_B, "Action=DescribeVpcs", &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, other) != NULL);
	CHECK(strstr(body, vpc) == NULL);
	free(body);
}

static void test_describe_vpcs_filters(void)
{
	char vpc[32], form[256];
	vpc_id_of(ACCOUNT_A, vpc);
	char *body = ec2_ok(ACCOUNT_A, "Action=DescribeVpcs&Filter.1.Name="
	                               "isDefault&Filter.1.Value.1=false");
	CHECK(strstr(body, "<vpcSet></vpcSet>") != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeVpcs&Filter.1.Name="
	                         "is-default&Filter.1.Value=true&Filter.2."
	                         "Name=cidr&Filter.2.Value.1=172.31.%2A");
	CHECK(strstr(body, vpc) != NULL);
	free(body);
	snprintf(form, sizeof(form),
	         "Action=DescribeVpcs&Filter.1.Name=vpc-id&Filter.1.Value.1=%s"
	         "&Filter.2.Name=owner-id&Filter.2.Value.1=" ACCOUNT_A
	         "&Filter.3.Name=state&Filter.3.Value.1=available",
	         vpc);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, vpc) != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeVpcs&Filter.1.Name=owner-id&"
	                         "Filter.1.Value.1=" ACCOUNT_B);
	CHECK(strstr(body, "<vpcSet></vpcSet>") != NULL);
	free(body);
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeVpcs&Filter.1.Name=colour&"
	                "Filter.1.Value.1=x",
	                400, "InvalidParameterValue"));

	/* By id: index 0 starts a list too. */
	snprintf(form, sizeof(form), "Action=DescribeVpcs&VpcId.0=%s", vpc);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, vpc) != NULL);
	free(body);
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeVpcs&VpcId.1=vpc-12345678",
	                400, "InvalidVpcID.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeVpcs&VpcId.1=vpc-xyz", 400,
	                "InvalidVpcID.Malformed"));
	/* Account B's VPC is unknown to A. */
	char other[32];
	vpc_id_of(ACCOUNT_B, other);
	snprintf(form, sizeof(form), "Action=DescribeVpcs&VpcId.1=%s", other);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidVpcID.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeVpcs&DryRun=true", 412,
	                "DryRunOperation"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeVpcs&MaxResults=4", 400,
	                "InvalidParameterValue"));
}

static void test_vpc_tags(void)
{
	char vpc[32], form[256];
	vpc_id_of(ACCOUNT_A, vpc);
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=Name&"
	         "Tag.1.Value=main%%20net",
	         vpc);
	free(ec2_ok(ACCOUNT_A, form));
	char *body = ec2_ok(ACCOUNT_A, "Action=DescribeVpcs&Filter.1.Name="
	                               "tag:Name&Filter.1.Value.1=main%2A");
	CHECK(strstr(body, "<tagSet><item><key>Name</key><value>main net"
	                   "</value></item></tagSet>") != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeVpcs&Filter.1.Name=tag-key&"
	                         "Filter.1.Value.1=Other");
	CHECK(strstr(body, "<vpcSet></vpcSet>") != NULL);
	free(body);
	/* B cannot tag A's VPC. */
	CHECK(ec2_fails(ACCOUNT_B, form, 400, "InvalidVpcID.NotFound"));
}

static void test_describe_subnets(void)
{
	char vpc[32], sub_a[64], sub_b[64];
	vpc_id_of(ACCOUNT_A, vpc);
	char *body;
	int st = ec2_http(KEY_A, SECRET_A,
	                  "Action=DescribeSubnets&Version=2016-11-15&"
	                  "Filter.1.Name=default-for-az&Filter.1.Value.1=true",
	                  &body);
	CHECK_EQ_U64(st, 200);
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 2);
	const char *a = strstr(body, "<availabilityZone>us-east-1a<");
	const char *b = strstr(body, "<availabilityZone>us-east-1b<");
	CHECK(a && b && a < b);
	CHECK(xml_text(body, "subnetId", sub_a, sizeof(sub_a)));
	CHECK(a && xml_text(a, "subnetId", sub_b, sizeof(sub_b)));
	CHECK(api_res_id_valid("subnet", sub_a));
	CHECK(api_res_id_valid("subnet", sub_b));
	CHECK(strcmp(sub_a, sub_b) != 0);
	char want[1024];
	snprintf(want, sizeof(want),
	         "<item><subnetId>%s</subnetId><subnetArn>arn:aws:ec2:"
	         "us-east-1:" ACCOUNT_A ":subnet/%s</subnetArn><state>"
	         "available</state><ownerId>" ACCOUNT_A "</ownerId><vpcId>%s"
	         "</vpcId><cidrBlock>172.31.0.0/20</cidrBlock>"
	         "<ipv6CidrBlockAssociationSet></ipv6CidrBlockAssociationSet>"
	         "<availableIpAddressCount>4091</availableIpAddressCount>"
	         "<availabilityZone>us-east-1a</availabilityZone>"
	         "<availabilityZoneId>use1-az1</availabilityZoneId>"
	         "<defaultForAz>true</defaultForAz><mapPublicIpOnLaunch>false"
	         "</mapPublicIpOnLaunch><assignIpv6AddressOnCreation>false"
	         "</assignIpv6AddressOnCreation><tagSet></tagSet></item>",
	         sub_a, sub_a, vpc);
	CHECK(strstr(body, want) != NULL);
	CHECK(strstr(body, "<cidrBlock>172.31.16.0/20</cidrBlock>") != NULL);
	CHECK(strstr(body, "<availabilityZoneId>use1-az2</") != NULL);
	free(body);

	/* The same ids every time; another account gets others. */
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSubnets");
	CHECK(strstr(body, sub_a) && strstr(body, sub_b));
	free(body);
	body = ec2_ok(ACCOUNT_B, "Action=DescribeSubnets");
	CHECK(!strstr(body, sub_a) && !strstr(body, sub_b));
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 2);
	free(body);

	char form[512];
	static const char *const one_b[] = {
	    "Filter.1.Name=availability-zone&Filter.1.Value.1=us-east-1b",
	    "Filter.1.Name=availabilityZone&Filter.1.Value.1=us-east-1b",
	    "Filter.1.Name=cidr-block&Filter.1.Value.1=172.31.16.0/20",
	    ("Filter.1.Name=defaultForAz&Filter.1.Value.1=true&Filter.2.Name="
	     "availability-zone-id&Filter.2.Value.1=use1-az2"),
	};
	for (size_t i = 0; i < sizeof(one_b) / sizeof(one_b[0]); i++) {
		snprintf(form, sizeof(form), "Action=DescribeSubnets&%s",
		         one_b[i]);
		body = ec2_ok(ACCOUNT_A, form);
		CHECK_EQ_U64(count_of(body, "<subnetId>"), 1);
		CHECK(strstr(body, sub_b) != NULL);
		free(body);
	}
	snprintf(form, sizeof(form),
	         "Action=DescribeSubnets&Filter.1.Name=vpc-id&Filter.1.Value.1="
	         "%s&Filter.2.Name=state&Filter.2.Value.1=available",
	         vpc);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 2);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSubnets&Filter.1.Name="
	                         "default-for-az&Filter.1.Value.1=false");
	CHECK(strstr(body, "<subnetSet></subnetSet>") != NULL);
	free(body);
	snprintf(form, sizeof(form), "Action=DescribeSubnets&SubnetId.0=%s",
	         sub_b);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 1);
	free(body);
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSubnets&SubnetId.1=subnet-1234abcd",
	                400, "InvalidSubnetID.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeSubnets&SubnetId.1=sub-1",
	                400, "InvalidSubnetID.Malformed"));
	snprintf(form, sizeof(form), "Action=DescribeSubnets&SubnetId.1=%s",
	         sub_a);
	CHECK(ec2_fails(ACCOUNT_B, form, 400, "InvalidSubnetID.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSubnets&Filter.1.Name=bogus&"
	                "Filter.1.Value.1=1",
	                400, "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeSubnets&DryRun=true", 412,
	                "DryRunOperation"));

	/* Tags on a default subnet. */
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=tier&"
	         "Tag.1.Value=web",
	         sub_a);
	free(ec2_ok(ACCOUNT_A, form));
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSubnets&Filter.1.Name="
	                         "tag:tier&Filter.1.Value.1=web");
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 1);
	CHECK(strstr(body, sub_a) != NULL);
	CHECK(strstr(body, "<tagSet><item><key>tier</key><value>web</value>"
	                   "</item></tagSet>") != NULL);
	free(body);
}

static int no_zones(void *arg,
                    int (*cb)(void *ctx, const char *zone, unsigned alive,
                              unsigned hosts),
                    void *ctx)
{
	(void)arg;
	(void)cb;
	(void)ctx;
	return 0;
}

static int many_zones(void *arg,
                      int (*cb)(void *ctx, const char *zone, unsigned alive,
                                unsigned hosts),
                      void *ctx)
{
	(void)arg;
	char name[32];
	/* Out of order, one twice: 20 distinct zones. */
	for (int i = 19; i >= 0; i--) {
		snprintf(name, sizeof(name), "zone-%02d", i);
		cb(ctx, name, 1, 1);
		if (i == 7)
			cb(ctx, name, 1, 1);
	}
	return 0;
}

static void test_zone_counts(void)
{
	int (*saved)(void *, int (*)(void *, const char *, unsigned, unsigned),
	             void *) = h.cloud.zones;
	h.cloud.zones = no_zones;
	char *body = ec2_ok(ACCOUNT_A, "Action=DescribeSubnets");
	CHECK(strstr(body, "<subnetSet></subnetSet>") != NULL);
	free(body);
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSubnets&Filter.1.Name=bogus&"
	                "Filter.1.Value.1=1",
	                400, "InvalidParameterValue"));
	/* Sixteen /20s fill the /16: the first sixteen zones by name. */
	h.cloud.zones = many_zones;
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSubnets");
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 16);
	CHECK(strstr(body, "<availabilityZone>zone-00</availabilityZone>") !=
	      NULL);
	CHECK(strstr(body, "<cidrBlock>172.31.240.0/20</cidrBlock><ipv6Cidr"
	                   "BlockAssociationSet></ipv6CidrBlockAssociationSet>"
	                   "<availableIpAddressCount>4091"
	                   "</availableIpAddressCount><availabilityZone>"
	                   "zone-15<") != NULL);
	CHECK(strstr(body, "zone-16") == NULL);
	CHECK(strstr(body, "<availabilityZoneId>use1-zone-00<") != NULL);
	/* Paging by zone. */
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSubnets&MaxResults=10");
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 10);
	char token[256], form[512];
	CHECK(xml_text(body, "nextToken", token, sizeof(token)));
	free(body);
	snprintf(form, sizeof(form),
	         "Action=DescribeSubnets&MaxResults=10&NextToken=%s", token);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK_EQ_U64(count_of(body, "<subnetId>"), 6);
	CHECK(strstr(body, "zone-10<") && !strstr(body, "zone-09<"));
	CHECK(strstr(body, "<nextToken>") == NULL);
	free(body);
	h.cloud.zones = saved;
}

int main(void)
{
	harness_start();
	RUN(test_describe_vpcs_http);
	RUN(test_describe_vpcs_filters);
	RUN(test_vpc_tags);
	RUN(test_describe_subnets);
	RUN(test_zone_counts);
	harness_stop();
	return check_summary();
}
