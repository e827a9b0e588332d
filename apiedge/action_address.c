/*
 * Elastic IPs: AllocateAddress, AssociateAddress, DisassociateAddress,
 * ReleaseAddress and DescribeAddresses, over three kinds of records:
 *
 *   public-pool  PEERID                {zone, first, last}
 *       a gateway peer started with --public-pool announces its range
 *       (dotted quads, both ends included); the edge only reads these.
 *   address      ACCOUNT:eipalloc-...  {public_ip, pool_peer, zone, domain,
 *                                       allocation_id, association_id,
 *                                       instance_id, private_ip, created}
 *       one allocation; association_id, instance_id and private_ip are ""
 *       while it is not associated. The gateway that holds the pool
 *       watches these and forwards the address to private_ip.
 *   public-ip    A.B.C.D               {allocation: "ACCOUNT:eipalloc-...",
 *                                       created}
 *       the claim that keeps two edges from handing out one address.
 *
 * Tags are tag records of their own (resource type "elastic-ip"), as for
 * every other resource. Allocation and release, which read the pools and
 * write the claims, are in action_address_alloc.c.
 */
#include "apiedge_int.h"

#include "hlc.h"
#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDS_MAX 1000

static void str_field(const struct mc_val *v, const char *key, char *out,
                      size_t size)
{
	if (!mc_get_str(v, key, out, size))
		out[0] = '\0';
}

static void address_read(struct api_address *a, const char *resid,
                         const struct mc_val *v)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->resid, sizeof(a->resid), "%s", resid);
	str_field(v, "public_ip", a->public_ip, sizeof(a->public_ip));
	str_field(v, "pool_peer", a->pool_peer, sizeof(a->pool_peer));
	str_field(v, "zone", a->zone, sizeof(a->zone));
	str_field(v, "domain", a->domain, sizeof(a->domain));
	str_field(v, "association_id", a->association_id,
	          sizeof(a->association_id));
	str_field(v, "instance_id", a->instance_id, sizeof(a->instance_id));
	str_field(v, "private_ip", a->private_ip, sizeof(a->private_ip));
	mc_get_uint(v, "created", &a->created_ms);
	if (!a->domain[0])
		snprintf(a->domain, sizeof(a->domain), "vpc");
}

int api_address_store(const struct api_call *call, const struct api_address *a)
{
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 9);
	mc_pack_kv_str(&b, "public_ip", a->public_ip);
	mc_pack_kv_str(&b, "pool_peer", a->pool_peer);
	mc_pack_kv_str(&b, "zone", a->zone);
	mc_pack_kv_str(&b, "domain", a->domain);
	mc_pack_kv_str(&b, "allocation_id", a->resid);
	mc_pack_kv_str(&b, "association_id", a->association_id);
	mc_pack_kv_str(&b, "instance_id", a->instance_id);
	mc_pack_kv_str(&b, "private_ip", a->private_ip);
	mc_pack_kv_uint(&b, "created", a->created_ms);
	int r = api_res_store(call, API_KIND_ADDRESS, a->resid, &b);
	mc_buf_free(&b);
	return r;
}

static void address_disassociate(struct api_address *a)
{
	a->association_id[0] = a->instance_id[0] = a->private_ip[0] = '\0';
}

/* The ENI id DescribeInstances shows for an instance (see eni_xml in
 * action_instance.c: both derive it from the same seed). */
static void instance_eni(const char *instance_id, char out[32])
{
	char seed[64];
	snprintf(seed, sizeof(seed), "eni\n%s", instance_id);
	api_res_derived_id("eni", seed, out, 32);
}

/*
 * Whether a's association still holds. EC2 disassociates an address when
 * its instance terminates; no host rewrites our record then, so an
 * association with an instance that is shutting down, terminated or gone
 * reads as none (and the next write of the record clears it).
 */
static bool address_associated(const struct api_call *call,
                               const struct api_address *a)
{
	if (!a->association_id[0] || !a->instance_id[0])
		return false;
	struct mc_instance in;
	int r = api_instance_load(call, a->instance_id, &in);
	if (r == -ENOENT)
		return false;
	if (r)
		return true; /* cannot tell: keep it */
	bool live =
	    in.state != MC_INST_TERMINATED && in.state != MC_INST_SHUTTING_DOWN;
	mc_instance_clear(&in);
	return live;
}

