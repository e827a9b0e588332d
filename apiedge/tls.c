/*
 * TLS for the API port with OpenSSL over memory BIOs: the TCP code hands
 * ciphertext in and gets plaintext out (and the other way round), so TLS
 * stays out of the libuv plumbing and the HTTP protocol alike.
 */
#include "apiedge_int.h"

#include "log.h"
#include "mem.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct api_tls {
	SSL_CTX *ctx;
};

struct api_tls_conn {
	SSL *ssl;
	BIO *rbio; /* ciphertext from the client */
	BIO *wbio; /* ciphertext to the client */
};

int api_tls_new(struct api_tls **out, const char *cert_file,
                const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		unsigned long e = ERR_get_error();
		char msg[256];
		ERR_error_string_n(e, msg, sizeof(msg));
		mc_error("apiedge", "TLS certificate %s / key %s: %s",
		         cert_file, key_file, msg);
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	*out = xcalloc(1, sizeof(**out));
	(*out)->ctx = ctx;
	return 0;
}

void api_tls_free(struct api_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

struct api_tls_conn *api_tls_conn_new(struct api_tls *t)
{
	struct api_tls_conn *c = xcalloc(1, sizeof(*c));
	c->ssl = SSL_new(t->ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio)
		abort();                       /* out of memory */
	SSL_set_bio(c->ssl, c->rbio, c->wbio); /* the SSL owns both now */
	SSL_set_accept_state(c->ssl);
	return c;
}

void api_tls_conn_free(struct api_tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	free(c);
}

/* Moves whatever ciphertext OpenSSL produced into out. */
static void drain(struct api_tls_conn *c, struct mc_buf *out)
{
	size_t pending;
	while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
		uint8_t *dst = mc_buf_reserve(out, pending);
		int n = BIO_read(c->wbio, dst, (int)pending);
		if (n <= 0)
			break;
		out->len += (size_t)n;
	}
}

int api_tls_conn_recv(struct api_tls_conn *c, const void *data, size_t n,
                      struct mc_buf *plain, struct mc_buf *out)
{
	if (n > INT32_MAX || BIO_write(c->rbio, data, (int)n) != (int)n)
		return -ENOMEM;
	int rc = 0;
	for (;;) {
		uint8_t *dst = mc_buf_reserve(plain, 16384);
		int r = SSL_read(c->ssl, dst, 16384);
		if (r > 0) {
			plain->len += (size_t)r;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		/* A close_notify or a protocol error: either way, done. */
		rc = e == SSL_ERROR_ZERO_RETURN ? -ECONNRESET : -EPROTO;
		break;
	}
	ERR_clear_error();
	drain(c, out);
	return rc;
}

int api_tls_conn_send(struct api_tls_conn *c, const void *data, size_t n,
                      struct mc_buf *out)
{
	const uint8_t *p = data;
	while (n > 0) {
		int chunk = n > 65536 ? 65536 : (int)n;
		int w = SSL_write(c->ssl, p, chunk);
		if (w <= 0) {
			ERR_clear_error();
			drain(c, out);
			return -EPROTO;
		}
		p += w;
		n -= (size_t)w;
		drain(c, out);
	}
	return 0;
}

void api_tls_conn_close_notify(struct api_tls_conn *c, struct mc_buf *out)
{
	if (SSL_is_init_finished(c->ssl))
		SSL_shutdown(c->ssl);
	ERR_clear_error();
	drain(c, out);
}
