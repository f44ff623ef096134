/*
 * completion.c - a per-request completion: one 32-bit word, decided once.
 *
 * Overview
 *   The word starts PENDING. Exactly one party moves it to a final state
 *   (DONE, TIMEDOUT, CANCELLED, FAILED) with a CAS: the reactor when the
 *   reply arrives or the request fails, or the waiter when its deadline
 *   passes. The loser of that race learns the outcome from the word and
 *   does nothing else. The word is also a private futex; the waiter sets
 *   the SLEEPING bit before FUTEX_WAIT so the completer makes the
 *   FUTEX_WAKE system call only when someone actually sleeps (urcu-wait.h's
 *   handshake, reduced to one word).
 *
 * Contract: the TEARDOWN RULE (who frees the request)
 *   A request embedding a fsesl_cpl starts with refs = 2 (waiter +
 *   reactor), or refs = 1 for an async request (reactor only). Each holder
 *   calls fsesl_cpl_release() exactly once when it no longer touches the
 *   memory; the call that returns true frees it.
 *     - Reply first: reactor stores the result, complete(DONE) (release),
 *       then releases. The waiter sees DONE (acquire), reads, releases.
 *     - Timeout first: the waiter's CAS to TIMEDOUT wins; it releases. The
 *       late reply's complete() returns false; the reactor drops the reply
 *       and releases. Whoever is last frees.
 *     - Async: the callback runs exactly once, in whichever party won the
 *       CAS; the reactor releases when the request leaves its FIFO.
 *   Because the completer still holds its reference while it calls
 *   FUTEX_WAKE and the callback, neither can touch freed memory; this is
 *   the question urcu-wait.h answers with its TEARDOWN state, answered
 *   here with the reference count.
 *
 * Implementation notes
 *   Memory order: complete()'s successful CAS is a release (acq_rel), so
 *   the result stored in the request before it is visible to whoever loads
 *   the final state with acquire (wait(), wait_poll(), state()).
 *   The lost wake-up argument: the waiter sets SLEEPING by CAS from exactly
 *   PENDING, then FUTEX_WAITs expecting PENDING|SLEEPING. The completer's
 *   CAS reads the word atomically: if it saw SLEEPING it wakes; if it did
 *   not, the waiter's CAS to SLEEPING fails (the word is final), or comes
 *   later and then the completer's CAS would have failed. And the kernel
 *   checks the word against PENDING|SLEEPING under its bucket lock, so a
 *   completion between the CAS and the sleep makes FUTEX_WAIT return at
 *   once.
 *   Batched wakes (fsesl_cpl_complete_batched): the same CAS decides;
 *   if it saw SLEEPING, the completer pins the request with one more
 *   reference (relaxed: its own reference keeps the count above zero, and
 *   the acq_rel release in the flush orders the free) and records the
 *   word in its wake batch instead of calling FUTEX_WAKE (wakebatch.c).
 *   The lost wake-up argument is unchanged: the wake comes later, but the
 *   word is already final, so a waiter that has not slept yet will not
 *   (its FUTEX_WAIT expects PENDING|SLEEPING and returns at once), and one
 *   that sleeps is woken by the flush.
 *
 *   The wait policy: spin only while spinning pays. A futex sleep/wake
 *   round trip across CPUs costs tens of microseconds (~24 us measured
 *   here, more in VMs: the wake is a paravirtual IPI) while a hand-off to
 *   a spinning thread costs ~0.15 us; but a spinner holds a CPU that the
 *   thread that will complete it (the reactor), or the server, may need.
 *   So a waiter spins only when all of these hold, and sleeps at once
 *   otherwise:
 *     - a spinner slot is free: at most (online CPUs - 1) threads spin at
 *       once, process-wide (one atomic counter), so one CPU always stays
 *       for everything else; on one CPU nobody spins. Other spinners of
 *       the process (the reactor's spin poll) announce themselves in the
 *       same counter, without a limit: a polling reactor saves every
 *       caller the doorbell and the reply's wake-up, which is worth more
 *       than one caller skipping its own wake, so on 2 CPUs callers spin
 *       only while the reactor sleeps;
 *     - the reply is due soon: the expectation (c->expect_ns, which the
 *       engine sets from the server's recent reply times, queueing behind
 *       other requests included) is below FSESL_SPIN_DUE_NS. Without one
 *       (0) the process-wide estimate of recent hand-offs stands in for
 *       it: an exponentially weighted moving average (1/8 weight) of wait
 *       durations in one relaxed atomic (a racy read-modify-write that
 *       loses an update now and then, which only blurs a heuristic); when
 *       that says "slow" the waiter still spins a short probe
 *       (FSESL_SPIN_PROBE_NS), enough to notice hand-offs becoming quick
 *       again, since that estimate only learns from waits.
 *   The spin lasts 1.5 x the expectation plus a small margin, capped at
 *   FSESL_SPIN_MAX_NS, then the waiter sleeps as before. The spin uses
 *   the real monotonic clock, not ops->now, so a fake clock in a test can
 *   never turn it into an endless loop.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "fsesl_queues.h"
#include "queues_impl.h"

#define FSESL_SPIN_MAX_NS 50000u /* never spin longer than this */
#define FSESL_SPIN_DUE_NS 60000u /* spin only for replies due sooner */
#define FSESL_SPIN_MARGIN_NS 2000u /* added to 1.5 x the expectation */
#define FSESL_SPIN_PROBE_NS 2000u /* spin when hand-offs are slow */
#define FSESL_SPIN_CHECK_EVERY 16u /* pauses between clock reads */
#define FSESL_EST_CAP_NS 10000000u /* one outlier must not dominate */

