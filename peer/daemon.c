#include "peer.h"

#include "cloud.h"
#include "cloudkey.h"
#include "edge.h"
#include "gateway_nat.h"
#include "hostnet.h"
#include "images.h"
#include "instances.h"
#include "log.h"
#include "mem.h"
#include "overlay.h"
#include "rpc.h"
#include "secgroups.h"
#include "token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_START 1
#define EXIT_INPUT 2

static bool is_token(const char *join)
{
	return strncmp(join, PEER_TOKEN_PREFIX, strlen(PEER_TOKEN_PREFIX)) == 0;
}

/* Checks --join ADDR[,ADDR...]: each must parse as an address. */
static int check_join_addrs(const char *join, char *err, size_t err_size)
{
	char *copy = xstrdup(join);
	char *save = NULL;
	int r = 0;
	for (char *a = strtok_r(copy, ",", &save); a;
	     a = strtok_r(NULL, ",", &save)) {
		struct mc_addr addr;
		if (mc_addr_parse(&addr, a, PEER_DEFAULT_GOSSIP_PORT) != 0) {
			snprintf(err, err_size,
			         "--join: \"%s\" is neither a join token nor "
			         "an address like 10.0.0.1:7700",
			         a);
			r = -EINVAL;
			break;
		}
	}
	free(copy);
	return r;
}

/*
 * The address others should dial: --advertise, else --listen when it names
 * one address, else this host's first non-loopback IPv4 address.
 */
static void choose_advertise(struct peer *p)
{
	struct mc_addr listen;
	if (p->cfg.advertise[0]) {
		snprintf(p->advertise, sizeof(p->advertise), "%s",
		         p->cfg.advertise);
		return;
	}
	mc_addr_parse(&listen, p->cfg.listen, PEER_DEFAULT_GOSSIP_PORT);
	if (!mc_addr_is_any(&listen)) {
		mc_addr_format(&listen, p->advertise, sizeof(p->advertise));
		return;
	}
	char host[INET_ADDRSTRLEN] = "127.0.0.1";
	struct ifaddrs *ifs;
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
			if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
			    (i->ifa_flags & IFF_LOOPBACK) ||
			    !(i->ifa_flags & IFF_UP))
				continue;
			inet_ntop(
			    AF_INET,
			    &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
			    host, sizeof(host));
			break;
		}
		freeifaddrs(ifs);
	}
	snprintf(p->advertise, sizeof(p->advertise), "%s:%u", host,
	         mc_addr_port(&listen));
}

/* Makes sure the data dir holds the cloud the flags ask for. */
static int settle_cloud(struct peer *p, char *err, size_t err_size)
{
	const char *dir = p->cfg.data_dir;
	const char *join = p->cfg.join;
	struct peer_token token;
	const char *why;
	bool have = peer_datadir_has_cloud(dir);

	if (join[0] && is_token(join)) {
		if (peer_token_decode(join, &token, &why) != 0) {
			snprintf(err, err_size, "bad join token: %s", why);
			return EXIT_INPUT;
		}
		if (!have) {
			int r = peer_cloud_adopt(dir, &token, err, err_size);
			mc_wipe(&token, sizeof(token));
			return r ? EXIT_START : 0;
		}
		char want[33], have_id[33];
		mc_hex_encode(want, token.cloud_id, sizeof(token.cloud_id));
		mc_wipe(&token, sizeof(token));
		char *db = peer_datadir_path(dir, "mallee.db");
		struct peer_store *s = NULL;
		int r = peer_store_open(db, false, &s, err, err_size);
		free(db);
		if (r)
			return EXIT_START;
		r = peer_store_meta_get(s, "cloud-id", have_id,
		                        sizeof(have_id));
		peer_store_close(s);
		if (r == 0 && strcmp(want, have_id) != 0) {
			snprintf(err, err_size,
			         "data dir %s belongs to cloud %s, but the "
			         "token is for cloud %s",
			         dir, have_id, want);
			return EXIT_INPUT;
		}
		return 0;
	}
	if (join[0] && check_join_addrs(join, err, err_size))
		return EXIT_INPUT;
	if (!have) {
		snprintf(err, err_size,
		         "data dir %s holds no cloud: create one with `mallee "
		         "init --data-dir %s`, or join with `mallee peer "
		         "--join TOKEN` (a token from `mallee token`)",
		         dir, dir);
		return EXIT_INPUT;
	}
	return 0;
}

