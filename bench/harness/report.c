/*
 * report.c - what fsesl-bench prints: a table for people, JSON (cJSON) and
 * CSV for scripts with stable field names, the ratios against the
 * baselines with the project's targets, and a latency chart (gnuplot when
 * installed, otherwise an SVG written here).
 *
 * Latency columns are in microseconds everywhere in machine output; the
 * table picks us or ms for readability.
 */
#include "bench.h"

#include "fsesl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const struct result *
find(const struct result *res, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (res[i].ran && res[i].commands && strcmp(res[i].sc->name, name) == 0)
			return &res[i];
	return NULL;
}

static double
us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static double
ratio(const struct result *a, const struct result *b)
{
	return (a && b && b->cmds_per_s > 0) ? a->cmds_per_s / b->cmds_per_s : NAN;
}

static double
qratio(const struct result *a, const struct result *b, double q)
{
	if (!a || !b)
		return NAN;
	uint64_t qb = hist_quantile(&b->lat, q);
	return qb ? (double)hist_quantile(&a->lat, q) / (double)qb : NAN;
}

const char *
blocking_twin(const char *name, enum wake_tech t, char *buf, size_t cap)
{
	/* futex_<w>w[dims]: the same dimensions, the baseline's family. */
	if (strncmp(name, "futex_", 6) != 0)
		return NULL;
	snprintf(buf, cap, "%s_%s", t == WAKE_URING ? "blocking_uring" : "blocking", name + 6);
	return buf;
}

static double
cpu_of(const struct result *r)
{
	return r ? r->cpu_us_per_cmd : NAN;
}

void
compute_ratios(const struct result *res, size_t n, const struct bench_opts *o, bool uring_ok,
    struct ratios *out)
{
	const struct result *f1 = find(res, n, "futex_1w"), *f16 = find(res, n, "futex_16w"),
	                    *f64 = find(res, n, "futex_64w");
	const struct result *b1 = find(res, n, "bare_serial"),
	                    *b16 = find(res, n, "bare_window_16"),
	                    *b64 = find(res, n, "bare_window_64");
	const struct result *o16 = find(res, n, "opensips_16w"),
	                    *o64 = find(res, n, "opensips_64w");
	const struct result *p16 = find(res, n, "per_worker_16w");
	const struct result *a64 = find(res, n, "async_window_64");
	const struct result *a16 = find(res, n, "async_window_16");
	const struct result *k1 = find(res, n, "blocking_1w"), *k16 = find(res, n, "blocking_16w"),
	                    *k64 = find(res, n, "blocking_64w");
	const struct result *u16 = find(res, n, "blocking_uring_16w"),
	                    *u64 = find(res, n, "blocking_uring_64w");

	memset(out, 0, sizeof(*out));
	/* An engine that batches through io_uring falls back to FUTEX_WAKE
	 * where io_uring cannot: so does the comparison. */
	out->engine_wake = o->engine_wake == WAKE_URING && uring_ok ? WAKE_URING : WAKE_FUTEX;
	out->fs_like = o->sim_mode == SIM_MODE_FS_LIKE;
	const struct result *e16 = out->engine_wake == WAKE_URING ? u16 : k16,
	                    *e64 = out->engine_wake == WAKE_URING ? u64 : k64;

