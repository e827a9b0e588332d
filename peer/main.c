/* mallee: one binary, a subcommand per job. */
#include "cli.h"
#include "crypto.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: mallee COMMAND [flags]\n\n"
	             "commands:\n"
	             "  init     create a new cloud in a data dir\n"
	             "  peer     run this host's peer (the daemon)\n"
	             "  token    print a join token for new hosts\n"
	             "  status   show the cloud as the local peer sees it\n"
	             "  admin    operator commands (records, ...)\n"
	             "  version  print mallee's version\n\n"
	             "`mallee COMMAND --help` tells more.\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
	    {"init", cli_init},     {"peer", cli_peer},   {"token", cli_token},
	    {"status", cli_status}, {"admin", cli_admin},
	};

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 ||
	    strcmp(argv[1], "--version") == 0) {
		printf("mallee %s\n", MALLEE_VERSION);
		return 0;
	}
	if (mc_crypto_init() != 0) {
		fprintf(stderr, "mallee: libsodium cannot start\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "mallee: unknown command \"%s\" (see mallee --help)\n",
	        argv[1]);
	return 2;
}
