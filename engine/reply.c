/*
 * reply.c - the reply object handed to callers.
 *
 * The reactor parses replies as views into its read buffer, which is
 * reused at once, so a reply is copied out: one allocation holding the
 * struct, the header array and every string (NUL-terminated), so freeing
 * is one free() and the caller cannot leak parts of it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_int.h"

static size_t
reply_size(const struct fsesl_msg *m)
{
	size_t n = sizeof(struct fsesl_reply) + m->n_headers * sizeof(struct fsesl_header);
	size_t i;

	for (i = 0; i < m->n_headers; i++)
		n += m->headers[i].name_len + 1 + m->headers[i].value_len + 1;
	n += m->body_len + 1;
	return n;
}

static char *
put_str(char **cursor, const char *s, size_t len)
{
	char *d = *cursor;

	if (len)
		memcpy(d, s, len);
	d[len] = '\0';
	*cursor = d + len + 1;
	return d;
}

struct fsesl_reply *
fsesl_reply_from_msg(const struct fsesl_msg *m)
{
	struct fsesl_reply *r;
	struct fsesl_header *h;
	char *cur;
	size_t i;

	r = malloc(reply_size(m));
	if (!r)
		return NULL;
	h = (struct fsesl_header *)(r + 1);
	cur = (char *)(h + m->n_headers);
	r->type = m->type;
	r->n_headers = m->n_headers;
	r->headers = h;
	r->content_type = NULL;
	r->reply_text = NULL;
	for (i = 0; i < m->n_headers; i++) {
		const struct fsesl_header *src = &m->headers[i];

		h[i].name = put_str(&cur, src->name, src->name_len);
		h[i].name_len = src->name_len;
		h[i].value = put_str(&cur, src->value, src->value_len);
		h[i].value_len = src->value_len;
		if (!r->content_type && strcasecmp(h[i].name, "Content-Type") == 0)
			r->content_type = h[i].value;
		else if (!r->reply_text && strcasecmp(h[i].name, "Reply-Text") == 0)
			r->reply_text = h[i].value;
	}
	r->body = put_str(&cur, m->body ? m->body : "", m->body ? m->body_len : 0);
	r->body_len = m->body ? m->body_len : 0;
	return r;
}

const char *
fsesl_reply_content_type(const fsesl_reply *r)
{

	return r->content_type ? r->content_type : "";
}

bool
fsesl_reply_is_api(const fsesl_reply *r)
{

	return r->type == FSESL_MSG_API_RESPONSE;
}

int
fsesl_reply_ok(const fsesl_reply *r)
{

	if (r->type == FSESL_MSG_API_RESPONSE) {
		if (strncmp(r->body, "-ERR", 4) == 0 || strncmp(r->body, "-USAGE", 6) == 0)
			return 0;
		return 1;
	}
	if (!r->reply_text)
		return -1;
	if (strncmp(r->reply_text, "+OK", 3) == 0)
		return 1;
	if (strncmp(r->reply_text, "-ERR", 4) == 0)
		return 0;
	return -1;
}

const char *
fsesl_reply_text(const fsesl_reply *r)
{

	return r->type == FSESL_MSG_API_RESPONSE ? NULL : r->reply_text;
}

const char *
fsesl_reply_body(const fsesl_reply *r, size_t *len)
{

	if (len)
		*len = r->body_len;
	return r->body;
}

const char *
fsesl_reply_header(const fsesl_reply *r, const char *name)
{
	size_t i;

	if (!r || !name)
		return NULL;
	for (i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

void
fsesl_reply_free(fsesl_reply *r)
{

	free(r);
}

fsesl_reply *
fsesl_reply_dup(const fsesl_reply *r)
{
	struct fsesl_msg m;
	size_t i;

	if (!r || r->n_headers > FSESL_MSG_MAX_HEADERS)
		return NULL;
	memset(&m, 0, sizeof(m));
	m.type = r->type;
	m.n_headers = r->n_headers;
	for (i = 0; i < r->n_headers; i++)
		m.headers[i] = r->headers[i];
	m.body = r->body;
	m.body_len = r->body_len;
	return fsesl_reply_from_msg(&m);
}
