/*
 * events.c - the event path (text/event-*), subscriptions, HEARTBEAT
 * statistics and bgapi jobs.
 *
 * This step provides the hook only: the reactor hands every event
 * message to fsesl_event_dispatch(), which decodes it, rejects forged
 * HEARTBEAT / BACKGROUND_JOB (a Command header, esl-protocol.md §7.4) and
 * counts it. Routing to subscribers, HEARTBEAT load and job completion
 * plug in here; until then their public calls return -ENOSYS so that the
 * library links and callers get a clear answer.
 */
#include <errno.h>
#include <string.h>

#include "engine_int.h"

void
fsesl_event_dispatch(struct fsesl_engine *e, struct fsesl_srv *s, const struct fsesl_msg *m)
{
	enum fsesl_event_format fmt;
	struct fsesl_event *ev = NULL;

	switch (m->type) {
	case FSESL_MSG_EVENT_JSON:
		fmt = FSESL_EVFMT_JSON;
		break;
	case FSESL_MSG_EVENT_XML:
		fmt = FSESL_EVFMT_XML;
		break;
	default:
		fmt = FSESL_EVFMT_PLAIN;
		break;
	}
	if (!m->body || fsesl_event_parse(fmt, m->body, m->body_len, &e->lim, &ev) != 0)
		return; /* undecodable event: dropped, the stream stays in step */
	if (ev->forged && ev->name &&
	    (strcmp(ev->name, "HEARTBEAT") == 0 || strcmp(ev->name, "BACKGROUND_JOB") == 0))
		FSESL_STAT_ADD(s->st.forged_events, 1);
	else if (ev->name && strcmp(ev->name, "BACKGROUND_JOB") == 0)
		FSESL_STAT_ADD(s->st.unknown_jobs, 1); /* no job table yet */
	fsesl_event_free(ev);
}

int
fsesl_bgapi_job(fsesl_engine *e, fsesl_server_t srv, const char *cmd, int job_timeout_ms,
    const fsesl_cmd_opts *opts, struct fsesl_event **result)
{

	if (result)
		*result = NULL;
	return -ENOSYS;
}

int
fsesl_bgapi_job_async(fsesl_engine *e, fsesl_server_t srv, const char *cmd, int job_timeout_ms,
    const fsesl_cmd_opts *opts, fsesl_job_cb cb, void *ud)
{

	return -ENOSYS;
}

int
fsesl_subscriber_create(fsesl_engine *e, const char *tag, const fsesl_sub_opts *opts,
    fsesl_subscriber **out)
{

	if (out)
		*out = NULL;
	return -ENOSYS;
}

void
fsesl_subscriber_destroy(fsesl_subscriber *s)
{

	return;
}

int
fsesl_subscribe(fsesl_subscriber *s, fsesl_server_t srv, const char *event)
{

	return -ENOSYS;
}

int
fsesl_unsubscribe(fsesl_subscriber *s, fsesl_server_t srv, const char *event)
{

	return -ENOSYS;
}

int
fsesl_filter_add(fsesl_subscriber *s, fsesl_server_t srv, const char *header, const char *value)
{

	return -ENOSYS;
}

int
fsesl_filter_del(fsesl_subscriber *s, fsesl_server_t srv, const char *header, const char *value)
{

	return -ENOSYS;
}

int
fsesl_subscriber_next(fsesl_subscriber *s, fsesl_delivery *d, int timeout_ms)
{

	return -ENOSYS;
}

int
fsesl_subscriber_fd(const fsesl_subscriber *s)
{

	return -ENOSYS;
}

uint64_t
fsesl_subscriber_dropped(const fsesl_subscriber *s)
{

	return 0;
}

int
fsesl_server_load(fsesl_engine *e, fsesl_server_t srv, fsesl_load *out)
{

	return -ENOSYS;
}

int
fsesl_pick_least_loaded(fsesl_engine *e, const fsesl_server_t *srvs, size_t n)
{

	return -ENOSYS;
}

void
fsesl_delivery_release(fsesl_delivery *d)
{

	if (d)
		d->_priv = NULL;
}
