/*
 * events.c - the event path: subscriptions, filters, deliveries and the
 * HEARTBEAT load snapshot.
 *
 * Server side: every subscription of every subscriber to one server lives
 * on that server's connection 0 (the "event connection"). The reactor
 * keeps, per server, a list of entries (subscriber, name, refs). The first
 * entry for a name sends `event <fmt> NAME`, the last one gone sends
 * `nixevent NAME`. Each entry also says how far the server has its name
 * (not sent, sent, accepted), so that a subscribe joining a name still
 * unanswered waits for that answer too, and nothing reports success for
 * what the server may yet refuse. When connection 0 comes back, the
 * reactor replays every name (nobody waits for those but the subscribes
 * that came meanwhile); a refused one leaves the table and its holders get
 * a REFUSED notice.
 *
 * Filters are the subscriber's own, applied here, never sent: FreeSWITCH
 * applies `filter` to everything its connection carries (HEARTBEAT for the
 * load watch and liveness, BACKGROUND_JOB for jobs, every other
 * subscriber's events), so a server-side filter would silence all of them.
 * Each subscriber has one link per server it uses: its filters (FreeSWITCH's
 * rule, PCRE2 for /regex/ values), the DOWN/UP state last announced to it,
 * and the notices its full queue could not take yet.
 *
 * Deliveries: an event is decoded once, wrapped in a reference-counted
 * holder and pushed (a pointer) into each matching subscriber's ring; the
 * reactor never waits: a full ring drops the event for that subscriber,
 * counts it and owes it a DROPPED notice; a notice (DOWN, UP, REFUSED) is
 * kept in order until the ring has room. Consumers wake through the same
 * coalescing doorbell the reactor uses (fsesl_doorbell), so a consumer that
 * keeps up costs the reactor no system call per event.
 *
 * Wire commands are encoded in the caller's thread (injection checks
 * there); the reactor only decides whether they need sending.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine_int.h"

/* ------------------------------------------------------------------ */
/* Types                                                                 */
/* ------------------------------------------------------------------ */

struct fsesl_subscriber {
	struct fsesl_engine *e; /* the reactor's side; callers use ref */
	fsesl_engine *ref;
	char tag[64];
	enum fsesl_event_format fmt;
	struct fsesl_ring_mpsc q; /* producer: the reactor only */
	struct fsesl_doorbell db; /* consumer wake-up */
	_Atomic uint64_t dropped;
	/* Drops not yet reported. The reactor adds to it and, at the next
	 * delivery, claims it (exchange) to queue a DROPPED notice in the gap's
	 * place; a consumer that finds its queue empty claims it too, so a
	 * subscriber learns of drops even when no further event comes. The
	 * exchange makes each drop reported exactly once. */
	_Atomic uint64_t owed_drops;
	uint64_t stamp; /* reactor only: one delivery per event */
	fsesl_event_cb cb;
	void *ud;
	pthread_t thr;
	bool has_thr;
	_Atomic bool quit;
	/* Destroyed from a callback: on the engine's list of subscribers
	 * whose dispatcher is to be joined, then freed (fsesl_retired_reap). */
	struct fsesl_subscriber *retired_next;
	/* Destroyed from a callback after its engine stopped (no list to
	 * join it from): the dispatcher is detached, and the destroying
	 * thread and the dispatcher each drop one hold; the last frees. */
	_Atomic uint32_t orphan_holds;
};

/* How far connection 0 has a name: a subscribe returns once the server
 * has answered it (or once it is recorded, the server being down). */
enum wire_state {
	WIRE_NONE = 0, /* not sent on this connection */
	WIRE_SENT, /* `event` written, answer pending */
	WIRE_ON, /* accepted */
};

/* The DOWN/UP state last announced to a subscriber, per server. */
enum seen_state {
	SEEN_NEVER = 0, /* nothing yet: the first "up" is not announced */
	SEEN_UP,
	SEEN_DOWN,
};

struct dnode;

/* One subscriber on one server. */
struct fsesl_sub_link {
	struct fsesl_sub_link *next;
	struct fsesl_subscriber *sub;
	fsesl_server_t handle; /* the notices' */
	unsigned int n_entries;
	enum seen_state seen;
	struct fsesl_evfilter **filters;
	size_t n_filters, cap;
	/* Notices the full ring refused, oldest first: pushed before anything
	 * else once it has room (at the next delivery or housekeeping pass). */
	struct dnode *owed_head, *owed_tail;
};

/* One (subscriber, name) on one server. sub NULL: the engine's own
 * (HEARTBEAT for fsesl_server_load, BACKGROUND_JOB for jobs). */
struct fsesl_sub_entry {
	struct fsesl_sub_entry *next;
	struct fsesl_subscriber *sub;
	struct fsesl_sub_link *link; /* NULL for the engine's own */
	fsesl_server_t handle;
	unsigned int refs;
	unsigned int told; /* refuse(): references answered EREFUSED */
	enum wire_state wire; /* the same in every entry of a name */
	char *a; /* the name */
};

struct shev {
	_Atomic uint32_t refs;
	struct fsesl_event *ev;
	char text[]; /* REFUSED: the subscription */
};

struct dnode {
	enum fsesl_notice kind;
	fsesl_server_t server;
	struct shev *ev;
	uint64_t count;
	struct dnode *next; /* the link's owed notices */
};

struct fsesl_load_snap {
	struct rcu_head rcu;
	struct fsesl_heartbeat hb;
	uint64_t at_ns;
	uint64_t interval_ns; /* observed between the last two beats */
};

static void
snap_free_rcu(struct rcu_head *h)
{

	free(caa_container_of(h, struct fsesl_load_snap, rcu));
}

/* ------------------------------------------------------------------ */
/* Shared events                                                         */
/* ------------------------------------------------------------------ */

static void
shev_put(struct shev *h)
{

	/* acq_rel: the last holder sees every other holder's reads done. */
	if (h && atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
		fsesl_event_free(h->ev);
		free(h);
	}
}

void
fsesl_delivery_release(fsesl_delivery *d)
{

	if (!d)
		return;
	shev_put(d->_priv);
	d->_priv = NULL;
	d->event = NULL;
	d->subscription = NULL;
}

/* ------------------------------------------------------------------ */
/* Delivery (reactor)                                                    */
/* ------------------------------------------------------------------ */

static struct dnode *
dnode_new(enum fsesl_notice kind, fsesl_server_t h, struct shev *ev, uint64_t count)
{
	struct dnode *n = malloc(sizeof(*n));

	if (n) {
		n->kind = kind;
		n->server = h;
		n->ev = ev;
		n->count = count;
		n->next = NULL;
	}
	return n;
}

static void
dnode_free(struct dnode *n)
{

	shev_put(n->ev);
	free(n);
}

static bool
push(struct fsesl_subscriber *sub, enum fsesl_notice kind, fsesl_server_t h, struct shev *ev,
    uint64_t count)
{
	struct dnode *n = dnode_new(kind, h, ev, count);

	if (!n)
		return false;
	if (!fsesl_ring_mpsc_try_enqueue(&sub->q, n)) {
		free(n);
		return false;
	}
	return true;
}

/* Pushes the notices the ring refused before, oldest first. True once
 * none is left. */
static bool
owed_flush(struct fsesl_sub_link *l, bool *rang)
{
	struct dnode *n;

	while ((n = l->owed_head) != NULL) {
		if (!fsesl_ring_mpsc_try_enqueue(&l->sub->q, n))
			return false;
		l->owed_head = n->next;
		if (!l->owed_head)
			l->owed_tail = NULL;
		*rang = true;
	}
	return true;
}

/*
 * Queues one delivery for l's subscriber. An event that finds the ring
 * full is dropped and counted (a DROPPED notice is owed); a notice is
 * kept and sent in order once there is room: DOWN and UP must alternate,
 * a refusal must be heard. While notices are owed, events are dropped, so
 * that none overtakes them.
 */
static void
deliver(struct fsesl_sub_link *l, enum fsesl_notice kind, fsesl_server_t h, struct shev *ev)
{
	struct fsesl_subscriber *sub = l->sub;
	bool rang = false, clear = !l->owed_head || owed_flush(l, &rang);
	struct dnode *n;

	if (clear && atomic_load_explicit(&sub->owed_drops, memory_order_relaxed)) {
		uint64_t owed = atomic_exchange_explicit(&sub->owed_drops, 0, memory_order_relaxed);

		if (owed && push(sub, FSESL_NOTICE_DROPPED, h, NULL, owed))
			rang = true;
		else if (owed)
			atomic_fetch_add_explicit(&sub->owed_drops, owed, memory_order_relaxed);
	}
	/* Relaxed: the caller holds a reference for as long as this runs,
	 * and the ring push publishes the pointer (ck's fences). */
	if (ev)
		atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
	n = dnode_new(kind, h, ev, 0);
	if (n && clear && !atomic_load_explicit(&sub->owed_drops, memory_order_relaxed) &&
	    fsesl_ring_mpsc_try_enqueue(&sub->q, n)) {
		rang = true;
	} else if (n && kind != FSESL_NOTICE_EVENT) {
		if (l->owed_tail)
			l->owed_tail->next = n;
		else
			l->owed_head = n;
		l->owed_tail = n;
	} else {
		free(n);
		if (ev)
			atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_relaxed);
		if (kind == FSESL_NOTICE_EVENT) {
			atomic_fetch_add_explicit(&sub->owed_drops, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&sub->dropped, 1, memory_order_relaxed);
		}
	}
	if (rang)
		fsesl_doorbell_ring(&sub->db);
}

