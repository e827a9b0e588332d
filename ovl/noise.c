/*
 * The handshake, after Noise IK as WireGuard uses it, with BLAKE2b for the
 * hash and the key derivation: the initiator knows the responder's static
 * key, sends its own static key encrypted under an ephemeral DH, and proves
 * it holds both; one response later both sides share two transport keys.
 * An encrypted TAI64N timestamp in the initiation stops replays of it, and a
 * MAC keyed by the responder's public key lets a host drop junk before any
 * DH. This is the one file of ovl/ that includes sodium.h.
 *
 * Every consumer works on copies of the chaining key and hash and commits
 * them only once the message has authenticated, so a forged message leaves
 * the state as it was.
 */
#include "ovl_int.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

static const char construction[] = "Noise_IK_25519_ChaChaPoly_BLAKE2b";
static const char identifier[] = "mallee overlay v1";
static const char mac1_label[] = "mac1----";

static void hash2(uint8_t out[32], const void *a, size_t alen, const void *b,
                  size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, a, alen);
	crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, 32);
}

static void mix_hash(uint8_t h[32], const void *in, size_t n)
{
	hash2(h, h, 32, in, n);
}

/* HKDF with keyed BLAKE2b as the PRF: up to three 32-byte outputs. */
static void kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t key[32],
                const void *in, size_t n)
{
	uint8_t prk[32], t[33];

	crypto_generichash(prk, 32, in, n, key, 32);
	t[0] = 1;
	crypto_generichash(t, 32, t, 1, prk, 32);
	if (t1)
		memcpy(t1, t, 32);
	if (t2 || t3) {
		t[32] = 2;
		crypto_generichash(t, 32, t, 33, prk, 32);
		if (t2)
			memcpy(t2, t, 32);
	}
	if (t3) {
		t[32] = 3;
		crypto_generichash(t, 32, t, 33, prk, 32);
		memcpy(t3, t, 32);
	}
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
}

static const uint8_t zero_nonce[12];

static void hs_seal(uint8_t *out, const uint8_t key[32], const uint8_t h[32],
                    const void *msg, size_t n)
{
	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, msg, n, h, 32,
	                                          NULL, zero_nonce, key);
}

static bool hs_open(uint8_t *out, const uint8_t key[32], const uint8_t h[32],
                    const uint8_t *sealed, size_t n)
{
	return crypto_aead_chacha20poly1305_ietf_decrypt(
	           out, NULL, NULL, sealed, n, h, 32, zero_nonce, key) == 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void mac1(uint8_t out[16], const uint8_t key[32], const uint8_t *msg,
                 size_t n)
{
	crypto_generichash(out, 16, msg, n, key, 32);
}

static bool mac1_ok(const uint8_t key[32], const uint8_t *msg, size_t n)
{
	uint8_t want[16];

	mac1(want, key, msg, n - 16);
	return crypto_verify_16(want, msg + n - 16) == 0;
}

void ovl_noise_mac1_key(uint8_t out[32], const uint8_t pk[OVL_KEY_BYTES])
{
	hash2(out, mac1_label, 8, pk, OVL_KEY_BYTES);
}

bool ovl_noise_dh(uint8_t out[32], const uint8_t sk[32], const uint8_t pk[32])
{
	/* libsodium refuses low-order points (an all-zero result). */
	return crypto_scalarmult_curve25519(out, sk, pk) == 0;
}

void ovl_noise_keypair(uint8_t sk[32], uint8_t pk[32])
{
	randombytes_buf(sk, 32);
	crypto_scalarmult_curve25519_base(pk, sk);
}

void ovl_noise_public(uint8_t pk[32], const uint8_t sk[32])
{
	crypto_scalarmult_curve25519_base(pk, sk);
}

void ovl_peer_id(const uint8_t pk[OVL_KEY_BYTES],
                 uint8_t out[OVL_PEER_ID_BYTES])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof(h), pk, OVL_KEY_BYTES, NULL, 0);
	memcpy(out, h, OVL_PEER_ID_BYTES);
}

uint32_t ovl_noise_random_index(void)
{
	return randombytes_random();
}

void ovl_noise_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

/* Chaining key and hash at the start of every handshake to responder pk. */
static void hs_begin(uint8_t chain[32], uint8_t h[32],
                     const uint8_t responder_pk[32])
{
	crypto_generichash(chain, 32, (const uint8_t *)construction,
	                   sizeof(construction) - 1, NULL, 0);
	hash2(h, chain, 32, identifier, sizeof(identifier) - 1);
	mix_hash(h, responder_pk, 32);
}

