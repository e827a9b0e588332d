/*
 * Security group rules as records: one record per rule, named by a hash
 * of what the rule is (group, direction, protocol, ports, peer), so
 *   - a rule has a stable EC2 rule id (sgr-...) on every edge,
 *   - authorizing an existing rule is found with one read, and
 *   - two edges changing one group at the same moment never lose each
 *     other's rules (each writes its own records; a group never gets
 *     rewritten). Only an authorize and a revoke of the very same rule
 *     race, and the later write wins.
 * Also here: loading them in bulk or per group, their XML as EC2 groups
 * them into IpPermissions, and the ip-permission.* filters.
 */
#include "apiedge_int.h"

#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const peer_names[] = {
    [API_PEER_CIDR] = "cidr",
    [API_PEER_CIDR6] = "cidr6",
    [API_PEER_GROUP] = "group",
    [API_PEER_PREFIX_LIST] = "prefix-list",
};

void api_rule_set_id(const struct api_call *call, struct api_rule *r)
{
	char seed[API_RES_ID_MAX * 3 + 64];
	snprintf(seed, sizeof(seed), "%s\n%s\n%s\n%s\n%d\n%d\n%s\n%s",
	         call->auth->key.account_id, r->group_id,
	         r->egress ? "egress" : "ingress", r->proto, r->from, r->to,
	         peer_names[r->peer], r->target);
	api_res_derived_id("sgr", seed, r->id, sizeof(r->id));
}

static void rule_resid(const struct api_rule *r, char *out, size_t size)
{
	snprintf(out, size, "%s:%s", r->group_id, r->id);
}

int api_rule_store(const struct api_call *call, const struct api_rule *r)
{
	char resid[API_RES_ID_MAX * 2];
	rule_resid(r, resid, sizeof(resid));
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 10);
	mc_pack_kv_str(&b, "group", r->group_id);
	mc_pack_kv_bool(&b, "egress", r->egress);
	mc_pack_kv_str(&b, "proto", r->proto);
	mc_pack_kv_int(&b, "from", r->from);
	mc_pack_kv_int(&b, "to", r->to);
	mc_pack_kv_str(&b, "peer", peer_names[r->peer]);
	mc_pack_kv_str(&b, "target", r->target);
	mc_pack_kv_str(&b, "user", r->user_id);
	mc_pack_kv_str(&b, "group_name", r->group_name ? r->group_name : "");
	mc_pack_kv_str(&b, "description", r->description ? r->description : "");
	int e = api_res_store(call, API_KIND_GROUP_RULE, resid, &b);
	mc_buf_free(&b);
	return e;
}

int api_rule_remove(const struct api_call *call, const struct api_rule *r)
{
	char resid[API_RES_ID_MAX * 2];
	rule_resid(r, resid, sizeof(resid));
	return api_res_remove(call, API_KIND_GROUP_RULE, resid);
}

bool api_rule_exists(const struct api_call *call, const struct api_rule *r)
{
	char resid[API_RES_ID_MAX * 2];
	struct mc_doc *doc = NULL;
	rule_resid(r, resid, sizeof(resid));
	int e = api_res_load(call, API_KIND_GROUP_RULE, resid, &doc);
	mc_doc_free(doc);
	return e == 0;
}

static bool get_int(const struct mc_val *m, const char *key, int *out)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (v && v->type == MC_VAL_INT && v->v.i >= -1 && v->v.i <= 65535)
		*out = (int)v->v.i;
	else if (v && v->type == MC_VAL_UINT && v->v.u <= 65535)
		*out = (int)v->v.u;
	else
		return false;
	return true;
}

static char *get_dup(const struct mc_val *m, const char *key)
{
	const uint8_t *p;
	size_t n;
	if (!mc_get_bytes(m, key, &p, &n) || n == 0 || n > 4 * 255)
		return NULL;
	return xstrndup((const char *)p, n);
}

