/*
 * queues_impl.h - private helpers shared by the queues/ sources.
 *
 * Only macros and static inlines; nothing here is part of any contract.
 */
#ifndef FSESL_QUEUES_IMPL_H
#define FSESL_QUEUES_IMPL_H

#include <stdatomic.h>

#include "fsesl_queues.h"

#if defined(__SANITIZE_THREAD__)
#define FSESL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FSESL_TSAN 1
#endif
#endif

#ifdef FSESL_TSAN
/*
 * ThreadSanitizer does not model atomic_thread_fence() (GCC even warns
 * about it under -Wtsan), but it treats every seq_cst RMW as a total-order
 * synchronisation point. A seq_cst RMW on one shared dummy word is the
 * closest thing it understands, so TSan builds use that instead.
 */
extern _Atomic unsigned int fsesl_tsan_fence_word;
#define FSESL_FENCE_SC()                                                                           \
	((void)atomic_fetch_add_explicit(&fsesl_tsan_fence_word, 0, memory_order_seq_cst))
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define FSESL_TSAN_RELEASE(p) __tsan_release(p)
#define FSESL_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define FSESL_FENCE_SC() atomic_thread_fence(memory_order_seq_cst)
#define FSESL_TSAN_RELEASE(p) ((void)(p))
#define FSESL_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* A pause instruction for spin loops (ck's), so the sibling hyper-thread
 * and the memory system are not flooded while we wait. */
#include <ck_pr.h>
#define fsesl_cpu_relax() ck_pr_stall()

/* wakebatch.c: records c (already pinned by the caller) in wb, flushing
 * first when wb is full. Owner thread only. */
void fsesl_wakeb_st_add(
    struct fsesl_wakeb_st *wb, struct fsesl_cpl *c, fsesl_cpl_release_fn release);

#endif /* FSESL_QUEUES_IMPL_H */
