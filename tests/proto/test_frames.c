/*
 * test_frames.c - the frame reader on hand-made input: one test per class
 * of malformed input, the limits, line ends, classification and replies.
 * Every input sits right before a PROT_NONE page (see testutil.h).
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
	fsesl_test_guard_init(&g, 1 << 20);
}

static void
teardown(void)
{
	fsesl_test_guard_free(&g);
}

TestSuite(frames, .init = setup, .fini = teardown);

static struct fsesl_msg M;

static ssize_t
parse_lim(const char *s, size_t len, const struct fsesl_limits *lim, int *err)
{
	const char *b = fsesl_test_guard_put(&g, s, len);

	return fsesl_msg_parse(b, len, 0, lim, &M, err);
}

static ssize_t
parse(const char *s, int *err)
{
	return parse_lim(s, strlen(s), NULL, err);
}

/* Expects a framing error with that code, also when fed byte by byte
 * (with last_len), and PARTIAL on every prefix before it shows up. */
static void
expect_error(const char *s, size_t len, const struct fsesl_limits *lim, int code)
{
	int err = 0;
	ssize_t n = parse_lim(s, len, lim, &err);
	size_t last = 0;

	cr_assert(n == FSESL_PARSE_ERROR, "got %zd for %.40s", n, s);
	cr_assert(err == code, "error %d (%s), expected %d (%s)", err, fsesl_proto_strerror(err),
	    code, fsesl_proto_strerror(code));
	for (size_t k = 1; k <= len; k++) {
		const char *b = fsesl_test_guard_put(&g, s, k);

		err = 0;
		n = fsesl_msg_parse(b, k, last, lim, &M, &err);
		if (n == FSESL_PARSE_PARTIAL) {
			last = M.header_bytes ? 0 : k;
			continue;
		}
		cr_assert(n == FSESL_PARSE_ERROR && err == code,
		    "byte-wise: %zd/%d at %zu, expected error %d", n, err, k, code);
		return;
	}
	cr_assert_fail("byte-wise feeding never reported the error");
}

#define CL(v) "Content-Type: api/response\nContent-Length: " v "\n\nhello"

Test(frames, content_length_not_digits)
{
	static const char *const bad[] = {CL("abc"), CL("12a"), CL(""), CL("5 "), CL("+5"),
	    CL("0x5"), CL("5\t"), CL("1 2"), CL("٣")};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], strlen(bad[i]), NULL, FSESL_PERR_BAD_CONTENT_LENGTH);
}

Test(frames, content_length_negative)
{
	expect_error(CL("-1"), strlen(CL("-1")), NULL, FSESL_PERR_BAD_CONTENT_LENGTH);
	expect_error(CL("-0"), strlen(CL("-0")), NULL, FSESL_PERR_BAD_CONTENT_LENGTH);
}

Test(frames, content_length_overflow)
{
	expect_error(CL("18446744073709551616"), strlen(CL("18446744073709551616")), NULL,
	    FSESL_PERR_BAD_CONTENT_LENGTH);
	expect_error(CL("99999999999999999999999999999"),
	    strlen(CL("99999999999999999999999999999")), NULL, FSESL_PERR_BAD_CONTENT_LENGTH);
	/* fits in 64 bits, so it is "only" too large */
	expect_error(CL("18446744073709551615"), strlen(CL("18446744073709551615")), NULL,
	    FSESL_PERR_BODY_TOO_LARGE);
}

Test(frames, content_length_huge)
{
	struct fsesl_limits lim;
	int err;

	expect_error(CL("16777217"), strlen(CL("16777217")), NULL, FSESL_PERR_BODY_TOO_LARGE);
	/* exactly the default cap is allowed: PARTIAL, waiting for the body */
	cr_assert(parse(CL("16777216"), &err) == FSESL_PARSE_PARTIAL);
	cr_assert(M.body_len == 16777216 && M.header_bytes == strlen(CL("16777216")) - 5);

	fsesl_limits_init(&lim);
	lim.max_body_bytes = 4;
	expect_error(CL("5"), strlen(CL("5")), &lim, FSESL_PERR_BODY_TOO_LARGE);
	lim.max_body_bytes = 5;
	cr_assert(parse_lim(CL("5"), strlen(CL("5")), &lim, &err) == (ssize_t)strlen(CL("5")));
	cr_assert(M.body_len == 5 && memcmp(M.body, "hello", 5) == 0);
}

