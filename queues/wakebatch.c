/*
 * wakebatch.c - the wakes a reactor turn owes, handed to the kernel at once.
 *
 * Overview
 *   Waking a sleeping thread is the whole cost of a blocking hand-off: on
 *   a VM each FUTEX_WAKE costs the waker microseconds (the wake is a
 *   paravirtual IPI), and a reactor that wakes each waiter as it reads its
 *   reply pays them serially, one system call each, and is often
 *   preempted by the thread it just woke. fsesl_cpl_complete_batched()
 *   records the word instead; the reactor flushes once per loop turn. The
 *   URING backend turns a flush into one io_uring_enter() carrying one
 *   IORING_OP_FUTEX_WAKE SQE per word; the FUTEX backend, where io_uring
 *   cannot be had, still issues one FUTEX_WAKE per word, only later.
 *
 * Contract
 *   Owner thread only ("_st"), except the relaxed counters and the
 *   backend, which any thread may read. Each recorded completion holds a
 *   reference on its fsesl_cpl (taken by complete_batched()), dropped here
 *   after the wake; the TEARDOWN RULE in fsesl_queues.h proves that no
 *   wake names freed memory. A waiter tolerates any number of extra wakes
 *   (its wait loop re-checks the word), so waking a word twice, as the
 *   fallback after a failed ring does, is harmless.
 *
 * Implementation notes
 *   Detection, at init: io_uring_queue_init() fails with ENOSYS (no
 *   io_uring), EPERM (kernel.io_uring_disabled, seccomp) or EINVAL (a
 *   setup flag the kernel lacks); the opcode probe (IORING_REGISTER_PROBE)
 *   says whether FUTEX_WAKE exists (Linux 6.7); and one test wake on a
 *   private word must complete with 0 (nobody woken), which also checks
 *   that our SQE layout is what this kernel reads. Any failure: FUTEX.
 *   The SQE is filled by hand: liburing 2.3 (Debian 12) has neither
 *   io_uring_prep_futex_wake() nor the opcode. The kernel's io_futex_prep()
 *   reads addr (the word), addr2 (how many to wake), addr3 (the bitset;
 *   zero is -EINVAL) and fd (FUTEX2_* flags), and insists that len,
 *   futex_flags (the rw_flags union), buf_index and file_index are 0.
 *   IOSQE_CQE_SKIP_SUCCESS: a wake that succeeds posts nothing, so a flush
 *   reads the CQ only to find failures. IORING_SETUP_SUBMIT_ALL: a bad SQE
 *   does not stop the rest of the batch. The wake runs inline in
 *   io_uring_enter() (io_futex_wake() never returns -EAGAIN and we never
 *   set IOSQE_ASYNC), so when the call returns every word has been woken.
 *   Errors: a short submit, a failed io_uring_enter() or any CQE means
 *   the ring cannot be trusted; the flush then wakes the whole batch with
 *   FUTEX_WAKE (some words twice) and the backend stays FUTEX for good.
 *   The SQ holds `cap` entries and a batch never holds more than `cap`
 *   words (add() flushes a full batch first), so a flush never finds the
 *   SQ full; the CQ (2 x cap) only ever sees failures, one flush's worth
 *   at most, and is emptied by that flush.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "fsesl_queues.h"
#include "queues_impl.h"

/* Not in liburing 2.3's headers: Linux 6.7 uapi values. The opcode is
 * counted from IORING_OP_SENDMSG_ZC (48), which 2.3 has: READ_MULTISHOT,
 * WAITID, FUTEX_WAIT, FUTEX_WAKE follow it in the kernel's enum. */
_Static_assert(IORING_OP_SENDMSG_ZC == 48, "io_uring opcode numbering");
#define WAKEB_IORING_OP_FUTEX_WAKE 52
#define WAKEB_FUTEX2_SIZE_U32 0x02u
#define WAKEB_FUTEX2_PRIVATE 0x80u /* FUTEX_PRIVATE_FLAG */
#define WAKEB_FUTEX2_INVALID 0x40u /* no such FUTEX2 flag: -EINVAL */

