/* test_basic.c - one round trip of each kind against the simulator. */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine_test.h"

static fsesl_sim *sim;
static uint16_t port;
static fsesl_engine *eng;
static fsesl_server_t srv;

static void
setup(void)
{
	sim = et_sim(&port);
	eng = et_engine(NULL);
	srv = et_server(eng, port, "ClueCon");
}

static void
teardown(void)
{
	if (srv)
		cr_assert_eq(fsesl_server_put(eng, srv), 0);
	cr_assert_eq(fsesl_engine_stop(eng), 0);
	fsesl_sim_stop(sim);
}

TestSuite(basic, .init = setup, .fini = teardown, .timeout = 30);

Test(basic, api_echo_futex)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.wait_mode = FSESL_WAIT_FUTEX;
	cr_assert_eq(et_echo(eng, srv, "hello-futex", &o), 0);
	cr_assert_eq(et_echo(eng, srv, "hello-default", NULL), 0);
}

Test(basic, api_echo_poll)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.wait_mode = FSESL_WAIT_POLL;
	cr_assert_eq(et_echo(eng, srv, "hello-poll", &o), 0);
}

Test(basic, api_reply_accessors)
{
	fsesl_reply *r = NULL;
	size_t len;

	cr_assert_eq(fsesl_api(eng, srv, "status", NULL, &r), 0);
	cr_assert(fsesl_reply_is_api(r));
	cr_assert_str_eq(fsesl_reply_content_type(r), "api/response");
	cr_assert_null(fsesl_reply_text(r));
	cr_assert_gt(strlen(fsesl_reply_body(r, &len)), 0);
	cr_assert_gt(len, 0);
	cr_assert_eq(fsesl_reply_ok(r), 1);
	fsesl_reply_free(r);

	/* An -ERR output is still a reply: success at this level. */
	cr_assert_eq(fsesl_api(eng, srv, "nosuchcmd", NULL, &r), 0);
	cr_assert_eq(fsesl_reply_ok(r), 0);
	fsesl_reply_free(r);
}

Test(basic, bgapi_reply)
{
	fsesl_reply *r = NULL;
	const char *job;

	cr_assert_eq(fsesl_bgapi(eng, srv, "status", NULL, &r), 0);
	cr_assert_not(fsesl_reply_is_api(r));
	cr_assert_str_eq(fsesl_reply_content_type(r), "command/reply");
	cr_assert_eq(fsesl_reply_ok(r), 1);
	job = fsesl_reply_header(r, "Job-UUID");
	cr_assert_not_null(job);
	cr_assert_eq(strlen(job), 36);
	cr_assert(strstr(fsesl_reply_text(r), job) != NULL);
	fsesl_reply_free(r);
}

Test(basic, raw_command_with_body)
{
	struct fsesl_header h[2] = {
	    {"Event-Subclass", 14, "myapp::ping", 11},
	    {"X-Seq", 5, "42", 2},
	};
	static const char body[] = "hello\nw\xc3\xb6rld 100%";
	struct fsesl_cmd c = {"sendevent CUSTOM", h, 2, body, sizeof(body) - 1, 0};
	fsesl_reply *r = NULL;

	cr_assert_eq(fsesl_command(eng, srv, &c, NULL, &r), 0);
	cr_assert_eq(fsesl_reply_ok(r), 1, "reply: %s", fsesl_reply_text(r));
	fsesl_reply_free(r);
	/* The stream is still in step. */
	cr_assert_eq(et_echo(eng, srv, "after-sendevent", NULL), 0);
}

Test(basic, bad_input_never_sent)
{
	fsesl_reply *r = (fsesl_reply *)1;

	cr_assert_eq(fsesl_api(eng, srv, "echo a\nb", NULL, &r), FSESL_EINJECTION);
	cr_assert_null(r);
	cr_assert_eq(fsesl_api(eng, srv, "echo a\rb", NULL, &r), FSESL_EINJECTION);
	cr_assert_eq(fsesl_api(eng, srv, "unload mod_event_socket", NULL, &r), FSESL_EUNLOAD);
	cr_assert_eq(fsesl_api(eng, srv, NULL, NULL, &r), -EINVAL);
	cr_assert_eq(fsesl_api(eng, srv, "echo x", NULL, NULL), -EINVAL);
	cr_assert_eq(fsesl_api(eng, 0, "echo x", NULL, &r), FSESL_EBADHANDLE);
	cr_assert_eq(fsesl_api(eng, srv + 1000, "echo x", NULL, &r), FSESL_EBADHANDLE);
	cr_assert_eq(et_echo(eng, srv, "still-fine", NULL), 0);
}

