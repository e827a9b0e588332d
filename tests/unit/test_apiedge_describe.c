/*
 * The describes that read no records of their own, through a real edge with
 * SigV4-signed requests: availability zones (ids, states from live hosts,
 * filters), account attributes, instance types (the table, filters,
 * paging), and the empty answers of DescribeInstances,
 * DescribeInstanceStatus, DescribeAddresses and DescribeVolumes with EC2's
 * id checks.
 */
#include "edge_client.h"

/* Two zones named after the region, one not; one with no live host. */
static int zones(void *arg,
                 int (*cb)(void *ctx, const char *zone, unsigned alive,
                           unsigned hosts),
                 void *ctx)
{
	(void)arg;
	int r = cb(ctx, "us-east-1b", 0, 2);
	if (!r)
		r = cb(ctx, "us-east-1a", 3, 3);
	if (!r)
		r = cb(ctx, "rack-7", 1, 1);
	return r;
}

static void test_zones(void)
{
	char *body;
	int st = ec_do(&body, "DescribeAvailabilityZones", NULL);
	ec_check_ok(st, body, "DescribeAvailabilityZones");
	CHECK(
	    strstr(
	        body,
	        "<availabilityZoneInfo><item><optInStatus>opt-in-not-required"
	        "</optInStatus><messageSet></messageSet><regionName>us-east-1"
	        "</regionName><zoneName>rack-7</zoneName><zoneId>use1-rack-7"
	        "</zoneId><groupName>us-east-1</groupName><networkBorderGroup>"
	        "us-east-1</networkBorderGroup><zoneType>availability-zone"
	        "</zoneType><zoneState>available</zoneState></item><item>"
	        "<optInStatus>opt-in-not-required</optInStatus><messageSet>"
	        "</messageSet><regionName>us-east-1</regionName><zoneName>"
	        "us-east-1a</zoneName><zoneId>use1-az1</zoneId>") != NULL);
	CHECK(strstr(body, "<zoneName>us-east-1b</zoneName><zoneId>use1-az2"
	                   "</zoneId>") != NULL);
	CHECK(strstr(body, "<zoneState>unavailable</zoneState></item>"
	                   "</availabilityZoneInfo>") != NULL);
	free(body);

	static const struct {
		const char *p1, *v1, *p2, *v2;
		const char *want; /* zone names shown, in order */
	} cases[] = {
	    {"Filter.1.Name", "state", "Filter.1.Value.1", "available",
	     "rack-7 us-east-1a"},
	    {"Filter.1.Name", "region-name", "Filter.1.Value", "us-east-1",
	     "rack-7 us-east-1a us-east-1b"},
	    {"Filter.1.Name", "zone-name", "Filter.1.Value.1", "us-east-1?",
	     "us-east-1a us-east-1b"},
	    {"Filter.1.Name", "zone-id", "Filter.1.Value.1", "use1-az2",
	     "us-east-1b"},
	    {"Filter.1.Name", "zone-type", "Filter.1.Value.1", "local-zone",
	     ""},
	    {"ZoneName.1", "us-east-1b", "ZoneName.2", "rack-7",
	     "rack-7 us-east-1b"},
	    {"ZoneId.0", "use1-az1", "AllAvailabilityZones", "true",
	     "us-east-1a"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		st = ec_do(&body, "DescribeAvailabilityZones", cases[i].p1,
		           cases[i].v1, cases[i].p2, cases[i].v2, NULL);
		ec_check_ok(st, body, "DescribeAvailabilityZones");
		char got[256] = "", name[64];
		for (const char *p = strstr(body, "<zoneName>"); p;
		     p = strstr(p + 1, "<zoneName>")) {
			ec_text(p, "zoneName", name, sizeof(name));
			snprintf(got + strlen(got), sizeof(got) - strlen(got),
			         "%s%s", got[0] ? " " : "", name);
		}
		CHECK_STR(got, cases[i].want);
		free(body);
	}
	st = ec_do(&body, "DescribeAvailabilityZones", "ZoneName.1",
	           "us-east-1z", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	CHECK(strstr(body, "[us-east-1z]") != NULL);
	free(body);
	st = ec_do(&body, "DescribeAvailabilityZones", "ZoneId.1", "use1-az9",
	           NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "DescribeAvailabilityZones", "Filter.1.Name", "size",
	           "Filter.1.Value.1", "x", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "DescribeAvailabilityZones", "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
}

static void test_account_attributes(void)
{
	char *body, vpc[32], want[512];
	struct api_auth auth = {0};
	snprintf(auth.key.account_id, sizeof(auth.key.account_id), "%s",
	         ACCOUNT_A);
	struct api_call call = {.auth = &auth};
	api_default_vpc_id(&call, vpc);
	CHECK(strncmp(vpc, "vpc-", 4) == 0);

	int st = ec_do(&body, "DescribeAccountAttributes", NULL);
	ec_check_ok(st, body, "DescribeAccountAttributes");
	snprintf(want, sizeof(want),
	         "<accountAttributeSet><item><attributeName>"
	         "supported-platforms</attributeName><attributeValueSet><item>"
	         "<attributeValue>VPC</attributeValue></item>"
	         "</attributeValueSet></item><item><attributeName>default-vpc"
	         "</attributeName><attributeValueSet><item><attributeValue>%s"
	         "</attributeValue></item></attributeValueSet></item>",
	         vpc);
	CHECK(strstr(body, want) != NULL);
	static const char *const rest[][2] = {
	    {"max-instances", "20"},
	    {"vpc-max-security-groups-per-interface", "5"},
	    {"max-elastic-ips", "5"},
	    {"vpc-max-elastic-ips", "5"},
	};
	for (size_t i = 0; i < 4; i++) {
		snprintf(want, sizeof(want),
		         "<item><attributeName>%s</attributeName>"
		         "<attributeValueSet><item><attributeValue>%s"
		         "</attributeValue></item></attributeValueSet></item>",
		         rest[i][0], rest[i][1]);
		CHECK(strstr(body, want) != NULL);
	}
	CHECK_EQ_U64(ec_count(body, "<attributeName>"), 6);
	free(body);

	st = ec_do(&body, "DescribeAccountAttributes", "AttributeName.1",
	           "default-vpc", NULL);
	CHECK_EQ_U64(ec_count(body, "<attributeName>"), 1);
	CHECK(strstr(body, vpc) != NULL);
	free(body);
	/* Another account has another default VPC. */
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeAccountAttributes",
	              "AttributeName.1", "default-vpc", NULL);
	ec_check_ok(st, body, "DescribeAccountAttributes");
	CHECK(strstr(body, vpc) == NULL);
	free(body);
	st = ec_do(&body, "DescribeAccountAttributes", "AttributeName.1",
	           "max-cats", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
}

static void test_instance_type_table(void)
{
	size_t n;
	const struct api_instance_type *t = api_instance_types(&n);
	CHECK(n >= 20);
	for (size_t i = 1; i < n; i++)
		CHECK(strcmp(t[i - 1].name, t[i].name) < 0);
	for (size_t i = 0; i < n; i++) {
		CHECK(t[i].cores * t[i].threads_per_core == t[i].vcpus);
		CHECK(api_instance_type_find(t[i].name) == &t[i]);
	}
	static const struct {
		const char *name;
		unsigned vcpus, mib;
	} sizes[] = {
	    {"t2.nano", 1, 512},   {"t2.micro", 1, 1024},
	    {"t2.small", 1, 2048}, {"t2.medium", 2, 4096},
	    {"t3.micro", 2, 1024}, {"t3.small", 2, 2048},
	    {"m5.large", 2, 8192}, {"c5.large", 2, 4096},
	    {"m1.small", 1, 1740},
	};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const struct api_instance_type *f =
		    api_instance_type_find(sizes[i].name);
		CHECK(f && f->vcpus == sizes[i].vcpus &&
		      f->mib == sizes[i].mib);
	}
	CHECK(api_instance_type_find("t9.huge") == NULL);
	CHECK(api_instance_type_find("") == NULL);
}

static void test_instance_types(void)
{
	char *body;
	int st = ec_do(&body, "DescribeInstanceTypes", "InstanceType.1",
	               "t2.micro", NULL);
	ec_check_ok(st, body, "DescribeInstanceTypes");
	CHECK(
	    strstr(
	        body,
	        "<instanceTypeSet><item><instanceType>t2.micro</instanceType>"
	        "<currentGeneration>true</currentGeneration><freeTierEligible>"
	        "true</freeTierEligible><supportedUsageClasses><item>on-demand"
	        "</item></supportedUsageClasses><supportedRootDeviceTypes>"
	        "<item>ebs</item></supportedRootDeviceTypes>"
	        "<supportedVirtualizationTypes><item>hvm</item>"
	        "</supportedVirtualizationTypes><bareMetal>false</bareMetal>"
	        "<hypervisor>xen</hypervisor><processorInfo>"
	        "<supportedArchitectures><item>i386</item><item>x86_64</item>"
	        "</supportedArchitectures></processorInfo><vCpuInfo>"
	        "<defaultVCpus>1</defaultVCpus><defaultCores>1</defaultCores>"
	        "<defaultThreadsPerCore>1</defaultThreadsPerCore></vCpuInfo>"
	        "<memoryInfo><sizeInMiB>1024</sizeInMiB></memoryInfo>") !=
	    NULL);
	CHECK(strstr(body, "</item></instanceTypeSet>"
	                   "</DescribeInstanceTypesResponse>") != NULL);
	free(body);

	size_t n;
	api_instance_types(&n);
	st = ec_do(&body, "DescribeInstanceTypes", NULL);
	CHECK_EQ_U64(ec_count(body, "<instanceType>"), n);
	CHECK(strstr(body, "<nextToken>") == NULL);
	free(body);

	/* Pages of 5 walk the whole table once, in order. */
	char token[256] = "", last[64] = "";
	size_t seen = 0, pages = 0;
	do {
		st = token[0]
		         ? ec_do(&body, "DescribeInstanceTypes", "MaxResults",
		                 "5", "NextToken", token, NULL)
		         : ec_do(&body, "DescribeInstanceTypes", "MaxResults",
		                 "5", NULL);
		ec_check_ok(st, body, "DescribeInstanceTypes");
		for (const char *p = strstr(body, "<instanceType>"); p;
		     p = strstr(p + 1, "<instanceType>")) {
			char name[64];
			ec_text(p, "instanceType", name, sizeof(name));
			CHECK(strcmp(last, name) < 0);
			snprintf(last, sizeof(last), "%s", name);
			seen++;
		}
		if (!ec_text(body, "nextToken", token, sizeof(token)))
			token[0] = 0;
		free(body);
		pages++;
	} while (token[0] && pages < 100);
	CHECK_EQ_U64(seen, n);
	CHECK_EQ_U64(pages, (n + 4) / 5);

	static const struct {
		const char *name, *value;
		const char *want; /* types shown */
	} cases[] = {
	    {"vcpu-info.default-vcpus", "16", "c5.4xlarge m5.4xlarge"},
	    {"memory-info.size-in-mib", "512", "t2.nano t3.nano"},
	    {"current-generation", "false", "m1.small t1.micro"},
	    {"instance-type", "c5.*",
	     "c5.2xlarge c5.4xlarge c5.large "
	     "c5.xlarge"},
	    {"free-tier-eligible", "true", "t2.micro t3.micro"},
	    {"processor-info.supported-architecture", "arm64", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		st = ec_do(&body, "DescribeInstanceTypes", "Filter.1.Name",
		           cases[i].name, "Filter.1.Value.1", cases[i].value,
		           NULL);
		ec_check_ok(st, body, "DescribeInstanceTypes");
		char got[512] = "", name[64];
		for (const char *p = strstr(body, "<instanceType>"); p;
		     p = strstr(p + 1, "<instanceType>")) {
			ec_text(p, "instanceType", name, sizeof(name));
			snprintf(got + strlen(got), sizeof(got) - strlen(got),
			         "%s%s", got[0] ? " " : "", name);
		}
		CHECK_STR(got, cases[i].want);
		free(body);
	}
	st = ec_do(&body, "DescribeInstanceTypes", "InstanceType.1", "t2.micro",
	           "InstanceType.2", "t9.huge", NULL);
	ec_check_error(st, body, 400, "InvalidInstanceType");
	CHECK(strstr(body, "[t9.huge]") != NULL);
	free(body);
	const char *bad[][2] = {{"MaxResults", "4"},
	                        {"MaxResults", "101"},
	                        {"Filter.1.Name", "color"}};
	for (size_t i = 0; i < 3; i++) {
		st = ec_do(&body, "DescribeInstanceTypes", bad[i][0], bad[i][1],
		           "Filter.1.Value.1", "x", NULL);
		ec_check_error(st, body, 400, "InvalidParameterValue");
		free(body);
	}
}

static void test_empty_describes(void)
{
	static const struct {
		const char *action, *set;
	} shapes[] = {
	    {"DescribeInstances", "reservationSet"},
	    {"DescribeInstanceStatus", "instanceStatusSet"},
	    {"DescribeAddresses", "addressesSet"},
	    {"DescribeVolumes", "volumeSet"},
	};
	for (size_t i = 0; i < 4; i++) {
		char *body, want[256];
		int st = ec_do(&body, shapes[i].action, "Filter.1.Name",
		               "tag:Name", "Filter.1.Value.1", "web", NULL);
		ec_check_ok(st, body, shapes[i].action);
		snprintf(want, sizeof(want),
		         "</requestId><%s></%s></%sResponse>", shapes[i].set,
		         shapes[i].set, shapes[i].action);
		CHECK(strstr(body, want) != NULL);
		free(body);
		st = ec_do(&body, shapes[i].action, "DryRun", "true", NULL);
		ec_check_error(st, body, 412, "DryRunOperation");
		free(body);
	}
	static const struct {
		const char *action, *param, *id, *code, *message;
	} ids[] = {
	    {"DescribeInstances", "InstanceId.1", "i-123",
	     "InvalidInstanceID.Malformed", "Invalid id: &quot;i-123&quot;"},
	    {"DescribeInstances", "InstanceId.1", "i-0123456789ABCDEF0",
	     "InvalidInstanceID.Malformed", NULL},
	    {"DescribeInstances", "InstanceId.1", "i-0123456789abcdef0",
	     "InvalidInstanceID.NotFound",
	     "The instance ID &apos;i-0123456789abcdef0&apos; does not exist"},
	    {"DescribeInstanceStatus", "InstanceId.0", "i-12345678",
	     "InvalidInstanceID.NotFound", NULL},
	    {"DescribeInstanceStatus", "InstanceId.1", "vol-12345678",
	     "InvalidInstanceID.Malformed", NULL},
	    {"DescribeVolumes", "VolumeId.1", "vol-12345678",
	     "InvalidVolume.NotFound", NULL},
	    {"DescribeVolumes", "VolumeId.1", "vol-1",
	     "InvalidVolume.Malformed", NULL},
	    {"DescribeAddresses", "PublicIp.1", "203.0.113.9",
	     "InvalidAddress.NotFound", NULL},
	    {"DescribeAddresses", "AllocationId.1", "eipalloc-12345678",
	     "InvalidAllocationID.NotFound", NULL},
	    {"DescribeAddresses", "AllocationId.1", "alloc-1",
	     "InvalidAllocationID.Malformed", NULL},
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char *body;
		int st =
		    ec_do(&body, ids[i].action, ids[i].param, ids[i].id, NULL);
		ec_check_error(st, body, 400, ids[i].code);
		if (ids[i].message)
			CHECK(strstr(body, ids[i].message) != NULL);
		free(body);
	}
	char *body;
	int st = ec_do(&body, "DescribeInstances", "InstanceId.1", "i-12345678",
	               "InstanceId.2", "i-87654321", NULL);
	ec_check_error(st, body, 400, "InvalidInstanceID.NotFound");
	CHECK(strstr(body, "The instance IDs &apos;i-12345678, i-87654321"
	                   "&apos; do not exist") != NULL);
	free(body);
	st = ec_do(&body, "DescribeInstances", "MaxResults", "2", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "DescribeInstanceStatus", "IncludeAllInstances",
	           "maybe", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
}

int main(void)
{
	ec_zones = zones;
	ec_start("us-east-1");
	RUN(test_zones);
	RUN(test_account_attributes);
	RUN(test_instance_type_table);
	RUN(test_instance_types);
	RUN(test_empty_describes);
	ec_stop();
	return check_summary();
}
