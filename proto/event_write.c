/*
 * event_write.c - event payloads in FreeSWITCH's three layouts
 * (docs/protocol.md §7.2-7.4), byte for byte, quirks included; and the
 * server's URL encoding (§7.2). Used by the simulator to produce what a
 * real server would send, and by tests to check round trips.
 *
 * Model: an event is a list of headers with raw values (a value starting
 * "ARRAY::" with something after it is a multi-value header whose items
 * are separated by "|:") and an optional body. FreeSWITCH distinguishes
 * "no body" from "empty body" (only JSON shows it: "Content-Length":"0",
 * "_body":""), so we do too: body == NULL means no body.
 *
 * The body's own Content-Length is not an event header in FreeSWITCH; each
 * writer adds it. But every decoder (ours, libesl, the vectors) lists it as
 * the last header. So a LAST header named Content-Length whose value is
 * exactly body_len in decimal is taken as that line ("body marker"): it is
 * not written as a header, and it means "there is a body" even when
 * body_len is 0 and body is NULL. A decoded event therefore re-serialises
 * exactly when passed as (headers, body_len ? body : NULL, body_len).
 * The price: a genuine event header in that position with that value would
 * be written once instead of twice; FreeSWITCH never puts one there (the
 * standard headers come after any sendevent header).
 */
#include "fsesl_proto.h"

#include <limits.h>
#include <string.h>

#include "enc_wbuf.h"
#include "proto_util.h"

/* 1 = written as %HH (docs/protocol.md §7.2). */
static const unsigned char url_unsafe[256] = {
    [0x00 ... 0x1f] = 1,
    [' '] = 1,
    ['"'] = 1,
    ['#'] = 1,
    ['%'] = 1,
    ['&'] = 1,
    ['+'] = 1,
    [':'] = 1,
    [';'] = 1,
    ['<'] = 1,
    ['='] = 1,
    ['>'] = 1,
    ['?'] = 1,
    ['@'] = 1,
    ['['] = 1,
    ['\\'] = 1,
    [']'] = 1,
    ['^'] = 1,
    ['`'] = 1,
    ['{'] = 1,
    ['|'] = 1,
    ['}'] = 1,
    [0x7f ... 0xff] = 1,
};

static const char hex_upper[] = "0123456789ABCDEF";

static bool
is_uhex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void
put_urlenc(struct fsesl_wbuf *w, const char *s, size_t n)
{
	size_t i, run = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3];

		if (!url_unsafe[c])
			continue;
		/* The quirk: "%" + two upper-case hex digits passes through. */
		if (c == '%' && i + 2 < n && is_uhex(s[i + 1]) && is_uhex(s[i + 2]))
			continue;
		fsesl_wbuf_put(w, s + run, i - run);
		esc[0] = '%';
		esc[1] = hex_upper[c >> 4];
		esc[2] = hex_upper[c & 15];
		fsesl_wbuf_put(w, esc, 3);
		run = i + 1;
	}
	fsesl_wbuf_put(w, s + run, n - run);
}

ssize_t
fsesl_url_encode(const char *src, size_t len, char *dst, size_t cap)
{
	struct fsesl_wbuf w;

	if (!src && len)
		return FSESL_PERR_INVALID;
	fsesl_wbuf_init(&w, dst, cap);
	put_urlenc(&w, src, len);
	if (w.full || w.len > (size_t)SSIZE_MAX)
		return FSESL_PERR_BUFFER_TOO_SMALL;
	return (ssize_t)w.len;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static bool
body_marker(const struct fsesl_header *h, size_t n, size_t body_len)
{
	char d[20];
	size_t dn;

	if (!n || !h[n - 1].name || !h[n - 1].value)
		return false;
	h += n - 1;
	if (!fsesl_ci_eq(h->name, h->name_len, "content-length"))
		return false;
	dn = fsesl_fmt_u64(d, body_len);
	return h->value_len == dn && memcmp(h->value, d, dn) == 0;
}

static bool
is_array(const struct fsesl_header *h)
{
	return h->value_len > 7 && memcmp(h->value, "ARRAY::", 7) == 0;
}

/* Next "|:"-separated item of an ARRAY:: value; *pos starts at 7. */
static bool
next_item(const struct fsesl_header *h, size_t *pos, const char **item, size_t *item_len)
{
	const char *v = h->value;
	size_t i, start = *pos;

	if (start > h->value_len)
		return false;
	for (i = start; i + 1 < h->value_len; i++)
		if (v[i] == '|' && v[i + 1] == ':')
			break;
	if (i + 1 >= h->value_len)
		i = h->value_len;
	*item = v + start;
	*item_len = i - start;
	*pos = i + 2;
	return true;
}

/* ------------------------------------------------------------------ */
/* text/event-plain                                                     */
/* ------------------------------------------------------------------ */

static void
write_plain(struct fsesl_wbuf *w, const struct fsesl_header *h, size_t n, bool has_body,
    const char *body, size_t body_len)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fsesl_wbuf_put(w, h[i].name, h[i].name_len);
		fsesl_wbuf_put(w, ": ", 2);
		if (h[i].value_len)
			put_urlenc(w, h[i].value, h[i].value_len);
		else
			fsesl_wbuf_put(w, "_undef_", 7);
		fsesl_wbuf_putc(w, '\n');
	}
	if (has_body && body_len) {
		fsesl_wbuf_puts(w, "Content-Length: ");
		fsesl_wbuf_putu(w, body_len);
		fsesl_wbuf_put(w, "\n\n", 2);
		fsesl_wbuf_put(w, body, body_len);
	} else {
		fsesl_wbuf_putc(w, '\n');
	}
}

