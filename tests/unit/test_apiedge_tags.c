/*
 * Tags (CreateTags, DeleteTags, DescribeTags): which resources can be
 * tagged and the codes for those that cannot, EC2's limits, deleting by
 * key and value, filters, paging, account isolation, XML escaping; over
 * real HTTP and directly.
 */
#include "edge_harness.h"

#include "wire.h"

static void new_group(const char *account, const char *name, char id[32])
{
	char *f = form_of("Action", "CreateSecurityGroup", "GroupName", name,
	                  "GroupDescription", "tags test", NULL);
	char *body = ec2_ok(account, f);
	CHECK(xml_text(body, "groupId", id, 32));
	free(body);
	free(f);
}

static void test_create_describe_http(void)
{
	char id[32], form[512], *body;
	new_group(ACCOUNT_A, "tagged", id);
	/* Indexes from 0, as some SDKs send them. */
	snprintf(form, sizeof(form),
	         "Action=CreateTags&Version=2016-11-15&ResourceId.0=%s&"
	         "Tag.0.Key=Name&Tag.0.Value=a%%3Cb%%3E%%26%%22%%27%%01&"
	         "Tag.1.Key=empty",
	         id);
	int st = ec2_http(KEY_A, SECRET_A, form, &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<CreateTagsResponse xmlns=\"http://ec2.amazonaws."
	                   "com/doc/2016-11-15/\"><requestId>") != NULL);
	CHECK(strstr(body, "</requestId><return>true</return>"
	                   "</CreateTagsResponse>") != NULL);
	free(body);
	snprintf(form, sizeof(form),
	         "Action=DescribeTags&Filter.1.Name=resource-id&"
	         "Filter.1.Value.1=%s",
	         id);
	st = ec2_http(KEY_A, SECRET_A, form, &body);
	CHECK_EQ_U64(st, 200);
	char want[1024];
	snprintf(want, sizeof(want),
	         "<tagSet><item><resourceId>%s</resourceId><resourceType>"
	         "security-group</resourceType><key>Name</key><value>"
	         "a&lt;b&gt;&amp;&quot;&apos;\xef\xbf\xbd</value></item><item>"
	         "<resourceId>%s</resourceId><resourceType>security-group"
	         "</resourceType><key>empty</key><value></value></item>"
	         "</tagSet></DescribeTagsResponse>",
	         id, id);
	CHECK(strstr(body, want) != NULL);
	free(body);
	/* Another account sees none of them, and cannot touch them. */
	st = ec2_http(KEY_B, SECRET_B, "Action=DescribeTags", &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<tagSet></tagSet>") != NULL);
	free(body);
	snprintf(form, sizeof(form),
	         "Action=DeleteTags&ResourceId.1=%s&Tag.1.Key=Name", id);
	st = ec2_http(KEY_B, SECRET_B, form, &body);
	CHECK_EQ_U64(st, 400);
	CHECK(strstr(body, "<Code>InvalidGroup.NotFound</Code>") != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeTags&Filter.1.Name=key&"
	                         "Filter.1.Value.1=Name");
	CHECK_EQ_U64(count_of(body, "<item>"), 1);
	free(body);
}

