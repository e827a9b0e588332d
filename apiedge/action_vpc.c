/*
 * The default VPC and its subnets (DescribeVpcs, DescribeSubnets). Every
 * account has exactly one VPC, 172.31.0.0/16, and one default subnet per
 * availability zone, 172.31.(16k).0/20 for the k-th zone in name order.
 * They are not records: their ids are derived from the account id (and the
 * zone name), so every edge names them alike without writing anything.
 * Only their tags are records, as for any other resource.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDS_MAX 1000

void api_res_derived_id(const char *prefix, const char *seed, char *out,
                        size_t size)
{
	uint8_t h[16];
	char hex[33];
	mc_hash(h, sizeof(h), seed, strlen(seed));
	mc_hex_encode(hex, h, sizeof(h));
	hex[17] = '\0';
	snprintf(out, size, "%s-%s", prefix, hex);
}

void api_default_vpc_id(const struct api_call *call, char out[32])
{
	char seed[64];
	snprintf(seed, sizeof(seed), "vpc\n%s", call->auth->key.account_id);
	api_res_derived_id("vpc", seed, out, 32);
}

struct zone_list {
	char names[API_ZONES_MAX][API_ZONE_NAME_MAX];
	size_t n;
};

static int zone_one(void *arg, const char *zone, unsigned alive, unsigned hosts)
{
	(void)alive;
	(void)hosts;
	struct zone_list *z = arg;
	if (!zone[0] || strlen(zone) >= API_ZONE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < z->n; i++)
		if (strcmp(z->names[i], zone) == 0)
			return 0;
	/* Past the limit the names still compete for the first places. */
	if (z->n < API_ZONES_MAX) {
		snprintf(z->names[z->n++], API_ZONE_NAME_MAX, "%s", zone);
		return 0;
	}
	size_t last = 0;
	for (size_t i = 1; i < z->n; i++)
		if (strcmp(z->names[i], z->names[last]) > 0)
			last = i;
	if (strcmp(zone, z->names[last]) < 0)
		snprintf(z->names[last], API_ZONE_NAME_MAX, "%s", zone);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

size_t api_default_subnets(const struct api_call *call, struct api_subnet *out,
                           size_t max)
{
	struct zone_list *z = xcalloc(1, sizeof(*z));
	if (call->cloud->zones)
		call->cloud->zones(call->cloud->arg, zone_one, z);
	qsort(z->names, z->n, sizeof(z->names[0]), name_cmp);
	size_t n = 0;
	for (size_t k = 0; k < z->n && n < max; k++, n++) {
		struct api_subnet *s = &out[n];
		char seed[API_ZONE_NAME_MAX + 32];
		snprintf(seed, sizeof(seed), "subnet\n%s\n%s",
		         call->auth->key.account_id, z->names[k]);
		api_res_derived_id("subnet", seed, s->id, sizeof(s->id));
		snprintf(s->zone, sizeof(s->zone), "%s", z->names[k]);
		api_zone_id(call->cfg->region, z->names[k], s->zone_id,
		        sizeof(s->zone_id));
		snprintf(s->cidr, sizeof(s->cidr), "172.31.%zu.0/20", 16 * k);
	}
	free(z);
	return n;
}

/* Checks the ids a Describe names: all well-formed, all known. */
static int check_ids(struct api_call *call, const char *param,
                     const char *prefix, const char *label,
                     const char *const *known, size_t n_known, const char **ids,
                     size_t *n_ids)
{
	size_t n = api_params_list(call->params, param, ids, IDS_MAX);
	if (n > IDS_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many %s ids.", prefix);
	*n_ids = n;
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t k = 0; k < n_known; k++)
			found |= strcmp(ids[i], known[k]) == 0;
		if (found)
			continue;
		if (!api_res_id_valid(prefix, ids[i]))
			return api_error_set(
			    &call->err,
			    strcmp(prefix, "vpc") == 0
			        ? "InvalidVpcID.Malformed"
			        : "InvalidSubnetID.Malformed",
			    "Invalid id: \"%s\" (expecting \"%s-...\")", ids[i],
			    prefix);
		return api_error_set(
		    &call->err,
		    strcmp(prefix, "vpc") == 0 ? "InvalidVpcID.NotFound"
		                               : "InvalidSubnetID.NotFound",
		    "The %s ID '%s' does not exist", label, ids[i]);
	}
	return 0;
}

