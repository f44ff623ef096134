/*
 * fsesl_sim.c - a FreeSWITCH 1.10.12 mod_event_socket stand-in.
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
 */
#include "fsesl_sim.h"
#include "fsesl_proto.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

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

/* Input read per recv(); big so that a deep pipeline costs few syscalls. */
#define SIM_READ_CHUNK (256u * 1024u)
/* Stop running commands while this much output is unsent (the real server
 * blocks in its write loop instead). */
#define SIM_OUT_HIGH (4u * 1024u * 1024u)
/* Stop reading while this much input is unprocessed. */
#define SIM_IN_HIGH (16u * 1024u * 1024u)
/* FreeSWITCH formats command/reply text into a 512-byte buffer. */
#define SIM_REPLY_MAX 511u

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

static const char *const sim_ev_names[EV__COUNT] = {
#define SIM_EV_NAME(n) #n,
    SIM_EVENTS(SIM_EV_NAME)
#undef SIM_EV_NAME
};

/* switch_name_event(): exact name, or any 13-character prefix before it. */
static int
sim_ev_lookup(const char *name)
{
	size_t len = strlen(name);

	for (int i = 0; i < EV__COUNT; i++) {
		if (!strcasecmp(name, sim_ev_names[i]))
			return i;
		if (len > 13 && !strcasecmp(name + 13, sim_ev_names[i]))
			return i;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Growable byte buffer with a consumed prefix                          */
/* ------------------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t off; /* consumed */
	size_t len; /* valid bytes, off included */
	size_t cap;
};

static size_t
sbuf_avail(const struct sbuf *b)
{
	return b->len - b->off;
}

static void
sbuf_compact(struct sbuf *b)
{
	if (b->off == 0)
		return;
	if (b->off == b->len) {
		b->off = b->len = 0;
		return;
	}
	memmove(b->p, b->p + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

static int
sbuf_reserve(struct sbuf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return 0;
	sbuf_compact(b);
	if (b->len + extra <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + extra)
		ncap *= 2;
	char *np = realloc(b->p, ncap);
	if (!np)
		return -1;
	b->p = np;
	b->cap = ncap;
	return 0;
}

static int
sbuf_add(struct sbuf *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	if (sbuf_reserve(b, n))
		return -1;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

static void
sbuf_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Appends printf output (no NUL kept). */
__attribute__((format(printf, 2, 3))) static int
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(tmp))
		return sbuf_add(b, tmp, (size_t)n);
	if (sbuf_reserve(b, (size_t)n + 1))
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

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
};

static struct sim_event *
sim_event_alloc(int type)
{
	struct sim_event *ev = calloc(1, sizeof(*ev));

	if (ev) {
		ev->refs = 1;
		ev->type = type;
	}
	return ev;
}

static int
sim_event_add_n(struct sim_event *ev, const char *name, size_t nlen, const char *val, size_t vlen)
{
	if (ev->n == ev->cap) {
		size_t ncap = ev->cap ? ev->cap * 2 : 32;
		struct fsesl_header *nh = realloc(ev->h, ncap * sizeof(*nh));
		if (!nh)
			return -1;
		ev->h = nh;
		ev->cap = ncap;
	}
	char *m = malloc(nlen + vlen + 2);
	if (!m)
		return -1;
	memcpy(m, name, nlen);
	m[nlen] = '\0';
	memcpy(m + nlen + 1, val, vlen);
	m[nlen + 1 + vlen] = '\0';
	ev->h[ev->n].name = m;
	ev->h[ev->n].name_len = nlen;
	ev->h[ev->n].value = m + nlen + 1;
	ev->h[ev->n].value_len = vlen;
	ev->n++;
	return 0;
}

static int
sim_event_add(struct sim_event *ev, const char *name, const char *val)
{
	return sim_event_add_n(ev, name, strlen(name), val, strlen(val));
}

__attribute__((format(printf, 3, 4))) static int
sim_event_addf(struct sim_event *ev, const char *name, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return sim_event_add(ev, name, tmp);
}

static int
sim_event_set_body(struct sim_event *ev, const char *body, size_t len)
{
	free(ev->body);
	ev->body = malloc(len + 1);
	if (!ev->body)
		return -1;
	memcpy(ev->body, body, len);
	ev->body[len] = '\0';
	ev->body_len = len;
	return 0;
}

static const char *
sim_event_get(const struct sim_event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n; i++)
		if (!strcasecmp(ev->h[i].name, name))
			return ev->h[i].value;
	return NULL;
}

static void
sim_event_unref(struct sim_event *ev)
{
	if (!ev || --ev->refs)
		return;
	for (size_t i = 0; i < ev->n; i++)
		free((char *)ev->h[i].name);
	free(ev->h);
	free(ev->body);
	free(ev->subclass);
	for (int f = 0; f < 3; f++)
		free(ev->wire[f]);
	free(ev);
}

static const char *const sim_fmt_names[3] = {"plain", "json", "xml"};

/* The text/event-* message for one format, cached on the event. */
static int
sim_event_wire(struct sim_event *ev, int fmt, const char **out, size_t *out_len)
{
	if (!ev->wire[fmt]) {
		size_t bl = ev->body ? ev->body_len : 0;
		size_t cap =
		    fsesl_event_serialize_size((enum fsesl_event_format)fmt, ev->h, ev->n, bl) +
		    128;
		char *w = malloc(cap);
		if (!w)
			return -1;
		/* Leave room for the envelope; it is prepended once the length is known. */
		ssize_t n = fsesl_event_serialize(
		    w + 96, cap - 96, (enum fsesl_event_format)fmt, ev->h, ev->n, ev->body, bl);
		if (n < 0) {
			free(w);
			return -1;
		}
		char env[96];
		int el = snprintf(env, sizeof(env),
		    "Content-Length: %zd\nContent-Type: text/event-%s\n\n", n, sim_fmt_names[fmt]);
		memmove(w + el, w + 96, (size_t)n);
		memcpy(w, env, (size_t)el);
		ev->wire[fmt] = w;
		ev->wire_len[fmt] = (size_t)el + (size_t)n;
	}
	*out = ev->wire[fmt];
	*out_len = ev->wire_len[fmt];
	return 0;
}

/* ------------------------------------------------------------------ */
/* Server and connection state                                          */
/* ------------------------------------------------------------------ */

struct sim_fault_state {
	bool on;
	uint64_t a, b;
	uint64_t base; /* bytes / messages already written when the fault was set */
};

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

	struct sbuf in, out;
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
	struct sbuf logq;
	size_t logq_n;

	struct sim_event **q; /* ring */
	size_t q_cap, q_head, q_len;
	unsigned drop_streak;

	struct sim_fault_state f[FSESL_SIM_FAULT__COUNT];
	uint64_t bytes_written;
	uint64_t msgs_written;
	uint64_t drop_countdown;
	uint64_t inject_countdown;
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
	uint64_t flood_acc_ns;

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
	struct sbuf scratch; /* api output, reused: no allocation per command */
};

static uint64_t
sim_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
sim_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
sim_uuid(char out[37])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

static char *
sim_strndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static bool
sim_prefix(const char *s, const char *p)
{
	return !strncasecmp(s, p, strlen(p));
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void
sim_mark_dirty(struct sim_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = c->s->dirty;
	c->s->dirty = c;
}

/* Notices are best effort (the real server gives up a blocked write after
 * about 10 minutes); a peer that reads nothing loses the socket after this. */
#define SIM_CLOSE_GRACE_NS (2000000000ull)

static void
sim_closing(struct sim_conn *c)
{
	c->closing = true;
	if (!c->close_deadline)
		c->close_deadline = sim_now_ns() + SIM_CLOSE_GRACE_NS;
	sim_mark_dirty(c);
}

/* Every message goes through here: CLOSE_AFTER_MSGS counts them. */
static void
sim_emit(struct sim_conn *c, const char *data, size_t len)
{
	if (c->hard_close || (c->closing && c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS].on))
		return;
	if (sbuf_add(&c->out, data, len)) {
		c->hard_close = true;
		return;
	}
	c->msgs_written++;
	struct sim_fault_state *fm = &c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS];
	if (fm->on && c->msgs_written - fm->base >= fm->a) {
		c->s->c.faults[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS]++;
		sim_closing(c);
	}
	sim_mark_dirty(c);
}

/* INJECT_REPLY: one well-formed reply that answers no command, as a
 * confused proxy or server would write it, ahead of a real one. */
static void
sim_inject_reply(struct sim_conn *c)
{
	static const char cmd[] = "Content-Type: command/reply\nReply-Text: +OK\n\n";
	static const char api[] = "Content-Type: api/response\nContent-Length: 4\n\n+OK\n";
	struct sim_fault_state *fi = &c->f[FSESL_SIM_FAULT_INJECT_REPLY];

	if (c->inject_countdown == 0)
		c->inject_countdown = fi->b ? fi->b : 1;
	if (--c->inject_countdown != 0)
		return;
	fi->on = false;
	c->s->c.faults[FSESL_SIM_FAULT_INJECT_REPLY]++;
	if (fi->a == FSESL_SIM_INJECT_API_RESPONSE)
		sim_emit(c, api, sizeof(api) - 1);
	else
		sim_emit(c, cmd, sizeof(cmd) - 1);
}

