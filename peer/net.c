#include "net_int.h"

#include "cloudkey.h"
#include "log.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* gossip's key for a record broadcast: a hash, since kind/id can be long. */
static void broadcast_key(const char *kind, const char *id, char out[33])
{
	uint64_t kh = peer_record_keyhash(kind, id);
	snprintf(out, 33, "r%016llx", (unsigned long long)kh);
}

static uint64_t now_ms(struct peer_net *n)
{
	return uv_now(n->loop);
}

static void on_tick(uv_timer_t *t)
{
	struct peer_net *n = t->data;
	net_rearm(n);
}

void net_rearm(struct peer_net *n)
{
	if (n->stopping)
		return;
	uint64_t now = now_ms(n);
	gossip_tick(n->g, now);
	if (n->leave_done &&
	    (gossip_leave_sent(n->g) || now >= n->leave_deadline)) {
		void (*done)(struct peer * p) = n->leave_done;
		n->leave_done = NULL;
		done(n->p);
		return;
	}
	uint64_t next = gossip_next_deadline(n->g);
	uint64_t delay = next > now ? next - now : 1;
	if (n->leave_done && delay > 50)
		delay = 50;
	uv_timer_start(&n->tick, on_tick, delay, 0);
}

static void gossip_send(void *ctx, const struct mc_addr *to, const uint8_t *pkt,
                        size_t len)
{
	struct peer_net *n = ctx;
	uv_buf_t buf = uv_buf_init((char *)pkt, (unsigned)len);
	/* UDP is lossy anyway: a full socket buffer drops like the network. */
	uv_udp_try_send(&n->udp, &buf, 1, (const struct sockaddr *)&to->ss);
}

static void gossip_event(void *ctx, enum gossip_event ev,
                         const struct gossip_member *m)
{
	struct peer_net *n = ctx;
	char addr[64];
	mc_addr_format(&m->node->addr, addr, sizeof(addr));
	if (ev == GOSSIP_EV_UPDATED) {
		mc_debug("gossip", "member %s (%s) updated", m->node->id,
		         m->node->name);
		return;
	}
	mc_info("gossip", "member %s (%s, %s) %s", m->node->id, m->node->name,
	        addr, gossip_event_name(ev));
	if (ev == GOSSIP_EV_JOINED && strcmp(m->node->id, n->p->id) != 0)
		n->joined = true;
}

void net_apply_remote(struct peer_net *n, const struct peer_record *rs,
                      size_t count)
{
	struct peer_record *ok = xcalloc(count ? count : 1, sizeof(*ok));
	size_t n_ok = 0, won = 0;
	uint64_t wall = mc_wall_ms();
	for (size_t i = 0; i < count; i++) {
		n->c.records_received++;
		if (mc_hlc_observe(&n->p->clock, rs[i].hlc, wall) != 0) {
			n->c.records_refused++;
			mc_warn("records",
			        "refused %s/%s from %s: stamped %llu ms ahead",
			        rs[i].kind, rs[i].id, rs[i].writer,
			        (unsigned long long)(mc_hlc_wall_ms(rs[i].hlc) -
			                             wall));
			continue;
		}
		ok[n_ok++] = rs[i];
	}
	if (n_ok && peer_store_apply_batch(n->p->store, ok, n_ok, &won) != 0)
		n->c.records_refused += n_ok;
	n->c.records_applied += won;
	bool keyring = false;
	for (size_t i = 0; i < n_ok && won; i++)
		keyring |= strcmp(ok[i].kind, PEER_KIND_CLOUD_KEYRING) == 0;
	free(ok);
	if (keyring)
		peer_cloudkey_sync(n->p);
}

bool peer_net_synced(struct peer_net *n)
{
	if (n->c.pushpulls > 0)
		return true;
	/* Seeds (remembered from an earlier life, or given) mean there is a
	 * cloud to catch up with: wait for a push-pull with it. */
	uint32_t counts[GOSSIP_LEFT + 1] = {0};
	gossip_num_members(n->g, counts);
	return n->n_seeds == 0 &&
	       counts[GOSSIP_ALIVE] + counts[GOSSIP_SUSPECT] <= 1;
}

