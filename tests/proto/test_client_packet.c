/*
 * test_client_packet.c - the server-side reader of client packets, against
 * the server behaviour described in docs/protocol.md §2.3/§2.4 (each case
 * below was confirmed on FreeSWITCH 1.10.12, see the crlf and
 * sendevent-variants captures).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fsesl_proto.h"
#include "enc_util.h"

static struct fsesl_client_packet pkt;

static ssize_t
parse(const char *s, size_t n)
{
	int err = 0;
	ssize_t r = fsesl_client_packet_parse(s, n, NULL, &pkt, &err);

	if (r == FSESL_PARSE_ERROR)
		cr_assert_neq(err, 0, "error without a code");
	return r;
}

#define PARSE(lit) parse(lit, sizeof(lit) - 1)

static void
expect_line(const char *want)
{
	char s[256];

	cr_assert_eq(pkt.line_len, strlen(want), "line \"%s\", want \"%s\"",
	    enc_show(pkt.line, pkt.line_len, s, sizeof(s)), want);
	cr_assert(memcmp(pkt.line, want, pkt.line_len) == 0);
}

static void
expect_header(size_t i, const char *name, const char *value)
{
	char s1[256], s2[256];
	const struct fsesl_header *h = &pkt.headers[i];

	cr_assert_lt(i, pkt.n_headers, "header %zu missing (%zu headers)", i, pkt.n_headers);
	cr_assert(h->name_len == strlen(name) && memcmp(h->name, name, h->name_len) == 0 &&
	              h->value_len == strlen(value) && memcmp(h->value, value, h->value_len) == 0,
	    "header %zu is \"%s\": \"%s\", want \"%s\": \"%s\"", i,
	    enc_show(h->name, h->name_len, s1, sizeof(s1)),
	    enc_show(h->value, h->value_len, s2, sizeof(s2)), name, value);
}

Test(client_packet, simple_lf)
{
	cr_assert_eq(PARSE("api status\n\n"), 12);
	expect_line("api status");
	cr_assert_eq(pkt.n_headers, 0);
	cr_assert_null(pkt.body);
	cr_assert_eq(pkt.skipped, 0);
}

Test(client_packet, crlf_forms_end_a_block)
{
	cr_assert_eq(PARSE("api version\r\n\r\n"), 15);
	expect_line("api version");
	/* the line runs to the first CR of the block, so here it keeps its
	 * LF; the server's api handler trims it, which is why this works */
	cr_assert_eq(PARSE("api version\n\r\n"), 14);
	expect_line("api version\n");
	cr_assert_eq(PARSE("bgapi status\r\nJob-UUID: j-1\r\n\r\n"), 31);
	expect_line("bgapi status");
	cr_assert_eq(pkt.n_headers, 1);
	expect_header(0, "Job-UUID", "j-1");
}

/* §2.3: a line ends at the first CR anywhere later in the block. */
Test(client_packet, mixed_crlf_quirk)
{
	cr_assert_eq(PARSE("bgapi echo m3\nX-A: 1\nJob-UUID: mixed-3\r\nX-C: 3\r\n\r\n"), 50);
	expect_line("bgapi echo m3\nX-A: 1\nJob-UUID: mixed-3");
	cr_assert_eq(pkt.n_headers, 1);
	expect_header(0, "X-C", "3");

	/* CRLF lines first, LF-only after: happens to work */
	cr_assert_eq(PARSE("bgapi echo mixed2\r\nJob-UUID: mixed-2\n\n"), 38);
	expect_line("bgapi echo mixed2");
	cr_assert_eq(pkt.n_headers, 1);
	expect_header(0, "Job-UUID", "mixed-2");
}

Test(client_packet, leading_kicks_skipped_spaces_kept)
{
	cr_assert_eq(PARSE("\n\r\n\napi status\n\n"), 16);
	cr_assert_eq(pkt.skipped, 4);
	expect_line("api status");
	cr_assert_eq(PARSE("  api status\n\n"), 14);
	cr_assert_eq(pkt.skipped, 0);
	expect_line("  api status");
	/* only kicks so far: nothing to consume yet */
	cr_assert_eq(PARSE("\n\n\r\n"), FSESL_PARSE_PARTIAL);
}

Test(client_packet, tabs_spaces_empty_values_no_colon)
{
	cr_assert_eq(PARSE("sendevent CUSTOM\nX-Tab:\tv\nX-Sp:   v2 \nX-Empty: \nX-Empty2:\n"
	                   "no colon here\nX-A:1\nX-Col: a:b\n\n"),
	    90);
	expect_line("sendevent CUSTOM");
	cr_assert_eq(pkt.n_headers, 4);
	expect_header(0, "X-Tab", "\tv");
	expect_header(1, "X-Sp", "v2 ");
	expect_header(2, "X-A", "1");
	expect_header(3, "X-Col", "a:b");
}

