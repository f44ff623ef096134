/*
 * bench_queues.c - what the queues/ primitives cost. Prints numbers, never
 * fails (ck's benchmark/ and libuv's benchmark-*.c style).
 *
 *   1. enqueue + dequeue per item through one MPSC ring, 1/4/16/64
 *      producers, one consumer thread;
 *   2. doorbell: eventfd writes per item with the coalescing flag, and
 *      with a naive "write on every submit" doorbell;
 *   3. hand-off latency, from the completer's complete() to the waiter's
 *      return: futex completion (slow hand-offs: sleeps; quick: spins)
 *      against the compatibility poll wait at 1000 us and 100 us.
 *
 * Usage: fsesl-bench-queues [scale]   (scale 1 = default, a few seconds)
 * On a shared 2-CPU machine the numbers move with everybody else's load.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fsesl_queues.h"

static unsigned int scale = 1;

/* ------------------------------------------------------------------ */
/* 1. ring: enqueue + dequeue                                           */
/* ------------------------------------------------------------------ */

struct ring_bench {
	struct fsesl_ring_mpsc r;
	unsigned int per_producer;
	pthread_barrier_t start;
};

static void *
ring_producer(void *p)
{
	struct ring_bench *b = p;
	unsigned int i;

	pthread_barrier_wait(&b->start);
	for (i = 0; i < b->per_producer; i++)
		(void)fsesl_ring_mpsc_enqueue(
		    &b->r, (void *)(uintptr_t)(i + 1), NULL, &fsesl_wait_ops_linux);
	return NULL;
}

static void
bench_ring(unsigned int n_producers, unsigned int total)
{
	struct ring_bench b;
	pthread_t *th = calloc(n_producers, sizeof(*th));
	unsigned long got = 0, want;
	unsigned int i, took;
	uint64_t t0, t1;
	void *item;

	if (th == NULL || fsesl_ring_mpsc_init(&b.r, 1024) != 0) {
		printf("ring: setup failed\n");
		free(th);
		return;
	}
	b.per_producer = total / n_producers;
	want = (unsigned long)b.per_producer * n_producers;
	pthread_barrier_init(&b.start, NULL, n_producers + 1);
	for (i = 0; i < n_producers; i++)
		pthread_create(&th[i], NULL, ring_producer, &b);
	pthread_barrier_wait(&b.start);
	t0 = fsesl_mono_ns();
	while (got < want) {
		took = 0;
		while (fsesl_ring_mpsc_dequeue(&b.r, &item))
			took++;
		if (took != 0) {
			got += took;
			fsesl_ring_mpsc_space_released(&b.r, &fsesl_wait_ops_linux);
		}
	}
	t1 = fsesl_mono_ns();
	for (i = 0; i < n_producers; i++)
		pthread_join(th[i], NULL);
	printf("ring  %2u producers: %8lu items  %7.1f ns/item  (%.2f M items/s)\n", n_producers,
	    want, (double)(t1 - t0) / (double)want, (double)want * 1e3 / (double)(t1 - t0));
	pthread_barrier_destroy(&b.start);
	fsesl_ring_mpsc_destroy(&b.r);
	free(th);
	return;
}

/* ------------------------------------------------------------------ */
/* 2. doorbell: coalescing vs a write per submit                        */
/* ------------------------------------------------------------------ */

struct db_bench {
	struct fsesl_sq sq;
	bool naive; /* write(efd) on every submit, reactor reads every wake */
	unsigned int per_producer;
	pthread_barrier_t start;
	_Atomic uint64_t naive_writes;
};

