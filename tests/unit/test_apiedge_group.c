/*
 * Security groups: create, delete, describe (filters, paging, 10,000
 * groups), the default group, rules in both request shapes, errors and
 * their statuses, account isolation, XML escaping; over real HTTP and
 * directly.
 */
#include "edge_harness.h"

static char *create_group(const char *account, const char *name,
                          const char *description, char id[32])
{
	char *form = form_of("Action", "CreateSecurityGroup", "GroupName", name,
	                     "GroupDescription", description, NULL);
	char *body = ec2_ok(account, form);
	free(form);
	CHECK(xml_text(body, "groupId", id, 32));
	CHECK(api_res_id_valid("sg", id));
	return body;
}

/* The <item> of group id in a DescribeSecurityGroups body, copied. */
static char *group_item(const char *body, const char *id)
{
	char needle[64];
	snprintf(needle, sizeof(needle), "<groupId>%s</groupId><groupName>",
	         id);
	const char *at = strstr(body, needle);
	if (!at)
		return xstrdup("");
	const char *start = at;
	while (start > body && strncmp(start, "<item><ownerId>", 15) != 0)
		start--;
	const char *end = strstr(at, "</securityGroupArn></item>");
	if (!end)
		return xstrdup("");
	return xstrndup(start, (size_t)(end - start) + 26);
}

static void test_create_describe_http(void)
{
	char *body, id[32], want[2048], vpc[32];
	int st = ec2_http(KEY_A, SECRET_A,
	                  "Action=CreateSecurityGroup&Version=2016-11-15&"
	                  "GroupName=web&GroupDescription=web%20servers",
	                  &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<CreateSecurityGroupResponse xmlns=\"http://"
	                   "ec2.amazonaws.com/doc/2016-11-15/\"><requestId>") !=
	      NULL);
	CHECK(strstr(body, "</requestId><return>true</return><groupId>sg-") !=
	      NULL);
	CHECK(xml_text(body, "groupId", id, sizeof(id)));
	CHECK(api_res_id_valid("sg", id) && strlen(id) == 20);
	free(body);

	st =
	    ec2_http(KEY_A, SECRET_A,
	             "Action=DescribeSecurityGroups&Version=2016-11-15", &body);
	CHECK_EQ_U64(st, 200);
	struct api_auth auth = {.key.account_id = ACCOUNT_A};
	struct api_call call = {.auth = &auth};
	api_default_vpc_id(&call, vpc);
	snprintf(want, sizeof(want),
	         "<item><ownerId>" ACCOUNT_A "</ownerId><groupId>%s</groupId>"
	         "<groupName>web</groupName><groupDescription>web servers"
	         "</groupDescription><vpcId>%s</vpcId><ipPermissions>"
	         "</ipPermissions><ipPermissionsEgress><item><ipProtocol>-1"
	         "</ipProtocol><groups></groups><ipRanges><item><cidrIp>"
	         "0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges>"
	         "</ipv6Ranges><prefixListIds></prefixListIds></item>"
	         "</ipPermissionsEgress><tagSet></tagSet><securityGroupArn>"
	         "arn:aws:ec2:us-east-1:" ACCOUNT_A ":security-group/%s"
	         "</securityGroupArn></item>",
	         id, vpc, id);
	CHECK(strstr(body, want) != NULL);

	/* The default group, created on first use, talks to itself. */
	char dflt[32];
	api_default_group_id(&call, dflt);
	snprintf(want, sizeof(want),
	         "<item><ownerId>" ACCOUNT_A "</ownerId><groupId>%s</groupId>"
	         "<groupName>default</groupName><groupDescription>default VPC "
	         "security group</groupDescription><vpcId>%s</vpcId>"
	         "<ipPermissions><item><ipProtocol>-1</ipProtocol><groups>"
	         "<item><userId>" ACCOUNT_A "</userId><groupId>%s</groupId>"
	         "</item></groups><ipRanges></ipRanges><ipv6Ranges>"
	         "</ipv6Ranges><prefixListIds></prefixListIds></item>"
	         "</ipPermissions><ipPermissionsEgress><item><ipProtocol>-1"
	         "</ipProtocol>",
	         dflt, vpc, dflt);
	CHECK(strstr(body, want) != NULL);
	free(body);

	/* Errors over HTTP keep EC2's shape and status. */
	st = ec2_http(KEY_A, SECRET_A,
	              "Action=CreateSecurityGroup&GroupName=web&"
	              "GroupDescription=again",
	              &body);
	CHECK_EQ_U64(st, 400);
	CHECK(strstr(body, "<Response><Errors><Error><Code>"
	                   "InvalidGroup.Duplicate</Code><Message>") != NULL);
	free(body);
}

