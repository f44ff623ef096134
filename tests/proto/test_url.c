/*
 * test_url.c - fs:// URL parsing: a table of good URLs, a table of bad
 * ones each with its specific reason, and the rule that no error text
 * ever contains the password.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fsesl_proto.h"

struct good {
	const char *url, *user, *password, *host;
	unsigned port;
	bool ipv6;
	size_t n_events;
	const char *events[3];
};

static const struct good good[] = {
    {"fs://:ClueCon@127.0.0.1", "", "ClueCon", "127.0.0.1", 8021, false, 0, {0}},
    {"fs://:ClueCon@127.0.0.1:8022", "", "ClueCon", "127.0.0.1", 8022, false, 0, {0}},
    {"FS://:pw@Host-1", "", "pw", "Host-1", 8021, false, 0, {0}},
    {"Fs://:pw@localhost:1", "", "pw", "localhost", 1, false, 0, {0}},
    {"fs://:pw@h:65535", "", "pw", "h", 65535, false, 0, {0}},
    {"fs://:pw@h:08021", "", "pw", "h", 8021, false, 0, {0}},
    {"fs://admin:s3cr%40t%3Ax@fs-node-01.example.com:1?HEARTBEAT,BACKGROUND_JOB", "admin",
        "s3cr@t:x", "fs-node-01.example.com", 1, false, 2, {"HEARTBEAT", "BACKGROUND_JOB"}},
    {"fs://1000@default:pa:ss@[::1]:8021?CUSTOM%20sofia::register", "1000@default", "pa:ss", "::1",
        8021, true, 1, {"CUSTOM sofia::register"}},
    {"fs://u%3Ax:p@[fe80::1]", "u:x", "p", "fe80::1", 8021, true, 0, {0}},
    {"fs://:p@[2001:db8::1]:9000?ALL", "", "p", "2001:db8::1", 9000, true, 1, {"ALL"}},
    {"fs://:p@w@rd?@host", "", "p@w@rd?", "host", 8021, false, 0, {0}},
    {"fs://:%25%2a%2A@h", "", "%**", "h", 8021, false, 0, {0}},
    {"fs://:%e2%82%ac@h", "", "\xe2\x82\xac", "h", 8021, false, 0, {0}},
    {"fs://:p@10.20.30.40?HEARTBEAT", "", "p", "10.20.30.40", 8021, false, 1, {"HEARTBEAT"}},
    {"fs://:p@h:8021?A,B,C", "", "p", "h", 8021, false, 3, {"A", "B", "C"}},
};

Test(url, good_table)
{
	size_t i, j;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good *g = &good[i];
		struct fsesl_url u;
		char err[256] = "junk";
		int rc = fsesl_url_parse(g->url, &u, err, sizeof(err));

		cr_assert_eq(rc, 0, "%s: rc %d (%s)", g->url, rc, err);
		cr_assert_str_empty(err, "%s: errbuf not cleared", g->url);
		cr_assert_str_eq(u.user, g->user, "%s", g->url);
		cr_assert_str_eq(u.password, g->password, "%s", g->url);
		cr_assert_str_eq(u.host, g->host, "%s", g->url);
		cr_assert_eq(u.port, g->port, "%s: port %u", g->url, u.port);
		cr_assert_eq(u.ipv6, g->ipv6, "%s", g->url);
		cr_assert_eq(u.n_events, g->n_events, "%s", g->url);
		for (j = 0; j < g->n_events; j++)
			cr_assert_str_eq(u.events[j], g->events[j], "%s", g->url);
		fsesl_url_clear(&u);
	}
}

Test(url, clear_wipes_everything)
{
	struct fsesl_url u;
	const unsigned char *p = (const unsigned char *)&u;
	size_t i;

	cr_assert_eq(fsesl_url_parse("fs://user:ClueCon@host?ALL", &u, NULL, 0), 0);
	fsesl_url_clear(&u);
	for (i = 0; i < sizeof(u); i++)
		cr_assert_eq(p[i], 0, "byte %zu not wiped", i);
	fsesl_url_clear(NULL);
}

struct bad {
	const char *url;
	const char *reason; /* must appear in errbuf */
};

/* Every URL here carries the password "Sekr1t" (or a mangled form of it)
 * where a password would be. */
