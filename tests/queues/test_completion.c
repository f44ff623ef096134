/*
 * test_completion.c - unit tests for fsesl_cpl_* (fast).
 *
 * Fake ops make the waits deterministic: a fake clock that only the fake
 * sleep/wait moves, counters for sleeps/waits/wakes, and a hook that acts
 * as the completer from inside a wait. The threaded race with real futexes
 * checks the TEARDOWN RULE (each request freed exactly once, by the last
 * holder; run under ASan it also proves nobody touches freed memory).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "qtest.h"

static struct timespec
fake_deadline_us(struct fake_ops *f, uint64_t us)
{
	struct timespec d;
	uint64_t ns = f->now_ns + us * 1000u;

	d.tv_sec = (time_t)(ns / 1000000000u);
	d.tv_nsec = (long)(ns % 1000000000u);
	return d;
}

Test(cpl, init_state_and_refs)
{
	struct fsesl_cpl c;

	fsesl_cpl_init(&c, 2, NULL, NULL);
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_PENDING);
	cr_assert_not(fsesl_cpl_release(&c));
	cr_assert(fsesl_cpl_release(&c), "second release drops the last ref");
}

Test(cpl, complete_decides_once)
{
	struct fake_ops f;
	struct fsesl_cpl c;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 1, NULL, NULL);
	cr_assert(fsesl_cpl_complete(&c, FSESL_CPL_DONE, &f.ops));
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_FAILED, &f.ops));
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_TIMEDOUT, &f.ops));
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_DONE);
	cr_assert_eq(fsesl_cpl_wait(&c, NULL, &f.ops), FSESL_CPL_DONE);
	cr_assert_eq(fsesl_cpl_wait_poll(&c, NULL, 1000, &f.ops), FSESL_CPL_DONE);
	cr_assert_eq(f.waits + f.sleeps, 0, "a decided completion never waits");
}

Test(cpl, complete_rejects_non_final_states)
{
	struct fake_ops f;
	struct fsesl_cpl c;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 1, NULL, NULL);
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_PENDING, &f.ops));
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_DONE | FSESL_CPL_SLEEPING, &f.ops));
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_PENDING);
}

/* complete() wakes only when a waiter set SLEEPING. */
Test(cpl, wake_only_when_sleeping)
{
	struct fake_ops f;
	struct fsesl_cpl c;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 1, NULL, NULL);
	cr_assert(fsesl_cpl_complete(&c, FSESL_CPL_DONE, &f.ops));
	cr_assert_eq(f.wakes, 0, "nobody slept: no FUTEX_WAKE");

	fsesl_cpl_init(&c, 1, NULL, NULL);
	atomic_store(&c.state, FSESL_CPL_PENDING | FSESL_CPL_SLEEPING);
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_PENDING, "SLEEPING is not a state");
	cr_assert(fsesl_cpl_complete(&c, FSESL_CPL_FAILED, &f.ops));
	cr_assert_eq(f.wakes, 1);
	cr_assert_eq(atomic_load(&c.state), FSESL_CPL_FAILED, "final word has no SLEEPING bit");
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_DONE, &f.ops));
	cr_assert_eq(f.wakes, 1);
}

/* The waiter sleeps (SLEEPING set, wait32 called with it); the completer
 * acts from inside that sleep and must issue exactly one wake. */
struct complete_in_wait {
	struct fsesl_cpl *c;
	uint32_t state;
	bool decided;
};

static void
complete_hook(struct fake_ops *f, void *arg)
{
	struct complete_in_wait *w = arg;

	w->decided = fsesl_cpl_complete(w->c, w->state, &f->ops);
	f->hook = NULL;
	return;
}

Test(cpl, futex_wait_sleeps_with_bit_and_is_woken)
{
	struct fake_ops f;
	struct fsesl_cpl c;
	struct complete_in_wait w = {.c = &c, .state = FSESL_CPL_DONE};
	struct timespec d;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 2, NULL, NULL);
	f.hook = complete_hook;
	f.hook_arg = &w;
	d = fake_deadline_us(&f, 5000000);
	cr_assert_eq(fsesl_cpl_wait(&c, &d, &f.ops), FSESL_CPL_DONE);
	cr_assert(w.decided);
	cr_assert_eq(f.waits, 1);
	cr_assert_eq(f.waits_with_sleeping_bit, 1);
	cr_assert_eq(f.wakes, 1, "the completer saw SLEEPING and woke once");
}

