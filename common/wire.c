#include "wire.h"

#include "mem.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* msgpack-c writes through a callback; ours appends to an mc_buf. */
static int buf_write(void *data, const char *p, size_t n)
{
	mc_buf_append(data, p, n);
	return 0;
}

#define PACKER(b)                                                              \
	msgpack_packer pk;                                                     \
	msgpack_packer_init(&pk, (b), buf_write)

void mc_pack_nil(struct mc_buf *b)
{
	PACKER(b);
	msgpack_pack_nil(&pk);
}

void mc_pack_bool(struct mc_buf *b, bool v)
{
	PACKER(b);
	if (v)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
}

void mc_pack_uint(struct mc_buf *b, uint64_t v)
{
	PACKER(b);
	msgpack_pack_uint64(&pk, v);
}

void mc_pack_int(struct mc_buf *b, int64_t v)
{
	PACKER(b);
	msgpack_pack_int64(&pk, v);
}

void mc_pack_double(struct mc_buf *b, double v)
{
	PACKER(b);
	msgpack_pack_double(&pk, v);
}

void mc_pack_strn(struct mc_buf *b, const char *s, size_t n)
{
	PACKER(b);
	msgpack_pack_str_with_body(&pk, s, n);
}

void mc_pack_str(struct mc_buf *b, const char *s)
{
	mc_pack_strn(b, s, strlen(s));
}

void mc_pack_bin(struct mc_buf *b, const void *p, size_t n)
{
	PACKER(b);
	msgpack_pack_bin_with_body(&pk, p, n);
}

void mc_pack_array(struct mc_buf *b, uint32_t n)
{
	PACKER(b);
	msgpack_pack_array(&pk, n);
}

void mc_pack_map(struct mc_buf *b, uint32_t n)
{
	PACKER(b);
	msgpack_pack_map(&pk, n);
}

void mc_pack_kv_str(struct mc_buf *b, const char *key, const char *v)
{
	mc_pack_str(b, key);
	mc_pack_str(b, v);
}

void mc_pack_kv_uint(struct mc_buf *b, const char *key, uint64_t v)
{
	mc_pack_str(b, key);
	mc_pack_uint(b, v);
}

void mc_pack_kv_int(struct mc_buf *b, const char *key, int64_t v)
{
	mc_pack_str(b, key);
	mc_pack_int(b, v);
}

void mc_pack_kv_bool(struct mc_buf *b, const char *key, bool v)
{
	mc_pack_str(b, key);
	mc_pack_bool(b, v);
}

void mc_pack_kv_bin(struct mc_buf *b, const char *key, const void *p, size_t n)
{
	mc_pack_str(b, key);
	mc_pack_bin(b, p, n);
}

/* Deep enough for any message of ours; shallow enough for the C stack. */
#define MAX_DEPTH 32

struct mc_doc {
	msgpack_zone zone;
	struct mc_val root;
};

