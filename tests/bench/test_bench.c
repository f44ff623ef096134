/*
 * test_bench.c - fsesl-bench as a black box: usage errors exit 2 with a
 * message naming the problem, --list names the scenarios the targets are
 * computed from, --json keeps its stable fields, --csv and --plot write
 * what they promise, a short run of every family's basic scenario checks
 * every reply and succeeds, and an unreachable server fails loudly.
 * No timing is asserted: speed is reported, not tested.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fsesl_sim.h"
#include "test_bench_util.h"

static void
expect_usage_error(const char *const *args, const char *needle)
{
	struct bench_run r;
	cr_assert_eq(bench_run(args, &r), 0);
	cr_expect_eq(r.status, 2, "%s: exit %d, stderr: %s", args[0], r.status, r.err);
	cr_expect(strstr(r.err, needle) != NULL, "stderr lacks '%s': %s", needle, r.err);
	cr_expect_eq(r.out_len, 0, "usage errors print nothing on stdout: %s", r.out);
	bench_run_free(&r);
}

Test(bench_args, unknown_option)
{
	expect_usage_error((const char *[]){"--bogus", NULL}, "unknown option '--bogus'");
}

Test(bench_args, bad_numbers)
{
	expect_usage_error((const char *[]){"--workers", "0", NULL}, "--workers");
	expect_usage_error((const char *[]){"--workers", "1,x", NULL}, "--workers");
	expect_usage_error((const char *[]){"--workers", "2000", NULL}, "--workers");
	expect_usage_error((const char *[]){"--duration", "abc", NULL}, "--duration");
	expect_usage_error((const char *[]){"--duration", "-1", NULL}, "--duration");
	expect_usage_error((const char *[]){"--window", "", NULL}, "--window");
	expect_usage_error((const char *[]){"--servers", "99", NULL}, "--servers");
	expect_usage_error((const char *[]){"--rate", "-5", NULL}, "--rate");
	expect_usage_error((const char *[]){"--mix", "huge", NULL}, "--mix");
	expect_usage_error((const char *[]){"--repeat", "0", NULL}, "--repeat");
	expect_usage_error((const char *[]){"--sim-mode", "slow", NULL}, "--sim-mode");
	expect_usage_error((const char *[]){"--engine-wake", "spin", NULL}, "--engine-wake");
}

Test(bench_args, missing_value_and_extra_argument)
{
	expect_usage_error((const char *[]){"--duration", NULL}, "needs a value");
	expect_usage_error((const char *[]){"stray", NULL}, "unexpected argument 'stray'");
	expect_usage_error((const char *[]){"--json", "--csv", NULL}, "exclusive");
	expect_usage_error((const char *[]){"--only", "no_such_scenario", NULL}, "--list");
}

Test(bench_args, bad_url_never_shows_the_password)
{
	struct bench_run r;
	const char *args[] = {"--url", "http://:s3cretPW@127.0.0.1:8021", NULL};
	cr_assert_eq(bench_run(args, &r), 0);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(strstr(r.err, "--url") != NULL, "%s", r.err);
	cr_expect(strstr(r.err, "s3cretPW") == NULL, "password leaked: %s", r.err);
	bench_run_free(&r);
}

Test(bench_args, help_and_list)
{
	struct bench_run r;
	cr_assert_eq(bench_run((const char *[]){"--help", NULL}, &r), 0);
	cr_expect_eq(r.status, 0);
	cr_expect(strstr(r.out, "usage: fsesl-bench") != NULL, "%s", r.out);
	bench_run_free(&r);

	cr_assert_eq(bench_run((const char *[]){"--list", NULL}, &r), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	/* Every scenario a ratio is computed from exists by default. */
	static const char *const names[] = {"bare_serial\n", "bare_window_16\n", "bare_window_64\n",
	    "opensips_16w\n", "opensips_64w\n", "per_worker_16w\n", "futex_1w\n", "futex_16w\n",
	    "futex_64w\n", "poll1000_16w\n", "poll100_16w\n", "async_window_16\n",
	    "async_window_64\n", "many_conns_1000\n", "blocking_1w\n", "blocking_16w\n",
	    "blocking_64w\n", "batch_window_16\n",
	    /* The matrix users meet, one dimension at a time. */
	    "futex_256w\n", "blocking_256w\n", "poll1000_256w\n", "futex_16w_4conns\n",
	    "futex_64w_20servers\n", "futex_256w_events_10000\n", "poll1000_64w_events_10000\n",
	    "blocking_64w_4conns\n", "blocking_64w_20servers\n", "blocking_64w_events_10000\n"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_expect(strstr(r.out, names[i]) != NULL, "missing %s in:\n%s", names[i], r.out);
	bench_run_free(&r);

	/* --full crosses every dimension, each point once. */
	cr_assert_eq(bench_run((const char *[]){"--list", "--full", NULL}, &r), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	static const char *const cross[] = {"\nfutex_256w_4conns_20servers_events_10000\n",
	    "\npoll1000_16w_4conns_20servers\n", "\nblocking_64w_20servers_events_10000\n",
	    "\nfutex_1w_20servers_events_10000\n", "\nopensips_256w\n"};
	for (size_t i = 0; i < sizeof(cross) / sizeof(cross[0]); i++)
		cr_expect(strstr(r.out, cross[i]) != NULL, "missing %s in:\n%s", cross[i], r.out);
	/* One caller never uses a second connection. */
	cr_expect(strstr(r.out, "\nfutex_1w_4conns") == NULL, "%s", r.out);
	for (const char *l = r.out; *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) + 1 : strlen(l);
		char line[96];
		snprintf(line, sizeof(line), "\n%.*s", (int)len, l);
		const char *again = strstr(l + len - 1, line);
		cr_expect(again == NULL, "planned twice: %.*s", (int)len - 1, l);
		l += len;
	}
	bench_run_free(&r);

	/* --only filters; --workers changes the worker scenarios. */
	cr_assert_eq(bench_run((const char *[]){"--list", "--only", "opensips", "--workers", "2,8",
	                           "--rate", "0", NULL},
	                 &r),
	    0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect_str_eq(r.out, "opensips_2w\nopensips_8w\n");
	bench_run_free(&r);
}

static const char *const short_run[] = {"--json", "--no-progress", "--duration", "0.15",
    "--workers", "1", "--window", "16", "--only",
    "bare_serial,bare_window_16,opensips_1w,per_worker_1w,futex_1w,poll100_1w,async_window_16,"
    "blocking_1w",
    NULL};

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	cr_assert(cJSON_IsNumber(v), "field %s is not a number", k);
	return v->valuedouble;
}

