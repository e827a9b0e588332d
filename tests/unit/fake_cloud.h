/*
 * An in-memory cloud for the API edge's unit tests: the records interface
 * of struct api_cloud over a sorted array, one account key per test, and
 * fixed zones. The real one (peer/edge.c) sits on the store and gossip.
 */
#ifndef MALLEE_FAKE_CLOUD_H
#define MALLEE_FAKE_CLOUD_H

#include "apiedge.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_RECORDS_MAX 20000

struct fake_record {
	char kind[130];
	char id[130];
	uint8_t *body;
	size_t len;
};

struct fake_cloud {
	struct fake_record *recs;
	size_t n;
	struct {
		const char *key_id, *secret, *account;
	} keys[4];
	size_t n_keys;
	unsigned puts, dels;
	bool listing; /* the store refuses a list inside a list: so do we */
};

static int fake_cmp(const char *k1, const char *i1, const char *k2,
                    const char *i2)
{
	int c = strcmp(k1, k2);
	return c ? c : strcmp(i1, i2);
}

static struct fake_record *fake_find(struct fake_cloud *c, const char *kind,
                                     const char *id, size_t *pos)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = fake_cmp(c->recs[mid].kind, c->recs[mid].id, kind, id);
		if (r == 0) {
			*pos = mid;
			return &c->recs[mid];
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

static int fake_lookup_key(void *arg, const char *key_id,
                           struct api_key_info *out)
{
	struct fake_cloud *c = arg;
	for (size_t i = 0; i < c->n_keys; i++) {
		if (strcmp(c->keys[i].key_id, key_id) != 0)
			continue;
		memset(out, 0, sizeof(*out));
		snprintf(out->account_id, sizeof(out->account_id), "%s",
		         c->keys[i].account);
		snprintf(out->secret, sizeof(out->secret), "%s",
		         c->keys[i].secret);
		return 0;
	}
	return -ENOENT;
}

static int fake_get(void *arg, const char *kind, const char *id, uint8_t **body,
                    size_t *len)
{
	struct fake_cloud *c = arg;
	size_t pos;
	struct fake_record *r = fake_find(c, kind, id, &pos);
	if (!r)
		return -ENOENT;
	*body = malloc(r->len + 1);
	memcpy(*body, r->body, r->len);
	*len = r->len;
	return 0;
}

static int fake_list(void *arg, const char *kind, const char *prefix,
                     int (*cb)(void *ctx, const char *id, const uint8_t *body,
                               size_t len),
                     void *ctx)
{
	struct fake_cloud *c = arg;
	size_t pos, n = strlen(prefix);
	if (c->listing)
		return -EBUSY;
	c->listing = true;
	fake_find(c, kind, prefix, &pos);
	int e = 0;
	for (; pos < c->n && e == 0; pos++) {
		struct fake_record *r = &c->recs[pos];
		if (strcmp(r->kind, kind) != 0 ||
		    strncmp(r->id, prefix, n) != 0)
			break;
		e = cb(ctx, r->id, r->body, r->len);
	}
	c->listing = false;
	return e;
}

static int fake_put(void *arg, const char *kind, const char *id,
                    const void *body, size_t len)
{
	struct fake_cloud *c = arg;
	size_t pos;
	struct fake_record *r = fake_find(c, kind, id, &pos);
	if (!r) {
		if (c->n == FAKE_RECORDS_MAX)
			return -ENOSPC;
		memmove(&c->recs[pos + 1], &c->recs[pos],
		        (c->n - pos) * sizeof(*r));
		r = &c->recs[pos];
		memset(r, 0, sizeof(*r));
		snprintf(r->kind, sizeof(r->kind), "%s", kind);
		snprintf(r->id, sizeof(r->id), "%s", id);
		c->n++;
	}
	free(r->body);
	r->body = malloc(len + 1);
	memcpy(r->body, body, len);
	r->len = len;
	c->puts++;
	return 0;
}

static int fake_del(void *arg, const char *kind, const char *id)
{
	struct fake_cloud *c = arg;
	size_t pos;
	struct fake_record *r = fake_find(c, kind, id, &pos);
	c->dels++;
	if (!r)
		return 0;
	free(r->body);
	memmove(r, r + 1, (c->n - pos - 1) * sizeof(*r));
	c->n--;
	return 0;
}

static int fake_zones(void *arg,
                      int (*cb)(void *ctx, const char *zone, unsigned alive,
                                unsigned hosts),
                      void *ctx)
{
	(void)arg;
	int r = cb(ctx, "us-east-1a", 2, 2);
	return r ? r : cb(ctx, "us-east-1b", 0, 1);
}

static void fake_cloud_init(struct fake_cloud *c, struct api_cloud *api)
{
	memset(c, 0, sizeof(*c));
	c->recs = calloc(FAKE_RECORDS_MAX, sizeof(*c->recs));
	*api = (struct api_cloud){
	    .arg = c,
	    .lookup_key = fake_lookup_key,
	    .get = fake_get,
	    .list = fake_list,
	    .put = fake_put,
	    .del = fake_del,
	    .zones = fake_zones,
	};
}

static void fake_cloud_add_key(struct fake_cloud *c, const char *key_id,
                               const char *secret, const char *account)
{
	c->keys[c->n_keys].key_id = key_id;
	c->keys[c->n_keys].secret = secret;
	c->keys[c->n_keys].account = account;
	c->n_keys++;
}

static void fake_cloud_free(struct fake_cloud *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->recs[i].body);
	free(c->recs);
}

#endif
