/*
 * The image collector's decision without a daemon: what a registered
 * image's manifest names stays, what a pull, an import or an instance uses
 * stays, what is younger than the grace stays, the rest goes, and a copy
 * record goes with its image's files; checked case by case and against a
 * naive reference on random inputs. And the sweep of temporary files at
 * start removes those and nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "crypto.h"
#include "images_int.h"
#include "log.h"

#define NOW   (1000ull * 1000 * 1000 * 1000)
#define GRACE (60ull * 60 * 1000)
#define OLD   (NOW - GRACE - 1)

static char tmpdir[64];

static void hash_of(uint8_t h[IMAGES_HASH_BYTES], unsigned n)
{
	memset(h, 0, IMAGES_HASH_BYTES);
	h[0] = (uint8_t)n;
	h[31] = (uint8_t)(n >> 8);
}

static void ami_of(char out[32], unsigned n)
{
	snprintf(out, 32, "ami-%017x", n);
}

static struct images_gc_item chunk(unsigned n, uint64_t mtime)
{
	struct images_gc_item it;
	memset(&it, 0, sizeof(it));
	it.what = IMAGES_GC_CHUNK;
	hash_of(it.hash, n);
	it.files = 1;
	it.bytes = 100 + n;
	it.mtime_ms = mtime;
	it.verdict = IMAGES_GC_KEEP_LIVE;
	return it;
}

static struct images_gc_item image(unsigned n, uint64_t mtime)
{
	struct images_gc_item it;
	memset(&it, 0, sizeof(it));
	it.what = IMAGES_GC_IMAGE;
	ami_of(it.ami, n);
	it.files = 3;
	it.mtime_ms = mtime;
	it.verdict = IMAGES_GC_KEEP_LIVE;
	return it;
}

static struct images_gc_item copy(unsigned n)
{
	struct images_gc_item it;
	memset(&it, 0, sizeof(it));
	it.what = IMAGES_GC_COPY;
	ami_of(it.ami, n);
	it.verdict = IMAGES_GC_KEEP_LIVE;
	return it;
}

/* A view over small fixed sets, filled by the tests. */
struct sets {
	uint8_t live_chunks[64][IMAGES_HASH_BYTES];
	uint8_t busy_chunks[64][IMAGES_HASH_BYTES];
	char live_amis[64][32];
	char busy_amis[64][32];
	struct images_gc_view v;
};

static void sets_init(struct sets *s)
{
	memset(s, 0, sizeof(*s));
	s->v.live_chunks = s->live_chunks;
	s->v.busy_chunks = s->busy_chunks;
	s->v.live_amis = s->live_amis;
	s->v.busy_amis = s->busy_amis;
	s->v.now_ms = NOW;
	s->v.grace_ms = GRACE;
}

static void live_chunk(struct sets *s, unsigned n)
{
	hash_of(s->live_chunks[s->v.n_live_chunks++], n);
}

static void busy_chunk(struct sets *s, unsigned n)
{
	hash_of(s->busy_chunks[s->v.n_busy_chunks++], n);
}

static void live_ami(struct sets *s, unsigned n)
{
	ami_of(s->live_amis[s->v.n_live_amis++], n);
}

static void busy_ami(struct sets *s, unsigned n)
{
	ami_of(s->busy_amis[s->v.n_busy_amis++], n);
}

static void test_chunks(void)
{
	struct sets s;
	sets_init(&s);
	/* Added out of order: the decision sorts. */
	live_chunk(&s, 9);
	live_chunk(&s, 2);
	busy_chunk(&s, 4);
	busy_chunk(&s, 2);
	struct images_gc_item it[] = {
	    chunk(2, OLD),      /* live and busy */
	    chunk(9, OLD),      /* live */
	    chunk(4, OLD),      /* busy (a pull) */
	    chunk(5, OLD),      /* nobody's */
	    chunk(6, NOW - 10), /* nobody's, but young */
	    chunk(7, NOW + 5),  /* from the future: young */
	    chunk(8, NOW - GRACE),
	};
	size_t n = sizeof(it) / sizeof(it[0]);
	CHECK_EQ_U64(images_gc_decide(&s.v, it, n), 2);
	CHECK(it[0].verdict == IMAGES_GC_KEEP_IN_USE);
	CHECK(it[1].verdict == IMAGES_GC_KEEP_LIVE);
	CHECK(it[2].verdict == IMAGES_GC_KEEP_IN_USE);
	CHECK(it[3].verdict == IMAGES_GC_DROP);
	CHECK(it[4].verdict == IMAGES_GC_KEEP_YOUNG);
	CHECK(it[5].verdict == IMAGES_GC_KEEP_YOUNG);
	CHECK(it[6].verdict == IMAGES_GC_DROP); /* exactly the grace old */

	/* An import under way: no chunk goes, whatever its age. */
	s.v.chunks_unknown = true;
	CHECK_EQ_U64(images_gc_decide(&s.v, it, n), 0);
	CHECK(it[3].verdict == IMAGES_GC_KEEP_IN_USE);
	CHECK(it[1].verdict == IMAGES_GC_KEEP_LIVE);

	/* Grace 0: anything unreferenced goes at once. */
	s.v.chunks_unknown = false;
	s.v.grace_ms = 0;
	CHECK_EQ_U64(images_gc_decide(&s.v, it, n), 3);
	CHECK(it[4].verdict == IMAGES_GC_DROP);
	CHECK(it[5].verdict == IMAGES_GC_KEEP_YOUNG);
}

