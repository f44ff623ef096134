/*
 * fuzz_engine.c - libFuzzer target: the fuzzer plays the FreeSWITCH server
 * while the engine has commands in flight.
 *
 * The engine has no call that adopts an already-connected fd, so the
 * harness listens on 127.0.0.1 and accepts the engine's own connection;
 * that costs one connect per input but exercises the real reactor path
 * (non-blocking connect, greeting, auth, FIFO matching, close handling).
 *
 * Input layout: byte 0 is a mode, the rest is what the "server" writes.
 *   mode bit 0      0: the harness greets and accepts auth first, so the
 *                   fuzz bytes land after K commands are on the wire;
 *                   1: the fuzz bytes are the whole server side (greeting
 *                   and auth replies included).
 *   mode bits 1-3   K - 1: async `api echo` commands in flight (1..8).
 *   mode bit 4      keep the socket open after writing (half-close
 *                   instead of close), so the engine must rely on its
 *                   own timeouts.
 *
 * Invariants (abort() so libFuzzer records a crash): every async request
 * completes exactly once; nothing completes after fsesl_engine_stop()
 * returns; the engine never hangs past its timeouts. ASan/UBSan catch the
 * rest. One engine per input keeps inputs independent.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fsesl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_K 8

static int lfd = -1;
static uint16_t lport;

struct slot {
	_Atomic int calls;
	_Atomic int status;
};
static struct slot slots[MAX_K];
static _Atomic int completed;
static _Atomic int stopped;
static sem_t done_sem;

static void
cb(int status, const fsesl_reply *reply, void *ud)
{
	struct slot *s = ud;

	(void)reply;
	if (atomic_load(&stopped))
		abort(); /* a callback after fsesl_engine_stop() returned */
	if (atomic_fetch_add(&s->calls, 1) != 0)
		abort(); /* completed twice */
	atomic_store(&s->status, status);
	atomic_fetch_add(&completed, 1);
	sem_post(&done_sem);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	(void)argc;
	(void)argv;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		abort();
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
		abort();
	lport = ntohs(sa.sin_port);
	if (sem_init(&done_sem, 0, 0) != 0)
		abort();
	return 0;
}

static int
wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, ms) == 1 ? 0 : -1;
}

/* Reads until `n` blank-line terminators have been seen (or 1 s passes). */
static void
read_packets(int fd, int n)
{
	char buf[4096];
	int seen = 0;
	char prev = 0;

	while (seen < n && wait_fd(fd, POLLIN, 1000) == 0) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r <= 0)
			return;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '\n' && prev == '\n')
				seen++;
			prev = buf[i];
		}
	}
}

static void
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (wait_fd(fd, POLLOUT, 1000) != 0)
			return; /* the engine stopped reading: its problem, not ours */
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void
drain_listener(void)
{
	/* Connections the engine opened and abandoned (reconnects) must not
	 * be mistaken for the next input's. */
	while (wait_fd(lfd, POLLIN, 0) == 0) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			break;
		close(fd);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char greet[] = "Content-Type: auth/request\n\n";
	static const char ok[] = "Content-Type: command/reply\nReply-Text: +OK accepted\n\n";
	fsesl_engine *e = NULL;
	fsesl_server_t srv = 0;
	fsesl_config cfg;
	fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
	char url[96], cmd[32];
	unsigned mode;
	int k, cfd = -1, issued = 0;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	k = 1 + (int)((mode >> 1) & 7);

	memset(slots, 0, sizeof(slots));
	atomic_store(&completed, 0);
	atomic_store(&stopped, 0);
	drain_listener();

	fsesl_config_init(&cfg);
	/* Short timeouts bound every wait below; a 1 s backoff keeps the
	 * engine from reconnecting while this input is being torn down. */
	if (fsesl_config_set(&cfg, "esl_cmd_timeout", "60", NULL, 0) ||
	    fsesl_config_set(&cfg, "esl_connect_timeout", "60", NULL, 0) ||
	    fsesl_config_set(&cfg, "backoff", "1", NULL, 0) ||
	    fsesl_config_set(&cfg, "idle_timeout", "0", NULL, 0))
		abort();
	if (fsesl_engine_start(&cfg, &e) != 0)
		abort();
	snprintf(url, sizeof(url), "fs://:fuzz@127.0.0.1:%u", (unsigned)lport);
	if (fsesl_server_get(e, url, &srv) != 0)
		abort();

	if (wait_fd(lfd, POLLIN, 2000) == 0)
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd >= 0 && !(mode & 1)) {
		write_all(cfd, (const uint8_t *)greet, sizeof(greet) - 1);
		read_packets(cfd, 1); /* auth */
		write_all(cfd, (const uint8_t *)ok, sizeof(ok) - 1);
	}
	opts.nonblock = true;
	for (int i = 0; i < k; i++) {
		snprintf(cmd, sizeof(cmd), "echo fz-%d", i);
		if (fsesl_api_async(e, srv, cmd, &opts, cb, &slots[i]) == 0)
			issued++;
		else
			atomic_store(&slots[i].calls, -1);
	}
	if (cfd >= 0) {
		if (!(mode & 1))
			read_packets(cfd, issued); /* all K commands are on the wire */
		write_all(cfd, data, size);
		if (mode & 16)
			shutdown(cfd, SHUT_WR);
		else
			close(cfd), cfd = -1;
	}

	/* Every request ends by its reply, its timeout or the close: wait
	 * for that, bounded well above the 60 ms timeouts. */
	{
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 4;
		for (int i = 0; i < issued; i++)
			if (sem_timedwait(&done_sem, &dl) != 0)
				abort(); /* a request outlived every timeout */
	}

	fsesl_server_put(e, srv);
	if (fsesl_engine_stop(e) != 0)
		abort();
	atomic_store(&stopped, 1);
	for (int i = 0; i < k; i++)
		if (atomic_load(&slots[i].calls) != 1 && atomic_load(&slots[i].calls) != -1)
			abort();
	if (cfd >= 0)
		close(cfd);
	drain_listener();
	return 0;
}
