/*
 * test_sim_basic.c - the simulator's ordering rules and built-ins.
 *
 * Pipelining, event placement (after the reply that caused them, never while
 * a pipeline is unread), msleep parking one connection without blocking
 * another, the auth window, the event-queue kill, userauth, and the api
 * built-ins that have no real capture (originate / show channels / uuid_kill).
 */
#include "sim_client.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fsesl_sim *sim;
static uint16_t port;

static void
setup(void)
{
	sim = tc_sim_start(NULL, &port);
}

static void
teardown(void)
{
	fsesl_sim_stop(sim);
}

TestSuite(sim, .init = setup, .fini = teardown, .timeout = 30);

static char *
event_name(const struct tc *t, char *buf, size_t cap)
{
	struct fsesl_event *ev = NULL;
	enum fsesl_event_format f = t->msg.type == FSESL_MSG_EVENT_JSON  ? FSESL_EVFMT_JSON
	                            : t->msg.type == FSESL_MSG_EVENT_XML ? FSESL_EVFMT_XML
	                                                                 : FSESL_EVFMT_PLAIN;

	cr_assert_eq(fsesl_event_parse(f, t->msg.body, t->msg.body_len, NULL, &ev), 0);
	snprintf(buf, cap, "%s", ev->name ? ev->name : "");
	fsesl_event_free(ev);
	return buf;
}

Test(sim, pipeline_10000_echo_in_one_write)
{
	struct tc t;
	size_t cap = 10000 * 24, n = 0;
	char *cmds = malloc(cap);

	tc_open(&t, port);
	for (int i = 1; i <= 10000; i++)
		n += (size_t)snprintf(cmds + n, cap - n, "api echo %d\n\n", i);
	tc_send(&t, cmds, n);
	for (int i = 1; i <= 10000; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		cr_assert_eq(tc_next(&t), 1, "reply %d missing", i);
		cr_assert_eq(t.msg.type, FSESL_MSG_API_RESPONSE);
		cr_assert(tc_body_is(&t, want), "reply %d out of order", i);
	}
	struct fsesl_sim_counters c;
	fsesl_sim_counters(sim, &c);
	cr_expect_eq(c.api, 10000);
	free(cmds);
	tc_close(&t);
}

Test(sim, events_follow_their_reply_and_wait_for_the_pipeline)
{
	struct tc t;
	char nb[64];

	tc_open(&t, port);
	tc_sends(&t, "event plain API BACKGROUND_JOB\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK event listener enabled plain"));
	/* Three commands in one write: their three API events and the job come
	 * only after the last reply. */
	tc_sends(&t, "api echo a\n\nbgapi echo b\nJob-UUID: j-1\n\napi echo c\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "a"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK Job-UUID: j-1"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "c"));
	const char *want[] = {"API", "API", "BACKGROUND_JOB", "API"};
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(tc_next(&t), 1);
		cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
		cr_assert_str_eq(event_name(&t, nb, sizeof(nb)), want[i]);
	}
	tc_close(&t);
}

Test(sim, lone_lf_is_a_kick_without_reply)
{
	struct tc t;

	tc_open(&t, port);
	tc_sends(&t, "\n");
	tc_sends(&t, "\napi echo k\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "k"));
	struct fsesl_sim_counters c;
	fsesl_sim_counters(sim, &c);
	cr_expect_geq(c.kicks, 2);
	tc_close(&t);
}

Test(sim, msleep_parks_one_connection_only)
{
	struct tc a, b;

	cr_assert_eq(tc_connect(&a, port, 5000), 0);
	cr_assert_eq(tc_connect(&b, port, 5000), 0);
	tc_login(&a);
	tc_login(&b);
	/* a sleeps 2 s; b must be answered meanwhile, so the loop is not blocked. */
	tc_sends(&a, "api msleep 2000\n\napi echo after\n\n");
	tc_sends(&b, "api echo b\n\n");
	cr_assert_eq(tc_next(&b), 1);
	cr_assert(tc_body_is(&b, "b"));
	cr_assert(tc_quiet_for(&a, 0), "a answered before its msleep ended");
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "+OK"));
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "after"));
	tc_close(&a);
	tc_close(&b);
}

