#include "buf.h"

#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mc_buf_init(struct mc_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void mc_buf_free(struct mc_buf *b)
{
	free(b->data);
	mc_buf_init(b);
}

void mc_buf_reset(struct mc_buf *b)
{
	b->len = 0;
}

uint8_t *mc_buf_reserve(struct mc_buf *b, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

void mc_buf_append(struct mc_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(mc_buf_reserve(b, n), p, n);
	b->len += n;
}

void mc_buf_append_str(struct mc_buf *b, const char *s)
{
	mc_buf_append(b, s, strlen(s));
}

void mc_buf_printf(struct mc_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	char *dst = (char *)mc_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(dst, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void mc_buf_put_u8(struct mc_buf *b, uint8_t v)
{
	mc_buf_append(b, &v, 1);
}

void mc_buf_put_be16(struct mc_buf *b, uint16_t v)
{
	uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	mc_buf_append(b, p, 2);
}

void mc_buf_put_be32(struct mc_buf *b, uint32_t v)
{
	uint8_t p[4];
	mc_store_be32(p, v);
	mc_buf_append(b, p, 4);
}

void mc_buf_put_be64(struct mc_buf *b, uint64_t v)
{
	mc_buf_put_be32(b, (uint32_t)(v >> 32));
	mc_buf_put_be32(b, (uint32_t)v);
}

void mc_buf_consume(struct mc_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

char *mc_buf_strdup(const struct mc_buf *b)
{
	return xstrndup((const char *)(b->data ? b->data : (uint8_t *)""),
	                b->len);
}

void mc_cursor_init(struct mc_cursor *c, const void *p, size_t n)
{
	c->p = p;
	c->left = n;
	c->failed = false;
}

bool mc_cursor_get_view(struct mc_cursor *c, const uint8_t **out, size_t n)
{
	if (c->failed || c->left < n) {
		c->failed = true;
		return false;
	}
	*out = c->p;
	c->p += n;
	c->left -= n;
	return true;
}

bool mc_cursor_get_bytes(struct mc_cursor *c, void *out, size_t n)
{
	const uint8_t *p;
	if (!mc_cursor_get_view(c, &p, n))
		return false;
	memcpy(out, p, n);
	return true;
}

bool mc_cursor_get_u8(struct mc_cursor *c, uint8_t *v)
{
	return mc_cursor_get_bytes(c, v, 1);
}

bool mc_cursor_get_be16(struct mc_cursor *c, uint16_t *v)
{
	const uint8_t *p;
	if (!mc_cursor_get_view(c, &p, 2))
		return false;
	*v = (uint16_t)(p[0] << 8 | p[1]);
	return true;
}

bool mc_cursor_get_be32(struct mc_cursor *c, uint32_t *v)
{
	const uint8_t *p;
	if (!mc_cursor_get_view(c, &p, 4))
		return false;
	*v = mc_load_be32(p);
	return true;
}

bool mc_cursor_get_be64(struct mc_cursor *c, uint64_t *v)
{
	uint32_t hi, lo;
	if (!mc_cursor_get_be32(c, &hi) || !mc_cursor_get_be32(c, &lo))
		return false;
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

uint32_t mc_load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

void mc_store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
