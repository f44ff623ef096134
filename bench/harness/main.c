/*
 * main.c - fsesl-bench: fsesl against the patterns it replaces, in one run.
 *
 * With no arguments it forks a child hosting embedded simulators and runs
 * every scenario family, and the dimensions users meet (workers,
 * connections, servers, events) varied one at a time, for a short fixed
 * time each (about two minutes on two cores); --full crosses every
 * dimension, --quick runs the default plan in seconds, --url points it at
 * real FreeSWITCH servers instead. Every reply is checked against the unique token its
 * request carried; any mismatch, lost request or unexpected error makes
 * the run fail loudly (exit 1) after the report. Usage errors exit 2.
 *
 * Scenarios are data (a list built from the options) and each family has
 * its own runner, so one family can run alone (--only) while another
 * module is still unfinished.
 */
#include "bench.h"

#include "fsesl.h"

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_SCENARIOS 256
#define MAX_LIST 16

struct cli {
	struct bench_opts o;
	unsigned workers[MAX_LIST], n_workers;
	unsigned windows[MAX_LIST], n_windows;
	unsigned servers;
	unsigned conns;
	enum bench_mix mix;
	unsigned event_rate;
	unsigned open_rate;
	unsigned many_conns;
	bool many_set;
	bool event_rate_set;
	unsigned in_flight;
	unsigned polling_itv;
	const char *only;
	bool list;
	bool no_progress;
	unsigned repeat;
	bool uring_ok; /* io_uring futex wakes work here (wake.c) */
	char uring_why[160];
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: fsesl-bench [options]\n"
	    "  (no options)        every family and each dimension against embedded\n"
	    "                      simulators, about 2 minutes on two cores\n"
	    "  --quick             the same plan in a few seconds each (smoke test)\n"
	    "  --full              every combination of workers x connections x servers\n"
	    "                      x events for futex, poll and bare-blocking (~5 min)\n"
	    "  --url URL           fs://[user]:password@host[:port] (repeatable): real servers\n"
	    "  --duration S        seconds per scenario, warm-up included (default 1.5)\n"
	    "  --workers LIST      worker counts (default 1,16,64,256; 1..%u)\n"
	    "  --window LIST       pipelined windows for bare/async (default 16,64)\n"
	    "  --servers N         servers for the multi-server scenarios (default 20)\n"
	    "  --conns N           connections per server for the pool scenarios (default 4)\n"
	    "  --mix KIND          small|large|bgapi|mixed for the main scenarios (default small)\n"
	    "  --large-bytes N     reply size of the large mix (default 4000)\n"
	    "  --event-rate N      events/s during the events scenario (default 10000, 0 off;\n"
	    "                      with --url off unless given: sendevent CUSTOM sim::flood)\n"
	    "  --rate N            open-loop arrival rate, commands/s (default 5000, 0 off)\n"
	    "  --many-conns N      connections of the many-connections scenario (default 1000\n"
	    "                      with the simulator, off with --url; 0 off)\n"
	    "  --in-flight N       commands in flight in that scenario (default 10 x N)\n"
	    "  --polling-itv US    OpenSIPS esl_cmd_polling_itv of the baseline (default 1000)\n"
	    "  --timeout-ms MS     a reply later than this counts as lost (default 30000)\n"
	    "  --only LIST         run only these scenarios: exact names, families (bare,\n"
	    "                      blocking, blocking_uring, opensips, per_worker, futex,\n"
	    "                      poll1000, poll100, async, batch, many_conns) or globs\n"
	    "                      ('futex_*'), comma-separated\n"
	    "  --engine-wake TECH  futex|uring: the bare-blocking variant the engine is\n"
	    "                      compared with, the wake technique the engine uses\n"
	    "                      (default futex: one FUTEX_WAKE per reply)\n"
	    "  --list              print the scenario names and exit\n"
	    "  --json | --csv      machine output on stdout (the table goes to stderr)\n"
	    "  --plot FILE         latency percentile chart (gnuplot if installed, else SVG)\n"
	    "  --repeat N          go round all scenarios N times and report each one's best\n"
	    "                      run (highest rate; open loop: lowest p99); errors of\n"
	    "                      every run count\n"
	    "  --sim-mode MODE     fast (default: answers at once) or fs-like (like a real\n"
	    "                      FreeSWITCH 1.10.12: a thread per connection reading a\n"
	    "                      byte per recv(), api inline, 20 ms event poll, one\n"
	    "                      dispatch thread; docs/simulator.md)\n"
	    "  --fs-like           the same as --sim-mode fs-like\n"
	    "  --sim-api-cost US   simulator: serial cost of each api per connection\n"
	    "  --sim-bgapi-cost US simulator: the same for bgapi\n"
	    "  --sim-event-poll MS simulator: idle connections see events every MS\n"
	    "                      (these three override the mode's values)\n"
	    "  --no-progress       no progress line even on a terminal\n",
	    BENCH_MAX_WORKERS);
}

