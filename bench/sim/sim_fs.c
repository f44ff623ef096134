/*
 * sim_fs.c - the FreeSWITCH-like mode (cfg.fs_like): a server thread per
 * connection and one shared dispatch thread, as the real server runs them
 * (docs/protocol.md §9.1), so that a benchmark meets the real server's
 * limits rather than the default loop's.
 *
 * A connection's thread loops like mod_event_socket's read_packet():
 *   1. recv() one byte (non-blocking) and sched_yield() after it; a CR or
 *      LF before a command is thrown away (a lone LF is a kick);
 *   2. when no byte of a next command is in hand, write the queued log
 *      lines and events;
 *   3. when nothing arrived, poll() the socket for event_poll_ms (20): an
 *      event queued meanwhile waits for the timeout or the next byte;
 *   4. once a header block is complete (and its body read), run the
 *      command right here, api included, pay its costs, write the reply,
 *      and go back to 1 without looking at events.
 * Commands run under the server's lock (s->lk) with the same code as the
 * default mode; the costs (CPU per byte and per api, the bgapi hold, the
 * DELAY fault, `api msleep`) are paid outside it, so other connections
 * run meanwhile. Every event goes to the dispatch thread, which spends
 * fs_dispatch_cost_us of CPU on each (the API event of every api too,
 * subscribed or not), then hands it to the subscribed connections' queues.
 *
 * Other threads reach a connection thread only through its wake eventfd,
 * for what the real server does from other threads too: a notice and a
 * close, a fault, the stop. A queued event does not wake it.
 */
#include "sim_int.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Enough for any command's code path (the largest frames are 4-8 KiB). */
#define SIM_FS_STACK (256u * 1024u)

static uint64_t
sim_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spends ns of this thread's CPU time (not wall time: a preempted thread
 * still owes the rest), as the real server's code would. */
static void
sim_burn(uint64_t ns)
{
	if (!ns)
		return;
	uint64_t end = sim_thread_cpu_ns() + ns;
	while (sim_thread_cpu_ns() < end)
		;
}

void
sim_conn_poke(struct sim_conn *c)
{
	if (!c->threaded) {
		sim_mark_dirty(c);
		return;
	}
	uint64_t one = 1;
	/* Release: the thread that sees the flag sees what was set before. */
	atomic_store_explicit(&c->poked, true, memory_order_release);
	ssize_t w = write(c->wake_fd, &one, sizeof(one));
	(void)w;
}

static void
sim_fs_drain_wake(struct sim_conn *c)
{
	uint64_t v;
	ssize_t r = read(c->wake_fd, &v, sizeof(v));
	(void)r;
}

/* Waits for the socket (events: POLLIN or POLLOUT, 0 for none) or a poke,
 * until deadline (ns, CLOCK_MONOTONIC; 0: no limit). The timeout is in
 * nanoseconds: a 1.25 ms bgapi hold must not become 2 ms. Returns true if
 * the socket is ready. */
static bool
sim_fs_wait(struct sim_conn *c, short events, uint64_t deadline)
{
	struct pollfd p[2] = {
	    {.fd = c->fd, .events = events}, {.fd = c->wake_fd, .events = POLLIN}};
	struct timespec ts, *tp = NULL;

	if (deadline) {
		uint64_t now = sim_now_ns(), w = deadline > now ? deadline - now : 0;
		ts = (struct timespec){
		    .tv_sec = (time_t)(w / 1000000000u), .tv_nsec = (long)(w % 1000000000u)};
		tp = &ts;
	}
	int n = ppoll(events ? p : p + 1, events ? 2 : 1, tp, NULL);

	if (n > 0 && (p[1].revents & POLLIN))
		sim_fs_drain_wake(c);
	return n > 0 && events && (p[0].revents & (events | POLLHUP | POLLERR));
}

/* True when this thread must stop now (s->lk held). */
static bool
sim_fs_ending(const struct sim_conn *c)
{
	return c->s->stopping || c->hard_close;
}

