/*
 * fsesl_sim.c - the public API of fsesl_sim.h: configuration, start and
 * stop, and the calls that hand control operations to the server's thread
 * (sim_ctl.c).
 */
#include "sim_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

void
fsesl_sim_config_init(struct fsesl_sim_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen_addr = "127.0.0.1";
	cfg->password = "ClueCon";
	cfg->heartbeat_interval_ms = 20000;
	cfg->auth_timeout_ms = 25000;
	cfg->event_queue_max = 100000;
	cfg->event_drop_kill = 500;
	cfg->hostname = "sim";
	cfg->max_sessions = 1000;
}

void
fsesl_sim_config_fs_like(struct fsesl_sim_config *cfg)
{
	/* Calibrated on a 2-vCPU VM against the figures of
	 * docs/real-server-measurements.md; docs/simulator.md has the runs. */
	cfg->fs_like = true;
	cfg->event_poll_ms = 20;
	/* The recv() and sched_yield() per byte cost here, for real, about as
	 * much as the measured server spends per command: no CPU on top. */
	cfg->api_cost_us = 0;
	cfg->fs_byte_cost_ns = 0;
	/* The real dispatch thread: 12-19 us per api; with the hand-over
	 * (a condition variable's wake) this gives about that. */
	cfg->fs_dispatch_cost_us = 15;
	/* With the reading and the wake-up, ~1.3 ms per bgapi held. */
	cfg->bgapi_cost_us = 1100;
}

static void
sim_free(struct fsesl_sim *s)
{
	if (s->ep >= 0)
		close(s->ep);
	if (s->efd >= 0)
		close(s->efd);
	if (s->lfd >= 0)
		close(s->lfd);
	for (size_t i = 0; i < s->n_users; i++) {
		free((char *)s->users[i].user);
		free((char *)s->users[i].password);
		free((char *)s->users[i].allowed_events);
		free((char *)s->users[i].allowed_api);
	}
	free(s->users);
	for (size_t i = 0; i < s->n_chans; i++) {
		free(s->chans[i].name);
		free(s->chans[i].dest);
	}
	free(s->chans);
	for (size_t i = 0; i < s->n_jobs; i++) {
		free(s->jobs[i].uuid);
		free(s->jobs[i].cmd);
		free(s->jobs[i].arg);
	}
	free(s->jobs);
	for (size_t i = 0; i < s->n_rec; i++)
		free(s->rec[i]);
	free(s->rec);
	sim_buf_free(&s->scratch);
	free(s->listen_addr);
	free(s->password);
	free(s->hostname);
	free((char *)s->cfg.ipv4);
	free((char *)s->cfg.ipv6);
	free(s->dq);
	sim_flood_stop(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lk);
	pthread_cond_destroy(&s->gone_cv);
	pthread_cond_destroy(&s->disp_cv);
	pthread_cond_destroy(&s->settled_cv);
	free(s);
}

static char *
sim_dup_or_null(const char *p)
{
	return p ? strdup(p) : NULL;
}

int
fsesl_sim_start(const struct fsesl_sim_config *cfg, fsesl_sim **out, uint16_t *port_out)
{
	struct fsesl_sim_config def;
	struct fsesl_sim *s;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg) {
		fsesl_sim_config_init(&def);
		cfg = &def;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ep = s->efd = s->lfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&s->lk, NULL);
	pthread_cond_init(&s->gone_cv, NULL);
	pthread_cond_init(&s->disp_cv, NULL);
	pthread_cond_init(&s->settled_cv, NULL);
	s->cfg = *cfg;
	s->listen_addr = strdup(cfg->listen_addr ? cfg->listen_addr : "127.0.0.1");
	s->password = strdup(cfg->password ? cfg->password : "ClueCon");
	s->hostname = strdup(cfg->hostname ? cfg->hostname : "sim");
	s->cfg.ipv4 = sim_dup_or_null(cfg->ipv4);
	s->cfg.ipv6 = sim_dup_or_null(cfg->ipv6);
	if (!s->cfg.event_queue_max)
		s->cfg.event_queue_max = 100000;
	if (!s->cfg.max_sessions)
		s->cfg.max_sessions = 1000;
	if (cfg->n_users) {
		s->users = calloc(cfg->n_users, sizeof(*s->users));
		if (!s->users)
			goto fail;
		for (size_t i = 0; i < cfg->n_users; i++) {
			const struct fsesl_sim_user *u = &cfg->users[i];
			if (!u->user)
				continue;
			struct fsesl_sim_user *d = &s->users[s->n_users++];
			d->user = strdup(u->user);
			d->password = sim_dup_or_null(u->password);
			d->allowed_events = sim_dup_or_null(u->allowed_events);
			d->allowed_api = sim_dup_or_null(u->allowed_api);
			d->allow_log = u->allow_log;
		}
	}
	s->cfg.users = NULL;
	s->cfg.n_users = 0;
	if (!s->listen_addr || !s->password || !s->hostname)
		goto fail;
	fsesl_limits_init(&s->lim);
	s->lim.max_header_bytes = 10u * 1024u * 1024u;
	s->lim.max_body_bytes = 16u * 1024u * 1024u;
	sim_uuid(s->core_uuid);
	s->start_us = sim_wall_us();
	s->seq = 1000;
	s->hb_ms = cfg->heartbeat_interval_ms;
	if (s->hb_ms)
		s->hb_deadline = sim_now_ns() + (uint64_t)s->hb_ms * 1000000u;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->ep < 0 || s->efd < 0)
		goto fail;
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &s->efd};
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd, &ee))
		goto fail;
	s->port = cfg->port;
	int rc = sim_listen(s);
	if (rc) {
		sim_free(s);
		return rc;
	}
	if (s->cfg.fs_like && sim_fs_start(s))
		goto fail;
	s->running = true;
	if (pthread_create(&s->thr, NULL, sim_thread, s)) {
		s->running = false;
		sim_fs_stop(s);
		goto fail;
	}
	if (port_out)
		*port_out = s->port;
	*out = s;
	return 0;
