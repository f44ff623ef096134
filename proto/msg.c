/*
 * msg.c - the server -> client frame reader.
 *
 * Design: picohttpparser's shape. The caller owns the buffer and passes all
 * of it on every call; we return views into it and never allocate, so a
 * partial message costs nothing to abandon. One pass over the header block
 * splits lines with memchr (the server writes short LF-only lines, and
 * memchr is the fastest newline finder libc has), recognises the four
 * envelope headers we act on by length first, and validates Content-Length
 * before anything could be sized from it (docs/protocol.md §10.4).
 *
 * Resumption: a peer feeding a large header block a byte at a time would
 * make "rescan from the start" quadratic. Once the previously seen part of
 * the block exceeds RESCAN_WINDOW we only look for the terminator in the
 * new bytes (backing up 3 so a split "\n\r\n" is found) and return PARTIAL
 * without reparsing. Below the window a full rescan is cheaper than being
 * clever, and it keeps a caller that passes last_len while only the body is
 * missing (the block was already complete) correct for every real envelope.
 */
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "fsesl_proto.h"

/* Every envelope FreeSWITCH writes is under 1 KiB (docs/protocol.md §2.2). */
#define RESCAN_WINDOW 2048u

static inline unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* a (len bytes) equals the lower-case literal b, ignoring ASCII case. */
static bool
ieq(const char *a, size_t len, const char *b)
{
	for (size_t i = 0; i < len; i++) {
		if (lower((unsigned char)a[i]) != (unsigned char)b[i] || b[i] == '\0')
			return false;
	}
	return b[len] == '\0';
}

/*
 * First byte in [p, e) equal to a, b or c, or e. SSE2 (baseline on
 * x86-64) checks 16 bytes per step with unaligned loads that stay inside
 * [p, e); the tail, and other CPUs, use the byte loop.
 */
static inline const char *
scan3(const char *p, const char *e, char a, char b, char c)
{
#ifdef __SSE2__
	const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b), vc = _mm_set1_epi8(c);

	while (e - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i hit =
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)),
		        _mm_cmpeq_epi8(x, vc));
		unsigned m = (unsigned)_mm_movemask_epi8(hit);

		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (p < e && *p != a && *p != b && *p != c)
		p++;
	return p;
}

/* The server always writes one spelling (docs/protocol.md §2.2); a fixed-size
 * memcmp of it compiles to a couple of word compares, and the
 * case-insensitive loop only runs when that misses. */
#define NAME_IS(a, len, canon, lowered)                                                            \
	(memcmp((a), (canon), sizeof(canon) - 1) == 0 || ieq((a), (len), (lowered)))

void
fsesl_limits_init(struct fsesl_limits *lim)
{
	lim->max_header_bytes = FSESL_DEFAULT_MAX_HEADER_BYTES;
	lim->max_headers = FSESL_MSG_MAX_HEADERS;
	lim->max_body_bytes = FSESL_DEFAULT_MAX_BODY_BYTES;
	lim->max_event_headers = FSESL_DEFAULT_MAX_EVENT_HEADERS;
}

