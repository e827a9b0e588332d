/*
 * Hybrid logical clock (Kulkarni et al., 2014). A stamp is one uint64: the
 * high 48 bits are wall-clock milliseconds, the low 16 a logical counter.
 * Stamps compare as plain integers, never go backwards on one peer, and stay
 * within max_skew of real time however remote peers' clocks misbehave.
 */
#ifndef MC_HLC_H
#define MC_HLC_H

#include <stdint.h>

#define MC_HLC_LOGICAL_BITS        16
#define MC_HLC_DEFAULT_MAX_SKEW_MS (60u * 1000u)

struct mc_hlc {
	uint64_t last;
	uint64_t max_skew_ms;
};

void mc_hlc_init(struct mc_hlc *c, uint64_t max_skew_ms);
/* A stamp for a local event at wall-clock time wall_ms. */
uint64_t mc_hlc_now(struct mc_hlc *c, uint64_t wall_ms);
/*
 * Merges a stamp received from another peer. Returns 0, or -ERANGE when the
 * remote stamp is more than max_skew_ms ahead of wall_ms: such a stamp is
 * refused and the clock left as it was, so one bad clock cannot drag the
 * cloud's stamps into the future.
 */
int mc_hlc_observe(struct mc_hlc *c, uint64_t remote, uint64_t wall_ms);

uint64_t mc_hlc_make(uint64_t wall_ms, uint16_t logical);
uint64_t mc_hlc_wall_ms(uint64_t stamp);
uint16_t mc_hlc_logical(uint64_t stamp);

/* The system's wall clock in milliseconds since the epoch. */
uint64_t mc_wall_ms(void);

#endif
