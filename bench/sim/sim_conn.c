/*
 * sim_conn.c - a connection on the loop thread: reading, running the
 * complete commands in its input (with the per-command costs and the DELAY
 * fault), flushing its queued events when no command byte is pending, one
 * send() per turn; and the listener that accepts connections.
 */
#include "sim_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

void
sim_ep_update(struct sim_conn *c)
{
	uint32_t want = 0;

	if (c->threaded)
		return; /* its own thread polls it */
	if (c->reading)
		want |= EPOLLIN;
	if (c->want_out)
		want |= EPOLLOUT;
	if (c->f[FSESL_SIM_FAULT_STALL].on)
		want = 0;
	if (want == c->ep_events)
		return;
	struct epoll_event ee = {.events = want, .data.ptr = c};
	epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &ee);
	c->ep_events = want;
}

/* Runs every complete command in the input buffer (unless parked), then
 * appends queued events if the input holds no byte of a next command. */
void
sim_conn_process(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	if (c->silent || c->f[FSESL_SIM_FAULT_STALL].on)
		return;
	while (!c->closing && !c->hard_close && c->park == PARK_NONE &&
	       sim_buf_avail(&c->out) < SIM_OUT_HIGH) {
		const char *p = c->in.p + c->in.off;
		size_t n = sim_buf_avail(&c->in);
		/* Leading CR/LF before a command are thrown away (§2.4); a lone LF
		 * is a "kick" that lets queued events out. */
		size_t k = 0;
		while (k < n && (p[k] == '\n' || p[k] == '\r')) {
			if (p[k] == '\n')
				s->c.kicks++;
			k++;
		}
		c->in.off += k;
		p += k;
		n -= k;
		if (n == 0)
			break;
		uint64_t wait_ns = 0;
		bool delay = c->f[FSESL_SIM_FAULT_DELAY].on && c->f[FSESL_SIM_FAULT_DELAY].a > 0;
		if (!c->delay_done && (delay || s->cfg.api_cost_us || s->cfg.bgapi_cost_us)) {
			/* Only a complete command waits: DELAY fault, and the real
			 * server's per-command cost when configured. */
			struct fsesl_client_packet probe;
			int perr = 0;
			ssize_t r = fsesl_client_packet_parse(p, n, &s->lim, &probe, &perr);
			if (r == FSESL_PARSE_PARTIAL)
				break;
			if (delay)
				wait_ns += c->f[FSESL_SIM_FAULT_DELAY].a * 1000000u;
			if (r > 0 && c->authed && probe.line_len >= 4 &&
			    !strncasecmp(probe.line, "api ", 4))
				wait_ns += (uint64_t)s->cfg.api_cost_us * 1000u;
			else if (r > 0 && c->authed && probe.line_len >= 6 &&
			         !strncasecmp(probe.line, "bgapi ", 6))
				wait_ns += (uint64_t)s->cfg.bgapi_cost_us * 1000u;
			if (wait_ns) {
				/* Serial virtual time: this command ends wait_ns after the
				 * previous one, so a late wake-up runs several at once
				 * and the rate stays 1/cost despite timer latency. */
				uint64_t now = sim_now_ns();
				uint64_t start =
				    c->busy_until > c->data_since ? c->busy_until : c->data_since;
				c->busy_until = start + wait_ns;
				if (delay)
					s->c.faults[FSESL_SIM_FAULT_DELAY]++;
				if (c->busy_until > now) {
					c->park = PARK_DELAY;
					c->park_deadline = c->busy_until;
					break;
				}
			}
		}
		struct fsesl_client_packet pkt;
		int err = 0;
		ssize_t r = fsesl_client_packet_parse(p, n, &s->lim, &pkt, &err);
		if (r == FSESL_PARSE_PARTIAL)
			break;
		if (r < 0) {
			/* A bad client Content-Length closes the connection (1.11.2+). */
			sim_goodbye(c, SIM_NOTICE_BYE);
			break;
		}
		c->delay_done = false;
		sim_exec(c, &pkt);
		c->in.off += (size_t)r;
	}
	if (sim_buf_avail(&c->in) == 0)
		c->in.off = c->in.len = 0;
	if (c->closing || c->hard_close || c->park != PARK_NONE || sim_buf_avail(&c->in))
		return;
	/* Idle: log lines, then events (the real loop sends one log line then all
	 * events per pass; with everything already queued that is the same). */
	/* Like the real connection thread, which blocks in its write: nothing
	 * more is taken from the queues while the peer is not reading, so a
	 * stalled subscriber fills its queue and gets the lost-events kill. */
	if (sim_buf_avail(&c->out) >= SIM_OUT_HIGH)
		return;
	if (s->cfg.event_poll_ms) {
		uint64_t now = sim_now_ns(), p = (uint64_t)s->cfg.event_poll_ms * 1000000u;
		if (c->woke) {
			/* Awake: flush now, then poll() for up to event_poll_ms. */
			c->woke = false;
			c->poll_at = now + p;
		} else if (c->q_len || c->logq_n) {
			/* Queued while the thread sleeps: out at its next poll timeout
			 * (it re-polls every event_poll_ms since it last woke). */
			if (c->poll_at <= now)
				c->poll_at += ((now - c->poll_at) / p + 1) * p;
			return;
		}
	}
	if (c->logq_n) {
		sim_buf_add(&c->out, c->logq.p + c->logq.off, sim_buf_avail(&c->logq));
		c->msgs_written += c->logq_n;
		c->logq.off = c->logq.len = 0;
		c->logq_n = 0;
	}
	sim_conn_write_events(c);
}

