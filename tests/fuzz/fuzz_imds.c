/* Any bytes from an instance to the metadata service: the HTTP parser and
 * the handler must answer or refuse them without crashing or leaking. The
 * first byte picks how the input is cut into reads and whether the
 * instance requires IMDSv2 tokens. */
#include "apiedge_int.h"
#include "crypto.h"
#include "imds.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool tokens_required;

static int lookup(void *arg, const char *ip, struct mc_instance *out)
{
	(void)arg;
	if (strcmp(ip, "172.31.5.10") != 0)
		return -ENOENT;
	snprintf(out->id, sizeof(out->id), "i-0123456789abcdef0");
	snprintf(out->account, sizeof(out->account), "123456789012");
	snprintf(out->image_id, sizeof(out->image_id), "ami-0abc");
	snprintf(out->instance_type, sizeof(out->instance_type), "t3.micro");
	snprintf(out->private_ip, sizeof(out->private_ip), "%s", ip);
	snprintf(out->mac, sizeof(out->mac), "02:00:ac:1f:05:0a");
	snprintf(out->key_name, sizeof(out->key_name), "k");
	out->key_material = xstrdup("ssh-ed25519 AAAA k");
	out->n_groups = 1;
	snprintf(out->groups[0].id, sizeof(out->groups[0].id), "sg-1");
	snprintf(out->groups[0].name, sizeof(out->groups[0].name), "default");
	out->user_data = (uint8_t *)xstrdup("hello");
	out->user_data_len = 5;
	out->imds_tokens_required = tokens_required;
	return 0;
}

static void on_send(void *owner, struct mc_buf *out)
{
	(void)owner;
	if (out->len < 9 || memcmp(out->data, "HTTP/1.1 ", 9) != 0)
		abort();
	mc_buf_reset(out);
}

static enum api_http_result on_request(void *arg,
                                       const struct api_http_request *req,
                                       struct api_http_response *resp)
{
	api_imds_handle(arg, req, resp);
	return API_HTTP_DONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct api_imds *m;
	if (!m) {
		mc_crypto_init();
		struct api_imds_source src = {
		    .lookup = lookup, .region = "moon-1", .zone = "moon-1a"};
		m = api_imds_new(&src);
	}
	if (size == 0)
		return 0;
	size_t step = (size_t)(data[0] % 64) + 1;
	tokens_required = data[0] & 0x40;
	data++;
	size--;
	struct api_http_limits lim;
	api_http_limits_default(&lim);
	lim.max_header_bytes = 4096;
	lim.max_body_bytes = 1024;
	lim.max_headers = 32;
	struct api_http_conn_ops ops = {
	    .handle = on_request, .arg = m, .send = on_send};
	struct api_http_conn *c = api_http_conn_new(&lim, &ops, "172.31.5.10");
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		api_http_conn_feed(c, data + off, n);
		if (api_http_conn_phase(c) == API_HTTP_CLOSING)
			break;
	}
	api_http_conn_free(c);
	return 0;
}
