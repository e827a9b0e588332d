/*
 * The peer's side of the overlay: ovl's datapath (its own threads) driven
 * from the loop. A tick every OVERLAY_TICK_MS reads the membership (an
 * in-memory snapshot, a few hundred bytes per member) and, when the store's
 * change counters of their kinds moved, the slice and public-pool records;
 * then it diffs what the datapath
 * should hold (peers, paths, prefixes) against what it was given and makes
 * only the calls for the difference. A member's tunnel stays while it is
 * suspect and goes when it is dead or has left; one that comes back is
 * added again with its prefixes.
 */
#include "overlay.h"

#include "crypto.h"
#include "gateway_nat.h"
#include "gossip.h"
#include "hostnet.h"
#include "log.h"
#include "mem.h"
#include "net_int.h"
#include "overlay_int.h"
#include "ovl.h"
#include "peer.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OVERLAY_SUB     "overlay"
#define OVERLAY_TICK_MS 1000
#define SLICE_KIND      "slice"
#define SLICE_META      "hostnet-slice"
#define IP_FORWARD      "/proc/sys/net/ipv4/ip_forward"
#define DEFAULT_PREFIX  "0.0.0.0/0"

_Static_assert(OVERLAY_MAX_RELAYS == OVL_VIA_MAX, "one limit on gateways");

/* A peer as the datapath was told of it. */
struct applied_peer {
	char id[17];
	uint8_t pk[32];
	struct sockaddr_storage ep;
	socklen_t ep_len;
	bool paths_set; /* the datapath has the paths below */
	bool direct_ok;
	unsigned n_relays;
	uint8_t relays[OVERLAY_MAX_RELAYS][32];
	bool seen; /* still wanted at this tick */
};

/* A prefix ("10.9.2.0/24") and the key it is routed to. */
struct applied_prefix {
	char cidr[20];
	uint8_t pk[32];
	bool seen;
};

struct slice {
	char cidr[20];
	char host[17];
};

struct peer_overlay {
	struct peer *p;
	struct ovl_dp *dp;
	uv_timer_t tick;
	uint16_t port;

	struct overlay_member *members; /* the last snapshot, self excluded */
	size_t n_members, cap_members;
	int outside; /* index of the outside gateway in members, or -1 */
	char outside_id[17]; /* the same by id ("" for none), for changes */

	struct applied_peer *peers;
	size_t n_peers, cap_peers;
	struct applied_prefix *prefixes;
	size_t n_prefixes, cap_prefixes;

	struct slice *slices;
	size_t n_slices, cap_slices;
	uint64_t slice_changes; /* peer_store_changes at the last read */
	bool slices_read;
	char (*pools)[17]; /* gateways holding a public pool */
	size_t n_pools, cap_pools;
	uint64_t pool_changes;
	bool pools_read;

	uint32_t rule_slice; /* the slice the rule is for; 0: no rule */
	char rule_bridge[16];
	const struct peer_hostnet *told_mtu; /* hostnet that has our MTU */
	bool default_route;
};

static void grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return;
	*cap = *cap ? 2 * *cap : 8;
	*arr = xrealloc(*arr, *cap * size);
}

static void key_hex(const uint8_t pk[32], char out[9])
{
	mc_hex_encode(out, pk, 4);
}

/* ---- membership ---------------------------------------------------------- */

static int read_pool(const struct peer_record *r, void *arg)
{
	struct peer_overlay *o = arg;
	if (r->deleted || strlen(r->id) >= sizeof(*o->pools))
		return 0;
	grow((void **)&o->pools, &o->cap_pools, o->n_pools, sizeof(*o->pools));
	snprintf(o->pools[o->n_pools++], sizeof(*o->pools), "%s", r->id);
	return 0;
}

/* Re-reads which gateways hold a public pool when those records moved. */
static void pools_refresh(struct peer_overlay *o)
{
	uint64_t c = peer_store_changes(o->p->store, PEER_KIND_PUBLIC_POOL);
	if (o->pools_read && c == o->pool_changes)
		return;
	o->n_pools = 0;
	int r = peer_store_list(o->p->store, PEER_KIND_PUBLIC_POOL, false,
	                        read_pool, o);
	if (r) {
		mc_warn(OVERLAY_SUB, "cannot read the public pools: %s",
		        strerror(-r));
		return;
	}
	o->pool_changes = c;
	o->pools_read = true;
}