static void test_images_and_copies(void)
{
	struct sets s;
	sets_init(&s);
	live_ami(&s, 1);
	busy_ami(&s, 2); /* a stopped instance of a deregistered image */
	busy_ami(&s, 3); /* being pulled: no files yet */
	struct images_gc_item it[] = {
	    image(1, OLD), copy(1), /* registered */
	    image(2, OLD), copy(2), /* in use */
	    copy(3),                /* being pulled */
	    image(4, OLD), copy(4), /* deregistered */
	    image(5, NOW), copy(5), /* deregistered, files just written */
	    copy(6),                /* deregistered, files gone already */
	    image(7, OLD),          /* a killed import's leftovers */
	};
	size_t n = sizeof(it) / sizeof(it[0]);
	CHECK_EQ_U64(images_gc_decide(&s.v, it, n), 4);
	CHECK(it[0].verdict == IMAGES_GC_KEEP_LIVE);
	CHECK(it[1].verdict == IMAGES_GC_KEEP_LIVE);
	CHECK(it[2].verdict == IMAGES_GC_KEEP_IN_USE);
	CHECK(it[3].verdict == IMAGES_GC_KEEP_IN_USE);
	CHECK(it[4].verdict == IMAGES_GC_KEEP_IN_USE);
	CHECK(it[5].verdict == IMAGES_GC_DROP);
	CHECK(it[6].verdict == IMAGES_GC_DROP);
	CHECK(it[7].verdict == IMAGES_GC_KEEP_YOUNG);
	CHECK(it[8].verdict == IMAGES_GC_KEEP_YOUNG);
	CHECK(it[9].verdict == IMAGES_GC_DROP);
	CHECK(it[10].verdict == IMAGES_GC_DROP);

	/* Nothing at all. */
	sets_init(&s);
	CHECK_EQ_U64(images_gc_decide(&s.v, NULL, 0), 0);
}

/* ---- against a naive reference ---- */

static bool naive_in_chunks(uint8_t (*set)[IMAGES_HASH_BYTES], size_t n,
                            const uint8_t *h)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(set[i], h, IMAGES_HASH_BYTES) == 0)
			return true;
	return false;
}

static bool naive_in_amis(char (*set)[32], size_t n, const char *ami)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(set[i], ami) == 0)
			return true;
	return false;
}

static enum images_gc_verdict naive(const struct images_gc_view *v,
                                    const struct images_gc_item *items,
                                    size_t n, size_t k)
{
	const struct images_gc_item *it = &items[k];
	bool busy, live, old;
	if (it->what == IMAGES_GC_CHUNK) {
		busy =
		    naive_in_chunks(v->busy_chunks, v->n_busy_chunks, it->hash);
		live =
		    naive_in_chunks(v->live_chunks, v->n_live_chunks, it->hash);
	} else {
		busy = naive_in_amis(v->busy_amis, v->n_busy_amis, it->ami);
		live = naive_in_amis(v->live_amis, v->n_live_amis, it->ami);
	}
	if (busy)
		return IMAGES_GC_KEEP_IN_USE;
	if (live)
		return IMAGES_GC_KEEP_LIVE;
	if (it->what == IMAGES_GC_COPY) {
		for (size_t i = 0; i < n; i++)
			if (items[i].what == IMAGES_GC_IMAGE &&
			    strcmp(items[i].ami, it->ami) == 0 &&
			    naive(v, items, n, i) != IMAGES_GC_DROP)
				return IMAGES_GC_KEEP_YOUNG;
		return IMAGES_GC_DROP;
	}
	if (it->what == IMAGES_GC_CHUNK && v->chunks_unknown)
		return IMAGES_GC_KEEP_IN_USE;
	old = it->mtime_ms <= v->now_ms &&
	      v->now_ms - it->mtime_ms >= v->grace_ms;
	return old ? IMAGES_GC_DROP : IMAGES_GC_KEEP_YOUNG;
}

