/*
 * The broadcast queue, after memberlist's TransmitLimitedQueue: messages
 * about members and user broadcasts, pre-encoded, each sent at most
 * retransmit_mult * ceil(log10(N + 1)) times, those sent least first and
 * among them the newest first. A new message under the key of a queued one
 * (the member's id, or the user key) replaces it.
 *
 * Items sit in one list per transmit count, so filling a packet walks from
 * the least sent and moving an item up costs O(1).
 */
#include "gossip_int.h"

#include "mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const uint8_t *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= k[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint32_t level_of(const struct gossip_bcast *b)
{
	return b->transmits < GOSSIP_LEVELS ? b->transmits : GOSSIP_LEVELS - 1;
}

static void level_unlink(struct gossip_dissem *d, struct gossip_bcast *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		d->level[level_of(b)] = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->prev = b->next = NULL;
}

static void level_push(struct gossip_dissem *d, struct gossip_bcast *b)
{
	struct gossip_bcast **head = &d->level[level_of(b)];
	b->prev = NULL;
	b->next = *head;
	if (*head)
		(*head)->prev = b;
	*head = b;
}

static void hash_unlink(struct gossip_dissem *d, struct gossip_bcast *b)
{
	struct gossip_bcast **pp = &d->buckets[b->hash & (d->nbuckets - 1)];
	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
}

static void hash_insert(struct gossip_dissem *d, struct gossip_bcast *b)
{
	struct gossip_bcast **head = &d->buckets[b->hash & (d->nbuckets - 1)];
	b->hnext = *head;
	*head = b;
}

static void dissem_remove(struct gossip_dissem *d, struct gossip_bcast *b)
{
	level_unlink(d, b);
	hash_unlink(d, b);
	d->count--;
	free(b);
}

static void hash_grow(struct gossip_dissem *d)
{
	struct gossip_bcast **old = d->buckets;
	uint32_t old_n = d->nbuckets;

	d->nbuckets = old_n * 2;
	d->buckets = xcalloc(d->nbuckets, sizeof(*d->buckets));
	for (uint32_t i = 0; i < old_n; i++) {
		struct gossip_bcast *b = old[i], *next;
		for (; b; b = next) {
			next = b->hnext;
			hash_insert(d, b);
		}
	}
	free(old);
}

void gossip_dissem_init(struct gossip_dissem *d)
{
	memset(d, 0, sizeof(*d));
	d->nbuckets = 16;
	d->buckets = xcalloc(d->nbuckets, sizeof(*d->buckets));
}

void gossip_dissem_free(struct gossip_dissem *d)
{
	for (uint32_t l = 0; l < GOSSIP_LEVELS; l++) {
		struct gossip_bcast *b = d->level[l], *next;
		for (; b; b = next) {
			next = b->next;
			free(b);
		}
	}
	free(d->buckets);
	memset(d, 0, sizeof(*d));
}

/* Queues a copy of data under key, replacing what was queued under it. */
void gossip_dissem_put(struct gossip_dissem *d, const uint8_t *key,
                       size_t keylen, uint8_t flags, const uint8_t *data,
                       size_t len)
{
	uint64_t h = key_hash(key, keylen);
	struct gossip_bcast *b = d->buckets[h & (d->nbuckets - 1)];

	for (; b; b = b->hnext) {
		if (b->hash == h && b->keylen == keylen &&
		    memcmp(b->key, key, keylen) == 0) {
			dissem_remove(d, b);
			break;
		}
	}
	b = xmalloc(sizeof(*b) + len);
	memset(b, 0, sizeof(*b));
	b->hash = h;
	b->len = (uint16_t)len;
	b->keylen = (uint8_t)keylen;
	b->flags = flags;
	memcpy(b->key, key, keylen);
	memcpy(b->data, data, len);
	level_push(d, b);
	hash_insert(d, b);
	if (++d->count > d->nbuckets * 2)
		hash_grow(d);
}

/*
 * Appends queued messages that fit in space bytes to out, at most max_msgs,
 * least transmitted first; counts a transmit for each and drops those that
 * reached limit. Returns how many were appended; ORs their flags into
 * *flags_sent.
 */
uint32_t gossip_dissem_fill(struct gossip_dissem *d, uint32_t limit,
                            struct mc_buf *out, size_t space, uint32_t max_msgs,
                            uint32_t *flags_sent)
{
	struct gossip_bcast *picked[GOSSIP_MSGS_MAX];
	uint32_t n = 0;

	if (max_msgs > GOSSIP_MSGS_MAX)
		max_msgs = GOSSIP_MSGS_MAX;
	for (uint32_t l = 0; l < GOSSIP_LEVELS && d->count; l++) {
		struct gossip_bcast *b = d->level[l], *next;
		for (; b; b = next) {
			next = b->next;
			if (b->transmits >= limit) {
				dissem_remove(d, b);
				continue;
			}
			if (n == max_msgs || space < 8)
				goto done;
			if (b->len > space)
				continue;
			mc_buf_append(out, b->data, b->len);
			space -= b->len;
			picked[n++] = b;
		}
	}
done:
	for (uint32_t i = 0; i < n; i++) {
		struct gossip_bcast *b = picked[i];
		*flags_sent |= b->flags;
		level_unlink(d, b);
		b->transmits++;
		if (b->transmits >= limit) {
			hash_unlink(d, b);
			d->count--;
			free(b);
		} else {
			level_push(d, b);
		}
	}
	return n;
}

uint32_t gossip_retransmit_limit(const struct gossip *g)
{
	double scale = ceil(log10((double)g->nents + 1.0));
	uint32_t limit = g->cfg.retransmit_mult * (uint32_t)scale;
	if (limit < 1)
		limit = 1;
	if (limit > GOSSIP_LEVELS - 1)
		limit = GOSSIP_LEVELS - 1;
	return limit;
}
