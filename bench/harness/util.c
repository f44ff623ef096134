/*
 * util.c - the harness's measuring instruments: a log-linear latency
 * histogram, clocks, CPU and RSS probes, request tokens and reply checks.
 *
 * The histogram is a fixed array per worker thread (no allocation, no
 * sharing, so recording costs a few instructions and no cache traffic);
 * the harness merges them once the threads are joined. Tokens carry a
 * per-process nonce so that a reply from a stale connection of an earlier
 * run or scenario can never pass for a fresh one.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void
hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static unsigned
hist_index(uint64_t v)
{
	const uint64_t vmax = (UINT64_C(1) << (HIST_MAX_SHIFT + HIST_SUB_BITS + 1)) - 1;

	if (v < HIST_LINEAR)
		return (unsigned)v;
	if (v > vmax)
		v = vmax;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	unsigned mant = (unsigned)(v >> shift);
	return HIST_LINEAR + (shift - 1) * (1u << HIST_SUB_BITS) + (mant - (1u << HIST_SUB_BITS));
}

uint64_t
hist_bucket_value(unsigned i)
{
	if (i < HIST_LINEAR)
		return i;
	unsigned j = i - HIST_LINEAR;
	unsigned shift = j / (1u << HIST_SUB_BITS) + 1;
	uint64_t mant = j % (1u << HIST_SUB_BITS) + (1u << HIST_SUB_BITS);
	return (mant << shift) + ((UINT64_C(1) << shift) >> 1);
}

void
hist_record(struct hist *h, uint64_t ns)
{
	h->b[hist_index(ns)]++;
	h->count++;
	h->sum += ns;
	if (ns > h->max)
		h->max = ns;
	if (ns < h->min)
		h->min = ns;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	if (!src->count)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
	if (src->min < dst->min)
		dst->min = src->min;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	if (!h->count)
		return 0;
	if (q >= 1.0)
		return h->max;
	/* The rank of the q-th value, 1-based, rounded up (nearest-rank). */
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count || rank == 0)
		rank++;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_value(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
sleep_until_ns(uint64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void
sleep_ns(uint64_t ns)
{
	sleep_until_ns(now_ns() + ns);
}

uint64_t
pace(const struct scenario *sc, uint64_t base, unsigned k, uint64_t i)
{
	if (!sc->open_rate)
		return now_ns();
	uint64_t due = base + (uint64_t)((double)(k + i * sc->workers) * 1e9 / sc->open_rate);
	if (now_ns() < due)
		sleep_until_ns(due);
	return due;
}

uint64_t
self_cpu_ns(uint64_t *csw)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	if (csw)
		*csw = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

uint64_t
self_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, rss = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void
wstats_error(struct wstats *w, const char *fmt, ...)
{
	w->errors++;
	if (w->first_error[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->first_error, sizeof(w->first_error), fmt, ap);
	va_end(ap);
}

void
wstats_mismatch(struct wstats *w, const char *want, const char *got, size_t got_len)
{
	w->mismatches++;
	if (w->first_error[0])
		return;
	snprintf(w->first_error, sizeof(w->first_error), "mismatch: sent %.40s, got %.*s", want,
	    (int)(got_len > 60 ? 60 : got_len), got ? got : "(null)");
}

void
result_add(struct result *r, const struct wstats *w)
{
	hist_merge(&r->lat, &w->lat);
	r->commands += w->commands;
	r->total_commands += w->total;
	r->errors += w->errors;
	r->mismatches += w->mismatches;
	r->lost += w->lost;
	if (!r->first_error[0] && w->first_error[0])
		snprintf(r->first_error, sizeof(r->first_error), "%s", w->first_error);
}

void
run_window(const struct bench_env *env, struct run_ctl *ctl, struct window_snap *snap,
    window_hook hook, void *ud)
{
	const struct bench_opts *o = env->o;
	sleep_ns((uint64_t)(o->warmup_s * 1e9));
	snap->srv_cpu0 = env->sim ? simhost_cpu_ns() : 0;
	cpu_window_open(&snap->cpu);
	snap->t0 = now_ns();
	ctl->t_measure = snap->t0;
	/* Release: pairs with the workers' acquire loads of phase, so that
	 * t_measure is visible to whoever sees PH_MEASURE. */
	atomic_store_explicit(&ctl->phase, PH_MEASURE, memory_order_release);
	if (hook)
		hook(ud, 0);
	double meas = o->duration_s - o->warmup_s;
	if (meas < 0.05)
		meas = 0.05;
	sleep_until_ns(snap->t0 + (uint64_t)(meas * 1e9));
	/* No completion yet (a stall, a loaded machine): hold the window open
	 * until one, or until no reply can be on time any more. */
	uint64_t limit = now_ns() + (uint64_t)o->timeout_ms * 1000000u;
	while (!atomic_load_explicit(&ctl->progress, memory_order_relaxed) && now_ns() < limit)
		sleep_ns(1000000);
	snap->t1 = now_ns();
	ctl->t_stop = snap->t1;
	/* Release: pairs with the workers' acquire loads (they stop). */
	atomic_store_explicit(&ctl->phase, PH_STOP, memory_order_release);
	cpu_window_close(&snap->cpu);
	if (hook)
		hook(ud, 1);
	snap->srv_cpu1 = env->sim ? simhost_cpu_ns() : 0;
}

void
result_finish(struct result *r, const struct window_snap *snap)
{
	r->ran = true;
	r->seconds = (double)(snap->t1 - snap->t0) / 1e9;
	r->cmds_per_s = r->seconds > 0 ? (double)r->commands / r->seconds : 0;
	if (r->commands) {
		double n = (double)r->commands;
		r->cpu_us_per_cmd = (double)snap->cpu.client_ns / 1e3 / n;
		r->rusage_cpu_us_per_cmd = (double)snap->cpu.rusage_ns / 1e3 / n;
		/* Only where an I/O thread serves callers: bare and
		 * connection-per-worker clients do their own I/O. */
		if (r->sc->kind != K_BARE && r->sc->kind != K_PER_WORKER)
			r->io_cpu_us_per_cmd =
			    (double)(snap->cpu.client_ns - snap->cpu.app_ns) / 1e3 / n;
		r->csw_per_cmd = (double)snap->cpu.csw / n;
		if (snap->srv_cpu1 > snap->srv_cpu0)
			r->server_cpu_us_per_cmd =
			    (double)(snap->srv_cpu1 - snap->srv_cpu0) / 1e3 / (double)r->commands;
	}
}

static unsigned nonce;
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;

static void
nonce_init(void)
{
	nonce = ((unsigned)getpid() * 2654435761u ^ (unsigned)now_ns()) & 0xffffffu;
}

/* Per process, so a stale reply from another run can never match. */
static unsigned
run_nonce(void)
{
	pthread_once(&nonce_once, nonce_init);
	return nonce;
}

int
make_token(char *buf, size_t cap, unsigned scen, unsigned thread, uint64_t seq)
{
	int n = snprintf(
	    buf, cap, "t%06x-%u-%u-%llu", run_nonce(), scen, thread, (unsigned long long)seq);
	return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

const char *
large_padding(unsigned n)
{
	static char *pad;
	static unsigned pad_len;
	/* Built once before any worker starts (main calls it), so the
	 * unsynchronised lazy init below never races. */
	if (!pad || pad_len < n) {
		free(pad);
		pad = malloc((size_t)n + 1);
		if (!pad)
			abort();
		for (unsigned i = 0; i < n; i++)
			pad[i] = (char)('a' + i % 26);
		pad[n] = 0;
		pad_len = n;
	}
	return pad + (pad_len - n);
}

int
check_echo(const char *token, const char *body, size_t len, unsigned pad)
{
	size_t tl = strlen(token);
	if (!body || len != tl + pad || memcmp(body, token, tl) != 0)
		return -1;
	if (pad && memcmp(body + tl, large_padding(pad), pad) != 0)
		return -1;
	return 0;
}

enum bench_mix
mix_pick(enum bench_mix m, uint64_t seq)
{
	if (m != MIX_MIXED)
		return m;
	/* A fixed 10-step pattern: 8 small, 1 large, 1 bgapi. */
	switch (seq % 10) {
	case 3:
		return MIX_LARGE;
	case 7:
		return MIX_BGAPI;
	default:
		return MIX_SMALL;
	}
}