static void test_default_group(void)
{
	char *body = ec2_ok(ACCOUNT_B, "Action=DescribeSecurityGroups");
	CHECK_EQ_U64(count_of(body, "<groupName>default</groupName>"), 1);
	free(body);
	unsigned puts = h.fake.puts;
	body = ec2_ok(ACCOUNT_B, "Action=DescribeSecurityGroups&GroupName.1="
	                         "default");
	CHECK_EQ_U64(h.fake.puts, puts); /* created once */
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	free(body);
	CHECK(ec2_fails(ACCOUNT_B,
	                "Action=CreateSecurityGroup&GroupName=default&"
	                "GroupDescription=x",
	                400, "InvalidGroup.Duplicate"));
	CHECK(ec2_fails(ACCOUNT_B,
	                "Action=DeleteSecurityGroup&GroupName=default", 400,
	                "CannotDelete"));
	/* Deleting it by id fails the same way, even before any use. */
	struct api_auth auth = {.key.account_id = "444444444444"};
	struct api_call call = {.auth = &auth};
	char dflt[32], form[128];
	api_default_group_id(&call, dflt);
	snprintf(form, sizeof(form), "Action=DeleteSecurityGroup&GroupId=%s",
	         dflt);
	CHECK(ec2_fails("444444444444", form, 400, "CannotDelete"));
}

static void test_create_errors(void)
{
	char name[300];
	memset(name, 'n', 256);
	name[256] = '\0';
	char *f = form_of("Action", "CreateSecurityGroup", "GroupName", name,
	                  "GroupDescription", "d", NULL);
	CHECK(ec2_fails(ACCOUNT_A, f, 400, "InvalidParameterValue"));
	free(f);
	name[255] = '\0'; /* 255 is fine */
	f = form_of("Action", "CreateSecurityGroup", "GroupName", name,
	            "GroupDescription", "d", NULL);
	free(ec2_ok(ACCOUNT_A, f));
	free(f);
	CHECK(ec2_fails(ACCOUNT_A, "Action=CreateSecurityGroup&GroupName=x",
	                400, "MissingParameter"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=CreateSecurityGroup&GroupDescription=x", 400,
	                "MissingParameter"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=CreateSecurityGroup&GroupName=sg-1&"
	                "GroupDescription=x",
	                400, "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=CreateSecurityGroup&GroupName=v&"
	                "GroupDescription=x&VpcId=vpc-12345678",
	                400, "InvalidVpcID.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=CreateSecurityGroup&GroupName=v&"
	                "GroupDescription=x&VpcId=nope",
	                400, "InvalidVpcID.Malformed"));
	/* DryRun: checked, nothing written. */
	unsigned puts = h.fake.puts;
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=CreateSecurityGroup&GroupName=dry&"
	                "GroupDescription=x&DryRun=true",
	                412, "DryRunOperation"));
	CHECK_EQ_U64(h.fake.puts, puts);
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&GroupName.1=dry", 400,
	                "InvalidGroup.NotFound"));
	/* The default VPC by id is fine; ClientToken is not needed. */
	char vpc[32], id[32];
	struct api_auth auth = {.key.account_id = ACCOUNT_A};
	struct api_call call = {.auth = &auth};
	api_default_vpc_id(&call, vpc);
	f = form_of("Action", "CreateSecurityGroup", "GroupName", "in-vpc",
	            "GroupDescription", "x", "VpcId", vpc, "ClientToken", "tok",
	            NULL);
	char *body = ec2_ok(ACCOUNT_A, f);
	CHECK(xml_text(body, "groupId", id, sizeof(id)));
	free(body);
	free(f);
}

