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
/* The marker, in an image's directory, that says every file is complete. */
#define IMAGES_COMPLETE_MARK ".complete"
/* Writes the marker that says every file of ami is complete. */
int images_mark_complete(const char *data_dir, const char *ami);

struct peer;
struct image_pull;
struct images_job;
struct images_gc;

/* The module's state on the daemon (p->images). */
struct peer_images {
	struct peer *p;
	struct image_pull *pulls; /* one per image being pulled */
	struct images_job *jobs;  /* the control socket's (images_ctl.c) */
	struct images_gc *gc;     /* the collector (images_gc.c) */
	uint32_t next_job;
	unsigned busy;           /* work items and calls that will call back */
	unsigned importing;      /* imports writing chunks (images_ctl.c) */
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
void images_cmd_gc(struct peer *p, const struct mc_val *req,
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

/*
 * For the collector: calls fn for every image being pulled, once with
 * hash NULL and then once per distinct chunk it needs (borrowed).
 */
void images_pulls_each(struct peer_images *im,
                       void (*fn)(void *arg, const char *ami,
                                  const uint8_t *hash),
                       void *arg);
/* Calls fn with the image of every job (import or pull) not yet done. */
void images_jobs_each_running(struct peer_images *im,
                              void (*fn)(void *arg, const char *ami),
                              void *arg);

/* ---- collecting content nobody needs (images_gc.c) ---------------------- */

#define IMAGES_GC_FIRST_MS (2 * 60 * 1000)  /* the first pass after start */
#define IMAGES_GC_EVERY_MS (10 * 60 * 1000) /* then one every 10 minutes */
/* Content younger than this stays, so that chunks pulled before their
 * manifest arrived by gossip are not taken from under it. */
#define IMAGES_GC_GRACE_MS (60 * 60 * 1000)

enum images_gc_what {
	IMAGES_GC_CHUNK, /* a chunk file */
	IMAGES_GC_IMAGE, /* an image's assembled files (its directory) */
	IMAGES_GC_COPY   /* this peer's image-copy record */
};

enum images_gc_verdict {
	IMAGES_GC_DROP,
	IMAGES_GC_KEEP_LIVE,   /* a registered image's manifest names it */
	IMAGES_GC_KEEP_IN_USE, /* a pull, an import or an instance uses it */
	IMAGES_GC_KEEP_YOUNG   /* written within the grace period */
};

/* Something a pass may drop, found on disk (or in the store: a copy). */
struct images_gc_item {
	enum images_gc_what what;
	uint8_t hash[IMAGES_HASH_BYTES]; /* a chunk's */
	char ami[32];                    /* an image's or a copy's */
	uint64_t bytes, files;
	uint64_t mtime_ms; /* an image's: its newest file's */
	enum images_gc_verdict verdict;
};

/*
 * What the store and the loop said when a pass began. Live: images still
 * registered (a live "image" record) whose manifest exists, and their
 * chunks. Busy: images being pulled or imported or used by an instance of
 * this host that is not terminated, and the chunks they need.
 * chunks_unknown: some chunk in use is in neither set (an import is
 * cutting files no manifest names yet, or a manifest cannot be read), so
 * no chunk may go.
 */
struct images_gc_view {
	uint8_t (*live_chunks)[IMAGES_HASH_BYTES];
	size_t n_live_chunks;
	uint8_t (*busy_chunks)[IMAGES_HASH_BYTES];
	size_t n_busy_chunks;
	char (*live_amis)[32];
	size_t n_live_amis;
	char (*busy_amis)[32];
	size_t n_busy_amis;
	bool chunks_unknown;
	uint64_t now_ms, grace_ms;
};

/*
 * Decides, without touching anything but its arguments, what a pass drops:
 * sets every item's verdict and returns how many are IMAGES_GC_DROP. Busy
 * wins over live, live over young. A chunk or an image goes when neither
 * live nor busy and older than the grace (no chunk when chunks_unknown);
 * a copy goes when its image is neither live nor busy and its files (if
 * any are here) go too. Sorts the view's four sets in place.
 */
size_t images_gc_decide(struct images_gc_view *v, struct images_gc_item *items,
                        size_t n);

/*
 * Removes the temporary files ("NAME.tmp", "NAME.tmp.PID.N") a killed
 * peer left under DATA_DIR/chunks and DATA_DIR/images. Blocking; only
 * while nothing of this process writes there (at start). Counts to *files
 * and *bytes.
 */
void images_gc_sweep_temp(const char *data_dir, uint64_t *files,
                          uint64_t *bytes);

/* The collector's timer and state (peer_images_start and _stop). */
void images_gc_start(struct peer_images *im);
void images_gc_stop(struct peer_images *im);
void images_gc_free(struct peer_images *im);
/* A pull or an import is about to write: a pass under way stops. */
void images_gc_writer_started(struct peer_images *im);
/*
 * Runs a pass with grace_ms as soon as none runs; cb (may be NULL) once it
 * ended: 0 and the bytes removed, or a negative errno and a message
 * (-EINTR: a pull or an import began meanwhile; -ECANCELED: stopping).
 * Returns 0, or a negative errno when cb will not run.
 */
int images_gc_request(struct peer_images *im, uint64_t grace_ms,
                      void (*cb)(void *ctx, int status, const char *message,
                                 uint64_t bytes),
                      void *ctx);

#endif
