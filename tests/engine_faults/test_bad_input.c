/*
 * test_bad_input.c - what callers can do wrong, and that each mistake gets
 * a clear error instead of a crash, a leak or bytes on the wire.
 *
 * "Nothing reached the server" is checked with the simulator's command
 * recorder: every bad call is followed by one good marker command, and the
 * recorded command lines must hold the marker and none of the bad text.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "fault_harness.h"

TestSuite(bad_input, .timeout = 60);

/* These suites test refusals, not timing: generous timeouts, so that a
 * loaded CI machine cannot turn a slow connect into a failure. */
static struct fh_opts calm = {.cmd_timeout_ms = 5000, .connect_timeout_ms = 5000};

/* For async calls that must fail: their callback must never run. */
static _Atomic int never_calls;

static void
never_cb(int status, const fsesl_reply *reply, void *ud)
{
	(void)status;
	(void)reply;
	(void)ud;
	atomic_fetch_add(&never_calls, 1);
}

/* Asserts that no recorded command line contains any of bad[] and that
 * the marker is there (so recording did work). */
static void
expect_nothing_sent(struct fh_env *env, const char *const *bad, size_t n_bad)
{
	char **lines = NULL;
	size_t n;
	bool marker = false;

	cr_assert(fh_echo_once(env, "marker-end", -1, NULL) == FH_OK, "the marker command failed");
	n = fsesl_sim_recorded(env->sim, &lines);
	for (size_t i = 0; i < n; i++) {
		if (strstr(lines[i], "marker-end") != NULL)
			marker = true;
		for (size_t j = 0; j < n_bad; j++)
			cr_expect(strstr(lines[i], bad[j]) == NULL,
			    "'%s' reached the server in line %zu: '%s'", bad[j], i, lines[i]);
		free(lines[i]);
	}
	free(lines);
	cr_expect(marker, "the recorder never saw the marker (%zu lines)", n);
}

static void
start_recording(struct fh_env *env)
{
	fh_start(env, &calm);
	cr_assert(fh_until_ok(env, 1000000, 10000), "the engine never connected");
	fsesl_sim_record_commands(env->sim, true);
}

static int
api_rc(struct fh_env *env, const char *cmd)
{
	fsesl_reply *r = (fsesl_reply *)&r; /* must come back NULL on failure */
	int rc = fsesl_api(env->e, env->srv, cmd, NULL, &r);

	if (rc == 0)
		fsesl_reply_free(r);
	else
		cr_expect_null(r, "*reply not NULL after failure %d on '%s'", rc, cmd);
	return rc;
}

Test(bad_input, null_and_empty_commands)
{
	struct fh_env env;
	fsesl_reply *r = NULL;
	int rc;

	start_recording(&env);
	cr_expect_eq(api_rc(&env, NULL), -EINVAL);
	cr_expect_eq(api_rc(&env, ""), -EINVAL);
	rc = fsesl_api(NULL, env.srv, "echo x", NULL, &r);
	cr_expect_eq(rc, -EINVAL, "NULL engine: %d", rc);
	rc = fsesl_bgapi(env.e, env.srv, NULL, NULL, &r);
	cr_expect_eq(rc, -EINVAL, "bgapi NULL: %d", rc);
	rc = fsesl_command(env.e, env.srv, NULL, NULL, &r);
	cr_expect_eq(rc, -EINVAL, "command NULL: %d", rc);
	{
		struct fsesl_cmd c = {.line = NULL};

		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, -EINVAL, "command with NULL line: %d", rc);
	}
	rc = fsesl_api_async(env.e, env.srv, NULL, NULL, never_cb, NULL);
	cr_expect_eq(rc, -EINVAL, "async NULL command: %d", rc);
	rc = fsesl_api_async(env.e, env.srv, "echo x", NULL, NULL, NULL);
	cr_expect_eq(rc, -EINVAL, "async NULL callback: %d", rc);
	expect_nothing_sent(&env, NULL, 0);
	fh_finish(&env);
}

