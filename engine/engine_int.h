/*
 * engine_int.h - libfsesl internals shared by the engine sources (not installed).
 *
 * Ownership in one paragraph (docs/engine.md has the long form):
 *  - struct fsesl_req: allocated by the submitting worker (command bytes
 *    inline); refs = 2 for blocking calls (worker + reactor), 1 for async
 *    ones; the last fsesl_cpl_release() frees it (queues' TEARDOWN RULE).
 *  - struct fsesl_reply: built by the reactor; handed to the blocking
 *    caller through the request (the caller frees it), or lent to an async
 *    callback and freed by the reactor right after.
 *  - struct fsesl_conn: owned by the reactor thread alone; lives as long
 *    as its server.
 *  - struct fsesl_srv: shared; found through the RCU hash tables. refs
 *    counts handles plus requests the reactor has not finished; the
 *    reactor reaps an entry whose refs stayed 0, freeing it with call_rcu.
 */
#ifndef FSESL_ENGINE_INT_H
#define FSESL_ENGINE_INT_H

#include <pthread.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu/urcu-bp.h>
#include <urcu/rculfhash.h>

#include "fsesl.h"
#include "fsesl_queues.h"
#include "job_orphans.h"

/* ------------------------------------------------------------------ */
/* Timers: a binary min-heap of pointers to embedded timer nodes          */
/* ------------------------------------------------------------------ */

struct fsesl_timer {
	uint64_t when_ns; /* CLOCK_MONOTONIC */
	uint64_t seq; /* FIFO among equal deadlines (libuv's start_id) */
	unsigned int idx; /* position in the heap, UINT_MAX when not armed */
	void (*fn)(struct fsesl_timer *t, void *arg);
	void *arg;
};

struct fsesl_heap {
	struct fsesl_timer **v;
	unsigned int n, cap;
	uint64_t seq;
};

/* ------------------------------------------------------------------ */
/* Requests                                                              */
/* ------------------------------------------------------------------ */

enum fsesl_req_kind {
	FSESL_REQ_CMD = 0,
	FSESL_REQ_ATTACH, /* a server's first connect (embedded in the server) */
	FSESL_REQ_RETIRE, /* a released handle, freed by the reactor's call_rcu */
	FSESL_REQ_SUBCTL, /* subscribe / unsubscribe / filter (events.c) */
	FSESL_REQ_SUBDESTROY, /* a subscriber leaves every server */
	FSESL_REQ_HBWANT, /* the engine's own HEARTBEAT subscription */
	FSESL_REQ_INTERNAL, /* replayed subscription: nobody waits */
	FSESL_REQ_JOB, /* bgapi waiting for its BACKGROUND_JOB */
	FSESL_REQ_TICK, /* fsesl_engine_tick(): done once no timer is due */
};

enum fsesl_subctl_op {
	FSESL_SUB_ADD = 0,
	FSESL_SUB_DEL,
	FSESL_FILTER_ADD,
	FSESL_FILTER_DEL,
};

/*
 * The reply types a request accepts, decided when it is built (cmd.c) and
 * checked against the reply that reaches the head of its FIFO (reactor.c).
 * Zero is what every control request (events.c) is sent as.
 */
enum fsesl_expect {
	FSESL_EXPECT_COMMAND_REPLY = 0, /* every command but api */
	FSESL_EXPECT_API, /* api/response, or command/reply "-ERR ..." when the
	                   * server refuses the api (restricted user) */
};

struct fsesl_srv;
struct fsesl_conn;

