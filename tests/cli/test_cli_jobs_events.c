/*
 * test_cli_jobs_events.c - the `fsesl` features that rest on the engine's
 * event path: bgapi (waits for the BACKGROUND_JOB event) and --events (one
 * JSON line per event). A suite of its own so that its state is visible
 * apart from the command path's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "cli_run.h"

Test(cli, bgapi_prints_the_job_result)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, NULL, (const char *const[]){u, "bgapi", "status", NULL});
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	fsesl_sim_counters(s, &sc);
	cr_assert_eq(sc.bgapi, 1);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, events_print_one_json_object_per_line)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char *u = cli_url("ClueCon", port);
	char label[64];
	cJSON *o;
	struct run r;

	snprintf(label, sizeof(label), "127.0.0.1:%u", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){"--events", "HEARTBEAT", "--count", "2", u, NULL});
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(count_prefixed(r.out, "{"), 2, "got: %s", r.out);
	o = cJSON_Parse(r.out); /* the first line */
	cr_assert_not_null(o, "got: %s", r.out);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "Event-Name")->valuestring, "HEARTBEAT");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "_server")->valuestring, label);
	cr_assert_not_null(cJSON_GetObjectItem(o, "Idle-CPU"));
	cJSON_Delete(o);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, bgapi_err_result_exits_1)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct run r;

	run_cli(&r, NULL, (const char *const[]){u, "bgapi", "nosuchcmd", NULL});
	cr_assert_eq(r.status, 1, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(strncmp(r.out, "-ERR", 4), 0, "got: %s", r.out);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, events_end_with_exit_0_on_sigint)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char *u = cli_url("ClueCon", port);
	struct child c;
	struct run r;

	cli_spawn(&c, &r, (const char *const[]){"--events", "HEARTBEAT", u, NULL});
	/* Each event line is flushed as it is printed: once one is seen, the
	 * tool is in its loop and SIGINT must end it cleanly. */
	cli_pump(&c, &r, "\"Event-Name\":\"HEARTBEAT\"");
	cr_assert_eq(kill(c.pid, SIGINT), 0);
	cli_finish(&c, &r);
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}
