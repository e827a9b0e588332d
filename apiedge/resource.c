/*
 * What every action needs of the cloud's records: per-account keys, ids,
 * tags, client tokens, DryRun and paging (see apiedge_int.h).
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RECORD_ID_MAX 128

void api_res_new_id(const char *prefix, char *out, size_t size)
{
	uint8_t raw[9];
	char hex[19];
	mc_random(raw, sizeof(raw));
	mc_hex_encode(hex, raw, sizeof(raw));
	hex[17] = '\0';
	snprintf(out, size, "%s-%s", prefix, hex);
}

bool api_res_id_valid(const char *prefix, const char *id)
{
	size_t pl = strlen(prefix);
	if (strncmp(id, prefix, pl) != 0 || id[pl] != '-')
		return false;
	const char *hex = id + pl + 1;
	size_t n = strlen(hex);
	if (n != 8 && n != 17)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') ||
		      (hex[i] >= 'a' && hex[i] <= 'f')))
			return false;
	return true;
}

bool api_res_key(const struct api_call *call, const char *rest, char *out,
                 size_t size)
{
	int n = snprintf(out, size, "%s:%s", call->auth->key.account_id, rest);
	if (n < 0 || (size_t)n >= size || n > RECORD_ID_MAX)
		return false;
	for (const char *c = rest; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			return false;
	return true;
}

int api_res_failed(struct api_call *call, int errnum)
{
	return api_error_set(&call->err, "InternalError",
	                     "The cloud could not complete the request (%s).",
	                     strerror(errnum < 0 ? -errnum : errnum));
}

int api_res_load(const struct api_call *call, const char *kind,
                 const char *resid, struct mc_doc **out)
{
	char id[RECORD_ID_MAX + 1];
	uint8_t *body = NULL;
	size_t len = 0;
	*out = NULL;
	if (!api_res_key(call, resid, id, sizeof(id)))
		return -ENOENT;
	int r = call->cloud->get(call->cloud->arg, kind, id, &body, &len);
	if (r)
		return r;
	*out = mc_unpack(body, len);
	free(body);
	return *out ? 0 : -EBADMSG;
}

int api_res_store(const struct api_call *call, const char *kind,
                  const char *resid, const struct mc_buf *body)
{
	char id[RECORD_ID_MAX + 1];
	if (!api_res_key(call, resid, id, sizeof(id)))
		return -EINVAL;
	return call->cloud->put(call->cloud->arg, kind, id, body->data,
	                        body->len);
}

struct each_ctx {
	size_t skip; /* length of "account:" */
	int (*cb)(void *ctx, const char *resid, const struct mc_val *body);
	void *ctx;
};

static int each_one(void *arg, const char *id, const uint8_t *body, size_t len)
{
	struct each_ctx *e = arg;
	struct mc_doc *doc = mc_unpack(body, len);
	if (!doc)
		return 0; /* a body we cannot read is not shown */
	int r = e->cb(e->ctx, id + e->skip, mc_doc_root(doc));
	mc_doc_free(doc);
	return r;
}

int api_res_each(const struct api_call *call, const char *kind,
                 int (*cb)(void *ctx, const char *resid,
                           const struct mc_val *body),
                 void *ctx)
{
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%s:", call->auth->key.account_id);
	struct each_ctx e = {.skip = strlen(prefix), .cb = cb, .ctx = ctx};
	return call->cloud->list(call->cloud->arg, kind, prefix, each_one, &e);
}

/* The record id of one tag: its key is hashed, since keys run to 128. */
static bool tag_id(const struct api_call *call, const char *resid,
                   const char *key, char *out, size_t size)
{
	/* mc_hash gives 16..64 bytes; 8 of them name the key well enough. */
	uint8_t h[16];
	char hex[17], rest[RECORD_ID_MAX + 1];
	mc_hash(h, sizeof(h), key, strlen(key));
	mc_hex_encode(hex, h, 8);
	snprintf(rest, sizeof(rest), "%s:%s", resid, hex);
	return api_res_key(call, rest, out, size);
}

struct tag_walk {
	const struct api_call *call;
	struct api_tags *tags;
	bool with_ids;
	char (*ids)[RECORD_ID_MAX + 1];
};

