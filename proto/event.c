/*
 * event.c - decoding of text/event-plain, -json and -xml payloads.
 *
 * Design: every format parser runs twice over its input through the same
 * "builder". The first run only measures (header count, an upper bound of
 * the bytes every string needs) and fails early on structural errors and
 * on a missing Event-Name; then the event is allocated in ONE block
 * (struct, header array, all strings) and the second run decodes into it.
 * Each decoding step (%HH, XML entities) never makes text longer, so the
 * raw length is a safe bound and the second run cannot overflow.
 *
 * JSON goes through our own strict reader (json.h): an event is a flat
 * object of strings and arrays of strings, a general JSON library buys
 * nothing, and libcjson's process-wide error position would need a lock
 * on the parse path. XML has a fixed, machine-written layout
 * (docs/protocol.md §7.4) and no XML library is among our dependencies, so
 * a small reader handles exactly what an XML parser would return for it:
 * elements, entities (named and numeric), comments and CDATA sections,
 * the last two because of the "<!" quirk in bodies.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsesl_proto.h"
#include "json.h"
#include "proto_util.h"

enum text_kind {
	TK_RAW, /* copied as is */
	TK_URL, /* %HH-decoded (plain header values) */
	TK_XML, /* entities, comments and CDATA resolved (XML body) */
	TK_XML_URL, /* TK_XML, then %HH-decoded (XML header values) */
};

struct builder {
	bool fill; /* false: measuring run */
	size_t max_headers;
	/* measuring run */
	size_t n;
	size_t bytes;
	bool has_name;
	/* filling run */
	struct fsesl_event *ev;
	struct fsesl_header *hdrs;
	char *p;
	int err;
};

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

ssize_t
fsesl_url_decode(const char *src, size_t len, char *dst)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return FSESL_PERR_BAD_ESCAPE;
			hi = hexval((unsigned char)src[i + 1]);
			lo = hexval((unsigned char)src[i + 2]);
			if (hi < 0 || lo < 0)
				return FSESL_PERR_BAD_ESCAPE;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		/* o <= i always holds, so in-place decoding never overtakes
		 * the bytes still to be read. */
		dst[o++] = (char)c;
	}
	return (ssize_t)o;
}

static bool
starts(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

static const char *
find_lit(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - p) < n)
		return NULL;
	return memmem(p, (size_t)(end - p), lit, n);
}

/*
 * Decodes XML character data src[0..len) (which may hold comments and
 * CDATA sections, but no tags) into dst. Returns the length or
 * FSESL_PERR_BAD_XML. The output is never longer than the input: the
 * shortest entity, "&#N;", is 4 bytes and UTF-8 needs at most 4.
 */
static ssize_t
xml_text_decode(const char *src, size_t len, char *dst)
{
	const char *p = src, *end = src + len;
	size_t o = 0;

	while (p < end) {
		if (*p == '&') {
			const char *semi =
			    memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
			size_t n;

			if (semi == NULL)
				return FSESL_PERR_BAD_XML;
			n = (size_t)(semi - p - 1);
			if (n == 3 && memcmp(p + 1, "amp", 3) == 0) {
				dst[o++] = '&';
			} else if (n == 2 && memcmp(p + 1, "lt", 2) == 0) {
				dst[o++] = '<';
			} else if (n == 2 && memcmp(p + 1, "gt", 2) == 0) {
				dst[o++] = '>';
			} else if (n == 4 && memcmp(p + 1, "quot", 4) == 0) {
				dst[o++] = '"';
			} else if (n == 4 && memcmp(p + 1, "apos", 4) == 0) {
				dst[o++] = '\'';
			} else if (n >= 2 && p[1] == '#') {
				unsigned long cp = 0;
				bool hex = p[2] == 'x' || p[2] == 'X';
				size_t i = hex ? 3 : 2, w;

				if (i >= n + 1)
					return FSESL_PERR_BAD_XML;
				for (; i < n + 1; i++) {
					int d =
					    hex ? hexval((unsigned char)p[i])
					        : (p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : -1);

					if (d < 0 || cp > 0x10FFFF)
						return FSESL_PERR_BAD_XML;
					cp = cp * (hex ? 16 : 10) + (unsigned long)d;
				}
				w = fsesl_utf8_put(cp, dst + o);
				if (w == 0)
					return FSESL_PERR_BAD_XML;
				o += w;
			} else {
				return FSESL_PERR_BAD_XML;
			}
			p = semi + 1;
		} else if (*p == '<') {
			const char *q;

			if (starts(p, end, "<!--")) {
				q = find_lit(p + 4, end, "-->");
				if (q == NULL)
					return FSESL_PERR_BAD_XML;
				p = q + 3;
			} else if (starts(p, end, "<![CDATA[")) {
				q = find_lit(p + 9, end, "]]>");
				if (q == NULL)
					return FSESL_PERR_BAD_XML;
				memmove(dst + o, p + 9, (size_t)(q - p - 9));
				o += (size_t)(q - p - 9);
				p = q + 3;
			} else {
				return FSESL_PERR_BAD_XML;
			}
		} else {
			dst[o++] = *p++;
		}
	}
	return (ssize_t)o;
}

