/*
 * DescribeInstances and DescribeInstanceStatus, read from the instance
 * records the hosts write. Instances are grouped by reservation (the page
 * unit of DescribeInstances); terminated ones stay visible for an hour. A
 * running instance's status follows its host's membership: alive (or only
 * suspected) is "ok", dead, left or unknown is "impaired"; so is a pending
 * one whose host said its guest has no address long after its start.
 */
#include "apiedge_int.h"

#include "hlc.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what a filter sees ------------------------------------------------- */

/* The values of an instance a filter name tests. */
struct fields {
	const struct api_call *call;
	const struct mc_instance *in;
	char dns[96], subnet[32], vpc[32], code[8], index[16], when[32];
};

static void fields_init(struct fields *f, const struct api_call *call,
                        const struct mc_instance *in)
{
	memset(f, 0, sizeof(*f));
	f->call = call;
	f->in = in;
	api_instance_dns(call, in, f->dns, sizeof(f->dns));
	api_default_vpc_id(call, f->vpc);
	struct api_subnet subnets[API_ZONES_MAX];
	size_t n = api_default_subnets(call, subnets, API_ZONES_MAX);
	for (size_t i = 0; i < n; i++)
		if (strcmp(subnets[i].zone, in->zone) == 0)
			snprintf(f->subnet, sizeof(f->subnet), "%s",
			         subnets[i].id);
	snprintf(f->code, sizeof(f->code), "%d", (int)in->state);
	snprintf(f->index, sizeof(f->index), "%u", in->launch_index);
	api_time_iso8601(f->when, in->launch_ms);
}

/* The single value of a filter: 1 (and *v, NULL for none), 0 for a name
 * that is not a single-valued instance field. */
static int field_value(const struct fields *f, const char *name, const char **v)
{
	const struct mc_instance *in = f->in;
	const struct {
		const char *name, *value;
	} map[] = {
	    {"instance-id", in->id},
	    {"instance-state-name", mc_instance_state_name(in->state)},
	    {"instance-state-code", f->code},
	    {"instance-type", in->instance_type},
	    {"image-id", in->image_id},
	    {"availability-zone", in->zone},
	    {"private-ip-address", in->private_ip[0] ? in->private_ip : NULL},
	    {"private-dns-name", f->dns},
	    {"key-name", in->key_name[0] ? in->key_name : NULL},
	    {"reservation-id", in->reservation},
	    {"architecture", in->architecture[0] ? in->architecture : "x86_64"},
	    {"client-token", in->client_token},
	    {"launch-index", f->index},
	    {"owner-id", in->account},
	    {"subnet-id", f->subnet[0] ? f->subnet : NULL},
	    {"vpc-id", f->vpc},
	    {"dns-name", ""},
	    {"launch-time", f->when},
	    {"root-device-type", "instance-store"},
	    {"root-device-name", in->root_device},
	    {"virtualization-type", "hvm"},
	    {"hypervisor", "xen"},
	    {"tenancy", "default"},
	    {"placement-group-name", ""},
	    {"monitoring-state", "disabled"},
	    {"reason", in->transition_reason},
	    {"state-reason-code", in->state_reason_code},
	    {"state-reason-message", in->state_reason},
	    {"requester-id", in->requester},
	    {"metadata-options.http-tokens",
	     in->imds_tokens_required ? "required" : "optional"},
	    {"network-interface.mac-address", in->mac[0] ? in->mac : NULL},
	    {"network-interface.addresses.private-ip-address",
	     in->private_ip[0] ? in->private_ip : NULL},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, name) == 0) {
			*v = map[i].value;
			return 1;
		}
	return 0;
}

/* Group filters test every group of the instance. */
static int group_filter(const struct api_filter *flt,
                        const struct mc_instance *in, bool *match)
{
	const char *n = flt->name;
	if (strncmp(n, "instance.", 9) == 0)
		n += 9;
	bool by_id = strcmp(n, "group-id") == 0;
	if (!by_id && strcmp(n, "group-name") != 0)
		return 0;
	*match = false;
	for (size_t i = 0; i < in->n_groups; i++)
		*match |= api_filter_values_match(
		    flt, by_id ? in->groups[i].id : in->groups[i].name);
	return 1;
}

