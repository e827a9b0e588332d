#include "dhcp.h"

#include "buf.h"
#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BOOTREQUEST  1
#define BOOTREPLY    2
#define HTYPE_ETHER  1
#define MAGIC_COOKIE 0x63825363u
#define FLAG_BCAST   0x8000u

enum {
	OPT_PAD = 0,
	OPT_NETMASK = 1,
	OPT_ROUTER = 3,
	OPT_HOSTNAME = 12,
	OPT_MTU = 26,
	OPT_BROADCAST = 28,
	OPT_REQUESTED_IP = 50,
	OPT_LEASE_TIME = 51,
	OPT_MSG_TYPE = 53,
	OPT_SERVER_ID = 54,
	OPT_END = 255,
};

/* Reads a 4-byte address option; false for any other size. */
static bool opt_addr(const uint8_t *v, uint8_t len, uint32_t *out)
{
	if (len != 4)
		return false;
	*out = mc_load_be32(v);
	return true;
}

static int parse_option(struct peer_dhcp_msg *m, uint8_t code, const uint8_t *v,
                        uint8_t len)
{
	uint32_t lease;
	switch (code) {
	case OPT_MSG_TYPE:
		if (len != 1 || v[0] < PEER_DHCP_DISCOVER ||
		    v[0] > PEER_DHCP_INFORM)
			return -EINVAL;
		m->type = v[0];
		return 0;
	case OPT_REQUESTED_IP:
		return opt_addr(v, len, &m->requested_ip) ? 0 : -EINVAL;
	case OPT_SERVER_ID:
		return opt_addr(v, len, &m->server_id) ? 0 : -EINVAL;
	case OPT_NETMASK:
		return opt_addr(v, len, &m->netmask) ? 0 : -EINVAL;
	case OPT_ROUTER:
		/* A list of routers: the first is the one. */
		if (len < 4 || len % 4)
			return -EINVAL;
		m->router = mc_load_be32(v);
		return 0;
	case OPT_BROADCAST:
		return opt_addr(v, len, &m->broadcast) ? 0 : -EINVAL;
	case OPT_LEASE_TIME:
		if (!opt_addr(v, len, &lease))
			return -EINVAL;
		m->lease_s = lease;
		return 0;
	case OPT_MTU:
		if (len != 2)
			return -EINVAL;
		m->mtu = (uint16_t)(v[0] << 8 | v[1]);
		return 0;
	case OPT_HOSTNAME:
		if (len == 0 || len >= sizeof(m->hostname))
			return -EINVAL;
		memcpy(m->hostname, v, len);
		m->hostname[len] = '\0';
		if (strlen(m->hostname) != len)
			return -EINVAL;
		return 0;
	default:
		return 0; /* options we do not use are skipped */
	}
}

int peer_dhcp_parse(const uint8_t *data, size_t n, struct peer_dhcp_msg *out)
{
	struct mc_cursor c;
	uint8_t htype, hlen, hops, chaddr[16];
	uint32_t cookie;

	memset(out, 0, sizeof(*out));
	if (n < PEER_DHCP_MIN_LEN || n > PEER_DHCP_MAX_LEN)
		return -EINVAL;
	mc_cursor_init(&c, data, n);
	mc_cursor_get_u8(&c, &out->op);
	mc_cursor_get_u8(&c, &htype);
	mc_cursor_get_u8(&c, &hlen);
	mc_cursor_get_u8(&c, &hops);
	mc_cursor_get_be32(&c, &out->xid);
	mc_cursor_get_be16(&c, &out->secs);
	mc_cursor_get_be16(&c, &out->flags);
	mc_cursor_get_be32(&c, &out->ciaddr);
	mc_cursor_get_be32(&c, &out->yiaddr);
	mc_cursor_get_be32(&c, &out->siaddr);
	mc_cursor_get_be32(&c, &out->giaddr);
	mc_cursor_get_bytes(&c, chaddr, sizeof(chaddr));
	/* sname and file: no option overload here, so never read. */
	const uint8_t *skip;
	mc_cursor_get_view(&c, &skip, 64 + 128);
	mc_cursor_get_be32(&c, &cookie);
	if (c.failed || (out->op != BOOTREQUEST && out->op != BOOTREPLY) ||
	    htype != HTYPE_ETHER || hlen != 6 || cookie != MAGIC_COOKIE)
		return -EINVAL;
	memcpy(out->chaddr, chaddr, 6);

	bool ended = false;
	while (!ended) {
		uint8_t code, len;
		const uint8_t *v;
		if (!mc_cursor_get_u8(&c, &code))
			return -EINVAL; /* no end option */
		if (code == OPT_PAD)
			continue;
		if (code == OPT_END) {
			ended = true;
			break;
		}
		if (!mc_cursor_get_u8(&c, &len) ||
		    !mc_cursor_get_view(&c, &v, len))
			return -EINVAL;
		if (parse_option(out, code, v, len))
			return -EINVAL;
	}
	if (out->type == PEER_DHCP_NONE)
		return -EINVAL;
	return 0;
}