void
fsesl_subctl_free(struct fsesl_req *r)
{

	fsesl_evfilter_free(r->priv);
	r->priv = NULL;
}

static bool
name_matches(const char *want, const struct fsesl_event *ev)
{
	size_t n;

	if (!ev->name)
		return false;
	if (strcasecmp(want, "ALL") == 0)
		return true;
	if (strncasecmp(want, "CUSTOM", 6) == 0 && (want[6] == ' ' || want[6] == '\0')) {
		if (strcasecmp(ev->name, "CUSTOM") != 0)
			return false;
		if (want[6] == '\0')
			return true;
		n = strlen(want + 7);
		return ev->subclass && strlen(ev->subclass) == n &&
		       strcasecmp(ev->subclass, want + 7) == 0;
	}
	return strcasecmp(want, ev->name) == 0;
}

static void
load_publish(struct fsesl_engine *e, struct fsesl_srv *s, const struct fsesl_heartbeat *hb)
{
	struct fsesl_load_snap *n = NULL, *old;

	if (hb) {
		n = malloc(sizeof(*n));
		if (!n)
			return;
		n->hb = *hb;
		n->at_ns = e->now_ns;
		old = s->load;
		n->interval_ns = old ? e->now_ns - old->at_ns : 0;
		if (old && old->interval_ns && n->interval_ns < old->interval_ns / 2)
			n->interval_ns = old->interval_ns; /* a fired beat, not the period */
		if (n->interval_ns > s->hb_seen_interval_ns &&
		    n->interval_ns < 3600ull * 1000000000ull)
			s->hb_seen_interval_ns = n->interval_ns;
	}
	/* Publishes a fully written snapshot (release); readers use
	 * rcu_dereference. The old one is freed after a grace period. */
	old = rcu_xchg_pointer(&s->load, n);
	if (old)
		urcu_bp_call_rcu(&old->rcu, snap_free_rcu);
}

void
fsesl_load_free(struct fsesl_srv *s)
{

	free(s->load);
	s->load = NULL;
}

/* ------------------------------------------------------------------ */
/* bgapi jobs (reactor)                                                  */
/* ------------------------------------------------------------------ */

static struct fsesl_conn *event_conn(struct fsesl_srv *s);
static void engine_sub(struct fsesl_engine *e, struct fsesl_srv *s, const char *name);

/* Kept results dropped unclaimed were nobody's job after all. */
static void
orphans_count(struct fsesl_srv *s, unsigned int dropped)
{

	if (dropped)
		FSESL_STAT_ADD(s->st.unknown_jobs, dropped);
}

void
fsesl_job_unlink(struct fsesl_srv *s, struct fsesl_req *r)
{
	struct fsesl_req **pp;

	for (pp = &s->jobs; *pp; pp = &(*pp)->job_next) {
		if (*pp == r) {
			*pp = r->job_next;
			if (!r->job_replied)
				s->jobs_unreplied--;
			break;
		}
	}
	r->job_next = NULL;
	r->in_table = false;
	/* Results are kept only for a job awaiting its reply. */
	if (!s->jobs_unreplied && s->orphans)
		orphans_count(s, fsesl_orphans_clear(s->orphans));
}

/* The job leaves the table with an outcome (the table's place). */
static void
job_end(struct fsesl_engine *e, struct fsesl_req *r, int status)
{

	fsesl_job_unlink(r->srv, r);
	r->status = status;
	(void)fsesl_rx_complete(e, r,
	    status == 0                 ? FSESL_CPL_DONE
	    : status == FSESL_ESHUTDOWN ? FSESL_CPL_CANCELLED
	                                : FSESL_CPL_FAILED);
	fsesl_rx_req_done(e, r);
}

/* The job leaves the table with its result (res: the caller's own copy;
 * NULL when it could not be made). */
static void
job_finish(struct fsesl_engine *e, struct fsesl_req *r, struct fsesl_event *res)
{

	fsesl_job_unlink(r->srv, r);
	if (res && fsesl_cpl_state(&r->cpl) == FSESL_CPL_PENDING) {
		r->job_ev = res;
		r->status = 0;
		if (fsesl_rx_complete(e, r, FSESL_CPL_DONE) && r->is_async) {
			fsesl_event_free(r->job_ev); /* lent to the callback */
			r->job_ev = NULL;
		}
	} else {
		fsesl_event_free(res);
		r->status = -ENOMEM;
		(void)fsesl_rx_complete(e, r, FSESL_CPL_FAILED);
	}
	fsesl_rx_req_done(e, r);
}

static void
job_result(struct fsesl_engine *e, struct fsesl_srv *s, enum fsesl_event_format fmt,
    const struct fsesl_msg *m, const struct fsesl_event *ev)
{
	struct fsesl_event *res = NULL;
	struct fsesl_req *r;

	for (r = s->jobs; r; r = r->job_next)
		if (ev->job_uuid && strcmp(r->job_uuid, ev->job_uuid) == 0)
			break;
	if (r) {
		if (fsesl_cpl_state(&r->cpl) == FSESL_CPL_PENDING)
			(void)fsesl_event_parse(fmt, m->body, m->body_len, &e->lim, &res);
		job_finish(e, r, res);
		return;
	}
	/* Someone else's job, ours already given up, or ours under an id its
	 * reply (not read yet) will name: keep it for that reply, briefly. */
	if (s->jobs_unreplied && ev->job_uuid &&
	    fsesl_event_parse(fmt, m->body, m->body_len, &e->lim, &res) == 0) {
		if (!s->orphans)
			s->orphans = calloc(1, sizeof(*s->orphans));
		if (s->orphans) {
			orphans_count(s, fsesl_orphans_put(s->orphans, res, e->now_ns));
			return;
		}
		fsesl_event_free(res);
	}
	FSESL_STAT_ADD(s->st.unknown_jobs, 1);
}

/*
 * The Job-UUID a bgapi reply names: its Job-UUID header, else the id in
 * "Reply-Text: +OK Job-UUID: <id>". Copied into id (cap bytes); returns
 * its length, 0 when there is none that fits.
 */
static size_t
reply_job_id(const struct fsesl_msg *m, char *id, size_t cap)
{
	const char *v = NULL;
	size_t i, n = 0;

	for (i = 0; i < m->n_headers && !v; i++) {
		if (m->headers[i].name_len == 8 &&
		    strncasecmp(m->headers[i].name, "Job-UUID", 8) == 0) {
			v = m->headers[i].value;
			n = m->headers[i].value_len;
		}
	}
	if (!v && m->reply_text && m->reply_text_len > 10 &&
	    strncmp(m->reply_text, "Job-UUID: ", 10) == 0) {
		v = m->reply_text + 10;
		n = m->reply_text_len - 10;
	}
	if (!v || n == 0 || n >= cap)
		return 0;
	memcpy(id, v, n);
	id[n] = '\0';
	return n;
}

/*
 * A job's +OK reply (it is in the table). A server that ignores the
 * engine's Job-UUID header assigns its own id and names it here: from now
 * on the job is known by it, and a result that came first under it was
 * kept for this moment. A reply that names no id leaves nothing to match
 * the result with: the job fails now rather than at its timeout.
 */
static void
job_replied(
    struct fsesl_engine *e, struct fsesl_srv *s, struct fsesl_req *r, const struct fsesl_msg *m)
{
	char id[FSESL_MAX_JOB_UUID_LEN + 1];
	struct fsesl_event *res;
	size_t n;

	r->job_replied = true;
	s->jobs_unreplied--;
	n = reply_job_id(m, id, sizeof(id));
	if (n == 0) {
		fsesl_log(e, FSESL_LOG_WARN, "%s: a bgapi reply named no Job-UUID", s->key);
		job_end(e, r, FSESL_ENOJOBID);
		return;
	}
	if (strcmp(id, r->job_uuid) != 0) {
		memcpy(r->job_uuid, id, n + 1);
		if (s->orphans) {
			orphans_count(s, fsesl_orphans_expire(s->orphans, e->now_ns));
			res = fsesl_orphans_take(s->orphans, id);
			if (res) {
				job_finish(e, r, res);
				return;
			}
		}
	}
	if (!s->jobs_unreplied && s->orphans)
		orphans_count(s, fsesl_orphans_clear(s->orphans));
}

/*
 * The server answered an `event ... BACKGROUND_JOB` (the engine's own, or
 * a subscriber's that carries the engine's too). Refused (a user whose
 * esl-allowed-events lacks it): no job result can come on this connection,
 * so every job fails now and later ones at once, until a (re)connect's
 * replay of the subscription is accepted.
 */
