/*
 * gossip-sim: N instances of the real gossip state machine in one process,
 * on a simulated clock and network (latency distribution, loss, a
 * partition, crashes and restarts). One thread, one PRNG for the network
 * and one seed per instance, all drawn from --seed: the same flags give the
 * same output.
 *
 * It measures how fast one user broadcast reaches the live nodes (the
 * convergence curve), how fast crashed nodes are declared dead everywhere,
 * which live nodes were ever declared dead (false positives), and the bytes
 * each node sends per second.
 */
#include "gossip-sim.h"

#include "crypto.h"
#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct sim *s)
{
	uint64_t *r = s->rng;
	uint64_t result = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
	r[2] ^= r[0];
	r[3] ^= r[1];
	r[1] ^= r[2];
	r[0] ^= r[3];
	r[2] ^= t;
	r[3] = rotl(r[3], 45);
	return result;
}

static double rnd_unit(struct sim *s)
{
	return (double)(rnd(s) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t latency_us(struct sim *s)
{
	double mean = s->o.latency_ms * 1000.0, v;
	if (s->o.lognormal) {
		const double sigma = 0.5;
		double u1 = rnd_unit(s), u2 = rnd_unit(s);
		if (u1 < 1e-12)
			u1 = 1e-12;
		double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
		v = exp(log(mean) - sigma * sigma / 2 + sigma * z);
	} else {
		v = mean * (0.5 + rnd_unit(s));
	}
	return v < 1 ? 1 : (uint64_t)v;
}

/* The event queue: a binary heap ordered by (time, insertion). */

static bool ev_before(const struct ev *a, const struct ev *b)
{
	return a->t_us < b->t_us || (a->t_us == b->t_us && a->seq < b->seq);
}

static void push(struct sim *s, struct ev e)
{
	if (s->nheap == s->cap_heap) {
		s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 1024;
		s->heap = xrealloc(s->heap, sizeof(*s->heap) * s->cap_heap);
	}
	e.seq = s->seq++;
	size_t i = s->nheap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!ev_before(&e, &s->heap[p]))
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = e;
}

static struct ev pop(struct sim *s)
{
	struct ev top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && ev_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

/* Nodes and their addresses: 10.x.y.z:7700 for index x.y.z. */

static void node_addr(uint32_t idx, struct mc_addr *a)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	memset(a, 0, sizeof(*a));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(7700);
	sin->sin_addr.s_addr = htonl(0x0a000000u | idx);
	a->len = sizeof(*sin);
}

static uint32_t addr_node(const struct mc_addr *a)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
	if (a->ss.ss_family != AF_INET)
		return UINT32_MAX;
	return ntohl(sin->sin_addr.s_addr) & 0xffffffu;
}

static uint32_t id_node(const char *id)
{
	return (uint32_t)(strtoull(id, NULL, 16) - 1);
}

static void schedule(struct sim *s, struct node *n)
{
	if (!n->up)
		return;
	uint64_t t = gossip_next_deadline(n->g) * US;
	if (t < s->now_us)
		t = s->now_us;
	if (t < n->wake_us) {
		n->wake_us = t;
		push(s,
		     (struct ev){.t_us = t, .kind = EV_TIMER, .node = n->idx});
	}
}

static bool partitioned(struct sim *s, uint32_t a, uint32_t b)
{
	double t = (double)s->now_us / 1e6;
	if (s->o.part_frac <= 0 || t < s->o.part_start_s ||
	    t >= s->o.part_end_s)
		return false;
	uint32_t cut = (uint32_t)(s->o.part_frac * s->o.nodes);
	return (a < cut) != (b < cut);
}

static void cb_send(void *ctx, const struct mc_addr *to, const uint8_t *pkt,
                    size_t len)
{
	struct node *n = ctx;
	struct sim *s = n->sim;
	uint32_t dst = addr_node(to);

	n->bytes_out += len;
	s->bytes_total += len;
	s->packets++;
	if (dst >= s->o.nodes || rnd_unit(s) < s->o.loss ||
	    partitioned(s, n->idx, dst)) {
		s->lost++;
		return;
	}
	uint8_t *copy = xmalloc(len);
	memcpy(copy, pkt, len);
	push(s, (struct ev){.t_us = s->now_us + latency_us(s),
	                    .kind = EV_PACKET,
	                    .node = dst,
	                    .src = n->idx,
	                    .len = (uint32_t)len,
	                    .pkt = copy});
}

