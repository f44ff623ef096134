/*
 * test_faults.c - the fault matrix: one parameterized Criterion test whose
 * cases are the rows of a table, one per simulator fault and setting (plus
 * replies nobody asked for and a wrong password), each run with 16 worker
 * threads issuing `api echo <unique token>` through the fault; then the
 * cases that need their own steps (heartbeats stopping, jobs through
 * restarts, queued requests).
 *
 * What every case proves (fault_harness.c): each request completes exactly
 * once, with its own reply or one of the errors that fault may cause; no
 * reply reaches another request; once the fault is cleared every worker
 * succeeds again; the engine leaves no fd, thread or (under ASan/LSan)
 * memory behind, and the password never reaches the log.
 *
 * Timings are short on purpose (300 ms command and connect timeouts, a
 * 0 s first backoff step) so that each case takes a few seconds.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <criterion/alloc.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "fault_harness.h"

#define B FH_BIT
/* Errors any fault that breaks the connection may legitimately cause: a
 * reconnect on a loaded machine may also exceed the connect timeout. */
#define CONN_LOSS                                                                                  \
	(B(FH_EDISCONNECTED) | B(FH_ENOTCONNECTED) | B(FH_ETIMEDOUT) | B(FH_ECONNRESET) |          \
	    B(FH_ECONNTIMEOUT))

TestSuite(faults, .timeout = 90);

/* ---- replies nobody asked for (the inject_reply row) ---- */

static uint64_t
fh_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t
injected(struct fh_env *env)
{
	struct fsesl_sim_counters k;

	fsesl_sim_counters(env->sim, &k);
	return k.faults[FSESL_SIM_FAULT_INJECT_REPLY];
}

/* The engine is READY on one connection, the only one the simulator has,
 * and it has reconnected after each earlier injection (so that connection
 * is not the one an injection is about to close). */
static bool
one_connection(struct fh_env *env, uint64_t reconnects)
{
	struct fsesl_sim_counters k;
	fsesl_server_stats st;

	memset(&st, 0, sizeof(st));
	(void)fsesl_server_stats_get(env->e, env->srv, &st);
	fsesl_sim_counters(env->sim, &k);
	return st.reconnects >= reconnects && st.connected_conns == 1 && k.active_conns == 1;
}

/*
 * Three times, while the workers and the async submitter keep the pipeline
 * full: one command/reply "+OK" written ahead of the reply to the next
 * command on the connection the engine uses. Each wait is for a condition,
 * bounded.
 */
static void
inject_replies(struct fh_env *env)
{
	for (uint64_t k = 1; k <= 3; k++) {
		uint64_t end = fh_now_ms() + 10000, id = 0;

		while (!one_connection(env, k - 1) && fh_now_ms() < end)
			sched_yield();
		if (!one_connection(env, k - 1) || fsesl_sim_conn_ids(env->sim, &id, 1) != 1) {
			cr_expect_fail(
			    "injection %llu: no connection to inject into", (unsigned long long)k);
			return;
		}
		cr_assert_eq(fsesl_sim_fault(env->sim, id, FSESL_SIM_FAULT_INJECT_REPLY,
		                 FSESL_SIM_INJECT_COMMAND_REPLY, 1),
		    0);
		while (injected(env) < k && fh_now_ms() < end)
			sched_yield();
		if (injected(env) != k) {
			/* The workers went quiet on that connection: only a
			 * broken engine does that with the pipeline full. */
			cr_expect_fail("injection %llu never happened", (unsigned long long)k);
			return;
		}
	}
}

/* ---- wrong password (the auth_failure row): the engine's credentials, not a
 * simulator fault ---- */

static fsesl_server_t extra_handle[2];

