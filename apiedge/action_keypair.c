/*
 * Key pairs: CreateKeyPair, ImportKeyPair, DeleteKeyPair and
 * DescribeKeyPairs. A key pair is the record (key-pair, "account:name");
 * its body keeps the name, the "key-..." id, the type, EC2's fingerprint,
 * the creation time and the public key as an OpenSSH line (which the
 * metadata service hands to guests). The private key of CreateKeyPair is
 * returned once and never stored. Tags hang off the key pair's id, as
 * CreateTags names key pairs by id.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "hlc.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_NAME_MAX  255
#define KEY_NAMES_MAX 1000
#define KEY_RTYPE     "key-pair"
/* "ssh-rsa" and a 16384-bit key's blob, a space and the name. */
#define KEY_LINE_MAX 4096

/* Everything a key pair's record holds. */
struct key_pair {
	char name[KEY_NAME_MAX + 1];
	char id[32];
	char type[16];
	char fingerprint[API_FINGERPRINT_MAX];
	char public_key[KEY_LINE_MAX];
	uint64_t created_ms;
};

/*
 * The record id of a name: record ids carry no spaces, so ' ' and '%' are
 * written as %20 and %25. False when the name cannot be a record id.
 */
static bool name_resid(const char *name, char *out, size_t size)
{
	size_t o = 0;
	for (const char *c = name; *c; c++) {
		const char *esc = *c == ' ' ? "%20" : *c == '%' ? "%25" : NULL;
		size_t n = esc ? 3 : 1;
		if (o + n >= size)
			return false;
		if (esc)
			memcpy(out + o, esc, 3);
		else
			out[o] = *c;
		o += n;
	}
	out[o] = 0;
	return o > 0;
}

static bool key_pair_read(const struct mc_val *v, struct key_pair *kp)
{
	memset(kp, 0, sizeof(*kp));
	mc_get_uint(v, "created", &kp->created_ms);
	mc_get_str(v, "public_key", kp->public_key, sizeof(kp->public_key));
	return mc_get_str(v, "name", kp->name, sizeof(kp->name)) &&
	       mc_get_str(v, "id", kp->id, sizeof(kp->id)) &&
	       mc_get_str(v, "type", kp->type, sizeof(kp->type)) &&
	       mc_get_str(v, "fingerprint", kp->fingerprint,
	                  sizeof(kp->fingerprint));
}

struct find_id {
	const char *id;
	char resid[API_RES_ID_MAX * 4];
};

static int find_id_one(void *ctx, const char *resid, const struct mc_val *body)
{
	struct find_id *f = ctx;
	if (!mc_val_is_str(mc_map_get(body, "id"), f->id))
		return 0;
	snprintf(f->resid, sizeof(f->resid), "%s", resid);
	return 1;
}

int api_key_pair_load(const struct api_call *call, const char *name,
                      const char *id, struct mc_doc **out)
{
	char resid[API_RES_ID_MAX * 4];
	*out = NULL;
	if (name) {
		if (!name_resid(name, resid, sizeof(resid)))
			return -ENOENT;
		return api_res_load(call, API_KIND_KEY_PAIR, resid, out);
	}
	struct find_id f = {.id = id};
	int r = api_res_each(call, API_KIND_KEY_PAIR, find_id_one, &f);
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOENT;
	return api_res_load(call, API_KIND_KEY_PAIR, f.resid, out);
}