static void test_resource_kinds(void)
{
	char group[32], form[1024], vpc[32];
	new_group(ACCOUNT_A, "kinds", group);
	struct api_auth auth = {.key.account_id = ACCOUNT_A};
	struct api_call call = {
	    .auth = &auth, .cfg = &h.cfg, .cloud = &h.cloud};
	api_default_vpc_id(&call, vpc);
	struct api_subnet subnets[API_ZONES_MAX];
	CHECK_EQ_U64(api_default_subnets(&call, subnets, API_ZONES_MAX), 2);

	/* An image record, as RegisterImage would leave one. */
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 1);
	mc_pack_kv_str(&b, "name", "img");
	CHECK(h.cloud.put(h.cloud.arg, API_KIND_IMAGE,
	                  ACCOUNT_A ":ami-0123456789abcdef0", b.data,
	                  b.len) == 0);
	mc_buf_free(&b);
	/* A key pair through the key pair actions. */
	char key_id[32];
	char *body = ec2_ok(ACCOUNT_A, "Action=CreateKeyPair&KeyName=tagme");
	CHECK(xml_text(body, "keyPairId", key_id, sizeof(key_id)));
	free(body);

	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&ResourceId.2=%s&"
	         "ResourceId.3=%s&ResourceId.4=ami-0123456789abcdef0&"
	         "ResourceId.5=%s&Tag.1.Key=team&Tag.1.Value=blue",
	         group, vpc, subnets[1].id, key_id);
	free(ec2_ok(ACCOUNT_A, form));
	static const char *const types[] = {"security-group", "vpc", "subnet",
	                                    "image", "key-pair"};
	for (size_t i = 0; i < 5; i++) {
		snprintf(form, sizeof(form),
		         "Action=DescribeTags&Filter.1.Name=resource-type&"
		         "Filter.1.Value.1=%s&Filter.2.Name=tag:team&Filter.2."
		         "Value.1=bl%%2A",
		         types[i]);
		body = ec2_ok(ACCOUNT_A, form);
		CHECK_EQ_U64(count_of(body, "<item>"), 1);
		char type[64];
		CHECK(xml_text(body, "resourceType", type, sizeof(type)));
		CHECK_STR(type, types[i]);
		free(body);
	}
	body = ec2_ok(ACCOUNT_A, "Action=DescribeTags&Filter.1.Name=value&"
	                         "Filter.1.Value.1=blue");
	CHECK_EQ_U64(count_of(body, "<item>"), 5);
	free(body);

	/* Unknown or malformed ids, each with EC2's code; nothing written
	 * when one resource of several fails. */
	static const struct {
		const char *id, *code;
	} bad[] = {
	    {"sg-0000000000000000a", "InvalidGroup.NotFound"},
	    {"sg-zz", "InvalidGroupId.Malformed"},
	    {"ami-00000000", "InvalidAMIID.NotFound"},
	    {"ami-x", "InvalidAMIID.Malformed"},
	    {"key-0000000000000000a", "InvalidKeyPair.NotFound"},
	    {"vpc-00000000", "InvalidVpcID.NotFound"},
	    {"subnet-00000000", "InvalidSubnetID.NotFound"},
	    {"i-0123456789abcdef0", "InvalidInstanceID.NotFound"},
	    {"i-nope", "InvalidInstanceID.Malformed"},
	    {"vol-12345678", "InvalidID"},
	    {"nonsense", "InvalidID"},
	};
	unsigned puts = h.fake.puts;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(form, sizeof(form),
		         "Action=CreateTags&ResourceId.1=%s&ResourceId.2=%s&"
		         "Tag.1.Key=k&Tag.1.Value=v",
		         group, bad[i].id);
		CHECK(ec2_fails(ACCOUNT_A, form, 400, bad[i].code));
	}
	CHECK_EQ_U64(h.fake.puts, puts);
	/* Account B knows none of A's. */
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k", key_id);
	CHECK(ec2_fails(ACCOUNT_B, form, 400, "InvalidKeyPair.NotFound"));
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k",
	         subnets[0].id);
	CHECK(ec2_fails(ACCOUNT_B, form, 400, "InvalidSubnetID.NotFound"));
	CHECK(ec2_fails(ACCOUNT_B,
	                "Action=CreateTags&ResourceId.1=ami-0123456789abcdef0&"
	                "Tag.1.Key=k",
	                400, "InvalidAMIID.NotFound"));
	CHECK_EQ_U64(h.fake.puts, puts);
	/* Deleting the group takes its tags along. */
	snprintf(form, sizeof(form), "Action=DeleteSecurityGroup&GroupId=%s",
	         group);
	free(ec2_ok(ACCOUNT_A, form));
	snprintf(form, sizeof(form),
	         "Action=DescribeTags&Filter.1.Name=resource-id&"
	         "Filter.1.Value.1=%s",
	         group);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<tagSet></tagSet>") != NULL);
	free(body);
}

