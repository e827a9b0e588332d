/*
 * The image store's files without a daemon: manifests survive a round trip
 * and bad ones are refused; a file cut into chunks is the chunks' hashes
 * and assembles back byte for byte; a tampered chunk is caught and
 * removed; disk formats are told apart by their bytes.
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
#include "wire.h"

static char tmpdir[64];
static char err[512];

static void fill_random(uint8_t *p, size_t n)
{
	mc_random(p, n);
}

static int write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *n)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return NULL;
	uint8_t *b = malloc((size_t)st.st_size + 1);
	int fd = open(path, O_RDONLY);
	ssize_t r = read(fd, b, (size_t)st.st_size);
	close(fd);
	*n = r < 0 ? 0 : (size_t)r;
	return b;
}

static void make_part(struct images_part *pt, uint64_t size, uint8_t seed)
{
	pt->present = true;
	pt->size = size;
	pt->n_chunks = images_chunk_count(size);
	pt->chunks = calloc(pt->n_chunks + 1, IMAGES_HASH_BYTES);
	for (uint32_t i = 0; i < pt->n_chunks; i++)
		memset(pt->chunks[i], seed + (int)i, IMAGES_HASH_BYTES);
}

static void test_chunk_count(void)
{
	CHECK_EQ_U64(images_chunk_count(0), 0);
	CHECK_EQ_U64(images_chunk_count(1), 1);
	CHECK_EQ_U64(images_chunk_count(IMAGES_CHUNK_BYTES), 1);
	CHECK_EQ_U64(images_chunk_count(IMAGES_CHUNK_BYTES + 1), 2);
	CHECK_EQ_U64(images_chunk_count(64ull << 20), 16);
}

static void test_manifest_round_trip(void)
{
	struct images_manifest m, back;
	memset(&m, 0, sizeof(m));
	make_part(&m.part[IMAGES_KERNEL], 5000000, 1);
	make_part(&m.part[IMAGES_DISK], 3 * IMAGES_CHUNK_BYTES, 9);
	snprintf(m.disk_format, sizeof(m.disk_format), "qcow2");
	m.disk_virtual = 1ull << 30;
	snprintf(m.cmdline, sizeof(m.cmdline), "root=/dev/vda console=ttyS0");
	struct mc_buf b;
	mc_buf_init(&b);
	images_manifest_pack(&m, &b);
	CHECK(images_manifest_read(b.data, b.len, &back) == 0);
	CHECK(back.part[IMAGES_KERNEL].present);
	CHECK(!back.part[IMAGES_RAMDISK].present);
	CHECK(back.part[IMAGES_DISK].present);
	CHECK_EQ_U64(back.part[IMAGES_KERNEL].size, 5000000);
	CHECK_EQ_U64(back.part[IMAGES_KERNEL].n_chunks, 2);
	CHECK_EQ_U64(back.part[IMAGES_DISK].n_chunks, 3);
	CHECK(memcmp(back.part[IMAGES_DISK].chunks[2],
	             m.part[IMAGES_DISK].chunks[2], IMAGES_HASH_BYTES) == 0);
	CHECK_STR(back.disk_format, "qcow2");
	CHECK_EQ_U64(back.disk_virtual, 1ull << 30);
	CHECK_STR(back.cmdline, "root=/dev/vda console=ttyS0");
	images_manifest_free(&back);
	images_manifest_free(&m);
	mc_buf_free(&b);
}

/* Packs a manifest by hand so each test breaks one thing. */
static int read_manual(uint64_t size, uint32_t n_chunks, size_t hash_len,
                       const char *format, bool with_disk)
{
	struct mc_buf b;
	uint8_t h[64] = {0};
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_str(&b, with_disk ? "disk" : "ramdisk");
	mc_pack_map(&b, 2);
	mc_pack_kv_uint(&b, "size", size);
	mc_pack_str(&b, "chunks");
	mc_pack_array(&b, n_chunks);
	for (uint32_t i = 0; i < n_chunks; i++)
		mc_pack_bin(&b, h, hash_len);
	mc_pack_kv_str(&b, "disk_format", format);
	struct images_manifest m;
	int r = images_manifest_read(b.data, b.len, &m);
	images_manifest_free(&m);
	mc_buf_free(&b);
	return r;
}

