/*
 * sim_cmd.c - the commands that shape what a connection receives: event,
 * nixevent, noevents, myevents, filter, log, nolog; and sendevent and
 * sendmsg (docs/protocol.md §5.3-5.9, §8).
 */
#include "sim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool
sim_event_allowed(const struct sim_conn *c, const char *name)
{
	return !c->allowed_events || sim_list_has(c->allowed_events, name);
}

static void
sim_update_event_conns(struct sim_conn *c, bool on)
{
	if (c->events_on == on)
		return;
	c->events_on = on;
	if (on)
		c->s->n_event_conns++;
	else
		c->s->n_event_conns--;
}

static void
sim_subs_add(struct sim_conn *c, const char *sub)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcasecmp(c->subs[i], sub))
			return;
	char **n = realloc(c->subs, (c->n_subs + 1) * sizeof(*n));
	if (!n)
		return;
	c->subs = n;
	c->subs[c->n_subs] = strdup(sub);
	if (c->subs[c->n_subs])
		c->n_subs++;
}

static void
sim_subs_del(struct sim_conn *c, const char *sub)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcasecmp(c->subs[i], sub)) {
			free(c->subs[i]);
			c->subs[i] = c->subs[--c->n_subs];
			return;
		}
}

void
sim_subs_clear(struct sim_conn *c)
{
	for (size_t i = 0; i < c->n_subs; i++)
		free(c->subs[i]);
	free(c->subs);
	c->subs = NULL;
	c->n_subs = 0;
}

void
sim_cmd_event(struct sim_conn *c, char *line)
{
	char *p = line + 5; /* "event" prefix, anything may follow ("eventx") */
	char *tok, *save = NULL;
	bool custom = false, first = true;
	int keys = 0;

	/* Skip the rest of the command word ("eventx" is "event"). */
	while (*p && *p != ' ')
		p++;
	for (tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (first) {
			first = false;
			if (!strcasecmp(tok, "plain")) {
				c->fmt = FSESL_EVFMT_PLAIN;
				continue;
			}
			if (!strcasecmp(tok, "json")) {
				c->fmt = FSESL_EVFMT_JSON;
				continue;
			}
			if (!strcasecmp(tok, "xml")) {
				c->fmt = FSESL_EVFMT_XML;
				continue;
			}
		}
		if (custom) {
			if (!sim_event_allowed(c, "CUSTOM") && !sim_event_allowed(c, tok)) {
				sim_reply(c, "-ERR permission denied");
				return;
			}
			sim_subs_add(c, tok);
			keys++;
			continue;
		}
		int t = sim_ev_lookup(tok);
		if (t < 0)
			continue;
		if (!sim_event_allowed(c, sim_ev_names[t])) {
			sim_reply(c, "-ERR permission denied");
			return;
		}
		keys++;
		if (t == EV_ALL) {
			c->ev_all = true;
			for (int i = 0; i < EV__COUNT; i++)
				c->types[i] = true;
		} else {
			c->types[t] = true;
			if (t == EV_CUSTOM)
				custom = true;
		}
	}
	if (!keys) {
		sim_reply(c, "-ERR no keywords supplied");
		return;
	}
	sim_update_event_conns(c, true);
	sim_replyf(c, "+OK event listener enabled %s", sim_fmt_names[c->fmt]);
}

void
sim_cmd_nixevent(struct sim_conn *c, char *line)
{
	char *p = line + 8;
	char *tok, *save = NULL;
	bool custom = false;
	int keys = 0;

	while (*p && *p != ' ')
		p++;
	for (tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (custom) {
			sim_subs_del(c, tok);
			keys++;
			continue;
		}
		int t = sim_ev_lookup(tok);
		if (t < 0)
			continue;
		keys++;
		if (t == EV_ALL) {
			c->ev_all = false;
			memset(c->types, 0, sizeof(c->types));
			sim_subs_clear(c);
		} else {
			if (c->ev_all) {
				/* "ALL minus one": every type stays but this one. */
				c->ev_all = false;
				for (int i = 0; i < EV__COUNT; i++)
					c->types[i] = true;
			}
			c->types[t] = false;
			if (t == EV_CUSTOM)
				custom = true;
		}
	}
	if (!keys)
		sim_reply(c, "-ERR no keywords supplied");
	else
		sim_reply(c, "+OK events nixed");
}

