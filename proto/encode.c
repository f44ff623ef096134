/*
 * encode.c - client -> server command packets (docs/protocol.md §2.4, §5).
 *
 * Every worker thread encodes its own command, so this is hot-path code:
 * no allocation, no stdio, one pass over each input (check + copy). Each
 * encoder feeds its pieces through one small state machine (struct enc):
 * every piece of the command line and every header value is checked for
 * CR/LF/NUL (a "\n\n" in a value would end the packet early and run the
 * rest as a second command, shifting every later reply; §10.1), scanned
 * for the unload/reload trap words (§10.2), and appended to a bounded
 * buffer (enc_wbuf.h) that keeps counting past its end. The same code
 * therefore sizes (dst == NULL) and writes, and the first error found wins.
 *
 * What the server does with what we send, and why some inputs are refused:
 *   - header values lose their leading spaces on the server, and empty
 *     values are dropped, so both are refused (the caller would otherwise
 *     get something other than what it asked for, e.g. an unmatched Job-UUID);
 *   - Content-Length is always ours: a caller-supplied one would desynchronise
 *     the body framing;
 *   - the server splits the command line on single spaces, so tokens that must
 *     stay one token (event names, filter header, sendevent name, uuids, log
 *     level) may not contain whitespace.
 */
#include "fsesl_proto.h"

#include <limits.h>
#include <string.h>

#include "enc_wbuf.h"
#include "proto_util.h"

enum {
	TRAP_UNLOAD = 1u << 0,
	TRAP_RELOAD = 1u << 1,
	TRAP_MES = 1u << 2, /* "mod_event_socket" */
};

struct enc {
	struct fsesl_wbuf w;
	int err; /* first error seen, 0 if none */
	unsigned trap;
};

static void
enc_init(struct enc *e, char *dst, size_t cap)
{
	fsesl_wbuf_init(&e->w, dst, cap);
	e->err = 0;
	e->trap = 0;
}

static void
enc_fail(struct enc *e, int err)
{
	if (!e->err)
		e->err = err;
}

static inline char
lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool
ci_prefix(const char *p, size_t n, const char *word, size_t wn)
{
	size_t i;

	if (n < wn)
		return false;
	for (i = 0; i < wn; i++)
		if (lc(p[i]) != word[i])
			return false;
	return true;
}

/*
 * One table lookup per byte decides whether a byte needs a closer look:
 * a line break or NUL (injection), or the first letter of a trap word.
 * Everything else (nearly every byte) costs one load and one branch.
 */
enum { CL_PLAIN = 0, CL_BREAK, CL_U, CL_R, CL_M };

static const unsigned char byte_class[256] = {
    ['\0'] = CL_BREAK,
    ['\n'] = CL_BREAK,
    ['\r'] = CL_BREAK,
    ['u'] = CL_U,
    ['U'] = CL_U,
    ['r'] = CL_R,
    ['R'] = CL_R,
    ['m'] = CL_M,
    ['M'] = CL_M,
};

/*
 * Checks one piece that must stay on its line and ORs the trap words it
 * holds into *trap. The server looks for the words anywhere in the header
 * block (strcasestr over the whole block). Scanning piece by piece finds
 * the same matches because every piece boundary we create is a space,
 * ": " or "\n", which none of the words contains; the bits are OR-ed over
 * the whole packet, so "unload" in one header and "mod_event_socket" in
 * another still trip. Returns false on CR, LF or NUL.
 */
static bool
scan_piece(const char *p, size_t n, unsigned *trap)
{
	size_t i;

	for (i = 0; i < n; i++) {
		switch (byte_class[(unsigned char)p[i]]) {
		case CL_PLAIN:
			break;
		case CL_BREAK:
			return false;
		case CL_U:
			if (ci_prefix(p + i, n - i, "unload", 6))
				*trap |= TRAP_UNLOAD;
			break;
		case CL_R:
			if (ci_prefix(p + i, n - i, "reload", 6))
				*trap |= TRAP_RELOAD;
			break;
		default:
			if (ci_prefix(p + i, n - i, "mod_event_socket", 16))
				*trap |= TRAP_MES;
			break;
		}
	}
	return true;
}

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

