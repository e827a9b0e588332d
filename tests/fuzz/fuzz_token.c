/* Join tokens come from users' clipboards: any string must be refused
 * cleanly or decode to a token that encodes back to an equivalent one. */
#include "crypto.h"
#include "mem.h"
#include "token.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (mc_crypto_init() != 0)
			abort();
		ready = 1;
	}
	char *text = xstrndup((const char *)data, size);
	struct peer_token t;
	const char *why;
	if (peer_token_decode(text, &t, &why) == 0) {
		char *again = peer_token_encode(&t);
		struct peer_token u;
		if (peer_token_decode(again, &u, &why) != 0 ||
		    memcmp(&t, &u, sizeof(t)) != 0)
			abort();
		free(again);
	}
	free(text);
	return 0;
}
