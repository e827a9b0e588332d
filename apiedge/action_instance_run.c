/*
 * RunInstances. Everything the request names is checked first (image, type,
 * counts, key pair, groups, subnet or zone, user data, tags); then one
 * instance per MaxCount is handed to api_cloud.launch at once, each placed
 * and admitted by a host, which writes its record. When every host has
 * answered: with at least MinCount admitted the reservation is the answer;
 * with fewer, the admitted ones are terminated again and the answer is
 * InsufficientInstanceCapacity with the hosts' reasons.
 *
 * ClientToken: the token record keeps the reservation id and a hash of the
 * request's parameters, written before anything launches, so a retry of
 * the same request gets the same reservation (what of it exists), and a
 * different request with the same token IdempotentParameterMismatch.
 */
#include "apiedge_int.h"

#include "crypto.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COUNT_MAX     20 /* EC2's default instance limit */
#define DEFAULT_TYPE  "m1.small"
#define GROUP_ARGS    64
#define REASONS_MAX   512
#define INSTANCE_TYPE "instance" /* its tags' resource type */

struct run_slot {
	struct run *run;
	int status;
	char message[256];
	bool admitted;
	struct mc_instance rec; /* the admitted record */
};

struct run {
	struct api_call *call;
	unsigned min, max;
	struct mc_instance want; /* the template; owns key and user data */
	struct mc_instance *wants;
	struct run_slot *slots;
	size_t waiting;
	int error; /* the answer after undoing: -1 with call->err */
};

static void run_free(struct run *r)
{
	for (unsigned i = 0; r->slots && i < r->max; i++)
		mc_instance_clear(&r->slots[i].rec);
	free(r->slots);
	free(r->wants);
	mc_instance_clear(&r->want);
	free(r);
}

/* ---- checking the request ----------------------------------------------- */

static int parse_count(struct api_call *call, const char *name, unsigned *out)
{
	const char *v = api_params_get(call->params, name);
	if (!v || !v[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "%s",
		                     name);
	char *end;
	long n = strtol(v, &end, 10);
	if (*end || n < 1 || n > COUNT_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter %s is invalid. "
		                     "Expected a number from 1 to %d.",
		                     v, name, COUNT_MAX);
	*out = (unsigned)n;
	return 0;
}

static int parse_image(struct api_call *call, struct mc_instance *w)
{
	const char *id = api_params_get(call->params, "ImageId");
	char owner[API_ACCOUNT_ID_LEN + 1];
	if (!id || !id[0])
		return api_error_set(&call->err, "MissingParameter",
		                     "The request must contain the parameter "
		                     "ImageId");
	if (!api_res_id_valid("ami", id))
		return api_error_set(&call->err, "InvalidAMIID.Malformed",
		                     "Invalid id: \"%s\" (expecting "
		                     "\"ami-...\")",
		                     id);
	int r = api_image_find(call, id, owner, sizeof(owner));
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidAMIID.NotFound",
		                     "The image id '[%s]' does not exist", id);
	if (r)
		return api_res_failed(call, r);
	snprintf(w->image_id, sizeof(w->image_id), "%s", id);
	return 0;
}

static int parse_type(struct api_call *call, struct mc_instance *w)
{
	const char *name = api_params_get(call->params, "InstanceType");
	if (!name || !name[0])
		name = api_instance_type_find(DEFAULT_TYPE) ? DEFAULT_TYPE
		                                            : "t2.micro";
	const struct api_instance_type *t = api_instance_type_find(name);
	if (!t)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Invalid value '%s' for InstanceType.",
		                     name);
	snprintf(w->instance_type, sizeof(w->instance_type), "%s", t->name);
	w->vcpu = t->vcpus;
	w->mem_mib = t->mib;
	return 0;
}

static int parse_key(struct api_call *call, struct mc_instance *w)
{
	const char *name = api_params_get(call->params, "KeyName");
	if (!name || !name[0])
		return 0;
	struct mc_doc *doc = NULL;
	int r = api_key_pair_load(call, name, NULL, &doc);
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidKeyPair.NotFound",
		                     "The key pair '%s' does not exist", name);
	if (r)
		return api_res_failed(call, r);
	char *line = xmalloc(MC_INSTANCE_KEY_MAX + 1);
	if (mc_get_str(mc_doc_root(doc), "public_key", line,
	               MC_INSTANCE_KEY_MAX + 1) &&
	    line[0])
		w->key_material = line;
	else
		free(line);
	mc_doc_free(doc);
	snprintf(w->key_name, sizeof(w->key_name), "%s", name);
	return 0;
}

