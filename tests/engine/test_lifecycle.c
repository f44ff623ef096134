/*
 * test_lifecycle.c - stop with thousands of requests pending, the last put
 * while commands run, get racing put from many threads. Run under
 * ASan/LSan these also prove nothing leaks and nothing is used after free.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine_test.h"

#define ASYNC_N 3000
#define BLOCKERS 48

static _Atomic int cb_calls, cb_shutdown, cb_ok;

static void
count_cb(int status, const fsesl_reply *r, void *ud)
{
	(void)ud;
	atomic_fetch_add(&cb_calls, 1);
	if (status == FSESL_ESHUTDOWN)
		atomic_fetch_add(&cb_shutdown, 1);
	else if (status == 0 && r)
		atomic_fetch_add(&cb_ok, 1);
}

struct blocker {
	fsesl_engine *e;
	fsesl_server_t h;
	int result;
};

static void *
blocker_main(void *arg)
{
	struct blocker *b = arg;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_reply *r = NULL;

	o.timeout_ms = 60000;
	b->result = fsesl_api(b->e, b->h, "echo blocked", &o, &r);
	if (r)
		fsesl_reply_free(r);
	return NULL;
}

Test(lifecycle, stop_with_thousands_pending, .timeout = 60)
{
	uint16_t port;
	fsesl_sim *s = et_sim(&port);
	fsesl_engine *e = et_engine(NULL);
	fsesl_server_t h = et_server(e, port, "ClueCon");
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	struct blocker b[BLOCKERS];
	pthread_t th[BLOCKERS];
	fsesl_server_stats st;
	int i;

	cr_assert_eq(et_echo(e, h, "warm", NULL), 0);
	/* Every reply now takes 30 s: everything stays pending. */
	fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_DELAY, 30000, 0);
	for (i = 0; i < BLOCKERS; i++) {
		b[i].e = e;
		b[i].h = h;
		b[i].result = 1;
		cr_assert_eq(pthread_create(&th[i], NULL, blocker_main, &b[i]), 0);
	}
	o.timeout_ms = 60000;
	for (i = 0; i < ASYNC_N; i++)
		cr_assert_eq(fsesl_api_async(e, h, "echo pending", &o, count_cb, NULL), 0);
	cr_assert(WAIT_UNTIL(
	    (fsesl_server_stats_get(e, h, &st), st.in_flight + st.queued == ASYNC_N + BLOCKERS),
	    20000));
	cr_assert_eq(fsesl_engine_stop(e), 0);
	for (i = 0; i < BLOCKERS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(b[i].result, FSESL_ESHUTDOWN);
	}
	cr_assert_eq(atomic_load(&cb_calls), ASYNC_N, "every callback exactly once");
	cr_assert_eq(atomic_load(&cb_shutdown), ASYNC_N);
	fsesl_sim_stop(s);
}

struct runner {
	fsesl_engine *e;
	fsesl_server_t h;
	int id;
	_Atomic bool *stop;
	int ok, badhandle, other;
};

static void *
runner_main(void *arg)
{
	struct runner *r = arg;
	char tok[32];
	int i, err;

	for (i = 0; i < 100000 && !atomic_load(r->stop); i++) {
		snprintf(tok, sizeof(tok), "r%d-%d", r->id, i);
		err = et_echo(r->e, r->h, tok, NULL);
		if (err == 0)
			r->ok++;
		else if (err == FSESL_EBADHANDLE)
			break;
		else
			r->other++;
	}
	return NULL;
}

Test(lifecycle, last_put_while_commands_run, .timeout = 60)
{
	uint16_t port;
	fsesl_sim *s = et_sim(&port);
	fsesl_config c;
	fsesl_engine *e;
	fsesl_server_t h;
	struct runner r[8];
	pthread_t th[8];
	_Atomic bool stop = false;
	fsesl_engine_stats es;
	int i;

	fsesl_config_init(&c);
	c.idle_timeout_s = 0; /* reap as soon as nothing refers to it */
	e = et_engine(&c);
	h = et_server(e, port, "ClueCon");
	cr_assert_eq(et_echo(e, h, "warm", NULL), 0);
	for (i = 0; i < 8; i++) {
		r[i] = (struct runner){e, h, i, &stop, 0, 0, 0};
		cr_assert_eq(pthread_create(&th[i], NULL, runner_main, &r[i]), 0);
	}
	cr_assert(WAIT_UNTIL(r[0].ok + r[7].ok > 100, 20000));
	cr_assert_eq(fsesl_server_put(e, h), 0);
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(r[i].other, 0, "runner %d saw other errors", i);
	}
	/* The entry goes away once the last request is done. */
	cr_assert(WAIT_UNTIL((fsesl_engine_stats_get(e, &es), es.servers == 0), 20000));
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(s);
}

struct racer {
	fsesl_engine *e;
	uint16_t port;
	int id;
	int fails;
};

