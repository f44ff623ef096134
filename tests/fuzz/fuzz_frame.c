/*
 * fuzz_frame.c - libFuzzer target for the frame reader and the event
 * decoders.
 *
 * The input is a server->client stream. It is copied into a buffer of
 * exactly its size so ASan sees any over-read, parsed message by message,
 * and every event is decoded (and HEARTBEATs extracted). Invariants checked
 * on the way: consumed bytes stay inside the input, views point into it,
 * and feeding the same bytes in two pieces gives the same messages. The raw
 * input is also handed to each event decoder directly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsesl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_views(const struct fsesl_msg *m, const char *buf, size_t n)
{
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct fsesl_header *h = &m->headers[i];

		if (h->name < buf || h->name + h->name_len > buf + n || h->value < buf ||
		    h->value + h->value_len > buf + n)
			abort();
	}
	if (m->body && (m->body < buf || m->body + m->body_len > buf + n))
		abort();
}

static void
decode_event(enum fsesl_event_format fmt, const char *p, size_t len, const struct fsesl_limits *lim)
{
	struct fsesl_event *ev = NULL;
	struct fsesl_heartbeat hb;

	if (fsesl_event_parse(fmt, p, len, lim, &ev) != 0) {
		if (ev != NULL)
			abort();
		return;
	}
	if (ev->name == NULL || ev->body[ev->body_len] != '\0')
		abort();
	(void)fsesl_event_get(ev, "Unique-ID");
	(void)fsesl_heartbeat_parse(ev, &hb);
	fsesl_event_free(ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fsesl_limits lim;
	char *buf = malloc(size ? size : 1);
	size_t off = 0, split;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	fsesl_limits_init(&lim);
	lim.max_header_bytes = 4096;
	lim.max_body_bytes = 1 << 20;
	lim.max_event_headers = 512;
	split = size ? data[0] % (size + 1) : 0;

	while (off < size) {
		struct fsesl_msg m, m2;
		int err = 0, err2 = 0;
		ssize_t n = fsesl_msg_parse(buf + off, size - off, 0, &lim, &m, &err);
		ssize_t n2;

		if (n == FSESL_PARSE_ERROR && err == FSESL_PERR_NONE)
			abort();
		/* a first piece ending at `split`, then the rest, with last_len */
		if (split > off) {
			n2 = fsesl_msg_parse(buf + off, split - off, 0, &lim, &m2, &err2);
			if (n2 > 0 && n2 != n)
				abort();
			if (n2 == FSESL_PARSE_PARTIAL) {
				size_t last = m2.header_bytes ? 0 : split - off;

				n2 = fsesl_msg_parse(buf + off, size - off, last, &lim, &m2, &err2);
			}
			if (n2 != n || (n < 0 && n == FSESL_PARSE_ERROR && err2 != err))
				abort();
		}
		if (n <= 0)
			break;
		if ((size_t)n > size - off)
			abort();
		check_views(&m, buf + off, (size_t)n);
		if (m.type >= FSESL_MSG_EVENT_PLAIN && m.type <= FSESL_MSG_EVENT_XML)
			decode_event((enum fsesl_event_format)(m.type - FSESL_MSG_EVENT_PLAIN),
			    m.body, m.body_len, &lim);
		off += (size_t)n;
	}

	decode_event(FSESL_EVFMT_PLAIN, buf, size, &lim);
	decode_event(FSESL_EVFMT_JSON, buf, size, &lim);
	decode_event(FSESL_EVFMT_XML, buf, size, &lim);
	{
		char *tmp = malloc(size ? size : 1);

		if (tmp) {
			(void)fsesl_url_decode(buf, size, tmp);
			free(tmp);
		}
	}
	free(buf);
	return 0;
}
