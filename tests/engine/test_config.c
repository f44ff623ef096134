/* test_config.c - settings by name, units, bad values, error names. */
#include <errno.h>

#include "engine_int.h"
#include "engine_test.h"

Test(config, defaults_are_opensips)
{
	fsesl_config c;

	fsesl_config_init(&c);
	cr_assert_eq(c.event_heartbeat_interval, 1);
	cr_assert_eq(c.esl_connect_timeout, 5000);
	cr_assert_eq(c.esl_cmd_timeout, 5000);
	cr_assert_eq(c.esl_cmd_polling_itv, 1000);
	cr_assert_eq(c.wait_mode, FSESL_WAIT_FUTEX);
	cr_assert_eq(c.connections_per_server, 1);
	cr_assert_eq(c.backoff_steps, 5);
	cr_assert_eq(c.backoff_s[0], 1);
	cr_assert_eq(c.backoff_s[4], 90);
	cr_assert_eq(c.backoff_step_every, 20);
}

Test(config, set_by_name)
{
	fsesl_config c;
	char err[128];

	fsesl_config_init(&c);
	cr_assert_eq(fsesl_config_set(&c, "esl_cmd_timeout", "250", err, sizeof(err)), 0);
	cr_assert_eq(c.esl_cmd_timeout, 250);
	cr_assert_eq(fsesl_config_set(&c, "esl_connect_timeout", "100", err, sizeof(err)), 0);
	cr_assert_eq(c.esl_connect_timeout, 100);
	cr_assert_eq(fsesl_config_set(&c, "esl_cmd_polling_itv", "50", err, sizeof(err)), 0);
	cr_assert_eq(c.esl_cmd_polling_itv, 50);
	cr_assert_eq(fsesl_config_set(&c, "event_heartbeat_interval", "20", err, sizeof(err)), 0);
	cr_assert_eq(c.event_heartbeat_interval, 20);
	cr_assert_eq(fsesl_config_set(&c, "wait_mode", "poll", err, sizeof(err)), 0);
	cr_assert_eq(c.wait_mode, FSESL_WAIT_POLL);
	cr_assert_eq(fsesl_config_set(&c, "connections_per_server", "4", err, sizeof(err)), 0);
	cr_assert_eq(c.connections_per_server, 4);
	cr_assert_eq(fsesl_config_set(&c, "ring_size", "1024", err, sizeof(err)), 0);
	cr_assert_eq(c.ring_size, 1024);
	cr_assert_eq(fsesl_config_set(&c, "backoff", "0,2,7", err, sizeof(err)), 0);
	cr_assert_eq(c.backoff_steps, 3);
	cr_assert_eq(c.backoff_s[2], 7);
	cr_assert_eq(fsesl_config_set(&c, "log_level", "debug", err, sizeof(err)), 0);
	cr_assert_eq(c.log_level, FSESL_LOG_DEBUG);
	cr_assert_eq(fsesl_config_set(&c, "reactor_spin_us", "0", err, sizeof(err)), 0);
	cr_assert_eq(c.reactor_spin_us, 0);
	cr_assert_eq(fsesl_config_set(&c, "max_body_bytes", "33554432", err, sizeof(err)), 0);
	cr_assert_eq(c.max_body_bytes, 33554432u);
}