static void *
racer_main(void *arg)
{
	struct racer *r = arg;
	fsesl_server_t h;
	char tok[32];
	int i, err;

	for (i = 0; i < 300; i++) {
		err = fsesl_server_get_by(r->e, "127.0.0.1", r->port, NULL, "ClueCon", &h);
		if (err) {
			r->fails++;
			continue;
		}
		if (i % 50 == 0) {
			snprintf(tok, sizeof(tok), "race%d-%d", r->id, i);
			err = et_echo(r->e, h, tok, NULL);
			if (err) /* a mismatch (-99999) counts too */
				r->fails++;
		}
		if (fsesl_server_put(r->e, h) != 0)
			r->fails++;
		if (fsesl_server_put(r->e, h) != FSESL_EBADHANDLE)
			r->fails++;
	}
	return NULL;
}

Test(lifecycle, get_racing_put, .timeout = 90)
{
	uint16_t port;
	fsesl_sim *s = et_sim(&port);
	fsesl_config c;
	fsesl_engine *e;
	struct racer r[16];
	pthread_t th[16];
	int i;

	fsesl_config_init(&c);
	c.idle_timeout_s = 0;
	e = et_engine(&c);
	for (i = 0; i < 16; i++) {
		r[i] = (struct racer){e, port, i, 0};
		cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
	}
	for (i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(r[i].fails, 0, "racer %d", i);
	}
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(s);
}

Test(lifecycle, calls_after_stop_began)
{
	uint16_t port;
	fsesl_sim *s = et_sim(&port);
	fsesl_engine *e = et_engine(NULL);
	fsesl_server_t h = et_server(e, port, "ClueCon");

	cr_assert_eq(et_echo(e, h, "x", NULL), 0);
	/* Not released: stop frees whatever handles remain. */
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(s);
}

static void
job_cb_unexpected(int status, const struct fsesl_event *ev, void *ud)
{
	(void)status;
	(void)ev;
	(void)ud;
	cr_assert_fail("a callback ran for a call that failed");
}

static void
reply_cb_unexpected(int status, const fsesl_reply *r, void *ud)
{
	(void)status;
	(void)r;
	(void)ud;
	cr_assert_fail("a callback ran for a call that failed");
}

/*
 * Every call on an engine after fsesl_engine_stop() returned says
 * FSESL_ESHUTDOWN, as fsesl.h promises: the reference is checked, never
 * read as freed memory (under ASan or valgrind the old engine pointer was
 * a use after free). Also after another engine has been started, which
 * may take the same slot or the same heap address.
 */
Test(lifecycle, every_call_after_stop_says_eshutdown)
{
	uint16_t port;
	fsesl_sim *sim = et_sim(&port);
	fsesl_engine *e = et_engine(NULL), *e2;
	fsesl_server_t h = et_server(e, port, "ClueCon"), h2 = 0, hx, srvs[1];
	const char *cmds[1] = {"echo x"};
	struct fsesl_cmd raw = {.line = "api echo x"};
	fsesl_subscriber *sub = NULL, *late = NULL;
	fsesl_server_stats sst;
	fsesl_engine_stats est;
	struct fsesl_event *ev = NULL;
	fsesl_reply *r = NULL, *rs[1];
	fsesl_load ld;
	char url[128];
	int st[1];

	cr_assert_eq(et_echo(e, h, "before", NULL), 0);
	cr_assert_eq(fsesl_subscriber_create(e, "s", NULL, &sub), 0);
	cr_assert_eq(fsesl_subscribe(sub, h, "CUSTOM x::y"), 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	/* Another engine may now have e's slot or memory: e must not reach it. */
	e2 = et_engine(NULL);
	h2 = et_server(e2, port, "ClueCon");
	srvs[0] = h;
	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(fsesl_api(e, h, "echo x", NULL, &r), FSESL_ESHUTDOWN);
		cr_assert_null(r);
		cr_assert_eq(fsesl_bgapi(e, h, "echo x", NULL, &r), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_command(e, h, &raw, NULL, &r), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_api_async(e, h, "echo x", NULL, reply_cb_unexpected, NULL),
		    FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_command_async(e, h, &raw, NULL, reply_cb_unexpected, NULL),
		    FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_api_many(e, 1, srvs, cmds, NULL, st, rs), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_bgapi_job(e, h, "echo x", -1, NULL, &ev), FSESL_ESHUTDOWN);
		cr_assert_null(ev);
		cr_assert_eq(
		    fsesl_bgapi_job_async(e, h, "echo x", -1, NULL, job_cb_unexpected, NULL),
		    FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_server_get(e, url, &hx), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_server_get_by(e, "127.0.0.1", port, NULL, "ClueCon", &hx),
		    FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_server_put(e, h), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_server_stats_get(e, h, &sst), FSESL_ESHUTDOWN);
		memset(&est, 0xff, sizeof(est));
		fsesl_engine_stats_get(e, &est);
		cr_assert_eq(est.submitted, 0);
		cr_assert_eq(est.servers, 0);
		cr_assert_eq(fsesl_server_load(e, h, &ld), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_pick_least_loaded(e, srvs, 1), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_engine_tick(e), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_subscriber_create(e, "late", NULL, &late), FSESL_ESHUTDOWN);
		cr_assert_null(late);
		cr_assert_eq(fsesl_subscribe(sub, h, "HEARTBEAT"), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_unsubscribe(sub, h, "CUSTOM x::y"), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_filter_add(sub, h, "X-A", "b"), FSESL_ESHUTDOWN);
		cr_assert_eq(fsesl_engine_stop(e), FSESL_ESHUTDOWN);
	}
	/* The subscriber outlives its engine and is destroyed after it. */
	fsesl_subscriber_destroy(sub);
	/* The new engine was never disturbed. */
	cr_assert_eq(et_echo(e2, h2, "after", NULL), 0);
	cr_assert_eq(fsesl_engine_stop(e2), 0);
	fsesl_sim_stop(sim);
}

