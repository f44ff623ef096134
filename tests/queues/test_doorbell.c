/*
 * test_doorbell.c - unit tests for fsesl_doorbell_* (fast).
 *
 * Coalescing is checked deterministically from one thread (the flag's
 * protocol fixes exactly how many eventfd writes a sequence of calls
 * costs); the no-lost-wake-up property is checked with real producers and
 * a reactor that sleeps in poll(-1) between drains, so a lost wake-up is a
 * hang that the test's timeout turns into a failure.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "qtest.h"

static bool
efd_readable(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

Test(doorbell, first_ring_writes_then_coalesces)
{
	struct fsesl_doorbell db;
	int i;

	cr_assert_eq(fsesl_doorbell_init(&db), 0);
	cr_assert_not(efd_readable(fsesl_doorbell_fd(&db)));
	for (i = 0; i < 1000; i++)
		fsesl_doorbell_ring(&db);
	cr_assert_eq(atomic_load(&db.rings), 1000);
	cr_assert_eq(atomic_load(&db.writes), 1, "1000 rings while unanswered = 1 write");
	cr_assert(efd_readable(fsesl_doorbell_fd(&db)));
	fsesl_doorbell_destroy(&db);
}

Test(doorbell, awake_reactor_costs_no_write)
{
	struct fsesl_doorbell db;
	int i;

	cr_assert_eq(fsesl_doorbell_init(&db), 0);
	fsesl_doorbell_ring(&db);
	fsesl_doorbell_awake(&db); /* drains the eventfd, flag = 1 */
	cr_assert_not(efd_readable(fsesl_doorbell_fd(&db)));
	for (i = 0; i < 100; i++)
		fsesl_doorbell_ring(&db);
	cr_assert_eq(atomic_load(&db.writes), 1);
	cr_assert_not(efd_readable(fsesl_doorbell_fd(&db)));
	fsesl_doorbell_destroy(&db);
}

Test(doorbell, ring_after_prepare_sleep_writes_once)
{
	struct fsesl_doorbell db;
	int round, i;

	cr_assert_eq(fsesl_doorbell_init(&db), 0);
	fsesl_doorbell_awake(&db); /* EAGAIN: nothing to read, fine */
	for (round = 1; round <= 5; round++) {
		cr_assert(fsesl_doorbell_prepare_sleep(&db));
		cr_assert_not(efd_readable(fsesl_doorbell_fd(&db)));
		for (i = 0; i < 10; i++)
			fsesl_doorbell_ring(&db);
		cr_assert_eq(atomic_load(&db.writes), (uint64_t)round);
		cr_assert(efd_readable(fsesl_doorbell_fd(&db)));
		fsesl_doorbell_awake(&db);
		cr_assert_not(efd_readable(fsesl_doorbell_fd(&db)));
	}
	fsesl_doorbell_destroy(&db);
}

Test(doorbell, destroy_twice_is_harmless)
{
	struct fsesl_doorbell db;

	cr_assert_eq(fsesl_doorbell_init(&db), 0);
	fsesl_doorbell_destroy(&db);
	cr_assert_eq(fsesl_doorbell_fd(&db), -1);
	fsesl_doorbell_destroy(&db);
}

/* No lost wake-up under producers + a reactor that sleeps in poll(-1). */
Test(doorbell_threads, p4_many_sleeps, .timeout = 60)
{
	qtest_sq(4, 5000, 2, 64);
}
Test(doorbell_threads, p16_small_rings, .timeout = 60)
{
	qtest_sq(16, 1000, 2, 4);
}

/* Many threads ring while the reactor sleeps: the exchange lets exactly
 * one of them write, however the rings interleave. */
struct ringers {
	struct fsesl_doorbell db;
	pthread_barrier_t go;
};

static void *
ringer(void *p)
{
	struct ringers *r = p;
	int i;

	pthread_barrier_wait(&r->go);
	for (i = 0; i < 2000; i++)
		fsesl_doorbell_ring(&r->db);
	return NULL;
}

Test(doorbell_threads, concurrent_rings_while_asleep_write_once, .timeout = 60)
{
	struct ringers r;
	pthread_t th[8];
	int i, round;

	cr_assert_eq(fsesl_doorbell_init(&r.db), 0);
	for (round = 1; round <= 20; round++) {
		pthread_barrier_init(&r.go, NULL, 8);
		fsesl_doorbell_prepare_sleep(&r.db);
		for (i = 0; i < 8; i++)
			cr_assert_eq(pthread_create(&th[i], NULL, ringer, &r), 0);
		for (i = 0; i < 8; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&r.go);
		cr_assert_eq(atomic_load(&r.db.writes), (uint64_t)round,
		    "round %d: 16000 rings must cost one write", round);
		cr_assert(efd_readable(fsesl_doorbell_fd(&r.db)));
		fsesl_doorbell_awake(&r.db);
	}
	cr_assert_eq(atomic_load(&r.db.rings), 20u * 8 * 2000);
	fsesl_doorbell_destroy(&r.db);
}
