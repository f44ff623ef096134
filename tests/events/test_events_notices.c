/*
 * test_events_notices.c - what a subscriber is told, and when.
 *
 *  - refusals are never silent: a server (a restricted `userauth` user,
 *    the simulator's allowed_events) refusing a subscription made before
 *    the first connect, at a reconnect, or the engine's own HEARTBEAT for
 *    the load watch;
 *  - fs:// URLs with an event list: fsesl_server_get refuses them,
 *    fsesl_subscribe_url subscribes all or nothing;
 *  - the first fsesl_server_load never waits for the server, and a full
 *    submission ring does not lose its request;
 *  - per server, DOWN and UP strictly alternate, even when connections
 *    die before their subscriptions were restored.
 *
 * No sleeps: every wait is on a delivery, a counter or a command round
 * trip, bounded by a generous safety limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define SAFETY_MS 10000
#define USER "1000@default"
#define USER_PW "s3cret"

static fsesl_sim *sim;
static uint16_t port;
static fsesl_engine *eng;
static fsesl_server_t srv;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls a cheap condition (no sleep used as synchronisation), bounded. */
#define WAIT_UNTIL(cond)                                                                           \
	({                                                                                         \
		uint64_t _end = now_ms() + SAFETY_MS;                                              \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && now_ms() < _end)                                         \
			sched_yield();                                                             \
		_ok;                                                                               \
	})

/* A simulator whose user USER may subscribe to `allowed` only (the admin
 * password ClueCon may do anything); heartbeats only when fired. */
static void
sim_start(const char *allowed)
{
	struct fsesl_sim_config sc;
	struct fsesl_sim_user u = {USER, USER_PW, allowed, NULL, true};

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 0;
	sc.users = &u;
	sc.n_users = 1;
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	fsesl_sim_record_commands(sim, true);
}

static void
engine_start(fsesl_config *cfg)
{
	fsesl_config c;

	if (!cfg) {
		fsesl_config_init(&c);
		cfg = &c;
	}
	cr_assert_eq(fsesl_config_set(cfg, "backoff", "0,1", NULL, 0), 0);
	cr_assert_eq(fsesl_engine_start(cfg, &eng), 0);
}

static fsesl_server_t
get_as(const char *user, const char *pw)
{
	fsesl_server_t h = 0;

	cr_assert_eq(fsesl_server_get_by(eng, "127.0.0.1", port, user, pw, &h), 0);
	return h;
}

static void
barrier(void)
{
	fsesl_reply *r = NULL;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.timeout_ms = SAFETY_MS;
	cr_assert_eq(fsesl_api(eng, srv, "echo barrier", &o, &r), 0);
	fsesl_reply_free(r);
}

static void
stop_all(void)
{
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	cr_assert_eq(fsesl_engine_stop(eng), 0);
	fsesl_sim_stop(sim);
}

/* The next delivery that is not an event (events are skipped). */
static enum fsesl_notice
next_notice(fsesl_subscriber *s, char *refused, size_t len)
{
	fsesl_delivery d;
	enum fsesl_notice k;

	for (;;) {
		int rc = fsesl_subscriber_next(s, &d, SAFETY_MS);

		cr_assert_eq(rc, 1, "no notice within the safety bound (rc %d)", rc);
		if (d.kind != FSESL_NOTICE_EVENT)
			break;
		fsesl_delivery_release(&d);
	}
	k = d.kind;
	if (refused && len) {
		refused[0] = '\0';
		if (k == FSESL_NOTICE_REFUSED) {
			cr_assert_not_null(d.subscription);
			snprintf(refused, len, "%s", d.subscription);
		}
	}
	cr_assert_eq(d.server, srv, "notice for another handle");
	fsesl_delivery_release(&d);
	cr_assert_null(d.subscription, "release must clear the subscription text");
	return k;
}

/* The next event, which must be a HEARTBEAT (notices are not skipped). */
static void
expect_heartbeat(fsesl_subscriber *s)
{
	fsesl_delivery d;

	cr_assert_eq(fsesl_subscriber_next(s, &d, SAFETY_MS), 1);
	cr_assert_eq(d.kind, FSESL_NOTICE_EVENT, "kind %d", (int)d.kind);
	cr_assert_str_eq(d.event->name, "HEARTBEAT");
	fsesl_delivery_release(&d);
}

