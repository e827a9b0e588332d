/*
 * DescribeSecurityGroups, built to stay fast over tens of thousands of
 * groups. It reads as little as the request allows:
 *   - candidates: the groups a request names (GroupId.N, GroupName.N, a
 *     group-id or group-name filter without wildcards, or the groups a
 *     tag:KEY filter finds in the tag records) are read one by one; only
 *     otherwise are the account's groups walked, from where the page
 *     starts, and only to where it ends unless a tag or rule filter may
 *     still drop some;
 *   - tags and rules: for a few groups, each group's own records; for
 *     many, one walk over all of the account's, indexed in memory. Never
 *     one walk per group (and never a walk inside another: the store
 *     cannot nest them);
 *   - rules only for the groups on the page, unless a rule filter needs
 *     them all.
 */
#include "apiedge_int.h"

#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_MAX 1000
/* Past this many groups, one walk over all of them beats one per group. */
#define FEW_GROUPS 32

enum filter_kind { F_FIELD, F_TAG, F_RULE };

struct row {
	char id[API_RES_ID_MAX];
	char vpc_id[32];
	char *name;
	char *description;
	bool on_page;
};

struct describe {
	struct api_call *call;
	const char **ids, **names;
	size_t n_ids, n_names;
	struct api_filters filters;
	enum filter_kind kinds[API_FILTERS_MAX];
	bool tag_filters, rule_filters;
	struct api_page page;
	struct row *rows;
	size_t n_rows, cap_rows;
	struct api_tag_index tags;
	bool tags_loaded;
	struct api_rules rules;
	struct api_tags *scratch;
};

static const char *field_value(const struct describe *d, const struct row *r,
                               const char *name)
{
	if (strcmp(name, "group-id") == 0)
		return r->id;
	if (strcmp(name, "group-name") == 0)
		return r->name;
	if (strcmp(name, "description") == 0)
		return r->description;
	if (strcmp(name, "vpc-id") == 0)
		return r->vpc_id;
	if (strcmp(name, "owner-id") == 0)
		return d->call->auth->key.account_id;
	return NULL;
}

static int classify(struct describe *d)
{
	static const struct row probe = {.name = (char *)"",
	                                 .description = (char *)""};
	for (size_t i = 0; i < d->filters.n; i++) {
		const struct api_filter *f = &d->filters.items[i];
		bool m;
		struct api_tags none = {.n = 0};
		if (field_value(d, &probe, f->name)) {
			d->kinds[i] = F_FIELD;
		} else if (api_filter_tags(f, &none, &m)) {
			d->kinds[i] = F_TAG;
			d->tag_filters = true;
		} else if (api_rule_filter(f, NULL, 0, &m)) {
			d->kinds[i] = F_RULE;
			d->rule_filters = true;
		} else {
			return api_error_set(
			    &d->call->err, "InvalidParameterValue",
			    "The filter '%s' is invalid", f->name);
		}
	}
	return 0;
}

static bool fields_match(const struct describe *d, const struct row *r)
{
	for (size_t i = 0; i < d->filters.n; i++) {
		const struct api_filter *f = &d->filters.items[i];
		if (d->kinds[i] == F_FIELD &&
		    !api_filter_values_match(f, field_value(d, r, f->name)))
			return false;
	}
	return true;
}

/* Adds a group (borrowed strings copied) if its own fields match. */
static void row_add(struct describe *d, const char *id, const char *name,
                    const char *description, const char *vpc_id)
{
	struct row r = {.name = (char *)name,
	                .description = (char *)description};
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.vpc_id, sizeof(r.vpc_id), "%s", vpc_id);
	if (!fields_match(d, &r))
		return;
	if (d->n_rows == d->cap_rows) {
		d->cap_rows = d->cap_rows ? 2 * d->cap_rows : 64;
		d->rows = xrealloc(d->rows, d->cap_rows * sizeof(*d->rows));
	}
	r.name = xstrdup(name);
	r.description = xstrdup(description);
	d->rows[d->n_rows++] = r;
}

