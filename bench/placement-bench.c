/*
 * placement-bench: placement decisions per second on one core, at 1,000 and
 * 10,000 hosts, and the balance bounded loads keep over 10,000 placements.
 *
 * A decision is one plc_candidates() call on a prepared view: hashing the
 * instance id, filtering the hosts that fit, computing the caps, and the
 * first DECISION_K candidates in order (the edge asks them in turn; a
 * refusal by all of them is followed by a call with a larger k). The full
 * order (k = every host) and building a view from scratch (hashing and
 * ranking every host id) are timed too, for the cold path.
 *
 * Anchor: Nomad's "C1M" run placed one million containers cluster-wide at
 * about 3,750 placements/s; the ratios below compare one mallee core's
 * decisions to that (placing is more than deciding, so the ratio says the
 * decision is not the bottleneck, no more).
 */
#include "placement.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOMAD_C1M_PER_S 3750.0
#define DECISION_K      8
#define SECONDS         1.0
#define REQUESTS        4096
#define BALANCE_HOSTS   100
#define BALANCE_PLACED  10000

static uint64_t rng_state = 42;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/*
 * Rates are wall-clock (CLOCK_MONOTONIC). The share of that time the
 * process was on a CPU is printed beside them: well under 100% means other
 * work shared the core and the rate is an underestimate.
 */
static double cpu_share;

static const char *const zones[] = {"zone-a", "zone-b", "zone-c"};

struct fleet {
	size_t n;
	struct plc_host *hosts;
	char (*ids)[24];
};

/*
 * n hosts of 1-8x a 4 vCPU / 8 GiB unit in three zones, 3% dead, partly
 * full, with loads near their share of 10 instances per host.
 */
static void fleet_make(struct fleet *f, size_t n, bool messy)
{
	f->n = n;
	f->hosts = calloc(n, sizeof(*f->hosts));
	f->ids = calloc(n, sizeof(*f->ids));
	if (!f->hosts || !f->ids)
		abort();
	for (size_t i = 0; i < n; i++) {
		uint32_t mult = 1 + (uint32_t)(rng_next() % 8);
		struct plc_host *h = &f->hosts[i];
		snprintf(f->ids[i], sizeof(f->ids[i]), "host-%016" PRIx64,
		         rng_next());
		h->id = f->ids[i];
		h->zone = zones[i % 3];
		h->vcpu_total = h->vcpu_free = 4 * mult;
		h->mem_total_mib = h->mem_free_mib = 8192 * (uint64_t)mult;
		h->disk_total_mib = h->disk_free_mib = 200000 * (uint64_t)mult;
		h->alive = true;
		if (!messy)
			continue;
		h->alive = rng_next() % 100 >= 3;
		h->vcpu_free = (uint32_t)(rng_next() % (h->vcpu_total + 1));
		h->mem_free_mib = rng_next() % (h->mem_total_mib + 1);
		h->load = (uint32_t)(rng_next() % (3 * mult + 1));
	}
}

static void fleet_free(struct fleet *f)
{
	free(f->hosts);
	free(f->ids);
}

static struct plc_request requests[REQUESTS];
static char request_ids[REQUESTS][24];

/* Instance types from t3.micro to m5.xlarge; a zone asked for 1 in 4. */
static void requests_make(void)
{
	static const struct {
		uint32_t vcpu;
		uint64_t mem;
	} types[] = {{2, 1024}, {2, 4096}, {2, 8192}, {4, 16384}, {1, 512}};
	for (size_t i = 0; i < REQUESTS; i++) {
		snprintf(request_ids[i], sizeof(request_ids[i]),
		         "i-%017" PRIx64, rng_next() >> 4);
		size_t t = rng_next() % 5;
		requests[i] = (struct plc_request){
		    .instance_id = request_ids[i],
		    .vcpu = types[t].vcpu,
		    .mem_mib = types[t].mem,
		    .disk_mib = 8192,
		    .zone = rng_next() % 4 == 0 ? zones[rng_next() % 3] : NULL,
		};
	}
}

/* Decisions per second with the first k candidates (k = 0: every host). */
static double decisions_per_s(struct plc_view *view, size_t k, size_t *out,
                              uint64_t *sink)
{
	if (k == 0)
		k = plc_view_size(view);
	uint64_t done = 0;
	double start = now(), cpu_start = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	double elapsed;
	do {
		for (int i = 0; i < 256; i++) {
			const struct plc_request *req =
			    &requests[done++ % REQUESTS];
			long got = plc_candidates(view, req, out, k);
			*sink += got > 0 ? out[0] + (uint64_t)got : 0;
		}
		elapsed = now() - start;
	} while (elapsed < SECONDS);
	cpu_share = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu_start) / elapsed;
	return (double)done / elapsed;
}

