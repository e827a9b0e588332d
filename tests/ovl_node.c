/*
 * ovl-node: one host's overlay datapath without the rest of the peer, for
 * the tunnel tests and the benchmark.
 *
 *   ovl-node genkey                 a secret key, in hex, on stdout
 *   ovl-node pubkey FILE            the public key of the secret in FILE
 *   ovl-node run --key FILE --listen IP:PORT [--ifname NAME]
 *       [--address CIDR] [--route CIDR]... [--underlay-mtu N]
 *       [--no-offload] [--relay] [--peer PEER]...
 *
 *   PEER is PUBHEX@ENDPOINT=[CIDR[,CIDR]...][;via=PUBHEX[,PUBHEX]...]
 *   [;nodirect]: ENDPOINT is IP:PORT, or "-" for a peer with none (reached
 *   through the gateways of via= only); via= lists gateways, themselves
 *   --peer, tried in order after the direct path (unless nodirect).
 *   --relay makes this node a gateway for its peers.
 *
 * "run" prints one JSON line when it is up, one with the counters on
 * SIGUSR1 (with each peer's current path), and a last one on SIGTERM or
 * SIGINT before it exits.
 */
#include "crypto.h"
#include "ovl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, got_term;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: ovl-node genkey | pubkey FILE | run --key FILE "
	                "--listen IP:PORT [--ifname NAME] [--address CIDR] "
	                "[--route CIDR]... [--underlay-mtu N] [--no-offload] "
	                "[--relay] [--peer PUBHEX@IP:PORT|-=[CIDR[,CIDR]]"
	                "[;via=PUBHEX[,PUBHEX]][;nodirect]]...\n");
	return 2;
}

static int read_key(const char *path, uint8_t key[OVL_KEY_BYTES])
{
	char hex[2 * OVL_KEY_BYTES + 2];
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	size_t n = fread(hex, 1, sizeof(hex) - 1, f);

	fclose(f);
	while (n && (hex[n - 1] == '\n' || hex[n - 1] == ' '))
		n--;
	return mc_hex_decode(key, OVL_KEY_BYTES, hex, n);
}

static int parse_endpoint(const char *s, struct sockaddr_storage *ss,
                          socklen_t *len)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);

	if (*end || port == 0 || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	size_t hl = strlen(host);

	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = 0;
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			*len = sizeof(*in6);
			return 0;
		}
	}
	return -EINVAL;
}

#define MAX_PEERS 64

struct node {
	struct ovl_dp *dp;
	uint8_t pks[MAX_PEERS][OVL_KEY_BYTES];
	bool has_ep[MAX_PEERS];
	int npk;
};

static void print_counters(struct node *nd, const char *event)
{
	struct ovl_counters c;

	ovl_dp_counters(nd->dp, &c);
	printf("{\"event\":\"%s\",\"rx_packets\":%llu,\"rx_bytes\":%llu,"
	       "\"tx_packets\":%llu,\"tx_bytes\":%llu,\"handshakes_sent\":%llu,"
	       "\"handshakes_done\":%llu,\"relayed_packets\":%llu,"
	       "\"relayed_bytes\":%llu,\"path_changes\":%llu,"
	       "\"keepalives_sent\":%llu,\"drops\":{",
	       event, (unsigned long long)c.rx_packets,
	       (unsigned long long)c.rx_bytes, (unsigned long long)c.tx_packets,
	       (unsigned long long)c.tx_bytes,
	       (unsigned long long)c.handshakes_sent,
	       (unsigned long long)c.handshakes_done,
	       (unsigned long long)c.relayed_packets,
	       (unsigned long long)c.relayed_bytes,
	       (unsigned long long)c.path_changes,
	       (unsigned long long)c.keepalives_sent);
	for (int i = 0; i < OVL_DROP_MAX; i++)
		printf("%s\"%s\":%llu", i ? "," : "", ovl_drop_name(i),
		       (unsigned long long)c.drops[i]);
	printf("},\"paths\":{");
	for (int i = 0; i < nd->npk; i++) {
		char hex[2 * OVL_KEY_BYTES + 1], path[96];

		if (ovl_dp_peer_path(nd->dp, nd->pks[i], path, sizeof(path)))
			continue;
		mc_hex_encode(hex, nd->pks[i], OVL_KEY_BYTES);
		printf("%s\"%.8s\":\"%s\"", i ? "," : "", hex, path);
	}
	printf("}}\n");
	fflush(stdout);
}

/* PUBHEX@IP:PORT|-=[CIDR[,CIDR]][;via=PUBHEX[,PUBHEX]][;nodirect]: the
 * peer and its prefixes now; its paths in *opts, set once all are added. */
static int add_peer(struct node *nd, char *spec, char **opts)
{
	uint8_t pk[OVL_KEY_BYTES];
	struct sockaddr_storage ep;
	socklen_t eplen = 0;
	char *at = strchr(spec, '@'), *eq = strchr(spec, '=');
	char *semi = strchr(spec, ';');

	*opts = NULL;
	if (!at || !eq || eq < at || nd->npk == MAX_PEERS)
		return -EINVAL;
	if (semi && semi < eq)
		return -EINVAL;
	if (semi) {
		*semi = 0;
		*opts = semi + 1;
	}
	*at = *eq = 0;
	if (mc_hex_decode(pk, sizeof(pk), spec, strlen(spec)) < 0)
		return -EINVAL;
	if (strcmp(at + 1, "-") != 0 && parse_endpoint(at + 1, &ep, &eplen) < 0)
		return -EINVAL;
	int rc = ovl_dp_add_peer(nd->dp, pk,
	                         eplen ? (struct sockaddr *)&ep : NULL, eplen);

	nd->has_ep[nd->npk] = eplen != 0;
	memcpy(nd->pks[nd->npk++], pk, OVL_KEY_BYTES);
	for (char *save, *c = strtok_r(eq + 1, ",", &save); c && !rc;
	     c = strtok_r(NULL, ",", &save))
		rc = ovl_dp_add_prefix(nd->dp, pk, c);
	return rc;
}

