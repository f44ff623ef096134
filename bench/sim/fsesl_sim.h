/*
 * fsesl_sim.h - an in-process FreeSWITCH 1.10.12 Event Socket simulator.
 *
 * Each simulated server listens on 127.0.0.1 (port 0: the kernel picks)
 * and runs its own single-threaded epoll loop on its own thread. Several
 * may run at once. Behaviour follows docs/protocol.md byte
 * for byte where it gives bytes; see docs/simulator.md for what is and is
 * not covered.
 *
 * Thread-safety: every function may be called from any thread while the
 * server runs (settings are applied by the server's loop).
 */
#ifndef FSESL_SIM_H
#define FSESL_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fsesl_sim fsesl_sim;

struct fsesl_sim_user {
	const char *user; /* "1000@default" */
	const char *password;
	const char *allowed_events; /* NULL: "all" */
	const char *allowed_api; /* NULL: "all" */
	bool allow_log;
};

struct fsesl_sim_config {
	const char *listen_addr; /* "127.0.0.1" */
	uint16_t port; /* 0: kernel picks */
	const char *password; /* "ClueCon" */
	const struct fsesl_sim_user *users;
	size_t n_users;
	unsigned int heartbeat_interval_ms; /* 0: none; FreeSWITCH default 20000 */
	unsigned int auth_timeout_ms; /* 25000 */
	unsigned int event_queue_max; /* 100000 */
	unsigned int event_drop_kill; /* 500 */
	const char *hostname; /* "sim" */
	unsigned int max_sessions; /* 1000 */
	/* Added after the first draft (appended: source-compatible). */
	const char *ipv4; /* FreeSWITCH-IPv4; NULL: "127.0.0.1" */
	const char *ipv6; /* FreeSWITCH-IPv6; NULL: "::1", "": header left out */
	/* 0 (default): events reach an idle connection at once. 20: like the
	 * real server, whose idle connection thread only looks at its queue
	 * when its 20 ms poll() times out or a byte (a lone LF: a "kick")
	 * arrives (docs/protocol.md §9.1, §9.4). */
	unsigned int event_poll_ms;
	/* Serial cost of each api / bgapi command on its connection, in µs
	 * (the connection waits, other connections run). 0: none. The real
	 * 1.10.12 server: about 50 (20,000 api/s per connection) and 1250
	 * (800 bgapi/s per connection); docs/real-server-measurements.md. */
	unsigned int api_cost_us;
	unsigned int bgapi_cost_us;
	/* Appended: the FreeSWITCH-like mode (docs/simulator.md). false (the
	 * default): one epoll thread serves every connection as fast as it
	 * can. true: like the real server (docs/protocol.md §9.1), each
	 * connection has its own server thread, which reads commands one byte
	 * per recv() with a sched_yield() after each, runs api inline (the
	 * connection does nothing else meanwhile), answers strictly in order,
	 * and writes queued events only when its poll (event_poll_ms; 20 when
	 * 0) times out or a byte arrives; and every event, including the API
	 * event each api fires whether anyone subscribed or not, goes through
	 * one shared dispatch thread. In this mode api_cost_us is CPU the
	 * connection's thread spends on each api (an api runs there), and
	 * bgapi_cost_us the time each bgapi holds the thread without CPU (the
	 * real server waits for its job thread to start). */
	bool fs_like;
	unsigned int fs_byte_cost_ns; /* CPU per command byte read, on top of the recv() */
	unsigned int fs_dispatch_cost_us; /* dispatch thread CPU per event */
};

void fsesl_sim_config_init(struct fsesl_sim_config *cfg);
/* Switches cfg to the FreeSWITCH-like mode with the costs calibrated
 * against the measured 1.10.12 server (docs/simulator.md): fs_like,
 * event_poll_ms 20, and the api, bgapi, per-byte and dispatch costs. */
void fsesl_sim_config_fs_like(struct fsesl_sim_config *cfg);

/* Starts a server; *port_out (may be NULL) gets the bound port. */
int fsesl_sim_start(const struct fsesl_sim_config *cfg, fsesl_sim **out, uint16_t *port_out);
/* Closes every connection and the listener, joins the thread, frees. */
void fsesl_sim_stop(fsesl_sim *s);
uint16_t fsesl_sim_port(const fsesl_sim *s);

/* HEARTBEAT field values, applied to every following heartbeat. */
struct fsesl_sim_load {
	double idle_cpu;
	unsigned int session_count;
	unsigned int max_sessions;
};
void fsesl_sim_set_load(fsesl_sim *s, const struct fsesl_sim_load *load);
void fsesl_sim_set_heartbeat_interval(fsesl_sim *s, unsigned int ms);
/* Emits one HEARTBEAT (+ RE_SCHEDULE) now. */
void fsesl_sim_fire_heartbeat(fsesl_sim *s);
/* Fires an event to every subscribed connection (as the core would);
 * headers as "Name", "value" pairs (raw), body may be NULL. Both calls
 * return once the event is in every subscriber's queue (in the
 * FreeSWITCH-like mode: once the dispatch thread has handed it over);
 * when it is written is the connection's business (event_poll_ms). */
int fsesl_sim_fire_event(fsesl_sim *s, const char *name, const char *subclass,
    const char *const *kv, size_t n_kv, const char *body);

