/*
 * The collector of image content nobody needs. Without it disks fill up:
 * a peer killed mid-write leaves temporary files, and a deregistered
 * image's chunks and assembled files stay on every host that ever held
 * it, each host still announcing its copy.
 *
 * At start, before anything of this process writes, temporary files go
 * (images_gc_sweep_temp). Then every IMAGES_GC_EVERY_MS, or when the
 * control socket asks ("image-gc"), a pass: on the loop, a snapshot of
 * what is live (registered images' manifests) and what is busy (pulls,
 * imports, this host's instances); off the loop, a walk of the files,
 * the decision (images_gc_decide.c) and the unlinks; back on the loop,
 * this peer's copies of the images it dropped are deleted. A pull or an
 * import that begins meanwhile stops the pass: each unlink is made under
 * a lock and only while no writer has begun, so nothing a new writer
 * finds on disk is removed from under it.
 *
 * "Live" is not "has a manifest": DeregisterImage only tombstones the
 * image record ("ACCOUNT:AMI"); the manifest ("image-content") stays, as
 * instances of a deregistered image may still boot again from it.
 */
#include "images_int.h"

#include "crypto.h"
#include "instance.h"
#include "log.h"
#include "mem.h"
#include "peer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AMI_SLOT 32 /* an ami id in a set: NUL-padded */

struct gc_waiter {
	void (*cb)(void *ctx, int status, const char *message, uint64_t bytes);
	void *ctx;
	struct gc_waiter *next;
};

struct gc_pass;

struct images_gc {
	struct peer_images *im;
	uv_timer_t timer;
	uv_mutex_t lock;
	bool abort;           /* under lock: a writer began, or stopping */
	struct gc_pass *pass; /* the pass under way, or NULL */
	/* Asked for while a pass ran: one more pass, with the least grace. */
	bool next_wanted;
	uint64_t next_grace_ms;
	struct gc_waiter *next_waiters;
};

struct gc_count {
	uint64_t files, bytes;
};

struct gc_pass {
	uv_work_t work;
	struct images_gc *gc;
	uint64_t grace_ms, started_ms;
	struct gc_waiter *waiters;
	/* The snapshot (char[AMI_SLOT] and hash arrays). */
	struct mc_buf live_chunks, busy_chunks, live_amis, busy_amis;
	struct mc_buf registered;
	bool chunks_unknown;
	struct mc_buf items; /* struct images_gc_item */
	const char *self;
	/* What the work did. */
	struct gc_count removed, in_use, young, live;
	unsigned failures;
	char failure[256]; /* the first */
};

/* ---- sets of images ---------------------------------------------------- */

static int ami_cmp(const void *a, const void *b)
{
	return strncmp(a, b, AMI_SLOT);
}

/* ---- walking the files (off the loop) ----------------------------------- */

static bool lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

static uint64_t mtime_ms(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000 +
	       (uint64_t)st->st_mtim.tv_nsec / 1000000;
}

static void fail(struct gc_pass *ps, const char *what, int e)
{
	if (ps->failures++ == 0)
		snprintf(ps->failure, sizeof(ps->failure), "%s: %s", what,
		         strerror(e));
}

/* True once the peer stops or a writer began: the walk ends early. */
static bool aborted(struct gc_pass *ps)
{
	uv_mutex_lock(&ps->gc->lock);
	bool a = ps->gc->abort;
	uv_mutex_unlock(&ps->gc->lock);
	return a;
}

