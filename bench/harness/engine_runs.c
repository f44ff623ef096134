/*
 * engine_runs.c - the fsesl scenarios: blocking API with futex or poll
 * waits (closed or open loop, several servers, several connections,
 * events flowing, command mixes), the async API with a window, and the
 * many-connections scenario on one reactor.
 *
 * Only the public API (engine/fsesl.h) is used, exactly as an application
 * would. Each scenario starts a fresh engine so that its statistics
 * (doorbell writes per command: the submit side's syscalls) belong to it.
 */
#include "bench.h"

#include "fsesl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One engine with its servers, set up for a scenario. */
struct eng {
	fsesl_engine *e;
	fsesl_server_t srv[BENCH_MAX_SERVERS];
	unsigned n_srv;
	fsesl_engine_stats s0, s1;
	uint64_t rss0, rss1;
};

static void
eng_hook(void *ud, int which)
{
	struct eng *g = ud;
	fsesl_engine_stats_get(g->e, which ? &g->s1 : &g->s0);
	if (which)
		g->rss1 = self_rss_bytes();
	/* FSESL_BENCH_WAKES=1: how the engine woke its callers in the
	 * measured window (docs/engine.md, "Waking callers"). */
	if (which && getenv("FSESL_BENCH_WAKES"))
		fprintf(stderr,
		    "wakes: %" PRIu64 " futex_wakes, %" PRIu64 " flushes, %" PRIu64
		    " wake syscalls (%s) in %" PRIu64 " loop turns\n",
		    g->s1.futex_wakes - g->s0.futex_wakes, g->s1.wake_flushes - g->s0.wake_flushes,
		    g->s1.wake_syscalls - g->s0.wake_syscalls,
		    g->s1.wake_uring ? "io_uring_enter" : "FUTEX_WAKE",
		    g->s1.loop_iterations - g->s0.loop_iterations);
}

static int
eng_open(struct eng *g, const struct bench_env *env, const struct scenario *sc,
    unsigned max_in_flight, struct result *r)
{
	fsesl_config cfg;
	int rc;
	memset(g, 0, sizeof(*g));
	fsesl_config_init(&cfg);
	cfg.esl_cmd_timeout = env->o->timeout_ms;
	cfg.connections_per_server = sc->conns_per_server ? sc->conns_per_server : 1;
	if (max_in_flight)
		cfg.max_in_flight = max_in_flight;
	if (sc->kind == K_ENGINE) {
		cfg.wait_mode =
		    sc->wait_mode == FSESL_WAIT_POLL ? FSESL_WAIT_POLL : FSESL_WAIT_FUTEX;
		if (sc->polling_itv_us)
			cfg.esl_cmd_polling_itv = sc->polling_itv_us;
	}
	rc = fsesl_engine_start(&cfg, &g->e);
	if (rc != 0) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "fsesl_engine_start: %s",
		    fsesl_strerror(rc));
		return rc;
	}
	unsigned want = sc->servers ? sc->servers : 1;
	if (want > env->n_targets)
		want = env->n_targets;
	for (unsigned i = 0; i < want; i++) {
		const struct bench_target *t = &env->targets[i];
		rc = fsesl_server_get_by(
		    g->e, t->host, t->port, t->user[0] ? t->user : NULL, t->password, &g->srv[i]);
		if (rc != 0) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error),
			    "fsesl_server_get %.64s:%u: %s", t->host, (unsigned)t->port,
			    fsesl_strerror(rc));
			return rc;
		}
		g->n_srv++;
	}
	/* One round trip per server: connecting is not what we measure. */
	for (unsigned i = 0; i < g->n_srv; i++) {
		fsesl_reply *rep = NULL;
		fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
		opts.timeout_ms = (int)env->o->timeout_ms;
		rc = fsesl_api(g->e, g->srv[i], "echo warm-up", &opts, &rep);
		if (rc == 0) {
			size_t len = 0;
			const char *body = fsesl_reply_body(rep, &len);
			if (len != 7 || memcmp(body, "warm-up", 7) != 0)
				rc = -EPROTO;
			fsesl_reply_free(rep);
		}
		if (rc != 0) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error),
			    "first command on %.64s:%u: %s", env->targets[i].host,
			    (unsigned)env->targets[i].port, fsesl_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static void
