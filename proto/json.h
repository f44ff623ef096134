/*
 * json.h - the JSON reader behind text/event-json. Internal to proto/ (not
 * installed); the tests and the fuzzer use it directly.
 *
 * It reads exactly what FreeSWITCH writes for an event: one object whose
 * member values are strings, or arrays of strings (a multi-valued header).
 * Nothing else is accepted: no numbers, literals or nested objects, no
 * whitespace but space, tab, CR and LF, no raw control character in a
 * string, no \u0000 (a header cannot hold NUL), no lone surrogate, no empty
 * key, nothing but whitespace after the object. Bytes from 0x80 up pass
 * through unchecked, as the server's own writer passes them. Duplicate
 * keys are members like any other, in their order.
 *
 * A pull reader in the picohttpparser manner: no allocation, no global
 * state, input never modified, never read past `len`. Members come back as
 * views of the input (strings with their escapes still in them); a view
 * that came back has been validated, so decoding it cannot fail, and the
 * decoded text is never longer than the view.
 */
#ifndef FSESL_PROTO_JSON_H
#define FSESL_PROTO_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* A string between its quotes, escapes unresolved. */
struct fsesl_json_str {
	const char *p;
	size_t len;
	bool escaped; /* holds a backslash: decode before use */
};

/* An array value between its brackets (validated): read with
 * fsesl_json_array_next(). */
struct fsesl_json_array {
	const char *p, *end;
	size_t n; /* items */
	size_t raw_len; /* sum of the items' view lengths */
};

struct fsesl_json_member {
	struct fsesl_json_str key;
	bool is_array;
	struct fsesl_json_str str; /* !is_array */
	struct fsesl_json_array arr; /* is_array */
};

struct fsesl_json_reader {
	const char *p, *end;
	int state; /* private */
};

/* Starts reading the object in p[0..len). 0, or FSESL_PERR_BAD_JSON when
 * it does not start with '{'. */
int fsesl_json_open(struct fsesl_json_reader *r, const char *p, size_t len);
/* 1: the next member is in *m; 0: the object is complete (only
 * whitespace followed it); FSESL_PERR_BAD_JSON: not what we read. */
int fsesl_json_next(struct fsesl_json_reader *r, struct fsesl_json_member *m);
/* The next item of an array from fsesl_json_next(): true and *out, or
 * false at the end. Advances a. */
bool fsesl_json_array_next(struct fsesl_json_array *a, struct fsesl_json_str *out);
/* Decodes a validated view into dst (s->len bytes suffice); returns the
 * decoded length. */
size_t fsesl_json_decode(const struct fsesl_json_str *s, char *dst);
/* The decoded view equals lit (ASCII case folded when fold is true). */
bool fsesl_json_eq(const struct fsesl_json_str *s, const char *lit, bool fold);

#endif
