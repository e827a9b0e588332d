/*
 * mallee's wire values: msgpack, written into an mc_buf and read back into a
 * tree of mc_val. Only wire.c includes msgpack.h; every other module sees
 * these types. Decoding is bounded: the input length, a nesting limit and
 * msgpack-c's own checks keep hostile bytes from growing anything unbounded.
 */
#ifndef MC_WIRE_H
#define MC_WIRE_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void mc_pack_nil(struct mc_buf *b);
void mc_pack_bool(struct mc_buf *b, bool v);
void mc_pack_uint(struct mc_buf *b, uint64_t v);
void mc_pack_int(struct mc_buf *b, int64_t v);
void mc_pack_double(struct mc_buf *b, double v);
void mc_pack_str(struct mc_buf *b, const char *s);
void mc_pack_strn(struct mc_buf *b, const char *s, size_t n);
void mc_pack_bin(struct mc_buf *b, const void *p, size_t n);
void mc_pack_array(struct mc_buf *b, uint32_t n);
void mc_pack_map(struct mc_buf *b, uint32_t n);

/* A str key followed by a value, for building maps tersely. */
void mc_pack_kv_str(struct mc_buf *b, const char *key, const char *v);
void mc_pack_kv_uint(struct mc_buf *b, const char *key, uint64_t v);
void mc_pack_kv_int(struct mc_buf *b, const char *key, int64_t v);
void mc_pack_kv_bool(struct mc_buf *b, const char *key, bool v);
void mc_pack_kv_bin(struct mc_buf *b, const char *key, const void *p, size_t n);

enum mc_val_type {
	MC_VAL_NIL,
	MC_VAL_BOOL,
	MC_VAL_UINT,
	MC_VAL_INT,
	MC_VAL_DOUBLE,
	MC_VAL_STR,
	MC_VAL_BIN,
	MC_VAL_ARRAY,
	MC_VAL_MAP,
};

struct mc_kv;

struct mc_val {
	enum mc_val_type type;
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double d;
		struct {
			const char *p; /* not NUL-terminated */
			uint32_t n;
		} s; /* STR and BIN */
		struct {
			struct mc_val *items;
			uint32_t n;
		} array;
		struct {
			struct mc_kv *kv;
			uint32_t n;
		} map;
	} v;
};

struct mc_kv {
	struct mc_val key;
	struct mc_val val;
};

/* A decoded message; every mc_val inside is owned by it. */
struct mc_doc;

/*
 * Decodes exactly one value spanning all of data[0..len). Returns NULL on
 * malformed, truncated, trailing or too deeply nested input.
 */
struct mc_doc *mc_unpack(const void *data, size_t len);
/* True when data is exactly one well-formed value that mc_unpack accepts. */
bool mc_wire_valid(const void *data, size_t len);
const struct mc_val *mc_doc_root(const struct mc_doc *doc);
void mc_doc_free(struct mc_doc *doc);

/* Map lookup by string key; NULL when absent or when m is not a map. */
const struct mc_val *mc_map_get(const struct mc_val *m, const char *key);
bool mc_val_is_str(const struct mc_val *v, const char *s);
/* Typed getters: false when the value is absent or of another type. */
bool mc_get_uint(const struct mc_val *m, const char *key, uint64_t *out);
bool mc_get_bool(const struct mc_val *m, const char *key, bool *out);
/* Copies a STR value into out (NUL-terminated); false if it does not fit. */
bool mc_get_str(const struct mc_val *m, const char *key, char *out,
                size_t size);
/* Points at a STR or BIN value's bytes (borrowed from the doc). */
bool mc_get_bytes(const struct mc_val *m, const char *key, const uint8_t **p,
                  size_t *n);

/* Writes v as JSON (strings escaped, bin as hex), indented when pretty. */
void mc_val_to_json(const struct mc_val *v, struct mc_buf *out, bool pretty);

#endif
