/*
 * DescribeSecurityGroups over 10,000 groups of one account, written
 * straight into the in-memory cloud: each way of finding candidates (the
 * name index, a walk, tags, rules, ids) finds exactly the groups a filter
 * names, and paging covers them all. Functional only: no timings here.
 */
#include "edge_harness.h"

#include "wire.h"

#define ACCOUNT_C "333333333333"

static char *create_group(const char *account, const char *name,
                          const char *description, char id[32])
{
	char *form = form_of("Action", "CreateSecurityGroup", "GroupName", name,
	                     "GroupDescription", description, NULL);
	char *body = ec2_ok(account, form);
	free(form);
	CHECK(xml_text(body, "groupId", id, 32));
	return body;
}

/* 10,000 groups written straight into the cloud, then describes that
 * must find the few a filter names. */
static void test_ten_thousand(void)
{
	char id[32], named[32], rid[64], name[64];
	struct mc_buf b;
	mc_buf_init(&b);
	for (unsigned i = 0; i < 10000; i++) {
		snprintf(id, sizeof(id), "sg-%017x", i * 16 + 1);
		snprintf(rid, sizeof(rid), ACCOUNT_C ":%s", id);
		snprintf(name, sizeof(name), "bulk-%05u", i);
		mc_buf_reset(&b);
		mc_pack_map(&b, 3);
		mc_pack_kv_str(&b, "name", name);
		mc_pack_kv_str(&b, "description", "bulk group");
		mc_pack_kv_str(&b, "vpc_id", "vpc-00000000000000000");
		CHECK(h.cloud.put(h.cloud.arg, API_KIND_GROUP, rid, b.data,
		                  b.len) == 0);
	}
	mc_buf_free(&b);
	free(create_group(ACCOUNT_C, "needle", "the one", named));
	char form[256];
	snprintf(form, sizeof(form),
	         "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=role&Tag.1.Value="
	         "needle",
	         named);
	free(ec2_ok(ACCOUNT_C, form));

	/* Literal name (the index), wildcard name (a walk), tag, id. */
	char *body = ec2_ok(ACCOUNT_C, "Action=DescribeSecurityGroups&Filter.1."
	                               "Name=group-name&Filter.1.Value.1="
	                               "needle");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	CHECK(strstr(body, named) != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_C, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "group-name&Filter.1.Value.1=bulk-0999%3F");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 10);
	CHECK(strstr(body, "<groupName>bulk-09990</groupName>") != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_C, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "tag:role&Filter.1.Value.1=needle");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	CHECK(strstr(body, "<tagSet><item><key>role</key><value>needle</value>"
	                   "</item></tagSet>") != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_C, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "egress.ip-permission.cidr&Filter.1.Value.1="
	                         "0.0.0.0/0");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 2); /* default too */
	free(body);
	body = ec2_ok(ACCOUNT_C, "Action=DescribeSecurityGroups&GroupId.1="
	                         "sg-00000000000009c41");
	CHECK(strstr(body, "<groupName>bulk-02500</groupName>") != NULL);
	free(body);
	size_t pages;
	CHECK_EQ_U64(walk_pages(ACCOUNT_C, "", 1000, &pages), 10002);
	CHECK_EQ_U64(pages, 11);
	body = ec2_ok(ACCOUNT_C, "Action=DescribeSecurityGroups");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 10002);
	free(body);
}

int main(void)
{
	harness_start();
	RUN(test_ten_thousand);
	harness_stop();
	return check_summary();
}
