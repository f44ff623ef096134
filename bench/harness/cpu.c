/*
 * cpu.c - whose CPU a command cost: the client's, split into the
 * application's threads (the callers) and the I/O side (the engine's
 * reactor, a baseline's I/O or manager thread).
 *
 * Client CPU is the process's CPU clock (CLOCK_PROCESS_CPUTIME_ID: exact
 * to the nanosecond, including threads that come and go) minus the
 * harness's own threads: the one that times the window (it sleeps, and
 * talks to the simulator process over a pipe) and the watchdog. The
 * simulators never count: they run in a child process (simhost.c). The
 * callers' share is the sum of the per-thread CPU clocks of the threads
 * that registered as the application's; what remains is the I/O side.
 * getrusage() is kept beside it as an independent check of the total.
 *
 * To check all this against an independent counter, FSESL_BENCH_PERF_CTL
 * names perf's control and acknowledgement FIFOs (perf stat --control
 * fifo:CTL,ACK -D -1 -p <pid>): the window's edges then enable and
 * disable perf's counters, so perf counts the same window
 * (bench/harness/perf_split.py stat).
 *
 * A caller registers itself (pthread_getcpuclockid on pthread_self), so no
 * thread id ever has to be guessed from /proc. Entries of one scenario
 * are forgotten when the next begins; the watchdog's, registered by main
 * before the first scenario, stays.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CPU_MAX_THREADS (BENCH_MAX_WORKERS + 64)

struct cpu_entry {
	clockid_t clk;
	uint64_t open; /* its clock when the window opened (or it registered) */
	bool harness;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cpu_entry reg[CPU_MAX_THREADS];
static unsigned n_reg, n_permanent;

/* A clock's value in ns; false if the thread has gone. */
static bool
clk_ns(clockid_t c, uint64_t *out)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		return false;
	*out = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return true;
}

static void
add(pthread_t t, bool harness, bool permanent)
{
	clockid_t clk;
	if (pthread_getcpuclockid(t, &clk) != 0)
		return;
	pthread_mutex_lock(&reg_lock);
	if (n_reg < CPU_MAX_THREADS) {
		struct cpu_entry *e = &reg[n_reg++];
		e->clk = clk;
		e->harness = harness;
		if (!clk_ns(clk, &e->open))
			e->open = 0;
		if (permanent)
			n_permanent = n_reg;
	}
	pthread_mutex_unlock(&reg_lock);
}

void
cpu_thread_app(void)
{
	add(pthread_self(), false, false);
}

void
cpu_thread_harness_permanent(pthread_t t)
{
	add(t, true, true);
}

void
cpu_registry_reset(void)
{
	pthread_mutex_lock(&reg_lock);
	n_reg = n_permanent;
	pthread_mutex_unlock(&reg_lock);
}

static uint64_t
rusage_ns(uint64_t *csw)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	*csw = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static int perf_ctl_fd = -1, perf_ack_fd = -1;

/* Sends an "enable" or "disable" to perf and waits for its "ack": the
 * counters have moved when this returns. Quietly nothing without
 * FSESL_BENCH_PERF_CTL, or when perf is not there within 10 s. */
static void
perf_ctl(const char *cmd)
{
	const char *spec = getenv("FSESL_BENCH_PERF_CTL");
	char ctl[256], ack[256];
	if (!spec || sscanf(spec, "%255[^,],%255s", ctl, ack) != 2)
		return;
	if (perf_ctl_fd < 0) {
		/* Opening a FIFO to write fails until perf has it open. */
		for (int i = 0; i < 1000 && perf_ctl_fd < 0; i++) {
			perf_ctl_fd = open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			if (perf_ctl_fd < 0 && errno == ENXIO)
				sleep_ns(10000000);
			else if (perf_ctl_fd < 0)
				break;
		}
		perf_ack_fd = open(ack, O_RDONLY | O_CLOEXEC);
		if (perf_ctl_fd < 0 || perf_ack_fd < 0) {
			fprintf(
			    stderr, "fsesl-bench: FSESL_BENCH_PERF_CTL: cannot open %s\n", spec);
			unsetenv("FSESL_BENCH_PERF_CTL");
			return;
		}
	}
	char buf[16];
	size_t len = strlen(cmd);
	if (write(perf_ctl_fd, cmd, len) != (ssize_t)len ||
	    read(perf_ack_fd, buf, sizeof(buf)) <= 0)
		fprintf(stderr, "fsesl-bench: FSESL_BENCH_PERF_CTL: perf did not answer\n");
}

void
cpu_window_open(struct cpu_window *w)
{
	perf_ctl("enable\n");
	memset(w, 0, sizeof(*w));
	pthread_mutex_lock(&reg_lock);
	for (unsigned i = 0; i < n_reg; i++)
		if (!clk_ns(reg[i].clk, &reg[i].open))
			reg[i].open = 0;
	pthread_mutex_unlock(&reg_lock);
	(void)clk_ns(CLOCK_THREAD_CPUTIME_ID, &w->self0);
	w->ru0 = rusage_ns(&w->csw0);
	(void)clk_ns(CLOCK_PROCESS_CPUTIME_ID, &w->proc0);
}

void
cpu_window_close(struct cpu_window *w)
{
	uint64_t proc1 = 0, self1 = 0, csw1 = 0, harness = 0, app = 0;
	(void)clk_ns(CLOCK_PROCESS_CPUTIME_ID, &proc1);
	uint64_t ru1 = rusage_ns(&csw1);
	(void)clk_ns(CLOCK_THREAD_CPUTIME_ID, &self1);
	pthread_mutex_lock(&reg_lock);
	for (unsigned i = 0; i < n_reg; i++) {
		uint64_t v;
		if (!clk_ns(reg[i].clk, &v) || v < reg[i].open)
			continue;
		if (reg[i].harness)
			harness += v - reg[i].open;
		else
			app += v - reg[i].open;
	}
	pthread_mutex_unlock(&reg_lock);
	uint64_t proc = proc1 - w->proc0, skip = harness + (self1 - w->self0);
	w->client_ns = proc > skip ? proc - skip : 0;
	w->app_ns = app < w->client_ns ? app : w->client_ns;
	w->rusage_ns = ru1 - w->ru0;
	w->csw = csw1 - w->csw0;
	perf_ctl("disable\n");
}
