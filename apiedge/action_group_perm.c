/*
 * Authorize/RevokeSecurityGroupIngress/Egress. A request names rules in
 * either of EC2's two shapes, or both:
 *   flat         IpProtocol, FromPort, ToPort, CidrIp,
 *                SourceSecurityGroupName, SourceSecurityGroupOwnerId
 *   structured   IpPermissions.N.{IpProtocol,FromPort,ToPort} with
 *                IpRanges.M.{CidrIp,Description}, Ipv6Ranges.M.CidrIpv6,
 *                Groups.M (or UserIdGroupPairs.M).{GroupId,GroupName,
 *                UserId,Description}, PrefixListIds.M.PrefixListId
 * Each becomes one rule per peer (see action_group_rules.c). Everything
 * is checked before anything is written.
 */
#include "apiedge_int.h"

#include "addr.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PERMISSIONS_MAX 100
#define PEERS_MAX       100
#define RULE_IDS_MAX    100

struct perm_ctx {
	struct api_call *call;
	const struct api_group *group;
	bool egress;
	struct api_rules *out;
};

static void member(char *out, size_t size, const char *prefix, long index,
                   const char *field)
{
	if (index == API_INDEX_NONE)
		snprintf(out, size, "%s.%s", prefix, field);
	else
		snprintf(out, size, "%s.%ld.%s", prefix, index, field);
}

static int parse_proto(struct api_call *call, const char *p, char out[8])
{
	static const struct {
		const char *name, *number;
	} known[] = {
	    {"tcp", "6"}, {"udp", "17"}, {"icmp", "1"}, {"icmpv6", "58"}};
	if (!p || !*p)
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "IpProtocol");
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(p, known[i].name) == 0 ||
		    strcmp(p, known[i].number) == 0) {
			snprintf(out, 8, "%s", known[i].name);
			return 0;
		}
	if (strcmp(p, "-1") == 0 || strcasecmp(p, "all") == 0) {
		snprintf(out, 8, "-1");
		return 0;
	}
	char *end;
	long v = strtol(p, &end, 10);
	if (*p >= '0' && *p <= '9' && *end == '\0' && v >= 0 && v <= 255) {
		snprintf(out, 8, "%ld", v);
		return 0;
	}
	return api_error_set(&call->err, "InvalidParameterValue",
	                     "Invalid value '%s' for IP protocol. Unknown "
	                     "protocol.",
	                     p);
}

static int parse_port(struct api_call *call, const char *s, long lo, long hi,
                      int *out)
{
	char *end;
	long v = s && *s ? strtol(s, &end, 10) : 0;
	if (!s || !*s || *end != '\0' || v < lo || v > hi)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Invalid value '%s' for portRange. Must "
		                     "be between %ld and %ld.",
		                     s ? s : "", lo, hi);
	*out = (int)v;
	return 0;
}

/* Protocol and ports of one permission, shared by its peers. */
static int permission_base(struct perm_ctx *c, const char *proto,
                           const char *from, const char *to,
                           struct api_rule *base)
{
	struct api_call *call = c->call;
	memset(base, 0, sizeof(*base));
	snprintf(base->group_id, sizeof(base->group_id), "%s", c->group->id);
	base->egress = c->egress;
	if (parse_proto(call, proto, base->proto) < 0)
		return -1;
	base->from = base->to = -1;
	if (strcmp(base->proto, "tcp") == 0 ||
	    strcmp(base->proto, "udp") == 0) {
		if (!from || !to)
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "Invalid value for portRange. Must "
			    "specify both from and to ports "
			    "with TCP/UDP.");
		if (parse_port(call, from, 0, 65535, &base->from) < 0 ||
		    parse_port(call, to, 0, 65535, &base->to) < 0)
			return -1;
		if (base->from > base->to)
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "Invalid TCP/UDP port range %d-%d.", base->from,
			    base->to);
	} else if (strncmp(base->proto, "icmp", 4) == 0) {
		/* FromPort is the ICMP type, ToPort the code; -1 is any. */
		if ((from &&
		     parse_port(call, from, -1, 255, &base->from) < 0) ||
		    (to && parse_port(call, to, -1, 255, &base->to) < 0))
			return -1;
	}
	/* Other protocols have no ports: EC2 ignores what is sent. */
	return 0;
}

