/*
 * One instance's details: GetConsoleOutput (the host's last console bytes,
 * api_cloud.instance_op API_OP_CONSOLE), DescribeInstanceAttribute (read
 * from the record) and ModifyInstanceAttribute (the instance type and the
 * user data of a stopped instance, API_OP_MODIFY; the host refuses any
 * other state).
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

/* The one instance a call names (InstanceId or InstanceId.1), loaded. */
static int one_instance(struct api_call *call, struct mc_instance *out)
{
	const char **ids = xcalloc(API_INSTANCE_IDS_MAX, sizeof(*ids));
	int rc = -1;
	long n = api_instance_ids(call, "InstanceId", ids, true);
	if (n > 1)
		api_error_set(&call->err, "InvalidParameterValue",
		              "This action takes one instance id.");
	else if (n == 1)
		rc = api_instances_load(call, ids, 1, out);
	free(ids);
	return rc;
}

/* One host request and what its answer needs. */
struct single_op {
	struct api_call *call;
	char id[MC_INSTANCE_ID_LEN + 1];
	uint8_t *user_data; /* kept until the host answered */
	char instance_type[32];
};

static int
single_op_start(struct single_op *s, const struct api_instance_request *req,
                void (*cb)(void *ctx, int status, const char *message,
                           const struct mc_instance *after, const uint8_t *data,
                           size_t len))
{
	struct api_call *call = s->call;
	if (!call->cloud->instance_op || !call->finish)
		return api_res_failed(call, ENOSYS);
	int r = call->cloud->instance_op(call->cloud->arg, req, cb, s);
	if (r < 0)
		return api_instance_op_error(call, r, NULL, s->id);
	return API_ACTION_PENDING;
}

static void single_op_free(struct single_op *s)
{
	free(s->user_data);
	free(s);
}

/* ---- GetConsoleOutput --------------------------------------------------- */

/* Console bytes as valid UTF-8 (clients decode the output as such): each
 * byte of an invalid sequence becomes U+FFFD. */
static void utf8_clean(struct mc_buf *out, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t len = c < 0x80           ? 1
		             : (c >> 5) == 0x6  ? 2
		             : (c >> 4) == 0xe  ? 3
		             : (c >> 3) == 0x1e ? 4
		                                : 0;
		bool ok = len > 0 && i + len <= n;
		for (size_t k = 1; ok && k < len; k++)
			ok = (p[i + k] & 0xc0) == 0x80;
		if (ok && len == 2)
			ok = c >= 0xc2;
		if (ok && len == 3) {
			uint32_t cp = (uint32_t)(c & 0x0f) << 12 |
			              (uint32_t)(p[i + 1] & 0x3f) << 6 |
			              (p[i + 2] & 0x3f);
			ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
		}
		if (ok && len == 4) {
			uint32_t cp = (uint32_t)(c & 0x07) << 18 |
			              (uint32_t)(p[i + 1] & 0x3f) << 12 |
			              (uint32_t)(p[i + 2] & 0x3f) << 6 |
			              (p[i + 3] & 0x3f);
			ok = cp >= 0x10000 && cp <= 0x10ffff;
		}
		if (!ok) {
			mc_buf_append_str(out, "\xef\xbf\xbd");
			i++;
			continue;
		}
		mc_buf_append(out, p + i, len);
		i += len;
	}
}

static void on_console(void *ctx, int status, const char *message,
                       const struct mc_instance *after, const uint8_t *data,
                       size_t len)
{
	(void)after;
	struct single_op *s = ctx;
	struct api_call *call = s->call;
	int rc = 0;
	if (status < 0) {
		rc = api_instance_op_error(call, status, message, s->id);
	} else {
		struct mc_buf text;
		char when[32];
		mc_buf_init(&text);
		utf8_clean(&text, data, data ? len : 0);
		char *b64 =
		    mc_b64_encode(text.data ? text.data : (void *)"", text.len);
		api_time_iso8601(when, mc_wall_ms());
		struct mc_buf *o = call->out;
		api_xml_response_begin(o, "GetConsoleOutput", call->version,
		                       call->request_id);
		api_xml_elem(o, "instanceId", s->id);
		api_xml_elem(o, "timestamp", when);
		api_xml_elem(o, "output", b64);
		api_xml_response_end(o, "GetConsoleOutput");
		free(b64);
		mc_buf_free(&text);
	}
	single_op_free(s);
	api_call_finish(call, rc);
}

