/*
 * rawconn.c - a minimal blocking ESL client for the baselines.
 *
 * The baselines must cost what the patterns they stand for cost, and no
 * more: a blocking socket with TCP_NODELAY, whole commands per write(),
 * large reads into one growing buffer, and the project's own frame reader
 * (fsesl_msg_parse) and encoders, so that any difference against the
 * engine comes from the threading and waiting design, not from parsing.
 */
#include "bench.h"

#include "fsesl_proto.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAW_INITIAL_BUF (256u * 1024u)

static int
dial(const struct bench_target *t, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	char port[16];
	snprintf(port, sizeof(port), "%u", (unsigned)t->port);
	int rc = getaddrinfo(t->host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "resolve %s: %s", t->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	int fd = -1, e = ECONNREFUSED;
	for (struct addrinfo *p = ai; p; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, p->ai_addr, p->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "connect %s:%u: %s", t->host, (unsigned)t->port, strerror(e));
		return -e;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Reads more bytes; timeout_ms 0 = only what is already there.
 * 1 read something, 0 nothing (timeout), < 0 error or EOF. */
/* Room at the end of the buffer for the next recv: compacts, or grows. */
static int
make_room(struct rawconn *c)
{
	if (c->off > 0 && (c->off == c->len || c->len == c->cap)) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == c->cap) {
		size_t ncap = c->cap * 2;
		char *nb = realloc(c->buf, ncap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = ncap;
	}
	return 0;
}

static int
fill(struct rawconn *c, int timeout_ms)
{
	if (make_room(c) != 0)
		return -ENOMEM;
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			return 1;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (timeout_ms == 0)
			return 0;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return 0;
	}
}

/*
 * Writes all of buf. While the socket is full it keeps reading replies
 * into the buffer: a server that, like FreeSWITCH, stops reading commands
 * while its own write is blocked would otherwise deadlock with a client
 * blocked writing a large pipeline (docs/protocol.md §9.3).
 */
int
rawconn_write(struct rawconn *c, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->writes++;
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd pfd = {.fd = c->fd, .events = POLLOUT | POLLIN};
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			return -errno;
		if (pfd.revents & POLLIN) {
			int rc = fill(c, 0);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Parses one message; 1 with msg filled, 0 partial, < 0 protocol error. */
static int
parse_one(struct rawconn *c, struct fsesl_msg *msg)
{
	int perr = 0;
	size_t avail = c->len - c->off;
	if (!avail)
		return 0;
	ssize_t n = fsesl_msg_parse(c->buf + c->off, avail, c->last_len, NULL, msg, &perr);
	if (n == FSESL_PARSE_PARTIAL) {
		c->last_len = avail;
		return 0;
	}
	if (n < 0)
		return perr ? perr : -EPROTO;
	c->off += (size_t)n;
	c->last_len = 0;
	return 1;
}

ssize_t
rawconn_recv(struct rawconn *c, size_t *room)
{
	if (make_room(c) != 0)
		return -ENOMEM;
	size_t space = c->cap - c->len;
	if (room)
		*room = space;
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, space, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			return n;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	}
}

int
rawconn_parse(struct rawconn *c, struct rawreply *rep, uint64_t *events)
{
	struct fsesl_msg msg;
	for (;;) {
		int rc = parse_one(c, &msg);
		if (rc <= 0)
			return rc;
		switch (msg.type) {
		case FSESL_MSG_API_RESPONSE:
			memset(rep, 0, sizeof(*rep));
			rep->api = true;
			rep->body = msg.body ? msg.body : "";
			rep->body_len = msg.body ? msg.body_len : 0;
			return 1;
		case FSESL_MSG_COMMAND_REPLY: {
			memset(rep, 0, sizeof(*rep));
			const struct fsesl_header *h = fsesl_msg_header(&msg, "Reply-Text");
			if (h) {
				rep->reply_text = h->value;
				rep->reply_text_len = h->value_len;
			}
			h = fsesl_msg_header(&msg, "Job-UUID");
			if (h) {
				rep->job_uuid = h->value;
				rep->job_uuid_len = h->value_len;
			}
			return 1;
		}
		case FSESL_MSG_EVENT_PLAIN:
		case FSESL_MSG_EVENT_JSON:
		case FSESL_MSG_EVENT_XML:
		case FSESL_MSG_LOG_DATA:
			if (events)
				(*events)++;
			continue;
		case FSESL_MSG_DISCONNECT_NOTICE:
			if (msg.linger)
				continue;
			return -ECONNRESET;
		default:
			return -EPROTO;
		}
	}
}

int
rawconn_next(struct rawconn *c, struct rawreply *rep, int timeout_ms, uint64_t *events)
{
	uint64_t deadline = timeout_ms > 0 ? now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	for (;;) {
		int rc = rawconn_parse(c, rep, events);
		if (rc != 0)
			return rc;
		int wait = 0;
		if (timeout_ms > 0) {
			uint64_t now = now_ns();
			if (now >= deadline)
				return 0;
			wait = (int)((deadline - now) / 1000000u) + 1;
		}
		rc = fill(c, wait);
		if (rc < 0)
			return rc;
		if (rc == 0 && (timeout_ms == 0 || now_ns() >= deadline))
			return 0;
	}
}

static int
expect_reply(struct rawconn *c, const char *what, char *err, size_t errlen)
{
	struct rawreply rep;
	int rc = rawconn_next(c, &rep, 5000, NULL);
	if (rc <= 0) {
		snprintf(err, errlen, "%s: %s", what, rc == 0 ? "timeout" : "connection lost");
		return rc == 0 ? -ETIMEDOUT : rc;
	}
	if (rep.api || !rep.reply_text || rep.reply_text_len < 3 ||
	    memcmp(rep.reply_text, "+OK", 3) != 0) {
		/* Never echo the reply: it could quote what we sent (the password). */
		snprintf(err, errlen, "%s refused by the server", what);
		return -EACCES;
	}
	return 0;
}

int
rawconn_open(struct rawconn *c, const struct bench_target *t, char *err, size_t errlen)
{
	char pkt[1024];
	struct fsesl_msg msg;
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	int fd = dial(t, err, errlen);
	if (fd < 0)
		return fd;
	c->fd = fd;
	c->cap = RAW_INITIAL_BUF;
	c->buf = malloc(c->cap);
	if (!c->buf) {
		rawconn_close(c);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* The greeting: auth/request. */
	uint64_t deadline = now_ns() + 5000000000u;
	for (;;) {
		int rc = parse_one(c, &msg);
		if (rc > 0)
			break;
		if (rc == 0 && now_ns() < deadline)
			rc = fill(c, 1000);
		if (rc < 0 || now_ns() >= deadline) {
			snprintf(err, errlen, "no greeting from %s:%u", t->host, (unsigned)t->port);
			rawconn_close(c);
			return rc < 0 ? rc : -ETIMEDOUT;
		}
	}
	if (msg.type != FSESL_MSG_AUTH_REQUEST) {
		snprintf(err, errlen, "unexpected greeting from %s:%u", t->host, (unsigned)t->port);
		rawconn_close(c);
		return -EPROTO;
	}
	ssize_t n = t->user[0] ? fsesl_encode_userauth(pkt, sizeof(pkt), t->user, t->password)
	                       : fsesl_encode_auth(pkt, sizeof(pkt), t->password);
	if (n < 0) {
		snprintf(err, errlen, "cannot encode auth: %s", fsesl_proto_strerror((int)n));
		rawconn_close(c);
		return -EINVAL;
	}
	int rc = rawconn_write(c, pkt, (size_t)n);
	/* Scrub the packet: it holds the password. */
	memset(pkt, 0, sizeof(pkt));
	if (rc == 0)
		rc = expect_reply(c, "auth", err, errlen);
	else
		snprintf(err, errlen, "send auth: %s", strerror(-rc));
	if (rc != 0) {
		rawconn_close(c);
		return rc;
	}
	c->writes = 0;
	return 0;
}

void
rawconn_close(struct rawconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->cap = c->len = c->off = c->last_len = 0;
}

ssize_t
encode_request(char *dst, size_t cap, enum bench_mix kind, const char *token, unsigned large_bytes)
{
	char line[BENCH_TOKEN_MAX + 8];
	if (kind == MIX_BGAPI) {
		snprintf(line, sizeof(line), "echo %s", token);
		/* Our token as Job-UUID: the reply then names the request. */
		return fsesl_encode_bgapi(dst, cap, line, token, 0);
	}
	if (kind == MIX_LARGE) {
		/* "api echo <token><padding>\n\n", built by hand to avoid a
		 * second large copy; the padding is letters only. */
		size_t tl = strlen(token);
		size_t need = 9 + tl + large_bytes + 2;
		if (need > cap)
			return -1;
		memcpy(dst, "api echo ", 9);
		memcpy(dst + 9, token, tl);
		memcpy(dst + 9 + tl, large_padding(large_bytes), large_bytes);
		memcpy(dst + 9 + tl + large_bytes, "\n\n", 2);
		return (ssize_t)need;
	}
	snprintf(line, sizeof(line), "echo %s", token);
	return fsesl_encode_api(dst, cap, line, 0);
}

int
check_raw_reply(struct wstats *w, enum bench_mix kind, const char *token,
    const struct rawreply *rep, unsigned large_bytes)
{
	if (kind == MIX_BGAPI) {
		if (rep->api || !rep->job_uuid || rep->job_uuid_len != strlen(token) ||
		    memcmp(rep->job_uuid, token, rep->job_uuid_len) != 0) {
			wstats_mismatch(w, token, rep->job_uuid ? rep->job_uuid : rep->body,
			    rep->job_uuid ? rep->job_uuid_len : rep->body_len);
			return -1;
		}
		return 0;
	}
	if (!rep->api) {
		/* A command/reply to an api: refused (permission, not authed). */
		if (rep->reply_text)
			wstats_error(
			    w, "api refused: %.*s", (int)rep->reply_text_len, rep->reply_text);
		else
			wstats_error(w, "api answered by a bare command/reply");
		return -1;
	}
	if (check_echo(token, rep->body, rep->body_len, kind == MIX_LARGE ? large_bytes : 0)) {
		wstats_mismatch(w, token, rep->body, rep->body_len);
		return -1;
	}
	return 0;
}
