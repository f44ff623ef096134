/*
 * test_replies.c - a reply is handed only to a request that can have caused
 * it. An `api` is answered with api/response, or with a command/reply
 * "-ERR ..." when the server refuses it; every other command with
 * command/reply. A reply of any other type means the stream is out of step
 * (a reply nobody asked for, from the server or something in between):
 * the connection's requests fail with FSESL_EPROTO (jobs with
 * FSESL_EJOBLOST) and the engine reconnects; nobody gets a reply that is
 * not its own.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine_test.h"

static fsesl_sim *s;
static uint16_t port;
static fsesl_engine *e;
static fsesl_server_t h;

static fsesl_server_stats
stats(void)
{
	fsesl_server_stats st;

	cr_assert_eq(fsesl_server_stats_get(e, h, &st), 0);
	return st;
}

static void
up_as(const struct fsesl_sim_config *sc, const char *user, const char *pw)
{
	fsesl_config c;
	int err;

	cr_assert_eq(fsesl_sim_start(sc, &s, &port), 0);
	fsesl_config_init(&c);
	c.backoff_s[0] = 0; /* reconnect at once */
	c.backoff_steps = 1;
	e = et_engine(&c);
	err = fsesl_server_get_by(e, "127.0.0.1", port, user, pw, &h);
	cr_assert_eq(err, 0, "server_get: %s", fsesl_strerror(err));
}

static void
up(void)
{
	struct fsesl_sim_config sc;

	fsesl_sim_config_init(&sc);
	up_as(&sc, NULL, "ClueCon");
	cr_assert_eq(et_echo(e, h, "first", NULL), 0);
}

static void
down(void)
{
	cr_assert_eq(fsesl_server_put(e, h), 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(s);
}

static void
inject(enum fsesl_sim_inject type)
{
	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_INJECT_REPLY, type, 1), 0);
}

/* One async request's outcome, with the reply's identity checked in the
 * callback (the reply is only lent to it). */
struct slot {
	const char *want_body; /* api: the echo */
	const char *want_text; /* command/reply: the Reply-Text */
	_Atomic int calls;
	_Atomic int status;
	_Atomic bool own; /* the reply was this request's */
};

static void
slot_cb(int status, const fsesl_reply *r, void *ud)
{
	struct slot *sl = ud;
	bool own = false;

	if (status == 0 && sl->want_body) {
		size_t len;
		const char *b = fsesl_reply_body(r, &len);

		own = fsesl_reply_is_api(r) && len == strlen(sl->want_body) &&
		      memcmp(b, sl->want_body, len) == 0;
	} else if (status == 0 && sl->want_text) {
		const char *t = fsesl_reply_text(r);

		own = !fsesl_reply_is_api(r) && t && strcmp(t, sl->want_text) == 0;
	}
	atomic_store(&sl->own, own);
	atomic_store(&sl->status, status);
	atomic_fetch_add(&sl->calls, 1);
}

static void
wait_done(struct slot *sl, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert(WAIT_UNTIL(atomic_load(&sl[i].calls) > 0, 20000), "request %zu hangs", i);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(atomic_load(&sl[i].calls), 1, "request %zu completed twice", i);
}

/* Every request got its own reply or FSESL_EPROTO (want: the error of the
 * first one, which the injected reply would have gone to). */
static void
assert_own_or(struct slot *sl, size_t n, int first_err)
{
	for (size_t i = 0; i < n; i++) {
		int st = atomic_load(&sl[i].status);

		if (i == 0)
			cr_assert_eq(st, first_err, "request 0: %d %s", st, fsesl_strerror(st));
		else if (st == 0)
			cr_assert(
			    atomic_load(&sl[i].own), "request %zu got a reply not its own", i);
		else
			cr_assert_eq(
			    st, first_err, "request %zu: %d %s", i, st, fsesl_strerror(st));
	}
}

/* The case: a command/reply "+OK" ahead of the replies to pending
 * api commands used to be handed to the first of them as its success, and
 * every later api got its predecessor's output. */
Test(replies, command_reply_to_an_api_is_a_protocol_error, .timeout = 60)
{
	enum { N = 8 };
	struct slot sl[N];
	char cmd[N][32], body[N][16];

	up();
	memset(sl, 0, sizeof(sl));
	inject(FSESL_SIM_INJECT_COMMAND_REPLY);
	for (int i = 0; i < N; i++) {
		snprintf(body[i], sizeof(body[i]), "r%d", i);
		snprintf(cmd[i], sizeof(cmd[i]), "echo %s", body[i]);
		sl[i].want_body = body[i];
		cr_assert_eq(fsesl_api_async(e, h, cmd[i], NULL, slot_cb, &sl[i]), 0);
	}
	wait_done(sl, N);
	assert_own_or(sl, N, FSESL_EPROTO);
	cr_assert_eq(et_echo(e, h, "after", NULL), 0, "no recovery");
	cr_assert_eq(stats().reconnects, 1);
	down();
}

