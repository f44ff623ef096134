/*
 * sim_flood.c - the EVENT_FLOOD fault: CUSTOM sim::flood events at a set
 * rate, fast enough that a benchmark measures its subscriber, not this.
 *
 * Built one by one, a flood event cost ~10 µs of the loop (a dozen mallocs,
 * two strftime()s, URL-encoding every value on serialisation), and the loop
 * woke and wrote once per event: about 100,000 events/s on a quiet 2-vCPU
 * VM, far less on a busy one. Now:
 *   - the events share a template, rebuilt every 20 ms (the real server's
 *     timestamp step) or when the Core-UUID changes: only Event-Sequence
 *     and Flood-Seq differ. A flood event borrows the template's headers,
 *     with its own two values, so subscriptions and filters see a whole
 *     event; its wire form is the template's, serialised once per format
 *     with markers in place of those two values, cut and patched;
 *   - the flood runs in ticks of SIM_FLOOD_TICK_NS: every event due since
 *     the last tick is fired at once, and the loop writes them to each
 *     subscriber in one send().
 */
#include "sim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Letters only: no format encodes them (plain URL-encodes, JSON and XML
 * escape), so they can be found in every wire form. */
#define SIM_FLOOD_MARK_SEQ "zqSEQqz"
#define SIM_FLOOD_MARK_FSEQ "zqFLOODqz"
/* The real server stamps events in 20 ms steps. */
#define SIM_FLOOD_TMPL_NS (20000000ull)

static int
sim_event_set_value(struct sim_event *ev, size_t i, const char *val)
{
	const struct fsesl_header *h = &ev->h[i];
	size_t nl = h->name_len, vl = strlen(val);
	char *m = malloc(nl + vl + 2);

	if (!m)
		return -1;
	memcpy(m, h->name, nl + 1);
	memcpy(m + nl + 1, val, vl + 1);
	free((char *)h->name);
	ev->h[i] = (struct fsesl_header){m, nl, m + nl + 1, vl};
	return 0;
}

static struct sim_event *
sim_flood_template(struct fsesl_sim *s)
{
	struct sim_event *ev =
	    sim_event_std(s, EV_CUSTOM, "sim::flood", "fsesl_sim.c", "sim_flood", 1);

	if (!ev)
		return NULL;
	s->seq--; /* the template is not an event: its number is the next one's */
	ev->mark_i[0] = ev->n - 1; /* Event-Sequence, the last standard header */
	if (sim_event_set_value(ev, ev->mark_i[0], SIM_FLOOD_MARK_SEQ) ||
	    sim_event_add(ev, "Flood-Seq", SIM_FLOOD_MARK_FSEQ)) {
		sim_event_unref(ev);
		return NULL;
	}
	ev->mark_i[1] = ev->n - 1;
	return ev;
}

/* The template to use now (s->lk held): rebuilt when stale. */
static struct sim_event *
sim_flood_current(struct fsesl_sim *s, uint64_t now)
{
	struct sim_event *t = s->flood_tmpl;

	if (t && now - s->flood_tmpl_at < SIM_FLOOD_TMPL_NS &&
	    !strcmp(sim_event_get(t, "Core-UUID"), s->core_uuid))
		return t;
	struct sim_event *n = sim_flood_template(s);
	if (!n)
		return NULL;
	sim_event_unref(t);
	s->flood_tmpl = n;
	s->flood_tmpl_at = now;
	return n;
}

static size_t
sim_u64_digits(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		buf[i++] = tmp[--n];
	buf[i] = '\0';
	return i;
}

/* One flood event: the template's headers, its own two values. */
static struct sim_event *
sim_flood_event(struct sim_event *t, uint64_t seq, uint64_t fseq)
{
	struct sim_event *ev = sim_event_alloc(EV_CUSTOM);

	if (!ev)
		return NULL;
	ev->h = malloc(t->n * sizeof(*ev->h));
	if (!ev->h) {
		free(ev);
		return NULL;
	}
	memcpy(ev->h, t->h, t->n * sizeof(*ev->h));
	ev->n = t->n;
	ev->subclass = t->subclass; /* borrowed, like the header strings */
	ev->tmpl = t;
	t->refs++;
	ev->seq = seq;
	uint64_t v[2] = {seq, fseq};
	for (int k = 0; k < 2; k++) {
		struct fsesl_header *h = &ev->h[t->mark_i[k]];
		h->value = ev->digits[k];
		h->value_len = sim_u64_digits(ev->digits[k], v[k]);
	}
	return ev;
}