/* Reads the association as address_associated sees it. */
static void address_settle(const struct api_call *call, struct api_address *a)
{
	if (!address_associated(call, a))
		address_disassociate(a);
}

/* ---- the caller's addresses --------------------------------------------- */

struct address_list {
	struct api_address *items;
	size_t n;
};

static void address_list_free(struct address_list *l)
{
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* The caller's addresses in allocation id order: 0 or the cloud's errno. */
static int address_list_take(const struct api_call *call,
                             struct address_list *out)
{
	struct api_res_snapshot s;
	memset(out, 0, sizeof(*out));
	int r = api_res_snapshot_take(call, API_KIND_ADDRESS, &s);
	if (r)
		return r;
	out->items = xcalloc(s.n + 1, sizeof(*out->items));
	for (size_t i = 0; i < s.n; i++)
		address_read(&out->items[out->n++], s.items[i].resid,
		             mc_doc_root(s.items[i].doc));
	api_res_snapshot_free(&s);
	return 0;
}

int api_address_count(const struct api_call *call, size_t *n)
{
	struct address_list l;
	int r = address_list_take(call, &l);
	*n = l.n;
	address_list_free(&l);
	return r;
}

/*
 * The caller's address by allocation id (or, with alloc NULL, by public
 * address) into *out. 0, -ENOENT, or the cloud's negative errno.
 */
static int address_find(const struct api_call *call, const char *alloc,
                        const char *public_ip, struct api_address *out)
{
	if (alloc) {
		struct mc_doc *doc;
		int r = api_res_load(call, API_KIND_ADDRESS, alloc, &doc);
		if (r)
			return r;
		address_read(out, alloc, mc_doc_root(doc));
		mc_doc_free(doc);
		return 0;
	}
	struct address_list l;
	int r = address_list_take(call, &l);
	if (r)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < l.n && r; i++)
		if (strcmp(l.items[i].public_ip, public_ip) == 0) {
			*out = l.items[i];
			r = 0;
		}
	address_list_free(&l);
	return r;
}

struct by_instance {
	const char *instance_id;
	char *out;
	size_t size;
};

static int by_instance_one(void *ctx, const char *resid,
                           const struct mc_val *body)
{
	(void)resid;
	struct by_instance *b = ctx;
	char id[32], assoc[32];
	str_field(body, "instance_id", id, sizeof(id));
	str_field(body, "association_id", assoc, sizeof(assoc));
	if (!assoc[0] || strcmp(id, b->instance_id) != 0)
		return 0;
	str_field(body, "public_ip", b->out, b->size);
	return 1;
}

bool api_address_of_instance(const struct api_call *call,
                             const char *instance_id, char *out, size_t size)
{
	out[0] = '\0';
	struct by_instance b = {instance_id, out, size};
	return api_res_each(call, API_KIND_ADDRESS, by_instance_one, &b) == 1 &&
	       out[0];
}

void api_address_association_xml(struct mc_buf *o, const struct api_call *call,
                                 const char *public_ip)
{
	api_xml_open(o, "association");
	api_xml_elem(o, "publicIp", public_ip);
	api_xml_elem(o, "publicDnsName", "");
	api_xml_elem(o, "ipOwnerId", call->auth->key.account_id);
	api_xml_close(o, "association");
}

/* ---- parameters --------------------------------------------------------- */

/* A single-valued parameter, also when sent indexed (Name.1); NULL when
 * absent or empty. */
const char *api_param_single(const struct api_call *call, const char *name)
{
	const char *v = api_params_get(call->params, name);
	const char *vals[1];
	if (!v && api_params_list(call->params, name, vals, 1) >= 1)
		v = vals[0];
	return v && v[0] ? v : NULL;
}

/*
 * The address a request names by AllocationId or PublicIp (exactly one)
 * into *out, its association settled. 0, or -1 with call->err.
 */