static void
auth_inject(struct fh_env *env)
{
	char url[128];
	int rc;

	/* A second get with other credentials updates the shared entry;
	 * killing the connections makes the engine log in again with them. */
	fh_url(env, "not-the-password", url, sizeof(url));
	rc = fsesl_server_get(env->e, url, &extra_handle[0]);
	cr_assert_eq(rc, 0, "fsesl_server_get(wrong password): %d %s", rc, fsesl_strerror(rc));
	rc = fsesl_sim_fault(env->sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0);
	cr_assert_eq(rc, 0);
}

static void
auth_clear(struct fh_env *env)
{
	char url[128];
	int rc;

	fh_url(env, NULL, url, sizeof(url));
	rc = fsesl_server_get(env->e, url, &extra_handle[1]);
	cr_assert_eq(rc, 0, "fsesl_server_get(right password): %d %s", rc, fsesl_strerror(rc));
	cr_assert_eq(fsesl_server_put(env->e, extra_handle[0]), 0);
	cr_assert_eq(fsesl_server_put(env->e, extra_handle[1]), 0);
}

/*
 * One row: the case and the options the engine and simulator run it with.
 * Rows differ only in data; what each proves is in fh_run_case().
 */
struct fault_row {
	struct fh_case c;
	struct fh_opts o;
};