void
sim_conn_free(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	if (c->events_on)
		s->n_event_conns--;
	if (c->log_level >= 0)
		s->n_log_conns--;
	sim_conn_drop_queues(c);
	free(c->q);
	sim_buf_free(&c->in);
	sim_buf_free(&c->out);
	sim_buf_free(&c->logq);
	sim_subs_clear(c);
	for (size_t i = 0; i < c->n_filters; i++)
		sim_filter_free(&c->filters[i]);
	free(c->filters);
	free(c->allowed_events);
	free(c->allowed_api);
	free(c->myevents_uuid);
	free(c->msleep_cmd);
	free(c->msleep_arg);
	free(c);
}

void
sim_conn_kill(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->c.active_conns--;
	if (c->dirty) {
		/* Unlink from the dirty list. */
		struct sim_conn **pp = &s->dirty;
		while (*pp && *pp != c)
			pp = &(*pp)->dirty_next;
		if (*pp)
			*pp = c->dirty_next;
	}
	sim_conn_free(c);
}

/* One write() per turn; returns false if the connection was closed. */
bool
sim_conn_write(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;
	uint64_t now = 0;

	if (c->hard_close) {
		sim_conn_kill(c);
		return false;
	}
	if (c->f[FSESL_SIM_FAULT_STALL].on)
		return true;
	size_t n = sim_buf_avail(&c->out);
	if (n && c->pause_deadline) {
		now = sim_now_ns();
		if (now < c->pause_deadline)
			return true;
		c->pause_deadline = 0;
	}
	bool cut = false;
	if (n) {
		struct sim_fault_state *fb = &c->f[FSESL_SIM_FAULT_CLOSE_AFTER_BYTES];
		if (fb->on && c->bytes_written - fb->base + n >= fb->a) {
			n = (size_t)(fb->a - (c->bytes_written - fb->base));
			cut = true;
		}
		struct sim_fault_state *ft = &c->f[FSESL_SIM_FAULT_TINY_WRITES];
		if (ft->on && ft->a && n > ft->a) {
			n = (size_t)ft->a;
			s->c.faults[FSESL_SIM_FAULT_TINY_WRITES]++;
			if (ft->b)
				c->pause_deadline = (now ? now : sim_now_ns()) + ft->b * 1000u;
		}
		ssize_t w = n ? send(c->fd, c->out.p + c->out.off, n, MSG_NOSIGNAL) : 0;
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				sim_conn_kill(c);
				return false;
			}
			w = 0;
			c->pause_deadline = 0;
		}
		c->out.off += (size_t)w;
		c->bytes_written += (uint64_t)w;
		s->c.bytes_out += (uint64_t)w;
		if (cut && (size_t)w == n) {
			s->c.faults[FSESL_SIM_FAULT_CLOSE_AFTER_BYTES]++;
			sim_conn_kill(c);
			return false;
		}
		if (sim_buf_avail(&c->out) == 0)
			c->out.off = c->out.len = 0;
	}
	if (sim_buf_avail(&c->out) == 0 && c->closing) {
		/* Swallow unread input first: closing with unread bytes sends a RST,
		 * which can destroy the notice still in the client's buffer. */
		char sink[4096];
		while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		shutdown(c->fd, SHUT_RDWR);
		sim_conn_kill(c);
		return false;
	}
	c->want_out = sim_buf_avail(&c->out) > 0 && !c->pause_deadline;
	sim_ep_update(c);
	return true;
}

