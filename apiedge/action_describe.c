/*
 * Describe calls that read no records of their own: the availability zones
 * (the peers' --zone, available while one of their hosts is alive), the
 * account's attributes, and the empty answer of DescribeVolumes, which
 * clients call on every listing. It still checks its ids as EC2 does, so a
 * client asking for a volume gets the NotFound code it treats as "absent".
 * (Instances: action_instance_describe.c; addresses: action_address.c.)
 */
#include "apiedge_int.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONES_MAX     256
#define ZONE_NAME_MAX 64
#define IDS_MAX       1000

/* EC2's default limits, which mallee reports to clients that ask. */
#define MAX_INSTANCES       "20"
#define MAX_ELASTIC_IPS     "5"
#define MAX_GROUPS_PER_NIC  "5"
#define SUPPORTED_PLATFORMS "VPC"
#define ZONE_OPT_IN         "opt-in-not-required"
#define ZONE_TYPE           "availability-zone"

/* ---- DescribeAvailabilityZones ----------------------------------------- */

struct zone {
	char name[ZONE_NAME_MAX];
	char id[ZONE_NAME_MAX + 16];
	const char *state;
};

struct zone_list {
	struct zone z[ZONES_MAX];
	size_t n;
};

static int zone_one(void *ctx, const char *name, unsigned alive, unsigned hosts)
{
	(void)hosts;
	struct zone_list *l = ctx;
	if (!name[0] || strlen(name) >= ZONE_NAME_MAX || l->n == ZONES_MAX)
		return 0;
	struct zone *z = &l->z[l->n++];
	snprintf(z->name, sizeof(z->name), "%s", name);
	z->state = alive ? "available" : "unavailable";
	return 0;
}

static int zone_cmp(const void *a, const void *b)
{
	return strcmp(((const struct zone *)a)->name,
	              ((const struct zone *)b)->name);
}

/*
 * EC2's zone ids abbreviate the region ("us-east-1" gives "use1": the first
 * word, the initials of the middle ones, the number) and number the zone
 * ("us-east-1a" is "use1-az1"). A zone not named after the region keeps its
 * name after the abbreviation.
 */
void api_zone_id(const char *region, const char *zone, char *out, size_t size)
{
	char abbr[64];
	size_t o = 0;
	const char *w = region;
	bool first = true;
	while (*w && o + 1 < sizeof(abbr)) {
		const char *end = strchr(w, '-');
		size_t len = end ? (size_t)(end - w) : strlen(w);
		bool number = len && w[0] >= '0' && w[0] <= '9';
		size_t take = first || number || !end ? len : 1;
		if (take > sizeof(abbr) - 1 - o)
			take = sizeof(abbr) - 1 - o;
		memcpy(abbr + o, w, take);
		o += take;
		first = false;
		w = end ? end + 1 : w + len;
	}
	abbr[o] = 0;
	size_t rl = strlen(region);
	char letter = zone[rl];
	if (strncmp(zone, region, rl) == 0 && letter >= 'a' && letter <= 'z' &&
	    zone[rl + 1] == 0)
		snprintf(out, size, "%s-az%d", abbr, letter - 'a' + 1);
	else
		snprintf(out, size, "%s-%s", abbr, zone);
}

static const char *zone_field(const struct api_call *call, const struct zone *z,
                              const char *filter)
{
	if (strcmp(filter, "zone-name") == 0)
		return z->name;
	if (strcmp(filter, "zone-id") == 0)
		return z->id;
	if (strcmp(filter, "state") == 0)
		return z->state;
	if (strcmp(filter, "region-name") == 0 ||
	    strcmp(filter, "group-name") == 0 ||
	    strcmp(filter, "network-border-group") == 0)
		return call->cfg->region;
	if (strcmp(filter, "zone-type") == 0)
		return ZONE_TYPE;
	if (strcmp(filter, "opt-in-status") == 0)
		return ZONE_OPT_IN;
	if (strcmp(filter, "message") == 0)
		return ""; /* zones carry no messages */
	return NULL;
}

static void xml_zone(struct api_call *call, const struct zone *z)
{
	struct mc_buf *o = call->out;
	const char *region = call->cfg->region;
	api_xml_open(o, "item");
	api_xml_elem(o, "optInStatus", ZONE_OPT_IN);
	api_xml_open(o, "messageSet");
	api_xml_close(o, "messageSet");
	api_xml_elem(o, "regionName", region);
	api_xml_elem(o, "zoneName", z->name);
	api_xml_elem(o, "zoneId", z->id);
	api_xml_elem(o, "groupName", region);
	api_xml_elem(o, "networkBorderGroup", region);
	api_xml_elem(o, "zoneType", ZONE_TYPE);
	api_xml_elem(o, "zoneState", z->state);
	api_xml_close(o, "item");
}

