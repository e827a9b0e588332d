/*
 * Images: RegisterImage, DeregisterImage and DescribeImages. An image is
 * the record (image, "account:ami-..."), private to the account that
 * registered it. Its content (the disk) comes with the instances issue;
 * until then a registered image is "available" at once and the record
 * keeps what RegisterImage said about it, block device mappings included.
 */
#include "apiedge_int.h"

#include "hlc.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMAGE_NAME_MIN 3
#define IMAGE_NAME_MAX 128
#define IMAGE_DESC_MAX 255
#define IMAGE_FIELD    256
#define IMAGE_BDM_MAX  32
#define IMAGE_IDS_MAX  1000
#define IMAGE_RTYPE    "image"

struct image_bdm {
	char device[IMAGE_FIELD], virtual_name[IMAGE_FIELD];
	char snapshot[IMAGE_FIELD];
	char volume_type[IMAGE_FIELD];
	uint64_t size, iops;
	bool no_device, has_ebs, has_size, has_iops, delete_on_term, encrypted;
	bool has_delete, has_encrypted;
};

struct image {
	char id[32];
	char name[IMAGE_NAME_MAX + 1];
	char description[IMAGE_DESC_MAX + 1];
	char arch[32], root_device[IMAGE_FIELD], location[IMAGE_FIELD];
	char kernel[64], ramdisk[64], virt_type[32], state[32];
	bool ena;
	bool public; /* every account sees and runs it (admin imports) */
	uint64_t created_ms;
	struct image_bdm bdm[IMAGE_BDM_MAX];
	size_t n_bdm;
	char owner[API_ACCOUNT_ID_LEN + 1]; /* from the record's id */
};

static const char *const architectures[] = {
    "i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac", NULL,
};

static bool one_of(const char *v, const char *const *set)
{
	for (size_t i = 0; set[i]; i++)
		if (strcmp(v, set[i]) == 0)
			return true;
	return false;
}

