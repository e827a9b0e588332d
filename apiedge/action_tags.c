/*
 * Tags (CreateTags, DeleteTags, DescribeTags), the account-wide tag index
 * describes use to find many resources' tags in one walk, and the filter
 * matching every Describe shares. A tag is its own record (resource.c), so
 * tagging never rewrites the resource it tags.
 */
#include "apiedge_int.h"

#include "instance.h"

#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESOURCES_MAX 1000

int api_filters_match(struct api_call *call, const struct api_filters *fs,
                      const struct api_field *fields, size_t n,
                      const struct api_tags *tags, bool *match)
{
	*match = true;
	for (size_t i = 0; i < fs->n; i++) {
		const struct api_filter *f = &fs->items[i];
		bool m = false;
		if (tags && api_filter_tags(f, tags, &m)) {
			*match = *match && m;
			continue;
		}
		size_t k = 0;
		while (k < n && strcmp(fields[k].name, f->name) != 0)
			k++;
		if (k == n)
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "The filter '%s' is invalid", f->name);
		*match = *match && fields[k].value &&
		         api_filter_values_match(f, fields[k].value);
	}
	return 0;
}

/* ---- the account's tags, indexed ---------------------------------------- */

static int tag_rec_cmp(const void *a, const void *b)
{
	const struct api_tag_rec *x = a, *y = b;
	int c = strcmp(x->resid, y->resid);
	return c ? c : strcmp(x->key, y->key);
}

