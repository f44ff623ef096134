/*
 * test_events_filters.c - a subscriber's filters narrow what that
 * subscriber receives, and nothing else.
 *
 * FreeSWITCH applies `filter` per connection to every event, HEARTBEAT
 * and BACKGROUND_JOB included; the simulator does the same. So a filter
 * sent to the server would silence the engine's load watch (and, through
 * the liveness rule, reconnect the server every three intervals) and every
 * other subscriber of that server. These tests put two subscribers and the
 * load watch on one simulated server, on the engine's injectable clock:
 * one subscriber filters, the other still gets everything, the load stays
 * valid across several heartbeat periods and nothing reconnects.
 *
 * No sleeps: every wait is on a delivery or a command round trip, bounded.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define MS 1000000ull
#define S 1000000000ull
#define SAFETY_MS 10000

static _Atomic uint64_t fake_ns;
static fsesl_sim *sim;
static fsesl_engine *eng;
static fsesl_server_t srv;

static uint64_t
fake_clock(void *ud)
{
	(void)ud;
	return atomic_load(&fake_ns);
}

static void
advance_ms(uint64_t ms)
{
	atomic_fetch_add(&fake_ns, ms * MS);
	cr_assert_eq(fsesl_engine_tick(eng), 0);
}

/* A command round trip on the only connection: every event the simulator
 * wrote before its reply has been dispatched by the time it returns. */
static void
barrier(void)
{
	fsesl_reply *r = NULL;
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.timeout_ms = SAFETY_MS;
	cr_assert_eq(fsesl_api(eng, srv, "echo barrier", &o, &r), 0);
	fsesl_reply_free(r);
}

/* A simulator that beats only when told, an engine on the fake clock
 * (HEARTBEAT expected every second, three missed ones are fatal), one
 * connected server. */
static void
start(void)
{
	struct fsesl_sim_config sc;
	fsesl_config cfg;
	uint16_t port;
	char url[128];

	fsesl_sim_config_init(&sc);
	sc.heartbeat_interval_ms = 0;
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	fsesl_sim_record_commands(sim, true);
	fsesl_config_init(&cfg);
	cr_assert_eq(cfg.event_heartbeat_interval, 1);
	cr_assert_eq(cfg.heartbeat_miss_limit, 3);
	atomic_store(&fake_ns, 1000 * S);
	cfg.clock_fn = fake_clock;
	cr_assert_eq(fsesl_engine_start(&cfg, &eng), 0);
	snprintf(url, sizeof(url), "fs://:ClueCon@127.0.0.1:%u", port);
	cr_assert_eq(fsesl_server_get(eng, url, &srv), 0);
	barrier();
}

static void
stop(void)
{
	cr_assert_eq(fsesl_server_put(eng, srv), 0);
	cr_assert_eq(fsesl_engine_stop(eng), 0);
	fsesl_sim_stop(sim);
}

/* The next delivery, which must come within the safety bound. */
static void
next(fsesl_subscriber *s, fsesl_delivery *d)
{
	int rc = fsesl_subscriber_next(s, d, SAFETY_MS);

	cr_assert_eq(rc, 1, "no delivery within the safety bound (rc %d)", rc);
}

/* The next delivery is an event named `name` whose X-Seq is `seq` (NULL:
 * no X-Seq); released. */
static void
expect_event(fsesl_subscriber *s, const char *who, const char *name, const char *seq)
{
	fsesl_delivery d;
	const char *got;

	next(s, &d);
	cr_assert_eq(d.kind, FSESL_NOTICE_EVENT, "%s: delivery of kind %d instead of %s %s", who,
	    (int)d.kind, name, seq ? seq : "");
	cr_assert_str_eq(d.event->name, name, "%s", who);
	got = fsesl_event_get(d.event, "X-Seq");
	if (seq)
		cr_assert(got && strcmp(got, seq) == 0, "%s: X-Seq %s, wanted %s", who,
		    got ? got : "(none)", seq);
	else
		cr_assert_null(got, "%s: X-Seq %s on a %s", who, got, name);
	fsesl_delivery_release(&d);
}

static void
expect_nothing(fsesl_subscriber *s, const char *who)
{
	fsesl_delivery d;
	int rc = fsesl_subscriber_next(s, &d, 0);

	cr_assert_eq(rc, 0, "%s: unexpected delivery of kind %d (%s)", who, (int)d.kind,
	    rc == 1 && d.event ? fsesl_event_get(d.event, "X-Seq") : "-");
}

