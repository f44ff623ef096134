/*
 * baselines.c - the patterns fsesl is measured against, written here
 * against the same simulator in the same run:
 *
 *  bare        one connection, one thread, a window of W commands kept in
 *              flight; replacements for every reply already read go out
 *              in one write. Window 1 is the serial round trip. Nothing
 *              can move more commands over one connection: the ceiling.
 *  opensips    OpenSIPS's freeswitch module: one manager thread owns the
 *              connection and runs one command at a time (write, blocking
 *              read); workers queue commands under a mutex and sleep-poll
 *              every esl_cmd_polling_itv us, scanning a shared reply list
 *              under the same lock (docs/protocol.md §12.2).
 *  per_worker  libesl's pattern: each worker owns a blocking connection
 *              and does write-then-read in a loop.
 *
 * Each worker checks every reply against the unique token it sent; in an
 * open loop (sc->open_rate) latency counts from the intended send time.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQ_BUF (BENCH_TOKEN_MAX + 512)

static size_t
req_cap(const struct bench_env *env)
{
	return REQ_BUF + env->o->large_bytes;
}

/* ------------------------------------------------------------------ */
/* bare                                                                 */
/* ------------------------------------------------------------------ */

struct timer_args {
	const struct bench_env *env;
	struct run_ctl *ctl;
	struct window_snap *snap;
};

static void *
window_thread(void *arg)
{
	struct timer_args *ta = arg;
	run_window(ta->env, ta->ctl, ta->snap, NULL, NULL);
	return NULL;
}

struct bare_slot {
	char token[BENCH_TOKEN_MAX];
	uint64_t t_send;
	enum bench_mix kind;
};

void
run_bare(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	const struct bench_opts *o = env->o;
	struct rawconn c;
	char err[160];
	struct run_ctl ctl = {PH_WARMUP, 0, 0, false};
	struct window_snap snap;
	unsigned w = sc->window ? sc->window : 1;
	struct wstats *st = calloc(1, sizeof(*st));
	struct bare_slot *slots = calloc(w, sizeof(*slots));
	size_t ocap = (size_t)w * req_cap(env);
	char *out = malloc(ocap);
	if (!st || !slots || !out) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory");
		goto out_free;
	}
	hist_reset(&st->lat);
	if (rawconn_open(&c, &env->targets[0], err, sizeof(err)) != 0) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "%s", err);
		goto out_free;
	}
	r->connections = 1;

	/* The loop runs on this thread, so the window is timed by another. */
	struct timer_args ta = {env, &ctl, &snap};
	pthread_t timer;
	if (pthread_create(&timer, NULL, window_thread, &ta) != 0) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "pthread_create failed");
		rawconn_close(&c);
		goto out_free;
	}

	uint64_t seq = 0, events = 0;
	unsigned head = 0, inflight = 0, unsent = 0; /* FIFO: head..head+inflight */
	size_t olen = 0;
	for (;;) {
		bool stop = stopping(&ctl);
		/* Top up the window (unless stopping), then flush once. */
		while (!stop && inflight + unsent < w) {
			struct bare_slot *s = &slots[(head + inflight + unsent) % w];
			s->kind = mix_pick(sc->mix, seq);
			make_token(s->token, sizeof(s->token), idx, 0, seq++);
			ssize_t n = encode_request(
			    out + olen, ocap - olen, s->kind, s->token, o->large_bytes);
			if (n < 0) {
				wstats_error(st, "encode failed");
				break;
			}
			olen += (size_t)n;
			unsent++;
		}
		if (unsent) {
			uint64_t t = now_ns();
			for (unsigned i = 0; i < unsent; i++)
				slots[(head + inflight + i) % w].t_send = t;
			int rc = rawconn_write(&c, out, olen);
			if (rc != 0) {
				wstats_error(st, "write: %s", strerror(-rc));
				break;
			}
			if (measuring(&ctl))
				st->submit_syscalls++;
			inflight += unsent;
			unsent = 0;
			olen = 0;
		}
		if (!inflight)
			break;
		/* Read every reply that is already here; block only for the first. */
		struct rawreply rep;
		int rc = rawconn_next(&c, &rep, (int)o->timeout_ms, &events);
		if (rc == 0) {
			st->lost += inflight;
			wstats_error(st, "%u replies missing after %u ms", inflight, o->timeout_ms);
			break;
		}
		if (rc < 0) {
			st->lost += inflight;
			wstats_error(st, "connection: %s", rc > -4096 ? strerror(-rc) : "protocol");
			break;
		}
		do {
			struct bare_slot *s = &slots[head];
			uint64_t t = now_ns();
			check_raw_reply(st, s->kind, s->token, &rep, o->large_bytes);
			st->total++;
			if (measuring(&ctl)) {
				st->commands++;
				hist_record(&st->lat, t - s->t_send);
				ctl_progress(&ctl);
			}
			head = (head + 1) % w;
			inflight--;
		} while (inflight && (rc = rawconn_next(&c, &rep, 0, &events)) > 0);
		if (rc < 0) {
			st->lost += inflight;
			wstats_error(st, "connection: %s", rc > -4096 ? strerror(-rc) : "protocol");
			break;
		}
	}
	pthread_join(timer, NULL);
	rawconn_close(&c);
	result_add(r, st);
	r->events += events;
	result_finish(r, &snap);
	r->submit_syscalls_per_cmd = r->commands ? (double)st->submit_syscalls / r->commands : -1;
