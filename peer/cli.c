#include "cli.h"

#include "cloud.h"
#include "config.h"
#include "ctl.h"
#include "datadir.h"
#include "log.h"
#include "mem.h"
#include "peer.h"
#include "store.h"
#include "token.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "mallee %s: %s (see mallee %s --help)\n", cmd, msg,
	        cmd);
	return 2;
}

/* Names the first operand a command that takes none was given. */
int extra_arg(const char *cmd, const char *arg)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "unexpected argument: %.100s", arg);
	return usage_error(cmd, msg);
}

/* Names the argument getopt_long just refused (unknown, or lacking its
 * value); call it right after getopt_long returned '?'. */
int bad_flag(const char *cmd, int argc, char **argv)
{
	char msg[160];
	const char *arg = optind > 1 && optind <= argc ? argv[optind - 1] : "";
	snprintf(msg, sizeof(msg), "unknown flag or missing value: %.100s",
	         arg);
	return usage_error(cmd, msg);
}

int cli_peer(int argc, char **argv)
{
	struct peer_config cfg;
	char err[1024];
	peer_config_defaults(&cfg);
	int r = peer_config_load(&cfg, argc, argv, err, sizeof(err));
	if (r == 1)
		return 0;
	if (r)
		return usage_error("peer", err);
	return peer_run(&cfg);
}

int cli_init(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"name", required_argument, NULL, 'n'},
	    {"cidr", required_argument, NULL, 'c'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct peer_cloud_spec spec = {
	    .data_dir = PEER_DEFAULT_DATA_DIR,
	    .name = PEER_DEFAULT_REGION,
	    .cidr = PEER_DEFAULT_CIDR,
	};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			spec.data_dir = optarg;
			break;
		case 'n':
			spec.name = optarg;
			break;
		case 'c':
			spec.cidr = optarg;
			break;
		case 'f':
			spec.force = true;
			break;
		case 'h':
			printf("usage: mallee init [--data-dir DIR] [--name "
			       "REGION] [--cidr CIDR] [--force]\n\n"
			       "Creates a new cloud in DIR "
			       "(default " PEER_DEFAULT_DATA_DIR
			       "): its id and secret "
			       "key, this\nhost's identity, the store, and "
			       "the admin account's first access key,\n"
			       "which is printed once.\n\n"
			       "  --name REGION  the region name "
			       "(default " PEER_DEFAULT_REGION
			       "; AWS-style names suit "
			       "the most clients)\n"
			       "  --cidr CIDR    instances' private network "
			       "(default " PEER_DEFAULT_CIDR ")\n"
			       "  --force        replace a cloud already in "
			       "DIR (its keys and records are lost)\n");
			return 0;
		default:
			return bad_flag("init", argc, argv);
		}
	}
	if (optind < argc)
		return extra_arg("init", argv[optind]);

	struct peer_access_key admin;
	char cloud_id[33], err[1024];
	int r = peer_cloud_create(&spec, &admin, cloud_id, err, sizeof(err));
	if (r) {
		fprintf(stderr, "mallee init: %s\n", err);
		return r == -EINVAL || r == -EEXIST ? 2 : 1;
	}
	printf("created cloud %s, region %s, private network %s, in %s\n\n"
	       "admin access key (shown once; keep it safe):\n"
	       "  account                %s\n"
	       "  AWS_ACCESS_KEY_ID=%s\n"
	       "  AWS_SECRET_ACCESS_KEY=%s\n",
	       cloud_id, spec.name, spec.cidr, spec.data_dir, admin.account,
	       admin.key_id, admin.secret);
	mc_wipe(&admin, sizeof(admin));
	return 0;
}

/* Sends one request to the local peer; prints the error on failure. */
int ctl_request(const char *cmd, const char *dir, const struct mc_buf *req,
                struct mc_doc **out)
{
	char err[1024];
	struct mc_doc *doc = NULL;
	int r = peer_ctl_call(dir, req, CTL_TIMEOUT_MS, &doc, err, sizeof(err));
	if (r) {
		fprintf(stderr, "mallee %s: %s\n", cmd, err);
		return 1;
	}
	const struct mc_val *root = mc_doc_root(doc);
	bool ok = false;
	if (!mc_get_bool(root, "ok", &ok) || !ok) {
		char msg[512] = "the peer refused the request";
		mc_get_str(root, "error", msg, sizeof(msg));
		fprintf(stderr, "mallee %s: %s\n", cmd, msg);
		mc_doc_free(doc);
		return 1;
	}
	*out = doc;
	return 0;
}

int ctl_command(const char *cmd, const char *dir, const char *what,
                struct mc_doc **out)
{
	struct mc_buf req;
	mc_buf_init(&req);
	mc_pack_map(&req, 1);
	mc_pack_kv_str(&req, "cmd", what);
	int r = ctl_request(cmd, dir, &req, out);
	mc_buf_free(&req);
	return r;
}

