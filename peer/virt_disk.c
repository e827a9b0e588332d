/*
 * Copy-on-write root disks: a qcow2 overlay over an image's base, made by
 * qemu-img (qemu-utils). Blocking: runs on a worker thread (virt_overlay()).
 */
#include "virt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Reads what qemu-img said into err, trimmed to one line per message. */
static void read_message(int fd, char *err, size_t errlen)
{
	size_t len = 0;
	char chunk[512];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (ssize_t i = 0; i < n && len + 1 < errlen; i++)
			err[len++] = chunk[i] == '\n' ? ' ' : chunk[i];
	}
	while (len > 0 && err[len - 1] == ' ')
		len--;
	if (errlen)
		err[len] = '\0';
}

int virt_overlay_create(const char *base, const char *base_format,
                        const char *overlay, uint64_t size, char *err,
                        size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	if (!base || !overlay || base[0] != '/' || overlay[0] != '/')
		return -EINVAL;
	if (!base_format || (strcmp(base_format, "qcow2") != 0 &&
	                     strcmp(base_format, "raw") != 0))
		return -EINVAL;

	/* Claim the name first: qemu-img would overwrite a file there, and
	 * an overlay that exists belongs to some instance. */
	int claim =
	    open(overlay, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (claim < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", overlay, strerror(e));
		return -e;
	}
	close(claim);

	char size_arg[32];
	snprintf(size_arg, sizeof(size_arg), "%" PRIu64, size);
	char *argv[] = {"qemu-img",
	                "create",
	                "-q",
	                "-f",
	                "qcow2",
	                "-b",
	                (char *)base,
	                "-F",
	                (char *)base_format,
	                (char *)overlay,
	                size ? size_arg : NULL,
	                NULL};

	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		int e = errno;
		unlink(overlay);
		return -e;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	pid_t pid;
	int rc = posix_spawnp(&pid, "qemu-img", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		unlink(overlay);
		snprintf(err, errlen, "qemu-img: %s", strerror(rc));
		return -rc;
	}
	read_message(pipefd[0], err, errlen);
	close(pipefd[0]);

	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			int e = errno;
			unlink(overlay);
			return -e;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		unlink(overlay);
		if (errlen && !err[0])
			snprintf(err, errlen, "qemu-img failed (status %d)",
			         status);
		return -EIO;
	}
	return 0;
}
