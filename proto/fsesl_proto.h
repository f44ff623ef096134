/*
 * fsesl_proto.h - the FreeSWITCH Event Socket protocol, without I/O.
 *
 * Everything here is pure: bytes in, messages out; commands in, bytes out.
 * No sockets, no threads, no global state, no logging. Every function is
 * safe to call from any thread on distinct arguments.
 *
 * Reference: docs/protocol.md (§2 framing, §3 reply matching, §5-§7
 * commands and events, §10 security) and docs/proto.md.
 *
 * Return convention of the incremental parsers (picohttpparser's):
 *   > 0                    bytes consumed (one whole message)
 *   FSESL_PARSE_PARTIAL    (-2) need more bytes; nothing was consumed
 *   FSESL_PARSE_ERROR      (-1) malformed; *err says why
 * Other functions return 0 on success or a negative FSESL_PERR_* code.
 */
#ifndef FSESL_PROTO_H
#define FSESL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FSESL_BUILDING)
#define FSESL_API __attribute__((visibility("default")))
#else
#define FSESL_API
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

enum fsesl_parse_status {
	FSESL_PARSE_ERROR = -1,
	FSESL_PARSE_PARTIAL = -2,
};

/* Protocol error codes: negative, in their own range so that they never
 * collide with -errno values or with the engine's FSESL_E* codes. */
enum fsesl_proto_error {
	FSESL_PERR_NONE = 0,
	FSESL_PERR_HEADER_TOO_LARGE = -2001, /* header block over the limit */
	FSESL_PERR_TOO_MANY_HEADERS = -2002,
	FSESL_PERR_BAD_HEADER_LINE = -2003, /* line without ':' or empty name */
	FSESL_PERR_BAD_CONTENT_LENGTH = -2004, /* not 1+ decimal digits, or overflow */
	FSESL_PERR_BODY_TOO_LARGE = -2005,
	FSESL_PERR_NUL_BYTE = -2006, /* NUL inside a header block */
	FSESL_PERR_BAD_ESCAPE = -2007, /* '%' not followed by two hex digits */
	FSESL_PERR_BAD_JSON = -2008,
	FSESL_PERR_BAD_XML = -2009,
	FSESL_PERR_NO_EVENT_NAME = -2010,
	FSESL_PERR_BAD_NUMBER = -2011, /* strict numeric field parse failed */
	FSESL_PERR_MISSING_FIELD = -2012, /* a required header is absent */
	FSESL_PERR_NOMEM = -2013,
	FSESL_PERR_INJECTION = -2014, /* CR, LF or NUL in a one-line value */
	FSESL_PERR_UNLOAD_TRAP = -2015, /* unload/reload + mod_event_socket */
	FSESL_PERR_TOO_LONG = -2016, /* a value over its documented limit */
	FSESL_PERR_INVALID = -2017, /* bad argument (NULL, empty, ...) */
	FSESL_PERR_BUFFER_TOO_SMALL = -2018, /* output buffer too small */
	FSESL_PERR_BAD_URL = -2019, /* see fsesl_url_parse's errbuf */
	FSESL_PERR_BAD_COMMAND = -2020, /* a client command packet is malformed */
};

/* Static text for any FSESL_PERR_* code; never NULL. */
FSESL_API const char *fsesl_proto_strerror(int err);

/* ------------------------------------------------------------------ */
/* Limits                                                               */
/* ------------------------------------------------------------------ */

/* Every envelope FreeSWITCH writes in inbound mode is under 1 KiB
 * (docs/protocol.md §2.2); 64 KiB leaves room and still bounds memory. */
#define FSESL_DEFAULT_MAX_HEADER_BYTES (64u * 1024u)
/* Envelopes carry at most 8 headers; this is the fixed array size in
 * struct fsesl_msg, so the frame reader never allocates. */
