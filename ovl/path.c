/*
 * Path choice for one peer, with no I/O and the time passed in: the
 * configured ways (direct, then gateways in order), the one in use, and the
 * timers that move off a dead one. As WireGuard's timers.c does for
 * handshakes: a side that receives data and has nothing to send answers
 * with a keepalive, so a sender that hears nothing at all for a while knows
 * the path is gone, not merely quiet.
 */
#include "ovl_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

void ovl_paths_init(struct ovl_pathset *ps)
{
	memset(ps, 0, sizeof(*ps));
	ps->list[0].kind = OVL_PATH_DIRECT;
	ps->n = 1;
}

void ovl_paths_set(struct ovl_pathset *ps, bool direct_ok,
                   const uint8_t (*via)[OVL_KEY_BYTES], size_t n_via,
                   uint64_t now_ms)
{
	struct ovl_path old = *ovl_paths_current(ps);
	int n = 0;

	memset(ps->list, 0, sizeof(ps->list));
	if (direct_ok)
		ps->list[n++].kind = OVL_PATH_DIRECT;
	for (size_t i = 0; i < n_via && n < OVL_VIA_MAX + 1; i++) {
		ps->list[n].kind = OVL_PATH_VIA;
		memcpy(ps->list[n++].via, via[i], OVL_KEY_BYTES);
	}
	ps->n = n;
	ps->cur = n ? 0 : -1;
	memset(&ps->learned, 0, sizeof(ps->learned));
	ps->hs_since_ms = ps->data_since_ms = 0;
	ps->probe_ms = now_ms;
	if (!ovl_path_equal(&old, ovl_paths_current(ps)))
		ps->changes++;
}

const struct ovl_path *ovl_paths_current(const struct ovl_pathset *ps)
{
	return ps->cur >= 0 ? &ps->list[ps->cur] : &ps->learned;
}

bool ovl_path_equal(const struct ovl_path *a, const struct ovl_path *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == OVL_PATH_VIA)
		return memcmp(a->via, b->via, OVL_KEY_BYTES) == 0;
	if (a->kind == OVL_PATH_VIA_ADDR)
		return a->addr_len == b->addr_len &&
		       memcmp(&a->addr, &b->addr, a->addr_len) == 0;
	return true;
}

bool ovl_paths_has_via(const struct ovl_pathset *ps,
                       const uint8_t pk[OVL_KEY_BYTES])
{
	for (int i = 0; i < ps->n; i++)
		if (ps->list[i].kind == OVL_PATH_VIA &&
		    memcmp(ps->list[i].via, pk, OVL_KEY_BYTES) == 0)
			return true;
	return false;
}

void ovl_paths_sent(struct ovl_pathset *ps, uint64_t now_ms, bool data)
{
	ps->last_tx_ms = now_ms;
	if (data && !ps->data_since_ms)
		ps->data_since_ms = now_ms ? now_ms : 1;
}

void ovl_paths_initiated(struct ovl_pathset *ps, uint64_t now_ms)
{
	if (!ps->hs_since_ms)
		ps->hs_since_ms = now_ms ? now_ms : 1;
}

static void set_current(struct ovl_pathset *ps, int cur,
                        const struct ovl_path *learned, uint64_t now_ms)
{
	bool was_direct = ovl_paths_current(ps)->kind == OVL_PATH_DIRECT;

	ps->cur = cur;
	if (cur < 0)
		ps->learned = *learned;
	ps->changes++;
	/* The direct path is probed some time after we leave it, not at once.
	 */
	if (was_direct && ovl_paths_current(ps)->kind != OVL_PATH_DIRECT)
		ps->probe_ms = now_ms;
}

bool ovl_paths_received(struct ovl_pathset *ps, uint64_t now_ms, bool data,
                        const struct ovl_path *arrival)
{
	ps->hs_since_ms = ps->data_since_ms = 0;
	if (data)
		ps->last_rx_data_ms = now_ms ? now_ms : 1;
	if (!arrival || arrival->kind == OVL_PATH_NONE ||
	    ovl_path_equal(arrival, ovl_paths_current(ps)))
		return false;
	for (int i = 0; i < ps->n; i++) {
		if (ovl_path_equal(arrival, &ps->list[i])) {
			set_current(ps, i, NULL, now_ms);
			return true;
		}
	}
	set_current(ps, -1, arrival, now_ms);
	return true;
}

bool ovl_paths_learn(struct ovl_pathset *ps, uint64_t now_ms,
                     const struct ovl_path *arrival)
{
	if (ovl_path_equal(arrival, ovl_paths_current(ps)))
		return false;
	for (int i = 0; i < ps->n; i++) {
		if (ovl_path_equal(arrival, &ps->list[i])) {
			set_current(ps, i, NULL, now_ms);
			return true;
		}
	}
	return false;
}

bool ovl_paths_rotate(struct ovl_pathset *ps, uint64_t now_ms)
{
	ps->hs_since_ms = ps->data_since_ms = 0;
	if (ps->n == 0 || (ps->n == 1 && ps->cur == 0))
		return false;
	set_current(ps, ps->cur < 0 ? 0 : (ps->cur + 1) % ps->n, NULL, now_ms);
	return true;
}

unsigned ovl_paths_tick(struct ovl_pathset *ps, uint64_t now_ms)
{
	unsigned act = 0;

	if ((ps->hs_since_ms &&
	     now_ms - ps->hs_since_ms >= OVL_PATH_HANDSHAKE_MS) ||
	    (ps->data_since_ms &&
	     now_ms - ps->data_since_ms >= OVL_PATH_DEAD_MS)) {
		/* Even with one path, a new handshake is the way to learn
		 * whether the far side lost its session. */
		ovl_paths_rotate(ps, now_ms);
		act |= OVL_PATH_ACT_ROTATED;
	}
	if (ps->last_rx_data_ms && ps->last_rx_data_ms >= ps->last_tx_ms &&
	    now_ms - ps->last_rx_data_ms >= OVL_PATH_KEEPALIVE_MS)
		act |= OVL_PATH_ACT_KEEPALIVE;
	if (ps->n && ps->list[0].kind == OVL_PATH_DIRECT &&
	    ovl_paths_current(ps)->kind != OVL_PATH_DIRECT &&
	    !(act & OVL_PATH_ACT_ROTATED) &&
	    now_ms - ps->probe_ms >= OVL_PATH_DIRECT_RETRY_MS) {
		ps->probe_ms = now_ms;
		act |= OVL_PATH_ACT_PROBE;
	}
	return act;
}

void ovl_path_describe(const struct ovl_path *p, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	switch (p->kind) {
	case OVL_PATH_DIRECT:
		snprintf(out, n, "direct");
		return;
	case OVL_PATH_VIA:
		snprintf(out, n, "via %02x%02x%02x%02x", p->via[0], p->via[1],
		         p->via[2], p->via[3]);
		return;
	case OVL_PATH_VIA_ADDR:
		if (p->addr.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&p->addr;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (p->addr.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)&p->addr;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
		snprintf(out, n, "via %s:%u", host, port);
		return;
	default:
		snprintf(out, n, "none");
		return;
	}
}
