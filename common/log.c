#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The logger is the one global (STYLE.md): every module writes to it. */
static enum mc_log_level min_level = MC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int mc_log_parse_level(const char *name, enum mc_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(*level_names);
	     i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum mc_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void mc_log_set_level(enum mc_log_level level)
{
	min_level = level;
}

enum mc_log_level mc_log_get_level(void)
{
	return min_level;
}

void mc_log(enum mc_log_level level, const char *subsystem, const char *fmt,
            ...)
{
	if (level < min_level)
		return;

	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);

	/* Build the whole line first so concurrent writers never interleave. */
	char line[2048];
	int n = snprintf(
	    line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, level_names[level], subsystem);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}