static bool convert(struct mc_doc *doc, const msgpack_object *o,
                    struct mc_val *out, int depth)
{
	if (depth > MAX_DEPTH)
		return false;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		out->type = MC_VAL_NIL;
		return true;
	case MSGPACK_OBJECT_BOOLEAN:
		out->type = MC_VAL_BOOL;
		out->v.b = o->via.boolean;
		return true;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		out->type = MC_VAL_UINT;
		out->v.u = o->via.u64;
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		out->type = MC_VAL_INT;
		out->v.i = o->via.i64;
		return true;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		out->type = MC_VAL_DOUBLE;
		out->v.d = o->via.f64;
		return true;
	case MSGPACK_OBJECT_STR:
		out->type = MC_VAL_STR;
		out->v.s.p = o->via.str.ptr;
		out->v.s.n = o->via.str.size;
		return true;
	case MSGPACK_OBJECT_BIN:
		out->type = MC_VAL_BIN;
		out->v.s.p = o->via.bin.ptr;
		out->v.s.n = o->via.bin.size;
		return true;
	case MSGPACK_OBJECT_ARRAY: {
		uint32_t n = o->via.array.size;
		out->type = MC_VAL_ARRAY;
		out->v.array.n = n;
		out->v.array.items = msgpack_zone_malloc(
		    &doc->zone, sizeof(struct mc_val) * n + 1);
		if (!out->v.array.items)
			return false;
		for (uint32_t i = 0; i < n; i++)
			if (!convert(doc, &o->via.array.ptr[i],
			             &out->v.array.items[i], depth + 1))
				return false;
		return true;
	}
	case MSGPACK_OBJECT_MAP: {
		uint32_t n = o->via.map.size;
		out->type = MC_VAL_MAP;
		out->v.map.n = n;
		out->v.map.kv = msgpack_zone_malloc(
		    &doc->zone, sizeof(struct mc_kv) * n + 1);
		if (!out->v.map.kv)
			return false;
		for (uint32_t i = 0; i < n; i++) {
			if (!convert(doc, &o->via.map.ptr[i].key,
			             &out->v.map.kv[i].key, depth + 1) ||
			    !convert(doc, &o->via.map.ptr[i].val,
			             &out->v.map.kv[i].val, depth + 1))
				return false;
		}
		return true;
	}
	case MSGPACK_OBJECT_EXT:
	default:
		return false;
	}
}

/*
 * msgpack-c allocates a container's slots from its header count before it
 * reads the elements, so a 5-byte packet could ask for gigabytes. This walk
 * checks every header against the bytes that are really there first: each
 * element needs at least one byte, so no count may exceed what is left.
 */
static bool skip_value(struct mc_cursor *c, int depth);

static bool skip_n(struct mc_cursor *c, uint64_t n)
{
	const uint8_t *p;
	return n <= c->left && mc_cursor_get_view(c, &p, (size_t)n);
}

static bool skip_items(struct mc_cursor *c, uint64_t n, int depth)
{
	if (n > c->left)
		return false;
	for (uint64_t i = 0; i < n; i++)
		if (!skip_value(c, depth + 1))
			return false;
	return true;
}

static bool get_len(struct mc_cursor *c, unsigned bytes, uint64_t *n)
{
	uint8_t b8;
	uint16_t b16;
	uint32_t b32;
	switch (bytes) {
	case 1:
		if (!mc_cursor_get_u8(c, &b8))
			return false;
		*n = b8;
		return true;
	case 2:
		if (!mc_cursor_get_be16(c, &b16))
			return false;
		*n = b16;
		return true;
	default:
		if (!mc_cursor_get_be32(c, &b32))
			return false;
		*n = b32;
		return true;
	}
}

static bool skip_value(struct mc_cursor *c, int depth)
{
	uint8_t t;
	uint64_t n;
	if (depth > MAX_DEPTH || !mc_cursor_get_u8(c, &t))
		return false;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return true;
	if ((t & 0xe0) == 0xa0)
		return skip_n(c, t & 0x1f);
	if ((t & 0xf0) == 0x90)
		return skip_items(c, t & 0x0f, depth);
	if ((t & 0xf0) == 0x80)
		return skip_items(c, 2u * (t & 0x0f), depth);
	switch (t) {
	case 0xcc:
	case 0xd0:
		return skip_n(c, 1);
	case 0xcd:
	case 0xd1:
		return skip_n(c, 2);
	case 0xce:
	case 0xd2:
	case 0xca:
		return skip_n(c, 4);
	case 0xcf:
	case 0xd3:
	case 0xcb:
		return skip_n(c, 8);
	case 0xc4:
	case 0xd9:
		return get_len(c, 1, &n) && skip_n(c, n);
	case 0xc5:
	case 0xda:
		return get_len(c, 2, &n) && skip_n(c, n);
	case 0xc6:
	case 0xdb:
		return get_len(c, 4, &n) && skip_n(c, n);
	case 0xdc:
		return get_len(c, 2, &n) && skip_items(c, n, depth);
	case 0xdd:
		return get_len(c, 4, &n) && skip_items(c, n, depth);
	case 0xde:
		return get_len(c, 2, &n) && skip_items(c, 2 * n, depth);
	case 0xdf:
		return get_len(c, 4, &n) && skip_items(c, 2 * n, depth);
	default:
		return false; /* ext types and 0xc1 are not ours */
	}
}

