/* Any bytes arriving on UDP 67: the parser refuses or decodes them; a
 * decoded request gets an answer whose encoding parses back the same. */
#include "dhcp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct peer_dhcp_msg req, reply, back;
	uint8_t out[PEER_DHCP_MAX_LEN];
	struct peer_dhcp_config cfg = {
	    .server_ip = 0xac1f0501u,
	    .netmask = 0xffffff00u,
	    .broadcast = 0xac1f05ffu,
	    .lease_s = 86400,
	    .mtu = 1400,
	};

	if (peer_dhcp_parse(data, size, &req) != 0)
		return 0;
	/* Leased or not, by the MAC's last byte. */
	uint32_t leased = req.chaddr[5] & 1 ? 0xac1f050au : 0;
	enum peer_dhcp_type t = peer_dhcp_answer(&cfg, &req, leased, &reply);
	if (t == PEER_DHCP_NONE)
		return 0;
	if (!leased)
		abort(); /* only leased MACs get answers */
	size_t n = peer_dhcp_build(&reply, out, sizeof(out));
	if (n < PEER_DHCP_REPLY_MIN || n > sizeof(out) ||
	    peer_dhcp_parse(out, n, &back) != 0 || back.type != t ||
	    back.xid != req.xid || back.yiaddr != reply.yiaddr ||
	    memcmp(back.chaddr, req.chaddr, 6) != 0)
		abort();
	return 0;
}
