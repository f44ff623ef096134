/*
 * test_jobs.c - bgapi jobs against servers that do not behave like a
 * default FreeSWITCH: one that assigns its own Job-UUID (older servers,
 * proxies, other ESL servers), one whose result overtakes the reply, one
 * whose reply names no Job-UUID, and restricted users whose BACKGROUND_JOB
 * subscription or bgapi is refused. Each case has a simulator fault or
 * user that produces it (bench/sim).
 *
 * Every wait is on a job's own outcome; the job timeouts are only the
 * bound a broken engine would run into (then the test fails with
 * -ETIMEDOUT instead of the expected code).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define JOB_MS 5000
#define N_ASYNC 100

static fsesl_sim *sim;
static fsesl_engine *eng;
static fsesl_server_t srv;

/* A simulator (users optional), an engine, one server, connected. */
static void
start(const struct fsesl_sim_user *users, size_t n_users, const char *user, const char *pw)
{
	struct fsesl_sim_config sc;
	fsesl_reply *r = NULL;
	uint16_t port;
	char url[256];

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 0;
	sc.users = users;
	sc.n_users = n_users;
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	cr_assert_eq(fsesl_engine_start(NULL, &eng), 0);
	snprintf(url, sizeof(url), "fs://%s:%s@127.0.0.1:%u", user, pw, port);
	cr_assert_eq(fsesl_server_get(eng, url, &srv), 0);
	cr_assert_eq(fsesl_api(eng, srv, "echo up", NULL, &r), 0);
	fsesl_reply_free(r);
}

static void
stop(void)
{
	fsesl_server_put(eng, srv);
	fsesl_engine_stop(eng);
	fsesl_sim_stop(sim);
}

static uint64_t
unknown_jobs(void)
{
	fsesl_server_stats st;

	cr_assert_eq(fsesl_server_stats_get(eng, srv, &st), 0);
	return st.unknown_jobs;
}

/* ---- async jobs: each must get its own result ----------------------- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok, status[N_ASYNC];
} ac = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}};

static void
async_cb(int status, const struct fsesl_event *ev, void *ud)
{
	int i = (int)(intptr_t)ud;
	char want[32];

	snprintf(want, sizeof(want), "async-%d", i);
	pthread_mutex_lock(&ac.mu);
	ac.status[i] = status;
	if (status == 0 && ev && strcmp(ev->body, want) == 0)
		ac.ok++;
	ac.done++;
	pthread_cond_signal(&ac.cv);
	pthread_mutex_unlock(&ac.mu);
}

/* Runs N_ASYNC async jobs; returns how many got their own result; every
 * status goes to ac.status. */
static int
run_async(void)
{
	char cmd[64];

	ac.done = ac.ok = 0;
	for (int i = 0; i < N_ASYNC; i++) {
		snprintf(cmd, sizeof(cmd), "echo async-%d", i);
		cr_assert_eq(fsesl_bgapi_job_async(
		                 eng, srv, cmd, JOB_MS, NULL, async_cb, (void *)(intptr_t)i),
		    0);
	}
	pthread_mutex_lock(&ac.mu);
	while (ac.done < N_ASYNC)
		pthread_cond_wait(&ac.cv, &ac.mu);
	pthread_mutex_unlock(&ac.mu);
	return ac.ok;
}

static void
blocking_job_ok(const char *word)
{
	struct fsesl_event *res = NULL;
	char cmd[64];
	int rc;

	snprintf(cmd, sizeof(cmd), "echo %s", word);
	rc = fsesl_bgapi_job(eng, srv, cmd, JOB_MS, NULL, &res);
	cr_assert_eq(rc, 0, "job: %s", fsesl_strerror(rc));
	cr_assert_str_eq(res->body, word);
	fsesl_event_free(res);
}

/* ---- the server assigns its own Job-UUID ---------------------------- */

Test(jobs, server_assigned_job_uuid, .timeout = 60)
{
	start(NULL, 0, "", "ClueCon");
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_OWN_JOB_UUID, 0, 0), 0);
	/* The job is known by the id the reply carries. */
	blocking_job_ok("mine");
	cr_assert_eq(run_async(), N_ASYNC);
	cr_assert_eq(unknown_jobs(), 0);
	stop();
}

/* The result comes before the reply that names its id: kept aside (a few,
 * briefly) and claimed when the reply comes, not counted as unknown. */
Test(jobs, server_assigned_job_uuid_result_first, .timeout = 60)
{
	start(NULL, 0, "", "ClueCon");
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_OWN_JOB_UUID, 0, 0), 0);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_RESULT_BEFORE_REPLY, 0, 0), 0);
	blocking_job_ok("first");
	cr_assert_eq(run_async(), N_ASYNC);
	cr_assert_eq(unknown_jobs(), 0);
	stop();
}

