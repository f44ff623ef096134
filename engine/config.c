/*
 * config.c - settings (OpenSIPS names and units plus ours), error names,
 * the version string and the log helper.
 *
 * Settings are parsed strictly: digits only, range-checked, one reason per
 * failure in errbuf. Nothing here ever sees a password, so nothing here
 * can log one; the log helper formats into a bounded stack buffer and
 * hands it to cfg.log_fn (the library never prints by itself).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_int.h"

#define FSESL_STR2(x) #x
#define FSESL_STR(x) FSESL_STR2(x)

const char *
fsesl_version(void)
{

	return FSESL_STR(FSESL_VERSION_MAJOR) "." FSESL_STR(FSESL_VERSION_MINOR) "." FSESL_STR(
	    FSESL_VERSION_PATCH);
}

const char *
fsesl_strerror(int err)
{

	if (err == 0)
		return "success";
	if (err <= -2001 && err >= -2999)
		return fsesl_proto_strerror(err);
	switch (err) {
	case FSESL_EAUTH:
		return "authentication refused by the server";
	case FSESL_EREJECTED:
		return "connection rejected by the server's ACL (rude rejection)";
	case FSESL_EPROTO:
		return "protocol error from the server; reconnecting";
	case FSESL_EDISCONNECTED:
		return "connection lost after the command was sent: outcome unknown";
	case FSESL_ENOTCONNECTED:
		return "server not connected; the command was not sent";
	case FSESL_ESHUTDOWN:
		return "engine is shutting down";
	case FSESL_EINJECTION:
		return "CR, LF or NUL in a one-line value";
	case FSESL_EUNLOAD:
		return "command would unload or reload mod_event_socket";
	case FSESL_EINCALLBACK:
		return "blocking call from a reactor callback";
	case FSESL_EURL:
		return "malformed URL";
	case FSESL_ECONNTIMEOUT:
		return "connect, greeting or auth took longer than esl_connect_timeout";
	case FSESL_EBADHANDLE:
		return "unknown or released server handle";
	case FSESL_ETOOBIG:
		return "command or body over a limit";
	case FSESL_ECONFIG:
		return "unknown setting or bad value";
	case FSESL_EJOBLOST:
		return "background job lost with its connection: outcome unknown";
	case FSESL_EREFUSED:
		return "the server refused the request (-ERR)";
	case FSESL_ENOJOBID:
		return "bgapi reply without a Job-UUID: the job may run, its result cannot be "
		       "matched";
	case FSESL_EFORKED:
		return "engine inherited across fork(): start one in this process";
	case FSESL_EURLEVENTS:
		return "URL lists events: subscribe them with fsesl_subscribe_url()";
	case FSESL_ERESOLVE:
		return "host name could not be resolved";
	default:
		break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err); /* glibc: static text for known codes */
	return "unknown error";
}

void
fsesl_config_init(fsesl_config *cfg)
{
	static const unsigned int backoff[] = {1, 5, 10, 30, 90};

	memset(cfg, 0, sizeof(*cfg));
	cfg->event_heartbeat_interval = 1;
	cfg->esl_connect_timeout = 5000;
	cfg->esl_cmd_timeout = 5000;
	cfg->esl_cmd_polling_itv = 1000;
	cfg->wait_mode = FSESL_WAIT_FUTEX;
	cfg->ring_size = 4096;
	cfg->ring_shards = 0;
	cfg->max_in_flight = 64;
	cfg->connections_per_server = 1;
	cfg->max_body_bytes = FSESL_DEFAULT_MAX_BODY_BYTES;
	cfg->max_abandoned = 256;
	cfg->heartbeat_miss_limit = 3;
	memcpy(cfg->backoff_s, backoff, sizeof(backoff));
	cfg->backoff_steps = 5;
	cfg->backoff_step_every = 20;
	cfg->idle_timeout_s = 86400;
	cfg->lf_kick_interval_ms = 0;
	cfg->event_queue_size = 4096;
	cfg->log_fn = NULL;
	cfg->log_ud = NULL;
	cfg->log_level = FSESL_LOG_WARN;
	cfg->reactor_spin_us = 50;
}

