/*
 * blocking.c - the bare-blocking baseline: fsesl's blocking design and
 * nothing else, written by hand in a few hundred lines.
 *
 * N worker threads each encode a command, push it onto a lock-free stack
 * and sleep on a futex word; one I/O thread owns every socket (epoll),
 * pipelines what the workers pushed, matches replies in order, copies each
 * into its request and hands it back: it marks the word DONE and wakes the
 * worker if it announced that it sleeps. The wake is the scenario's
 * technique (wake.h): one FUTEX_WAKE per reply, or the wakes of one read
 * pass batched into one io_uring_enter(). No spinning, no timers, no
 * reconnects, no statistics: what is left is the hand-off itself, so
 * "fsesl vs bare-blocking" with the same technique is the engine's own
 * overhead.
 *
 * The doorbell is an eventfd written only when the I/O thread has said it
 * is about to sleep (a Dekker handshake on `sleeping`), so a busy I/O
 * thread costs the workers no syscall, as in the engine. With events
 * flowing, each server also gets an event connection, subscribed to the
 * flood, read by the same I/O thread.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { BB_PENDING = 0, BB_SLEEPING = 1, BB_DONE = 2 };
#define BB_DOORBELL UINT32_MAX /* epoll tag of the eventfd */

/* One per worker, reused for each of its commands. */
struct bb_req {
	_Atomic uint32_t state; /* the futex word */
	struct bb_req *next; /* the submission stack */
	unsigned srv;
	char *cmd; /* encoded by the worker */
	size_t cmd_len;
	/* The reply, copied by the I/O thread before DONE. */
	int status; /* 0, or the connection's error */
	bool api;
	char *body;
	size_t body_len, body_cap;
	char text[160];
	size_t text_len;
	bool has_text;
	char job[BENCH_TOKEN_MAX];
	size_t job_len;
	bool has_job;
};

struct bb_conn {
	struct rawconn c;
	bool open, dead, events_only, dirty;
	struct bb_req **fifo; /* in flight, in send order */
	unsigned cap, head, n;
	char *out;
	size_t out_len, out_cap;
};

struct bb_io {
	const struct bench_env *env;
	const struct scenario *sc;
	struct bb_conn *conns; /* servers x cps command connections, then event ones */
	unsigned n_cmd, n_conns, cps;
	unsigned *dirty; /* command connections with bytes to write */
	unsigned n_dirty;
	int ep, efd;
	_Atomic(struct bb_req *) head;
	_Atomic int sleeping;
	_Atomic bool quit;
	struct waker wk;
	/* Read by the window hook while the I/O thread runs. */
	_Atomic uint64_t wake_syscalls, doorbells, events;
	uint64_t errors;
	char first_error[160];
	char note[160];
	pthread_t tid;
};

struct bb_worker {
	struct bb_io *io;
	const struct bench_env *env;
	const struct scenario *sc;
	unsigned idx, k;
	struct run_ctl *ctl;
	uint64_t base;
	struct bb_req req;
	struct wstats st;
	pthread_t tid;
};

/* ------------------------------------------------------------------ */
/* Worker side                                                          */
/* ------------------------------------------------------------------ */