Test(bad_input, oversize_commands)
{
	struct fh_env env;
	size_t big = 32u << 20; /* over every default limit */
	char *cmd = malloc(big + 1);
	struct fsesl_cmd c = {.line = "sendevent CUSTOM"};
	fsesl_reply *r = NULL;
	int rc;

	cr_assert_not_null(cmd);
	start_recording(&env);
	memcpy(cmd, "echo ", 5);
	memset(cmd + 5, 'A', big - 5);
	cmd[big] = '\0';
	cr_expect_eq(api_rc(&env, cmd), FSESL_ETOOBIG);
	rc = fsesl_bgapi(env.e, env.srv, cmd, NULL, &r);
	cr_expect_eq(rc, FSESL_ETOOBIG, "bgapi: %d", rc);
	/* A body over max_body_bytes (16 MiB). */
	c.body = cmd;
	c.body_len = big;
	rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
	cr_expect_eq(rc, FSESL_ETOOBIG, "body: %d", rc);
	free(cmd);
	{
		static const char *const bad[] = {"AAAAAAAAAAAAAAAA", "sendevent"};

		expect_nothing_sent(&env, bad, 2);
	}
	fh_finish(&env);
}

Test(bad_input, injection_refused)
{
	static const char *const inj[] = {
	    "echo a\nINJECTED: 1",
	    "echo a\r\n\r\napi INJECTED",
	    "echo a\n\napi INJECTED",
	    "echo a\rINJECTED",
	    "echo a\n",
	};
	static const char *const unl[] = {
	    "unload mod_event_socket",
	    "reload mod_event_socket",
	    "RELOAD Mod_Event_Socket",
	    "echo x unload y mod_event_socket",
	};
	static const char *const bad[] = {
	    "INJECTED", "mod_event_socket", "Mod_Event_Socket", "unload", "reload", "RELOAD"};
	struct fh_env env;
	fsesl_reply *r = NULL;
	int rc;

	start_recording(&env);
	for (size_t i = 0; i < sizeof(inj) / sizeof(inj[0]); i++) {
		cr_expect_eq(api_rc(&env, inj[i]), FSESL_EINJECTION, "api #%zu", i);
		rc = fsesl_bgapi(env.e, env.srv, inj[i], NULL, &r);
		cr_expect_eq(rc, FSESL_EINJECTION, "bgapi #%zu: %d", i, rc);
		rc = fsesl_api_async(env.e, env.srv, inj[i], NULL, never_cb, NULL);
		cr_expect_eq(rc, FSESL_EINJECTION, "async #%zu: %d", i, rc);
	}
	for (size_t i = 0; i < sizeof(unl) / sizeof(unl[0]); i++) {
		cr_expect_eq(api_rc(&env, unl[i]), FSESL_EUNLOAD, "api '%s'", unl[i]);
		rc = fsesl_bgapi(env.e, env.srv, unl[i], NULL, &r);
		cr_expect_eq(rc, FSESL_EUNLOAD, "bgapi '%s': %d", unl[i], rc);
	}

	/* Generic commands: the line, header names and values. */
	{
		struct fsesl_header h_val = {"X-Ok", 4, "a\nINJECTED: 1", 13};
		struct fsesl_header h_nul = {"X-Ok", 4, "a\0INJECTED", 10};
		struct fsesl_header h_colon = {"X:INJECTED", 10, "v", 1};
		struct fsesl_header h_lfname = {"X\nINJECTED", 10, "v", 1};
		struct fsesl_header h_cl = {"Content-Length", 14, "5", 1};
		struct fsesl_header h_unl = {"X-Note", 6, "unload mod_event_socket", 23};
		struct fsesl_cmd c = {.line = "sendevent CUSTOM"};

		c.line = "sendevent CUSTOM\n\napi INJECTED";
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, FSESL_EINJECTION, "line: %d", rc);
		c.line = "sendevent CUSTOM";
		c.n_headers = 1;
		c.headers = &h_val;
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, FSESL_EINJECTION, "header value LF: %d", rc);
		c.headers = &h_nul;
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, FSESL_EINJECTION, "header value NUL: %d", rc);
		c.headers = &h_colon;
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, FSESL_EINJECTION, "':' in header name: %d", rc);
		c.headers = &h_lfname;
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, FSESL_EINJECTION, "LF in header name: %d", rc);
		c.headers = &h_unl;
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_eq(rc, FSESL_EUNLOAD, "unload in a header: %d", rc);
		/* The engine computes Content-Length; a caller's is refused. */
		c.headers = &h_cl;
		c.body = "INJECTED";
		c.body_len = 8;
		rc = fsesl_command(env.e, env.srv, &c, NULL, &r);
		cr_expect_lt(rc, 0, "caller Content-Length accepted");
		cr_expect_null(r);
	}

	expect_nothing_sent(&env, bad, sizeof(bad) / sizeof(bad[0]));
	fh_finish(&env);
	cr_expect_eq(atomic_load(&never_calls), 0, "a refused async call ran its callback");
}