Test(sim, events_held_while_parked_then_dropped_by_exit)
{
	struct tc t;

	tc_open(&t, port);
	tc_sends(&t, "event plain HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&t), 1);
	tc_sends(&t, "api msleep 300\n\nexit\n\n");
	/* Wait until the msleep has been read (3rd command): the connection is
	 * then parked, with `exit` unread behind it. */
	struct fsesl_sim_counters c = {0};
	while (c.commands < 3)
		fsesl_sim_counters(sim, &c);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "+OK"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK bye"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert_eq(tc_next(&t), 0, "a queued event survived exit");
	tc_close(&t);
}

Test(sim, first_command_not_auth_disables_the_timeout)
{
	struct fsesl_sim_config cfg;
	uint16_t p;
	struct tc t, u;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	cfg.auth_timeout_ms = 100;
	fsesl_sim *s = tc_sim_start(&cfg, &p);
	cr_assert_eq(tc_connect(&t, p, 5000), 0);
	cr_assert_eq(tc_connect(&u, p, 5000), 0);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(tc_next(&u), 1);
	tc_sends(&t, "api status\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "-ERR command not found"));
	/* u says nothing: notice and close after the timeout. */
	cr_assert_eq(tc_next(&u), 1);
	cr_assert_eq(u.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert_eq(tc_next(&u), 0);
	/* t is still open well after the timeout, and auth still works. */
	cr_assert(tc_quiet_for(&t, 300));
	tc_sends(&t, "auth ClueCon\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK accepted"));
	tc_close(&t);
	tc_close(&u);
	fsesl_sim_stop(s);
}

Test(sim, slow_consumer_is_killed_after_drop_streak)
{
	struct fsesl_sim_config cfg;
	uint16_t p;
	struct tc t;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	cfg.event_queue_max = 10;
	cfg.event_drop_kill = 5;
	fsesl_sim *s = tc_sim_start(&cfg, &p);
	tc_open(&t, p);
	tc_sends(&t, "event plain CUSTOM x::y\n\n");
	cr_assert_eq(tc_next(&t), 1);
	/* Park the connection so nothing drains, then overfill its queue. */
	tc_sends(&t, "api msleep 500\n\n");
	struct fsesl_sim_counters c = {0};
	while (c.commands < 3)
		fsesl_sim_counters(s, &c);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "x::y", NULL, 0, NULL), 0);
	fsesl_sim_counters(s, &c);
	cr_expect_eq(c.events_dropped, 6);
	cr_expect_eq(c.lost_event_kills, 1);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert(tc_body_is(&t, "killed listener because of lost events\n"));
	cr_assert_eq(tc_next(&t), 0);
	tc_close(&t);
	fsesl_sim_stop(s);
}

Test(sim, originate_show_and_kill)
{
	struct tc t;
	char nb[64], uuid[64];

	tc_open(&t, port);
	tc_sends(&t, "event plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE\n\n");
	cr_assert_eq(tc_next(&t), 1);
	tc_sends(&t, "api originate loopback/9196/default &park()\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_API_RESPONSE);
	cr_assert_eq(t.msg.body_len, 41);
	cr_assert_eq(memcmp(t.msg.body, "+OK ", 4), 0);
	snprintf(uuid, sizeof(uuid), "%.36s", t.msg.body + 4);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_str_eq(event_name(&t, nb, sizeof(nb)), "CHANNEL_CREATE");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_str_eq(event_name(&t, nb, sizeof(nb)), "CHANNEL_ANSWER");
	tc_sends(&t, "api show channels\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(strstr(t.msg.body, uuid), "show channels lacks the call");
	cr_assert(strstr(t.msg.body, "\n1 total.\n"));
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "api uuid_kill %s\n\n", uuid);
	tc_sends(&t, cmd);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "+OK\n"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_str_eq(event_name(&t, nb, sizeof(nb)), "CHANNEL_HANGUP_COMPLETE");
	tc_sends(&t, "api show calls\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "\n0 total.\n"));
	tc_sends(&t, cmd);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "-ERR No such channel!\n"));
	tc_close(&t);
}

