/*
 * test_events.c - event payload decoding: %HH rules, the JSON and XML
 * specifics (duplicates, arrays, entities, the "  " and "<!" quirks), the
 * cheap fields, limits and every error class. Payloads sit right before a
 * PROT_NONE page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fsesl_proto.h"
#include "testutil.h"

static struct fsesl_test_guard g;

static void
setup(void)
{
	fsesl_test_guard_init(&g, 1 << 16);
}

static void
teardown(void)
{
	fsesl_test_guard_free(&g);
}

TestSuite(events, .init = setup, .fini = teardown);

static int
dec(enum fsesl_event_format fmt, const char *s, size_t len, const struct fsesl_limits *lim,
    struct fsesl_event **ev)
{
	return fsesl_event_parse(fmt, fsesl_test_guard_put(&g, s, len), len, lim, ev);
}

static struct fsesl_event *
ok(enum fsesl_event_format fmt, const char *s)
{
	struct fsesl_event *ev = NULL;
	int rc = dec(fmt, s, strlen(s), NULL, &ev);

	cr_assert(rc == 0, "decode: %s", fsesl_proto_strerror(rc));
	cr_assert(ev != NULL && ev->format == fmt);
	return ev;
}

static void
fails(enum fsesl_event_format fmt, const char *s, size_t len, int code)
{
	struct fsesl_event *ev = (struct fsesl_event *)&g; /* must be reset to NULL */
	int rc = dec(fmt, s, len, NULL, &ev);

	cr_assert(rc == code, "got %d (%s), expected %d (%s) for %.60s", rc,
	    fsesl_proto_strerror(rc), code, fsesl_proto_strerror(code), s);
	cr_assert(ev == NULL);
}

static void
hdr_is(const struct fsesl_event *ev, size_t i, const char *name, const char *val, size_t vlen)
{
	cr_assert(i < ev->n_headers);
	cr_assert(ev->headers[i].name_len == strlen(name) &&
	              memcmp(ev->headers[i].name, name, strlen(name)) == 0,
	    "header %zu is %s", i, ev->headers[i].name);
	cr_assert(ev->headers[i].value_len == vlen && memcmp(ev->headers[i].value, val, vlen) == 0,
	    "%s = %s", name, ev->headers[i].value);
	cr_assert(ev->headers[i].value[vlen] == '\0' && ev->headers[i].name[strlen(name)] == '\0');
}

Test(events, url_decode)
{
	char buf[64];
	ssize_t n;

	n = fsesl_url_decode("a%20b%3a%3A%c3%B6+%41", 21, buf);
	cr_assert(n == 9 && memcmp(buf, "a b::\xc3\xb6+A", 9) == 0);
	cr_assert(fsesl_url_decode("%", 1, buf) == FSESL_PERR_BAD_ESCAPE);
	cr_assert(fsesl_url_decode("%4", 2, buf) == FSESL_PERR_BAD_ESCAPE);
	cr_assert(fsesl_url_decode("%4g", 3, buf) == FSESL_PERR_BAD_ESCAPE);
	cr_assert(fsesl_url_decode("%zz", 3, buf) == FSESL_PERR_BAD_ESCAPE);
	cr_assert(fsesl_url_decode("ab%", 3, buf) == FSESL_PERR_BAD_ESCAPE);
	cr_assert(fsesl_url_decode("", 0, buf) == 0);
	/* %00 is a byte like any other */
	n = fsesl_url_decode("x%00y", 5, buf);
	cr_assert(n == 3 && buf[1] == '\0');
	/* in place */
	strcpy(buf, "%41%42c");
	n = fsesl_url_decode(buf, 7, buf);
	cr_assert(n == 3 && memcmp(buf, "ABc", 3) == 0);
	/* the quirk of protocol.md §7.2: "100%AB" on the wire decodes to 100 + 0xAB */
	n = fsesl_url_decode("100%AB", 6, buf);
	cr_assert(n == 4 && (unsigned char)buf[3] == 0xAB);
}