static int add_group(struct api_call *call, struct mc_instance *w,
                     const struct api_group *g)
{
	for (size_t i = 0; i < w->n_groups; i++)
		if (strcmp(w->groups[i].id, g->id) == 0)
			return 0;
	if (w->n_groups == MC_INSTANCE_GROUPS)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "An instance may have at most %d security "
		                     "groups.",
		                     MC_INSTANCE_GROUPS);
	struct mc_instance_group *ig = &w->groups[w->n_groups++];
	snprintf(ig->id, sizeof(ig->id), "%s", g->id);
	snprintf(ig->name, sizeof(ig->name), "%s", g->name);
	return 0;
}

static int group_by_id(struct api_call *call, struct mc_instance *w,
                       const char *id)
{
	struct api_group g;
	if (!api_res_id_valid("sg", id))
		return api_error_set(
		    &call->err, "InvalidGroupId.Malformed",
		    "Invalid id: \"%s\" (expecting \"sg-...\")", id);
	int r = api_group_get(call, id, &g);
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidGroup.NotFound",
		                     "The security group '%s' does not exist",
		                     id);
	return r ? api_res_failed(call, r) : add_group(call, w, &g);
}

/* SecurityGroup.N (names), SecurityGroupId.N and the network interface's
 * SecurityGroupId.N; the account's default group when none. */
static int parse_groups(struct api_call *call, struct mc_instance *w)
{
	const char *v[GROUP_ARGS];
	struct api_group g;
	size_t n =
	    api_params_list(call->params, "SecurityGroup", v, GROUP_ARGS);
	if (n > GROUP_ARGS)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many security groups.");
	for (size_t i = 0; i < n; i++) {
		int r = api_group_by_name(call, v[i], &g);
		if (r == -ENOENT)
			return api_error_set(&call->err,
			                     "InvalidGroup.NotFound",
			                     "The security group '%s' does not "
			                     "exist in default VPC '%s'",
			                     v[i], "default");
		if (r)
			return api_res_failed(call, r);
		if (add_group(call, w, &g) < 0)
			return -1;
	}
	n = api_params_list(call->params, "SecurityGroupId", v, GROUP_ARGS);
	if (n > GROUP_ARGS)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many security groups.");
	for (size_t i = 0; i < n; i++)
		if (group_by_id(call, w, v[i]) < 0)
			return -1;
	long nics[4];
	size_t nn =
	    api_params_indexes(call->params, "NetworkInterface", nics, 4);
	for (size_t k = 0; k < nn && k < 4; k++) {
		n = api_params_member_list(call->params, "NetworkInterface",
		                           nics[k], "SecurityGroupId", v,
		                           GROUP_ARGS);
		for (size_t i = 0; i < n && i < GROUP_ARGS; i++)
			if (group_by_id(call, w, v[i]) < 0)
				return -1;
	}
	if (w->n_groups)
		return 0;
	int r = api_group_default(call, &g);
	return r ? api_res_failed(call, r) : add_group(call, w, &g);
}

/* Placement.AvailabilityZone and SubnetId (or the network interface's):
 * both must exist and agree. */
