/*
 * ref.c - what an fsesl_engine * is: a checked reference, not an address.
 *
 * The application holds `fsesl_engine *` values for as long as it likes,
 * copies them between threads and processes (fork), and may call with one
 * after fsesl_engine_stop(). None of that may read freed memory. So the
 * value handed out is a token naming a slot of a static table and the
 * slot's generation; only the slot (static storage, never freed) is ever
 * dereferenced before the engine is known to be alive:
 *
 *   token = generation << (SLOT_BITS + 1) | slot << 1 | 1
 *
 * The low bit keeps a token from ever looking like an aligned pointer or
 * NULL. A slot's 64-bit word holds its generation, three flags and the
 * number of callers inside the engine (the "window"):
 *
 *   63..32 generation | 30 LIVE | 29 STOPPING | 28 FORKED | 27..0 callers
 *
 * enter: one CAS that checks generation, LIVE, STOPPING and FORKED and
 * counts the caller in; leave: one decrement. stop sets STOPPING with a
 * CAS on the same word, so there is no Dekker pair to get wrong: once it
 * is set no caller gets in, and the count says who is still inside (the
 * reactor waits for it to reach 0 before its last drain). After the engine
 * is freed the slot's generation moves on, so an old token finds a
 * mismatch (FSESL_ESHUTDOWN) whatever the slot holds later.
 *
 * fork(): the child has the parent's memory but none of its threads; its
 * copy of every engine is dead. A pthread_atfork child handler marks every
 * live slot FORKED, so every call in the child fails at once with
 * FSESL_EFORKED instead of waiting for a reactor that does not exist. The
 * same handlers run liburcu-bp's fork hooks (it registers none itself), so
 * that a child may start engines of its own.
 *
 * Any thread; the child handler runs in the forking thread of the child.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include <urcu/urcu-bp.h>

#include "engine_int.h"

#define SLOT_BITS 10u
#define SLOTS (1u << SLOT_BITS) /* engines alive at once */

#define W_CALLERS 0x0fffffffull
#define W_FORKED (1ull << 28)
#define W_STOPPING (1ull << 29)
#define W_LIVE (1ull << 30)
#define W_GEN_SHIFT 32

struct fsesl_slot {
	_Atomic uint64_t word;
	struct fsesl_engine *eng; /* valid while LIVE and a caller is in */
};

static struct fsesl_slot slots[SLOTS];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_err;

/* The generation bits a token can carry (all 32 on a 64-bit target). */
#define TOKEN_GEN_MASK ((uint64_t)(UINTPTR_MAX >> (SLOT_BITS + 1)))

static inline fsesl_engine *
token_of(unsigned int idx, uint64_t gen)
{

	return (fsesl_engine *)(((uintptr_t)(gen & TOKEN_GEN_MASK) << (SLOT_BITS + 1)) |
	                        ((uintptr_t)idx << 1) | 1u);
}

/* The slot a token names and the generation it expects, or NULL. */
static struct fsesl_slot *
slot_of(const fsesl_engine *ref, uint64_t *gen)
{
	uintptr_t t = (uintptr_t)ref;

	if (!(t & 1u))
		return NULL; /* NULL, or not a token */
	*gen = (uint64_t)(t >> (SLOT_BITS + 1));
	return &slots[(t >> 1) & (SLOTS - 1)];
}

static inline bool
gen_matches(uint64_t w, uint64_t gen)
{

	return ((w >> W_GEN_SHIFT) & TOKEN_GEN_MASK) == gen;
}

/* ---- fork ---------------------------------------------------------- */

static void
fork_prepare(void)
{

	/* Quiesce liburcu-bp's call_rcu workers and take its locks, so the
	 * child inherits them in a consistent state. */
	urcu_bp_call_rcu_before_fork();
	urcu_bp_before_fork();
}

static void
fork_parent(void)
{

	urcu_bp_after_fork_parent();
	urcu_bp_call_rcu_after_fork_parent();
}