Test(bad_input, injection_refused_in_subscriptions)
{
	static const char *const bad[] = {"INJECTED"};
	struct fh_env env;
	int rc;

	start_recording(&env);
	{
		fsesl_subscriber *s = NULL;
		fsesl_sub_opts so = {0};

		rc = fsesl_subscriber_create(env.e, "inj", &so, &s);
		cr_assert_eq(rc, 0, "fsesl_subscriber_create: %d", rc);
		rc = fsesl_subscribe(s, env.srv, "HEARTBEAT\n\napi INJECTED");
		cr_expect_eq(rc, FSESL_EINJECTION, "subscribe: %d", rc);
		rc = fsesl_filter_add(s, env.srv, "Event-Name\nINJECTED", "x");
		cr_expect_eq(rc, FSESL_EINJECTION, "filter header: %d", rc);
		rc = fsesl_filter_add(s, env.srv, "Event-Name", "x\n\napi INJECTED");
		cr_expect_eq(rc, FSESL_EINJECTION, "filter value: %d", rc);
		fsesl_subscriber_destroy(s);
	}
	expect_nothing_sent(&env, bad, 1);
	fh_finish(&env);
}

Test(bad_input, malformed_urls)
{
	static const char *const urls[] = {
	    "",
	    "fs://",
	    "fs:/",
	    "http://:pw@127.0.0.1:8021",
	    "fs://:pw@",
	    "fs://:pw@:8021",
	    "fs://:pw@127.0.0.1:0",
	    "fs://:pw@127.0.0.1:65536",
	    "fs://:pw@127.0.0.1:99999999999999999999",
	    "fs://:pw@127.0.0.1:80x",
	    "fs://:pw@127.0.0.1:-1",
	    "fs://:pw@[::1",
	    "fs://:pw@[::1]x",
	    "fs://:pw@127.0.0.1:8021?",
	    "fs://:p%zzw@127.0.0.1",
	    "fs://:pw@host name",
	    "fs://:pw@host\nname",
	};
	struct fh_env env;
	struct fh_opts o = {.no_server = true, .cmd_timeout_ms = 5000, .connect_timeout_ms = 5000};
	fsesl_server_t h = 0;
	int rc;

	fh_start(&env, &o);
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		h = 0;
		rc = fsesl_server_get(env.e, urls[i], &h);
		cr_expect_eq(rc, FSESL_EURL, "'%s': %d %s", urls[i], rc, fsesl_strerror(rc));
		cr_expect_eq(h, 0, "'%s': a handle came back with an error", urls[i]);
		if (rc == 0)
			fsesl_server_put(env.e, h);
	}
	rc = fsesl_server_get(env.e, NULL, &h);
	cr_expect(rc == -EINVAL || rc == FSESL_EURL, "NULL url: %d", rc);
	rc = fsesl_server_get(env.e, "fs://:pw@127.0.0.1", NULL);
	cr_expect(rc == -EINVAL, "NULL out: %d", rc);
	rc = fsesl_server_get_by(env.e, NULL, 8021, NULL, "pw", &h);
	cr_expect(rc == -EINVAL || rc == FSESL_EURL, "NULL host: %d", rc);
	rc = fsesl_server_get_by(env.e, "127.0.0.1", 70000, NULL, "pw", &h);
	cr_expect(rc == -EINVAL || rc == FSESL_EURL, "port 70000: %d", rc);
	fh_finish(&env);
}

