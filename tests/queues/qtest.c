/*
 * qtest.c - harnesses shared by the queues/ unit and stress suites.
 *
 * Worker threads never call cr_assert (Criterion's assertions unwind the
 * test's own thread); they count failures in atomics and the test thread
 * asserts on the counts after joining them. Nothing here sleeps to
 * synchronise: threads wait on the primitives under test (futex, poll on
 * the doorbell) or spin on a state they are waiting for.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#ifdef FSESL_QTEST_NO_CRITERION
#include "crit_shim.h"
#else
#include <criterion/criterion.h>
#include <criterion/logging.h>
#endif

#include "qtest.h"

/* A pause, as the reactor harnesses spin. */
#define fsesl_cpu_relax_test() __asm__ __volatile__("pause" ::: "memory")

/* ------------------------------------------------------------------ */
/* Fake ops                                                             */
/* ------------------------------------------------------------------ */

static int
fake_wait32(_Atomic uint32_t *word, uint32_t expected, const struct timespec *deadline, void *ctx)
{
	struct fake_ops *f = ctx;
	uint64_t d;

	f->waits++;
	if (expected & FSESL_CPL_SLEEPING)
		f->waits_with_sleeping_bit++;
	if (f->hook != NULL)
		f->hook(f, f->hook_arg);
	if (deadline != NULL) {
		d = (uint64_t)deadline->tv_sec * 1000000000u + (uint64_t)deadline->tv_nsec;
		if (f->now_ns >= d)
			return -ETIMEDOUT;
		/* A wait that reaches its deadline times out there. */
		if (f->now_ns + f->wait_step_ns >= d) {
			f->now_ns = d;
			return -ETIMEDOUT;
		}
	}
	f->now_ns += f->wait_step_ns;
	return 0;
}

static void
fake_wake32(_Atomic uint32_t *word, int n, void *ctx)
{
	struct fake_ops *f = ctx;

	f->wakes++;
	return;
}

static void
fake_now(struct timespec *ts, void *ctx)
{
	struct fake_ops *f = ctx;

	ts->tv_sec = (time_t)(f->now_ns / 1000000000u);
	ts->tv_nsec = (long)(f->now_ns % 1000000000u);
	return;
}

static void
fake_sleep_us(unsigned us, void *ctx)
{
	struct fake_ops *f = ctx;

	f->sleeps++;
	f->now_ns += (uint64_t)us * 1000u;
	if (f->hook != NULL)
		f->hook(f, f->hook_arg);
	return;
}

void
fake_ops_init(struct fake_ops *f)
{

	memset(f, 0, sizeof(*f));
	f->ops.wait32 = fake_wait32;
	f->ops.wake32 = fake_wake32;
	f->ops.now = fake_now;
	f->ops.sleep_us = fake_sleep_us;
	f->ops.ctx = f;
	f->now_ns = 1000000000u; /* 1 s: any nonzero start */
	f->wait_step_ns = 1000000u;
	return;
}

/* ------------------------------------------------------------------ */
/* Items: producer id and sequence number packed in a pointer           */
/* ------------------------------------------------------------------ */

static void *
item_make(unsigned int id, unsigned int seq)
{

	return (void *)(((uintptr_t)id << 32) | ((uintptr_t)seq + 1));
}

static void
item_split(void *item, unsigned int *id, unsigned int *seq)
{

	*id = (unsigned int)((uintptr_t)item >> 32);
	*seq = (unsigned int)((uintptr_t)item & 0xffffffffu) - 1;
	return;
}

/* Per-producer order check shared by both harnesses (consumer side). */
struct order_check {
	unsigned int n;
	unsigned int *next;
	unsigned long received;
	unsigned long bad;
};

static void
order_check_item(void *item, void *arg)
{
	struct order_check *oc = arg;
	unsigned int id, seq;

	item_split(item, &id, &seq);
	if (id >= oc->n || seq != oc->next[id]) {
		/* Out of order, duplicated or never sent. */
		oc->bad++;
		return;
	}
	oc->next[id]++;
	oc->received++;
	return;
}

/* ------------------------------------------------------------------ */
/* Ring harness                                                         */
/* ------------------------------------------------------------------ */