static void
expect_nothing(fsesl_subscriber *s, const char *who)
{
	fsesl_delivery d;
	int rc = fsesl_subscriber_next(s, &d, 0);

	cr_assert_eq(rc, 0, "%s: unexpected delivery of kind %d", who, (int)d.kind);
}

/* Whether the simulator received `line` since the last call (the record
 * is consumed). */
static bool
recorded(const char *line)
{
	char **lines = NULL;
	size_t n = fsesl_sim_recorded(sim, &lines), i;
	bool seen = false;

	for (i = 0; i < n; i++) {
		if (strcmp(lines[i], line) == 0)
			seen = true;
		free(lines[i]);
	}
	free(lines);
	return seen;
}

/* ---- refusals --------------------------------------------------------- */

/*
 * Before the first connect: the call waits for the connection and the
 * server's answer, as a command waits for its connection. The simulator
 * delays every command by 300 ms, so the subscription surely reaches the
 * engine while the attempt (connect, greeting, delayed auth) is running.
 */
Test(refused, subscribe_before_first_connect, .timeout = 60)
{
	fsesl_subscriber *s;

	sim_start("HEARTBEAT");
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_DELAY, 300, 0), 0);
	engine_start(NULL);
	cr_assert_eq(fsesl_subscriber_create(eng, "s", NULL, &s), 0);
	srv = get_as(USER, USER_PW);
	cr_assert_eq(fsesl_subscribe(s, srv, "CHANNEL_CREATE"), FSESL_EREFUSED);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	/* Connected now: refused again, directly; nothing was kept. */
	cr_assert_eq(fsesl_subscribe(s, srv, "CHANNEL_CREATE"), FSESL_EREFUSED);
	cr_assert_eq(fsesl_unsubscribe(s, srv, "CHANNEL_CREATE"), -ENOENT);
	fsesl_sim_clear_faults(sim);
	fsesl_sim_fire_heartbeat(sim);
	expect_heartbeat(s);
	/* Answered to the caller: no notice on top of it. */
	barrier();
	expect_nothing(s, "s");
	fsesl_subscriber_destroy(s);
	stop_all();
}

/*
 * At a reconnect: the entry's credentials changed to a restricted user
 * (a later get with other credentials updates them), the server
 * restarted. The replayed CHANNEL_CREATE is refused: both holders hear it
 * (between DOWN and UP), it is no longer held, and subscribing again
 * reports the refusal instead of success. HEARTBEAT, allowed, still works.
 */
Test(refused, replay_refused_at_reconnect, .timeout = 60)
{
	fsesl_subscriber *a, *b;
	fsesl_server_t restricted;
	char name[64];

	sim_start("HEARTBEAT");
	engine_start(NULL);
	srv = get_as(NULL, "ClueCon");
	barrier();
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscriber_create(eng, "b", NULL, &b), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "CHANNEL_CREATE"), 0); /* admin: allowed */
	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_subscribe(b, srv, "CHANNEL_CREATE"), 0);
	cr_assert_eq(fsesl_subscribe(b, srv, "CHANNEL_CREATE"), 0); /* two references */
	restricted = get_as(USER, USER_PW);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);

	cr_assert_eq(next_notice(a, NULL, 0), FSESL_NOTICE_DOWN);
	cr_assert_eq(next_notice(a, name, sizeof(name)), FSESL_NOTICE_REFUSED);
	cr_assert_str_eq(name, "CHANNEL_CREATE");
	cr_assert_eq(next_notice(a, NULL, 0), FSESL_NOTICE_UP);
	cr_assert_eq(next_notice(b, NULL, 0), FSESL_NOTICE_DOWN);
	cr_assert_eq(next_notice(b, name, sizeof(name)), FSESL_NOTICE_REFUSED);
	cr_assert_str_eq(name, "CHANNEL_CREATE");
	cr_assert_eq(next_notice(b, NULL, 0), FSESL_NOTICE_UP);

	cr_assert_eq(fsesl_subscribe(a, srv, "CHANNEL_CREATE"), FSESL_EREFUSED);
	cr_assert_eq(fsesl_unsubscribe(b, srv, "CHANNEL_CREATE"), -ENOENT);
	fsesl_sim_fire_heartbeat(sim);
	expect_heartbeat(a);
	barrier();
	expect_nothing(a, "a");
	expect_nothing(b, "b");
	fsesl_subscriber_destroy(a);
	fsesl_subscriber_destroy(b);
	cr_assert_eq(fsesl_server_put(eng, restricted), 0);
	stop_all();
}

