/*
 * gossip/: the wire (through packets and snapshots), sealing and the
 * keyring, and SWIM/Lifeguard behaviour on a small in-test network of five
 * (or eight, for two clusters joined by gateways) state machines driven by
 * a fake clock.
 */
#include "check.h"

#include "crypto.h"
#include "gossip.h"
#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#define NNODES   5 /* the flat network's size */
#define MAXNODES 8
#define MAXPKT   4096

struct tpkt {
	uint64_t at;
	int to, from;
	size_t len;
	uint8_t *bytes;
};

struct tnode {
	struct gossip *g;
	struct gossip_node info;
	struct tnet *net;
	int idx;
	bool down;   /* crashed: no instance */
	bool silent; /* paused: neither sends nor receives */
	int users;   /* user broadcasts seen */
	bool ever_dead[MAXNODES];
	bool ever_left[MAXNODES];
	uint64_t dead_at[MAXNODES];
	int updated[MAXNODES];
	int suspected[MAXNODES]; /* suspect events, whoever accused */
	int refuted[MAXNODES];   /* suspect -> alive events */
};

struct tnet {
	struct tnode n[MAXNODES];
	int count;
	bool blocked[MAXNODES][MAXNODES]; /* no route from [a] to [b] */
	struct tpkt *q;
	size_t nq, capq;
	uint64_t now;
	uint64_t trace; /* hash of every event, for determinism */
	uint8_t key[32];
	bool sealed;
	uint32_t pushpull_ms; /* anti-entropy period as the daemon's, or 0 */
	uint64_t rng;
	/* Capture instead of deliver, for the wire tests. */
	bool capture;
	uint8_t captured[MAXPKT];
	size_t captured_len;
};

static void addr_of(int idx, struct mc_addr *a)
{
	char text[32];
	snprintf(text, sizeof(text), "127.0.0.%d:7700", idx + 1);
	mc_addr_parse(a, text, 0);
}

static int idx_of(const struct mc_addr *a)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
	return (int)(ntohl(s->sin_addr.s_addr) & 0xff) - 1;
}

static void t_send(void *ctx, const struct mc_addr *to, const uint8_t *pkt,
                   size_t len)
{
	struct tnode *n = ctx;
	struct tnet *net = n->net;
	int dst = idx_of(to);

	if (net->capture) {
		if (len <= MAXPKT) {
			memcpy(net->captured, pkt, len);
			net->captured_len = len;
		}
		return;
	}
	if (n->silent || dst < 0 || dst >= net->count ||
	    net->blocked[n->idx][dst])
		return;
	if (net->nq == net->capq) {
		net->capq = net->capq ? net->capq * 2 : 64;
		net->q = xrealloc(net->q, sizeof(*net->q) * net->capq);
	}
	struct tpkt *p = &net->q[net->nq++];
	p->at = net->now + 1 + (uint64_t)(n->idx + dst) % 3;
	p->to = dst;
	p->from = n->idx;
	p->len = len;
	p->bytes = xmalloc(len);
	memcpy(p->bytes, pkt, len);
}

static void t_event(void *ctx, enum gossip_event ev,
                    const struct gossip_member *m)
{
	struct tnode *n = ctx;
	int who = (int)strtol(m->node->id, NULL, 16) - 1;
	if (who < 0 || who >= MAXNODES)
		return;
	n->net->trace =
	    (n->net->trace ^ (n->net->now * 31 + (uint64_t)ev +
	                      (uint64_t)who * 7 + (uint64_t)n->idx * 131)) *
	    0x100000001b3ULL;
	if (ev == GOSSIP_EV_DEAD) {
		n->ever_dead[who] = true;
		n->dead_at[who] = n->net->now;
	}
	if (ev == GOSSIP_EV_LEFT)
		n->ever_left[who] = true;
	if (ev == GOSSIP_EV_UPDATED)
		n->updated[who]++;
	if (ev == GOSSIP_EV_SUSPECT)
		n->suspected[who]++;
	if (ev == GOSSIP_EV_ALIVE)
		n->refuted[who]++;
}