static int index_one(void *arg, const char *id, const uint8_t *body, size_t len)
{
	(void)id;
	struct api_tag_index *ix = arg;
	struct mc_doc *doc = mc_unpack(body, len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	const uint8_t *f[4];
	size_t fl[4];
	if (v && mc_get_bytes(v, "resource", &f[0], &fl[0]) &&
	    mc_get_bytes(v, "type", &f[1], &fl[1]) &&
	    mc_get_bytes(v, "key", &f[2], &fl[2]) &&
	    mc_get_bytes(v, "value", &f[3], &fl[3]) &&
	    fl[2] <= API_TAG_KEY_MAX && fl[3] <= API_TAG_VALUE_MAX &&
	    fl[0] <= API_RES_ID_MAX * 2) {
		if (ix->n == ix->cap) {
			ix->cap = ix->cap ? 2 * ix->cap : 64;
			ix->items =
			    xrealloc(ix->items, ix->cap * sizeof(*ix->items));
		}
		/* One block per tag: the four strings back to back. */
		char *s = xmalloc(fl[0] + fl[1] + fl[2] + fl[3] + 4);
		char *fields[4];
		for (int i = 0; i < 4; i++) {
			fields[i] = s;
			memcpy(s, f[i], fl[i]);
			s[fl[i]] = '\0';
			/* A NUL inside would cut the string short: harmless. */
			s += fl[i] + 1;
		}
		ix->items[ix->n++] = (struct api_tag_rec){
		    .resid = fields[0],
		    .type = fields[1],
		    .key = fields[2],
		    .value = fields[3],
		};
	}
	mc_doc_free(doc);
	return 0;
}

int api_tag_index_add(const struct api_call *call, const char *resid_prefix,
                      struct api_tag_index *ix)
{
	char prefix[API_RES_ID_MAX + 32];
	snprintf(prefix, sizeof(prefix), "%s:%s", call->auth->key.account_id,
	         resid_prefix);
	return call->cloud->list(call->cloud->arg, API_KIND_TAG, prefix,
	                         index_one, ix);
}

void api_tag_index_sort(struct api_tag_index *ix)
{
	if (ix->n)
		qsort(ix->items, ix->n, sizeof(ix->items[0]), tag_rec_cmp);
}

void api_tag_index_get(const struct api_tag_index *ix, const char *resid,
                       struct api_tags *out)
{
	size_t lo = 0, hi = ix->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(ix->items[mid].resid, resid) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	out->n = 0;
	for (; lo < ix->n && out->n < API_TAGS_MAX &&
	       strcmp(ix->items[lo].resid, resid) == 0;
	     lo++) {
		struct api_tag *t = &out->items[out->n++];
		snprintf(t->key, sizeof(t->key), "%s", ix->items[lo].key);
		snprintf(t->value, sizeof(t->value), "%s", ix->items[lo].value);
	}
}

void api_tag_index_free(struct api_tag_index *ix)
{
	for (size_t i = 0; i < ix->n; i++)
		free(ix->items[i].resid); /* the block's start */
	free(ix->items);
	memset(ix, 0, sizeof(*ix));
}

/* ---- which resource an id names ----------------------------------------- */

static bool subnet_known(const struct api_call *call, const char *id)
{
	struct api_subnet subnets[API_ZONES_MAX];
	size_t n = api_default_subnets(call, subnets, API_ZONES_MAX);
	for (size_t i = 0; i < n; i++)
		if (strcmp(subnets[i].id, id) == 0)
			return true;
	return false;
}

/* EC2's codes for one kind of id: malformed, then not found. */
static const struct id_kind {
	const char *prefix, *rtype, *malformed, *not_found, *message;
} id_kinds[] = {
    {"sg", "security-group", "InvalidGroupId.Malformed",
     "InvalidGroup.NotFound", "The security group '%s' does not exist"},
    {"ami", "image", "InvalidAMIID.Malformed", "InvalidAMIID.NotFound",
     "The image id '[%s]' does not exist"},
    {"key", "key-pair", "InvalidKeyPair.Malformed", "InvalidKeyPair.NotFound",
     "The key pair ID '%s' does not exist"},
    {"vpc", "vpc", "InvalidVpcID.Malformed", "InvalidVpcID.NotFound",
     "The vpc ID '%s' does not exist"},
    {"subnet", "subnet", "InvalidSubnetID.Malformed",
     "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist"},
    {"i", "instance", "InvalidInstanceID.Malformed",
     "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist"},
    {"eipalloc", "elastic-ip", "InvalidAllocationID.Malformed",
     "InvalidAllocationID.NotFound",
     "The allocation ID '%s' does not exist"},
};

int api_resource_check(struct api_call *call, const char *id,
                       const char **rtype)
{
	const struct id_kind *k = NULL;
	for (size_t i = 0; i < sizeof(id_kinds) / sizeof(id_kinds[0]); i++) {
		size_t pl = strlen(id_kinds[i].prefix);
		if (strncmp(id, id_kinds[i].prefix, pl) == 0 && id[pl] == '-')
			k = &id_kinds[i];
	}
	if (!k)
		return api_error_set(&call->err, "InvalidID",
		                     "The ID '%s' is not valid", id);
	if (!api_res_id_valid(k->prefix, id))
		return api_error_set(
		    &call->err, k->malformed,
		    "Invalid id: \"%s\" (expecting \"%s-...\")", id, k->prefix);
	*rtype = k->rtype;
	int r = -ENOENT;
	struct mc_doc *doc = NULL;
	/* Other accounts' resources are as absent as unknown ones. */
	if (strcmp(k->prefix, "sg") == 0) {
		r = api_group_get(call, id, NULL);
	} else if (strcmp(k->prefix, "ami") == 0) {
		r = api_res_load(call, API_KIND_IMAGE, id, &doc);
		mc_doc_free(doc);
	} else if (strcmp(k->prefix, "key") == 0) {
		r = api_key_pair_load(call, NULL, id, &doc);
		mc_doc_free(doc);
	} else if (strcmp(k->prefix, "i") == 0) {
		struct mc_instance in;
		r = api_instance_load(call, id, &in);
		if (r == 0)
			mc_instance_clear(&in);
	} else if (strcmp(k->prefix, "eipalloc") == 0) {
		r = api_res_load(call, API_KIND_ADDRESS, id, &doc);
		mc_doc_free(doc);
	} else if (strcmp(k->prefix, "vpc") == 0) {
		char vpc[32];
		api_default_vpc_id(call, vpc);
		r = strcmp(vpc, id) == 0 ? 0 : -ENOENT;
	} else if (strcmp(k->prefix, "subnet") == 0) {
		r = subnet_known(call, id) ? 0 : -ENOENT;
	}
	if (r == -ENOENT)
		return api_error_set(&call->err, k->not_found, k->message, id);
	return r ? api_res_failed(call, r) : 0;
}

/* ---- CreateTags and DeleteTags ------------------------------------------ */

/* ResourceId.N, all of them existing in the caller's account. */
static int resources(struct api_call *call, const char **ids,
                     const char **types, size_t *n)
{
	*n = api_params_list(call->params, "ResourceId", ids, RESOURCES_MAX);
	if (*n == 0)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "resourceIdSet");
	if (*n > RESOURCES_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many resource ids (at most %d).",
		                     RESOURCES_MAX);
	for (size_t i = 0; i < *n; i++)
		if (api_resource_check(call, ids[i], &types[i]) < 0)
			return -1;
	return 0;
}