static void cb_event(void *ctx, enum gossip_event ev,
                     const struct gossip_member *m)
{
	struct node *n = ctx;
	struct sim *s = n->sim;
	uint32_t target = id_node(m->node->id);

	if (target >= s->o.nodes)
		return;
	if (ev == GOSSIP_EV_DEAD) {
		struct node *t = &s->nodes[target];
		if (t->up) {
			s->fp_declarations++;
			s->fp_node[target] = 1;
			return;
		}
		for (uint32_t i = 0; i < s->nvictims; i++) {
			struct victim *v = &s->victims[i];
			if (v->idx != target || !t->killed ||
			    (v->seen[n->idx / 8] & (1u << (n->idx % 8))))
				continue;
			v->seen[n->idx / 8] |= (uint8_t)(1u << (n->idx % 8));
			if (v->first_us == NEVER)
				v->first_us = s->now_us;
			if (++v->observers == s->live_at_kill &&
			    v->all_us == NEVER)
				v->all_us = s->now_us;
		}
	} else if (ev == GOSSIP_EV_JOINED && s->nodes[target].up &&
	           s->nodes[target].killed) {
		/* A restarted node is back in someone's view. */
		if (s->rejoin_first_us == NEVER)
			s->rejoin_first_us = s->now_us;
		if (++s->rejoin_seen == (uint64_t)s->nvictims * s->live_at_kill)
			s->rejoin_all_us = s->now_us;
	}
}

static bool cb_user(void *ctx, const char *key, const uint8_t *body, size_t len)
{
	struct node *n = ctx;
	(void)key;
	(void)body;
	(void)len;
	if (n->knows_us != NEVER)
		return false;
	n->knows_us = n->sim->now_us;
	return true;
}

bool sim_sealing(const struct sim *s)
{
	return s->o.seal < 0 ? s->o.nodes <= 1000 : s->o.seal;
}

static void node_start(struct sim *s, struct node *n, uint32_t inc)
{
	struct gossip_config c;

	gossip_config_default(&c);
	c.local = n->info;
	c.incarnation = inc;
	c.seed = s->o.seed * 0x9e3779b97f4a7c15ULL + n->idx * 7919ULL + inc;
	c.epoch_ms = s->now_us / US;
	c.cb = (struct gossip_callbacks){
	    .ctx = n, .send = cb_send, .event = cb_event, .user = cb_user};
	c.intern = s->intern;
	c.members_hint = s->o.nodes;
	n->g = gossip_new(&c, s->now_us / US);
	if (!n->g) {
		fprintf(stderr, "gossip-sim: gossip_new failed\n");
		exit(1);
	}
	if (sim_sealing(s))
		gossip_keyring_add(n->g, s->key);
	n->up = true;
	n->wake_us = NEVER;
}

static void setup(struct sim *s)
{
	uint64_t x = s->o.seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix(&x);
	for (int i = 0; i < 32; i++)
		s->key[i] = (uint8_t)rnd(s);
	s->intern = gossip_intern_new();
	s->nodes = xcalloc(s->o.nodes, sizeof(*s->nodes));
	s->fp_node = xcalloc(s->o.nodes, 1);
	for (uint32_t i = 0; i < s->o.nodes; i++) {
		struct node *n = &s->nodes[i];
		n->sim = s;
		n->idx = i;
		n->knows_us = NEVER;
		snprintf(n->info.id, sizeof(n->info.id), "%016" PRIx64,
		         (uint64_t)i + 1);
		snprintf(n->info.name, sizeof(n->info.name), "node-%u", i);
		snprintf(n->info.zone, sizeof(n->info.zone), "z%u", i % 3);
		snprintf(n->info.version, sizeof(n->info.version), "0.1.0");
		node_addr(i, &n->info.addr);
		n->info.roles = 3;
		n->info.cap =
		    (struct gossip_capacity){.vcpu_total = 32,
		                             .vcpu_free = 32,
		                             .mem_mib_total = 131072,
		                             .mem_mib_free = 131072,
		                             .disk_mib_total = 1 << 20,
		                             .disk_mib_free = 1 << 20};
		memset(n->info.sign_pk, (int)(i & 0xff), 32);
		memset(n->info.box_pk, (int)(~i & 0xff), 32);
		node_start(s, n, 0);
	}
	/* Steady state from the start: everyone knows everyone. The
	 * interned infos are shared, so N^2 entries cost 40 bytes each. */
	const struct gossip_node **local = xcalloc(s->o.nodes, sizeof(*local));
	for (uint32_t j = 0; j < s->o.nodes; j++)
		local[j] = gossip_local_node(s->nodes[j].g);
	for (uint32_t i = 0; i < s->o.nodes; i++)
		for (uint32_t j = 0; j < s->o.nodes; j++)
			if (i != j)
				gossip_seed(s->nodes[i].g, local[j], 0, 0);
	free(local);
	for (uint32_t i = 0; i < s->o.nodes; i++)
		schedule(s, &s->nodes[i]);
}