struct ring_run {
	struct fsesl_ring_mpsc r;
	unsigned int m;
	_Atomic unsigned int producers_done;
	_Atomic unsigned long errors;
};

struct producer {
	pthread_t th;
	unsigned int id;
	void *run;
};

static void *
ring_producer(void *p)
{
	struct producer *pr = p;
	struct ring_run *run = pr->run;
	unsigned int i;

	for (i = 0; i < run->m; i++) {
		if (fsesl_ring_mpsc_enqueue(
		        &run->r, item_make(pr->id, i), NULL, &fsesl_wait_ops_linux) != 0)
			atomic_fetch_add(&run->errors, 1);
	}
	atomic_fetch_add(&run->producers_done, 1);
	return NULL;
}

void
qtest_ring_mpsc(unsigned int n, unsigned int m, unsigned int size)
{
	struct ring_run run;
	struct producer *prs = calloc(n, sizeof(*prs));
	struct order_check oc = {.n = n, .next = calloc(n, sizeof(unsigned int))};
	unsigned int i, took;
	void *item;

	cr_assert_not_null(prs);
	cr_assert_not_null(oc.next);
	cr_assert_eq(fsesl_ring_mpsc_init(&run.r, size), 0);
	run.m = m;
	atomic_init(&run.producers_done, 0);
	atomic_init(&run.errors, 0);
	for (i = 0; i < n; i++) {
		prs[i].id = i;
		prs[i].run = &run;
		cr_assert_eq(pthread_create(&prs[i].th, NULL, ring_producer, &prs[i]), 0);
	}
	/* This thread is the consumer. */
	for (;;) {
		took = 0;
		while (fsesl_ring_mpsc_dequeue(&run.r, &item)) {
			order_check_item(item, &oc);
			took++;
		}
		if (took != 0) {
			fsesl_ring_mpsc_space_released(&run.r, &fsesl_wait_ops_linux);
			continue;
		}
		/* Producers done and a last look found nothing: finished. */
		if (atomic_load(&run.producers_done) == n) {
			if (!fsesl_ring_mpsc_dequeue(&run.r, &item))
				break;
			order_check_item(item, &oc);
			continue;
		}
		sched_yield();
	}
	for (i = 0; i < n; i++)
		pthread_join(prs[i].th, NULL);
	cr_assert_eq(atomic_load(&run.errors), 0);
	cr_assert_eq(oc.bad, 0, "%lu items out of order, duplicated or unknown", oc.bad);
	cr_assert_eq(oc.received, (unsigned long)n * m, "received %lu of %lu", oc.received,
	    (unsigned long)n * m);
	for (i = 0; i < n; i++)
		cr_assert_eq(oc.next[i], m, "producer %u: %u of %u", i, oc.next[i], m);
	cr_assert_eq(fsesl_ring_mpsc_count(&run.r), 0);
	fsesl_ring_mpsc_destroy(&run.r);
	free(oc.next);
	free(prs);
	return;
}

/* ------------------------------------------------------------------ */
/* Submission queue + doorbell harness                                  */
/* ------------------------------------------------------------------ */

struct sq_run {
	struct fsesl_sq sq;
	unsigned int m;
	_Atomic unsigned long errors;
};

static void *
sq_producer(void *p)
{
	struct producer *pr = p;
	struct sq_run *run = pr->run;
	unsigned int i;

	for (i = 0; i < run->m; i++) {
		if (fsesl_sq_submit(&run->sq, item_make(pr->id, i), false, NULL) != 0)
			atomic_fetch_add(&run->errors, 1);
	}
	return NULL;
}

