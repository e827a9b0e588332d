/*
 * Re-adoption: after a start (even one after kill -9) or a reconnection to
 * the hypervisor, the table of instance records and the daemon's domains
 * are made to agree without starting anything twice. And the watch: an
 * edge that could not reach this host may have written a local instance's
 * record itself (terminated it); this host then does what it says.
 */
#include "instances_int.h"

#include "hostnet.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading ---- */

static int load_one(const struct peer_record *r, void *arg)
{
	struct peer_instances *pi = arg;
	struct mc_instance rec;
	if (mc_instance_unpack(r->body, r->body_len, &rec) != 0)
		return 0;
	if (strcmp(rec.host, pi->p->id) == 0 &&
	    rec.state != MC_INST_TERMINATED && !inst_find(pi, rec.id)) {
		struct inst *in = inst_add(pi, &rec);
		in->hlc = r->hlc;
		memcpy(in->writer, r->writer, sizeof(in->writer));
	}
	mc_instance_clear(&rec);
	return 0;
}

int inst_load(struct peer_instances *pi)
{
	int r = peer_store_list(pi->p->store, MC_INSTANCE_KIND, false, load_one,
	                        pi);
	unsigned n = 0;
	for (struct inst *in = pi->list; in; in = in->next)
		n++;
	if (r == 0 && n)
		mc_info(INST_SUB, "%u instance records of this host", n);
	return r;
}

/* ---- domains without an instance in the table ---- */

struct orphan {
	struct peer_instances *pi;
	const char *name;
	struct mc_instance rec;
	bool found;
};

static int find_record(const struct peer_record *r, void *arg)
{
	struct orphan *o = arg;
	const char *colon = strchr(r->id, ':');
	if (!colon || strcmp(colon + 1, o->name) != 0)
		return 0;
	struct mc_instance rec;
	if (mc_instance_unpack(r->body, r->body_len, &rec) != 0)
		return 0;
	if (strcmp(rec.host, o->pi->p->id) != 0) {
		mc_instance_clear(&rec);
		return 0;
	}
	o->rec = rec;
	o->found = true;
	return 1;
}

static void orphan_destroyed(struct virt_req *req)
{
	char *name = req->data;
	if (req->status && req->status != -ENOENT)
		mc_warn(INST_SUB, "%s: destroy failed: %s", name, req->error);
	else
		mc_info(INST_SUB, "%s: domain of a terminated instance gone",
		        name);
	virt_req_cleanup(req);
	free(name);
	free(req);
}

/*
 * A domain named like an instance that the table lacks: a terminated
 * instance of this host (terminated elsewhere while this peer was down)
 * goes; anything else is left alone, since the daemon may be shared.
 */
static void orphan(struct peer_instances *pi, const struct virt_domain *d)
{
	struct orphan o = {.pi = pi, .name = d->name};
	peer_store_list(pi->p->store, MC_INSTANCE_KIND, false, find_record, &o);
	if (!o.found) {
		mc_warn(INST_SUB,
		        "domain %s is no instance of this host; left "
		        "alone",
		        d->name);
		return;
	}
	mc_info(INST_SUB,
	        "%s: terminated while this peer was away; cleaning "
	        "up",
	        d->name);
	if (d->state == VIRT_STATE_RUNNING || d->state == VIRT_STATE_PAUSED ||
	    d->state == VIRT_STATE_SHUTDOWN || d->state == VIRT_STATE_CRASHED) {
		struct virt_req *req = xcalloc(1, sizeof(*req));
		req->data = xstrdup(d->name);
		if (virt_destroy(pi->virt, req, d->name, orphan_destroyed)) {
			free(req->data);
			free(req);
		}
	}
	if (pi->hostnet_started)
		peer_hostnet_release(pi->p, o.rec.id);
	inst_remove_dir(pi, o.rec.id);
	mc_instance_clear(&o.rec);
}

/* ---- reconciling ---- */

static bool domain_runs(const struct virt_domain *d)
{
	return d->state == VIRT_STATE_RUNNING ||
	       d->state == VIRT_STATE_PAUSED || d->state == VIRT_STATE_SHUTDOWN;
}

