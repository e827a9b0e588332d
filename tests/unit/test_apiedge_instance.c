/*
 * The instance actions through a real edge over the fake host of
 * fake_cloud.h, whose answers come later from the loop as the real
 * cloud's do: RunInstances (every item field, tags, groups, key, user
 * data, capacity and MinCount, ClientToken), DescribeInstances (filters,
 * ids, the hour terminated instances stay), DescribeInstanceStatus,
 * Stop/Start/Reboot/Terminate state pairs and refusals, GetConsoleOutput,
 * the attributes, DryRun, account isolation, and a call still waiting for
 * the cloud when the edge stops.
 */
#include "edge_client.h"

#include "instance.h"

static char image_id[32];
static char group_id[32];

/* ec_do, then the transitions finished (no request is in flight). */
static void settle(void)
{
	fake_host_settle(&ec_fake);
}

static void setup(void)
{
	char *body;
	int st = ec_do(&body, "RegisterImage", "Name", "debian-12", NULL);
	ec_check_ok(st, body, "RegisterImage");
	CHECK(ec_text(body, "imageId", image_id, sizeof(image_id)));
	free(body);
	st = ec_do(&body, "CreateKeyPair", "KeyName", "k1", "KeyType",
	           "ed25519", NULL);
	ec_check_ok(st, body, "CreateKeyPair");
	free(body);
	st = ec_do(&body, "CreateSecurityGroup", "GroupName", "web",
	           "GroupDescription", "web servers", NULL);
	ec_check_ok(st, body, "CreateSecurityGroup");
	CHECK(ec_text(body, "groupId", group_id, sizeof(group_id)));
	free(body);
}

/* The ids of the instancesSet items of body, in order. */
static size_t instance_ids(const char *body, char ids[][32], size_t max)
{
	size_t n = 0;
	for (const char *p = strstr(body, "<item><instanceId>"); p && n < max;
	     p = strstr(p + 1, "<item><instanceId>"))
		if (ec_text(p, "instanceId", ids[n], 32))
			n++;
	return n;
}

static char web_ids[3][32];
static char web_reservation[32];

static int run_web(char **body, const char *token)
{
	return ec_do(body, "RunInstances", "ImageId", image_id, "MinCount", "3",
	             "MaxCount", "3", "InstanceType", "t3.micro", "KeyName",
	             "k1", "SecurityGroup.1", "web", "UserData",
	             "IyEvYmluL3NoCmVjaG8gaGkK", "Placement.AvailabilityZone",
	             "us-east-1a", "TagSpecification.1.ResourceType",
	             "instance", "TagSpecification.1.Tag.1.Key", "Name",
	             "TagSpecification.1.Tag.1.Value", "web<1>",
	             "MetadataOptions.HttpTokens", "required", "ClientToken",
	             token, NULL);
}

