/*
 * test_sim_program.c - the fsesl-sim program: first line, flags, signals.
 *
 * The program is started with posix_spawn and a pipe on stdout; the test
 * reads its first line (blocking read: the program flushes it), talks ESL to
 * it, then sends SIGTERM and expects a clean exit.
 */
#include "sim_client.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static pid_t
spawn_sim(char *const argv[], int *out_fd)
{
	int p[2];
	posix_spawn_file_actions_t fa;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	cr_assert_eq(posix_spawn(&pid, FSESL_SIM_EXE, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

static uint16_t
read_port(int fd)
{
	char line[128];
	size_t n = 0;

	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, line + n, 1);
		cr_assert_eq(r, 1, "fsesl-sim printed no first line");
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	unsigned int port = 0;
	cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%u", &port), 1, "first line: %s", line);
	cr_assert(port > 0 && port < 65536);
	return (uint16_t)port;
}

static void
stop_sim(pid_t pid, int fd)
{
	int st = 0;

	cr_assert_eq(kill(pid, SIGTERM), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fsesl-sim did not exit cleanly");
	close(fd);
}

Test(program, listens_answers_and_stops_on_sigterm, .timeout = 30)
{
	char *argv[] = {"fsesl-sim", "--listen", "127.0.0.1:0", "--password", "s3cret", "--user",
	    "1000@default:pw:HEARTBEAT:status:false", "--hostname", "simhost", NULL};
	int fd;
	pid_t pid = spawn_sim(argv, &fd);
	uint16_t port = read_port(fd);
	struct tc t;

	cr_assert_eq(tc_connect(&t, port, 5000), 0);
	cr_assert_eq(tc_next(&t), 1);
	tc_sends(&t, "auth s3cret\n\napi hostname\n\n");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "+OK accepted"));
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_body_is(&t, "simhost"));
	tc_close(&t);

	cr_assert_eq(tc_connect(&t, port, 5000), 0);
	cr_assert_eq(tc_next(&t), 1);
	tc_sends(&t, "userauth 1000@default:pw\n\napi version\n\n");
	cr_assert_eq(tc_next(&t), 1);
	char b[256];
	cr_assert_str_eq(tc_header(&t, "Allowed-Events", b, sizeof(b)), "HEARTBEAT");
	cr_assert_str_eq(tc_header(&t, "Allowed-API", b, sizeof(b)), "status");
	cr_assert_str_eq(tc_header(&t, "Allowed-LOG", b, sizeof(b)), "false");
	cr_assert_eq(tc_next(&t), 1);
	cr_assert(tc_reply_is(&t, "-ERR permission denied"));
	tc_close(&t);
	stop_sim(pid, fd);
}

Test(program, fault_flag_applies, .timeout = 30)
{
	char *argv[] = {"fsesl-sim", "--listen", "127.0.0.1:0", "--rude-reject", NULL};
	int fd;
	pid_t pid = spawn_sim(argv, &fd);
	uint16_t port = read_port(fd);
	struct tc t;

	cr_assert_eq(tc_connect(&t, port, 5000), 0);
	cr_assert_eq(tc_next(&t), 1);
	cr_assert_eq(t.msg.type, FSESL_MSG_RUDE_REJECTION);
	tc_close(&t);
	stop_sim(pid, fd);
}

Test(program, bad_flag_is_refused, .timeout = 30)
{
	char *argv[] = {"fsesl-sim", "--heartbeat-interval", "soon", NULL};
	int fd, st = 0;
	pid_t pid = spawn_sim(argv, &fd);

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	close(fd);
}
