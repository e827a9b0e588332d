/*
 * Images through a real edge with SigV4-signed requests: RegisterImage
 * (defaults, block device mappings, tags, name rules), DescribeImages
 * (EC2's item shape exactly, ids, owners, filters, paging), DeregisterImage,
 * DryRun, XML escaping and account isolation.
 */
#include "edge_client.h"

static void register_ok(const char *name, char *id, size_t size)
{
	char *body;
	int st = ec_do(&body, "RegisterImage", "Name", name, NULL);
	ec_check_ok(st, body, "RegisterImage");
	CHECK(ec_text(body, "imageId", id, size));
	CHECK(api_res_id_valid("ami", id) && strlen(id) == 21);
	free(body);
}

static void deregister_ok(const char *id)
{
	char *body;
	int st = ec_do(&body, "DeregisterImage", "ImageId", id, NULL);
	ec_check_ok(st, body, "DeregisterImage");
	CHECK(strstr(body, "</requestId><return>true</return>"
	                   "</DeregisterImageResponse>") != NULL);
	free(body);
}

static void test_register_describe(void)
{
	char *body, id[64], created[64];
	int st = ec_do(
	    &body, "RegisterImage", "Name", "web (v1) [x] it's@home_1.0/b-c",
	    "Description", "<b>fish & \"chips\"</b> 'n'", "Architecture",
	    "arm64", "RootDeviceName", "/dev/xvda", "KernelId", "aki-12345678",
	    "EnaSupport", "true", "BlockDeviceMapping.1.DeviceName",
	    "/dev/xvda", "BlockDeviceMapping.1.Ebs.SnapshotId",
	    "snap-0123456789abcdef0", "BlockDeviceMapping.1.Ebs.VolumeSize",
	    "12", "BlockDeviceMapping.1.Ebs.VolumeType", "gp3",
	    "BlockDeviceMapping.1.Ebs.DeleteOnTermination", "false",
	    "BlockDeviceMapping.2.DeviceName", "/dev/sdb",
	    "BlockDeviceMapping.2.VirtualName", "ephemeral0",
	    "BlockDeviceMapping.3.DeviceName", "/dev/sdc",
	    "BlockDeviceMapping.3.NoDevice", "",
	    "TagSpecification.1.ResourceType", "image",
	    "TagSpecification.1.Tag.1.Key", "Name",
	    "TagSpecification.1.Tag.1.Value", "a&b", NULL);
	ec_check_ok(st, body, "RegisterImage");
	CHECK(ec_text(body, "imageId", id, sizeof(id)));
	free(body);

	st = ec_do(&body, "DescribeImages", "ImageId.1", id, NULL);
	ec_check_ok(st, body, "DescribeImages");
	CHECK(ec_text(body, "creationDate", created, sizeof(created)));
	CHECK(strlen(created) == 24 && created[23] == 'Z');
	char want[4096];
	snprintf(
	    want, sizeof(want),
	    "<imagesSet><item><imageId>%s</imageId><imageLocation>"
	    "111122223333/web (v1) [x] it&apos;s@home_1.0/b-c</imageLocation>"
	    "<imageState>available</imageState><imageOwnerId>111122223333"
	    "</imageOwnerId><creationDate>%s</creationDate><isPublic>false"
	    "</isPublic><architecture>arm64</architecture><imageType>machine"
	    "</imageType><kernelId>aki-12345678</kernelId><name>web (v1) [x] "
	    "it&apos;s@home_1.0/b-c</name><description>&lt;b&gt;fish &amp; "
	    "&quot;chips&quot;&lt;/b&gt; &apos;n&apos;</description>"
	    "<rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda"
	    "</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda"
	    "</deviceName><ebs><snapshotId>snap-0123456789abcdef0</snapshotId>"
	    "<volumeSize>12</volumeSize><deleteOnTermination>false"
	    "</deleteOnTermination><volumeType>gp3</volumeType><encrypted>"
	    "false</encrypted></ebs></item><item><deviceName>/dev/sdb"
	    "</deviceName><virtualName>ephemeral0</virtualName></item><item>"
	    "<deviceName>/dev/sdc</deviceName><noDevice></noDevice></item>"
	    "</blockDeviceMapping><virtualizationType>hvm</virtualizationType>"
	    "<enaSupport>true</enaSupport><hypervisor>xen</hypervisor><tagSet>"
	    "<item><key>Name</key><value>a&amp;b</value></item></tagSet>"
	    "</item></imagesSet></DescribeImagesResponse>",
	    id, created);
	if (!strstr(body, want))
		fprintf(stderr, "got %s\n", body);
	CHECK(strstr(body, want) != NULL);
	free(body);
	deregister_ok(id);

	/* Defaults: x86_64, /dev/sda1, hvm, no mappings. */
	register_ok("plain", id, sizeof(id));
	st = ec_do(&body, "DescribeImages", "Owner.1", "self", NULL);
	CHECK(strstr(body, "<imageLocation>111122223333/plain</imageLocation>"
	                   "<imageState>available</imageState>") != NULL);
	CHECK(strstr(body, "<architecture>x86_64</architecture>") != NULL);
	CHECK(strstr(body, "<rootDeviceName>/dev/sda1</rootDeviceName>"
	                   "<blockDeviceMapping></blockDeviceMapping>"
	                   "<virtualizationType>hvm</virtualizationType>"
	                   "<enaSupport>false</enaSupport>") != NULL);
	CHECK(strstr(body, "<description>") == NULL);
	CHECK(strstr(body, "<tagSet></tagSet>") != NULL);
	free(body);
	deregister_ok(id);
}