int ctl_poll(const char *cmd, const char *dir, const struct ctl_poll *p,
             struct mc_doc **out)
{
	for (unsigned n = 0; p->tries == 0 || n < p->tries; n++) {
		struct mc_buf req;
		struct mc_doc *doc = NULL;
		mc_buf_init(&req);
		mc_pack_map(&req, 2);
		mc_pack_kv_str(&req, "cmd", p->what);
		mc_pack_kv_uint(&req, p->key, p->id);
		int r = ctl_request(cmd, dir, &req, &doc);
		mc_buf_free(&req);
		if (r)
			return r;
		bool done = false;
		mc_get_bool(mc_doc_root(doc), "done", &done);
		if (done) {
			*out = doc;
			return 0;
		}
		mc_doc_free(doc);
		struct timespec ts = {p->interval_ms / 1000,
		                      (p->interval_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "mallee %s: %s: no outcome in time\n", cmd, p->label);
	return 1;
}

int cli_token(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"addr", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = PEER_DEFAULT_DATA_DIR;
	struct peer_token t;
	memset(&t, 0, sizeof(t));
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		struct mc_addr a;
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'a':
			if (mc_addr_parse(&a, optarg,
			                  PEER_DEFAULT_GOSSIP_PORT) != 0 ||
			    strlen(optarg) >= sizeof(t.addrs[0]))
				return usage_error("token",
				                   "--addr needs an address "
				                   "like 10.0.0.1:7700");
			if (t.n_addrs == PEER_TOKEN_MAX_ADDRS)
				return usage_error("token", "too many --addr");
			snprintf(t.addrs[t.n_addrs++], sizeof(t.addrs[0]), "%s",
			         optarg);
			break;
		case 'h':
			printf("usage: mallee token [--data-dir DIR] [--addr "
			       "ADDR]...\n\n"
			       "Prints a join token for this peer's cloud: "
			       "`mallee peer --join TOKEN` on a\nnew host "
			       "makes it a member. The token holds the "
			       "cloud's secret key.\nIt names the live "
			       "peers' addresses, or the --addr given.\n");
			return 0;
		default:
			return bad_flag("token", argc, argv);
		}
	}
	if (optind < argc)
		return extra_arg("token", argv[optind]);

	char err[1024];
	struct peer_keyring ring;
	if (peer_keyring_load(dir, &ring, err, sizeof(err))) {
		fprintf(stderr, "mallee token: %s\n", err);
		return 1;
	}
	memcpy(t.cloud_key, ring.keys[0], sizeof(t.cloud_key));
	mc_wipe(&ring, sizeof(ring));

	char *db = peer_datadir_path(dir, "mallee.db");
	struct peer_store *s = NULL;
	int r = peer_store_open(db, false, &s, err, sizeof(err));
	free(db);
	if (r) {
		fprintf(stderr, "mallee token: %s\n", err);
		mc_wipe(&t, sizeof(t));
		return 1;
	}
	char cloud_id[33], advertise[64] = "";
	r = peer_store_meta_get(s, "cloud-id", cloud_id, sizeof(cloud_id)) ||
	    peer_store_meta_get(s, "name", t.name, sizeof(t.name)) ||
	    peer_store_meta_get(s, "cidr", t.cidr, sizeof(t.cidr)) ||
	    mc_hex_decode(t.cloud_id, sizeof(t.cloud_id), cloud_id,
	                  strlen(cloud_id));
	peer_store_meta_get(s, "advertise", advertise, sizeof(advertise));
	peer_store_close(s);
	if (r) {
		fprintf(stderr,
		        "mallee token: the store in %s lacks the "
		        "cloud's settings\n",
		        dir);
		mc_wipe(&t, sizeof(t));
		return 1;
	}

	/* Without --addr, name the live members the local peer knows. */
	struct mc_doc *doc = NULL;
	if (t.n_addrs == 0) {
		struct mc_buf req;
		mc_buf_init(&req);
		mc_pack_map(&req, 1);
		mc_pack_kv_str(&req, "cmd", "status");
		if (peer_ctl_call(dir, &req, CTL_TIMEOUT_MS, &doc, err,
		                  sizeof(err)) == 0) {
			const struct mc_val *members = mc_map_get(
			    mc_map_get(mc_doc_root(doc), "status"), "members");
			for (uint32_t i = 0;
			     members && members->type == MC_VAL_ARRAY &&
			     i < members->v.array.n &&
			     t.n_addrs < PEER_TOKEN_MAX_ADDRS;
			     i++) {
				const struct mc_val *m =
				    &members->v.array.items[i];
				char state[16];
				if (mc_get_str(m, "state", state,
				               sizeof(state)) &&
				    strcmp(state, "alive") == 0 &&
				    mc_get_str(m, "addr", t.addrs[t.n_addrs],
				               sizeof(t.addrs[0])))
					t.n_addrs++;
			}
			mc_doc_free(doc);
		}
		mc_buf_free(&req);
	}
	if (t.n_addrs == 0 && advertise[0])
		snprintf(t.addrs[t.n_addrs++], sizeof(t.addrs[0]), "%s",
		         advertise);
	if (t.n_addrs == 0) {
		fprintf(stderr, "mallee token: no peer address is known yet: "
		                "start the peer once, or name one with "
		                "--addr\n");
		mc_wipe(&t, sizeof(t));
		return 1;
	}
	char *text = peer_token_encode(&t);
	printf("%s\n", text);
	mc_wipe(text, strlen(text));
	free(text);
	mc_wipe(&t, sizeof(t));
	return 0;
}

