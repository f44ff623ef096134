/*
 * bgapi_jobs.c - background jobs: start several, collect their results.
 *
 *   ./bgapi_jobs [URL] [COMMAND...]   (default commands: status, uptime, version)
 *
 * `bgapi` answers at once with a Job-UUID and delivers the output later in
 * a BACKGROUND_JOB event; a long command (originate) therefore never holds
 * the connection's reply queue. The engine generates the Job-UUID,
 * subscribes to BACKGROUND_JOB by itself and matches the event to the job.
 * The first command runs with the blocking call; all of them then run at
 * once with the async one, whose callback (reactor thread: must not block)
 * only stores the result and signals this thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fsesl.h>

struct jobs {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending;
};

struct job {
	struct jobs *all;
	const char *cmd;
	int status;
	char *output;
};

static void
on_job(int status, const struct fsesl_event *ev, void *ud)
{
	struct job *j = ud;

	j->status = status;
	if (status == 0)
		j->output = strdup(ev->body); /* ev is valid only during the call */
	pthread_mutex_lock(&j->all->mu);
	j->all->pending--;
	pthread_cond_signal(&j->all->cv);
	pthread_mutex_unlock(&j->all->mu);
}

int
main(int argc, char **argv)
{
	static const char *def_cmds[] = {"status", "uptime", "version"};
	const char *url = argc > 1 ? argv[1] : "fs://:ClueCon@127.0.0.1:8021";
	const char *const *cmds = argc > 2 ? (const char *const *)argv + 2 : def_cmds;
	int n = argc > 2 ? argc - 2 : 3, i, err, failed = 0;
	struct jobs all = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	struct fsesl_event *res;
	struct job *js;
	fsesl_engine *e;
	fsesl_server_t srv;

	err = fsesl_engine_start(NULL, &e);
	if (err == 0)
		err = fsesl_server_get(e, url, &srv);
	if (err != 0) {
		fprintf(stderr, "%s\n", fsesl_strerror(err));
		return 2;
	}

	/* Blocking: returns when the job's result has come (or 30 s passed). */
	err = fsesl_bgapi_job(e, srv, cmds[0], 30000, NULL, &res);
	if (err == 0) {
		printf(
		    "== %s (job %s)\n%s", cmds[0], res->job_uuid ? res->job_uuid : "?", res->body);
		fsesl_event_free(res);
	} else {
		printf("== %s failed: %s\n", cmds[0], fsesl_strerror(err));
		failed++;
	}

	/* Async: every job in flight at once. */
	js = calloc((size_t)n, sizeof(*js));
	if (js == NULL)
		return 2;
	for (i = 0; i < n; i++) {
		js[i] = (struct job){.all = &all, .cmd = cmds[i]};
		pthread_mutex_lock(&all.mu);
		all.pending++;
		pthread_mutex_unlock(&all.mu);
		err = fsesl_bgapi_job_async(e, srv, cmds[i], 30000, NULL, on_job, &js[i]);
		if (err != 0) { /* the callback will not run */
			js[i].status = err;
			pthread_mutex_lock(&all.mu);
			all.pending--;
			pthread_mutex_unlock(&all.mu);
		}
	}
	pthread_mutex_lock(&all.mu);
	while (all.pending > 0)
		pthread_cond_wait(&all.cv, &all.mu);
	pthread_mutex_unlock(&all.mu);
	for (i = 0; i < n; i++) {
		if (js[i].status != 0) {
			printf("== %s failed: %s\n", js[i].cmd, fsesl_strerror(js[i].status));
			failed++;
		} else {
			printf("== %s\n%s", js[i].cmd, js[i].output ? js[i].output : "");
		}
		free(js[i].output);
	}
	free(js);
	fsesl_server_put(e, srv);
	fsesl_engine_stop(e);
	return failed == 0 ? 0 : 1;
}
