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

/* ---- failures end the tool with a message and a code (issue 13, 12) ---- */

static const struct fsesl_sim_user restricted[] = {
    {"1000@default", "pw1000", "HEARTBEAT,BACKGROUND_JOB", "status", true},
};

Test(cli, bgapi_refused_to_a_restricted_user_exits_1_and_says_so)
{
	uint16_t port;
	fsesl_sim *s = start_sim_users(&port, restricted, 1);
	char u[128];
	struct run r;

	snprintf(u, sizeof(u), "fs://1000@default:pw1000@127.0.0.1:%u", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){u, "bgapi", "show", "calls", NULL});
	cr_assert_eq(r.status, 1, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "refused"), "stderr: %s", r.err);
	run_free(&r);
	fsesl_sim_stop(s);
}

Test(cli, events_refused_subscription_exits_1)
{
	uint16_t port;
	fsesl_sim *s = start_sim_users(&port, restricted, 1);
	char u[128];
	struct run r;

	snprintf(u, sizeof(u), "fs://1000@default:pw1000@127.0.0.1:%u", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){"--events", "CHANNEL_CREATE", u, NULL});
	cr_assert_eq(r.status, 1, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "CHANNEL_CREATE"), "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "refused"), "stderr: %s", r.err);
	cr_assert_str_empty(r.out);
	run_free(&r);
	fsesl_sim_stop(s);
}

Test(cli, events_with_a_wrong_password_exit_3)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char *u = cli_url("Wr0ngPassw0rd", port);
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"--events", "HEARTBEAT", u, NULL});
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "authentication"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "Wr0ngPassw0rd"), "password leaked: %s", r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, events_on_a_refused_port_exit_3)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char *u = cli_url("ClueCon", port);
	struct run r;

	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_REFUSE, 0, 0), 0);
	run_cli(&r, NULL, (const char *const[]){"--events", "HEARTBEAT", u, NULL});
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "refused"), "stderr: %s", r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

/* ---- the URL's own event list (issue 13, item 8) ------------------------ */

Test(cli, url_events_without_a_command_are_streamed)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char u[128];
	cJSON *o;
	struct run r;

	snprintf(u, sizeof(u), "fs://:ClueCon@127.0.0.1:%u?HEARTBEAT", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){"--count", "2", u, NULL});
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(count_prefixed(r.out, "{"), 2, "got: %s", r.out);
	o = cJSON_Parse(r.out);
	cr_assert_not_null(o, "got: %s", r.out);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "Event-Name")->valuestring, "HEARTBEAT");
	cJSON_Delete(o);
	run_free(&r);
	fsesl_sim_stop(s);
}

Test(cli, url_events_add_to_the_events_option)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char u[128], *sent;
	size_t n;
	struct run r;

	snprintf(u, sizeof(u), "fs://:ClueCon@127.0.0.1:%u?HEARTBEAT", (unsigned)port);
	fsesl_sim_record_commands(s, true);
	run_cli(
	    &r, NULL, (const char *const[]){"--events", "CHANNEL_CREATE", "--count", "1", u, NULL});
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	sent = sim_recorded_joined(s, "event ", &n);
	cr_assert_not_null(strstr(sent, "HEARTBEAT"), "subscriptions: %s", sent);
	cr_assert_not_null(strstr(sent, "CHANNEL_CREATE"), "subscriptions: %s", sent);
	free(sent);
	run_free(&r);
	fsesl_sim_stop(s);
}

Test(cli, url_events_with_a_command_are_a_usage_error)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	struct fsesl_sim_counters sc;
	char u[128];
	struct run r;

	snprintf(
	    u, sizeof(u), "fs://:Sekr3tPw@127.0.0.1:%u?HEARTBEAT,CHANNEL_CREATE", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){u, "status", NULL});
	cr_assert_eq(r.status, 2, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "event"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "Sekr3tPw"), "password leaked: %s", r.err);
	cr_assert_str_empty(r.out);
	fsesl_sim_counters(s, &sc);
	cr_assert_eq(sc.accepted, 0);
	run_free(&r);
	fsesl_sim_stop(s);
}
