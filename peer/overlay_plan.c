/*
 * Paths and the outside gateway, as a pure function of the membership so
 * that it is cheap to run every tick and simple to test.
 */
#include "overlay_int.h"

#include <string.h>

/* Appends gateways of zone (alive, not dst, not already listed) by id. */
static void add_gateways(struct overlay_member *m, size_t n, size_t dst,
                         const char *zone)
{
	struct overlay_member *d = &m[dst];
	for (;;) {
		long best = -1;
		for (size_t i = 0; i < n; i++) {
			if (i == dst || !m[i].alive || !m[i].gateway ||
			    strcmp(m[i].zone, zone) != 0)
				continue;
			bool listed = false;
			for (unsigned k = 0; k < d->n_relays; k++)
				listed |= d->relays[k] == i;
			if (listed)
				continue;
			if (best < 0 || strcmp(m[i].id, m[best].id) < 0)
				best = (long)i;
		}
		if (best < 0 || d->n_relays == OVERLAY_MAX_RELAYS)
			return;
		d->relays[d->n_relays++] = (unsigned)best;
	}
}

int overlay_plan(struct overlay_member *m, size_t n, const char *self_zone,
                 bool self_gateway)
{
	int out = -1;
	for (size_t i = 0; i < n; i++) {
		m[i].n_relays = 0;
		if (!m[i].alive)
			continue;
		/* A gateway reaches the other zones' gateways itself: through
		 * its own zone's it would only bounce between them. */
		if (!self_gateway)
			add_gateways(m, n, i, self_zone);
		add_gateways(m, n, i, m[i].zone);
	}
	if (self_gateway)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!m[i].alive || !m[i].gateway ||
		    strcmp(m[i].zone, self_zone) != 0)
			continue;
		if (out < 0 || (m[i].pool && !m[out].pool) ||
		    (m[i].pool == m[out].pool &&
		     strcmp(m[i].id, m[out].id) < 0))
			out = (int)i;
	}
	return out;
}