eng_close(struct eng *g)
{
	if (!g->e)
		return;
	for (unsigned i = 0; i < g->n_srv; i++)
		fsesl_server_put(g->e, g->srv[i]);
	fsesl_engine_stop(g->e);
	g->e = NULL;
}

static unsigned
eng_connected(struct eng *g)
{
	unsigned n = 0;
	for (unsigned i = 0; i < g->n_srv; i++) {
		fsesl_server_stats st;
		if (fsesl_server_stats_get(g->e, g->srv[i], &st) == 0 && st.connected_conns > 0)
			n += (unsigned)st.connected_conns;
	}
	return n;
}

/* Checks one engine reply; 0 ok, -1 mismatch or error (w updated). */
static int
check_reply(struct wstats *w, enum bench_mix kind, const char *token, const fsesl_reply *rep,
    unsigned large_bytes)
{
	if (kind == MIX_BGAPI) {
		const char *job = fsesl_reply_header(rep, "Job-UUID");
		const char *text = fsesl_reply_text(rep);
		if (fsesl_reply_ok(rep) != 1 || !job || !text ||
		    strncmp(text, "+OK Job-UUID: ", 14) || strcmp(text + 14, job) != 0) {
			wstats_mismatch(
			    w, token, text ? text : "(no Reply-Text)", text ? strlen(text) : 15);
			return -1;
		}
		return 0;
	}
	if (!fsesl_reply_is_api(rep)) {
		const char *text = fsesl_reply_text(rep);
		wstats_error(w, "api refused: %s", text ? text : "(no Reply-Text)");
		return -1;
	}
	size_t len = 0;
	const char *body = fsesl_reply_body(rep, &len);
	if (check_echo(token, body, len, kind == MIX_LARGE ? large_bytes : 0)) {
		wstats_mismatch(w, token, body, len);
		return -1;
	}
	return 0;
}

/* Builds the command line for kind into buf: "echo <token>[padding]". */
static const char *
cmd_line(char *buf, size_t cap, enum bench_mix kind, const char *token, unsigned large_bytes)
{
	if (kind == MIX_LARGE)
		snprintf(buf, cap, "echo %s%s", token, large_padding(large_bytes));
	else
		snprintf(buf, cap, "echo %s", token);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Events flowing while commands run                                   */
/* ------------------------------------------------------------------ */

struct drain {
	fsesl_subscriber *sub;
	_Atomic bool stop;
	_Atomic uint64_t events; /* written by the drain thread only */
	_Atomic uint64_t dropped;
	uint64_t sent0; /* raw mode: the simulator's count at the start */
	struct flood floods[BENCH_MAX_SERVERS]; /* --url: our own sendevents */
	unsigned n_floods;
	pthread_t tid;
	bool running;
	bool raw;
};

static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	cpu_thread_app(); /* the application's event consumer */
	/* Acquire: pairs with the release store in drain_stop(). */
	while (!atomic_load_explicit(&d->stop, memory_order_acquire)) {
		fsesl_delivery dl;
		int rc = fsesl_subscriber_next(d->sub, &dl, 50);
		if (rc <= 0) {
			if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR)
				break;
			continue;
		}
		if (dl.kind == FSESL_NOTICE_EVENT)
			/* Relaxed: a counter; drain_stop reads it after join, or
			 * polls it only to see that it moved. */
			atomic_fetch_add_explicit(&d->events, 1, memory_order_relaxed);
		else if (dl.kind == FSESL_NOTICE_DROPPED)
			atomic_fetch_add_explicit(&d->dropped, dl.count, memory_order_relaxed);
		fsesl_delivery_release(&dl);
	}
	return NULL;
}

/*
 * Subscribes every server to the flood and starts the drain thread. An
 * engine without the subscriber API yet (-ENOSYS) still gets the events on
 * its command connection: a raw `event plain CUSTOM sim::flood` command,
 * sent through fsesl_command(), makes the server interleave them with the
 * replies, which is the cost this scenario is about; the count then comes
 * from the simulator.
 */
