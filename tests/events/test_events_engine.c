/*
 * test_events_engine.c - subscriptions and deliveries, DOWN/UP notices, the
 * HEARTBEAT load snapshot and bgapi jobs, against the simulator.
 */
#include <errno.h>
#include <pthread.h>
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
	fsesl_config c;

	fsesl_config_init(&c);
	c.backoff_s[0] = 0;
	c.backoff_steps = 1;
	sim = et_sim(&port);
	eng = et_engine(&c);
	srv = et_server(eng, port, "ClueCon");
	cr_assert_eq(et_echo(eng, srv, "up", NULL), 0);
}

static void
teardown(void)
{
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	cr_assert_eq(fsesl_engine_stop(eng), 0);
	fsesl_sim_stop(sim);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 60);

/* Next delivery of a kind, skipping others (released). */
static bool
next_kind(fsesl_subscriber *s, enum fsesl_notice kind, fsesl_delivery *d, int ms)
{
	uint64_t end = et_now_ms() + (uint64_t)ms;

	while (et_now_ms() < end) {
		if (fsesl_subscriber_next(s, d, 100) != 1)
			continue;
		if (d->kind == kind)
			return true;
		fsesl_delivery_release(d);
	}
	return false;
}

Test(events, heartbeat_delivery_and_load)
{
	fsesl_subscriber *s = NULL;
	fsesl_delivery d;
	fsesl_load ld;
	struct fsesl_sim_load sl = {42.5, 7, 100};

	cr_assert_eq(fsesl_subscriber_create(eng, "t", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0);
	cr_assert_not(ld.valid);
	fsesl_sim_set_load(sim, &sl);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert(next_kind(s, FSESL_NOTICE_EVENT, &d, 10000));
	cr_assert_str_eq(d.event->name, "HEARTBEAT");
	cr_assert_eq(d.server, srv);
	fsesl_delivery_release(&d);
	cr_assert(WAIT_UNTIL((fsesl_server_load(eng, srv, &ld), ld.valid), 10000));
	cr_assert_eq(ld.hb.session_count, 7);
	cr_assert_eq(ld.hb.max_sessions, 100);
	cr_assert_eq(fsesl_pick_least_loaded(eng, &srv, 1), 0);
	cr_assert_eq(fsesl_unsubscribe(s, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_unsubscribe(s, srv, "HEARTBEAT"), -ENOENT);
	fsesl_subscriber_destroy(s);
}

Test(events, custom_event_and_injection)
{
	fsesl_subscriber *s = NULL;
	fsesl_delivery d;
	struct fsesl_header h[1] = {{"Event-Subclass", 14, "t::ping", 7}};
	struct fsesl_cmd c = {"sendevent CUSTOM", h, 1, "body!", 5, 0};
	fsesl_reply *r;

	cr_assert_eq(fsesl_subscriber_create(eng, "t", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT\n\napi x"), FSESL_EINJECTION);
	cr_assert_eq(fsesl_subscribe(s, srv, "CUSTOM t::ping"), 0);
	cr_assert_eq(fsesl_command(eng, srv, &c, NULL, &r), 0);
	fsesl_reply_free(r);
	cr_assert(next_kind(s, FSESL_NOTICE_EVENT, &d, 10000));
	cr_assert_str_eq(d.event->name, "CUSTOM");
	cr_assert_str_eq(d.event->subclass, "t::ping");
	cr_assert_eq(d.event->body_len, 5);
	fsesl_delivery_release(&d);
	cr_assert_eq(fsesl_filter_add(s, srv, "Event-Subclass", "t::ping"), 0);
	cr_assert_eq(fsesl_filter_del(s, srv, "Event-Subclass", "t::ping"), 0);
	fsesl_subscriber_destroy(s);
}

Test(events, down_and_up_notices)
{
	fsesl_subscriber *s = NULL;
	fsesl_delivery d;

	cr_assert_eq(fsesl_subscriber_create(eng, "t", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0);
	cr_assert(next_kind(s, FSESL_NOTICE_DOWN, &d, 10000));
	cr_assert(next_kind(s, FSESL_NOTICE_UP, &d, 10000));
	/* The subscription was replayed on the new connection. */
	fsesl_sim_fire_heartbeat(sim);
	cr_assert(next_kind(s, FSESL_NOTICE_EVENT, &d, 10000));
	fsesl_delivery_release(&d);
	fsesl_subscriber_destroy(s);
}

static _Atomic int cb_events;

static void
ev_cb(const fsesl_delivery *d, void *ud)
{
	(void)ud;
	if (d->kind == FSESL_NOTICE_EVENT)
		atomic_fetch_add(&cb_events, 1);
}

Test(events, callback_mode)
{
	fsesl_subscriber *s = NULL;
	fsesl_sub_opts o = {16, FSESL_EVFMT_JSON, ev_cb, NULL};

	cr_assert_eq(fsesl_subscriber_create(eng, "cb", &o, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert(WAIT_UNTIL(atomic_load(&cb_events) >= 1, 10000));
	fsesl_subscriber_destroy(s);
}

Test(events, bgapi_job_result)
{
	struct fsesl_event *ev = NULL;

	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo job-output", 10000, NULL, &ev), 0);
	cr_assert_not_null(ev);
	cr_assert_str_eq(ev->name, "BACKGROUND_JOB");
	cr_assert(strstr(ev->body, "job-output") != NULL, "body: %s", ev->body);
	fsesl_event_free(ev);
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo a\nb", 1000, NULL, &ev), FSESL_EINJECTION);
}

static _Atomic int job_status = 1;

static void
job_cb(int status, const struct fsesl_event *ev, void *ud)
{
	(void)ud;
	if (status == 0 && (!ev || !ev->body || !strstr(ev->body, "async-job")))
		status = -99;
	atomic_store(&job_status, status);
}

Test(events, bgapi_job_async)
{
	cr_assert_eq(
	    fsesl_bgapi_job_async(eng, srv, "echo async-job", 10000, NULL, job_cb, NULL), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&job_status) != 1, 10000));
	cr_assert_eq(atomic_load(&job_status), 0);
}

Test(events_kick, lone_lf_kicks_idle_event_connection, .timeout = 60)
{
	uint16_t p;
	fsesl_sim *sm = et_sim(&p);
	fsesl_config c;
	fsesl_engine *e;
	fsesl_server_t h;
	fsesl_subscriber *s = NULL;
	struct fsesl_sim_counters sc;

	fsesl_config_init(&c);
	c.lf_kick_interval_ms = 5;
	e = et_engine(&c);
	h = et_server(e, p, "ClueCon");
	cr_assert_eq(fsesl_subscriber_create(e, "k", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, h, "HEARTBEAT"), 0);
	cr_assert(WAIT_UNTIL((fsesl_sim_counters(sm, &sc), sc.kicks >= 3), 10000));
	/* Kicks draw no reply: the stream stays in step. */
	cr_assert_eq(et_echo(e, h, "after-kicks", NULL), 0);
	fsesl_subscriber_destroy(s);
	cr_assert_eq(fsesl_server_put(e, h), 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(sm);
}

/* ---- destroying a subscriber from inside a callback ------------------- */

/*
 * A callback-mode subscriber destroyed from a callback that runs on the
 * reactor (here an async command's) while its own dispatcher is busy in a
 * callback: the destroy must not wait for that dispatcher (the reactor
 * would stop until the application's callback returns, and forever if it
 * waits on the reactor); the dispatcher ends on its own and the engine
 * joins it.
 */
struct busy {
	fsesl_subscriber *s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool in_cb, release;
	_Atomic int calls;
	_Atomic bool destroy_called, destroy_returned;
};

static void
busy_cb(const fsesl_delivery *d, void *ud)
{
	struct busy *b = ud;

	(void)d;
	atomic_fetch_add(&b->calls, 1);
	pthread_mutex_lock(&b->mu);
	b->in_cb = true;
	pthread_cond_broadcast(&b->cv);
	while (!b->release)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
}

static void
destroy_busy_cb(int status, const fsesl_reply *r, void *ud)
{
	struct busy *b = ud;

	(void)status;
	(void)r;
	atomic_store(&b->destroy_called, true);
	fsesl_subscriber_destroy(b->s);
	atomic_store(&b->destroy_returned, true);
}

Test(events, destroy_from_reactor_callback_never_waits_for_dispatcher)
{
	struct busy b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	fsesl_sub_opts o = {16, FSESL_EVFMT_PLAIN, busy_cb, &b};

	cr_assert_eq(fsesl_subscriber_create(eng, "busy", &o, &b.s), 0);
	cr_assert_eq(fsesl_subscribe(b.s, srv, "HEARTBEAT"), 0);
	fsesl_sim_fire_heartbeat(sim);
	pthread_mutex_lock(&b.mu);
	while (!b.in_cb)
		pthread_cond_wait(&b.cv, &b.mu);
	pthread_mutex_unlock(&b.mu);
	/* The dispatcher is inside busy_cb until we release it. */
	cr_assert_eq(fsesl_api_async(eng, srv, "echo x", NULL, destroy_busy_cb, &b), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&b.destroy_called), 10000));
	/* Returns while the dispatcher is still busy: the reactor goes on. */
	cr_assert(WAIT_UNTIL(atomic_load(&b.destroy_returned), 10000),
	    "the destroy waited for the dispatcher on the reactor thread");
	cr_assert_eq(et_echo(eng, srv, "reactor-alive", NULL), 0);
	pthread_mutex_lock(&b.mu);
	b.release = true;
	pthread_cond_broadcast(&b.cv);
	pthread_mutex_unlock(&b.mu);
	/* Its subscriptions went with the destroy: no further callback. */
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(et_echo(eng, srv, "after", NULL), 0);
	cr_assert_eq(atomic_load(&b.calls), 1);
}

/* A subscriber destroyed from its own callback: freed once the callback has
 * returned to its dispatcher, never called again. */
struct selfie {
	fsesl_subscriber *s;
	_Atomic int calls;
	_Atomic bool destroyed;
};

static void
selfie_cb(const fsesl_delivery *d, void *ud)
{
	struct selfie *x = ud;

	if (d->kind != FSESL_NOTICE_EVENT)
		return;
	if (atomic_fetch_add(&x->calls, 1) == 0) {
		fsesl_subscriber_destroy(x->s);
		atomic_store(&x->destroyed, true);
	}
}

Test(events, destroy_from_own_callback)
{
	struct selfie x = {0};
	fsesl_sub_opts o = {16, FSESL_EVFMT_PLAIN, selfie_cb, &x};
	int i;

	cr_assert_eq(fsesl_subscriber_create(eng, "self", &o, &x.s), 0);
	cr_assert_eq(fsesl_subscribe(x.s, srv, "HEARTBEAT"), 0);
	for (i = 0; i < 3; i++)
		fsesl_sim_fire_heartbeat(sim);
	cr_assert(WAIT_UNTIL(atomic_load(&x.destroyed), 10000));
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(et_echo(eng, srv, "after", NULL), 0);
	/* Deliveries queued behind the one that destroyed it are dropped
	 * with the subscriber, not delivered. */
	cr_assert_eq(atomic_load(&x.calls), 1);
}

static long
thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long n = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

struct many {
	fsesl_subscriber *subs[8];
	_Atomic int destroyed;
};

static void
noop_cb(const fsesl_delivery *d, void *ud)
{
	(void)d;
	(void)ud;
}

static void
destroy_all_cb(int status, const fsesl_reply *r, void *ud)
{
	struct many *m = ud;

	(void)status;
	(void)r;
	for (int i = 0; i < 8; i++)
		fsesl_subscriber_destroy(m->subs[i]);
	atomic_store(&m->destroyed, 8);
}

/* Dispatchers retired by destroys in callbacks are joined by stop at the
 * latest: after it no thread of the engine is left. */
Test(events_kick, no_thread_outlives_stop, .timeout = 60)
{
	long before = thread_count();
	uint16_t p;
	fsesl_sim *sm = et_sim(&p);
	fsesl_engine *e = et_engine(NULL);
	fsesl_server_t h = et_server(e, p, "ClueCon");
	fsesl_sub_opts o = {16, FSESL_EVFMT_PLAIN, noop_cb, NULL};
	struct many m = {0};

	for (int i = 0; i < 8; i++)
		cr_assert_eq(fsesl_subscriber_create(e, "m", &o, &m.subs[i]), 0);
	cr_assert_gt(thread_count(), before + 8);
	cr_assert_eq(fsesl_api_async(e, h, "echo x", NULL, destroy_all_cb, &m), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&m.destroyed) == 8, 10000));
	cr_assert_eq(fsesl_server_put(e, h), 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(sm);
	cr_assert_eq(thread_count(), before);
}
