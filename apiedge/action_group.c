/*
 * Security groups: their records, the default group, lookups by id and by
 * name, CreateSecurityGroup and DeleteSecurityGroup. Rules live in
 * action_group_rules.c, DescribeSecurityGroups in action_group_describe.c.
 *
 * A group is three kinds of records, all under the account's prefix:
 *   security-group       account:sg-X        name, description, vpc_id
 *   security-group-name  account:hash(name)  name, group_id (the index that
 *                                            makes names unique and cheap)
 *   security-group-rule  account:sg-X:sgr-Y one rule each
 * The group record never changes after creation and is written last, so a
 * group exists exactly when its record does; a create cut short leaves
 * only records nothing reads. Two edges creating the same name at the same
 * moment can both succeed (the name index keeps the later one): EC2 names
 * are unique per VPC, mallee's per account on a best-effort basis.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_name[] = "default";
static const char default_description[] = "default VPC security group";

void api_default_group_id(const struct api_call *call, char out[32])
{
	char seed[64];
	snprintf(seed, sizeof(seed), "default-sg\n%s",
	         call->auth->key.account_id);
	api_res_derived_id("sg", seed, out, 32);
}

/* The name index's resource id: names run to 255 characters. */
static void name_resid(const char *name, char out[33])
{
	uint8_t h[16];
	mc_hash(h, sizeof(h), name, strlen(name));
	mc_hex_encode(out, h, sizeof(h));
}

static bool group_decode(const char *id, const struct mc_val *v,
                         struct api_group *out)
{
	if (!out)
		return true;
	snprintf(out->id, sizeof(out->id), "%s", id);
	return mc_get_str(v, "name", out->name, sizeof(out->name)) &&
	       mc_get_str(v, "description", out->description,
	                  sizeof(out->description)) &&
	       mc_get_str(v, "vpc_id", out->vpc_id, sizeof(out->vpc_id));
}

static int group_load(struct api_call *call, const char *id,
                      struct api_group *out)
{
	struct mc_doc *doc;
	int r = api_res_load(call, API_KIND_GROUP, id, &doc);
	if (r)
		return r;
	bool ok = group_decode(id, mc_doc_root(doc), out);
	mc_doc_free(doc);
	return ok ? 0 : -EBADMSG;
}

/* Writes a new group: its rules, its name, then the group itself. */
static int group_write(struct api_call *call, const struct api_group *g,
                       const struct api_rule *rules, size_t n_rules)
{
	for (size_t i = 0; i < n_rules; i++) {
		int r = api_rule_store(call, &rules[i]);
		if (r)
			return r;
	}
	char resid[33];
	struct mc_buf b;
	mc_buf_init(&b);
	name_resid(g->name, resid);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "name", g->name);
	mc_pack_kv_str(&b, "group_id", g->id);
	int r = api_res_store(call, API_KIND_GROUP_NAME, resid, &b);
	if (r == 0) {
		mc_buf_reset(&b);
		mc_pack_map(&b, 3);
		mc_pack_kv_str(&b, "name", g->name);
		mc_pack_kv_str(&b, "description", g->description);
		mc_pack_kv_str(&b, "vpc_id", g->vpc_id);
		r = api_res_store(call, API_KIND_GROUP, g->id, &b);
	}
	mc_buf_free(&b);
	return r;
}

/* Every new group may send anything anywhere, as in a VPC. */
static void egress_all(const struct api_call *call, const char *group_id,
                       struct api_rule *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->group_id, sizeof(r->group_id), "%s", group_id);
	r->egress = true;
	snprintf(r->proto, sizeof(r->proto), "-1");
	r->from = r->to = -1;
	r->peer = API_PEER_CIDR;
	snprintf(r->target, sizeof(r->target), "0.0.0.0/0");
	api_rule_set_id(call, r);
}

/*
 * The default group is created the first time an account uses groups, by
 * whichever edge sees that first. Its id and records are derived from the
 * account alone, so edges doing it at once write the same bytes. A caveat:
 * an edge that has not yet received the group rewrites its default rules,
 * which revives a default rule revoked elsewhere within that moment.
 */