struct tag_arg {
	const char *key;
	const char *value; /* NULL: absent */
};

/* Tag.N.Key / Tag.N.Value; *n is 0 when the request names none. */
static int tag_args(struct api_call *call, struct tag_arg *tags, size_t *n,
                    bool create)
{
	long idx[API_TAGS_MAX + 1];
	*n = api_params_indexes(call->params, "Tag", idx, API_TAGS_MAX + 1);
	if (*n > API_TAGS_MAX)
		return api_error_set(&call->err, "TagLimitExceeded",
		                     "The maximum number of tags (%d) was "
		                     "exceeded.",
		                     API_TAGS_MAX);
	for (size_t i = 0; i < *n; i++) {
		const char *key =
		    api_params_member(call->params, "Tag", idx[i], "Key");
		const char *value =
		    api_params_member(call->params, "Tag", idx[i], "Value");
		if (!key || !key[0] || strlen(key) > API_TAG_KEY_MAX)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "Tag keys must be 1 to %d "
			                     "characters.",
			                     API_TAG_KEY_MAX);
		if (create && strncasecmp(key, "aws:", 4) == 0)
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "Tag keys starting with 'aws:' are "
			    "reserved for internal use");
		if (value && strlen(value) > API_TAG_VALUE_MAX)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "Tag values may be at most %d "
			                     "characters.",
			                     API_TAG_VALUE_MAX);
		tags[i] = (struct tag_arg){.key = key, .value = value};
	}
	return 0;
}

static bool has_key(const struct api_tags *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->items[i].key, key) == 0)
			return true;
	return false;
}

static void return_true(struct api_call *call)
{
	api_xml_response_begin(call->out, call->action, call->version,
	                       call->request_id);
	api_xml_elem(call->out, "return", "true");
	api_xml_response_end(call->out, call->action);
}

int api_action_create_tags(struct api_call *call)
{
	const char **ids = xcalloc(RESOURCES_MAX, sizeof(*ids));
	const char **types = xcalloc(RESOURCES_MAX, sizeof(*types));
	struct tag_arg args[API_TAGS_MAX];
	struct api_tags *have = xmalloc(sizeof(*have));
	size_t n = 0, nt = 0;
	int rc = -1;
	if (tag_args(call, args, &nt, true) < 0)
		goto out;
	if (nt == 0) {
		api_error_set(&call->err, "MissingParameter",
		              "The request must contain the parameter tagSet");
		goto out;
	}
	if (resources(call, ids, types, &n) < 0)
		goto out;
	/* EC2 checks the limit on the resulting set before writing. */
	for (size_t i = 0; i < n; i++) {
		int r = api_tags_load(call, ids[i], have);
		if (r) {
			rc = api_res_failed(call, r);
			goto out;
		}
		size_t total = have->n;
		for (size_t t = 0; t < nt; t++) {
			bool again = has_key(have, args[t].key);
			for (size_t u = 0; u < t && !again; u++)
				again = strcmp(args[u].key, args[t].key) == 0;
			total += !again;
		}
		if (total > API_TAGS_MAX) {
			api_error_set(&call->err, "TagLimitExceeded",
			              "The maximum number of tags (%d) for "
			              "resource '%s' was exceeded.",
			              API_TAGS_MAX, ids[i]);
			goto out;
		}
	}
	if (api_dry_run(call))
		goto out;
	for (size_t i = 0; i < n; i++)
		for (size_t t = 0; t < nt; t++) {
			const char *v = args[t].value ? args[t].value : "";
			int r =
			    api_tag_put(call, ids[i], types[i], args[t].key, v);
			if (r) {
				rc = api_res_failed(call, r);
				goto out;
			}
		}
	return_true(call);
	rc = 0;
out:
	free(have);
	free(types);
	free(ids);
	return rc;
}