static int check_description(struct api_call *call, const char *d)
{
	if (d && api_utf8_chars(d) > 255)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Rule descriptions may be at most 255 "
		                     "characters.");
	return 0;
}

static int add_rule(struct perm_ctx *c, const struct api_rule *base,
                    enum api_rule_peer peer, const char *target,
                    const char *group_name, const char *description)
{
	struct api_rules *rs = c->out;
	if (check_description(c->call, description) < 0)
		return -1;
	if (rs->n >= PERMISSIONS_MAX * 4)
		return api_error_set(&c->call->err, "InvalidParameterValue",
		                     "Too many rules in one request.");
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 8;
		rs->items = xrealloc(rs->items, rs->cap * sizeof(*rs->items));
	}
	struct api_rule *r = &rs->items[rs->n++];
	*r = *base;
	r->peer = peer;
	snprintf(r->target, sizeof(r->target), "%s", target);
	if (peer == API_PEER_GROUP)
		snprintf(r->user_id, sizeof(r->user_id), "%s",
		         c->call->auth->key.account_id);
	r->group_name = group_name ? xstrdup(group_name) : NULL;
	r->description =
	    description && *description ? xstrdup(description) : NULL;
	api_rule_set_id(c->call, r);
	return 0;
}

static int add_cidr(struct perm_ctx *c, const struct api_rule *base,
                    const char *cidr, const char *description)
{
	struct mc_cidr net;
	if (!cidr || mc_cidr_parse(&net, cidr, 0, 32) != 0)
		return api_error_set(&c->call->err, "InvalidParameterValue",
		                     "CIDR block %s is malformed",
		                     cidr ? cidr : "(null)");
	char text[24];
	uint32_t a = net.network;
	snprintf(text, sizeof(text), "%u.%u.%u.%u/%u", a >> 24, (a >> 16) & 255,
	         (a >> 8) & 255, a & 255, net.prefix);
	return add_rule(c, base, API_PEER_CIDR, text, NULL, description);
}

static int add_cidr6(struct perm_ctx *c, const struct api_rule *base,
                     const char *cidr, const char *description)
{
	char host[64], text[64 + 8];
	const char *slash = cidr ? strchr(cidr, '/') : NULL;
	struct in6_addr a;
	char *end;
	long prefix = slash ? strtol(slash + 1, &end, 10) : -1;
	bool ok = slash && (size_t)(slash - cidr) < sizeof(host) &&
	          slash[1] >= '0' && slash[1] <= '9' && *end == '\0' &&
	          prefix >= 0 && prefix <= 128;
	if (ok) {
		memcpy(host, cidr, (size_t)(slash - cidr));
		host[slash - cidr] = '\0';
		ok = inet_pton(AF_INET6, host, &a) == 1;
	}
	/* No bits set past the prefix. */
	for (long bit = prefix; ok && bit < 128; bit++)
		ok = !(a.s6_addr[bit / 8] & (0x80 >> (bit % 8)));
	if (!ok)
		return api_error_set(&c->call->err, "InvalidParameterValue",
		                     "CIDR block %s is malformed",
		                     cidr ? cidr : "(null)");
	inet_ntop(AF_INET6, &a, host, sizeof(host));
	snprintf(text, sizeof(text), "%s/%ld", host, prefix);
	return add_rule(c, base, API_PEER_CIDR6, text, NULL, description);
}

static int add_group_peer(struct perm_ctx *c, const struct api_rule *base,
                          const char *id, const char *name, const char *user,
                          const char *description)
{
	struct api_call *call = c->call;
	struct api_group g;
	int r;
	if (id && *id) {
		if (!api_res_id_valid("sg", id))
			return api_error_set(&call->err,
			                     "InvalidGroupId.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"sg-...\")",
			                     id);
		r = api_group_get(call, id, &g);
	} else if (name && *name) {
		r = api_group_by_name(call, name, &g);
		id = name;
	} else {
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "groupId or groupName for the peer");
	}
	/* Groups of other accounts are not visible to this one. */
	if (r == 0 && user && *user &&
	    strcmp(user, call->auth->key.account_id) != 0)
		r = -ENOENT;
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidGroup.NotFound",
		                     "The security group '%s' does not exist",
		                     id);
	if (r)
		return api_res_failed(call, r);
	return add_rule(c, base, API_PEER_GROUP, g.id, g.name, description);
}

