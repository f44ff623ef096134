/*
 * wake.c - FUTEX_WAKE now, or many futex wakes in one io_uring_enter().
 *
 * Why batching is worth measuring: on a paravirtualised VM a FUTEX_WAKE
 * that finds a sleeper costs the waker microseconds (the IPI), and an I/O
 * thread that makes one per reply is preempted by the thread it woke
 * again and again. One io_uring_enter() per read pass pays the syscall
 * entry once and lets the kernel wake the whole batch in one go.
 *
 * The ring is a minimal hand-made one: only the submission side is used
 * for real work. Every SQE carries IOSQE_CQE_SKIP_SUCCESS, so a wake that
 * succeeds posts nothing; a wake that fails posts a CQE whose user_data
 * is the word, and that word is then woken with a plain FUTEX_WAKE, so a
 * failure can cost time but never strand a sleeper.
 *
 * SQE layout of IORING_OP_FUTEX_WAKE (kernel io_uring/futex.c,
 * io_futex_prep): addr = the futex word, addr2 = how many to wake,
 * addr3 = the bitset mask, fd = FUTEX2_* flags (size and private),
 * len, the op-flags word and buf_index 0. Debian 12's <linux/io_uring.h>
 * (6.1) predates the opcode, hence the numbers below.
 */
#include "wake.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Linux 6.7 uapi: READ_MULTISHOT, WAITID, FUTEX_WAIT, FUTEX_WAKE follow
 * SENDMSG_ZC (the last opcode in the 6.1 header). */
_Static_assert(IORING_OP_SENDMSG_ZC == 48, "io_uring opcode numbering");
#define WAKE_OP_FUTEX_WAKE 52
#define WAKE_FUTEX2_SIZE_U32 0x02u
#define WAKE_FUTEX2_PRIVATE 128u /* = FUTEX_PRIVATE_FLAG */
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif

struct wake_ring {
	int fd;
	void *sq_map, *cq_map;
	size_t sq_map_len, cq_map_len;
	struct io_uring_sqe *sqes;
	size_t sqes_len;
	_Atomic unsigned *sq_head, *sq_tail, *cq_head, *cq_tail;
	unsigned *sq_array;
	unsigned sq_mask, cq_mask;
	struct io_uring_cqe *cqes;
};

const char *
wake_tech_name(enum wake_tech t)
{
	return t == WAKE_URING ? "io_uring FUTEX_WAKE batch" : "FUTEX_WAKE per reply";
}