/* The other way round: an api/response ahead of the reply to commands that
 * are answered with command/reply (a raw bgapi, a subscription, a job). */
Test(replies, api_response_to_a_command_is_a_protocol_error, .timeout = 60)
{
	enum { N = 6 };
	struct fsesl_header hdr[N];
	struct fsesl_cmd cmd[N];
	struct slot sl[N];
	char uuid[N][40], text[N][80];

	up();
	memset(sl, 0, sizeof(sl));
	inject(FSESL_SIM_INJECT_API_RESPONSE);
	for (int i = 0; i < N; i++) {
		/* The simulator echoes our Job-UUID: each reply names its
		 * request. */
		snprintf(uuid[i], sizeof(uuid[i]), "00000000-0000-4000-8000-00000000000%d", i);
		snprintf(text[i], sizeof(text[i]), "+OK Job-UUID: %.36s", uuid[i]);
		hdr[i] = (struct fsesl_header){"Job-UUID", 8, uuid[i], strlen(uuid[i])};
		cmd[i] =
		    (struct fsesl_cmd){.line = "bgapi echo x", .headers = &hdr[i], .n_headers = 1};
		sl[i].want_text = text[i];
		cr_assert_eq(fsesl_command_async(e, h, &cmd[i], NULL, slot_cb, &sl[i]), 0);
	}
	wait_done(sl, N);
	assert_own_or(sl, N, FSESL_EPROTO);
	cr_assert_eq(et_echo(e, h, "after", NULL), 0, "no recovery");
	cr_assert_eq(stats().reconnects, 1);
	down();
}

static _Atomic int job_calls, job_status;

static void
job_cb(int status, const struct fsesl_event *ev, void *ud)
{
	(void)ev;
	(void)ud;
	atomic_store(&job_status, status);
	atomic_fetch_add(&job_calls, 1);
}

/* A job whose bgapi reply is displaced: its outcome is unknown (the job may
 * run), never "refused". */
Test(replies, displaced_job_reply_loses_the_job, .timeout = 60)
{
	struct fsesl_event *ev = NULL;

	up();
	/* The engine's BACKGROUND_JOB subscription is in place first, so the
	 * displaced reply meets the job itself. */
	cr_assert_eq(fsesl_bgapi_job(e, h, "echo warm", 10000, NULL, &ev), 0);
	fsesl_event_free(ev);
	inject(FSESL_SIM_INJECT_API_RESPONSE);
	cr_assert_eq(fsesl_bgapi_job_async(e, h, "echo j", 10000, NULL, job_cb, NULL), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&job_calls) > 0, 20000), "the job hangs");
	cr_assert_eq(atomic_load(&job_status), FSESL_EJOBLOST, "job: %d %s",
	    atomic_load(&job_status), fsesl_strerror(atomic_load(&job_status)));
	cr_assert_eq(et_echo(e, h, "after", NULL), 0, "no recovery");
	down();
}

/* A subscription answered with an api/response was not refused by the
 * server: it stays recorded and is replayed on the new connection. */
Test(replies, displaced_subscription_reply_is_replayed, .timeout = 60)
{
	fsesl_subscriber *sub;
	fsesl_delivery d;
	int err, got = 0;

	up();
	cr_assert_eq(fsesl_subscriber_create(e, "t", NULL, &sub), 0);
	inject(FSESL_SIM_INJECT_API_RESPONSE);
	err = fsesl_subscribe(sub, h, "CUSTOM sim::replay");
	cr_assert_eq(err, 0, "subscribe: %d %s", err, fsesl_strerror(err));
	cr_assert_eq(et_echo(e, h, "after", NULL), 0, "no recovery");
	cr_assert_eq(stats().reconnects, 1);
	/* Replayed once the connection is back: the UP notice says so. */
	for (uint64_t end = et_now_ms() + 20000; !got && et_now_ms() < end;) {
		if (fsesl_subscriber_next(sub, &d, 100) != 1)
			continue;
		got = d.kind == FSESL_NOTICE_UP;
		fsesl_delivery_release(&d);
	}
	cr_assert(got, "no UP notice after the reconnect");
	cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "sim::replay", NULL, 0, NULL), 0);
	for (got = 0; !got;) {
		cr_assert_eq(fsesl_subscriber_next(sub, &d, 20000), 1, "no event");
		got = d.kind == FSESL_NOTICE_EVENT;
		fsesl_delivery_release(&d);
	}
	fsesl_subscriber_destroy(sub);
	down();
}