bool mc_wire_valid(const void *data, size_t len)
{
	struct mc_cursor c;
	mc_cursor_init(&c, data, len);
	return skip_value(&c, 0) && c.left == 0;
}

struct mc_doc *mc_unpack(const void *data, size_t len)
{
	if (!mc_wire_valid(data, len))
		return NULL;

	struct mc_doc *doc = xcalloc(1, sizeof(*doc));
	if (!msgpack_zone_init(&doc->zone, 2048)) {
		free(doc);
		return NULL;
	}
	/* msgpack-c points strings into its input; a copy in the zone makes
	 * the doc own all it refers to, whatever happens to data. */
	char *copy = msgpack_zone_malloc(&doc->zone, len ? len : 1);
	if (!copy) {
		mc_doc_free(doc);
		return NULL;
	}
	memcpy(copy, data, len);
	size_t off = 0;
	msgpack_object obj;
	msgpack_unpack_return r =
	    msgpack_unpack(copy, len, &off, &doc->zone, &obj);
	if (r != MSGPACK_UNPACK_SUCCESS || off != len ||
	    !convert(doc, &obj, &doc->root, 0)) {
		mc_doc_free(doc);
		return NULL;
	}
	return doc;
}

const struct mc_val *mc_doc_root(const struct mc_doc *doc)
{
	return &doc->root;
}

void mc_doc_free(struct mc_doc *doc)
{
	if (!doc)
		return;
	msgpack_zone_destroy(&doc->zone);
	free(doc);
}

bool mc_val_is_str(const struct mc_val *v, const char *s)
{
	size_t n = strlen(s);
	return v && v->type == MC_VAL_STR && v->v.s.n == n &&
	       memcmp(v->v.s.p, s, n) == 0;
}

const struct mc_val *mc_map_get(const struct mc_val *m, const char *key)
{
	if (!m || m->type != MC_VAL_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->v.map.n; i++)
		if (mc_val_is_str(&m->v.map.kv[i].key, key))
			return &m->v.map.kv[i].val;
	return NULL;
}

bool mc_get_uint(const struct mc_val *m, const char *key, uint64_t *out)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (!v || v->type != MC_VAL_UINT)
		return false;
	*out = v->v.u;
	return true;
}

bool mc_get_bool(const struct mc_val *m, const char *key, bool *out)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (!v || v->type != MC_VAL_BOOL)
		return false;
	*out = v->v.b;
	return true;
}

bool mc_get_str(const struct mc_val *m, const char *key, char *out, size_t size)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (!v || v->type != MC_VAL_STR || v->v.s.n >= size ||
	    memchr(v->v.s.p, '\0', v->v.s.n))
		return false;
	memcpy(out, v->v.s.p, v->v.s.n);
	out[v->v.s.n] = '\0';
	return true;
}

bool mc_get_bytes(const struct mc_val *m, const char *key, const uint8_t **p,
                  size_t *n)
{
	const struct mc_val *v = mc_map_get(m, key);
	if (!v || (v->type != MC_VAL_STR && v->type != MC_VAL_BIN))
		return false;
	*p = (const uint8_t *)v->v.s.p;
	*n = v->v.s.n;
	return true;
}

static void json_string(struct mc_buf *out, const char *p, size_t n)
{
	mc_buf_put_u8(out, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		switch (c) {
		case '"':
			mc_buf_append_str(out, "\\\"");
			break;
		case '\\':
			mc_buf_append_str(out, "\\\\");
			break;
		case '\n':
			mc_buf_append_str(out, "\\n");
			break;
		case '\r':
			mc_buf_append_str(out, "\\r");
			break;
		case '\t':
			mc_buf_append_str(out, "\\t");
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				mc_buf_printf(out, "\\u%04x", c);
			else
				mc_buf_put_u8(out, c);
		}
	}
	mc_buf_put_u8(out, '"');
}

