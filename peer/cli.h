/* The `mallee` subcommands other than `peer`. Each returns an exit status:
 * 0 ok, 1 failure, 2 bad usage or input. */
#ifndef PEER_CLI_H
#define PEER_CLI_H

int cli_init(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_admin(int argc, char **argv);
int cli_peer(int argc, char **argv);

/* Shared by the subcommands' files. */
#include "buf.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>

#define CTL_TIMEOUT_MS 10000

/* Prints "mallee CMD: MSG (see mallee CMD --help)"; returns 2. */
int usage_error(const char *cmd, const char *msg);
int bad_flag(const char *cmd, int argc, char **argv);
int extra_arg(const char *cmd, const char *arg);
/*
 * Sends req to the peer running on dir; on success *out is the reply
 * (caller frees). Prints the error and returns 1 otherwise.
 */
int ctl_request(const char *cmd, const char *dir, const struct mc_buf *req,
                struct mc_doc **out);
void print_json(const struct mc_val *v);
/* m[key] as a string in buf, or fallback. */
const char *str_or(const struct mc_val *m, const char *key, char *buf,
                   size_t size, const char *fallback);

#endif
