/*
 * fsesl_queues.h - the path from worker threads to the reactor and back.
 *
 * Three primitives, each named after its concurrency contract (ck style):
 *
 *   fsesl_ring_mpsc_*   many producers (any thread), one consumer (the
 *                       reactor): a bounded ring of pointers on ck_ring.
 *   fsesl_doorbell_*    the reactor's wake-up: an eventfd plus a
 *                       coalescing flag, so a busy reactor costs producers
 *                       no system call.
 *   fsesl_cpl_*         a per-request completion: a 32-bit state word that
 *                       is also a private futex; decided once by CAS.
 *   fsesl_wakeb_st_*    the wakes one thread (the reactor) owes sleeping
 *                       waiters, batched and handed to the kernel once per
 *                       loop turn ("_st": one owning thread).
 *
 * fsesl_sq_* composes them: N ring shards + one doorbell = the engine's
 * submission queue.
 *
 * Internal to libfsesl (not installed). Uses only ck, liburing and libc.
 * Design notes and measured costs: docs/queues.md.
 */
#ifndef FSESL_QUEUES_H
#define FSESL_QUEUES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <ck_ring.h>

/* ------------------------------------------------------------------ */
/* Clock and futex operations (an ops table, as ck_ec does)             */
/* ------------------------------------------------------------------ */

/*
 * Every blocking or timed operation goes through this table so unit tests
 * can substitute fakes (count sleeps, run a fake clock, record wakes).
 */
struct fsesl_wait_ops {
	/* FUTEX_WAIT_PRIVATE on *word while it equals `expected`, until the
	 * absolute CLOCK_MONOTONIC deadline (NULL: no deadline). May return
	 * early for any reason (EINTR, spurious wake, value changed): callers
	 * always re-check the word. Returns 0 or -ETIMEDOUT. */
	int (*wait32)(
	    _Atomic uint32_t *word, uint32_t expected, const struct timespec *deadline, void *ctx);
	/* FUTEX_WAKE_PRIVATE, up to n waiters. */
	void (*wake32)(_Atomic uint32_t *word, int n, void *ctx);
	/* CLOCK_MONOTONIC now. */
	void (*now)(struct timespec *ts, void *ctx);
	/* Sleep about `us` microseconds (the compatibility wait's usleep). */
	void (*sleep_us)(unsigned us, void *ctx);
	void *ctx;
};

/* The real Linux implementation (futex(2), clock_gettime, nanosleep). */
extern const struct fsesl_wait_ops fsesl_wait_ops_linux;

/* Deadline helpers on CLOCK_MONOTONIC timespecs. */
void fsesl_deadline_after_ms(const struct fsesl_wait_ops *ops, struct timespec *out, unsigned ms);
bool fsesl_deadline_passed(const struct fsesl_wait_ops *ops, const struct timespec *d);
uint64_t fsesl_mono_ns(void);

/* ------------------------------------------------------------------ */
/* MPSC ring of pointers                                                */
/* ------------------------------------------------------------------ */

/*
 * Producers: any thread. Consumer: exactly one thread at a time.
 * Capacity is size - 1 (ck keeps one slot empty). size: power of two >= 4.
 *
 * ck's MPSC caveat: a producer that is descheduled between its reserve and
 * commit makes later producers wait until it commits. The enqueue window
 * is a handful of instructions; producers waiting for their turn spin
 * briefly and then sleep on a per-slot futex instead of spinning a whole
 * time slice (ring.c); and the engine shards producers over several
 * rings (fsesl_sq) so one stalled producer delays only its shard.
 */
struct fsesl_ring_mpsc {
	struct ck_ring ring;
	struct ck_ring_buffer *slots;
	unsigned int size;
	/* "space" futex: bumped by the consumer after it frees slots, waited
	 * on by blocking producers that found the ring full. */
	_Atomic uint32_t space_seq;
	_Atomic uint32_t space_waiters;
	/* private: one futex word per slot, for producers that sleep while
	 * an earlier producer has not committed yet (see ring.c). */
	_Atomic uint32_t *turn;
};

