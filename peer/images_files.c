/*
 * The image store's files: manifests, content-addressed chunk files and
 * the assembled images the hypervisor reads. Everything here blocks; the
 * loop calls it through uv_queue_work (images.c, images_ctl.c).
 */
#include "images_int.h"

#include "crypto.h"
#include "mem.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const images_part_key[IMAGES_PARTS] = {"kernel", "ramdisk", "disk"};
const char *const images_part_file[IMAGES_PARTS] = {"vmlinuz", "initrd",
                                                    "disk"};

/* ---- manifests ---------------------------------------------------------- */

uint32_t images_chunk_count(uint64_t size)
{
	return (uint32_t)((size + IMAGES_CHUNK_BYTES - 1) / IMAGES_CHUNK_BYTES);
}

void images_manifest_pack(const struct images_manifest *m, struct mc_buf *b)
{
	uint32_t n = 3;
	for (int i = 0; i < IMAGES_PARTS; i++)
		n += m->part[i].present;
	mc_pack_map(b, n);
	for (int i = 0; i < IMAGES_PARTS; i++) {
		const struct images_part *pt = &m->part[i];
		if (!pt->present)
			continue;
		mc_pack_str(b, images_part_key[i]);
		mc_pack_map(b, 2);
		mc_pack_kv_uint(b, "size", pt->size);
		mc_pack_str(b, "chunks");
		mc_pack_array(b, pt->n_chunks);
		for (uint32_t c = 0; c < pt->n_chunks; c++)
			mc_pack_bin(b, pt->chunks[c], IMAGES_HASH_BYTES);
	}
	mc_pack_kv_str(b, "disk_format", m->disk_format);
	mc_pack_kv_uint(b, "disk_virtual", m->disk_virtual);
	mc_pack_kv_str(b, "cmdline", m->cmdline);
}

static int part_read(const struct mc_val *v, struct images_part *pt)
{
	uint64_t size;
	const struct mc_val *chunks = mc_map_get(v, "chunks");
	if (v->type != MC_VAL_MAP || !mc_get_uint(v, "size", &size) ||
	    size > IMAGES_MAX_PART_BYTES || !chunks ||
	    chunks->type != MC_VAL_ARRAY ||
	    chunks->v.array.n != images_chunk_count(size))
		return -EINVAL;
	pt->present = true;
	pt->size = size;
	pt->n_chunks = chunks->v.array.n;
	pt->chunks =
	    xcalloc(pt->n_chunks ? pt->n_chunks : 1, IMAGES_HASH_BYTES);
	for (uint32_t c = 0; c < pt->n_chunks; c++) {
		const struct mc_val *h = &chunks->v.array.items[c];
		if (h->type != MC_VAL_BIN || h->v.s.n != IMAGES_HASH_BYTES)
			return -EINVAL;
		memcpy(pt->chunks[c], h->v.s.p, IMAGES_HASH_BYTES);
	}
	return 0;
}

int images_manifest_read(const void *body, size_t len,
                         struct images_manifest *m)
{
	memset(m, 0, sizeof(*m));
	struct mc_doc *doc = mc_unpack(body, len);
	const struct mc_val *root = doc ? mc_doc_root(doc) : NULL;
	int r = -EINVAL;
	if (!root || root->type != MC_VAL_MAP)
		goto out;
	for (int i = 0; i < IMAGES_PARTS; i++) {
		const struct mc_val *v = mc_map_get(root, images_part_key[i]);
		if (v && v->type != MC_VAL_NIL && part_read(v, &m->part[i]))
			goto out;
	}
	if (!m->part[IMAGES_KERNEL].present && !m->part[IMAGES_DISK].present)
		goto out;
	const struct mc_val *fmt = mc_map_get(root, "disk_format");
	if (fmt && !mc_get_str(root, "disk_format", m->disk_format,
	                       sizeof(m->disk_format)))
		goto out;
	if (m->part[IMAGES_DISK].present &&
	    strcmp(m->disk_format, "raw") != 0 &&
	    strcmp(m->disk_format, "qcow2") != 0)
		goto out;
	mc_get_uint(root, "disk_virtual", &m->disk_virtual);
	if (mc_map_get(root, "cmdline") &&
	    !mc_get_str(root, "cmdline", m->cmdline, sizeof(m->cmdline)))
		goto out;
	r = 0;
out:
	mc_doc_free(doc);
	return r;
}