static void
bg_sub_answered(struct fsesl_engine *e, struct fsesl_srv *s, bool ok)
{

	if (ok || !s->bg_internal) {
		s->bg_refused = false;
		return;
	}
	if (!s->bg_refused)
		fsesl_log(e, FSESL_LOG_WARN,
		    "%s: BACKGROUND_JOB subscription refused: bgapi jobs fail with "
		    "FSESL_EREFUSED",
		    s->key);
	s->bg_refused = true;
	while (s->jobs)
		job_end(e, s->jobs, FSESL_EREFUSED);
}

static void
job_intake(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;
	struct fsesl_conn *c = event_conn(s);

	if (s->bg_refused) {
		fsesl_rx_req_finish(e, r, FSESL_EREFUSED);
		return;
	}
	if (!s->bg_internal) {
		s->bg_internal = true;
		engine_sub(e, s, "BACKGROUND_JOB");
	}
	/* Registered before the bgapi is written: the result may race the
	 * reply (docs/protocol.md §6.3). */
	r->job_next = s->jobs;
	s->jobs = r;
	r->in_table = true;
	r->holds = 2;
	s->jobs_unreplied++;
	/* On the event connection itself: the server then handles the
	 * subscription before the bgapi, and sends the result after the
	 * reply. When it is not up, the job waits for it (parked): sent on
	 * another connection, a quick job could end before the event
	 * connection subscribes, and its result would be lost. */
	if (c) {
		fsesl_rx_send_on(e, c, r);
		return;
	}
	if (!fsesl_rx_job_may_wait(e, r))
		return;
	r->next = NULL;
	if (s->parked_tail)
		s->parked_tail->next = r;
	else
		s->parked_head = r;
	s->parked_tail = r;
}

void
fsesl_jobs_unpark(struct fsesl_engine *e, struct fsesl_srv *s, struct fsesl_conn *c, int err)
{
	struct fsesl_req *r;

	while ((r = s->parked_head) != NULL) {
		s->parked_head = r->next;
		if (!s->parked_head)
			s->parked_tail = NULL;
		r->next = NULL;
		if (c && r->in_table && fsesl_cpl_state(&r->cpl) == FSESL_CPL_PENDING) {
			fsesl_rx_send_on(e, c, r);
			continue;
		}
		/* Failed, or timed out meanwhile: it leaves both places. */
		if (r->in_table)
			job_end(e, r, c ? -ETIMEDOUT : err);
		fsesl_rx_req_done(e, r);
	}
}

/*
 * Reactor (housekeeping): HEARTBEAT is wanted on this server (by a
 * subscriber, ALL, or the engine's load watch) and the event connection has
 * received nothing - no heartbeat, no reply, no event - for
 * heartbeat_miss_limit intervals of event_heartbeat_interval. Counting any
 * received byte, not only heartbeats, keeps a busy pipeline (which starves
 * the server's event flushing, docs/protocol.md §9.3) from looking dead.
 */
bool
fsesl_events_liveness_expired(
    struct fsesl_engine *e, struct fsesl_srv *s, const struct fsesl_conn *c)
{
	const struct fsesl_sub_entry *en;
	uint64_t ref, limit;
	bool wanted = false;

	if (!e->cfg.heartbeat_miss_limit || !e->cfg.event_heartbeat_interval)
		return false;
	for (en = s->subs; en && !wanted; en = en->next)
		wanted = strcasecmp(en->a, "HEARTBEAT") == 0 || strcasecmp(en->a, "ALL") == 0;
	if (!wanted)
		return false;
	ref = c->ready_ns > c->rx_ns ? c->ready_ns : c->rx_ns;
	if (s->load && s->load->at_ns > ref)
		ref = s->load->at_ns;
	/* A server whose own event-heartbeat-interval is longer than ours
	 * (FreeSWITCH's default is 20 s) is judged by the period it shows. */
	limit = (uint64_t)e->cfg.event_heartbeat_interval * 1000000000ull;
	if (s->hb_seen_interval_ns > limit)
		limit = s->hb_seen_interval_ns;
	limit *= e->cfg.heartbeat_miss_limit;
	return e->now_ns > ref && e->now_ns - ref > limit;
}

void
fsesl_jobs_housekeeping(struct fsesl_engine *e, struct fsesl_srv *s)
{
	struct fsesl_req *r, *next;

	for (r = s->jobs; r; r = next) {
		next = r->job_next;
		if (fsesl_cpl_state(&r->cpl) != FSESL_CPL_PENDING) {
			/* Timed out: stop waiting for its result. */
			fsesl_job_unlink(s, r);
			fsesl_rx_req_done(e, r);
		}
	}
	if (s->orphans)
		orphans_count(s, fsesl_orphans_expire(s->orphans, e->now_ns));
}

void
fsesl_event_dispatch(struct fsesl_engine *e, struct fsesl_srv *s, const struct fsesl_msg *m)
{
	enum fsesl_event_format fmt;
	struct fsesl_event *ev = NULL;
	struct fsesl_sub_entry *en;
	struct fsesl_heartbeat hb;
	struct shev *h;
	uint64_t stamp;

	switch (m->type) {
	case FSESL_MSG_EVENT_JSON:
		fmt = FSESL_EVFMT_JSON;
		break;
	case FSESL_MSG_EVENT_XML:
		fmt = FSESL_EVFMT_XML;
		break;
	default:
		fmt = FSESL_EVFMT_PLAIN;
		break;
	}
	if (!m->body || fsesl_event_parse(fmt, m->body, m->body_len, &e->lim, &ev) != 0)
		return; /* undecodable: dropped, the stream stays in step */
	if (ev->forged && ev->name &&
	    (strcmp(ev->name, "HEARTBEAT") == 0 || strcmp(ev->name, "BACKGROUND_JOB") == 0)) {
		/* docs/protocol.md §10.3: sendevent can forge these. */
		FSESL_STAT_ADD(s->st.forged_events, 1);
		fsesl_event_free(ev);
		return;
	}
	if (ev->name && strcmp(ev->name, "HEARTBEAT") == 0 && fsesl_heartbeat_parse(ev, &hb) == 0)
		load_publish(e, s, &hb);
	else if (ev->name && strcmp(ev->name, "BACKGROUND_JOB") == 0)
		job_result(e, s, fmt, m, ev);
	h = malloc(sizeof(*h));
	if (!h) {
		fsesl_event_free(ev);
		return;
	}
	atomic_init(&h->refs, 1); /* ours, until the loop is done */
	h->ev = ev;
	stamp = ++e->stamp;
	for (en = s->subs; en; en = en->next) {
		if (!en->sub || en->sub->stamp == stamp || !name_matches(en->a, ev))
			continue;
		en->sub->stamp = stamp;
		/* The subscriber's own filters: they narrow its deliveries
		 * only (evaluated for those that have some). */
		if (en->link->n_filters &&
		    !fsesl_evfilters_pass(en->link->filters, en->link->n_filters, ev))
			continue;
		deliver(en->link, FSESL_NOTICE_EVENT, en->handle, h);
	}
	shev_put(h);
}

/* ------------------------------------------------------------------ */
/* Server-side state (reactor)                                           */
/* ------------------------------------------------------------------ */

static struct fsesl_sub_link *
link_find(struct fsesl_srv *s, const struct fsesl_subscriber *sub)
{
	struct fsesl_sub_link *l;

	for (l = s->links; l; l = l->next)
		if (l->sub == sub)
			return l;
	return NULL;
}

/* A link made while the server is down (or not yet restored) has
 * announced nothing: the server's next "up" is its first, not announced. */
static struct fsesl_sub_link *
link_get(struct fsesl_srv *s, struct fsesl_subscriber *sub, fsesl_server_t h)
{
	struct fsesl_sub_link *l = link_find(s, sub);

	if (l)
		return l;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->sub = sub;
	l->handle = h;
	l->seen = s->ev_up ? SEEN_UP : SEEN_NEVER;
	l->next = s->links;
	s->links = l;
	return l;
}

