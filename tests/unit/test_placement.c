/*
 * Placement: the same view gives the same order whatever the host order,
 * only hosts that fit appear, bounded loads keep hosts near their weighted
 * share, adding or removing a host moves few decisions, and the fast path
 * (partial selection, pruning by a bound, our own logarithm) agrees with a
 * deliberately naive reference on random views.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "placement.h"

#define EPS PLC_EPSILON_DEFAULT

/* A fixed-seed generator (splitmix64) so every run sees the same views. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint32_t rng_below(uint32_t n)
{
	return (uint32_t)(rng_next() % n);
}

/* Ids live in fixed buffers so that host arrays can be shuffled freely. */
struct name {
	char s[32];
};

static void instance_id(struct name *out, uint64_t i)
{
	snprintf(out->s, sizeof(out->s), "i-%017" PRIx64,
	         i & ((UINT64_C(1) << 60) - 1));
}

static const char *const zone_names[] = {"eu-west-1a", "eu-west-1b",
                                         "eu-west-1c"};

/* n hosts with capacities 1-8x, random free space, loads and zones. */
static void random_hosts(struct plc_host *hosts, struct name *ids, size_t n,
                         bool messy)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i].s, sizeof(ids[i].s), "h-%04zu-%08x", i,
		         (unsigned)rng_next());
		uint32_t mult = 1 + rng_below(8);
		struct plc_host *h = &hosts[i];
		*h = (struct plc_host){.id = ids[i].s, .alive = true};
		h->vcpu_total = 4 * mult;
		h->mem_total_mib = (uint64_t)h->vcpu_total * 2048;
		h->disk_total_mib = 100000 * (uint64_t)mult;
		h->vcpu_free = h->vcpu_total;
		h->mem_free_mib = h->mem_total_mib;
		h->disk_free_mib = h->disk_total_mib;
		if (!messy)
			continue;
		/* Memory-poor hosts weigh less than their vCPUs say. */
		if (rng_below(4) == 0)
			h->mem_total_mib = 1024 * (1 + rng_below(16));
		h->vcpu_free = rng_below(h->vcpu_total + 1);
		h->mem_free_mib = rng_next() % (h->mem_total_mib + 1);
		h->disk_free_mib = rng_next() % (h->disk_total_mib + 1);
		h->load = rng_below(40);
		h->alive = rng_below(10) != 0;
		uint32_t z = rng_below(4);
		h->zone = z < 3 ? zone_names[z] : NULL;
	}
}

static void random_request(struct plc_request *req, struct name *iid)
{
	instance_id(iid, rng_next());
	*req = (struct plc_request){.instance_id = iid->s};
	req->vcpu = rng_below(5);
	req->mem_mib = rng_below(3) == 0 ? 0 : 512 * (1 + rng_below(8));
	req->disk_mib = rng_below(2) ? 0 : rng_next() % 50000;
	uint32_t z = rng_below(5);
	req->zone = z < 3 ? zone_names[z] : (z == 3 ? "" : NULL);
}

static bool host_fits(const struct plc_host *h, const struct plc_request *req)
{
	bool any_zone = !req->zone || !*req->zone;
	return h->alive && plc_host_weight(h) > 0 &&
	       h->vcpu_free >= req->vcpu && h->mem_free_mib >= req->mem_mib &&
	       h->disk_free_mib >= req->disk_mib &&
	       (any_zone || (h->zone && strcmp(h->zone, req->zone) == 0));
}

/*
 * The reference: the definition in placement.h, written the obvious way.
 * Scores every host with libm's log(), computes each cap with ceil() and
 * sorts everything with qsort.
 */
struct ref_entry {
	const char *id;
	bool capped;
	double score;
	size_t host;
};

