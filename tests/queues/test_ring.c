/*
 * test_ring.c - unit tests for fsesl_ring_mpsc_* and fsesl_sq_* (fast).
 *
 * The structural cases check ck's contract as we expose it (power-of-two
 * sizes, capacity size - 1, FIFO). The threaded cases push every item
 * through, with rings as small as 4 slots so that producers keep finding
 * them full and take the futex path. The blocking cases use fake ops, so
 * "the deadline passed" and "space appeared during the wait" are
 * deterministic, plus one real-futex case whose only synchronisation is the
 * space_waiters announcement it waits for.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "qtest.h"

Test(ring, rejects_bad_sizes)
{
	struct fsesl_ring_mpsc r;
	unsigned int bad[] = {0, 1, 2, 3, 5, 6, 7, 12, 1000, 0x80000000u};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(fsesl_ring_mpsc_init(&r, bad[i]), -EINVAL, "size %u", bad[i]);
	cr_expect_eq(fsesl_ring_mpsc_init(NULL, 16), -EINVAL);
}

Test(ring, capacity_is_size_minus_one_and_fifo)
{
	struct fsesl_ring_mpsc r;
	unsigned int sizes[] = {4, 8, 64, 1024};
	uintptr_t i, round;
	size_t k;
	void *item;

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		cr_assert_eq(fsesl_ring_mpsc_init(&r, sizes[k]), 0);
		cr_assert_eq(fsesl_ring_mpsc_capacity(&r), sizes[k] - 1);
		/* Several rounds so the counters wrap the slot array. */
		for (round = 0; round < 5; round++) {
			for (i = 0; i < sizes[k] - 1; i++)
				cr_assert(fsesl_ring_mpsc_try_enqueue(&r, (void *)(i + 1)));
			cr_assert_not(
			    fsesl_ring_mpsc_try_enqueue(&r, (void *)1), "full ring took more");
			cr_assert_eq(fsesl_ring_mpsc_count(&r), sizes[k] - 1);
			for (i = 0; i < sizes[k] - 1; i++) {
				cr_assert(fsesl_ring_mpsc_dequeue(&r, &item));
				cr_assert_eq((uintptr_t)item, i + 1);
			}
			cr_assert_not(fsesl_ring_mpsc_dequeue(&r, &item));
		}
		fsesl_ring_mpsc_destroy(&r);
	}
}

Test(ring, null_item_passes_through)
{
	struct fsesl_ring_mpsc r;
	void *item = (void *)1;

	cr_assert_eq(fsesl_ring_mpsc_init(&r, 4), 0);
	cr_assert(fsesl_ring_mpsc_try_enqueue(&r, NULL));
	cr_assert(fsesl_ring_mpsc_dequeue(&r, &item));
	cr_assert_null(item);
	fsesl_ring_mpsc_destroy(&r);
}

/* Fake ops: the ring is full and stays full: the deadline must win, the
 * item must not be in the ring, and nobody must be left announced. */
Test(ring, blocking_enqueue_times_out_and_keeps_item_out)
{
	struct fsesl_ring_mpsc r;
	struct fake_ops f;
	struct timespec deadline;
	uintptr_t i;
	void *item;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_ring_mpsc_init(&r, 4), 0);
	for (i = 1; i <= 3; i++)
		cr_assert(fsesl_ring_mpsc_try_enqueue(&r, (void *)i));
	fsesl_deadline_after_ms(&f.ops, &deadline, 5);
	cr_assert_eq(fsesl_ring_mpsc_enqueue(&r, (void *)99, &deadline, &f.ops), -ETIMEDOUT);
	cr_assert_geq(f.waits, 1);
	cr_assert_eq(atomic_load(&r.space_waiters), 0);
	cr_assert_eq(fsesl_ring_mpsc_count(&r), 3);
	for (i = 1; i <= 3; i++) {
		cr_assert(fsesl_ring_mpsc_dequeue(&r, &item));
		cr_assert_eq((uintptr_t)item, i);
	}
	cr_assert_not(fsesl_ring_mpsc_dequeue(&r, &item));
	fsesl_ring_mpsc_destroy(&r);
}