static void test_tags_and_escaping(void)
{
	char id[32];
	const char *nasty = "<a href=\"x\">&'\x01\x1f\x7f end";
	const char *escaped = "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
	                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end";
	char *f = form_of("Action", "CreateSecurityGroup", "GroupName",
	                  "nasty<&>", "GroupDescription", nasty,
	                  "TagSpecification.1.ResourceType", "security-group",
	                  "TagSpecification.1.Tag.1.Key", "Name",
	                  "TagSpecification.1.Tag.1.Value", nasty,
	                  "TagSpecification.1.Tag.2.Key", "env",
	                  "TagSpecification.1.Tag.2.Value", "prod", NULL);
	char *body = ec2_ok(ACCOUNT_A, f);
	free(f);
	CHECK(xml_text(body, "groupId", id, sizeof(id)));
	char want[512];
	snprintf(want, sizeof(want),
	         "<tagSet><item><key>Name</key><value>%s</value></item><item>"
	         "<key>env</key><value>prod</value></item></tagSet>",
	         escaped);
	CHECK(strstr(body, want) != NULL);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "tag:env&Filter.1.Value.1=prod");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	CHECK(strstr(body, "<groupName>nasty&lt;&amp;&gt;</groupName>") !=
	      NULL);
	snprintf(want, sizeof(want), "<groupDescription>%s</groupDescription>",
	         escaped);
	CHECK(strstr(body, want) != NULL);
	CHECK(strstr(body, nasty) == NULL);
	free(body);
	/* Tag filters: tag-key, wildcards, and a mismatch. */
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "tag-key&Filter.1.Value.1=Name&Filter.2.Name="
	                         "tag:env&Filter.2.Value.1=pr%3F%3F");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "tag:env&Filter.1.Value.1=dev");
	CHECK(strstr(body, "<securityGroupInfo></securityGroupInfo>") != NULL);
	free(body);
	/* A TagSpecification for another type is not applied here. */
	f = form_of("Action", "CreateSecurityGroup", "GroupName", "other-tags",
	            "GroupDescription", "x", "TagSpecification.1.ResourceType",
	            "instance", "TagSpecification.1.Tag.1.Key", "k", NULL);
	body = ec2_ok(ACCOUNT_A, f);
	CHECK(strstr(body, "<tagSet>") == NULL);
	free(body);
	free(f);
}

static void test_rules_flat(void)
{
	char id[32], form[512];
	free(create_group(ACCOUNT_A, "flat", "flat rules", id));
	snprintf(form, sizeof(form),
	         "Action=AuthorizeSecurityGroupIngress&GroupId=%s&IpProtocol="
	         "tcp&FromPort=22&ToPort=22&CidrIp=10.0.0.0/8",
	         id);
	char *body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<return>true</return><securityGroupRuleSet><item>"
	                   "<securityGroupRuleId>sgr-") != NULL);
	CHECK(strstr(body, "<isEgress>false</isEgress><ipProtocol>tcp"
	                   "</ipProtocol><fromPort>22</fromPort><toPort>22"
	                   "</toPort><cidrIpv4>10.0.0.0/8</cidrIpv4>") != NULL);
	free(body);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidPermission.Duplicate"));
	/* By name, with a source group alone: TCP, UDP and ICMP. */
	free(ec2_ok(ACCOUNT_A, "Action=AuthorizeSecurityGroupIngress&GroupName="
	                       "flat&SourceSecurityGroupName=default&"
	                       "SourceSecurityGroupOwnerId=" ACCOUNT_A));
	snprintf(form, sizeof(form),
	         "Action=DescribeSecurityGroups&GroupId.1=%s", id);
	body = ec2_ok(ACCOUNT_A, form);
	char *item = group_item(body, id);
	char dflt[32], want[1024];
	struct api_auth auth = {.key.account_id = ACCOUNT_A};
	struct api_call call = {.auth = &auth};
	api_default_group_id(&call, dflt);
	snprintf(
	    want, sizeof(want),
	    "<ipPermissions><item><ipProtocol>icmp</ipProtocol><fromPort>"
	    "-1</fromPort><toPort>-1</toPort><groups><item><userId>" ACCOUNT_A
	    "</userId><groupId>%s</groupId></item></groups>"
	    "<ipRanges></ipRanges><ipv6Ranges></ipv6Ranges>"
	    "<prefixListIds></prefixListIds></item><item><ipProtocol>tcp"
	    "</ipProtocol><fromPort>0</fromPort><toPort>65535</toPort>",
	    dflt);
	CHECK(strstr(item, want) != NULL);
	CHECK(strstr(item, "<item><ipProtocol>tcp</ipProtocol><fromPort>22"
	                   "</fromPort><toPort>22</toPort><groups></groups>"
	                   "<ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item>"
	                   "</ipRanges>") != NULL);
	CHECK(strstr(item, "<ipProtocol>udp</ipProtocol><fromPort>0</fromPort>"
	                   "<toPort>65535</toPort>") != NULL);
	free(item);
	free(body);
	/* Revoking by the flat shape. */
	snprintf(form, sizeof(form),
	         "Action=RevokeSecurityGroupIngress&GroupId=%s&IpProtocol=tcp&"
	         "FromPort=22&ToPort=22&CidrIp=10.0.0.0/8",
	         id);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<return>true</return></RevokeSecurityGroupIngress"
	                   "Response>") != NULL);
	free(body);
	/* Revoking it again: still true, and the rule comes back unknown. */
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<return>true</return><unknownIpPermissionSet>"
	                   "<item><ipProtocol>tcp</ipProtocol><fromPort>22"
	                   "</fromPort><toPort>22</toPort><groups></groups>"
	                   "<ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item>"
	                   "</ipRanges>") != NULL);
	free(body);
}