static int ref_cmp(const void *a, const void *b)
{
	const struct ref_entry *x = a, *y = b;
	if (x->capped != y->capped)
		return x->capped ? 1 : -1;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

static size_t reference_order(const struct plc_host *hosts, size_t n,
                              const struct plc_request *req, double eps,
                              size_t *out, size_t *n_capped)
{
	struct ref_entry *e = calloc(n ? n : 1, sizeof(*e));
	double total_weight = 0, total_load = 0;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (!host_fits(&hosts[i], req))
			continue;
		total_weight += (double)plc_host_weight(&hosts[i]);
		total_load += hosts[i].load;
		e[m++] = (struct ref_entry){.id = hosts[i].id, .host = i};
	}
	for (size_t j = 0; j < m; j++) {
		const struct plc_host *h = &hosts[e[j].host];
		double w = (double)plc_host_weight(h);
		double u = plc_unit(h->id, req->instance_id);
		double share = (total_load + 1) * w / total_weight;
		double cap = fmax(floor((1 + eps) * share), ceil(share));
		e[j].capped = h->load >= cap;
		e[j].score = -w / log(u);
	}
	qsort(e, m, sizeof(*e), ref_cmp);
	for (size_t j = 0; j < m; j++)
		out[j] = e[j].host;
	*n_capped = 0;
	for (size_t j = 0; j < m; j++)
		*n_capped += e[j].capped;
	free(e);
	return m;
}

static void test_unit_interval(void)
{
	/* Uniform over (0,1): a chi-square over 64 buckets, both ways. */
	enum { BUCKETS = 64, SAMPLES = 64000 };
	unsigned by_instance[BUCKETS] = {0}, by_host[BUCKETS] = {0};
	double lo = 1, hi = 0;
	for (unsigned i = 0; i < SAMPLES; i++) {
		struct name a, b;
		instance_id(&a, i);
		snprintf(b.s, sizeof(b.s), "host-%u", i);
		double u = plc_unit("host-7", a.s);
		double v = plc_unit(b.s, "i-0123456789abcdef0");
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
		by_instance[(unsigned)(u * BUCKETS)]++;
		by_host[(unsigned)(v * BUCKETS)]++;
	}
	CHECK(lo > 0 && hi < 1);
	double chi_i = 0, chi_h = 0, want = (double)SAMPLES / BUCKETS;
	for (unsigned i = 0; i < BUCKETS; i++) {
		chi_i +=
		    (by_instance[i] - want) * (by_instance[i] - want) / want;
		chi_h += (by_host[i] - want) * (by_host[i] - want) / want;
	}
	/* 63 degrees of freedom: 110 is beyond the 0.9998 quantile. */
	CHECK(chi_i < 110);
	CHECK(chi_h < 110);
	/* Same pair, same value; the pair is ordered. */
	CHECK(plc_unit("a", "b") == plc_unit("a", "b"));
	CHECK(plc_unit("a", "b") != plc_unit("b", "a"));
}

static void test_weight(void)
{
	struct plc_host h = {.vcpu_total = 8, .mem_total_mib = 32768};
	CHECK_EQ_U64(plc_host_weight(&h), 8 * PLC_WEIGHT_PER_VCPU);
	h.mem_total_mib = 4096; /* two vCPUs' worth of memory */
	CHECK_EQ_U64(plc_host_weight(&h), 2 * PLC_WEIGHT_PER_VCPU);
	h.mem_total_mib = 1024;
	CHECK_EQ_U64(plc_host_weight(&h), PLC_WEIGHT_PER_VCPU / 2);
	h.vcpu_total = 0;
	CHECK_EQ_U64(plc_host_weight(&h), 0);
	h = (struct plc_host){.vcpu_total = UINT32_MAX,
	                      .mem_total_mib = UINT64_MAX};
	CHECK_EQ_U64(plc_host_weight(&h),
	             (uint64_t)UINT32_MAX * PLC_WEIGHT_PER_VCPU);
}