	out->futex_vs_bare_window_16 = ratio(f16, b16);
	out->futex_vs_bare_window_64 = ratio(f64, b64);
	out->futex_64w_vs_16w = ratio(f64, f16);
	out->futex_cpu_us_per_cmd_16w = cpu_of(f16);
	out->futex_cpu_us_per_cmd_64w = cpu_of(f64);
	out->serial_p50_vs_bare_rtt = qratio(f1, b1, 0.5);
	out->futex_vs_blocking_16w = ratio(f16, e16);
	out->futex_vs_blocking_64w = ratio(f64, e64);
	out->futex_vs_opensips_16w = ratio(f16, o16);
	out->futex_vs_opensips_64w = ratio(f64, o64);
	out->futex_p50_vs_opensips_16w = qratio(f16, o16, 0.5);
	out->futex_p50_vs_opensips_64w = qratio(f64, o64, 0.5);
	out->futex_vs_per_worker_16w = ratio(f16, p16);
	out->futex_p99_vs_per_worker_16w = qratio(f16, p16, 0.99);
	out->async_vs_bare_pipeline = a64 && b64 ? ratio(a64, b64) : ratio(a16, b16);
	out->futex_submit_syscalls_64w =
	    f64 && f64->submit_syscalls_per_cmd >= 0 ? f64->submit_syscalls_per_cmd : NAN;
	out->blocking_vs_bare_window_16 = ratio(k16, b16);
	out->blocking_vs_bare_window_64 = ratio(k64, b64);
	out->blocking_p50_vs_bare_rtt = qratio(k1, b1, 0.5);
	out->blocking_uring_vs_blocking_16w = ratio(u16, k16);
	out->blocking_uring_vs_blocking_64w = ratio(u64, k64);
}

/* The project's targets (docs/benchmarks.md); measured, never asserted.
 * goal NAN: context only. goal_fs_like: the goal against the
 * FreeSWITCH-like simulator, where it differs (0: the same). */
struct target {
	const char *key;
	const char *what;
	size_t off;
	double goal;
	bool at_least;
	double goal_fs_like;
};

#define RA(f) offsetof(struct ratios, f)
static const struct target targets[] = {
    {"futex_vs_bare_window_16", "futex 16w / bare window 16 (cmds/s)", RA(futex_vs_bare_window_16),
        0.35, true, 0},
    {"futex_vs_bare_window_64", "futex 64w / bare window 64 (cmds/s)", RA(futex_vs_bare_window_64),
        0.17, true, 0},
    {"futex_64w_vs_16w", "futex 64w / futex 16w (cmds/s)", RA(futex_64w_vs_16w), 1.0, true, 0},
    {"futex_cpu_us_per_cmd_16w", "futex 16w client CPU us per command",
        RA(futex_cpu_us_per_cmd_16w), 10, false, 0},
    {"futex_cpu_us_per_cmd_64w", "futex 64w client CPU us per command",
        RA(futex_cpu_us_per_cmd_64w), 10, false, 0},
    {"serial_p50_vs_bare_rtt", "futex 1w p50 / bare serial p50", RA(serial_p50_vs_bare_rtt), 1.0,
        false, 0},
    {"futex_vs_blocking_16w", "futex 16w / bare-blocking 16w (cmds/s)", RA(futex_vs_blocking_16w),
        0.9, true, 0},
    {"futex_vs_blocking_64w", "futex 64w / bare-blocking 64w (cmds/s)", RA(futex_vs_blocking_64w),
        0.9, true, 0},
    {"futex_vs_opensips_16w", "futex / OpenSIPS pattern, 16w (cmds/s)", RA(futex_vs_opensips_16w),
        15, true, 0},
    {"futex_vs_opensips_64w", "futex / OpenSIPS pattern, 64w (cmds/s)", RA(futex_vs_opensips_64w),
        35, true, 2.5},
    {"futex_p50_vs_opensips_16w", "futex / OpenSIPS p50, 16w", RA(futex_p50_vs_opensips_16w), 0.10,
        false, 0},
    {"futex_p50_vs_opensips_64w", "futex / OpenSIPS p50, 64w", RA(futex_p50_vs_opensips_64w), 0.10,
        false, 0},
    {"futex_vs_per_worker_16w", "futex / conn-per-worker, 16w (cmds/s)",
        RA(futex_vs_per_worker_16w), 3, true, 0},
    {"futex_p99_vs_per_worker_16w", "futex / conn-per-worker p99, 16w",
        RA(futex_p99_vs_per_worker_16w), 0.5, false, 0},
    {"async_vs_bare_pipeline", "async / bare, same window (cmds/s)", RA(async_vs_bare_pipeline),
        0.60, true, 0},
    {"futex_submit_syscalls_64w", "submit syscalls per command, 64w", RA(futex_submit_syscalls_64w),
        0.10, false, 0},
    {"blocking_vs_bare_window_16", "bare-blocking 16w / bare window 16",
        RA(blocking_vs_bare_window_16), NAN, true, 0},
    {"blocking_vs_bare_window_64", "bare-blocking 64w / bare window 64",
        RA(blocking_vs_bare_window_64), NAN, true, 0},
    {"blocking_p50_vs_bare_rtt", "bare-blocking 1w p50 / bare serial p50",
        RA(blocking_p50_vs_bare_rtt), NAN, false, 0},
    {"blocking_uring_vs_blocking_16w", "io_uring wakes / FUTEX_WAKE, bare-blocking 16w",
        RA(blocking_uring_vs_blocking_16w), NAN, true, 0},
    {"blocking_uring_vs_blocking_64w", "io_uring wakes / FUTEX_WAKE, bare-blocking 64w",
        RA(blocking_uring_vs_blocking_64w), NAN, true, 0},
};

