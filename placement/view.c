/*
 * The prepared view: host ids hashed once and ranked in strcmp order, zones
 * interned to small integers, and the scratch space decisions reuse, so that
 * a decision neither hashes a host id nor allocates.
 */
#include "placement_int.h"

#include "mem.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct id_ref {
	const char *id;
	uint32_t host;
};

static int id_ref_cmp(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	return strcmp(x->id, y->id);
}

/* Index of zone z, added if new; "" and NULL are PLC_NO_ZONE. */
static uint32_t zone_intern(struct plc_view *view, const char *z)
{
	if (!z || !*z)
		return PLC_NO_ZONE;
	for (size_t i = 1; i < view->n_zones; i++)
		if (strcmp(view->zones[i], z) == 0)
			return (uint32_t)i;
	if (view->n_zones == view->zones_cap) {
		view->zones_cap *= 2;
		view->zones = xrealloc(view->zones,
		                       view->zones_cap * sizeof(*view->zones));
	}
	view->zones[view->n_zones] = xstrdup(z);
	return (uint32_t)view->n_zones++;
}

static void slot_fill(struct plc_view *view, struct plc_slot *slot,
                      const struct plc_host *host)
{
	slot->weight = plc_host_weight(host);
	slot->mem_free = host->mem_free_mib;
	slot->disk_free = host->disk_free_mib;
	slot->load = host->load;
	slot->zone = zone_intern(view, host->zone);
	bool usable = host->alive && slot->weight > 0;
	slot->vcpu_room = usable ? (uint64_t)host->vcpu_free + 1 : 0;
}

struct plc_view *plc_view_new(const struct plc_host *hosts, size_t n,
                              double epsilon)
{
	if (isnan(epsilon) || epsilon < 0 || n > PLC_MAX_HOSTS || (n && !hosts))
		return NULL;
	size_t id_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (!hosts[i].id)
			return NULL;
		id_bytes += strlen(hosts[i].id) + 1;
	}

	/* Rank the ids; equal neighbours are a repeated id. */
	struct id_ref *refs = xcalloc(n, sizeof(*refs));
	for (size_t i = 0; i < n; i++)
		refs[i] = (struct id_ref){hosts[i].id, (uint32_t)i};
	qsort(refs, n, sizeof(*refs), id_ref_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(refs[i - 1].id, refs[i].id) == 0) {
			free(refs);
			return NULL;
		}
	}

	struct plc_view *view = xcalloc(1, sizeof(*view));
	view->n = n;
	view->epsilon = epsilon;
	view->slots = xcalloc(n, sizeof(*view->slots));
	view->ids = xcalloc(n, sizeof(*view->ids));
	view->id_block = xmalloc(id_bytes);
	view->zones_cap = 4;
	view->zones = xcalloc(view->zones_cap, sizeof(*view->zones));
	view->zones[PLC_NO_ZONE] = xstrdup("");
	view->n_zones = 1;
	view->fit = xcalloc(n, sizeof(*view->fit));
	view->under = xcalloc(n, sizeof(*view->under));
	view->over = xcalloc(n, sizeof(*view->over));

	char *p = view->id_block;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(hosts[i].id) + 1;
		memcpy(p, hosts[i].id, len);
		view->ids[i] = p;
		p += len;
		view->slots[i].key = plc_key(hosts[i].id);
		slot_fill(view, &view->slots[i], &hosts[i]);
	}
	for (size_t r = 0; r < n; r++)
		view->slots[refs[r].host].rank = (uint32_t)r;
	free(refs);
	return view;
}

void plc_view_free(struct plc_view *view)
{
	if (!view)
		return;
	for (size_t i = 0; i < view->n_zones; i++)
		free(view->zones[i]);
	free(view->zones);
	free(view->slots);
	free(view->ids);
	free(view->id_block);
	free(view->fit);
	free(view->under);
	free(view->over);
	free(view);
}

size_t plc_view_size(const struct plc_view *view)
{
	return view->n;
}

int plc_view_update(struct plc_view *view, size_t i,
                    const struct plc_host *host)
{
	if (i >= view->n || !host || !host->id ||
	    strcmp(host->id, view->ids[i]) != 0)
		return -EINVAL;
	slot_fill(view, &view->slots[i], host);
	return 0;
}

void plc_view_set_load(struct plc_view *view, size_t i, uint32_t load)
{
	assert(i < view->n);
	view->slots[i].load = load;
}
