/* cli_run.h - helpers shared by the CLI suites (see cli_run.c). */
#ifndef FSESL_TESTS_CLI_RUN_H
#define FSESL_TESTS_CLI_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fsesl_sim.h"

struct run {
	int status; /* exit code, or 128 + signal */
	char *out;
	char *err;
};

/* A running tool, for tests that act between two of its steps: they wait
 * for its output (cli_pump until a string), never for time. */
struct child {
	pid_t pid;
	int in, out, err;
	size_t out_len, err_len;
};
void cli_spawn(struct child *c, struct run *r, const char *const *args);
/* The same with extra environment entries ("NAME=value", NULL-terminated;
 * env may be NULL). */
void cli_spawn_env(struct child *c, struct run *r, const char *const *args, const char *const *env);
void cli_send(struct child *c, const char *text);
void cli_close_input(struct child *c);
/* Reads stdout and stderr into r until stdout contains `until` (asserts if
 * the tool exits first), or to EOF when until is NULL. Bounded by
 * CLI_WAIT_MS: a tool that hangs fails the test instead of the suite. */
void cli_pump(struct child *c, struct run *r, const char *until);
/* Closes stdin, reads to EOF, waits: r->status is the exit code. A tool
 * still running after CLI_WAIT_MS is killed and the test fails. */
void cli_finish(struct child *c, struct run *r);

/* The bound on every wait for the tool (not a speed target: ten times
 * anything a test expects). */
#define CLI_WAIT_MS 30000

/* Runs the tool with args (NULL-terminated, without argv[0]); input, if
 * not NULL, is its whole standard input. Asserts on any spawn failure. */
void run_cli(struct run *r, const char *input, const char *const *args);
void run_cli_env(struct run *r, const char *input, const char *const *args, const char *const *env);
void run_free(struct run *r);
/* A simulator on 127.0.0.1, kernel-chosen port, password ClueCon. */
fsesl_sim *start_sim(uint16_t *port, unsigned int heartbeat_ms);
/* The same with userauth users (cfg.users). */
fsesl_sim *start_sim_users(uint16_t *port, const struct fsesl_sim_user *users, size_t n);
/* The command lines the simulator recorded (fsesl_sim_record_commands)
 * that start with prefix (alternatives separated by '|'), each followed by '\n', malloc'ed; *n their count. */
char *sim_recorded_joined(fsesl_sim *s, const char *prefix, size_t *n);
/* Waits (bounded by CLI_WAIT_MS) until the simulator has held a command
 * back with the DELAY fault at least `times` times. */
void wait_sim_delayed(fsesl_sim *s, uint64_t times);
/* "fs://:<password>@127.0.0.1:<port>", malloc'ed. */
char *cli_url(const char *password, uint16_t port);
/* Number of lines in s that start with prefix. */
size_t count_prefixed(const char *s, const char *prefix);

#endif