static void
link_drop(struct fsesl_srv *s, struct fsesl_sub_link *l)
{
	struct fsesl_sub_link **pp;
	struct dnode *n;
	size_t i;

	for (pp = &s->links; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	for (i = 0; i < l->n_filters; i++)
		fsesl_evfilter_free(l->filters[i]);
	free(l->filters);
	while ((n = l->owed_head) != NULL) {
		l->owed_head = n->next;
		dnode_free(n);
	}
	free(l);
}

/* Frees l once the subscriber has nothing left on this server. One that
 * was told DOWN stays until it is told UP (DOWN and UP come in pairs,
 * even when a refusal at the reconnect took its last subscription), and
 * until its owed notices are in its queue. */
static void
link_put(struct fsesl_srv *s, struct fsesl_sub_link *l)
{

	if (l && !l->n_entries && !l->n_filters && l->seen != SEEN_DOWN && !l->owed_head)
		link_drop(s, l);
}

static struct fsesl_sub_entry *
entry_find(struct fsesl_srv *s, struct fsesl_subscriber *sub, const char *name)
{
	struct fsesl_sub_entry *en;

	for (en = s->subs; en; en = en->next)
		if (en->sub == sub && strcmp(en->a, name) == 0)
			return en;
	return NULL;
}

/* Any entry (any subscriber, the engine) of this name, as the server
 * knows it: case-insensitive. */
static struct fsesl_sub_entry *
name_any(struct fsesl_srv *s, const char *name)
{
	struct fsesl_sub_entry *en;

	for (en = s->subs; en; en = en->next)
		if (strcasecmp(en->a, name) == 0)
			return en;
	return NULL;
}

static void
name_set_wire(struct fsesl_srv *s, const char *name, enum wire_state w)
{
	struct fsesl_sub_entry *en;

	for (en = s->subs; en; en = en->next)
		if (strcasecmp(en->a, name) == 0)
			en->wire = w;
}

static struct fsesl_sub_entry *
entry_add(struct fsesl_srv *s, struct fsesl_subscriber *sub, struct fsesl_sub_link *l,
    fsesl_server_t h, const char *name)
{
	struct fsesl_sub_entry *en = calloc(1, sizeof(*en)), *other = name_any(s, name);

	if (!en)
		return NULL;
	en->a = strdup(name);
	if (!en->a) {
		free(en);
		return NULL;
	}
	en->sub = sub;
	en->link = l;
	en->handle = h;
	en->refs = 1;
	en->wire = other ? other->wire : WIRE_NONE;
	if (l)
		l->n_entries++;
	en->next = s->subs;
	s->subs = en;
	return en;
}

static void
entry_remove(struct fsesl_srv *s, struct fsesl_sub_entry *en)
{
	struct fsesl_sub_entry **pp;

	for (pp = &s->subs; *pp; pp = &(*pp)->next) {
		if (*pp == en) {
			*pp = en->next;
			break;
		}
	}
	if (en->link) {
		en->link->n_entries--;
		link_put(s, en->link);
	}
	free(en->a);
	free(en);
}

static struct fsesl_conn *
event_conn(struct fsesl_srv *s)
{

	return s->n_conns && s->conns[0].state == FSESL_CONN_READY ? &s->conns[0] : NULL;
}

/* Connection 0 is being opened: connecting, logging in, or about to
 * retry at once after a working connection dropped. */
static bool
event_conn_trying(const struct fsesl_srv *s)
{

	return s->n_conns && (s->conns[0].state != FSESL_CONN_IDLE || s->conns[0].retry_soon);
}

/* op bits of an internal request. */
#define INT_REPLAY 1u /* counted in replay_pending */
#define INT_REMOVE 2u /* nixevent (else event) */

/* A request the reactor makes itself (subscriptions, replays, nixevent
 * for a destroyed subscriber): one reference, no waiter; its reply says
 * how far the server has the name (arg1, kept after the packet). */
static bool
send_internal(struct fsesl_engine *e, struct fsesl_conn *c, const char *name, bool remove,
    enum fsesl_event_format fmt)
{
	struct fsesl_req *r;
	size_t la = strlen(name), cap = la + 64;
	char *p;
	ssize_t n;

	r = calloc(1, sizeof(*r) + cap + la + 1);
	if (!r)
		return false;
	n = remove ? fsesl_encode_nixevent(r->buf, cap, &name, 1)
	           : fsesl_encode_event(r->buf, cap, fmt, &name, 1);
	if (n < 0) {
		free(r);
		return false;
	}
	p = r->buf + cap;
	memcpy(p, name, la + 1);
	r->arg1 = p;
	r->len = (size_t)n;
	r->kind = FSESL_REQ_INTERNAL;
	r->op = (uint8_t)((c->srv->replaying ? INT_REPLAY : 0) | (remove ? INT_REMOVE : 0));
	r->bg_sub = !remove && strcasecmp(name, "BACKGROUND_JOB") == 0;
	r->timer.idx = ~0u;
	r->timeout_ms = e->cfg.esl_cmd_timeout;
	r->submit_ns = e->now_ns;
	r->srv = c->srv;
	fsesl_srv_ref_reactor(c->srv);
	fsesl_cpl_init(&r->cpl, 1, NULL, NULL);
	fsesl_rx_send_on(e, c, r);
	return true;
}

/* Asks the server for `name` on c; its entries now wait for the answer. */
static bool
wire_event(struct fsesl_engine *e, struct fsesl_srv *s, struct fsesl_conn *c, const char *name,
    enum fsesl_event_format fmt)
{

	if (!send_internal(e, c, name, false, fmt))
		return false;
	name_set_wire(s, name, WIRE_SENT);
	return true;
}

/* Completes a waiting subscribe; true if its caller gets this status (it
 * may have timed out meanwhile). */
static bool
waiter_end(struct fsesl_engine *e, struct fsesl_req *r, int status)
{
	bool won;

	r->status = status;
	r->reply = NULL;
	won = fsesl_rx_complete(e, r, status ? FSESL_CPL_FAILED : FSESL_CPL_DONE);
	fsesl_rx_req_done(e, r);
	return won;
}

/*
 * Ends the subscribes waiting for `name` (NULL: every one) with status.
 * On a refusal, counts in each entry the references whose caller hears
 * it directly (refuse() notifies the others).
 */
static void
waiters_end(struct fsesl_engine *e, struct fsesl_srv *s, const char *name, int status)
{
	struct fsesl_req **pp = &s->sub_waiters, *r;
	struct fsesl_sub_entry *en;

	while ((r = *pp) != NULL) {
		if (name && strcasecmp(r->arg1, name) != 0) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		en = status == FSESL_EREFUSED ? entry_find(s, r->sub, r->arg1) : NULL;
		if (waiter_end(e, r, status) && en)
			en->told++;
	}
}

/* After a (re)connect: subscribes waiting for a name the server is not
 * answering (nothing was sent for it) are done, recorded. */
static void
waiters_settle(struct fsesl_engine *e, struct fsesl_srv *s)
{
	struct fsesl_req **pp = &s->sub_waiters, *r;
	struct fsesl_sub_entry *en;

	while ((r = *pp) != NULL) {
		en = name_any(s, r->arg1);
		if (en && en->wire == WIRE_SENT) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		(void)waiter_end(e, r, 0);
	}
}

/* The engine's own subscription (HEARTBEAT, BACKGROUND_JOB): no waiter. */
static void
engine_sub(struct fsesl_engine *e, struct fsesl_srv *s, const char *name)
{
	struct fsesl_sub_entry *en = entry_add(s, NULL, NULL, 0, name);
	struct fsesl_conn *c = event_conn(s);

	if (en && en->wire == WIRE_NONE && c)
		(void)wire_event(e, s, c, name, FSESL_EVFMT_PLAIN);
}

static void
sub_add(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;
	struct fsesl_conn *c = event_conn(s);
	struct fsesl_sub_entry *en = entry_find(s, r->sub, r->arg1);
	struct fsesl_sub_link *l;

	if (en) {
		en->refs++;
	} else {
		l = link_get(s, r->sub, r->handle);
		en = l ? entry_add(s, r->sub, l, r->handle, r->arg1) : NULL;
		if (!en) {
			link_put(s, l);
			fsesl_rx_req_finish(e, r, -ENOMEM);
			return;
		}
	}
	if (en->wire == WIRE_ON) {
		fsesl_rx_req_finish(e, r, 0);
		return;
	}
	/* First of its name on a working connection: ask now. */
	if (en->wire == WIRE_NONE && c && !wire_event(e, s, c, r->arg1, r->sub->fmt)) {
		if (--en->refs == 0)
			entry_remove(s, en);
		fsesl_rx_req_finish(e, r, -ENOMEM);
		return;
	}
	/* Asked (now or by someone else), or the connection is being opened:
	 * the caller waits for the server's answer, as a command waits for its
	 * connection. Down in backoff: recorded, sent on reconnect. */
	if (en->wire == WIRE_SENT || event_conn_trying(s)) {
		r->next = s->sub_waiters;
		s->sub_waiters = r;
		return;
	}
	fsesl_rx_req_finish(e, r, 0);
}

static void
sub_del(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;
	struct fsesl_conn *c = event_conn(s);
	struct fsesl_sub_entry *en = entry_find(s, r->sub, r->arg1);
	enum wire_state was;

	if (!en) {
		fsesl_rx_req_finish(e, r, -ENOENT);
		return;
	}
	was = en->wire;
	if (--en->refs == 0)
		entry_remove(s, en);
	/* Last of its name, and the server has (or is getting) it: the
	 * caller's nixevent goes out and its answer completes the call. */
	if (!name_any(s, r->arg1) && c && was != WIRE_NONE)
		fsesl_rx_send_on(e, c, r);
	else
		fsesl_rx_req_finish(e, r, 0);
}

static void
filter_add(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;
	struct fsesl_evfilter *f = r->priv, **v;
	struct fsesl_sub_link *l = link_get(s, r->sub, r->handle);
	size_t i;

	if (!l) {
		fsesl_rx_req_finish(e, r, -ENOMEM);
		return;
	}
	for (i = 0; i < l->n_filters; i++) {
		if (fsesl_evfilter_same(l->filters[i], r->arg1, r->arg2)) {
			fsesl_evfilter_hold(l->filters[i]);
			fsesl_rx_req_finish(e, r, 0);
			return;
		}
	}
	if (l->n_filters == l->cap) {
		v = realloc(l->filters, (l->cap ? l->cap * 2 : 4) * sizeof(*v));
		if (!v) {
			link_put(s, l);
			fsesl_rx_req_finish(e, r, -ENOMEM);
			return;
		}
		l->filters = v;
		l->cap = l->cap ? l->cap * 2 : 4;
	}
	l->filters[l->n_filters++] = f;
	r->priv = NULL; /* the link's now */
	fsesl_rx_req_finish(e, r, 0);
}

/* arg2 "": every filter of the subscriber on that header. */
static void
filter_del(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;
	struct fsesl_sub_link *l = link_find(s, r->sub);
	bool all = !r->arg2[0], found = false;
	size_t i = 0;

	while (l && i < l->n_filters) {
		struct fsesl_evfilter *f = l->filters[i];

		if (!fsesl_evfilter_same(f, r->arg1, all ? NULL : r->arg2)) {
			i++;
			continue;
		}
		found = true;
		if (!all && !fsesl_evfilter_release(f))
			break;
		fsesl_evfilter_free(f);
		memmove(&l->filters[i], &l->filters[i + 1],
		    (l->n_filters - i - 1) * sizeof(l->filters[0]));
		l->n_filters--;
		if (!all)
			break;
	}
	if (l)
		link_put(s, l);
	fsesl_rx_req_finish(e, r, found ? 0 : -ENOENT);
}

static unsigned int
name_users(struct fsesl_srv *s, const char *name)
{
	struct fsesl_sub_entry *en;
	unsigned int n = 0;

	for (en = s->subs; en; en = en->next)
		if (strcasecmp(en->a, name) == 0)
			n++;
	return n;
}

static void
sub_leave_all(struct fsesl_engine *e, struct fsesl_subscriber *sub)
{
	struct fsesl_sub_entry *en, *next;
	struct fsesl_sub_link *l;
	struct fsesl_srv *s;
	struct fsesl_conn *c;

	for (s = e->srv_list; s; s = s->list_next) {
		c = event_conn(s);
		for (en = s->subs; en; en = next) {
			next = en->next;
			if (en->sub != sub)
				continue;
			/* Last of its name: the server stops sending it. */
			if (c && en->wire != WIRE_NONE && name_users(s, en->a) == 1)
				send_internal(e, c, en->a, true, sub->fmt);
			entry_remove(s, en);
		}
		/* Its filters and any notice still owed go with it. */
		if ((l = link_find(s, sub)) != NULL)
			link_drop(s, l);
	}
}

/* ---- notices --------------------------------------------------------- */

/* Connection 0 is ready and every replayed subscription answered. Each
 * subscriber that was told DOWN hears UP; for the others this first "up"
 * is not news. */
static void
srv_up(struct fsesl_srv *s)
{
	struct fsesl_sub_link *l, *next;

	s->ev_up = true;
	for (l = s->links; l; l = next) {
		next = l->next;
		if (l->seen == SEEN_DOWN)
			deliver(l, FSESL_NOTICE_UP, l->handle, NULL);
		l->seen = SEEN_UP;
		link_put(s, l);
	}
}

/* Connection 0 dropped. DOWN only to those that were told (or took as)
 * up: a connection lost before its subscriptions were restored was
 * never announced, so nothing is. */
static void
srv_down(struct fsesl_srv *s)
{
	struct fsesl_sub_link *l;

	if (!s->ev_up)
		return;
	s->ev_up = false;
	for (l = s->links; l; l = l->next) {
		if (l->seen == SEEN_UP)
			deliver(l, FSESL_NOTICE_DOWN, l->handle, NULL);
		l->seen = SEEN_DOWN;
	}
}

/*
 * The server refused `event NAME` (a restricted user): nobody holds it any
 * more. Waiting subscribes return FSESL_EREFUSED; every subscriber that
 * held a reference its caller was not told about gets a REFUSED notice,
 * so that a later subscribe asks the server again. The engine's own load
 * watch reports it through fsesl_server_load.
 */
static void
refuse(struct fsesl_engine *e, struct fsesl_srv *s, const char *name, const struct fsesl_msg *m)
{
	struct fsesl_sub_entry *en, *next;
	struct shev *h;
	size_t len;

	fsesl_log(e, FSESL_LOG_WARN, "%s: server refused the subscription %s: %.*s", s->key, name,
	    (int)(m->reply_text_len > 200 ? 200 : m->reply_text_len),
	    m->reply_text ? m->reply_text : "");
	for (en = s->subs; en; en = en->next)
		en->told = 0;
	waiters_end(e, s, name, FSESL_EREFUSED);
	for (en = s->subs; en; en = next) {
		next = en->next;
		if (strcasecmp(en->a, name) != 0)
			continue;
		if (!en->sub) {
			if (strcasecmp(name, "HEARTBEAT") == 0) {
				s->hb_internal = false;
				atomic_store_explicit(&s->hb_refused, true, memory_order_relaxed);
			} else if (strcasecmp(name, "BACKGROUND_JOB") == 0) {
				s->bg_internal = false;
			}
		} else if (en->refs > en->told) {
			len = strlen(en->a);
			h = malloc(sizeof(*h) + len + 1);
			if (h) {
				atomic_init(&h->refs, 1);
				h->ev = NULL;
				memcpy(h->text, en->a, len + 1);
				deliver(en->link, FSESL_NOTICE_REFUSED, en->handle, h);
				shev_put(h);
			}
		}
		entry_remove(s, en);
	}
}

/* ---- requests ---------------------------------------------------------- */

void
fsesl_events_intake(struct fsesl_engine *e, struct fsesl_req *r)
{
	struct fsesl_srv *s = r->srv;

	switch (r->kind) {
	case FSESL_REQ_SUBCTL:
		switch (r->op) {
		case FSESL_SUB_ADD:
			sub_add(e, r);
			break;
		case FSESL_SUB_DEL:
			sub_del(e, r);
			break;
		case FSESL_FILTER_ADD:
			filter_add(e, r);
			break;
		default:
			filter_del(e, r);
			break;
		}
		break;
	case FSESL_REQ_SUBDESTROY:
		sub_leave_all(e, r->sub);
		fsesl_rx_req_finish(e, r, 0);
		break;
	case FSESL_REQ_JOB:
		job_intake(e, r);
		break;
	case FSESL_REQ_HBWANT:
		/* Nobody waits: fsesl_server_load() never blocks. */
		if (!s->hb_internal) {
			s->hb_internal = true;
			engine_sub(e, s, "HEARTBEAT");
		}
		fsesl_rx_req_finish(e, r, 0);
		break;
	default:
		fsesl_rx_req_finish(e, r, -EINVAL);
		break;
	}
}

/* A later `event` for the same name is on its way: the server's state is
 * the one that answer will give, not this one. */
static bool
internal_superseded(struct fsesl_srv *s, const struct fsesl_req *r)
{
	const struct fsesl_req *x;

	for (x = s->n_conns ? s->conns[0].fifo_head : NULL; x; x = x->next)
		if (x->kind == FSESL_REQ_INTERNAL && !(x->op & INT_REMOVE) &&
		    strcasecmp(x->arg1, r->arg1) == 0)
			return true;
	return false;
}

void
fsesl_events_reply(struct fsesl_engine *e, struct fsesl_req *r, const struct fsesl_msg *m)
{
	bool ok = m->type == FSESL_MSG_COMMAND_REPLY && m->reply == FSESL_REPLY_OK;
	struct fsesl_srv *s = r->srv;

	if (r->bg_sub || (r->kind == FSESL_REQ_SUBCTL && r->op == FSESL_SUB_ADD &&
	                     strcasecmp(r->arg1, "BACKGROUND_JOB") == 0))
		bg_sub_answered(e, s, ok);
	if (r->kind == FSESL_REQ_JOB) {
		FSESL_STAT_ADD(s->st.replies, 1);
		if (!ok && r->in_table) {
			/* No job was started: the result will never come. */
			fsesl_job_unlink(s, r);
			r->holds--;
			fsesl_rx_req_finish(e, r, FSESL_EREFUSED);
			return;
		}
		if (r->in_table)
			job_replied(e, s, r, m);
		fsesl_rx_req_done(e, r); /* the command path's place */
		return;
	}
	if (r->kind == FSESL_REQ_INTERNAL) {
		if (!(r->op & INT_REMOVE) && !internal_superseded(s, r)) {
			if (ok) {
				name_set_wire(s, r->arg1, WIRE_ON);
				waiters_end(e, s, r->arg1, 0);
			} else {
				refuse(e, s, r->arg1, m);
			}
		} else if (!ok) {
			fsesl_log(e, FSESL_LOG_WARN, "%s: server refused `%s %s`: %.*s", s->key,
			    r->op & INT_REMOVE ? "nixevent" : "event", r->arg1,
			    (int)(m->reply_text_len > 200 ? 200 : m->reply_text_len),
			    m->reply_text ? m->reply_text : "");
		}
		if ((r->op & INT_REPLAY) && s->replay_pending && --s->replay_pending == 0)
			srv_up(s);
		fsesl_rx_req_done(e, r);
		return;
	}
	/* An unsubscribe's nixevent: the entry is gone already. */
	FSESL_STAT_ADD(s->st.replies, 1);
	fsesl_rx_req_finish(e, r, ok ? 0 : FSESL_EREFUSED);
}

/*
 * An idle FreeSWITCH connection writes queued events only when its 20 ms
 * poll times out; a lone LF between commands ends that poll at once and
 * draws no reply (docs/protocol.md §9.4). Sent on the event connection
 * only while it has nothing in flight (so never inside a command's bytes:
 * the output buffer holds whole packets) and has subscriptions.
 */
static void
kick_fired(struct fsesl_timer *t, void *arg)
{
	struct fsesl_srv *s = arg;
	struct fsesl_engine *e = s->e;
	struct fsesl_conn *c = event_conn(s);

	(void)t;
	if (!c)
		return; /* re-armed when connection 0 is back */
	if (c->in_flight == 0 && s->subs && c->out.len == c->out.off && c->out.cap) {
		c->out.off = 0;
		c->out.len = 1;
		c->out.p[0] = '\n';
		fsesl_rx_mark_dirty(e, c);
	}
	(void)fsesl_timer_arm(
	    &e->timers, &s->kick, e->now_ns + (uint64_t)e->cfg.lf_kick_interval_ms * 1000000ull);
}

void
fsesl_kick_arm(struct fsesl_engine *e, struct fsesl_srv *s)
{

	if (!e->cfg.lf_kick_interval_ms || s->kick.idx != ~0u)
		return;
	fsesl_timer_init(&s->kick, kick_fired, s);
	(void)fsesl_timer_arm(
	    &e->timers, &s->kick, e->now_ns + (uint64_t)e->cfg.lf_kick_interval_ms * 1000000ull);
}

void
fsesl_events_conn_up(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_srv *s = c->srv;
	struct fsesl_sub_entry *en;

	if (c->index != 0)
		return;
	fsesl_kick_arm(e, s);
	/* A new connection may have new rights (other credentials): the
	 * load watch is asked again by the next fsesl_server_load, and the
	 * next job asks for BACKGROUND_JOB again. */
	s->bg_refused = false;
	if (atomic_load_explicit(&s->hb_refused, memory_order_relaxed)) {
		atomic_store_explicit(&s->hb_refused, false, memory_order_relaxed);
		atomic_store_explicit(&s->hb_wanted, false, memory_order_relaxed);
	}
	/* Replay each distinct name once (all entries of a name share its
	 * state, so the first one sent marks the others). */
	for (en = s->subs; en; en = en->next) {
		if (en->wire != WIRE_NONE)
			continue;
		s->replaying = true;
		if (wire_event(e, s, c, en->a, en->sub ? en->sub->fmt : FSESL_EVFMT_PLAIN))
			s->replay_pending++;
		s->replaying = false;
	}
	waiters_settle(e, s);
	/* Up means "subscriptions restored": once the server has answered
	 * every replayed one. */
	if (s->replay_pending == 0)
		srv_up(s);
}

void
fsesl_events_conn_down(struct fsesl_engine *e, struct fsesl_conn *c)
{
	struct fsesl_srv *s = c->srv;
	struct fsesl_sub_entry *en;

	if (c->index != 0)
		return;
	s->replay_pending = 0;
	/* The next connection starts with nothing: every name is resent.
	 * Subscribes waiting for an answer wait for that connection. */
	for (en = s->subs; en; en = en->next)
		en->wire = WIRE_NONE;
	/* Stale load must not steer routing (OpenSIPS kept it). */
	load_publish(e, s, NULL);
	srv_down(s);
	/* Results arrive on this connection only: they are lost now. */
	while (s->jobs)
		job_end(e, s->jobs, FSESL_EJOBLOST);
}

/* The attempt failed and the server is in backoff: subscribes waiting for
 * it are recorded, replayed on reconnect (a refusal then is a notice). */
void
fsesl_events_attempt_failed(struct fsesl_engine *e, struct fsesl_conn *c)
{

	if (c->index == 0)
		waiters_end(e, c->srv, NULL, 0);
}

void
fsesl_events_housekeeping(struct fsesl_engine *e, struct fsesl_srv *s)
{
	struct fsesl_req **pp = &s->sub_waiters, *r;
	struct fsesl_sub_link *l, *next;
	bool rang;

	/* Notices a full queue refused: pushed once the consumer made room,
	 * even if no further delivery comes to carry them. */
	for (l = s->links; l; l = next) {
		next = l->next;
		if (!l->owed_head)
			continue;
		rang = false;
		(void)owed_flush(l, &rang);
		if (rang)
			fsesl_doorbell_ring(&l->sub->db);
		link_put(s, l);
	}
	/* Waits whose caller gave up (its timeout): nobody to answer. Their
	 * reference stays, as for any subscription recorded meanwhile. */
	while ((r = *pp) != NULL) {
		if (fsesl_cpl_state(&r->cpl) == FSESL_CPL_PENDING) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		fsesl_rx_req_done(e, r);
	}
}

/* A subscriber's subscription or filter keeps its server (idle cleanup);
 * the engine's own (HEARTBEAT for the load, BACKGROUND_JOB) do not. */
bool
fsesl_events_srv_has_subscribers(const struct fsesl_srv *s)
{
	const struct fsesl_sub_link *l;

	for (l = s->links; l; l = l->next)
		if (l->n_entries || l->n_filters)
			return true;
	return false;
}

void
fsesl_events_srv_close(struct fsesl_engine *e, struct fsesl_srv *s)
{

	fsesl_timer_disarm(&e->timers, &s->kick);
	fsesl_jobs_unpark(e, s, NULL, FSESL_ESHUTDOWN);
	while (s->jobs)
		job_end(e, s->jobs, FSESL_ESHUTDOWN);
	if (s->orphans) {
		orphans_count(s, fsesl_orphans_clear(s->orphans));
		free(s->orphans);
		s->orphans = NULL;
	}
	s->bg_refused = false;
	waiters_end(e, s, NULL, FSESL_ESHUTDOWN);
	while (s->subs)
		entry_remove(s, s->subs);
	while (s->links)
		link_drop(s, s->links);
	s->hb_internal = false;
	s->bg_internal = false;
	s->ev_up = false;
}

/* ------------------------------------------------------------------ */
/* Subscriber API (any thread)                                           */
/* ------------------------------------------------------------------ */

/* The ring has one consumer: in callback mode that is the dispatcher.
 * Set on a dispatcher thread to the subscriber it serves. */
static _Thread_local struct fsesl_subscriber *cur_dispatcher;

static void sub_free(struct fsesl_subscriber *s);

static void *
dispatcher_main(void *arg)
{
	struct fsesl_subscriber *s = arg;
	fsesl_delivery d;

	cur_dispatcher = s;
	while (!atomic_load_explicit(&s->quit, memory_order_acquire)) {
		if (fsesl_subscriber_next(s, &d, -1) != 1)
			continue;
		s->cb(&d, s->ud);
		fsesl_delivery_release(&d);
	}
	/* acq_rel: the other holder's last use of s happens before a free. */
	if (atomic_load_explicit(&s->orphan_holds, memory_order_acquire) &&
	    atomic_fetch_sub_explicit(&s->orphan_holds, 1, memory_order_acq_rel) == 1)
		sub_free(s);
	return NULL;
}

/*
 * Retired subscribers: destroyed from a callback, where waiting for a
 * thread is not allowed (the reactor must not block; a dispatcher would
 * wait for itself, or two for each other). Their dispatcher ends by
 * itself; the reactor joins it later without blocking (pthread_tryjoin_np,
 * at housekeeping) and only then frees the subscriber, and stop joins and
 * frees what is left, so no thread outlives the engine. Pushed by any
 * thread, taken whole by the reactor or stop: a lock-free stack suffices.
 */
static void
retired_push(struct fsesl_engine *e, struct fsesl_subscriber *s)
{
	struct fsesl_subscriber *head = atomic_load_explicit(&e->retired, memory_order_relaxed);

	do
		s->retired_next = head;
	/* release: the subscriber's last writes happen before the reaper's
	 * acquire, which frees it. */
	while (!atomic_compare_exchange_weak_explicit(
	    &e->retired, &head, s, memory_order_release, memory_order_relaxed));
}

void
fsesl_retired_reap(struct fsesl_engine *e, bool wait)
{
	struct fsesl_subscriber *s, *next;

	s = atomic_exchange_explicit(&e->retired, NULL, memory_order_acquire);
	for (; s; s = next) {
		next = s->retired_next;
		if (wait)
			pthread_join(s->thr, NULL);
		else if (pthread_tryjoin_np(s->thr, NULL) != 0) {
			retired_push(e, s); /* still running: next time */
			continue;
		}
		sub_free(s);
	}
}

int
fsesl_subscriber_create(
    fsesl_engine *ref, const char *tag, const fsesl_sub_opts *opts, fsesl_subscriber **out)
{
	struct fsesl_subscriber *s;
	struct fsesl_engine *e;
	unsigned int qs, size = 4;
	int err;

	if (out)
		*out = NULL;
	if (!ref || !out)
		return -EINVAL;
	if (opts && (unsigned)opts->format > FSESL_EVFMT_XML)
		return -EINVAL;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	qs = opts && opts->queue_size ? opts->queue_size : e->cfg.event_queue_size;
	fsesl_window_leave(e);
	if (qs > (1u << 24))
		return -EINVAL;
	while (size - 1 < qs)
		size <<= 1;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->e = e;
	s->ref = ref;
	snprintf(s->tag, sizeof(s->tag), "%s", tag ? tag : "");
	s->fmt = opts ? opts->format : FSESL_EVFMT_PLAIN;
	s->cb = opts ? opts->cb : NULL;
	s->ud = opts ? opts->ud : NULL;
	err = fsesl_ring_mpsc_init(&s->q, size);
	if (err)
		goto out_free;
	err = fsesl_doorbell_init(&s->db);
	if (err)
		goto out_ring;
	if (s->cb) {
		err = -pthread_create(&s->thr, NULL, dispatcher_main, s);
		if (err)
			goto out_db;
		s->has_thr = true;
	}
	*out = s;
	return 0;
out_db:
	fsesl_doorbell_destroy(&s->db);
out_ring:
	fsesl_ring_mpsc_destroy(&s->q);
out_free:
	free(s);
	return err;
}

static struct fsesl_req *
ctl_new(const char *a, const char *b, size_t extra)
{
	size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
	size_t cap = la + lb + 64 + extra;
	struct fsesl_req *r = calloc(1, sizeof(*r) + cap + la + lb + 2);
	char *p;

	if (!r)
		return NULL;
	r->timer.idx = ~0u;
	/* The names live after the packet area, for the reactor's tables. */
	p = r->buf + cap;
	memcpy(p, a ? a : "", la + 1);
	r->arg1 = p;
	p += la + 1;
	memcpy(p, b ? b : "", lb + 1);
	r->arg2 = p;
	r->len = cap; /* capacity until encoded */
	return r;
}

static int
subctl_call(struct fsesl_subscriber *s, fsesl_server_t h, enum fsesl_subctl_op op, const char *a,
    const char *b)
{
	struct fsesl_evfilter *f = NULL;
	struct fsesl_req *r;
	ssize_t n = 0;
	int err;

	if (!s || !a || !*a || ((op == FSESL_FILTER_ADD) && (!b || !*b)))
		return -EINVAL;
	if (op == FSESL_FILTER_ADD) {
		/* Compiled here, once: the reactor only matches. */
		err = fsesl_evfilter_new(a, b, &f);
		if (err)
			return err;
	}
	r = ctl_new(a, b, 0);
	if (!r) {
		fsesl_evfilter_free(f);
		return -ENOMEM;
	}
	r->kind = FSESL_REQ_SUBCTL;
	r->priv = f; /* freed with r unless the reactor takes it */
	switch (op) {
	case FSESL_SUB_ADD:
		/* The reactor sends its own copy; this checks the name. */
		n = fsesl_encode_event(r->buf, r->len, s->fmt, &r->arg1, 1);
		break;
	case FSESL_SUB_DEL:
		n = fsesl_encode_nixevent(r->buf, r->len, &r->arg1, 1);
		break;
	case FSESL_FILTER_ADD:
		/* Never sent (the filter is ours to apply), but refused as
		 * the server would refuse it: CR/LF/NUL, blanks in a name. */
		n = fsesl_encode_filter(r->buf, r->len, a, b);
		break;
	default:
		n = fsesl_encode_filter_delete(r->buf, r->len, a, b && *b ? b : NULL);
		break;
	}
	if (n < 0) {
		fsesl_req_free(r);
		return fsesl_map_enc_err(n);
	}
	r->len = op == FSESL_SUB_ADD || op == FSESL_SUB_DEL ? (size_t)n : 0;
	r->op = (uint8_t)op;
	r->sub = s;
	r->handle = h;
	return fsesl_run_ctl(s->ref, h, r, true);
}

int
fsesl_subscribe(fsesl_subscriber *s, fsesl_server_t srv, const char *event)
{

	return subctl_call(s, srv, FSESL_SUB_ADD, event, NULL);
}

int
fsesl_unsubscribe(fsesl_subscriber *s, fsesl_server_t srv, const char *event)
{

	return subctl_call(s, srv, FSESL_SUB_DEL, event, NULL);
}

int
fsesl_subscribe_url(fsesl_subscriber *s, const char *url, fsesl_server_t *out)
{
	struct fsesl_url *u;
	fsesl_server_t h = 0;
	size_t i, done = 0;
	int err;

	if (out)
		*out = 0;
	if (!s || !url || !out)
		return -EINVAL;
	u = malloc(sizeof(*u));
	if (!u)
		return -ENOMEM;
	if (fsesl_url_parse(url, u, NULL, 0) != 0 || !u->password[0])
		err = FSESL_EURL;
	else
		err = fsesl_server_get_by(
		    s->ref, u->host, u->port, u->user[0] ? u->user : NULL, u->password, &h);
	for (i = 0; !err && i < u->n_events; i++) {
		err = fsesl_subscribe(s, h, u->events[i]);
		if (!err)
			done++;
	}
	if (err) {
		/* All or nothing: what was subscribed is withdrawn. */
		while (done > 0)
			(void)fsesl_unsubscribe(s, h, u->events[--done]);
		if (h)
			(void)fsesl_server_put(s->ref, h);
	} else {
		*out = h;
	}
	fsesl_url_clear(u);
	free(u);
	return err;
}

int
fsesl_filter_add(fsesl_subscriber *s, fsesl_server_t srv, const char *header, const char *value)
{

	return subctl_call(s, srv, FSESL_FILTER_ADD, header, value);
}

int
fsesl_filter_del(fsesl_subscriber *s, fsesl_server_t srv, const char *header, const char *value)
{

	return subctl_call(s, srv, FSESL_FILTER_DEL, header, value ? value : "");
}

int
fsesl_subscriber_next(fsesl_subscriber *s, fsesl_delivery *d, int timeout_ms)
{
	struct pollfd pfd;
	struct dnode *n;
	void *item;
	uint64_t end = 0, now;
	int wait;

	if (!s || !d)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	if (s->cb && cur_dispatcher != s)
		return -EINVAL; /* callback mode: the dispatcher consumes */
	if (timeout_ms > 0)
		end = fsesl_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		/* One consumer at a time (ring contract): the application or
		 * the dispatcher thread, never both. */
		if (fsesl_ring_mpsc_dequeue(&s->q, &item))
			break;
		/* The doorbell protocol: clear, re-check, then sleep. */
		(void)fsesl_doorbell_prepare_sleep(&s->db);
		if (fsesl_ring_mpsc_dequeue(&s->q, &item))
			break;
		/* Drained: drops the reactor has not reported yet (no event
		 * came after them to carry the notice) are reported now. */
		{
			uint64_t owed =
			    atomic_exchange_explicit(&s->owed_drops, 0, memory_order_relaxed);

			if (owed) {
				d->kind = FSESL_NOTICE_DROPPED;
				d->count = owed;
				return 1;
			}
		}
		if (timeout_ms == 0 || atomic_load_explicit(&s->quit, memory_order_acquire))
			return 0;
		wait = -1;
		if (timeout_ms > 0) {
			now = fsesl_mono_ns();
			if (now >= end)
				return 0;
			wait = (int)((end - now + 999999) / 1000000);
		}
		pfd.fd = fsesl_doorbell_fd(&s->db);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, wait) < 0 && errno != EINTR)
			return -errno;
		fsesl_doorbell_awake(&s->db);
	}
	n = item;
	d->kind = n->kind;
	d->server = n->server;
	d->count = n->count;
	d->event = n->ev ? n->ev->ev : NULL;
	d->subscription = n->kind == FSESL_NOTICE_REFUSED && n->ev ? n->ev->text : NULL;
	d->_priv = n->ev;
	free(n);
	return 1;
}