/* Process-wide estimate of a hand-off, ns. Relaxed: a heuristic only, no
 * other memory is published through it. Starts at the probe value. */
static _Atomic uint64_t cpl_est_ns = FSESL_SPIN_PROBE_NS;
/* Most spinners at once: online CPUs - 1; -1 until first looked up. */
static _Atomic int cpl_spin_max = -1;
/* Threads in a spin phase now. Relaxed: it admits spinners, it publishes
 * nothing; an admission a little over the limit for an instant is
 * harmless, and fetch_add cannot lose a count. */
static _Atomic unsigned int cpl_spinning;

static unsigned int
cpl_spin_limit(void)
{
	int v = atomic_load_explicit(&cpl_spin_max, memory_order_relaxed);
	long n;

	if (v < 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		v = n > 1 ? (int)(n - 1) : 0;
		atomic_store_explicit(&cpl_spin_max, v, memory_order_relaxed);
	}
	return (unsigned int)v;
}

unsigned int
fsesl_cpl_spinners(void)
{

	return atomic_load_explicit(&cpl_spinning, memory_order_relaxed);
}

unsigned int
fsesl_cpl_spinners_max(void)
{

	return cpl_spin_limit();
}

/* How long this wait may spin, ns (0: sleep at once). */
uint64_t
fsesl_cpl_spin_budget_ns(const struct fsesl_cpl *c)
{
	uint64_t est = c->expect_ns;

	if (est == 0) {
		est = atomic_load_explicit(&cpl_est_ns, memory_order_relaxed);
		if (est >= FSESL_SPIN_DUE_NS)
			return FSESL_SPIN_PROBE_NS;
	} else if (est >= FSESL_SPIN_DUE_NS) {
		return 0;
	}
	est = est + est / 2 + FSESL_SPIN_MARGIN_NS;
	return est > FSESL_SPIN_MAX_NS ? FSESL_SPIN_MAX_NS : est;
}

/* Takes a spinner slot; false when (online CPUs - 1) threads spin. */
static bool
cpl_spin_enter(void)
{
	unsigned int limit = cpl_spin_limit();

	if (limit == 0)
		return false;
	if (atomic_fetch_add_explicit(&cpl_spinning, 1, memory_order_relaxed) < limit)
		return true;
	atomic_fetch_sub_explicit(&cpl_spinning, 1, memory_order_relaxed);
	return false;
}

