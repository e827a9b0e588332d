/*
 * Gossip packets come from anyone on the network. The first byte picks the
 * way in: 0 a clear packet (the decoder and every message handler), 1 a
 * push-pull snapshot, 2 a sealed packet (the header, keyring and replay
 * window); the rest is the input. Afterwards the instance runs its timers
 * over whatever state the input left, and answers must stay well-formed.
 */
#include "crypto.h"
#include "gossip.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sink(void *ctx, const struct mc_addr *to, const uint8_t *pkt,
                 size_t len)
{
	(void)ctx;
	(void)to;
	(void)pkt;
	if (len > GOSSIP_PACKET_MAX)
		abort();
}

static bool user(void *ctx, const char *key, const uint8_t *body, size_t len)
{
	(void)ctx;
	(void)body;
	if (strlen(key) >= GOSSIP_UKEY_MAX || len > GOSSIP_USER_MAX)
		abort();
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct gossip_config c;
	struct mc_addr from;

	if (!ready) {
		mc_crypto_init();
		mc_log_set_level(MC_LOG_ERROR);
		ready = true;
	}
	if (size < 1)
		return 0;
	gossip_config_default(&c);
	snprintf(c.local.id, sizeof(c.local.id), "00000000000000aa");
	mc_addr_parse(&c.local.addr, "10.0.0.1:7700", 0);
	c.cb.send = sink;
	c.cb.user = user;
	c.seed = 1;
	struct gossip *g = gossip_new(&c, 1000);
	if (!g)
		abort();
	/* One known peer, so probes, relays and suspicions have a target. */
	struct gossip_node peer = c.local;
	snprintf(peer.id, sizeof(peer.id), "00000000000000bb");
	mc_addr_parse(&peer.addr, "10.0.0.2:7700", 0);
	gossip_seed(g, &peer, 0, 1000);
	mc_addr_parse(&from, "10.0.0.2:7700", 0);

	switch (data[0] % 3) {
	case 0:
		gossip_recv(g, &from, data + 1, size - 1, 1000);
		break;
	case 1:
		gossip_snapshot_merge(g, data + 1, size - 1, 1000);
		break;
	default: {
		uint8_t key[GOSSIP_KEY_BYTES];
		memset(key, 7, sizeof(key));
		gossip_keyring_add(g, key);
		gossip_recv(g, &from, data + 1, size - 1, 1000);
		break;
	}
	}
	for (uint64_t t = 1000; t < 120000; t += 250)
		gossip_tick(g, t);
	gossip_free(g);
	return 0;
}
