/*
 * Gossip messages on the wire. A packet is the msgpack map
 * {"v": 1, "m": [msg, ...]}; each message is a map with a type "t" and short
 * keys. Decoding checks every field's type, size and range; fields it does
 * not know are skipped and message types it does not know are ignored, so
 * versions can mix.
 */
#include "gossip_int.h"

#include <errno.h>
#include <string.h>

#define WIRE_VERSION 1

static void pack_id(struct mc_buf *b, const char *k, uint64_t key)
{
	uint8_t raw[8];
	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(key >> (56 - 8 * i));
	mc_pack_kv_bin(b, k, raw, sizeof(raw));
}

static void pack_addr(struct mc_buf *b, const char *k, const struct mc_addr *a)
{
	char text[64];
	mc_addr_format(a, text, sizeof(text));
	mc_pack_kv_str(b, k, text);
}

void gossip_enc_envelope(struct mc_buf *b, uint32_t nmsgs)
{
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "v", WIRE_VERSION);
	mc_pack_str(b, "m");
	mc_pack_array(b, nmsgs);
}

/* A quiet ping asks for a bare ack, with no broadcasts riding on it. */
void gossip_enc_ping(struct mc_buf *b, uint32_t seq, uint64_t target,
                     bool quiet)
{
	mc_pack_map(b, quiet ? 4 : 3);
	mc_pack_kv_uint(b, "t", GOSSIP_MSG_PING);
	mc_pack_kv_uint(b, "s", seq);
	pack_id(b, "n", target);
	if (quiet)
		mc_pack_kv_bool(b, "q", true);
}

/* ack and nack */
void gossip_enc_seq(struct mc_buf *b, enum gossip_msg_type t, uint32_t seq)
{
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "t", t);
	mc_pack_kv_uint(b, "s", seq);
}

void gossip_enc_ping_req(struct mc_buf *b, uint32_t seq, uint64_t target,
                         const struct mc_addr *addr, bool want_nack)
{
	mc_pack_map(b, 5);
	mc_pack_kv_uint(b, "t", GOSSIP_MSG_PING_REQ);
	mc_pack_kv_uint(b, "s", seq);
	pack_id(b, "n", target);
	pack_addr(b, "a", addr);
	mc_pack_kv_bool(b, "k", want_nack);
}

/* An alive message; with state >= 0, a snapshot entry. */
void gossip_enc_alive(struct mc_buf *b, uint32_t inc,
                      const struct gossip_node *n, int state)
{
	mc_pack_map(b, state >= 0 ? 12 : 11);
	mc_pack_kv_uint(b, "t", GOSSIP_MSG_ALIVE);
	mc_pack_kv_uint(b, "i", inc);
	pack_id(b, "n", gossip_id_key(n->id));
	mc_pack_kv_str(b, "nm", n->name);
	pack_addr(b, "a", &n->addr);
	mc_pack_kv_str(b, "z", n->zone);
	mc_pack_kv_uint(b, "r", n->roles);
	mc_pack_str(b, "c");
	mc_pack_array(b, 6);
	mc_pack_uint(b, n->cap.vcpu_total);
	mc_pack_uint(b, n->cap.vcpu_free);
	mc_pack_uint(b, n->cap.mem_mib_total);
	mc_pack_uint(b, n->cap.mem_mib_free);
	mc_pack_uint(b, n->cap.disk_mib_total);
	mc_pack_uint(b, n->cap.disk_mib_free);
	mc_pack_kv_bin(b, "sk", n->sign_pk, sizeof(n->sign_pk));
	mc_pack_kv_bin(b, "bk", n->box_pk, sizeof(n->box_pk));
	mc_pack_kv_str(b, "v", n->version);
	if (state >= 0)
		mc_pack_kv_uint(b, "st", (uint64_t)state);
}

/* suspect and dead */
void gossip_enc_accuse(struct mc_buf *b, enum gossip_msg_type t, uint32_t inc,
                       uint64_t node, uint64_t from)
{
	mc_pack_map(b, 4);
	mc_pack_kv_uint(b, "t", t);
	mc_pack_kv_uint(b, "i", inc);
	pack_id(b, "n", node);
	pack_id(b, "f", from);
}

void gossip_enc_user(struct mc_buf *b, const char *key, const uint8_t *body,
                     size_t len)
{
	mc_pack_map(b, 3);
	mc_pack_kv_uint(b, "t", GOSSIP_MSG_USER);
	mc_pack_kv_str(b, "k", key);
	mc_pack_kv_bin(b, "b", body, len);
}

