/*
 * fuzz_json.c - libFuzzer target for the text/event-json reader
 * (proto/json.c) and the JSON event decoder on top of it.
 *
 * The input is copied into a buffer of exactly its size, so ASan sees any
 * read past it. Checked on every input:
 *   - views handed out lie inside the input, arrays' items too, and each
 *     decodes to at most its own length, without a NUL;
 *   - fsesl_event_parse(JSON) succeeds exactly when the reader takes the
 *     whole object and one member is named Event-Name (any case), and the
 *     headers it gives are the reader's members;
 *   - libcjson as an oracle: whatever our stricter reader accepts, cJSON
 *     accepts too, with the same members, in the same order, decoded to
 *     the same bytes (cJSON is not linked into the library, only here).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "fsesl_proto.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const struct fsesl_json_str *s, const char *buf, size_t n, char *scratch)
{
	size_t len;

	if (s->p < buf || s->p + s->len > buf + n)
		abort();
	len = fsesl_json_decode(s, scratch);
	if (len > s->len || memchr(scratch, '\0', len) != NULL)
		abort();
}

/* The decoded bytes of s equal the C string want. */
static bool
same(const struct fsesl_json_str *s, const char *want, char *scratch)
{
	size_t len = fsesl_json_decode(s, scratch);

	return strlen(want) == len && memcmp(scratch, want, len) == 0;
}

static void
oracle(const char *buf, size_t n, char *scratch)
{
	struct fsesl_json_reader r;
	struct fsesl_json_member m;
	struct fsesl_json_str it;
	const cJSON *c, *ci;
	cJSON *root;

	root = cJSON_ParseWithLength(buf, n);
	if (root == NULL || !cJSON_IsObject(root))
		abort(); /* we accepted what cJSON refuses */
	c = root->child;
	(void)fsesl_json_open(&r, buf, n);
	while (fsesl_json_next(&r, &m) == 1) {
		if (c == NULL || c->string == NULL || !same(&m.key, c->string, scratch))
			abort();
		if (!m.is_array) {
			if (!cJSON_IsString(c) || !same(&m.str, c->valuestring, scratch))
				abort();
		} else {
			if (!cJSON_IsArray(c))
				abort();
			ci = c->child;
			while (fsesl_json_array_next(&m.arr, &it)) {
				if (ci == NULL || !cJSON_IsString(ci) ||
				    !same(&it, ci->valuestring, scratch))
					abort();
				ci = ci->next;
			}
			if (ci != NULL)
				abort();
		}
		c = c->next;
	}
	if (c != NULL)
		abort();
	cJSON_Delete(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	char *scratch = malloc(size + 4);
	struct fsesl_json_reader r;
	struct fsesl_json_member m;
	struct fsesl_json_str it;
	struct fsesl_event *ev = NULL;
	size_t members = 0, items;
	bool named = false;
	int rc, erc;

	if (buf == NULL || scratch == NULL) {
		free(buf);
		free(scratch);
		return 0;
	}
	memcpy(buf, data, size);
	rc = fsesl_json_open(&r, buf, size);
	while (rc == 0 && (rc = fsesl_json_next(&r, &m)) == 1) {
		rc = 0;
		members++;
		check_str(&m.key, buf, size, scratch);
		if (fsesl_json_eq(&m.key, "Event-Name", true))
			named = true;
		if (!m.is_array) {
			check_str(&m.str, buf, size, scratch);
			continue;
		}
		if (m.arr.p < buf || m.arr.end > buf + size)
			abort();
		items = 0;
		while (fsesl_json_array_next(&m.arr, &it)) {
			check_str(&it, buf, size, scratch);
			items++;
		}
		if (items != m.arr.n)
			abort();
	}
	erc = fsesl_event_parse(FSESL_EVFMT_JSON, buf, size, NULL, &ev);
	if (rc == 0) {
		/* The reader took it all: the decoder agrees, but for the
		 * cases it adds (no name, "_body" not a string, the limit). */
		if (erc == 0) {
			if (!named || ev->name == NULL || ev->n_headers > members)
				abort();
			fsesl_event_free(ev);
		} else if (erc != FSESL_PERR_NO_EVENT_NAME && erc != FSESL_PERR_BAD_JSON &&
		           erc != FSESL_PERR_TOO_MANY_HEADERS) {
			abort();
		}
		oracle(buf, size, scratch);
	} else if (erc == 0) {
		abort(); /* decoded what the reader refuses */
	}
	free(scratch);
	free(buf);
	return 0;
}
