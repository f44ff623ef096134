/*
 * filter.c - a subscriber's event filters, with FreeSWITCH's rule.
 *
 * mod_event_socket applies `filter` to everything a connection carries;
 * fsesl applies the same rule per subscriber instead (events.c explains
 * why), so a user's filter strings behave as they would on the server:
 *
 *  - leading '+', '-' and spaces set the sign, the last one winning;
 *  - a value whose very first character is '/' is "/pattern/flags", a
 *    PCRE regular expression (flags i: caseless, s: dotall; others are
 *    ignored, as the server ignores them) - so "-/x/" is the text "/x/";
 *  - anything else compares case-insensitively for equality;
 *  - with filters, an event passes if a positive one matches and no
 *    negative one does; a filter on a header the event lacks does not
 *    match.
 *
 * Compiled in the caller's thread (fsesl_filter_add), matched by the
 * reactor only: each filter's match data is the reactor's, so matching
 * allocates nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "engine_int.h"

struct fsesl_evfilter {
	char *header;
	char *value; /* as given: the subscriber's table is keyed on it */
	const char *cmp; /* inside value, past the sign */
	bool neg;
	pcre2_code *re; /* "/pattern/flags" values */
	pcre2_match_data *md;
	unsigned int refs;
};

void
fsesl_evfilter_free(struct fsesl_evfilter *f)
{

	if (!f)
		return;
	pcre2_match_data_free(f->md);
	pcre2_code_free(f->re);
	free(f->header);
	free(f->value);
	free(f);
}

/* -EINVAL for a pattern without its closing '/' or that does not compile
 * (the server would log it and never match). */
int
fsesl_evfilter_new(const char *header, const char *value, struct fsesl_evfilter **out)
{
	struct fsesl_evfilter *f = calloc(1, sizeof(*f));
	const char *p, *end;
	uint32_t opts = 0;
	PCRE2_SIZE eoff;
	int ecode;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	f->refs = 1;
	f->header = strdup(header);
	f->value = strdup(value);
	if (!f->header || !f->value) {
		fsesl_evfilter_free(f);
		return -ENOMEM;
	}
	for (p = f->value; *p == '+' || *p == '-' || *p == ' '; p++)
		if (*p != ' ')
			f->neg = *p == '-';
	f->cmp = p;
	if (f->value[0] == '/') {
		end = strrchr(f->value + 1, '/');
		if (!end) {
			fsesl_evfilter_free(f);
			return -EINVAL;
		}
		if (strchr(end, 'i'))
			opts |= PCRE2_CASELESS;
		if (strchr(end, 's'))
			opts |= PCRE2_DOTALL;
		f->re = pcre2_compile((PCRE2_SPTR)(f->value + 1), (PCRE2_SIZE)(end - f->value - 1),
		    opts, &ecode, &eoff, NULL);
		if (!f->re) {
			fsesl_evfilter_free(f);
			return -EINVAL;
		}
		/* One pair is enough: only "matched or not" is asked. */
		f->md = pcre2_match_data_create(1, NULL);
		if (!f->md) {
			fsesl_evfilter_free(f);
			return -ENOMEM;
		}
	}
	*out = f;
	return 0;
}

/* Same header (case-insensitive, as event headers) and same value. */
bool
fsesl_evfilter_same(const struct fsesl_evfilter *f, const char *header, const char *value)
{

	return strcasecmp(f->header, header) == 0 && (!value || strcmp(f->value, value) == 0);
}

/* The subscriber's table counts references per (header, value). */
void
fsesl_evfilter_hold(struct fsesl_evfilter *f)
{

	f->refs++;
}

bool
fsesl_evfilter_release(struct fsesl_evfilter *f)
{

	return --f->refs == 0;
}

static bool
match(const struct fsesl_evfilter *f, const char *v)
{

	if (f->re)
		return pcre2_match(
		           f->re, (PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED, 0, 0, f->md, NULL) >= 0;
	return strcasecmp(f->cmp, v) == 0;
}

bool
fsesl_evfilters_pass(struct fsesl_evfilter *const *v, size_t n, const struct fsesl_event *ev)
{
	bool pass = false;
	const char *hv;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct fsesl_evfilter *f = v[i];

		if (pass && !f->neg)
			continue; /* already passing: only a negative one matters */
		hv = fsesl_event_get(ev, f->header);
		if (!hv || !match(f, hv))
			continue;
		if (f->neg)
			return false;
		pass = true;
	}
	return pass;
}