/* EC2's name rules, and mallee's: the record id must fit. */
static int check_name(struct api_call *call, const char *name, char *resid,
                      size_t size)
{
	if (!name || !name[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "KeyName");
	if (strlen(name) > KEY_NAME_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value for parameter KeyName is invalid. "
		                     "Length exceeds maximum of 255 "
		                     "characters.");
	for (const char *c = name; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return api_error_set(&call->err,
			                     "InvalidParameterValue",
			                     "Value for parameter KeyName is "
			                     "invalid. Key pair names may "
			                     "contain only printable ASCII "
			                     "characters.");
	char probe[API_RES_ID_MAX * 4];
	if (!name_resid(name, resid, size) ||
	    !api_res_key(call, resid, probe, sizeof(probe)))
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value for parameter KeyName is invalid. "
		                     "mallee limits key pair names to 115 "
		                     "characters (a space or '%%' counts as "
		                     "3).");
	return 0;
}

static void time_iso8601(char out[32], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

/*
 * The checks CreateKeyPair and ImportKeyPair share, before any work: the
 * name, the tags, a duplicate, DryRun. Fills resid.
 */
static int key_pair_check(struct api_call *call, const char *name, char *resid,
                          size_t size)
{
	struct mc_doc *doc = NULL;
	if (check_name(call, name, resid, size) < 0 ||
	    api_tag_specs_check(call, KEY_RTYPE) < 0)
		return -1;
	int r = api_res_load(call, API_KIND_KEY_PAIR, resid, &doc);
	mc_doc_free(doc);
	if (r == 0)
		return api_error_set(&call->err, "InvalidKeyPair.Duplicate",
		                     "The keypair '%s' already exists.", name);
	if (r != -ENOENT)
		return api_res_failed(call, r);
	if (api_dry_run(call))
		return -1;
	return 0;
}

/* Stores the record and its tags; kp gets its new id and time. */
static int key_pair_store(struct api_call *call, const char *resid,
                          struct key_pair *kp)
{
	api_res_new_id("key", kp->id, sizeof(kp->id));
	kp->created_ms = mc_wall_ms();
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 6);
	mc_pack_kv_str(&b, "name", kp->name);
	mc_pack_kv_str(&b, "id", kp->id);
	mc_pack_kv_str(&b, "type", kp->type);
	mc_pack_kv_str(&b, "fingerprint", kp->fingerprint);
	mc_pack_kv_str(&b, "public_key", kp->public_key);
	mc_pack_kv_uint(&b, "created", kp->created_ms);
	int r = api_res_store(call, API_KIND_KEY_PAIR, resid, &b);
	mc_buf_free(&b);
	if (r)
		return api_res_failed(call, r);
	return api_tag_specs_apply(call, KEY_RTYPE, kp->id);
}

static void xml_key_tags(struct api_call *call, const char *id)
{
	struct api_tags tags;
	if (api_tags_load(call, id, &tags) != 0)
		tags.n = 0;
	api_xml_tag_set(call->out, &tags);
}

int api_action_create_key_pair(struct api_call *call)
{
	struct key_pair *kp = xcalloc(1, sizeof(*kp));
	struct api_key_material m = {0};
	const char *name = api_params_get(call->params, "KeyName");
	const char *type = api_params_get(call->params, "KeyType");
	const char *format = api_params_get(call->params, "KeyFormat");
	int rc = -1;
	if (!type || !type[0])
		type = "rsa";
	if (strcmp(type, "rsa") != 0 && strcmp(type, "ed25519") != 0) {
		api_error_set(&call->err, "InvalidParameterValue",
		              "Value (%s) for parameter KeyType is invalid. "
		              "Valid values are rsa and ed25519.",
		              type);
		goto out;
	}
	if (format && format[0] && strcmp(format, "pem") != 0) {
		api_error_set(&call->err, "InvalidParameterValue",
		              "Value (%s) for parameter KeyFormat is invalid. "
		              "mallee supports pem.",
		              format);
		goto out;
	}
	snprintf(kp->name, sizeof(kp->name), "%s", name ? name : "");
	snprintf(kp->type, sizeof(kp->type), "%s", type);
	/* Checked before the (slow) key generation. */
	char resid[API_RES_ID_MAX * 4];
	if (key_pair_check(call, kp->name, resid, sizeof(resid)) < 0)
		goto out;
	int r = api_keypair_generate(call->keypool,
	                             strcmp(type, "rsa") == 0 ? API_KEY_RSA
	                                                      : API_KEY_ED25519,
	                             kp->name, &m);
	if (r < 0) {
		api_res_failed(call, r);
		goto out;
	}
	snprintf(kp->fingerprint, sizeof(kp->fingerprint), "%s", m.fingerprint);
	snprintf(kp->public_key, sizeof(kp->public_key), "%s %s", m.public_line,
	         kp->name);
	if (key_pair_store(call, resid, kp) < 0)
		goto out;

	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "CreateKeyPair", call->version,
	                       call->request_id);
	api_xml_elem(o, "keyName", kp->name);
	api_xml_elem(o, "keyFingerprint", kp->fingerprint);
	api_xml_elem(o, "keyMaterial", m.private_pem);
	api_xml_elem(o, "keyPairId", kp->id);
	xml_key_tags(call, kp->id);
	api_xml_response_end(o, "CreateKeyPair");
	rc = 0;
out:
	api_key_material_free(&m);
	free(kp);
	return rc;
}