static void row_add_group(struct describe *d, const struct api_group *g)
{
	row_add(d, g->id, g->name, g->description, g->vpc_id);
}

static int scan_one(void *arg, const char *resid, const struct mc_val *body)
{
	struct describe *d = arg;
	const uint8_t *p[3];
	size_t n[3];
	char name[API_GROUP_TEXT_MAX], desc[API_GROUP_TEXT_MAX], vpc[32];
	/* Before the page: a walk comes in id order, as pages do. */
	if (d->page.after[0] && strcmp(resid, d->page.after) <= 0)
		return 0;
	if (!mc_get_bytes(body, "name", &p[0], &n[0]) ||
	    !mc_get_bytes(body, "description", &p[1], &n[1]) ||
	    !mc_get_bytes(body, "vpc_id", &p[2], &n[2]) ||
	    n[0] >= sizeof(name) || n[1] >= sizeof(desc) || n[2] >= sizeof(vpc))
		return 0;
	memcpy(name, p[0], n[0]);
	name[n[0]] = '\0';
	memcpy(desc, p[1], n[1]);
	desc[n[1]] = '\0';
	memcpy(vpc, p[2], n[2]);
	vpc[n[2]] = '\0';
	row_add(d, resid, name, desc, vpc);
	/* One past the page shows there is more; tag and rule filters may
	 * still drop rows, so then the walk goes on. */
	if (d->page.max && !d->tag_filters && !d->rule_filters &&
	    d->n_rows > d->page.max)
		return 1;
	return 0;
}

static bool literal(const struct api_filter *f)
{
	for (size_t i = 0; i < f->n_values; i++)
		if (strpbrk(f->values[i], "*?\\"))
			return false;
	return f->n_values > 0;
}

static const struct api_filter *find_filter(const struct describe *d,
                                            const char *name, bool lit)
{
	for (size_t i = 0; i < d->filters.n; i++) {
		const struct api_filter *f = &d->filters.items[i];
		if (strcmp(f->name, name) == 0 && (!lit || literal(f)))
			return f;
	}
	return NULL;
}

/* Reads one group by id or name; absent ones are an error if named. */
static int candidate(struct describe *d, const char *id, const char *name,
                     bool must_exist)
{
	struct api_group g;
	int r = id ? api_group_get(d->call, id, &g)
	           : api_group_by_name(d->call, name, &g);
	if (r == 0) {
		row_add_group(d, &g);
		return 0;
	}
	if (r != -ENOENT)
		return api_res_failed(d->call, r);
	if (!must_exist)
		return 0;
	if (id)
		return api_error_set(&d->call->err, "InvalidGroup.NotFound",
		                     "The security group '%s' does not exist",
		                     id);
	char vpc[32];
	api_default_vpc_id(d->call, vpc);
	return api_error_set(&d->call->err, "InvalidGroup.NotFound",
	                     "The security group '%s' does not exist in "
	                     "default VPC '%s'",
	                     name, vpc);
}

static int tag_candidates(struct describe *d, const struct api_filter *f)
{
	int r = api_tag_index_add(d->call, "sg-", &d->tags);
	if (r)
		return api_res_failed(d->call, r);
	api_tag_index_sort(&d->tags);
	d->tags_loaded = true;
	const char *key = f->name + 4;
	const char *last = "";
	for (size_t i = 0; i < d->tags.n; i++) {
		const struct api_tag_rec *t = &d->tags.items[i];
		if (strcmp(t->key, key) != 0 || strcmp(t->resid, last) == 0 ||
		    !api_filter_values_match(f, t->value))
			continue;
		last = t->resid;
		if (candidate(d, t->resid, NULL, false) < 0)
			return -1;
	}
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->id, ((const struct row *)b)->id);
}