static void test_arguments(void)
{
	struct name ids[3];
	struct plc_host hosts[3];
	random_hosts(hosts, ids, 3, false);
	CHECK(plc_view_new(hosts, 3, -0.1) == NULL);
	CHECK(plc_view_new(hosts, 3, NAN) == NULL);
	CHECK(plc_view_new(hosts, PLC_MAX_HOSTS + 1, EPS) == NULL);
	hosts[1].id = NULL;
	CHECK(plc_view_new(hosts, 3, EPS) == NULL);
	hosts[1].id = hosts[2].id; /* repeated */
	CHECK(plc_view_new(hosts, 3, EPS) == NULL);
	hosts[1].id = ids[1].s;

	struct plc_view *empty = plc_view_new(NULL, 0, EPS);
	CHECK(empty != NULL);
	size_t out[3];
	struct plc_request req = {.instance_id = "i-00000000000000001"};
	CHECK(plc_candidates(empty, &req, out, 3) == 0);
	plc_view_free(empty);

	struct plc_view *view = plc_view_new(hosts, 3, INFINITY);
	CHECK(view != NULL);
	CHECK_EQ_U64(plc_view_size(view), 3);
	CHECK(plc_candidates(view, &req, NULL, 3) == -EINVAL);
	CHECK(plc_candidates(view, &req, NULL, 0) == 0);
	CHECK(plc_candidates(view, NULL, out, 3) == -EINVAL);
	struct plc_request no_id = {.vcpu = 1};
	CHECK(plc_candidates(view, &no_id, out, 3) == -EINVAL);
	CHECK(plc_candidates(view, &req, out, 3) == 3);
	CHECK(plc_candidates(view, &req, out, 10) == 3);

	struct plc_host other = hosts[0];
	other.id = "somebody-else";
	CHECK(plc_view_update(view, 0, &other) == -EINVAL);
	CHECK(plc_view_update(view, 3, &hosts[0]) == -EINVAL);
	CHECK(plc_view_update(view, 0, &hosts[0]) == 0);
	plc_view_free(view);
	/* The view copied the ids: the caller's buffers may change. */
	view = plc_view_new(hosts, 3, EPS);
	size_t before[3], after[3];
	CHECK(plc_candidates(view, &req, before, 3) == 3);
	memset(ids, 'x', sizeof(ids));
	CHECK(plc_candidates(view, &req, after, 3) == 3);
	CHECK(memcmp(before, after, sizeof(before)) == 0);
	plc_view_free(view);
}

static void test_filtering(void)
{
	enum { N = 60 };
	struct name ids[N];
	struct plc_host hosts[N];
	rng_state = 1;
	random_hosts(hosts, ids, N, true);
	hosts[0].vcpu_total = 0; /* no weight, plenty free */
	hosts[0].vcpu_free = 64;
	struct plc_view *view = plc_view_new(hosts, N, EPS);
	size_t out[N];
	bool ok = true;
	long total = 0;
	for (int r = 0; r < 2000; r++) {
		struct name iid;
		struct plc_request req;
		random_request(&req, &iid);
		long got = plc_candidates(view, &req, out, N);
		size_t want = 0;
		bool seen[N] = {false};
		for (size_t i = 0; i < N; i++)
			want += host_fits(&hosts[i], &req);
		if (got < 0 || (size_t)got != want)
			ok = false;
		for (long j = 0; j < got && ok; j++) {
			if (out[j] >= N || seen[out[j]] ||
			    !host_fits(&hosts[out[j]], &req))
				ok = false;
			else
				seen[out[j]] = true;
		}
		total += got;
	}
	CHECK(ok);
	CHECK(total > 0); /* the requests did not all fail */

	/* A zone no host is in, and the "no zone" spelling of any zone. */
	struct plc_request req = {.instance_id = "i-0abc", .zone = "mars-1a"};
	CHECK(plc_candidates(view, &req, out, N) == 0);
	req.zone = "";
	long any = plc_candidates(view, &req, out, N);
	req.zone = NULL;
	CHECK(plc_candidates(view, &req, out, N) == any);
	/* Too big for everyone. */
	req.vcpu = 1000;
	CHECK(plc_candidates(view, &req, out, N) == 0);

	/* A host that dies, then fills up, drops out after an update. */
	req = (struct plc_request){.instance_id = "i-0def"};
	CHECK(plc_candidates(view, &req, out, 1) == 1);
	size_t first = out[0];
	struct plc_host h = hosts[first];
	h.alive = false;
	CHECK(plc_view_update(view, first, &h) == 0);
	long n = plc_candidates(view, &req, out, N);
	ok = true;
	for (long j = 0; j < n; j++)
		ok = ok && out[j] != first;
	CHECK(ok);
	h.alive = true;
	h.vcpu_free = 0;
	req.vcpu = 1;
	CHECK(plc_view_update(view, first, &h) == 0);
	n = plc_candidates(view, &req, out, N);
	ok = true;
	for (long j = 0; j < n; j++)
		ok = ok && out[j] != first;
	CHECK(ok);
	plc_view_free(view);
}

