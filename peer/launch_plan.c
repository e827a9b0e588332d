/* The pure part of launching (launch.h): loads per host, and candidates. */
#include "launch.h"

#include "mem.h"
#include "placement.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void peer_launch_loads_add(struct peer_launch_loads *l,
                           const struct mc_instance *inst)
{
	if (!inst->host[0] || !mc_instance_holds_capacity(inst->state))
		return;
	/* Linear while counting: hosts are few beside instances. */
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].host, inst->host) == 0) {
			l->v[i].load++;
			return;
		}
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	snprintf(l->v[l->n].host, sizeof(l->v[l->n].host), "%s", inst->host);
	l->v[l->n].load = 1;
	l->n++;
}

static int load_cmp(const void *a, const void *b)
{
	return strcmp(((const struct peer_launch_load *)a)->host,
	              ((const struct peer_launch_load *)b)->host);
}

void peer_launch_loads_seal(struct peer_launch_loads *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), load_cmp);
}

uint32_t peer_launch_loads_get(const struct peer_launch_loads *l,
                               const char *host)
{
	struct peer_launch_load key;
	snprintf(key.host, sizeof(key.host), "%s", host);
	const struct peer_launch_load *hit =
	    l->n ? bsearch(&key, l->v, l->n, sizeof(*l->v), load_cmp) : NULL;
	return hit ? hit->load : 0;
}

void peer_launch_loads_bump(struct peer_launch_loads *l, const char *host)
{
	struct mc_instance one;
	memset(&one, 0, sizeof(one));
	snprintf(one.host, sizeof(one.host), "%s", host);
	one.state = MC_INST_PENDING;
	peer_launch_loads_add(l, &one);
	peer_launch_loads_seal(l);
}

void peer_launch_loads_free(struct peer_launch_loads *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

long peer_launch_candidates(const struct peer_launch_host *hosts, size_t n,
                            const struct mc_instance *want, size_t *out,
                            size_t k)
{
	if (n == 0 || k == 0)
		return 0;
	struct plc_host *ph = xcalloc(n, sizeof(*ph));
	for (size_t i = 0; i < n; i++) {
		ph[i].id = hosts[i].id;
		ph[i].zone = hosts[i].zone;
		ph[i].vcpu_total = hosts[i].cap.vcpu_total;
		ph[i].vcpu_free = hosts[i].cap.vcpu_free;
		ph[i].mem_total_mib = hosts[i].cap.mem_mib_total;
		ph[i].mem_free_mib = hosts[i].cap.mem_mib_free;
		ph[i].disk_total_mib = hosts[i].cap.disk_mib_total;
		ph[i].disk_free_mib = hosts[i].cap.disk_mib_free;
		ph[i].load = hosts[i].load;
		ph[i].alive = hosts[i].alive;
	}
	struct plc_view *view = plc_view_new(ph, n, PLC_EPSILON_DEFAULT);
	free(ph);
	if (!view)
		return -EINVAL;
	struct plc_request req = {
	    .instance_id = want->id,
	    .vcpu = want->vcpu,
	    .mem_mib = want->mem_mib,
	    .disk_mib = want->disk_mib,
	    .zone = want->zone,
	};
	long r = plc_candidates(view, &req, out, k);
	plc_view_free(view);
	return r;
}
