/* The metadata service's handler over a fake instance table: the trees,
 * IMDSv2 tokens, and the errors EC2 gives. */
#include "check.h"

#include "apiedge_int.h"
#include "crypto.h"
#include "imds.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define IP_A "172.31.5.10"
#define IP_B "172.31.5.11"
#define ID_A "i-0123456789abcdef0"
#define ID_B "i-0fedcba9876543210"

static uint64_t fake_now = 1700000000000ull;
static bool a_requires_tokens;
static bool a_has_user_data = true;
static unsigned lookups;

static uint64_t now_ms(void *arg)
{
	(void)arg;
	return fake_now;
}

static int lookup(void *arg, const char *ip, struct mc_instance *out)
{
	(void)arg;
	lookups++;
	bool a = strcmp(ip, IP_A) == 0;
	if (!a && strcmp(ip, IP_B) != 0)
		return strcmp(ip, "10.9.9.9") == 0 ? -EIO : -ENOENT;
	snprintf(out->id, sizeof(out->id), "%s", a ? ID_A : ID_B);
	snprintf(out->account, sizeof(out->account), "123456789012");
	snprintf(out->reservation, sizeof(out->reservation), "r-0aaa");
	snprintf(out->image_id, sizeof(out->image_id), "ami-0abc");
	snprintf(out->instance_type, sizeof(out->instance_type), "t3.micro");
	snprintf(out->private_ip, sizeof(out->private_ip), "%s", ip);
	snprintf(out->mac, sizeof(out->mac), "02:00:ac:1f:05:%s",
	         a ? "0a" : "0b");
	snprintf(out->architecture, sizeof(out->architecture), "x86_64");
	out->launch_ms = 1600000000000ull;
	if (a) {
		snprintf(out->key_name, sizeof(out->key_name), "mykey");
		out->key_material = xstrdup("ssh-ed25519 AAAAC3Nza mykey");
		out->n_groups = 2;
		snprintf(out->groups[0].id, sizeof(out->groups[0].id), "sg-1");
		snprintf(out->groups[0].name, sizeof(out->groups[0].name),
		         "default");
		snprintf(out->groups[1].id, sizeof(out->groups[1].id), "sg-2");
		snprintf(out->groups[1].name, sizeof(out->groups[1].name),
		         "web");
		if (a_has_user_data) {
			out->user_data =
			    (uint8_t *)xstrdup("#!/bin/sh\necho hi\n");
			out->user_data_len = strlen((char *)out->user_data);
		}
		out->imds_tokens_required = a_requires_tokens;
		snprintf(out->zone, sizeof(out->zone), "moon-1b");
	}
	return 0;
}

struct reply {
	int status;
	char *body;
	char *headers;
};

static void reply_free(struct reply *r)
{
	free(r->body);
	free(r->headers);
}

static struct reply call(struct api_imds *m, const char *method,
                         const char *path, const char *peer,
                         const struct api_http_header *hdrs, size_t n_hdrs)
{
	struct api_http_request req = {
	    .method = method,
	    .target = path,
	    .path = path,
	    .query = "",
	    .headers = hdrs,
	    .n_headers = n_hdrs,
	    .body = (const uint8_t *)"",
	    .http_minor = 1,
	    .peer = peer,
	};
	struct api_http_response resp;
	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	api_imds_handle(m, &req, &resp);
	struct reply r = {.status = resp.status};
	r.body = xstrndup(resp.body.data ? (char *)resp.body.data : "",
	                  resp.body.len);
	r.headers = xstrndup(resp.headers.data ? (char *)resp.headers.data : "",
	                     resp.headers.len);
	mc_buf_free(&resp.body);
	mc_buf_free(&resp.headers);
	return r;
}

static struct reply get(struct api_imds *m, const char *path, const char *ip)
{
	return call(m, "GET", path, ip, NULL, 0);
}

static void expect(struct api_imds *m, const char *path, int status,
                   const char *body)
{
	struct reply r = get(m, path, IP_A);
	if (r.status != status)
		fprintf(stderr, "%s: status %d\n", path, r.status);
	CHECK(r.status == status);
	if (body) {
		if (strcmp(r.body, body) != 0)
			fprintf(stderr, "%s: body \"%s\"\n", path, r.body);
		CHECK_STR(r.body, body);
	}
	reply_free(&r);
}

