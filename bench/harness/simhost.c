/*
 * simhost.c - runs the embedded FreeSWITCH simulators in a child process.
 *
 * Why a child: the harness reports CPU per command (getrusage) and memory
 * per connection (RSS delta) for the client side only. In-process
 * simulators would fold the fake server's CPU and buffers into both. The
 * child is forked before the harness starts any thread, starts n
 * simulators (each runs its own epoll thread), reports their ports, then
 * serves one-line requests on a pipe: "F <rate>" (event flood on every
 * subscribed connection), "E" (events written so far), "R" (its CPU time). EOF on the pipe - including the
 * parent's death - stops the simulators and ends the child.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsesl_sim.h"

/*
 * --sim-mode fs-like is the simulator's FreeSWITCH-like mode
 * (fsesl_sim_config_fs_like(): a server thread per connection reading a
 * byte per recv(), api run inline, events at the 20 ms poll or a kick, one
 * dispatch thread; its costs calibrated against the real server in
 * docs/simulator.md). The --sim-* knobs given on the command line apply on
 * top of either mode.
 */
const char *
sim_mode_name(enum bench_sim_mode m)
{
	return m == SIM_MODE_FS_LIKE ? "fs-like" : "fast";
}

void
simhost_knobs(const struct bench_opts *o, struct sim_knobs *k)
{
	struct fsesl_sim_config cfg;

	fsesl_sim_config_init(&cfg);
	if (o->sim_mode == SIM_MODE_FS_LIKE)
		fsesl_sim_config_fs_like(&cfg);
	k->api_cost_us = cfg.api_cost_us;
	k->bgapi_cost_us = cfg.bgapi_cost_us;
	k->event_poll_ms = cfg.event_poll_ms;
	k->byte_cost_ns = cfg.fs_byte_cost_ns;
	k->dispatch_cost_us = cfg.fs_dispatch_cost_us;
	if (o->sim_api_cost_us != SIM_KNOB_UNSET)
		k->api_cost_us = o->sim_api_cost_us;
	if (o->sim_bgapi_cost_us != SIM_KNOB_UNSET)
		k->bgapi_cost_us = o->sim_bgapi_cost_us;
	if (o->sim_event_poll_ms != SIM_KNOB_UNSET)
		k->event_poll_ms = o->sim_event_poll_ms;
}

static pid_t child_pid = -1;
static int to_child = -1, from_child = -1;

bool
simhost_available(void)
{
	return true;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one '\n'-terminated line (byte at a time: the pipe is ours, the
 * lines are short, and reading past the newline would steal the next). */
static int
read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (ch == '\n')
			break;
		buf[n++] = ch;
	}
	buf[n] = 0;
	return (int)n;
}

static void
raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* One simulator's configuration for --sim-mode, the explicit --sim-*
 * knobs on top. */
static void
sim_configure(struct fsesl_sim_config *cfg, const struct bench_opts *o)
{
	struct sim_knobs k;

	if (o->sim_mode == SIM_MODE_FS_LIKE)
		fsesl_sim_config_fs_like(cfg);
	simhost_knobs(o, &k);
	cfg->api_cost_us = k.api_cost_us;
	cfg->bgapi_cost_us = k.bgapi_cost_us;
	cfg->event_poll_ms = k.event_poll_ms;
}

