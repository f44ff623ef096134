/*
 * test_concurrency.c - 64 threads x N `api echo <unique token>` over 1 and
 * 4 servers, in both wait modes: every reply must be its own request's.
 * Built twice: a unit variant (small N) and a stress variant
 * (FSESL_STRESS, N = 10,000).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine_test.h"

#ifdef FSESL_STRESS
#define N_PER_THREAD 10000
#define TMO 600
#else
#define N_PER_THREAD 300
#define TMO 120
#endif
#define THREADS 64
#define MAX_SERVERS 4

struct run {
	fsesl_engine *e;
	fsesl_server_t h[MAX_SERVERS];
	int n_servers;
	enum fsesl_wait_mode mode;
	_Atomic uint64_t ok, mismatches, errors;
};

struct worker {
	struct run *run;
	int id;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	char tok[64];
	int i, err;

	o.wait_mode = r->mode;
	o.timeout_ms = 60000;
	for (i = 0; i < N_PER_THREAD; i++) {
		snprintf(tok, sizeof(tok), "w%d-i%d-%x", w->id, i, (unsigned)(w->id * 7919 + i));
		err = et_echo(r->e, r->h[(w->id + i) % r->n_servers], tok, &o);
		if (err == 0)
			atomic_fetch_add(&r->ok, 1);
		else if (err == -99999)
			atomic_fetch_add(&r->mismatches, 1);
		else
			atomic_fetch_add(&r->errors, 1);
	}
	return NULL;
}

static void
run_case(int n_servers, enum fsesl_wait_mode mode)
{
	static struct run r;
	fsesl_sim *sims[MAX_SERVERS];
	uint16_t ports[MAX_SERVERS];
	pthread_t th[THREADS];
	struct worker w[THREADS];
	fsesl_config c;
	int i;

	memset(&r, 0, sizeof(r));
	fsesl_config_init(&c);
	c.esl_cmd_polling_itv = 100;
	r.e = et_engine(&c);
	r.n_servers = n_servers;
	r.mode = mode;
	for (i = 0; i < n_servers; i++) {
		sims[i] = et_sim(&ports[i]);
		r.h[i] = et_server(r.e, ports[i], "ClueCon");
	}
	for (i = 0; i < THREADS; i++) {
		w[i].run = &r;
		w[i].id = i;
		cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&r.mismatches), 0, "replies reached the wrong request");
	cr_assert_eq(atomic_load(&r.errors), 0, "errors without any fault");
	cr_assert_eq(atomic_load(&r.ok), (uint64_t)THREADS * N_PER_THREAD);
	for (i = 0; i < n_servers; i++) {
		fsesl_server_stats st;

		cr_assert_eq(fsesl_server_stats_get(r.e, r.h[i], &st), 0);
		cr_assert_eq(st.late_replies, 0);
		cr_assert_eq(st.in_flight, 0);
		cr_assert_eq(fsesl_server_put(r.e, r.h[i]), 0);
	}
	cr_assert_eq(fsesl_engine_stop(r.e), 0);
	for (i = 0; i < n_servers; i++)
		fsesl_sim_stop(sims[i]);
}

Test(concurrency, one_server_futex, .timeout = TMO)
{
	run_case(1, FSESL_WAIT_FUTEX);
}

Test(concurrency, one_server_poll, .timeout = TMO)
{
	run_case(1, FSESL_WAIT_POLL);
}

Test(concurrency, four_servers_futex, .timeout = TMO)
{
	run_case(4, FSESL_WAIT_FUTEX);
}

Test(concurrency, four_servers_poll, .timeout = TMO)
{
	run_case(4, FSESL_WAIT_POLL);
}
