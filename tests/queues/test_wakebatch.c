/*
 * test_wakebatch.c - unit tests for the wake batch (fsesl_wakeb_st_*),
 * fsesl_cpl_complete_batched() and the wait policy's spin budget.
 *
 * Fake ops record the fallback's wakes; real threads check that a sleeping
 * waiter is woken by a flush and only then, with each backend; the race
 * harness (qtest.c) checks the TEARDOWN RULE with the batch as a third
 * holder, and under ASan that no wake or release touches freed memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sched.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "qtest.h"

static unsigned int released;

static void
count_release(struct fsesl_cpl *c)
{

	(void)c;
	released++;
}

/* A waiter that announced it sleeps, without a thread: the word as
 * fsesl_cpl_wait() leaves it just before FUTEX_WAIT. */
static void
mark_sleeping(struct fsesl_cpl *c)
{

	atomic_store(&c->state, FSESL_CPL_PENDING | FSESL_CPL_SLEEPING);
}

Test(wakeb, records_the_wake_instead_of_issuing_it)
{
	struct fake_ops f;
	struct fsesl_wakeb_st wb;
	struct fsesl_cpl c;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_wakeb_st_init(&wb, 8, FSESL_WAKEB_FUTEX_ONLY, &f.ops), 0);
	cr_assert_eq(fsesl_wakeb_backend(&wb), FSESL_WAKEB_FUTEX);
	fsesl_cpl_init(&c, 2, NULL, NULL);
	mark_sleeping(&c);
	released = 0;
	cr_assert(fsesl_cpl_complete_batched(&c, FSESL_CPL_DONE, &wb, count_release));
	cr_assert_eq(fsesl_cpl_state(&c), FSESL_CPL_DONE);
	cr_assert_eq(f.wakes, 0, "woken before the flush");
	cr_assert_eq(fsesl_wakeb_st_pending(&wb), 1);
	cr_assert_eq(atomic_load(&c.refs), 3, "the batch holds its own reference");
	fsesl_wakeb_st_flush(&wb);
	cr_assert_eq(f.wakes, 1);
	cr_assert_eq(fsesl_wakeb_st_pending(&wb), 0);
	cr_assert_eq(atomic_load(&c.refs), 2);
	cr_assert_eq(released, 0);
	cr_assert_eq(atomic_load(&wb.wakes), 1);
	cr_assert_eq(atomic_load(&wb.flushes), 1);
	cr_assert_eq(atomic_load(&wb.syscalls), 1);
	/* An empty flush is free. */
	fsesl_wakeb_st_flush(&wb);
	cr_assert_eq(atomic_load(&wb.flushes), 1);
	fsesl_wakeb_st_destroy(&wb);
}

Test(wakeb, no_record_without_a_sleeper_or_when_the_outcome_was_decided)
{
	struct fake_ops f;
	struct fsesl_wakeb_st wb;
	struct fsesl_cpl c;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_wakeb_st_init(&wb, 8, FSESL_WAKEB_FUTEX_ONLY, &f.ops), 0);
	fsesl_cpl_init(&c, 2, NULL, NULL);
	cr_assert(fsesl_cpl_complete_batched(&c, FSESL_CPL_DONE, &wb, count_release));
	cr_assert_eq(fsesl_wakeb_st_pending(&wb), 0);
	cr_assert_eq(atomic_load(&c.refs), 2);
	/* Decided already (the waiter's timeout won): nothing, not even a ref. */
	fsesl_cpl_init(&c, 2, NULL, NULL);
	atomic_store(&c.state, FSESL_CPL_TIMEDOUT | FSESL_CPL_SLEEPING);
	cr_assert_not(fsesl_cpl_complete_batched(&c, FSESL_CPL_DONE, &wb, count_release));
	cr_assert_eq(fsesl_wakeb_st_pending(&wb), 0);
	cr_assert_eq(atomic_load(&c.refs), 2);
	cr_assert_not(fsesl_cpl_complete_batched(&c, FSESL_CPL_PENDING, &wb, count_release));
	fsesl_wakeb_st_destroy(&wb);
	cr_assert_eq(f.wakes, 0);
}

/* The waiter woke on its own (timeout, EINTR), saw DONE and released; the
 * completer released too: the batch is the last holder and frees. */
Test(wakeb, batch_frees_when_it_holds_the_last_reference)
{
	struct fake_ops f;
	struct fsesl_wakeb_st wb;
	struct fsesl_cpl c;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_wakeb_st_init(&wb, 8, FSESL_WAKEB_FUTEX_ONLY, &f.ops), 0);
	fsesl_cpl_init(&c, 2, NULL, NULL);
	mark_sleeping(&c);
	released = 0;
	cr_assert(fsesl_cpl_complete_batched(&c, FSESL_CPL_DONE, &wb, count_release));
	cr_assert_not(fsesl_cpl_release(&c)); /* the completer */
	cr_assert_not(fsesl_cpl_release(&c)); /* the waiter */
	cr_assert_eq(released, 0);
	fsesl_wakeb_st_flush(&wb);
	cr_assert_eq(f.wakes, 1, "woken before the release");
	cr_assert_eq(released, 1);
	fsesl_wakeb_st_destroy(&wb);
}

