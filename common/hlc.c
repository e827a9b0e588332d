#include "hlc.h"

#include <errno.h>
#include <time.h>

#define LOGICAL_MASK ((1u << MC_HLC_LOGICAL_BITS) - 1)
/* 48 bits of milliseconds last until the year 10889. */
#define WALL_MASK ((UINT64_C(1) << (64 - MC_HLC_LOGICAL_BITS)) - 1)

uint64_t mc_hlc_make(uint64_t wall_ms, uint16_t logical)
{
	return (wall_ms & WALL_MASK) << MC_HLC_LOGICAL_BITS | logical;
}

uint64_t mc_hlc_wall_ms(uint64_t stamp)
{
	return stamp >> MC_HLC_LOGICAL_BITS;
}

uint16_t mc_hlc_logical(uint64_t stamp)
{
	return (uint16_t)(stamp & LOGICAL_MASK);
}

void mc_hlc_init(struct mc_hlc *c, uint64_t max_skew_ms)
{
	c->last = 0;
	c->max_skew_ms = max_skew_ms;
}

/*
 * The next stamp after max(last, wall): when the logical counter is full the
 * stamp moves to the next millisecond, which keeps stamps strictly increasing
 * at the cost of running up to a few milliseconds ahead under bursts.
 */
static uint64_t advance(uint64_t last, uint64_t wall_ms)
{
	uint64_t floor = mc_hlc_make(wall_ms, 0);
	if (floor > last)
		return floor;
	return last + 1;
}

uint64_t mc_hlc_now(struct mc_hlc *c, uint64_t wall_ms)
{
	c->last = advance(c->last, wall_ms);
	return c->last;
}

int mc_hlc_observe(struct mc_hlc *c, uint64_t remote, uint64_t wall_ms)
{
	if (mc_hlc_wall_ms(remote) > wall_ms + c->max_skew_ms)
		return -ERANGE;
	uint64_t base = remote > c->last ? remote : c->last;
	c->last = advance(base, wall_ms);
	return 0;
}

uint64_t mc_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
