/*
 * engine_test.h - helpers shared by the engine suites: a simulator plus
 * an engine, and a few assertions on replies. Header-only (static).
 *
 * No sleeps are used to synchronise: tests wait for real conditions with
 * a generous "completes at all" bound (wait_until).
 */
#ifndef FSESL_ENGINE_TEST_H
#define FSESL_ENGINE_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fsesl.h"
#include "fsesl_sim.h"

/*
 * Criterion's parallel runner (--jobs 2) leaks 48 bytes of its own in the
 * parent process now and then; with abort_on_error that would fail a suite
 * whose every test passed. Only that library is suppressed.
 */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *
__lsan_default_suppressions(void)
{
	return "leak:libcriterion.so\n";
}

static inline uint64_t
et_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls cond() (cheap, no sleep used as synchronisation) up to ms. */
#define WAIT_UNTIL(cond, ms)                                                                       \
	({                                                                                         \
		uint64_t _end = et_now_ms() + (ms);                                                \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && et_now_ms() < _end)                                      \
			sched_yield();                                                             \
		_ok;                                                                               \
	})

static inline fsesl_sim *
et_sim(uint16_t *port)
{
	struct fsesl_sim_config sc;
	fsesl_sim *s = NULL;

	fsesl_sim_config_init(&sc);
	cr_assert_eq(fsesl_sim_start(&sc, &s, port), 0, "simulator start");
	return s;
}

static inline fsesl_engine *
et_engine(fsesl_config *cfg)
{
	fsesl_engine *e = NULL;
	int err = fsesl_engine_start(cfg, &e);

	cr_assert_eq(err, 0, "engine start: %s", fsesl_strerror(err));
	return e;
}

static inline fsesl_server_t
et_server(fsesl_engine *e, uint16_t port, const char *pw)
{
	fsesl_server_t h = 0;
	int err = fsesl_server_get_by(e, "127.0.0.1", port, NULL, pw, &h);

	cr_assert_eq(err, 0, "server_get: %s", fsesl_strerror(err));
	cr_assert_neq(h, 0);
	return h;
}

/* api echo <token> must come back as exactly <token>. */
static inline int
et_echo(fsesl_engine *e, fsesl_server_t h, const char *token, const fsesl_cmd_opts *o)
{
	char cmd[256];
	fsesl_reply *r = NULL;
	const char *body;
	size_t len;
	int err;

	snprintf(cmd, sizeof(cmd), "echo %s", token);
	err = fsesl_api(e, h, cmd, o, &r);
	if (err)
		return err;
	body = fsesl_reply_body(r, &len);
	if (len != strlen(token) || memcmp(body, token, len) != 0) {
		fsesl_reply_free(r);
		return -99999; /* a mismatch: never allowed */
	}
	fsesl_reply_free(r);
	return 0;
}

#endif
