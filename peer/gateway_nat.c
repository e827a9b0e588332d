/*
 * NAT on gateway peers (see gateway_nat.h). The applier follows the
 * records as secgroups.c does: a timer reads the store's change counters of
 * addresses and instances every NAT_TICK_MS, and once they moved and held
 * still for a tick the table is rebuilt from the records, applied when its
 * text differs from the last one applied, and the elastic IPs on the public
 * interface are brought in step (added before the table names them,
 * removed after). Addresses go
 * through hostnet_link.c (libnl), rulesets through secgroups_nft.c
 * (libnftables): this file includes neither library. The pool parser
 * and the compiler, which need none of this, are gateway_nat_compile.c.
 */
#include "gateway_nat.h"
#include "gateway_nat_int.h"

#include "hostnet_int.h"
#include "instance.h"
#include "log.h"
#include "mem.h"
#include "overlay.h"
#include "peer.h"
#include "secgroups.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAT_SUB        "gateway"
#define NAT_TICK_MS    200
#define NAT_SETTLE_MAX 1000 /* rebuild at least this often while busy */
#define NAT_RETRY_MS   5000 /* after the kernel refused a change */
#define NAT_FORWARD    "/proc/sys/net/ipv4/ip_forward"
#define NAT_ROUTES     "/proc/net/route"

struct peer_gateway_nat {
	struct peer *p;
	uv_timer_t tick;
	struct peer_sg_nft *nft;
	char ifname[IF_NAMESIZE];
	int ifindex;
	uint32_t first, last; /* the pool; first > last: none */
	uint32_t cloud_net;
	uint8_t cloud_prefix;
	uint64_t changes; /* of the kinds read, at the last tick */
	bool pending;     /* records changed since the last rebuild */
	uint64_t since;   /* when pending began (loop ms) */
	uint64_t retry_at;
	char *applied;             /* the text in the kernel, or NULL */
	struct peer_nat_eip *held; /* forwarded now, sorted by public_ip */
	size_t n_held;
	struct peer_nat_stats stats;
};

/* ---- the public interface ---- */

/* An IPv4 entry of getifaddrs(): its address and netmask, host byte
 * order; false for any other entry. */
static bool ipv4_entry(const struct ifaddrs *i, uint32_t *addr, uint32_t *mask)
{
	if (!i->ifa_addr || !i->ifa_netmask ||
	    i->ifa_addr->sa_family != AF_INET)
		return false;
	*addr = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
	*mask = ntohl(((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
	return true;
}

/*
 * The interface with an address (not a /32: those may be elastic IPs
 * left from an earlier run) whose subnet holds ip, into out; false when
 * none.
 */
static bool interface_for(uint32_t ip, char out[IF_NAMESIZE])
{
	struct ifaddrs *ifs;
	bool found = false;
	if (getifaddrs(&ifs) != 0)
		return false;
	for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
		uint32_t a, m;
		if (!ipv4_entry(i, &a, &m))
			continue;
		if (m != 0xffffffffu && (a & m) == (ip & m)) {
			snprintf(out, IF_NAMESIZE, "%s", i->ifa_name);
			found = true;
		}
	}
	freeifaddrs(ifs);
	return found;
}

/* The first address of ifname that is not a /32 (its own, not an elastic
 * IP), host byte order; 0 when it has none. */
static uint32_t interface_address(const char *ifname)
{
	struct ifaddrs *ifs;
	uint32_t found = 0;
	if (getifaddrs(&ifs) != 0)
		return 0;
	for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
		uint32_t a, m;
		if (ipv4_entry(i, &a, &m) && strcmp(i->ifa_name, ifname) == 0 &&
		    m != 0xffffffffu)
			found = a;
	}
	freeifaddrs(ifs);
	return found;
}

/* The /32 addresses of the pool on ifname now (held from an earlier run
 * or by us); *n of them, the array owned by the caller. */
static uint32_t *pool_addresses_on(const struct peer_gateway_nat *g, size_t *n)
{
	struct ifaddrs *ifs;
	uint32_t *out = NULL;
	size_t cap = 0;
	*n = 0;
	if (getifaddrs(&ifs) != 0)
		return NULL;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		uint32_t a, m;
		if (!ipv4_entry(i, &a, &m) ||
		    strcmp(i->ifa_name, g->ifname) != 0 || m != 0xffffffffu ||
		    a < g->first || a > g->last)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			out = xrealloc(out, cap * sizeof(*out));
		}
		out[(*n)++] = a;
	}
	freeifaddrs(ifs);
	return out;
}

