/*
 * doorbell.c - the reactor's wake-up: one eventfd and a coalescing flag.
 *
 * Overview
 *   A producer that has just pushed work rings the doorbell. Only a ring
 *   that finds the flag at 0 ("the reactor may be asleep and nobody has
 *   told it yet") pays a write(2) on the eventfd; every other ring is a
 *   fence and a load. The reactor holds the flag at 1 while it is awake, so
 *   in a busy steady state submitting costs producers no system call.
 *   Wake-ups coalesce: N rings while the reactor is asleep cost one write
 *   and one epoll wake-up (libuv's uv_async has the same property).
 *
 * Contract (the reactor's loop)
 *     epoll_wait(..., timeout)
 *     fsesl_doorbell_awake(db)        flag := 1, eventfd drained
 *     drain the rings, do the work
 *     fsesl_doorbell_prepare_sleep(db)   flag := 0   (SC exchange + fence)
 *     drain the rings AGAIN; if that found anything, do not sleep
 *     (timeout = 0), else epoll_wait
 *
 *   Why no item is stranded: take a producer P that enqueued item X and
 *   then rang. P's ring() is [enqueue X (store p_tail); fence SC; load
 *   flag]. prepare_sleep() is [exchange flag := 0 (SC); fence SC]; the
 *   re-drain after it loads p_tail. The two SC fences are totally ordered:
 *     - P's fence first: the re-drain comes after the reactor's fence, so
 *       it sees X's p_tail store and takes X. The reactor does not sleep.
 *     - the reactor's fence first: P's flag load comes after it, so P
 *       reads the 0 stored by prepare_sleep (or a later 1 stored by a
 *       producer Q whose exchange won, and Q writes the eventfd). P's
 *       exchange 0 -> 1 returns 0 and P writes the eventfd, so the
 *       reactor's epoll_wait returns at once and the next drain takes X.
 *   Either way X is taken without waiting for an unrelated event.
 *
 * Teardown: destroy() closes the eventfd; no ring() may be running or
 * start afterwards (the owner stops its producers first).
 *
 * Implementation notes
 *   The load before the exchange is libuv's trick (uv_async_send): a
 *   relaxed read of a flag that is already 1 keeps the cache line shared
 *   among producers instead of bouncing it with an RMW on every submit. The
 *   SC fence before it is what the argument above needs: the producer's
 *   enqueue must be ordered before its flag load.
 *   awake() sets the flag first and drains the eventfd second, so rings
 *   that land in between skip their write; a write that lands after the
 *   read merely causes one spare wake-up (the eventfd stays readable).
 *   The counters are statistics (relaxed): `writes` counts system calls on
 *   the submit side, `rings` counts ring() calls.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fsesl_queues.h"
#include "queues_impl.h"

int
fsesl_doorbell_init(struct fsesl_doorbell *db)
{

	db->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (db->efd < 0)
		return -errno;
	/* 0: the reactor has not said it is awake; the first ring writes. */
	atomic_init(&db->armed, 0);
	atomic_init(&db->writes, 0);
	atomic_init(&db->rings, 0);
	return 0;
}

void
fsesl_doorbell_destroy(struct fsesl_doorbell *db)
{

	if (db->efd >= 0)
		(void)close(db->efd);
	db->efd = -1;
	return;
}

int
fsesl_doorbell_fd(const struct fsesl_doorbell *db)
{

	return db->efd;
}

void
fsesl_doorbell_ring(struct fsesl_doorbell *db)
{
	uint64_t one = 1;
	ssize_t n;

	/* Statistics: relaxed, pairs with nothing. */
	atomic_fetch_add_explicit(&db->rings, 1, memory_order_relaxed);
	/* Orders the caller's enqueue before the flag load; pairs with the
	 * fence in prepare_sleep() (see "Why no item is stranded"). */
	FSESL_FENCE_SC();
	if (atomic_load_explicit(&db->armed, memory_order_relaxed) != 0)
		return;
	/* SC: pairs with prepare_sleep()'s exchange; exactly one producer
	 * sees the 0 -> 1 transition and writes. */
	if (atomic_exchange_explicit(&db->armed, 1, memory_order_seq_cst) != 0)
		return;
	atomic_fetch_add_explicit(&db->writes, 1, memory_order_relaxed); /* statistics */
	do {
		n = write(db->efd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is at its maximum: it is readable, which
	 * is all we need. */
	return;
}

void
fsesl_doorbell_awake(struct fsesl_doorbell *db)
{
	uint64_t v;
	ssize_t n;

	/* Relaxed is enough: the drains that follow are ordered by ck's own
	 * fences, and a producer that still reads 0 merely writes once. */
	atomic_store_explicit(&db->armed, 1, memory_order_relaxed);
	do {
		n = read(db->efd, &v, sizeof(v));
	} while (n < 0 && errno == EINTR);
	/* EAGAIN: nobody wrote (a timer or socket woke us). */
	return;
}

bool
fsesl_doorbell_prepare_sleep(struct fsesl_doorbell *db)
{

	/* SC exchange + SC fence: pairs with ring()'s fence and exchange. The
	 * caller's re-drain loads p_tail after this fence. */
	(void)atomic_exchange_explicit(&db->armed, 0, memory_order_seq_cst);
	FSESL_FENCE_SC();
	return true;
}