static void test_run_describe(void)
{
	char *body, text[256];
	unsigned launches = ec_fake.launches;
	int st = run_web(&body, "tok-1");
	ec_check_ok(st, body, "RunInstances");
	CHECK_EQ_U64(ec_fake.launches - launches, 3);
	CHECK(ec_text(body, "reservationId", web_reservation,
	              sizeof(web_reservation)));
	CHECK(api_res_id_valid("r", web_reservation) &&
	      strlen(web_reservation) == 19);
	CHECK(strstr(body, "</requestId><reservationId>r-") != NULL);
	snprintf(text, sizeof(text),
	         "<ownerId>%s</ownerId><groupSet><item>"
	         "<groupId>%s</groupId><groupName>web"
	         "</groupName></item></groupSet>"
	         "<instancesSet><item><instanceId>i-",
	         ACCOUNT_A, group_id);
	CHECK(strstr(body, text) != NULL);
	CHECK_EQ_U64(instance_ids(body, web_ids, 3), 3);
	for (int i = 0; i < 3; i++)
		CHECK(api_res_id_valid("i", web_ids[i]) &&
		      strlen(web_ids[i]) == 19);
	CHECK_EQ_U64(ec_count(body, "<instanceState><code>0</code><name>"
	                            "pending</name></instanceState>"),
	             3);
	CHECK_EQ_U64(ec_count(body, "<tagSet><item><key>Name</key><value>"
	                            "web&lt;1&gt;</value></item></tagSet>"),
	             3);
	CHECK_EQ_U64(ec_count(body, "<httpTokens>required</httpTokens>"), 3);
	CHECK_EQ_U64(ec_count(body, "<clientToken>tok-1</clientToken>"), 3);
	free(body);

	settle();
	st = ec_do(&body, "DescribeInstances", NULL);
	ec_check_ok(st, body, "DescribeInstances");
	CHECK_EQ_U64(ec_count(body, "<reservationId>"), 1);
	CHECK_EQ_U64(ec_count(body, "<instanceState><code>16</code><name>"
	                            "running</name></instanceState>"),
	             3);
	/* Launch order within the reservation. */
	char ids[3][32];
	CHECK_EQ_U64(instance_ids(body, ids, 3), 3);
	for (int i = 0; i < 3; i++)
		CHECK_STR(ids[i], web_ids[i]);
	/* The first item, field by field in EC2's order. */
	const char *item = strstr(body, "<item><instanceId>");
	CHECK(item != NULL);
	char ip[32], dns[96], want[2048], when[64], subnet[32], vpc[32];
	CHECK(ec_text(item, "privateIpAddress", ip, sizeof(ip)));
	CHECK(strncmp(ip, "172.31.0.", 9) == 0);
	CHECK(ec_text(item, "privateDnsName", dns, sizeof(dns)));
	unsigned a, b, c, d;
	CHECK(sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) == 4);
	snprintf(want, sizeof(want),
	         "ip-%u-%u-%u-%u.us-east-1.compute.internal", a, b, c, d);
	CHECK_STR(dns, want);
	CHECK(ec_text(item, "launchTime", when, sizeof(when)));
	CHECK(strlen(when) == 24 && when[10] == 'T' && when[23] == 'Z');
	CHECK(ec_text(item, "subnetId", subnet, sizeof(subnet)));
	CHECK(ec_text(item, "vpcId", vpc, sizeof(vpc)));
	CHECK(api_res_id_valid("subnet", subnet));
	CHECK(api_res_id_valid("vpc", vpc));
	snprintf(want, sizeof(want),
	         "<item><instanceId>%s</instanceId><imageId>%s</imageId>"
	         "<instanceState><code>16</code><name>running</name>"
	         "</instanceState><privateDnsName>%s</privateDnsName>"
	         "<dnsName></dnsName><reason></reason><keyName>k1</keyName>"
	         "<amiLaunchIndex>0</amiLaunchIndex><productCodes>"
	         "</productCodes><instanceType>t3.micro</instanceType>"
	         "<launchTime>%s</launchTime><placement><availabilityZone>"
	         "us-east-1a</availabilityZone><groupName></groupName>"
	         "<tenancy>default</tenancy></placement><monitoring><state>"
	         "disabled</state></monitoring><subnetId>%s</subnetId>"
	         "<vpcId>%s</vpcId><privateIpAddress>%s</privateIpAddress>"
	         "<sourceDestCheck>true</sourceDestCheck><groupSet><item>"
	         "<groupId>%s</groupId><groupName>web</groupName></item>"
	         "</groupSet><architecture>x86_64</architecture>"
	         "<rootDeviceType>instance-store</rootDeviceType>"
	         "<rootDeviceName>/dev/vda</rootDeviceName>"
	         "<blockDeviceMapping></blockDeviceMapping>"
	         "<virtualizationType>hvm</virtualizationType><clientToken>"
	         "tok-1</clientToken><tagSet><item><key>Name</key><value>"
	         "web&lt;1&gt;</value></item></tagSet><hypervisor>xen"
	         "</hypervisor><networkInterfaceSet><item>"
	         "<networkInterfaceId>eni-",
	         web_ids[0], image_id, dns, when, subnet, vpc, ip, group_id);
	if (strncmp(item, want, strlen(want)) != 0)
		fprintf(stderr, "want %s\ngot  %.1500s\n", want, item);
	CHECK(strncmp(item, want, strlen(want)) == 0);
	CHECK(strstr(item, "<macAddress>02:00:00:00:") != NULL);
	CHECK(strstr(item, "<cpuOptions><coreCount>1</coreCount>"
	                   "<threadsPerCore>2</threadsPerCore></cpuOptions>") !=
	      NULL);
	CHECK(strstr(item,
	             "<metadataOptions><state>applied</state>"
	             "<httpTokens>required</httpTokens>"
	             "<httpPutResponseHopLimit>1</httpPutResponseHopLimit>"
	             "<httpEndpoint>enabled</httpEndpoint>") != NULL);
	free(body);

	/* The subnet is the zone's default subnet. */
	st = ec_do(&body, "DescribeSubnets", "SubnetId.1", subnet, NULL);
	ec_check_ok(st, body, "DescribeSubnets");
	CHECK(strstr(body, "<availabilityZone>us-east-1a</availabilityZone>"));
	free(body);

	/* The instance's record: what the host was asked for. */
	uint8_t *rec;
	size_t len;
	char rid[64];
	struct mc_instance in;
	snprintf(rid, sizeof(rid), "%s:%s", ACCOUNT_A, web_ids[1]);
	CHECK(fake_get(&ec_fake, MC_INSTANCE_KIND, rid, &rec, &len) == 0);
	CHECK(mc_instance_unpack(rec, len, &in) == 0);
	free(rec);
	CHECK_EQ_U64(in.launch_index, 1);
	CHECK_EQ_U64(in.user_data_len, 18);
	CHECK(in.user_data &&
	      memcmp(in.user_data, "#!/bin/sh\necho hi\n", 18) == 0);
	CHECK(in.key_material &&
	      strncmp(in.key_material, "ssh-ed25519 AAAA", 16) == 0);
	CHECK_EQ_U64(in.vcpu, 2);
	CHECK_EQ_U64(in.mem_mib, 1024);
	CHECK(in.imds_tokens_required);
	CHECK_STR(in.reservation, web_reservation);
	mc_instance_clear(&in);
}

