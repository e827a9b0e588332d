/*
 * Sealed packets: header || XChaCha20-Poly1305(nonce || ciphertext || tag).
 * The 17-byte header (version, sender id, sequence) travels in the clear and
 * is authenticated as associated data; the receiver tries every key of its
 * ring, then checks the sequence against a per-sender sliding window
 * (IPsec/WireGuard style) so a captured packet cannot be played again.
 *
 * Sequences start at epoch_ms << 20, so a restarted sender starts above
 * everything it sent before unless it averaged over 2^20 packets per ms.
 */
#include "gossip_int.h"

#include "crypto.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_VERSION 1
#define HEADER_LEN   17

static uint64_t load_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (uint32_t)x;
}

void gossip_seal_init(struct gossip_seal *s, uint64_t self_key,
                      uint64_t epoch_ms)
{
	memset(s, 0, sizeof(*s));
	s->self_key = self_key;
	s->seq = epoch_ms << 20;
}

void gossip_seal_free(struct gossip_seal *s)
{
	mc_wipe(s->keys, sizeof(s->keys));
	free(s->tab);
	s->tab = NULL;
}

void gossip_seal_wrap(struct gossip_seal *s, struct mc_buf *out,
                      const uint8_t *plain, size_t len)
{
	uint8_t *h = mc_buf_reserve(out, HEADER_LEN);
	h[0] = SEAL_VERSION;
	store_be64(h + 1, s->self_key);
	store_be64(h + 9, ++s->seq);
	out->len += HEADER_LEN;
	/* The header is in out's storage, which mc_seal may move: copy it. */
	uint8_t ad[HEADER_LEN];
	memcpy(ad, h, HEADER_LEN);
	mc_seal(out, s->keys[0], ad, HEADER_LEN, plain, len);
}

static struct gossip_replay *replay_slot(struct gossip_seal *s, uint64_t sender,
                                         bool create, uint64_t now_ms);

static void replay_grow(struct gossip_seal *s)
{
	struct gossip_replay *old = s->tab;
	uint32_t old_size = s->tab_size;

	s->tab_size = old_size ? old_size * 2 : 64;
	s->tab = xcalloc(s->tab_size, sizeof(*s->tab));
	s->tab_count = 0;
	for (uint32_t i = 0; i < old_size; i++) {
		if (!old[i].used)
			continue;
		struct gossip_replay *r =
		    replay_slot(s, old[i].sender, true, old[i].last_ms);
		*r = old[i];
	}
	free(old);
}

/*
 * The window of sender, created if asked. At the size limit the least
 * recently heard sender is forgotten: the table rebuilds without it.
 */
static struct gossip_replay *replay_slot(struct gossip_seal *s, uint64_t sender,
                                         bool create, uint64_t now_ms)
{
	if (!s->tab_size)
		replay_grow(s);
	uint32_t mask = s->tab_size - 1;
	for (uint32_t i = mix(sender) & mask;; i = (i + 1) & mask) {
		struct gossip_replay *r = &s->tab[i];
		if (r->used && r->sender == sender)
			return r;
		if (r->used)
			continue;
		if (!create)
			return NULL;
		if ((s->tab_count + 1) * 2 > s->tab_size) {
			if (s->tab_size < GOSSIP_REPLAY_MAX * 2) {
				replay_grow(s);
			} else {
				uint32_t oldest = 0;
				for (uint32_t j = 1; j < s->tab_size; j++)
					if (s->tab[j].used &&
					    (!s->tab[oldest].used ||
					     s->tab[j].last_ms <
					         s->tab[oldest].last_ms))
						oldest = j;
				s->tab[oldest].used = false;
				struct gossip_replay *old = s->tab;
				uint32_t size = s->tab_size;
				s->tab = xcalloc(size, sizeof(*s->tab));
				s->tab_count = 0;
				for (uint32_t j = 0; j < size; j++)
					if (old[j].used)
						*replay_slot(s, old[j].sender,
						             true, 0) = old[j];
				free(old);
			}
			return replay_slot(s, sender, true, now_ms);
		}
		memset(r, 0, sizeof(*r));
		r->used = true;
		r->sender = sender;
		s->tab_count++;
		return r;
	}
}

/* True when seq is new for r, and records it. */
static bool replay_accept(struct gossip_replay *r, uint64_t seq)
{
	if (r->top == 0 && r->bitmap == 0) {
		r->top = seq;
		r->bitmap = 1;
		return true;
	}
	if (seq > r->top) {
		uint64_t shift = seq - r->top;
		r->bitmap =
		    shift >= GOSSIP_REPLAY_WINDOW ? 0 : r->bitmap << shift;
		r->bitmap |= 1;
		r->top = seq;
		return true;
	}
	uint64_t back = r->top - seq;
	if (back >= GOSSIP_REPLAY_WINDOW)
		return false;
	if (r->bitmap & (1ULL << back))
		return false;
	r->bitmap |= 1ULL << back;
	return true;
}

/*
 * Opens pkt into plain (appended). Returns 0, or -EBADMSG with *why set to
 * the reason to count it under.
 */
int gossip_seal_unwrap(struct gossip_seal *s, const uint8_t *pkt, size_t len,
                       struct mc_buf *plain, uint64_t now_ms,
                       enum gossip_drop *why)
{
	if (len < HEADER_LEN + MC_SEAL_OVERHEAD + 1) {
		*why = GOSSIP_DROP_TRUNCATED;
		return -EBADMSG;
	}
	if (pkt[0] != SEAL_VERSION) {
		*why = GOSSIP_DROP_MALFORMED;
		return -EBADMSG;
	}
	size_t base = plain->len;
	uint32_t k;
	for (k = 0; k < s->nkeys; k++) {
		plain->len = base;
		if (mc_open(plain, s->keys[k], pkt, HEADER_LEN,
		            pkt + HEADER_LEN, len - HEADER_LEN) == 0)
			break;
	}
	if (k == s->nkeys) {
		plain->len = base;
		*why = GOSSIP_DROP_BAD_KEY;
		return -EBADMSG;
	}
	uint64_t sender = load_be64(pkt + 1);
	uint64_t seq = load_be64(pkt + 9);
	struct gossip_replay *r = replay_slot(s, sender, true, now_ms);
	r->last_ms = now_ms;
	if (seq == 0 || !replay_accept(r, seq)) {
		plain->len = base;
		*why = GOSSIP_DROP_REPLAY;
		return -EBADMSG;
	}
	return 0;
}
