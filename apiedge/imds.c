/*
 * The instance metadata service. Each request builds the instance's tree
 * (leaf paths and their values) from its record, then answers a leaf with
 * its value and a directory with its children, one per line, directories
 * with a trailing '/', as EC2 does. IMDSv2 tokens are the expiry and an
 * HMAC of (instance id, expiry) under a secret that lives and dies with the
 * process, so a restart invalidates them, as a reboot does on EC2.
 */
#include "imds.h"

#include "apiedge_int.h"
#include "crypto.h"
#include "hlc.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKEN_PATH     "/latest/api/token"
#define TOKEN_HEADER   "X-aws-ec2-metadata-token"
#define TTL_HEADER     "X-aws-ec2-metadata-token-ttl-seconds"
#define TOKEN_MAC_LEN  16
#define TOKEN_RAW_LEN  (8 + TOKEN_MAC_LEN)
#define TOKEN_TEXT_MAX 64

struct api_imds {
	struct api_imds_source src;
	char *region, *zone;
	uint8_t secret[32];
	struct api_http_server *http;
	void (*done)(void *arg);
	void *done_arg;
};

/* The dated versions EC2 lists at "/", oldest first; "latest" ends it. */
static const char *const versions[] = {
    "1.0",        "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
    "2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01",
    "2011-05-01", "2012-01-12", "2014-02-25", "2014-11-05", "2015-10-20",
    "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28", "2018-08-17",
    "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
    "2021-07-15", "2022-09-24", "2023-11-30", "2024-04-11", "latest",
};

#define N_VERSIONS (sizeof(versions) / sizeof(versions[0]))

/* ---- The tree ----------------------------------------------------------- */

struct leaf {
	char *path; /* "meta-data/placement/region", no leading '/' */
	char *value;
	size_t len;
};

struct tree {
	struct leaf *items;
	size_t n, cap;
};

static void tree_add_bytes(struct tree *t, const char *path, const void *v,
                           size_t len)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->items = xrealloc(t->items, t->cap * sizeof(*t->items));
	}
	struct leaf *l = &t->items[t->n++];
	l->path = xstrdup(path);
	l->value = xmalloc(len + 1);
	memcpy(l->value, v, len);
	l->value[len] = '\0';
	l->len = len;
}

static void tree_add(struct tree *t, const char *path, const char *v)
{
	tree_add_bytes(t, path, v, strlen(v));
}

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->items[i].path);
		free(t->items[i].value);
	}
	free(t->items);
}

static const struct leaf *tree_leaf(const struct tree *t, const char *path)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->items[i].path, path) == 0)
			return &t->items[i];
	return NULL;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The children of directory dir ("meta-data", "meta-data/placement") in
 * name order, subdirectories with a '/'. Returns false when dir has none
 * (then it is no directory).
 */
static bool tree_list(const struct tree *t, const char *dir, struct mc_buf *out)
{
	size_t dl = strlen(dir);
	char **names = xcalloc(t->n ? t->n : 1, sizeof(*names));
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		const char *p = t->items[i].path;
		if (strncmp(p, dir, dl) != 0 || p[dl] != '/')
			continue;
		const char *rest = p + dl + 1;
		const char *slash = strchr(rest, '/');
		char *name = slash ? xstrndup(rest, (size_t)(slash - rest) + 1)
		                   : xstrdup(rest);
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = strcmp(names[k], name) == 0;
		if (dup)
			free(name);
		else
			names[n++] = name;
	}
	qsort(names, n, sizeof(*names), str_cmp);
	/* A directory that also has a value of its own (public-keys) lists
	 * once, as a directory. */
	bool first = true;
	for (size_t k = 0; k < n; k++) {
		size_t len = strlen(names[k]);
		bool shadowed = k + 1 < n && names[k][len - 1] != '/' &&
		                strncmp(names[k + 1], names[k], len) == 0 &&
		                strcmp(names[k + 1] + len, "/") == 0;
		if (!shadowed) {
			if (!first)
				mc_buf_append_str(out, "\n");
			mc_buf_append_str(out, names[k]);
			first = false;
		}
		free(names[k]);
	}
	free(names);
	return n > 0;
}

/* ---- What an instance's tree holds -------------------------------------- */