static int load_state(struct peer *p, char *err, size_t err_size)
{
	const char *dir = p->cfg.data_dir;
	int r;

	/* An empty or missing store beside the cloud's keys is a lost store:
	 * opening it would quietly start a fresh one. */
	char *db = peer_datadir_path(dir, "mallee.db");
	struct stat st;
	bool lost = stat(db, &st) != 0 || st.st_size == 0;
	free(db);
	if (lost) {
		snprintf(err, err_size,
		         "%s/mallee.db is missing or empty: the store is lost; "
		         "restore it, or start over with an empty data dir and "
		         "--join",
		         dir);
		return -EIO;
	}

	if ((r = peer_keyring_load(dir, &p->keyring, err, err_size)) ||
	    (r = peer_identity_load(dir, &p->identity, err, err_size)))
		return r;
	peer_id_of(&p->identity, p->id);

	db = peer_datadir_path(dir, "mallee.db");
	r = peer_store_open(db, false, &p->store, err, err_size);
	free(db);
	if (r)
		return r;
	if (peer_store_meta_get(p->store, "cloud-id", p->cloud_id,
	                        sizeof(p->cloud_id)) ||
	    peer_store_meta_get(p->store, "name", p->region,
	                        sizeof(p->region)) ||
	    peer_store_meta_get(p->store, "cidr", p->cidr, sizeof(p->cidr))) {
		snprintf(err, err_size,
		         "the store in %s lacks the cloud's settings", dir);
		return -EINVAL;
	}
	mc_hlc_init(&p->clock, MC_HLC_DEFAULT_MAX_SKEW_MS);
	if ((r = peer_writer_init(&p->writer, p->store, &p->clock, p->id))) {
		snprintf(err, err_size, "cannot read the store: %s",
		         strerror(-r));
		return r;
	}
	if (!p->cfg.name[0] &&
	    gethostname(p->cfg.name, sizeof(p->cfg.name) - 1) != 0)
		snprintf(p->cfg.name, sizeof(p->cfg.name), "%s", p->id);
	if (!p->cfg.zone[0])
		snprintf(p->cfg.zone, sizeof(p->cfg.zone), "%.62sa", p->region);
	if ((r = peer_capacity_measure(dir, &p->capacity))) {
		snprintf(err, err_size, "cannot measure capacity: %s",
		         strerror(-r));
		return r;
	}
	choose_advertise(p);
	/* `mallee token` names this address when the peer is not running. */
	peer_store_meta_set(p->store, "advertise", p->advertise);
	return 0;
}

static void close_all(struct peer *p)
{
	peer_cloudkey_stop(p);
	peer_edge_stop(p);
	peer_instances_stop(p);
	peer_images_stop(p);
	peer_secgroups_stop(p);
	peer_gateway_nat_stop(p);
	peer_overlay_stop(p);
	peer_hostnet_stop(p); /* when a diagnostic started it alone */
	peer_rpc_stop(p);
	if (p->net) {
		peer_net_stop(p->net);
		p->net = NULL;
	}
	peer_ctl_stop(p->ctl);
	p->ctl = NULL;
	if (!uv_is_closing((uv_handle_t *)&p->sigterm)) {
		uv_close((uv_handle_t *)&p->sigterm, NULL);
		uv_close((uv_handle_t *)&p->sigint, NULL);
		uv_close((uv_handle_t *)&p->collect_timer, NULL);
	}
}