Test(config, bad_values)
{
	static const char *const bad[][2] = {
	    {"esl_cmd_timeout", ""},
	    {"esl_cmd_timeout", "-5"},
	    {"esl_cmd_timeout", "5s"},
	    {"esl_cmd_timeout", "0"},
	    {"esl_cmd_timeout", "99999999999999999999999"},
	    {"esl_cmd_timeout", " 5"},
	    {"ring_size", "1000"},
	    {"ring_size", "2"},
	    {"wait_mode", "spin"},
	    {"log_level", "loud"},
	    {"backoff", ""},
	    {"backoff", "1,,x"},
	    {"backoff", "1,2,3,4,5,6,7,8,9"},
	    {"connections_per_server", "0"},
	    {"max_in_flight", "0"},
	    {"no_such_thing", "1"},
	};
	fsesl_config c, orig;
	char err[128];
	size_t i;

	fsesl_config_init(&c);
	orig = c;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(fsesl_config_set(&c, bad[i][0], bad[i][1], err, sizeof(err)),
		    FSESL_ECONFIG, "%s=%s accepted", bad[i][0], bad[i][1]);
		cr_assert_neq(err[0], '\0', "no reason for %s", bad[i][0]);
	}
	cr_assert_eq(memcmp(&c, &orig, sizeof(c)), 0, "a refused value changed the config");
	cr_assert_eq(fsesl_config_set(&c, "x", "1", NULL, 0), FSESL_ECONFIG);
	cr_assert_eq(
	    fsesl_config_set(&c, "esl_cmd_timeout", NULL, err, sizeof(err)), FSESL_ECONFIG);
}

/* Strict means every byte: lists have no empty fields, numbers no spaces,
 * signs or units, and nothing wraps around. Each refusal says why. */