static int
die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "fsesl-bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see fsesl-bench --help)\n");
	return 2;
}

static int
parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
parse_list(const char *s, unsigned lo, unsigned hi, unsigned *out, unsigned *n)
{
	char buf[256];
	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_LIST || parse_uint(tok, lo, hi, &out[*n]) != 0)
			return -1;
		(*n)++;
	}
	return *n ? 0 : -1;
}

static int
parse_args(int argc, char **argv, struct cli *c)
{
	enum {
		O_QUICK = 256,
		O_URL,
		O_DURATION,
		O_WORKERS,
		O_WINDOW,
		O_SERVERS,
		O_CONNS,
		O_MIX,
		O_LARGE,
		O_EVRATE,
		O_RATE,
		O_MANY,
		O_INFLIGHT,
		O_POLL,
		O_TIMEOUT,
		O_ONLY,
		O_LIST,
		O_JSON,
		O_CSV,
		O_PLOT,
		O_NOPROG,
		O_SIM_API,
		O_SIM_BGAPI,
		O_SIM_EVPOLL,
		O_FSLIKE,
		O_REPEAT,
		O_FULL,
		O_SIM_MODE,
		O_ENGINE_WAKE,
		O_HELP,
	};
	static const struct option opts[] = {
	    {"quick", no_argument, NULL, O_QUICK},
	    {"url", required_argument, NULL, O_URL},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"workers", required_argument, NULL, O_WORKERS},
	    {"window", required_argument, NULL, O_WINDOW},
	    {"servers", required_argument, NULL, O_SERVERS},
	    {"conns", required_argument, NULL, O_CONNS},
	    {"mix", required_argument, NULL, O_MIX},
	    {"large-bytes", required_argument, NULL, O_LARGE},
	    {"event-rate", required_argument, NULL, O_EVRATE},
	    {"rate", required_argument, NULL, O_RATE},
	    {"many-conns", required_argument, NULL, O_MANY},
	    {"in-flight", required_argument, NULL, O_INFLIGHT},
	    {"polling-itv", required_argument, NULL, O_POLL},
	    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
	    {"only", required_argument, NULL, O_ONLY},
	    {"list", no_argument, NULL, O_LIST},
	    {"json", no_argument, NULL, O_JSON},
	    {"csv", no_argument, NULL, O_CSV},
	    {"plot", required_argument, NULL, O_PLOT},
	    {"no-progress", no_argument, NULL, O_NOPROG},
	    {"repeat", required_argument, NULL, O_REPEAT},
	    {"sim-api-cost", required_argument, NULL, O_SIM_API},
	    {"sim-bgapi-cost", required_argument, NULL, O_SIM_BGAPI},
	    {"sim-event-poll", required_argument, NULL, O_SIM_EVPOLL},
	    {"fs-like", no_argument, NULL, O_FSLIKE},
	    {"full", no_argument, NULL, O_FULL},
	    {"sim-mode", required_argument, NULL, O_SIM_MODE},
	    {"engine-wake", required_argument, NULL, O_ENGINE_WAKE},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	bool duration_set = false;
	int ch;

	memset(c, 0, sizeof(*c));
	c->o.duration_s = 1.5;
	c->o.large_bytes = 4000;
	c->o.password = "ClueCon";
	c->o.timeout_ms = 30000; /* a stalled shared VM is not a lost reply */
	c->workers[0] = 1, c->workers[1] = 16, c->workers[2] = 64, c->workers[3] = 256;
	c->n_workers = 4;
	c->windows[0] = 16, c->windows[1] = 64, c->n_windows = 2;
	c->servers = 20;
	c->conns = 4;
	c->event_rate = 10000;
	c->open_rate = 5000;
	c->many_conns = 1000;
	c->polling_itv = 1000;
	c->repeat = 1;
	c->o.sim_api_cost_us = c->o.sim_bgapi_cost_us = c->o.sim_event_poll_ms = SIM_KNOB_UNSET;
	/* The engine's hand-off today: one FUTEX_WAKE per reply. When it
	 * batches its wakes through io_uring, this becomes WAKE_URING. */
	c->o.engine_wake = WAKE_FUTEX;
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case O_QUICK:
			c->o.quick = true;
			break;
		case O_URL:
			if (c->o.n_urls == BENCH_MAX_SERVERS)
				return die_usage("too many --url (at most 16)%s", "");
			c->o.urls[c->o.n_urls++] = optarg;
			break;
		case O_DURATION: {
			char *end;
			errno = 0;
			double d = strtod(optarg, &end);
			if (errno || *end || !(d >= 0.05 && d <= 3600))
				return die_usage("--duration: '%s' is not a number of seconds "
				                 "between 0.05 and 3600",
				    optarg);
			c->o.duration_s = d;
			duration_set = true;
			break;
		}
		case O_WORKERS:
			if (parse_list(optarg, 1, BENCH_MAX_WORKERS, c->workers, &c->n_workers))
				return die_usage(
				    "--workers: '%s' is not a list of counts 1..1024", optarg);
			break;
		case O_WINDOW:
			if (parse_list(optarg, 1, 65536, c->windows, &c->n_windows))
				return die_usage(
				    "--window: '%s' is not a list of sizes 1..65536", optarg);
			break;
		case O_SERVERS:
			if (parse_uint(optarg, 1, BENCH_MAX_SERVERS, &c->servers))
				return die_usage("--servers: '%s' is not 1..16", optarg);
			break;
		case O_CONNS:
			if (parse_uint(optarg, 1, 4096, &c->conns))
				return die_usage("--conns: '%s' is not 1..4096", optarg);
			break;
		case O_MIX:
			if (!strcmp(optarg, "small"))
				c->mix = MIX_SMALL;
			else if (!strcmp(optarg, "large"))
				c->mix = MIX_LARGE;
			else if (!strcmp(optarg, "bgapi"))
				c->mix = MIX_BGAPI;
			else if (!strcmp(optarg, "mixed"))
				c->mix = MIX_MIXED;
			else
				return die_usage(
				    "--mix: '%s' is not small, large, bgapi or mixed", optarg);
			break;
		case O_LARGE:
			if (parse_uint(optarg, 1, 8u << 20, &c->o.large_bytes))
				return die_usage("--large-bytes: '%s' is not 1..8388608", optarg);
			break;
		case O_EVRATE:
			if (parse_uint(optarg, 0, 1000000, &c->event_rate))
				return die_usage("--event-rate: '%s' is not 0..1000000", optarg);
			c->event_rate_set = true;
			break;
		case O_RATE:
			if (parse_uint(optarg, 0, 10000000, &c->open_rate))
				return die_usage("--rate: '%s' is not 0..10000000", optarg);
			break;
		case O_MANY:
			if (parse_uint(optarg, 0, 100000, &c->many_conns))
				return die_usage("--many-conns: '%s' is not 0..100000", optarg);
			c->many_set = true;
			break;
		case O_INFLIGHT:
			if (parse_uint(optarg, 1, 1000000, &c->in_flight))
				return die_usage("--in-flight: '%s' is not 1..1000000", optarg);
			break;
		case O_POLL:
			if (parse_uint(optarg, 1, 1000000, &c->polling_itv))
				return die_usage(
				    "--polling-itv: '%s' is not 1..1000000 us", optarg);
			break;
		case O_TIMEOUT:
			if (parse_uint(optarg, 1, 600000, &c->o.timeout_ms))
				return die_usage("--timeout-ms: '%s' is not 1..600000", optarg);
			break;
		case O_ONLY:
			c->only = optarg;
			break;
		case O_LIST:
			c->list = true;
			break;
		case O_JSON:
			c->o.json = true;
			break;
		case O_CSV:
			c->o.csv = true;
			break;
		case O_PLOT:
			if (!*optarg)
				return die_usage("--plot needs a file name%s", "");
			c->o.plot_file = optarg;
			break;
		case O_NOPROG:
			c->no_progress = true;
			break;
		case O_SIM_API:
			if (parse_uint(optarg, 0, 1000000, &c->o.sim_api_cost_us))
				return die_usage(
				    "--sim-api-cost: '%s' is not 0..1000000 us", optarg);
			break;
		case O_SIM_BGAPI:
			if (parse_uint(optarg, 0, 1000000, &c->o.sim_bgapi_cost_us))
				return die_usage(
				    "--sim-bgapi-cost: '%s' is not 0..1000000 us", optarg);
			break;
		case O_SIM_EVPOLL:
			if (parse_uint(optarg, 0, 1000, &c->o.sim_event_poll_ms))
				return die_usage(
				    "--sim-event-poll: '%s' is not 0..1000 ms", optarg);
			break;
		case O_FSLIKE:
			c->o.sim_mode = SIM_MODE_FS_LIKE;
			break;
		case O_SIM_MODE:
			if (!strcmp(optarg, "fast"))
				c->o.sim_mode = SIM_MODE_FAST;
			else if (!strcmp(optarg, "fs-like"))
				c->o.sim_mode = SIM_MODE_FS_LIKE;
			else
				return die_usage("--sim-mode: '%s' is not fast or fs-like", optarg);
			break;
		case O_ENGINE_WAKE:
			if (!strcmp(optarg, "futex"))
				c->o.engine_wake = WAKE_FUTEX;
			else if (!strcmp(optarg, "uring"))
				c->o.engine_wake = WAKE_URING;
			else
				return die_usage(
				    "--engine-wake: '%s' is not futex or uring", optarg);
			break;
		case O_FULL:
			c->o.full = true;
			break;
		case O_REPEAT:
			if (parse_uint(optarg, 1, 99, &c->repeat))
				return die_usage("--repeat: '%s' is not 1..99", optarg);
			break;
		case 'h':
		case O_HELP:
			usage(stdout);
			exit(0);
		case ':':
			return die_usage("%s needs a value", argv[optind - 1]);
		default:
			return die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return die_usage("unexpected argument '%s'", argv[optind]);
	c->o.repeat = c->repeat;
	if (c->o.json && c->o.csv)
		return die_usage("--json and --csv are exclusive%s", "");
	if (c->o.quick && !duration_set)
		c->o.duration_s = 0.2;
	c->o.warmup_s = c->o.duration_s / 6 < 0.25 ? c->o.duration_s / 6 : 0.25;
	if (c->o.quick && !c->many_set)
		c->many_conns = 100;
	if (c->o.n_urls && !c->many_set)
		c->many_conns = 0; /* a thousand sockets to a real server: only on request */
	if (c->o.quick && c->open_rate > 2000)
		c->open_rate = 2000;
	if (!c->in_flight)
		c->in_flight = c->many_conns * 10;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The scenario list                                                    */
/* ------------------------------------------------------------------ */

struct plan {
	struct scenario sc[MAX_SCENARIOS];
	size_t n;
};

static struct scenario *add(struct plan *p, enum bench_kind kind, const char *mode,
    unsigned workers, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static struct scenario *
add(struct plan *p, enum bench_kind kind, const char *mode, unsigned workers, const char *fmt, ...)
{
	if (p->n == MAX_SCENARIOS) {
		/* The plan is ours, not the user's: a bigger matrix needs a
		 * bigger array. */
		fprintf(stderr, "fsesl-bench: more than %d scenarios planned\n", MAX_SCENARIOS);
		abort();
	}
	struct scenario *s = &p->sc[p->n++];
	va_list ap;
	memset(s, 0, sizeof(*s));
	va_start(ap, fmt);
	vsnprintf(s->name, sizeof(s->name), fmt, ap);
	va_end(ap);
	s->kind = kind;
	s->mode = mode;
	s->workers = workers;
	s->servers = 1;
	s->conns_per_server = 1;
	s->window = kind == K_BARE || kind == K_ASYNC ? 1 : 0;
	s->wait_mode = FSESL_WAIT_FUTEX;
	s->enabled = true;
	return s;
}

/* The blocking-call families that the matrix varies. */
struct family {
	const char *mode;
	enum bench_kind kind;
	int wait_mode; /* K_ENGINE */
	unsigned polling_itv_us; /* K_ENGINE poll modes */
	enum wake_tech wake; /* K_BLOCKING */
};
static const struct family FAM_FUTEX = {"futex", K_ENGINE, FSESL_WAIT_FUTEX, 0, WAKE_FUTEX};
static const struct family FAM_POLL1000 = {"poll1000", K_ENGINE, FSESL_WAIT_POLL, 1000, WAKE_FUTEX};
static const struct family FAM_POLL100 = {"poll100", K_ENGINE, FSESL_WAIT_POLL, 100, WAKE_FUTEX};
static const struct family FAM_BLOCKING = {"blocking", K_BLOCKING, 0, 0, WAKE_FUTEX};
static const struct family FAM_BLOCKING_URING = {"blocking_uring", K_BLOCKING, 0, 0, WAKE_URING};

/* One point of the matrix, named <mode>_<w>w[_<c>conns][_<s>servers]
 * [_events_<rate>]: the names of the one-dimension scenarios of earlier
 * versions stay what they were. */
static struct scenario *
add_point(struct plan *p, const struct cli *c, const struct family *f, unsigned w, unsigned conns,
    unsigned servers, unsigned events)
{
	char name[64];
	int n = snprintf(name, sizeof(name), "%s_%uw", f->mode, w);
	if (conns > 1)
		n += snprintf(name + n, sizeof(name) - (size_t)n, "_%uconns", conns);
	if (servers > 1)
		n += snprintf(name + n, sizeof(name) - (size_t)n, "_%uservers", servers);
	if (events)
		snprintf(name + n, sizeof(name) - (size_t)n, "_events_%u", events);
	struct scenario *s = add(p, f->kind, f->mode, w, "%s", name);
	s->conns_per_server = conns;
	s->servers = servers;
	s->event_rate = events;
	s->mix = c->mix;
	s->wait_mode = f->wait_mode;
	s->polling_itv_us = f->polling_itv_us;
	s->wake = f->wake;
	return s;
}

static bool
has_worker(const struct cli *c, unsigned w)
{
	for (unsigned i = 0; i < c->n_workers; i++)
		if (c->workers[i] == w)
			return true;
	return false;
}

static unsigned
pick_workers(const struct cli *c, unsigned want)
{
	if (has_worker(c, want))
		return want;
	unsigned best = c->workers[0];
	for (unsigned i = 0; i < c->n_workers; i++)
		if (c->workers[i] > best)
			best = c->workers[i];
	return best;
}

/* A word of --only selects a scenario by its exact name, a whole family by
 * its mode (bare, blocking, opensips, per_worker, futex, poll1000,
 * poll100, async, many_conns), or names by a glob (fnmatch). */
static bool
only_match(const char *only, const struct scenario *sc)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", only);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strpbrk(tok, "*?[") ? fnmatch(tok, sc->name, 0) == 0
		                        : !strcmp(tok, sc->name) || !strcmp(tok, sc->mode))
			return true;
	}
	return false;
}

