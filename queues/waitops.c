/*
 * waitops.c - the clock and futex operations behind every wait in queues/.
 *
 * Overview
 *   Nothing in queues/ calls futex(2), clock_gettime(2) or nanosleep(2)
 *   directly; it calls through a struct fsesl_wait_ops (ck_ec's ops-table
 *   idea). This file holds the real Linux table and the deadline helpers.
 *   Unit tests swap in fakes: a clock that only moves when they say so, a
 *   sleep that counts, a wake that records who was woken.
 *
 * Contract
 *   wait32() may return early for any reason; callers re-check the word
 *   (urcu's futex.h rule: spurious wake-ups and EINTR happen). It returns
 *   -ETIMEDOUT only when the absolute CLOCK_MONOTONIC deadline has passed.
 *   All futexes are process-private (FUTEX_*_PRIVATE): the words live in
 *   ordinary heap memory that is never shared between processes.
 *
 * Implementation notes
 *   FUTEX_WAIT_BITSET takes an absolute deadline, so a wait that is
 *   interrupted and restarted never stretches the timeout (the relative
 *   FUTEX_WAIT would have to recompute it). Without FUTEX_CLOCK_REALTIME
 *   the bitset variant measures CLOCK_MONOTONIC, which is what we want: a
 *   settimeofday() must not fire or postpone every pending request.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsesl_queues.h"

static int
linux_wait32(_Atomic uint32_t *word, uint32_t expected, const struct timespec *deadline, void *ctx)
{
	long rc;

	(void)ctx;
	rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET_PRIVATE, expected, deadline,
	    NULL, FUTEX_BITSET_MATCH_ANY);
	if (rc == -1 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	/* 0, EAGAIN (the word already differs), EINTR: all "look again". */
	return 0;
}

static void
linux_wake32(_Atomic uint32_t *word, int n, void *ctx)
{

	(void)ctx;
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	return;
}

static void
linux_now(struct timespec *ts, void *ctx)
{

	(void)ctx;
	(void)clock_gettime(CLOCK_MONOTONIC, ts);
	return;
}

static void
linux_sleep_us(unsigned us, void *ctx)
{
	struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};

	(void)ctx;
	/* One nanosleep, as usleep() would: an EINTR just ends this poll
	 * interval early, and the caller looks at the state again anyway. */
	(void)nanosleep(&ts, NULL);
	return;
}

const struct fsesl_wait_ops fsesl_wait_ops_linux = {
    .wait32 = linux_wait32,
    .wake32 = linux_wake32,
    .now = linux_now,
    .sleep_us = linux_sleep_us,
    .ctx = NULL,
};

void
fsesl_deadline_after_ms(const struct fsesl_wait_ops *ops, struct timespec *out, unsigned ms)
{

	ops->now(out, ops->ctx);
	out->tv_sec += ms / 1000u;
	out->tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (out->tv_nsec >= 1000000000L) {
		out->tv_sec++;
		out->tv_nsec -= 1000000000L;
	}
	return;
}

bool
fsesl_deadline_passed(const struct fsesl_wait_ops *ops, const struct timespec *d)
{
	struct timespec now;

	if (d == NULL)
		return false;
	ops->now(&now, ops->ctx);
	if (now.tv_sec != d->tv_sec)
		return now.tv_sec > d->tv_sec;
	return now.tv_nsec >= d->tv_nsec;
}

uint64_t
fsesl_mono_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
