/*
 * sim_dispatch.c - who receives an event: subscriptions and filters
 * (docs/protocol.md §8.2), the per-connection queues with the lost-events
 * kill, and the events the core fires by itself (HEARTBEAT and RE_SCHEDULE,
 * API, log lines).
 */
#include "sim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static bool
sim_filter_match(const struct sim_filter *f, const char *val)
{
	if (f->is_re)
		return f->re && pcre2_match(f->re, (PCRE2_SPTR)val, PCRE2_ZERO_TERMINATED, 0, 0,
		                    f->md, NULL) >= 0;
	return !strcasecmp(f->cmp, val);
}

/* docs/protocol.md §8.2: with filters, pass only if some positive filter
 * matches and no negative one does; a filter on an absent header is inert. */
static bool
sim_filters_pass(const struct sim_conn *c, const struct sim_event *ev)
{
	bool pass = false;

	if (c->n_filters == 0)
		return true;
	for (size_t i = 0; i < c->n_filters; i++) {
		const struct sim_filter *f = &c->filters[i];
		const char *v = sim_event_get(ev, f->name);
		if (!v)
			continue;
		if (sim_filter_match(f, v)) {
			if (f->neg)
				return false;
			pass = true;
		}
	}
	return pass;
}

static bool
sim_subscribed(const struct sim_conn *c, const struct sim_event *ev)
{
	if (!c->authed || !c->events_on)
		return false;
	if (c->myevents && c->myevents_uuid) {
		const char *u = sim_event_get(ev, "Unique-ID");
		if (!u || strcmp(u, c->myevents_uuid))
			return false;
	}
	if (c->ev_all)
		return true;
	if (!c->types[ev->type])
		return false;
	if (ev->type != EV_CUSTOM || !ev->subclass)
		return true;
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcasecmp(c->subs[i], ev->subclass))
			return true;
	return false;
}

static void
sim_enqueue(struct sim_conn *c, struct sim_event *ev)
{
	struct fsesl_sim *s = c->s;

	if (c->closing || c->hard_close)
		return;
	if (c->q_len >= s->cfg.event_queue_max) {
		s->c.events_dropped++;
		if (++c->drop_streak > s->cfg.event_drop_kill) {
			s->c.lost_event_kills++;
			sim_conn_drop_queues(c);
			/* The real server writes this from another thread, possibly in
			 * the middle of another message; here it follows whole ones. */
			sim_emit(c, SIM_NOTICE_LOST, sizeof(SIM_NOTICE_LOST) - 1);
			sim_closing(c);
		}
		return;
	}
	if (c->q_len == c->q_cap) {
		size_t ncap = c->q_cap ? c->q_cap * 2 : 64;
		struct sim_event **nq = malloc(ncap * sizeof(*nq));
		if (!nq) {
			s->c.events_dropped++;
			return;
		}
		for (size_t i = 0; i < c->q_len; i++)
			nq[i] = c->q[(c->q_head + i) % c->q_cap];
		free(c->q);
		c->q = nq;
		c->q_cap = ncap;
		c->q_head = 0;
	}
	c->drop_streak = 0;
	ev->refs++;
	c->q[(c->q_head + c->q_len) % c->q_cap] = ev;
	c->q_len++;
	sim_mark_dirty(c);
}

/* Hands the event to every subscribed connection, then drops the caller's
 * reference. */
void
sim_deliver(struct fsesl_sim *s, struct sim_event *ev)
{
	if (!ev)
		return;
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (sim_subscribed(c, ev) && sim_filters_pass(c, ev))
			sim_enqueue(c, ev);
	sim_event_unref(ev);
}

/* An event the core fired: delivered now, or in the FreeSWITCH-like mode
 * by the dispatch thread, as the real server's core hands events over. */
void
sim_dispatch(struct fsesl_sim *s, struct sim_event *ev)
{
	if (ev && s->cfg.fs_like && !s->deliver_now)
		sim_fs_post(s, ev);
	else
		sim_deliver(s, ev);
}

bool
sim_anyone_wants(struct fsesl_sim *s, int type)
{
	if (s->n_event_conns == 0)
		return false;
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (c->authed && c->events_on && (c->ev_all || c->types[type]))
			return true;
	return false;
}

