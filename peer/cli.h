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
#include <stdint.h>

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
/* ctl_request with the request {"cmd": what}. */
int ctl_command(const char *cmd, const char *dir, const char *what,
                struct mc_doc **out);

/* What ctl_poll asks for, and how often. */
struct ctl_poll {
	const char *what; /* the request's "cmd" */
	const char *key;  /* its one argument: key = id */
	uint64_t id;
	unsigned interval_ms; /* between requests */
	unsigned tries;       /* at most (0: no limit) */
	const char *label;    /* names the wait in the timeout message */
};

/*
 * Asks the peer on dir p->what every p->interval_ms until its reply says
 * "done": for the outcome of a job it started (an image import, a ping).
 * Returns 0 with that reply in *out (caller frees); otherwise prints why
 * (a failed request as ctl_request does, or "no outcome in time") and
 * returns 1.
 */
int ctl_poll(const char *cmd, const char *dir, const struct ctl_poll *p,
             struct mc_doc **out);
void print_json(const struct mc_val *v);
/* m[key] as a string in buf, or fallback. */
const char *str_or(const struct mc_val *m, const char *key, char *buf,
                   size_t size, const char *fallback);

#endif