int api_address_param(struct api_call *call, struct api_address *out)
{
	const char *alloc = api_param_single(call, "AllocationId");
	const char *ip = api_param_single(call, "PublicIp");
	if (alloc && ip)
		return api_error_set(&call->err, "InvalidParameterCombination",
		                     "You may specify a public IP or an "
		                     "allocation id, but not both in the same "
		                     "call");
	if (!alloc && !ip)
		return api_error_set(&call->err, "MissingParameter",
		                     "Either public IP or allocation id must "
		                     "be specified");
	if (alloc && !api_res_id_valid("eipalloc", alloc))
		return api_error_set(&call->err,
		                     "InvalidAllocationID.Malformed",
		                     "Invalid id: \"%s\" (expecting "
		                     "\"eipalloc-...\")",
		                     alloc);
	int r = address_find(call, alloc, ip, out);
	if (r == -ENOENT && alloc)
		return api_error_set(&call->err, "InvalidAllocationID.NotFound",
		                     "The allocation ID '%s' does not exist",
		                     alloc);
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidAddress.NotFound",
		                     "Address '%s' not found.", ip);
	if (r)
		return api_res_failed(call, r);
	address_settle(call, out);
	return 0;
}

static void return_true(struct api_call *call, const char *action)
{
	api_xml_response_begin(call->out, action, call->version,
	                       call->request_id);
	api_xml_elem_bool(call->out, "return", true);
	api_xml_response_end(call->out, action);
}

/* ---- AssociateAddress --------------------------------------------------- */

/* The instance whose ENI id is eni (ENIs are derived, not stored). 0 and
 * out, or -1 with call->err. */
static int instance_of_eni(struct api_call *call, const char *eni, char out[32])
{
	struct api_instance_list l;
	int r = api_instance_list_take(call, &l);
	if (r)
		return api_res_failed(call, r);
	int rc =
	    api_error_set(&call->err, "InvalidNetworkInterfaceID.NotFound",
	                  "The networkInterface ID '%s' does not exist", eni);
	for (size_t i = 0; i < l.n; i++) {
		char id[32];
		instance_eni(l.items[i].id, id);
		if (strcmp(id, eni) == 0) {
			snprintf(out, 32, "%s", l.items[i].id);
			rc = 0;
			break;
		}
	}
	api_instance_list_free(&l);
	return rc;
}

/* The instance the request names (InstanceId or NetworkInterfaceId) into
 * *in; 0, or -1 with call->err. */
static int associate_target(struct api_call *call, struct mc_instance *in)
{
	const char *id = api_param_single(call, "InstanceId");
	const char *eni = api_param_single(call, "NetworkInterfaceId");
	char from_eni[32];
	if (id && eni)
		return api_error_set(&call->err, "InvalidParameterCombination",
		                     "You may specify an instance ID or a "
		                     "network interface ID, but not both");
	if (!id && !eni)
		return api_error_set(&call->err, "MissingParameter",
		                     "Either instance ID or network interface "
		                     "id must be specified");
	if (id && !api_res_id_valid("i", id))
		return api_error_set(&call->err, "InvalidInstanceID.Malformed",
		                     "Invalid id: \"%s\" (expecting \"i-...\")",
		                     id);
	if (eni) {
		if (instance_of_eni(call, eni, from_eni) < 0)
			return -1;
		id = from_eni;
	}
	int r = api_instance_load(call, id, in);
	if (r == -ENOENT)
		return api_error_set(&call->err, "InvalidInstanceID.NotFound",
		                     "The instance ID '%s' does not exist", id);
	if (r)
		return api_res_failed(call, r);
	if (in->state == MC_INST_TERMINATED ||
	    in->state == MC_INST_SHUTTING_DOWN || !in->private_ip[0]) {
		api_error_set(&call->err, "IncorrectInstanceState",
		              "The instance '%s' is not in a valid state for "
		              "this operation (%s).",
		              id, mc_instance_state_name(in->state));
		mc_instance_clear(in);
		return -1;
	}
	const char *priv = api_param_single(call, "PrivateIpAddress");
	if (priv && strcmp(priv, in->private_ip) != 0) {
		api_error_set(&call->err, "InvalidParameterValue",
		              "The private IP address %s is not assigned to "
		              "instance %s.",
		              priv, id);
		mc_instance_clear(in);
		return -1;
	}
	return 0;
}

/*
 * Another of the caller's addresses already associated with the instance,
 * into *other; false when none. One instance has one primary private
 * address, and the gateway forwards (and SNATs) one public address to it.
 */
