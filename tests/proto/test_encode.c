/*
 * test_encode.c - command encoders: exact bytes, the request vectors,
 * refusal of every injection / unload-trap / invalid input, sizing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fsesl_proto.h"
#include "enc_util.h"

static char buf[65536];

#define EXPECT(want, expr)                                                                         \
	do {                                                                                       \
		char s1_[512], s2_[512];                                                           \
		size_t wl_ = sizeof(want) - 1;                                                     \
		ssize_t n_ = (expr);                                                               \
		cr_assert_eq(n_, (ssize_t)wl_, "%s: got %zd, want %zu", #expr, n_, wl_);           \
		cr_assert(memcmp(buf, want, wl_) == 0, "%s:\n got  %s\n want %s", #expr,           \
		    enc_show(buf, wl_, s1_, sizeof(s1_)), enc_show(want, wl_, s2_, sizeof(s2_)));  \
	} while (0)

#define REFUSE(code, expr)                                                                         \
	do {                                                                                       \
		ssize_t n_ = (expr);                                                               \
		cr_assert_eq(n_, (ssize_t)(code), "%s: got %zd, want %s", #expr, n_, #code);       \
	} while (0)

/* Exact fit works; one byte less and no buffer at all are refused. */
#define TIGHT(want, fn, ...)                                                                       \
	do {                                                                                       \
		size_t wl_ = sizeof(want) - 1;                                                     \
		cr_assert_eq(fn(buf, wl_, ##__VA_ARGS__), (ssize_t)wl_, #fn " exact");             \
		cr_assert(memcmp(buf, want, wl_) == 0);                                            \
		cr_assert_eq(                                                                      \
		    fn(buf, wl_ - 1, ##__VA_ARGS__), FSESL_PERR_BUFFER_TOO_SMALL, #fn " short");   \
		cr_assert_eq(                                                                      \
		    fn(NULL, 0, ##__VA_ARGS__), FSESL_PERR_BUFFER_TOO_SMALL, #fn " NULL");         \
	} while (0)

static void
expect_vector(const char *rel, ssize_t n)
{
	size_t len;
	char *want = enc_read_vector(rel, &len);
	char s1[512], s2[512];

	cr_assert_eq(n, (ssize_t)len, "%s: length %zd, want %zu", rel, n, len);
	cr_assert(memcmp(buf, want, len) == 0, "%s:\n got  %s\n want %s", rel,
	    enc_show(buf, len, s1, sizeof(s1)), enc_show(want, len, s2, sizeof(s2)));
	free(want);
}

#define H(n, v)                                                                                    \
	{                                                                                          \
		.name = (n), .name_len = sizeof(n) - 1, .value = (v), .value_len = sizeof(v) - 1   \
	}

/* ------------------------------------------------------------------ */
/* Exact bytes                                                          */
/* ------------------------------------------------------------------ */

Test(encode, simple_commands)
{
	EXPECT("auth ClueCon\n\n", fsesl_encode_auth(buf, sizeof(buf), "ClueCon"));
	EXPECT(
	    "auth pass with spaces \n\n", fsesl_encode_auth(buf, sizeof(buf), "pass with spaces "));
	EXPECT("userauth 1000@default:s3cret\n\n",
	    fsesl_encode_userauth(buf, sizeof(buf), "1000@default", "s3cret"));
	EXPECT("userauth u@d:p:w@x\n\n", fsesl_encode_userauth(buf, sizeof(buf), "u@d", "p:w@x"));
	EXPECT("api status\n\n", fsesl_encode_api(buf, sizeof(buf), "status", 0));
	EXPECT("api originate user/1001 &park()\n\n",
	    fsesl_encode_api(buf, sizeof(buf), "originate user/1001 &park()", 0));
	EXPECT("bgapi status\n\n", fsesl_encode_bgapi(buf, sizeof(buf), "status", NULL, 0));
	EXPECT("bgapi status\nJob-UUID: eng-1\n\n",
	    fsesl_encode_bgapi(buf, sizeof(buf), "status", "eng-1", 0));
	EXPECT("noevents\n\n", fsesl_encode_noevents(buf, sizeof(buf)));
	EXPECT("log\n\n", fsesl_encode_log(buf, sizeof(buf), NULL));
	EXPECT("log debug\n\n", fsesl_encode_log(buf, sizeof(buf), "debug"));
	EXPECT("log 7\n\n", fsesl_encode_log(buf, sizeof(buf), "7"));
	EXPECT("nolog\n\n", fsesl_encode_nolog(buf, sizeof(buf)));
	EXPECT("exit\n\n", fsesl_encode_exit(buf, sizeof(buf)));
}

Test(encode, event_formats_and_custom_last)
{
	const char *hb[] = {"HEARTBEAT", "BACKGROUND_JOB"};
	const char *all[] = {"ALL"};
	const char *mixed[] = {"CUSTOM sofia::register", "HEARTBEAT", "custom  a b ", "API"};
	const char *bare[] = {"CHANNEL_CREATE", "CUSTOM"};

	EXPECT("event plain HEARTBEAT BACKGROUND_JOB\n\n",
	    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, hb, 2));
	EXPECT(
	    "event json ALL\n\n", fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_JSON, all, 1));
	EXPECT("event xml ALL\n\n", fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_XML, all, 1));
	EXPECT("event plain HEARTBEAT API CUSTOM sofia::register a b\n\n",
	    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, mixed, 4));
	EXPECT("event json CHANNEL_CREATE CUSTOM\n\n",
	    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_JSON, bare, 2));
	EXPECT("nixevent HEARTBEAT BACKGROUND_JOB\n\n",
	    fsesl_encode_nixevent(buf, sizeof(buf), hb, 2));
	EXPECT("nixevent HEARTBEAT API CUSTOM sofia::register a b\n\n",
	    fsesl_encode_nixevent(buf, sizeof(buf), mixed, 4));
}

Test(encode, filters)
{
	EXPECT("filter Event-Name HEARTBEAT\n\n",
	    fsesl_encode_filter(buf, sizeof(buf), "Event-Name", "HEARTBEAT"));
	EXPECT("filter X-Foo a b  c\n\n", fsesl_encode_filter(buf, sizeof(buf), "X-Foo", "a b  c"));
	EXPECT("filter Unique-ID /^abc/\n\n",
	    fsesl_encode_filter(buf, sizeof(buf), "Unique-ID", "/^abc/"));
	/* a header literally named like the server's keywords needs "add" */
	EXPECT("filter add delete x\n\n", fsesl_encode_filter(buf, sizeof(buf), "delete", "x"));
	EXPECT("filter add ADD x\n\n", fsesl_encode_filter(buf, sizeof(buf), "ADD", "x"));
	EXPECT("filter Deleted x\n\n", fsesl_encode_filter(buf, sizeof(buf), "Deleted", "x"));
	EXPECT("filter delete Event-Name HEARTBEAT\n\n",
	    fsesl_encode_filter_delete(buf, sizeof(buf), "Event-Name", "HEARTBEAT"));
	EXPECT("filter delete Event-Name\n\n",
	    fsesl_encode_filter_delete(buf, sizeof(buf), "Event-Name", NULL));
	EXPECT("filter delete all\n\n", fsesl_encode_filter_delete(buf, sizeof(buf), "all", NULL));
}

Test(encode, sendevent_and_sendmsg)
{
	struct fsesl_header h[] = {H("Event-Subclass", "myapp::ping"), H("X-Seq", "42")};
	struct fsesl_header m[] = {
	    H("call-command", "hangup"), H("hangup-cause", "NORMAL_CLEARING")};
	struct fsesl_header tab[] = {H("X-Tab", "\tv "), H("X-Dup", "1"), H("X-Dup", "2")};

	EXPECT("sendevent CUSTOM\nEvent-Subclass: myapp::ping\nX-Seq: 42\n\n",
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", h, 2, NULL, 0, 0));
	EXPECT(
	    "sendevent CUSTOM\nEvent-Subclass: myapp::ping\nX-Seq: 42\nContent-Length: 5\n\nhello",
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", h, 2, "hello", 5, 0));
	/* an empty body is no body: no Content-Length */
	EXPECT("sendevent HEARTBEAT\n\n",
	    fsesl_encode_sendevent(buf, sizeof(buf), "HEARTBEAT", NULL, 0, "", 0, 0));
	/* tabs and trailing spaces are kept literally by the server */
	EXPECT("sendevent CUSTOM\nX-Tab: \tv \nX-Dup: 1\nX-Dup: 2\n\n",
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", tab, 3, NULL, 0, 0));
	/* a body may contain anything, "\n\n", NUL and command text included */
	EXPECT("sendevent CUSTOM\nContent-Length: 11\n\na\n\nexit\n\n\0z",
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", NULL, 0, "a\n\nexit\n\n\0z", 11, 0));
	EXPECT("sendmsg 8d2b\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n",
	    fsesl_encode_sendmsg(buf, sizeof(buf), "8d2b", m, 2, NULL, 0, 0));
	EXPECT("sendmsg\ncall-command: hangup\n\n",
	    fsesl_encode_sendmsg(buf, sizeof(buf), NULL, m, 1, NULL, 0, 0));
}

Test(encode, generic_cmd_and_size)
{
	struct fsesl_header h[] = {H("console_execute", "true")};
	struct fsesl_cmd c = {.line = "api version", .headers = h, .n_headers = 1};
	struct fsesl_cmd b = {.line = "sendevent CUSTOM", .body = "xyz", .body_len = 3};

	EXPECT("api version\nconsole_execute: true\n\n", fsesl_encode_cmd(buf, sizeof(buf), &c));
	cr_assert_eq(fsesl_cmd_size(&c), 35);
	EXPECT(
	    "sendevent CUSTOM\nContent-Length: 3\n\nxyz", fsesl_encode_cmd(buf, sizeof(buf), &b));
	cr_assert_eq(fsesl_cmd_size(&b), 39);
	cr_assert_eq(fsesl_encode_cmd(buf, 38, &b), FSESL_PERR_BUFFER_TOO_SMALL);
	cr_assert_eq(fsesl_cmd_size(NULL), FSESL_PERR_INVALID);
	c.line = "api x\n\nexit";
	cr_assert_eq(fsesl_cmd_size(&c), FSESL_PERR_INJECTION);
	c.line = "api unload mod_event_socket";
	cr_assert_eq(fsesl_cmd_size(&c), FSESL_PERR_UNLOAD_TRAP);
	c.flags = FSESL_ENC_ALLOW_UNLOAD;
	cr_assert_eq(fsesl_cmd_size(&c),
	    (ssize_t)strlen("api unload mod_event_socket\nconsole_execute: true\n\n"));
}

/* Our bytes are the reference request vectors, byte for byte. */
Test(encode, request_vectors)
{
	const char *hb[] = {"HEARTBEAT", "BACKGROUND_JOB"};
	const char *js[] = {"CHANNEL_CREATE", "CUSTOM sofia::register sofia::unregister",
	    "CHANNEL_HANGUP_COMPLETE"};
	struct fsesl_header se[] = {H("Event-Subclass", "myapp::ping"), H("X-Seq", "42")};
	struct fsesl_header sm[] = {H("call-command", "execute"), H("execute-app-name", "playback"),
	    H("execute-app-arg", "/tmp/hello.wav"), H("event-lock", "true")};
	const char body[] = "hello\nw\xc3\xb6rld 100%";
	size_t n = 0;

	expect_vector("requests/req-auth.bin", fsesl_encode_auth(buf, sizeof(buf), "ClueCon"));
	expect_vector("requests/req-userauth.bin",
	    fsesl_encode_userauth(buf, sizeof(buf), "1000@default", "s3cret"));
	expect_vector("requests/req-event-plain.bin",
	    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, hb, 2));
	expect_vector("requests/req-event-json-custom.bin",
	    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_JSON, js, 3));
	expect_vector(
	    "requests/req-api-status.bin", fsesl_encode_api(buf, sizeof(buf), "status", 0));
	expect_vector("requests/req-bgapi-jobuuid.bin",
	    fsesl_encode_bgapi(buf, sizeof(buf), "status", "eng-7f3a-000000000042", 0));
	expect_vector("requests/req-filter.bin",
	    fsesl_encode_filter(buf, sizeof(buf), "Event-Name", "HEARTBEAT"));
	expect_vector("requests/req-sendevent-custom-body.bin",
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", se, 2, body, sizeof(body) - 1, 0));
	expect_vector("requests/req-sendmsg-execute.bin",
	    fsesl_encode_sendmsg(
	        buf, sizeof(buf), "8d2b7c1e-4f5a-4b6c-9d7e-0f1a2b3c4d5e", sm, 4, NULL, 0, 0));
	expect_vector("requests/req-exit.bin", fsesl_encode_exit(buf, sizeof(buf)));

	/* the pipelined vector is six encodes written back to back */
	n += (size_t)fsesl_encode_auth(buf + n, sizeof(buf) - n, "ClueCon");
	n += (size_t)fsesl_encode_event(buf + n, sizeof(buf) - n, FSESL_EVFMT_PLAIN, hb, 2);
	n += (size_t)fsesl_encode_api(buf + n, sizeof(buf) - n, "status", 0);
	n += (size_t)fsesl_encode_bgapi(
	    buf + n, sizeof(buf) - n, "originate user/1001 &park()", NULL, 0);
	n += (size_t)fsesl_encode_api(buf + n, sizeof(buf) - n, "nosuchcmd", 0);
	n += (size_t)fsesl_encode_exit(buf + n, sizeof(buf) - n);
	expect_vector("requests/req-pipelined.bin", (ssize_t)n);
}

/* ------------------------------------------------------------------ */
/* Buffer sizes                                                         */
/* ------------------------------------------------------------------ */

Test(encode, exact_capacity_everywhere)
{
	const char *hb[] = {"HEARTBEAT", "CUSTOM x"};
	struct fsesl_header h[] = {H("X-A", "1")};

	TIGHT("auth ClueCon\n\n", fsesl_encode_auth, "ClueCon");
	TIGHT("userauth a@b:c\n\n", fsesl_encode_userauth, "a@b", "c");
	TIGHT("api status\n\n", fsesl_encode_api, "status", 0);
	TIGHT("bgapi x\nJob-UUID: j\n\n", fsesl_encode_bgapi, "x", "j", 0);
	TIGHT("event xml HEARTBEAT CUSTOM x\n\n", fsesl_encode_event, FSESL_EVFMT_XML, hb, 2);
	TIGHT("nixevent HEARTBEAT CUSTOM x\n\n", fsesl_encode_nixevent, hb, 2);
	TIGHT("noevents\n\n", fsesl_encode_noevents);
	TIGHT("filter A b\n\n", fsesl_encode_filter, "A", "b");
	TIGHT("filter delete A\n\n", fsesl_encode_filter_delete, "A", NULL);
	TIGHT("sendevent X\nX-A: 1\nContent-Length: 2\n\nhi", fsesl_encode_sendevent, "X", h, 1,
	    "hi", 2, 0);
	TIGHT("sendmsg\nX-A: 1\n\n", fsesl_encode_sendmsg, NULL, h, 1, NULL, 0, 0);
	TIGHT("log\n\n", fsesl_encode_log, NULL);
	TIGHT("nolog\n\n", fsesl_encode_nolog);
	TIGHT("exit\n\n", fsesl_encode_exit);
}

Test(encode, every_short_capacity_is_refused)
{
	struct fsesl_header h[] = {H("Event-Subclass", "a::b"), H("X-Seq", "42")};
	ssize_t full = fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", h, 2, "body", 4, 0);
	size_t cap;

	cr_assert_gt(full, 0);
	for (cap = 0; cap < (size_t)full; cap++)
		cr_assert_eq(fsesl_encode_sendevent(buf, cap, "CUSTOM", h, 2, "body", 4, 0),
		    FSESL_PERR_BUFFER_TOO_SMALL, "cap %zu", cap);
}

/* ------------------------------------------------------------------ */
/* Injection                                                            */
/* ------------------------------------------------------------------ */

Test(encode, check_line)
{
	cr_assert_eq(fsesl_check_line("abc def\t", 8), 0);
	cr_assert_eq(fsesl_check_line("", 0), 0);
	cr_assert_eq(fsesl_check_line(NULL, 0), 0);
	cr_assert_eq(fsesl_check_line("a\nb", 3), FSESL_PERR_INJECTION);
	cr_assert_eq(fsesl_check_line("a\rb", 3), FSESL_PERR_INJECTION);
	cr_assert_eq(fsesl_check_line("a\0b", 3), FSESL_PERR_INJECTION);
	cr_assert_eq(fsesl_check_line("\r\n\r\n", 4), FSESL_PERR_INJECTION);
}

/* Each smuggling pattern, in every place a caller string reaches. */
static const char *const smuggle[] = {
    "x\n",
    "x\n\nexit",
    "x\r\n\r\nexit",
    "x\rexit",
    "\n",
    "x\n\napi status\n\n",
};

Test(encode, injection_in_one_line_values)
{
	size_t i;
	struct fsesl_header ok[] = {H("X-A", "1")};

	for (i = 0; i < sizeof(smuggle) / sizeof(smuggle[0]); i++) {
		const char *s = smuggle[i];
		const char *names[] = {"HEARTBEAT", s};
		const char *cnames[] = {"HEARTBEAT", "CUSTOM a", s};
		struct fsesl_cmd c = {.line = s};

		cr_log_info("pattern %zu", i);
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_auth(buf, sizeof(buf), s));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_userauth(buf, sizeof(buf), "u@d", s));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_api(buf, sizeof(buf), s, 0));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_bgapi(buf, sizeof(buf), s, NULL, 0));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_bgapi(buf, sizeof(buf), "status", s, 0));
		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, names, 2));
		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, cnames, 3));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_nixevent(buf, sizeof(buf), names, 2));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_filter(buf, sizeof(buf), s, "v"));
		REFUSE(
		    FSESL_PERR_INJECTION, fsesl_encode_filter(buf, sizeof(buf), "Event-Name", s));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_filter_delete(buf, sizeof(buf), s, NULL));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_filter_delete(buf, sizeof(buf), "A", s));
		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_sendevent(buf, sizeof(buf), s, ok, 1, NULL, 0, 0));
		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_sendmsg(buf, sizeof(buf), s, ok, 1, NULL, 0, 0));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_log(buf, sizeof(buf), s));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_cmd(buf, sizeof(buf), &c));
		REFUSE(FSESL_PERR_INJECTION, fsesl_cmd_size(&c));
	}
	/* a CUSTOM entry carrying a line break after the subclass */
	{
		const char *names[] = {"CUSTOM a\n\nexit"};

		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_JSON, names, 1));
	}
}

