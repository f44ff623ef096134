/*
 * workers.c - many application threads sharing one engine and its servers.
 *
 *   ./workers [URL...]     (default: fs://:ClueCon@127.0.0.1:8021)
 *   FSESL_THREADS=8 FSESL_COMMANDS=200 ./workers URL1 URL2
 *
 * Each thread takes its own handle with fsesl_server_get(): the engine keeps
 * one entry (and one connection) per host:port however many handles point
 * at it, so handles are cheap and need no sharing between threads. Every
 * call is blocking and thread-safe; the reactor pipelines the commands of
 * all threads on the same connection.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <fsesl.h>

struct shared {
	fsesl_engine *e;
	const char *const *urls;
	int n_urls;
	int commands;
	atomic_int ok, failed, err_replies; /* counters only: relaxed is enough */
};

struct worker {
	struct shared *sh;
	int id;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	const char *url = sh->urls[w->id % sh->n_urls];
	fsesl_server_t srv;
	int i, err;

	err = fsesl_server_get(sh->e, url, &srv);
	if (err != 0) {
		fprintf(stderr, "worker %d: %s\n", w->id, fsesl_strerror(err));
		atomic_fetch_add_explicit(&sh->failed, sh->commands, memory_order_relaxed);
		return NULL;
	}
	for (i = 0; i < sh->commands; i++) {
		fsesl_reply *r;

		err = fsesl_api(sh->e, srv, "uptime", NULL, &r);
		if (err != 0) {
			atomic_fetch_add_explicit(&sh->failed, 1, memory_order_relaxed);
			continue;
		}
		if (fsesl_reply_ok(r) == 1)
			atomic_fetch_add_explicit(&sh->ok, 1, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&sh->err_replies, 1, memory_order_relaxed);
		fsesl_reply_free(r);
	}
	fsesl_server_put(sh->e, srv);
	return NULL;
}

static int
env_int(const char *name, int def)
{
	const char *v = getenv(name);
	int n = v != NULL ? atoi(v) : 0;

	return n > 0 ? n : def;
}

int
main(int argc, char **argv)
{
	static const char *const def_url[] = {"fs://:ClueCon@127.0.0.1:8021"};
	int n_threads = env_int("FSESL_THREADS", 8);
	struct shared sh = {0};
	pthread_t *tids;
	struct worker *ws;
	int i, err, started = 0;

	sh.urls = argc > 1 ? (const char *const *)argv + 1 : def_url;
	sh.n_urls = argc > 1 ? argc - 1 : 1;
	sh.commands = env_int("FSESL_COMMANDS", 100);
	err = fsesl_engine_start(NULL, &sh.e);
	if (err != 0) {
		fprintf(stderr, "engine: %s\n", fsesl_strerror(err));
		return 2;
	}
	tids = calloc((size_t)n_threads, sizeof(*tids));
	ws = calloc((size_t)n_threads, sizeof(*ws));
	if (tids == NULL || ws == NULL) {
		fprintf(stderr, "out of memory\n");
		fsesl_engine_stop(sh.e);
		return 2;
	}
	for (i = 0; i < n_threads; i++) {
		ws[i] = (struct worker){&sh, i};
		if (pthread_create(&tids[i], NULL, worker_main, &ws[i]) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	printf("%d threads x %d commands: %d ok, %d -ERR, %d failed\n", started, sh.commands,
	    atomic_load(&sh.ok), atomic_load(&sh.err_replies), atomic_load(&sh.failed));
	fsesl_engine_stop(sh.e);
	free(tids);
	free(ws);
	return atomic_load(&sh.failed) == 0 ? 0 : 1;
}