static bool t_user(void *ctx, const char *key, const uint8_t *body, size_t len)
{
	struct tnode *n = ctx;
	(void)body;
	(void)len;
	if (strcmp(key, "rec/1") != 0 || n->users)
		return false;
	n->users++;
	return true;
}

static void node_info(int i, struct gossip_node *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->id, sizeof(info->id), "%016x", i + 1);
	snprintf(info->name, sizeof(info->name), "host-%d", i);
	snprintf(info->zone, sizeof(info->zone), "zone-a");
	snprintf(info->version, sizeof(info->version), "0.1.0");
	addr_of(i, &info->addr);
	info->roles = 1u << i;
	info->cap = (struct gossip_capacity){8, 6, 16384, 8000, 100000, 5000};
	memset(info->sign_pk, 0x10 + i, 32);
	memset(info->box_pk, 0x20 + i, 32);
}

static void node_start(struct tnet *net, int i, uint32_t inc)
{
	struct gossip_config c;
	struct tnode *n = &net->n[i];

	gossip_config_default(&c);
	node_info(i, &n->info);
	c.local = n->info;
	c.incarnation = inc;
	c.seed = 1000 + (uint64_t)i;
	c.epoch_ms = net->now + 1;
	c.cb = (struct gossip_callbacks){n, t_send, t_event, t_user};
	n->net = net;
	n->idx = i;
	n->g = gossip_new(&c, net->now);
	n->down = false;
	if (net->sealed)
		gossip_keyring_add(n->g, net->key);
}

/* Both ways through a snapshot, as the daemon's TCP push-pull will. */
static void push_pull(struct tnet *net, int a, int b)
{
	struct mc_buf x, y;
	mc_buf_init(&x);
	mc_buf_init(&y);
	gossip_snapshot_encode(net->n[a].g, &x);
	gossip_snapshot_encode(net->n[b].g, &y);
	CHECK(gossip_snapshot_merge(net->n[b].g, x.data, x.len, net->now) == 0);
	CHECK(gossip_snapshot_merge(net->n[a].g, y.data, y.len, net->now) == 0);
	mc_buf_free(&x);
	mc_buf_free(&y);
}

/* count nodes started, none joined yet. */
static void net_start(struct tnet *net, bool sealed, int count)
{
	memset(net, 0, sizeof(*net));
	net->now = 1000;
	net->count = count;
	net->sealed = sealed;
	memset(net->key, 0x42, sizeof(net->key));
	for (int i = 0; i < count; i++)
		node_start(net, i, 0);
}

/* The flat network: NNODES nodes, all joined through node 0. */
/* The daemon's push-pull partner: a random live member gossip has reached,
 * else any live one (peer/net.c). */
struct partner {
	const char *self;
	int reached, any;
	uint32_t seen_reached, seen_any;
	uint64_t *rng;
};

static uint32_t t_rand_below(uint64_t *x, uint32_t n)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((*x >> 33) % n);
}

static void partner_one(void *ctx, const struct gossip_member *m)
{
	struct partner *pk = ctx;
	int who = (int)strtol(m->node->id, NULL, 16) - 1;
	if (m->state != GOSSIP_ALIVE || strcmp(m->node->id, pk->self) == 0)
		return;
	if (t_rand_below(pk->rng, ++pk->seen_any) == 0)
		pk->any = who;
	if (m->reached && t_rand_below(pk->rng, ++pk->seen_reached) == 0)
		pk->reached = who;
}

static void anti_entropy(struct tnet *net)
{
	for (int i = 0; i < net->count; i++) {
		struct tnode *n = &net->n[i];
		if (n->down || n->silent)
			continue;
		struct partner pk = {.self = n->info.id, .rng = &net->rng};
		gossip_members_foreach(n->g, partner_one, &pk);
		int to = pk.seen_reached ? pk.reached : pk.any;
		/* A partner out of reach: the TCP connection fails. */
		if (!pk.seen_any || to < 0 || to >= net->count ||
		    net->n[to].down || net->n[to].silent ||
		    net->blocked[i][to] || net->blocked[to][i])
			continue;
		push_pull(net, i, to);
	}
}

