/*
 * fsesl.h - FreeSWITCH Event Socket engine: the public API.
 *
 * One reactor thread owns every ESL socket. Any number of worker threads
 * submit commands through lock-free rings; the reactor pipelines them on
 * the wire, matches replies in order and hands each reply back through a
 * per-request futex (or, in the compatibility mode, to a waiter that polls
 * every esl_cmd_polling_itv microseconds, as OpenSIPS does).
 *
 * Conventions (as libuv's):
 *  - Functions return 0 (or a count) on success and a negative code on
 *    failure: -errno values (-EINVAL, -ENOMEM, -ETIMEDOUT, -EAGAIN,
 *    -ECONNREFUSED, ...) or FSESL_E* below. fsesl_strerror() names both.
 *  - A callback never runs when the call that registered it failed.
 *  - Every request completes exactly once: with its reply, a timeout, a
 *    disconnect, or the engine's shutdown. No reply ever reaches another
 *    request.
 *  - Thread-safety is stated per function. "Any thread" includes the
 *    reactor's callbacks unless FSESL_EINCALLBACK is listed.
 *  - Passwords are never logged and never appear in error text.
 *
 * Full reference: docs/api.md. Architecture: docs/architecture.md.
 */
#ifndef FSESL_H
#define FSESL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsesl_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSESL_VERSION_MAJOR 0
#define FSESL_VERSION_MINOR 1
#define FSESL_VERSION_PATCH 0
#define FSESL_VERSION_HEX                                                                          \
	((FSESL_VERSION_MAJOR << 16) | (FSESL_VERSION_MINOR << 8) | FSESL_VERSION_PATCH)
FSESL_API const char *fsesl_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

enum fsesl_error {
	FSESL_EAUTH = -1001, /* server refused our password (-ERR invalid) */
	FSESL_EREJECTED = -1002, /* text/rude-rejection: the server's ACL */
	FSESL_EPROTO = -1003, /* the server broke the protocol (or a reply
	                       * came that does not fit its request);
	                       * reconnecting. In flight: outcome unknown */
	FSESL_EDISCONNECTED = -1004, /* connection lost after the command was
	                              * written: outcome unknown */
	FSESL_ENOTCONNECTED = -1005, /* server down; the command was not sent */
	FSESL_ESHUTDOWN = -1006, /* the engine is stopping or stopped */
	FSESL_EINJECTION = -1007, /* CR, LF or NUL in a one-line value */
	FSESL_EUNLOAD = -1008, /* would unload/reload mod_event_socket */
	FSESL_EINCALLBACK = -1009, /* blocking call from a reactor callback */
	FSESL_EURL = -1010, /* malformed URL */
	FSESL_ECONNTIMEOUT = -1011, /* connect/greeting/auth over esl_connect_timeout */
	FSESL_EBADHANDLE = -1012, /* unknown, released or stale handle */
	FSESL_ETOOBIG = -1013, /* command or body over a limit */
	FSESL_ECONFIG = -1014, /* unknown setting or bad value */
	FSESL_EJOBLOST = -1015, /* bgapi job: connection lost, outcome unknown */
	FSESL_EREFUSED = -1016, /* the server answered -ERR (e.g. permission
	                             * denied) to a subscription or a job */
	FSESL_EFORKED = -1017, /* an engine of the parent process, used in a
	                        * forked child: start one in the child */
	FSESL_EURLEVENTS = -1018, /* fsesl_server_get: the URL lists events;
	                           * fsesl_subscribe_url() subscribes them */
	FSESL_ENOJOBID = -1020, /* bgapi job: the reply named no Job-UUID, so
	                         * the result cannot be matched; the job may run */
	FSESL_ERESOLVE = -1022, /* the host name could not be resolved */
};

/* Static text for 0, any -errno and any FSESL_E* / FSESL_PERR_* code. */
FSESL_API const char *fsesl_strerror(int err);

/* ------------------------------------------------------------------ */
/* Configuration                                                        */
/* ------------------------------------------------------------------ */