/* Families at every worker count; the costly baselines (a thread polling
 * every millisecond, a connection per thread) stop at 64 outside --full. */
static void
add_workers(struct plan *p, const struct cli *c, const struct family *f, unsigned max)
{
	for (unsigned i = 0; i < c->n_workers; i++)
		if (c->workers[i] <= max)
			add_point(p, c, f, c->workers[i], 1, 1, 0);
}

/*
 * --full: every combination of connections per server (1, --conns),
 * servers (1, --servers) and events (off, --event-rate) at every worker
 * count, for the engine's two wait modes and the bare-blocking baseline.
 * One caller never uses a second connection, so 1 worker skips the pool.
 */
static void
add_cross(struct plan *p, const struct cli *c, const struct family *f, unsigned ns, unsigned ev)
{
	for (unsigned i = 0; i < c->n_workers; i++) {
		unsigned w = c->workers[i];
		for (unsigned ci = 0; ci < 2; ci++) {
			unsigned conns = ci ? c->conns : 1;
			if ((ci && (conns == 1 || w == 1)))
				continue;
			for (unsigned si = 0; si < 2; si++) {
				unsigned servers = si ? ns : 1;
				if (si && servers == 1)
					continue;
				for (unsigned ei = 0; ei < 2; ei++) {
					if ((ei && !ev) || (!ci && !si && !ei))
						continue; /* the plain point is there already */
					add_point(p, c, f, w, conns, servers, ei ? ev : 0);
				}
			}
		}
	}
}

