/*
 * Request throttling per access key: a token bucket each, refilled at rate
 * tokens/s up to burst. Only keys whose signature verified get a bucket, so
 * the table holds real keys and cannot be grown by strangers.
 */
#include "apiedge_int.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS 256

struct bucket {
	struct bucket *next;
	double tokens;
	uint64_t last_ms;
	char key[];
};

struct api_throttle {
	double rate, burst;
	struct bucket *table[BUCKETS];
};

struct api_throttle *api_throttle_new(double rate, double burst)
{
	struct api_throttle *t = xcalloc(1, sizeof(*t));
	t->rate = rate;
	t->burst = burst >= 1 ? burst : 1;
	return t;
}

void api_throttle_free(struct api_throttle *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < BUCKETS; i++) {
		struct bucket *b = t->table[i];
		while (b) {
			struct bucket *next = b->next;
			free(b);
			b = next;
		}
	}
	free(t);
}

static size_t hash(const char *s)
{
	size_t h = 5381;
	while (*s)
		h = h * 33 ^ (unsigned char)*s++;
	return h % BUCKETS;
}

bool api_throttle_take(struct api_throttle *t, const char *key, uint64_t now_ms)
{
	if (t->rate <= 0)
		return true;
	struct bucket **slot = &t->table[hash(key)];
	struct bucket *b = *slot;
	while (b && strcmp(b->key, key) != 0)
		b = b->next;
	if (!b) {
		size_t n = strlen(key) + 1;
		b = xmalloc(sizeof(*b) + n);
		memcpy(b->key, key, n);
		b->tokens = t->burst;
		b->last_ms = now_ms;
		b->next = *slot;
		*slot = b;
	}
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * t->rate / 1000.0;
		if (b->tokens > t->burst)
			b->tokens = t->burst;
		b->last_ms = now_ms;
	}
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}