void peer_net_apply(struct peer_net *n, const struct peer_record *r)
{
	net_apply_remote(n, r, 1);
}

/*
 * A record delta arrived by broadcast. Small records travel whole; a large
 * one travels as a hint naming its writer's address, and a peer holding an
 * older version pulls it with a push-pull from there.
 */
static bool gossip_user(void *ctx, const char *key, const uint8_t *body,
                        size_t len)
{
	struct peer_net *n = ctx;
	(void)key;
	struct mc_doc *doc = mc_unpack(body, len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	bool fresh = false;
	char from[64];

	if (v && mc_get_str(v, "hint", from, sizeof(from))) {
		char kind[129], id[129], writer[PEER_ID_HEX_LEN + 1];
		uint64_t hlc;
		struct peer_record have;
		struct mc_addr addr;
		if (mc_get_str(v, "k", kind, sizeof(kind)) &&
		    mc_get_str(v, "i", id, sizeof(id)) &&
		    mc_get_uint(v, "h", &hlc) &&
		    mc_get_str(v, "w", writer, sizeof(writer)) &&
		    mc_addr_parse(&addr, from, 7700) == 0) {
			int e = peer_store_get(n->p->store, kind, id, &have);
			fresh = e == -ENOENT ||
			        (e == 0 && (have.hlc < hlc ||
			                    (have.hlc == hlc &&
			                     strcmp(have.writer, writer) < 0)));
			if (e == 0)
				peer_record_clear(&have);
			if (fresh)
				net_pushpull_start(n, &addr, false);
		}
	} else {
		struct peer_record_view rv;
		if (v && peer_record_unpack(v, &rv) == 0) {
			uint64_t before = n->c.records_applied;
			net_apply_remote(n, &rv.r, 1);
			fresh = n->c.records_applied > before;
			if (fresh)
				mc_debug("records", "applied %s/%s from %s",
				         rv.kind, rv.id, rv.r.writer);
		} else {
			n->c.records_refused++;
		}
	}
	mc_doc_free(doc);
	return fresh;
}

/*
 * A random member in state other than us, drawn among those gossip has
 * reached when there are any: in a cloud of private clusters, a host of
 * another cluster's private network is no partner for a push-pull.
 */
struct pick {
	const char *self;
	enum gossip_state state;
	struct mc_addr any, reached;
	uint32_t seen_any, seen_reached;
};

static void pick_one(void *ctx, const struct gossip_member *m)
{
	struct pick *pk = ctx;
	if (m->state != pk->state || strcmp(m->node->id, pk->self) == 0)
		return;
	/* Reservoir sampling: each such member equally likely. */
	pk->seen_any++;
	if (mc_random_uniform(pk->seen_any) == 0)
		pk->any = m->node->addr;
	if (!m->reached)
		return;
	pk->seen_reached++;
	if (mc_random_uniform(pk->seen_reached) == 0)
		pk->reached = m->node->addr;
}

/* Fills *out with a push-pull partner in state; false when there is none. */
static bool pick_partner(struct peer_net *n, enum gossip_state state,
                         struct mc_addr *out)
{
	struct pick pk = {.self = n->p->id, .state = state};
	gossip_members_foreach(n->g, pick_one, &pk);
	if (pk.seen_reached)
		*out = pk.reached;
	else if (pk.seen_any)
		*out = pk.any;
	return pk.seen_any > 0;
}

/* Remembers live members so a restart without --join finds the cloud. */
void net_save_seeds(struct peer_net *n)
{
	char addrs[8][64];
	unsigned count = peer_net_alive_addrs(n, addrs, 8);
	if (count == 0)
		return;
	char list[8 * 65] = "";
	for (unsigned i = 0; i < count; i++) {
		if (i)
			strcat(list, ",");
		strcat(list, addrs[i]);
	}
	peer_store_meta_set(n->p->store, "seeds", list);
}

static void on_soon(uv_timer_t *t);

void peer_net_publish(struct peer_net *n, const struct peer_record *r)
{
	struct mc_buf b;
	char key[33];
	mc_buf_init(&b);
	peer_record_pack(&b, r);
	if (b.len > GOSSIP_USER_MAX) {
		mc_buf_reset(&b);
		mc_pack_map(&b, 5);
		mc_pack_kv_str(&b, "hint", n->p->advertise);
		mc_pack_kv_str(&b, "k", r->kind);
		mc_pack_kv_str(&b, "i", r->id);
		mc_pack_kv_uint(&b, "h", r->hlc);
		mc_pack_kv_str(&b, "w", r->writer);
	}
	broadcast_key(r->kind, r->id, key);
	gossip_broadcast_user(n->g, key, b.data, b.len);
	mc_buf_free(&b);
	net_rearm(n);
	/*
	 * A burst of writes queues more than the next few gossip packets
	 * carry; a push-pull soon after it hands the whole burst to one
	 * neighbour at once instead of waiting for the periodic round.
	 */
	if (!uv_is_active((uv_handle_t *)&n->soon))
		uv_timer_start(&n->soon, on_soon, NET_SOON_MS, 0);
}

static void on_soon(uv_timer_t *t)
{
	struct peer_net *n = t->data;
	struct mc_addr partner;
	if (pick_partner(n, GOSSIP_ALIVE, &partner))
		net_pushpull_start(n, &partner, false);
}

static void publish_hook(void *arg, const struct peer_record *r)
{
	peer_net_publish(arg, r);
}

static void alloc_rx(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct peer_net *n = h->data;
	(void)suggested;
	buf->base = (char *)n->rx;
	buf->len = sizeof(n->rx);
}

static void on_udp(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                   const struct sockaddr *from, unsigned flags)
{
	struct peer_net *n = u->data;
	(void)flags;
	if (nread <= 0 || !from || n->stopping)
		return;
	struct mc_addr a;
	memset(&a, 0, sizeof(a));
	a.len = from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                    : sizeof(struct sockaddr_in);
	memcpy(&a.ss, from, a.len);
	gossip_recv(n->g, &a, (const uint8_t *)buf->base, (size_t)nread,
	            now_ms(n));
	net_rearm(n);
}

static void on_pushpull_timer(uv_timer_t *t)
{
	struct peer_net *n = t->data;
	if (!n->joined && n->n_seeds) {
		for (unsigned i = 0; i < n->n_seeds; i++) {
			net_pushpull_start(n, &n->seeds[i], true);
			gossip_announce(n->g, &n->seeds[i], now_ms(n));
		}
		uv_timer_start(&n->pushpull, on_pushpull_timer,
		               NET_JOIN_RETRY_MS, 0);
		net_rearm(n);
		return;
	}
	net_save_seeds(n);
	struct mc_addr partner;
	if (pick_partner(n, GOSSIP_ALIVE, &partner))
		net_pushpull_start(n, &partner, false);
	/*
	 * Also try one member we think dead, as serf's reconnect does: after
	 * a partition heals, this is how the two sides find each other.
	 */
	if (pick_partner(n, GOSSIP_DEAD, &partner))
		net_pushpull_start(n, &partner, false);
	/*
	 * memberlist's scaling: past 32 members the period grows with
	 * log2(N), so a large cloud does not spend its links on anti-entropy.
	 * The first round after start is spread over a whole period, so peers
	 * started together do not push-pull together; later ones by +-5%.
	 */
	uint32_t members = gossip_num_members(n->g, NULL);
	uint64_t ms = n->pushpull_ms;
	if (members > 32)
		ms *= (uint64_t)ceil(log2((double)members) - 5.0) + 1;
	uint64_t next;
	if (!n->pushpull_staggered) {
		n->pushpull_staggered = true;
		next = ms / 2 + mc_random_uniform((uint32_t)ms + 1);
	} else {
		next =
		    ms - ms / 20 + mc_random_uniform((uint32_t)(ms / 10) + 1);
	}
	uv_timer_start(&n->pushpull, on_pushpull_timer, next, 0);
}

static int parse_seeds(struct peer_net *n, const char *seeds, char *err,
                       size_t err_size)
{
	char *copy = xstrdup(seeds);
	char *save = NULL;
	int r = 0;
	for (char *s = strtok_r(copy, ",", &save); s;
	     s = strtok_r(NULL, ",", &save)) {
		if (n->n_seeds == NET_MAX_SEEDS)
			break;
		if (mc_addr_parse(&n->seeds[n->n_seeds], s,
		                  PEER_DEFAULT_GOSSIP_PORT) != 0) {
			snprintf(err, err_size, "bad seed address \"%s\"", s);
			r = -EINVAL;
			break;
		}
		n->n_seeds++;
	}
	free(copy);
	return r;
}

static void fill_node(struct peer *p, struct gossip_node *node)
{
	memset(node, 0, sizeof(*node));
	snprintf(node->id, sizeof(node->id), "%s", p->id);
	snprintf(node->name, sizeof(node->name), "%s", p->cfg.name);
	snprintf(node->zone, sizeof(node->zone), "%s", p->cfg.zone);
	snprintf(node->version, sizeof(node->version), "%s", MALLEE_VERSION);
	mc_addr_parse(&node->addr, p->advertise, PEER_DEFAULT_GOSSIP_PORT);
	node->roles = (p->cfg.edge ? NET_ROLE_EDGE : 0) |
	              (p->cfg.gateway ? NET_ROLE_GATEWAY : 0);
	node->cap.vcpu_total = p->capacity.vcpu_total;
	node->cap.vcpu_free = p->capacity.vcpu_free;
	node->cap.mem_mib_total = p->capacity.memory_mib_total;
	node->cap.mem_mib_free = p->capacity.memory_mib_free;
	node->cap.disk_mib_total = p->capacity.disk_mib_total;
	node->cap.disk_mib_free = p->capacity.disk_mib_free;
	memcpy(node->sign_pk, p->identity.sign_pk, sizeof(node->sign_pk));
	memcpy(node->box_pk, p->identity.box_pk, sizeof(node->box_pk));
}

/*
 * The incarnation to start from: past any this peer used before, so a
 * restarted peer's alive message beats the dead verdict about its last life.
 */
static uint32_t start_incarnation(struct peer *p)
{
	char saved[32] = "";
	uint64_t inc = 0;
	if (peer_store_meta_get(p->store, "incarnation", saved,
	                        sizeof(saved)) == 0)
		inc = strtoull(saved, NULL, 10);
	inc += 1;
	/* Seconds since 2025 also grow across a crash that saved nothing. */
	uint64_t clock = mc_wall_ms() / 1000;
	if (clock > 1735689600 && clock - 1735689600 > inc)
		inc = clock - 1735689600;
	snprintf(saved, sizeof(saved), "%llu", (unsigned long long)inc);
	peer_store_meta_set(p->store, "incarnation", saved);
	return (uint32_t)inc;
}

struct peer_net *peer_net_start(struct peer *p, const char *seeds, char *err,
                                size_t err_size)
{
	struct peer_net *n = xcalloc(1, sizeof(*n));
	struct gossip_config cfg;
	struct mc_addr listen;
	int r;

	n->p = p;
	n->loop = p->loop;
	if (seeds && parse_seeds(n, seeds, err, err_size)) {
		free(n);
		return NULL;
	}
	mc_addr_parse(&listen, p->cfg.listen, PEER_DEFAULT_GOSSIP_PORT);

	gossip_config_default(&cfg);
	/* Flags left at 0 keep gossip's defaults. */
#define OVERRIDE(field, flag)                                                  \
	if (p->cfg.flag)                                                       \
		cfg.field = p->cfg.flag;
	OVERRIDE(probe_interval_ms, gossip_probe_ms)
	OVERRIDE(probe_timeout_ms, gossip_probe_timeout_ms)
	OVERRIDE(gossip_interval_ms, gossip_interval_ms)
	OVERRIDE(gossip_nodes, gossip_fanout)
	OVERRIDE(suspicion_mult, gossip_suspicion_mult)
	OVERRIDE(retransmit_mult, gossip_retransmit_mult)
#undef OVERRIDE
	n->pushpull_ms = p->cfg.gossip_pushpull_ms ? p->cfg.gossip_pushpull_ms
	                                           : NET_PUSHPULL_MS;
	fill_node(p, &cfg.local);
	cfg.incarnation = start_incarnation(p);
	mc_random(&cfg.seed, sizeof(cfg.seed));
	cfg.epoch_ms = mc_wall_ms();
	cfg.cb.ctx = n;
	cfg.cb.send = gossip_send;
	cfg.cb.event = gossip_event;
	cfg.cb.user = gossip_user;
	n->g = gossip_new(&cfg, uv_now(p->loop));
	if (!n->g) {
		snprintf(err, err_size, "cannot start gossip (bad settings)");
		free(n);
		return NULL;
	}
	for (unsigned i = 0; i < p->keyring.n; i++)
		gossip_keyring_add(n->g, p->keyring.keys[i]);

	uv_udp_init(n->loop, &n->udp);
	uv_timer_init(n->loop, &n->tick);
	uv_timer_init(n->loop, &n->pushpull);
	uv_tcp_init(n->loop, &n->listener);
	uv_timer_init(n->loop, &n->soon);
	n->udp.data = n->tick.data = n->pushpull.data = n->listener.data = n;
	n->soon.data = n;
	n->open_handles = 5;

	r = uv_udp_bind(&n->udp, (const struct sockaddr *)&listen.ss, 0);
	if (r == 0)
		r = uv_udp_recv_start(&n->udp, alloc_rx, on_udp);
	if (r) {
		snprintf(err, err_size, "gossip UDP %s: %s", p->cfg.listen,
		         uv_strerror(r));
		goto fail;
	}
	if (net_stream_listen(n, &listen, err, err_size))
		goto fail;

	p->writer.published = publish_hook;
	p->writer.published_arg = n;
	for (unsigned i = 0; i < n->n_seeds; i++)
		gossip_announce(n->g, &n->seeds[i], uv_now(n->loop));
	uv_timer_start(&n->pushpull, on_pushpull_timer, 0, 0);
	net_rearm(n);
	return n;

fail:
	peer_net_stop(n);
	return NULL;
}

void peer_net_leave(struct peer_net *n, void (*done)(struct peer *p))
{
	n->leave_done = done;
	n->leave_deadline = now_ms(n) + NET_LEAVE_WAIT_MS;
	gossip_leave(n->g, now_ms(n));
	net_rearm(n);
}

void net_handle_closed(uv_handle_t *h)
{
	struct peer_net *n = h->data;
	if (--n->open_handles > 0)
		return;
	gossip_free(n->g);
	free(n);
}

void peer_net_stop(struct peer_net *n)
{
	if (!n || n->stopping)
		return;
	n->stopping = true;
	n->p->writer.published = NULL;
	net_save_seeds(n);
	char inc[32];
	snprintf(inc, sizeof(inc), "%u", gossip_incarnation(n->g));
	peer_store_meta_set(n->p->store, "incarnation", inc);
	net_streams_close_all(n);
	uv_close((uv_handle_t *)&n->udp, net_handle_closed);
	uv_close((uv_handle_t *)&n->tick, net_handle_closed);
	uv_close((uv_handle_t *)&n->pushpull, net_handle_closed);
	uv_close((uv_handle_t *)&n->listener, net_handle_closed);
	uv_close((uv_handle_t *)&n->soon, net_handle_closed);
}

uint32_t peer_net_incarnation(struct peer_net *n)
{
	return gossip_incarnation(n->g);
}

const struct gossip *peer_net_gossip(const struct peer_net *n)
{
	return n->g;
}

void peer_net_capacity_changed(struct peer_net *n)
{
	if (!n || n->stopping)
		return;
	struct gossip_node node;
	fill_node(n->p, &node);
	const struct gossip_node *now = gossip_local_node(n->g);
	if (memcmp(&now->cap, &node.cap, sizeof(node.cap)) == 0)
		return;
	/* A new incarnation carries the numbers to every member. */
	if (gossip_set_local_node(n->g, &node, now_ms(n)) != 0)
		mc_warn("gossip", "cannot advertise the new capacity");
	net_rearm(n);
}

struct pack_state {
	struct mc_buf *b;
	uint32_t n;
};

static void pack_member(void *ctx, const struct gossip_member *m)
{
	struct pack_state *s = ctx;
	struct mc_buf *b = s->b;
	const struct gossip_node *node = m->node;
	char addr[64];
	mc_addr_format(&node->addr, addr, sizeof(addr));
	s->n++;
	mc_pack_map(b, 10);
	mc_pack_kv_str(b, "id", node->id);
	mc_pack_kv_str(b, "name", node->name);
	mc_pack_kv_str(b, "zone", node->zone);
	mc_pack_str(b, "roles");
	mc_pack_array(b, (uint32_t)(!!(node->roles & NET_ROLE_EDGE) +
	                            !!(node->roles & NET_ROLE_GATEWAY)));
	if (node->roles & NET_ROLE_EDGE)
		mc_pack_str(b, "edge");
	if (node->roles & NET_ROLE_GATEWAY)
		mc_pack_str(b, "gateway");
	mc_pack_kv_str(b, "state", gossip_state_name(m->state));
	mc_pack_kv_str(b, "addr", addr);
	mc_pack_kv_uint(b, "incarnation", m->incarnation);
	/* A direct path from this peer; if false, through a gateway. */
	mc_pack_kv_bool(b, "reached", m->reached);
	mc_pack_kv_str(b, "version", node->version);
	mc_pack_str(b, "capacity");
	mc_pack_map(b, 3);
	mc_pack_str(b, "vcpu");
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "total", node->cap.vcpu_total);
	mc_pack_kv_uint(b, "free", node->cap.vcpu_free);
	mc_pack_str(b, "memory_mib");
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "total", node->cap.mem_mib_total);
	mc_pack_kv_uint(b, "free", node->cap.mem_mib_free);
	mc_pack_str(b, "disk_mib");
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "total", node->cap.disk_mib_total);
	mc_pack_kv_uint(b, "free", node->cap.disk_mib_free);
}