static void test_client_token(void)
{
	char *body, res[32], ids[3][32];
	unsigned launches = ec_fake.launches;
	int st = run_web(&body, "tok-1");
	ec_check_ok(st, body, "RunInstances");
	CHECK_EQ_U64(ec_fake.launches, launches);
	CHECK(ec_text(body, "reservationId", res, sizeof(res)));
	CHECK_STR(res, web_reservation);
	CHECK_EQ_U64(instance_ids(body, ids, 3), 3);
	for (int i = 0; i < 3; i++)
		CHECK_STR(ids[i], web_ids[i]);
	free(body);
	/* The same token for another request. */
	st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount", "1",
	           "MaxCount", "1", "ClientToken", "tok-1", NULL);
	ec_check_error(st, body, 400, "IdempotentParameterMismatch");
	free(body);
	CHECK_EQ_U64(ec_fake.launches, launches);
}

static size_t describe_count(const char *name, const char *value)
{
	char *body;
	int st = ec_do(&body, "DescribeInstances", "Filter.1.Name", name,
	               "Filter.1.Value.1", value, NULL);
	ec_check_ok(st, body, "DescribeInstances");
	size_t n = ec_count(body, "<item><instanceId>");
	free(body);
	return n;
}

static void test_filters(void)
{
	CHECK_EQ_U64(describe_count("instance-state-name", "running"), 3);
	CHECK_EQ_U64(describe_count("instance-state-code", "16"), 3);
	CHECK_EQ_U64(describe_count("instance-state-name", "stopped"), 0);
	CHECK_EQ_U64(describe_count("tag:Name", "web<*"), 3);
	CHECK_EQ_U64(describe_count("tag-key", "Name"), 3);
	CHECK_EQ_U64(describe_count("tag:Name", "db"), 0);
	CHECK_EQ_U64(describe_count("instance.group-name", "web"), 3);
	CHECK_EQ_U64(describe_count("group-id", group_id), 3);
	CHECK_EQ_U64(describe_count("instance.group-name", "default"), 0);
	CHECK_EQ_U64(describe_count("availability-zone", "us-east-1b"), 0);
	CHECK_EQ_U64(describe_count("availability-zone", "us-east-1a"), 3);
	CHECK_EQ_U64(describe_count("key-name", "k1"), 3);
	CHECK_EQ_U64(describe_count("instance-type", "t3.micro"), 3);
	CHECK_EQ_U64(describe_count("image-id", image_id), 3);
	CHECK_EQ_U64(describe_count("reservation-id", web_reservation), 3);
	CHECK_EQ_U64(describe_count("launch-index", "2"), 1);
	CHECK_EQ_U64(describe_count("instance-id", web_ids[1]), 1);
	CHECK_EQ_U64(describe_count("client-token", "tok-1"), 3);
	CHECK_EQ_U64(describe_count("owner-id", ACCOUNT_A), 3);
	CHECK_EQ_U64(describe_count("architecture", "x86_64"), 3);
	CHECK_EQ_U64(describe_count("private-dns-name", "ip-172-31-*"), 3);
	CHECK_EQ_U64(describe_count("private-ip-address", "172.31.0.*"), 3);
	char *body;
	int st = ec_do(&body, "DescribeInstances", "Filter.1.Name", "colour",
	               "Filter.1.Value.1", "red", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	/* Named ids and a filter together. */
	st = ec_do(&body, "DescribeInstances", "InstanceId.1", web_ids[0],
	           "InstanceId.2", web_ids[2], "Filter.1.Name", "launch-index",
	           "Filter.1.Value.1", "2", NULL);
	ec_check_ok(st, body, "DescribeInstances");
	char ids[3][32];
	CHECK_EQ_U64(instance_ids(body, ids, 3), 1);
	CHECK_STR(ids[0], web_ids[2]);
	free(body);
	/* Another account sees none of them. */
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeInstances", NULL);
	ec_check_ok(st, body, "DescribeInstances");
	CHECK(strstr(body, "<reservationSet></reservationSet>") != NULL);
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeInstances",
	              "InstanceId.1", web_ids[0], NULL);
	ec_check_error(st, body, 400, "InvalidInstanceID.NotFound");
	free(body);
}

