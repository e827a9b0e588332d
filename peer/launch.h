/*
 * The edge's side of instances: api_cloud's launch, instance_op and
 * host_state (apiedge.h), over placement, the membership and RPC. launch
 * places an instance (placement/) over the alive members and asks the
 * candidates in order to admit it ("admit" RPC) until one does;
 * instance_op asks an instance's host to act on it ("op" RPC), and
 * terminates for a host that is gone.
 */
#ifndef PEER_LAUNCH_H
#define PEER_LAUNCH_H

#include "apiedge.h"
#include "gossip.h"
#include "instance.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer;

/* api_cloud's members; arg is the struct peer. */
int peer_launch(void *arg, const struct mc_instance *want,
                void (*cb)(void *ctx, int status, const char *message,
                           const struct mc_instance *admitted),
                void *ctx);
int peer_instance_op(void *arg, const struct api_instance_request *req,
                     void (*cb)(void *ctx, int status, const char *message,
                                const struct mc_instance *after,
                                const uint8_t *data, size_t len),
                     void *ctx);
const char *peer_host_state(void *arg, const char *host_id);

/*
 * Answers -ECANCELED to every launch and operation still waiting (before
 * the edge goes); their RPCs finish on their own later. From
 * peer_edge_stop.
 */
void peer_launch_stop(struct peer *p);

/* ---- The pure part (launch_plan.c), tested on its own. ---- */

/* A member as placement sees it. */
struct peer_launch_host {
	char id[GOSSIP_ID_LEN + 1];
	char name[GOSSIP_NAME_MAX];
	char zone[GOSSIP_ZONE_MAX];
	struct gossip_capacity cap;
	bool alive;
	uint32_t load; /* instances holding capacity on it */
};

/* Instances per host, from the instance records. */
struct peer_launch_load {
	char host[GOSSIP_ID_LEN + 1];
	uint32_t load;
};

struct peer_launch_loads {
	struct peer_launch_load *v; /* sorted by host once sealed */
	size_t n, cap;
};

/* Counts inst on its host when its state holds capacity. */
void peer_launch_loads_add(struct peer_launch_loads *l,
                           const struct mc_instance *inst);
/* Sorts for lookups; call once after the adds. */
void peer_launch_loads_seal(struct peer_launch_loads *l);
uint32_t peer_launch_loads_get(const struct peer_launch_loads *l,
                               const char *host);
/* One more instance on host (an admission this edge just saw). */
void peer_launch_loads_bump(struct peer_launch_loads *l, const char *host);
void peer_launch_loads_free(struct peer_launch_loads *l);

/*
 * The candidate hosts for want (its id, vcpu, mem_mib, disk_mib, zone), best
 * first, as indices into hosts: plc_candidates() over a view of them.
 * Returns how many were written to out (at most k), or a negative errno.
 */
long peer_launch_candidates(const struct peer_launch_host *hosts, size_t n,
                            const struct mc_instance *want, size_t *out,
                            size_t k);

#endif
