/* The DHCP codec: client messages built here, the server's decisions and
 * replies parsed back, and malformed input refused. */
#include "check.h"

#include "dhcp.h"

#include <errno.h>
#include <string.h>

#define SLICE  0xac1f0500u /* 172.31.5.0 */
#define SERVER (SLICE + 1)
#define LEASED (SLICE + 10)

static const uint8_t client_mac[6] = {0x02, 0x00, 0xac, 0x1f, 0x05, 0x0a};

static struct peer_dhcp_config config(void)
{
	struct peer_dhcp_config c = {
	    .server_ip = SERVER,
	    .netmask = 0xffffff00u,
	    .broadcast = SLICE | 255,
	    .lease_s = 86400,
	    .mtu = 1500,
	};
	return c;
}

/* A client's message of type t, encoded into out; returns its length. */
static size_t client_msg(enum peer_dhcp_type t, uint32_t requested,
                         uint32_t server_id, uint32_t ciaddr, uint8_t *out)
{
	struct peer_dhcp_msg m;
	memset(&m, 0, sizeof(m));
	m.op = 1;
	m.xid = 0x12345678;
	m.flags = 0x8000;
	m.ciaddr = ciaddr;
	memcpy(m.chaddr, client_mac, 6);
	m.type = t;
	m.requested_ip = requested;
	m.server_id = server_id;
	return peer_dhcp_build(&m, out, PEER_DHCP_MAX_LEN);
}

/* Runs one exchange: returns the reply type and the parsed reply. */
static enum peer_dhcp_type exchange(const uint8_t *pkt, size_t n,
                                    uint32_t leased, struct peer_dhcp_msg *got)
{
	struct peer_dhcp_config c = config();
	struct peer_dhcp_msg req, reply;
	uint8_t out[PEER_DHCP_MAX_LEN];
	if (peer_dhcp_parse(pkt, n, &req) != 0)
		return (enum peer_dhcp_type) - 1;
	enum peer_dhcp_type t = peer_dhcp_answer(&c, &req, leased, &reply);
	if (t == PEER_DHCP_NONE)
		return t;
	size_t len = peer_dhcp_build(&reply, out, sizeof(out));
	CHECK(len >= PEER_DHCP_REPLY_MIN);
	CHECK(peer_dhcp_parse(out, len, got) == 0);
	CHECK(got->type == t);
	CHECK(got->op == 2);
	CHECK(got->xid == 0x12345678);
	CHECK(memcmp(got->chaddr, client_mac, 6) == 0);
	CHECK(got->server_id == SERVER);
	return t;
}

static void test_discover_offer(void)
{
	uint8_t pkt[PEER_DHCP_MAX_LEN];
	struct peer_dhcp_msg got;
	size_t n = client_msg(PEER_DHCP_DISCOVER, 0, 0, 0, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_OFFER);
	CHECK(got.yiaddr == LEASED);
	CHECK(got.netmask == 0xffffff00u);
	CHECK(got.router == SERVER);
	CHECK(got.broadcast == (SLICE | 255));
	CHECK(got.lease_s == 86400);
	CHECK(got.mtu == 1500);
	CHECK_STR(got.hostname, "ip-172-31-5-10");
	CHECK(got.flags == 0x8000);

	/* No lease for this MAC: silence. */
	CHECK(exchange(pkt, n, 0, &got) == PEER_DHCP_NONE);
}

static void test_request_ack_nak(void)
{
	uint8_t pkt[PEER_DHCP_MAX_LEN];
	struct peer_dhcp_msg got;

	/* Selecting: our offer. */
	size_t n = client_msg(PEER_DHCP_REQUEST, LEASED, SERVER, 0, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_ACK);
	CHECK(got.yiaddr == LEASED);
	CHECK(got.lease_s == 86400);

	/* Selecting another server's offer: silence. */
	n = client_msg(PEER_DHCP_REQUEST, LEASED, SERVER + 7, 0, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_NONE);

	/* Init-reboot with an address that is not its lease: NAK. */
	n = client_msg(PEER_DHCP_REQUEST, SLICE + 99, 0, 0, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_NAK);
	CHECK(got.yiaddr == 0);
	CHECK(got.lease_s == 0);

	/* Renewing: ciaddr, no option 50. */
	n = client_msg(PEER_DHCP_REQUEST, 0, 0, LEASED, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_ACK);
	CHECK(got.ciaddr == LEASED);
	n = client_msg(PEER_DHCP_REQUEST, 0, 0, SLICE + 3, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_NAK);

	/* No lease: never NAK someone else's client. */
	n = client_msg(PEER_DHCP_REQUEST, LEASED, 0, 0, pkt);
	CHECK(exchange(pkt, n, 0, &got) == PEER_DHCP_NONE);
}