Test(bench_run, json_shape_and_every_reply_checked, .timeout = 60)
{
	struct bench_run r;
	cr_assert_eq(bench_run(short_run, &r), 0);
	cr_assert_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
	cJSON *root = cJSON_Parse(r.out);
	cr_assert_not_null(root, "stdout is not JSON:\n%s", r.out);
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")));
	cr_expect(cJSON_IsString(cJSON_GetObjectItem(root, "date")));
	cr_expect(cJSON_IsObject(cJSON_GetObjectItem(root, "machine")));
	const cJSON *arr = cJSON_GetObjectItem(root, "scenarios");
	cr_assert(cJSON_IsArray(arr));
	cr_expect_eq(cJSON_GetArraySize(arr), 8);
	const cJSON *sc;
	cJSON_ArrayForEach(sc, arr)
	{
		const cJSON *name = cJSON_GetObjectItem(sc, "name");
		cr_assert(cJSON_IsString(name));
		cr_expect(cJSON_IsString(cJSON_GetObjectItem(sc, "mode")), "%s", name->valuestring);
		static const char *const fields[] = {"workers", "servers", "connections_per_server",
		    "window", "commands", "cmds_per_s", "p50_us", "p90_us", "p99_us", "p999_us",
		    "max_us", "cpu_us_per_cmd", "errors", "mismatches"};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			num(sc, fields[i]);
		const cJSON *sys = cJSON_GetObjectItem(sc, "submit_syscalls_per_cmd");
		cr_expect(cJSON_IsNumber(sys) || cJSON_IsNull(sys), "%s", name->valuestring);
		cr_expect(num(sc, "commands") > 0, "%s completed nothing", name->valuestring);
		cr_expect_eq(num(sc, "errors"), 0, "%s", name->valuestring);
		cr_expect_eq(num(sc, "mismatches"), 0, "%s", name->valuestring);
		cr_expect_eq(num(sc, "lost"), 0, "%s", name->valuestring);
		/* Percentiles are ordered. */
		cr_expect(num(sc, "p50_us") <= num(sc, "p90_us"));
		cr_expect(num(sc, "p90_us") <= num(sc, "p99_us"));
		cr_expect(num(sc, "p99_us") <= num(sc, "p999_us"));
		cr_expect(num(sc, "p999_us") <= num(sc, "max_us"));
		/* Client CPU, every scenario: the harness's threads are left
		 * out, so it is never more than the whole process's. */
		cr_expect_gt(num(sc, "cpu_us_per_cmd"), 0, "%s", name->valuestring);
		cr_expect_leq(num(sc, "cpu_us_per_cmd"),
		    num(sc, "rusage_cpu_us_per_cmd") * 1.01 + 0.01, "%s", name->valuestring);
		/* The I/O side's share: where there is one, a part of it. */
		const cJSON *io = cJSON_GetObjectItem(sc, "io_cpu_us_per_cmd");
		const char *mode = cJSON_GetObjectItem(sc, "mode")->valuestring;
		if (!strcmp(mode, "bare") || !strcmp(mode, "per_worker")) {
			cr_expect(cJSON_IsNull(io), "%s", name->valuestring);
		} else {
			cr_expect(cJSON_IsNumber(io), "%s", name->valuestring);
			cr_expect_leq(num(sc, "io_cpu_us_per_cmd"), num(sc, "cpu_us_per_cmd"), "%s",
			    name->valuestring);
		}
	}
	const cJSON *ra = cJSON_GetObjectItem(root, "ratios");
	cr_assert(cJSON_IsObject(ra));
	static const char *const ratios[] = {"futex_vs_bare_window_16", "futex_vs_bare_window_64",
	    "futex_vs_opensips_16w", "futex_vs_opensips_64w", "futex_vs_per_worker_16w",
	    "serial_p50_vs_bare_rtt", "async_vs_bare_pipeline", "futex_vs_blocking_16w",
	    "futex_vs_blocking_64w", "futex_64w_vs_16w", "futex_cpu_us_per_cmd_16w",
	    "futex_cpu_us_per_cmd_64w", "blocking_p50_vs_bare_rtt"};
	for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
		const cJSON *v = cJSON_GetObjectItem(ra, ratios[i]);
		cr_expect(cJSON_IsNumber(v) || cJSON_IsNull(v), "ratio %s absent", ratios[i]);
	}
	/* Computed from scenarios that ran: numbers, not nulls. */
	cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(ra, "serial_p50_vs_bare_rtt")));
	cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(ra, "async_vs_bare_pipeline")));
	cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(ra, "blocking_p50_vs_bare_rtt")));
	/* The engine against its own hand-off, scenario by scenario. */
	cJSON_ArrayForEach(sc, arr)
	{
		const char *name = cJSON_GetObjectItem(sc, "name")->valuestring;
		const cJSON *vb = cJSON_GetObjectItem(sc, "vs_blocking");
		if (!strcmp(name, "futex_1w"))
			cr_expect(
			    cJSON_IsNumber(vb) && vb->valuedouble > 0, "futex_1w vs blocking_1w");
		else
			cr_expect(cJSON_IsNull(vb), "%s has no bare-blocking twin", name);
	}
	const cJSON *wake = cJSON_GetObjectItem(root, "wake");
	cr_expect(cJSON_IsBool(cJSON_GetObjectItem(wake, "uring_available")));
	cr_expect_str_eq(cJSON_GetObjectItem(wake, "engine_compared_with")->valuestring, "futex");
	/* Not run here (no 16-worker scenarios): null, never a made-up 0. */
	cr_expect(cJSON_IsNull(cJSON_GetObjectItem(ra, "futex_vs_opensips_16w")));
	cJSON_Delete(root);
	/* The table still reaches a human, on stderr. */
	cr_expect(strstr(r.err, "scenario") != NULL, "%s", r.err);
	bench_run_free(&r);
}