void print_json(const struct mc_val *v)
{
	struct mc_buf out;
	mc_buf_init(&out);
	mc_val_to_json(v, &out, true);
	mc_buf_put_u8(&out, '\n');
	fwrite(out.data, 1, out.len, stdout);
	mc_buf_free(&out);
}

const char *str_or(const struct mc_val *m, const char *key, char *buf,
                   size_t size, const char *fallback)
{
	return mc_get_str(m, key, buf, size) ? buf : fallback;
}

static uint64_t cap_of(const struct mc_val *m, const char *what,
                       const char *which)
{
	uint64_t v = 0;
	mc_get_uint(mc_map_get(mc_map_get(m, "capacity"), what), which, &v);
	return v;
}

static void roles_text(const struct mc_val *m, char *out, size_t size)
{
	const struct mc_val *roles = mc_map_get(m, "roles");
	out[0] = '\0';
	for (uint32_t i = 0;
	     roles && roles->type == MC_VAL_ARRAY && i < roles->v.array.n;
	     i++) {
		const struct mc_val *r = &roles->v.array.items[i];
		if (r->type != MC_VAL_STR)
			continue;
		size_t len = strlen(out);
		snprintf(out + len, size - len, "%s%.*s", len ? "," : "",
		         (int)r->v.s.n, r->v.s.p);
	}
	if (!out[0])
		snprintf(out, size, "host");
}

static void print_status(const struct mc_val *status)
{
	const struct mc_val *self = mc_map_get(status, "self");
	const struct mc_val *members = mc_map_get(status, "members");
	char a[128], b[128], c[128], d[128], e[128], roles[64];
	uint64_t records = 0;

	roles_text(self, roles, sizeof(roles));
	mc_get_uint(self, "records", &records);
	printf("peer     %s (%s)\n", str_or(self, "id", a, sizeof(a), "?"),
	       str_or(self, "name", b, sizeof(b), "?"));
	printf("cloud    %s, region %s, network %s\n",
	       str_or(self, "cloud", a, sizeof(a), "?"),
	       str_or(self, "region", b, sizeof(b), "?"),
	       str_or(self, "cidr", c, sizeof(c), "?"));
	printf("zone     %s\nroles    %s\naddress  %s\n",
	       str_or(self, "zone", a, sizeof(a), "?"), roles,
	       str_or(self, "addr", b, sizeof(b), "?"));
	if (str_or(self, "api", c, sizeof(c), "")[0])
		printf("EC2 API  %s\n", c);
	printf("capacity %llu/%llu vCPU, %llu/%llu MiB memory, %llu/%llu "
	       "MiB disk free\n",
	       (unsigned long long)cap_of(self, "vcpu", "free"),
	       (unsigned long long)cap_of(self, "vcpu", "total"),
	       (unsigned long long)cap_of(self, "memory_mib", "free"),
	       (unsigned long long)cap_of(self, "memory_mib", "total"),
	       (unsigned long long)cap_of(self, "disk_mib", "free"),
	       (unsigned long long)cap_of(self, "disk_mib", "total"));
	printf("records  %llu\n\n", (unsigned long long)records);

	uint32_t n =
	    members && members->type == MC_VAL_ARRAY ? members->v.array.n : 0;
	printf("%-16s  %-16s  %-14s  %-8s  %-21s  %s\n", "MEMBER", "NAME",
	       "ZONE", "STATE", "ADDRESS", "ROLES");
	for (uint32_t i = 0; i < n; i++) {
		const struct mc_val *m = &members->v.array.items[i];
		roles_text(m, roles, sizeof(roles));
		printf("%-16s  %-16s  %-14s  %-8s  %-21s  %s\n",
		       str_or(m, "id", a, sizeof(a), "?"),
		       str_or(m, "name", b, sizeof(b), "?"),
		       str_or(m, "zone", c, sizeof(c), "?"),
		       str_or(m, "state", d, sizeof(d), "?"),
		       str_or(m, "addr", e, sizeof(e), "?"), roles);
	}
}

int cli_status(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = PEER_DEFAULT_DATA_DIR;
	bool json = false;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: mallee status [--data-dir DIR] "
			       "[--json]\n\n"
			       "Shows the cloud as the peer running on DIR "
			       "sees it: this peer, its\ncapacity, and every "
			       "member it knows. --json prints an object with "
			       "\"self\"\nand \"members\".\n");
			return 0;
		default:
			return bad_flag("status", argc, argv);
		}
	}
	if (optind < argc)
		return extra_arg("status", argv[optind]);

	struct mc_doc *doc;
	if (ctl_command("status", dir, "status", &doc))
		return 1;
	const struct mc_val *status = mc_map_get(mc_doc_root(doc), "status");
	if (json)
		print_json(status);
	else
		print_status(status);
	mc_doc_free(doc);
	return 0;
}