static void net_init(struct tnet *net, bool sealed)
{
	net_start(net, sealed, NNODES);
	for (int i = 1; i < NNODES; i++)
		push_pull(net, 0, i);
}

static void net_free(struct tnet *net)
{
	for (int i = 0; i < net->count; i++)
		gossip_free(net->n[i].g);
	for (size_t i = 0; i < net->nq; i++)
		free(net->q[i].bytes);
	free(net->q);
}

static void net_run(struct tnet *net, uint64_t ms)
{
	uint64_t end = net->now + ms;
	for (; net->now < end; net->now++) {
		/* Deliver what is due, in send order. */
		size_t keep = 0, nq = net->nq;
		for (size_t i = 0; i < nq; i++) {
			struct tpkt p = net->q[i];
			if (p.at > net->now) {
				net->q[keep++] = p;
				continue;
			}
			struct tnode *dst = &net->n[p.to];
			if (!dst->down && !dst->silent &&
			    !net->blocked[p.from][p.to]) {
				struct mc_addr from;
				addr_of(p.from, &from);
				gossip_recv(dst->g, &from, p.bytes, p.len,
				            net->now);
			}
			free(p.bytes);
		}
		/* Sends during delivery were appended after nq. */
		if (net->nq > nq)
			memmove(&net->q[keep], &net->q[nq],
			        sizeof(*net->q) * (net->nq - nq));
		net->nq = keep + (net->nq - nq);
		for (int i = 0; i < net->count; i++) {
			struct tnode *n = &net->n[i];
			if (!n->down && !n->silent &&
			    gossip_next_deadline(n->g) <= net->now)
				gossip_tick(n->g, net->now);
		}
		if (net->pushpull_ms && net->now % net->pushpull_ms == 0)
			anti_entropy(net);
	}
}

static enum gossip_state state_at(struct tnet *net, int observer, int who)
{
	struct gossip_member m;
	if (!gossip_member_get(net->n[observer].g, net->n[who].info.id, &m))
		return (enum gossip_state) - 1;
	return m.state;
}

static void test_join_all_alive(void)
{
	struct tnet net;
	net_init(&net, true);
	net_run(&net, 5000);
	for (int i = 0; i < NNODES; i++) {
		uint32_t counts[GOSSIP_LEFT + 1];
		CHECK_EQ_U64(gossip_num_members(net.n[i].g, counts), NNODES);
		CHECK_EQ_U64(counts[GOSSIP_ALIVE], NNODES);
		const struct gossip_counters *c = gossip_counters(net.n[i].g);
		CHECK(c->packets_in > 0 && c->packets_out > 0);
		for (int d = 0; d < GOSSIP_DROP_MAX; d++)
			CHECK_EQ_U64(c->drops[d], 0);
		/* Flat: everyone reaches everyone, no probe goes unanswered. */
		CHECK_EQ_U64(c->unreached_probes, 0);
		for (int j = 0; j < NNODES; j++) {
			struct gossip_member m;
			CHECK(gossip_member_get(net.n[i].g, net.n[j].info.id,
			                        &m));
			CHECK(m.reached);
		}
	}
	/* Everything a member advertises made it across. */
	struct gossip_member m;
	CHECK(gossip_member_get(net.n[3].g, net.n[1].info.id, &m));
	CHECK_STR(m.node->name, "host-1");
	CHECK_STR(m.node->zone, "zone-a");
	CHECK_STR(m.node->version, "0.1.0");
	CHECK_EQ_U64(m.node->roles, 2);
	CHECK_EQ_U64(m.node->cap.vcpu_free, 6);
	CHECK_EQ_U64(m.node->cap.disk_mib_free, 5000);
	CHECK(m.node->sign_pk[31] == 0x11 && m.node->box_pk[0] == 0x21);
	CHECK(memcmp(&m.node->addr, &net.n[1].info.addr,
	             sizeof(struct mc_addr)) == 0);
	net_free(&net);
}

