/*
 * test_events_clock.c - the engine's timed behaviour driven by a fake clock.
 *
 * The engine runs on a clock the test owns (cfg.clock_fn); the test moves
 * it and calls fsesl_engine_tick(), which returns once the reactor has run
 * every timer due by then. So "not yet" and "now" are asserted at exact
 * instants: idle cleanup after 24 hours, load validity, liveness, the
 * reconnect backoff, job and command deadlines. The simulator still runs
 * on real time; where the test waits for it (a connection, a delivery) the
 * wait is on that condition, bounded, never a sleep.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define MS 1000000ull
#define S 1000000000ull
#define SAFETY_MS 10000

static _Atomic uint64_t fake_ns;
static fsesl_sim *sim;
static fsesl_engine *eng;
static fsesl_server_t srv;

static uint64_t
fake_clock(void *ud)
{
	(void)ud;
	return atomic_load(&fake_ns);
}

/* Moves the engine's time forward and lets the reactor catch up. */
static void
advance_ms(uint64_t ms)
{
	atomic_fetch_add(&fake_ns, ms * MS);
	cr_assert_eq(fsesl_engine_tick(eng), 0);
}

static uint64_t
now_ms(void)
{
	return atomic_load(&fake_ns) / MS;
}

static void
engine_start(fsesl_config *cfg)
{
	/* Far from 0 so that no "unset" stamp can be confused with it. */
	atomic_store(&fake_ns, 1000 * S);
	cfg->clock_fn = fake_clock;
	cfg->clock_ud = NULL;
	cr_assert_eq(fsesl_engine_start(cfg, &eng), 0);
}

static void
sim_start(unsigned int heartbeat_ms, uint16_t *port)
{
	struct fsesl_sim_config sc;

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = heartbeat_ms;
	cr_assert_eq(fsesl_sim_start(&sc, &sim, port), 0);
}

static void
get_server(uint16_t port, fsesl_server_t *out)
{
	char url[128];

	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	cr_assert_eq(fsesl_server_get(eng, url, out), 0);
}

/* A command round trip: connected, and everything before it answered. */
static void
barrier(fsesl_server_t h)
{
	fsesl_reply *r = NULL;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.timeout_ms = SAFETY_MS;
	cr_assert_eq(fsesl_api(eng, h, "echo barrier", &o, &r), 0);
	fsesl_reply_free(r);
}

/* A simulator (no heartbeats) and an engine on cfg with one connected
 * server in srv. Returns the simulator's port. */
static uint16_t
start_connected(fsesl_config *cfg)
{
	uint16_t port;

	sim_start(0, &port);
	engine_start(cfg);
	get_server(port, &srv);
	barrier(srv);
	return port;
}

