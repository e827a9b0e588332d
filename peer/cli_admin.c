#include "cli.h"

#include "cloud.h"
#include "cloudkey.h"
#include "config.h"
#include "images_int.h"
#include "mem.h"
#include "records.h"
#include "wire.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads all of stdin for a record body; caller frees. */
static uint8_t *read_stdin(size_t *len)
{
	struct mc_buf b;
	mc_buf_init(&b);
	for (;;) {
		uint8_t *dst = mc_buf_reserve(&b, 65536);
		size_t n = fread(dst, 1, 65536, stdin);
		b.len += n;
		if (n == 0)
			break;
	}
	*len = b.len;
	return b.data ? b.data : xcalloc(1, 1);
}

static void admin_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: mallee admin [--data-dir DIR] COMMAND ...\n\n"
	    "  account create NAME        a new account (12-digit id) and "
	    "its first key\n"
	    "  key create --account A [--user U]  a new access key\n"
	    "  key list [--account A] [--json]    access keys and their "
	    "state\n"
	    "  key revoke KEY_ID          stop a key working, on every "
	    "edge\n"
	    "  ca                         print the cloud CA's certificate "
	    "(for --ca-bundle)\n"
	    "  record put KIND ID [BODY]  write a record (BODY, or stdin "
	    "when absent or -)\n"
	    "  record get KIND ID         print a record's body\n"
	    "  record delete KIND ID      delete a record (a tombstone)\n"
	    "  record list [KIND] [--json]  list records\n"
	    "  record load                load \"KIND ID BODY\" lines from "
	    "stdin "
	    "in one\n"
	    "                             transaction (spread by "
	    "anti-entropy)\n"
	    "  key rotate                 replace the cloud key everywhere, "
	    "without a gap\n"
	    "  ping PEER_ID_OR_NAME       an RPC round trip to a peer\n"
	    "  image import|pull|list     images (mallee admin image "
	    "--help)\n");
}

static void print_record_line(const struct mc_val *r)
{
	char kind[129], id[129], writer[32];
	uint64_t hlc = 0;
	const uint8_t *body;
	size_t len = 0;
	mc_get_uint(r, "hlc", &hlc);
	mc_get_bytes(r, "body", &body, &len);
	printf("%s\t%s\t%llu\t%s\t%zu\n", str_or(r, "kind", kind, 129, "?"),
	       str_or(r, "id", id, 129, "?"), (unsigned long long)hlc,
	       str_or(r, "writer", writer, sizeof(writer), "?"), len);
}

/*
 * Reads "KIND ID BODY" lines from stdin into a record-load request. BODY is
 * the rest of the line.
 */
static int load_records(struct mc_buf *req)
{
	struct mc_buf items;
	char line[65536];
	uint32_t n = 0;
	unsigned lineno = 0;
	mc_buf_init(&items);
	while (fgets(line, sizeof(line), stdin)) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		char *save = NULL;
		char *kind = strtok_r(line, " ", &save);
		char *id = strtok_r(NULL, " ", &save);
		char *body = save ? save : "";
		if (!kind || !id || !peer_record_name_ok(kind) ||
		    !peer_record_name_ok(id)) {
			fprintf(stderr,
			        "mallee admin: stdin:%u: expected \"KIND ID "
			        "BODY\"\n",
			        lineno);
			mc_buf_free(&items);
			return 2;
		}
		mc_pack_array(&items, 3);
		mc_pack_str(&items, kind);
		mc_pack_str(&items, id);
		mc_pack_bin(&items, body, strlen(body));
		n++;
	}
	mc_pack_map(req, 2);
	mc_pack_kv_str(req, "cmd", "record-load");
	mc_pack_str(req, "records");
	mc_pack_array(req, n);
	mc_buf_append(req, items.data, items.len);
	mc_buf_free(&items);
	return 0;
}