static void test_silenced_node_dies(void)
{
	struct tnet net;
	net_init(&net, false);
	net_run(&net, 3000);
	uint64_t silenced_at = net.now;
	net.n[4].silent = true;
	net_run(&net, 40000);
	for (int i = 0; i < 4; i++) {
		CHECK(state_at(&net, i, 4) == GOSSIP_DEAD);
		CHECK(net.n[i].ever_dead[4]);
		/* Not before the minimum suspicion (4 s at N=5), and within
		 * probe + maximum suspicion (1 s + 24 s) plus spreading. */
		CHECK(net.n[i].dead_at[4] >= silenced_at + 4000);
		CHECK(net.n[i].dead_at[4] <= silenced_at + 27000);
		for (int j = 0; j < 4; j++)
			CHECK(!net.n[i].ever_dead[j]);
	}
	uint64_t suspicions = 0;
	for (int i = 0; i < 4; i++)
		suspicions += gossip_counters(net.n[i].g)->suspicions;
	CHECK(suspicions > 0);
	net_free(&net);
}

static void test_paused_node_refutes(void)
{
	struct tnet net;
	net_init(&net, true);
	net_run(&net, 3000);
	uint32_t inc = gossip_incarnation(net.n[3].g);
	net.n[3].silent = true;
	net_run(&net, 3500); /* under the 4 s minimum suspicion */
	int suspected = 0;
	for (int i = 0; i < NNODES; i++)
		suspected += i != 3 && state_at(&net, i, 3) == GOSSIP_SUSPECT;
	CHECK(suspected > 0);
	net.n[3].silent = false;
	net_run(&net, 30000);
	for (int i = 0; i < NNODES; i++) {
		CHECK(!net.n[i].ever_dead[3]);
		CHECK(state_at(&net, i, 3) == GOSSIP_ALIVE);
	}
	CHECK(gossip_incarnation(net.n[3].g) > inc);
	CHECK(gossip_counters(net.n[3].g)->refuted > 0);
	net_free(&net);
}

static void test_leave(void)
{
	struct tnet net;
	net_init(&net, true);
	net_run(&net, 2000);
	gossip_leave(net.n[2].g, net.now);
	for (int t = 0; t < 5000 && !gossip_leave_sent(net.n[2].g); t += 10)
		net_run(&net, 10);
	CHECK(gossip_leave_sent(net.n[2].g));
	net_run(&net, 50);
	net.n[2].down = true;
	net_run(&net, 30000);
	for (int i = 0; i < NNODES; i++) {
		if (i == 2)
			continue;
		CHECK(state_at(&net, i, 2) == GOSSIP_LEFT);
		CHECK(net.n[i].ever_left[2]);
		CHECK(!net.n[i].ever_dead[2]);
	}
	net_free(&net);
}

static void test_user_broadcast_and_update(void)
{
	struct tnet net;
	net_init(&net, true);
	net_run(&net, 2000);
	static const uint8_t body[] = "vm i-1 running";
	CHECK(gossip_broadcast_user(net.n[0].g, "rec/1", body, sizeof(body)) ==
	      0);
	net.n[0].users = 1;
	CHECK(gossip_broadcast_user(net.n[0].g, "", body, 1) == -EINVAL);
	static uint8_t big[GOSSIP_USER_MAX + 1];
	CHECK(gossip_broadcast_user(net.n[0].g, "k", big, sizeof(big)) ==
	      -EMSGSIZE);

	struct gossip_node info = net.n[1].info;
	info.cap.vcpu_free = 2;
	uint32_t inc = gossip_incarnation(net.n[1].g);
	CHECK(gossip_set_local_node(net.n[1].g, &info, net.now) == 0);
	CHECK_EQ_U64(gossip_incarnation(net.n[1].g), inc + 1);
	snprintf(info.id, sizeof(info.id), "00000000000000ff");
	CHECK(gossip_set_local_node(net.n[1].g, &info, net.now) == -EINVAL);

	net_run(&net, 3000);
	for (int i = 0; i < NNODES; i++) {
		CHECK_EQ_U64(net.n[i].users, 1);
		if (i == 1)
			continue;
		struct gossip_member m;
		CHECK(gossip_member_get(net.n[i].g, net.n[1].info.id, &m));
		CHECK_EQ_U64(m.node->cap.vcpu_free, 2);
		CHECK_EQ_U64(net.n[i].updated[1], 1);
	}
	net_free(&net);
}

