/*
 * cli.h - what the parts of the `fsesl` tool share: the exit codes, the
 * servers it talks to, running one command on all of them (run.c), the
 * meaning of a command line (words.c), the interactive mode
 * (interactive.c) and the event stream (events.c). Internal to the tool.
 */
#ifndef FSESL_CLI_H
#define FSESL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "fsesl.h"

/* The contract scripts rely on (usage() and docs/fsesl.1). */
enum cli_exit {
	CLI_OK = 0, /* every server answered +OK / non-error output */
	CLI_CMDERR = 1, /* a server answered -ERR or -USAGE, or refused */
	CLI_USAGE = 2, /* bad arguments or URL: nothing was sent */
	CLI_CONN = 3, /* could not connect, log in, or the connection dropped */
	CLI_TIMEOUT = 4, /* no reply within the timeout */
	CLI_FAIL = 5, /* anything else: protocol error, no memory, unsupported */
	CLI_CANCELLED = 130, /* interactive: the command was cancelled (Ctrl-C) */
};

#define CLI_LABEL_LEN 300

struct target {
	char label[CLI_LABEL_LEN]; /* "host:port" or "[v6]:port": no password */
	char host[256];
	/* The URL's own ?EV1,EV2 list (malloc'ed): names, never secret. */
	char (*events)[sizeof(((struct fsesl_url *)0)->events[0])];
	size_t n_events;
	fsesl_server_t srv;
};

struct cli {
	fsesl_engine *e;
	struct target *t;
	size_t n;
	bool labels;
	int cmd_timeout_ms; /* esl_cmd_timeout, for messages */
	int job_timeout_ms;
};

extern const char *const cli_prog;

/* ---- run.c ---- */

/* Runs cmd (api, or bgapi waiting for the job's result) on every server
 * at once and prints the outputs in server order, failures on stderr.
 * sigfd >= 0: a signalfd (SIGINT, SIGTERM, SIGHUP) that interrupts the
 * wait; *sig then gets the signal and the command is abandoned (its
 * completion, whenever it comes, is discarded). Returns the worst exit
 * code, or CLI_CANCELLED. */
int cli_run(struct cli *c, bool bg, const char *cmd, int sigfd, int *sig);
int cli_exit_code(int err);
/* A connect-phase failure seen through a later timeout: see run.c. */
int cli_refine_error(struct cli *c, const struct target *t, int err);
/* One sentence saying what went wrong on t (never a password). */
const char *cli_describe(
    const struct cli *c, const struct target *t, int err, bool bg, char *buf, size_t len);

/* ---- words.c ---- */

/* If cmd starts with the word api or bgapi (any case), skips it and the
 * blanks after it and sets *bg. Returns the rest. */
const char *cli_skip_verb(const char *cmd, bool *bg);
/* Why a command (its verb already skipped) looks like a server URL that
 * did not parse, or NULL: such a command is never sent (see words.c). */
const char *cli_url_lookalike(const char *cmd);

/* ---- interactive.c, events.c ---- */

/* sigfd: as for cli_run, or -1 when standard input is not a terminal. */
int cli_interactive(struct cli *c, int sigfd);
/* Streams each server's events (extra: --events, comma-separated, may be
 * NULL; plus the server's URL list) until a signal on sigfd or count. */
int cli_events(struct cli *c, char *extra, long count, int sigfd);

#endif
