/*
 * The peer daemon: one libuv loop that composes the store, the control
 * socket and (as they arrive) gossip, the API edge and the overlay.
 * Internal to peer/.
 */
#ifndef PEER_PEER_H
#define PEER_PEER_H

#include "capacity.h"
#include "config.h"
#include "ctl.h"
#include "datadir.h"
#include "hlc.h"
#include "net.h"
#include "records.h"
#include "store.h"

#include <uv.h>

struct api_edge;
struct peer_instances;

#include "apiedge.h"

#define PEER_KEY_CACHE 256

/* An access key the edge verified lately (edge.c). */
struct peer_key_cache {
	char key_id[32];
	struct api_key_info info;
	uint64_t until; /* loop time (ms) after which it is looked up again */
};

struct peer {
	uv_loop_t *loop;
	struct peer_config cfg;
	int lock_fd;

	char id[PEER_ID_HEX_LEN + 1];
	char cloud_id[33];
	char region[64];
	char cidr[48];
	char advertise[64];
	struct mc_identity identity;
	struct peer_keyring keyring;
	uint64_t keyring_hlc; /* stamp of the keyring record installed */
	uv_timer_t rotate_timer;
	bool rotate_timer_ready;
	int rotate_step; /* 0: no rotation under way */

	struct peer_store *store;
	struct mc_hlc clock;
	struct peer_writer writer;
	struct peer_capacity capacity;

	struct peer_ctl *ctl;
	struct peer_net *net;
	struct peer_rpc *rpc;       /* rpc.c */
	struct peer_launch *launch; /* launch.c: the edge's placements */
	struct api_edge *edge;
	struct peer_instances *instances; /* instances.c; NULL when stopped */
	struct peer_images *images;       /* images.c; NULL when stopped */
	struct peer_hostnet *hostnet;     /* hostnet.c; NULL when stopped */
	struct peer_secgroups *secgroups; /* secgroups.c; NULL when stopped */
	struct peer_overlay *overlay;     /* overlay.c; NULL when stopped */
	struct peer_gateway_nat *gateway_nat; /* gateway_nat.c, or NULL */
	uv_timer_t edge_wait; /* until the CA record arrives */
	struct peer_key_cache key_cache[PEER_KEY_CACHE];
	bool edge_waiting;
	uv_signal_t sigterm, sigint;
	uv_timer_t collect_timer;
	uint64_t started_ms;
	bool stopping;
};

/*
 * Runs a peer with cfg until SIGTERM or SIGINT. Returns the process exit
 * status: 0 after a clean stop, 1 when it could not start, 2 for bad input
 * (a bad join token, a data dir holding no cloud).
 */
int peer_run(const struct peer_config *cfg);

/* Control socket requests (ctl_cmds.c). */
void peer_ctl_dispatch(void *arg, const struct mc_val *request,
                       struct mc_buf *reply);

/* `mallee admin ping`: starts an RPC ping, then polls for its answer
 * (rpc_ping.c). */
void peer_cmd_ping(struct peer *p, const struct mc_val *req,
                   struct mc_buf *reply);
void peer_cmd_ping_result(struct peer *p, const struct mc_val *req,
                          struct mc_buf *reply);

/* Accounts and access keys (ctl_keys.c). */
void peer_cmd_account_create(struct peer *p, const struct mc_val *req,
                             struct mc_buf *reply);
void peer_cmd_key_create(struct peer *p, const struct mc_val *req,
                         struct mc_buf *reply);
void peer_cmd_key_list(struct peer *p, const struct mc_val *req,
                       struct mc_buf *reply);
void peer_cmd_key_revoke(struct peer *p, const struct mc_val *req,
                         struct mc_buf *reply);

#endif