struct fsesl_req {
	struct fsesl_cpl cpl;
	uint8_t kind;
	uint8_t expect; /* enum fsesl_expect */
	bool is_async;
	struct fsesl_req *next; /* server queue or connection FIFO (intrusive) */
	struct fsesl_srv *srv; /* holds one server reference until the reactor
	                         * is done with the request */
	uint64_t submit_ns;
	uint64_t written_ns;
	unsigned int timeout_ms;
	/* Result: written by the reactor before fsesl_cpl_complete (release),
	 * read by the waiter after it observed the final state (acquire). */
	int status;
	struct fsesl_reply *reply;
	/* async */
	fsesl_reply_cb cb;
	void *ud;
	bool timeout_counted; /* in st.timeouts already (reactor only) */
	struct fsesl_batch *batch; /* fsesl_api_many(): its batch and slot */
	size_t batch_idx;
	struct fsesl_timer timer; /* async deadline */
	/* events.c control requests */
	uint8_t op;
	struct fsesl_subscriber *sub;
	fsesl_server_t handle;
	const char *arg1, *arg2; /* inside buf, after the packet */
	void *priv; /* filter_add: the compiled filter, until the reactor
	             * takes it (fsesl_req_free frees it otherwise) */
	/* bgapi jobs: the reactor holds one reference for two places (the
	 * command path and the job table); `holds` counts them. job_uuid
	 * points after the packet, with room for FSESL_MAX_JOB_UUID_LEN:
	 * the engine's id, until a reply names the server's own. */
	char *job_uuid;
	struct fsesl_event *job_ev; /* the result; freed with the request */
	fsesl_job_cb job_cb;
	struct fsesl_req *job_next;
	uint8_t holds;
	bool in_table;
	bool job_replied; /* its bgapi reply was read (reactor) */
	bool bg_sub; /* events.c: an `event ... BACKGROUND_JOB` of the engine's */
	size_t len;
	char buf[]; /* the encoded packet */
};

void fsesl_req_free(struct fsesl_req *r);
void fsesl_req_set_async(struct fsesl_req *r, fsesl_reply_cb cb, void *ud);

/*
 * fsesl_api_many(): n async requests and one waiter. Each item, once
 * completed (on the reactor, or by the caller when its submit failed),
 * writes its slot, then decrements `remaining`; the caller holds one more
 * count while it submits. Whoever takes it to zero completes `cpl`. The
 * TEARDOWN RULE of fsesl_queues.h with two references: that completer's
 * and the waiter's; the last release frees.
 */
struct fsesl_batch {
	struct fsesl_cpl cpl;
	_Atomic size_t remaining;
	const struct fsesl_wait_ops *ops;
	int *statuses;
	struct fsesl_reply **replies;
};
void fsesl_req_set_batch(struct fsesl_req *r, struct fsesl_batch *b, size_t idx);
void fsesl_batch_item_done(struct fsesl_batch *b);

/* ------------------------------------------------------------------ */
/* Replies                                                               */
/* ------------------------------------------------------------------ */

struct fsesl_reply {
	enum fsesl_msg_type type;
	size_t n_headers;
	struct fsesl_header *headers; /* NUL-terminated copies */
	const char *content_type;
	const char *reply_text; /* full Reply-Text value, or NULL */
	const char *body; /* "" if none */
	size_t body_len;
	/* one allocation: headers[] and strings follow */
};

struct fsesl_reply *fsesl_reply_from_msg(const struct fsesl_msg *m);

/* ------------------------------------------------------------------ */
/* Connections (reactor only)                                            */
/* ------------------------------------------------------------------ */

enum fsesl_conn_state {
	FSESL_CONN_IDLE = 0, /* not started, or in backoff (timer armed) */
	FSESL_CONN_CONNECTING, /* non-blocking connect in progress */
	FSESL_CONN_GREETING, /* waiting for auth/request */
	FSESL_CONN_AUTH, /* auth sent, waiting for its reply */
	FSESL_CONN_READY,
};

struct fsesl_buf {
	char *p;
	size_t len, cap, off; /* data is p[off .. len) */
};

