/*
 * test_json.c - the strict JSON reader of text/event-json (proto/json.h).
 *
 * As picohttpparser's tests: every input sits right before a PROT_NONE page
 * (one byte read too far kills the test), every strict prefix of a valid
 * object is rejected cleanly, and each rejected class has its own case.
 * Decoded-event results on the real captures are the vector suites' job;
 * here the reader's own contract: views, escapes, the decoded-length bound,
 * state after the end or an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fsesl_proto.h"
#include "json.h"
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

TestSuite(json, .init = setup, .fini = teardown);

/* Reads every member of s (at the guard page); returns the final code (0
 * complete, < 0 error) and the member count in *n. */
static int
read_all(const char *s, size_t len, size_t *n)
{
	const char *p = fsesl_test_guard_put(&g, s, len);
	struct fsesl_json_reader r;
	struct fsesl_json_member m;
	int rc;

	*n = 0;
	rc = fsesl_json_open(&r, p, len);
	if (rc)
		return rc;
	while ((rc = fsesl_json_next(&r, &m)) == 1) {
		cr_assert(m.key.p >= p && m.key.p + m.key.len <= p + len);
		if (!m.is_array)
			cr_assert(m.str.p >= p && m.str.p + m.str.len <= p + len);
		else
			cr_assert(m.arr.p >= p && m.arr.end <= p + len);
		(*n)++;
	}
	return rc;
}

/* The single string member of {"k":<val>} decoded; NULL if rejected. */
static char *
value_of(const char *val, size_t *out_len)
{
	char doc[512];
	size_t len = (size_t)snprintf(doc, sizeof(doc), "{\"k\":%s}", val);
	const char *p = fsesl_test_guard_put(&g, doc, len);
	struct fsesl_json_reader r;
	struct fsesl_json_member m;
	char *dst;

	cr_assert(fsesl_json_open(&r, p, len) == 0);
	if (fsesl_json_next(&r, &m) != 1)
		return NULL;
	cr_assert(!m.is_array);
	cr_assert(fsesl_json_next(&r, &m) == 0);
	dst = malloc(m.str.len + 1);
	*out_len = fsesl_json_decode(&m.str, dst);
	/* An escape is never shorter than what it stands for. */
	cr_assert(*out_len <= m.str.len);
	dst[*out_len] = '\0';
	return dst;
}

Test(json, members_views_and_arrays)
{
	static const char doc[] =
	    " {\"Event-Name\" : \"CUSTOM\",\"X-Dup\":\"one\",\"X-Dup\":\"two\","
	    "\"X-Array\":[ \"a\" , \"b\\n\",\"\" ],\"X-Empty\":[],\"_body\":\"x\"}\r\n";
	const char *p = fsesl_test_guard_put(&g, doc, sizeof(doc) - 1);
	struct fsesl_json_reader r;
	struct fsesl_json_member m;
	struct fsesl_json_str it;
	char buf[16];

	cr_assert(fsesl_json_open(&r, p, sizeof(doc) - 1) == 0);
	cr_assert(fsesl_json_next(&r, &m) == 1);
	cr_assert(!m.is_array && !m.key.escaped && m.key.len == 10);
	cr_assert(memcmp(m.key.p, "Event-Name", 10) == 0);
	cr_assert(m.str.len == 6 && memcmp(m.str.p, "CUSTOM", 6) == 0);
	cr_assert(fsesl_json_eq(&m.key, "event-name", true));
	cr_assert(!fsesl_json_eq(&m.key, "event-name", false));
	cr_assert(!fsesl_json_eq(&m.key, "Event-Nam", false));
	cr_assert(!fsesl_json_eq(&m.key, "Event-Names", false));
	cr_assert(fsesl_json_next(&r, &m) == 1 && m.str.len == 3 && m.str.p[0] == 'o');
	cr_assert(fsesl_json_next(&r, &m) == 1 && m.str.len == 3 && m.str.p[0] == 't');
	cr_assert(fsesl_json_next(&r, &m) == 1 && m.is_array);
	cr_assert(m.arr.n == 3 && m.arr.raw_len == 4);
	cr_assert(fsesl_json_array_next(&m.arr, &it) && it.len == 1 && it.p[0] == 'a');
	cr_assert(fsesl_json_array_next(&m.arr, &it) && it.escaped);
	cr_assert(fsesl_json_decode(&it, buf) == 2 && memcmp(buf, "b\n", 2) == 0);
	cr_assert(fsesl_json_array_next(&m.arr, &it) && it.len == 0);
	cr_assert(!fsesl_json_array_next(&m.arr, &it));
	cr_assert(fsesl_json_next(&r, &m) == 1 && m.is_array && m.arr.n == 0);
	cr_assert(!fsesl_json_array_next(&m.arr, &it));
	cr_assert(fsesl_json_next(&r, &m) == 1 && fsesl_json_eq(&m.key, "_body", false));
	cr_assert(fsesl_json_next(&r, &m) == 0);
	cr_assert(fsesl_json_next(&r, &m) == 0, "complete stays complete");
}