static void
cpl_spin_leave(void)
{

	atomic_fetch_sub_explicit(&cpl_spinning, 1, memory_order_relaxed);
	return;
}

void
fsesl_cpl_spin_announce(void)
{

	atomic_fetch_add_explicit(&cpl_spinning, 1, memory_order_relaxed);
	return;
}

void
fsesl_cpl_spin_withdraw(void)
{

	cpl_spin_leave();
	return;
}

static void
cpl_record_handoff(uint64_t start_ns)
{
	uint64_t d = fsesl_mono_ns() - start_ns;
	uint64_t est = atomic_load_explicit(&cpl_est_ns, memory_order_relaxed);

	if (d > FSESL_EST_CAP_NS)
		d = FSESL_EST_CAP_NS;
	/* est += (d - est) / 8, in unsigned arithmetic. */
	est = est - est / 8 + d / 8;
	atomic_store_explicit(&cpl_est_ns, est, memory_order_relaxed);
	return;
}

uint64_t
fsesl_cpl_handoff_estimate_ns(void)
{

	return atomic_load_explicit(&cpl_est_ns, memory_order_relaxed);
}

void
fsesl_cpl_spin_reset(void)
{

	atomic_store_explicit(&cpl_est_ns, FSESL_SPIN_PROBE_NS, memory_order_relaxed);
	return;
}

void
fsesl_cpl_init(struct fsesl_cpl *c, unsigned int refs, fsesl_cpl_cb cb, void *arg)
{

	atomic_init(&c->state, FSESL_CPL_PENDING);
	atomic_init(&c->refs, refs);
	c->expect_ns = 0;
	c->cb = cb;
	c->cb_arg = arg;
	return;
}

/*
 * The one place a final state is decided. On success *old is the word
 * it replaced (SLEEPING tells whether a waiter sleeps on it).
 */
static bool
cpl_decide(struct fsesl_cpl *c, uint32_t final_state, uint32_t *old)
{

	*old = atomic_load_explicit(&c->state, memory_order_relaxed);
	do {
		if (FSESL_CPL_STATE(*old) != FSESL_CPL_PENDING)
			return false;
		/* Release: publishes the request's result to the acquire loads
		 * of the state in wait()/wait_poll()/state(). Acquire on
		 * success too, so the callback sees what the waiter did. */
	} while (!atomic_compare_exchange_weak_explicit(
	    &c->state, old, final_state, memory_order_acq_rel, memory_order_relaxed));
	return true;
}

static bool
cpl_final_ok(uint32_t final_state)
{

	return final_state != FSESL_CPL_PENDING && (final_state & FSESL_CPL_SLEEPING) == 0;
}

bool
fsesl_cpl_complete(struct fsesl_cpl *c, uint32_t final_state, const struct fsesl_wait_ops *ops)
{
	uint32_t old;

	if (!cpl_final_ok(final_state) || !cpl_decide(c, final_state, &old))
		return false;
	if ((old & FSESL_CPL_SLEEPING) != 0)
		ops->wake32(&c->state, INT_MAX, ops->ctx);
	if (c->cb != NULL)
		c->cb(c, final_state, c->cb_arg);
	return true;
}

bool
fsesl_cpl_complete_batched(struct fsesl_cpl *c, uint32_t final_state, struct fsesl_wakeb_st *wb,
    fsesl_cpl_release_fn release)
{
	uint32_t old;

	if (!cpl_final_ok(final_state) || !cpl_decide(c, final_state, &old))
		return false;
	if ((old & FSESL_CPL_SLEEPING) != 0) {
		/* The batch's own reference (the TEARDOWN RULE): relaxed,
		 * because the caller's reference keeps the count above zero
		 * and the flush's acq_rel release orders the free. */
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
		fsesl_wakeb_st_add(wb, c, release);
	}
	if (c->cb != NULL)
		c->cb(c, final_state, c->cb_arg);
	return true;
}