static void test_rules_structured(void)
{
	char id[32], peer[32];
	free(create_group(ACCOUNT_A, "structured", "d", id));
	free(create_group(ACCOUNT_A, "peer", "d", peer));
	char *f = form_of(
	    "Action", "AuthorizeSecurityGroupIngress", "GroupId", id,
	    "IpPermissions.0.IpProtocol", "6", "IpPermissions.0.FromPort", "80",
	    "IpPermissions.0.ToPort", "443",
	    "IpPermissions.0.IpRanges.0.CidrIp", "192.168.0.0/16",
	    "IpPermissions.0.IpRanges.0.Description", "lan <&>",
	    "IpPermissions.0.IpRanges.1.CidrIp", "10.1.0.0/16",
	    "IpPermissions.0.Ipv6Ranges.1.CidrIpv6", "2001:DB8::/32",
	    "IpPermissions.0.Groups.1.GroupId", peer,
	    "IpPermissions.0.Groups.1.Description", "from peer",
	    "IpPermissions.0.UserIdGroupPairs.1.GroupName", "structured",
	    "IpPermissions.0.PrefixListIds.1.PrefixListId", "pl-12345678",
	    "IpPermissions.1.IpProtocol", "icmp", "IpPermissions.1.FromPort",
	    "8", "IpPermissions.1.ToPort", "-1",
	    "IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0",
	    "IpPermissions.2.IpProtocol", "50", "IpPermissions.2.FromPort", "1",
	    "IpPermissions.2.ToPort", "2", "IpPermissions.2.IpRanges.1.CidrIp",
	    "1.2.3.4/32", NULL);
	char *body = ec2_ok(ACCOUNT_A, f);
	free(f);
	CHECK_EQ_U64(count_of(body, "<securityGroupRuleId>"), 8);
	free(body);
	char form[256];
	snprintf(form, sizeof(form),
	         "Action=DescribeSecurityGroups&GroupId.1=%s", id);
	body = ec2_ok(ACCOUNT_A, f = xstrdup(form));
	free(f);
	char *item = group_item(body, id);
	char want[2048];
	snprintf(want, sizeof(want),
	         "<ipPermissions><item><ipProtocol>50</ipProtocol><groups>"
	         "</groups><ipRanges><item><cidrIp>1.2.3.4/32</cidrIp></item>"
	         "</ipRanges><ipv6Ranges></ipv6Ranges><prefixListIds>"
	         "</prefixListIds></item><item><ipProtocol>icmp</ipProtocol>"
	         "<fromPort>8</fromPort><toPort>-1</toPort><groups></groups>"
	         "<ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges>"
	         "<ipv6Ranges></ipv6Ranges><prefixListIds></prefixListIds>"
	         "</item><item><ipProtocol>tcp</ipProtocol><fromPort>80"
	         "</fromPort><toPort>443</toPort><groups>");
	CHECK(strstr(item, want) != NULL);
	CHECK(strstr(item,
	             "<ipRanges><item><cidrIp>10.1.0.0/16</cidrIp></item>"
	             "<item><cidrIp>192.168.0.0/16</cidrIp><description>"
	             "lan &lt;&amp;&gt;</description></item></ipRanges>"
	             "<ipv6Ranges><item><cidrIpv6>2001:db8::/32"
	             "</cidrIpv6></item></ipv6Ranges><prefixListIds><item>"
	             "<prefixListId>pl-12345678</prefixListId></item>"
	             "</prefixListIds></item></ipPermissions>") != NULL);
	snprintf(want, sizeof(want),
	         "<item><description>from peer</description><userId>" ACCOUNT_A
	         "</userId><groupId>%s</groupId></item>",
	         peer);
	CHECK(strstr(item, want) != NULL);
	snprintf(want, sizeof(want),
	         "<item><userId>" ACCOUNT_A "</userId><groupId>%s</groupId>"
	         "</item>",
	         id);
	CHECK(strstr(item, want) != NULL);
	free(item);
	free(body);

	/* Rule filters: any rule of the direction may match. */
	body =
	    ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                      "ip-permission.from-port&Filter.1.Value.1=80&"
	                      "Filter.2.Name=ip-permission.cidr&Filter.2."
	                      "Value.1=1.2.3.4/32&Filter.3.Name=ip-permission."
	                      "protocol&Filter.3.Value.1=icmp");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	CHECK(strstr(body, id) != NULL);
	free(body);
	snprintf(form, sizeof(form),
	         "Action=DescribeSecurityGroups&Filter.1.Name=ip-permission."
	         "group-id&Filter.1.Value.1=%s",
	         peer);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "egress.ip-permission.cidr&Filter.1.Value.1="
	                         "0.0.0.0/0&Filter.2.Name=group-name&Filter.2."
	                         "Value.1=structured");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 1);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "ip-permission.to-port&Filter.1.Value.1=9999");
	CHECK(strstr(body, "<securityGroupInfo></securityGroupInfo>") != NULL);
	free(body);

	/* A referenced group cannot be deleted. */
	snprintf(form, sizeof(form), "Action=DeleteSecurityGroup&GroupId=%s",
	         peer);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "DependencyViolation"));

	/* Revoke part of a permission by rule id and by shape. */
	f = form_of("Action", "RevokeSecurityGroupIngress", "GroupId", id,
	            "IpPermissions.1.IpProtocol", "tcp",
	            "IpPermissions.1.FromPort", "80", "IpPermissions.1.ToPort",
	            "443", "IpPermissions.1.Groups.1.GroupId", peer,
	            "IpPermissions.1.IpRanges.1.CidrIp", "10.9.0.0/16", NULL);
	body = ec2_ok(ACCOUNT_A, f);
	free(f);
	CHECK(strstr(body, "<unknownIpPermissionSet><item><ipProtocol>tcp"
	                   "</ipProtocol><fromPort>80</fromPort><toPort>443"
	                   "</toPort><groups></groups><ipRanges><item><cidrIp>"
	                   "10.9.0.0/16</cidrIp></item></ipRanges>") != NULL);
	free(body);
	free(ec2_ok(ACCOUNT_A, form)); /* the peer is free now */
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=RevokeSecurityGroupIngress&GroupName=structured"
	                "&SecurityGroupRuleId.1=sgr-0123456789abcdef0",
	                400, "InvalidSecurityGroupRuleId.NotFound"));
}

