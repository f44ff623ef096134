/*
 * client_packet.c - one client -> server packet, read the way
 * mod_event_socket's read_packet() reads it (docs/protocol.md §2.3, §2.4).
 *
 * This is the server's view, for the simulator and the fuzzers, so it
 * reproduces the server's quirks rather than being strict:
 *   - CR/LF bytes before the first real byte are skipped ("kicks");
 *   - the block ends when a counter of LF bytes reaches 2; CR leaves the
 *     counter alone and any other byte resets it ("\n\n", "\n\r\n" and
 *     "\r\n\r\n" all end a block);
 *   - the server keeps the block as a C string, so a NUL byte hides the
 *     rest of the block from line splitting (framing still counts it);
 *   - a line ends at the first CR found ANYWHERE later in the block, and
 *     only when there is none at the next LF; then every following CR/LF
 *     byte is skipped. This is the mixed-CRLF quirk of §2.3, reproduced
 *     exactly: in "a\nb\r\n\r\n" the command line is "a\nb";
 *   - later lines split at the first ':', then spaces (not tabs) are
 *     skipped; lines without ':' are ignored; empty values are dropped;
 *   - each Content-Length header (any case) is read with atoi semantics
 *     (leading whitespace, optional sign, digits up to the first non-digit;
 *     garbage gives 0) and, when positive, that many body bytes are read
 *     right away. Two such headers read two bodies back to back; the
 *     server keeps the last one, and so do we (pkt->body).
 * Differences, on purpose: the block limit is lim->max_header_bytes and the
 * body limit lim->max_body_bytes (the server force-ends a block at 10 MiB
 * and, since 1.11.2, drops bodies over 16 MiB); past them we return an
 * error instead of guessing.
 */
#include "fsesl_proto.h"
#include "proto_util.h"

#include <string.h>

static bool
is_space_c(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * atoi() as the server applies it, minus its undefined overflow: returns
 * the value clamped to max + 1 so the caller can refuse it. Negative
 * values are 0 here (1.10.12 reads no body for them).
 */
static size_t
atoi_len(const char *p, size_t n, size_t max)
{
	size_t i = 0, v = 0;
	bool neg = false;

	while (i < n && is_space_c(p[i]))
		i++;
	if (i < n && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		v = v * 10 + (size_t)(p[i] - '0');
		if (v > max) {
			v = max + 1;
			if (!neg)
				return v;
		}
	}
	return neg ? 0 : v;
}

static void
fail(int *err, int code)
{
	if (err)
		*err = code;
}

ssize_t
fsesl_client_packet_parse(const char *buf, size_t len, const struct fsesl_limits *lim,
    struct fsesl_client_packet *pkt, int *err)
{
	size_t max_hdr = lim ? lim->max_header_bytes : FSESL_DEFAULT_MAX_HEADER_BYTES;
	size_t max_body = lim ? lim->max_body_bytes : FSESL_DEFAULT_MAX_BODY_BYTES;
	size_t max_headers = FSESL_MSG_MAX_HEADERS;
	size_t skip = 0, i, blk, blk_end, str_end, pos, consumed;
	const char *cr;
	bool cr_known = false;
	unsigned lf = 0;
	size_t line_no = 0;

	if (!buf || !pkt) {
		fail(err, FSESL_PERR_INVALID);
		return FSESL_PARSE_ERROR;
	}
	if (lim && lim->max_headers && lim->max_headers < max_headers)
		max_headers = lim->max_headers;
	memset(pkt, 0, sizeof(*pkt));

	while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n'))
		skip++;
	blk = skip;

	/* Find the end of the header block. */
	blk_end = 0;
	for (i = blk; i < len; i++) {
		if (buf[i] == '\n') {
			if (++lf == 2) {
				blk_end = i + 1;
				break;
			}
		} else if (buf[i] != '\r') {
			lf = 0;
		}
		if (i + 1 - blk >= max_hdr) {
			fail(err, FSESL_PERR_HEADER_TOO_LARGE);
			return FSESL_PARSE_ERROR;
		}
	}
	if (!blk_end) {
		pkt->skipped = skip;
		return FSESL_PARSE_PARTIAL;
	}

	/* The C-string view of the block: up to its first NUL. */
	{
		const char *nul = memchr(buf + blk, '\0', blk_end - blk);

		str_end = nul ? (size_t)(nul - buf) : blk_end;
	}

	consumed = blk_end;
	pos = blk;
	cr = NULL;
	while (pos < str_end) {
		size_t le, next, colon, v;
		const char *line = buf + pos;

		/* Line end: the first CR anywhere ahead, else the next LF. The
		 * cached CR position only moves forward, so this stays linear. */
		if (!cr_known || (cr && cr < line)) {
			cr = memchr(line, '\r', str_end - pos);
			cr_known = true;
		}
		if (cr) {
			le = (size_t)(cr - buf);
		} else {
			const char *nl = memchr(line, '\n', str_end - pos);

			le = nl ? (size_t)(nl - buf) : str_end;
		}
		next = le;
		while (next < str_end && (buf[next] == '\r' || buf[next] == '\n'))
			next++;

		if (line_no++ == 0) {
			pkt->line = line;
			pkt->line_len = le - pos;
			pos = next;
			continue;
		}
		pos = next;
		if (le == (size_t)(line - buf))
			continue;
		{
			const char *c = memchr(line, ':', le - (size_t)(line - buf));

			if (!c)
				continue;
			colon = (size_t)(c - buf);
		}
		v = colon + 1;
		while (v < le && buf[v] == ' ')
			v++;
		if (fsesl_ci_eq(line, colon - (size_t)(line - buf), "content-length")) {
			size_t clen = atoi_len(buf + v, le - v, max_body);

			if (clen > max_body) {
				fail(err, FSESL_PERR_BODY_TOO_LARGE);
				return FSESL_PARSE_ERROR;
			}
			if (clen) {
				if (len - consumed < clen)
					return FSESL_PARSE_PARTIAL;
				pkt->body = buf + consumed;
				pkt->body_len = clen;
				consumed += clen;
			}
		}
		if (v == le)
			continue; /* an empty value deletes, it never adds */
		if (pkt->n_headers == max_headers) {
			pkt->dropped_headers++;
			continue;
		}
		pkt->headers[pkt->n_headers].name = line;
		pkt->headers[pkt->n_headers].name_len = colon - (size_t)(line - buf);
		pkt->headers[pkt->n_headers].value = buf + v;
		pkt->headers[pkt->n_headers].value_len = le - v;
		pkt->n_headers++;
	}
	if (!pkt->line) {
		/* A NUL right at the start: the server sees an empty command. */
		pkt->line = buf + blk;
		pkt->line_len = 0;
	}
	pkt->skipped = skip;
	return (ssize_t)consumed;
}
