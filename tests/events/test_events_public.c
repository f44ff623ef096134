/*
 * test_events.c - subscriptions, delivery, reconnect replay, HEARTBEAT load
 * statistics and bgapi jobs, against the in-process simulator.
 *
 * Nothing here waits by sleeping: every wait is on a delivery, a command
 * reply or a job, with a generous bound only as a safety net.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <time.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define SAFETY_MS 10000

static fsesl_sim *sim;
static fsesl_engine *eng;
static fsesl_server_t srv;

static void barrier(void);

/* Starts a simulator and an engine with one server; returns once the
 * server answered a command (connected), so that subscriptions made next
 * are sent at once rather than at connect. */
static void
start_all(unsigned int conns)
{
	struct fsesl_sim_config sc;
	fsesl_config cfg;
	uint16_t port;
	char url[128];

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 0; /* heartbeats only when a test fires one */
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	fsesl_sim_record_commands(sim, true);
	fsesl_config_init(&cfg);
	cfg.connections_per_server = conns;
	cr_assert_eq(fsesl_config_set(&cfg, "backoff", "0,1", NULL, 0), 0);
	cr_assert_eq(fsesl_engine_start(&cfg, &eng), 0);
	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	cr_assert_eq(fsesl_server_get(eng, url, &srv), 0);
	barrier();
}