static void time_iso8601(char out[32], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* ---- the record --------------------------------------------------------- */

static void pack_bdm(struct mc_buf *b, const struct image_bdm *m)
{
	mc_pack_map(b, 12);
	mc_pack_kv_str(b, "device", m->device);
	mc_pack_kv_str(b, "virtual", m->virtual_name);
	mc_pack_kv_bool(b, "no_device", m->no_device);
	mc_pack_kv_bool(b, "ebs", m->has_ebs);
	mc_pack_kv_str(b, "snapshot", m->snapshot);
	mc_pack_kv_str(b, "volume_type", m->volume_type);
	/* 0 for "not given": EC2 never takes a size or iops of 0. */
	mc_pack_kv_uint(b, "size", m->has_size ? m->size : 0);
	mc_pack_kv_uint(b, "iops", m->has_iops ? m->iops : 0);
	mc_pack_kv_bool(b, "has_delete", m->has_delete);
	mc_pack_kv_bool(b, "delete", m->delete_on_term);
	mc_pack_kv_bool(b, "has_encrypted", m->has_encrypted);
	mc_pack_kv_bool(b, "encrypted", m->encrypted);
}

static void image_pack(struct mc_buf *b, const struct image *im)
{
	mc_pack_map(b, 13);
	mc_pack_kv_str(b, "id", im->id);
	mc_pack_kv_str(b, "name", im->name);
	mc_pack_kv_str(b, "description", im->description);
	mc_pack_kv_str(b, "arch", im->arch);
	mc_pack_kv_str(b, "root_device", im->root_device);
	mc_pack_kv_str(b, "location", im->location);
	mc_pack_kv_str(b, "kernel", im->kernel);
	mc_pack_kv_str(b, "ramdisk", im->ramdisk);
	mc_pack_kv_str(b, "virt_type", im->virt_type);
	mc_pack_kv_str(b, "state", im->state);
	mc_pack_kv_bool(b, "ena", im->ena);
	mc_pack_kv_uint(b, "created", im->created_ms);
	mc_pack_str(b, "bdm");
	mc_pack_array(b, (uint32_t)im->n_bdm);
	for (size_t i = 0; i < im->n_bdm; i++)
		pack_bdm(b, &im->bdm[i]);
}

static void read_bdm(const struct mc_val *v, struct image_bdm *m)
{
	mc_get_str(v, "device", m->device, sizeof(m->device));
	mc_get_str(v, "virtual", m->virtual_name, sizeof(m->virtual_name));
	mc_get_bool(v, "no_device", &m->no_device);
	mc_get_bool(v, "ebs", &m->has_ebs);
	mc_get_str(v, "snapshot", m->snapshot, sizeof(m->snapshot));
	mc_get_str(v, "volume_type", m->volume_type, sizeof(m->volume_type));
	m->has_size = mc_get_uint(v, "size", &m->size) && m->size;
	m->has_iops = mc_get_uint(v, "iops", &m->iops) && m->iops;
	mc_get_bool(v, "has_delete", &m->has_delete);
	mc_get_bool(v, "delete", &m->delete_on_term);
	mc_get_bool(v, "has_encrypted", &m->has_encrypted);
	mc_get_bool(v, "encrypted", &m->encrypted);
}

static bool image_read(const struct mc_val *v, struct image *im)
{
	memset(im, 0, sizeof(*im));
	if (!mc_get_str(v, "id", im->id, sizeof(im->id)) ||
	    !mc_get_str(v, "name", im->name, sizeof(im->name)))
		return false;
	mc_get_str(v, "description", im->description, sizeof(im->description));
	mc_get_str(v, "arch", im->arch, sizeof(im->arch));
	mc_get_str(v, "root_device", im->root_device, sizeof(im->root_device));
	mc_get_str(v, "location", im->location, sizeof(im->location));
	mc_get_str(v, "kernel", im->kernel, sizeof(im->kernel));
	mc_get_str(v, "ramdisk", im->ramdisk, sizeof(im->ramdisk));
	mc_get_str(v, "virt_type", im->virt_type, sizeof(im->virt_type));
	mc_get_str(v, "state", im->state, sizeof(im->state));
	mc_get_bool(v, "ena", &im->ena);
	mc_get_bool(v, "public", &im->public);
	mc_get_uint(v, "created", &im->created_ms);
	const struct mc_val *bdm = mc_map_get(v, "bdm");
	if (bdm && bdm->type == MC_VAL_ARRAY)
		for (uint32_t i = 0; i < bdm->v.array.n && i < IMAGE_BDM_MAX;
		     i++)
			read_bdm(&bdm->v.array.items[i], &im->bdm[im->n_bdm++]);
	return true;
}

/* ---- RegisterImage ------------------------------------------------------ */

/* EC2's AMI name alphabet: letters, digits, ()[] ./-'@_ and space. */
static bool image_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < IMAGE_NAME_MIN || n > IMAGE_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("()[] ./-'@_", *s)))
			return false;
	return true;
}

/* Copies an optional string parameter, refusing one that is too long. */
static int param_copy(struct api_call *call, const char *name, char *out,
                      size_t size, const char *dflt)
{
	const char *v = api_params_get(call->params, name);
	if (!v || !v[0])
		v = dflt ? dflt : "";
	if (strlen(v) >= size)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value for parameter %s is too long.",
		                     name);
	snprintf(out, size, "%s", v);
	return 0;
}

static int param_uint(struct api_call *call, const char *name, const char *v,
                      uint64_t *out)
{
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (!v[0] || *end || v[0] == '-' || n == 0 || n > UINT32_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter %s is invalid.",
		                     v, name);
	*out = n;
	return 0;
}

static int param_flag(struct api_call *call, const char *name, const char *v,
                      bool *has, bool *out)
{
	if (!v)
		return 0;
	*has = true;
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		*out = v[0] == 't';
		return 0;
	}
	return api_error_set(&call->err, "InvalidParameterValue",
	                     "Value (%s) for parameter %s is invalid. "
	                     "Expected a boolean.",
	                     v, name);
}