#define FSESL_MSG_MAX_HEADERS 32u
/* FreeSWITCH's own cap on bodies since 1.11.2; configurable upwards for
 * very large `api show channels` outputs. */
#define FSESL_DEFAULT_MAX_BODY_BYTES (16u * 1024u * 1024u)
/* Channel events with every variable carry a few hundred headers. */
#define FSESL_DEFAULT_MAX_EVENT_HEADERS 4096u
/* The server copies a client Job-UUID into a 512-byte reply twice; more
 * than 235 bytes desynchronises the stream (docs/protocol.md §2.6). */
#define FSESL_MAX_JOB_UUID_LEN 235u
#define FSESL_DEFAULT_PORT 8021u

struct fsesl_limits {
	size_t max_header_bytes; /* envelope header block, terminator included */
	size_t max_headers; /* <= FSESL_MSG_MAX_HEADERS */
	size_t max_body_bytes; /* Content-Length cap */
	size_t max_event_headers;
};

/* Fills *lim with the FSESL_DEFAULT_* values. */
FSESL_API void fsesl_limits_init(struct fsesl_limits *lim);

/* ------------------------------------------------------------------ */
/* Frame reader (server -> client)                                      */
/* ------------------------------------------------------------------ */

/* A header as a view into the caller's buffer; not NUL-terminated. */
struct fsesl_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

enum fsesl_msg_type {
	FSESL_MSG_UNKNOWN = 0, /* kept, not fatal: the caller decides */
	FSESL_MSG_AUTH_REQUEST,
	FSESL_MSG_COMMAND_REPLY,
	FSESL_MSG_API_RESPONSE,
	FSESL_MSG_EVENT_PLAIN,
	FSESL_MSG_EVENT_JSON,
	FSESL_MSG_EVENT_XML,
	FSESL_MSG_LOG_DATA,
	FSESL_MSG_DISCONNECT_NOTICE,
	FSESL_MSG_RUDE_REJECTION,
};

enum fsesl_reply_kind {
	FSESL_REPLY_NONE = 0, /* no Reply-Text header */
	FSESL_REPLY_OK, /* Reply-Text starts with "+OK" */
	FSESL_REPLY_ERR, /* Reply-Text starts with "-ERR" */
	FSESL_REPLY_OTHER, /* Reply-Text present, neither prefix */
};

/*
 * One parsed message. Every pointer points into the buffer given to
 * fsesl_msg_parse() and is valid as long as those bytes are.
 */
struct fsesl_msg {
	enum fsesl_msg_type type;
	size_t n_headers;
	struct fsesl_header headers[FSESL_MSG_MAX_HEADERS]; /* wire order, raw */
	const char *content_type; /* NULL if absent */
	size_t content_type_len;
	const char *body; /* NULL when there is no Content-Length */
	size_t body_len;
	size_t header_bytes; /* header block incl. its terminating blank line */
	enum fsesl_reply_kind reply;
	/* Reply-Text after "+OK " / "-ERR " (or the whole value for OTHER);
	 * the full raw value is in headers[]. */
	const char *reply_text;
	size_t reply_text_len;
	bool linger; /* disconnect notice with Content-Disposition: linger */
};

/*
 * Parses the next message from buf[0..len).
 *
 * last_len: how many of these bytes were already seen by a previous call
 * that returned FSESL_PARSE_PARTIAL (0 if none); the terminator search
 * resumes near there so a byte-at-a-time peer cannot make parsing
 * quadratic. lim may be NULL for the defaults.
 * On FSESL_PARSE_PARTIAL, msg->header_bytes is 0 while the header block is
 * incomplete; once it is complete (only the body is missing) it is set,
 * with msg->body_len, and the next call should pass last_len = 0:
 *   last_len = (n == FSESL_PARSE_PARTIAL && !msg.header_bytes) ? len : 0;
 * (Blocks up to 2 KiB, i.e. every real envelope, are rescanned anyway, so
 * passing the previous len in both cases is safe for them.)
 *
 * Line ends are "\n"; "\r\n" is accepted too (one trailing '\r' is removed
 * from each line). Envelope values are never URL-decoded. Leading empty
 * lines before a message are skipped (they count as consumed bytes).
 *
 * Returns bytes consumed, FSESL_PARSE_PARTIAL or FSESL_PARSE_ERROR (with
 * *err set; err may be NULL). Never reads buf[len] or beyond.
 */