/*
 * The device of the main table's most specific route to ip, into out
 * ("" when there is none): how the applier tells that a private address
 * is reachable, through the overlay's TUN (its route for the cloud's
 * CIDR) or the bridge of this host for its own instances.
 */
static void route_device(uint32_t ip, char out[IF_NAMESIZE])
{
	FILE *f = fopen(NAT_ROUTES, "r");
	char line[256], dev[IF_NAMESIZE + 1];
	unsigned dst, gw, flags, refcnt, use, metric, mask;
	int best = -1;
	out[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%16s %x %x %x %u %u %u %x", dev, &dst, &gw,
		           &flags, &refcnt, &use, &metric, &mask) != 8 ||
		    !(flags & 1 /* RTF_UP */))
			continue;
		/* The file's words are in network byte order. */
		uint32_t d = ntohl(dst), m = ntohl(mask);
		int len = __builtin_popcount(m);
		if ((ip & m) == d && len > best) {
			best = len;
			snprintf(out, IF_NAMESIZE, "%s", dev);
		}
	}
	fclose(f);
}

/* ---- gathering the elastic IPs ---- */

struct gather {
	struct peer_gateway_nat *g;
	struct peer_nat_eip *eips;
	size_t n, cap;
	unsigned skipped;
};

/*
 * Whether instance ACCOUNT:instance_id still holds private_ip: its record
 * is live, in a state that holds its address, and names that address (a
 * terminated instance's address may be another's by now).
 */
static bool instance_holds(struct peer *p, const char *account,
                           const char *instance_id, const char *private_ip)
{
	char id[64];
	struct peer_record r;
	struct mc_instance in;
	snprintf(id, sizeof(id), "%s:%s", account, instance_id);
	if (peer_store_get(p->store, MC_INSTANCE_KIND, id, &r) != 0)
		return false;
	bool live =
	    !r.deleted && mc_instance_unpack(r.body, r.body_len, &in) == 0;
	peer_record_clear(&r);
	if (!live)
		return false;
	bool holds = mc_instance_holds_capacity(in.state) &&
	             in.state != MC_INST_SHUTTING_DOWN &&
	             strcmp(in.private_ip, private_ip) == 0;
	mc_instance_clear(&in);
	return holds;
}

static int gather_address(const struct peer_record *r, void *arg)
{
	struct gather *ga = arg;
	struct peer_gateway_nat *g = ga->g;
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	char pool[PEER_ID_HEX_LEN + 1], pub[INET_ADDRSTRLEN];
	char priv[INET_ADDRSTRLEN], inst[20], assoc[32], account[16];
	struct peer_nat_eip e = {0};
	const char *colon = strchr(r->id, ':');
	if (!v || !mc_get_str(v, "pool_peer", pool, sizeof(pool)) ||
	    strcmp(pool, g->p->id) != 0)
		goto out; /* another gateway's */
	if (!mc_get_str(v, "association_id", assoc, sizeof(assoc)) ||
	    !assoc[0] || !mc_get_str(v, "instance_id", inst, sizeof(inst)) ||
	    !inst[0])
		goto out; /* allocated, not associated */
	if (!colon || (size_t)(colon - r->id) >= sizeof(account) ||
	    !mc_get_str(v, "public_ip", pub, sizeof(pub)) ||
	    !mc_get_str(v, "private_ip", priv, sizeof(priv)) ||
	    !peer_gateway_ip_parse(pub, &e.public_ip) ||
	    !peer_gateway_ip_parse(priv, &e.private_ip)) {
		mc_warn(NAT_SUB, "address %s: unreadable record, skipped",
		        r->id);
		ga->skipped++;
		goto out;
	}
	memcpy(account, r->id, (size_t)(colon - r->id));
	account[colon - r->id] = '\0';
	if (e.public_ip < g->first || e.public_ip > g->last ||
	    !peer_gateway_in_net(e.private_ip, g->cloud_net, g->cloud_prefix)) {
		mc_debug(NAT_SUB,
		         "address %s: %s -> %s is outside the pool "
		         "or the cloud, skipped",
		         r->id, pub, priv);
		ga->skipped++;
		goto out;
	}
	if (!instance_holds(g->p, account, inst, priv)) {
		ga->skipped++; /* its instance is gone or going */
		goto out;
	}
	snprintf(e.instance_id, sizeof(e.instance_id), "%s", inst);
	if (ga->n == ga->cap) {
		ga->cap = ga->cap ? 2 * ga->cap : 16;
		ga->eips = xrealloc(ga->eips, ga->cap * sizeof(*ga->eips));
	}
	ga->eips[ga->n++] = e;
out:
	mc_doc_free(doc);
	return 0;
}

