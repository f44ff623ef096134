/*
 * least_loaded.c - route to the server with the most spare capacity, from
 * the HEARTBEAT statistics FreeSWITCH publishes (every 20 s by default).
 *
 *   ./least_loaded URL [URL...]     FSESL_WAIT_S=30: how long to wait for
 *                                   the first heartbeats
 *
 * fsesl_server_load() subscribes to HEARTBEAT on its first call for a
 * server and afterwards reads the last values without a lock (RCU). Stats
 * older than heartbeat_miss_limit intervals, or from a server that went
 * down, are marked invalid: they never keep steering calls to a dead box.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <fsesl.h>

#define MAX_SERVERS 64

int
main(int argc, char **argv)
{
	static const char *def[] = {NULL, "fs://:ClueCon@127.0.0.1:8021"};
	const char *const *urls = argc > 1 ? (const char *const *)argv : def;
	int n = argc > 1 ? argc - 1 : 1, i, err, best, valid;
	long wait_s = getenv("FSESL_WAIT_S") != NULL ? atol(getenv("FSESL_WAIT_S")) : 30;
	fsesl_server_t srvs[MAX_SERVERS];
	fsesl_load ld;
	fsesl_engine *e;
	time_t deadline;

	if (n > MAX_SERVERS)
		n = MAX_SERVERS;
	err = fsesl_engine_start(NULL, &e);
	for (i = 0; err == 0 && i < n; i++)
		err = fsesl_server_get(e, urls[i + 1], &srvs[i]);
	if (err != 0) {
		fprintf(stderr, "%s\n", fsesl_strerror(err));
		return 2;
	}
	/* Waiting for data that arrives on the server's schedule: a plain
	 * sleep loop is the honest tool here. */
	deadline = time(NULL) + wait_s;
	for (;;) {
		for (valid = 0, err = 0, i = 0; i < n && err == 0; i++) {
			err = fsesl_server_load(e, srvs[i], &ld);
			valid += err == 0 && ld.valid;
		}
		if (err != 0 || valid == n || time(NULL) >= deadline)
			break;
		usleep(100 * 1000);
	}
	for (i = 0; i < n; i++) {
		err = fsesl_server_load(e, srvs[i], &ld);
		if (err != 0 || !ld.valid) {
			printf("#%d  no valid stats%s%s\n", i, err != 0 ? ": " : "",
			    err != 0 ? fsesl_strerror(err) : "");
			continue;
		}
		printf("#%d  %-20s idle %5.1f%%  sessions %llu/%llu  (%llu ms old)\n", i,
		    ld.hb.hostname, ld.hb.idle_cpu, (unsigned long long)ld.hb.session_count,
		    (unsigned long long)ld.hb.max_sessions, (unsigned long long)ld.age_ms);
	}
	best = fsesl_pick_least_loaded(e, srvs, (size_t)n);
	if (best >= 0)
		printf("least loaded: #%d\n", best);
	else
		printf("no server to pick: %s\n", fsesl_strerror(best));
	for (i = 0; i < n; i++)
		fsesl_server_put(e, srvs[i]);
	fsesl_engine_stop(e);
	return best >= 0 ? 0 : 1;
}
