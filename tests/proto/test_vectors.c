/*
 * test_vectors.c - every server->client vector parses to its expected.json,
 * and parses the same whichever way the bytes arrive.
 *
 * Two sets: the synthesised tests/vectors/NAME.bin (expected.json "vectors")
 * and the 47 real FreeSWITCH 1.10.12 captures (real-1.10.12/NAME.recv, 979
 * frames). Each stream is parsed whole, one byte at a time and split in two
 * at every offset, always with the unread bytes ending right before a
 * PROT_NONE page. The runs are reduced to a byte digest and must be equal.
 * Then every strict prefix of every message must be PARTIAL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fsesl_proto.h"
#include "testutil.h"

#define VEC FSESL_TEST_DATA
#define REAL FSESL_TEST_DATA "/real-1.10.12"

/* ------------------------------------------------------------ digests */

struct digest {
	char *p;
	size_t len, cap;
};

static void
put(struct digest *d, const void *src, size_t n)
{
	if (d->len + n > d->cap) {
		d->cap = (d->len + n) * 2 + 256;
		d->p = realloc(d->p, d->cap);
		cr_assert(d->p != NULL);
	}
	memcpy(d->p + d->len, src, n);
	d->len += n;
}

static void
put_sz(struct digest *d, size_t v)
{
	put(d, &v, sizeof(v));
}

static void
put_str(struct digest *d, const char *s, size_t n)
{
	put_sz(d, s ? n : (size_t)-1);
	if (s)
		put(d, s, n);
}

static void
digest_msg(struct digest *d, const struct fsesl_msg *m, ssize_t n)
{
	put_sz(d, (size_t)n);
	put_sz(d, m->type);
	put_sz(d, m->n_headers);
	for (size_t i = 0; i < m->n_headers; i++) {
		put_str(d, m->headers[i].name, m->headers[i].name_len);
		put_str(d, m->headers[i].value, m->headers[i].value_len);
	}
	put_str(d, m->content_type, m->content_type_len);
	put_str(d, m->body, m->body_len);
	put_sz(d, m->header_bytes);
	put_sz(d, m->reply);
	put_str(d, m->reply_text, m->reply_text_len);
	put_sz(d, m->linger);
}

/*
 * Feeds data[0..len) to the frame reader as if it arrived in pieces ending
 * at cuts[0] < cuts[1] < ... (then len), the way a reactor would: the
 * unread bytes are handed over again after each arrival, with last_len set
 * as fsesl_proto.h asks. The result (messages, then the final state) goes
 * into *d.
 */
static void
run_stream(struct fsesl_test_guard *g, const char *data, size_t len, const size_t *cuts,
    size_t ncuts, struct digest *d)
{
	size_t off = 0, avail, last_len = 0;

	for (size_t c = 0; c <= ncuts; c++) {
		size_t base;
		char *b;

		avail = c < ncuts ? cuts[c] : len;
		/* the unread bytes, ending at the guard page */
		b = fsesl_test_guard_put(g, data + off, avail - off);
		base = off;
		for (;;) {
			struct fsesl_msg m;
			int err = 12345;
			ssize_t n = fsesl_msg_parse(
			    b + (off - base), avail - off, last_len, NULL, &m, &err);

			if (n > 0) {
				cr_assert((size_t)n <= avail - off);
				cr_assert(err == FSESL_PERR_NONE);
				digest_msg(d, &m, n);
				off += (size_t)n;
				last_len = 0;
				continue;
			}
			if (n == FSESL_PARSE_PARTIAL) {
				cr_assert(err == FSESL_PERR_NONE);
				last_len = m.header_bytes ? 0 : avail - off;
				break;
			}
			cr_assert(n == FSESL_PARSE_ERROR, "bad return %zd", n);
			put_sz(d, (size_t)-2);
			put_sz(d, off);
			put_sz(d, (size_t)err);
			return;
		}
	}
	put_sz(d, (size_t)-3);
	put_sz(d, off);
}

static void
run_whole(struct fsesl_test_guard *g, const char *data, size_t len, struct digest *d)
{
	run_stream(g, data, len, NULL, 0, d);
}