static void
build_plan(const struct cli *c, bool sim, unsigned n_targets, struct plan *p)
{
	struct scenario *s;
	bool full = c->o.full;
	unsigned w16 = pick_workers(c, 16), w64 = pick_workers(c, 64);
	unsigned ns = c->servers <= n_targets ? c->servers : n_targets;
	/* Against real servers the events are our own sendevents, fired at
	 * every subscriber of theirs too: only when asked for. */
	unsigned ev = c->event_rate && (sim || c->event_rate_set) ? c->event_rate : 0;
	unsigned heavy = full ? UINT_MAX : 64;

	/* Baselines first: the engine is then compared in the same run. */
	s = add(p, K_BARE, "bare", 1, "bare_serial");
	s->mix = c->mix;
	for (unsigned i = 0; i < c->n_windows; i++) {
		s = add(p, K_BARE, "bare", 1, "bare_window_%u", c->windows[i]);
		s->window = c->windows[i];
		s->mix = c->mix;
	}
	add_workers(p, c, &FAM_BLOCKING, UINT_MAX);
	if (c->uring_ok)
		add_workers(p, c, &FAM_BLOCKING_URING, UINT_MAX);
	for (unsigned i = 0; i < c->n_workers; i++) {
		if (c->workers[i] > heavy)
			continue;
		s = add(p, K_OPENSIPS, "opensips", c->workers[i], "opensips_%uw", c->workers[i]);
		s->polling_itv_us = c->polling_itv;
		s->mix = c->mix;
	}
	for (unsigned i = 0; i < c->n_workers; i++) {
		if (c->workers[i] > heavy)
			continue;
		s = add(
		    p, K_PER_WORKER, "per_worker", c->workers[i], "per_worker_%uw", c->workers[i]);
		s->conns_per_server = c->workers[i];
		s->mix = c->mix;
	}
	add_workers(p, c, &FAM_FUTEX, UINT_MAX);
	add_workers(p, c, &FAM_POLL1000, UINT_MAX);
	add_workers(p, c, &FAM_POLL100, heavy);
	for (unsigned i = 0; i < c->n_windows; i++) {
		s = add(p, K_ASYNC, "async", 1, "async_window_%u", c->windows[i]);
		s->window = c->windows[i];
		s->mix = c->mix;
	}
	/* The engine's blocking batch call, one worker with as many commands
	 * in flight as the bare and async windows (api only). */
	if (c->mix == MIX_SMALL || c->mix == MIX_LARGE) {
		for (unsigned i = 0; i < c->n_windows; i++) {
			s = add(p, K_ENGINE, "batch", 1, "batch_window_%u", c->windows[i]);
			s->batch = c->windows[i];
			s->window = c->windows[i]; /* shown; eng_open ignores it */
			s->mix = c->mix;
		}
	}
	/* Dimensions: a pool of connections, many servers, events flowing.
	 * The default varies one at a time around the worker counts users
	 * run, with the bare-blocking baseline beside the engine at 16 and
	 * 64 workers; --full crosses them all. */
	if (full) {
		add_cross(p, c, &FAM_BLOCKING, ns, ev);
		if (c->uring_ok)
			add_cross(p, c, &FAM_BLOCKING_URING, ns, ev);
		add_cross(p, c, &FAM_FUTEX, ns, ev);
		add_cross(p, c, &FAM_POLL1000, ns, ev);
	} else {
		const struct family *blk[2] = {&FAM_BLOCKING, &FAM_BLOCKING_URING};
		for (unsigned b = 0; b < (c->uring_ok ? 2u : 1u); b++) {
			unsigned ws[2] = {w16, w64};
			for (unsigned j = 0; j < (w16 == w64 ? 1u : 2u); j++) {
				if (c->conns > 1)
					add_point(p, c, blk[b], ws[j], c->conns, 1, 0);
				if (ns > 1)
					add_point(p, c, blk[b], ws[j], 1, ns, 0);
				if (ev)
					add_point(p, c, blk[b], ws[j], 1, 1, ev);
			}
		}
		for (unsigned i = 0; i < c->n_workers; i++) {
			unsigned w = c->workers[i];
			if (w > 1 && c->conns > 1)
				add_point(p, c, &FAM_FUTEX, w, c->conns, 1, 0);
			if (w > 1 && ns > 1)
				add_point(p, c, &FAM_FUTEX, w, 1, ns, 0);
			if (ev)
				add_point(p, c, &FAM_FUTEX, w, 1, 1, ev);
		}
		if (c->conns > 1 && ns > 1)
			add_point(p, c, &FAM_FUTEX, w64, c->conns, ns, 0);
		if (ev)
			add_point(p, c, &FAM_POLL1000, w64, 1, 1, ev);
	}
	if (c->mix != MIX_MIXED) {
		s = add(p, K_ENGINE, "futex", w16, "futex_%uw_mixed", w16);
		s->mix = MIX_MIXED;
	}
	/* bgapi jobs end to end: the reply, then the BACKGROUND_JOB event. */
	s = add(p, K_ENGINE, "futex", w16, "futex_%uw_jobs", w16);
	s->mix = MIX_JOB;
	/* Open loop at one rate: latency from the intended send time. */
	if (c->open_rate) {
		s = add(p, K_ENGINE, "futex", w16, "futex_%uw_open_%u", w16, c->open_rate);
		s->open_rate = c->open_rate;
		s->mix = c->mix;
		s = add(p, K_OPENSIPS, "opensips", w16, "opensips_%uw_open_%u", w16, c->open_rate);
		s->open_rate = c->open_rate;
		s->polling_itv_us = c->polling_itv;
		s->mix = c->mix;
		s = add(p, K_PER_WORKER, "per_worker", w16, "per_worker_%uw_open_%u", w16,
		    c->open_rate);
		s->open_rate = c->open_rate;
		s->conns_per_server = w16;
		s->mix = c->mix;
	}
	if (c->many_conns) {
		/* The engine keeps at most 64 connections per server entry, and
		 * entries are per host:port: spread N over several servers,
		 * preferring a count that divides N exactly. */
		unsigned nsv = (c->many_conns + 63) / 64, best = 0;
		for (unsigned k = nsv; k <= BENCH_MAX_SERVERS && !best; k++)
			if (c->many_conns % k == 0)
				best = k;
		nsv = best ? best : nsv;
		if (nsv > n_targets)
			nsv = n_targets;
		s = add(p, K_MANY_CONNS, "many_conns", 1, "many_conns_%u", c->many_conns);
		s->servers = nsv;
		s->conns_per_server = (c->many_conns + nsv - 1) / nsv;
		s->window = c->in_flight;
	}
	if (c->only) {
		for (size_t i = 0; i < p->n; i++)
			p->sc[i].enabled = only_match(c->only, &p->sc[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Targets                                                              */
/* ------------------------------------------------------------------ */

static int
targets_from_urls(const struct cli *c, struct bench_env *env)
{
	for (unsigned i = 0; i < c->o.n_urls; i++) {
		struct fsesl_url u;
		char err[256];
		if (fsesl_url_parse(c->o.urls[i], &u, err, sizeof(err)) != 0) {
			fprintf(stderr, "fsesl-bench: --url #%u: %s\n", i + 1, err);
			return 2;
		}
		struct bench_target *t = &env->targets[env->n_targets++];
		snprintf(t->host, sizeof(t->host), "%s", u.host);
		t->port = u.port;
		snprintf(t->user, sizeof(t->user), "%s", u.user);
		snprintf(t->password, sizeof(t->password), "%s", u.password);
		snprintf(t->url, sizeof(t->url), "%s", c->o.urls[i]);
		fsesl_url_clear(&u);
	}
	return 0;
}

static void
raise_nofile(unsigned need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 256) {
		rl.rlim_cur = need + 256 < rl.rlim_max ? need + 256 : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * A scenario that never ends means a request that never completed (the
 * engine promises every request completes, with a timeout at worst): say
 * which scenario and stop, rather than hang a CI job.
 */
static _Atomic uint64_t watchdog_deadline;
static const char *_Atomic watchdog_name;

static void *
watchdog_main(void *arg)
{
	(void)arg;
	for (;;) {
		sleep_ns(200000000u);
		/* Acquire: pairs with watchdog_arm's release store, so the name
		 * read below is the armed scenario's. */
		uint64_t d = atomic_load_explicit(&watchdog_deadline, memory_order_acquire);
		if (d && now_ns() > d) {
			const char *n = atomic_load_explicit(&watchdog_name, memory_order_relaxed);
			fprintf(stderr,
			    "\nfsesl-bench: FAILED %s: still running long after its "
			    "duration and the command timeout - a request never "
			    "completed; giving up\n",
			    n ? n : "?");
			_exit(1);
		}
	}
	return NULL;
}

static void
watchdog_arm(const struct bench_opts *o, const struct scenario *sc)
{
	/* Duration, the drain of the last requests, and the many-connections
	 * scenario's (bounded, 30 s) wait for its pool, with room to spare. */
	uint64_t budget =
	    (uint64_t)(o->duration_s * 1e9) + (uint64_t)o->timeout_ms * 3000000u + 60000000000ull;
	atomic_store_explicit(&watchdog_name, sc ? sc->name : NULL, memory_order_relaxed);
	/* Release: pairs with the watchdog's acquire load (the name first). */
	atomic_store_explicit(&watchdog_deadline, sc ? now_ns() + budget : 0, memory_order_release);
}

static void
run_one(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	memset(r, 0, sizeof(*r));
	r->sc = sc;
	r->submit_syscalls_per_cmd = -1;
	r->wake_syscalls_per_cmd = -1;
	r->io_cpu_us_per_cmd = -1;
	r->rusage_cpu_us_per_cmd = -1;
	r->server_cpu_us_per_cmd = -1;
	r->mem_per_conn_bytes = -1;
	hist_reset(&r->lat);
	cpu_registry_reset();
	switch (sc->kind) {
	case K_BARE:
		run_bare(env, idx, sc, r);
		break;
	case K_OPENSIPS:
		run_opensips(env, idx, sc, r);
		break;
	case K_PER_WORKER:
		run_per_worker(env, idx, sc, r);
		break;
	case K_ENGINE:
		run_engine(env, idx, sc, r);
		break;
	case K_ASYNC:
		run_async(env, idx, sc, r);
		break;
	case K_MANY_CONNS:
		run_many_conns(env, idx, sc, r);
		break;
	case K_BLOCKING:
		run_blocking(env, idx, sc, r);
		break;
	}
}

/* Is run a better than run b? Noise on a shared machine only ever slows
 * a run down, so the best of N is the least disturbed: the highest rate in
 * a closed loop, the lowest p99 at a fixed arrival rate. */
static bool
better(const struct result *a, const struct result *b)
{
	if (a->ran != b->ran)
		return a->ran;
	if (a->sc->open_rate)
		return hist_quantile(&a->lat, 0.99) < hist_quantile(&b->lat, 0.99);
	return a->cmds_per_s > b->cmds_per_s;
}

/* Folds run `r` (repetition rep) into the kept result: the best run's
 * figures, every run's failures. */
static void
keep_best(struct result *kept, const struct result *r, unsigned rep)
{
	if (rep == 0) {
		*kept = *r;
		return;
	}
	uint64_t errors = kept->errors + r->errors, mismatches = kept->mismatches + r->mismatches,
	         lost = kept->lost + r->lost;
	bool all_ran = kept->ran && r->ran;
	char first[160];
	snprintf(
	    first, sizeof(first), "%s", kept->first_error[0] ? kept->first_error : r->first_error);
	if (better(r, kept))
		*kept = *r;
	kept->errors = errors;
	kept->mismatches = mismatches;
	kept->lost = lost;
	kept->ran = all_ran;
	snprintf(kept->first_error, sizeof(kept->first_error), "%s", first);
}

int
main(int argc, char **argv)
{
	static struct cli c;
	static struct plan p;
	static struct bench_env env;
	int rc = parse_args(argc, argv, &c);
	if (rc)
		return rc;
	env.o = &c.o;
	bool sim = c.o.n_urls == 0;
	/* Before any thread: the probe opens a ring of its own. */
	c.uring_ok = wake_uring_available(c.uring_why, sizeof(c.uring_why));
	if (!sim && (rc = targets_from_urls(&c, &env)) != 0)
		return rc;
	build_plan(&c, sim, sim ? BENCH_MAX_SERVERS : env.n_targets, &p);
	if (c.list) {
		for (size_t i = 0; i < p.n; i++)
			if (p.sc[i].enabled)
				printf("%s\n", p.sc[i].name);
		return 0;
	}
	size_t n_run = 0;
	unsigned max_conns = 0;
	for (size_t i = 0; i < p.n; i++) {
		if (!p.sc[i].enabled)
			continue;
		n_run++;
		unsigned need = p.sc[i].conns_per_server * p.sc[i].servers + p.sc[i].workers;
		if (need > max_conns)
			max_conns = need;
	}
	if (!n_run) {
		fprintf(
		    stderr, "fsesl-bench: --only '%s' matches no scenario (see --list)\n", c.only);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(max_conns * 2);
	(void)large_padding(c.o.large_bytes); /* built before any thread starts */
	c.o.progress = !c.no_progress && isatty(STDERR_FILENO);

	/* Fork the simulators before any thread exists (simhost.c). */
	if (sim) {
		if (!simhost_available()) {
			fprintf(stderr, "fsesl-bench: this build has no simulator; use --url\n");
			return 1;
		}
		env.n_targets = 1;
		for (size_t i = 0; i < p.n; i++)
			if (p.sc[i].enabled && p.sc[i].servers > env.n_targets)
				env.n_targets = p.sc[i].servers;
		rc = simhost_start(env.n_targets, &c.o, env.targets);
		if (rc != 0) {
			fprintf(stderr, "fsesl-bench: cannot start the simulator: %s\n",
			    fsesl_strerror(rc));
			return 1;
		}
		env.sim = true;
	}

	struct result *res = calloc(p.n, sizeof(*res));
	if (!res) {
		fprintf(stderr, "fsesl-bench: out of memory\n");
		return 1;
	}
	size_t k = 0;
	uint64_t t_start = now_ns();
	struct result *tmp = malloc(sizeof(*tmp));
	pthread_t wd;
	if (pthread_create(&wd, NULL, watchdog_main, NULL) == 0) {
		cpu_thread_harness_permanent(wd);
		pthread_detach(wd);
	}
	if (!tmp) {
		fprintf(stderr, "fsesl-bench: out of memory\n");
		return 1;
	}
	/* Repetitions go round the whole plan, so that a noisy moment spoils
	 * one run of several scenarios rather than every run of one. */
	for (unsigned rep = 0; rep < c.repeat; rep++) {
		k = 0;
		for (size_t i = 0; i < p.n; i++) {
			if (!p.sc[i].enabled)
				continue;
			if (c.o.progress) {
				fprintf(stderr, "\r\033[K[%zu/%zu", k + 1, n_run);
				if (c.repeat > 1)
					fprintf(stderr, ", round %u/%u", rep + 1, c.repeat);
				fprintf(stderr, "] %s (%.0f s elapsed)", p.sc[i].name,
				    (double)(now_ns() - t_start) / 1e9);
				fflush(stderr);
			}
			watchdog_arm(&c.o, &p.sc[i]);
			run_one(&env, (unsigned)i, &p.sc[i], tmp);
			watchdog_arm(&c.o, NULL);
			keep_best(&res[k], tmp, rep);
			k++;
		}
	}
	free(tmp);
	if (c.o.progress)
		fprintf(stderr, "\r\033[K");
	if (sim)
		simhost_stop();

	struct ratios ra;
	compute_ratios(res, k, &c.o, c.uring_ok, &ra);
	FILE *table = (c.o.json || c.o.csv) ? stderr : stdout;
	fprintf(table,
	    "fsesl-bench %s: %zu scenarios, %.1f s each (%.2f s warm-up), %s, %.0f s "
	    "in all\n",
	    fsesl_version(), k, c.o.duration_s, c.o.warmup_s,
	    sim ? "embedded simulator (child process)" : "real servers",
	    (double)(now_ns() - t_start) / 1e9);
	if (sim)
		fprintf(table, "simulator mode: %s\n", sim_mode_name(c.o.sim_mode));
	if (!c.uring_ok)
		fprintf(table, "blocking_uring_* not run: %s\n", c.uring_why);
	fprintf(table, "engine compared with the bare-blocking baseline using: %s\n\n",
	    wake_tech_name(ra.engine_wake));
	report_table(table, res, k, &ra);
	if (c.o.json && report_json(stdout, &env, res, k, &ra, c.uring_ok, c.uring_why) != 0)
		fprintf(stderr, "fsesl-bench: JSON output failed\n");
	if (c.o.csv)
		report_csv(stdout, res, k);
	if (c.o.plot_file && report_plot(c.o.plot_file, res, k) != 0)
		fprintf(stderr, "fsesl-bench: cannot write the plot to %s\n", c.o.plot_file);

	fflush(stdout);
	int failed = 0;
	for (size_t i = 0; i < k; i++) {
		const struct result *r = &res[i];
		if (r->ran && !r->errors && !r->mismatches && !r->lost)
			continue;
		failed++;
		fprintf(stderr,
		    "fsesl-bench: FAILED %s: %llu errors, %llu mismatches, %llu lost%s%s%s\n",
		    r->sc->name, (unsigned long long)r->errors, (unsigned long long)r->mismatches,
		    (unsigned long long)r->lost, r->ran ? "" : " (did not run)",
		    r->first_error[0] || r->skip_reason[0] ? ": " : "",
		    r->first_error[0] ? r->first_error : r->skip_reason);
	}
	free(res);
	if (failed) {
		fprintf(stderr, "fsesl-bench: %d of %zu scenarios FAILED\n", failed, k);
		return 1;
	}
	return 0;
}
