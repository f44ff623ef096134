/*
 * cmd.c - the worker side of a command.
 *
 * Everything that can be done in the caller's thread is done there:
 * validation, encoding into the request's inline buffer (one malloc per
 * command), the Job-UUID. The reactor then only copies bytes into a
 * connection's output buffer. A blocking caller waits on the request's
 * completion word (futex, or the OpenSIPS-style poll), reads the result
 * and releases its reference; the TEARDOWN RULE in fsesl_queues.h says
 * which side frees the request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uuid/uuid.h>

#include "engine_int.h"

/* An encoder's FSESL_PERR_* code as the engine's error code. */
int
fsesl_map_enc_err(ssize_t n)
{

	switch ((int)n) {
	case FSESL_PERR_INJECTION:
		return FSESL_EINJECTION;
	case FSESL_PERR_UNLOAD_TRAP:
		return FSESL_EUNLOAD;
	case FSESL_PERR_TOO_LONG:
	case FSESL_PERR_BUFFER_TOO_SMALL:
		return FSESL_ETOOBIG;
	case FSESL_PERR_NOMEM:
		return -ENOMEM;
	default:
		return -EINVAL;
	}
}

enum cmd_kind { CMD_API, CMD_BGAPI, CMD_RAW };

struct cmd_in {
	enum cmd_kind kind;
	const char *text; /* api / bgapi */
	const struct fsesl_cmd *raw; /* raw */
};

/* Whether the server would replace c by its unload/reload of
 * mod_event_socket (only possible with FSESL_ENC_ALLOW_UNLOAD). */
static bool
springs_unload_trap(const struct fsesl_cmd *c)
{
	struct fsesl_cmd t = *c;

	t.flags &= ~(unsigned int)FSESL_ENC_ALLOW_UNLOAD;
	return fsesl_cmd_size(&t) == FSESL_PERR_UNLOAD_TRAP;
}

/*
 * The reply type the server will send for a command of this kind whose
 * line (api, bgapi: the argument) is c->line. The server takes a line for
 * an api when it starts with "api " in any case (its command words match
 * by prefix, ignoring case), so a raw "API status" is one and "apistatus"
 * is not; and a command that springs the unload trap is answered as the
 * api the server runs in its place.
 */
static uint8_t
expect_of(enum cmd_kind kind, const struct fsesl_cmd *c, unsigned int flags)
{

	if (kind == CMD_API || (kind == CMD_RAW && strncasecmp(c->line, "api ", 4) == 0))
		return FSESL_EXPECT_API;
	if ((flags & FSESL_ENC_ALLOW_UNLOAD) && springs_unload_trap(c))
		return FSESL_EXPECT_API;
	return FSESL_EXPECT_COMMAND_REPLY;
}

/*
 * opts as fsesl.h documents them (NULL: every default): a timeout of
 * milliseconds (> 0) or the default (< 0), never 0, whose meaning would
 * be a guess; a wait_mode of the enum; no unknown enc_flags bit.
 */
static int
opts_check(const fsesl_cmd_opts *opts)
{

	if (!opts)
		return 0;
	if (opts->timeout_ms == 0)
		return -EINVAL;
	if (opts->wait_mode != FSESL_WAIT_DEFAULT && opts->wait_mode != FSESL_WAIT_FUTEX &&
	    opts->wait_mode != FSESL_WAIT_POLL)
		return -EINVAL;
	if (opts->enc_flags & ~(unsigned int)FSESL_ENC_ALLOW_UNLOAD)
		return -EINVAL;
	return 0;
}

/* Builds the request with the packet encoded inline. */
static int
req_build(struct fsesl_engine *e, const struct cmd_in *in, const fsesl_cmd_opts *opts,
    struct fsesl_req **out)
{
	unsigned int flags = opts ? opts->enc_flags : 0;
	struct fsesl_req *r;
	struct fsesl_cmd raw;
	char job[40];
	uuid_t u;
	size_t cap;
	ssize_t n;

