/*
 * Bounding a console log: cut back to its tail past the cap, left alone
 * below it, and a writer holding the file open with O_APPEND (as QEMU does)
 * goes on at the new end, with no hole where the old bytes were.
 */
#include "check.h"
#include "console_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mallee-console-XXXXXX";
static char path[256];

/* n bytes, byte i being 'a' + i % 26. */
static void write_pattern(size_t n)
{
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	fclose(f);
}

static off_t size_of(void)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_absent_and_short(void)
{
	unlink(path);
	CHECK(peer_console_log_cap(path, 1000, 400) == 0);
	write_pattern(1000);
	CHECK(peer_console_log_cap(path, 1000, 400) == 0);
	CHECK(size_of() == 1000);
	CHECK(peer_console_log_cap(path, 100, 400) == -EINVAL);
	CHECK(size_of() == 1000);
}

static void test_cut_to_tail(void)
{
	write_pattern(3000);
	CHECK(peer_console_log_cap(path, 1000, 400) == 2600);
	CHECK(size_of() == 400);
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	if (!f)
		return;
	char buf[512];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	CHECK(n == 400);
	bool same = true;
	for (size_t i = 0; i < n; i++)
		same = same && buf[i] == 'a' + (int)((2600 + i) % 26);
	CHECK(same);
	/* Short now: left alone. */
	CHECK(peer_console_log_cap(path, 1000, 400) == 0);
}

static void test_appending_writer(void)
{
	write_pattern(5000);
	int w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(w >= 0);
	if (w < 0)
		return;
	CHECK(peer_console_log_cap(path, 1000, 100) == 4900);
	CHECK(write(w, "Z", 1) == 1);
	close(w);
	CHECK(size_of() == 101);
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	if (!f)
		return;
	char buf[128];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	CHECK(n == 101 && buf[100] == 'Z' && memchr(buf, 0, n) == NULL);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/console.log", dir);
	RUN(test_absent_and_short);
	RUN(test_cut_to_tail);
	RUN(test_appending_writer);
	unlink(path);
	rmdir(dir);
	return check_summary();
}