/* Each of ZoneName.N / ZoneId.N must name a zone. */
static int zones_named(struct api_call *call, const struct zone_list *l,
                       const char **names, size_t n, bool ids)
{
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t k = 0; k < l->n; k++)
			found |= strcmp(names[i],
			                ids ? l->z[k].id : l->z[k].name) == 0;
		if (!found)
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "Invalid availability zone%s: [%s]",
			    ids ? " ID" : "", names[i]);
	}
	return 0;
}

static bool zone_listed(const struct zone *z, const char **names, size_t nn,
                        const char **ids, size_t ni)
{
	bool listed = nn == 0 && ni == 0;
	for (size_t i = 0; i < nn; i++)
		listed |= strcmp(names[i], z->name) == 0;
	for (size_t i = 0; i < ni; i++)
		listed |= strcmp(ids[i], z->id) == 0;
	return listed;
}

int api_action_describe_availability_zones(struct api_call *call)
{
	struct zone_list *l = xcalloc(1, sizeof(*l));
	const char **names = xcalloc(ZONES_MAX, sizeof(char *));
	const char **ids = xcalloc(ZONES_MAX, sizeof(char *));
	struct api_filters filters = {0};
	int rc = -1;
	size_t nn = api_params_list(call->params, "ZoneName", names, ZONES_MAX);
	size_t ni = api_params_list(call->params, "ZoneId", ids, ZONES_MAX);
	if (nn > ZONES_MAX || ni > ZONES_MAX) {
		api_error_set(&call->err, "InvalidParameterValue",
		              "Too many zones.");
		goto out;
	}
	if (!call->cloud->zones) {
		api_res_failed(call, ENOSYS);
		goto out;
	}
	int r = call->cloud->zones(call->cloud->arg, zone_one, l);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	qsort(l->z, l->n, sizeof(l->z[0]), zone_cmp);
	for (size_t i = 0; i < l->n; i++)
		api_zone_id(call->cfg->region, l->z[i].name, l->z[i].id,
		            sizeof(l->z[i].id));
	if (zones_named(call, l, names, nn, false) < 0 ||
	    zones_named(call, l, ids, ni, true) < 0 ||
	    api_filters_parse(call->params, &filters, &call->err) < 0)
		goto out;
	static const struct zone probe = {.state = "available"};
	for (size_t i = 0; i < filters.n; i++)
		if (!zone_field(call, &probe, filters.items[i].name)) {
			api_error_set(&call->err, "InvalidParameterValue",
			              "The filter '%s' is invalid",
			              filters.items[i].name);
			goto out;
		}
	if (api_dry_run(call))
		goto out;

	api_xml_response_begin(call->out, "DescribeAvailabilityZones",
	                       call->version, call->request_id);
	api_xml_open(call->out, "availabilityZoneInfo");
	for (size_t i = 0; i < l->n; i++) {
		const struct zone *z = &l->z[i];
		bool show = zone_listed(z, names, nn, ids, ni);
		for (size_t f = 0; show && f < filters.n; f++)
			show = api_filter_values_match(
			    &filters.items[f],
			    zone_field(call, z, filters.items[f].name));
		if (show)
			xml_zone(call, z);
	}
	api_xml_close(call->out, "availabilityZoneInfo");
	api_xml_response_end(call->out, "DescribeAvailabilityZones");
	rc = 0;
out:
	api_filters_free(&filters);
	free(names);
	free(ids);
	free(l);
	return rc;
}

/* ---- DescribeAccountAttributes ----------------------------------------- */

static const char *const attributes[] = {
    "supported-platforms", "default-vpc",
    "max-instances",       "vpc-max-security-groups-per-interface",
    "max-elastic-ips",     "vpc-max-elastic-ips",
};

#define N_ATTRIBUTES (sizeof(attributes) / sizeof(attributes[0]))