struct fsesl_conn {
	struct fsesl_srv *srv;
	unsigned int index;
	int fd;
	enum fsesl_conn_state state;
	bool was_ready; /* reached READY since the last failure */
	bool retry_soon; /* dropped while READY: immediate retry armed */
	uint64_t ready_ns; /* when it became READY (liveness) */
	uint64_t rx_ns; /* last bytes received (liveness) */
	bool out_armed; /* EPOLLOUT registered (after a short write) */
	bool dirty; /* on the engine's dirty list */
	struct fsesl_conn *dirty_next;
	struct fsesl_buf in, out;
	size_t parse_last; /* bytes already seen by a PARTIAL parse */
	struct fsesl_req *fifo_head, *fifo_tail; /* in flight, written order */
	unsigned int in_flight;
	unsigned int failures; /* consecutive failed attempts */
	struct fsesl_timer timer; /* connect timeout or backoff */
	bool backlog; /* parsed-but-unhandled bytes left (message cap) */
	struct fsesl_conn *backlog_next;
};

/* ------------------------------------------------------------------ */
/* Servers                                                               */
/* ------------------------------------------------------------------ */

#define FSESL_SRV_DEAD 0x80000000u

struct fsesl_srv_stats {
	_Atomic uint64_t commands_sent, replies, timeouts, late_replies, in_flight, queued,
	    connects, reconnects, connect_failures, bytes_in, bytes_out, events_in, forged_events,
	    unknown_jobs;
	_Atomic int connected_conns;
	_Atomic int last_error;
	_Atomic uint64_t hist[FSESL_LATENCY_BUCKETS];
};

struct fsesl_srv {
	struct cds_lfht_node node; /* registry, keyed host:port */
	struct rcu_head rcu;
	struct fsesl_engine *e;
	_Atomic uint32_t refs; /* handles + unfinished requests; DEAD bit */
	char key[300]; /* "host:port" */
	char host[256];
	uint16_t port;
	unsigned long hash;

	pthread_mutex_t cred_lock; /* user/password; never held across I/O */
	char user[256];
	char password[256];

	struct fsesl_srv_stats st;
	/* How long a blocking request to this server takes, submit to reply,
	 * ns: a moving average (1/8) the reactor keeps, queueing included;
	 * submitters copy it into their completion (the wait policy,
	 * queues/completion.c). Relaxed: a heuristic, nothing is published
	 * through it. */
	_Atomic uint32_t expect_ns;

	/* Reactor only. */
	_Atomic bool attach_sent; /* the attach item was submitted */
	bool attach_done; /* ... and the reactor has taken it */
	bool known; /* on the reactor's server list */
	bool dirty; /* on the dirty-server list */
	struct fsesl_srv *dirty_next;
	struct fsesl_srv *list_next;
	struct fsesl_conn *conns;
	unsigned int n_conns;
	struct fsesl_req *q_head, *q_tail; /* waiting for a connection slot */
	unsigned int n_queued;
	bool resolved;
	struct sockaddr_storage *addr; /* resolved address */
	unsigned int addrlen;
	uint64_t idle_since_ns;
	/* events.c, reactor only */
	struct fsesl_sub_entry *subs;
	struct fsesl_sub_link *links; /* per subscriber: filters, notices */
	struct fsesl_req *sub_waiters; /* subscribes waiting for the answer */
	struct fsesl_load_snap *load; /* RCU-published, read by any thread */
	_Atomic bool hb_wanted;
	_Atomic bool hb_refused; /* the server refused the load watch's
	                          * HEARTBEAT (read by any thread) */
	bool hb_internal;
	uint64_t hb_seen_interval_ns; /* longest observed HEARTBEAT period,
	                               * kept across reconnects (liveness) */
	bool bg_internal;
	struct fsesl_timer kick; /* lf_kick_interval_ms: wakes the server's
	                          * event poll with a lone LF */
	bool replaying; /* send_internal() marks what conn_up replays */
	unsigned int replay_pending; /* replayed subscriptions not answered yet */
	bool ev_up; /* connection 0 ready and its subscriptions restored */
	struct fsesl_req *jobs; /* waiting for their BACKGROUND_JOB */
	struct fsesl_req *parked_head, *parked_tail; /* jobs waiting for the
	                                              * event connection (next) */
	unsigned int jobs_unreplied; /* of those, how many still await their
	                              * bgapi reply (it may name another id) */
	struct fsesl_orphans *orphans; /* unmatched results, kept meanwhile */
	bool bg_refused; /* the server refused our BACKGROUND_JOB subscription */
	/* Last: struct fsesl_req ends in a flexible array, and a struct that
	 * embeds one anywhere else is a GNU extension clang refuses. */
	struct fsesl_req attach; /* embedded control item */
};