static double
ratio_at(const struct ratios *ra, size_t off)
{
	double v;
	memcpy(&v, (const char *)ra + off, sizeof(v));
	return v;
}

static double
goal_of(const struct target *t, const struct ratios *ra)
{
	return ra->fs_like && t->goal_fs_like ? t->goal_fs_like : t->goal;
}

static bool
target_met(const struct target *t, const struct ratios *ra, double v)
{
	double g = goal_of(t, ra);
	return t->at_least ? v >= g : v <= g;
}

/* Engine scenario r against its bare-blocking twin, NAN if none ran. */
static double
vs_blocking(const struct result *res, size_t n, const struct result *r, enum wake_tech t)
{
	char buf[96];
	const char *twin = blocking_twin(r->sc->name, t, buf, sizeof(buf));
	return twin ? ratio(r, find(res, n, twin)) : NAN;
}

static const char *
fmt_lat(char *buf, size_t cap, uint64_t ns)
{
	double u = us(ns);
	if (u < 1000)
		snprintf(buf, cap, "%.0fus", u);
	else if (u < 100000)
		snprintf(buf, cap, "%.2fms", u / 1e3);
	else
		snprintf(buf, cap, "%.0fms", u / 1e3);
	return buf;
}

static const char *
fmt_rate(char *buf, size_t cap, double r)
{
	if (r >= 1e6)
		snprintf(buf, cap, "%.2fM", r / 1e6);
	else if (r >= 1e4)
		snprintf(buf, cap, "%.1fk", r / 1e3);
	else
		snprintf(buf, cap, "%.0f", r);
	return buf;
}

static const char *
fmt_opt(char *buf, size_t cap, const char *fmt, double v)
{
	if (v < 0 || isnan(v))
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, fmt, v);
	return buf;
}

