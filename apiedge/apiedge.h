/*
 * The EC2 API edge: an HTTP(S) server on the caller's libuv loop that
 * answers the Amazon EC2 Query API (and STS GetCallerIdentity, which EC2
 * clients send to the EC2 endpoint). It knows nothing of SQLite or libvirt:
 * everything it reads or writes in the cloud goes through struct api_cloud,
 * which the peer implements (and tests fake in memory).
 */
#ifndef MALLEE_APIEDGE_H
#define MALLEE_APIEDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define API_ACCOUNT_ID_LEN 12
#define API_KEY_ID_MAX     128
#define API_SECRET_MAX     128
#define API_NAME_MAX       256

struct mc_instance;

/* What api_cloud.instance_op can be asked to do. */
enum api_instance_op {
	API_OP_STOP,
	API_OP_FORCE_STOP, /* StopInstances Force=true: no ACPI, kill */
	API_OP_START,
	API_OP_REBOOT,
	API_OP_TERMINATE,
	API_OP_CONSOLE, /* the console's last 64 KiB */
	API_OP_MODIFY,  /* instance type (stopped only) and/or user data */
};

struct api_instance_request {
	enum api_instance_op op;
	const char *account;
	const char *instance_id;
	/* API_OP_MODIFY: a new type (NULL: unchanged) ... */
	const char *instance_type;
	uint32_t vcpu;
	uint64_t mem_mib;
	/* ... and/or new user data (stopped only). */
	bool set_user_data;
	const uint8_t *user_data;
	size_t user_data_len;
};

/* What the cloud knows about one access key. */
struct api_key_info {
	char account_id[API_ACCOUNT_ID_LEN + 1]; /* 12 digits */
	char secret[API_SECRET_MAX + 1];         /* the secret access key */
	/* IAM-style identity of the key's owner: "arn:aws:iam::<acct>:user/x"
	 * and a user id ("AIDA..."); "root" users have arn ...:root. */
	char user_arn[API_NAME_MAX];
	char user_id[API_NAME_MAX];
};

/*
 * The cloud as the edge sees it: a table of functions over an opaque arg.
 * Each is called on the loop thread and must not block it. New members are
 * added as action families arrive; a NULL member means "not supported" and
 * the actions that need it answer InternalError.
 */
struct api_cloud {
	void *arg;
	/*
	 * Looks up an active access key by its id. Fills *out (wiping it is
	 * the edge's job) and returns 0; -ENOENT when the key is unknown or
	 * revoked; another negative errno when the lookup itself failed.
	 */
	int (*lookup_key)(void *arg, const char *access_key_id,
	                  struct api_key_info *out);

	/*
	 * The cloud's replicated records (DESIGN.md "Records"), read from
	 * this peer's copy. Kinds and ids are 1-128 printable ASCII
	 * characters without spaces; bodies are opaque bytes (the edge
	 * writes msgpack maps).
	 *
	 * get: fills *body (malloc'ed, the caller frees) and *len; -ENOENT
	 * when absent or deleted.
	 */
	int (*get)(void *arg, const char *kind, const char *id, uint8_t **body,
	           size_t *len);
	/*
	 * Calls cb for every live record of kind whose id starts with prefix
	 * ("" for all), in id order; the record is borrowed for the call. A
	 * non-zero return from cb stops the walk and is returned.
	 */
	int (*list)(void *arg, const char *kind, const char *prefix,
	            int (*cb)(void *ctx, const char *id, const uint8_t *body,
	                      size_t len),
	            void *ctx);
	/* Writes durably on this peer and spreads it to the others. */
	int (*put)(void *arg, const char *kind, const char *id,
	           const void *body, size_t len);
	int (*del)(void *arg, const char *kind, const char *id);
	/*
	 * Availability zones: cb once per zone of the cloud's hosts, with
	 * how many of its hosts are alive. Returns what cb returned.
	 */
	int (*zones)(void *arg,
	             int (*cb)(void *ctx, const char *zone, unsigned alive,
	                       unsigned hosts),
	             void *ctx);