static void test_restart_rejoins(void)
{
	struct tnet net;
	net_init(&net, true);
	net_run(&net, 2000);
	gossip_free(net.n[4].g);
	net.n[4].g = NULL;
	net.n[4].down = true;
	net_run(&net, 40000);
	for (int i = 0; i < 4; i++)
		CHECK(state_at(&net, i, 4) == GOSSIP_DEAD);
	/* Back with no memory and incarnation 0: it learns from the
	 * push-pull that it is dead, and refutes. */
	node_start(&net, 4, 0);
	push_pull(&net, 4, 0);
	net_run(&net, 5000);
	for (int i = 0; i < NNODES; i++)
		CHECK(state_at(&net, i, 4) == GOSSIP_ALIVE);
	CHECK(gossip_incarnation(net.n[4].g) > 0);
	net_free(&net);
}

/*
 * A member that stops answering before most have probed it is still found
 * dead by all: the reach pings that follow the join make everyone reach
 * everyone early, so the flat network is plain SWIM.
 */
static void test_flat_early_death(void)
{
	struct tnet net;
	net_init(&net, false);
	net_run(&net, 1500);
	for (int i = 0; i < 4; i++) {
		struct gossip_member m;
		CHECK(gossip_member_get(net.n[i].g, net.n[4].info.id, &m));
		CHECK(m.reached);
	}
	net.n[4].silent = true;
	net_run(&net, 40000);
	uint64_t suspicions = 0;
	for (int i = 0; i < 4; i++) {
		CHECK(state_at(&net, i, 4) == GOSSIP_DEAD);
		suspicions += gossip_counters(net.n[i].g)->suspicions;
		for (int j = 0; j < 4; j++)
			CHECK(!net.n[i].ever_dead[j]);
	}
	/* More than one accuser: Lifeguard's confirmations still work. */
	CHECK(suspicions >= 2);
	net_free(&net);
}

/*
 * Two clusters on private networks (TESTING.md): A is nodes 0-3, B is 4-7,
 * and only the gateways 0 and 4 reach the other cluster, each other only.
 */
#define GW_A 0
#define GW_B 4

static bool two_reachable(int a, int b)
{
	bool gw_a = a == GW_A || a == GW_B, gw_b = b == GW_A || b == GW_B;
	return (a < GW_B) == (b < GW_B) || (gw_a && gw_b);
}

/*
 * Each private host joins through its gateway, the gateways each other, and
 * all push-pull every 30 s as the daemon does.
 */
static void net_init_two_clusters(struct tnet *net)
{
	net_start(net, true, MAXNODES);
	net->pushpull_ms = 30000;
	net->rng = 7;
	for (int a = 0; a < MAXNODES; a++)
		for (int b = 0; b < MAXNODES; b++)
			net->blocked[a][b] = !two_reachable(a, b);
	for (int i = 1; i < GW_B; i++)
		push_pull(net, GW_A, i);
	for (int i = GW_B + 1; i < MAXNODES; i++)
		push_pull(net, GW_B, i);
	push_pull(net, GW_A, GW_B);
}