enum fsesl_wait_mode {
	FSESL_WAIT_DEFAULT = -1, /* per call: use the engine's */
	FSESL_WAIT_FUTEX = 0, /* spin briefly, then sleep on a futex */
	FSESL_WAIT_POLL = 1, /* OpenSIPS: usleep(esl_cmd_polling_itv) loop */
};

enum fsesl_log_level {
	FSESL_LOG_ERROR = 0,
	FSESL_LOG_WARN,
	FSESL_LOG_INFO,
	FSESL_LOG_DEBUG,
};

/* Runs on the reactor thread (or the caller's): must not block. */
typedef void (*fsesl_log_fn)(int level, const char *msg, void *ud);

/*
 * The engine's clock: nanoseconds on a monotonic scale. Called by the
 * reactor and by any thread that submits or reads a load snapshot, so it
 * must be thread-safe and must never go backwards. NULL (the default) is
 * CLOCK_MONOTONIC; tests and simulations substitute their own and move it
 * with fsesl_engine_tick() (see docs/api.md, "Time").
 */
typedef uint64_t (*fsesl_clock_fn)(void *ud);

#define FSESL_MAX_BACKOFF_STEPS 8

typedef struct fsesl_config {
	/* OpenSIPS names, units and defaults. */
	unsigned int event_heartbeat_interval; /* s, 1: expected HEARTBEAT period */
	unsigned int esl_connect_timeout; /* ms, 5000: connect+greeting+auth */
	unsigned int esl_cmd_timeout; /* ms, 5000: default per command */
	unsigned int esl_cmd_polling_itv; /* us, 1000: poll wait mode's sleep */
	/* Ours. */
	enum fsesl_wait_mode wait_mode; /* FSESL_WAIT_FUTEX */
	unsigned int ring_size; /* per shard, power of two, 4096 */
	unsigned int ring_shards; /* 0 = per CPU */
	unsigned int max_in_flight; /* per connection, 64 */
	unsigned int connections_per_server; /* 1 */
	size_t max_body_bytes; /* 16 MiB */
	unsigned int max_abandoned; /* timed-out places per connection
	                                        * before it is recycled, 256 */
	unsigned int heartbeat_miss_limit; /* 3 intervals, then dead */
	unsigned int backoff_s[FSESL_MAX_BACKOFF_STEPS]; /* 1,5,10,30,90 */
	unsigned int backoff_steps; /* 5 */
	unsigned int backoff_step_every; /* 20 failures per step */
	unsigned int idle_timeout_s; /* 86400 */
	unsigned int lf_kick_interval_ms; /* 0 = off */
	unsigned int event_queue_size; /* per subscriber, 4096 */
	fsesl_log_fn log_fn; /* NULL: silent */
	void *log_ud;
	int log_level; /* FSESL_LOG_WARN */
	unsigned int reactor_spin_us; /* busy reactor: poll this long
	                                        * before sleeping, 50; 0 off */
	fsesl_clock_fn clock_fn; /* NULL: CLOCK_MONOTONIC */
	void *clock_ud;
} fsesl_config;

/* Fills *cfg with the defaults above. Any thread. */
FSESL_API void fsesl_config_init(fsesl_config *cfg);

/*
 * Sets one setting by name, with the value as text: the OpenSIPS names
 * (event_heartbeat_interval, esl_connect_timeout, esl_cmd_timeout,
 * esl_cmd_polling_itv) and ours (wait_mode=futex|poll, ring_size,
 * ring_shards, max_in_flight, connections_per_server, max_body_bytes,
 * max_abandoned, heartbeat_miss_limit, backoff=1,5,10,30,90,
 * backoff_step_every, idle_timeout, lf_kick_interval_ms, event_queue_size,
 * log_level=error|warn|info|debug, reactor_spin_us).
 * Strict: numbers are digits only (no sign, space, unit or wrap-around),
 * lists have no empty field or trailing comma, words are exact.
 * Returns 0 or FSESL_ECONFIG with the reason in errbuf (may be NULL); a
 * refused value leaves *cfg unchanged.
 */
