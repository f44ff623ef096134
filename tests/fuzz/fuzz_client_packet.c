/*
 * fuzz_client_packet.c - libFuzzer target for the server-side reader of
 * client command packets (what the simulator runs on every byte a client
 * sends).
 *
 * The input is a client->server stream, copied into a buffer of exactly
 * its size so ASan sees any over-read, and read packet by packet with a
 * small limit set (so the limit paths are reached too). Invariants: a
 * packet never claims more bytes than it was given, every view points
 * into the input, and a packet that parsed from a longer buffer parses
 * identically from exactly its own bytes (framing never looks ahead).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsesl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *p, size_t n, const char *buf, size_t len)
{
	if (n && (p < buf || p + n > buf + len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fsesl_limits lim = {.max_header_bytes = 4096,
	    .max_headers = 8,
	    .max_body_bytes = 4096,
	    .max_event_headers = 64};
	struct fsesl_client_packet pkt, again;
	char *buf = malloc(size ? size : 1);
	size_t off = 0, i;
	int err;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		ssize_t r = fsesl_client_packet_parse(buf + off, size - off, &lim, &pkt, &err);

		if (r == FSESL_PARSE_PARTIAL || r == FSESL_PARSE_ERROR)
			break;
		if (r <= 0 || (size_t)r > size - off || pkt.skipped >= (size_t)r ||
		    pkt.n_headers > lim.max_headers)
			abort();
		inside(pkt.line, pkt.line_len, buf + off, (size_t)r);
		inside(pkt.body, pkt.body_len, buf + off, (size_t)r);
		for (i = 0; i < pkt.n_headers; i++) {
			inside(pkt.headers[i].name, pkt.headers[i].name_len, buf + off, (size_t)r);
			inside(
			    pkt.headers[i].value, pkt.headers[i].value_len, buf + off, (size_t)r);
			if (!pkt.headers[i].value_len)
				abort(); /* empty values are dropped */
		}
		if (fsesl_client_packet_parse(buf + off, (size_t)r, &lim, &again, &err) != r ||
		    again.n_headers != pkt.n_headers || again.body_len != pkt.body_len ||
		    again.line_len != pkt.line_len)
			abort();
		off += (size_t)r;
	}
	free(buf);
	return 0;
}
