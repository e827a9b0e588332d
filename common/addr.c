#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	if (*s == '\0')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v == 0 || v > 65535 || *s == '-' ||
	    *s == '+')
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int mc_addr_parse(struct mc_addr *out, const char *text, uint16_t default_port)
{
	char host[64];
	uint16_t port = default_port;
	const char *colon;

	memset(out, 0, sizeof(*out));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || (size_t)(close - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		if (close[1] == ':') {
			if (parse_port(close + 2, &port))
				return -EINVAL;
		} else if (close[1] != '\0') {
			return -EINVAL;
		}
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		out->len = sizeof(*s6);
		return port ? 0 : -EINVAL;
	}

	colon = strchr(text, ':');
	size_t hlen = colon ? (size_t)(colon - text) : strlen(text);
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (colon && parse_port(colon + 1, &port))
		return -EINVAL;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -EINVAL;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	out->len = sizeof(*s4);
	return port ? 0 : -EINVAL;
}

void mc_addr_format(const struct mc_addr *a, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&a->ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, size, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)&a->ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(s4->sin_port));
	} else {
		snprintf(out, size, "-");
	}
}

uint16_t mc_addr_port(const struct mc_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

bool mc_addr_is_any(const struct mc_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
	return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
	       htonl(INADDR_ANY);
}

int mc_cidr_parse(struct mc_cidr *out, const char *text, int min_prefix,
                  int max_prefix)
{
	char host[32];
	const char *slash = strchr(text, '/');
	if (!slash || (size_t)(slash - text) >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, (size_t)(slash - text));
	host[slash - text] = '\0';
	struct in_addr in;
	if (inet_pton(AF_INET, host, &in) != 1)
		return -EINVAL;
	char *end;
	errno = 0;
	long prefix = strtol(slash + 1, &end, 10);
	if (errno || *end != '\0' || end == slash + 1 || prefix < min_prefix ||
	    prefix > max_prefix || prefix < 0 || prefix > 32)
		return -EINVAL;
	uint32_t net = ntohl(in.s_addr);
	uint32_t mask = prefix ? ~UINT32_C(0) << (32 - prefix) : 0;
	if (net & ~mask)
		return -EINVAL;
	out->network = net;
	out->prefix = (uint8_t)prefix;
	return 0;
}