static void
stop_all(void)
{
	fsesl_server_put(eng, srv);
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

/* The subscription commands the simulator received, in order, as one
 * string "cmd1|cmd2|...". Other commands (auth, api) are left out. */
static char *
sub_commands(void)
{
	char **lines = NULL;
	size_t n = fsesl_sim_recorded(sim, &lines), i, len = 0;
	char *out = calloc(1, 1);

	for (i = 0; i < n; i++) {
		if (!strncmp(lines[i], "event ", 6) || !strncmp(lines[i], "nixevent ", 9) ||
		    !strncmp(lines[i], "filter ", 7)) {
			size_t l = strlen(lines[i]);

			out = realloc(out, len + l + 2);
			if (len)
				out[len++] = '|';
			memcpy(out + len, lines[i], l + 1);
			len += l;
		}
		free(lines[i]);
	}
	free(lines);
	return out;
}

/* A command round trip: everything the engine sent before it on the event
 * connection has been answered by then. */
static void
barrier(void)
{
	fsesl_reply *r = NULL;

	cr_assert_eq(fsesl_api(eng, srv, "echo barrier", NULL, &r), 0);
	fsesl_reply_free(r);
}

/* Next delivery of kind EVENT named `name` (others are skipped and counted). */
static int
next_kind(fsesl_subscriber *s, fsesl_delivery *d)
{
	int rc = fsesl_subscriber_next(s, d, SAFETY_MS);

	cr_assert_eq(rc, 1, "no delivery within the safety bound (rc %d)", rc);
	return d->kind;
}

Test(events, refcounted_commands, .init = NULL, .timeout = 60)
{
	fsesl_subscriber *a, *b;
	char *cmds;

	start_all(1);
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscriber_create(eng, "b", NULL, &b), 0);
	barrier(); /* connected */

	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT"), 0); /* sends */
	cr_assert_eq(fsesl_subscribe(b, srv, "HEARTBEAT"), 0); /* nothing */
	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT"), 0); /* nothing */
	cr_assert_eq(fsesl_unsubscribe(a, srv, "HEARTBEAT"), 0); /* nothing */
	cr_assert_eq(fsesl_unsubscribe(a, srv, "HEARTBEAT"), 0); /* nothing */
	cr_assert_eq(fsesl_unsubscribe(a, srv, "HEARTBEAT"), -ENOENT);
	cr_assert_eq(fsesl_unsubscribe(b, srv, "HEARTBEAT"), 0); /* nixevent */
	cr_assert_eq(fsesl_subscribe(a, srv, "CUSTOM sofia::register"), 0);
	cr_assert_eq(fsesl_filter_add(a, srv, "Event-Name", "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_filter_add(b, srv, "Event-Name", "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_filter_del(a, srv, "Event-Name", "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_filter_del(b, srv, "Event-Name", "HEARTBEAT"), 0);
	/* Bad names never reach the server. */
	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT\n\napi status"), FSESL_EINJECTION);
	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT API"), -EINVAL);
	barrier();

	/* Filters are the subscriber's own: never sent to the server, where
	 * they would act on every subscriber of the connection. */
	cmds = sub_commands();
	cr_assert_str_eq(
	    cmds, "event plain HEARTBEAT|nixevent HEARTBEAT|event plain CUSTOM sofia::register");
	free(cmds);
	/* Destroying a subscriber withdraws what only it held. */
	fsesl_subscriber_destroy(a);
	barrier();
	cmds = sub_commands();
	cr_assert(strstr(cmds, "nixevent CUSTOM sofia::register") != NULL, "%s", cmds);
	free(cmds);
	fsesl_subscriber_destroy(b);
	stop_all();
}

Test(events, slow_subscriber_drops_alone, .timeout = 60)
{
	fsesl_subscriber *slow, *fast;
	fsesl_sub_opts so = {.queue_size = 4};
	struct fsesl_sim_counters sc;
	fsesl_delivery d;
	int got = 0, i;

	start_all(1);
	cr_assert_eq(fsesl_subscriber_create(eng, "slow", &so, &slow), 0);
	cr_assert_eq(fsesl_subscriber_create(eng, "fast", NULL, &fast), 0);
	cr_assert_eq(fsesl_subscribe(slow, srv, "CUSTOM test::ev"), 0);
	cr_assert_eq(fsesl_subscribe(fast, srv, "CUSTOM test::ev"), 0);
	for (i = 0; i < 200; i++) {
		char seq[16];
		const char *kv[] = {"X-Seq", seq};

		snprintf(seq, sizeof(seq), "%d", i);
		cr_assert_eq(fsesl_sim_fire_event(sim, "CUSTOM", "test::ev", kv, 2, NULL), 0);
	}
	/* The fast one gets every event, in order. */
	while (got < 200) {
		char want[16];

		if (next_kind(fast, &d) != FSESL_NOTICE_EVENT) {
			fsesl_delivery_release(&d);
			continue;
		}
		snprintf(want, sizeof(want), "%d", got);
		cr_assert_str_eq(fsesl_event_get(d.event, "X-Seq"), want);
		cr_assert_str_eq(d.event->subclass, "test::ev");
		fsesl_delivery_release(&d);
		got++;
	}
	/* The slow one kept what its small queue holds and was told, by
	 * DROPPED notices, exactly how many it missed: nothing vanished. */
	barrier(); /* the reactor has finished delivering event 199 to both */
	{
		uint64_t dropped = fsesl_subscriber_dropped(slow), told = 0, held = 0;

		cr_assert_geq(dropped, 200 - 8, "a queue of 4 held %lu of 200",
		    (unsigned long)(200 - dropped));
		while (fsesl_subscriber_next(slow, &d, 0) == 1) {
			if (d.kind == FSESL_NOTICE_DROPPED)
				told += d.count;
			else if (d.kind == FSESL_NOTICE_EVENT)
				held++;
			fsesl_delivery_release(&d);
		}
		cr_assert_eq(told, dropped);
		cr_assert_eq(held + dropped, 200);
	}
	cr_assert_eq(fsesl_subscriber_next(slow, &d, 0), 0);
	/* Commands still work, and the server never dropped an event. */
	barrier();
	fsesl_sim_counters(sim, &sc);
	cr_assert_eq(sc.events_dropped, 0);
	fsesl_subscriber_destroy(slow);
	fsesl_subscriber_destroy(fast);
	stop_all();
}

Test(events, reconnect_replays_then_reports_up, .timeout = 60)
{
	fsesl_subscriber *s;
	fsesl_delivery d;
	char *cmds;
	const char *kv[] = {"X-After", "yes"};
	bool down = false, up = false;

	start_all(1);
	cr_assert_eq(fsesl_subscriber_create(eng, "s", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "CUSTOM test::ev"), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_filter_add(s, srv, "Event-Name", "CUSTOM"), 0);
	barrier();
	fsesl_sim_record_commands(sim, false);
	fsesl_sim_record_commands(sim, true); /* start a fresh record */
	free(sub_commands());

	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	while (!up) {
		int k = next_kind(s, &d);

		if (k == FSESL_NOTICE_DOWN)
			down = true;
		if (k == FSESL_NOTICE_UP) {
			cr_assert(down, "UP before DOWN");
			up = true;
		}
		fsesl_delivery_release(&d);
	}
	/* Restored before UP was delivered: the replay is on record now. */
	cmds = sub_commands();
	cr_assert(strstr(cmds, "event plain HEARTBEAT") != NULL, "%s", cmds);
	cr_assert(strstr(cmds, "event plain CUSTOM test::ev") != NULL, "%s", cmds);
	cr_assert(strstr(cmds, "filter") == NULL, "%s", cmds);
	free(cmds);
	/* The filter (Event-Name CUSTOM) still holds, on our side: the
	 * HEARTBEAT fired first is not delivered. */
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(fsesl_sim_fire_event(sim, "CUSTOM", "test::ev", kv, 2, NULL), 0);
	do {
		next_kind(s, &d);
		if (d.kind == FSESL_NOTICE_EVENT) {
			cr_assert_str_eq(fsesl_event_get(d.event, "X-After"), "yes");
			fsesl_delivery_release(&d);
			break;
		}
		fsesl_delivery_release(&d);
	} while (1);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* ---- jobs ---------------------------------------------------------- */

struct job_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok, bad;
	char tokens[1000][40];
};

static struct job_ctx jc;

static void
job_cb(int status, const struct fsesl_event *ev, void *ud)
{
	int idx = (int)(intptr_t)ud;

	pthread_mutex_lock(&jc.mu);
	if (status == 0 && ev && strcmp(ev->body, jc.tokens[idx]) == 0)
		jc.ok++;
	else
		jc.bad++;
	jc.done++;
	pthread_cond_signal(&jc.cv);
	pthread_mutex_unlock(&jc.mu);
}

Test(events, thousand_async_jobs_each_get_their_own, .timeout = 120)
{
	int i;

	start_all(2);
	pthread_mutex_init(&jc.mu, NULL);
	pthread_cond_init(&jc.cv, NULL);
	jc.done = jc.ok = jc.bad = 0;
	for (i = 0; i < 1000; i++) {
		char cmd[64];

		snprintf(jc.tokens[i], sizeof(jc.tokens[i]), "job-%d-%08x", i, rand());
		snprintf(cmd, sizeof(cmd), "echo %s", jc.tokens[i]);
		cr_assert_eq(
		    fsesl_bgapi_job_async(eng, srv, cmd, 30000, NULL, job_cb, (void *)(intptr_t)i),
		    0);
	}
	pthread_mutex_lock(&jc.mu);
	while (jc.done < 1000)
		pthread_cond_wait(&jc.cv, &jc.mu);
	pthread_mutex_unlock(&jc.mu);
	cr_assert_eq(jc.ok, 1000);
	cr_assert_eq(jc.bad, 0);
	stop_all();
}

Test(events, blocking_job_unknown_and_forged_ignored, .timeout = 60)
{
	struct fsesl_event *res = NULL;
	fsesl_server_stats st;
	fsesl_reply *r = NULL;
	struct fsesl_header h = {"Job-UUID", 8, "not-ours-0000", 13};
	struct fsesl_cmd forge = {.line = "sendevent BACKGROUND_JOB",
	    .headers = &h,
	    .n_headers = 1,
	    .body = "forged",
	    .body_len = 6};
	const char *kv[] = {"Job-UUID", "someone-elses-job"};

	start_all(1);
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo hello job", 10000, NULL, &res), 0);
	cr_assert_not_null(res);
	cr_assert_str_eq(res->name, "BACKGROUND_JOB");
	cr_assert_str_eq(res->body, "hello job");
	fsesl_event_free(res);

	/* Another client's job and a forged one: ignored, counted. */
	cr_assert_eq(fsesl_sim_fire_event(sim, "BACKGROUND_JOB", NULL, kv, 2, "x"), 0);
	cr_assert_eq(fsesl_command(eng, srv, &forge, NULL, &r), 0);
	fsesl_reply_free(r);
	/* A job after them still completes: their processing is behind us. */
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo again", 10000, NULL, &res), 0);
	cr_assert_str_eq(res->body, "again");
	fsesl_event_free(res);
	cr_assert_eq(fsesl_server_stats_get(eng, srv, &st), 0);
	cr_assert_geq(st.unknown_jobs, 1);
	cr_assert_eq(st.forged_events, 1);
	stop_all();
}

Test(events, job_expires_and_job_lost, .timeout = 60)
{
	struct fsesl_event *res = NULL;

	start_all(2);
	/* The job runs 3 s; we give it 50 ms. */
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "msleep 3000", 50, NULL, &res), -ETIMEDOUT);
	cr_assert_null(res);
	stop_all();
}

/* ---- load ---------------------------------------------------------- */

Test(events, heartbeat_load_snapshot, .timeout = 60)
{
	struct fsesl_sim_load l = {.idle_cpu = 87.5, .session_count = 12, .max_sessions = 500};
	fsesl_subscriber *s;
	fsesl_delivery d;
	fsesl_load ld;

	start_all(1);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0);
	cr_assert(!ld.valid);
	/* A subscriber of our own tells us when the heartbeat has passed. */
	cr_assert_eq(fsesl_subscriber_create(eng, "hb", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	fsesl_sim_set_load(sim, &l);
	fsesl_sim_fire_heartbeat(sim);
	while (next_kind(s, &d) != FSESL_NOTICE_EVENT)
		fsesl_delivery_release(&d);
	fsesl_delivery_release(&d);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0);
	cr_assert(ld.valid);
	cr_assert_float_eq(ld.hb.idle_cpu, 87.5, 1e-6);
	cr_assert_eq(ld.hb.session_count, 12);
	cr_assert_eq(ld.hb.max_sessions, 500);
	cr_assert_eq(fsesl_pick_least_loaded(eng, &srv, 1), 0);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* ---- liveness ------------------------------------------------------ */

/* A server that sends a HEARTBEAT every 200 ms, an engine that expects one
 * every second and gives up after one missed interval. */
static fsesl_subscriber *
start_liveness(void)
{
	struct fsesl_sim_config sc;
	fsesl_subscriber *s;
	fsesl_delivery d;
	fsesl_config cfg;
	uint16_t port;
	char url[128];

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 200;
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	fsesl_config_init(&cfg);
	cr_assert_eq(fsesl_config_set(&cfg, "event_heartbeat_interval", "1", NULL, 0), 0);
	cr_assert_eq(fsesl_config_set(&cfg, "heartbeat_miss_limit", "1", NULL, 0), 0);
	cr_assert_eq(fsesl_config_set(&cfg, "backoff", "0,1", NULL, 0), 0);
	cr_assert_eq(fsesl_engine_start(&cfg, &eng), 0);
	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	cr_assert_eq(fsesl_server_get(eng, url, &srv), 0);
	barrier();
	cr_assert_eq(fsesl_subscriber_create(eng, "live", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	while (next_kind(s, &d) != FSESL_NOTICE_EVENT) /* heartbeats flow */
		fsesl_delivery_release(&d);
	fsesl_delivery_release(&d);
	return s;
}

/* Waits for a notice of `kind`, skipping events. */
static void
wait_notice(fsesl_subscriber *s, enum fsesl_notice kind)
{
	fsesl_delivery d;

	while (next_kind(s, &d) != (int)kind)
		fsesl_delivery_release(&d);
	fsesl_delivery_release(&d);
}

Test(events, heartbeats_stop_connection_reopened, .timeout = 60)
{
	fsesl_subscriber *s = start_liveness();
	fsesl_server_stats st;
	fsesl_load ld;
	fsesl_delivery d;

	/* The server stays connected but goes quiet. */
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_NO_HEARTBEAT, 0, 0), 0);
	wait_notice(s, FSESL_NOTICE_DOWN);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0);
	cr_assert(!ld.valid, "stale load must not look valid");
	wait_notice(s, FSESL_NOTICE_UP);
	fsesl_sim_clear_faults(sim);
	while (next_kind(s, &d) != FSESL_NOTICE_EVENT)
		fsesl_delivery_release(&d);
	cr_assert_str_eq(d.event->name, "HEARTBEAT");
	fsesl_delivery_release(&d);
	cr_assert_eq(fsesl_server_stats_get(eng, srv, &st), 0);
	cr_assert_geq(st.reconnects, 1);
	fsesl_subscriber_destroy(s);
	stop_all();
}

Test(events, stalled_server_detected, .timeout = 60)
{
	fsesl_subscriber *s = start_liveness();

	/* Reads nothing, writes nothing: a frozen FreeSWITCH. */
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_STALL, 0, 0), 0);
	wait_notice(s, FSESL_NOTICE_DOWN);
	fsesl_sim_clear_faults(sim);
	wait_notice(s, FSESL_NOTICE_UP);
	barrier(); /* commands work again */
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* ---- load snapshots read while they change -------------------------- */