static void test_egress(void)
{
	char id[32], form[512];
	free(create_group(ACCOUNT_A, "egress", "d", id));
	snprintf(form, sizeof(form),
	         "Action=RevokeSecurityGroupEgress&GroupId=%s&IpPermissions.1."
	         "IpProtocol=-1&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0",
	         id);
	char *body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "unknownIpPermissionSet") == NULL);
	free(body);
	snprintf(
	    form, sizeof(form),
	    "Action=AuthorizeSecurityGroupEgress&GroupId=%s&IpPermissions.1"
	    ".IpProtocol=udp&IpPermissions.1.FromPort=53&IpPermissions.1."
	    "ToPort=53&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.2/32",
	    id);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<isEgress>true</isEgress>") != NULL);
	free(body);
	snprintf(form, sizeof(form),
	         "Action=DescribeSecurityGroups&GroupId.1=%s", id);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body,
	             "<ipPermissions></ipPermissions><ipPermissionsEgress>"
	             "<item><ipProtocol>udp</ipProtocol><fromPort>53"
	             "</fromPort><toPort>53</toPort><groups></groups>"
	             "<ipRanges><item><cidrIp>10.0.0.2/32</cidrIp></item>"
	             "</ipRanges><ipv6Ranges></ipv6Ranges><prefixListIds>"
	             "</prefixListIds></item></ipPermissionsEgress>") != NULL);
	/* The rule id from the describe revokes it. */
	char rule[32];
	snprintf(
	    form, sizeof(form),
	    "Action=AuthorizeSecurityGroupEgress&GroupId=%s&IpProtocol=tcp&"
	    "FromPort=1&ToPort=2&CidrIp=10.0.0.0/24",
	    id);
	free(body);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(xml_text(body, "securityGroupRuleId", rule, sizeof(rule)));
	free(body);
	snprintf(form, sizeof(form),
	         "Action=RevokeSecurityGroupIngress&GroupId=%s&"
	         "SecurityGroupRuleId.1=%s",
	         id, rule);
	CHECK(ec2_fails(ACCOUNT_A, form, 400,
	                "InvalidSecurityGroupRuleId.NotFound"));
	snprintf(form, sizeof(form),
	         "Action=RevokeSecurityGroupEgress&GroupId=%s&"
	         "SecurityGroupRuleId.1=%s",
	         id, rule);
	free(ec2_ok(ACCOUNT_A, form));
	snprintf(form, sizeof(form),
	         "Action=DescribeSecurityGroups&Filter.1.Name=egress.ip-"
	         "permission.to-port&Filter.1.Value.1=2&Filter.2.Name=group-id&"
	         "Filter.2.Value.1=%s",
	         id);
	body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<securityGroupInfo></securityGroupInfo>") != NULL);
	free(body);
}