/* One BlockDeviceMapping.N.*: DeviceName, VirtualName, NoDevice, Ebs.*. */
static int parse_bdm(struct api_call *call, long idx, struct image_bdm *m)
{
	static const char p[] = "BlockDeviceMapping";
	const struct api_params *ps = call->params;
	const char *dev = api_params_member(ps, p, idx, "DeviceName");
	const char *virt = api_params_member(ps, p, idx, "VirtualName");
	const char *nodev = api_params_member(ps, p, idx, "NoDevice");
	const char *snap = api_params_member(ps, p, idx, "Ebs.SnapshotId");
	const char *size = api_params_member(ps, p, idx, "Ebs.VolumeSize");
	const char *type = api_params_member(ps, p, idx, "Ebs.VolumeType");
	const char *iops = api_params_member(ps, p, idx, "Ebs.Iops");
	const char *del =
	    api_params_member(ps, p, idx, "Ebs.DeleteOnTermination");
	const char *enc = api_params_member(ps, p, idx, "Ebs.Encrypted");
	if (!dev || !dev[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "BlockDeviceMapping.DeviceName");
	const char *vals[] = {dev, virt, snap, type};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (vals[i] && strlen(vals[i]) >= IMAGE_FIELD)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "A block device mapping value is "
			                     "too long.");
	snprintf(m->device, sizeof(m->device), "%s", dev);
	snprintf(m->virtual_name, sizeof(m->virtual_name), "%s",
	         virt ? virt : "");
	/* NoDevice is sent empty: its presence is what counts. */
	m->no_device = nodev != NULL;
	m->has_ebs = snap || size || type || iops || del || enc;
	snprintf(m->snapshot, sizeof(m->snapshot), "%s", snap ? snap : "");
	snprintf(m->volume_type, sizeof(m->volume_type), "%s",
	         type ? type : "");
	if (size && param_uint(call, "Ebs.VolumeSize", size, &m->size) < 0)
		return -1;
	if (iops && param_uint(call, "Ebs.Iops", iops, &m->iops) < 0)
		return -1;
	m->has_size = size != NULL;
	m->has_iops = iops != NULL;
	if (param_flag(call, "Ebs.DeleteOnTermination", del, &m->has_delete,
	               &m->delete_on_term) < 0 ||
	    param_flag(call, "Ebs.Encrypted", enc, &m->has_encrypted,
	               &m->encrypted) < 0)
		return -1;
	return 0;
}

