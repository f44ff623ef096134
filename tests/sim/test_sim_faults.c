/*
 * test_sim_faults.c - one test per simulator fault: it happens, and it is
 * counted in fsesl_sim_counters().faults[]. Built twice: against the
 * default loop (test_sim_faults) and against the FreeSWITCH-like mode's
 * threads (test_sim_faults_fs, SIM_TEST_FS_LIKE), where every fault must
 * act the same.
 */
#include "sim_client.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

static fsesl_sim *sim;
static uint16_t port;

static void
setup(void)
{
	struct fsesl_sim_config cfg;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
#ifdef SIM_TEST_FS_LIKE
	fsesl_sim_config_fs_like(&cfg);
#endif
	sim = tc_sim_start(&cfg, &port);
}

static void
teardown(void)
{
	fsesl_sim_stop(sim);
}

TestSuite(fault, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t
counted(enum fsesl_sim_fault f)
{
	struct fsesl_sim_counters c;

	fsesl_sim_counters(sim, &c);
	return c.faults[f];
}

static void
login(struct tc *t)
{
	cr_assert_eq(tc_connect(t, port, 5000), 0);
	tc_login(t);
}

Test(fault, delay)
{
	struct tc t;

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_DELAY, 200, 0), 0);
	tc_sends(&t, "api echo x\n\n");
	cr_assert(tc_quiet_for(&t, 50), "reply came before the delay");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "x"));
	cr_expect_eq(counted(FSESL_SIM_FAULT_DELAY), 1);
	tc_close(&t);
}

Test(fault, stall)
{
	struct tc t;

	login(&t);
	uint64_t id;
	cr_assert_eq(fsesl_sim_conn_ids(sim, &id, 1), 1);
	cr_assert_eq(fsesl_sim_fault(sim, id, FSESL_SIM_FAULT_STALL, 0, 0), 0);
	tc_sends(&t, "api echo x\n\n");
	cr_assert(tc_quiet_for(&t, 100), "a stalled server answered");
	cr_expect_eq(counted(FSESL_SIM_FAULT_STALL), 1);
	fsesl_sim_clear_faults(sim);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "x"));
	tc_close(&t);
}

Test(fault, close_after_bytes)
{
	struct tc t;
	char buf[256];

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_CLOSE_AFTER_BYTES, 10, 0), 0);
	tc_sends(&t, "api echo hello\n\n");
	size_t n = 0;
	ssize_t r;
	while ((r = recv(t.fd, buf + n, sizeof(buf) - n, 0)) > 0)
		n += (size_t)r;
	cr_assert_eq(n, 10);
	cr_assert_eq(memcmp(buf, "Content-Ty", 10), 0);
	cr_expect_eq(counted(FSESL_SIM_FAULT_CLOSE_AFTER_BYTES), 1);
	tc_close(&t);
}

Test(fault, close_after_msgs)
{
	struct tc t;

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_CLOSE_AFTER_MSGS, 2, 0), 0);
	tc_sends(&t, "api echo 1\n\napi echo 2\n\napi echo 3\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "1"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "2"));
	cr_assert_eq(tc_next(&t), 0);
	cr_expect_eq(counted(FSESL_SIM_FAULT_CLOSE_AFTER_MSGS), 1);
	tc_close(&t);
}

Test(fault, close_mid_frame)
{
	struct tc t;

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_CLOSE_MID_FRAME, 0, 0), 0);
	tc_sends(&t, "api echo 0123456789\n\n");
	cr_assert_eq(tc_next(&t), 0, "a whole frame arrived");
	cr_assert_gt(t.len, 0, "nothing of the frame arrived");
	cr_expect_eq(counted(FSESL_SIM_FAULT_CLOSE_MID_FRAME), 1);
	tc_close(&t);
}

Test(fault, garbage)
{
	struct tc t;
	char buf[256];

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_GARBAGE, 32, 0), 0);
	tc_sends(&t, "api echo x\n\n");
	size_t n = 0;
	while (n < 32) {
		ssize_t r = recv(t.fd, buf + n, sizeof(buf) - n, 0);
		cr_assert_gt(r, 0);
		n += (size_t)r;
	}
	cr_assert_eq(n, 32);
	cr_assert_neq(memcmp(buf, "Content-Type", 12), 0);
	cr_expect_eq(counted(FSESL_SIM_FAULT_GARBAGE), 1);
	tc_close(&t);
}