static const struct fault_row fault_rows[] = {
    /* Twice the command timeout: every reply arrives late, so the engine
     * must keep each abandoned request's FIFO place and throw the late
     * reply away, or every later reply would shift. A recycled
     * connection meets the delay on its auth reply too. */
    {.c = {.name = "delay",
         .fault = FSESL_SIM_FAULT_DELAY,
         .a = 600,
         .fault_cmds = 4,
         .allowed = CONN_LOSS,
         .need_error = true,
         .with_async = true}},
    {.c = {.name = "stall",
         .fault = FSESL_SIM_FAULT_STALL,
         .fault_cmds = 4,
         .allowed = CONN_LOSS,
         .need_error = true,
         .with_async = true}},
    {.c = {.name = "close_mid_frame",
         .fault = FSESL_SIM_FAULT_CLOSE_MID_FRAME,
         .fault_cmds = 20,
         .allowed = CONN_LOSS | B(FH_EPROTO),
         .need_error = true,
         .need_reconnect = true,
         .with_async = true}},
    /* Every connection, new ones included, dies after 40 messages:
     * repeated reconnects under load. */
    {.c = {.name = "close_after_msgs",
         .fault = FSESL_SIM_FAULT_CLOSE_AFTER_MSGS,
         .a = 40,
         .fault_cmds = 100,
         .allowed = CONN_LOSS | B(FH_EPROTO),
         .need_error = true,
         .need_reconnect = true}},
    {.c = {.name = "garbage",
         .fault = FSESL_SIM_FAULT_GARBAGE,
         .a = 64,
         .fault_cmds = 20,
         .allowed = CONN_LOSS | B(FH_EPROTO),
         .need_error = true,
         .need_reconnect = true,
         .with_async = true}},
    /* Replies in 1-byte pieces must be reassembled, never misframed.
     * Slowness may cost timeouts, and enough of them (max_abandoned) a
     * recycled connection; nothing else. */
    {.c = {.name = "tiny_writes",
         .fault = FSESL_SIM_FAULT_TINY_WRITES,
         .a = 1,
         .b = 0,
         .fault_cmds = 200,
         .allowed = CONN_LOSS,
         .with_async = true}},
    {.c = {.name = "rude_reject",
         .fault = FSESL_SIM_FAULT_RUDE_REJECT,
         .kill_after_inject = true,
         .fault_cmds = 6,
         .allowed = CONN_LOSS | B(FH_EREJECTED),
         .need_error = true,
         .need_reconnect = true,
         .must_see = FH_EREJECTED}},
    {.c = {.name = "refuse",
         .fault = FSESL_SIM_FAULT_REFUSE,
         .kill_after_inject = true,
         .fault_cmds = 6,
         .allowed = CONN_LOSS | B(FH_ECONNREFUSED),
         .need_error = true,
         .need_reconnect = true,
         .must_see = FH_ECONNREFUSED}},
    {.c = {.name = "silent_accept",
         .fault = FSESL_SIM_FAULT_SILENT_ACCEPT,
         .kill_after_inject = true,
         .fault_cmds = 4,
         .allowed = CONN_LOSS,
         .need_error = true,
         .need_reconnect = true,
         .must_see = FH_ECONNTIMEOUT}},
    {.c = {.name = "kill_all",
         .fault = FSESL_SIM_FAULT_KILL_ALL,
         .fault_cmds = 50,
         .allowed = CONN_LOSS,
         .need_reconnect = true,
         .with_sub = true,
         .sub_event = "HEARTBEAT",
         .with_async = true,
         .need_events = true,
         .need_down_up = true},
        .o = {.sim_heartbeat_ms = 100}},
    /* 20,000 events/s into a 256-deep subscriber queue: commands keep
     * working and the subscriber hears about what it lost. */
    {.c = {.name = "event_flood",
         .fault = FSESL_SIM_FAULT_EVENT_FLOOD,
         .a = 20000,
         .fault_cmds = 400,
         .allowed = CONN_LOSS,
         .with_sub = true,
         .sub_event = "CUSTOM sim::flood",
         .with_async = true,
         .need_events = true}},
    /* The same flood into a subscriber whose callback runs on the
     * engine's dispatcher thread. */
    {.c = {.name = "event_flood_cb",
         .fault = FSESL_SIM_FAULT_EVENT_FLOOD,
         .a = 20000,
         .fault_cmds = 400,
         .allowed = CONN_LOSS,
         .with_sub = true,
         .sub_callback = true,
         .sub_event = "CUSTOM sim::flood",
         .need_events = true}},
    {.c = {.name = "kill_all_cb",
         .fault = FSESL_SIM_FAULT_KILL_ALL,
         .fault_cmds = 50,
         .allowed = CONN_LOSS,
         .need_reconnect = true,
         .with_sub = true,
         .sub_callback = true,
         .sub_event = "HEARTBEAT",
         .need_events = true,
         .need_down_up = true},
        .o = {.sim_heartbeat_ms = 100}},

    /* ---- the same faults with several connections, and with polling waits ---- */

    /* Each connection keeps its own FIFO: a restart must fail or complete
     * each request on the connection that carried it. */
    {.c = {.name = "kill_all_4conns",
         .fault = FSESL_SIM_FAULT_KILL_ALL,
         .fault_cmds = 50,
         .allowed = CONN_LOSS,
         .need_reconnect = true,
         .with_async = true},
        .o = {.connections = 4}},
    {.c = {.name = "garbage_4conns",
         .fault = FSESL_SIM_FAULT_GARBAGE,
         .a = 64,
         .fault_cmds = 20,
         .allowed = CONN_LOSS | B(FH_EPROTO),
         .need_error = true,
         .need_reconnect = true,
         .with_async = true},
        .o = {.connections = 4}},
    /* max_in_flight 2 for 16 workers and 32 async requests: most requests
     * wait in the engine's queue, unwritten, when the server dies; they
     * must still complete exactly once. */
    {.c = {.name = "kill_all_queued",
         .fault = FSESL_SIM_FAULT_KILL_ALL,
         .fault_cmds = 50,
         .allowed = CONN_LOSS,
         .need_reconnect = true,
         .with_async = true},
        .o = {.max_in_flight = 2}},
    {.c = {.name = "stall_queued",
         .fault = FSESL_SIM_FAULT_STALL,
         .fault_cmds = 4,
         .allowed = CONN_LOSS,
         .need_error = true,
         .with_async = true},
        .o = {.max_in_flight = 2, .max_abandoned = 2}},
    /* The OpenSIPS-compatible waiter (usleep polling) must see the same
     * exactly-once outcomes as the futex one. */
    {.c = {.name = "close_mid_frame_poll",
         .fault = FSESL_SIM_FAULT_CLOSE_MID_FRAME,
         .fault_cmds = 20,
         .allowed = CONN_LOSS | B(FH_EPROTO),
         .need_error = true,
         .need_reconnect = true,
         .with_async = true},
        .o = {.poll_wait = true}},
    {.c = {.name = "delay_poll",
         .fault = FSESL_SIM_FAULT_DELAY,
         .a = 600,
         .fault_cmds = 4,
         .allowed = CONN_LOSS,
         .need_error = true},
        .o = {.poll_wait = true}},

    /* ---- replies nobody asked for, a wrong password ---- */

    /* The run: 16 blocking workers, 32 async requests in flight,
     * three replies nobody asked for. A reply of the wrong type is a
     * protocol error: the requests on that connection fail with
     * FSESL_EPROTO, never with another request's reply, and the engine
     * reconnects. */
    {.c = {.name = "inject_reply",
         .inject = inject_replies,
         .fault_cmds = 20,
         .allowed = CONN_LOSS | B(FH_EPROTO),
         .need_error = true,
         .need_reconnect = true,
         .must_see = FH_EPROTO,
         .with_async = true}},
    {.c = {.name = "auth_failure",
         .inject = auth_inject,
         .clear = auth_clear,
         .fault_cmds = 6,
         .allowed = CONN_LOSS | B(FH_EAUTH),
         .need_error = true,
         .need_reconnect = true,
         .must_see = FH_EAUTH}},
};