static int parse_register(struct api_call *call, struct image *im)
{
	const char *name = api_params_get(call->params, "Name");
	if (!name || !name[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "name");
	if (!image_name_ok(name))
		return api_error_set(
		    &call->err, "InvalidAMIName.Malformed",
		    "AMI names must be between 3 and 128 "
		    "characters long, and may contain letters, "
		    "numbers, '(', ')', '[', ']', ' ', '.', "
		    "'/', '-', ''', '@' and '_'");
	snprintf(im->name, sizeof(im->name), "%s", name);
	if (param_copy(call, "Description", im->description,
	               sizeof(im->description), NULL) < 0 ||
	    param_copy(call, "Architecture", im->arch, sizeof(im->arch),
	               "x86_64") < 0 ||
	    param_copy(call, "RootDeviceName", im->root_device,
	               sizeof(im->root_device), "/dev/sda1") < 0 ||
	    param_copy(call, "ImageLocation", im->location,
	               sizeof(im->location), NULL) < 0 ||
	    param_copy(call, "KernelId", im->kernel, sizeof(im->kernel), NULL) <
	        0 ||
	    param_copy(call, "RamdiskId", im->ramdisk, sizeof(im->ramdisk),
	               NULL) < 0 ||
	    param_copy(call, "VirtualizationType", im->virt_type,
	               sizeof(im->virt_type), "hvm") < 0)
		return -1;
	if (!one_of(im->arch, architectures))
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter architecture is "
		                     "invalid.",
		                     im->arch);
	if (strcmp(im->virt_type, "hvm") != 0 &&
	    strcmp(im->virt_type, "paravirtual") != 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter "
		                     "virtualizationType is invalid.",
		                     im->virt_type);
	if (im->kernel[0] && !api_res_id_valid("aki", im->kernel))
		return api_error_set(
		    &call->err, "InvalidAKIID.Malformed",
		    "Invalid id: \"%s\" (expecting \"aki-...\")", im->kernel);
	if (im->ramdisk[0] && !api_res_id_valid("ari", im->ramdisk))
		return api_error_set(
		    &call->err, "InvalidARIID.Malformed",
		    "Invalid id: \"%s\" (expecting \"ari-...\")", im->ramdisk);
	bool has_ena = false;
	if (param_flag(call, "EnaSupport",
	               api_params_get(call->params, "EnaSupport"), &has_ena,
	               &im->ena) < 0)
		return -1;
	long idx[IMAGE_BDM_MAX + 1];
	size_t n = api_params_indexes(call->params, "BlockDeviceMapping", idx,
	                              IMAGE_BDM_MAX + 1);
	if (n > IMAGE_BDM_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many block device mappings.");
	for (size_t i = 0; i < n; i++)
		if (parse_bdm(call, idx[i], &im->bdm[im->n_bdm++]) < 0)
			return -1;
	return api_tag_specs_check(call, IMAGE_RTYPE);
}

struct name_probe {
	const char *name;
	bool taken;
};

static int name_probe_one(void *ctx, const char *resid,
                          const struct mc_val *body)
{
	(void)resid;
	struct name_probe *p = ctx;
	if (mc_val_is_str(mc_map_get(body, "name"), p->name)) {
		p->taken = true;
		return 1;
	}
	return 0;
}

int api_action_register_image(struct api_call *call)
{
	struct image *im = xcalloc(1, sizeof(*im));
	int rc = -1;
	if (parse_register(call, im) < 0)
		goto out;
	struct name_probe probe = {.name = im->name};
	int r = api_res_each(call, API_KIND_IMAGE, name_probe_one, &probe);
	if (r < 0) {
		api_res_failed(call, r);
		goto out;
	}
	if (probe.taken) {
		api_error_set(&call->err, "InvalidAMIName.Duplicate",
		              "AMI name %s is already in use by AMI in your "
		              "account",
		              im->name);
		goto out;
	}
	if (api_dry_run(call))
		goto out;

	api_res_new_id("ami", im->id, sizeof(im->id));
	im->created_ms = mc_wall_ms();
	snprintf(im->state, sizeof(im->state), "available");
	struct mc_buf b;
	mc_buf_init(&b);
	image_pack(&b, im);
	r = api_res_store(call, API_KIND_IMAGE, im->id, &b);
	mc_buf_free(&b);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	if (api_tag_specs_apply(call, IMAGE_RTYPE, im->id) < 0)
		goto out;
	api_xml_response_begin(call->out, "RegisterImage", call->version,
	                       call->request_id);
	api_xml_elem(call->out, "imageId", im->id);
	api_xml_response_end(call->out, "RegisterImage");
	rc = 0;
out:
	free(im);
	return rc;
}

/* ---- DeregisterImage ---------------------------------------------------- */

static int bad_image_id(struct api_call *call, const char *id)
{
	return api_error_set(&call->err, "InvalidAMIID.Malformed",
	                     "Invalid id: \"%s\" (expecting \"ami-...\")", id);
}

int api_action_deregister_image(struct api_call *call)
{
	const char *id = api_params_get(call->params, "ImageId");
	if (!id || !id[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "ImageId");
	if (!api_res_id_valid("ami", id))
		return bad_image_id(call, id);
	struct mc_doc *doc = NULL;
	int r = api_res_load(call, API_KIND_IMAGE, id, &doc);
	mc_doc_free(doc);
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidAMIID.NotFound",
		                     "The image id '[%s]' does not exist", id);
	if (r)
		return api_res_failed(call, r);
	if (api_dry_run(call))
		return -1;
	r = api_res_remove(call, API_KIND_IMAGE, id);
	if (r)
		return api_res_failed(call, r);
	api_xml_response_begin(call->out, "DeregisterImage", call->version,
	                       call->request_id);
	api_xml_elem(call->out, "return", "true");
	api_xml_response_end(call->out, "DeregisterImage");
	return 0;
}

/* ---- DescribeImages ----------------------------------------------------- */

struct describe {
	struct api_call *call;
	struct api_filters filters;
	const char **ids;
	bool *seen;
	size_t n_ids;
	const char **owners; /* Owner.N */
	size_t n_owners;
	const char **exec_by; /* ExecutableBy.N */
	size_t n_exec_by;
	struct api_page page;
	struct image im;
};

static const char *const image_filters[] = {
    "architecture",
    "block-device-mapping.delete-on-termination",
    "block-device-mapping.device-name",
    "block-device-mapping.snapshot-id",
    "block-device-mapping.volume-size",
    "block-device-mapping.volume-type",
    "block-device-mapping.encrypted",
    "description",
    "ena-support",
    "hypervisor",
    "image-id",
    "image-type",
    "is-public",
    "kernel-id",
    "manifest-location",
    "name",
    "owner-alias",
    "owner-id",
    "platform",
    "product-code",
    "ramdisk-id",
    "root-device-name",
    "root-device-type",
    "state",
    "virtualization-type",
    NULL,
};

static bool bdm_matches(const struct api_filter *f, const struct image *im)
{
	const char *field = f->name + strlen("block-device-mapping.");
	for (size_t i = 0; i < im->n_bdm; i++) {
		const struct image_bdm *m = &im->bdm[i];
		char num[24];
		const char *v = NULL;
		if (strcmp(field, "device-name") == 0) {
			v = m->device;
		} else if (!m->has_ebs) {
			continue;
		} else if (strcmp(field, "snapshot-id") == 0) {
			v = m->snapshot;
		} else if (strcmp(field, "volume-type") == 0) {
			v = m->volume_type;
		} else if (strcmp(field, "volume-size") == 0 && m->has_size) {
			snprintf(num, sizeof(num), "%llu",
			         (unsigned long long)m->size);
			v = num;
		} else if (strcmp(field, "delete-on-termination") == 0) {
			v = m->delete_on_term ? "true" : "false";
		} else if (strcmp(field, "encrypted") == 0) {
			v = m->encrypted ? "true" : "false";
		}
		if (v && api_filter_values_match(f, v))
			return true;
	}
	return false;
}

/* The value of a simple image filter; NULL when the image has none. */
static const char *image_field(const struct image *im, const char *owner,
                               const char *name)
{
	static const struct {
		const char *filter, *constant;
	} constants[] = {
	    {"hypervisor", "xen"},       {"image-type", "machine"},
	    {"root-device-type", "ebs"}, {"owner-alias", NULL},
	    {"platform", NULL},          {"product-code", NULL},
	};
	for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
		if (strcmp(name, constants[i].filter) == 0)
			return constants[i].constant;
	if (strcmp(name, "is-public") == 0)
		return im->public ? "true" : "false";
	if (strcmp(name, "architecture") == 0)
		return im->arch;
	if (strcmp(name, "description") == 0)
		return im->description;
	if (strcmp(name, "ena-support") == 0)
		return im->ena ? "true" : "false";
	if (strcmp(name, "image-id") == 0)
		return im->id;
	if (strcmp(name, "kernel-id") == 0)
		return im->kernel[0] ? im->kernel : NULL;
	if (strcmp(name, "manifest-location") == 0)
		return im->location[0] ? im->location : NULL;
	if (strcmp(name, "name") == 0)
		return im->name;
	if (strcmp(name, "owner-id") == 0)
		return owner;
	if (strcmp(name, "ramdisk-id") == 0)
		return im->ramdisk[0] ? im->ramdisk : NULL;
	if (strcmp(name, "root-device-name") == 0)
		return im->root_device;
	if (strcmp(name, "state") == 0)
		return im->state;
	if (strcmp(name, "virtualization-type") == 0)
		return im->virt_type;
	return NULL;
}

static bool image_matches(const struct describe *d, const struct image *im,
                          const struct api_tags *tags)
{
	const char *owner = im->owner;
	for (size_t i = 0; i < d->filters.n; i++) {
		const struct api_filter *f = &d->filters.items[i];
		bool m = false;
		if (api_filter_tags(f, tags, &m))
			;
		else if (strncmp(f->name, "block-device-mapping.", 21) == 0)
			m = bdm_matches(f, im);
		else {
			const char *v = image_field(im, owner, f->name);
			m = v && api_filter_values_match(f, v);
		}
		if (!m)
			return false;
	}
	return true;
}

static void xml_bdm(struct mc_buf *o, const struct image_bdm *m)
{
	api_xml_open(o, "item");
	api_xml_elem(o, "deviceName", m->device);
	if (m->virtual_name[0])
		api_xml_elem(o, "virtualName", m->virtual_name);
	if (m->no_device)
		api_xml_elem(o, "noDevice", "");
	if (m->has_ebs) {
		api_xml_open(o, "ebs");
		if (m->snapshot[0])
			api_xml_elem(o, "snapshotId", m->snapshot);
		if (m->has_size)
			api_xml_elem_fmt(o, "volumeSize", "%llu",
			                 (unsigned long long)m->size);
		api_xml_elem_bool(o, "deleteOnTermination",
		                  m->has_delete ? m->delete_on_term : true);
		api_xml_elem(o, "volumeType",
		             m->volume_type[0] ? m->volume_type : "standard");
		if (m->has_iops)
			api_xml_elem_fmt(o, "iops", "%llu",
			                 (unsigned long long)m->iops);
		api_xml_elem_bool(o, "encrypted", m->encrypted);
		api_xml_close(o, "ebs");
	}
	api_xml_close(o, "item");
}

static void xml_image(struct api_call *call, const struct image *im,
                      const struct api_tags *tags)
{
	struct mc_buf *o = call->out;
	const char *owner = im->owner;
	char when[32], location[IMAGE_FIELD + 32];
	time_iso8601(when, im->created_ms);
	/* EBS images show "owner/name" where EC2 keeps a manifest path. */
	snprintf(location, sizeof(location), "%s",
	         im->location[0] ? im->location : "");
	if (!im->location[0])
		snprintf(location, sizeof(location), "%s/%s", owner, im->name);
	api_xml_open(o, "item");
	api_xml_elem(o, "imageId", im->id);
	api_xml_elem(o, "imageLocation", location);
	api_xml_elem(o, "imageState", im->state);
	api_xml_elem(o, "imageOwnerId", owner);
	api_xml_elem(o, "creationDate", when);
	api_xml_elem_bool(o, "isPublic", im->public);
	api_xml_elem(o, "architecture", im->arch);
	api_xml_elem(o, "imageType", "machine");
	if (im->kernel[0])
		api_xml_elem(o, "kernelId", im->kernel);
	if (im->ramdisk[0])
		api_xml_elem(o, "ramdiskId", im->ramdisk);
	api_xml_elem(o, "name", im->name);
	if (im->description[0])
		api_xml_elem(o, "description", im->description);
	api_xml_elem(o, "rootDeviceType", "ebs");
	api_xml_elem(o, "rootDeviceName", im->root_device);
	api_xml_open(o, "blockDeviceMapping");
	for (size_t i = 0; i < im->n_bdm; i++)
		xml_bdm(o, &im->bdm[i]);
	api_xml_close(o, "blockDeviceMapping");
	api_xml_elem(o, "virtualizationType", im->virt_type);
	api_xml_elem_bool(o, "enaSupport", im->ena);
	api_xml_elem(o, "hypervisor", "xen");
	api_xml_tag_set(o, tags);
	api_xml_close(o, "item");
}

/*
 * Owner.N: "self" (or the caller's account) names the caller's images, an
 * account id that account's images the caller may see, and "amazon" (or
 * "aws-marketplace", "all") the public images, which the cloud's admin
 * imports for every account. With no Owner, the caller's images and the
 * public ones. ExecutableBy.N narrows nothing: every image a caller sees
 * it may launch (its own, or public ones).
 */
static bool owner_matches(const struct describe *d, const struct image *im)
{
	bool mine = strcmp(im->owner, d->call->auth->key.account_id) == 0;
	bool ok = d->n_owners == 0;
	for (size_t i = 0; i < d->n_owners && !ok; i++) {
		const char *o = d->owners[i];
		if (strcmp(o, "self") == 0)
			ok = mine;
		else if (strcmp(o, "amazon") == 0 ||
		         strcmp(o, "aws-marketplace") == 0 ||
		         strcmp(o, "all") == 0)
			ok = im->public;
		else
			ok = strcmp(o, im->owner) == 0;
	}
	return ok;
}

static void describe_one(struct describe *d, const char *owner,
                         const char *resid, const struct mc_val *body)
{
	struct image *im = &d->im;
	if (!image_read(body, im))
		return;
	snprintf(im->owner, sizeof(im->owner), "%s", owner);
	bool mine = strcmp(owner, d->call->auth->key.account_id) == 0;
	if (!mine && !im->public)
		return;
	bool listed = d->n_ids == 0;
	for (size_t i = 0; i < d->n_ids; i++)
		if (strcmp(d->ids[i], im->id) == 0)
			listed = d->seen[i] = true;
	if (!listed || !owner_matches(d, im))
		return;
	/* Tags are the owner's: other accounts see a public image bare. */
	struct api_tags tags;
	if (!mine || api_tags_load(d->call, im->id, &tags) != 0)
		tags.n = 0;
	if (image_matches(d, im, &tags) && api_page_take(&d->page, resid))
		xml_image(d->call, im, &tags);
}

static int parse_owners(struct describe *d)
{
	d->n_owners =
	    api_params_list(d->call->params, "Owner", d->owners, IMAGE_IDS_MAX);
	d->n_exec_by = api_params_list(d->call->params, "ExecutableBy",
	                               d->exec_by, IMAGE_IDS_MAX);
	if (d->n_owners > IMAGE_IDS_MAX || d->n_exec_by > IMAGE_IDS_MAX)
		return api_error_set(&d->call->err, "InvalidParameterValue",
		                     "Too many owners.");
	return 0;
}

/*
 * Every account's images, as (owner, ami id, body) sorted by ami id: the
 * caller's and the public ones are shown from it. A copy, because tags
 * are loaded per image and the store cannot list inside a list.
 */
struct all_item {
	char owner[API_ACCOUNT_ID_LEN + 1];
	char *resid;
	struct mc_doc *doc;
};

struct all_images {
	struct all_item *items;
	size_t n, cap;
	const char *me;
};

static int all_one(void *ctx, const char *id, const uint8_t *body, size_t len)
{
	struct all_images *a = ctx;
	const char *colon = strchr(id, ':');
	if (!colon || (size_t)(colon - id) > API_ACCOUNT_ID_LEN)
		return 0;
	struct mc_doc *doc = mc_unpack(body, len);
	if (!doc)
		return 0;
	bool pub = false;
	mc_get_bool(mc_doc_root(doc), "public", &pub);
	if (!pub && (strncmp(id, a->me, (size_t)(colon - id)) != 0 ||
	             a->me[colon - id] != '\0')) {
		mc_doc_free(doc);
		return 0;
	}
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 16;
		a->items = xrealloc(a->items, a->cap * sizeof(a->items[0]));
	}
	snprintf(a->items[a->n].owner, sizeof(a->items[a->n].owner), "%.*s",
	         (int)(colon - id), id);
	a->items[a->n].resid = xstrdup(colon + 1);
	a->items[a->n].doc = doc;
	a->n++;
	return 0;
}

