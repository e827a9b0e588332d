/*
 * What the two files of gossip-sim share: the simulated network and nodes
 * (gossip-sim.c) and the figures drawn from them (gossip-sim-report.c).
 */
#ifndef MALLEE_GOSSIP_SIM_H
#define MALLEE_GOSSIP_SIM_H

#include "gossip.h"

#include <stdbool.h>
#include <stdint.h>

#define NEVER UINT64_MAX
#define US    1000ULL

enum ev_kind {
	EV_TIMER,
	EV_PACKET,
	EV_KILL,
	EV_RESTART,
	EV_INJECT,
	EV_SAMPLE,
};

struct ev {
	uint64_t t_us;
	uint64_t seq;
	uint32_t kind;
	uint32_t node;
	uint32_t src;
	uint32_t len;
	uint8_t *pkt;
};

struct sim;

struct node {
	struct sim *sim;
	uint32_t idx;
	struct gossip *g;
	struct gossip_node info;
	bool up;
	bool killed; /* crashed at the kill time */
	uint64_t wake_us;
	uint64_t knows_us; /* when it learnt the injected broadcast */
	uint64_t down_us;
	uint64_t bytes_out;
};

/* Detection of one crashed node. */
struct victim {
	uint32_t idx;
	uint32_t observers;
	uint64_t first_us;
	uint64_t all_us;
	uint8_t *seen; /* bitmap of observers */
};

struct opts {
	uint32_t nodes;
	uint64_t seed;
	double loss;
	double latency_ms;
	bool lognormal;
	double duration_s;
	uint32_t kill;
	double kill_at_s;
	double restart_after_s;
	bool event;
	double event_at_s;
	double part_start_s, part_end_s, part_frac;
	int seal; /* -1: by size */
	bool json;
	double step_ms;
	double warmup_s;
};

struct sim {
	struct opts o;
	struct node *nodes;
	struct ev *heap;
	size_t nheap, cap_heap;
	uint64_t seq;
	uint64_t now_us;
	uint64_t rng[4];
	struct gossip_intern *intern;
	uint8_t key[32];

	struct victim *victims;
	uint32_t nvictims;
	uint32_t live_at_kill;
	uint64_t inject_us;
	uint64_t fp_declarations;
	uint8_t *fp_node;
	uint64_t packets, delivered, lost;
	uint64_t bytes_total;
	uint64_t bytes_window_start, bytes_window_end;
	uint64_t window_start_us, window_end_us;
	uint64_t rejoin_first_us, rejoin_all_us;
	uint64_t rejoin_seen;
};

/* PRNG for the network: xoshiro256**. */

bool sim_sealing(const struct sim *s);
/* Prints the table, or one JSON line; wall_s goes to stderr only. */
void sim_report(struct sim *s, double wall_s);

#endif