static int collect(struct describe *d)
{
	const struct api_filter *f;
	int r = 0;
	if (d->n_ids || d->n_names) {
		for (size_t i = 0; r == 0 && i < d->n_ids; i++)
			r = candidate(d, d->ids[i], NULL, true);
		for (size_t i = 0; r == 0 && i < d->n_names; i++)
			r = candidate(d, NULL, d->names[i], true);
	} else if ((f = find_filter(d, "group-id", true))) {
		for (size_t i = 0; r == 0 && i < f->n_values; i++)
			if (api_res_id_valid("sg", f->values[i]))
				r = candidate(d, f->values[i], NULL, false);
	} else if ((f = find_filter(d, "group-name", true))) {
		for (size_t i = 0; r == 0 && i < f->n_values; i++)
			r = candidate(d, NULL, f->values[i], false);
	} else {
		for (size_t i = 0; i < d->filters.n; i++)
			if (strncmp(d->filters.items[i].name, "tag:", 4) == 0)
				f = &d->filters.items[i];
		if (f)
			return tag_candidates(d, f);
		r = api_res_each(d->call, API_KIND_GROUP, scan_one, d);
		return r < 0 ? api_res_failed(d->call, r) : 0;
	}
	if (r < 0)
		return r;
	/* Named groups come in id order, each once. */
	if (d->n_rows)
		qsort(d->rows, d->n_rows, sizeof(d->rows[0]), row_cmp);
	size_t n = 0;
	for (size_t i = 0; i < d->n_rows; i++) {
		if (n && strcmp(d->rows[n - 1].id, d->rows[i].id) == 0) {
			free(d->rows[i].name);
			free(d->rows[i].description);
			continue;
		}
		d->rows[n++] = d->rows[i];
	}
	d->n_rows = n;
	return 0;
}

/* Tags (or rules) of the rows that pass keep(): few, one by one. */
static int load_tags(struct describe *d)
{
	int r = 0;
	if (d->tags_loaded)
		return 0;
	if (d->n_rows > FEW_GROUPS) {
		r = api_tag_index_add(d->call, "sg-", &d->tags);
	} else {
		for (size_t i = 0; r == 0 && i < d->n_rows; i++) {
			char prefix[API_RES_ID_MAX + 2];
			snprintf(prefix, sizeof(prefix), "%s:", d->rows[i].id);
			r = api_tag_index_add(d->call, prefix, &d->tags);
		}
	}
	api_tag_index_sort(&d->tags);
	d->tags_loaded = true;
	return r ? api_res_failed(d->call, r) : 0;
}

static int load_rules(struct describe *d, bool page_only)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_rows; i++)
		n += !page_only || d->rows[i].on_page;
	int r = 0;
	if (n > FEW_GROUPS) {
		r = api_rules_add(d->call, NULL, &d->rules);
	} else {
		for (size_t i = 0; r == 0 && i < d->n_rows; i++)
			if (!page_only || d->rows[i].on_page)
				r = api_rules_add(d->call, d->rows[i].id,
				                  &d->rules);
	}
	api_rules_sort(&d->rules);
	return r ? api_res_failed(d->call, r) : 0;
}

/* Keeps the rows whose tags (F_TAG) or rules (F_RULE) match. */
static void keep_matching(struct describe *d, enum filter_kind kind)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_rows; i++) {
		struct row *row = &d->rows[i];
		const struct api_rule *rules = NULL;
		size_t n_rules = 0;
		if (kind == F_TAG)
			api_tag_index_get(&d->tags, row->id, d->scratch);
		else
			rules = api_rules_find(&d->rules, row->id, &n_rules);
		bool keep = true;
		for (size_t k = 0; k < d->filters.n && keep; k++) {
			const struct api_filter *f = &d->filters.items[k];
			if (d->kinds[k] != kind)
				continue;
			if (kind == F_TAG)
				api_filter_tags(f, d->scratch, &keep);
			else
				api_rule_filter(f, rules, n_rules, &keep);
		}
		if (keep) {
			d->rows[n++] = *row;
		} else {
			free(row->name);
			free(row->description);
		}
	}
	d->n_rows = n;
}