static int
drain_start(
    struct drain *d, struct eng *g, const struct bench_env *env, unsigned rate, struct result *r)
{
	fsesl_sub_opts so;
	memset(d, 0, sizeof(*d));
	memset(&so, 0, sizeof(so));
	so.format = FSESL_EVFMT_PLAIN;
	int rc = fsesl_subscriber_create(g->e, "bench", &so, &d->sub);
	if (rc == -ENOSYS) {
		d->sub = NULL;
		d->raw = true;
		snprintf(r->note, sizeof(r->note),
		    "engine has no subscriber API yet: raw `event` "
		    "command on the command connection, events counted by the simulator");
		rc = 0;
		for (unsigned i = 0; rc == 0 && i < g->n_srv; i++) {
			fsesl_reply *rep = NULL;
			struct fsesl_cmd cmd = {
			    "event plain CUSTOM " FLOOD_SUBCLASS, NULL, 0, NULL, 0, 0};
			rc = fsesl_command(g->e, g->srv[i], &cmd, NULL, &rep);
			if (rc == 0 && fsesl_reply_ok(rep) != 1)
				rc = FSESL_EREFUSED;
			if (rep)
				fsesl_reply_free(rep);
		}
		d->sent0 = env->sim ? simhost_events_sent() : 0;
	} else {
		for (unsigned i = 0; rc == 0 && i < g->n_srv; i++)
			rc = fsesl_subscribe(d->sub, g->srv[i], "CUSTOM " FLOOD_SUBCLASS);
		if (rc == 0 && pthread_create(&d->tid, NULL, drain_main, d) != 0)
			rc = -EAGAIN;
		if (rc == 0)
			d->running = true;
	}
	/* The rate is the total, split over the servers. */
	if (rc == 0 && env->sim)
		rc = simhost_flood((rate + g->n_srv - 1) / g->n_srv, g->n_srv);
	if (rc != 0) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "event subscription: %s",
		    fsesl_strerror(rc));
		return rc;
	}
	/* A real server: fire the events ourselves, split over its servers. */
	for (unsigned i = 0; !env->sim && i < g->n_srv; i++) {
		rc = flood_start(&d->floods[i], &env->targets[i], (rate + g->n_srv - 1) / g->n_srv);
		if (rc != 0) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error), "event flood: %.120s",
			    d->floods[i].err);
			return rc;
		}
		d->n_floods++;
	}
	if (d->n_floods)
		snprintf(r->note, sizeof(r->note),
		    "events fired by our own sendevent connection (its CPU is in cpu/cmd)");
	return 0;
}

static void
drain_stop(struct drain *d, const struct bench_env *env, struct result *r)
{
	if (env->sim)
		(void)simhost_flood(0, 0);
	for (unsigned i = 0; i < d->n_floods; i++) {
		flood_stop(&d->floods[i]);
		r->errors += d->floods[i].errors;
		if (d->floods[i].errors && !r->first_error[0])
			snprintf(r->first_error, sizeof(r->first_error), "%s", d->floods[i].err);
	}
	if (d->running) {
		/* Events were fired: hold on (bounded) until the first arrives, so
		 * that a stalled moment never reports a flood that did nothing. */
		uint64_t limit = now_ns() + (uint64_t)env->o->timeout_ms * 1000000u;
		while (!atomic_load_explicit(&d->events, memory_order_relaxed) &&
		       !atomic_load_explicit(&d->dropped, memory_order_relaxed) && now_ns() < limit)
			sleep_ns(1000000);
		/* Release: pairs with the acquire load in drain_main(). */
		atomic_store_explicit(&d->stop, true, memory_order_release);
		pthread_join(d->tid, NULL);
	}
	if (d->sub)
		fsesl_subscriber_destroy(d->sub);
	if (d->raw && env->sim)
		d->events = simhost_events_sent() - d->sent0;
	r->events += d->events;
}

