#include "records.h"

#include <errno.h>
#include <string.h>

int peer_writer_init(struct peer_writer *w, struct peer_store *store,
                     struct mc_hlc *clock, const char *id)
{
	uint64_t max = 0;
	int r = peer_store_max_hlc(store, &max);
	if (r)
		return r;
	w->store = store;
	w->clock = clock;
	w->id = id;
	w->published = NULL;
	w->published_arg = NULL;
	/* A stamp from our own past is never skewed; just move past it. */
	if (max > clock->last)
		clock->last = max;
	return 0;
}

bool peer_record_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

static int write_record(struct peer_writer *w, const char *kind, const char *id,
                        const void *body, size_t len, bool deleted,
                        uint64_t *stamp)
{
	if (!peer_record_name_ok(kind) || !peer_record_name_ok(id))
		return -EINVAL;
	struct peer_record r = {
	    .kind = (char *)kind,
	    .id = (char *)id,
	    .body = (uint8_t *)body,
	    .body_len = len,
	    .hlc = mc_hlc_now(w->clock, mc_wall_ms()),
	    .deleted = deleted,
	};
	memcpy(r.writer, w->id, PEER_ID_HEX_LEN);
	r.writer[PEER_ID_HEX_LEN] = '\0';
	int e = peer_store_apply(w->store, &r, NULL);
	if (e)
		return e;
	if (stamp)
		*stamp = r.hlc;
	if (w->published)
		w->published(w->published_arg, &r);
	return 0;
}

int peer_records_put(struct peer_writer *w, const char *kind, const char *id,
                     const void *body, size_t len, uint64_t *stamp)
{
	return write_record(w, kind, id, body, len, false, stamp);
}

int peer_records_delete(struct peer_writer *w, const char *kind, const char *id,
                        uint64_t *stamp)
{
	return write_record(w, kind, id, "", 0, true, stamp);
}