/*
 * While the server is down in backoff, a subscription is recorded and the
 * call returns 0; refused when the server comes back, it is reported by a
 * notice, and a later subscribe gets the server's real answer. The engine
 * runs on a clock of the test's: its backoff ends when the test says so.
 */
static _Atomic uint64_t fake_ns;

static uint64_t
fake_clock(void *ud)
{
	(void)ud;
	return atomic_load(&fake_ns);
}

Test(refused, recorded_in_backoff_then_refused, .timeout = 60)
{
	fsesl_subscriber *a;
	fsesl_server_stats st;
	fsesl_config cfg;
	char name[64];

	sim_start("HEARTBEAT");
	fsesl_config_init(&cfg);
	atomic_store(&fake_ns, 1000ull * 1000000000ull);
	cfg.clock_fn = fake_clock;
	cfg.heartbeat_miss_limit = 0;
	cr_assert_eq(fsesl_config_set(&cfg, "backoff", "0,3600", NULL, 0), 0);
	cr_assert_eq(fsesl_config_set(&cfg, "backoff_step_every", "1", NULL, 0), 0);
	cr_assert_eq(fsesl_engine_start(&cfg, &eng), 0);
	srv = get_as(USER, USER_PW);
	barrier();
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_REFUSE, 0, 0), 0);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	cr_assert_eq(next_notice(a, NULL, 0), FSESL_NOTICE_DOWN);
	/* The retry at once and the one after 0 s are refused; the next one
	 * is an hour of engine time away. */
	cr_assert(WAIT_UNTIL((fsesl_server_stats_get(eng, srv, &st), st.connect_failures >= 2)));
	cr_assert_eq(fsesl_subscribe(a, srv, "CHANNEL_CREATE"), 0, "recorded while down");
	fsesl_sim_clear_faults(sim);
	atomic_fetch_add(&fake_ns, 4000ull * 1000000000ull);
	cr_assert_eq(fsesl_engine_tick(eng), 0);
	cr_assert_eq(next_notice(a, name, sizeof(name)), FSESL_NOTICE_REFUSED);
	cr_assert_str_eq(name, "CHANNEL_CREATE");
	cr_assert_eq(next_notice(a, NULL, 0), FSESL_NOTICE_UP);
	cr_assert_eq(fsesl_subscribe(a, srv, "CHANNEL_CREATE"), FSESL_EREFUSED);
	fsesl_sim_fire_heartbeat(sim);
	expect_heartbeat(a);
	fsesl_subscriber_destroy(a);
	stop_all();
}

/* The engine's own HEARTBEAT subscription (the load watch) refused. */
Test(refused, load_watch_refused, .timeout = 60)
{
	fsesl_load ld;
	int rc;

	sim_start("CHANNEL_CREATE");
	engine_start(NULL);
	srv = get_as(USER, USER_PW);
	barrier();
	rc = fsesl_server_load(eng, srv, &ld);
	cr_assert(rc == 0 || rc == FSESL_EREFUSED, "rc %d", rc);
	cr_assert(!ld.valid);
	cr_assert(WAIT_UNTIL(fsesl_server_load(eng, srv, &ld) == FSESL_EREFUSED),
	    "the refused load watch was never reported");
	cr_assert(!ld.valid);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), FSESL_EREFUSED);
	stop_all();
}

/* ---- URLs with events --------------------------------------------------- */