int
fsesl_subscriber_fd(const fsesl_subscriber *s)
{

	return s ? fsesl_doorbell_fd(&s->db) : -EINVAL;
}

uint64_t
fsesl_subscriber_dropped(const fsesl_subscriber *s)
{

	return s ? atomic_load_explicit(&s->dropped, memory_order_relaxed) : 0;
}

/* Frees what is left of s: queued deliveries, ring, doorbell. Nothing
 * else refers to s any more (its servers left, its dispatcher ended). */
static void
sub_free(struct fsesl_subscriber *s)
{
	fsesl_delivery d;
	void *item;

	while (fsesl_ring_mpsc_dequeue(&s->q, &item)) {
		struct dnode *n = item;

		d.event = NULL;
		d._priv = n->ev;
		fsesl_delivery_release(&d);
		free(n);
	}
	fsesl_doorbell_destroy(&s->db);
	fsesl_ring_mpsc_destroy(&s->q);
	free(s);
}

static void
dispatcher_wake(struct fsesl_subscriber *s)
{
	uint64_t one = 1;
	ssize_t w;

	/* The eventfd directly: the coalescing flag may say "already
	 * signalled". */
	w = write(fsesl_doorbell_fd(&s->db), &one, sizeof(one));
	(void)w;
}

/*
 * The end of a destroy, once s has left every server (the reactor holds
 * no pointer to it): stop its dispatcher and free it. e: its engine, still
 * running (the caller is inside its window, or on its reactor), or NULL
 * once it has stopped. Inside a callback nothing here waits for a thread
 * (the dispatcher may be the caller itself, or be waiting for the caller).
 */