/* Holds the thread until deadline (ns) unless it must end first. Returns
 * false if it must end. Takes and leaves s->lk unheld. */
static bool
sim_fs_sleep_until(struct sim_conn *c, uint64_t deadline)
{
	struct fsesl_sim *s = c->s;

	for (;;) {
		pthread_mutex_lock(&s->lk);
		bool end = sim_fs_ending(c);
		pthread_mutex_unlock(&s->lk);
		if (end)
			return false;
		if (sim_now_ns() >= deadline)
			return true;
		sim_fs_wait(c, 0, deadline);
	}
}

/* What a connection thread keeps between its steps. The counters it
 * bumps and the state of its write faults travel between here and the
 * connection under the lock, once per flush rather than per byte or send. */
struct sim_fs_rd {
	struct sim_buf w; /* being written, taken from c->out under the lock */
	unsigned int nl; /* LFs since the last other byte: 2 end a header block */
	uint64_t debt_ns; /* CPU owed for the bytes read */
	/* counters not yet added to the connection's and the server's */
	uint64_t kick_bytes, kicks, sent, cuts;
	/* as of the last flush */
	struct sim_fault_state fb, ft; /* CLOSE_AFTER_BYTES, TINY_WRITES */
	bool closing;
	uint64_t close_deadline;
};

/* Settles rd with the connection (s->lk held). */
static void
sim_fs_sync(struct sim_conn *c, struct sim_fs_rd *rd)
{
	struct fsesl_sim *s = c->s;

	s->c.bytes_in += rd->kick_bytes;
	s->c.kicks += rd->kicks;
	s->c.bytes_out += rd->sent;
	s->c.faults[FSESL_SIM_FAULT_CLOSE_AFTER_BYTES] += rd->cuts;
	rd->kick_bytes = rd->kicks = rd->sent = rd->cuts = 0;
	struct sim_fault_state *fb = &c->f[FSESL_SIM_FAULT_CLOSE_AFTER_BYTES];
	if (fb->on && fb->base == SIM_BASE_LATER)
		fb->base = atomic_load_explicit(&c->bytes_written, memory_order_relaxed);
	rd->fb = *fb;
	rd->ft = c->f[FSESL_SIM_FAULT_TINY_WRITES];
	rd->closing = c->closing;
	rd->close_deadline = c->close_deadline;
}

/* Settles rd and tells whether the thread must end (takes s->lk). */
static bool
sim_fs_check(struct sim_conn *c, struct sim_fs_rd *rd)
{
	pthread_mutex_lock(&c->s->lk);
	sim_fs_sync(c, rd);
	bool end = sim_fs_ending(c);
	pthread_mutex_unlock(&c->s->lk);
	return end;
}

/*
 * Writes rd->w whole: blocking (poll on POLLOUT) like the real server's
 * write loop, with the write faults (TINY_WRITES, CLOSE_AFTER_BYTES) as of
 * the last flush. Returns -1 if the connection is to end (error, cut, stop,
 * hard close, or a closing connection whose peer reads nothing).
 */
