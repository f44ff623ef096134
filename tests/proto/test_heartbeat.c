/*
 * test_heartbeat.c - strict HEARTBEAT numbers: the vectors in all three
 * formats, then each way a number can be wrong, which must be an error
 * and never a 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fsesl_proto.h"
#include "testutil.h"

static struct fsesl_event *
load(const char *file, enum fsesl_event_format fmt)
{
	char path[512];
	size_t len;
	char *data;
	struct fsesl_msg m;
	struct fsesl_event *ev = NULL;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", FSESL_TEST_DATA, file);
	data = fsesl_test_read_file(path, &len);
	n = fsesl_msg_parse(data, len, 0, NULL, &m, NULL);
	cr_assert(n == (ssize_t)len);
	cr_assert(fsesl_event_parse(fmt, m.body, m.body_len, NULL, &ev) == 0);
	free(data);
	return ev;
}

Test(heartbeat, vectors_all_formats)
{
	static const struct {
		const char *file;
		enum fsesl_event_format fmt;
	} v[] = {
	    {"heartbeat-plain.bin", FSESL_EVFMT_PLAIN},
	    {"heartbeat-json.bin", FSESL_EVFMT_JSON},
	    {"heartbeat-xml.bin", FSESL_EVFMT_XML},
	};

	for (size_t i = 0; i < 3; i++) {
		struct fsesl_event *ev = load(v[i].file, v[i].fmt);
		struct fsesl_heartbeat hb;

		cr_assert(fsesl_heartbeat_parse(ev, &hb) == 0, "%s", v[i].file);
		cr_assert(hb.idle_cpu > 97.5333 && hb.idle_cpu < 97.5334);
		cr_assert(hb.session_count == 12 && hb.max_sessions == 1000);
		cr_assert(hb.session_per_sec == 30 && hb.session_per_sec_last == 1);
		cr_assert(hb.session_per_sec_max == 9 && hb.session_per_sec_fivemin == 3);
		cr_assert(hb.session_since_startup == 48213);
		cr_assert(hb.session_peak_max == 57 && hb.session_peak_fivemin == 14);
		cr_assert(hb.uptime_msec == 274368517);
		cr_assert(hb.event_timestamp_us > 1700000000000000ull);
		cr_assert_str_eq(hb.hostname, "fs-node-01");
		fsesl_event_free(ev);
	}
}

/* A minimal heartbeat with one header replaced or added. */
static int
hb_with(const char *extra, struct fsesl_heartbeat *hb)
{
	char buf[1024];
	struct fsesl_event *ev;
	int rc;

	snprintf(buf, sizeof(buf),
	    "Event-Name: HEARTBEAT\nFreeSWITCH-Hostname: vm\n%sIdle-CPU: 99.500000\n"
	    "Session-Count: 3\nMax-Sessions: 1000\n\n",
	    extra);
	rc = fsesl_event_parse(FSESL_EVFMT_PLAIN, buf, strlen(buf), NULL, &ev);
	cr_assert(rc == 0, "%s", fsesl_proto_strerror(rc));
	rc = fsesl_heartbeat_parse(ev, hb);
	fsesl_event_free(ev);
	return rc;
}

Test(heartbeat, minimal_and_first_wins)
{
	struct fsesl_heartbeat hb;

	cr_assert(hb_with("", &hb) == 0);
	cr_assert(hb.session_count == 3 && hb.idle_cpu == 99.5 && hb.uptime_msec == 0);
	cr_assert_str_eq(hb.hostname, "vm");
	/* the first of duplicate headers is the one read, as for get() */
	cr_assert(hb_with("Session-Count: 7\n", &hb) == 0);
	cr_assert(hb.session_count == 7);
	cr_assert(hb_with("Idle-CPU: 100\n", &hb) == 0);
	cr_assert(hb.idle_cpu == 100.0);
}

Test(heartbeat, bad_numbers_are_errors)
{
	static const char *const bad[] = {
	    "Session-Count: \n",
	    "Session-Count: -1\n",
	    "Session-Count: +1\n",
	    "Session-Count: 1e3\n",
	    "Session-Count: 12a\n",
	    "Session-Count: %2012\n",
	    "Session-Count: 12%20\n",
	    "Session-Count: 0x10\n",
	    "Session-Count: 18446744073709551616\n",
	    "Session-Count: 12%003\n",
	    "Max-Sessions: abc\n",
	    "Uptime-msec: 1.5\n",
	    "Session-Per-Sec: -\n",
	    "Event-Date-Timestamp: 99999999999999999999\n",
	    "Idle-CPU: 97.5.3\n",
	    "Idle-CPU: .5\n",
	    "Idle-CPU: 5.\n",
	    "Idle-CPU: nan\n",
	    "Idle-CPU: inf\n",
	    "Idle-CPU: -1.0\n",
	    "Idle-CPU: 1e2\n",
	    "Idle-CPU: \n",
	    "Idle-CPU: 9%2C5\n",
	};
	struct fsesl_heartbeat hb;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&hb, 0x5a, sizeof(hb));
		cr_assert(hb_with(bad[i], &hb) == FSESL_PERR_BAD_NUMBER, "%s", bad[i]);
		/* nothing half-written on error */
		cr_assert(hb.session_count == 0x5a5a5a5a5a5a5a5aull);
	}
	cr_assert(hb_with("Session-Count: 18446744073709551615\n", &hb) == 0);
	cr_assert(hb.session_count == UINT64_MAX);
}

