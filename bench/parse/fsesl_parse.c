/*
 * fsesl-parse - decode a server->client ESL byte stream into JSON lines.
 *
 * Design: a debugging and cross-checking tool around the frame reader and
 * the event decoders. The whole input is read into memory (captures are
 * small) and parsed in place, so every offset printed is a stream offset.
 * JSON is produced by libcjson for correct escaping; a decoded value that
 * is not valid UTF-8 (FreeSWITCH leaves "%AB" undecoded on the way in, so
 * any byte can come out) is printed with U+FFFD in place of the bad bytes
 * plus its exact bytes in hex, the convention of the vectors' expected.json.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fsesl_proto.h"

static void
usage(FILE *f)
{
	fputs("usage: fsesl-parse [--max-body N] [--max-header N] [FILE]\n"
	      "\n"
	      "Reads a server->client ESL stream (FILE, or stdin) and prints one JSON\n"
	      "object per message per line:\n"
	      "  {\"type\": CT, \"headers\": [[name, value], ...], \"body_len\": N,\n"
	      "   \"reply\": \"+OK\"|\"-ERR\"|null, \"event\": {\"format\": ..., \"name\": ...,\n"
	      "   \"headers\": [...], \"body_len\": N}}\n"
	      "\"event\" appears for text/event-* messages only (headers decoded; on a\n"
	      "decoding error it holds \"error\" instead). Envelope headers are raw.\n"
	      "\n"
	      "Exit status: 0 every byte parsed; 2 framing error, last line is\n"
	      "{\"error\": reason, \"offset\": N}; 3 the stream ends inside a message,\n"
	      "last line is {\"incomplete\": true, \"offset\": N}; 1 usage or I/O error.\n",
	    f);
}

static char *
read_all(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	if (buf == NULL)
		return NULL;
	for (;;) {
		size_t r;

		if (n == cap) {
			char *nb = realloc(buf, cap * 2);

			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Length of the valid UTF-8 sequence at s (no NUL, no surrogates, no
 * overlongs), or 0 if it is not one. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need, i;
	unsigned long cp;

	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return need;
}

/* [name, value] or [name, value-with-U+FFFD, {"hex": ...}]. */
static cJSON *
pair(const struct fsesl_header *h)
{
	const unsigned char *v = (const unsigned char *)h->value;
	cJSON *a = cJSON_CreateArray();
	char *name = strndup(h->name, h->name_len);
	char *txt = malloc(h->value_len * 3 + 1);
	size_t o = 0, i = 0;
	bool bad = false;

	if (a == NULL || name == NULL || txt == NULL) {
		fputs("fsesl-parse: out of memory\n", stderr);
		exit(1);
	}
	while (i < h->value_len) {
		size_t k = utf8_seq(v + i, h->value_len - i);

		if (k == 0) {
			memcpy(txt + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
			bad = true;
		} else {
			memcpy(txt + o, v + i, k);
			o += k;
			i += k;
		}
	}
	txt[o] = '\0';
	cJSON_AddItemToArray(a, cJSON_CreateString(name));
	cJSON_AddItemToArray(a, cJSON_CreateString(txt));
	if (bad) {
		cJSON *hex = cJSON_CreateObject();
		char *hx = malloc(h->value_len * 2 + 1);

		if (hex == NULL || hx == NULL) {
			fputs("fsesl-parse: out of memory\n", stderr);
			exit(1);
		}
		for (i = 0; i < h->value_len; i++)
			sprintf(hx + 2 * i, "%02x", v[i]);
		hx[2 * h->value_len] = '\0';
		cJSON_AddStringToObject(hex, "hex", hx);
		cJSON_AddItemToArray(a, hex);
		free(hx);
	}
	free(name);
	free(txt);
	return a;
}

static void
print_line(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s == NULL) {
		fputs("fsesl-parse: out of memory\n", stderr);
		exit(1);
	}
	puts(s);
	free(s);
	cJSON_Delete(o);
}