Test(encode, injection_in_headers)
{
	static const struct {
		struct fsesl_header h;
		const char *why;
	} bad[] = {
	    {H("X-A", "1\n\nexit"), "LF LF in value"},
	    {H("X-A", "1\r\n\r\nexit"), "CRLF CRLF in value"},
	    {H("X-A", "1\nX-B: 2"), "LF in value"},
	    {H("X-A", "1\r"), "CR in value"},
	    {H("X-A", "1\0exit"), "NUL in value"},
	    {H("X-A:", "1"), "colon in name"},
	    {H("X A", "1"), "space in name"},
	    {H("X\tA", "1"), "tab in name"},
	    {H("X\nA", "1"), "LF in name"},
	    {H("X\rA", "1"), "CR in name"},
	    {H("X\0A", "1"), "NUL in name"},
	    {H("\n\nexit\n\nX", "1"), "command smuggled through a name"},
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fsesl_header h[] = {H("X-Ok", "1"), bad[i].h};
		struct fsesl_cmd c = {.line = "sendevent CUSTOM", .headers = h, .n_headers = 2};

		cr_log_info("%s", bad[i].why);
		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", h, 2, "b", 1, 0));
		REFUSE(FSESL_PERR_INJECTION,
		    fsesl_encode_sendmsg(buf, sizeof(buf), "u", h, 2, NULL, 0, 0));
		REFUSE(FSESL_PERR_INJECTION, fsesl_encode_cmd(buf, sizeof(buf), &c));
		REFUSE(FSESL_PERR_INJECTION, fsesl_cmd_size(&c));
	}
}

