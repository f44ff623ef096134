/*
 * sim_client.c - the blocking test client (see sim_client.h).
 */
#include "sim_client.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int
tc_connect(struct tc *t, uint16_t port, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int one = 1;

	memset(t, 0, sizeof(*t));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return -errno;
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(t->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = -errno;
		close(t->fd);
		t->fd = -1;
		return e;
	}
	return 0;
}

void
tc_close(struct tc *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	free(t->buf);
	free(t->frame);
	t->buf = t->frame = NULL;
}

void
tc_send(struct tc *t, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = send(t->fd, data + off, len - off, MSG_NOSIGNAL);
		cr_assert(w > 0, "send failed: %s", strerror(errno));
		off += (size_t)w;
	}
}

void
tc_sends(struct tc *t, const char *s)
{
	tc_send(t, s, strlen(s));
}

int
tc_next(struct tc *t)
{
	for (;;) {
		if (t->len) {
			struct fsesl_msg m;
			int err = 0;
			ssize_t c = fsesl_msg_parse(t->buf, t->len, 0, NULL, &m, &err);
			if (c > 0) {
				free(t->frame);
				t->frame = malloc((size_t)c + 1);
				cr_assert(t->frame);
				memcpy(t->frame, t->buf, (size_t)c);
				t->frame[c] = '\0';
				t->frame_len = (size_t)c;
				memmove(t->buf, t->buf + c, t->len - (size_t)c);
				t->len -= (size_t)c;
				/* Re-parse the copy so every pointer refers to t->frame. */
				fsesl_msg_parse(t->frame, t->frame_len, 0, NULL, &t->msg, &err);
				return 1;
			}
			if (c == FSESL_PARSE_ERROR)
				return -1;
		}
		if (t->eof)
			return 0;
		if (t->cap - t->len < 65536) {
			t->cap = t->cap ? t->cap * 2 : 262144;
			t->buf = realloc(t->buf, t->cap);
			cr_assert(t->buf);
		}
		ssize_t r = recv(t->fd, t->buf + t->len, t->cap - t->len, 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			t->eof = true;
			continue;
		}
		if (r < 0)
			return -1;
		t->len += (size_t)r;
	}
}

void
tc_login(struct tc *t)
{
	cr_assert_eq(tc_next(t), 1, "no greeting");
	cr_assert_eq(t->msg.type, FSESL_MSG_AUTH_REQUEST);
	tc_sends(t, "auth ClueCon\n\n");
	cr_assert_eq(tc_next(t), 1, "no auth reply");
	cr_assert(tc_reply_is(t, "+OK accepted"));
}

void
tc_open(struct tc *t, uint16_t port)
{

	cr_assert_eq(tc_connect(t, port, 5000), 0, "cannot connect to the simulator");
	tc_login(t);
}

int
tc_drain(struct tc *t)
{
	int n = 0;

	while (tc_next(t) == 1)
		n++;
	return n;
}

bool
tc_quiet_for(struct tc *t, int timeout_ms)
{
	struct pollfd p = {.fd = t->fd, .events = POLLIN};

	if (t->len)
		return false;
	return poll(&p, 1, timeout_ms) == 0;
}

const char *
tc_header(const struct tc *t, const char *name, char *buf, size_t cap)
{
	const struct fsesl_header *h = fsesl_msg_header(&t->msg, name);

	if (!h)
		return NULL;
	snprintf(buf, cap, "%.*s", (int)h->value_len, h->value);
	return buf;
}

bool
tc_reply_is(const struct tc *t, const char *reply_text)
{
	char b[1024];
	const char *v = tc_header(t, "Reply-Text", b, sizeof(b));

	return t->msg.type == FSESL_MSG_COMMAND_REPLY && v && !strcmp(v, reply_text);
}

bool
tc_body_is(const struct tc *t, const char *body)
{
	size_t n = strlen(body);

	return t->msg.body_len == n && (n == 0 || !memcmp(t->msg.body, body, n));
}

fsesl_sim *
tc_sim_start(struct fsesl_sim_config *cfg, uint16_t *port)
{
	struct fsesl_sim_config def;
	fsesl_sim *s = NULL;

	if (!cfg) {
		fsesl_sim_config_init(&def);
		def.heartbeat_interval_ms = 0;
		cfg = &def;
	}
	cfg->port = 0;
	int rc = fsesl_sim_start(cfg, &s, port);
	cr_assert_eq(rc, 0, "fsesl_sim_start: %d", rc);
	return s;
}
