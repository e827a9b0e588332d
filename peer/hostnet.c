/*
 * Host networking: the bridge, this host's /24 slice of the cloud's private
 * CIDR, the leases of the instances in it, and the DHCP and metadata
 * servers on the bridge.
 *
 * Slices are claimed through replicated records (kind "slice", id the
 * slice's network, body {host: peer id}). A peer starts at a slice picked
 * by hashing its id and probes forward past slices others hold. Two peers
 * may claim one slice at the same moment; each re-reads its claim a gossip
 * round later and then every so often, and when the record names another
 * peer the one with the greater id moves on while the smaller re-asserts
 * its claim (so the two cannot both keep it, nor both leave it).
 *
 * A lease is a host number .2-.254 of the slice per instance id, kept in
 * this peer's store meta ("hostnet-lease-N" = instance id, "" when free),
 * so a restarted peer hands out the same addresses. The MAC is derived
 * from the address (02:00 + its four bytes), so it is unique cloud-wide
 * and the DHCP server finds the lease from the MAC alone.
 */
#include "hostnet.h"

#include "conntrack.h"
#include "crypto.h"
#include "dhcp.h"
#include "hostnet_int.h"
#include "imds.h"
#include "instance.h"
#include "instances.h"
#include "log.h"
#include "mem.h"
#include "overlay.h"
#include "peer.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_KIND       "slice"
#define SLICE_META       "hostnet-slice"
#define LEASE_META       "hostnet-lease-%u"
#define LEASE_FIRST      2
#define LEASE_LAST       254
#define METADATA_ADDR    0xa9fea9feu /* 169.254.169.254 */
#define CLAIM_CHECK_MS   3000        /* a few gossip rounds */
#define CLAIM_RECHECK_MS 30000
#define LEASE_TIME_S     86400
#define DEFAULT_MTU      1500

struct peer_hostnet {
	struct peer *p;
	peer_hostnet_addr_cb on_addr;
	char bridge[IFNAMSIZ];
	int ifindex;
	struct mc_cidr cloud;
	uint32_t slice; /* network of the /24, host byte order; 0: none */
	bool confirmed;
	unsigned checks_held; /* checks that found the claim ours, in a row */
	uint16_t mtu;
	uv_timer_t claim_timer;
	struct peer_dhcp *dhcp;
	struct api_imds *imds;
	char leases[256][MC_INSTANCE_ID_LEN + 1]; /* by host number */
	bool announced[256];
	unsigned closing; /* handles still closing */
};

static void ip_text(uint32_t ip, char out[16])
{
	struct in_addr a = {.s_addr = htonl(ip)};
	inet_ntop(AF_INET, &a, out, 16);
}