/* Replies (command/reply, api/response): the reply-level faults act here. */
static void
sim_emit_reply(struct sim_conn *c, const char *data, size_t len)
{
	struct fsesl_sim_counters *k = &c->s->c;

	if (c->f[FSESL_SIM_FAULT_INJECT_REPLY].on)
		sim_inject_reply(c);

	if (c->f[FSESL_SIM_FAULT_DROP_REPLY].on) {
		if (c->drop_countdown == 0)
			c->drop_countdown = c->f[FSESL_SIM_FAULT_DROP_REPLY].a
			                        ? c->f[FSESL_SIM_FAULT_DROP_REPLY].a
			                        : 1;
		if (--c->drop_countdown == 0) {
			c->f[FSESL_SIM_FAULT_DROP_REPLY].on = false;
			k->faults[FSESL_SIM_FAULT_DROP_REPLY]++;
			return;
		}
	}
	if (c->f[FSESL_SIM_FAULT_GARBAGE].on) {
		c->f[FSESL_SIM_FAULT_GARBAGE].on = false;
		k->faults[FSESL_SIM_FAULT_GARBAGE]++;
		uint64_t n = c->f[FSESL_SIM_FAULT_GARBAGE].a ? c->f[FSESL_SIM_FAULT_GARBAGE].a : 64;
		char junk[256];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (char)("\x01garbage:\xff\x7f%zz\n"[i % 16]);
		while (n > 0) {
			size_t chunk = n < sizeof(junk) ? (size_t)n : sizeof(junk);
			sbuf_add(&c->out, junk, chunk);
			n -= chunk;
		}
		sim_mark_dirty(c);
		return;
	}
	if (c->f[FSESL_SIM_FAULT_CLOSE_MID_FRAME].on) {
		c->f[FSESL_SIM_FAULT_CLOSE_MID_FRAME].on = false;
		k->faults[FSESL_SIM_FAULT_CLOSE_MID_FRAME]++;
		sbuf_add(&c->out, data, len / 2 ? len / 2 : 1);
		sim_closing(c);
		c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS].on = true; /* nothing more goes out */
		c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS].a = 0;
		sim_mark_dirty(c);
		return;
	}
	sim_emit(c, data, len);
}

static void
sim_reply(struct sim_conn *c, const char *text)
{
	char buf[SIM_REPLY_MAX + 64];
	size_t tl = strlen(text);

	if (tl > SIM_REPLY_MAX)
		tl = SIM_REPLY_MAX;
	memcpy(buf, "Content-Type: command/reply\nReply-Text: ", 40);
	memcpy(buf + 40, text, tl);
	memcpy(buf + 40 + tl, "\n\n", 2);
	sim_emit_reply(c, buf, 40 + tl + 2);
}