void images_manifest_free(struct images_manifest *m)
{
	for (int i = 0; i < IMAGES_PARTS; i++) {
		free(m->part[i].chunks);
		m->part[i].chunks = NULL;
	}
}

bool images_ami_ok(const char *ami)
{
	size_t n = strlen(ami);
	if (strncmp(ami, "ami-", 4) != 0 || (n != 12 && n != 21))
		return false;
	for (size_t i = 4; i < n; i++)
		if (!strchr("0123456789abcdef", ami[i]))
			return false;
	return true;
}

/* ---- paths -------------------------------------------------------------- */

void images_chunk_path(const char *data_dir, const uint8_t *hash, char *out,
                       size_t size)
{
	char hex[2 * IMAGES_HASH_BYTES + 1];
	mc_hex_encode(hex, hash, IMAGES_HASH_BYTES);
	snprintf(out, size, "%s/chunks/%.2s/%s", data_dir, hex, hex);
}

void images_dir_path(const char *data_dir, const char *ami, const char *name,
                     char *out, size_t size)
{
	if (name)
		snprintf(out, size, "%s/images/%s/%s", data_dir, ami, name);
	else
		snprintf(out, size, "%s/images/%s", data_dir, ami);
}

/* mkdir -p of path's parent directories (path itself when dir). */
static int make_dirs(const char *path, bool dir)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	if (!dir) {
		char *slash = strrchr(tmp, '/');
		if (!slash)
			return 0;
		*slash = '\0';
	}
	for (char *s = tmp + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			/* 0711: QEMU's user reads the assembled files. */
			if (mkdir(tmp, 0711) != 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/* ---- chunk files -------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads up to n bytes, fewer only at the end of the file. */
static ssize_t read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

bool images_chunk_present(const char *data_dir, const uint8_t *hash)
{
	char path[4096];
	images_chunk_path(data_dir, hash, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/*
 * Writes data to path through a temporary file in the same directory. Two
 * writers of one chunk (a pull and an import) each use their own name.
 */
static int write_file_atomic(const char *path, const void *data, size_t len)
{
	static atomic_uint seq;
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(),
	         atomic_fetch_add(&seq, 1));
	int r = make_dirs(path, false);
	if (r)
		return r;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (!r && fsync(fd) != 0)
		r = -errno;
	if (close(fd) != 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) != 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

int images_chunk_write(const char *data_dir, const uint8_t *hash,
                       const void *data, size_t len, char *err, size_t err_size)
{
	char path[4096];
	images_chunk_path(data_dir, hash, path, sizeof(path));
	if (access(path, F_OK) == 0)
		return 0;
	int r = write_file_atomic(path, data, len);
	if (r)
		snprintf(err, err_size, "cannot write %s: %s", path,
		         strerror(-r));
	return r;
}

int images_chunk_read(const char *data_dir, const uint8_t *hash, uint8_t **out,
                      size_t *len)
{
	char path[4096];
	struct stat st;
	images_chunk_path(data_dir, hash, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > IMAGES_CHUNK_BYTES) {
		close(fd);
		return -EIO;
	}
	uint8_t *buf = xmalloc(st.st_size ? (size_t)st.st_size : 1);
	ssize_t n = read_full(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	*out = buf;
	*len = (size_t)n;
	return 0;
}

int images_chunk_file(const char *data_dir, const char *src,
                      const char *copy_to, struct images_part *out, char *err,
                      size_t err_size)
{
	memset(out, 0, sizeof(*out));
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_size, "cannot read %s: %s", src, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_size, "%s is not a regular file", src);
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > IMAGES_MAX_PART_BYTES) {
		snprintf(err, err_size, "%s is larger than 1 TiB", src);
		close(fd);
		return -EFBIG;
	}
	char tmp[4200];
	int cfd = -1, r = 0;
	if (copy_to) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", copy_to);
		if ((r = make_dirs(tmp, false)) == 0) {
			cfd =
			    open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			         0600);
			if (cfd < 0)
				r = -errno;
		}
		if (r) {
			snprintf(err, err_size, "cannot write %s: %s", tmp,
			         strerror(-r));
			close(fd);
			return r;
		}
	}
	uint32_t cap = images_chunk_count((uint64_t)st.st_size) + 1;
	out->chunks = xcalloc(cap, IMAGES_HASH_BYTES);
	out->present = true;
	uint8_t *buf = xmalloc(IMAGES_CHUNK_BYTES);
	for (;;) {
		ssize_t n = read_full(fd, buf, IMAGES_CHUNK_BYTES);
		if (n < 0) {
			r = (int)n;
			snprintf(err, err_size, "cannot read %s: %s", src,
			         strerror(-r));
			break;
		}
		if (n == 0)
			break;
		if (out->n_chunks + 1 >= cap) {
			/* The file grew while being read: take what fits. */
			snprintf(err, err_size, "%s changed while importing",
			         src);
			r = -EAGAIN;
			break;
		}
		uint8_t *h = out->chunks[out->n_chunks];
		mc_hash(h, IMAGES_HASH_BYTES, buf, (size_t)n);
		r = images_chunk_write(data_dir, h, buf, (size_t)n, err,
		                       err_size);
		if (!r && cfd >= 0 && (r = write_all(cfd, buf, (size_t)n)))
			snprintf(err, err_size, "cannot write %s: %s", tmp,
			         strerror(-r));
		if (r)
			break;
		out->n_chunks++;
		out->size += (uint64_t)n;
		if ((size_t)n < IMAGES_CHUNK_BYTES)
			break;
	}
	free(buf);
	close(fd);
	if (cfd >= 0) {
		if (!r && fsync(cfd) != 0)
			r = -errno;
		close(cfd);
		if (!r && rename(tmp, copy_to) != 0)
			r = -errno;
		if (r) {
			unlink(tmp);
			if (!err[0])
				snprintf(err, err_size, "cannot write %s: %s",
				         copy_to, strerror(-r));
		}
	}
	if (r) {
		free(out->chunks);
		memset(out, 0, sizeof(*out));
	}
	return r;
}

int images_assemble_part(const char *data_dir, const struct images_part *part,
                         const char *dest, char *err, size_t err_size)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", dest);
	int r = make_dirs(tmp, false);
	int fd =
	    r ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = r ? r : -errno;
		snprintf(err, err_size, "cannot write %s: %s", tmp,
		         strerror(-r));
		return r;
	}
	uint64_t total = 0;
	for (uint32_t c = 0; c < part->n_chunks && !r; c++) {
		uint8_t *data = NULL, h[IMAGES_HASH_BYTES];
		size_t len = 0;
		char hex[2 * IMAGES_HASH_BYTES + 1];
		mc_hex_encode(hex, part->chunks[c], IMAGES_HASH_BYTES);
		r = images_chunk_read(data_dir, part->chunks[c], &data, &len);
		if (r) {
			snprintf(err, err_size, "cannot read chunk %s: %s", hex,
			         strerror(-r));
			break;
		}
		mc_hash(h, sizeof(h), data, len);
		if (!mc_equal(h, part->chunks[c], IMAGES_HASH_BYTES)) {
			char path[4096];
			images_chunk_path(data_dir, part->chunks[c], path,
			                  sizeof(path));
			unlink(path);
			snprintf(err, err_size,
			         "chunk %s on disk does not match its hash "
			         "(removed)",
			         hex);
			r = -EBADMSG;
		} else if ((r = write_all(fd, data, len))) {
			snprintf(err, err_size, "cannot write %s: %s", tmp,
			         strerror(-r));
		}
		total += len;
		free(data);
	}
	if (!r && total != part->size) {
		snprintf(err, err_size, "%s: chunks hold %llu bytes, not %llu",
		         dest, (unsigned long long)total,
		         (unsigned long long)part->size);
		r = -EIO;
	}
	if (!r && fsync(fd) != 0)
		r = -errno;
	close(fd);
	if (!r && rename(tmp, dest) != 0) {
		r = -errno;
		snprintf(err, err_size, "cannot rename to %s: %s", dest,
		         strerror(-r));
	}
	if (r)
		unlink(tmp);
	return r;
}

