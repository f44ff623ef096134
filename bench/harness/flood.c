/*
 * flood.c - events at a set rate on a server we do not control (--url):
 * `sendevent CUSTOM` with Event-Subclass sim::flood on a connection of its
 * own, the way any client can make FreeSWITCH fire events. (The embedded
 * simulator has a cheaper knob, its EVENT_FLOOD fault; simhost.c.)
 *
 * Paced by a schedule, not by replies: everything due is written in one
 * write (at most FLOOD_WINDOW unanswered), so a slow server makes the
 * flood bursty rather than slower than asked, up to that window. Every
 * sendevent must be answered +OK; anything else counts as an error of the
 * scenario.
 */
#include "bench.h"

#include "fsesl_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOOD_WINDOW 256u
#define FLOOD_BURST 64u

static void *
flood_main(void *arg)
{
	struct flood *f = arg;
	char pkt[256];
	struct fsesl_header h = {"Event-Subclass", 14, FLOOD_SUBCLASS, strlen(FLOOD_SUBCLASS)};
	ssize_t len = fsesl_encode_sendevent(pkt, sizeof(pkt), "CUSTOM", &h, 1, NULL, 0, 0);
	char *buf = malloc(sizeof(pkt) * FLOOD_BURST);
	uint64_t base = now_ns(), i = 0;
	unsigned outstanding = 0;

	if (len < 0 || !buf) {
		snprintf(f->err, sizeof(f->err), "cannot encode sendevent");
		f->errors++;
		free(buf);
		return NULL;
	}
	/* Acquire: pairs with flood_stop's release store. */
	while (!atomic_load_explicit(&f->stop, memory_order_acquire)) {
		uint64_t now = now_ns();
		size_t n = 0;
		while (outstanding < FLOOD_WINDOW && n < FLOOD_BURST &&
		       base + (uint64_t)((double)i * 1e9 / f->rate) <= now) {
			memcpy(buf + n * (size_t)len, pkt, (size_t)len);
			n++;
			i++;
			outstanding++;
		}
		if (n && rawconn_write(&f->c, buf, n * (size_t)len) != 0) {
			snprintf(f->err, sizeof(f->err), "sendevent: connection lost");
			f->errors++;
			break;
		}
		f->sent += n;
		/* Replies: wait at most until the next one is due (>= 1 ms). */
		struct rawreply rep;
		int rc = outstanding ? rawconn_next(&f->c, &rep, 1, NULL) : 0;
		while (rc > 0) {
			outstanding--;
			if (rep.api || !rep.reply_text || rep.reply_text_len < 3 ||
			    memcmp(rep.reply_text, "+OK", 3) != 0) {
				f->errors++;
				if (!f->err[0])
					snprintf(f->err, sizeof(f->err), "sendevent refused: %.*s",
					    (int)(rep.reply_text ? rep.reply_text_len : 0),
					    rep.reply_text ? rep.reply_text : "");
			}
			rc = outstanding ? rawconn_next(&f->c, &rep, 0, NULL) : 0;
		}
		if (rc < 0) {
			snprintf(f->err, sizeof(f->err), "sendevent: connection lost");
			f->errors++;
			break;
		}
		if (!outstanding && !n) {
			uint64_t due = base + (uint64_t)((double)i * 1e9 / f->rate);
			if (due > now_ns())
				sleep_until_ns(due);
		}
	}
	/* Every sendevent written gets its reply before we leave. */
	while (outstanding && !f->errors) {
		struct rawreply rep;
		int rc = rawconn_next(&f->c, &rep, 5000, NULL);
		if (rc <= 0) {
			snprintf(
			    f->err, sizeof(f->err), "%u sendevent replies missing", outstanding);
			f->errors++;
			break;
		}
		outstanding--;
	}
	free(buf);
	return NULL;
}

int
flood_start(struct flood *f, const struct bench_target *t, unsigned rate)
{
	memset(f, 0, sizeof(*f));
	f->rate = rate ? rate : 1;
	if (rawconn_open(&f->c, t, f->err, sizeof(f->err)) != 0)
		return -ECONNREFUSED;
	if (pthread_create(&f->tid, NULL, flood_main, f) != 0) {
		rawconn_close(&f->c);
		snprintf(f->err, sizeof(f->err), "pthread_create failed");
		return -EAGAIN;
	}
	f->running = true;
	return 0;
}

void
flood_stop(struct flood *f)
{
	if (!f->running)
		return;
	/* Release: pairs with the acquire load in flood_main(). */
	atomic_store_explicit(&f->stop, true, memory_order_release);
	pthread_join(f->tid, NULL);
	rawconn_close(&f->c);
	f->running = false;
}