	/* Set on every path: gcc 12 at -O3 cannot prove that callers read
	 * *out only after a 0 return, and -Werror makes that fatal. */
	*out = NULL;
	if (opts_check(opts) != 0)
		return -EINVAL;
	switch (in->kind) {
	case CMD_API:
	case CMD_BGAPI:
		if (!in->text)
			return -EINVAL;
		cap = strlen(in->text) + 64;
		break;
	default:
		if (!in->raw)
			return -EINVAL;
		raw = *in->raw;
		raw.flags |= flags;
		n = fsesl_cmd_size(&raw);
		if (n < 0)
			return fsesl_map_enc_err(n);
		cap = (size_t)n;
		break;
	}
	if (cap > e->cfg.max_body_bytes + 65536)
		return FSESL_ETOOBIG;
	r = malloc(sizeof(*r) + cap);
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->timer.idx = ~0u; /* not armed */
	switch (in->kind) {
	case CMD_API:
		n = fsesl_encode_api(r->buf, cap, in->text, flags);
		break;
	case CMD_BGAPI:
		uuid_generate_random(u);
		uuid_unparse_lower(u, job);
		n = fsesl_encode_bgapi(r->buf, cap, in->text, job, flags);
		break;
	default:
		n = fsesl_encode_cmd(r->buf, cap, &raw);
		break;
	}
	if (n < 0) {
		free(r);
		return fsesl_map_enc_err(n);
	}
	r->len = (size_t)n;
	r->kind = FSESL_REQ_CMD;
	if (in->kind == CMD_RAW) {
		r->expect = expect_of(CMD_RAW, &raw, flags);
	} else {
		struct fsesl_cmd line = {.line = in->text};

		r->expect = expect_of(in->kind, &line, flags);
	}
	*out = r;
	return 0;
}

static unsigned int
opt_timeout(const struct fsesl_engine *e, const fsesl_cmd_opts *opts)
{

	if (opts && opts->timeout_ms > 0)
		return (unsigned int)opts->timeout_ms;
	return e->cfg.esl_cmd_timeout;
}

static enum fsesl_wait_mode
wait_mode_of(const struct fsesl_engine *e, const fsesl_cmd_opts *opts)
{

	return opts && opts->wait_mode != FSESL_WAIT_DEFAULT ? opts->wait_mode : e->cfg.wait_mode;
}

/* The caller's wait, in the call's mode; touches only c (e may be gone). */
static uint32_t
cpl_wait_mode(
    struct fsesl_cpl *c, enum fsesl_wait_mode mode, unsigned int itv, const struct timespec *dl)
{

	if (mode == FSESL_WAIT_POLL)
		return fsesl_cpl_wait_poll(c, dl, itv, &fsesl_wait_ops_linux);
	return fsesl_cpl_wait(c, dl, &fsesl_wait_ops_linux);
}

