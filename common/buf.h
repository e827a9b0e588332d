/*
 * Byte buffers: a growable buffer for building messages, and a bounds-checked
 * cursor for reading untrusted bytes (every read checks the length first).
 */
#ifndef MC_BUF_H
#define MC_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mc_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void mc_buf_init(struct mc_buf *b);
void mc_buf_free(struct mc_buf *b);
void mc_buf_reset(struct mc_buf *b);
/* Makes room for n more bytes and returns where they go (len unchanged). */
uint8_t *mc_buf_reserve(struct mc_buf *b, size_t n);
void mc_buf_append(struct mc_buf *b, const void *p, size_t n);
void mc_buf_append_str(struct mc_buf *b, const char *s);
void mc_buf_printf(struct mc_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mc_buf_put_u8(struct mc_buf *b, uint8_t v);
void mc_buf_put_be16(struct mc_buf *b, uint16_t v);
void mc_buf_put_be32(struct mc_buf *b, uint32_t v);
void mc_buf_put_be64(struct mc_buf *b, uint64_t v);
/* Drops the first n bytes (n <= len). */
void mc_buf_consume(struct mc_buf *b, size_t n);
/* Returns a NUL-terminated copy owned by the caller. */
char *mc_buf_strdup(const struct mc_buf *b);

/* A read cursor over borrowed bytes. Reads past the end fail and latch. */
struct mc_cursor {
	const uint8_t *p;
	size_t left;
	bool failed;
};

void mc_cursor_init(struct mc_cursor *c, const void *p, size_t n);
bool mc_cursor_get_u8(struct mc_cursor *c, uint8_t *v);
bool mc_cursor_get_be16(struct mc_cursor *c, uint16_t *v);
bool mc_cursor_get_be32(struct mc_cursor *c, uint32_t *v);
bool mc_cursor_get_be64(struct mc_cursor *c, uint64_t *v);
bool mc_cursor_get_bytes(struct mc_cursor *c, void *out, size_t n);
/* Points *out at the next n bytes without copying (borrowed from c). */
bool mc_cursor_get_view(struct mc_cursor *c, const uint8_t **out, size_t n);

uint32_t mc_load_be32(const uint8_t *p);
void mc_store_be32(uint8_t *p, uint32_t v);

#endif
