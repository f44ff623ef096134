/*
 * reactor.c - the one thread that owns every ESL socket.
 *
 * Each loop turn runs fixed phases (docs/engine.md):
 *   1. doorbell awake, drain the submission rings (bounded per turn)
 *   2. write: queued requests move into flight on the least-loaded READY
 *      connection (up to max_in_flight); one send() per dirty connection;
 *      EPOLLOUT only after a short write
 *   3. epoll_wait, timeout from the timer heap (0 if work is pending);
 *      before sleeping the doorbell protocol (prepare_sleep + re-drain)
 *   4. read: recv into a big buffer, parse many messages per recv, match
 *      command/reply and api/response FIFO, events to their own path
 *   5. timers: async deadlines, connect timeouts, reconnect backoff and a
 *      housekeeping tick (overdue heads, abandoned places, idle servers)
 *   6. wakes: the turn's completions recorded the wakes their sleeping
 *      callers need in the wake batch; one flush hands them all to the
 *      kernel (one io_uring_enter, or one FUTEX_WAKE each on older
 *      kernels). Also flushed before anything that may sleep: the spin
 *      poll, epoll_wait, shutdown.
 *
 * Nothing here blocks: sockets and connects are non-blocking, names were
 * resolved by the caller, user callbacks must not block, and every
 * per-connection loop is bounded (messages per turn, recv calls per turn).
 *
 * Timed-out requests keep their FIFO place (the completion CAS decides
 * who owns the outcome); their late replies are read and dropped. A
 * connection that collects too many abandoned places, or whose head is far
 * overdue once no request on it can still be answered in time, is
 * recycled: what it had in flight fails with FSESL_EDISCONNECTED (outcome
 * unknown), what was only queued moves on.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_int.h"

_Thread_local struct fsesl_engine *fsesl_on_reactor;
/* The reactor's wake batch, on the reactor thread only (NULL elsewhere, or
 * when it could not be made): completions record their wakes in it. */
static _Thread_local struct fsesl_wakeb_st *rx_wakes;

#define DRAIN_MAX 4096u /* ring items per turn */
#define MSGS_PER_TURN 1024u /* messages parsed per connection per turn */
#define RECVS_PER_TURN 4u /* recv calls per connection per turn */
#define IN_BUF_INIT (128u * 1024u)
#define OUT_BUF_INIT (16u * 1024u)
#define HOUSEKEEPING_NS (250ull * 1000000ull)
#define MAX_EVENTS 256

static void conn_fail(struct fsesl_engine *e, struct fsesl_conn *c, int err);
static void conn_start(struct fsesl_engine *e, struct fsesl_conn *c);
static void srv_mark_dirty(struct fsesl_engine *e, struct fsesl_srv *s);

/* ------------------------------------------------------------------ */
/* Timer heap                                                            */
/* ------------------------------------------------------------------ */

void
fsesl_timer_init(struct fsesl_timer *t, void (*fn)(struct fsesl_timer *, void *), void *arg)
{

	t->idx = ~0u;
	t->fn = fn;
	t->arg = arg;
}

static bool
t_less(const struct fsesl_timer *a, const struct fsesl_timer *b)
{

	return a->when_ns < b->when_ns || (a->when_ns == b->when_ns && a->seq < b->seq);
}

static void
heap_swap(struct fsesl_heap *h, unsigned int i, unsigned int j)
{
	struct fsesl_timer *t = h->v[i];

	h->v[i] = h->v[j];
	h->v[j] = t;
	h->v[i]->idx = i;
	h->v[j]->idx = j;
}

static void
heap_up(struct fsesl_heap *h, unsigned int i)
{

	while (i > 0 && t_less(h->v[i], h->v[(i - 1) / 2])) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct fsesl_heap *h, unsigned int i)
{
	unsigned int l, m;

	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < h->n && t_less(h->v[l], h->v[m]))
			m = l;
		if (l + 1 < h->n && t_less(h->v[l + 1], h->v[m]))
			m = l + 1;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

int
fsesl_timer_arm(struct fsesl_heap *h, struct fsesl_timer *t, uint64_t when_ns)
{
	struct fsesl_timer **v;

	fsesl_timer_disarm(h, t);
	if (h->n == h->cap) {
		unsigned int cap = h->cap ? h->cap * 2 : 64;

		v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	t->when_ns = when_ns;
	t->seq = h->seq++;
	t->idx = h->n;
	h->v[h->n++] = t;
	heap_up(h, t->idx);
	return 0;
}

void
fsesl_timer_disarm(struct fsesl_heap *h, struct fsesl_timer *t)
{
	unsigned int i = t->idx;

	if (i == ~0u)
		return;
	t->idx = ~0u;
	h->n--;
	if (i == h->n)
		return;
	h->v[i] = h->v[h->n];
	h->v[i]->idx = i;
	heap_down(h, i);
	heap_up(h, h->v[i]->idx);
}

static void
timers_run(struct fsesl_engine *e)
{
	struct fsesl_heap *h = &e->timers;
	struct fsesl_timer *t;
	/* Timers armed by a handler for "now" run next turn, not in a loop. */
	unsigned int budget = h->n;

	while (h->n && budget--) {
		t = h->v[0];
		if (t->when_ns > e->now_ns)
			break;
		fsesl_timer_disarm(h, t);
		t->fn(t, t->arg);
	}
}

/* ------------------------------------------------------------------ */
/* Requests                                                              */
/* ------------------------------------------------------------------ */

void
fsesl_req_free(struct fsesl_req *r)
{

	if (r->job_ev)
		fsesl_event_free(r->job_ev);
	if (r->kind == FSESL_REQ_SUBCTL)
		fsesl_subctl_free(r);
	free(r);
}

static unsigned int
hist_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int b = 0;

	if (us >= 2)
		b = 63u - (unsigned int)__builtin_clzll(us);
	if (b >= FSESL_LATENCY_BUCKETS)
		b = FSESL_LATENCY_BUCKETS - 1;
	return b;
}

/* The wake batch's release: it held the request's last reference. */
static void
req_cpl_free(struct fsesl_cpl *c)
{

	fsesl_req_free((struct fsesl_req *)((char *)c - offsetof(struct fsesl_req, cpl)));
}

static void
batch_cpl_free(struct fsesl_cpl *c)
{

	free((char *)c - offsetof(struct fsesl_batch, cpl));
}

/* A completion on the reactor: a sleeping waiter's wake goes into this
 * turn's batch, flushed by reactor_main before anything that sleeps; the
 * batch holds its own reference meanwhile (the TEARDOWN RULE). Off the
 * reactor, or without a batch, the wake is issued at once. */
static bool
rx_complete(struct fsesl_engine *e, struct fsesl_cpl *c, uint32_t state, fsesl_cpl_release_fn fn)
{

	if (rx_wakes != NULL)
		return fsesl_cpl_complete_batched(c, state, rx_wakes, fn);
	if (atomic_load_explicit(&c->state, memory_order_relaxed) & FSESL_CPL_SLEEPING)
		FSESL_STAT_ADD(e->futex_wakes, 1);
	return fsesl_cpl_complete(c, state, e->ops);
}

bool
fsesl_rx_complete(struct fsesl_engine *e, struct fsesl_req *r, uint32_t state)
{

	return rx_complete(e, &r->cpl, state, req_cpl_free);
}

/* The reactor is finished with r: drop its server reference and its
 * completion reference (the last one frees). */
