/*
 * test_cli.c - the `fsesl` tool as a script sees it: exit codes, stdout,
 * stderr. Each test starts its own simulated servers in-process (port 0)
 * and runs the real binary (FSESL_CLI_PATH) with posix_spawn, reading both
 * pipes to EOF before waitpid, so no output can be lost and no sleep is
 * needed: the tool's exit is the synchronisation point.
 */
#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "fsesl_sim.h"

extern char **environ;

struct run {
	int status; /* exit code, or 128 + signal */
	char *out;
	char *err;
};

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	cr_assert_not_null(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Runs the tool with args (NULL-terminated, without argv[0]). */
static void run_cli(struct run *r, const char *input, const char *const *args)
{
	posix_spawn_file_actions_t fa;
	int in[2], out[2], err[2];
	char *argv[32];
	size_t n = 0, olen = 0, elen = 0;
	struct pollfd pfd[2];
	int open_fds = 2, ws;
	pid_t pid;

	argv[n++] = (char *)FSESL_CLI_PATH;
	for (; *args != NULL; args++) {
		cr_assert_lt(n, 31);
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	posix_spawn_file_actions_addclose(&fa, err[0]);
	/* FSESL_URL from the caller's environment must not change a test. */
	unsetenv("FSESL_URL");
	cr_assert_eq(posix_spawn(&pid, FSESL_CLI_PATH, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	/* Inputs are a few bytes: they fit in the pipe, no interleaving needed. */
	if (input != NULL)
		cr_assert_eq(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
	close(in[1]);

	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	pfd[0] = (struct pollfd){ .fd = out[0], .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = err[0], .events = POLLIN };
	while (open_fds > 0) {
		char buf[4096];
		int i;

		if (poll(pfd, 2, -1) < 0) {
			cr_assert_eq(errno, EINTR);
			continue;
		}
		for (i = 0; i < 2; i++) {
			ssize_t k;

			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			k = read(pfd[i].fd, buf, sizeof(buf));
			if (k > 0) {
				append(i == 0 ? &r->out : &r->err, i == 0 ? &olen : &elen, buf,
				    (size_t)k);
			} else if (k == 0 || errno != EINTR) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
			}
		}
	}
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static fsesl_sim *start_sim(uint16_t *port, unsigned int heartbeat_ms)
{
	struct fsesl_sim_config cfg;
	fsesl_sim *s = NULL;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = heartbeat_ms;
	cr_assert_eq(fsesl_sim_start(&cfg, &s, port), 0);
	cr_assert_not_null(s);
	return s;
}

static char *url(const char *password, uint16_t port)
{
	char *u = NULL;

	cr_assert_gt(asprintf(&u, "fs://:%s@127.0.0.1:%u", password, (unsigned)port), 0);
	return u;
}

/* Number of lines in s that start with prefix. */
static size_t count_prefixed(const char *s, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix);

	while (*s != '\0') {
		const char *nl = strchr(s, '\n');

		if (strncmp(s, prefix, plen) == 0)
			n++;
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	return n;
}

/* ---- no server needed ----------------------------------------------- */

Test(cli, help_exits_0_and_documents_exit_codes)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ "--help", NULL });
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "Usage:"));
	cr_assert_not_null(strstr(r.out, "Exit status"));
	cr_assert_not_null(strstr(r.out, "--events"));
	run_free(&r);
}

Test(cli, version_exits_0)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ "--version", NULL });
	cr_assert_eq(r.status, 0);
	cr_assert_eq(strncmp(r.out, "fsesl ", 6), 0, "got: %s", r.out);
	run_free(&r);
}

Test(cli, unknown_option_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ "--no-such-option", "status", NULL });
	cr_assert_eq(r.status, 2);
	cr_assert_str_empty(r.out);
	run_free(&r);
}

Test(cli, bad_timeout_value_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ "-t", "soon", "status", NULL });
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, "--timeout"));
	run_free(&r);
}

Test(cli, bad_url_is_usage_error_without_password)
{
	static const char *const bad[] = {
		"fs://:Sekr3tPw@127.0.0.1:99999",  /* port out of range */
		"fs://:Sekr3tPw@[::1",             /* unterminated IPv6 */
		"fs://:Sekr3tPw@",                 /* no host */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r;

		run_cli(&r, NULL, (const char *const[]){ bad[i], "api", "status", NULL });
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

	run_cli(&r, NULL, (const char *const[]){ "fs://:ClueCon@127.0.0.1", "api", NULL });
	cr_assert_eq(r.status, 2);
	run_free(&r);
}

Test(cli, events_with_command_is_usage_error)
{
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ "--events", "HEARTBEAT",
	    "fs://:ClueCon@127.0.0.1", "status", NULL });
	cr_assert_eq(r.status, 2);
	run_free(&r);
}

