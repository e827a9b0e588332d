/*
 * Keeping a guest's console log bounded. QEMU appends to it for as long as
 * the guest prints (a guest in a panic-and-reboot loop prints a boot log a
 * second), and nothing else would ever shorten it. GetConsoleOutput shows
 * only the last INST_CONSOLE_MAX bytes, so the log is cut back to its tail
 * once it passes a cap.
 *
 * QEMU keeps writing while this runs. Its file is open with O_APPEND
 * (append='on' in the domain), so after the truncation its next write
 * lands at the new end, and the tail is written back with O_APPEND too: a
 * line the guest prints in between lands before the kept tail instead of
 * after it, and nothing is overwritten.
 */
#include "console_log.h"

#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int64_t peer_console_log_cap(const char *path, uint64_t max, uint64_t keep)
{
	if (keep > max)
		return -EINVAL;
	int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	int64_t ret = 0;
	uint8_t *tail = NULL;
	if (fstat(fd, &st) != 0) {
		ret = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size <= max)
		goto out;
	tail = xmalloc(keep ? keep : 1);
	ssize_t n = pread(fd, tail, keep, st.st_size - (off_t)keep);
	if (n < 0 || (uint64_t)n != keep) {
		ret = n < 0 ? -errno : -EIO;
		goto out;
	}
	if (ftruncate(fd, 0) != 0) {
		ret = -errno;
		goto out;
	}
	for (size_t done = 0; done < keep;) {
		ssize_t w = write(fd, tail + done, keep - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ret = w < 0 ? -errno : -EIO;
			goto out;
		}
		done += (size_t)w;
	}
	ret = st.st_size - (off_t)keep;
out:
	free(tail);
	close(fd);
	return ret;
}
