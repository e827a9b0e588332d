/*
 * EC2 error codes and the HTTP status each goes with. EC2 answers client
 * errors with 400 unless listed here; the statuses follow what EC2 itself
 * returns (AuthFailure is 401, UnauthorizedOperation 403, throttling 503).
 */
#include "apiedge_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *code;
	int status;
} statuses[] = {
    {"AuthFailure", 401},
    {"MissingAuthenticationToken", 401},
    {"InvalidClientTokenId", 401},
    {"Blocked", 403},
    {"OptInRequired", 403},
    {"PendingVerification", 403},
    {"UnauthorizedOperation", 403},
    {"DryRunOperation", 412},
    {"RequestLimitExceeded", 503},
    {"InternalError", 500},
    {"InsufficientInstanceCapacity", 500},
    {"InsufficientAddressCapacity", 500},
    {"InternalFailure", 500},
    {"ServiceUnavailable", 503},
    {"Unavailable", 503},
    {"RequestEntityTooLarge", 413},
    {"RequestHeaderSectionTooLarge", 431},
    {"RequestTimeout", 408},
    {"UnsupportedProtocol", 505},
    {"NotFound", 404},
};

int api_error_status(const char *code)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (strcmp(statuses[i].code, code) == 0)
			return statuses[i].status;
	return 400;
}

int api_error_set(struct api_error *e, const char *code, const char *fmt, ...)
{
	e->code = code;
	e->status = api_error_status(code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}
