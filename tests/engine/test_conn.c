/*
 * test_conn.c - connection failures each give their own error, timeouts
 * never misroute a reply, a slow api does not block a pool of 2, and the
 * engine recovers when the server comes back.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine_test.h"

/* One simulator, one engine, one server handle per test (each test runs
 * in its own process). */
static fsesl_sim *s;
static uint16_t port;
static fsesl_engine *e;
static fsesl_server_t h;

static void
sim_up(void)
{
	s = et_sim(&port);
}

static void
engine_up(fsesl_config *c)
{
	e = et_engine(c);
	h = et_server(e, port, "ClueCon");
}

static void
all_down(void)
{
	cr_assert_eq(fsesl_server_put(e, h), 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(s);
}

static fsesl_config
cfg_fast(void)
{
	fsesl_config c;

	fsesl_config_init(&c);
	/* Generous: a loaded 2-core CI machine may take a while to connect,
	 * and only connect_timeout is about the limit itself. */
	c.esl_connect_timeout = 5000;
	c.esl_cmd_timeout = 5000;
	c.backoff_s[0] = 0; /* retry at once: recovery tests stay short */
	c.backoff_steps = 1;
	return c;
}

static fsesl_server_stats
stats(fsesl_engine *eng, fsesl_server_t srv)
{
	fsesl_server_stats st;

	cr_assert_eq(fsesl_server_stats_get(eng, srv, &st), 0);
	return st;
}

/* Echo until it succeeds; every failure must be an honest error. */
static bool
recovers(fsesl_engine *eng, fsesl_server_t srv, unsigned int ms)
{
	uint64_t end = et_now_ms() + ms;
	char tok[32];
	int i = 0, err;

	while (et_now_ms() < end) {
		snprintf(tok, sizeof(tok), "rec-%d", i++);
		err = et_echo(eng, srv, tok, NULL);
		cr_assert_neq(err, -99999, "mismatched reply");
		if (err == 0)
			return true;
		sched_yield();
	}
	return false;
}

Test(conn, refused_then_back, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_reply *r;

	sim_up();
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_REFUSE, 0, 0);
	engine_up(&c);
	cr_assert_eq(fsesl_api(e, h, "echo x", NULL, &r), -ECONNREFUSED);
	cr_assert_eq(stats(e, h).last_error, -ECONNREFUSED);
	fsesl_sim_clear_faults(s);
	cr_assert(recovers(e, h, 20000));
	cr_assert_eq(stats(e, h).last_error, 0);
	all_down();
}

Test(conn, backoff_fails_fast_with_last_error, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_reply *r;
	int i;

	sim_up();
	c.backoff_s[0] = 3600; /* the next attempt is far away */
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_REFUSE, 0, 0);
	engine_up(&c);
	for (i = 0; i < 50; i++)
		cr_assert_eq(fsesl_api(e, h, "echo x", NULL, &r), -ECONNREFUSED);
	cr_assert_eq(stats(e, h).connect_failures, 1);
	all_down();
}

Test(conn, connect_timeout, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_reply *r;

	sim_up();
	c.esl_connect_timeout = 300; /* the silent server never greets */
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_SILENT_ACCEPT, 0, 0);
	engine_up(&c);
	cr_assert_eq(fsesl_api(e, h, "echo x", NULL, &r), FSESL_ECONNTIMEOUT);
	fsesl_sim_clear_faults(s);
	cr_assert(recovers(e, h, 20000));
	all_down();
}

static _Atomic int log_saw_password;

static void
log_fn(int level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	if (strstr(msg, "WrongSecret"))
		atomic_store(&log_saw_password, 1);
}

Test(conn, wrong_password, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_server_t h2;
	fsesl_reply *r;

	sim_up();
	c.log_fn = log_fn;
	c.log_level = FSESL_LOG_DEBUG;
	e = et_engine(&c);
	h = et_server(e, port, "WrongSecret");
	cr_assert_eq(fsesl_api(e, h, "echo x", NULL, &r), FSESL_EAUTH);
	cr_assert_eq(atomic_load(&log_saw_password), 0, "the password reached the log");
	/* A later get with the right password is used at the next connect. */
	h2 = et_server(e, port, "ClueCon");
	cr_assert(recovers(e, h2, 20000));
	cr_assert_eq(fsesl_server_put(e, h2), 0);
	all_down();
}

Test(conn, rude_rejection, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_reply *r;

	sim_up();
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_RUDE_REJECT, 0, 0);
	engine_up(&c);
	cr_assert_eq(fsesl_api(e, h, "echo x", NULL, &r), FSESL_EREJECTED);
	fsesl_sim_clear_faults(s);
	cr_assert(recovers(e, h, 20000));
	all_down();
}

Test(conn, close_mid_reply, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_reply *r;

	sim_up();
	engine_up(&c);
	cr_assert_eq(et_echo(e, h, "before", NULL), 0);
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_CLOSE_MID_FRAME, 0, 0);
	cr_assert_eq(fsesl_api(e, h, "echo cut-in-half", NULL, &r), FSESL_EDISCONNECTED);
	fsesl_sim_clear_faults(s);
	cr_assert(recovers(e, h, 20000));
	cr_assert_geq(stats(e, h).reconnects, 1);
	all_down();
}