static int other_address(struct api_call *call, const struct api_address *a,
                         const char *instance_id, struct api_address *other,
                         bool *found)
{
	struct address_list l;
	int r = address_list_take(call, &l);
	if (r)
		return api_res_failed(call, r);
	*found = false;
	for (size_t i = 0; i < l.n && !*found; i++) {
		struct api_address *x = &l.items[i];
		if (strcmp(x->resid, a->resid) == 0 ||
		    strcmp(x->instance_id, instance_id) != 0)
			continue;
		address_settle(call, x);
		if (x->association_id[0]) {
			*other = *x;
			*found = true;
		}
	}
	address_list_free(&l);
	return 0;
}

int api_action_associate_address(struct api_call *call)
{
	struct api_address a, other;
	struct mc_instance in;
	bool allow, has_other = false;
	if (api_param_bool(call, "AllowReassociation", false, &allow) < 0 ||
	    api_address_param(call, &a) < 0)
		return -1;
	if (associate_target(call, &in) < 0)
		return -1;
	int rc = -1;
	if (api_dry_run(call) ||
	    other_address(call, &a, in.id, &other, &has_other) < 0)
		goto out;
	bool same = a.association_id[0] && strcmp(a.instance_id, in.id) == 0 &&
	            strcmp(a.private_ip, in.private_ip) == 0;
	/*
	 * Without AllowReassociation neither this address may leave another
	 * instance nor may the instance give up another address; with it
	 * both move, the other address staying allocated (as EC2 did).
	 */
	if (!allow && a.association_id[0] && !same) {
		api_error_set(&call->err, "Resource.AlreadyAssociated",
		              "The address %s is already associated with "
		              "instance %s.",
		              a.public_ip, a.instance_id);
		goto out;
	}
	if (!allow && has_other) {
		api_error_set(&call->err, "Resource.AlreadyAssociated",
		              "The instance %s is already associated with the "
		              "address %s.",
		              in.id, other.public_ip);
		goto out;
	}
	if (has_other) {
		address_disassociate(&other);
		int r = api_address_store(call, &other);
		if (r) {
			api_res_failed(call, r);
			goto out;
		}
	}
	if (!same) {
		api_res_new_id("eipassoc", a.association_id,
		               sizeof(a.association_id));
		snprintf(a.instance_id, sizeof(a.instance_id), "%s", in.id);
		snprintf(a.private_ip, sizeof(a.private_ip), "%s",
		         in.private_ip);
	}
	int r = api_address_store(call, &a);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	api_xml_response_begin(call->out, "AssociateAddress", call->version,
	                       call->request_id);
	api_xml_elem_bool(call->out, "return", true);
	api_xml_elem(call->out, "associationId", a.association_id);
	api_xml_response_end(call->out, "AssociateAddress");
	rc = 0;
out:
	mc_instance_clear(&in);
	return rc;
}

/* ---- DisassociateAddress ------------------------------------------------ */

/* The caller's address with association assoc (settled) into *out. */
static int address_by_association(struct api_call *call, const char *assoc,
                                  struct api_address *out)
{
	struct address_list l;
	int r = address_list_take(call, &l);
	if (r)
		return api_res_failed(call, r);
	bool found = false;
	for (size_t i = 0; i < l.n && !found; i++)
		if (strcmp(l.items[i].association_id, assoc) == 0) {
			*out = l.items[i];
			address_settle(call, out);
			found = out->association_id[0] != '\0';
		}
	address_list_free(&l);
	if (!found)
		return api_error_set(
		    &call->err, "InvalidAssociationID.NotFound",
		    "The association ID '%s' does not exist", assoc);
	return 0;
}

