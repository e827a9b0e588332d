/*
 * The peer's settings: flags on the command line and an optional ini-style
 * file ("key = value" lines, '#' or ';' comments, an optional [peer]
 * section; keys are the long flag names). Flags win over the file.
 */
#ifndef PEER_CONFIG_H
#define PEER_CONFIG_H

#include "addr.h"
#include "log.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PEER_DEFAULT_DATA_DIR    "/var/lib/mallee"
#define PEER_DEFAULT_GOSSIP_PORT 7700
#define PEER_DEFAULT_API_PORT    8773
#define PEER_DEFAULT_TUNNEL_PORT 7701

struct peer_config {
	char data_dir[512];
	char config_file[512];
	char join[4096]; /* a join token or ADDR[,ADDR...] */
	char name[64];   /* this peer's name; default: the host name */
	char zone[64];   /* default: the region name + "a" */
	bool edge;
	bool gateway;
	char listen[64];     /* gossip and RPC, UDP+TCP */
	char advertise[64];  /* what others dial; default from listen */
	char api_listen[64]; /* the EC2 API (edges only) */
	char api_tls[8];     /* auto, on or off */
	enum mc_log_level log_level;
	/* Gossip timing (memberlist's LAN profile by default). */
	uint32_t gossip_probe_ms;
	uint32_t gossip_probe_timeout_ms;
	uint32_t gossip_interval_ms;
	uint32_t gossip_fanout;
	uint32_t gossip_suspicion_mult;
	uint32_t gossip_retransmit_mult;
	uint32_t gossip_pushpull_ms;
	/* Instances: the libvirt URI ("none": this peer hosts none), the
	 * domain type (auto, kvm or qemu), and what this host offers them
	 * (0: what it measures). */
	char virt_uri[256];
	char virt_type[8];
	uint32_t capacity_vcpu;
	uint32_t capacity_memory_mib;
	/* Host networking: the instances' bridge, and the metadata
	 * service's port on 169.254.169.254 (0: 80). */
	char bridge[16];
	uint32_t imds_port;
	/* The overlay (peer/overlay.h): on or off, and its UDP port on
	 * --listen's IP (0: PEER_DEFAULT_TUNNEL_PORT). */
	char overlay[4];
	uint32_t tunnel_port;
	/* Gateways: the elastic IPs offered (a range or a CIDR, see
	 * gateway_nat.h) and the interface that holds them (default: the
	 * one with an address in the pool's subnet). */
	char public_pool[40];
	char public_interface[16];
};

void peer_config_defaults(struct peer_config *c);

/*
 * Parses the flags of `mallee peer` (argv[0] is the subcommand name), then
 * the config file (--config, else DATA_DIR/mallee.conf when it exists) for
 * what the flags left unset. Returns 0; 1 when --help was asked (usage
 * printed); or -EINVAL with a one-line reason in err.
 */
int peer_config_load(struct peer_config *c, int argc, char **argv, char *err,
                     size_t err_size);

/* Parses one ini file into c, skipping keys already set (mask by index). */
int peer_config_parse_file(struct peer_config *c, const char *text,
                           const char *origin, const bool *set, char *err,
                           size_t err_size);

/* Sets one option by its long name, as a flag or a file line would. */
int peer_config_set(struct peer_config *c, const char *key, const char *value,
                    char *err, size_t err_size);

void peer_config_usage(FILE *out);

#endif