static struct api_imds *service(void)
{
	struct api_imds_source src = {
	    .lookup = lookup,
	    .region = "moon-1",
	    .zone = "moon-1a",
	    .now_ms = now_ms,
	};
	return api_imds_new(&src);
}

static void test_versions_and_roots(void)
{
	struct api_imds *m = service();
	struct reply r = get(m, "/", IP_A);
	CHECK(r.status == 200);
	CHECK(strncmp(r.body, "1.0\n2007-01-19\n", 15) == 0);
	CHECK(strstr(r.body, "\n2009-04-04\n") != NULL);
	size_t len = strlen(r.body);
	CHECK(len > 7 && strcmp(r.body + len - 7, "\nlatest") == 0);
	CHECK(strstr(r.headers, "Content-Type: text/plain") != NULL);
	reply_free(&r);

	expect(m, "/latest", 200, "dynamic\nmeta-data\nuser-data");
	expect(m, "/latest/", 200, "dynamic\nmeta-data\nuser-data");
	expect(m, "/2009-04-04/", 200, "dynamic\nmeta-data\nuser-data");
	expect(m, "/1999-01-01/meta-data/", 404, NULL);
	expect(m, "/latest/nothing", 404, NULL);
	expect(m, "/latest/dynamic/", 200, "instance-identity/");
	expect(m, "/latest/dynamic/instance-identity/", 200, "document");
	api_imds_free(m);
}

static void test_meta_data(void)
{
	struct api_imds *m = service();
	struct reply r = get(m, "/latest/meta-data/", IP_A);
	CHECK(r.status == 200);
	CHECK_STR(r.body, "ami-id\nami-launch-index\nami-manifest-path\n"
	                  "block-device-mapping/\nhostname\ninstance-action\n"
	                  "instance-id\ninstance-life-cycle\ninstance-type\n"
	                  "local-hostname\nlocal-ipv4\nmac\nnetwork/\n"
	                  "placement/\npublic-keys/\nreservation-id\n"
	                  "security-groups\nservices/");
	reply_free(&r);
	/* Without the trailing '/' too. */
	r = get(m, "/latest/meta-data", IP_A);
	CHECK(r.status == 200 && strncmp(r.body, "ami-id\n", 7) == 0);
	reply_free(&r);

	expect(m, "/latest/meta-data/instance-id", 200, ID_A);
	expect(m, "/2009-04-04/meta-data/instance-id", 200, ID_A);
	expect(m, "/latest/meta-data/ami-id", 200, "ami-0abc");
	expect(m, "/latest/meta-data/ami-launch-index", 200, "0");
	expect(m, "/latest/meta-data/instance-type", 200, "t3.micro");
	expect(m, "/latest/meta-data/instance-action", 200, "none");
	expect(m, "/latest/meta-data/local-ipv4", 200, IP_A);
	expect(m, "/latest/meta-data/mac", 200, "02:00:ac:1f:05:0a");
	expect(m, "/latest/meta-data/hostname", 200,
	       "ip-172-31-5-10.moon-1.compute.internal");
	expect(m, "/latest/meta-data/local-hostname", 200,
	       "ip-172-31-5-10.moon-1.compute.internal");
	expect(m, "/latest/meta-data/reservation-id", 200, "r-0aaa");
	expect(m, "/latest/meta-data/security-groups", 200, "default\nweb");
	expect(m, "/latest/meta-data/block-device-mapping/", 200, "ami\nroot");
	expect(m, "/latest/meta-data/block-device-mapping/root", 200,
	       "/dev/vda");
	expect(m, "/latest/meta-data/placement/", 200,
	       "availability-zone\nregion");
	expect(m, "/latest/meta-data/placement/availability-zone", 200,
	       "moon-1b");
	expect(m, "/latest/meta-data/placement/region", 200, "moon-1");
	expect(m, "/latest/meta-data/services/", 200, "domain\npartition");
	expect(m, "/latest/meta-data/services/domain", 200, "amazonaws.com");
	expect(m, "/latest/meta-data/services/partition", 200, "aws");
	expect(m, "/latest/meta-data/public-keys/", 200, "0=mykey");
	expect(m, "/latest/meta-data/public-keys/0/", 200, "openssh-key");
	expect(m, "/latest/meta-data/public-keys/0/openssh-key", 200,
	       "ssh-ed25519 AAAAC3Nza mykey\n");
	expect(m, "/latest/meta-data/public-keys/1/", 404, NULL);
	expect(m, "/latest/meta-data/nothing", 404, NULL);
	expect(m, "/latest/meta-data/instance-id/more", 404, NULL);

	expect(m, "/latest/meta-data/network/", 200, "interfaces/");
	expect(m, "/latest/meta-data/network/interfaces/macs/", 200,
	       "02:00:ac:1f:05:0a/");
	r = get(m,
	        "/latest/meta-data/network/interfaces/macs/"
	        "02:00:ac:1f:05:0a/",
	        IP_A);
	CHECK_STR(r.body, "device-number\ninterface-id\nlocal-hostname\n"
	                  "local-ipv4s\nmac\nowner-id\nsecurity-group-ids\n"
	                  "security-groups\nsubnet-id\nvpc-id");
	reply_free(&r);
	expect(m,
	       "/latest/meta-data/network/interfaces/macs/02:00:ac:1f:05:0a/"
	       "owner-id",
	       200, "123456789012");
	expect(m,
	       "/latest/meta-data/network/interfaces/macs/02:00:ac:1f:05:0a/"
	       "security-group-ids",
	       200, "sg-1\nsg-2");
	r = get(m,
	        "/latest/meta-data/network/interfaces/macs/02:00:ac:1f:05:0a/"
	        "vpc-id",
	        IP_A);
	CHECK(r.status == 200 && strncmp(r.body, "vpc-", 4) == 0 &&
	      strlen(r.body) == 21);
	reply_free(&r);

	/* Instance B: no key, no user data, the host's zone. */
	r = get(m, "/latest/meta-data/", IP_B);
	CHECK(r.status == 200 && !strstr(r.body, "public-keys"));
	reply_free(&r);
	r = get(m, "/latest/meta-data/placement/availability-zone", IP_B);
	CHECK_STR(r.body, "moon-1a");
	reply_free(&r);
	r = get(m, "/latest/user-data", IP_B);
	CHECK(r.status == 404);
	reply_free(&r);
	r = get(m, "/latest/", IP_B);
	CHECK_STR(r.body, "dynamic\nmeta-data");
	reply_free(&r);

	/* Unknown source: 404; a failing lookup: 500. */
	r = get(m, "/latest/meta-data/instance-id", "10.1.1.1");
	CHECK(r.status == 404);
	reply_free(&r);
	r = get(m, "/latest/meta-data/instance-id", "10.9.9.9");
	CHECK(r.status == 500);
	reply_free(&r);
	api_imds_free(m);
}

