/* Any bytes from a socket: the connection's parser must answer or refuse
 * them without crashing, leaking or writing anything but HTTP responses.
 * The first byte picks how the input is cut into reads. */
#include "apiedge_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t sent;

static void on_send(void *owner, struct mc_buf *out)
{
	(void)owner;
	if (out->len < 9 || memcmp(out->data, "HTTP/1.1 ", 9) != 0)
		abort();
	sent += out->len;
	mc_buf_reset(out);
}

static enum api_http_result on_request(void *arg,
                                       const struct api_http_request *req,
                                       struct api_http_response *resp)
{
	(void)arg;
	if (!req->method || !req->path || !req->query ||
	    strlen((const char *)req->body) > req->body_len)
		abort();
	for (size_t i = 0; i < req->n_headers; i++)
		if (!req->headers[i].name || !req->headers[i].value)
			abort();
	mc_buf_append(&resp->body, req->body, req->body_len);
	if (req->body_len & 1) {
		/* Answer from inside, as a pending handler may. */
		api_http_respond(resp);
		return API_HTTP_PENDING;
	}
	return API_HTTP_DONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t step = (size_t)(data[0] % 64) + 1;
	data++;
	size--;
	struct api_http_limits lim;
	api_http_limits_default(&lim);
	lim.max_header_bytes = 2048;
	lim.max_body_bytes = 4096;
	lim.max_headers = 16;
	struct api_http_conn_ops ops = {.handle = on_request, .send = on_send};
	struct api_http_conn *c = api_http_conn_new(&lim, &ops, "fuzz");
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		api_http_conn_feed(c, data + off, n);
		if (api_http_conn_phase(c) == API_HTTP_CLOSING)
			break;
	}
	api_http_conn_timeout(c);
	api_http_conn_free(c);
	return 0;
}