static void mac_of(uint32_t ip, char out[18])
{
	snprintf(out, 18, "02:00:%02x:%02x:%02x:%02x", ip >> 24,
	         (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

int peer_hostnet_tap_name(const char *ip, char out[16])
{
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -EINVAL;
	snprintf(out, 16, PEER_TAP_PREFIX "%08x", (unsigned)ntohl(a.s_addr));
	return 0;
}

/* ---- Slices ------------------------------------------------------------- */

static uint32_t n_slices(const struct peer_hostnet *h)
{
	return 1u << (24 - h->cloud.prefix);
}

static uint32_t slice_net(const struct peer_hostnet *h, uint32_t k)
{
	return h->cloud.network + (k << 8);
}

/* Who holds the slice at net: the peer id into holder ("" when free). */
static void slice_holder(struct peer_hostnet *h, uint32_t net,
                         char holder[PEER_ID_HEX_LEN + 1])
{
	struct peer_record r;
	char id[16];
	holder[0] = '\0';
	ip_text(net, id);
	if (peer_store_get(h->p->store, SLICE_KIND, id, &r) != 0)
		return;
	if (!r.deleted) {
		struct mc_doc *doc = mc_unpack(r.body, r.body_len);
		if (doc && !mc_get_str(mc_doc_root(doc), "host", holder,
		                       PEER_ID_HEX_LEN + 1))
			holder[0] = '\0';
		mc_doc_free(doc);
	}
	peer_record_clear(&r);
}

static int slice_claim(struct peer_hostnet *h, uint32_t net)
{
	struct mc_buf b;
	char id[16];
	ip_text(net, id);
	mc_buf_init(&b);
	mc_pack_map(&b, 1);
	mc_pack_kv_str(&b, "host", h->p->id);
	int r = peer_records_put(&h->p->writer, SLICE_KIND, id, b.data, b.len,
	                         NULL);
	mc_buf_free(&b);
	if (r == 0)
		peer_store_meta_set(h->p->store, SLICE_META, id);
	return r;
}

/* The first slice from k on that no other peer holds; 0 when all are. */
static uint32_t slice_probe(struct peer_hostnet *h, uint32_t k)
{
	char holder[PEER_ID_HEX_LEN + 1];
	for (uint32_t i = 0; i < n_slices(h); i++) {
		uint32_t net = slice_net(h, (k + i) % n_slices(h));
		slice_holder(h, net, holder);
		if (!holder[0] || strcmp(holder, h->p->id) == 0)
			return net;
	}
	return 0;
}

static struct peer_dhcp_config dhcp_config(const struct peer_hostnet *h)
{
	struct peer_dhcp_config c = {
	    .server_ip = h->slice + 1,
	    .netmask = 0xffffff00u,
	    .broadcast = h->slice | 255,
	    .lease_s = LEASE_TIME_S,
	    .mtu = h->mtu,
	};
	return c;
}

/* Puts the slice's .1/24 on the bridge, the old slice's off. */
static int slice_use(struct peer_hostnet *h, uint32_t net)
{
	uint32_t old = h->slice;
	int r = peer_link_addr_add(h->ifindex, net + 1, 24);
	if (r)
		return r;
	if (old && old != net)
		peer_link_addr_del(h->ifindex, old + 1, 24);
	h->slice = net;
	if (h->dhcp) {
		struct peer_dhcp_config c = dhcp_config(h);
		peer_dhcp_set_config(h->dhcp, &c);
	}
	return 0;
}

static void on_claim_check(uv_timer_t *t)
{
	struct peer_hostnet *h = t->data;
	char holder[PEER_ID_HEX_LEN + 1], net[16];
	ip_text(h->slice, net);
	slice_holder(h, h->slice, holder);
	if (!holder[0] || strcmp(holder, h->p->id) > 0) {
		/* Lost to a greater id (or the claim vanished): ours by the
		 * rule, so say it again with a newer stamp. */
		if (holder[0])
			mc_info("hostnet", "slice %s/24: re-asserting over %s",
			        net, holder);
		slice_claim(h, h->slice);
		h->confirmed = false;
		h->checks_held = 0;
		uv_timer_start(&h->claim_timer, on_claim_check, CLAIM_CHECK_MS,
		               0);
		return;
	}
	if (strcmp(holder, h->p->id) == 0) {
		/*
		 * One check is not enough: a smaller id that claimed the
		 * same slice re-asserts at its own first check, which may
		 * not have reached us yet. A second check a gossip round
		 * later sees it.
		 */
		if (!h->confirmed && ++h->checks_held < 2) {
			uv_timer_start(&h->claim_timer, on_claim_check,
			               CLAIM_CHECK_MS, 0);
			return;
		}
		if (!h->confirmed)
			mc_info("hostnet", "slice %s/24 is this host's", net);
		h->confirmed = true;
		uv_timer_start(&h->claim_timer, on_claim_check,
		               CLAIM_RECHECK_MS, 0);
		return;
	}
	/* A smaller id holds it: move on. */
	uint32_t k = ((h->slice - h->cloud.network) >> 8) + 1;
	uint32_t next = slice_probe(h, k % n_slices(h));
	if (!next || next == h->slice) {
		mc_error("hostnet", "slice %s/24 is %s's and no other is free",
		         net, holder);
		uv_timer_start(&h->claim_timer, on_claim_check,
		               CLAIM_RECHECK_MS, 0);
		return;
	}
	char to[16];
	ip_text(next, to);
	bool leased = false;
	for (unsigned i = LEASE_FIRST; i <= LEASE_LAST; i++)
		leased |= h->leases[i][0] != '\0';
	mc_warn("hostnet",
	        "slice %s/24 is %s's (smaller id): moving to %s/24%s", net,
	        holder, to,
	        leased ? "; leased addresses move with it and guests get "
	                 "new ones when they renew"
	               : "");
	int r = slice_use(h, next);
	if (r)
		mc_error("hostnet", "cannot put %s on %s: %s", to, h->bridge,
		         strerror(-r));
	slice_claim(h, h->slice);
	h->confirmed = false;
	h->checks_held = 0;
	uv_timer_start(&h->claim_timer, on_claim_check, CLAIM_CHECK_MS, 0);
}

/* The slice to start with: the one used last time unless another peer
 * took it meanwhile, else the hash of the peer id and on. */
static uint32_t slice_choose(struct peer_hostnet *h)
{
	char saved[16], holder[PEER_ID_HEX_LEN + 1];
	struct in_addr a;
	if (peer_store_meta_get(h->p->store, SLICE_META, saved,
	                        sizeof(saved)) == 0 &&
	    inet_pton(AF_INET, saved, &a) == 1) {
		uint32_t net = ntohl(a.s_addr);
		uint32_t mask = 0xffffffffu << (32 - h->cloud.prefix);
		if ((net & 255) == 0 && (net & mask) == h->cloud.network) {
			slice_holder(h, net, holder);
			if (!holder[0] || strcmp(holder, h->p->id) == 0)
				return net;
		}
	}
	uint8_t hash[8];
	mc_hash(hash, sizeof(hash), h->p->id, strlen(h->p->id));
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | hash[i];
	return slice_probe(h, (uint32_t)(v % n_slices(h)));
}

/* ---- Leases ------------------------------------------------------------- */

static void leases_load(struct peer_hostnet *h)
{
	char key[32];
	for (unsigned i = LEASE_FIRST; i <= LEASE_LAST; i++) {
		snprintf(key, sizeof(key), LEASE_META, i);
		if (peer_store_meta_get(h->p->store, key, h->leases[i],
		                        sizeof(h->leases[i])) != 0)
			h->leases[i][0] = '\0';
	}
}

static unsigned lease_find(const struct peer_hostnet *h, const char *id)
{
	for (unsigned i = LEASE_FIRST; i <= LEASE_LAST; i++)
		if (strcmp(h->leases[i], id) == 0)
			return i;
	return 0;
}

/* A lease changing hands: the previous holder's tracked flows must not
 * admit anything to the next (peer/conntrack.h). Done when the address is
 * taken, not when it is freed: entries made while it was free go too, and
 * one walk of the table does for both. */
static void lease_forget_flows(const struct peer_hostnet *h, unsigned i)
{
	char ip[16];
	ip_text(h->slice + i, ip);
	int n = peer_conntrack_forget(h->slice + i);
	if (n < 0)
		mc_warn("hostnet", "cannot forget %s's tracked connections: %s",
		        ip, strerror(-n));
	else if (n > 0)
		mc_info("hostnet",
		        "%s changes hands: forgot %d tracked "
		        "connections",
		        ip, n);
}

static int lease_set(struct peer_hostnet *h, unsigned i, const char *id)
{
	char key[32];
	snprintf(key, sizeof(key), LEASE_META, i);
	int r = peer_store_meta_set(h->p->store, key, id);
	if (r == 0)
		snprintf(h->leases[i], sizeof(h->leases[i]), "%s", id);
	return r;
}

int peer_hostnet_lease(struct peer *p, const char *instance_id, char ip[16],
                       char mac[18])
{
	struct peer_hostnet *h = p->hostnet;
	if (!h)
		return -ENETDOWN;
	if (!instance_id[0] || strlen(instance_id) > MC_INSTANCE_ID_LEN)
		return -EINVAL;
	unsigned i = lease_find(h, instance_id);
	/* New addresses only from a slice that is surely this host's. */
	if (!i && !h->confirmed)
		return -EAGAIN;
	if (!i) {
		for (unsigned k = LEASE_FIRST; k <= LEASE_LAST && !i; k++)
			if (!h->leases[k][0])
				i = k;
		if (!i)
			return -ENOSPC;
		int r = lease_set(h, i, instance_id);
		if (r)
			return r;
		lease_forget_flows(h, i);
	}
	/* A (re)started instance tells of its address again. */
	h->announced[i] = false;
	ip_text(h->slice + i, ip);
	mac_of(h->slice + i, mac);
	mc_debug("hostnet", "lease %s: %s %s", instance_id, ip, mac);
	return 0;
}

void peer_hostnet_release(struct peer *p, const char *instance_id)
{
	struct peer_hostnet *h = p->hostnet;
	unsigned i;
	if (!h || !(i = lease_find(h, instance_id)))
		return;
	if (lease_set(h, i, "") != 0)
		mc_warn("hostnet", "cannot release the lease of %s",
		        instance_id);
	h->announced[i] = false;
}

const char *peer_hostnet_bridge(const struct peer *p)
{
	return p->hostnet ? p->hostnet->bridge : "";
}

void peer_hostnet_set_mtu(struct peer *p, unsigned mtu)
{
	struct peer_hostnet *h = p->hostnet;
	if (!h || mtu < 576 || mtu > 65535)
		return;
	h->mtu = (uint16_t)mtu;
	if (h->dhcp) {
		struct peer_dhcp_config c = dhcp_config(h);
		peer_dhcp_set_config(h->dhcp, &c);
	}
}

/* The host number a slice address leases, 0 for none. */
static unsigned lease_of_ip(const struct peer_hostnet *h, uint32_t ip)
{
	if ((ip & 0xffffff00u) != h->slice)
		return 0;
	unsigned i = ip & 255;
	return i >= LEASE_FIRST && i <= LEASE_LAST && h->leases[i][0] ? i : 0;
}

static void announce(struct peer_hostnet *h, unsigned i)
{
	char ip[16], id[MC_INSTANCE_ID_LEN + 1];
	h->announced[i] = true;
	ip_text(h->slice + i, ip);
	/* The callback may release leases: keep a copy of the id. */
	snprintf(id, sizeof(id), "%s", h->leases[i]);
	if (h->on_addr)
		h->on_addr(h->p, id, ip);
}

/* ---- DHCP and metadata glue --------------------------------------------- */

static int dhcp_lookup(void *arg, const uint8_t mac[6], uint32_t *ip)
{
	struct peer_hostnet *h = arg;
	if (mac[0] != 0x02 || mac[1] != 0x00)
		return -ENOENT;
	uint32_t a = (uint32_t)mac[2] << 24 | (uint32_t)mac[3] << 16 |
	             (uint32_t)mac[4] << 8 | mac[5];
	if (!lease_of_ip(h, a))
		return -ENOENT;
	*ip = a;
	return 0;
}

static void dhcp_acked(void *arg, const uint8_t mac[6], uint32_t ip)
{
	struct peer_hostnet *h = arg;
	unsigned i = lease_of_ip(h, ip);
	char text[16];
	(void)mac;
	if (!i)
		return;
	ip_text(ip, text);
	mc_info("hostnet", "%s has %s (DHCP)", h->leases[i], text);
	announce(h, i);
}

/*
 * The instance behind a metadata request. Its record when this host has it;
 * otherwise, for an address leased here, what the lease alone says (the
 * record of an instance may lag its first boot).
 */
static int imds_lookup(void *arg, const char *ip, struct mc_instance *out)
{
	struct peer_hostnet *h = arg;
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -ENOENT;
	unsigned i = lease_of_ip(h, ntohl(a.s_addr));
	int r = peer_instances_by_ip(h->p, ip, out);
	if (r == -ENOENT && i) {
		mc_instance_clear(out);
		snprintf(out->id, sizeof(out->id), "%s", h->leases[i]);
		snprintf(out->private_ip, sizeof(out->private_ip), "%s", ip);
		mac_of(ntohl(a.s_addr), out->mac);
		snprintf(out->host, sizeof(out->host), "%s", h->p->id);
		snprintf(out->architecture, sizeof(out->architecture),
		         "x86_64");
		r = 0;
	}
	if (r == 0 && i && !h->announced[i])
		announce(h, i);
	return r;
}

static void on_handle_closed(uv_handle_t *handle)
{
	struct peer_hostnet *h = handle->data;
	if (--h->closing == 0)
		free(h);
}

static void on_imds_stopped(void *arg)
{
	struct peer_hostnet *h = arg;
	if (--h->closing == 0)
		free(h);
}

int peer_hostnet_start(struct peer *p, peer_hostnet_addr_cb on_addr, char *err,
                       size_t err_size)
{
	int r;
	if (p->hostnet) {
		p->hostnet->on_addr = on_addr;
		return 0;
	}
	struct peer_hostnet *h = xcalloc(1, sizeof(*h));
	h->p = p;
	h->on_addr = on_addr;
	h->mtu = DEFAULT_MTU;
	snprintf(h->bridge, sizeof(h->bridge), "%s",
	         p->cfg.bridge[0] ? p->cfg.bridge : "mallee0");
	if (mc_cidr_parse(&h->cloud, p->cidr, 8, 24)) {
		snprintf(err, err_size,
		         "the cloud's CIDR %s has no room for /24 slices",
		         p->cidr);
		free(h);
		return -EINVAL;
	}
	if ((r = peer_link_bridge_ensure(h->bridge, &h->ifindex, err,
	                                 err_size)))
		goto err_free;
	uint32_t net = slice_choose(h);
	char text[16];
	ip_text(net, text);
	if (!net) {
		snprintf(err, err_size, "every /24 of %s is claimed", p->cidr);
		r = -ENOSPC;
		goto err_free;
	}
	if ((r = slice_use(h, net)) ||
	    (r = peer_link_addr_add(h->ifindex, METADATA_ADDR, 32))) {
		snprintf(err, err_size, "cannot address bridge %s: %s",
		         h->bridge, strerror(-r));
		goto err_free;
	}
	if ((r = slice_claim(h, net))) {
		snprintf(err, err_size, "cannot claim slice %s: %s", text,
		         strerror(-r));
		goto err_free;
	}
	leases_load(h);

	struct peer_dhcp_config dc = dhcp_config(h);
	if ((r = peer_dhcp_start(p->loop, h->bridge, &dc, dhcp_lookup,
	                         dhcp_acked, h, &h->dhcp))) {
		snprintf(err, err_size, "cannot serve DHCP on %s: %s",
		         h->bridge, strerror(-r));
		goto err_free;
	}

	struct api_imds_source src = {
	    .arg = h,
	    .lookup = imds_lookup,
	    .region = p->region,
	    .zone = p->cfg.zone,
	};
	h->imds = api_imds_new(&src);
	struct sockaddr_in ma = {.sin_family = AF_INET};
	ma.sin_addr.s_addr = htonl(METADATA_ADDR);
	ma.sin_port = htons(p->cfg.imds_port ? (uint16_t)p->cfg.imds_port : 80);
	if ((r = api_imds_listen(h->imds, p->loop, (struct sockaddr *)&ma))) {
		/* Another peer in this namespace serves it (tests): the
		 * instances here go without metadata, which is logged. */
		mc_warn("hostnet",
		        "cannot serve metadata on 169.254.169.254:%u: "
		        "%s",
		        ntohs(ma.sin_port), uv_strerror(r));
		api_imds_free(h->imds);
		h->imds = NULL;
	}

	uv_timer_init(p->loop, &h->claim_timer);
	h->claim_timer.data = h;
	uv_timer_start(&h->claim_timer, on_claim_check, CLAIM_CHECK_MS, 0);
	p->hostnet = h;
	mc_info("hostnet", "bridge %s: %s/24, DHCP%s, MTU %u", h->bridge, text,
	        h->imds ? ", metadata" : "", h->mtu);
	/* Instances here reach the others through the overlay, which
	 * lowers the MTU DHCP offers. */
	peer_overlay_start(p);
	return 0;

err_free:
	free(h);
	return r;
}

void peer_hostnet_stop(struct peer *p)
{
	struct peer_hostnet *h = p->hostnet;
	if (!h)
		return;
	p->hostnet = NULL;
	peer_dhcp_stop(h->dhcp);
	h->closing = 1;
	uv_close((uv_handle_t *)&h->claim_timer, on_handle_closed);
	if (h->imds) {
		h->closing++;
		api_imds_stop(h->imds, on_imds_stopped, h);
	}
}

/* ---- Diagnostics (control socket) --------------------------------------- */

static void hostnet_test_addressed(struct peer *p, const char *instance_id,
                                   const char *ip)
{
	(void)p;
	mc_info("hostnet", "%s is up at %s", instance_id, ip);
}

void peer_cmd_hostnet_lease(struct peer *p, const struct mc_val *req,
                            struct mc_buf *reply)
{
	char id[MC_INSTANCE_ID_LEN + 1], ip[16], mac[18], err[256] = "";
	bool release = false;
	if (!mc_get_str(req, "id", id, sizeof(id)) || !id[0]) {
		peer_ctl_reply_error(reply, "missing id (an instance id)");
		return;
	}
	mc_get_bool(req, "release", &release);
	if (!p->hostnet &&
	    peer_hostnet_start(p, hostnet_test_addressed, err, sizeof(err))) {
		peer_ctl_reply_error(reply, "host networking: %s", err);
		return;
	}
	if (release) {
		peer_hostnet_release(p, id);
		mc_pack_map(reply, 1);
		mc_pack_kv_bool(reply, "ok", true);
		return;
	}
	int r = peer_hostnet_lease(p, id, ip, mac);
	if (r) {
		peer_ctl_reply_error(reply, "cannot lease for %s: %s", id,
		                     strerror(-r));
		return;
	}
	char slice[16];
	ip_text(p->hostnet->slice, slice);
	mc_pack_map(reply, 6);
	mc_pack_kv_bool(reply, "ok", true);
	mc_pack_kv_str(reply, "ip", ip);
	mc_pack_kv_str(reply, "mac", mac);
	mc_pack_kv_str(reply, "bridge", p->hostnet->bridge);
	mc_pack_kv_str(reply, "slice", slice);
	mc_pack_kv_bool(reply, "confirmed", p->hostnet->confirmed);
}

void peer_hostnet_pack_status(struct peer *p, struct mc_buf *b)
{
	struct peer_hostnet *h = p->hostnet;
	char slice[16] = "";
	if (h)
		ip_text(h->slice, slice);
	mc_pack_str(b, "hostnet");
	mc_pack_map(b, 3);
	mc_pack_kv_str(b, "bridge", h ? h->bridge : "");
	mc_pack_kv_str(b, "slice", slice);
	mc_pack_kv_bool(b, "ready", h && h->confirmed);
}