Test(url, get_refuses_event_list_subscribe_url_is_all_or_nothing, .timeout = 60)
{
	fsesl_subscriber *s;
	fsesl_engine_stats es;
	fsesl_server_t h = 0;
	char url[256];

	sim_start("HEARTBEAT");
	engine_start(NULL);
	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u?HEARTBEAT,CHANNEL_CREATE", port);
	cr_assert_eq(fsesl_server_get(eng, url, &h), FSESL_EURLEVENTS);
	fsesl_engine_stats_get(eng, &es);
	cr_assert_eq(es.servers, 0, "a refused URL created a server entry");
	cr_assert_str_eq(fsesl_strerror(FSESL_EURLEVENTS),
	    "URL lists events: subscribe them with fsesl_subscribe_url()");

	cr_assert_eq(fsesl_subscriber_create(eng, "s", NULL, &s), 0);
	/* The restricted user: HEARTBEAT allowed, CHANNEL_CREATE refused. */
	snprintf(url, sizeof(url),
	    "fs://" USER ":" USER_PW "@127.0.0.1:%u?HEARTBEAT,CHANNEL_CREATE", port);
	h = 77;
	cr_assert_eq(fsesl_subscribe_url(s, url, &h), FSESL_EREFUSED);
	cr_assert_eq(h, 0);
	/* HEARTBEAT was undone on the server. */
	cr_assert(recorded("nixevent HEARTBEAT"), "HEARTBEAT left subscribed");

	snprintf(url, sizeof(url), "fs://" USER ":" USER_PW "@127.0.0.1:%u?HEARTBEAT", port);
	cr_assert_eq(fsesl_subscribe_url(s, url, &h), 0);
	cr_assert_neq(h, 0);
	srv = h;
	fsesl_sim_fire_heartbeat(sim);
	expect_heartbeat(s);
	cr_assert_eq(fsesl_subscribe_url(s, "fs://nopassword@127.0.0.1?HEARTBEAT", &h), FSESL_EURL);
	cr_assert_eq(h, 0);
	cr_assert_eq(fsesl_subscribe_url(NULL, url, &h), -EINVAL);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* ---- the load watch never waits ------------------------------------------ */

struct load_call {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int rc;
	fsesl_load ld;
};

static void *
load_thread(void *arg)
{
	struct load_call *lc = arg;
	int rc = fsesl_server_load(eng, srv, &lc->ld);

	pthread_mutex_lock(&lc->mu);
	lc->rc = rc;
	lc->done = true;
	pthread_cond_signal(&lc->cv);
	pthread_mutex_unlock(&lc->mu);
	return NULL;
}

/*
 * The server is stalled (reads nothing, answers nothing) and commands may
 * wait a minute. The first fsesl_server_load returns anyway, while the
 * simulator has not even read the HEARTBEAT subscription: it cannot have
 * waited for the answer. (The safety bound only keeps a hung call from
 * hanging the suite; the call returns immediately.)
 */
Test(load, first_call_does_not_wait_for_the_server, .timeout = 120)
{
	struct load_call lc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, -1, {0}};
	struct fsesl_sim_counters before, after;
	struct timespec dl;
	fsesl_subscriber *s;
	fsesl_config cfg;
	pthread_t t;

	sim_start(NULL);
	fsesl_config_init(&cfg);
	cfg.esl_cmd_timeout = 60000;
	cfg.event_heartbeat_interval = 3600; /* no liveness reconnect while stalled */
	engine_start(&cfg);
	srv = get_as(NULL, "ClueCon");
	barrier();
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_STALL, 0, 0), 0);
	fsesl_sim_counters(sim, &before);
	cr_assert_eq(pthread_create(&t, NULL, load_thread, &lc), 0);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += SAFETY_MS / 1000;
	pthread_mutex_lock(&lc.mu);
	while (!lc.done && pthread_cond_timedwait(&lc.cv, &lc.mu, &dl) == 0)
		;
	pthread_mutex_unlock(&lc.mu);
	cr_assert(lc.done, "fsesl_server_load waited for a stalled server");
	fsesl_sim_counters(sim, &after);
	cr_assert_eq(after.commands, before.commands, "the server read a command meanwhile");
	pthread_join(t, NULL);
	cr_assert_eq(lc.rc, 0);
	cr_assert(!lc.ld.valid);
	/* The request was made all the same: once the server reads again,
	 * it subscribes and the load becomes valid with the next beat. */
	fsesl_sim_clear_faults(sim);
	cr_assert(WAIT_UNTIL(recorded("event plain HEARTBEAT")));
	cr_assert_eq(fsesl_subscriber_create(eng, "s", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0); /* joins the engine's */
	fsesl_sim_fire_heartbeat(sim);
	expect_heartbeat(s);
	cr_assert_eq(fsesl_server_load(eng, srv, &lc.ld), 0);
	cr_assert(lc.ld.valid);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* Holds the reactor inside an async callback until released. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool hold_in, hold_release;
static _Atomic int async_done;

static void
hold_cb(int status, const fsesl_reply *r, void *ud)
{
	(void)status;
	(void)r;
	(void)ud;
	pthread_mutex_lock(&hold_mu);
	hold_in = true;
	pthread_cond_broadcast(&hold_cv);
	while (!hold_release)
		pthread_cond_wait(&hold_cv, &hold_mu);
	pthread_mutex_unlock(&hold_mu);
	atomic_fetch_add(&async_done, 1);
}

static void
count_cb(int status, const fsesl_reply *r, void *ud)
{
	(void)status;
	(void)r;
	(void)ud;
	atomic_fetch_add(&async_done, 1);
}

/*
 * The first call finds the submission ring full (the reactor is held in a
 * callback): it still returns at once, and the request is not lost - the
 * next call makes it.
 */
Test(load, full_ring_does_not_lose_the_request, .timeout = 60)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_config cfg;
	fsesl_load ld;
	int sent = 1, rc;

	sim_start(NULL);
	fsesl_config_init(&cfg);
	cr_assert_eq(fsesl_config_set(&cfg, "ring_size", "4", NULL, 0), 0);
	cr_assert_eq(fsesl_config_set(&cfg, "ring_shards", "1", NULL, 0), 0);
	engine_start(&cfg);
	srv = get_as(NULL, "ClueCon");
	barrier();
	recorded("");
	cr_assert_eq(fsesl_api_async(eng, srv, "echo hold", NULL, hold_cb, NULL), 0);
	pthread_mutex_lock(&hold_mu);
	while (!hold_in)
		pthread_cond_wait(&hold_cv, &hold_mu);
	pthread_mutex_unlock(&hold_mu);
	o.nonblock = true;
	while ((rc = fsesl_api_async(eng, srv, "echo fill", &o, count_cb, NULL)) == 0)
		sent++;
	cr_assert_eq(rc, -EAGAIN);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0); /* finds the ring full */
	cr_assert(!ld.valid);
	pthread_mutex_lock(&hold_mu);
	hold_release = true;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	cr_assert(WAIT_UNTIL(atomic_load(&async_done) == sent));
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0); /* asks again */
	cr_assert(WAIT_UNTIL(recorded("event plain HEARTBEAT")), "the load watch was lost");
	stop_all();
}