/* All filters match; -1 with call->err for a name no instance has. */
static int instance_matches(struct api_call *call, const struct api_filters *fs,
                            const struct mc_instance *in,
                            const struct api_tags *tags, bool *match)
{
	struct fields f;
	fields_init(&f, call, in);
	*match = true;
	for (size_t i = 0; i < fs->n; i++) {
		const struct api_filter *flt = &fs->items[i];
		const char *v = NULL;
		bool m = false;
		if (api_filter_tags(flt, tags, &m) || group_filter(flt, in, &m))
			;
		else if (field_value(&f, flt->name, &v))
			m = v && api_filter_values_match(flt, v);
		else
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "The filter '%s' is invalid", flt->name);
		*match = *match && m;
	}
	return 0;
}

/* ---- the ids named ------------------------------------------------------ */

struct named {
	const char **ids;
	bool *seen;
	size_t n;
};

static bool named_take(struct named *nm, const char *id)
{
	if (nm->n == 0)
		return true;
	bool listed = false;
	for (size_t i = 0; i < nm->n; i++)
		if (strcmp(nm->ids[i], id) == 0)
			listed = nm->seen[i] = true;
	return listed;
}

/* InvalidInstanceID.NotFound naming every id not seen; 0 if none. */
static int named_missing(struct api_call *call, const struct named *nm)
{
	struct mc_buf list;
	mc_buf_init(&list);
	size_t missing = 0;
	for (size_t i = 0; i < nm->n; i++)
		if (!nm->seen[i])
			mc_buf_printf(&list, "%s%s", missing++ ? ", " : "",
			              nm->ids[i]);
	mc_buf_put_u8(&list, 0);
	int rc = 0;
	if (missing)
		rc = api_error_set(&call->err, "InvalidInstanceID.NotFound",
		                   "The instance ID%s '%s' do%s not exist",
		                   missing > 1 ? "s" : "",
		                   (const char *)list.data,
		                   missing > 1 ? "" : "es");
	mc_buf_free(&list);
	return rc;
}

/* The request's ids, filters (checked on a probe) and page. */
static int describe_parse(struct api_call *call, struct named *nm,
                          struct api_filters *fs, struct api_page *pg)
{
	long n = api_instance_ids(call, "InstanceId", nm->ids, false);
	if (n < 0 || api_filters_parse(call->params, fs, &call->err) < 0 ||
	    api_page_parse(call, pg, 5, 1000) < 0)
		return -1;
	nm->n = (size_t)n;
	return 0;
}

/* ---- DescribeInstances -------------------------------------------------- */

static int by_reservation(const void *a, const void *b)
{
	const struct mc_instance *x = *(const struct mc_instance *const *)a;
	const struct mc_instance *y = *(const struct mc_instance *const *)b;
	int c = strcmp(x->reservation, y->reservation);
	if (c)
		return c;
	return (x->launch_index > y->launch_index) -
	       (x->launch_index < y->launch_index);
}

/* Writes the reservations of the sorted instances that match. */
static void reservations_xml(struct api_call *call, struct mc_instance **in,
                             size_t n, const bool *show,
                             const struct api_tag_index *ix,
                             struct api_page *pg)
{
	struct mc_buf *o = call->out;
	for (size_t i = 0; i < n;) {
		size_t end = i, first = n;
		for (; end < n &&
		       strcmp(in[end]->reservation, in[i]->reservation) == 0;
		     end++)
			if (show[end] && first == n)
				first = end;
		if (first < n && api_page_take(pg, in[i]->reservation)) {
			api_xml_open(o, "item");
			api_reservation_head_xml(call, in[first]);
			api_xml_open(o, "instancesSet");
			for (size_t k = first; k < end; k++) {
				if (!show[k])
					continue;
				struct api_tags tags;
				api_tag_index_get(ix, in[k]->id, &tags);
				api_instance_xml(call, in[k], &tags);
			}
			api_xml_close(o, "instancesSet");
			api_xml_close(o, "item");
		}
		i = end;
	}
}

