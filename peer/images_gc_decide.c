/*
 * What a collection pass drops (images_gc.c), decided from a snapshot and
 * the files found, touching nothing else: a pure function, so that the
 * unit test can hold it to a naive reference.
 */
#include "images_int.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AMI_SLOT 32 /* an ami id in a set: NUL-padded */

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, IMAGES_HASH_BYTES);
}

static int ami_cmp(const void *a, const void *b)
{
	return strncmp(a, b, AMI_SLOT);
}

static bool has_hash(uint8_t (*set)[IMAGES_HASH_BYTES], size_t n,
                     const uint8_t *hash)
{
	return n && bsearch(hash, set, n, IMAGES_HASH_BYTES, hash_cmp);
}

static bool has_ami(char (*set)[AMI_SLOT], size_t n, const char *ami)
{
	return n && bsearch(ami, set, n, AMI_SLOT, ami_cmp);
}

static bool young(const struct images_gc_view *v, uint64_t mtime_ms)
{
	/* A time ahead of ours (a clock stepped back) counts as young. */
	return v->now_ms < mtime_ms || v->now_ms - mtime_ms < v->grace_ms;
}

static enum images_gc_verdict judge(const struct images_gc_view *v,
                                    const struct images_gc_item *it)
{
	bool chunk = it->what == IMAGES_GC_CHUNK;
	if (chunk ? has_hash(v->busy_chunks, v->n_busy_chunks, it->hash)
	          : has_ami(v->busy_amis, v->n_busy_amis, it->ami))
		return IMAGES_GC_KEEP_IN_USE;
	if (chunk ? has_hash(v->live_chunks, v->n_live_chunks, it->hash)
	          : has_ami(v->live_amis, v->n_live_amis, it->ami))
		return IMAGES_GC_KEEP_LIVE;
	if (chunk && v->chunks_unknown)
		return IMAGES_GC_KEEP_IN_USE;
	if (young(v, it->mtime_ms))
		return IMAGES_GC_KEEP_YOUNG;
	return IMAGES_GC_DROP;
}

size_t images_gc_decide(struct images_gc_view *v, struct images_gc_item *items,
                        size_t n)
{
	if (v->n_live_chunks)
		qsort(v->live_chunks, v->n_live_chunks, IMAGES_HASH_BYTES,
		      hash_cmp);
	if (v->n_busy_chunks)
		qsort(v->busy_chunks, v->n_busy_chunks, IMAGES_HASH_BYTES,
		      hash_cmp);
	if (v->n_live_amis)
		qsort(v->live_amis, v->n_live_amis, AMI_SLOT, ami_cmp);
	if (v->n_busy_amis)
		qsort(v->busy_amis, v->n_busy_amis, AMI_SLOT, ami_cmp);

	/* Images and chunks first: a copy follows its image's files. */
	size_t n_kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (items[i].what == IMAGES_GC_COPY)
			continue;
		items[i].verdict = judge(v, &items[i]);
		n_kept += items[i].what == IMAGES_GC_IMAGE &&
		          items[i].verdict != IMAGES_GC_DROP;
	}
	char(*kept)[AMI_SLOT] = xcalloc(n_kept ? n_kept : 1, AMI_SLOT);
	n_kept = 0;
	for (size_t i = 0; i < n; i++)
		if (items[i].what == IMAGES_GC_IMAGE &&
		    items[i].verdict != IMAGES_GC_DROP)
			snprintf(kept[n_kept++], AMI_SLOT, "%s", items[i].ami);
	if (n_kept)
		qsort(kept, n_kept, AMI_SLOT, ami_cmp);

	size_t drops = 0;
	for (size_t i = 0; i < n; i++) {
		struct images_gc_item *it = &items[i];
		if (it->what == IMAGES_GC_COPY) {
			if (has_ami(v->busy_amis, v->n_busy_amis, it->ami))
				it->verdict = IMAGES_GC_KEEP_IN_USE;
			else if (has_ami(v->live_amis, v->n_live_amis, it->ami))
				it->verdict = IMAGES_GC_KEEP_LIVE;
			else if (has_ami(kept, n_kept, it->ami))
				it->verdict = IMAGES_GC_KEEP_YOUNG;
			else
				it->verdict = IMAGES_GC_DROP;
		}
		drops += it->verdict == IMAGES_GC_DROP;
	}
	free(kept);
	return drops;
}