/* Spurious returns from wait32 (every 1 ms of fake time) until the
 * deadline: the waiter loops and then decides TIMEDOUT itself. */
Test(cpl, futex_wait_loops_on_spurious_returns_then_times_out)
{
	struct fake_ops f;
	struct fsesl_cpl c;
	struct timespec d;

	fake_ops_init(&f);
	f.wait_step_ns = 1000000;
	fsesl_cpl_init(&c, 2, NULL, NULL);
	d = fake_deadline_us(&f, 10000);
	cr_assert_eq(fsesl_cpl_wait(&c, &d, &f.ops), FSESL_CPL_TIMEDOUT);
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_TIMEDOUT);
	cr_assert_geq(f.waits, 9);
	cr_assert_leq(f.waits, 11);
	cr_assert_eq(f.wakes, 0, "the waiter does not wake itself");
	/* The late reply loses. */
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_DONE, &f.ops));
	cr_assert_not(fsesl_cpl_release(&c));
	cr_assert(fsesl_cpl_release(&c));
}

/* The compatibility wait checks every poll_itv and honours the timeout:
 * sleeps = timeout / itv (+-1), and the fake time at return is within one
 * interval past the deadline. */
struct poll_case {
	unsigned int timeout_us;
	unsigned int itv_us;
};

ParameterizedTestParameters(cpl, poll_wait_counts_sleeps)
{
	static struct poll_case cases[] = {
	    {5000000, 1000}, /* OpenSIPS defaults: 5 s, 1000 us */
	    {100000, 1000},
	    {100000, 100},
	    {12345, 1000}, /* not a multiple */
	    {999, 1000}, /* shorter than one interval */
	    {0, 1000},
	};

	return cr_make_param_array(struct poll_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct poll_case *pc, cpl, poll_wait_counts_sleeps)
{
	struct fake_ops f;
	struct fsesl_cpl c;
	struct timespec d;
	uint64_t start, deadline_ns;
	long expect, got;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 2, NULL, NULL);
	start = f.now_ns;
	d = fake_deadline_us(&f, pc->timeout_us);
	deadline_ns = start + (uint64_t)pc->timeout_us * 1000u;
	cr_assert_eq(fsesl_cpl_wait_poll(&c, &d, pc->itv_us, &f.ops), FSESL_CPL_TIMEDOUT);
	expect = (long)(pc->timeout_us / pc->itv_us);
	got = (long)f.sleeps;
	cr_assert(got >= expect - 1 && got <= expect + 1, "%ld sleeps for %u us / %u us", got,
	    pc->timeout_us, pc->itv_us);
	cr_assert_geq(f.now_ns, deadline_ns, "returned before the deadline");
	cr_assert_lt(
	    f.now_ns, deadline_ns + (uint64_t)pc->itv_us * 1000u, "overslept by a whole interval");
	cr_assert_eq(f.waits + f.wakes, 0, "poll mode never touches the futex");
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_TIMEDOUT);
}

/* Poll wait sees a completion made during its k-th sleep. */
struct complete_after {
	struct fsesl_cpl *c;
	unsigned int at_sleep;
};

static void
complete_after_hook(struct fake_ops *f, void *arg)
{
	struct complete_after *a = arg;

	if (f->sleeps == a->at_sleep)
		(void)fsesl_cpl_complete(a->c, FSESL_CPL_CANCELLED, &f->ops);
	return;
}

Test(cpl, poll_wait_returns_completion)
{
	struct fake_ops f;
	struct fsesl_cpl c;
	struct complete_after a = {.c = &c, .at_sleep = 7};
	struct timespec d;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 2, NULL, NULL);
	f.hook = complete_after_hook;
	f.hook_arg = &a;
	d = fake_deadline_us(&f, 1000000);
	cr_assert_eq(fsesl_cpl_wait_poll(&c, &d, 1000, &f.ops), FSESL_CPL_CANCELLED);
	cr_assert_eq(f.sleeps, 7);
	cr_assert_eq(f.wakes, 0, "nobody set SLEEPING in poll mode");
}

