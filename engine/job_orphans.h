/*
 * job_orphans.h - BACKGROUND_JOB results that matched no job, kept briefly
 * for a job whose bgapi reply has not been read yet (not installed).
 *
 * A server that assigns its own Job-UUID names it in the bgapi reply; the
 * job is known by that id only once the reply is read. When the bgapi went
 * out on another connection than the one carrying results, the result can
 * come first. The engine then keeps it here, and the reply claims it.
 * Bounded in count (FSESL_ORPHANS_MAX, the oldest goes first) and in age
 * (FSESL_ORPHAN_AGE_NS of engine time); the engine keeps results only while
 * one of its jobs on that server is waiting for its reply, and drops them
 * all once none is. Reactor only; no locking.
 */
#ifndef FSESL_JOB_ORPHANS_H
#define FSESL_JOB_ORPHANS_H

#include <stdint.h>

#include "fsesl_proto.h"

#define FSESL_ORPHANS_MAX 64u
#define FSESL_ORPHAN_AGE_NS (10ull * 1000000000ull)

struct fsesl_orphans {
	unsigned int n;
	struct {
		struct fsesl_event *ev; /* has a job_uuid */
		uint64_t at_ns;
	} v[FSESL_ORPHANS_MAX]; /* oldest first */
};

/* Keeps ev (taken over; ev->job_uuid set). Returns how many older results
 * made room for it (0 or 1; freed). */
unsigned int fsesl_orphans_put(struct fsesl_orphans *o, struct fsesl_event *ev, uint64_t now_ns);
/* The result kept for job id (handed to the caller), or NULL. */
struct fsesl_event *fsesl_orphans_take(struct fsesl_orphans *o, const char *id);
/* Frees the results older than FSESL_ORPHAN_AGE_NS; returns how many. */
unsigned int fsesl_orphans_expire(struct fsesl_orphans *o, uint64_t now_ns);
/* Frees every result; returns how many. */
unsigned int fsesl_orphans_clear(struct fsesl_orphans *o);

#endif