void
sim_cmd_noevents(struct sim_conn *c)
{
	if (!c->events_on) {
		sim_reply(c, "-ERR not listening for events");
		return;
	}
	sim_update_event_conns(c, false);
	c->ev_all = false;
	memset(c->types, 0, sizeof(c->types));
	sim_subs_clear(c);
	while (c->q_len) {
		sim_event_unref(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	sim_reply(c, "+OK no longer listening for events");
}

void
sim_cmd_filter(struct sim_conn *c, char *line)
{
	char *name = line + 7;
	char *val;

	while (*name == ' ')
		name++;
	val = strchr(name, ' ');
	if (val)
		*val++ = '\0';
	if (!strcasecmp(name, "delete") && val) {
		name = val;
		val = strchr(name, ' ');
		if (val)
			*val++ = '\0';
		if (!strcasecmp(name, "all")) {
			for (size_t i = 0; i < c->n_filters; i++)
				sim_filter_free(&c->filters[i]);
			c->n_filters = 0;
		} else {
			for (size_t i = 0; i < c->n_filters;) {
				struct sim_filter *f = &c->filters[i];
				if (!strcasecmp(f->name, name) &&
				    (!val || !strcmp(f->value, val))) {
					sim_filter_free(f);
					memmove(f, f + 1, (c->n_filters - i - 1) * sizeof(*f));
					c->n_filters--;
				} else {
					i++;
				}
			}
		}
		sim_replyf(c, "+OK filter deleted. [%s][%s]", name, val ? val : "");
		return;
	}
	if (val && !strcasecmp(name, "add")) {
		name = val;
		val = strchr(name, ' ');
		if (val)
			*val++ = '\0';
	}
	if (!val || !*name) {
		sim_reply(c, "-ERR invalid syntax");
		return;
	}
	sim_filter_add(c, name, val);
	sim_replyf(c, "+OK filter added. [%s]=[%s]", name, val);
}

void
sim_cmd_sendevent(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt)
{
	struct fsesl_sim *s = c->s;
	char *name = line + 9;
	char uuid[37];
	const char *subclass = NULL;
	size_t sublen = 0;

	while (*name == ' ')
		name++;
	char *end = name + strlen(name);
	while (end > name && end[-1] == ' ')
		*--end = '\0';
	int type = sim_ev_lookup(name);
	if (type < 0 || type == EV_ALL)
		type = EV_CUSTOM; /* 1.10.12: unknown names become CUSTOM */
	if (type == EV_CUSTOM && sim_ev_lookup(name) == EV_CUSTOM)
		for (size_t i = 0; i < pkt->n_headers; i++)
			if (pkt->headers[i].name_len == 14 &&
			    !strncasecmp(pkt->headers[i].name, "Event-Subclass", 14)) {
				subclass = pkt->headers[i].value;
				sublen = pkt->headers[i].value_len;
				break;
			}
	sim_uuid(uuid);
	sim_replyf(c, "+OK %s", uuid);

	struct sim_event *ev = sim_event_alloc(type);
	if (!ev)
		return;
	if (subclass) {
		ev->subclass = sim_strndup(subclass, sublen);
		sim_event_add_n(ev, "Event-Subclass", 14, subclass, sublen);
	}
	/* The stored Command is cut at the first line end. */
	sim_event_add(ev, "Command", line);
	for (size_t i = 0; i < pkt->n_headers; i++) {
		const struct fsesl_header *h = &pkt->headers[i];
		if (subclass && h->value == subclass)
			continue;
		sim_event_add_n(ev, h->name, h->name_len, h->value, h->value_len);
	}
	sim_event_add(ev, "Event-UUID", uuid);
	sim_std_headers(s, ev, "mod_event_socket.c", "parse_command", 2275);
	if (pkt->body && pkt->body_len) {
		/* Stored as a C string: a NUL cuts the body short. */
		size_t bl = strnlen(pkt->body, pkt->body_len);
		sim_event_set_body(ev, pkt->body, bl);
	}
	sim_dispatch(s, ev);
}

void
sim_cmd_log(struct sim_conn *c, char *line)
{
	static const char *const names[8] = {
	    "console", "alert", "crit", "err", "warning", "notice", "info", "debug"};
	char *lv = line + 3;
	int level = -2;

	if (!c->allow_log) {
		sim_reply(c, "-ERR permission denied");
		return;
	}
	while (*lv == ' ')
		lv++;
	if (!*lv) {
		level = 7;
	} else if (*lv >= '0' && *lv <= '9') {
		level = atoi(lv);
		if (level > 63)
			level = 63;
	} else if (!strcasecmp(lv, "disable")) {
		level = -1;
	} else {
		for (int i = 0; i < 8; i++)
			if (!strcasecmp(lv, names[i]))
				level = i;
	}
	if (level == -2) {
		sim_reply(c, "-ERR invalid log level");
		return;
	}
	if (c->log_level < 0 && level >= 0)
		c->s->n_log_conns++;
	else if (c->log_level >= 0 && level < 0)
		c->s->n_log_conns--;
	c->log_level = level;
	sim_replyf(c, "+OK log level %s [%d]", lv, level);
}

void
sim_cmd_nolog(struct sim_conn *c)
{
	if (c->log_level < 0) {
		sim_reply(c, "-ERR not loging");
		return;
	}
	c->log_level = -1;
	c->s->n_log_conns--;
	c->logq.off = c->logq.len = 0;
	c->logq_n = 0;
	sim_reply(c, "+OK no longer logging");
}

static struct sim_chan *
sim_chan_find(struct fsesl_sim *s, const char *uuid)
{
	for (size_t i = 0; i < s->n_chans; i++)
		if (!strcmp(s->chans[i].uuid, uuid))
			return &s->chans[i];
	return NULL;
}

void
sim_cmd_sendmsg(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt)
{
	char *u = line + 7;
	char uuid[256] = "";

	while (*u == ' ')
		u++;
	snprintf(uuid, sizeof(uuid), "%s", u);
	if (!*uuid)
		for (size_t i = 0; i < pkt->n_headers; i++)
			if (pkt->headers[i].name_len == 10 &&
			    !strncasecmp(pkt->headers[i].name, "session-id", 10))
				snprintf(uuid, sizeof(uuid), "%.*s", (int)pkt->headers[i].value_len,
				    pkt->headers[i].value);
	if (!*uuid || !sim_chan_find(c->s, uuid)) {
		sim_replyf(c, "-ERR invalid session id [%s]", uuid);
		return;
	}
	sim_reply(c, "+OK");
}

void
sim_cmd_myevents(struct sim_conn *c, char *line)
{
	char *p = line + 9;
	char uuid[128] = "", fmt[16] = "";

	if (c->myevents) {
		sim_reply(c, "-ERR aready enabled.");
		return;
	}
	sscanf(p, "%127s %15s", uuid, fmt);
	bool known = *uuid && sim_chan_find(c->s, uuid);
	if (!known && *fmt) {
		sim_reply(c, "-ERR invalid uuid");
		return;
	}
	static const int chev[] = {EV_CHANNEL_ANSWER, EV_CHANNEL_APPLICATION, EV_CHANNEL_BRIDGE,
	    EV_CHANNEL_CREATE, EV_CHANNEL_DATA, EV_CHANNEL_DESTROY, EV_CHANNEL_EXECUTE,
	    EV_CHANNEL_EXECUTE_COMPLETE, EV_CHANNEL_HANGUP, EV_CHANNEL_HANGUP_COMPLETE,
	    EV_CHANNEL_ORIGINATE, EV_CHANNEL_UUID, EV_CHANNEL_OUTGOING, EV_CHANNEL_PARK,
	    EV_CHANNEL_PROGRESS, EV_CHANNEL_PROGRESS_MEDIA, EV_CHANNEL_STATE, EV_CHANNEL_UNBRIDGE,
	    EV_CHANNEL_UNPARK, EV_DETECTED_SPEECH, EV_DTMF, EV_NOTALK, EV_TALK};
	for (size_t i = 0; i < sizeof(chev) / sizeof(chev[0]); i++)
		c->types[chev[i]] = true;
	c->myevents = true;
	/* An unknown UUID without a format word lets every channel through. */
	if (known)
		c->myevents_uuid = strdup(uuid);
	sim_update_event_conns(c, true);
	sim_reply(c, "+OK Events Enabled");
}