void
report_table(FILE *f, const struct result *res, size_t n, const struct ratios *ra)
{
	char a[6][24], rate[24], io[16], wk[16], sys[16], win[16], vb[16];
	fprintf(f,
	    "%-30s %-14s %4s %2s %4s %5s %8s %7s %7s %7s %7s %7s %7s %6s %7s %6s %6s %5s %4s "
	    "%3s\n",
	    "scenario", "mode", "wrk", "sv", "conn", "win", "cmds/s", "p50", "p90", "p99", "p99.9",
	    "max", "cpu/cmd", "io/cmd", "csw/cmd", "wk/cmd", "sb/cmd", "vsblk", "err", "mis");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &res[i];
		const struct scenario *sc = r->sc;
		if (!r->ran) {
			fprintf(f, "%-30s %-14s  (not run: %s)\n", sc->name, sc->mode,
			    r->skip_reason[0]   ? r->skip_reason
			    : r->first_error[0] ? r->first_error
			                        : "failed");
			continue;
		}
		if (sc->window)
			snprintf(win, sizeof(win), "%u", sc->window);
		else
			snprintf(win, sizeof(win), "-");
		fprintf(f,
		    "%-30s %-14s %4u %2u %4u %5s %8s %7s %7s %7s %7s %7s %6.1fu %6s %7.2f %6s %6s "
		    "%5s %4llu %3llu\n",
		    sc->name, sc->mode, sc->workers, sc->servers, r->connections, win,
		    fmt_rate(rate, sizeof(rate), r->cmds_per_s),
		    fmt_lat(a[0], sizeof(a[0]), hist_quantile(&r->lat, 0.5)),
		    fmt_lat(a[1], sizeof(a[1]), hist_quantile(&r->lat, 0.9)),
		    fmt_lat(a[2], sizeof(a[2]), hist_quantile(&r->lat, 0.99)),
		    fmt_lat(a[3], sizeof(a[3]), hist_quantile(&r->lat, 0.999)),
		    fmt_lat(a[4], sizeof(a[4]), r->lat.max), r->cpu_us_per_cmd,
		    fmt_opt(io, sizeof(io), "%.1fu", r->io_cpu_us_per_cmd), r->csw_per_cmd,
		    fmt_opt(wk, sizeof(wk), "%.3f", r->wake_syscalls_per_cmd),
		    fmt_opt(sys, sizeof(sys), "%.3f", r->submit_syscalls_per_cmd),
		    fmt_opt(vb, sizeof(vb), "%.2f", vs_blocking(res, n, r, ra->engine_wake)),
		    (unsigned long long)(r->errors + r->lost), (unsigned long long)r->mismatches);
		if (r->note[0])
			fprintf(f, "%-30s note: %s\n", "", r->note);
		if (r->events || r->mem_per_conn_bytes > 0 || r->first_error[0]) {
			fprintf(f, "%-30s", "");
			if (r->events)
				fprintf(f, " events delivered during the scenario: %llu",
				    (unsigned long long)r->events);
			if (r->mem_per_conn_bytes > 0)
				fprintf(f, " memory per connection: %.1f KiB (%u connections)",
				    r->mem_per_conn_bytes / 1024, r->connections);
			if (r->first_error[0])
				fprintf(f, " first error: %s", r->first_error);
			fputc('\n', f);
		}
	}
	fprintf(f,
	    "\n(cpu/cmd: client CPU per command, simulator and harness threads excluded; io/cmd:\n"
	    " the part of it spent by the I/O side - the engine's reactor, the baselines' I/O or\n"
	    " manager thread; csw/cmd: context switches of the client process per command;\n"
	    " wk/cmd: wake-up syscalls per command - engine FUTEX_WAKEs, bare-blocking "
	    "FUTEX_WAKEs\n"
	    " or io_uring_enters; sb/cmd: submit-side syscalls per command - engine and\n"
	    " bare-blocking doorbell writes, other baselines' write()s; vsblk: cmds/s against the\n"
	    " bare-blocking scenario of the same dimensions using %s)\n",
	    wake_tech_name(ra->engine_wake));
	size_t shown = 0, n_targets = sizeof(targets) / sizeof(targets[0]);
	for (size_t i = 0; i < n_targets; i++) {
		const struct target *t = &targets[i];
		double v = ratio_at(ra, t->off), g = goal_of(t, ra);
		char goal[24];
		if (isnan(v))
			continue; /* its scenarios were not run (--only, --workers) */
		if (!shown++)
			fprintf(f, "\n%-48s %10s %10s  %s\n", "ratio (targets: docs/benchmarks.md)",
			    "measured", "target", "");
		if (isnan(g)) {
			fprintf(f, "%-48s %10.3f %10s\n", t->what, v, "-");
			continue;
		}
		snprintf(goal, sizeof(goal), "%s %.2f", t->at_least ? ">=" : "<=", g);
		fprintf(f, "%-48s %10.3f %10s  %s\n", t->what, v, goal,
		    target_met(t, ra, v) ? "met" : "MISSED");
	}
	if (shown < n_targets)
		fprintf(f, "\n(%zu of %zu ratios not computed: their scenarios did not run)\n",
		    n_targets - shown, n_targets);
}

static void
add_num_or_null(cJSON *o, const char *k, double v)
{
	if (isnan(v) || isinf(v))
		cJSON_AddNullToObject(o, k);
	else
		cJSON_AddNumberToObject(o, k, v);
}

static const char *
mix_name(enum bench_mix m)
{
	static const char *const names[] = {"small", "large", "bgapi", "mixed", "job"};
	return names[m];
}