Test(frames, content_length_leading_zeros_and_duplicates)
{
	int err;
	const char *same = "Content-Length: 2\nContent-Type: x/y\nContent-Length: 2\n\nab";
	const char *diff = "Content-Length: 2\nContent-Type: x/y\nContent-Length: 3\n\nabc";

	cr_assert(parse(CL("005"), &err) == (ssize_t)strlen(CL("005")));
	cr_assert(M.body_len == 5);
	cr_assert(parse(same, &err) == (ssize_t)strlen(same));
	cr_assert(M.body_len == 2 && M.n_headers == 3);
	expect_error(diff, strlen(diff), NULL, FSESL_PERR_BAD_CONTENT_LENGTH);
}

Test(frames, missing_blank_line)
{
	struct fsesl_limits lim;
	char buf[600];
	size_t len = 0;
	int err;

	fsesl_limits_init(&lim);
	lim.max_header_bytes = 512;
	lim.max_headers = 32;
	while (len + 20 < sizeof(buf)) {
		memcpy(buf + len, "X-Header-Line: abc\n", 19);
		len += 19;
	}
	/* no terminator: PARTIAL while under the limit, whatever last_len */
	for (size_t k = 1; k < 512; k++) {
		cr_assert(parse_lim(buf, k, &lim, &err) == FSESL_PARSE_PARTIAL, "at %zu", k);
		cr_assert(fsesl_msg_parse(fsesl_test_guard_put(&g, buf, k), k, k - 1, &lim, &M,
		              &err) == FSESL_PARSE_PARTIAL);
	}
	/* 31 lines of 19 bytes: the 513th byte comes before the 33rd header */
	expect_error(buf, len, &lim, FSESL_PERR_HEADER_TOO_LARGE);
	lim.max_headers = 20;
	expect_error(buf, len, &lim, FSESL_PERR_TOO_MANY_HEADERS);
	lim.max_headers = FSESL_MSG_MAX_HEADERS;
	{
		char big[1024];

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (i % 100 == 99) ? '\n' : 'a';
		memcpy(big, "Name: ", 6);
		for (size_t i = 100; i < sizeof(big); i += 100)
			memcpy(big + i, "N: ", 3);
		expect_error(big, sizeof(big), &lim, FSESL_PERR_HEADER_TOO_LARGE);
	}
}

