/* What this host can give to instances, measured from the host itself. */
#ifndef PEER_CAPACITY_H
#define PEER_CAPACITY_H

#include <stdint.h>

struct peer_capacity {
	uint32_t vcpu_total, vcpu_free;
	uint64_t memory_mib_total, memory_mib_free;
	uint64_t disk_mib_total, disk_mib_free; /* the data dir's filesystem */
};

/*
 * Measures the host's totals and sets free = total - reserved, where the
 * reservations are what admitted instances hold (none yet here).
 * Returns 0 or a negative errno.
 */
int peer_capacity_measure(const char *data_dir, struct peer_capacity *out);

#endif
