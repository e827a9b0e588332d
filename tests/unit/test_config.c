#include "check.h"

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int load(struct peer_config *c, char *err, int argc, char **argv)
{
	peer_config_defaults(c);
	return peer_config_load(c, argc, argv, err, 512);
}

static void test_defaults(void)
{
	struct peer_config c;
	char err[512];
	char *argv[] = {"peer", "--data-dir", "/nonexistent-mallee"};
	CHECK(load(&c, err, 3, argv) == 0);
	CHECK_STR(c.data_dir, "/nonexistent-mallee");
	CHECK_STR(c.listen, "0.0.0.0:7700");
	CHECK_STR(c.api_listen, "127.0.0.1:8773");
	CHECK(!c.edge && !c.gateway);
	CHECK(c.log_level == MC_LOG_INFO);
}

static void test_flags(void)
{
	struct peer_config c;
	char err[512];
	char *argv[] = {"peer",        "--data-dir=/x",
	                "--edge",      "--gateway=false",
	                "--zone",      "z1",
	                "--listen",    "127.0.0.5:7000",
	                "--log-level", "debug"};
	CHECK(load(&c, err, 10, argv) == 0);
	CHECK(c.edge);
	CHECK(!c.gateway);
	CHECK_STR(c.zone, "z1");
	CHECK_STR(c.listen, "127.0.0.5:7000");
	CHECK(c.log_level == MC_LOG_DEBUG);
}

static void test_bad_flags(void)
{
	struct peer_config c;
	char err[512];
	char *a1[] = {"peer", "--bogus"};
	CHECK(load(&c, err, 2, a1) == -EINVAL);
	CHECK(strstr(err, "--bogus") != NULL);
	char *a2[] = {"peer", "--listen", "nowhere"};
	CHECK(load(&c, err, 3, a2) == -EINVAL);
	CHECK(strstr(err, "nowhere") != NULL);
	char *a3[] = {"peer", "--zone"};
	CHECK(load(&c, err, 2, a3) == -EINVAL);
	CHECK(strstr(err, "needs a value") != NULL);
	char *a4[] = {"peer", "--log-level", "loud"};
	CHECK(load(&c, err, 3, a4) == -EINVAL);
	char *a5[] = {"peer", "--edge=maybe"};
	CHECK(load(&c, err, 2, a5) == -EINVAL);
	char *a6[] = {"peer", "stray"};
	CHECK(load(&c, err, 2, a6) == -EINVAL);
	char *a7[] = {"peer", "--listen", "1.2.3.4:99999"};
	CHECK(load(&c, err, 3, a7) == -EINVAL);
}

static void test_file_and_precedence(void)
{
	char dir[] = "/tmp/mallee-config-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[600];
	snprintf(path, sizeof(path), "%s/mallee.conf", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "# settings\n[peer]\nzone = fromfile\n; c\n"
	           "name = \"quoted name\"\nedge = yes\n\n"
	           "listen = 127.0.0.9:7700\n");
	fclose(f);

	struct peer_config c;
	char err[512];
	/* The data dir's mallee.conf is read without --config. */
	char *a1[] = {"peer", "--data-dir", dir, "--zone", "fromflag"};
	CHECK(load(&c, err, 5, a1) == 0);
	CHECK_STR(c.zone, "fromflag");
	CHECK_STR(c.name, "quoted name");
	CHECK(c.edge);
	CHECK_STR(c.listen, "127.0.0.9:7700");

	f = fopen(path, "w");
	fprintf(f, "zone = a\nport = 9\n");
	fclose(f);
	char *a2[] = {"peer", "--config", path};
	CHECK(load(&c, err, 3, a2) == -EINVAL);
	CHECK(strstr(err, ":2:") != NULL && strstr(err, "port") != NULL);

	f = fopen(path, "w");
	fprintf(f, "[other]\n");
	fclose(f);
	CHECK(load(&c, err, 3, a2) == -EINVAL);
	CHECK(strstr(err, "section") != NULL);

	f = fopen(path, "w");
	fprintf(f, "zone\n");
	fclose(f);
	CHECK(load(&c, err, 3, a2) == -EINVAL);
	CHECK(strstr(err, ":1:") != NULL);

	unlink(path);
	/* An explicit --config that is missing is an error; the default
	 * one being absent is not. */
	CHECK(load(&c, err, 3, a2) == -EINVAL);
	char *a3[] = {"peer", "--data-dir", dir};
	CHECK(load(&c, err, 3, a3) == 0);
	rmdir(dir);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_flags);
	RUN(test_bad_flags);
	RUN(test_file_and_precedence);
	return check_summary();
}