void peer_net_pack_members(struct peer_net *n, struct mc_buf *b)
{
	/* Members go into a scratch buffer first: the count leads. */
	struct mc_buf items;
	mc_buf_init(&items);
	struct pack_state s = {.b = &items};
	gossip_members_foreach(n->g, pack_member, &s);
	mc_pack_str(b, "members");
	mc_pack_array(b, s.n);
	mc_buf_append(b, items.data, items.len);
	mc_buf_free(&items);
}

void peer_net_pack_counters(struct peer_net *n, struct mc_buf *b)
{
	const struct gossip_counters *gc = gossip_counters(n->g);
	uint32_t counts[GOSSIP_LEFT + 1];
	gossip_num_members(n->g, counts);
	mc_pack_str(b, "gossip");
	mc_pack_map(b, 21);
	mc_pack_kv_uint(b, "packets_in", gc->packets_in);
	mc_pack_kv_uint(b, "packets_out", gc->packets_out);
	mc_pack_kv_uint(b, "bytes_in", gc->bytes_in);
	mc_pack_kv_uint(b, "bytes_out", gc->bytes_out);
	mc_pack_kv_uint(b, "suspicions", gc->suspicions);
	mc_pack_kv_uint(b, "refuted", gc->refuted);
	mc_pack_kv_uint(b, "declared_dead", gc->declared_dead);
	mc_pack_kv_uint(b, "unreached_probes", gc->unreached_probes);
	mc_pack_kv_uint(b, "health", gossip_health(n->g));
	mc_pack_kv_uint(b, "incarnation", gossip_incarnation(n->g));
	mc_pack_kv_uint(b, "alive", counts[GOSSIP_ALIVE]);
	mc_pack_kv_uint(b, "suspect", counts[GOSSIP_SUSPECT]);
	mc_pack_kv_uint(b, "dead", counts[GOSSIP_DEAD]);
	mc_pack_kv_uint(b, "left", counts[GOSSIP_LEFT]);
	mc_pack_str(b, "dropped");
	mc_pack_map(b, GOSSIP_DROP_MAX);
	for (int d = 0; d < GOSSIP_DROP_MAX; d++)
		mc_pack_kv_uint(b, gossip_drop_name((enum gossip_drop)d),
		                gc->drops[d]);
	mc_pack_kv_uint(b, "records_received", n->c.records_received);
	mc_pack_kv_uint(b, "records_applied", n->c.records_applied);
	mc_pack_kv_uint(b, "records_refused", n->c.records_refused);
	mc_pack_kv_uint(b, "pushpulls", n->c.pushpulls);
	mc_pack_kv_uint(b, "pushpull_failures", n->c.pushpull_failures);
	mc_pack_kv_uint(b, "stream_bytes",
	                n->c.stream_bytes_in + n->c.stream_bytes_out);
}