/* The ids of the first n candidates. */
static void order_ids(const struct plc_host *hosts, const size_t *order, long n,
                      const char **ids)
{
	for (long j = 0; j < n; j++)
		ids[j] = hosts[order[j]].id;
}

static void test_determinism(void)
{
	enum { N = 300, REQUESTS = 500 };
	static struct name ids[N];
	static struct plc_host hosts[N], shuffled[N];
	rng_state = 2;
	random_hosts(hosts, ids, N, true);
	memcpy(shuffled, hosts, sizeof(hosts));
	for (size_t i = N - 1; i > 0; i--) {
		size_t j = rng_below((uint32_t)i + 1);
		struct plc_host t = shuffled[i];
		shuffled[i] = shuffled[j];
		shuffled[j] = t;
	}
	struct plc_view *a = plc_view_new(hosts, N, EPS);
	struct plc_view *b = plc_view_new(shuffled, N, EPS);
	static size_t oa[N], ob[N], top[N];
	static const char *ia[N], *ib[N];
	bool same = true, prefix = true;
	int nonempty = 0;
	for (int r = 0; r < REQUESTS; r++) {
		struct name iid;
		struct plc_request req;
		random_request(&req, &iid);
		long na = plc_candidates(a, &req, oa, N);
		long nb = plc_candidates(b, &req, ob, N);
		if (na != nb) {
			same = false;
			continue;
		}
		nonempty += na > 0;
		order_ids(hosts, oa, na, ia);
		order_ids(shuffled, ob, nb, ib);
		for (long j = 0; j < na; j++)
			same = same && strcmp(ia[j], ib[j]) == 0;
		/* The top k is a prefix of the full order. */
		size_t k = 1 + rng_below(12);
		long nt = plc_candidates(b, &req, top, k);
		prefix = prefix && nt == (na < (long)k ? na : (long)k);
		for (long j = 0; j < nt; j++)
			prefix = prefix && top[j] == ob[j];
		/* Asking twice changes nothing (the scratch is reset). */
		long again = plc_candidates(a, &req, top, N);
		prefix = prefix && again == na &&
		         memcmp(top, oa, (size_t)na * sizeof(*oa)) == 0;
	}
	CHECK(same);
	CHECK(prefix);
	CHECK(nonempty > REQUESTS / 4);
	plc_view_free(a);
	plc_view_free(b);
}

/* Loads after placing count instances one by one, best candidate first. */
static void place_many(struct plc_view *view, struct plc_host *hosts, size_t n,
                       unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		struct name iid;
		instance_id(&iid, 1000000 + i);
		struct plc_request req = {.instance_id = iid.s, .vcpu = 1};
		size_t best;
		if (plc_candidates(view, &req, &best, 1) != 1 || best >= n)
			return;
		plc_view_set_load(view, best, ++hosts[best].load);
	}
}

