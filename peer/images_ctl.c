/*
 * The control socket's image commands. Importing and pulling take longer
 * than a control request may, so each starts a job and answers its number
 * at once; the CLI then asks "image-job" until the job is done.
 *
 *   image-import {name, kernel?, ramdisk?, disk?, disk_format?, cmdline?,
 *                 description?, arch?}                  -> {job}
 *   image-pull   {ami}                                  -> {job}
 *   image-job    {job} -> {done, ami?, bytes?, ms?, error?}
 *   image-list   {}    -> {images: [{ami, name, size, here, holders}]}
 *   image-gc     {grace_ms?}                           -> {job}
 *
 * image-gc (hidden: tests and operators who cannot wait) runs a collection
 * pass (images_gc.c); grace_ms defaults to IMAGES_GC_GRACE_MS, its job's
 * bytes are those removed.
 */
#include "images_int.h"

#include "crypto.h"
#include "log.h"
#include "mem.h"
#include "peer.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOBS_KEPT    32 /* finished jobs remembered for the CLI */
#define NAME_MIN     3
#define NAME_MAX_LEN 128
#define DESC_MAX     255
#define ARCH_MAX     16
#define IMAGE_ADMIN  "admin" /* the account public images belong to */
#define ROOT_DEVICE  "/dev/sda1"
#define GIB          (1ull << 30)

struct images_job {
	uint32_t id;
	bool done;
	int status;
	char message[512];
	char ami[32];
	uint64_t bytes, started_ms, took_ms;
	struct images_job *next;
};

struct import_work {
	uv_work_t work;
	struct peer_images *im;
	struct images_job *job;
	char src[IMAGES_PARTS][2048];
	char claimed[8];
	char account[16];
	char name[NAME_MAX_LEN + 1];
	char description[DESC_MAX + 1];
	char arch[ARCH_MAX + 1];
	struct images_manifest man;
	int status;
	char err[512];
};

/* ---- jobs --------------------------------------------------------------- */

static struct images_job *job_new(struct peer_images *im)
{
	/* Forget the oldest finished jobs past JOBS_KEPT. */
	unsigned n = 0;
	for (struct images_job **pp = &im->jobs; *pp;) {
		struct images_job *j = *pp;
		if (++n > JOBS_KEPT && j->done) {
			*pp = j->next;
			free(j);
			continue;
		}
		pp = &j->next;
	}
	struct images_job *j = xcalloc(1, sizeof(*j));
	j->id = ++im->next_job;
	j->started_ms = mc_wall_ms();
	j->next = im->jobs;
	im->jobs = j;
	return j;
}

static void job_end(struct images_job *j, int status, const char *message)
{
	j->done = true;
	j->status = status;
	j->took_ms = mc_wall_ms() - j->started_ms;
	snprintf(j->message, sizeof(j->message), "%s", message ? message : "");
}

void images_jobs_free(struct peer_images *im)
{
	while (im->jobs) {
		struct images_job *j = im->jobs;
		im->jobs = j->next;
		free(j);
	}
}

void images_jobs_each_running(struct peer_images *im,
                              void (*fn)(void *arg, const char *ami), void *arg)
{
	for (struct images_job *j = im->jobs; j; j = j->next)
		if (!j->done && j->ami[0])
			fn(arg, j->ami);
}

static void reply_job(struct mc_buf *reply, const struct images_job *j)
{
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_uint(reply, "job", j->id);
}

void images_cmd_job(struct peer *p, const struct mc_val *req,
                    struct mc_buf *reply)
{
	uint64_t id = 0;
	struct peer_images *im = p->images;
	if (!im) {
		peer_ctl_reply_error(reply, "the image store is stopped");
		return;
	}
	mc_get_uint(req, "job", &id);
	struct images_job *j = im->jobs;
	while (j && j->id != id)
		j = j->next;
	if (!j) {
		peer_ctl_reply_error(reply, "no image job %llu",
		                     (unsigned long long)id);
		return;
	}
	if (j->done && j->status) {
		peer_ctl_reply_error(reply, "%s", j->message);
		return;
	}
	mc_pack_map(reply, 5);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_bool(reply, "done", j->done);
	mc_pack_kv_str(reply, "ami", j->ami);
	mc_pack_kv_uint(reply, "bytes", j->bytes);
	mc_pack_kv_uint(reply, "ms", j->took_ms);
}

/* ---- pull --------------------------------------------------------------- */

static void pulled(void *ctx, int status, const char *message,
                   const struct peer_image_files *files)
{
	(void)files;
	job_end(ctx, status, message);
}