static void test_user_data_and_document(void)
{
	struct api_imds *m = service();
	expect(m, "/latest/user-data", 200, "#!/bin/sh\necho hi\n");
	expect(m, "/latest/user-data/", 200, "#!/bin/sh\necho hi\n");
	struct reply r =
	    get(m, "/latest/dynamic/instance-identity/document", IP_A);
	CHECK(r.status == 200);
	CHECK(strstr(r.body, "\"instanceId\" : \"" ID_A "\"") != NULL);
	CHECK(strstr(r.body, "\"accountId\" : \"123456789012\"") != NULL);
	CHECK(strstr(r.body, "\"region\" : \"moon-1\"") != NULL);
	CHECK(strstr(r.body, "\"availabilityZone\" : \"moon-1b\"") != NULL);
	CHECK(strstr(r.body, "\"privateIp\" : \"" IP_A "\"") != NULL);
	CHECK(strstr(r.body, "\"version\" : \"2017-09-30\"") != NULL);
	CHECK(strstr(r.body, "\"pendingTime\" : \"2020-09-13T12:26:40Z\"") !=
	      NULL);
	CHECK(strstr(r.body, "\"kernelId\" : null") != NULL);
	CHECK(r.body[0] == '{' && r.body[strlen(r.body) - 1] == '}');
	reply_free(&r);
	api_imds_free(m);
}

static char *put_token(struct api_imds *m, const char *ip, const char *ttl,
                       int *status)
{
	struct api_http_header h[] = {
	    {"X-aws-ec2-metadata-token-ttl-seconds", ttl}};
	struct reply r =
	    call(m, "PUT", "/latest/api/token", ip, h, ttl ? 1 : 0);
	*status = r.status;
	if (r.status == 200) {
		CHECK(strstr(r.headers,
		             "X-aws-ec2-metadata-token-ttl-seconds: ") != NULL);
		free(r.headers);
		return r.body;
	}
	reply_free(&r);
	return NULL;
}