/* Decodes src into the builder's string area; returns the length or < 0. */
static ssize_t
b_text(struct builder *b, const char *src, size_t len, enum text_kind kind)
{
	char *dst = b->p;
	ssize_t n;

	switch (kind) {
	case TK_RAW:
		memcpy(dst, src, len);
		n = (ssize_t)len;
		break;
	case TK_URL:
		n = fsesl_url_decode(src, len, dst);
		break;
	case TK_XML:
		n = xml_text_decode(src, len, dst);
		break;
	case TK_XML_URL:
		n = xml_text_decode(src, len, dst);
		if (n >= 0)
			n = fsesl_url_decode(dst, (size_t)n, dst);
		break;
	default:
		n = FSESL_PERR_INVALID;
		break;
	}
	if (n < 0)
		return n;
	dst[n] = '\0';
	b->p += n + 1;
	return n;
}

static bool
name_is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && strncasecmp(name, lit, len) == 0;
}

/* One header; value is raw text of the given kind. */
static int
b_add(struct builder *b, const char *name, size_t nlen, const char *val, size_t vlen,
    enum text_kind kind)
{
	struct fsesl_header *h;
	ssize_t n;

	if (!b->fill) {
		if (b->n >= b->max_headers)
			return FSESL_PERR_TOO_MANY_HEADERS;
		b->n++;
		b->bytes += nlen + 1 + vlen + 1;
		if (!b->has_name && name_is(name, nlen, "Event-Name"))
			b->has_name = true;
		return 0;
	}
	h = &b->hdrs[b->ev->n_headers];
	h->name = b->p;
	b_text(b, name, nlen, TK_RAW);
	h->name_len = nlen;
	h->value = b->p;
	n = b_text(b, val, vlen, kind);
	if (n < 0)
		return (int)n;
	h->value_len = (size_t)n;
	b->ev->n_headers++;
	return 0;
}

/* A JSON string, decoded into the string area; returns its length. */
static size_t
b_json(struct builder *b, const struct fsesl_json_str *str)
{
	size_t n = fsesl_json_decode(str, b->p);

	b->p[n] = '\0';
	b->p += n + 1;
	return n;
}

/* One JSON member as a header: a string as it is, an array as "ARRAY::"
 * then the items joined by "|:" (the plain form of a multi-valued header,
 * docs/protocol.md §7.2). The measuring run counts the escaped lengths, a
 * bound of the decoded ones. */