/* An already-passed deadline on a full ring: no wait at all. */
Test(ring, blocking_enqueue_past_deadline_does_not_wait)
{
	struct fsesl_ring_mpsc r;
	struct fake_ops f;
	struct timespec deadline;
	uintptr_t i;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_ring_mpsc_init(&r, 4), 0);
	for (i = 1; i <= 3; i++)
		cr_assert(fsesl_ring_mpsc_try_enqueue(&r, (void *)i));
	f.ops.now(&deadline, f.ops.ctx);
	cr_assert_eq(fsesl_ring_mpsc_enqueue(&r, (void *)99, &deadline, &f.ops), -ETIMEDOUT);
	cr_assert_eq(f.waits, 0);
	fsesl_ring_mpsc_destroy(&r);
}

/* The consumer frees a slot while the producer "sleeps" (from inside the
 * fake wait): space_released must see the announcement and wake, and the
 * producer's retry must succeed. */
static void
consume_one(struct fake_ops *f, void *arg)
{
	struct fsesl_ring_mpsc *r = arg;
	void *item;

	if (fsesl_ring_mpsc_dequeue(r, &item))
		fsesl_ring_mpsc_space_released(r, &f->ops);
	f->hook = NULL;
	return;
}

Test(ring, space_released_wakes_announced_producer)
{
	struct fsesl_ring_mpsc r;
	struct fake_ops f;
	uintptr_t i;
	void *item;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_ring_mpsc_init(&r, 4), 0);
	for (i = 1; i <= 3; i++)
		cr_assert(fsesl_ring_mpsc_try_enqueue(&r, (void *)i));
	f.hook = consume_one;
	f.hook_arg = &r;
	cr_assert_eq(fsesl_ring_mpsc_enqueue(&r, (void *)4, NULL, &f.ops), 0);
	cr_assert_eq(f.waits, 1);
	cr_assert_eq(f.wakes, 1, "space_released must wake an announced producer");
	for (i = 2; i <= 4; i++) {
		cr_assert(fsesl_ring_mpsc_dequeue(&r, &item));
		cr_assert_eq((uintptr_t)item, i);
	}
	/* Nobody announced now: releasing space costs no wake. */
	fsesl_ring_mpsc_space_released(&r, &f.ops);
	cr_assert_eq(f.wakes, 1);
	fsesl_ring_mpsc_destroy(&r);
}

/* Real futex: a producer blocks on a full ring; once it has announced
 * itself (a state we can observe), we free a slot and it must finish. */
static void *
blocked_producer(void *p)
{
	struct fsesl_ring_mpsc *r = p;

	return (void *)(intptr_t)fsesl_ring_mpsc_enqueue(r, (void *)4, NULL, &fsesl_wait_ops_linux);
}

Test(ring, blocked_producer_woken_by_real_futex, .timeout = 30)
{
	struct fsesl_ring_mpsc r;
	pthread_t th;
	uintptr_t i;
	void *item, *ret;

	cr_assert_eq(fsesl_ring_mpsc_init(&r, 4), 0);
	for (i = 1; i <= 3; i++)
		cr_assert(fsesl_ring_mpsc_try_enqueue(&r, (void *)i));
	cr_assert_eq(pthread_create(&th, NULL, blocked_producer, &r), 0);
	while (atomic_load(&r.space_waiters) == 0)
		sched_yield();
	cr_assert(fsesl_ring_mpsc_dequeue(&r, &item));
	fsesl_ring_mpsc_space_released(&r, &fsesl_wait_ops_linux);
	pthread_join(th, &ret);
	cr_assert_eq((intptr_t)ret, 0);
	for (i = 2; i <= 4; i++) {
		cr_assert(fsesl_ring_mpsc_dequeue(&r, &item));
		cr_assert_eq((uintptr_t)item, i);
	}
	fsesl_ring_mpsc_destroy(&r);
}