static bool
has_ws(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (is_ws(p[i]))
			return true;
	return false;
}

int
fsesl_check_line(const char *s, size_t len)
{
	size_t i;

	if (!s)
		return len ? FSESL_PERR_INVALID : 0;
	for (i = 0; i < len; i++)
		if (byte_class[(unsigned char)s[i]] == CL_BREAK)
			return FSESL_PERR_INJECTION;
	return 0;
}

/* A piece of the command line: must fit on the line. */
static void
enc_part(struct enc *e, const char *p, size_t n)
{
	if (!scan_piece(p, n, &e->trap)) {
		enc_fail(e, FSESL_PERR_INJECTION);
		return;
	}
	fsesl_wbuf_put(&e->w, p, n);
}

/* Our own fixed text (verbs, spaces): nothing to check. */
static void
enc_lit(struct enc *e, const char *s)
{
	fsesl_wbuf_puts(&e->w, s);
}

/* A required string argument: NULL or "" is FSESL_PERR_INVALID. */
static bool
enc_need(struct enc *e, const char *s)
{
	if (!s || !*s) {
		enc_fail(e, FSESL_PERR_INVALID);
		return false;
	}
	return true;
}

/* One line-token that the server must see as a single word. Line breaks
 * are injection; other whitespace only makes it the wrong token. */
static void
enc_token(struct enc *e, const char *s, size_t n)
{
	if (fsesl_check_line(s, n)) {
		enc_fail(e, FSESL_PERR_INJECTION);
		return;
	}
	if (has_ws(s, n)) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	enc_part(e, s, n);
}