static void test_two_clusters(void)
{
	struct tnet net;
	const int victim = 2; /* a private host of A */

	net_init_two_clusters(&net);
	/* A join into two clusters at once spends some broadcasts on members
	 * out of reach before they are tried; anti-entropy completes it. */
	net_run(&net, 95000);
	for (int i = 0; i < MAXNODES; i++) {
		uint32_t counts[GOSSIP_LEFT + 1];
		CHECK_EQ_U64(gossip_num_members(net.n[i].g, counts), MAXNODES);
		CHECK_EQ_U64(counts[GOSSIP_ALIVE], MAXNODES);
	}

	/* A long quiet time: nobody is suspected, no one must refute. */
	net_run(&net, 300000);
	for (int i = 0; i < MAXNODES; i++) {
		const struct gossip_counters *c = gossip_counters(net.n[i].g);
		CHECK_EQ_U64(c->suspicions, 0);
		CHECK_EQ_U64(c->refuted, 0);
		CHECK_EQ_U64(c->declared_dead, 0);
		/* Everyone has members out of reach, probed in vain. */
		CHECK(c->unreached_probes > 0);
		CHECK_EQ_U64(gossip_health(net.n[i].g), 0);
		CHECK_EQ_U64(gossip_incarnation(net.n[i].g), 0);
		for (int j = 0; j < MAXNODES; j++) {
			struct gossip_member m;
			CHECK(gossip_member_get(net.n[i].g, net.n[j].info.id,
			                        &m));
			CHECK(m.state == GOSSIP_ALIVE);
			CHECK(m.reached == two_reachable(i, j));
			CHECK(!net.n[i].ever_dead[j]);
			CHECK_EQ_U64(net.n[i].suspected[j], 0);
			CHECK_EQ_U64(net.n[i].refuted[j], 0);
		}
	}

	/* A private host of A dies: A finds out, B hears it from A. */
	uint64_t a_suspicions = 0;
	gossip_free(net.n[victim].g);
	net.n[victim].g = NULL;
	net.n[victim].down = true;
	uint64_t killed_at = net.now;
	net_run(&net, 60000);
	for (int i = 0; i < MAXNODES; i++) {
		if (i == victim)
			continue;
		const struct gossip_counters *c = gossip_counters(net.n[i].g);
		CHECK(state_at(&net, i, victim) == GOSSIP_DEAD);
		CHECK(net.n[i].ever_dead[victim]);
		CHECK(net.n[i].dead_at[victim] >= killed_at + 4000);
		for (int j = 0; j < MAXNODES; j++)
			CHECK(j == victim || !net.n[i].ever_dead[j]);
		CHECK_EQ_U64(c->refuted, 0);
		if (i < GW_B)
			a_suspicions += c->suspicions;
		else
			CHECK_EQ_U64(c->suspicions, 0); /* never reached it */
	}
	CHECK(a_suspicions > 0);

	/* A path appears between B's gateway and a private host of A: the
	 * regular probes find it. */
	net.blocked[GW_B][1] = net.blocked[1][GW_B] = false;
	net_run(&net, 30000);
	struct gossip_member m;
	CHECK(gossip_member_get(net.n[GW_B].g, net.n[1].info.id, &m));
	CHECK(m.reached && m.state == GOSSIP_ALIVE);
	CHECK(gossip_member_get(net.n[1].g, net.n[GW_B].info.id, &m));
	CHECK(m.reached && m.state == GOSSIP_ALIVE);
	net_free(&net);
}

/* Two runs from the same seeds produce the same event trace. */
static void test_deterministic(void)
{
	uint64_t traces[2];
	for (int r = 0; r < 2; r++) {
		struct tnet net;
		net_init(&net, false);
		net_run(&net, 2000);
		net.n[1].silent = true;
		net_run(&net, 20000);
		traces[r] = net.trace;
		net_free(&net);
	}
	CHECK(traces[0] != 0);
	CHECK_EQ_U64(traces[0], traces[1]);
}

