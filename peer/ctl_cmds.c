/* What the control socket answers: status and the record commands. */
#include "peer.h"

#include "cloudkey.h"
#include "hostnet.h"
#include "images_int.h"
#include "instances.h"
#include "log.h"
#include "mem.h"
#include "overlay.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MALLEE_VERSION_STRING MALLEE_VERSION

static unsigned role_count(const struct peer *p)
{
	return (unsigned)p->cfg.edge + (unsigned)p->cfg.gateway;
}

static void pack_roles(struct mc_buf *b, const struct peer *p)
{
	mc_pack_str(b, "roles");
	mc_pack_array(b, role_count(p));
	if (p->cfg.edge)
		mc_pack_str(b, "edge");
	if (p->cfg.gateway)
		mc_pack_str(b, "gateway");
}

static void pack_capacity(struct mc_buf *b, const struct peer_capacity *c)
{
	mc_pack_str(b, "capacity");
	mc_pack_map(b, 3);
	mc_pack_str(b, "vcpu");
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "total", c->vcpu_total);
	mc_pack_kv_uint(b, "free", c->vcpu_free);
	mc_pack_str(b, "memory_mib");
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "total", c->memory_mib_total);
	mc_pack_kv_uint(b, "free", c->memory_mib_free);
	mc_pack_str(b, "disk_mib");
	mc_pack_map(b, 2);
	mc_pack_kv_uint(b, "total", c->disk_mib_total);
	mc_pack_kv_uint(b, "free", c->disk_mib_free);
}

static void cmd_status(struct peer *p, struct mc_buf *reply)
{
	uint64_t records = 0;
	peer_instances_capacity(p);
	peer_store_count(p->store, NULL, &records);

	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_str(reply, "status");
	mc_pack_map(reply, 3);

	mc_pack_str(reply, "self");
	mc_pack_map(reply, 18);
	mc_pack_kv_str(reply, "id", p->id);
	mc_pack_kv_str(reply, "name", p->cfg.name);
	mc_pack_kv_str(reply, "zone", p->cfg.zone);
	mc_pack_kv_str(reply, "region", p->region);
	mc_pack_kv_str(reply, "cloud", p->cloud_id);
	mc_pack_kv_str(reply, "cidr", p->cidr);
	pack_roles(reply, p);
	mc_pack_kv_str(reply, "addr", p->advertise);
	mc_pack_kv_str(reply, "listen", p->cfg.listen);
	mc_pack_kv_str(reply, "api", p->cfg.edge ? p->cfg.api_listen : "");
	mc_pack_kv_str(reply, "version", MALLEE_VERSION_STRING);
	mc_pack_kv_uint(reply, "pid", (uint64_t)getpid());
	mc_pack_kv_uint(reply, "uptime_s",
	                (mc_wall_ms() - p->started_ms) / 1000);
	mc_pack_kv_uint(reply, "records", records);
	uint8_t digest[16];
	char hex[33];
	peer_store_digest_total(p->store, digest);
	mc_hex_encode(hex, digest, sizeof(digest));
	mc_pack_kv_str(reply, "records_digest", hex);
	pack_capacity(reply, &p->capacity);
	peer_hostnet_pack_status(p, reply);
	peer_overlay_pack_status(p, reply);

	peer_net_pack_members(p->net, reply);
	peer_net_pack_counters(p->net, reply);
}

/* Pulls "kind" and "id" out of a request, checked. */
static bool get_kind_id(const struct mc_val *req, char *kind, char *id,
                        struct mc_buf *reply)
{
	if (!mc_get_str(req, "kind", kind, 129) || !peer_record_name_ok(kind)) {
		peer_ctl_reply_error(reply, "kind must be 1-128 printable "
		                            "characters without spaces");
		return false;
	}
	if (id &&
	    (!mc_get_str(req, "id", id, 129) || !peer_record_name_ok(id))) {
		peer_ctl_reply_error(reply, "id must be 1-128 printable "
		                            "characters without spaces");
		return false;
	}
	return true;
}

static void reply_stamp(struct mc_buf *reply, uint64_t stamp)
{
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_uint(reply, "hlc", stamp);
}