Test(bench_run, csv_and_plot, .timeout = 60)
{
	char dir[] = "/tmp/fsesl-bench-test-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char svg[sizeof(dir) + 16];
	snprintf(svg, sizeof(svg), "%s/lat.svg", dir);
	struct bench_run r;
	const char *args[] = {"--csv", "--no-progress", "--duration", "0.1", "--window", "16",
	    "--only", "bare_serial,bare_window_16", "--plot", svg, NULL};
	cr_assert_eq(bench_run(args, &r), 0);
	cr_expect_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_expect(
	    strncmp(r.out, "name,mode,workers,servers,connections_per_server,window,", 56) == 0,
	    "%s", r.out);
	int lines = 0;
	for (const char *p = r.out; *p; p++)
		lines += *p == '\n';
	cr_expect_eq(lines, 3, "header + 2 rows:\n%s", r.out);
	cr_expect(strstr(r.out, "\nbare_serial,bare,") != NULL, "%s", r.out);
	FILE *f = fopen(svg, "r");
	cr_assert_not_null(f, "no plot written");
	char head[64] = "";
	size_t n = fread(head, 1, sizeof(head) - 1, f);
	fclose(f);
	head[n] = 0;
	/* gnuplot's SVG or ours: both are SVG documents. */
	cr_expect(strstr(head, "<?xml") || strstr(head, "<svg"), "%s", head);
	unlink(svg);
	rmdir(dir);
	bench_run_free(&r);
}