struct fsesl_handle {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	uint64_t id;
	struct fsesl_srv *srv;
	/* put() hands the handle to the reactor through the ring, so that
	 * every call_rcu runs on the reactor with the engine's own call_rcu
	 * thread (stopped and joined at stop: no thread outlives the engine). */
	struct fsesl_req retire;
};

/* ------------------------------------------------------------------ */
/* Engine                                                                */
/* ------------------------------------------------------------------ */

struct fsesl_engine {
	fsesl_config cfg;
	struct fsesl_limits lim;
	struct fsesl_sq sq;
	const struct fsesl_wait_ops *ops;
	pthread_t thread;
	int epfd;

	struct cds_lfht *servers; /* key host:port */
	struct cds_lfht *handles; /* key handle id */
	_Atomic uint64_t next_handle;

	/* References (ref.c): the slot behind the application's token, and
	 * the token itself. The slot counts the callers inside the engine
	 * and carries the STOPPING and FORKED flags; `stopping` is the
	 * reactor's own copy of STOPPING, set by stop after the slot's. */
	struct fsesl_slot *slot;
	fsesl_engine *ref;
	_Atomic bool stopping;

	/* stats (futex_wakes: wakes issued outside the batch) */
	_Atomic uint64_t submitted, loop_iterations, futex_wakes;
	/* The reactor's wake batch (reactor only; its counters any thread):
	 * made and destroyed by reactor_main, flushed once per turn. */
	struct fsesl_wakeb_st wakes;
	_Atomic uint64_t n_servers;

	/* Reactor only. */
	struct fsesl_heap timers;
	struct fsesl_conn *dirty_head;
	struct fsesl_srv *dirty_srv;
	struct fsesl_conn *backlog_head;
	struct fsesl_srv *srv_list;
	struct fsesl_timer housekeeping;
	uint64_t now_ns; /* fsesl_engine_now() at this turn's wake-up */
	struct fsesl_req *ticks; /* fsesl_engine_tick() callers (via next) */
	uint32_t rng;
	bool work_pending;
	uint64_t last_busy_ns; /* last busy turn, on CLOCK_MONOTONIC (spin_now) */
	unsigned int tick_turns; /* turns the oldest pending tick has waited */
	struct call_rcu_data *crdp; /* the reactor's call_rcu worker */
	/* Subscribers destroyed from a callback whose dispatcher thread is
	 * still to be joined (events.c, fsesl_retired_reap). */
	_Atomic(struct fsesl_subscriber *) retired;
	/* events.c: each event or notice gets the next value, and a subscriber
	 * that holds it already is not given it twice (one delivery per
	 * subscriber however many of its entries match). */
	uint64_t stamp;
};

/*
 * The window (ref.c): every public call resolves the application's
 * fsesl_engine * with fsesl_window_enter() before it touches the engine,
 * and leaves before it waits for anything. enter returns FSESL_ESHUTDOWN
 * once stop has begun (or for a stale reference), FSESL_EFORKED in a
 * forked child, -EINVAL for NULL; stop frees the engine only once no
 * caller is inside. Calls nest (a count).
 */