/* PublicKeyMaterial is base64 (SDKs encode the blob); a few clients send
 * the OpenSSH line itself. */
static long public_material(const char *v, uint8_t *out, size_t cap)
{
	size_t n = strlen(v);
	if (strncmp(v, "ssh-", 4) == 0 || strncmp(v, "-----BEGIN", 10) == 0 ||
	    strncmp(v, "---- BEGIN", 10) == 0) {
		if (n > cap)
			return -1;
		memcpy(out, v, n);
		return (long)n;
	}
	/* Base64 as some clients wrap it: drop the line breaks. */
	char *clean = xmalloc(n + 1);
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] != '\n' && v[i] != '\r' && v[i] != ' ')
			clean[c++] = v[i];
	long r = mc_b64_decode(out, cap, clean, c);
	free(clean);
	return r;
}

int api_action_import_key_pair(struct api_call *call)
{
	struct key_pair *kp = xcalloc(1, sizeof(*kp));
	struct api_key_material m = {0};
	uint8_t *raw = xmalloc(API_PUBLIC_KEY_MAX);
	const char *name = api_params_get(call->params, "KeyName");
	const char *material =
	    api_params_get(call->params, "PublicKeyMaterial");
	int rc = -1;
	snprintf(kp->name, sizeof(kp->name), "%s", name ? name : "");
	char resid[API_RES_ID_MAX * 4];
	if (check_name(call, kp->name, resid, sizeof(resid)) < 0)
		goto out;
	if (!material || !material[0]) {
		api_error_set(&call->err, "MissingParameter",
		              "The request must contain the parameter "
		              "PublicKeyMaterial");
		goto out;
	}
	long n = public_material(material, raw, API_PUBLIC_KEY_MAX);
	int r = n > 0 ? api_keypair_import(raw, (size_t)n, &m) : -EINVAL;
	if (r == -ENOTSUP) {
		api_error_set(&call->err, "InvalidKey.Format",
		              "Key is not in valid OpenSSH public key format: "
		              "only RSA and ED25519 keys are supported.");
		goto out;
	}
	if (r == -ERANGE) {
		api_error_set(&call->err, "InvalidKey.Format",
		              "RSA keys must be 1024 to 16384 bits long.");
		goto out;
	}
	if (r < 0) {
		api_error_set(&call->err, "InvalidKey.Format",
		              "Key is not in valid OpenSSH public key format");
		goto out;
	}
	snprintf(kp->type, sizeof(kp->type), "%s",
	         m.type == API_KEY_RSA ? "rsa" : "ed25519");
	snprintf(kp->fingerprint, sizeof(kp->fingerprint), "%s", m.fingerprint);
	snprintf(kp->public_key, sizeof(kp->public_key), "%s %s", m.public_line,
	         kp->name);
	if (key_pair_check(call, kp->name, resid, sizeof(resid)) < 0 ||
	    key_pair_store(call, resid, kp) < 0)
		goto out;

	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "ImportKeyPair", call->version,
	                       call->request_id);
	api_xml_elem(o, "keyName", kp->name);
	api_xml_elem(o, "keyFingerprint", kp->fingerprint);
	api_xml_elem(o, "keyPairId", kp->id);
	xml_key_tags(call, kp->id);
	api_xml_response_end(o, "ImportKeyPair");
	rc = 0;
