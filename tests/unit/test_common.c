#include "check.h"

#include "addr.h"
#include "crypto.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>

static void test_wire_roundtrip(void)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 5);
	mc_pack_kv_str(&b, "s", "hi \"there\"\n");
	mc_pack_kv_uint(&b, "u", UINT64_MAX);
	mc_pack_kv_int(&b, "i", -5);
	mc_pack_kv_bool(&b, "b", true);
	mc_pack_str(&b, "a");
	mc_pack_array(&b, 2);
	mc_pack_bin(&b, "\x01\xff", 2);
	mc_pack_nil(&b);

	struct mc_doc *doc = mc_unpack(b.data, b.len);
	CHECK(doc != NULL);
	const struct mc_val *root = mc_doc_root(doc);
	char s[64];
	uint64_t u = 0;
	bool flag = false;
	CHECK(mc_get_str(root, "s", s, sizeof(s)));
	CHECK_STR(s, "hi \"there\"\n");
	CHECK(mc_get_uint(root, "u", &u) && u == UINT64_MAX);
	CHECK(mc_get_bool(root, "b", &flag) && flag);
	CHECK(!mc_get_uint(root, "i", &u));  /* negative is not a uint */
	CHECK(!mc_get_str(root, "s", s, 4)); /* does not fit */
	CHECK(mc_map_get(root, "missing") == NULL);

	struct mc_buf json;
	mc_buf_init(&json);
	mc_val_to_json(root, &json, false);
	char *text = mc_buf_strdup(&json);
	CHECK_STR(text, "{\"s\":\"hi \\\"there\\\"\\n\",\"u\":"
	                "18446744073709551615,\"i\":-5,\"b\":true,\"a\":"
	                "[\"01ff\",null]}");
	free(text);
	mc_buf_free(&json);
	mc_doc_free(doc);

	/* The doc owns its bytes: freeing the input first is fine. */
	uint8_t *copy = xmalloc(b.len);
	memcpy(copy, b.data, b.len);
	doc = mc_unpack(copy, b.len);
	free(copy);
	CHECK(doc && mc_get_str(mc_doc_root(doc), "s", s, sizeof(s)));
	mc_doc_free(doc);

	/* Every strict prefix is refused, and so is trailing junk. */
	int accepted = 0;
	for (size_t cut = 0; cut < b.len; cut++) {
		struct mc_doc *d = mc_unpack(b.data, cut);
		accepted += d != NULL;
		mc_doc_free(d);
	}
	CHECK(accepted == 0);
	mc_buf_put_u8(&b, 0xc0);
	CHECK(mc_unpack(b.data, b.len) == NULL);
	mc_buf_free(&b);
}

static void test_wire_hostile(void)
{
	/* A 4-billion-element array header in five bytes. */
	const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	CHECK(!mc_wire_valid(huge, sizeof(huge)));
	CHECK(mc_unpack(huge, sizeof(huge)) == NULL);
	/* A map claiming more pairs than bytes remain. */
	const uint8_t map[] = {0xde, 0x00, 0x10, 0x01, 0x02};
	CHECK(mc_unpack(map, sizeof(map)) == NULL);
	/* A string longer than the packet. */
	const uint8_t str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
	CHECK(mc_unpack(str, sizeof(str)) == NULL);
	/* Nesting past the limit. */
	uint8_t deep[100];
	memset(deep, 0x91, sizeof(deep));
	deep[99] = 0xc0;
	CHECK(mc_unpack(deep, sizeof(deep)) == NULL);
	struct mc_doc *d = mc_unpack(deep + 80, 20);
	CHECK(d != NULL);
	mc_doc_free(d);
	/* Ext types are not ours. */
	const uint8_t ext[] = {0xd4, 0x01, 0x00};
	CHECK(mc_unpack(ext, sizeof(ext)) == NULL);

	/* Keys in JSON: scalars quoted, containers as placeholders, so keys
	 * within keys do not double their escaping at every level. */
	const uint8_t keys[] = {0x82, 0x05, 0xa1, 'x',  0x81, 0x81,
	                        0xa1, '"',  0x01, 0x02, 0x03};
	d = mc_unpack(keys, sizeof(keys));
	CHECK(d != NULL);
	if (d) {
		struct mc_buf j;
		mc_buf_init(&j);
		mc_val_to_json(mc_doc_root(d), &j, false);
		char *t = mc_buf_strdup(&j);
		CHECK_STR(t, "{\"5\":\"x\",\"<map of 1>\":3}");
		free(t);
		mc_buf_free(&j);
		mc_doc_free(d);
	}
	/* 30 levels of maps as keys: a few hundred bytes of JSON. */
	uint8_t nest[64];
	size_t n = 0;
	for (int i = 0; i < 30; i++)
		nest[n++] = 0x81;
	nest[n++] = 0xc0;
	for (int i = 0; i < 30; i++)
		nest[n++] = 0xc0;
	d = mc_unpack(nest, n);
	CHECK(d != NULL);
	if (d) {
		struct mc_buf j;
		mc_buf_init(&j);
		mc_val_to_json(mc_doc_root(d), &j, false);
		CHECK(j.len < 100);
		mc_buf_free(&j);
		mc_doc_free(d);
	}
}