Test(conn, server_restart, .timeout = 60)
{
	fsesl_config c = cfg_fast();

	sim_up();
	c.backoff_s[0] = 1; /* the real schedule: the first retry is still immediate */
	engine_up(&c);
	cr_assert_eq(et_echo(e, h, "before", NULL), 0);
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0);
	cr_assert(WAIT_UNTIL(stats(e, h).reconnects >= 1, 20000));
	cr_assert(recovers(e, h, 20000));
	all_down();
}

Test(conn, timeout_then_late_reply_is_dropped, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	int i, err;

	sim_up();
	engine_up(&c);
	cr_assert_eq(et_echo(e, h, "warm", NULL), 0);
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_DELAY, 300, 0);
	o.timeout_ms = 30;
	cr_assert_eq(et_echo(e, h, "too-slow", &o), -ETIMEDOUT);
	fsesl_sim_clear_faults(s);
	/* Each next command still gets its own reply, never "too-slow". */
	for (i = 0; i < 20; i++) {
		char tok[32];

		snprintf(tok, sizeof(tok), "next-%d", i);
		err = et_echo(e, h, tok, NULL);
		cr_assert_eq(err, 0, "next-%d: %s", i, fsesl_strerror(err));
	}
	cr_assert(WAIT_UNTIL(stats(e, h).late_replies >= 1, 10000));
	cr_assert_geq(stats(e, h).timeouts, 1);
	all_down();
}

Test(conn, many_timeouts_recycle, .timeout = 90)
{
	fsesl_config c = cfg_fast();
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	uint64_t end;
	int i = 0, err;
	char tok[32];

	sim_up();
	c.max_in_flight = 8;
	c.max_abandoned = 4;
	c.esl_connect_timeout = 5000; /* the DELAY fault slows the greeting too */
	engine_up(&c);
	cr_assert_eq(et_echo(e, h, "warm", NULL), 0);
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_DELAY, 500, 0);
	o.timeout_ms = 10;
	end = et_now_ms() + 30000;
	while (stats(e, h).reconnects == 0 && et_now_ms() < end) {
		snprintf(tok, sizeof(tok), "slow-%d", i++);
		err = et_echo(e, h, tok, &o);
		cr_assert(err == -ETIMEDOUT || err == FSESL_EDISCONNECTED || err == 0 ||
		              err == FSESL_ENOTCONNECTED || err == FSESL_ECONNTIMEOUT,
		    "unexpected %d %s", err, fsesl_strerror(err));
	}
	cr_assert_geq(stats(e, h).reconnects, 1, "no recycle");
	fsesl_sim_clear_faults(s);
	cr_assert(recovers(e, h, 20000));
	all_down();
}

static _Atomic int msleep_done, msleep_status = 1;

/* Runs on the reactor: no Criterion assertion from there. */
static void
msleep_cb(int status, const fsesl_reply *r, void *ud)
{
	(void)r;
	(void)ud;
	atomic_store(&msleep_status, status);
	atomic_store(&msleep_done, 1);
}

Test(conn, pool_of_two_no_head_of_line, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	int i;

	sim_up();
	c.connections_per_server = 2;
	engine_up(&c);
	cr_assert(WAIT_UNTIL(stats(e, h).connected_conns == 2, 20000));
	o.timeout_ms = 20000;
	cr_assert_eq(fsesl_api_async(e, h, "msleep 2000", &o, msleep_cb, NULL), 0);
	cr_assert(WAIT_UNTIL(stats(e, h).in_flight == 1, 10000));
	for (i = 0; i < 50; i++) {
		char tok[32];

		snprintf(tok, sizeof(tok), "hol-%d", i);
		cr_assert_eq(et_echo(e, h, tok, NULL), 0);
	}
	/* Ordering, not timing: every echo came back before the msleep. */
	cr_assert_eq(atomic_load(&msleep_done), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&msleep_done), 20000));
	cr_assert_eq(atomic_load(&msleep_status), 0);
	all_down();
}

static _Atomic int window_done, window_ok;

static void
window_cb(int status, const fsesl_reply *r, void *ud)
{
	(void)r;
	(void)ud;
	if (status == 0)
		atomic_fetch_add(&window_ok, 1);
	atomic_fetch_add(&window_done, 1);
}

/* More requests than places: each reply must pull the next one onto the
 * wire, with no new submission to stir the engine. */
Test(conn, queued_requests_move_up_as_places_free, .timeout = 60)
{
	fsesl_config c = cfg_fast();
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	int i;

	sim_up();
	c.max_in_flight = 1;
	engine_up(&c);
	cr_assert_eq(et_echo(e, h, "warm", NULL), 0);
	o.timeout_ms = 30000;
	for (i = 0; i < 32; i++)
		cr_assert_eq(fsesl_api_async(e, h, "echo queued", &o, window_cb, NULL), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&window_done) == 32, 20000));
	cr_assert_eq(atomic_load(&window_ok), 32);
	all_down();
}
