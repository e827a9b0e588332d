/*
 * Internals shared by the files of apiedge/ (and its tests and fuzz
 * targets); no other folder includes this.
 *
 *   http_conn.c   one HTTP/1.1 connection's protocol, without sockets
 *   http.c        the TCP server on the loop (accept, timers, writes)
 *   query.c       form/query decoding, EC2 list parameters, filters
 *   digest.c      SHA-256 and HMACs (the only file with OpenSSL's EVP)
 *   sigv4.c       AWS Signature Version 4 (header and presigned)
 *   sigv2.c       AWS Signature Version 2
 *   error.c       EC2 error codes and their HTTP statuses
 *   tls.c         TLS with OpenSSL over memory BIOs
 *   xml.c         the escaping XML writer and EC2 envelopes
 *   edge.c        the edge: paths, parameters, auth, throttle, dispatch
 *   action_*.c    the actions, one file per family
 */
#ifndef MALLEE_APIEDGE_INT_H
#define MALLEE_APIEDGE_INT_H

#include "apiedge.h"
#include "buf.h"
#include "wire.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

/* ---- HTTP --------------------------------------------------------------- */

struct api_http_limits {
	size_t max_header_bytes; /* request line + headers */
	size_t max_headers;      /* header lines */
	size_t max_body_bytes;
	unsigned max_conns;
	uint64_t idle_timeout_ms;
	uint64_t header_timeout_ms;
};

void api_http_limits_default(struct api_http_limits *lim);

struct api_http_header {
	const char *name;  /* as received */
	const char *value; /* leading and trailing blanks removed */
};

/* One request; everything in it is valid until its response is sent. */
struct api_http_request {
	const char *method; /* "GET", "POST", ... */
	const char *target; /* request-target exactly as sent */
	const char *path;   /* target up to '?', as sent */
	const char *query;  /* after '?', as sent; "" when none */
	const struct api_http_header *headers;
	size_t n_headers;
	const uint8_t *body; /* de-chunked; NUL-terminated for convenience */
	size_t body_len;
	int http_minor;   /* HTTP/1.x */
	const char *peer; /* client address as text ("" when unknown) */
};

/* First header of that name (ASCII case-insensitive), or NULL. */
const char *api_http_header(const struct api_http_request *req,
                            const char *name);

struct api_http_response {
	int status;            /* 200 unless set */
	struct mc_buf headers; /* extra "Name: value\r\n" lines */
	struct mc_buf body;    /* the handler appends here */
	bool close;            /* close the connection after this one */
};

void api_http_response_header(struct api_http_response *resp, const char *name,
                              const char *value);

enum api_http_result {
	API_HTTP_DONE,    /* resp is filled: send it now */
	API_HTTP_PENDING, /* the handler calls api_http_respond(resp) later */
};

/*
 * Called once per complete request, in order, one at a time per
 * connection. A handler that returns API_HTTP_PENDING keeps req and resp
 * and must call api_http_respond(resp) exactly once later.
 */
typedef enum api_http_result (*api_http_handler)(
    void *arg, const struct api_http_request *req,
    struct api_http_response *resp);

/* Completes a pending response. */
void api_http_respond(struct api_http_response *resp);

/*
 * Formats the body of an error the HTTP layer produces itself (400, 408,
 * 413, 431, 505); NULL leaves the body empty.
 */
typedef void (*api_http_error_body)(void *arg, struct api_http_response *resp);

/* The reason phrase of a status ("OK", "Bad Request"...). */
const char *api_http_reason(int status);

/* One connection's protocol (http_conn.c): bytes in, responses out. */
struct api_http_conn;

struct api_http_conn_ops {
	api_http_handler handle;
	api_http_error_body error_body; /* may be NULL */
	void *arg;                      /* for both */
	/* Transport: takes out's bytes (it may swap the buffer away). */
	void (*send)(void *owner, struct mc_buf *out);
	void *owner;
};

enum api_http_phase {
	API_HTTP_IDLE,    /* between requests */
	API_HTTP_HEAD,    /* inside a request line or headers */
	API_HTTP_BODY,    /* reading a body */
	API_HTTP_WAITING, /* a handler or the transport has the turn */
	API_HTTP_CLOSING, /* the last response is out; accept no input */
};

struct api_http_conn *api_http_conn_new(const struct api_http_limits *lim,
                                        const struct api_http_conn_ops *ops,
                                        const char *peer);
/* Frees now, or (with a response pending) when it is answered. */
void api_http_conn_free(struct api_http_conn *c);
/* Feeds received bytes: requests are parsed and handled in order. */
void api_http_conn_feed(struct api_http_conn *c, const void *data, size_t n);
/* The transport's backlog is full (true) or drained (false). */
void api_http_conn_set_blocked(struct api_http_conn *c, bool blocked);
/* Answers 408 and closes: the client was too slow. */
void api_http_conn_timeout(struct api_http_conn *c);
enum api_http_phase api_http_conn_phase(const struct api_http_conn *c);
/* False while so much input waits that the transport should stop reading. */
bool api_http_conn_wants_input(const struct api_http_conn *c);