static bool holds_pool(const struct peer_overlay *o, const char *id)
{
	for (size_t i = 0; i < o->n_pools; i++)
		if (strcmp(o->pools[i], id) == 0)
			return true;
	return false;
}

struct snap {
	struct peer_overlay *o;
	const char *self;
};

static void snap_member(void *arg, const struct gossip_member *m)
{
	struct snap *s = arg;
	struct peer_overlay *o = s->o;
	const struct gossip_node *node = m->node;
	static const uint8_t zero[32];

	if (strcmp(node->id, s->self) == 0 || m->state == GOSSIP_DEAD ||
	    m->state == GOSSIP_LEFT || memcmp(node->box_pk, zero, 32) == 0)
		return;
	grow((void **)&o->members, &o->cap_members, o->n_members,
	     sizeof(*o->members));
	struct overlay_member *x = &o->members[o->n_members++];
	memset(x, 0, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "%s", node->id);
	snprintf(x->name, sizeof(x->name), "%s", node->name);
	snprintf(x->zone, sizeof(x->zone), "%s", node->zone);
	memcpy(x->pk, node->box_pk, 32);
	memcpy(&x->ep, &node->addr.ss, sizeof(x->ep));
	x->ep_len = node->addr.len;
	if (x->ep.ss_family == AF_INET)
		((struct sockaddr_in *)&x->ep)->sin_port = htons(o->port);
	else
		((struct sockaddr_in6 *)&x->ep)->sin6_port = htons(o->port);
	x->alive = true;
	x->gateway = (node->roles & NET_ROLE_GATEWAY) != 0;
	x->pool = x->gateway && holds_pool(o, node->id);
	/* Gossip's probes had a direct answer: so may the tunnel. */
	x->unreached = !m->reached;
}

static struct applied_peer *applied_find(struct peer_overlay *o, const char *id)
{
	for (size_t i = 0; i < o->n_peers; i++)
		if (strcmp(o->peers[i].id, id) == 0)
			return &o->peers[i];
	return NULL;
}

static const struct overlay_member *member_find(const struct peer_overlay *o,
                                                const char *id)
{
	for (size_t i = 0; i < o->n_members; i++)
		if (strcmp(o->members[i].id, id) == 0)
			return &o->members[i];
	return NULL;
}

/* Forgets the prefixes routed to pk: the datapath dropped them with it. */
static void prefixes_forget(struct peer_overlay *o, const uint8_t pk[32])
{
	size_t k = 0;
	for (size_t i = 0; i < o->n_prefixes; i++)
		if (memcmp(o->prefixes[i].pk, pk, 32) != 0)
			o->prefixes[k++] = o->prefixes[i];
	o->n_prefixes = k;
}

static void peers_sync(struct peer_overlay *o)
{
	char ep[64], hex[9];
	for (size_t i = 0; i < o->n_peers; i++)
		o->peers[i].seen = false;
	for (size_t i = 0; i < o->n_members; i++) {
		const struct overlay_member *m = &o->members[i];
		struct applied_peer *a = applied_find(o, m->id);
		if (a && memcmp(a->pk, m->pk, 32) != 0) {
			/* A new key under the same id: a new tunnel. */
			ovl_dp_remove_peer(o->dp, a->pk);
			prefixes_forget(o, a->pk);
			*a = o->peers[--o->n_peers];
			a = NULL;
		}
		if (a && a->ep_len == m->ep_len &&
		    memcmp(&a->ep, &m->ep, m->ep_len) == 0) {
			a->seen = true;
			continue;
		}
		int r = ovl_dp_add_peer(
		    o->dp, m->pk, (const struct sockaddr *)&m->ep, m->ep_len);
		struct mc_addr addr = {.ss = m->ep, .len = m->ep_len};
		mc_addr_format(&addr, ep, sizeof(ep));
		if (r) {
			mc_warn(OVERLAY_SUB, "cannot add peer %s (%s): %s",
			        m->name, ep, strerror(-r));
			continue;
		}
		key_hex(m->pk, hex);
		mc_info(OVERLAY_SUB, "peer %s (%s) at %s, key %s...", m->name,
		        m->id, ep, hex);
		if (!a) {
			grow((void **)&o->peers, &o->cap_peers, o->n_peers,
			     sizeof(*o->peers));
			a = &o->peers[o->n_peers++];
			memset(a, 0, sizeof(*a));
			snprintf(a->id, sizeof(a->id), "%s", m->id);
			memcpy(a->pk, m->pk, 32);
		}
		a->ep = m->ep;
		a->ep_len = m->ep_len;
		a->seen = true;
		a->paths_set = false;
	}
	for (size_t i = 0; i < o->n_peers;) {
		struct applied_peer *a = &o->peers[i];
		if (a->seen) {
			i++;
			continue;
		}
		mc_info(OVERLAY_SUB, "peer %s gone: tunnel removed", a->id);
		ovl_dp_remove_peer(o->dp, a->pk);
		prefixes_forget(o, a->pk);
		*a = o->peers[--o->n_peers];
	}
}

