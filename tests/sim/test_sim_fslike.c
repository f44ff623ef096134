/*
 * test_sim_fslike.c - the FreeSWITCH-like mode's rules (docs/protocol.md
 * §9.1-9.4): a thread per connection reading one byte per recv(), api run
 * inline, replies strictly in order, events written only when the poll
 * times out or a byte arrives. Behaviour only: the mode's speed belongs to
 * fsesl-sim-speed and docs/simulator.md.
 */
#include "sim_client.h"

#include <criterion/criterion.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fsesl_sim *
start(unsigned int poll_ms, uint16_t *port)
{
	struct fsesl_sim_config cfg;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	fsesl_sim_config_fs_like(&cfg);
	cfg.event_poll_ms = poll_ms;
	return tc_sim_start(&cfg, port);
}

static struct fsesl_sim_counters
counters(fsesl_sim *s)
{
	struct fsesl_sim_counters c;

	fsesl_sim_counters(s, &c);
	return c;
}

/* Until the server has counted `n` polls (bounded). */
static bool
wait_polls(fsesl_sim *s, uint64_t n)
{
	for (long i = 0; i < 20000000; i++) {
		if (counters(s).fs_polls >= n)
			return true;
		sched_yield();
	}
	return false;
}

/* Until the server has counted `n` api commands (bounded). */
static bool
wait_api(fsesl_sim *s, uint64_t n)
{
	for (long i = 0; i < 20000000; i++) {
		if (counters(s).api >= n)
			return true;
		sched_yield();
	}
	return false;
}

TestSuite(fslike, .timeout = 60);

Test(fslike, replies_strictly_in_order_on_every_connection)
{
	enum { N = 1500, CONNS = 3 };
	uint16_t p;
	fsesl_sim *s = start(20, &p);
	struct tc t[CONNS];
	char *pipe = malloc(N * 48);

	cr_assert(pipe);
	for (int k = 0; k < CONNS; k++)
		tc_open(&t[k], p);
	/* Each connection gets its whole pipeline in one write, mixing api,
	 * bgapi and plain commands; the threads run at once. */
	for (int k = 0; k < CONNS; k++) {
		size_t o = 0;
		for (int i = 0; i < N; i++) {
			if (i % 10 == 5)
				o += (size_t)sprintf(
				    pipe + o, "bgapi echo %d\nJob-UUID: j-%d-%d\n\n", i, k, i);
			else if (i % 10 == 7)
				o += (size_t)sprintf(pipe + o, "nixevent CUSTOM\n\n");
			else
				o += (size_t)sprintf(pipe + o, "api echo %d-%d\n\n", k, i);
		}
		tc_send(&t[k], pipe, o);
	}
	for (int k = 0; k < CONNS; k++) {
		for (int i = 0; i < N; i++) {
			char want[64];
			cr_assert_eq(tc_next(&t[k]), 1, "conn %d: reply %d missing", k, i);
			if (i % 10 == 5) {
				snprintf(want, sizeof(want), "+OK Job-UUID: j-%d-%d", k, i);
				cr_assert(tc_reply_is(&t[k], want), "conn %d: reply %d", k, i);
			} else if (i % 10 == 7) {
				cr_assert(tc_reply_is(&t[k], "+OK events nixed"),
				    "conn %d: reply %d", k, i);
			} else {
				snprintf(want, sizeof(want), "%d-%d", k, i);
				cr_assert(tc_body_is(&t[k], want), "conn %d: reply %d", k, i);
			}
		}
		tc_close(&t[k]);
	}
	free(pipe);
	fsesl_sim_stop(s);
}