/* ------------------------------------------------------------------ */
/* Blocking API: futex or poll wait                                     */
/* ------------------------------------------------------------------ */

struct eng_worker {
	const struct bench_env *env;
	const struct scenario *sc;
	struct eng *g;
	unsigned idx, k;
	struct run_ctl *ctl;
	uint64_t base;
	struct wstats st;
	pthread_t tid;
};

/*
 * A batch worker: sc->batch commands per fsesl_api_many() call, each
 * checked against its own token; all of a call's commands count the call's
 * latency (they were sent together and returned together).
 */
static void *
eng_batch_main(void *arg)
{
	struct eng_worker *wk = arg;
	const struct scenario *sc = wk->sc;
	const struct bench_opts *o = wk->env->o;
	size_t cap = BENCH_TOKEN_MAX + 16 + o->large_bytes, n = sc->batch;
	char *lines = malloc(n * cap), (*tokens)[BENCH_TOKEN_MAX] = malloc(n * BENCH_TOKEN_MAX);
	const char **cmds = calloc(n, sizeof(*cmds));
	fsesl_server_t *to = calloc(n, sizeof(*to));
	fsesl_reply **rep = calloc(n, sizeof(*rep));
	int *st = calloc(n, sizeof(*st));
	fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
	uint64_t seq = 0;

	opts.timeout_ms = (int)o->timeout_ms;
	if (!lines || !tokens || !cmds || !to || !rep || !st)
		abort();
	cpu_thread_app();
	while (!stopping(wk->ctl)) {
		for (size_t j = 0; j < n; j++, seq++) {
			make_token(tokens[j], BENCH_TOKEN_MAX, wk->idx, wk->k + 1, seq);
			cmd_line(lines + j * cap, cap, sc->mix, tokens[j], o->large_bytes);
			cmds[j] = lines + j * cap;
			to[j] = wk->g->srv[(wk->k + seq) % wk->g->n_srv];
		}
		uint64_t t_send = now_ns();
		int rc = fsesl_api_many(wk->g->e, n, to, cmds, &opts, st, rep);
		uint64_t t = now_ns();
		if (rc != 0) {
			wstats_error(&wk->st, "fsesl_api_many: %s", fsesl_strerror(rc));
			break;
		}
		bool failed = false;
		for (size_t j = 0; j < n; j++) {
			if (st[j] != 0) {
				if (st[j] == -ETIMEDOUT || st[j] == FSESL_EDISCONNECTED)
					wk->st.lost++;
				wstats_error(&wk->st, "%s: %s", tokens[j], fsesl_strerror(st[j]));
				failed = true;
				continue;
			}
			wk->st.total++;
			check_reply(&wk->st, sc->mix, tokens[j], rep[j], o->large_bytes);
			fsesl_reply_free(rep[j]);
			if (measuring(wk->ctl)) {
				wk->st.commands++;
				hist_record(&wk->st.lat, t - t_send);
				ctl_progress(wk->ctl);
			}
		}
		if (failed)
			break;
	}
	free(lines);
	free(tokens);
	free(cmds);
	free(to);
	free(rep);
	free(st);
	return NULL;
}