static void test_run_errors(void)
{
	static const struct {
		const char *name, *value, *code;
	} bad[] = {
	    {"ImageId", "ami-1", "InvalidAMIID.Malformed"},
	    {"ImageId", "ami-0123456789abcdef0", "InvalidAMIID.NotFound"},
	    {"InstanceType", "t9.huge", "InvalidParameterValue"},
	    {"KeyName", "nope", "InvalidKeyPair.NotFound"},
	    {"SecurityGroup.1", "nope", "InvalidGroup.NotFound"},
	    {"SecurityGroupId.1", "sg-0123456789abcdef0",
	     "InvalidGroup.NotFound"},
	    {"Placement.AvailabilityZone", "mars-1a", "InvalidParameterValue"},
	    {"UserData", "!!notbase64", "InvalidParameterValue"},
	    {"MetadataOptions.HttpTokens", "maybe", "InvalidParameterValue"},
	    {"MaxCount", "21", "InvalidParameterValue"},
	    {"SubnetId", "subnet-0123456789abcdef0",
	     "InvalidSubnetID.NotFound"},
	};
	unsigned launches = ec_fake.launches;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *body;
		bool image = strcmp(bad[i].name, "ImageId") == 0;
		bool max = strcmp(bad[i].name, "MaxCount") == 0;
		int st = ec_do(&body, "RunInstances", "ImageId",
		               image ? bad[i].value : image_id, "MinCount", "1",
		               "MaxCount", max ? bad[i].value : "1",
		               image || max ? "DryRun" : bad[i].name,
		               image || max ? "false" : bad[i].value, NULL);
		ec_check_error(st, body, 400, bad[i].code);
		free(body);
	}
	char *body;
	int st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount",
	               "2", "MaxCount", "1", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "RunInstances", "ImageId", image_id, NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	/* 16 KiB of user data at most. */
	size_t big = 16 * 1024 + 1;
	uint8_t *raw = calloc(1, big);
	char *b64 = mc_b64_encode(raw, big);
	st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount", "1",
	           "MaxCount", "1", "UserData", b64, NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	free(b64);
	free(raw);
	st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount", "1",
	           "MaxCount", "1", "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	CHECK_EQ_U64(ec_fake.launches, launches);
	/* Account B cannot launch A's private image. */
	st = ec_do_as(KEY_B, SECRET_B, &body, "RunInstances", "ImageId",
	              image_id, "MinCount", "1", "MaxCount", "1", NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.NotFound");
	free(body);
}