static void left(struct peer *p)
{
	mc_info("gossip", "told the others this peer leaves");
	close_all(p);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct peer *p = s->data;
	if (p->stopping) {
		if (p->net) /* a second signal: stop waiting for the leave */
			close_all(p);
		return;
	}
	p->stopping = true;
	mc_info("peer", "%s: stopping", strsignal(signum));
	if (p->net)
		peer_net_leave(p->net, left);
	else
		close_all(p);
}

/*
 * Tombstones are kept long enough for any peer that was away (partitioned,
 * powered off) to learn of the delete before they go; a peer away longer
 * than this should rejoin with an empty data dir.
 */
#define TOMBSTONE_GRACE_MS (7ull * 24 * 3600 * 1000)
#define COLLECT_EVERY_MS   (3600ull * 1000)

static void on_collect(uv_timer_t *t)
{
	struct peer *p = t->data;
	uint64_t removed = 0;
	int r = peer_store_collect_tombstones(
	    p->store, mc_wall_ms() - TOMBSTONE_GRACE_MS, &removed);
	if (r)
		mc_warn("store", "collecting tombstones: %s", strerror(-r));
	else if (removed)
		mc_info("store", "collected %llu tombstones",
		        (unsigned long long)removed);
}

/*
 * Where to join: --join (a token's addresses, or ADDR,...), else the live
 * members this peer saw last time it ran.
 */
static void choose_seeds(struct peer *p, char *out, size_t size)
{
	struct peer_token t;
	const char *why;
	out[0] = '\0';
	if (p->cfg.join[0] && is_token(p->cfg.join)) {
		if (peer_token_decode(p->cfg.join, &t, &why) == 0) {
			for (unsigned i = 0; i < t.n_addrs; i++) {
				size_t len = strlen(out);
				snprintf(out + len, size - len, "%s%s",
				         len ? "," : "", t.addrs[i]);
			}
		}
		mc_wipe(&t, sizeof(t));
	} else if (p->cfg.join[0]) {
		snprintf(out, size, "%s", p->cfg.join);
	} else {
		peer_store_meta_get(p->store, "seeds", out, size);
	}
}

static void log_start(const struct peer *p)
{
	char roles[32] = "";
	if (p->cfg.edge)
		strcat(roles, "edge ");
	if (p->cfg.gateway)
		strcat(roles, "gateway ");
	if (!roles[0])
		strcpy(roles, "host ");
	roles[strlen(roles) - 1] = '\0';
	mc_info("peer",
	        "peer %s (%s) up: cloud %s region %s zone %s, roles %s, "
	        "advertising %s, %u vCPU %llu MiB memory %llu MiB disk",
	        p->id, p->cfg.name, p->cloud_id, p->region, p->cfg.zone, roles,
	        p->advertise, p->capacity.vcpu_total,
	        (unsigned long long)p->capacity.memory_mib_total,
	        (unsigned long long)p->capacity.disk_mib_total);
}

static void teardown(struct peer *p)
{
	if (p->store)
		peer_store_close(p->store);
	p->store = NULL;
	mc_wipe(&p->identity, sizeof(p->identity));
	mc_wipe(&p->keyring, sizeof(p->keyring));
	peer_datadir_unlock(p->lock_fd);
}