static cJSON *
scenario_json(const struct result *res, size_t n, const struct result *r, const struct ratios *ra)
{
	const struct scenario *sc = r->sc;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", sc->name);
	cJSON_AddStringToObject(o, "mode", sc->mode);
	cJSON_AddNumberToObject(o, "workers", sc->workers);
	cJSON_AddNumberToObject(o, "servers", sc->servers);
	cJSON_AddNumberToObject(o, "connections_per_server", sc->conns_per_server);
	cJSON_AddNumberToObject(o, "window", sc->window);
	cJSON_AddStringToObject(o, "mix", mix_name(sc->mix));
	cJSON_AddNumberToObject(o, "open_loop_rate", sc->open_rate);
	cJSON_AddNumberToObject(o, "event_rate", sc->event_rate);
	cJSON_AddBoolToObject(o, "ran", r->ran);
	if (!r->ran)
		cJSON_AddStringToObject(
		    o, "skip_reason", r->skip_reason[0] ? r->skip_reason : r->first_error);
	cJSON_AddNumberToObject(o, "seconds", r->seconds);
	cJSON_AddNumberToObject(o, "commands", (double)r->commands);
	cJSON_AddNumberToObject(o, "cmds_per_s", r->cmds_per_s);
	cJSON_AddNumberToObject(o, "p50_us", us(hist_quantile(&r->lat, 0.5)));
	cJSON_AddNumberToObject(o, "p90_us", us(hist_quantile(&r->lat, 0.9)));
	cJSON_AddNumberToObject(o, "p99_us", us(hist_quantile(&r->lat, 0.99)));
	cJSON_AddNumberToObject(o, "p999_us", us(hist_quantile(&r->lat, 0.999)));
	cJSON_AddNumberToObject(o, "max_us", us(r->lat.max));
	cJSON_AddNumberToObject(o, "cpu_us_per_cmd", r->cpu_us_per_cmd);
	add_num_or_null(
	    o, "io_cpu_us_per_cmd", r->io_cpu_us_per_cmd >= 0 ? r->io_cpu_us_per_cmd : NAN);
	add_num_or_null(o, "rusage_cpu_us_per_cmd",
	    r->rusage_cpu_us_per_cmd >= 0 ? r->rusage_cpu_us_per_cmd : NAN);
	cJSON_AddNumberToObject(o, "ctx_switches_per_cmd", r->csw_per_cmd);
	add_num_or_null(o, "wake_syscalls_per_cmd",
	    r->wake_syscalls_per_cmd >= 0 ? r->wake_syscalls_per_cmd : NAN);
	add_num_or_null(o, "vs_blocking", vs_blocking(res, n, r, ra->engine_wake));
	add_num_or_null(o, "submit_syscalls_per_cmd",
	    r->submit_syscalls_per_cmd >= 0 ? r->submit_syscalls_per_cmd : NAN);
	add_num_or_null(o, "server_cpu_us_per_cmd",
	    r->server_cpu_us_per_cmd > 0 ? r->server_cpu_us_per_cmd : NAN);
	cJSON_AddNumberToObject(o, "errors", (double)r->errors);
	cJSON_AddNumberToObject(o, "mismatches", (double)r->mismatches);
	cJSON_AddNumberToObject(o, "lost", (double)r->lost);
	cJSON_AddNumberToObject(o, "connections", r->connections);
	cJSON_AddNumberToObject(o, "events", (double)r->events);
	add_num_or_null(
	    o, "mem_per_conn_bytes", r->mem_per_conn_bytes > 0 ? r->mem_per_conn_bytes : NAN);
	if (r->first_error[0])
		cJSON_AddStringToObject(o, "first_error", r->first_error);
	if (r->note[0])
		cJSON_AddStringToObject(o, "note", r->note);
	return o;
}

static void
machine_json(cJSON *root)
{
	struct utsname u;
	char model[256] = "";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p) {
					p += 1 + (p[1] == ' ');
					p[strcspn(p, "\n")] = 0;
					snprintf(model, sizeof(model), "%s", p);
				}
				break;
			}
		}
		fclose(f);
	}
	cJSON *m = cJSON_AddObjectToObject(root, "machine");
	cJSON_AddNumberToObject(m, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
	cJSON_AddStringToObject(m, "cpu_model", model);
	if (uname(&u) == 0) {
		cJSON_AddStringToObject(m, "kernel", u.release);
		cJSON_AddStringToObject(m, "arch", u.machine);
	}
}