enum peer_dhcp_type peer_dhcp_answer(const struct peer_dhcp_config *cfg,
                                     const struct peer_dhcp_msg *req,
                                     uint32_t leased_ip,
                                     struct peer_dhcp_msg *reply)
{
	enum peer_dhcp_type t = PEER_DHCP_NONE;

	memset(reply, 0, sizeof(*reply));
	/* Relayed requests come from elsewhere than our own bridge. */
	if (req->op != BOOTREQUEST || req->giaddr != 0 || leased_ip == 0)
		return PEER_DHCP_NONE;
	switch (req->type) {
	case PEER_DHCP_DISCOVER:
		t = PEER_DHCP_OFFER;
		break;
	case PEER_DHCP_REQUEST: {
		/* SELECTING names the server it chose; another one wins. */
		if (req->server_id && req->server_id != cfg->server_ip)
			return PEER_DHCP_NONE;
		uint32_t want =
		    req->requested_ip ? req->requested_ip : req->ciaddr;
		t = want == leased_ip ? PEER_DHCP_ACK : PEER_DHCP_NAK;
		break;
	}
	case PEER_DHCP_INFORM:
		t = PEER_DHCP_ACK;
		break;
	default:
		return PEER_DHCP_NONE; /* release, decline: nothing to say */
	}

	reply->op = BOOTREPLY;
	reply->xid = req->xid;
	reply->flags = req->flags;
	reply->ciaddr = req->ciaddr;
	memcpy(reply->chaddr, req->chaddr, 6);
	reply->type = t;
	reply->server_id = cfg->server_ip;
	if (t == PEER_DHCP_NAK)
		return t;
	if (req->type != PEER_DHCP_INFORM) {
		reply->yiaddr = leased_ip;
		reply->lease_s = cfg->lease_s;
	}
	reply->siaddr = 0;
	reply->netmask = cfg->netmask;
	reply->router = cfg->server_ip;
	reply->broadcast = cfg->broadcast;
	reply->mtu = cfg->mtu;
	snprintf(reply->hostname, sizeof(reply->hostname), "ip-%u-%u-%u-%u",
	         leased_ip >> 24, (leased_ip >> 16) & 255,
	         (leased_ip >> 8) & 255, leased_ip & 255);
	return t;
}

static size_t put_opt(uint8_t *out, size_t at, uint8_t code, const void *v,
                      uint8_t len)
{
	out[at] = code;
	out[at + 1] = len;
	memcpy(out + at + 2, v, len);
	return at + 2 + len;
}

static size_t put_addr(uint8_t *out, size_t at, uint8_t code, uint32_t a)
{
	uint8_t v[4];
	mc_store_be32(v, a);
	return put_opt(out, at, code, v, 4);
}