Test(frames, missing_blank_line_long_block_resumes)
{
	/* Beyond the rescan window the reader only looks at new bytes; the
	 * block still completes and still hits the limit. */
	struct fsesl_limits lim;
	static char buf[13000];
	size_t len = 0, last = 0, calls = 0;
	ssize_t n = 0;
	int err;

	fsesl_limits_init(&lim);
	memcpy(buf, "Content-Type: text/long\nX: ", 27);
	len = 27;
	memset(buf + len, 'v', 8000);
	len += 8000;
	memcpy(buf + len, "\n\n", 2);
	len += 2;
	for (size_t k = 1; k <= len; k++) {
		n = fsesl_msg_parse(fsesl_test_guard_put(&g, buf, k), k, last, &lim, &M, &err);
		calls++;
		if (n != FSESL_PARSE_PARTIAL)
			break;
		last = M.header_bytes ? 0 : k;
	}
	cr_assert(n == (ssize_t)len && calls == len);
	cr_assert(M.n_headers == 2 && M.headers[1].value_len == 8000);

	/* the same with CRLF line ends: the resumed search must find a
	 * "\n\r\n" whose bytes arrive one by one */
	memcpy(buf + 27 + 8000, "\r\n\r\n", 4);
	len = 27 + 8000 + 4;
	last = 0;
	for (size_t k = 1; k <= len; k++) {
		n = fsesl_msg_parse(fsesl_test_guard_put(&g, buf, k), k, last, &lim, &M, &err);
		if (n != FSESL_PARSE_PARTIAL)
			break;
		last = M.header_bytes ? 0 : k;
	}
	cr_assert(n == (ssize_t)len);
	cr_assert(M.n_headers == 2 && M.headers[1].value_len == 8000);

	/* same, never terminated: the limit ends it */
	lim.max_header_bytes = 12000;
	memset(buf + 27, 'v', sizeof(buf) - 27);
	last = 0;
	for (size_t k = 1; k <= 13000; k++) {
		n = fsesl_msg_parse(fsesl_test_guard_put(&g, buf, k), k, last, &lim, &M, &err);
		if (n != FSESL_PARSE_PARTIAL)
			break;
		last = k;
	}
	cr_assert(n == FSESL_PARSE_ERROR && err == FSESL_PERR_HEADER_TOO_LARGE);
	cr_assert(last == 11999);

	/* a NUL past the rescan window: whole input and trickled input name
	 * the same error (the trickle finds it when the limit is reached) */
	buf[3000] = '\0';
	cr_assert(parse_lim(buf, 4000, &lim, &err) == FSESL_PARSE_ERROR);
	cr_assert(err == FSESL_PERR_NUL_BYTE);
	last = 0;
	for (size_t k = 1; k <= 13000; k++) {
		n = fsesl_msg_parse(fsesl_test_guard_put(&g, buf, k), k, last, &lim, &M, &err);
		if (n != FSESL_PARSE_PARTIAL)
			break;
		last = k;
	}
	cr_assert(n == FSESL_PARSE_ERROR && err == FSESL_PERR_NUL_BYTE);
}

Test(frames, oversize_header_block)
{
	struct fsesl_limits lim;
	char buf[256];
	int err;

	fsesl_limits_init(&lim);
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "Content-Type: a/b\nX: ", 21);
	/* block of exactly 100 bytes: accepted */
	buf[98] = '\n';
	buf[99] = '\n';
	lim.max_header_bytes = 100;
	cr_assert(parse_lim(buf, 100, &lim, &err) == 100);
	cr_assert(M.header_bytes == 100);
	lim.max_header_bytes = 99;
	expect_error(buf, 100, &lim, FSESL_PERR_HEADER_TOO_LARGE);
	/* default limit: 64 KiB */
	{
		size_t n = FSESL_DEFAULT_MAX_HEADER_BYTES + 10;
		char *big = malloc(n);

		memset(big, 'y', n);
		memcpy(big, "Content-Type: a/b\nX: ", 21);
		big[n - 2] = '\n';
		big[n - 1] = '\n';
		cr_assert(parse_lim(big, n, NULL, &err) == FSESL_PARSE_ERROR);
		cr_assert(err == FSESL_PERR_HEADER_TOO_LARGE);
		free(big);
	}
}

Test(frames, too_many_headers)
{
	char buf[2048];
	size_t len = 0;
	int err;
	struct fsesl_limits lim;

	for (unsigned i = 0; i < FSESL_MSG_MAX_HEADERS; i++)
		len += (size_t)sprintf(buf + len, "H%u: v\n", i);
	buf[len++] = '\n';
	cr_assert(parse_lim(buf, len, NULL, &err) == (ssize_t)len);
	cr_assert(M.n_headers == FSESL_MSG_MAX_HEADERS);
	len--;
	len += (size_t)sprintf(buf + len, "One-More: v\n\n");
	expect_error(buf, len, NULL, FSESL_PERR_TOO_MANY_HEADERS);

	fsesl_limits_init(&lim);
	lim.max_headers = 2;
	expect_error("A: 1\nB: 2\nC: 3\n\n", 16, &lim, FSESL_PERR_TOO_MANY_HEADERS);
	cr_assert(parse_lim("A: 1\nB: 2\n\n", 11, &lim, &err) == 11);
}

