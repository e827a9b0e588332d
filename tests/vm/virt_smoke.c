/*
 * virt_smoke: drives peer/virt.c against a real libvirt daemon with the
 * tiny test image (tests/vm/test_virt_smoke.py sets the stage).
 *
 * One guest goes through: overlay disk, start (transient), boot to its
 * console line, reset (reboots in place), ACPI shutdown, start again as a
 * persistent domain, destroy (it stays defined and listed), undefine. Every
 * state change is waited for through the driver's event callback only; the
 * program never asks libvirt for a state to learn that one changed. Only
 * the console file is read periodically (it is a plain file).
 *
 * Prints "virt_smoke: ..." lines with timings; exits 0 when all went well.
 */
#include "virt.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXPECT 8
#define UP_LINE    "mallee-tiny: up"
/* The end of the tiny image's boot script when it was given user data. */
#define DONE_LINE "mallee-tiny: user-data exited"

enum step {
	S_CONNECT,
	S_LIST_EMPTY,
	S_OVERLAY,
	S_BOOT1,
	S_RESET,
	S_SHUTDOWN,
	S_BOOT2,
	S_DESTROY,
	S_SHUTOFF,
	S_UNDEFINE,
	S_GONE,
	S_DONE,
};

struct smoke {
	uv_loop_t loop;
	struct virt *virt;
	struct virt_req req;
	uv_timer_t poll;     /* reads the console file */
	uv_timer_t deadline; /* bounds each step */
	enum step step;
	bool failed;
	/* Arguments. */
	const char *uri, *kernel, *initrd, *cmdline, *bridge, *dir;
	enum virt_type type;
	const char *expect[MAX_EXPECT];
	int n_expect;
	unsigned timeout_s;
	/* The guest. */
	char name[VIRT_NAME_MAX + 1];
	char console[512], base[512], overlay[512];
	struct virt_spec spec;
	/* What the event path delivered. */
	int started, stopped, rebooted, shutdowns, defined, undefined;
	enum virt_stop_reason last_stop;
	uint64_t max_handback_ns;
	/* Progress within a step. */
	bool req_done;
	int ups_wanted, ups_seen;
	uint64_t t_step, t_start_call;
	char *text; /* the console so far */
	size_t text_len;
};

