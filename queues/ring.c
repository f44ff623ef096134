/*
 * ring.c - a bounded MPSC ring of pointers on ck_ring, with a futex for
 * producers that must wait for space.
 *
 * Overview
 *   Producers (any thread) push pointers; one consumer (the reactor) pops
 *   them. The fast path is ck_ring_enqueue_mpsc()/ck_ring_dequeue_mpsc():
 *   no lock, no system call. When the ring is full a producer either gives
 *   up (try_enqueue: false) or sleeps on the `space_seq` futex until the
 *   consumer says it freed slots (fsesl_ring_mpsc_space_released()).
 *
 * Contract
 *   - size is a power of two >= 4; capacity is size - 1 (ck keeps one slot
 *     empty to tell "full" from "empty").
 *   - Nothing is dropped: enqueue either stores the item (0 / true) or
 *     gives it back to the caller (-ETIMEDOUT / false).
 *   - Items from one producer come out in the order it pushed them.
 *   - The consumer must call space_released() after a drain that took
 *     items, or blocked producers sleep until their deadline.
 *   - Teardown: destroy() only when no producer can call enqueue any more
 *     and none is inside it (the owner joins or stops its producers
 *     first); items still queued are the owner's to drain and free.
 *
 * Implementation notes
 *   The space wait is the classic announce-then-recheck handshake (a
 *   Dekker pair):
 *
 *     producer                          consumer
 *     seq = load(space_seq)             dequeue (ck stores c_head)
 *     waiters++            (SC)         space_seq++          (SC)
 *     fence(SC)                         fence(SC)
 *     retry enqueue (loads c_head)      if (load(waiters)) FUTEX_WAKE
 *     FUTEX_WAIT(space_seq, seq)
 *
 *   Either the producer's retry sees the freed slot, or the consumer sees
 *   the announcement and wakes; and a bump of space_seq between the
 *   producer's load and its FUTEX_WAIT makes the wait return at once,
 *   because the kernel compares the word with `seq` under its own lock. So
 *   a producer never sleeps past a release that happened after it found the
 *   ring full. The consumer pays a system call only while some producer is
 *   actually waiting (space_waiters > 0).
 *
 *   ck's MPSC caveat: a producer that has reserved a slot (CAS on p_head)
 *   but not yet committed it (store to p_tail) makes every later producer
 *   on the same ring spin in _ck_ring_enqueue_commit_mp() until it commits.
 *   If it is descheduled in that window, ck's pause loop spins for the
 *   rest of a time slice, and with more producers than CPUs that becomes a
 *   convoy. Three things keep this acceptable: the window holds one pointer
 *   store and the wait for our turn, nothing slow; that wait spins briefly
 *   and then sleeps on a futex until the predecessor hands the turn over
 *   (ring_wait_turn(), using ck's reserve/commit API so ck's own commit
 *   never has to spin); and the submission queue
 *   shards producers over several rings, so a descheduled producer stalls
 *   only the threads of its shard.
 *
 *   ck's atomics are inline assembly that ThreadSanitizer cannot see. In a
 *   TSan build we tell it about the hand-off explicitly: a release on the
 *   ring before each enqueue, an acquire after each dequeue. That orders
 *   the item's contents; the slot copies (ck's in dequeue, ours in
 *   fsesl_ring_slot_store()) remain invisible to TSan's happens-before and
 *   are covered by tests/tsan.supp.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "fsesl_queues.h"
#include "queues_impl.h"

/* About 1-5 us of pause instructions: a producer that is merely slower
 * (not preempted) commits well within that. */
#define FSESL_RING_SPINS_BEFORE_SLEEP 256u

#define tsan_release(p) FSESL_TSAN_RELEASE(p)
#define tsan_acquire(p) FSESL_TSAN_ACQUIRE(p)

#ifdef FSESL_TSAN
_Atomic unsigned int fsesl_tsan_fence_word;
#endif

int
fsesl_ring_mpsc_init(struct fsesl_ring_mpsc *r, unsigned int size)
{

	if (r == NULL || size < 4 || (size & (size - 1)) != 0 || size > (1u << 30))
		return -EINVAL;
	/* ck wants the slot array aligned to nothing in particular, but a
	 * cache-line start keeps slot i and the ring header apart. */
	r->slots = aligned_alloc(64, ((size_t)size * sizeof(*r->slots) + 63) & ~(size_t)63);
	if (r->slots == NULL)
		return -ENOMEM;
	r->turn = calloc(size, sizeof(*r->turn));
	if (r->turn == NULL) {
		free(r->slots);
		r->slots = NULL;
		return -ENOMEM;
	}
	ck_ring_init(&r->ring, size);
	r->size = size;
	atomic_init(&r->space_seq, 0);
	atomic_init(&r->space_waiters, 0);
	return 0;
}