FSESL_API ssize_t fsesl_msg_parse(const char *buf, size_t len, size_t last_len,
    const struct fsesl_limits *lim, struct fsesl_msg *msg, int *err);

/* First header named `name` (ASCII case-insensitive), or NULL. */
FSESL_API const struct fsesl_header *fsesl_msg_header(
    const struct fsesl_msg *msg, const char *name);

/* Content-Type string -> type (exact, case-insensitive). */
FSESL_API enum fsesl_msg_type fsesl_msg_type_of(const char *ct, size_t len);
FSESL_API const char *fsesl_msg_type_name(enum fsesl_msg_type type);

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

enum fsesl_event_format {
	FSESL_EVFMT_PLAIN = 0,
	FSESL_EVFMT_JSON,
	FSESL_EVFMT_XML,
};

/*
 * A decoded event: one allocation holding the struct, the header array and
 * every string (all NUL-terminated, so they are usable as C strings; the
 * _len fields hold the real length, as values may contain NUL after %00).
 * Immutable after parse; free with fsesl_event_free().
 */
struct fsesl_event {
	enum fsesl_event_format format;
	size_t n_headers;
	const struct fsesl_header *headers; /* decoded, wire order, dups kept */
	const char *body; /* "" when there is none */
	size_t body_len;
	/* Cheap access to the common fields (NULL when absent). */
	const char *name; /* Event-Name */
	const char *subclass; /* Event-Subclass */
	const char *job_uuid; /* Job-UUID */
	const char *core_uuid; /* Core-UUID */
	bool has_sequence;
	uint64_t sequence; /* Event-Sequence, strictly parsed */
	bool forged; /* carries a Command header (sendevent, protocol.md §10.3) */
};

/*
 * Decodes an event payload (the body of a text/event-* message).
 * Plain: inner headers %HH-decoded, body after the first blank line.
 * JSON: a strict reader of a flat object (docs/proto.md): strings
 *       decoded, arrays of strings joined back as "ARRAY::a|:b", "_body"
 *       as the body (its Content-Length member kept as a header).
 * XML:  <headers> children, element text %HH-decoded after entity decoding,
 *       <body> entity-decoded (as an XML parser returns it).
 * Errors: FSESL_PERR_BAD_ESCAPE, _BAD_JSON, _BAD_XML, _NO_EVENT_NAME,
 * _TOO_MANY_HEADERS, _NOMEM. lim may be NULL.
 */
FSESL_API int fsesl_event_parse(enum fsesl_event_format fmt, const char *payload, size_t len,
    const struct fsesl_limits *lim, struct fsesl_event **out);
FSESL_API void fsesl_event_free(struct fsesl_event *ev);
/* First header with that name (case-insensitive), or NULL. */
FSESL_API const char *fsesl_event_get(const struct fsesl_event *ev, const char *name);

/* %HH decoding (either case), in place allowed (dst == src). Returns the
 * decoded length or FSESL_PERR_BAD_ESCAPE. dst needs len bytes. */
FSESL_API ssize_t fsesl_url_decode(const char *src, size_t len, char *dst);
/* FreeSWITCH's encoding (docs/protocol.md §7.2, including the quirk that
 * "%HH" with upper-case hex is passed through). Returns bytes written or
 * FSESL_PERR_BUFFER_TOO_SMALL. dst needs up to 3*len bytes. */
FSESL_API ssize_t fsesl_url_encode(const char *src, size_t len, char *dst, size_t cap);