__attribute__((format(printf, 2, 3))) static void
sim_replyf(struct sim_conn *c, const char *fmt, ...)
{
	char text[SIM_REPLY_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sim_reply(c, text);
}

static void
sim_api_response(struct sim_conn *c, const char *body, size_t len)
{
	/* Hand-made header: snprintf was the server's top cost in the
	 * pipelined `api echo` benchmark. */
	static const char pre[] = "Content-Type: api/response\nContent-Length: ";
	char hdr[80], digits[24];
	int nd = 0, hl = (int)sizeof(pre) - 1;
	size_t v = len;

	memcpy(hdr, pre, sizeof(pre) - 1);
	do {
		digits[nd++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (nd)
		hdr[hl++] = digits[--nd];
	hdr[hl++] = '\n';
	hdr[hl++] = '\n';

	if (len + (size_t)hl <= 4096) {
		char buf[4096];
		memcpy(buf, hdr, (size_t)hl);
		memcpy(buf + hl, body, len);
		sim_emit_reply(c, buf, (size_t)hl + len);
		return;
	}
	char *buf = malloc((size_t)hl + len);
	if (!buf) {
		c->hard_close = true;
		return;
	}
	memcpy(buf, hdr, (size_t)hl);
	memcpy(buf + hl, body, len);
	sim_emit_reply(c, buf, (size_t)hl + len);
	free(buf);
}

static void
sim_conn_drop_queues(struct sim_conn *c)
{
	while (c->q_len) {
		sim_event_unref(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	c->logq.off = c->logq.len = 0;
	c->logq_n = 0;
}

/* Notice, then close once written; queued events and logs are thrown away. */
static void
sim_goodbye(struct sim_conn *c, const char *notice)
{
	sim_conn_drop_queues(c);
	if (notice)
		sim_emit(c, notice, strlen(notice));
	sim_closing(c);
}

/* ------------------------------------------------------------------ */
/* Subscriptions, filters, dispatch                                     */
/* ------------------------------------------------------------------ */

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
static void
sim_dispatch(struct fsesl_sim *s, struct sim_event *ev)
{
	if (!ev)
		return;
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (sim_subscribed(c, ev) && sim_filters_pass(c, ev))
			sim_enqueue(c, ev);
	sim_event_unref(ev);
}

static bool
sim_anyone_wants(struct fsesl_sim *s, int type)
{
	if (s->n_event_conns == 0)
		return false;
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (c->authed && c->events_on && (c->ev_all || c->types[type]))
			return true;
	return false;
}

static void
sim_date_headers(struct fsesl_sim *s, struct sim_event *ev)
{
	uint64_t us = sim_wall_us();
	time_t t = (time_t)(us / 1000000u);
	struct tm lt, gt;
	char b1[64], b2[64];

	if (us <= s->last_ts_us)
		us = s->last_ts_us + 1;
	s->last_ts_us = us;
	localtime_r(&t, &lt);
	gmtime_r(&t, &gt);
	strftime(b1, sizeof(b1), "%Y-%m-%d %H:%M:%S", &lt);
	strftime(b2, sizeof(b2), "%a, %d %b %Y %H:%M:%S GMT", &gt);
	sim_event_add(ev, "Event-Date-Local", b1);
	sim_event_add(ev, "Event-Date-GMT", b2);
	sim_event_addf(ev, "Event-Date-Timestamp", "%llu", (unsigned long long)us);
}

/* The standard headers of §7.5, in order. */
static void
sim_std_headers(
    struct fsesl_sim *s, struct sim_event *ev, const char *file, const char *func, int line)
{
	sim_event_add(ev, "Event-Name", sim_ev_names[ev->type]);
	sim_event_add(ev, "Core-UUID", s->core_uuid);
	sim_event_add(ev, "FreeSWITCH-Hostname", s->hostname);
	sim_event_add(ev, "FreeSWITCH-Switchname", s->hostname);
	sim_event_add(ev, "FreeSWITCH-IPv4", s->cfg.ipv4 ? s->cfg.ipv4 : "127.0.0.1");
	if (!s->cfg.ipv6 || *s->cfg.ipv6)
		sim_event_add(ev, "FreeSWITCH-IPv6", s->cfg.ipv6 ? s->cfg.ipv6 : "::1");
	sim_date_headers(s, ev);
	sim_event_add(ev, "Event-Calling-File", file);
	sim_event_add(ev, "Event-Calling-Function", func);
	sim_event_addf(ev, "Event-Calling-Line-Number", "%d", line);
	ev->seq = ++s->seq;
	sim_event_addf(ev, "Event-Sequence", "%llu", (unsigned long long)ev->seq);
}

/* A new event with its standard headers; CUSTOM puts Event-Subclass first,
 * as mod_event_socket's copy does. */
static struct sim_event *
sim_event_std(struct fsesl_sim *s, int type, const char *subclass, const char *file,
    const char *func, int line)
{
	struct sim_event *ev = sim_event_alloc(type);

	if (!ev)
		return NULL;
	if (type == EV_CUSTOM && subclass && *subclass) {
		ev->subclass = strdup(subclass);
		sim_event_add(ev, "Event-Subclass", subclass);
	}
	sim_std_headers(s, ev, file, func, line);
	return ev;
}

static void
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

static unsigned int
sim_session_count(struct fsesl_sim *s)
{
	return s->load_set ? s->load.session_count : (unsigned int)s->n_chans;
}

static void
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

static void
sim_fire_api_event(struct fsesl_sim *s, const char *cmd, const char *arg)
{
	if (!sim_anyone_wants(s, EV_API))
		return;
	struct sim_event *ev =
	    sim_event_std(s, EV_API, NULL, "switch_loadable_module.c", "switch_api_execute", 2954);
	if (!ev)
		return;
	sim_event_add(ev, "API-Command", cmd);
	if (arg && *arg)
		sim_event_add(ev, "API-Command-Argument", arg);
	sim_dispatch(s, ev);
}

static const char *const sim_log_names[8] = {
    "CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"};

/* One log/data line to every connection logging at that level. */
static void
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
		sbuf_add(&c->logq, msgbuf, (size_t)ml);
		c->logq_n++;
		sim_mark_dirty(c);
	}
}

/* ------------------------------------------------------------------ */
/* Channels and the api built-ins                                       */
/* ------------------------------------------------------------------ */

static void
sim_chan_event(struct fsesl_sim *s, int type, const struct sim_chan *ch, const char *state,
    const char *callstate, int state_no, const char *answer)
{
	if (!sim_anyone_wants(s, type))
		return;
	struct sim_event *ev =
	    sim_event_std(s, type, NULL, "switch_channel.c", "switch_channel_perform_event", 4000);
	if (!ev)
		return;
	sim_event_add(ev, "Channel-State", state);
	sim_event_add(ev, "Channel-Call-State", callstate);
	sim_event_addf(ev, "Channel-State-Number", "%d", state_no);
	sim_event_add(ev, "Channel-Name", ch->name);
	sim_event_add(ev, "Unique-ID", ch->uuid);
	sim_event_add(ev, "Call-Direction", "outbound");
	sim_event_add(ev, "Presence-Call-Direction", "outbound");
	sim_event_add(ev, "Answer-State", answer);
	sim_event_add(ev, "Caller-Direction", "outbound");
	sim_event_add(ev, "Caller-Destination-Number", ch->dest);
	sim_event_add(ev, "Caller-Unique-ID", ch->uuid);
	sim_event_add(ev, "Caller-Channel-Name", ch->name);
	sim_event_addf(
	    ev, "Caller-Channel-Created-Time", "%llu", (unsigned long long)ch->created_us);
	if (type == EV_CHANNEL_HANGUP || type == EV_CHANNEL_HANGUP_COMPLETE ||
	    type == EV_CHANNEL_DESTROY)
		sim_event_add(ev, "Hangup-Cause", "NORMAL_CLEARING");
	sim_dispatch(s, ev);
}

static void sim_api_split(char *buf, char **cmd, char **arg);

/* Output of an api command, built into *out; sets *msleep_ms for msleep. */
static void
sim_api_run(struct fsesl_sim *s, const char *cmd, const char *arg, struct sbuf *out,
    long *msleep_ms, bool bg)
{
	if (!strcasecmp(cmd, "echo") || !strcasecmp(cmd, "eval")) {
		sbuf_add(out, arg, strlen(arg));
	} else if (!strcasecmp(cmd, "version")) {
		sbuf_add(out, SIM_VERSION_TEXT, sizeof(SIM_VERSION_TEXT) - 1);
	} else if (!strcasecmp(cmd, "hostname")) {
		sbuf_add(out, s->hostname, strlen(s->hostname));
	} else if (!strcasecmp(cmd, "uptime")) {
		sbuf_printf(
		    out, "%llu\n", (unsigned long long)((sim_wall_us() - s->start_us) / 1000000u));
	} else if (!strcasecmp(cmd, "status")) {
		char up[256];
		unsigned int n = sim_session_count(s);
		sim_uptime_text(s, up, sizeof(up), NULL);
		sbuf_printf(out,
		    "UP %s\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n"
		    "%llu session(s) since startup\n%u session(s) - peak %u, last 5min %u \n"
		    "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
		    "%u session(s) max\nmin idle cpu 0.00/%.2f\n"
		    "Current Stack Size/Max 240K/8192K\n",
		    up, (unsigned long long)s->sessions_total, n, n, n,
		    s->load_set ? s->load.max_sessions : s->cfg.max_sessions,
		    s->load_set ? s->load.idle_cpu : 99.0);
	} else if (!strcasecmp(cmd, "msleep")) {
		*msleep_ms = atol(arg);
		if (*msleep_ms < 0)
			*msleep_ms = 0;
		sbuf_add(out, "+OK", 3);
	} else if (!strcasecmp(cmd, "show") && !strcasecmp(arg, "api")) {
		/* mod_commands' listing (SELECT name, description, syntax, ikey
		 * FROM interfaces WHERE type = 'api' ORDER BY name), for the
		 * commands this simulator runs. */
		static const char *const rows[][3] = {
		    {"echo", "Echo", "<data>"},
		    {"eval", "eval (noop)", "[uuid:<uuid> ]<expression>"},
		    {"expand", "Execute an api with variable expansion",
		        "[uuid:<uuid> ]<cmd> <args>"},
		    {"hostname", "Return the system hostname", ""},
		    {"hupall", "hupall", "<cause> [<var> <value>] [<var2> <value2>]"},
		    {"msleep", "Sleep N milliseconds", "<milliseconds>"},
		    {"originate", "Originate a call",
		        "<call url> <exten>|&<application_name>(<app_args>)"},
		    {"show", "Show various reports",
		        "codec|endpoint|application|api|channels|calls"},
		    {"status", "Show current status", ""},
		    {"strftime", "strftime", "<format_string>"},
		    {"uptime", "Show uptime",
		        "[us|ms|s|m|h|d|microseconds|milliseconds|seconds|minutes|hours|days]"},
		    {"uuid_getvar", "Get a variable from a channel", "<uuid> <var>"},
		    {"uuid_kill", "Kill channel", "<uuid> [cause]"},
		    {"version", "Version", "[short]"},
		};
		size_t n = sizeof(rows) / sizeof(rows[0]);
		sbuf_printf(out, "name,description,syntax,ikey\n");
		for (size_t i = 0; i < n; i++)
			sbuf_printf(
			    out, "%s,%s,%s,mod_commands\n", rows[i][0], rows[i][1], rows[i][2]);
		sbuf_printf(out, "\n%zu total.\n", n);
	} else if (!strcasecmp(cmd, "show")) {
		bool calls = sim_prefix(arg, "calls");
		if (!calls && !sim_prefix(arg, "channels")) {
			sbuf_printf(out,
			    "-USAGE: codec|endpoint|application|api|dialplan|file|timer|"
			    "calls [count]|channels [count|like <match string>]|calls|"
			    "detailed_calls|bridged_calls|detailed_bridged_calls|aliases|"
			    "complete|chat|management|modules|nat_map|say|interfaces|"
			    "interface_types|tasks|limits|status\n");
		} else if (s->n_chans == 0) {
			sbuf_add(out, "\n0 total.\n", 10);
		} else {
			sbuf_printf(out,
			    "uuid,direction,created,created_epoch,name,state,cid_name,"
			    "cid_num,ip_addr,dest,application,application_data,dialplan,"
			    "context,read_codec,read_rate,read_bit_rate,write_codec,"
			    "write_rate,write_bit_rate,secure,hostname,presence_id,"
			    "presence_data,accountcode,callstate,callee_name,callee_num,"
			    "callee_direction,call_uuid,sent_callee_name,sent_callee_num,"
			    "initial_cid_name,initial_cid_num,initial_ip_addr,"
			    "initial_dest,initial_dialplan,initial_context\n");
			for (size_t i = 0; i < s->n_chans; i++) {
				struct sim_chan *ch = &s->chans[i];
				sbuf_printf(out,
				    "%s,outbound,,%llu,%s,CS_EXECUTE,,,,%s,park,,XML,default,L16,"
				    "8000,128000,L16,8000,128000,,%s,,,,ACTIVE,,,,,,,,,,%s,XML,"
				    "default\n",
				    ch->uuid, (unsigned long long)(ch->created_us / 1000000u),
				    ch->name, ch->dest, s->hostname, ch->dest);
			}
			sbuf_printf(out, "\n%zu total.\n", s->n_chans);
		}
	} else if (!strcasecmp(cmd, "originate")) {
		char dial[256] = "", app[256] = "";
		if (sscanf(arg, "%255s %255s", dial, app) < 2) {
			sbuf_printf(out, "-USAGE: <call url> <exten>|&<application_name>"
			                 "(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
			                 "[<cid_num>] [<timeout_sec>]\n");
		} else if (!sim_prefix(dial, "loopback/") && !sim_prefix(dial, "sim/")) {
			/* The captured server had no SIP module. */
			sbuf_printf(out, "-ERR CHAN_NOT_IMPLEMENTED\n");
		} else if (s->n_chans >=
		           (s->load_set ? s->load.max_sessions : s->cfg.max_sessions)) {
			sbuf_printf(out, "-ERR SYSTEM_SHUTDOWN\n");
		} else {
			if (s->n_chans == s->cap_chans) {
				size_t nc = s->cap_chans ? s->cap_chans * 2 : 16;
				struct sim_chan *n = realloc(s->chans, nc * sizeof(*n));
				if (!n) {
					sbuf_printf(out, "-ERR MEMORY\n");
					return;
				}
				s->chans = n;
				s->cap_chans = nc;
			}
			struct sim_chan *ch = &s->chans[s->n_chans++];
			sim_uuid(ch->uuid);
			ch->name = strdup(dial);
			char *slash = strchr(dial, '/');
			ch->dest = strdup(slash ? slash + 1 : dial);
			ch->created_us = sim_wall_us();
			s->sessions_total++;
			sbuf_printf(out, "+OK %s\n", ch->uuid);
			/* Copy: events below may not move the table, but keep it simple. */
			struct sim_chan copy = *ch;
			(void)bg;
			sim_chan_event(
			    s, EV_CHANNEL_CREATE, &copy, "CS_INIT", "DOWN", 2, "ringing");
			sim_chan_event(
			    s, EV_CHANNEL_ANSWER, &copy, "CS_INIT", "ACTIVE", 2, "answered");
			sim_chan_event(
			    s, EV_CHANNEL_PARK, &copy, "CS_EXECUTE", "ACTIVE", 4, "answered");
		}
	} else if (!strcasecmp(cmd, "uuid_kill") || !strcasecmp(cmd, "hupall")) {
		bool all = !strcasecmp(cmd, "hupall");
		char want[64] = "";
		sscanf(arg, "%63s", want);
		size_t killed = 0;
		for (size_t i = 0; i < s->n_chans;) {
			if (!all && strcmp(s->chans[i].uuid, want)) {
				i++;
				continue;
			}
			struct sim_chan ch = s->chans[i];
			s->chans[i] = s->chans[--s->n_chans];
			sim_chan_event(
			    s, EV_CHANNEL_HANGUP, &ch, "CS_HANGUP", "HANGUP", 10, "hangup");
			sim_chan_event(s, EV_CHANNEL_HANGUP_COMPLETE, &ch, "CS_REPORTING", "HANGUP",
			    11, "hangup");
			sim_chan_event(
			    s, EV_CHANNEL_DESTROY, &ch, "CS_DESTROY", "HANGUP", 12, "hangup");
			free(ch.name);
			free(ch.dest);
			killed++;
		}
		if (all)
			sbuf_printf(out, "+OK hangup all channels with cause %s\n",
			    *arg ? arg : "NORMAL_CLEARING");
		else if (!*want)
			sbuf_printf(out, "-USAGE: <uuid> [cause]\n");
		else if (killed)
			sbuf_add(out, "+OK\n", 4);
		else
			sbuf_printf(out, "-ERR No such channel!\n");
	} else if (!strcasecmp(cmd, "strftime")) {
		char tb[256];
		time_t t = time(NULL);
		struct tm lt;
		localtime_r(&t, &lt);
		size_t n = strftime(tb, sizeof(tb), *arg ? arg : "%Y-%m-%d %T", &lt);
		sbuf_add(out, tb, n);
	} else if (!strcasecmp(cmd, "expand")) {
		/* Only $${domain} (the switch's IPv4, as in a vanilla config). */
		struct sbuf ex = {0};
		const char *dom = s->cfg.ipv4 ? s->cfg.ipv4 : "127.0.0.1";
		for (const char *p = arg; *p;) {
			if (!strncmp(p, "$${domain}", 10)) {
				sbuf_add(&ex, dom, strlen(dom));
				p += 10;
			} else {
				sbuf_add(&ex, p++, 1);
			}
		}
		sbuf_add(&ex, "", 1);
		char *icmd, *iarg;
		sim_api_split(ex.p + ex.off, &icmd, &iarg);
		sim_api_run(s, icmd, iarg, out, msleep_ms, bg);
		sbuf_free(&ex);
	} else if (!strcasecmp(cmd, "uuid_getvar")) {
		char u[64] = "", var[128] = "";
		if (sscanf(arg, "%63s %127s", u, var) < 2)
			sbuf_printf(out, "-USAGE: <uuid> <var>\n");
		else
			sbuf_printf(out, "-ERR No such channel!\n");
	} else if (!strcasecmp(cmd, "log")) {
		/* "api log LEVEL text" */
		char lvl[32] = "";
		const char *msg = arg;
		int n = 0;
		sscanf(arg, "%31s%n", lvl, &n);
		msg = arg + n;
		while (*msg == ' ')
			msg++;
		int level = 7;
		for (int i = 0; i < 8; i++)
			if (!strcasecmp(lvl, sim_log_names[i]))
				level = i;
		sim_log(s, level, "mod_commands.c", "log_function", 7200, msg);
		sbuf_add(out, "+OK\n", 4);
	} else {
		sbuf_printf(out, "-ERR %s Command not found!\n", cmd);
	}
}

/* Splits "cmd arg" at the first space; each part trimmed of spaces at both
 * ends (switch_api_execute). cmd and arg point into buf. */
static void
sim_api_split(char *buf, char **cmd, char **arg)
{
	char *sp = strchr(buf, ' ');

	*arg = (char *)"";
	if (sp) {
		*sp = '\0';
		*arg = sp + 1;
	}
	*cmd = buf;
	/* switch_strip_whitespace(): any white space, so a stray CR/LF left by a
	 * mixed line-end packet (§2.3) does not change the command name. */
	char *parts[2] = {*cmd, *arg};
	for (int i = 0; i < 2; i++) {
		char *p = parts[i];
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		size_t l = strlen(p);
		while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r' ||
		                    p[l - 1] == '\n'))
			p[--l] = '\0';
		parts[i] = p;
	}
	*cmd = parts[0];
	*arg = parts[1];
}

/* userauth esl-allowed-api: a comma/space separated list of names. */
static bool
sim_list_has(const char *list, const char *name)
{
	if (!list || !strcasecmp(list, "all"))
		return true;
	size_t nl = strlen(name);
	const char *p = list;
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ')
			e++;
		if ((size_t)(e - p) == nl && !strncasecmp(p, name, nl))
			return true;
		if ((size_t)(e - p) == 3 && !strncasecmp(p, "ALL", 3))
			return true;
		p = e;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

static void
sim_cmd_api(struct sim_conn *c, char *line)
{
	struct fsesl_sim *s = c->s;
	char *cmd, *arg;
	struct sbuf *out = &s->scratch;
	long msleep_ms = -1;

	out->off = out->len = 0;
	s->c.api++;
	sim_api_split(line + 4, &cmd, &arg);
	if (c->allowed_api && !sim_list_has(c->allowed_api, cmd)) {
		sim_reply(c, "-ERR permission denied");
		return;
	}
	sim_api_run(s, cmd, arg, out, &msleep_ms, false);
	if (msleep_ms > 0) {
		c->park = PARK_MSLEEP;
		c->park_deadline = sim_now_ns() + (uint64_t)msleep_ms * 1000000u;
		free(c->msleep_cmd);
		free(c->msleep_arg);
		c->msleep_cmd = strdup(cmd);
		c->msleep_arg = strdup(arg);
		return;
	}
	if (sbuf_avail(out) == 0)
		sim_api_response(c, "-ERR no reply\n", 14);
	else
		sim_api_response(c, out->p + out->off, sbuf_avail(out));
	sim_fire_api_event(s, cmd, arg);
}

static void
sim_job_finish(struct fsesl_sim *s, const char *uuid, const char *cmd, const char *arg,
    const char *body, size_t body_len)
{
	sim_fire_api_event(s, cmd, arg);
	if (!sim_anyone_wants(s, EV_BACKGROUND_JOB))
		return;
	struct sim_event *ev =
	    sim_event_std(s, EV_BACKGROUND_JOB, NULL, "mod_event_socket.c", "api_exec", 1572);
	if (!ev)
		return;
	sim_event_add(ev, "Job-UUID", uuid);
	sim_event_add(ev, "Job-Command", cmd);
	if (arg && *arg)
		sim_event_add(ev, "Job-Command-Arg", arg);
	sim_event_set_body(ev, body, body_len);
	sim_dispatch(s, ev);
}

/* Moves the connection's queued events into its output, as far as the
 * output's high-water mark allows. */
static void
sim_conn_write_events(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	while (c->q_len && !c->closing && sbuf_avail(&c->out) < SIM_OUT_HIGH) {
		struct sim_event *ev = c->q[c->q_head];
		const char *w;
		size_t wl;
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
		if (sim_event_wire(ev, c->fmt, &w, &wl) == 0) {
			sim_emit(c, w, wl);
			s->c.events_sent++;
		}
		sim_event_unref(ev);
	}
}

static void
sim_cmd_bgapi(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt)
{
	struct fsesl_sim *s = c->s;
	char gen[37];
	char *uuid = NULL;
	char *cmd, *arg;

	bool own = c->f[FSESL_SIM_FAULT_OWN_JOB_UUID].on;
	bool bare = own && c->f[FSESL_SIM_FAULT_OWN_JOB_UUID].a == 1;
	bool result_first = c->f[FSESL_SIM_FAULT_RESULT_BEFORE_REPLY].on;

	s->c.bgapi++;
	for (size_t i = 0; i < pkt->n_headers && !own; i++)
		if (pkt->headers[i].name_len == 8 &&
		    !strncasecmp(pkt->headers[i].name, "Job-UUID", 8)) {
			uuid = sim_strndup(pkt->headers[i].value, pkt->headers[i].value_len);
			break;
		}
	if (own)
		s->c.faults[FSESL_SIM_FAULT_OWN_JOB_UUID]++;
	if (!uuid) {
		sim_uuid(gen);
		uuid = strdup(gen);
		if (!uuid)
			return;
	}
	sim_api_split(line + 6, &cmd, &arg);
	if (c->allowed_api && !sim_list_has(c->allowed_api, cmd)) {
		sim_reply(c, "-ERR permission denied");
		free(uuid);
		return;
	}
	/* The real reply is built in a fixed buffer: a Job-UUID over 235 bytes
	 * loses the final LF (docs/protocol.md §2.6); reproduce it. */
	char buf[1200];
	int n = snprintf(buf, sizeof(buf), "Content-Type: command/reply\n");
	char inner[512];
	if (bare)
		snprintf(inner, sizeof(inner) - 1, "Reply-Text: +OK\n\n");
	else
		snprintf(inner, sizeof(inner) - 1, "Reply-Text: +OK Job-UUID: %s\nJob-UUID: %s\n\n",
		    uuid, uuid);
	size_t il = strlen(inner);
	memcpy(buf + n, inner, il);

	struct sbuf out = {0};
	long msleep_ms = -1;
	if (!result_first)
		sim_emit_reply(c, buf, (size_t)n + il);
	sim_api_run(s, cmd, arg, &out, &msleep_ms, true);
	if (result_first) {
		/* The result first, straight into this connection's output
		 * (not after its idle poll), then the reply. */
		if (msleep_ms <= 0) {
			sim_job_finish(s, uuid, cmd, arg, out.p ? out.p : "", sbuf_avail(&out));
			sim_conn_write_events(c);
			s->c.faults[FSESL_SIM_FAULT_RESULT_BEFORE_REPLY]++;
		}
		sim_emit_reply(c, buf, (size_t)n + il);
		if (msleep_ms <= 0) {
			sbuf_free(&out);
			free(uuid);
			return;
		}
	}
	if (msleep_ms > 0) {
		if (s->n_jobs == s->cap_jobs) {
			size_t nc = s->cap_jobs ? s->cap_jobs * 2 : 8;
			struct sim_job *nj = realloc(s->jobs, nc * sizeof(*nj));
			if (!nj)
				goto now;
			s->jobs = nj;
			s->cap_jobs = nc;
		}
		struct sim_job *j = &s->jobs[s->n_jobs++];
		j->deadline = sim_now_ns() + (uint64_t)msleep_ms * 1000000u;
		j->uuid = uuid;
		j->cmd = strdup(cmd);
		j->arg = strdup(arg);
		sbuf_free(&out);
		return;
	}
now:
	sim_job_finish(s, uuid, cmd, arg, out.p ? out.p : "", sbuf_avail(&out));
	sbuf_free(&out);
	free(uuid);
}

static bool
sim_event_allowed(const struct sim_conn *c, const char *name)
{
	return !c->allowed_events || sim_list_has(c->allowed_events, name);
}

static void
sim_update_event_conns(struct sim_conn *c, bool on)
{
	if (c->events_on == on)
		return;
	c->events_on = on;
	if (on)
		c->s->n_event_conns++;
	else
		c->s->n_event_conns--;
}

static void
sim_subs_add(struct sim_conn *c, const char *sub)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcasecmp(c->subs[i], sub))
			return;
	char **n = realloc(c->subs, (c->n_subs + 1) * sizeof(*n));
	if (!n)
		return;
	c->subs = n;
	c->subs[c->n_subs] = strdup(sub);
	if (c->subs[c->n_subs])
		c->n_subs++;
}

