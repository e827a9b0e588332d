#include "ctl.h"

#include "datadir.h"
#include "mem.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events before deadline; 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n) {
		int r = wait_fd(fd, POLLOUT, deadline);
		if (r)
			return r;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	while (n) {
		int r = wait_fd(fd, POLLIN, deadline);
		if (r)
			return r;
		ssize_t got = recv(fd, p, n, 0);
		if (got == 0)
			return -ECONNRESET;
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int peer_ctl_call(const char *dir, const struct mc_buf *request, int timeout_ms,
                  struct mc_doc **reply, char *err, size_t err_size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *path = peer_datadir_path(dir, PEER_CTL_SOCKET);
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t *body = NULL;
	int r = 0;
	int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, err_size, "control socket path %s is too long",
		         path);
		r = -ENAMETOOLONG;
		goto out;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = -errno;
		if (r == -ENOENT || r == -ECONNREFUSED)
			snprintf(err, err_size,
			         "no peer is running on data dir %s", dir);
		else
			snprintf(err, err_size,
			         "cannot reach the peer at %s: %s", path,
			         strerror(-r));
		goto out;
	}

	uint8_t hdr[4];
	mc_store_be32(hdr, (uint32_t)request->len);
	if ((r = send_all(fd, hdr, 4, deadline)) ||
	    (r = send_all(fd, request->data, request->len, deadline)) ||
	    (r = recv_all(fd, hdr, 4, deadline)))
		goto io_error;
	uint32_t len = mc_load_be32(hdr);
	if (len > PEER_CTL_MAX_FRAME) {
		r = -EPROTO;
		goto io_error;
	}
	body = xmalloc(len);
	if ((r = recv_all(fd, body, len, deadline)))
		goto io_error;
	*reply = mc_unpack(body, len);
	if (!*reply) {
		r = -EPROTO;
		goto io_error;
	}
	goto out;

io_error:
	snprintf(err, err_size, "control socket %s: %s", path,
	         r == -ETIMEDOUT ? "the peer did not answer in time"
	                         : strerror(-r));
out:
	free(body);
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}