int fsesl_window_enter(fsesl_engine *ref, struct fsesl_engine **e);
void fsesl_window_leave(struct fsesl_engine *e);
uint32_t fsesl_window_callers(const struct fsesl_engine *e);
int fsesl_ref_alloc(struct fsesl_engine *e, fsesl_engine **out);
int fsesl_ref_stop(fsesl_engine *ref, struct fsesl_engine **e);
void fsesl_ref_release(struct fsesl_engine *e);

/*
 * The engine's clock (cfg.clock_fn or CLOCK_MONOTONIC). Every reactor
 * deadline and every age lives on it; only the kernel-side deadlines of
 * blocking waits (futex, poll) use CLOCK_MONOTONIC directly.
 */
static inline uint64_t
fsesl_engine_now(const struct fsesl_engine *e)
{

	return e->cfg.clock_fn ? e->cfg.clock_fn(e->cfg.clock_ud) : fsesl_mono_ns();
}

/* Relaxed counter bump: every stat has one writer or tolerates races. */
#define FSESL_STAT_ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define FSESL_STAT_SUB(field, n) atomic_fetch_sub_explicit(&(field), (n), memory_order_relaxed)

/* Thread-local: the engine whose reactor this thread is (callbacks run
 * there), NULL on every other thread. */
extern _Thread_local struct fsesl_engine *fsesl_on_reactor;

