/*
 * two_engines.c - two engines in one process at once, each with its own
 * simulator, subscribers (queue and callback mode, JSON on the wire),
 * events, bgapi jobs, and subscribers destroyed from inside callbacks: one
 * from an async command's callback (the reactor thread), one from its own
 * dispatcher callback.
 *
 * A plain program, not a Criterion suite, so that `./build.sh tsan` runs it
 * under ThreadSanitizer (Criterion cannot start there): state that one
 * engine shares with the other by accident shows up as a race report, and
 * in any build as a wrong count. Exit status 0 when every check held.
 * Waits are on conditions, bounded only as a safety net.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define N_EVENTS 300
#define N_JOBS 100
#define SAFETY_MS 60000

struct world {
	int id;
	fsesl_sim *sim;
	fsesl_engine *e;
	fsesl_server_t srv;
	fsesl_subscriber *q, *cb, *victim, *selfie;
	_Atomic int cb_events;
	_Atomic int jobs_ok, jobs_bad, jobs_done;
	_Atomic bool victim_gone, selfie_gone;
	_Atomic int selfie_calls;
	char failure[256];
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define WAIT_UNTIL(cond)                                                                           \
	({                                                                                         \
		uint64_t _end = now_ms() + SAFETY_MS;                                              \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && now_ms() < _end)                                         \
			sched_yield();                                                             \
		_ok;                                                                               \
	})

#define CHECK(w, cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			snprintf((w)->failure, sizeof((w)->failure), __VA_ARGS__);                 \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void
count_cb(const fsesl_delivery *d, void *ud)
{
	struct world *w = ud;

	if (d->kind == FSESL_NOTICE_EVENT && d->event->subclass &&
	    strcmp(d->event->subclass, "two::ev") == 0)
		atomic_fetch_add(&w->cb_events, 1);
}

/* The victim's callback: nothing to do, it only has to exist. */
static void
victim_cb(const fsesl_delivery *d, void *ud)
{
	(void)d;
	(void)ud;
}

/* Destroys its own subscriber from its own dispatcher, on the first event. */
static void
selfie_cb(const fsesl_delivery *d, void *ud)
{
	struct world *w = ud;

	if (d->kind != FSESL_NOTICE_EVENT)
		return;
	if (atomic_fetch_add(&w->selfie_calls, 1) == 0) {
		fsesl_subscriber_destroy(w->selfie);
		atomic_store(&w->selfie_gone, true);
	}
}

/* An async command's callback (the reactor thread) destroys the victim. */
static void
destroy_victim_cb(int status, const fsesl_reply *r, void *ud)
{
	struct world *w = ud;

	(void)status;
	(void)r;
	fsesl_subscriber_destroy(w->victim);
	atomic_store(&w->victim_gone, true);
}

static void
job_cb(int status, const struct fsesl_event *ev, void *ud)
{
	struct world *w = ud;

	if (status == 0 && ev && ev->body && strncmp(ev->body, "w", 1) == 0 &&
	    ev->body[1] == (char)('0' + w->id))
		atomic_fetch_add(&w->jobs_ok, 1);
	else
		atomic_fetch_add(&w->jobs_bad, 1);
	atomic_fetch_add(&w->jobs_done, 1);
}

