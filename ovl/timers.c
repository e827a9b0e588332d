/*
 * All timing policy of the tunnels in one place, as WireGuard's timers.c:
 * handshake retries, rekeying, and the expiry that wipes old keys.
 */
#include "ovl_int.h"

#include <stdlib.h>

static void session_drop(struct ovl_core *core, struct ovl_session **sp)
{
	if (!*sp)
		return;
	ovl_index_remove(core, *sp);
	ovl_noise_wipe(*sp, sizeof(**sp));
	free(*sp);
	*sp = NULL;
}

/* An initiation went unanswered: retry for a while, then give up. */
static bool timer_retransmit(struct ovl_tunnel *t, uint64_t now_ms)
{
	if (t->hs.state != OVL_HS_INIT_SENT ||
	    now_ms - t->hs_sent_ms < OVL_REKEY_TIMEOUT_MS)
		return false;
	if (now_ms - t->hs_first_ms < OVL_REKEY_ATTEMPT_MS)
		return true;
	session_drop(t->core, &t->hs.index_slot);
	ovl_hs_set_state(t, OVL_HS_NONE);
	ovl_noise_wipe(&t->hs, sizeof(t->hs));
	t->hs_first_ms = 0;
	return false;
}

/* Sessions past their lifetime are wiped, not merely left unused. */
static void timer_expire(struct ovl_tunnel *t, uint64_t now_ms)
{
	struct ovl_core *core = t->core;

	if (t->previous &&
	    now_ms - t->previous_since_ms >= OVL_PREVIOUS_KEEP_MS)
		session_drop(core, &t->previous);
	if (t->current &&
	    now_ms - t->current->created_ms >= OVL_REJECT_AFTER_MS)
		session_drop(core, &t->current);
	if (t->next_session &&
	    now_ms - t->next_session->created_ms >= OVL_REJECT_AFTER_MS)
		session_drop(core, &t->next_session);
}

/* The initiator of a session starts the next one before it expires. */
static bool timer_rekey(struct ovl_tunnel *t, uint64_t now_ms)
{
	const struct ovl_session *s = t->current;

	if (!s || t->hs.state == OVL_HS_INIT_SENT || !s->initiator)
		return false;
	return now_ms - s->created_ms >= OVL_REKEY_AFTER_MS ||
	       atomic_load(&s->send_counter) >= OVL_REKEY_AFTER_MSGS;
}

void ovl_core_tick(struct ovl_core *core, uint64_t now_ms,
                   void (*initiate)(void *ctx, struct ovl_tunnel *t), void *ctx)
{
	struct ovl_tunnel *t, *next;

	for (t = core->tunnels; t; t = next) {
		next = t->next;
		timer_expire(t, now_ms);
		bool go = timer_retransmit(t, now_ms) || timer_rekey(t, now_ms);

		if (go && initiate)
			initiate(ctx, t);
	}
}