/* Gives the datapath each peer's ways (direct, then gateways) on change. */
static void paths_sync(struct peer_overlay *o)
{
	for (size_t i = 0; i < o->n_members; i++) {
		const struct overlay_member *m = &o->members[i];
		struct applied_peer *a = applied_find(o, m->id);
		if (!a)
			continue;
		uint8_t relays[OVERLAY_MAX_RELAYS][32];
		for (unsigned k = 0; k < m->n_relays; k++)
			memcpy(relays[k], o->members[m->relays[k]].pk, 32);
		/* Unreached and no gateway: direct is all there is. */
		bool direct_ok = !m->unreached || m->n_relays == 0;
		if (a->paths_set && a->direct_ok == direct_ok &&
		    a->n_relays == m->n_relays &&
		    memcmp(a->relays, relays, m->n_relays * 32) == 0)
			continue;
		int r = ovl_dp_set_paths(
		    o->dp, m->pk, direct_ok,
		    (const uint8_t(*)[OVL_KEY_BYTES])relays, m->n_relays);
		if (r) {
			mc_warn(OVERLAY_SUB, "cannot set the paths to %s: %s",
			        m->name, strerror(-r));
			continue;
		}
		a->paths_set = true;
		a->direct_ok = direct_ok;
		a->n_relays = m->n_relays;
		memcpy(a->relays, relays, m->n_relays * 32);
		if (m->n_relays)
			mc_info(OVERLAY_SUB,
			        "%s: %sthrough %u gateway(s), %s first",
			        m->name, direct_ok ? "direct, then " : "",
			        m->n_relays, o->members[m->relays[0]].name);
		else
			mc_info(OVERLAY_SUB, "%s: direct", m->name);
	}
}

/* ---- prefixes ------------------------------------------------------------ */

static int read_slice(const struct peer_record *r, void *arg)
{
	struct peer_overlay *o = arg;
	struct in_addr a;
	char host[17] = "";
	if (r->deleted || inet_pton(AF_INET, r->id, &a) != 1)
		return 0;
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	bool ok =
	    doc && mc_get_str(mc_doc_root(doc), "host", host, sizeof(host));
	mc_doc_free(doc);
	if (!ok || !host[0])
		return 0;
	grow((void **)&o->slices, &o->cap_slices, o->n_slices,
	     sizeof(*o->slices));
	struct slice *s = &o->slices[o->n_slices++];
	snprintf(s->cidr, sizeof(s->cidr), "%s/24", r->id);
	snprintf(s->host, sizeof(s->host), "%s", host);
	return 0;
}

/* Re-reads the slice records when they moved since the last read. */
static void slices_refresh(struct peer_overlay *o)
{
	uint64_t c = peer_store_changes(o->p->store, SLICE_KIND);
	if (o->slices_read && c == o->slice_changes)
		return;
	o->n_slices = 0;
	int r = peer_store_list(o->p->store, SLICE_KIND, false, read_slice, o);
	if (r) {
		mc_warn(OVERLAY_SUB, "cannot read the slices: %s",
		        strerror(-r));
		return;
	}
	o->slice_changes = c;
	o->slices_read = true;
}

