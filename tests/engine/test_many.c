/*
 * test_many.c - fsesl_api_many(): many commands, one wait. Every slot gets
 * its own command's outcome, whatever the others do: pipelined on one
 * server, fanned out over several, refused before the wire, timed out,
 * cut by a stop.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "engine_test.h"

#define NSIM 3

static fsesl_sim *sims[NSIM];
static uint16_t ports[NSIM];
static fsesl_engine *eng;
static fsesl_server_t srvs[NSIM];

static void
setup(void)
{
	int i;

	eng = et_engine(NULL);
	for (i = 0; i < NSIM; i++) {
		sims[i] = et_sim(&ports[i]);
		srvs[i] = et_server(eng, ports[i], "ClueCon");
	}
}

static void
teardown(void)
{
	int i;

	for (i = 0; i < NSIM; i++) {
		if (eng && srvs[i])
			cr_assert_eq(fsesl_server_put(eng, srvs[i]), 0);
	}
	if (eng)
		cr_assert_eq(fsesl_engine_stop(eng), 0);
	for (i = 0; i < NSIM; i++)
		fsesl_sim_stop(sims[i]);
}

TestSuite(many, .init = setup, .fini = teardown, .timeout = 60);

/* n echoes "echo <i>" spread round-robin over the servers. */
static void
fan_out(size_t n, const fsesl_cmd_opts *o)
{
	fsesl_server_t *to = calloc(n, sizeof(*to));
	char **cmds = calloc(n, sizeof(*cmds));
	int *st = calloc(n, sizeof(*st));
	fsesl_reply **rep = calloc(n, sizeof(*rep));
	size_t i;

	cr_assert(to && cmds && st && rep);
	for (i = 0; i < n; i++) {
		to[i] = srvs[i % NSIM];
		cr_assert_gt(asprintf(&cmds[i], "echo item-%zu", i), 0);
	}
	cr_assert_eq(fsesl_api_many(eng, n, to, (const char *const *)cmds, o, st, rep), 0);
	for (i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "item-%zu", i);
		cr_assert_eq(st[i], 0, "slot %zu: %s", i, fsesl_strerror(st[i]));
		cr_assert_not_null(rep[i]);
		cr_assert_str_eq(
		    fsesl_reply_body(rep[i], NULL), want, "slot %zu got another's reply", i);
		fsesl_reply_free(rep[i]);
		free(cmds[i]);
	}
	free(to);
	free(cmds);
	free(st);
	free(rep);
}

Test(many, each_slot_gets_its_own_reply_futex)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.wait_mode = FSESL_WAIT_FUTEX;
	fan_out(300, &o);
	fan_out(1, NULL);
}

Test(many, each_slot_gets_its_own_reply_poll)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.wait_mode = FSESL_WAIT_POLL;
	fan_out(60, &o);
}

/* More commands than one connection's in-flight cap (64): the rest queue
 * behind, in order. */
Test(many, more_than_in_flight_cap_on_one_server)
{
	fsesl_server_t to[200];
	char buf[200][24];
	const char *cmds[200];
	fsesl_reply *rep[200];
	int st[200];
	size_t i;

	for (i = 0; i < 200; i++) {
		to[i] = srvs[0];
		snprintf(buf[i], sizeof(buf[i]), "echo %zu", i);
		cmds[i] = buf[i];
	}
	cr_assert_eq(fsesl_api_many(eng, 200, to, cmds, NULL, st, rep), 0);
	for (i = 0; i < 200; i++) {
		cr_assert_eq(st[i], 0);
		cr_assert_eq(strtoul(fsesl_reply_body(rep[i], NULL), NULL, 10), i);
		fsesl_reply_free(rep[i]);
	}
}

/* Refused items are answered in their slot; the others run. */
Test(many, refused_items_do_not_disturb_the_rest)
{
	fsesl_server_t to[5] = {srvs[0], 0x7777777777ull, srvs[1], srvs[2], srvs[0]};
	const char *cmds[5] = {"echo a", "echo b", "echo c\r\nexit", NULL, "echo e"};
	fsesl_reply *rep[5];
	int st[5];

	cr_assert_eq(fsesl_api_many(eng, 5, to, cmds, NULL, st, rep), 0);
	cr_assert_eq(st[0], 0);
	cr_assert_str_eq(fsesl_reply_body(rep[0], NULL), "a");
	cr_assert_eq(st[1], FSESL_EBADHANDLE);
	cr_assert_null(rep[1]);
	cr_assert_eq(st[2], FSESL_EINJECTION);
	cr_assert_null(rep[2]);
	cr_assert_eq(st[3], -EINVAL);
	cr_assert_null(rep[3]);
	cr_assert_eq(st[4], 0);
	cr_assert_str_eq(fsesl_reply_body(rep[4], NULL), "e");
	fsesl_reply_free(rep[0]);
	fsesl_reply_free(rep[4]);
}

