/*
 * A small DHCPv4 server (RFC 2131) for the instances on this host's bridge:
 * it answers only the MACs that hold a lease (peer/hostnet.c decides who
 * does), never hands out an address of its own choosing, and does no relay
 * or option overload. The codec (parse, answer, build) is pure so that
 * unit tests and the fuzzer drive it without sockets.
 */
#ifndef PEER_DHCP_H
#define PEER_DHCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PEER_DHCP_SERVER_PORT 67
#define PEER_DHCP_CLIENT_PORT 68
#define PEER_DHCP_MIN_LEN     240 /* fixed header + magic cookie */
#define PEER_DHCP_MAX_LEN     1500
#define PEER_DHCP_REPLY_MIN   300 /* BOOTP's minimum message */

enum peer_dhcp_type {
	PEER_DHCP_NONE = 0,
	PEER_DHCP_DISCOVER = 1,
	PEER_DHCP_OFFER = 2,
	PEER_DHCP_REQUEST = 3,
	PEER_DHCP_DECLINE = 4,
	PEER_DHCP_ACK = 5,
	PEER_DHCP_NAK = 6,
	PEER_DHCP_RELEASE = 7,
	PEER_DHCP_INFORM = 8,
};

/* A decoded message; addresses in host byte order, 0 when absent. */
struct peer_dhcp_msg {
	uint8_t op; /* 1 request, 2 reply */
	uint32_t xid;
	uint16_t secs, flags;
	uint32_t ciaddr, yiaddr, siaddr, giaddr;
	uint8_t chaddr[6];
	enum peer_dhcp_type type; /* option 53 */
	uint32_t requested_ip;    /* option 50 */
	uint32_t server_id;       /* option 54 */
	/* Reply options (parsed too, for tests and clients). */
	uint32_t netmask, router, broadcast, lease_s;
	uint16_t mtu;
	char hostname[64];
};

/* What the server says about itself and the slice. */
struct peer_dhcp_config {
	uint32_t server_ip; /* the bridge's .1: server id and router */
	uint32_t netmask;
	uint32_t broadcast;
	uint32_t lease_s;
	uint16_t mtu; /* option 26 */
};

/*
 * Decodes n bytes of a DHCP message with every field bounds-checked.
 * Returns 0, or -EINVAL for anything malformed: short, not Ethernet, no
 * magic cookie, an option running past the end, a wrong-sized option, no
 * message type.
 */
int peer_dhcp_parse(const uint8_t *data, size_t n, struct peer_dhcp_msg *out);

/*
 * Decides the reply to a client request req whose MAC holds leased_ip (0:
 * no lease). Fills *reply and returns its type, or PEER_DHCP_NONE when the
 * server stays silent (no lease, another server chosen, release, decline,
 * a relayed message).
 */
enum peer_dhcp_type peer_dhcp_answer(const struct peer_dhcp_config *cfg,
                                     const struct peer_dhcp_msg *req,
                                     uint32_t leased_ip,
                                     struct peer_dhcp_msg *reply);

/*
 * Encodes reply (as peer_dhcp_answer filled it) into out (at least
 * PEER_DHCP_MAX_LEN bytes). Returns the length.
 */
size_t peer_dhcp_build(const struct peer_dhcp_msg *reply, uint8_t *out,
                       size_t cap);

/* The server on a bridge. */
struct peer_dhcp;

/* Finds the address leased to a MAC: 0, or -ENOENT. */
typedef int (*peer_dhcp_lookup_cb)(void *arg, const uint8_t mac[6],
                                   uint32_t *ip);
/* A lease was acknowledged (DHCPACK sent for a REQUEST). */
typedef void (*peer_dhcp_acked_cb)(void *arg, const uint8_t mac[6],
                                   uint32_t ip);

/*
 * Binds UDP 67 on the device ifname (SO_BINDTODEVICE, SO_BROADCAST) on
 * loop. Returns 0 and *out, or a negative errno. The callbacks run from the
 * loop.
 */
int peer_dhcp_start(uv_loop_t *loop, const char *ifname,
                    const struct peer_dhcp_config *cfg,
                    peer_dhcp_lookup_cb lookup, peer_dhcp_acked_cb acked,
                    void *arg, struct peer_dhcp **out);
/* New server address and netmask (the slice moved). */
void peer_dhcp_set_config(struct peer_dhcp *d,
                          const struct peer_dhcp_config *cfg);
/* Closes the socket; the memory goes from the loop. */
void peer_dhcp_stop(struct peer_dhcp *d);

#endif