Test(wakeb, full_batch_flushes_before_it_overflows)
{
	struct fake_ops f;
	struct fsesl_wakeb_st wb;
	struct fsesl_cpl c[9];
	unsigned int i;

	fake_ops_init(&f);
	cr_assert_eq(fsesl_wakeb_st_init(&wb, 8, FSESL_WAKEB_FUTEX_ONLY, &f.ops), 0);
	cr_assert_eq(wb.cap, 8);
	for (i = 0; i < 9; i++) {
		fsesl_cpl_init(&c[i], 1, NULL, NULL);
		mark_sleeping(&c[i]);
		cr_assert(fsesl_cpl_complete_batched(&c[i], FSESL_CPL_FAILED, &wb, count_release));
	}
	cr_assert_eq(f.wakes, 8);
	cr_assert_eq(fsesl_wakeb_st_pending(&wb), 1);
	cr_assert_eq(atomic_load(&wb.flushes), 1);
	fsesl_wakeb_st_destroy(&wb); /* flushes the ninth */
	cr_assert_eq(f.wakes, 9);
}

/* ------------------------------------------------------------------ */
/* Real threads and real futexes                                        */
/* ------------------------------------------------------------------ */

struct sleeper {
	struct fsesl_cpl c;
	uint32_t got;
	pthread_t th;
};

static void *
sleeper_main(void *p)
{
	struct sleeper *s = p;

	s->got = fsesl_cpl_wait(&s->c, NULL, &fsesl_wait_ops_linux);
	return NULL;
}

static void
sleeper_start(struct sleeper *s)
{

	fsesl_cpl_init(&s->c, 1, NULL, NULL);
	s->c.expect_ns = 1000000000u; /* not due soon: sleeps at once */
	s->got = FSESL_CPL_PENDING;
	cr_assert_eq(pthread_create(&s->th, NULL, sleeper_main, s), 0);
	/* Until it has announced its sleep (no deadline: a lost wake would
	 * hang it, and the test's timeout fails the test). */
	while ((atomic_load(&s->c.state) & FSESL_CPL_SLEEPING) == 0)
		sched_yield();
}

static void
sleepers_woken_by_flush(unsigned int flags)
{
	struct fsesl_wakeb_st wb;
	struct sleeper s[4];
	unsigned int i;

	cr_assert_eq(fsesl_wakeb_st_init(&wb, 0, flags, &fsesl_wait_ops_linux), 0);
	for (i = 0; i < 4; i++)
		sleeper_start(&s[i]);
	for (i = 0; i < 4; i++)
		cr_assert(fsesl_cpl_complete_batched(&s[i].c, FSESL_CPL_DONE, &wb, NULL));
	cr_assert_eq(fsesl_wakeb_st_pending(&wb), 4);
	fsesl_wakeb_st_flush(&wb);
	for (i = 0; i < 4; i++) {
		pthread_join(s[i].th, NULL);
		cr_assert_eq(s[i].got, FSESL_CPL_DONE);
	}
	cr_assert_eq(atomic_load(&wb.wakes), 4);
	cr_assert_eq(atomic_load(&wb.fallbacks), 0);
	if (fsesl_wakeb_backend(&wb) == FSESL_WAKEB_URING)
		cr_assert_eq(atomic_load(&wb.syscalls), 1, "one io_uring_enter for the batch");
	else
		cr_assert_eq(atomic_load(&wb.syscalls), 4);
	fsesl_wakeb_st_destroy(&wb);
}

/* What the kernel offers, told without our detection code: Linux >= 6.7,
 * io_uring not disabled by sysctl, no seccomp filter on this process. */
static bool
kernel_has_uring_futex(void)
{
	struct utsname u;
	unsigned int maj = 0, min = 0;
	char line[128];
	FILE *f;
	bool ok = true;

	if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &maj, &min) != 2)
		return false;
	if (maj < 6 || (maj == 6 && min < 7))
		return false;
	f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	if (f != NULL) {
		if (fgets(line, sizeof(line), f) != NULL && atoi(line) != 0)
			ok = false;
		fclose(f);
	}
	f = fopen("/proc/self/status", "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "Seccomp:", 8) == 0 && atoi(line + 8) != 0)
				ok = false;
		fclose(f);
	}
	return ok;
}

