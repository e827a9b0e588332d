/*
 * mallee's instance types and DescribeInstanceTypes. The table keeps EC2's
 * names and sizes (vCPUs, MiB) so that clients' defaults (m1.small from old
 * libraries, t2.micro and t3.micro from newer ones) launch as they would on
 * EC2; RunInstances sizes its guests from api_instance_type_find().
 */
#include "apiedge_int.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TYPES_MAX 1000

#define T(name, vcpus, threads, mib, cur, free, burst, hv, net, enis, ips)     \
	{                                                                      \
		name, vcpus, (vcpus) / (threads), threads, mib, cur, free,     \
		    burst, hv, net, enis, ips                                  \
	}

/* Sorted by name (strcmp): paging and the lookup rely on it. */
static const struct api_instance_type types[] = {
    T("c5.2xlarge", 8, 2, 16384, true, false, false, "nitro",
      "Up to 10 Gigabit", 4, 15),
    T("c5.4xlarge", 16, 2, 32768, true, false, false, "nitro",
      "Up to 10 Gigabit", 8, 30),
    T("c5.large", 2, 2, 4096, true, false, false, "nitro", "Up to 10 Gigabit",
      3, 10),
    T("c5.xlarge", 4, 2, 8192, true, false, false, "nitro", "Up to 10 Gigabit",
      4, 15),
    T("m1.small", 1, 1, 1740, false, false, false, "xen", "Low", 2, 4),
    T("m5.2xlarge", 8, 2, 32768, true, false, false, "nitro",
      "Up to 10 Gigabit", 4, 15),
    T("m5.4xlarge", 16, 2, 65536, true, false, false, "nitro",
      "Up to 10 Gigabit", 8, 30),
    T("m5.large", 2, 2, 8192, true, false, false, "nitro", "Up to 10 Gigabit",
      3, 10),
    T("m5.xlarge", 4, 2, 16384, true, false, false, "nitro", "Up to 10 Gigabit",
      4, 15),
    T("r5.2xlarge", 8, 2, 65536, true, false, false, "nitro",
      "Up to 10 Gigabit", 4, 15),
    T("r5.large", 2, 2, 16384, true, false, false, "nitro", "Up to 10 Gigabit",
      3, 10),
    T("r5.xlarge", 4, 2, 32768, true, false, false, "nitro", "Up to 10 Gigabit",
      4, 15),
    T("t1.micro", 1, 1, 627, false, false, false, "xen", "Very Low", 2, 2),
    T("t2.2xlarge", 8, 1, 32768, true, false, true, "xen", "Moderate", 3, 15),
    T("t2.large", 2, 1, 8192, true, false, true, "xen", "Low to Moderate", 3,
      12),
    T("t2.medium", 2, 1, 4096, true, false, true, "xen", "Low to Moderate", 3,
      6),
    T("t2.micro", 1, 1, 1024, true, true, true, "xen", "Low to Moderate", 2, 2),
    T("t2.nano", 1, 1, 512, true, false, true, "xen", "Low to Moderate", 2, 2),
    T("t2.small", 1, 1, 2048, true, false, true, "xen", "Low to Moderate", 3,
      4),
    T("t2.xlarge", 4, 1, 16384, true, false, true, "xen", "Moderate", 3, 15),
    T("t3.2xlarge", 8, 2, 32768, true, false, true, "nitro", "Up to 5 Gigabit",
      4, 15),
    T("t3.large", 2, 2, 8192, true, false, true, "nitro", "Up to 5 Gigabit", 3,
      12),
    T("t3.medium", 2, 2, 4096, true, false, true, "nitro", "Up to 5 Gigabit", 3,
      6),
    T("t3.micro", 2, 2, 1024, true, true, true, "nitro", "Up to 5 Gigabit", 2,
      2),
    T("t3.nano", 2, 2, 512, true, false, true, "nitro", "Up to 5 Gigabit", 2,
      2),
    T("t3.small", 2, 2, 2048, true, false, true, "nitro", "Up to 5 Gigabit", 3,
      4),
    T("t3.xlarge", 4, 2, 16384, true, false, true, "nitro", "Up to 5 Gigabit",
      4, 15),
};

#define N_TYPES (sizeof(types) / sizeof(types[0]))

const struct api_instance_type *api_instance_types(size_t *n)
{
	*n = N_TYPES;
	return types;
}

static int type_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct api_instance_type *)elem)->name);
}