static void
free_rows(struct criterion_test_params *crp)
{
	cr_free(crp->params);
}

/* The parameters are row numbers, not rows: Criterion copies them into
 * each test's process, where the rows' pointers (names, inject steps)
 * would not be valid. */
ParameterizedTestParameters(faults, matrix)
{
	size_t n = sizeof(fault_rows) / sizeof(fault_rows[0]);
	size_t *rows = cr_malloc(n * sizeof(*rows));

	for (size_t i = 0; rows != NULL && i < n; i++)
		rows[i] = i;
	return cr_make_param_array(size_t, rows, rows != NULL ? n : 0, free_rows);
}

ParameterizedTest(size_t *i, faults, matrix)
{
	const struct fault_row *row = &fault_rows[*i];
	struct fh_env env;

	cr_log_info("case %zu: %s", *i, row->c.name);
	fh_start(&env, &row->o);
	fh_run_case(&env, &row->c);
}

/* ---- heartbeats stopping ---- */

/* Waits (on the subscriber, bounded) until fsesl_server_load's validity
 * equals `want`. Counts DOWN/UP notices on the way. */
static bool
wait_load_valid(
    struct fh_env *env, fsesl_subscriber *s, bool want, unsigned int max_waits, unsigned int *downs)
{
	for (unsigned int i = 0; i < max_waits; i++) {
		fsesl_delivery d;
		fsesl_load ld;
		int rc;

		memset(&ld, 0, sizeof(ld));
		rc = fsesl_server_load(env->e, env->srv, &ld);
		if (rc == 0 && ld.valid == want)
			return true;
		rc = fsesl_subscriber_next(s, &d, 100);
		if (rc == 1 && d.kind == FSESL_NOTICE_EVENT)
			fsesl_delivery_release(&d);
		if (rc == 1 && d.kind == FSESL_NOTICE_DOWN)
			(*downs)++;
	}
	return false;
}

