/*
 * Query strings and forms as EC2 clients send them: strict decoding, order
 * kept, lists indexed from 0 or 1 or not at all, structured members and
 * filters, and the filter wildcards.
 */
#include "check.h"

#include "apiedge_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int parse(struct api_params *p, const char *s)
{
	api_params_init(p);
	return api_params_parse(p, s, strlen(s));
}

static void test_decode(void)
{
	struct api_params p;
	CHECK(parse(&p, "Action=DescribeInstances&Version=2016-11-15&"
	                "Tag.1.Value=a+b%20c%2Bd%26e%3D&Empty=&Bare&&"
	                "%E1%88%B4=%c3%a9") == 0);
	CHECK_EQ_U64(p.n, 6);
	CHECK_STR(api_params_get(&p, "Action"), "DescribeInstances");
	CHECK_STR(api_params_get(&p, "Tag.1.Value"), "a b c+d&e=");
	CHECK_STR(api_params_get(&p, "Empty"), "");
	CHECK_STR(api_params_get(&p, "Bare"), "");
	CHECK_STR(api_params_get(&p, "\xe1\x88\xb4"), "\xc3\xa9");
	CHECK(api_params_get(&p, "action") == NULL); /* case-sensitive */
	CHECK_STR(p.items[0].name, "Action");        /* order kept */
	CHECK_STR(p.items[5].name, "\xe1\x88\xb4");
	api_params_free(&p);

	/* Strictness: bad escapes and NULs are refused. */
	const char *bad[] = {"a=%", "a=%2",  "a=%zz", "a=%0g",
	                     "%=x", "a=%00", "a%00=1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(parse(&p, bad[i]) == -EINVAL);
		api_params_free(&p);
	}
	CHECK(api_params_parse(&p, "a=b\0c", 5) == -EINVAL);
	api_params_free(&p);

	/* Limits: names and counts. */
	char name[API_PARAM_NAME_MAX + 8];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	CHECK(parse(&p, name) == -E2BIG);
	api_params_free(&p);
	size_t cap = (API_PARAMS_MAX + 1) * 4;
	char *many = malloc(cap + 1);
	size_t o = 0;
	for (int i = 0; i <= API_PARAMS_MAX; i++) {
		memcpy(many + o, "a=1&", 4);
		o += 4;
	}
	many[o] = 0;
	CHECK(parse(&p, many) == -E2BIG);
	api_params_free(&p);
	free(many);
}

static void test_lists(void)
{
	struct api_params p;
	const char *v[8];
	/* Index 0, 1-based, out of order, with gaps. */
	CHECK(parse(&p,
	            "InstanceId.2=c&InstanceId.0=a&InstanceId.1=b&"
	            "InstanceId.10=d&InstanceIdx=no&InstanceId.x.y=no") == 0);
	CHECK_EQ_U64(api_params_list(&p, "InstanceId", v, 8), 4);
	CHECK_STR(v[0], "a");
	CHECK_STR(v[1], "b");
	CHECK_STR(v[2], "c");
	CHECK_STR(v[3], "d");
	/* Only max stored, all counted. */
	CHECK_EQ_U64(api_params_list(&p, "InstanceId", v, 2), 4);
	api_params_free(&p);

	/* Un-indexed member, and a single value sent indexed. */
	CHECK(parse(&p, "KeyName=x&InstanceId.1=i-1") == 0);
	CHECK_EQ_U64(api_params_list(&p, "KeyName", v, 8), 1);
	CHECK_STR(v[0], "x");
	CHECK_EQ_U64(api_params_list(&p, "InstanceId", v, 8), 1);
	CHECK_STR(v[0], "i-1");
	CHECK_EQ_U64(api_params_list(&p, "GroupId", v, 8), 0);
	api_params_free(&p);

	/* Equal indexes keep the order sent; leading zeros are no index. */
	CHECK(parse(&p, "Id.1=first&Id.1=second&Id=bare&Id.01=zero") == 0);
	CHECK_EQ_U64(api_params_list(&p, "Id", v, 8), 3);
	CHECK_STR(v[0], "bare");
	CHECK_STR(v[1], "first");
	CHECK_STR(v[2], "second");
	api_params_free(&p);
}