struct alive_state {
	const char *self;
	char (*addrs)[64];
	unsigned n, max;
};

static void collect_alive(void *ctx, const struct gossip_member *m)
{
	struct alive_state *s = ctx;
	if (s->n < s->max && m->state == GOSSIP_ALIVE &&
	    strcmp(m->node->id, s->self) != 0)
		mc_addr_format(&m->node->addr, s->addrs[s->n++], 64);
}

unsigned peer_net_alive_addrs(struct peer_net *n, char addrs[][64],
                              unsigned max)
{
	struct alive_state s = {.self = n->p->id, .addrs = addrs, .max = max};
	gossip_members_foreach(n->g, collect_alive, &s);
	return s.n;
}

#define ZONES_MAX 64

struct zone_count {
	char name[GOSSIP_ZONE_MAX];
	unsigned alive, hosts;
};

struct zone_state {
	struct zone_count z[ZONES_MAX];
	unsigned n;
};

static void count_zone(void *ctx, const struct gossip_member *m)
{
	struct zone_state *s = ctx;
	if (m->state == GOSSIP_LEFT)
		return;
	unsigned i;
	for (i = 0; i < s->n; i++)
		if (strcmp(s->z[i].name, m->node->zone) == 0)
			break;
	if (i == s->n) {
		if (s->n == ZONES_MAX)
			return;
		snprintf(s->z[i].name, sizeof(s->z[i].name), "%s",
		         m->node->zone);
		s->n++;
	}
	s->z[i].hosts++;
	s->z[i].alive += m->state == GOSSIP_ALIVE;
}

static int zone_cmp(const void *a, const void *b)
{
	return strcmp(((const struct zone_count *)a)->name,
	              ((const struct zone_count *)b)->name);
}

int peer_net_zones(struct peer_net *n,
                   int (*cb)(void *ctx, const char *zone, unsigned alive,
                             unsigned hosts),
                   void *ctx)
{
	struct zone_state s = {.n = 0};
	gossip_members_foreach(n->g, count_zone, &s);
	qsort(s.z, s.n, sizeof(s.z[0]), zone_cmp);
	for (unsigned i = 0; i < s.n; i++) {
		int r = cb(ctx, s.z[i].name, s.z[i].alive, s.z[i].hosts);
		if (r)
			return r;
	}
	return 0;
}