static void json_indent(struct mc_buf *out, bool pretty, int depth)
{
	if (!pretty)
		return;
	mc_buf_put_u8(out, '\n');
	for (int i = 0; i < depth; i++)
		mc_buf_append_str(out, "  ");
}

static void json_value(const struct mc_val *v, struct mc_buf *out, bool pretty,
                       int depth);

/*
 * JSON keys are strings: a scalar key is quoted as rendered, a container
 * key stands as a placeholder. Quoting a container's rendering would
 * escape its own quoted keys once more at every level of keys within keys:
 * 270 bytes of msgpack rendered to hundreds of megabytes (fuzz_wire).
 */
static void json_key(const struct mc_val *key, struct mc_buf *out)
{
	if (key->type == MC_VAL_STR) {
		json_string(out, key->v.s.p, key->v.s.n);
	} else if (key->type == MC_VAL_ARRAY || key->type == MC_VAL_MAP) {
		mc_buf_printf(out, "\"<%s of %u>\"",
		              key->type == MC_VAL_MAP ? "map" : "array",
		              key->type == MC_VAL_MAP ? key->v.map.n
		                                      : key->v.array.n);
	} else {
		struct mc_buf k;
		mc_buf_init(&k);
		json_value(key, &k, false, 0);
		json_string(out, (const char *)k.data, k.len);
		mc_buf_free(&k);
	}
}

static void json_value(const struct mc_val *v, struct mc_buf *out, bool pretty,
                       int depth)
{
	switch (v->type) {
	case MC_VAL_NIL:
		mc_buf_append_str(out, "null");
		break;
	case MC_VAL_BOOL:
		mc_buf_append_str(out, v->v.b ? "true" : "false");
		break;
	case MC_VAL_UINT:
		mc_buf_printf(out, "%llu", (unsigned long long)v->v.u);
		break;
	case MC_VAL_INT:
		mc_buf_printf(out, "%lld", (long long)v->v.i);
		break;
	case MC_VAL_DOUBLE:
		mc_buf_printf(out, "%.17g", v->v.d);
		break;
	case MC_VAL_STR:
		json_string(out, v->v.s.p, v->v.s.n);
		break;
	case MC_VAL_BIN:
		mc_buf_put_u8(out, '"');
		for (uint32_t i = 0; i < v->v.s.n; i++)
			mc_buf_printf(out, "%02x", (uint8_t)v->v.s.p[i]);
		mc_buf_put_u8(out, '"');
		break;
	case MC_VAL_ARRAY:
		mc_buf_put_u8(out, '[');
		for (uint32_t i = 0; i < v->v.array.n; i++) {
			if (i)
				mc_buf_put_u8(out, ',');
			json_indent(out, pretty, depth + 1);
			json_value(&v->v.array.items[i], out, pretty,
			           depth + 1);
		}
		if (v->v.array.n)
			json_indent(out, pretty, depth);
		mc_buf_put_u8(out, ']');
		break;
	case MC_VAL_MAP:
		mc_buf_put_u8(out, '{');
		for (uint32_t i = 0; i < v->v.map.n; i++) {
			const struct mc_kv *kv = &v->v.map.kv[i];
			if (i)
				mc_buf_put_u8(out, ',');
			json_indent(out, pretty, depth + 1);
			json_key(&kv->key, out);
			mc_buf_append_str(out, pretty ? ": " : ":");
			json_value(&kv->val, out, pretty, depth + 1);
		}
		if (v->v.map.n)
			json_indent(out, pretty, depth);
		mc_buf_put_u8(out, '}');
		break;
	}
}

void mc_val_to_json(const struct mc_val *v, struct mc_buf *out, bool pretty)
{
	json_value(v, out, pretty, 0);
}
