/*
 * cli_pty.c - runs the real `fsesl` binary on a pseudo-terminal (forkpty),
 * so that its line editor, terminal modes and Ctrl-C / Ctrl-D handling are
 * the ones a person gets: keys written to the master side go through the
 * kernel's line discipline, which turns Ctrl-C into SIGINT for the tool's
 * process group. Every wait is for expected output, bounded by
 * CLI_WAIT_MS; none is a sleep.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cli_pty.h"
#include "cli_run.h"

extern char **environ;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
pty_spawn(struct pty_child *p, const char *const *args, const char *const *extra)
{
	struct winsize ws = {.ws_row = 24, .ws_col = 200};
	char *argv[32], **env;
	size_t n = 0, k = 0, i, ne = 0;

	argv[n++] = (char *)FSESL_CLI_PATH;
	for (; *args != NULL; args++) {
		cr_assert_lt(n, 31);
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	/* Built before the fork: the child only calls execve. */
	while (environ[ne] != NULL)
		ne++;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		;
	env = calloc(ne + i + 2, sizeof(*env));
	cr_assert_not_null(env);
	for (i = 0; i < ne; i++)
		if (strncmp(environ[i], "FSESL_URL=", 10) != 0 &&
		    strncmp(environ[i], "TERM=", 5) != 0)
			env[k++] = environ[i];
	/* A plain terminal: no escape sequences between the words searched for. */
	env[k++] = (char *)"TERM=dumb";
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		env[k++] = (char *)extra[i];
	env[k] = NULL;

	memset(p, 0, sizeof(*p));
	p->buf = calloc(1, 1);
	cr_assert_not_null(p->buf);
	p->pid = forkpty(&p->fd, NULL, NULL, &ws);
	cr_assert_geq(p->pid, 0, "forkpty: %s", strerror(errno));
	if (p->pid == 0) {
		execve(FSESL_CLI_PATH, argv, env);
		_exit(127);
	}
	free(env);
}

void
pty_send(struct pty_child *p, const char *text)
{
	size_t len = strlen(text), off = 0;

	cr_assert_geq(p->fd, 0, "the tool has closed its terminal");
	while (off < len) {
		ssize_t k = write(p->fd, text + off, len - off);

		if (k < 0 && errno == EINTR)
			continue;
		cr_assert_gt(k, 0, "write to the terminal: %s", strerror(errno));
		off += (size_t)k;
	}
}

/* Reads what is there (waiting at most ms); false once the tool closed
 * the terminal. */
static bool
pty_read(struct pty_child *p, int ms)
{
	struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
	char chunk[4096];
	ssize_t k;

	if (p->fd < 0)
		return false;
	if (poll(&pfd, 1, ms) <= 0)
		return true;
	k = read(p->fd, chunk, sizeof(chunk));
	if (k < 0 && errno == EINTR)
		return true;
	if (k <= 0) {
		/* EIO: every slave descriptor is closed (the tool exited). */
		close(p->fd);
		p->fd = -1;
		return false;
	}
	p->buf = realloc(p->buf, p->len + (size_t)k + 1);
	cr_assert_not_null(p->buf);
	memcpy(p->buf + p->len, chunk, (size_t)k);
	p->len += (size_t)k;
	p->buf[p->len] = '\0';
	return true;
}

bool
pty_seen(const struct pty_child *p, const char *text)
{
	return strstr(p->buf + p->mark, text) != NULL;
}

void
pty_expect(struct pty_child *p, const char *text)
{
	int64_t deadline = now_ms() + CLI_WAIT_MS;
	const char *at;

	for (;;) {
		int64_t left = deadline - now_ms();

		at = strstr(p->buf + p->mark, text);
		if (at != NULL)
			break;
		cr_assert_gt(left, 0, "no \"%s\" after %d ms; the terminal shows: %s", text,
		    CLI_WAIT_MS, p->buf + p->mark);
		cr_assert(pty_read(p, (int)left), "the tool ended before printing \"%s\": %s", text,
		    p->buf + p->mark);
	}
	p->mark = (size_t)(at - p->buf) + strlen(text);
}

int
pty_wait_exit(struct pty_child *p)
{
	int64_t deadline = now_ms() + CLI_WAIT_MS;
	int ws;

	while (p->fd >= 0) {
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			kill(p->pid, SIGKILL);
			(void)waitpid(p->pid, &ws, 0);
			cr_assert_fail(
			    "the tool is still running after %d ms; the terminal shows: %s",
			    CLI_WAIT_MS, p->buf + p->mark);
		}
		(void)pty_read(p, (int)left);
	}
	cr_assert_eq(waitpid(p->pid, &ws, 0), p->pid);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

void
pty_free(struct pty_child *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p->buf);
	p->buf = NULL;
}