static void json_str(struct mc_buf *b, const char *key, const char *v,
                     bool last)
{
	mc_buf_printf(b, "  \"%s\" : ", key);
	if (!v) {
		mc_buf_append_str(b, "null");
	} else {
		mc_buf_append_str(b, "\"");
		for (const unsigned char *s = (const unsigned char *)v; *s;
		     s++) {
			if (*s == '"' || *s == '\\')
				mc_buf_printf(b, "\\%c", *s);
			else if (*s < 0x20)
				mc_buf_printf(b, "\\u%04x", *s);
			else
				mc_buf_append(b, s, 1);
		}
		mc_buf_append_str(b, "\"");
	}
	mc_buf_append_str(b, last ? "\n" : ",\n");
}

static void identity_document(const struct api_imds *m,
                              const struct mc_instance *in, const char *zone,
                              const char *ip, struct mc_buf *b)
{
	char pending[32] = "";
	time_t t = (time_t)(in->launch_ms / 1000);
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(pending, sizeof(pending), "%Y-%m-%dT%H:%M:%SZ", &tm);
	mc_buf_append_str(b, "{\n");
	json_str(b, "accountId", in->account, false);
	json_str(b, "architecture",
	         in->architecture[0] ? in->architecture : "x86_64", false);
	json_str(b, "availabilityZone", zone, false);
	json_str(b, "billingProducts", NULL, false);
	json_str(b, "devpayProductCodes", NULL, false);
	json_str(b, "marketplaceProductCodes", NULL, false);
	json_str(b, "imageId", in->image_id, false);
	json_str(b, "instanceId", in->id, false);
	json_str(b, "instanceType", in->instance_type, false);
	json_str(b, "kernelId", NULL, false);
	json_str(b, "pendingTime", pending, false);
	json_str(b, "privateIp", ip, false);
	json_str(b, "ramdiskId", NULL, false);
	json_str(b, "region", m->region, false);
	json_str(b, "version", "2017-09-30", true);
	mc_buf_append_str(b, "}");
}

