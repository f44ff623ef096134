/*
 * test_cli_interactive.c - the `fsesl` line editor as a person uses it, on
 * a pseudo-terminal (cli_pty.c): Ctrl-C cancels the line at the prompt or
 * the running command, Ctrl-D typed during a command leaves the editor
 * working, the history file is written on every way out, and `api X` at
 * the prompt is the same as `X`. What the server received is checked with
 * the simulator's command recording.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cli_pty.h"
#include "cli_run.h"

struct session {
	fsesl_sim *sim;
	uint16_t port;
	char *url;
	char dir[64];
	char hist[128];
	char hist_env[160];
	char prompt[64];
	struct pty_child p;
};

/* A simulator, a private history file, and the tool at its first prompt
 * with a working connection (one command answered). */
static void
session_start(struct session *s, const char *const *opts)
{
	const char *args[8];
	size_t n = 0;

	s->sim = start_sim(&s->port, 0);
	fsesl_sim_record_commands(s->sim, true);
	s->url = cli_url("ClueCon", s->port);
	snprintf(s->dir, sizeof(s->dir), "/tmp/fsesl-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(s->dir));
	snprintf(s->hist, sizeof(s->hist), "%s/history", s->dir);
	snprintf(s->hist_env, sizeof(s->hist_env), "FSESL_HISTORY=%s", s->hist);
	snprintf(s->prompt, sizeof(s->prompt), "fsesl@127.0.0.1:%u> ", (unsigned)s->port);
	for (; opts != NULL && *opts != NULL; opts++)
		args[n++] = *opts;
	args[n++] = s->url;
	args[n] = NULL;
	pty_spawn(&s->p, args, (const char *const[]){s->hist_env, NULL});
	pty_expect(&s->p, s->prompt);
	pty_send(&s->p, "version\r");
	pty_expect(&s->p, "FreeSWITCH Version");
	pty_expect(&s->p, s->prompt);
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	cr_assert_not_null(buf);
	if (f == NULL)
		return buf; /* never written: "" */
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
session_end(struct session *s)
{
	unlink(s->hist);
	rmdir(s->dir);
	pty_free(&s->p);
	free(s->url);
	fsesl_sim_stop(s->sim);
}

Test(cli_interactive, ctrl_c_at_the_prompt_drops_the_line_and_keeps_the_tool)
{
	struct session s;
	char *sent, *hist;
	size_t n;

	session_start(&s, NULL);
	pty_send(&s.p, "hupall partial");
	pty_expect(&s.p, "hupall partial");
	pty_send(&s.p, "\x03");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "status\r");
	pty_expect(&s.p, "UP ");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "/exit\r");
	cr_assert_eq(pty_wait_exit(&s.p), 0, "terminal: %s", s.p.buf);

	/* The dropped words were neither sent nor prefixed to the next line. */
	sent = sim_recorded_joined(s.sim, "api ", &n);
	cr_assert_str_eq(sent, "api version\napi status\n");
	hist = read_file(s.hist);
	cr_assert_not_null(strstr(hist, "status"), "history: %s", hist);
	cr_assert_null(strstr(hist, "partial"), "history: %s", hist);
	free(sent);
	free(hist);
	session_end(&s);
}

Test(cli_interactive, ctrl_c_cancels_a_running_command_and_its_late_reply_is_dropped)
{
	struct session s;
	char *sent;
	size_t n, cancel_at;

	session_start(&s, (const char *const[]){"-t", "20000", NULL});
	/* Every command is now held 1.5 s by the server. */
	cr_assert_eq(fsesl_sim_fault(s.sim, 0, FSESL_SIM_FAULT_DELAY, 1500, 0), 0);
	pty_send(&s.p, "status\r");
	wait_sim_delayed(s.sim, 1);
	pty_send(&s.p, "\x03");
	pty_expect(&s.p, "cancelled");
	cancel_at = s.p.mark;
	pty_expect(&s.p, s.prompt);
	/* The next command is queued behind the cancelled one on the same
	 * connection: it must get its own reply, not the late status. */
	pty_send(&s.p, "api version\r");
	pty_expect(&s.p, "FreeSWITCH Version");
	pty_expect(&s.p, s.prompt);
	cr_assert_null(strstr(s.p.buf + cancel_at, "UP "), "the late reply was printed: %s",
	    s.p.buf + cancel_at);
	pty_send(&s.p, "/exit\r");
	cr_assert_eq(pty_wait_exit(&s.p), 0, "terminal: %s", s.p.buf);
	sent = sim_recorded_joined(s.sim, "api ", &n);
	cr_assert_str_eq(sent, "api version\napi status\napi version\n");
	free(sent);
	session_end(&s);
}