/* ------------------------------------------------------------------ */
/* HEARTBEAT                                                            */
/* ------------------------------------------------------------------ */

struct fsesl_heartbeat {
	double idle_cpu; /* Idle-CPU, percent */
	uint64_t session_count; /* Session-Count */
	uint64_t max_sessions; /* Max-Sessions */
	uint64_t session_per_sec; /* Session-Per-Sec (remaining budget) */
	uint64_t session_per_sec_last;
	uint64_t session_per_sec_max;
	uint64_t session_per_sec_fivemin;
	uint64_t session_since_startup;
	uint64_t session_peak_max;
	uint64_t session_peak_fivemin;
	uint64_t uptime_msec; /* Uptime-msec */
	uint64_t event_timestamp_us; /* Event-Date-Timestamp */
	char hostname[256]; /* FreeSWITCH-Hostname, "" if absent */
};

/*
 * Extracts the HEARTBEAT fields from a decoded event. Idle-CPU,
 * Session-Count and Max-Sessions are required; the others are parsed when
 * present. Numbers are strict: all digits (Idle-CPU: digits, one '.', digits),
 * no sign, no overflow. A bad number is FSESL_PERR_BAD_NUMBER, a missing
 * required field FSESL_PERR_MISSING_FIELD; never a silent 0.
 * A forged heartbeat (ev->forged) is FSESL_PERR_INVALID.
 */
FSESL_API int fsesl_heartbeat_parse(const struct fsesl_event *ev, struct fsesl_heartbeat *hb);

/* Strict unsigned decimal: digits only, no sign, no overflow. 0 or
 * FSESL_PERR_BAD_NUMBER. */
FSESL_API int fsesl_parse_u64(const char *s, size_t len, uint64_t *out);

/* ------------------------------------------------------------------ */
/* Command encoding (client -> server)                                  */
/* ------------------------------------------------------------------ */

/*
 * Every encoder writes one complete command packet (LF line ends, ending
 * in "\n\n", then the body if any) into dst[0..cap) and returns its length,
 * or a negative FSESL_PERR_*:
 *   FSESL_PERR_INJECTION     a one-line value contains CR, LF or NUL, or a
 *                            header name contains ':' or whitespace
 *   FSESL_PERR_UNLOAD_TRAP   the packet would contain "unload" or "reload"
 *                            together with "mod_event_socket" (any case)
 *                            and FSESL_ENC_ALLOW_UNLOAD was not given
 *   FSESL_PERR_TOO_LONG      Job-UUID over FSESL_MAX_JOB_UUID_LEN
 *   FSESL_PERR_INVALID       NULL or empty where a value is required
 *   FSESL_PERR_BUFFER_TOO_SMALL  cap too small (nothing useful written)
 * fsesl_cmd_size() gives the exact size needed for a fsesl_cmd.
 */
enum fsesl_enc_flags {
	FSESL_ENC_ALLOW_UNLOAD = 1u << 0,
};

/* A generic command: a line, optional headers, optional body. The engine
 * computes Content-Length itself; a caller-supplied Content-Length header
 * is refused (FSESL_PERR_INVALID). */
struct fsesl_cmd {
	const char *line; /* e.g. "sendevent CUSTOM" (no "\n") */
	const struct fsesl_header *headers;
	size_t n_headers;
	const char *body; /* may contain anything; NULL for none */
	size_t body_len;
	unsigned flags; /* fsesl_enc_flags */
};

FSESL_API ssize_t fsesl_cmd_size(const struct fsesl_cmd *cmd);
FSESL_API ssize_t fsesl_encode_cmd(char *dst, size_t cap, const struct fsesl_cmd *cmd);

FSESL_API ssize_t fsesl_encode_auth(char *dst, size_t cap, const char *password);
/* "userauth user@domain:password" */
FSESL_API ssize_t fsesl_encode_userauth(
    char *dst, size_t cap, const char *user, const char *password);
