/*
 * url.c - fs://[user]:password@host[:port][?EV1,EV2] server addresses.
 *
 * Splitting rules, chosen so that a password can be pasted in raw as long
 * as it holds no '%':
 *   - the scheme "fs://" is matched case-insensitively (RFC 3986 §3.1 says
 *     schemes are case-insensitive, so FS:// is the same address);
 *   - the credentials end at the LAST '@' of the URL: host, port and event
 *     names never contain '@', so a password may contain '@', '?', ':' ...;
 *   - the user is what comes before the FIRST ':' of the credentials, the
 *     password everything after it; both are percent-decoded (%HH, either
 *     case). The user may be empty (plain `auth`), the password may not;
 *   - then host: "[v6]" or up to the next ':' or '?', checked by
 *     fsesl_host_check() (the rule fsesl_server_get_by() applies too); port 1..65535
 *     (default 8021); after '?' a ','-separated event list, also
 *     percent-decoded (so "CUSTOM%20sofia::register" works).
 *
 * Error text: every failure writes one specific sentence into errbuf.
 * It never quotes the credentials; the host and the event names may be
 * quoted because they lie after the last '@', where no password byte can
 * be. The struct is wiped on failure so no partial password survives.
 */
#include "fsesl_proto.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int url_err(struct fsesl_url *out, char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
url_err(struct fsesl_url *out, char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (out)
		fsesl_url_clear(out);
	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return FSESL_PERR_BAD_URL;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum dec_status { DEC_OK, DEC_BAD_ESCAPE, DEC_CONTROL, DEC_TOO_LONG };

/*
 * Percent-decodes src[0..n) into dst (cap bytes incl. the NUL). Control
 * bytes (including a decoded %00, CR or LF) are refused: these strings end
 * up on a command line, where they would be injection, and a NUL would
 * silently shorten a C-string password.
 */
static enum dec_status
pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return DEC_BAD_ESCAPE;
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0)
				return DEC_BAD_ESCAPE;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return DEC_CONTROL;
		if (o + 1 >= cap)
			return DEC_TOO_LONG;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return DEC_OK;
}

static const char *
dec_reason(enum dec_status st)
{
	switch (st) {
	case DEC_BAD_ESCAPE:
		return "has a '%' not followed by two hex digits (write a literal '%' as %25)";
	case DEC_CONTROL:
		return "contains a control character (CR, LF, NUL, ...)";
	case DEC_TOO_LONG:
		return "is too long";
	case DEC_OK:
		break;
	}
	return "is invalid";
}

static int host_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
host_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return FSESL_PERR_INVALID;
}