Test(config, strict_lists_and_numbers_with_reasons)
{
	static const char *const bad[][3] = {
	    {"backoff", "1,,2", "step 2: empty"},
	    {"backoff", ",1", "step 1: empty"},
	    {"backoff", "1,", "trailing ','"},
	    {"backoff", "1,2,", "trailing ','"},
	    {"backoff", ",", "step 1: empty"},
	    {"backoff", "1, 2", "step 2: \" 2\" is not a whole number"},
	    {"backoff", " 1", "step 1: \" 1\" is not a whole number"},
	    {"backoff", "1 ", "step 1: \"1 \" is not a whole number"},
	    {"backoff", "1,-2", "step 2: \"-2\" is not a whole number"},
	    {"backoff", "1,+2", "not a whole number"},
	    {"backoff", "1,2s", "not a whole number"},
	    {"backoff", "86401", "step 1: 86401 is out of range"},
	    {"backoff", "1,18446744073709551617", "step 2: 18446744073709551617 is out of range"},
	    {"backoff", "1,2,3,4,5,6,7,8,9", "more than 8 steps"},
	    {"esl_cmd_timeout", "", "empty"},
	    {"esl_cmd_timeout", "18446744073709551616", "out of range"},
	    {"esl_cmd_timeout", "4294967297", "out of range"},
	    {"esl_cmd_timeout", "5000 ", "not a whole number"},
	    {"esl_cmd_timeout", "+5000", "not a whole number"},
	    {"esl_cmd_timeout", "0x10", "not a whole number"},
	    {"max_in_flight", "65537", "out of range"},
	    {"ring_size", "1000", "not a power of two"},
	    {"ring_size", "4096 ", "not a whole number"},
	    {"max_body_bytes", "1k", "not a whole number"},
	    {"wait_mode", "Futex", "futex or poll"},
	    {"wait_mode", "futex ", "futex or poll"},
	    {"log_level", "debug,", "error, warn, info or debug"},
	};
	fsesl_config c, orig;
	char err[256];

	fsesl_config_init(&c);
	orig = c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(fsesl_config_set(&c, bad[i][0], bad[i][1], err, sizeof(err)),
		    FSESL_ECONFIG, "%s=\"%s\" accepted", bad[i][0], bad[i][1]);
		cr_assert(strstr(err, bad[i][2]) != NULL, "%s=\"%s\": \"%s\" lacks \"%s\"",
		    bad[i][0], bad[i][1], err, bad[i][2]);
	}
	cr_assert_eq(memcmp(&c, &orig, sizeof(c)), 0, "a refused value changed the config");
	/* The edges that are fine. */
	cr_assert_eq(fsesl_config_set(&c, "backoff", "0", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.backoff_steps, 1);
	cr_assert_eq(
	    fsesl_config_set(&c, "backoff", "1,2,3,4,5,6,7,86400", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.backoff_steps, 8);
	cr_assert_eq(c.backoff_s[7], 86400);
	cr_assert_eq(fsesl_config_set(&c, "esl_cmd_timeout", "86400000", err, sizeof(err)), 0);
}

Test(config, engine_refuses_bad_config)
{
	fsesl_config c;
	fsesl_engine *e = (fsesl_engine *)1;

	fsesl_config_init(&c);
	c.ring_size = 1000;
	cr_assert_eq(fsesl_engine_start(&c, &e), FSESL_ECONFIG);
	cr_assert_null(e);
	cr_assert_eq(fsesl_engine_start(NULL, NULL), -EINVAL);
}

Test(config, strerror_names_every_code)
{
	int c;

	static const int later[] = {
	    FSESL_EFORKED, FSESL_EURLEVENTS, FSESL_ENOJOBID, FSESL_ERESOLVE};

	for (c = FSESL_EAUTH; c >= FSESL_EREFUSED; c--) {
		const char *s = fsesl_strerror(c);

		cr_assert_not_null(s);
		cr_assert_str_neq(s, "unknown error", "code %d", c);
	}
	/* Codes added since, each with its own text. */
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		cr_assert_str_neq(fsesl_strerror(later[i]), "unknown error", "code %d", later[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(fsesl_strerror(later[i]), fsesl_strerror(later[j]));
	}
	cr_assert_str_neq(fsesl_strerror(FSESL_PERR_BAD_CONTENT_LENGTH), "unknown error");
	cr_assert_str_neq(fsesl_strerror(-ETIMEDOUT), "unknown error");
	cr_assert_str_neq(fsesl_strerror(0), "unknown error");
	cr_assert_not_null(fsesl_strerror(12345));
	cr_assert_str_eq(fsesl_version(), "0.1.0");
}

Test(config, start_stop_idle)
{
	fsesl_engine *e = et_engine(NULL);
	fsesl_engine_stats st;

	fsesl_engine_stats_get(e, &st);
	cr_assert_eq(st.servers, 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
}

/* The reconnect schedule (engine_int.h: fsesl_backoff_ns is pure). */
Test(config, backoff_schedule_follows_the_configuration)
{
	const uint64_t s = 1000000000ull;
	unsigned int f;
	fsesl_config c;
	char err[128];

	/* The OpenSIPS default: 1, 5, 10, 30, 90 s, one step per 20 failures. */
	fsesl_config_init(&c);
	for (f = 1; f <= 120; f++) {
		static const unsigned int want[] = {1, 5, 10, 30, 90};
		unsigned int step = (f - 1) / 20 > 4 ? 4 : (f - 1) / 20;
		uint64_t lo = fsesl_backoff_ns(&c, f, 0), hi = fsesl_backoff_ns(&c, f, UINT32_MAX);

		/* +-10 % jitter around the step's value, both ends reachable. */
		cr_assert_eq(lo, want[step] * s - want[step] * s / 10, "failure %u", f);
		cr_assert_leq(hi, want[step] * s + want[step] * s / 10, "failure %u", f);
		cr_assert_geq(hi, lo);
	}
	/* A schedule of one's own. */
	cr_assert_eq(fsesl_config_set(&c, "backoff", "0,2", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(
	    fsesl_config_set(&c, "backoff_step_every", "3", err, sizeof(err)), 0, "%s", err);
	for (f = 1; f <= 3; f++)
		cr_assert_eq(fsesl_backoff_ns(&c, f, 12345), 0); /* 0: retry at once */
	for (f = 4; f <= 10; f++) {
		uint64_t ns = fsesl_backoff_ns(&c, f, 12345);

		cr_assert(ns >= 2 * s - 2 * s / 10 && ns <= 2 * s + 2 * s / 10, "failure %u", f);
	}
}
