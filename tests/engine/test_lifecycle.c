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
