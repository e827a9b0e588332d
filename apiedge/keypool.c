/*
 * RSA-2048 keys made ahead of need. Generating one takes a third of a
 * second here: on the loop it would stall every other request and the
 * peer's gossip. The pool keeps a few ready, refilled one at a time on
 * libuv's thread pool, so CreateKeyPair takes a key without waiting; only
 * the first request and a burst larger than the pool generate on the loop.
 */
#include "apiedge_int.h"

#include "mem.h"

#include <openssl/evp.h>

#define POOL_MAX 8

struct api_keypool {
	uv_loop_t *loop;
	EVP_PKEY *keys[POOL_MAX];
	unsigned n, target;
	bool working; /* one refill on the thread pool at a time */
	bool closing;
	uv_work_t work;
	EVP_PKEY *made; /* the key the running refill produced */
};

static void refill(struct api_keypool *p);

static void make_key(uv_work_t *w)
{
	struct api_keypool *p = w->data;
	p->made = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

static void made_key(uv_work_t *w, int status)
{
	struct api_keypool *p = w->data;
	p->working = false;
	if (p->closing) {
		EVP_PKEY_free(p->made);
		free(p);
		return;
	}
	if (status == 0 && p->made && p->n < POOL_MAX)
		p->keys[p->n++] = p->made;
	else
		EVP_PKEY_free(p->made);
	p->made = NULL;
	refill(p);
}

static void refill(struct api_keypool *p)
{
	if (p->working || p->closing || p->n >= p->target)
		return;
	p->work.data = p;
	if (uv_queue_work(p->loop, &p->work, make_key, made_key) == 0)
		p->working = true;
}

struct api_keypool *api_keypool_new(uv_loop_t *loop, unsigned target)
{
	struct api_keypool *p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->target = target < POOL_MAX ? target : POOL_MAX;
	/* Filled from the first request on: an edge whose clients never
	 * make RSA keys spends nothing on them. */
	return p;
}

struct evp_pkey_st *api_keypool_take(struct api_keypool *p)
{
	EVP_PKEY *k = NULL;
	if (p && p->n)
		k = p->keys[--p->n];
	if (p)
		refill(p);
	return k;
}

void api_keypool_free(struct api_keypool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		EVP_PKEY_free(p->keys[i]);
	p->n = 0;
	p->closing = true;
	/* A refill still running frees the pool when it comes back. */
	if (!p->working)
		free(p);
}
