/*
 * sim_int.h - the simulator's internals, shared by bench/sim/sim_*.c and
 * fsesl_sim.c (the public API is fsesl_sim.h; nothing here is for users).
 *
 * Design. One thread per simulated server runs a level-triggered epoll loop
 * over the listener, an eventfd (control requests from other threads) and
 * every connection. A connection reads whatever the kernel holds into its
 * input buffer, then runs every complete command in it, in order, appending
 * each reply to its output buffer; at the end of the loop turn each touched
 * connection gets one write(). This keeps the real server's observable rules
 * (docs/protocol.md §9) while being orders of magnitude faster than its
 * one-byte recv():
 *   - one reply per command, strictly in order;
 *   - queued events are appended only when the input buffer holds no byte of
 *     a next command and the connection is not parked, so pipelines starve
 *     events exactly like on the real server, and events a command causes land
 *     after its reply;
 *   - `api msleep` and the DELAY fault park the connection on a deadline
 *     instead of blocking the thread, so other connections keep running.
 * Events are reference-counted and serialised lazily, once per format, so a
 * broadcast to N subscribers costs one serialisation per format in use.
 * Control calls from other threads are executed by the loop and waited for
 * (mutex + condition variable), so a fault set before connect() is in force
 * when the connection arrives; nothing in the loop needs atomics.
 *
 * The FreeSWITCH-like mode (cfg.fs_like, sim_fs.c) replaces the loop's
 * part of each connection by a thread of its own, as the real server has,
 * and hands events to a dispatch thread; commands run the same code, under
 * the server's lock.
 *
 * Files, from the bottom up: sim_util.c, sim_event.c, sim_output.c,
 * sim_dispatch.c, sim_api.c, sim_cmd.c, sim_exec.c, sim_conn.c, sim_fs.c,
 * sim_ctl.c, sim_loop.c, fsesl_sim.c (docs/simulator.md).
 */
#ifndef FSESL_SIM_INT_H
#define FSESL_SIM_INT_H

#include "fsesl_proto.h"
#include "fsesl_sim.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_VERSION_TEXT "FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n"
#define SIM_VERSION_HB "1.10.12-release~64bit"
#define SIM_NOTICE_BYE                                                                             \
	"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"                             \
	"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
#define SIM_NOTICE_LOST                                                                            \
	"Content-Type: text/disconnect-notice\nContent-Length: 39\n\n"                             \
	"killed listener because of lost events\n"
#define SIM_RUDE                                                                                   \
	"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
#define SIM_GREETING "Content-Type: auth/request\n\n"
#define SIM_NOTICE_SHUTDOWN                                                                        \
	"Content-Type: text/disconnect-notice\nContent-Length: 31\n\n"                             \
	"The system is being shut down.\n"

/* The flood fires what is due once per tick, written in one send(). */
#define SIM_FLOOD_TICK_NS (1000000ull)
/* Input read per recv(); big so that a deep pipeline costs few syscalls. */
#define SIM_READ_CHUNK (256u * 1024u)
/* Stop running commands while this much output is unsent (the real server
 * blocks in its write loop instead). */
#define SIM_OUT_HIGH (4u * 1024u * 1024u)
/* Stop reading while this much input is unprocessed. */
#define SIM_IN_HIGH (16u * 1024u * 1024u)
/* FreeSWITCH formats command/reply text into a 512-byte buffer. */
#define SIM_REPLY_MAX 511u
/* Notices are best effort (the real server gives up a blocked write after
 * about 10 minutes); a peer that reads nothing loses the socket after this. */
#define SIM_CLOSE_GRACE_NS (2000000000ull)

/* ------------------------------------------------------------------ */
/* Event type names (docs/protocol.md §7.10; 1.10.12: no CERT_RELOAD) */
/* ------------------------------------------------------------------ */

