/*
 * From security groups to nftables text. The shape, for each local
 * instance X (chains named after its id):
 *
 *   table inet mallee {
 *     chain forward {               # routed, and bridged via br_netfilter
 *       ct state established,related accept
 *       ip saddr vmap { X : jump out_X, ... }   # egress: return or drop
 *       ip daddr vmap { X : jump in_X, ... }    # ingress: accept or drop
 *     }
 *   }
 *
 * A packet between two local instances passes the sender's egress and
 * then the receiver's ingress. Addresses that are no local instance (the
 * host, other hosts' traffic being routed) are left to other tables.
 *
 * Without br_netfilter, frames between two ports of the bridge never reach
 * the inet hooks, and the bridge family has no conntrack here
 * (nf_conntrack_bridge is not built in). The bridge table then applies the
 * same rules without state, and lets replies through by also accepting each
 * rule reversed (source and destination, and ports, swapped). The limits of
 * that: a TCP reply must not be a bare SYN, so no connection opens the
 * wrong way; but a UDP or ICMP packet to X that looks like a reply to what
 * X may send passes X's ingress (with the default egress rule, any UDP from
 * another local instance). Where br_netfilter exists (this kernel has it
 * built in) the inet table does everything with state and this table is
 * removed.
 */
#include "secgroups.h"

#include "addr.h"
#include "mem.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks on strings that come from records ---- */

static bool is_hex(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* "i-" and hex: the chain names are built from it. */
static bool instance_id_ok(const char *id)
{
	return strncmp(id, "i-", 2) == 0 && is_hex(id + 2);
}

/* Only [A-Za-z0-9-]: group ids go into comments. */
static bool token_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || *s == '-'))
			return false;
	return true;
}

/* A dotted quad, re-printed canonically into out; false if it is none. */
static bool ip_canon(const char *s, char out[16])
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	return inet_ntop(AF_INET, &a, out, 16) != NULL;
}

/* ---- the input, indexed ---- */

struct local {
	const struct peer_sg_instance *in;
	char ip[16];
};

static int local_cmp(const void *a, const void *b)
{
	const struct local *x = a, *y = b;
	struct in_addr ax, ay;
	inet_pton(AF_INET, x->ip, &ax);
	inet_pton(AF_INET, y->ip, &ay);
	uint32_t hx = ntohl(ax.s_addr), hy = ntohl(ay.s_addr);
	if (hx != hy)
		return hx < hy ? -1 : 1;
	return strcmp(x->in->id, y->in->id);
}

static bool in_group(const struct peer_sg_instance *in, const char *account,
                     const char *group)
{
	if (account[0] && strcmp(in->account, account) != 0)
		return false;
	for (size_t i = 0; i < in->n_groups; i++)
		if (strcmp(in->groups[i], group) == 0)
			return true;
	return false;
}

static bool rule_applies(const struct peer_sg_rule *r,
                         const struct peer_sg_instance *in)
{
	return strcmp(r->account, in->account) == 0 &&
	       in_group(in, r->account, r->group);
}

/* ---- one rule's match ---- */

/*
 * Which way a rule is read: for an ingress rule the peer is the source and
 * the ports are the destination's; reversed (a reply to what it allows),
 * the peer is the destination and the ports are the source's.
 */
struct side {
	const char *addr; /* "saddr" or "daddr": where the peer is */
	const char *port; /* "dport" or "sport" */
	bool reply;       /* a reversed rule (bridge fallback only) */
};

/* The peer part: "", "ip saddr 10.0.0.0/8 " or "ip saddr { a, b } ". */
static bool peer_text(const struct peer_sg_input *in,
                      const struct peer_sg_rule *r, const struct side *s,
                      struct mc_buf *out)
{
	if (r->peer == PEER_SG_CIDR) {
		struct mc_cidr c;
		if (mc_cidr_parse(&c, r->target, 0, 32) != 0)
			return false;
		if (c.prefix == 0)
			return true;
		uint32_t a = c.network;
		mc_buf_printf(out, "ip %s %u.%u.%u.%u/%u ", s->addr, a >> 24,
		              (a >> 16) & 255, (a >> 8) & 255, a & 255,
		              c.prefix);
		return true;
	}
	if (r->peer != PEER_SG_GROUP)
		return false;
	/* Every member's address, cloud-wide, itself included (EC2's way). */
	size_t n = 0;
	for (size_t i = 0; i < in->n_instances; i++) {
		const struct peer_sg_instance *m = &in->instances[i];
		char ip[16];
		if (!in_group(m, r->user, r->target) || !ip_canon(m->ip, ip))
			continue;
		if (n == 0)
			mc_buf_printf(out, "ip %s { ", s->addr);
		mc_buf_printf(out, "%s%s", n ? ", " : "", ip);
		n++;
	}
	if (n == 0)
		return false;
	mc_buf_printf(out, " } ");
	return true;
}