size_t peer_dhcp_build(const struct peer_dhcp_msg *m, uint8_t *out, size_t cap)
{
	/* Fixed part, our options (hostname at most 63 bytes), end: well
	 * under PEER_DHCP_MAX_LEN. */
	if (cap < PEER_DHCP_MAX_LEN)
		return 0;
	memset(out, 0, PEER_DHCP_REPLY_MIN);
	out[0] = m->op;
	out[1] = HTYPE_ETHER;
	out[2] = 6;
	mc_store_be32(out + 4, m->xid);
	out[8] = (uint8_t)(m->secs >> 8);
	out[9] = (uint8_t)m->secs;
	out[10] = (uint8_t)(m->flags >> 8);
	out[11] = (uint8_t)m->flags;
	mc_store_be32(out + 12, m->ciaddr);
	mc_store_be32(out + 16, m->yiaddr);
	mc_store_be32(out + 20, m->siaddr);
	mc_store_be32(out + 24, m->giaddr);
	memcpy(out + 28, m->chaddr, 6);
	mc_store_be32(out + 236, MAGIC_COOKIE);

	size_t at = PEER_DHCP_MIN_LEN;
	uint8_t type = (uint8_t)m->type;
	at = put_opt(out, at, OPT_MSG_TYPE, &type, 1);
	if (m->server_id)
		at = put_addr(out, at, OPT_SERVER_ID, m->server_id);
	if (m->requested_ip)
		at = put_addr(out, at, OPT_REQUESTED_IP, m->requested_ip);
	if (m->lease_s)
		at = put_addr(out, at, OPT_LEASE_TIME, m->lease_s);
	if (m->netmask)
		at = put_addr(out, at, OPT_NETMASK, m->netmask);
	if (m->router)
		at = put_addr(out, at, OPT_ROUTER, m->router);
	if (m->broadcast)
		at = put_addr(out, at, OPT_BROADCAST, m->broadcast);
	if (m->mtu) {
		uint8_t v[2] = {(uint8_t)(m->mtu >> 8), (uint8_t)m->mtu};
		at = put_opt(out, at, OPT_MTU, v, 2);
	}
	size_t hl = strnlen(m->hostname, sizeof(m->hostname) - 1);
	if (hl)
		at = put_opt(out, at, OPT_HOSTNAME, m->hostname, (uint8_t)hl);
	out[at++] = OPT_END;
	return at < PEER_DHCP_REPLY_MIN ? PEER_DHCP_REPLY_MIN : at;
}

/* ---- The server on the loop --------------------------------------------- */

struct peer_dhcp {
	uv_udp_t udp;
	struct peer_dhcp_config cfg;
	peer_dhcp_lookup_cb lookup;
	peer_dhcp_acked_cb acked;
	void *arg;
	char ifname[IFNAMSIZ];
	uint8_t rx[PEER_DHCP_MAX_LEN];
	bool rx_busy;
	uint64_t dropped; /* malformed or unanswered */
};

struct dhcp_send {
	uv_udp_send_t req;
	uint8_t data[PEER_DHCP_MAX_LEN];
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct peer_dhcp *d = h->data;
	(void)suggested;
	if (d->rx_busy) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	d->rx_busy = true;
	buf->base = (char *)d->rx;
	buf->len = sizeof(d->rx);
}

static void on_sent(uv_udp_send_t *req, int status)
{
	struct dhcp_send *s = (struct dhcp_send *)req;
	if (status < 0)
		mc_warn("dhcp", "cannot send a reply: %s", uv_strerror(status));
	free(s);
}

static const char *type_name(enum peer_dhcp_type t)
{
	static const char *const names[] = {
	    "none", "DISCOVER", "OFFER",   "REQUEST", "DECLINE",
	    "ACK",  "NAK",      "RELEASE", "INFORM",
	};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static void format_mac(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
	         m[3], m[4], m[5]);
}