static void
futex_wake_now(_Atomic uint32_t *word)
{
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int
wake_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
	/* The bitset variant takes an absolute CLOCK_MONOTONIC deadline, so an
	 * interrupted wait never stretches the timeout. */
	struct timespec ts = {
	    (time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
	long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts,
	    NULL, FUTEX_BITSET_MATCH_ANY);
	return rc == -1 && errno == ETIMEDOUT ? -ETIMEDOUT : 0;
}

static void
ring_close(struct wake_ring *r)
{
	if (r->sqes)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_map && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_map_len);
	if (r->sq_map)
		munmap(r->sq_map, r->sq_map_len);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static int
ring_open(struct wake_ring **out, unsigned entries, unsigned flags, char *why, size_t cap)
{
	struct io_uring_params p;
	struct wake_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0 && flags) {
		/* An older kernel refuses newer set-up flags: they only save
		 * work, so do without them. */
		memset(&p, 0, sizeof(p));
		r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	}
	if (r->fd < 0) {
		int e = errno;
		snprintf(why, cap, "io_uring_setup: %s%s", strerror(e),
		    e == EPERM || e == ENOSYS ? " (disabled by sysctl or seccomp?)" : "");
		free(r);
		return -e;
	}
	r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_map_len > r->sq_map_len)
			r->sq_map_len = r->cq_map_len;
		r->cq_map_len = r->sq_map_len;
	}
	r->sq_map = mmap(NULL, r->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
	    r->fd, IORING_OFF_SQ_RING);
	if (r->sq_map == MAP_FAILED) {
		r->sq_map = NULL;
		goto fail;
	}
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		r->cq_map = r->sq_map;
	} else {
		r->cq_map = mmap(NULL, r->cq_map_len, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (r->cq_map == MAP_FAILED) {
			r->cq_map = NULL;
			goto fail;
		}
	}
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
	    IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED) {
		r->sqes = NULL;
		goto fail;
	}
	char *sq = r->sq_map, *cq = r->cq_map;
	r->sq_head = (_Atomic unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (_Atomic unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (_Atomic unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (_Atomic unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	/* The array maps SQ slots to SQEs one to one, once and for all. */
	for (unsigned i = 0; i < p.sq_entries; i++)
		r->sq_array[i] = i;
	*out = r;
	return 0;
fail:;
	int e = errno;
	snprintf(why, cap, "io_uring mmap: %s", strerror(e));
	ring_close(r);
	return -e;
}

static bool
ring_has_op(struct wake_ring *r, unsigned op)
{
	size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
	struct io_uring_probe *p = calloc(1, len);
	bool ok = false;
	if (!p)
		return false;
	if (syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_PROBE, p, 256) == 0 &&
	    op <= p->last_op && op < p->ops_len)
		ok = (p->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
	free(p);
	return ok;
}

static void
fill_wake(struct io_uring_sqe *sqe, _Atomic uint32_t *word, bool skip_success)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = WAKE_OP_FUTEX_WAKE;
	sqe->flags = skip_success ? IOSQE_CQE_SKIP_SUCCESS : 0;
	sqe->fd = (int)(WAKE_FUTEX2_SIZE_U32 | WAKE_FUTEX2_PRIVATE);
	sqe->addr = (uint64_t)(uintptr_t)word;
	sqe->addr2 = INT_MAX; /* every sleeper on the word */
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	sqe->user_data = (uint64_t)(uintptr_t)word;
}

/* Submits n SQEs already written at the tail; the kernel consumes all of
 * them synchronously (no SQPOLL). 0, or -errno. */
static int
ring_submit(struct wake_ring *r, unsigned n, unsigned min_complete)
{
	unsigned tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
	/* Release: the SQEs written before are visible to the kernel. */
	atomic_store_explicit(r->sq_tail, tail + n, memory_order_release);
	while (n) {
		long rc = syscall(__NR_io_uring_enter, r->fd, n, min_complete,
		    min_complete ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
		if (rc < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EBUSY)
				continue;
			return -errno;
		}
		n -= (unsigned)rc;
		min_complete = 0;
	}
	return 0;
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool probe_ok;
static char probe_why[160];

static void
probe(void)
{
	struct wake_ring *r = NULL;
	_Atomic uint32_t word = 0;
	if (ring_open(&r, 4, 0, probe_why, sizeof(probe_why)) != 0)
		return;
	if (!ring_has_op(r, WAKE_OP_FUTEX_WAKE)) {
		snprintf(probe_why, sizeof(probe_why),
		    "the kernel has no IORING_OP_FUTEX_WAKE (needs Linux 6.7+)");
		ring_close(r);
		return;
	}
	/* One real wake with its CQE: the probe can claim an op that a
	 * seccomp filter or an LSM then refuses. */
	unsigned tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
	fill_wake(&r->sqes[tail & r->sq_mask], &word, false);
	int rc = ring_submit(r, 1, 1);
	if (rc == 0) {
		unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
		/* Acquire: the CQE's contents were written before the tail. */
		if (head == atomic_load_explicit(r->cq_tail, memory_order_acquire)) {
			rc = -EIO;
		} else {
			int res = r->cqes[head & r->cq_mask].res;
			atomic_store_explicit(r->cq_head, head + 1, memory_order_release);
			rc = res < 0 ? res : 0;
		}
	}
	if (rc != 0)
		snprintf(
		    probe_why, sizeof(probe_why), "IORING_OP_FUTEX_WAKE failed: %s", strerror(-rc));
	else
		probe_ok = true;
	ring_close(r);
}

bool
wake_uring_available(char *why, size_t cap)
{
	pthread_once(&probe_once, probe);
	if (!probe_ok && why)
		snprintf(why, cap, "%s", probe_why);
	return probe_ok;
}

int
waker_init(struct waker *w, enum wake_tech t, char *why, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->tech = WAKE_FUTEX;
	if (t == WAKE_FUTEX)
		return 0;
	if (!wake_uring_available(why, cap))
		return -EOPNOTSUPP;
	/* Single issuer and cooperative task running: this thread alone
	 * submits, and nothing needs an interrupt to complete. */
	int rc = ring_open(&w->ring, WAKE_BATCH_MAX,
	    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER, why,
	    cap);
	if (rc != 0)
		return rc;
	w->tech = WAKE_URING;
	return 0;
}

/* Failed wakes post CQEs (successful ones are skipped): wake those words
 * the plain way. */
static void
reap_failures(struct waker *w)
{
	struct wake_ring *r = w->ring;
	unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
	/* Acquire: pairs with the kernel's release of the CQ tail. */
	unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
	for (; head != tail; head++) {
		struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
		if (c->res < 0) {
			futex_wake_now((_Atomic uint32_t *)(uintptr_t)c->user_data);
			w->fallbacks++;
			w->syscalls++;
		}
	}
	atomic_store_explicit(r->cq_head, head, memory_order_release);
}

void
waker_flush(struct waker *w)
{
	if (!w->n)
		return;
	struct wake_ring *r = w->ring;
	unsigned tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
	for (unsigned i = 0; i < w->n; i++)
		fill_wake(&r->sqes[(tail + i) & r->sq_mask], w->batch[i], true);
	w->syscalls++;
	if (ring_submit(r, w->n, 0) != 0) {
		/* The ring itself failed: nobody may stay asleep, and SQEs the
		 * kernel did not take may still sit in the ring, so it is not
		 * used again (the scenario goes on with FUTEX_WAKE). */
		for (unsigned i = 0; i < w->n; i++)
			futex_wake_now(w->batch[i]);
		w->fallbacks += w->n;
		w->syscalls += w->n;
		w->wakes += w->n;
		w->n = 0;
		w->tech = WAKE_FUTEX;
		return;
	}
	w->wakes += w->n;
	w->n = 0;
	reap_failures(w);
}

void
waker_add(struct waker *w, _Atomic uint32_t *word)
{
	if (w->tech == WAKE_FUTEX) {
		futex_wake_now(word);
		w->wakes++;
		w->syscalls++;
		return;
	}
	if (w->n == WAKE_BATCH_MAX)
		waker_flush(w);
	w->batch[w->n++] = word;
}

void
waker_fini(struct waker *w)
{
	waker_flush(w);
	if (w->ring)
		ring_close(w->ring);
	w->ring = NULL;
}