const struct api_instance_type *api_instance_type_find(const char *name)
{
	return bsearch(name, types, N_TYPES, sizeof(types[0]), type_cmp);
}

static bool is_xen(const struct api_instance_type *t)
{
	return strcmp(t->hypervisor, "xen") == 0;
}

/*
 * The values a filter sees for type t (an architecture list has two);
 * returns how many, or -1 for a filter DescribeInstanceTypes lacks.
 */
static int filter_values(const struct api_instance_type *t, const char *name,
                         char vals[2][32])
{
	static const struct {
		const char *filter, *value;
	} constants[] = {
	    {"bare-metal", "false"},
	    {"dedicated-hosts-supported", "false"},
	    {"hibernation-supported", "false"},
	    {"instance-storage-supported", "false"},
	    {"auto-recovery-supported", "true"},
	    {"supported-usage-class", "on-demand"},
	    {"supported-root-device-type", "ebs"},
	    {"supported-virtualization-type", "hvm"},
	    {"supported-boot-mode", "legacy-bios"},
	    {"network-info.ipv6-supported", "false"},
	};
	for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
		if (strcmp(name, constants[i].filter) == 0) {
			snprintf(vals[0], 32, "%s", constants[i].value);
			return 1;
		}
	const char *s = NULL;
	unsigned long long u = 0;
	if (strcmp(name, "instance-type") == 0)
		s = t->name;
	else if (strcmp(name, "hypervisor") == 0)
		s = t->hypervisor;
	else if (strcmp(name, "current-generation") == 0)
		s = t->current_generation ? "true" : "false";
	else if (strcmp(name, "free-tier-eligible") == 0)
		s = t->free_tier ? "true" : "false";
	else if (strcmp(name, "burstable-performance-supported") == 0)
		s = t->burstable ? "true" : "false";
	else if (strcmp(name, "network-info.ena-support") == 0)
		s = is_xen(t) ? "unsupported" : "required";
	else if (strcmp(name, "ebs-info.nvme-support") == 0)
		s = is_xen(t) ? "unsupported" : "required";
	else if (strcmp(name, "network-info.network-performance") == 0)
		s = t->network_performance;
	else if (strcmp(name, "vcpu-info.default-vcpus") == 0)
		u = t->vcpus;
	else if (strcmp(name, "vcpu-info.default-cores") == 0)
		u = t->cores;
	else if (strcmp(name, "vcpu-info.default-threads-per-core") == 0)
		u = t->threads_per_core;
	else if (strcmp(name, "memory-info.size-in-mib") == 0)
		u = t->mib;
	else if (strcmp(name, "network-info.maximum-network-interfaces") == 0)
		u = t->max_enis;
	else if (strcmp(name, "network-info.ipv4-addresses-per-interface") == 0)
		u = t->ipv4_per_eni;
	else if (strcmp(name, "processor-info.supported-architecture") == 0) {
		snprintf(vals[0], 32, "x86_64");
		snprintf(vals[1], 32, "i386");
		return is_xen(t) ? 2 : 1;
	} else
		return -1;
	if (s)
		snprintf(vals[0], 32, "%s", s);
	else
		snprintf(vals[0], 32, "%llu", u);
	return 1;
}

static bool type_matches(const struct api_instance_type *t,
                         const struct api_filters *filters)
{
	for (size_t i = 0; i < filters->n; i++) {
		char vals[2][32];
		int n = filter_values(t, filters->items[i].name, vals);
		bool m = false;
		for (int v = 0; v < n; v++)
			m |= api_filter_values_match(&filters->items[i],
			                             vals[v]);
		if (!m)
			return false;
	}
	return true;
}

static void xml_set(struct mc_buf *o, const char *tag, const char *value)
{
	api_xml_open(o, tag);
	api_xml_elem(o, "item", value);
	api_xml_close(o, tag);
}