static void *
eng_worker_main(void *arg)
{
	struct eng_worker *wk = arg;
	const struct scenario *sc = wk->sc;
	const struct bench_opts *o = wk->env->o;
	size_t cap = BENCH_TOKEN_MAX + 16 + o->large_bytes;
	char *line = malloc(cap);
	char token[BENCH_TOKEN_MAX];
	fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
	opts.timeout_ms = (int)o->timeout_ms;
	if (!line)
		abort();
	cpu_thread_app();
	for (uint64_t i = 0; !stopping(wk->ctl); i++) {
		enum bench_mix kind = mix_pick(sc->mix, i);
		fsesl_server_t srv = wk->g->srv[(wk->k + i) % wk->g->n_srv];
		fsesl_reply *rep = NULL;
		make_token(token, sizeof(token), wk->idx, wk->k + 1, i);
		cmd_line(line, cap, kind, token, o->large_bytes);
		uint64_t t_send;
		if (sc->open_rate) {
			t_send = wk->base + (uint64_t)((double)(wk->k + i * sc->workers) * 1e9 /
			                               sc->open_rate);
			if (now_ns() < t_send)
				sleep_until_ns(t_send);
		} else {
			t_send = now_ns();
		}
		int rc;
		struct fsesl_event *job = NULL;
		if (kind == MIX_JOB)
			rc = fsesl_bgapi_job(wk->g->e, srv, line, (int)o->timeout_ms, &opts, &job);
		else if (kind == MIX_BGAPI)
			rc = fsesl_bgapi(wk->g->e, srv, line, &opts, &rep);
		else
			rc = fsesl_api(wk->g->e, srv, line, &opts, &rep);
		uint64_t t = now_ns();
		if (rc != 0) {
			if (rc == -ETIMEDOUT || rc == FSESL_EDISCONNECTED || rc == FSESL_EJOBLOST)
				wk->st.lost++;
			wstats_error(&wk->st, "%s: %s", token, fsesl_strerror(rc));
			break;
		}
		wk->st.total++;
		if (kind == MIX_JOB) {
			/* The job's output is echo's: the token, nothing else. */
			if (!job || check_echo(token, job->body, job->body_len, 0) != 0)
				wstats_mismatch(&wk->st, token, job ? job->body : NULL,
				    job ? job->body_len : 0);
			fsesl_event_free(job);
		} else {
			check_reply(&wk->st, kind, token, rep, o->large_bytes);
			fsesl_reply_free(rep);
		}
		if (measuring(wk->ctl)) {
			wk->st.commands++;
			hist_record(&wk->st.lat, t - t_send);
			ctl_progress(wk->ctl);
		}
	}
	free(line);
	return NULL;
}

void
run_engine(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	struct run_ctl ctl = {PH_WARMUP, 0, 0, false};
	struct window_snap snap;
	struct eng g;
	struct drain dr;
	bool draining = false;
	unsigned started = 0;
	struct eng_worker *wk = calloc(sc->workers, sizeof(*wk));
	if (!wk) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory");
		return;
	}
	memset(&dr, 0, sizeof(dr));
	if (eng_open(&g, env, sc, 0, r) != 0)
		goto out;
	if (sc->event_rate) {
		if (drain_start(&dr, &g, env, sc->event_rate, r) != 0)
			goto out_drain;
		draining = true;
	}
	uint64_t base = now_ns();
	for (; started < sc->workers; started++) {
		struct eng_worker *w = &wk[started];
		w->env = env;
		w->sc = sc;
		w->g = &g;
		w->idx = idx;
		w->k = started;
		w->ctl = &ctl;
		w->base = base;
		hist_reset(&w->st.lat);
		if (pthread_create(
		        &w->tid, NULL, sc->batch ? eng_batch_main : eng_worker_main, w) != 0)
			break;
	}
	if (started < sc->workers) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "only %u of %u threads started",
		    started, sc->workers);
	}
	run_window(env, &ctl, &snap, eng_hook, &g);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(wk[i].tid, NULL);
		result_add(r, &wk[i].st);
	}
	result_finish(r, &snap);
	r->connections = eng_connected(&g);
	if (r->commands) {
		r->submit_syscalls_per_cmd =
		    (double)(g.s1.doorbell_writes - g.s0.doorbell_writes) / (double)r->commands;
		r->wake_syscalls_per_cmd =
		    (double)(g.s1.futex_wakes - g.s0.futex_wakes) / (double)r->commands;
	}
out_drain:
	if (draining || dr.sub || dr.raw)
		drain_stop(&dr, env, r);
out:
	eng_close(&g);
	free(wk);
}

/* ------------------------------------------------------------------ */
/* Async API with a window (also the many-connections scenario)         */
/* ------------------------------------------------------------------ */

struct async_ctx;

struct async_slot {
	struct async_ctx *ctx;
	unsigned k;
	uint64_t seq;
	uint64_t t_send;
	enum bench_mix kind;
	char token[BENCH_TOKEN_MAX];
};