#define WAKEB_CAP_DEFAULT 256u
#define WAKEB_CAP_MIN 8u
#define WAKEB_CAP_MAX 4096u

static void
wakeb_prep_futex_wake(struct io_uring_sqe *sqe, _Atomic uint32_t *word, unsigned int futex2_flags)
{

	/* Every field the kernel checks for zero is zero. */
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = WAKEB_IORING_OP_FUTEX_WAKE;
	sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
	sqe->fd = (int32_t)futex2_flags;
	sqe->addr = (uint64_t)(uintptr_t)word;
	sqe->addr2 = (uint64_t)INT_MAX; /* every waiter on the word */
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	sqe->user_data = (uint64_t)(uintptr_t)word;
	return;
}

/* One wake of a private word nobody waits on, with its CQE: 0 means the
 * opcode runs and reads our SQE as we meant it. */
static bool
wakeb_uring_test_wake(struct io_uring *ring)
{
	_Atomic uint32_t word = 0;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int res;

	sqe = io_uring_get_sqe(ring);
	if (sqe == NULL)
		return false;
	wakeb_prep_futex_wake(sqe, &word, WAKEB_FUTEX2_SIZE_U32 | WAKEB_FUTEX2_PRIVATE);
	sqe->flags = 0; /* this one must post its CQE */
	/* Every SQE posts a CQE (success or error), inline: no hang. */
	if (io_uring_submit_and_wait(ring, 1) != 1)
		return false;
	if (io_uring_peek_cqe(ring, &cqe) != 0)
		return false;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res == 0;
}

static struct io_uring *
wakeb_uring_open(unsigned int entries)
{
	struct io_uring_params p;
	struct io_uring_probe *probe;
	struct io_uring *ring;
	bool ok;

	ring = malloc(sizeof(*ring));
	if (ring == NULL)
		return NULL;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL;
	/* ENOSYS, EPERM (sysctl, seccomp), EINVAL (older kernel), ENOMEM. */
	if (io_uring_queue_init_params(entries, ring, &p) != 0) {
		free(ring);
		return NULL;
	}
	probe = io_uring_get_probe_ring(ring);
	ok = probe != NULL && io_uring_opcode_supported(probe, WAKEB_IORING_OP_FUTEX_WAKE);
	if (probe != NULL)
		io_uring_free_probe(probe);
	if (ok)
		ok = wakeb_uring_test_wake(ring);
	if (!ok) {
		io_uring_queue_exit(ring);
		free(ring);
		return NULL;
	}
	return ring;
}

static void
wakeb_uring_close(struct fsesl_wakeb_st *wb)
{

	if (wb->uring == NULL)
		return;
	io_uring_queue_exit(wb->uring);
	free(wb->uring);
	wb->uring = NULL;
	return;
}

int
fsesl_wakeb_st_init(struct fsesl_wakeb_st *wb, unsigned int cap, unsigned int flags,
    const struct fsesl_wait_ops *ops)
{
	unsigned int c = WAKEB_CAP_MIN;

	memset(wb, 0, sizeof(*wb));
	if (cap == 0)
		cap = WAKEB_CAP_DEFAULT;
	if (cap > WAKEB_CAP_MAX)
		cap = WAKEB_CAP_MAX;
	while (c < cap)
		c *= 2;
	wb->v = calloc(c, sizeof(*wb->v));
	if (wb->v == NULL)
		return -ENOMEM;
	wb->cap = c;
	wb->ops = ops;
	atomic_init(&wb->backend, FSESL_WAKEB_FUTEX);
	if ((flags & FSESL_WAKEB_FUTEX_ONLY) == 0) {
		wb->uring = wakeb_uring_open(c);
		if (wb->uring != NULL)
			atomic_store_explicit(
			    &wb->backend, FSESL_WAKEB_URING, memory_order_relaxed);
	}
	return 0;
}