Test(cli_interactive, ctrl_d_during_a_command_leaves_the_editor_working)
{
	struct session s;
	char *sent;
	size_t n;

	session_start(&s, NULL);
	cr_assert_eq(fsesl_sim_fault(s.sim, 0, FSESL_SIM_FAULT_DELAY, 800, 0), 0);
	pty_send(&s.p, "status\r");
	wait_sim_delayed(s.sim, 1);
	pty_send(&s.p, "\x04");
	pty_expect(&s.p, "UP ");
	pty_expect(&s.p, s.prompt);
	fsesl_sim_clear_faults(s.sim);
	pty_send(&s.p, "version\r");
	pty_expect(&s.p, "FreeSWITCH Version");
	pty_expect(&s.p, s.prompt);
	/* Ctrl-C still reaches the tool as a signal (the terminal's modes
	 * were restored), and the editor still edits. */
	pty_send(&s.p, "abc");
	pty_expect(&s.p, "abc");
	pty_send(&s.p, "\x03");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "/exit\r");
	cr_assert_eq(pty_wait_exit(&s.p), 0, "terminal: %s", s.p.buf);
	sent = sim_recorded_joined(s.sim, "api ", &n);
	cr_assert_str_eq(sent, "api version\napi status\napi version\n");
	free(sent);
	session_end(&s);
}

/* ---- history on every way out ---------------------------------------- */

enum way_out { BY_EOF, BY_EXIT, BY_SIGTERM, BY_SIGHUP, BY_HANGUP };

static void
history_survives(enum way_out how)
{
	struct session s;
	char *hist;
	int rc;

	session_start(&s, NULL);
	pty_send(&s.p, "status\r");
	pty_expect(&s.p, "UP ");
	pty_expect(&s.p, s.prompt);
	switch (how) {
	case BY_EOF:
		pty_send(&s.p, "\x04");
		break;
	case BY_EXIT:
		pty_send(&s.p, "/exit\r");
		break;
	case BY_SIGTERM:
		cr_assert_eq(kill(s.p.pid, SIGTERM), 0);
		break;
	case BY_SIGHUP:
		cr_assert_eq(kill(s.p.pid, SIGHUP), 0);
		break;
	case BY_HANGUP:
		/* The terminal goes away (ssh dropped, window closed). */
		close(s.p.fd);
		s.p.fd = -1;
		break;
	}
	rc = pty_wait_exit(&s.p);
	cr_assert_eq(rc, 0, "exit %d; terminal: %s", rc, s.p.buf);
	hist = read_file(s.hist);
	cr_assert_not_null(strstr(hist, "\nversion\n"), "history file: %s", hist);
	cr_assert_not_null(strstr(hist, "\nstatus\n"), "history file: %s", hist);
	free(hist);
	session_end(&s);
}

Test(cli_interactive, history_is_written_at_end_of_input)
{
	history_survives(BY_EOF);
}

Test(cli_interactive, history_is_written_at_exit)
{
	history_survives(BY_EXIT);
}

Test(cli_interactive, history_is_written_on_sigterm)
{
	history_survives(BY_SIGTERM);
}

Test(cli_interactive, history_is_written_on_sighup)
{
	history_survives(BY_SIGHUP);
}

Test(cli_interactive, history_is_written_when_the_terminal_goes_away)
{
	history_survives(BY_HANGUP);
}

/* ---- the verbs ---------------------------------------------------------- */

Test(cli_interactive, api_and_bgapi_words_at_the_prompt_are_verbs)
{
	struct session s;
	char *sent;
	size_t n;

	session_start(&s, NULL);
	pty_send(&s.p, "api version\r");
	pty_expect(&s.p, "FreeSWITCH Version");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "/api version\r");
	pty_expect(&s.p, "FreeSWITCH Version");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "API version\r");
	pty_expect(&s.p, "FreeSWITCH Version");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "bgapi version\r");
	pty_expect(&s.p, "FreeSWITCH Version");
	pty_expect(&s.p, s.prompt);
	pty_send(&s.p, "exit\r");
	cr_assert_eq(pty_wait_exit(&s.p), 0, "terminal: %s", s.p.buf);
	sent = sim_recorded_joined(s.sim, "api |bgapi |API ", &n);
	cr_assert_str_eq(
	    sent, "api version\napi version\napi version\napi version\nbgapi version\n");
	free(sent);
	session_end(&s);
}