static void __attribute__((noreturn))
child_main(unsigned n, const struct bench_opts *o, int in, int out)
{
	fsesl_sim *sims[BENCH_MAX_SERVERS] = {0};
	char line[128];
	int rc = 0;

	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	raise_nofile();
	for (unsigned i = 0; i < n; i++) {
		struct fsesl_sim_config cfg;
		uint16_t port = 0;
		fsesl_sim_config_init(&cfg);
		cfg.password = o->password;
		sim_configure(&cfg, o);
		cfg.heartbeat_interval_ms = 0; /* no background noise in the numbers */
		rc = fsesl_sim_start(&cfg, &sims[i], &port);
		int len = snprintf(line, sizeof(line), "%d %u\n", rc, (unsigned)port);
		(void)write_all(out, line, (size_t)len);
		if (rc != 0)
			break;
	}
	while (rc == 0 && read_line(in, line, sizeof(line)) >= 0) {
		char reply[64] = "0\n";
		if (line[0] == 'F') {
			char *end;
			unsigned long rate = strtoul(line + 1, &end, 10);
			unsigned long used = strtoul(end, NULL, 10);

			/* Only the simulators the scenario uses: each flooding
			 * one runs a timer at the event rate, and twenty of them
			 * (many_conns needs that many) flooding for nobody ate
			 * both CPUs and starved the scenario. */
			for (unsigned i = 0; i < n; i++) {
				if (rate && i < used)
					fsesl_sim_fault(
					    sims[i], 0, FSESL_SIM_FAULT_EVENT_FLOOD, rate, 0);
				else
					fsesl_sim_clear_faults(sims[i]);
			}
		} else if (line[0] == 'E') {
			uint64_t sent = 0;
			for (unsigned i = 0; i < n; i++) {
				struct fsesl_sim_counters sc;
				fsesl_sim_counters(sims[i], &sc);
				sent += sc.events_sent;
			}
			snprintf(reply, sizeof(reply), "%llu\n", (unsigned long long)sent);
		} else if (line[0] == 'R') {
			struct rusage ru;
			uint64_t ns = 0;
			if (getrusage(RUSAGE_SELF, &ru) == 0)
				ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
				         1000000000u +
				     ((uint64_t)ru.ru_utime.tv_usec +
				         (uint64_t)ru.ru_stime.tv_usec) *
				         1000u;
			snprintf(reply, sizeof(reply), "%llu\n", (unsigned long long)ns);
		}
		if (write_all(out, reply, strlen(reply)) != 0)
			break;
	}
	for (unsigned i = 0; i < n; i++)
		if (sims[i])
			fsesl_sim_stop(sims[i]);
	_exit(0);
}

int
simhost_start(unsigned n, const struct bench_opts *o, struct bench_target *targets)
{
	int down[2], up[2];
	const char *password = o->password;
	if (n == 0 || n > BENCH_MAX_SERVERS)
		return -EINVAL;
	if (pipe2(down, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(up, O_CLOEXEC) != 0) {
		int e = errno;
		close(down[0]);
		close(down[1]);
		return -e;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(down[0]);
		close(down[1]);
		close(up[0]);
		close(up[1]);
		return -e;
	}
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		child_main(n, o, down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	child_pid = pid;
	to_child = down[1];
	from_child = up[0];
	for (unsigned i = 0; i < n; i++) {
		char line[64];
		int rc;
		unsigned port;
		if (read_line(from_child, line, sizeof(line)) < 0 ||
		    sscanf(line, "%d %u", &rc, &port) != 2) {
			simhost_stop();
			return -EPIPE;
		}
		if (rc != 0) {
			simhost_stop();
			return rc < 0 ? rc : -rc;
		}
		struct bench_target *t = &targets[i];
		memset(t, 0, sizeof(*t));
		snprintf(t->host, sizeof(t->host), "127.0.0.1");
		t->port = (uint16_t)port;
		snprintf(t->password, sizeof(t->password), "%s", password);
		snprintf(t->url, sizeof(t->url), "fs://:%s@127.0.0.1:%u", password, port);
	}
	return 0;
}

static int
ask(const char *req, char *reply, size_t cap)
{
	if (to_child < 0)
		return -ENOTCONN;
	if (write_all(to_child, req, strlen(req)) != 0)
		return -EPIPE;
	if (read_line(from_child, reply, cap) < 0)
		return -EPIPE;
	return 0;
}

int
simhost_flood(unsigned rate, unsigned servers)
{
	char req[48], reply[32];
	snprintf(req, sizeof(req), "F %u %u\n", rate, servers);
	return ask(req, reply, sizeof(reply));
}

uint64_t
simhost_events_sent(void)
{
	char reply[32];
	if (ask("E\n", reply, sizeof(reply)) != 0)
		return 0;
	return strtoull(reply, NULL, 10);
}

uint64_t
simhost_cpu_ns(void)
{
	char reply[32];
	if (ask("R\n", reply, sizeof(reply)) != 0)
		return 0;
	return strtoull(reply, NULL, 10);
}

void
simhost_stop(void)
{
	if (to_child >= 0)
		close(to_child);
	if (from_child >= 0)
		close(from_child);
	to_child = from_child = -1;
	if (child_pid > 0) {
		int st;
		while (waitpid(child_pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	child_pid = -1;
}