/* CUSTOM test::ev with X-Seq and, when color is not NULL, X-Color. */
static void
fire(const char *seq, const char *color)
{
	const char *kv[] = {"X-Seq", seq, "X-Color", color};

	cr_assert_eq(fsesl_sim_fire_event(sim, "CUSTOM", "test::ev", kv, color ? 4 : 2, NULL), 0);
}

/* No `filter` command ever reached the server. */
static void
assert_no_server_filter(void)
{
	char **lines = NULL;
	size_t n = fsesl_sim_recorded(sim, &lines), i;
	bool seen = false;

	for (i = 0; i < n; i++) {
		if (strncmp(lines[i], "filter", 6) == 0)
			seen = true;
		free(lines[i]);
	}
	free(lines);
	cr_assert(!seen, "a filter was sent to the server");
}

Test(filters, narrow_one_subscriber_not_the_others_nor_the_load, .timeout = 60)
{
	fsesl_subscriber *a, *b;
	fsesl_server_stats st;
	fsesl_load ld;
	int i;

	start();
	cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0); /* the engine's load watch */
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscriber_create(eng, "b", NULL, &b), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "CUSTOM test::ev"), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "HEARTBEAT"), 0);
	cr_assert_eq(fsesl_subscribe(b, srv, "CUSTOM test::ev"), 0);
	cr_assert_eq(fsesl_subscribe(b, srv, "HEARTBEAT"), 0);
	/* A wants red events only; a HEARTBEAT has no X-Color, so the
	 * filter does not match it and A no longer gets heartbeats. */
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "red"), 0);

	/* Five heartbeat periods, with events of every colour in between. */
	for (i = 1; i <= 5; i++) {
		char seq[16];

		advance_ms(1000);
		fsesl_sim_fire_heartbeat(sim);
		expect_event(b, "b", "HEARTBEAT", NULL);
		cr_assert_eq(fsesl_server_load(eng, srv, &ld), 0);
		cr_assert(ld.valid, "load invalid in period %d", i);
		cr_assert_eq(ld.age_ms, 0);
		snprintf(seq, sizeof(seq), "%d", i);
		fire(seq, i % 2 ? "red" : (i == 2 ? "blue" : NULL));
		expect_event(b, "b", "CUSTOM", seq);
	}
	cr_assert_eq(fsesl_server_stats_get(eng, srv, &st), 0);
	cr_assert_eq(st.reconnects, 0);
	cr_assert_eq(st.connects, 1);
	/* A got the red ones (1, 3, 5) and nothing else; the sentinel (red,
	 * after everything) proves the rest was not merely late. */
	fire("sentinel", "RED"); /* equality ignores case */
	expect_event(a, "a", "CUSTOM", "1");
	expect_event(a, "a", "CUSTOM", "3");
	expect_event(a, "a", "CUSTOM", "5");
	expect_event(a, "a", "CUSTOM", "sentinel");
	expect_event(b, "b", "CUSTOM", "sentinel");
	barrier();
	expect_nothing(a, "a");
	expect_nothing(b, "b");
	assert_no_server_filter();
	fsesl_subscriber_destroy(a);
	fsesl_subscriber_destroy(b);
	stop();
}