static void want_prefix(struct peer_overlay *o, const char *cidr,
                        const uint8_t pk[32], const char *to)
{
	for (size_t i = 0; i < o->n_prefixes; i++) {
		struct applied_prefix *x = &o->prefixes[i];
		if (strcmp(x->cidr, cidr) != 0)
			continue;
		if (memcmp(x->pk, pk, 32) == 0) {
			x->seen = true;
			return;
		}
		/* Moved to another peer: add replaces the route. */
		int r = ovl_dp_add_prefix(o->dp, pk, cidr);
		if (r == 0) {
			memcpy(x->pk, pk, 32);
			x->seen = true;
			mc_info(OVERLAY_SUB, "%s now to %s", cidr, to);
		}
		return;
	}
	int r = ovl_dp_add_prefix(o->dp, pk, cidr);
	if (r) {
		mc_warn(OVERLAY_SUB, "cannot route %s to %s: %s", cidr, to,
		        strerror(-r));
		return;
	}
	mc_info(OVERLAY_SUB, "%s to %s", cidr, to);
	grow((void **)&o->prefixes, &o->cap_prefixes, o->n_prefixes,
	     sizeof(*o->prefixes));
	struct applied_prefix *x = &o->prefixes[o->n_prefixes++];
	snprintf(x->cidr, sizeof(x->cidr), "%s", cidr);
	memcpy(x->pk, pk, 32);
	x->seen = true;
}

static void prefixes_sync(struct peer_overlay *o)
{
	const char *self = o->p->id;
	for (size_t i = 0; i < o->n_prefixes; i++)
		o->prefixes[i].seen = false;
	for (size_t i = 0; i < o->n_slices; i++) {
		const struct slice *s = &o->slices[i];
		/* This host's own slice stays on its bridge. */
		if (strcmp(s->host, self) == 0)
			continue;
		const struct overlay_member *m = member_find(o, s->host);
		if (m)
			want_prefix(o, s->cidr, m->pk, m->name);
	}
	if (o->outside >= 0)
		want_prefix(o, DEFAULT_PREFIX, o->members[o->outside].pk,
		            o->members[o->outside].name);
	for (size_t i = 0; i < o->n_prefixes;) {
		struct applied_prefix *x = &o->prefixes[i];
		if (x->seen) {
			i++;
			continue;
		}
		ovl_dp_remove_prefix(o->dp, x->cidr);
		mc_info(OVERLAY_SUB, "%s: no longer routed", x->cidr);
		*x = o->prefixes[--o->n_prefixes];
	}
}

/* ---- this host's instances ----------------------------------------------- */

/*
 * With host networking up: the MTU for DHCP, and the rule that takes what
 * the slice's instances send off-host to the overlay's table.
 */
static void hostnet_sync(struct peer_overlay *o)
{
	struct peer *p = o->p;
	if (!p->hostnet) {
		o->told_mtu = NULL;
		return;
	}
	if (o->told_mtu != p->hostnet) {
		peer_hostnet_set_mtu(p, ovl_dp_mtu(o->dp));
		o->told_mtu = p->hostnet;
	}
	/* A gateway's own instances go out through its own routes. */
	if (p->cfg.gateway)
		return;
	char text[20];
	struct in_addr a;
	if (peer_store_meta_get(p->store, SLICE_META, text, sizeof(text)) ||
	    inet_pton(AF_INET, text, &a) != 1)
		return;
	uint32_t slice = ntohl(a.s_addr);
	const char *bridge = peer_hostnet_bridge(p);
	if (slice == o->rule_slice && strcmp(bridge, o->rule_bridge) == 0)
		return;
	if (!o->default_route) {
		int r = overlay_link_default(OVERLAY_IFNAME);
		if (r) {
			mc_warn(OVERLAY_SUB, "no default route in table %u: %s",
			        OVERLAY_TABLE, strerror(-r));
			return;
		}
		o->default_route = true;
	}
	if (o->rule_slice)
		overlay_link_rule(o->rule_slice, o->rule_bridge, false);
	int r = overlay_link_rule(slice, bridge, true);
	if (r) {
		mc_warn(OVERLAY_SUB, "no rule for %s/24: %s", text,
		        strerror(-r));
		o->rule_slice = 0;
		return;
	}
	o->rule_slice = slice;
	snprintf(o->rule_bridge, sizeof(o->rule_bridge), "%s", bridge);
	mc_info(OVERLAY_SUB,
	        "%s/24 from %s: off-host traffic into %s (table %u)", text,
	        bridge, OVERLAY_IFNAME, OVERLAY_TABLE);
}

