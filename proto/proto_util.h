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