out:
	api_key_material_free(&m);
	free(raw);
	free(kp);
	return rc;
}

int api_action_delete_key_pair(struct api_call *call)
{
	const char *name = api_params_get(call->params, "KeyName");
	const char *id = api_params_get(call->params, "KeyPairId");
	if (name && !name[0])
		name = NULL;
	if (id && !id[0])
		id = NULL;
	if (!name && !id)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "KeyName or KeyPairId");
	if (id && !api_res_id_valid("key", id))
		return api_error_set(&call->err, "InvalidKeyPair.NotFound",
		                     "The key pair ID '%s' is malformed.", id);
	struct mc_doc *doc = NULL;
	struct key_pair kp = {0};
	int r = api_key_pair_load(call, name, name ? NULL : id, &doc);
	bool found = r == 0 && key_pair_read(mc_doc_root(doc), &kp) &&
	             (!id || strcmp(kp.id, id) == 0);
	mc_doc_free(doc);
	if (r != 0 && r != -ENOENT)
		return api_res_failed(call, r);
	if (api_dry_run(call))
		return -1;
	/* Deleting what is not there succeeds, as in EC2. */
	if (found) {
		char resid[API_RES_ID_MAX * 4];
		name_resid(kp.name, resid, sizeof(resid));
		r = api_res_remove(call, API_KIND_KEY_PAIR, resid);
		if (r)
			return api_res_failed(call, r);
		struct api_tags tags;
		if (api_tags_load(call, kp.id, &tags) == 0)
			for (size_t i = 0; i < tags.n; i++)
				api_tag_delete(call, kp.id, tags.items[i].key);
	}
	api_xml_response_begin(call->out, "DeleteKeyPair", call->version,
	                       call->request_id);
	api_xml_elem(call->out, "return", "true");
	if (found)
		api_xml_elem(call->out, "keyPairId", kp.id);
	api_xml_response_end(call->out, "DeleteKeyPair");
	return 0;
}

static const char *const key_filters[] = {
    "key-name", "key-pair-id", "fingerprint", "key-type", NULL,
};

/* Whether a filter name is one DescribeKeyPairs knows. */
static bool key_filter_known(const char *name)
{
	for (size_t i = 0; key_filters[i]; i++)
		if (strcmp(name, key_filters[i]) == 0)
			return true;
	return strncmp(name, "tag:", 4) == 0 || strcmp(name, "tag-key") == 0 ||
	       strcmp(name, "tag-value") == 0;
}

struct describe {
	struct api_call *call;
	const struct api_filters *filters;
	const char **names, **ids;
	size_t n_names, n_ids;
	bool *seen_names, *seen_ids;
	bool include_public;
};

static bool key_matches(struct describe *d, const struct key_pair *kp,
                        const struct api_tags *tags)
{
	for (size_t i = 0; i < d->filters->n; i++) {
		const struct api_filter *f = &d->filters->items[i];
		bool m = false;
		if (api_filter_tags(f, tags, &m))
			;
		else if (strcmp(f->name, "key-name") == 0)
			m = api_filter_values_match(f, kp->name);
		else if (strcmp(f->name, "key-pair-id") == 0)
			m = api_filter_values_match(f, kp->id);
		else if (strcmp(f->name, "fingerprint") == 0)
			m = api_filter_values_match(f, kp->fingerprint);
		else if (strcmp(f->name, "key-type") == 0)
			m = api_filter_values_match(f, kp->type);
		if (!m)
			return false;
	}
	return true;
}