FSESL_API int fsesl_config_set(
    fsesl_config *cfg, const char *name, const char *value, char *errbuf, size_t errlen);

/* ------------------------------------------------------------------ */
/* Engine                                                               */
/* ------------------------------------------------------------------ */

/*
 * An engine reference. Opaque, and not an address: a checked value, like a
 * server handle, so that using it after fsesl_engine_stop() or in a forked
 * child is an error code, never a read of freed memory. Never NULL when
 * valid; compare, copy and pass it freely.
 */
typedef struct fsesl_engine_ref fsesl_engine;

/*
 * Starts the reactor thread. cfg is copied (NULL: defaults). Any thread.
 * -EMFILE when 1024 engines are running already.
 */
FSESL_API int fsesl_engine_start(const fsesl_config *cfg, fsesl_engine **out);
/*
 * Stops: every pending request completes with FSESL_ESHUTDOWN, every
 * socket closes, the thread is joined, everything is freed. A call made
 * on e during stop (in any thread) or at any time after it returns
 * FSESL_ESHUTDOWN (fsesl_engine_stats_get() fills zeros); stop returns
 * once no such call is still inside the engine. A second stop returns
 * FSESL_ESHUTDOWN. Not from a callback (FSESL_EINCALLBACK).
 *
 * fork(): in a child process the parent's engines are dead (their threads
 * were not copied). Every call on them there, stop included, returns
 * FSESL_EFORKED at once; the child starts an engine of its own (the
 * parent's engines keep working in the parent). See
 * docs/migrating-from-opensips.md, "Processes".
 */
FSESL_API int fsesl_engine_stop(fsesl_engine *e);

/*
 * Makes the reactor read its clock and run every timer due by then, and
 * returns once it has: connect timeouts, reconnect backoff, async command
 * and job deadlines, HEARTBEAT liveness, the LF kick, overdue heads and
 * idle cleanup all happen before this returns, and what they post to a
 * subscriber's queue is there. With a substituted clock (cfg.clock_fn)
 * this is how a test moves time deterministically; with the real clock it
 * is a round trip through the reactor. The deadlines of blocking calls are
 * not the reactor's: the kernel measures them on CLOCK_MONOTONIC.
 * Any thread except the reactor's callbacks (FSESL_EINCALLBACK).
 */
FSESL_API int fsesl_engine_tick(fsesl_engine *e);

/* ------------------------------------------------------------------ */
/* Servers                                                              */
/* ------------------------------------------------------------------ */

/*
 * A handle is one reference to a server entry. Entries are shared per
 * host:port by every caller (a later get with other credentials updates
 * them) and found without a lock. Handles are checked values, not
 * pointers: using a released handle returns FSESL_EBADHANDLE, never
 * crashes. 0 is never a valid handle.
 */
typedef uint64_t fsesl_server_t;

/* fs://[user]:password@host[:port]. Any thread. The connection is opened
 * in the background; commands submitted meanwhile wait for it (up to their
 * timeout). A URL with an event list (?EV1,EV2) is refused with
 * FSESL_EURLEVENTS and takes no reference: a handle has no subscriber to
 * receive them; fsesl_subscribe_url() subscribes one. */
FSESL_API int fsesl_server_get(fsesl_engine *e, const char *url, fsesl_server_t *out);
/* The same without a URL, under the URL's rules: a non-empty password, a
 * host fsesl_host_check() accepts (IPv6 bare or in brackets); -EINVAL
 * otherwise, before any name lookup. */
FSESL_API int fsesl_server_get_by(fsesl_engine *e, const char *host, unsigned int port,
    const char *user /* NULL */, const char *password, fsesl_server_t *out);
/* Releases one reference. The entry is closed and freed (call_rcu) once
 * no reference, command or subscription remains and idle_timeout_s has
 * passed. Any thread. FSESL_EBADHANDLE on a released handle. */
FSESL_API int fsesl_server_put(fsesl_engine *e, fsesl_server_t srv);

#define FSESL_LATENCY_BUCKETS 24 /* bucket i: [2^i, 2^(i+1)) us; 0 below 1 us */

