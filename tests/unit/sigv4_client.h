/*
 * The client side of the edge's unit tests: one raw HTTP exchange with an
 * edge on 127.0.0.1, and a POST signed with SigV4 the way the SDKs sign it.
 * Shared by edge_client.h and edge_harness.h.
 */
#ifndef MALLEE_SIGV4_CLIENT_H
#define MALLEE_SIGV4_CLIENT_H

#include "apiedge_int.h"
#include "crypto.h"
#include "mem.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Sends raw on a new connection to port; returns the status and *body
 * (the response body in a fresh string the caller frees). */
static inline int sc_exchange(int port, const char *raw, char **body)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {.tv_sec = 30};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*body = xstrdup("");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	send(fd, raw, strlen(raw), MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	struct mc_buf in;
	mc_buf_init(&in);
	char buf[65536];
	ssize_t r;
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
		mc_buf_append(&in, buf, (size_t)r);
	close(fd);
	mc_buf_put_u8(&in, 0);
	const char *text = (const char *)in.data;
	const char *start = strstr(text, "\r\n\r\n");
	free(*body);
	*body = xstrdup(start ? start + 4 : "");
	int status = in.len > 12 ? atoi(text + 9) : -1;
	mc_buf_free(&in);
	return status;
}

/* POSTs form (already URL-encoded) to port, signed with SigV4 by
 * key/secret for us-east-1/ec2; as sc_exchange. */
static inline int sc_post_signed(int port, const char *key, const char *secret,
                                 const char *form, char **body)
{
	char date[17];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	const char *ctype = "application/x-www-form-urlencoded; charset=utf-8";
	const char *host = "127.0.0.1:8773";
	struct api_http_header hd[3] = {
	    {"Content-Type", ctype}, {"Host", host}, {"X-Amz-Date", date}};
	struct api_http_request req = {.method = "POST",
	                               .path = "/",
	                               .query = "",
	                               .headers = hd,
	                               .n_headers = 3,
	                               .body = (const uint8_t *)form,
	                               .body_len = strlen(form)};
	const char *sh = "content-type;host;x-amz-date";
	struct mc_buf creq;
	mc_buf_init(&creq);
	api_sigv4_canonical_request(&req, sh, false, &creq);
	uint8_t hash[32];
	char hex[65], sig[65], day[9];
	api_sha256(hash, creq.data, creq.len);
	mc_hex_encode(hex, hash, 32);
	mc_buf_free(&creq);
	char *sts = xasprintf("AWS4-HMAC-SHA256\n%s\n%.8s/us-east-1/ec2/"
	                      "aws4_request\n%s",
	                      date, date, hex);
	snprintf(day, sizeof(day), "%.8s", date);
	api_sigv4_sign(sig, secret, day, "us-east-1", "ec2", sts);
	free(sts);
	char *raw = xasprintf(
	    "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
	    "X-Amz-Date: %s\r\nContent-Length: %zu\r\nAuthorization: "
	    "AWS4-HMAC-SHA256 Credential=%s/%.8s/us-east-1/ec2/aws4_request, "
	    "SignedHeaders=%s, Signature=%s\r\n\r\n%s",
	    host, ctype, date, strlen(form), key, date, sh, sig, form);
	int status = sc_exchange(port, raw, body);
	free(raw);
	return status;
}

#endif