static double views_per_s(const struct fleet *f)
{
	uint64_t done = 0;
	double start = now(), elapsed;
	do {
		struct plc_view *view = plc_view_new(f->hosts, f->n, 0.25);
		if (!view)
			abort();
		plc_view_free(view);
		done++;
		elapsed = now() - start;
	} while (elapsed < SECONDS);
	return (double)done / elapsed;
}

/* max over hosts of load/weight over total load/total weight. */
static double balance(double epsilon)
{
	struct fleet f;
	fleet_make(&f, BALANCE_HOSTS, false);
	struct plc_view *view = plc_view_new(f.hosts, f.n, epsilon);
	if (!view)
		abort();
	for (unsigned i = 0; i < BALANCE_PLACED; i++) {
		char iid[24];
		snprintf(iid, sizeof(iid), "i-%017x", 0x100000u + i);
		struct plc_request req = {.instance_id = iid, .vcpu = 1};
		size_t best;
		if (plc_candidates(view, &req, &best, 1) != 1)
			abort();
		plc_view_set_load(view, best, ++f.hosts[best].load);
	}
	double total_w = 0, total_load = 0, max = 0;
	for (size_t i = 0; i < f.n; i++) {
		double w = (double)plc_host_weight(&f.hosts[i]);
		total_w += w;
		total_load += f.hosts[i].load;
		if (f.hosts[i].load / w > max)
			max = f.hosts[i].load / w;
	}
	plc_view_free(view);
	fleet_free(&f);
	return max / (total_load / total_w);
}

int main(void)
{
	static const size_t sizes[] = {1000, 10000};
	double top[2], share[2], full[2], build[2];
	uint64_t sink = 0;

	requests_make();
	for (int s = 0; s < 2; s++) {
		struct fleet f;
		fleet_make(&f, sizes[s], true);
		struct plc_view *view = plc_view_new(f.hosts, f.n, 0.25);
		size_t *out = calloc(f.n, sizeof(*out));
		if (!view || !out)
			abort();
		top[s] = decisions_per_s(view, DECISION_K, out, &sink);
		share[s] = cpu_share;
		full[s] = decisions_per_s(view, 0, out, &sink);
		build[s] = views_per_s(&f);
		free(out);
		plc_view_free(view);
		fleet_free(&f);
	}
	double capped = balance(0.25), uncapped = balance(INFINITY);

	printf("placement-bench: one core, decision = first %d candidates\n",
	       DECISION_K);
	printf("%-6s %12s %8s %9s %5s %13s %13s\n", "hosts", "decisions/s",
	       "us each", "vs Nomad", "cpu", "full order/s", "view builds/s");
	for (int s = 0; s < 2; s++)
		printf("%-6zu %12.0f %8.2f %8.1fx %4.0f%% %13.0f %13.1f\n",
		       sizes[s], top[s], 1e6 / top[s], top[s] / NOMAD_C1M_PER_S,
		       100 * share[s], full[s], build[s]);
	printf("balance after %d placements on %d hosts of 1-8x: max/mean "
	       "%.4f (eps 0.25), %.4f (no cap)\n",
	       BALANCE_PLACED, BALANCE_HOSTS, capped, uncapped);
	printf("{\"bench\":\"placement\",\"k\":%d,"
	       "\"decisions_per_s_1k\":%.0f,\"decisions_per_s_10k\":%.0f,"
	       "\"full_order_per_s_1k\":%.0f,\"full_order_per_s_10k\":%.0f,"
	       "\"view_builds_per_s_1k\":%.1f,\"view_builds_per_s_10k\":%.1f,"
	       "\"anchor\":\"nomad_c1m\",\"anchor_per_s\":%.0f,"
	       "\"ratio_1k\":%.2f,\"ratio_10k\":%.2f,"
	       "\"balance_max_over_mean\":%.4f,\"balance_uncapped\":%.4f,"
	       "\"epsilon\":0.25,\"cpu_share_1k\":%.2f,\"cpu_share_10k\":%.2f,"
	       "\"checksum\":%" PRIu64 "}\n",
	       DECISION_K, top[0], top[1], full[0], full[1], build[0], build[1],
	       NOMAD_C1M_PER_S, top[0] / NOMAD_C1M_PER_S,
	       top[1] / NOMAD_C1M_PER_S, capped, uncapped, share[0], share[1],
	       sink % 1000);
	return 0;
}