static void test_inform_release(void)
{
	uint8_t pkt[PEER_DHCP_MAX_LEN];
	struct peer_dhcp_msg got;
	size_t n = client_msg(PEER_DHCP_INFORM, 0, 0, LEASED, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_ACK);
	CHECK(got.yiaddr == 0);
	CHECK(got.lease_s == 0);
	CHECK(got.router == SERVER);

	n = client_msg(PEER_DHCP_RELEASE, 0, SERVER, LEASED, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_NONE);
	n = client_msg(PEER_DHCP_DECLINE, LEASED, SERVER, 0, pkt);
	CHECK(exchange(pkt, n, LEASED, &got) == PEER_DHCP_NONE);
}

static void test_relay_and_reply_ignored(void)
{
	uint8_t pkt[PEER_DHCP_MAX_LEN];
	struct peer_dhcp_msg req, reply;
	struct peer_dhcp_config c = config();
	size_t n = client_msg(PEER_DHCP_DISCOVER, 0, 0, 0, pkt);
	pkt[24] = 10; /* giaddr 10.0.0.0: relayed */
	CHECK(peer_dhcp_parse(pkt, n, &req) == 0);
	CHECK(peer_dhcp_answer(&c, &req, LEASED, &reply) == PEER_DHCP_NONE);
	pkt[24] = 0;
	pkt[0] = 2; /* a BOOTREPLY from another server */
	CHECK(peer_dhcp_parse(pkt, n, &req) == 0);
	CHECK(peer_dhcp_answer(&c, &req, LEASED, &reply) == PEER_DHCP_NONE);
}

static void test_malformed(void)
{
	uint8_t pkt[PEER_DHCP_MAX_LEN], bad[PEER_DHCP_MAX_LEN + 8];
	struct peer_dhcp_msg m;
	size_t n = client_msg(PEER_DHCP_DISCOVER, 0, 0, 0, pkt);
	CHECK(peer_dhcp_parse(pkt, n, &m) == 0);

	/* Short: every length below the fixed part, and the options cut. */
	for (size_t k = 0; k < PEER_DHCP_MIN_LEN; k++)
		CHECK(peer_dhcp_parse(pkt, k, &m) == -EINVAL);
	CHECK(peer_dhcp_parse(pkt, PEER_DHCP_MIN_LEN + 2, &m) == -EINVAL);
	/* Too long. */
	memset(bad, 0, sizeof(bad));
	memcpy(bad, pkt, n);
	CHECK(peer_dhcp_parse(bad, PEER_DHCP_MAX_LEN + 1, &m) == -EINVAL);

#define MUTATED(off, val)                                                      \
	do {                                                                   \
		memcpy(bad, pkt, n);                                           \
		bad[off] = (val);                                              \
		CHECK(peer_dhcp_parse(bad, n, &m) == -EINVAL);                 \
	} while (0)
	MUTATED(1, 6);     /* not Ethernet */
	MUTATED(2, 16);    /* hlen */
	MUTATED(0, 3);     /* op */
	MUTATED(236, 0);   /* magic cookie */
	MUTATED(242, 0);   /* message type 0 */
	MUTATED(242, 9);   /* message type past INFORM */
	MUTATED(241, 2);   /* message type of length 2 */
	MUTATED(241, 250); /* option runs past the end */
#undef MUTATED

	/* Pads to the end, never an end option. */
	memcpy(bad, pkt, n);
	memset(bad + 240, 0, n - 240);
	CHECK(peer_dhcp_parse(bad, n, &m) == -EINVAL);

	/* No message type at all: just the end option. */
	memcpy(bad, pkt, n);
	bad[240] = 255;
	CHECK(peer_dhcp_parse(bad, n, &m) == -EINVAL);

	/* An address option of the wrong size. */
	memcpy(bad, pkt, n);
	size_t at = 243;
	bad[at] = 50;
	bad[at + 1] = 3;
	bad[at + 5] = 255;
	CHECK(peer_dhcp_parse(bad, n, &m) == -EINVAL);

	/* Unknown options are skipped. */
	memcpy(bad, pkt, n);
	bad[at] = 200;
	bad[at + 1] = 2;
	bad[at + 4] = 255;
	CHECK(peer_dhcp_parse(bad, n, &m) == 0);
	CHECK(m.type == PEER_DHCP_DISCOVER);

	/* A host name with a NUL inside. */
	memcpy(bad, pkt, n);
	bad[at] = 12;
	bad[at + 1] = 3;
	bad[at + 2] = 'a';
	bad[at + 3] = 0;
	bad[at + 4] = 'b';
	bad[at + 5] = 255;
	CHECK(peer_dhcp_parse(bad, n, &m) == -EINVAL);
}

int main(void)
{
	RUN(test_discover_offer);
	RUN(test_request_ack_nak);
	RUN(test_inform_release);
	RUN(test_relay_and_reply_ignored);
	RUN(test_malformed);
	fprintf(stderr, "%d passed, %d failed\n", check_passed, check_failed);
	return check_failed != 0;
}
