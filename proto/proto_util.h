/*
 * proto_util.h - small lookups shared by the proto/ sources. Internal;
 * static inline only, like enc_wbuf.h.
 */
#ifndef FSESL_PROTO_UTIL_H
#define FSESL_PROTO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "fsesl_proto.h"

/* p[0..n) equals the lower-case `word`, ASCII case-insensitively (no
 * locale: the protocol's keywords are ASCII). */
static inline bool
fsesl_ci_eq(const char *p, size_t n, const char *word)
{
	size_t i;

	if (strlen(word) != n)
		return false;
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + ('a' - 'A'));
		if (c != word[i])
			return false;
	}
	return true;
}

/* Writes code point cp as UTF-8; returns its length, 0 if it is not a
 * character a header may hold (NUL, a surrogate, beyond U+10FFFF). */
static inline size_t
fsesl_utf8_put(unsigned long cp, char *dst)
{
	unsigned char *d = (unsigned char *)dst;

	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	if (cp < 0x80) {
		d[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (unsigned char)(0xC0 | cp >> 6);
		d[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (unsigned char)(0xE0 | cp >> 12);
		d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		d[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (unsigned char)(0xF0 | cp >> 18);
	d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	d[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* An event's first header called `name` (case-insensitive), or NULL. */
static inline const struct fsesl_header *
fsesl_event_find(const struct fsesl_event *ev, const char *name)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < ev->n_headers; i++) {
		const struct fsesl_header *h = &ev->headers[i];

		if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0)
			return h;
	}
	return NULL;
}

#endif
