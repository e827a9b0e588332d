#include "record_wire.h"

#include "records.h"

#include <errno.h>
#include <string.h>

void peer_record_pack(struct mc_buf *b, const struct peer_record *r)
{
	mc_pack_map(b, 6);
	mc_pack_kv_str(b, "k", r->kind);
	mc_pack_kv_str(b, "i", r->id);
	mc_pack_kv_bin(b, "b", r->body, r->deleted ? 0 : r->body_len);
	mc_pack_kv_uint(b, "h", r->hlc);
	mc_pack_kv_str(b, "w", r->writer);
	mc_pack_kv_bool(b, "d", r->deleted);
}

static bool hex_id(const char *s)
{
	if (strlen(s) != PEER_ID_HEX_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

int peer_record_unpack(const struct mc_val *v, struct peer_record_view *out)
{
	struct peer_record *r = &out->r;
	const uint8_t *body;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (!v || v->type != MC_VAL_MAP ||
	    !mc_get_str(v, "k", out->kind, sizeof(out->kind)) ||
	    !mc_get_str(v, "i", out->id, sizeof(out->id)) ||
	    !peer_record_name_ok(out->kind) || !peer_record_name_ok(out->id) ||
	    !mc_get_bytes(v, "b", &body, &len) ||
	    !mc_get_uint(v, "h", &r->hlc) ||
	    !mc_get_str(v, "w", r->writer, sizeof(r->writer)) ||
	    !hex_id(r->writer) || !mc_get_bool(v, "d", &r->deleted) ||
	    r->hlc > (uint64_t)INT64_MAX || (r->deleted && len != 0))
		return -EINVAL;
	r->kind = out->kind;
	r->id = out->id;
	r->body = (uint8_t *)body;
	r->body_len = len;
	return 0;
}