static void test_structured(void)
{
	struct api_params p;
	long idx[8];
	const char *v[8];
	CHECK(parse(&p, "Tag.1.Key=Name&Tag.1.Value=web&Tag.0.Key=env&"
	                "Tag.0.Value=prod&Tag.3.Key=solo") == 0);
	CHECK_EQ_U64(api_params_indexes(&p, "Tag", idx, 8), 3);
	CHECK(idx[0] == 0 && idx[1] == 1 && idx[2] == 3);
	CHECK_STR(api_params_member(&p, "Tag", 0, "Key"), "env");
	CHECK_STR(api_params_member(&p, "Tag", 1, "Value"), "web");
	CHECK(api_params_member(&p, "Tag", 3, "Value") == NULL);
	api_params_free(&p);

	/* TagSpecification.N.Tag.M.Key nests. */
	CHECK(parse(&p, "TagSpecification.1.ResourceType=instance&"
	                "TagSpecification.1.Tag.1.Key=a&"
	                "TagSpecification.1.Tag.2.Key=b&"
	                "TagSpecification.2.ResourceType=volume") == 0);
	CHECK_EQ_U64(api_params_indexes(&p, "TagSpecification", idx, 8), 2);
	CHECK_EQ_U64(api_params_indexes(&p, "TagSpecification.1.Tag", idx, 8),
	             2);
	CHECK_STR(api_params_member(&p, "TagSpecification.1.Tag", 2, "Key"),
	          "b");
	api_params_free(&p);

	/* Un-indexed structured member. */
	CHECK(parse(&p, "Filter.Name=a&Filter.Value=b") == 0);
	CHECK_EQ_U64(api_params_indexes(&p, "Filter", idx, 8), 1);
	CHECK(idx[0] == API_INDEX_NONE);
	CHECK_STR(api_params_member(&p, "Filter", API_INDEX_NONE, "Name"), "a");
	CHECK_EQ_U64(
	    api_params_member_list(&p, "Filter", API_INDEX_NONE, "Value", v, 8),
	    1);
	api_params_free(&p);
}

static void test_filters(void)
{
	struct api_params p;
	struct api_filters f;
	struct api_error err;
	CHECK(parse(&p, "Filter.1.Name=instance-state-name&"
	                "Filter.1.Value.1=running&Filter.1.Value.2=pending&"
	                "Filter.2.Name=tag%3AName&Filter.2.Value=web*&"
	                "Filter.0.Name=vpc-id&Filter.0.Value.0=vpc-1") == 0);
	CHECK(api_filters_parse(&p, &f, &err) == 0);
	CHECK_EQ_U64(f.n, 3);
	CHECK_STR(f.items[0].name, "vpc-id");
	CHECK_STR(f.items[1].name, "instance-state-name");
	CHECK_EQ_U64(f.items[1].n_values, 2);
	CHECK_STR(f.items[1].values[1], "pending");
	CHECK_STR(f.items[2].name, "tag:Name");
	CHECK_EQ_U64(f.items[2].n_values, 1);
	CHECK(api_filter_values_match(&f.items[2], "webserver"));
	CHECK(!api_filter_values_match(&f.items[2], "db"));
	CHECK(api_filter_values_match(&f.items[1], "pending"));
	api_filters_free(&f);
	api_params_free(&p);

	/* A filter without a name. */
	CHECK(parse(&p, "Filter.1.Value.1=x") == 0);
	CHECK(api_filters_parse(&p, &f, &err) < 0);
	CHECK_STR(err.code, "InvalidParameterValue");
	api_params_free(&p);

	/* Wildcards. */
	CHECK(api_filter_match("*", ""));
	CHECK(api_filter_match("a*c", "abbbc"));
	CHECK(api_filter_match("a?c", "abc"));
	CHECK(!api_filter_match("a?c", "ac"));
	CHECK(api_filter_match("*b*", "abc"));
	CHECK(!api_filter_match("*d*", "abc"));
	CHECK(api_filter_match("a\\*", "a*"));
	CHECK(!api_filter_match("a\\*", "ab"));
	CHECK(api_filter_match("exact", "exact"));
	CHECK(!api_filter_match("exact", "exactly"));
	CHECK(api_filter_match("**a**b**", "xxaxxbxx"));
}

static void test_uri_encode(void)
{
	struct mc_buf b;
	mc_buf_init(&b);
	const char *s = "AZaz09-_.~ /+=&%\xe1\x88\xb4";
	api_uri_encode(&b, s, strlen(s));
	mc_buf_put_u8(&b, 0);
	CHECK_STR((char *)b.data, "AZaz09-_.~%20%2F%2B%3D%26%25%E1%88%B4");
	mc_buf_free(&b);
}

int main(void)
{
	RUN(test_decode);
	RUN(test_lists);
	RUN(test_structured);
	RUN(test_filters);
	RUN(test_uri_encode);
	return check_summary();
}