Test(fault, tiny_writes)
{
	struct tc t;
	char buf[64];

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_TINY_WRITES, 3, 2000), 0);
	tc_sends(&t, "api echo tiny\n\n");
	ssize_t r = recv(t.fd, buf, sizeof(buf), 0);
	cr_assert_eq(r, 3, "first read got %zd bytes, want 3", r);
	/* The rest still arrives, in order, as one frame. */
	memcpy(t.buf = realloc(t.buf, t.cap = 65536), buf, 3);
	t.len = 3;
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "tiny"));
	cr_expect_geq(counted(FSESL_SIM_FAULT_TINY_WRITES), 2);
	tc_close(&t);
}

Test(fault, refuse_then_reopen)
{
	struct tc t;

	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_REFUSE, 0, 0), 0);
	cr_assert_eq(tc_connect(&t, port, 5000), -ECONNREFUSED);
	cr_expect_eq(counted(FSESL_SIM_FAULT_REFUSE), 1);
	fsesl_sim_clear_faults(sim);
	login(&t);
	tc_close(&t);
}

Test(fault, silent_accept)
{
	struct tc t;

	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_SILENT_ACCEPT, 0, 0), 0);
	cr_assert_eq(tc_connect(&t, port, 5000), 0);
	tc_sends(&t, "auth ClueCon\n\n");
	cr_assert(tc_quiet_for(&t, 100), "greeting or reply from a silent accept");
	cr_expect_eq(counted(FSESL_SIM_FAULT_SILENT_ACCEPT), 1);
	tc_close(&t);
}

Test(fault, rude_reject)
{
	struct tc t;

	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_RUDE_REJECT, 0, 0), 0);
	cr_assert_eq(tc_connect(&t, port, 5000), 0);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_RUDE_REJECTION);
	cr_assert(tc_body_is(&t, "Access Denied, go away.\n"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_DISCONNECT_NOTICE);
	cr_assert_eq(tc_next(&t), 0);
	cr_expect_eq(counted(FSESL_SIM_FAULT_RUDE_REJECT), 1);
	tc_close(&t);
}

Test(fault, no_heartbeat)
{
	struct tc t;

	login(&t);
	tc_sends(&t, "event plain HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_NO_HEARTBEAT, 0, 0), 0);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert(tc_quiet_for(&t, 50));
	cr_expect_eq(counted(FSESL_SIM_FAULT_NO_HEARTBEAT), 1);
	fsesl_sim_clear_faults(sim);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
	tc_close(&t);
}

Test(fault, event_flood)
{
	struct tc t;

	login(&t);
	tc_sends(&t, "event plain CUSTOM sim::flood\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_EVENT_FLOOD, 20000, 0), 0);
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(tc_next(&t), 1);
		cr_assert_eq(t.msg.type, FSESL_MSG_EVENT_PLAIN);
		cr_assert(strstr(t.msg.body, "Event-Subclass: sim%3A%3Aflood\n"));
	}
	fsesl_sim_clear_faults(sim);
	cr_expect_geq(counted(FSESL_SIM_FAULT_EVENT_FLOOD), 200);
	tc_close(&t);
}

Test(fault, drop_reply)
{
	struct tc t;

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_DROP_REPLY, 2, 0), 0);
	tc_sends(&t, "api echo 1\n\napi echo 2\n\napi echo 3\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "1"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "3"), "the second reply was not dropped");
	cr_expect_eq(counted(FSESL_SIM_FAULT_DROP_REPLY), 1);
	tc_close(&t);
}

/* One reply nobody asked for, of the chosen type, right before the reply to
 * the b-th next command; the real replies all follow, in order. */