/* A slow server costs its own slot a timeout; the fast ones answer. */
Test(many, slow_server_times_out_alone)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_server_t to[3] = {srvs[0], srvs[1], srvs[2]};
	const char *cmds[3] = {"echo fast0", "msleep 20000", "echo fast2"};
	fsesl_server_stats ss;
	fsesl_reply *rep[3];
	int st[3];

	/* The slow one sleeps 20 s; the fast ones have room even under ASan
	 * on a loaded machine. */
	o.timeout_ms = 2000;
	cr_assert_eq(fsesl_api_many(eng, 3, to, cmds, &o, st, rep), 0);
	cr_assert_eq(st[0], 0);
	cr_assert_str_eq(fsesl_reply_body(rep[0], NULL), "fast0");
	cr_assert_eq(st[1], -ETIMEDOUT);
	cr_assert_null(rep[1]);
	cr_assert_eq(st[2], 0);
	cr_assert_str_eq(fsesl_reply_body(rep[2], NULL), "fast2");
	/* Its place on the wire is kept until the late reply comes. */
	cr_assert_eq(fsesl_server_stats_get(eng, srvs[1], &ss), 0);
	cr_assert_eq(ss.in_flight, 1);
	cr_assert_eq(ss.timeouts, 1);
	fsesl_reply_free(rep[0]);
	fsesl_reply_free(rep[2]);
}

/* A server nobody listens on fails its slot with the connect error. */
Test(many, unreachable_server_fails_its_slot)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	fsesl_server_t down, to[2];
	const char *cmds[2] = {"echo up", "echo down"};
	fsesl_reply *rep[2];
	int st[2];

	/* Bound, never listening: connections are refused. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	down = et_server(eng, ntohs(a.sin_port), "ClueCon");
	to[0] = srvs[0];
	to[1] = down;
	cr_assert_eq(fsesl_api_many(eng, 2, to, cmds, NULL, st, rep), 0);
	cr_assert_eq(st[0], 0);
	cr_assert_str_eq(fsesl_reply_body(rep[0], NULL), "up");
	cr_assert_eq(st[1], -ECONNREFUSED, "got %s", fsesl_strerror(st[1]));
	cr_assert_null(rep[1]);
	fsesl_reply_free(rep[0]);
	cr_assert_eq(fsesl_server_put(eng, down), 0);
	close(fd);
}

Test(many, arguments)
{
	fsesl_server_t to[1] = {srvs[0]};
	const char *cmds[1] = {"echo x"};
	fsesl_reply *rep[1];
	int st[1];

	cr_assert_eq(fsesl_api_many(eng, 0, NULL, NULL, NULL, NULL, NULL), 0);
	cr_assert_eq(fsesl_api_many(NULL, 1, to, cmds, NULL, st, rep), -EINVAL);
	cr_assert_eq(fsesl_api_many(eng, 1, NULL, cmds, NULL, st, rep), -EINVAL);
	cr_assert_eq(fsesl_api_many(eng, 1, to, NULL, NULL, st, rep), -EINVAL);
	cr_assert_eq(fsesl_api_many(eng, 1, to, cmds, NULL, NULL, rep), -EINVAL);
	cr_assert_eq(fsesl_api_many(eng, 1, to, cmds, NULL, st, NULL), -EINVAL);
}

/* ---- from a callback: refused, the reactor must never wait ---------- */

static _Atomic int cb_rc = 1;

static void
call_many_from_cb(int status, const fsesl_reply *r, void *ud)
{
	fsesl_server_t to[1] = {srvs[0]};
	const char *cmds[1] = {"echo never"};
	fsesl_reply *rep[1];
	int st[1];

	(void)status;
	(void)r;
	(void)ud;
	atomic_store(&cb_rc, fsesl_api_many(eng, 1, to, cmds, NULL, st, rep));
}