static void
sub_end(struct fsesl_engine *e, struct fsesl_subscriber *s)
{
	bool in_cb = fsesl_on_reactor || cur_dispatcher;

	if (!s->has_thr) {
		sub_free(s);
		return;
	}
	if (in_cb && !e) {
		/* No engine left to join the dispatcher later: detached, and
		 * two holds decide who frees (its thread id is valid: it
		 * cannot end before quit is set below). */
		atomic_store_explicit(&s->orphan_holds, 2, memory_order_relaxed);
		(void)pthread_detach(s->thr);
	}
	/* release: pairs with the dispatcher's acquire load (and publishes
	 * orphan_holds with it). */
	atomic_store_explicit(&s->quit, true, memory_order_release);
	if (cur_dispatcher != s)
		dispatcher_wake(s);
	if (!in_cb) {
		pthread_join(s->thr, NULL);
		sub_free(s);
	} else if (e) {
		/* The dispatcher ends once its current callback, if any, has
		 * returned; the engine joins it and frees s. Pushed last:
		 * until then nobody frees s. */
		retired_push(e, s);
	} else if (atomic_fetch_sub_explicit(&s->orphan_holds, 1, memory_order_acq_rel) == 1) {
		sub_free(s);
	}
}

/* A destroy from another engine's reactor ends on s's own: the reactor
 * runs this once the SUBDESTROY request has taken s out of its tables. */
