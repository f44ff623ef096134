/*
 * sim_speed.c - fsesl-sim-speed: how fast is the simulator itself?
 *
 * Starts an in-process simulator (or connects to --port P on 127.0.0.1),
 * authenticates, then keeps a window of pipelined "api echo N" commands in
 * flight on one connection (-c N: N connections, one client thread each) and counts the api/response frames coming back,
 * checking that reply i carries body "i". The client side is deliberately
 * cheap (big writes, big reads, proto's frame reader) so the number measures
 * the server. Prints one line: commands, seconds, commands/s.
 */
#include "fsesl_proto.h"
#include "fsesl_sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void
die(const char *what)
{
	fprintf(stderr, "fsesl-sim-speed: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct run {
	unsigned port;
	unsigned long total, window;
};

/* One connection: log in, then keep `window` commands in flight. */
static void *
run_conn(void *arg)
{
	struct run *rn = arg;
	unsigned long total = rn->total, window = rn->window;
	unsigned port = rn->port;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	size_t cap = 8u << 20, len = 0;
	char *in = malloc(cap);
	char *out = malloc(64u * window + 64);
	if (!in || !out)
		die("malloc");
	if (write(fd, "auth ClueCon\n\n", 14) != 14)
		die("write");
	/* greeting + auth reply */
	int frames = 0;
	while (frames < 2) {
		ssize_t r = read(fd, in + len, cap - len);
		if (r <= 0)
			die("read");
		len += (size_t)r;
		struct fsesl_msg m;
		ssize_t c;
		while ((c = fsesl_msg_parse(in, len, 0, NULL, &m, NULL)) > 0) {
			frames++;
			memmove(in, in + c, len - (size_t)c);
			len -= (size_t)c;
		}
	}

	unsigned long sent = 0, got = 0;
	while (got < total) {
		/* Top the window up with one write. */
		if (sent < total && sent - got < (window + 1) / 2) {
			size_t o = 0;
			while (sent < total && sent - got < window)
				o += (size_t)sprintf(out + o, "api echo %lu\n\n", ++sent);
			size_t w = 0;
			while (w < o) {
				ssize_t r = write(fd, out + w, o - w);
				if (r <= 0)
					die("write");
				w += (size_t)r;
			}
		}
		ssize_t r = read(fd, in + len, cap - len);
		if (r <= 0)
			die("read");
		len += (size_t)r;
		size_t off = 0;
		struct fsesl_msg m;
		ssize_t c;
		while ((c = fsesl_msg_parse(in + off, len - off, 0, NULL, &m, NULL)) > 0) {
			char want[32];
			int wl = snprintf(want, sizeof(want), "%lu", ++got);
			if (m.type != FSESL_MSG_API_RESPONSE || m.body_len != (size_t)wl ||
			    memcmp(m.body, want, (size_t)wl)) {
				fprintf(stderr, "fsesl-sim-speed: reply %lu out of order\n", got);
				exit(1);
			}
			off += (size_t)c;
		}
		memmove(in, in + off, len - off);
		len -= off;
	}
	close(fd);
	free(in);
	free(out);
	return NULL;
}

int
main(int argc, char **argv)
{
	unsigned long total = 2000000, window = 8192;
	unsigned port = 0, conns = 1;
	bool realistic = false;
	fsesl_sim *sim = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			total = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-w") && i + 1 < argc)
			window = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--realistic"))
			realistic = true;
		else if (!strcmp(argv[i], "-c") && i + 1 < argc)
			conns = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = (unsigned)strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: fsesl-sim-speed [-n COMMANDS] [-w WINDOW] [-c "
			                "CONNECTIONS (1-64)] "
			                "[--port P (external fsesl-sim on 127.0.0.1)]\n");
			return 2;
		}
	}
	if (!total || !window || !conns || conns > 64 || total < conns)
		return 2;
	if (!port) {
		struct fsesl_sim_config cfg;
		uint16_t p;
		fsesl_sim_config_init(&cfg);
		cfg.port = 0;
		cfg.heartbeat_interval_ms = 0;
		if (realistic) {
			/* The measured 1.10.12 server (fsesl-sim --realistic). */
			cfg.event_poll_ms = 20;
			cfg.api_cost_us = 50;
			cfg.bgapi_cost_us = 1250;
		}
		if (fsesl_sim_start(&cfg, &sim, &p))
			die("fsesl_sim_start");
		port = p;
	}
	pthread_t th[64];
	struct run runs[64];
	double t0 = now_s();
	for (unsigned i = 0; i < conns; i++) {
		runs[i] = (struct run){.port = port, .total = total / conns, .window = window};
		if (pthread_create(&th[i], NULL, run_conn, &runs[i]))
			die("pthread_create");
	}
	for (unsigned i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	double dt = now_s() - t0;
	unsigned long done = (total / conns) * conns;
	printf("%lu commands in %.3f s: %.0f commands/s (window %lu, %u connection%s)\n", done, dt,
	    (double)done / dt, window, conns, conns == 1 ? "" : "s");
	if (sim)
		fsesl_sim_stop(sim);
	return 0;
}
