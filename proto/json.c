/*
 * json.c - the strict JSON reader of text/event-json payloads (json.h).
 *
 * Two steps, as the event decoder runs twice: reading validates and hands
 * out views; decoding a view turns its escapes into bytes and cannot fail.
 * Each escape is at least as long as what it stands for (\n: 2 -> 1,
 * \uXXXX: 6 -> at most 3, a surrogate pair: 12 -> 4), so a view's length
 * bounds its decoded length.
 */
#include "json.h"

#include "proto_util.h"

enum {
	ST_FIRST, /* after '{': a member or '}' */
	ST_MORE, /* after a member: ',' or '}' */
	ST_DONE, /* complete, or failed (returns the same again) */
};

static const char *
ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int
hex4(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)p[i];
		int d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/*
 * The \u escape at p (p[0] is the backslash): its code point in *cp and
 * its length (6, or 12 for a surrogate pair), or 0 when it is not valid:
 * short, not hex, a lone or reversed surrogate, or U+0000.
 */
static size_t
u_escape(const char *p, const char *end, unsigned long *cp)
{
	int hi, lo;

	if (end - p < 6 || (hi = hex4(p + 2)) < 0 || hi == 0)
		return 0;
	if (hi >= 0xDC00 && hi <= 0xDFFF)
		return 0;
	if (hi < 0xD800 || hi > 0xDBFF) {
		*cp = (unsigned long)hi;
		return 6;
	}
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || (lo = hex4(p + 8)) < 0xDC00 ||
	    lo > 0xDFFF)
		return 0;
	*cp = 0x10000ul + ((unsigned long)(hi - 0xD800) << 10) + (unsigned long)(lo - 0xDC00);
	return 12;
}

/* The string whose opening quote is at *pp: validated into *s, *pp moved
 * past its closing quote. */
static int
scan_str(const char **pp, const char *end, struct fsesl_json_str *s)
{
	const char *p = *pp + 1;
	unsigned long cp;
	size_t n;

	s->p = p;
	s->escaped = false;
	for (;;) {
		if (p >= end)
			return FSESL_PERR_BAD_JSON;
		if (*p == '"')
			break;
		if ((unsigned char)*p < 0x20)
			return FSESL_PERR_BAD_JSON;
		if (*p != '\\') {
			p++;
			continue;
		}
		s->escaped = true;
		if (end - p < 2)
			return FSESL_PERR_BAD_JSON;
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			break;
		case 'u':
			n = u_escape(p, end, &cp);
			if (n == 0)
				return FSESL_PERR_BAD_JSON;
			p += n;
			break;
		default:
			return FSESL_PERR_BAD_JSON;
		}
	}
	s->len = (size_t)(p - s->p);
	*pp = p + 1;
	return 0;
}

/* An array whose '[' is at *pp: every item a string. */
static int
scan_array(const char **pp, const char *end, struct fsesl_json_array *a)
{
	const char *p = ws(*pp + 1, end);
	struct fsesl_json_str s;

	a->p = p;
	a->n = 0;
	a->raw_len = 0;
	if (p < end && *p == ']') {
		a->end = p;
		*pp = p + 1;
		return 0;
	}
	for (;;) {
		if (p >= end || *p != '"' || scan_str(&p, end, &s) != 0)
			return FSESL_PERR_BAD_JSON;
		a->n++;
		a->raw_len += s.len;
		p = ws(p, end);
		if (p < end && *p == ',') {
			p = ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']')
			break;
		return FSESL_PERR_BAD_JSON;
	}
	a->end = p;
	*pp = p + 1;
	return 0;
}

int
fsesl_json_open(struct fsesl_json_reader *r, const char *p, size_t len)
{
	const char *end = p + len;

	p = ws(p, end);
	r->end = end;
	r->state = ST_DONE;
	r->p = NULL;
	if (p >= end || *p != '{')
		return FSESL_PERR_BAD_JSON;
	r->p = p + 1;
	r->state = ST_FIRST;
	return 0;
}

static int
fail(struct fsesl_json_reader *r)
{

	r->state = ST_DONE;
	r->p = NULL; /* a later call fails again */
	return FSESL_PERR_BAD_JSON;
}

int
fsesl_json_next(struct fsesl_json_reader *r, struct fsesl_json_member *m)
{
	const char *p, *end = r->end;

	if (r->state == ST_DONE)
		return r->p ? 0 : FSESL_PERR_BAD_JSON;
	p = ws(r->p, end);
	if (p < end && *p == '}') {
		if (ws(p + 1, end) != end)
			return fail(r);
		r->state = ST_DONE;
		r->p = end;
		return 0;
	}
	if (r->state == ST_MORE) {
		if (p >= end || *p != ',')
			return fail(r);
		p = ws(p + 1, end);
	}
	if (p >= end || *p != '"' || scan_str(&p, end, &m->key) != 0 || m->key.len == 0)
		return fail(r);
	p = ws(p, end);
	if (p >= end || *p != ':')
		return fail(r);
	p = ws(p + 1, end);
	if (p < end && *p == '"') {
		m->is_array = false;
		if (scan_str(&p, end, &m->str) != 0)
			return fail(r);
	} else if (p < end && *p == '[') {
		m->is_array = true;
		if (scan_array(&p, end, &m->arr) != 0)
			return fail(r);
	} else {
		return fail(r);
	}
	r->p = p;
	r->state = ST_MORE;
	return 1;
}

bool
fsesl_json_array_next(struct fsesl_json_array *a, struct fsesl_json_str *out)
{
	const char *p = ws(a->p, a->end);

	if (p < a->end && *p == ',')
		p = ws(p + 1, a->end);
	if (p >= a->end || scan_str(&p, a->end, out) != 0)
		return false;
	a->p = p;
	return true;
}

/* One character of a validated view at *pp into out; returns its bytes. */
static size_t
step(const char **pp, const char *end, char out[4])
{
	const char *p = *pp;
	unsigned long cp = 0;
	size_t n;

	if (*p != '\\') {
		out[0] = *p;
		*pp = p + 1;
		return 1;
	}
	switch (p[1]) {
	case 'b':
		out[0] = '\b';
		break;
	case 'f':
		out[0] = '\f';
		break;
	case 'n':
		out[0] = '\n';
		break;
	case 'r':
		out[0] = '\r';
		break;
	case 't':
		out[0] = '\t';
		break;
	case 'u':
		n = u_escape(p, end, &cp);
		*pp = p + n;
		return fsesl_utf8_put(cp, out);
	default: /* '"', '\\', '/' */
		out[0] = p[1];
		break;
	}
	*pp = p + 2;
	return 1;
}

size_t
fsesl_json_decode(const struct fsesl_json_str *s, char *dst)
{
	const char *p = s->p, *end = s->p + s->len;
	size_t o = 0;

	if (!s->escaped) {
		memcpy(dst, s->p, s->len);
		return s->len;
	}
	while (p < end)
		o += step(&p, end, dst + o);
	return o;
}

static char
lower(char c)
{

	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

bool
fsesl_json_eq(const struct fsesl_json_str *s, const char *lit, bool fold)
{
	const char *p = s->p, *end = s->p + s->len;
	char u[4];
	size_t n;

	while (p < end) {
		n = step(&p, end, u);
		for (size_t i = 0; i < n; i++, lit++)
			if (*lit == '\0' || (fold ? lower(u[i]) != lower(*lit) : u[i] != *lit))
				return false;
	}
	return *lit == '\0';
}
