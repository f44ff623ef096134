/*
 * enc_util.h - helpers shared by the encoding suites (static inline only).
 */
#ifndef FSESL_TEST_ENC_UTIL_H
#define FSESL_TEST_ENC_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads FSESL_TEST_DATA/rel into a malloc'd buffer (NUL-terminated for
 * convenience; *len excludes it). Fails the test if it cannot. */
static inline char *
enc_read_vector(const char *rel, size_t *len)
{
	char path[1024];
	FILE *f;
	long n;
	char *buf;

	snprintf(path, sizeof(path), "%s/%s", FSESL_TEST_DATA, rel);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Prints bytes with \n, \r, \xHH visible, for assertion messages. */
static inline const char *
enc_show(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0, i;

	for (i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n')
			o += (size_t)snprintf(out + o, cap - o, "\\n");
		else if (c == '\r')
			o += (size_t)snprintf(out + o, cap - o, "\\r");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o < cap ? o : cap - 1] = '\0';
	return out;
}

#endif
