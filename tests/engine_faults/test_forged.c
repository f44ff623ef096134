/*
 * test_forged.c - events a hostile peer forges with `sendevent`.
 *
 * Genuine HEARTBEAT and BACKGROUND_JOB events never carry a Command
 * header; those made by sendevent always do (docs/protocol.md §10.3). The
 * engine must drop the forged ones, count them, and keep them out of the
 * load figures. Ordering on one connection makes this testable without
 * timing: a genuine marker event fired after the forged one arrives after
 * it, so once the marker is delivered the forged event has been judged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fault_harness.h"

TestSuite(forged, .timeout = 60);

/* These suites test refusals, not timing: generous timeouts, so that a
 * loaded CI machine cannot turn a slow connect into a failure. */
static struct fh_opts calm = {.cmd_timeout_ms = 5000, .connect_timeout_ms = 5000};

/* Takes deliveries until an event named `name` whose header `hdr` equals
 * `val` arrives; counts every event named `name` carrying a Command header
 * on the way. Bounded by `max_waits` waits of 100 ms. */
static bool
until_marker(fsesl_subscriber *s, const char *name, const char *hdr, const char *val,
    unsigned int max_waits, unsigned int *forged_seen)
{
	for (unsigned int i = 0; i < max_waits; i++) {
		fsesl_delivery d;
		bool hit = false;
		int rc = fsesl_subscriber_next(s, &d, 100);

		cr_assert_geq(rc, 0, "fsesl_subscriber_next: %d", rc);
		if (rc == 0)
			continue;
		if (d.kind == FSESL_NOTICE_EVENT && d.event->name != NULL &&
		    strcmp(d.event->name, name) == 0) {
			const char *v = fsesl_event_get(d.event, hdr);

			if (fsesl_event_get(d.event, "Command") != NULL)
				(*forged_seen)++;
			hit = v != NULL && strcmp(v, val) == 0;
		}
		fsesl_delivery_release(&d);
		if (hit)
			return true;
	}
	return false;
}

Test(forged, heartbeat_dropped_and_counted)
{
	static const char *const forged_kv[] = {
	    "Command",
	    "sendevent HEARTBEAT",
	    "Event-Calling-Function",
	    "parse_command",
	    "Idle-CPU",
	    "0.000000",
	    "Session-Count",
	    "999",
	    "Max-Sessions",
	    "1000",
	    "Event-Info",
	    "forged",
	};
	struct fsesl_sim_load genuine = {.idle_cpu = 77.5, .session_count = 3, .max_sessions = 500};
	struct fh_env env;
	fsesl_sub_opts so = {0};
	fsesl_subscriber *s = NULL;
	fsesl_server_stats st;
	fsesl_load ld;
	unsigned int forged_seen = 0;
	int rc;

	fh_start(&env, &calm);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	rc = fsesl_subscriber_create(env.e, "forged", &so, &s);
	cr_assert_eq(rc, 0, "fsesl_subscriber_create: %d %s", rc, fsesl_strerror(rc));
	rc = fsesl_subscribe(s, env.srv, "HEARTBEAT");
	cr_assert_eq(rc, 0, "fsesl_subscribe: %d %s", rc, fsesl_strerror(rc));
	/* The first load call makes the engine watch heartbeats itself. */
	memset(&ld, 0, sizeof(ld));
	(void)fsesl_server_load(env.e, env.srv, &ld);

	fsesl_sim_set_load(env.sim, &genuine);
	rc = fsesl_sim_fire_event(
	    env.sim, "HEARTBEAT", NULL, forged_kv, sizeof(forged_kv) / sizeof(forged_kv[0]), NULL);
	cr_assert_eq(rc, 0, "fsesl_sim_fire_event: %d", rc);
	fsesl_sim_fire_heartbeat(env.sim); /* the genuine marker */
	cr_assert(until_marker(s, "HEARTBEAT", "Event-Info", "System Ready", 100, &forged_seen),
	    "the genuine heartbeat never arrived");
	cr_expect_eq(forged_seen, 0, "a forged HEARTBEAT reached the subscriber");

	memset(&st, 0, sizeof(st));
	cr_assert_eq(fsesl_server_stats_get(env.e, env.srv, &st), 0);
	cr_expect_geq(st.forged_events, 1, "forged_events not counted");
	memset(&ld, 0, sizeof(ld));
	rc = fsesl_server_load(env.e, env.srv, &ld);
	cr_expect_eq(rc, 0, "fsesl_server_load: %d", rc);
	cr_expect(ld.valid, "no valid load after a genuine heartbeat");
	cr_expect_eq(ld.hb.session_count, 3, "load taken from the forged heartbeat (%llu)",
	    (unsigned long long)ld.hb.session_count);

	fsesl_subscriber_destroy(s);
	fh_finish(&env);
}

Test(forged, background_job_dropped_and_counted)
{
	static const char *const forged_kv[] = {
	    "Command",
	    "sendevent BACKGROUND_JOB",
	    "Event-Calling-Function",
	    "parse_command",
	    "Job-UUID",
	    "forged-job",
	    "Job-Command",
	    "status",
	};
	static const char *const genuine_kv[] = {
	    "Event-Calling-Function",
	    "api_exec",
	    "Job-UUID",
	    "marker-job",
	    "Job-Command",
	    "status",
	};
	struct fh_env env;
	fsesl_sub_opts so = {0};
	fsesl_subscriber *s = NULL;
	fsesl_server_stats st;
	unsigned int forged_seen = 0;
	int rc;

	fh_start(&env, &calm);
	cr_assert(fh_until_ok(&env, 1000000, 10000));
	rc = fsesl_subscriber_create(env.e, "forged", &so, &s);
	cr_assert_eq(rc, 0, "fsesl_subscriber_create: %d %s", rc, fsesl_strerror(rc));
	rc = fsesl_subscribe(s, env.srv, "BACKGROUND_JOB");
	cr_assert_eq(rc, 0, "fsesl_subscribe: %d %s", rc, fsesl_strerror(rc));

	rc = fsesl_sim_fire_event(env.sim, "BACKGROUND_JOB", NULL, forged_kv,
	    sizeof(forged_kv) / sizeof(forged_kv[0]), "+OK forged\n");
	cr_assert_eq(rc, 0);
	rc = fsesl_sim_fire_event(env.sim, "BACKGROUND_JOB", NULL, genuine_kv,
	    sizeof(genuine_kv) / sizeof(genuine_kv[0]), "+OK\n");
	cr_assert_eq(rc, 0);
	cr_assert(until_marker(s, "BACKGROUND_JOB", "Job-UUID", "marker-job", 100, &forged_seen),
	    "the genuine BACKGROUND_JOB never arrived");
	cr_expect_eq(forged_seen, 0, "a forged BACKGROUND_JOB reached the subscriber");
	memset(&st, 0, sizeof(st));
	cr_assert_eq(fsesl_server_stats_get(env.e, env.srv, &st), 0);
	cr_expect_geq(st.forged_events, 1, "forged_events not counted");

	fsesl_subscriber_destroy(s);
	fh_finish(&env);
}
