/* Bounding an instance's console log; see peer/console_log.c. */
#ifndef PEER_CONSOLE_LOG_H
#define PEER_CONSOLE_LOG_H

#include <stdint.h>

/*
 * When the file at path is longer than max bytes, cuts it back to its last
 * keep bytes (keep <= max). Returns the bytes dropped (0 when it was short
 * enough or is absent), or a negative errno.
 */
int64_t peer_console_log_cap(const char *path, uint64_t max, uint64_t keep);

#endif
