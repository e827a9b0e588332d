#include "token.h"

#include "addr.h"
#include "crypto.h"
#include "mem.h"
#include "wire.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#define CHECK_BYTES   4
#define TOKEN_VERSION 1

char *peer_token_encode(const struct peer_token *t)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 6);
	mc_pack_kv_uint(&b, "v", TOKEN_VERSION);
	mc_pack_kv_bin(&b, "cloud", t->cloud_id, sizeof(t->cloud_id));
	mc_pack_kv_bin(&b, "key", t->cloud_key, sizeof(t->cloud_key));
	mc_pack_kv_str(&b, "name", t->name);
	mc_pack_kv_str(&b, "cidr", t->cidr);
	mc_pack_str(&b, "addrs");
	mc_pack_array(&b, t->n_addrs);
	for (unsigned i = 0; i < t->n_addrs; i++)
		mc_pack_str(&b, t->addrs[i]);

	uint8_t check[CHECK_BYTES + 12];
	mc_hash(check, 16, b.data, b.len);
	mc_buf_append(&b, check, CHECK_BYTES);

	char *body = mc_b64url_encode(b.data, b.len);
	char *text = xasprintf("%s%s", PEER_TOKEN_PREFIX, body);
	mc_wipe(b.data, b.len);
	mc_buf_free(&b);
	mc_wipe(body, strlen(body));
	free(body);
	return text;
}

static int fail(const char **why, const char *reason)
{
	*why = reason;
	return -EINVAL;
}

static int decode_payload(const struct mc_val *root, struct peer_token *t,
                          const char **why)
{
	const uint8_t *p;
	size_t n;
	uint64_t version;

	if (!root || root->type != MC_VAL_MAP)
		return fail(why, "token payload is not a map");
	if (!mc_get_uint(root, "v", &version) || version != TOKEN_VERSION)
		return fail(why, "token is of an unknown version");
	if (!mc_get_bytes(root, "cloud", &p, &n) || n != sizeof(t->cloud_id))
		return fail(why, "token has no valid cloud id");
	memcpy(t->cloud_id, p, n);
	if (!mc_get_bytes(root, "key", &p, &n) || n != sizeof(t->cloud_key))
		return fail(why, "token has no valid cloud key");
	memcpy(t->cloud_key, p, n);
	if (!mc_get_str(root, "name", t->name, sizeof(t->name)) ||
	    t->name[0] == '\0')
		return fail(why, "token has no valid cloud name");
	if (!mc_get_str(root, "cidr", t->cidr, sizeof(t->cidr)))
		return fail(why, "token has no valid cidr");

	const struct mc_val *addrs = mc_map_get(root, "addrs");
	if (!addrs || addrs->type != MC_VAL_ARRAY)
		return fail(why, "token has no address list");
	if (addrs->v.array.n > PEER_TOKEN_MAX_ADDRS)
		return fail(why, "token lists too many addresses");
	t->n_addrs = 0;
	for (uint32_t i = 0; i < addrs->v.array.n; i++) {
		const struct mc_val *a = &addrs->v.array.items[i];
		struct mc_addr parsed;
		if (a->type != MC_VAL_STR || a->v.s.n == 0 ||
		    a->v.s.n >= sizeof(t->addrs[0]))
			return fail(why, "token has a malformed address");
		memcpy(t->addrs[i], a->v.s.p, a->v.s.n);
		t->addrs[i][a->v.s.n] = '\0';
		if (mc_addr_parse(&parsed, t->addrs[i], 7700) != 0)
			return fail(why, "token has a malformed address");
		t->n_addrs++;
	}
	return 0;
}

int peer_token_decode(const char *text, struct peer_token *out,
                      const char **why)
{
	size_t prefix = strlen(PEER_TOKEN_PREFIX);
	uint8_t raw[PEER_TOKEN_MAX_TEXT];
	uint8_t check[16];

	memset(out, 0, sizeof(*out));
	while (isspace((unsigned char)*text))
		text++;
	size_t len = strlen(text);
	while (len && isspace((unsigned char)text[len - 1]))
		len--;
	if (len < prefix || memcmp(text, PEER_TOKEN_PREFIX, prefix) != 0)
		return fail(why, "not a mallee join token (it should start "
		                 "with \"" PEER_TOKEN_PREFIX "\")");
	if (len - prefix > PEER_TOKEN_MAX_TEXT)
		return fail(why, "token is too long");

	long n =
	    mc_b64url_decode(raw, sizeof(raw), text + prefix, len - prefix);
	if (n < 0)
		return fail(why, "token contains characters that are not "
		                 "base64url");
	if (n <= CHECK_BYTES)
		return fail(why, "token is truncated");
	size_t body = (size_t)n - CHECK_BYTES;
	mc_hash(check, sizeof(check), raw, body);
	if (!mc_equal(check, raw + body, CHECK_BYTES)) {
		mc_wipe(raw, sizeof(raw));
		return fail(why, "token is corrupt or truncated (checksum "
		                 "mismatch)");
	}

	struct mc_doc *doc = mc_unpack(raw, body);
	int r = doc ? decode_payload(mc_doc_root(doc), out, why)
	            : fail(why, "token payload is malformed");
	mc_doc_free(doc);
	mc_wipe(raw, sizeof(raw));
	if (r)
		mc_wipe(out, sizeof(*out));
	return r;
}