static void test_limits(void)
{
	char id[32], form[8192];
	new_group(ACCOUNT_A, "limits", id);
	CHECK(ec2_fails(ACCOUNT_A, "Action=CreateTags&Tag.1.Key=k", 400,
	                "MissingParameter"));
	snprintf(form, sizeof(form), "Action=CreateTags&ResourceId.1=%s", id);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "MissingParameter"));
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=aws:x", id);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidParameterValue"));
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Value=v", id);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidParameterValue"));
	char big[300];
	memset(big, 'k', 129);
	big[129] = '\0';
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=%s", id, big);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidParameterValue"));
	memset(big, 'v', 257);
	big[257] = '\0';
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k&Tag.1.Value=%s",
	         id, big);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidParameterValue"));
	big[256] = '\0'; /* 256 is fine */
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k&Tag.1.Value=%s",
	         id, big);
	free(ec2_ok(ACCOUNT_A, form));
	/* DryRun writes nothing. */
	unsigned puts = h.fake.puts;
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k2&DryRun=true",
	         id);
	CHECK(ec2_fails(ACCOUNT_A, form, 412, "DryRunOperation"));
	CHECK_EQ_U64(h.fake.puts, puts);

	/* 50 tags per resource: 49 more fit, the 51st does not, and
	 * rewriting an existing key does not count. */
	size_t n = (size_t)snprintf(form, sizeof(form),
	                            "Action=CreateTags&ResourceId.1=%s", id);
	for (int i = 0; i < 49; i++)
		n += (size_t)snprintf(form + n, sizeof(form) - n,
		                      "&Tag.%d.Key=t%02d&Tag.%d.Value=%d",
		                      i + 1, i, i + 1, i);
	free(ec2_ok(ACCOUNT_A, form));
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=one-more", id);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "TagLimitExceeded"));
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=t00&Tag.1.Value="
	         "new",
	         id);
	free(ec2_ok(ACCOUNT_A, form));
	snprintf(form, sizeof(form),
	         "Action=DescribeTags&Filter.1.Name=resource-id&Filter.1.Value."
	         "1=%s&Filter.2.Name=key&Filter.2.Value.1=t00",
	         id);
	char *body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<key>t00</key><value>new</value>") != NULL);
	free(body);
	n = (size_t)snprintf(form, sizeof(form),
	                     "Action=CreateTags&"
	                     "ResourceId.1=%s",
	                     id);
	for (int i = 0; i < 51; i++)
		n += (size_t)snprintf(form + n, sizeof(form) - n,
		                      "&Tag.%d.Key=x%02d", i + 1, i);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "TagLimitExceeded"));
}

static size_t tags_of(const char *id)
{
	char form[256];
	snprintf(form, sizeof(form),
	         "Action=DescribeTags&Filter.1.Name=resource-id&"
	         "Filter.1.Value.1=%s",
	         id);
	char *body = ec2_ok(ACCOUNT_A, form);
	size_t n = count_of(body, "<item>");
	free(body);
	return n;
}

static void test_delete(void)
{
	char id[32], form[512];
	new_group(ACCOUNT_A, "deleting", id);
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=a&Tag.1.Value=1&"
	         "Tag.2.Key=b&Tag.2.Value=2&Tag.3.Key=c&Tag.4.Key=d&"
	         "Tag.4.Value=4",
	         id);
	free(ec2_ok(ACCOUNT_A, form));
	CHECK_EQ_U64(tags_of(id), 4);
	/* A value that does not match keeps the tag. */
	snprintf(form, sizeof(form),
	         "Action=DeleteTags&ResourceId.1=%s&Tag.1.Key=a&Tag.1.Value=9",
	         id);
	char *body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<return>true</return>") != NULL);
	free(body);
	CHECK_EQ_U64(tags_of(id), 4);
	/* An empty value deletes only an empty tag; a key alone, any. */
	snprintf(form, sizeof(form),
	         "Action=DeleteTags&ResourceId.1=%s&Tag.1.Key=b&Tag.1.Value=&"
	         "Tag.2.Key=c&Tag.2.Value=&Tag.3.Key=a&Tag.3.Value=1",
	         id);
	free(ec2_ok(ACCOUNT_A, form));
	CHECK_EQ_U64(tags_of(id), 2);
	snprintf(form, sizeof(form),
	         "Action=DeleteTags&ResourceId.0=%s&Tag.0.Key=b&Tag.1.Key=gone",
	         id);
	free(ec2_ok(ACCOUNT_A, form));
	CHECK_EQ_U64(tags_of(id), 1);
	/* No Tag at all: every tag of the resource. */
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=e", id);
	free(ec2_ok(ACCOUNT_A, form));
	snprintf(form, sizeof(form), "Action=DeleteTags&ResourceId.1=%s", id);
	free(ec2_ok(ACCOUNT_A, form));
	CHECK_EQ_U64(tags_of(id), 0);
	CHECK(ec2_fails(ACCOUNT_A, "Action=DeleteTags&Tag.1.Key=a", 400,
	                "MissingParameter"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DeleteTags&ResourceId.1=sg-0000000000000000b",
	                400, "InvalidGroup.NotFound"));
	snprintf(form, sizeof(form),
	         "Action=DeleteTags&ResourceId.1=%s&DryRun"
	         "=true",
	         id);
	CHECK(ec2_fails(ACCOUNT_A, form, 412, "DryRunOperation"));
}