static void
bb_submit(struct bb_io *io, struct bb_req *rq)
{
	struct bb_req *h = atomic_load_explicit(&io->head, memory_order_relaxed);
	do
		rq->next = h;
	/* Release: the request's contents reach the I/O thread's acquire
	 * exchange of the head. */
	while (!atomic_compare_exchange_weak_explicit(
	    &io->head, &h, rq, memory_order_release, memory_order_relaxed));
	/* Store (head) then load (sleeping) here, store (sleeping) then load
	 * (head) there: with a full fence on both sides one of the two sees
	 * the other, so a push is never left behind a sleeping I/O thread. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&io->sleeping, memory_order_relaxed) &&
	    atomic_exchange_explicit(&io->sleeping, 0, memory_order_relaxed)) {
		uint64_t one = 1;
		if (write(io->efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			atomic_fetch_add_explicit(&io->doorbells, 1, memory_order_relaxed);
	}
}

/* Sleeps until the I/O thread marks rq DONE: 0, or -ETIMEDOUT. */
static int
bb_wait(struct bb_req *rq, uint64_t deadline)
{
	/* Acquire: pairs with the I/O thread's release exchange to DONE, so
	 * the copied reply is visible. */
	uint32_t s = atomic_load_explicit(&rq->state, memory_order_acquire);
	while (s != BB_DONE) {
		/* Announce the sleep, so the I/O thread knows to wake us. A
		 * failed CAS means DONE came first (s reloaded). */
		if (s == BB_PENDING && !atomic_compare_exchange_strong_explicit(&rq->state, &s,
		                           BB_SLEEPING, memory_order_acquire, memory_order_acquire))
			continue;
		int rc = wake_wait(&rq->state, BB_SLEEPING, deadline);
		s = atomic_load_explicit(&rq->state, memory_order_acquire);
		if (rc == -ETIMEDOUT && s != BB_DONE)
			return -ETIMEDOUT;
	}
	return 0;
}

static void *
bb_worker_main(void *arg)
{
	struct bb_worker *w = arg;
	const struct bench_opts *o = w->env->o;
	const struct scenario *sc = w->sc;
	struct bb_req *rq = &w->req;
	size_t cap = BENCH_TOKEN_MAX + 512 + o->large_bytes;
	unsigned servers = w->io->n_cmd / w->io->cps;
	char token[BENCH_TOKEN_MAX];

	cpu_thread_app();
	for (uint64_t i = 0; !stopping(w->ctl); i++) {
		enum bench_mix kind = mix_pick(sc->mix, i);
		make_token(token, sizeof(token), w->idx, w->k + 1, i);
		ssize_t n = encode_request(rq->cmd, cap, kind, token, o->large_bytes);
		if (n < 0) {
			wstats_error(&w->st, "encode failed");
			break;
		}
		rq->cmd_len = (size_t)n;
		rq->srv = (unsigned)((w->k + i) % servers);
		/* Relaxed: published by bb_submit's release. */
		atomic_store_explicit(&rq->state, BB_PENDING, memory_order_relaxed);
		uint64_t t_send = pace(sc, w->base, w->k, i);
		bb_submit(w->io, rq);
		int rc = bb_wait(rq, now_ns() + (uint64_t)o->timeout_ms * 1000000u);
		uint64_t t = now_ns();
		if (rc != 0) {
			/* The request stays with the I/O thread, which may still
			 * complete it: this worker stops using it. */
			w->st.lost++;
			wstats_error(&w->st, "no reply to %s within %u ms", token, o->timeout_ms);
			break;
		}
		if (rq->status != 0) {
			w->st.lost++;
			wstats_error(&w->st, "%s: connection: %s", token,
			    rq->status > -4096 ? strerror(-rq->status) : "protocol");
			break;
		}
		struct rawreply rep = {
		    .api = rq->api,
		    .body = rq->body,
		    .body_len = rq->body_len,
		    .reply_text = rq->has_text ? rq->text : NULL,
		    .reply_text_len = rq->text_len,
		    .job_uuid = rq->has_job ? rq->job : NULL,
		    .job_uuid_len = rq->job_len,
		};
		w->st.total++;
		check_raw_reply(&w->st, kind, token, &rep, o->large_bytes);
		if (measuring(w->ctl)) {
			w->st.commands++;
			hist_record(&w->st.lat, t - t_send);
			ctl_progress(w->ctl);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* I/O thread                                                           */
/* ------------------------------------------------------------------ */

static void
bb_io_error(struct bb_io *io, const char *what, int rc)
{
	io->errors++;
	if (!io->first_error[0])
		snprintf(io->first_error, sizeof(io->first_error), "%s: %s", what,
		    rc > -4096 ? strerror(-rc) : "protocol");
}

static void
bb_complete(struct bb_io *io, struct bb_req *rq, int status)
{
	rq->status = status;
	/* Release: the copied reply before DONE (the worker's acquire). */
	uint32_t old = atomic_exchange_explicit(&rq->state, BB_DONE, memory_order_acq_rel);
	if (old == BB_SLEEPING)
		waker_add(&io->wk, &rq->state);
}

static void
bb_conn_fail(struct bb_io *io, struct bb_conn *c, int rc)
{
	if (c->dead)
		return;
	c->dead = true;
	(void)epoll_ctl(io->ep, EPOLL_CTL_DEL, c->c.fd, NULL);
	bb_io_error(io, c->events_only ? "event connection" : "connection", rc);
	for (; c->n; c->n--, c->head = (c->head + 1) % c->cap)
		bb_complete(io, c->fifo[c->head], rc);
	c->out_len = 0;
}

static void
copy_reply(struct bb_req *rq, const struct rawreply *rep)
{
	rq->api = rep->api;
	rq->body_len = 0;
	if (rep->body_len) {
		if (rep->body_len > rq->body_cap) {
			char *nb = realloc(rq->body, rep->body_len);
			if (!nb)
				abort();
			rq->body = nb;
			rq->body_cap = rep->body_len;
		}
		memcpy(rq->body, rep->body, rep->body_len);
		rq->body_len = rep->body_len;
	}
	rq->has_text = rep->reply_text != NULL;
	rq->text_len =
	    rep->reply_text_len < sizeof(rq->text) ? rep->reply_text_len : sizeof(rq->text) - 1;
	if (rq->has_text)
		memcpy(rq->text, rep->reply_text, rq->text_len);
	rq->has_job = rep->job_uuid != NULL;
	rq->job_len = rep->job_uuid_len < sizeof(rq->job) ? rep->job_uuid_len : sizeof(rq->job) - 1;
	if (rq->has_job)
		memcpy(rq->job, rep->job_uuid, rq->job_len);
}

/* Matches every complete reply already read to its request, in order. */
static void
bb_parse(struct bb_io *io, struct bb_conn *c)
{
	struct rawreply rep;
	uint64_t events = 0;
	int rc;
	while ((rc = rawconn_parse(&c->c, &rep, &events)) > 0) {
		if (c->events_only)
			continue; /* nothing but the subscription's +OK, long gone */
		if (!c->n) {
			bb_io_error(io, "reply nobody asked for", -EPROTO);
			continue;
		}
		struct bb_req *rq = c->fifo[c->head];
		c->head = (c->head + 1) % c->cap;
		c->n--;
		copy_reply(rq, &rep);
		bb_complete(io, rq, 0);
	}
	if (events)
		atomic_fetch_add_explicit(&io->events, events, memory_order_relaxed);
	if (rc < 0)
		bb_conn_fail(io, c, rc);
}

/* Reads until the socket is empty (a read that did not fill the room). */
static void
bb_read(struct bb_io *io, struct bb_conn *c)
{
	for (;;) {
		size_t room = 0;
		ssize_t n = rawconn_recv(&c->c, &room);
		if (n < 0) {
			bb_parse(io, c); /* what came before the end still counts */
			bb_conn_fail(io, c, (int)n);
			return;
		}
		bb_parse(io, c);
		if (c->dead || (size_t)n < room)
			return;
	}
}

/* The least busy live connection to server srv, or NULL. */
static struct bb_conn *
bb_pick(struct bb_io *io, unsigned srv)
{
	struct bb_conn *best = NULL;
	for (unsigned i = srv * io->cps; i < (srv + 1) * io->cps; i++) {
		struct bb_conn *c = &io->conns[i];
		if (!c->dead && (!best || c->n < best->n))
			best = c;
	}
	return best;
}

static int
out_append(struct bb_conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t ncap = c->out_cap ? c->out_cap : 4096;
		while (ncap < c->out_len + n)
			ncap *= 2;
		char *nb = realloc(c->out, ncap);
		if (!nb)
			return -ENOMEM;
		c->out = nb;
		c->out_cap = ncap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Takes every pushed request, queues it on a connection, writes each
 * connection once. */
static void
bb_intake(struct bb_io *io)
{
	/* Acquire: pairs with the workers' release CAS. */
	struct bb_req *l = atomic_exchange_explicit(&io->head, NULL, memory_order_acquire);
	struct bb_req *fifo = NULL;
	if (!l)
		return;
	while (l) { /* the stack is newest first */
		struct bb_req *n = l->next;
		l->next = fifo;
		fifo = l;
		l = n;
	}
	for (struct bb_req *rq = fifo, *next; rq; rq = next) {
		next = rq->next;
		struct bb_conn *c = bb_pick(io, rq->srv);
		if (!c) {
			bb_complete(io, rq, -ENOTCONN);
			continue;
		}
		if (c->n == c->cap || out_append(c, rq->cmd, rq->cmd_len) != 0) {
			bb_complete(io, rq, -ENOBUFS);
			continue;
		}
		c->fifo[(c->head + c->n) % c->cap] = rq;
		c->n++;
		if (!c->dirty) {
			c->dirty = true;
			io->dirty[io->n_dirty++] = (unsigned)(c - io->conns);
		}
	}
	for (unsigned i = 0; i < io->n_dirty; i++) {
		struct bb_conn *c = &io->conns[io->dirty[i]];
		c->dirty = false;
		if (c->dead || !c->out_len)
			continue;
		size_t before = c->c.len;
		int rc = rawconn_write(&c->c, c->out, c->out_len);
		c->out_len = 0;
		if (rc != 0) {
			bb_conn_fail(io, c, rc);
			continue;
		}
		/* A full socket made the write read replies meanwhile. */
		if (c->c.len != before)
			bb_parse(io, c);
	}
	io->n_dirty = 0;
}

static void *
bb_io_main(void *arg)
{
	struct bb_io *io = arg;
	struct epoll_event evs[64];
	char why[160] = "";

	if (waker_init(&io->wk, io->sc->wake, why, sizeof(why)) != 0) {
		snprintf(io->note, sizeof(io->note), "%s unavailable (%.60s): ran with %s",
		    wake_tech_name(io->sc->wake), why, wake_tech_name(WAKE_FUTEX));
		(void)waker_init(&io->wk, WAKE_FUTEX, why, sizeof(why));
	}
	/* Acquire: pairs with run_blocking's release store of quit. */
	while (!atomic_load_explicit(&io->quit, memory_order_acquire)) {
		bb_intake(io);
		atomic_store_explicit(&io->sleeping, 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst); /* see bb_submit */
		int timeout = -1;
		if (atomic_load_explicit(&io->head, memory_order_relaxed)) {
			atomic_store_explicit(&io->sleeping, 0, memory_order_relaxed);
			timeout = 0;
		}
		int n = epoll_wait(io->ep, evs, 64, timeout);
		atomic_store_explicit(&io->sleeping, 0, memory_order_relaxed);
		for (int i = 0; i < n; i++) {
			uint32_t tag = evs[i].data.u32;
			if (tag == BB_DOORBELL) {
				uint64_t v;
				(void)!read(io->efd, &v, sizeof(v));
			} else {
				bb_read(io, &io->conns[tag]);
			}
		}
		/* Once per turn, after the read pass: the batch of wakes. */
		waker_flush(&io->wk);
		atomic_store_explicit(&io->wake_syscalls, io->wk.syscalls, memory_order_relaxed);
	}
	if (io->wk.fallbacks && !io->note[0])
		snprintf(io->note, sizeof(io->note), "%llu io_uring wakes fell back to FUTEX_WAKE",
		    (unsigned long long)io->wk.fallbacks);
	waker_fini(&io->wk);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The scenario                                                         */
/* ------------------------------------------------------------------ */

struct bb_snap {
	struct bb_io *io;
	uint64_t wake0, wake1, bell0, bell1;
};

static void
bb_hook(void *ud, int which)
{
	struct bb_snap *s = ud;
	/* Relaxed: counters, read at the window's edges. */
	uint64_t w = atomic_load_explicit(&s->io->wake_syscalls, memory_order_relaxed);
	uint64_t b = atomic_load_explicit(&s->io->doorbells, memory_order_relaxed);
	if (which) {
		s->wake1 = w;
		s->bell1 = b;
	} else {
		s->wake0 = w;
		s->bell0 = b;
	}
}

static int
bb_subscribe(struct bb_conn *c, char *err, size_t errlen)
{
	static const char sub[] = "event plain CUSTOM " FLOOD_SUBCLASS "\n\n";
	struct rawreply rep;
	int rc = rawconn_write(&c->c, sub, sizeof(sub) - 1);
	if (rc == 0)
		rc = rawconn_next(&c->c, &rep, 5000, NULL);
	if (rc <= 0 || rep.api || !rep.reply_text || rep.reply_text_len < 3 ||
	    memcmp(rep.reply_text, "+OK", 3) != 0) {
		snprintf(err, errlen, "event subscription refused or lost");
		return rc < 0 ? rc : -EPROTO;
	}
	return 0;
}

void
run_blocking(const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r)
{
	const struct bench_opts *o = env->o;
	struct run_ctl ctl = {PH_WARMUP, 0, 0, false};
	struct window_snap snap;
	struct bb_snap bs;
	struct flood floods[BENCH_MAX_SERVERS];
	unsigned n_floods = 0, started = 0, opened = 0;
	bool io_running = false, flooding = false;
	char err[160];
	unsigned servers = sc->servers ? sc->servers : 1;
	if (servers > env->n_targets)
		servers = env->n_targets;
	struct bb_io *io = calloc(1, sizeof(*io));
	struct bb_worker *wk = calloc(sc->workers, sizeof(*wk));
	if (!io || !wk) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory");
		goto out_free;
	}
	io->env = env;
	io->sc = sc;
	io->cps = sc->conns_per_server ? sc->conns_per_server : 1;
	io->n_cmd = servers * io->cps;
	io->n_conns = io->n_cmd + (sc->event_rate ? servers : 0);
	io->conns = calloc(io->n_conns, sizeof(*io->conns));
	io->dirty = calloc(io->n_cmd, sizeof(*io->dirty));
	io->ep = epoll_create1(EPOLL_CLOEXEC);
	io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!io->conns || !io->dirty || io->ep < 0 || io->efd < 0) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "out of memory or descriptors");
		goto out_close;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = BB_DOORBELL};
	(void)epoll_ctl(io->ep, EPOLL_CTL_ADD, io->efd, &ev);
	/* Connect everything first: connection set-up is not measured. */
	for (; opened < io->n_conns; opened++) {
		struct bb_conn *c = &io->conns[opened];
		unsigned srv = opened < io->n_cmd ? opened / io->cps : opened - io->n_cmd;
		c->events_only = opened >= io->n_cmd;
		c->cap = sc->workers + 1;
		c->fifo = calloc(c->cap, sizeof(*c->fifo));
		if (!c->fifo || rawconn_open(&c->c, &env->targets[srv], err, sizeof(err)) != 0) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error), "%s",
			    c->fifo ? err : "out of memory");
			break;
		}
		c->open = true;
		if (c->events_only && bb_subscribe(c, err, sizeof(err)) != 0) {
			r->errors++;
			snprintf(r->first_error, sizeof(r->first_error), "%s", err);
			break;
		}
		ev.data.u32 = opened;
		(void)epoll_ctl(io->ep, EPOLL_CTL_ADD, c->c.fd, &ev);
	}
	if (opened < io->n_conns)
		goto out_close;
	r->connections = io->n_cmd;
	if (sc->event_rate) {
		/* The rate is the total: split over the servers. */
		unsigned per = (sc->event_rate + servers - 1) / servers;
		if (env->sim) {
			flooding = simhost_flood(per, servers) == 0;
		} else {
			for (; n_floods < servers; n_floods++)
				if (flood_start(&floods[n_floods], &env->targets[n_floods], per) !=
				    0) {
					r->errors++;
					snprintf(r->first_error, sizeof(r->first_error),
					    "event flood: %.120s", floods[n_floods].err);
					goto out_flood;
				}
		}
	}
	if (pthread_create(&io->tid, NULL, bb_io_main, io) != 0) {
		snprintf(r->skip_reason, sizeof(r->skip_reason), "pthread_create failed");
		goto out_flood;
	}
	io_running = true;
	uint64_t base = now_ns();
	size_t cap = BENCH_TOKEN_MAX + 512 + o->large_bytes;
	for (; started < sc->workers; started++) {
		struct bb_worker *w = &wk[started];
		w->io = io;
		w->env = env;
		w->sc = sc;
		w->idx = idx;
		w->k = started;
		w->ctl = &ctl;
		w->base = base;
		hist_reset(&w->st.lat);
		w->req.cmd = malloc(cap);
		w->req.body_cap = 256 + o->large_bytes;
		w->req.body = malloc(w->req.body_cap);
		if (!w->req.cmd || !w->req.body ||
		    pthread_create(&w->tid, NULL, bb_worker_main, w) != 0)
			break;
	}
	if (started < sc->workers) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "only %u of %u threads started",
		    started, sc->workers);
	}
	memset(&bs, 0, sizeof(bs));
	bs.io = io;
	run_window(env, &ctl, &snap, bb_hook, &bs);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(wk[i].tid, NULL);
		result_add(r, &wk[i].st);
	}
	result_finish(r, &snap);
	if (r->commands) {
		r->submit_syscalls_per_cmd = (double)(bs.bell1 - bs.bell0) / (double)r->commands;
		r->wake_syscalls_per_cmd = (double)(bs.wake1 - bs.wake0) / (double)r->commands;
	}
