#include "check.h"

#include "crypto.h"
#include "mem.h"
#include "token.h"

#include <errno.h>
#include <stdlib.h>

static void sample(struct peer_token *t)
{
	memset(t, 0, sizeof(*t));
	mc_random(t->cloud_id, sizeof(t->cloud_id));
	mc_random(t->cloud_key, sizeof(t->cloud_key));
	snprintf(t->name, sizeof(t->name), "us-east-1");
	snprintf(t->cidr, sizeof(t->cidr), "172.31.0.0/16");
	t->n_addrs = 2;
	snprintf(t->addrs[0], sizeof(t->addrs[0]), "10.0.0.1:7700");
	snprintf(t->addrs[1], sizeof(t->addrs[1]), "[fd00::1]:7700");
}

static void test_roundtrip(void)
{
	struct peer_token t, u;
	const char *why = NULL;
	sample(&t);
	char *text = peer_token_encode(&t);
	CHECK(strncmp(text, PEER_TOKEN_PREFIX, strlen(PEER_TOKEN_PREFIX)) == 0);
	CHECK(strspn(text,
	             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	             "0123456789-_") == strlen(text));
	CHECK(peer_token_decode(text, &u, &why) == 0);
	CHECK(memcmp(&t, &u, sizeof(t)) == 0);

	/* Whitespace around a pasted token is fine. */
	char *padded = xasprintf("  \n%s\n\t", text);
	CHECK(peer_token_decode(padded, &u, &why) == 0);
	CHECK(memcmp(t.cloud_key, u.cloud_key, sizeof(t.cloud_key)) == 0);
	free(padded);
	free(text);
}

static void test_every_truncation_rejected(void)
{
	struct peer_token t, u;
	const char *why;
	sample(&t);
	char *text = peer_token_encode(&t);
	size_t len = strlen(text);
	int accepted = 0;
	for (size_t cut = 0; cut < len; cut++) {
		char *part = xstrndup(text, cut);
		why = NULL;
		if (peer_token_decode(part, &u, &why) == 0)
			accepted++;
		else
			CHECK(why != NULL && why[0] != '\0');
		free(part);
	}
	CHECK(accepted == 0);
	free(text);
}

static void test_every_corruption_rejected(void)
{
	struct peer_token t, u;
	const char *why;
	sample(&t);
	char *text = peer_token_encode(&t);
	size_t len = strlen(text);
	int accepted = 0;
	for (size_t i = strlen(PEER_TOKEN_PREFIX); i < len; i++) {
		char saved = text[i];
		text[i] = saved == 'A' ? 'B' : 'A';
		if (peer_token_decode(text, &u, &why) == 0)
			accepted++;
		text[i] = saved;
	}
	/* The last character holds only padding bits of the checksum in
	 * base64url, so one flip there may decode to the same bytes. */
	CHECK(accepted <= 1);
	free(text);
}

static void test_garbage(void)
{
	struct peer_token u;
	const char *why = NULL;
	CHECK(peer_token_decode("", &u, &why) == -EINVAL);
	CHECK(why && strstr(why, "not a mallee join token"));
	CHECK(peer_token_decode("mallee1-", &u, &why) == -EINVAL);
	CHECK(peer_token_decode("mallee1-!!!!", &u, &why) == -EINVAL);
	CHECK(why && strstr(why, "base64url"));
	CHECK(peer_token_decode("10.0.0.1:7700", &u, &why) == -EINVAL);

	/* A well-formed checksum over a payload that is not a token. */
	uint8_t raw[5 + 4] = {0x91, 0x01};
	mc_hash(raw + 2, 4, raw, 2);
	uint8_t h[16];
	mc_hash(h, 16, raw, 2);
	memcpy(raw + 2, h, 4);
	char *b = mc_b64url_encode(raw, 6);
	char *text = xasprintf("mallee1-%s", b);
	CHECK(peer_token_decode(text, &u, &why) == -EINVAL);
	CHECK(why && strstr(why, "not a map"));
	free(b);
	free(text);
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	RUN(test_roundtrip);
	RUN(test_every_truncation_rejected);
	RUN(test_every_corruption_rejected);
	RUN(test_garbage);
	return check_summary();
}