int fsesl_ring_mpsc_init(struct fsesl_ring_mpsc *r, unsigned int size); /* 0, -EINVAL, -ENOMEM */
void fsesl_ring_mpsc_destroy(struct fsesl_ring_mpsc *r);
/* Any thread. false when full; never blocks. */
bool fsesl_ring_mpsc_try_enqueue(struct fsesl_ring_mpsc *r, void *item);
/* Any thread. Blocks (futex on space_seq, no busy loop) while full, up to
 * the deadline (NULL: forever). 0 or -ETIMEDOUT. */
int fsesl_ring_mpsc_enqueue(struct fsesl_ring_mpsc *r, void *item, const struct timespec *deadline,
    const struct fsesl_wait_ops *ops);
/* Consumer only. false when empty. */
bool fsesl_ring_mpsc_dequeue(struct fsesl_ring_mpsc *r, void **item);
/* Any thread; a racy snapshot (exact only when nobody enqueues). */
unsigned int fsesl_ring_mpsc_count(const struct fsesl_ring_mpsc *r);
/* Consumer only, after a drain that freed slots: wakes blocked producers
 * (a syscall only when some producer announced it waits). */
void fsesl_ring_mpsc_space_released(struct fsesl_ring_mpsc *r, const struct fsesl_wait_ops *ops);
unsigned int fsesl_ring_mpsc_capacity(const struct fsesl_ring_mpsc *r);

/* ------------------------------------------------------------------ */
/* Doorbell                                                             */
/* ------------------------------------------------------------------ */

/*
 * Producers ring after enqueueing; the write(2) happens only when the flag
 * goes 0 -> 1, i.e. when the reactor may be asleep. The reactor keeps the
 * flag at 1 while it is awake, and clears it just before sleeping:
 *
 *   reactor loop:
 *     fsesl_doorbell_awake(db);            // after epoll_wait returns
 *     ... drain rings, do the work ...
 *     if (!fsesl_doorbell_prepare_sleep(db))  // clears the flag, then the
 *         timeout = 0;                        // caller re-drains: see below
 *
 * prepare_sleep() clears the flag with an atomic exchange (sequentially
 * consistent, pairs with the producers' exchange in ring()); after it
 * returns the reactor MUST drain the rings once more before epoll_wait, and
 * must not sleep if that drain found anything. So no item is stranded.
 */
struct fsesl_doorbell {
	int efd;
	_Atomic uint32_t armed; /* 1: reactor awake or already signalled */
	_Atomic uint64_t writes; /* eventfd writes: syscalls on the submit side */
	_Atomic uint64_t rings; /* ring() calls */
};

int fsesl_doorbell_init(struct fsesl_doorbell *db); /* 0 or -errno */
void fsesl_doorbell_destroy(struct fsesl_doorbell *db);
int fsesl_doorbell_fd(const struct fsesl_doorbell *db);
/* Any thread. */
void fsesl_doorbell_ring(struct fsesl_doorbell *db);
/* Reactor only: after waking; reads the eventfd if it was signalled and
 * sets the flag so producers skip their write while the reactor runs. */
void fsesl_doorbell_awake(struct fsesl_doorbell *db);
/* Reactor only: clears the flag before sleeping. Returns true. (Kept as a
 * function so the protocol above is in one place.) */
bool fsesl_doorbell_prepare_sleep(struct fsesl_doorbell *db);

/* ------------------------------------------------------------------ */
/* Submission queue: ring shards + doorbell                             */
/* ------------------------------------------------------------------ */

struct fsesl_sq {
	struct fsesl_ring_mpsc *shards;
	unsigned int n_shards;
	struct fsesl_doorbell db;
	const struct fsesl_wait_ops *ops;
	/* private, reactor only: where the next drain starts (fairness) and
	 * which shards the current drain took from (space_released). */
	unsigned int drain_next;
	unsigned char *drain_took;
};

/* n_shards 0 = one per online CPU (at least 2); ring_size per shard. */
int fsesl_sq_init(struct fsesl_sq *sq, unsigned int n_shards, unsigned int ring_size,
    const struct fsesl_wait_ops *ops);