static void
enc_header(struct enc *e, const struct fsesl_header *h, bool from_caller)
{
	size_t i;

	if (!h->name || !h->name_len || !h->value || !h->value_len) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	for (i = 0; i < h->name_len; i++) {
		char c = h->name[i];

		if (c == ':' || c == '\0' || is_ws(c)) {
			enc_fail(e, FSESL_PERR_INJECTION);
			return;
		}
	}
	if (!scan_piece(h->value, h->value_len, &e->trap)) {
		enc_fail(e, FSESL_PERR_INJECTION);
		return;
	}
	if (from_caller && fsesl_ci_eq(h->name, h->name_len, "content-length")) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	if (h->value[0] == ' ') {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	(void)scan_piece(h->name, h->name_len, &e->trap); /* name bytes checked above */
	fsesl_wbuf_put(&e->w, h->name, h->name_len);
	fsesl_wbuf_put(&e->w, ": ", 2);
	fsesl_wbuf_put(&e->w, h->value, h->value_len);
	fsesl_wbuf_putc(&e->w, '\n');
}

static void
enc_headers(struct enc *e, const struct fsesl_header *hdrs, size_t n)
{
	size_t i;

	if (n && !hdrs) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	for (i = 0; i < n && !e->err; i++)
		enc_header(e, &hdrs[i], true);
}

/* Ends the header block and appends the body. The body is framed by length,
 * so it may hold anything (the server keeps it as a C string, so a NUL cuts
 * its copy short, but framing is unaffected). */
static void
enc_end(struct enc *e, const char *body, size_t body_len)
{
	if (body_len && !body) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	if (body_len) {
		enc_lit(e, "Content-Length: ");
		fsesl_wbuf_putu(&e->w, body_len);
		fsesl_wbuf_putc(&e->w, '\n');
	}
	fsesl_wbuf_putc(&e->w, '\n');
	if (body_len)
		fsesl_wbuf_put(&e->w, body, body_len);
}

static ssize_t
enc_finish(struct enc *e, unsigned flags)
{
	if (e->err)
		return e->err;
	if (!(flags & FSESL_ENC_ALLOW_UNLOAD) && (e->trap & (TRAP_UNLOAD | TRAP_RELOAD)) &&
	    (e->trap & TRAP_MES))
		return FSESL_PERR_UNLOAD_TRAP;
	if (e->w.overflow || e->w.len > (size_t)SSIZE_MAX)
		return FSESL_PERR_TOO_LONG;
	if (e->w.full)
		return FSESL_PERR_BUFFER_TOO_SMALL;
	return (ssize_t)e->w.len;
}

/* ------------------------------------------------------------------ */
/* Generic command                                                      */
/* ------------------------------------------------------------------ */

static void
enc_cmd(struct enc *e, const struct fsesl_cmd *cmd)
{
	if (!cmd) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	if (!enc_need(e, cmd->line))
		return;
	enc_part(e, cmd->line, strlen(cmd->line));
	fsesl_wbuf_putc(&e->w, '\n');
	enc_headers(e, cmd->headers, cmd->n_headers);
	enc_end(e, cmd->body, cmd->body_len);
}

ssize_t
fsesl_cmd_size(const struct fsesl_cmd *cmd)
{
	struct enc e;
	ssize_t r;

	enc_init(&e, NULL, 0);
	enc_cmd(&e, cmd);
	r = enc_finish(&e, cmd ? cmd->flags : 0);
	if (r == FSESL_PERR_BUFFER_TOO_SMALL)
		return (ssize_t)e.w.len;
	return r;
}

ssize_t
fsesl_encode_cmd(char *dst, size_t cap, const struct fsesl_cmd *cmd)
{
	struct enc e;

	enc_init(&e, dst, cap);
	enc_cmd(&e, cmd);
	return enc_finish(&e, cmd ? cmd->flags : 0);
}

/* ------------------------------------------------------------------ */
/* Simple commands                                                      */
/* ------------------------------------------------------------------ */

/* "<verb> <arg>\n\n" where arg is the rest of the line, spaces allowed. */
static ssize_t
enc_verb_arg(char *dst, size_t cap, const char *verb, const char *arg, unsigned flags)
{
	struct enc e;

	enc_init(&e, dst, cap);
	if (enc_need(&e, arg)) {
		enc_lit(&e, verb);
		enc_part(&e, arg, strlen(arg));
		enc_lit(&e, "\n\n");
	}
	return enc_finish(&e, flags);
}

static ssize_t
enc_fixed(char *dst, size_t cap, const char *text)
{
	struct enc e;

	enc_init(&e, dst, cap);
	enc_lit(&e, text);
	return enc_finish(&e, 0);
}

/* The password is everything after "auth " up to the line end, spaces
 * included and compared exactly (docs/protocol.md §4.2), so it is copied
 * verbatim. */
ssize_t
fsesl_encode_auth(char *dst, size_t cap, const char *password)
{
	return enc_verb_arg(dst, cap, "auth ", password, 0);
}

/*
 * The server cuts "user@domain:pass" at the first '@', then the domain at
 * its first ':', and then re-splits the user part at a ':' if it has one
 * (the "user:pass@domain" form). So a ':' in the user part would silently
 * change the password, and a missing '@domain' is always -ERR invalid.
 */
ssize_t
fsesl_encode_userauth(char *dst, size_t cap, const char *user, const char *password)
{
	struct enc e;
	size_t ul;

	enc_init(&e, dst, cap);
	if (enc_need(&e, user) && enc_need(&e, password)) {
		ul = strlen(user);
		if (fsesl_check_line(user, ul)) {
			enc_fail(&e, FSESL_PERR_INJECTION);
		} else if (!memchr(user, '@', ul) || memchr(user, ':', ul) || user[0] == '@' ||
		           user[ul - 1] == '@') {
			enc_fail(&e, FSESL_PERR_INVALID);
		} else {
			enc_lit(&e, "userauth ");
			enc_part(&e, user, ul);
			fsesl_wbuf_putc(&e.w, ':');
			enc_part(&e, password, strlen(password));
			enc_lit(&e, "\n\n");
		}
	}
	return enc_finish(&e, 0);
}

ssize_t
fsesl_encode_api(char *dst, size_t cap, const char *cmd, unsigned flags)
{
	return enc_verb_arg(dst, cap, "api ", cmd, flags);
}

ssize_t
fsesl_encode_bgapi(char *dst, size_t cap, const char *cmd, const char *job_uuid, unsigned flags)
{
	struct enc e;
	struct fsesl_header h;

	enc_init(&e, dst, cap);
	if (!enc_need(&e, cmd))
		return enc_finish(&e, flags);
	enc_lit(&e, "bgapi ");
	enc_part(&e, cmd, strlen(cmd));
	fsesl_wbuf_putc(&e.w, '\n');
	if (job_uuid) {
		h.name = "Job-UUID";
		h.name_len = 8;
		h.value = job_uuid;
		h.value_len = strlen(job_uuid);
		enc_header(&e, &h, false);
		/* protocol.md §2.6: longer ones cut the reply's final "\n\n" off. */
		if (h.value_len > FSESL_MAX_JOB_UUID_LEN)
			enc_fail(&e, FSESL_PERR_TOO_LONG);
	}
	fsesl_wbuf_putc(&e.w, '\n');
	return enc_finish(&e, flags);
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                        */
/* ------------------------------------------------------------------ */

/* "CUSTOM" alone or "CUSTOM sub sub ...", any case. */
static bool
is_custom(const char *s, size_t n)
{
	return ci_prefix(s, n, "custom", 6) && (n == 6 || s[6] == ' ');
}

/*
 * The server takes every token after a CUSTOM token as a subclass name
 * (docs/protocol.md §5.3), so CUSTOM must come last, once, followed by
 * all subclasses. A "CUSTOM a b" entry contributes the subclasses a and b.
 */
static void
enc_names(struct enc *e, const char *const *names, size_t n)
{
	size_t i, len, j, k;
	bool custom = false;

	if (!names || !n) {
		enc_fail(e, FSESL_PERR_INVALID);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!enc_need(e, names[i]))
			return;
		len = strlen(names[i]);
		if (is_custom(names[i], len)) {
			if (fsesl_check_line(names[i], len))
				enc_fail(e, FSESL_PERR_INJECTION);
			custom = true;
			continue;
		}
		fsesl_wbuf_putc(&e->w, ' ');
		enc_token(e, names[i], len);
	}
	if (!custom)
		return;
	enc_lit(e, " CUSTOM");
	for (i = 0; i < n; i++) {
		len = strlen(names[i]);
		if (!is_custom(names[i], len))
			continue;
		for (j = 6; j < len;) {
			while (j < len && names[i][j] == ' ')
				j++;
			for (k = j; k < len && names[i][k] != ' '; k++)
				;
			if (k > j) {
				fsesl_wbuf_putc(&e->w, ' ');
				enc_token(e, names[i] + j, k - j);
			}
			j = k;
		}
	}
}

static const char *
fmt_word(enum fsesl_event_format fmt)
{
	switch (fmt) {
	case FSESL_EVFMT_PLAIN:
		return "plain";
	case FSESL_EVFMT_JSON:
		return "json";
	case FSESL_EVFMT_XML:
		return "xml";
	}
	return NULL;
}

ssize_t
fsesl_encode_event(
    char *dst, size_t cap, enum fsesl_event_format fmt, const char *const *names, size_t n_names)
{
	struct enc e;
	const char *word = fmt_word(fmt);

	enc_init(&e, dst, cap);
	if (!word) {
		enc_fail(&e, FSESL_PERR_INVALID);
		return enc_finish(&e, 0);
	}
	enc_lit(&e, "event ");
	enc_lit(&e, word);
	enc_names(&e, names, n_names);
	enc_lit(&e, "\n\n");
	return enc_finish(&e, 0);
}

ssize_t
fsesl_encode_nixevent(char *dst, size_t cap, const char *const *names, size_t n_names)
{
	struct enc e;

	enc_init(&e, dst, cap);
	enc_lit(&e, "nixevent");
	enc_names(&e, names, n_names);
	enc_lit(&e, "\n\n");
	return enc_finish(&e, 0);
}

ssize_t
fsesl_encode_noevents(char *dst, size_t cap)
{
	return enc_fixed(dst, cap, "noevents\n\n");
}

/*
 * The server reads "filter <name> <value...>": a first word of exactly
 * "delete" (any case) switches to deletion and "add" is skipped, so a
 * header really named like that needs the explicit "filter add" form.
 * The value is the rest of the line, spaces included.
 */
ssize_t
fsesl_encode_filter(char *dst, size_t cap, const char *header, const char *value)
{
	struct enc e;
	size_t hl;

	enc_init(&e, dst, cap);
	if (enc_need(&e, header) && enc_need(&e, value)) {
		hl = strlen(header);
		enc_lit(&e, "filter ");
		if (fsesl_ci_eq(header, hl, "add") || fsesl_ci_eq(header, hl, "delete"))
			enc_lit(&e, "add ");
		enc_token(&e, header, hl);
		fsesl_wbuf_putc(&e.w, ' ');
		enc_part(&e, value, strlen(value));
		enc_lit(&e, "\n\n");
	}
	return enc_finish(&e, 0);
}

ssize_t
fsesl_encode_filter_delete(char *dst, size_t cap, const char *header, const char *value)
{
	struct enc e;

	enc_init(&e, dst, cap);
	if (enc_need(&e, header) && (!value || enc_need(&e, value))) {
		enc_lit(&e, "filter delete ");
		enc_token(&e, header, strlen(header));
		if (value) {
			fsesl_wbuf_putc(&e.w, ' ');
			enc_part(&e, value, strlen(value));
		}
		enc_lit(&e, "\n\n");
	}
	return enc_finish(&e, 0);
}

/* ------------------------------------------------------------------ */
/* Commands with headers and a body                                     */
/* ------------------------------------------------------------------ */

static ssize_t
enc_with_headers(char *dst, size_t cap, const char *verb, const char *arg, bool arg_required,
    const struct fsesl_header *headers, size_t n_headers, const char *body, size_t body_len,
    unsigned flags)
{
	struct enc e;

	enc_init(&e, dst, cap);
	if (arg_required && !enc_need(&e, arg))
		return enc_finish(&e, flags);
	if (arg && !enc_need(&e, arg))
		return enc_finish(&e, flags);
	enc_lit(&e, verb);
	if (arg) {
		fsesl_wbuf_putc(&e.w, ' ');
		enc_token(&e, arg, strlen(arg));
	}
	fsesl_wbuf_putc(&e.w, '\n');
	enc_headers(&e, headers, n_headers);
	enc_end(&e, body, body_len);
	return enc_finish(&e, flags);
}

ssize_t
fsesl_encode_sendevent(char *dst, size_t cap, const char *name, const struct fsesl_header *headers,
    size_t n_headers, const char *body, size_t body_len, unsigned flags)
{
	return enc_with_headers(
	    dst, cap, "sendevent", name, true, headers, n_headers, body, body_len, flags);
}

ssize_t
fsesl_encode_sendmsg(char *dst, size_t cap, const char *uuid, const struct fsesl_header *headers,
    size_t n_headers, const char *body, size_t body_len, unsigned flags)
{
	return enc_with_headers(
	    dst, cap, "sendmsg", uuid, false, headers, n_headers, body, body_len, flags);
}

/* ------------------------------------------------------------------ */
/* Logging and exit                                                     */
/* ------------------------------------------------------------------ */

ssize_t
fsesl_encode_log(char *dst, size_t cap, const char *level)
{
	struct enc e;

	if (!level)
		return enc_fixed(dst, cap, "log\n\n");
	enc_init(&e, dst, cap);
	if (enc_need(&e, level)) {
		enc_lit(&e, "log ");
		enc_token(&e, level, strlen(level));
		enc_lit(&e, "\n\n");
	}
	return enc_finish(&e, 0);
}

ssize_t
fsesl_encode_nolog(char *dst, size_t cap)
{
	return enc_fixed(dst, cap, "nolog\n\n");
}

ssize_t
fsesl_encode_exit(char *dst, size_t cap)
{
	return enc_fixed(dst, cap, "exit\n\n");
}