/* ------------------------------------------------------------------ */
/* Unload / reload trap                                                 */
/* ------------------------------------------------------------------ */

Test(encode, unload_trap_in_line)
{
	static const char *const trap[] = {
	    "unload mod_event_socket",
	    "reload mod_event_socket",
	    "UNLOAD MOD_EVENT_SOCKET",
	    "ReLoAd Mod_Event_Socket",
	    "bgapi unload mod_event_socket",
	    "echo mod_event_socket is fine to unload",
	    "xunloadx xmod_event_socketx",
	};
	static const char *const fine[] = {
	    "unload mod_sofia",
	    "reload mod_sofia",
	    "echo mod_event_socket",
	    "unloa mod_event_socket",
	    "load mod_event_socket",
	    "unload mod_event_sock",
	};
	size_t i;

	for (i = 0; i < sizeof(trap) / sizeof(trap[0]); i++) {
		struct fsesl_cmd c = {.line = trap[i]};
		char custom[128];
		const char *names[] = {"HEARTBEAT", custom};

		snprintf(custom, sizeof(custom), "CUSTOM %s", trap[i]);

		cr_log_info("%s", trap[i]);
		REFUSE(FSESL_PERR_UNLOAD_TRAP, fsesl_encode_api(buf, sizeof(buf), trap[i], 0));
		REFUSE(
		    FSESL_PERR_UNLOAD_TRAP, fsesl_encode_bgapi(buf, sizeof(buf), trap[i], NULL, 0));
		REFUSE(FSESL_PERR_UNLOAD_TRAP, fsesl_encode_auth(buf, sizeof(buf), trap[i]));
		REFUSE(FSESL_PERR_UNLOAD_TRAP, fsesl_encode_cmd(buf, sizeof(buf), &c));
		REFUSE(FSESL_PERR_UNLOAD_TRAP,
		    fsesl_encode_filter(buf, sizeof(buf), "Event-Name", trap[i]));
		REFUSE(FSESL_PERR_UNLOAD_TRAP,
		    fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, names, 2));
		/* the explicit opt-in lets it through unchanged */
		cr_assert_gt(
		    fsesl_encode_api(buf, sizeof(buf), trap[i], FSESL_ENC_ALLOW_UNLOAD), 0);
		cr_assert_gt(
		    fsesl_encode_bgapi(buf, sizeof(buf), trap[i], "j", FSESL_ENC_ALLOW_UNLOAD), 0);
		c.flags = FSESL_ENC_ALLOW_UNLOAD;
		cr_assert_gt(fsesl_encode_cmd(buf, sizeof(buf), &c), 0);
	}
	for (i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		cr_assert_gt(fsesl_encode_api(buf, sizeof(buf), fine[i], 0), 0, "%s", fine[i]);
}

