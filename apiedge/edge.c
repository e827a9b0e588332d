/*
 * The edge: an HTTP server whose every request is an EC2 Query call. For
 * each request it checks the path and method, gathers the parameters (query
 * string, then form body), verifies the signature (SigV4 header or
 * presigned, SigV2), throttles per access key, finds the action and runs
 * it; any failure along the way is EC2's error document.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct api_edge {
	uv_loop_t *loop;
	struct api_edge_config cfg;
	struct api_cloud cloud;
	struct api_http_server *http;
	struct api_throttle *throttle;
	struct api_tls *tls;
	struct api_keypool *keypool;
	uint8_t request_base[16]; /* request ids: this, xor a counter */
	uint64_t requests;
	/* Calls answered later: the edge outlives them (api_edge_stop). */
	size_t pending;
	bool http_closed;
	void (*done)(void *);
	void *done_arg;
};

/* Sorted by name; each family of actions adds its rows here. */
static const struct api_action actions[] = {
    {"AllocateAddress", api_action_allocate_address},
    {"AssociateAddress", api_action_associate_address},
    {"AuthorizeSecurityGroupEgress",
     api_action_authorize_security_group_egress},
    {"AuthorizeSecurityGroupIngress",
     api_action_authorize_security_group_ingress},
    {"CreateKeyPair", api_action_create_key_pair},
    {"CreateSecurityGroup", api_action_create_security_group},
    {"CreateTags", api_action_create_tags},
    {"DeleteKeyPair", api_action_delete_key_pair},
    {"DeleteSecurityGroup", api_action_delete_security_group},
    {"DeleteTags", api_action_delete_tags},
    {"DeregisterImage", api_action_deregister_image},
    {"DescribeAccountAttributes", api_action_describe_account_attributes},
    {"DescribeAddresses", api_action_describe_addresses},
    {"DescribeAvailabilityZones", api_action_describe_availability_zones},
    {"DescribeImages", api_action_describe_images},
    {"DescribeInstanceAttribute", api_action_describe_instance_attribute},
    {"DescribeInstanceStatus", api_action_describe_instance_status},
    {"DescribeInstanceTypes", api_action_describe_instance_types},
    {"DescribeInstances", api_action_describe_instances},
    {"DescribeKeyPairs", api_action_describe_key_pairs},
    {"DescribeRegions", api_action_describe_regions},
    {"DescribeSecurityGroups", api_action_describe_security_groups},
    {"DescribeSubnets", api_action_describe_subnets},
    {"DescribeTags", api_action_describe_tags},
    {"DescribeVolumes", api_action_describe_volumes},
    {"DescribeVpcs", api_action_describe_vpcs},
    {"DisassociateAddress", api_action_disassociate_address},
    {"GetCallerIdentity", api_action_get_caller_identity},
    {"GetConsoleOutput", api_action_get_console_output},
    {"ImportKeyPair", api_action_import_key_pair},
    {"ModifyInstanceAttribute", api_action_modify_instance_attribute},
    {"RebootInstances", api_action_reboot_instances},
    {"RegisterImage", api_action_register_image},
    {"ReleaseAddress", api_action_release_address},
    {"RevokeSecurityGroupEgress", api_action_revoke_security_group_egress},
    {"RevokeSecurityGroupIngress", api_action_revoke_security_group_ingress},
    {"RunInstances", api_action_run_instances},
    {"StartInstances", api_action_start_instances},
    {"StopInstances", api_action_stop_instances},
    {"TerminateInstances", api_action_terminate_instances},
};

static int action_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct api_action *)elem)->name);
}

const struct api_action *api_action_find(const char *name)
{
	return bsearch(name, actions, sizeof(actions) / sizeof(actions[0]),
	               sizeof(actions[0]), action_cmp);
}

static const char *const paths[] = {
    "/",
    "/services/compute",
    "/services/compute/",
    "/services/Eucalyptus",
    "/services/Eucalyptus/",
};

static bool path_served(const char *path)
{
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (strcmp(path, paths[i]) == 0)
			return true;
	return false;
}

/*
 * Request ids need to be unique, not secret: a random base drawn once per
 * process and a counter, so a request costs no getrandom(2).
 */
static void request_id_new(struct api_edge *e, char out[37])
{
	uint8_t r[16];
	uint64_t n = ++e->requests;
	memcpy(r, e->request_base, sizeof(r));
	for (int i = 0; i < 8; i++)
		r[15 - i] ^= (uint8_t)(n >> (8 * i));
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	char hex[33];
	mc_hex_encode(hex, r, sizeof(r));
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
	         hex + 16, hex + 20);
}

static bool is_form(const char *content_type)
{
	static const char form[] = "application/x-www-form-urlencoded";
	if (!content_type)
		return true; /* some clients omit it; the body decides */
	size_t n = sizeof(form) - 1;
	return strncasecmp(content_type, form, n) == 0 &&
	       (content_type[n] == 0 || content_type[n] == ';' ||
	        content_type[n] == ' ');
}

