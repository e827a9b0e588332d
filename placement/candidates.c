/*
 * One decision: the first k candidates of a request over a prepared view.
 *
 * Two passes over the hosts. The first keeps the hosts that fit and sums
 * their weights and loads, which fixes every host's cap. The second scores
 * them into two bounded heaps (hosts under cap, hosts at cap) that keep the
 * k best of each; the answer is the first heap in order, then the second.
 *
 * Most hosts are never fully scored: since -ln u >= 1 - u, a host's score
 * is at most weight / (1 - u), and once a heap holds k hosts any host whose
 * bound falls short of the heap's worst is dropped after two multiplies.
 * Only hosts that might enter the answer pay for a logarithm.
 */
#include "placement_int.h"

#include <errno.h>

/*
 * Slack on the bound so that rounding in it can never drop a host that the
 * exact comparison would keep (the errors involved are a few ulps).
 */
#define BOUND_SLACK (1.0 - 0x1p-30)

struct heap {
	struct plc_entry *e;
	size_t len, cap;
	/*
	 * Once full: BOUND_SLACK * (worst score) / 2^53. A host with weight
	 * w and (1 - u) 2^53 = rest can beat the worst only if
	 * w >= bound * rest.
	 */
	double bound;
};

/* Whether a ranks after b: lower score, or the same score and a later id. */
static inline bool worse(const struct plc_entry *a, const struct plc_entry *b)
{
	return a->score < b->score ||
	       (a->score == b->score && a->rank > b->rank);
}

/* Restores the heap (worst at the root) below position i, within len. */
static void sift_down(struct plc_entry *e, size_t len, size_t i)
{
	struct plc_entry x = e[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= len)
			break;
		if (c + 1 < len && worse(&e[c + 1], &e[c]))
			c++;
		if (!worse(&e[c], &x))
			break;
		e[i] = e[c];
		i = c;
	}
	e[i] = x;
}

static void heap_offer(struct heap *h, struct plc_entry x)
{
	if (h->len < h->cap) {
		size_t i = h->len++;
		while (i > 0) {
			size_t parent = (i - 1) / 2;
			if (!worse(&x, &h->e[parent]))
				break;
			h->e[i] = h->e[parent];
			i = parent;
		}
		h->e[i] = x;
	} else if (worse(&h->e[0], &x)) {
		h->e[0] = x;
		sift_down(h->e, h->len, 0);
	}
	if (h->len == h->cap)
		h->bound = h->e[0].score * BOUND_SLACK * 0x1p-53;
}

/* Sorts the heap in place, best first (heapsort). */
static void heap_sort(struct heap *h)
{
	for (size_t end = h->len; end > 1; end--) {
		struct plc_entry top = h->e[0];
		h->e[0] = h->e[end - 1];
		h->e[end - 1] = top;
		sift_down(h->e, end - 1, 0);
	}
}

/*
 * Branch-free: which hosts fit is as good as random to a predictor. The
 * zone matches when (zone & zone_mask) == zone_want: a mask of 0 for any.
 */
static inline bool fits(const struct plc_slot *s, uint64_t vcpu, uint64_t mem,
                        uint64_t disk, uint32_t zone_mask, uint32_t zone_want)
{
	return (s->vcpu_room > vcpu) & (s->mem_free >= mem) &
	       (s->disk_free >= disk) & ((s->zone & zone_mask) == zone_want);
}

/* The zone a request asks for, PLC_ANY_ZONE, or PLC_NO_ZONE if unknown. */
static uint32_t request_zone(const struct plc_view *view, const char *z)
{
	if (!z || !*z)
		return PLC_ANY_ZONE;
	for (size_t i = 1; i < view->n_zones; i++)
		if (strcmp(view->zones[i], z) == 0)
			return (uint32_t)i;
	/* No host is in it: asking for "no zone" matches none either. */
	return PLC_NO_ZONE;
}

long plc_candidates(struct plc_view *view, const struct plc_request *req,
                    size_t *out, size_t k)
{
	if (!req || !req->instance_id || (!out && k))
		return -EINVAL;
	uint32_t zone = request_zone(view, req->zone);
	if (zone == PLC_NO_ZONE || k == 0)
		return 0;

	const struct plc_slot *slots = view->slots;
	uint32_t *fit = view->fit;
	const uint64_t vcpu = req->vcpu;
	const uint32_t zone_mask = zone == PLC_ANY_ZONE ? 0 : UINT32_MAX;
	const uint32_t zone_want = zone & zone_mask;
	const uint64_t mem = req->mem_mib, disk = req->disk_mib;
	const size_t n = view->n;
	size_t m = 0;
	uint64_t total_weight = 0, total_load = 0;
	for (size_t i = 0; i < n; i++) {
		const struct plc_slot *s = &slots[i];
		uint64_t mask =
		    -(uint64_t)fits(s, vcpu, mem, disk, zone_mask, zone_want);
		fit[m] = (uint32_t)i;
		m += mask & 1;
		total_weight += s->weight & mask;
		total_load += s->load & mask;
	}
	if (m == 0)
		return 0;
	if (k > m)
		k = m;

	/*
	 * Under cap: load < max(floor((1 + eps) s), ceil(s)) with s the fair
	 * share (M + 1) w / W; for an integer load that is
	 * (load + 1) W <= (1 + eps) (M + 1) w  or  load W < (M + 1) w.
	 * Every product is of integers and (1 + eps), so exact for eps = 1/4
	 * while below 2^53, as in any real cloud; rounded or not, every peer
	 * computes the same bits. PLC_MAX_HOSTS keeps the sums below 2^63,
	 * so the casts through int64_t (cheaper than from uint64_t) are safe.
	 */
	const double placed = (double)(int64_t)total_load + 1.0;
	const double stretched = (1.0 + view->epsilon) * placed;
	const double weight_sum = (double)(int64_t)total_weight;
	const uint64_t instance_mix = plc_fmix64(plc_key(req->instance_id));
	struct heap under = {view->under, 0, k, 0},
	            over = {view->over, 0, k, 0};

	for (size_t j = 0; j < m; j++) {
		const struct plc_slot *s = &slots[fit[j]];
		uint64_t x = plc_unit_bits(plc_pair(s->key, instance_mix));
		/* (1 - u) 2^53, exact: an integer below 2^53. */
		double rest = (double)(int64_t)((UINT64_C(1) << 53) - x);
		double w = (double)(int64_t)s->weight;
		if (under.len == k && w < under.bound * rest)
			continue;
		struct heap *h = &under;
		double load = (double)s->load;
		if ((load + 1.0) * weight_sum > stretched * w &&
		    load * weight_sum >= placed * w) {
			/* At cap: only needed if too few hosts are under it. */
			if (under.len == k)
				continue;
			h = &over;
			if (over.len == k && w < over.bound * rest)
				continue;
		}
		struct plc_entry e = {w / plc_neg_ln(x), s->rank, fit[j]};
		heap_offer(h, e);
	}

	heap_sort(&under);
	heap_sort(&over);
	size_t n_out = 0;
	for (size_t i = 0; i < under.len && n_out < k; i++)
		out[n_out++] = under.e[i].host;
	for (size_t i = 0; i < over.len && n_out < k; i++)
		out[n_out++] = over.e[i].host;
	return (long)n_out;
}