Test(frames, nul_bytes)
{
	static const char name_nul[] = "Content-Type: a/b\nX\0Y: v\n\n";
	static const char value_nul[] = "Content-Type: a/b\nX: v\0w\n\n";
	static const char body_nul[] = "Content-Type: a/b\nContent-Length: 3\n\na\0b";
	int err;

	expect_error(name_nul, sizeof(name_nul) - 1, NULL, FSESL_PERR_NUL_BYTE);
	expect_error(value_nul, sizeof(value_nul) - 1, NULL, FSESL_PERR_NUL_BYTE);
	/* a body is opaque bytes framed by length */
	cr_assert(
	    parse_lim(body_nul, sizeof(body_nul) - 1, NULL, &err) == (ssize_t)sizeof(body_nul) - 1);
	cr_assert(M.body_len == 3 && M.body[1] == '\0');
}

Test(frames, bad_header_lines)
{
	expect_error("Content-Type: a/b\nno colon here\n\n", 33, NULL, FSESL_PERR_BAD_HEADER_LINE);
	expect_error(": empty name\n\n", 14, NULL, FSESL_PERR_BAD_HEADER_LINE);
}

Test(frames, crlf_and_leading_blank_lines)
{
	const char *s =
	    "\r\n\n\r\nContent-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\nX";
	int err;
	ssize_t n = parse(s, &err);

	cr_assert(n == (ssize_t)strlen(s) - 1);
	cr_assert(M.type == FSESL_MSG_COMMAND_REPLY);
	cr_assert(M.n_headers == 2);
	cr_assert(
	    M.headers[1].value_len == 12 && memcmp(M.headers[1].value, "+OK accepted", 12) == 0);
	cr_assert(M.reply == FSESL_REPLY_OK);
	cr_assert(M.reply_text_len == 8 && memcmp(M.reply_text, "accepted", 8) == 0);
	cr_assert(M.header_bytes == strlen(s) - 1 - 5);
	/* "\n\r\n" ends a block too */
	cr_assert(parse("Content-Type: auth/request\n\r\n", &err) == 29);
	cr_assert(M.type == FSESL_MSG_AUTH_REQUEST && M.body == NULL);
	/* every strict prefix of a CRLF message is PARTIAL, including the ones
	 * ending in a lone '\r' right before the guard page */
	{
		const char *crlf = "\r\nContent-Type: api/response\r\nContent-Length: 2\r\n"
		                   "X: y\r\r\n\r\nok";
		size_t len = strlen(crlf);

		for (size_t k = 0; k < len; k++)
			cr_assert(
			    parse_lim(crlf, k, NULL, &err) == FSESL_PARSE_PARTIAL, "at %zu", k);
		cr_assert(parse_lim(crlf, len, NULL, &err) == (ssize_t)len);
		cr_assert(M.n_headers == 3 && M.headers[2].value_len == 2); /* "y\r" */
		cr_assert(M.body_len == 2 && memcmp(M.body, "ok", 2) == 0);
	}
	/* only blank lines: nothing to return yet */
	cr_assert(parse("\n\n\r\n", &err) == FSESL_PARSE_PARTIAL);
	cr_assert(parse("", &err) == FSESL_PARSE_PARTIAL);
}

Test(frames, leading_blank_lines_limit)
{
	struct fsesl_limits lim;
	char buf[300];
	int err;

	fsesl_limits_init(&lim);
	lim.max_header_bytes = 256;
	memset(buf, '\n', sizeof(buf));
	cr_assert(parse_lim(buf, 255, &lim, &err) == FSESL_PARSE_PARTIAL);
	cr_assert(parse_lim(buf, 256, &lim, &err) == FSESL_PARSE_ERROR);
	cr_assert(err == FSESL_PERR_HEADER_TOO_LARGE);
}