static void test_manifest_refused(void)
{
	CHECK(read_manual(10, 1, 32, "raw", true) == 0);
	CHECK(read_manual(10, 2, 32, "raw", true) == -EINVAL);
	CHECK(read_manual(IMAGES_CHUNK_BYTES + 1, 1, 32, "raw", true) ==
	      -EINVAL);
	CHECK(read_manual(10, 1, 31, "raw", true) == -EINVAL);
	CHECK(read_manual(10, 1, 32, "vmdk", true) == -EINVAL);
	/* Nothing to boot: a ramdisk alone. */
	CHECK(read_manual(10, 1, 32, "raw", false) == -EINVAL);
	CHECK(read_manual(IMAGES_MAX_PART_BYTES + 1, 0, 32, "raw", true) ==
	      -EINVAL);
	struct images_manifest m;
	CHECK(images_manifest_read("\x93\x01", 2, &m) == -EINVAL);
	images_manifest_free(&m);
	CHECK(images_manifest_read("", 0, &m) == -EINVAL);
	images_manifest_free(&m);
}

static void test_ami_ok(void)
{
	CHECK(images_ami_ok("ami-0123456789abcdef0"));
	CHECK(images_ami_ok("ami-01234567"));
	CHECK(!images_ami_ok("ami-0123456789ABCDEF0"));
	CHECK(!images_ami_ok("ami-../../etc"));
	CHECK(!images_ami_ok("i-0123456789abcdef0"));
}

static void test_chunk_and_assemble(void)
{
	size_t size = 2 * IMAGES_CHUNK_BYTES + 17;
	uint8_t *data = malloc(size);
	fill_random(data, size);
	char src[128], copy[128], dest[128];
	snprintf(src, sizeof(src), "%s/src.bin", tmpdir);
	snprintf(copy, sizeof(copy), "%s/copy/disk", tmpdir);
	snprintf(dest, sizeof(dest), "%s/out/disk", tmpdir);
	CHECK(write_file(src, data, size) == 0);

	struct images_part pt;
	CHECK(images_chunk_file(tmpdir, src, copy, &pt, err, sizeof(err)) == 0);
	CHECK_EQ_U64(pt.size, size);
	CHECK_EQ_U64(pt.n_chunks, 3);
	for (uint32_t i = 0; i < pt.n_chunks; i++) {
		size_t off = (size_t)i * IMAGES_CHUNK_BYTES;
		size_t len = size - off < IMAGES_CHUNK_BYTES
		                 ? size - off
		                 : IMAGES_CHUNK_BYTES;
		uint8_t h[IMAGES_HASH_BYTES];
		mc_hash(h, sizeof(h), data + off, len);
		CHECK(memcmp(h, pt.chunks[i], sizeof(h)) == 0);
		CHECK(images_chunk_present(tmpdir, h));
		uint8_t *c = NULL;
		size_t clen = 0;
		CHECK(images_chunk_read(tmpdir, h, &c, &clen) == 0);
		CHECK_EQ_U64(clen, len);
		CHECK(c && memcmp(c, data + off, len) == 0);
		free(c);
	}
	size_t n = 0;
	uint8_t *back = read_file(copy, &n);
	CHECK(back && n == size && memcmp(back, data, size) == 0);
	free(back);

	CHECK(images_assemble_part(tmpdir, &pt, dest, err, sizeof(err)) == 0);
	back = read_file(dest, &n);
	CHECK(back && n == size && memcmp(back, data, size) == 0);
	free(back);

	/* A chunk altered on disk: assembly refuses it and removes it. */
	char path[4096];
	images_chunk_path(tmpdir, pt.chunks[1], path, sizeof(path));
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, "X", 1, 100) == 1);
	close(fd);
	CHECK(images_assemble_part(tmpdir, &pt, dest, err, sizeof(err)) ==
	      -EBADMSG);
	CHECK(strstr(err, "does not match") != NULL);
	CHECK(!images_chunk_present(tmpdir, pt.chunks[1]));
	/* Missing now: assembly says which chunk. */
	CHECK(images_assemble_part(tmpdir, &pt, dest, err, sizeof(err)) ==
	      -ENOENT);
	free(pt.chunks);
	free(data);
}