Test(encode, unload_trap_across_headers)
{
	struct fsesl_header split[] = {H("X-A", "please UNLOAD"), H("X-B", "Mod_Event_Socket")};
	struct fsesl_header one[] = {H("X-A", "reload mod_event_socket now")};
	struct fsesl_header name[] = {H("X-unload", "mod_event_socket")};
	struct fsesl_header job[] = {H("X-A", "mod_event_socket")};

	REFUSE(FSESL_PERR_UNLOAD_TRAP,
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", split, 2, NULL, 0, 0));
	REFUSE(FSESL_PERR_UNLOAD_TRAP,
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", one, 1, "x", 1, 0));
	REFUSE(FSESL_PERR_UNLOAD_TRAP,
	    fsesl_encode_sendmsg(buf, sizeof(buf), NULL, name, 1, NULL, 0, 0));
	/* one word in the line, the other in a header */
	REFUSE(FSESL_PERR_UNLOAD_TRAP,
	    fsesl_encode_sendmsg(buf, sizeof(buf), "unload", job, 1, NULL, 0, 0));
	REFUSE(FSESL_PERR_UNLOAD_TRAP,
	    fsesl_encode_bgapi(buf, sizeof(buf), "unload x", "mod_event_socket", 0));
	cr_assert_gt(fsesl_encode_sendevent(
	                 buf, sizeof(buf), "CUSTOM", split, 2, NULL, 0, FSESL_ENC_ALLOW_UNLOAD),
	    0);
	/* the body is not part of the header block the server scans */
	cr_assert_gt(fsesl_encode_sendevent(
	                 buf, sizeof(buf), "CUSTOM", NULL, 0, "unload mod_event_socket", 23, 0),
	    0);
}

/* ------------------------------------------------------------------ */
/* Invalid arguments                                                    */
/* ------------------------------------------------------------------ */

Test(encode, null_and_empty)
{
	const char *names[] = {"HEARTBEAT", ""};
	const char *nulls[] = {NULL};
	struct fsesl_cmd c = {.line = ""};
	struct fsesl_cmd cn = {.line = NULL};

	REFUSE(FSESL_PERR_INVALID, fsesl_encode_auth(buf, sizeof(buf), NULL));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_auth(buf, sizeof(buf), ""));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), NULL, "p"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), "u@d", NULL));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), "u@d", ""));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), "nodomain", "p"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), "u:x@d", "p"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), "@d", "p"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_userauth(buf, sizeof(buf), "u@", "p"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_api(buf, sizeof(buf), NULL, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_api(buf, sizeof(buf), "", 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_bgapi(buf, sizeof(buf), "", NULL, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_bgapi(buf, sizeof(buf), "status", "", 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, NULL, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, names, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, names, 2));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, nulls, 1));
	REFUSE(FSESL_PERR_INVALID,
	    fsesl_encode_event(buf, sizeof(buf), (enum fsesl_event_format)7, names, 1));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_nixevent(buf, sizeof(buf), NULL, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter(buf, sizeof(buf), "", "v"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter(buf, sizeof(buf), "H", NULL));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter(buf, sizeof(buf), "H", ""));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter_delete(buf, sizeof(buf), NULL, NULL));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter_delete(buf, sizeof(buf), "H", ""));
	REFUSE(FSESL_PERR_INVALID,
	    fsesl_encode_sendevent(buf, sizeof(buf), NULL, NULL, 0, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendevent(buf, sizeof(buf), "", NULL, 0, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendevent(buf, sizeof(buf), "X", NULL, 1, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendevent(buf, sizeof(buf), "X", NULL, 0, NULL, 3, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), "", NULL, 0, NULL, 0, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_log(buf, sizeof(buf), ""));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_cmd(buf, sizeof(buf), NULL));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_cmd(buf, sizeof(buf), &c));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_cmd(buf, sizeof(buf), &cn));
}