static void
sim_subs_del(struct sim_conn *c, const char *sub)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcasecmp(c->subs[i], sub)) {
			free(c->subs[i]);
			c->subs[i] = c->subs[--c->n_subs];
			return;
		}
}

static void
sim_subs_clear(struct sim_conn *c)
{
	for (size_t i = 0; i < c->n_subs; i++)
		free(c->subs[i]);
	free(c->subs);
	c->subs = NULL;
	c->n_subs = 0;
}

static void
sim_cmd_event(struct sim_conn *c, char *line)
{
	char *p = line + 5; /* "event" prefix, anything may follow ("eventx") */
	char *tok, *save = NULL;
	bool custom = false, first = true;
	int keys = 0;

	/* Skip the rest of the command word ("eventx" is "event"). */
	while (*p && *p != ' ')
		p++;
	for (tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (first) {
			first = false;
			if (!strcasecmp(tok, "plain")) {
				c->fmt = FSESL_EVFMT_PLAIN;
				continue;
			}
			if (!strcasecmp(tok, "json")) {
				c->fmt = FSESL_EVFMT_JSON;
				continue;
			}
			if (!strcasecmp(tok, "xml")) {
				c->fmt = FSESL_EVFMT_XML;
				continue;
			}
		}
		if (custom) {
			if (!sim_event_allowed(c, "CUSTOM") && !sim_event_allowed(c, tok)) {
				sim_reply(c, "-ERR permission denied");
				return;
			}
			sim_subs_add(c, tok);
			keys++;
			continue;
		}
		int t = sim_ev_lookup(tok);
		if (t < 0)
			continue;
		if (!sim_event_allowed(c, sim_ev_names[t])) {
			sim_reply(c, "-ERR permission denied");
			return;
		}
		keys++;
		if (t == EV_ALL) {
			c->ev_all = true;
			for (int i = 0; i < EV__COUNT; i++)
				c->types[i] = true;
		} else {
			c->types[t] = true;
			if (t == EV_CUSTOM)
				custom = true;
		}
	}
	if (!keys) {
		sim_reply(c, "-ERR no keywords supplied");
		return;
	}
	sim_update_event_conns(c, true);
	sim_replyf(c, "+OK event listener enabled %s", sim_fmt_names[c->fmt]);
}