Test(sim, heartbeat_carries_the_load)
{
	struct tc t;
	struct fsesl_sim_load load = {.idle_cpu = 42.5, .session_count = 7, .max_sessions = 50};

	tc_open(&t, port);
	tc_sends(&t, "event json HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&t), 1);
	fsesl_sim_set_load(sim, &load);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_JSON);
	struct fsesl_event *ev = NULL;
	cr_assert_eq(fsesl_event_parse(FSESL_EVFMT_JSON, t.msg.body, t.msg.body_len, NULL, &ev), 0);
	struct fsesl_heartbeat hb;
	cr_assert_eq(fsesl_heartbeat_parse(ev, &hb), 0);
	cr_expect_eq(hb.session_count, 7);
	cr_expect_eq(hb.max_sessions, 50);
	cr_expect(hb.idle_cpu > 42.49 && hb.idle_cpu < 42.51);
	fsesl_event_free(ev);
	tc_close(&t);
}

Test(sim, heartbeat_interval_timer)
{
	struct tc t;
	char nb[64];

	tc_open(&t, port);
	tc_sends(&t, "event plain HEARTBEAT RE_SCHEDULE\n\n");
	cr_assert_eq(tc_next(&t), 1);
	fsesl_sim_set_heartbeat_interval(sim, 50);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(tc_next(&t), 1);
		cr_assert_str_eq(event_name(&t, nb, sizeof(nb)), "HEARTBEAT");
		cr_assert_eq(tc_next(&t), 1);
		cr_assert_str_eq(event_name(&t, nb, sizeof(nb)), "RE_SCHEDULE");
	}
	fsesl_sim_set_heartbeat_interval(sim, 0);
	tc_close(&t);
}

