/*
 * test_events.c - subscriptions and deliveries, DOWN/UP notices, the
 * HEARTBEAT load snapshot and bgapi jobs, against the simulator.
 */
#include <errno.h>
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