Test(bench_run, unreachable_server_fails_loudly, .timeout = 60)
{
	/* A bound, never listening port on 127.0.0.1: connect is refused. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	char url[64];
	snprintf(url, sizeof(url), "fs://:pw@127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	struct bench_run r;
	const char *args[] = {"--url", url, "--no-progress", "--duration", "0.1", "--only",
	    "bare_serial,per_worker_1w", "--workers", "1", NULL};
	cr_assert_eq(bench_run(args, &r), 0);
	close(fd);
	cr_expect_eq(r.status, 1, "exit %d, stderr:\n%s", r.status, r.err);
	cr_expect(strstr(r.err, "FAILED bare_serial") != NULL, "%s", r.err);
	cr_expect(strstr(r.err, "FAILED per_worker_1w") != NULL, "%s", r.err);
	bench_run_free(&r);
}

Test(bench_run, url_mode_against_a_given_server, .timeout = 60)
{
	/* A server of our own on 127.0.0.1:0, whose password needs the URL's
	 * percent-decoding ('@'); it must never be printed. */
	struct fsesl_sim_config cfg;
	fsesl_sim *sim = NULL;
	uint16_t port = 0;
	fsesl_sim_config_init(&cfg);
	cfg.password = "s3cret@pw";
	cfg.heartbeat_interval_ms = 0;
	cr_assert_eq(fsesl_sim_start(&cfg, &sim, &port), 0);
	char url[96];
	snprintf(url, sizeof(url), "fs://:s3cret%%40pw@127.0.0.1:%u", (unsigned)port);
	struct bench_run r;
	const char *args[] = {"--url", url, "--json", "--no-progress", "--duration", "0.15",
	    "--workers", "1", "--event-rate", "1000", "--only",
	    "bare_serial,opensips_1w,per_worker_1w,futex_1w,futex_1w_events_1000", NULL};
	cr_assert_eq(bench_run(args, &r), 0);
	fsesl_sim_stop(sim);
	cr_expect_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
	cr_expect(
	    strstr(r.out, "s3cret") == NULL && strstr(r.err, "s3cret") == NULL, "password printed");
	cJSON *root = cJSON_Parse(r.out);
	cr_assert_not_null(root, "%s", r.out);
	const cJSON *t = cJSON_GetObjectItem(root, "target");
	cr_expect(cJSON_IsString(t) && strcmp(t->valuestring, "url") == 0);
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")), "%s", r.err);
	const cJSON *arr = cJSON_GetObjectItem(root, "scenarios"), *sc;
	cr_expect_eq(cJSON_GetArraySize(arr), 5);
	/* Events on a server we do not control come from our own sendevents:
	 * they must reach the engine's subscriber. */
	cJSON_ArrayForEach(sc, arr)
	{
		if (strcmp(cJSON_GetObjectItem(sc, "name")->valuestring, "futex_1w_events_1000"))
			continue;
		cr_expect_gt(cJSON_GetObjectItem(sc, "events")->valuedouble, 0);
		cr_expect_eq(cJSON_GetObjectItem(sc, "errors")->valuedouble, 0);
	}
	cJSON_Delete(root);
	bench_run_free(&r);
}

static const cJSON *
scenario_named(const cJSON *root, const char *name)
{
	const cJSON *sc;
	cJSON_ArrayForEach(sc, cJSON_GetObjectItem(root, "scenarios"))
	{
		if (!strcmp(cJSON_GetObjectItem(sc, "name")->valuestring, name))
			return sc;
	}
	return NULL;
}