static int all_cmp(const void *x, const void *y)
{
	const struct all_item *a = x, *b = y;
	return strcmp(a->resid, b->resid);
}

static void all_images_free(struct all_images *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->items[i].resid);
		mc_doc_free(a->items[i].doc);
	}
	free(a->items);
}

static int describe_parse(struct describe *d)
{
	struct api_call *call = d->call;
	d->n_ids =
	    api_params_list(call->params, "ImageId", d->ids, IMAGE_IDS_MAX);
	if (d->n_ids > IMAGE_IDS_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many image ids.");
	for (size_t i = 0; i < d->n_ids; i++)
		if (!api_res_id_valid("ami", d->ids[i]))
			return bad_image_id(call, d->ids[i]);
	if (parse_owners(d) < 0 ||
	    api_filters_parse(call->params, &d->filters, &call->err) < 0)
		return -1;
	for (size_t i = 0; i < d->filters.n; i++) {
		const char *name = d->filters.items[i].name;
		if (!one_of(name, image_filters) && strncmp(name, "tag:", 4) &&
		    strcmp(name, "tag-key") && strcmp(name, "tag-value"))
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "The filter '%s' is invalid", name);
	}
	return api_page_parse(call, &d->page, 5, 1000);
}

int api_action_describe_images(struct api_call *call)
{
	struct describe *d = xcalloc(1, sizeof(*d));
	int rc = -1;
	d->call = call;
	d->ids = xcalloc(IMAGE_IDS_MAX, sizeof(char *));
	d->owners = xcalloc(IMAGE_IDS_MAX, sizeof(char *));
	d->exec_by = xcalloc(IMAGE_IDS_MAX, sizeof(char *));
	d->seen = xcalloc(IMAGE_IDS_MAX, sizeof(bool));
	if (describe_parse(d) < 0 || api_dry_run(call))
		goto out;
	api_xml_response_begin(call->out, "DescribeImages", call->version,
	                       call->request_id);
	api_xml_open(call->out, "imagesSet");
	struct all_images all = {.me = call->auth->key.account_id};
	int r = call->cloud->list(call->cloud->arg, API_KIND_IMAGE, "", all_one,
	                          &all);
	if (r) {
		all_images_free(&all);
		api_res_failed(call, r);
		goto out;
	}
	if (all.n)
		qsort(all.items, all.n, sizeof(all.items[0]), all_cmp);
	for (size_t i = 0; i < all.n; i++)
		describe_one(d, all.items[i].owner, all.items[i].resid,
		             mc_doc_root(all.items[i].doc));
	all_images_free(&all);
	for (size_t i = 0; i < d->n_ids; i++)
		if (!d->seen[i]) {
			api_error_set(&call->err, "InvalidAMIID.NotFound",
			              "The image id '[%s]' does not exist",
			              d->ids[i]);
			goto out;
		}
	api_xml_close(call->out, "imagesSet");
	api_page_xml_next(call->out, &d->page);
	api_xml_response_end(call->out, "DescribeImages");
	rc = 0;
out:
	api_filters_free(&d->filters);
	free(d->ids);
	free(d->owners);
	free(d->exec_by);
	free(d->seen);
	free(d);
	return rc;
}