/* Ends a test that still holds srv. */
static void
stop_all(void)
{
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

static uint64_t
servers_now(void)
{
	fsesl_engine_stats st;

	fsesl_engine_stats_get(eng, &st);
	return st.servers;
}

static fsesl_server_stats
stats(fsesl_server_t h)
{
	fsesl_server_stats st;

	cr_assert_eq(fsesl_server_stats_get(eng, h, &st), 0);
	return st;
}

/* The next delivery's kind, waiting up to the safety bound. */
static int
next_kind(fsesl_subscriber *s)
{
	fsesl_delivery d;
	int rc = fsesl_subscriber_next(s, &d, SAFETY_MS), kind;

	cr_assert_eq(rc, 1, "no delivery within the safety bound (rc %d)", rc);
	kind = d.kind;
	fsesl_delivery_release(&d);
	return kind;
}

/* Nothing queued for s right now (what a tick posts is already there). */
static void
assert_no_delivery(fsesl_subscriber *s, const char *when)
{
	fsesl_delivery d;
	int rc = fsesl_subscriber_next(s, &d, 0);

	cr_assert_eq(rc, 0, "%s: unexpected delivery of kind %d", when, (int)d.kind);
}

/* ---- idle cleanup ---------------------------------------------------- */

/* The OpenSIPS default: 24 hours of engine time, not one second less. */
Test(clock, idle_server_freed_after_24_hours, .timeout = 60)
{
	fsesl_config cfg;
	uint16_t port;
	uint64_t idle_ms;

	sim_start(0, &port);
	fsesl_config_init(&cfg);
	cr_assert_eq(cfg.idle_timeout_s, 86400);
	engine_start(&cfg);
	get_server(port, &srv);
	barrier(srv);
	cr_assert_eq(servers_now(), 1);
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	/* The idle period starts at the first housekeeping pass (every
	 * 250 ms) that finds the entry idle: this one. */
	advance_ms(250);
	idle_ms = now_ms();
	cr_assert_eq(servers_now(), 1, "freed at once despite idle_timeout 24 h");
	advance_ms(23 * 3600 * 1000);
	cr_assert_eq(servers_now(), 1, "freed after 23 h");
	advance_ms(idle_ms + 86400 * 1000 - 1 - now_ms());
	cr_assert_eq(servers_now(), 1, "freed 1 ms before 24 h");
	advance_ms(250); /* the next pass */
	cr_assert_eq(servers_now(), 0, "not freed after 24 h idle");
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

static uint16_t
start_idle60(fsesl_config *cfg)
{
	cr_assert_eq(fsesl_config_set(cfg, "idle_timeout", "60", NULL, 0), 0);
	return start_connected(cfg);
}

/* Releases the last reference: the entry is kept for its 60 s, counted
 * from the first housekeeping pass that finds it idle, then freed. */
static void
put_then_freed_after_60s(fsesl_server_t h, const char *what)
{
	cr_assert_eq(fsesl_server_put(eng, h), 0);
	advance_ms(250); /* idle from here */
	advance_ms(59 * 1000 + 500);
	cr_assert_eq(servers_now(), 1, "%s: freed before idle_timeout", what);
	advance_ms(750);
	cr_assert_eq(servers_now(), 0, "%s: not freed after idle_timeout", what);
}

/* A get in the meantime restarts the idle period. */
Test(clock, new_reference_restarts_idle_period, .timeout = 60)
{
	fsesl_server_t again;
	fsesl_config cfg;
	uint16_t port;

	fsesl_config_init(&cfg);
	port = start_idle60(&cfg);
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	advance_ms(250); /* idle from here */
	advance_ms(50 * 1000);
	get_server(port, &again); /* the same entry, referenced again */
	advance_ms(20 * 1000); /* 70 s after the first put */
	cr_assert_eq(servers_now(), 1, "freed while referenced");
	put_then_freed_after_60s(again, "after a new reference");
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

/* A subscriber's subscription keeps its server however long it is idle;
 * the server goes idle_timeout after the subscriber leaves. */
Test(clock, subscription_keeps_server, .timeout = 60)
{
	fsesl_subscriber *sub;
	fsesl_config cfg;
	uint16_t port;

	fsesl_config_init(&cfg);
	port = start_idle60(&cfg);
	cr_assert_eq(fsesl_subscriber_create(eng, "keep", NULL, &sub), 0);
	cr_assert_eq(fsesl_subscribe(sub, srv, "CUSTOM sim::keep"), 0);
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	advance_ms(250); /* would be idle from here, but for the subscription */
	advance_ms(48ull * 3600 * 1000);
	cr_assert_eq(servers_now(), 1, "a subscribed server was freed");
	fsesl_subscriber_destroy(sub);
	/* Its nixevent answered (a round trip on a new reference), then
	 * nothing refers to the entry any more. */
	get_server(port, &srv);
	barrier(srv);
	put_then_freed_after_60s(srv, "once the subscriber left");
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

/* What the engine subscribes for itself (HEARTBEAT for the load,
 * BACKGROUND_JOB for jobs) does not keep an entry nobody uses. */
Test(clock, engine_own_subscriptions_do_not_keep_server, .timeout = 60)
{
	struct fsesl_event *res = NULL;
	fsesl_config cfg;
	fsesl_load ld;

	fsesl_config_init(&cfg);
	/* No liveness check: no heartbeat comes in this test's engine time. */
	cfg.heartbeat_miss_limit = 0;
	(void)start_idle60(&cfg);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0); /* event HEARTBEAT */
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo done", SAFETY_MS, NULL, &res), 0);
	cr_assert_str_eq(res->body, "done");
	fsesl_event_free(res);
	put_then_freed_after_60s(srv, "with the engine's own subscriptions");
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

/* ---- load validity and liveness ------------------------------------- */

/* The engine expects a HEARTBEAT every second and gives up after three
 * missed ones; the simulator beats only when told to. */
static fsesl_subscriber *
start_heartbeats(void)
{
	fsesl_subscriber *s;
	fsesl_config cfg;

	fsesl_config_init(&cfg);
	cr_assert_eq(cfg.event_heartbeat_interval, 1);
	cr_assert_eq(cfg.heartbeat_miss_limit, 3);
	(void)start_connected(&cfg);
	cr_assert_eq(fsesl_subscriber_create(eng, "hb", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	return s;
}

/* Fires one HEARTBEAT and waits until the engine has taken it (its
 * delivery reached our subscriber: the reactor stamped it first). */
static void
beat(fsesl_subscriber *s)
{
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(next_kind(s), FSESL_NOTICE_EVENT);
}

static fsesl_load
load(void)
{
	fsesl_load ld;

	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0);
	return ld;
}

Test(clock, load_ages_and_liveness_at_exact_instants, .timeout = 60)
{
	fsesl_subscriber *s = start_heartbeats();
	fsesl_load ld;

	beat(s);
	ld = load();
	cr_assert(ld.valid);
	cr_assert_eq(ld.age_ms, 0);
	advance_ms(3000); /* three intervals: still within the limit */
	ld = load();
	cr_assert(ld.valid, "invalid at exactly 3 intervals");
	cr_assert_eq(ld.age_ms, 3000);
	assert_no_delivery(s, "3 s without a heartbeat");
	cr_assert_eq(stats(srv).reconnects, 0);
	atomic_fetch_add(&fake_ns, 1 * MS); /* read at once, no tick needed */
	ld = load();
	cr_assert(!ld.valid, "valid after 3 intervals + 1 ms");
	cr_assert_eq(ld.age_ms, 3001);
	/* The next housekeeping pass (every 250 ms) reopens the connection:
	 * the DOWN notice is queued by the time the tick returns. */
	advance_ms(249);
	cr_assert_eq(next_kind(s), FSESL_NOTICE_DOWN);
	cr_assert(!load().valid, "load kept across a reconnect");
	/* Subscriptions restored before UP; heartbeats flow again. */
	cr_assert_eq(next_kind(s), FSESL_NOTICE_UP);
	beat(s);
	ld = load();
	cr_assert(ld.valid);
	cr_assert_eq(ld.age_ms, 0);
	cr_assert_eq(stats(srv).reconnects, 1);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* A server beating every 2 s (FreeSWITCH's own interval set longer than
 * ours) is judged by the period it shows: 3 x 2 s, not 3 x 1 s. */
Test(clock, slower_server_judged_by_its_period, .timeout = 60)
{
	fsesl_subscriber *s = start_heartbeats();

	beat(s);
	advance_ms(2000);
	beat(s); /* period seen: 2 s */
	advance_ms(5750);
	assert_no_delivery(s, "5.75 s after a 2 s beat");
	cr_assert(load().valid);
	cr_assert_eq(stats(srv).reconnects, 0);
	advance_ms(500); /* 6.25 s: three of its periods missed */
	cr_assert_eq(next_kind(s), FSESL_NOTICE_DOWN);
	cr_assert_eq(next_kind(s), FSESL_NOTICE_UP);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* ---- reconnect backoff ------------------------------------------------ */

/* A port that refuses: bound, never listening, kept until the test ends
 * so that nobody else takes it. */
static int
refusing_port(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* The attempt started by the last tick fails on real time: wait for it. */
static void
wait_failures(uint64_t n)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint64_t f = stats(srv).connect_failures;

		cr_assert_leq(f, n, "attempt %" PRIu64 " came before its backoff", f);
		if (f == n)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		cr_assert_lt(
		    t.tv_sec - t0.tv_sec, SAFETY_MS / 1000, "attempt %" PRIu64 " never failed", n);
		sched_yield();
	}
}

/*
 * backoff=1,5,30 with a step every 2 failures: after failures 1..6 the
 * next attempt comes 1, 1, 5, 5, 30, 30 s later, each +-10 % jitter. At
 * 90 % - 1 ms the attempt has not started; at 110 % it has.
 */
Test(clock, backoff_follows_configuration, .timeout = 120)
{
	static const unsigned int want_s[] = {1, 1, 5, 5, 30, 30};
	fsesl_config cfg;
	uint16_t port;
	unsigned int i;
	int fd = refusing_port(&port);

	fsesl_config_init(&cfg);
	cr_assert_eq(fsesl_config_set(&cfg, "backoff", "1,5,30", NULL, 0), 0);
	cr_assert_eq(fsesl_config_set(&cfg, "backoff_step_every", "2", NULL, 0), 0);
	engine_start(&cfg);
	get_server(port, &srv);
	wait_failures(1); /* the first attempt is immediate */
	for (i = 0; i < sizeof(want_s) / sizeof(want_s[0]); i++) {
		uint64_t b = want_s[i] * 1000ull, failed_ms = now_ms();

		advance_ms(b * 9 / 10 - 1);
		cr_assert_eq(stats(srv).connect_failures, i + 1,
		    "attempt %u started before 90 %% of its %u s backoff", i + 2, want_s[i]);
		advance_ms(failed_ms + b * 11 / 10 - now_ms());
		wait_failures(i + 2);
	}
	cr_assert_eq(stats(srv).connects, 0);
	fsesl_server_put(eng, srv);
	fsesl_engine_stop(eng);
	close(fd);
}

/* esl_connect_timeout bounds connect + greeting + auth together: a server
 * that accepts and never greets fails the attempt at exactly 5000 ms. */
Test(clock, connect_timeout_at_exact_instant, .timeout = 60)
{
	struct fsesl_sim_counters sc;
	fsesl_server_stats st;
	fsesl_config cfg;
	uint16_t port;
	struct timespec t0, t;

	sim_start(0, &port);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_SILENT_ACCEPT, 0, 0), 0);
	fsesl_config_init(&cfg);
	cr_assert_eq(cfg.esl_connect_timeout, 5000);
	engine_start(&cfg);
	get_server(port, &srv);
	/* Accepted (real time), then silence. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		fsesl_sim_counters(sim, &sc);
		clock_gettime(CLOCK_MONOTONIC, &t);
		cr_assert_lt(t.tv_sec - t0.tv_sec, SAFETY_MS / 1000, "never accepted");
		sched_yield();
	} while (sc.accepted < 1);
	advance_ms(4999);
	st = stats(srv);
	cr_assert_eq(st.connect_failures, 0, "gave up before esl_connect_timeout");
	advance_ms(1);
	st = stats(srv);
	cr_assert_eq(st.connect_failures, 1);
	cr_assert_eq(st.last_error, FSESL_ECONNTIMEOUT);
	cr_assert_eq(st.connects, 0);
	stop_all();
}

/* ---- low-latency events: the LF kick ----------------------------------- */

static uint64_t
sim_kicks(void)
{
	struct fsesl_sim_counters sc;

	/* After a round trip on the event connection, every LF the engine
	 * wrote before it has been read and counted. */
	barrier(srv);
	fsesl_sim_counters(sim, &sc);
	return sc.kicks;
}

Test(clock, lf_kick_every_interval_of_engine_time, .timeout = 60)
{
	fsesl_subscriber *sub;
	fsesl_config cfg;

	fsesl_config_init(&cfg);
	cr_assert_eq(cfg.lf_kick_interval_ms, 0, "off by default");
	cfg.lf_kick_interval_ms = 1000;
	(void)start_connected(&cfg);
	cr_assert_eq(fsesl_subscriber_create(eng, "kick", NULL, &sub), 0);
	cr_assert_eq(fsesl_subscribe(sub, srv, "CUSTOM sim::kick"), 0);
	/* Armed when the connection came up, at the start of engine time. */
	advance_ms(999);
	cr_assert_eq(sim_kicks(), 0, "kicked before its interval");
	advance_ms(1);
	cr_assert_eq(sim_kicks(), 1);
	advance_ms(999);
	cr_assert_eq(sim_kicks(), 1);
	advance_ms(1);
	cr_assert_eq(sim_kicks(), 2);
	fsesl_subscriber_destroy(sub);
	stop_all();
}

/* ---- job and command deadlines ---------------------------------------- */

static _Atomic int job_calls, job_status;

static void
job_cb(int status, const struct fsesl_event *ev, void *ud)
{
	(void)ev;
	(void)ud;
	atomic_store(&job_status, status);
	atomic_fetch_add(&job_calls, 1);
}

Test(clock, async_job_expires_at_its_deadline, .timeout = 60)
{
	fsesl_config cfg;

	fsesl_config_init(&cfg);
	(void)start_connected(&cfg);
	/* The simulator would answer in 60 real seconds. */
	cr_assert_eq(fsesl_bgapi_job_async(eng, srv, "msleep 60000", 1000, NULL, job_cb, NULL), 0);
	advance_ms(999);
	cr_assert_eq(atomic_load(&job_calls), 0, "expired before its 1 s");
	advance_ms(1);
	cr_assert_eq(atomic_load(&job_calls), 1, "not expired at its deadline");
	cr_assert_eq(atomic_load(&job_status), -ETIMEDOUT);
	advance_ms(60 * 1000);
	cr_assert_eq(atomic_load(&job_calls), 1, "completed twice");
	barrier(srv); /* the connection is unharmed */
	stop_all();
}

static _Atomic int cmd_calls, cmd_status;

static void
cmd_cb(int status, const fsesl_reply *r, void *ud)
{
	(void)r;
	(void)ud;
	atomic_store(&cmd_status, status);
	atomic_fetch_add(&cmd_calls, 1);
}

/*
 * An api that blocks its connection (FreeSWITCH runs api inline): the
 * async caller times out at its deadline; the connection, whose head is
 * then overdue (2 x timeout + 1 s after it was written), is recycled so
 * that the commands behind it run.
 */
Test(clock, timed_out_head_recycled_when_overdue, .timeout = 60)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_subscriber *sub;
	fsesl_delivery d;
	fsesl_config cfg;

	fsesl_config_init(&cfg);
	(void)start_connected(&cfg);
	/* Its DOWN notice tells the instant the connection is dropped. */
	cr_assert_eq(fsesl_subscriber_create(eng, "watch", NULL, &sub), 0);
	cr_assert_eq(fsesl_subscribe(sub, srv, "CUSTOM sim::watch"), 0);
	o.timeout_ms = 1000;
	cr_assert_eq(fsesl_api_async(eng, srv, "msleep 60000", &o, cmd_cb, NULL), 0);
	/* Written (at the current engine time) within a turn or two. */
	while (stats(srv).in_flight != 1)
		cr_assert_eq(fsesl_engine_tick(eng), 0);
	advance_ms(999);
	cr_assert_eq(atomic_load(&cmd_calls), 0);
	cr_assert_eq(stats(srv).timeouts, 0);
	advance_ms(1);
	cr_assert_eq(atomic_load(&cmd_calls), 1);
	cr_assert_eq(atomic_load(&cmd_status), -ETIMEDOUT);
	cr_assert_eq(stats(srv).timeouts, 1, "counted only when the late reply comes");
	advance_ms(2000); /* 3 s after the write: not yet overdue */
	assert_no_delivery(sub, "3 s after the write");
	cr_assert_eq(stats(srv).reconnects, 0);
	advance_ms(250);
	cr_assert_eq(fsesl_subscriber_next(sub, &d, 0), 1, "overdue head not recycled");
	cr_assert_eq(d.kind, FSESL_NOTICE_DOWN);
	/* A fresh connection answers; the old one is still in msleep. */
	barrier(srv);
	cr_assert_eq(stats(srv).reconnects, 1);
	cr_assert_eq(atomic_load(&cmd_calls), 1);
	fsesl_subscriber_destroy(sub);
	stop_all();
}

/* One async api's outcome, its reply checked while it is lent. */
struct async_slot {
	const char *want;
	_Atomic int calls, status;
	_Atomic bool own;
};

static void
slot_cb(int status, const fsesl_reply *r, void *ud)
{
	struct async_slot *sl = ud;
	size_t len = 0;

	if (status == 0) {
		const char *b = fsesl_reply_body(r, &len);

		atomic_store(&sl->own, len == strlen(sl->want) && memcmp(b, sl->want, len) == 0);
	}
	atomic_store(&sl->status, status);
	atomic_fetch_add(&sl->calls, 1);
}

static void
api_async(const char *cmd, int timeout_ms, struct async_slot *sl)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.timeout_ms = timeout_ms;
	cr_assert_eq(fsesl_api_async(eng, srv, cmd, &o, slot_cb, sl), 0);
}

/*
 * A short timeout must not fail other commands. A 300 ms api on a server
 * that takes far longer makes its head place "late" (2 x 300 ms + 1 s after
 * it was written), but a 10 s command behind it can still be answered in
 * time: the connection is kept, and takes no new command, until every
 * request on it is past its deadline; then it is recycled and the command
 * that waited meanwhile runs on a fresh one.
 */
Test(clock, short_timeout_does_not_recycle_what_others_wait_on, .timeout = 60)
{
	struct async_slot a = {.want = "a"}, b = {.want = "b"}, c = {.want = "c"};
	fsesl_subscriber *sub;
	fsesl_delivery d;
	fsesl_config cfg;
	uint64_t id = 0;

	fsesl_config_init(&cfg);
	(void)start_connected(&cfg);
	cr_assert_eq(fsesl_subscriber_create(eng, "watch", NULL, &sub), 0);
	cr_assert_eq(fsesl_subscribe(sub, srv, "CUSTOM sim::watch"), 0);
	/* This connection (not the next one) runs each command a minute late:
	 * nothing on it is answered during the test. */
	cr_assert_eq(fsesl_sim_conn_ids(sim, &id, 1), 1);
	cr_assert_eq(fsesl_sim_fault(sim, id, FSESL_SIM_FAULT_DELAY, 60000, 0), 0);
	api_async("echo a", 300, &a);
	api_async("echo b", 10000, &b);
	while (stats(srv).in_flight != 2)
		cr_assert_eq(fsesl_engine_tick(eng), 0);
	advance_ms(300);
	cr_assert_eq(atomic_load(&a.calls), 1);
	cr_assert_eq(atomic_load(&a.status), -ETIMEDOUT);
	advance_ms(1450); /* 1.75 s: the head is 150 ms past "late" */
	cr_assert_eq(atomic_load(&b.calls), 0, "b failed (%d) at 1.75 s of its 10 s",
	    atomic_load(&b.status));
	assert_no_delivery(sub, "1.75 s");
	cr_assert_eq(stats(srv).reconnects, 0);
	/* The late connection takes nothing new: c waits in the queue. */
	api_async("echo c", 20000, &c);
	cr_assert_eq(fsesl_engine_tick(eng), 0);
	cr_assert_eq(stats(srv).queued, 1);
	cr_assert_eq(stats(srv).in_flight, 2);
	advance_ms(10000 - 1750 - 1);
	cr_assert_eq(atomic_load(&b.calls), 0, "b ended before its deadline");
	assert_no_delivery(sub, "1 ms before b's deadline");
	advance_ms(1);
	cr_assert_eq(atomic_load(&b.calls), 1);
	cr_assert_eq(atomic_load(&b.status), -ETIMEDOUT);
	/* Nothing on it can be answered in time any more: recycled by the
	 * next housekeeping pass at the latest. */
	advance_ms(250);
	cr_assert_eq(fsesl_subscriber_next(sub, &d, 0), 1, "connection not recycled");
	cr_assert_eq(d.kind, FSESL_NOTICE_DOWN);
	/* c runs on the fresh connection (real time: wait for it, bounded). */
	for (int i = 0; i < 100000 && atomic_load(&c.calls) == 0; i++) {
		cr_assert_eq(fsesl_engine_tick(eng), 0);
		sched_yield();
	}
	cr_assert_eq(atomic_load(&c.calls), 1, "c never ran");
	cr_assert_eq(atomic_load(&c.status), 0);
	cr_assert(atomic_load(&c.own));
	cr_assert_eq(atomic_load(&a.calls) + atomic_load(&b.calls), 2, "completed twice");
	cr_assert_eq(stats(srv).reconnects, 1);
	fsesl_subscriber_destroy(sub);
	stop_all();
}

/* A blocking caller decides its own timeout (on real time); the engine's
 * count catches up at the next housekeeping pass, not when (if ever) the
 * late reply comes. */
Test(clock, blocking_timeout_counted_by_next_pass, .timeout = 60)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_reply *r = NULL;
	fsesl_config cfg;

	fsesl_config_init(&cfg);
	(void)start_connected(&cfg);
	o.timeout_ms = 100;
	cr_assert_eq(fsesl_api(eng, srv, "msleep 60000", &o, &r), -ETIMEDOUT);
	cr_assert_null(r);
	cr_assert_eq(fsesl_engine_tick(eng), 0); /* no pass is due: not yet */
	cr_assert_eq(stats(srv).timeouts, 0);
	advance_ms(250);
	cr_assert_eq(stats(srv).timeouts, 1);
	advance_ms(250);
	cr_assert_eq(stats(srv).timeouts, 1, "counted twice");
	stop_all();
}

/* ---- the tick itself ----------------------------------------------------- */

/* A zero backoff against an address whose connect() fails at once (a
 * multicast address: ENETUNREACH) re-arms the connection's timer for "now"
 * on every turn: the tick still returns. */
Test(clock, tick_returns_despite_a_timer_due_every_turn, .timeout = 60)
{
	fsesl_config cfg;

	fsesl_config_init(&cfg);
	cr_assert_eq(fsesl_config_set(&cfg, "backoff", "0", NULL, 0), 0);
	engine_start(&cfg);
	cr_assert_eq(fsesl_server_get_by(eng, "224.0.0.1", 8021, NULL, "ClueCon", &srv), 0);
	cr_assert_eq(fsesl_engine_tick(eng), 0);
	cr_assert_eq(fsesl_engine_tick(eng), 0);
	cr_assert_gt(stats(srv).connect_failures, 0);
	cr_assert_eq(stats(srv).last_error, -ENETUNREACH);
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	fsesl_engine_stop(eng);
}

Test(clock, tick_with_nothing_due_and_bad_argument)
{
	fsesl_config cfg;

	cr_assert_eq(fsesl_engine_tick(NULL), -EINVAL);
	fsesl_config_init(&cfg);
	engine_start(&cfg);
	cr_assert_eq(fsesl_engine_tick(eng), 0); /* nothing due: returns */
	fsesl_engine_stop(eng);
}
