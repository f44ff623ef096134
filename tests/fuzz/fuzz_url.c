/*
 * fuzz_url.c - libFuzzer target for the fs:// URL parser.
 *
 * The input is the URL (a C string, so it is cut at its first NUL). Beyond
 * "no crash, no over-read" the invariants are the parser's promises:
 *   - success: every field is a terminated string inside its array, the
 *     port is 1..65535, and user/password/events never carry a byte that
 *     the command encoders would refuse as injection;
 *   - failure: the result struct is entirely zero (no partial password
 *     left behind) and the error text is a non-empty, terminated sentence
 *     that does not contain the raw password text of the URL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsesl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes between the first ':' of the credentials and the last '@',
 * i.e. the password as written in the URL (before percent-decoding). */
static bool
raw_password(const char *url, const char **pw, size_t *len)
{
	const char *p, *at, *colon;

	if (strlen(url) < 5 || strncasecmp(url, "fs://", 5) != 0)
		return false;
	p = url + 5;
	at = strrchr(p, '@');
	if (!at)
		return false;
	colon = memchr(p, ':', (size_t)(at - p));
	if (!colon)
		return false;
	*pw = colon + 1;
	*len = (size_t)(at - colon - 1);
	return true;
}

static void
check_field(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap || fsesl_check_line(s, n) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	struct fsesl_url u;
	char err[256];
	const char *pw;
	size_t pwlen, i;
	int rc;

	if (!url)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	memset(err, 'X', sizeof(err));
	rc = fsesl_url_parse(url, &u, err, sizeof(err));
	if (rc == 0) {
		if (u.port == 0 || u.n_events > FSESL_URL_MAX_EVENTS || !u.password[0])
			abort();
		check_field(u.user, sizeof(u.user));
		check_field(u.password, sizeof(u.password));
		check_field(u.host, sizeof(u.host));
		for (i = 0; i < u.n_events; i++)
			check_field(u.events[i], sizeof(u.events[i]));
		if (err[0] != '\0')
			abort();
	} else {
		const unsigned char *b = (const unsigned char *)&u;

		if (rc != FSESL_PERR_BAD_URL)
			abort();
		for (i = 0; i < sizeof(u); i++)
			if (b[i])
				abort();
		if (strnlen(err, sizeof(err)) == sizeof(err) || err[0] == '\0')
			abort();
		/* The host and events (after the last '@') may be quoted, and a
		 * short password can match our fixed wording by chance; a
		 * password of 8+ bytes that is not also in that tail and shows
		 * up in the error text was quoted. */
		if (raw_password(url, &pw, &pwlen) && pwlen >= 8 &&
		    !memmem(pw + pwlen + 1, strlen(pw + pwlen + 1), pw, pwlen) &&
		    memmem(err, strlen(err), pw, pwlen))
			abort();
	}
	fsesl_url_clear(&u);
	free(url);
	return 0;
}