static _Atomic bool load_writer_done;
static _Atomic unsigned long load_reads, load_bad;

static void *
load_reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&load_writer_done)) {
		fsesl_load ld;

		if (fsesl_server_load(eng, srv, &ld) != 0) {
			atomic_fetch_add(&load_bad, 1);
			continue;
		}
		if (!ld.valid)
			continue;
		/* The writer keeps max - count == 1000 and idle == count: a
		 * torn snapshot would break one of them. */
		if (ld.hb.max_sessions - ld.hb.session_count != 1000 ||
		    (uint64_t)ld.hb.idle_cpu != ld.hb.session_count)
			atomic_fetch_add(&load_bad, 1);
		atomic_fetch_add(&load_reads, 1);
	}
	return NULL;
}

Test(events, load_snapshots_consistent_across_16_readers, .timeout = 120)
{
	pthread_t rd[16];
	fsesl_subscriber *s;
	fsesl_delivery d;
	fsesl_load ld;
	unsigned int i;

	start_all(1);
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0); /* the engine's watch */
	cr_assert_eq(fsesl_subscriber_create(eng, "w", NULL, &s), 0);
	cr_assert_eq(fsesl_subscribe(s, srv, "HEARTBEAT"), 0);
	atomic_store(&load_writer_done, false);
	atomic_store(&load_reads, 0);
	atomic_store(&load_bad, 0);
	for (i = 0; i < 16; i++)
		cr_assert_eq(pthread_create(&rd[i], NULL, load_reader, NULL), 0);
	for (i = 1; i <= 300; i++) {
		struct fsesl_sim_load l = {.idle_cpu = (double)(i % 100),
		    .session_count = i % 100,
		    .max_sessions = 1000 + i % 100};

		fsesl_sim_set_load(sim, &l);
		fsesl_sim_fire_heartbeat(sim);
		/* Paced by the heartbeat's own arrival, not by time. */
		while (next_kind(s, &d) != FSESL_NOTICE_EVENT)
			fsesl_delivery_release(&d);
		fsesl_delivery_release(&d);
	}
	atomic_store(&load_writer_done, true);
	for (i = 0; i < 16; i++)
		pthread_join(rd[i], NULL);
	cr_assert_eq(atomic_load(&load_bad), 0);
	cr_assert_gt(atomic_load(&load_reads), 0);
	fsesl_subscriber_destroy(s);
	stop_all();
}