static int
b_add_json(struct builder *b, const struct fsesl_json_member *m)
{
	struct fsesl_json_array arr = m->arr;
	struct fsesl_json_str item;
	struct fsesl_header *h;
	size_t items = 0;

	if (!b->fill) {
		if (b->n >= b->max_headers)
			return FSESL_PERR_TOO_MANY_HEADERS;
		b->n++;
		b->bytes += m->key.len + 1 + 1;
		b->bytes +=
		    m->is_array ? 7 + arr.raw_len + (arr.n ? 2 * (arr.n - 1) : 0) : m->str.len;
		if (!b->has_name && fsesl_json_eq(&m->key, "Event-Name", true))
			b->has_name = true;
		return 0;
	}
	h = &b->hdrs[b->ev->n_headers];
	h->name = b->p;
	h->name_len = b_json(b, &m->key);
	h->value = b->p;
	if (!m->is_array) {
		h->value_len = b_json(b, &m->str);
	} else {
		memcpy(b->p, "ARRAY::", 7);
		b->p += 7;
		while (fsesl_json_array_next(&arr, &item)) {
			if (items++) {
				memcpy(b->p, "|:", 2);
				b->p += 2;
			}
			b->p += fsesl_json_decode(&item, b->p);
		}
		*b->p++ = '\0';
		h->value_len = (size_t)(b->p - h->value) - 1;
	}
	b->ev->n_headers++;
	return 0;
}

static int
b_body(struct builder *b, const char *src, size_t len, enum text_kind kind)
{
	ssize_t n;

	if (!b->fill) {
		b->bytes += len; /* the terminating NUL is counted in alloc */
		return 0;
	}
	b->ev->body = b->p;
	n = b_text(b, src, len, kind);
	if (n < 0)
		return (int)n;
	b->ev->body_len = (size_t)n;
	return 0;
}

/* ---------------------------------------------------------------- plain */

static int
parse_plain(struct builder *b, const char *pl, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(pl + pos, '\n', len - pos);
		size_t le = nl ? (size_t)(nl - pl) : len;
		size_t ll = le - pos;
		const char *line = pl + pos, *colon, *v;
		int rc;

		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		pos = nl ? le + 1 : len;
		if (ll == 0) /* the blank line: everything after is the body */
			return b_body(b, pl + pos, len - pos, TK_RAW);
		colon = memchr(line, ':', ll);
		if (colon == NULL || colon == line)
			return FSESL_PERR_BAD_HEADER_LINE;
		v = colon + 1;
		while (v < line + ll && *v == ' ')
			v++;
		rc = b_add(b, line, (size_t)(colon - line), v, (size_t)(line + ll - v), TK_URL);
		if (rc)
			return rc;
	}
	return b_body(b, pl + len, 0, TK_RAW);
}

/* ----------------------------------------------------------------- json */

static int
parse_json(struct builder *b, const char *pl, size_t len)
{
	struct fsesl_json_reader r;
	struct fsesl_json_member m;
	struct fsesl_json_str body = {"", 0, false};
	bool have_body = false;
	int rc;

	if (fsesl_json_open(&r, pl, len) != 0)
		return FSESL_PERR_BAD_JSON;
	while ((rc = fsesl_json_next(&r, &m)) == 1) {
		/* "_body" is the body (the first one; each must be a string). */
		if (fsesl_json_eq(&m.key, "_body", false)) {
			if (m.is_array)
				return FSESL_PERR_BAD_JSON;
			if (!have_body)
				body = m.str;
			have_body = true;
			continue;
		}
		rc = b_add_json(b, &m);
		if (rc)
			return rc;
	}
	if (rc < 0)
		return rc;
	if (!b->fill) {
		b->bytes += body.len; /* the terminating NUL is counted in alloc */
		return 0;
	}
	b->ev->body = b->p;
	b->ev->body_len = b_json(b, &body);
	return 0;
}

/* ------------------------------------------------------------------ xml */

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/*
 * Reads a start tag at p ("<name ...>" or "<name .../>"). Sets the name and
 * whether it closed itself; returns the byte after '>' or NULL.
 */