static void
run(struct world *w)
{
	struct fsesl_sim_config sc;
	fsesl_sub_opts json_q = {8192, FSESL_EVFMT_JSON, NULL, NULL};
	fsesl_sub_opts json_cb = {8192, FSESL_EVFMT_JSON, count_cb, w};
	fsesl_sub_opts vo = {64, FSESL_EVFMT_JSON, victim_cb, w};
	fsesl_sub_opts so = {64, FSESL_EVFMT_JSON, selfie_cb, w};
	struct fsesl_event *res = NULL;
	fsesl_config cfg;
	fsesl_delivery d;
	uint16_t port;
	char cmd[64], seq[16];
	int i, got = 0, rc;

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 0;
	CHECK(w, fsesl_sim_start(&sc, &w->sim, &port) == 0, "sim start");
	fsesl_config_init(&cfg);
	cfg.connections_per_server = 2;
	CHECK(w, fsesl_engine_start(&cfg, &w->e) == 0, "engine start");
	CHECK(w, fsesl_server_get_by(w->e, "127.0.0.1", port, NULL, "ClueCon", &w->srv) == 0,
	    "server get");
	CHECK(w, fsesl_subscriber_create(w->e, "q", &json_q, &w->q) == 0, "create q");
	CHECK(w, fsesl_subscriber_create(w->e, "cb", &json_cb, &w->cb) == 0, "create cb");
	CHECK(w, fsesl_subscriber_create(w->e, "victim", &vo, &w->victim) == 0, "create victim");
	CHECK(w, fsesl_subscriber_create(w->e, "selfie", &so, &w->selfie) == 0, "create selfie");
	CHECK(w, fsesl_subscribe(w->q, w->srv, "CUSTOM two::ev") == 0, "subscribe q");
	CHECK(w, fsesl_subscribe(w->cb, w->srv, "CUSTOM two::ev") == 0, "subscribe cb");
	CHECK(w, fsesl_subscribe(w->victim, w->srv, "CUSTOM two::ev") == 0, "subscribe victim");
	CHECK(w, fsesl_subscribe(w->selfie, w->srv, "CUSTOM two::ev") == 0, "subscribe selfie");
	/* The subscriptions are on the server now (each call waited for its
	 * +OK, or the connection was not up and they were replayed): make
	 * sure of the latter with a job, which needs the event connection. */
	rc = fsesl_bgapi_job(w->e, w->srv, "echo ready", 10000, NULL, &res);
	CHECK(w, rc == 0, "first job: %s", fsesl_strerror(rc));
	fsesl_event_free(res);

	for (i = 0; i < N_JOBS; i++) {
		snprintf(cmd, sizeof(cmd), "echo w%d-job-%d", w->id, i);
		CHECK(w, fsesl_bgapi_job_async(w->e, w->srv, cmd, 30000, NULL, job_cb, w) == 0,
		    "job %d", i);
	}
	CHECK(
	    w, fsesl_api_async(w->e, w->srv, "echo bye", NULL, destroy_victim_cb, w) == 0, "async");
	for (i = 0; i < N_EVENTS; i++) {
		const char *kv[] = {"X-Seq", seq};

		snprintf(seq, sizeof(seq), "%d", i);
		CHECK(
		    w, fsesl_sim_fire_event(w->sim, "CUSTOM", "two::ev", kv, 2, "b") == 0, "fire");
	}
	for (i = 0; i < 5; i++) {
		snprintf(cmd, sizeof(cmd), "echo w%d-blocking-%d", w->id, i);
		rc = fsesl_bgapi_job(w->e, w->srv, cmd, 30000, NULL, &res);
		CHECK(w, rc == 0 && strncmp(res->body, cmd + 5, strlen(cmd + 5)) == 0,
		    "blocking job %d: %s", i, fsesl_strerror(rc));
		fsesl_event_free(res);
	}
	while (got < N_EVENTS) {
		rc = fsesl_subscriber_next(w->q, &d, SAFETY_MS);
		CHECK(w, rc == 1, "queue subscriber: %d of %d events", got, N_EVENTS);
		if (d.kind == FSESL_NOTICE_EVENT) {
			const char *v = fsesl_event_get(d.event, "X-Seq");

			snprintf(seq, sizeof(seq), "%d", got);
			CHECK(w, v && strcmp(v, seq) == 0, "event %d out of order", got);
			got++;
		}
		fsesl_delivery_release(&d);
	}
	CHECK(w, WAIT_UNTIL(atomic_load(&w->cb_events) == N_EVENTS), "callback subscriber: %d",
	    atomic_load(&w->cb_events));
	CHECK(w, WAIT_UNTIL(atomic_load(&w->jobs_done) == N_JOBS), "jobs: %d done",
	    atomic_load(&w->jobs_done));
	CHECK(w, atomic_load(&w->jobs_ok) == N_JOBS, "jobs: %d bad", atomic_load(&w->jobs_bad));
	CHECK(w, WAIT_UNTIL(atomic_load(&w->victim_gone)), "victim not destroyed");
	CHECK(w, WAIT_UNTIL(atomic_load(&w->selfie_gone)), "selfie not destroyed");
	fsesl_subscriber_destroy(w->q);
	fsesl_subscriber_destroy(w->cb);
	CHECK(w, fsesl_server_put(w->e, w->srv) == 0, "put");
	CHECK(w, fsesl_engine_stop(w->e) == 0, "stop");
	w->e = NULL;
	fsesl_sim_stop(w->sim);
	w->sim = NULL;
	/* After stop, no dispatcher thread of this engine is left: the
	 * selfie ran exactly the callbacks it got before its destroy. */
	CHECK(w, atomic_load(&w->selfie_calls) >= 1, "selfie never called");
}

static void *
world_main(void *arg)
{
	run(arg);
	return NULL;
}

int
main(void)
{
	struct world w[2];
	pthread_t t[2];
	int i, bad = 0;

	memset(w, 0, sizeof(w));
	for (i = 0; i < 2; i++) {
		w[i].id = i;
		if (pthread_create(&t[i], NULL, world_main, &w[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 2; i++) {
		if (w[i].failure[0]) {
			fprintf(stderr, "engine %d: %s\n", i, w[i].failure);
			bad = 1;
		}
	}
	if (!bad)
		printf("two engines: %d events, %d jobs each, ok\n", N_EVENTS, N_JOBS + 6);
	return bad;
}