static const struct bad bad[] = {
    {"", "fs://"},
    {"http://:Sekr1t@h", "fs://"},
    {"fs:/:Sekr1t@h", "fs://"},
    {"fs:", "fs://"},
    {"fs://Sekr1t", "missing credentials"},
    {"fs://Sekr1t.example.com", "missing credentials"},
    {"fs://Sekr1t@host", "missing password"},
    {"fs://user:@host", "empty password"},
    {"fs://:Sekr1t@", "missing host"},
    {"fs://:Sekr1t@:8021", "missing host"},
    {"fs://:Sekr1t@?ALL", "missing host"},
    {"fs://:Sekr1t@h:0", "port 0 is out of range"},
    {"fs://:Sekr1t@h:00000", "port 0 is out of range"},
    {"fs://:Sekr1t@h:65536", "out of range"},
    {"fs://:Sekr1t@h:99999999999999999999999", "out of range"},
    {"fs://:Sekr1t@h:", "empty port"},
    {"fs://:Sekr1t@h:?ALL", "empty port"},
    {"fs://:Sekr1t@h:80a", "not a decimal"},
    {"fs://:Sekr1t@h:-1", "not a decimal"},
    {"fs://:Sekr1t@h: 80", "not a decimal"},
    {"fs://:Sekr1t@[::1", "closing ']'"},
    {"fs://:Sekr1t@[::g]", "not a valid IPv6"},
    {"fs://:Sekr1t@[]", "not a valid IPv6"},
    {"fs://:Sekr1t@[10.0.0.1]", "not a valid IPv6"},
    {"fs://:Sekr1t@[::1]x", "after ']'"},
    {"fs://:Sekr1t@[::1]:0", "out of range"},
    {"fs://:Sekr1t@fe80::1", "IPv6 addresses as [addr]"},
    {"fs://:Sekr1t@::1", "missing host"},
    {"fs://:Sekr1t@256.1.1.1", "not a valid IPv4"},
    {"fs://:Sekr1t@1.2.3", "not a valid IPv4"},
    {"fs://:Sekr1t@ho st", "invalid character"},
    {"fs://:Sekr1t@a..b", "empty label"},
    {"fs://:Sekr1t@.a", "empty label"},
    {"fs://:Sekr1t@-a.b", "starts with '-'"},
    {"fs://:Sekr1t@a-.b", "ends with '-'"},
    {"fs://:Sekr1t@a.b-", "ends with '-'"},
    {"fs://:Sekr1t@[host]", "not a valid IPv6"},
    {"fs://:Sekr1t@h%41", "invalid character"},
    {"fs://:Sekr1t@host/path", "'/'"},
    {"fs://:Sekr1t@host/", "'/'"},
    {"fs://:Sekr1t@h?", "empty event list"},
    {"fs://:Sekr1t@h?A,,B", "empty event name"},
    {"fs://:Sekr1t@h?A,", "empty event name"},
    {"fs://:Sekr1t@h?,A", "empty event name"},
    {"fs://:Sekr1t@h?A%0AB", "control character"},
    {"fs://:Sekr1t@h?A%zz", "event 1 has a '%'"},
    {"fs://:Se%zzkr1t@h", "password has a '%'"},
    {"fs://:Sekr1t%@h", "password has a '%'"},
    {"fs://:Sekr1t%4@h", "password has a '%'"},
    {"fs://:Sekr1t%0A@h", "password contains a control character"},
    {"fs://:Sekr1t%0d%0a%0d%0aapi status@h", "password contains a control character"},
    {"fs://:Sekr1t%00@h", "password contains a control character"},
    {"fs://%zz:Sekr1t@h", "user name has a '%'"},
    {"fs://u%0a:Sekr1t@h", "user name contains a control character"},
};

static void
check_bad(const char *url, const char *reason, const char *secret)
{
	struct fsesl_url u;
	const unsigned char *p = (const unsigned char *)&u;
	char err[512];
	size_t i;
	int rc;

	memset(&u, 0xa5, sizeof(u));
	memset(err, 0, sizeof(err));
	rc = fsesl_url_parse(url, &u, err, sizeof(err));
	cr_assert_eq(rc, FSESL_PERR_BAD_URL, "%s: rc %d", url, rc);
	cr_assert(strstr(err, reason) != NULL, "%s: error \"%s\" lacks \"%s\"", url, err, reason);
	cr_assert(strstr(err, "Sekr1t") == NULL, "%s: password in \"%s\"", url, err);
	if (secret)
		cr_assert(strstr(err, secret) == NULL, "%s: password in \"%s\"", url, err);
	/* nothing from a failed parse survives, the password least of all */
	for (i = 0; i < sizeof(u); i++)
		cr_assert_eq(p[i], 0, "%s: byte %zu left in the struct", url, i);
}