Test(faults, heartbeat_stops)
{
	/* The simulator beats every 100 ms; the engine expects one per
	 * second and gives up after one missed interval. */
	struct fh_opts o = {.sim_heartbeat_ms = 100, .heartbeat_miss_limit = 1};
	fsesl_sub_opts so = {0};
	fsesl_subscriber *s = NULL;
	struct fh_env env;
	unsigned int downs = 0;
	int rc;

	fh_start(&env, &o);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	rc = fsesl_subscriber_create(env.e, "hb", &so, &s);
	cr_assert_eq(rc, 0, "fsesl_subscriber_create: %d %s", rc, fsesl_strerror(rc));
	rc = fsesl_subscribe(s, env.srv, "HEARTBEAT");
	cr_assert_eq(rc, 0, "fsesl_subscribe: %d %s", rc, fsesl_strerror(rc));

	cr_assert(wait_load_valid(&env, s, true, 100, &downs), "no valid load from heartbeats");
	cr_assert_eq(fsesl_sim_fault(env.sim, 0, FSESL_SIM_FAULT_NO_HEARTBEAT, 0, 0), 0);
	cr_expect(wait_load_valid(&env, s, false, 100, &downs),
	    "load still valid with heartbeats stopped");
	fsesl_sim_clear_faults(env.sim);
	cr_expect(wait_load_valid(&env, s, true, 100, &downs),
	    "load never valid again after heartbeats resumed");
	cr_expect(fh_until_ok(&env, 1000000, 15000), "commands fail after heartbeats resumed");
	cr_log_info("heartbeat_stops: %u DOWN notices", downs);

	fsesl_subscriber_destroy(s);
	fh_finish(&env);
}

/* ---- bgapi jobs through a server restart ---- */

enum { JOB_WORKERS = 8 };

struct job_run {
	struct fh_env *env;
	_Atomic int phase; /* 0 run, 1 recover, 2 done */
	_Atomic uint64_t submitted, ok, mismatch, lost, conn, other, recovered;
	_Atomic int other_rc;
};

static int
job_once(struct job_run *jr, const char *tok)
{
	struct fsesl_event *ev = NULL;
	char cmd[96];
	int rc;

	snprintf(cmd, sizeof(cmd), "echo %s", tok);
	atomic_fetch_add(&jr->submitted, 1);
	rc = fsesl_bgapi_job(jr->env->e, jr->env->srv, cmd, -1, NULL, &ev);
	if (rc == 0) {
		size_t tl = strlen(tok), len = ev->body_len;

		if (len == tl + 1 && ev->body[tl] == '\n')
			len = tl;
		if (len == tl && memcmp(ev->body, tok, tl) == 0) {
			atomic_fetch_add(&jr->ok, 1);
		} else {
			atomic_fetch_add(&jr->mismatch, 1);
			rc = -1;
		}
		fsesl_event_free(ev);
		return rc;
	}
	if (rc == FSESL_EJOBLOST)
		atomic_fetch_add(&jr->lost, 1);
	else if (rc == FSESL_EDISCONNECTED || rc == FSESL_ENOTCONNECTED || rc == -ETIMEDOUT ||
	         rc == FSESL_ECONNTIMEOUT || rc == -ECONNRESET)
		atomic_fetch_add(&jr->conn, 1);
	else {
		atomic_fetch_add(&jr->other, 1);
		atomic_store(&jr->other_rc, rc);
	}
	fh_pace(fh_outcome_of(rc));
	return rc;
}

static struct job_run job_run_storage;

static void *
job_worker(void *arg)
{
	struct job_run *jr = &job_run_storage;
	unsigned int id = (unsigned int)(uintptr_t)arg, seq = 0;
	char tok[48];

	for (;;) {
		int ph = atomic_load(&jr->phase);

		if (ph == 2)
			break;
		snprintf(tok, sizeof(tok), "job%u-%u", id, seq++);
		if (job_once(jr, tok) == 0 && ph == 1) {
			atomic_fetch_add(&jr->recovered, 1);
			break;
		}
	}
	return NULL;
}