static void
req_done(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;

	/* A job leaves two places (command path, job table); the reactor's
	 * one reference goes with the last. */
	if (r->kind == FSESL_REQ_JOB && r->holds > 1) {
		r->holds--;
		return;
	}
	if (s && fsesl_cpl_state(&r->cpl) == FSESL_CPL_TIMEDOUT && !r->timeout_counted)
		FSESL_STAT_ADD(s->st.timeouts, 1);
	if (r->is_async)
		fsesl_timer_disarm(&e->timers, &r->timer);
	if (fsesl_cpl_release(&r->cpl))
		fsesl_req_free(r);
	if (s)
		fsesl_srv_unref(s);
}

/* Completes r with an error (not a reply); ESHUTDOWN is a cancellation. */
static void
req_fail(struct fsesl_engine *e, struct fsesl_req *r, int err)
{

	if (r->kind == FSESL_REQ_JOB) {
		if (err == FSESL_EDISCONNECTED || err == FSESL_EPROTO)
			err = FSESL_EJOBLOST; /* the job may run; its result is lost */
		if (r->in_table) {
			fsesl_job_unlink(r->srv, r);
			r->holds--;
		}
	}
	r->status = err;
	r->reply = NULL;
	(void)fsesl_rx_complete(
	    e, r, err == FSESL_ESHUTDOWN ? FSESL_CPL_CANCELLED : FSESL_CPL_FAILED);
	req_done(e, r);
}

void
fsesl_rx_req_done(struct fsesl_engine *e, struct fsesl_req *r)
{

	req_done(e, r);
}

/* Completes a request that carries no reply object (control requests):
 * status 0 is DONE, anything else FAILED. */
void
fsesl_rx_req_finish(struct fsesl_engine *e, struct fsesl_req *r, int status)
{

	r->status = status;
	r->reply = NULL;
	(void)fsesl_rx_complete(e, r, status == 0 ? FSESL_CPL_DONE : FSESL_CPL_FAILED);
	req_done(e, r);
}

/* Async callbacks: run by fsesl_cpl_complete() on the reactor thread. */
static void
async_cpl_cb(struct fsesl_cpl *c, uint32_t state, void *arg)
{
	struct fsesl_req *r = arg;
	int status;

	(void)c;
	status = state == FSESL_CPL_DONE ? r->status : fsesl_req_fail_code(state, r->status);
	r->cb(status, state == FSESL_CPL_DONE ? r->reply : NULL, r->ud);
}

void
fsesl_req_set_async(struct fsesl_req *r, fsesl_reply_cb cb, void *ud)
{

	r->is_async = true;
	r->cb = cb;
	r->ud = ud;
	fsesl_cpl_init(&r->cpl, 1, async_cpl_cb, r);
}

/* A batch item's outcome goes to its slot; the reply is handed over. */
static void
batch_cpl_cb(struct fsesl_cpl *c, uint32_t state, void *arg)
{
	struct fsesl_req *r = arg;
	struct fsesl_batch *b = r->batch;
	size_t i = r->batch_idx;

	(void)c;
	if (state == FSESL_CPL_DONE) {
		b->statuses[i] = r->status;
		b->replies[i] = r->reply;
		r->reply = NULL;
	} else {
		b->statuses[i] = fsesl_req_fail_code(state, r->status);
		b->replies[i] = NULL;
	}
	fsesl_batch_item_done(b);
}

void
fsesl_req_set_batch(struct fsesl_req *r, struct fsesl_batch *b, size_t idx)
{

	r->is_async = true; /* the reactor keeps its deadline */
	r->batch = b;
	r->batch_idx = idx;
	fsesl_cpl_init(&r->cpl, 1, batch_cpl_cb, r);
}

void
fsesl_batch_item_done(struct fsesl_batch *b)
{

	/* acq_rel: this item's slot writes come before its decrement, and
	 * the last decrementer sees every other item's; its complete()
	 * (release) publishes them all to the waiter's acquire. */
	if (atomic_fetch_sub_explicit(&b->remaining, 1, memory_order_acq_rel) != 1)
		return;
	if (rx_wakes != NULL)
		(void)fsesl_cpl_complete_batched(&b->cpl, FSESL_CPL_DONE, rx_wakes, batch_cpl_free);
	else
		(void)fsesl_cpl_complete(&b->cpl, FSESL_CPL_DONE, b->ops);
	if (fsesl_cpl_release(&b->cpl))
		free(b);
}

static void
async_deadline(struct fsesl_timer *t, void *arg)
{
	struct fsesl_req *r = arg;
	struct fsesl_engine *e = r->srv->e;

	(void)t;
	/* The request keeps its queue or FIFO place; only its outcome is
	 * decided here. */
	r->status = -ETIMEDOUT;
	/* Counted before the hand-off, so that a caller reading its stats
	 * after its callback (or batch) sees it; taken back if it lost. */
	FSESL_STAT_ADD(r->srv->st.timeouts, 1);
	r->timeout_counted = true;
	if (!fsesl_rx_complete(e, r, FSESL_CPL_TIMEDOUT)) {
		FSESL_STAT_SUB(r->srv->st.timeouts, 1);
		r->timeout_counted = false;
	}
}

/* ------------------------------------------------------------------ */
/* Buffers                                                               */
/* ------------------------------------------------------------------ */

static int
buf_reserve(struct fsesl_buf *b, size_t want)
{
	size_t cap;
	char *p;

	if (b->off && (b->cap - b->len < want || b->off == b->len)) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len >= want)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < want)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                               */
/* ------------------------------------------------------------------ */

static void
conn_mark_dirty(struct fsesl_engine *e, struct fsesl_conn *c)
{

	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = e->dirty_head;
	e->dirty_head = c;
}

void
fsesl_rx_mark_dirty(struct fsesl_engine *e, struct fsesl_conn *c)
{

	conn_mark_dirty(e, c);
}

static void
conn_set_out(struct fsesl_engine *e, struct fsesl_conn *c, bool on)
{
	struct epoll_event ev;

	if (c->out_armed == on || c->fd < 0)
		return;
	ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->out_armed = on;
}

/* One send() of everything pending; false if the connection failed. */
static bool
conn_flush(struct fsesl_engine *e, struct fsesl_conn *c)
{
	size_t pending = c->out.len - c->out.off;
	ssize_t n;

	if (c->fd < 0 || pending == 0 || c->state == FSESL_CONN_CONNECTING)
		return true;
	n = send(c->fd, c->out.p + c->out.off, pending, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			conn_set_out(e, c, true);
			return true;
		}
		conn_fail(e, c, c->state == FSESL_CONN_READY ? FSESL_EDISCONNECTED : -errno);
		return false;
	}
	FSESL_STAT_ADD(c->srv->st.bytes_out, (uint64_t)n);
	c->out.off += (size_t)n;
	if (c->out.off == c->out.len) {
		c->out.off = c->out.len = 0;
		conn_set_out(e, c, false);
	} else {
		conn_set_out(e, c, true);
	}
	return true;
}

/*
 * A head whose reply is far beyond any honest slow reply: 2 x its timeout
 * + 1 s after it was written. Such a connection is suspect (a stuck server,
 * a lost reply): it takes no new request, and housekeeping recycles it once
 * nothing on it can still be answered in time (conn_check_overdue).
 */
static bool
conn_head_late(const struct fsesl_engine *e, const struct fsesl_conn *c)
{
	const struct fsesl_req *r = c->fifo_head;

	return r && e->now_ns > r->written_ns + 2ull * r->timeout_ms * 1000000ull + 1000000000ull;
}

static bool
conn_takes_more(const struct fsesl_engine *e, const struct fsesl_conn *c)
{

	return c->state == FSESL_CONN_READY && c->in_flight < e->cfg.max_in_flight &&
	       !conn_head_late(e, c);
}