static const char *
open_tag(const char *p, const char *end, const char **name, size_t *nlen, bool *empty)
{
	const char *n, *gt;

	if (p >= end || *p != '<' || p + 1 >= end || p[1] == '/' || p[1] == '!' || p[1] == '?')
		return NULL;
	n = ++p;
	while (p < end && *p != '>' && *p != '/' && *p != ' ' && *p != '\t' && *p != '\n' &&
	       *p != '\r')
		p++;
	if (p == n || p >= end)
		return NULL;
	*name = n;
	*nlen = (size_t)(p - n);
	gt = memchr(p, '>', (size_t)(end - p));
	if (gt == NULL)
		return NULL;
	*empty = gt[-1] == '/';
	return gt + 1;
}

/* Character data from p up to the next tag (skipping comments and CDATA);
 * returns where the tag starts, or NULL. */
static const char *
text_end(const char *p, const char *end)
{
	for (;;) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *q;

		if (lt == NULL)
			return NULL;
		if (starts(lt, end, "<!--")) {
			q = find_lit(lt + 4, end, "-->");
			if (q == NULL)
				return NULL;
			p = q + 3;
		} else if (starts(lt, end, "<![CDATA[")) {
			q = find_lit(lt + 9, end, "]]>");
			if (q == NULL)
				return NULL;
			p = q + 3;
		} else {
			return lt;
		}
	}
}

/* Expects "</name>" at p; returns the byte after it or NULL. */
static const char *
close_tag(const char *p, const char *end, const char *name, size_t nlen)
{
	if ((size_t)(end - p) < nlen + 3 || p[0] != '<' || p[1] != '/' ||
	    memcmp(p + 2, name, nlen) != 0)
		return NULL;
	p = skip_ws(p + 2 + nlen, end);
	if (p >= end || *p != '>')
		return NULL;
	return p + 1;
}

/* A leaf element at p: its text goes to *txt. Returns the byte after it. */
static const char *
leaf(
    const char *p, const char *end, const char **name, size_t *nlen, const char **txt, size_t *tlen)
{
	bool empty;
	const char *t;

	p = open_tag(p, end, name, nlen, &empty);
	if (p == NULL)
		return NULL;
	if (empty) {
		*txt = p;
		*tlen = 0;
		return p;
	}
	t = text_end(p, end);
	if (t == NULL)
		return NULL;
	*txt = p;
	*tlen = (size_t)(t - p);
	return close_tag(t, end, *name, *nlen);
}

static int
parse_xml(struct builder *b, const char *pl, size_t len)
{
	const char *p = pl, *end = pl + len, *name, *txt;
	size_t nlen, tlen;
	bool empty, have_body = false;
	int rc;

	p = skip_ws(p, end);
	if (starts(p, end, "<?")) { /* tolerate a prolog FreeSWITCH never writes */
		p = find_lit(p, end, "?>");
		if (p == NULL)
			return FSESL_PERR_BAD_XML;
		p = skip_ws(p + 2, end);
	}
	p = open_tag(p, end, &name, &nlen, &empty);
	if (p == NULL || empty || nlen != 5 || memcmp(name, "event", 5) != 0)
		return FSESL_PERR_BAD_XML;
	for (;;) {
		p = skip_ws(p, end);
		if (starts(p, end, "</")) {
			p = close_tag(p, end, "event", 5);
			if (p == NULL || skip_ws(p, end) != end)
				return FSESL_PERR_BAD_XML;
			break;
		}
		if (starts(p, end, "<!--")) {
			const char *q = find_lit(p + 4, end, "-->");

			if (q == NULL)
				return FSESL_PERR_BAD_XML;
			p = q + 3;
			continue;
		}
		if (starts(p, end, "<headers")) {
			p = open_tag(p, end, &name, &nlen, &empty);
			if (p == NULL)
				return FSESL_PERR_BAD_XML;
			if (empty)
				continue;
			for (;;) {
				p = skip_ws(p, end);
				if (starts(p, end, "</")) {
					p = close_tag(p, end, "headers", 7);
					if (p == NULL)
						return FSESL_PERR_BAD_XML;
					break;
				}
				p = leaf(p, end, &name, &nlen, &txt, &tlen);
				if (p == NULL)
					return FSESL_PERR_BAD_XML;
				rc = b_add(b, name, nlen, txt, tlen, TK_XML_URL);
				if (rc)
					return rc;
			}
			continue;
		}
		p = leaf(p, end, &name, &nlen, &txt, &tlen);
		if (p == NULL)
			return FSESL_PERR_BAD_XML;
		if (nlen == 4 && memcmp(name, "body", 4) == 0 && !have_body) {
			have_body = true;
			rc = b_body(b, txt, tlen, TK_XML);
			if (rc)
				return rc;
		}
		/* Other children (<Content-Length>) repeat what the body says. */
	}
	if (!have_body)
		return b_body(b, "", 0, TK_RAW);
	return 0;
}