Test(events, plain_basics)
{
	struct fsesl_event *ev = ok(FSESL_EVFMT_PLAIN,
	    "Event-Subclass: myapp%3A%3Aping\nCommand: sendevent%20CUSTOM\nX-Dup: one\n"
	    "x-dup: two\nX-Empty: \nEvent-Name: CUSTOM\nCore-UUID: c1\nJob-UUID: j1\n"
	    "Event-Sequence: 1088420\nX-Nul: a%00b\nContent-Length: 8\n\nbody\n\nxy");

	cr_assert(ev->n_headers == 11);
	hdr_is(ev, 0, "Event-Subclass", "myapp::ping", 11);
	hdr_is(ev, 4, "X-Empty", "", 0);
	hdr_is(ev, 9, "X-Nul", "a\0b", 3);
	cr_assert_str_eq(ev->name, "CUSTOM");
	cr_assert_str_eq(ev->subclass, "myapp::ping");
	cr_assert_str_eq(ev->core_uuid, "c1");
	cr_assert_str_eq(ev->job_uuid, "j1");
	cr_assert(ev->has_sequence && ev->sequence == 1088420);
	cr_assert(ev->forged);
	/* get() returns the first of duplicates, ignoring case */
	cr_assert_str_eq(fsesl_event_get(ev, "X-DUP"), "one");
	cr_assert(fsesl_event_get(ev, "nope") == NULL);
	cr_assert(fsesl_event_get(NULL, "x") == NULL);
	/* the body is everything after the first blank line */
	cr_assert(ev->body_len == 8 && memcmp(ev->body, "body\n\nxy", 8) == 0);
	cr_assert(ev->body[8] == '\0');
	fsesl_event_free(ev);
	fsesl_event_free(NULL);
}

Test(events, plain_no_body_and_no_terminator)
{
	struct fsesl_event *ev =
	    ok(FSESL_EVFMT_PLAIN, "Event-Name: HEARTBEAT\nEvent-Sequence: x1\n\n");

	cr_assert(ev->n_headers == 2 && ev->body_len == 0 && ev->body[0] == '\0');
	cr_assert(!ev->has_sequence); /* not a strict number */
	cr_assert(!ev->forged && ev->subclass == NULL && ev->job_uuid == NULL);
	fsesl_event_free(ev);
	/* a payload cut before its blank line still yields its headers */
	ev = ok(FSESL_EVFMT_PLAIN, "Event-Name: HEARTBEAT\nX: 1");
	cr_assert(ev->n_headers == 2 && ev->body_len == 0);
	hdr_is(ev, 1, "X", "1", 1);
	fsesl_event_free(ev);
}