/* max over hosts of (load / weight) / (total load / total weight). */
static double max_over_mean(const struct plc_host *hosts, size_t n)
{
	double total_weight = 0, total_load = 0, max = 0;
	for (size_t i = 0; i < n; i++) {
		double w = (double)plc_host_weight(&hosts[i]);
		total_weight += w;
		total_load += hosts[i].load;
		if (hosts[i].load / w > max)
			max = hosts[i].load / w;
	}
	return max / (total_load / total_weight);
}

static void test_balance(void)
{
	enum { N = 100, PLACED = 10000 };
	struct name ids[N];
	struct plc_host hosts[N];
	rng_state = 3;
	random_hosts(hosts, ids, N, false);
	double total_weight = 0, min_weight = INFINITY, max_weight = 0;
	for (size_t i = 0; i < N; i++) {
		double w = (double)plc_host_weight(&hosts[i]);
		total_weight += w;
		min_weight = w < min_weight ? w : min_weight;
		max_weight = w > max_weight ? w : max_weight;
	}
	CHECK(max_weight == 8 * min_weight); /* capacities 1-8x */

	struct plc_view *view = plc_view_new(hosts, N, EPS);
	place_many(view, hosts, N, PLACED);
	unsigned total = 0;
	bool within_cap = true;
	for (size_t i = 0; i < N; i++) {
		total += hosts[i].load;
		double w = (double)plc_host_weight(&hosts[i]);
		/*
		 * Every placement went to a host under its cap at the time,
		 * and caps only grow with the load placed.
		 */
		double share = PLACED * w / total_weight;
		within_cap = within_cap &&
		             hosts[i].load <=
		                 fmax(floor((1 + EPS) * share), ceil(share));
	}
	CHECK_EQ_U64(total, PLACED);
	CHECK(within_cap);
	double ratio = max_over_mean(hosts, N);
	fprintf(stderr, "  balance: max/mean %.4f with eps %.2f\n", ratio, EPS);
	CHECK(ratio <= 1 + EPS);
	plc_view_free(view);

	/* Without the cap the same placements are visibly less even. */
	for (size_t i = 0; i < N; i++)
		hosts[i].load = 0;
	view = plc_view_new(hosts, N, INFINITY);
	place_many(view, hosts, N, PLACED);
	double uncapped = max_over_mean(hosts, N);
	fprintf(stderr, "  balance: max/mean %.4f without a cap\n", uncapped);
	CHECK(uncapped > ratio);
	plc_view_free(view);
}

