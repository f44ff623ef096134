/*
 * enc_wbuf.h - bounded output buffer shared by the proto/ writers
 * (encode.c, event_write.c). Internal; static inline only.
 *
 * The writers run once to produce bytes and, with dst == NULL and cap == 0,
 * once to measure. So a write that does not fit is not an error at the point
 * of the write: the buffer keeps counting (w->len is the size that *would*
 * have been written) and only the caller decides, at the end, whether that
 * is FSESL_PERR_BUFFER_TOO_SMALL. That keeps validation and sizing in one
 * code path, so the size function can never disagree with the encoder.
 */
#ifndef FSESL_ENC_WBUF_H
#define FSESL_ENC_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fsesl_wbuf {
	char *dst;
	size_t cap;
	size_t len; /* bytes produced so far, written or not */
	bool full; /* some byte did not fit */
	bool overflow; /* len wrapped around size_t: absurd input */
};

static inline void
fsesl_wbuf_init(struct fsesl_wbuf *w, char *dst, size_t cap)
{
	w->dst = dst;
	w->cap = dst ? cap : 0;
	w->len = 0;
	w->full = false;
	w->overflow = false;
}

static inline void
fsesl_wbuf_put(struct fsesl_wbuf *w, const void *p, size_t n)
{
	size_t end;

	if (__builtin_add_overflow(w->len, n, &end)) {
		w->overflow = true;
		w->full = true;
		return;
	}
	if (!w->full && end <= w->cap) {
		if (n)
			memcpy(w->dst + w->len, p, n);
	} else {
		w->full = true;
	}
	w->len = end;
}

static inline void
fsesl_wbuf_putc(struct fsesl_wbuf *w, char c)
{
	if (!w->full && w->len < w->cap)
		w->dst[w->len++] = c;
	else
		fsesl_wbuf_put(w, &c, 1);
}

static inline void
fsesl_wbuf_puts(struct fsesl_wbuf *w, const char *s)
{
	fsesl_wbuf_put(w, s, strlen(s));
}

/* Plain decimal, no sign, no leading zeros: what the server writes and
 * what a strict Content-Length reader accepts. */
static inline size_t
fsesl_fmt_u64(char out[20], uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static inline void
fsesl_wbuf_putu(struct fsesl_wbuf *w, uint64_t v)
{
	char d[20];

	fsesl_wbuf_put(w, d, fsesl_fmt_u64(d, v));
}

#endif /* FSESL_ENC_WBUF_H */