/* Where the template's wire form for fmt carries its two markers. */
static int
sim_flood_cut(struct sim_event *t, int fmt)
{
	const char *w;
	size_t wl;

	if (t->cut[fmt][1])
		return 0;
	if (sim_event_wire(t, fmt, &w, &wl))
		return -1;
	const char *a = memmem(w, wl, SIM_FLOOD_MARK_SEQ, sizeof(SIM_FLOOD_MARK_SEQ) - 1);
	const char *b = memmem(w, wl, SIM_FLOOD_MARK_FSEQ, sizeof(SIM_FLOOD_MARK_FSEQ) - 1);
	if (!a || !b || b < a)
		return -1;
	t->cut[fmt][0] = (size_t)(a - w);
	t->cut[fmt][1] = (size_t)(b - w);
	return 0;
}

/* A flood event's wire form: the template's, with its own digits in place
 * of the markers and its own Content-Length (called by sim_event_wire). */
int
sim_flood_wire(struct sim_event *ev, int fmt)
{
	struct sim_event *t = ev->tmpl;

	if (sim_flood_cut(t, fmt))
		return -1;
	const char *w = t->wire[fmt];
	size_t wl = t->wire_len[fmt];
	/* The envelope ends at the first blank line; the payload follows. */
	const char *pay = memmem(w, wl, "\n\n", 2);
	if (!pay)
		return -1;
	pay += 2;
	size_t env = (size_t)(pay - w), a = t->cut[fmt][0], b = t->cut[fmt][1];
	size_t la = sizeof(SIM_FLOOD_MARK_SEQ) - 1, lb = sizeof(SIM_FLOOD_MARK_FSEQ) - 1;
	size_t da = strlen(ev->digits[0]), db = strlen(ev->digits[1]);
	size_t plen = wl - env - la - lb + da + db;
	char head[96];
	int hl = snprintf(head, sizeof(head),
	    "Content-Length: %zu\nContent-Type: text/event-%s\n\n", plen, sim_fmt_names[fmt]);
	char *o = malloc((size_t)hl + plen);
	if (!o)
		return -1;
	char *p = o;
	memcpy(p, head, (size_t)hl);
	p += hl;
	memcpy(p, pay, a - env);
	p += a - env;
	memcpy(p, ev->digits[0], da);
	p += da;
	memcpy(p, w + a + la, b - a - la);
	p += b - a - la;
	memcpy(p, ev->digits[1], db);
	p += db;
	memcpy(p, w + b + lb, wl - b - lb);
	ev->wire[fmt] = o;
	ev->wire_len[fmt] = (size_t)hl + plen;
	return 0;
}

/* Every event due by now, at once (the loop wakes once per tick). */
void
sim_flood(struct fsesl_sim *s, uint64_t now)
{
	uint64_t step = 1000000000u / s->flood_rate;
	unsigned int burst = 0;
	bool wanted = sim_anyone_wants(s, EV_CUSTOM);
	struct sim_event *t = wanted ? sim_flood_current(s, now) : NULL;

	if (!step)
		step = 1;
	s->flood_tick = now;
	while (s->flood_deadline <= now && burst++ < 100000) {
		s->flood_deadline += step;
		uint64_t n = ++s->c.faults[FSESL_SIM_FAULT_EVENT_FLOOD];
		struct sim_event *ev = t ? sim_flood_event(t, s->seq + 1, n) : NULL;
		s->seq++;
		if (ev)
			sim_dispatch(s, ev);
	}
	if (s->flood_deadline <= now) /* fell behind: do not try to catch up */
		s->flood_deadline = now + step;
}

/* When the loop should run the flood next (0: no flood). */
uint64_t
sim_flood_due(struct fsesl_sim *s)
{
	if (!s->flood_deadline || !s->flood_rate)
		return 0;
	/* Nobody subscribed: it only counts sequence numbers, every 10 ms. */
	uint64_t tick = sim_anyone_wants(s, EV_CUSTOM) ? SIM_FLOOD_TICK_NS : 10000000u;
	uint64_t next = s->flood_tick + tick;
	return s->flood_deadline > next ? s->flood_deadline : next;
}

void
sim_flood_stop(struct fsesl_sim *s)
{
	s->flood_rate = 0;
	s->flood_deadline = 0;
	sim_event_unref(s->flood_tmpl);
	s->flood_tmpl = NULL;
}
