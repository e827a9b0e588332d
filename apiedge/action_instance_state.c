/*
 * StopInstances, StartInstances, RebootInstances and TerminateInstances.
 * Every id is checked and loaded first (a malformed or unknown one fails
 * the whole call before anything happens, as on EC2); then the hosts are
 * asked in parallel (api_cloud.instance_op) and the call answers once the
 * last of them did. A request that is already satisfied (stopping what is
 * stopped, terminating what is terminated) asks no host and reports the
 * state as it is, which is what EC2 does too.
 */
#include "apiedge_int.h"

#include "instance.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct op_batch;

struct op_item {
	struct op_batch *batch;
	const char *id; /* borrowed from the call's params */
	int previous, current;
	int status; /* 0 or the host's negative errno */
	char message[256];
};

struct op_batch {
	struct api_call *call;
	enum api_instance_op op;
	size_t n, waiting;
	struct op_item items[];
};

/* What each action asks, and which states need no host at all. */
static bool already_done(enum api_instance_op op, enum mc_instance_state s)
{
	switch (op) {
	case API_OP_STOP:
	case API_OP_FORCE_STOP:
		return s == MC_INST_STOPPED || s == MC_INST_STOPPING;
	case API_OP_START:
		return s == MC_INST_RUNNING || s == MC_INST_PENDING;
	case API_OP_TERMINATE:
		return s == MC_INST_TERMINATED || s == MC_INST_SHUTTING_DOWN;
	default:
		return false;
	}
}

/* States from which EC2 refuses the action outright. */
static const char *refused(enum api_instance_op op, enum mc_instance_state s)
{
	bool gone = s == MC_INST_TERMINATED || s == MC_INST_SHUTTING_DOWN;
	switch (op) {
	case API_OP_STOP:
	case API_OP_FORCE_STOP:
		return gone ? "stopped" : NULL;
	case API_OP_START:
		return gone || s == MC_INST_STOPPING ? "started" : NULL;
	case API_OP_REBOOT:
		return s != MC_INST_RUNNING && s != MC_INST_PENDING ? "rebooted"
		                                                    : NULL;
	default:
		return NULL;
	}
}

static const char *action_name(enum api_instance_op op)
{
	switch (op) {
	case API_OP_START:
		return "StartInstances";
	case API_OP_REBOOT:
		return "RebootInstances";
	case API_OP_TERMINATE:
		return "TerminateInstances";
	default:
		return "StopInstances";
	}
}

/* The answer once every host answered; 0 or -1 with call->err. */
static int batch_answer(struct op_batch *b)
{
	struct api_call *call = b->call;
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].status)
			return api_instance_op_error(call, b->items[i].status,
			                             b->items[i].message,
			                             b->items[i].id);
	const char *name = action_name(b->op);
	struct mc_buf *o = call->out;
	api_xml_response_begin(o, name, call->version, call->request_id);
	if (b->op == API_OP_REBOOT) {
		api_xml_elem(o, "return", "true");
	} else {
		api_xml_open(o, "instancesSet");
		for (size_t i = 0; i < b->n; i++) {
			api_xml_open(o, "item");
			api_xml_elem(o, "instanceId", b->items[i].id);
			api_instance_state_xml(o, "currentState",
			                       b->items[i].current);
			api_instance_state_xml(o, "previousState",
			                       b->items[i].previous);
			api_xml_close(o, "item");
		}
		api_xml_close(o, "instancesSet");
	}
	api_xml_response_end(o, name);
	return 0;
}

static void on_op(void *ctx, int status, const char *message,
                  const struct mc_instance *after, const uint8_t *data,
                  size_t len)
{
	(void)data;
	(void)len;
	struct op_item *it = ctx;
	struct op_batch *b = it->batch;
	it->status = status;
	if (status == 0 && after)
		it->current = (int)after->state;
	else if (status == 0)
		it->status = -EIO;
	snprintf(it->message, sizeof(it->message), "%s",
	         message ? message : "");
	if (--b->waiting)
		return;
	struct api_call *call = b->call;
	int rc = batch_answer(b);
	free(b);
	api_call_finish(call, rc);
}

static int instances_op(struct api_call *call, enum api_instance_op op)
{
	const char **ids = xcalloc(API_INSTANCE_IDS_MAX, sizeof(*ids));
	struct mc_instance *recs = NULL;
	int rc = -1;
	long n = api_instance_ids(call, "InstanceId", ids, true);
	if (n < 0)
		goto out;
	if (op == API_OP_STOP) {
		bool force;
		if (api_param_bool(call, "Force", false, &force) < 0)
			goto out;
		op = force ? API_OP_FORCE_STOP : op;
	}
	recs = xcalloc((size_t)n, sizeof(*recs));
	if (api_instances_load(call, ids, (size_t)n, recs) < 0)
		goto out;
	for (long i = 0; i < n; i++) {
		const char *verb = refused(op, recs[i].state);
		if (verb) {
			api_error_set(
			    &call->err, "IncorrectInstanceState",
			    "The instance '%s' is not in a state from "
			    "which it can be %s.",
			    ids[i], verb);
			goto clear;
		}
	}
	if (api_dry_run(call))
		goto clear;
	if (!call->cloud->instance_op || !call->finish) {
		api_res_failed(call, ENOSYS);
		goto clear;
	}
	struct op_batch *b =
	    xcalloc(1, sizeof(*b) + (size_t)n * sizeof(b->items[0]));
	b->call = call;
	b->op = op;
	b->n = (size_t)n;
	/* A guard count while asking, though no answer comes from within. */
	b->waiting = 1;
	for (long i = 0; i < n; i++) {
		struct op_item *it = &b->items[i];
		it->batch = b;
		it->id = ids[i];
		it->previous = it->current = (int)recs[i].state;
		if (already_done(op, recs[i].state))
			continue;
		struct api_instance_request req = {
		    .op = op,
		    .account = call->auth->key.account_id,
		    .instance_id = ids[i],
		};
		b->waiting++;
		int r =
		    call->cloud->instance_op(call->cloud->arg, &req, on_op, it);
		if (r < 0) {
			b->waiting--;
			it->status = r;
			snprintf(it->message, sizeof(it->message), "%s",
			         strerror(-r));
		}
	}
	if (--b->waiting) {
		rc = API_ACTION_PENDING;
	} else {
		rc = batch_answer(b);
		free(b);
	}
clear:
	for (long i = 0; i < n; i++)
		mc_instance_clear(&recs[i]);
out:
	free(recs);
	free(ids);
	return rc;
}

int api_action_stop_instances(struct api_call *call)
{
	return instances_op(call, API_OP_STOP);
}

int api_action_start_instances(struct api_call *call)
{
	return instances_op(call, API_OP_START);
}

int api_action_reboot_instances(struct api_call *call)
{
	return instances_op(call, API_OP_REBOOT);
}

int api_action_terminate_instances(struct api_call *call)
{
	return instances_op(call, API_OP_TERMINATE);
}