/* clang-format off */
#define SIM_EVENTS(X) \
	X(CUSTOM) \
	X(CLONE) \
	X(CHANNEL_CREATE) \
	X(CHANNEL_DESTROY) \
	X(CHANNEL_STATE) \
	X(CHANNEL_CALLSTATE) \
	X(CHANNEL_ANSWER) \
	X(CHANNEL_HANGUP) \
	X(CHANNEL_HANGUP_COMPLETE) \
	X(CHANNEL_EXECUTE) \
	X(CHANNEL_EXECUTE_COMPLETE) \
	X(CHANNEL_HOLD) \
	X(CHANNEL_UNHOLD) \
	X(CHANNEL_BRIDGE) \
	X(CHANNEL_UNBRIDGE) \
	X(CHANNEL_PROGRESS) \
	X(CHANNEL_PROGRESS_MEDIA) \
	X(CHANNEL_OUTGOING) \
	X(CHANNEL_PARK) \
	X(CHANNEL_UNPARK) \
	X(CHANNEL_APPLICATION) \
	X(CHANNEL_ORIGINATE) \
	X(CHANNEL_UUID) \
	X(API) \
	X(LOG) \
	X(INBOUND_CHAN) \
	X(OUTBOUND_CHAN) \
	X(STARTUP) \
	X(SHUTDOWN) \
	X(PUBLISH) \
	X(UNPUBLISH) \
	X(TALK) \
	X(NOTALK) \
	X(SESSION_CRASH) \
	X(MODULE_LOAD) \
	X(MODULE_UNLOAD) \
	X(DTMF) \
	X(MESSAGE) \
	X(PRESENCE_IN) \
	X(NOTIFY_IN) \
	X(PRESENCE_OUT) \
	X(PRESENCE_PROBE) \
	X(MESSAGE_WAITING) \
	X(MESSAGE_QUERY) \
	X(ROSTER) \
	X(CODEC) \
	X(BACKGROUND_JOB) \
	X(DETECTED_SPEECH) \
	X(DETECTED_TONE) \
	X(PRIVATE_COMMAND) \
	X(HEARTBEAT) \
	X(TRAP) \
	X(ADD_SCHEDULE) \
	X(DEL_SCHEDULE) \
	X(EXE_SCHEDULE) \
	X(RE_SCHEDULE) \
	X(RELOADXML) \
	X(NOTIFY) \
	X(PHONE_FEATURE) \
	X(PHONE_FEATURE_SUBSCRIBE) \
	X(SEND_MESSAGE) \
	X(RECV_MESSAGE) \
	X(REQUEST_PARAMS) \
	X(CHANNEL_DATA) \
	X(GENERAL) \
	X(COMMAND) \
	X(SESSION_HEARTBEAT) \
	X(CLIENT_DISCONNECTED) \
	X(SERVER_DISCONNECTED) \
	X(SEND_INFO) \
	X(RECV_INFO) \
	X(RECV_RTCP_MESSAGE) \
	X(SEND_RTCP_MESSAGE) \
	X(CALL_SECURE) \
	X(NAT) \
	X(RECORD_START) \
	X(RECORD_STOP) \
	X(PLAYBACK_START) \
	X(PLAYBACK_STOP) \
	X(CALL_UPDATE) \
	X(FAILURE) \
	X(SOCKET_DATA) \
	X(MEDIA_BUG_START) \
	X(MEDIA_BUG_STOP) \
	X(CONFERENCE_DATA_QUERY) \
	X(CONFERENCE_DATA) \
	X(CALL_SETUP_REQ) \
	X(CALL_SETUP_RESULT) \
	X(CALL_DETAIL) \
	X(DEVICE_STATE) \
	X(TEXT) \
	X(SHUTDOWN_REQUESTED) \
	X(ALL)
/* clang-format on */

enum sim_ev_type {
#define SIM_EV_ENUM(n) EV_##n,
	SIM_EVENTS(SIM_EV_ENUM)
#undef SIM_EV_ENUM
	    EV__COUNT
};

/* ------------------------------------------------------------------ */
/* Growable byte buffer with a consumed prefix                          */
/* ------------------------------------------------------------------ */

struct sim_buf {
	char *p;
	size_t off; /* consumed */
	size_t len; /* valid bytes, off included */
	size_t cap;
};

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

struct sim_event {
	unsigned refs;
	int type;
	char *subclass; /* CUSTOM only, NULL if none */
	size_t n, cap;
	struct fsesl_header *h; /* name and value owned: one malloc "name\0value\0" */
	char *body; /* NULL: no body; "" with body_len 0: empty body */
	size_t body_len;
	char *wire[3]; /* envelope + payload per format, built on first use */
	size_t wire_len[3];
	uint64_t seq;
	/* A flood event (sim_flood.c): its template's headers, borrowed, but
	 * for two values (its digits); its wire forms cut from the template's. */
	struct sim_event *tmpl;
	char digits[2][24];
	/* A flood template: the indices of those two headers, and where their
	 * markers sit in each format's wire form (0: not looked for yet). */
	size_t mark_i[2];
	size_t cut[3][2];
};

/* ------------------------------------------------------------------ */
/* Server and connection state                                          */
/* ------------------------------------------------------------------ */