static void do_kill(struct sim *s)
{
	uint32_t k = s->o.kill < s->o.nodes ? s->o.kill : s->o.nodes - 1;
	s->victims = xcalloc(k, sizeof(*s->victims));
	s->live_at_kill = 0;
	for (uint32_t i = 0; i < s->o.nodes; i++)
		s->live_at_kill += s->nodes[i].up;
	while (s->nvictims < k) {
		uint32_t i = (uint32_t)(rnd(s) % s->o.nodes);
		struct node *n = &s->nodes[i];
		if (!n->up || i == 0)
			continue; /* node 0 injects the event */
		n->up = false;
		n->killed = true;
		n->down_us = s->now_us;
		gossip_free(n->g);
		n->g = NULL;
		struct victim *v = &s->victims[s->nvictims++];
		v->idx = i;
		v->first_us = v->all_us = NEVER;
		v->seen = xcalloc(s->o.nodes / 8 + 1, 1);
	}
	s->live_at_kill -= k;
}

/* A crashed node comes back empty and joins through one push-pull. */
static void do_restart(struct sim *s)
{
	struct mc_buf a, b;
	for (uint32_t v = 0; v < s->nvictims; v++) {
		struct node *n = &s->nodes[s->victims[v].idx];
		node_start(s, n, 0);
		uint32_t peer;
		do {
			peer = (uint32_t)(rnd(s) % s->o.nodes);
		} while (!s->nodes[peer].up || peer == n->idx);
		struct gossip *pg = s->nodes[peer].g;
		uint64_t now = s->now_us / US;
		mc_buf_init(&a);
		mc_buf_init(&b);
		gossip_snapshot_encode(n->g, &a);
		gossip_snapshot_encode(pg, &b);
		gossip_snapshot_merge(pg, a.data, a.len, now);
		gossip_snapshot_merge(n->g, b.data, b.len, now);
		mc_buf_free(&a);
		mc_buf_free(&b);
		schedule(s, n);
		schedule(s, &s->nodes[peer]);
	}
}

static void do_inject(struct sim *s)
{
	struct node *n = &s->nodes[0];
	static const uint8_t body[] = "record delta: vm/i-0001 v2";
	s->inject_us = s->now_us;
	n->knows_us = s->now_us;
	gossip_broadcast_user(n->g, "rec/i-0001", body, sizeof(body));
	schedule(s, n);
}

static void run(struct sim *s)
{
	uint64_t end = (uint64_t)(s->o.duration_s * 1e6);

	if (s->o.kill)
		push(s, (struct ev){.t_us = (uint64_t)(s->o.kill_at_s * 1e6),
		                    .kind = EV_KILL});
	if (s->o.kill && s->o.restart_after_s > 0)
		push(s, (struct ev){.t_us = (uint64_t)((s->o.kill_at_s +
		                                        s->o.restart_after_s) *
		                                       1e6),
		                    .kind = EV_RESTART});
	if (s->o.event)
		push(s, (struct ev){.t_us = (uint64_t)(s->o.event_at_s * 1e6),
		                    .kind = EV_INJECT});
	push(s, (struct ev){.t_us = s->window_start_us, .kind = EV_SAMPLE});
	push(s, (struct ev){.t_us = s->window_end_us, .kind = EV_SAMPLE});

	while (s->nheap) {
		struct ev e = pop(s);
		if (e.t_us > end) {
			free(e.pkt);
			break;
		}
		s->now_us = e.t_us;
		struct node *n = &s->nodes[e.node];
		switch (e.kind) {
		case EV_TIMER:
			if (!n->up || n->wake_us != e.t_us)
				break;
			n->wake_us = NEVER;
			gossip_tick(n->g, s->now_us / US);
			schedule(s, n);
			break;
		case EV_PACKET:
			if (n->up) {
				struct mc_addr from;
				node_addr(e.src, &from);
				s->delivered++;
				gossip_recv(n->g, &from, e.pkt, e.len,
				            s->now_us / US);
				schedule(s, n);
			}
			free(e.pkt);
			break;
		case EV_KILL:
			do_kill(s);
			break;
		case EV_RESTART:
			do_restart(s);
			break;
		case EV_INJECT:
			do_inject(s);
			break;
		case EV_SAMPLE:
			if (e.t_us == s->window_start_us)
				s->bytes_window_start = s->bytes_total;
			if (e.t_us == s->window_end_us)
				s->bytes_window_end = s->bytes_total;
			break;
		}
	}
	while (s->nheap)
		free(pop(s).pkt);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: gossip-sim [--nodes N] [--seed S] [--loss P|P%%]\n"
	        "  [--latency-ms M] [--latency-dist lognormal|uniform]\n"
	        "  [--duration-s T] [--kill K] [--kill-at-s T]\n"
	        "  [--restart-after-s T] [--event] [--event-at-s T]\n"
	        "  [--partition START:END:FRACTION] [--seal|--no-seal]\n"
	        "  [--step-ms MS] [--json]\n");
	exit(2);
}