static void
sub_destroy_done(struct fsesl_cpl *c, uint32_t state, void *arg)
{
	struct fsesl_req *r = arg;

	(void)c;
	(void)state;
	/* On s's reactor: its tables no longer hold s (taken out, or freed
	 * at shutdown); retired there, joined by housekeeping or stop. */
	sub_end(r->sub->e, r->sub);
}

void
fsesl_subscriber_destroy(fsesl_subscriber *s)
{
	struct fsesl_engine *e;
	struct fsesl_req *r;

	if (!s)
		return;
	/* The engine may have stopped (and s->e be freed): only the reference
	 * says. Stopped: its tables are gone with it, nothing to leave. */
	if (fsesl_window_enter(s->ref, &e) != 0) {
		sub_end(NULL, s);
		return;
	}
	/* Leave every server first, so the reactor holds no pointer to s. */
	if (fsesl_on_reactor == e) {
		/* From a callback on s's own reactor: the tables are ours to
		 * change directly. */
		sub_leave_all(e, s);
		sub_end(e, s);
		fsesl_window_leave(e);
		return;
	}
	r = ctl_new(NULL, NULL, 0);
	if (!r) {
		/* Cannot ask the reactor: leaving s in its tables would let it
		 * write to freed memory. Keep s (a leak, on an allocation
		 * failure only) rather than free it. */
		fsesl_window_leave(e);
		return;
	}
	r->kind = FSESL_REQ_SUBDESTROY;
	r->sub = s;
	r->len = 0;
	if (fsesl_on_reactor) {
		/* Another engine's reactor must not wait for this one: the rest
		 * of the destroy runs when s's reactor has taken the request. */
		r->timeout_ms = e->cfg.esl_cmd_timeout;
		r->submit_ns = fsesl_engine_now(e);
		fsesl_cpl_init(&r->cpl, 1, sub_destroy_done, r);
		/* Blocking push inside the window: it fails only for lack of
		 * memory, and then s stays in the tables: keep it. */
		if (fsesl_submit(e, r, false, NULL) != 0)
			fsesl_req_free(r);
		fsesl_window_leave(e);
		return;
	}
	fsesl_window_leave(e);
	/* ESHUTDOWN: the reactor reads no more and frees its entries without
	 * touching s, so s may go. */
	(void)fsesl_run_ctl(s->ref, 0, r, false);
	if (fsesl_window_enter(s->ref, &e) == 0) {
		sub_end(e, s); /* a dispatcher's callback: retired, joined later */
		fsesl_window_leave(e);
	} else {
		sub_end(NULL, s);
	}
}