void images_cmd_pull(struct peer *p, const struct mc_val *req,
                     struct mc_buf *reply)
{
	char ami[32];
	if (!p->images) {
		peer_ctl_reply_error(reply, "the image store is stopped");
		return;
	}
	if (!mc_get_str(req, "ami", ami, sizeof(ami)) || !images_ami_ok(ami)) {
		peer_ctl_reply_error(reply, "expected an image id like "
		                            "ami-0123456789abcdef0");
		return;
	}
	struct images_job *j = job_new(p->images);
	snprintf(j->ami, sizeof(j->ami), "%s", ami);
	int e = images_ensure(p, ami, pulled, j, &j->bytes);
	if (e) {
		job_end(j, e, strerror(-e));
		peer_ctl_reply_error(reply, "cannot pull %s: %s", ami,
		                     strerror(-e));
		return;
	}
	reply_job(reply, j);
}

/* ---- collect ------------------------------------------------------------ */

static void collected(void *ctx, int status, const char *message,
                      uint64_t bytes)
{
	struct images_job *j = ctx;
	j->bytes = bytes;
	job_end(j, status, message);
}

void images_cmd_gc(struct peer *p, const struct mc_val *req,
                   struct mc_buf *reply)
{
	struct peer_images *im = p->images;
	uint64_t grace = IMAGES_GC_GRACE_MS;
	if (!im || im->stopping) {
		peer_ctl_reply_error(reply, "the image store is stopped");
		return;
	}
	if (mc_map_get(req, "grace_ms") &&
	    !mc_get_uint(req, "grace_ms", &grace)) {
		peer_ctl_reply_error(reply, "grace_ms: a number of "
		                            "milliseconds");
		return;
	}
	struct images_job *j = job_new(im);
	int e = images_gc_request(im, grace, collected, j);
	if (e) {
		job_end(j, e, strerror(-e));
		peer_ctl_reply_error(reply, "cannot start a collection: %s",
		                     strerror(-e));
		return;
	}
	reply_job(reply, j);
}

/* ---- import ------------------------------------------------------------- */