static void
sim_cmd_nixevent(struct sim_conn *c, char *line)
{
	char *p = line + 8;
	char *tok, *save = NULL;
	bool custom = false;
	int keys = 0;

	while (*p && *p != ' ')
		p++;
	for (tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (custom) {
			sim_subs_del(c, tok);
			keys++;
			continue;
		}
		int t = sim_ev_lookup(tok);
		if (t < 0)
			continue;
		keys++;
		if (t == EV_ALL) {
			c->ev_all = false;
			memset(c->types, 0, sizeof(c->types));
			sim_subs_clear(c);
		} else {
			if (c->ev_all) {
				/* "ALL minus one": every type stays but this one. */
				c->ev_all = false;
				for (int i = 0; i < EV__COUNT; i++)
					c->types[i] = true;
			}
			c->types[t] = false;
			if (t == EV_CUSTOM)
				custom = true;
		}
	}
	if (!keys)
		sim_reply(c, "-ERR no keywords supplied");
	else
		sim_reply(c, "+OK events nixed");
}

static void
sim_cmd_noevents(struct sim_conn *c)
{
	if (!c->events_on) {
		sim_reply(c, "-ERR not listening for events");
		return;
	}
	sim_update_event_conns(c, false);
	c->ev_all = false;
	memset(c->types, 0, sizeof(c->types));
	sim_subs_clear(c);
	while (c->q_len) {
		sim_event_unref(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	sim_reply(c, "+OK no longer listening for events");
}

static void
sim_filter_free(struct sim_filter *f)
{
	pcre2_match_data_free(f->md);
	pcre2_code_free(f->re);
	free(f->name);
	free(f->value);
}

static void
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

static void
sim_cmd_filter(struct sim_conn *c, char *line)
{
	char *name = line + 7;
	char *val;

	while (*name == ' ')
		name++;
	val = strchr(name, ' ');
	if (val)
		*val++ = '\0';
	if (!strcasecmp(name, "delete") && val) {
		name = val;
		val = strchr(name, ' ');
		if (val)
			*val++ = '\0';
		if (!strcasecmp(name, "all")) {
			for (size_t i = 0; i < c->n_filters; i++)
				sim_filter_free(&c->filters[i]);
			c->n_filters = 0;
		} else {
			for (size_t i = 0; i < c->n_filters;) {
				struct sim_filter *f = &c->filters[i];
				if (!strcasecmp(f->name, name) &&
				    (!val || !strcmp(f->value, val))) {
					sim_filter_free(f);
					memmove(f, f + 1, (c->n_filters - i - 1) * sizeof(*f));
					c->n_filters--;
				} else {
					i++;
				}
			}
		}
		sim_replyf(c, "+OK filter deleted. [%s][%s]", name, val ? val : "");
		return;
	}
	if (val && !strcasecmp(name, "add")) {
		name = val;
		val = strchr(name, ' ');
		if (val)
			*val++ = '\0';
	}
	if (!val || !*name) {
		sim_reply(c, "-ERR invalid syntax");
		return;
	}
	sim_filter_add(c, name, val);
	sim_replyf(c, "+OK filter added. [%s]=[%s]", name, val);
}

static void
sim_cmd_sendevent(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt)
{
	struct fsesl_sim *s = c->s;
	char *name = line + 9;
	char uuid[37];
	const char *subclass = NULL;
	size_t sublen = 0;

	while (*name == ' ')
		name++;
	char *end = name + strlen(name);
	while (end > name && end[-1] == ' ')
		*--end = '\0';
	int type = sim_ev_lookup(name);
	if (type < 0 || type == EV_ALL)
		type = EV_CUSTOM; /* 1.10.12: unknown names become CUSTOM */
	if (type == EV_CUSTOM && sim_ev_lookup(name) == EV_CUSTOM)
		for (size_t i = 0; i < pkt->n_headers; i++)
			if (pkt->headers[i].name_len == 14 &&
			    !strncasecmp(pkt->headers[i].name, "Event-Subclass", 14)) {
				subclass = pkt->headers[i].value;
				sublen = pkt->headers[i].value_len;
				break;
			}
	sim_uuid(uuid);
	sim_replyf(c, "+OK %s", uuid);

	struct sim_event *ev = sim_event_alloc(type);
	if (!ev)
		return;
	if (subclass) {
		ev->subclass = sim_strndup(subclass, sublen);
		sim_event_add_n(ev, "Event-Subclass", 14, subclass, sublen);
	}
	/* The stored Command is cut at the first line end. */
	sim_event_add(ev, "Command", line);
	for (size_t i = 0; i < pkt->n_headers; i++) {
		const struct fsesl_header *h = &pkt->headers[i];
		if (subclass && h->value == subclass)
			continue;
		sim_event_add_n(ev, h->name, h->name_len, h->value, h->value_len);
	}
	sim_event_add(ev, "Event-UUID", uuid);
	sim_std_headers(s, ev, "mod_event_socket.c", "parse_command", 2275);
	if (pkt->body && pkt->body_len) {
		/* Stored as a C string: a NUL cuts the body short. */
		size_t bl = strnlen(pkt->body, pkt->body_len);
		sim_event_set_body(ev, pkt->body, bl);
	}
	sim_dispatch(s, ev);
}

static void
sim_cmd_log(struct sim_conn *c, char *line)
{
	static const char *const names[8] = {
	    "console", "alert", "crit", "err", "warning", "notice", "info", "debug"};
	char *lv = line + 3;
	int level = -2;

	if (!c->allow_log) {
		sim_reply(c, "-ERR permission denied");
		return;
	}
	while (*lv == ' ')
		lv++;
	if (!*lv) {
		level = 7;
	} else if (*lv >= '0' && *lv <= '9') {
		level = atoi(lv);
		if (level > 63)
			level = 63;
	} else if (!strcasecmp(lv, "disable")) {
		level = -1;
	} else {
		for (int i = 0; i < 8; i++)
			if (!strcasecmp(lv, names[i]))
				level = i;
	}
	if (level == -2) {
		sim_reply(c, "-ERR invalid log level");
		return;
	}
	if (c->log_level < 0 && level >= 0)
		c->s->n_log_conns++;
	else if (c->log_level >= 0 && level < 0)
		c->s->n_log_conns--;
	c->log_level = level;
	sim_replyf(c, "+OK log level %s [%d]", lv, level);
}

static void
sim_cmd_nolog(struct sim_conn *c)
{
	if (c->log_level < 0) {
		sim_reply(c, "-ERR not loging");
		return;
	}
	c->log_level = -1;
	c->s->n_log_conns--;
	c->logq.off = c->logq.len = 0;
	c->logq_n = 0;
	sim_reply(c, "+OK no longer logging");
}

static struct sim_chan *
sim_chan_find(struct fsesl_sim *s, const char *uuid)
{
	for (size_t i = 0; i < s->n_chans; i++)
		if (!strcmp(s->chans[i].uuid, uuid))
			return &s->chans[i];
	return NULL;
}

static void
sim_cmd_sendmsg(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt)
{
	char *u = line + 7;
	char uuid[256] = "";

	while (*u == ' ')
		u++;
	snprintf(uuid, sizeof(uuid), "%s", u);
	if (!*uuid)
		for (size_t i = 0; i < pkt->n_headers; i++)
			if (pkt->headers[i].name_len == 10 &&
			    !strncasecmp(pkt->headers[i].name, "session-id", 10))
				snprintf(uuid, sizeof(uuid), "%.*s", (int)pkt->headers[i].value_len,
				    pkt->headers[i].value);
	if (!*uuid || !sim_chan_find(c->s, uuid)) {
		sim_replyf(c, "-ERR invalid session id [%s]", uuid);
		return;
	}
	sim_reply(c, "+OK");
}

static void
sim_cmd_myevents(struct sim_conn *c, char *line)
{
	char *p = line + 9;
	char uuid[128] = "", fmt[16] = "";

	if (c->myevents) {
		sim_reply(c, "-ERR aready enabled.");
		return;
	}
	sscanf(p, "%127s %15s", uuid, fmt);
	bool known = *uuid && sim_chan_find(c->s, uuid);
	if (!known && *fmt) {
		sim_reply(c, "-ERR invalid uuid");
		return;
	}
	static const int chev[] = {EV_CHANNEL_ANSWER, EV_CHANNEL_APPLICATION, EV_CHANNEL_BRIDGE,
	    EV_CHANNEL_CREATE, EV_CHANNEL_DATA, EV_CHANNEL_DESTROY, EV_CHANNEL_EXECUTE,
	    EV_CHANNEL_EXECUTE_COMPLETE, EV_CHANNEL_HANGUP, EV_CHANNEL_HANGUP_COMPLETE,
	    EV_CHANNEL_ORIGINATE, EV_CHANNEL_UUID, EV_CHANNEL_OUTGOING, EV_CHANNEL_PARK,
	    EV_CHANNEL_PROGRESS, EV_CHANNEL_PROGRESS_MEDIA, EV_CHANNEL_STATE, EV_CHANNEL_UNBRIDGE,
	    EV_CHANNEL_UNPARK, EV_DETECTED_SPEECH, EV_DTMF, EV_NOTALK, EV_TALK};
	for (size_t i = 0; i < sizeof(chev) / sizeof(chev[0]); i++)
		c->types[chev[i]] = true;
	c->myevents = true;
	/* An unknown UUID without a format word lets every channel through. */
	if (known)
		c->myevents_uuid = strdup(uuid);
	sim_update_event_conns(c, true);
	sim_reply(c, "+OK Events Enabled");
}

static const struct fsesl_sim_user *
sim_user_find(struct fsesl_sim *s, const char *user)
{
	for (size_t i = 0; i < s->n_users; i++)
		if (!strcasecmp(s->users[i].user, user))
			return &s->users[i];
	return NULL;
}

static void
sim_auth_failed(struct sim_conn *c)
{
	c->s->c.auth_failed++;
	sim_reply(c, "-ERR invalid");
	sim_goodbye(c, SIM_NOTICE_BYE);
}

static void
sim_cmd_userauth(struct sim_conn *c, char *line)
{
	char *spec = line + 9;
	char user[512], *pass;
	/* user@domain:pass, or user:pass@domain */
	char *colon = strchr(spec, ':');

	if (!colon) {
		sim_auth_failed(c);
		return;
	}
	char *at = strchr(spec, '@');
	if (at && at < colon) {
		snprintf(user, sizeof(user), "%.*s", (int)(colon - spec), spec);
		pass = colon + 1;
	} else if (at) {
		snprintf(user, sizeof(user), "%.*s%s", (int)(colon - spec), spec, at);
		*at = '\0';
		pass = colon + 1;
	} else {
		sim_auth_failed(c);
		return;
	}
	const struct fsesl_sim_user *u = sim_user_find(c->s, user);
	if (!u || !u->password || strcmp(u->password, pass)) {
		sim_auth_failed(c);
		return;
	}
	c->authed = true;
	c->s->c.auth_ok++;
	if (u->allowed_events && strcasecmp(u->allowed_events, "all"))
		c->allowed_events = strdup(u->allowed_events);
	if (u->allowed_api && strcasecmp(u->allowed_api, "all"))
		c->allowed_api = strdup(u->allowed_api);
	c->allow_log = u->allow_log;
	char buf[1024];
	int n = snprintf(buf, sizeof(buf),
	    "Content-Type: command/reply\nReply-Text: +OK accepted\nAllowed-Events: %s\n"
	    "Allowed-API: %s\nAllowed-LOG: %s\n\n",
	    u->allowed_events ? u->allowed_events : "all", u->allowed_api ? u->allowed_api : "all",
	    u->allow_log ? "true" : "false");
	if (n > 0)
		sim_emit_reply(c, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
sim_record(struct fsesl_sim *s, const char *line)
{
	if (s->n_rec == s->cap_rec) {
		size_t nc = s->cap_rec ? s->cap_rec * 2 : 64;
		char **n = realloc(s->rec, nc * sizeof(*n));
		if (!n)
			return;
		s->rec = n;
		s->cap_rec = nc;
	}
	s->rec[s->n_rec] = strdup(line);
	if (s->rec[s->n_rec])
		s->n_rec++;
}

/* `word` is lower case. Only offsets that start with its first letter
 * (either case) pay for a comparison: a 4 KB command used to cost ~48 us
 * of strncasecmp calls, one per byte. */
static bool
sim_ci_has(const char *s, size_t n, const char *word)
{
	size_t wl = strlen(word);
	char lo = word[0], up = (char)(lo - 'a' + 'A');

	for (size_t i = 0; i + wl <= n; i++)
		if ((s[i] == lo || s[i] == up) && !strncasecmp(s + i, word, wl))
			return true;
	return false;
}

/* 0, 'u' (unload) or 'r' (reload): the words anywhere in the header block,
 * any case, turn any command into `api bgapi unload|reload
 * mod_event_socket` (docs/protocol.md §10.2). */
static int
sim_trap_kind(const struct fsesl_client_packet *pkt)
{
	bool mod = sim_ci_has(pkt->line, pkt->line_len, "mod_event_socket");
	bool un = false, re = false;

	for (size_t i = 0; i < pkt->n_headers && !mod; i++)
		mod = sim_ci_has(
		          pkt->headers[i].name, pkt->headers[i].name_len, "mod_event_socket") ||
		      sim_ci_has(
		          pkt->headers[i].value, pkt->headers[i].value_len, "mod_event_socket");
	if (!mod)
		return 0;
	un = sim_ci_has(pkt->line, pkt->line_len, "unload");
	re = sim_ci_has(pkt->line, pkt->line_len, "reload");
	for (size_t i = 0; i < pkt->n_headers; i++) {
		const struct fsesl_header *h = &pkt->headers[i];
		un = un || sim_ci_has(h->name, h->name_len, "unload") ||
		     sim_ci_has(h->value, h->value_len, "unload");
		re = re || sim_ci_has(h->name, h->name_len, "reload") ||
		     sim_ci_has(h->value, h->value_len, "reload");
	}
	return un ? 'u' : re ? 'r' : 0;
}

static void sim_unlisten(struct fsesl_sim *s);

/* The module goes away: every connection gets the shutdown notice; after
 * an unload the port refuses connections until fsesl_sim_clear_faults(). */
static void
sim_spring_trap(struct sim_conn *c, int kind)
{
	struct fsesl_sim *s = c->s;
	char uuid[37], body[64];

	s->c.unload_traps++;
	sim_uuid(uuid);
	int n = snprintf(body, sizeof(body), "+OK Job-UUID: %s\n", uuid);
	sim_api_response(c, body, (size_t)n);
	for (struct sim_conn *x = s->conns; x; x = x->next)
		if (!x->closing && !x->hard_close)
			sim_goodbye(x, SIM_NOTICE_SHUTDOWN);
	if (kind == 'u') {
		sim_unlisten(s);
		s->refused = true;
	}
}

/* Runs one command packet (docs/protocol.md §5; parse_command's order). */
static void
sim_exec(struct sim_conn *c, const struct fsesl_client_packet *pkt)
{
	struct fsesl_sim *s = c->s;
	char stack[1024];
	char *line = pkt->line_len < sizeof(stack) ? stack : malloc(pkt->line_len + 1);

	if (!line) {
		c->hard_close = true;
		return;
	}
	memcpy(line, pkt->line, pkt->line_len);
	line[pkt->line_len] = '\0';
	s->c.commands++;
	if (s->recording)
		sim_record(s, line);

	bool first = !c->first_cmd_seen;
	c->first_cmd_seen = true;
	c->auth_deadline = 0; /* only the first command is waited for (§4.4) */

	/* The replacement is an api command, so it needs auth like any other. */
	int trap = c->authed ? sim_trap_kind(pkt) : 0;
	if (trap) {
		sim_spring_trap(c, trap);
		goto out;
	}

	if (sim_prefix(line, "exit") || sim_prefix(line, "...")) {
		sim_reply(c, "+OK bye");
		sim_goodbye(c, SIM_NOTICE_BYE);
		goto out;
	}
	if (!c->authed) {
		(void)first;
		if (sim_prefix(line, "auth ")) {
			if (strcmp(line + 5, s->password)) {
				sim_auth_failed(c);
			} else {
				c->authed = true;
				c->allow_log = true;
				s->c.auth_ok++;
				sim_reply(c, "+OK accepted");
			}
		} else if (sim_prefix(line, "userauth ")) {
			sim_cmd_userauth(c, line);
		} else {
			sim_reply(c, "-ERR command not found");
		}
		goto out;
	}

	if (sim_prefix(line, "filter "))
		sim_cmd_filter(c, line);
	else if (sim_prefix(line, "sendevent"))
		sim_cmd_sendevent(c, line, pkt);
	else if (sim_prefix(line, "api "))
		sim_cmd_api(c, line);
	else if (sim_prefix(line, "bgapi "))
		sim_cmd_bgapi(c, line, pkt);
	else if (sim_prefix(line, "nolog"))
		sim_cmd_nolog(c);
	else if (sim_prefix(line, "log"))
		sim_cmd_log(c, line);
	else if (sim_prefix(line, "nolinger") || sim_prefix(line, "linger"))
		sim_reply(c, "-ERR not controlling a session");
	else if (sim_prefix(line, "divert_events"))
		sim_reply(c, "-ERR not controlling a session.");
	else if (sim_prefix(line, "sendmsg"))
		sim_cmd_sendmsg(c, line, pkt);
	else if (sim_prefix(line, "myevents "))
		sim_cmd_myevents(c, line);
	else if (sim_prefix(line, "nixevent"))
		sim_cmd_nixevent(c, line);
	else if (sim_prefix(line, "noevents"))
		sim_cmd_noevents(c);
	else if (sim_prefix(line, "event"))
		sim_cmd_event(c, line);
	else
		sim_reply(c, "-ERR command not found");
out:
	if (line != stack)
		free(line);
}

/* ------------------------------------------------------------------ */
/* Connection pump                                                      */
/* ------------------------------------------------------------------ */

static void
sim_ep_update(struct sim_conn *c)
{
	uint32_t want = 0;

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
static void
sim_conn_process(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	if (c->silent || c->f[FSESL_SIM_FAULT_STALL].on)
		return;
	while (!c->closing && !c->hard_close && c->park == PARK_NONE &&
	       sbuf_avail(&c->out) < SIM_OUT_HIGH) {
		const char *p = c->in.p + c->in.off;
		size_t n = sbuf_avail(&c->in);
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
	if (sbuf_avail(&c->in) == 0)
		c->in.off = c->in.len = 0;
	if (c->closing || c->hard_close || c->park != PARK_NONE || sbuf_avail(&c->in))
		return;
	/* Idle: log lines, then events (the real loop sends one log line then all
	 * events per pass; with everything already queued that is the same). */
	/* Like the real connection thread, which blocks in its write: nothing
	 * more is taken from the queues while the peer is not reading, so a
	 * stalled subscriber fills its queue and gets the lost-events kill. */
	if (sbuf_avail(&c->out) >= SIM_OUT_HIGH)
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
		sbuf_add(&c->out, c->logq.p + c->logq.off, sbuf_avail(&c->logq));
		c->msgs_written += c->logq_n;
		c->logq.off = c->logq.len = 0;
		c->logq_n = 0;
	}
	sim_conn_write_events(c);
}

static void
sim_conn_free(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	if (c->events_on)
		s->n_event_conns--;
	if (c->log_level >= 0)
		s->n_log_conns--;
	sim_conn_drop_queues(c);
	free(c->q);
	sbuf_free(&c->in);
	sbuf_free(&c->out);
	sbuf_free(&c->logq);
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

static void
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
static bool
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
	size_t n = sbuf_avail(&c->out);
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
		if (sbuf_avail(&c->out) == 0)
			c->out.off = c->out.len = 0;
	}
	if (sbuf_avail(&c->out) == 0 && c->closing) {
		/* Swallow unread input first: closing with unread bytes sends a RST,
		 * which can destroy the notice still in the client's buffer. */
		char sink[4096];
		while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		shutdown(c->fd, SHUT_RDWR);
		sim_conn_kill(c);
		return false;
	}
	c->want_out = sbuf_avail(&c->out) > 0 && !c->pause_deadline;
	sim_ep_update(c);
	return true;
}

static void
sim_conn_read(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	for (;;) {
		if (sbuf_avail(&c->in) >= SIM_IN_HIGH) {
			c->reading = false;
			sim_ep_update(c);
			return;
		}
		if (sbuf_reserve(&c->in, SIM_READ_CHUNK)) {
			c->hard_close = true;
			return;
		}
		bool was_empty = sbuf_avail(&c->in) == 0;
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

/* ------------------------------------------------------------------ */
/* Accept, listener                                                     */
/* ------------------------------------------------------------------ */

static int
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

static void
sim_unlisten(struct fsesl_sim *s)
{
	if (s->lfd < 0)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
	close(s->lfd);
	s->lfd = -1;
}

static void
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
		memcpy(c->f, s->tmpl, sizeof(c->f));
		struct epoll_event ee = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ee)) {
			close(fd);
			free(c);
			continue;
		}
		c->ep_events = EPOLLIN;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->c.active_conns++;
		if (s->silent_accept) {
			s->c.faults[FSESL_SIM_FAULT_SILENT_ACCEPT]++;
			c->silent = true;
			c->reading = false;
			sim_ep_update(c);
			continue;
		}
		if (s->cfg.auth_timeout_ms)
			c->auth_deadline =
			    sim_now_ns() + (uint64_t)s->cfg.auth_timeout_ms * 1000000u;
		sim_emit(c, SIM_GREETING, sizeof(SIM_GREETING) - 1);
		sim_ep_update(c);
	}
}

/* ------------------------------------------------------------------ */
/* Faults and control operations                                        */
/* ------------------------------------------------------------------ */

static struct sim_conn *
sim_conn_by_id(struct fsesl_sim *s, uint64_t id)
{
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
sim_kill_all(struct fsesl_sim *s)
{
	/* Closed by the pump of this turn: connections are only freed there, so
	 * no epoll event of this batch can point at freed memory. */
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		c->hard_close = true;
		sim_mark_dirty(c);
	}
	/* A restart: new Core-UUID, empty channel table. */
	sim_uuid(s->core_uuid);
	for (size_t i = 0; i < s->n_chans; i++) {
		free(s->chans[i].name);
		free(s->chans[i].dest);
	}
	s->n_chans = 0;
}

static int
sim_apply_fault(struct fsesl_sim *s, uint64_t conn, enum fsesl_sim_fault f, uint64_t a, uint64_t b)
{
	switch (f) {
	case FSESL_SIM_FAULT_NONE:
		return 0;
	case FSESL_SIM_FAULT_REFUSE:
		sim_unlisten(s);
		s->refused = true;
		s->c.faults[f]++;
		return 0;
	case FSESL_SIM_FAULT_SILENT_ACCEPT:
		s->silent_accept = true;
		return 0;
	case FSESL_SIM_FAULT_RUDE_REJECT:
		s->rude_reject = true;
		return 0;
	case FSESL_SIM_FAULT_NO_HEARTBEAT:
		s->no_heartbeat = true;
		return 0;
	case FSESL_SIM_FAULT_EVENT_FLOOD:
		s->flood_rate = a;
		s->flood_deadline = a ? sim_now_ns() : 0;
		s->flood_acc_ns = 0;
		return 0;
	case FSESL_SIM_FAULT_KILL_ALL:
		s->c.faults[f]++;
		sim_kill_all(s);
		return 0;
	default:
		break;
	}
	if ((unsigned)f >= FSESL_SIM_FAULT__COUNT)
		return -EINVAL;
	if (f == FSESL_SIM_FAULT_INJECT_REPLY && a > FSESL_SIM_INJECT_API_RESPONSE)
		return -EINVAL;
	struct sim_fault_state st = {.on = true, .a = a, .b = b};
	bool one_shot = f == FSESL_SIM_FAULT_CLOSE_MID_FRAME || f == FSESL_SIM_FAULT_GARBAGE ||
	                f == FSESL_SIM_FAULT_DROP_REPLY || f == FSESL_SIM_FAULT_INJECT_REPLY;
	if (conn == 0) {
		/* One-shot faults hit the connections open now, not new ones: a
		 * client must be able to reconnect (and authenticate) after them. */
		if (!one_shot)
			s->tmpl[f] = st;
		for (struct sim_conn *c = s->conns; c; c = c->next) {
			c->f[f] = st;
			c->f[f].base = f == FSESL_SIM_FAULT_CLOSE_AFTER_BYTES ? c->bytes_written
			                                                      : c->msgs_written;
			if (f == FSESL_SIM_FAULT_DROP_REPLY)
				c->drop_countdown = 0;
			if (f == FSESL_SIM_FAULT_INJECT_REPLY)
				c->inject_countdown = 0;
			sim_ep_update(c);
			sim_mark_dirty(c);
		}
		if (f == FSESL_SIM_FAULT_STALL)
			s->c.faults[f]++;
		return 0;
	}
	struct sim_conn *c = sim_conn_by_id(s, conn);
	if (!c)
		return -ENOENT;
	c->f[f] = st;
	c->f[f].base = f == FSESL_SIM_FAULT_CLOSE_AFTER_BYTES ? c->bytes_written : c->msgs_written;
	if (f == FSESL_SIM_FAULT_STALL)
		s->c.faults[f]++;
	if (f == FSESL_SIM_FAULT_DROP_REPLY)
		c->drop_countdown = 0;
	if (f == FSESL_SIM_FAULT_INJECT_REPLY)
		c->inject_countdown = 0;
	sim_ep_update(c);
	sim_mark_dirty(c);
	return 0;
}

static void
sim_clear_faults(struct fsesl_sim *s)
{
	memset(s->tmpl, 0, sizeof(s->tmpl));
	s->silent_accept = s->rude_reject = s->no_heartbeat = false;
	s->flood_rate = 0;
	s->flood_deadline = 0;
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		memset(c->f, 0, sizeof(c->f));
		c->pause_deadline = 0;
		c->reading = !c->closing;
		sim_ep_update(c);
		sim_mark_dirty(c);
	}
	if (s->refused) {
		s->refused = false;
		sim_listen(s);
	}
}

static void
sim_flood(struct fsesl_sim *s, uint64_t now)
{
	uint64_t step = 1000000000u / s->flood_rate;
	unsigned int burst = 0;

	if (!step)
		step = 1;
	while (s->flood_deadline <= now && burst++ < 100000) {
		s->flood_deadline += step;
		s->c.faults[FSESL_SIM_FAULT_EVENT_FLOOD]++;
		if (!sim_anyone_wants(s, EV_CUSTOM)) {
			s->seq++;
			continue;
		}
		struct sim_event *ev =
		    sim_event_std(s, EV_CUSTOM, "sim::flood", "fsesl_sim.c", "sim_flood", 1);
		if (!ev)
			break;
		sim_event_addf(ev, "Flood-Seq", "%llu",
		    (unsigned long long)s->c.faults[FSESL_SIM_FAULT_EVENT_FLOOD]);
		sim_dispatch(s, ev);
	}
	if (s->flood_deadline <= now) /* fell behind: do not try to catch up */
		s->flood_deadline = now + step;
}

static int
sim_fire_user_event(struct fsesl_sim *s, const struct sim_op *op)
{
	int type = op->u.fire.name ? sim_ev_lookup(op->u.fire.name) : -1;

	if (type < 0 || type == EV_ALL)
		return -EINVAL;
	struct sim_event *ev =
	    sim_event_std(s, type, op->u.fire.subclass, "fsesl_sim.c", "fsesl_sim_fire_event", 1);
	if (!ev)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < op->u.fire.n_kv; i += 2)
		sim_event_add(ev, op->u.fire.kv[i], op->u.fire.kv[i + 1]);
	if (op->u.fire.body)
		sim_event_set_body(ev, op->u.fire.body, strlen(op->u.fire.body));
	sim_dispatch(s, ev);
	return 0;
}