static void test_describe_paging(void)
{
	char ids[3][32], form[512];
	for (int g = 0; g < 3; g++) {
		char name[16];
		snprintf(name, sizeof(name), "paged-%d", g);
		new_group(ACCOUNT_B, name, ids[g]);
		snprintf(form, sizeof(form),
		         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k1&"
		         "Tag.2.Key=k2&Tag.3.Key=k3&Tag.4.Key=k4",
		         ids[g]);
		free(ec2_ok(ACCOUNT_B, form));
	}
	/* Twelve tags in pages of five, by resource then key. */
	char token[512] = "", prev[256] = "";
	size_t total = 0, pages = 0;
	do {
		snprintf(form, sizeof(form),
		         "Action=DescribeTags&MaxResults=5%s%s",
		         token[0] ? "&NextToken=" : "", token);
		char *body = ec2_ok(ACCOUNT_B, form);
		pages++;
		const char *p = body;
		while ((p = strstr(p, "<item>"))) {
			char rid[64], key[64], both[256];
			CHECK(xml_text(p, "resourceId", rid, sizeof(rid)));
			CHECK(xml_text(p, "key", key, sizeof(key)));
			snprintf(both, sizeof(both), "%s/%s", rid, key);
			CHECK(strcmp(prev, both) < 0);
			snprintf(prev, sizeof(prev), "%s", both);
			total++;
			p++;
		}
		if (!xml_text(body, "nextToken", token, sizeof(token)))
			token[0] = '\0';
		free(body);
	} while (token[0] && pages < 10);
	CHECK_EQ_U64(total, 12);
	CHECK_EQ_U64(pages, 3);
	CHECK(ec2_fails(ACCOUNT_B, "Action=DescribeTags&MaxResults=4", 400,
	                "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_B, "Action=DescribeTags&NextToken=%25", 400,
	                "InvalidNextToken"));
	CHECK(ec2_fails(ACCOUNT_B,
	                "Action=DescribeTags&Filter.1.Name=owner&"
	                "Filter.1.Value.1=x",
	                400, "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_B, "Action=DescribeTags&DryRun=true", 412,
	                "DryRunOperation"));
	/* Several values of one filter, and two filters together. */
	snprintf(form, sizeof(form),
	         "Action=DescribeTags&Filter.1.Name=resource-id&Filter.1.Value."
	         "1=%s&Filter.1.Value.2=%s&Filter.2.Name=key&Filter.2.Value.1="
	         "k%%5B%%5D&Filter.2.Value.2=k2",
	         ids[0], ids[2]);
	char *body = ec2_ok(ACCOUNT_B, form);
	CHECK_EQ_U64(count_of(body, "<item>"), 2);
	free(body);
}

int main(void)
{
	harness_start();
	RUN(test_create_describe_http);
	RUN(test_resource_kinds);
	RUN(test_limits);
	RUN(test_delete);
	RUN(test_describe_paging);
	harness_stop();
	return check_summary();
}