static void handle_packet(struct peer_dhcp *d, const uint8_t *data, size_t n)
{
	struct peer_dhcp_msg req, reply;
	char mac[18];
	uint32_t ip = 0;

	if (peer_dhcp_parse(data, n, &req) || req.op != BOOTREQUEST) {
		d->dropped++;
		return;
	}
	format_mac(req.chaddr, mac);
	if (d->lookup(d->arg, req.chaddr, &ip) != 0)
		ip = 0;
	enum peer_dhcp_type t = peer_dhcp_answer(&d->cfg, &req, ip, &reply);
	if (req.type == PEER_DHCP_RELEASE || req.type == PEER_DHCP_DECLINE)
		mc_info("dhcp", "%s from %s", type_name(req.type), mac);
	if (t == PEER_DHCP_NONE) {
		if (!ip)
			mc_debug("dhcp", "%s from %s: no lease",
			         type_name(req.type), mac);
		d->dropped++;
		return;
	}

	struct dhcp_send *s = xmalloc(sizeof(*s));
	size_t len = peer_dhcp_build(&reply, s->data, sizeof(s->data));
	/* A renewing client (ciaddr set) takes unicast; the others cannot
	 * answer ARP yet, so they get a broadcast. */
	struct sockaddr_in to = {.sin_family = AF_INET,
	                         .sin_port = htons(PEER_DHCP_CLIENT_PORT)};
	to.sin_addr.s_addr = t != PEER_DHCP_NAK && req.ciaddr
	                         ? htonl(req.ciaddr)
	                         : htonl(INADDR_BROADCAST);
	uv_buf_t b = uv_buf_init((char *)s->data, (unsigned)len);
	int r = uv_udp_send(&s->req, &d->udp, &b, 1, (struct sockaddr *)&to,
	                    on_sent);
	if (r < 0) {
		mc_warn("dhcp", "cannot send %s to %s: %s", type_name(t), mac,
		        uv_strerror(r));
		free(s);
		return;
	}
	struct in_addr a = {.s_addr = htonl(ip)};
	char ipstr[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a, ipstr, sizeof(ipstr));
	mc_debug("dhcp", "%s from %s: %s %s", type_name(req.type), mac,
	         type_name(t), ipstr);
	if (t == PEER_DHCP_ACK && req.type == PEER_DHCP_REQUEST && d->acked)
		d->acked(d->arg, req.chaddr, ip);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags)
{
	struct peer_dhcp *d = h->data;
	(void)addr;
	if (buf->base == (char *)d->rx)
		d->rx_busy = false;
	if (nread <= 0 || (flags & UV_UDP_PARTIAL))
		return;
	handle_packet(d, (const uint8_t *)buf->base, (size_t)nread);
}

static void free_handle_data(uv_handle_t *h)
{
	free(h->data);
}

int peer_dhcp_start(uv_loop_t *loop, const char *ifname,
                    const struct peer_dhcp_config *cfg,
                    peer_dhcp_lookup_cb lookup, peer_dhcp_acked_cb acked,
                    void *arg, struct peer_dhcp **out)
{
	int one = 1, r;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Several bridges (one per peer sharing a namespace in tests) each
	 * have their own server on port 67. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname,
	               (socklen_t)strlen(ifname) + 1)) {
		r = -errno;
		goto err_socket;
	}
	struct sockaddr_in any = {.sin_family = AF_INET,
	                          .sin_port = htons(PEER_DHCP_SERVER_PORT)};
	if (bind(fd, (struct sockaddr *)&any, sizeof(any))) {
		r = -errno;
		goto err_socket;
	}
	struct peer_dhcp *d = xcalloc(1, sizeof(*d));
	d->cfg = *cfg;
	d->lookup = lookup;
	d->acked = acked;
	d->arg = arg;
	snprintf(d->ifname, sizeof(d->ifname), "%s", ifname);
	uv_udp_init(loop, &d->udp);
	d->udp.data = d;
	if ((r = uv_udp_open(&d->udp, fd)) < 0) {
		close(fd);
		uv_close((uv_handle_t *)&d->udp, free_handle_data);
		return r;
	}
	if ((r = uv_udp_recv_start(&d->udp, on_alloc, on_recv)) < 0) {
		/* The handle owns fd once opened: it closes it. */
		uv_close((uv_handle_t *)&d->udp, free_handle_data);
		return r;
	}
	*out = d;
	return 0;

err_socket:
	close(fd);
	return r;
}

void peer_dhcp_set_config(struct peer_dhcp *d,
                          const struct peer_dhcp_config *cfg)
{
	d->cfg = *cfg;
}

static void on_closed(uv_handle_t *h)
{
	struct peer_dhcp *d = h->data;
	if (d->dropped)
		mc_debug("dhcp", "%s: %llu requests dropped", d->ifname,
		         (unsigned long long)d->dropped);
	free(d);
}

void peer_dhcp_stop(struct peer_dhcp *d)
{
	if (d)
		uv_close((uv_handle_t *)&d->udp, on_closed);
}