static void next(struct smoke *s);

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("virt_smoke: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static void on_closed(void *arg)
{
	struct smoke *s = arg;
	s->virt = NULL;
}

/* Ends the run: stops timers and the driver so the loop empties. */
static void finish(struct smoke *s, bool failed)
{
	if (failed)
		s->failed = true;
	s->step = S_DONE;
	uv_timer_stop(&s->poll);
	uv_timer_stop(&s->deadline);
	if (s->virt)
		virt_close(s->virt, on_closed, s);
}

static void fail(struct smoke *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct smoke *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("virt_smoke: FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	finish(s, true);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* The console file as written so far (the guest only appends). */
static void console_read(struct smoke *s)
{
	int fd = open(s->console, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	ssize_t n;
	if (lseek(fd, (off_t)s->text_len, SEEK_SET) >= 0) {
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			s->text = realloc(s->text, s->text_len + (size_t)n + 1);
			if (!s->text)
				abort();
			memcpy(s->text + s->text_len, buf, (size_t)n);
			s->text_len += (size_t)n;
			s->text[s->text_len] = '\0';
		}
	}
	close(fd);
}

static bool console_has_up(struct smoke *s)
{
	return s->text && count(s->text, UP_LINE) >= s->ups_wanted;
}

/* The first boot's lines from DHCP, the disk and the metadata service. */
static bool console_has_expected(struct smoke *s)
{
	for (int i = 0; i < s->n_expect; i++) {
		if (!s->text || !strstr(s->text, s->expect[i]))
			return false;
	}
	return true;
}

/* A step is over when its request is back and what it waits for is seen. */
static void check(struct smoke *s)
{
	if (s->step == S_DONE || !s->req_done)
		return;
	bool ok = false;
	switch (s->step) {
	case S_BOOT1:
	case S_BOOT2:
		ok = s->started >= (s->step == S_BOOT1 ? 1 : 2) &&
		     (s->step == S_BOOT1 || s->defined >= 1) &&
		     console_has_up(s) &&
		     (s->step == S_BOOT2 ||
		      (console_has_expected(s) && count(s->text, DONE_LINE)));
		break;
	case S_RESET:
		/* The power button comes next: let the boot script finish
		 * first, so the shutdown does not race the guest's init. */
		ok = s->rebooted >= 1 && console_has_up(s) && s->text &&
		     count(s->text, DONE_LINE) >= 2;
		break;
	case S_SHUTDOWN:
		ok = s->stopped >= 1;
		if (ok && s->last_stop != VIRT_STOP_SHUTDOWN) {
			fail(s, "shutdown stopped it as '%s'",
			     virt_stop_reason_name(s->last_stop));
			return;
		}
		break;
	case S_DESTROY:
		ok = s->stopped >= 2;
		if (ok && s->last_stop != VIRT_STOP_DESTROYED) {
			fail(s, "destroy stopped it as '%s'",
			     virt_stop_reason_name(s->last_stop));
			return;
		}
		break;
	case S_UNDEFINE:
		ok = s->undefined >= 1;
		break;
	default:
		ok = true;
	}
	if (!ok)
		return;
	say("step %d done in %.2f s", s->step, secs(uv_hrtime() - s->t_step));
	s->step++;
	next(s);
}

static void on_event(struct virt *virt, const struct virt_event *ev, void *arg)
{
	struct smoke *s = arg;
	(void)virt;
	uint64_t now = uv_hrtime();
	if (now - ev->received_ns > s->max_handback_ns)
		s->max_handback_ns = now - ev->received_ns;
	if (ev->kind == VIRT_EV_DISCONNECTED) {
		fail(s, "lost the connection to libvirtd (reason %d)",
		     ev->detail);
		return;
	}
	if (strcmp(ev->name, s->name) != 0)
		return;
	say("event %s (%s, detail %d) %.2f s into the step, hand-back %.3f "
	    "ms",
	    virt_event_name(ev->kind), virt_stop_reason_name(ev->reason),
	    ev->detail, secs(now - s->t_step),
	    (double)(now - ev->received_ns) / 1e6);
	switch (ev->kind) {
	case VIRT_EV_STARTED:
		s->started++;
		break;
	case VIRT_EV_STOPPED:
		s->stopped++;
		s->last_stop = ev->reason;
		break;
	case VIRT_EV_REBOOTED:
		s->rebooted++;
		break;
	case VIRT_EV_SHUTDOWN:
		s->shutdowns++;
		break;
	case VIRT_EV_DEFINED:
		s->defined++;
		break;
	case VIRT_EV_UNDEFINED:
		s->undefined++;
		break;
	case VIRT_EV_CRASHED: {
		fail(s, "the guest crashed");
		return;
	}
	default:
		break;
	}
	check(s);
}

static void on_poll(uv_timer_t *t)
{
	struct smoke *s = t->data;
	size_t before = s->text_len;
	console_read(s);
	if (s->text_len == before)
		return;
	int ups = count(s->text, UP_LINE);
	if (ups > s->ups_seen) {
		s->ups_seen = ups;
		say("console '%s' #%d %.2f s into the step", UP_LINE, ups,
		    secs(uv_hrtime() - s->t_step));
	}
	check(s);
}

static void on_deadline(uv_timer_t *t)
{
	struct smoke *s = t->data;
	fail(s,
	     "step %d: nothing after %u s (started %d, stopped %d, "
	     "rebooted %d; console: %s)",
	     s->step, s->timeout_s, s->started, s->stopped, s->rebooted,
	     s->text ? s->text : "(empty)");
}

static void on_req(struct virt_req *req)
{
	struct smoke *s = req->data;
	uint64_t took = uv_hrtime() - s->t_start_call;
	if (s->step == S_DONE)
		return;
	if (req->status < 0) {
		fail(s, "step %d: %s (%s)", s->step, strerror(-req->status),
		     req->error);
		virt_req_cleanup(req);
		return;
	}
	say("step %d: request back in %.2f s", s->step, secs(took));
	switch (s->step) {
	case S_CONNECT:
		say("connected, domain type %s", virt_type_name(s->virt));
		break;
	case S_LIST_EMPTY:
		for (size_t i = 0; i < req->n_domains; i++) {
			if (strcmp(req->domains[i].name, s->name) == 0) {
				virt_req_cleanup(req);
				{
					fail(s, "%s exists already", s->name);
					return;
				}
			}
		}
		break;
	case S_SHUTOFF: {
		/* Destroyed but defined: listed for re-adoption. */
		const struct virt_domain *d = NULL;
		for (size_t i = 0; i < req->n_domains; i++) {
			if (strcmp(req->domains[i].name, s->name) == 0)
				d = &req->domains[i];
		}
		if (!d || !d->persistent || d->state != VIRT_STATE_SHUTOFF ||
		    memcmp(d->uuid, s->spec.uuid, 16) != 0) {
			fail(s, "destroyed persistent domain: %s",
			     d ? virt_state_name(d->state) : "not listed");
			virt_req_cleanup(req);
			return;
		}
		say("listed as persistent, %s", virt_state_name(d->state));
		break;
	}
	case S_GONE:
		if (req->state != VIRT_STATE_NONE) {
			fail(s, "destroyed domain still '%s'",
			     virt_state_name(req->state));
			return;
		}
		break;
	default:
		break;
	}
	virt_req_cleanup(req);
	s->req_done = true;
	check(s);
}

/* Begins step s->step. */
static void next(struct smoke *s)
{
	int err = 0;
	s->req_done = false;
	s->t_step = s->t_start_call = uv_hrtime();
	uv_timer_start(&s->deadline, on_deadline, s->timeout_s * 1000ull, 0);
	switch (s->step) {
	case S_CONNECT:
		err = virt_connect(s->virt, &s->req, on_req);
		break;
	case S_LIST_EMPTY:
		err = virt_list(s->virt, &s->req, "mallee-smoke-", on_req);
		break;
	case S_OVERLAY:
		err = virt_overlay(s->virt, &s->req, s->base, "raw", s->overlay,
		                   0, on_req);
		break;
	case S_BOOT1:
	case S_BOOT2:
		s->ups_wanted = s->step == S_BOOT1 ? 1 : 3;
		s->spec.persistent = s->step == S_BOOT2;
		err = virt_start(s->virt, &s->req, &s->spec, on_req);
		break;
	case S_RESET:
		for (int i = 0; i < s->n_expect; i++)
			say("console has '%s'", s->expect[i]);
		s->ups_wanted = 2;
		err = virt_reset(s->virt, &s->req, s->name, on_req);
		break;
	case S_SHUTDOWN:
		err = virt_shutdown(s->virt, &s->req, s->name, on_req);
		break;
	case S_DESTROY:
		err = virt_destroy(s->virt, &s->req, s->name, on_req);
		break;
	case S_SHUTOFF:
		err = virt_list(s->virt, &s->req, "mallee-smoke-", on_req);
		break;
	case S_GONE:
		err = virt_state_query(s->virt, &s->req, s->name, on_req);
		break;
	case S_UNDEFINE:
		err = virt_undefine(s->virt, &s->req, s->name, on_req);
		break;
	case S_DONE:
		say("largest event hand-back %.3f ms",
		    (double)s->max_handback_ns / 1e6);
		if (s->max_handback_ns > 1000000000ull) {
			fail(s, "events reached the loop late");
			return;
		}
		say("OK");
		finish(s, false);
		return;
	}
	if (err < 0)
		fail(s, "step %d: synchronous %s", s->step, strerror(-err));
}

static void usage(void)
{
	fprintf(stderr, "usage: virt_smoke --uri URI --kernel F --initrd F "
	                "--bridge BR --dir DIR [--cmdline S] [--type "
	                "auto|kvm|qemu] [--expect LINE]... [--timeout S]\n");
	exit(2);
}

static void parse(struct smoke *s, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"uri", required_argument, NULL, 'u'},
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"bridge", required_argument, NULL, 'b'},
	    {"dir", required_argument, NULL, 'd'},
	    {"type", required_argument, NULL, 't'},
	    {"expect", required_argument, NULL, 'e'},
	    {"timeout", required_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	s->cmdline = "console=ttyS0 quiet";
	s->timeout_s = 90;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			s->uri = optarg;
			break;
		case 'k':
			s->kernel = optarg;
			break;
		case 'i':
			s->initrd = optarg;
			break;
		case 'c':
			s->cmdline = optarg;
			break;
		case 'b':
			s->bridge = optarg;
			break;
		case 'd':
			s->dir = optarg;
			break;
		case 't':
			if (strcmp(optarg, "kvm") == 0)
				s->type = VIRT_TYPE_KVM;
			else if (strcmp(optarg, "qemu") == 0)
				s->type = VIRT_TYPE_QEMU;
			else if (strcmp(optarg, "auto") != 0)
				usage();
			break;
		case 'e':
			if (s->n_expect == MAX_EXPECT)
				usage();
			s->expect[s->n_expect++] = optarg;
			break;
		case 'T':
			s->timeout_s = (unsigned)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (!s->uri || !s->kernel || !s->initrd || !s->bridge || !s->dir ||
	    s->timeout_s == 0)
		usage();
}

/* The guest: tiny image, a COW disk over an empty raw base, one NIC. */
static int make_spec(struct smoke *s)
{
	unsigned pid = (unsigned)getpid();
	snprintf(s->name, sizeof(s->name), "mallee-smoke-%u", pid);
	snprintf(s->console, sizeof(s->console), "%s/console.log", s->dir);
	snprintf(s->base, sizeof(s->base), "%s/base.raw", s->dir);
	snprintf(s->overlay, sizeof(s->overlay), "%s/root.qcow2", s->dir);
	unlink(s->console);
	unlink(s->overlay);
	int fd = open(s->base, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 64 << 20) < 0) {
		perror(s->base);
		return -1;
	}
	close(fd);
	struct virt_spec *sp = &s->spec;
	sp->name = s->name;
	for (int i = 0; i < 16; i++)
		sp->uuid[i] = (uint8_t)(pid >> (i % 4 * 8)) ^ (uint8_t)(i * 37);
	sp->uuid[6] = (sp->uuid[6] & 0x0f) | 0x40; /* version 4 */
	sp->uuid[8] = (sp->uuid[8] & 0x3f) | 0x80;
	sp->vcpus = 1;
	sp->memory_mib = 128;
	sp->kernel = s->kernel;
	sp->initrd = s->initrd;
	sp->cmdline = s->cmdline;
	sp->disk = s->overlay;
	sp->disk_format = "qcow2";
	sp->console_log = s->console;
	sp->bridge = s->bridge;
	const uint8_t mac[6] = {
	    0x52,        0x54, 0x00, (uint8_t)(pid >> 16), (uint8_t)(pid >> 8),
	    (uint8_t)pid};
	memcpy(sp->mac, mac, 6);
	return 0;
}

int main(int argc, char **argv)
{
	static struct smoke s;
	parse(&s, argc, argv);
	if (make_spec(&s) < 0)
		return 1;
	uv_loop_init(&s.loop);
	s.req.data = &s;
	uv_timer_init(&s.loop, &s.poll);
	uv_timer_init(&s.loop, &s.deadline);
	s.poll.data = s.deadline.data = &s;
	s.virt = virt_new(&s.loop, s.uri, s.type, on_event, &s);
	if (!s.virt) {
		fprintf(stderr, "virt_smoke: virt_new failed\n");
		return 1;
	}
	uv_timer_start(&s.poll, on_poll, 100, 100);
	uint64_t t0 = uv_hrtime();
	next(&s);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	say("total %.2f s", secs(uv_hrtime() - t0));

	uv_close((uv_handle_t *)&s.poll, NULL);
	uv_close((uv_handle_t *)&s.deadline, NULL);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s.loop) != 0) {
		fprintf(stderr, "virt_smoke: handles left on the loop\n");
		return 1;
	}
	free(s.text);
	if (s.virt)
		return 1; /* never closed */
	return s.failed ? 1 : 0;
}