static void build_tree(const struct api_imds *m, const struct mc_instance *in,
                       const char *peer_ip, struct tree *t)
{
	const char *ip = in->private_ip[0] ? in->private_ip : peer_ip;
	const char *zone = in->zone[0] ? in->zone : m->zone;
	const char *root = in->root_device[0] ? in->root_device : "/dev/vda";
	char host[128], path[256], seed[256], v[320];
	unsigned a, b, c, d;

	if (sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &d) != 4)
		a = b = c = d = 0;
	if (strcmp(m->region, "us-east-1") == 0)
		snprintf(host, sizeof(host), "ip-%u-%u-%u-%u.ec2.internal", a,
		         b, c, d);
	else if (m->region[0])
		snprintf(host, sizeof(host),
		         "ip-%u-%u-%u-%u.%.64s.compute.internal", a, b, c, d,
		         m->region);
	else
		snprintf(host, sizeof(host), "ip-%u-%u-%u-%u", a, b, c, d);

	tree_add(t, "meta-data/ami-id", in->image_id);
	snprintf(v, sizeof(v), "%u", in->launch_index);
	tree_add(t, "meta-data/ami-launch-index", v);
	tree_add(t, "meta-data/ami-manifest-path", "(unknown)");
	tree_add(t, "meta-data/block-device-mapping/ami", root);
	tree_add(t, "meta-data/block-device-mapping/root", root);
	tree_add(t, "meta-data/hostname", host);
	tree_add(t, "meta-data/instance-action", "none");
	tree_add(t, "meta-data/instance-id", in->id);
	tree_add(t, "meta-data/instance-life-cycle", "on-demand");
	tree_add(t, "meta-data/instance-type", in->instance_type);
	tree_add(t, "meta-data/local-hostname", host);
	tree_add(t, "meta-data/local-ipv4", ip);
	tree_add(t, "meta-data/mac", in->mac);
	tree_add(t, "meta-data/placement/availability-zone", zone);
	tree_add(t, "meta-data/placement/region", m->region);
	tree_add(t, "meta-data/reservation-id", in->reservation);
	tree_add(t, "meta-data/services/domain", "amazonaws.com");
	tree_add(t, "meta-data/services/partition", "aws");

	struct mc_buf names, ids;
	mc_buf_init(&names);
	mc_buf_init(&ids);
	for (size_t i = 0; i < in->n_groups && i < MC_INSTANCE_GROUPS; i++) {
		mc_buf_printf(&names, "%s%s", i ? "\n" : "",
		              in->groups[i].name);
		mc_buf_printf(&ids, "%s%s", i ? "\n" : "", in->groups[i].id);
	}
	tree_add_bytes(t, "meta-data/security-groups",
	               names.data ? (char *)names.data : "", names.len);

	/* The one interface, under its MAC, with the default VPC's ids as
	 * apiedge derives them (action_vpc.c). */
	char base[64], vpc[32], subnet[32], eni[32];
	snprintf(base, sizeof(base), "meta-data/network/interfaces/macs/%s",
	         in->mac[0] ? in->mac : "00:00:00:00:00:00");
	snprintf(seed, sizeof(seed), "vpc\n%s", in->account);
	api_res_derived_id("vpc", seed, vpc, sizeof(vpc));
	snprintf(seed, sizeof(seed), "subnet\n%s\n%s", in->account, zone);
	api_res_derived_id("subnet", seed, subnet, sizeof(subnet));
	snprintf(seed, sizeof(seed), "eni\n%s", in->id);
	api_res_derived_id("eni", seed, eni, sizeof(eni));
	static const char *const fixed[][2] = {{"device-number", "0"}};
	snprintf(path, sizeof(path), "%s/%s", base, fixed[0][0]);
	tree_add(t, path, fixed[0][1]);
	snprintf(path, sizeof(path), "%s/interface-id", base);
	tree_add(t, path, eni);
	snprintf(path, sizeof(path), "%s/local-hostname", base);
	tree_add(t, path, host);
	snprintf(path, sizeof(path), "%s/local-ipv4s", base);
	tree_add(t, path, ip);
	snprintf(path, sizeof(path), "%s/mac", base);
	tree_add(t, path, in->mac);
	snprintf(path, sizeof(path), "%s/owner-id", base);
	tree_add(t, path, in->account);
	snprintf(path, sizeof(path), "%s/security-group-ids", base);
	tree_add_bytes(t, path, ids.data ? (char *)ids.data : "", ids.len);
	snprintf(path, sizeof(path), "%s/security-groups", base);
	tree_add_bytes(t, path, names.data ? (char *)names.data : "",
	               names.len);
	snprintf(path, sizeof(path), "%s/subnet-id", base);
	tree_add(t, path, subnet);
	snprintf(path, sizeof(path), "%s/vpc-id", base);
	tree_add(t, path, vpc);
	mc_buf_free(&names);
	mc_buf_free(&ids);

	if (in->key_name[0] && in->key_material) {
		/* The directory lists "0=NAME"; its key's directory is 0/. */
		snprintf(v, sizeof(v), "0=%s", in->key_name);
		tree_add(t, "meta-data/public-keys", v);
		struct mc_buf k;
		mc_buf_init(&k);
		mc_buf_append_str(&k, in->key_material);
		if (!k.len || k.data[k.len - 1] != '\n')
			mc_buf_append_str(&k, "\n");
		tree_add_bytes(t, "meta-data/public-keys/0/openssh-key", k.data,
		               k.len);
		mc_buf_free(&k);
	}
	if (in->user_data)
		tree_add_bytes(t, "user-data", in->user_data,
		               in->user_data_len);

	struct mc_buf doc;
	mc_buf_init(&doc);
	identity_document(m, in, zone, ip, &doc);
	tree_add_bytes(t, "dynamic/instance-identity/document", doc.data,
	               doc.len);
	mc_buf_free(&doc);
}

/* ---- Tokens ------------------------------------------------------------- */

static uint64_t now_ms(const struct api_imds *m)
{
	return m->src.now_ms ? m->src.now_ms(m->src.arg) : mc_wall_ms();
}

static void token_mac(const struct api_imds *m, const char *instance_id,
                      const uint8_t expiry[8], uint8_t out[TOKEN_MAC_LEN])
{
	struct mc_buf b;
	uint8_t full[API_SHA256_BYTES];
	mc_buf_init(&b);
	mc_buf_append_str(&b, "mallee-imds-token\n");
	mc_buf_append_str(&b, instance_id);
	mc_buf_append(&b, "\n", 1);
	mc_buf_append(&b, expiry, 8);
	api_hmac_sha256(full, m->secret, sizeof(m->secret), b.data, b.len);
	memcpy(out, full, TOKEN_MAC_LEN);
	mc_buf_free(&b);
}

static char *token_make(const struct api_imds *m, const char *instance_id,
                        unsigned ttl_s)
{
	uint8_t raw[TOKEN_RAW_LEN];
	uint64_t expiry = now_ms(m) + (uint64_t)ttl_s * 1000;
	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(expiry >> (56 - 8 * i));
	token_mac(m, instance_id, raw, raw + 8);
	return mc_b64url_encode(raw, sizeof(raw));
}