Test(events, plain_bad_escapes)
{
	static const char *const bad[] = {
	    "Event-Name: X\nA: 50%\n\n",
	    "Event-Name: X\nA: %4\n\n",
	    "Event-Name: X\nA: %zz\n\n",
	    "Event-Name: X%2\n\n",
	    "Event-Name: X\nA: %4", /* cut at the payload end, before the guard */
	    "Event-Name: X\nA: %",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		fails(FSESL_EVFMT_PLAIN, bad[i], strlen(bad[i]), FSESL_PERR_BAD_ESCAPE);
}

Test(events, plain_bad_lines_and_missing_name)
{
	fails(FSESL_EVFMT_PLAIN, "Event-Name: X\nno colon\n\n", 24, FSESL_PERR_BAD_HEADER_LINE);
	fails(FSESL_EVFMT_PLAIN, "Event-Name: X\n: v\n\n", 19, FSESL_PERR_BAD_HEADER_LINE);
	fails(FSESL_EVFMT_PLAIN, "Core-UUID: x\n\n", 14, FSESL_PERR_NO_EVENT_NAME);
	fails(FSESL_EVFMT_PLAIN, "", 0, FSESL_PERR_NO_EVENT_NAME);
	fails(FSESL_EVFMT_PLAIN, "\nEvent-Name: X\n", 15, FSESL_PERR_NO_EVENT_NAME);
}

Test(events, header_limit)
{
	struct fsesl_limits lim;
	struct fsesl_event *ev = NULL;
	const char *s = "Event-Name: X\nA: 1\nB: 2\n\n";

	fsesl_limits_init(&lim);
	lim.max_event_headers = 2;
	cr_assert(dec(FSESL_EVFMT_PLAIN, s, strlen(s), &lim, &ev) == FSESL_PERR_TOO_MANY_HEADERS);
	cr_assert(ev == NULL);
	lim.max_event_headers = 3;
	cr_assert(dec(FSESL_EVFMT_PLAIN, s, strlen(s), &lim, &ev) == 0);
	fsesl_event_free(ev);
}

Test(events, json_basics)
{
	struct fsesl_event *ev = ok(FSESL_EVFMT_JSON,
	    " {\"Event-Name\":\"CUSTOM\",\"X-Dup\":\"one\",\"X-Dup\":\"two\","
	    "\"X-Array\":[\"a\",\"b\",\"c\"],\"X-Pct\":\"100%AB\",\"X-Esc\":\"t\\tq\\\"\\u00f6\","
	    "\"Content-Length\":\"5\",\"_body\":\"hi %s\"}\n");

	cr_assert(ev->n_headers == 7);
	hdr_is(ev, 6, "Content-Length", "5", 1);
	hdr_is(ev, 1, "X-Dup", "one", 3);
	hdr_is(ev, 2, "X-Dup", "two", 3);
	hdr_is(ev, 3, "X-Array", "ARRAY::a|:b|:c", 14);
	hdr_is(ev, 4, "X-Pct", "100%AB", 6); /* JSON values are not URL-encoded */
	hdr_is(ev, 5, "X-Esc", "t\tq\"\xc3\xb6", 6);
	cr_assert(ev->body_len == 5 && strcmp(ev->body, "hi %s") == 0);
	fsesl_event_free(ev);

	ev = ok(FSESL_EVFMT_JSON, "{\"Event-Name\":\"HEARTBEAT\",\"X-Empty-Array\":[]}");
	hdr_is(ev, 1, "X-Empty-Array", "ARRAY::", 7);
	cr_assert(ev->body_len == 0 && ev->body[0] == '\0');
	fsesl_event_free(ev);
}

Test(events, json_broken)
{
	static const char *const bad[] = {
	    "",
	    "{",
	    "{\"Event-Name\":\"X\"",
	    "[\"Event-Name\",\"X\"]",
	    "\"Event-Name\"",
	    "{\"Event-Name\":\"X\"} trailing",
	    "{\"Event-Name\":\"X\"}{}",
	    "{\"Event-Name\":\"X\",\"N\":5}",
	    "{\"Event-Name\":\"X\",\"N\":null}",
	    "{\"Event-Name\":\"X\",\"O\":{\"a\":\"b\"}}",
	    "{\"Event-Name\":\"X\",\"A\":[\"a\",1]}",
	    "{\"Event-Name\":\"X\",\"_body\":7}",
	    "{\"Event-Name\":\"X\",}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		fails(FSESL_EVFMT_JSON, bad[i], strlen(bad[i]), FSESL_PERR_BAD_JSON);
	fails(FSESL_EVFMT_JSON, "{\"Core-UUID\":\"x\"}", 17, FSESL_PERR_NO_EVENT_NAME);
	fails(FSESL_EVFMT_JSON, "{}", 2, FSESL_PERR_NO_EVENT_NAME);
}

#define XML_HEAD "<event>\n  <headers>\n    <Event-Name>CUSTOM</Event-Name>\n"

Test(events, xml_basics)
{
	struct fsesl_event *ev = ok(FSESL_EVFMT_XML, XML_HEAD
	    "    <X-Pct>a%20b%3A</X-Pct>\n    <X-Array>a</X-Array>\n"
	    "    <X-Array>b</X-Array>\n    <X-Ent>&lt;&amp;&gt;&quot;&apos;&#65;&#x20AC;</X-Ent>\n"
	    "    <X-Empty></X-Empty>\n    <X-Self/>\n  </headers>\n"
	    "  <Content-Length>17</Content-Length>\n"
	    "  <body>a&amp;b&lt;c&gt;&#xD;\n&#xF6;&#x1F600; 100%\n  </body>\n</event>\n");

	cr_assert(ev->n_headers == 7);
	hdr_is(ev, 1, "X-Pct", "a b:", 4);
	hdr_is(ev, 2, "X-Array", "a", 1);
	hdr_is(ev, 3, "X-Array", "b", 1);
	hdr_is(ev, 4, "X-Ent", "<&>\"'A\xe2\x82\xac", 9);
	hdr_is(ev, 5, "X-Empty", "", 0);
	hdr_is(ev, 6, "X-Self", "", 0);
	/* entity-decoded, never %-decoded, with the "  " before </body> */
	cr_assert(ev->body_len == 22, "%zu", ev->body_len);
	cr_assert(memcmp(ev->body, "a&b<c>\r\n\xc3\xb6\xf0\x9f\x98\x80 100%\n  ", 22) == 0);
	fsesl_event_free(ev);
}

Test(events, xml_comment_and_cdata_in_body)
{
	/* the "<!" quirk of protocol.md §7.4: a comment disappears, as in an XML parser */
	struct fsesl_event *ev = ok(FSESL_EVFMT_XML,
	    XML_HEAD "  </headers>\n  <body>x &lt;t&gt;\n then <!-- raw & <rest> -->\n"
	             "<![CDATA[<a&b>]]>  </body>\n</event>");

	cr_assert(ev->body_len == 20, "%zu [%s]", ev->body_len, ev->body);
	cr_assert(strcmp(ev->body, "x <t>\n then \n<a&b>  ") == 0);
	fsesl_event_free(ev);
	/* no body element: empty body */
	ev = ok(FSESL_EVFMT_XML, XML_HEAD "  </headers>\n</event>\n");
	cr_assert(ev->body_len == 0 && ev->n_headers == 1);
	fsesl_event_free(ev);
}

Test(events, xml_broken)
{
	static const char *const bad[] = {
	    "",
	    "<event>",
	    "<events></events>",
	    XML_HEAD "  </headers>\n",
	    XML_HEAD "  </headers>\n</event>\ntrailing",
	    XML_HEAD "    <A>x</B>\n  </headers>\n</event>",
	    XML_HEAD "    <A>x\n  </headers>\n</event>",
	    XML_HEAD "    <A>&bogus;</A>\n  </headers>\n</event>",
	    XML_HEAD "    <A>&amp</A>\n  </headers>\n</event>",
	    XML_HEAD "    <A>&#xZZ;</A>\n  </headers>\n</event>",
	    XML_HEAD "    <A>&#;</A>\n  </headers>\n</event>",
	    XML_HEAD "    <A>&#0;</A>\n  </headers>\n</event>",
	    XML_HEAD "    <A>&#x110000;</A>\n  </headers>\n</event>",
	    XML_HEAD "    <A><B>x</B></A>\n  </headers>\n</event>",
	    XML_HEAD "  </headers>\n  <body>a <!-- unterminated </body>\n</event>",
	    XML_HEAD "  </headers>\n  <body>a</body>",
	    "<event>\n  <headers>\n    <Event-Name>X</Event-Name>\n  </headers",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		fails(FSESL_EVFMT_XML, bad[i], strlen(bad[i]), FSESL_PERR_BAD_XML);
	fails(FSESL_EVFMT_XML, XML_HEAD "    <A>%4</A>\n  </headers>\n</event>",
	    strlen(XML_HEAD "    <A>%4</A>\n  </headers>\n</event>"), FSESL_PERR_BAD_ESCAPE);
}

Test(events, xml_without_event_name)
{
	const char *s = "<event>\n  <headers>\n    <Core-UUID>x</Core-UUID>\n  </headers>\n"
	                "  <body>b</body>\n</event>\n";

	fails(FSESL_EVFMT_XML, s, strlen(s), FSESL_PERR_NO_EVENT_NAME);
	fails(FSESL_EVFMT_XML, "<event></event>", 15, FSESL_PERR_NO_EVENT_NAME);
}

Test(events, bad_arguments)
{
	struct fsesl_event *ev;

	cr_assert(fsesl_event_parse(FSESL_EVFMT_PLAIN, NULL, 3, NULL, &ev) == FSESL_PERR_INVALID);
	cr_assert(fsesl_event_parse(FSESL_EVFMT_PLAIN, "x", 1, NULL, NULL) == FSESL_PERR_INVALID);
	cr_assert(
	    fsesl_event_parse((enum fsesl_event_format)7, "x", 1, NULL, &ev) == FSESL_PERR_INVALID);
	cr_assert(ev == NULL);
}

/* Every prefix of every synthesised event payload, ending at the guard
 * page, decodes or fails with a protocol error: truncation never makes a
 * decoder read past its input. */
Test(events, every_prefix_of_every_vector_payload)
{
	static const char *const files[] = {"background-job-plain.bin", "background-job-json.bin",
	    "background-job-xml.bin", "event-plain-with-body.bin", "custom-event-json.bin",
	    "heartbeat-xml.bin", "background-job-empty-body-json.bin"};

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char path[512];
		size_t len;
		char *data;
		struct fsesl_msg m;
		ssize_t n;
		enum fsesl_event_format fmt;

		snprintf(path, sizeof(path), "%s/%s", FSESL_TEST_DATA, files[f]);
		data = fsesl_test_read_file(path, &len);
		n = fsesl_msg_parse(data, len, 0, NULL, &m, NULL);
		cr_assert(n == (ssize_t)len);
		fmt = (enum fsesl_event_format)(m.type - FSESL_MSG_EVENT_PLAIN);
		for (size_t k = 0; k <= m.body_len; k++) {
			struct fsesl_event *ev = NULL;
			int rc = dec(fmt, m.body, k, NULL, &ev);

			cr_assert(rc == 0 || (rc <= FSESL_PERR_HEADER_TOO_LARGE &&
			                         rc >= FSESL_PERR_BAD_COMMAND),
			    "%s prefix %zu: %d", files[f], k, rc);
			cr_assert((rc == 0) == (ev != NULL));
			fsesl_event_free(ev);
		}
		free(data);
	}
}