static double num(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		usage();
	if (*end == '%')
		v /= 100.0;
	else if (*end)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {{"nodes", 1, 0, 'n'},
	                                      {"seed", 1, 0, 's'},
	                                      {"loss", 1, 0, 'l'},
	                                      {"latency-ms", 1, 0, 'L'},
	                                      {"latency-dist", 1, 0, 'D'},
	                                      {"duration-s", 1, 0, 'd'},
	                                      {"kill", 1, 0, 'k'},
	                                      {"kill-at-s", 1, 0, 'K'},
	                                      {"restart-after-s", 1, 0, 'R'},
	                                      {"event", 0, 0, 'e'},
	                                      {"event-at-s", 1, 0, 'E'},
	                                      {"partition", 1, 0, 'p'},
	                                      {"seal", 0, 0, 'S'},
	                                      {"no-seal", 0, 0, 'N'},
	                                      {"json", 0, 0, 'j'},
	                                      {"step-ms", 1, 0, 't'},
	                                      {"help", 0, 0, 'h'},
	                                      {0, 0, 0, 0}};
	struct sim s;
	int c;

	memset(&s, 0, sizeof(s));
	s.o = (struct opts){.nodes = 100,
	                    .seed = 1,
	                    .latency_ms = 5,
	                    .lognormal = true,
	                    .duration_s = 10,
	                    .kill_at_s = 5,
	                    .event_at_s = 5,
	                    .seal = -1,
	                    .step_ms = 100,
	                    .warmup_s = 3};
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'n':
			s.o.nodes = (uint32_t)num(optarg);
			break;
		case 's':
			s.o.seed = strtoull(optarg, NULL, 0);
			break;
		case 'l':
			s.o.loss = num(optarg);
			break;
		case 'L':
			s.o.latency_ms = num(optarg);
			break;
		case 'D':
			if (strcmp(optarg, "uniform") == 0)
				s.o.lognormal = false;
			else if (strcmp(optarg, "lognormal") == 0)
				s.o.lognormal = true;
			else
				usage();
			break;
		case 'd':
			s.o.duration_s = num(optarg);
			break;
		case 'k':
			s.o.kill = (uint32_t)num(optarg);
			break;
		case 'K':
			s.o.kill_at_s = num(optarg);
			break;
		case 'R':
			s.o.restart_after_s = num(optarg);
			break;
		case 'e':
			s.o.event = true;
			break;
		case 'E':
			s.o.event_at_s = num(optarg);
			break;
		case 'p':
			if (sscanf(optarg, "%lf:%lf:%lf", &s.o.part_start_s,
			           &s.o.part_end_s, &s.o.part_frac) != 3)
				usage();
			break;
		case 'S':
			s.o.seal = 1;
			break;
		case 'N':
			s.o.seal = 0;
			break;
		case 'j':
			s.o.json = true;
			break;
		case 't':
			s.o.step_ms = num(optarg);
			break;
		default:
			usage();
		}
	}
	if (s.o.nodes < 2 || s.o.nodes > (1u << 24) || s.o.loss >= 1 ||
	    s.o.step_ms <= 0 || optind != argc)
		usage();
	if (mc_crypto_init() != 0)
		return 1;
	mc_log_set_level(getenv("SIM_DEBUG") ? MC_LOG_DEBUG : MC_LOG_WARN);

	/* Bytes are also counted over a window of steady state: after the
	 * start-up announcements, before the first injected change. */
	double first = s.o.duration_s;
	if (s.o.event && s.o.event_at_s < first)
		first = s.o.event_at_s;
	if (s.o.kill && s.o.kill_at_s < first)
		first = s.o.kill_at_s;
	if (s.o.part_frac > 0 && s.o.part_start_s < first)
		first = s.o.part_start_s;
	double warm = s.o.warmup_s < first ? s.o.warmup_s : first / 2;
	s.window_start_us = (uint64_t)(warm * 1e6);
	s.window_end_us = (uint64_t)(first * 1e6);
	s.rejoin_first_us = s.rejoin_all_us = NEVER;

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	setup(&s);
	run(&s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sim_report(&s, (double)(t1.tv_sec - t0.tv_sec) +
	                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

	for (uint32_t i = 0; i < s.o.nodes; i++)
		gossip_free(s.nodes[i].g);
	for (uint32_t i = 0; i < s.nvictims; i++)
		free(s.victims[i].seen);
	free(s.victims);
	free(s.nodes);
	free(s.fp_node);
	free(s.heap);
	gossip_intern_unref(s.intern);
	return 0;
}