static void test_capacity(void)
{
	char *body;
	ec_fake.capacity = fake_host_used(&ec_fake) + 2;
	unsigned ops = ec_fake.ops;
	int st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount",
	               "3", "MaxCount", "3", "ClientToken", "tok-cap", NULL);
	ec_check_error(st, body, 500, "InsufficientInstanceCapacity");
	CHECK(strstr(body, "2 of the 3") != NULL);
	CHECK(strstr(body, "has no room for a m1.small") != NULL);
	free(body);
	/* The two admitted were terminated again before the answer. */
	CHECK_EQ_U64(ec_fake.ops - ops, 2);
	settle();
	CHECK_EQ_U64(describe_count("instance-state-name", "running"), 3);
	CHECK_EQ_U64(describe_count("instance-type", "m1.small"), 2);
	CHECK_EQ_U64(describe_count("instance-state-name", "terminated"), 2);
	/* MinCount 1: as many as fit. The token failed above: usable. */
	st = ec_do(&body, "RunInstances", "ImageId", image_id, "MinCount", "1",
	           "MaxCount", "3", "ClientToken", "tok-cap", NULL);
	ec_check_ok(st, body, "RunInstances");
	CHECK_EQ_U64(ec_count(body, "<item><instanceId>"), 2);
	CHECK(strstr(body, "<instanceType>m1.small</instanceType>") != NULL);
	free(body);
	ec_fake.capacity = 1000;
	settle();
}

/* Calls action on the ids; checks the one item's states. */
static void state_pair(const char *action, const char *id, int cur, int prev)
{
	char *body, want[512];
	int st = ec_do(&body, action, "InstanceId.1", id, NULL);
	ec_check_ok(st, body, action);
	snprintf(want, sizeof(want),
	         "<instancesSet><item><instanceId>%s</instanceId>"
	         "<currentState><code>%d</code><name>%s</name></currentState>"
	         "<previousState><code>%d</code><name>%s</name>"
	         "</previousState></item></instancesSet>",
	         id, cur, mc_instance_state_name(cur), prev,
	         mc_instance_state_name(prev));
	if (!strstr(body, want))
		fprintf(stderr, "want %s\ngot %s\n", want, body);
	CHECK(strstr(body, want) != NULL);
	free(body);
}

static void fails(const char *code, const char *action, const char *id)
{
	char *body;
	int st = ec_do(&body, action, "InstanceId.1", id, NULL);
	ec_check_error(st, body, api_error_status(code), code);
	free(body);
}