/* Decodes a rule record; false (and nothing to free) when it is bad. */
static bool rule_decode(const char *resid, const struct mc_val *v,
                        struct api_rule *r)
{
	char peer[16];
	memset(r, 0, sizeof(*r));
	const char *colon = strchr(resid, ':');
	if (!colon || strlen(colon + 1) >= sizeof(r->id))
		return false;
	snprintf(r->id, sizeof(r->id), "%s", colon + 1);
	if (!mc_get_str(v, "group", r->group_id, sizeof(r->group_id)) ||
	    !mc_get_bool(v, "egress", &r->egress) ||
	    !mc_get_str(v, "proto", r->proto, sizeof(r->proto)) ||
	    !get_int(v, "from", &r->from) || !get_int(v, "to", &r->to) ||
	    !mc_get_str(v, "peer", peer, sizeof(peer)) ||
	    !mc_get_str(v, "target", r->target, sizeof(r->target)) ||
	    !mc_get_str(v, "user", r->user_id, sizeof(r->user_id)))
		return false;
	size_t k = 0;
	while (k < sizeof(peer_names) / sizeof(peer_names[0]) &&
	       strcmp(peer_names[k], peer) != 0)
		k++;
	if (k == sizeof(peer_names) / sizeof(peer_names[0]))
		return false;
	r->peer = (enum api_rule_peer)k;
	r->group_name = get_dup(v, "group_name");
	r->description = get_dup(v, "description");
	return true;
}

struct rules_walk {
	size_t skip; /* "account:" */
	struct api_rules *out;
};

static int rules_one(void *arg, const char *id, const uint8_t *body, size_t len)
{
	struct rules_walk *w = arg;
	struct api_rules *rs = w->out;
	struct mc_doc *doc = mc_unpack(body, len);
	if (!doc)
		return 0;
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 16;
		rs->items = xrealloc(rs->items, rs->cap * sizeof(*rs->items));
	}
	if (rule_decode(id + w->skip, mc_doc_root(doc), &rs->items[rs->n]))
		rs->n++;
	mc_doc_free(doc);
	return 0;
}

int api_rules_add(const struct api_call *call, const char *group_id,
                  struct api_rules *out)
{
	char prefix[API_RES_ID_MAX * 2], rest[API_RES_ID_MAX];
	snprintf(rest, sizeof(rest), "%s:", group_id ? group_id : "");
	if (!api_res_key(call, group_id ? rest : "", prefix, sizeof(prefix)))
		return -EINVAL;
	struct rules_walk w = {
	    .skip = strlen(call->auth->key.account_id) + 1,
	    .out = out,
	};
	return call->cloud->list(call->cloud->arg, API_KIND_GROUP_RULE, prefix,
	                         rules_one, &w);
}

static int rule_cmp(const void *a, const void *b)
{
	const struct api_rule *x = a, *y = b;
	int c = strcmp(x->group_id, y->group_id);
	if (c)
		return c;
	if (x->egress != y->egress)
		return x->egress ? 1 : -1;
	if ((c = strcmp(x->proto, y->proto)))
		return c;
	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	if (x->to != y->to)
		return x->to < y->to ? -1 : 1;
	if (x->peer != y->peer)
		return x->peer < y->peer ? -1 : 1;
	return strcmp(x->target, y->target);
}

void api_rules_sort(struct api_rules *rs)
{
	if (rs->n)
		qsort(rs->items, rs->n, sizeof(rs->items[0]), rule_cmp);
}

void api_rule_clear(struct api_rule *r)
{
	free(r->group_name);
	free(r->description);
	r->group_name = r->description = NULL;
}

void api_rules_free(struct api_rules *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		api_rule_clear(&rs->items[i]);
	free(rs->items);
	memset(rs, 0, sizeof(*rs));
}

