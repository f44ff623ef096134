/*
 * fault_harness.h - shared scaffolding for the engine fault and bad-input
 * suites: a simulator plus an engine with short timeouts, 16 workers that
 * issue `api echo <unique token>` through a fault, and the bookkeeping that
 * proves every request completed exactly once with its own reply.
 *
 * Not part of libfsesl; only tests/engine_faults/ uses it.
 */
#ifndef FAULT_HARNESS_H
#define FAULT_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define FH_WORKERS 16
#define FH_ASYNC_SLOTS 4096
#define FH_ASYNC_WINDOW 32

/* Outcome buckets: index 0 is success, the rest one per error code. */
enum fh_outcome {
	FH_OK = 0,
	FH_MISMATCH, /* a reply that is not this request's: must stay 0 */
	FH_ETIMEDOUT,
	FH_EDISCONNECTED,
	FH_ENOTCONNECTED,
	FH_EAUTH,
	FH_EREJECTED,
	FH_ECONNTIMEOUT,
	FH_ECONNREFUSED,
	FH_EPROTO,
	FH_ESHUTDOWN,
	FH_EAGAIN,
	FH_ECONNRESET, /* -ECONNRESET / -EPIPE: lost while connecting */
	FH_OTHER, /* any other code: never expected */
	FH__COUNT
};

const char *fh_outcome_name(int o);
int fh_outcome_of(int rc);

/* Entries of /proc/self/fd and /proc/self/task (leak checks). */
int fh_count_fds(void);
int fh_count_threads(void);
/* Logs each thread's name (after a thread-count mismatch). */
void fh_log_threads(void);

struct fh_env {
	int fds_before;
	int threads_before;
	fsesl_sim *sim;
	uint16_t port;
	fsesl_engine *e;
	fsesl_server_t srv;
	unsigned int cmd_timeout_ms;
};

/* Sim options for fh_start(); zero-initialised means defaults. */
struct fh_opts {
	unsigned int sim_heartbeat_ms; /* 0: none */
	unsigned int cmd_timeout_ms; /* 0: 300 */
	unsigned int connect_timeout_ms; /* 0: 300 */
	unsigned int heartbeat_miss_limit; /* 0: engine default */
	unsigned int max_abandoned; /* 0: 16 */
	unsigned int connections; /* 0: 1 (connections_per_server) */
	unsigned int max_in_flight; /* 0: engine default (64) */
	bool poll_wait; /* wait_mode=poll (OpenSIPS style) */
	bool no_server; /* do not fsesl_server_get() */
	const char *password; /* NULL: ClueCon */
};

/* Counts fds and threads, starts the simulator and an engine, gets the
 * server handle. Asserts (Criterion) on failure. */
void fh_start(struct fh_env *env, const struct fh_opts *o);
/* Stops engine then simulator; asserts no fd and no thread remains. */
void fh_finish(struct fh_env *env);
/* Writes fs://:<password>@127.0.0.1:<port> into buf. */
void fh_url(const struct fh_env *env, const char *password, char *buf, size_t len);

/*
 * Issues `api echo <token>` and classifies the result. *rc_out (may be
 * NULL) gets the raw return code.
 */
int fh_echo_once(struct fh_env *env, const char *token, int timeout_ms, int *rc_out);
/* Repeats echo until one succeeds with its own reply; false after
 * max_attempts or deadline_ms. Each attempt waits on the engine (its own
 * command timeout); an error returned at once is followed by a 1 ms pause
 * (fh_pace) so that a fast-failing engine is not hammered. */
bool fh_until_ok(struct fh_env *env, unsigned int max_attempts, unsigned int deadline_ms);
/* Pacing after an error (what a sane caller does while a server is down).
 * Never used to wait for a state: correctness never depends on it. */
void fh_pace(int outcome);

/* ---- the run through a fault ---- */

enum fh_phase {
	FH_PHASE_PRE = 0,
	FH_PHASE_FAULT,
	FH_PHASE_RECOVER, /* fault cleared: each worker runs until one success */
	FH_PHASE_DONE,
};

struct fh_async_slot {
	char token[48];
	_Atomic int calls; /* must end at exactly 1 */
	_Atomic int outcome;
};

struct fh_run {
	struct fh_env *env;
	_Atomic int phase;
	_Atomic uint64_t submitted;
	_Atomic uint64_t outcomes[FH__COUNT];
	_Atomic uint64_t recovered_workers;
	_Atomic uint64_t unrecovered_workers;
	unsigned int recover_deadline_ms;
	/* async requests: exactly-once callbacks */
	bool with_async;
	struct fh_async_slot *slots;
	_Atomic uint64_t async_submitted;
	_Atomic uint64_t async_submit_failed;
	_Atomic uint64_t async_double;
	_Atomic uint64_t async_outcomes[FH__COUNT];
	/* subscriber */
	bool with_sub;
	bool need_events;
	const char *sub_event;
	fsesl_subscriber *sub;
	_Atomic uint64_t ev_events;
	_Atomic uint64_t ev_dropped;
	_Atomic uint64_t ev_down;
	_Atomic uint64_t ev_up;
	_Atomic int sub_rc; /* first subscribe error, 0 if none */
};

/* One fault case. */
struct fh_case {
	const char *name;
	enum fsesl_sim_fault fault;
	uint64_t a, b;
	bool kill_after_inject; /* force reconnects into the fault */
	unsigned int fault_cmds; /* commands the controller runs through the fault */
	unsigned int allowed; /* bitmask of 1u << FH_* outcomes allowed */
	bool need_error; /* the fault must produce at least one error */
	bool with_sub;
	bool sub_callback; /* callback mode (dispatcher thread), not a queue */
	const char *sub_event;
	bool with_async;
	bool need_reconnect; /* the engine's stats must show a reconnect */
	int must_see; /* FH_* outcome that must occur (0: none) */
	bool need_events; /* the subscriber must receive events */
	bool need_down_up; /* the subscriber must hear DOWN, then UP */
	/* Instead of fsesl_sim_fault(fault): custom inject / clear steps
	 * (for faults that are not the simulator's, e.g. a wrong password). */
	void (*inject)(struct fh_env *env);
	void (*clear)(struct fh_env *env);
};

#define FH_BIT(o) (1u << (o))

/*
 * Runs a case: starts 16 workers (plus an async submitter and a
 * subscriber if asked), lets them work, injects the fault, drives
 * fault_cmds commands through it, clears it, waits until every worker has
 * seen a success again, stops the engine and the simulator (fh_finish).
 * Asserts exactly-once, zero mismatches, allowed outcomes only, recovery,
 * and no fd, thread or password leak. env must come from fh_start().
 */
void fh_run_case(struct fh_env *env, const struct fh_case *c);

#endif /* FAULT_HARNESS_H */