static int eip_cmp(const void *a, const void *b)
{
	const struct peer_nat_eip *x = a, *y = b;
	if (x->public_ip != y->public_ip)
		return x->public_ip < y->public_ip ? -1 : 1;
	return strcmp(x->instance_id, y->instance_id);
}

/*
 * Sorts and drops what cannot be forwarded twice: a second record for one
 * public address (two edges that raced for a claim) or for one private
 * address (each instance has one elastic IP; SNAT needs one answer).
 */
static void gather_settle(struct gather *ga)
{
	if (ga->n)
		qsort(ga->eips, ga->n, sizeof(*ga->eips), eip_cmp);
	size_t k = 0;
	for (size_t i = 0; i < ga->n; i++) {
		bool dup =
		    k && ga->eips[k - 1].public_ip == ga->eips[i].public_ip;
		for (size_t j = 0; j < k && !dup; j++)
			dup = ga->eips[j].private_ip == ga->eips[i].private_ip;
		if (dup) {
			char a[INET_ADDRSTRLEN];
			peer_gateway_ip_format(ga->eips[i].public_ip, a);
			mc_warn(NAT_SUB,
			        "elastic IP %s for %s conflicts with "
			        "another association, skipped",
			        a, ga->eips[i].instance_id);
			ga->skipped++;
			continue;
		}
		ga->eips[k++] = ga->eips[i];
	}
	ga->n = k;
}

/* ---- applying ---- */

