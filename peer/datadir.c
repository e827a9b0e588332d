#include "datadir.h"

#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDENTITY_MAGIC "mallee-identity-1\n"

char *peer_datadir_path(const char *dir, const char *file)
{
	return xasprintf("%s/%s", dir, file);
}

int peer_datadir_prepare(const char *dir, bool create, char *err,
                         size_t err_size)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		int e = errno;
		if (e == ENOENT && create) {
			if (mkdir(dir, 0700) == 0)
				return 0;
			e = errno;
			snprintf(err, err_size, "cannot create data dir %s: %s",
			         dir, strerror(e));
			return -e;
		}
		snprintf(err, err_size, "data dir %s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, err_size, "data dir %s is not a directory", dir);
		return -ENOTDIR;
	}
	/*
	 * access() answers for root as if every mode bit were set, so try
	 * creating a file instead: that is the question that matters.
	 */
	char *probe = peer_datadir_path(dir, ".probe");
	int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int e = errno;
	if (fd >= 0) {
		close(fd);
		unlink(probe);
	}
	free(probe);
	if (fd < 0) {
		snprintf(err, err_size, "data dir %s is not writable: %s", dir,
		         strerror(e));
		return -e;
	}
	return 0;
}

static bool exists(const char *dir, const char *file)
{
	char *p = peer_datadir_path(dir, file);
	bool r = access(p, F_OK) == 0;
	free(p);
	return r;
}

bool peer_datadir_has_cloud(const char *dir)
{
	return exists(dir, "cloud.keys") || exists(dir, "mallee.db");
}

int peer_datadir_lock(const char *dir, char *err, size_t err_size)
{
	char *path = peer_datadir_path(dir, "lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_size, "cannot open %s: %s", path,
		         strerror(e));
		free(path);
		return -e;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		if (n > 0)
			pid[n] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			snprintf(err, err_size,
			         "data dir %s is in use by another peer "
			         "(pid %s)",
			         dir, pid[0] ? pid : "unknown");
		else
			snprintf(err, err_size, "cannot lock %s: %s", path,
			         strerror(e));
		close(fd);
		free(path);
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}
	free(path);
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* The lock holds without the pid; it is only for messages. */
	}
	return fd;
}

void peer_datadir_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

int peer_write_file_atomic(const char *dir, const char *file, const void *data,
                           size_t len, int mode)
{
	char *tmp = xasprintf("%s/.%s.tmp", dir, file);
	char *dst = peer_datadir_path(dir, file);
	int r = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	const uint8_t *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		p += n;
		left -= (size_t)n;
	}
	if (r == 0 && (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0))
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, dst) != 0)
		r = -errno;
	if (r)
		unlink(tmp);
	else {
		/* Make the rename itself durable. */
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
out:
	free(tmp);
	free(dst);
	return r;
}

/* Reads a whole small secret file into buf; returns its length or -errno. */
static long read_small(const char *dir, const char *file, void *buf, size_t cap,
                       char *err, size_t err_size)
{
	char *path = peer_datadir_path(dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long r;
	if (fd < 0) {
		r = -errno;
		snprintf(err, err_size, "cannot read %s: %s", path,
		         strerror(errno));
		free(path);
		return r;
	}
	ssize_t n = read(fd, buf, cap);
	r = n < 0 ? -errno : (long)n;
	if (n < 0)
		snprintf(err, err_size, "cannot read %s: %s", path,
		         strerror(errno));
	else if ((size_t)n == cap) {
		snprintf(err, err_size, "%s is larger than expected", path);
		r = -EINVAL;
	}
	close(fd);
	free(path);
	return r;
}

int peer_keyring_load(const char *dir, struct peer_keyring *out, char *err,
                      size_t err_size)
{
	char text[PEER_KEYRING_MAX * 80 + 1];
	long n = read_small(dir, "cloud.keys", text, sizeof(text) - 1, err,
	                    err_size);
	if (n < 0)
		return (int)n;
	text[n] = '\0';
	out->n = 0;
	char *line = text;
	while (line && *line) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == '\0') {
			line = next;
			continue;
		}
		if (out->n == PEER_KEYRING_MAX ||
		    mc_hex_decode(out->keys[out->n], MC_KEY_BYTES, line,
		                  strlen(line)) != 0) {
			snprintf(err, err_size,
			         "%s/cloud.keys is corrupt (expected up to %d "
			         "lines of 64 hex digits)",
			         dir, PEER_KEYRING_MAX);
			mc_wipe(text, sizeof(text));
			mc_wipe(out, sizeof(*out));
			return -EINVAL;
		}
		out->n++;
		line = next;
	}
	mc_wipe(text, sizeof(text));
	if (out->n == 0) {
		snprintf(err, err_size, "%s/cloud.keys holds no key", dir);
		return -EINVAL;
	}
	return 0;
}