int api_group_default(struct api_call *call, struct api_group *out)
{
	struct api_group g = {0};
	api_default_group_id(call, g.id);
	int r = group_load(call, g.id, out);
	if (r != -ENOENT)
		return r;
	snprintf(g.name, sizeof(g.name), "%s", default_name);
	snprintf(g.description, sizeof(g.description), "%s",
	         default_description);
	api_default_vpc_id(call, g.vpc_id);
	/* Its members may talk to each other, and to anywhere out. */
	struct api_rule rules[2];
	egress_all(call, g.id, &rules[0]);
	memset(&rules[1], 0, sizeof(rules[1]));
	snprintf(rules[1].group_id, sizeof(rules[1].group_id), "%s", g.id);
	snprintf(rules[1].proto, sizeof(rules[1].proto), "-1");
	rules[1].from = rules[1].to = -1;
	rules[1].peer = API_PEER_GROUP;
	snprintf(rules[1].target, sizeof(rules[1].target), "%s", g.id);
	snprintf(rules[1].user_id, sizeof(rules[1].user_id), "%s",
	         call->auth->key.account_id);
	rules[1].group_name = (char *)default_name;
	api_rule_set_id(call, &rules[1]);
	r = group_write(call, &g, rules, 2);
	if (r == 0 && out)
		*out = g;
	return r;
}

int api_group_get(struct api_call *call, const char *id, struct api_group *out)
{
	char dflt[32];
	api_default_group_id(call, dflt);
	if (strcmp(id, dflt) == 0)
		return api_group_default(call, out);
	return group_load(call, id, out);
}

int api_group_by_name(struct api_call *call, const char *name,
                      struct api_group *out)
{
	struct api_group g;
	if (strcmp(name, default_name) == 0) {
		int r = api_group_default(call, &g);
		if (r == 0 && out)
			*out = g;
		return r;
	}
	char resid[33], id[API_RES_ID_MAX];
	struct mc_doc *doc;
	name_resid(name, resid);
	int r = api_res_load(call, API_KIND_GROUP_NAME, resid, &doc);
	if (r)
		return r;
	bool ok = mc_get_str(mc_doc_root(doc), "group_id", id, sizeof(id));
	mc_doc_free(doc);
	if (!ok)
		return -ENOENT;
	/* The index may outlive its group, or name an older one. */
	r = group_load(call, id, &g);
	if (r == 0 && strcmp(g.name, name) != 0)
		r = -ENOENT;
	if (r == 0 && out)
		*out = g;
	return r;
}

size_t api_utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

int api_group_param(struct api_call *call, struct api_group *out)
{
	const char *id = api_params_get(call->params, "GroupId");
	const char *name = api_params_get(call->params, "GroupName");
	int r;
	if (id && *id) {
		if (!api_res_id_valid("sg", id))
			return api_error_set(&call->err,
			                     "InvalidGroupId.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"sg-...\")",
			                     id);
		r = api_group_get(call, id, out);
		name = id;
	} else if (name && *name) {
		r = api_group_by_name(call, name, out);
	} else {
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "groupName or groupId");
	}
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidGroup.NotFound",
		                     "The security group '%s' does not exist",
		                     name);
	return r ? api_res_failed(call, r) : 0;
}

/* GroupName and GroupDescription as EC2 checks them. */
static int check_new_group(struct api_call *call, const char *name,
                           const char *description)
{
	if (!name || !*name)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "GroupName");
	if (!description)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "GroupDescription");
	if (api_utf8_chars(name) > 255 ||
	    strlen(name) >= sizeof(((struct api_group *)0)->name))
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value for parameter GroupName is too "
		                     "long: at most 255 characters.");
	if (strncmp(name, "sg-", 3) == 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Group names may not be in the format "
		                     "sg-*");
	if (api_utf8_chars(description) > 255 ||
	    strlen(description) >= sizeof(((struct api_group *)0)->description))
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value for parameter GroupDescription is "
		                     "too long: at most 255 characters.");
	return 0;
}