out_free:
	free(out);
	free(slots);
	free(st);
}

/* ------------------------------------------------------------------ */
/* opensips                                                             */
/* ------------------------------------------------------------------ */

struct os_req {
	struct os_req *next;
	uint64_t id;
	enum bench_mix kind;
	char token[BENCH_TOKEN_MAX];
};

struct os_reply {
	struct os_reply *next;
	uint64_t id;
	int status; /* 0 ok, -1 mismatch, -2 error */
	char detail[160]; /* what came back, for the report */
};

struct os_shared {
	const struct bench_env *env;
	const struct scenario *sc;
	unsigned idx;
	struct run_ctl *ctl;
	struct rawconn conn;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct os_req *q_head, **q_tail; /* manager's queue (IPC stand-in) */
	struct os_reply *replies; /* the socket's reply list */
	bool done; /* workers have all left */
	_Atomic uint64_t next_id;
	struct wstats mgr;
	uint64_t base;
	uint64_t events;
};

struct os_worker {
	struct os_shared *sh;
	unsigned k;
	struct wstats st;
	pthread_t tid;
};

static void *
os_manager(void *arg)
{
	struct os_shared *sh = arg;
	const struct bench_opts *o = sh->env->o;
	size_t cap = req_cap(sh->env);
	char *buf = malloc(cap);
	if (!buf)
		abort();
	for (;;) {
		pthread_mutex_lock(&sh->lock);
		while (!sh->q_head && !sh->done)
			pthread_cond_wait(&sh->cond, &sh->lock);
		struct os_req *rq = sh->q_head;
		if (!rq) {
			pthread_mutex_unlock(&sh->lock);
			break;
		}
		sh->q_head = rq->next;
		if (!sh->q_head)
			sh->q_tail = &sh->q_head;
		pthread_mutex_unlock(&sh->lock);

		struct os_reply *rp = calloc(1, sizeof(*rp));
		if (!rp)
			abort();
		rp->id = rq->id;
		ssize_t n = encode_request(buf, cap, rq->kind, rq->token, o->large_bytes);
		int rc = n < 0 ? -EINVAL : rawconn_write(&sh->conn, buf, (size_t)n);
		struct rawreply rep;
		if (rc == 0) {
			if (measuring(sh->ctl))
				sh->mgr.submit_syscalls++;
			rc = rawconn_next(&sh->conn, &rep, (int)o->timeout_ms, &sh->events);
		}
		if (rc <= 0) {
			rp->status = -2;
			snprintf(rp->detail, sizeof(rp->detail), "%s",
			    rc == 0 ? "no reply (timeout)" : "connection lost");
		} else {
			struct wstats tmp;
			memset(&tmp, 0, sizeof(tmp));
			if (check_raw_reply(&tmp, rq->kind, rq->token, &rep, o->large_bytes) != 0) {
				rp->status = tmp.mismatches ? -1 : -2;
				snprintf(rp->detail, sizeof(rp->detail), "%s", tmp.first_error);
			}
		}
		free(rq);
		pthread_mutex_lock(&sh->lock);
		rp->next = sh->replies;
		sh->replies = rp;
		pthread_mutex_unlock(&sh->lock);
		if (rc < 0)
			break; /* the connection is gone; workers will time out */
	}
	free(buf);
	return NULL;
}