static int get_with_token(struct api_imds *m, const char *ip, const char *token)
{
	struct api_http_header h[] = {{"X-aws-ec2-metadata-token", token}};
	struct reply r = call(m, "GET", "/latest/meta-data/instance-id", ip, h,
	                      token ? 1 : 0);
	int s = r.status;
	if (s == 200)
		CHECK_STR(r.body, strcmp(ip, IP_A) == 0 ? ID_A : ID_B);
	reply_free(&r);
	return s;
}

static void test_tokens(void)
{
	struct api_imds *m = service();
	int status;
	char *tok;

	/* Bad TTLs. */
	const char *bad[] = {NULL, "",    "0",        "21601",
	                     "-1", "12a", "99999999", " 5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tok = put_token(m, IP_A, bad[i], &status);
		CHECK(tok == NULL && status == 400);
	}
	/* Through a proxy: refused. */
	struct api_http_header fwd[] = {
	    {"X-aws-ec2-metadata-token-ttl-seconds", "60"},
	    {"X-Forwarded-For", "1.2.3.4"}};
	struct reply r = call(m, "PUT", "/latest/api/token", IP_A, fwd, 2);
	CHECK(r.status == 403);
	reply_free(&r);
	/* Wrong methods and paths. */
	r = call(m, "GET", "/latest/api/token", IP_A, NULL, 0);
	CHECK(r.status == 405);
	reply_free(&r);
	r = call(m, "PUT", "/latest/meta-data/", IP_A, fwd, 1);
	CHECK(r.status == 405);
	reply_free(&r);
	r = call(m, "POST", "/latest/meta-data/", IP_A, NULL, 0);
	CHECK(r.status == 405);
	reply_free(&r);
	/* Unknown source. */
	tok = put_token(m, "10.1.1.1", "60", &status);
	CHECK(tok == NULL && status == 404);

	tok = put_token(m, IP_A, "60", &status);
	CHECK(tok != NULL && status == 200);
	CHECK(get_with_token(m, IP_A, tok) == 200);
	CHECK(get_with_token(m, IP_A, NULL) == 200); /* v1 still allowed */
	/* Another instance's token, or garbage: 401. */
	CHECK(get_with_token(m, IP_B, tok) == 401);
	CHECK(get_with_token(m, IP_A, "nonsense") == 401);
	CHECK(get_with_token(m, IP_A, "") == 401);
	char forged[128];
	snprintf(forged, sizeof(forged), "%s", tok);
	forged[strlen(forged) - 1] ^= 1;
	CHECK(get_with_token(m, IP_A, forged) == 401);
	/* Expiry. */
	fake_now += 59 * 1000;
	CHECK(get_with_token(m, IP_A, tok) == 200);
	fake_now += 2 * 1000;
	CHECK(get_with_token(m, IP_A, tok) == 401);
	free(tok);

	/* HttpTokens=required: v1 refused, v2 served. */
	a_requires_tokens = true;
	CHECK(get_with_token(m, IP_A, NULL) == 401);
	tok = put_token(m, IP_A, "21600", &status);
	CHECK(tok != NULL);
	CHECK(get_with_token(m, IP_A, tok) == 200);
	free(tok);
	a_requires_tokens = false;

	/* A token does not survive the service (a new secret). */
	tok = put_token(m, IP_A, "60", &status);
	api_imds_free(m);
	m = service();
	CHECK(get_with_token(m, IP_A, tok) == 401);
	free(tok);
	api_imds_free(m);
}

/* Over a real socket on loopback: the server pieces put together. */
static uv_loop_t loop;

static void test_listen(void)
{
	CHECK(uv_loop_init(&loop) == 0);
	struct api_imds *m = service();
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	CHECK(api_imds_listen(m, &loop, (struct sockaddr *)&a) == 0);
	CHECK(api_imds_port(m) > 0);
	api_imds_stop(m, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
}

int main(void)
{
	mc_crypto_init();
	RUN(test_versions_and_roots);
	RUN(test_meta_data);
	RUN(test_user_data_and_document);
	RUN(test_tokens);
	RUN(test_listen);
	fprintf(stderr, "%d passed, %d failed\n", check_passed, check_failed);
	return check_failed != 0;
}