int api_action_create_security_group(struct api_call *call)
{
	const char *name = api_params_get(call->params, "GroupName");
	const char *description =
	    api_params_get(call->params, "GroupDescription");
	const char *vpc_param = api_params_get(call->params, "VpcId");
	struct api_group g = {0};
	api_default_vpc_id(call, g.vpc_id);
	if (check_new_group(call, name, description) < 0)
		return -1;
	if (vpc_param && *vpc_param && strcmp(vpc_param, g.vpc_id) != 0) {
		if (!api_res_id_valid("vpc", vpc_param))
			return api_error_set(&call->err,
			                     "InvalidVpcID.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"vpc-...\")",
			                     vpc_param);
		return api_error_set(&call->err, "InvalidVpcID.NotFound",
		                     "The vpc ID '%s' does not exist",
		                     vpc_param);
	}
	if (api_tag_specs_check(call, "security-group") < 0)
		return -1;
	int r = api_group_by_name(call, name, NULL);
	if (r == 0)
		return api_error_set(&call->err, "InvalidGroup.Duplicate",
		                     "The security group '%s' already exists "
		                     "for VPC '%s'",
		                     name, g.vpc_id);
	if (r != -ENOENT)
		return api_res_failed(call, r);
	if (api_dry_run(call))
		return -1;

	api_res_new_id("sg", g.id, sizeof(g.id));
	snprintf(g.name, sizeof(g.name), "%s", name);
	snprintf(g.description, sizeof(g.description), "%s", description);
	/* Tags before the group: they are invisible until it exists. */
	if (api_tag_specs_apply(call, "security-group", g.id) < 0)
		return -1;
	struct api_rule egress;
	egress_all(call, g.id, &egress);
	r = group_write(call, &g, &egress, 1);
	if (r)
		return api_res_failed(call, r);

	struct api_tags tags;
	r = api_tags_load(call, g.id, &tags);
	if (r)
		return api_res_failed(call, r);
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "CreateSecurityGroup", call->version,
	                       call->request_id);
	api_xml_elem(o, "return", "true");
	api_xml_elem(o, "groupId", g.id);
	if (tags.n)
		api_xml_tag_set(o, &tags);
	api_xml_elem_fmt(o, "securityGroupArn",
	                 "arn:aws:ec2:%s:%s:security-group/%s",
	                 call->cfg->region, call->auth->key.account_id, g.id);
	api_xml_response_end(o, "CreateSecurityGroup");
	return 0;
}

struct dependents {
	const char *group_id;
	char by[API_RES_ID_MAX]; /* a group whose rule names group_id */
};

static int dependent_one(void *arg, const char *resid,
                         const struct mc_val *body)
{
	(void)resid;
	struct dependents *d = arg;
	char peer[16], target[API_RES_ID_MAX], owner[API_RES_ID_MAX];
	if (mc_get_str(body, "peer", peer, sizeof(peer)) &&
	    strcmp(peer, "group") == 0 &&
	    mc_get_str(body, "target", target, sizeof(target)) &&
	    strcmp(target, d->group_id) == 0 &&
	    mc_get_str(body, "group", owner, sizeof(owner)) &&
	    strcmp(owner, d->group_id) != 0) {
		snprintf(d->by, sizeof(d->by), "%s", owner);
		return 1;
	}
	return 0;
}

int api_action_delete_security_group(struct api_call *call)
{
	struct api_group g;
	if (api_group_param(call, &g) < 0)
		return -1;
	char dflt[32];
	api_default_group_id(call, dflt);
	if (strcmp(g.id, dflt) == 0)
		return api_error_set(&call->err, "CannotDelete",
		                     "the specified group: \"%s\" name: "
		                     "\"default\" cannot be deleted by a user",
		                     g.id);
	struct dependents d = {.group_id = g.id};
	int r = api_res_each(call, API_KIND_GROUP_RULE, dependent_one, &d);
	if (r < 0)
		return api_res_failed(call, r);
	if (d.by[0])
		return api_error_set(&call->err, "DependencyViolation",
		                     "resource %s has a dependent object",
		                     g.id);
	if (api_dry_run(call))
		return -1;

	/* The group first: once it is gone, the rest is unreachable. */
	r = api_res_remove(call, API_KIND_GROUP, g.id);
	if (r)
		return api_res_failed(call, r);
	struct api_group named;
	char resid[33];
	name_resid(g.name, resid);
	if (api_group_by_name(call, g.name, &named) == -ENOENT)
		api_res_remove(call, API_KIND_GROUP_NAME, resid);
	struct api_rules rules = {0};
	r = api_rules_add(call, g.id, &rules);
	for (size_t i = 0; r == 0 && i < rules.n; i++)
		r = api_rule_remove(call, &rules.items[i]);
	api_rules_free(&rules);
	if (r)
		return api_res_failed(call, r);

	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DeleteSecurityGroup", call->version,
	                       call->request_id);
	api_xml_elem(o, "return", "true");
	api_xml_elem(o, "groupId", g.id);
	api_xml_response_end(o, "DeleteSecurityGroup");
	return 0;
}