static int gather_params(const struct api_http_request *req,
                         struct api_params *params, struct api_error *err)
{
	int rc = api_params_parse(params, req->query, strlen(req->query));
	if (rc == 0 && strcmp(req->method, "POST") == 0 && req->body_len &&
	    is_form(api_http_header(req, "Content-Type")))
		rc = api_params_parse(params, (const char *)req->body,
		                      req->body_len);
	if (rc == -E2BIG)
		return api_error_set(err, "InvalidParameterValue",
		                     "The request has too many parameters.");
	if (rc < 0)
		return api_error_set(err, "MalformedQueryString",
		                     "The query string or form body is "
		                     "malformed.");
	return 0;
}

static int authenticate(struct api_edge *e, const struct api_http_request *req,
                        const struct api_params *params, struct api_auth *auth,
                        struct api_error *err)
{
	time_t now = time(NULL);
	int rc;
	switch (api_sig_scheme(req, params)) {
	case 4:
		rc = api_sigv4_verify(req, &e->cloud, now, auth, err);
		break;
	case 2:
		rc = api_sigv2_verify(req, params, &e->cloud, now, auth, err);
		break;
	default:
		return api_error_set(err, "MissingAuthenticationToken",
		                     "Request is missing Authentication Token");
	}
	if (rc < 0)
		return rc;
	if (e->throttle && !api_throttle_take(e->throttle, auth->access_key_id,
	                                      uv_now(e->loop)))
		return api_error_set(err, "RequestLimitExceeded",
		                     "Request limit exceeded.");
	return 0;
}

/*
 * One call's state, on the heap: an action may answer later, so the
 * parameters, the signer and the call must outlive edge_handle.
 */
struct edge_call {
	struct api_call call;
	struct api_params params;
	struct api_auth auth;
	struct api_edge *edge;
	const struct api_http_request *req;
	struct api_http_response *resp;
};

static void edge_free(struct api_edge *e);

/* Writes the answer of a finished call into its response; frees it. */
static void edge_call_end(struct edge_call *ec, int rc)
{
	struct api_http_response *resp = ec->resp;
	const struct api_http_request *req = ec->req;
	if (rc < 0) {
		mc_buf_reset(&resp->body);
		api_xml_error(&resp->body, ec->call.err.code,
		              ec->call.err.message, ec->call.request_id);
		resp->status = ec->call.err.status;
		mc_debug("apiedge", "%s %s from %s: %s: %s", req->method,
		         req->path, req->peer, ec->call.err.code,
		         ec->call.err.message);
	} else {
		resp->status = 200;
	}
	mc_wipe(&ec->auth, sizeof(ec->auth));
	api_params_free(&ec->params);
	free(ec);
}

static void edge_call_finish(struct api_call *call, int rc)
{
	struct edge_call *ec =
	    (struct edge_call *)((char *)call -
	                         offsetof(struct edge_call, call));
	struct api_edge *e = ec->edge;
	struct api_http_response *resp = ec->resp;
	if (rc == API_ACTION_PENDING)
		rc = api_error_set(&call->err, "InternalError",
		                   "The call was finished without an answer.");
	edge_call_end(ec, rc);
	/* The response outlives a client that went away (http_conn.c). */
	api_http_respond(resp);
	e->pending--;
	if (e->http_closed && e->pending == 0)
		edge_free(e);
}

void api_call_finish(struct api_call *call, int rc)
{
	call->finish(call, rc);
}

static enum api_http_result edge_handle(void *arg,
                                        const struct api_http_request *req,
                                        struct api_http_response *resp)
{
	struct api_edge *e = arg;
	struct edge_call *ec = xcalloc(1, sizeof(*ec));
	struct api_call *call = &ec->call;
	ec->edge = e;
	ec->req = req;
	ec->resp = resp;
	*call = (struct api_call){
	    .cfg = &e->cfg,
	    .cloud = &e->cloud,
	    .http = req,
	    .params = &ec->params,
	    .auth = &ec->auth,
	    .out = &resp->body,
	    .keypool = e->keypool,
	    .finish = edge_call_finish,
	};
	api_params_init(&ec->params);
	request_id_new(e, call->request_id);
	api_http_response_header(resp, "Content-Type",
	                         "text/xml;charset=UTF-8");
	api_http_response_header(resp, "x-amzn-RequestId", call->request_id);