Test(fslike, api_runs_inline_and_holds_only_its_connection)
{
	static const char first[] = "api msleep 1000\n\n";
	uint16_t p;
	fsesl_sim *s = start(20, &p);
	struct tc a, b;

	tc_open(&a, p);
	tc_open(&b, p);
	tc_sends(&a, "event plain CUSTOM t::x\n\n");
	cr_assert_eq(tc_next(&a), 1);
	uint64_t api0 = counters(s).api, in0 = counters(s).bytes_in;

	/* The msleep and a command behind it, in one write. */
	tc_sends(&a, "api msleep 1000\n\napi echo behind\n\n");
	cr_assert(wait_api(s, api0 + 1), "the msleep never started");
	/* While it runs, the thread has read the msleep and not one byte
	 * more: the next command waits in the kernel (one byte per recv()). */
	cr_assert_eq(counters(s).bytes_in - in0, sizeof(first) - 1);
	/* Another connection is served meanwhile. */
	tc_sends(&b, "api echo other\n\n");
	cr_assert_eq(tc_next(&b), 1);
	cr_assert(tc_body_is(&b, "other"));
	/* An event and a kick for the busy connection change nothing yet: the
	 * kick is not even read. */
	uint64_t in1 = counters(s).bytes_in;
	cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "t::x", NULL, 0, NULL), 0);
	tc_sends(&a, "\n");
	cr_assert(tc_quiet_for(&a, 50), "the held connection wrote something");
	cr_assert_eq(counters(s).bytes_in, in1);

	/* Then, in order: the msleep's reply, the command behind it, and only
	 * once no byte of a command is in hand, the event. */
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "+OK"));
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "behind"));
	cr_assert_eq(tc_next(&a), 1);
	cr_assert_eq(a.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_close(&a);
	tc_close(&b);
	fsesl_sim_stop(s);
}

Test(fslike, events_wait_for_the_poll_or_a_kick)
{
	uint16_t p;
	fsesl_sim *s = start(1000, &p);
	struct tc t;

	tc_open(&t, p);
	tc_sends(&t, "event plain CUSTOM t::p\n\n");
	cr_assert_eq(tc_next(&t), 1);
	/* Queued while the thread sleeps in its poll, once it has looked at
	 * its queue after the reply (a poll counted after the reply was
	 * read is at worst the next one): held... */
	cr_assert(wait_polls(s, counters(s).fs_polls + 1), "the thread never polled");
	cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "t::p", NULL, 0, NULL), 0);
	cr_assert(tc_quiet_for(&t, 100), "event written before the poll ended");
	/* ...until a lone LF wakes the thread, which answers it with nothing
	 * but the event. */
	uint64_t kicks = counters(s).kicks;
	tc_sends(&t, "\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	cr_assert_eq(counters(s).kicks, kicks + 1);
	/* Without a kick it still comes, when the poll times out. */
	cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "t::p", NULL, 0, NULL), 0);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_close(&t);
	fsesl_sim_stop(s);
}

Test(fslike, events_a_command_causes_follow_its_reply)
{
	uint16_t p;
	fsesl_sim *s = start(20, &p);
	struct tc t;

	tc_open(&t, p);
	tc_sends(&t, "event plain API CUSTOM t::s\n\n");
	cr_assert_eq(tc_next(&t), 1);
	/* The API event of an api, and a sendevent's own event: each after
	 * its command's reply (they reach the queue through the dispatch
	 * thread, after the reply is out). */
	tc_sends(&t, "api echo one\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "one"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_sends(&t, "sendevent CUSTOM\nEvent-Subclass: t::s\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_COMMAND_REPLY);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_close(&t);
	fsesl_sim_stop(s);
}

Test(fslike, stop_ends_every_connection_thread)
{
	enum { CONNS = 8 };
	uint16_t p;
	fsesl_sim *s = start(20, &p);
	struct tc t[CONNS];

	for (int k = 0; k < CONNS; k++)
		tc_open(&t[k], p);
	/* One connection busy in an api, one that stopped reading mid-reply,
	 * the rest idle: stop must end them all, and each peer sees the
	 * close. */
	tc_sends(&t[0], "api msleep 10000\n\n");
	cr_assert(wait_api(s, 1));
	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_STALL, 0, 0), 0);
	fsesl_sim_stop(s);
	for (int k = 0; k < CONNS; k++) {
		cr_assert_geq(tc_drain(&t[k]), 0);
		cr_assert(t[k].eof, "connection %d still open after stop", k);
		tc_close(&t[k]);
	}
}