void
qtest_sq(unsigned int n, unsigned int m, unsigned int shards, unsigned int ring_size)
{
	struct sq_run run;
	struct producer *prs = calloc(n, sizeof(*prs));
	struct order_check oc = {.n = n, .next = calloc(n, sizeof(unsigned int))};
	unsigned long total = (unsigned long)n * m, clears = 0, sleeps = 0;
	struct pollfd pfd;
	unsigned int i;
	int timeout;
	uint64_t writes, rings;

	cr_assert_not_null(prs);
	cr_assert_not_null(oc.next);
	cr_assert_eq(fsesl_sq_init(&run.sq, shards, ring_size, &fsesl_wait_ops_linux), 0);
	run.m = m;
	atomic_init(&run.errors, 0);
	for (i = 0; i < n; i++) {
		prs[i].id = i;
		prs[i].run = &run;
		cr_assert_eq(pthread_create(&prs[i].th, NULL, sq_producer, &prs[i]), 0);
	}
	/* This thread is the reactor: the loop documented in doorbell.c. A
	 * lost wake-up leaves it in poll(-1) forever and the test's timeout
	 * fails it. */
	pfd.fd = fsesl_doorbell_fd(&run.sq.db);
	pfd.events = POLLIN;
	while (oc.received < total && oc.bad == 0) {
		fsesl_doorbell_awake(&run.sq.db);
		while (fsesl_sq_drain(&run.sq, 64, order_check_item, &oc) != 0)
			;
		fsesl_doorbell_prepare_sleep(&run.sq.db);
		clears++;
		timeout = -1;
		if (fsesl_sq_drain(&run.sq, UINT32_MAX, order_check_item, &oc) != 0)
			timeout = 0;
		if (oc.received >= total || oc.bad != 0)
			break;
		if (timeout != 0)
			sleeps++;
		while (poll(&pfd, 1, timeout) < 0 && errno == EINTR)
			;
	}
	for (i = 0; i < n; i++)
		pthread_join(prs[i].th, NULL);
	writes = atomic_load(&run.sq.db.writes);
	rings = atomic_load(&run.sq.db.rings);
	cr_log_info("sq %u producers x %u, %u shards of %u: %lu items, %" PRIu64 " rings, %" PRIu64
	            " eventfd writes, %lu clears, %lu sleeps",
	    n, m, shards, ring_size, oc.received, rings, writes, clears, sleeps);
	cr_assert_eq(atomic_load(&run.errors), 0);
	cr_assert_eq(oc.bad, 0, "%lu items out of order, duplicated or unknown", oc.bad);
	cr_assert_eq(oc.received, total);
	for (i = 0; i < n; i++)
		cr_assert_eq(oc.next[i], m);
	/* Coalescing, as a bound that holds whatever the timing: a write
	 * needs the flag at 0, and only the initial state and a clear put it
	 * there. */
	cr_assert_eq(rings, total);
	cr_assert_leq(writes, clears + 1);
	cr_assert_leq(writes, rings);
	fsesl_sq_destroy(&run.sq);
	free(oc.next);
	free(prs);
	return;
}

/* ------------------------------------------------------------------ */
/* Completion race harness                                              */
/* ------------------------------------------------------------------ */

#define REQ_MAGIC 0x5eb1c0deu

struct race_req {
	struct fsesl_cpl cpl;
	uint32_t magic;
	uint32_t result;
	unsigned int delay; /* reactor spins this many pauses first */
	bool reactor_decided;
	uint32_t waiter_saw;
};

struct race_run {
	struct fsesl_sq sq;
	_Atomic unsigned long frees;
	_Atomic unsigned long errors;
	_Atomic unsigned long reactor_wins;
	bool stop;
};

static char race_stop_token;

/* Called by whichever side drops the last reference (the TEARDOWN RULE). */
static void
race_req_last_ref(struct race_run *run, struct race_req *rq)
{
	bool ok;

	if (rq->magic != REQ_MAGIC)
		atomic_fetch_add(&run->errors, 1);
	/* Exactly one outcome, and the waiter learnt that one. */
	if (rq->reactor_decided)
		ok = rq->waiter_saw == FSESL_CPL_DONE;
	else
		ok = rq->waiter_saw == FSESL_CPL_TIMEDOUT;
	if (!ok)
		atomic_fetch_add(&run->errors, 1);
	rq->magic = 0;
	atomic_fetch_add(&run->frees, 1);
	free(rq);
	return;
}