void
sim_uptime_text(struct fsesl_sim *s, char *buf, size_t cap, uint64_t *ms_out)
{
	uint64_t us = sim_wall_us() - s->start_us;
	uint64_t sec = us / 1000000u;
	unsigned long long y = sec / (365u * 86400u), d = (sec / 86400u) % 365u,
	                   h = (sec / 3600u) % 24u, m = (sec / 60u) % 60u, se = sec % 60u,
	                   ms = (us / 1000u) % 1000u, mu = us % 1000u;

	snprintf(buf, cap,
	    "%llu year%s, %llu day%s, %llu hour%s, %llu minute%s, %llu second%s, "
	    "%llu millisecond%s, %llu microsecond%s",
	    y, y == 1 ? "" : "s", d, d == 1 ? "" : "s", h, h == 1 ? "" : "s", m, m == 1 ? "" : "s",
	    se, se == 1 ? "" : "s", ms, ms == 1 ? "" : "s", mu, mu == 1 ? "" : "s");
	if (ms_out)
		*ms_out = us / 1000u;
}

unsigned int
sim_session_count(struct fsesl_sim *s)
{
	return s->load_set ? s->load.session_count : (unsigned int)s->n_chans;
}

void
sim_heartbeat(struct fsesl_sim *s)
{
	if (s->no_heartbeat) {
		s->c.faults[FSESL_SIM_FAULT_NO_HEARTBEAT]++;
		return;
	}
	if (!sim_anyone_wants(s, EV_HEARTBEAT) && !sim_anyone_wants(s, EV_RE_SCHEDULE)) {
		s->seq += 2; /* the core fires them anyway */
		return;
	}
	char up[256];
	uint64_t up_ms;
	struct sim_event *ev =
	    sim_event_std(s, EV_HEARTBEAT, NULL, "switch_core.c", "send_heartbeat", 95);

	if (!ev)
		return;
	sim_uptime_text(s, up, sizeof(up), &up_ms);
	sim_event_add(ev, "Event-Info", "System Ready");
	sim_event_add(ev, "Up-Time", up);
	sim_event_add(ev, "FreeSWITCH-Version", SIM_VERSION_HB);
	sim_event_addf(ev, "Uptime-msec", "%llu", (unsigned long long)up_ms);
	sim_event_addf(ev, "Session-Count", "%u", sim_session_count(s));
	sim_event_addf(
	    ev, "Max-Sessions", "%u", s->load_set ? s->load.max_sessions : s->cfg.max_sessions);
	sim_event_add(ev, "Session-Per-Sec", "30");
	sim_event_add(ev, "Session-Per-Sec-Last", "0");
	sim_event_add(ev, "Session-Per-Sec-Max", "0");
	sim_event_add(ev, "Session-Per-Sec-FiveMin", "0");
	sim_event_addf(ev, "Session-Since-Startup", "%llu", (unsigned long long)s->sessions_total);
	sim_event_addf(ev, "Session-Peak-Max", "%u", sim_session_count(s));
	sim_event_addf(ev, "Session-Peak-FiveMin", "%u", sim_session_count(s));
	sim_event_addf(ev, "Idle-CPU", "%f", s->load_set ? s->load.idle_cpu : 99.0);
	sim_dispatch(s, ev);

	ev = sim_event_std(
	    s, EV_RE_SCHEDULE, NULL, "switch_scheduler.c", "switch_scheduler_execute", 73);
	if (!ev)
		return;
	sim_event_add(ev, "Task-ID", "1");
	sim_event_add(ev, "Task-Desc", "heartbeat");
	sim_event_add(ev, "Task-Group", "core");
	sim_event_addf(ev, "Task-Runtime", "%llu",
	    (unsigned long long)(sim_wall_us() / 1000000u + (s->hb_ms + 999) / 1000));
	sim_dispatch(s, ev);
}