static void
fork_child(void)
{
	unsigned int i;

	urcu_bp_after_fork_child();
	urcu_bp_call_rcu_after_fork_child();
	/* Relaxed: the child has one thread (this one) until it makes more,
	 * and pthread_create orders these stores before them. */
	for (i = 0; i < SLOTS; i++) {
		uint64_t w = atomic_load_explicit(&slots[i].word, memory_order_relaxed);

		if (w & W_LIVE)
			atomic_store_explicit(&slots[i].word, w | W_FORKED, memory_order_relaxed);
	}
}

static void
atfork_register(void)
{

	atfork_err = -pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- the table ----------------------------------------------------- */

int
fsesl_ref_alloc(struct fsesl_engine *e, fsesl_engine **out)
{
	unsigned int i;
	uint64_t w;

	(void)pthread_once(&atfork_once, atfork_register);
	if (atfork_err)
		return atfork_err;
	for (i = 0; i < SLOTS; i++) {
		struct fsesl_slot *sl = &slots[i];

		w = atomic_load_explicit(&sl->word, memory_order_relaxed);
		if (w & W_LIVE)
			continue;
		/* The slot is free: nobody reads eng until LIVE is set. */
		sl->eng = e;
		/* release: eng is written before a caller's enter (acquire)
		 * can see LIVE. */
		if (!atomic_compare_exchange_strong_explicit(
		        &sl->word, &w, w | W_LIVE, memory_order_release, memory_order_relaxed))
			continue; /* another start took it */
		e->slot = sl;
		e->ref = token_of(i, w >> W_GEN_SHIFT);
		*out = e->ref;
		return 0;
	}
	return -EMFILE;
}

/*
 * The one transition of a live slot's word that callers make: check the
 * token's generation and the flags, then apply `set` (a flag) and `add`
 * (callers) in one CAS. acq_rel: acquire pairs with fsesl_ref_alloc's
 * release (eng); release orders the caller's earlier writes before stop's
 * view of the word.
 */
static int
slot_update(const fsesl_engine *ref, uint64_t set, uint64_t add, struct fsesl_engine **out)
{
	struct fsesl_slot *sl;
	uint64_t gen, w;

	sl = slot_of(ref, &gen);
	if (!sl)
		return -EINVAL;
	w = atomic_load_explicit(&sl->word, memory_order_relaxed);
	do {
		if (!(w & W_LIVE) || !gen_matches(w, gen))
			return FSESL_ESHUTDOWN; /* stopped (and maybe reused) */
		if (w & W_FORKED)
			return FSESL_EFORKED;
		if (w & W_STOPPING)
			return FSESL_ESHUTDOWN; /* stopping, or a second stop */
	} while (!atomic_compare_exchange_weak_explicit(
	    &sl->word, &w, (w | set) + add, memory_order_acq_rel, memory_order_relaxed));
	*out = sl->eng;
	return 0;
}

int
fsesl_window_enter(fsesl_engine *ref, struct fsesl_engine **out)
{

	return slot_update(ref, 0, 1, out);
}

void
fsesl_window_leave(struct fsesl_engine *e)
{

	/* release: the caller's ring push and reads of e happen before the
	 * reactor (stop) sees the count drop and frees. */
	atomic_fetch_sub_explicit(&e->slot->word, 1, memory_order_release);
}

uint32_t
fsesl_window_callers(const struct fsesl_engine *e)
{

	/* acquire: pairs with fsesl_window_leave's release. */
	return (uint32_t)(atomic_load_explicit(&e->slot->word, memory_order_acquire) & W_CALLERS);
}

int
fsesl_ref_stop(fsesl_engine *ref, struct fsesl_engine **out)
{

	/* The flag and the callers share the word: after this CAS no enter
	 * succeeds, and every one that did is counted. */
	return slot_update(ref, W_STOPPING, 0, out);
}

void
fsesl_ref_release(struct fsesl_engine *e)
{
	struct fsesl_slot *sl = e->slot;
	uint64_t w = atomic_load_explicit(&sl->word, memory_order_relaxed);

	/* The next generation, not LIVE, no caller: every token of this
	 * engine is stale from here on. release: the engine's teardown
	 * happens before a new start can take the slot. */
	sl->eng = NULL;
	atomic_store_explicit(
	    &sl->word, ((w >> W_GEN_SHIFT) + 1) << W_GEN_SHIFT, memory_order_release);
}