static void
ns_to_ts(uint64_t ns, struct timespec *ts)
{

	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/*
 * The one way a request enters the engine. The caller is inside the
 * window (fsesl_window_enter: a concurrent stop strands nothing and frees
 * nothing under it); this takes a server reference for the reactor (none
 * when need_srv is false), stamps and pushes. On failure r is freed and
 * nothing was submitted. *dl gets the request's deadline.
 */
static int
req_submit(struct fsesl_engine *e, fsesl_server_t h, struct fsesl_req *r, bool need_srv,
    bool nonblock, bool deadline, struct timespec *dl)
{
	struct fsesl_srv *s = NULL;
	int err;

	if (need_srv) {
		err = fsesl_srv_acquire(e, h, &s);
		if (err) {
			fsesl_req_free(r);
			return err;
		}
	}
	r->srv = s;
	/* The wait policy's hint (a blocking caller spins only for a reply
	 * due soon): how long this server's replies take now. */
	if (s != NULL && r->cpl.cb == NULL)
		r->cpl.expect_ns = atomic_load_explicit(&s->expect_ns, memory_order_relaxed);
	/* Two clocks: the reactor's deadlines (async timers, latency) are on
	 * the engine's, the kernel's futex deadline is on CLOCK_MONOTONIC. */
	r->submit_ns = fsesl_engine_now(e);
	ns_to_ts(fsesl_mono_ns() + (uint64_t)r->timeout_ms * 1000000ull, dl);
	err = fsesl_submit(e, r, nonblock, deadline ? dl : NULL);
	if (err) {
		if (s)
			fsesl_srv_unref(s);
		fsesl_req_free(r);
	}
	return err;
}

static int
run_blocking(fsesl_engine *ref, fsesl_server_t h, const struct cmd_in *in,
    const fsesl_cmd_opts *opts, fsesl_reply **reply)
{
	enum fsesl_wait_mode mode;
	struct fsesl_engine *e;
	struct fsesl_req *r;
	struct timespec dl;
	unsigned int itv;
	uint32_t st;
	int err;

	if (!reply)
		return -EINVAL;
	*reply = NULL;
	if (fsesl_on_reactor)
		return FSESL_EINCALLBACK;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	err = req_build(e, in, opts, &r);
	if (err)
		goto out_leave;
	mode = wait_mode_of(e, opts);
	itv = e->cfg.esl_cmd_polling_itv;
	r->timeout_ms = opt_timeout(e, opts);
	fsesl_cpl_init(&r->cpl, 2, NULL, NULL);
	err = req_submit(e, h, r, true, opts && opts->nonblock, true, &dl);
	fsesl_window_leave(e);
	if (err)
		return err;
	/* From here on e may be stopped and freed: touch only r. */
	st = cpl_wait_mode(&r->cpl, mode, itv, &dl);
	if (st == FSESL_CPL_DONE) {
		/* acquire in the wait pairs with the reactor's release in
		 * fsesl_cpl_complete(): reply and status are visible. */
		*reply = r->reply;
		r->reply = NULL;
		err = r->status;
	} else {
		err = fsesl_req_fail_code(st, r->status);
	}
	if (fsesl_cpl_release(&r->cpl))
		fsesl_req_free(r);
	return err;
out_leave:
	fsesl_window_leave(e);
	return err;
}

static int
run_async(fsesl_engine *ref, fsesl_server_t h, const struct cmd_in *in, const fsesl_cmd_opts *opts,
    fsesl_reply_cb cb, void *ud)
{
	struct fsesl_engine *e;
	struct fsesl_req *r;
	struct timespec dl;
	int err;

	if (!cb)
		return -EINVAL;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	err = req_build(e, in, opts, &r);
	if (!err) {
		r->timeout_ms = opt_timeout(e, opts);
		fsesl_req_set_async(r, cb, ud);
		err = req_submit(e, h, r, true, opts && opts->nonblock, true, &dl);
	}
	fsesl_window_leave(e);
	return err;
}

int
fsesl_api(fsesl_engine *e, fsesl_server_t srv, const char *cmd, const fsesl_cmd_opts *opts,
    fsesl_reply **reply)
{
	struct cmd_in in = {CMD_API, cmd, NULL};

	return run_blocking(e, srv, &in, opts, reply);
}

int
fsesl_api_many(fsesl_engine *ref, size_t n, const fsesl_server_t *srvs, const char *const *cmds,
    const fsesl_cmd_opts *opts, int *statuses, fsesl_reply **replies)
{
	enum fsesl_wait_mode mode;
	struct fsesl_engine *e;
	struct fsesl_batch *b;
	struct fsesl_req *r;
	struct timespec dl;
	unsigned int itv;
	size_t i;
	int err;

	if (!ref || (n && (!srvs || !cmds || !statuses || !replies)) || opts_check(opts) != 0)
		return -EINVAL;
	if (fsesl_on_reactor)
		return FSESL_EINCALLBACK;
	if (n == 0)
		return 0;
	/* Held across every submit: a concurrent stop cannot free e between
	 * two items. */
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	b = calloc(1, sizeof(*b));
	if (!b) {
		fsesl_window_leave(e);
		return -ENOMEM;
	}
	fsesl_cpl_init(&b->cpl, 2, NULL, NULL);
	atomic_init(&b->remaining, n + 1); /* + ours, until every item is in */
	b->ops = e->ops;
	b->statuses = statuses;
	b->replies = replies;
	mode = wait_mode_of(e, opts);
	itv = e->cfg.esl_cmd_polling_itv;
	for (i = 0; i < n; i++) {
		struct cmd_in in = {CMD_API, cmds[i], NULL};

		/* Before the submit: from then on the reactor owns the slot. */
		statuses[i] = 0;
		replies[i] = NULL;
		err = req_build(e, &in, opts, &r);
		if (!err) {
			r->timeout_ms = opt_timeout(e, opts);
			fsesl_req_set_batch(r, b, i);
			err = req_submit(e, srvs[i], r, true, opts && opts->nonblock, true, &dl);
		}
		if (err) {
			statuses[i] = err;
			fsesl_batch_item_done(b); /* never the last: ours is held */
		}
	}
	fsesl_batch_item_done(b);
	fsesl_window_leave(e);
	/* From here on e may be stopped and freed: touch only b. No deadline
	 * of our own: every item has the reactor's, so each one completes. */
	(void)cpl_wait_mode(&b->cpl, mode, itv, NULL);
	if (fsesl_cpl_release(&b->cpl))
		free(b);
	return 0;
}

int
fsesl_bgapi(fsesl_engine *e, fsesl_server_t srv, const char *cmd, const fsesl_cmd_opts *opts,
    fsesl_reply **reply)
{
	struct cmd_in in = {CMD_BGAPI, cmd, NULL};

	return run_blocking(e, srv, &in, opts, reply);
}

int
fsesl_command(fsesl_engine *e, fsesl_server_t srv, const struct fsesl_cmd *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply **reply)
{
	struct cmd_in in = {CMD_RAW, NULL, cmd};

	return run_blocking(e, srv, &in, opts, reply);
}

int
fsesl_api_async(fsesl_engine *e, fsesl_server_t srv, const char *cmd, const fsesl_cmd_opts *opts,
    fsesl_reply_cb cb, void *ud)
{
	struct cmd_in in = {CMD_API, cmd, NULL};

	return run_async(e, srv, &in, opts, cb, ud);
}

int
fsesl_command_async(fsesl_engine *e, fsesl_server_t srv, const struct fsesl_cmd *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply_cb cb, void *ud)
{
	struct cmd_in in = {CMD_RAW, NULL, cmd};

	return run_async(e, srv, &in, opts, cb, ud);
}

/*
 * Control requests (events.c): the caller built and encoded r; this
 * submits it and waits for the status the reactor sets. h 0: no server
 * (a subscriber leaving every server). With `deadline` the wait ends
 * after esl_cmd_timeout; without, only the reactor ends it (it answers
 * these itself, or the server does).
 */
int
fsesl_run_ctl(fsesl_engine *ref, fsesl_server_t h, struct fsesl_req *r, bool deadline)
{
	struct fsesl_engine *e;
	struct timespec dl;
	uint32_t st;
	int err;

	if (fsesl_on_reactor && r->kind != FSESL_REQ_HBWANT) {
		fsesl_req_free(r);
		return FSESL_EINCALLBACK;
	}
	err = fsesl_window_enter(ref, &e);
	if (err) {
		fsesl_req_free(r);
		return err;
	}
	r->timeout_ms = e->cfg.esl_cmd_timeout;
	fsesl_cpl_init(&r->cpl, 2, NULL, NULL);
	err = req_submit(e, h, r,
	    h != 0 || (r->kind != FSESL_REQ_SUBDESTROY && r->kind != FSESL_REQ_TICK), false,
	    deadline, &dl);
	fsesl_window_leave(e);
	if (err)
		return err;
	/* From here on e may be stopped and freed: touch only r. */
	st = fsesl_cpl_wait(&r->cpl, deadline ? &dl : NULL, &fsesl_wait_ops_linux);
	err = st == FSESL_CPL_DONE ? r->status : fsesl_req_fail_code(st, r->status);
	if (fsesl_cpl_release(&r->cpl))
		fsesl_req_free(r);
	return err;
}

/* ------------------------------------------------------------------ */
/* bgapi jobs                                                            */
/* ------------------------------------------------------------------ */

static void
job_cpl_cb(struct fsesl_cpl *c, uint32_t state, void *arg)
{
	struct fsesl_req *r = arg;
	int status;

	(void)c;
	status = state == FSESL_CPL_DONE ? 0 : fsesl_req_fail_code(state, r->status);
	r->job_cb(status, state == FSESL_CPL_DONE ? r->job_ev : NULL, r->ud);
}

static int
job_build(struct fsesl_engine *e, const char *cmd, int job_timeout_ms, const fsesl_cmd_opts *opts,
    struct fsesl_req **out)
{
	struct fsesl_req *r;
	size_t cap;
	ssize_t n;
	uuid_t u;

	/* job_timeout_ms follows opts->timeout_ms: < 0 the default, 0 refused. */
	if (!cmd || job_timeout_ms == 0 || opts_check(opts) != 0)
		return -EINVAL;
	cap = strlen(cmd) + 64 + 48;
	r = calloc(1, sizeof(*r) + cap + FSESL_MAX_JOB_UUID_LEN + 1);
	if (!r)
		return -ENOMEM;
	r->timer.idx = ~0u;
	r->job_uuid = r->buf + cap; /* room for the server's id, if it picks one */
	uuid_generate_random(u);
	uuid_unparse_lower(u, r->job_uuid);
	n = fsesl_encode_bgapi(r->buf, cap, cmd, r->job_uuid, opts ? opts->enc_flags : 0);
	if (n < 0) {
		free(r);
		return fsesl_map_enc_err(n);
	}
	r->len = (size_t)n;
	r->kind = FSESL_REQ_JOB;
	{
		struct fsesl_cmd line = {.line = cmd};

		r->expect = expect_of(CMD_BGAPI, &line, opts ? opts->enc_flags : 0);
	}
	r->timeout_ms = job_timeout_ms > 0 ? (unsigned int)job_timeout_ms : e->cfg.esl_cmd_timeout;
	*out = r;
	return 0;
}

static int
job_submit(struct fsesl_engine *e, fsesl_server_t h, struct fsesl_req *r, bool nonblock,
    struct timespec *dl)
{
	struct fsesl_srv *s;
	int err;

	/* The caller is inside the window (see req_submit). */
	err = fsesl_srv_acquire(e, h, &s);
	if (err)
		return err;
	r->srv = s;
	r->submit_ns = fsesl_engine_now(e); /* two clocks: see req_submit() */
	ns_to_ts(fsesl_mono_ns() + (uint64_t)r->timeout_ms * 1000000ull, dl);
	err = fsesl_submit(e, r, nonblock, dl);
	if (err)
		fsesl_srv_unref(s);
	return err;
}

int
fsesl_bgapi_job(fsesl_engine *ref, fsesl_server_t srv, const char *cmd, int job_timeout_ms,
    const fsesl_cmd_opts *opts, struct fsesl_event **result)
{
	enum fsesl_wait_mode mode;
	struct fsesl_engine *e;
	struct fsesl_req *r;
	struct timespec dl;
	unsigned int itv;
	uint32_t st;
	int err;

	if (!result)
		return -EINVAL;
	*result = NULL;
	if (fsesl_on_reactor)
		return FSESL_EINCALLBACK;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	err = job_build(e, cmd, job_timeout_ms, opts, &r);
	if (err) {
		fsesl_window_leave(e);
		return err;
	}
	mode = wait_mode_of(e, opts);
	itv = e->cfg.esl_cmd_polling_itv;
	fsesl_cpl_init(&r->cpl, 2, NULL, NULL);
	err = job_submit(e, srv, r, opts && opts->nonblock, &dl);
	fsesl_window_leave(e);
	if (err) {
		free(r);
		return err;
	}
	/* From here on e may be stopped and freed: touch only r. */
	st = cpl_wait_mode(&r->cpl, mode, itv, &dl);
	if (st == FSESL_CPL_DONE) {
		*result = r->job_ev;
		r->job_ev = NULL;
		err = 0;
	} else {
		err = fsesl_req_fail_code(st, r->status);
	}
	if (fsesl_cpl_release(&r->cpl))
		fsesl_req_free(r);
	return err;
}

int
fsesl_bgapi_job_async(fsesl_engine *ref, fsesl_server_t srv, const char *cmd, int job_timeout_ms,
    const fsesl_cmd_opts *opts, fsesl_job_cb cb, void *ud)
{
	struct fsesl_engine *e;
	struct fsesl_req *r;
	struct timespec dl;
	int err;

	if (!cb)
		return -EINVAL;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	err = job_build(e, cmd, job_timeout_ms, opts, &r);
	if (!err) {
		r->is_async = true;
		r->job_cb = cb;
		r->ud = ud;
		fsesl_cpl_init(&r->cpl, 1, job_cpl_cb, r);
		err = job_submit(e, srv, r, opts && opts->nonblock, &dl);
		if (err)
			free(r);
	}
	fsesl_window_leave(e);
	return err;
}

int
fsesl_engine_tick(fsesl_engine *ref)
{
	struct fsesl_req *r;

	if (!ref)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = FSESL_REQ_TICK;
	return fsesl_run_ctl(ref, 0, r, false);
}