static void
race_reactor_item(void *item, void *arg)
{
	struct race_run *run = arg;
	struct race_req *rq = item;
	unsigned int i;

	if (item == &race_stop_token) {
		run->stop = true;
		return;
	}
	for (i = 0; i < rq->delay; i++)
		__asm__ __volatile__("pause" ::: "memory");
	rq->result = 42;
	rq->reactor_decided = fsesl_cpl_complete(&rq->cpl, FSESL_CPL_DONE, &fsesl_wait_ops_linux);
	if (rq->reactor_decided)
		atomic_fetch_add(&run->reactor_wins, 1);
	if (fsesl_cpl_release(&rq->cpl))
		race_req_last_ref(run, rq);
	return;
}

static void *
race_reactor(void *p)
{
	struct race_run *run = p;
	struct pollfd pfd = {.fd = fsesl_doorbell_fd(&run->sq.db), .events = POLLIN};
	int timeout;

	while (!run->stop) {
		fsesl_doorbell_awake(&run->sq.db);
		while (fsesl_sq_drain(&run->sq, 64, race_reactor_item, run) != 0)
			;
		if (run->stop)
			break;
		fsesl_doorbell_prepare_sleep(&run->sq.db);
		timeout = fsesl_sq_drain(&run->sq, UINT32_MAX, race_reactor_item, run) ? 0 : -1;
		if (run->stop)
			break;
		while (poll(&pfd, 1, timeout) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

void
qtest_cpl_race(unsigned int iters, bool poll_mode)
{
	const struct fsesl_wait_ops *ops = &fsesl_wait_ops_linux;
	struct race_run run;
	struct race_req *rq;
	unsigned long waiter_done = 0, waiter_timedout = 0;
	unsigned int i, seed = 12345;
	struct timespec deadline;
	uint32_t s;
	pthread_t th;

	memset(&run, 0, sizeof(run));
	cr_assert_eq(fsesl_sq_init(&run.sq, 1, 16, ops), 0);
	cr_assert_eq(pthread_create(&th, NULL, race_reactor, &run), 0);
	for (i = 0; i < iters; i++) {
		rq = malloc(sizeof(*rq));
		cr_assert_not_null(rq);
		fsesl_cpl_init(&rq->cpl, 2, NULL, NULL);
		rq->magic = REQ_MAGIC;
		rq->result = 0;
		rq->reactor_decided = false;
		rq->waiter_saw = FSESL_CPL_PENDING;
		rq->delay = (unsigned int)rand_r(&seed) % 2000;
		ops->now(&deadline, ops->ctx);
		/* 0..40 us away: close to the reactor's reply either way. */
		deadline.tv_nsec += (long)(rand_r(&seed) % 40000);
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		cr_assert_eq(fsesl_sq_submit(&run.sq, rq, false, NULL), 0);
		if (poll_mode)
			s = fsesl_cpl_wait_poll(&rq->cpl, &deadline, 10, ops);
		else
			s = fsesl_cpl_wait(&rq->cpl, &deadline, ops);
		if (s == FSESL_CPL_DONE) {
			waiter_done++;
			/* DONE was published after the result (release/acquire). */
			if (rq->result != 42)
				atomic_fetch_add(&run.errors, 1);
		} else if (s == FSESL_CPL_TIMEDOUT) {
			waiter_timedout++;
		} else {
			atomic_fetch_add(&run.errors, 1);
		}
		rq->waiter_saw = s;
		if (fsesl_cpl_release(&rq->cpl))
			race_req_last_ref(&run, rq);
	}
	cr_assert_eq(fsesl_sq_submit(&run.sq, &race_stop_token, false, NULL), 0);
	pthread_join(th, NULL);
	cr_log_info("cpl race (%s): %u requests, %lu done, %lu timed out",
	    poll_mode ? "poll" : "futex", iters, waiter_done, waiter_timedout);
	cr_assert_eq(atomic_load(&run.errors), 0);
	cr_assert_eq(
	    atomic_load(&run.frees), iters, "freed %lu of %u", atomic_load(&run.frees), iters);
	cr_assert_eq(waiter_done + waiter_timedout, iters);
	cr_assert_eq(atomic_load(&run.reactor_wins), waiter_done);
	fsesl_sq_destroy(&run.sq);
	return;
}

/* ------------------------------------------------------------------ */
/* Batched-wake race harness                                            */
/* ------------------------------------------------------------------ */

struct wrace_req {
	struct fsesl_cpl cpl;
	uint32_t magic;
	uint32_t result;
	unsigned int delay;
	bool reactor_decided;
	uint32_t waiter_saw;
	struct wrace_run *run;
};

struct wrace_run {
	struct fsesl_sq sq;
	struct fsesl_wakeb_st wb;
	unsigned int flags;
	unsigned int iters;
	_Atomic unsigned long frees, batch_frees, errors, reactor_wins, waiter_done;
	_Atomic unsigned int stopped_waiters;
	unsigned int n_waiters;
	unsigned int flush_every, since_flush;
	unsigned int seed;
	bool init_failed;
};

static void
wrace_last_ref(struct wrace_req *rq)
{
	struct wrace_run *run = rq->run;
	bool ok;

	if (rq->magic != REQ_MAGIC)
		atomic_fetch_add(&run->errors, 1);
	if (rq->reactor_decided)
		ok = rq->waiter_saw == FSESL_CPL_DONE;
	else
		ok = rq->waiter_saw == FSESL_CPL_TIMEDOUT;
	if (!ok)
		atomic_fetch_add(&run->errors, 1);
	rq->magic = 0;
	atomic_fetch_add(&run->frees, 1);
	free(rq);
	return;
}

/* The batch's release: it held the last reference. */
static void
wrace_batch_release(struct fsesl_cpl *c)
{
	struct wrace_req *rq = (struct wrace_req *)c;

	atomic_fetch_add(&rq->run->batch_frees, 1);
	wrace_last_ref(rq);
	return;
}

static void
wrace_reactor_item(void *item, void *arg)
{
	struct wrace_run *run = arg;
	struct wrace_req *rq = item;
	unsigned int i;

	for (i = 0; i < rq->delay; i++)
		fsesl_cpu_relax_test();
	rq->result = 42;
	/* reactor_decided is written before the CAS (release) so a freer
	 * that learns of the outcome reads it; a loss is undone below. */
	rq->reactor_decided = true;
	if (fsesl_cpl_complete_batched(&rq->cpl, FSESL_CPL_DONE, &run->wb, wrace_batch_release))
		atomic_fetch_add(&run->reactor_wins, 1);
	else
		rq->reactor_decided = false;
	if (fsesl_cpl_release(&rq->cpl))
		wrace_last_ref(rq);
	if (++run->since_flush >= run->flush_every) {
		fsesl_wakeb_st_flush(&run->wb);
		run->since_flush = 0;
		run->flush_every = 1 + (unsigned int)rand_r(&run->seed) % 8;
	}
	return;
}

static void *
wrace_reactor(void *p)
{
	struct wrace_run *run = p;
	struct pollfd pfd;
	int timeout;

	/* The batch belongs to this thread: made here, used here only. */
	if (fsesl_wakeb_st_init(&run->wb, 16, run->flags, &fsesl_wait_ops_linux) != 0) {
		run->init_failed = true;
		return NULL;
	}
	pfd.fd = fsesl_doorbell_fd(&run->sq.db);
	pfd.events = POLLIN;
	for (;;) {
		fsesl_doorbell_awake(&run->sq.db);
		while (fsesl_sq_drain(&run->sq, 64, wrace_reactor_item, run) != 0)
			;
		/* Before anything that sleeps. */
		fsesl_wakeb_st_flush(&run->wb);
		if (atomic_load(&run->stopped_waiters) == run->n_waiters) {
			/* Every request was pushed before its waiter counted
			 * itself out: one more drain takes the timed-out ones
			 * still queued. */
			while (fsesl_sq_drain(&run->sq, 64, wrace_reactor_item, run) != 0)
				;
			fsesl_wakeb_st_flush(&run->wb);
			break;
		}
		fsesl_doorbell_prepare_sleep(&run->sq.db);
		timeout = fsesl_sq_drain(&run->sq, UINT32_MAX, wrace_reactor_item, run) ? 0 : 1;
		fsesl_wakeb_st_flush(&run->wb);
		/* A short timeout only to notice the waiters' end. */
		while (poll(&pfd, 1, timeout) < 0 && errno == EINTR)
			;
	}
	fsesl_wakeb_st_destroy(&run->wb);
	return NULL;
}

static void *
wrace_waiter(void *p)
{
	struct wrace_run *run = p;
	const struct fsesl_wait_ops *ops = &fsesl_wait_ops_linux;
	unsigned int i, seed = (unsigned int)(uintptr_t)&i;
	struct wrace_req *rq;
	struct timespec dl;
	uint32_t s;

	for (i = 0; i < run->iters; i++) {
		rq = malloc(sizeof(*rq));
		if (rq == NULL)
			abort();
		fsesl_cpl_init(&rq->cpl, 2, NULL, NULL);
		/* Half sleep at once, half may spin first. */
		rq->cpl.expect_ns = (i & 1) ? 1000000000u : 5000u;
		rq->magic = REQ_MAGIC;
		rq->result = 0;
		rq->reactor_decided = false;
		rq->waiter_saw = FSESL_CPL_PENDING;
		rq->delay = (unsigned int)rand_r(&seed) % 2000;
		rq->run = run;
		ops->now(&dl, ops->ctx);
		dl.tv_nsec += 2000 + (long)(rand_r(&seed) % 150000);
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		if (fsesl_sq_submit(&run->sq, rq, false, NULL) != 0)
			abort();
		s = fsesl_cpl_wait(&rq->cpl, &dl, ops);
		if (s == FSESL_CPL_DONE) {
			atomic_fetch_add(&run->waiter_done, 1);
			if (rq->result != 42)
				atomic_fetch_add(&run->errors, 1);
		} else if (s != FSESL_CPL_TIMEDOUT) {
			atomic_fetch_add(&run->errors, 1);
		}
		rq->waiter_saw = s;
		if (fsesl_cpl_release(&rq->cpl))
			wrace_last_ref(rq);
	}
	atomic_fetch_add(&run->stopped_waiters, 1);
	fsesl_doorbell_ring(&run->sq.db);
	return NULL;
}

void
qtest_wakeb_race(unsigned int n_waiters, unsigned int iters, unsigned int flags, bool *uring_out)
{
	struct wrace_run *run = calloc(1, sizeof(*run));
	pthread_t rt, *wt = calloc(n_waiters, sizeof(*wt));
	unsigned long total = (unsigned long)n_waiters * iters;
	bool uring;
	unsigned int i;

	cr_assert_not_null(run);
	cr_assert_not_null(wt);
	run->flags = flags;
	run->iters = iters;
	run->n_waiters = n_waiters;
	run->flush_every = 3;
	run->seed = 777;
	cr_assert_eq(fsesl_sq_init(&run->sq, 2, 64, &fsesl_wait_ops_linux), 0);
	cr_assert_eq(pthread_create(&rt, NULL, wrace_reactor, run), 0);
	for (i = 0; i < n_waiters; i++)
		cr_assert_eq(pthread_create(&wt[i], NULL, wrace_waiter, run), 0);
	for (i = 0; i < n_waiters; i++)
		pthread_join(wt[i], NULL);
	pthread_join(rt, NULL);
	cr_assert(!run->init_failed);
	uring = fsesl_wakeb_backend(&run->wb) == FSESL_WAKEB_URING &&
	        atomic_load(&run->wb.fallbacks) == 0;
	cr_log_info("wake batch race (%s): %lu requests, %lu done, %lu freed by the batch, "
	            "%lu wakes in %lu flushes, %lu syscalls",
	    uring ? "io_uring" : "futex", total, atomic_load(&run->waiter_done),
	    atomic_load(&run->batch_frees), (unsigned long)atomic_load(&run->wb.wakes),
	    (unsigned long)atomic_load(&run->wb.flushes),
	    (unsigned long)atomic_load(&run->wb.syscalls));
	cr_assert_eq(atomic_load(&run->errors), 0);
	cr_assert_eq(
	    atomic_load(&run->frees), total, "freed %lu of %lu", atomic_load(&run->frees), total);
	cr_assert_eq(atomic_load(&run->reactor_wins), atomic_load(&run->waiter_done));
	cr_assert_eq(fsesl_cpl_spinners(), 0);
	if (uring_out != NULL)
		*uring_out = uring;
	fsesl_sq_destroy(&run->sq);
	free(wt);
	free(run);
	return;
}