const char *
fsesl_proto_strerror(int err)
{
	switch (err) {
	case FSESL_PERR_NONE:
		return "no error";
	case FSESL_PERR_HEADER_TOO_LARGE:
		return "header block over the size limit";
	case FSESL_PERR_TOO_MANY_HEADERS:
		return "too many headers";
	case FSESL_PERR_BAD_HEADER_LINE:
		return "header line without ':' or with an empty name";
	case FSESL_PERR_BAD_CONTENT_LENGTH:
		return "Content-Length is not a plain decimal number";
	case FSESL_PERR_BODY_TOO_LARGE:
		return "Content-Length over the body size limit";
	case FSESL_PERR_NUL_BYTE:
		return "NUL byte in a header block";
	case FSESL_PERR_BAD_ESCAPE:
		return "'%' not followed by two hex digits";
	case FSESL_PERR_BAD_JSON:
		return "malformed JSON event";
	case FSESL_PERR_BAD_XML:
		return "malformed XML event";
	case FSESL_PERR_NO_EVENT_NAME:
		return "event without Event-Name";
	case FSESL_PERR_BAD_NUMBER:
		return "malformed number";
	case FSESL_PERR_MISSING_FIELD:
		return "required header missing";
	case FSESL_PERR_NOMEM:
		return "out of memory";
	case FSESL_PERR_INJECTION:
		return "CR, LF or NUL in a one-line value";
	case FSESL_PERR_UNLOAD_TRAP:
		return "command would unload mod_event_socket";
	case FSESL_PERR_TOO_LONG:
		return "value over its length limit";
	case FSESL_PERR_INVALID:
		return "invalid argument";
	case FSESL_PERR_BUFFER_TOO_SMALL:
		return "output buffer too small";
	case FSESL_PERR_BAD_URL:
		return "malformed fs:// URL";
	case FSESL_PERR_BAD_COMMAND:
		return "malformed client command packet";
	default:
		return "unknown protocol error";
	}
}

static const char *const type_names[] = {
    [FSESL_MSG_UNKNOWN] = "unknown",
    [FSESL_MSG_AUTH_REQUEST] = "auth/request",
    [FSESL_MSG_COMMAND_REPLY] = "command/reply",
    [FSESL_MSG_API_RESPONSE] = "api/response",
    [FSESL_MSG_EVENT_PLAIN] = "text/event-plain",
    [FSESL_MSG_EVENT_JSON] = "text/event-json",
    [FSESL_MSG_EVENT_XML] = "text/event-xml",
    [FSESL_MSG_LOG_DATA] = "log/data",
    [FSESL_MSG_DISCONNECT_NOTICE] = "text/disconnect-notice",
    [FSESL_MSG_RUDE_REJECTION] = "text/rude-rejection",
};

const char *
fsesl_msg_type_name(enum fsesl_msg_type type)
{
	if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
		return "unknown";
	return type_names[type];
}

enum fsesl_msg_type
fsesl_msg_type_of(const char *ct, size_t len)
{
#define CT(lit, type)                                                                              \
	do {                                                                                       \
		if (NAME_IS(ct, len, lit, lit))                                                    \
			return type;                                                               \
	} while (0)

	if (ct == NULL)
		return FSESL_MSG_UNKNOWN;
	/* Switch on length first: one compare per call on the hot path. */
	switch (len) {
	case 8:
		CT("log/data", FSESL_MSG_LOG_DATA);
		break;
	case 12:
		CT("api/response", FSESL_MSG_API_RESPONSE);
		CT("auth/request", FSESL_MSG_AUTH_REQUEST);
		break;
	case 13:
		CT("command/reply", FSESL_MSG_COMMAND_REPLY);
		break;
	case 14:
		CT("text/event-xml", FSESL_MSG_EVENT_XML);
		break;
	case 15:
		CT("text/event-json", FSESL_MSG_EVENT_JSON);
		break;
	case 16:
		CT("text/event-plain", FSESL_MSG_EVENT_PLAIN);
		break;
	case 19:
		CT("text/rude-rejection", FSESL_MSG_RUDE_REJECTION);
		break;
	case 22:
		CT("text/disconnect-notice", FSESL_MSG_DISCONNECT_NOTICE);
		break;
	default:
		break;
	}
	return FSESL_MSG_UNKNOWN;
#undef CT
}

const struct fsesl_header *
fsesl_msg_header(const struct fsesl_msg *msg, const char *name)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < msg->n_headers; i++) {
		const struct fsesl_header *h = &msg->headers[i];

		if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0)
			return h;
	}
	return NULL;
}

/* Index just past the first "\n\n" or "\n\r\n" at or after from, or 0. */
static size_t
find_block_end(const char *buf, size_t from, size_t len)
{
	while (from < len) {
		const char *p = memchr(buf + from, '\n', len - from);
		size_t i;

		if (p == NULL)
			return 0;
		i = (size_t)(p - buf);
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
		from = i + 1;
	}
	return 0;
}