/* ---- idle cleanup -------------------------------------------------- */

static uint64_t
servers_now(void)
{
	fsesl_engine_stats st;

	fsesl_engine_stats_get(eng, &st);
	return st.servers;
}

Test(events, idle_server_freed_after_idle_timeout, .timeout = 60)
{
	struct fsesl_sim_config sc;
	fsesl_config cfg;
	struct timespec t0, t1;
	uint16_t port;
	char url[128];
	double waited;

	fsesl_sim_config_init(&sc);
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	fsesl_config_init(&cfg);
	cr_assert_eq(fsesl_config_set(&cfg, "idle_timeout", "1", NULL, 0), 0);
	cr_assert_eq(fsesl_engine_start(&cfg, &eng), 0);
	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	cr_assert_eq(fsesl_server_get(eng, url, &srv), 0);
	barrier();
	cr_assert_eq(servers_now(), 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	/* Kept while idle_timeout has not passed... */
	cr_assert_eq(servers_now(), 1, "freed at once despite idle_timeout 1 s");
	/* ...then closed and freed. Waiting on the condition, bounded. */
	do {
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	} while (servers_now() != 0 && waited < 20.0);
	cr_assert_eq(servers_now(), 0, "not freed after %.1f s", waited);
	cr_assert_geq(waited, 0.9, "freed after %.2f s, before its idle timeout", waited);
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}