	int rc;
	const struct api_action *action = NULL;
	if (!path_served(req->path)) {
		rc = api_error_set(&call->err, "NotFound",
		                   "No EC2 API is served at this path.");
	} else if (strcmp(req->method, "GET") != 0 &&
	           strcmp(req->method, "POST") != 0) {
		rc = api_error_set(&call->err, "UnsupportedOperation",
		                   "The EC2 API takes GET and POST requests.");
	} else {
		rc = gather_params(req, &ec->params, &call->err);
	}
	if (rc == 0)
		rc = authenticate(e, req, &ec->params, &ec->auth, &call->err);
	if (rc == 0) {
		call->action = api_params_get(&ec->params, "Action");
		call->version = api_params_get(&ec->params, "Version");
		if (!call->version || !*call->version)
			call->version = API_DEFAULT_VERSION;
		if (!call->action || !*call->action)
			rc = api_error_set(&call->err, "MissingAction",
			                   "The request must contain the "
			                   "parameter Action.");
		else if (!(action = api_action_find(call->action)))
			rc = api_error_set(&call->err, "InvalidAction",
			                   "The action %s is not valid for "
			                   "this web service.",
			                   call->action);
	}
	if (rc == 0)
		rc = action->run(call);
	if (rc == API_ACTION_PENDING) {
		e->pending++;
		return API_HTTP_PENDING;
	}
	edge_call_end(ec, rc);
	return API_HTTP_DONE;
}

/* The body of errors the HTTP layer answers by itself. */
static void edge_error_body(void *arg, struct api_http_response *resp)
{
	struct api_edge *e = arg;
	const char *code;
	switch (resp->status) {
	case 408:
		code = "RequestTimeout";
		break;
	case 413:
		code = "RequestEntityTooLarge";
		break;
	case 431:
		code = "RequestHeaderSectionTooLarge";
		break;
	case 505:
		code = "UnsupportedProtocol";
		break;
	default:
		code = "InvalidRequest";
		break;
	}
	char id[37];
	request_id_new(e, id);
	api_http_response_header(resp, "Content-Type",
	                         "text/xml;charset=UTF-8");
	api_xml_error(&resp->body, code, api_http_reason(resp->status), id);
}

static void config_copy(struct api_edge_config *dst,
                        const struct api_edge_config *src)
{
	*dst = *src;
	dst->region =
	    xstrdup(src->region && *src->region ? src->region : "mallee");
	dst->endpoint = xstrdup(src->endpoint && *src->endpoint ? src->endpoint
	                                                        : "localhost");
}

int api_edge_start(struct api_edge **out, uv_loop_t *loop,
                   const struct sockaddr *addr,
                   const struct api_edge_config *cfg,
                   const struct api_cloud *cloud)
{
	struct api_edge *e = xcalloc(1, sizeof(*e));
	e->loop = loop;
	e->keypool = api_keypool_new(loop, 4);
	mc_random(e->request_base, sizeof(e->request_base));
	config_copy(&e->cfg, cfg);
	e->cloud = *cloud;
	if (cfg->throttle_rate > 0)
		e->throttle =
		    api_throttle_new(cfg->throttle_rate, cfg->throttle_burst);

	struct api_http_limits lim;
	api_http_limits_default(&lim);
	if (cfg->max_conns)
		lim.max_conns = cfg->max_conns;
	if (cfg->idle_timeout_ms)
		lim.idle_timeout_ms = cfg->idle_timeout_ms;
	if (cfg->header_timeout_ms)
		lim.header_timeout_ms = cfg->header_timeout_ms;
	if (cfg->max_body_bytes)
		lim.max_body_bytes = cfg->max_body_bytes;
	struct api_http_conn_ops ops = {
	    .handle = edge_handle,
	    .error_body = edge_error_body,
	    .arg = e,
	};
	e->http = api_http_server_new(loop, &lim, &ops);
	int rc = 0;
	if (cfg->tls_cert_file && cfg->tls_key_file) {
		rc =
		    api_tls_new(&e->tls, cfg->tls_cert_file, cfg->tls_key_file);
		api_http_server_set_tls(e->http, e->tls);
	}
	if (rc == 0)
		rc = api_http_server_listen(e->http, addr, 1024);
	if (rc < 0) {
		/* The server frees itself from the loop; the edge waits. */
		api_edge_stop(e, NULL, NULL);
		return rc;
	}
	*out = e;
	return 0;
}

int api_edge_port(const struct api_edge *e)
{
	return api_http_server_port(e->http);
}

size_t api_edge_conn_count(const struct api_edge *e)
{
	return api_http_server_conn_count(e->http);
}

static void edge_free(struct api_edge *e)
{
	void (*done)(void *) = e->done;
	void *done_arg = e->done_arg;
	api_throttle_free(e->throttle);
	api_tls_free(e->tls);
	api_keypool_free(e->keypool);
	free((char *)e->cfg.region);
	free((char *)e->cfg.endpoint);
	free(e);
	if (done)
		done(done_arg);
}

/* The edge goes once its server closed and no call waits for the cloud
 * (which answers those it holds with -ECANCELED when it stops). */
static void on_http_closed(void *arg)
{
	struct api_edge *e = arg;
	e->http_closed = true;
	if (e->pending == 0)
		edge_free(e);
}

void api_edge_stop(struct api_edge *e, void (*done)(void *arg), void *arg)
{
	e->done = done;
	e->done_arg = arg;
	api_http_server_close(e->http, on_http_closed, e);
}