Test(basic, put_twice_and_use_after_put)
{
	fsesl_server_t h2 = et_server(eng, port, "ClueCon");
	fsesl_reply *r;

	cr_assert_neq(h2, srv);
	cr_assert_eq(fsesl_server_put(eng, h2), 0);
	cr_assert_eq(fsesl_server_put(eng, h2), FSESL_EBADHANDLE);
	cr_assert_eq(fsesl_api(eng, h2, "echo x", NULL, &r), FSESL_EBADHANDLE);
	/* The shared entry lives on through the other handle. */
	cr_assert_eq(et_echo(eng, srv, "shared", NULL), 0);
}

Test(basic, url_get)
{
	char url[128];
	fsesl_server_t h = 0;

	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	cr_assert_eq(fsesl_server_get(eng, url, &h), 0);
	cr_assert_eq(et_echo(eng, h, "via-url", NULL), 0);
	cr_assert_eq(fsesl_server_put(eng, h), 0);
	cr_assert_eq(fsesl_server_get(eng, "http://nonsense", &h), FSESL_EURL);
}

struct acb {
	_Atomic int done;
	int status;
	char body[64];
	int nested;
	int blocking, async_rc;
	_Atomic int nested_done;
};

static void
nested_cb(int status, const fsesl_reply *r, void *ud)
{
	struct acb *a = ud;

	(void)r;
	a->nested = status;
	atomic_store(&a->nested_done, 1);
}

static void
async_cb(int status, const fsesl_reply *r, void *ud)
{
	struct acb *a = ud;
	fsesl_reply *tmp;

	a->status = status;
	if (r)
		snprintf(a->body, sizeof(a->body), "%s", fsesl_reply_body(r, NULL));
	/* Blocking from the reactor is refused; async is fine. */
	/* Runs on the reactor: results are checked by the test thread. */
	a->blocking = fsesl_api(eng, srv, "echo x", NULL, &tmp);
	a->async_rc = fsesl_api_async(eng, srv, "echo nested", NULL, nested_cb, a);
	atomic_store(&a->done, 1);
}

Test(basic, async_api)
{
	static struct acb a;

	cr_assert_eq(fsesl_api_async(eng, srv, "echo async-1", NULL, async_cb, &a), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&a.done) && atomic_load(&a.nested_done), 10000));
	cr_assert_eq(a.status, 0);
	cr_assert_str_eq(a.body, "async-1");
	cr_assert_eq(a.nested, 0);
	cr_assert_eq(a.blocking, FSESL_EINCALLBACK);
	cr_assert_eq(a.async_rc, 0);
	cr_assert_eq(fsesl_api_async(eng, srv, "echo a\nb", NULL, async_cb, &a), FSESL_EINJECTION);
}

Test(basic, stats_count)
{
	fsesl_server_stats st;
	fsesl_engine_stats es;
	uint64_t sum = 0;
	int i;

	for (i = 0; i < 10; i++)
		cr_assert_eq(et_echo(eng, srv, "count", NULL), 0);
	cr_assert_eq(fsesl_server_stats_get(eng, srv, &st), 0);
	cr_assert_geq(st.replies, 10);
	cr_assert_geq(st.commands_sent, 10);
	cr_assert_eq(st.connected_conns, 1);
	cr_assert_eq(st.connects, 1);
	for (i = 0; i < FSESL_LATENCY_BUCKETS; i++)
		sum += st.latency_us_hist[i];
	cr_assert_eq(sum, st.replies);
	fsesl_engine_stats_get(eng, &es);
	cr_assert_eq(es.servers, 1);
	cr_assert_geq(es.submitted, 10);
	cr_assert_eq(fsesl_server_stats_get(eng, 0, &st), FSESL_EBADHANDLE);
}

/* A reply bigger than the read buffer (128 KiB): it grows, and the next
 * reply is still in step. */