Test(filters, negative_regex_refcount_and_delete_all, .timeout = 60)
{
	fsesl_subscriber *a, *b;

	start();
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscriber_create(eng, "b", NULL, &b), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "CUSTOM test::ev"), 0);
	cr_assert_eq(fsesl_subscribe(b, srv, "CUSTOM test::ev"), 0);

	/* Only a negative filter: nothing passes (FreeSWITCH's pitfall). */
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "-blue"), 0);
	fire("1", "red");
	fire("2", "blue");
	expect_event(b, "b", "CUSTOM", "1");
	expect_event(b, "b", "CUSTOM", "2");
	barrier();
	expect_nothing(a, "a with only a negative filter");

	/* A regex (flag i) next to the negative literal, and one more
	 * negative literal: GREEN matches the regex but also "-green"
	 * (equality ignores case); an event without X-Color matches
	 * nothing. */
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "/^(red|green)$/i"), 0);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", " -green"), 0);
	fire("3", "Red");
	fire("4", "blue");
	fire("5", "GREEN");
	fire("6", NULL);
	fire("7", "reddish");
	fire("8", "red");
	expect_event(a, "a", "CUSTOM", "3");
	expect_event(a, "a", "CUSTOM", "8");
	for (int i = 3; i <= 8; i++) {
		char seq[4];

		snprintf(seq, sizeof(seq), "%d", i);
		expect_event(b, "b", "CUSTOM", seq);
	}
	barrier();
	expect_nothing(a, "a after the regex round");

	/* Reference-counted per (header, value): added twice, still there
	 * after one delete. */
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Shape", "round"), 0);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Shape", "round"), 0);
	cr_assert_eq(fsesl_filter_del(a, srv, "X-Shape", "round"), 0);
	cr_assert_eq(fsesl_filter_del(a, srv, "X-Shape", "square"), -ENOENT);
	{
		const char *kv[] = {"X-Seq", "9", "X-Shape", "round"};

		cr_assert_eq(fsesl_sim_fire_event(sim, "CUSTOM", "test::ev", kv, 4, NULL), 0);
	}
	expect_event(a, "a", "CUSTOM", "9");
	expect_event(b, "b", "CUSTOM", "9");
	cr_assert_eq(fsesl_filter_del(a, srv, "X-Shape", "round"), 0);
	cr_assert_eq(fsesl_filter_del(a, srv, "X-Shape", "round"), -ENOENT);

	/* NULL value: every filter of A on that header (three), whatever
	 * their counts; then everything passes again. */
	cr_assert_eq(fsesl_filter_del(a, srv, "x-color", NULL), 0);
	cr_assert_eq(fsesl_filter_del(a, srv, "X-Color", NULL), -ENOENT);
	fire("10", "blue");
	expect_event(a, "a", "CUSTOM", "10");
	expect_event(b, "b", "CUSTOM", "10");

	/* A pattern that does not compile, or lacks its closing '/', is
	 * refused at once; a leading sign makes "/.../" plain text. */
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "/(red/"), -EINVAL);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "/red"), -EINVAL);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "+/x/"), 0);
	fire("11", "x");
	fire("12", "/x/");
	expect_event(a, "a", "CUSTOM", "12");
	expect_event(b, "b", "CUSTOM", "11");
	expect_event(b, "b", "CUSTOM", "12");
	barrier();
	expect_nothing(a, "a after the literal /x/");
	cr_assert_eq(fsesl_filter_add(NULL, srv, "X-Color", "x"), -EINVAL);
	cr_assert_eq(fsesl_filter_add(a, srv, "", "x"), -EINVAL);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", ""), -EINVAL);
	assert_no_server_filter();
	fsesl_subscriber_destroy(a);
	fsesl_subscriber_destroy(b);
	stop();
}

/* A regex with the s flag lets '.' match a newline, as PCRE's DOTALL. */
Test(filters, regex_flags, .timeout = 60)
{
	fsesl_subscriber *a;

	start();
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "CUSTOM test::ev"), 0);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "/^a.b$/s"), 0);
	cr_assert_eq(fsesl_filter_add(a, srv, "X-Color", "/^c.d$/"), 0);
	fire("1", "a\nb");
	fire("2", "c\nd");
	fire("3", "cxd");
	expect_event(a, "a", "CUSTOM", "1");
	expect_event(a, "a", "CUSTOM", "3");
	barrier();
	expect_nothing(a, "a");
	fsesl_subscriber_destroy(a);
	stop();
}

/* Sends one raw command line; it must be answered +OK. */
static void
raw(const char *line)
{
	struct fsesl_cmd c = {.line = line};
	fsesl_reply *r = NULL;

	cr_assert_eq(fsesl_command(eng, srv, &c, NULL, &r), 0);
	cr_assert_eq(fsesl_reply_ok(r), 1, "%s: %s", line, fsesl_reply_text(r));
	fsesl_reply_free(r);
}

/*
 * The simulator applies `filter` as mod_event_socket does, per connection
 * (what the tests above rely on to show the old defect): a run of signs,
 * the last winning; a regex without its closing '/' never matches; a
 * header the event lacks does not match. Sent raw, as another ESL client
 * would: it narrows everything on that connection.
 */
Test(filters, simulator_filters_like_freeswitch, .timeout = 60)
{
	fsesl_subscriber *a;

	start();
	cr_assert_eq(fsesl_subscriber_create(eng, "a", NULL, &a), 0);
	cr_assert_eq(fsesl_subscribe(a, srv, "CUSTOM test::ev"), 0);
	raw("filter X-Color +-red");
	raw("filter X-Color /blu");
	raw("filter X-Color green");
	fire("1", "red");
	fire("2", "blu");
	fire("3", NULL);
	fire("4", "GREEN");
	expect_event(a, "a", "CUSTOM", "4");
	barrier();
	expect_nothing(a, "a");
	raw("filter delete all");
	fsesl_subscriber_destroy(a);
	stop();
}