/* ------------------------------------------------------------------ */
/* text/event-json (cJSON 1.7 unformatted printing)                     */
/* ------------------------------------------------------------------ */

static void
put_jstr(struct fsesl_wbuf *w, const char *s, size_t n)
{
	size_t i, run = 0;

	fsesl_wbuf_putc(w, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t en = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		esc[0] = '\\';
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default: /* lower-case hex, as cJSON prints it */
			memcpy(esc + 1, "u00", 3);
			esc[4] = "0123456789abcdef"[c >> 4];
			esc[5] = "0123456789abcdef"[c & 15];
			en = 6;
			break;
		}
		fsesl_wbuf_put(w, s + run, i - run);
		fsesl_wbuf_put(w, esc, en);
		run = i + 1;
	}
	fsesl_wbuf_put(w, s + run, n - run);
	fsesl_wbuf_putc(w, '"');
}

static void
write_json(struct fsesl_wbuf *w, const struct fsesl_header *h, size_t n, bool has_body,
    const char *body, size_t body_len)
{
	size_t i, pos;
	const char *item;
	size_t item_len;
	char d[20];

	fsesl_wbuf_putc(w, '{');
	for (i = 0; i < n; i++) {
		if (i)
			fsesl_wbuf_putc(w, ',');
		put_jstr(w, h[i].name, h[i].name_len);
		fsesl_wbuf_putc(w, ':');
		if (!is_array(&h[i])) {
			put_jstr(w, h[i].value, h[i].value_len);
			continue;
		}
		fsesl_wbuf_putc(w, '[');
		for (pos = 7; next_item(&h[i], &pos, &item, &item_len);) {
			if (item != h[i].value + 7)
				fsesl_wbuf_putc(w, ',');
			put_jstr(w, item, item_len);
		}
		fsesl_wbuf_putc(w, ']');
	}
	if (has_body) {
		if (n)
			fsesl_wbuf_putc(w, ',');
		fsesl_wbuf_puts(w, "\"Content-Length\":");
		put_jstr(w, d, fsesl_fmt_u64(d, body_len));
		fsesl_wbuf_puts(w, ",\"_body\":");
		put_jstr(w, body, body_len);
	}
	fsesl_wbuf_putc(w, '}');
}

/* ------------------------------------------------------------------ */
/* text/event-xml (FreeSWITCH's XML writer)                             */
/* ------------------------------------------------------------------ */

static void
put_xml_elem(struct fsesl_wbuf *w, const struct fsesl_header *h, const char *v, size_t vn)
{
	fsesl_wbuf_put(w, "    <", 5);
	fsesl_wbuf_put(w, h->name, h->name_len);
	fsesl_wbuf_putc(w, '>');
	/* URL-encoded text holds no '&', '<' or '>', so no XML escaping. */
	put_urlenc(w, v, vn);
	fsesl_wbuf_put(w, "</", 2);
	fsesl_wbuf_put(w, h->name, h->name_len);
	fsesl_wbuf_put(w, ">\n", 2);
}

/*
 * Character data as FreeSWITCH's writer escapes it in UTF-8 mode: & < >
 * and CR as entities, each UTF-8 sequence as one &#xHEX; reference, and,
 * the quirk, everything from a "<!" on copied raw. A truncated or invalid
 * sequence is decoded from the bytes that are there (we never read past
 * the end); the writer does not validate either.
 */
static void
put_xml_text(struct fsesl_wbuf *w, const char *s, size_t n, bool *ends_nl)
{
	size_t i = 0, run = 0;

	*ends_nl = n && s[n - 1] == '\n';
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		const char *ent = NULL;
		char ref[16];
		size_t ln = 1, rn = 0;

		if (c == '&') {
			ent = "&amp;";
		} else if (c == '<') {
			if (i + 1 < n && s[i + 1] == '!')
				break; /* the rest goes out unescaped */
			ent = "&lt;";
		} else if (c == '>') {
			ent = "&gt;";
		} else if (c == '\r') {
			ent = "&#xD;";
		} else if (c & 0x80) {
			uint32_t cp;
			size_t k;
			char hx[8];
			size_t hn = 0;

			if (c >> 5 == 0x6) {
				ln = 2;
				cp = c & 0x1f;
			} else if (c >> 4 == 0xe) {
				ln = 3;
				cp = c & 0x0f;
			} else {
				ln = 4;
				cp = c & 0x07;
			}
			if (ln > n - i)
				ln = n - i;
			for (k = 1; k < ln; k++)
				cp = cp << 6 | ((unsigned char)s[i + k] & 0x3f);
			do {
				hx[hn++] = hex_upper[cp & 15];
				cp >>= 4;
			} while (cp);
			memcpy(ref, "&#x", 3);
			rn = 3;
			while (hn)
				ref[rn++] = hx[--hn];
			ref[rn++] = ';';
		} else {
			i++;
			continue;
		}
		fsesl_wbuf_put(w, s + run, i - run);
		if (ent)
			fsesl_wbuf_puts(w, ent);
		else
			fsesl_wbuf_put(w, ref, rn);
		i += ln;
		run = i;
	}
	fsesl_wbuf_put(w, s + run, n - run);
}