/* The ";via=...;nodirect" part of a --peer, for peer pk. */
static int set_paths(struct node *nd, const uint8_t pk[OVL_KEY_BYTES],
                     bool has_endpoint, char *opts)
{
	uint8_t via[OVL_VIA_MAX][OVL_KEY_BYTES];
	size_t n = 0;
	bool direct = has_endpoint;

	for (char *save, *o = strtok_r(opts, ";", &save); o;
	     o = strtok_r(NULL, ";", &save)) {
		if (!strcmp(o, "nodirect")) {
			direct = false;
			continue;
		}
		if (strncmp(o, "via=", 4) != 0)
			return -EINVAL;
		for (char *s2, *g = strtok_r(o + 4, ",", &s2); g;
		     g = strtok_r(NULL, ",", &s2)) {
			if (n == OVL_VIA_MAX ||
			    mc_hex_decode(via[n], OVL_KEY_BYTES, g, strlen(g)) <
			        0)
				return -EINVAL;
			n++;
		}
	}
	return ovl_dp_set_paths(nd->dp, pk, direct, (const void *)via, n);
}

static int run(int argc, char **argv)
{
	struct ovl_dp_config cfg = {0};
	const char *key = NULL, *listen = NULL;
	char *peers[MAX_PEERS], *routes[64];
	int npeers = 0, nroutes = 0;
	bool relay = false;
	socklen_t len;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-offload")) {
			cfg.no_offload = true;
			continue;
		}
		if (!strcmp(a, "--relay")) {
			relay = true;
			continue;
		}
		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--key"))
			key = v;
		else if (!strcmp(a, "--listen"))
			listen = v;
		else if (!strcmp(a, "--ifname"))
			cfg.ifname = v;
		else if (!strcmp(a, "--address"))
			cfg.address = v;
		else if (!strcmp(a, "--underlay-mtu"))
			cfg.underlay_mtu = (unsigned)atoi(v);
		else if (!strcmp(a, "--peer") && npeers < MAX_PEERS)
			peers[npeers++] = argv[i];
		else if (!strcmp(a, "--route") && nroutes < 64)
			routes[nroutes++] = argv[i];
		else
			return usage();
	}
	if (!key || !listen)
		return usage();
	if (read_key(key, cfg.secret_key) < 0) {
		fprintf(stderr, "ovl-node: cannot read a key from %s\n", key);
		return 1;
	}
	if (parse_endpoint(listen, &cfg.listen, &len) < 0) {
		fprintf(stderr, "ovl-node: bad --listen %s\n", listen);
		return 1;
	}
	int err = 0;
	struct ovl_dp *dp = ovl_dp_start(&cfg, &err);

	mc_wipe(cfg.secret_key, sizeof(cfg.secret_key));
	if (!dp) {
		fprintf(stderr, "ovl-node: start: %s\n", strerror(-err));
		return 1;
	}
	int rc = 0;
	struct node nd = {.dp = dp};
	char *opts[MAX_PEERS];

	ovl_dp_set_relay(dp, relay);
	for (int i = 0; i < npeers && !rc; i++)
		if ((rc = add_peer(&nd, peers[i], &opts[i])) < 0)
			fprintf(stderr, "ovl-node: bad --peer\n");
	/* Paths name gateways that may come later on the command line. */
	for (int i = 0; i < npeers && !rc; i++) {
		if (opts[i] &&
		    (rc = set_paths(&nd, nd.pks[i], nd.has_ep[i], opts[i])) < 0)
			fprintf(stderr, "ovl-node: bad paths in --peer: %s\n",
			        strerror(-rc));
	}
	for (int i = 0; i < nroutes && !rc; i++)
		if ((rc = ovl_dp_add_route(dp, routes[i])) < 0)
			fprintf(stderr, "ovl-node: route %s: %s\n", routes[i],
			        strerror(-rc));
	if (!rc) {
		printf("{\"event\":\"ready\",\"mtu\":%u,\"offload\":%s}\n",
		       ovl_dp_mtu(dp), ovl_dp_offload(dp) ? "true" : "false");
		fflush(stdout);
	}
	while (!rc && !got_term) {
		if (got_usr1) {
			got_usr1 = 0;
			print_counters(&nd, "counters");
		}
		usleep(20000);
	}
	print_counters(&nd, "exit");
	ovl_dp_stop(dp);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};

	if (mc_crypto_init() != 0)
		return 1;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "genkey")) {
		uint8_t sk[OVL_KEY_BYTES];
		char hex[2 * OVL_KEY_BYTES + 1];

		mc_random(sk, sizeof(sk));
		mc_hex_encode(hex, sk, sizeof(sk));
		mc_wipe(sk, sizeof(sk));
		printf("%s\n", hex);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "pubkey")) {
		uint8_t sk[OVL_KEY_BYTES], pk[OVL_KEY_BYTES];
		char hex[2 * OVL_KEY_BYTES + 1];

		if (read_key(argv[2], sk) < 0)
			return 1;
		mc_box_public(pk, sk);
		mc_wipe(sk, sizeof(sk));
		mc_hex_encode(hex, pk, sizeof(pk));
		printf("%s\n", hex);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return run(argc - 2, argv + 2);
	return usage();
}
