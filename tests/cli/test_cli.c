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

/* ---- a mistyped URL is never sent (issue 13, item 11) ------------------- */

/* The tool run with a working default server ($FSESL_URL), so that a
 * mistyped URL taken for a command would reach it and be recorded. */
static void
run_with_default(struct run *r, fsesl_sim *s, uint16_t port, const char *const *args)
{
	char *u = cli_url("ClueCon", port), env[128];

	snprintf(env, sizeof(env), "FSESL_URL=%s", u);
	fsesl_sim_record_commands(s, true);
	run_cli_env(r, NULL, args, (const char *const[]){env, NULL});
	free(u);
}

static void
assert_nothing_sent(fsesl_sim *s, const struct run *r, const char *what)
{
	struct fsesl_sim_counters sc;
	char *sent;
	size_t n;

	fsesl_sim_counters(s, &sc);
	sent = sim_recorded_joined(s, "", &n);
	cr_assert_eq(r->status, 2, "%s: exit %d, stderr: %s", what, r->status, r->err);
	cr_assert_str_empty(r->out, "%s: stdout: %s", what, r->out);
	cr_assert_not_null(strstr(r->err, "URL"), "%s: stderr: %s", what, r->err);
	cr_assert_null(strstr(r->err, "Sekr3tPw"), "%s: password leaked: %s", what, r->err);
	cr_assert_eq(sc.accepted, 0, "%s: the tool connected", what);
	cr_assert_eq(n, 0, "%s: the server received: %s", what, sent);
	free(sent);
}

Test(cli, mistyped_url_is_refused_and_nothing_is_sent)
{
	static const char *const bad[] = {
	    "fs:/:Sekr3tPw@127.0.0.1", /* one slash */
	    "fs//:Sekr3tPw@127.0.0.1", /* no colon */
	    "fs:Sekr3tPw@127.0.0.1", /* no slashes */
	    "FS:/x", /* any case */
	    "http://:Sekr3tPw@127.0.0.1", /* another scheme */
	    "https:/host/path",
	    ":Sekr3tPw@127.0.0.1:8021", /* no scheme at all */
	    "1000@default:Sekr3tPw@127.0.0.1",
	};
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *good = cli_url("ClueCon", port);
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r;

		/* In the place of the first URL, and after a good one. */
		run_with_default(&r, s, port, (const char *const[]){bad[i], "status", NULL});
		assert_nothing_sent(s, &r, bad[i]);
		run_free(&r);
		run_with_default(&r, s, port, (const char *const[]){good, bad[i], "status", NULL});
		assert_nothing_sent(s, &r, bad[i]);
		run_free(&r);
	}
	free(good);
	fsesl_sim_stop(s);
}

Test(cli, url_after_the_command_is_refused_and_nothing_is_sent)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	struct run r;

	run_with_default(
	    &r, s, port, (const char *const[]){"status", "fs://:Sekr3tPw@127.0.0.1:8021", NULL});
	assert_nothing_sent(s, &r, "URL after the command");
	run_free(&r);
	run_with_default(&r, s, port, (const char *const[]){"api", "fs:/:Sekr3tPw@h", NULL});
	assert_nothing_sent(s, &r, "URL after the verb");
	run_free(&r);
	fsesl_sim_stop(s);
}

Test(cli, addresses_inside_a_command_are_not_urls)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port), *sent;
	size_t n;
	struct run r;

	/* Dial strings and web addresses are ordinary arguments. */
	fsesl_sim_record_commands(s, true);
	run_cli(&r, NULL,
	    (const char *const[]){u, "originate", "sofia/gw/1000@10.0.0.1:5080", "&echo", NULL});
	cr_assert_neq(r.status, 2, "stderr: %s", r.err);
	run_free(&r);
	run_cli(&r, NULL, (const char *const[]){u, "curl", "http://example.com/x", NULL});
	cr_assert_neq(r.status, 2, "stderr: %s", r.err);
	run_free(&r);
	sent = sim_recorded_joined(s, "api ", &n);
	cr_assert_str_eq(sent,
	    "api originate sofia/gw/1000@10.0.0.1:5080 &echo\napi curl http://example.com/x\n");
	free(sent);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, piped_line_that_looks_like_a_url_is_not_sent)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port), *sent;
	size_t n;
	struct run r;

	fsesl_sim_record_commands(s, true);
	run_cli(&r, "fs:/:Sekr3tPw@10.0.0.1 status\n", (const char *const[]){u, NULL});
	cr_assert_eq(r.status, 2, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "URL"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "Sekr3tPw"), "password leaked: %s", r.err);
	sent = sim_recorded_joined(s, "api ", &n);
	cr_assert_eq(n, 0, "sent: %s", sent);
	free(sent);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

/* ---- every failure is printed (item 12) and says what happened (13) ---- */

static const struct fsesl_sim_user restricted[] = {
    {"1000@default", "pw1000", "HEARTBEAT,BACKGROUND_JOB", "status", true},
};
#define RESTRICTED_URL_FMT "fs://1000@default:pw1000@127.0.0.1:%u"

Test(cli, api_refused_to_a_restricted_user_exits_1_and_says_so)
{
	uint16_t port;
	fsesl_sim *s = start_sim_users(&port, restricted, 1);
	char u[128];
	struct run r;

	snprintf(u, sizeof(u), RESTRICTED_URL_FMT, (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){u, "show", "calls", NULL});
	cr_assert_eq(r.status, 1, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "permission denied"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "pw1000"), "password leaked: %s", r.err);
	run_free(&r);
	/* The allowed command still works for that user. */
	run_cli(&r, NULL, (const char *const[]){u, "status", NULL});
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	run_free(&r);
	fsesl_sim_stop(s);
}

Test(cli, command_timeout_names_the_timeout)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = cli_url("ClueCon", port);
	struct child c;
	struct run r;

	cli_spawn(&c, &r, (const char *const[]){"-t", "300", u, NULL});
	cli_send(&c, "status\n");
	cli_pump(&c, &r, "UP ");
	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_DELAY, 2000, 0), 0);
	cli_send(&c, "status\n");
	cli_finish(&c, &r);
	cr_assert_eq(r.status, 4, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "timed out after 300 ms"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "Connection timed out"), "stderr: %s", r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, unresolvable_host_says_so)
{
	struct run r;

	/* .invalid never resolves (RFC 6761). */
	run_cli(
	    &r, NULL, (const char *const[]){"fs://:Sekr3tPw@no-such-host.invalid", "status", NULL});
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	cr_assert_not_null(
	    strstr(r.err, "cannot resolve host no-such-host.invalid"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "No route to host"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "Sekr3tPw"), "password leaked: %s", r.err);
	run_free(&r);
}