Test(faults, bgapi_jobs_through_restart)
{
	/* A job whose connection dies before its BACKGROUND_JOB arrives
	 * must end with FSESL_EJOBLOST (or a connection error), never with
	 * another job's result. */
	struct job_run *jr = &job_run_storage;
	struct fh_env env;
	pthread_t t[JOB_WORKERS];
	char tok[32];

	fh_start(&env, NULL);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	memset(jr, 0, sizeof(*jr));
	jr->env = &env;
	for (uintptr_t i = 0; i < JOB_WORKERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, job_worker, (void *)i), 0);
	for (int round = 0; round < 5; round++) {
		for (int k = 0; k < 10; k++) {
			snprintf(tok, sizeof(tok), "main-%d-%d", round, k);
			job_once(jr, tok);
		}
		cr_assert_eq(fsesl_sim_fault(env.sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	}
	atomic_store(&jr->phase, 1);
	for (int i = 0; i < JOB_WORKERS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&jr->phase, 2);

	cr_log_info("bgapi jobs: submitted %llu ok %llu lost %llu conn %llu other %llu",
	    (unsigned long long)jr->submitted, (unsigned long long)jr->ok,
	    (unsigned long long)jr->lost, (unsigned long long)jr->conn,
	    (unsigned long long)jr->other);
	cr_expect_eq(jr->ok + jr->mismatch + jr->lost + jr->conn + jr->other, jr->submitted);
	cr_expect_eq(jr->mismatch, 0, "a job got another job's result");
	cr_expect_eq(
	    jr->other, 0, "unexpected job error %d %s", jr->other_rc, fsesl_strerror(jr->other_rc));
	cr_expect_eq(
	    jr->recovered, JOB_WORKERS, "workers without a job success after the restarts");
	fh_finish(&env);
}

/* ---- queued requests after a reconnect ---- */

struct queued_caller {
	struct fh_env *env;
	pthread_t tid;
	unsigned int id;
	int outcome;
};

static void *
queued_caller_main(void *arg)
{
	struct queued_caller *q = arg;
	char tok[32];

	snprintf(tok, sizeof(tok), "queued-%u", q->id);
	/* Far longer than any healthy round trip: only a request the engine
	 * forgot ever reaches it. */
	q->outcome = fh_echo_once(q->env, tok, 10000, NULL);
	return NULL;
}

/*
 * max_in_flight 2 and 8 callers: 2 requests on the wire, 6 waiting in the
 * engine. restart: the server stalls, then restarts; the 2 written ones
 * may fail (outcome unknown), the 6 unwritten ones must be sent on the new
 * connection. Otherwise: every reply is 100 ms late; each reply frees a
 * place that the next waiting request must take. Either way, none may
 * wait for its (10 s) timeout on a healthy server.
 */
static void
queued_flow(bool restart)
{
	enum { N = 8, WINDOW = 2 };
	struct fh_opts o = {.max_in_flight = WINDOW};
	struct queued_caller q[N];
	struct fh_env env;
	fsesl_server_stats st;
	unsigned int ok = 0, disc = 0;
	uint64_t spins = 0;

	fh_start(&env, &o);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	cr_assert_eq(
	    fsesl_sim_fault(env.sim, 0, restart ? FSESL_SIM_FAULT_STALL : FSESL_SIM_FAULT_DELAY,
	        restart ? 0 : 100, 0),
	    0);
	for (unsigned int i = 0; i < N; i++) {
		q[i].env = &env;
		q[i].id = i;
		q[i].outcome = -1;
		cr_assert_eq(pthread_create(&q[i].tid, NULL, queued_caller_main, &q[i]), 0);
	}
	/* Until the engine holds all N (a condition, polled with a bound). */
	do {
		memset(&st, 0, sizeof(st));
		cr_assert_eq(fsesl_server_stats_get(env.e, env.srv, &st), 0);
		cr_assert_lt(++spins, 100000000ull, "requests never reached the engine");
		sched_yield();
	} while (st.in_flight + st.queued < N);
	cr_expect_leq(st.in_flight, WINDOW);

	if (restart) {
		fsesl_sim_clear_faults(env.sim);
		cr_assert_eq(fsesl_sim_fault(env.sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	}
	for (unsigned int i = 0; i < N; i++) {
		pthread_join(q[i].tid, NULL);
		if (q[i].outcome == FH_OK)
			ok++;
		else if (q[i].outcome == FH_EDISCONNECTED)
			disc++;
		else
			cr_expect_fail("request %u: %s (a queued request never written?)", i,
			    fh_outcome_name(q[i].outcome));
	}
	cr_expect_leq(disc, restart ? WINDOW : 0,
	    "%u requests failed as written, %d were on the wire", disc, restart ? WINDOW : 0);
	cr_expect_eq(ok + disc, N);
	fh_finish(&env);
}

/* false: every reply late, places free one by one; true: a restart. */
ParameterizedTestParameters(faults, queued_requests_flow)
{
	static bool restart[] = {false, true};

	return cr_make_param_array(bool, restart, sizeof(restart) / sizeof(restart[0]));
}

ParameterizedTest(bool *restart, faults, queued_requests_flow)
{
	queued_flow(*restart);
}

/* ---- async bgapi jobs: exactly one callback each, through restarts ---- */

enum { AJ_N = 240, AJ_WINDOW = 16 };

struct aj_slot {
	char token[32];
	_Atomic int calls;
	_Atomic int status;
	_Atomic int mismatch;
};

static struct aj_slot aj_slots[AJ_N];
static sem_t aj_window;

static void
aj_cb(int status, const struct fsesl_event *ev, void *ud)
{
	struct aj_slot *sl = ud;

	if (status == 0) {
		size_t tl = strlen(sl->token), len = ev != NULL ? ev->body_len : 0;

		if (ev != NULL && len == tl + 1 && ev->body[tl] == '\n')
			len = tl;
		if (ev == NULL || len != tl || memcmp(ev->body, sl->token, tl) != 0)
			atomic_store(&sl->mismatch, 1);
	}
	atomic_store(&sl->status, status);
	atomic_fetch_add(&sl->calls, 1);
	sem_post(&aj_window);
}

Test(faults, bgapi_job_async_exactly_once)
{
	/* A job completes through its BACKGROUND_JOB, a lost connection
	 * (FSESL_EJOBLOST), a timeout or the engine's stop: whichever comes
	 * first must be the only callback. */
	struct fh_env env;
	unsigned int ok = 0, issued = 0;
	int rc;

	fh_start(&env, NULL);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	memset(aj_slots, 0, sizeof(aj_slots));
	cr_assert_eq(sem_init(&aj_window, 0, AJ_WINDOW), 0);
	for (unsigned int i = 0; i < AJ_N; i++) {
		struct aj_slot *sl = &aj_slots[i];
		char cmd[48];

		cr_assert_eq(sem_wait(&aj_window), 0);
		snprintf(sl->token, sizeof(sl->token), "aj-%u", i);
		snprintf(cmd, sizeof(cmd), "echo aj-%u", i);
		rc = fsesl_bgapi_job_async(env.e, env.srv, cmd, -1, NULL, aj_cb, sl);
		if (rc != 0) {
			atomic_store(&sl->calls, -1000); /* no callback for a failed call */
			sem_post(&aj_window);
		} else {
			issued++;
		}
		if (i % 40 == 39)
			cr_assert_eq(
			    fsesl_sim_fault(env.sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	}
	/* Stop completes whatever is still pending. */
	fh_finish(&env);
	for (unsigned int i = 0; i < AJ_N; i++) {
		int calls = atomic_load(&aj_slots[i].calls);

		if (calls == -1000)
			continue;
		cr_expect_eq(calls, 1, "job %u: %d callbacks", i, calls);
		cr_expect_eq(
		    atomic_load(&aj_slots[i].mismatch), 0, "job %u: another job's result", i);
		if (atomic_load(&aj_slots[i].status) == 0)
			ok++;
	}
	cr_log_info("async jobs: issued %u ok %u", issued, ok);
	cr_expect_gt(ok, 0);
	sem_destroy(&aj_window);
}