int
report_json(FILE *f, const struct bench_env *env, const struct result *res, size_t n,
    const struct ratios *ra, bool uring_ok, const char *uring_why)
{
	cJSON *root = cJSON_CreateObject();
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(root, "tool", "fsesl-bench");
	cJSON_AddStringToObject(root, "version", fsesl_version());
	cJSON_AddStringToObject(root, "date", date);
	cJSON_AddStringToObject(root, "target", env->sim ? "simulator" : "url");
	cJSON_AddNumberToObject(root, "duration_s", env->o->duration_s);
	cJSON_AddNumberToObject(root, "warmup_s", env->o->warmup_s);
	cJSON_AddNumberToObject(root, "repeat", env->o->repeat);
	cJSON_AddStringToObject(root, "plan", env->o->full ? "full" : "default");
	if (env->sim) {
		struct sim_knobs k;
		simhost_knobs(env->o, &k);
		cJSON *so = cJSON_AddObjectToObject(root, "simulator");
		cJSON_AddStringToObject(so, "mode", sim_mode_name(env->o->sim_mode));
		cJSON_AddNumberToObject(so, "servers", env->n_targets);
		cJSON_AddNumberToObject(so, "api_cost_us", k.api_cost_us);
		cJSON_AddNumberToObject(so, "bgapi_cost_us", k.bgapi_cost_us);
		cJSON_AddNumberToObject(so, "event_poll_ms", k.event_poll_ms);
		cJSON_AddNumberToObject(so, "byte_cost_ns", k.byte_cost_ns);
		cJSON_AddNumberToObject(so, "dispatch_cost_us", k.dispatch_cost_us);
	}
	cJSON *wo = cJSON_AddObjectToObject(root, "wake");
	cJSON_AddBoolToObject(wo, "uring_available", uring_ok);
	if (!uring_ok)
		cJSON_AddStringToObject(wo, "uring_unavailable_because", uring_why);
	cJSON_AddStringToObject(
	    wo, "engine_compared_with", ra->engine_wake == WAKE_URING ? "uring" : "futex");
	machine_json(root);
	cJSON *arr = cJSON_AddArrayToObject(root, "scenarios");
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		cJSON_AddItemToArray(arr, scenario_json(res, n, &res[i], ra));
		if (res[i].errors || res[i].mismatches || res[i].lost || !res[i].ran)
			ok = false;
	}
	cJSON *ro = cJSON_AddObjectToObject(root, "ratios");
	cJSON *tg = cJSON_AddArrayToObject(root, "targets");
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const struct target *t = &targets[i];
		double v = ratio_at(ra, t->off), g = goal_of(t, ra);
		add_num_or_null(ro, t->key, v);
		if (isnan(g))
			continue; /* context, not a target */
		cJSON *to = cJSON_CreateObject();
		cJSON_AddStringToObject(to, "ratio", t->key);
		cJSON_AddStringToObject(to, "op", t->at_least ? ">=" : "<=");
		cJSON_AddNumberToObject(to, "goal", g);
		add_num_or_null(to, "measured", v);
		if (isnan(v))
			cJSON_AddNullToObject(to, "met");
		else
			cJSON_AddBoolToObject(to, "met", target_met(t, ra, v));
		cJSON_AddItemToArray(tg, to);
	}
	cJSON_AddBoolToObject(root, "ok", ok);
	char *s = cJSON_Print(root);
	cJSON_Delete(root);
	if (!s)
		return -1;
	fprintf(f, "%s\n", s);
	cJSON_free(s);
	return 0;
}