static void *
os_worker_main(void *arg)
{
	struct os_worker *wk = arg;
	struct os_shared *sh = wk->sh;
	const struct bench_opts *o = sh->env->o;
	const struct scenario *sc = sh->sc;
	uint64_t i = 0;

	cpu_thread_app();
	while (!stopping(sh->ctl)) {
		struct os_req *rq = calloc(1, sizeof(*rq));
		if (!rq)
			abort();
		uint64_t t_send = pace(sc, sh->base, wk->k, i);
		rq->id = atomic_fetch_add_explicit(&sh->next_id, 1, memory_order_relaxed);
		rq->kind = mix_pick(sc->mix, i);
		make_token(rq->token, sizeof(rq->token), sh->idx, wk->k + 1, i);
		i++;
		uint64_t id = rq->id;
		char token[BENCH_TOKEN_MAX];
		memcpy(token, rq->token, sizeof(token));

		pthread_mutex_lock(&sh->lock);
		*sh->q_tail = rq;
		sh->q_tail = &rq->next;
		pthread_cond_signal(&sh->cond);
		pthread_mutex_unlock(&sh->lock);

		/* Sleep-poll the reply list, as fs_api.c does. */
		uint64_t deadline = now_ns() + (uint64_t)o->timeout_ms * 1000000u;
		struct os_reply *got = NULL;
		for (;;) {
			usleep(sc->polling_itv_us);
			pthread_mutex_lock(&sh->lock);
			for (struct os_reply **pp = &sh->replies; *pp; pp = &(*pp)->next) {
				if ((*pp)->id == id) {
					got = *pp;
					*pp = got->next;
					break;
				}
			}
			pthread_mutex_unlock(&sh->lock);
			if (got || now_ns() > deadline)
				break;
		}
		uint64_t t = now_ns();
		if (!got) {
			wk->st.lost++;
			wstats_error(&wk->st, "no reply to %s within %u ms", token, o->timeout_ms);
			break;
		}
		wk->st.total++;
		if (got->status == -1) {
			wk->st.mismatches++;
			if (!wk->st.first_error[0])
				snprintf(wk->st.first_error, sizeof(wk->st.first_error), "%s",
				    got->detail);
		} else if (got->status == -2) {
			wstats_error(&wk->st, "%s", got->detail);
		}
		if (measuring(sh->ctl)) {
			wk->st.commands++;
			hist_record(&wk->st.lat, t - t_send);
			ctl_progress(sh->ctl);
		}
		bool fatal = got->status == -2;
		free(got);
		if (fatal)
			break;
	}
	return NULL;
}

void
run_opensips(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	struct run_ctl ctl = {PH_WARMUP, 0, 0, false};
	struct window_snap snap;
	char err[160];
	struct os_shared *sh = calloc(1, sizeof(*sh));
	struct os_worker *wk = calloc(sc->workers, sizeof(*wk));
	unsigned started = 0;
	pthread_t mgr;

	if (!sh || !wk) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory");
		goto out_free;
	}
	sh->env = env;
	sh->sc = sc;
	sh->idx = idx;
	sh->ctl = &ctl;
	sh->q_tail = &sh->q_head;
	hist_reset(&sh->mgr.lat);
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->cond, NULL);
	if (rawconn_open(&sh->conn, &env->targets[0], err, sizeof(err)) != 0) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "%s", err);
		goto out_destroy;
	}
	r->connections = 1;
	if (pthread_create(&mgr, NULL, os_manager, sh) != 0) {
		rawconn_close(&sh->conn);
		snprintf(r->skip_reason, sizeof(r->skip_reason), "pthread_create failed");
		goto out_destroy;
	}
	sh->base = now_ns();
	for (; started < sc->workers; started++) {
		wk[started].sh = sh;
		wk[started].k = started;
		hist_reset(&wk[started].st.lat);
		if (pthread_create(&wk[started].tid, NULL, os_worker_main, &wk[started]) != 0)
			break;
	}
	if (started < sc->workers) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "only %u of %u threads started",
		    started, sc->workers);
	}
	run_window(env, &ctl, &snap, NULL, NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(wk[i].tid, NULL);
	pthread_mutex_lock(&sh->lock);
	sh->done = true;
	pthread_cond_broadcast(&sh->cond);
	pthread_mutex_unlock(&sh->lock);
	pthread_join(mgr, NULL);
	rawconn_close(&sh->conn);
	for (unsigned i = 0; i < started; i++)
		result_add(r, &wk[i].st);
	result_finish(r, &snap);
	r->events += sh->events;
	r->submit_syscalls_per_cmd =
	    r->commands ? (double)sh->mgr.submit_syscalls / (double)r->commands : -1;
	/* Replies nobody collected (timed out): OpenSIPS leaks them; we free. */
	while (sh->replies) {
		struct os_reply *n = sh->replies->next;
		free(sh->replies);
		sh->replies = n;
	}
	while (sh->q_head) {
		struct os_req *n = sh->q_head->next;
		free(sh->q_head);
		sh->q_head = n;
	}
out_destroy:
	pthread_cond_destroy(&sh->cond);
	pthread_mutex_destroy(&sh->lock);
out_free:
	free(wk);
	free(sh);
}

