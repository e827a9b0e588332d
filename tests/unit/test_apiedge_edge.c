/*
 * The edge end to end on a real loop and sockets, against an in-memory
 * cloud: signed requests (SigV4 POST form and GET, SigV2) reach
 * DescribeRegions and GetCallerIdentity; unsigned, mis-signed, unknown and
 * malformed requests get EC2's error documents with EC2's statuses.
 */
#include "check.h"

#include "apiedge_int.h"
#include "crypto.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define KEY    "AKIAMALLEETEST000001"
#define SECRET "mallee/secret+key/for/tests"

static uv_loop_t loop;
static uv_async_t stopper;
static struct api_edge *edge;
static int port;
static bool stopped;

static int lookup(void *arg, const char *id, struct api_key_info *out)
{
	(void)arg;
	if (strcmp(id, KEY) != 0)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	snprintf(out->account_id, sizeof(out->account_id), "123456789012");
	snprintf(out->secret, sizeof(out->secret), "%s", SECRET);
	snprintf(out->user_arn, sizeof(out->user_arn),
	         "arn:aws:iam::123456789012:user/alice");
	snprintf(out->user_id, sizeof(out->user_id), "AIDAMALLEEALICE");
	return 0;
}

static void on_edge_stopped(void *arg)
{
	(void)arg;
	stopped = true;
}

static void on_stop(uv_async_t *a)
{
	api_edge_stop(edge, on_edge_stopped, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
	(void)arg;
	uv_run(&loop, UV_RUN_DEFAULT);
	return NULL;
}

/* Sends one request on a new connection; returns status, body in out. */
static int exchange(const char *raw, char *out, size_t cap)
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
	send(fd, raw, strlen(raw), MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	char buf[16384];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 &&
	       (r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
		len += (size_t)r;
	buf[len] = 0;
	close(fd);
	char *body = strstr(buf, "\r\n\r\n");
	snprintf(out, cap, "%s", body ? body + 4 : "");
	return len > 12 ? atoi(buf + 9) : -1;
}

/* Signs with SigV4 as an SDK would and sends; host is the Host header. */
static int sigv4_call(const char *method, const char *path, const char *query,
                      const char *form, const char *host, const char *secret,
                      time_t when, char *out, size_t cap)
{
	char date[17];
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	const char *ctype = "application/x-www-form-urlencoded; charset=utf-8";
	struct api_http_header h[3] = {
	    {"Content-Type", ctype}, {"Host", host}, {"X-Amz-Date", date}};
	struct api_http_request req = {.method = method,
	                               .path = path,
	                               .query = query,
	                               .headers = h,
	                               .n_headers = 3,
	                               .body = (const uint8_t *)form,
	                               .body_len = strlen(form)};
	const char *sh = "content-type;host;x-amz-date";
	struct mc_buf creq;
	mc_buf_init(&creq);
	api_sigv4_canonical_request(&req, sh, false, &creq);
	uint8_t hash[32];
	char hex[65], sig[65];
	api_sha256(hash, creq.data, creq.len);
	mc_hex_encode(hex, hash, 32);
	mc_buf_free(&creq);
	/* A client that derived its scope from "localhost". */
	char *sts = xasprintf("AWS4-HMAC-SHA256\n%s\n%.8s/localhost/ec2/"
	                      "aws4_request\n%s",
	                      date, date, hex);
	char day[9];
	snprintf(day, sizeof(day), "%.8s", date);
	api_sigv4_sign(sig, secret, day, "localhost", "ec2", sts);
	free(sts);
	char *raw = xasprintf(
	    "%s %s%s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
	    "X-Amz-Date: %s\r\nContent-Length: %zu\r\nAuthorization: "
	    "AWS4-HMAC-SHA256 Credential=%s/%.8s/localhost/ec2/aws4_request,"
	    "SignedHeaders=%s,Signature=%s\r\n\r\n%s",
	    method, path, *query ? "?" : "", query, host, ctype, date,
	    strlen(form), KEY, date, sh, sig, form);
	int status = exchange(raw, out, cap);
	free(raw);
	return status;
}

static void test_describe_regions(void)
{
	char body[8192];
	int st =
	    sigv4_call("POST", "/", "",
	               "Action=DescribeRegions&Version="
	               "2016-11-15",
	               "127.0.0.1", SECRET, time(NULL), body, sizeof(body));
	CHECK_EQ_U64(st, 200);
	CHECK(strncmp(body,
	              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	              "<DescribeRegionsResponse xmlns=\"http://"
	              "ec2.amazonaws.com/doc/2016-11-15/\"><requestId>",
	              118) == 0);
	CHECK(strstr(body, "<regionInfo><item><regionName>us-test-1"
	                   "</regionName><regionEndpoint>127.0.0.1:8773"
	                   "</regionEndpoint><optInStatus>opt-in-not-required"
	                   "</optInStatus></item></regionInfo>"
	                   "</DescribeRegionsResponse>") != NULL);

	/* GET on /services/compute/, another Version echoed, a filter that
	 * matches nothing. */
	st = sigv4_call("GET", "/services/compute/",
	                "Action=DescribeRegions&Version=2009-04-04&"
	                "Filter.1.Name=region-name&Filter.1.Value.1=us-%2A",
	                "", "127.0.0.1:8773", SECRET, time(NULL), body,
	                sizeof(body));
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "doc/2009-04-04/") != NULL);
	CHECK(strstr(body, "<regionName>us-test-1</regionName>") != NULL);
	st =
	    sigv4_call("GET", "/services/Eucalyptus",
	               "Action=DescribeRegions&Filter.1.Name=region-name&"
	               "Filter.1.Value=eu-%2A",
	               "", "localhost", SECRET, time(NULL), body, sizeof(body));
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "<regionInfo></regionInfo>") != NULL);
	st =
	    sigv4_call("GET", "/", "Action=DescribeRegions&Filter.1.Name=bad",
	               "", "localhost", SECRET, time(NULL), body, sizeof(body));
	CHECK_EQ_U64(st, 400);
	CHECK(strstr(body, "<Code>InvalidParameterValue</Code>") != NULL);
}

