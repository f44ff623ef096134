/*
 * sq.c - the engine's submission queue: N MPSC ring shards + one doorbell.
 *
 * Overview
 *   Worker threads submit request pointers; the reactor drains them. Each
 *   thread sticks to one shard, chosen round robin the first time it
 *   submits (a thread-local ticket), so producers spread evenly over the
 *   shards and one thread's submissions stay in order (they all go through
 *   one FIFO ring). Every successful enqueue rings the doorbell; the
 *   doorbell coalesces, so a busy reactor costs submitters no syscall.
 *
 * Contract
 *   - submit(): any thread. 0 = queued (the reactor will see it); -EAGAIN
 *     (nonblock, shard full) or -ETIMEDOUT (deadline passed while the
 *     shard stayed full) = NOT queued, the caller still owns the item.
 *   - drain(): the reactor only (one consumer per ring). Calls fn for up
 *     to `max` items, fairly over the shards, then wakes producers blocked
 *     on the shards it took from.
 *   - Order is kept per submitting thread, not across threads.
 *   - Teardown: destroy() after every submitter has returned and none can
 *     start; the reactor drains what is left (and completes those requests
 *     as CANCELLED, per the completion TEARDOWN RULE) before destroy().
 *
 * Implementation notes
 *   Why shard: ck's MPSC enqueue commits in ticket order, so a producer
 *   preempted between its reserve and commit stalls every later producer
 *   of that ring. With a shard per CPU (the default) a stall holds up only
 *   the threads mapped to that shard, and fewer producers share each ring's
 *   p_head cache line.
 *   drain() takes one item per shard per round so a flooding thread can
 *   not starve the others, and starts each drain where the last one
 *   stopped.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "fsesl_queues.h"

/* Process-wide: the n-th thread that ever submits gets ticket n. Relaxed:
 * only uniqueness matters, not ordering with anything else. */
static _Atomic unsigned int sq_next_ticket;
static _Thread_local unsigned int sq_ticket = UINT_MAX;

static unsigned int
sq_caller_ticket(void)
{

	if (sq_ticket == UINT_MAX)
		sq_ticket = atomic_fetch_add_explicit(&sq_next_ticket, 1, memory_order_relaxed) %
		            (UINT_MAX - 1);
	return sq_ticket;
}

int
fsesl_sq_init(struct fsesl_sq *sq, unsigned int n_shards, unsigned int ring_size,
    const struct fsesl_wait_ops *ops)
{
	unsigned int i;
	long ncpu;
	int rc;

	if (sq == NULL || ops == NULL)
		return -EINVAL;
	if (n_shards == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		n_shards = ncpu < 2 ? 2 : (ncpu > 256 ? 256 : (unsigned int)ncpu);
	}
	if (n_shards > 4096)
		return -EINVAL;
	sq->ops = ops;
	sq->n_shards = n_shards;
	sq->drain_next = 0;
	sq->shards = calloc(n_shards, sizeof(*sq->shards));
	sq->drain_took = calloc(n_shards, 1);
	if (sq->shards == NULL || sq->drain_took == NULL) {
		rc = -ENOMEM;
		goto out_free_arrays;
	}
	for (i = 0; i < n_shards; i++) {
		rc = fsesl_ring_mpsc_init(&sq->shards[i], ring_size);
		if (rc != 0)
			goto out_destroy_shards;
	}
	rc = fsesl_doorbell_init(&sq->db);
	if (rc != 0)
		goto out_destroy_shards;
	return 0;

out_destroy_shards:
	while (i-- > 0)
		fsesl_ring_mpsc_destroy(&sq->shards[i]);
out_free_arrays:
	free(sq->shards);
	free(sq->drain_took);
	sq->shards = NULL;
	sq->drain_took = NULL;
	sq->n_shards = 0;
	return rc;
}

void
fsesl_sq_destroy(struct fsesl_sq *sq)
{
	unsigned int i;

	if (sq == NULL || sq->shards == NULL)
		return;
	for (i = 0; i < sq->n_shards; i++)
		fsesl_ring_mpsc_destroy(&sq->shards[i]);
	fsesl_doorbell_destroy(&sq->db);
	free(sq->shards);
	free(sq->drain_took);
	sq->shards = NULL;
	sq->drain_took = NULL;
	sq->n_shards = 0;
	return;
}

int
fsesl_sq_submit(struct fsesl_sq *sq, void *item, bool nonblock, const struct timespec *deadline)
{
	struct fsesl_ring_mpsc *r = &sq->shards[sq_caller_ticket() % sq->n_shards];
	int rc;

	if (!fsesl_ring_mpsc_try_enqueue(r, item)) {
		if (nonblock)
			return -EAGAIN;
		/* The ring is full because earlier items are queued, and each
		 * of those rang; the reactor is already on its way. */
		rc = fsesl_ring_mpsc_enqueue(r, item, deadline, sq->ops);
		if (rc != 0)
			return rc;
	}
	fsesl_doorbell_ring(&sq->db);
	return 0;
}

unsigned int
fsesl_sq_drain(struct fsesl_sq *sq, unsigned int max, void (*fn)(void *item, void *arg), void *arg)
{
	unsigned int n = 0, i, idx, got_in_round;
	void *item;

	while (n < max) {
		got_in_round = 0;
		for (i = 0; i < sq->n_shards && n < max; i++) {
			idx = (sq->drain_next + i) % sq->n_shards;
			if (!fsesl_ring_mpsc_dequeue(&sq->shards[idx], &item))
				continue;
			sq->drain_took[idx] = 1;
			got_in_round++;
			n++;
			fn(item, arg);
		}
		if (got_in_round == 0)
			break;
	}
	/* Next drain starts one shard further, so no shard is always first. */
	sq->drain_next = (sq->drain_next + 1) % sq->n_shards;
	if (n == 0)
		return 0;
	for (i = 0; i < sq->n_shards; i++) {
		if (sq->drain_took[i]) {
			sq->drain_took[i] = 0;
			fsesl_ring_mpsc_space_released(&sq->shards[i], sq->ops);
		}
	}
	return n;
}