static int add_prefix_list(struct perm_ctx *c, const struct api_rule *base,
                           const char *id, const char *description)
{
	if (!id || !api_res_id_valid("pl", id))
		return api_error_set(
		    &c->call->err, "InvalidPrefixListId.Malformed",
		    "Invalid id: \"%s\" (expecting \"pl-...\")", id ? id : "");
	return add_rule(c, base, API_PEER_PREFIX_LIST, id, NULL, description);
}

/* The peers of list field (IpRanges...) of IpPermissions.N. */
static int permission_peers(struct perm_ctx *c, long n, const char *field,
                            const struct api_rule *base, size_t *count)
{
	const struct api_params *p = c->call->params;
	char prefix[96];
	long idx[PEERS_MAX + 1];
	member(prefix, sizeof(prefix), "IpPermissions", n, field);
	size_t k = api_params_indexes(p, prefix, idx, PEERS_MAX + 1);
	if (k > PEERS_MAX)
		return api_error_set(&c->call->err, "InvalidParameterValue",
		                     "Too many entries in %s.", prefix);
	*count += k;
	for (size_t i = 0; i < k; i++) {
		const char *d =
		    api_params_member(p, prefix, idx[i], "Description");
		int r;
		if (strcmp(field, "IpRanges") == 0)
			r = add_cidr(
			    c, base,
			    api_params_member(p, prefix, idx[i], "CidrIp"), d);
		else if (strcmp(field, "Ipv6Ranges") == 0)
			r = add_cidr6(
			    c, base,
			    api_params_member(p, prefix, idx[i], "CidrIpv6"),
			    d);
		else if (strcmp(field, "PrefixListIds") == 0)
			r = add_prefix_list(c, base,
			                    api_params_member(p, prefix, idx[i],
			                                      "PrefixListId"),
			                    d);
		else
			r = add_group_peer(
			    c, base,
			    api_params_member(p, prefix, idx[i], "GroupId"),
			    api_params_member(p, prefix, idx[i], "GroupName"),
			    api_params_member(p, prefix, idx[i], "UserId"), d);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int parse_permissions(struct perm_ctx *c)
{
	static const char *const fields[] = {"IpRanges", "Ipv6Ranges", "Groups",
	                                     "UserIdGroupPairs",
	                                     "PrefixListIds"};
	const struct api_params *p = c->call->params;
	long idx[PERMISSIONS_MAX + 1];
	size_t n =
	    api_params_indexes(p, "IpPermissions", idx, PERMISSIONS_MAX + 1);
	if (n > PERMISSIONS_MAX)
		return api_error_set(&c->call->err, "InvalidParameterValue",
		                     "Too many IpPermissions.");
	for (size_t i = 0; i < n; i++) {
		struct api_rule base;
		if (permission_base(
		        c,
		        api_params_member(p, "IpPermissions", idx[i],
		                          "IpProtocol"),
		        api_params_member(p, "IpPermissions", idx[i],
		                          "FromPort"),
		        api_params_member(p, "IpPermissions", idx[i], "ToPort"),
		        &base) < 0)
			return -1;
		size_t peers = 0;
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			if (permission_peers(c, idx[i], fields[f], &base,
			                     &peers) < 0)
				return -1;
		if (peers == 0)
			return api_error_set(
			    &c->call->err, "InvalidParameterValue",
			    "The permission must name at least "
			    "one of IpRanges, Ipv6Ranges, Groups "
			    "or PrefixListIds.");
	}
	return 0;
}

/* The flat shape of older clients. */
static int parse_flat(struct perm_ctx *c)
{
	const struct api_params *p = c->call->params;
	const char *proto = api_params_get(p, "IpProtocol");
	const char *from = api_params_get(p, "FromPort");
	const char *to = api_params_get(p, "ToPort");
	const char *cidr = api_params_get(p, "CidrIp");
	const char *source = api_params_get(p, "SourceSecurityGroupName");
	const char *owner = api_params_get(p, "SourceSecurityGroupOwnerId");
	struct api_rule base;
	if (!proto && !from && !to && !cidr && !source)
		return 0;
	if (source && !proto) {
		/* A source group alone opens all of TCP, UDP and ICMP. */
		static const char *const all[][3] = {{"icmp", "-1", "-1"},
		                                     {"tcp", "0", "65535"},
		                                     {"udp", "0", "65535"}};
		for (size_t i = 0; i < 3; i++)
			if (permission_base(c, all[i][0], all[i][1], all[i][2],
			                    &base) < 0 ||
			    add_group_peer(c, &base, NULL, source, owner,
			                   NULL) < 0)
				return -1;
		if (!cidr)
			return 0;
	}
	if (permission_base(c, proto, from, to, &base) < 0)
		return -1;
	if (source && proto &&
	    add_group_peer(c, &base, NULL, source, owner, NULL) < 0)
		return -1;
	if (cidr)
		return add_cidr(c, &base, cidr, NULL);
	if (!source)
		return api_error_set(&c->call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "CidrIp or SourceSecurityGroupName");
	return 0;
}

static int rule_id_cmp(const void *a, const void *b)
{
	return strcmp(((const struct api_rule *)a)->id,
	              ((const struct api_rule *)b)->id);
}

static void rule_text(const struct api_rule *r, char *out, size_t size)
{
	snprintf(out, size, "peer: %s, %s, from port: %d, to port: %d, ALLOW",
	         r->target, strcmp(r->proto, "-1") == 0 ? "ALL" : r->proto,
	         r->from, r->to);
}

static int authorize_rules(struct api_call *call, bool egress)
{
	struct api_group g;
	struct api_rules rules = {0}, have = {0};
	int rc = -1, r;
	if (api_group_param(call, &g) < 0)
		return -1;
	struct perm_ctx c = {
	    .call = call, .group = &g, .egress = egress, .out = &rules};
	if (parse_flat(&c) < 0 || parse_permissions(&c) < 0)
		goto out;
	if (rules.n == 0) {
		api_error_set(&call->err, "MissingParameter",
		              "The request must contain the parameter "
		              "ipPermissions");
		goto out;
	}
	qsort(rules.items, rules.n, sizeof(rules.items[0]), rule_id_cmp);
	for (size_t i = 0; i < rules.n; i++) {
		if ((i > 0 &&
		     strcmp(rules.items[i].id, rules.items[i - 1].id) == 0) ||
		    api_rule_exists(call, &rules.items[i])) {
			char text[160];
			rule_text(&rules.items[i], text, sizeof(text));
			api_error_set(
			    &call->err, "InvalidPermission.Duplicate",
			    "the specified rule \"%s\" already exists", text);
			goto out;
		}
	}
	if ((r = api_rules_add(call, g.id, &have)) != 0) {
		rc = api_res_failed(call, r);
		goto out;
	}
	size_t count = rules.n;
	for (size_t i = 0; i < have.n; i++)
		count += have.items[i].egress == egress;
	if (count > API_GROUP_RULES_MAX) {
		api_error_set(&call->err, "RulesPerSecurityGroupLimitExceeded",
		              "The maximum number of rules per security group "
		              "has been reached.");
		goto out;
	}
	if (api_dry_run(call))
		goto out;
	for (size_t i = 0; i < rules.n; i++)
		if ((r = api_rule_store(call, &rules.items[i])) != 0) {
			rc = api_res_failed(call, r);
			goto out;
		}
	api_rules_sort(&rules);
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, call->action, call->version,
	                       call->request_id);
	api_xml_elem(o, "return", "true");
	api_xml_open(o, "securityGroupRuleSet");
	for (size_t i = 0; i < rules.n; i++)
		api_rule_set_xml(o, call, &rules.items[i]);
	api_xml_close(o, "securityGroupRuleSet");
	api_xml_response_end(o, call->action);
	rc = 0;
out:
	api_rules_free(&have);
	api_rules_free(&rules);
	return rc;
}

/* SecurityGroupRuleId.N: moves the named rules of have into gone. */
static int rules_by_id(struct api_call *call, const struct api_rules *have,
                       bool egress, struct api_rules *gone)
{
	const char *ids[RULE_IDS_MAX];
	size_t n = api_params_list(call->params, "SecurityGroupRuleId", ids,
	                           RULE_IDS_MAX);
	if (n > RULE_IDS_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many security group rule ids.");
	for (size_t i = 0; i < n; i++) {
		if (!api_res_id_valid("sgr", ids[i]))
			return api_error_set(
			    &call->err, "InvalidSecurityGroupRuleId.Malformed",
			    "Invalid id: \"%s\" (expecting \"sgr-...\")",
			    ids[i]);
		size_t k = 0;
		while (k < have->n && (strcmp(have->items[k].id, ids[i]) != 0 ||
		                       have->items[k].egress != egress))
			k++;
		if (k == have->n)
			return api_error_set(
			    &call->err, "InvalidSecurityGroupRuleId.NotFound",
			    "The security group rule ID '%s' does not exist",
			    ids[i]);
		if (gone->n == gone->cap) {
			gone->cap = gone->cap ? 2 * gone->cap : 8;
			gone->items = xrealloc(
			    gone->items, gone->cap * sizeof(*gone->items));
		}
		/* Borrowed strings: gone is freed without them. */
		gone->items[gone->n++] = have->items[k];
	}
	return 0;
}

/*
 * In a default VPC, EC2 revokes the rules that exist and lists the ones
 * that do not in unknownIpPermissionSet, without an error; <return> stays
 * true, which is what configuration tools check.
 */
static int revoke_rules(struct api_call *call, bool egress)
{
	struct api_group g;
	struct api_rules rules = {0}, have = {0}, by_id = {0}, unknown = {0};
	int rc = -1, r;
	if (api_group_param(call, &g) < 0)
		return -1;
	struct perm_ctx c = {
	    .call = call, .group = &g, .egress = egress, .out = &rules};
	if ((r = api_rules_add(call, g.id, &have)) != 0) {
		rc = api_res_failed(call, r);
		goto out;
	}
	if (parse_flat(&c) < 0 || parse_permissions(&c) < 0 ||
	    rules_by_id(call, &have, egress, &by_id) < 0)
		goto out;
	if (rules.n == 0 && by_id.n == 0) {
		api_error_set(&call->err, "MissingParameter",
		              "The request must contain the parameter "
		              "ipPermissions or securityGroupRuleIds");
		goto out;
	}
	if (api_dry_run(call))
		goto out;
	for (size_t i = 0; i < by_id.n; i++)
		if ((r = api_rule_remove(call, &by_id.items[i])) != 0) {
			rc = api_res_failed(call, r);
			goto out;
		}
	for (size_t i = 0; i < rules.n; i++) {
		bool known = false;
		for (size_t k = 0; k < have.n && !known; k++)
			known =
			    strcmp(have.items[k].id, rules.items[i].id) == 0;
		if (known) {
			r = api_rule_remove(call, &rules.items[i]);
			if (r) {
				rc = api_res_failed(call, r);
				goto out;
			}
			continue;
		}
		if (unknown.n == unknown.cap) {
			unknown.cap = unknown.cap ? 2 * unknown.cap : 8;
			unknown.items =
			    xrealloc(unknown.items,
			             unknown.cap * sizeof(*unknown.items));
		}
		/* Borrowed strings, as in rules_by_id. */
		unknown.items[unknown.n++] = rules.items[i];
	}
	api_rules_sort(&unknown);
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, call->action, call->version,
	                       call->request_id);
	api_xml_elem(o, "return", "true");
	if (unknown.n)
		api_rules_xml(o, "unknownIpPermissionSet", unknown.items,
		              unknown.n, egress);
	api_xml_response_end(o, call->action);
	rc = 0;
out:
	free(unknown.items);
	free(by_id.items);
	api_rules_free(&have);
	api_rules_free(&rules);
	return rc;
}

int api_action_authorize_security_group_ingress(struct api_call *call)
{
	return authorize_rules(call, false);
}

int api_action_authorize_security_group_egress(struct api_call *call)
{
	return authorize_rules(call, true);
}

int api_action_revoke_security_group_ingress(struct api_call *call)
{
	return revoke_rules(call, false);
}

int api_action_revoke_security_group_egress(struct api_call *call)
{
	return revoke_rules(call, true);
}