void fsesl_sq_destroy(struct fsesl_sq *sq);
/*
 * Any thread. Picks the calling thread's shard (a thread-local index), then
 * enqueues and rings the doorbell. nonblock: -EAGAIN when the shard is
 * full; otherwise waits for space up to the deadline (-ETIMEDOUT).
 */
int fsesl_sq_submit(
    struct fsesl_sq *sq, void *item, bool nonblock, const struct timespec *deadline);
/* Reactor only: dequeues up to `max` items from all shards (round robin,
 * fair), calling fn for each; wakes blocked producers afterwards. Returns
 * the number of items. */
unsigned int fsesl_sq_drain(
    struct fsesl_sq *sq, unsigned int max, void (*fn)(void *item, void *arg), void *arg);

/* ------------------------------------------------------------------ */
/* Completion                                                           */
/* ------------------------------------------------------------------ */

/*
 * The state word: PENDING until exactly one party moves it to a final
 * state by CAS. The SLEEPING bit is set by a waiter that is about to
 * FUTEX_WAIT, so the completer issues FUTEX_WAKE only when someone sleeps.
 */
enum fsesl_cpl_state {
	FSESL_CPL_PENDING = 0,
	FSESL_CPL_DONE = 1, /* reply delivered */
	FSESL_CPL_TIMEDOUT = 2, /* deadline passed first */
	FSESL_CPL_CANCELLED = 3, /* engine stopping, request withdrawn */
	FSESL_CPL_FAILED = 4, /* error (disconnect, refused, ...) */
};
#define FSESL_CPL_SLEEPING 0x80000000u
#define FSESL_CPL_STATE(w) ((w) & ~FSESL_CPL_SLEEPING)

struct fsesl_cpl;
typedef void (*fsesl_cpl_cb)(struct fsesl_cpl *c, uint32_t state, void *arg);

/*
 * TEARDOWN RULE (who frees the request):
 *
 * A request that embeds a fsesl_cpl starts with refs = 2: one for the
 * submitter (waiter), one for the reactor. Each side calls
 * fsesl_cpl_release() exactly once when it is done with the memory; the
 * call that drops the count to zero returns true and that caller frees.
 *
 *  - Reply first: the reactor stores the result in the request, then
 *    fsesl_cpl_complete(DONE) (release) - then releases its ref. The
 *    waiter sees DONE (acquire), reads the result, releases; last frees.
 *  - Timeout first: the waiter's CAS to TIMEDOUT wins; it returns the
 *    timeout to its caller and releases its ref. The request stays in the
 *    connection's FIFO; when its late reply arrives the reactor's
 *    complete() fails (returns false), the reactor discards the reply,
 *    releases, and the last release frees. The waiter never frees memory
 *    the reactor still points to; a late reply never touches freed memory.
 *  - Async (callback) requests: refs = 1 (the reactor's); the callback
 *    runs exactly once, from the party that won the CAS, then the reactor
 *    releases when the request leaves its FIFO.
 *  - Batched wake (fsesl_cpl_complete_batched): the wake of a sleeping
 *    waiter is not issued inside the completion but by a later
 *    fsesl_wakeb_st_flush(), after the completer may already have released
 *    its own reference. So the batch holds a reference of its own: the
 *    completion takes one more (refs + 1) before it records the word, and
 *    the flush drops it only after the wake's system call has returned,
 *    freeing through the recorded release function if it was the last.
 *    Proof that no wake touches freed memory: the count was >= 1 when the
 *    batch took its reference (the completer's own, held across the call),
 *    so it cannot have reached zero before; from then on it cannot reach
 *    zero until the batch's release, which follows the wake in program
 *    order on the owning thread. The waiter may wake early (timeout,
 *    EINTR, spurious), see the final state, release and return meanwhile:
 *    that is its ordinary path and frees nothing the batch still names.
 *    The wake itself never writes the word: FUTEX_WAKE on a private futex
 *    only hashes (mm, address); the batch stores the address and nothing
 *    else, and io_uring's FUTEX_WAKE runs that same futex_wake() inline in
 *    io_uring_enter() (it never returns -EAGAIN, so it is never punted to
 *    a worker that could run after the release).
 */