static int admin_record(const char *dir, bool json, int argc, char **argv)
{
	if (argc < 1)
		return usage_error("admin", "record needs a command");
	const char *op = argv[0];
	struct mc_buf req;
	struct mc_doc *doc = NULL;
	uint8_t *body = NULL;
	size_t body_len = 0;
	int r;

	mc_buf_init(&req);
	if (strcmp(op, "put") == 0 && (argc == 3 || argc == 4)) {
		if (argc == 4 && strcmp(argv[3], "-") != 0) {
			body_len = strlen(argv[3]);
			body = (uint8_t *)xstrdup(argv[3]);
		} else {
			body = read_stdin(&body_len);
		}
		mc_pack_map(&req, 4);
		mc_pack_kv_str(&req, "cmd", "record-put");
		mc_pack_kv_str(&req, "kind", argv[1]);
		mc_pack_kv_str(&req, "id", argv[2]);
		mc_pack_kv_bin(&req, "body", body, body_len);
	} else if ((strcmp(op, "get") == 0 || strcmp(op, "delete") == 0) &&
	           argc == 3) {
		mc_pack_map(&req, 3);
		mc_pack_kv_str(&req, "cmd",
		               op[0] == 'g' ? "record-get" : "record-delete");
		mc_pack_kv_str(&req, "kind", argv[1]);
		mc_pack_kv_str(&req, "id", argv[2]);
	} else if (strcmp(op, "load") == 0 && argc == 1) {
		r = load_records(&req);
		if (r) {
			mc_buf_free(&req);
			return r;
		}
	} else if (strcmp(op, "list") == 0 && argc <= 2) {
		mc_pack_map(&req, argc == 2 ? 2 : 1);
		mc_pack_kv_str(&req, "cmd", "record-list");
		if (argc == 2)
			mc_pack_kv_str(&req, "kind", argv[1]);
	} else {
		mc_buf_free(&req);
		return usage_error("admin", "bad record command");
	}
	free(body);

	r = ctl_request("admin", dir, &req, &doc);
	mc_buf_free(&req);
	if (r)
		return r;
	const struct mc_val *root = mc_doc_root(doc);
	if (strcmp(op, "get") == 0) {
		const struct mc_val *rec = mc_map_get(root, "record");
		const uint8_t *p;
		size_t n;
		if (json)
			print_json(rec);
		else if (mc_get_bytes(rec, "body", &p, &n))
			fwrite(p, 1, n, stdout);
	} else if (strcmp(op, "list") == 0) {
		const struct mc_val *recs = mc_map_get(root, "records");
		if (json)
			print_json(recs);
		else
			for (uint32_t i = 0;
			     recs && recs->type == MC_VAL_ARRAY &&
			     i < recs->v.array.n;
			     i++)
				print_record_line(&recs->v.array.items[i]);
	} else if (strcmp(op, "load") == 0) {
		uint64_t loaded = 0;
		mc_get_uint(root, "loaded", &loaded);
		printf("loaded %llu records\n", (unsigned long long)loaded);
	} else {
		uint64_t hlc = 0;
		mc_get_uint(root, "hlc", &hlc);
		printf("%llu\n", (unsigned long long)hlc);
	}
	mc_doc_free(doc);
	return 0;
}

static int admin_key_rotate(const char *dir)
{
	struct mc_doc *doc = NULL;
	int r = ctl_command("admin", dir, "key-rotate", &doc);
	if (r)
		return r;
	uint64_t step = 0;
	mc_get_uint(mc_doc_root(doc), "step_ms", &step);
	printf("rotating the cloud key: the new key is installed now, becomes "
	       "primary in %llu s, and the old key is retired %llu s later\n",
	       (unsigned long long)step / 1000,
	       (unsigned long long)step / 1000);
	mc_doc_free(doc);
	return 0;
}

/* Prints the cloud CA's certificate, for clients' --ca-bundle. */
static int admin_ca(const char *dir)
{
	struct mc_buf req;
	struct mc_doc *doc = NULL;
	mc_buf_init(&req);
	mc_pack_map(&req, 3);
	mc_pack_kv_str(&req, "cmd", "record-get");
	mc_pack_kv_str(&req, "kind", PEER_KIND_CA);
	mc_pack_kv_str(&req, "id", PEER_CA_ID);
	int r = ctl_request("admin", dir, &req, &doc);
	mc_buf_free(&req);
	if (r)
		return r;
	const uint8_t *body, *cert;
	size_t len, cert_len;
	struct mc_doc *ca = NULL;
	r = 1;
	if (mc_get_bytes(mc_map_get(mc_doc_root(doc), "record"), "body", &body,
	                 &len) &&
	    (ca = mc_unpack(body, len)) &&
	    mc_get_bytes(mc_doc_root(ca), "cert", &cert, &cert_len)) {
		fwrite(cert, 1, cert_len, stdout);
		r = 0;
	} else {
		fprintf(stderr, "mallee admin: the cloud's CA record is "
		                "malformed\n");
	}
	mc_doc_free(ca);
	mc_doc_free(doc);
	return r;
}

/*
 * An RPC ping through the running peer: it starts the ping and keeps the
 * outcome, which this polls for (the control socket answers at once).
 */
static int admin_ping(const char *dir, const char *to, bool json)
{
	struct mc_buf req;
	struct mc_doc *doc = NULL;
	mc_buf_init(&req);
	mc_pack_map(&req, 2);
	mc_pack_kv_str(&req, "cmd", "ping");
	mc_pack_kv_str(&req, "to", to);
	int r = ctl_request("admin", dir, &req, &doc);
	mc_buf_free(&req);
	if (r)
		return r;
	char label[160];
	snprintf(label, sizeof(label), "ping %s", to);
	/* The RPC gives up after PEER_RPC_TIMEOUT_MS (15 s); poll past it. */
	struct ctl_poll poll = {.what = "ping-result",
	                        .key = "ticket",
	                        .interval_ms = 10,
	                        .tries = 2000,
	                        .label = label};
	mc_get_uint(mc_doc_root(doc), "ticket", &poll.id);
	mc_doc_free(doc);
	r = ctl_poll("admin", dir, &poll, &doc);
	if (r)
		return r;
	const struct mc_val *root = mc_doc_root(doc);
	uint64_t us = 0;
	char id[32], name[64];
	mc_get_uint(root, "rtt_us", &us);
	if (json)
		print_json(root);
	else
		printf("pong from %s (%s) in %.3f ms\n",
		       str_or(root, "name", name, sizeof(name), "?"),
		       str_or(root, "id", id, sizeof(id), "?"),
		       (double)us / 1000.0);
	mc_doc_free(doc);
	return 0;
}