/* ---- against simulated servers ----------------------------------------- */

Test(cli, one_shot_api_prints_the_body_unlabelled)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ u, "api", "status", NULL });
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	cr_assert_eq(count_prefixed(r.out, "["), 0);
	cr_assert_str_empty(r.err);
	fsesl_sim_counters(s, &sc);
	cr_assert_geq(sc.api, 1);
	run_free(&r);

	/* "api" is the default verb. */
	run_cli(&r, NULL, (const char *const[]){ u, "status", NULL });
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
	char *u = url("ClueCon", port);
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ u, "api", "nosuchcmd", NULL });
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
	char *u1 = url("ClueCon", p1), *u2 = url("ClueCon", p2);
	char l1[64], l2[64];
	const char *last1, *first2;
	struct run r;

	snprintf(l1, sizeof(l1), "[127.0.0.1:%u] ", (unsigned)p1);
	snprintf(l2, sizeof(l2), "[127.0.0.1:%u] ", (unsigned)p2);
	run_cli(&r, NULL, (const char *const[]){ u1, u2, "api", "status", NULL });
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_gt(count_prefixed(r.out, l1), 0, "got: %s", r.out);
	cr_assert_gt(count_prefixed(r.out, l2), 0, "got: %s", r.out);
	/* Every line is labelled, and the first server's block comes first. */
	cr_assert_eq(count_prefixed(r.out, l1) + count_prefixed(r.out, l2),
	    count_prefixed(r.out, ""));
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
	char *u = url("Wr0ngPassw0rd", port);
	char label[64];
	struct run r;

	snprintf(label, sizeof(label), "[127.0.0.1:%u]", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){ "-t", "3000", u, "api", "status", NULL });
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
	char *u = url("ClueCon", port);
	struct run r;

	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_REFUSE, 0, 0), 0);
	run_cli(&r, NULL, (const char *const[]){ "-t", "3000", u, "status", NULL });
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, one_server_down_still_prints_the_other)
{
	uint16_t p1, p2;
	fsesl_sim *s1 = start_sim(&p1, 0), *s2 = start_sim(&p2, 0);
	char *u1 = url("ClueCon", p1), *u2 = url("nope", p2);
	char l1[64];
	struct run r;

	snprintf(l1, sizeof(l1), "[127.0.0.1:%u] UP ", (unsigned)p1);
	run_cli(&r, NULL, (const char *const[]){ "-t", "3000", u1, u2, "status", NULL });
	cr_assert_eq(r.status, 3, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(count_prefixed(r.out, l1), 1, "got: %s", r.out);
	run_free(&r);
	free(u1);
	free(u2);
	fsesl_sim_stop(s1);
	fsesl_sim_stop(s2);
}

Test(cli, bgapi_prints_the_job_result)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, NULL, (const char *const[]){ u, "bgapi", "status", NULL });
	cr_assert_eq(r.status, 0, "exit %d stderr: %s", r.status, r.err);
	cr_assert_eq(strncmp(r.out, "UP ", 3), 0, "got: %s", r.out);
	fsesl_sim_counters(s, &sc);
	cr_assert_eq(sc.bgapi, 1);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}

Test(cli, piped_lines_run_as_api_until_exit)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = url("ClueCon", port);
	struct fsesl_sim_counters sc;
	struct run r;

	run_cli(&r, "status\n\n/help\nnosuchcmd\n/exit\nstatus\n",
	    (const char *const[]){ u, NULL });
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

Test(cli, events_print_one_json_object_per_line)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 20);
	char *u = url("ClueCon", port);
	char label[64];
	cJSON *o;
	struct run r;

	snprintf(label, sizeof(label), "127.0.0.1:%u", (unsigned)port);
	run_cli(&r, NULL, (const char *const[]){ "--events", "HEARTBEAT", "--count", "2", u,
	    NULL });
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

Test(cli, unanswered_command_exits_4)
{
	uint16_t port;
	fsesl_sim *s = start_sim(&port, 0);
	char *u = url("ClueCon", port);
	struct run r;

	/* Reply 1 is auth's +OK; reply 2, the api's, never comes. */
	cr_assert_eq(fsesl_sim_fault(s, 0, FSESL_SIM_FAULT_DROP_REPLY, 2, 0), 0);
	run_cli(&r, NULL, (const char *const[]){ "-t", "300", u, "api", "status", NULL });
	cr_assert_eq(r.status, 4, "exit %d stderr: %s", r.status, r.err);
	cr_assert_str_empty(r.out);
	run_free(&r);
	free(u);
	fsesl_sim_stop(s);
}