static struct fsesl_conn *
pick_conn(struct fsesl_engine *e, struct fsesl_srv *s)
{
	struct fsesl_conn *best = NULL;
	unsigned int i;
	/* With a pool and subscriptions, connection 0 carries the events:
	 * keep commands off it while another connection can take them, since
	 * a busy pipeline starves the server's event flushing (protocol.md §9.3). */
	unsigned int first = s->n_conns > 1 && s->subs ? 1 : 0;

	for (i = first; i < s->n_conns; i++) {
		struct fsesl_conn *c = &s->conns[i];

		if (!conn_takes_more(e, c))
			continue;
		if (!best || c->in_flight < best->in_flight)
			best = c;
	}
	if (!best && first && conn_takes_more(e, &s->conns[0]))
		best = &s->conns[0];
	return best;
}

static bool
srv_has_attempt(const struct fsesl_srv *s)
{
	unsigned int i;

	/* A connection that just dropped counts as trying: its immediate
	 * retry is armed, commands wait for it rather than fail. */
	for (i = 0; i < s->n_conns; i++)
		if (s->conns[i].state != FSESL_CONN_IDLE || s->conns[i].retry_soon)
			return true;
	return false;
}

/* Appends r to a head/tail list of requests (a server queue, a FIFO). */
static inline void
req_append(struct fsesl_req **head, struct fsesl_req **tail, struct fsesl_req *r)
{

	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

/* Puts r on the wire of c: its bytes into the output buffer (reserved by
 * the caller), its place at the end of the FIFO. */
static void
conn_write_req(struct fsesl_engine *e, struct fsesl_conn *c, struct fsesl_req *r)
{

	memcpy(c->out.p + c->out.len, r->buf, r->len);
	c->out.len += r->len;
	r->written_ns = e->now_ns;
	req_append(&c->fifo_head, &c->fifo_tail, r);
	c->in_flight++;
	FSESL_STAT_ADD(c->srv->st.in_flight, 1);
	FSESL_STAT_ADD(c->srv->st.commands_sent, 1);
	conn_mark_dirty(e, c);
}

static struct fsesl_req *
srv_q_pop(struct fsesl_srv *s)
{
	struct fsesl_req *r = s->q_head;

	s->q_head = r->next;
	if (!s->q_head)
		s->q_tail = NULL;
	r->next = NULL;
	s->n_queued--;
	FSESL_STAT_SUB(s->st.queued, 1);
	return r;
}

static void
srv_fail_queued(struct fsesl_engine *e, struct fsesl_srv *s, int err)
{

	while (s->q_head)
		req_fail(e, srv_q_pop(s), err);
}

static int
srv_down_error(const struct fsesl_srv *s)
{
	int err = atomic_load_explicit(&s->st.last_error, memory_order_relaxed);

	/* Never sent, so never "outcome unknown". */
	return err && err != FSESL_EDISCONNECTED && err != FSESL_EPROTO ? err : FSESL_ENOTCONNECTED;
}

/* Moves queued requests into flight. */
static void
srv_assign(struct fsesl_engine *e, struct fsesl_srv *s)
{
	struct fsesl_conn *c;
	struct fsesl_req *r;

	while (s->q_head) {
		r = s->q_head;
		if (fsesl_cpl_state(&r->cpl) != FSESL_CPL_PENDING) {
			/* Timed out while queued: never written, nothing to
			 * keep a place for. */
			req_done(e, srv_q_pop(s));
			continue;
		}
		c = pick_conn(e, s);
		if (!c) {
			if (!srv_has_attempt(s))
				srv_fail_queued(e, s, srv_down_error(s));
			return;
		}
		if (buf_reserve(&c->out, r->len) != 0) {
			req_fail(e, srv_q_pop(s), -ENOMEM);
			continue;
		}
		conn_write_req(e, c, srv_q_pop(s));
	}
}

static void
write_phase(struct fsesl_engine *e)
{
	struct fsesl_srv *s;
	struct fsesl_conn *c;

	while ((s = e->dirty_srv) != NULL) {
		e->dirty_srv = s->dirty_next;
		s->dirty = false;
		srv_assign(e, s);
	}
	while ((c = e->dirty_head) != NULL) {
		e->dirty_head = c->dirty_next;
		c->dirty = false;
		(void)conn_flush(e, c);
	}
}

static void
srv_mark_dirty(struct fsesl_engine *e, struct fsesl_srv *s)
{

	if (s->dirty)
		return;
	s->dirty = true;
	s->dirty_next = e->dirty_srv;
	e->dirty_srv = s;
}

/* ------------------------------------------------------------------ */
/* Connections                                                           */
/* ------------------------------------------------------------------ */

static uint32_t
rnd(struct fsesl_engine *e)
{
	uint32_t x = e->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	e->rng = x;
	return x;
}

static void
conn_timer_fired(struct fsesl_timer *t, void *arg)
{
	struct fsesl_conn *c = arg;
	struct fsesl_engine *e = c->srv->e;

	(void)t;
	if (c->state == FSESL_CONN_IDLE)
		conn_start(e, c); /* backoff over: next attempt */
	else if (c->state != FSESL_CONN_READY)
		conn_fail(e, c, FSESL_ECONNTIMEOUT);
}

/* OpenSIPS's schedule: backoff_s[(failures - 1) / step_every], the last
 * step repeating, with +-10 % jitter (from `random`) so that many clients
 * do not retry in lock step. Pure, so the schedule is unit-tested. */
uint64_t
fsesl_backoff_ns(const fsesl_config *cfg, unsigned int failures, uint32_t random)
{
	unsigned int every = cfg->backoff_step_every ? cfg->backoff_step_every : 1;
	unsigned int step = (failures ? failures - 1 : 0) / every;
	uint64_t ns;

	if (!cfg->backoff_steps)
		return 0;
	if (step >= cfg->backoff_steps)
		step = cfg->backoff_steps - 1;
	ns = (uint64_t)cfg->backoff_s[step] * 1000000000ull;
	if (ns)
		ns = ns - ns / 10 + (random % (ns / 5 + 1));
	return ns;
}

static uint64_t
backoff_ns(struct fsesl_engine *e, unsigned int failures)
{

	return fsesl_backoff_ns(&e->cfg, failures, rnd(e));
}

static void
conn_close_fd(struct fsesl_engine *e, struct fsesl_conn *c)
{

	if (c->fd >= 0) {
		(void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		(void)close(c->fd);
		c->fd = -1;
	}
	c->out_armed = false;
	c->in.len = c->in.off = 0;
	c->out.len = c->out.off = 0;
	c->parse_last = 0;
}

/* Fails everything in flight on c: written, so outcome unknown
 * (FSESL_EDISCONNECTED, or FSESL_EPROTO when the stream broke the protocol). */
static void
conn_fail_fifo(struct fsesl_engine *e, struct fsesl_conn *c, int err)
{
	struct fsesl_req *r;

	while ((r = c->fifo_head) != NULL) {
		c->fifo_head = r->next;
		r->next = NULL;
		c->in_flight--;
		FSESL_STAT_SUB(c->srv->st.in_flight, 1);
		if (r->kind != FSESL_REQ_CMD && r->kind != FSESL_REQ_JOB &&
		    (err == FSESL_EDISCONNECTED || err == FSESL_EPROTO))
			/* Subscriptions are recorded and replayed at reconnect:
			 * for the caller this one is done. */
			fsesl_rx_req_finish(e, r, 0);
		else
			req_fail(e, r, err);
	}
	c->fifo_tail = NULL;
}

static void
conn_fail(struct fsesl_engine *e, struct fsesl_conn *c, int err)
{
	struct fsesl_srv *s = c->srv;
	enum fsesl_conn_state prev = c->state;
	bool stopping = atomic_load_explicit(&e->stopping, memory_order_relaxed);

	conn_close_fd(e, c);
	fsesl_timer_disarm(&e->timers, &c->timer);
	c->state = FSESL_CONN_IDLE;
	if (prev == FSESL_CONN_READY)
		atomic_fetch_sub_explicit(&s->st.connected_conns, 1, memory_order_relaxed);
	conn_fail_fifo(e, c,
	    stopping              ? FSESL_ESHUTDOWN
	    : err == FSESL_EPROTO ? FSESL_EPROTO
	                          : FSESL_EDISCONNECTED);
	if (prev == FSESL_CONN_READY && !stopping)
		fsesl_events_conn_down(e, c);
	if (stopping || prev == FSESL_CONN_IDLE)
		return;
	atomic_store_explicit(&s->st.last_error, err, memory_order_relaxed);
	if (prev == FSESL_CONN_READY) {
		/* A working connection dropped (restart, recycle): retry at
		 * once so a restarting server recovers fast. */
		fsesl_log(e, FSESL_LOG_WARN, "%s: connection %u lost: %s", s->key, c->index,
		    fsesl_strerror(err));
		c->failures = 0;
		c->was_ready = true;
		c->retry_soon = true;
		(void)fsesl_timer_arm(&e->timers, &c->timer, e->now_ns);
	} else {
		c->failures++;
		FSESL_STAT_ADD(s->st.connect_failures, 1);
		fsesl_log(e, FSESL_LOG_WARN, "%s: connect attempt %u failed: %s", s->key,
		    c->failures, fsesl_strerror(err));
		(void)fsesl_timer_arm(
		    &e->timers, &c->timer, e->now_ns + backoff_ns(e, c->failures));
		fsesl_events_attempt_failed(e, c);
		/* Requests waiting for this attempt get its specific error now
		 * (not after the next attempt has started), unless another
		 * connection of the pool is up or still trying. */
		if (!pick_conn(e, s) && !srv_has_attempt(s))
			srv_fail_queued(e, s, err);
		/* Jobs waiting for the event connection get its error too. */
		if (c->index == 0)
			fsesl_jobs_unpark(e, s, NULL, err);
	}
	/* Queued requests move to another connection, wait for an attempt
	 * still running, or fail with this error (srv_assign decides). */
	srv_mark_dirty(e, s);
}

static void
conn_start(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_srv *s = c->srv;
	struct epoll_event ev;
	int one = 1, fd, err;

	c->retry_soon = false;
	if (atomic_load_explicit(&e->stopping, memory_order_relaxed))
		return;
	fd = socket(s->addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto out_fail;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	c->fd = fd;
	c->state = FSESL_CONN_CONNECTING;
	if (connect(fd, (struct sockaddr *)s->addr, s->addrlen) == 0) {
		c->state = FSESL_CONN_GREETING;
	} else if (errno != EINPROGRESS) {
		err = -errno;
		goto out_fail;
	}
	ev.events = EPOLLIN | (c->state == FSESL_CONN_CONNECTING ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		err = -errno;
		goto out_fail;
	}
	c->out_armed = c->state == FSESL_CONN_CONNECTING;
	if (buf_reserve(&c->in, IN_BUF_INIT) != 0 || buf_reserve(&c->out, OUT_BUF_INIT) != 0) {
		err = -ENOMEM;
		goto out_fail;
	}
	/* One bound for connect + greeting + auth, as OpenSIPS's timeout
	 * but not per phase. */
	(void)fsesl_timer_arm(
	    &e->timers, &c->timer, e->now_ns + (uint64_t)e->cfg.esl_connect_timeout * 1000000ull);
	return;
out_fail:
	if (c->state == FSESL_CONN_IDLE)
		c->state = FSESL_CONN_CONNECTING; /* so conn_fail counts it */
	conn_fail(e, c, err);
}

static void
conn_send_auth(struct fsesl_engine *e, struct fsesl_conn *c)
{
	char user[256], pw[256];
	ssize_t n;

	fsesl_srv_creds(c->srv, user, sizeof(user), pw, sizeof(pw));
	if (buf_reserve(&c->out, 1024) != 0) {
		explicit_bzero(pw, sizeof(pw));
		conn_fail(e, c, -ENOMEM);
		return;
	}
	if (user[0])
		n = fsesl_encode_userauth(c->out.p + c->out.len, c->out.cap - c->out.len, user, pw);
	else
		n = fsesl_encode_auth(c->out.p + c->out.len, c->out.cap - c->out.len, pw);
	explicit_bzero(pw, sizeof(pw));
	if (n < 0) {
		conn_fail(e, c, FSESL_EAUTH);
		return;
	}
	c->out.len += (size_t)n;
	c->state = FSESL_CONN_AUTH;
	(void)conn_flush(e, c);
	/* The auth bytes leave the buffer: do not keep the password around. */
}

static void
conn_ready(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_srv *s = c->srv;

	fsesl_timer_disarm(&e->timers, &c->timer);
	c->state = FSESL_CONN_READY;
	c->ready_ns = e->now_ns;
	c->failures = 0;
	FSESL_STAT_ADD(s->st.connects, 1);
	if (c->was_ready)
		FSESL_STAT_ADD(s->st.reconnects, 1);
	atomic_fetch_add_explicit(&s->st.connected_conns, 1, memory_order_relaxed);
	atomic_store_explicit(&s->st.last_error, 0, memory_order_relaxed);
	fsesl_log(e, FSESL_LOG_INFO, "%s: connection %u ready", s->key, c->index);
	fsesl_events_conn_up(e, c); /* reads was_ready: UP only on a reconnect */
	if (c->index == 0)
		fsesl_jobs_unpark(e, s, c, 0); /* after the replayed subscriptions */
	c->was_ready = true;
	srv_mark_dirty(e, s);
}

/*
 * The wait policy's input: how long a blocking request to s takes, from
 * submit to reply, queueing behind others included (1/8 moving average).
 * Its callers spin only while this says the reply is due soon.
 */
static void
srv_learn_expect(struct fsesl_srv *s, uint64_t d)
{
	uint64_t est = atomic_load_explicit(&s->expect_ns, memory_order_relaxed);

	if (d > UINT32_MAX)
		d = UINT32_MAX;
	/* The first reply sets it; a zero would mean "unknown". */
	est = est == 0 ? d : est - est / 8 + d / 8;
	atomic_store_explicit(&s->expect_ns, (uint32_t)(est ? est : 1), memory_order_relaxed);
}

/* Pops the FIFO head and completes it with the reply in m. */
static void
conn_complete_head(struct fsesl_engine *e, struct fsesl_conn *c, const struct fsesl_msg *m)
{
	struct fsesl_srv *s = c->srv;
	struct fsesl_req *r = c->fifo_head;
	struct fsesl_reply *rep;
	unsigned int bucket;

	c->fifo_head = r->next;
	if (!c->fifo_head)
		c->fifo_tail = NULL;
	r->next = NULL;
	c->in_flight--;
	FSESL_STAT_SUB(s->st.in_flight, 1);
	/* A place is free: requests waiting for one move up this turn. */
	if (s->q_head)
		srv_mark_dirty(e, s);
	if (r->kind != FSESL_REQ_CMD) {
		fsesl_events_reply(e, r, m);
		return;
	}
	if (fsesl_cpl_state(&r->cpl) != FSESL_CPL_PENDING) {
		/* Abandoned place: the reply is read and dropped. */
		FSESL_STAT_ADD(s->st.late_replies, 1);
		req_done(e, r);
		return;
	}
	rep = fsesl_reply_from_msg(m);
	if (!rep) {
		req_fail(e, r, -ENOMEM);
		return;
	}
	r->reply = rep;
	r->status = 0;
	/* Counted before the hand-off, so a woken caller reading its stats
	 * sees its own reply; taken back if the caller's timeout won. */
	bucket = hist_bucket(e->now_ns - r->submit_ns);
	FSESL_STAT_ADD(s->st.replies, 1);
	FSESL_STAT_ADD(s->st.hist[bucket], 1);
	if (!r->is_async)
		srv_learn_expect(s, e->now_ns - r->submit_ns);
	if (fsesl_rx_complete(e, r, FSESL_CPL_DONE)) {
		if (r->is_async) {
			/* Lent to the callback, which has returned; a batch
			 * item has taken it (r->reply NULL). */
			fsesl_reply_free(r->reply);
			r->reply = NULL;
		}
	} else {
		/* Lost the race with the waiter's timeout CAS. */
		FSESL_STAT_SUB(s->st.replies, 1);
		FSESL_STAT_SUB(s->st.hist[bucket], 1);
		FSESL_STAT_ADD(s->st.late_replies, 1);
		fsesl_reply_free(rep);
		r->reply = NULL;
	}
	req_done(e, r);
}

/*
 * Whether m can be the reply to r. The server answers an api with an
 * api/response, or, when it refuses the api (a restricted user), with a
 * command/reply "-ERR ..."; every other command with a command/reply.
 * Anything else means a reply is missing or extra on this connection, so
 * the FIFO no longer says whose reply this is.
 */
static bool
reply_fits(const struct fsesl_req *r, const struct fsesl_msg *m)
{

	if (m->type == FSESL_MSG_API_RESPONSE)
		return r->expect == FSESL_EXPECT_API;
	return r->expect != FSESL_EXPECT_API || m->reply == FSESL_REPLY_ERR;
}

/* Returns false if the connection was closed. */
static bool
conn_on_msg(struct fsesl_engine *e, struct fsesl_conn *c, const struct fsesl_msg *m)
{
	struct fsesl_srv *s = c->srv;

	switch (m->type) {
	case FSESL_MSG_AUTH_REQUEST:
		if (c->state != FSESL_CONN_GREETING)
			goto proto;
		conn_send_auth(e, c);
		return c->fd >= 0;
	case FSESL_MSG_RUDE_REJECTION:
		fsesl_log(e, FSESL_LOG_ERROR, "%s: rejected by the server's ACL", s->key);
		conn_fail(e, c, FSESL_EREJECTED);
		return false;
	case FSESL_MSG_COMMAND_REPLY:
	case FSESL_MSG_API_RESPONSE:
		if (c->state == FSESL_CONN_AUTH) {
			if (m->type == FSESL_MSG_COMMAND_REPLY && m->reply == FSESL_REPLY_OK) {
				conn_ready(e, c);
				return true;
			}
			/* The server's text (e.g. "invalid"), never ours. */
			fsesl_log(e, FSESL_LOG_ERROR, "%s: authentication failed: %.*s", s->key,
			    (int)(m->reply_text_len > 200 ? 200 : m->reply_text_len),
			    m->reply_text ? m->reply_text : "");
			conn_fail(e, c, FSESL_EAUTH);
			return false;
		}
		if (c->state != FSESL_CONN_READY || !c->fifo_head)
			goto proto; /* unsolicited: the stream is out of step */
		if (!reply_fits(c->fifo_head, m)) {
			fsesl_log(e, FSESL_LOG_ERROR,
			    "%s: %s to a request that expects %s: replies out of step; "
			    "reconnecting",
			    s->key, fsesl_msg_type_name(m->type),
			    c->fifo_head->expect == FSESL_EXPECT_API ? "api/response"
			                                             : "command/reply");
			conn_fail(e, c, FSESL_EPROTO);
			return false;
		}
		conn_complete_head(e, c, m);
		return true;
	case FSESL_MSG_EVENT_PLAIN:
	case FSESL_MSG_EVENT_JSON:
	case FSESL_MSG_EVENT_XML:
		FSESL_STAT_ADD(s->st.events_in, 1);
		fsesl_event_dispatch(e, s, m);
		return true;
	case FSESL_MSG_LOG_DATA:
		return true; /* no log sink yet */
	case FSESL_MSG_DISCONNECT_NOTICE:
		if (m->linger)
			return true;
		/* Before READY this is not an auth refusal: a refusal
		 * (-ERR) has already failed the connection. */
		conn_fail(e, c, c->state == FSESL_CONN_READY ? FSESL_EDISCONNECTED : -ECONNRESET);
		return false;
	default:
		break;
	}
proto:
	fsesl_log(e, FSESL_LOG_ERROR, "%s: unexpected %s message; reconnecting", s->key,
	    fsesl_msg_type_name(m->type));
	conn_fail(e, c, FSESL_EPROTO);
	return false;
}

static void
conn_set_backlog(struct fsesl_engine *e, struct fsesl_conn *c)
{

	if (c->backlog)
		return;
	c->backlog = true;
	c->backlog_next = e->backlog_head;
	e->backlog_head = c;
	e->work_pending = true;
}

/* Parses what is buffered, up to MSGS_PER_TURN messages. */
static bool
conn_parse(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_msg m;
	unsigned int n = 0;
	ssize_t used;
	int perr = 0;

	while (c->in.off < c->in.len) {
		if (n++ == MSGS_PER_TURN) {
			conn_set_backlog(e, c);
			return true;
		}
		used = fsesl_msg_parse(
		    c->in.p + c->in.off, c->in.len - c->in.off, c->parse_last, &e->lim, &m, &perr);
		if (used == FSESL_PARSE_PARTIAL) {
			/* Resume the terminator search only while the header
			 * block is incomplete; once it is (header_bytes set),
			 * only the body is missing and the next call must look
			 * at the headers again (proto/fsesl_proto.h). */
			c->parse_last = m.header_bytes ? 0 : c->in.len - c->in.off;
			break;
		}
		if (used < 0) {
			fsesl_log(e, FSESL_LOG_ERROR, "%s: bad message: %s", c->srv->key,
			    fsesl_proto_strerror(perr));
			conn_fail(e, c, FSESL_EPROTO);
			return false;
		}
		c->parse_last = 0;
		c->in.off += (size_t)used;
		if (!conn_on_msg(e, c, &m))
			return false;
	}
	if (c->in.off == c->in.len)
		c->in.off = c->in.len = 0;
	return true;
}

static void
conn_on_readable(struct fsesl_engine *e, struct fsesl_conn *c)
{
	unsigned int i;
	size_t room;
	ssize_t n;

	for (i = 0; i < RECVS_PER_TURN && c->fd >= 0; i++) {
		/* A message bigger than the buffer: grow (bounded by the
		 * parser's limits, which fail first). */
		room = c->in.cap - c->in.len;
		if (room < 4096 || (c->in.off == 0 && c->in.len == c->in.cap)) {
			size_t want = c->in.len - c->in.off < c->in.cap / 2 ? 4096 : c->in.cap;

			if (buf_reserve(&c->in, want) != 0) {
				conn_fail(e, c, -ENOMEM);
				return;
			}
			room = c->in.cap - c->in.len;
		}
		n = recv(c->fd, c->in.p + c->in.len, room, MSG_DONTWAIT);
		if (n > 0) {
			FSESL_STAT_ADD(c->srv->st.bytes_in, (uint64_t)n);
			c->rx_ns = e->now_ns;
			c->in.len += (size_t)n;
			if (!conn_parse(e, c) || c->backlog)
				return;
			if ((size_t)n < room)
				return; /* drained the socket */
			continue;
		}
		if (n == 0) {
			conn_fail(
			    e, c, c->state == FSESL_CONN_READY ? FSESL_EDISCONNECTED : -ECONNRESET);
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_fail(e, c, c->state == FSESL_CONN_READY ? FSESL_EDISCONNECTED : -errno);
		return;
	}
}

static void
conn_on_event(struct fsesl_engine *e, struct fsesl_conn *c, uint32_t evs)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (c->fd < 0)
		return; /* closed earlier in this batch */
	if (c->state == FSESL_CONN_CONNECTING) {
		if (!(evs & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr) {
			conn_fail(e, c, -soerr);
			return;
		}
		c->state = FSESL_CONN_GREETING;
		conn_set_out(e, c, false);
		/* fall through to read a greeting that came with the SYN-ACK */
	}
	if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_on_readable(e, c);
	if (c->fd >= 0 && (evs & EPOLLOUT) && c->state != FSESL_CONN_CONNECTING)
		(void)conn_flush(e, c);
}

/* ------------------------------------------------------------------ */
/* Intake (phase 1)                                                      */
/* ------------------------------------------------------------------ */

static void srv_ensure_known(struct fsesl_engine *e, struct fsesl_srv *s);

void
fsesl_rx_srv_known(struct fsesl_engine *e, struct fsesl_srv *s)
{

	srv_ensure_known(e, s);
}

/* Puts r on connection c itself (subscriptions live on connection 0),
 * outside the least-loaded choice and the in-flight cap. */
void
fsesl_rx_send_on(struct fsesl_engine *e, struct fsesl_conn *c, struct fsesl_req *r)
{

	if (c->state != FSESL_CONN_READY || buf_reserve(&c->out, r->len) != 0) {
		req_fail(e, r, c->state != FSESL_CONN_READY ? FSESL_ENOTCONNECTED : -ENOMEM);
		return;
	}
	if (r->is_async && r->timer.idx == ~0u) {
		fsesl_timer_init(&r->timer, async_deadline, r);
		(void)fsesl_timer_arm(
		    &e->timers, &r->timer, r->submit_ns + (uint64_t)r->timeout_ms * 1000000ull);
	}
	conn_write_req(e, c, r);
}

static void
srv_ensure_known(struct fsesl_engine *e, struct fsesl_srv *s)
{
	unsigned int i;

	if (s->known)
		return;
	s->known = true;
	s->list_next = e->srv_list;
	e->srv_list = s;
	for (i = 0; i < s->n_conns; i++) {
		fsesl_timer_init(&s->conns[i].timer, conn_timer_fired, &s->conns[i]);
		conn_start(e, &s->conns[i]);
	}
}

void
fsesl_reactor_intake(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;

	if (r->kind == FSESL_REQ_RETIRE) {
		fsesl_handle_retire(r);
		return;
	}
	if (r->kind == FSESL_REQ_TICK) {
		if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
			req_fail(e, r, FSESL_ESHUTDOWN);
			return;
		}
		/* Finished after this turn's timers (ticks_finish). */
		r->next = e->ticks;
		e->ticks = r;
		return;
	}
	if (r->kind >= FSESL_REQ_SUBCTL) {
		if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
			req_fail(e, r, FSESL_ESHUTDOWN);
			return;
		}
		if (r->srv)
			srv_ensure_known(e, r->srv);
		fsesl_events_intake(e, r);
		return;
	}
	if (r->kind == FSESL_REQ_ATTACH) {
		s->attach_done = true;
		if (!atomic_load_explicit(&e->stopping, memory_order_relaxed))
			srv_ensure_known(e, s);
		return;
	}
	if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
		req_fail(e, r, FSESL_ESHUTDOWN);
		return;
	}
	srv_ensure_known(e, s);
	fsesl_rx_enqueue(e, r);
}

/*
 * A job whose event connection is not READY: it may wait for it while that
 * connection is trying (its async deadline is then armed); in backoff it
 * fails fast with what the last attempt said, as a command does.
 */
bool
fsesl_rx_job_may_wait(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;
	const struct fsesl_conn *c0 = s->n_conns ? &s->conns[0] : NULL;

	if (!c0 || (c0->state == FSESL_CONN_IDLE && !c0->retry_soon)) {
		req_fail(e, r, srv_down_error(s));
		return false;
	}
	if (r->is_async && r->timer.idx == ~0u) {
		fsesl_timer_init(&r->timer, async_deadline, r);
		if (fsesl_timer_arm(&e->timers, &r->timer,
		        r->submit_ns + (uint64_t)r->timeout_ms * 1000000ull) != 0) {
			req_fail(e, r, -ENOMEM);
			return false;
		}
	}
	return true;
}

/* Into the server's queue (commands), or fail fast in backoff. */
void
fsesl_rx_enqueue(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;

	if (r->is_async) {
		fsesl_timer_init(&r->timer, async_deadline, r);
		if (fsesl_timer_arm(&e->timers, &r->timer,
		        r->submit_ns + (uint64_t)r->timeout_ms * 1000000ull) != 0) {
			req_fail(e, r, -ENOMEM);
			return;
		}
	}
	if (!srv_has_attempt(s) && !pick_conn(e, s)) {
		/* In backoff: fail fast with what the last attempt said. */
		req_fail(e, r, srv_down_error(s));
		return;
	}
	req_append(&s->q_head, &s->q_tail, r);
	s->n_queued++;
	FSESL_STAT_ADD(s->st.queued, 1);
	srv_mark_dirty(e, s);
}

static void
intake_cb(void *item, void *arg)
{

	fsesl_reactor_intake(arg, item);
}

int
fsesl_submit(
    struct fsesl_engine *e, struct fsesl_req *r, bool nonblock, const struct timespec *deadline)
{

	if (fsesl_on_reactor == e) {
		/* From a callback on this engine's reactor: straight to its own
		 * queues; the write phase of this turn sends it. (Another
		 * engine's reactor goes through the rings like any thread.) */
		fsesl_reactor_intake(e, r);
		return 0;
	}
	FSESL_STAT_ADD(e->submitted, 1);
	return fsesl_sq_submit(&e->sq, r, nonblock, deadline);
}

/* ------------------------------------------------------------------ */
/* Housekeeping (a timer, every 250 ms)                                  */
/* ------------------------------------------------------------------ */

/*
 * A blocking caller's timeout is decided in its own thread; the reactor
 * learns it here, every housekeeping pass, rather than when the late reply
 * finally comes (that may be never), so st.timeouts is at most one pass
 * behind.
 */
static void
count_timeout(struct fsesl_srv *s, struct fsesl_req *r, uint32_t state)
{

	if (state == FSESL_CPL_TIMEDOUT && !r->timeout_counted) {
		FSESL_STAT_ADD(s->st.timeouts, 1);
		r->timeout_counted = true;
	}
}

/*
 * Recycles c when its head is late (conn_head_late) and no request still
 * waiting on it can be answered in time: each one is past its own
 * deadline. A short timeout at the head thus never fails a longer one
 * behind it that the server may yet answer; what is only past its
 * deadline was going to fail anyway, and a request nobody waits for with
 * a kernel deadline (a subscription change) gets its answer. Also recycled:
 * min(max_abandoned, max_in_flight) abandoned places, whatever their age.
 */
static void
conn_check_overdue(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_req *r;
	unsigned int abandoned = 0, limit;
	bool waiting = false; /* a request that can still be answered in time */
	bool late;

	if (c->state != FSESL_CONN_READY || !c->fifo_head)
		return;
	late = conn_head_late(e, c);
	for (r = c->fifo_head; r; r = r->next) {
		uint32_t st = fsesl_cpl_state(&r->cpl);

		if (st == FSESL_CPL_PENDING) {
			waiting |= e->now_ns < r->submit_ns + (uint64_t)r->timeout_ms * 1000000ull;
			continue;
		}
		abandoned++;
		count_timeout(c->srv, r, st);
	}
	limit = e->cfg.max_abandoned < e->cfg.max_in_flight ? e->cfg.max_abandoned
	                                                    : e->cfg.max_in_flight;
	if ((late && !waiting) || abandoned >= limit) {
		fsesl_log(e, FSESL_LOG_WARN, "%s: connection %u recycled (%u abandoned, head %s)",
		    c->srv->key, c->index, abandoned, late ? "overdue" : "ok");
		conn_fail(e, c, FSESL_EDISCONNECTED);
	}
}

static void
backlog_remove(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_conn **pp;

	if (!c->backlog)
		return;
	for (pp = &e->backlog_head; *pp; pp = &(*pp)->backlog_next) {
		if (*pp == c) {
			*pp = c->backlog_next;
			break;
		}
	}
	c->backlog = false;
}

static void
srv_close_all(struct fsesl_engine *e, struct fsesl_srv *s, int err)
{
	unsigned int i;

	for (i = 0; i < s->n_conns; i++) {
		struct fsesl_conn *c = &s->conns[i];

		/* The entry may be freed after this: no list may keep it. */
		backlog_remove(e, c);
		if (c->state == FSESL_CONN_READY)
			atomic_fetch_sub_explicit(&s->st.connected_conns, 1, memory_order_relaxed);
		conn_close_fd(e, c);
		fsesl_timer_disarm(&e->timers, &c->timer);
		c->state = FSESL_CONN_IDLE;
		c->retry_soon = false;
		conn_fail_fifo(e, c, err);
	}
	srv_fail_queued(e, s, err);
	fsesl_events_srv_close(e, s);
}

static void
housekeeping(struct fsesl_timer *t, void *arg)
{
	struct fsesl_engine *e = arg;
	struct fsesl_srv **pp, *s;
	struct fsesl_req *r;
	unsigned int i;
	bool busy;

	fsesl_retired_reap(e, false);
	for (pp = &e->srv_list; (s = *pp) != NULL;) {
		fsesl_jobs_housekeeping(e, s);
		fsesl_events_housekeeping(e, s);
		/* The engine's own subscriptions (HEARTBEAT for the load,
		 * BACKGROUND_JOB) do not keep an entry; a subscriber's do. */
		busy = s->q_head != NULL || s->jobs != NULL || fsesl_events_srv_has_subscribers(s);
		for (r = s->q_head; r; r = r->next)
			count_timeout(s, r, fsesl_cpl_state(&r->cpl));
		for (i = 0; i < s->n_conns; i++) {
			conn_check_overdue(e, &s->conns[i]);
			busy |= s->conns[i].fifo_head != NULL;
		}
		/* A half-open TCP connection or a frozen server: HEARTBEAT is
		 * subscribed, yet the event connection has been silent for
		 * heartbeat_miss_limit intervals. Reopen it. */
		if (s->n_conns && s->conns[0].state == FSESL_CONN_READY &&
		    fsesl_events_liveness_expired(e, s, &s->conns[0])) {
			fsesl_log(e, FSESL_LOG_WARN,
			    "%s: no HEARTBEAT and nothing received for %u intervals: reconnecting",
			    s->key, e->cfg.heartbeat_miss_limit);
			conn_fail(e, &s->conns[0], FSESL_EDISCONNECTED);
		}
		if (busy || atomic_load_explicit(&s->refs, memory_order_relaxed) != 0 || s->dirty ||
		    (atomic_load(&s->attach_sent) && !s->attach_done)) {
			s->idle_since_ns = 0;
			pp = &s->list_next;
			continue;
		}
		if (!s->idle_since_ns)
			s->idle_since_ns = e->now_ns;
		if (e->now_ns - s->idle_since_ns <
		        (uint64_t)e->cfg.idle_timeout_s * 1000000000ull ||
		    !fsesl_srv_try_reap(e, s)) {
			pp = &s->list_next;
			continue;
		}
		/* DEAD and unlinked: nobody can reach it any more. */
		*pp = s->list_next;
		srv_close_all(e, s, FSESL_ESHUTDOWN);
	}
	(void)fsesl_timer_arm(&e->timers, t, e->now_ns + HOUSEKEEPING_NS);
}

/* ------------------------------------------------------------------ */
/* The loop                                                              */
/* ------------------------------------------------------------------ */

static int
next_timeout_ms(struct fsesl_engine *e)
{
	uint64_t d;

	if (e->work_pending || e->dirty_srv || e->dirty_head || e->ticks)
		return 0;
	if (!e->timers.n)
		return -1;
	if (e->timers.v[0]->when_ns <= e->now_ns)
		return 0;
	d = e->timers.v[0]->when_ns - e->now_ns;
	/* Round up: waking early would spin until the deadline. */
	d = (d + 999999ull) / 1000000ull;
	return d > 60000 ? 60000 : (int)d;
}

/*
 * The spin budget is real time even under a substituted clock: a frozen
 * test clock must not make every wake-up spin.
 */
static inline uint64_t
spin_now(const struct fsesl_engine *e)
{

	return e->cfg.clock_fn ? fsesl_mono_ns() : e->now_ns;
}

/*
 * fsesl_engine_tick() callers are answered at the end of a turn that
 * leaves nothing to do by the clock just read:
 *  - the rings are drained once more first: a request pushed before the
 *    tick (in program order, or by a thread the ticker heard from) may sit
 *    in a shard this turn's drain passed before it landed; it is visible
 *    now, and whatever it arms is run next turn;
 *  - no timer is due: a handler that arms a timer for "now" (a reconnect
 *    after a failure) has it run next turn, and the tick covers that too.
 *    A timer that re-arms itself for "now" on every turn (a zero backoff
 *    against a connect that fails at once) would never let that be true:
 *    after TICK_MAX_TURNS the tick is answered anyway.
 */
#define TICK_MAX_TURNS 64

static void
ticks_finish(struct fsesl_engine *e)
{
	struct fsesl_req *r;

	if (fsesl_sq_drain(&e->sq, DRAIN_MAX, intake_cb, e))
		return;
	if (e->timers.n && e->timers.v[0]->when_ns <= e->now_ns && ++e->tick_turns < TICK_MAX_TURNS)
		return;
	e->tick_turns = 0;
	while ((r = e->ticks) != NULL) {
		e->ticks = r->next;
		fsesl_rx_req_finish(e, r, 0);
	}
}

static void
backlog_phase(struct fsesl_engine *e)
{
	struct fsesl_conn *c, *list = e->backlog_head;

	e->backlog_head = NULL;
	e->work_pending = false;
	while ((c = list) != NULL) {
		list = c->backlog_next;
		c->backlog = false;
		if (c->fd >= 0)
			(void)conn_parse(e, c);
	}
}

/* Hands the turn's wakes to the kernel (a no-op when there are none). */
static inline void
wakes_flush(void)
{

	if (rx_wakes != NULL)
		fsesl_wakeb_st_flush(rx_wakes);
}

static void
reactor_shutdown(struct fsesl_engine *e)
{
	struct fsesl_req *r;
	struct fsesl_srv *s;

	/* Nobody is left waiting for a wake while submitters are awaited. */
	wakes_flush();

	/* Keep draining until no caller is inside the engine (its window,
	 * ref.c); their items complete with FSESL_ESHUTDOWN (intake checks
	 * the flag). */
	for (;;) {
		unsigned int n = fsesl_sq_drain(&e->sq, DRAIN_MAX, intake_cb, e);

		/* acquire (in the load): pairs with the callers' release
		 * decrement, so their pushes are visible to the drain below. */
		if (fsesl_window_callers(e) == 0) {
			while (fsesl_sq_drain(&e->sq, DRAIN_MAX, intake_cb, e))
				;
			break;
		}
		if (!n)
			sched_yield();
	}
	for (s = e->srv_list; s; s = s->list_next)
		srv_close_all(e, s, FSESL_ESHUTDOWN);
	while ((r = e->ticks) != NULL) {
		e->ticks = r->next;
		req_fail(e, r, FSESL_ESHUTDOWN);
	}
	fsesl_timer_disarm(&e->timers, &e->housekeeping);
	wakes_flush();
}

static inline void
cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Polls the rings and the sockets (epoll_wait with timeout 0) for up to
 * reactor_spin_us. Returns the number of socket events in evs (> 0), or
 * 0 with e->work_pending / dirty lists set when ring items were taken, or
 * 0 when the time ran out with nothing.
 */
static int
spin_poll(struct fsesl_engine *e, struct epoll_event *evs)
{
	uint64_t until = fsesl_mono_ns() + (uint64_t)e->cfg.reactor_spin_us * 1000ull;
	unsigned int i;
	int n;

	/* A spinner like a waiting caller (the wait policy): callers spin
	 * only on the CPUs left over. */
	fsesl_cpl_spin_announce();
	for (;;) {
		if (fsesl_sq_drain(&e->sq, DRAIN_MAX, intake_cb, e)) {
			e->now_ns = fsesl_engine_now(e);
			e->last_busy_ns = spin_now(e);
			e->work_pending = true;
			n = 0;
			break;
		}
		n = epoll_wait(e->epfd, evs, MAX_EVENTS, 0);
		if (n > 0)
			break;
		if (fsesl_mono_ns() >= until) {
			n = 0;
			break;
		}
		for (i = 0; i < 64; i++)
			cpu_pause();
	}
	fsesl_cpl_spin_withdraw();
	return n;
}

/* FSESL_WAKE_BACKEND=futex: never io_uring (a diagnostic knob, tuning.md). */
static unsigned int
wakes_flags(void)
{
	const char *v = getenv("FSESL_WAKE_BACKEND");

	return v != NULL && strcmp(v, "futex") == 0 ? FSESL_WAKEB_FUTEX_ONLY : 0;
}

static void *
reactor_main(void *arg)
{
	struct fsesl_engine *e = arg;
	struct epoll_event evs[MAX_EVENTS];
	bool bell = true;
	int n, i, timeout;

	fsesl_on_reactor = e;
	/* The wake batch belongs to this thread; without it (no memory)
	 * every completion wakes its caller at once, as before. */
	if (fsesl_wakeb_st_init(&e->wakes, 0, wakes_flags(), e->ops) == 0)
		rx_wakes = &e->wakes;
	fsesl_log(e, FSESL_LOG_DEBUG, "wakes: %s",
	    rx_wakes == NULL                                      ? "one FUTEX_WAKE each (no batch)"
	    : fsesl_wakeb_backend(&e->wakes) == FSESL_WAKEB_URING ? "batched, io_uring FUTEX_WAKE"
	                                                          : "batched, one FUTEX_WAKE each");
	/* Every call_rcu of the engine runs here, on this worker. */
	urcu_bp_set_thread_call_rcu_data(e->crdp);
	e->now_ns = fsesl_engine_now(e);
	e->rng = (uint32_t)(fsesl_mono_ns() ^ (uintptr_t)e) | 1u;
	fsesl_timer_init(&e->housekeeping, housekeeping, e);
	(void)fsesl_timer_arm(&e->timers, &e->housekeeping, e->now_ns + HOUSEKEEPING_NS);
	for (;;) {
		atomic_fetch_add_explicit(&e->loop_iterations, 1, memory_order_relaxed);
		/* 1. doorbell + intake */
		if (bell)
			fsesl_doorbell_awake(&e->sq.db);
		else
			/* Awake without reading the eventfd (not signalled):
			 * producers skip their write while we run. Relaxed:
			 * same reasoning as in fsesl_doorbell_awake(). */
			atomic_store_explicit(&e->sq.db.armed, 1, memory_order_relaxed);
		n = (int)fsesl_sq_drain(&e->sq, DRAIN_MAX, intake_cb, e);
		if (n == DRAIN_MAX)
			e->work_pending = true;
		if (n > 0)
			e->last_busy_ns = spin_now(e);
		if (atomic_load_explicit(&e->stopping, memory_order_seq_cst))
			break;
		backlog_phase(e);
		/* 2. write */
		write_phase(e);
		/* 3. poll: completions of phases 1-2 (fail-fast, intake)
		 * wake their callers first. */
		wakes_flush();
		timeout = next_timeout_ms(e);
		if (timeout != 0 && e->cfg.reactor_spin_us &&
		    spin_now(e) - e->last_busy_ns < (uint64_t)e->cfg.reactor_spin_us * 1000ull) {
			/* Busy: a reply or a submission is likely within
			 * microseconds, and a sleep/wake pair costs tens of them
			 * (more in VMs). Poll without sleeping for a bounded
			 * time; the doorbell stays armed, so producers skip
			 * their eventfd write meanwhile. */
			n = spin_poll(e, evs);
			if (n > 0) {
				bell = false;
				goto have_events;
			}
			timeout = next_timeout_ms(e);
		}
		if (timeout != 0) {
			(void)fsesl_doorbell_prepare_sleep(&e->sq.db);
			/* The protocol: re-drain after clearing the flag. */
			if (fsesl_sq_drain(&e->sq, DRAIN_MAX, intake_cb, e)) {
				write_phase(e);
				timeout = 0;
			}
		}
		wakes_flush(); /* spin_poll's or the re-drain's intake */
		n = epoll_wait(e->epfd, evs, MAX_EVENTS, timeout);
		bell = false;
	have_events:
		e->now_ns = fsesl_engine_now(e);
		if (n > 0)
			e->last_busy_ns = spin_now(e);
		/* 4. read */
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				bell = true;
				continue;
			}
			conn_on_event(e, evs[i].data.ptr, evs[i].events);
		}
		/* 5. timers */
		timers_run(e);
		if (e->ticks)
			ticks_finish(e);
		/* 6. wakes: the read pass's replies, the timers' failures */
		wakes_flush();
	}
	reactor_shutdown(e);
	if (rx_wakes != NULL) {
		rx_wakes = NULL;
		fsesl_wakeb_st_destroy(&e->wakes);
	}
	/* Run every pending reclamation, then let stop() free the worker. */
	urcu_bp_barrier();
	urcu_bp_set_thread_call_rcu_data(NULL);
	return NULL;
}

int
fsesl_reactor_start(struct fsesl_engine *e)
{
	struct epoll_event ev;
	int err;

	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0)
		return -errno;
	ev.events = EPOLLIN;
	ev.data.ptr = NULL; /* the doorbell */
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fsesl_doorbell_fd(&e->sq.db), &ev) != 0) {
		err = -errno;
		goto out_close;
	}
	e->crdp = urcu_bp_create_call_rcu_data(0, -1);
	if (!e->crdp) {
		err = -ENOMEM;
		goto out_close;
	}
	err = -pthread_create(&e->thread, NULL, reactor_main, e);
	if (err)
		goto out_crdp;
	return 0;
out_crdp : {
	pthread_t rcu_tid = urcu_bp_get_call_rcu_thread(e->crdp);

	urcu_bp_call_rcu_data_free(e->crdp); /* does not join: we do */
	pthread_join(rcu_tid, NULL);
}
	e->crdp = NULL;
out_close:
	close(e->epfd);
	e->epfd = -1;
	return err;
}