static void cmd_record_put(struct peer *p, const struct mc_val *req,
                           struct mc_buf *reply)
{
	char kind[129], id[129];
	const uint8_t *body;
	size_t len;
	uint64_t stamp;
	if (!get_kind_id(req, kind, id, reply))
		return;
	if (!mc_get_bytes(req, "body", &body, &len)) {
		peer_ctl_reply_error(reply, "missing body");
		return;
	}
	int r = peer_records_put(&p->writer, kind, id, body, len, &stamp);
	if (r) {
		peer_ctl_reply_error(reply, "cannot write %s/%s: %s", kind, id,
		                     strerror(-r));
		return;
	}
	reply_stamp(reply, stamp);
}

/*
 * Bulk load for operators and benchmarks: one transaction, fresh stamps, no
 * broadcast per record (gossip's queue would drown); the records spread to
 * the other peers by anti-entropy instead.
 */
static void cmd_record_load(struct peer *p, const struct mc_val *req,
                            struct mc_buf *reply)
{
	const struct mc_val *list = mc_map_get(req, "records");
	if (!list || list->type != MC_VAL_ARRAY) {
		peer_ctl_reply_error(reply, "missing records");
		return;
	}
	uint32_t n = list->v.array.n;
	struct peer_record *rs = xcalloc(n + 1, sizeof(*rs));
	char(*names)[2][129] = xcalloc(n + 1, sizeof(*names));
	uint32_t i;
	for (i = 0; i < n; i++) {
		const struct mc_val *e = &list->v.array.items[i];
		const struct mc_val *it = e->v.array.items;
		if (e->type != MC_VAL_ARRAY || e->v.array.n != 3 ||
		    it[0].type != MC_VAL_STR || it[0].v.s.n > 128 ||
		    it[1].type != MC_VAL_STR || it[1].v.s.n > 128 ||
		    (it[2].type != MC_VAL_BIN && it[2].type != MC_VAL_STR))
			break;
		memcpy(names[i][0], it[0].v.s.p, it[0].v.s.n);
		memcpy(names[i][1], it[1].v.s.p, it[1].v.s.n);
		if (!peer_record_name_ok(names[i][0]) ||
		    !peer_record_name_ok(names[i][1]))
			break;
		rs[i].kind = names[i][0];
		rs[i].id = names[i][1];
		rs[i].body = (uint8_t *)it[2].v.s.p;
		rs[i].body_len = it[2].v.s.n;
		rs[i].hlc = mc_hlc_now(&p->clock, mc_wall_ms());
		memcpy(rs[i].writer, p->id, sizeof(rs[i].writer));
	}
	size_t applied = 0;
	int r =
	    i < n ? -EINVAL : peer_store_apply_batch(p->store, rs, n, &applied);
	free(rs);
	free(names);
	if (r) {
		peer_ctl_reply_error(reply, "cannot load: %s",
		                     r == -EINVAL ? "malformed record"
		                                  : strerror(-r));
		return;
	}
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_uint(reply, "loaded", applied);
}

static void cmd_record_delete(struct peer *p, const struct mc_val *req,
                              struct mc_buf *reply)
{
	char kind[129], id[129];
	uint64_t stamp;
	if (!get_kind_id(req, kind, id, reply))
		return;
	int r = peer_records_delete(&p->writer, kind, id, &stamp);
	if (r) {
		peer_ctl_reply_error(reply, "cannot delete %s/%s: %s", kind, id,
		                     strerror(-r));
		return;
	}
	reply_stamp(reply, stamp);
}

static void pack_record(struct mc_buf *b, const struct peer_record *r)
{
	mc_pack_map(b, 6);
	mc_pack_kv_str(b, "kind", r->kind);
	mc_pack_kv_str(b, "id", r->id);
	mc_pack_kv_bin(b, "body", r->body, r->body_len);
	mc_pack_kv_uint(b, "hlc", r->hlc);
	mc_pack_kv_str(b, "writer", r->writer);
	mc_pack_kv_bool(b, "deleted", r->deleted);
}

static void cmd_record_get(struct peer *p, const struct mc_val *req,
                           struct mc_buf *reply)
{
	char kind[129], id[129];
	struct peer_record r;
	if (!get_kind_id(req, kind, id, reply))
		return;
	int e = peer_store_get(p->store, kind, id, &r);
	if (e == -ENOENT || (e == 0 && r.deleted)) {
		if (e == 0)
			peer_record_clear(&r);
		peer_ctl_reply_error(reply, "no record %s/%s", kind, id);
		return;
	}
	if (e) {
		peer_ctl_reply_error(reply, "cannot read %s/%s: %s", kind, id,
		                     strerror(-e));
		return;
	}
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_str(reply, "record");
	pack_record(reply, &r);
	peer_record_clear(&r);
}

