/*
 * testutil.h - helpers shared by the proto decoding suites.
 *
 * The guard buffer follows picohttpparser's test idea: input is copied so
 * that its last byte sits right before a PROT_NONE page, so reading even
 * one byte too far kills the test instead of passing by luck.
 */
#ifndef FSESL_PROTO_TESTUTIL_H
#define FSESL_PROTO_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct fsesl_test_guard {
	char *base; /* mapping start */
	size_t size; /* readable bytes before the guard page */
	size_t total; /* mapping size including the guard page */
};

/* Maps a readable region of at least cap bytes followed by a PROT_NONE page. */
void fsesl_test_guard_init(struct fsesl_test_guard *g, size_t cap);
void fsesl_test_guard_free(struct fsesl_test_guard *g);
/* Copies data so that it ends at the guard page; returns its new address. */
char *fsesl_test_guard_put(struct fsesl_test_guard *g, const void *data, size_t len);

/* Whole file in a malloc'd buffer (NUL added, not counted); aborts the
 * test on failure. */
char *fsesl_test_read_file(const char *path, size_t *len);
/* Parsed JSON file; aborts the test on failure. */
cJSON *fsesl_test_read_json(const char *path);

/* SHA-256 of data as 64 lower-case hex digits plus NUL. */
void fsesl_test_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Bytes an expected.json header value stands for: the hex of a third
 * element when present, "ARRAY::a|:b" for a JSON array, else the UTF-8 of
 * the string. Returns a malloc'd buffer and its length.
 */
char *fsesl_test_expected_value(const cJSON *pair, size_t *len);

#endif
