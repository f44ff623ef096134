/*
 * sim_loop.c - the server's thread: one level-triggered epoll loop over the
 * listener, the control eventfd and every connection; deadlines (heartbeat,
 * flood, auth timeouts, parked connections, delayed jobs, event polls) with
 * nanosecond timeouts; then every touched connection is pumped once.
 */
#include "sim_int.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>

static uint64_t
sim_min_deadline(struct fsesl_sim *s)
{
	uint64_t d = UINT64_MAX;

#define SIM_MIN(x)                                                                                 \
	do {                                                                                       \
		if ((x) && (x) < d)                                                                \
			d = (x);                                                                   \
	} while (0)
	SIM_MIN(s->hb_deadline);
	SIM_MIN(sim_flood_due(s));
	for (size_t i = 0; i < s->n_jobs; i++)
		SIM_MIN(s->jobs[i].deadline);
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		SIM_MIN(c->auth_deadline);
		if (c->threaded)
			continue;
		if (c->closing)
			SIM_MIN(c->close_deadline);
		if (s->cfg.event_poll_ms && (c->q_len || c->logq_n))
			SIM_MIN(c->poll_at);
		if (c->park != PARK_NONE)
			SIM_MIN(c->park_deadline);
		if (sim_buf_avail(&c->out))
			SIM_MIN(c->pause_deadline);
	}
#undef SIM_MIN
	return d;
}

static void
sim_timers(struct fsesl_sim *s, uint64_t now)
{
	if (s->hb_deadline && now >= s->hb_deadline) {
		s->hb_deadline += (uint64_t)s->hb_ms * 1000000u;
		if (s->hb_deadline <= now)
			s->hb_deadline = now + (uint64_t)s->hb_ms * 1000000u;
		sim_heartbeat(s);
	}
	uint64_t flood = sim_flood_due(s);
	if (flood && now >= flood)
		sim_flood(s, now);
	for (size_t i = 0; i < s->n_jobs;) {
		struct sim_job *j = &s->jobs[i];
		if (now < j->deadline) {
			i++;
			continue;
		}
		struct sim_job job = *j;
		*j = s->jobs[--s->n_jobs];
		sim_job_finish(s, job.uuid, job.cmd, job.arg, "+OK", 3);
		free(job.uuid);
		free(job.cmd);
		free(job.arg);
	}
	for (struct sim_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->auth_deadline && now >= c->auth_deadline) {
			c->auth_deadline = 0;
			sim_goodbye(c, SIM_NOTICE_BYE);
		}
		/* The rest is the loop's part of a connection; a threaded one's
		 * thread waits for itself. */
		if (c->threaded)
			continue;
		if (c->park != PARK_NONE && now >= c->park_deadline) {
			if (c->park == PARK_MSLEEP) {
				sim_park_done(c);
			} else {
				c->park = PARK_NONE;
				c->delay_done = true;
			}
			c->woke = true;
			sim_mark_dirty(c);
		}
		if (c->pause_deadline && now >= c->pause_deadline)
			sim_mark_dirty(c);
		if (s->cfg.event_poll_ms && (c->q_len || c->logq_n) && now >= c->poll_at &&
		    c->poll_at) {
			c->woke = true; /* the poll() timed out */
			sim_mark_dirty(c);
		}
		if (c->closing && c->close_deadline && now >= c->close_deadline) {
			c->hard_close = true;
			sim_mark_dirty(c);
		}
	}
}

void *
sim_thread(void *arg)
{
	struct fsesl_sim *s = arg;
	struct epoll_event evs[256];
	bool no_pwait2 = false;

	/* The default 50 µs timer slack would double a 50 µs api_cost_us. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

	/* The state lock is held for a turn, released while waiting. */
	pthread_mutex_lock(&s->lk);
	while (s->running) {
		uint64_t d = sim_min_deadline(s);
		uint64_t now = sim_now_ns();
		int n;
		if (s->dirty)
			d = now;
		pthread_mutex_unlock(&s->lk);
		if (d == UINT64_MAX) {
			n = epoll_wait(s->ep, evs, 256, -1);
		} else if (!no_pwait2) {
			/* Nanosecond timeout: api_cost_us parks for tens of µs. */
			uint64_t w = d <= now ? 0 : d - now;
			struct timespec ts = {.tv_sec = (time_t)(w / 1000000000u),
			    .tv_nsec = (long)(w % 1000000000u)};
			n = epoll_pwait2(s->ep, evs, 256, &ts, NULL);
			if (n < 0 && errno == ENOSYS) {
				no_pwait2 = true;
				n = 0;
			}
		} else {
			n = epoll_wait(
			    s->ep, evs, 256, d <= now ? 0 : (int)((d - now + 999999u) / 1000000u));
		}
		if (n < 0)
			n = 0;
		pthread_mutex_lock(&s->lk);
		for (int i = 0; i < n; i++)
			if (evs[i].data.ptr == &s->efd)
				sim_drain_ops(s);
		/* Threaded connections that ended (they wake the loop too). */
		sim_fs_reap(s);
		if (!s->running)
			break;
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &s->efd)
				continue;
			if (p == s) {
				if (s->lfd >= 0)
					sim_accept(s);
				continue;
			}
			struct sim_conn *c = p;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				if (!c->f[FSESL_SIM_FAULT_STALL].on && !c->silent)
					sim_conn_read(c);
				else if (evs[i].events & (EPOLLHUP | EPOLLERR))
					c->hard_close = true; /* level-triggered: would spin */
			}
			sim_mark_dirty(c);
		}
		sim_timers(s, sim_now_ns());
		/* Pump every touched connection: run commands, flush, one write. */
		struct sim_conn *list = s->dirty;
		s->dirty = NULL;
		while (list) {
			struct sim_conn *c = list;
			list = c->dirty_next;
			c->dirty = false;
			c->dirty_next = NULL;
			sim_conn_process(c);
			/* process() may have re-marked c; take it off again. */
			if (c->dirty) {
				struct sim_conn **pp = &s->dirty;
				while (*pp && *pp != c)
					pp = &(*pp)->dirty_next;
				if (*pp)
					*pp = c->dirty_next;
				c->dirty = false;
				c->dirty_next = NULL;
			}
			if (!sim_conn_write(c))
				continue;
			/* More to do this turn (tiny writes, leftover commands)? */
			if (!c->reading && !c->closing && sim_buf_avail(&c->in) < SIM_IN_HIGH &&
			    !c->silent) {
				c->reading = true;
				sim_ep_update(c);
			}
		}
	}
	pthread_mutex_unlock(&s->lk);
	return NULL;
}