static int tag_one(void *arg, const char *id, const uint8_t *body, size_t len)
{
	struct tag_walk *w = arg;
	struct mc_doc *doc = mc_unpack(body, len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	struct api_tags *t = w->tags;
	if (v && t->n < API_TAGS_MAX &&
	    mc_get_str(v, "key", t->items[t->n].key, sizeof(t->items[0].key)) &&
	    mc_get_str(v, "value", t->items[t->n].value,
	               sizeof(t->items[0].value))) {
		if (w->ids)
			snprintf(w->ids[t->n], sizeof(w->ids[0]), "%s", id);
		t->n++;
	}
	mc_doc_free(doc);
	return 0;
}

static int tag_cmp(const void *a, const void *b)
{
	return strcmp(((const struct api_tag *)a)->key,
	              ((const struct api_tag *)b)->key);
}

int api_tags_load(const struct api_call *call, const char *resid,
                  struct api_tags *out)
{
	char prefix[RECORD_ID_MAX + 1], rest[RECORD_ID_MAX + 1];
	out->n = 0;
	snprintf(rest, sizeof(rest), "%s:", resid);
	if (!api_res_key(call, rest, prefix, sizeof(prefix)))
		return 0;
	struct tag_walk w = {.call = call, .tags = out};
	int r = call->cloud->list(call->cloud->arg, API_KIND_TAG, prefix,
	                          tag_one, &w);
	qsort(out->items, out->n, sizeof(out->items[0]), tag_cmp);
	return r;
}

int api_tag_put(const struct api_call *call, const char *resid,
                const char *rtype, const char *key, const char *value)
{
	char id[RECORD_ID_MAX + 1];
	if (!tag_id(call, resid, key, id, sizeof(id)))
		return -EINVAL;
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 4);
	mc_pack_kv_str(&b, "resource", resid);
	mc_pack_kv_str(&b, "type", rtype);
	mc_pack_kv_str(&b, "key", key);
	mc_pack_kv_str(&b, "value", value);
	int r =
	    call->cloud->put(call->cloud->arg, API_KIND_TAG, id, b.data, b.len);
	mc_buf_free(&b);
	return r;
}

int api_tag_delete(const struct api_call *call, const char *resid,
                   const char *key)
{
	char id[RECORD_ID_MAX + 1];
	if (!tag_id(call, resid, key, id, sizeof(id)))
		return -EINVAL;
	return call->cloud->del(call->cloud->arg, API_KIND_TAG, id);
}

int api_res_remove(const struct api_call *call, const char *kind,
                   const char *resid)
{
	char id[RECORD_ID_MAX + 1];
	if (!api_res_key(call, resid, id, sizeof(id)))
		return -EINVAL;
	int r = call->cloud->del(call->cloud->arg, kind, id);
	if (r)
		return r;
	struct api_tags tags;
	if (api_tags_load(call, resid, &tags) == 0)
		for (size_t i = 0; i < tags.n; i++)
			api_tag_delete(call, resid, tags.items[i].key);
	return 0;
}

int api_param_bool(struct api_call *call, const char *name, bool dflt,
                   bool *out)
{
	const char *v = api_params_get(call->params, name);
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (strcasecmp(v, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcasecmp(v, "false") == 0) {
		*out = false;
		return 0;
	}
	return api_error_set(&call->err, "InvalidParameterValue",
	                     "Value (%s) for parameter %s is invalid. Expected "
	                     "a boolean.",
	                     v, name);
}

bool api_dry_run(struct api_call *call)
{
	bool dry = false;
	if (api_param_bool(call, "DryRun", false, &dry) < 0 || !dry)
		return false;
	api_error_set(&call->err, "DryRunOperation",
	              "Request would have succeeded, but DryRun flag is set.");
	return true;
}

static bool token_id(struct api_call *call, char *out, size_t size, int *bad)
{
	const char *token = api_params_get(call->params, "ClientToken");
	*bad = 0;
	if (!token || !token[0])
		return false;
	if (strlen(token) > 64) {
		*bad = api_error_set(&call->err, "InvalidParameterValue",
		                     "ClientToken is longer than 64 "
		                     "characters.");
		return false;
	}
	uint8_t h[16];
	char hex[33], in[160];
	snprintf(in, sizeof(in), "%s\n%s", call->action, token);
	mc_hash(h, sizeof(h), in, strlen(in));
	mc_hex_encode(hex, h, sizeof(h));
	return api_res_key(call, hex, out, size);
}

int api_token_seen(struct api_call *call, char *out, size_t size)
{
	char id[RECORD_ID_MAX + 1];
	int bad;
	if (!token_id(call, id, sizeof(id), &bad))
		return bad;
	uint8_t *body = NULL;
	size_t len = 0;
	if (call->cloud->get(call->cloud->arg, API_KIND_TOKEN, id, &body,
	                     &len) != 0)
		return 0;
	struct mc_doc *doc = mc_unpack(body, len);
	free(body);
	int found = doc && mc_get_str(mc_doc_root(doc), "result", out, size);
	mc_doc_free(doc);
	return found;
}

int api_token_remember(struct api_call *call, const char *result)
{
	char id[RECORD_ID_MAX + 1];
	int bad;
	if (!token_id(call, id, sizeof(id), &bad))
		return bad;
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "action", call->action);
	mc_pack_kv_str(&b, "result", result);
	int r = call->cloud->put(call->cloud->arg, API_KIND_TOKEN, id, b.data,
	                         b.len);
	mc_buf_free(&b);
	return r;
}