static bool token_valid(const struct api_imds *m, const char *instance_id,
                        const char *token)
{
	uint8_t raw[TOKEN_RAW_LEN], mac[TOKEN_MAC_LEN];
	size_t len = strlen(token);
	if (len > TOKEN_TEXT_MAX ||
	    mc_b64url_decode(raw, sizeof(raw), token, len) != TOKEN_RAW_LEN)
		return false;
	token_mac(m, instance_id, raw, mac);
	if (!mc_equal(mac, raw + 8, TOKEN_MAC_LEN))
		return false;
	uint64_t expiry = 0;
	for (int i = 0; i < 8; i++)
		expiry = expiry << 8 | raw[i];
	return now_ms(m) < expiry;
}

/* A TTL header: decimal 1..21600, nothing else. */
static bool parse_ttl(const char *s, unsigned *out)
{
	unsigned v = 0;
	if (!s || !*s || strlen(s) > 5)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v < 1 || v > API_IMDS_TOKEN_TTL_MAX)
		return false;
	*out = v;
	return true;
}

/* ---- Requests ----------------------------------------------------------- */

static void reply_text(struct api_http_response *resp, int status,
                       const void *body, size_t len)
{
	resp->status = status;
	api_http_response_header(resp, "Content-Type", "text/plain");
	mc_buf_append(&resp->body, body, len);
}

static void reply_error(struct api_http_response *resp, int status)
{
	char title[64];
	snprintf(title, sizeof(title), "%d - %s", status,
	         api_http_reason(status));
	resp->status = status;
	api_http_response_header(resp, "Content-Type", "text/html");
	mc_buf_printf(&resp->body,
	              "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
	              "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 "
	              "Transitional//EN\"\n"
	              "\t\"http://www.w3.org/TR/xhtml1/DTD/"
	              "xhtml1-transitional.dtd\">\n"
	              "<html xmlns=\"http://www.w3.org/1999/xhtml\" "
	              "xml:lang=\"en\" lang=\"en\">\n"
	              " <head>\n  <title>%s</title>\n </head>\n <body>\n"
	              "  <h1>%s</h1>\n </body>\n</html>\n",
	              title, title);
}

static bool known_version(const char *v, size_t len)
{
	for (size_t i = 0; i < N_VERSIONS; i++)
		if (strlen(versions[i]) == len &&
		    memcmp(versions[i], v, len) == 0)
			return true;
	return false;
}

/* Answers GET path from the tree. */
static void serve_path(const struct tree *t, const char *path,
                       struct api_http_response *resp)
{
	struct mc_buf out;
	mc_buf_init(&out);
	if (strcmp(path, "/") == 0 || path[0] == '\0') {
		for (size_t i = 0; i < N_VERSIONS; i++)
			mc_buf_printf(&out, "%s%s", i ? "\n" : "", versions[i]);
		reply_text(resp, 200, out.data, out.len);
		goto out;
	}
	const char *v = path + 1;
	const char *slash = strchr(v, '/');
	size_t vlen = slash ? (size_t)(slash - v) : strlen(v);
	if (!known_version(v, vlen)) {
		reply_error(resp, 404);
		goto out;
	}
	/* The rest without its leading and trailing '/'. */
	char rest[512];
	const char *r = slash ? slash + 1 : "";
	size_t rlen = strlen(r);
	if (rlen >= sizeof(rest)) {
		reply_error(resp, 404);
		goto out;
	}
	memcpy(rest, r, rlen + 1);
	if (rlen && rest[rlen - 1] == '/')
		rest[--rlen] = '\0';
	if (rlen == 0) {
		mc_buf_append_str(&out, "dynamic\nmeta-data");
		if (tree_leaf(t, "user-data"))
			mc_buf_append_str(&out, "\nuser-data");
		reply_text(resp, 200, out.data, out.len);
		goto out;
	}
	if (strncmp(rest, "meta-data", 9) != 0 &&
	    strncmp(rest, "dynamic", 7) != 0 &&
	    strcmp(rest, "user-data") != 0) {
		reply_error(resp, 404);
		goto out;
	}
	const struct leaf *l = tree_leaf(t, rest);
	if (l)
		reply_text(resp, 200, l->value, l->len);
	else if (tree_list(t, rest, &out))
		reply_text(resp, 200, out.data, out.len);
	else
		reply_error(resp, 404);
out:
	mc_buf_free(&out);
}