static const struct peer_nat_eip *find_eip(const struct peer_nat_eip *v,
                                           size_t n, uint32_t public_ip)
{
	struct peer_nat_eip key = {.public_ip = public_ip};
	size_t lo = 0, hi = n;
	while (lo < hi) { /* by public_ip alone: they are unique */
		size_t mid = (lo + hi) / 2;
		if (v[mid].public_ip == key.public_ip)
			return &v[mid];
		if (v[mid].public_ip < key.public_ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Adds the addresses of want that are not on the interface yet. */
static int addresses_add(struct peer_gateway_nat *g,
                         const struct peer_nat_eip *want, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		int r = peer_link_addr_add(g->ifindex, want[i].public_ip, 32);
		if (r) {
			char a[INET_ADDRSTRLEN];
			peer_gateway_ip_format(want[i].public_ip, a);
			mc_error(NAT_SUB, "cannot put %s/32 on %s: %s", a,
			         g->ifname, strerror(-r));
			rc = r;
		}
	}
	return rc;
}

/* Removes the pool's /32 addresses on the interface that want lacks. */
static void addresses_prune(struct peer_gateway_nat *g,
                            const struct peer_nat_eip *want, size_t n)
{
	size_t n_on;
	uint32_t *on = pool_addresses_on(g, &n_on);
	for (size_t i = 0; i < n_on; i++) {
		if (find_eip(want, n, on[i]))
			continue;
		int r = peer_link_addr_del(g->ifindex, on[i], 32);
		if (r) {
			char a[INET_ADDRSTRLEN];
			peer_gateway_ip_format(on[i], a);
			mc_error(NAT_SUB, "cannot take %s/32 off %s: %s", a,
			         g->ifname, strerror(-r));
		}
	}
	free(on);
}

/* One log line per elastic IP that came, went or moved. */
static void log_changes(struct peer_gateway_nat *g,
                        const struct peer_nat_eip *now, size_t n)
{
	char pub[INET_ADDRSTRLEN], priv[INET_ADDRSTRLEN], dev[IF_NAMESIZE];
	for (size_t i = 0; i < g->n_held; i++) {
		const struct peer_nat_eip *was = &g->held[i];
		const struct peer_nat_eip *is =
		    find_eip(now, n, was->public_ip);
		if (is && is->private_ip == was->private_ip)
			continue;
		peer_gateway_ip_format(was->public_ip, pub);
		peer_gateway_ip_format(was->private_ip, priv);
		mc_info(NAT_SUB, "elastic IP %s no longer forwarded to %s (%s)",
		        pub, priv, was->instance_id);
	}
	for (size_t i = 0; i < n; i++) {
		const struct peer_nat_eip *was =
		    find_eip(g->held, g->n_held, now[i].public_ip);
		if (was && was->private_ip == now[i].private_ip)
			continue;
		peer_gateway_ip_format(now[i].public_ip, pub);
		peer_gateway_ip_format(now[i].private_ip, priv);
		route_device(now[i].private_ip, dev);
		if (!dev[0] || strcmp(dev, g->ifname) == 0)
			mc_warn(NAT_SUB,
			        "elastic IP %s forwarded to %s (%s), "
			        "but no route leads there: is the overlay up?",
			        pub, priv, now[i].instance_id);
		else
			mc_info(
			    NAT_SUB,
			    "elastic IP %s forwarded to %s (%s) "
			    "via %s%s",
			    pub, priv, now[i].instance_id, dev,
			    peer_overlay_ifname(g->p) &&
			            strcmp(dev, peer_overlay_ifname(g->p)) == 0
			        ? " (the overlay)"
			        : "");
	}
}

static void rebuild(struct peer_gateway_nat *g)
{
	struct peer *p = g->p;
	struct gather ga = {.g = g};
	char *text = NULL;
	int r = 0;
	if (g->first <= g->last)
		r = peer_store_list(p->store, PEER_KIND_ADDRESS, false,
		                    gather_address, &ga);
	if (r) {
		mc_warn(NAT_SUB, "cannot read the records: %s", strerror(-r));
		g->pending = true;
		goto out;
	}
	gather_settle(&ga);
	struct peer_nat_input in = {
	    .ifname = g->ifname,
	    .cloud_net = g->cloud_net,
	    .cloud_prefix = g->cloud_prefix,
	    .eips = ga.eips,
	    .n_eips = ga.n,
	    .public_addr = g->ifname[0] ? interface_address(g->ifname) : 0,
	};
	struct mc_buf b;
	mc_buf_init(&b);
	r = peer_gateway_nat_compile(&in, &b);
	text = mc_buf_strdup(&b);
	mc_buf_free(&b);
	if (r)
		goto out; /* the interface was checked at start */
	/* Addresses first: a DNAT for an address nobody answers ARP for
	 * would only drop what arrives. */
	bool changed = !g->applied || strcmp(g->applied, text) != 0;
	if (addresses_add(g, ga.eips, ga.n))
		g->stats.failures++;
	char err[512];
	if (changed && peer_sg_nft_run(g->nft, text, err, sizeof(err)) != 0) {
		g->stats.failures++;
		mc_error(NAT_SUB, "ruleset refused (%zu elastic IPs): %s", ga.n,
		         err);
		g->pending = true;
		g->retry_at = uv_now(p->loop) + NAT_RETRY_MS;
		goto out;
	}
	addresses_prune(g, ga.eips, ga.n);
	log_changes(g, ga.eips, ga.n);
	if (changed) {
		free(g->applied);
		g->applied = text;
		text = NULL;
		g->stats.applies++;
		mc_info(NAT_SUB,
		        "applied: %zu elastic IPs (%u records skipped), "
		        "masquerade %s out %s",
		        ga.n, ga.skipped, p->cidr, g->ifname);
	}
	free(g->held);
	g->held = ga.eips;
	g->n_held = ga.n;
	ga.eips = NULL;
	g->stats.eips = (unsigned)ga.n;
	g->stats.skipped = ga.skipped;
out:
	free(text);
	free(ga.eips);
}

static void on_tick(uv_timer_t *t)
{
	struct peer_gateway_nat *g = t->data;
	uint64_t now = uv_now(g->p->loop);
	uint64_t c = peer_store_changes(g->p->store, PEER_KIND_ADDRESS) +
	             peer_store_changes(g->p->store, MC_INSTANCE_KIND);
	if (c != g->changes) {
		g->changes = c;
		if (!g->pending)
			g->since = now;
		g->pending = true;
		/* Wait for the records to hold still, but not forever. */
		if (now - g->since < NAT_SETTLE_MAX)
			return;
	}
	if (!g->pending || now < g->retry_at)
		return;
	g->pending = false;
	g->retry_at = 0;
	rebuild(g);
}

/* ---- start and stop ---- */

/* Writes this peer's pool record when it differs from the stored one;
 * deletes the record when there is no pool. */
static int pool_record_sync(struct peer *p, const char *pool_text,
                            uint32_t first, uint32_t last)
{
	struct peer_record old;
	bool have =
	    peer_store_get(p->store, PEER_KIND_PUBLIC_POOL, p->id, &old) == 0;
	bool live = have && !old.deleted;
	if (!pool_text[0]) {
		if (have)
			peer_record_clear(&old);
		if (!live)
			return 0;
		mc_info(NAT_SUB,
		        "no --public-pool: this peer's pool withdrawn");
		return peer_records_delete(&p->writer, PEER_KIND_PUBLIC_POOL,
		                           p->id, NULL);
	}
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
	peer_gateway_ip_format(first, a);
	peer_gateway_ip_format(last, b);
	struct mc_buf body;
	mc_buf_init(&body);
	mc_pack_map(&body, 3);
	mc_pack_kv_str(&body, "zone", p->cfg.zone);
	mc_pack_kv_str(&body, "first", a);
	mc_pack_kv_str(&body, "last", b);
	bool same = live && old.body_len == body.len &&
	            memcmp(old.body, body.data, body.len) == 0;
	if (have)
		peer_record_clear(&old);
	int r = 0;
	if (!same) {
		r = peer_records_put(&p->writer, PEER_KIND_PUBLIC_POOL, p->id,
		                     body.data, body.len, NULL);
		if (r == 0)
			mc_info(NAT_SUB, "public pool %s-%s offered in zone %s",
			        a, b, p->cfg.zone);
	}
	mc_buf_free(&body);
	return r;
}

static int forwarding_on(void)
{
	FILE *f = fopen(NAT_FORWARD, "w");
	if (!f)
		return -errno;
	int ok = fputs("1\n", f) >= 0;
	ok &= fclose(f) == 0;
	return ok ? 0 : -EIO;
}

/* Checks the flags against the cloud and this host; fills g's pool and
 * interface. 0 or -EINVAL with err. */
static int settle_flags(struct peer *p, struct peer_gateway_nat *g, char *err,
                        size_t err_size)
{
	const struct peer_config *c = &p->cfg;
	struct mc_cidr cloud;
	char a[INET_ADDRSTRLEN];
	g->first = 1;
	g->last = 0;
	if (mc_cidr_parse(&cloud, p->cidr, 0, 32) != 0) {
		snprintf(err, err_size, "the cloud's CIDR \"%s\" is unreadable",
		         p->cidr);
		return -EINVAL;
	}
	g->cloud_net = cloud.network;
	g->cloud_prefix = cloud.prefix;
	if (c->public_pool[0]) {
		int r = peer_gateway_pool_parse(c->public_pool, &g->first,
		                                &g->last, err, err_size);
		if (r)
			return r;
		uint32_t top =
		    cloud.network | ~peer_gateway_prefix_mask(cloud.prefix);
		if (g->first <= top && g->last >= cloud.network) {
			snprintf(
			    err, err_size,
			    "--public-pool %s overlaps the cloud's private "
			    "CIDR %s",
			    c->public_pool, p->cidr);
			return -EINVAL;
		}
	}
	if (c->public_interface[0]) {
		if (!peer_gateway_ifname_ok(c->public_interface) ||
		    !if_nametoindex(c->public_interface)) {
			snprintf(
			    err, err_size,
			    "--public-interface: no interface named \"%s\"",
			    c->public_interface);
			return -EINVAL;
		}
		snprintf(g->ifname, sizeof(g->ifname), "%s",
		         c->public_interface);
	} else if (c->public_pool[0]) {
		if (!interface_for(g->first, g->ifname) ||
		    !peer_gateway_ifname_ok(g->ifname)) {
			peer_gateway_ip_format(g->first, a);
			snprintf(
			    err, err_size,
			    "--public-pool: no interface has an address in "
			    "the subnet of %s; name the public one with "
			    "--public-interface",
			    a);
			return -EINVAL;
		}
	}
	g->ifindex = g->ifname[0] ? (int)if_nametoindex(g->ifname) : 0;
	return 0;
}

int peer_gateway_nat_start(struct peer *p, char *err, size_t err_size)
{
	const struct peer_config *c = &p->cfg;
	if (!c->gateway) {
		if (!c->public_pool[0] && !c->public_interface[0])
			return 0;
		snprintf(err, err_size, "--%s needs --gateway",
		         c->public_pool[0] ? "public-pool"
		                           : "public-interface");
		return -EINVAL;
	}
	if (p->gateway_nat)
		return 0;
	struct peer_gateway_nat *g = xcalloc(1, sizeof(*g));
	g->p = p;
	int r = settle_flags(p, g, err, err_size);
	if (r)
		goto err_flags;
	r = pool_record_sync(p, c->public_pool, g->first, g->last);
	if (r) {
		snprintf(err, err_size,
		         "cannot write the public-pool record: %s",
		         strerror(-r));
		goto err_flags;
	}
	if (!g->ifname[0]) {
		/* Relaying only: no NAT, and no table left from before. */
		mc_info(NAT_SUB, "no public interface: NAT off");
	}
	g->nft = peer_sg_nft_new();
	if (!g->nft) {
		snprintf(err, err_size, "no nftables context for NAT");
		r = -ENOMEM;
		goto err_flags;
	}
	if (g->ifname[0] && (r = forwarding_on()) != 0)
		mc_warn(NAT_SUB, "cannot turn IPv4 forwarding on: %s",
		        strerror(-r));
	if (g->ifname[0]) {
		char a[INET_ADDRSTRLEN] = "", b[INET_ADDRSTRLEN] = "";
		if (g->first <= g->last) {
			peer_gateway_ip_format(g->first, a);
			peer_gateway_ip_format(g->last, b);
		}
		mc_info(NAT_SUB, "NAT for %s out %s%s%s%s%s", p->cidr,
		        g->ifname, a[0] ? ", elastic IPs " : "", a,
		        a[0] ? "-" : "", b);
	}
	/* The first tick applies whatever the records say. */
	g->pending = true;
	uv_timer_init(p->loop, &g->tick);
	g->tick.data = g;
	uv_timer_start(&g->tick, on_tick, NAT_TICK_MS, NAT_TICK_MS);
	p->gateway_nat = g;
	return 0;
err_flags:
	free(g);
	return r;
}

static void closed(uv_handle_t *h)
{
	struct peer_gateway_nat *g = h->data;
	peer_sg_nft_free(g->nft);
	free(g->applied);
	free(g->held);
	free(g);
}

void peer_gateway_nat_stop(struct peer *p)
{
	struct peer_gateway_nat *g = p->gateway_nat;
	if (!g)
		return;
	p->gateway_nat = NULL;
	uv_close((uv_handle_t *)&g->tick, closed);
}

void peer_gateway_nat_stats(const struct peer *p, struct peer_nat_stats *out)
{
	if (p->gateway_nat)
		*out = p->gateway_nat->stats;
	else
		memset(out, 0, sizeof(*out));
}

bool peer_gateway_nat_running(const struct peer *p)
{
	return p->gateway_nat != NULL;
}

void peer_gateway_nat_pack_status(const struct peer *p, struct mc_buf *b)
{
	const struct peer_gateway_nat *g = p->gateway_nat;
	if (!g)
		return;
	char pool[40] = "", a[INET_ADDRSTRLEN], z[INET_ADDRSTRLEN];
	if (g->first <= g->last) {
		peer_gateway_ip_format(g->first, a);
		peer_gateway_ip_format(g->last, z);
		snprintf(pool, sizeof(pool), "%s-%s", a, z);
	}
	mc_pack_str(b, "gateway");
	mc_pack_map(b, 6);
	mc_pack_kv_str(b, "interface", g->ifname);
	mc_pack_kv_str(b, "pool", pool);
	mc_pack_kv_uint(b, "eips", g->stats.eips);
	mc_pack_kv_uint(b, "skipped", g->stats.skipped);
	mc_pack_kv_uint(b, "applies", g->stats.applies);
	mc_pack_kv_uint(b, "failures", g->stats.failures);
}