static void *
db_producer(void *p)
{
	struct db_bench *b = p;
	uint64_t one = 1;
	unsigned int i;

	pthread_barrier_wait(&b->start);
	for (i = 0; i < b->per_producer; i++) {
		if (!b->naive) {
			(void)fsesl_sq_submit(&b->sq, (void *)(uintptr_t)(i + 1), false, NULL);
			continue;
		}
		(void)fsesl_ring_mpsc_enqueue(
		    &b->sq.shards[0], (void *)(uintptr_t)(i + 1), NULL, &fsesl_wait_ops_linux);
		atomic_fetch_add_explicit(&b->naive_writes, 1, memory_order_relaxed);
		if (write(fsesl_doorbell_fd(&b->sq.db), &one, sizeof(one)) < 0 && errno != EAGAIN)
			abort();
	}
	return NULL;
}

static void
count_cb(void *item, void *arg)
{
	unsigned long *n = arg;

	(*n)++;
	return;
}

static void
bench_doorbell(unsigned int n_producers, unsigned int total, bool naive)
{
	struct db_bench b;
	pthread_t th[16];
	struct pollfd pfd;
	unsigned long got = 0, want, wakes = 0;
	unsigned int i;
	uint64_t t0, t1, writes, v;
	int timeout;

	memset(&b, 0, sizeof(b));
	/* One shard in both modes so the naive producers' ring is the one
	 * the reactor drains. */
	if (fsesl_sq_init(&b.sq, 1, 1024, &fsesl_wait_ops_linux) != 0) {
		printf("doorbell: setup failed\n");
		return;
	}
	b.naive = naive;
	b.per_producer = total / n_producers;
	want = (unsigned long)b.per_producer * n_producers;
	pthread_barrier_init(&b.start, NULL, n_producers + 1);
	for (i = 0; i < n_producers; i++)
		pthread_create(&th[i], NULL, db_producer, &b);
	pfd.fd = fsesl_doorbell_fd(&b.sq.db);
	pfd.events = POLLIN;
	pthread_barrier_wait(&b.start);
	t0 = fsesl_mono_ns();
	while (got < want) {
		if (naive) {
			while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
				;
			wakes++;
			(void)!read(pfd.fd, &v, sizeof(v));
			while (fsesl_sq_drain(&b.sq, 1024, count_cb, &got) != 0)
				;
			continue;
		}
		fsesl_doorbell_awake(&b.sq.db);
		while (fsesl_sq_drain(&b.sq, 1024, count_cb, &got) != 0)
			;
		fsesl_doorbell_prepare_sleep(&b.sq.db);
		timeout = fsesl_sq_drain(&b.sq, UINT32_MAX, count_cb, &got) ? 0 : -1;
		if (got >= want)
			break;
		if (timeout != 0)
			wakes++;
		while (poll(&pfd, 1, timeout) < 0 && errno == EINTR)
			;
	}
	t1 = fsesl_mono_ns();
	for (i = 0; i < n_producers; i++)
		pthread_join(th[i], NULL);
	writes = naive ? atomic_load(&b.naive_writes) : atomic_load(&b.sq.db.writes);
	printf("doorbell %-10s %2u producers: %7lu items  %.4f eventfd writes/item  "
	       "%lu reactor sleeps  %6.1f ns/item\n",
	    naive ? "naive" : "coalescing", n_producers, want, (double)writes / (double)want, wakes,
	    (double)(t1 - t0) / (double)want);
	pthread_barrier_destroy(&b.start);
	fsesl_sq_destroy(&b.sq);
	return;
}

/* ------------------------------------------------------------------ */
/* 3. hand-off latency                                                  */
/* ------------------------------------------------------------------ */

enum wait_kind { WAIT_FUTEX, WAIT_POLL };

struct lat_bench {
	_Atomic(struct fsesl_cpl *) req;
	_Atomic uint64_t completed_at;
	unsigned int max_delay_ns; /* completer waits 0..max before completing */
	_Atomic unsigned int completions; /* complete() has returned this often */
	_Atomic bool stop;
};

/* The completer: takes the published request, lets a random time pass
 * (so the waiter is anywhere in its spin or sleep), notes the time and
 * completes. */