Test(frames, values_are_never_decoded)
{
	const char *s =
	    "Content-Type: command/reply\nReply-Text: -ERR invalid session id [abc%41]\n\n";
	int err;

	cr_assert(parse(s, &err) == (ssize_t)strlen(s));
	cr_assert(M.reply == FSESL_REPLY_ERR);
	cr_assert(
	    M.reply_text_len == 27 && memcmp(M.reply_text, "invalid session id [abc%41]", 27) == 0);
}

Test(frames, empty_values_and_duplicates_kept)
{
	const char *s = "Content-Type: log/data\nContent-Length: 2\nUser-Data: \nX: 1\nx: 2\n\nhi";
	const struct fsesl_header *h;
	int err;

	cr_assert(parse(s, &err) == (ssize_t)strlen(s));
	cr_assert(M.type == FSESL_MSG_LOG_DATA && M.n_headers == 5);
	h = fsesl_msg_header(&M, "user-data");
	cr_assert(h && h->value_len == 0);
	h = fsesl_msg_header(&M, "X");
	cr_assert(h == &M.headers[3]);
	cr_assert(fsesl_msg_header(&M, "Nope") == NULL);
}

Test(frames, classification)
{
	static const struct {
		const char *ct;
		enum fsesl_msg_type t;
	} tab[] = {
	    {"auth/request", FSESL_MSG_AUTH_REQUEST},
	    {"command/reply", FSESL_MSG_COMMAND_REPLY},
	    {"api/response", FSESL_MSG_API_RESPONSE},
	    {"text/event-plain", FSESL_MSG_EVENT_PLAIN},
	    {"text/event-json", FSESL_MSG_EVENT_JSON},
	    {"TEXT/Event-XML", FSESL_MSG_EVENT_XML},
	    {"log/data", FSESL_MSG_LOG_DATA},
	    {"text/disconnect-notice", FSESL_MSG_DISCONNECT_NOTICE},
	    {"text/rude-rejection", FSESL_MSG_RUDE_REJECTION},
	    {"text/event-yaml", FSESL_MSG_UNKNOWN},
	    {"command/reply ", FSESL_MSG_UNKNOWN},
	    {"", FSESL_MSG_UNKNOWN},
	};
	int err;

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		cr_assert(
		    fsesl_msg_type_of(tab[i].ct, strlen(tab[i].ct)) == tab[i].t, "%s", tab[i].ct);
	cr_assert(fsesl_msg_type_of(NULL, 0) == FSESL_MSG_UNKNOWN);
	cr_assert_str_eq(fsesl_msg_type_name(FSESL_MSG_EVENT_JSON), "text/event-json");
	cr_assert_str_eq(fsesl_msg_type_name((enum fsesl_msg_type)99), "unknown");

	/* unknown and missing Content-Type are kept, not fatal */
	cr_assert(parse("Content-Type: foo/bar\n\n", &err) == 23);
	cr_assert(M.type == FSESL_MSG_UNKNOWN && M.content_type_len == 7);
	cr_assert(parse("X-Only: 1\n\n", &err) == 11);
	cr_assert(M.type == FSESL_MSG_UNKNOWN && M.content_type == NULL);
}

/* Content types are exact (case aside): a type one byte longer or shorter
 * than a real one is unknown, never the type it starts with, whether
 * classified alone or parsed in a frame. */
