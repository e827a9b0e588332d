#include "capacity.h"

#include <errno.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

int peer_capacity_measure(const char *data_dir, struct peer_capacity *out)
{
	struct sysinfo si;
	struct statvfs vfs;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1 || sysinfo(&si) != 0)
		return -errno ? -errno : -EIO;
	if (statvfs(data_dir, &vfs) != 0)
		return -errno;
	out->vcpu_total = (uint32_t)cpus;
	out->memory_mib_total =
	    (uint64_t)si.totalram * si.mem_unit / (1024 * 1024);
	out->disk_mib_total =
	    (uint64_t)vfs.f_blocks * vfs.f_frsize / (1024 * 1024);
	/* Nothing is reserved until instances are admitted. */
	out->vcpu_free = out->vcpu_total;
	out->memory_mib_free = out->memory_mib_total;
	out->disk_mib_free = out->disk_mib_total;
	return 0;
}