Test(fault, inject_reply)
{
	struct tc t;

	login(&t);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_INJECT_REPLY, 7, 0), -EINVAL);
	cr_assert_eq(fsesl_sim_fault(
	                 sim, 0, FSESL_SIM_FAULT_INJECT_REPLY, FSESL_SIM_INJECT_COMMAND_REPLY, 2),
	    0);
	tc_sends(&t, "api echo 1\n\napi echo 2\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "1"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_COMMAND_REPLY, "no injected reply before the second");
	cr_assert(tc_reply_is(&t, "+OK"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "2"));
	cr_expect_eq(counted(FSESL_SIM_FAULT_INJECT_REPLY), 1);
	/* One-shot: the next command is answered alone. */
	tc_sends(&t, "event plain HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK event listener enabled plain"));

	cr_assert_eq(
	    fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_INJECT_REPLY, FSESL_SIM_INJECT_API_RESPONSE, 0),
	    0);
	tc_sends(&t, "noevents\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_API_RESPONSE, "no injected api/response");
	cr_assert(tc_body_is(&t, "+OK\n"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_COMMAND_REPLY);
	cr_assert(tc_reply_is(&t, "+OK no longer listening for events"));
	cr_expect_eq(counted(FSESL_SIM_FAULT_INJECT_REPLY), 2);
	tc_close(&t);
}

Test(fault, kill_all_restarts)
{
	struct tc a, b;
	char before[64], after[64];

	login(&a);
	login(&b);
	tc_sends(&a, "event plain HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&a), 1);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(tc_next(&a), 1);
	const char *cu = strstr(a.msg.body, "Core-UUID: ");
	cr_assert(cu);
	snprintf(before, sizeof(before), "%.36s", cu + 11);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0), 0);
	cr_assert_eq(tc_next(&a), 0);
	cr_assert_eq(tc_next(&b), 0);
	cr_expect_eq(counted(FSESL_SIM_FAULT_KILL_ALL), 1);
	tc_close(&a);
	tc_close(&b);
	/* A new Core-UUID tells clients the server restarted. */
	login(&a);
	tc_sends(&a, "event plain HEARTBEAT\n\n");
	cr_assert_eq(tc_next(&a), 1);
	fsesl_sim_fire_heartbeat(sim);
	cr_assert_eq(tc_next(&a), 1);
	cu = strstr(a.msg.body, "Core-UUID: ");
	cr_assert(cu);
	snprintf(after, sizeof(after), "%.36s", cu + 11);
	cr_expect_str_neq(before, after);
	tc_close(&a);
}

Test(fault, per_connection_only_hits_that_connection)
{
	struct tc a, b;
	uint64_t ids[2];

	login(&a);
	login(&b);
	cr_assert_eq(fsesl_sim_conn_ids(sim, ids, 2), 2);
	/* Newest first: ids[0] is b. */
	cr_assert_eq(fsesl_sim_fault(sim, ids[0], FSESL_SIM_FAULT_DROP_REPLY, 1, 0), 0);
	cr_assert_eq(fsesl_sim_fault(sim, 999, FSESL_SIM_FAULT_DROP_REPLY, 1, 0), -ENOENT);
	tc_sends(&a, "api echo a1\n\n");
	tc_sends(&b, "api echo b1\n\napi echo b2\n\n");
	cr_assert_eq(tc_next(&a), 1);
	cr_assert(tc_body_is(&a, "a1"));
	cr_assert_eq(tc_next(&b), 1);
	cr_assert(tc_body_is(&b, "b2"));
	tc_close(&a);
	tc_close(&b);
}

Test(fault, own_job_uuid)
{
	struct tc t;
	char reply_id[80], ev_id[80];

	login(&t);
	tc_sends(&t, "event plain BACKGROUND_JOB\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_OWN_JOB_UUID, 0, 0), 0);
	tc_sends(&t, "bgapi echo own\nJob-UUID: client-chosen-id\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_not_null(tc_header(&t, "Job-UUID", reply_id, sizeof(reply_id)));
	cr_assert_str_neq(reply_id, "client-chosen-id");
	cr_assert_eq(strlen(reply_id), 36);
	cr_assert(strstr(tc_header(&t, "Reply-Text", ev_id, sizeof(ev_id)), reply_id));
	cr_assert_eq(tc_next(&t), 1); /* the BACKGROUND_JOB, with the same id */
	cr_assert(strstr(t.msg.body, "Job-UUID: ") != NULL);
	snprintf(ev_id, sizeof(ev_id), "%.36s", strstr(t.msg.body, "Job-UUID: ") + 10);
	cr_assert_str_eq(ev_id, reply_id);
	cr_expect_eq(counted(FSESL_SIM_FAULT_OWN_JOB_UUID), 1);

	/* a = 1: the reply says +OK and nothing else. */
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_OWN_JOB_UUID, 1, 0), 0);
	tc_sends(&t, "bgapi echo bare\nJob-UUID: client-chosen-id\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK"));
	cr_assert_null(tc_header(&t, "Job-UUID", reply_id, sizeof(reply_id)));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(strstr(t.msg.body, "Job-UUID: ") && !strstr(t.msg.body, "client-chosen-id"));
	cr_expect_eq(counted(FSESL_SIM_FAULT_OWN_JOB_UUID), 2);
	tc_close(&t);
}