Test(url, bad_table_specific_reasons_without_password)
{
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_bad(bad[i].url, bad[i].reason, NULL);
}

Test(url, limits)
{
	char url[4096], pw[400];
	size_t i, n;

	/* 255-byte password fits, 256 does not */
	memset(pw, 'x', sizeof(pw));
	memcpy(pw, "Sekr1t", 6);
	snprintf(url, sizeof(url), "fs://:%.*s@h", 255, pw);
	{
		struct fsesl_url u;

		cr_assert_eq(fsesl_url_parse(url, &u, NULL, 0), 0);
		cr_assert_eq(strlen(u.password), 255);
		fsesl_url_clear(&u);
	}
	snprintf(url, sizeof(url), "fs://:%.*s@h", 256, pw);
	check_bad(url, "password is too long", "xxxxxxxxxxxxxxxx");

	snprintf(url, sizeof(url), "fs://%.*s:Sekr1t@h", 300, pw + 6);
	check_bad(url, "user name is too long", NULL);

	n = (size_t)snprintf(url, sizeof(url), "fs://:Sekr1t@");
	memset(url + n, 'h', 300);
	url[n + 300] = '\0';
	check_bad(url, "host name is too long", NULL);

	n = (size_t)snprintf(url, sizeof(url), "fs://:Sekr1t@h?");
	memset(url + n, 'E', 128);
	url[n + 128] = '\0';
	check_bad(url, "event 1 is too long", NULL);

	n = (size_t)snprintf(url, sizeof(url), "fs://:Sekr1t@h?");
	for (i = 0; i < FSESL_URL_MAX_EVENTS; i++)
		n += (size_t)snprintf(url + n, sizeof(url) - n, "%sE%zu", i ? "," : "", i);
	{
		struct fsesl_url u;

		cr_assert_eq(fsesl_url_parse(url, &u, NULL, 0), 0);
		cr_assert_eq(u.n_events, FSESL_URL_MAX_EVENTS);
		cr_assert_str_eq(u.events[FSESL_URL_MAX_EVENTS - 1], "E63");
		fsesl_url_clear(&u);
	}
	snprintf(url + n, sizeof(url) - n, ",ONE_MORE");
	check_bad(url, "too many events", NULL);
}

Test(url, null_arguments_and_small_errbuf)
{
	struct fsesl_url u;
	char err[8];

	cr_assert_eq(fsesl_url_parse(NULL, &u, NULL, 0), FSESL_PERR_BAD_URL);
	cr_assert_eq(fsesl_url_parse("fs://:p@h", NULL, NULL, 0), FSESL_PERR_BAD_URL);
	cr_assert_eq(fsesl_url_parse("fs://:Sekr1t@h:0", &u, err, sizeof(err)), FSESL_PERR_BAD_URL);
	cr_assert_eq(strlen(err), sizeof(err) - 1); /* cut, still terminated */
	cr_assert_eq(fsesl_url_parse("fs://:Sekr1t@h:0", &u, err, 0), FSESL_PERR_BAD_URL);
}

/* A parsed URL feeds the encoders directly. */
Test(url, feeds_the_encoders)
{
	struct fsesl_url u;
	char buf[512];
	const char *names[FSESL_URL_MAX_EVENTS];
	size_t i;
	ssize_t n;

	cr_assert_eq(
	    fsesl_url_parse("fs://1000@default:s3cret@h?HEARTBEAT,CUSTOM%20a::b,API", &u, NULL, 0),
	    0);
	n = fsesl_encode_userauth(buf, sizeof(buf), u.user, u.password);
	cr_assert_eq(n, 30);
	cr_assert(memcmp(buf, "userauth 1000@default:s3cret\n\n", 30) == 0);
	for (i = 0; i < u.n_events; i++)
		names[i] = u.events[i];
	n = fsesl_encode_event(buf, sizeof(buf), FSESL_EVFMT_PLAIN, names, u.n_events);
	cr_assert_eq(n, (ssize_t)strlen("event plain HEARTBEAT API CUSTOM a::b\n\n"));
	cr_assert(memcmp(buf, "event plain HEARTBEAT API CUSTOM a::b\n\n", (size_t)n) == 0);
	fsesl_url_clear(&u);
}

