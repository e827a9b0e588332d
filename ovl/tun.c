/*
 * The TUN device. With IFF_VNET_HDR and TUNSETOFFLOAD the kernel may hand
 * us TCP super-packets and leave checksums to us; where it refuses, we
 * reopen without and read one packet per read.
 */
#include "log.h"
#include "ovl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int tun_try(const char *name, bool vnet)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto err_fd;
	if (vnet) {
		int hdr = sizeof(struct virtio_net_hdr);
		unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

		if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
		    ioctl(fd, TUNSETOFFLOAD, off) < 0)
			goto err_fd;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		goto err_fd;
	return fd;
err_fd:;
	int err = -errno;

	close(fd);
	return err;
}

int ovl_tun_open(const char *name, bool want_offload, bool *offload)
{
	int fd;

	*offload = false;
	if (want_offload) {
		fd = tun_try(name, true);
		if (fd >= 0) {
			*offload = true;
			return fd;
		}
		mc_info("ovl", "tun %s: no offloads (%s), plain packets", name,
		        strerror(-fd));
	}
	return tun_try(name, false);
}
