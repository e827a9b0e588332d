#include "config.h"

#include "gateway_nat.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_kind {
	OPT_STR,
	OPT_BOOL,
	OPT_ADDR,
	OPT_LEVEL,
	OPT_PATH,
	OPT_UINT,
	OPT_CHOICE, /* one of the words in arg, "a|b|c" */
	OPT_COUNT,  /* like OPT_UINT, but 0 is allowed (it means "default") */
	OPT_RANGE,  /* a public pool (gateway_nat.h) */
};

struct opt {
	const char *name;
	enum opt_kind kind;
	size_t offset;
	size_t size;
	const char *arg;
	const char *help;
};

#define STR_OPT(field, kind, arg, help)                                        \
	{                                                                      \
#field, kind, offsetof(struct peer_config, field),             \
		    sizeof(((struct peer_config *)0)->field), arg, help        \
	}

#define UINT_OPT(name, field, help)                                            \
	{                                                                      \
		name, OPT_UINT, offsetof(struct peer_config, field),           \
		    sizeof(((struct peer_config *)0)->field), "N", help        \
	}

/* Flag names use '-', struct fields '_'; the table maps between them. */
static const struct opt opts[] = {
    {"data-dir", OPT_PATH, offsetof(struct peer_config, data_dir),
     sizeof(((struct peer_config *)0)->data_dir), "DIR",
     "where this peer keeps its state (default " PEER_DEFAULT_DATA_DIR ")"},
    {"config", OPT_PATH, offsetof(struct peer_config, config_file),
     sizeof(((struct peer_config *)0)->config_file), "FILE",
     "settings file (default DATA_DIR/mallee.conf if present)"},
    STR_OPT(join, OPT_STR, "TOKEN|ADDR[,ADDR]",
            "join a cloud: a token from `mallee token`, or member addresses"),
    STR_OPT(name, OPT_STR, "NAME", "this peer's name (default: host name)"),
    STR_OPT(zone, OPT_STR, "ZONE",
            "availability zone = cluster (default: REGION + \"a\")"),
    STR_OPT(edge, OPT_BOOL, NULL, "serve the EC2 Query API"),
    STR_OPT(gateway, OPT_BOOL, NULL,
            "relay and NAT for peers without a routable address"),
    STR_OPT(listen, OPT_ADDR, "ADDR",
            "gossip and RPC address, UDP+TCP (default 0.0.0.0:7700)"),
    STR_OPT(advertise, OPT_ADDR, "ADDR",
            "address other peers use to reach this one (default: from "
            "--listen)"),
    {"api-listen", OPT_ADDR, offsetof(struct peer_config, api_listen),
     sizeof(((struct peer_config *)0)->api_listen), "ADDR",
     "EC2 API address for --edge (default 127.0.0.1:8773)"},
    {"api-tls", OPT_CHOICE, offsetof(struct peer_config, api_tls),
     sizeof(((struct peer_config *)0)->api_tls), "auto|on|off",
     "TLS on the API port (default auto: on, except on loopback)"},
    {"log-level", OPT_LEVEL, offsetof(struct peer_config, log_level), 0,
     "LEVEL", "debug, info, warn or error (default info)"},
    UINT_OPT("gossip-probe-ms", gossip_probe_ms,
             "SWIM probe interval (default 1000)"),
    UINT_OPT("gossip-probe-timeout-ms", gossip_probe_timeout_ms,
             "probe answer timeout (default 500)"),
    UINT_OPT("gossip-interval-ms", gossip_interval_ms,
             "gossip round interval (default 200)"),
    UINT_OPT("gossip-fanout", gossip_fanout,
             "peers per gossip round (default 3)"),
    UINT_OPT("gossip-suspicion-mult", gossip_suspicion_mult,
             "suspicion timeout multiplier (default 4)"),
    UINT_OPT("gossip-retransmit-mult", gossip_retransmit_mult,
             "retransmit multiplier (default 4)"),
    UINT_OPT("gossip-pushpull-ms", gossip_pushpull_ms,
             "anti-entropy interval (default 30000)"),
    {"virt-uri", OPT_STR, offsetof(struct peer_config, virt_uri),
     sizeof(((struct peer_config *)0)->virt_uri), "URI",
     "libvirt connection for instances (default qemu:///system; \"none\": "
     "this peer hosts no instances)"},
    {"virt-type", OPT_CHOICE, offsetof(struct peer_config, virt_type),
     sizeof(((struct peer_config *)0)->virt_type), "auto|kvm|qemu",
     "domain type (default auto: kvm when the hypervisor offers it)"},
    {"capacity-vcpu", OPT_COUNT, offsetof(struct peer_config, capacity_vcpu),
     sizeof(((struct peer_config *)0)->capacity_vcpu), "N",
     "vCPUs this host offers instances (default 0: its CPU count)"},
    {"capacity-memory-mib", OPT_COUNT,
     offsetof(struct peer_config, capacity_memory_mib),
     sizeof(((struct peer_config *)0)->capacity_memory_mib), "N",
     "memory (MiB) this host offers instances (default 0: its RAM)"},
    STR_OPT(bridge, OPT_STR, "NAME",
            "bridge for this host's instances (default mallee0)"),
    {"imds-port", OPT_COUNT, offsetof(struct peer_config, imds_port),
     sizeof(((struct peer_config *)0)->imds_port), "N",
     "metadata service port on 169.254.169.254 (default 0: 80)"},
    {"overlay", OPT_CHOICE, offsetof(struct peer_config, overlay),
     sizeof(((struct peer_config *)0)->overlay), "on|off",
     "run the overlay (TUN mlt0) on hosts and gateways (default on)"},
    {"tunnel-port", OPT_COUNT, offsetof(struct peer_config, tunnel_port),
     sizeof(((struct peer_config *)0)->tunnel_port), "N",
     "overlay UDP port on --listen's IP (default 0: 7701)"},
    {"public-pool", OPT_RANGE, offsetof(struct peer_config, public_pool),
     sizeof(((struct peer_config *)0)->public_pool), "RANGE",
     "elastic IPs a --gateway offers: A.B.C.D-A.B.C.E or a CIDR"},
    {"public-interface", OPT_STR,
     offsetof(struct peer_config, public_interface),
     sizeof(((struct peer_config *)0)->public_interface), "IFNAME",
     "where a --gateway holds them and masquerades the cloud (default: "
     "the interface in the pool's subnet)"},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

void peer_config_defaults(struct peer_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", PEER_DEFAULT_DATA_DIR);
	snprintf(c->listen, sizeof(c->listen), "0.0.0.0:%d",
	         PEER_DEFAULT_GOSSIP_PORT);
	snprintf(c->api_listen, sizeof(c->api_listen), "127.0.0.1:%d",
	         PEER_DEFAULT_API_PORT);
	snprintf(c->api_tls, sizeof(c->api_tls), "auto");
	snprintf(c->virt_uri, sizeof(c->virt_uri), "qemu:///system");
	snprintf(c->virt_type, sizeof(c->virt_type), "auto");
	snprintf(c->bridge, sizeof(c->bridge), "mallee0");
	snprintf(c->overlay, sizeof(c->overlay), "on");
	c->log_level = MC_LOG_INFO;
}

void peer_config_usage(FILE *out)
{
	fprintf(out, "usage: mallee peer [flags]\n\n"
	             "Runs this host's peer in the foreground until SIGTERM or "
	             "SIGINT.\n\nflags:\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", opts[i].name,
		         opts[i].arg ? " " : "",
		         opts[i].arg ? opts[i].arg : "");
		fprintf(out, "  %-28s %s\n", left, opts[i].help);
	}
	fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}