typedef struct fsesl_server_stats {
	uint64_t commands_sent;
	uint64_t replies;
	uint64_t timeouts;
	uint64_t late_replies; /* replies to timed-out requests, discarded */
	uint64_t in_flight; /* written, reply not yet read */
	uint64_t queued; /* waiting for an in-flight slot */
	uint64_t connects;
	uint64_t reconnects;
	uint64_t connect_failures;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t events_in;
	uint64_t forged_events; /* dropped HEARTBEAT/BACKGROUND_JOB with Command */
	uint64_t unknown_jobs;
	int connected_conns;
	int last_error; /* last connect/connection error, 0 if none */
	uint64_t latency_us_hist[FSESL_LATENCY_BUCKETS];
} fsesl_server_stats;

/* Any thread; a consistent-enough snapshot of relaxed counters. */
FSESL_API int fsesl_server_stats_get(fsesl_engine *e, fsesl_server_t srv, fsesl_server_stats *out);

typedef struct fsesl_engine_stats {
	uint64_t submitted;
	uint64_t doorbell_writes; /* eventfd writes: syscalls on the submit side */
	uint64_t loop_iterations;
	uint64_t futex_wakes; /* sleeping callers woken by the reactor */
	uint64_t servers;
	/* How those wakes reached the kernel: the reactor batches the wakes
	 * of a loop turn (docs/engine.md, "Waking callers"). */
	uint64_t wake_flushes; /* turns that had wakes to hand over */
	uint64_t wake_syscalls; /* io_uring_enter (one per flush) or
	                         * FUTEX_WAKE (one per wake) calls */
	int wake_uring; /* 1: batches go through io_uring FUTEX_WAKE */
} fsesl_engine_stats;
FSESL_API void fsesl_engine_stats_get(fsesl_engine *e, fsesl_engine_stats *out);

/* ------------------------------------------------------------------ */
/* Replies                                                              */
/* ------------------------------------------------------------------ */

typedef struct fsesl_reply fsesl_reply;

/* "command/reply" or "api/response". */
FSESL_API const char *fsesl_reply_content_type(const fsesl_reply *r);
/* true for api/response. */
FSESL_API bool fsesl_reply_is_api(const fsesl_reply *r);
/*
 * command/reply: 1 for "+OK", 0 for "-ERR", -1 otherwise.
 * api/response: 0 if the body starts with "-ERR" or "-USAGE", else 1.
 */
FSESL_API int fsesl_reply_ok(const fsesl_reply *r);
/* Reply-Text value (NUL-terminated) or NULL for api/response. */
FSESL_API const char *fsesl_reply_text(const fsesl_reply *r);
/* Body (NUL-terminated; "" if none) and its length. */
FSESL_API const char *fsesl_reply_body(const fsesl_reply *r, size_t *len);
/* Any envelope header, case-insensitive, or NULL. */
FSESL_API const char *fsesl_reply_header(const fsesl_reply *r, const char *name);
FSESL_API void fsesl_reply_free(fsesl_reply *r);

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

/*
 * Per-call options. Every call that takes them refuses values outside
 * these ranges with -EINVAL before anything is submitted.
 */
typedef struct fsesl_cmd_opts {
	int timeout_ms; /* > 0: milliseconds; < 0: esl_cmd_timeout;
	                 * 0: -EINVAL (neither "at once" nor "never") */
	enum fsesl_wait_mode wait_mode; /* FSESL_WAIT_DEFAULT (the engine's),
	                                 * _FUTEX or _POLL; else -EINVAL */
	bool nonblock; /* ring full: -EAGAIN instead of waiting */
	unsigned int enc_flags; /* FSESL_ENC_ALLOW_UNLOAD or 0; other bits
	                         * -EINVAL */
} fsesl_cmd_opts;

#define FSESL_CMD_OPTS_INIT                                                                        \
	{                                                                                          \
		-1, FSESL_WAIT_DEFAULT, false, 0                                                   \
	}

