/*
 * The instances this host runs: admission (the "admit" RPC reserves
 * capacity in this peer's store and writes the instance record), the
 * lifecycle on libvirt driven by its events ("op" RPC: stop, start,
 * reboot, terminate, console, modify), and re-adoption of running domains
 * after a restart. Only this file's peer writes the records of its
 * instances (DESIGN.md "Records").
 */
#ifndef PEER_INSTANCES_H
#define PEER_INSTANCES_H

#include "instance.h"

#include <stddef.h>
#include <stdint.h>

struct peer;

/*
 * Connects to libvirt (cfg.virt_uri; "none" hosts no instances, and
 * admission then refuses), registers the RPC handlers, re-adopts the
 * domains named after instances of this host. 0, or a negative errno with
 * err filled.
 */
int peer_instances_start(struct peer *p, char *err, size_t err_size);
void peer_instances_stop(struct peer *p);

/* What admitted instances hold on this host (pending, running, stopping,
 * shutting-down). */
void peer_instances_reserved(struct peer *p, uint32_t *vcpu,
                             uint64_t *mem_mib, uint64_t *disk_mib);

/* Re-measures the host and sets p->capacity: totals from the settings
 * (--capacity-*) or measured, free = total - reserved. */
void peer_instances_capacity(struct peer *p);

/* The instance of this host with that private address: 0 and a copy in
 * *out (mc_instance_clear it), or -ENOENT. For the metadata service. */
int peer_instances_by_ip(struct peer *p, const char *ip,
                         struct mc_instance *out);

/* The guest got its address (hostnet's callback): pending -> running. */
void peer_instances_addressed(struct peer *p, const char *instance_id,
                              const char *ip);

#endif