Test(bad_input, password_injection_never_sent)
{
	/* A password with an encoded LF would put a second command after
	 * `auth`: refused at get(), or at the latest before the auth line. */
	struct fh_env env;
	struct fh_opts o = {.no_server = true, .cmd_timeout_ms = 5000, .connect_timeout_ms = 5000};
	static const char *const bad[] = {"INJECTED"};
	char url[160];
	fsesl_server_t h = 0;
	int rc;

	fh_start(&env, &o);
	fsesl_sim_record_commands(env.sim, true);
	snprintf(
	    url, sizeof(url), "fs://:pw%%0A%%0Aapi%%20INJECTED@127.0.0.1:%u", (unsigned)env.port);
	rc = fsesl_server_get(env.e, url, &h);
	cr_expect(rc == FSESL_EURL || rc == FSESL_EINJECTION, "get: %d %s", rc, fsesl_strerror(rc));
	if (rc == 0) {
		fsesl_reply *r = NULL;

		rc = fsesl_api(env.e, h, "echo x", NULL, &r);
		cr_expect_neq(rc, 0, "a command ran with an injected password");
		if (rc == 0)
			fsesl_reply_free(r);
		fsesl_server_put(env.e, h);
	}
	/* The good handle, for the marker. */
	fh_url(&env, NULL, url, sizeof(url));
	cr_assert_eq(fsesl_server_get(env.e, url, &env.srv), 0);
	expect_nothing_sent(&env, bad, 1);
	fh_finish(&env);
}

Test(bad_input, stale_handles)
{
	struct fh_env env;
	fsesl_server_t h = 0;
	fsesl_server_stats st;
	fsesl_reply *r = NULL;
	fsesl_subscriber *s = NULL;
	fsesl_sub_opts so = {0};
	char url[128];
	int rc;

	fh_start(&env, &calm);
	fh_url(&env, NULL, url, sizeof(url));
	cr_assert_eq(fsesl_server_get(env.e, url, &h), 0);
	cr_assert_neq(h, 0);
	cr_assert_neq(h, env.srv, "two references share one handle value");
	cr_expect_eq(fsesl_server_put(env.e, h), 0);
	/* Double put, use after the last put. */
	cr_expect_eq(fsesl_server_put(env.e, h), FSESL_EBADHANDLE);
	rc = fsesl_api(env.e, h, "echo x", NULL, &r);
	cr_expect_eq(rc, FSESL_EBADHANDLE, "api on a put handle: %d", rc);
	cr_expect_null(r);
	rc = fsesl_server_stats_get(env.e, h, &st);
	cr_expect_eq(rc, FSESL_EBADHANDLE, "stats on a put handle: %d", rc);
	rc = fsesl_api_async(env.e, h, "echo x", NULL, never_cb, NULL);
	cr_expect_eq(rc, FSESL_EBADHANDLE, "async on a put handle: %d", rc);
	/* Never-valid handles. */
	cr_expect_eq(fsesl_server_put(env.e, 0), FSESL_EBADHANDLE);
	cr_expect_eq(fsesl_server_put(env.e, 0xdeadbeefcafef00dull), FSESL_EBADHANDLE);
	rc = fsesl_api(env.e, 0, "echo x", NULL, &r);
	cr_expect_eq(rc, FSESL_EBADHANDLE, "api on handle 0: %d", rc);
	rc = fsesl_api(env.e, env.srv ^ 0x5a5a000000000000ull, "echo x", NULL, &r);
	cr_expect_eq(rc, FSESL_EBADHANDLE, "api on a forged handle: %d", rc);
	rc = fsesl_subscriber_create(env.e, "stale", &so, &s);
	cr_expect_eq(rc, 0, "fsesl_subscriber_create: %d", rc);
	if (rc == 0) {
		rc = fsesl_subscribe(s, h, "HEARTBEAT");
		cr_expect_eq(rc, FSESL_EBADHANDLE, "subscribe on a put handle: %d", rc);
		fsesl_subscriber_destroy(s);
	}
	/* The live reference is untouched by all of this. */
	cr_expect(fh_until_ok(&env, 1000000, 10000));
	fh_finish(&env);
}