static int parse_zone(struct api_call *call, struct mc_instance *w)
{
	const struct api_params *p = call->params;
	const char *zone = api_params_get(p, "Placement.AvailabilityZone");
	const char *subnet = api_params_get(p, "SubnetId");
	long nics[4];
	size_t nn = api_params_indexes(p, "NetworkInterface", nics, 4);
	for (size_t k = 0; !subnet && k < nn && k < 4; k++)
		subnet = api_params_member(p, "NetworkInterface", nics[k],
		                           "SubnetId");
	struct api_subnet subnets[API_ZONES_MAX];
	size_t n = api_default_subnets(call, subnets, API_ZONES_MAX);
	const char *subnet_zone = NULL;
	if (subnet && subnet[0]) {
		if (!api_res_id_valid("subnet", subnet))
			return api_error_set(&call->err,
			                     "InvalidSubnetID.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"subnet-...\")",
			                     subnet);
		for (size_t i = 0; i < n && !subnet_zone; i++)
			if (strcmp(subnets[i].id, subnet) == 0)
				subnet_zone = subnets[i].zone;
		if (!subnet_zone)
			return api_error_set(
			    &call->err, "InvalidSubnetID.NotFound",
			    "The subnet ID '%s' does not exist", subnet);
	}
	if (zone && zone[0]) {
		bool known = false;
		for (size_t i = 0; i < n; i++)
			known |= strcmp(subnets[i].zone, zone) == 0;
		if (!known)
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "Invalid availability zone: [%s]", zone);
		if (subnet_zone && strcmp(subnet_zone, zone) != 0)
			return api_error_set(
			    &call->err, "InvalidParameterCombination",
			    "The subnet '%s' is not in zone '%s'.", subnet,
			    zone);
	}
	const char *chosen = subnet_zone ? subnet_zone : zone ? zone : "";
	snprintf(w->zone, sizeof(w->zone), "%s", chosen);
	return 0;
}

static int parse_options(struct api_call *call, struct mc_instance *w)
{
	const char *tokens =
	    api_params_get(call->params, "MetadataOptions.HttpTokens");
	if (tokens && strcmp(tokens, "required") != 0 &&
	    strcmp(tokens, "optional") != 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter "
		                     "MetadataOptions.HttpTokens is invalid.",
		                     tokens);
	w->imds_tokens_required = tokens && strcmp(tokens, "required") == 0;
	const char *ud = api_params_get(call->params, "UserData");
	if (ud && api_user_data_decode(call, "UserData", ud, &w->user_data,
	                               &w->user_data_len) < 0)
		return -1;
	return 0;
}

static int run_parse(struct run *r)
{
	struct api_call *call = r->call;
	struct mc_instance *w = &r->want;
	if (parse_image(call, w) < 0 || parse_type(call, w) < 0 ||
	    parse_count(call, "MinCount", &r->min) < 0 ||
	    parse_count(call, "MaxCount", &r->max) < 0)
		return -1;
	if (r->min > r->max)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "MinCount (%u) may not exceed MaxCount "
		                     "(%u).",
		                     r->min, r->max);
	if (parse_key(call, w) < 0 || parse_groups(call, w) < 0 ||
	    parse_zone(call, w) < 0 || parse_options(call, w) < 0 ||
	    api_tag_specs_check(call, INSTANCE_TYPE) < 0)
		return -1;
	snprintf(w->account, sizeof(w->account), "%s",
	         call->auth->key.account_id);
	snprintf(w->requester, sizeof(w->requester), "%s",
	         call->auth->key.user_arn);
	const char *token = api_params_get(call->params, "ClientToken");
	snprintf(w->client_token, sizeof(w->client_token), "%s",
	         token ? token : "");
	return 0;
}

/* ---- the answer --------------------------------------------------------- */

static int launch_index_cmp(const void *a, const void *b)
{
	const struct mc_instance *x = *(const struct mc_instance *const *)a;
	const struct mc_instance *y = *(const struct mc_instance *const *)b;
	return (x->launch_index > y->launch_index) -
	       (x->launch_index < y->launch_index);
}

/* The reservation of instances (n of them, in any order). */
static void reservation_xml(struct api_call *call,
                            const struct mc_instance **in, size_t n,
                            const char *reservation)
{
	struct mc_buf *o = call->out;
	qsort(in, n, sizeof(in[0]), launch_index_cmp);
	api_xml_response_begin(o, "RunInstances", call->version,
	                       call->request_id);
	if (n) {
		api_reservation_head_xml(call, in[0]);
	} else {
		api_xml_elem(o, "reservationId", reservation);
		api_xml_elem(o, "ownerId", call->auth->key.account_id);
		api_xml_open(o, "groupSet");
		api_xml_close(o, "groupSet");
	}
	api_xml_open(o, "instancesSet");
	for (size_t i = 0; i < n; i++) {
		struct api_tags tags;
		if (api_tags_load(call, in[i]->id, &tags) != 0)
			tags.n = 0;
		api_instance_xml(call, in[i], &tags);
	}
	api_xml_close(o, "instancesSet");
	api_xml_response_end(o, "RunInstances");
}