uint32_t
fsesl_cpl_state(const struct fsesl_cpl *c)
{

	/* Acquire: pairs with the release CAS in cpl_decide(). */
	return FSESL_CPL_STATE(atomic_load_explicit(&c->state, memory_order_acquire));
}

/* Decides TIMEDOUT for the waiter, or reports what was decided first. */
static uint32_t
cpl_time_out(struct fsesl_cpl *c, const struct fsesl_wait_ops *ops)
{
	uint32_t old;

	/* The waiter itself: its own SLEEPING bit needs no wake. */
	(void)ops;
	if (cpl_decide(c, FSESL_CPL_TIMEDOUT, &old)) {
		if (c->cb != NULL)
			c->cb(c, FSESL_CPL_TIMEDOUT, c->cb_arg);
		return FSESL_CPL_TIMEDOUT;
	}
	return fsesl_cpl_state(c);
}

uint32_t
fsesl_cpl_wait(
    struct fsesl_cpl *c, const struct timespec *deadline, const struct fsesl_wait_ops *ops)
{
	uint64_t start, budget, now;
	uint32_t s, expected;
	unsigned int i;
	int rc;

	s = fsesl_cpl_state(c);
	if (s != FSESL_CPL_PENDING)
		return s;
	start = fsesl_mono_ns();
	budget = fsesl_cpl_spin_budget_ns(c);
	if (budget != 0 && cpl_spin_enter()) {
		for (;;) {
			for (i = 0; i < FSESL_SPIN_CHECK_EVERY; i++)
				fsesl_cpu_relax();
			s = fsesl_cpl_state(c);
			if (s != FSESL_CPL_PENDING) {
				cpl_spin_leave();
				cpl_record_handoff(start);
				return s;
			}
			now = fsesl_mono_ns();
			if (now - start >= budget)
				break;
		}
		cpl_spin_leave();
	}
	for (;;) {
		s = atomic_load_explicit(&c->state, memory_order_acquire);
		if (FSESL_CPL_STATE(s) != FSESL_CPL_PENDING)
			break;
		if (fsesl_deadline_passed(ops, deadline))
			return cpl_time_out(c, ops);
		if ((s & FSESL_CPL_SLEEPING) == 0) {
			expected = FSESL_CPL_PENDING;
			/* Relaxed is enough: a failure means the state moved,
			 * and we loop to read it with acquire. */
			if (!atomic_compare_exchange_strong_explicit(&c->state, &expected,
			        FSESL_CPL_PENDING | FSESL_CPL_SLEEPING, memory_order_relaxed,
			        memory_order_relaxed))
				continue;
		}
		rc = ops->wait32(
		    &c->state, FSESL_CPL_PENDING | FSESL_CPL_SLEEPING, deadline, ops->ctx);
		if (rc == -ETIMEDOUT)
			return cpl_time_out(c, ops);
		/* 0: woken, spurious, EINTR or the word changed: look again. */
	}
	cpl_record_handoff(start);
	return FSESL_CPL_STATE(s);
}

uint32_t
fsesl_cpl_wait_poll(struct fsesl_cpl *c, const struct timespec *deadline, unsigned int poll_itv_us,
    const struct fsesl_wait_ops *ops)
{
	uint32_t s;

	for (;;) {
		s = fsesl_cpl_state(c);
		if (s != FSESL_CPL_PENDING)
			return s;
		if (fsesl_deadline_passed(ops, deadline))
			return cpl_time_out(c, ops);
		ops->sleep_us(poll_itv_us, ops->ctx);
	}
}

bool
fsesl_cpl_release(struct fsesl_cpl *c)
{

	/* acq_rel: every holder's last accesses happen before the free done
	 * by the holder that drops the count to zero. */
	return atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1;
}