int peer_run(const struct peer_config *cfg)
{
	struct peer *p = xcalloc(1, sizeof(*p));
	char err[1024] = "";
	int status = EXIT_START;
	uv_loop_t loop;

	p->cfg = *cfg;
	p->lock_fd = -1;
	p->started_ms = mc_wall_ms();
	mc_log_set_level(cfg->log_level);

	/* Bad input is refused before anything is created on disk. */
	bool joining = cfg->join[0] && is_token(cfg->join);
	struct peer_token token;
	const char *why;
	if (joining && peer_token_decode(cfg->join, &token, &why) != 0) {
		snprintf(err, sizeof(err), "bad join token: %s", why);
		status = EXIT_INPUT;
		goto fail;
	}
	mc_wipe(&token, sizeof(token));
	if (!joining && cfg->join[0] &&
	    check_join_addrs(cfg->join, err, sizeof(err))) {
		status = EXIT_INPUT;
		goto fail;
	}
	if (peer_datadir_prepare(cfg->data_dir, joining, err, sizeof(err))) {
		if (!joining && access(cfg->data_dir, F_OK) != 0 &&
		    errno == ENOENT) {
			snprintf(
			    err, sizeof(err),
			    "data dir %s does not exist: create a cloud "
			    "with `mallee init --data-dir %s`, or join one "
			    "with `mallee peer --join TOKEN`",
			    cfg->data_dir, cfg->data_dir);
			status = EXIT_INPUT;
		}
		goto fail;
	}
	/* Absolute from here on: libvirt and QEMU are handed paths under it. */
	char abs_dir[PATH_MAX];
	if (realpath(cfg->data_dir, abs_dir) &&
	    strlen(abs_dir) < sizeof(p->cfg.data_dir))
		snprintf(p->cfg.data_dir, sizeof(p->cfg.data_dir), "%s",
		         abs_dir);
	p->lock_fd = peer_datadir_lock(cfg->data_dir, err, sizeof(err));
	if (p->lock_fd < 0)
		goto fail;
	status = settle_cloud(p, err, sizeof(err));
	if (status)
		goto fail;
	status = EXIT_START;
	if (load_state(p, err, sizeof(err)))
		goto fail;

	if (uv_loop_init(&loop) != 0) {
		snprintf(err, sizeof(err), "cannot start the event loop");
		goto fail;
	}
	p->loop = &loop;
	uv_signal_init(&loop, &p->sigterm);
	uv_signal_init(&loop, &p->sigint);
	p->sigterm.data = p->sigint.data = p;
	uv_signal_start(&p->sigterm, on_signal, SIGTERM);
	uv_signal_start(&p->sigint, on_signal, SIGINT);
	uv_timer_init(&loop, &p->collect_timer);
	p->collect_timer.data = p;
	uv_timer_start(&p->collect_timer, on_collect, COLLECT_EVERY_MS,
	               COLLECT_EVERY_MS);

	char *sock = peer_datadir_path(cfg->data_dir, PEER_CTL_SOCKET);
	p->ctl =
	    peer_ctl_start(&loop, sock, peer_ctl_dispatch, p, err, sizeof(err));
	free(sock);
	if (!p->ctl) {
		uv_close((uv_handle_t *)&p->sigterm, NULL);
		uv_close((uv_handle_t *)&p->sigint, NULL);
		uv_close((uv_handle_t *)&p->collect_timer, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		goto fail;
	}

	char seeds[4096];
	choose_seeds(p, seeds, sizeof(seeds));
	p->net = peer_net_start(p, seeds, err, sizeof(err));
	if (!p->net) {
		close_all(p);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		goto fail;
	}
	peer_rpc_start(p);
	peer_images_start(p, err, sizeof(err));
	if (peer_instances_start(p, err, sizeof(err))) {
		close_all(p);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		goto fail;
	}
	peer_cloudkey_sync(p);
	/* Enforces groups whenever host networking runs (secgroups.c). */
	peer_secgroups_start(p);
	/* Hosts start the overlay with their bridge (hostnet.c). */
	if (p->cfg.gateway)
		peer_overlay_start(p);
	/* NAT and elastic IPs on gateways (gateway_nat.c). */
	if (peer_gateway_nat_start(p, err, sizeof(err))) {
		close_all(p);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		goto fail;
	}
	log_start(p);
	if (p->cfg.edge && peer_edge_start(p, err, sizeof(err))) {
		close_all(p);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		goto fail;
	}
	if (seeds[0])
		mc_info("gossip", "joining through %s", seeds);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		mc_warn("peer", "event loop closed with handles still open");
	status = 0;
	mc_info("peer", "stopped cleanly");
	teardown(p);
	free(p);
	return status;

fail:
	mc_error("peer", "%s", err);
	teardown(p);
	free(p);
	return status;
}