static void test_against_naive(void)
{
	for (int round = 0; round < 300; round++) {
		struct sets s;
		struct images_gc_item it[120];
		sets_init(&s);
		s.v.grace_ms = mc_random_uniform(3) * 1000;
		s.v.chunks_unknown = mc_random_uniform(8) == 0;
		/* A small universe, so that sets and items collide. */
		unsigned nl = mc_random_uniform(20), nb = mc_random_uniform(20);
		for (unsigned i = 0; i < nl; i++)
			live_chunk(&s, mc_random_uniform(40));
		for (unsigned i = 0; i < nb; i++)
			busy_chunk(&s, mc_random_uniform(40));
		nl = mc_random_uniform(8);
		nb = mc_random_uniform(8);
		for (unsigned i = 0; i < nl; i++)
			live_ami(&s, mc_random_uniform(16));
		for (unsigned i = 0; i < nb; i++)
			busy_ami(&s, mc_random_uniform(16));
		size_t n = mc_random_uniform(120);
		for (size_t i = 0; i < n; i++) {
			uint64_t t = NOW - 3000 + mc_random_uniform(4000);
			switch (mc_random_uniform(3)) {
			case 0:
				it[i] = chunk(mc_random_uniform(40), t);
				break;
			case 1:
				it[i] = image(mc_random_uniform(16), t);
				break;
			default:
				it[i] = copy(mc_random_uniform(16));
			}
		}
		size_t drops = images_gc_decide(&s.v, it, n), want = 0;
		/* The sets are sorted now; the reference does not care. */
		bool same = true;
		for (size_t i = 0; i < n; i++) {
			enum images_gc_verdict v = naive(&s.v, it, n, i);
			want += v == IMAGES_GC_DROP;
			if (v != it[i].verdict) {
				same = false;
				fprintf(stderr, "round %d item %zu: %d != %d\n",
				        round, i, it[i].verdict, v);
			}
		}
		CHECK(same);
		CHECK_EQ_U64(drops, want);
		if (!same)
			break;
	}
}

/* ---- the sweep of temporary files ---- */

static void touch(const char *path, size_t bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char buf[64] = {0};
	while (fd >= 0 && bytes) {
		size_t n = bytes < sizeof(buf) ? bytes : sizeof(buf);
		if (write(fd, buf, n) != (ssize_t)n)
			break;
		bytes -= n;
	}
	if (fd >= 0)
		close(fd);
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void test_sweep_temp(void)
{
	char p[512];
	const char *hex = "ab00000000000000000000000000000000000000000000000000"
	                  "000000000000";
	const char *ami = "ami-0123456789abcdef0";
	snprintf(p, sizeof(p), "%s/chunks", tmpdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/chunks/ab", tmpdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/images", tmpdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/images/%s", tmpdir, ami);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/images/notanami", tmpdir);
	mkdir(p, 0700);

	struct {
		const char *fmt;
		size_t bytes;
		bool temp;
	} files[] = {
	    {"%s/chunks/ab/%s", 10, false},
	    {"%s/chunks/ab/%s.tmp.4242.7", 20, true},
	    {"%s/chunks/ab/%s.tmp.1.0", 30, true},
	    {"%s/images/%s/disk", 40, false},
	    {"%s/images/%s/disk.tmp", 50, true},
	    {"%s/images/%s/.complete.tmp.99.1", 3, true},
	    {"%s/images/%s/vmlinuz", 60, false},
	    {"%s/images/%s/tmp", 1, false},
	};
	size_t n = sizeof(files) / sizeof(files[0]);
	uint64_t want_files = 0, want_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), files[i].fmt, tmpdir,
		         strstr(files[i].fmt, "chunks") ? hex : ami);
		touch(p, files[i].bytes);
		want_files += files[i].temp;
		want_bytes += files[i].temp ? files[i].bytes : 0;
	}
	/* Outside the image store: never touched. */
	snprintf(p, sizeof(p), "%s/images/notanami/x.tmp", tmpdir);
	touch(p, 5);
	snprintf(p, sizeof(p), "%s/store.db.tmp", tmpdir);
	touch(p, 5);

	uint64_t nf = 0, nb = 0;
	images_gc_sweep_temp(tmpdir, &nf, &nb);
	CHECK_EQ_U64(nf, want_files);
	CHECK_EQ_U64(nb, want_bytes);
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), files[i].fmt, tmpdir,
		         strstr(files[i].fmt, "chunks") ? hex : ami);
		CHECK(exists(p) == !files[i].temp);
	}
	snprintf(p, sizeof(p), "%s/images/notanami/x.tmp", tmpdir);
	CHECK(exists(p));
	snprintf(p, sizeof(p), "%s/store.db.tmp", tmpdir);
	CHECK(exists(p));

	/* Again: nothing left to remove; an absent store is no error. */
	images_gc_sweep_temp(tmpdir, &nf, &nb);
	CHECK_EQ_U64(nf, 0);
	snprintf(p, sizeof(p), "%s/absent", tmpdir);
	images_gc_sweep_temp(p, &nf, &nb);
	CHECK_EQ_U64(nf, 0);
	CHECK_EQ_U64(nb, 0);
}

int main(void)
{
	mc_log_set_level(MC_LOG_WARN);
	if (mc_crypto_init() != 0)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mallee-images-gc-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_chunks);
	RUN(test_images_and_copies);
	RUN(test_against_naive);
	RUN(test_sweep_temp);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return check_summary();
}