static int
sim_fs_write(struct sim_conn *c, struct sim_fs_rd *rd)
{
	struct sim_buf *w = &rd->w;

	while (sim_buf_avail(w)) {
		size_t n = sim_buf_avail(w);
		uint64_t written = atomic_load_explicit(&c->bytes_written, memory_order_relaxed);
		bool cut = false;
		if (rd->fb.on && written - rd->fb.base + n >= rd->fb.a) {
			n = (size_t)(rd->fb.a - (written - rd->fb.base));
			cut = true;
		}
		bool tiny = rd->ft.on && rd->ft.a && n > rd->ft.a;
		if (tiny) {
			/* Counted before the send, as by the loop: the peer may look
			 * as soon as the last piece is in. */
			n = (size_t)rd->ft.a;
			pthread_mutex_lock(&c->s->lk);
			c->s->c.faults[FSESL_SIM_FAULT_TINY_WRITES]++;
			pthread_mutex_unlock(&c->s->lk);
		}
		ssize_t k = n ? send(c->fd, w->p + w->off, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (k < 0) {
			/* The peer does not read: wait, as the real thread does,
			 * unless told to end or (closing) out of patience. */
			if (rd->closing && sim_now_ns() >= rd->close_deadline)
				return -1;
			sim_fs_wait(c, POLLOUT, rd->closing ? rd->close_deadline : 0);
			if (atomic_exchange_explicit(&c->poked, false, memory_order_acquire) &&
			    sim_fs_check(c, rd))
				return -1;
			continue;
		}
		w->off += (size_t)k;
		rd->sent += (uint64_t)k;
		atomic_fetch_add_explicit(&c->bytes_written, (uint64_t)k, memory_order_relaxed);
		if (cut && (size_t)k == n) {
			rd->cuts++;
			return -1;
		}
		if (tiny && rd->ft.b && !sim_fs_sleep_until(c, sim_now_ns() + rd->ft.b * 1000u))
			return -1;
	}
	w->off = w->len = 0;
	return 0;
}

/*
 * Moves the connection's output (replies, notices) and, with events, its
 * queued log lines and events into rd->w, then writes it. STALL and
 * SILENT_ACCEPT hold the thread here, neither reading nor writing, until
 * cleared. Returns -1 when the thread is to end: now, or because the
 * connection was closing and everything is written (the socket is then
 * shut down).
 */
static int
sim_fs_flush(struct sim_conn *c, struct sim_fs_rd *rd, bool events)
{
	struct fsesl_sim *s = c->s;

	pthread_mutex_lock(&s->lk);
	while (!sim_fs_ending(c) && (c->silent || c->f[FSESL_SIM_FAULT_STALL].on)) {
		pthread_mutex_unlock(&s->lk);
		sim_fs_wait(c, 0, 0);
		pthread_mutex_lock(&s->lk);
	}
	if (events && !c->closing && !sim_fs_ending(c)) {
		if (c->logq_n) {
			sim_buf_add(&c->out, c->logq.p + c->logq.off, sim_buf_avail(&c->logq));
			c->msgs_written += c->logq_n;
			c->logq.off = c->logq.len = 0;
			c->logq_n = 0;
		}
		sim_conn_write_events(c);
	}
	if (sim_buf_avail(&c->out) &&
	    sim_buf_add(&rd->w, c->out.p + c->out.off, sim_buf_avail(&c->out)))
		c->hard_close = true;
	c->out.off = c->out.len = 0;
	sim_fs_sync(c, rd);
	bool end = sim_fs_ending(c);
	pthread_mutex_unlock(&s->lk);
	if (end || sim_fs_write(c, rd) < 0)
		return -1;
	if (rd->closing) {
		/* Unread input would turn the close into a RST, which can destroy
		 * the notice still in the client's buffer. */
		char sink[4096];
		while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		shutdown(c->fd, SHUT_RDWR);
		return -1;
	}
	return 0;
}

/* Client Content-Length as the server reads it (atoi: no digits, no body). */
static size_t
sim_fs_content_length(const char *p, size_t n)
{
	static const char key[] = "content-length:";
	const size_t kl = sizeof(key) - 1;
	size_t i = 0;

	while (i < n) {
		size_t e = i;
		while (e < n && p[e] != '\n')
			e++;
		if (e - i > kl && !strncasecmp(p + i, key, kl)) {
			size_t v = 0, j = i + kl;
			while (j < e && p[j] == ' ')
				j++;
			while (j < e && p[j] >= '0' && p[j] <= '9')
				v = v * 10 + (size_t)(p[j++] - '0');
			return v;
		}
		i = e + 1;
	}
	return 0;
}

/* Reads the body of a command whose header block is in c->in, in full.
 * Returns 0, or -1 on EOF, error or the thread's end. */
static int
sim_fs_read_body(struct sim_conn *c, size_t body)
{
	struct fsesl_sim *s = c->s;

	if (body > s->lim.max_body_bytes)
		return 0; /* the packet reader refuses it: notice and close */
	if (sim_buf_reserve(&c->in, body))
		return -1;
	while (body) {
		ssize_t r = recv(c->fd, c->in.p + c->in.len, body, MSG_DONTWAIT);
		if (r > 0) {
			c->in.len += (size_t)r;
			body -= (size_t)r;
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return -1;
		sim_fs_wait(c, POLLIN, 0);
		pthread_mutex_lock(&s->lk);
		bool end = sim_fs_ending(c);
		pthread_mutex_unlock(&s->lk);
		if (end)
			return -1;
	}
	return 0;
}

/* The packet in c->in is complete: its costs, then the command itself
 * under the lock, its reply written. Returns -1 if the thread is to end. */
static int
sim_fs_run(struct sim_conn *c, struct sim_fs_rd *rd)
{
	struct fsesl_sim *s = c->s;
	struct fsesl_client_packet pkt;
	int err = 0;
	ssize_t r = fsesl_client_packet_parse(c->in.p, c->in.len, &s->lim, &pkt, &err);

	if (r > 0 && c->authed) {
		/* c->authed is written by this thread only (sim_exec). */
		if (pkt.line_len >= 4 && !strncasecmp(pkt.line, "api ", 4))
			rd->debt_ns += (uint64_t)s->cfg.api_cost_us * 1000u;
		else if (pkt.line_len >= 6 && !strncasecmp(pkt.line, "bgapi ", 6) &&
		         s->cfg.bgapi_cost_us &&
		         !sim_fs_sleep_until(c, sim_now_ns() + s->cfg.bgapi_cost_us * 1000ull))
			return -1;
	}
	sim_burn(rd->debt_ns);
	rd->debt_ns = 0;

	pthread_mutex_lock(&s->lk);
	struct sim_fault_state fd = c->f[FSESL_SIM_FAULT_DELAY];
	if (fd.on && fd.a) {
		s->c.faults[FSESL_SIM_FAULT_DELAY]++;
		pthread_mutex_unlock(&s->lk);
		if (!sim_fs_sleep_until(c, sim_now_ns() + fd.a * 1000000u))
			return -1;
		pthread_mutex_lock(&s->lk);
	}
	s->c.bytes_in += c->in.len;
	if (r < 0 || r == FSESL_PARSE_PARTIAL) {
		/* A bad client Content-Length closes the connection (1.11.2+). */
		sim_goodbye(c, SIM_NOTICE_BYE);
	} else {
		sim_exec(c, &pkt);
	}
	/* `api msleep N` runs inline: the thread sleeps, the connection with it. */
	while (c->park == PARK_MSLEEP && !sim_fs_ending(c)) {
		uint64_t deadline = c->park_deadline;
		pthread_mutex_unlock(&s->lk);
		bool go_on = sim_fs_sleep_until(c, deadline);
		pthread_mutex_lock(&s->lk);
		if (!go_on)
			break;
		sim_park_done(c);
	}
	pthread_mutex_unlock(&s->lk);
	c->in.off = c->in.len = 0;
	return sim_fs_flush(c, rd, false);
}

static void
sim_fs_conn_end(struct sim_conn *c, struct sim_fs_rd *rd)
{
	struct fsesl_sim *s = c->s;
	uint64_t one = 1;

	/* The counters first: the peer may look at them once it sees the close. */
	pthread_mutex_lock(&s->lk);
	sim_fs_sync(c, rd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->c.active_conns--;
	c->zombie_next = s->zombies;
	s->zombies = c;
	pthread_cond_broadcast(&s->gone_cv);
	pthread_mutex_unlock(&s->lk);
	close(c->fd);
	c->fd = -1;
	/* The loop joins and frees it. */
	ssize_t wr = write(s->efd, &one, sizeof(one));
	(void)wr;
}

/* One byte of a command, or a CR/LF before one. Returns 1 when a packet
 * ran, 0 otherwise, -1 when the thread is to end. */
static int
sim_fs_byte(struct sim_conn *c, struct sim_fs_rd *rd, unsigned char b)
{
	struct fsesl_sim *s = c->s;

	rd->debt_ns += s->cfg.fs_byte_cost_ns;
	if (c->in.len == 0 && (b == '\r' || b == '\n')) {
		/* Before a command: thrown away; a lone LF is a kick. */
		rd->kick_bytes++;
		rd->kicks += b == '\n';
		return 0;
	}
	if (sim_buf_add(&c->in, &b, 1))
		return -1;
	if (b == '\n')
		rd->nl++;
	else if (b != '\r')
		rd->nl = 0;
	if (rd->nl < 2 && c->in.len < s->lim.max_header_bytes)
		return 0;
	rd->nl = 0;
	if (sim_fs_read_body(c, sim_fs_content_length(c->in.p, c->in.len)) < 0 ||
	    sim_fs_run(c, rd) < 0)
		return -1;
	return 1;
}

static void *
sim_fs_conn_main(void *arg)
{
	struct sim_conn *c = arg;
	struct fsesl_sim *s = c->s;
	struct sim_fs_rd rd = {0};
	const uint64_t poll_ns = (s->cfg.event_poll_ms ? s->cfg.event_poll_ms : 20) * 1000000ull;

	/* The greeting (SILENT_ACCEPT holds it). */
	if (sim_fs_flush(c, &rd, false) < 0)
		goto out;
	for (;;) {
		/* Another thread asked: a notice to write, a close, a fault. */
		if (atomic_exchange_explicit(&c->poked, false, memory_order_acquire) &&
		    sim_fs_flush(c, &rd, false) < 0)
			break;
		unsigned char b;
		ssize_t r = recv(c->fd, &b, 1, MSG_DONTWAIT);
		if (r == 1) {
			int ran = sim_fs_byte(c, &rd, b);
			if (ran < 0)
				break;
			if (ran)
				continue; /* straight back to reading: no events yet */
		} else if (r == 0) {
			/* EOF: what was read has run; the notice, then the close. */
			pthread_mutex_lock(&s->lk);
			if (!c->closing)
				sim_goodbye(c, SIM_NOTICE_BYE);
			pthread_mutex_unlock(&s->lk);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			break;
		}
		/* No byte of a next command in hand: log lines and events out. */
		if (c->in.len == 0) {
			sim_burn(rd.debt_ns);
			rd.debt_ns = 0;
			if (sim_fs_flush(c, &rd, true) < 0)
				break;
		}
		if (r == 1) {
			sched_yield();
		} else if (r < 0) {
			/* Counted before the poll: the queue was looked at
			 * above, so what is fired from now on waits. */
			pthread_mutex_lock(&s->lk);
			s->c.fs_polls++;
			pthread_mutex_unlock(&s->lk);
			sim_fs_wait(c, POLLIN, sim_now_ns() + poll_ns);
		}
	}
out:
	sim_fs_conn_end(c, &rd);
	sim_buf_free(&rd.w);
	return NULL;
}

/* s->lk held (the loop, accepting). */
int
sim_fs_conn_start(struct sim_conn *c)
{
	pthread_attr_t at;
	int rc;

	c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wake_fd < 0)
		return -errno;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, SIM_FS_STACK);
	rc = pthread_create(&c->th, &at, sim_fs_conn_main, c);
	pthread_attr_destroy(&at);
	return -rc;
}

/* Joins and frees the connections whose threads ended (s->lk held). */
void
sim_fs_reap(struct fsesl_sim *s)
{
	while (s->zombies) {
		struct sim_conn *c = s->zombies;
		s->zombies = c->zombie_next;
		pthread_join(c->th, NULL);
		if (c->wake_fd >= 0)
			close(c->wake_fd);
		sim_conn_free(c);
	}
}

/* ------------------------------------------------------------------ */
/* The dispatch thread                                                  */
/* ------------------------------------------------------------------ */

/* s->lk held. ev NULL: an API event nobody subscribed to. */
void
sim_fs_post(struct fsesl_sim *s, struct sim_event *ev)
{
	if (s->dq_len == s->dq_cap) {
		size_t ncap = s->dq_cap ? s->dq_cap * 2 : 256;
		struct sim_event **nq = malloc(ncap * sizeof(*nq));
		if (!nq) {
			sim_event_unref(ev);
			return;
		}
		for (size_t i = 0; i < s->dq_len; i++)
			nq[i] = s->dq[(s->dq_head + i) % s->dq_cap];
		free(s->dq);
		s->dq = nq;
		s->dq_cap = ncap;
		s->dq_head = 0;
	}
	s->dq[(s->dq_head + s->dq_len) % s->dq_cap] = ev;
	s->dq_len++;
	s->dq_posted++;
	pthread_cond_signal(&s->disp_cv);
}

static void *
sim_fs_dispatch_main(void *arg)
{
	struct fsesl_sim *s = arg;
	const uint64_t cost = (uint64_t)s->cfg.fs_dispatch_cost_us * 1000u;

	pthread_mutex_lock(&s->lk);
	while (!s->disp_stop) {
		if (!s->dq_len) {
			pthread_cond_wait(&s->disp_cv, &s->lk);
			continue;
		}
		struct sim_event *ev = s->dq[s->dq_head];
		s->dq_head = (s->dq_head + 1) % s->dq_cap;
		s->dq_len--;
		pthread_mutex_unlock(&s->lk);
		sim_burn(cost);
		pthread_mutex_lock(&s->lk);
		if (ev)
			sim_deliver(s, ev);
		s->dq_done++;
		if (s->dq_waiters)
			pthread_cond_broadcast(&s->settled_cv);
	}
	pthread_mutex_unlock(&s->lk);
	return NULL;
}

/* Waits until every event posted so far is in its subscribers' queues, so
 * that an event fired through the API is queued when the call returns, in
 * this mode as in the default one (where the loop delivers at once). */
void
sim_fs_settle(struct fsesl_sim *s)
{
	pthread_mutex_lock(&s->lk);
	uint64_t target = s->dq_posted;
	s->dq_waiters++;
	while (s->disp_on && !s->disp_stop && s->dq_done < target)
		pthread_cond_wait(&s->settled_cv, &s->lk);
	s->dq_waiters--;
	pthread_mutex_unlock(&s->lk);
}

int
sim_fs_start(struct fsesl_sim *s)
{
	int rc = pthread_create(&s->disp, NULL, sim_fs_dispatch_main, s);

	s->disp_on = rc == 0;
	return -rc;
}

/* After the loop has stopped: every connection thread ends (each is
 * poked and joined), then the dispatch thread. */
void
sim_fs_stop(struct fsesl_sim *s)
{
	pthread_mutex_lock(&s->lk);
	s->stopping = true;
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (c->threaded)
			sim_conn_poke(c);
	for (;;) {
		bool any = false;
		for (struct sim_conn *c = s->conns; c; c = c->next)
			any = any || c->threaded;
		if (!any)
			break;
		pthread_cond_wait(&s->gone_cv, &s->lk);
	}
	sim_fs_reap(s);
	s->disp_stop = true;
	pthread_cond_signal(&s->disp_cv);
	pthread_cond_broadcast(&s->settled_cv);
	pthread_mutex_unlock(&s->lk);
	if (s->disp_on)
		pthread_join(s->disp, NULL);
	s->disp_on = false;
	while (s->dq_len) {
		sim_event_unref(s->dq[s->dq_head]);
		s->dq_head = (s->dq_head + 1) % s->dq_cap;
		s->dq_len--;
	}
	free(s->dq);
	s->dq = NULL;
}