/* ------------------------------------------------------------------ */
/* per_worker                                                           */
/* ------------------------------------------------------------------ */

struct pw_worker {
	const struct bench_env *env;
	const struct scenario *sc;
	unsigned idx, k;
	struct run_ctl *ctl;
	struct rawconn conn;
	bool open;
	uint64_t base;
	uint64_t events;
	struct wstats st;
	pthread_t tid;
};

static void *
pw_main(void *arg)
{
	struct pw_worker *wk = arg;
	const struct bench_opts *o = wk->env->o;
	size_t cap = req_cap(wk->env);
	char *buf = malloc(cap);
	char token[BENCH_TOKEN_MAX];
	if (!buf)
		abort();
	cpu_thread_app();
	for (uint64_t i = 0; !stopping(wk->ctl); i++) {
		enum bench_mix kind = mix_pick(wk->sc->mix, i);
		make_token(token, sizeof(token), wk->idx, wk->k + 1, i);
		ssize_t n = encode_request(buf, cap, kind, token, o->large_bytes);
		uint64_t t_send = pace(wk->sc, wk->base, wk->k, i);
		int rc = n < 0 ? -EINVAL : rawconn_write(&wk->conn, buf, (size_t)n);
		if (rc != 0) {
			wstats_error(&wk->st, "write: %s", strerror(-rc));
			break;
		}
		if (measuring(wk->ctl))
			wk->st.submit_syscalls++;
		struct rawreply rep;
		rc = rawconn_next(&wk->conn, &rep, (int)o->timeout_ms, &wk->events);
		uint64_t t = now_ns();
		if (rc <= 0) {
			wk->st.lost++;
			wstats_error(&wk->st, "%s", rc == 0 ? "reply timeout" : "connection lost");
			break;
		}
		wk->st.total++;
		check_raw_reply(&wk->st, kind, token, &rep, o->large_bytes);
		if (measuring(wk->ctl)) {
			wk->st.commands++;
			hist_record(&wk->st.lat, t - t_send);
			ctl_progress(wk->ctl);
		}
	}
	free(buf);
	return NULL;
}

void
run_per_worker(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	struct run_ctl ctl = {PH_WARMUP, 0, 0, false};
	struct window_snap snap;
	char err[160];
	struct pw_worker *wk = calloc(sc->workers, sizeof(*wk));
	unsigned opened = 0, started = 0;
	if (!wk) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory");
		return;
	}
	/* Connect everybody first: connection set-up is not what we measure. */
	for (; opened < sc->workers; opened++) {
		struct pw_worker *w = &wk[opened];
		w->env = env;
		w->sc = sc;
		w->idx = idx;
		w->k = opened;
		w->ctl = &ctl;
		hist_reset(&w->st.lat);
		if (rawconn_open(&w->conn, &env->targets[opened % (sc->servers ? sc->servers : 1)],
		        err, sizeof(err)) != 0) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error), "%s", err);
			break;
		}
	}
	r->connections = opened;
	uint64_t base = now_ns();
	if (opened == sc->workers) {
		for (; started < sc->workers; started++) {
			wk[started].base = base;
			if (pthread_create(&wk[started].tid, NULL, pw_main, &wk[started]) != 0)
				break;
		}
		if (started < sc->workers) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error),
			    "only %u of %u threads started", started, sc->workers);
		}
		run_window(env, &ctl, &snap, NULL, NULL);
	}
	uint64_t sys = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(wk[i].tid, NULL);
		result_add(r, &wk[i].st);
		r->events += wk[i].events;
		sys += wk[i].st.submit_syscalls;
	}
	for (unsigned i = 0; i < opened; i++)
		rawconn_close(&wk[i].conn);
	if (started) {
		result_finish(r, &snap);
		r->submit_syscalls_per_cmd = r->commands ? (double)sys / (double)r->commands : -1;
	}
	free(wk);
}