/* "api <cmd>" where cmd is the command and its arguments, one line. */
FSESL_API ssize_t fsesl_encode_api(char *dst, size_t cap, const char *cmd, unsigned flags);
/* "bgapi <cmd>" with "Job-UUID: <job_uuid>" (job_uuid may be NULL). */
FSESL_API ssize_t fsesl_encode_bgapi(
    char *dst, size_t cap, const char *cmd, const char *job_uuid, unsigned flags);
/* "event <fmt> NAME NAME ... [CUSTOM sub ...]": names[] in order; names
 * that start with "CUSTOM " are split and their subclasses moved after a
 * single CUSTOM token at the end. */
FSESL_API ssize_t fsesl_encode_event(
    char *dst, size_t cap, enum fsesl_event_format fmt, const char *const *names, size_t n_names);
FSESL_API ssize_t fsesl_encode_nixevent(
    char *dst, size_t cap, const char *const *names, size_t n_names);
FSESL_API ssize_t fsesl_encode_noevents(char *dst, size_t cap);
/* "filter <header> <value>" / "filter delete <header> [<value>]" */
FSESL_API ssize_t fsesl_encode_filter(char *dst, size_t cap, const char *header, const char *value);
FSESL_API ssize_t fsesl_encode_filter_delete(
    char *dst, size_t cap, const char *header, const char *value /* may be NULL */);
/* "sendevent NAME" + headers + body */
FSESL_API ssize_t fsesl_encode_sendevent(char *dst, size_t cap, const char *name,
    const struct fsesl_header *headers, size_t n_headers, const char *body, size_t body_len,
    unsigned flags);
/* "sendmsg [uuid]" + headers + body */
FSESL_API ssize_t fsesl_encode_sendmsg(char *dst, size_t cap, const char *uuid,
    const struct fsesl_header *headers, size_t n_headers, const char *body, size_t body_len,
    unsigned flags);
/* "log <level>" (level NULL: bare "log") and "nolog" */
FSESL_API ssize_t fsesl_encode_log(char *dst, size_t cap, const char *level);
FSESL_API ssize_t fsesl_encode_nolog(char *dst, size_t cap);
FSESL_API ssize_t fsesl_encode_exit(char *dst, size_t cap);

/* Checks one value that must fit on one line: 0 or FSESL_PERR_INJECTION
 * (FSESL_PERR_INVALID for s == NULL with len > 0). */
