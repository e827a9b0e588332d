/* The `mallee` subcommands other than `peer`. Each returns an exit status:
 * 0 ok, 1 failure, 2 bad usage or input. */
#ifndef PEER_CLI_H
#define PEER_CLI_H

int cli_init(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_admin(int argc, char **argv);
int cli_peer(int argc, char **argv);

#endif