/* EC2's AMI name alphabet: letters, digits, ()[] ./-'@_ and space. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < NAME_MIN || n > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("()[] ./-'@_", *s)))
			return false;
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int admin_one(const struct peer_record *r, void *arg)
{
	char *out = arg;
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	int found = doc && mc_val_is_str(mc_map_get(mc_doc_root(doc), "name"),
	                                 IMAGE_ADMIN);
	if (found)
		snprintf(out, 16, "%s", r->id);
	mc_doc_free(doc);
	return found;
}

struct name_scan {
	const char *name;
	char taken_by[64];
};

static int name_one(const struct peer_record *r, void *arg)
{
	struct name_scan *s = arg;
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	int taken =
	    doc && mc_val_is_str(mc_map_get(mc_doc_root(doc), "name"), s->name);
	if (taken)
		snprintf(s->taken_by, sizeof(s->taken_by), "%s", r->id);
	mc_doc_free(doc);
	return taken;
}

static void remove_partial(const char *dir, const char *ami)
{
	char path[4096];
	for (int i = 0; i < IMAGES_PARTS; i++) {
		images_dir_path(dir, ami, images_part_file[i], path,
		                sizeof(path));
		unlink(path);
		strncat(path, ".tmp", sizeof(path) - strlen(path) - 1);
		unlink(path);
	}
	images_dir_path(dir, ami, NULL, path, sizeof(path));
	rmdir(path);
}

static void import_work(uv_work_t *w)
{
	struct import_work *iw = w->data;
	const char *dir = iw->im->p->cfg.data_dir;
	const char *ami = iw->job->ami;
	struct images_manifest *m = &iw->man;
	if (iw->src[IMAGES_DISK][0]) {
		iw->status = images_disk_probe(
		    iw->src[IMAGES_DISK], iw->claimed, m->disk_format,
		    &m->disk_virtual, iw->err, sizeof(iw->err));
		if (iw->status)
			return;
	}
	for (int i = 0; i < IMAGES_PARTS && !iw->status; i++) {
		if (!iw->src[i][0])
			continue;
		char dest[4096];
		images_dir_path(dir, ami, images_part_file[i], dest,
		                sizeof(dest));
		iw->status =
		    images_chunk_file(dir, iw->src[i], dest, &m->part[i],
		                      iw->err, sizeof(iw->err));
		if (!iw->status && m->part[i].size == 0) {
			snprintf(iw->err, sizeof(iw->err), "%s is empty",
			         iw->src[i]);
			iw->status = -EINVAL;
		}
	}
	if (!iw->status && (iw->status = images_mark_complete(dir, ami)))
		snprintf(iw->err, sizeof(iw->err),
		         "cannot mark %s complete: %s", ami,
		         strerror(-iw->status));
	if (iw->status)
		remove_partial(dir, ami);
}

static void pack_image_record(struct mc_buf *b, const struct import_work *iw)
{
	const struct images_manifest *m = &iw->man;
	bool disk = m->part[IMAGES_DISK].present;
	mc_pack_map(b, 15);
	mc_pack_kv_str(b, "id", iw->job->ami);
	mc_pack_kv_str(b, "name", iw->name);
	mc_pack_kv_str(b, "description", iw->description);
	mc_pack_kv_str(b, "arch", iw->arch);
	mc_pack_kv_str(b, "root_device", ROOT_DEVICE);
	mc_pack_kv_str(b, "location", "");
	mc_pack_kv_str(b, "kernel", "");
	mc_pack_kv_str(b, "ramdisk", "");
	mc_pack_kv_str(b, "virt_type", "hvm");
	mc_pack_kv_str(b, "state", "available");
	mc_pack_kv_bool(b, "ena", false);
	mc_pack_kv_uint(b, "created", mc_wall_ms());
	mc_pack_kv_bool(b, "public", true);
	mc_pack_str(b, "bdm");
	mc_pack_array(b, disk ? 1 : 0);
	if (disk) {
		/* The root volume as DescribeImages shows it, in GiB. */
		uint64_t gib = (m->disk_virtual + GIB - 1) / GIB;
		mc_pack_map(b, 12);
		mc_pack_kv_str(b, "device", ROOT_DEVICE);
		mc_pack_kv_str(b, "virtual", "");
		mc_pack_kv_bool(b, "no_device", false);
		mc_pack_kv_bool(b, "ebs", true);
		mc_pack_kv_str(b, "snapshot", "");
		mc_pack_kv_str(b, "volume_type", "standard");
		mc_pack_kv_uint(b, "size", gib ? gib : 1);
		mc_pack_kv_uint(b, "iops", 0);
		mc_pack_kv_bool(b, "has_delete", true);
		mc_pack_kv_bool(b, "delete", true);
		mc_pack_kv_bool(b, "has_encrypted", false);
		mc_pack_kv_bool(b, "encrypted", false);
	}
	mc_pack_kv_str(b, "content", iw->job->ami);
}

/* Writes the manifest, this peer's copy and the image the API shows. */
static int import_records(struct peer *p, const struct import_work *iw,
                          char *err, size_t err_size)
{
	const char *ami = iw->job->ami;
	struct mc_buf b;
	char id[64];
	mc_buf_init(&b);
	images_manifest_pack(&iw->man, &b);
	int r = peer_records_put(&p->writer, IMAGES_KIND_CONTENT, ami, b.data,
	                         b.len, NULL);
	if (!r) {
		mc_buf_reset(&b);
		mc_pack_map(&b, 2);
		mc_pack_kv_str(&b, "peer", p->id);
		mc_pack_kv_uint(&b, "at", mc_wall_ms());
		snprintf(id, sizeof(id), "%s:%s", ami, p->id);
		r = peer_records_put(&p->writer, IMAGES_KIND_COPY, id, b.data,
		                     b.len, NULL);
	}
	if (!r) {
		mc_buf_reset(&b);
		pack_image_record(&b, iw);
		snprintf(id, sizeof(id), "%s:%s", iw->account, ami);
		r = peer_records_put(&p->writer, IMAGES_KIND_IMAGE, id, b.data,
		                     b.len, NULL);
	}
	mc_buf_free(&b);
	if (r)
		snprintf(err, err_size, "cannot write the records of %s: %s",
		         ami, strerror(-r));
	return r;
}

static void import_done(uv_work_t *w, int status)
{
	struct import_work *iw = w->data;
	struct peer_images *im = iw->im;
	char err[512];
	if (status == UV_ECANCELED || im->stopping) {
		job_end(iw->job, -ECANCELED, "this peer is stopping");
	} else if (iw->status) {
		job_end(iw->job, iw->status, iw->err);
	} else if (import_records(im->p, iw, err, sizeof(err))) {
		job_end(iw->job, -EIO, err);
	} else {
		uint64_t total = 0;
		for (int i = 0; i < IMAGES_PARTS; i++)
			total += iw->man.part[i].size;
		iw->job->bytes = total;
		mc_info("images", "imported %s \"%s\": %llu bytes",
		        iw->job->ami, iw->name, (unsigned long long)total);
		job_end(iw->job, 0, NULL);
	}
	images_manifest_free(&iw->man);
	free(iw);
	im->importing--;
	images_unbusy(im);
}