Test(client_packet, duplicates_and_values_literal)
{
	cr_assert_gt(PARSE("sendevent CUSTOM\nX-Dup: 1\nX-Dup: 2\nX-Enc: a%20b\n\n"), 0);
	cr_assert_eq(pkt.n_headers, 3);
	expect_header(0, "X-Dup", "1");
	expect_header(1, "X-Dup", "2");
	expect_header(2, "X-Enc", "a%20b");
}

Test(client_packet, body_by_content_length_any_case)
{
	static const char in[] = "sendevent CUSTOM\nContent-Length: 5\n\nhelloapi x\n\n";
	static const char lc[] = "sendmsg\ncontent-LENGTH: 3\n\nabcexit\n\n";

	cr_assert_eq(PARSE(in), 41);
	cr_assert_eq(pkt.body_len, 5);
	cr_assert(memcmp(pkt.body, "hello", 5) == 0);
	expect_header(0, "Content-Length", "5");
	/* the next packet starts right after the body */
	cr_assert_eq(parse(in + 41, sizeof(in) - 1 - 41), 7);
	expect_line("api x");

	cr_assert_eq(PARSE(lc), 30);
	cr_assert_eq(pkt.body_len, 3);
	cr_assert(memcmp(pkt.body, "abc", 3) == 0);
}

Test(client_packet, body_may_hold_a_blank_line)
{
	cr_assert_eq(PARSE("sendevent X\nContent-Length: 8\n\na\n\nexit\n"), 39);
	cr_assert_eq(pkt.body_len, 8);
	cr_assert(memcmp(pkt.body, "a\n\nexit\n", 8) == 0);
}

/* atoi semantics: garbage is 0 (no body), digits stop at a non-digit. */
Test(client_packet, content_length_atoi)
{
	cr_assert_eq(PARSE("sendevent X\nContent-Length: 5abc\n\nhello"), 39);
	cr_assert_eq(pkt.body_len, 5);
	cr_assert_eq(PARSE("sendevent X\nContent-Length: abc\n\nhello"), 33);
	cr_assert_null(pkt.body);
	expect_header(0, "Content-Length", "abc");
	cr_assert_eq(PARSE("sendevent X\nContent-Length: -5\n\nhello"), 32);
	cr_assert_null(pkt.body);
	cr_assert_eq(PARSE("sendevent X\nContent-Length:\t 3\n\nabc"), 35);
	cr_assert_eq(pkt.body_len, 3);
	cr_assert_eq(PARSE("sendevent X\nContent-Length: 0\n\nabc"), 31);
	cr_assert_null(pkt.body);
	cr_assert_eq(PARSE("sendevent X\nContent-Length: +2\n\nab"), 34);
	cr_assert_eq(pkt.body_len, 2);
}

/* Each Content-Length header reads its own body; the last one is kept. */
Test(client_packet, two_content_lengths_read_two_bodies)
{
	cr_assert_eq(PARSE("sendevent X\nContent-Length: 2\nContent-Length: 3\n\nabcdeNEXT"), 54);
	cr_assert_eq(pkt.body_len, 3);
	cr_assert(memcmp(pkt.body, "cde", 3) == 0);
}

/* The server keeps the block as a C string: a NUL hides the rest. */
Test(client_packet, nul_hides_the_rest_of_the_block)
{
	static const char in[] = "sendevent X\nX-A: 1\0\nContent-Length: 3\n\nabc";

	cr_assert_eq(parse(in, sizeof(in) - 1), 39);
	cr_assert_eq(pkt.n_headers, 1);
	expect_header(0, "X-A", "1");
	cr_assert_null(pkt.body);
	{
		static const char z[] = "\0api x\n\n";

		cr_assert_eq(parse(z, sizeof(z) - 1), 8);
		cr_assert_eq(pkt.line_len, 0);
	}
}

/* Each prefix sits in a heap block of exactly its size, so ASan catches
 * a read of even one byte past the input (picohttpparser's guard idea). */
Test(client_packet, partial_at_every_prefix)
{
	size_t len, i;
	char *v = enc_read_vector("requests/req-sendevent-custom-body.bin", &len);

	for (i = 0; i < len; i++) {
		char *exact = malloc(i ? i : 1);

		cr_assert_not_null(exact);
		memcpy(exact, v, i);
		cr_assert_eq(parse(exact, i), FSESL_PARSE_PARTIAL, "prefix %zu", i);
		free(exact);
	}
	cr_assert_eq(parse(v, len), (ssize_t)len);
	expect_line("sendevent CUSTOM");
	cr_assert_eq(pkt.n_headers, 3);
	expect_header(0, "Event-Subclass", "myapp::ping");
	cr_assert_eq(pkt.body_len, 17);
	free(v);
}