/* N producers x M items, one consumer. Size 4 forces the full path. */
Test(ring_mpsc, p1_size4, .timeout = 60)
{
	qtest_ring_mpsc(1, 20000, 4);
}
Test(ring_mpsc, p4_size4, .timeout = 60)
{
	qtest_ring_mpsc(4, 5000, 4);
}
Test(ring_mpsc, p16_size8, .timeout = 60)
{
	qtest_ring_mpsc(16, 1000, 8);
}
Test(ring_mpsc, p64_size4, .timeout = 60)
{
	qtest_ring_mpsc(64, 300, 4);
}
Test(ring_mpsc, p64_size1024, .timeout = 60)
{
	qtest_ring_mpsc(64, 300, 1024);
}

static void
count_item(void *item, void *arg)
{
	unsigned int *n = arg;

	(*n)++;
	return;
}

Test(sq, init_rejects_and_defaults)
{
	struct fsesl_sq sq;

	cr_expect_eq(fsesl_sq_init(&sq, 2, 3, &fsesl_wait_ops_linux), -EINVAL);
	cr_expect_eq(fsesl_sq_init(NULL, 2, 4, &fsesl_wait_ops_linux), -EINVAL);
	cr_expect_eq(fsesl_sq_init(&sq, 2, 4, NULL), -EINVAL);
	cr_assert_eq(fsesl_sq_init(&sq, 0, 4, &fsesl_wait_ops_linux), 0);
	cr_expect_geq(sq.n_shards, 2);
	cr_expect_geq(fsesl_doorbell_fd(&sq.db), 0);
	fsesl_sq_destroy(&sq);
	fsesl_sq_destroy(&sq); /* idempotent */
}

Test(sq, nonblock_full_shard_returns_eagain_and_keeps_item)
{
	struct fsesl_sq sq;
	unsigned int got = 0;
	uintptr_t i;

	cr_assert_eq(fsesl_sq_init(&sq, 1, 4, &fsesl_wait_ops_linux), 0);
	for (i = 1; i <= 3; i++)
		cr_assert_eq(fsesl_sq_submit(&sq, (void *)i, true, NULL), 0);
	cr_assert_eq(fsesl_sq_submit(&sq, (void *)4, true, NULL), -EAGAIN);
	cr_assert_eq(atomic_load(&sq.db.rings), 3, "a refused submit must not ring");
	cr_assert_eq(fsesl_sq_drain(&sq, 100, count_item, &got), 3);
	cr_assert_eq(got, 3);
	cr_assert_eq(fsesl_sq_submit(&sq, (void *)4, true, NULL), 0);
	fsesl_sq_destroy(&sq);
}

Test(sq, drain_respects_max_and_is_fair)
{
	struct fsesl_sq sq;
	unsigned int n = 0;
	uintptr_t i;
	void *item;

	cr_assert_eq(fsesl_sq_init(&sq, 2, 16, &fsesl_wait_ops_linux), 0);
	/* Fill both shards directly (one thread maps to one shard). */
	for (i = 1; i <= 10; i++) {
		cr_assert(fsesl_ring_mpsc_try_enqueue(&sq.shards[0], (void *)i));
		cr_assert(fsesl_ring_mpsc_try_enqueue(&sq.shards[1], (void *)(100 + i)));
	}
	cr_assert_eq(fsesl_sq_drain(&sq, 4, count_item, &n), 4);
	cr_assert_eq(n, 4);
	/* Round robin: 4 items took 2 from each shard. */
	cr_assert_eq(fsesl_ring_mpsc_count(&sq.shards[0]), 8);
	cr_assert_eq(fsesl_ring_mpsc_count(&sq.shards[1]), 8);
	cr_assert_eq(fsesl_sq_drain(&sq, 1000, count_item, &n), 16);
	cr_assert_not(fsesl_ring_mpsc_dequeue(&sq.shards[0], &item));
	cr_assert_eq(fsesl_sq_drain(&sq, 1000, count_item, &n), 0);
	fsesl_sq_destroy(&sq);
}

Test(sq_threads, p8_3shards_size4, .timeout = 60)
{
	qtest_sq(8, 2000, 3, 4);
}
Test(sq_threads, p64_4shards_size4, .timeout = 60)
{
	qtest_sq(64, 200, 4, 4);
}