/* Copies an optional string field; false (with the reply) if bad. */
static bool opt_str(const struct mc_val *req, const char *key, char *out,
                    size_t size, struct mc_buf *reply)
{
	out[0] = '\0';
	if (!mc_map_get(req, key))
		return true;
	if (!mc_get_str(req, key, out, size) || !printable(out)) {
		peer_ctl_reply_error(reply, "%s: too long or not printable",
		                     key);
		return false;
	}
	return true;
}

static bool import_parse(struct peer *p, const struct mc_val *req,
                         struct import_work *iw, struct mc_buf *reply)
{
	static const char *const keys[IMAGES_PARTS] = {"kernel", "ramdisk",
	                                               "disk"};
	if (!opt_str(req, "name", iw->name, sizeof(iw->name), reply) ||
	    !opt_str(req, "description", iw->description,
	             sizeof(iw->description), reply) ||
	    !opt_str(req, "arch", iw->arch, sizeof(iw->arch), reply) ||
	    !opt_str(req, "disk_format", iw->claimed, sizeof(iw->claimed),
	             reply) ||
	    !opt_str(req, "cmdline", iw->man.cmdline, sizeof(iw->man.cmdline),
	             reply))
		return false;
	for (int i = 0; i < IMAGES_PARTS; i++) {
		if (!opt_str(req, keys[i], iw->src[i], sizeof(iw->src[i]),
		             reply))
			return false;
		if (iw->src[i][0] && iw->src[i][0] != '/') {
			peer_ctl_reply_error(
			    reply, "%s: the path must be absolute", keys[i]);
			return false;
		}
	}
	if (!name_ok(iw->name)) {
		peer_ctl_reply_error(reply,
		                     "--name: 3-128 letters, digits, spaces "
		                     "and ()[]./-'@_");
		return false;
	}
	if (!iw->src[IMAGES_KERNEL][0] && !iw->src[IMAGES_DISK][0]) {
		peer_ctl_reply_error(reply, "an image needs --kernel or --disk "
		                            "(or both)");
		return false;
	}
	if (iw->src[IMAGES_RAMDISK][0] && !iw->src[IMAGES_KERNEL][0]) {
		peer_ctl_reply_error(reply, "--ramdisk needs --kernel");
		return false;
	}
	if (iw->claimed[0] && strcmp(iw->claimed, "raw") != 0 &&
	    strcmp(iw->claimed, "qcow2") != 0) {
		peer_ctl_reply_error(reply,
		                     "--disk-format: raw or qcow2, not "
		                     "%s",
		                     iw->claimed);
		return false;
	}
	if (iw->claimed[0] && !iw->src[IMAGES_DISK][0]) {
		peer_ctl_reply_error(reply, "--disk-format needs --disk");
		return false;
	}
	if (!iw->arch[0])
		snprintf(iw->arch, sizeof(iw->arch), "x86_64");
	if (strcmp(iw->arch, "x86_64") != 0 && strcmp(iw->arch, "i386") != 0 &&
	    strcmp(iw->arch, "arm64") != 0) {
		peer_ctl_reply_error(reply, "--arch: x86_64, i386 or arm64");
		return false;
	}
	int r = peer_store_list(p->store, PEER_KIND_ACCOUNT, false, admin_one,
	                        iw->account);
	if (r <= 0) {
		peer_ctl_reply_error(reply, "the cloud has no admin account");
		return false;
	}
	struct name_scan scan = {.name = iw->name};
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%s:", iw->account);
	if (peer_store_list_prefix(p->store, IMAGES_KIND_IMAGE, prefix,
	                           name_one, &scan) > 0) {
		peer_ctl_reply_error(reply,
		                     "an image named \"%s\" exists "
		                     "already (%s)",
		                     iw->name, scan.taken_by);
		return false;
	}
	return true;
}