Test(many, refused_from_a_callback)
{
	cr_assert_eq(fsesl_api_async(eng, srvs[0], "echo cb", NULL, call_many_from_cb, NULL), 0);
	cr_assert(WAIT_UNTIL(atomic_load(&cb_rc) != 1, 10000));
	cr_assert_eq(atomic_load(&cb_rc), FSESL_EINCALLBACK);
}

/* ---- a stop while a caller waits ------------------------------------- */

struct stopper {
	int st[4];
	fsesl_reply *rep[4];
	int rc;
};

static void *
many_waiter(void *arg)
{
	struct stopper *w = arg;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_server_t to[4] = {srvs[0], srvs[1], srvs[2], srvs[0]};
	const char *cmds[4] = {"msleep 30000", "msleep 30000", "msleep 30000", "echo queued"};

	o.timeout_ms = 60000;
	w->rc = fsesl_api_many(eng, 4, to, cmds, &o, w->st, w->rep);
	return NULL;
}

static uint64_t
api_seen(void)
{
	struct fsesl_sim_counters c;
	uint64_t n = 0;
	int i;

	for (i = 0; i < NSIM; i++) {
		fsesl_sim_counters(sims[i], &c);
		n += c.api;
	}
	return n;
}

Test(many, stop_completes_every_slot)
{
	struct stopper w = {.rc = 1};
	pthread_t t;
	uint64_t before = api_seen();
	int i;

	cr_assert_eq(pthread_create(&t, NULL, many_waiter, &w), 0);
	/* The three msleeps have reached their servers. */
	cr_assert(WAIT_UNTIL(api_seen() >= before + 3, 10000));
	for (i = 0; i < NSIM; i++) {
		cr_assert_eq(fsesl_server_put(eng, srvs[i]), 0);
		srvs[i] = 0;
	}
	cr_assert_eq(fsesl_engine_stop(eng), 0);
	eng = NULL;
	pthread_join(t, NULL);
	cr_assert_eq(w.rc, 0);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(w.st[i], FSESL_ESHUTDOWN, "slot %d: %s", i, fsesl_strerror(w.st[i]));
		cr_assert_null(w.rep[i]);
	}
}

/* ---- calls racing a stop: inside (slots complete) or refused whole ---- */

static _Atomic bool race_go;
static _Atomic int race_started;

struct racer {
	pthread_t t;
	int rc;
	int st[16];
	fsesl_reply *rep[16];
};

static void *
racer_main(void *arg)
{
	struct racer *r = arg;
	fsesl_server_t to[16];
	const char *cmds[16];
	int i;

	for (i = 0; i < 16; i++) {
		to[i] = srvs[i % NSIM];
		cmds[i] = "echo race";
	}
	while (!atomic_load(&race_go))
		sched_yield();
	atomic_fetch_add(&race_started, 1);
	r->rc = fsesl_api_many(eng, 16, to, cmds, NULL, r->st, r->rep);
	return NULL;
}

Test(many, racing_a_stop)
{
	struct racer r[8];
	int i, j, inside = 0;

	for (i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&r[i].t, NULL, racer_main, &r[i]), 0);
	atomic_store(&race_go, true);
	/* Stop while the calls are being made: some find the engine running,
	 * some stopping. The handles are still held: stop frees them. */
	while (atomic_load(&race_started) < 4)
		sched_yield();
	cr_assert_eq(fsesl_engine_stop(eng), 0);
	eng = NULL;
	for (i = 0; i < NSIM; i++)
		srvs[i] = 0;
	for (i = 0; i < 8; i++) {
		pthread_join(r[i].t, NULL);
		if (r[i].rc == FSESL_ESHUTDOWN)
			continue;
		cr_assert_eq(r[i].rc, 0, "racer %d: %s", i, fsesl_strerror(r[i].rc));
		inside++;
		for (j = 0; j < 16; j++) {
			if (r[i].st[j] == 0) {
				cr_assert_str_eq(fsesl_reply_body(r[i].rep[j], NULL), "race");
				fsesl_reply_free(r[i].rep[j]);
			} else {
				cr_assert_eq(r[i].st[j], FSESL_ESHUTDOWN, "racer %d slot %d: %s", i,
				    j, fsesl_strerror(r[i].st[j]));
				cr_assert_null(r[i].rep[j]);
			}
		}
	}
	cr_log_info("%d of 8 calls were inside the stop", inside);
}