const struct api_rule *api_rules_find(const struct api_rules *rs,
                                      const char *group_id, size_t *count)
{
	size_t lo = 0, hi = rs->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(rs->items[mid].group_id, group_id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < rs->n && strcmp(rs->items[end].group_id, group_id) == 0)
		end++;
	*count = end - lo;
	/* An empty set may have no array at all; NULL + 0 is undefined. */
	return rs->items ? rs->items + lo : NULL;
}

bool api_rule_has_ports(const struct api_rule *r)
{
	return strcmp(r->proto, "tcp") == 0 || strcmp(r->proto, "udp") == 0 ||
	       strcmp(r->proto, "icmp") == 0 || strcmp(r->proto, "icmpv6") == 0;
}

static bool same_permission(const struct api_rule *a, const struct api_rule *b)
{
	return a->egress == b->egress && strcmp(a->proto, b->proto) == 0 &&
	       a->from == b->from && a->to == b->to;
}

static const char *const peer_lists[] = {
    [API_PEER_CIDR] = "ipRanges",
    [API_PEER_CIDR6] = "ipv6Ranges",
    [API_PEER_GROUP] = "groups",
    [API_PEER_PREFIX_LIST] = "prefixListIds",
};

static void peer_xml(struct mc_buf *o, const struct api_rule *r)
{
	const char *d =
	    r->description && r->description[0] ? r->description : NULL;
	api_xml_open(o, "item");
	switch (r->peer) {
	case API_PEER_CIDR:
		api_xml_elem(o, "cidrIp", r->target);
		api_xml_elem(o, "description", d);
		break;
	case API_PEER_CIDR6:
		api_xml_elem(o, "cidrIpv6", r->target);
		api_xml_elem(o, "description", d);
		break;
	case API_PEER_GROUP:
		api_xml_elem(o, "description", d);
		api_xml_elem(o, "userId", r->user_id);
		api_xml_elem(o, "groupId", r->target);
		break;
	case API_PEER_PREFIX_LIST:
		api_xml_elem(o, "prefixListId", r->target);
		api_xml_elem(o, "description", d);
		break;
	}
	api_xml_close(o, "item");
}

/* One IpPermission: rules[0..n) share direction, protocol and ports. */
void api_permission_xml(struct mc_buf *o, const struct api_rule *rules,
                        size_t n)
{
	api_xml_open(o, "item");
	api_xml_elem(o, "ipProtocol", rules[0].proto);
	if (api_rule_has_ports(&rules[0])) {
		api_xml_elem_fmt(o, "fromPort", "%d", rules[0].from);
		api_xml_elem_fmt(o, "toPort", "%d", rules[0].to);
	}
	/* EC2's order of the lists; each one present, if empty. */
	static const enum api_rule_peer order[] = {
	    API_PEER_GROUP, API_PEER_CIDR, API_PEER_CIDR6,
	    API_PEER_PREFIX_LIST};
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		api_xml_open(o, peer_lists[order[k]]);
		for (size_t i = 0; i < n; i++)
			if (rules[i].peer == order[k])
				peer_xml(o, &rules[i]);
		api_xml_close(o, peer_lists[order[k]]);
	}
	api_xml_close(o, "item");
}

void api_rules_xml(struct mc_buf *o, const char *tag,
                   const struct api_rule *rules, size_t n, bool egress)
{
	api_xml_open(o, tag);
	size_t i = 0;
	while (i < n) {
		size_t j = i + 1;
		while (j < n && same_permission(&rules[i], &rules[j]))
			j++;
		if (rules[i].egress == egress)
			api_permission_xml(o, rules + i, j - i);
		i = j;
	}
	api_xml_close(o, tag);
}

