/*
 * bench_parser.c - frame reader and event decoder throughput.
 *
 * Streams: (1) the 47 real FreeSWITCH 1.10.12 captures glued together (all
 * message kinds, events in three formats); (2) 64 KiB-ish runs of small
 * api/response frames, the shape of a deep `api` pipeline; (3) the same
 * with command/reply frames. Each stream is parsed from start to end
 * repeatedly, like a reactor that finds whole messages in its buffer;
 * the best of a few rounds is printed, in MB/s and messages/s. It prints
 * numbers and never fails; figures belong in docs/proto.md, not in tests.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsesl_proto.h"

#ifndef FSESL_TEST_DATA
#define FSESL_TEST_DATA "tests/vectors"
#endif

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *
load_real(size_t *len)
{
	const char *dir = FSESL_TEST_DATA "/real-1.10.12";
	DIR *d = opendir(dir);
	struct dirent *e;
	char *buf = NULL;
	size_t n = 0;

	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		char path[1024];
		FILE *f;
		long sz;
		size_t l = strlen(e->d_name);

		if (l < 6 || strcmp(e->d_name + l - 5, ".recv") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		if (f == NULL)
			continue;
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		rewind(f);
		buf = realloc(buf, n + (size_t)sz);
		if (buf == NULL || fread(buf + n, 1, (size_t)sz, f) != (size_t)sz) {
			fclose(f);
			closedir(d);
			free(buf);
			return NULL;
		}
		n += (size_t)sz;
		fclose(f);
	}
	closedir(d);
	*len = n;
	return buf;
}

static char *
make_stream(const char *kind, size_t count, size_t *len)
{
	char *buf = malloc(count * 256), *p = buf;

	if (buf == NULL)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(kind, "api") == 0) {
			char body[32];
			int bl = snprintf(body, sizeof(body), "%zu", i % 100000);

			p += sprintf(
			    p, "Content-Type: api/response\nContent-Length: %d\n\n%s", bl, body);
		} else {
			p += sprintf(p,
			    "Content-Type: command/reply\nReply-Text: +OK Job-UUID: "
			    "5b1e6f3a-2c4d-4e8f-9a0b-%012zx\nJob-UUID: "
			    "5b1e6f3a-2c4d-4e8f-9a0b-%012zx\n\n",
			    i, i);
		}
	}
	*len = (size_t)(p - buf);
	return buf;
}

/* One pass over the stream; returns messages (0 on a parse failure). */
static size_t
pass(const char *buf, size_t len, bool events, size_t *n_events)
{
	size_t off = 0, msgs = 0;

	while (off < len) {
		struct fsesl_msg m;
		ssize_t n = fsesl_msg_parse(buf + off, len - off, 0, NULL, &m, NULL);

		if (n <= 0)
			return 0;
		if (events && m.type >= FSESL_MSG_EVENT_PLAIN && m.type <= FSESL_MSG_EVENT_XML) {
			struct fsesl_event *ev;

			if (fsesl_event_parse(
			        (enum fsesl_event_format)(m.type - FSESL_MSG_EVENT_PLAIN), m.body,
			        m.body_len, NULL, &ev) == 0) {
				fsesl_event_free(ev);
				(*n_events)++;
			}
		}
		off += (size_t)n;
		msgs++;
	}
	return msgs;
}

static void
run(const char *name, const char *buf, size_t len, bool events, double secs)
{
	double best = 1e30;
	size_t msgs = 0, evs = 0;

	for (int round = 0; round < 5; round++) {
		double t0 = now(), t;
		size_t reps = 0;

		do {
			evs = 0;
			msgs = pass(buf, len, events, &evs);
			reps++;
			t = now() - t0;
		} while (t < secs / 5);
		if (msgs == 0) {
			printf("%-34s parse failure\n", name);
			return;
		}
		if (t / (double)reps < best)
			best = t / (double)reps;
	}
	printf("%-34s %9zu B %6zu msgs  %8.1f MB/s  %10.0f msgs/s  %6.1f ns/msg", name, len, msgs,
	    (double)len / best / 1e6, (double)msgs / best, best / (double)msgs * 1e9);
	if (events)
		printf("  (%zu events decoded)", evs);
	printf("\n");
}

int
main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	size_t rlen = 0, alen = 0, clen = 0;
	char *real = load_real(&rlen);
	char *api = make_stream("api", 4096, &alen);
	char *reply = make_stream("reply", 1024, &clen);

	if (secs <= 0)
		secs = 1.0;
	printf("fsesl parser bench (best of 5 rounds, %.1f s per case)\n", secs);
	if (api)
		run("api/response x4096 (frames)", api, alen, false, secs);
	if (reply)
		run("command/reply bgapi x1024 (frames)", reply, clen, false, secs);
	if (real) {
		run("real 1.10.12 captures (frames)", real, rlen, false, secs);
		run("real 1.10.12 captures (+events)", real, rlen, true, secs);
	} else {
		printf("real captures not found under %s\n", FSESL_TEST_DATA);
	}
	free(real);
	free(api);
	free(reply);
	return 0;
}