static void test_stability(void)
{
	enum { N = 100, DECISIONS = 10000 };
	struct name ids[N + 1];
	struct plc_host hosts[N + 1];
	rng_state = 4;
	random_hosts(hosts, ids, N + 1, false);
	for (size_t i = 0; i <= N; i++) {
		/* Equal weights, so the newcomer's fair share is 1/(N+1). */
		hosts[i].vcpu_total = hosts[i].vcpu_free = 16;
		hosts[i].mem_total_mib = hosts[i].mem_free_mib = 65536;
	}
	struct plc_view *small = plc_view_new(hosts, N, EPS);
	struct plc_view *big = plc_view_new(hosts, N + 1, EPS);
	/* The same view without host 17. */
	struct plc_host less[N - 1];
	memcpy(less, hosts, 17 * sizeof(*hosts));
	memcpy(less + 17, hosts + 18, (N - 18) * sizeof(*hosts));
	struct plc_view *fewer = plc_view_new(less, N - 1, EPS);

	unsigned moved_add = 0, moved_remove = 0, on_removed = 0;
	bool only_to_new = true, only_from_removed = true, order_kept = true;
	for (unsigned d = 0; d < DECISIONS; d++) {
		struct name iid;
		instance_id(&iid, 5000000 + d);
		struct plc_request req = {.instance_id = iid.s, .vcpu = 1};
		size_t a[N + 1], b[N + 1], c[N];
		long na = plc_candidates(small, &req, a, N);
		long nb = plc_candidates(big, &req, b, N + 1);
		long nc = plc_candidates(fewer, &req, c, N - 1);
		if (na != N || nb != N + 1 || nc != N - 1) {
			order_kept = false;
			continue;
		}
		if (a[0] != b[0]) {
			moved_add++;
			only_to_new = only_to_new && b[0] == N;
		}
		/* less[] indices past 16 are hosts[] indices minus one. */
		size_t c0 = c[0] >= 17 ? c[0] + 1 : c[0];
		on_removed += a[0] == 17;
		if (a[0] != c0) {
			moved_remove++;
			only_from_removed = only_from_removed && a[0] == 17;
		}
		/* Removing a host leaves the others' order as it was. */
		for (long i = 0, j = 0; i < na; i++) {
			if (a[i] == 17)
				continue;
			size_t cj = c[j] >= 17 ? c[j] + 1 : c[j];
			order_kept = order_kept && cj == a[i];
			j++;
		}
	}
	fprintf(stderr, "  stability: +1 host moved %u of %u, -1 host %u\n",
	        moved_add, DECISIONS, moved_remove);
	CHECK(only_to_new);
	CHECK(moved_add > DECISIONS / (2 * N));
	CHECK(moved_add < 2.5 * DECISIONS / N);
	CHECK(only_from_removed);
	CHECK_EQ_U64(moved_remove, on_removed);
	CHECK(order_kept);
	plc_view_free(small);
	plc_view_free(big);
	plc_view_free(fewer);
}

static void test_differential(void)
{
	static const double epsilons[] = {0, 0.1, 0.25, 1, INFINITY};
	enum { VIEWS = 200, MAX_HOSTS = 400, REQUESTS = 40 };
	static struct name ids[MAX_HOSTS];
	static struct plc_host hosts[MAX_HOSTS];
	static size_t fast[MAX_HOSTS], slow[MAX_HOSTS];
	rng_state = 5;
	unsigned decisions = 0, mismatched = 0, capped_first = 0, mixed = 0;
	for (int v = 0; v < VIEWS; v++) {
		size_t n = 1 + rng_below(v < VIEWS / 2 ? 20 : MAX_HOSTS);
		double eps = epsilons[rng_below(5)];
		random_hosts(hosts, ids, n, true);
		/* Some views where everyone is near or at cap. */
		if (v % 7 == 0)
			for (size_t i = 0; i < n; i++)
				hosts[i].load = 50 + rng_below(3);
		struct plc_view *view = plc_view_new(hosts, n, eps);
		for (int r = 0; r < REQUESTS; r++) {
			struct name iid;
			struct plc_request req;
			random_request(&req, &iid);
			size_t capped;
			size_t want =
			    reference_order(hosts, n, &req, eps, slow, &capped);
			/* Caps add up to more than the load: someone is under.
			 */
			capped_first += want > 0 && capped == want;
			mixed += capped > 0;
			size_t k = rng_below(2) ? n : 1 + rng_below(8);
			long got = plc_candidates(view, &req, fast, k);
			size_t expect = want < k ? want : k;
			decisions++;
			if (got < 0 || (size_t)got != expect ||
			    memcmp(fast, slow, expect * sizeof(*fast)) != 0) {
				mismatched++;
			}
		}
		plc_view_free(view);
	}
	fprintf(stderr,
	        "  differential: %u decisions (%u with hosts at cap), %u "
	        "mismatched\n",
	        decisions, mixed, mismatched);
	CHECK(mixed > decisions / 10);
	CHECK_EQ_U64(mismatched, 0);
	CHECK_EQ_U64(capped_first, 0);
}

int main(void)
{
	RUN(test_unit_interval);
	RUN(test_weight);
	RUN(test_arguments);
	RUN(test_filtering);
	RUN(test_determinism);
	RUN(test_balance);
	RUN(test_stability);
	RUN(test_differential);
	return check_summary();
}
