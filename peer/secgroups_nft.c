/*
 * The one file that speaks to libnftables: a context kept for the peer's
 * life, each ruleset run from a buffer as one transaction (nft's parser
 * turns the whole text into a single netlink batch, so the kernel takes
 * all of it or none).
 */
#include "secgroups.h"

#include "mem.h"

#include <errno.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct peer_sg_nft {
	struct nft_ctx *ctx;
};

struct peer_sg_nft *peer_sg_nft_new(void)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return NULL;
	/* Messages are read back, never printed by the library. */
	if (nft_ctx_buffer_output(ctx) || nft_ctx_buffer_error(ctx)) {
		nft_ctx_free(ctx);
		return NULL;
	}
	struct peer_sg_nft *n = xcalloc(1, sizeof(*n));
	n->ctx = ctx;
	return n;
}

void peer_sg_nft_free(struct peer_sg_nft *n)
{
	if (!n)
		return;
	nft_ctx_free(n->ctx);
	free(n);
}

int peer_sg_nft_run(struct peer_sg_nft *n, const char *text, char *err,
                    size_t err_size)
{
	int r = nft_run_cmd_from_buffer(n->ctx, text);
	const char *msg = nft_ctx_get_error_buffer(n->ctx);
	if (r == 0) {
		if (err_size)
			err[0] = '\0';
		return 0;
	}
	snprintf(err, err_size, "%s", msg && *msg ? msg : "nft failed");
	/* One line for the log: the first of nft's. */
	char *nl = strchr(err, '\n');
	if (nl && nl[1] == '\0')
		*nl = '\0';
	return -EINVAL;
}