/*
 * Blocking commands. Any thread except the reactor (FSESL_EINCALLBACK).
 * On success *reply is the server's reply (the caller frees it) - a -ERR
 * reply is still success at this level; check fsesl_reply_ok(). On
 * failure *reply is NULL and the code says what happened:
 * -ETIMEDOUT, FSESL_EDISCONNECTED, FSESL_EPROTO, FSESL_ENOTCONNECTED, FSESL_EAUTH,
 * FSESL_EREJECTED, FSESL_ECONNTIMEOUT, -ECONNREFUSED, FSESL_ESHUTDOWN,
 * FSESL_EINJECTION, FSESL_EUNLOAD, FSESL_EBADHANDLE, -EAGAIN, -EINVAL.
 * opts may be NULL.
 */
/* "api <cmd>" */
FSESL_API int fsesl_api(fsesl_engine *e, fsesl_server_t srv, const char *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply **reply);
/*
 * Many "api" commands, one wait: cmds[i] goes to srvs[i] for i < n (one
 * server several times: pipelined on its connections; several servers:
 * in parallel), and the caller is woken once, when every one has
 * completed, instead of once per command. statuses[i] gets 0 and
 * replies[i] the reply (the caller frees each one), or the code
 * fsesl_api() would have returned and NULL. Each command has its own
 * deadline, opts->timeout_ms (esl_cmd_timeout), kept by the reactor, so a
 * slow server delays the return but every result arrives. Returns 0 once
 * all have completed (see statuses), or -EINVAL, FSESL_EINCALLBACK,
 * FSESL_ESHUTDOWN or -ENOMEM when nothing was submitted.
 */
FSESL_API int fsesl_api_many(fsesl_engine *e, size_t n, const fsesl_server_t *srvs,
    const char *const *cmds, const fsesl_cmd_opts *opts, int *statuses, fsesl_reply **replies);
/* "bgapi <cmd>" with the engine's own Job-UUID: the immediate reply. */
FSESL_API int fsesl_bgapi(fsesl_engine *e, fsesl_server_t srv, const char *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply **reply);
/* Any command: a line, headers and a body (struct fsesl_cmd, proto). */
FSESL_API int fsesl_command(fsesl_engine *e, fsesl_server_t srv, const struct fsesl_cmd *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply **reply);

/*
 * Async commands. The callback runs exactly once, on the reactor thread,
 * with status 0 and the reply, or a negative code and NULL. The reply is
 * valid only during the callback (fsesl_reply_dup() keeps a copy). The
 * callback must not block; it may submit more async commands. If the call
 * itself fails, the callback never runs.
 */
typedef void (*fsesl_reply_cb)(int status, const fsesl_reply *reply, void *ud);
FSESL_API int fsesl_api_async(fsesl_engine *e, fsesl_server_t srv, const char *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply_cb cb, void *ud);
FSESL_API int fsesl_command_async(fsesl_engine *e, fsesl_server_t srv, const struct fsesl_cmd *cmd,
    const fsesl_cmd_opts *opts, fsesl_reply_cb cb, void *ud);
FSESL_API fsesl_reply *fsesl_reply_dup(const fsesl_reply *r);

/* ------------------------------------------------------------------ */
/* bgapi jobs (the BACKGROUND_JOB result)                               */
/* ------------------------------------------------------------------ */

/*
 * Runs "bgapi <cmd>" with an engine Job-UUID and waits for the job's
 * BACKGROUND_JOB event (the engine subscribes by itself). *result is the
 * job event (free with fsesl_event_free); its body is the output. A server
 * that assigns its own Job-UUID is followed: the job takes the id its
 * reply names. job_timeout_ms as
 * opts->timeout_ms: > 0 milliseconds, < 0 esl_cmd_timeout, 0 -EINVAL. FSESL_EJOBLOST if the
 * connection dropped before the result came; FSESL_EREFUSED if the server
 * refused the bgapi or the engine's BACKGROUND_JOB subscription;
 * FSESL_ENOJOBID if the reply named no Job-UUID (the job may run).
 */