static void test_states(void)
{
	const char *i0 = web_ids[0];
	state_pair("StopInstances", i0, 64, 16);
	state_pair("StopInstances", i0, 64, 64); /* already stopping */
	fails("IncorrectInstanceState", "RebootInstances", i0);
	settle();
	state_pair("StopInstances", i0, 80, 80);
	state_pair("StartInstances", i0, 0, 80);
	/* Pending: the host refuses to stop it (-EBUSY). */
	fails("IncorrectInstanceState", "StopInstances", i0);
	settle();
	state_pair("StartInstances", i0, 16, 16);
	char *body;
	int st = ec_do(&body, "RebootInstances", "InstanceId.1", i0, NULL);
	ec_check_ok(st, body, "RebootInstances");
	CHECK(strstr(body, "</requestId><return>true</return>"
	                   "</RebootInstancesResponse>") != NULL);
	free(body);
	st = ec_do(&body, "StopInstances", "InstanceId.1", i0, "Force", "true",
	           NULL);
	ec_check_ok(st, body, "StopInstances");
	free(body);
	settle();
	/* No room to start it again. */
	ec_fake.capacity = fake_host_used(&ec_fake);
	fails("InsufficientInstanceCapacity", "StartInstances", i0);
	ec_fake.capacity = 1000;
	state_pair("StartInstances", i0, 0, 80);
	settle();

	/* Two at once; one unknown fails them both before anything. */
	unsigned ops = ec_fake.ops;
	st = ec_do(&body, "StopInstances", "InstanceId.1", web_ids[1],
	           "InstanceId.2", "i-0123456789abcdef0", NULL);
	ec_check_error(st, body, 400, "InvalidInstanceID.NotFound");
	CHECK(strstr(body, "i-0123456789abcdef0") != NULL);
	free(body);
	fails("InvalidInstanceID.Malformed", "StopInstances", "i-123");
	st = ec_do(&body, "TerminateInstances", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	CHECK_EQ_U64(ec_fake.ops, ops);
	st = ec_do(&body, "StopInstances", "InstanceId.1", web_ids[1], "DryRun",
	           "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	CHECK_EQ_U64(ec_fake.ops, ops);
	st = ec_do(&body, "StopInstances", "InstanceId.1", web_ids[1],
	           "InstanceId.2", web_ids[2], NULL);
	ec_check_ok(st, body, "StopInstances");
	CHECK_EQ_U64(ec_count(body, "<currentState><code>64</code>"), 2);
	free(body);
	CHECK_EQ_U64(ec_fake.ops - ops, 2);
	settle();
	state_pair("StartInstances", web_ids[1], 0, 80);
	state_pair("StartInstances", web_ids[2], 0, 80);
	settle();
}

static void test_status(void)
{
	char *body;
	int st = ec_do(&body, "DescribeInstanceStatus", "InstanceId.1",
	               web_ids[0], NULL);
	ec_check_ok(st, body, "DescribeInstanceStatus");
	char want[1024];
	snprintf(want, sizeof(want),
	         "<instanceStatusSet><item><instanceId>%s</instanceId>"
	         "<availabilityZone>us-east-1a</availabilityZone>"
	         "<instanceState><code>16</code><name>running</name>"
	         "</instanceState><systemStatus><status>ok</status><details>"
	         "<item><name>reachability</name><status>passed</status>"
	         "</item></details></systemStatus><instanceStatus><status>ok"
	         "</status><details><item><name>reachability</name><status>"
	         "passed</status></item></details></instanceStatus></item>"
	         "</instanceStatusSet>",
	         web_ids[0]);
	if (!strstr(body, want))
		fprintf(stderr, "want %s\ngot %s\n", want, body);
	CHECK(strstr(body, want) != NULL);
	free(body);
	ec_fake.host_says = "dead";
	st = ec_do(&body, "DescribeInstanceStatus", "Filter.1.Name",
	           "instance-status.status", "Filter.1.Value.1", "impaired",
	           NULL);
	ec_check_ok(st, body, "DescribeInstanceStatus");
	/* Five run: the three, and two of test_capacity. */
	CHECK_EQ_U64(ec_count(body, "<status>impaired</status>"), 10);
	CHECK_EQ_U64(ec_count(body, "<status>failed</status><impairedSince>"),
	             10);
	free(body);
	ec_fake.host_says = "alive";
	/* Stopped and terminated ones only with IncludeAllInstances. */
	st = ec_do(&body, "DescribeInstanceStatus", NULL);
	ec_check_ok(st, body, "DescribeInstanceStatus");
	CHECK_EQ_U64(ec_count(body, "<item><instanceId>"), 5);
	free(body);
	st = ec_do(&body, "DescribeInstanceStatus", "IncludeAllInstances",
	           "true", "Filter.1.Name", "instance-state-name",
	           "Filter.1.Value.1", "terminated", NULL);
	ec_check_ok(st, body, "DescribeInstanceStatus");
	CHECK_EQ_U64(ec_count(body, "<item><instanceId>"), 2);
	CHECK(
	    strstr(body, "<status>not-applicable</status><details></details>"));
	free(body);
	st = ec_do(&body, "DescribeInstanceStatus", "Filter.1.Name", "tag:Name",
	           "Filter.1.Value.1", "web<*", NULL);
	ec_check_ok(st, body, "DescribeInstanceStatus");
	CHECK_EQ_U64(ec_count(body, "<item><instanceId>"), 3);
	free(body);
	st = ec_do(&body, "DescribeInstanceStatus", "Filter.1.Name", "colour",
	           "Filter.1.Value.1", "x", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
}

static void test_console(void)
{
	char *body, out[256], ts[64];
	ec_fake.console = "hello\xff\n";
	ec_fake.console_len = 7;
	int st = ec_do(&body, "GetConsoleOutput", "InstanceId", web_ids[0],
	               "Latest", "true", NULL);
	ec_check_ok(st, body, "GetConsoleOutput");
	char *want = mc_b64_encode("hello\xef\xbf\xbd\n", 9);
	CHECK(ec_text(body, "output", out, sizeof(out)));
	CHECK_STR(out, want);
	CHECK(ec_text(body, "timestamp", ts, sizeof(ts)));
	CHECK(strlen(ts) == 24 && ts[23] == 'Z');
	char head[128];
	snprintf(head, sizeof(head),
	         "</requestId><instanceId>%s</instanceId>"
	         "<timestamp>",
	         web_ids[0]);
	CHECK(strstr(body, head) != NULL);
	free(want);
	free(body);
	fails("InvalidInstanceID.NotFound", "GetConsoleOutput",
	      "i-0123456789abcdef0");
	st = ec_do(&body, "GetConsoleOutput", "InstanceId.1", web_ids[0],
	           "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
}

static void attribute_is(const char *id, const char *attr, const char *want)
{
	char *body;
	int st = ec_do(&body, "DescribeInstanceAttribute", "InstanceId", id,
	               "Attribute", attr, NULL);
	ec_check_ok(st, body, "DescribeInstanceAttribute");
	if (!strstr(body, want))
		fprintf(stderr, "want %s\ngot %s\n", want, body);
	CHECK(strstr(body, want) != NULL);
	free(body);
}

static void test_attributes(void)
{
	const char *id = web_ids[2];
	char want[256];
	snprintf(want, sizeof(want),
	         "</requestId><instanceId>%s</instanceId><instanceType><value>"
	         "t3.micro</value></instanceType>",
	         id);
	attribute_is(id, "instanceType", want);
	attribute_is(id, "userData",
	             "<userData><value>IyEvYmluL3NoCmVjaG8gaGkK</value>"
	             "</userData>");
	attribute_is(id, "disableApiTermination",
	             "<disableApiTermination><value>false</value>");
	attribute_is(id, "instanceInitiatedShutdownBehavior",
	             "<value>stop</value>");
	snprintf(want, sizeof(want),
	         "<groupSet><item><groupId>%s</groupId></item></groupSet>",
	         group_id);
	attribute_is(id, "groupSet", want);
	char *body;
	int st = ec_do(&body, "DescribeInstanceAttribute", "InstanceId", id,
	               "Attribute", "colour", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	/* Running: the type cannot change. */
	st = ec_do(&body, "ModifyInstanceAttribute", "InstanceId", id,
	           "InstanceType.Value", "t3.small", NULL);
	ec_check_error(st, body, 400, "IncorrectInstanceState");
	free(body);
	state_pair("StopInstances", id, 64, 16);
	settle();
	st = ec_do(&body, "ModifyInstanceAttribute", "InstanceId", id,
	           "InstanceType.Value", "t3.small", NULL);
	ec_check_ok(st, body, "ModifyInstanceAttribute");
	CHECK(strstr(body, "<return>true</return>") != NULL);
	free(body);
	attribute_is(id, "instanceType", "<value>t3.small</value>");
	st = ec_do(&body, "ModifyInstanceAttribute", "InstanceId", id,
	           "Attribute", "userData", "Value", "aGk=", NULL);
	ec_check_ok(st, body, "ModifyInstanceAttribute");
	free(body);
	attribute_is(id, "userData", "<userData><value>aGk=</value>");
	st = ec_do(&body, "ModifyInstanceAttribute", "InstanceId", id,
	           "InstanceType.Value", "t9.huge", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "ModifyInstanceAttribute", "InstanceId", id,
	           "SourceDestCheck.Value", "false", NULL);
	ec_check_error(st, body, 400, "UnsupportedOperation");
	free(body);
	st = ec_do(&body, "ModifyInstanceAttribute", "InstanceId", id,
	           "InstanceType.Value", "t3.large", "DryRun", "true", NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	attribute_is(id, "instanceType", "<value>t3.small</value>");
	state_pair("StartInstances", id, 0, 80);
	settle();
}

static void test_terminate(void)
{
	const char *id = web_ids[1];
	char *body;
	int st = ec_do(&body, "TerminateInstances", "InstanceId.1", id, NULL);
	ec_check_ok(st, body, "TerminateInstances");
	/* currentState before previousState. */
	CHECK(strstr(body, "<currentState><code>32</code><name>shutting-down"
	                   "</name></currentState><previousState><code>16"
	                   "</code><name>running</name></previousState>"));
	free(body);
	settle();
	state_pair("TerminateInstances", id, 48, 48);
	fails("IncorrectInstanceState", "StopInstances", id);
	fails("IncorrectInstanceState", "StartInstances", id);
	st = ec_do(&body, "DescribeInstances", "InstanceId.1", id, NULL);
	ec_check_ok(st, body, "DescribeInstances");
	CHECK(strstr(body, "<stateReason><code>Client.UserInitiatedShutdown"
	                   "</code>") != NULL);
	CHECK(strstr(body, "<privateDnsName></privateDnsName>") != NULL);
	CHECK(strstr(body, "<privateIpAddress>") == NULL);
	free(body);
	/* An hour after, it is gone. */
	char rid[64];
	uint8_t *rec;
	size_t len;
	struct mc_instance in;
	snprintf(rid, sizeof(rid), "%s:%s", ACCOUNT_A, id);
	CHECK(fake_get(&ec_fake, MC_INSTANCE_KIND, rid, &rec, &len) == 0);
	CHECK(mc_instance_unpack(rec, len, &in) == 0);
	free(rec);
	in.updated_ms -= 3601 * 1000;
	fake_host_put(&ec_fake, &in);
	mc_instance_clear(&in);
	fails("InvalidInstanceID.NotFound", "DescribeInstances", id);
	fails("InvalidInstanceID.NotFound", "TerminateInstances", id);
	CHECK_EQ_U64(describe_count("instance-id", id), 0);
}

/* ---- a call the cloud still holds when the edge stops ------------------- */

static void *run_held(void *arg)
{
	char **body = arg;
	ec_do(body, "RunInstances", "ImageId", image_id, "MinCount", "1",
	      "MaxCount", "1", NULL);
	return NULL;
}

static void test_pending_at_stop(void)
{
	char *body = NULL;
	pthread_t client;
	ec_fake.hold = true;
	pthread_create(&client, NULL, run_held, &body);
	for (int i = 0; i < 500 && atomic_load(&ec_fake.held) == 0; i++)
		usleep(2000);
	CHECK_EQ_U64(atomic_load(&ec_fake.held), 1);
	/* Stop while the launch waits: the edge must wait for it. */
	uv_async_send(&ec_stopper);
	usleep(100 * 1000);
	CHECK(!ec_stopped);
	atomic_store(&ec_fake.release, -ECANCELED);
	pthread_join(ec_thread, NULL);
	pthread_join(client, NULL);
	free(body);
	CHECK(ec_stopped);
	CHECK_EQ_U64(atomic_load(&ec_fake.held), 0);
	CHECK(uv_loop_close(&ec_loop) == 0);
	fake_cloud_free(&ec_fake);
}

int main(void)
{
	ec_start("us-east-1");
	ec_fake.loop = &ec_loop;
	RUN(setup);
	RUN(test_run_describe);
	RUN(test_client_token);
	RUN(test_filters);
	RUN(test_run_errors);
	RUN(test_capacity);
	RUN(test_states);
	RUN(test_status);
	RUN(test_console);
	RUN(test_attributes);
	RUN(test_terminate);
	RUN(test_pending_at_stop);
	return check_summary();
}