struct fsesl_cpl {
	_Atomic uint32_t state; /* futex word */
	_Atomic uint32_t refs;
	/* The waiter's expectation of how long its reply takes, in ns (0:
	 * unknown): set by the submitting thread before it submits, read
	 * only by that thread's wait (the wait policy, completion.c). */
	uint32_t expect_ns;
	fsesl_cpl_cb cb; /* NULL for blocking waiters */
	void *cb_arg;
};

/* Frees the object that embeds c (the last reference was dropped). */
typedef void (*fsesl_cpl_release_fn)(struct fsesl_cpl *c);

void fsesl_cpl_init(struct fsesl_cpl *c, unsigned int refs, fsesl_cpl_cb cb, void *arg);
/*
 * Any thread: moves PENDING -> final (DONE, TIMEDOUT, CANCELLED, FAILED).
 * Returns true if this call decided the outcome; then it wakes a sleeping
 * waiter (FUTEX_WAKE only if the SLEEPING bit was set) or runs the
 * callback, once. Returns false if the outcome was already decided.
 * Stores to the request made before this call are visible to whoever
 * observes the final state (release; pairs with the acquire in wait).
 */
bool fsesl_cpl_complete(
    struct fsesl_cpl *c, uint32_t final_state, const struct fsesl_wait_ops *ops);
/*
 * The submitter: waits for the final state. Spins only while spinning
 * pays (the wait policy, completion.c: fewer spinners than online CPUs,
 * the reply due soon by c->expect_ns or, when that is 0, by recent
 * hand-off times), then sets SLEEPING and FUTEX_WAITs with the remaining
 * time; loops on EINTR and spurious wakes. At the deadline it tries to
 * CAS PENDING -> TIMEDOUT itself. Returns the final state (whoever
 * decided it).
 */
uint32_t fsesl_cpl_wait(
    struct fsesl_cpl *c, const struct timespec *deadline, const struct fsesl_wait_ops *ops);
/*
 * The compatibility wait (OpenSIPS): checks the state, sleeps
 * poll_itv_us via ops->sleep_us, repeats; at the deadline CASes to
 * TIMEDOUT. Same results as fsesl_cpl_wait(), only slower.
 */
uint32_t fsesl_cpl_wait_poll(struct fsesl_cpl *c, const struct timespec *deadline,
    unsigned int poll_itv_us, const struct fsesl_wait_ops *ops);
/* Non-blocking look (acquire). */
uint32_t fsesl_cpl_state(const struct fsesl_cpl *c);
/* Drops one reference; true if it was the last (caller frees). */
bool fsesl_cpl_release(struct fsesl_cpl *c);
/*
 * The adaptive spin's current estimate of a hand-off (ns, process-wide,
 * relaxed): what fsesl_cpl_wait() uses to size its spin. For benches and
 * stats; fsesl_cpl_spin_reset() forgets it (tests, benches).
 */
uint64_t fsesl_cpl_handoff_estimate_ns(void);
void fsesl_cpl_spin_reset(void);
/* Threads inside the spin phase of fsesl_cpl_wait() right now, and the
 * most the policy lets spin at once (online CPUs - 1). Relaxed reads. */
unsigned int fsesl_cpl_spinners(void);
unsigned int fsesl_cpl_spinners_max(void);
/* Another thread of the process starts or stops a spin of its own (the
 * reactor's spin poll): it counts as a spinner, without a limit, so that
 * waiters leave it the CPUs it needs. */
void fsesl_cpl_spin_announce(void);
void fsesl_cpl_spin_withdraw(void);
/* What fsesl_cpl_wait() on c would spin for, ns, if a spinner slot is
 * free (0: it sleeps at once). For tests and benches. */
uint64_t fsesl_cpl_spin_budget_ns(const struct fsesl_cpl *c);

/* ------------------------------------------------------------------ */
/* Wake batch (one owning thread)                                       */
/* ------------------------------------------------------------------ */