/* A retried request: what exists of the reservation it made. */
static int replay(struct api_call *call, const char *reservation)
{
	struct api_instance_list l;
	int r = api_instance_list_take(call, &l);
	if (r)
		return api_res_failed(call, r);
	const struct mc_instance **in = xcalloc(l.n + 1, sizeof(*in));
	size_t n = 0;
	for (size_t i = 0; i < l.n; i++)
		if (strcmp(l.items[i].reservation, reservation) == 0)
			in[n++] = &l.items[i];
	reservation_xml(call, in, n, reservation);
	free(in);
	api_instance_list_free(&l);
	return 0;
}

/* The parameters that make a request what it is, hashed (the signature's
 * and the call's own left out), for ClientToken retries. */
static int param_cmp(const void *a, const void *b)
{
	const struct api_param *x = *(const struct api_param *const *)a;
	const struct api_param *y = *(const struct api_param *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static void params_hash(const struct api_call *call, char out[33])
{
	static const char *const skip[] = {
	    "Action",          "Version",          "DryRun",    "Signature",
	    "SignatureMethod", "SignatureVersion", "Timestamp", "Expires",
	    "AWSAccessKeyId",  "SecurityToken",
	};
	const struct api_params *p = call->params;
	const struct api_param **v = xcalloc(p->n + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++) {
		bool meta = strncasecmp(p->items[i].name, "X-Amz-", 6) == 0;
		for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
			meta |= strcmp(p->items[i].name, skip[k]) == 0;
		if (!meta)
			v[n++] = &p->items[i];
	}
	qsort(v, n, sizeof(v[0]), param_cmp);
	struct mc_buf b;
	mc_buf_init(&b);
	for (size_t i = 0; i < n; i++)
		mc_buf_printf(&b, "%s\n%s\n", v[i]->name, v[i]->value);
	uint8_t h[16];
	mc_hash(h, sizeof(h), b.data ? b.data : (void *)"", b.len);
	mc_hex_encode(out, h, sizeof(h));
	mc_buf_free(&b);
	free(v);
}

/* ---- launching ---------------------------------------------------------- */

static void on_undone(void *ctx, int status, const char *message,
                      const struct mc_instance *after, const uint8_t *data,
                      size_t len)
{
	(void)status, (void)message, (void)after, (void)data, (void)len;
	struct run *r = ctx;
	if (--r->waiting)
		return;
	struct api_call *call = r->call;
	run_free(r);
	api_call_finish(call, -1);
}

/* Too few admitted: EC2's error in call->err, the token forgotten. */
static void run_fail_error(struct run *r, unsigned admitted)
{
	struct api_call *call = r->call;
	char reasons[REASONS_MAX] = "";
	int other = 0;
	for (unsigned i = 0; i < r->max; i++) {
		struct run_slot *s = &r->slots[i];
		if (s->admitted)
			continue;
		if (s->status != -ENOSPC && !other)
			other = i + 1;
		if (!strstr(reasons, s->message)) {
			size_t l = strlen(reasons);
			snprintf(reasons + l, sizeof(reasons) - l, "%s%s",
			         l ? "; " : "", s->message);
		}
	}
	if (other)
		api_instance_op_error(call, r->slots[other - 1].status,
		                      r->slots[other - 1].message,
		                      r->wants[other - 1].id);
	else
		api_error_set(&call->err, "InsufficientInstanceCapacity",
		              "We currently do not have sufficient capacity "
		              "in the requested configuration: %u of the %u "
		              "instances asked for could be placed (%s).",
		              admitted, r->min, reasons);
	/* A retry with this token may try again. */
	api_token_remember(call, "");
}

/* ... and the admitted ones terminated again before the answer. */
static void run_undo(struct run *r, unsigned admitted)
{
	struct api_call *call = r->call;
	run_fail_error(r, admitted);
	r->waiting = 1;
	for (unsigned i = 0; i < r->max; i++) {
		if (!r->slots[i].admitted)
			continue;
		struct api_instance_request req = {
		    .op = API_OP_TERMINATE,
		    .account = call->auth->key.account_id,
		    .instance_id = r->wants[i].id,
		};
		r->waiting++;
		if (call->cloud->instance_op(call->cloud->arg, &req, on_undone,
		                             r) < 0)
			r->waiting--;
	}
	if (--r->waiting == 0) {
		run_free(r);
		api_call_finish(call, -1);
	}
}

static void run_settle(struct run *r)
{
	struct api_call *call = r->call;
	unsigned admitted = 0;
	for (unsigned i = 0; i < r->max; i++)
		admitted += r->slots[i].admitted;
	if (admitted < r->min) {
		run_undo(r, admitted);
		return;
	}
	const struct mc_instance **in = xcalloc(admitted, sizeof(*in));
	size_t n = 0;
	int rc = 0;
	for (unsigned i = 0; i < r->max; i++) {
		if (!r->slots[i].admitted)
			continue;
		in[n++] = &r->slots[i].rec;
		if (rc == 0 && api_tag_specs_apply(call, INSTANCE_TYPE,
		                                   r->slots[i].rec.id) < 0)
			rc = -1;
	}
	if (rc == 0)
		reservation_xml(call, in, n, r->want.reservation);
	free(in);
	run_free(r);
	api_call_finish(call, rc);
}

static void on_launch(void *ctx, int status, const char *message,
                      const struct mc_instance *admitted)
{
	struct run_slot *s = ctx;
	struct run *r = s->run;
	s->status = status;
	if (status == 0 && admitted) {
		mc_instance_copy(&s->rec, admitted);
		s->admitted = true;
	} else if (status == 0) {
		s->status = -EIO;
	}
	snprintf(s->message, sizeof(s->message), "%s",
	         message && message[0] ? message : strerror(-s->status));
	if (--r->waiting == 0)
		run_settle(r);
}

static int run_launch(struct run *r)
{
	struct api_call *call = r->call;
	r->wants = xcalloc(r->max, sizeof(*r->wants));
	r->slots = xcalloc(r->max, sizeof(*r->slots));
	r->waiting = 1; /* a guard while asking */
	for (unsigned i = 0; i < r->max; i++) {
		struct mc_instance *w = &r->wants[i];
		/* Shallow: the template keeps the key and user data. */
		*w = r->want;
		api_res_new_id("i", w->id, sizeof(w->id));
		w->launch_index = i;
		r->slots[i].run = r;
		r->waiting++;
		int rc = call->cloud->launch(call->cloud->arg, w, on_launch,
		                             &r->slots[i]);
		if (rc < 0) {
			r->waiting--;
			r->slots[i].status = rc;
			snprintf(r->slots[i].message,
			         sizeof(r->slots[i].message), "%s",
			         strerror(-rc));
		}
	}
	if (--r->waiting)
		return API_ACTION_PENDING;
	/* Every launch failed at once: nothing was admitted. */
	run_fail_error(r, 0);
	run_free(r);
	return -1;
}

int api_action_run_instances(struct api_call *call)
{
	struct run *r = xcalloc(1, sizeof(*r));
	char seen[128], hash[33];
	r->call = call;
	if (run_parse(r) < 0 || api_dry_run(call))
		goto fail;
	params_hash(call, hash);
	int t = api_token_seen(call, seen, sizeof(seen));
	if (t < 0)
		goto fail;
	char *sp = t ? strchr(seen, ' ') : NULL;
	if (sp) {
		*sp = '\0';
		run_free(r);
		if (strcmp(sp + 1, hash) != 0)
			return api_error_set(&call->err,
			                     "IdempotentParameterMismatch",
			                     "Arguments on this idempotent "
			                     "request are inconsistent with "
			                     "arguments used in previous "
			                     "request(s).");
		return replay(call, seen);
	}
	if (!call->cloud->launch || !call->cloud->instance_op ||
	    !call->finish) {
		api_res_failed(call, ENOSYS);
		goto fail;
	}
	api_res_new_id("r", r->want.reservation, sizeof(r->want.reservation));
	char remember[128];
	snprintf(remember, sizeof(remember), "%s %s", r->want.reservation,
	         hash);
	int rc = api_token_remember(call, remember);
	if (rc) {
		api_res_failed(call, rc);
		goto fail;
	}
	return run_launch(r);
fail:
	run_free(r);
	return -1;
}
