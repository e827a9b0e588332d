/*
 * The edge's placement step (peer/launch_plan.c): loads come only from
 * instances that hold capacity, counted on their own host; candidates are
 * placement's order over the hosts, so dead hosts, full hosts and hosts of
 * other zones never appear, and the order is the one plc_candidates gives.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "launch.h"
#include "placement.h"

static void make_inst(struct mc_instance *in, const char *id, const char *host,
                      enum mc_instance_state st)
{
	memset(in, 0, sizeof(*in));
	snprintf(in->id, sizeof(in->id), "%s", id);
	snprintf(in->host, sizeof(in->host), "%s", host);
	in->state = st;
}

static void test_loads(void)
{
	struct peer_launch_loads l = {0};
	struct mc_instance in;
	static const struct {
		const char *host;
		enum mc_instance_state st;
	} recs[] = {
	    {"00000000000000aa", MC_INST_PENDING},
	    {"00000000000000aa", MC_INST_RUNNING},
	    {"00000000000000aa", MC_INST_TERMINATED}, /* holds nothing */
	    {"00000000000000aa", MC_INST_STOPPED},    /* holds nothing */
	    {"00000000000000bb", MC_INST_STOPPING},
	    {"00000000000000bb", MC_INST_SHUTTING_DOWN},
	    {"00000000000000cc", MC_INST_TERMINATED},
	    {"", MC_INST_PENDING}, /* no host yet: not counted */
	};
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		make_inst(&in, "i-0123456789abcdef0", recs[i].host, recs[i].st);
		peer_launch_loads_add(&l, &in);
	}
	peer_launch_loads_seal(&l);
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000aa"), 2);
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000bb"), 2);
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000cc"), 0);
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000dd"), 0);
	peer_launch_loads_bump(&l, "00000000000000cc");
	peer_launch_loads_bump(&l, "00000000000000aa");
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000aa"), 3);
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000cc"), 1);
	peer_launch_loads_free(&l);
	CHECK_EQ_U64(peer_launch_loads_get(&l, "00000000000000aa"), 0);
}

static void host(struct peer_launch_host *h, unsigned i, const char *zone,
                 uint32_t vcpu_free, uint64_t mem_free, bool alive)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->id, sizeof(h->id), "%016x", 0x1000 + i);
	snprintf(h->name, sizeof(h->name), "p%u", i);
	snprintf(h->zone, sizeof(h->zone), "%s", zone);
	h->cap.vcpu_total = 8;
	h->cap.vcpu_free = vcpu_free;
	h->cap.mem_mib_total = 16384;
	h->cap.mem_mib_free = mem_free;
	h->cap.disk_mib_total = 100000;
	h->cap.disk_mib_free = 100000;
	h->alive = alive;
}

static void want(struct mc_instance *w, const char *id, uint32_t vcpu,
                 uint64_t mem, const char *zone)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->vcpu = vcpu;
	w->mem_mib = mem;
	w->disk_mib = 1024;
	snprintf(w->zone, sizeof(w->zone), "%s", zone);
}

static bool listed(const size_t *order, long n, size_t i)
{
	for (long k = 0; k < n; k++)
		if (order[k] == i)
			return true;
	return false;
}

static void test_filters(void)
{
	struct peer_launch_host h[6];
	host(&h[0], 0, "za", 8, 16384, true);
	host(&h[1], 1, "za", 8, 16384, false); /* dead */
	host(&h[2], 2, "za", 1, 16384, true);  /* too few vCPU free */
	host(&h[3], 3, "za", 8, 512, true);    /* too little memory free */
	host(&h[4], 4, "zb", 8, 16384, true);  /* other zone */
	host(&h[5], 5, "za", 4, 8192, true);
	struct mc_instance w;
	size_t order[6];

	want(&w, "i-00000000000000001", 2, 2048, "za");
	long n = peer_launch_candidates(h, 6, &w, order, 6);
	CHECK_EQ_U64(n, 2);
	CHECK(listed(order, n, 0) && listed(order, n, 5));

	want(&w, "i-00000000000000001", 2, 2048, "");
	n = peer_launch_candidates(h, 6, &w, order, 6);
	CHECK_EQ_U64(n, 3);
	CHECK(listed(order, n, 4));

	want(&w, "i-00000000000000001", 64, 2048, "");
	CHECK_EQ_U64(peer_launch_candidates(h, 6, &w, order, 6), 0);
	CHECK_EQ_U64(peer_launch_candidates(h, 0, &w, order, 6), 0);
}

/* The order is placement's, over the same numbers. */
static void test_matches_placement(void)
{
	enum { N = 12 };
	struct peer_launch_host h[N];
	struct plc_host ph[N];
	for (unsigned i = 0; i < N; i++) {
		host(&h[i], i, i % 2 ? "za" : "zb", 8 - i % 4, 16384, true);
		h[i].load = i % 3;
		ph[i] = (struct plc_host){
		    .id = h[i].id,
		    .zone = h[i].zone,
		    .vcpu_total = h[i].cap.vcpu_total,
		    .vcpu_free = h[i].cap.vcpu_free,
		    .mem_total_mib = h[i].cap.mem_mib_total,
		    .mem_free_mib = h[i].cap.mem_mib_free,
		    .disk_total_mib = h[i].cap.disk_mib_total,
		    .disk_free_mib = h[i].cap.disk_mib_free,
		    .load = h[i].load,
		    .alive = true,
		};
	}
	struct plc_view *view = plc_view_new(ph, N, PLC_EPSILON_DEFAULT);
	unsigned same = 0;
	for (unsigned k = 0; k < 200; k++) {
		char id[32];
		snprintf(id, sizeof(id), "i-%017x", k * 7919u);
		struct mc_instance w;
		want(&w, id, 1, 1024, "");
		size_t a[N], b[N];
		long na = peer_launch_candidates(h, N, &w, a, N);
		struct plc_request req = {.instance_id = id,
		                          .vcpu = 1,
		                          .mem_mib = 1024,
		                          .disk_mib = 1024};
		long nb = plc_candidates(view, &req, b, N);
		same += na == nb && na == N &&
		        memcmp(a, b, sizeof(a[0]) * (size_t)na) == 0;
	}
	plc_view_free(view);
	CHECK_EQ_U64(same, 200);
}

int main(void)
{
	RUN(test_loads);
	RUN(test_filters);
	RUN(test_matches_placement);
	return check_summary();
}