Test(client_packet, request_vectors)
{
	static const char *const files[] = {"req-api-status.bin", "req-auth.bin",
	    "req-bgapi-jobuuid.bin", "req-event-json-custom.bin", "req-event-plain.bin",
	    "req-exit.bin", "req-filter.bin", "req-sendevent-custom-body.bin",
	    "req-sendmsg-execute-body.bin", "req-sendmsg-execute.bin", "req-userauth.bin"};
	size_t i, len;
	char rel[128];

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *v;

		snprintf(rel, sizeof(rel), "requests/%s", files[i]);
		v = enc_read_vector(rel, &len);
		cr_assert_eq(parse(v, len), (ssize_t)len, "%s", files[i]);
		free(v);
	}
	{
		char *v = enc_read_vector("requests/req-sendmsg-execute-body.bin", &len);

		cr_assert_eq(parse(v, len), (ssize_t)len);
		expect_header(2, "content-type", "text/plain");
		cr_assert_eq(pkt.body_len, 17);
		cr_assert(memcmp(pkt.body, "foo=multi\nline ok", 17) == 0);
		free(v);
	}
}

Test(client_packet, pipelined_vector)
{
	static const char *const lines[] = {"auth ClueCon", "event plain HEARTBEAT BACKGROUND_JOB",
	    "api status", "bgapi originate user/1001 &park()", "api nosuchcmd", "exit"};
	size_t len, off = 0, i;
	char *v = enc_read_vector("requests/req-pipelined.bin", &len);

	for (i = 0; i < 6; i++) {
		ssize_t r = parse(v + off, len - off);

		cr_assert_gt(r, 0, "packet %zu", i);
		expect_line(lines[i]);
		off += (size_t)r;
	}
	cr_assert_eq(off, len);
	free(v);
}

Test(client_packet, header_cap_drops_but_still_frames)
{
	char in[2048];
	size_t n = 0, i;

	n += (size_t)snprintf(in + n, sizeof(in) - n, "sendevent X\n");
	for (i = 0; i < FSESL_MSG_MAX_HEADERS + 8; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "X-%zu: %zu\n", i, i);
	n += (size_t)snprintf(in + n, sizeof(in) - n, "Content-Length: 4\n\nbodyNEXT");
	cr_assert_eq(parse(in, n), (ssize_t)(n - 4));
	cr_assert_eq(pkt.n_headers, FSESL_MSG_MAX_HEADERS);
	cr_assert_eq(pkt.dropped_headers, 9);
	cr_assert_eq(pkt.body_len, 4);
}

Test(client_packet, limits)
{
	struct fsesl_limits lim = {
	    .max_header_bytes = 16, .max_headers = 2, .max_body_bytes = 4, .max_event_headers = 0};
	int err = 0;

	cr_assert_eq(fsesl_client_packet_parse("api 0123456789abcdef", 20, &lim, &pkt, &err),
	    FSESL_PARSE_ERROR);
	cr_assert_eq(err, FSESL_PERR_HEADER_TOO_LARGE);
	cr_assert_eq(
	    fsesl_client_packet_parse("api 0123", 8, &lim, &pkt, &err), FSESL_PARSE_PARTIAL);
	cr_assert_eq(fsesl_client_packet_parse("x\nContent-Length: 5\n\n", 21, NULL, &pkt, &err),
	    FSESL_PARSE_PARTIAL);
	lim.max_header_bytes = 1024;
	err = 0;
	cr_assert_eq(fsesl_client_packet_parse("x\nContent-Length: 5\n\n", 21, &lim, &pkt, &err),
	    FSESL_PARSE_ERROR);
	cr_assert_eq(err, FSESL_PERR_BODY_TOO_LARGE);
	err = 0;
	cr_assert_eq(PARSE("x\nContent-Length: 99999999999999999999999999\n\n"), FSESL_PARSE_ERROR);
	cr_assert_eq(
	    fsesl_client_packet_parse("x\nA: 1\nB: 2\nC: 3\n\n", 18, &lim, &pkt, &err), 18);
	cr_assert_eq(pkt.n_headers, 2);
	cr_assert_eq(pkt.dropped_headers, 1);
	cr_assert_eq(fsesl_client_packet_parse(NULL, 0, NULL, &pkt, &err), FSESL_PARSE_ERROR);
	cr_assert_eq(err, FSESL_PERR_INVALID);
}