struct list_state {
	struct mc_buf items;
	uint32_t n;
};

static int list_one(const struct peer_record *r, void *arg)
{
	struct list_state *s = arg;
	pack_record(&s->items, r);
	s->n++;
	return 0;
}

static void cmd_record_list(struct peer *p, const struct mc_val *req,
                            struct mc_buf *reply)
{
	char kind[129];
	bool all = !mc_map_get(req, "kind");
	if (!all && !get_kind_id(req, kind, NULL, reply))
		return;
	struct list_state s = {.n = 0};
	mc_buf_init(&s.items);
	int e =
	    peer_store_list(p->store, all ? NULL : kind, false, list_one, &s);
	if (e) {
		peer_ctl_reply_error(reply, "cannot list records: %s",
		                     strerror(-e));
	} else {
		mc_pack_map(reply, 2);
		mc_pack_kv_bool(reply, "ok", true);
		mc_pack_str(reply, "records");
		mc_pack_array(reply, s.n);
		mc_buf_append(reply, s.items.data, s.items.len);
	}
	mc_buf_free(&s.items);
}

static void cmd_key_rotate(struct peer *p, struct mc_buf *reply)
{
	int r = peer_cloudkey_rotate(p);
	if (r == -EBUSY) {
		peer_ctl_reply_error(reply, "a key rotation is already under "
		                            "way");
		return;
	}
	if (r) {
		peer_ctl_reply_error(reply, "cannot rotate the cloud key: %s",
		                     strerror(-r));
		return;
	}
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_uint(reply, "step_ms", PEER_ROTATE_STEP_MS);
}

void peer_ctl_dispatch(void *arg, const struct mc_val *req,
                       struct mc_buf *reply)
{
	struct peer *p = arg;
	const struct mc_val *cmd = mc_map_get(req, "cmd");

	if (mc_val_is_str(cmd, "status"))
		cmd_status(p, reply);
	else if (mc_val_is_str(cmd, "record-put"))
		cmd_record_put(p, req, reply);
	else if (mc_val_is_str(cmd, "record-load"))
		cmd_record_load(p, req, reply);
	else if (mc_val_is_str(cmd, "record-delete"))
		cmd_record_delete(p, req, reply);
	else if (mc_val_is_str(cmd, "record-get"))
		cmd_record_get(p, req, reply);
	else if (mc_val_is_str(cmd, "record-list"))
		cmd_record_list(p, req, reply);
	else if (mc_val_is_str(cmd, "account-create"))
		peer_cmd_account_create(p, req, reply);
	else if (mc_val_is_str(cmd, "key-create"))
		peer_cmd_key_create(p, req, reply);
	else if (mc_val_is_str(cmd, "key-list"))
		peer_cmd_key_list(p, req, reply);
	else if (mc_val_is_str(cmd, "key-revoke"))
		peer_cmd_key_revoke(p, req, reply);
	else if (mc_val_is_str(cmd, "key-rotate"))
		cmd_key_rotate(p, reply);
	else if (mc_val_is_str(cmd, "ping"))
		peer_cmd_ping(p, req, reply);
	else if (mc_val_is_str(cmd, "ping-result"))
		peer_cmd_ping_result(p, req, reply);
	else if (mc_val_is_str(cmd, "hostnet-lease"))
		peer_cmd_hostnet_lease(p, req, reply);
	else if (mc_val_is_str(cmd, "image-import"))
		images_cmd_import(p, req, reply);
	else if (mc_val_is_str(cmd, "image-pull"))
		images_cmd_pull(p, req, reply);
	else if (mc_val_is_str(cmd, "image-job"))
		images_cmd_job(p, req, reply);
	else if (mc_val_is_str(cmd, "image-list"))
		images_cmd_list(p, req, reply);
	else if (mc_val_is_str(cmd, "image-gc"))
		images_cmd_gc(p, req, reply);
	else
		peer_ctl_reply_error(reply, "unknown command");
}
