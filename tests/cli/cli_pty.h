/* cli_pty.h - the `fsesl` tool on a pseudo-terminal, as a person at a
 * keyboard drives it (see cli_pty.c). */
#ifndef FSESL_TESTS_CLI_PTY_H
#define FSESL_TESTS_CLI_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pty_child {
	pid_t pid;
	int fd; /* the master side; -1 once the tool has closed the terminal */
	char *buf; /* everything the tool wrote, NUL-terminated */
	size_t len;
	size_t mark; /* pty_expect searches from here */
};

/* Starts the tool (args NULL-terminated, without argv[0]) as the session
 * leader of a new terminal, with extra environment entries (may be NULL). */
void pty_spawn(struct pty_child *p, const char *const *args, const char *const *env);
/* Types text (control characters included: "\x03" is Ctrl-C). */
void pty_send(struct pty_child *p, const char *text);
/* Reads until text appears after the mark, then moves the mark past it.
 * Fails the test if the tool exits first or CLI_WAIT_MS passes. */
void pty_expect(struct pty_child *p, const char *text);
/* Whether text appears after the mark (no reading). */
bool pty_seen(const struct pty_child *p, const char *text);
/* Reads to the end of the output and reaps the tool: its exit code, or
 * 128 + signal. Fails the test if it is still running after CLI_WAIT_MS. */
int pty_wait_exit(struct pty_child *p);
void pty_free(struct pty_child *p);

#endif