static bool
label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* 253 bytes of name (RFC 1035's 255 on the wire, less its length bytes),
 * plus one trailing dot. */
#define HOST_NAME_MAX_LEN 253u

int
fsesl_host_check(const char *host, size_t len, char *out, size_t cap, char *errbuf, size_t errlen)
{
	unsigned char addr[16];
	char tmp[HOST_NAME_MAX_LEN + 2];
	bool numeric = true;
	size_t i, label = 0, n = len;
	const char *h = host;

	if (!host || !len)
		return host_err(errbuf, errlen, "missing host");
	if (h[0] == '[') {
		/* Brackets hold an IPv6 address, nothing else (RFC 3986). */
		if (h[n - 1] != ']' || n < 2)
			return host_err(errbuf, errlen, "IPv6 address without closing ']'");
		h++;
		n -= 2;
		if (n >= sizeof(tmp) || memchr(h, '\0', n))
			return host_err(errbuf, errlen, "IPv6 address is too long");
		memcpy(tmp, h, n);
		tmp[n] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1)
			return host_err(
			    errbuf, errlen, "\"%.64s\" is not a valid IPv6 address", tmp);
		goto ok;
	}
	if (n > HOST_NAME_MAX_LEN + (h[n - 1] == '.'))
		return host_err(
		    errbuf, errlen, "host name is too long (max %u bytes)", HOST_NAME_MAX_LEN);
	if (memchr(h, ':', n)) {
		/* Only an IPv6 address has a ':' (a URL wants it in brackets). */
		memcpy(tmp, h, n);
		tmp[n] = '\0';
		if (memchr(h, '\0', n) || inet_pton(AF_INET6, tmp, addr) != 1)
			return host_err(errbuf, errlen, "\"%.*s\" is not a valid IPv6 address",
			    (int)(n > 64 ? 64 : n), h);
		goto ok;
	}
	for (i = 0; i < n; i++) {
		if (h[i] == '.') {
			if (label == 0)
				return host_err(errbuf, errlen,
				    "host \"%.*s\" has an empty label (byte %zu)",
				    (int)(n > 64 ? 64 : n), h, i + 1);
			if (h[i - 1] == '-')
				return host_err(errbuf, errlen,
				    "host \"%.*s\": a label ends with '-' (byte %zu)",
				    (int)(n > 64 ? 64 : n), h, i);
			label = 0;
			continue;
		}
		if (!label_char(h[i]))
			return host_err(errbuf, errlen,
			    "host \"%.*s\" contains an invalid character (byte %zu)",
			    (int)(n > 64 ? 64 : n), h, i + 1);
		if (label == 0 && h[i] == '-')
			return host_err(errbuf, errlen,
			    "host \"%.*s\": a label starts with '-' (byte %zu)",
			    (int)(n > 64 ? 64 : n), h, i + 1);
		if (++label > 63)
			return host_err(errbuf, errlen,
			    "host \"%.*s\": a label is over 63 bytes (byte %zu)",
			    (int)(n > 64 ? 64 : n), h, i + 1);
		if (h[i] < '0' || h[i] > '9')
			numeric = false;
	}
	if (h[n - 1] == '-')
		return host_err(errbuf, errlen, "host \"%.*s\": a label ends with '-' (byte %zu)",
		    (int)(n > 64 ? 64 : n), h, n);
	/* All digits and dots: it is meant as an IPv4 address, and a resolver
	 * would happily turn a typo such as "10.0.0" into 10.0.0.0. */
	memcpy(tmp, h, n);
	tmp[n] = '\0';
	if (numeric && inet_pton(AF_INET, tmp, addr) != 1)
		return host_err(errbuf, errlen, "\"%s\" is not a valid IPv4 address", tmp);
ok:
	if (out) {
		if (n >= cap)
			return host_err(errbuf, errlen, "host name is too long (max %zu bytes)",
			    cap ? cap - 1 : 0);
		memcpy(out, h, n);
		out[n] = '\0';
	}
	return 0;
}

static int
parse_host(const char *h, size_t n, struct fsesl_url *out, char *errbuf, size_t errlen)
{

	if (fsesl_host_check(h, n, out->host, sizeof(out->host), errbuf, errlen) != 0) {
		fsesl_url_clear(out); /* errbuf says why */
		return FSESL_PERR_BAD_URL;
	}
	out->ipv6 = strchr(out->host, ':') != NULL;
	return 0;
}

static int
parse_port(const char *p, size_t n, struct fsesl_url *out, char *errbuf, size_t errlen)
{
	unsigned long v = 0;
	size_t i;

	if (!n)
		return url_err(out, errbuf, errlen, "empty port after ':' (omit the ':' for %u)",
		    FSESL_DEFAULT_PORT);
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return url_err(out, errbuf, errlen, "port \"%.*s\" is not a decimal number",
			    (int)(n > 16 ? 16 : n), p);
		v = v * 10 + (unsigned long)(p[i] - '0');
		if (v > 65535)
			return url_err(out, errbuf, errlen, "port %.*s is out of range (1-65535)",
			    (int)(n > 16 ? 16 : n), p);
	}
	if (v == 0)
		return url_err(out, errbuf, errlen, "port 0 is out of range (1-65535)");
	out->port = (uint16_t)v;
	return 0;
}