/* Async: the callback runs once, from the winner, with the final state. */
struct cb_count {
	_Atomic unsigned int calls;
	_Atomic uint32_t last;
};

static void
count_cb(struct fsesl_cpl *c, uint32_t state, void *arg)
{
	struct cb_count *cc = arg;

	atomic_fetch_add(&cc->calls, 1);
	atomic_store(&cc->last, state);
	return;
}

Test(cpl_async, callback_runs_once_on_complete)
{
	struct fake_ops f;
	struct fsesl_cpl c;
	struct cb_count cc = {0};

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 1, count_cb, &cc);
	cr_assert(fsesl_cpl_complete(&c, FSESL_CPL_DONE, &f.ops));
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_CANCELLED, &f.ops));
	cr_assert_eq(atomic_load(&cc.calls), 1);
	cr_assert_eq(atomic_load(&cc.last), FSESL_CPL_DONE);
	cr_assert(fsesl_cpl_release(&c));
}

Test(cpl_async, callback_runs_once_when_waiter_times_out)
{
	struct fake_ops f;
	struct fsesl_cpl c;
	struct cb_count cc = {0};
	struct timespec d;

	fake_ops_init(&f);
	fsesl_cpl_init(&c, 1, count_cb, &cc);
	d = fake_deadline_us(&f, 3000);
	cr_assert_eq(fsesl_cpl_wait_poll(&c, &d, 1000, &f.ops), FSESL_CPL_TIMEDOUT);
	cr_assert_not(fsesl_cpl_complete(&c, FSESL_CPL_DONE, &f.ops));
	cr_assert_eq(atomic_load(&cc.calls), 1);
	cr_assert_eq(atomic_load(&cc.last), FSESL_CPL_TIMEDOUT);
}

/* Two threads race complete() with different states, many times: one
 * callback per request, carrying the state that won. */
struct async_race {
	struct fsesl_cpl c;
	struct cb_count cc;
	pthread_barrier_t *bar;
	_Atomic unsigned int winners;
};

static void *
async_racer(void *p)
{
	struct async_race *r = p;

	pthread_barrier_wait(r->bar);
	if (fsesl_cpl_complete(&r->c, FSESL_CPL_CANCELLED, &fsesl_wait_ops_linux))
		atomic_fetch_add(&r->winners, 1);
	return NULL;
}

Test(cpl_async, racing_completers_one_callback, .timeout = 60)
{
	pthread_barrier_t bar;
	struct async_race r;
	pthread_t th;
	unsigned int i;
	uint32_t want;

	pthread_barrier_init(&bar, NULL, 2);
	for (i = 0; i < 2000; i++) {
		fsesl_cpl_init(&r.c, 1, count_cb, &r.cc);
		atomic_init(&r.cc.calls, 0);
		atomic_init(&r.cc.last, 0);
		atomic_init(&r.winners, 0);
		r.bar = &bar;
		cr_assert_eq(pthread_create(&th, NULL, async_racer, &r), 0);
		pthread_barrier_wait(&bar);
		if (fsesl_cpl_complete(&r.c, FSESL_CPL_DONE, &fsesl_wait_ops_linux))
			atomic_fetch_add(&r.winners, 1);
		pthread_join(th, NULL);
		cr_assert_eq(atomic_load(&r.winners), 1);
		cr_assert_eq(atomic_load(&r.cc.calls), 1);
		want = fsesl_cpl_state(&r.c);
		cr_assert_eq(atomic_load(&r.cc.last), want);
		cr_assert(fsesl_cpl_release(&r.c));
	}
	pthread_barrier_destroy(&bar);
}

/* Timeout racing completion with real futexes; counts frees. */
Test(cpl_race, futex_2000, .timeout = 60)
{
	qtest_cpl_race(2000, false);
}
Test(cpl_race, poll_500, .timeout = 60)
{
	qtest_cpl_race(500, true);
}