void
report_csv(FILE *f, const struct result *res, size_t n)
{
	fprintf(f, "name,mode,workers,servers,connections_per_server,window,mix,open_loop_rate,"
	           "event_rate,ran,commands,cmds_per_s,p50_us,p90_us,p99_us,p999_us,max_us,"
	           "cpu_us_per_cmd,submit_syscalls_per_cmd,errors,mismatches,lost,connections,"
	           "events,mem_per_conn_bytes,ctx_switches_per_cmd,io_cpu_us_per_cmd,"
	           "wake_syscalls_per_cmd,rusage_cpu_us_per_cmd\n");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &res[i];
		const struct scenario *sc = r->sc;
		char sys[32] = "", mem[32] = "", io[32] = "", wk[32] = "", ru[32] = "";
		if (r->io_cpu_us_per_cmd >= 0)
			snprintf(io, sizeof(io), "%.3f", r->io_cpu_us_per_cmd);
		if (r->wake_syscalls_per_cmd >= 0)
			snprintf(wk, sizeof(wk), "%.4f", r->wake_syscalls_per_cmd);
		if (r->rusage_cpu_us_per_cmd >= 0)
			snprintf(ru, sizeof(ru), "%.3f", r->rusage_cpu_us_per_cmd);
		if (r->submit_syscalls_per_cmd >= 0)
			snprintf(sys, sizeof(sys), "%.4f", r->submit_syscalls_per_cmd);
		if (r->mem_per_conn_bytes > 0)
			snprintf(mem, sizeof(mem), "%.0f", r->mem_per_conn_bytes);
		fprintf(f,
		    "%s,%s,%u,%u,%u,%u,%s,%u,%u,%d,%llu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.3f,%s,"
		    "%llu,%llu,%llu,%u,%llu,%s,%.3f,%s,%s,%s\n",
		    sc->name, sc->mode, sc->workers, sc->servers, sc->conns_per_server, sc->window,
		    mix_name(sc->mix), sc->open_rate, sc->event_rate, r->ran ? 1 : 0,
		    (unsigned long long)r->commands, r->cmds_per_s, us(hist_quantile(&r->lat, 0.5)),
		    us(hist_quantile(&r->lat, 0.9)), us(hist_quantile(&r->lat, 0.99)),
		    us(hist_quantile(&r->lat, 0.999)), us(r->lat.max), r->cpu_us_per_cmd, sys,
		    (unsigned long long)r->errors, (unsigned long long)r->mismatches,
		    (unsigned long long)r->lost, r->connections, (unsigned long long)r->events, mem,
		    r->csw_per_cmd, io, wk, ru);
	}
}

/* ------------------------------------------------------------------ */
/* Latency chart: percentile spectrum, both axes logarithmic            */
/* ------------------------------------------------------------------ */

#define PLOT_STEPS 41 /* x = 0 .. 4 "nines" in steps of 0.1: p0 .. p99.99 */

static double
plot_q(int i)
{
	return 1.0 - pow(10.0, -(double)i / 10.0);
}

static bool
in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];
	while (path && *path) {
		size_t l = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)l, path, prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += l + (path[l] == ':');
	}
	return false;
}

static int
plot_gnuplot(const char *file, const struct result *res, size_t n)
{
	FILE *g = popen("gnuplot", "w");
	if (!g)
		return -1;
	const char *ext = strrchr(file, '.');
	bool png = ext && strcmp(ext, ".png") == 0;
	fprintf(g, "set terminal %s noenhanced size 1200,700\n", png ? "pngcairo" : "svg");
	fprintf(g, "set output '%s'\n", file);
	fprintf(g, "set logscale y\nset xlabel 'percentile (nines: 1=p90, 2=p99, 3=p99.9)'\n");
	fprintf(g, "set ylabel 'latency (us)'\nset key outside right\nset grid\n");
	fprintf(g, "plot ");
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (!res[i].ran || !res[i].lat.count)
			continue;
		fprintf(g, "%s'-' with lines title '%s'", first ? "" : ", ", res[i].sc->name);
		first = false;
	}
	fprintf(g, "\n");
	for (size_t i = 0; i < n; i++) {
		if (!res[i].ran || !res[i].lat.count)
			continue;
		for (int s = 0; s < PLOT_STEPS; s++)
			fprintf(
			    g, "%.2f %.3f\n", s / 10.0, us(hist_quantile(&res[i].lat, plot_q(s))));
		fprintf(g, "e\n");
	}
	return pclose(g) == 0 ? 0 : -1;
}

