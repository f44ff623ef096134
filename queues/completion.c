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
 *   Adaptive spin: a futex sleep/wake round trip across CPUs costs tens of
 *   microseconds (~24 us measured here) while a hand-off between spinning
 *   threads costs ~0.15 us. The waiter therefore spins first, for a budget
 *   derived from an exponentially weighted moving average (1/8 weight) of
 *   recent wait durations, kept process-wide in one relaxed atomic (a
 *   racy read-modify-write that loses an update now and then, which only
 *   blurs a heuristic). If recent hand-offs were quick (estimate below
 *   FSESL_SPIN_MAX_NS) it spins up to twice the estimate, capped; if they
 *   were slow (a FreeSWITCH round trip is ~100 us) spinning would only
 *   burn a CPU the reactor may need, so it spins a short probe
 *   (FSESL_SPIN_PROBE_NS), which is enough to notice when hand-offs become
 *   quick again. On a single-CPU machine it never spins. The spin uses
 *   the real monotonic clock, not ops->now, so a fake clock in a test can
 *   never turn it into an endless loop.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "fsesl_queues.h"
#include "queues_impl.h"

#define FSESL_SPIN_MAX_NS 50000u /* never spin longer than this */
#define FSESL_SPIN_PROBE_NS 2000u /* spin when hand-offs are slow */
#define FSESL_SPIN_CHECK_EVERY 16u /* pauses between clock reads */
#define FSESL_EST_CAP_NS 10000000u /* one outlier must not dominate */

/* Process-wide estimate of a hand-off, ns. Relaxed: a heuristic only, no
 * other memory is published through it. Starts at the probe value. */
static _Atomic uint64_t cpl_est_ns = FSESL_SPIN_PROBE_NS;
/* -1 unknown, 0 single CPU (never spin), 1 spin allowed. */
static _Atomic int cpl_can_spin = -1;

static bool
cpl_spin_allowed(void)
{
	int v = atomic_load_explicit(&cpl_can_spin, memory_order_relaxed);

	if (v < 0) {
		v = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0;
		atomic_store_explicit(&cpl_can_spin, v, memory_order_relaxed);
	}
	return v != 0;
}

static uint64_t
cpl_spin_budget_ns(void)
{
	uint64_t est = atomic_load_explicit(&cpl_est_ns, memory_order_relaxed);

	if (est >= FSESL_SPIN_MAX_NS)
		return FSESL_SPIN_PROBE_NS;
	est = 2 * est + 1000;
	return est > FSESL_SPIN_MAX_NS ? FSESL_SPIN_MAX_NS : est;
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
	c->cb = cb;
	c->cb_arg = arg;
	return;
}

/*
 * The one place a final state is decided. `wake` is false when the caller
 * is the waiter itself (its own SLEEPING bit needs no FUTEX_WAKE).
 */
static bool
cpl_decide(struct fsesl_cpl *c, uint32_t final_state, const struct fsesl_wait_ops *ops, bool wake)
{
	uint32_t old = atomic_load_explicit(&c->state, memory_order_relaxed);

	do {
		if (FSESL_CPL_STATE(old) != FSESL_CPL_PENDING)
			return false;
		/* Release: publishes the request's result to the acquire loads
		 * of the state in wait()/wait_poll()/state(). Acquire on
		 * success too, so the callback sees what the waiter did. */
	} while (!atomic_compare_exchange_weak_explicit(
	    &c->state, &old, final_state, memory_order_acq_rel, memory_order_relaxed));
	if (wake && (old & FSESL_CPL_SLEEPING) != 0)
		ops->wake32(&c->state, INT_MAX, ops->ctx);
	if (c->cb != NULL)
		c->cb(c, final_state, c->cb_arg);
	return true;
}

bool
fsesl_cpl_complete(struct fsesl_cpl *c, uint32_t final_state, const struct fsesl_wait_ops *ops)
{

	if (final_state == FSESL_CPL_PENDING || (final_state & FSESL_CPL_SLEEPING) != 0)
		return false;
	return cpl_decide(c, final_state, ops, true);
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

	if (cpl_decide(c, FSESL_CPL_TIMEDOUT, ops, false))
		return FSESL_CPL_TIMEDOUT;
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
	if (cpl_spin_allowed()) {
		budget = cpl_spin_budget_ns();
		for (;;) {
			for (i = 0; i < FSESL_SPIN_CHECK_EVERY; i++)
				fsesl_cpu_relax();
			s = fsesl_cpl_state(c);
			if (s != FSESL_CPL_PENDING) {
				cpl_record_handoff(start);
				return s;
			}
			now = fsesl_mono_ns();
			if (now - start >= budget)
				break;
		}
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