void
fsesl_ring_mpsc_destroy(struct fsesl_ring_mpsc *r)
{

	if (r == NULL)
		return;
	free(r->slots);
	free(r->turn);
	r->slots = NULL;
	r->turn = NULL;
	return;
}

/*
 * Our turn to commit comes when every earlier ticket has committed (ck
 * publishes slots in ticket order). ck's own commit waits for that with a
 * bare pause loop. If the producer holding the previous ticket has been
 * preempted, that loop burns the rest of this thread's time slice, and
 * with more producers than CPUs they form a convoy in which every commit
 * costs scheduler ticks (measured: 64 producers on 2 CPUs through one
 * 64-slot ring did not finish 128k items in 10 minutes). sched_yield()
 * does not cure it: CFS keeps running the yielders, whose vruntime is
 * lower than the preempted producer's.
 *
 * So we wait here first, and ck's commit then finds p_tail == ticket. A
 * short spin covers a predecessor that is merely slower; after it, the
 * waiter for ticket t sleeps on the futex turn[t & mask] and the producer
 * that commits t - 1 wakes exactly that waiter (a chained hand-off, like
 * an MCS lock's). Sleepers take no CPU, so the preempted predecessor gets
 * one. turn[] has one word per slot: tickets t and t + size are never
 * outstanding together (capacity is size - 1), so each word has at most
 * one sleeper; a late wake-up meant for an earlier ticket is just a
 * spurious return that the loop re-checks.
 *
 * The lost wake-up argument is the usual Dekker pair:
 *   waiter:    turn[t] = 1; fence(SC); load p_tail; FUTEX_WAIT(turn[t], 1)
 *   committer: store p_tail = t (ck); fence(SC); load turn[t]; if 1: clear,
 *              FUTEX_WAKE(turn[t], 1)
 * Either the waiter sees p_tail == t, or the committer sees the flag; and
 * a clear between the waiter's load and its FUTEX_WAIT makes the wait
 * return at once (the kernel compares the word with 1).
 */
static void
ring_wait_turn(struct fsesl_ring_mpsc *r, unsigned int ticket)
{
	_Atomic uint32_t *flag = &r->turn[ticket & (r->size - 1)];
	unsigned int spins;

	for (spins = 0; spins < FSESL_RING_SPINS_BEFORE_SLEEP; spins++) {
		/* ck_pr_load_uint: the same load ck's commit loop does. */
		if (ck_pr_load_uint(&r->ring.p_tail) == ticket)
			return;
		fsesl_cpu_relax();
	}
	for (;;) {
		atomic_store_explicit(flag, 1, memory_order_relaxed);
		/* Pairs with the fence in ring_pass_turn(). */
		FSESL_FENCE_SC();
		if (ck_pr_load_uint(&r->ring.p_tail) == ticket)
			break;
		fsesl_wait_ops_linux.wait32(flag, 1, NULL, NULL);
	}
	/* Relaxed: the flag is only a hint to the committer of ticket - 1; a
	 * stale 1 costs at most one spurious wake of this slot's next
	 * sleeper, which re-checks p_tail. */
	atomic_store_explicit(flag, 0, memory_order_relaxed);
	return;
}

/* After committing `ticket`: wake the producer waiting for ticket + 1. */
static void
ring_pass_turn(struct fsesl_ring_mpsc *r, unsigned int ticket)
{
	_Atomic uint32_t *next = &r->turn[(ticket + 1) & (r->size - 1)];

	/* Orders ck's p_tail store before the flag load; pairs with the fence
	 * in ring_wait_turn(). */
	FSESL_FENCE_SC();
	if (atomic_load_explicit(next, memory_order_relaxed) == 0)
		return;
	/* Clear before the wake: a sleeper that was about to FUTEX_WAIT on 1
	 * then returns at once instead of missing this wake. */
	atomic_store_explicit(next, 0, memory_order_relaxed);
	fsesl_wait_ops_linux.wake32(next, 1, NULL);
	return;
}

/*
 * The slot store between reserve and commit. Its own function so that the
 * TSan suppression for it (tests/tsan.supp) names exactly this store: the
 * slot's previous reader (the consumer's copy in ck) is ordered before it
 * only through ck's c_head, which TSan cannot see.
 */
static inline void
fsesl_ring_slot_store(void **slot, void *item)
{

	*slot = item;
	return;
}