static void describe_one(struct describe *d, const struct mc_val *body)
{
	struct key_pair *kp = xmalloc(sizeof(*kp));
	if (!key_pair_read(body, kp))
		goto out;
	bool listed = d->n_names == 0 && d->n_ids == 0;
	for (size_t i = 0; i < d->n_names; i++)
		if (strcmp(d->names[i], kp->name) == 0)
			listed = d->seen_names[i] = true;
	for (size_t i = 0; i < d->n_ids; i++)
		if (strcmp(d->ids[i], kp->id) == 0)
			listed = d->seen_ids[i] = true;
	if (!listed)
		goto out;
	struct api_tags tags;
	if (api_tags_load(d->call, kp->id, &tags) != 0)
		tags.n = 0;
	if (!key_matches(d, kp, &tags))
		goto out;
	struct mc_buf *o = d->call->out;
	char when[32];
	time_iso8601(when, kp->created_ms);
	api_xml_open(o, "item");
	api_xml_elem(o, "keyPairId", kp->id);
	api_xml_elem(o, "keyType", kp->type);
	api_xml_tag_set(o, &tags);
	if (d->include_public && kp->public_key[0])
		api_xml_elem(o, "publicKey", kp->public_key);
	api_xml_elem(o, "createTime", when);
	api_xml_elem(o, "keyName", kp->name);
	api_xml_elem(o, "keyFingerprint", kp->fingerprint);
	api_xml_close(o, "item");
out:
	free(kp);
}

/* InvalidKeyPair.NotFound for the first name or id no record matched. */
static int not_found(struct describe *d)
{
	for (size_t i = 0; i < d->n_names; i++)
		if (!d->seen_names[i])
			return api_error_set(
			    &d->call->err, "InvalidKeyPair.NotFound",
			    "The key pair '%s' does not exist", d->names[i]);
	for (size_t i = 0; i < d->n_ids; i++)
		if (!d->seen_ids[i])
			return api_error_set(&d->call->err,
			                     "InvalidKeyPair.NotFound",
			                     "The key pair ID '%s' does not "
			                     "exist",
			                     d->ids[i]);
	return 0;
}

int api_action_describe_key_pairs(struct api_call *call)
{
	struct describe d = {.call = call};
	struct api_filters filters = {0};
	int rc = -1;
	d.names = xcalloc(KEY_NAMES_MAX, sizeof(char *));
	d.ids = xcalloc(KEY_NAMES_MAX, sizeof(char *));
	d.seen_names = xcalloc(KEY_NAMES_MAX, sizeof(bool));
	d.seen_ids = xcalloc(KEY_NAMES_MAX, sizeof(bool));
	d.n_names =
	    api_params_list(call->params, "KeyName", d.names, KEY_NAMES_MAX);
	d.n_ids =
	    api_params_list(call->params, "KeyPairId", d.ids, KEY_NAMES_MAX);
	if (d.n_names > KEY_NAMES_MAX || d.n_ids > KEY_NAMES_MAX) {
		api_error_set(&call->err, "InvalidParameterValue",
		              "Too many key pair names or ids.");
		goto out;
	}
	if (api_param_bool(call, "IncludePublicKey", false, &d.include_public) <
	        0 ||
	    api_filters_parse(call->params, &filters, &call->err) < 0)
		goto out;
	d.filters = &filters;
	for (size_t i = 0; i < filters.n; i++)
		if (!key_filter_known(filters.items[i].name)) {
			api_error_set(&call->err, "InvalidParameterValue",
			              "The filter '%s' is invalid",
			              filters.items[i].name);
			goto out;
		}
	if (api_dry_run(call))
		goto out;

	api_xml_response_begin(call->out, "DescribeKeyPairs", call->version,
	                       call->request_id);
	api_xml_open(call->out, "keySet");
	/* Tags are loaded per key pair: walk a copy (see res_snapshot.c). */
	struct api_res_snapshot snap;
	int r = api_res_snapshot_take(call, API_KIND_KEY_PAIR, &snap);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	for (size_t i = 0; i < snap.n; i++)
		describe_one(&d, mc_doc_root(snap.items[i].doc));
	api_res_snapshot_free(&snap);
	if (not_found(&d) < 0)
		goto out;
	api_xml_close(call->out, "keySet");
	api_xml_response_end(call->out, "DescribeKeyPairs");
	rc = 0;
out:
	api_filters_free(&filters);
	free(d.names);
	free(d.ids);
	free(d.seen_names);
	free(d.seen_ids);
	return rc;
}