static void test_caller_identity(void)
{
	char body[8192];
	int st =
	    sigv4_call("POST", "/", "",
	               "Action=GetCallerIdentity&"
	               "Version=2011-06-15",
	               "127.0.0.1", SECRET, time(NULL), body, sizeof(body));
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body,
	             "<GetCallerIdentityResponse xmlns=\"https://"
	             "sts.amazonaws.com/doc/2011-06-15/\">"
	             "<GetCallerIdentityResult><Arn>arn:aws:iam::"
	             "123456789012:user/alice</Arn><UserId>AIDAMALLEEALICE"
	             "</UserId><Account>123456789012</Account>"
	             "</GetCallerIdentityResult><ResponseMetadata>"
	             "<RequestId>") != NULL);
}

static void check_error(int status, const char *body, int want_status,
                        const char *code)
{
	char want[128];
	snprintf(
	    want, sizeof(want),
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors>"
	    "<Error><Code>%s</Code><Message>",
	    code);
	if (status != want_status || strncmp(body, want, strlen(want)) != 0)
		fprintf(stderr, "want %d %s, got %d %s\n", want_status, code,
		        status, body);
	CHECK_EQ_U64(status, want_status);
	CHECK(strncmp(body, want, strlen(want)) == 0);
	CHECK(strstr(body, "</Message></Error></Errors><RequestID>") != NULL);
}

static void test_errors(void)
{
	char body[8192];
	int st;
	st = sigv4_call("POST", "/", "", "Action=RunAway&Version=2016-11-15",
	                "127.0.0.1", SECRET, time(NULL), body, sizeof(body));
	check_error(st, body, 400, "InvalidAction");
	st = sigv4_call("POST", "/", "", "Version=2016-11-15", "127.0.0.1",
	                SECRET, time(NULL), body, sizeof(body));
	check_error(st, body, 400, "MissingAction");
	st = sigv4_call("POST", "/", "", "Action=DescribeRegions", "127.0.0.1",
	                "wrong secret", time(NULL), body, sizeof(body));
	check_error(st, body, 401, "AuthFailure");
	st = sigv4_call("POST", "/", "", "Action=DescribeRegions", "127.0.0.1",
	                SECRET, time(NULL) - 3600, body, sizeof(body));
	check_error(st, body, 400, "RequestExpired");
	st = sigv4_call("POST", "/other", "", "Action=DescribeRegions",
	                "127.0.0.1", SECRET, time(NULL), body, sizeof(body));
	check_error(st, body, 404, "NotFound");
	st = sigv4_call("POST", "/", "", "Action=DescribeRegions&Bad=%zz",
	                "127.0.0.1", SECRET, time(NULL), body, sizeof(body));
	check_error(st, body, 400, "MalformedQueryString");

	st =
	    exchange("GET /?Action=DescribeRegions HTTP/1.1\r\nHost: h\r\n\r\n",
	             body, sizeof(body));
	check_error(st, body, 401, "MissingAuthenticationToken");
	st = exchange("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", body,
	              sizeof(body));
	check_error(st, body, 400, "UnsupportedOperation");
	st = exchange("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic "
	              "dTpw\r\n\r\n",
	              body, sizeof(body));
	check_error(st, body, 400, "IncompleteSignature");
	/* Errors of the HTTP layer are EC2 documents too. */
	st = exchange("GET / HTTP/3.0\r\n\r\n", body, sizeof(body));
	check_error(st, body, 505, "UnsupportedProtocol");
	st = exchange("POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
	              body, sizeof(body));
	check_error(st, body, 413, "RequestEntityTooLarge");
}