static void on_tick(uv_timer_t *t)
{
	struct peer_overlay *o = t->data;
	struct peer *p = o->p;
	if (!p->net)
		return;
	pools_refresh(o);
	o->n_members = 0;
	struct snap s = {.o = o, .self = p->id};
	gossip_members_foreach(peer_net_gossip(p->net), snap_member, &s);
	int outside =
	    overlay_plan(o->members, o->n_members, p->cfg.zone, p->cfg.gateway);
	const char *out_id = outside >= 0 ? o->members[outside].id : "";
	if (strcmp(out_id, o->outside_id) != 0)
		mc_info(OVERLAY_SUB, "outside traffic: %s",
		        outside >= 0 ? o->members[outside].name
		                     : "no gateway in this zone");
	snprintf(o->outside_id, sizeof(o->outside_id), "%s", out_id);
	o->outside = outside;
	peers_sync(o);
	paths_sync(o);
	slices_refresh(o);
	prefixes_sync(o);
	hostnet_sync(o);
}

/* ---- start and stop ------------------------------------------------------ */

static void forwarding_on(void)
{
	char was = '?';
	FILE *f = fopen(IP_FORWARD, "r+");
	if (!f) {
		mc_warn(OVERLAY_SUB, "cannot open %s: %s", IP_FORWARD,
		        strerror(errno));
		return;
	}
	if (fread(&was, 1, 1, f) == 1 && was == '1') {
		fclose(f);
		mc_info(OVERLAY_SUB, "IPv4 forwarding already on");
		return;
	}
	rewind(f);
	bool ok = fputs("1\n", f) >= 0;
	ok = (fclose(f) == 0) && ok;
	if (ok)
		mc_info(OVERLAY_SUB, "IPv4 forwarding on (was %c)", was);
	else
		mc_warn(OVERLAY_SUB, "cannot turn IPv4 forwarding on");
}

/* The UDP address: --listen's IP when it names one, else any. */
static void listen_addr(const struct peer *p, uint16_t port,
                        struct sockaddr_storage *out)
{
	struct mc_addr a;
	memset(out, 0, sizeof(*out));
	if (mc_addr_parse(&a, p->cfg.listen, PEER_DEFAULT_GOSSIP_PORT) == 0 &&
	    !mc_addr_is_any(&a)) {
		*out = a.ss;
	} else {
		out->ss_family = AF_INET;
	}
	if (out->ss_family == AF_INET6)
		((struct sockaddr_in6 *)out)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)out)->sin_port = htons(port);
}

int peer_overlay_start(struct peer *p)
{
	if (p->overlay)
		return 0;
	if (strcmp(p->cfg.overlay, "off") == 0)
		return 0;
	struct peer_overlay *o = xcalloc(1, sizeof(*o));
	o->p = p;
	o->outside = -1;
	o->port = p->cfg.tunnel_port ? (uint16_t)p->cfg.tunnel_port
	                             : PEER_DEFAULT_TUNNEL_PORT;
	struct ovl_dp_config c = {.ifname = OVERLAY_IFNAME};
	memcpy(c.secret_key, p->identity.box_sk, OVL_KEY_BYTES);
	listen_addr(p, o->port, &c.listen);
	int err = 0;
	o->dp = ovl_dp_start(&c, &err);
	mc_wipe(c.secret_key, sizeof(c.secret_key));
	if (!o->dp) {
		mc_error(OVERLAY_SUB,
		         "cannot start the overlay (%s, UDP port %u): %s; "
		         "instances here reach only this host",
		         OVERLAY_IFNAME, o->port, strerror(-err));
		free(o);
		return err ? err : -EIO;
	}
	if (p->cfg.gateway)
		ovl_dp_set_relay(o->dp, true);
	int r = ovl_dp_add_route(o->dp, p->cidr);
	if (r && r != -EEXIST)
		mc_warn(OVERLAY_SUB, "cannot route %s into %s: %s", p->cidr,
		        OVERLAY_IFNAME, strerror(-r));
	forwarding_on();
	uv_timer_init(p->loop, &o->tick);
	o->tick.data = o;
	uv_timer_start(&o->tick, on_tick, 0, OVERLAY_TICK_MS);
	p->overlay = o;
	mc_info(OVERLAY_SUB, "%s: MTU %u, UDP port %u, %s routed into it",
	        OVERLAY_IFNAME, ovl_dp_mtu(o->dp), o->port, p->cidr);
	return 0;
}

static void closed(uv_handle_t *h)
{
	struct peer_overlay *o = h->data;
	free(o->members);
	free(o->peers);
	free(o->prefixes);
	free(o->slices);
	free(o->pools);
	free(o);
}

