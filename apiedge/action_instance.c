/*
 * What the instance actions share: reading instance records (written by
 * the hosts, kind "instance", id "ACCOUNT:i-..."), checking InstanceId.N,
 * EC2's errors for what a host answered, and the XML of one instance as
 * DescribeInstances and RunInstances show it.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "hlc.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD_ID_MAX 128

void api_time_iso8601(char out[32], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

bool api_instance_visible(const struct mc_instance *in, uint64_t now_ms)
{
	return in->state != MC_INST_TERMINATED ||
	       in->updated_ms + API_TERMINATED_SHOW_MS > now_ms;
}

int api_instance_load(const struct api_call *call, const char *id,
                      struct mc_instance *out)
{
	char rid[RECORD_ID_MAX + 1];
	uint8_t *body = NULL;
	size_t len = 0;
	memset(out, 0, sizeof(*out));
	if (!api_res_key(call, id, rid, sizeof(rid)))
		return -ENOENT;
	int r = call->cloud->get(call->cloud->arg, MC_INSTANCE_KIND, rid, &body,
	                         &len);
	if (r)
		return r;
	r = mc_instance_unpack(body, len, out);
	free(body);
	if (r == 0 && (strcmp(out->id, id) != 0 ||
	               !api_instance_visible(out, mc_wall_ms()))) {
		mc_instance_clear(out);
		r = -ENOENT;
	}
	return r == -EINVAL ? -ENOENT : r;
}

struct list_ctx {
	struct api_instance_list *l;
	uint64_t now;
};

static int list_one(void *arg, const char *id, const uint8_t *body, size_t len)
{
	(void)id;
	struct list_ctx *c = arg;
	struct api_instance_list *l = c->l;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->items = xrealloc(l->items, l->cap * sizeof(l->items[0]));
	}
	struct mc_instance *in = &l->items[l->n];
	if (mc_instance_unpack(body, len, in) != 0)
		return 0; /* a record we cannot read is not shown */
	if (!api_instance_visible(in, c->now)) {
		mc_instance_clear(in);
		return 0;
	}
	l->n++;
	return 0;
}

int api_instance_list_take(const struct api_call *call,
                           struct api_instance_list *out)
{
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%s:", call->auth->key.account_id);
	memset(out, 0, sizeof(*out));
	struct list_ctx c = {.l = out, .now = mc_wall_ms()};
	int r = call->cloud->list(call->cloud->arg, MC_INSTANCE_KIND, prefix,
	                          list_one, &c);
	if (r)
		api_instance_list_free(out);
	return r;
}

void api_instance_list_free(struct api_instance_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		mc_instance_clear(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

long api_instance_ids(struct api_call *call, const char *param,
                      const char **ids, bool required)
{
	size_t n =
	    api_params_list(call->params, param, ids, API_INSTANCE_IDS_MAX);
	if (n > API_INSTANCE_IDS_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many instance ids (at most %d).",
		                     API_INSTANCE_IDS_MAX);
	if (n == 0 && required)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "InstanceId");
	for (size_t i = 0; i < n; i++)
		if (!api_res_id_valid("i", ids[i]))
			return api_error_set(&call->err,
			                     "InvalidInstanceID.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"i-...\")",
			                     ids[i]);
	return (long)n;
}

int api_instances_load(struct api_call *call, const char **ids, size_t n,
                       struct mc_instance *records)
{
	struct mc_buf missing;
	mc_buf_init(&missing);
	size_t n_missing = 0;
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		int r = api_instance_load(call, ids[i], &records[i]);
		if (r == -ENOENT)
			mc_buf_printf(&missing, "%s%s", n_missing++ ? ", " : "",
			              ids[i]);
		else if (r && !failed)
			failed = r;
	}
	mc_buf_put_u8(&missing, 0);
	int rc = 0;
	if (n_missing)
		rc = api_error_set(&call->err, "InvalidInstanceID.NotFound",
		                   "The instance ID%s '%s' do%s not exist",
		                   n_missing > 1 ? "s" : "",
		                   (const char *)missing.data,
		                   n_missing > 1 ? "" : "es");
	else if (failed)
		rc = api_res_failed(call, failed);
	mc_buf_free(&missing);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			mc_instance_clear(&records[i]);
		return -1;
	}
	return 0;
}