/* ---- disks -------------------------------------------------------------- */

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int images_disk_probe(const char *path, const char *claimed, char format[8],
                      uint64_t *virtual_size, char *err, size_t err_size)
{
	uint8_t head[72];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_size, "cannot read %s: %s", path,
		         strerror(e));
		return -e;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, err_size, "%s is not a regular file", path);
		return -EINVAL;
	}
	ssize_t n = read_full(fd, head, sizeof(head));
	close(fd);
	if (n < 0) {
		snprintf(err, err_size, "cannot read %s: %s", path,
		         strerror((int)-n));
		return (int)n;
	}
	bool qcow2 = n >= 32 && memcmp(head, "QFI\xfb", 4) == 0;
	snprintf(format, 8, "%s", qcow2 ? "qcow2" : "raw");
	if (claimed && claimed[0] && strcmp(claimed, format) != 0) {
		snprintf(err, err_size,
		         "%s is not a %s image: its first bytes say %s", path,
		         claimed, format);
		return -EINVAL;
	}
	if (!qcow2) {
		if (st.st_size == 0) {
			snprintf(err, err_size, "%s is empty", path);
			return -EINVAL;
		}
		*virtual_size = (uint64_t)st.st_size;
		return 0;
	}
	uint32_t version = mc_load_be32(head + 4);
	/* A backing file would be a path on the importing host. */
	if (version < 2 || version > 3 || be64(head + 8) != 0) {
		snprintf(err, err_size,
		         "%s: only self-contained qcow2 version 2 or 3 images "
		         "can be imported%s",
		         path,
		         be64(head + 8) ? " (it names a backing file)" : "");
		return -EINVAL;
	}
	*virtual_size = be64(head + 24);
	return 0;
}