static void test_register_errors(void)
{
	static const struct {
		const char *param, *value, *code;
	} bad[] = {
	    {"Name", "", "MissingParameter"},
	    {"Name", "ab", "InvalidAMIName.Malformed"},
	    {"Name", "a<b>c", "InvalidAMIName.Malformed"},
	    {"Architecture", "sparc", "InvalidParameterValue"},
	    {"KernelId", "kernel-1", "InvalidAKIID.Malformed"},
	    {"RamdiskId", "ari-1", "InvalidARIID.Malformed"},
	    {"VirtualizationType", "pv", "InvalidParameterValue"},
	    {"EnaSupport", "yes", "InvalidParameterValue"},
	    {"BlockDeviceMapping.1.Ebs.VolumeSize", "10",
	     "MissingParameter"}, /* no DeviceName */
	    {"TagSpecification.1.ResourceType", "image",
	     "InvalidParameterValue"}, /* an aws: tag below */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *body;
		const char *name = strcmp(bad[i].param, "Name") == 0
		                       ? bad[i].value
		                       : "good-name";
		int st =
		    strcmp(bad[i].param, "Name") == 0
		        ? ec_do(&body, "RegisterImage", "Name", name, NULL)
		        : ec_do(&body, "RegisterImage", "Name", name,
		                bad[i].param, bad[i].value,
		                "TagSpecification.1.Tag.1.Key", "aws:x", NULL);
		ec_check_error(st, body, 400, bad[i].code);
		free(body);
	}
	char id[64], *body;
	register_ok("twice", id, sizeof(id));
	int st = ec_do(&body, "RegisterImage", "Name", "twice", NULL);
	ec_check_error(st, body, 400, "InvalidAMIName.Duplicate");
	free(body);
	st = ec_do(&body, "RegisterImage", "Name", "dry", "DryRun", "true",
	           NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	st = ec_do(&body, "DescribeImages", "Filter.1.Name", "name",
	           "Filter.1.Value.1", "dry", NULL);
	CHECK(strstr(body, "<imagesSet></imagesSet>") != NULL);
	free(body);

	st = ec_do(&body, "DeregisterImage", "ImageId", "ami-xyz", NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.Malformed");
	free(body);
	st = ec_do(&body, "DeregisterImage", NULL);
	ec_check_error(st, body, 400, "MissingParameter");
	free(body);
	st = ec_do(&body, "DeregisterImage", "ImageId", id, "DryRun", "true",
	           NULL);
	ec_check_error(st, body, 412, "DryRunOperation");
	free(body);
	deregister_ok(id);
	st = ec_do(&body, "DeregisterImage", "ImageId", id, NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.NotFound");
	free(body);
	/* Its name is free again. */
	register_ok("twice", id, sizeof(id));
	deregister_ok(id);
}

static void test_describe_filters(void)
{
	char a[64], b[64], *body;
	int st =
	    ec_do(&body, "RegisterImage", "Name", "alpha-1", "Architecture",
	          "i386", "TagSpecification.1.ResourceType", "image",
	          "TagSpecification.1.Tag.1.Key", "os",
	          "TagSpecification.1.Tag.1.Value", "debian", NULL);
	CHECK(ec_text(body, "imageId", a, sizeof(a)));
	free(body);
	st = ec_do(&body, "RegisterImage", "Name", "beta-1", "Description",
	           "second", "BlockDeviceMapping.1.DeviceName", "/dev/sda1",
	           "BlockDeviceMapping.1.Ebs.VolumeSize", "30", NULL);
	CHECK(ec_text(body, "imageId", b, sizeof(b)));
	free(body);
	static const struct {
		const char *name, *value;
		int want; /* 0 none, 1 alpha, 2 beta, 3 both */
	} cases[] = {
	    {"name", "alpha-*", 1},
	    {"architecture", "x86_64", 2},
	    {"state", "available", 3},
	    {"owner-id", ACCOUNT_A, 3},
	    {"owner-id", ACCOUNT_B, 0},
	    {"is-public", "false", 3},
	    {"is-public", "true", 0},
	    {"image-type", "machine", 3},
	    {"tag:os", "debian", 1},
	    {"tag-key", "os", 1},
	    {"tag-value", "deb*", 1},
	    {"description", "second", 2},
	    {"block-device-mapping.volume-size", "30", 2},
	    {"root-device-type", "ebs", 3},
	    {"virtualization-type", "hvm", 3},
	    {"hypervisor", "xen", 3},
	    {"owner-alias", "amazon", 0},
	    {"platform", "windows", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		st = ec_do(&body, "DescribeImages", "Filter.1.Name",
		           cases[i].name, "Filter.1.Value.1", cases[i].value,
		           NULL);
		ec_check_ok(st, body, "DescribeImages");
		bool has_a = strstr(body, a) != NULL;
		bool has_b = strstr(body, b) != NULL;
		if (has_a + 2 * has_b != cases[i].want)
			fprintf(stderr, "filter %s=%s: %d\n", cases[i].name,
			        cases[i].value, has_a + 2 * has_b);
		CHECK_EQ_U64(has_a + 2 * has_b, cases[i].want);
		free(body);
	}
	/* Filters AND; the values of one filter OR. */
	st = ec_do(&body, "DescribeImages", "Filter.1.Name", "name",
	           "Filter.1.Value.1", "alpha-1", "Filter.1.Value.2", "beta-1",
	           "Filter.2.Name", "image-id", "Filter.2.Value.1", b, NULL);
	CHECK(strstr(body, a) == NULL && strstr(body, b) != NULL);
	free(body);
	st = ec_do(&body, "DescribeImages", "Filter.1.Name", "color",
	           "Filter.1.Value.1", "x", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);

	/* Ids and owners. */
	st = ec_do(&body, "DescribeImages", "ImageId.1", b, "ImageId.2", a,
	           NULL);
	CHECK_EQ_U64(ec_count(body, "<imageId>"), 2);
	free(body);
	st = ec_do(&body, "DescribeImages", "ImageId.1", a, "ImageId.2",
	           "ami-0123456789abcdef0", NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.NotFound");
	CHECK(strstr(body, "ami-0123456789abcdef0") != NULL);
	free(body);
	st = ec_do(&body, "DescribeImages", "ImageId.1", "ami-12", NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.Malformed");
	free(body);
	const char *owners[][2] = {
	    {"self", "2"}, {ACCOUNT_A, "2"}, {"amazon", "0"}, {ACCOUNT_B, "0"}};
	for (size_t i = 0; i < 4; i++) {
		st = ec_do(&body, "DescribeImages", "Owner.1", owners[i][0],
		           "ExecutableBy.1", "all", NULL);
		ec_check_ok(st, body, "DescribeImages");
		CHECK_EQ_U64(ec_count(body, "<imageId>"),
		             (uint64_t)atoi(owners[i][1]));
		free(body);
	}
	deregister_ok(a);
	deregister_ok(b);
}

static void test_paging(void)
{
	char ids[7][64], name[16], token[256], *body;
	for (int i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "page-%d", i);
		register_ok(name, ids[i], sizeof(ids[i]));
	}
	int st = ec_do(&body, "DescribeImages", "MaxResults", "5", NULL);
	ec_check_ok(st, body, "DescribeImages");
	CHECK_EQ_U64(ec_count(body, "<imageId>"), 5);
	CHECK(ec_text(body, "nextToken", token, sizeof(token)));
	CHECK(strstr(body, "</imagesSet><nextToken>") != NULL);
	free(body);
	st = ec_do(&body, "DescribeImages", "MaxResults", "5", "NextToken",
	           token, NULL);
	ec_check_ok(st, body, "DescribeImages");
	CHECK_EQ_U64(ec_count(body, "<imageId>"), 2);
	CHECK(strstr(body, "<nextToken>") == NULL);
	free(body);
	st = ec_do(&body, "DescribeImages", "MaxResults", "4", NULL);
	ec_check_error(st, body, 400, "InvalidParameterValue");
	free(body);
	st = ec_do(&body, "DescribeImages", "NextToken", "!!", NULL);
	ec_check_error(st, body, 400, "InvalidNextToken");
	free(body);
	for (int i = 0; i < 7; i++)
		deregister_ok(ids[i]);
}

static void test_isolation(void)
{
	char id[64], *body;
	register_ok("private", id, sizeof(id));
	int st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeImages", NULL);
	ec_check_ok(st, body, "DescribeImages");
	CHECK(strstr(body, "<imagesSet></imagesSet>") != NULL);
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeImages", "ImageId.1", id,
	              NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.NotFound");
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DescribeImages", "Owner.1",
	              ACCOUNT_A, NULL);
	CHECK(strstr(body, "<imagesSet></imagesSet>") != NULL);
	free(body);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DeregisterImage", "ImageId", id,
	              NULL);
	ec_check_error(st, body, 400, "InvalidAMIID.NotFound");
	free(body);
	/* Names are unique per account only. */
	st = ec_do_as(KEY_B, SECRET_B, &body, "RegisterImage", "Name",
	              "private", NULL);
	ec_check_ok(st, body, "RegisterImage");
	char idb[64];
	CHECK(ec_text(body, "imageId", idb, sizeof(idb)));
	free(body);
	st = ec_do(&body, "DescribeImages", NULL);
	CHECK(strstr(body, id) != NULL && strstr(body, idb) == NULL);
	free(body);
	deregister_ok(id);
	st = ec_do_as(KEY_B, SECRET_B, &body, "DeregisterImage", "ImageId", idb,
	              NULL);
	ec_check_ok(st, body, "DeregisterImage");
	free(body);
	size_t left = 0;
	for (size_t i = 0; i < ec_fake.n; i++)
		left += strcmp(ec_fake.recs[i].kind, API_KIND_IMAGE) == 0 ||
		        strcmp(ec_fake.recs[i].kind, API_KIND_TAG) == 0;
	CHECK_EQ_U64(left, 0);
}

int main(void)
{
	ec_start("us-east-1");
	RUN(test_register_describe);
	RUN(test_register_errors);
	RUN(test_describe_filters);
	RUN(test_paging);
	RUN(test_isolation);
	ec_stop();
	return check_summary();
}