/* What the real server legitimately does is never taken for a fault. */

/* A restricted user's api is refused with a command/reply, not an
 * api/response: the caller gets that reply, and the connection stays. */
Test(replies, refused_api_is_a_command_reply, .timeout = 60)
{
	struct fsesl_sim_user u = {"limited@default", "pw", NULL, "echo", false};
	struct fsesl_cmd raw = {.line = "api version"};
	struct fsesl_sim_config sc;
	fsesl_reply *r = NULL;

	fsesl_sim_config_init(&sc);
	sc.users = &u;
	sc.n_users = 1;
	up_as(&sc, "limited@default", "pw");
	cr_assert_eq(et_echo(e, h, "allowed", NULL), 0);
	cr_assert_eq(fsesl_api(e, h, "version", NULL, &r), 0);
	cr_assert(!fsesl_reply_is_api(r));
	cr_assert_str_eq(fsesl_reply_text(r), "-ERR permission denied");
	fsesl_reply_free(r);
	cr_assert_eq(fsesl_command(e, h, &raw, NULL, &r), 0);
	cr_assert_str_eq(fsesl_reply_text(r), "-ERR permission denied");
	fsesl_reply_free(r);
	cr_assert_eq(et_echo(e, h, "still", NULL), 0);
	cr_assert_eq(stats().reconnects, 0);
	cr_assert_eq(stats().connects, 1);
	down();
}

/* The server takes any line that starts with "api " (any case) as an api:
 * so does the engine, and only those. */
Test(replies, raw_api_lines_expect_an_api_response, .timeout = 60)
{
	static const char *const api_lines[] = {"API echo a", "Api echo a", "api echo a"};
	static const char *const other_lines[] = {"apiecho a", "api", "noevents"};
	struct fsesl_cmd raw = {0};
	fsesl_reply *r = NULL;
	size_t len;

	up();
	for (size_t i = 0; i < sizeof(api_lines) / sizeof(api_lines[0]); i++) {
		raw.line = api_lines[i];
		cr_assert_eq(fsesl_command(e, h, &raw, NULL, &r), 0, "%s", api_lines[i]);
		cr_assert(fsesl_reply_is_api(r));
		cr_assert_str_eq(fsesl_reply_body(r, &len), "a");
		fsesl_reply_free(r);
	}
	for (size_t i = 0; i < sizeof(other_lines) / sizeof(other_lines[0]); i++) {
		raw.line = other_lines[i];
		cr_assert_eq(fsesl_command(e, h, &raw, NULL, &r), 0, "%s", other_lines[i]);
		cr_assert(!fsesl_reply_is_api(r), "%s", other_lines[i]);
		cr_assert_eq(fsesl_reply_ok(r), 0, "%s", other_lines[i]);
		fsesl_reply_free(r);
	}
	/* bgapi's argument is not a command line: "bgapi api ..." is a bgapi. */
	cr_assert_eq(fsesl_bgapi(e, h, "api echo a", NULL, &r), 0);
	cr_assert(!fsesl_reply_is_api(r));
	cr_assert_eq(fsesl_reply_ok(r), 1);
	fsesl_reply_free(r);
	/* And a raw api line meets the same check as fsesl_api(). */
	inject(FSESL_SIM_INJECT_COMMAND_REPLY);
	raw.line = "API echo b";
	cr_assert_eq(fsesl_command(e, h, &raw, NULL, &r), FSESL_EPROTO);
	cr_assert_null(r);
	cr_assert_eq(et_echo(e, h, "after", NULL), 0, "no recovery");
	cr_assert_eq(stats().reconnects, 1);
	down();
}

/* With FSESL_ENC_ALLOW_UNLOAD a command that springs the server's
 * unload/reload trap is answered with an api/response whatever it was:
 * that reply is its own. */
Test(replies, unload_trap_reply_is_accepted, .timeout = 60)
{
	struct fsesl_header hdr = {"Note", 4, "unload mod_event_socket", 23};
	struct fsesl_cmd raw = {.line = "sendevent CUSTOM", .headers = &hdr, .n_headers = 1};
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_reply *r = NULL;
	int err;

	up();
	o.enc_flags = FSESL_ENC_ALLOW_UNLOAD;
	err = fsesl_command(e, h, &raw, &o, &r);
	cr_assert_eq(err, 0, "%d %s", err, fsesl_strerror(err));
	cr_assert(fsesl_reply_is_api(r));
	fsesl_reply_free(r);
	down();
}
