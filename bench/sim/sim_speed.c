/*
 * sim_speed.c - fsesl-sim-speed: how fast is the simulator itself?
 *
 * Starts an in-process simulator (or connects to --port P on 127.0.0.1),
 * authenticates, then keeps a window of pipelined "api echo N" commands in
 * flight on each of -c connections (one client thread each) and counts the
 * replies coming back, checking that reply i carries body "i" (--bgapi:
 * `bgapi echo N`, each reply checked for +OK). The client side is
 * deliberately cheap (big writes, big reads, proto's frame reader) so that
 * the number measures the server.
 *
 * --fs-like runs the in-process simulator in its FreeSWITCH-like mode
 * (fsesl_sim_config_fs_like()): the figures to compare with
 * docs/real-server-measurements.md.
 *
 * --flood RATE instead subscribes one connection to CUSTOM sim::flood, asks
 * the simulator for RATE events per second (its EVENT_FLOOD fault) and
 * counts what arrives for -s seconds.
 *
 * In-process, the simulator's CPU is the process's CPU less the client
 * threads' own (CLOCK_THREAD_CPUTIME_ID), so "server CPU per command" is
 * printed too. Prints one line.
 */
#include "fsesl_proto.h"
#include "fsesl_sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
process_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
die(const char *what)
{
	fprintf(stderr, "fsesl-sim-speed: %s: %s\n", what, strerror(errno));
	exit(1);
}

enum mode { MODE_API, MODE_BGAPI, MODE_FLOOD };

struct run {
	unsigned port;
	enum mode mode;
	unsigned long total, window;
	double seconds; /* flood */
	pthread_barrier_t *start;
	double cpu; /* this thread's CPU after the start barrier */
	unsigned long done; /* replies, or events */
	double *lat; /* window 1: one round trip per command, seconds */
};

static int
conn_open(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r <= 0)
			die("write");
		p += r;
		n -= (size_t)r;
	}
}

/* Reads until `frames` whole messages have arrived (greeting, replies). */
static void
read_frames(int fd, char *in, size_t cap, size_t *len, int frames)
{
	while (frames > 0) {
		ssize_t r = read(fd, in + *len, cap - *len);
		if (r <= 0)
			die("read");
		*len += (size_t)r;
		struct fsesl_msg m;
		ssize_t c;
		while (frames > 0 && (c = fsesl_msg_parse(in, *len, 0, NULL, &m, NULL)) > 0) {
			frames--;
			memmove(in, in + c, *len - (size_t)c);
			*len -= (size_t)c;
		}
	}
}

static void
check_reply(const struct run *rn, const struct fsesl_msg *m, unsigned long i)
{
	char want[32];
	int wl = snprintf(want, sizeof(want), "%lu", i);

	if (rn->mode == MODE_BGAPI) {
		if (m->type == FSESL_MSG_COMMAND_REPLY && m->reply == FSESL_REPLY_OK)
			return;
	} else if (m->type == FSESL_MSG_API_RESPONSE && m->body_len == (size_t)wl &&
	           !memcmp(m->body, want, (size_t)wl)) {
		return;
	}
	fprintf(stderr, "fsesl-sim-speed: reply %lu wrong or out of order\n", i);
	exit(1);
}

/* Keeps `window` commands in flight until `total` replies have come. */
static void
run_commands(struct run *rn, int fd, char *in, size_t cap, size_t len)
{
	unsigned long total = rn->total, window = rn->window;
	unsigned long sent = 0, got = 0;
	char *out = malloc(64u * window + 64);
	const char *verb = rn->mode == MODE_BGAPI ? "bgapi" : "api";
	double t_sent = 0;

	if (!out)
		die("malloc");
	while (got < total) {
		/* Top the window up with one write. */
		if (sent < total && sent - got < (window + 1) / 2) {
			size_t o = 0;
			while (sent < total && sent - got < window)
				o += (size_t)sprintf(out + o, "%s echo %lu\n\n", verb, ++sent);
			if (rn->lat)
				t_sent = now_s();
			write_all(fd, out, o);
		}
		ssize_t r = read(fd, in + len, cap - len);
		if (r <= 0)
			die("read");
		len += (size_t)r;
		size_t off = 0;
		struct fsesl_msg m;
		ssize_t c;
		while ((c = fsesl_msg_parse(in + off, len - off, 0, NULL, &m, NULL)) > 0) {
			check_reply(rn, &m, ++got);
			if (rn->lat)
				rn->lat[got - 1] = now_s() - t_sent;
			off += (size_t)c;
		}
		memmove(in, in + off, len - off);
		len -= off;
	}
	rn->done = got;
	free(out);
}