Test(basic, large_reply)
{
	size_t n = 300 * 1024, len;
	char *tok = malloc(n + 1);
	char *cmd = malloc(n + 8);
	fsesl_reply *r = NULL;
	size_t i;

	cr_assert(tok && cmd);
	for (i = 0; i < n; i++)
		tok[i] = (char)('a' + i % 26);
	tok[n] = '\0';
	snprintf(cmd, n + 8, "echo %s", tok);
	cr_assert_eq(fsesl_api(eng, srv, cmd, NULL, &r), 0);
	cr_assert_eq(memcmp(fsesl_reply_body(r, &len), tok, n), 0);
	cr_assert_eq(len, n);
	fsesl_reply_free(r);
	cr_assert_eq(et_echo(eng, srv, "after-large", NULL), 0);
	free(tok);
	free(cmd);
}

/* fsesl_server_get_by() applies the URL's rules: a password is required,
 * and the host must be an address or a well-formed name before anything
 * is resolved. */
Test(basic, get_by_follows_the_url_rules)
{
	static const char *const bad_hosts[] = {"ho st", "a..b", ".", "-a.b", "a-", "1.2.3",
	    "256.1.1.1", "[10.0.0.1]", "[::1", "::g", "host/x", "h\x01"};
	fsesl_engine_stats st;
	fsesl_server_t a = 0, b = 0, c = 0;
	char url[96];

	cr_assert_eq(fsesl_server_get_by(eng, "127.0.0.1", port, NULL, "", &a), -EINVAL);
	cr_assert_eq(fsesl_server_get_by(eng, "127.0.0.1", port, "user", "", &a), -EINVAL);
	cr_assert_eq(a, 0);
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		cr_assert_eq(fsesl_server_get_by(eng, bad_hosts[i], port, NULL, "ClueCon", &a),
		    -EINVAL, "%s accepted", bad_hosts[i]);
		cr_assert_eq(a, 0);
	}
	fsesl_engine_stats_get(eng, &st);
	cr_assert_eq(st.servers, 1, "a refused host made an entry");
	/* An IPv6 address, bracketed or not, is one entry with the URL's. */
	cr_assert_eq(fsesl_server_get_by(eng, "[::1]", 1, NULL, "ClueCon", &a), 0);
	cr_assert_eq(fsesl_server_get_by(eng, "::1", 1, NULL, "ClueCon", &b), 0);
	snprintf(url, sizeof(url), "fs://:ClueCon@[::1]:1");
	cr_assert_eq(fsesl_server_get(eng, url, &c), 0);
	fsesl_engine_stats_get(eng, &st);
	cr_assert_eq(st.servers, 2);
	cr_assert_eq(fsesl_server_put(eng, a), 0);
	cr_assert_eq(fsesl_server_put(eng, b), 0);
	cr_assert_eq(fsesl_server_put(eng, c), 0);
	/* And a name the rule accepts still works. */
	cr_assert_eq(fsesl_server_get_by(eng, "localhost", port, NULL, "ClueCon", &a), 0);
	cr_assert_eq(fsesl_server_put(eng, a), 0);
}

static void
never_called(int status, const fsesl_reply *r, void *ud)
{
	(void)status;
	(void)r;
	(void)ud;
	cr_assert_fail("callback of a refused call");
}

static void
job_never_called(int status, const struct fsesl_event *ev, void *ud)
{
	(void)status;
	(void)ev;
	(void)ud;
	cr_assert_fail("callback of a refused job");
}

/* Options out of their documented range are refused by every call that
 * takes them, and nothing is submitted: a wait_mode outside the enum, an
 * unknown enc_flags bit, and a timeout of 0 (< 0 is the default, > 0
 * milliseconds; 0 used to time out at once or succeed, by luck). */
