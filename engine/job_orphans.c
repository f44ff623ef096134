/*
 * job_orphans.c - the bounded, short-lived store of unmatched
 * BACKGROUND_JOB results (job_orphans.h). At most 64 entries: arrays and
 * linear scans, no hashing.
 */
#include <string.h>

#include "job_orphans.h"

static void
drop(struct fsesl_orphans *o, unsigned int i)
{

	o->n--;
	memmove(&o->v[i], &o->v[i + 1], (o->n - i) * sizeof(o->v[0]));
}

unsigned int
fsesl_orphans_put(struct fsesl_orphans *o, struct fsesl_event *ev, uint64_t now_ns)
{
	unsigned int dropped = 0;

	if (o->n == FSESL_ORPHANS_MAX) {
		fsesl_event_free(o->v[0].ev);
		drop(o, 0);
		dropped = 1;
	}
	o->v[o->n].ev = ev;
	o->v[o->n].at_ns = now_ns;
	o->n++;
	return dropped;
}

struct fsesl_event *
fsesl_orphans_take(struct fsesl_orphans *o, const char *id)
{
	struct fsesl_event *ev;

	for (unsigned int i = 0; i < o->n; i++) {
		if (strcmp(o->v[i].ev->job_uuid, id) != 0)
			continue;
		ev = o->v[i].ev;
		drop(o, i);
		return ev;
	}
	return NULL;
}

unsigned int
fsesl_orphans_expire(struct fsesl_orphans *o, uint64_t now_ns)
{
	unsigned int k = 0;

	/* Oldest first: the expired ones are a prefix. */
	while (k < o->n && now_ns - o->v[k].at_ns > FSESL_ORPHAN_AGE_NS)
		fsesl_event_free(o->v[k++].ev);
	memmove(&o->v[0], &o->v[k], (o->n - k) * sizeof(o->v[0]));
	o->n -= k;
	return k;
}

unsigned int
fsesl_orphans_clear(struct fsesl_orphans *o)
{
	unsigned int n = o->n;

	for (unsigned int i = 0; i < n; i++)
		fsesl_event_free(o->v[i].ev);
	o->n = 0;
	return n;
}