Test(json, escapes_decode_to_utf8)
{
	static const struct {
		const char *json, *bytes;
		size_t len;
	} t[] = {
	    {"\"plain\"", "plain", 5},
	    {"\"\"", "", 0},
	    {"\"\\\"\\\\\\/\"", "\"\\/", 3},
	    {"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5},
	    {"\"\\u0001\\u001f\\u007F\"", "\x01\x1f\x7f", 3},
	    {"\"\\u00f6\\u00F6\"", "\xc3\xb6\xc3\xb6", 4},
	    {"\"\\u20ac\"", "\xe2\x82\xac", 3},
	    {"\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4}, /* surrogate pair */
	    {"\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
	    {"\"\xc3\xb6\xe2\x82\xac\xf0\x9f\x98\x80\"", "\xc3\xb6\xe2\x82\xac\xf0\x9f\x98\x80", 9},
	    {"\"\xff\xfe raw\"", "\xff\xfe raw", 6}, /* not UTF-8: passed through */
	    {"\"a\\u0041\\n\"", "aA\n", 3},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = 99;
		char *v = value_of(t[i].json, &len);

		cr_assert(v != NULL, "rejected: %s", t[i].json);
		cr_assert(len == t[i].len && memcmp(v, t[i].bytes, len) == 0, "case %zu: %s", i,
		    t[i].json);
		free(v);
	}
}

Test(json, strings_rejected)
{
	static const char *const bad[] = {
	    "\"\\u0000\"", /* a header cannot hold NUL */
	    "\"\\uD83D\"", /* lone high surrogate */
	    "\"\\uD83Dx\"",
	    "\"\\uD83D\\u0041\"", /* high, then not a low one */
	    "\"\\uDE00\"", /* lone low surrogate */
	    "\"\\uDE00\\uD83D\"", /* reversed */
	    "\"\\u12\"",
	    "\"\\u12G4\"",
	    "\"\\x41\"",
	    "\"\\'\"",
	    "\"\\\"",
	    "\"a\x01z\"", /* raw control character */
	    "\"line\nbreak\"",
	    "\"tab\there\"",
	    "\"unterminated",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len;

		cr_assert(value_of(bad[i], &len) == NULL, "accepted: %s", bad[i]);
	}
}

Test(json, structure_rejected)
{
	static const char *const bad[] = {
	    "",
	    " ",
	    "[]",
	    "\"x\"",
	    "\xef\xbb\xbf{}", /* byte order mark */
	    "\f{}", /* only space, tab, CR and LF are whitespace */
	    "{}\v",
	    "{",
	    "{\"a\"",
	    "{\"a\":",
	    "{\"a\" \"b\"}",
	    "{\"a\":\"b\"",
	    "{\"a\":\"b\",}",
	    "{,\"a\":\"b\"}",
	    "{\"a\":\"b\" \"c\":\"d\"}",
	    "{\"\":\"empty key\"}",
	    "{a:\"b\"}",
	    "{'a':'b'}",
	    "{\"a\":1}",
	    "{\"a\":-1.5e3}",
	    "{\"a\":true}",
	    "{\"a\":false}",
	    "{\"a\":null}",
	    "{\"a\":{}}",
	    "{\"a\":{\"b\":\"c\"}}",
	    "{\"a\":[\"b\",1]}",
	    "{\"a\":[[\"b\"]]}",
	    "{\"a\":[\"b\",]}",
	    "{\"a\":[,\"b\"]}",
	    "{\"a\":[\"b\"}",
	    "{\"a\":[\"b\" \"c\"]}",
	    "{\"a\":\"b\"} x",
	    "{\"a\":\"b\"}{}",
	    "{\"a\":\"b\"}\0",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n, len = strlen(bad[i]);

		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			len = 10; /* the NUL is part of the input */
		cr_assert(read_all(bad[i], len, &n) == FSESL_PERR_BAD_JSON, "accepted: %s", bad[i]);
	}
}

Test(json, errors_are_final)
{
	static const char doc[] = "{\"a\":\"b\",\"c\":1,\"d\":\"e\"}";
	const char *p = fsesl_test_guard_put(&g, doc, sizeof(doc) - 1);
	struct fsesl_json_reader r;
	struct fsesl_json_member m;

	cr_assert(fsesl_json_open(&r, p, sizeof(doc) - 1) == 0);
	cr_assert(fsesl_json_next(&r, &m) == 1);
	cr_assert(fsesl_json_next(&r, &m) == FSESL_PERR_BAD_JSON);
	cr_assert(fsesl_json_next(&r, &m) == FSESL_PERR_BAD_JSON);
	cr_assert(fsesl_json_open(&r, p, 0) == FSESL_PERR_BAD_JSON);
	cr_assert(fsesl_json_next(&r, &m) == FSESL_PERR_BAD_JSON);
}

/* Every strict prefix of a valid object, ending at the guard page, is
 * rejected without reading past it; the whole is accepted. */
Test(json, every_prefix_rejected_whole_accepted)
{
	static const char *const docs[] = {
	    "{\"Event-Name\":\"HEARTBEAT\",\"A\":[\"x\",\"y\\u00f6\"],\"_body\":\"b\\\"\"}",
	    " { \"k\" : [ ] , \"s\" : \"\\uD83D\\uDE00\\n\" } ",
	    "{\"X-Ctl\":\"\\u0001\\b\\t\\u000b\\f\",\"X-Utf8\":\"\xc3\xb6\"}",
	};

	for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		size_t len = strlen(docs[d]), n;

		for (size_t k = 0; k < len; k++) {
			int rc = read_all(docs[d], k, &n);

			/* A prefix that ends in trailing blanks after '}' is whole. */
			if (rc == 0)
				cr_assert(strspn(docs[d] + k, " ") == len - k,
				    "doc %zu, prefix %zu", d, k);
			else
				cr_assert(rc == FSESL_PERR_BAD_JSON);
		}
		cr_assert(read_all(docs[d], len, &n) == 0, "doc %zu", d);
		cr_assert(n == 3 || n == 2);
	}
}

/* The reader behind fsesl_event_parse(): the real server's escapes and an
 * escaped key that spells Event-Name. */
Test(json, event_decoding_through_the_reader)
{
	static const char doc[] =
	    "{\"Event\\u002dName\":\"CUSTOM\",\"X-Ctl\":\"\\u0001\\t\\f\","
	    "\"X-Arr\":[\"a\\\"\",\"\\u20ac\"],\"_body\":\"l1\\nl2\",\"_body\":\"no\"}";
	const char *p = fsesl_test_guard_put(&g, doc, sizeof(doc) - 1);
	struct fsesl_event *ev = NULL;

	cr_assert(fsesl_event_parse(FSESL_EVFMT_JSON, p, sizeof(doc) - 1, NULL, &ev) == 0);
	cr_assert_str_eq(ev->name, "CUSTOM");
	cr_assert(ev->n_headers == 3);
	cr_assert(ev->headers[0].name_len == 10);
	cr_assert(
	    ev->headers[1].value_len == 3 && memcmp(ev->headers[1].value, "\x01\t\f", 3) == 0);
	cr_assert_str_eq(ev->headers[2].value, "ARRAY::a\"|:\xe2\x82\xac");
	cr_assert(ev->headers[2].value_len == strlen(ev->headers[2].value));
	cr_assert(ev->body_len == 5 && strcmp(ev->body, "l1\nl2") == 0);
	fsesl_event_free(ev);
}