fail:
	sim_free(s);
	return -ENOMEM;
}

void
fsesl_sim_stop(fsesl_sim *s)
{
	if (!s)
		return;
	struct sim_op op = {.kind = OP_STOP};
	sim_call(s, &op);
	pthread_join(s->thr, NULL);
	sim_fs_stop(s);
	while (s->conns)
		sim_conn_kill(s->conns);
	sim_free(s);
}

uint16_t
fsesl_sim_port(const fsesl_sim *s)
{
	return s ? s->port : 0;
}

void
fsesl_sim_set_load(fsesl_sim *s, const struct fsesl_sim_load *load)
{
	struct sim_op op = {.kind = OP_LOAD};

	if (!s || !load)
		return;
	op.u.load = *load;
	sim_call(s, &op);
}

void
fsesl_sim_set_heartbeat_interval(fsesl_sim *s, unsigned int ms)
{
	struct sim_op op = {.kind = OP_HB_INTERVAL, .u.ms = ms};

	if (s)
		sim_call(s, &op);
}

void
fsesl_sim_fire_heartbeat(fsesl_sim *s)
{
	struct sim_op op = {.kind = OP_FIRE_HB};

	if (!s)
		return;
	sim_call(s, &op);
	sim_fs_settle(s);
}

int
fsesl_sim_fire_event(fsesl_sim *s, const char *name, const char *subclass, const char *const *kv,
    size_t n_kv, const char *body)
{
	struct sim_op op = {.kind = OP_FIRE_EVENT};

	if (!s || !name || (n_kv && !kv))
		return -EINVAL;
	for (size_t i = 0; i < n_kv; i++)
		if (!kv[i])
			return -EINVAL;
	op.u.fire.name = name;
	op.u.fire.subclass = subclass;
	op.u.fire.kv = kv;
	op.u.fire.n_kv = n_kv;
	op.u.fire.body = body;
	int rc = sim_call(s, &op);
	sim_fs_settle(s);
	return rc;
}

int
fsesl_sim_fault(fsesl_sim *s, uint64_t conn_id, enum fsesl_sim_fault f, uint64_t a, uint64_t b)
{
	struct sim_op op = {.kind = OP_FAULT};

	if (!s || (unsigned)f >= FSESL_SIM_FAULT__COUNT)
		return -EINVAL;
	op.u.fault.conn = conn_id;
	op.u.fault.f = f;
	op.u.fault.a = a;
	op.u.fault.b = b;
	return sim_call(s, &op);
}

void
fsesl_sim_clear_faults(fsesl_sim *s)
{
	struct sim_op op = {.kind = OP_CLEAR_FAULTS};

	if (s)
		sim_call(s, &op);
}

void
fsesl_sim_counters(fsesl_sim *s, struct fsesl_sim_counters *out)
{
	struct sim_op op = {.kind = OP_COUNTERS, .u.counters = out};

	if (!s || !out)
		return;
	sim_call(s, &op);
}

void
fsesl_sim_record_commands(fsesl_sim *s, bool on)
{
	struct sim_op op = {.kind = OP_RECORD, .u.on = on};

	if (s)
		sim_call(s, &op);
}

size_t
fsesl_sim_recorded(fsesl_sim *s, char ***lines_out)
{
	struct sim_op op = {.kind = OP_RECORDED};
	char **lines = NULL;

	if (!s || !lines_out)
		return 0;
	op.u.rec.lines = &lines;
	sim_call(s, &op);
	*lines_out = lines;
	return op.u.rec.n;
}

size_t
fsesl_sim_conn_ids(fsesl_sim *s, uint64_t *ids, size_t max)
{
	struct sim_op op = {.kind = OP_CONN_IDS};

	if (!s)
		return 0;
	op.u.ids.ids = ids;
	op.u.ids.max = ids ? max : 0;
	sim_call(s, &op);
	return op.u.ids.n;
}