struct sim_fault_state {
	bool on;
	uint64_t a, b;
	uint64_t base; /* bytes / messages already written when the fault was set */
};
/* base: set by the connection's own thread when it takes the fault. */
#define SIM_BASE_LATER UINT64_MAX

struct sim_filter {
	char *name;
	char *value; /* as typed */
	const char *cmp;
	bool neg;
	bool is_re; /* "/pattern/flags" */
	pcre2_code *re; /* NULL for a regex that does not compile: no match */
	pcre2_match_data *md;
};

enum sim_park {
	PARK_NONE = 0,
	PARK_MSLEEP, /* api msleep: reply when the deadline passes */
	PARK_DELAY, /* DELAY fault: run the next command when it passes */
};

struct sim_conn {
	struct fsesl_sim *s;
	uint64_t id;
	int fd;
	struct sim_conn *prev, *next;
	struct sim_conn *dirty_next;
	bool dirty;

	struct sim_buf in, out;
	bool authed;
	bool first_cmd_seen;
	bool closing; /* close once `out` is written */
	bool hard_close; /* close now, drop unsent output */
	bool silent; /* SILENT_ACCEPT: no greeting, nothing read */
	bool reading; /* EPOLLIN registered */
	bool want_out; /* EPOLLOUT registered */
	uint32_t ep_events;

	uint64_t auth_deadline; /* ns, 0 = none */
	enum sim_park park;
	uint64_t park_deadline;
	uint64_t pause_deadline; /* TINY_WRITES pause */
	uint64_t close_deadline; /* a closing connection whose peer does not read */
	/* event_poll_ms emulation: the connection thread is awake (input, end
	 * of a parked command) or sleeps until poll_at. */
	bool woke;
	uint64_t poll_at;
	bool delay_done; /* DELAY already served for the next command */
	uint64_t busy_until; /* DELAY / command cost: virtual end of the last one */
	uint64_t data_since; /* when the unprocessed input began (command arrival) */
	char *msleep_cmd; /* API event data of the parked msleep */
	char *msleep_arg;

	/* userauth restrictions (NULL: all) */
	char *allowed_events;
	char *allowed_api;
	bool allow_log;

	int fmt;
	bool events_on;
	bool ev_all;
	bool types[EV__COUNT];
	char **subs;
	size_t n_subs;
	struct sim_filter *filters;
	size_t n_filters;
	char *myevents_uuid;
	bool myevents;

	int log_level; /* -1: off */
	struct sim_buf logq;
	size_t logq_n;

	struct sim_event **q; /* ring */
	size_t q_cap, q_head, q_len;
	unsigned drop_streak;

	struct sim_fault_state f[FSESL_SIM_FAULT__COUNT];
	/* Atomic: a threaded connection's thread adds to it at every send, so
	 * that a CLOSE_AFTER_BYTES set meanwhile starts from the true count. */
	_Atomic uint64_t bytes_written;
	uint64_t msgs_written;
	uint64_t drop_countdown;
	uint64_t inject_countdown;

	/* FreeSWITCH-like mode (sim_fs.c): the connection's own server thread.
	 * Its input buffer is that thread's alone; everything else above is
	 * touched under the server's lock. */
	bool threaded;
	pthread_t th;
	int wake_fd; /* eventfd: another thread needs it to look (close, fault, stop) */
	atomic_bool poked; /* the same, checked between bytes without a syscall */
	struct sim_conn *zombie_next; /* thread finished, waiting to be joined */
};

struct sim_chan {
	char uuid[37];
	char *name;
	char *dest;
	uint64_t created_us;
};

struct sim_job { /* delayed bgapi (bgapi msleep N) */
	uint64_t deadline;
	char *uuid;
	char *cmd;
	char *arg;
};

enum sim_op_kind {
	OP_LOAD,
	OP_HB_INTERVAL,
	OP_FIRE_HB,
	OP_FIRE_EVENT,
	OP_FAULT,
	OP_CLEAR_FAULTS,
	OP_COUNTERS,
	OP_RECORD,
	OP_RECORDED,
	OP_CONN_IDS,
	OP_STOP,
};

struct sim_op {
	enum sim_op_kind kind;
	bool done;
	int rc;
	struct sim_op *next;
	union {
		struct fsesl_sim_load load;
		unsigned int ms;
		struct {
			const char *name, *subclass, *body;
			const char *const *kv;
			size_t n_kv;
		} fire;
		struct {
			uint64_t conn;
			enum fsesl_sim_fault f;
			uint64_t a, b;
		} fault;
		struct fsesl_sim_counters *counters;
		bool on;
		struct {
			char ***lines;
			size_t n;
		} rec;
		struct {
			uint64_t *ids;
			size_t max, n;
		} ids;
	} u;
};