static int
cfg_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return FSESL_ECONFIG;
}

enum uint_status { UINT_OK = 0, UINT_EMPTY, UINT_NOT_DIGITS, UINT_RANGE };

/* Strict unsigned decimal v[0..n) in [lo, hi]: digits only, so no sign,
 * space or unit; a value too big for 64 bits is out of range. */
static enum uint_status
parse_uint(
    const char *v, size_t n, unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
	unsigned long long x = 0;
	bool over = false;
	size_t i;

	if (n == 0)
		return UINT_EMPTY;
	for (i = 0; i < n; i++) {
		unsigned int d = (unsigned int)(unsigned char)v[i] - '0';

		if (d > 9)
			return UINT_NOT_DIGITS;
		if (x > (~0ULL - d) / 10)
			over = true;
		else
			x = x * 10 + d;
	}
	if (over || x < lo || x > hi)
		return UINT_RANGE;
	*out = x;
	return UINT_OK;
}

/* The reason for a refused number: what was wrong, and what is wanted. */
static int
uint_err(char *errbuf, size_t errlen, const char *what, const char *v, size_t n,
    enum uint_status st, unsigned long long lo, unsigned long long hi, const char *unit)
{
	const char *sp = *unit ? " " : "";

	if (st == UINT_EMPTY)
		return cfg_err(errbuf, errlen,
		    "%s: empty; want a whole number from %llu to %llu%s%s", what, lo, hi, sp, unit);
	if (st == UINT_NOT_DIGITS)
		return cfg_err(errbuf, errlen,
		    "%s: \"%.*s\" is not a whole number (digits only: no sign, space or unit); "
		    "want %llu to %llu%s%s",
		    what, (int)(n > 32 ? 32 : n), v, lo, hi, sp, unit);
	return cfg_err(errbuf, errlen, "%s: %.*s%s is out of range; want %llu to %llu%s%s", what,
	    (int)(n > 32 ? 32 : n), v, n > 32 ? "..." : "", lo, hi, sp, unit);
}

struct uint_setting {
	const char *name;
	size_t off;
	unsigned long long lo, hi;
	const char *unit;
	bool is_size; /* size_t field */
};

#define U(name, field, lo, hi, unit)                                                               \
	{                                                                                          \
		name, offsetof(fsesl_config, field), lo, hi, unit, false                           \
	}

static const struct uint_setting uint_settings[] = {
    U("event_heartbeat_interval", event_heartbeat_interval, 1, 86400, "s"),
    U("esl_connect_timeout", esl_connect_timeout, 1, 3600000, "ms"),
    U("esl_cmd_timeout", esl_cmd_timeout, 1, 86400000, "ms"),
    U("esl_cmd_polling_itv", esl_cmd_polling_itv, 1, 10000000, "us"),
    U("ring_shards", ring_shards, 0, 1024, ""),
    U("max_in_flight", max_in_flight, 1, 65536, ""),
    U("connections_per_server", connections_per_server, 1, 64, ""),
    U("max_abandoned", max_abandoned, 1, 1000000, ""),
    U("heartbeat_miss_limit", heartbeat_miss_limit, 1, 1000, ""),
    U("backoff_step_every", backoff_step_every, 1, 1000000, ""),
    U("idle_timeout", idle_timeout_s, 0, 31536000, "s"),
    U("lf_kick_interval_ms", lf_kick_interval_ms, 0, 60000, "ms"),
    U("event_queue_size", event_queue_size, 1, 16777216, ""),
    U("reactor_spin_us", reactor_spin_us, 0, 10000, "us"),
};

