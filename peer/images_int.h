/*
 * Internals of the image store, shared by images*.c (and the unit test):
 * the manifest codec, the chunk files, and the blocking file work that the
 * loop hands to libuv's thread pool.
 */
#ifndef PEER_IMAGES_INT_H
#define PEER_IMAGES_INT_H

#include "buf.h"
#include "images.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGES_CHUNK_BYTES (4u << 20)
#define IMAGES_HASH_BYTES  32
/* Bounds on what a manifest from the network may claim. */
#define IMAGES_MAX_PART_BYTES (1ull << 40) /* 1 TiB */
#define IMAGES_CMDLINE_MAX    1024

#define IMAGES_KIND_CONTENT "image-content" /* id: ami-... */
#define IMAGES_KIND_COPY    "image-copy"    /* id: ami-...:PEERID */
#define IMAGES_KIND_IMAGE   "image"         /* id: account:ami-... */

enum images_part_index {
	IMAGES_KERNEL,
	IMAGES_RAMDISK,
	IMAGES_DISK,
	IMAGES_PARTS
};

/* The names of the parts in manifests and of the assembled files. */
extern const char *const images_part_key[IMAGES_PARTS];  /* "kernel" ... */
extern const char *const images_part_file[IMAGES_PARTS]; /* "vmlinuz" ... */

struct images_part {
	bool present;
	uint64_t size;
	uint32_t n_chunks;
	uint8_t (*chunks)[IMAGES_HASH_BYTES]; /* owned */
};

struct images_manifest {
	struct images_part part[IMAGES_PARTS];
	char disk_format[8];   /* "raw" or "qcow2" when there is a disk */
	uint64_t disk_virtual; /* the disk's size as the guest sees it */
	char cmdline[IMAGES_CMDLINE_MAX];
};

/* The number of chunks a part of size bytes is cut into. */
uint32_t images_chunk_count(uint64_t size);
void images_manifest_pack(const struct images_manifest *m, struct mc_buf *b);
/*
 * Decodes and checks a manifest body (chunk counts match the sizes, every
 * hash is 32 bytes, sizes and strings within bounds). 0 or -EINVAL; *m is
 * then owned by the caller (images_manifest_free) either way.
 */
int images_manifest_read(const void *body, size_t len,
                         struct images_manifest *m);
void images_manifest_free(struct images_manifest *m);

/* DATA_DIR/chunks/XX/HEX for a hash (out at least 4096 bytes). */
void images_chunk_path(const char *data_dir, const uint8_t *hash, char *out,
                       size_t size);
/* DATA_DIR/images/AMI[/NAME] (name may be NULL). */
void images_dir_path(const char *data_dir, const char *ami, const char *name,
                     char *out, size_t size);

/*
 * Blocking file work (thread pool or tests). Each returns 0 or a negative
 * errno with a one-line reason in err.
 */

/* Writes a chunk (already verified) as its content-addressed file: a
 * temporary file, fsync, rename. An existing file is left alone. */
int images_chunk_write(const char *data_dir, const uint8_t *hash,
                       const void *data, size_t len, char *err,
                       size_t err_size);
/* Reads a chunk file into *out (malloc'ed) without checking it; -ENOENT. */
int images_chunk_read(const char *data_dir, const uint8_t *hash, uint8_t **out,
                      size_t *len);
bool images_chunk_present(const char *data_dir, const uint8_t *hash);

/*
 * Cuts the file src into chunks under data_dir and fills *out; with copy_to
 * also writes the whole file there (temporary name, then renamed).
 */
int images_chunk_file(const char *data_dir, const char *src,
                      const char *copy_to, struct images_part *out, char *err,
                      size_t err_size);
/* Makes dest from a part's chunks, verifying each; a chunk that does not
 * match its hash is deleted and the call fails with -EBADMSG. */
int images_assemble_part(const char *data_dir, const struct images_part *part,
                         const char *dest, char *err, size_t err_size);

/*
 * Looks at a disk file's first bytes: *format "qcow2" or "raw", and for
 * qcow2 the virtual size; -EINVAL (with err) for a qcow2 image that names
 * a backing file, or for a claimed format that the bytes contradict
 * (claimed may be NULL or "" to detect).
 */
int images_disk_probe(const char *path, const char *claimed, char format[8],
                      uint64_t *virtual_size, char *err, size_t err_size);

/* True when image_id's assembled files are complete on this host. */
bool images_assembled(const char *data_dir, const char *ami);
/* Fills files for an assembled image. */
void images_files_fill(const char *data_dir, const char *ami,
                       const struct images_manifest *m,
                       struct peer_image_files *files);
/* Assembles every part of m into DATA_DIR/images/AMI and marks it done. */
int images_assemble(const char *data_dir, const char *ami,
                    const struct images_manifest *m, char *err,
                    size_t err_size);
/* Writes the marker that says every file of ami is complete. */
int images_mark_complete(const char *data_dir, const char *ami);

struct peer;
struct image_pull;
struct images_job;

/* The module's state on the daemon (p->images). */
struct peer_images {
	struct peer *p;
	struct image_pull *pulls; /* one per image being pulled */
	struct images_job *jobs;  /* the control socket's (images_ctl.c) */
	uint32_t next_job;
	unsigned busy;           /* work items and calls that will call back */
	unsigned chunk_delay_ms; /* tests: serve each chunk this late */
	bool stopping;
};

/* Counts one more callback to wait for; images_unbusy when it ran (frees
 * the module once stopped and idle). */
void images_busy(struct peer_images *im);
void images_unbusy(struct peer_images *im);
void images_jobs_free(struct peer_images *im);

/* Loads ami's manifest from the store: 0, -ENOENT, -EINVAL. */
int images_manifest_load(struct peer *p, const char *ami,
                         struct images_manifest *m);
bool images_ami_ok(const char *ami);

/* Control-socket commands (images_ctl.c). */
struct mc_val;
void images_cmd_import(struct peer *p, const struct mc_val *req,
                       struct mc_buf *reply);
void images_cmd_pull(struct peer *p, const struct mc_val *req,
                     struct mc_buf *reply);
void images_cmd_job(struct peer *p, const struct mc_val *req,
                    struct mc_buf *reply);
void images_cmd_list(struct peer *p, const struct mc_val *req,
                     struct mc_buf *reply);

/* `mallee admin image ...` (images_cli.c): whether argv asks for it, and
 * the command itself (argv as cli_admin got it). */
bool cli_admin_image_wanted(int argc, char **argv);
int cli_admin_image(int argc, char **argv);

/*
 * peer_image_ensure with the number of bytes pulled over the network
 * reported to *bytes (may be NULL; must stay valid until cb).
 */
int images_ensure(struct peer *p, const char *image_id,
                  void (*cb)(void *ctx, int status, const char *message,
                             const struct peer_image_files *files),
                  void *ctx, uint64_t *bytes);

#endif