/* With our own Job-UUID honoured, a result before its reply was already
 * fine (the job is registered before the bgapi is written): still is. */
Test(jobs, own_job_uuid_result_first, .timeout = 60)
{
	start(NULL, 0, "", "ClueCon");
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_RESULT_BEFORE_REPLY, 0, 0), 0);
	blocking_job_ok("ours");
	cr_assert_eq(run_async(), N_ASYNC);
	cr_assert_eq(unknown_jobs(), 0);
	stop();
}

/* A reply that names no Job-UUID: nothing could ever match the result, so
 * the job fails at once with its own code instead of at its timeout. */
Test(jobs, reply_without_job_uuid_fails_fast, .timeout = 60)
{
	struct fsesl_event *res = NULL;

	start(NULL, 0, "", "ClueCon");
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_OWN_JOB_UUID, 1, 0), 0);
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo lost", JOB_MS, NULL, &res), FSESL_ENOJOBID);
	cr_assert_null(res);
	cr_assert_eq(run_async(), 0);
	for (int i = 0; i < N_ASYNC; i++)
		cr_assert_eq(
		    ac.status[i], FSESL_ENOJOBID, "job %d: %s", i, fsesl_strerror(ac.status[i]));
	/* The server behaves again: jobs work again. */
	fsesl_sim_clear_faults(sim);
	blocking_job_ok("again");
	stop();
}

/* ---- refusals ------------------------------------------------------- */

/* A user whose esl-allowed-events excludes BACKGROUND_JOB: the engine's
 * own subscription is refused, so no result can ever come. Jobs fail at
 * once with FSESL_EREFUSED, the first one and every later one. */
Test(jobs, background_job_subscription_refused, .timeout = 60)
{
	static const struct fsesl_sim_user u[] = {
	    {"jobs@default", "pw", "HEARTBEAT", NULL, false},
	};
	struct fsesl_event *res = NULL;
	fsesl_reply *r = NULL;

	start(u, 1, "jobs@default", "pw");
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo x", JOB_MS, NULL, &res), FSESL_EREFUSED);
	cr_assert_null(res);
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo y", JOB_MS, NULL, &res), FSESL_EREFUSED);
	cr_assert_eq(run_async(), 0);
	for (int i = 0; i < N_ASYNC; i++)
		cr_assert_eq(ac.status[i], FSESL_EREFUSED);
	/* A bare bgapi (no result wanted) is the user's right. */
	cr_assert_eq(fsesl_bgapi(eng, srv, "echo z", NULL, &r), 0);
	cr_assert_eq(fsesl_reply_ok(r), 1);
	fsesl_reply_free(r);
	stop();
}

/* A user whose esl-allowed-api excludes the command: the bgapi itself is
 * refused (-ERR permission denied). */
Test(jobs, bgapi_refused_by_allowed_api, .timeout = 60)
{
	static const struct fsesl_sim_user u[] = {
	    {"jobs@default", "pw", "BACKGROUND_JOB", "status", false},
	};
	struct fsesl_event *res = NULL;

	start(u, 1, "jobs@default", "pw");
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "echo x", JOB_MS, NULL, &res), FSESL_EREFUSED);
	cr_assert_null(res);
	cr_assert_eq(fsesl_bgapi_job(eng, srv, "status", JOB_MS, NULL, &res), 0);
	cr_assert_str_eq(res->name, "BACKGROUND_JOB");
	fsesl_event_free(res);
	stop();
}

/* ---- jobs before the event connection is up ------------------------- */

/*
 * Jobs submitted at once after fsesl_server_get(), with a pool: another
 * connection is often READY before the event connection (slot 0). A bgapi
 * sent there ends before the event connection has subscribed to
 * BACKGROUND_JOB, and its result is lost. Jobs wait for the event
 * connection instead, and go out on it after the subscription.
 */
Test(jobs, job_submitted_before_event_connection_is_up, .timeout = 120)
{
	struct fsesl_sim_config sc;
	struct fsesl_event *res = NULL;
	fsesl_config cfg;
	uint16_t port;
	int i, rc, failed = 0;

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 0;
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	fsesl_config_init(&cfg);
	cfg.connections_per_server = 4;
	for (i = 0; i < 20; i++) {
		cr_assert_eq(fsesl_engine_start(&cfg, &eng), 0);
		cr_assert_eq(fsesl_server_get_by(eng, "127.0.0.1", port, NULL, "ClueCon", &srv), 0);
		rc = fsesl_bgapi_job(eng, srv, "echo early", 2000, NULL, &res);
		if (rc != 0)
			failed++;
		else
			fsesl_event_free(res);
		res = NULL;
		fsesl_server_put(eng, srv);
		fsesl_engine_stop(eng);
	}
	fsesl_sim_stop(sim);
	cr_assert_eq(failed, 0, "%d of 20 early jobs failed", failed);
}