int peer_keyring_save(const char *dir, const struct peer_keyring *k)
{
	char text[PEER_KEYRING_MAX * 80 + 1];
	size_t len = 0;
	for (unsigned i = 0; i < k->n; i++) {
		mc_hex_encode(text + len, k->keys[i], MC_KEY_BYTES);
		len += 2 * MC_KEY_BYTES;
		text[len++] = '\n';
	}
	int r = peer_write_file_atomic(dir, "cloud.keys", text, len, 0600);
	mc_wipe(text, sizeof(text));
	return r;
}

int peer_identity_load(const char *dir, struct mc_identity *out, char *err,
                       size_t err_size)
{
	size_t magic = strlen(IDENTITY_MAGIC);
	uint8_t buf[256];
	long n =
	    read_small(dir, "identity.key", buf, sizeof(buf), err, err_size);
	if (n < 0)
		return (int)n;
	if ((size_t)n != magic + MC_SIGN_SK_BYTES + MC_BOX_SK_BYTES ||
	    memcmp(buf, IDENTITY_MAGIC, magic) != 0) {
		snprintf(err, err_size, "%s/identity.key is corrupt", dir);
		mc_wipe(buf, sizeof(buf));
		return -EINVAL;
	}
	memcpy(out->sign_sk, buf + magic, MC_SIGN_SK_BYTES);
	memcpy(out->box_sk, buf + magic + MC_SIGN_SK_BYTES, MC_BOX_SK_BYTES);
	/* An Ed25519 secret key carries its public half in its last 32. */
	memcpy(out->sign_pk, out->sign_sk + 32, MC_SIGN_PK_BYTES);
	mc_wipe(buf, sizeof(buf));
	mc_box_public(out->box_pk, out->box_sk);
	if (!mc_identity_check(out)) {
		snprintf(err, err_size, "%s/identity.key is corrupt", dir);
		mc_wipe(out, sizeof(*out));
		return -EINVAL;
	}
	return 0;
}

int peer_identity_save(const char *dir, const struct mc_identity *id)
{
	size_t magic = strlen(IDENTITY_MAGIC);
	uint8_t buf[128];
	memcpy(buf, IDENTITY_MAGIC, magic);
	memcpy(buf + magic, id->sign_sk, MC_SIGN_SK_BYTES);
	memcpy(buf + magic + MC_SIGN_SK_BYTES, id->box_sk, MC_BOX_SK_BYTES);
	int r = peer_write_file_atomic(
	    dir, "identity.key", buf,
	    magic + MC_SIGN_SK_BYTES + MC_BOX_SK_BYTES, 0600);
	mc_wipe(buf, sizeof(buf));
	return r;
}

void peer_id_of(const struct mc_identity *id, char out[17])
{
	uint8_t h[16];
	mc_hash(h, sizeof(h), id->sign_pk, sizeof(id->sign_pk));
	mc_hex_encode(out, h, 8);
}