/* config.c */
void fsesl_log(const struct fsesl_engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cmd.c */
int fsesl_map_enc_err(ssize_t n);

/* The code a request that did not end DONE reports: its deadline, else the
 * status the reactor set (0 only for a shutdown cancellation). */
static inline int
fsesl_req_fail_code(uint32_t state, int status)
{

	if (state == FSESL_CPL_TIMEDOUT)
		return -ETIMEDOUT;
	return status ? status : FSESL_ESHUTDOWN;
}

/* server.c */
int fsesl_srv_acquire(struct fsesl_engine *e, fsesl_server_t h, struct fsesl_srv **out);
void fsesl_srv_unref(struct fsesl_srv *s);
bool fsesl_srv_try_reap(struct fsesl_engine *e, struct fsesl_srv *s);
void fsesl_srv_free_now(struct fsesl_srv *s);
void fsesl_registry_destroy(struct fsesl_engine *e);
int fsesl_registry_init(struct fsesl_engine *e);
void fsesl_handle_retire(struct fsesl_req *r);
void fsesl_srv_creds(struct fsesl_srv *s, char *user, size_t ulen, char *pw, size_t plen);

/* reactor.c */
uint64_t fsesl_backoff_ns(const fsesl_config *cfg, unsigned int failures, uint32_t random);
int fsesl_reactor_start(struct fsesl_engine *e);
void fsesl_reactor_intake(struct fsesl_engine *e, struct fsesl_req *r);
int fsesl_submit(
    struct fsesl_engine *e, struct fsesl_req *r, bool nonblock, const struct timespec *deadline);

/* events.c (reactor side) */
void fsesl_event_dispatch(struct fsesl_engine *e, struct fsesl_srv *s, const struct fsesl_msg *m);
void fsesl_events_intake(struct fsesl_engine *e, struct fsesl_req *r);
/* A control request's reply (FIFO head of kind SUBCTL / INTERNAL). */
void fsesl_events_reply(struct fsesl_engine *e, struct fsesl_req *r, const struct fsesl_msg *m);
void fsesl_events_conn_up(struct fsesl_engine *e, struct fsesl_conn *c);
void fsesl_events_conn_down(struct fsesl_engine *e, struct fsesl_conn *c);
void fsesl_events_srv_close(struct fsesl_engine *e, struct fsesl_srv *s);
void fsesl_load_free(struct fsesl_srv *s);
bool fsesl_events_srv_has_subscribers(const struct fsesl_srv *s);
void fsesl_jobs_housekeeping(struct fsesl_engine *e, struct fsesl_srv *s);
bool fsesl_events_liveness_expired(
    struct fsesl_engine *e, struct fsesl_srv *s, const struct fsesl_conn *c);
void fsesl_kick_arm(struct fsesl_engine *e, struct fsesl_srv *s);
void fsesl_job_unlink(struct fsesl_srv *s, struct fsesl_req *r);
/* Jobs parked until the event connection is READY go out on c, or (c
 * NULL) fail with err. */
void fsesl_jobs_unpark(struct fsesl_engine *e, struct fsesl_srv *s, struct fsesl_conn *c, int err);
/* Joins the dispatcher threads of subscribers destroyed from callbacks and
 * frees them: those that have ended (the reactor: never blocks), or every
 * one (wait: stop, once the reactor has ended). */
void fsesl_retired_reap(struct fsesl_engine *e, bool wait);
/* Connection 0's attempt failed (backoff armed): waiting subscribes end. */
void fsesl_events_attempt_failed(struct fsesl_engine *e, struct fsesl_conn *c);
/* Every housekeeping pass: notices a full queue kept, abandoned waits. */
void fsesl_events_housekeeping(struct fsesl_engine *e, struct fsesl_srv *s);
/* What a control request owns beyond its memory (a filter not taken). */
void fsesl_subctl_free(struct fsesl_req *r);

/* filter.c: a subscriber's event filters (FreeSWITCH's rule, fsesl.h). */
struct fsesl_evfilter;
int fsesl_evfilter_new(const char *header, const char *value, struct fsesl_evfilter **out);
void fsesl_evfilter_free(struct fsesl_evfilter *f);
/* value NULL: any value on that header. */
bool fsesl_evfilter_same(const struct fsesl_evfilter *f, const char *header, const char *value);
void fsesl_evfilter_hold(struct fsesl_evfilter *f);
bool fsesl_evfilter_release(struct fsesl_evfilter *f); /* true: the last */
/* With no filter everything passes; else a positive match and no
 * negative one. Reactor only (the match data is its own). */
bool fsesl_evfilters_pass(struct fsesl_evfilter *const *v, size_t n, const struct fsesl_event *ev);

/* reactor.c services for events.c */
/* Every reactor-side completion of a request: a sleeping waiter's wake
 * goes into the turn's wake batch (fsesl_cpl_complete otherwise). */
bool fsesl_rx_complete(struct fsesl_engine *e, struct fsesl_req *r, uint32_t state);
void fsesl_rx_req_done(struct fsesl_engine *e, struct fsesl_req *r);
void fsesl_rx_req_finish(struct fsesl_engine *e, struct fsesl_req *r, int status);
void fsesl_rx_send_on(struct fsesl_engine *e, struct fsesl_conn *c, struct fsesl_req *r);
void fsesl_rx_srv_known(struct fsesl_engine *e, struct fsesl_srv *s);
void fsesl_rx_enqueue(struct fsesl_engine *e, struct fsesl_req *r);
bool fsesl_rx_job_may_wait(struct fsesl_engine *e, struct fsesl_req *r);
void fsesl_rx_mark_dirty(struct fsesl_engine *e, struct fsesl_conn *c);
void fsesl_srv_ref_reactor(struct fsesl_srv *s);

/* cmd.c: submit a prepared control request and wait for its status
 * (deadline: esl_cmd_timeout; without, the reactor's answer only). */
int fsesl_run_ctl(fsesl_engine *ref, fsesl_server_t h, struct fsesl_req *r, bool deadline);

/* timers (reactor.c) */
void fsesl_timer_init(struct fsesl_timer *t, void (*fn)(struct fsesl_timer *, void *), void *arg);
int fsesl_timer_arm(struct fsesl_heap *h, struct fsesl_timer *t, uint64_t when_ns);
void fsesl_timer_disarm(struct fsesl_heap *h, struct fsesl_timer *t);

#endif /* FSESL_ENGINE_INT_H */
