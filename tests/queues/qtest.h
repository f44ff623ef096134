/*
 * qtest.h - shared helpers for the queues/ suites: fake wait ops and the
 * producer/consumer harnesses that the unit and stress suites run with
 * different sizes.
 */
#ifndef FSESL_QTEST_H
#define FSESL_QTEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fsesl_queues.h"

/*
 * Fake ops: a clock that moves only when sleep_us() or wait32() moves it,
 * counters for every call, and hooks a test can use to act "from the
 * other side" inside a wait.
 */
struct fake_ops {
	struct fsesl_wait_ops ops;
	uint64_t now_ns;
	unsigned int sleeps;
	unsigned int waits;
	unsigned int wakes;
	unsigned int waits_with_sleeping_bit; /* wait32 saw SLEEPING in `expected` */
	uint64_t wait_step_ns; /* how far a wait32 that does not time out moves the clock */
	/* Called from sleep_us()/wait32() before they return; may complete
	 * a request or free ring space. */
	void (*hook)(struct fake_ops *f, void *arg);
	void *hook_arg;
};

void fake_ops_init(struct fake_ops *f);

/* Ring harness: n producers push m items each through one ring of `size`
 * slots to one consumer thread; asserts nothing lost, duplicated or
 * reordered per producer. */
void qtest_ring_mpsc(unsigned int n_producers, unsigned int m_items, unsigned int size);

/* Same through a fsesl_sq with `shards` shards; the consumer sleeps in
 * poll() on the doorbell's eventfd between drains (awake / prepare_sleep /
 * re-drain protocol), so a lost wake-up hangs the test (and its timeout
 * fails it). Asserts writes <= rings and writes <= prepare_sleep calls + 1.
 */
void qtest_sq(
    unsigned int n_producers, unsigned int m_items, unsigned int shards, unsigned int ring_size);

/* Completion race: `iters` requests, each raced between a waiter (deadline
 * a few us away, futex or poll wait) and a reactor thread completing it
 * after a random delay. Checks exactly one outcome, that the waiter learnt
 * it, and that the teardown rule freed each request exactly once. */
void qtest_cpl_race(unsigned int iters, bool poll_mode);

/*
 * Batched-wake race: n_waiters threads each run `iters` requests through
 * a fsesl_sq to a reactor thread that completes them with
 * fsesl_cpl_complete_batched() after a random delay, releases its own
 * reference at once (as the engine does), and flushes its wake batch
 * every few completions and always before it sleeps. Waiters wait with
 * deadlines a few us away (so timeouts race the completions, and a waiter
 * often wakes on its own, sees DONE and releases while its word still
 * sits in the batch) and sleep at once or spin. Checks one outcome per
 * request, that the waiter learnt it, and that each request was freed
 * exactly once by its last holder: waiter, reactor or the batch. flags:
 * fsesl_wakeb_st_init()'s; *uring_out (if not NULL): the backend used was
 * io_uring for the whole run.
 */
void qtest_wakeb_race(
    unsigned int n_waiters, unsigned int iters, unsigned int flags, bool *uring_out);

#endif /* FSESL_QTEST_H */