int api_instance_op_error(struct api_call *call, int status,
                          const char *message, const char *id)
{
	const char *why = message && message[0] ? message : strerror(-status);
	switch (status) {
	case -ENOENT:
		return api_error_set(&call->err, "InvalidInstanceID.NotFound",
		                     "The instance ID '%s' does not exist", id);
	case -EBUSY:
		return api_error_set(&call->err, "IncorrectInstanceState",
		                     "The instance '%s' is not in a state from "
		                     "which it can do this (%s).",
		                     id, why);
	case -ENOSPC:
		return api_error_set(&call->err, "InsufficientInstanceCapacity",
		                     "There is not enough capacity to fulfil "
		                     "your request for '%s': %s",
		                     id, why);
	case -EINVAL:
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "The host refused the request for '%s': "
		                     "%s",
		                     id, why);
	case -EHOSTUNREACH:
		return api_error_set(&call->err, "Unavailable",
		                     "The host of '%s' cannot be reached: %s",
		                     id, why);
	default:
		return api_error_set(&call->err, "InternalError",
		                     "The request for '%s' failed: %s", id,
		                     why);
	}
}

void api_instance_state_xml(struct mc_buf *o, const char *tag, int state)
{
	api_xml_open(o, tag);
	api_xml_elem_fmt(o, "code", "%d", state);
	api_xml_elem(o, "name",
	             mc_instance_state_name((enum mc_instance_state)state));
	api_xml_close(o, tag);
}