void
fsesl_wakeb_st_destroy(struct fsesl_wakeb_st *wb)
{

	if (wb->v == NULL)
		return;
	fsesl_wakeb_st_flush(wb);
	wakeb_uring_close(wb);
	free(wb->v);
	wb->v = NULL;
	wb->cap = 0;
	return;
}

enum fsesl_wakeb_backend
fsesl_wakeb_backend(const struct fsesl_wakeb_st *wb)
{

	return (enum fsesl_wakeb_backend)atomic_load_explicit(&wb->backend, memory_order_relaxed);
}

/* The whole batch in one io_uring_enter(); false if the ring failed (the
 * caller then wakes every word with FUTEX_WAKE). */
static bool
wakeb_uring_flush(struct fsesl_wakeb_st *wb)
{
	struct io_uring *ring = wb->uring;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	unsigned int i, flags;
	bool ok = true;
	int rc;

	for (i = 0; i < wb->n; i++) {
		/* Never NULL: the SQ has cap entries, the batch at most cap
		 * words, and the last flush consumed every SQE. */
		sqe = io_uring_get_sqe(ring);
		if (sqe == NULL)
			return false;
		flags = WAKEB_FUTEX2_SIZE_U32 | WAKEB_FUTEX2_PRIVATE;
		if (wb->inject_error && i == 0) {
			flags |= WAKEB_FUTEX2_INVALID;
			wb->inject_error = false;
		}
		wakeb_prep_futex_wake(sqe, &wb->v[i].c->state, flags);
	}
	atomic_fetch_add_explicit(&wb->syscalls, 1, memory_order_relaxed);
	rc = io_uring_submit(ring);
	if (rc != (int)wb->n)
		ok = false;
	/* Skip-success: any CQE is a failed wake. */
	while (io_uring_peek_cqe(ring, &cqe) == 0) {
		ok = false;
		io_uring_cqe_seen(ring, cqe);
	}
	return ok;
}

void
fsesl_wakeb_st_flush(struct fsesl_wakeb_st *wb)
{
	const struct fsesl_wait_ops *ops = wb->ops;
	struct fsesl_wakeb_entry *en;
	unsigned int i, n = wb->n;

	if (n == 0)
		return;
	/* Counted before the wakes: a woken waiter that reads the counters
	 * sees its own wake. */
	atomic_fetch_add_explicit(&wb->wakes, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&wb->flushes, 1, memory_order_relaxed);
	if (wb->uring != NULL && !wakeb_uring_flush(wb)) {
		/* For good: a ring that failed once is not trusted again. */
		wakeb_uring_close(wb);
		atomic_store_explicit(&wb->backend, FSESL_WAKEB_FUTEX, memory_order_relaxed);
		atomic_fetch_add_explicit(&wb->fallbacks, 1, memory_order_relaxed);
	}
	if (wb->uring == NULL) {
		atomic_fetch_add_explicit(&wb->syscalls, n, memory_order_relaxed);
		for (i = 0; i < n; i++)
			ops->wake32(&wb->v[i].c->state, INT_MAX, ops->ctx);
	}
	/* Only now, every wake done: drop the batch's references. */
	for (i = 0; i < n; i++) {
		en = &wb->v[i];
		if (fsesl_cpl_release(en->c) && en->release != NULL)
			en->release(en->c);
	}
	wb->n = 0;
	return;
}

void
fsesl_wakeb_st_add(struct fsesl_wakeb_st *wb, struct fsesl_cpl *c, fsesl_cpl_release_fn release)
{

	/* Full: flush early, so neither the batch nor the SQ overflows. */
	if (wb->n == wb->cap)
		fsesl_wakeb_st_flush(wb);
	wb->v[wb->n].c = c;
	wb->v[wb->n].release = release;
	wb->n++;
	return;
}