struct async_ctx {
	const struct bench_env *env;
	const struct scenario *sc;
	struct eng *g;
	unsigned idx;
	struct run_ctl *ctl;
	pthread_spinlock_t lock; /* callbacks run on the reactor, failures maybe not */
	struct wstats st;
	_Atomic unsigned inflight;
	_Atomic bool finalized;
	struct async_slot *slots;
	char *line; /* reactor-side scratch for the command line */
	size_t line_cap;
};

static void async_cb(int status, const fsesl_reply *reply, void *ud);

/* Submits slot s; on failure counts the error and gives its credit back. */
static int
async_submit(struct async_slot *s, char *line, size_t cap)
{
	struct async_ctx *c = s->ctx;
	const struct bench_opts *o = c->env->o;
	fsesl_cmd_opts opts = FSESL_CMD_OPTS_INIT;
	opts.timeout_ms = (int)o->timeout_ms;
	s->kind = mix_pick(c->sc->mix, s->seq);
	make_token(s->token, sizeof(s->token), c->idx, s->k + 1, s->seq);
	fsesl_server_t srv = c->g->srv[(s->k + s->seq) % c->g->n_srv];
	int rc;
	s->t_send = now_ns();
	if (s->kind == MIX_BGAPI) {
		char l[BENCH_TOKEN_MAX + 16];
		struct fsesl_header h = {"Job-UUID", 8, s->token, strlen(s->token)};
		struct fsesl_cmd cmd = {l, &h, 1, NULL, 0, 0};
		snprintf(l, sizeof(l), "bgapi echo %s", s->token);
		rc = fsesl_command_async(c->g->e, srv, &cmd, &opts, async_cb, s);
	} else {
		rc = fsesl_api_async(c->g->e, srv,
		    cmd_line(line, cap, s->kind, s->token, o->large_bytes), &opts, async_cb, s);
	}
	if (rc != 0) {
		pthread_spin_lock(&c->lock);
		wstats_error(&c->st, "submit %s: %s", s->token, fsesl_strerror(rc));
		pthread_spin_unlock(&c->lock);
		/* Release: pairs with the acquire load in async_drain(). */
		atomic_fetch_sub_explicit(&c->inflight, 1, memory_order_release);
	}
	return rc;
}

static void
async_cb(int status, const fsesl_reply *reply, void *ud)
{
	struct async_slot *s = ud;
	struct async_ctx *c = s->ctx;
	uint64_t t = now_ns();
	/* Acquire: pairs with the release store in async_run (give-up). */
	if (atomic_load_explicit(&c->finalized, memory_order_acquire)) {
		atomic_fetch_sub_explicit(&c->inflight, 1, memory_order_release);
		return;
	}
	pthread_spin_lock(&c->lock);
	if (status != 0) {
		if (status == -ETIMEDOUT || status == FSESL_EDISCONNECTED)
			c->st.lost++;
		wstats_error(&c->st, "%s: %s", s->token, fsesl_strerror(status));
	} else {
		c->st.total++;
		if (s->kind == MIX_BGAPI) {
			/* We sent our own Job-UUID: the reply must name it. */
			const char *job = fsesl_reply_header(reply, "Job-UUID");
			if (fsesl_reply_ok(reply) != 1 || !job || strcmp(job, s->token) != 0)
				wstats_mismatch(&c->st, s->token, job, job ? strlen(job) : 0);
		} else {
			check_reply(&c->st, s->kind, s->token, reply, c->env->o->large_bytes);
		}
		if (measuring(c->ctl)) {
			c->st.commands++;
			hist_record(&c->st.lat, t - s->t_send);
			ctl_progress(c->ctl);
		}
	}
	pthread_spin_unlock(&c->lock);
	if (status == 0 && !stopping(c->ctl)) {
		s->seq++;
		/* The callback owns the reactor-side scratch line: callbacks
		 * run one at a time on the reactor thread. */
		async_submit(s, c->line, c->line_cap);
		return;
	}
	/* Release: pairs with the acquire load in async_drain(). */
	atomic_fetch_sub_explicit(&c->inflight, 1, memory_order_release);
}