static int
parse_events(const char *p, size_t n, struct fsesl_url *out, char *errbuf, size_t errlen)
{
	size_t start = 0, end;
	enum dec_status st;

	if (!n)
		return url_err(out, errbuf, errlen, "empty event list after '?'");
	while (start <= n) {
		for (end = start; end < n && p[end] != ','; end++)
			;
		if (end == start)
			return url_err(out, errbuf, errlen,
			    "empty event name in the list (event %zu)", out->n_events + 1);
		if (out->n_events == FSESL_URL_MAX_EVENTS)
			return url_err(
			    out, errbuf, errlen, "too many events (max %u)", FSESL_URL_MAX_EVENTS);
		st = pct_decode(
		    p + start, end - start, out->events[out->n_events], sizeof(out->events[0]));
		if (st != DEC_OK)
			return url_err(
			    out, errbuf, errlen, "event %zu %s", out->n_events + 1, dec_reason(st));
		out->n_events++;
		start = end + 1;
	}
	return 0;
}

int
fsesl_url_parse(const char *url, struct fsesl_url *out, char *errbuf, size_t errlen)
{
	const char *at, *colon, *p, *end, *q, *hend;
	size_t len;
	enum dec_status st;
	int rc;

	if (!out)
		return url_err(NULL, errbuf, errlen, "no result structure given");
	fsesl_url_clear(out);
	if (!url)
		return url_err(out, errbuf, errlen, "no URL given");
	len = strlen(url);
	end = url + len;
	if (len < 5 || strncasecmp(url, "fs://", 5) != 0)
		return url_err(out, errbuf, errlen,
		    "URL must start with fs:// (fs://[user]:password@host[:port][?EVENTS])");
	p = url + 5;

	at = memrchr(p, '@', (size_t)(end - p));
	if (!at)
		return url_err(
		    out, errbuf, errlen, "missing credentials: expected fs://[user]:password@host");
	colon = memchr(p, ':', (size_t)(at - p));
	if (!colon)
		return url_err(out, errbuf, errlen,
		    "missing password: the credentials need a ':' (fs://[user]:password@host)");
	if (colon + 1 == at)
		return url_err(out, errbuf, errlen, "empty password");

	st = pct_decode(p, (size_t)(colon - p), out->user, sizeof(out->user));
	if (st != DEC_OK)
		return url_err(out, errbuf, errlen, "user name %s", dec_reason(st));
	st = pct_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof(out->password));
	if (st != DEC_OK)
		return url_err(out, errbuf, errlen, "password %s", dec_reason(st));

	/* Host part: [at+1, q), events after q. */
	p = at + 1;
	q = memchr(p, '?', (size_t)(end - p));
	if (!q)
		q = end;
	if (memchr(p, '/', (size_t)(q - p)))
		return url_err(
		    out, errbuf, errlen, "unexpected '/' after the host (no path allowed)");
	if (p == q || *p == ':')
		return url_err(out, errbuf, errlen, "missing host after '@'");

	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(q - p));
		if (!hend)
			return url_err(out, errbuf, errlen, "IPv6 address without closing ']'");
		rc = parse_host(p, (size_t)(hend + 1 - p), out, errbuf, errlen);
		if (rc)
			return rc;
		p = hend + 1;
		if (p != q && *p != ':')
			return url_err(out, errbuf, errlen, "unexpected text after ']'");
	} else {
		hend = memchr(p, ':', (size_t)(q - p));
		if (!hend)
			hend = q;
		else if (memchr(hend + 1, ':', (size_t)(q - hend - 1)))
			return url_err(out, errbuf, errlen,
			    "too many ':' after the host (write IPv6 addresses as [addr])");
		rc = parse_host(p, (size_t)(hend - p), out, errbuf, errlen);
		if (rc)
			return rc;
		p = hend;
	}

	out->port = FSESL_DEFAULT_PORT;
	if (p < q) { /* *p == ':' */
		rc = parse_port(p + 1, (size_t)(q - p - 1), out, errbuf, errlen);
		if (rc)
			return rc;
	}
	if (q < end) {
		rc = parse_events(q + 1, (size_t)(end - q - 1), out, errbuf, errlen);
		if (rc)
			return rc;
	}
	if (errbuf && errlen)
		errbuf[0] = '\0';
	return 0;
}

void
fsesl_url_clear(struct fsesl_url *u)
{
	/* explicit_bzero: a plain memset before the struct dies may be
	 * optimised away, leaving the password in memory. */
	if (u)
		explicit_bzero(u, sizeof(*u));
}