static void
sim_run_op(struct fsesl_sim *s, struct sim_op *op)
{
	op->rc = 0;
	switch (op->kind) {
	case OP_LOAD:
		s->load = op->u.load;
		s->load_set = true;
		break;
	case OP_HB_INTERVAL:
		s->hb_ms = op->u.ms;
		s->hb_deadline = s->hb_ms ? sim_now_ns() + (uint64_t)s->hb_ms * 1000000u : 0;
		break;
	case OP_FIRE_HB:
		sim_heartbeat(s);
		break;
	case OP_FIRE_EVENT:
		op->rc = sim_fire_user_event(s, op);
		break;
	case OP_FAULT:
		op->rc = sim_apply_fault(
		    s, op->u.fault.conn, op->u.fault.f, op->u.fault.a, op->u.fault.b);
		break;
	case OP_CLEAR_FAULTS:
		sim_clear_faults(s);
		break;
	case OP_COUNTERS:
		*op->u.counters = s->c;
		break;
	case OP_RECORD:
		s->recording = op->u.on;
		break;
	case OP_RECORDED:
		*op->u.rec.lines = s->rec;
		op->u.rec.n = s->n_rec;
		s->rec = NULL;
		s->n_rec = s->cap_rec = 0;
		break;
	case OP_CONN_IDS: {
		size_t n = 0;
		for (struct sim_conn *c = s->conns; c; c = c->next)
			if (n < op->u.ids.max)
				op->u.ids.ids[n++] = c->id;
		op->u.ids.n = n;
		break;
	}
	case OP_STOP:
		s->running = false;
		break;
	}
}