/* ---- images RunInstances may launch ------------------------------------- */

struct public_find {
	const char *image_id;
	char *owner;
	size_t owner_size;
	bool found;
};

static int public_one(void *ctx, const char *id, const uint8_t *body,
                      size_t len)
{
	struct public_find *f = ctx;
	const char *colon = strchr(id, ':');
	if (!colon || strcmp(colon + 1, f->image_id) != 0)
		return 0;
	struct mc_doc *doc = mc_unpack(body, len);
	bool pub = false;
	if (doc && mc_get_bool(mc_doc_root(doc), "public", &pub) && pub) {
		snprintf(f->owner, f->owner_size, "%.*s", (int)(colon - id),
		         id);
		f->found = true;
	}
	mc_doc_free(doc);
	return f->found;
}

int api_image_find(const struct api_call *call, const char *image_id,
                   char *owner, size_t owner_size)
{
	struct mc_doc *doc = NULL;
	int r = api_res_load(call, API_KIND_IMAGE, image_id, &doc);
	mc_doc_free(doc);
	if (r == 0)
		snprintf(owner, owner_size, "%s", call->auth->key.account_id);
	if (r != -ENOENT)
		return r;
	struct public_find f = {image_id, owner, owner_size, false};
	r = call->cloud->list(call->cloud->arg, API_KIND_IMAGE, "", public_one,
	                      &f);
	if (r < 0)
		return r;
	return f.found ? 0 : -ENOENT;
}