/* Digits only, no sign, no overflow; then the configured cap. */
static int
parse_content_length(const char *s, size_t len, size_t max, size_t *out)
{
	size_t v = 0;

	if (len == 0)
		return FSESL_PERR_BAD_CONTENT_LENGTH;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return FSESL_PERR_BAD_CONTENT_LENGTH;
		if (v > (SIZE_MAX - d) / 10)
			return FSESL_PERR_BAD_CONTENT_LENGTH;
		v = v * 10 + d;
	}
	if (v > max)
		return FSESL_PERR_BODY_TOO_LARGE;
	*out = v;
	return 0;
}

static void
set_reply(struct fsesl_msg *msg, const char *v, size_t n)
{
	if (n >= 3 && memcmp(v, "+OK", 3) == 0) {
		msg->reply = FSESL_REPLY_OK;
		v += 3;
		n -= 3;
	} else if (n >= 4 && memcmp(v, "-ERR", 4) == 0) {
		msg->reply = FSESL_REPLY_ERR;
		v += 4;
		n -= 4;
	} else {
		msg->reply = FSESL_REPLY_OTHER;
		msg->reply_text = v;
		msg->reply_text_len = n;
		return;
	}
	if (n > 0 && *v == ' ') {
		v++;
		n--;
	}
	msg->reply_text = v;
	msg->reply_text_len = n;
}

static ssize_t
fail(int *err, int code)
{
	if (err)
		*err = code;
	return FSESL_PARSE_ERROR;
}

ssize_t
fsesl_msg_parse(const char *buf, size_t len, size_t last_len, const struct fsesl_limits *lim,
    struct fsesl_msg *msg, int *err)
{
	size_t max_hdr = FSESL_DEFAULT_MAX_HEADER_BYTES;
	size_t max_n = FSESL_MSG_MAX_HEADERS;
	size_t max_body = FSESL_DEFAULT_MAX_BODY_BYTES;
	size_t hs = 0, pos, cl = 0, n = 0;
	const char *cl_val = NULL, *disp = NULL;
	size_t cl_len = 0, disp_len = 0;
	bool have_cl = false;

	if (lim) {
		max_hdr = lim->max_header_bytes;
		max_n = lim->max_headers < FSESL_MSG_MAX_HEADERS ? lim->max_headers
		                                                 : FSESL_MSG_MAX_HEADERS;
		max_body = lim->max_body_bytes;
	}
	if (err)
		*err = FSESL_PERR_NONE;
	msg->header_bytes = 0;
	msg->body_len = 0;

	/* Blank lines between messages are harmless (a client "kick" echo, or
	 * a lenient peer); they still count against the header budget so an
	 * endless run of them cannot pin us in PARTIAL. */
	while (hs < len && (buf[hs] == '\n' || buf[hs] == '\r'))
		hs++;
	if (hs >= max_hdr)
		return fail(err, FSESL_PERR_HEADER_TOO_LARGE);
	if (hs == len)
		return FSESL_PARSE_PARTIAL;

	/* Over the limit we fall through to the full scan (once, on the way
	 * out) so the error named is the first bad byte, as for whole input. */
	if (last_len > hs + RESCAN_WINDOW && last_len <= len && len - hs < max_hdr &&
	    find_block_end(buf, last_len - 3, len) == 0)
		return FSESL_PARSE_PARTIAL;

	msg->type = FSESL_MSG_UNKNOWN;
	msg->content_type = NULL;
	msg->content_type_len = 0;
	msg->body = NULL;
	msg->reply = FSESL_REPLY_NONE;
	msg->reply_text = NULL;
	msg->reply_text_len = 0;
	msg->linger = false;