static void *
lat_completer(void *p)
{
	struct lat_bench *b = p;
	struct fsesl_cpl *c;
	unsigned int seed = 7;
	uint64_t until;

	while (!atomic_load(&b->stop)) {
		c = atomic_exchange(&b->req, NULL);
		if (c == NULL)
			continue;
		until = fsesl_mono_ns() +
		        (b->max_delay_ns ? (unsigned)rand_r(&seed) % b->max_delay_ns : 0);
		while (fsesl_mono_ns() < until)
			;
		atomic_store(&b->completed_at, fsesl_mono_ns());
		(void)fsesl_cpl_complete(c, FSESL_CPL_DONE, &fsesl_wait_ops_linux);
		atomic_fetch_add(&b->completions, 1);
	}
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
bench_latency(const char *label, enum wait_kind kind, unsigned int itv_us,
    unsigned int max_delay_ns, unsigned int samples)
{
	struct lat_bench b;
	struct fsesl_cpl c;
	struct timespec deadline;
	uint64_t *lat = calloc(samples, sizeof(*lat));
	pthread_t th;
	unsigned int i;
	uint32_t s;

	if (lat == NULL)
		return;
	memset(&b, 0, sizeof(b));
	b.max_delay_ns = max_delay_ns;
	fsesl_cpl_spin_reset();
	pthread_create(&th, NULL, lat_completer, &b);
	for (i = 0; i < samples; i++) {
		fsesl_cpl_init(&c, 1, NULL, NULL);
		fsesl_deadline_after_ms(&fsesl_wait_ops_linux, &deadline, 5000);
		atomic_store(&b.req, &c);
		if (kind == WAIT_FUTEX)
			s = fsesl_cpl_wait(&c, &deadline, &fsesl_wait_ops_linux);
		else
			s = fsesl_cpl_wait_poll(&c, &deadline, itv_us, &fsesl_wait_ops_linux);
		lat[i] = fsesl_mono_ns() - atomic_load(&b.completed_at);
		if (s != FSESL_CPL_DONE)
			lat[i] = UINT64_MAX / 2;
		/* The completer may still be inside complete() (its wake):
		 * c is reused next round only after complete() returned. */
		while (atomic_load(&b.completions) != i + 1)
			;
	}
	atomic_store(&b.stop, true);
	pthread_join(th, NULL);
	qsort(lat, samples, sizeof(*lat), cmp_u64);
	printf("hand-off %-34s n=%5u  p50 %8.2f us  p99 %8.2f us  (spin estimate now %.1f us)\n",
	    label, samples, (double)lat[samples / 2] / 1e3, (double)lat[samples * 99 / 100] / 1e3,
	    (double)fsesl_cpl_handoff_estimate_ns() / 1e3);
	free(lat);
	return;
}

int
main(int argc, char **argv)
{
	unsigned int n[] = {1, 4, 16, 64};
	size_t i;

	if (argc > 1 && atoi(argv[1]) > 0)
		scale = (unsigned int)atoi(argv[1]);
	printf("# fsesl-bench-queues (scale %u), %ld online CPUs\n", scale,
	    sysconf(_SC_NPROCESSORS_ONLN));
	for (i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		bench_ring(n[i], 400000 * scale);
	bench_doorbell(1, 200000 * scale, false);
	bench_doorbell(1, 200000 * scale, true);
	bench_doorbell(4, 200000 * scale, false);
	bench_doorbell(4, 200000 * scale, true);
	bench_latency("futex, completer after 0-200 us", WAIT_FUTEX, 0, 200000, 1000 * scale);
	bench_latency("futex, completer after 0-2 us", WAIT_FUTEX, 0, 2000, 5000 * scale);
	bench_latency("poll 1000 us, after 0-200 us", WAIT_POLL, 1000, 200000, 200 * scale);
	bench_latency("poll 100 us, after 0-200 us", WAIT_POLL, 100, 200000, 1000 * scale);
	return 0;
}