static int
plot_svg(const char *file, const struct result *res, size_t n)
{
	static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
	    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
	static const char *const dashes[] = {"", "6,3", "2,2"};
	const double W = 1200, H = 700, L = 80, R = 330, T = 40, B = 60;
	double pw = W - L - R, ph = H - T - B;
	double ymin = 1e18, ymax = 0;
	for (size_t i = 0; i < n; i++) {
		if (!res[i].ran || !res[i].lat.count)
			continue;
		double lo = us(hist_quantile(&res[i].lat, 0)), hi = us(res[i].lat.max);
		if (lo < ymin)
			ymin = lo;
		if (hi > ymax)
			ymax = hi;
	}
	if (ymax <= 0)
		return -1;
	if (ymin < 1)
		ymin = 1;
	double l0 = floor(log10(ymin)), l1 = ceil(log10(ymax));
	if (l1 <= l0)
		l1 = l0 + 1;
	FILE *f = fopen(file, "w");
	if (!f)
		return -1;
	fprintf(f,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	    "font-family=\"sans-serif\" font-size=\"12\">\n"
	    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	    "<text x=\"%.0f\" y=\"24\" font-size=\"16\">fsesl-bench: latency by percentile"
	    "</text>\n",
	    W, H, L);
	/* Grid: decades of latency, nines of percentile. */
	for (double d = l0; d <= l1; d++) {
		double y = T + ph - (d - l0) / (l1 - l0) * ph;
		fprintf(f,
		    "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L,
		    y, L + pw, y);
		double v = pow(10, d);
		fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6,
		    y + 4,
		    v >= 1e6   ? (v >= 1e7 ? "10 s" : "1 s")
		    : v >= 1e3 ? (v >= 1e5      ? "100 ms"
		                     : v >= 1e4 ? "10 ms"
		                                : "1 ms")
		    : v >= 100 ? "100 us"
		    : v >= 10  ? "10 us"
		               : "1 us");
	}
	static const char *const xl[] = {"p0", "p90", "p99", "p99.9", "p99.99"};
	for (int x = 0; x <= 4; x++) {
		double px = L + x / 4.0 * pw;
		fprintf(f,
		    "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n", px,
		    T, px, T + ph);
		fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", px,
		    T + ph + 18, xl[x]);
	}
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">percentile</text>\n",
	    L + pw / 2, H - 14);
	fprintf(f,
	    "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
	    "stroke=\"black\"/>\n",
	    L, T, pw, ph);
	int k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!res[i].ran || !res[i].lat.count)
			continue;
		const char *c = colours[k % 10], *d = dashes[(k / 10) % 3];
		fprintf(f,
		    "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s%s%s points=\"", c,
		    d[0] ? " stroke-dasharray=\"" : "", d, d[0] ? "\"" : "");
		for (int s = 0; s < PLOT_STEPS; s++) {
			double v = us(hist_quantile(&res[i].lat, plot_q(s)));
			if (v < ymin)
				v = ymin;
			double px = L + (s / 10.0) / 4.0 * pw;
			double py = T + ph - (log10(v) - l0) / (l1 - l0) * ph;
			fprintf(f, "%.1f,%.1f ", px, py);
		}
		fprintf(f, "\"/>\n");
		double ly = T + 10 + k * 16;
		fprintf(f,
		    "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
		    "stroke-width=\"2\"%s%s%s/>\n",
		    L + pw + 12, ly, L + pw + 40, ly, c, d[0] ? " stroke-dasharray=\"" : "", d,
		    d[0] ? "\"" : "");
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">%s (p50 %.0f us)</text>\n", L + pw + 46,
		    ly + 4, res[i].sc->name, us(hist_quantile(&res[i].lat, 0.5)));
		k++;
	}
	fprintf(f, "</svg>\n");
	return fclose(f) == 0 ? 0 : -1;
}

int
report_plot(const char *path, const struct result *res, size_t n)
{
	if (in_path("gnuplot") && plot_gnuplot(path, res, n) == 0)
		return 0;
	return plot_svg(path, res, n);
}