void
sim_fire_api_event(struct fsesl_sim *s, const char *cmd, const char *arg)
{
	if (!sim_anyone_wants(s, EV_API)) {
		/* The real core fires it anyway: its dispatch thread pays. */
		if (s->cfg.fs_like)
			sim_fs_post(s, NULL);
		return;
	}
	struct sim_event *ev =
	    sim_event_std(s, EV_API, NULL, "switch_loadable_module.c", "switch_api_execute", 2954);
	if (!ev)
		return;
	sim_event_add(ev, "API-Command", cmd);
	if (arg && *arg)
		sim_event_add(ev, "API-Command-Argument", arg);
	sim_dispatch(s, ev);
}

const char *const sim_log_names[8] = {
    "CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"};

/* One log/data line to every connection logging at that level. */
void
sim_log(
    struct fsesl_sim *s, int level, const char *file, const char *func, int line, const char *msg)
{
	if (s->n_log_conns == 0)
		return;
	uint64_t us = sim_wall_us();
	time_t t = (time_t)(us / 1000000u);
	struct tm lt;
	char date[64], body[2048], msgbuf[2304];

	localtime_r(&t, &lt);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &lt);
	int bl = snprintf(body, sizeof(body), "%s.%06llu %.2f%% [%s] %s:%d %s\n", date,
	    (unsigned long long)(us % 1000000u), s->load_set ? s->load.idle_cpu : 99.0,
	    sim_log_names[level & 7], file, line, msg);
	if (bl < 0 || (size_t)bl >= sizeof(body))
		bl = (int)strlen(body);
	int ml = snprintf(msgbuf, sizeof(msgbuf),
	    "Content-Type: log/data\nContent-Length: %d\nLog-Level: %d\nText-Channel: 3\n"
	    "Log-File: %s\nLog-Func: %s\nLog-Line: %d\nUser-Data: \n\n%s",
	    bl, level, file, func, line, body);
	if (ml < 0 || (size_t)ml >= sizeof(msgbuf))
		return;
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		if (!c->authed || c->log_level < level || c->closing)
			continue;
		if (c->logq_n >= s->cfg.event_queue_max)
			continue;
		sim_buf_add(&c->logq, msgbuf, (size_t)ml);
		c->logq_n++;
		sim_mark_dirty(c);
	}
}

void
sim_filter_free(struct sim_filter *f)
{
	pcre2_match_data_free(f->md);
	pcre2_code_free(f->re);
	free(f->name);
	free(f->value);
}

void
sim_filter_add(struct sim_conn *c, const char *name, const char *value)
{
	struct sim_filter *nf = realloc(c->filters, (c->n_filters + 1) * sizeof(*nf));

	if (!nf)
		return;
	c->filters = nf;
	struct sim_filter *f = &nf[c->n_filters];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	f->value = strdup(value);
	if (!f->name || !f->value) {
		sim_filter_free(f);
		return;
	}
	/* mod_event_socket: any run of '+', '-' and spaces sets the sign, the
	 * last one winning. */
	const char *v = f->value;
	for (; *v == '+' || *v == '-' || *v == ' '; v++)
		if (*v != ' ')
			f->neg = *v == '-';
	f->cmp = v;
	/* Only a value whose very first character is '/' is a regex (PCRE, as
	 * the server's switch_regex_perform: flags i and s); a negative regex
	 * stays literal text (a server quirk, §8.2). One without its closing
	 * '/', or that does not compile, is logged by the server and never
	 * matches. */
	if (f->value[0] == '/') {
		const char *end = strrchr(f->value + 1, '/');
		uint32_t opts = 0;
		PCRE2_SIZE eoff;
		int ecode;

		f->is_re = true;
		if (end) {
			if (strchr(end, 'i'))
				opts |= PCRE2_CASELESS;
			if (strchr(end, 's'))
				opts |= PCRE2_DOTALL;
			f->re = pcre2_compile((PCRE2_SPTR)(f->value + 1),
			    (PCRE2_SIZE)(end - f->value - 1), opts, &ecode, &eoff, NULL);
			if (f->re) {
				f->md = pcre2_match_data_create(1, NULL);
				if (!f->md) {
					pcre2_code_free(f->re);
					f->re = NULL;
				}
			}
		}
	}
	c->n_filters++;
}