Test(basic, bad_opts_refused_everywhere)
{
	fsesl_cmd_opts bad[5] = {FSESL_CMD_OPTS_INIT, FSESL_CMD_OPTS_INIT, FSESL_CMD_OPTS_INIT,
	    FSESL_CMD_OPTS_INIT, FSESL_CMD_OPTS_INIT};
	struct fsesl_cmd raw = {.line = "api echo x"};
	fsesl_server_t srvs[1] = {srv};
	const char *cmds[1] = {"echo x"};
	struct fsesl_sim_counters k0, k1;
	fsesl_engine_stats s0, s1;
	fsesl_cmd_opts ok = FSESL_CMD_OPTS_INIT;
	struct fsesl_event *ev = NULL;
	fsesl_reply *r = NULL, *rs[1];
	int st[1];

	bad[0].wait_mode = (enum fsesl_wait_mode)7;
	bad[1].wait_mode = (enum fsesl_wait_mode) - 2;
	bad[2].timeout_ms = 0;
	bad[3].enc_flags = 0x80;
	bad[4].enc_flags = FSESL_ENC_ALLOW_UNLOAD | 2u;
	/* Connected and logged in first: the login is a command the
	 * simulator counts, and it must not land between k0 and k1. */
	cr_assert_eq(et_echo(eng, srv, "up", NULL), 0);
	fsesl_engine_stats_get(eng, &s0);
	fsesl_sim_counters(sim, &k0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const fsesl_cmd_opts *o = &bad[i];

		cr_assert_eq(fsesl_api(eng, srv, "echo x", o, &r), -EINVAL, "opts %zu", i);
		cr_assert_null(r);
		cr_assert_eq(fsesl_bgapi(eng, srv, "echo x", o, &r), -EINVAL, "opts %zu", i);
		cr_assert_eq(fsesl_command(eng, srv, &raw, o, &r), -EINVAL, "opts %zu", i);
		cr_assert_eq(fsesl_api_async(eng, srv, "echo x", o, never_called, NULL), -EINVAL);
		cr_assert_eq(fsesl_command_async(eng, srv, &raw, o, never_called, NULL), -EINVAL);
		cr_assert_eq(fsesl_api_many(eng, 1, srvs, cmds, o, st, rs), -EINVAL, "opts %zu", i);
		cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo x", 1000, o, &ev), -EINVAL);
		cr_assert_null(ev);
		cr_assert_eq(
		    fsesl_bgapi_job_async(eng, srv, "echo x", 1000, o, job_never_called, NULL),
		    -EINVAL);
	}
	/* job_timeout_ms follows the same rule. */
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo x", 0, &ok, &ev), -EINVAL);
	cr_assert_eq(
	    fsesl_bgapi_job_async(eng, srv, "echo x", 0, NULL, job_never_called, NULL), -EINVAL);
	fsesl_engine_stats_get(eng, &s1);
	fsesl_sim_counters(sim, &k1);
	cr_assert_eq(s1.submitted, s0.submitted, "a refused call was submitted");
	cr_assert_eq(k1.commands, k0.commands, "a refused call reached the server");
	/* The edges that are valid. */
	ok.timeout_ms = 1;
	ok.wait_mode = FSESL_WAIT_POLL;
	cr_assert_neq(fsesl_api(eng, srv, "echo x", &ok, &r), -EINVAL);
	fsesl_reply_free(r);
	ok.timeout_ms = -5;
	ok.wait_mode = FSESL_WAIT_DEFAULT;
	cr_assert_eq(et_echo(eng, srv, "negative-is-default", &ok), 0);
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo j", -1, NULL, &ev), 0);
	fsesl_event_free(ev);
}

/* A caller that sleeps is woken through the reactor's wake batch: every
 * wake counted, handed over in flushes, one io_uring_enter per flush or
 * one FUTEX_WAKE per wake. The server answers 20 ms late, so the caller
 * is certainly asleep (no spin lasts longer than 50 us). */
Test(basic, sleeping_callers_are_woken_through_the_batch)
{
	fsesl_engine_stats s0, s1;
	uint64_t wakes, flushes, calls;

	cr_assert_eq(et_echo(eng, srv, "warm", NULL), 0);
	fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_DELAY, 20, 0);
	fsesl_engine_stats_get(eng, &s0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(et_echo(eng, srv, "late", NULL), 0);
	fsesl_engine_stats_get(eng, &s1);
	wakes = s1.futex_wakes - s0.futex_wakes;
	flushes = s1.wake_flushes - s0.wake_flushes;
	calls = s1.wake_syscalls - s0.wake_syscalls;
	cr_assert_geq(wakes, 3, "%" PRIu64 " wakes", wakes);
	cr_assert_geq(flushes, 1);
	cr_assert_leq(flushes, wakes);
	if (s1.wake_uring)
		cr_assert_eq(calls, flushes, "one io_uring_enter per flush");
	else
		cr_assert_eq(calls, wakes, "one FUTEX_WAKE per wake");
}
