/*
 * fleet.c - one question to a whole fleet, one wait: `fsesl_api_many()`.
 *
 *   ./fleet COMMAND URL [URL...]       e.g. ./fleet "show calls count" fs://...
 *
 * The command goes to every server at once (each on its own connection),
 * and this thread sleeps once, until the last answer, the last timeout or
 * the last refusal is in: no thread per server, no loop of blocking calls
 * that would add up the servers' round trips. Each line of output is
 * "URL-index: first line of the answer" or "URL-index: error".
 *
 * Exit status: 0 every server answered +OK output, 1 some answered -ERR or
 * failed, 2 bad arguments or no engine.
 */
#include <stdio.h>
#include <string.h>

#include <fsesl.h>

#define MAX_SERVERS 64

int
main(int argc, char **argv)
{
	fsesl_server_t srvs[MAX_SERVERS];
	const char *cmds[MAX_SERVERS];
	fsesl_reply *replies[MAX_SERVERS];
	int statuses[MAX_SERVERS], n = argc - 2, i, err, worst = 0;
	fsesl_engine *e;

	if (argc < 3 || n > MAX_SERVERS) {
		fprintf(
		    stderr, "usage: %s COMMAND URL [URL...] (at most %d)\n", argv[0], MAX_SERVERS);
		return 2;
	}
	err = fsesl_engine_start(NULL, &e);
	if (err != 0) {
		fprintf(stderr, "engine: %s\n", fsesl_strerror(err));
		return 2;
	}
	for (i = 0; i < n; i++) {
		/* A bad URL leaves handle 0: its slot reports FSESL_EBADHANDLE. */
		srvs[i] = 0;
		err = fsesl_server_get(e, argv[i + 2], &srvs[i]);
		if (err != 0)
			fprintf(stderr, "#%d: %s\n", i, fsesl_strerror(err));
		cmds[i] = argv[1];
	}
	/* Connections open in the background; each command waits for its
	 * server's within its own timeout (esl_cmd_timeout, 5 s). */
	err = fsesl_api_many(e, (size_t)n, srvs, cmds, NULL, statuses, replies);
	if (err != 0) {
		fprintf(stderr, "fsesl_api_many: %s\n", fsesl_strerror(err));
		worst = 2;
	}
	for (i = 0; err == 0 && i < n; i++) {
		if (statuses[i] != 0) {
			printf("#%d: error: %s\n", i, fsesl_strerror(statuses[i]));
			worst = 1;
			continue;
		}
		const char *body = fsesl_reply_body(replies[i], NULL);
		printf("#%d: %.*s\n", i, (int)strcspn(body, "\n"), body);
		if (fsesl_reply_ok(replies[i]) != 1)
			worst = 1;
		fsesl_reply_free(replies[i]);
	}
	for (i = 0; i < n; i++)
		if (srvs[i])
			fsesl_server_put(e, srvs[i]);
	fsesl_engine_stop(e);
	return worst;
}
