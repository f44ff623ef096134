/*
 * interactive.c - the line editor (libedit), as fs_cli users expect it:
 *
 *  - Ctrl-C at the prompt drops the line being typed; during a command it
 *    stops the wait (the command is abandoned, see run.c) and the prompt
 *    comes back. SIGINT, SIGTERM and SIGHUP are blocked in every thread
 *    and read from a signalfd, so no handler runs in the middle of the
 *    editor or the engine, and libedit's own handlers (which would put the
 *    signal back and let it kill the tool) never see them;
 *  - the editor is driven through its callback interface from a poll()
 *    over the terminal and the signalfd, so a signal is noticed while a
 *    line is being typed, not only between lines;
 *  - while a command runs the terminal is in its normal (cooked) mode and
 *    what is typed is discarded when the prompt returns: a Ctrl-D typed
 *    then would otherwise reach the editor as a pending end-of-file;
 *  - the history is written on every way out (end of input, /exit,
 *    SIGTERM, SIGHUP or the terminal going away), and the terminal's
 *    modes are put back as they were found.
 *
 * Without a terminal (a script piped in) lines are read with getline: no
 * editor, prompt, history or signal handling.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"
#include "complete.h"

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static void
interactive_help(void)
{
	printf("Plain lines run as `api` on every server; TAB completes command names.\n"
	       "  api CMD, /api CMD      the same as CMD\n"
	       "  bgapi CMD, /bgapi CMD  run CMD in the background and print its result\n"
	       "  /help                  this text\n"
	       "  /exit, /quit, /bye, exit, quit  leave (so does end of input, Ctrl-D)\n"
	       "  Ctrl-C                 drop the line, or stop waiting for a command\n");
}

/* ---- tab completion ---------------------------------------------------
 * The API names are asked of the first server once, at the first TAB
 * (`show api`); a server that does not list them (or is down) gets the
 * built-in list. Runs on the main thread, inside the editor. */
static struct cli *compl_cli;
static struct cli_words compl_api;
static bool compl_loaded;
static char **compl_v;
static size_t compl_n, compl_i;

static void
compl_load(void)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_reply *r = NULL;

	compl_loaded = true;
	o.timeout_ms = 2000;
	if (compl_cli && compl_cli->n &&
	    fsesl_api(compl_cli->e, compl_cli->t[0].srv, "show api", &o, &r) == 0 &&
	    cli_words_from_show_api(fsesl_reply_body(r, NULL), &compl_api) > 0) {
		fsesl_reply_free(r);
		return;
	}
	fsesl_reply_free(r);
	(void)cli_words_builtin(&compl_api);
}

static void
compl_clear(void)
{
	size_t i;

	for (i = 0; i < compl_n; i++)
		free(compl_v[i]);
	free(compl_v);
	compl_v = NULL;
	compl_n = compl_i = 0;
}

static char *
compl_next(const char *text, int state)
{
	(void)text;
	if (state == 0)
		compl_i = 0;
	return compl_i < compl_n ? strdup(compl_v[compl_i++]) : NULL;
}

static char **
compl_attempt(const char *text, int start, int end)
{
	int n;

	(void)end;
	rl_attempted_completion_over = 1; /* never file names */
	if (!compl_loaded)
		compl_load();
	compl_clear();
	n = cli_complete(&compl_api, rl_line_buffer, (size_t)start, text, &compl_v);
	if (n <= 0)
		return NULL;
	compl_n = (size_t)n;
	return rl_completion_matches(text, compl_next);
}

/* ---- one line ------------------------------------------------------------ */

enum line_outcome { LINE_RAN, LINE_PRIVATE, LINE_LEAVE };

static bool
is_leave_word(const char *s)
{
	static const char *const words[] = {"/exit", "/quit", "/bye", "exit", "quit", "..."};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(s, words[i]) == 0)
			return true;
	return false;
}

/*
 * Runs one line. *rc gets its exit code; *sig the signal that stopped
 * the command (0 if none). LINE_PRIVATE: refused because it may hold a
 * password - it must not go into the history file either.
 */
static enum line_outcome
run_line(struct cli *c, char *line, int sigfd, int *rc, int *sig)
{
	const char *s = trim(line), *why;
	bool bg = false;

	*sig = 0;
	*rc = CLI_OK;
	if (*s == '\0')
		return LINE_RAN;
	if (is_leave_word(s))
		return LINE_LEAVE;
	if (strcasecmp(s, "/help") == 0) {
		interactive_help();
		return LINE_RAN;
	}
	if (*s == '/') {
		const char *v = cli_skip_verb(s + 1, &bg);

		if (v == s + 1) {
			fprintf(stderr, "%s: unknown command %.*s (try /help)\n", cli_prog,
			    (int)strcspn(s, " \t"), s);
			*rc = CLI_USAGE;
			return LINE_RAN;
		}
		s = v;
	} else {
		s = cli_skip_verb(s, &bg);
	}
	if (*s == '\0') {
		fprintf(stderr, "%s: missing command after %s (try /help)\n", cli_prog,
		    bg ? "bgapi" : "api");
		*rc = CLI_USAGE;
		return LINE_RAN;
	}
	why = cli_url_lookalike(s);
	if (why != NULL) {
		fprintf(stderr, "%s: not sent: %s; servers are given as URL arguments\n", cli_prog,
		    why);
		*rc = CLI_USAGE;
		return LINE_PRIVATE;
	}
	*rc = cli_run(c, bg, s, sigfd, sig);
	return LINE_RAN;
}

