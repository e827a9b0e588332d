/*
 * The set of request ids seen lately (rpc_int.h). Slots are never deleted
 * one by one, so linear probing stays correct; when the table is half full
 * it is rebuilt without the expired ids, and grown if that freed too
 * little. Ids are random, so their first bytes are a good hash.
 */
#include "rpc_int.h"

#include "mem.h"

#include <string.h>

#define SEEN_MIN_CAP 1024

static size_t slot_of(const uint8_t rid[RPC_RID_LEN], size_t cap)
{
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | rid[i];
	return (size_t)(h & (cap - 1));
}

static void put(struct rpc_seen_slot *slots, size_t cap,
                const uint8_t rid[RPC_RID_LEN], uint64_t until)
{
	size_t i = slot_of(rid, cap);
	while (slots[i].until)
		i = (i + 1) & (cap - 1);
	memcpy(slots[i].rid, rid, RPC_RID_LEN);
	slots[i].until = until;
}

static void rebuild(struct rpc_seen *s, uint64_t now)
{
	size_t live = 0;
	for (size_t i = 0; i < s->cap; i++)
		live += s->slots[i].until > now;
	size_t cap = s->cap ? s->cap : SEEN_MIN_CAP;
	while (live + 1 > cap / 4)
		cap *= 2;
	struct rpc_seen_slot *slots = xcalloc(cap, sizeof(*slots));
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].until > now)
			put(slots, cap, s->slots[i].rid, s->slots[i].until);
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	s->used = live;
}

bool rpc_seen_check_add(struct rpc_seen *s, const uint8_t rid[RPC_RID_LEN],
                        uint64_t until, uint64_t now)
{
	if (s->used + 1 > s->cap / 2)
		rebuild(s, now);
	size_t i = slot_of(rid, s->cap);
	while (s->slots[i].until) {
		if (memcmp(s->slots[i].rid, rid, RPC_RID_LEN) == 0 &&
		    s->slots[i].until > now)
			return true;
		i = (i + 1) & (s->cap - 1);
	}
	memcpy(s->slots[i].rid, rid, RPC_RID_LEN);
	s->slots[i].until = until ? until : 1;
	s->used++;
	return false;
}

void rpc_seen_free(struct rpc_seen *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}