int api_action_get_console_output(struct api_call *call)
{
	struct mc_instance in;
	bool latest;
	if (api_param_bool(call, "Latest", false, &latest) < 0 ||
	    one_instance(call, &in) < 0)
		return -1;
	struct single_op *s = xcalloc(1, sizeof(*s));
	s->call = call;
	snprintf(s->id, sizeof(s->id), "%s", in.id);
	mc_instance_clear(&in);
	if (api_dry_run(call)) {
		single_op_free(s);
		return -1;
	}
	struct api_instance_request req = {
	    .op = API_OP_CONSOLE,
	    .account = call->auth->key.account_id,
	    .instance_id = s->id,
	};
	int rc = single_op_start(s, &req, on_console);
	if (rc < 0)
		single_op_free(s);
	return rc;
}

/* ---- DescribeInstanceAttribute ------------------------------------------ */

static void value_xml(struct mc_buf *o, const char *tag, const char *value)
{
	api_xml_open(o, tag);
	api_xml_elem(o, "value", value);
	api_xml_close(o, tag);
}

static void empty_xml(struct mc_buf *o, const char *tag)
{
	api_xml_open(o, tag);
	api_xml_close(o, tag);
}

/* Writes the attribute; false for a name EC2 does not know. */
static bool attribute_xml(struct mc_buf *o, const struct mc_instance *in,
                          const char *name)
{
	static const struct {
		const char *name, *value; /* NULL value: an empty element */
	} fixed[] = {
	    {"disableApiTermination", "false"},
	    {"disableApiStop", "false"},
	    {"instanceInitiatedShutdownBehavior", "stop"},
	    {"sourceDestCheck", "true"},
	    {"ebsOptimized", "false"},
	    {"enaSupport", "true"},
	    {"enclaveOptions", NULL},
	    {"kernel", NULL},
	    {"ramdisk", NULL},
	    {"productCodes", NULL},
	    {"sriovNetSupport", NULL},
	    {"blockDeviceMapping", NULL},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (strcmp(name, fixed[i].name) != 0)
			continue;
		if (fixed[i].value)
			value_xml(o, name, fixed[i].value);
		else
			empty_xml(o, name);
		return true;
	}
	if (strcmp(name, "instanceType") == 0) {
		value_xml(o, name, in->instance_type);
	} else if (strcmp(name, "rootDeviceName") == 0) {
		value_xml(o, name,
		          in->root_device[0] ? in->root_device : "/dev/sda1");
	} else if (strcmp(name, "userData") == 0) {
		if (!in->user_data_len) {
			empty_xml(o, name);
			return true;
		}
		char *b64 = mc_b64_encode(in->user_data, in->user_data_len);
		value_xml(o, name, b64);
		free(b64);
	} else if (strcmp(name, "groupSet") == 0) {
		api_xml_open(o, name);
		for (size_t i = 0; i < in->n_groups; i++) {
			api_xml_open(o, "item");
			api_xml_elem(o, "groupId", in->groups[i].id);
			api_xml_close(o, "item");
		}
		api_xml_close(o, name);
	} else {
		return false;
	}
	return true;
}