/* ---- assembled images --------------------------------------------------- */

bool images_assembled(const char *data_dir, const char *ami)
{
	char path[4096];
	images_dir_path(data_dir, ami, IMAGES_COMPLETE_MARK, path,
	                sizeof(path));
	return access(path, F_OK) == 0;
}

void images_files_fill(const char *data_dir, const char *ami,
                       const struct images_manifest *m,
                       struct peer_image_files *files)
{
	memset(files, 0, sizeof(*files));
	char *dst[IMAGES_PARTS] = {files->kernel, files->ramdisk, files->disk};
	size_t sz[IMAGES_PARTS] = {sizeof(files->kernel),
	                           sizeof(files->ramdisk), sizeof(files->disk)};
	for (int i = 0; i < IMAGES_PARTS; i++)
		if (m->part[i].present)
			images_dir_path(data_dir, ami, images_part_file[i],
			                dst[i], sz[i]);
	snprintf(files->cmdline, sizeof(files->cmdline), "%s", m->cmdline);
	if (m->part[IMAGES_DISK].present) {
		snprintf(files->disk_format, sizeof(files->disk_format), "%s",
		         m->disk_format);
		files->disk_bytes = m->disk_virtual ? m->disk_virtual
		                                    : m->part[IMAGES_DISK].size;
	}
}

int images_mark_complete(const char *data_dir, const char *ami)
{
	char path[4096];
	images_dir_path(data_dir, ami, IMAGES_COMPLETE_MARK, path,
	                sizeof(path));
	return write_file_atomic(path, "ok\n", 3);
}

int images_assemble(const char *data_dir, const char *ami,
                    const struct images_manifest *m, char *err, size_t err_size)
{
	for (int i = 0; i < IMAGES_PARTS; i++) {
		if (!m->part[i].present)
			continue;
		char dest[4096];
		images_dir_path(data_dir, ami, images_part_file[i], dest,
		                sizeof(dest));
		int r = images_assemble_part(data_dir, &m->part[i], dest, err,
		                             err_size);
		if (r)
			return r;
	}
	int r = images_mark_complete(data_dir, ami);
	if (r)
		snprintf(err, err_size, "cannot mark %s complete: %s", ami,
		         strerror(-r));
	return r;
}