Test(heartbeat, missing_forged_and_wrong_events)
{
	struct fsesl_heartbeat hb;
	struct fsesl_event *ev;
	char host[400];

	ev = NULL;
	cr_assert(
	    fsesl_event_parse(FSESL_EVFMT_PLAIN,
	        "Event-Name: HEARTBEAT\nIdle-CPU: 1.0\nMax-Sessions: 3\n\n", 52, NULL, &ev) == 0);
	cr_assert(fsesl_heartbeat_parse(ev, &hb) == FSESL_PERR_MISSING_FIELD);
	fsesl_event_free(ev);
	cr_assert(fsesl_event_parse(FSESL_EVFMT_PLAIN,
	              "Event-Name: HEARTBEAT\nSession-Count: 1\nMax-Sessions: 3\n\n", 55, NULL,
	              &ev) == 0);
	cr_assert(fsesl_heartbeat_parse(ev, &hb) == FSESL_PERR_MISSING_FIELD);
	fsesl_event_free(ev);

	/* sendevent HEARTBEAT carries a Command header (docs/protocol.md §10.3) */
	cr_assert(hb_with("Command: sendevent%20HEARTBEAT\n", &hb) == FSESL_PERR_INVALID);
	cr_assert(
	    fsesl_event_parse(FSESL_EVFMT_PLAIN,
	        "Event-Name: RE_SCHEDULE\nIdle-CPU: 1.0\nSession-Count: 1\nMax-Sessions: 3\n\n", 71,
	        NULL, &ev) == 0);
	cr_assert(fsesl_heartbeat_parse(ev, &hb) == FSESL_PERR_INVALID);
	fsesl_event_free(ev);
	cr_assert(fsesl_heartbeat_parse(NULL, &hb) == FSESL_PERR_INVALID);

	memset(host, 'h', sizeof(host));
	memcpy(host, "FreeSWITCH-Hostname: ", 21);
	strcpy(host + 21 + 256, "\n");
	cr_assert(hb_with(host, &hb) == 0); /* the first (short) hostname wins */
}

Test(heartbeat, parse_u64)
{
	uint64_t v = 7;

	cr_assert(fsesl_parse_u64("0", 1, &v) == 0 && v == 0);
	cr_assert(fsesl_parse_u64("007", 3, &v) == 0 && v == 7);
	cr_assert(fsesl_parse_u64("18446744073709551615", 20, &v) == 0 && v == UINT64_MAX);
	cr_assert(fsesl_parse_u64("18446744073709551616", 20, &v) == FSESL_PERR_BAD_NUMBER);
	cr_assert(fsesl_parse_u64("", 0, &v) == FSESL_PERR_BAD_NUMBER);
	cr_assert(fsesl_parse_u64(NULL, 0, &v) == FSESL_PERR_BAD_NUMBER);
	cr_assert(fsesl_parse_u64(" 1", 2, &v) == FSESL_PERR_BAD_NUMBER);
	cr_assert(fsesl_parse_u64("1 ", 2, &v) == FSESL_PERR_BAD_NUMBER);
	cr_assert(fsesl_parse_u64("-1", 2, &v) == FSESL_PERR_BAD_NUMBER);
	cr_assert(fsesl_parse_u64("12", 1, &v) == 0 && v == 1); /* len is honoured */
	cr_assert(fsesl_parse_u64("1\0"
	                          "2",
	              3, &v) == FSESL_PERR_BAD_NUMBER);
}

/* Every real HEARTBEAT of the 1.10.12 captures parses. */
Test(heartbeat, real_captures)
{
	static const char *const caps[] = {"heartbeat-formats", "event-all", "event-misc",
	    "pipeline-starves-events", "filter-semantics"};
	size_t seen = 0;

	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		char path[512];
		size_t len, off = 0;
		char *data;

		snprintf(path, sizeof(path), "%s/real-1.10.12/%s.recv", FSESL_TEST_DATA, caps[c]);
		data = fsesl_test_read_file(path, &len);
		while (off < len) {
			struct fsesl_msg m;
			ssize_t n = fsesl_msg_parse(data + off, len - off, 0, NULL, &m, NULL);
			struct fsesl_event *ev;
			struct fsesl_heartbeat hb;

			cr_assert(n > 0);
			off += (size_t)n;
			if (m.type < FSESL_MSG_EVENT_PLAIN || m.type > FSESL_MSG_EVENT_XML)
				continue;
			cr_assert(fsesl_event_parse(
			              (enum fsesl_event_format)(m.type - FSESL_MSG_EVENT_PLAIN),
			              m.body, m.body_len, NULL, &ev) == 0);
			if (strcmp(ev->name, "HEARTBEAT") == 0) {
				cr_assert(fsesl_heartbeat_parse(ev, &hb) == 0);
				cr_assert_str_eq(hb.hostname, "vm");
				cr_assert(hb.max_sessions > 0 && hb.idle_cpu <= 100.0);
				seen++;
			}
			fsesl_event_free(ev);
		}
		free(data);
	}
	cr_assert(seen >= 10, "%zu heartbeats", seen);
}
