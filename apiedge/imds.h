/*
 * The EC2 instance metadata service (IMDSv1 and v2) as apiedge serves it:
 * HTTP on 169.254.169.254 for the instances of one host, each known by its
 * source address. It knows nothing of how instances are stored: a lookup
 * function over an opaque arg finds them (the peer's, or a test's fake).
 */
#ifndef MALLEE_IMDS_H
#define MALLEE_IMDS_H

#include <stdint.h>
#include <uv.h>

struct mc_instance;
struct api_http_request;
struct api_http_response;

#define API_IMDS_TOKEN_TTL_MAX 21600 /* seconds, as EC2 */

struct api_imds_source {
	void *arg;
	/*
	 * The instance whose private address is ip (dotted quad): 0 and a
	 * copy in *out (the service clears it), -ENOENT when none, another
	 * negative errno when the lookup failed. Runs on the loop thread.
	 */
	int (*lookup)(void *arg, const char *ip, struct mc_instance *out);
	const char *region; /* copied */
	const char *zone;   /* the host's zone, for instances that named
	                     * none; copied */
	/* Wall clock in ms (NULL: the system's), for tests. */
	uint64_t (*now_ms)(void *arg);
};

struct api_imds;

/* A service (tokens sealed with a fresh per-process secret). */
struct api_imds *api_imds_new(const struct api_imds_source *src);
/* Frees a service that is not listening (or whose stop completed). */
void api_imds_free(struct api_imds *m);

/*
 * Answers one request (the client is req->peer) into resp: what the HTTP
 * server calls, and what tests and the fuzzer call without sockets.
 */
void api_imds_handle(struct api_imds *m, const struct api_http_request *req,
                     struct api_http_response *resp);

/* Serves HTTP on addr; 0 or a negative libuv error. */
int api_imds_listen(struct api_imds *m, uv_loop_t *loop,
                    const struct sockaddr *addr);
int api_imds_port(const struct api_imds *m);
/* Closes the server and frees m; done(arg) runs from the loop after. */
void api_imds_stop(struct api_imds *m, void (*done)(void *arg), void *arg);

#endif