/* Counts the events that arrive for rn->seconds. */
static void
run_flood(struct run *rn, int fd, char *in, size_t cap, size_t len)
{
	double end = now_s() + rn->seconds;
	unsigned long events = 0;

	for (;;) {
		double left = end - now_s();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		ssize_t r = read(fd, in + len, cap - len);
		if (r <= 0)
			die("read");
		len += (size_t)r;
		size_t off = 0;
		struct fsesl_msg m;
		ssize_t c;
		while ((c = fsesl_msg_parse(in + off, len - off, 0, NULL, &m, NULL)) > 0) {
			if (m.type != FSESL_MSG_EVENT_PLAIN) {
				fprintf(stderr, "fsesl-sim-speed: unexpected %s during the flood\n",
				    fsesl_msg_type_name(m.type));
				exit(1);
			}
			events++;
			off += (size_t)c;
		}
		memmove(in, in + off, len - off);
		len -= off;
	}
	rn->done = events;
}

static void *
run_conn(void *arg)
{
	struct run *rn = arg;
	size_t cap = 8u << 20, len = 0;
	char *in = malloc(cap);
	int fd = conn_open(rn->port);

	if (!in)
		die("malloc");
	write_all(fd, "auth ClueCon\n\n", 14);
	read_frames(fd, in, cap, &len, 2); /* greeting + auth reply */
	if (rn->mode == MODE_FLOOD) {
		static const char sub[] = "event plain CUSTOM sim::flood\n\n";
		write_all(fd, sub, sizeof(sub) - 1);
		read_frames(fd, in, cap, &len, 1);
	}
	pthread_barrier_wait(rn->start);
	double c0 = thread_cpu_s();
	if (rn->mode == MODE_FLOOD)
		run_flood(rn, fd, in, cap, len);
	else
		run_commands(rn, fd, in, cap, len);
	rn->cpu = thread_cpu_s() - c0;
	close(fd);
	free(in);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
usage(void)
{
	fprintf(stderr,
	    "usage: fsesl-sim-speed [-n COMMANDS] [-w WINDOW] [-c CONNECTIONS (1-64)] [--bgapi]\n"
	    "                       [--fs-like [--api-cost-us N] [--byte-cost-ns N]\n"
	    "                       [--dispatch-cost-us N]]\n"
	    "                       [--port P (external fsesl-sim on 127.0.0.1)]\n"
	    "       fsesl-sim-speed --flood RATE [-s SECONDS] [--fs-like] [--port P]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	unsigned long total = 2000000, window = 8192, rate = 0;
	unsigned port = 0, conns = 1;
	double seconds = 5;
	enum mode mode = MODE_API;
	bool fs_like = false;
	long api_us = -1, byte_ns = -1, dispatch_us = -1; /* -1: the preset's */
	fsesl_sim *sim = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			total = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-w") && i + 1 < argc)
			window = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-c") && i + 1 < argc)
			conns = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--bgapi"))
			mode = MODE_BGAPI;
		else if (!strcmp(argv[i], "--fs-like") || !strcmp(argv[i], "--realistic"))
			fs_like = true;
		else if (!strcmp(argv[i], "--api-cost-us") && i + 1 < argc)
			api_us = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--byte-cost-ns") && i + 1 < argc)
			byte_ns = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dispatch-cost-us") && i + 1 < argc)
			dispatch_us = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--flood") && i + 1 < argc) {
			mode = MODE_FLOOD;
			rate = strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = (unsigned)strtoul(argv[++i], NULL, 10);
		else
			return usage();
	}
	if (mode == MODE_FLOOD)
		conns = 1;
	if (!total || !window || !conns || conns > 64 || total < conns || !(seconds > 0) ||
	    (mode == MODE_FLOOD && !rate && !port))
		return usage();
	if (!port) {
		struct fsesl_sim_config cfg;
		uint16_t p;
		fsesl_sim_config_init(&cfg);
		cfg.port = 0;
		cfg.heartbeat_interval_ms = 0;
		if (fs_like)
			fsesl_sim_config_fs_like(&cfg);
		/* Calibration: the preset's costs, one by one. */
		if (api_us >= 0)
			cfg.api_cost_us = (unsigned int)api_us;
		if (byte_ns >= 0)
			cfg.fs_byte_cost_ns = (unsigned int)byte_ns;
		if (dispatch_us >= 0)
			cfg.fs_dispatch_cost_us = (unsigned int)dispatch_us;
		if (fsesl_sim_start(&cfg, &sim, &p))
			die("fsesl_sim_start");
		port = p;
	}
	pthread_t th[64];
	struct run runs[64];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, conns + 1);
	for (unsigned i = 0; i < conns; i++) {
		runs[i] = (struct run){.port = port,
		    .mode = mode,
		    .total = total / conns,
		    .window = window,
		    .seconds = seconds,
		    .start = &start};
		if (window == 1 && mode != MODE_FLOOD) {
			runs[i].lat = malloc(runs[i].total * sizeof(double));
			if (!runs[i].lat)
				die("malloc");
		}
		if (pthread_create(&th[i], NULL, run_conn, &runs[i]))
			die("pthread_create");
	}
	pthread_barrier_wait(&start);
	double t0 = now_s(), cpu0 = process_cpu_s();
	if (mode == MODE_FLOOD && sim &&
	    fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_EVENT_FLOOD, rate, 0))
		die("fsesl_sim_fault");
	unsigned long done = 0;
	double client_cpu = 0;
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(th[i], NULL);
		done += runs[i].done;
		client_cpu += runs[i].cpu;
	}
	double dt = now_s() - t0, server_cpu = process_cpu_s() - cpu0 - client_cpu;
	const char *what = mode == MODE_FLOOD ? "events" : "commands";
	printf("%lu %s in %.3f s: %.0f %s/s", done, what, dt, (double)done / dt, what);
	if (mode == MODE_FLOOD)
		printf(" (asked %lu/s)", rate);
	else
		printf(" (%s, window %lu, %u connection%s)", mode == MODE_BGAPI ? "bgapi" : "api",
		    window, conns, conns == 1 ? "" : "s");
	if (sim && done)
		printf("; server CPU %.1f us per %s, %.0f %% (client %.0f %%)",
		    server_cpu * 1e6 / (double)done, mode == MODE_FLOOD ? "event" : "command",
		    server_cpu * 100 / dt, client_cpu * 100 / dt);
	if (runs[0].lat && runs[0].done) {
		qsort(runs[0].lat, runs[0].done, sizeof(double), cmp_double);
		printf("; p50 %.0f us, p99 %.0f us", runs[0].lat[runs[0].done / 2] * 1e6,
		    runs[0].lat[runs[0].done * 99 / 100] * 1e6);
	}
	printf("\n");
	if (sim && mode == MODE_FLOOD) {
		struct fsesl_sim_counters sc;
		fsesl_sim_counters(sim, &sc);
		printf("simulator: %llu flood events fired, %llu sent, %llu dropped\n",
		    (unsigned long long)sc.faults[FSESL_SIM_FAULT_EVENT_FLOOD],
		    (unsigned long long)sc.events_sent, (unsigned long long)sc.events_dropped);
	}
	for (unsigned i = 0; i < conns; i++)
		free(runs[i].lat);
	if (sim)
		fsesl_sim_stop(sim);
	return 0;
}
