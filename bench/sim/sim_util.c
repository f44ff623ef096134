/*
 * sim_util.c - the simulator's small tools: the growable byte buffer every
 * connection reads into and writes from, the clocks, UUIDs, and the string
 * helpers the command parser shares.
 */
#include "sim_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uuid/uuid.h>

size_t
sim_buf_avail(const struct sim_buf *b)
{
	return b->len - b->off;
}

static void
sim_buf_compact(struct sim_buf *b)
{
	if (b->off == 0)
		return;
	if (b->off == b->len) {
		b->off = b->len = 0;
		return;
	}
	memmove(b->p, b->p + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

int
sim_buf_reserve(struct sim_buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return 0;
	sim_buf_compact(b);
	if (b->len + extra <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + extra)
		ncap *= 2;
	char *np = realloc(b->p, ncap);
	if (!np)
		return -1;
	b->p = np;
	b->cap = ncap;
	return 0;
}

int
sim_buf_add(struct sim_buf *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	if (sim_buf_reserve(b, n))
		return -1;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

void
sim_buf_free(struct sim_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Appends printf output (no NUL kept). */
int
sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(tmp))
		return sim_buf_add(b, tmp, (size_t)n);
	if (sim_buf_reserve(b, (size_t)n + 1))
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

uint64_t
sim_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
sim_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
sim_uuid(char out[37])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

char *
sim_strndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

bool
sim_prefix(const char *s, const char *p)
{
	return !strncasecmp(s, p, strlen(p));
}

/* userauth esl-allowed-api: a comma/space separated list of names. */
bool
sim_list_has(const char *list, const char *name)
{
	if (!list || !strcasecmp(list, "all"))
		return true;
	size_t nl = strlen(name);
	const char *p = list;
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ')
			e++;
		if ((size_t)(e - p) == nl && !strncasecmp(p, name, nl))
			return true;
		if ((size_t)(e - p) == 3 && !strncasecmp(p, "ALL", 3))
			return true;
		p = e;
	}
	return false;
}
