#include "cloudkey.h"

#include "cloud.h"
#include "log.h"
#include "mem.h"
#include "net_int.h"
#include "peer.h"
#include "wire.h"

#include <errno.h>
#include <string.h>

static int write_ring(struct peer *p, const struct peer_keyring *ring)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 1);
	mc_pack_str(&b, "keys");
	mc_pack_array(&b, ring->n);
	for (unsigned i = 0; i < ring->n; i++)
		mc_pack_bin(&b, ring->keys[i], MC_KEY_BYTES);
	int r = peer_records_put(&p->writer, PEER_KIND_CLOUD_KEYRING, "cloud",
	                         b.data, b.len, NULL);
	mc_wipe(b.data, b.len);
	mc_buf_free(&b);
	/* Our own write installs like anyone else's. */
	if (r == 0)
		peer_cloudkey_sync(p);
	return r;
}

static void rotate_step(uv_timer_t *t)
{
	struct peer *p = t->data;
	struct peer_keyring ring = p->keyring;
	if (p->rotate_step == 1 && ring.n >= 2) {
		/* The new key (second) becomes primary; the old one stays. */
		uint8_t tmp[MC_KEY_BYTES];
		memcpy(tmp, ring.keys[0], MC_KEY_BYTES);
		memcpy(ring.keys[0], ring.keys[1], MC_KEY_BYTES);
		memcpy(ring.keys[1], tmp, MC_KEY_BYTES);
		mc_wipe(tmp, sizeof(tmp));
		mc_info("cloudkey", "rotation: the new key is now primary");
	} else if (p->rotate_step == 2) {
		ring.n = 1;
		mc_info("cloudkey", "rotation: the old key is retired");
	}
	int r = write_ring(p, &ring);
	mc_wipe(&ring, sizeof(ring));
	/* Secrets sealed under the old key must outlive its retirement. */
	if (r == 0 && p->rotate_step == 1)
		r = peer_access_keys_reseal(&p->writer, &p->keyring);
	if (r) {
		mc_error("cloudkey", "rotation step %d failed: %s",
		         p->rotate_step + 1, strerror(-r));
		p->rotate_step = 0;
		return;
	}
	if (++p->rotate_step == 3) {
		p->rotate_step = 0;
		mc_info("cloudkey", "rotation done");
		return;
	}
	uv_timer_start(&p->rotate_timer, rotate_step, PEER_ROTATE_STEP_MS, 0);
}

int peer_cloudkey_rotate(struct peer *p)
{
	if (p->rotate_step)
		return -EBUSY;
	struct peer_keyring ring = p->keyring;
	/* Keep the primary and the new key; older ones are already retired. */
	ring.n = 2;
	mc_random(ring.keys[1], MC_KEY_BYTES);
	int r = write_ring(p, &ring);
	mc_wipe(&ring, sizeof(ring));
	if (r)
		return r;
	mc_info("cloudkey", "rotation: a new key is installed as secondary");
	p->rotate_step = 1;
	if (!p->rotate_timer_ready) {
		uv_timer_init(p->loop, &p->rotate_timer);
		p->rotate_timer.data = p;
		p->rotate_timer_ready = true;
	}
	uv_timer_start(&p->rotate_timer, rotate_step, PEER_ROTATE_STEP_MS, 0);
	return 0;
}

void peer_cloudkey_stop(struct peer *p)
{
	if (p->rotate_timer_ready) {
		uv_close((uv_handle_t *)&p->rotate_timer, NULL);
		p->rotate_timer_ready = false;
	}
}

void peer_cloudkey_sync(struct peer *p)
{
	struct peer_record r;
	if (peer_store_get(p->store, PEER_KIND_CLOUD_KEYRING, "cloud", &r))
		return;
	if (r.hlc <= p->keyring_hlc || r.deleted) {
		peer_record_clear(&r);
		return;
	}
	struct peer_keyring ring = {.n = 0};
	struct mc_doc *doc = mc_unpack(r.body, r.body_len);
	const struct mc_val *keys =
	    doc ? mc_map_get(mc_doc_root(doc), "keys") : NULL;
	bool ok = keys && keys->type == MC_VAL_ARRAY && keys->v.array.n >= 1 &&
	          keys->v.array.n <= PEER_KEYRING_MAX;
	for (uint32_t i = 0; ok && i < keys->v.array.n; i++) {
		const struct mc_val *k = &keys->v.array.items[i];
		ok = k->type == MC_VAL_BIN && k->v.s.n == MC_KEY_BYTES;
		if (ok)
			memcpy(ring.keys[ring.n++], k->v.s.p, MC_KEY_BYTES);
	}
	mc_doc_free(doc);
	uint64_t stamp = r.hlc;
	mc_wipe(r.body, r.body_len);
	peer_record_clear(&r);
	if (!ok) {
		mc_error("cloudkey", "the cloud-keyring record is malformed");
		return;
	}

	/* Add before switching, switch before removing: never a gap. */
	for (unsigned i = 0; i < ring.n; i++)
		gossip_keyring_add(p->net->g, ring.keys[i]);
	gossip_keyring_use(p->net->g, ring.keys[0]);
	for (unsigned i = 0; i < p->keyring.n; i++) {
		bool kept = false;
		for (unsigned j = 0; j < ring.n; j++)
			kept |= mc_equal(p->keyring.keys[i], ring.keys[j],
			                 MC_KEY_BYTES);
		if (!kept)
			gossip_keyring_remove(p->net->g, p->keyring.keys[i]);
	}
	int e = peer_keyring_save(p->cfg.data_dir, &ring);
	if (e)
		mc_error("cloudkey", "cannot save the keyring: %s",
		         strerror(-e));
	mc_wipe(&p->keyring, sizeof(p->keyring));
	p->keyring = ring;
	p->keyring_hlc = stamp;
	mc_wipe(&ring, sizeof(ring));
	mc_info("cloudkey", "keyring installed: %u key%s", p->keyring.n,
	        p->keyring.n == 1 ? "" : "s");
}