static void
write_xml(
    struct fsesl_wbuf *w, const struct fsesl_header *h, size_t n, const char *body, size_t body_len)
{
	size_t i, pos;
	const char *item;
	size_t item_len;
	bool nl;

	fsesl_wbuf_puts(w, "<event>\n  <headers>\n");
	for (i = 0; i < n; i++) {
		if (!is_array(&h[i])) {
			put_xml_elem(w, &h[i], h[i].value, h[i].value_len);
			continue;
		}
		for (pos = 7; next_item(&h[i], &pos, &item, &item_len);)
			put_xml_elem(w, &h[i], item, item_len);
	}
	fsesl_wbuf_puts(w, "  </headers>\n");
	if (body_len) {
		fsesl_wbuf_puts(w, "  <Content-Length>");
		fsesl_wbuf_putu(w, body_len);
		fsesl_wbuf_puts(w, "</Content-Length>\n  <body>");
		put_xml_text(w, body, body_len, &nl);
		/* The writer indents the closing tag when the text ends a line. */
		if (nl)
			fsesl_wbuf_put(w, "  ", 2);
		fsesl_wbuf_puts(w, "</body>\n");
	}
	fsesl_wbuf_puts(w, "</event>\n");
}

/* ------------------------------------------------------------------ */
/* Entry points                                                         */
/* ------------------------------------------------------------------ */

static size_t
sat_add(size_t a, size_t b)
{
	size_t r;

	return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t
sat_mul(size_t a, size_t b)
{
	size_t r;

	return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

size_t
fsesl_event_serialize_size(enum fsesl_event_format fmt, const struct fsesl_header *headers,
    size_t n_headers, size_t body_len)
{
	size_t total = 64, i, per;

	if (n_headers && !headers)
		return 0;
	for (i = 0; i < n_headers; i++) {
		size_t nl = headers[i].name_len, vl = headers[i].value_len;

		switch (fmt) {
		case FSESL_EVFMT_PLAIN:
			per = sat_add(sat_add(nl, sat_mul(vl, 3)), 10);
			break;
		case FSESL_EVFMT_JSON:
			per = sat_add(sat_add(sat_mul(nl, 6), sat_mul(vl, 9)), 16);
			break;
		default: /* xml: up to vl + 1 items, each with two copies of the name */
			per = sat_add(
			    sat_mul(sat_add(vl, 1), sat_add(sat_mul(nl, 2), 12)), sat_mul(vl, 3));
			break;
		}
		total = sat_add(total, per);
	}
	/* Body: 6 bytes per input byte covers \u00XX in JSON and the longest
	 * XML reference per byte; plus the framing around it. */
	return sat_add(total, sat_add(sat_mul(body_len, 6), 128));
}

ssize_t
fsesl_event_serialize(char *dst, size_t cap, enum fsesl_event_format fmt,
    const struct fsesl_header *headers, size_t n_headers, const char *body, size_t body_len)
{
	struct fsesl_wbuf w;
	bool marker, has_body;
	size_t i;

	if ((n_headers && !headers) || (body_len && !body))
		return FSESL_PERR_INVALID;
	for (i = 0; i < n_headers; i++)
		if (!headers[i].name || (headers[i].value_len && !headers[i].value))
			return FSESL_PERR_INVALID;
	marker = body_marker(headers, n_headers, body_len);
	if (marker)
		n_headers--;
	has_body = marker || body;

	fsesl_wbuf_init(&w, dst, cap);
	switch (fmt) {
	case FSESL_EVFMT_PLAIN:
		write_plain(&w, headers, n_headers, has_body, body, body_len);
		break;
	case FSESL_EVFMT_JSON:
		write_json(&w, headers, n_headers, has_body, body ? body : "", body_len);
		break;
	case FSESL_EVFMT_XML:
		write_xml(&w, headers, n_headers, body, body_len);
		break;
	default:
		return FSESL_PERR_INVALID;
	}
	if (w.full || w.len > (size_t)SSIZE_MAX)
		return FSESL_PERR_BUFFER_TOO_SMALL;
	return (ssize_t)w.len;
}
