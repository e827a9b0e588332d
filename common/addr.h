/* Network addresses as mallee's flags and records spell them: HOST:PORT. */
#ifndef MC_ADDR_H
#define MC_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct mc_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * Parses "A.B.C.D:PORT", "[V6]:PORT", or a bare address (then default_port).
 * Numeric only: no name lookups. Returns 0 or -EINVAL.
 */
int mc_addr_parse(struct mc_addr *out, const char *text, uint16_t default_port);
/* Writes "A.B.C.D:PORT" or "[V6]:PORT" into out (at least 64 bytes). */
void mc_addr_format(const struct mc_addr *a, char *out, size_t size);
uint16_t mc_addr_port(const struct mc_addr *a);
bool mc_addr_is_any(const struct mc_addr *a);

/* An IPv4 network, e.g. 172.31.0.0/16. */
struct mc_cidr {
	uint32_t network; /* host byte order */
	uint8_t prefix;
};

/*
 * Parses "A.B.C.D/N" with min_prefix <= N <= max_prefix and no host bits
 * set. Returns 0 or -EINVAL.
 */
int mc_cidr_parse(struct mc_cidr *out, const char *text, int min_prefix,
                  int max_prefix);

#endif