static void
run_bytewise(struct fsesl_test_guard *g, const char *data, size_t len, struct digest *d)
{
	size_t *cuts = malloc(len * sizeof(*cuts) + 1);

	for (size_t i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	run_stream(g, data, len, cuts, len ? len - 1 : 0, d);
	free(cuts);
}

static void
same(const struct digest *a, const struct digest *b, const char *what, const char *name, size_t at)
{
	cr_assert(a->len == b->len && memcmp(a->p, b->p, a->len) == 0,
	    "%s: %s run differs from the whole run (split at %zu)", name, what, at);
}

/* ----------------------------------------------------- expected.json */

static void
check_headers(
    const char *name, size_t idx, const struct fsesl_header *h, size_t n, const cJSON *exp)
{
	size_t i = 0;
	const cJSON *pair;

	cr_assert(n == (size_t)cJSON_GetArraySize(exp), "%s #%zu: %zu headers, expected %d", name,
	    idx, n, cJSON_GetArraySize(exp));
	cJSON_ArrayForEach(pair, exp)
	{
		const char *en = cJSON_GetStringValue(cJSON_GetArrayItem(pair, 0));
		size_t vlen;
		char *ev = fsesl_test_expected_value(pair, &vlen);

		cr_assert(h[i].name_len == strlen(en) && memcmp(h[i].name, en, h[i].name_len) == 0,
		    "%s #%zu: header %zu is %.*s, expected %s", name, idx, i, (int)h[i].name_len,
		    h[i].name, en);
		cr_assert(h[i].value_len == vlen && memcmp(h[i].value, ev, vlen) == 0,
		    "%s #%zu: %s value %.*s", name, idx, en, (int)h[i].value_len, h[i].value);
		free(ev);
		i++;
	}
}

static void
check_body(const char *name, size_t idx, const char *body, size_t len, const cJSON *exp)
{
	const cJSON *txt = cJSON_GetObjectItem(exp, "body");
	const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(exp, "body_sha256"));
	const cJSON *blen = cJSON_GetObjectItem(exp, "body_length");

	cr_assert(
	    blen && (size_t)blen->valuedouble == len, "%s #%zu: body %zu bytes", name, idx, len);
	if (cJSON_IsString(txt)) {
		cr_assert(strlen(txt->valuestring) == len &&
		              (len == 0 || memcmp(txt->valuestring, body, len) == 0),
		    "%s #%zu: body differs", name, idx);
	} else if (sha) {
		char got[65];

		fsesl_test_sha256_hex(len ? body : "", len, got);
		cr_assert(strcmp(got, sha) == 0, "%s #%zu: body digest differs", name, idx);
	}
}

static void
check_event(
    const char *name, size_t idx, const struct fsesl_msg *m, const cJSON *exp, const cJSON *frame)
{
	enum fsesl_event_format fmt = m->type == FSESL_MSG_EVENT_PLAIN  ? FSESL_EVFMT_PLAIN
	                              : m->type == FSESL_MSG_EVENT_JSON ? FSESL_EVFMT_JSON
	                                                                : FSESL_EVFMT_XML;
	const char *efmt = cJSON_GetStringValue(cJSON_GetObjectItem(exp, "format"));
	const char *ename = cJSON_GetStringValue(cJSON_GetObjectItem(frame, "event_name"));
	struct fsesl_event *ev = NULL;
	int rc;

	if (efmt) {
		static const char *const names[] = {"plain", "json", "xml"};

		cr_assert(strcmp(efmt, names[fmt]) == 0, "%s #%zu: format", name, idx);
	}
	rc = fsesl_event_parse(fmt, m->body, m->body_len, NULL, &ev);
	cr_assert(rc == 0, "%s #%zu: event_parse: %s", name, idx, fsesl_proto_strerror(rc));
	cr_assert(ev->format == fmt);
	check_headers(name, idx, ev->headers, ev->n_headers, cJSON_GetObjectItem(exp, "headers"));
	check_body(name, idx, ev->body, ev->body_len, exp);
	cr_assert(ev->body[ev->body_len] == '\0');
	cr_assert(ev->name != NULL);
	cr_assert(ev->name == fsesl_event_get(ev, "event-name"));
	if (ename)
		cr_assert(strcmp(ev->name, ename) == 0);
	cr_assert(ev->forged == (fsesl_event_get(ev, "Command") != NULL));
	cr_assert(ev->core_uuid == fsesl_event_get(ev, "Core-UUID"));
	cr_assert(ev->job_uuid == fsesl_event_get(ev, "Job-UUID"));
	cr_assert(ev->subclass == fsesl_event_get(ev, "Event-Subclass"));
	if (fsesl_event_get(ev, "Event-Sequence")) {
		char num[32];

		cr_assert(ev->has_sequence);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)ev->sequence);
		cr_assert_str_eq(num, fsesl_event_get(ev, "Event-Sequence"));
	}
	fsesl_event_free(ev);
}