/* TLS over memory BIOs (tls.c): one context per edge, one conn per client. */
struct api_tls;
struct api_tls_conn;

/* Loads a PEM certificate chain and key; 0, or -EINVAL (logged). */
int api_tls_new(struct api_tls **out, const char *cert_file,
                const char *key_file);
void api_tls_free(struct api_tls *t);
struct api_tls_conn *api_tls_conn_new(struct api_tls *t);
void api_tls_conn_free(struct api_tls_conn *c);
/* Takes ciphertext; appends what it decrypts to plain and what must go back
 * (handshake) to out. 0, -ECONNRESET at close_notify, -EPROTO on error. */
int api_tls_conn_recv(struct api_tls_conn *c, const void *data, size_t n,
                      struct mc_buf *plain, struct mc_buf *out);
/* Encrypts plaintext, appending the ciphertext to out. */
int api_tls_conn_send(struct api_tls_conn *c, const void *data, size_t n,
                      struct mc_buf *out);
void api_tls_conn_close_notify(struct api_tls_conn *c, struct mc_buf *out);

/* The TCP server (http.c). */
struct api_http_server;

struct api_http_server *
api_http_server_new(uv_loop_t *loop, const struct api_http_limits *lim,
                    const struct api_http_conn_ops *ops);
/* Binds and listens; returns 0 or a negative libuv error. */
/* Serves TLS on this server's connections (tls borrowed; set before
 * listening, free after the server closed). */
void api_http_server_set_tls(struct api_http_server *s, struct api_tls *tls);
int api_http_server_listen(struct api_http_server *s,
                           const struct sockaddr *addr, int backlog);
int api_http_server_port(const struct api_http_server *s);
size_t api_http_server_conn_count(const struct api_http_server *s);
/* Closes everything; done(arg) runs from the loop once all is freed. */
void api_http_server_close(struct api_http_server *s, void (*done)(void *),
                           void *arg);

/* ---- Errors ------------------------------------------------------------- */

/* An EC2 error: code, the HTTP status that goes with it, and a message. */
struct api_error {
	int status;
	const char *code; /* static string */
	char message[512];
};