/* A valid packet from node 0 to node 1, captured. */
static size_t capture_announce(struct tnet *net, uint8_t *out)
{
	net->capture = true;
	struct mc_addr to;
	addr_of(1, &to);
	gossip_announce(net->n[0].g, &to, net->now);
	net->capture = false;
	memcpy(out, net->captured, net->captured_len);
	return net->captured_len;
}

static void test_wire_rejects(void)
{
	struct tnet net;
	uint8_t pkt[MAXPKT];
	struct mc_addr from;

	memset(&net, 0, sizeof(net));
	net.count = 2;
	net.now = 1000;
	for (int i = 0; i < 2; i++)
		node_start(&net, i, 7);
	addr_of(0, &from);
	size_t len = capture_announce(&net, pkt);
	CHECK(len > 0 && len <= GOSSIP_PACKET_MAX);
	struct gossip *b = net.n[1].g;
	const struct gossip_counters *c = gossip_counters(b);

	/* Every proper prefix is refused, and nothing is learnt. */
	for (size_t n = 0; n < len; n++)
		gossip_recv(b, &from, pkt, n, net.now);
	CHECK_EQ_U64(gossip_num_members(b, NULL), 1);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_MALFORMED] +
	                 c->drops[GOSSIP_DROP_TRUNCATED],
	             len);
	/* Garbage. */
	uint64_t x = 12345;
	for (int r = 0; r < 2000; r++) {
		uint8_t junk[256];
		size_t n = 1 + (size_t)(x % sizeof(junk));
		for (size_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			junk[i] = (uint8_t)(x >> 56);
		}
		gossip_recv(b, &from, junk, n, net.now);
	}
	CHECK_EQ_U64(gossip_num_members(b, NULL), 1);
	/* Oversized. */
	uint8_t *huge = xcalloc(1, 70000);
	gossip_recv(b, &from, huge, 70000, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_TOO_BIG], 1);
	free(huge);
	/* The intact packet still works: node 0 joins node 1's view with
	 * everything it advertised. */
	gossip_recv(b, &from, pkt, len, net.now);
	struct gossip_member m;
	CHECK(gossip_member_get(b, net.n[0].info.id, &m));
	CHECK_EQ_U64(m.incarnation, 7);
	CHECK_STR(m.node->name, "host-0");
	CHECK_EQ_U64(m.node->cap.mem_mib_free, 8000);
	/* Flipping any single byte must not crash; some may even decode. */
	for (size_t i = 0; i < len; i++) {
		uint8_t copy[MAXPKT];
		memcpy(copy, pkt, len);
		copy[i] ^= 0xff;
		gossip_recv(b, &from, copy, len, net.now);
	}

	/* Snapshots: a truncated one is refused whole. */
	struct mc_buf s;
	mc_buf_init(&s);
	gossip_snapshot_encode(net.n[0].g, &s);
	for (size_t n = 0; n < s.len; n++)
		CHECK(gossip_snapshot_merge(net.n[1].g, s.data, n, net.now) ==
		      -EBADMSG);
	CHECK(gossip_snapshot_merge(net.n[1].g, s.data, s.len, net.now) == 0);
	mc_buf_free(&s);
	net_free(&net);
}

