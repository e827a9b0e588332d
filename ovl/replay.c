/*
 * The replay window of RFC 6479, as WireGuard keeps it: a ring of 64-bit
 * words, one bit per counter, that slides forward by clearing whole words.
 * Counters are stored plus one so that a fresh window (all zero) accepts 0.
 */
#include "ovl_int.h"

#include <string.h>

void ovl_replay_init(struct ovl_replay *r)
{
	memset(r, 0, sizeof(*r));
}

bool ovl_replay_check(const struct ovl_replay *r, uint64_t counter)
{
	if (counter >= OVL_REJECT_AFTER_MSGS)
		return false;
	counter++;
	if (counter < r->greatest && r->greatest - counter > OVL_REPLAY_WINDOW)
		return false;
	if (counter > r->greatest)
		return true;
	uint64_t word = (counter >> 6) & (OVL_REPLAY_WORDS - 1);

	return !(r->bitmap[word] & (1ull << (counter & 63)));
}

bool ovl_replay_update(struct ovl_replay *r, uint64_t counter)
{
	if (counter >= OVL_REJECT_AFTER_MSGS)
		return false;
	counter++;
	if (counter < r->greatest && r->greatest - counter > OVL_REPLAY_WINDOW)
		return false;
	uint64_t index = counter >> 6;

	if (counter > r->greatest) {
		uint64_t current = r->greatest >> 6;
		uint64_t top = index - current;

		if (top > OVL_REPLAY_WORDS)
			top = OVL_REPLAY_WORDS;
		for (uint64_t i = 1; i <= top; i++)
			r->bitmap[(current + i) & (OVL_REPLAY_WORDS - 1)] = 0;
		r->greatest = counter;
	}
	index &= OVL_REPLAY_WORDS - 1;
	uint64_t bit = 1ull << (counter & 63);

	if (r->bitmap[index] & bit)
		return false;
	r->bitmap[index] |= bit;
	return true;
}
