/* The rtnetlink socket and error mapping peer/rtnl.h describes. */
#include "rtnl.h"

#include <errno.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>

struct nl_sock *peer_rtnl_open(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk)
		return NULL;
	if (nl_connect(sk, NETLINK_ROUTE) < 0) {
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

int peer_rtnl_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case 0:
		return 0;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_INVAL:
		return -EINVAL;
	default:
		return -EIO;
	}
}