Test(encode, tokens_must_be_single_words)
{
	const char *names[] = {"HEARTBEAT BACKGROUND_JOB"};
	const char *tabbed[] = {"CUSTOM a\tb"};

	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, names, 1));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, tabbed, 1));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter(buf, sizeof(buf), "Event Name", "x"));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_filter_delete(buf, sizeof(buf), "a b", NULL));
	REFUSE(FSESL_PERR_INVALID,
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM x", NULL, 0, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), "a b", NULL, 0, NULL, 0, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_log(buf, sizeof(buf), "de bug"));
}

Test(encode, headers_the_server_would_alter)
{
	struct fsesl_header cl1[] = {H("Content-Length", "5")};
	struct fsesl_header cl2[] = {H("content-length", "5")};
	struct fsesl_header cl3[] = {H("CONTENT-LENGTH", "0")};
	struct fsesl_header empty[] = {H("X-A", "")};
	struct fsesl_header lead[] = {H("X-A", " v")};
	struct fsesl_header noname[] = {H("", "v")};
	struct fsesl_header nullv[] = {{.name = "X", .name_len = 1, .value = NULL, .value_len = 0}};

	REFUSE(FSESL_PERR_INVALID,
	    fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", cl1, 1, "hello", 5, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), NULL, cl2, 1, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), NULL, cl3, 1, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), NULL, empty, 1, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), NULL, lead, 1, NULL, 0, 0));
	REFUSE(FSESL_PERR_INVALID,
	    fsesl_encode_sendmsg(buf, sizeof(buf), NULL, noname, 1, NULL, 0, 0));
	REFUSE(
	    FSESL_PERR_INVALID, fsesl_encode_sendmsg(buf, sizeof(buf), NULL, nullv, 1, NULL, 0, 0));
	REFUSE(FSESL_PERR_INVALID, fsesl_encode_bgapi(buf, sizeof(buf), "status", " j", 0));
}

Test(encode, job_uuid_length_limit)
{
	char id[300];

	memset(id, 'a', sizeof(id));
	id[FSESL_MAX_JOB_UUID_LEN] = '\0';
	cr_assert_eq(fsesl_encode_bgapi(buf, sizeof(buf), "status", id, 0),
	    (ssize_t)(strlen("bgapi status\nJob-UUID: \n\n") + FSESL_MAX_JOB_UUID_LEN));
	id[FSESL_MAX_JOB_UUID_LEN] = 'a';
	id[FSESL_MAX_JOB_UUID_LEN + 1] = '\0';
	REFUSE(FSESL_PERR_TOO_LONG, fsesl_encode_bgapi(buf, sizeof(buf), "status", id, 0));
	id[299] = '\0';
	REFUSE(FSESL_PERR_TOO_LONG, fsesl_encode_bgapi(buf, sizeof(buf), "status", id, 0));
}

/* What we write is read back by the server-side reader as we meant it. */
Test(encode, server_reads_back_what_we_wrote)
{
	struct fsesl_header h[] = {
	    H("Event-Subclass", "a::b"), H("X-Tab", "\tx "), H("X-Dup", "1"), H("X-Dup", "2")};
	const char body[] = "line1\n\nexit\n\nline3";
	struct fsesl_client_packet pkt;
	ssize_t n, r;
	int err = 0;

	n = fsesl_encode_sendevent(buf, sizeof(buf), "CUSTOM", h, 4, body, sizeof(body) - 1, 0);
	cr_assert_gt(n, 0);
	r = fsesl_client_packet_parse(buf, (size_t)n, NULL, &pkt, &err);
	cr_assert_eq(r, n, "consumed %zd of %zd (err %d)", r, n, err);
	cr_assert_eq(pkt.line_len, 16);
	cr_assert(memcmp(pkt.line, "sendevent CUSTOM", 16) == 0);
	cr_assert_eq(pkt.n_headers, 5); /* ours + Content-Length */
	cr_assert_eq(pkt.headers[1].value_len, 3);
	cr_assert(memcmp(pkt.headers[1].value, "\tx ", 3) == 0);
	cr_assert_eq(pkt.body_len, sizeof(body) - 1);
	cr_assert(memcmp(pkt.body, body, sizeof(body) - 1) == 0);
}
