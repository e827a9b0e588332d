/*
 * Placement: which hosts should run an instance, in order of preference.
 *
 * Pure computation, no I/O: every edge that holds the same view of the
 * hosts computes the same candidate order for the same request, whatever
 * order the hosts are listed in. The edge asks the candidates in that order;
 * the host that admits has the final word (DESIGN.md, "Placement").
 *
 * Method: weighted rendezvous hashing (highest random weight) of the
 * instance id over the hosts that fit, with a bounded-load cap.
 *
 * - A host fits when it is alive, has a non-zero weight, has at least the
 *   requested free vCPU, memory and disk, and is in the requested zone (if
 *   the request names one).
 * - Its score is -weight / ln(u), where u in (0,1) is plc_unit(host id,
 *   instance id). Higher scores come first; equal scores are ordered by host
 *   id (strcmp), so the order is total and needs no tie-break by position.
 * - Weight is plc_host_weight(): the host's capacity for a typical instance,
 *   min(total vCPU, total memory / 2 GiB), so a host is weighted by the
 *   resource it runs out of first at EC2's compute-class ratio of 2 GiB per
 *   vCPU. It depends on the host alone, never on the rest of the view, so
 *   adding a host moves only the instances that now prefer it.
 * - Bounded load (Mirrokni, Thorup, Zadimoghaddam, "Consistent hashing with
 *   bounded loads"). Over the hosts that fit, with W their total weight and
 *   M their total load, a host's fair share once this instance is placed is
 *   s = (M + 1) * weight / W, and its cap is
 *       max(floor((1 + epsilon) * s), ceil(s)).
 *   That is never more than the paper's ceil((1 + epsilon) * s), and it is
 *   exactly floor((1 + epsilon) * s) once s >= 1 / epsilon (4 instances at
 *   the default): from then on no host holds more than (1 + epsilon) times
 *   its fair share, with no rounding slack. Since the caps are never below
 *   ceil(s), they add up to at least M + 1, so at least one host that fits
 *   is always under its cap and the first candidate never is at cap.
 *   Hosts at cap are not dropped: they follow all the hosts under cap, in
 *   score order, so a request still succeeds when the hosts under cap
 *   refuse it at admission.
 *
 * Floating point: the score uses our own logarithm built from IEEE-754
 * basic operations only, so peers on different libcs and CPUs (without
 * x87 excess precision or contracted multiply-adds) agree bit for bit.
 */
#ifndef PLC_PLACEMENT_H
#define PLC_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLC_EPSILON_DEFAULT 0.25
/* Memory that counts as one vCPU's worth in plc_host_weight(). */
#define PLC_MIB_PER_VCPU 2048
/* plc_host_weight() counts in 1/1024ths of a vCPU. */
#define PLC_WEIGHT_PER_VCPU 1024
/* Keeps sums of weights and loads exact (below 2^63 and 2^53). */
#define PLC_MAX_HOSTS (1u << 20)

/* One host as the edge sees it (from gossip). Strings are borrowed. */
struct plc_host {
	const char *id;   /* unique in a view, NUL-terminated */
	const char *zone; /* NULL or "" when the host has none */
	uint32_t vcpu_total, vcpu_free;
	uint64_t mem_total_mib, mem_free_mib;
	uint64_t disk_total_mib, disk_free_mib;
	uint32_t load; /* instances placed on the host */
	bool alive;
};

/* What an instance needs. Strings are borrowed for the call. */
struct plc_request {
	const char *instance_id; /* the key that is hashed */
	uint32_t vcpu;
	uint64_t mem_mib;
	uint64_t disk_mib;
	const char *zone; /* NULL or "" for any zone */
};

/*
 * A view: the hosts, prepared once (their ids hashed and ranked, zones
 * interned) so that each decision only mixes integers. Not thread-safe:
 * plc_candidates() uses the view's own scratch space.
 */
struct plc_view;

/*
 * Copies what it needs from hosts[0..n) (ids and zones included; nothing
 * stays borrowed). epsilon >= 0 (INFINITY: no cap). Returns NULL when an id
 * is NULL or repeated, n > PLC_MAX_HOSTS, or epsilon is negative or NaN.
 */
struct plc_view *plc_view_new(const struct plc_host *hosts, size_t n,
                              double epsilon);
void plc_view_free(struct plc_view *view);
size_t plc_view_size(const struct plc_view *view);

/*
 * Replaces what is known of host i (capacity, free space, load, zone,
 * liveness). The id must stay the same: -EINVAL otherwise, or if i is out
 * of range.
 */
int plc_view_update(struct plc_view *view, size_t i,
                    const struct plc_host *host);
/* The cheap update after each placement: host i now has load instances. */
void plc_view_set_load(struct plc_view *view, size_t i, uint32_t load);

/*
 * The first k candidates for req, best first, as indices into the hosts
 * array the view was made from: hosts under cap in score order, then hosts
 * at cap in score order. Returns how many were written (fewer than k when
 * fewer hosts fit; 0 when none does), or -EINVAL when req has no instance
 * id or out is NULL with k > 0. k = plc_view_size() gives the full order;
 * small k is much cheaper (a partial selection, not a sort).
 */
long plc_candidates(struct plc_view *view, const struct plc_request *req,
                    size_t *out, size_t k);

/* The weight described above, in 1/PLC_WEIGHT_PER_VCPU vCPU. */
uint64_t plc_host_weight(const struct plc_host *host);

/*
 * The uniform variate u in (0,1) of a (host, instance) pair, exposed so that
 * a tool (or a test) can recompute scores: u = (2m + 1) / 2^53 with m the
 * top 52 bits of mix(K(host id), K(instance id)), K being the first 8 bytes
 * of BLAKE2b. 1 - u is exact in a double as well.
 */
double plc_unit(const char *host_id, const char *instance_id);

#endif