void peer_overlay_stop(struct peer *p)
{
	struct peer_overlay *o = p->overlay;
	if (!o)
		return;
	p->overlay = NULL;
	if (o->rule_slice)
		overlay_link_rule(o->rule_slice, o->rule_bridge, false);
	ovl_dp_stop(o->dp); /* the TUN and its routes go with it */
	o->dp = NULL;
	uv_close((uv_handle_t *)&o->tick, closed);
}

const char *peer_overlay_ifname(struct peer *p)
{
	return p->overlay ? OVERLAY_IFNAME : NULL;
}

/* ---- status -------------------------------------------------------------- */

static void pack_counters(struct mc_buf *b, const struct ovl_counters *c)
{
	mc_pack_str(b, "counters");
	mc_pack_map(b, 11);
	mc_pack_kv_uint(b, "rx_packets", c->rx_packets);
	mc_pack_kv_uint(b, "rx_bytes", c->rx_bytes);
	mc_pack_kv_uint(b, "tx_packets", c->tx_packets);
	mc_pack_kv_uint(b, "tx_bytes", c->tx_bytes);
	mc_pack_kv_uint(b, "handshakes_sent", c->handshakes_sent);
	mc_pack_kv_uint(b, "handshakes_done", c->handshakes_done);
	mc_pack_kv_uint(b, "relayed_packets", c->relayed_packets);
	mc_pack_kv_uint(b, "relayed_bytes", c->relayed_bytes);
	mc_pack_kv_uint(b, "path_changes", c->path_changes);
	mc_pack_kv_uint(b, "keepalives_sent", c->keepalives_sent);
	mc_pack_str(b, "dropped");
	mc_pack_map(b, OVL_DROP_MAX);
	for (int i = 0; i < OVL_DROP_MAX; i++)
		mc_pack_kv_uint(b, ovl_drop_name((enum ovl_drop)i),
		                c->drops[i]);
}

static void pack_peer(struct peer_overlay *o, struct mc_buf *b,
                      const struct applied_peer *a)
{
	const struct overlay_member *m = member_find(o, a->id);
	char ep[64], path[80];
	if (ovl_dp_peer_path(o->dp, a->pk, path, sizeof(path)) != 0)
		snprintf(path, sizeof(path), "none");
	struct mc_addr addr = {.ss = a->ep, .len = a->ep_len};
	mc_addr_format(&addr, ep, sizeof(ep));
	unsigned n = 0;
	for (size_t i = 0; i < o->n_prefixes; i++)
		n += memcmp(o->prefixes[i].pk, a->pk, 32) == 0;
	mc_pack_map(b, 7);
	mc_pack_kv_str(b, "id", a->id);
	mc_pack_kv_str(b, "name", m ? m->name : "");
	mc_pack_kv_str(b, "endpoint", ep);
	mc_pack_kv_str(b, "path", path);
	mc_pack_kv_bool(b, "direct_ok", a->direct_ok);
	mc_pack_str(b, "via");
	mc_pack_array(b, m ? m->n_relays : 0);
	for (unsigned k = 0; m && k < m->n_relays; k++)
		mc_pack_str(b, o->members[m->relays[k]].id);
	mc_pack_str(b, "prefixes");
	mc_pack_array(b, n);
	for (size_t i = 0; i < o->n_prefixes; i++)
		if (memcmp(o->prefixes[i].pk, a->pk, 32) == 0)
			mc_pack_str(b, o->prefixes[i].cidr);
}

void peer_overlay_pack_status(struct peer *p, struct mc_buf *b)
{
	struct peer_overlay *o = p->overlay;
	mc_pack_str(b, "overlay");
	if (!o) {
		mc_pack_map(b, 2);
		mc_pack_kv_bool(b, "running", false);
		mc_pack_kv_str(b, "mode", p->cfg.overlay);
		return;
	}
	struct ovl_counters c;
	ovl_dp_counters(o->dp, &c);
	mc_pack_map(b, 7);
	mc_pack_kv_bool(b, "running", true);
	mc_pack_kv_str(b, "ifname", OVERLAY_IFNAME);
	mc_pack_kv_uint(b, "mtu", ovl_dp_mtu(o->dp));
	mc_pack_kv_uint(b, "port", o->port);
	mc_pack_kv_str(b, "outside_gateway",
	               o->outside >= 0 ? o->members[o->outside].id : "");
	mc_pack_str(b, "peers");
	mc_pack_array(b, (uint32_t)o->n_peers);
	for (size_t i = 0; i < o->n_peers; i++)
		pack_peer(o, b, &o->peers[i]);
	pack_counters(b, &c);
}