/* EC2's HTTP status for a code (400 for client codes not listed). */
int api_error_status(const char *code);
/* Fills e and returns -EINVAL (so callers can `return api_error_set()`). */
int api_error_set(struct api_error *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Query parameters --------------------------------------------------- */

#define API_PARAMS_MAX     4096
#define API_PARAM_NAME_MAX 512

struct api_param {
	char *name;  /* decoded, NUL-terminated, no NUL inside */
	char *value; /* decoded, NUL-terminated, no NUL inside */
	size_t value_len;
};

struct api_params {
	struct api_param *items;
	size_t n;
	size_t cap;
};

void api_params_init(struct api_params *p);
void api_params_free(struct api_params *p);
/*
 * Appends the pairs of an application/x-www-form-urlencoded string (a form
 * body or a query string) in order: '&'-separated, '+' is a space, %XX
 * decoded strictly. Returns 0, -EINVAL on a bad escape or a NUL, -E2BIG
 * past API_PARAMS_MAX pairs or API_PARAM_NAME_MAX name bytes.
 */
int api_params_parse(struct api_params *p, const char *s, size_t n);
/* The first value of name (case-sensitive), or NULL. */
const char *api_params_get(const struct api_params *p, const char *name);

/*
 * EC2 lists. A member of list "Foo" is "Foo" (un-indexed), "Foo.N" or
 * "Foo.N.Rest" with N a decimal index without leading zeros (0 and 1 both
 * start lists), or "Foo.Rest" (un-indexed structured member).
 * Un-indexed members sort before indexed ones; equal indexes keep the
 * order they were sent in.
 */
#define API_INDEX_NONE (-1L)

/* Values of the simple list prefix (Foo, Foo.N) in order; returns the
 * count found (it may exceed max: only max are stored). */
size_t api_params_list(const struct api_params *p, const char *prefix,
                       const char **vals, size_t max);
/* Distinct indexes of structured members (Foo.N.x), ascending, with
 * API_INDEX_NONE first for Foo.x; returns the count found. */
size_t api_params_indexes(const struct api_params *p, const char *prefix,
                          long *idx, size_t max);
/* The value of Foo.N.field (Foo.field for API_INDEX_NONE), or NULL. */
const char *api_params_member(const struct api_params *p, const char *prefix,
                              long index, const char *field);
/* The simple list Foo.N.field(.M) of member N; as api_params_list. */
size_t api_params_member_list(const struct api_params *p, const char *prefix,
                              long index, const char *field, const char **vals,
                              size_t max);

#define API_FILTERS_MAX       64
#define API_FILTER_VALUES_MAX 256

struct api_filter {
	const char *name;    /* borrowed from the params */
	const char **values; /* borrowed; the array is owned by the set */
	size_t n_values;
};

struct api_filters {
	struct api_filter *items;
	size_t n;
};

/* Reads Filter.N.Name / Filter.N.Value.M. Returns 0, or fills err
 * (InvalidParameterValue / InvalidParameterCombination) and fails. */
int api_filters_parse(const struct api_params *p, struct api_filters *out,
                      struct api_error *err);
void api_filters_free(struct api_filters *f);
/* EC2 filter pattern match: '*' any run, '?' one character, '\' escapes. */
bool api_filter_match(const char *pattern, const char *value);
/* True if f names name and one of its values matches value. */
bool api_filter_values_match(const struct api_filter *f, const char *value);

/* RFC 3986 encoding (unreserved kept, the rest %XX uppercase). */
void api_uri_encode(struct mc_buf *out, const char *s, size_t n);

/* ---- Digests (digest.c) ------------------------------------------------- */

#define API_SHA256_BYTES 32
#define API_SHA1_BYTES   20

void api_sha256(uint8_t out[API_SHA256_BYTES], const void *p, size_t n);
void api_hmac_sha256(uint8_t out[API_SHA256_BYTES], const void *key,
                     size_t key_len, const void *p, size_t n);
void api_hmac_sha1(uint8_t out[API_SHA1_BYTES], const void *key, size_t key_len,
                   const void *p, size_t n);

/* ---- Signatures --------------------------------------------------------- */

#define API_MAX_SKEW_S (15 * 60)

/* Who signed a request, once verified. */
struct api_auth {
	char access_key_id[API_KEY_ID_MAX + 1];
	struct api_key_info key;
	char region[64];  /* SigV4 scope (SigV2: "") */
	char service[64]; /* SigV4 scope (SigV2: "") */
	int version;      /* 2 or 4 */
};

/* Which scheme a request uses: 4, 2, or 0 when it carries no signature. */
int api_sig_scheme(const struct api_http_request *req,
                   const struct api_params *params);

/*
 * Verifies a SigV4 request (Authorization header, or X-Amz-* query
 * parameters) at time now. Returns 0 and fills *auth, or fills err with
 * EC2's code and fails. The secret is looked up through cloud.
 */
int api_sigv4_verify(const struct api_http_request *req,
                     const struct api_cloud *cloud, time_t now,
                     struct api_auth *auth, struct api_error *err);
/*
 * The canonical request of req for the given signed header list
 * ("host;x-amz-date"); presigned leaves X-Amz-Signature out of the query.
 * Returns 0 or -EINVAL when the query cannot be decoded.
 */
int api_sigv4_canonical_request(const struct api_http_request *req,
                                const char *signed_headers, bool presigned,
                                struct mc_buf *out);
/* Hex signature (65 bytes with NUL) of string_to_sign under the scope. */
void api_sigv4_sign(char out[65], const char *secret, const char *date,
                    const char *region, const char *service,
                    const char *string_to_sign);

/* Verifies a SigV2 request whose parameters (query and form) are params. */
int api_sigv2_verify(const struct api_http_request *req,
                     const struct api_params *params,
                     const struct api_cloud *cloud, time_t now,
                     struct api_auth *auth, struct api_error *err);
/* SigV2's string to sign for req and params (Signature left out). */
void api_sigv2_string_to_sign(const struct api_http_request *req,
                              const struct api_params *params,
                              struct mc_buf *out);

/* Parses "YYYYMMDDTHHMMSSZ"; -EINVAL otherwise. */
int api_parse_amz_date(const char *s, time_t *out);
/* Parses ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]" (UTC). */
int api_parse_iso8601(const char *s, time_t *out);

/* ---- XML ---------------------------------------------------------------- */

/* Appends s escaped for XML text or attributes: markup characters become
 * entities, characters XML 1.0 forbids and invalid UTF-8 become U+FFFD. */
void api_xml_escape(struct mc_buf *b, const char *s, size_t n);
void api_xml_open(struct mc_buf *b, const char *tag);
void api_xml_close(struct mc_buf *b, const char *tag);
/* <tag>escaped value</tag>; value NULL writes nothing at all. */
void api_xml_elem(struct mc_buf *b, const char *tag, const char *value);
void api_xml_elem_fmt(struct mc_buf *b, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_xml_elem_bool(struct mc_buf *b, const char *tag, bool v);
/* The EC2 envelope: declaration, <ActionResponse xmlns=".../VERSION/">
 * and <requestId>. */
void api_xml_response_begin(struct mc_buf *b, const char *action,
                            const char *version, const char *request_id);
void api_xml_response_end(struct mc_buf *b, const char *action);
/* EC2's error document, exactly. */
void api_xml_error(struct mc_buf *b, const char *code, const char *message,
                   const char *request_id);

/* ---- The edge and its actions ------------------------------------------- */

struct api_throttle;

/* Token buckets per access key (throttle.c). rate 0 disables. */
struct api_throttle *api_throttle_new(double rate, double burst);
void api_throttle_free(struct api_throttle *t);
/* Takes a token for key at now_ms; false when the bucket is empty. */
bool api_throttle_take(struct api_throttle *t, const char *key,
                       uint64_t now_ms);

/* One authenticated call of an action. */
struct api_call {
	const struct api_edge_config *cfg;
	const struct api_cloud *cloud;
	const struct api_http_request *http;
	const struct api_params *params;
	const struct api_auth *auth;
	const char *action;
	const char *version; /* as sent, or the default */
	char request_id[37];
	struct mc_buf *out;          /* the response body */
	struct api_keypool *keypool; /* RSA keys made ahead (may be NULL) */
	struct api_error err;
	/* Set by the edge for calls that may answer later (NULL in tests
	 * that run actions directly: those must stay synchronous). */
	void (*finish)(struct api_call *call, int rc);
};

/*
 * An action that returns API_ACTION_PENDING owns the call until it calls
 * api_call_finish() exactly once, from the loop: rc 0 sends what it wrote
 * to call->out, a negative rc the error in call->err. Everything the call
 * points to (params, auth, the request) stays valid until then, even if
 * the client went away; the call is freed inside.
 */
#define API_ACTION_PENDING 1
void api_call_finish(struct api_call *call, int rc);

/*
 * An action writes its whole document into call->out and returns 0, or
 * fills call->err (api_error_set) and returns a negative value, in which
 * case whatever it wrote is discarded and the error document sent.
 */
struct api_action {
	const char *name;
	int (*run)(struct api_call *call);
};

/* The table of actions, sorted by name (edge.c). */
const struct api_action *api_action_find(const char *name);

int api_action_describe_regions(struct api_call *call);
int api_action_get_caller_identity(struct api_call *call);
/* Key pairs (action_keypair.c). */
int api_action_create_key_pair(struct api_call *call);
int api_action_delete_key_pair(struct api_call *call);
int api_action_describe_key_pairs(struct api_call *call);
int api_action_import_key_pair(struct api_call *call);
/* Images (action_image.c). */
int api_action_deregister_image(struct api_call *call);
int api_action_describe_images(struct api_call *call);
int api_action_register_image(struct api_call *call);
/* Zones, account attributes, the describes of resources to come
 * (action_describe.c) and instance types (action_instance_types.c). */
int api_action_describe_account_attributes(struct api_call *call);
int api_action_describe_availability_zones(struct api_call *call);
int api_action_describe_instance_status(struct api_call *call);
int api_action_describe_instance_types(struct api_call *call);
int api_action_describe_instances(struct api_call *call);
int api_action_describe_volumes(struct api_call *call);
/* The default VPC (action_vpc.c), security groups (action_group*.c) and
 * tags (action_tags.c). */
int api_action_describe_subnets(struct api_call *call);
int api_action_describe_vpcs(struct api_call *call);
int api_action_authorize_security_group_egress(struct api_call *call);
int api_action_authorize_security_group_ingress(struct api_call *call);
int api_action_create_security_group(struct api_call *call);
int api_action_delete_security_group(struct api_call *call);
int api_action_describe_security_groups(struct api_call *call);
int api_action_revoke_security_group_egress(struct api_call *call);
int api_action_revoke_security_group_ingress(struct api_call *call);
int api_action_create_tags(struct api_call *call);
int api_action_delete_tags(struct api_call *call);
int api_action_describe_tags(struct api_call *call);
/* Instances (action_instance*.c); most answer later (API_ACTION_PENDING). */
int api_action_describe_instance_attribute(struct api_call *call);
int api_action_get_console_output(struct api_call *call);
int api_action_modify_instance_attribute(struct api_call *call);
int api_action_reboot_instances(struct api_call *call);
int api_action_run_instances(struct api_call *call);
int api_action_start_instances(struct api_call *call);
int api_action_stop_instances(struct api_call *call);
int api_action_terminate_instances(struct api_call *call);
/* Elastic IPs (action_address*.c). */
int api_action_allocate_address(struct api_call *call);
int api_action_associate_address(struct api_call *call);
int api_action_describe_addresses(struct api_call *call);
int api_action_disassociate_address(struct api_call *call);
int api_action_release_address(struct api_call *call);

/* ---- Resources (resource.c) -------------------------------------------- */

/*
 * Every resource is a record of the cloud, stored under the id
 * "<account>:<resource id>", so one account's resources list by prefix and
 * no account can name another's. Tags and client tokens are records of
 * their own, so two edges tagging one resource never overwrite each other.
 */
#define API_KIND_KEY_PAIR "key-pair"       /* id: account:key name */
#define API_KIND_GROUP    "security-group" /* id: account:sg-... */
#define API_KIND_IMAGE    "image"          /* id: account:ami-... */
#define API_KIND_TAG      "tag"            /* id: account:res:hash(key) */
#define API_KIND_TOKEN    "client-token"   /* id: account:hash(action, token) */

#define API_RES_ID_MAX    64 /* "sg-" + 17 hex, key pair names < 256... */
#define API_TAG_KEY_MAX   128
#define API_TAG_VALUE_MAX 256
#define API_TAGS_MAX      50 /* EC2's limit per resource */

/* A fresh EC2-style id: prefix + "-" + 17 lowercase hex digits. */
void api_res_new_id(const char *prefix, char *out, size_t size);
/* True for prefix-XXXXXXXX or prefix-XXXXXXXXXXXXXXXXX (hex). */
bool api_res_id_valid(const char *prefix, const char *id);
/* "<account>:<rest>" into out; false if it does not fit a record id. */
bool api_res_key(const struct api_call *call, const char *rest, char *out,
                 size_t size);

/*
 * Loads the record (kind, account:resid) as a msgpack document (caller
 * frees with mc_doc_free). 0, -ENOENT, or another negative errno.
 */
int api_res_load(const struct api_call *call, const char *kind,
                 const char *resid, struct mc_doc **out);
/* Stores body under (kind, account:resid); durable on return. */
int api_res_store(const struct api_call *call, const char *kind,
                  const char *resid, const struct mc_buf *body);
/* Deletes (kind, account:resid) and every tag of resid. */
int api_res_remove(const struct api_call *call, const char *kind,
                   const char *resid);
/*
 * Calls cb for each of the account's records of kind, in id order, with
 * the resource id (the part after "account:") and the decoded body. A
 * non-zero return from cb stops the walk and is returned.
 */
int api_res_each(const struct api_call *call, const char *kind,
                 int (*cb)(void *ctx, const char *resid,
                           const struct mc_val *body),
                 void *ctx);
/* Fills call->err with InternalError for a failed cloud call; returns -1. */
int api_res_failed(struct api_call *call, int errnum);

/*
 * DryRun=true: the caller checked the request and the permission; fills
 * call->err with DryRunOperation and returns true. False otherwise.
 */
bool api_dry_run(struct api_call *call);
/* Parses a boolean parameter ("true"/"false"); absent gives dflt.
 * -1 with InvalidParameterValue in call->err for anything else. */
int api_param_bool(struct api_call *call, const char *name, bool dflt,
                   bool *out);

/*
 * ClientToken idempotency. api_token_seen: when this account already made
 * a call of this action with the request's ClientToken, copies what
 * api_token_remember stored for it into out and returns 1; 0 when the
 * token is new or absent; -1 with call->err for a token over 64 chars.
 */
int api_token_seen(struct api_call *call, char *out, size_t size);
int api_token_remember(struct api_call *call, const char *result);

/* Tags. */
struct api_tag {
	char key[API_TAG_KEY_MAX + 1];
	char value[API_TAG_VALUE_MAX + 1];
};

struct api_tags {
	struct api_tag items[API_TAGS_MAX];
	size_t n;
};

/* The tags of a resource, sorted by key. */
int api_tags_load(const struct api_call *call, const char *resid,
                  struct api_tags *out);
/* Sets (creates or replaces) one tag; rtype is EC2's resource type
 * ("security-group", "key-pair", "image", ...). */
int api_tag_put(const struct api_call *call, const char *resid,
                const char *rtype, const char *key, const char *value);
int api_tag_delete(const struct api_call *call, const char *resid,
                   const char *key);
/*
 * TagSpecification.N for rtype: api_tag_specs_check validates them before
 * anything is created (InvalidParameterValue, TagLimitExceeded...);
 * api_tag_specs_apply writes them for the new resource.
 */
int api_tag_specs_check(struct api_call *call, const char *rtype);
int api_tag_specs_apply(struct api_call *call, const char *rtype,
                        const char *resid);
/* <tagSet> with an <item><key/><value/></item> per tag (empty set too). */
void api_xml_tag_set(struct mc_buf *out, const struct api_tags *tags);
/*
 * Matches the tag filters (tag:KEY, tag-key, tag-value). Returns 1 when f
 * is a tag filter (and sets *match), 0 when it is not.
 */
int api_filter_tags(const struct api_filter *f, const struct api_tags *tags,
                    bool *match);

/*
 * Paging (MaxResults, NextToken). A page starts after the resource id the
 * token names and holds at most max items (0: no limit). EC2's bounds for
 * MaxResults are the action's [lo, hi].
 */
struct api_page {
	size_t max;
	char after[API_RES_ID_MAX * 4 + 1];
	size_t count; /* items written so far */
	bool more;    /* an item was left for the next page */
	char last[API_RES_ID_MAX * 4 + 1]; /* id of the last item written */
};

int api_page_parse(struct api_call *call, struct api_page *pg, size_t lo,
                   size_t hi);
/* Whether an item with this id belongs on the page; call in id order.
 * Returns false (and notes there is more) past the page's end. */
bool api_page_take(struct api_page *pg, const char *resid);
/* <nextToken> when there was more. */
void api_page_xml_next(struct mc_buf *out, const struct api_page *pg);

/*
 * A copy of the caller's records of kind, in id order (res_snapshot.c).
 * The peer's store cannot list inside a list's callback (it answers
 * -EBUSY), so a describe that loads tags or other records per resource
 * walks a snapshot instead of calling them from api_res_each.
 */
struct api_res_snapshot {
	struct {
		char *resid;        /* the part after "account:" */
		struct mc_doc *doc; /* the decoded body */
	} * items;
	size_t n;
};

/* 0, or the cloud's negative errno (nothing to free then). */
int api_res_snapshot_take(const struct api_call *call, const char *kind,
                          struct api_res_snapshot *out);
void api_res_snapshot_free(struct api_res_snapshot *s);

/* ---- Key pairs (keypair_crypto.c, action_keypair.c) -------------------- */

#define API_PUBLIC_KEY_MAX  16384 /* ImportKeyPair's material, decoded */
#define API_FINGERPRINT_MAX 64    /* SHA-1 colon hex is 59 characters */

enum api_key_type { API_KEY_RSA, API_KEY_ED25519 };

/* A key pair's keys as EC2 shows them; api_key_material_free wipes. */
struct api_key_material {
	enum api_key_type type;
	char fingerprint[API_FINGERPRINT_MAX]; /* EC2's, see keypair_crypto.c */
	char *public_line; /* "ssh-rsa AAAA..." without a comment */
	char *private_pem; /* generated keys only: PKCS#1 or OpenSSH PEM */
};

/* A new RSA-2048 or ED25519 key (comment goes in OpenSSH's format).
 * 0 or a negative errno. */
/* RSA keys made ahead on libuv's thread pool (keypool.c). */
struct api_keypool;
struct evp_pkey_st;
struct api_keypool *api_keypool_new(uv_loop_t *loop, unsigned target);
/* A ready key (the caller owns it) or NULL when the pool is empty. */
struct evp_pkey_st *api_keypool_take(struct api_keypool *p);
void api_keypool_free(struct api_keypool *p);

int api_keypair_generate(struct api_keypool *pool, enum api_key_type type,
                         const char *comment, struct api_key_material *out);
/*
 * Reads a public key: an OpenSSH line, RFC 4716, PEM or DER (SPKI or
 * PKCS#1). 0; -EINVAL malformed; -ENOTSUP neither RSA nor ED25519;
 * -ERANGE an RSA size outside 1024..16384 bits.
 */
int api_keypair_import(const void *material, size_t n,
                       struct api_key_material *out);
void api_key_material_free(struct api_key_material *m);
/*
 * The caller's key pair named name (or, with name NULL, whose id is id):
 * its record (keys "name", "id", "type", "fingerprint", "public_key" as an
 * OpenSSH line, "created" in ms), freed with mc_doc_free. 0, -ENOENT, or
 * another negative errno.
 */
int api_key_pair_load(const struct api_call *call, const char *name,
                      const char *id, struct mc_doc **out);

/*
 * The id of the account's default VPC (action_vpc.c), derived from the
 * account id so every edge names it alike; DescribeAccountAttributes
 * reports it as default-vpc.
 */
void api_default_vpc_id(const struct api_call *call, char out[32]);

/*
 * EC2's id of a zone (action_describe.c): "us-east-1a" in region
 * "us-east-1" is "use1-az1"; a zone not named after its region keeps its
 * name after the region's abbreviation ("use1-rack-7").
 */
void api_zone_id(const char *region, const char *zone, char *out, size_t size);

/* ---- Instance types (action_instance_types.c) --------------------------- */

struct api_instance_type {
	const char *name; /* "t3.micro" */
	unsigned vcpus, cores, threads_per_core;
	unsigned mib;
	bool current_generation, free_tier, burstable;
	const char *hypervisor; /* "nitro" or "xen", as EC2 reports them */
	const char *network_performance;
	unsigned max_enis, ipv4_per_eni;
};

/* The type of that name, or NULL; the table is static. */
const struct api_instance_type *api_instance_type_find(const char *name);
/* The whole table, sorted by name. */
const struct api_instance_type *api_instance_types(size_t *n);

/* ---- The default VPC and its subnets (action_vpc.c) -------------------- */

#define API_DEFAULT_CIDR  "172.31.0.0/16" /* every account's default VPC */
#define API_ZONES_MAX     16              /* default /20 subnets a /16 holds */
#define API_ZONE_NAME_MAX 64

/* prefix + "-" + 17 hex digits of a hash of seed: an id every edge
 * derives alike, for resources that exist without records. */
void api_res_derived_id(const char *prefix, const char *seed, char *out,
                        size_t size);

/* A default subnet: one per zone, 172.31.(16k).0/20 for the k-th zone in
 * name order (zones past API_ZONES_MAX get none). */
struct api_subnet {
	char id[32];
	char zone[API_ZONE_NAME_MAX];
	char zone_id[API_ZONE_NAME_MAX + 16];
	char cidr[20];
};

/* Fills up to max subnets of the caller's account; returns the count. */
size_t api_default_subnets(const struct api_call *call, struct api_subnet *out,
                           size_t max);

/* ---- Tags and filters (action_tags.c) ----------------------------------- */

/* A filter name and the value it tests (NULL matches nothing). */
struct api_field {
	const char *name;
	const char *value;
};

/*
 * Matches every filter of fs: tag filters against tags, the others
 * against the field of the same name. *match is true when all match;
 * -1 with InvalidParameterValue in call->err for a name that is neither.
 */
int api_filters_match(struct api_call *call, const struct api_filters *fs,
                      const struct api_field *fields, size_t n,
                      const struct api_tags *tags, bool *match);

/* Many resources' tags at once, sorted by resource then key. */
struct api_tag_rec {
	char *resid, *type, *key, *value; /* one block, freed by resid */
};

struct api_tag_index {
	struct api_tag_rec *items;
	size_t n, cap;
};

/* Appends the account's tags of resources whose id starts with
 * resid_prefix ("" for all, "sg-" for groups, "sg-X:" for one group
 * exactly); zero-initialise ix first, sort after the last add. */
int api_tag_index_add(const struct api_call *call, const char *resid_prefix,
                      struct api_tag_index *ix);
void api_tag_index_sort(struct api_tag_index *ix);
/* The tags of resid (sorted by key) from a sorted index. */
void api_tag_index_get(const struct api_tag_index *ix, const char *resid,
                       struct api_tags *out);
void api_tag_index_free(struct api_tag_index *ix);

/*
 * Whether id names a resource of the caller's account (sg-, ami-, key-,
 * vpc-, subnet-, i-), and EC2's resource type for its tags. 0, or -1
 * with EC2's Malformed / NotFound / InvalidID code in call->err.
 */
int api_resource_check(struct api_call *call, const char *id,
                       const char **rtype);

/* ---- Security groups (action_group*.c) ---------------------------------- */

#define API_KIND_GROUP_RULE "security-group-rule" /* account:sg-...:sgr-... */
#define API_KIND_GROUP_NAME "security-group-name" /* account:hash(name) */
#define API_GROUP_TEXT_MAX  (255 * 4 + 1)         /* 255 characters of UTF-8 */
#define API_GROUP_RULES_MAX 60 /* per direction: EC2's default quota */

struct api_group {
	char id[API_RES_ID_MAX];
	char name[API_GROUP_TEXT_MAX];
	char description[API_GROUP_TEXT_MAX];
	char vpc_id[32];
};

/* Characters (not bytes) of a UTF-8 string. */
size_t api_utf8_chars(const char *s);
void api_default_group_id(const struct api_call *call, char out[32]);
/* Creates the account's default group unless it exists; out may be NULL.
 * 0 or the cloud's negative errno. */
int api_group_default(struct api_call *call, struct api_group *out);
/* The caller's group by id or by name (the default one is created on
 * first use); out may be NULL. 0, -ENOENT, or another negative errno. */
int api_group_get(struct api_call *call, const char *id, struct api_group *out);
int api_group_by_name(struct api_call *call, const char *name,
                      struct api_group *out);
/* The group a request names by GroupId or GroupName; 0 or -1 with
 * call->err (MissingParameter, InvalidGroup.NotFound...). */
int api_group_param(struct api_call *call, struct api_group *out);

enum api_rule_peer {
	API_PEER_CIDR,
	API_PEER_CIDR6,
	API_PEER_GROUP,
	API_PEER_PREFIX_LIST,
};

/* One rule: one protocol and port range to or from one peer. */
struct api_rule {
	char id[32]; /* "sgr-...", derived from all the fields below but
	              * the description */
	char group_id[32];
	bool egress;
	char proto[8]; /* tcp, udp, icmp, icmpv6, -1, or a number */
	int from, to;  /* ports, ICMP type and code; -1 when none */
	enum api_rule_peer peer;
	char target[64]; /* CIDR, group id or prefix list id */
	char user_id[API_ACCOUNT_ID_LEN + 1]; /* a group peer's owner */
	char *group_name;                     /* a group peer's; owned */
	char *description;                    /* owned; may be NULL */
};

/* Rules, sorted (api_rules_sort) by group, direction, protocol, ports,
 * peer. */
struct api_rules {
	struct api_rule *items;
	size_t n, cap;
};

void api_rule_set_id(const struct api_call *call, struct api_rule *r);
int api_rule_store(const struct api_call *call, const struct api_rule *r);
int api_rule_remove(const struct api_call *call, const struct api_rule *r);
bool api_rule_exists(const struct api_call *call, const struct api_rule *r);
bool api_rule_has_ports(const struct api_rule *r);
void api_rule_clear(struct api_rule *r);
/* Appends the rules of group_id, or of every group with NULL. */
int api_rules_add(const struct api_call *call, const char *group_id,
                  struct api_rules *out);
void api_rules_sort(struct api_rules *rs);
void api_rules_free(struct api_rules *rs);
/* The rules of group_id in a sorted list (*count of them). */
const struct api_rule *api_rules_find(const struct api_rules *rs,
                                      const char *group_id, size_t *count);
/* <tag> with one IpPermission item per protocol and ports of the
 * direction (rules sorted). */
void api_rules_xml(struct mc_buf *o, const char *tag,
                   const struct api_rule *rules, size_t n, bool egress);
void api_permission_xml(struct mc_buf *o, const struct api_rule *rules,
                        size_t n);
/* One securityGroupRuleSet item. */
void api_rule_set_xml(struct mc_buf *o, const struct api_call *call,
                      const struct api_rule *r);
/* The ip-permission.* and egress.ip-permission.* filters: 1 when f is
 * one (and *match says whether any rule of its direction matches). */
int api_rule_filter(const struct api_filter *f, const struct api_rule *rules,
                    size_t n, bool *match);

/*
 * The image image_id the caller may launch (action_image.c): its own, or
 * any account's marked public. Fills owner with the owning account. 0,
 * -ENOENT, or the cloud's negative errno.
 */
int api_image_find(const struct api_call *call, const char *image_id,
                   char *owner, size_t owner_size);

/* ---- Instances (action_instance.c) -------------------------------------- */

struct mc_instance;
#define API_INSTANCE_IDS_MAX   1000
#define API_TERMINATED_SHOW_MS (3600 * 1000ULL) /* then hidden */

/* Whether a record is still shown (terminated ones for an hour). */
bool api_instance_visible(const struct mc_instance *in, uint64_t now_ms);
/* The caller's visible instance id into *out (mc_instance_clear it). 0,
 * -ENOENT, or the cloud's negative errno. */
int api_instance_load(const struct api_call *call, const char *id,
                      struct mc_instance *out);

/* The caller's visible instances, in id order. */
struct api_instance_list {
	struct mc_instance *items;
	size_t n, cap;
};

int api_instance_list_take(const struct api_call *call,
                           struct api_instance_list *out);
void api_instance_list_free(struct api_instance_list *l);

/*
 * The ids of list param (InstanceId.N), each well-formed (else
 * InvalidInstanceID.Malformed). ids has API_INSTANCE_IDS_MAX slots.
 * Returns the count, or -1 with call->err.
 */
long api_instance_ids(struct api_call *call, const char *param,
                      const char **ids, bool required);
/* Loads each of ids into records (n of them, to mc_instance_clear): 0, or
 * -1 with one InvalidInstanceID.NotFound naming every unknown id (nothing
 * left to clear then). */
int api_instances_load(struct api_call *call, const char **ids, size_t n,
                       struct mc_instance *records);
/* EC2's error for an instance_op or launch failure; returns -1. */
int api_instance_op_error(struct api_call *call, int status,
                          const char *message, const char *id);
/* <item> of an instancesSet, as DescribeInstances shows it. */
void api_instance_xml(struct api_call *call, const struct mc_instance *in,
                      const struct api_tags *tags);
/* <tag><code/><name/></tag> of a state. */
void api_instance_state_xml(struct mc_buf *o, const char *tag, int state);
/* A reservation's <item> body fields before instancesSet (reservationId,
 * ownerId, groupSet of first). */
void api_reservation_head_xml(struct api_call *call,
                              const struct mc_instance *first);
/* "ip-A-B-C-D.<region>.compute.internal", or "" without an address. */
void api_instance_dns(const struct api_call *call, const struct mc_instance *in,
                      char *out, size_t size);
/* ISO 8601 with milliseconds and Z. */
void api_time_iso8601(char out[32], uint64_t ms);
/* Base64 user data of parameter name (blanks and line breaks ignored)
 * into *out (malloc'ed, NULL when empty; the caller frees): 0, or -1 with
 * InvalidParameterValue past 16 KiB decoded or for bad base64. */
int api_user_data_decode(struct api_call *call, const char *name,
                         const char *value, uint8_t **out, size_t *len);

/* ---- Elastic IPs (action_address*.c) ----------------------------------- */

#define API_KIND_ADDRESS     "address"     /* account:eipalloc-... */
#define API_KIND_PUBLIC_POOL "public-pool" /* gateway peer id: its range */
#define API_KIND_PUBLIC_IP   "public-ip"   /* A.B.C.D: who claimed it */
#define API_ADDRESSES_MAX    5        /* per account: EC2's default quota */
#define API_ADDRESS_POOL     "amazon" /* publicIpv4Pool: EC2's own */

/* One allocation as its record holds it ("" where not associated). */
struct api_address {
	char resid[API_RES_ID_MAX]; /* eipalloc-... */
	char public_ip[16];
	char pool_peer[129]; /* the gateway's peer id */
	char zone[API_ZONE_NAME_MAX];
	char domain[16]; /* vpc or standard */
	char association_id[32];
	char instance_id[32];
	char private_ip[16];
	uint64_t created_ms;
};

/* Writes a's record; 0 or the cloud's negative errno. */
int api_address_store(const struct api_call *call, const struct api_address *a);
/* How many addresses the caller holds; 0 or the cloud's negative errno. */
int api_address_count(const struct api_call *call, size_t *n);
/* The caller's address a request names by AllocationId or PublicIp, its
 * association as it stands (none once the instance terminated); 0, or -1
 * with call->err. */
int api_address_param(struct api_call *call, struct api_address *out);
/* A single-valued parameter, also when sent indexed (Name.1); NULL when
 * absent or empty. */
const char *api_param_single(const struct api_call *call, const char *name);

/* The public address associated with the caller's instance into out
 * (16 bytes or more); false when it has none. Lists records: not from
 * inside a list's callback. */
bool api_address_of_instance(const struct api_call *call,
                             const char *instance_id, char *out, size_t size);
/* <association> of an ENI or its private address for public_ip. */
void api_address_association_xml(struct mc_buf *o, const struct api_call *call,
                                 const char *public_ip);

/* The EC2 API version echoed when the request names none. */
#define API_DEFAULT_VERSION "2016-11-15"

#endif