static void test_chunk_file_errors(void)
{
	struct images_part pt;
	char src[128];
	snprintf(src, sizeof(src), "%s/absent", tmpdir);
	CHECK(images_chunk_file(tmpdir, src, NULL, &pt, err, sizeof(err)) ==
	      -ENOENT);
	CHECK(strstr(err, "absent") != NULL);
	CHECK(images_chunk_file(tmpdir, tmpdir, NULL, &pt, err, sizeof(err)) ==
	      -EINVAL);
	/* Identical chunks are one file. */
	size_t size = 2 * IMAGES_CHUNK_BYTES;
	uint8_t *zero = calloc(1, size);
	snprintf(src, sizeof(src), "%s/zero", tmpdir);
	CHECK(write_file(src, zero, size) == 0);
	CHECK(images_chunk_file(tmpdir, src, NULL, &pt, err, sizeof(err)) == 0);
	CHECK_EQ_U64(pt.n_chunks, 2);
	CHECK(memcmp(pt.chunks[0], pt.chunks[1], IMAGES_HASH_BYTES) == 0);
	free(pt.chunks);
	free(zero);
}

static void test_disk_probe(void)
{
	char path[128], fmt[8];
	uint64_t vsize = 0;
	uint8_t head[512] = {0};
	snprintf(path, sizeof(path), "%s/disk.qcow2", tmpdir);
	memcpy(head, "QFI\xfb\0\0\0\3", 8);
	/* virtual size 1 GiB at offset 24, big-endian */
	head[24 + 4] = 0x40;
	CHECK(write_file(path, head, sizeof(head)) == 0);
	CHECK(images_disk_probe(path, NULL, fmt, &vsize, err, sizeof(err)) ==
	      0);
	CHECK_STR(fmt, "qcow2");
	CHECK_EQ_U64(vsize, 1ull << 30);
	CHECK(images_disk_probe(path, "qcow2", fmt, &vsize, err, sizeof(err)) ==
	      0);
	CHECK(images_disk_probe(path, "raw", fmt, &vsize, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "not a raw image") != NULL);
	/* A backing file would be a path on the importing host. */
	head[15] = 0x80;
	CHECK(write_file(path, head, sizeof(head)) == 0);
	CHECK(images_disk_probe(path, NULL, fmt, &vsize, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "backing file") != NULL);

	snprintf(path, sizeof(path), "%s/disk.raw", tmpdir);
	memset(head, 0, sizeof(head));
	CHECK(write_file(path, head, sizeof(head)) == 0);
	CHECK(images_disk_probe(path, "", fmt, &vsize, err, sizeof(err)) == 0);
	CHECK_STR(fmt, "raw");
	CHECK_EQ_U64(vsize, 512);
	CHECK(images_disk_probe(path, "qcow2", fmt, &vsize, err, sizeof(err)) ==
	      -EINVAL);
}

static void test_assemble_image(void)
{
	const char *ami = "ami-0123456789abcdef0";
	char src[128];
	uint8_t kernel[1000];
	fill_random(kernel, sizeof(kernel));
	snprintf(src, sizeof(src), "%s/kernel", tmpdir);
	CHECK(write_file(src, kernel, sizeof(kernel)) == 0);
	struct images_manifest m;
	memset(&m, 0, sizeof(m));
	CHECK(images_chunk_file(tmpdir, src, NULL, &m.part[IMAGES_KERNEL], err,
	                        sizeof(err)) == 0);
	CHECK(!images_assembled(tmpdir, ami));
	CHECK(images_assemble(tmpdir, ami, &m, err, sizeof(err)) == 0);
	CHECK(images_assembled(tmpdir, ami));
	struct peer_image_files files;
	images_files_fill(tmpdir, ami, &m, &files);
	CHECK(strstr(files.kernel, "/images/ami-0123456789abcdef0/vmlinuz"));
	CHECK_STR(files.disk, "");
	size_t n = 0;
	uint8_t *back = read_file(files.kernel, &n);
	CHECK(back && n == sizeof(kernel) &&
	      memcmp(back, kernel, sizeof(kernel)) == 0);
	free(back);
	images_manifest_free(&m);
}

int main(void)
{
	mc_log_set_level(MC_LOG_WARN);
	if (mc_crypto_init() != 0)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mallee-images-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_chunk_count);
	RUN(test_manifest_round_trip);
	RUN(test_manifest_refused);
	RUN(test_ami_ok);
	RUN(test_chunk_and_assemble);
	RUN(test_chunk_file_errors);
	RUN(test_disk_probe);
	RUN(test_assemble_image);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	fprintf(stderr, "%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}
