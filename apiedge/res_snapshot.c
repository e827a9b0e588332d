/*
 * A copy of the account's records of one kind. The store walks a list with
 * one prepared statement, so a list's callback cannot list again (the
 * peer's store answers -EBUSY): a describe that loads each resource's tags
 * takes a snapshot first and works on the copy.
 */
#include "apiedge_int.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct snap_ctx {
	struct api_res_snapshot *s;
	size_t skip; /* "account:" */
	size_t cap;
};

static int snap_one(void *arg, const char *id, const uint8_t *body, size_t len)
{
	struct snap_ctx *c = arg;
	struct mc_doc *doc = mc_unpack(body, len);
	if (!doc)
		return 0; /* a body we cannot read is not shown */
	struct api_res_snapshot *s = c->s;
	if (s->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		s->items = xrealloc(s->items, c->cap * sizeof(s->items[0]));
	}
	s->items[s->n].resid = xstrdup(id + c->skip);
	s->items[s->n].doc = doc;
	s->n++;
	return 0;
}

int api_res_snapshot_take(const struct api_call *call, const char *kind,
                          struct api_res_snapshot *out)
{
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%s:", call->auth->key.account_id);
	memset(out, 0, sizeof(*out));
	struct snap_ctx c = {.s = out, .skip = strlen(prefix)};
	int r = call->cloud->list(call->cloud->arg, kind, prefix, snap_one, &c);
	if (r)
		api_res_snapshot_free(out);
	return r;
}

void api_res_snapshot_free(struct api_res_snapshot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].resid);
		mc_doc_free(s->items[i].doc);
	}
	free(s->items);
	memset(s, 0, sizeof(*s));
}
