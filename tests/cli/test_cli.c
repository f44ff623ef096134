/*
 * test_cli.c - the `fsesl` tool as a script sees it: exit codes, stdout,
 * stderr. Each test starts its own simulated servers in-process (port 0)
 * and runs the real binary (cli_run.c), so what is checked is exactly what
 * a shell script would see.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cli_run.h"

/* ---- no server needed ----------------------------------------------- */

Test(cli, help_exits_0_and_documents_exit_codes)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"--help", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "Usage:"));
	cr_assert_not_null(strstr(r.out, "Exit status"));
	cr_assert_not_null(strstr(r.out, "--events"));
	run_free(&r);
}

Test(cli, version_exits_0)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"--version", NULL});
	cr_assert_eq(r.status, 0);
	cr_assert_eq(strncmp(r.out, "fsesl ", 6), 0, "got: %s", r.out);
	run_free(&r);
}

Test(cli, unknown_option_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"--no-such-option", "status", NULL});
	cr_assert_eq(r.status, 2);
	cr_assert_str_empty(r.out);
	run_free(&r);
}

Test(cli, bad_timeout_value_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"-t", "soon", "status", NULL});
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, "--timeout"));
	run_free(&r);
}

Test(cli, bad_url_is_usage_error_without_password)
{
	static const char *const bad[] = {
	    "fs://:Sekr3tPw@127.0.0.1:99999", /* port out of range */
	    "fs://:Sekr3tPw@[::1", /* unterminated IPv6 */
	    "fs://:Sekr3tPw@", /* no host */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r;

		run_cli(&r, NULL, (const char *const[]){bad[i], "api", "status", NULL});
		cr_assert_eq(r.status, 2, "%s: exit %d, stderr: %s", bad[i], r.status, r.err);
		cr_assert_str_empty(r.out);
		cr_assert_not_null(strstr(r.err, "URL"), "stderr: %s", r.err);
		cr_assert_null(strstr(r.err, "Sekr3tPw"), "password leaked: %s", r.err);
		run_free(&r);
	}
}

Test(cli, api_without_command_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"fs://:ClueCon@127.0.0.1", "api", NULL});
	cr_assert_eq(r.status, 2);
	run_free(&r);
}

Test(cli, events_with_command_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL,
	    (const char *const[]){
	        "--events", "HEARTBEAT", "fs://:ClueCon@127.0.0.1", "status", NULL});
	cr_assert_eq(r.status, 2);
	run_free(&r);
}

/* ---- against simulated servers ----------------------------------------- */