/* Opens DIR/NAME as a directory stream, or NULL. */
static DIR *open_sub(DIR *parent, const char *name)
{
	int fd = openat(dirfd(parent), name,
	                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

/* DATA_DIR/chunks/XX/HEX: one item per chunk file. */
static void walk_chunks(struct gc_pass *ps, const char *data_dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/chunks", data_dir);
	DIR *top = opendir(path);
	if (!top) {
		if (errno != ENOENT)
			fail(ps, path, errno);
		return;
	}
	struct dirent *d;
	while ((d = readdir(top)) && !aborted(ps)) {
		if (!lower_hex(d->d_name, 2))
			continue;
		DIR *sub = open_sub(top, d->d_name);
		if (!sub)
			continue;
		struct dirent *e;
		while ((e = readdir(sub))) {
			struct images_gc_item it;
			struct stat st;
			if (!lower_hex(e->d_name, 2 * IMAGES_HASH_BYTES) ||
			    memcmp(e->d_name, d->d_name, 2) != 0 ||
			    fstatat(dirfd(sub), e->d_name, &st,
			            AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			memset(&it, 0, sizeof(it));
			it.what = IMAGES_GC_CHUNK;
			mc_hex_decode(it.hash, IMAGES_HASH_BYTES, e->d_name,
			              2 * IMAGES_HASH_BYTES);
			it.bytes = (uint64_t)st.st_size;
			it.files = 1;
			it.mtime_ms = mtime_ms(&st);
			mc_buf_append(&ps->items, &it, sizeof(it));
		}
		closedir(sub);
	}
	closedir(top);
}

/* DATA_DIR/images/AMI: one item per image, its newest file's time. */
static void walk_images(struct gc_pass *ps, const char *data_dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/images", data_dir);
	DIR *top = opendir(path);
	if (!top) {
		if (errno != ENOENT)
			fail(ps, path, errno);
		return;
	}
	struct dirent *d;
	while ((d = readdir(top))) {
		if (!images_ami_ok(d->d_name))
			continue;
		DIR *sub = open_sub(top, d->d_name);
		if (!sub)
			continue;
		struct images_gc_item it;
		struct stat st;
		memset(&it, 0, sizeof(it));
		it.what = IMAGES_GC_IMAGE;
		snprintf(it.ami, sizeof(it.ami), "%s", d->d_name);
		if (fstat(dirfd(sub), &st) == 0)
			it.mtime_ms = mtime_ms(&st);
		struct dirent *e;
		while ((e = readdir(sub))) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0 ||
			    fstatat(dirfd(sub), e->d_name, &st,
			            AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			it.files++;
			it.bytes +=
			    S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
			if (mtime_ms(&st) > it.mtime_ms)
				it.mtime_ms = mtime_ms(&st);
		}
		closedir(sub);
		mc_buf_append(&ps->items, &it, sizeof(it));
	}
	closedir(top);
}

/* ---- removing (off the loop) -------------------------------------------- */

/*
 * Unlinks name (relative to the directory at; with dir, removes that
 * directory) unless a writer has begun; false once the pass must stop.
 * The lock makes "no writer yet" and the unlink one step as the loop sees
 * it.
 */
static bool remove_one(struct gc_pass *ps, int at, const char *name, bool dir,
                       const char *what)
{
	struct images_gc *gc = ps->gc;
	uv_mutex_lock(&gc->lock);
	bool go = !gc->abort;
	int e = 0;
	if (go && unlinkat(at, name, dir ? AT_REMOVEDIR : 0) != 0)
		e = errno;
	uv_mutex_unlock(&gc->lock);
	if (go && e && e != ENOENT)
		fail(ps, what, e);
	return go;
}

/* An image's directory: the marker first, so that a directory half
 * removed is never taken for a complete image, then the rest. */
static bool drop_image(struct gc_pass *ps, const char *data_dir,
                       const struct images_gc_item *it)
{
	char path[4096];
	struct stat st;
	images_dir_path(data_dir, it->ami, NULL, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			fail(ps, path, errno);
		return true;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		fail(ps, path, errno);
		close(fd);
		return true;
	}
	bool go = true;
	if (fstatat(fd, IMAGES_COMPLETE_MARK, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		go = remove_one(ps, fd, IMAGES_COMPLETE_MARK, false, path);
		if (go) {
			ps->removed.files++;
			ps->removed.bytes += (uint64_t)st.st_size;
		}
	}
	struct dirent *e;
	while (go && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0 ||
		    fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    S_ISDIR(st.st_mode))
			continue;
		go = remove_one(ps, fd, e->d_name, false, path);
		if (go) {
			ps->removed.files++;
			ps->removed.bytes +=
			    S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
		}
	}
	closedir(d);
	if (go)
		go = remove_one(ps, AT_FDCWD, path, true, path);
	return go;
}

static bool drop_chunk(struct gc_pass *ps, const char *data_dir,
                       const struct images_gc_item *it)
{
	char path[4096];
	images_chunk_path(data_dir, it->hash, path, sizeof(path));
	bool go = remove_one(ps, AT_FDCWD, path, false, path);
	if (go) {
		ps->removed.files++;
		ps->removed.bytes += it->bytes;
	}
	return go;
}

static void count(struct gc_count *c, const struct images_gc_item *it)
{
	c->files += it->files;
	c->bytes += it->bytes;
}

static void pass_work(uv_work_t *w)
{
	struct gc_pass *ps = w->data;
	const char *data_dir = ps->gc->im->p->cfg.data_dir;
	walk_images(ps, data_dir);
	walk_chunks(ps, data_dir);

	struct images_gc_view v = {
	    .live_chunks = (void *)ps->live_chunks.data,
	    .n_live_chunks = ps->live_chunks.len / IMAGES_HASH_BYTES,
	    .busy_chunks = (void *)ps->busy_chunks.data,
	    .n_busy_chunks = ps->busy_chunks.len / IMAGES_HASH_BYTES,
	    .live_amis = (void *)ps->live_amis.data,
	    .n_live_amis = ps->live_amis.len / AMI_SLOT,
	    .busy_amis = (void *)ps->busy_amis.data,
	    .n_busy_amis = ps->busy_amis.len / AMI_SLOT,
	    .chunks_unknown = ps->chunks_unknown,
	    .now_ms = mc_wall_ms(),
	    .grace_ms = ps->grace_ms,
	};
	struct images_gc_item *items = (void *)ps->items.data;
	size_t n = ps->items.len / sizeof(*items);
	images_gc_decide(&v, items, n);

	/* Images before chunks: no complete image outlives its chunks. */
	bool go = true;
	for (int pass = 0; pass < 2; pass++) {
		enum images_gc_what what =
		    pass == 0 ? IMAGES_GC_IMAGE : IMAGES_GC_CHUNK;
		for (size_t i = 0; i < n; i++) {
			struct images_gc_item *it = &items[i];
			if (it->what != what)
				continue;
			switch (it->verdict) {
			case IMAGES_GC_KEEP_IN_USE:
				count(&ps->in_use, it);
				break;
			case IMAGES_GC_KEEP_YOUNG:
				count(&ps->young, it);
				break;
			case IMAGES_GC_KEEP_LIVE:
				count(&ps->live, it);
				break;
			case IMAGES_GC_DROP:
				if (go)
					go = what == IMAGES_GC_IMAGE
					         ? drop_image(ps, data_dir, it)
					         : drop_chunk(ps, data_dir, it);
				break;
			}
		}
	}
}

/* ---- the snapshot (on the loop) ----------------------------------------- */

static void add_ami(struct mc_buf *set, const char *ami)
{
	char slot[AMI_SLOT];
	memset(slot, 0, sizeof(slot));
	snprintf(slot, sizeof(slot), "%s", ami);
	mc_buf_append(set, slot, sizeof(slot));
}

static bool set_has_ami(const struct mc_buf *set, const char *ami)
{
	return set->len &&
	       bsearch(ami, set->data, set->len / AMI_SLOT, AMI_SLOT, ami_cmp);
}

static void sort_amis(struct mc_buf *set)
{
	if (set->len)
		qsort(set->data, set->len / AMI_SLOT, AMI_SLOT, ami_cmp);
}

/* Images still registered: a live "image" record, "ACCOUNT:AMI". */
static int registered_one(const struct peer_record *r, void *arg)
{
	struct gc_pass *ps = arg;
	const char *colon = strrchr(r->id, ':');
	if (colon && images_ami_ok(colon + 1))
		add_ami(&ps->registered, colon + 1);
	return 0;
}

/* Instances of this host that are not terminated keep their image: a
 * stopped one boots its overlay over the image's disk again. */
static int instance_one(const struct peer_record *r, void *arg)
{
	struct gc_pass *ps = arg;
	struct mc_instance in;
	if (mc_instance_unpack(r->body, r->body_len, &in) != 0)
		return 0;
	if (strcmp(in.host, ps->self) == 0 && in.state != MC_INST_TERMINATED &&
	    images_ami_ok(in.image_id))
		add_ami(&ps->busy_amis, in.image_id);
	mc_instance_clear(&in);
	return 0;
}

static void pull_one(void *arg, const char *ami, const uint8_t *hash)
{
	struct gc_pass *ps = arg;
	if (hash)
		mc_buf_append(&ps->busy_chunks, hash, IMAGES_HASH_BYTES);
	else
		add_ami(&ps->busy_amis, ami);
}

static void job_one(void *arg, const char *ami)
{
	struct gc_pass *ps = arg;
	if (images_ami_ok(ami))
		add_ami(&ps->busy_amis, ami);
}

static void add_chunks(struct mc_buf *set, const struct images_manifest *m)
{
	for (int i = 0; i < IMAGES_PARTS; i++)
		if (m->part[i].n_chunks)
			mc_buf_append(set, m->part[i].chunks,
			              (size_t)m->part[i].n_chunks *
			                  IMAGES_HASH_BYTES);
}

static int content_one(const struct peer_record *r, void *arg)
{
	struct gc_pass *ps = arg;
	struct images_manifest m;
	if (!images_ami_ok(r->id))
		return 0;
	bool live = set_has_ami(&ps->registered, r->id);
	bool busy = set_has_ami(&ps->busy_amis, r->id);
	if (!live && !busy)
		return 0;
	if (images_manifest_read(r->body, r->body_len, &m) != 0) {
		/* Its chunks are unknown: none may go this time. */
		images_manifest_free(&m);
		ps->chunks_unknown = true;
		return 0;
	}
	if (live) {
		add_ami(&ps->live_amis, r->id);
		add_chunks(&ps->live_chunks, &m);
	}
	if (busy)
		add_chunks(&ps->busy_chunks, &m);
	images_manifest_free(&m);
	return 0;
}

/* This peer's image-copy records ("AMI:PEERID"). */
static int copy_one(const struct peer_record *r, void *arg)
{
	struct gc_pass *ps = arg;
	const char *colon = strrchr(r->id, ':');
	if (!colon || strcmp(colon + 1, ps->self) != 0 ||
	    (size_t)(colon - r->id) >= AMI_SLOT)
		return 0;
	struct images_gc_item it;
	memset(&it, 0, sizeof(it));
	it.what = IMAGES_GC_COPY;
	memcpy(it.ami, r->id, (size_t)(colon - r->id));
	if (images_ami_ok(it.ami))
		mc_buf_append(&ps->items, &it, sizeof(it));
	return 0;
}

/* Fills the pass's view from the store and the pulls and jobs under way.
 * The store cannot list inside a list: each list is on its own. */
static int snapshot(struct gc_pass *ps)
{
	struct peer_images *im = ps->gc->im;
	struct peer *p = im->p;
	int e = peer_store_list(p->store, IMAGES_KIND_IMAGE, false,
	                        registered_one, ps);
	if (!e)
		e = peer_store_list(p->store, MC_INSTANCE_KIND, false,
		                    instance_one, ps);
	if (e)
		return e;
	sort_amis(&ps->registered);
	images_pulls_each(im, pull_one, ps);
	images_jobs_each_running(im, job_one, ps);
	sort_amis(&ps->busy_amis);
	ps->chunks_unknown = im->importing > 0;
	e = peer_store_list(p->store, IMAGES_KIND_CONTENT, false, content_one,
	                    ps);
	if (!e)
		e = peer_store_list(p->store, IMAGES_KIND_COPY, false, copy_one,
		                    ps);
	return e;
}

/* ---- a pass ------------------------------------------------------------- */

static void pass_free(struct gc_pass *ps)
{
	mc_buf_free(&ps->live_chunks);
	mc_buf_free(&ps->busy_chunks);
	mc_buf_free(&ps->live_amis);
	mc_buf_free(&ps->busy_amis);
	mc_buf_free(&ps->registered);
	mc_buf_free(&ps->items);
	free(ps);
}

static void waiters_end(struct gc_waiter *w, int status, const char *message,
                        uint64_t bytes)
{
	while (w) {
		struct gc_waiter *next = w->next;
		if (w->cb)
			w->cb(w->ctx, status, message, bytes);
		free(w);
		w = next;
	}
}

/* Deletes this peer's copy records of the images dropped: the others stop
 * asking it for their chunks. */
static unsigned drop_copies(struct gc_pass *ps)
{
	struct peer *p = ps->gc->im->p;
	const struct images_gc_item *items = (const void *)ps->items.data;
	size_t n = ps->items.len / sizeof(*items);
	unsigned dropped = 0;
	for (size_t i = 0; i < n; i++) {
		if (items[i].what != IMAGES_GC_COPY ||
		    items[i].verdict != IMAGES_GC_DROP)
			continue;
		char id[64];
		snprintf(id, sizeof(id), "%s:%s", items[i].ami, p->id);
		int e =
		    peer_records_delete(&p->writer, IMAGES_KIND_COPY, id, NULL);
		if (e)
			mc_warn("images", "cannot withdraw our copy of %s: %s",
			        items[i].ami, strerror(-e));
		else
			dropped++;
	}
	return dropped;
}

static int pass_start(struct images_gc *gc, uint64_t grace_ms,
                      struct gc_waiter *waiters);

static void pass_done(uv_work_t *w, int status)
{
	struct gc_pass *ps = w->data;
	struct images_gc *gc = ps->gc;
	struct peer_images *im = gc->im;
	uv_mutex_lock(&gc->lock);
	bool writer = gc->abort;
	uv_mutex_unlock(&gc->lock);
	int r = 0;
	char msg[512] = "";
	if (status == UV_ECANCELED || im->stopping) {
		r = -ECANCELED;
		snprintf(msg, sizeof(msg), "this peer is stopping");
	} else if (writer) {
		/* Copies stay: a new pull may hold the image again. */
		r = -EINTR;
		snprintf(msg, sizeof(msg),
		         "a pull or an import began: stopped after removing "
		         "%llu files (%llu bytes)",
		         (unsigned long long)ps->removed.files,
		         (unsigned long long)ps->removed.bytes);
		mc_info("images", "collection %s", msg);
	} else {
		unsigned copies = drop_copies(ps);
		mc_info("images",
		        "collected in %llu ms: removed %llu files (%llu "
		        "bytes); kept %llu files in use (%llu bytes), %llu of "
		        "registered images (%llu bytes), %llu younger than "
		        "%llu s (%llu bytes); withdrew %u cop%s",
		        (unsigned long long)(mc_wall_ms() - ps->started_ms),
		        (unsigned long long)ps->removed.files,
		        (unsigned long long)ps->removed.bytes,
		        (unsigned long long)ps->in_use.files,
		        (unsigned long long)ps->in_use.bytes,
		        (unsigned long long)ps->live.files,
		        (unsigned long long)ps->live.bytes,
		        (unsigned long long)ps->young.files,
		        (unsigned long long)(ps->grace_ms / 1000),
		        (unsigned long long)ps->young.bytes, copies,
		        copies == 1 ? "y" : "ies");
	}
	if (ps->failures)
		mc_warn("images",
		        "collection: %u files could not be removed "
		        "(first: %s)",
		        ps->failures, ps->failure);
	gc->pass = NULL;
	waiters_end(ps->waiters, r, msg, ps->removed.bytes);
	pass_free(ps);
	if (gc->next_wanted && !im->stopping) {
		struct gc_waiter *next = gc->next_waiters;
		gc->next_wanted = false;
		gc->next_waiters = NULL;
		int e = pass_start(gc, gc->next_grace_ms, next);
		if (e)
			waiters_end(next, e, "cannot start a collection", 0);
	}
	images_unbusy(im);
}

/* Takes ownership of waiters on success; 0 or a negative errno. */
static int pass_start(struct images_gc *gc, uint64_t grace_ms,
                      struct gc_waiter *waiters)
{
	struct peer_images *im = gc->im;
	struct gc_pass *ps = xcalloc(1, sizeof(*ps));
	ps->work.data = ps;
	ps->gc = gc;
	ps->grace_ms = grace_ms;
	ps->started_ms = mc_wall_ms();
	ps->self = im->p->id;
	mc_buf_init(&ps->live_chunks);
	mc_buf_init(&ps->busy_chunks);
	mc_buf_init(&ps->live_amis);
	mc_buf_init(&ps->busy_amis);
	mc_buf_init(&ps->registered);
	mc_buf_init(&ps->items);
	int e = snapshot(ps);
	if (e) {
		mc_warn("images", "collection: cannot read the store: %s",
		        strerror(-e));
		pass_free(ps);
		return e;
	}
	uv_mutex_lock(&gc->lock);
	gc->abort = false;
	uv_mutex_unlock(&gc->lock);
	images_busy(im);
	e = uv_queue_work(im->p->loop, &ps->work, pass_work, pass_done);
	if (e) {
		images_unbusy(im);
		pass_free(ps);
		return e;
	}
	ps->waiters = waiters;
	gc->pass = ps;
	return 0;
}

int images_gc_request(struct peer_images *im, uint64_t grace_ms,
                      void (*cb)(void *ctx, int status, const char *message,
                                 uint64_t bytes),
                      void *ctx)
{
	struct images_gc *gc = im->gc;
	if (!gc || im->stopping)
		return -ECANCELED;
	struct gc_waiter *w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->ctx = ctx;
	if (gc->pass) {
		/* The pass under way looked at the store before this call. */
		if (!gc->next_wanted || grace_ms < gc->next_grace_ms)
			gc->next_grace_ms = grace_ms;
		gc->next_wanted = true;
		w->next = gc->next_waiters;
		gc->next_waiters = w;
		return 0;
	}
	int e = pass_start(gc, grace_ms, w);
	if (e)
		free(w);
	return e;
}

void images_gc_writer_started(struct peer_images *im)
{
	struct images_gc *gc = im->gc;
	if (!gc || !gc->pass)
		return;
	uv_mutex_lock(&gc->lock);
	gc->abort = true;
	uv_mutex_unlock(&gc->lock);
}

/* ---- temporary files at start ------------------------------------------- */

static bool temp_name(const char *name)
{
	size_t n = strlen(name);
	return strstr(name, ".tmp.") ||
	       (n > 4 && strcmp(name + n - 4, ".tmp") == 0);
}

/* Removes the temporary files directly in the directory dir. */
static void sweep_dir(DIR *dir, uint64_t *files, uint64_t *bytes)
{
	struct dirent *e;
	while ((e = readdir(dir))) {
		struct stat st;
		if (!temp_name(e->d_name) ||
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
		        0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(dirfd(dir), e->d_name, 0) == 0) {
			(*files)++;
			*bytes += (uint64_t)st.st_size;
		}
	}
}

void images_gc_sweep_temp(const char *data_dir, uint64_t *files,
                          uint64_t *bytes)
{
	static const char *const tops[] = {"chunks", "images"};
	*files = *bytes = 0;
	for (size_t t = 0; t < sizeof(tops) / sizeof(tops[0]); t++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", data_dir, tops[t]);
		DIR *top = opendir(path);
		if (!top)
			continue;
		struct dirent *d;
		while ((d = readdir(top))) {
			bool ours = t == 0 ? lower_hex(d->d_name, 2)
			                   : images_ami_ok(d->d_name);
			DIR *sub = ours ? open_sub(top, d->d_name) : NULL;
			if (!sub)
				continue;
			sweep_dir(sub, files, bytes);
			closedir(sub);
		}
		closedir(top);
	}
}

/* ---- the timer and the module's life ------------------------------------ */

static void on_timer(uv_timer_t *t)
{
	struct images_gc *gc = t->data;
	if (gc->pass || gc->im->stopping)
		return;
	int e = images_gc_request(gc->im, IMAGES_GC_GRACE_MS, NULL, NULL);
	if (e)
		mc_warn("images", "cannot start a collection: %s",
		        strerror(-e));
}

static void timer_closed(uv_handle_t *h)
{
	struct images_gc *gc = h->data;
	images_unbusy(gc->im);
}

void images_gc_start(struct peer_images *im)
{
	struct images_gc *gc = xcalloc(1, sizeof(*gc));
	gc->im = im;
	if (uv_mutex_init(&gc->lock) != 0)
		abort();
	uv_timer_init(im->p->loop, &gc->timer);
	gc->timer.data = gc;
	uv_timer_start(&gc->timer, on_timer, IMAGES_GC_FIRST_MS,
	               IMAGES_GC_EVERY_MS);
	/* The timer's close callback frees nothing but counts as work. */
	images_busy(im);
	im->gc = gc;
}

void images_gc_stop(struct peer_images *im)
{
	struct images_gc *gc = im->gc;
	if (!gc)
		return;
	uv_mutex_lock(&gc->lock);
	gc->abort = true;
	uv_mutex_unlock(&gc->lock);
	struct gc_waiter *next = gc->next_waiters;
	gc->next_waiters = NULL;
	gc->next_wanted = false;
	waiters_end(next, -ECANCELED, "this peer is stopping", 0);
	uv_close((uv_handle_t *)&gc->timer, timer_closed);
}

void images_gc_free(struct peer_images *im)
{
	struct images_gc *gc = im->gc;
	if (!gc)
		return;
	uv_mutex_destroy(&gc->lock);
	free(gc);
	im->gc = NULL;
}