void
sim_conn_read(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	for (;;) {
		if (sim_buf_avail(&c->in) >= SIM_IN_HIGH) {
			c->reading = false;
			sim_ep_update(c);
			return;
		}
		if (sim_buf_reserve(&c->in, SIM_READ_CHUNK)) {
			c->hard_close = true;
			return;
		}
		bool was_empty = sim_buf_avail(&c->in) == 0;
		ssize_t r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
		if (r > 0) {
			if (was_empty)
				c->data_since = sim_now_ns();
			c->in.len += (size_t)r;
			c->woke = true;
			s->c.bytes_in += (uint64_t)r;
			if ((size_t)r < SIM_READ_CHUNK)
				return;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		/* EOF or error: the server still tries its notice (§4.7) after
		 * running what it already has. */
		c->reading = false;
		sim_ep_update(c);
		if (r == 0) {
			sim_conn_process(c);
			if (!c->closing)
				sim_goodbye(c, SIM_NOTICE_BYE);
		} else {
			c->hard_close = true;
		}
		return;
	}
}

int
sim_listen(struct fsesl_sim *s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->port)};
	int one = 1;

	if (inet_pton(AF_INET, s->listen_addr, &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128)) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (s->port == 0) {
		/* Written before the thread starts only; a re-listen after REFUSE
		 * binds the same port, so fsesl_sim_port() never races with it. */
		socklen_t sl = sizeof(sa);
		getsockname(fd, (struct sockaddr *)&sa, &sl);
		s->port = ntohs(sa.sin_port);
	}
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = s};
	epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ee);
	s->lfd = fd;
	return 0;
}

void
sim_unlisten(struct fsesl_sim *s)
{
	if (s->lfd < 0)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
	close(s->lfd);
	s->lfd = -1;
}

void
sim_accept(struct fsesl_sim *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->c.accepted++;
		if (s->rude_reject) {
			/* Best effort, as the real server: the socket buffer is empty. */
			s->c.faults[FSESL_SIM_FAULT_RUDE_REJECT]++;
			ssize_t w = send(fd, SIM_RUDE SIM_NOTICE_BYE,
			    sizeof(SIM_RUDE SIM_NOTICE_BYE) - 1, MSG_NOSIGNAL);
			(void)w;
			shutdown(fd, SHUT_RDWR);
			close(fd);
			continue;
		}
		struct sim_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->s = s;
		c->fd = fd;
		c->id = ++s->next_id;
		c->log_level = -1;
		c->allow_log = true;
		c->reading = true;
		c->wake_fd = -1;
		c->threaded = s->cfg.fs_like;
		memcpy(c->f, s->tmpl, sizeof(c->f));
		if (!s->cfg.fs_like) {
			struct epoll_event ee = {.events = EPOLLIN, .data.ptr = c};
			if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ee)) {
				close(fd);
				free(c);
				continue;
			}
			c->ep_events = EPOLLIN;
		}
		if (s->silent_accept) {
			s->c.faults[FSESL_SIM_FAULT_SILENT_ACCEPT]++;
			c->silent = true;
			c->reading = false;
		} else {
			if (s->cfg.auth_timeout_ms)
				c->auth_deadline =
				    sim_now_ns() + (uint64_t)s->cfg.auth_timeout_ms * 1000000u;
			sim_emit(c, SIM_GREETING, sizeof(SIM_GREETING) - 1);
		}
		/* The real server's thread per connection (sim_fs.c). */
		if (s->cfg.fs_like && sim_fs_conn_start(c)) {
			if (c->wake_fd >= 0)
				close(c->wake_fd);
			close(fd);
			sim_conn_free(c);
			continue;
		}
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->c.active_conns++;
		sim_ep_update(c);
	}
}