Test(bad_input, bad_settings)
{
	static const char *const bad[][2] = {
	    {"no_such_setting", "1"},
	    {"esl_cmd_timeout", ""},
	    {"esl_cmd_timeout", "abc"},
	    {"esl_cmd_timeout", "-1"},
	    {"esl_cmd_timeout", "0"},
	    {"esl_cmd_timeout", "99999999999999999999999"},
	    {"esl_cmd_timeout", "10ms"},
	    {"ring_size", "1000"},
	    {"ring_size", "0"},
	    {"wait_mode", "spin"},
	    {"log_level", "loud"},
	    {"backoff", "1,2,3,4,5,6,7,8,9"},
	    {"backoff", "x"},
	    {"max_body_bytes", "1"},
	};
	fsesl_config cfg, ref;
	char err[128];

	fsesl_config_init(&cfg);
	fsesl_config_init(&ref);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc;

		err[0] = '\0';
		rc = fsesl_config_set(&cfg, bad[i][0], bad[i][1], err, sizeof(err));
		cr_expect_eq(rc, FSESL_ECONFIG, "%s=%s: %d", bad[i][0], bad[i][1], rc);
		cr_expect_neq(err[0], '\0', "%s=%s: no reason given", bad[i][0], bad[i][1]);
	}
	cr_expect_eq(fsesl_config_set(&cfg, NULL, "1", NULL, 0), FSESL_ECONFIG);
	cr_expect_eq(fsesl_config_set(&cfg, "esl_cmd_timeout", NULL, NULL, 0), FSESL_ECONFIG);
	/* A refused value leaves the setting as it was. */
	cr_expect_eq(cfg.esl_cmd_timeout, ref.esl_cmd_timeout);
	cr_expect_eq(cfg.ring_size, ref.ring_size);
	cr_expect_eq(cfg.backoff_steps, ref.backoff_steps);
	/* A tiny buffer is not overrun (ASan watches). */
	cr_expect_eq(fsesl_config_set(&cfg, "no_such_setting", "1", err, 1), FSESL_ECONFIG);
	cr_expect_eq(err[0], '\0');
}

Test(bad_input, strerror_total)
{
	for (int code = -3000; code <= 0; code++)
		cr_assert_not_null(fsesl_strerror(code), "fsesl_strerror(%d)", code);
	cr_assert_not_null(fsesl_strerror(1));
	cr_assert_not_null(fsesl_strerror(-2147483647 - 1));
}

/* ---- shutdown with callers blocked inside the engine ---- */

struct blocked {
	struct fh_env *env;
	int rc;
	pthread_t tid;
};

static void *
blocked_caller(void *arg)
{
	struct blocked *b = arg;
	fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
	fsesl_reply *r = NULL;

	opts.timeout_ms = 60000; /* far longer than the test: stop must end it */
	b->rc = fsesl_api(b->env->e, b->env->srv, "echo blocked", &opts, &r);
	if (b->rc == 0)
		fsesl_reply_free(r);
	return NULL;
}

static _Atomic int shutdown_cb_calls;
static _Atomic int shutdown_cb_status;

static void
shutdown_cb(int status, const fsesl_reply *reply, void *ud)
{
	(void)reply;
	(void)ud;
	atomic_fetch_add(&shutdown_cb_calls, 1);
	atomic_store(&shutdown_cb_status, status);
}

