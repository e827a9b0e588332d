/*
 * Where elastic IPs come from and go back to: AllocateAddress picks the
 * lowest free address over the pools gateway peers announce and claims
 * it, ReleaseAddress gives it back (records: action_address.c).
 */
#include "apiedge_int.h"

#include "hlc.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_ID_MAX  128
#define ADDR_TEXT_MAX  16 /* "255.255.255.255" */
#define CLAIM_TRIES    16
#define CLAIM_STALE_MS (60 * 1000ULL)
#define ADDRESS_RTYPE  "elastic-ip"

static void str_field(const struct mc_val *v, const char *key, char *out,
                      size_t size)
{
	if (!mc_get_str(v, key, out, size))
		out[0] = '\0';
}

static bool ip_parse(const char *text, uint32_t *out)
{
	struct in_addr a;
	if (!text || inet_pton(AF_INET, text, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

static void ip_format(uint32_t ip, char out[ADDR_TEXT_MAX])
{
	snprintf(out, ADDR_TEXT_MAX, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
	         (ip >> 8) & 0xff, ip & 0xff);
}

/* The account's addresses so far: *n, or -1 with call->err. */
static int address_count(struct api_call *call, size_t *n)
{
	int r = api_address_count(call, n);
	return r ? api_res_failed(call, r) : 0;
}

/* ---- AllocateAddress ---------------------------------------------------- */

struct pool {
	char peer[RECORD_ID_MAX + 1];
	char zone[API_ZONE_NAME_MAX];
	uint32_t first, last;
};

/* What allocation sees of the whole cloud: every pool, every address in
 * use (any account's record or a live claim), sorted. */
struct supply {
	struct pool *pools;
	size_t n_pools, cap_pools;
	uint32_t *used;
	size_t n_used, cap_used;
	uint64_t now;
};

static void supply_use(struct supply *s, uint32_t ip)
{
	if (s->n_used == s->cap_used) {
		s->cap_used = s->cap_used ? 2 * s->cap_used : 64;
		s->used = xrealloc(s->used, s->cap_used * sizeof(*s->used));
	}
	s->used[s->n_used++] = ip;
}

static int pool_one(void *ctx, const char *id, const uint8_t *body, size_t len)
{
	struct supply *s = ctx;
	struct mc_doc *doc = mc_unpack(body, len);
	const struct mc_val *v = doc ? mc_doc_root(doc) : NULL;
	char first[ADDR_TEXT_MAX], last[ADDR_TEXT_MAX];
	struct pool p = {0};
	if (v && mc_get_str(v, "first", first, sizeof(first)) &&
	    mc_get_str(v, "last", last, sizeof(last)) &&
	    ip_parse(first, &p.first) && ip_parse(last, &p.last) &&
	    p.first <= p.last) {
		snprintf(p.peer, sizeof(p.peer), "%s", id);
		str_field(v, "zone", p.zone, sizeof(p.zone));
		if (s->n_pools == s->cap_pools) {
			s->cap_pools = s->cap_pools ? 2 * s->cap_pools : 8;
			s->pools = xrealloc(s->pools,
			                    s->cap_pools * sizeof(*s->pools));
		}
		s->pools[s->n_pools++] = p;
	}
	mc_doc_free(doc);
	return 0; /* a pool we cannot read offers nothing */
}

static int used_address_one(void *ctx, const char *id, const uint8_t *body,
                            size_t len)
{
	(void)id;
	struct supply *s = ctx;
	struct mc_doc *doc = mc_unpack(body, len);
	char text[ADDR_TEXT_MAX];
	uint32_t ip;
	if (doc &&
	    mc_get_str(mc_doc_root(doc), "public_ip", text, sizeof(text)) &&
	    ip_parse(text, &ip))
		supply_use(s, ip);
	mc_doc_free(doc);
	return 0;
}

/*
 * A claim holds its address unless it is older than CLAIM_STALE_MS: then
 * either an address record holds the address too (listed above), or the
 * edge that wrote it died between the claim and the record, and the
 * address is free again.
 */
static int claim_one(void *ctx, const char *id, const uint8_t *body, size_t len)
{
	struct supply *s = ctx;
	struct mc_doc *doc = mc_unpack(body, len);
	uint64_t created = 0;
	uint32_t ip;
	if (doc)
		mc_get_uint(mc_doc_root(doc), "created", &created);
	if (ip_parse(id, &ip) && created + CLAIM_STALE_MS > s->now)
		supply_use(s, ip);
	mc_doc_free(doc);
	return 0;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static bool supply_is_used(const struct supply *s, uint32_t ip)
{
	return bsearch(&ip, s->used, s->n_used, sizeof(ip), u32_cmp) != NULL;
}

static void supply_free(struct supply *s)
{
	free(s->pools);
	free(s->used);
	memset(s, 0, sizeof(*s));
}

static int supply_take(const struct api_call *call, struct supply *s)
{
	const struct api_cloud *c = call->cloud;
	memset(s, 0, sizeof(*s));
	s->now = mc_wall_ms();
	s->cap_used = 64;
	s->used = xmalloc(s->cap_used * sizeof(*s->used));
	int r = c->list(c->arg, API_KIND_PUBLIC_POOL, "", pool_one, s);
	if (r == 0)
		r = c->list(c->arg, API_KIND_ADDRESS, "", used_address_one, s);
	if (r == 0)
		r = c->list(c->arg, API_KIND_PUBLIC_IP, "", claim_one, s);
	if (r)
		supply_free(s);
	else
		qsort(s->used, s->n_used, sizeof(*s->used), u32_cmp);
	return r;
}

/* The lowest free address over every pool; false when none is left. */
static bool supply_pick(const struct supply *s, uint32_t *ip,
                        const struct pool **from)
{
	bool found = false;
	for (size_t i = 0; i < s->n_pools; i++) {
		const struct pool *p = &s->pools[i];
		/* Each step skips a used address: at most n_used steps. */
		uint32_t a = p->first;
		while (supply_is_used(s, a) && a < p->last)
			a++;
		if (supply_is_used(s, a) || (found && a >= *ip))
			continue;
		*ip = a;
		*from = p;
		found = true;
	}
	return found;
}

/*
 * Claims ip for key (the address record's id). The claim is checked before
 * it is written and read back after; records merge last-writer-wins, so
 * two edges that claim the same address within one gossip round can still
 * both believe they won, each reading back its own write before the
 * other's arrives. That window is narrow (the lowest free address is
 * contended only by simultaneous allocations on different edges) and is
 * left open: closing it needs an ordering between peers the record layer
 * does not give. 1 claimed, 0 taken by another, or a negative errno.
 */
static int claim(const struct api_call *call, const char *ip, const char *key,
                 uint64_t now)
{
	const struct api_cloud *c = call->cloud;
	uint8_t *body = NULL;
	size_t len = 0;
	char holder[RECORD_ID_MAX + 1];
	int r = c->get(c->arg, API_KIND_PUBLIC_IP, ip, &body, &len);
	if (r == 0) {
		struct mc_doc *doc = mc_unpack(body, len);
		uint64_t created = 0;
		bool held = doc && mc_get_str(mc_doc_root(doc), "allocation",
		                              holder, sizeof(holder));
		if (doc)
			mc_get_uint(mc_doc_root(doc), "created", &created);
		mc_doc_free(doc);
		free(body);
		body = NULL;
		if (held && strcmp(holder, key) != 0 &&
		    created + CLAIM_STALE_MS > now)
			return 0;
	} else if (r != -ENOENT) {
		return r;
	}
	struct mc_buf b;
	mc_buf_init(&b);
	mc_pack_map(&b, 2);
	mc_pack_kv_str(&b, "allocation", key);
	mc_pack_kv_uint(&b, "created", now);
	r = c->put(c->arg, API_KIND_PUBLIC_IP, ip, b.data, b.len);
	mc_buf_free(&b);
	if (r)
		return r;
	r = c->get(c->arg, API_KIND_PUBLIC_IP, ip, &body, &len);
	if (r)
		return r == -ENOENT ? 0 : r;
	struct mc_doc *doc = mc_unpack(body, len);
	free(body);
	bool ours = doc &&
	            mc_get_str(mc_doc_root(doc), "allocation", holder,
	                       sizeof(holder)) &&
	            strcmp(holder, key) == 0;
	mc_doc_free(doc);
	return ours;
}

/* Removes the claim of ip if key holds it. */
static void unclaim(const struct api_call *call, const char *ip,
                    const char *key)
{
	const struct api_cloud *c = call->cloud;
	uint8_t *body = NULL;
	size_t len = 0;
	char holder[RECORD_ID_MAX + 1];
	if (c->get(c->arg, API_KIND_PUBLIC_IP, ip, &body, &len) != 0)
		return;
	struct mc_doc *doc = mc_unpack(body, len);
	free(body);
	if (doc &&
	    mc_get_str(mc_doc_root(doc), "allocation", holder,
	               sizeof(holder)) &&
	    strcmp(holder, key) == 0)
		c->del(c->arg, API_KIND_PUBLIC_IP, ip);
	mc_doc_free(doc);
}

static int allocate_check(struct api_call *call, const char **domain)
{
	const char *nbg = api_param_single(call, "NetworkBorderGroup");
	const char *pool = api_param_single(call, "PublicIpv4Pool");
	*domain = api_param_single(call, "Domain");
	if (!*domain)
		*domain = "vpc"; /* EC2-Classic is gone: every account is VPC */
	if (strcmp(*domain, "vpc") != 0 && strcmp(*domain, "standard") != 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Value (%s) for parameter domain is "
		                     "invalid. Expected: 'vpc' or 'standard'.",
		                     *domain);
	if (nbg && strcmp(nbg, call->cfg->region) != 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Network border group '%s' is not valid "
		                     "in this region (%s).",
		                     nbg, call->cfg->region);
	if (pool && strcmp(pool, API_ADDRESS_POOL) != 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Public IPv4 pool '%s' does not exist; "
		                     "this cloud has only '" API_ADDRESS_POOL
		                     "'.",
		                     pool);
	if (api_param_single(call, "Address") ||
	    api_param_single(call, "CustomerOwnedIpv4Pool"))
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Allocating a specific address or from a "
		                     "customer-owned pool is not supported.");
	return api_tag_specs_check(call, ADDRESS_RTYPE);
}

/*
 * Picks and claims the lowest free address into *a (public_ip, pool_peer,
 * zone). 0, or -1 with call->err: EC2 answers an exhausted address supply
 * with InsufficientAddressCapacity (one of its server error codes), which
 * is what an empty or missing pool is here; AddressLimitExceeded is for
 * the per-account limit only.
 */
static int allocate_pick(struct api_call *call, struct api_address *a,
                         const char *key)
{
	struct supply s;
	int r = supply_take(call, &s);
	if (r)
		return api_res_failed(call, r);
	int rc = -1;
	for (int tries = 0; tries < CLAIM_TRIES; tries++) {
		uint32_t ip = 0;
		const struct pool *p = NULL;
		if (!supply_pick(&s, &ip, &p))
			break;
		ip_format(ip, a->public_ip);
		r = claim(call, a->public_ip, key, s.now);
		if (r < 0) {
			rc = api_res_failed(call, r);
			goto out;
		}
		if (r == 1) {
			snprintf(a->pool_peer, sizeof(a->pool_peer), "%s",
			         p->peer);
			snprintf(a->zone, sizeof(a->zone), "%s", p->zone);
			rc = 0;
			goto out;
		}
		/* Another edge holds it: take the next one. */
		supply_use(&s, ip);
		qsort(s.used, s.n_used, sizeof(*s.used), u32_cmp);
	}
	api_error_set(&call->err, "InsufficientAddressCapacity",
	              s.n_pools ? "There are no free public addresses in the "
	                          "pools of this cloud's gateways."
	                        : "No gateway of this cloud offers public "
	                          "addresses (--public-pool).");
out:
	supply_free(&s);
	return rc;
}

int api_action_allocate_address(struct api_call *call)
{
	const char *domain;
	size_t n = 0;
	if (allocate_check(call, &domain) < 0 || api_dry_run(call) ||
	    address_count(call, &n) < 0)
		return -1;
	if (n >= API_ADDRESSES_MAX)
		return api_error_set(&call->err, "AddressLimitExceeded",
		                     "The maximum number of addresses has been "
		                     "reached.");
	struct api_address a = {.created_ms = mc_wall_ms()};
	char key[RECORD_ID_MAX + 1];
	api_res_new_id("eipalloc", a.resid, sizeof(a.resid));
	snprintf(a.domain, sizeof(a.domain), "%s", domain);
	if (!api_res_key(call, a.resid, key, sizeof(key)))
		return api_res_failed(call, EINVAL);
	if (allocate_pick(call, &a, key) < 0)
		return -1;
	int r = api_address_store(call, &a);
	if (r) {
		unclaim(call, a.public_ip, key);
		return api_res_failed(call, r);
	}
	if (api_tag_specs_apply(call, ADDRESS_RTYPE, a.resid) < 0)
		return -1;
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, "AllocateAddress", call->version,
	                       call->request_id);
	api_xml_elem(o, "publicIp", a.public_ip);
	api_xml_elem(o, "domain", a.domain);
	api_xml_elem(o, "allocationId", a.resid);
	api_xml_elem(o, "publicIpv4Pool", API_ADDRESS_POOL);
	api_xml_elem(o, "networkBorderGroup", call->cfg->region);
	api_xml_response_end(o, "AllocateAddress");
	return 0;
}

/* ---- ReleaseAddress ----------------------------------------------------- */

int api_action_release_address(struct api_call *call)
{
	struct api_address a;
	const char *nbg = api_param_single(call, "NetworkBorderGroup");
	if (api_address_param(call, &a) < 0)
		return -1;
	if (nbg && strcmp(nbg, call->cfg->region) != 0)
		return api_error_set(&call->err, "InvalidParameterValue",
		                     "Network border group '%s' is not valid "
		                     "in this region (%s).",
		                     nbg, call->cfg->region);
	if (a.association_id[0])
		return api_error_set(&call->err, "InvalidIPAddress.InUse",
		                     "Address %s is in use.",
		                     api_param_single(call, "AllocationId")
		                         ? a.resid
		                         : a.public_ip);
	if (api_dry_run(call))
		return -1;
	char key[RECORD_ID_MAX + 1];
	if (!api_res_key(call, a.resid, key, sizeof(key)))
		return api_res_failed(call, EINVAL);
	/* The record first: the gateway stops forwarding it, and the address
	 * is free once the claim goes too. */
	int r = api_res_remove(call, API_KIND_ADDRESS, a.resid);
	if (r)
		return api_res_failed(call, r);
	unclaim(call, a.public_ip, key);
	api_xml_response_begin(call->out, "ReleaseAddress", call->version,
	                       call->request_id);
	api_xml_elem_bool(call->out, "return", true);
	api_xml_response_end(call->out, "ReleaseAddress");
	return 0;
}