static void xml_type(struct mc_buf *o, const struct api_instance_type *t)
{
	bool xen = is_xen(t);
	api_xml_open(o, "item");
	api_xml_elem(o, "instanceType", t->name);
	api_xml_elem_bool(o, "currentGeneration", t->current_generation);
	api_xml_elem_bool(o, "freeTierEligible", t->free_tier);
	xml_set(o, "supportedUsageClasses", "on-demand");
	xml_set(o, "supportedRootDeviceTypes", "ebs");
	xml_set(o, "supportedVirtualizationTypes", "hvm");
	api_xml_elem_bool(o, "bareMetal", false);
	api_xml_elem(o, "hypervisor", t->hypervisor);
	api_xml_open(o, "processorInfo");
	api_xml_open(o, "supportedArchitectures");
	if (xen)
		api_xml_elem(o, "item", "i386");
	api_xml_elem(o, "item", "x86_64");
	api_xml_close(o, "supportedArchitectures");
	api_xml_close(o, "processorInfo");
	api_xml_open(o, "vCpuInfo");
	api_xml_elem_fmt(o, "defaultVCpus", "%u", t->vcpus);
	api_xml_elem_fmt(o, "defaultCores", "%u", t->cores);
	api_xml_elem_fmt(o, "defaultThreadsPerCore", "%u", t->threads_per_core);
	api_xml_close(o, "vCpuInfo");
	api_xml_open(o, "memoryInfo");
	api_xml_elem_fmt(o, "sizeInMiB", "%u", t->mib);
	api_xml_close(o, "memoryInfo");
	api_xml_elem_bool(o, "instanceStorageSupported", false);
	api_xml_open(o, "ebsInfo");
	api_xml_elem(o, "ebsOptimizedSupport", xen ? "unsupported" : "default");
	api_xml_elem(o, "encryptionSupport", "supported");
	api_xml_elem(o, "nvmeSupport", xen ? "unsupported" : "required");
	api_xml_close(o, "ebsInfo");
	api_xml_open(o, "networkInfo");
	api_xml_elem(o, "networkPerformance", t->network_performance);
	api_xml_elem_fmt(o, "maximumNetworkInterfaces", "%u", t->max_enis);
	api_xml_elem_fmt(o, "ipv4AddressesPerInterface", "%u", t->ipv4_per_eni);
	api_xml_elem_fmt(o, "ipv6AddressesPerInterface", "%u", 0u);
	api_xml_elem_bool(o, "ipv6Supported", false);
	api_xml_elem(o, "enaSupport", xen ? "unsupported" : "required");
	api_xml_close(o, "networkInfo");
	api_xml_elem_bool(o, "hibernationSupported", false);
	api_xml_elem_bool(o, "burstablePerformanceSupported", t->burstable);
	api_xml_elem_bool(o, "dedicatedHostsSupported", false);
	api_xml_elem_bool(o, "autoRecoverySupported", true);
	xml_set(o, "supportedBootModes", "legacy-bios");
	api_xml_close(o, "item");
}

static int check_request(struct api_call *call, const char **names, size_t n,
                         const struct api_filters *filters)
{
	if (n > TYPES_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many instance types.");
	for (size_t i = 0; i < n; i++)
		if (!api_instance_type_find(names[i]))
			return api_error_set(&call->err, "InvalidInstanceType",
			                     "The following supplied instance "
			                     "types do not exist: [%s]",
			                     names[i]);
	for (size_t i = 0; i < filters->n; i++) {
		char vals[2][32];
		if (filter_values(&types[0], filters->items[i].name, vals) < 0)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "The filter '%s' is invalid",
			                     filters->items[i].name);
	}
	return 0;
}

int api_action_describe_instance_types(struct api_call *call)
{
	const char **names = xcalloc(TYPES_MAX, sizeof(char *));
	size_t n =
	    api_params_list(call->params, "InstanceType", names, TYPES_MAX);
	struct api_filters filters = {0};
	struct api_page page;
	int rc = -1;
	if (api_filters_parse(call->params, &filters, &call->err) < 0 ||
	    check_request(call, names, n, &filters) < 0 ||
	    api_page_parse(call, &page, 5, 100) < 0 || api_dry_run(call))
		goto out;
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DescribeInstanceTypes", call->version,
	                       call->request_id);
	api_xml_open(o, "instanceTypeSet");
	for (size_t i = 0; i < N_TYPES; i++) {
		bool listed = n == 0;
		for (size_t k = 0; k < n; k++)
			listed |= strcmp(names[k], types[i].name) == 0;
		if (listed && type_matches(&types[i], &filters) &&
		    api_page_take(&page, types[i].name))
			xml_type(o, &types[i]);
	}
	api_xml_close(o, "instanceTypeSet");
	api_page_xml_next(o, &page);
	api_xml_response_end(o, "DescribeInstanceTypes");
	rc = 0;
out:
	api_filters_free(&filters);
	free(names);
	return rc;
}