Test(bench_run, bare_blocking_over_pools_servers_and_events, .timeout = 90)
{
	/* The hand-written baseline's I/O thread serves several connections
	 * per server, several servers, and an event connection per server:
	 * every reply still goes to the worker that asked. */
	struct bench_run r;
	const char *args[] = {"--json", "--no-progress", "--duration", "0.2", "--workers", "4",
	    "--servers", "3", "--conns", "2", "--event-rate", "2000", "--only", "blocking*", NULL};
	cr_assert_eq(bench_run(args, &r), 0);
	cr_assert_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
	cJSON *root = cJSON_Parse(r.out);
	cr_assert_not_null(root, "%s", r.out);
	bool uring =
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "wake"), "uring_available"));
	static const struct {
		const char *name;
		double conns;
		bool events, uring;
	} want[] = {
	    {"blocking_4w", 1, false, false},
	    {"blocking_4w_2conns", 2, false, false},
	    {"blocking_4w_3servers", 3, false, false},
	    {"blocking_4w_events_2000", 1, true, false},
	    {"blocking_uring_4w", 1, false, true},
	    {"blocking_uring_4w_2conns", 2, false, true},
	    {"blocking_uring_4w_3servers", 3, false, true},
	    {"blocking_uring_4w_events_2000", 1, true, true},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const cJSON *sc = scenario_named(root, want[i].name);
		if (want[i].uring && !uring) {
			/* Not planned where io_uring cannot wake futexes. */
			cr_expect_null(sc, "%s ran without io_uring", want[i].name);
			continue;
		}
		cr_assert_not_null(sc, "%s missing:\n%s", want[i].name, r.err);
		cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(sc, "ran")), "%s", want[i].name);
		cr_expect_gt(num(sc, "commands"), 0, "%s", want[i].name);
		cr_expect_eq(num(sc, "errors"), 0, "%s", want[i].name);
		cr_expect_eq(num(sc, "mismatches"), 0, "%s", want[i].name);
		cr_expect_eq(num(sc, "lost"), 0, "%s", want[i].name);
		cr_expect_eq(num(sc, "connections"), want[i].conns, "%s", want[i].name);
		if (want[i].events)
			cr_expect_gt(num(sc, "events"), 0, "%s: no event arrived", want[i].name);
		/* Every command is handed back by a wake or found done. */
		cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(sc, "wake_syscalls_per_cmd")), "%s",
		    want[i].name);
	}
	cJSON_Delete(root);
	bench_run_free(&r);
}

static cJSON *
sim_json(const char *const *args, struct bench_run *r)
{
	cr_assert_eq(bench_run(args, r), 0);
	cr_assert_eq(r->status, 0, "exit %d, stderr:\n%s", r->status, r->err);
	cJSON *root = cJSON_Parse(r->out);
	cr_assert_not_null(root, "%s", r->out);
	return root;
}

Test(bench_run, simulator_mode_and_knobs, .timeout = 60)
{
	struct bench_run r;
	const char *fast[] = {
	    "--json", "--no-progress", "--duration", "0.1", "--only", "bare_serial", NULL};
	cJSON *root = sim_json(fast, &r);
	const cJSON *so = cJSON_GetObjectItem(root, "simulator");
	cr_expect_str_eq(cJSON_GetObjectItem(so, "mode")->valuestring, "fast");
	cr_expect_eq(num(so, "api_cost_us"), 0);
	cr_expect_eq(num(so, "event_poll_ms"), 0);
	cJSON_Delete(root);
	bench_run_free(&r);

	/* The FreeSWITCH-like mode, with one knob given on top of it. */
	const char *fs[] = {"--json", "--no-progress", "--duration", "0.1", "--sim-mode", "fs-like",
	    "--sim-api-cost", "7", "--only", "bare_serial", NULL};
	root = sim_json(fs, &r);
	so = cJSON_GetObjectItem(root, "simulator");
	cr_expect_str_eq(cJSON_GetObjectItem(so, "mode")->valuestring, "fs-like");
	cr_expect_eq(num(so, "api_cost_us"), 7);
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")), "%s", r.err);
	cJSON_Delete(root);
	bench_run_free(&r);
}
