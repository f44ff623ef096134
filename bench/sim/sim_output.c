/*
 * sim_output.c - everything a connection writes goes through here: replies
 * (where the reply-level faults act), api/response frames, notices, and the
 * queued events moved into the output buffer.
 */
#include "sim_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The loop pumps the connection this turn. A threaded connection's own
 * thread writes what it emits; other threads reach it with
 * sim_conn_poke(). */
void
sim_mark_dirty(struct sim_conn *c)
{
	if (c->dirty || c->threaded)
		return;
	c->dirty = true;
	c->dirty_next = c->s->dirty;
	c->s->dirty = c;
}

void
sim_closing(struct sim_conn *c)
{
	c->closing = true;
	if (!c->close_deadline)
		c->close_deadline = sim_now_ns() + SIM_CLOSE_GRACE_NS;
	sim_conn_poke(c);
}

/* Every message goes through here: CLOSE_AFTER_MSGS counts them. */
void
sim_emit(struct sim_conn *c, const char *data, size_t len)
{
	if (c->hard_close || (c->closing && c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS].on))
		return;
	if (sim_buf_add(&c->out, data, len)) {
		c->hard_close = true;
		return;
	}
	c->msgs_written++;
	struct sim_fault_state *fm = &c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS];
	if (fm->on && c->msgs_written - fm->base >= fm->a) {
		c->s->c.faults[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS]++;
		sim_closing(c);
	}
	sim_mark_dirty(c);
}

/* INJECT_REPLY: one well-formed reply that answers no command, as a
 * confused proxy or server would write it, ahead of a real one. */
static void
sim_inject_reply(struct sim_conn *c)
{
	static const char cmd[] = "Content-Type: command/reply\nReply-Text: +OK\n\n";
	static const char api[] = "Content-Type: api/response\nContent-Length: 4\n\n+OK\n";
	struct sim_fault_state *fi = &c->f[FSESL_SIM_FAULT_INJECT_REPLY];

	if (c->inject_countdown == 0)
		c->inject_countdown = fi->b ? fi->b : 1;
	if (--c->inject_countdown != 0)
		return;
	fi->on = false;
	c->s->c.faults[FSESL_SIM_FAULT_INJECT_REPLY]++;
	if (fi->a == FSESL_SIM_INJECT_API_RESPONSE)
		sim_emit(c, api, sizeof(api) - 1);
	else
		sim_emit(c, cmd, sizeof(cmd) - 1);
}

/* Replies (command/reply, api/response): the reply-level faults act here. */
void
sim_emit_reply(struct sim_conn *c, const char *data, size_t len)
{
	struct fsesl_sim_counters *k = &c->s->c;

	if (c->f[FSESL_SIM_FAULT_INJECT_REPLY].on)
		sim_inject_reply(c);

	if (c->f[FSESL_SIM_FAULT_DROP_REPLY].on) {
		if (c->drop_countdown == 0)
			c->drop_countdown = c->f[FSESL_SIM_FAULT_DROP_REPLY].a
			                        ? c->f[FSESL_SIM_FAULT_DROP_REPLY].a
			                        : 1;
		if (--c->drop_countdown == 0) {
			c->f[FSESL_SIM_FAULT_DROP_REPLY].on = false;
			k->faults[FSESL_SIM_FAULT_DROP_REPLY]++;
			return;
		}
	}
	if (c->f[FSESL_SIM_FAULT_GARBAGE].on) {
		c->f[FSESL_SIM_FAULT_GARBAGE].on = false;
		k->faults[FSESL_SIM_FAULT_GARBAGE]++;
		uint64_t n = c->f[FSESL_SIM_FAULT_GARBAGE].a ? c->f[FSESL_SIM_FAULT_GARBAGE].a : 64;
		char junk[256];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (char)("\x01garbage:\xff\x7f%zz\n"[i % 16]);
		while (n > 0) {
			size_t chunk = n < sizeof(junk) ? (size_t)n : sizeof(junk);
			sim_buf_add(&c->out, junk, chunk);
			n -= chunk;
		}
		sim_mark_dirty(c);
		return;
	}
	if (c->f[FSESL_SIM_FAULT_CLOSE_MID_FRAME].on) {
		c->f[FSESL_SIM_FAULT_CLOSE_MID_FRAME].on = false;
		k->faults[FSESL_SIM_FAULT_CLOSE_MID_FRAME]++;
		sim_buf_add(&c->out, data, len / 2 ? len / 2 : 1);
		sim_closing(c);
		c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS].on = true; /* nothing more goes out */
		c->f[FSESL_SIM_FAULT_CLOSE_AFTER_MSGS].a = 0;
		sim_mark_dirty(c);
		return;
	}
	sim_emit(c, data, len);
}

void
sim_reply(struct sim_conn *c, const char *text)
{
	char buf[SIM_REPLY_MAX + 64];
	size_t tl = strlen(text);

	if (tl > SIM_REPLY_MAX)
		tl = SIM_REPLY_MAX;
	memcpy(buf, "Content-Type: command/reply\nReply-Text: ", 40);
	memcpy(buf + 40, text, tl);
	memcpy(buf + 40 + tl, "\n\n", 2);
	sim_emit_reply(c, buf, 40 + tl + 2);
}

void
sim_replyf(struct sim_conn *c, const char *fmt, ...)
{
	char text[SIM_REPLY_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sim_reply(c, text);
}

void
sim_api_response(struct sim_conn *c, const char *body, size_t len)
{
	/* Hand-made header: snprintf was the server's top cost in the
	 * pipelined `api echo` benchmark. */
	static const char pre[] = "Content-Type: api/response\nContent-Length: ";
	char hdr[80], digits[24];
	int nd = 0, hl = (int)sizeof(pre) - 1;
	size_t v = len;

	memcpy(hdr, pre, sizeof(pre) - 1);
	do {
		digits[nd++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (nd)
		hdr[hl++] = digits[--nd];
	hdr[hl++] = '\n';
	hdr[hl++] = '\n';

	if (len + (size_t)hl <= 4096) {
		char buf[4096];
		memcpy(buf, hdr, (size_t)hl);
		memcpy(buf + hl, body, len);
		sim_emit_reply(c, buf, (size_t)hl + len);
		return;
	}
	char *buf = malloc((size_t)hl + len);
	if (!buf) {
		c->hard_close = true;
		return;
	}
	memcpy(buf, hdr, (size_t)hl);
	memcpy(buf + hl, body, len);
	sim_emit_reply(c, buf, (size_t)hl + len);
	free(buf);
}

void
sim_conn_drop_queues(struct sim_conn *c)
{
	while (c->q_len) {
		sim_event_unref(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	c->logq.off = c->logq.len = 0;
	c->logq_n = 0;
}

/* Notice, then close once written; queued events and logs are thrown away. */
void
sim_goodbye(struct sim_conn *c, const char *notice)
{
	sim_conn_drop_queues(c);
	if (notice)
		sim_emit(c, notice, strlen(notice));
	sim_closing(c);
}

/* Moves the connection's queued events into its output, as far as the
 * output's high-water mark allows. */
void
sim_conn_write_events(struct sim_conn *c)
{
	struct fsesl_sim *s = c->s;

	while (c->q_len && !c->closing && sim_buf_avail(&c->out) < SIM_OUT_HIGH) {
		struct sim_event *ev = c->q[c->q_head];
		const char *w;
		size_t wl;
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
		if (sim_event_wire(ev, c->fmt, &w, &wl) == 0) {
			sim_emit(c, w, wl);
			s->c.events_sent++;
		}
		sim_event_unref(ev);
	}
}