FSESL_API int fsesl_bgapi_job(fsesl_engine *e, fsesl_server_t srv, const char *cmd,
    int job_timeout_ms, const fsesl_cmd_opts *opts, struct fsesl_event **result);
typedef void (*fsesl_job_cb)(int status, const struct fsesl_event *ev, void *ud);
FSESL_API int fsesl_bgapi_job_async(fsesl_engine *e, fsesl_server_t srv, const char *cmd,
    int job_timeout_ms, const fsesl_cmd_opts *opts, fsesl_job_cb cb, void *ud);

/* ------------------------------------------------------------------ */
/* Subscriptions and events                                             */
/* ------------------------------------------------------------------ */

typedef struct fsesl_subscriber fsesl_subscriber;

/*
 * Per server, a subscriber sees DOWN and UP strictly alternate: the first
 * time the server is ready counts as up and is not announced; DOWN comes
 * only after that (or after an UP), UP only after a DOWN. A connection
 * lost before its subscriptions were restored announces nothing. Notices
 * are never dropped: a full queue keeps them, in order, until it has room.
 */
enum fsesl_notice {
	FSESL_NOTICE_EVENT = 0, /* an event */
	FSESL_NOTICE_DROPPED, /* `count` events were dropped (queue full) */
	FSESL_NOTICE_DOWN, /* the server connection was lost */
	FSESL_NOTICE_UP, /* back, subscriptions restored; events in
	                           * the gap may be missing */
	FSESL_NOTICE_REFUSED, /* the server refused `subscription` when it was
	                       * (re)sent: it is no longer held */
};

typedef struct fsesl_delivery {
	enum fsesl_notice kind;
	fsesl_server_t server;
	const struct fsesl_event *event; /* kind EVENT; shared, immutable: valid
	                                  * until fsesl_delivery_release() */
	uint64_t count; /* kind DROPPED */
	void *_priv; /* private: the engine's reference */
	const char *subscription; /* kind REFUSED: the name as subscribed;
	                           * valid until fsesl_delivery_release() */
} fsesl_delivery;

/* Releases what a delivery holds (from fsesl_subscriber_next; a callback's
 * delivery is released by the engine after the callback returns). Any
 * thread. Safe on a zeroed delivery. */
FSESL_API void fsesl_delivery_release(fsesl_delivery *d);

typedef void (*fsesl_event_cb)(const fsesl_delivery *d, void *ud);

typedef struct fsesl_sub_opts {
	unsigned int queue_size; /* 0: event_queue_size */
	enum fsesl_event_format format; /* wire format asked of the server */
	fsesl_event_cb cb; /* non-NULL: run on a dispatcher thread */
	void *ud;
} fsesl_sub_opts;

/*
 * Any thread. tag names the subscriber in logs and stats. In queue mode
 * (opts->cb NULL) the application takes deliveries with
 * fsesl_subscriber_next() or polls fsesl_subscriber_fd(); with a callback,
 * an engine dispatcher thread runs it (it may block briefly). The reactor never waits for a subscriber: a
 * full queue drops the event for that subscriber only and counts it; the
 * subscriber then receives a FSESL_NOTICE_DROPPED delivery.
 * subscribe/unsubscribe block for the server's answer (FSESL_EREFUSED on
 * -ERR), also while the server's connection is being opened or reopened
 * (up to esl_cmd_timeout). While the server is down in backoff they are
 * recorded, applied on reconnect, and return 0; a subscription the server
 * refuses then is dropped and its holders get FSESL_NOTICE_REFUSED.
 */
FSESL_API int fsesl_subscriber_create(
    fsesl_engine *e, const char *tag, const fsesl_sub_opts *opts, fsesl_subscriber **out);
/*
 * Leaves every server and frees s. Any thread, and any callback: the
 * subscriber's own, another subscriber's, or a command's or job's on the
 * reactor. Outside callbacks it returns once s's dispatcher has ended.
 * From inside a callback it never waits: s stops receiving at once, its
 * dispatcher ends after its current callback returns, and the engine joins
 * it and frees s later (by fsesl_engine_stop() at the latest). s must not
 * be used after the call, nor be in use by another thread during it.
 */
