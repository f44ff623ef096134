/*
 * cli_run.c - helpers shared by the CLI suites: run the real `fsesl`
 * binary (FSESL_CLI_PATH) with posix_spawn and collect its exit code,
 * stdout and stderr; start a simulated server. Both pipes are read to EOF
 * before waitpid, so no output can be lost and no sleep is needed: the
 * tool's exit is the synchronisation point.
 */
#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cli_run.h"

extern char **environ;

static void
append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	cr_assert_not_null(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The caller's environment without FSESL_URL (it must not change a test),
 * plus extra. Returns a malloc'ed array of borrowed strings. */
static char **
child_env(const char *const *extra)
{
	size_t n = 0, k = 0, i;
	char **env;

	while (environ[n] != NULL)
		n++;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		;
	env = calloc(n + i + 1, sizeof(*env));
	cr_assert_not_null(env);
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "FSESL_URL=", 10) != 0)
			env[k++] = environ[i];
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		env[k++] = (char *)extra[i];
	env[k] = NULL;
	return env;
}

void
cli_spawn(struct child *c, struct run *r, const char *const *args)
{
	cli_spawn_env(c, r, args, NULL);
}

void
cli_spawn_env(struct child *c, struct run *r, const char *const *args, const char *const *extra)
{
	posix_spawn_file_actions_t fa;
	int in[2], out[2], err[2];
	char *argv[32];
	char **env;
	size_t n = 0;

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
	env = child_env(extra);
	cr_assert_eq(posix_spawn(&c->pid, FSESL_CLI_PATH, &fa, NULL, argv, env), 0);
	free(env);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	c->in = in[1];
	c->out = out[0];
	c->err = err[0];
	c->out_len = c->err_len = 0;
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	r->status = -1;
}

void
cli_send(struct child *c, const char *text)
{
	/* Inputs are a few bytes: they fit in the pipe, no interleaving needed. */
	cr_assert_eq(write(c->in, text, strlen(text)), (ssize_t)strlen(text));
}

void
cli_close_input(struct child *c)
{
	if (c->in >= 0)
		close(c->in);
	c->in = -1;
}

void
cli_pump(struct child *c, struct run *r, const char *until)
{
	int64_t deadline = now_ms() + CLI_WAIT_MS;
	struct pollfd pfd[2];
	int i, ready;

	while (c->out >= 0 || c->err >= 0) {
		char buf[4096];
		int64_t left = deadline - now_ms();

		if (until != NULL && strstr(r->out, until) != NULL)
			return;
		if (left <= 0) {
			kill(c->pid, SIGKILL);
			cr_assert_fail("the tool is still running after %d ms (waiting for %s); "
			               "stdout: %s stderr: %s",
			    CLI_WAIT_MS, until != NULL ? until : "its exit", r->out, r->err);
		}
		pfd[0] = (struct pollfd){.fd = c->out, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = c->err, .events = POLLIN};
		ready = poll(pfd, 2, (int)left);
		if (ready < 0) {
			cr_assert_eq(errno, EINTR);
			continue;
		}
		for (i = 0; i < 2; i++) {
			int *fd = i == 0 ? &c->out : &c->err;
			ssize_t k;

			if (*fd < 0 || pfd[i].revents == 0)
				continue;
			k = read(*fd, buf, sizeof(buf));
			if (k > 0) {
				append(i == 0 ? &r->out : &r->err,
				    i == 0 ? &c->out_len : &c->err_len, buf, (size_t)k);
			} else if (k == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	cr_assert_null(until, "the tool ended before printing \"%s\"; stdout: %s stderr: %s", until,
	    r->out, r->err);
}

void
cli_finish(struct child *c, struct run *r)
{
	int ws;

	cli_close_input(c);
	cli_pump(c, r, NULL);
	cr_assert_eq(waitpid(c->pid, &ws, 0), c->pid);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Runs the tool with args (NULL-terminated, without argv[0]). */
void
run_cli(struct run *r, const char *input, const char *const *args)
{
	run_cli_env(r, input, args, NULL);
}

void
run_cli_env(struct run *r, const char *input, const char *const *args, const char *const *env)
{
	struct child c;

	cli_spawn_env(&c, r, args, env);
	if (input != NULL)
		cli_send(&c, input);
	cli_finish(&c, r);
}

void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

fsesl_sim *
start_sim(uint16_t *port, unsigned int heartbeat_ms)
{
	struct fsesl_sim_config cfg;
	fsesl_sim *s = NULL;

	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = heartbeat_ms;
	cr_assert_eq(fsesl_sim_start(&cfg, &s, port), 0);
	cr_assert_not_null(s);
	return s;
}

fsesl_sim *
start_sim_users(uint16_t *port, const struct fsesl_sim_user *users, size_t n)
{
	struct fsesl_sim_config cfg;
	fsesl_sim *s = NULL;

	fsesl_sim_config_init(&cfg);
	cfg.users = users;
	cfg.n_users = n;
	cr_assert_eq(fsesl_sim_start(&cfg, &s, port), 0);
	cr_assert_not_null(s);
	return s;
}

/* Whether line starts with one of the '|'-separated prefixes. */
static bool
has_prefix(const char *line, const char *prefixes)
{
	for (;;) {
		size_t n = strcspn(prefixes, "|");

		if (strncmp(line, prefixes, n) == 0)
			return true;
		if (prefixes[n] == '\0')
			return false;
		prefixes += n + 1;
	}
}

char *
sim_recorded_joined(fsesl_sim *s, const char *prefix, size_t *n)
{
	char **lines = NULL, *out = calloc(1, 1);
	size_t k = fsesl_sim_recorded(s, &lines), i, len = 0;

	cr_assert_not_null(out);
	*n = 0;
	for (i = 0; i < k; i++) {
		if (has_prefix(lines[i], prefix)) {
			append(&out, &len, lines[i], strlen(lines[i]));
			append(&out, &len, "\n", 1);
			++*n;
		}
		free(lines[i]);
	}
	free(lines);
	return out;
}

void
wait_sim_delayed(fsesl_sim *s, uint64_t times)
{
	const struct timespec ms = {0, 1000000};
	int64_t deadline = now_ms() + CLI_WAIT_MS;
	struct fsesl_sim_counters sc;

	for (;;) {
		fsesl_sim_counters(s, &sc);
		if (sc.faults[FSESL_SIM_FAULT_DELAY] >= times)
			return;
		cr_assert_lt(now_ms(), deadline, "the simulator never held a command back");
		nanosleep(&ms, NULL); /* polling a condition, not waiting for time */
	}
}

char *
cli_url(const char *password, uint16_t port)
{
	char *u = NULL;

	cr_assert_gt(asprintf(&u, "fs://:%s@127.0.0.1:%u", password, (unsigned)port), 0);
	return u;
}

/* Number of lines in s that start with prefix. */
size_t
count_prefixed(const char *s, const char *prefix)
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