/* Waits for every outstanding request; returns how many never came. */
static unsigned
async_drain(struct async_ctx *c, unsigned timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	unsigned left;
	/* Acquire: pairs with the callbacks' release decrements. */
	while ((left = atomic_load_explicit(&c->inflight, memory_order_acquire)) != 0 &&
	       now_ns() < deadline)
		sleep_ns(1000000);
	return left;
}

static void
async_run(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r,
    unsigned window, unsigned max_in_flight, bool many)
{
	struct run_ctl ctl = {PH_WARMUP, 0, 0, false};
	struct window_snap snap;
	struct eng g;
	struct async_ctx *c = calloc(1, sizeof(*c));
	const struct bench_opts *o = env->o;
	char *line = NULL;
	size_t cap = BENCH_TOKEN_MAX + 16 + o->large_bytes;
	uint64_t rss0;

	memset(&g, 0, sizeof(g));
	if (!c || !(c->slots = calloc(window, sizeof(*c->slots))) || !(line = malloc(cap)) ||
	    !(c->line = malloc(cap))) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory");
		goto out_free;
	}
	c->line_cap = cap;
	/* Touch every slot page first: the RSS delta must be the engine's. */
	for (unsigned k = 0; k < window; k++) {
		c->slots[k].ctx = c;
		c->slots[k].k = k;
	}
	rss0 = self_rss_bytes();
	pthread_spin_init(&c->lock, PTHREAD_PROCESS_PRIVATE);
	hist_reset(&c->st.lat);
	if (eng_open(&g, env, sc, max_in_flight, r) != 0)
		goto out_close;
	if (many) {
		/* Wait (bounded) until the pool is up: memory per connection
		 * means nothing while connections are still being opened. */
		unsigned want = sc->conns_per_server * g.n_srv;
		uint64_t deadline = now_ns() + 30000000000ull;
		while (eng_connected(&g) < want && now_ns() < deadline)
			sleep_ns(10000000);
	}
	c->env = env;
	c->sc = sc;
	c->g = &g;
	c->idx = idx;
	c->ctl = &ctl;
	for (unsigned k = 0; k < window; k++) {
		struct async_slot *s = &c->slots[k];
		/* Relaxed: the credit is taken before the submit publishes s. */
		atomic_fetch_add_explicit(&c->inflight, 1, memory_order_relaxed);
		if (async_submit(s, line, cap) != 0)
			break;
	}
	run_window(env, &ctl, &snap, eng_hook, &g);
	unsigned left = async_drain(c, o->timeout_ms + 2000);
	/* Release: pairs with the acquire load in async_cb. */
	atomic_store_explicit(&c->finalized, true, memory_order_release);
	pthread_spin_lock(&c->lock);
	if (left) {
		c->st.lost += left;
		wstats_error(&c->st, "%u async requests never completed", left);
	}
	result_add(r, &c->st);
	pthread_spin_unlock(&c->lock);
	result_finish(r, &snap);
	r->connections = eng_connected(&g);
	if (r->commands)
		r->submit_syscalls_per_cmd =
		    (double)(g.s1.doorbell_writes - g.s0.doorbell_writes) / (double)r->commands;
	if (many && r->connections)
		r->mem_per_conn_bytes = ((double)g.rss1 - (double)rss0) / r->connections;
out_close:
	/* Any callback still owed runs inside stop (with FSESL_ESHUTDOWN). */
	eng_close(&g);
	pthread_spin_destroy(&c->lock);
out_free:
	free(line);
	if (c) {
		free(c->line);
		free(c->slots);
	}
	free(c);
}

void
run_async(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	unsigned w = sc->window ? sc->window : 16;
	async_run(env, idx, sc, r, w, w, false);
}

void
run_many_conns(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	unsigned conns = sc->conns_per_server ? sc->conns_per_server : 1;
	unsigned w = sc->window ? sc->window : conns;
	unsigned per = (w + conns - 1) / conns;
	async_run(env, idx, sc, r, w, per, true);
}
