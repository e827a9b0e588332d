/*
 * The edge over TLS: a self-signed certificate made here, a TLS client on a
 * real socket, keep-alive through TLS, plaintext refused on the TLS port,
 * unusable certificate files refused at start.
 */
#include "check.h"

#include "apiedge.h"
#include "crypto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static uv_loop_t loop;
static uv_async_t stopper;
static struct api_edge *edge;
static int port;
static char cert_path[64], key_path[64];

static int lookup(void *arg, const char *id, struct api_key_info *out)
{
	(void)arg;
	(void)id;
	(void)out;
	return -ENOENT;
}

static void on_stop(uv_async_t *a)
{
	api_edge_stop(edge, NULL, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
	(void)arg;
	uv_run(&loop, UV_RUN_DEFAULT);
	return NULL;
}

/* A P-256 key and a self-signed certificate for localhost, as PEM files. */
static int make_cert(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	if (!key || !x)
		return -1;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"localhost", -1, -1,
	                           0);
	X509_set_issuer_name(x, name);
	if (!X509_sign(x, key, EVP_sha256()))
		return -1;
	snprintf(cert_path, sizeof(cert_path), "/tmp/mallee-tls-%d.crt",
	         (int)getpid());
	snprintf(key_path, sizeof(key_path), "/tmp/mallee-tls-%d.key",
	         (int)getpid());
	FILE *f = fopen(cert_path, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
	return 0;
}

static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one response with a Content-Length over TLS into buf. */
static int tls_reply(SSL *ssl, char *buf, size_t cap)
{
	size_t len = 0;
	for (;;) {
		buf[len] = 0;
		char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			const char *cl = strcasestr(buf, "Content-Length:");
			size_t want = (size_t)(end + 4 - buf) +
			              (cl ? (size_t)atol(cl + 15) : 0);
			if (len >= want)
				return atoi(buf + 9);
		}
		if (len + 1 >= cap)
			return -1;
		int r = SSL_read(ssl, buf + len, (int)(cap - 1 - len));
		if (r <= 0)
			return -1;
		len += (size_t)r;
	}
}

static void test_tls_keep_alive(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	CHECK(SSL_CTX_load_verify_locations(ctx, cert_path, NULL) == 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL *ssl = SSL_new(ctx);
	int fd = tcp_connect();
	CHECK(fd >= 0);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	CHECK(SSL_connect(ssl) == 1);
	char buf[8192];
	const char *req = "GET /?Action=DescribeRegions HTTP/1.1\r\n"
	                  "Host: localhost\r\n\r\n";
	for (int i = 0; i < 2; i++) {
		CHECK(SSL_write(ssl, req, (int)strlen(req)) > 0);
		CHECK_EQ_U64(tls_reply(ssl, buf, sizeof(buf)), 401);
		CHECK(strstr(buf, "<Code>MissingAuthenticationToken</Code>") !=
		      NULL);
	}
	const char *bye = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	                  "\r\n";
	CHECK(SSL_write(ssl, bye, (int)strlen(bye)) > 0);
	CHECK(tls_reply(ssl, buf, sizeof(buf)) > 0);
	/* The server's close_notify ends the stream cleanly. */
	char more[16];
	CHECK(SSL_read(ssl, more, sizeof(more)) <= 0);
	CHECK(SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN ||
	      SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
}

static void test_plaintext_refused(void)
{
	int fd = tcp_connect();
	CHECK(fd >= 0);
	const char *req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	send(fd, req, strlen(req), MSG_NOSIGNAL);
	char buf[1024];
	ssize_t n, total = 0;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		total += n;
	/* At most a TLS alert, never an HTTP answer. */
	CHECK(total < 64);
	CHECK(total == 0 || buf[0] != 'H');
	close(fd);
}

static void test_bad_files(void)
{
	uv_loop_t l;
	uv_loop_init(&l);
	struct api_cloud cloud = {.lookup_key = lookup};
	struct api_edge_config cfg = {.tls_cert_file = "/nonexistent.crt",
	                              .tls_key_file = key_path};
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	struct api_edge *e = NULL;
	CHECK(api_edge_start(&e, &l, (struct sockaddr *)&a, &cfg, &cloud) ==
	      -EINVAL);
	uv_run(&l, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&l) == 0);
}

int main(void)
{
	if (mc_crypto_init() != 0 || make_cert() != 0)
		return 1;
	CHECK(uv_loop_init(&loop) == 0);
	struct api_cloud cloud = {.lookup_key = lookup};
	struct api_edge_config cfg = {.region = "r",
	                              .tls_cert_file = cert_path,
	                              .tls_key_file = key_path};
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	CHECK(api_edge_start(&edge, &loop, (struct sockaddr *)&a, &cfg,
	                     &cloud) == 0);
	port = api_edge_port(edge);
	uv_async_init(&loop, &stopper, on_stop);
	pthread_t th;
	pthread_create(&th, NULL, loop_main, NULL);

	RUN(test_tls_keep_alive);
	RUN(test_plaintext_refused);
	RUN(test_bad_files);

	uv_async_send(&stopper);
	pthread_join(th, NULL);
	CHECK(uv_loop_close(&loop) == 0);
	unlink(cert_path);
	unlink(key_path);
	return check_summary();
}