static void
sim_drain_ops(struct fsesl_sim *s)
{
	uint64_t v;
	ssize_t r = read(s->efd, &v, sizeof(v));
	(void)r;

	pthread_mutex_lock(&s->mu);
	struct sim_op *list = s->ops;
	s->ops = s->ops_tail = NULL;
	pthread_mutex_unlock(&s->mu);
	while (list) {
		struct sim_op *next = list->next;
		sim_run_op(s, list);
		pthread_mutex_lock(&s->mu);
		list->done = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		list = next;
	}
}

/* Runs op on the server's thread and waits for it. */
static int
sim_call(fsesl_sim *s, struct sim_op *op)
{
	uint64_t one = 1;

	op->done = false;
	op->next = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->ops_tail)
		s->ops_tail->next = op;
	else
		s->ops = op;
	s->ops_tail = op;
	ssize_t w = write(s->efd, &one, sizeof(one));
	(void)w;
	while (!op->done)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return op->rc;
}

/* ------------------------------------------------------------------ */
/* The loop                                                             */
/* ------------------------------------------------------------------ */

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
	/* A flood nobody subscribed to only counts sequence numbers: do it in
	 * 10 ms batches rather than waking at the event rate for nothing. */
	if (s->flood_deadline && !sim_anyone_wants(s, EV_CUSTOM))
		SIM_MIN(s->flood_deadline + 10000000u);
	else
		SIM_MIN(s->flood_deadline);
	for (size_t i = 0; i < s->n_jobs; i++)
		SIM_MIN(s->jobs[i].deadline);
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		SIM_MIN(c->auth_deadline);
		if (c->closing)
			SIM_MIN(c->close_deadline);
		if (s->cfg.event_poll_ms && (c->q_len || c->logq_n))
			SIM_MIN(c->poll_at);
		if (c->park != PARK_NONE)
			SIM_MIN(c->park_deadline);
		if (sbuf_avail(&c->out))
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
	if (s->flood_deadline && s->flood_rate && now >= s->flood_deadline)
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
		if (c->park != PARK_NONE && now >= c->park_deadline) {
			enum sim_park k = c->park;
			c->park = PARK_NONE;
			c->woke = true;
			if (k == PARK_MSLEEP) {
				sim_api_response(c, "+OK", 3);
				sim_fire_api_event(
				    s, c->msleep_cmd ? c->msleep_cmd : "msleep", c->msleep_arg);
			} else {
				c->delay_done = true;
			}
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

static void *
sim_thread(void *arg)
{
	struct fsesl_sim *s = arg;
	struct epoll_event evs[256];
	bool no_pwait2 = false;

	/* The default 50 µs timer slack would double a 50 µs api_cost_us. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

	while (s->running) {
		uint64_t d = sim_min_deadline(s);
		uint64_t now = sim_now_ns();
		int n;
		if (s->dirty)
			d = now;
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
				continue;
			}
		} else {
			n = epoll_wait(
			    s->ep, evs, 256, d <= now ? 0 : (int)((d - now + 999999u) / 1000000u));
		}
		if (n < 0)
			n = 0;
		for (int i = 0; i < n; i++)
			if (evs[i].data.ptr == &s->efd)
				sim_drain_ops(s);
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
			if (!c->reading && !c->closing && sbuf_avail(&c->in) < SIM_IN_HIGH &&
			    !c->silent) {
				c->reading = true;
				sim_ep_update(c);
			}
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Public API                                                           */
/* ------------------------------------------------------------------ */

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
	sbuf_free(&s->scratch);
	free(s->listen_addr);
	free(s->password);
	free(s->hostname);
	free((char *)s->cfg.ipv4);
	free((char *)s->cfg.ipv6);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
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
	s->running = true;
	if (pthread_create(&s->thr, NULL, sim_thread, s)) {
		s->running = false;
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

	if (s)
		sim_call(s, &op);
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
	return sim_call(s, &op);
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
