/*
 * sim_event.c - one event: its type names (switch_name_event's table), its
 * headers, the standard headers the core adds (docs/protocol.md §7.5), and
 * its wire form in each format, serialised once however many connections
 * receive it.
 */
#include "sim_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *const sim_ev_names[EV__COUNT] = {
#define SIM_EV_NAME(n) #n,
    SIM_EVENTS(SIM_EV_NAME)
#undef SIM_EV_NAME
};

/* switch_name_event(): exact name, or any 13-character prefix before it. */
int
sim_ev_lookup(const char *name)
{
	size_t len = strlen(name);

	for (int i = 0; i < EV__COUNT; i++) {
		if (!strcasecmp(name, sim_ev_names[i]))
			return i;
		if (len > 13 && !strcasecmp(name + 13, sim_ev_names[i]))
			return i;
	}
	return -1;
}

struct sim_event *
sim_event_alloc(int type)
{
	struct sim_event *ev = calloc(1, sizeof(*ev));

	if (ev) {
		ev->refs = 1;
		ev->type = type;
	}
	return ev;
}

int
sim_event_add_n(struct sim_event *ev, const char *name, size_t nlen, const char *val, size_t vlen)
{
	if (ev->n == ev->cap) {
		size_t ncap = ev->cap ? ev->cap * 2 : 32;
		struct fsesl_header *nh = realloc(ev->h, ncap * sizeof(*nh));
		if (!nh)
			return -1;
		ev->h = nh;
		ev->cap = ncap;
	}
	char *m = malloc(nlen + vlen + 2);
	if (!m)
		return -1;
	memcpy(m, name, nlen);
	m[nlen] = '\0';
	memcpy(m + nlen + 1, val, vlen);
	m[nlen + 1 + vlen] = '\0';
	ev->h[ev->n].name = m;
	ev->h[ev->n].name_len = nlen;
	ev->h[ev->n].value = m + nlen + 1;
	ev->h[ev->n].value_len = vlen;
	ev->n++;
	return 0;
}

int
sim_event_add(struct sim_event *ev, const char *name, const char *val)
{
	return sim_event_add_n(ev, name, strlen(name), val, strlen(val));
}

int
sim_event_addf(struct sim_event *ev, const char *name, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return sim_event_add(ev, name, tmp);
}

int
sim_event_set_body(struct sim_event *ev, const char *body, size_t len)
{
	free(ev->body);
	ev->body = malloc(len + 1);
	if (!ev->body)
		return -1;
	memcpy(ev->body, body, len);
	ev->body[len] = '\0';
	ev->body_len = len;
	return 0;
}

const char *
sim_event_get(const struct sim_event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n; i++)
		if (!strcasecmp(ev->h[i].name, name))
			return ev->h[i].value;
	return NULL;
}

void
sim_event_unref(struct sim_event *ev)
{
	if (!ev || --ev->refs)
		return;
	if (ev->tmpl) {
		/* A flood event: its strings are the template's. */
		sim_event_unref(ev->tmpl);
	} else {
		for (size_t i = 0; i < ev->n; i++)
			free((char *)ev->h[i].name);
		free(ev->subclass);
	}
	free(ev->h);
	free(ev->body);
	for (int f = 0; f < 3; f++)
		free(ev->wire[f]);
	free(ev);
}

const char *const sim_fmt_names[3] = {"plain", "json", "xml"};

/* The text/event-* message for one format, cached on the event. */
int
sim_event_wire(struct sim_event *ev, int fmt, const char **out, size_t *out_len)
{
	if (!ev->wire[fmt] && ev->tmpl) {
		if (sim_flood_wire(ev, fmt))
			return -1;
	} else if (!ev->wire[fmt]) {
		size_t bl = ev->body ? ev->body_len : 0;
		size_t cap =
		    fsesl_event_serialize_size((enum fsesl_event_format)fmt, ev->h, ev->n, bl) +
		    128;
		char *w = malloc(cap);
		if (!w)
			return -1;
		/* Leave room for the envelope; it is prepended once the length is known. */
		ssize_t n = fsesl_event_serialize(
		    w + 96, cap - 96, (enum fsesl_event_format)fmt, ev->h, ev->n, ev->body, bl);
		if (n < 0) {
			free(w);
			return -1;
		}
		char env[96];
		int el = snprintf(env, sizeof(env),
		    "Content-Length: %zd\nContent-Type: text/event-%s\n\n", n, sim_fmt_names[fmt]);
		memmove(w + el, w + 96, (size_t)n);
		memcpy(w, env, (size_t)el);
		ev->wire[fmt] = w;
		ev->wire_len[fmt] = (size_t)el + (size_t)n;
	}
	*out = ev->wire[fmt];
	*out_len = ev->wire_len[fmt];
	return 0;
}

static void
sim_date_headers(struct fsesl_sim *s, struct sim_event *ev)
{
	uint64_t us = sim_wall_us();
	time_t t = (time_t)(us / 1000000u);
	struct tm lt, gt;
	char b1[64], b2[64];

	if (us <= s->last_ts_us)
		us = s->last_ts_us + 1;
	s->last_ts_us = us;
	localtime_r(&t, &lt);
	gmtime_r(&t, &gt);
	strftime(b1, sizeof(b1), "%Y-%m-%d %H:%M:%S", &lt);
	strftime(b2, sizeof(b2), "%a, %d %b %Y %H:%M:%S GMT", &gt);
	sim_event_add(ev, "Event-Date-Local", b1);
	sim_event_add(ev, "Event-Date-GMT", b2);
	sim_event_addf(ev, "Event-Date-Timestamp", "%llu", (unsigned long long)us);
}

/* The standard headers of §7.5, in order. */
void
sim_std_headers(
    struct fsesl_sim *s, struct sim_event *ev, const char *file, const char *func, int line)
{
	sim_event_add(ev, "Event-Name", sim_ev_names[ev->type]);
	sim_event_add(ev, "Core-UUID", s->core_uuid);
	sim_event_add(ev, "FreeSWITCH-Hostname", s->hostname);
	sim_event_add(ev, "FreeSWITCH-Switchname", s->hostname);
	sim_event_add(ev, "FreeSWITCH-IPv4", s->cfg.ipv4 ? s->cfg.ipv4 : "127.0.0.1");
	if (!s->cfg.ipv6 || *s->cfg.ipv6)
		sim_event_add(ev, "FreeSWITCH-IPv6", s->cfg.ipv6 ? s->cfg.ipv6 : "::1");
	sim_date_headers(s, ev);
	sim_event_add(ev, "Event-Calling-File", file);
	sim_event_add(ev, "Event-Calling-Function", func);
	sim_event_addf(ev, "Event-Calling-Line-Number", "%d", line);
	ev->seq = ++s->seq;
	sim_event_addf(ev, "Event-Sequence", "%llu", (unsigned long long)ev->seq);
}

/* A new event with its standard headers; CUSTOM puts Event-Subclass first,
 * as mod_event_socket's copy does. */
struct sim_event *
sim_event_std(struct fsesl_sim *s, int type, const char *subclass, const char *file,
    const char *func, int line)
{
	struct sim_event *ev = sim_event_alloc(type);

	if (!ev)
		return NULL;
	if (type == EV_CUSTOM && subclass && *subclass) {
		ev->subclass = strdup(subclass);
		sim_event_add(ev, "Event-Subclass", subclass);
	}
	sim_std_headers(s, ev, file, func, line);
	return ev;
}