static bool id_listed(const char *id, const char **ids, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

int api_action_describe_vpcs(struct api_call *call)
{
	const char *account = call->auth->key.account_id;
	char vpc[32], assoc[48], dopt[48], seed[64];
	api_default_vpc_id(call, vpc);
	snprintf(seed, sizeof(seed), "vpc-cidr-assoc\n%s", account);
	api_res_derived_id("vpc-cidr-assoc", seed, assoc, sizeof(assoc));
	snprintf(seed, sizeof(seed), "dopt\n%s", account);
	api_res_derived_id("dopt", seed, dopt, sizeof(dopt));

	const char **ids = xcalloc(IDS_MAX, sizeof(*ids));
	const char *known[] = {vpc};
	size_t n_ids = 0;
	struct api_filters filters = {0};
	struct api_page page;
	struct api_tags tags;
	int rc = -1;
	if (check_ids(call, "VpcId", "vpc", "vpc", known, 1, ids, &n_ids) < 0 ||
	    api_filters_parse(call->params, &filters, &call->err) < 0 ||
	    api_page_parse(call, &page, 5, 1000) < 0)
		goto out;
	int r = api_tags_load(call, vpc, &tags);
	if (r) {
		rc = api_res_failed(call, r);
		goto out;
	}
	const struct api_field fields[] = {
	    {"vpc-id", vpc},
	    {"cidr", API_DEFAULT_CIDR},
	    {"cidr-block-association.cidr-block", API_DEFAULT_CIDR},
	    {"cidr-block-association.association-id", assoc},
	    {"cidr-block-association.state", "associated"},
	    {"dhcp-options-id", dopt},
	    {"state", "available"},
	    {"isDefault", "true"},
	    {"is-default", "true"},
	    {"owner-id", account},
	    {"instance-tenancy", "default"},
	};
	bool show = id_listed(vpc, ids, n_ids);
	bool match;
	if (api_filters_match(call, &filters, fields,
	                      sizeof(fields) / sizeof(fields[0]), &tags,
	                      &match) < 0 ||
	    api_dry_run(call))
		goto out;
	show = show && match && api_page_take(&page, vpc);

	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DescribeVpcs", call->version,
	                       call->request_id);
	api_xml_open(o, "vpcSet");
	if (show) {
		api_xml_open(o, "item");
		api_xml_elem(o, "vpcId", vpc);
		api_xml_elem(o, "ownerId", account);
		api_xml_elem(o, "state", "available");
		api_xml_elem(o, "cidrBlock", API_DEFAULT_CIDR);
		api_xml_open(o, "cidrBlockAssociationSet");
		api_xml_open(o, "item");
		api_xml_elem(o, "cidrBlock", API_DEFAULT_CIDR);
		api_xml_elem(o, "associationId", assoc);
		api_xml_open(o, "cidrBlockState");
		api_xml_elem(o, "state", "associated");
		api_xml_close(o, "cidrBlockState");
		api_xml_close(o, "item");
		api_xml_close(o, "cidrBlockAssociationSet");
		api_xml_elem(o, "dhcpOptionsId", dopt);
		api_xml_tag_set(o, &tags);
		api_xml_elem(o, "instanceTenancy", "default");
		api_xml_elem_bool(o, "isDefault", true);
		api_xml_close(o, "item");
	}
	api_xml_close(o, "vpcSet");
	api_page_xml_next(o, &page);
	api_xml_response_end(o, "DescribeVpcs");
	rc = 0;
out:
	api_filters_free(&filters);
	free(ids);
	return rc;
}

/* A /20 holds 4096 addresses, of which EC2 reserves five. */
#define SUBNET_FREE_ADDRESSES "4091"