int api_action_describe_instance_attribute(struct api_call *call)
{
	const char *name = api_params_get(call->params, "Attribute");
	if (!name || !name[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "Attribute");
	struct mc_instance in;
	if (one_instance(call, &in) < 0)
		return -1;
	struct mc_buf attr;
	mc_buf_init(&attr);
	int rc = -1;
	if (!attribute_xml(&attr, &in, name))
		api_error_set(&call->err, "InvalidParameterValue",
		              "Value (%s) for parameter attribute is invalid. "
		              "Unknown attribute.",
		              name);
	else if (!api_dry_run(call))
		rc = 0;
	if (rc == 0) {
		struct mc_buf *o = call->out;
		api_xml_response_begin(o, "DescribeInstanceAttribute",
		                       call->version, call->request_id);
		api_xml_elem(o, "instanceId", in.id);
		mc_buf_append(o, attr.data, attr.len);
		api_xml_response_end(o, "DescribeInstanceAttribute");
	}
	mc_buf_free(&attr);
	mc_instance_clear(&in);
	return rc;
}

/* ---- ModifyInstanceAttribute -------------------------------------------- */

static void on_modify(void *ctx, int status, const char *message,
                      const struct mc_instance *after, const uint8_t *data,
                      size_t len)
{
	(void)after;
	(void)data;
	(void)len;
	struct single_op *s = ctx;
	struct api_call *call = s->call;
	int rc = 0;
	if (status < 0) {
		rc = api_instance_op_error(call, status, message, s->id);
	} else {
		api_xml_response_begin(call->out, "ModifyInstanceAttribute",
		                       call->version, call->request_id);
		api_xml_elem(call->out, "return", "true");
		api_xml_response_end(call->out, "ModifyInstanceAttribute");
	}
	single_op_free(s);
	api_call_finish(call, rc);
}

/* Attributes mallee keeps fixed, which EC2 would let a caller change. */
static const char *const fixed_attributes[] = {
    "SourceDestCheck",
    "DisableApiTermination",
    "DisableApiStop",
    "InstanceInitiatedShutdownBehavior",
    "EbsOptimized",
    "EnaSupport",
    "SriovNetSupport",
    "Kernel",
    "Ramdisk",
    "GroupId",
    "BlockDeviceMapping",
};

/* What to change: InstanceType.Value, UserData.Value, or Attribute with
 * Value. */
static int modify_parse(struct api_call *call, const char **type,
                        const char **user_data)
{
	const struct api_params *p = call->params;
	const char *attr = api_params_get(p, "Attribute");
	const char *value = api_params_get(p, "Value");
	*type = api_params_get(p, "InstanceType.Value");
	*user_data = api_params_get(p, "UserData.Value");
	if (attr && strcmp(attr, "instanceType") == 0)
		*type = value;
	else if (attr && strcmp(attr, "userData") == 0)
		*user_data = value;
	else if (attr)
		return api_error_set(&call->err, "UnsupportedOperation",
		                     "mallee cannot modify the attribute %s.",
		                     attr);
	for (size_t i = 0;
	     i < sizeof(fixed_attributes) / sizeof(fixed_attributes[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.Value", fixed_attributes[i]);
		const char *probe[1];
		if (api_params_get(p, name) ||
		    api_params_list(p, fixed_attributes[i], probe, 1))
			return api_error_set(&call->err, "UnsupportedOperation",
			                     "mallee cannot modify the "
			                     "attribute %s.",
			                     fixed_attributes[i]);
	}
	if (!*type && !*user_data)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must name an attribute to "
		                     "modify.");
	return 0;
}

int api_action_modify_instance_attribute(struct api_call *call)
{
	const char *type_name, *user_data;
	const struct api_instance_type *type = NULL;
	struct api_instance_request req = {
	    .op = API_OP_MODIFY,
	    .account = call->auth->key.account_id,
	};
	if (modify_parse(call, &type_name, &user_data) < 0)
		return -1;
	if (type_name && !(type = api_instance_type_find(type_name)))
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter instanceType is "
		                     "invalid.",
		                     type_name);
	struct single_op *s = xcalloc(1, sizeof(*s));
	struct mc_instance in;
	int rc = -1;
	s->call = call;
	if (user_data &&
	    api_user_data_decode(call, "UserData.Value", user_data,
	                         &s->user_data, &req.user_data_len) < 0)
		goto fail;
	if (one_instance(call, &in) < 0)
		goto fail;
	snprintf(s->id, sizeof(s->id), "%s", in.id);
	enum mc_instance_state state = in.state;
	mc_instance_clear(&in);
	if (state != MC_INST_STOPPED) {
		api_error_set(
		    &call->err, "IncorrectInstanceState",
		    "The instance '%s' is not in the 'stopped' state.", s->id);
		goto fail;
	}
	if (api_dry_run(call))
		goto fail;
	req.instance_id = s->id;
	if (type) {
		snprintf(s->instance_type, sizeof(s->instance_type), "%s",
		         type->name);
		req.instance_type = s->instance_type;
		req.vcpu = type->vcpus;
		req.mem_mib = type->mib;
	}
	req.set_user_data = user_data != NULL;
	req.user_data = s->user_data;
	rc = single_op_start(s, &req, on_modify);
	if (rc >= 0)
		return rc;
fail:
	single_op_free(s);
	return -1;
}