struct fsesl_sim {
	struct fsesl_sim_config cfg;
	char *listen_addr, *password, *hostname;
	struct fsesl_sim_user *users;
	size_t n_users;

	int ep, lfd, efd;
	uint16_t port;
	pthread_t thr;
	bool running;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sim_op *ops, *ops_tail;

	/* The server's state (everything below, and every connection but a
	 * threaded one's input) is touched under lk: by the loop for a turn,
	 * and in the FreeSWITCH-like mode also by a connection thread for a
	 * command or a flush and by the dispatch thread for a delivery. In the
	 * default mode only the loop takes it, uncontended. */
	pthread_mutex_t lk;
	bool stopping; /* fs: connection threads end */
	pthread_cond_t gone_cv; /* fs: a connection thread ended */
	struct sim_conn *zombies;
	/* fs: the dispatch thread and its queue of events to deliver (NULL:
	 * an API event nobody subscribed to, which costs the thread all the
	 * same). */
	pthread_t disp;
	bool disp_on, disp_stop;
	pthread_cond_t disp_cv;
	struct sim_event **dq;
	size_t dq_cap, dq_head, dq_len;
	uint64_t dq_posted, dq_done; /* for sim_fs_settle() */
	unsigned int dq_waiters;
	pthread_cond_t settled_cv;
	bool deliver_now; /* deliver on this thread (RESULT_BEFORE_REPLY) */

	struct sim_conn *conns; /* list head */
	struct sim_conn *dirty;
	uint64_t next_id;
	size_t n_event_conns; /* conns with events_on (skip event building when 0) */
	size_t n_log_conns;

	char core_uuid[37];
	uint64_t start_us;
	uint64_t seq;
	uint64_t last_ts_us;

	struct fsesl_sim_load load;
	bool load_set;
	unsigned int hb_ms;
	uint64_t hb_deadline;
	uint64_t flood_deadline;
	uint64_t flood_tick; /* when the flood last ran */
	struct sim_event *flood_tmpl;
	uint64_t flood_tmpl_at;

	struct sim_fault_state tmpl[FSESL_SIM_FAULT__COUNT]; /* for new connections */
	bool refused;
	bool silent_accept, rude_reject, no_heartbeat;
	uint64_t flood_rate;

	struct sim_chan *chans;
	size_t n_chans, cap_chans;
	uint64_t sessions_total;

	struct sim_job *jobs;
	size_t n_jobs, cap_jobs;

	bool recording;
	char **rec;
	size_t n_rec, cap_rec;

	struct fsesl_sim_counters c;
	struct fsesl_limits lim;
	struct sim_buf scratch; /* api output, reused: no allocation per command */
};

extern const char *const sim_ev_names[EV__COUNT];
extern const char *const sim_fmt_names[3]; /* plain, json, xml */
extern const char *const sim_log_names[8];

/* sim_util.c: buffers, clocks, ids, strings */
int sim_buf_add(struct sim_buf *b, const void *data, size_t n);
size_t sim_buf_avail(const struct sim_buf *b);
void sim_buf_free(struct sim_buf *b);
__attribute__((format(printf, 2, 3))) int sim_buf_printf(struct sim_buf *b, const char *fmt, ...);
int sim_buf_reserve(struct sim_buf *b, size_t extra);
bool sim_list_has(const char *list, const char *name);
uint64_t sim_now_ns(void);
bool sim_prefix(const char *s, const char *p);
char *sim_strndup(const char *s, size_t n);
void sim_uuid(char out[37]);
uint64_t sim_wall_us(void);

/* sim_event.c: one event and its wire form */
int sim_ev_lookup(const char *name);
int sim_event_add(struct sim_event *ev, const char *name, const char *val);
int sim_event_add_n(
    struct sim_event *ev, const char *name, size_t nlen, const char *val, size_t vlen);
__attribute__((format(printf, 3, 4))) int sim_event_addf(
    struct sim_event *ev, const char *name, const char *fmt, ...);
struct sim_event *sim_event_alloc(int type);
const char *sim_event_get(const struct sim_event *ev, const char *name);
int sim_event_set_body(struct sim_event *ev, const char *body, size_t len);
struct sim_event *sim_event_std(struct fsesl_sim *s, int type, const char *subclass,
    const char *file, const char *func, int line);