static void group_xml(struct describe *d, const struct row *row)
{
	struct api_call *call = d->call;
	struct mc_buf *o = call->out;
	size_t n_rules;
	const struct api_rule *rules =
	    api_rules_find(&d->rules, row->id, &n_rules);
	api_tag_index_get(&d->tags, row->id, d->scratch);
	api_xml_open(o, "item");
	api_xml_elem(o, "ownerId", call->auth->key.account_id);
	api_xml_elem(o, "groupId", row->id);
	api_xml_elem(o, "groupName", row->name);
	api_xml_elem(o, "groupDescription", row->description);
	api_xml_elem(o, "vpcId", row->vpc_id);
	api_rules_xml(o, "ipPermissions", rules, n_rules, false);
	api_rules_xml(o, "ipPermissionsEgress", rules, n_rules, true);
	api_xml_tag_set(o, d->scratch);
	api_xml_elem_fmt(
	    o, "securityGroupArn", "arn:aws:ec2:%s:%s:security-group/%s",
	    call->cfg->region, call->auth->key.account_id, row->id);
	api_xml_close(o, "item");
}

static int parse(struct describe *d)
{
	struct api_call *call = d->call;
	d->n_ids = api_params_list(call->params, "GroupId", d->ids, NAMES_MAX);
	d->n_names =
	    api_params_list(call->params, "GroupName", d->names, NAMES_MAX);
	if (d->n_ids > NAMES_MAX || d->n_names > NAMES_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many groups named (at most %d).",
		                     NAMES_MAX);
	for (size_t i = 0; i < d->n_ids; i++)
		if (!api_res_id_valid("sg", d->ids[i]))
			return api_error_set(&call->err,
			                     "InvalidGroupId.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"sg-...\")",
			                     d->ids[i]);
	if (api_filters_parse(call->params, &d->filters, &call->err) < 0 ||
	    classify(d) < 0 || api_page_parse(call, &d->page, 5, 1000) < 0)
		return -1;
	return 0;
}

static int describe_run(struct describe *d)
{
	struct api_call *call = d->call;
	if (parse(d) < 0 || api_dry_run(call))
		return -1;
	int r = api_group_default(call, NULL);
	if (r)
		return api_res_failed(call, r);
	if (collect(d) < 0 || load_tags(d) < 0)
		return -1;
	if (d->tag_filters)
		keep_matching(d, F_TAG);
	if (d->rule_filters) {
		if (load_rules(d, false) < 0)
			return -1;
		keep_matching(d, F_RULE);
	}
	for (size_t i = 0; i < d->n_rows; i++)
		d->rows[i].on_page = api_page_take(&d->page, d->rows[i].id);
	if (!d->rule_filters && load_rules(d, true) < 0)
		return -1;

	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DescribeSecurityGroups", call->version,
	                       call->request_id);
	api_xml_open(o, "securityGroupInfo");
	for (size_t i = 0; i < d->n_rows; i++)
		if (d->rows[i].on_page)
			group_xml(d, &d->rows[i]);
	api_xml_close(o, "securityGroupInfo");
	api_page_xml_next(o, &d->page);
	api_xml_response_end(o, "DescribeSecurityGroups");
	return 0;
}

int api_action_describe_security_groups(struct api_call *call)
{
	struct describe d = {
	    .call = call,
	    .ids = xcalloc(NAMES_MAX, sizeof(char *)),
	    .names = xcalloc(NAMES_MAX, sizeof(char *)),
	    .scratch = xmalloc(sizeof(struct api_tags)),
	};
	int rc = describe_run(&d);
	for (size_t i = 0; i < d.n_rows; i++) {
		free(d.rows[i].name);
		free(d.rows[i].description);
	}
	free(d.rows);
	api_rules_free(&d.rules);
	api_tag_index_free(&d.tags);
	api_filters_free(&d.filters);
	free(d.scratch);
	free(d.names);
	free(d.ids);
	return rc;
}