static void adopt_running(struct inst *in)
{
	switch (in->rec.state) {
	case MC_INST_PENDING:
	case MC_INST_RUNNING:
		mc_info(INST_SUB, "%s: re-adopted its running domain (%s)",
		        in->rec.id, mc_instance_state_name(in->rec.state));
		in->dom = INST_DOM_UP;
		/* Still without an address: due from now (its start is
		 * not known here). */
		if (in->rec.state == MC_INST_PENDING &&
		    strcmp(in->rec.state_reason_code, "pending") != 0)
			in->address_due =
			    uv_now(in->pi->p->loop) + in->pi->address_due_ms;
		break;
	case MC_INST_STOPPING:
	case MC_INST_SHUTTING_DOWN:
		in->dom = INST_DOM_UP;
		inst_destroy(in, "finishing what was under way");
		break;
	case MC_INST_STOPPED:
		in->dom = INST_DOM_UP;
		inst_set_state(in, MC_INST_STOPPING, NULL, "%s", "");
		inst_destroy(in, "the record says stopped");
		break;
	default:
		break;
	}
}

/* Whether the stored record is newer than the one this table holds (it
 * came from another peer since): the watch takes it in first. */
static bool record_moved_on(struct inst *in)
{
	struct peer_record r;
	bool moved = false;
	if (peer_store_get(in->pi->p->store, MC_INSTANCE_KIND, in->rid, &r) ==
	    0) {
		moved = r.hlc != in->hlc || strcmp(r.writer, in->writer) != 0;
		peer_record_clear(&r);
	}
	return moved;
}

static void adopt_absent(struct inst *in)
{
	if (in->dom == INST_DOM_UP) {
		/* It went while the hypervisor was out of reach. */
		in->dom = INST_DOM_NONE;
		if (in->rec.state == MC_INST_PENDING ||
		    in->rec.state == MC_INST_RUNNING)
			inst_set_state(in, MC_INST_STOPPED,
			               "Server.InternalError",
			               "The domain vanished while the "
			               "hypervisor was unreachable");
		else
			inst_settle(in);
		return;
	}
	switch (in->rec.state) {
	case MC_INST_PENDING:
	case MC_INST_RUNNING:
		/*
		 * This host went down with it: boot it again, but only once
		 * this peer has caught up with the others' records. An edge
		 * may have terminated it while this host was dead; booting
		 * first would write a newer "pending" over that.
		 */
		if (record_moved_on(in) ||
		    (in->pi->p->net && !peer_net_synced(in->pi->p->net) &&
		     mc_wall_ms() - in->pi->p->started_ms < 30000)) {
			if (!in->boot_deferred)
				mc_info(INST_SUB,
				        "%s: to boot again after this peer "
				        "has synced",
				        in->rec.id);
			in->boot_deferred = true;
			return;
		}
		in->boot_deferred = false;
		in->rec.boots++;
		inst_set_state(in, MC_INST_PENDING, NULL, "%s", "");
		inst_launch(in);
		break;
	case MC_INST_STOPPING:
	case MC_INST_SHUTTING_DOWN:
		inst_settle(in);
		break;
	default:
		break;
	}
}

static void listed(struct virt_req *req)
{
	struct peer_instances *pi = req->data;
	if (pi->stopping) {
		/* pi lives until the driver has closed, after this. */
		virt_req_cleanup(req);
		free(req);
		return;
	}
	if (req->status) {
		mc_warn(INST_SUB, "cannot list domains: %s", req->error);
		virt_req_cleanup(req);
		free(req);
		return;
	}
	/* Snapshot the table: adopting may take instances out of it. */
	size_t n = 0;
	for (struct inst *in = pi->list; in; in = in->next)
		n++;
	struct inst **all = xcalloc(n + 1, sizeof(*all));
	n = 0;
	for (struct inst *in = pi->list; in; in = in->next) {
		inst_ref(in);
		all[n++] = in;
	}
	for (size_t i = 0; i < n; i++) {
		struct inst *in = all[i];
		const struct virt_domain *d = NULL;
		for (size_t k = 0; k < req->n_domains; k++)
			if (strcmp(req->domains[k].name, in->rec.id) == 0)
				d = &req->domains[k];
		if (in->gone || in->dom == INST_DOM_STARTING)
			continue;
		if (d && domain_runs(d))
			adopt_running(in);
		else
			adopt_absent(in);
	}
	for (size_t k = 0; k < req->n_domains; k++)
		if (!inst_find(pi, req->domains[k].name) &&
		    domain_runs(&req->domains[k])) {
			bool ours = false;
			for (size_t i = 0; i < n; i++)
				ours |= strcmp(all[i]->rec.id,
				               req->domains[k].name) == 0;
			if (!ours)
				orphan(pi, &req->domains[k]);
		}
	for (size_t i = 0; i < n; i++)
		inst_unref(all[i]);
	free(all);
	virt_req_cleanup(req);
	free(req);
	inst_capacity_update(pi);
}