int api_action_describe_instances(struct api_call *call)
{
	struct named nm = {
	    .ids = xcalloc(API_INSTANCE_IDS_MAX, sizeof(char *)),
	    .seen = xcalloc(API_INSTANCE_IDS_MAX, sizeof(bool)),
	};
	struct api_filters fs = {0};
	struct api_page pg;
	struct api_instance_list l = {0};
	struct api_tag_index ix = {0};
	struct mc_instance **sorted = NULL;
	bool *show = NULL;
	int rc = -1;
	if (describe_parse(call, &nm, &fs, &pg) < 0)
		goto out;
	/* Unknown filter names fail even without instances. */
	struct mc_instance probe = {.id = "i-00000000"};
	struct api_tags none = {.n = 0};
	bool m;
	if (instance_matches(call, &fs, &probe, &none, &m) < 0 ||
	    api_dry_run(call))
		goto out;
	int r = api_instance_list_take(call, &l);
	if (r == 0)
		r = api_tag_index_add(call, "i-", &ix);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	api_tag_index_sort(&ix);
	sorted = xcalloc(l.n + 1, sizeof(*sorted));
	show = xcalloc(l.n + 1, sizeof(*show));
	for (size_t i = 0; i < l.n; i++)
		sorted[i] = &l.items[i];
	qsort(sorted, l.n, sizeof(sorted[0]), by_reservation);
	for (size_t i = 0; i < l.n; i++) {
		struct api_tags tags;
		api_tag_index_get(&ix, sorted[i]->id, &tags);
		if (instance_matches(call, &fs, sorted[i], &tags, &m) < 0)
			goto out;
		show[i] = named_take(&nm, sorted[i]->id) && m;
	}
	if (named_missing(call, &nm) < 0)
		goto out;
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DescribeInstances", call->version,
	                       call->request_id);
	api_xml_open(o, "reservationSet");
	reservations_xml(call, sorted, l.n, show, &ix, &pg);
	api_xml_close(o, "reservationSet");
	api_page_xml_next(o, &pg);
	api_xml_response_end(o, "DescribeInstances");
	rc = 0;
out:
	free(show);
	free(sorted);
	api_tag_index_free(&ix);
	api_instance_list_free(&l);
	api_filters_free(&fs);
	free(nm.ids);
	free(nm.seen);
	return rc;
}

/* ---- DescribeInstanceStatus --------------------------------------------- */

struct status {
	const char *status;       /* ok, impaired, initializing... */
	const char *reachability; /* passed, failed, initializing; NULL */
};

static struct status status_of(const struct api_call *call,
                               const struct mc_instance *in)
{
	if (in->state != MC_INST_RUNNING && in->state != MC_INST_PENDING)
		return (struct status){"not-applicable", NULL};
	/* The host first: a pending instance whose host died will not start,
	 * and "initializing" would say it still might. */
	const char *host = NULL;
	if (call->cloud->host_state && in->host[0])
		host = call->cloud->host_state(call->cloud->arg, in->host);
	bool up = host &&
	          (strcmp(host, "alive") == 0 || strcmp(host, "suspect") == 0);
	if (!up)
		return (struct status){"impaired", "failed"};
	/* The host's word that the guest is overdue (peer/instances.c). */
	if (in->state == MC_INST_PENDING &&
	    strcmp(in->state_reason_code, "pending") == 0)
		return (struct status){"impaired", "failed"};
	if (in->state == MC_INST_PENDING)
		return (struct status){"initializing", "initializing"};
	return (struct status){"ok", "passed"};
}

static int status_field(const struct mc_instance *in, const struct status *st,
                        const char *name, char code[8], const char **v)
{
	snprintf(code, 8, "%d", (int)in->state);
	if (strcmp(name, "availability-zone") == 0)
		*v = in->zone;
	else if (strcmp(name, "instance-state-name") == 0)
		*v = mc_instance_state_name(in->state);
	else if (strcmp(name, "instance-state-code") == 0)
		*v = code;
	else if (strcmp(name, "system-status.status") == 0 ||
	         strcmp(name, "instance-status.status") == 0)
		*v = st->status;
	else if (strcmp(name, "system-status.reachability") == 0 ||
	         strcmp(name, "instance-status.reachability") == 0)
		*v = st->reachability;
	else
		return 0;
	return 1;
}