static const struct opt *find_opt(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int set_opt(struct peer_config *c, const struct opt *o,
                   const char *value, char *err, size_t err_size)
{
	char *field = (char *)c + o->offset;
	struct mc_addr addr;

	switch (o->kind) {
	case OPT_BOOL:
		if (parse_bool(value, (bool *)field)) {
			snprintf(err, err_size,
			         "--%s: \"%s\" is not true or false", o->name,
			         value);
			return -EINVAL;
		}
		return 0;
	case OPT_LEVEL:
		if (mc_log_parse_level(value, (enum mc_log_level *)field)) {
			snprintf(err, err_size,
			         "--%s: \"%s\" is not debug, info, warn or "
			         "error",
			         o->name, value);
			return -EINVAL;
		}
		return 0;
	case OPT_UINT: {
		char *end;
		errno = 0;
		unsigned long v = strtoul(value, &end, 10);
		if (errno || end == value || *end != '\0' || v == 0 ||
		    v > 3600000 || value[0] == '-' || value[0] == '+') {
			snprintf(err, err_size,
			         "--%s: \"%s\" is not a number from 1 to "
			         "3600000",
			         o->name, value);
			return -EINVAL;
		}
		*(uint32_t *)field = (uint32_t)v;
		return 0;
	}
	case OPT_COUNT: {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno || end == value || *end != '\0' || v > UINT32_MAX ||
		    !isdigit((unsigned char)value[0])) {
			snprintf(err, err_size,
			         "--%s: \"%s\" is not a number from 0 to %u",
			         o->name, value, UINT32_MAX);
			return -EINVAL;
		}
		*(uint32_t *)field = (uint32_t)v;
		return 0;
	}
	case OPT_ADDR:
		if (mc_addr_parse(&addr, value, PEER_DEFAULT_GOSSIP_PORT)) {
			snprintf(err, err_size,
			         "--%s: \"%s\" is not an address like "
			         "127.0.0.1:7700",
			         o->name, value);
			return -EINVAL;
		}
		break;
	case OPT_CHOICE: {
		size_t n = strlen(value);
		const char *w = o->arg;
		bool found = false;
		while (*w && !found) {
			size_t len = strcspn(w, "|");
			found = len == n && strncmp(w, value, n) == 0;
			w += len + (w[len] == '|');
		}
		if (!found || n == 0) {
			snprintf(err, err_size, "--%s: \"%s\" is not one of %s",
			         o->name, value, o->arg);
			return -EINVAL;
		}
		break;
	}
	case OPT_RANGE: {
		uint32_t first, last;
		if (value[0] &&
		    peer_gateway_pool_parse(value, &first, &last, err,
		                            err_size))
			return -EINVAL;
		break;
	}
	case OPT_STR:
	case OPT_PATH:
		break;
	}
	if (value[0] == '\0' && o->kind != OPT_STR) {
		snprintf(err, err_size, "--%s needs a value", o->name);
		return -EINVAL;
	}
	if (strlen(value) >= o->size) {
		snprintf(err, err_size,
		         "--%s: value is too long (at most %zu "
		         "characters)",
		         o->name, o->size - 1);
		return -EINVAL;
	}
	memcpy(field, value, strlen(value) + 1);
	return 0;
}

