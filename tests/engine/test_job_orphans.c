/*
 * test_job_orphans.c - the store of unmatched BACKGROUND_JOB results
 * (engine/job_orphans.c): claimed by id once, bounded in count (the oldest
 * goes first) and in age, every drop reported so the engine can count it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "job_orphans.h"

#define SEC 1000000000ull

static struct fsesl_event *
job(unsigned int i)
{
	char txt[128];
	struct fsesl_event *ev = NULL;
	int n = snprintf(
	    txt, sizeof(txt), "Event-Name: BACKGROUND_JOB\nJob-UUID: id-%u\n\nresult %u", i, i);

	cr_assert_eq(fsesl_event_parse(FSESL_EVFMT_PLAIN, txt, (size_t)n, NULL, &ev), 0);
	return ev;
}

Test(orphans, claimed_once_by_id)
{
	struct fsesl_orphans o = {0};
	struct fsesl_event *ev;

	cr_assert_eq(fsesl_orphans_put(&o, job(1), 0), 0);
	cr_assert_eq(fsesl_orphans_put(&o, job(2), 0), 0);
	cr_assert_null(fsesl_orphans_take(&o, "id-3"));
	ev = fsesl_orphans_take(&o, "id-2");
	cr_assert_not_null(ev);
	cr_assert_str_eq(ev->body, "result 2");
	fsesl_event_free(ev);
	cr_assert_null(fsesl_orphans_take(&o, "id-2"));
	cr_assert_eq(fsesl_orphans_clear(&o), 1);
	cr_assert_null(fsesl_orphans_take(&o, "id-1"));
}

Test(orphans, count_bound_drops_the_oldest)
{
	struct fsesl_orphans o = {0};
	unsigned int i, dropped = 0;
	struct fsesl_event *ev;

	for (i = 0; i < FSESL_ORPHANS_MAX + 10; i++)
		dropped += fsesl_orphans_put(&o, job(i), i);
	cr_assert_eq(dropped, 10);
	cr_assert_eq(o.n, FSESL_ORPHANS_MAX);
	/* id-0 .. id-9 made room; id-10 .. id-73 are kept. */
	cr_assert_null(fsesl_orphans_take(&o, "id-0"));
	cr_assert_null(fsesl_orphans_take(&o, "id-9"));
	ev = fsesl_orphans_take(&o, "id-10");
	cr_assert_not_null(ev);
	fsesl_event_free(ev);
	ev = fsesl_orphans_take(&o, "id-73");
	cr_assert_not_null(ev);
	fsesl_event_free(ev);
	cr_assert_eq(fsesl_orphans_clear(&o), FSESL_ORPHANS_MAX - 2);
}

Test(orphans, age_bound_on_the_engine_clock)
{
	struct fsesl_orphans o = {0};
	struct fsesl_event *ev;

	fsesl_orphans_put(&o, job(1), 100 * SEC);
	fsesl_orphans_put(&o, job(2), 105 * SEC);
	/* Exactly at the bound: still kept. */
	cr_assert_eq(fsesl_orphans_expire(&o, 100 * SEC + FSESL_ORPHAN_AGE_NS), 0);
	cr_assert_eq(fsesl_orphans_expire(&o, 100 * SEC + FSESL_ORPHAN_AGE_NS + 1), 1);
	cr_assert_null(fsesl_orphans_take(&o, "id-1"));
	ev = fsesl_orphans_take(&o, "id-2");
	cr_assert_not_null(ev);
	fsesl_event_free(ev);
	cr_assert_eq(o.n, 0);
}