static void
check_reply(const struct fsesl_msg *m)
{
	const struct fsesl_header *rt = fsesl_msg_header(m, "Reply-Text");

	if (rt == NULL) {
		cr_assert(m->reply == FSESL_REPLY_NONE);
		return;
	}
	if (rt->value_len >= 3 && memcmp(rt->value, "+OK", 3) == 0)
		cr_assert(m->reply == FSESL_REPLY_OK);
	else if (rt->value_len >= 4 && memcmp(rt->value, "-ERR", 4) == 0)
		cr_assert(m->reply == FSESL_REPLY_ERR);
	else
		cr_assert(m->reply == FSESL_REPLY_OTHER);
	cr_assert(m->reply_text >= rt->value &&
	          m->reply_text + m->reply_text_len == rt->value + rt->value_len);
}

/*
 * Parses data whole and checks each message against exp (an array of
 * messages/frames). Then every strict prefix of every message must be
 * PARTIAL.
 */
static void
check_expected(struct fsesl_test_guard *g, const char *name, const char *data, size_t len,
    const cJSON *exp, bool prefixes)
{
	const char *b = fsesl_test_guard_put(g, data, len);
	size_t off = 0, idx = 0;
	const cJSON *e;

	cJSON_ArrayForEach(e, exp)
	{
		struct fsesl_msg m;
		int err;
		ssize_t n = fsesl_msg_parse(b + off, len - off, 0, NULL, &m, &err);
		const cJSON *hdrs = cJSON_GetObjectItem(e, "envelope");
		const char *ct = cJSON_GetStringValue(cJSON_GetObjectItem(e, "content_type"));
		const cJSON *ev = cJSON_GetObjectItem(e, "event");

		cr_assert(n > 0, "%s #%zu: %zd (%s)", name, idx, n, fsesl_proto_strerror(err));
		if (hdrs == NULL)
			hdrs = cJSON_GetObjectItem(e, "headers");
		check_headers(name, idx, m.headers, m.n_headers, hdrs);
		cr_assert(m.content_type && ct && strlen(ct) == m.content_type_len &&
		              memcmp(ct, m.content_type, m.content_type_len) == 0,
		    "%s #%zu: content type", name, idx);
		cr_assert(m.type == fsesl_msg_type_of(ct, strlen(ct)));
		cr_assert_str_eq(
		    fsesl_msg_type_name(m.type), m.type == FSESL_MSG_UNKNOWN ? "unknown" : ct);
		check_body(name, idx, m.body, m.body_len, e);
		cr_assert((m.body != NULL) == (fsesl_msg_header(&m, "Content-Length") != NULL));
		check_reply(&m);
		if (m.type == FSESL_MSG_DISCONNECT_NOTICE) {
			const struct fsesl_header *cd = fsesl_msg_header(&m, "Content-Disposition");

			cr_assert(m.linger == (cd && cd->value_len == 6 &&
			                          memcmp(cd->value, "linger", 6) == 0));
		} else {
			cr_assert(!m.linger);
		}
		if (ev)
			check_event(name, idx, &m, ev, e);
		else
			cr_assert(m.type != FSESL_MSG_EVENT_PLAIN &&
			          m.type != FSESL_MSG_EVENT_JSON && m.type != FSESL_MSG_EVENT_XML);

		if (prefixes) {
			for (size_t k = 0; k < (size_t)n; k++) {
				struct fsesl_msg pm;
				const char *pb = fsesl_test_guard_put(g, data + off, k);
				ssize_t r = fsesl_msg_parse(pb, k, 0, NULL, &pm, &err);

				cr_assert(r == FSESL_PARSE_PARTIAL, "%s #%zu: prefix %zu gave %zd",
				    name, idx, k, r);
			}
			b = fsesl_test_guard_put(g, data, len);
		}
		off += (size_t)n;
		idx++;
	}
	cr_assert(off == len, "%s: %zu bytes left after the expected messages", name, len - off);
}

/* ------------------------------------------------------------ drivers */

enum mode { M_EXPECTED, M_EQUIV };