void images_cmd_import(struct peer *p, const struct mc_val *req,
                       struct mc_buf *reply)
{
	struct peer_images *im = p->images;
	if (!im || im->stopping) {
		peer_ctl_reply_error(reply, "the image store is stopped");
		return;
	}
	struct import_work *iw = xcalloc(1, sizeof(*iw));
	if (!import_parse(p, req, iw, reply)) {
		free(iw);
		return;
	}
	iw->work.data = iw;
	iw->im = im;
	iw->job = job_new(im);
	uint8_t rnd[9];
	char hex[19];
	mc_random(rnd, sizeof(rnd));
	mc_hex_encode(hex, rnd, sizeof(rnd));
	snprintf(iw->job->ami, sizeof(iw->job->ami), "ami-%.17s", hex);
	/* Its chunks are named by no manifest until it ends: a collection
	 * under way stops, and later ones keep every chunk meanwhile. */
	images_gc_writer_started(im);
	im->importing++;
	images_busy(im);
	int e = uv_queue_work(p->loop, &iw->work, import_work, import_done);
	if (e) {
		job_end(iw->job, -EIO, uv_strerror(e));
		peer_ctl_reply_error(reply, "cannot start the import: %s",
		                     uv_strerror(e));
		free(iw);
		im->importing--;
		images_unbusy(im);
		return;
	}
	reply_job(reply, iw->job);
}

/* ---- list --------------------------------------------------------------- */

struct holders_count {
	uint32_t n;
};

static int count_one(const struct peer_record *r, void *arg)
{
	(void)r;
	((struct holders_count *)arg)->n++;
	return 0;
}

struct content_item {
	char ami[32];
	uint64_t size;
	bool kernel, disk;
	char disk_format[8];
};

static int content_one(const struct peer_record *r, void *arg)
{
	struct mc_buf *list = arg;
	struct images_manifest m;
	struct content_item it;
	memset(&it, 0, sizeof(it));
	if (strlen(r->id) >= sizeof(it.ami))
		return 0;
	snprintf(it.ami, sizeof(it.ami), "%s", r->id);
	if (images_manifest_read(r->body, r->body_len, &m) == 0) {
		for (int i = 0; i < IMAGES_PARTS; i++)
			it.size += m.part[i].size;
		it.kernel = m.part[IMAGES_KERNEL].present;
		it.disk = m.part[IMAGES_DISK].present;
		snprintf(it.disk_format, sizeof(it.disk_format), "%s",
		         m.disk_format);
	}
	images_manifest_free(&m);
	mc_buf_append(list, &it, sizeof(it));
	return 0;
}

static int image_name_one(const struct peer_record *r, void *arg)
{
	struct name_scan *s = arg; /* name: the ami wanted */
	const char *colon = strchr(r->id, ':');
	if (!colon || strcmp(colon + 1, s->name) != 0)
		return 0;
	struct mc_doc *doc = mc_unpack(r->body, r->body_len);
	if (doc)
		mc_get_str(mc_doc_root(doc), "name", s->taken_by,
		           sizeof(s->taken_by));
	mc_doc_free(doc);
	return 1;
}

void images_cmd_list(struct peer *p, const struct mc_val *req,
                     struct mc_buf *reply)
{
	(void)req;
	struct mc_buf list;
	mc_buf_init(&list);
	/* The store cannot list inside a list: collect, then look up. */
	int e = peer_store_list(p->store, IMAGES_KIND_CONTENT, false,
	                        content_one, &list);
	if (e) {
		mc_buf_free(&list);
		peer_ctl_reply_error(reply, "cannot list images: %s",
		                     strerror(-e));
		return;
	}
	size_t n = list.len / sizeof(struct content_item);
	mc_pack_map(reply, 2);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_str(reply, "images");
	mc_pack_array(reply, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		struct content_item it;
		memcpy(&it, list.data + i * sizeof(it), sizeof(it));
		char prefix[40];
		struct holders_count hc = {0};
		snprintf(prefix, sizeof(prefix), "%s:", it.ami);
		peer_store_list_prefix(p->store, IMAGES_KIND_COPY, prefix,
		                       count_one, &hc);
		struct name_scan ns = {.name = it.ami};
		peer_store_list(p->store, IMAGES_KIND_IMAGE, false,
		                image_name_one, &ns);
		mc_pack_map(reply, 7);
		mc_pack_kv_str(reply, "ami", it.ami);
		mc_pack_kv_str(reply, "name", ns.taken_by);
		mc_pack_kv_uint(reply, "size", it.size);
		mc_pack_kv_str(reply, "disk_format",
		               it.disk ? it.disk_format : "");
		mc_pack_kv_bool(reply, "kernel", it.kernel);
		mc_pack_kv_bool(reply, "here",
		                images_assembled(p->cfg.data_dir, it.ami));
		mc_pack_kv_uint(reply, "holders", hc.n);
	}
	mc_buf_free(&list);
}