/* ---- DOWN and UP alternate ------------------------------------------------ */

/*
 * Checks a notice sequence for one server: DOWN and UP strictly alternate,
 * starting with DOWN; returns how many of each.
 */
struct tally {
	int down, up;
	enum fsesl_notice last;
};

static void
tally_take(fsesl_subscriber *s, struct tally *t, int timeout_ms)
{
	fsesl_delivery d;

	while (fsesl_subscriber_next(s, &d, timeout_ms) == 1) {
		if (d.kind == FSESL_NOTICE_DOWN) {
			cr_assert(t->down == t->up, "DOWN after DOWN (%d DOWN, %d UP)", t->down + 1,
			    t->up);
			t->down++;
			t->last = d.kind;
		} else if (d.kind == FSESL_NOTICE_UP) {
			cr_assert(t->up == t->down - 1, "UP without a DOWN (%d DOWN, %d UP)",
			    t->down, t->up + 1);
			t->up++;
			t->last = d.kind;
		}
		fsesl_delivery_release(&d);
		if (t->last == FSESL_NOTICE_UP && timeout_ms)
			return;
	}
}

/*
 * Every new connection is closed by the server right after its login
 * succeeds, before the engine's replayed subscription is answered: the
 * connection was READY, but the subscriptions were never restored, so
 * nothing is announced for it. One DOWN (the first drop), then one UP
 * when a connection finally restores them.
 */