int peer_config_set(struct peer_config *c, const char *key, const char *value,
                    char *err, size_t err_size)
{
	const struct opt *o = find_opt(key);
	if (!o) {
		snprintf(err, err_size, "unknown setting \"%s\"", key);
		return -EINVAL;
	}
	return set_opt(c, o, value, err, err_size);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int peer_config_parse_file(struct peer_config *c, const char *text,
                           const char *origin, const bool *set, char *err,
                           size_t err_size)
{
	char *copy = xstrdup(text);
	char *save = NULL;
	int lineno = 0;
	int r = 0;
	char *line;

	/* strtok_r would skip empty lines and so miscount; split by hand. */
	for (line = copy; line; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		lineno++;
		char *s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			if (strcmp(s, "[peer]") != 0) {
				snprintf(err, err_size,
				         "%s:%d: unknown section %s (only "
				         "[peer])",
				         origin, lineno, s);
				r = -EINVAL;
				break;
			}
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, err_size,
			         "%s:%d: expected \"key = value\"", origin,
			         lineno);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		char *key = trim(s);
		char *value = trim(eq + 1);
		/* Allow "value" in quotes, as many ini dialects do. */
		size_t vlen = strlen(value);
		if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
			value[vlen - 1] = '\0';
			value++;
		}
		const struct opt *o = find_opt(key);
		if (!o || strcmp(key, "config") == 0) {
			snprintf(err, err_size, "%s:%d: unknown setting \"%s\"",
			         origin, lineno, key);
			r = -EINVAL;
			break;
		}
		if (set && set[o - opts])
			continue;
		char why[256];
		if (set_opt(c, o, value, why, sizeof(why))) {
			snprintf(err, err_size, "%s:%d: %s", origin, lineno,
			         why);
			r = -EINVAL;
			break;
		}
	}
	free(copy);
	return r;
}

static int load_file(struct peer_config *c, const char *path, bool required,
                     const bool *set, char *err, size_t err_size)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		/* The default file is optional; a data dir that cannot be
		 * read at all is reported when the peer opens it. */
		if (!required &&
		    (errno == ENOENT || errno == ENOTDIR || errno == EACCES))
			return 0;
		snprintf(err, err_size, "cannot read config %s: %s", path,
		         strerror(errno));
		return -EINVAL;
	}
	/* Config files are small; refuse anything that is clearly not one. */
	char text[65536];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	bool too_big = !feof(f);
	fclose(f);
	if (too_big) {
		snprintf(err, err_size, "config %s is larger than 64 KiB",
		         path);
		return -EINVAL;
	}
	text[n] = '\0';
	if (memchr(text, '\0', n)) {
		snprintf(err, err_size, "config %s is not a text file", path);
		return -EINVAL;
	}
	return peer_config_parse_file(c, text, path, set, err, err_size);
}

int peer_config_load(struct peer_config *c, int argc, char **argv, char *err,
                     size_t err_size)
{
	bool set[N_OPTS] = {false};

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			peer_config_usage(stdout);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, err_size, "unexpected argument \"%s\"",
			         arg);
			return -EINVAL;
		}
		char name[64];
		const char *value = NULL;
		const char *eq = strchr(arg + 2, '=');
		size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (nlen >= sizeof(name))
			nlen = sizeof(name) - 1;
		memcpy(name, arg + 2, nlen);
		name[nlen] = '\0';
		const struct opt *o = find_opt(name);
		if (!o) {
			snprintf(err, err_size, "unknown flag --%s", name);
			return -EINVAL;
		}
		if (eq) {
			value = eq + 1;
		} else if (o->kind == OPT_BOOL) {
			value = "true";
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, err_size, "--%s needs a value (%s)", name,
			         o->arg);
			return -EINVAL;
		}
		if (set_opt(c, o, value, err, err_size))
			return -EINVAL;
		set[o - opts] = true;
	}

	if (c->config_file[0])
		return load_file(c, c->config_file, true, set, err, err_size);
	char path[600];
	snprintf(path, sizeof(path), "%s/mallee.conf", c->data_dir);
	return load_file(c, path, false, set, err, err_size);
}