static void test_rule_errors(void)
{
	char id[32], form[512];
	free(create_group(ACCOUNT_A, "bad-rules", "d", id));
	static const struct {
		const char *rest, *code;
	} cases[] = {
	    {"IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=10.0.0.1/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=10.0.0.0",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=300.0.0.0/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=10.0.0.0/33",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=22&CidrIp=10.0.0.0/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=30&ToPort=20&CidrIp=10.0.0.0/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=0&ToPort=65536&CidrIp=10.0.0.0/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=tcp&FromPort=x&ToPort=1&CidrIp=10.0.0.0/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=icmp&FromPort=256&ToPort=1&CidrIp=10.0.0.0/8",
	     "InvalidParameterValue"},
	    {"IpProtocol=gre&CidrIp=10.0.0.0/8", "InvalidParameterValue"},
	    {"IpProtocol=256&CidrIp=10.0.0.0/8", "InvalidParameterValue"},
	    {"CidrIp=10.0.0.0/8", "MissingParameter"},
	    {"IpProtocol=tcp&FromPort=1&ToPort=2", "MissingParameter"},
	    {"DryRun=false", "MissingParameter"},
	    {"IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=1&"
	     "IpPermissions.1.ToPort=1",
	     "InvalidParameterValue"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.Ipv6Ranges.1."
	     "CidrIpv6=2001:db8::1/32",
	     "InvalidParameterValue"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.Ipv6Ranges.1."
	     "CidrIpv6=zz::/32",
	     "InvalidParameterValue"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.Groups.1.GroupId="
	     "sg-1234567890abcdef0",
	     "InvalidGroup.NotFound"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.Groups.1.GroupId="
	     "group",
	     "InvalidGroupId.Malformed"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.Groups.1.GroupName="
	     "nope",
	     "InvalidGroup.NotFound"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.Groups.1.GroupName="
	     "default&IpPermissions.1.Groups.1.UserId=" ACCOUNT_B,
	     "InvalidGroup.NotFound"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.PrefixListIds.1."
	     "PrefixListId=list",
	     "InvalidPrefixListId.Malformed"},
	    {"IpPermissions.1.IpProtocol=-1&IpPermissions.1.IpRanges.1.CidrIp="
	     "1.0.0.0/8&IpPermissions.2.IpProtocol=all&IpPermissions.2."
	     "IpRanges.1.CidrIp=1.0.0.0/8",
	     "InvalidPermission.Duplicate"},
	    {"IpProtocol=tcp&FromPort=1&ToPort=1&CidrIp=1.0.0.0/8&DryRun=true",
	     "DryRunOperation"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(form, sizeof(form),
		         "Action=AuthorizeSecurityGroupIngress&GroupId=%s&%s",
		         id, cases[i].rest);
		int status =
		    strcmp(cases[i].code, "DryRunOperation") ? 400 : 412;
		CHECK(ec2_fails(ACCOUNT_A, form, status, cases[i].code));
	}
	/* Nothing of the above was written. */
	snprintf(form, sizeof(form),
	         "Action=DescribeSecurityGroups&GroupId.1=%s", id);
	char *body = ec2_ok(ACCOUNT_A, form);
	CHECK(strstr(body, "<ipPermissions></ipPermissions>") != NULL);
	free(body);
	/* Sixty rules per direction. */
	for (int i = 0; i < 60; i++) {
		snprintf(
		    form, sizeof(form),
		    "Action=AuthorizeSecurityGroupIngress&GroupId=%s&"
		    "IpProtocol=tcp&FromPort=%d&ToPort=%d&CidrIp=1.0.0.0/8",
		    id, i, i);
		free(ec2_ok(ACCOUNT_A, form));
	}
	snprintf(
	    form, sizeof(form),
	    "Action=AuthorizeSecurityGroupIngress&GroupId=%s&IpProtocol=tcp"
	    "&FromPort=99&ToPort=99&CidrIp=1.0.0.0/8",
	    id);
	CHECK(ec2_fails(ACCOUNT_A, form, 400,
	                "RulesPerSecurityGroupLimitExceeded"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=AuthorizeSecurityGroupIngress&GroupName=nope&"
	                "IpProtocol=tcp&FromPort=1&ToPort=1&CidrIp=1.0.0.0/8",
	                400, "InvalidGroup.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=AuthorizeSecurityGroupIngress&IpProtocol=tcp&"
	                "FromPort=1&ToPort=1&CidrIp=1.0.0.0/8",
	                400, "MissingParameter"));
}

static void test_isolation_http(void)
{
	char id[32], form[512], *body;
	free(create_group(ACCOUNT_A, "private", "A's own", id));
	const char *forms[] = {
	    "Action=DescribeSecurityGroups&GroupId.1=%s",
	    "Action=DeleteSecurityGroup&GroupId=%s",
	    "Action=AuthorizeSecurityGroupIngress&GroupId=%s&IpProtocol=tcp&"
	    "FromPort=1&ToPort=1&CidrIp=1.0.0.0/8",
	    "Action=RevokeSecurityGroupIngress&GroupId=%s&IpProtocol=tcp&"
	    "FromPort=1&ToPort=1&CidrIp=1.0.0.0/8",
	    "Action=CreateTags&ResourceId.1=%s&Tag.1.Key=k&Tag.1.Value=v",
	    "Action=DeleteTags&ResourceId.1=%s",
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(form, sizeof(form), forms[i], id);
		int st = ec2_http(KEY_B, SECRET_B, form, &body);
		CHECK_EQ_U64(st, 400);
		CHECK(strstr(body, "<Code>InvalidGroup.NotFound</Code>") !=
		      NULL);
		free(body);
	}
	int st = ec2_http(KEY_B, SECRET_B,
	                  "Action=DescribeSecurityGroups&Filter.1.Name="
	                  "group-name&Filter.1.Value.1=private",
	                  &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<securityGroupInfo></securityGroupInfo>") != NULL);
	free(body);
	st = ec2_http(KEY_B, SECRET_B,
	              "Action=DeleteSecurityGroup&GroupName=private", &body);
	CHECK_EQ_U64(st, 400);
	CHECK(strstr(body, "<Code>InvalidGroup.NotFound</Code>") != NULL);
	free(body);
	/* A may still use and delete it; the name is free again after. */
	snprintf(form, sizeof(form), "Action=DeleteSecurityGroup&GroupId=%s",
	         id);
	st = ec2_http(KEY_A, SECRET_A, form, &body);
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<return>true</return>") != NULL);
	free(body);
	CHECK(ec2_fails(ACCOUNT_A, form, 400, "InvalidGroup.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DeleteSecurityGroup&GroupId=sg-x",
	                400, "InvalidGroupId.Malformed"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DeleteSecurityGroup", 400,
	                "MissingParameter"));
	free(create_group(ACCOUNT_A, "private", "again", id));
}

static void test_describe_errors(void)
{
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&GroupId.1="
	                "sg-0000000000000000f",
	                400, "InvalidGroup.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&GroupId.1=bad", 400,
	                "InvalidGroupId.Malformed"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&GroupName.1=absent", 400,
	                "InvalidGroup.NotFound"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&Filter.1.Name=colour&"
	                "Filter.1.Value.1=red",
	                400, "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&Filter.1.Name=ip-"
	                "permission.colour&Filter.1.Value.1=red",
	                400, "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeSecurityGroups&MaxResults=4",
	                400, "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&MaxResults=1001", 400,
	                "InvalidParameterValue"));
	CHECK(ec2_fails(ACCOUNT_A,
	                "Action=DescribeSecurityGroups&NextToken=%21%21", 400,
	                "InvalidNextToken"));
	CHECK(ec2_fails(ACCOUNT_A, "Action=DescribeSecurityGroups&DryRun=true",
	                412, "DryRunOperation"));
	/* Other filters on group fields. */
	char *body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&"
	                               "Filter.1.Name=description&Filter.1."
	                               "Value.1=A%27s%20%2A&Filter.2.Name="
	                               "owner-id&Filter.2.Value.1=" ACCOUNT_A);
	CHECK(strstr(body, "<groupName>private</groupName>") == NULL);
	free(body);
	body = ec2_ok(ACCOUNT_A, "Action=DescribeSecurityGroups&Filter.1.Name="
	                         "group-name&Filter.1.Value.1=default&Filter.1."
	                         "Value.2=web&Filter.2.Name=vpc-id&Filter.2."
	                         "Value.1=vpc-%2A");
	CHECK_EQ_U64(count_of(body, "<item><ownerId>"), 2);
	free(body);
}

static void test_paging(void)
{
	char id[32], name[32];
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "page-%02d", i);
		free(create_group(ACCOUNT_B, name, "paged", id));
	}
	size_t pages;
	CHECK_EQ_U64(walk_pages(ACCOUNT_B, "", 5, &pages), 13);
	CHECK_EQ_U64(pages, 3);
	CHECK_EQ_U64(walk_pages(ACCOUNT_B,
	                        "&Filter.1.Name=group-name&Filter.1.Value.1="
	                        "page-%2A",
	                        5, &pages),
	             12);
	CHECK_EQ_U64(pages, 3);
	CHECK_EQ_U64(walk_pages(ACCOUNT_B, "", 1000, &pages), 13);
	CHECK_EQ_U64(pages, 1);
}

int main(void)
{
	harness_start();
	RUN(test_create_describe_http);
	RUN(test_default_group);
	RUN(test_create_errors);
	RUN(test_tags_and_escaping);
	RUN(test_rules_flat);
	RUN(test_rules_structured);
	RUN(test_egress);
	RUN(test_rule_errors);
	RUN(test_isolation_http);
	RUN(test_describe_errors);
	RUN(test_paging);
	harness_stop();
	return check_summary();
}
