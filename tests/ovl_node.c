/*
 * ovl-node: one host's overlay datapath without the rest of the peer, for
 * the tunnel tests and the benchmark.
 *
 *   ovl-node genkey                 a secret key, in hex, on stdout
 *   ovl-node pubkey FILE            the public key of the secret in FILE
 *   ovl-node run --key FILE --listen IP:PORT [--ifname NAME]
 *       [--address CIDR] [--route CIDR]... [--underlay-mtu N]
 *       [--no-offload] [--peer PUBHEX@IP:PORT=CIDR[,CIDR]]...
 *
 * "run" prints one JSON line when it is up, one with the counters on
 * SIGUSR1, and a last one on SIGTERM or SIGINT before it exits.
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
	                "[--peer PUBHEX@IP:PORT=CIDR[,CIDR]]...\n");
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

static void print_counters(struct ovl_dp *dp, const char *event)
{
	struct ovl_counters c;

	ovl_dp_counters(dp, &c);
	printf("{\"event\":\"%s\",\"rx_packets\":%llu,\"rx_bytes\":%llu,"
	       "\"tx_packets\":%llu,\"tx_bytes\":%llu,\"handshakes_sent\":%llu,"
	       "\"handshakes_done\":%llu,\"drops\":{",
	       event, (unsigned long long)c.rx_packets,
	       (unsigned long long)c.rx_bytes, (unsigned long long)c.tx_packets,
	       (unsigned long long)c.tx_bytes,
	       (unsigned long long)c.handshakes_sent,
	       (unsigned long long)c.handshakes_done);
	for (int i = 0; i < OVL_DROP_MAX; i++)
		printf("%s\"%s\":%llu", i ? "," : "", ovl_drop_name(i),
		       (unsigned long long)c.drops[i]);
	printf("}}\n");
	fflush(stdout);
}

/* PUBHEX@IP:PORT=CIDR[,CIDR] */
static int add_peer(struct ovl_dp *dp, char *spec)
{
	uint8_t pk[OVL_KEY_BYTES];
	struct sockaddr_storage ep;
	socklen_t eplen;
	char *at = strchr(spec, '@'), *eq = strchr(spec, '=');

	if (!at || !eq || eq < at)
		return -EINVAL;
	*at = *eq = 0;
	if (mc_hex_decode(pk, sizeof(pk), spec, strlen(spec)) < 0 ||
	    parse_endpoint(at + 1, &ep, &eplen) < 0)
		return -EINVAL;
	int rc = ovl_dp_add_peer(dp, pk, (struct sockaddr *)&ep, eplen);

	for (char *save, *c = strtok_r(eq + 1, ",", &save); c && !rc;
	     c = strtok_r(NULL, ",", &save))
		rc = ovl_dp_add_prefix(dp, pk, c);
	return rc;
}

static int run(int argc, char **argv)
{
	struct ovl_dp_config cfg = {0};
	const char *key = NULL, *listen = NULL;
	char *peers[64], *routes[64];
	int npeers = 0, nroutes = 0;
	socklen_t len;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-offload")) {
			cfg.no_offload = true;
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
		else if (!strcmp(a, "--peer") && npeers < 64)
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

	for (int i = 0; i < npeers && !rc; i++)
		if ((rc = add_peer(dp, peers[i])) < 0)
			fprintf(stderr, "ovl-node: bad --peer\n");
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
			print_counters(dp, "counters");
		}
		usleep(20000);
	}
	print_counters(dp, "exit");
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