FSESL_API void fsesl_subscriber_destroy(fsesl_subscriber *s);
/* "HEARTBEAT", "ALL", "CUSTOM sofia::register". Reference-counted per
 * subscriber and per event: the first reference sends `event`, the last
 * release sends `nixevent`. */
FSESL_API int fsesl_subscribe(fsesl_subscriber *s, fsesl_server_t srv, const char *event);
FSESL_API int fsesl_unsubscribe(fsesl_subscriber *s, fsesl_server_t srv, const char *event);
/*
 * fs://[user]:password@host[:port][?EV1,EV2]: gets the server (*out is a
 * reference the caller puts) and subscribes s to each listed event, all or
 * nothing: on any failure the ones done are undone, the reference is put,
 * *out is 0 and the first error is returned. Blocking, like
 * fsesl_subscribe(); not from a callback.
 */
FSESL_API int fsesl_subscribe_url(fsesl_subscriber *s, const char *url, fsesl_server_t *out);
/*
 * Filters narrow what this subscriber receives from srv; nothing else
 * (other subscribers, the load watch, jobs) is affected, and nothing is
 * sent to the server. FreeSWITCH's rule, applied to each event that
 * matches the subscriber's subscriptions: with no filter everything
 * passes; otherwise an event passes only if some positive filter matches
 * and no negative one does. A filter on a header the event lacks does not
 * match, so filters that are all negative pass nothing. value: compared
 * case-insensitively for equality; leading '+', '-' and spaces choose the
 * sign (the last sign wins, '+' by default); "/regex/flags" (first
 * character '/', flags i and s) is a PCRE2 regular expression, compiled
 * here: -EINVAL if it does not compile or lacks its closing '/'.
 * Reference-counted per (header, value). fsesl_filter_del with value NULL
 * removes every filter of s on that header; -ENOENT if there was none.
 * CR, LF or NUL: FSESL_EINJECTION. No server round trip; not from a
 * callback (FSESL_EINCALLBACK).
 */
FSESL_API int fsesl_filter_add(
    fsesl_subscriber *s, fsesl_server_t srv, const char *header, const char *value);
FSESL_API int fsesl_filter_del(
    fsesl_subscriber *s, fsesl_server_t srv, const char *header, const char *value);
/* Queue mode: waits up to timeout_ms (-1 forever, 0 poll) for the next
 * delivery. 1 delivered, 0 timeout, negative error. */
FSESL_API int fsesl_subscriber_next(fsesl_subscriber *s, fsesl_delivery *d, int timeout_ms);
/* An fd that is readable while deliveries are queued (eventfd). */
FSESL_API int fsesl_subscriber_fd(const fsesl_subscriber *s);
FSESL_API uint64_t fsesl_subscriber_dropped(const fsesl_subscriber *s);

/* ------------------------------------------------------------------ */
/* HEARTBEAT statistics                                                 */
/* ------------------------------------------------------------------ */

typedef struct fsesl_load {
	bool valid; /* false: none yet, or too old (missed beats) */
	uint64_t age_ms; /* since the heartbeat arrived */
	struct fsesl_heartbeat hb;
} fsesl_load;

/* Any thread, lock-free (RCU): a consistent snapshot; never waits. The
 * first call for a server asks the engine to subscribe to HEARTBEAT and
 * returns at once (the snapshot is valid after the first beat that
 * follows the server's +OK). FSESL_EREFUSED: the server refused that
 * subscription (a restricted user); asked again after a reconnect. */
FSESL_API int fsesl_server_load(fsesl_engine *e, fsesl_server_t srv, fsesl_load *out);
/* Index in srvs[] of the server with the most spare capacity
 * (idle_cpu/100 * (max_sessions - session_count)), valid stats only;
 * -ENOENT if none is valid. */
FSESL_API int fsesl_pick_least_loaded(fsesl_engine *e, const fsesl_server_t *srvs, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* FSESL_H */