static int status_matches(struct api_call *call, const struct api_filters *fs,
                          const struct mc_instance *in, const struct status *st,
                          const struct api_tags *tags, bool *match)
{
	*match = true;
	for (size_t i = 0; i < fs->n; i++) {
		const char *v = NULL;
		char code[8];
		bool m;
		if (api_filter_tags(&fs->items[i], tags, &m)) {
			*match = *match && m;
			continue;
		}
		if (!status_field(in, st, fs->items[i].name, code, &v))
			return api_error_set(
			    &call->err, "InvalidParameterValue",
			    "The filter '%s' is invalid", fs->items[i].name);
		*match =
		    *match && v && api_filter_values_match(&fs->items[i], v);
	}
	return 0;
}

static void check_xml(struct mc_buf *o, const char *tag,
                      const struct status *st, const struct mc_instance *in)
{
	api_xml_open(o, tag);
	api_xml_elem(o, "status", st->status);
	api_xml_open(o, "details");
	if (st->reachability) {
		api_xml_open(o, "item");
		api_xml_elem(o, "name", "reachability");
		api_xml_elem(o, "status", st->reachability);
		if (strcmp(st->reachability, "failed") == 0) {
			char when[32];
			api_time_iso8601(when, in->updated_ms);
			api_xml_elem(o, "impairedSince", when);
		}
		api_xml_close(o, "item");
	}
	api_xml_close(o, "details");
	api_xml_close(o, tag);
}

int api_action_describe_instance_status(struct api_call *call)
{
	struct named nm = {
	    .ids = xcalloc(API_INSTANCE_IDS_MAX, sizeof(char *)),
	    .seen = xcalloc(API_INSTANCE_IDS_MAX, sizeof(bool)),
	};
	struct api_filters fs = {0};
	struct api_page pg;
	struct api_instance_list l = {0};
	struct api_tag_index ix = {0};
	struct api_tags tags = {.n = 0};
	int rc = -1;
	bool all, m;
	if (api_param_bool(call, "IncludeAllInstances", false, &all) < 0 ||
	    describe_parse(call, &nm, &fs, &pg) < 0)
		goto out;
	struct mc_instance probe = {.id = "i-00000000"};
	struct status none = {"ok", "passed"};
	if (status_matches(call, &fs, &probe, &none, &tags, &m) < 0 ||
	    api_dry_run(call))
		goto out;
	int r = api_instance_list_take(call, &l);
	if (r == 0)
		r = api_tag_index_add(call, "i-", &ix);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	api_tag_index_sort(&ix);
	for (size_t i = 0; i < l.n; i++)
		named_take(&nm, l.items[i].id);
	if (named_missing(call, &nm) < 0)
		goto out;
	for (size_t i = 0; i < nm.n; i++)
		nm.seen[i] = false;
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "DescribeInstanceStatus", call->version,
	                       call->request_id);
	api_xml_open(o, "instanceStatusSet");
	for (size_t i = 0; i < l.n; i++) {
		const struct mc_instance *in = &l.items[i];
		struct status st = status_of(call, in);
		if ((!all && in->state != MC_INST_RUNNING) ||
		    !named_take(&nm, in->id))
			continue;
		api_tag_index_get(&ix, in->id, &tags);
		status_matches(call, &fs, in, &st, &tags, &m);
		if (!m || !api_page_take(&pg, in->id))
			continue;
		api_xml_open(o, "item");
		api_xml_elem(o, "instanceId", in->id);
		api_xml_elem(o, "availabilityZone", in->zone);
		api_instance_state_xml(o, "instanceState", (int)in->state);
		check_xml(o, "systemStatus", &st, in);
		check_xml(o, "instanceStatus", &st, in);
		api_xml_close(o, "item");
	}
	api_xml_close(o, "instanceStatusSet");
	api_page_xml_next(o, &pg);
	api_xml_response_end(o, "DescribeInstanceStatus");
	rc = 0;
out:
	api_tag_index_free(&ix);
	api_instance_list_free(&l);
	api_filters_free(&fs);
	free(nm.ids);
	free(nm.seen);
	return rc;
}
