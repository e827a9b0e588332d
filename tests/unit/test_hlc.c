/*
 * The hybrid logical clock: stamps only ever increase on one peer, whatever
 * the wall clock does, and a remote stamp too far ahead is refused.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "hlc.h"

#define MAX_LOGICAL 65535u

static void test_make_roundtrip(void)
{
	const uint64_t walls[] = {0, 1, 1700000000000ull,
	                          (UINT64_C(1) << 48) - 1};
	const uint16_t logicals[] = {0, 1, 12345, MAX_LOGICAL};
	for (size_t i = 0; i < sizeof(walls) / sizeof(*walls); i++) {
		for (size_t j = 0; j < sizeof(logicals) / sizeof(*logicals);
		     j++) {
			uint64_t st = mc_hlc_make(walls[i], logicals[j]);
			CHECK_EQ_U64(mc_hlc_wall_ms(st), walls[i]);
			CHECK_EQ_U64(mc_hlc_logical(st), logicals[j]);
		}
	}
	/* Stamps order as integers: by wall time, then by counter. */
	CHECK(mc_hlc_make(1000, 1) > mc_hlc_make(1000, 0));
	CHECK(mc_hlc_make(1001, 0) > mc_hlc_make(1000, MAX_LOGICAL));
	CHECK_EQ_U64(mc_hlc_make(1000, MAX_LOGICAL) + 1, mc_hlc_make(1001, 0));
}

static void test_monotonic_when_wall_goes_back(void)
{
	struct mc_hlc c;
	mc_hlc_init(&c, MC_HLC_DEFAULT_MAX_SKEW_MS);
	uint64_t a = mc_hlc_now(&c, 5000);
	CHECK_EQ_U64(a, mc_hlc_make(5000, 0));
	uint64_t b = mc_hlc_now(&c, 4000);
	CHECK(b > a);
	uint64_t d = mc_hlc_now(&c, 1);
	CHECK(d > b);
	/* Held at the newest wall time seen, counting up. */
	CHECK_EQ_U64(mc_hlc_wall_ms(d), 5000);
	CHECK_EQ_U64(mc_hlc_logical(d), 2);
	/* Once the wall clock passes it again, the stamp follows it. */
	uint64_t e = mc_hlc_now(&c, 6000);
	CHECK_EQ_U64(e, mc_hlc_make(6000, 0));

	uint64_t last = 0;
	bool ok = true;
	for (uint64_t i = 0; i < 10000; i++) {
		/* A wall clock that jumps back and forth. */
		uint64_t wall = 7000 + (i * 7919) % 1000 - (i % 3) * 500;
		uint64_t st = mc_hlc_now(&c, wall);
		if (st <= last)
			ok = false;
		last = st;
	}
	CHECK(ok);
}

static void test_logical_rollover(void)
{
	struct mc_hlc c;
	mc_hlc_init(&c, MC_HLC_DEFAULT_MAX_SKEW_MS);
	uint64_t st = 0;
	bool counting = true;
	for (uint32_t i = 0; i <= MAX_LOGICAL; i++) {
		st = mc_hlc_now(&c, 1000);
		if (mc_hlc_wall_ms(st) != 1000 || mc_hlc_logical(st) != i)
			counting = false;
	}
	CHECK(counting);
	CHECK_EQ_U64(st, mc_hlc_make(1000, MAX_LOGICAL));
	/* The counter is full: the next stamp moves into the next ms. */
	st = mc_hlc_now(&c, 1000);
	CHECK_EQ_U64(st, mc_hlc_make(1001, 0));
	st = mc_hlc_now(&c, 1001);
	CHECK_EQ_U64(st, mc_hlc_make(1001, 1));
	st = mc_hlc_now(&c, 1002);
	CHECK_EQ_U64(st, mc_hlc_make(1002, 0));
}

static void test_observe_ahead(void)
{
	struct mc_hlc c;
	mc_hlc_init(&c, MC_HLC_DEFAULT_MAX_SKEW_MS);
	CHECK_EQ_U64(c.max_skew_ms, MC_HLC_DEFAULT_MAX_SKEW_MS);
	uint64_t local = mc_hlc_now(&c, 1000);
	uint64_t remote = mc_hlc_make(1000 + 30000, 7);
	CHECK(mc_hlc_observe(&c, remote, 1000) == 0);
	uint64_t next = mc_hlc_now(&c, 1000);
	CHECK(next > remote);
	CHECK(next > local);
	CHECK_EQ_U64(mc_hlc_wall_ms(next), 31000);

	/* Exactly max_skew ahead is still accepted. */
	remote = mc_hlc_make(1000 + MC_HLC_DEFAULT_MAX_SKEW_MS, 0);
	CHECK(mc_hlc_observe(&c, remote, 1000) == 0);
	CHECK(mc_hlc_now(&c, 1000) > remote);
}

static void test_observe_behind(void)
{
	struct mc_hlc c;
	mc_hlc_init(&c, MC_HLC_DEFAULT_MAX_SKEW_MS);
	uint64_t local = mc_hlc_now(&c, 9000);
	/* An old stamp does not pull the clock back, and it still ticks. */
	CHECK(mc_hlc_observe(&c, mc_hlc_make(100, 3), 9000) == 0);
	CHECK(c.last > local);
	CHECK(mc_hlc_now(&c, 9000) > local);
}

static void test_observe_refuses_far_future(void)
{
	struct mc_hlc c;
	mc_hlc_init(&c, 1000);
	mc_hlc_now(&c, 5000);
	mc_hlc_now(&c, 5000);
	uint64_t before = c.last;
	uint64_t remote = mc_hlc_make(5000 + 1001, 0);
	CHECK(mc_hlc_observe(&c, remote, 5000) == -ERANGE);
	CHECK_EQ_U64(c.last, before);
	CHECK(mc_hlc_observe(&c, UINT64_MAX, 5000) == -ERANGE);
	CHECK_EQ_U64(c.last, before);
	/* The clock goes on from where it was, below the refused stamp. */
	uint64_t next = mc_hlc_now(&c, 5000);
	CHECK_EQ_U64(next, before + 1);
	CHECK(next < remote);
}

static void test_wall_clock(void)
{
	/* After 2023-01-01 and not moving backwards between two reads. */
	uint64_t a = mc_wall_ms();
	uint64_t b = mc_wall_ms();
	CHECK(a > 1672531200000ull);
	CHECK(b + 1000 >= a);
}

int main(void)
{
	RUN(test_make_roundtrip);
	RUN(test_monotonic_when_wall_goes_back);
	RUN(test_logical_rollover);
	RUN(test_observe_ahead);
	RUN(test_observe_behind);
	RUN(test_observe_refuses_far_future);
	RUN(test_wall_clock);
	return check_summary();
}