static void xml_attribute(struct api_call *call, const char *name)
{
	struct mc_buf *o = call->out;
	char vpc[32];
	const char *value = MAX_ELASTIC_IPS;
	if (strcmp(name, "supported-platforms") == 0) {
		value = SUPPORTED_PLATFORMS;
	} else if (strcmp(name, "default-vpc") == 0) {
		api_default_vpc_id(call, vpc);
		value = vpc;
	} else if (strcmp(name, "max-instances") == 0) {
		value = MAX_INSTANCES;
	} else if (strcmp(name, "vpc-max-security-groups-per-interface") == 0) {
		value = MAX_GROUPS_PER_NIC;
	}
	api_xml_open(o, "item");
	api_xml_elem(o, "attributeName", name);
	api_xml_open(o, "attributeValueSet");
	api_xml_open(o, "item");
	api_xml_elem(o, "attributeValue", value);
	api_xml_close(o, "item");
	api_xml_close(o, "attributeValueSet");
	api_xml_close(o, "item");
}

int api_action_describe_account_attributes(struct api_call *call)
{
	const char *names[N_ATTRIBUTES * 4];
	size_t n = api_params_list(call->params, "AttributeName", names,
	                           N_ATTRIBUTES * 4);
	if (n > N_ATTRIBUTES * 4)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many attribute names.");
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t k = 0; k < N_ATTRIBUTES; k++)
			known |= strcmp(names[i], attributes[k]) == 0;
		if (!known)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "Value (%s) for parameter "
			                     "attributeName is invalid.",
			                     names[i]);
	}
	if (api_dry_run(call))
		return -1;
	api_xml_response_begin(call->out, "DescribeAccountAttributes",
	                       call->version, call->request_id);
	api_xml_open(call->out, "accountAttributeSet");
	for (size_t k = 0; k < N_ATTRIBUTES; k++) {
		bool asked = n == 0;
		for (size_t i = 0; i < n; i++)
			asked |= strcmp(names[i], attributes[k]) == 0;
		if (asked)
			xml_attribute(call, attributes[k]);
	}
	api_xml_close(call->out, "accountAttributeSet");
	api_xml_response_end(call->out, "DescribeAccountAttributes");
	return 0;
}

/* ---- the empty describes ----------------------------------------------- */

/*
 * What one of the empty describes checks: the id list (param), the id
 * prefix and EC2's codes for a malformed and an unknown id, and the
 * message that names unknown ones.
 */
struct empty_describe {
	const char *action;
	const char *param;
	const char *prefix;
	const char *malformed, *not_found;
	const char *what; /* "instance ID", "volume"... */
	const char *set;  /* the response's list element */
	bool paged;       /* takes MaxResults/NextToken */
};

static int empty_describe(struct api_call *call, const struct empty_describe *e)
{
	const char **ids = xcalloc(IDS_MAX, sizeof(char *));
	struct api_filters filters = {0};
	struct api_page page;
	int rc = -1;
	size_t n = e->param
	               ? api_params_list(call->params, e->param, ids, IDS_MAX)
	               : 0;
	if (n > IDS_MAX) {
		api_error_set(&call->err, "InvalidParameterValue",
		              "Too many ids.");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (e->prefix && !api_res_id_valid(e->prefix, ids[i])) {
			api_error_set(&call->err, e->malformed,
			              "Invalid id: \"%s\" (expecting "
			              "\"%s-...\")",
			              ids[i], e->prefix);
			goto out;
		}
	if (api_filters_parse(call->params, &filters, &call->err) < 0 ||
	    (e->paged && api_page_parse(call, &page, 5, 1000) < 0) ||
	    api_dry_run(call))
		goto out;
	if (n) {
		/* None exists yet: every id named is unknown. */
		struct mc_buf list;
		mc_buf_init(&list);
		for (size_t i = 0; i < n; i++)
			mc_buf_printf(&list, "%s%s", i ? ", " : "", ids[i]);
		mc_buf_put_u8(&list, 0);
		api_error_set(&call->err, e->not_found,
		              "The %s%s '%s' do%s not exist", e->what,
		              n > 1 ? "s" : "", (const char *)list.data,
		              n > 1 ? "" : "es");
		mc_buf_free(&list);
		goto out;
	}
	api_xml_response_begin(call->out, e->action, call->version,
	                       call->request_id);
	api_xml_open(call->out, e->set);
	api_xml_close(call->out, e->set);
	api_xml_response_end(call->out, e->action);
	rc = 0;
out:
	api_filters_free(&filters);
	free(ids);
	return rc;
}

int api_action_describe_volumes(struct api_call *call)
{
	static const struct empty_describe e = {
	    "DescribeVolumes",
	    "VolumeId",
	    "vol",
	    "InvalidVolume.Malformed",
	    "InvalidVolume.NotFound",
	    "volume",
	    "volumeSet",
	    true,
	};
	return empty_describe(call, &e);
}