static void test_addr(void)
{
	struct mc_addr a;
	char out[64];
	CHECK(mc_addr_parse(&a, "127.0.0.1:7700", 1) == 0);
	mc_addr_format(&a, out, sizeof(out));
	CHECK_STR(out, "127.0.0.1:7700");
	CHECK(mc_addr_parse(&a, "10.1.2.3", 7700) == 0);
	CHECK(mc_addr_port(&a) == 7700);
	CHECK(mc_addr_parse(&a, "[::1]:80", 1) == 0);
	mc_addr_format(&a, out, sizeof(out));
	CHECK_STR(out, "[::1]:80");
	CHECK(mc_addr_parse(&a, "0.0.0.0:1", 1) == 0 && mc_addr_is_any(&a));
	CHECK(mc_addr_parse(&a, "host:80", 1) == -EINVAL);
	CHECK(mc_addr_parse(&a, "1.2.3.4:", 1) == -EINVAL);
	CHECK(mc_addr_parse(&a, "1.2.3.4:0", 1) == -EINVAL);
	CHECK(mc_addr_parse(&a, "1.2.3.4:-1", 1) == -EINVAL);
	CHECK(mc_addr_parse(&a, "1.2.3.4:65536", 1) == -EINVAL);
	CHECK(mc_addr_parse(&a, "[::1", 1) == -EINVAL);
	CHECK(mc_addr_parse(&a, "", 1) == -EINVAL);

	struct mc_cidr c;
	CHECK(mc_cidr_parse(&c, "172.31.0.0/16", 8, 24) == 0);
	CHECK(c.network == 0xac1f0000 && c.prefix == 16);
	CHECK(mc_cidr_parse(&c, "172.31.0.1/16", 8, 24) == -EINVAL);
	CHECK(mc_cidr_parse(&c, "10.0.0.0/7", 8, 24) == -EINVAL);
	CHECK(mc_cidr_parse(&c, "10.0.0.0/25", 8, 24) == -EINVAL);
	CHECK(mc_cidr_parse(&c, "300.0.0.0/8", 8, 24) == -EINVAL);
	CHECK(mc_cidr_parse(&c, "10.0.0.0", 8, 24) == -EINVAL);
	CHECK(mc_cidr_parse(&c, "10.0.0.0/", 8, 24) == -EINVAL);
}

static void test_seal(void)
{
	uint8_t key[MC_KEY_BYTES], other[MC_KEY_BYTES];
	mc_random(key, sizeof(key));
	mc_random(other, sizeof(other));
	struct mc_buf sealed, plain;
	mc_buf_init(&sealed);
	mc_buf_init(&plain);
	mc_seal(&sealed, key, "ad", 2, "secret", 6);
	CHECK(sealed.len == 6 + MC_SEAL_OVERHEAD);
	CHECK(mc_open(&plain, key, "ad", 2, sealed.data, sealed.len) == 0);
	CHECK(plain.len == 6 && memcmp(plain.data, "secret", 6) == 0);
	mc_buf_reset(&plain);
	CHECK(mc_open(&plain, other, "ad", 2, sealed.data, sealed.len) ==
	      -EBADMSG);
	CHECK(mc_open(&plain, key, "xx", 2, sealed.data, sealed.len) ==
	      -EBADMSG);
	sealed.data[30] ^= 1;
	CHECK(mc_open(&plain, key, "ad", 2, sealed.data, sealed.len) ==
	      -EBADMSG);
	CHECK(mc_open(&plain, key, "ad", 2, sealed.data, 10) == -EBADMSG);
	mc_buf_free(&sealed);
	mc_buf_free(&plain);
}

static void test_encodings_and_identity(void)
{
	uint8_t in[5] = {0, 1, 0xfe, 0xff, 0x7f}, out[8];
	char hex[11];
	mc_hex_encode(hex, in, 5);
	CHECK_STR(hex, "0001feff7f");
	CHECK(mc_hex_decode(out, 5, hex, 10) == 0 && memcmp(in, out, 5) == 0);
	CHECK(mc_hex_decode(out, 5, hex, 9) == -EINVAL);
	CHECK(mc_hex_decode(out, 5, "0001feff7g", 10) == -EINVAL);

	char *b = mc_b64_encode("hello", 5);
	CHECK_STR(b, "aGVsbG8=");
	CHECK(mc_b64_decode(out, sizeof(out), b, strlen(b)) == 5);
	free(b);
	CHECK(mc_b64url_decode(out, sizeof(out), "a+b", 3) == -EINVAL);

	struct mc_identity id;
	mc_identity_generate(&id);
	CHECK(mc_identity_check(&id));
	id.box_pk[0] ^= 1;
	CHECK(!mc_identity_check(&id));
}

static void test_buf_cursor(void)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_buf_put_be16(&b, 0x0102);
	mc_buf_put_be32(&b, 0x03040506);
	mc_buf_put_be64(&b, 0x0708090a0b0c0d0eull);
	struct mc_cursor c;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	mc_cursor_init(&c, b.data, b.len);
	CHECK(mc_cursor_get_be16(&c, &v16) && v16 == 0x0102);
	CHECK(mc_cursor_get_be32(&c, &v32) && v32 == 0x03040506);
	CHECK(mc_cursor_get_be64(&c, &v64) && v64 == 0x0708090a0b0c0d0eull);
	CHECK(c.left == 0 && !mc_cursor_get_be16(&c, &v16) && c.failed);
	mc_buf_consume(&b, 2);
	CHECK(b.len == 12 && b.data[0] == 3);
	mc_buf_free(&b);
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	RUN(test_wire_roundtrip);
	RUN(test_wire_hostile);
	RUN(test_addr);
	RUN(test_seal);
	RUN(test_encodings_and_identity);
	RUN(test_buf_cursor);
	return check_summary();
}