void api_instance_dns(const struct api_call *call, const struct mc_instance *in,
                      char *out, size_t size)
{
	unsigned a, b, c, d;
	if (in->state == MC_INST_TERMINATED ||
	    sscanf(in->private_ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4) {
		snprintf(out, size, "%s", "");
		return;
	}
	snprintf(out, size, "ip-%u-%u-%u-%u.%s.compute.internal", a, b, c, d,
	         call->cfg->region);
}

static void group_set_xml(struct mc_buf *o, const struct mc_instance *in)
{
	api_xml_open(o, "groupSet");
	for (size_t i = 0; i < in->n_groups; i++) {
		api_xml_open(o, "item");
		api_xml_elem(o, "groupId", in->groups[i].id);
		api_xml_elem(o, "groupName", in->groups[i].name);
		api_xml_close(o, "item");
	}
	api_xml_close(o, "groupSet");
}

void api_reservation_head_xml(struct api_call *call,
                              const struct mc_instance *first)
{
	struct mc_buf *o = call->out;
	api_xml_elem(o, "reservationId", first->reservation);
	api_xml_elem(o, "ownerId", call->auth->key.account_id);
	group_set_xml(o, first);
}

/* The default subnet of the instance's zone (none: ""). */
static void subnet_of(const struct api_call *call, const char *zone,
                      char out[32])
{
	struct api_subnet subnets[API_ZONES_MAX];
	size_t n = api_default_subnets(call, subnets, API_ZONES_MAX);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (strcmp(subnets[i].zone, zone) == 0)
			snprintf(out, 32, "%s", subnets[i].id);
}

static void eni_xml(struct api_call *call, const struct mc_instance *in,
                    const char *subnet, const char *vpc, const char *dns,
                    const char *public_ip)
{
	struct mc_buf *o = call->out;
	char eni[32], attach[40], seed[64], when[32];
	snprintf(seed, sizeof(seed), "eni\n%s", in->id);
	api_res_derived_id("eni", seed, eni, sizeof(eni));
	snprintf(seed, sizeof(seed), "eni-attach\n%s", in->id);
	api_res_derived_id("eni-attach", seed, attach, sizeof(attach));
	api_time_iso8601(when, in->launch_ms);
	api_xml_open(o, "networkInterfaceSet");
	api_xml_open(o, "item");
	api_xml_elem(o, "networkInterfaceId", eni);
	api_xml_elem(o, "subnetId", subnet);
	api_xml_elem(o, "vpcId", vpc);
	api_xml_elem(o, "description", "");
	api_xml_elem(o, "ownerId", call->auth->key.account_id);
	api_xml_elem(o, "status", "in-use");
	api_xml_elem(o, "macAddress", in->mac);
	api_xml_elem(o, "privateIpAddress", in->private_ip);
	api_xml_elem(o, "privateDnsName", dns);
	api_xml_elem_bool(o, "sourceDestCheck", true);
	group_set_xml(o, in);
	api_xml_open(o, "attachment");
	api_xml_elem(o, "attachmentId", attach);
	api_xml_elem(o, "deviceIndex", "0");
	api_xml_elem(o, "status", "attached");
	api_xml_elem(o, "attachTime", when);
	api_xml_elem_bool(o, "deleteOnTermination", true);
	api_xml_elem(o, "networkCardIndex", "0");
	api_xml_close(o, "attachment");
	if (public_ip[0])
		api_address_association_xml(o, call, public_ip);
	api_xml_open(o, "privateIpAddressesSet");
	api_xml_open(o, "item");
	api_xml_elem(o, "privateIpAddress", in->private_ip);
	api_xml_elem(o, "privateDnsName", dns);
	api_xml_elem_bool(o, "primary", true);
	if (public_ip[0])
		api_address_association_xml(o, call, public_ip);
	api_xml_close(o, "item");
	api_xml_close(o, "privateIpAddressesSet");
	api_xml_open(o, "ipv6AddressesSet");
	api_xml_close(o, "ipv6AddressesSet");
	api_xml_elem(o, "interfaceType", "interface");
	api_xml_close(o, "item");
	api_xml_close(o, "networkInterfaceSet");
}

static void cpu_options_xml(struct mc_buf *o, const struct mc_instance *in)
{
	const struct api_instance_type *t =
	    api_instance_type_find(in->instance_type);
	unsigned threads = t ? t->threads_per_core : 1;
	unsigned vcpus = in->vcpu ? in->vcpu : t ? t->vcpus : 1;
	api_xml_open(o, "cpuOptions");
	api_xml_elem_fmt(o, "coreCount", "%u",
	                 vcpus / threads ? vcpus / threads : 1);
	api_xml_elem_fmt(o, "threadsPerCore", "%u", threads);
	api_xml_close(o, "cpuOptions");
}

static void metadata_options_xml(struct mc_buf *o, const struct mc_instance *in)
{
	api_xml_open(o, "metadataOptions");
	api_xml_elem(o, "state", "applied");
	api_xml_elem(o, "httpTokens",
	             in->imds_tokens_required ? "required" : "optional");
	api_xml_elem(o, "httpPutResponseHopLimit", "1");
	api_xml_elem(o, "httpEndpoint", "enabled");
	api_xml_elem(o, "httpProtocolIpv6", "disabled");
	api_xml_elem(o, "instanceMetadataTags", "disabled");
	api_xml_close(o, "metadataOptions");
}

void api_instance_xml(struct api_call *call, const struct mc_instance *in,
                      const struct api_tags *tags)
{
	struct mc_buf *o = call->out;
	char dns[96], when[32], subnet[32], vpc[32], public_ip[16] = "";
	bool gone = in->state == MC_INST_TERMINATED;
	bool addressed = !gone && in->private_ip[0];
	if (addressed && in->state != MC_INST_SHUTTING_DOWN)
		api_address_of_instance(call, in->id, public_ip,
		                        sizeof(public_ip));
	api_instance_dns(call, in, dns, sizeof(dns));
	api_time_iso8601(when, in->launch_ms);
	subnet_of(call, in->zone, subnet);
	api_default_vpc_id(call, vpc);

	api_xml_open(o, "item");
	api_xml_elem(o, "instanceId", in->id);
	api_xml_elem(o, "imageId", in->image_id);
	api_instance_state_xml(o, "instanceState", (int)in->state);
	api_xml_elem(o, "privateDnsName", dns);
	api_xml_elem(o, "dnsName", "");
	api_xml_elem(o, "reason", in->transition_reason);
	if (in->key_name[0])
		api_xml_elem(o, "keyName", in->key_name);
	api_xml_elem_fmt(o, "amiLaunchIndex", "%u", in->launch_index);
	api_xml_open(o, "productCodes");
	api_xml_close(o, "productCodes");
	api_xml_elem(o, "instanceType", in->instance_type);
	api_xml_elem(o, "launchTime", when);
	api_xml_open(o, "placement");
	api_xml_elem(o, "availabilityZone", in->zone);
	api_xml_elem(o, "groupName", "");
	api_xml_elem(o, "tenancy", "default");
	api_xml_close(o, "placement");
	api_xml_open(o, "monitoring");
	api_xml_elem(o, "state", "disabled");
	api_xml_close(o, "monitoring");
	if (!gone && subnet[0]) {
		api_xml_elem(o, "subnetId", subnet);
		api_xml_elem(o, "vpcId", vpc);
	}
	if (addressed)
		api_xml_elem(o, "privateIpAddress", in->private_ip);
	if (public_ip[0])
		api_xml_elem(o, "ipAddress", public_ip);
	api_xml_elem_bool(o, "sourceDestCheck", true);
	group_set_xml(o, in);
	if (in->state_reason_code[0]) {
		api_xml_open(o, "stateReason");
		api_xml_elem(o, "code", in->state_reason_code);
		api_xml_elem(o, "message",
		             in->state_reason[0] ? in->state_reason
		                                 : in->state_reason_code);
		api_xml_close(o, "stateReason");
	}
	api_xml_elem(o, "architecture",
	             in->architecture[0] ? in->architecture : "x86_64");
	api_xml_elem(o, "rootDeviceType", "instance-store");
	api_xml_elem(o, "rootDeviceName",
	             in->root_device[0] ? in->root_device : "/dev/sda1");
	api_xml_open(o, "blockDeviceMapping");
	api_xml_close(o, "blockDeviceMapping");
	api_xml_elem(o, "virtualizationType", "hvm");
	api_xml_elem(o, "clientToken", in->client_token);
	api_xml_tag_set(o, tags);
	/* What EC2 reports for every type, Nitro ones included. */
	api_xml_elem(o, "hypervisor", "xen");
	if (addressed && subnet[0])
		eni_xml(call, in, subnet, vpc, dns, public_ip);
	else {
		api_xml_open(o, "networkInterfaceSet");
		api_xml_close(o, "networkInterfaceSet");
	}
	api_xml_elem_bool(o, "ebsOptimized", false);
	api_xml_elem_bool(o, "enaSupport", true);
	cpu_options_xml(o, in);
	api_xml_open(o, "capacityReservationSpecification");
	api_xml_elem(o, "capacityReservationPreference", "open");
	api_xml_close(o, "capacityReservationSpecification");
	api_xml_open(o, "hibernationOptions");
	api_xml_elem_bool(o, "configured", false);
	api_xml_close(o, "hibernationOptions");
	metadata_options_xml(o, in);
	api_xml_open(o, "enclaveOptions");
	api_xml_elem_bool(o, "enabled", false);
	api_xml_close(o, "enclaveOptions");
	api_xml_elem(o, "platformDetails", "Linux/UNIX");
	api_xml_elem(o, "usageOperation", "RunInstances");
	api_xml_elem(o, "usageOperationUpdateTime", when);
	api_xml_close(o, "item");
}

int api_user_data_decode(struct api_call *call, const char *name,
                         const char *value, uint8_t **out, size_t *len)
{
	/* 16 KiB decoded is at most this much base64. */
	const size_t max_text = 4 * ((MC_INSTANCE_USER_DATA + 2) / 3);
	*out = NULL;
	*len = 0;
	struct mc_buf text;
	mc_buf_init(&text);
	for (const char *c = value; *c && text.len <= max_text; c++)
		if (!strchr(" \t\r\n", *c))
			mc_buf_put_u8(&text, (uint8_t)*c);
	int rc = 0;
	if (text.len > max_text) {
		rc = api_error_set(&call->err, "InvalidParameterValue",
		                   "User data is limited to %d bytes.",
		                   MC_INSTANCE_USER_DATA);
	} else if (text.len) {
		uint8_t *bytes = xmalloc(MC_INSTANCE_USER_DATA + 3);
		long n = mc_b64_decode(bytes, MC_INSTANCE_USER_DATA + 3,
		                       (const char *)text.data, text.len);
		if (n < 0 || n > MC_INSTANCE_USER_DATA) {
			free(bytes);
			rc = api_error_set(
			    &call->err, "InvalidParameterValue",
			    n < 0 ? "Invalid BASE64 encoding of %s."
			          : "User data (%s) is limited to 16384 bytes.",
			    name);
		} else if (n > 0) {
			*out = bytes;
			*len = (size_t)n;
		} else {
			free(bytes);
		}
	}
	mc_buf_free(&text);
	return rc;
}