Test(cli, one_shot_api_prints_the_body_unlabelled)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, NULL, (const char *const[]){u, "api", "status", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	cr_assert_eq(count_prefixed(r.out, "["), 0);
	cr_assert_str_empty(r.err);
	fsesl_sim_counters(s, &sc);
	cr_assert_geq(sc.api, 1);
	run_free(&r);

	/* "api" is the default verb. */
	run_cli(&r, NULL, (const char *const[]){u, "status", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, err_reply_exits_1)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct run r;

	run_cli(&r, NULL, (const char *const[]){u, "api", "nosuchcmd", NULL});
	cr_assert_eq(r.status, 1, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(strncmp(r.out, "-ERR", 4), 0, "got: %s", r.out);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, two_servers_are_labelled_in_url_order)
{
	uint16_t p1, p2;
	fsesl_sim *s1 = start_sim(&p1, 0), *s2 = start_sim(&p2, 0);
	char *u1 = cli_url("ClueCon", p1), *u2 = cli_url("ClueCon", p2);
	char l1[64], l2[64];
	const char *last1, *first2;
	struct run r;

	snprintf(l1, sizeof(l1), "[127.0.0.1:%u] ", (unsigned)p1);
	snprintf(l2, sizeof(l2), "[127.0.0.1:%u] ", (unsigned)p2);
	run_cli(&r, NULL, (const char *const[]){u1, u2, "api", "status", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_gt(count_prefixed(r.out, l1), 0, "got: %s", r.out);
	cr_assert_gt(count_prefixed(r.out, l2), 0, "got: %s", r.out);
	/* Every line is labelled, and the first server's block comes first. */
	cr_assert_eq(
	    count_prefixed(r.out, l1) + count_prefixed(r.out, l2), count_prefixed(r.out, ""));
	cr_assert_eq(strncmp(r.out, l1, strlen(l1)), 0);
	first2 = strstr(r.out, l2);
	for (last1 = r.out; strstr(last1 + 1, l1) != NULL; last1 = strstr(last1 + 1, l1))
		;
	cr_assert_lt(last1, first2);
	run_free(&r);
	free(u1);
	free(u2);
	fsesl_sim_stop(s1);
	fsesl_sim_stop(s2);
}

Test(cli, wrong_password_exits_3_without_password)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("Wr0ngPassw0rd", port);
	char label[64];
	struct run r;

	snprintf(label, sizeof(label), "[127.0.0.1:%u]", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){"-t", "3000", u, "api", "status", NULL});
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	cr_assert_str_empty(r.out);
	cr_assert_not_null(strstr(r.err, label), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "Wr0ngPassw0rd"), "password leaked: %s", r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, refused_connection_exits_3)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct run r;

	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_REFUSE, 0, 0), 0);
	run_cli(&r, NULL, (const char *const[]){"-t", "3000", u, "status", NULL});
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, one_server_down_still_prints_the_other)
{
	uint16_t p1, p2;
	fsesl_sim *s1 = start_sim(&p1, 0), *s2 = start_sim(&p2, 0);
	char *u1 = cli_url("ClueCon", p1), *u2 = cli_url("nope", p2);
	char l1[64];
	struct run r;

	snprintf(l1, sizeof(l1), "[127.0.0.1:%u] UP ", (unsigned)p1);
	run_cli(&r, NULL, (const char *const[]){"-t", "3000", u1, u2, "status", NULL});
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(count_prefixed(r.out, l1), 1, "got: %s", r.out);
	run_free(&r);
	free(u1);
	free(u2);
	fsesl_sim_stop(s1);
	fsesl_sim_stop(s2);
}

Test(cli, piped_lines_run_as_api_until_exit)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, "status\n\n/help\nnosuchcmd\n/exit\nstatus\n", (const char *const[]){u, NULL});
	/* The last command run was -ERR; the line after /exit never ran. */
	cr_assert_eq(r.status, 1, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	cr_assert_not_null(strstr(r.out, "/bgapi"));
	cr_assert_not_null(strstr(r.out, "-ERR"));
	fsesl_sim_counters(s, &sc);
	cr_assert_eq(sc.api, 2);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, unanswered_command_exits_4)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct child c;
	struct run r;

	/* Piped mode: the first command proves the connection is up; only
	 * then is the next reply dropped (a one-shot fault acts on the
	 * connections open at the time), so this is a timeout, not a
	 * connection failure. The exit code is the last command's. */
	cli_spawn(&c, &r, (const char *const[]){"-t", "300", u, NULL});
	cli_send(&c, "status\n");
	cli_pump(&c, &r, "UP ");
	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_DROP_REPLY, 1, 0), 0);
	cli_send(&c, "status\n");
	cli_finish(&c, &r);
	cr_assert_eq(r.status, 4, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "imed out"), "stderr: %s", r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, unknown_setting_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){"--set", "no_such_setting=1", "status", NULL});
	cr_assert_eq(r.status, 2, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "no_such_setting"), "stderr: %s", r.err);
	run_free(&r);
}

Test(cli, label_option_labels_a_single_server)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	char label[64];
	struct run r;

	snprintf(label, sizeof(label), "[127.0.0.1:%u] ", (unsigned)port);
	run_cli(&r, NULL,
	    (const char *const[]){"--label", "--set", "max_in_flight=8", u, "status", NULL});
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	cr_assert_gt(count_prefixed(r.out, label), 0, "got: %s", r.out);
	cr_assert_eq(count_prefixed(r.out, label), count_prefixed(r.out, ""));
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, command_with_a_line_break_is_refused_before_sending)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, NULL, (const char *const[]){u, "api", "status\nbgapi hupall", NULL});
	cr_assert_eq(r.status, 2, "exit %d stderr: %s", r.status, r.err);
	cr_assert_str_empty(r.out);
	fsesl_sim_counters(s, &sc);
	cr_assert_eq(sc.api, 0);
	cr_assert_eq(sc.bgapi, 0);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}