/* The host rule of URLs and fsesl_server_get_by(), on its own. */
Test(url, host_check)
{
	static const struct {
		const char *in, *out;
	} ok_hosts[] = {
	    {"localhost", "localhost"},
	    {"fs-01.example.com", "fs-01.example.com"},
	    {"fs-01.example.com.", "fs-01.example.com."},
	    {"my_host", "my_host"},
	    {"10.0.0.1", "10.0.0.1"},
	    {"::1", "::1"},
	    {"[::1]", "::1"},
	    {"2001:db8::5", "2001:db8::5"},
	    {"123abc", "123abc"},
	};
	static const struct {
		const char *in, *why;
	} bad_hosts[] = {
	    {"", "missing host"},
	    {"ho st", "invalid character"},
	    {"host/x", "invalid character"},
	    {"h\rx", "invalid character"},
	    {"a..b", "empty label"},
	    {".", "empty label"},
	    {"..", "empty label"},
	    {"a.b..", "empty label"},
	    {"-a", "starts with '-'"},
	    {"a-", "ends with '-'"},
	    {"a-.b", "ends with '-'"},
	    {"1.2.3", "not a valid IPv4"},
	    {"256.1.1.1", "not a valid IPv4"},
	    {"1.2.3.4.", "not a valid IPv4"},
	    {"::g", "not a valid IPv6"},
	    {"fe80::1::2", "not a valid IPv6"},
	    {"[::1", "closing ']'"},
	    {"[10.0.0.1]", "not a valid IPv6"},
	    {"[]", "not a valid IPv6"},
	    {"[::1]x", "closing ']'"},
	};
	char out[300], why[256];
	char big[400];

	for (size_t i = 0; i < sizeof(ok_hosts) / sizeof(ok_hosts[0]); i++) {
		why[0] = '\0';
		cr_assert_eq(fsesl_host_check(ok_hosts[i].in, strlen(ok_hosts[i].in), out,
		                 sizeof(out), why, sizeof(why)),
		    0, "%s: %s", ok_hosts[i].in, why);
		cr_assert_str_eq(out, ok_hosts[i].out);
		cr_assert_eq(
		    fsesl_host_check(ok_hosts[i].in, strlen(ok_hosts[i].in), NULL, 0, NULL, 0), 0);
	}
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		why[0] = '\0';
		cr_assert_eq(fsesl_host_check(bad_hosts[i].in, strlen(bad_hosts[i].in), out,
		                 sizeof(out), why, sizeof(why)),
		    FSESL_PERR_INVALID, "%s accepted", bad_hosts[i].in);
		cr_assert(strstr(why, bad_hosts[i].why) != NULL, "%s: \"%s\" lacks \"%s\"",
		    bad_hosts[i].in, why, bad_hosts[i].why);
	}
	cr_assert_eq(fsesl_host_check(NULL, 0, NULL, 0, NULL, 0), FSESL_PERR_INVALID);
	/* Lengths: a label of 63 bytes, a name of 253 (+ a trailing dot). */
	memset(big, 'a', sizeof(big));
	cr_assert_eq(fsesl_host_check(big, 63, NULL, 0, NULL, 0), 0);
	cr_assert_eq(fsesl_host_check(big, 64, NULL, 0, why, sizeof(why)), FSESL_PERR_INVALID);
	cr_assert(strstr(why, "over 63") != NULL, "%s", why);
	for (size_t i = 63; i < sizeof(big); i += 64)
		big[i] = '.';
	cr_assert_eq(fsesl_host_check(big, 253, NULL, 0, NULL, 0), 0);
	big[253] = '.';
	cr_assert_eq(fsesl_host_check(big, 254, NULL, 0, NULL, 0), 0);
	big[253] = 'a';
	cr_assert_eq(fsesl_host_check(big, 254, NULL, 0, why, sizeof(why)), FSESL_PERR_INVALID);
	cr_assert(strstr(why, "too long") != NULL, "%s", why);
	/* Only len bytes are read, and out must hold the result. */
	cr_assert_eq(fsesl_host_check("hostx", 4, out, sizeof(out), NULL, 0), 0);
	cr_assert_str_eq(out, "host");
	cr_assert_eq(fsesl_host_check("host", 4, out, 4, NULL, 0), FSESL_PERR_INVALID);
}
