/*
 * test_bench_util.c - spawns FSESL_BENCH_BIN with pipes on stdout and
 * stderr and drains both with poll() until EOF, so that neither pipe can
 * fill up and stall the child however much it prints.
 */
#include "test_bench_util.h"

#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int
append(char **buf, size_t *len, size_t *cap, int fd)
{
	if (*cap - *len < 4096) {
		size_t ncap = *cap ? *cap * 2 : 65536;
		char *nb = realloc(*buf, ncap);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = ncap;
	}
	ssize_t n = read(fd, *buf + *len, *cap - *len - 1);
	if (n < 0 && errno == EINTR)
		return 1;
	if (n <= 0)
		return 0;
	*len += (size_t)n;
	(*buf)[*len] = 0;
	return 1;
}

int
bench_run(const char *const *args, struct bench_run *r)
{
	int po[2], pe[2];
	size_t n = 0, ocap = 0, ecap = 0;
	memset(r, 0, sizeof(*r));
	while (args[n])
		n++;
	char **argv = calloc(n + 2, sizeof(*argv));
	if (!argv)
		return -1;
	argv[0] = (char *)FSESL_BENCH_BIN;
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	if (pipe(po) || pipe(pe)) {
		free(argv);
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	posix_spawn_file_actions_addclose(&fa, po[0]);
	posix_spawn_file_actions_addclose(&fa, pe[0]);
	pid_t pid;
	int rc = posix_spawn(&pid, FSESL_BENCH_BIN, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	close(po[1]);
	close(pe[1]);
	if (rc != 0) {
		close(po[0]);
		close(pe[0]);
		return -1;
	}
	struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
	int open_fds = 2;
	while (open_fds) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int more = i == 0 ? append(&r->out, &r->out_len, &ocap, pf[i].fd)
			                  : append(&r->err, &r->err_len, &ecap, pf[i].fd);
			if (more <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
			}
		}
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (!r->out)
		r->out = calloc(1, 1);
	if (!r->err)
		r->err = calloc(1, 1);
	return 0;
}

void
bench_run_free(struct bench_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}