bool
fsesl_ring_mpsc_try_enqueue(struct fsesl_ring_mpsc *r, void *item)
{
	unsigned int ticket;
	void **slot;

	/* TSan only: pairs with tsan_acquire() in dequeue. */
	tsan_release(r);
	/* Reserve (CAS on p_head) ... commit (store to p_tail): nothing slow
	 * in between but the wait for our turn, see ring_wait_turn(). */
	slot = ck_ring_enqueue_reserve_mpsc(&r->ring, r->slots, &ticket);
	if (slot == NULL)
		return false;
	fsesl_ring_slot_store(slot, item);
	ring_wait_turn(r, ticket);
	/* ck orders the slot store before the p_tail store that publishes it
	 * (ck_pr_fence_store in _ck_ring_enqueue_commit_mp); the load fence
	 * in the consumer's dequeue pairs with it. */
	ck_ring_enqueue_commit_mpsc(&r->ring, ticket);
	ring_pass_turn(r, ticket);
	return true;
}

int
fsesl_ring_mpsc_enqueue(struct fsesl_ring_mpsc *r, void *item, const struct timespec *deadline,
    const struct fsesl_wait_ops *ops)
{
	uint32_t seq;
	int rc;

	for (;;) {
		if (fsesl_ring_mpsc_try_enqueue(r, item))
			return 0;
		/* Acquire: pairs with the consumer's SC increment, so a seq
		 * value that already counts a release also shows its freed
		 * slot to the retry below. */
		seq = atomic_load_explicit(&r->space_seq, memory_order_acquire);
		/* Announce, then look again (the Dekker pair in the header
		 * comment): pairs with the consumer's fence + waiters load. */
		atomic_fetch_add_explicit(&r->space_waiters, 1, memory_order_seq_cst);
		FSESL_FENCE_SC();
		if (fsesl_ring_mpsc_try_enqueue(r, item)) {
			/* Relaxed: a stale count costs the consumer one
			 * needless wake, never a missed one. */
			atomic_fetch_sub_explicit(&r->space_waiters, 1, memory_order_relaxed);
			return 0;
		}
		if (fsesl_deadline_passed(ops, deadline)) {
			atomic_fetch_sub_explicit(&r->space_waiters, 1, memory_order_relaxed);
			return -ETIMEDOUT;
		}
		rc = ops->wait32(&r->space_seq, seq, deadline, ops->ctx);
		atomic_fetch_sub_explicit(&r->space_waiters, 1, memory_order_relaxed);
		if (rc == -ETIMEDOUT) {
			/* One last look: space may have come with the deadline. */
			if (fsesl_ring_mpsc_try_enqueue(r, item))
				return 0;
			return -ETIMEDOUT;
		}
	}
}

bool
fsesl_ring_mpsc_dequeue(struct fsesl_ring_mpsc *r, void **item)
{

	if (!ck_ring_dequeue_mpsc(&r->ring, r->slots, item))
		return false;
	/* TSan only: pairs with tsan_release() in try_enqueue. */
	tsan_acquire(r);
	return true;
}

void
fsesl_ring_mpsc_space_released(struct fsesl_ring_mpsc *r, const struct fsesl_wait_ops *ops)
{

	/* SC increment + fence, then the waiters load: the consumer half of
	 * the Dekker pair (pairs with the producer's announce + fence). The
	 * c_head stores made by the dequeues come before the fence. */
	unsigned int free_slots;

	atomic_fetch_add_explicit(&r->space_seq, 1, memory_order_seq_cst);
	FSESL_FENCE_SC();
	if (atomic_load_explicit(&r->space_waiters, memory_order_relaxed) == 0)
		return;
	/* Wake as many waiters as there are free slots, not all of them: a
	 * herd of 60 producers woken for 3 slots costs 57 futile syscalls
	 * (measured: 8.8 s instead of ~1 s for 64 producers on a 4-slot
	 * ring). Waking fewer loses nothing: a woken waiter fails its retry
	 * only if the ring is full again, and then the consumer will drain
	 * and release again; announced waiters not yet asleep see space_seq
	 * changed and retry without being woken. */
	free_slots = fsesl_ring_mpsc_capacity(r) - fsesl_ring_mpsc_count(r);
	ops->wake32(&r->space_seq, free_slots == 0 ? 1 : (int)free_slots, ops->ctx);
	return;
}

unsigned int
fsesl_ring_mpsc_capacity(const struct fsesl_ring_mpsc *r)
{

	return r->size - 1;
}

unsigned int
fsesl_ring_mpsc_count(const struct fsesl_ring_mpsc *r)
{

	return ck_ring_size(&r->ring);
}