/*
 * The wakes that one thread, the owner (the reactor), owes to sleeping
 * waiters, collected while it works and handed to the kernel together:
 *
 *   reactor turn:
 *     ... read pass: fsesl_cpl_complete_batched(c, DONE, wb, free_fn) ...
 *     fsesl_wakeb_st_flush(wb);    // once, before anything that sleeps
 *
 * "_st": single-threaded. Every function but the counters' readers runs
 * on the owner only; nothing else in the struct is shared. The completion
 * CAS, the pinning reference and the waiter's side are what other threads
 * meet, and they are fsesl_cpl's (see the TEARDOWN RULE).
 *
 * Backends, chosen at init and demoted for good on the first error:
 *   FSESL_WAKEB_URING  one IORING_OP_FUTEX_WAKE SQE per word (no CQE on
 *                      success), one io_uring_enter() per flush. Linux
 *                      >= 6.7; detected at run time by probing the opcode
 *                      and running one test wake.
 *   FSESL_WAKEB_FUTEX  one FUTEX_WAKE_PRIVATE system call per word, through
 *                      ops->wake32 (older kernels, io_uring disabled by the
 *                      kernel.io_uring_disabled sysctl or by seccomp, any
 *                      error from the ring).
 * Capacity: `cap` words, the ring's SQ size; a completion that finds the
 * batch full flushes it first, so the ring never overflows.
 */
enum fsesl_wakeb_backend {
	FSESL_WAKEB_FUTEX = 0,
	FSESL_WAKEB_URING = 1,
};

/* fsesl_wakeb_st_init() flags */
#define FSESL_WAKEB_FUTEX_ONLY 0x1u /* never try io_uring (the fallback) */

struct fsesl_wakeb_entry {
	struct fsesl_cpl *c;
	fsesl_cpl_release_fn release;
};

struct fsesl_wakeb_st {
	struct fsesl_wakeb_entry *v;
	unsigned int n, cap;
	_Atomic int backend; /* enum fsesl_wakeb_backend; read by anyone */
	void *uring; /* struct io_uring *, URING backend only */
	bool inject_error; /* tests: the next io_uring flush fails */
	const struct fsesl_wait_ops *ops;
	/* Counters: written by the owner (relaxed), read by anyone. */
	_Atomic uint64_t wakes; /* words woken (one FUTEX_WAKE each) */
	_Atomic uint64_t flushes; /* flushes that had words to wake */
	_Atomic uint64_t syscalls; /* io_uring_enter or FUTEX_WAKE calls */
	_Atomic uint64_t fallbacks; /* URING -> FUTEX demotions (0 or 1) */
};

/*
 * cap: words per batch (rounded up to a power of two, 8..4096; 0 = 256).
 * Returns 0 or -ENOMEM; never fails for want of io_uring (the backend is
 * then FSESL_WAKEB_FUTEX). Call it on the owning thread.
 */
int fsesl_wakeb_st_init(struct fsesl_wakeb_st *wb, unsigned int cap, unsigned int flags,
    const struct fsesl_wait_ops *ops);
/* Owner: flushes what is left, then frees the ring and the array. */
void fsesl_wakeb_st_destroy(struct fsesl_wakeb_st *wb);
/* Owner: wakes every recorded word (one io_uring_enter, or one
 * FUTEX_WAKE each), then drops the batch's references. */
void fsesl_wakeb_st_flush(struct fsesl_wakeb_st *wb);
/* Owner: words recorded and not flushed yet. */
static inline unsigned int
fsesl_wakeb_st_pending(const struct fsesl_wakeb_st *wb)
{

	return wb->n;
}
/* Any thread (relaxed): the backend in use now. */
enum fsesl_wakeb_backend fsesl_wakeb_backend(const struct fsesl_wakeb_st *wb);

/*
 * The owner, holding a reference to c: as fsesl_cpl_complete(), except
 * that a sleeping waiter's wake is recorded in wb (with a reference of
 * its own, dropped by the flush, which calls release(c) if it was the
 * last) instead of issued now. Callbacks run now, as in complete().
 */
bool fsesl_cpl_complete_batched(struct fsesl_cpl *c, uint32_t final_state,
    struct fsesl_wakeb_st *wb, fsesl_cpl_release_fn release);

#endif /* FSESL_QUEUES_H */
