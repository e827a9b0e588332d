/* gossip-sim's figures: convergence, detection, false positives, bytes. */
#include "gossip-sim.h"

#include "mem.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double ms_or_neg(uint64_t t_us, uint64_t base_us)
{
	return t_us == NEVER ? -1.0 : (double)(t_us - base_us) / 1000.0;
}

void sim_report(struct sim *s, double wall_s)
{
	static const double qs[] = {0.5, 0.9, 0.99, 0.999, 0.9999, 1.0};
	enum { NQ = sizeof(qs) / sizeof(qs[0]) };
	uint32_t live = 0, knows = 0;
	uint64_t *times = xcalloc(s->o.nodes, sizeof(*times));
	double q_ms[NQ];
	struct mc_buf curve;

	for (uint32_t i = 0; i < s->o.nodes; i++) {
		if (!s->nodes[i].up)
			continue;
		times[live++] = s->nodes[i].knows_us;
		knows += s->nodes[i].knows_us != NEVER;
	}
	qsort(times, live, sizeof(*times), cmp_u64);
	for (int q = 0; q < NQ; q++) {
		uint32_t need = (uint32_t)ceil(qs[q] * live);
		if (need == 0)
			need = 1;
		q_ms[q] = s->o.event && live
		              ? ms_or_neg(times[need - 1], s->inject_us)
		              : -1;
	}
	mc_buf_init(&curve);
	if (s->o.event) {
		uint64_t step = (uint64_t)(s->o.step_ms * 1000);
		uint32_t j = 0;
		for (uint64_t t = s->inject_us;; t += step) {
			while (j < live && times[j] <= t)
				j++;
			mc_buf_printf(&curve, "%s[%.0f,%.5f]",
			              curve.len ? "," : "",
			              (double)(t - s->inject_us) / 1000.0,
			              live ? (double)j / live : 0);
			if (j == live || t > s->now_us)
				break;
		}
	}

	/* Detection over the victims: median and worst of first/all. */
	uint64_t first_min = NEVER, all_max = 0;
	uint32_t all_done = 0;
	uint64_t *alls = xcalloc(s->nvictims + 1, sizeof(*alls));
	for (uint32_t i = 0; i < s->nvictims; i++) {
		struct victim *v = &s->victims[i];
		if (v->first_us < first_min)
			first_min = v->first_us;
		if (v->all_us != NEVER) {
			alls[all_done++] = v->all_us;
			if (v->all_us > all_max)
				all_max = v->all_us;
		}
	}
	qsort(alls, all_done, sizeof(*alls), cmp_u64);
	uint64_t kill_us = (uint64_t)(s->o.kill_at_s * 1e6);
	double det_first = s->nvictims ? ms_or_neg(first_min, kill_us) : -1;
	double det_all_med =
	    all_done ? ms_or_neg(alls[all_done / 2], kill_us) : -1;
	double det_all_max = all_done == s->nvictims && all_done
	                         ? ms_or_neg(all_max, kill_us)
	                         : -1;
	uint32_t fp_nodes = 0;
	for (uint32_t i = 0; i < s->o.nodes; i++)
		fp_nodes += s->fp_node[i];
	double win_s = (double)(s->window_end_us - s->window_start_us) / 1e6;
	double bps_steady =
	    win_s > 0 ? (double)(s->bytes_window_end - s->bytes_window_start) /
	                    s->o.nodes / win_s
	              : 0;
	double bps_all =
	    (double)s->bytes_total / s->o.nodes / ((double)s->now_us / 1e6);
	uint64_t suspicions = 0, refuted = 0;
	for (uint32_t i = 0; i < s->o.nodes; i++) {
		if (!s->nodes[i].g)
			continue;
		const struct gossip_counters *c =
		    gossip_counters(s->nodes[i].g);
		suspicions += c->suspicions;
		refuted += c->refuted;
	}
	double rejoin =
	    s->nvictims && s->o.restart_after_s > 0
	        ? ms_or_neg(s->rejoin_all_us,
	                    kill_us + (uint64_t)(s->o.restart_after_s * 1e6))
	        : -1;

	if (s->o.json) {
		printf(
		    "{\"nodes\":%u,\"seed\":%" PRIu64 ",\"loss\":%g,"
		    "\"latency_ms\":%g,\"latency_dist\":\"%s\","
		    "\"duration_s\":%g,\"sealed\":%s,\"live\":%u,"
		    "\"event\":{\"knows\":%u,\"q50_ms\":%.1f,\"q90_ms\":%.1f,"
		    "\"q99_ms\":%.1f,\"q999_ms\":%.1f,\"q9999_ms\":%.1f,"
		    "\"q100_ms\":%.1f,\"curve\":[%.*s]},"
		    "\"kill\":{\"killed\":%u,\"first_ms\":%.1f,"
		    "\"all_median_ms\":%.1f,\"all_max_ms\":%.1f,"
		    "\"rejoin_all_ms\":%.1f},"
		    "\"false_positive_nodes\":%u,"
		    "\"false_positive_declarations\":%" PRIu64 ","
		    "\"suspicions\":%" PRIu64 ",\"refuted\":%" PRIu64 ","
		    "\"bytes_per_node_s\":%.1f,"
		    "\"bytes_per_node_s_steady\":%.1f,"
		    "\"packets\":%" PRIu64 ",\"lost\":%" PRIu64 "}\n",
		    s->o.nodes, s->o.seed, s->o.loss, s->o.latency_ms,
		    s->o.lognormal ? "lognormal" : "uniform", s->o.duration_s,
		    sim_sealing(s) ? "true" : "false", live, knows, q_ms[0],
		    q_ms[1], q_ms[2], q_ms[3], q_ms[4], q_ms[5], (int)curve.len,
		    curve.len ? (char *)curve.data : "", s->nvictims, det_first,
		    det_all_med, det_all_max, rejoin, fp_nodes,
		    s->fp_declarations, suspicions, refuted, bps_all,
		    bps_steady, s->packets, s->lost);
	} else {
		printf("gossip-sim: %u nodes, seed %" PRIu64
		       ", loss %g, latency %g ms %s, %g s simulated%s\n",
		       s->o.nodes, s->o.seed, s->o.loss, s->o.latency_ms,
		       s->o.lognormal ? "lognormal" : "uniform",
		       s->o.duration_s, sim_sealing(s) ? ", sealed" : "");
		printf("%-34s %12s\n", "metric", "value");
		if (s->o.event) {
			printf("%-34s %9u/%u\n", "live nodes that learnt event",
			       knows, live);
			static const char *names[] = {
			    "50%", "90%", "99%", "99.9%", "99.99%", "100%"};
			for (int q = 0; q < NQ; q++) {
				char label[64];
				snprintf(label, sizeof(label),
				         "event reached %s of live (ms)",
				         names[q]);
				printf("%-34s %12.1f\n", label, q_ms[q]);
			}
		}
		if (s->nvictims) {
			printf("%-34s %12u\n", "nodes killed", s->nvictims);
			printf("%-34s %12.1f\n", "first declared dead (ms)",
			       det_first);
			printf("%-34s %12.1f\n", "dead everywhere, median (ms)",
			       det_all_med);
			printf("%-34s %12.1f\n", "dead everywhere, worst (ms)",
			       det_all_max);
			if (s->o.restart_after_s > 0)
				printf("%-34s %12.1f\n",
				       "restarted alive everywhere (ms)",
				       rejoin);
		}
		printf("%-34s %12u\n", "false positives (live nodes)",
		       fp_nodes);
		printf("%-34s %12" PRIu64 "\n", "suspicions raised",
		       suspicions);
		printf("%-34s %12" PRIu64 "\n", "refutations", refuted);
		printf("%-34s %12.1f\n", "bytes/node/s (whole run)", bps_all);
		printf("%-34s %12.1f\n", "bytes/node/s (steady window)",
		       bps_steady);
		printf("%-34s %12" PRIu64 "\n", "packets sent", s->packets);
		printf("%-34s %12" PRIu64 "\n", "packets lost", s->lost);
		if (s->o.event && curve.len) {
			printf("convergence (ms, fraction): %.*s\n",
			       (int)curve.len, (char *)curve.data);
		}
	}
	/* Not in the output proper, which must repeat exactly. */
	fflush(stdout);
	fprintf(stderr, "wall time %.2f s\n", wall_s);
	mc_buf_free(&curve);
	free(times);
	free(alls);
}
