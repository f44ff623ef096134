/*
 * testutil.c - guard pages, file loading, SHA-256 and expected.json values
 * for the proto decoding suites. SHA-256 is written from FIPS 180-4: the
 * real captures' expected.json identifies large bodies only by digest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "testutil.h"

void
fsesl_test_guard_init(struct fsesl_test_guard *g, size_t cap)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t size = (cap + page - 1) / page * page;

	if (size == 0)
		size = page;
	g->base =
	    mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(g->base != MAP_FAILED);
	cr_assert(mprotect(g->base + size, page, PROT_NONE) == 0);
	g->size = size;
	g->total = size + page;
}

void
fsesl_test_guard_free(struct fsesl_test_guard *g)
{
	munmap(g->base, g->total);
	g->base = NULL;
}

char *
fsesl_test_guard_put(struct fsesl_test_guard *g, const void *data, size_t len)
{
	char *dst;

	cr_assert(len <= g->size);
	dst = g->base + g->size - len;
	if (len)
		memmove(dst, data, len);
	return dst;
}

char *
fsesl_test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;
	char *buf;

	cr_assert(f != NULL, "cannot open %s", path);
	cr_assert(fseek(f, 0, SEEK_END) == 0);
	n = ftell(f);
	cr_assert(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert(buf != NULL);
	cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

cJSON *
fsesl_test_read_json(const char *path)
{
	size_t len;
	char *txt = fsesl_test_read_file(path, &len);
	cJSON *j = cJSON_ParseWithLength(txt, len);

	cr_assert(j != NULL, "bad JSON in %s", path);
	free(txt);
	return j;
}

/* ------------------------------------------------------------ SHA-256 */

static const uint32_t K[64] = {
    0x428a2f98,
    0x71374491,
    0xb5c0fbcf,
    0xe9b5dba5,
    0x3956c25b,
    0x59f111f1,
    0x923f82a4,
    0xab1c5ed5,
    0xd807aa98,
    0x12835b01,
    0x243185be,
    0x550c7dc3,
    0x72be5d74,
    0x80deb1fe,
    0x9bdc06a7,
    0xc19bf174,
    0xe49b69c1,
    0xefbe4786,
    0x0fc19dc6,
    0x240ca1cc,
    0x2de92c6f,
    0x4a7484aa,
    0x5cb0a9dc,
    0x76f988da,
    0x983e5152,
    0xa831c66d,
    0xb00327c8,
    0xbf597fc7,
    0xc6e00bf3,
    0xd5a79147,
    0x06ca6351,
    0x14292967,
    0x27b70a85,
    0x2e1b2138,
    0x4d2c6dfc,
    0x53380d13,
    0x650a7354,
    0x766a0abb,
    0x81c2c92e,
    0x92722c85,
    0xa2bfe8a1,
    0xa81a664b,
    0xc24b8b70,
    0xc76c51a3,
    0xd192e819,
    0xd6990624,
    0xf40e3585,
    0x106aa070,
    0x19a4c116,
    0x1e376c08,
    0x2748774c,
    0x34b0bcb5,
    0x391c0cb3,
    0x4ed8aa4a,
    0x5b9cca4f,
    0x682e6ff3,
    0x748f82ee,
    0x78a5636f,
    0x84c87814,
    0x8cc70208,
    0x90befffa,
    0xa4506ceb,
    0xbef9a3f7,
    0xc67178f2,
};

static uint32_t
ror(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static void
block(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, hh;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 =
		    hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));

		hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void
fsesl_test_sha256_hex(const void *data, size_t len, char out[65])
{
	uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
	    0x1f83d9ab, 0x5be0cd19};
	const unsigned char *p = data;
	unsigned char tail[128] = {0};
	size_t full = len / 64 * 64, rest = len - full, tl;
	uint64_t bits = (uint64_t)len * 8;

	for (size_t i = 0; i < full; i += 64)
		block(h, p + i);
	if (rest)
		memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	tl = rest + 1 + 8 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
	block(h, tail);
	if (tl == 128)
		block(h, tail + 64);
	for (int i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", h[i]);
	out[64] = '\0';
}

/* -------------------------------------------------------- expected.json */

char *
fsesl_test_expected_value(const cJSON *pair, size_t *len)
{
	const cJSON *v = cJSON_GetArrayItem(pair, 1);
	const cJSON *x = cJSON_GetArrayItem(pair, 2);
	char *out;

	if (x != NULL) {
		const char *hex = cJSON_GetStringValue(cJSON_GetObjectItem(x, "hex"));
		size_t n;

		cr_assert(hex != NULL);
		n = strlen(hex) / 2;
		out = malloc(n + 1);
		for (size_t i = 0; i < n; i++) {
			unsigned b;

			cr_assert(sscanf(hex + 2 * i, "%2x", &b) == 1);
			out[i] = (char)b;
		}
		*len = n;
		return out;
	}
	if (cJSON_IsArray(v)) {
		const cJSON *it;
		size_t n = 7, k = 0;

		cJSON_ArrayForEach(it, v) n += strlen(cJSON_GetStringValue(it)) + (k++ ? 2 : 0);
		out = malloc(n + 1);
		strcpy(out, "ARRAY::");
		k = 0;
		cJSON_ArrayForEach(it, v)
		{
			if (k++)
				strcat(out, "|:");
			strcat(out, cJSON_GetStringValue(it));
		}
		*len = n;
		return out;
	}
	cr_assert(cJSON_IsString(v));
	*len = strlen(v->valuestring);
	out = malloc(*len + 1);
	memcpy(out, v->valuestring, *len + 1);
	return out;
}