/* ---------------------------------------------------------------- entry */

static int
run(struct builder *b, enum fsesl_event_format fmt, const char *payload, size_t len)
{
	switch (fmt) {
	case FSESL_EVFMT_PLAIN:
		return parse_plain(b, payload, len);
	case FSESL_EVFMT_JSON:
		return parse_json(b, payload, len);
	case FSESL_EVFMT_XML:
		return parse_xml(b, payload, len);
	default:
		return FSESL_PERR_INVALID;
	}
}

const char *
fsesl_event_get(const struct fsesl_event *ev, const char *name)
{
	const struct fsesl_header *h;

	if (ev == NULL || name == NULL)
		return NULL;
	h = fsesl_event_find(ev, name);
	return h ? h->value : NULL;
}

void
fsesl_event_free(struct fsesl_event *ev)
{
	free(ev);
}

int
fsesl_event_parse(enum fsesl_event_format fmt, const char *payload, size_t len,
    const struct fsesl_limits *lim, struct fsesl_event **out)
{
	struct builder b = {0};
	struct fsesl_event *ev;
	const struct fsesl_header *h;
	size_t size;
	int rc;

	if (out == NULL || (payload == NULL && len > 0))
		return FSESL_PERR_INVALID;
	*out = NULL;
	if (payload == NULL)
		payload = "";
	b.max_headers = lim ? lim->max_event_headers : FSESL_DEFAULT_MAX_EVENT_HEADERS;
	rc = run(&b, fmt, payload, len);
	if (rc == 0 && !b.has_name)
		rc = FSESL_PERR_NO_EVENT_NAME;
	if (rc)
		return rc;

	/* Header count and byte total are both bounded by the payload length,
	 * so these sums cannot overflow. */
	size = sizeof(*ev) + b.n * sizeof(struct fsesl_header) + b.bytes + 1;
	ev = calloc(1, size);
	if (ev == NULL)
		return FSESL_PERR_NOMEM;
	ev->format = fmt;
	b.fill = true;
	b.ev = ev;
	b.hdrs = (struct fsesl_header *)(ev + 1);
	b.p = (char *)(b.hdrs + b.n);
	ev->headers = b.hdrs;
	rc = run(&b, fmt, payload, len);
	if (rc) {
		free(ev);
		return rc;
	}

	if ((h = fsesl_event_find(ev, "Event-Name")) != NULL)
		ev->name = h->value;
	if ((h = fsesl_event_find(ev, "Event-Subclass")) != NULL)
		ev->subclass = h->value;
	if ((h = fsesl_event_find(ev, "Job-UUID")) != NULL)
		ev->job_uuid = h->value;
	if ((h = fsesl_event_find(ev, "Core-UUID")) != NULL)
		ev->core_uuid = h->value;
	if ((h = fsesl_event_find(ev, "Event-Sequence")) != NULL)
		ev->has_sequence = fsesl_parse_u64(h->value, h->value_len, &ev->sequence) == 0;
	ev->forged = fsesl_event_find(ev, "Command") != NULL;
	*out = ev;
	return 0;
}