void api_rule_set_xml(struct mc_buf *o, const struct api_call *call,
                      const struct api_rule *r)
{
	api_xml_open(o, "item");
	api_xml_elem(o, "securityGroupRuleId", r->id);
	api_xml_elem(o, "groupId", r->group_id);
	api_xml_elem(o, "groupOwnerId", call->auth->key.account_id);
	api_xml_elem_bool(o, "isEgress", r->egress);
	api_xml_elem(o, "ipProtocol", r->proto);
	api_xml_elem_fmt(o, "fromPort", "%d", r->from);
	api_xml_elem_fmt(o, "toPort", "%d", r->to);
	switch (r->peer) {
	case API_PEER_CIDR:
		api_xml_elem(o, "cidrIpv4", r->target);
		break;
	case API_PEER_CIDR6:
		api_xml_elem(o, "cidrIpv6", r->target);
		break;
	case API_PEER_PREFIX_LIST:
		api_xml_elem(o, "prefixListId", r->target);
		break;
	case API_PEER_GROUP:
		api_xml_open(o, "referencedGroupInfo");
		api_xml_elem(o, "groupId", r->target);
		api_xml_elem(o, "userId", r->user_id);
		api_xml_close(o, "referencedGroupInfo");
		break;
	}
	if (r->description && r->description[0])
		api_xml_elem(o, "description", r->description);
	api_xml_elem_fmt(o, "securityGroupRuleArn",
	                 "arn:aws:ec2:%s:%s:security-group-rule/%s",
	                 call->cfg->region, call->auth->key.account_id, r->id);
	api_xml_close(o, "item");
}

/* The value of one ip-permission.* attribute of a rule, or NULL. */
static const char *rule_attr(const struct api_rule *r, const char *attr,
                             char num[16])
{
	if (strcmp(attr, "protocol") == 0)
		return r->proto;
	if (strcmp(attr, "from-port") == 0 || strcmp(attr, "to-port") == 0) {
		if (!api_rule_has_ports(r))
			return NULL;
		snprintf(num, 16, "%d", attr[0] == 'f' ? r->from : r->to);
		return num;
	}
	if (strcmp(attr, "cidr") == 0)
		return r->peer == API_PEER_CIDR ? r->target : NULL;
	if (strcmp(attr, "ipv6-cidr") == 0)
		return r->peer == API_PEER_CIDR6 ? r->target : NULL;
	if (strcmp(attr, "prefix-list-id") == 0)
		return r->peer == API_PEER_PREFIX_LIST ? r->target : NULL;
	if (strcmp(attr, "group-id") == 0)
		return r->peer == API_PEER_GROUP ? r->target : NULL;
	if (strcmp(attr, "group-name") == 0)
		return r->peer == API_PEER_GROUP ? r->group_name : NULL;
	if (strcmp(attr, "user-id") == 0)
		return r->peer == API_PEER_GROUP ? r->user_id : NULL;
	return NULL;
}

static const char *const rule_attrs[] = {
    "protocol", "from-port",  "to-port", "cidr",           "ipv6-cidr",
    "group-id", "group-name", "user-id", "prefix-list-id",
};

int api_rule_filter(const struct api_filter *f, const struct api_rule *rules,
                    size_t n, bool *match)
{
	static const char in[] = "ip-permission.";
	static const char out[] = "egress.ip-permission.";
	const char *attr;
	bool egress;
	if (strncmp(f->name, in, sizeof(in) - 1) == 0) {
		attr = f->name + sizeof(in) - 1;
		egress = false;
	} else if (strncmp(f->name, out, sizeof(out) - 1) == 0) {
		attr = f->name + sizeof(out) - 1;
		egress = true;
	} else {
		return 0;
	}
	size_t k = 0;
	while (k < sizeof(rule_attrs) / sizeof(rule_attrs[0]) &&
	       strcmp(rule_attrs[k], attr) != 0)
		k++;
	if (k == sizeof(rule_attrs) / sizeof(rule_attrs[0]))
		return 0;
	/* Any rule of the direction may satisfy it (EC2's semantics). */
	*match = false;
	for (size_t i = 0; i < n && !*match; i++) {
		char num[16];
		const char *v = rules[i].egress == egress
		                    ? rule_attr(&rules[i], attr, num)
		                    : NULL;
		*match = v && api_filter_values_match(f, v);
	}
	return 1;
}
