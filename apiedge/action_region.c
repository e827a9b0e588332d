/*
 * Regions: the cloud is one region, named at `mallee init`, reached at this
 * edge's endpoint (DescribeRegions).
 */
#include "apiedge_int.h"

#include <string.h>

#define REGION_NAMES_MAX 64

static const char opt_in[] = "opt-in-not-required";

int api_action_describe_regions(struct api_call *call)
{
	const char *region = call->cfg->region;
	const char *endpoint = call->cfg->endpoint;
	const char *names[REGION_NAMES_MAX];
	size_t n = api_params_list(call->params, "RegionName", names,
	                           REGION_NAMES_MAX);
	if (n > REGION_NAMES_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many region names.");
	bool show = n == 0;
	for (size_t i = 0; i < n; i++)
		show |= strcmp(names[i], region) == 0;
	if (api_dry_run(call))
		return -1;

	struct api_filters filters;
	if (api_filters_parse(call->params, &filters, &call->err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < filters.n; i++) {
		const struct api_filter *f = &filters.items[i];
		const char *value;
		if (strcmp(f->name, "region-name") == 0)
			value = region;
		else if (strcmp(f->name, "endpoint") == 0)
			value = endpoint;
		else if (strcmp(f->name, "opt-in-status") == 0)
			value = opt_in;
		else {
			rc = api_error_set(&call->err, "InvalidParameterValue",
			                   "The filter '%s' is invalid",
			                   f->name);
			break;
		}
		show &= api_filter_values_match(f, value);
	}
	api_filters_free(&filters);
	if (rc < 0)
		return rc;

	api_xml_response_begin(call->out, "DescribeRegions", call->version,
	                       call->request_id);
	api_xml_open(call->out, "regionInfo");
	if (show) {
		api_xml_open(call->out, "item");
		api_xml_elem(call->out, "regionName", region);
		api_xml_elem(call->out, "regionEndpoint", endpoint);
		api_xml_elem(call->out, "optInStatus", opt_in);
		api_xml_close(call->out, "item");
	}
	api_xml_close(call->out, "regionInfo");
	api_xml_response_end(call->out, "DescribeRegions");
	return 0;
}