static void handle(struct api_imds *m, const struct api_http_request *req,
                   struct api_http_response *resp)
{
	bool put = strcmp(req->method, "PUT") == 0;
	bool get = strcmp(req->method, "GET") == 0;
	if (!put && !get) {
		api_http_response_header(resp, "Allow", "GET, PUT");
		reply_error(resp, 405);
		return;
	}
	bool token_path = strcmp(req->path, TOKEN_PATH) == 0;
	if (put != token_path) {
		reply_error(resp, 405);
		return;
	}
	/* A token through a proxy would let others act as the instance. */
	if (put && api_http_header(req, "X-Forwarded-For")) {
		reply_error(resp, 403);
		return;
	}

	struct mc_instance in;
	memset(&in, 0, sizeof(in));
	int r = m->src.lookup(m->src.arg, req->peer ? req->peer : "", &in);
	if (r) {
		reply_error(resp, r == -ENOENT ? 404 : 500);
		mc_instance_clear(&in);
		return;
	}

	if (put) {
		unsigned ttl;
		if (!parse_ttl(api_http_header(req, TTL_HEADER), &ttl)) {
			reply_error(resp, 400);
			goto out;
		}
		char *tok = token_make(m, in.id, ttl);
		char ttls[16];
		snprintf(ttls, sizeof(ttls), "%u", ttl);
		api_http_response_header(resp, TTL_HEADER, ttls);
		reply_text(resp, 200, tok, strlen(tok));
		free(tok);
		goto out;
	}

	const char *tok = api_http_header(req, TOKEN_HEADER);
	if (tok ? !token_valid(m, in.id, tok) : in.imds_tokens_required) {
		reply_error(resp, 401);
		goto out;
	}
	struct tree t = {0};
	build_tree(m, &in, req->peer ? req->peer : "", &t);
	serve_path(&t, req->path, resp);
	tree_free(&t);
out:
	mc_instance_clear(&in);
}

void api_imds_handle(struct api_imds *m, const struct api_http_request *req,
                     struct api_http_response *resp)
{
	handle(m, req, resp);
	api_http_response_header(resp, "Server", "EC2ws");
}

static enum api_http_result on_request(void *arg,
                                       const struct api_http_request *req,
                                       struct api_http_response *resp)
{
	api_imds_handle(arg, req, resp);
	return API_HTTP_DONE;
}

/* ---- Life --------------------------------------------------------------- */

struct api_imds *api_imds_new(const struct api_imds_source *src)
{
	struct api_imds *m = xcalloc(1, sizeof(*m));
	m->src = *src;
	m->region = xstrdup(src->region ? src->region : "");
	m->zone = xstrdup(src->zone ? src->zone : "");
	m->src.region = m->region;
	m->src.zone = m->zone;
	mc_random(m->secret, sizeof(m->secret));
	return m;
}

void api_imds_free(struct api_imds *m)
{
	if (!m)
		return;
	mc_wipe(m->secret, sizeof(m->secret));
	free(m->region);
	free(m->zone);
	free(m);
}

int api_imds_listen(struct api_imds *m, uv_loop_t *loop,
                    const struct sockaddr *addr)
{
	struct api_http_limits lim;
	api_http_limits_default(&lim);
	lim.max_header_bytes = 8192;
	lim.max_headers = 64;
	lim.max_body_bytes = 4096;
	lim.max_conns = 256;
	struct api_http_conn_ops ops = {.handle = on_request, .arg = m};
	m->http = api_http_server_new(loop, &lim, &ops);
	int r = api_http_server_listen(m->http, addr, 128);
	if (r < 0) {
		api_http_server_close(m->http, NULL, NULL);
		m->http = NULL;
	}
	return r;
}

int api_imds_port(const struct api_imds *m)
{
	return m->http ? api_http_server_port(m->http) : 0;
}

static void on_closed(void *arg)
{
	struct api_imds *m = arg;
	void (*done)(void *) = m->done;
	void *done_arg = m->done_arg;
	api_imds_free(m);
	if (done)
		done(done_arg);
}

void api_imds_stop(struct api_imds *m, void (*done)(void *arg), void *arg)
{
	m->done = done;
	m->done_arg = arg;
	if (m->http)
		api_http_server_close(m->http, on_closed, m);
	else
		on_closed(m);
}