/* Tag keys may not start with "aws:" and run 1-128; values 0-256. */
static int check_tag(struct api_call *call, const char *key, const char *value)
{
	if (!key || !key[0] || strlen(key) > API_TAG_KEY_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Tag keys must be 1 to 128 characters.");
	if (strncasecmp(key, "aws:", 4) == 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Tag keys starting with 'aws:' are "
		                     "reserved for internal use");
	if (value && strlen(value) > API_TAG_VALUE_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Tag values may be at most 256 "
		                     "characters.");
	return 0;
}

/* Walks TagSpecification.N: check and/or apply the ones for rtype. */
static int tag_specs(struct api_call *call, const char *rtype,
                     const char *resid)
{
	long specs[64];
	size_t n =
	    api_params_indexes(call->params, "TagSpecification", specs, 64);
	if (n > 64)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many tag specifications.");
	for (size_t i = 0; i < n; i++) {
		const char *type = api_params_member(
		    call->params, "TagSpecification", specs[i], "ResourceType");
		if (!type)
			return api_error_set(&call->err, "MissingParameter",
			                     "The request must contain the "
			                     "parameter "
			                     "TagSpecification.ResourceType");
		if (strcmp(type, rtype) != 0)
			continue; /* for another resource of the same call */
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "TagSpecification.%ld.Tag",
		         specs[i]);
		if (specs[i] == API_INDEX_NONE)
			snprintf(prefix, sizeof(prefix),
			         "TagSpecification.Tag");
		long tags[API_TAGS_MAX + 1];
		size_t nt = api_params_indexes(call->params, prefix, tags,
		                               API_TAGS_MAX + 1);
		if (nt > API_TAGS_MAX)
			return api_error_set(&call->err, "TagLimitExceeded",
			                     "The maximum number of tags (50) "
			                     "was exceeded.");
		for (size_t t = 0; t < nt; t++) {
			const char *key = api_params_member(
			    call->params, prefix, tags[t], "Key");
			const char *value = api_params_member(
			    call->params, prefix, tags[t], "Value");
			if (check_tag(call, key, value) < 0)
				return -1;
			if (resid) {
				int r = api_tag_put(call, resid, rtype, key,
				                    value ? value : "");
				if (r)
					return api_res_failed(call, r);
			}
		}
	}
	return 0;
}

int api_tag_specs_check(struct api_call *call, const char *rtype)
{
	return tag_specs(call, rtype, NULL);
}

int api_tag_specs_apply(struct api_call *call, const char *rtype,
                        const char *resid)
{
	return tag_specs(call, rtype, resid);
}

void api_xml_tag_set(struct mc_buf *out, const struct api_tags *tags)
{
	api_xml_open(out, "tagSet");
	for (size_t i = 0; tags && i < tags->n; i++) {
		api_xml_open(out, "item");
		api_xml_elem(out, "key", tags->items[i].key);
		api_xml_elem(out, "value", tags->items[i].value);
		api_xml_close(out, "item");
	}
	api_xml_close(out, "tagSet");
}

int api_filter_tags(const struct api_filter *f, const struct api_tags *tags,
                    bool *match)
{
	*match = false;
	if (strncmp(f->name, "tag:", 4) == 0) {
		for (size_t i = 0; i < tags->n; i++)
			if (strcmp(tags->items[i].key, f->name + 4) == 0 &&
			    api_filter_values_match(f, tags->items[i].value))
				*match = true;
		return 1;
	}
	if (strcmp(f->name, "tag-key") == 0) {
		for (size_t i = 0; i < tags->n; i++)
			*match |=
			    api_filter_values_match(f, tags->items[i].key);
		return 1;
	}
	if (strcmp(f->name, "tag-value") == 0) {
		for (size_t i = 0; i < tags->n; i++)
			*match |=
			    api_filter_values_match(f, tags->items[i].value);
		return 1;
	}
	return 0;
}

int api_page_parse(struct api_call *call, struct api_page *pg, size_t lo,
                   size_t hi)
{
	memset(pg, 0, sizeof(*pg));
	const char *max = api_params_get(call->params, "MaxResults");
	const char *token = api_params_get(call->params, "NextToken");
	if (max) {
		char *end;
		long v = strtol(max, &end, 10);
		if (*max == '\0' || *end != '\0' || v < (long)lo ||
		    v > (long)hi)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "MaxResults must be between %zu "
			                     "and %zu.",
			                     lo, hi);
		pg->max = (size_t)v;
	}
	if (token && token[0]) {
		long n = mc_b64url_decode(pg->after, sizeof(pg->after) - 1,
		                          token, strlen(token));
		if (n <= 0)
			return api_error_set(&call->err, "InvalidNextToken",
			                     "The token '%s' is invalid.",
			                     token);
		pg->after[n] = '\0';
	}
	return 0;
}

bool api_page_take(struct api_page *pg, const char *resid)
{
	if (pg->after[0] && strcmp(resid, pg->after) <= 0)
		return false;
	if (pg->max && pg->count == pg->max) {
		pg->more = true;
		return false;
	}
	pg->count++;
	snprintf(pg->last, sizeof(pg->last), "%s", resid);
	return true;
}

void api_page_xml_next(struct mc_buf *out, const struct api_page *pg)
{
	if (!pg->more)
		return;
	char *token = mc_b64url_encode(pg->last, strlen(pg->last));
	api_xml_elem(out, "nextToken", token);
	free(token);
}