/* SigV2 as older libraries send it: GET, HmacSHA256, Timestamp. */
static void test_sigv2(void)
{
	char ts[32], query[1024], body[8192];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
	snprintf(query, sizeof(query),
	         "AWSAccessKeyId=" KEY "&Action=DescribeRegions&"
	         "SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=%s&"
	         "Version=2014-10-01",
	         ts);
	char *sts =
	    xasprintf("GET\n127.0.0.1:8773\n/services/compute\n%s", query);
	uint8_t mac[32];
	api_hmac_sha256(mac, SECRET, strlen(SECRET), sts, strlen(sts));
	free(sts);
	char *b64 = mc_b64_encode(mac, 32);
	struct mc_buf enc;
	mc_buf_init(&enc);
	api_uri_encode(&enc, b64, strlen(b64));
	mc_buf_put_u8(&enc, 0);
	char *raw = xasprintf("GET /services/compute?%s&Signature=%s HTTP/1.1"
	                      "\r\nHost: 127.0.0.1:8773\r\n\r\n",
	                      query, (char *)enc.data);
	int st = exchange(raw, body, sizeof(body));
	CHECK_EQ_U64(st, 200);
	CHECK(strstr(body, "doc/2014-10-01/") != NULL);
	free(raw);
	free(b64);
	mc_buf_free(&enc);
}

/* Token buckets: burst, refill at rate, keys apart, 0 disables. */
static void test_throttle(void)
{
	struct api_throttle *t = api_throttle_new(2, 3);
	int ok = 0;
	for (int i = 0; i < 10; i++)
		ok += api_throttle_take(t, "A", 1000);
	CHECK_EQ_U64(ok, 3);
	CHECK(api_throttle_take(t, "B", 1000));
	CHECK(!api_throttle_take(t, "A", 1400));
	CHECK(api_throttle_take(t, "A", 1500)); /* 2/s: one more at +0.5 s */
	CHECK(!api_throttle_take(t, "A", 1500));
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += api_throttle_take(t, "A", 100000);
	CHECK_EQ_U64(ok, 3); /* refill stops at the burst */
	api_throttle_free(t);
	t = api_throttle_new(0, 0);
	for (int i = 0; i < 100; i++)
		CHECK(api_throttle_take(t, "A", 0));
	api_throttle_free(t);
}

int main(void)
{
	if (mc_crypto_init() != 0)
		return 1;
	CHECK(uv_loop_init(&loop) == 0);
	struct api_cloud cloud = {.lookup_key = lookup};
	struct api_edge_config cfg = {.region = "us-test-1",
	                              .endpoint = "127.0.0.1:8773"};
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	CHECK(api_edge_start(&edge, &loop, (struct sockaddr *)&a, &cfg,
	                     &cloud) == 0);
	port = api_edge_port(edge);
	CHECK(port > 0);
	uv_async_init(&loop, &stopper, on_stop);
	pthread_t th;
	pthread_create(&th, NULL, loop_main, NULL);

	RUN(test_describe_regions);
	RUN(test_caller_identity);
	RUN(test_errors);
	RUN(test_sigv2);
	RUN(test_throttle);

	uv_async_send(&stopper);
	pthread_join(th, NULL);
	CHECK(stopped);
	CHECK(uv_loop_close(&loop) == 0);
	return check_summary();
}