Test(wakeb_backend, detection_matches_the_kernel)
{
	struct fsesl_wakeb_st wb;

	cr_assert_eq(fsesl_wakeb_st_init(&wb, 0, 0, &fsesl_wait_ops_linux), 0);
	if (kernel_has_uring_futex())
		cr_assert_eq(fsesl_wakeb_backend(&wb), FSESL_WAKEB_URING);
	else
		cr_log_info("this kernel: backend %d", (int)fsesl_wakeb_backend(&wb));
	fsesl_wakeb_st_destroy(&wb);
	cr_assert_eq(fsesl_wakeb_st_init(&wb, 0, FSESL_WAKEB_FUTEX_ONLY, &fsesl_wait_ops_linux), 0);
	cr_assert_eq(fsesl_wakeb_backend(&wb), FSESL_WAKEB_FUTEX);
	fsesl_wakeb_st_destroy(&wb);
}

Test(wakeb_backend, futex_flush_wakes_sleepers, .timeout = 30)
{
	sleepers_woken_by_flush(FSESL_WAKEB_FUTEX_ONLY);
}

Test(wakeb_backend, uring_flush_wakes_sleepers, .timeout = 30)
{
	if (!kernel_has_uring_futex())
		cr_skip_test("no io_uring FUTEX_WAKE on this kernel");
	sleepers_woken_by_flush(0);
}

/* The ring rejects a wake: the flush notices (a CQE despite skip-success),
 * wakes the whole batch with FUTEX_WAKE and never uses the ring again. */
Test(wakeb_backend, uring_error_falls_back_for_good, .timeout = 30)
{
	struct fsesl_wakeb_st wb;
	struct sleeper s[3];
	unsigned int i;

	if (!kernel_has_uring_futex())
		cr_skip_test("no io_uring FUTEX_WAKE on this kernel");
	cr_assert_eq(fsesl_wakeb_st_init(&wb, 0, 0, &fsesl_wait_ops_linux), 0);
	cr_assert_eq(fsesl_wakeb_backend(&wb), FSESL_WAKEB_URING);
	for (i = 0; i < 3; i++)
		sleeper_start(&s[i]);
	for (i = 0; i < 3; i++)
		cr_assert(fsesl_cpl_complete_batched(&s[i].c, FSESL_CPL_DONE, &wb, NULL));
	wb.inject_error = true; /* the first SQE carries an invalid flag */
	fsesl_wakeb_st_flush(&wb);
	for (i = 0; i < 3; i++) {
		pthread_join(s[i].th, NULL);
		cr_assert_eq(s[i].got, FSESL_CPL_DONE);
	}
	cr_assert_eq(fsesl_wakeb_backend(&wb), FSESL_WAKEB_FUTEX);
	cr_assert_eq(atomic_load(&wb.fallbacks), 1);
	cr_assert_eq(atomic_load(&wb.syscalls), 1 + 3, "one io_uring_enter, then 3 FUTEX_WAKEs");
	cr_assert_null(wb.uring);
	fsesl_wakeb_st_destroy(&wb);
}

Test(wakeb_race, futex_4x3000, .timeout = 120)
{
	qtest_wakeb_race(4, 3000, FSESL_WAKEB_FUTEX_ONLY, NULL);
}

Test(wakeb_race, uring_4x3000, .timeout = 120)
{
	bool uring = false;

	qtest_wakeb_race(4, 3000, 0, &uring);
	if (kernel_has_uring_futex())
		cr_assert(uring, "the run used the io_uring backend throughout");
}

/* ------------------------------------------------------------------ */
/* The wait policy's budget                                             */
/* ------------------------------------------------------------------ */

Test(cpl_policy, spins_only_for_replies_due_soon)
{
	struct fsesl_cpl c;

	fsesl_cpl_init(&c, 1, NULL, NULL);
	c.expect_ns = 1000000; /* 1 ms: a sleep costs less than the spin */
	cr_assert_eq(fsesl_cpl_spin_budget_ns(&c), 0);
	c.expect_ns = 10000; /* 10 us: 1.5 x + 2 us */
	cr_assert_eq(fsesl_cpl_spin_budget_ns(&c), 17000);
	c.expect_ns = 45000; /* capped */
	cr_assert_eq(fsesl_cpl_spin_budget_ns(&c), 50000);
	/* Unknown: the hand-off estimate, which starts at the probe. */
	c.expect_ns = 0;
	fsesl_cpl_spin_reset();
	cr_assert_gt(fsesl_cpl_spin_budget_ns(&c), 0);
}

Test(cpl_policy, spinner_limit_leaves_one_cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	cr_assert_eq(fsesl_cpl_spinners_max(), n > 1 ? (unsigned int)(n - 1) : 0u);
	cr_assert_eq(fsesl_cpl_spinners(), 0);
}

/* The reactor's spin poll counts in the same budget, without a limit. */
Test(cpl_policy, other_spinners_announce_themselves)
{
	unsigned int before = fsesl_cpl_spinners();

	fsesl_cpl_spin_announce();
	fsesl_cpl_spin_announce();
	cr_assert_eq(fsesl_cpl_spinners(), before + 2);
	fsesl_cpl_spin_withdraw();
	fsesl_cpl_spin_withdraw();
	cr_assert_eq(fsesl_cpl_spinners(), before);
}