Test(fault, result_before_reply)
{
	struct tc t;

	login(&t);
	tc_sends(&t, "event plain BACKGROUND_JOB\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_RESULT_BEFORE_REPLY, 0, 0), 0);
	tc_sends(&t, "bgapi echo first\nJob-UUID: j-1\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(strstr(t.msg.body, "Job-UUID: j-1") != NULL, "the result was not first");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK Job-UUID: j-1"));
	cr_expect_eq(counted(FSESL_SIM_FAULT_RESULT_BEFORE_REPLY), 1);
	tc_close(&t);
}

/* Flood events are cut from a template (sim_flood.c): each one must still
 * decode whole in every format, carry its own numbers, and meet filters
 * with them. */
Test(fault, event_flood_every_format_numbered_and_filtered)
{
	static const char *const subs[] = {
	    "event plain CUSTOM sim::flood\n\n",
	    "event json CUSTOM sim::flood\n\n",
	    "event xml CUSTOM sim::flood\n\n",
	    "event plain CUSTOM sim::flood\n\nfilter Flood-Seq /[05]$/\n\n",
	};
	static const enum fsesl_msg_type types[] = {FSESL_MSG_EVENT_PLAIN, FSESL_MSG_EVENT_JSON,
	    FSESL_MSG_EVENT_XML, FSESL_MSG_EVENT_PLAIN};
	enum { N = 4, EVENTS = 300 };
	struct tc t[N];
	unsigned long long last_seq[N] = {0}, last_fseq[N] = {0};

	for (int k = 0; k < N; k++) {
		login(&t[k]);
		tc_sends(&t[k], subs[k]);
		cr_assert_eq(tc_next(&t[k]), 1);
		if (k == 3)
			cr_assert_eq(tc_next(&t[k]), 1); /* the filter's reply */
	}
	cr_assert_eq(fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_EVENT_FLOOD, 20000, 0), 0);
	for (int k = 0; k < N; k++) {
		for (int i = 0; i < EVENTS; i++) {
			struct fsesl_event *ev = NULL;
			cr_assert_eq(tc_next(&t[k]), 1, "conn %d: event %d missing", k, i);
			cr_assert_eq(t[k].msg.type, types[k]);
			cr_assert_eq(fsesl_event_parse((enum fsesl_event_format)(k % 3),
			                 t[k].msg.body, t[k].msg.body_len, NULL, &ev),
			    0, "conn %d: event %d does not decode", k, i);
			const char *name = fsesl_event_get(ev, "Event-Name");
			const char *sub = fsesl_event_get(ev, "Event-Subclass");
			const char *seq = fsesl_event_get(ev, "Event-Sequence");
			const char *fseq = fsesl_event_get(ev, "Flood-Seq");
			cr_assert(name && !strcmp(name, "CUSTOM"));
			cr_assert(sub && !strcmp(sub, "sim::flood"));
			cr_assert(fsesl_event_get(ev, "Core-UUID"));
			cr_assert(seq && fseq);
			unsigned long long sv = strtoull(seq, NULL, 10),
			                   fv = strtoull(fseq, NULL, 10);
			if (k < 3) {
				/* Every event, in order: both numbers step by one. */
				if (i > 0) {
					cr_assert_eq(sv, last_seq[k] + 1,
					    "conn %d: sequence %llu after %llu", k, sv,
					    last_seq[k]);
					cr_assert_eq(fv, last_fseq[k] + 1);
				}
			} else {
				/* Only what the filter lets through, still in order. */
				cr_assert(fv % 5 == 0, "filtered conn got Flood-Seq %llu", fv);
				cr_assert(i == 0 || fv > last_fseq[k]);
			}
			last_seq[k] = sv;
			last_fseq[k] = fv;
			fsesl_event_free(ev);
		}
	}
	fsesl_sim_clear_faults(sim);
	for (int k = 0; k < N; k++)
		tc_close(&t[k]);
}