Test(frames, content_types_are_exact)
{
	static const char *const types[] = {"auth/request", "command/reply", "api/response",
	    "text/event-plain", "text/event-json", "text/event-xml", "log/data",
	    "text/disconnect-notice", "text/rude-rejection"};
	static const char *const tails[] = {"-ish", "x", " ", "\t", ";", "/", "s"};
	char ct[64], frame[128];
	int err;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = strlen(types[i]);

		cr_assert(fsesl_msg_type_of(types[i], n) != FSESL_MSG_UNKNOWN, "%s", types[i]);
		cr_assert(fsesl_msg_type_of(types[i], n - 1) == FSESL_MSG_UNKNOWN,
		    "%.*s taken for %s", (int)(n - 1), types[i], types[i]);
		for (size_t k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
			snprintf(ct, sizeof(ct), "%s%s", types[i], tails[k]);
			cr_assert(fsesl_msg_type_of(ct, strlen(ct)) == FSESL_MSG_UNKNOWN,
			    "\"%s\" taken for %s", ct, types[i]);
			snprintf(frame, sizeof(frame), "Content-Type: %s\nReply-Text: +OK\n\n", ct);
			cr_assert(parse(frame, &err) == (ssize_t)strlen(frame));
			cr_assert(M.type == FSESL_MSG_UNKNOWN, "frame with \"%s\" taken for %s", ct,
			    types[i]);
		}
		snprintf(ct, sizeof(ct), " %s", types[i]);
		cr_assert(fsesl_msg_type_of(ct, strlen(ct)) == FSESL_MSG_UNKNOWN, "\"%s\"", ct);
	}
}

Test(frames, disconnect_notice_linger)
{
	const char *linger = "Content-Type: text/disconnect-notice\nController-Session-UUID: u\n"
	                     "Content-Disposition: linger\nContent-Length: 0\n\n";
	const char *bye = "Content-Type: text/disconnect-notice\nContent-Disposition: disconnect\n"
	                  "Content-Length: 3\n\nbye";
	int err;

	cr_assert(parse(linger, &err) == (ssize_t)strlen(linger));
	cr_assert(M.linger && M.body != NULL && M.body_len == 0);
	cr_assert(parse(bye, &err) == (ssize_t)strlen(bye));
	cr_assert(!M.linger && M.body_len == 3);
}

Test(frames, reply_kinds)
{
	int err;

	cr_assert(parse("Content-Type: command/reply\nReply-Text: +OK\n\n", &err) > 0);
	cr_assert(M.reply == FSESL_REPLY_OK && M.reply_text_len == 0);
	cr_assert(parse("Content-Type: command/reply\nReply-Text: -ERR no reply\n\n", &err) > 0);
	cr_assert(M.reply == FSESL_REPLY_ERR && M.reply_text_len == 8);
	cr_assert(parse("Content-Type: command/reply\nReply-Text: hmm\n\n", &err) > 0);
	cr_assert(M.reply == FSESL_REPLY_OTHER && M.reply_text_len == 3);
	cr_assert(parse("Content-Type: command/reply\n\n", &err) > 0);
	cr_assert(M.reply == FSESL_REPLY_NONE && M.reply_text == NULL);
}

Test(frames, body_with_everything)
{
	/* the body may hold blank lines, CR, '%' and header-looking text */
	const char *s =
	    "Content-Type: api/response\nContent-Length: 23\n\n\n\nX: y\r\n%zz\n\nContent-Ty";
	int err;

	cr_assert(parse(s, &err) == (ssize_t)strlen(s));
	cr_assert(M.body_len == 23 && M.body == fsesl_test_guard_put(&g, s, strlen(s)) + 47);
}

Test(frames, err_may_be_null_and_strerror)
{
	cr_assert(parse_lim(CL("x"), strlen(CL("x")), NULL, NULL) == FSESL_PARSE_ERROR);
	for (int e = FSESL_PERR_BAD_COMMAND; e <= 0; e++)
		cr_assert(fsesl_proto_strerror(e) != NULL && fsesl_proto_strerror(e)[0] != '\0');
	cr_assert_str_eq(fsesl_proto_strerror(-1), "unknown protocol error");
}

Test(frames, limits_init)
{
	struct fsesl_limits lim;

	fsesl_limits_init(&lim);
	cr_assert(lim.max_header_bytes == FSESL_DEFAULT_MAX_HEADER_BYTES);
	cr_assert(lim.max_headers == FSESL_MSG_MAX_HEADERS);
	cr_assert(lim.max_body_bytes == 16u * 1024u * 1024u);
	cr_assert(lim.max_event_headers == FSESL_DEFAULT_MAX_EVENT_HEADERS);
}
