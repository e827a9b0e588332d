/*
 * A minimal test harness: CHECK records a failure and goes on, each test
 * binary ends with "N passed, N failed" and exits non-zero on any failure.
 */
#ifndef MALLEE_CHECK_H
#define MALLEE_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			        __LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                     \
	do {                                                                   \
		uint64_t a_ = (a), b_ = (b);                                   \
		if (a_ == b_) {                                                \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
			        "%s:%d: CHECK failed: %s == %s (%" PRIu64      \
			        " != %" PRIu64 ")\n",                          \
			        __FILE__, __LINE__, #a, #b, a_, b_);           \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		if (a_ && b_ && strcmp(a_, b_) == 0) {                         \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
			        "%s:%d: CHECK failed: %s == %s (\"%s\" != "    \
			        "\"%s\")\n",                                   \
			        __FILE__, __LINE__, #a, #b,                    \
			        a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
		}                                                              \
	} while (0)

#define RUN(test)                                                              \
	do {                                                                   \
		int before_ = check_failed;                                    \
		test();                                                        \
		fprintf(stderr, "%s %s\n",                                     \
		        check_failed == before_ ? "ok  " : "FAIL", #test);     \
	} while (0)

static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