int api_action_delete_tags(struct api_call *call)
{
	const char **ids = xcalloc(RESOURCES_MAX, sizeof(*ids));
	const char **types = xcalloc(RESOURCES_MAX, sizeof(*types));
	struct tag_arg args[API_TAGS_MAX];
	struct api_tags *have = xmalloc(sizeof(*have));
	size_t n = 0, nt = 0;
	int rc = -1;
	if (tag_args(call, args, &nt, false) < 0 ||
	    resources(call, ids, types, &n) < 0)
		goto out;
	if (api_dry_run(call))
		goto out;
	for (size_t i = 0; i < n; i++) {
		int r = api_tags_load(call, ids[i], have);
		for (size_t t = 0; r == 0 && t < have->n; t++) {
			const struct api_tag *tag = &have->items[t];
			/* No Tag: all of them. A Value, even empty, must
			 * match for the tag to go. */
			bool del = nt == 0;
			for (size_t a = 0; a < nt && !del; a++)
				del = strcmp(args[a].key, tag->key) == 0 &&
				      (!args[a].value ||
				       strcmp(args[a].value, tag->value) == 0);
			if (del)
				r = api_tag_delete(call, ids[i], tag->key);
		}
		if (r) {
			rc = api_res_failed(call, r);
			goto out;
		}
	}
	return_true(call);
	rc = 0;
out:
	free(have);
	free(types);
	free(ids);
	return rc;
}

/* ---- DescribeTags ------------------------------------------------------- */

/* The page key of a tag: resource id, then key, in that order. */
static void tag_page_key(const struct api_tag_rec *t, char *out, size_t size)
{
	snprintf(out, size, "%s\x01%s", t->resid, t->key);
}

static int tag_filters_match(struct api_call *call,
                             const struct api_filters *fs,
                             const struct api_tag_rec *t, bool *match)
{
	*match = true;
	for (size_t i = 0; i < fs->n; i++) {
		const struct api_filter *f = &fs->items[i];
		const char *v;
		if (strcmp(f->name, "key") == 0 ||
		    strcmp(f->name, "tag-key") == 0)
			v = t->key;
		else if (strcmp(f->name, "value") == 0 ||
		         strcmp(f->name, "tag-value") == 0)
			v = t->value;
		else if (strcmp(f->name, "resource-id") == 0)
			v = t->resid;
		else if (strcmp(f->name, "resource-type") == 0)
			v = t->type;
		else if (strncmp(f->name, "tag:", 4) == 0)
			v = strcmp(f->name + 4, t->key) == 0 ? t->value : NULL;
		else
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "The filter '%s' is invalid", f->name);
		*match = *match && v && api_filter_values_match(f, v);
	}
	return 0;
}

int api_action_describe_tags(struct api_call *call)
{
	struct api_filters filters = {0};
	struct api_tag_index ix = {0};
	struct api_page page;
	int rc = -1;
	if (api_filters_parse(call->params, &filters, &call->err) < 0 ||
	    api_page_parse(call, &page, 5, 1000) < 0)
		goto out;
	/* Unknown filter names fail even on an account without tags. */
	struct api_tag_rec none = {"", "", "", ""};
	bool match;
	if (tag_filters_match(call, &filters, &none, &match) < 0)
		goto out;
	if (api_dry_run(call))
		goto out;
	int r = api_tag_index_add(call, "", &ix);
	api_tag_index_sort(&ix);
	if (r) {
		rc = api_res_failed(call, r);
		goto out;
	}
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DescribeTags", call->version,
	                       call->request_id);
	api_xml_open(o, "tagSet");
	for (size_t i = 0; i < ix.n; i++) {
		const struct api_tag_rec *t = &ix.items[i];
		char key[API_RES_ID_MAX * 2 + API_TAG_KEY_MAX + 2];
		tag_page_key(t, key, sizeof(key));
		tag_filters_match(call, &filters, t, &match);
		if (!match || !api_page_take(&page, key))
			continue;
		api_xml_open(o, "item");
		api_xml_elem(o, "resourceId", t->resid);
		api_xml_elem(o, "resourceType", t->type);
		api_xml_elem(o, "key", t->key);
		api_xml_elem(o, "value", t->value);
		api_xml_close(o, "item");
	}
	api_xml_close(o, "tagSet");
	api_page_xml_next(o, &page);
	api_xml_response_end(o, "DescribeTags");
	rc = 0;
out:
	api_tag_index_free(&ix);
	api_filters_free(&filters);
	return rc;
}