/* Appends " ip saddr ... tcp dport 22" lines for r; false when none. */
static bool rule_lines(const struct peer_sg_input *in,
                       const struct peer_sg_rule *r, const struct side *s,
                       const char *verdict, struct mc_buf *out)
{
	struct mc_buf peer;
	mc_buf_init(&peer);
	bool ok = peer_text(in, r, s, &peer);
	char *pt = ok ? mc_buf_strdup(&peer) : NULL;
	mc_buf_free(&peer);
	if (!ok)
		return false;

	const char *p = r->proto;
	bool tcp = strcmp(p, "tcp") == 0, udp = strcmp(p, "udp") == 0;
	char l4[96] = "";
	/* A reply over TCP never opens a connection: no bare SYN. */
	const char *nosyn = " tcp flags & (syn | ack) != syn";
	if (tcp || udp) {
		bool all = r->from < 0 || r->to < 0 ||
		           (r->from == 0 && r->to == 65535);
		if (all)
			snprintf(l4, sizeof(l4), "meta l4proto %s%s", p,
			         s->reply && tcp ? nosyn : "");
		else if (r->from == r->to)
			snprintf(l4, sizeof(l4), "%s %s %d%s", p, s->port,
			         r->from, s->reply && tcp ? nosyn : "");
		else
			snprintf(l4, sizeof(l4), "%s %s %d-%d%s", p, s->port,
			         r->from, r->to, s->reply && tcp ? nosyn : "");
	} else if (strcmp(p, "icmp") == 0) {
		if (s->reply && r->from == 8)
			snprintf(l4, sizeof(l4), "icmp type echo-reply");
		else if (s->reply && r->from >= 0)
			ok = false; /* no reply to other ICMP types */
		else if (r->from < 0)
			snprintf(l4, sizeof(l4), "meta l4proto icmp");
		else if (r->to < 0)
			snprintf(l4, sizeof(l4), "icmp type %d", r->from);
		else
			snprintf(l4, sizeof(l4), "icmp type %d icmp code %d",
			         r->from, r->to);
	} else if (strcmp(p, "-1") == 0) {
		if (s->reply) {
			/* Everything but a new TCP connection: two rules. */
			mc_buf_printf(out, "\t\t%smeta l4proto != tcp %s\n", pt,
			              verdict);
			snprintf(l4, sizeof(l4), "%s", nosyn + 1);
		}
	} else {
		char *end;
		long v = strtol(p, &end, 10);
		if (*p >= '0' && *p <= '9' && !*end && v >= 0 && v <= 255)
			snprintf(l4, sizeof(l4), "meta l4proto %ld", v);
		else
			ok = false; /* icmpv6, or nonsense */
	}
	if (ok) {
		/* "ip saddr X " + "tcp dport 22 " + verdict; the peer part
		 * ends in a space when present. */
		mc_buf_printf(out, "\t\t%s%s%s%s\n", pt, l4, l4[0] ? " " : "",
		              verdict);
	}
	free(pt);
	return ok;
}

/* ---- chains ---- */

static void chain_comment(struct mc_buf *out, const struct local *l)
{
	mc_buf_printf(out, "\t\t# %s %s", l->in->id, l->ip);
	for (size_t g = 0; g < l->in->n_groups; g++)
		if (token_ok(l->in->groups[g]))
			mc_buf_printf(out, " %s", l->in->groups[g]);
	mc_buf_printf(out, "\n");
}

/*
 * One direction's chain for one local instance. The inet chains hold the
 * rules of that direction; the bridge chains (reply == true) also hold the
 * other direction's rules reversed.
 */
static void instance_chain(const struct peer_sg_input *in,
                           const struct local *l, bool egress, bool bridge,
                           struct mc_buf *out, struct peer_sg_counts *c)
{
	static const struct side in_fwd = {"saddr", "dport", false};
	static const struct side out_fwd = {"daddr", "dport", false};
	static const struct side out_reply = {"daddr", "sport", true};
	static const struct side in_reply = {"saddr", "sport", true};
	/* Egress lets the packet on to the receiver's check; ingress ends. */
	const char *verdict = egress ? "return" : "accept";

	mc_buf_printf(out, "\tchain %s_%s {\n", egress ? "out" : "in",
	              l->in->id + 2);
	chain_comment(out, l);
	for (size_t i = 0; i < in->n_rules; i++) {
		const struct peer_sg_rule *r = &in->rules[i];
		if (!rule_applies(r, l->in))
			continue;
		bool ok;
		if (r->egress == egress)
			ok = rule_lines(in, r, egress ? &out_fwd : &in_fwd,
			                verdict, out);
		else if (bridge)
			ok = rule_lines(in, r, egress ? &out_reply : &in_reply,
			                verdict, out);
		else
			continue;
		/* Counted once, in the inet chains. */
		if (!bridge && c) {
			if (ok)
				c->rules++;
			else
				c->skipped++;
		}
	}
	mc_buf_printf(out, "\t\tdrop\n\t}\n");
}