FSESL_API int fsesl_check_line(const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Client command packets (server side: the simulator, fuzzers)         */
/* ------------------------------------------------------------------ */

/*
 * Parses one client->server packet the way mod_event_socket reads it
 * (docs/protocol.md §2.4): leading CR/LF skipped, block ends at two LFs
 * (CR ignored in the count), first line is the command, later lines split
 * at the first ':' with spaces (not tabs) skipped, lines without ':' and
 * empty values dropped, a Content-Length header (any case) reads that many
 * body bytes. Same return convention as fsesl_msg_parse(). Views point into
 * buf; n_headers is capped by FSESL_MSG_MAX_HEADERS (extra ones are dropped
 * and counted in dropped_headers).
 * Server quirks kept: a line ends at the first CR anywhere later in the
 * block (§2.3 mixed CRLF), so `line` may contain LF ("api version\n\r\n"
 * gives "api version\n"; trim it as the server does); a NUL hides the rest
 * of the block; Content-Length uses atoi (garbage = 0 = no body). Past
 * lim->max_header_bytes / max_body_bytes it is an error (HEADER_TOO_LARGE,
 * BODY_TOO_LARGE) where the server would force-end or close.
 */
struct fsesl_client_packet {
	const char *line; /* the command line, without its line end */
	size_t line_len;
	size_t n_headers;
	struct fsesl_header headers[FSESL_MSG_MAX_HEADERS];
	size_t dropped_headers;
	const char *body;
	size_t body_len;
	size_t skipped; /* leading CR/LF bytes skipped (a "kick") */
};
FSESL_API ssize_t fsesl_client_packet_parse(const char *buf, size_t len,
    const struct fsesl_limits *lim, struct fsesl_client_packet *pkt, int *err);

/* ------------------------------------------------------------------ */
/* Event serialisation (server side: the simulator, round-trip tests)   */
/* ------------------------------------------------------------------ */

/* Writes an event payload in FreeSWITCH's layout for that format
 * (docs/protocol.md §7.2-7.4). headers are raw (not encoded) values; a value
 * beginning "ARRAY::" is a multi-value header. Returns the payload length
 * or FSESL_PERR_BUFFER_TOO_SMALL (FSESL_PERR_INVALID for NULL arrays with
 * non-zero counts or an unknown format); fsesl_event_serialize_size() gives
 * an upper bound. body == NULL means "no body", a non-NULL empty body is an
 * empty body (only JSON shows the difference). A LAST header named
 * Content-Length whose value is body_len in decimal is the body's own line
 * (decoders list it): it is not repeated and means a body is present. So a
 * decoded event round-trips as (headers, n, body_len ? body : NULL,
 * body_len). See docs/proto-encoding.md. */
FSESL_API size_t fsesl_event_serialize_size(enum fsesl_event_format fmt,
    const struct fsesl_header *headers, size_t n_headers, size_t body_len);
FSESL_API ssize_t fsesl_event_serialize(char *dst, size_t cap, enum fsesl_event_format fmt,
    const struct fsesl_header *headers, size_t n_headers, const char *body, size_t body_len);

/* ------------------------------------------------------------------ */
/* URLs                                                                 */
/* ------------------------------------------------------------------ */

#define FSESL_URL_MAX_EVENTS 64u

/*
 * fs://[user]:password@host[:port][?EV1,EV2]
 * User and password are percent-decoded; host is IPv4, [IPv6] (brackets
 * removed) or a name; port 1-65535, default 8021; events split on ','.
 * All strings are NUL-terminated copies inside the struct; wipe it with
 * fsesl_url_clear() when done (it zeroes the password). The scheme is
 * matched case-insensitively; the credentials end at the last '@' and the
 * user at their first ':', so a raw password may hold '@', ':' and '?'.
 * A password is required. On failure the struct is left all zero.
 */
struct fsesl_url {
	char user[256];
	char password[256];
	char host[256];
	uint16_t port;
	bool ipv6;
	size_t n_events;
	char events[FSESL_URL_MAX_EVENTS][128];
};

/* 0, or FSESL_PERR_BAD_URL with a specific reason written to errbuf (which
 * never contains the password). errbuf may be NULL. The host follows
 * fsesl_host_check() (an IPv6 address in brackets). */
FSESL_API int fsesl_url_parse(const char *url, struct fsesl_url *out, char *errbuf, size_t errlen);

/*
 * A server's host, one rule for fs:// URLs and fsesl_server_get_by(): an
 * IPv4 address (dotted quad), an IPv6 address, bare or in brackets, or a
 * DNS name: labels of 1 to 63 letters, digits, '-' or '_' (no '-' first or
 * last), joined by single dots, 253 bytes at most plus one trailing dot.
 * Digits and dots alone must make an IPv4 address (a resolver would take
 * "10.0.0" for 10.0.0.0). host[0..len) need not be NUL-terminated.
 * Returns 0 and, when out is not NULL, the host without brackets in
 * out[cap] (NUL-terminated); or FSESL_PERR_INVALID with one sentence in
 * errbuf (may be NULL), which may quote the host.
 */
FSESL_API int fsesl_host_check(
    const char *host, size_t len, char *out, size_t cap, char *errbuf, size_t errlen);
FSESL_API void fsesl_url_clear(struct fsesl_url *u);

#ifdef __cplusplus
}
#endif
#endif /* FSESL_PROTO_H */
