/*
 * wake.h - how an I/O thread wakes the threads that sleep on their
 * replies, for the bare-blocking baseline (blocking.c).
 *
 * Two techniques, chosen per scenario, so that the baseline can always use
 * the one the engine uses and "engine vs its own technique" stays a fair
 * ratio:
 *   WAKE_FUTEX  one FUTEX_WAKE system call per reply whose waiter sleeps,
 *               made at once (the engine's hand-off before issue 15).
 *   WAKE_URING  the words to wake are collected during a read pass and
 *               woken by one io_uring_enter() carrying one
 *               IORING_OP_FUTEX_WAKE SQE per word (Linux 6.7+).
 * Nothing here depends on the engine; the ring is set up with the raw
 * system calls, so the harness needs no liburing (whose Debian 12 version
 * has no helper for that opcode anyway).
 */
#ifndef FSESL_BENCH_WAKE_H
#define FSESL_BENCH_WAKE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wake_tech {
	WAKE_FUTEX = 0,
	WAKE_URING,
};

#define WAKE_BATCH_MAX 256u /* words per io_uring_enter */

struct wake_ring; /* wake.c */

/* One per I/O thread; used only by the thread that called waker_init. */
struct waker {
	enum wake_tech tech;
	struct wake_ring *ring;
	_Atomic uint32_t *batch[WAKE_BATCH_MAX];
	unsigned n;
	uint64_t wakes; /* words woken */
	uint64_t syscalls; /* FUTEX_WAKE + io_uring_enter calls */
	uint64_t fallbacks; /* words that fell back to FUTEX_WAKE */
};

const char *wake_tech_name(enum wake_tech t);

/* Whether this process can batch futex wakes through io_uring: the
 * kernel knows IORING_OP_FUTEX_WAKE, io_uring is not disabled (sysctl,
 * seccomp), and a real wake goes through. Probed once, then cached; on
 * false, `why` says what failed. */
bool wake_uring_available(char *why, size_t cap);

/* 0, or -errno with `why` filled (WAKE_URING only; the caller decides
 * whether to fall back). Call it on the thread that will use it: the ring
 * is created single-issuer. */
int waker_init(struct waker *w, enum wake_tech t, char *why, size_t cap);
/* Wakes every sleeper on word: now (WAKE_FUTEX) or at the next flush. */
void waker_add(struct waker *w, _Atomic uint32_t *word);
/* Wakes what waker_add collected: one io_uring_enter per
 * WAKE_BATCH_MAX words. Nothing to do for WAKE_FUTEX. */
void waker_flush(struct waker *w);
void waker_fini(struct waker *w);

/* The sleeping side: FUTEX_WAIT while *word == expected, until the
 * absolute CLOCK_MONOTONIC deadline (ns). 0, or -ETIMEDOUT. Spurious
 * returns happen; callers look at the word again. */
int wake_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);

#endif /* FSESL_BENCH_WAKE_H */