static void dispatch(struct mc_buf *out, const struct local *ls, size_t n,
                     bool egress)
{
	if (n == 0)
		return;
	mc_buf_printf(out, "\t\tip %s vmap { ", egress ? "saddr" : "daddr");
	for (size_t i = 0; i < n; i++)
		mc_buf_printf(out, "%s%s : jump %s_%s", i ? ", " : "", ls[i].ip,
		              egress ? "out" : "in", ls[i].in->id + 2);
	mc_buf_printf(out, " }\n");
}

static void table(const struct peer_sg_input *in, const struct local *ls,
                  size_t n, bool bridge, struct mc_buf *out,
                  struct peer_sg_counts *c)
{
	const char *family = bridge ? "bridge" : "inet";
	/* Adding first makes the delete safe when there is no table yet. */
	mc_buf_printf(out, "table %s " PEER_SG_TABLE "\n", family);
	mc_buf_printf(out, "delete table %s " PEER_SG_TABLE "\n", family);
	mc_buf_printf(out, "table %s " PEER_SG_TABLE " {\n", family);
	mc_buf_printf(out, "\tchain forward {\n"
	                   "\t\ttype filter hook forward priority filter; "
	                   "policy accept;\n");
	if (!bridge)
		mc_buf_printf(out, "\t\tct state established,related accept\n");
	dispatch(out, ls, n, true);
	dispatch(out, ls, n, false);
	mc_buf_printf(out, "\t}\n");
	for (size_t i = 0; i < n; i++) {
		instance_chain(in, &ls[i], true, bridge, out, c);
		instance_chain(in, &ls[i], false, bridge, out, c);
	}
	mc_buf_printf(out, "}\n");
}

void peer_sg_compile(const struct peer_sg_input *in, struct mc_buf *out,
                     struct peer_sg_counts *counts)
{
	struct peer_sg_counts c = {0};
	struct local *ls =
	    xcalloc(in->n_instances ? in->n_instances : 1, sizeof(*ls));
	size_t n = 0;
	for (size_t i = 0; i < in->n_instances; i++) {
		const struct peer_sg_instance *x = &in->instances[i];
		if (!x->local || !instance_id_ok(x->id) ||
		    !ip_canon(x->ip, ls[n].ip))
			continue;
		ls[n++].in = x;
	}
	qsort(ls, n, sizeof(*ls), local_cmp);
	/* One chain pair per address: a stale record sharing it loses. */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (m == 0 || strcmp(ls[m - 1].ip, ls[i].ip) != 0)
			ls[m++] = ls[i];
	c.instances = (unsigned)m;

	table(in, ls, m, false, out, &c);
	if (in->bridge_fallback) {
		table(in, ls, m, true, out, &c);
	} else {
		/* Gone, should an earlier run have needed it. */
		mc_buf_printf(out, "table bridge " PEER_SG_TABLE "\n"
		                   "delete table bridge " PEER_SG_TABLE "\n");
	}
	peer_sg_guard(in, out, &c.guarded);
	free(ls);
	if (counts)
		*counts = c;
}

/* ---- rule records ---- */

static bool get_port(const struct mc_val *m, const char *key, int *out)
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

int peer_sg_rule_decode(const char *record_id, const void *body, size_t len,
                        struct peer_sg_rule *out)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strchr(record_id, ':');
	if (!colon || (size_t)(colon - record_id) >= sizeof(out->account))
		return -EINVAL;
	memcpy(out->account, record_id, (size_t)(colon - record_id));
	struct mc_doc *doc = mc_unpack(body, len);
	if (!doc)
		return -EINVAL;
	const struct mc_val *v = mc_doc_root(doc);
	char peer[16];
	bool ok = mc_get_str(v, "group", out->group, sizeof(out->group)) &&
	          mc_get_bool(v, "egress", &out->egress) &&
	          mc_get_str(v, "proto", out->proto, sizeof(out->proto)) &&
	          get_port(v, "from", &out->from) &&
	          get_port(v, "to", &out->to) &&
	          mc_get_str(v, "peer", peer, sizeof(peer)) &&
	          mc_get_str(v, "target", out->target, sizeof(out->target));
	if (ok && !mc_get_str(v, "user", out->user, sizeof(out->user)))
		out->user[0] = '\0';
	mc_doc_free(doc);
	if (!ok)
		return -EINVAL;
	if (strcmp(peer, "cidr") == 0)
		out->peer = PEER_SG_CIDR;
	else if (strcmp(peer, "group") == 0)
		out->peer = PEER_SG_GROUP;
	else
		out->peer = PEER_SG_OTHER;
	/* A group rule without an owner names the rule's own account. */
	if (out->peer == PEER_SG_GROUP && !out->user[0])
		snprintf(out->user, sizeof(out->user), "%s", out->account);
	return 0;
}