int api_action_disassociate_address(struct api_call *call)
{
	const char *assoc = api_param_single(call, "AssociationId");
	const char *ip = api_param_single(call, "PublicIp");
	struct api_address a;
	if (assoc && ip)
		return api_error_set(&call->err, "InvalidParameterCombination",
		                     "You may specify a public IP or an "
		                     "association id, but not both in the "
		                     "same call");
	if (!assoc && !ip)
		return api_error_set(&call->err, "MissingParameter",
		                     "Either public IP or association id must "
		                     "be specified");
	if (assoc) {
		if (!api_res_id_valid("eipassoc", assoc))
			return api_error_set(
			    &call->err, "InvalidAssociationID.NotFound",
			    "The association ID '%s' does not exist", assoc);
		if (address_by_association(call, assoc, &a) < 0)
			return -1;
	} else if (api_address_param(call, &a) < 0) {
		return -1;
	}
	if (api_dry_run(call))
		return -1;
	/* An address that is not associated (by PublicIp) stays so: EC2
	 * answers true. The record is still rewritten to clear a stale
	 * association left by a terminated instance. */
	address_disassociate(&a);
	int r = api_address_store(call, &a);
	if (r)
		return api_res_failed(call, r);
	return_true(call, "DisassociateAddress");
	return 0;
}

/* ---- DescribeAddresses -------------------------------------------------- */

struct address_fields {
	char eni[32];
	struct api_field f[10];
};

static void address_fields(const struct api_call *call,
                           const struct api_address *a,
                           struct address_fields *af)
{
	bool assoc = a->association_id[0] != '\0';
	af->eni[0] = '\0';
	if (assoc)
		instance_eni(a->instance_id, af->eni);
#define V(s) (assoc && (s)[0] ? (s) : NULL)
	const struct api_field f[] = {
	    {"allocation-id", a->resid},
	    {"association-id", V(a->association_id)},
	    {"instance-id", V(a->instance_id)},
	    {"public-ip", a->public_ip},
	    {"private-ip-address", V(a->private_ip)},
	    {"domain", a->domain},
	    {"network-border-group", call->cfg->region},
	    {"network-interface-id", V(af->eni)},
	    {"network-interface-owner-id",
	     assoc ? call->auth->key.account_id : NULL},
	    {"public-ipv4-pool", API_ADDRESS_POOL},
	};
#undef V
	memcpy(af->f, f, sizeof(f));
}

static void address_xml(struct api_call *call, const struct api_address *a,
                        const struct api_tags *tags)
{
	struct mc_buf *o = call->out;
	api_xml_open(o, "item");
	api_xml_elem(o, "publicIp", a->public_ip);
	api_xml_elem(o, "allocationId", a->resid);
	api_xml_elem(o, "domain", a->domain);
	if (a->association_id[0]) {
		char eni[32];
		instance_eni(a->instance_id, eni);
		api_xml_elem(o, "instanceId", a->instance_id);
		api_xml_elem(o, "associationId", a->association_id);
		api_xml_elem(o, "networkInterfaceId", eni);
		api_xml_elem(o, "networkInterfaceOwnerId",
		             call->auth->key.account_id);
		api_xml_elem(o, "privateIpAddress", a->private_ip);
	}
	api_xml_tag_set(o, tags);
	api_xml_elem(o, "publicIpv4Pool", API_ADDRESS_POOL);
	api_xml_elem(o, "networkBorderGroup", call->cfg->region);
	api_xml_close(o, "item");
}

/* The ids the request names, and which of them were found. */
struct wanted {
	const char **ips, **allocs;
	size_t n_ips, n_allocs;
	bool *ip_seen, *alloc_seen;
};

static void wanted_free(struct wanted *w)
{
	free(w->ips);
	free(w->allocs);
	free(w->ip_seen);
	free(w->alloc_seen);
}

static int wanted_parse(struct api_call *call, struct wanted *w)
{
	w->ips = xcalloc(IDS_MAX, sizeof(char *));
	w->allocs = xcalloc(IDS_MAX, sizeof(char *));
	w->ip_seen = xcalloc(IDS_MAX, sizeof(bool));
	w->alloc_seen = xcalloc(IDS_MAX, sizeof(bool));
	w->n_ips = api_params_list(call->params, "PublicIp", w->ips, IDS_MAX);
	w->n_allocs =
	    api_params_list(call->params, "AllocationId", w->allocs, IDS_MAX);
	if (w->n_ips > IDS_MAX || w->n_allocs > IDS_MAX)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Too many ids (at most %d).", IDS_MAX);
	for (size_t i = 0; i < w->n_allocs; i++)
		if (!api_res_id_valid("eipalloc", w->allocs[i]))
			return api_error_set(&call->err,
			                     "InvalidAllocationID.Malformed",
			                     "Invalid id: \"%s\" (expecting "
			                     "\"eipalloc-...\")",
			                     w->allocs[i]);
	return 0;
}