static void test_seal_keyring(void)
{
	struct tnet net;
	uint8_t pkt[MAXPKT];
	struct mc_addr from;
	uint8_t k1[32], k2[32], k3[32];

	memset(k1, 1, 32);
	memset(k2, 2, 32);
	memset(k3, 3, 32);
	memset(&net, 0, sizeof(net));
	net.count = 2;
	net.now = 1000;
	for (int i = 0; i < 2; i++)
		node_start(&net, i, 0);
	struct gossip *a = net.n[0].g, *b = net.n[1].g;
	const struct gossip_counters *c = gossip_counters(b);
	addr_of(0, &from);

	CHECK(gossip_keyring_add(a, k1) == 0);
	CHECK(gossip_keyring_add(a, k1) == -EEXIST);
	CHECK(gossip_keyring_remove(a, k1) == -EBUSY);
	CHECK(gossip_keyring_use(a, k2) == -ENOENT);
	CHECK(gossip_keyring_add(b, k2) == 0);

	/* Wrong key: dropped and counted. */
	size_t len = capture_announce(&net, pkt);
	CHECK(len > GOSSIP_SEAL_OVERHEAD);
	gossip_recv(b, &from, pkt, len, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_BAD_KEY], 1);
	CHECK_EQ_U64(gossip_num_members(b, NULL), 1);

	/* An older key still in the ring opens it (rotation). */
	CHECK(gossip_keyring_add(b, k1) == 0);
	gossip_recv(b, &from, pkt, len, net.now);
	CHECK_EQ_U64(gossip_num_members(b, NULL), 2);

	/* The same packet again is a replay. */
	gossip_recv(b, &from, pkt, len, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_REPLAY], 1);

	/* Forged: one bit of the header or body changed. */
	pkt[3] ^= 1;
	gossip_recv(b, &from, pkt, len, net.now);
	pkt[3] ^= 1;
	pkt[len - 1] ^= 1;
	gossip_recv(b, &from, pkt, len, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_BAD_KEY], 3);

	/* Truncated below any sealed packet. */
	gossip_recv(b, &from, pkt, 20, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_TRUNCATED], 1);

	/* Rotate a to k3 with k1 kept: b, without k3, drops; with it,
	 * accepts. Then a retires k1. */
	CHECK(gossip_keyring_add(a, k3) == 0);
	CHECK(gossip_keyring_use(a, k3) == 0);
	CHECK(gossip_keyring_remove(a, k1) == 0);
	len = capture_announce(&net, pkt);
	gossip_recv(b, &from, pkt, len, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_BAD_KEY], 4);
	CHECK(gossip_keyring_add(b, k3) == 0);
	len = capture_announce(&net, pkt);
	uint64_t before = c->packets_in;
	gossip_recv(b, &from, pkt, len, net.now);
	CHECK_EQ_U64(c->packets_in, before + 1);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_BAD_KEY], 4);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_REPLAY], 1);

	/* Packets delivered out of order inside the window are fine. */
	uint8_t p1[MAXPKT], p2[MAXPKT];
	size_t l1 = capture_announce(&net, p1);
	size_t l2 = capture_announce(&net, p2);
	gossip_recv(b, &from, p2, l2, net.now);
	gossip_recv(b, &from, p1, l1, net.now);
	CHECK_EQ_U64(c->drops[GOSSIP_DROP_REPLAY], 1);
	net_free(&net);
}

static void test_config_and_names(void)
{
	struct gossip_config c;
	gossip_config_default(&c);
	CHECK(gossip_new(&c, 0) == NULL); /* no id, no send callback */
	node_info(0, &c.local);
	CHECK(gossip_new(&c, 0) == NULL);
	CHECK(gossip_id_valid("0123456789abcdef"));
	CHECK(!gossip_id_valid("0123456789ABCDEF"));
	CHECK(!gossip_id_valid("0123456789abcde"));
	CHECK_STR(gossip_state_name(GOSSIP_SUSPECT), "suspect");
	CHECK_STR(gossip_event_name(GOSSIP_EV_LEFT), "left");
	CHECK_STR(gossip_drop_name(GOSSIP_DROP_REPLAY), "replay");
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	mc_log_set_level(getenv("GOSSIP_DEBUG") ? MC_LOG_DEBUG : MC_LOG_WARN);
	RUN(test_config_and_names);
	RUN(test_wire_rejects);
	RUN(test_seal_keyring);
	RUN(test_join_all_alive);
	RUN(test_silenced_node_dies);
	RUN(test_paused_node_refutes);
	RUN(test_leave);
	RUN(test_user_broadcast_and_update);
	RUN(test_restart_rejoins);
	RUN(test_flat_early_death);
	RUN(test_two_clusters);
	RUN(test_deterministic);
	return check_summary();
}