static void subnet_xml(struct api_call *call, const struct api_subnet *s,
                       const char *vpc, const struct api_tags *tags)
{
	struct mc_buf *o = call->out;
	const char *account = call->auth->key.account_id;
	api_xml_open(o, "item");
	api_xml_elem(o, "subnetId", s->id);
	api_xml_elem_fmt(o, "subnetArn", "arn:aws:ec2:%s:%s:subnet/%s",
	                 call->cfg->region, account, s->id);
	api_xml_elem(o, "state", "available");
	api_xml_elem(o, "ownerId", account);
	api_xml_elem(o, "vpcId", vpc);
	api_xml_elem(o, "cidrBlock", s->cidr);
	api_xml_open(o, "ipv6CidrBlockAssociationSet");
	api_xml_close(o, "ipv6CidrBlockAssociationSet");
	api_xml_elem(o, "availableIpAddressCount", SUBNET_FREE_ADDRESSES);
	api_xml_elem(o, "availabilityZone", s->zone);
	api_xml_elem(o, "availabilityZoneId", s->zone_id);
	api_xml_elem_bool(o, "defaultForAz", true);
	api_xml_elem_bool(o, "mapPublicIpOnLaunch", false);
	api_xml_elem_bool(o, "assignIpv6AddressOnCreation", false);
	api_xml_tag_set(o, tags);
	api_xml_close(o, "item");
}

static int subnet_match(struct api_call *call,
                        const struct api_filters *filters,
                        const struct api_subnet *s, const char *vpc,
                        const struct api_tags *tags, bool *match)
{
	const char *account = call->auth->key.account_id;
	char arn[160];
	snprintf(arn, sizeof(arn), "arn:aws:ec2:%s:%s:subnet/%s",
	         call->cfg->region, account, s->id);
	const struct api_field fields[] = {
	    {"subnet-id", s->id},
	    {"subnet-arn", arn},
	    {"vpc-id", vpc},
	    {"state", "available"},
	    {"availability-zone", s->zone},
	    {"availabilityZone", s->zone},
	    {"availability-zone-id", s->zone_id},
	    {"availabilityZoneId", s->zone_id},
	    {"default-for-az", "true"},
	    {"defaultForAz", "true"},
	    {"cidr-block", s->cidr},
	    {"cidrBlock", s->cidr},
	    {"cidr", s->cidr},
	    {"owner-id", account},
	    {"available-ip-address-count", SUBNET_FREE_ADDRESSES},
	    {"map-public-ip-on-launch", "false"},
	};
	return api_filters_match(call, filters, fields,
	                         sizeof(fields) / sizeof(fields[0]), tags,
	                         match);
}

int api_action_describe_subnets(struct api_call *call)
{
	char vpc[32];
	api_default_vpc_id(call, vpc);
	struct api_subnet subnets[API_ZONES_MAX];
	size_t n = api_default_subnets(call, subnets, API_ZONES_MAX);
	const char *known[API_ZONES_MAX];
	for (size_t i = 0; i < n; i++)
		known[i] = subnets[i].id;

	const char **ids = xcalloc(IDS_MAX, sizeof(*ids));
	struct api_filters filters = {0};
	struct api_page page;
	struct api_tags *tags = xcalloc(API_ZONES_MAX, sizeof(*tags));
	bool show[API_ZONES_MAX] = {false};
	int rc = -1;
	size_t n_ids = 0;
	if (check_ids(call, "SubnetId", "subnet", "subnet", known, n, ids,
	              &n_ids) < 0 ||
	    api_filters_parse(call->params, &filters, &call->err) < 0 ||
	    api_page_parse(call, &page, 5, 1000) < 0)
		goto out;
	/* Unknown filter names fail even where no zone has a subnet. */
	struct api_subnet probe = {.id = ""};
	bool match;
	if (subnet_match(call, &filters, &probe, vpc, &tags[0], &match) < 0 ||
	    api_dry_run(call))
		goto out;
	for (size_t i = 0; i < n; i++) {
		int r = api_tags_load(call, subnets[i].id, &tags[i]);
		if (r) {
			rc = api_res_failed(call, r);
			goto out;
		}
		subnet_match(call, &filters, &subnets[i], vpc, &tags[i],
		             &match);
		/* The page key is the zone: subnets come in zone order. */
		show[i] = match && id_listed(subnets[i].id, ids, n_ids) &&
		          api_page_take(&page, subnets[i].zone);
	}

	api_xml_response_begin(call->out, "DescribeSubnets", call->version,
	                       call->request_id);
	api_xml_open(call->out, "subnetSet");
	for (size_t i = 0; i < n; i++)
		if (show[i])
			subnet_xml(call, &subnets[i], vpc, &tags[i]);
	api_xml_close(call->out, "subnetSet");
	api_page_xml_next(call->out, &page);
	api_xml_response_end(call->out, "DescribeSubnets");
	rc = 0;
out:
	api_filters_free(&filters);
	free(tags);
	free(ids);
	return rc;
}