/* TAI64N: seconds since 1970 + 2^62, then nanoseconds, big-endian. */
static void tai64n(uint8_t out[12], uint64_t wall_ns)
{
	uint64_t s = (1ull << 62) + wall_ns / 1000000000u;
	uint32_t ns = (uint32_t)(wall_ns % 1000000000u);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(s >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(ns >> (24 - 8 * i));
}

int ovl_noise_create_initiation(struct ovl_core *core, struct ovl_tunnel *t,
                                uint64_t wall_ns, uint8_t *out)
{
	struct ovl_handshake *hs = &t->hs;
	uint8_t key[32], dh[32], ts[12];
	int rc = 0;

	hs_begin(hs->chain, hs->hash, t->remote_pk);
	ovl_noise_keypair(hs->eph_sk, hs->eph_pk);
	memset(out, 0, OVL_INITIATION_LEN);
	out[0] = OVL_TYPE_INITIATION;
	put_le32(out + 4, hs->local_index);
	memcpy(out + 8, hs->eph_pk, 32);
	kdf(hs->chain, NULL, NULL, hs->chain, hs->eph_pk, 32);
	mix_hash(hs->hash, hs->eph_pk, 32);

	if (!ovl_noise_dh(dh, hs->eph_sk, t->remote_pk)) {
		rc = -EINVAL;
		goto out_wipe;
	}
	kdf(hs->chain, key, NULL, hs->chain, dh, 32);
	hs_seal(out + 40, key, hs->hash, core->pk, 32);
	mix_hash(hs->hash, out + 40, 48);

	kdf(hs->chain, key, NULL, hs->chain, t->ss, 32);
	tai64n(ts, wall_ns);
	hs_seal(out + 88, key, hs->hash, ts, 12);
	mix_hash(hs->hash, out + 88, 28);

	mac1(out + 116, t->mac1_key, out, 116);
	ovl_hs_set_state(t, OVL_HS_INIT_SENT);
	rc = OVL_INITIATION_LEN;
out_wipe:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(dh, sizeof(dh));
	return rc;
}

struct ovl_tunnel *ovl_noise_consume_initiation(struct ovl_core *core,
                                                const uint8_t *msg, size_t len,
                                                enum ovl_drop *drop)
{
	uint8_t chain[32], h[32], key[32], dh[32], spk[32], ts[12];
	struct ovl_tunnel *t = NULL;

	if (len != OVL_INITIATION_LEN) {
		*drop = OVL_DROP_BAD_LENGTH;
		return NULL;
	}
	if (!mac1_ok(core->mac1_key, msg, len)) {
		*drop = OVL_DROP_BAD_MAC;
		return NULL;
	}
	hs_begin(chain, h, core->pk);
	kdf(chain, NULL, NULL, chain, msg + 8, 32);
	mix_hash(h, msg + 8, 32);
	*drop = OVL_DROP_DECRYPT;
	if (!ovl_noise_dh(dh, core->sk, msg + 8))
		goto out_wipe;
	kdf(chain, key, NULL, chain, dh, 32);
	if (!hs_open(spk, key, h, msg + 40, 48))
		goto out_wipe;
	mix_hash(h, msg + 40, 48);

	t = ovl_core_find_peer(core, spk);
	if (!t) {
		*drop = OVL_DROP_UNKNOWN_PEER;
		goto out_wipe;
	}
	kdf(chain, key, NULL, chain, t->ss, 32);
	if (!hs_open(ts, key, h, msg + 88, 28)) {
		t = NULL;
		goto out_wipe;
	}
	mix_hash(h, msg + 88, 28);
	if (memcmp(ts, t->last_timestamp, 12) <= 0) {
		*drop = OVL_DROP_HANDSHAKE_REPLAY;
		t = NULL;
		goto out_wipe;
	}
	/* Initiations crossed: the side with the greater key keeps its own. */
	if (t->hs.state == OVL_HS_INIT_SENT &&
	    memcmp(core->pk, t->remote_pk, OVL_KEY_BYTES) > 0) {
		*drop = OVL_DROP_HANDSHAKE_CROSSED;
		t = NULL;
		goto out_wipe;
	}
	memcpy(t->last_timestamp, ts, 12);
	ovl_hs_set_state(t, OVL_HS_INIT_RECEIVED);
	t->hs.remote_index = get_le32(msg + 4);
	memcpy(t->hs.remote_eph, msg + 8, 32);
	memcpy(t->hs.chain, chain, 32);
	memcpy(t->hs.hash, h, 32);
out_wipe:
	sodium_memzero(chain, sizeof(chain));
	sodium_memzero(key, sizeof(key));
	sodium_memzero(dh, sizeof(dh));
	return t;
}

int ovl_noise_create_response(struct ovl_core *core, struct ovl_tunnel *t,
                              uint8_t *out)
{
	struct ovl_handshake *hs = &t->hs;
	uint8_t key[32], dh[32];
	int rc = -EINVAL;

	(void)core;
	ovl_noise_keypair(hs->eph_sk, hs->eph_pk);
	memset(out, 0, OVL_RESPONSE_LEN);
	out[0] = OVL_TYPE_RESPONSE;
	put_le32(out + 4, hs->local_index);
	put_le32(out + 8, hs->remote_index);
	memcpy(out + 12, hs->eph_pk, 32);
	kdf(hs->chain, NULL, NULL, hs->chain, hs->eph_pk, 32);
	mix_hash(hs->hash, hs->eph_pk, 32);
	if (!ovl_noise_dh(dh, hs->eph_sk, hs->remote_eph))
		goto out_wipe;
	kdf(hs->chain, NULL, NULL, hs->chain, dh, 32);
	if (!ovl_noise_dh(dh, hs->eph_sk, t->remote_pk))
		goto out_wipe;
	kdf(hs->chain, NULL, NULL, hs->chain, dh, 32);
	kdf(hs->chain, key, NULL, hs->chain, NULL, 0);
	hs_seal(out + 44, key, hs->hash, NULL, 0);
	mix_hash(hs->hash, out + 44, 16);
	mac1(out + 60, t->mac1_key, out, 60);
	rc = OVL_RESPONSE_LEN;
out_wipe:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(dh, sizeof(dh));
	return rc;
}

struct ovl_tunnel *ovl_noise_consume_response(struct ovl_core *core,
                                              const uint8_t *msg, size_t len,
                                              enum ovl_drop *drop)
{
	uint8_t chain[32], h[32], key[32], dh[32], empty[1];
	struct ovl_session *slot;
	struct ovl_tunnel *t = NULL;

	if (len != OVL_RESPONSE_LEN) {
		*drop = OVL_DROP_BAD_LENGTH;
		return NULL;
	}
	if (!mac1_ok(core->mac1_key, msg, len)) {
		*drop = OVL_DROP_BAD_MAC;
		return NULL;
	}
	slot = ovl_index_find(core, get_le32(msg + 8));
	if (!slot || slot->keyed || slot->tunnel->hs.index_slot != slot ||
	    slot->tunnel->hs.state != OVL_HS_INIT_SENT) {
		*drop = OVL_DROP_UNKNOWN_INDEX;
		return NULL;
	}
	struct ovl_handshake *hs = &slot->tunnel->hs;

	*drop = OVL_DROP_DECRYPT;
	memcpy(chain, hs->chain, 32);
	memcpy(h, hs->hash, 32);
	kdf(chain, NULL, NULL, chain, msg + 12, 32);
	mix_hash(h, msg + 12, 32);
	if (!ovl_noise_dh(dh, hs->eph_sk, msg + 12))
		goto out_wipe;
	kdf(chain, NULL, NULL, chain, dh, 32);
	if (!ovl_noise_dh(dh, core->sk, msg + 12))
		goto out_wipe;
	kdf(chain, NULL, NULL, chain, dh, 32);
	kdf(chain, key, NULL, chain, NULL, 0);
	if (!hs_open(empty, key, h, msg + 44, 16))
		goto out_wipe;
	mix_hash(h, msg + 44, 16);
	t = slot->tunnel;
	hs->remote_index = get_le32(msg + 4);
	memcpy(hs->chain, chain, 32);
	memcpy(hs->hash, h, 32);
out_wipe:
	sodium_memzero(chain, sizeof(chain));
	sodium_memzero(key, sizeof(key));
	sodium_memzero(dh, sizeof(dh));
	return t;
}

void ovl_noise_derive(struct ovl_handshake *hs, struct ovl_session *s)
{
	uint8_t t1[32], t2[32];

	kdf(t1, t2, NULL, hs->chain, NULL, 0);
	memcpy(s->send_key, s->initiator ? t1 : t2, 32);
	memcpy(s->recv_key, s->initiator ? t2 : t1, 32);
	s->remote_index = hs->remote_index;
	s->keyed = true;
	sodium_memzero(t1, sizeof(t1));
	sodium_memzero(t2, sizeof(t2));
	sodium_memzero(hs->chain, sizeof(hs->chain));
	sodium_memzero(hs->hash, sizeof(hs->hash));
	sodium_memzero(hs->eph_sk, sizeof(hs->eph_sk));
	sodium_memzero(hs->remote_eph, sizeof(hs->remote_eph));
	hs->index_slot = NULL;
}

/* Transport AEAD: the 16-byte header is the associated data. */
static void transport_nonce(uint8_t nonce[12], uint64_t counter)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

void ovl_aead_seal(uint8_t *pkt, size_t len, const uint8_t key[32],
                   uint64_t counter)
{
	uint8_t nonce[12];

	transport_nonce(nonce, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(
	    pkt + OVL_HEADER_LEN, pkt + OVL_HEADER_LEN + len, NULL,
	    pkt + OVL_HEADER_LEN, len, pkt, OVL_HEADER_LEN, NULL, nonce, key);
}

bool ovl_aead_open(uint8_t *pkt, size_t len, const uint8_t key[32],
                   uint64_t counter)
{
	uint8_t nonce[12];

	/* len counts the ciphertext without the tag. */
	transport_nonce(nonce, counter);
	return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
	           pkt + OVL_HEADER_LEN, NULL, pkt + OVL_HEADER_LEN, len,
	           pkt + OVL_HEADER_LEN + len, pkt, OVL_HEADER_LEN, nonce,
	           key) == 0;
}