static bool get_u32(const struct mc_val *m, const char *k, uint32_t *out)
{
	uint64_t v;
	if (!mc_get_uint(m, k, &v) || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool get_id(const struct mc_val *m, const char *k, uint64_t *out)
{
	const struct mc_val *v = mc_map_get(m, k);
	if (!v || v->type != MC_VAL_BIN || v->v.s.n != 8)
		return false;
	uint64_t key = 0;
	for (int i = 0; i < 8; i++)
		key = key << 8 | (uint8_t)v->v.s.p[i];
	*out = key;
	return true;
}

static bool get_addr(const struct mc_val *m, const char *k, struct mc_addr *out)
{
	char text[64];
	if (!mc_get_str(m, k, text, sizeof(text)))
		return false;
	return mc_addr_parse(out, text, 0) == 0;
}

/* An absent key is all zeros; a present one must be 32 bytes. */
static bool get_pk(const struct mc_val *m, const char *k, uint8_t out[32])
{
	const struct mc_val *v = mc_map_get(m, k);
	if (!v)
		return true;
	if (v->type != MC_VAL_BIN || v->v.s.n != 32)
		return false;
	memcpy(out, v->v.s.p, 32);
	return true;
}

/* Optional strings must fit when present. */
static bool get_opt_str(const struct mc_val *m, const char *k, char *out,
                        size_t size)
{
	if (!mc_map_get(m, k))
		return true;
	return mc_get_str(m, k, out, size);
}

static bool get_capacity(const struct mc_val *m, struct gossip_capacity *c)
{
	const struct mc_val *v = mc_map_get(m, "c");
	if (!v)
		return true;
	if (v->type != MC_VAL_ARRAY || v->v.array.n < 6)
		return false;
	const struct mc_val *it = v->v.array.items;
	for (int i = 0; i < 6; i++)
		if (it[i].type != MC_VAL_UINT)
			return false;
	if (it[0].v.u > UINT32_MAX || it[1].v.u > UINT32_MAX)
		return false;
	c->vcpu_total = (uint32_t)it[0].v.u;
	c->vcpu_free = (uint32_t)it[1].v.u;
	c->mem_mib_total = it[2].v.u;
	c->mem_mib_free = it[3].v.u;
	c->disk_mib_total = it[4].v.u;
	c->disk_mib_free = it[5].v.u;
	return true;
}

static bool dec_alive(const struct mc_val *v, struct gossip_msg *m)
{
	struct gossip_node *n = &m->info;
	uint64_t key;
	uint64_t st;

	if (!get_u32(v, "i", &m->incarnation) || !get_id(v, "n", &key) ||
	    !get_addr(v, "a", &n->addr))
		return false;
	m->node = key;
	gossip_key_id(key, n->id);
	if (!get_opt_str(v, "nm", n->name, sizeof(n->name)) ||
	    !get_opt_str(v, "z", n->zone, sizeof(n->zone)) ||
	    !get_opt_str(v, "v", n->version, sizeof(n->version)) ||
	    !get_capacity(v, &n->cap) || !get_pk(v, "sk", n->sign_pk) ||
	    !get_pk(v, "bk", n->box_pk))
		return false;
	if (mc_map_get(v, "r") && !get_u32(v, "r", &n->roles))
		return false;
	if (mc_get_uint(v, "st", &st)) {
		if (st > GOSSIP_LEFT)
			return false;
		m->state = (uint8_t)st;
	}
	return true;
}

/*
 * Decodes one message. Returns 0, 1 for a well-formed message of a type we
 * do not know (to skip), or -EBADMSG.
 */
int gossip_dec_msg(const struct mc_val *v, struct gossip_msg *m)
{
	uint64_t t;

	memset(m, 0, sizeof(*m));
	if (!v || v->type != MC_VAL_MAP || !mc_get_uint(v, "t", &t))
		return -EBADMSG;
	if (t == 0 || t >= GOSSIP_MSG_MAX)
		return 1;
	m->type = (enum gossip_msg_type)t;
	switch (m->type) {
	case GOSSIP_MSG_PING:
		if (!get_u32(v, "s", &m->seq) || !get_id(v, "n", &m->node))
			return -EBADMSG;
		if (mc_map_get(v, "q") && !mc_get_bool(v, "q", &m->quiet))
			return -EBADMSG;
		return 0;
	case GOSSIP_MSG_ACK:
	case GOSSIP_MSG_NACK:
		return get_u32(v, "s", &m->seq) ? 0 : -EBADMSG;
	case GOSSIP_MSG_PING_REQ:
		if (!get_u32(v, "s", &m->seq) || !get_id(v, "n", &m->node) ||
		    !get_addr(v, "a", &m->addr))
			return -EBADMSG;
		if (mc_map_get(v, "k") && !mc_get_bool(v, "k", &m->want_nack))
			return -EBADMSG;
		return 0;
	case GOSSIP_MSG_ALIVE:
		return dec_alive(v, m) ? 0 : -EBADMSG;
	case GOSSIP_MSG_SUSPECT:
	case GOSSIP_MSG_DEAD:
		if (!get_u32(v, "i", &m->incarnation) ||
		    !get_id(v, "n", &m->node) || !get_id(v, "f", &m->from))
			return -EBADMSG;
		return 0;
	case GOSSIP_MSG_USER:
		if (!mc_get_str(v, "k", m->ukey, sizeof(m->ukey)) ||
		    m->ukey[0] == '\0' ||
		    !mc_get_bytes(v, "b", &m->body, &m->body_len) ||
		    m->body_len > GOSSIP_USER_MAX)
			return -EBADMSG;
		return 0;
	default:
		return 1;
	}
}

/* Finds the message array of a packet or snapshot; -EBADMSG otherwise. */
int gossip_dec_envelope(const struct mc_val *root, const struct mc_val **msgs,
                        uint32_t *n)
{
	uint64_t version;

	if (!root || root->type != MC_VAL_MAP ||
	    !mc_get_uint(root, "v", &version) || version != WIRE_VERSION)
		return -EBADMSG;
	const struct mc_val *m = mc_map_get(root, "m");
	if (!m || m->type != MC_VAL_ARRAY)
		return -EBADMSG;
	*msgs = m->v.array.items;
	*n = m->v.array.n;
	return 0;
}