Test(sim, recorded_commands)
{
	struct tc t;
	char **lines;

	fsesl_sim_record_commands(sim, true);
	tc_open(&t, port);
	tc_sends(&t, "event plain HEARTBEAT\n\nfilter Unique-ID abc\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(tc_next(&t), 1);
	size_t n = fsesl_sim_recorded(sim, &lines);
	cr_assert_eq(n, 3);
	cr_expect_str_eq(lines[0], "auth ClueCon");
	cr_expect_str_eq(lines[1], "event plain HEARTBEAT");
	cr_expect_str_eq(lines[2], "filter Unique-ID abc");
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	tc_close(&t);
}

Test(sim, sendevent_reaches_other_subscribers_with_filters)
{
	struct tc a, b;
	char nb[64];

	cr_assert_eq(tc_connect(&a, port, 5000), 0);
	cr_assert_eq(tc_connect(&b, port, 5000), 0);
	tc_login(&a);
	tc_login(&b);
	tc_sends(&b, "event plain CUSTOM my::ev\n\nfilter X-K /^ke+p$/\n\n");
	cr_assert_eq(tc_next(&b), 1);
	cr_assert_eq(tc_next(&b), 1);
	tc_sends(&a, "sendevent CUSTOM\nEvent-Subclass: my::ev\nX-K: drop\n\n"
	             "sendevent CUSTOM\nEvent-Subclass: my::ev\nX-K: keeep\n\n");
	cr_assert_eq(tc_next(&a), 1);
	cr_assert_eq(tc_next(&a), 1);
	cr_assert_eq(tc_next(&b), 1);
	cr_assert_str_eq(event_name(&b, nb, sizeof(nb)), "CUSTOM");
	cr_assert(strstr(b.msg.body, "X-K: keeep\n"));
	tc_close(&a);
	tc_close(&b);
}

Test(sim, noevents_drops_queued_events_keeps_filters)
{
	struct tc t;

	tc_open(&t, port);
	tc_sends(&t, "event plain HEARTBEAT\n\nfilter X-Nope yes\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(tc_next(&t), 1);
	tc_sends(&t, "noevents\n\nevent plain HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK no longer listening for events"));
	cr_assert_eq(tc_next(&t), 1);
	fsesl_sim_fire_heartbeat(sim);
	/* The filter survived noevents: the heartbeat (no X-Nope) is blocked. */
	tc_sends(&t, "api echo end\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "end"));
	tc_sends(&t, "filter delete all\n\n");
	cr_assert_eq(tc_next(&t), 1);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_close(&t);
}

Test(sim, bad_password_closes_after_notice)
{
	struct tc t;
	struct fsesl_sim_counters c;

	cr_assert_eq(tc_connect(&t, port, 5000), 0);
	cr_assert_eq(tc_next(&t), 1);
	tc_sends(&t, "auth ClueCon \n\napi echo never\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "-ERR invalid"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert_eq(t.msg.body_len, 67);
	cr_assert_eq(tc_next(&t), 0);
	fsesl_sim_counters(sim, &c);
	cr_expect_eq(c.auth_failed, 1);
	tc_close(&t);
}

Test(sim, subscriber_that_stops_reading_is_killed)
{
	struct fsesl_sim_config cfg;
	uint16_t p;
	struct tc t;
	static char body[4096];

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	cfg.event_queue_max = 200;
	cfg.event_drop_kill = 10;
	fsesl_sim *s = tc_sim_start(&cfg, &p);
	tc_open(&t, p);
	tc_sends(&t, "event plain CUSTOM big::one\n\n");
	cr_assert_eq(tc_next(&t), 1);
	/* The client reads nothing now: kernel buffers and the server's output
	 * fill, then its queue, then the drops start. */
	memset(body, 'x', sizeof(body) - 1);
	struct fsesl_sim_counters c = {0};
	for (int i = 0; i < 100000 && c.lost_event_kills == 0; i++) {
		cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "big::one", NULL, 0, body), 0);
		fsesl_sim_counters(s, &c);
	}
	cr_assert_eq(c.lost_event_kills, 1, "never killed");
	cr_expect_eq(c.events_dropped, 11);
	/* Reading again: the events that made it, then the notice, then EOF. */
	int frames = 0;
	while (tc_next(&t) == 1) {
		frames++;
		if (t.msg.type == FSESL_MSG_DISCONNECT_NOTICE)
			break;
		cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	}
	cr_assert_eq(t.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert(tc_body_is(&t, "killed listener because of lost events\n"));
	cr_assert_eq(tc_next(&t), 0);
	cr_assert_gt(frames, 200);
	tc_close(&t);
	fsesl_sim_stop(s);
}

Test(sim, oversized_client_content_length_closes)
{
	struct tc t;

	tc_open(&t, port);
	tc_sends(&t, "api echo x\nContent-Length: abc\n\napi echo y\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "x"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "y"));
	/* Over 16 MiB: the 1.11.2+ behaviour (1.10.12 would abort FreeSWITCH). */
	tc_sends(&t, "sendevent CUSTOM\nContent-Length: 99999999\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert_eq(tc_next(&t), 0);
	tc_close(&t);
}

Test(sim, many_connections_each_in_order)
{
	enum { N = 50, CMDS = 200 };
	static struct tc t[N];
	char buf[64];

	for (int i = 0; i < N; i++) {
		tc_open(&t[i], port);
	}
	for (int i = 0; i < N; i++) {
		static char cmds[CMDS * 32];
		size_t n = 0;
		for (int k = 0; k < CMDS; k++)
			n += (size_t)snprintf(
			    cmds + n, sizeof(cmds) - n, "api echo %d-%d\n\n", i, k);
		tc_send(&t[i], cmds, n);
	}
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < CMDS; k++) {
			snprintf(buf, sizeof(buf), "%d-%d", i, k);
			cr_assert_eq(tc_next(&t[i]), 1);
			cr_assert(tc_body_is(&t[i], buf), "connection %d reply %d", i, k);
		}
		tc_close(&t[i]);
	}
	struct fsesl_sim_counters c;
	fsesl_sim_counters(sim, &c);
	cr_expect_eq(c.api, N * CMDS);
	cr_expect_eq(c.accepted, N);
}

Test(sim, event_poll_holds_events_until_tick_or_kick)
{
	struct fsesl_sim_config cfg;
	uint16_t p;
	struct tc t;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	cfg.event_poll_ms = 1000;
	fsesl_sim *s = tc_sim_start(&cfg, &p);
	tc_open(&t, p);
	tc_sends(&t, "event plain CUSTOM t::p\n\n");
	cr_assert_eq(tc_next(&t), 1);
	/* Fired while the connection "sleeps" in its poll: held... */
	cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "t::p", NULL, 0, NULL), 0);
	cr_assert(tc_quiet_for(&t, 100), "event delivered before the poll tick");
	/* ...until a lone LF wakes the thread. */
	tc_sends(&t, "\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	/* Without a kick it still comes, at the next tick. */
	cr_assert_eq(fsesl_sim_fire_event(s, "CUSTOM", "t::p", NULL, 0, NULL), 0);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_close(&t);
	fsesl_sim_stop(s);
}

Test(sim, command_cost_keeps_order_and_other_connections_run)
{
	struct fsesl_sim_config cfg;
	uint16_t p;
	struct tc a, b;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	cfg.api_cost_us = 200;
	cfg.bgapi_cost_us = 300000;
	fsesl_sim *s = tc_sim_start(&cfg, &p);
	cr_assert_eq(tc_connect(&a, p, 5000), 0);
	cr_assert_eq(tc_connect(&b, p, 5000), 0);
	tc_login(&a);
	tc_login(&b);
	/* a is held 300 ms by its bgapi; b's api commands run meanwhile (its
	 * replies are not checked against a clock: speed belongs to bench/). */
	tc_sends(&a, "bgapi echo slow\nJob-UUID: c-1\n\napi echo a\n\n");
	tc_sends(&b, "api echo 1\n\napi echo 2\n\napi echo 3\n\n");
	for (int i = 1; i <= 3; i++) {
		char want[8];
		snprintf(want, sizeof(want), "%d", i);
		cr_assert_eq(tc_next(&b), 1);
		cr_assert(tc_body_is(&b, want));
	}
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_reply_is(&a, "+OK Job-UUID: c-1"));
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "a"));
	tc_close(&a);
	tc_close(&b);
	fsesl_sim_stop(s);
}