/* ---- Faults (all counted; conn_id 0 = every connection, now and new) -- */
enum fsesl_sim_fault {
	FSESL_SIM_FAULT_NONE = 0,
	FSESL_SIM_FAULT_DELAY, /* a: ms before each command runs */
	FSESL_SIM_FAULT_STALL, /* stop reading and writing */
	FSESL_SIM_FAULT_CLOSE_AFTER_BYTES, /* a: close after writing a bytes */
	FSESL_SIM_FAULT_CLOSE_AFTER_MSGS, /* a: close after a messages */
	FSESL_SIM_FAULT_CLOSE_MID_FRAME, /* next reply: write half, close */
	FSESL_SIM_FAULT_GARBAGE, /* a: write a garbage bytes instead of next reply */
	FSESL_SIM_FAULT_TINY_WRITES, /* a: chunk bytes, b: pause us between */
	FSESL_SIM_FAULT_REFUSE, /* close the listener (port refuses) */
	FSESL_SIM_FAULT_SILENT_ACCEPT, /* accept, never greet */
	FSESL_SIM_FAULT_RUDE_REJECT, /* rude rejection + notice + close */
	FSESL_SIM_FAULT_NO_HEARTBEAT, /* stop sending heartbeats */
	FSESL_SIM_FAULT_EVENT_FLOOD, /* a: events per second (CUSTOM sim::flood) */
	FSESL_SIM_FAULT_DROP_REPLY, /* a: drop the reply to the a-th next command
	                               * (1 = next); the stream stays aligned only
	                               * for the client that expects it */
	FSESL_SIM_FAULT_KILL_ALL, /* close every connection now (restart) */
	FSESL_SIM_FAULT_INJECT_REPLY, /* a: enum fsesl_sim_inject; one reply nobody
	                               * asked for, written just before the reply
	                               * to the b-th next command (0 or 1 = next) */
	/* bgapi ignores the client's Job-UUID header and assigns its own
	 * random one, as FreeSWITCH does without the header (older servers,
	 * proxies, other ESL servers): the reply and the BACKGROUND_JOB carry
	 * it. a = 1: and the reply carries no Job-UUID at all (Reply-Text
	 * "+OK"). */
	FSESL_SIM_FAULT_OWN_JOB_UUID,
	/* A bgapi that completes at once has its BACKGROUND_JOB written on
	 * this connection (if it is subscribed) before its reply: on one
	 * connection, the order two connections can produce. */
	FSESL_SIM_FAULT_RESULT_BEFORE_REPLY,
	FSESL_SIM_FAULT__COUNT
};
/* What FSESL_SIM_FAULT_INJECT_REPLY writes (its argument a). */
enum fsesl_sim_inject {
	FSESL_SIM_INJECT_COMMAND_REPLY = 0, /* command/reply, Reply-Text: +OK */
	FSESL_SIM_INJECT_API_RESPONSE, /* api/response, body "+OK\n" */
};

/* Connection ids are 1, 2, 3... in accept order. Copies up to max ids of the
 * open connections (newest first) into ids; returns how many are open. */
size_t fsesl_sim_conn_ids(fsesl_sim *s, uint64_t *ids, size_t max);

/*
 * Faults act on the server's thread before this returns. Per-connection
 * faults (DELAY .. DROP_REPLY, INJECT_REPLY, OWN_JOB_UUID,
 * RESULT_BEFORE_REPLY) with conn_id 0 apply to every open connection and
 * to every new one until fsesl_sim_clear_faults(), except the one-shot
 * faults (CLOSE_MID_FRAME, GARBAGE, DROP_REPLY, INJECT_REPLY): those act
 * once on each connection open at the time, so that a client can
 * reconnect after them. REFUSE, SILENT_ACCEPT, RUDE_REJECT, NO_HEARTBEAT,
 * EVENT_FLOOD and KILL_ALL are server-wide (conn_id ignored). Returns 0,
 * -EINVAL, or -ENOENT for an
 * unknown conn_id. See docs/simulator.md for what each counter counts.
 */
int fsesl_sim_fault(fsesl_sim *s, uint64_t conn_id, enum fsesl_sim_fault f, uint64_t a, uint64_t b);
void fsesl_sim_clear_faults(fsesl_sim *s);

struct fsesl_sim_counters {
	uint64_t accepted;
	uint64_t active_conns;
	uint64_t auth_ok;
	uint64_t auth_failed;
	uint64_t commands; /* every command packet read */
	uint64_t api;
	uint64_t bgapi;
	uint64_t events_sent;
	uint64_t events_dropped; /* queue full */
	uint64_t lost_event_kills;
	uint64_t kicks; /* lone LFs between commands */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t faults[FSESL_SIM_FAULT__COUNT]; /* times each fault acted */
	/* Appended: commands that sprang the unload/reload trap (§10.2). */
	uint64_t unload_traps;
	/* fs-like mode: times a connection thread, its queued events written,
	 * went to sleep in its poll. An event fired after this moved waits
	 * for the poll to end or a kick (a test's synchronisation point). */
	uint64_t fs_polls;
};
void fsesl_sim_counters(fsesl_sim *s, struct fsesl_sim_counters *out);

/* The command lines received by the server (all connections, in order of
 * arrival), for tests asserting the exact `event` / `nixevent` / `filter`
 * commands. Recording is on while enabled. fsesl_sim_recorded() hands over
 * the lines recorded so far (and forgets them): *lines_out is a malloc'ed
 * array of malloc'ed NUL-terminated strings (free each, then the array;
 * NULL when there are none); returns the count. */
void fsesl_sim_record_commands(fsesl_sim *s, bool on);
size_t fsesl_sim_recorded(fsesl_sim *s, char ***lines_out);

#endif /* FSESL_SIM_H */