int
fsesl_config_set(
    fsesl_config *cfg, const char *name, const char *value, char *errbuf, size_t errlen)
{
	enum uint_status st;
	unsigned long long x;
	size_t i;

	if (!cfg || !name)
		return cfg_err(errbuf, errlen, "no setting name");
	if (!value)
		return cfg_err(errbuf, errlen, "%s: no value", name);
	for (i = 0; i < sizeof(uint_settings) / sizeof(uint_settings[0]); i++) {
		const struct uint_setting *s = &uint_settings[i];

		if (strcmp(name, s->name) != 0)
			continue;
		st = parse_uint(value, strlen(value), s->lo, s->hi, &x);
		if (st != UINT_OK)
			return uint_err(
			    errbuf, errlen, name, value, strlen(value), st, s->lo, s->hi, s->unit);
		*(unsigned int *)((char *)cfg + s->off) = (unsigned int)x;
		return 0;
	}
	if (strcmp(name, "ring_size") == 0) {
		st = parse_uint(value, strlen(value), 4, 1u << 24, &x);
		if (st != UINT_OK)
			return uint_err(
			    errbuf, errlen, name, value, strlen(value), st, 4, 1u << 24, "");
		if ((x & (x - 1)) != 0)
			return cfg_err(errbuf, errlen,
			    "ring_size: %llu is not a power of two; want one from 4 to 16777216",
			    x);
		cfg->ring_size = (unsigned int)x;
		return 0;
	}
	if (strcmp(name, "max_body_bytes") == 0) {
		st = parse_uint(value, strlen(value), 1024, 1ULL << 32, &x);
		if (st != UINT_OK)
			return uint_err(errbuf, errlen, name, value, strlen(value), st, 1024,
			    1ULL << 32, "bytes");
		cfg->max_body_bytes = (size_t)x;
		return 0;
	}
	if (strcmp(name, "wait_mode") == 0) {
		if (strcmp(value, "futex") == 0)
			cfg->wait_mode = FSESL_WAIT_FUTEX;
		else if (strcmp(value, "poll") == 0)
			cfg->wait_mode = FSESL_WAIT_POLL;
		else
			return cfg_err(errbuf, errlen, "wait_mode: want futex or poll");
		return 0;
	}
	if (strcmp(name, "log_level") == 0) {
		static const char *const lv[] = {"error", "warn", "info", "debug"};

		for (i = 0; i < 4; i++) {
			if (strcmp(value, lv[i]) == 0) {
				cfg->log_level = (int)i;
				return 0;
			}
		}
		return cfg_err(errbuf, errlen, "log_level: want error, warn, info or debug");
	}
	if (strcmp(name, "backoff") == 0) {
		unsigned int v[FSESL_MAX_BACKOFF_STEPS];
		unsigned int n = 0;
		const char *p = value, *comma;
		char what[32];

		/* Every field is a number: "1,,2", ",1", "1," and "1, 2" are
		 * refused, not read as 1,2. */
		for (;;) {
			size_t len;

			comma = strchr(p, ',');
			len = comma ? (size_t)(comma - p) : strlen(p);
			if (n == FSESL_MAX_BACKOFF_STEPS)
				return cfg_err(errbuf, errlen, "backoff: more than %d steps",
				    FSESL_MAX_BACKOFF_STEPS);
			snprintf(what, sizeof(what), "backoff step %u", n + 1);
			if (len == 0 && !comma && n > 0)
				return cfg_err(errbuf, errlen,
				    "backoff: a trailing ','; want seconds separated by commas, "
				    "e.g. 1,5,10,30,90");
			st = parse_uint(p, len, 0, 86400, &x);
			if (st != UINT_OK)
				return uint_err(errbuf, errlen, what, p, len, st, 0, 86400, "s");
			v[n++] = (unsigned int)x;
			if (!comma)
				break;
			p = comma + 1;
		}
		memset(cfg->backoff_s, 0, sizeof(cfg->backoff_s));
		memcpy(cfg->backoff_s, v, n * sizeof(v[0]));
		cfg->backoff_steps = n;
		return 0;
	}
	return cfg_err(errbuf, errlen, "unknown setting '%.64s'", name);
}

void
fsesl_log(const struct fsesl_engine *e, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!e->cfg.log_fn || level > e->cfg.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->cfg.log_fn(level, msg, e->cfg.log_ud);
}