/* ------------------------------------------------------------------ */
/* HEARTBEAT load (any thread)                                           */
/* ------------------------------------------------------------------ */

/*
 * Posts the engine's own HEARTBEAT subscription for srv and returns: the
 * reactor answers nobody (fsesl_server_load never waits). A full ring is
 * not waited out either: the caller clears hb_wanted and a later call
 * asks again.
 */
static int
hb_post(struct fsesl_engine *e, fsesl_server_t srv)
{
	struct fsesl_req *r = ctl_new(NULL, NULL, 0);
	struct fsesl_srv *s;
	int err;

	if (!r)
		return -ENOMEM;
	r->kind = FSESL_REQ_HBWANT;
	r->len = 0;
	r->timeout_ms = e->cfg.esl_cmd_timeout;
	fsesl_cpl_init(&r->cpl, 1, NULL, NULL); /* the reactor's only */
	/* The caller is inside the window. */
	err = fsesl_srv_acquire(e, srv, &s);
	if (!err) {
		r->srv = s;
		r->submit_ns = fsesl_engine_now(e);
		err = fsesl_submit(e, r, true, NULL);
		if (err)
			fsesl_srv_unref(s);
	}
	if (err)
		free(r);
	return err;
}

int
fsesl_server_load(fsesl_engine *ref, fsesl_server_t srv, fsesl_load *out)
{
	struct fsesl_load_snap *p;
	struct fsesl_engine *e;
	struct fsesl_srv *s;
	uint64_t now, limit, iv;
	bool want = false;
	int err;

	if (!ref || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	err = fsesl_srv_acquire(e, srv, &s);
	if (err)
		goto out_leave;
	if (atomic_load_explicit(&s->hb_refused, memory_order_relaxed)) {
		err = FSESL_EREFUSED;
		goto out_unref;
	}
	/* Relaxed: a flag that only elects which caller asks the reactor;
	 * the request itself goes through the ring. */
	if (!atomic_load_explicit(&s->hb_wanted, memory_order_relaxed) &&
	    !atomic_exchange_explicit(&s->hb_wanted, true, memory_order_relaxed))
		want = true;
	urcu_bp_read_lock();
	p = rcu_dereference(s->load);
	if (p) {
		now = fsesl_engine_now(e);
		out->hb = p->hb;
		out->age_ms = (now - p->at_ns) / 1000000ull;
		iv = (uint64_t)e->cfg.event_heartbeat_interval * 1000000000ull;
		if (p->interval_ns > iv)
			iv = p->interval_ns;
		limit = iv * e->cfg.heartbeat_miss_limit;
		out->valid = now - p->at_ns <= limit;
	}
	urcu_bp_read_unlock();
	/* First call for this server: the engine subscribes itself; the load
	 * is valid after the first beat that follows the server's +OK. */
	if (want && hb_post(e, srv) != 0)
		atomic_store_explicit(&s->hb_wanted, false, memory_order_relaxed);
out_unref:
	fsesl_srv_unref(s);
out_leave:
	fsesl_window_leave(e);
	return err;
}

int
fsesl_pick_least_loaded(fsesl_engine *ref, const fsesl_server_t *srvs, size_t n)
{
	double best = -1.0, cap;
	struct fsesl_engine *e;
	fsesl_load ld;
	size_t i;
	int idx = -ENOENT, err;

	if (!ref || (!srvs && n))
		return -EINVAL;
	/* A stopped or inherited engine says so, rather than "none valid". */
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	fsesl_window_leave(e);
	for (i = 0; i < n; i++) {
		if (fsesl_server_load(ref, srvs[i], &ld) != 0 || !ld.valid)
			continue;
		cap = ld.hb.max_sessions > ld.hb.session_count
		          ? (double)(ld.hb.max_sessions - ld.hb.session_count)
		          : 0.0;
		cap *= ld.hb.idle_cpu / 100.0;
		if (cap > best) {
			best = cap;
			idx = (int)i;
		}
	}
	return idx;
}