	/*
	 * One scan per line: the name up to ':', then the value up to '\n',
	 * each also stopping at NUL. Lines are short (< 100 bytes), where an
	 * inlined 16-byte scan beats several memchr calls. The scan never goes
	 * past hs + max_hdr, so every error is reported at the first offending
	 * byte, the same however the stream was cut into reads.
	 */
	const char *p = buf + hs;
	const char *e = buf + (len - hs > max_hdr ? hs + max_hdr : len);

	for (;;) {
		const char *line, *colon, *v, *ve;

		if (p >= e)
			goto out_of_bytes;
		if (*p == '\n') {
			p++;
			break;
		}
		if (*p == '\r') {
			if (p + 1 >= e)
				goto out_of_bytes;
			if (p[1] == '\n') {
				p += 2;
				break;
			}
		}
		line = p;
		p = scan3(p, e, ':', '\n', '\0');
		if (p >= e)
			goto out_of_bytes;
		if (*p == '\0')
			return fail(err, FSESL_PERR_NUL_BYTE);
		if (*p == '\n' || p == line)
			return fail(err, FSESL_PERR_BAD_HEADER_LINE);
		colon = p++;
		while (p < e && *p == ' ')
			p++;
		v = p;
		p = scan3(p, e, '\n', '\0', '\n');
		if (p >= e)
			goto out_of_bytes;
		if (*p == '\0')
			return fail(err, FSESL_PERR_NUL_BYTE);
		ve = p++;
		if (ve > v && ve[-1] == '\r')
			ve--;
		if (n >= max_n)
			return fail(err, FSESL_PERR_TOO_MANY_HEADERS);

		struct fsesl_header *h = &msg->headers[n++];
		size_t nlen = (size_t)(colon - line);

		h->name = line;
		h->name_len = nlen;
		h->value = v;
		h->value_len = (size_t)(ve - v);

		switch (nlen) {
		case 10:
			if (msg->reply == FSESL_REPLY_NONE &&
			    NAME_IS(line, nlen, "Reply-Text", "reply-text"))
				set_reply(msg, h->value, h->value_len);
			break;
		case 12:
			if (msg->content_type == NULL &&
			    NAME_IS(line, nlen, "Content-Type", "content-type")) {
				msg->content_type = h->value;
				msg->content_type_len = h->value_len;
			}
			break;
		case 14:
			if (NAME_IS(line, nlen, "Content-Length", "content-length")) {
				/* Two different lengths make the framing ambiguous;
				 * a repeated identical one is harmless. */
				if (cl_val && (cl_len != h->value_len ||
				                  memcmp(cl_val, h->value, cl_len) != 0))
					return fail(err, FSESL_PERR_BAD_CONTENT_LENGTH);
				cl_val = h->value;
				cl_len = h->value_len;
			}
			break;
		case 19:
			if (disp == NULL &&
			    NAME_IS(line, nlen, "Content-Disposition", "content-disposition")) {
				disp = h->value;
				disp_len = h->value_len;
			}
			break;
		default:
			break;
		}
	}
	pos = (size_t)(p - buf);
	msg->n_headers = n;

	if (cl_val) {
		int rc = parse_content_length(cl_val, cl_len, max_body, &cl);

		if (rc != 0)
			return fail(err, rc);
		have_cl = true;
	}
	msg->header_bytes = pos - hs;
	msg->body_len = cl;
	if (have_cl) {
		if (len - pos < cl)
			return FSESL_PARSE_PARTIAL;
		msg->body = buf + pos;
	}
	msg->type = fsesl_msg_type_of(msg->content_type, msg->content_type_len);
	if (msg->type == FSESL_MSG_DISCONNECT_NOTICE && disp)
		msg->linger = ieq(disp, disp_len, "linger");
	return (ssize_t)(pos + cl);

out_of_bytes:
	/* Ran out: of input (wait for more) or of header budget (an error). */
	msg->n_headers = n;
	if ((size_t)(e - (buf + hs)) >= max_hdr)
		return fail(err, FSESL_PERR_HEADER_TOO_LARGE);
	return FSESL_PARSE_PARTIAL;
}