static void
run_set(bool real, enum mode mode)
{
	cJSON *root = fsesl_test_read_json(real ? REAL "/expected.json" : VEC "/expected.json");
	const cJSON *set = cJSON_GetObjectItem(root, real ? "captures" : "vectors");
	const cJSON *it;
	size_t count = 0, frames = 0;

	cr_assert(set != NULL);
	cJSON_ArrayForEach(it, set)
	{
		char path[512];
		size_t len;
		char *data;
		struct fsesl_test_guard g;
		const cJSON *msgs = cJSON_GetObjectItem(it, real ? "frames" : "messages");

		snprintf(path, sizeof(path), "%s/%s%s", real ? REAL : VEC, it->string,
		    real ? ".recv" : "");
		data = fsesl_test_read_file(path, &len);
		fsesl_test_guard_init(&g, len);
		count++;
		frames += (size_t)cJSON_GetArraySize(msgs);

		if (mode == M_EXPECTED) {
			check_expected(&g, it->string, data, len, msgs, true);
		} else {
			struct digest whole = {0}, d = {0};
			size_t nmsg = (size_t)cJSON_GetArraySize(msgs);
			size_t *ends = calloc(nmsg + 1, sizeof(size_t));
			size_t nb = 0, off = 0;
			const char *b = fsesl_test_guard_put(&g, data, len);

			while (off < len) {
				struct fsesl_msg m;
				ssize_t n = fsesl_msg_parse(b + off, len - off, 0, NULL, &m, NULL);

				cr_assert(n > 0);
				off += (size_t)n;
				ends[nb++] = off;
			}
			run_whole(&g, data, len, &whole);
			run_bytewise(&g, data, len, &d);
			same(&whole, &d, "byte-at-a-time", it->string, 0);
			/* The reader keeps no state between messages, so splitting
			 * inside message i only needs message i and the one after
			 * it (which must still start at the right byte). */
			for (size_t i = 0; i < nb; i++) {
				size_t s0 = i ? ends[i - 1] : 0;
				size_t s1 = i + 1 < nb ? ends[i + 1] : len;

				whole.len = 0;
				run_whole(&g, data + s0, s1 - s0, &whole);
				for (size_t k = 1; k <= ends[i] - s0; k++) {
					d.len = 0;
					run_stream(&g, data + s0, s1 - s0, &k, 1, &d);
					same(&whole, &d, "split", it->string, s0 + k);
				}
			}
			free(whole.p);
			free(d.p);
			free(ends);
		}
		fsesl_test_guard_free(&g);
		free(data);
	}
	if (real) {
		cr_assert(count == 47, "%zu captures", count);
		cr_assert(frames == 979, "%zu frames", frames);
	} else {
		cr_assert(count >= 60, "%zu vectors", count);
	}
	cJSON_Delete(root);
}

Test(vectors, synthesised_match_expected)
{
	run_set(false, M_EXPECTED);
}

Test(vectors, synthesised_whole_bytewise_split_agree)
{
	run_set(false, M_EQUIV);
}

Test(vectors, real_match_expected)
{
	run_set(true, M_EXPECTED);
}

Test(vectors, real_whole_bytewise_split_agree)
{
	run_set(true, M_EQUIV);
}

/* All vectors glued into one stream, in expected.json order, parse to the
 * concatenation of their messages. */
Test(vectors, synthesised_glued)
{
	cJSON *root = fsesl_test_read_json(VEC "/expected.json");
	const cJSON *set = cJSON_GetObjectItem(root, "vectors"), *it, *m;
	struct digest all = {0}, d = {0};
	cJSON *msgs = cJSON_CreateArray();
	char *stream = NULL;
	size_t slen = 0;
	struct fsesl_test_guard g;

	cJSON_ArrayForEach(it, set)
	{
		char path[512];
		size_t len;
		char *data;

		snprintf(path, sizeof(path), "%s/%s", VEC, it->string);
		data = fsesl_test_read_file(path, &len);
		stream = realloc(stream, slen + len);
		memcpy(stream + slen, data, len);
		slen += len;
		free(data);
		cJSON_ArrayForEach(m, cJSON_GetObjectItem(it, "messages"))
		    cJSON_AddItemToArray(msgs, cJSON_Duplicate(m, 1));
	}
	fsesl_test_guard_init(&g, slen);
	check_expected(&g, "glued", stream, slen, msgs, false);
	run_whole(&g, stream, slen, &all);
	run_bytewise(&g, stream, slen, &d);
	same(&all, &d, "byte-at-a-time", "glued", 0);
	fsesl_test_guard_free(&g);
	free(all.p);
	free(d.p);
	free(stream);
	cJSON_Delete(msgs);
	cJSON_Delete(root);
}
