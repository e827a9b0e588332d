/* The overlay's path plan (peer/overlay_plan.c): direct unless unreached,
 * then this zone's gateways, then the destination zone's, by id; outside
 * traffic to the first alive gateway of this zone. */
#include "check.h"
#include "overlay_int.h"

#include <stdio.h>
#include <string.h>

static void member(struct overlay_member *m, const char *id, const char *zone,
                   bool gateway, bool alive, bool unreached)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	snprintf(m->name, sizeof(m->name), "n%s", id);
	snprintf(m->zone, sizeof(m->zone), "%s", zone);
	m->gateway = gateway;
	m->alive = alive;
	m->unreached = unreached;
}

static void test_flat(void)
{
	struct overlay_member m[2];
	member(&m[0], "b", "z1", false, true, false);
	member(&m[1], "a", "z1", false, true, true);
	CHECK(overlay_plan(m, 2, "z1", false) == -1);
	CHECK_EQ_U64(m[0].n_relays, 0);
	CHECK_EQ_U64(m[1].n_relays, 0); /* no gateway: direct is all */
}

static void test_two_zones(void)
{
	/* Seen from a private host of zone A. */
	struct overlay_member m[6];
	member(&m[0], "g2", "A", true, true, false);
	member(&m[1], "g1", "A", true, true, false);
	member(&m[2], "gb", "B", true, true, true);
	member(&m[3], "hb", "B", false, true, true);
	member(&m[4], "ha", "A", false, true, false);
	member(&m[5], "g0", "A", true, false, false); /* dead */
	int out = overlay_plan(m, 6, "A", false);
	CHECK(out == 1); /* g1: first alive gateway of A by id */
	/* hb: g1, g2 (zone A), then gb (zone B). */
	CHECK_EQ_U64(m[3].n_relays, 3);
	CHECK_EQ_U64(m[3].relays[0], 1);
	CHECK_EQ_U64(m[3].relays[1], 0);
	CHECK_EQ_U64(m[3].relays[2], 2);
	/* gb itself: through A's gateways only. */
	CHECK_EQ_U64(m[2].n_relays, 2);
	/* g1: g2 as a fallback, never itself. */
	CHECK_EQ_U64(m[1].n_relays, 1);
	CHECK_EQ_U64(m[1].relays[0], 0);
	/* A gateway sends outside traffic itself, and reaches hb through
	 * B's gateways only (never bouncing through g1 or g2). */
	CHECK(overlay_plan(m, 6, "A", true) == -1);
	CHECK_EQ_U64(m[3].n_relays, 1);
	CHECK_EQ_U64(m[3].relays[0], 2);
	/* Failover: g1 dies, g2 takes outside traffic. */
	m[1].alive = false;
	CHECK(overlay_plan(m, 6, "A", false) == 0);
	CHECK_EQ_U64(m[3].n_relays, 2);
	CHECK_EQ_U64(m[3].relays[0], 0);
}

/* Outside traffic goes to the gateway that holds the public pool, so an
 * elastic IP's replies leave where its DNAT is; by id otherwise. */
static void test_pool_gateway(void)
{
	struct overlay_member m[3];
	member(&m[0], "g1", "A", true, true, false);
	member(&m[1], "g2", "A", true, true, false);
	member(&m[2], "ha", "A", false, true, false);
	CHECK(overlay_plan(m, 3, "A", false) == 0);
	m[1].pool = true;
	CHECK(overlay_plan(m, 3, "A", false) == 1);
	/* The pool's gateway dies: the other still carries outside traffic. */
	m[1].alive = false;
	CHECK(overlay_plan(m, 3, "A", false) == 0);
}

int main(void)
{
	RUN(test_flat);
	RUN(test_two_zones);
	RUN(test_pool_gateway);
	return check_summary();
}