/* Whether the request lists a (or lists nothing); marks what it matched. */
static bool wanted_take(struct wanted *w, const struct api_address *a)
{
	bool listed = w->n_ips == 0 && w->n_allocs == 0;
	for (size_t i = 0; i < w->n_ips; i++)
		if (strcmp(w->ips[i], a->public_ip) == 0)
			listed = w->ip_seen[i] = true;
	for (size_t i = 0; i < w->n_allocs; i++)
		if (strcmp(w->allocs[i], a->resid) == 0)
			listed = w->alloc_seen[i] = true;
	return listed;
}

/* EC2's NotFound for the first kind of id with unknown ones (allocation
 * ids first), naming each; 0 when all were found. */
static int wanted_missing(struct api_call *call, const struct wanted *w)
{
	struct mc_buf list;
	mc_buf_init(&list);
	size_t n = 0;
	bool allocs = true;
	for (size_t i = 0; i < w->n_allocs; i++)
		if (!w->alloc_seen[i])
			mc_buf_printf(&list, "%s%s", n++ ? ", " : "",
			              w->allocs[i]);
	if (n == 0) {
		allocs = false;
		for (size_t i = 0; i < w->n_ips; i++)
			if (!w->ip_seen[i])
				mc_buf_printf(&list, "%s%s", n++ ? ", " : "",
				              w->ips[i]);
	}
	mc_buf_put_u8(&list, 0);
	int rc = 0;
	if (n && allocs)
		rc = api_error_set(&call->err, "InvalidAllocationID.NotFound",
		                   "The allocation ID%s '%s' do%s not exist",
		                   n > 1 ? "s" : "", (const char *)list.data,
		                   n > 1 ? "" : "es");
	else if (n)
		rc = api_error_set(&call->err, "InvalidAddress.NotFound",
		                   "Address%s '%s' not found.",
		                   n > 1 ? "es" : "", (const char *)list.data);
	mc_buf_free(&list);
	return rc;
}

int api_action_describe_addresses(struct api_call *call)
{
	struct wanted w = {0};
	struct api_filters fs = {0};
	struct address_list l = {0};
	struct api_tag_index ix = {0};
	bool *show = NULL;
	int rc = -1;
	if (wanted_parse(call, &w) < 0 ||
	    api_filters_parse(call->params, &fs, &call->err) < 0)
		goto out;
	/* Unknown filter names fail even without addresses. */
	struct api_address probe = {.resid = "eipalloc-00000000"};
	struct address_fields af;
	struct api_tags tags = {.n = 0};
	bool m;
	address_fields(call, &probe, &af);
	if (api_filters_match(call, &fs, af.f, 10, &tags, &m) < 0 ||
	    api_dry_run(call))
		goto out;
	int r = address_list_take(call, &l);
	if (r == 0)
		r = api_tag_index_add(call, "eipalloc-", &ix);
	if (r) {
		api_res_failed(call, r);
		goto out;
	}
	api_tag_index_sort(&ix);
	show = xcalloc(l.n + 1, sizeof(*show));
	for (size_t i = 0; i < l.n; i++) {
		struct api_address *a = &l.items[i];
		address_settle(call, a);
		address_fields(call, a, &af);
		api_tag_index_get(&ix, a->resid, &tags);
		if (api_filters_match(call, &fs, af.f, 10, &tags, &m) < 0)
			goto out;
		show[i] = wanted_take(&w, a) && m;
	}
	if (wanted_missing(call, &w) < 0)
		goto out;
	api_xml_response_begin(call->out, "DescribeAddresses", call->version,
	                       call->request_id);
	api_xml_open(call->out, "addressesSet");
	for (size_t i = 0; i < l.n; i++) {
		if (!show[i])
			continue;
		api_tag_index_get(&ix, l.items[i].resid, &tags);
		address_xml(call, &l.items[i], &tags);
	}
	api_xml_close(call->out, "addressesSet");
	api_xml_response_end(call->out, "DescribeAddresses");
	rc = 0;
out:
	free(show);
	api_tag_index_free(&ix);
	address_list_free(&l);
	api_filters_free(&fs);
	wanted_free(&w);
	return rc;
}