/* Garbage is refused, not dereferenced. */
Test(lifecycle, null_engine_is_einval)
{
	fsesl_reply *r = NULL;

	cr_assert_eq(fsesl_api(NULL, 1, "echo x", NULL, &r), -EINVAL);
	cr_assert_eq(fsesl_engine_stop(NULL), -EINVAL);
	cr_assert_eq(fsesl_engine_tick(NULL), -EINVAL);
}

/* Calls racing a stop, from many threads and of every kind: each returns
 * 0 or FSESL_ESHUTDOWN (or a failure of its own request), and stop returns
 * only once none of them is inside the engine any more (ASan: no use
 * after free at any point of the race). */
struct stop_racer {
	fsesl_engine *e;
	fsesl_server_t h;
	uint16_t port;
	int kind;
	_Atomic bool *go;
	int bad;
	_Atomic unsigned long calls;
	unsigned long shutdowns;
	_Atomic int outstanding; /* async: bounded, so the others get a turn */
};

static void
async_done(int status, const fsesl_reply *r, void *ud)
{
	struct stop_racer *rc = ud;

	(void)status;
	(void)r;
	atomic_fetch_sub(&rc->outstanding, 1);
}

static void *
stop_racer_main(void *arg)
{
	struct stop_racer *rc = arg;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_engine_stats est;
	fsesl_server_stats sst;
	fsesl_server_t h2;
	fsesl_reply *r;
	fsesl_load ld;
	int err;

	o.timeout_ms = 20000;
	while (!atomic_load(rc->go))
		sched_yield();
	for (;;) {
		r = NULL;
		switch (rc->kind % 5) {
		case 0:
			err = fsesl_api(rc->e, rc->h, "echo r", &o, &r);
			fsesl_reply_free(r);
			break;
		case 1:
			if (atomic_load(&rc->outstanding) >= 32) {
				sched_yield();
				continue;
			}
			atomic_fetch_add(&rc->outstanding, 1);
			err = fsesl_api_async(rc->e, rc->h, "echo r", &o, async_done, rc);
			if (err)
				atomic_fetch_sub(&rc->outstanding, 1);
			break;
		case 2:
			err =
			    fsesl_server_get_by(rc->e, "127.0.0.1", rc->port, NULL, "ClueCon", &h2);
			if (err == 0)
				err = fsesl_server_put(rc->e, h2);
			break;
		case 3:
			err = fsesl_server_stats_get(rc->e, rc->h, &sst);
			fsesl_engine_stats_get(rc->e, &est);
			break;
		default:
			err = fsesl_server_load(rc->e, rc->h, &ld);
			break;
		}
		atomic_fetch_add(&rc->calls, 1);
		if (err == FSESL_ESHUTDOWN) {
			if (++rc->shutdowns == 50)
				break; /* well after stop: every call says so */
			continue;
		}
		if (err != 0 && err != FSESL_EDISCONNECTED && err != FSESL_ENOTCONNECTED)
			rc->bad++;
	}
	return NULL;
}

Test(lifecycle, calls_racing_stop_from_every_kind, .timeout = 60)
{
	enum { N = 10 };
	uint16_t port;
	fsesl_sim *sim = et_sim(&port);
	fsesl_engine *e = et_engine(NULL);
	fsesl_server_t h = et_server(e, port, "ClueCon");
	struct stop_racer rc[N];
	pthread_t th[N];
	_Atomic bool go = false;

	cr_assert_eq(et_echo(e, h, "up", NULL), 0);
	for (int i = 0; i < N; i++) {
		rc[i] = (struct stop_racer){.e = e, .h = h, .port = port, .kind = i, .go = &go};
		cr_assert_eq(pthread_create(&th[i], NULL, stop_racer_main, &rc[i]), 0);
	}
	atomic_store(&go, true);
	/* Until every racer has made calls that went in. */
	for (int i = 0; i < N; i++)
		cr_assert(
		    WAIT_UNTIL(atomic_load(&rc[i].calls) > 20, 20000), "racer %d made no calls", i);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(rc[i].bad, 0, "racer %d: %d unexpected results", i, rc[i].bad);
		cr_assert_eq(rc[i].shutdowns, 50);
		/* Every async call that went in was completed by the stop. */
		cr_assert_eq(atomic_load(&rc[i].outstanding), 0);
	}
	fsesl_sim_stop(sim);
}