Test(sim, unload_trap_shuts_every_connection)
{
	struct tc a, b;
	struct fsesl_sim_counters c;

	cr_assert_eq(tc_connect(&a, port, 5000), 0);
	cr_assert_eq(tc_connect(&b, port, 5000), 0);
	tc_login(&a);
	tc_login(&b);
	/* Any command, any header: here a sendevent header value. */
	tc_sends(&a, "sendevent CUSTOM\nX-Note: please UNLOAD Mod_Event_Socket\n\n");
	cr_assert_eq(tc_next(&a), 1);
	cr_assert_eq(a.msg.type, FSESL_MSG_API_RESPONSE, "the trap answers as api/response");
	cr_assert_eq(memcmp(a.msg.body, "+OK Job-UUID: ", 14), 0);
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "The system is being shut down.\n"));
	cr_assert_eq(tc_next(&a), 0);
	cr_assert_eq(tc_next(&b), 1);
	cr_assert(tc_body_is(&b, "The system is being shut down.\n"));
	cr_assert_eq(tc_next(&b), 0);
	fsesl_sim_counters(sim, &c);
	cr_expect_eq(c.unload_traps, 1);
	tc_close(&a);
	tc_close(&b);
	/* The module is gone until the test "reloads" it. */
	cr_assert_eq(tc_connect(&a, port, 5000), -ECONNREFUSED);
	fsesl_sim_clear_faults(sim);
	tc_open(&a, port);
	tc_close(&a);
}