/* Account and access-key commands: one request, the answer printed. */
static int admin_keys(const char *dir, const char *cmd, const char *field,
                      const char *value, const char *user, bool json)
{
	struct mc_buf req;
	struct mc_doc *doc = NULL;
	mc_buf_init(&req);
	mc_pack_map(&req, 1 + (field != NULL) + (user != NULL));
	mc_pack_kv_str(&req, "cmd", cmd);
	if (field)
		mc_pack_kv_str(&req, field, value);
	if (user)
		mc_pack_kv_str(&req, "user", user);
	int r = ctl_request("admin", dir, &req, &doc);
	mc_buf_free(&req);
	if (r)
		return r;
	const struct mc_val *root = mc_doc_root(doc);
	char a[64], b[64], c[64], d[64];
	if (strcmp(cmd, "key-list") == 0) {
		const struct mc_val *keys = mc_map_get(root, "keys");
		if (json) {
			print_json(keys);
		} else {
			printf("%-20s  %-12s  %-16s  %s\n", "ACCESS KEY",
			       "ACCOUNT", "USER", "STATE");
			for (uint32_t i = 0;
			     keys && keys->type == MC_VAL_ARRAY &&
			     i < keys->v.array.n;
			     i++) {
				const struct mc_val *k =
				    &keys->v.array.items[i];
				printf("%-20s  %-12s  %-16s  %s\n",
				       str_or(k, "key_id", a, sizeof(a), "?"),
				       str_or(k, "account", b, sizeof(b), "?"),
				       str_or(k, "user", c, sizeof(c), "?"),
				       str_or(k, "state", d, sizeof(d), "?"));
			}
		}
	} else if (strcmp(cmd, "key-revoke") == 0) {
		printf("revoked %s\n", value);
	} else if (json) {
		print_json(root);
	} else {
		printf("account                %s\n"
		       "AWS_ACCESS_KEY_ID=%s\n"
		       "AWS_SECRET_ACCESS_KEY=%s\n",
		       str_or(root, "account", a, sizeof(a), "?"),
		       str_or(root, "key_id", b, sizeof(b), "?"),
		       str_or(root, "secret", c, sizeof(c), "?"));
	}
	mc_doc_free(doc);
	return 0;
}

int cli_admin(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"account", required_argument, NULL, 'a'},
	    {"user", required_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = PEER_DEFAULT_DATA_DIR;
	const char *account = NULL, *user = NULL;
	bool json = false;
	int c;
	if (cli_admin_image_wanted(argc, argv))
		return cli_admin_image(argc, argv);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'a':
			account = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'h':
			admin_usage(stdout);
			return 0;
		default:
			return bad_flag("admin", argc, argv);
		}
	}
	if (optind >= argc) {
		admin_usage(stderr);
		return 2;
	}
	if (strcmp(argv[optind], "record") == 0)
		return admin_record(dir, json, argc - optind - 1,
		                    argv + optind + 1);
	int left = argc - optind;
	const char *what = argv[optind];
	const char *op = left > 1 ? argv[optind + 1] : "";
	if (strcmp(what, "key") == 0 && strcmp(op, "rotate") == 0 && left == 2)
		return admin_key_rotate(dir);
	if (strcmp(what, "ca") == 0 && left == 1)
		return admin_ca(dir);
	if (strcmp(what, "ping") == 0 && left == 2)
		return admin_ping(dir, argv[optind + 1], json);
	if (strcmp(what, "account") == 0 && strcmp(op, "create") == 0 &&
	    left == 3)
		return admin_keys(dir, "account-create", "name",
		                  argv[optind + 2], NULL, json);
	if (strcmp(what, "key") == 0 && strcmp(op, "create") == 0 &&
	    left == 2) {
		if (!account)
			return usage_error("admin", "key create needs "
			                            "--account ACCOUNT");
		return admin_keys(dir, "key-create", "account", account, user,
		                  json);
	}
	if (strcmp(what, "key") == 0 && strcmp(op, "list") == 0 && left == 2)
		return admin_keys(dir, "key-list", account ? "account" : NULL,
		                  account, NULL, json);
	if (strcmp(what, "key") == 0 && strcmp(op, "revoke") == 0 && left == 3)
		return admin_keys(dir, "key-revoke", "key_id", argv[optind + 2],
		                  NULL, json);
	return usage_error("admin", "unknown admin command");
}