	/*
	 * Instances (DESIGN.md "Placement", "Instances"). These two are
	 * asynchronous: 0 means cb runs exactly once later, from the loop
	 * (never from within the call); a negative errno means cb never
	 * runs. A pending call may outlive the HTTP connection that asked
	 * (the edge keeps what cb needs), but not api_edge_stop(): the
	 * cloud answers every call it holds (-ECANCELED) before the edge's
	 * memory goes.
	 *
	 * launch: places want (every field of the request filled, none of
	 * the host's: host, private_ip, mac, state...) and has a host admit
	 * it. cb gets 0 and the admitted record (state pending, borrowed for
	 * the call); -ENOSPC when no host could take it (message: why), or
	 * another negative errno and a message.
	 */
	int (*launch)(void *arg, const struct mc_instance *want,
	              void (*cb)(void *ctx, int status, const char *message,
	                         const struct mc_instance *admitted),
	              void *ctx);
	/*
	 * instance_op: asks the host of an instance to act on it. cb gets 0
	 * with the record after the change (borrowed) and, for
	 * API_OP_CONSOLE, the console's last bytes in data; or -ENOENT (no
	 * such instance), -EBUSY (not in a state that allows it; message
	 * says which), -ENOSPC (start: the host has no room now),
	 * -EHOSTUNREACH (its host cannot be reached), another negative
	 * errno, each with a message.
	 */
	int (*instance_op)(void *arg, const struct api_instance_request *req,
	                   void (*cb)(void *ctx, int status,
	                              const char *message,
	                              const struct mc_instance *after,
	                              const uint8_t *data, size_t len),
	                   void *ctx);
	/* The membership state of a host ("alive", "suspect", "dead",
	 * "left"), or NULL for a host it does not know. */
	const char *(*host_state)(void *arg, const char *host_id);
};

struct api_edge_config {
	/* Region name served (DescribeRegions, ARNs); e.g. "us-east-1". */
	const char *region;
	/* Host name reported as the region's endpoint, e.g. "10.0.0.1:8773". */
	const char *endpoint;
	/* PEM files: with both set the port speaks only TLS (1.2+). */
	const char *tls_cert_file;
	const char *tls_key_file;
	/* Limits; 0 picks the default noted. */
	unsigned max_conns;         /* 4096 */
	uint64_t idle_timeout_ms;   /* 60000: no request on a connection */
	uint64_t header_timeout_ms; /* 10000: first byte to end of headers */
	size_t max_body_bytes;      /* 1 MiB */
	/* Per access key token bucket: sustained requests/s and burst.
	 * 0 rate disables throttling. */
	double throttle_rate;
	double throttle_burst;
};

struct api_edge;

/*
 * Starts serving on addr (port 0 picks a free one). cfg and cloud are
 * copied (the strings in cfg too); cloud->arg must outlive the edge.
 * Returns 0 and sets *out, or a negative libuv error (UV_EADDRINUSE...),
 * or -EINVAL for TLS files that do not load. After a failure the loop must
 * still run for what was opened to close.
 */
int api_edge_start(struct api_edge **out, uv_loop_t *loop,
                   const struct sockaddr *addr,
                   const struct api_edge_config *cfg,
                   const struct api_cloud *cloud);
/* The port actually bound (useful after port 0), or -1. */
int api_edge_port(const struct api_edge *e);
/* Connections open right now. */
size_t api_edge_conn_count(const struct api_edge *e);
/*
 * Stops accepting, closes every connection and frees the edge once all its
 * handles are closed; then calls done(arg) from the loop (done may be NULL).
 */
void api_edge_stop(struct api_edge *e, void (*done)(void *arg), void *arg);

/*
 * The cloud's certificate authority (pki.c). api_pki_ca_create appends a
 * new CA's certificate and private key, PEM, to the buffers. api_pki_issue
 * makes an edge certificate signed by that CA for the given IP addresses
 * and host names (subjectAltName). Both return 0 or -EIO.
 */
struct mc_buf;
int api_pki_ca_create(const char *cn, struct mc_buf *cert_pem,
                      struct mc_buf *key_pem);
int api_pki_issue(const char *ca_cert_pem, const char *ca_key_pem,
                  const char *cn, const char *const *names, size_t n_names,
                  struct mc_buf *cert_pem, struct mc_buf *key_pem);

#endif
