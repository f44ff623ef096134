/*
 * events.c - follow channel events (CHANNEL_*) from one server.
 *
 *   ./events [URL] [COUNT]     (COUNT 0 or absent: until Ctrl-C)
 *
 * Queue mode: the engine's reactor decodes each event once and queues a
 * reference for every subscriber that asked for it; this thread takes them
 * with fsesl_subscriber_next() and must release each delivery. A subscriber
 * that falls behind loses events (counted, and reported by a DROPPED
 * delivery) rather than slowing the reactor down. After a reconnect the
 * engine subscribes again by itself and says so with an UP delivery.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <fsesl.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char *
hdr(const struct fsesl_event *ev, const char *name)
{
	const char *v = fsesl_event_get(ev, name);

	return v != NULL ? v : "-";
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {
	    "CHANNEL_CREATE",
	    "CHANNEL_ANSWER",
	    "CHANNEL_BRIDGE",
	    "CHANNEL_HANGUP",
	    "CHANNEL_HANGUP_COMPLETE",
	    "CHANNEL_DESTROY",
	};
	const char *url = argc > 1 ? argv[1] : "fs://:ClueCon@127.0.0.1:8021";
	long want = argc > 2 ? atol(argv[2]) : 0, seen = 0;
	fsesl_sub_opts so = {0};
	fsesl_subscriber *s = NULL;
	fsesl_engine *e;
	fsesl_server_t srv;
	fsesl_delivery d;
	struct sigaction sa = {.sa_handler = on_signal};
	size_t i;
	int err;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	err = fsesl_engine_start(NULL, &e);
	if (err == 0)
		err = fsesl_server_get(e, url, &srv);
	if (err != 0) {
		fprintf(stderr, "%s\n", fsesl_strerror(err));
		return 2;
	}
	so.format = FSESL_EVFMT_JSON;
	err = fsesl_subscriber_create(e, "events-example", &so, &s);
	for (i = 0; err == 0 && i < sizeof(names) / sizeof(names[0]); i++)
		err = fsesl_subscribe(s, srv, names[i]);
	if (err != 0) {
		fprintf(stderr, "subscribe: %s\n", fsesl_strerror(err));
		goto out;
	}
	/* fsesl_subscribe() returned after the server's +OK: from here on no
	 * channel event of this server is missed. */
	fprintf(stderr, "subscribed to %zu channel events; Ctrl-C to stop\n", i);
	while (!stop && (want == 0 || seen < want)) {
		/* A finite wait, so that Ctrl-C is noticed within a second. */
		int r = fsesl_subscriber_next(s, &d, 1000);

		if (r < 0) {
			err = r;
			fprintf(stderr, "next: %s\n", fsesl_strerror(r));
			break;
		}
		if (r == 0)
			continue;
		switch (d.kind) {
		case FSESL_NOTICE_EVENT:
			printf("%-24s %s %s -> %s\n", d.event->name, hdr(d.event, "Unique-ID"),
			    hdr(d.event, "Caller-Caller-ID-Number"),
			    hdr(d.event, "Caller-Destination-Number"));
			fflush(stdout);
			seen++;
			break;
		case FSESL_NOTICE_DROPPED:
			fprintf(stderr, "%llu events dropped\n", (unsigned long long)d.count);
			break;
		case FSESL_NOTICE_DOWN:
			fprintf(stderr, "connection lost\n");
			break;
		case FSESL_NOTICE_UP:
			fprintf(stderr, "connected\n");
			break;
		case FSESL_NOTICE_REFUSED:
			fprintf(stderr, "the server refused %s\n", d.subscription);
			break;
		}
		fsesl_delivery_release(&d);
	}
out:
	if (s != NULL)
		fsesl_subscriber_destroy(s);
	fsesl_server_put(e, srv);
	fsesl_engine_stop(e);
	return err == 0 ? 0 : 1;
}