void inst_adopt(struct peer_instances *pi)
{
	struct virt_req *req = xcalloc(1, sizeof(*req));
	req->data = pi;
	int r = virt_list(pi->virt, req, "i-", listed);
	if (r) {
		mc_warn(INST_SUB, "cannot list domains: %s", strerror(-r));
		free(req);
	}
}

/* ---- records written by others ---- */

static void watch_one(struct inst *in)
{
	struct peer *p = in->pi->p;
	struct peer_record r;
	if (peer_store_get(p->store, MC_INSTANCE_KIND, in->rid, &r) != 0)
		return;
	bool newer = r.hlc > in->hlc ||
	             (r.hlc == in->hlc && strcmp(r.writer, in->writer) > 0);
	if (!newer || strcmp(r.writer, p->id) == 0) {
		peer_record_clear(&r);
		return;
	}
	in->hlc = r.hlc;
	memcpy(in->writer, r.writer, sizeof(in->writer));
	struct mc_instance rec;
	bool ended = r.deleted;
	if (!r.deleted && mc_instance_unpack(r.body, r.body_len, &rec) == 0) {
		ended = rec.state == MC_INST_TERMINATED ||
		        rec.state == MC_INST_SHUTTING_DOWN;
		mc_instance_clear(&rec);
	}
	char writer[PEER_ID_HEX_LEN + 1];
	memcpy(writer, r.writer, sizeof(writer));
	peer_record_clear(&r);
	if (!ended) {
		/* Only a terminate is taken from others; this host's next
		 * write carries its own view again. */
		mc_debug(INST_SUB, "%s: record rewritten by %s", in->rec.id,
		         writer);
		return;
	}
	if (in->rec.state == MC_INST_SHUTTING_DOWN)
		return;
	mc_info(INST_SUB, "%s: terminated by %s", in->rec.id, writer);
	inst_ref(in);
	if (in->rec.state == MC_INST_STOPPED && in->dom == INST_DOM_NONE) {
		inst_terminated(in, "Client.UserInitiatedShutdown",
		                "User initiated shutdown");
	} else {
		inst_set_state(in, MC_INST_SHUTTING_DOWN, NULL, "%s", "");
		if (in->dom == INST_DOM_UP)
			inst_destroy(in, "terminated by another peer");
		else if (in->dom == INST_DOM_NONE)
			inst_settle(in);
	}
	inst_unref(in);
}

void inst_watch(struct peer_instances *pi)
{
	size_t n = 0;
	for (struct inst *in = pi->list; in; in = in->next)
		n++;
	if (!n)
		return;
	struct inst **all = xcalloc(n, sizeof(*all));
	n = 0;
	for (struct inst *in = pi->list; in; in = in->next) {
		inst_ref(in);
		all[n++] = in;
	}
	for (size_t i = 0; i < n; i++) {
		if (!all[i]->gone)
			watch_one(all[i]);
		inst_unref(all[i]);
	}
	free(all);
}

void inst_adopt_deferred(struct peer_instances *pi)
{
	for (struct inst *in = pi->list; in; in = in->next)
		if (in->boot_deferred && in->dom == INST_DOM_NONE)
			adopt_absent(in);
		else
			in->boot_deferred = false;
}