static int
piped(struct cli *c)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = CLI_OK, r, sig;

	while (getline(&line, &cap, stdin) >= 0) {
		if (run_line(c, line, -1, &r, &sig) == LINE_LEAVE)
			break;
		rc = r;
	}
	free(line);
	return rc;
}

/* ---- the terminal -------------------------------------------------------- */

static char *typed; /* the line the editor handed over, or NULL */
static bool typed_eof;

static void
on_line(char *line)
{
	/* Called from inside rl_callback_read_char(): only hand over. */
	if (line == NULL)
		typed_eof = true;
	else
		typed = line;
}

static void
history_path(char *buf, size_t len)
{
	const char *env = getenv("FSESL_HISTORY"), *home = getenv("HOME");

	buf[0] = '\0';
	if (env != NULL)
		snprintf(buf, len, "%s", env);
	else if (home != NULL)
		snprintf(buf, len, "%s/.fsesl_history", home);
}

/* Returns the signal read, 0 if none was pending. */
static int
read_signal(int sigfd)
{
	struct signalfd_siginfo si;

	if (read(sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

/* A fresh, empty line under a new prompt. */
static void
prompt_again(const char *prompt)
{
	/* Keys typed while a command ran (a Ctrl-D above all) are dropped. */
	(void)tcflush(STDIN_FILENO, TCIFLUSH);
	rl_callback_handler_install(prompt, on_line);
}

static int
terminal(struct cli *c, int sigfd)
{
	char prompt[CLI_LABEL_LEN + 16], hist[4096];
	struct termios saved;
	bool have_saved = tcgetattr(STDIN_FILENO, &saved) == 0;
	int rc = CLI_OK, r, sig = 0;
	bool leave = false;

	if (c->n == 1)
		snprintf(prompt, sizeof(prompt), "fsesl@%s> ", c->t[0].label);
	else
		snprintf(prompt, sizeof(prompt), "fsesl(%zu servers)> ", c->n);
	history_path(hist, sizeof(hist));
	using_history();
	stifle_history(1000);
	compl_cli = c;
	rl_attempted_completion_function = compl_attempt;
	if (hist[0] != '\0')
		read_history(hist);
	printf("Type /help for help, /exit to leave.\n");
	fflush(stdout);
	prompt_again(prompt);
	while (!leave) {
		struct pollfd pfd[2] = {
		    {.fd = STDIN_FILENO, .events = POLLIN},
		    {.fd = sigfd, .events = POLLIN},
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents != 0) {
			sig = read_signal(sigfd);
			if (sig == SIGINT) {
				/* Drop the line being typed. */
				rl_callback_handler_remove();
				fputs("^C\n", stdout);
				fflush(stdout);
				prompt_again(prompt);
				continue;
			}
			if (sig != 0)
				break; /* SIGTERM, SIGHUP: leave as at end of input */
		}
		if (pfd[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			break; /* the terminal went away */
		if (pfd[0].revents == 0)
			continue;
		rl_callback_read_char();
		if (typed_eof) {
			putchar('\n');
			break;
		}
		if (typed == NULL)
			continue;
		/* The editor has put the terminal back in its normal mode. */
		rl_callback_handler_remove();
		switch (run_line(c, typed, sigfd, &r, &sig)) {
		case LINE_LEAVE:
			leave = true;
			break;
		case LINE_RAN:
			if (*trim(typed) != '\0')
				add_history(trim(typed));
			rc = r;
			break;
		case LINE_PRIVATE:
			rc = r;
			break;
		}
		free(typed);
		typed = NULL;
		fflush(stdout);
		if (sig != 0 && sig != SIGINT)
			leave = true;
		if (!leave)
			prompt_again(prompt);
	}
	rl_callback_handler_remove();
	if (have_saved)
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	if (hist[0] != '\0' && write_history(hist) != 0)
		fprintf(stderr, "%s: cannot write the history file %s\n", cli_prog, hist);
	compl_clear();
	cli_words_free(&compl_api);
	return rc;
}

int
cli_interactive(struct cli *c, int sigfd)
{
	return sigfd < 0 ? piped(c) : terminal(c, sigfd);
}