Test(notices, connections_lost_before_restore_announce_nothing, .timeout = 60)
{
	struct tally t = {0, 0, FSESL_NOTICE_EVENT};
	fsesl_server_stats st;
	fsesl_subscriber *s;

	fsesl_config cfg;

	sim_start(NULL);
	fsesl_config_init(&cfg);
	cfg.heartbeat_miss_limit = 0; /* no liveness reconnects of its own */
	engine_start(&cfg);
	srv = get_as(NULL, "ClueCon");
	barrier();
	cr_assert_eq(fsesl_subscriber_create(eng, "s", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	/* New connections: auth/request and the auth reply, then closed. */
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_CLOSE_AFTER_MSGS, 2, 0), 0);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	cr_assert(WAIT_UNTIL((fsesl_server_stats_get(eng, srv, &st), st.connects >= 12)));
	fsesl_sim_clear_faults(sim);
	tally_take(s, &t, SAFETY_MS);
	cr_assert_eq(t.last, FSESL_NOTICE_UP);
	barrier();
	tally_take(s, &t, 0);
	cr_assert_eq(t.down, 1);
	cr_assert_eq(t.up, 1);
	fsesl_sim_fire_heartbeat(sim);
	expect_heartbeat(s);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/*
 * Repeated GARBAGE faults. Each round restarts the server; as soon as the
 * engine has logged in again, the next reply of that connection - the
 * answer to a replayed subscription, every command being DELAYed 100 ms -
 * is replaced by garbage: the connection dies READY but not restored, and
 * announces nothing. The next one restores them: UP. Whatever the timing,
 * the notices alternate, one DOWN and one UP per round.
 */
Test(notices, down_up_alternate_under_repeated_garbage, .timeout = 120)
{
	struct tally t = {0, 0, FSESL_NOTICE_EVENT};
	struct fsesl_sim_counters sc;
	fsesl_subscriber *s;
	fsesl_config cfg;
	uint64_t auths;
	int i;

	sim_start(NULL);
	fsesl_config_init(&cfg);
	cfg.heartbeat_miss_limit = 0; /* no liveness reconnects of its own */
	engine_start(&cfg);
	srv = get_as(NULL, "ClueCon");
	barrier();
	cr_assert_eq(fsesl_subscriber_create(eng, "s", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "CUSTOM a::b"), 0);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_DELAY, 100, 0), 0);
	for (i = 1; i <= 8; i++) {
		fsesl_sim_counters(sim, &sc);
		auths = sc.auth_ok;
		cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
		cr_assert(WAIT_UNTIL((fsesl_sim_counters(sim, &sc), sc.auth_ok > auths)));
		cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_GARBAGE, 64, 0), 0);
		tally_take(s, &t, SAFETY_MS); /* up to this round's UP */
		cr_assert_eq(t.last, FSESL_NOTICE_UP);
		cr_assert_eq(t.down, i);
		cr_assert_eq(t.up, i);
	}
	fsesl_sim_clear_faults(sim);
	barrier();
	tally_take(s, &t, 0);
	cr_assert_eq(t.down, 8);
	cr_assert_eq(t.up, 8);
	fsesl_sim_counters(sim, &sc);
	cr_assert_geq(sc.faults[FSESL_SIM_FAULT_GARBAGE], 1);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/*
 * A full queue drops events (counted, DROPPED) but keeps notices: the
 * DOWN and UP of a restart that happens while nobody consumes arrive, in
 * order, once the consumer makes room - even though no further event
 * comes to carry them.
 */
Test(notices, kept_while_the_queue_is_full, .timeout = 60)
{
	fsesl_sub_opts so = {.queue_size = 4};
	fsesl_server_stats st;
	fsesl_subscriber *s;
	fsesl_delivery d;
	uint64_t events = 0, dropped = 0;
	int i;

	sim_start(NULL);
	engine_start(NULL);
	srv = get_as(NULL, "ClueCon");
	barrier();
	cr_assert_eq(fsesl_subscriber_create(eng, "s", &so, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "CUSTOM test::ev"), 0);
	for (i = 0; i < 20; i++)
		cr_assert_eq(fsesl_sim_fire_event(sim, "CUSTOM", "test::ev", NULL, 0, NULL), 0);
	barrier(); /* all 20 dispatched: the queue is full */
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	cr_assert(WAIT_UNTIL((fsesl_server_stats_get(eng, srv, &st), st.reconnects >= 1)));
	barrier(); /* behind the replay: restored, UP posted */
	while (events + dropped < 20) {
		cr_assert_eq(fsesl_subscriber_next(s, &d, SAFETY_MS), 1);
		cr_assert(d.kind == FSESL_NOTICE_EVENT || d.kind == FSESL_NOTICE_DROPPED,
		    "kind %d before the queued events were taken", (int)d.kind);
		if (d.kind == FSESL_NOTICE_EVENT)
			events++;
		else
			dropped += d.count;
		fsesl_delivery_release(&d);
	}
	cr_assert_eq(dropped, fsesl_subscriber_dropped(s));
	cr_assert_eq(next_notice(s, NULL, 0), FSESL_NOTICE_DOWN);
	cr_assert_eq(next_notice(s, NULL, 0), FSESL_NOTICE_UP);
	expect_nothing(s, "s");
	fsesl_subscriber_destroy(s);
	stop_all();
}