static cJSON *
event_json(const struct fsesl_msg *m, const struct fsesl_limits *lim)
{
	static const char *const fmts[] = {"plain", "json", "xml"};
	enum fsesl_event_format fmt = m->type == FSESL_MSG_EVENT_PLAIN  ? FSESL_EVFMT_PLAIN
	                              : m->type == FSESL_MSG_EVENT_JSON ? FSESL_EVFMT_JSON
	                                                                : FSESL_EVFMT_XML;
	cJSON *e = cJSON_CreateObject(), *hs;
	struct fsesl_event *ev = NULL;
	int rc = fsesl_event_parse(fmt, m->body, m->body_len, lim, &ev);

	cJSON_AddStringToObject(e, "format", fmts[fmt]);
	if (rc != 0) {
		cJSON_AddStringToObject(e, "error", fsesl_proto_strerror(rc));
		return e;
	}
	cJSON_AddStringToObject(e, "name", ev->name);
	hs = cJSON_AddArrayToObject(e, "headers");
	for (size_t i = 0; i < ev->n_headers; i++)
		cJSON_AddItemToArray(hs, pair(&ev->headers[i]));
	cJSON_AddNumberToObject(e, "body_len", (double)ev->body_len);
	fsesl_event_free(ev);
	return e;
}

int
main(int argc, char **argv)
{
	struct fsesl_limits lim;
	const char *path = NULL;
	FILE *f = stdin;
	size_t len = 0, off = 0, last_len = 0;
	char *buf;

	fsesl_limits_init(&lim);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if ((strcmp(argv[i], "--max-body") == 0 ||
		               strcmp(argv[i], "--max-header") == 0) &&
		           i + 1 < argc) {
			uint64_t v;

			if (fsesl_parse_u64(argv[i + 1], strlen(argv[i + 1]), &v) != 0 ||
			    v > SIZE_MAX) {
				fprintf(stderr, "fsesl-parse: bad number for %s\n", argv[i]);
				return 1;
			}
			if (argv[i][6] == 'b')
				lim.max_body_bytes = (size_t)v;
			else
				lim.max_header_bytes = (size_t)v;
			i++;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			usage(stderr);
			return 1;
		} else if (path == NULL) {
			path = argv[i];
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (path && strcmp(path, "-") != 0) {
		f = fopen(path, "rb");
		if (f == NULL) {
			fprintf(stderr, "fsesl-parse: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	buf = read_all(f, &len);
	if (f != stdin)
		fclose(f);
	if (buf == NULL) {
		fprintf(stderr, "fsesl-parse: read error\n");
		return 1;
	}

	while (off < len) {
		struct fsesl_msg m;
		int err;
		ssize_t n = fsesl_msg_parse(buf + off, len - off, last_len, &lim, &m, &err);
		cJSON *o = cJSON_CreateObject(), *hs;

		if (n == FSESL_PARSE_ERROR) {
			cJSON_AddStringToObject(o, "error", fsesl_proto_strerror(err));
			cJSON_AddNumberToObject(o, "offset", (double)off);
			print_line(o);
			free(buf);
			return 2;
		}
		if (n == FSESL_PARSE_PARTIAL) {
			size_t i = off;

			/* Trailing blank lines are not a message. */
			while (i < len && (buf[i] == '\n' || buf[i] == '\r'))
				i++;
			if (i == len) {
				cJSON_Delete(o);
				break;
			}
			cJSON_AddBoolToObject(o, "incomplete", 1);
			cJSON_AddNumberToObject(o, "offset", (double)off);
			print_line(o);
			free(buf);
			return 3;
		}
		if (m.content_type) {
			char *ct = strndup(m.content_type, m.content_type_len);

			cJSON_AddStringToObject(o, "type", ct);
			free(ct);
		} else {
			cJSON_AddNullToObject(o, "type");
		}
		hs = cJSON_AddArrayToObject(o, "headers");
		for (size_t i = 0; i < m.n_headers; i++)
			cJSON_AddItemToArray(hs, pair(&m.headers[i]));
		cJSON_AddNumberToObject(o, "body_len", (double)m.body_len);
		if (m.reply == FSESL_REPLY_OK)
			cJSON_AddStringToObject(o, "reply", "+OK");
		else if (m.reply == FSESL_REPLY_ERR)
			cJSON_AddStringToObject(o, "reply", "-ERR");
		else
			cJSON_AddNullToObject(o, "reply");
		if (m.type == FSESL_MSG_EVENT_PLAIN || m.type == FSESL_MSG_EVENT_JSON ||
		    m.type == FSESL_MSG_EVENT_XML)
			cJSON_AddItemToObject(o, "event", event_json(&m, &lim));
		print_line(o);
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