Test(bad_input, stop_with_callers_blocked)
{
	enum { N = 8 };
	struct fh_env env;
	struct blocked b[N];
	fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
	fsesl_server_stats st;
	struct timespec t0, t;
	int rc;

	fh_start(&env, &calm);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	cr_assert_eq(fsesl_sim_fault(env.sim, 0, FSESL_SIM_FAULT_STALL, 0, 0), 0);
	for (int i = 0; i < N; i++) {
		b[i].env = &env;
		b[i].rc = 1;
		cr_assert_eq(pthread_create(&b[i].tid, NULL, blocked_caller, &b[i]), 0);
	}
	opts.timeout_ms = 60000;
	rc = fsesl_api_async(env.e, env.srv, "echo async-blocked", &opts, shutdown_cb, NULL);
	cr_assert_eq(rc, 0);

	/* Wait until the engine holds all N+1 requests (a condition, polled
	 * with a bound, not a guessed sleep). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		memset(&st, 0, sizeof(st));
		cr_assert_eq(fsesl_server_stats_get(env.e, env.srv, &st), 0);
		if (st.in_flight + st.queued >= N + 1)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		cr_assert_lt(t.tv_sec - t0.tv_sec, 20,
		    "requests never reached the engine "
		    "(in_flight %llu queued %llu)",
		    (unsigned long long)st.in_flight, (unsigned long long)st.queued);
		sched_yield();
	}

	cr_assert_eq(fsesl_server_put(env.e, env.srv), 0);
	env.srv = 0;
	rc = fsesl_engine_stop(env.e);
	cr_assert_eq(rc, 0);
	env.e = NULL;
	for (int i = 0; i < N; i++) {
		pthread_join(b[i].tid, NULL);
		cr_expect_eq(b[i].rc, FSESL_ESHUTDOWN, "blocked caller %d: %d %s", i, b[i].rc,
		    fsesl_strerror(b[i].rc));
	}
	cr_expect_eq(atomic_load(&shutdown_cb_calls), 1);
	cr_expect_eq(atomic_load(&shutdown_cb_status), FSESL_ESHUTDOWN);

	fsesl_sim_stop(env.sim);
	cr_expect_eq(fh_count_fds(), env.fds_before);
	cr_expect_eq(fh_count_threads(), env.threads_before);
}

/* ---- calls a reactor callback must not make ---- */

struct in_cb {
	struct fh_env *env;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int api_rc, bgapi_rc, cmd_rc, job_rc, stop_rc, nested_rc, nested_status;
};

static void
nested_cb(int status, const fsesl_reply *reply, void *ud)
{
	struct in_cb *x = ud;

	(void)reply;
	pthread_mutex_lock(&x->mu);
	x->nested_status = status;
	x->done++;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void
outer_cb(int status, const fsesl_reply *reply, void *ud)
{
	struct in_cb *x = ud;
	struct fsesl_cmd c = {.line = "api echo from-callback"};
	struct fsesl_event *ev = NULL;
	fsesl_reply *r = NULL;

	(void)status;
	(void)reply;
	x->api_rc = fsesl_api(x->env->e, x->env->srv, "echo from-callback", NULL, &r);
	x->bgapi_rc = fsesl_bgapi(x->env->e, x->env->srv, "echo from-callback", NULL, &r);
	x->cmd_rc = fsesl_command(x->env->e, x->env->srv, &c, NULL, &r);
	x->job_rc = fsesl_bgapi_job(x->env->e, x->env->srv, "echo from-callback", 1000, NULL, &ev);
	x->stop_rc = fsesl_engine_stop(x->env->e);
	/* Async submission is allowed from a callback. */
	x->nested_rc = fsesl_api_async(x->env->e, x->env->srv, "echo nested", NULL, nested_cb, x);
	pthread_mutex_lock(&x->mu);
	x->done++;
	if (x->nested_rc != 0)
		x->done++; /* the nested callback will never run */
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

Test(bad_input, blocking_calls_from_callback)
{
	struct fh_env env;
	struct in_cb x;
	struct timespec dl;
	int rc;

	memset(&x, 0, sizeof(x));
	pthread_mutex_init(&x.mu, NULL);
	pthread_cond_init(&x.cv, NULL);
	fh_start(&env, &calm);
	x.env = &env;
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	rc = fsesl_api_async(env.e, env.srv, "echo outer", NULL, outer_cb, &x);
	cr_assert_eq(rc, 0);

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	pthread_mutex_lock(&x.mu);
	while (x.done < 2 && rc == 0)
		rc = pthread_cond_timedwait(&x.cv, &x.mu, &dl);
	pthread_mutex_unlock(&x.mu);
	cr_assert_eq(rc, 0, "callbacks did not run");

	cr_expect_eq(x.api_rc, FSESL_EINCALLBACK, "fsesl_api: %d", x.api_rc);
	cr_expect_eq(x.bgapi_rc, FSESL_EINCALLBACK, "fsesl_bgapi: %d", x.bgapi_rc);
	cr_expect_eq(x.cmd_rc, FSESL_EINCALLBACK, "fsesl_command: %d", x.cmd_rc);
	cr_expect_eq(x.job_rc, FSESL_EINCALLBACK, "fsesl_bgapi_job: %d", x.job_rc);
	cr_expect_eq(x.stop_rc, FSESL_EINCALLBACK, "fsesl_engine_stop: %d", x.stop_rc);
	cr_expect_eq(x.nested_rc, 0, "fsesl_api_async from a callback: %d", x.nested_rc);
	cr_expect_eq(x.nested_status, 0, "nested async: %d", x.nested_status);
	fh_finish(&env);
	pthread_mutex_destroy(&x.mu);
	pthread_cond_destroy(&x.cv);
}