void sim_event_unref(struct sim_event *ev);
int sim_event_wire(struct sim_event *ev, int fmt, const char **out, size_t *out_len);
void sim_std_headers(
    struct fsesl_sim *s, struct sim_event *ev, const char *file, const char *func, int line);

/* sim_output.c: what a connection writes */
void sim_api_response(struct sim_conn *c, const char *body, size_t len);
void sim_closing(struct sim_conn *c);
void sim_conn_drop_queues(struct sim_conn *c);
void sim_conn_write_events(struct sim_conn *c);
void sim_emit(struct sim_conn *c, const char *data, size_t len);
void sim_emit_reply(struct sim_conn *c, const char *data, size_t len);
void sim_goodbye(struct sim_conn *c, const char *notice);
void sim_mark_dirty(struct sim_conn *c);
void sim_reply(struct sim_conn *c, const char *text);
__attribute__((format(printf, 2, 3))) void sim_replyf(struct sim_conn *c, const char *fmt, ...);

/* sim_dispatch.c: who receives an event; the events the core fires */
bool sim_anyone_wants(struct fsesl_sim *s, int type);
void sim_deliver(struct fsesl_sim *s, struct sim_event *ev);
void sim_dispatch(struct fsesl_sim *s, struct sim_event *ev);
void sim_filter_add(struct sim_conn *c, const char *name, const char *value);
void sim_filter_free(struct sim_filter *f);
void sim_fire_api_event(struct fsesl_sim *s, const char *cmd, const char *arg);
void sim_heartbeat(struct fsesl_sim *s);
void sim_log(
    struct fsesl_sim *s, int level, const char *file, const char *func, int line, const char *msg);
unsigned int sim_session_count(struct fsesl_sim *s);
void sim_uptime_text(struct fsesl_sim *s, char *buf, size_t cap, uint64_t *ms_out);

/* sim_api.c: api, bgapi, channels */
void sim_cmd_api(struct sim_conn *c, char *line);
void sim_park_done(struct sim_conn *c);
void sim_cmd_bgapi(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt);
void sim_job_finish(struct fsesl_sim *s, const char *uuid, const char *cmd, const char *arg,
    const char *body, size_t body_len);

/* sim_cmd.c: event, filter, log, sendevent, sendmsg, myevents */
void sim_cmd_event(struct sim_conn *c, char *line);
void sim_cmd_filter(struct sim_conn *c, char *line);
void sim_cmd_log(struct sim_conn *c, char *line);
void sim_cmd_myevents(struct sim_conn *c, char *line);
void sim_cmd_nixevent(struct sim_conn *c, char *line);
void sim_cmd_noevents(struct sim_conn *c);
void sim_cmd_nolog(struct sim_conn *c);
void sim_cmd_sendevent(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt);
void sim_cmd_sendmsg(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt);
void sim_subs_clear(struct sim_conn *c);

/* sim_exec.c: one command packet */
void sim_exec(struct sim_conn *c, const struct fsesl_client_packet *pkt);

/* sim_conn.c: a connection on the loop thread; the listener */
void sim_accept(struct fsesl_sim *s);
void sim_conn_free(struct sim_conn *c);
void sim_conn_kill(struct sim_conn *c);
void sim_conn_process(struct sim_conn *c);
void sim_conn_read(struct sim_conn *c);
bool sim_conn_write(struct sim_conn *c);
void sim_ep_update(struct sim_conn *c);
int sim_listen(struct fsesl_sim *s);
void sim_unlisten(struct fsesl_sim *s);

/* sim_ctl.c: control operations and faults */
int sim_call(fsesl_sim *s, struct sim_op *op);
void sim_drain_ops(struct fsesl_sim *s);

/* sim_flood.c: the EVENT_FLOOD fault's events */
void sim_flood(struct fsesl_sim *s, uint64_t now);
uint64_t sim_flood_due(struct fsesl_sim *s);
void sim_flood_stop(struct fsesl_sim *s);
int sim_flood_wire(struct sim_event *ev, int fmt);

/* sim_fs.c: the FreeSWITCH-like mode's threads */
void sim_conn_poke(struct sim_conn *c);
int sim_fs_conn_start(struct sim_conn *c);
void sim_fs_reap(struct fsesl_sim *s);
void sim_fs_post(struct fsesl_sim *s, struct sim_event *ev);
int sim_fs_start(struct fsesl_sim *s);
void sim_fs_stop(struct fsesl_sim *s);
void sim_fs_settle(struct fsesl_sim *s);

/* sim_loop.c: the server thread */
void *sim_thread(void *arg);

#endif /* FSESL_SIM_INT_H */