out_flood:
	if (flooding)
		(void)simhost_flood(0, 0);
	for (unsigned i = 0; i < n_floods; i++) {
		flood_stop(&floods[i]);
		r->errors += floods[i].errors;
	}
	if (io_running) {
		/* Release: pairs with the I/O thread's acquire load. */
		atomic_store_explicit(&io->quit, true, memory_order_release);
		uint64_t one = 1;
		(void)!write(io->efd, &one, sizeof(one));
		pthread_join(io->tid, NULL);
		r->events += atomic_load_explicit(&io->events, memory_order_relaxed);
		r->errors += io->errors;
		if (io->first_error[0] && !r->first_error[0])
			snprintf(r->first_error, sizeof(r->first_error), "%s", io->first_error);
		if (io->note[0])
			snprintf(r->note, sizeof(r->note), "%s", io->note);
	}
out_close:
	for (unsigned i = 0; i < io->n_conns && io->conns; i++) {
		if (io->conns[i].open)
			rawconn_close(&io->conns[i].c);
		free(io->conns[i].fifo);
		free(io->conns[i].out);
	}
	if (io->ep >= 0)
		close(io->ep);
	if (io->efd >= 0)
		close(io->efd);
	free(io->conns);
	free(io->dirty);
out_free:
	for (unsigned i = 0; wk && i < sc->workers; i++) {
		free(wk[i].req.cmd);
		free(wk[i].req.body);
	}
	free(wk);
	free(io);
}
