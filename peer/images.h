/*
 * Images' content: files (kernel, ramdisk, disk) cut into content-addressed
 * chunks (BLAKE2b-256 of the bytes) under DATA_DIR/chunks, described by a
 * manifest record (kind "image-content", id the ami- id) and announced by
 * the peers that hold every chunk (kind "image-copy", id "AMI:PEERID"). A
 * host that lacks an image pulls its chunks over RPC ("chunk") from the
 * peers that hold it, several at once, verifying each, and moves on to
 * another source when one fails.
 */
#ifndef PEER_IMAGES_H
#define PEER_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct peer;

/* Where an image's files are once present on this host ("" if none). */
struct peer_image_files {
	char kernel[512];
	char ramdisk[512];
	char disk[512];
	char disk_format[8]; /* "qcow2" or "raw" */
	uint64_t disk_bytes; /* the disk's virtual size */
	char cmdline[1024];  /* the kernel's command line ("" when none) */
};

/* Registers the "chunk" handler. */
int peer_images_start(struct peer *p, char *err, size_t err_size);
void peer_images_stop(struct peer *p);

/*
 * True when image_id has a content manifest (so it can run); for
 * admission, which refuses images with nothing to boot.
 */
bool peer_image_known(struct peer *p, const char *image_id);

/*
 * Makes sure image_id's files are here, pulling what is missing, then
 * calls cb once from the loop: 0 and the files, or a negative errno and a
 * message (-ENOENT: no manifest; -EIO: no source had a chunk). Returns 0,
 * or a negative errno when cb will not run.
 */
int peer_image_ensure(struct peer *p, const char *image_id,
                      void (*cb)(void *ctx, int status, const char *message,
                                 const struct peer_image_files *files),
                      void *ctx);

#endif
