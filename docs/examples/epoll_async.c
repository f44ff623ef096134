/*
 * epoll_async.c - async commands driven from the application's own loop.
 *
 *   printf 'status\nuptime\nshow calls count\n' | ./epoll_async [URL]
 *
 * The application keeps its epoll loop and never blocks on the server:
 * each input line becomes an fsesl_api_async() call. The engine runs the
 * callback on its reactor thread, where nothing may block, so the callback
 * only copies the reply and writes the request's pointer into a pipe; the
 * application's loop reads the pointers and does the real work on its own
 * thread. A pointer is 8 bytes, below PIPE_BUF, so each write is atomic;
 * the write()/read() pair also orders the callback's stores before the
 * loop's loads. Input stops being read at MAX_OUTSTANDING requests, so at
 * most MAX_OUTSTANDING + one read's lines (< 2048) exist: fewer than the
 * 8192 pointers a 64 KiB pipe holds, so the callback's write never blocks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <fsesl.h>

#define MAX_OUTSTANDING 4096

struct req {
	int status;
	fsesl_reply *reply; /* our copy; the callback's reply dies with it */
	char cmd[];
};

static int done_pipe[2];

static void
on_reply(int status, const fsesl_reply *reply, void *ud)
{
	struct req *rq = ud;
	ssize_t n;

	rq->status = status;
	rq->reply = reply != NULL ? fsesl_reply_dup(reply) : NULL;
	if (status == 0 && rq->reply == NULL)
		rq->status = -ENOMEM;
	do
		n = write(done_pipe[1], &rq, sizeof(rq));
	while (n < 0 && errno == EINTR);
}

static void
finish(struct req *rq)
{
	const char *body;
	size_t len;

	if (rq->status != 0) {
		printf("%s: failed: %s\n", rq->cmd, fsesl_strerror(rq->status));
	} else {
		body = fsesl_reply_body(rq->reply, &len);
		printf("%s: %s\n%.*s", rq->cmd, fsesl_reply_ok(rq->reply) == 1 ? "ok" : "error",
		    (int)len, body);
		if (len > 0 && body[len - 1] != '\n')
			putchar('\n');
	}
	fsesl_reply_free(rq->reply);
	free(rq);
}

static void
submit(fsesl_engine *e, fsesl_server_t srv, const char *line, size_t len, int *outstanding,
    int *failures)
{
	struct req *rq;
	int err;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	rq = calloc(1, sizeof(*rq) + len + 1);
	if (rq == NULL) {
		(*failures)++;
		return;
	}
	memcpy(rq->cmd, line, len);
	err = fsesl_api_async(e, srv, rq->cmd, NULL, on_reply, rq);
	if (err != 0) { /* the callback will not run */
		printf("%s: not sent: %s\n", rq->cmd, fsesl_strerror(err));
		free(rq);
		(*failures)++;
		return;
	}
	(*outstanding)++;
}

int
main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : "fs://:ClueCon@127.0.0.1:8021";
	struct epoll_event ev, evs[8];
	fsesl_engine *e;
	fsesl_server_t srv;
	char in[4096], *nl;
	size_t in_len = 0;
	ssize_t k;
	int ep, err, i, n, outstanding = 0, failures = 0;
	int stdin_open = 1, stdin_watched = 1;

	if (pipe(done_pipe) != 0 || (ep = epoll_create1(0)) < 0) {
		perror("pipe/epoll");
		return 2;
	}
	err = fsesl_engine_start(NULL, &e);
	if (err == 0)
		err = fsesl_server_get(e, url, &srv);
	if (err != 0) {
		fprintf(stderr, "%s\n", fsesl_strerror(err));
		return 2;
	}
	ev = (struct epoll_event){.events = EPOLLIN, .data.fd = done_pipe[0]};
	epoll_ctl(ep, EPOLL_CTL_ADD, done_pipe[0], &ev);
	ev = (struct epoll_event){.events = EPOLLIN, .data.fd = STDIN_FILENO};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0)
		stdin_open = stdin_watched = 0; /* e.g. /dev/null: nothing to run */

	while (stdin_open || outstanding > 0) {
		n = epoll_wait(ep, evs, 8, -1);
		if (n < 0 && errno == EINTR)
			continue;
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == done_pipe[0]) {
				struct req *rq;

				if (read(done_pipe[0], &rq, sizeof(rq)) == (ssize_t)sizeof(rq)) {
					failures += rq->status != 0;
					finish(rq);
					outstanding--;
				}
				continue;
			}
			/* read(), not stdio: a FILE could hold buffered lines that
			 * epoll would never report again. */
			k = read(STDIN_FILENO, in + in_len, sizeof(in) - 1 - in_len);
			if (k <= 0) {
				if (k < 0 && errno == EINTR)
					continue;
				stdin_open = 0;
				if (in_len == 0)
					goto lines_done;
				in[in_len++] = '\n'; /* a last line without its newline */
			} else {
				in_len += (size_t)k;
			}
			while (
			    (nl = memchr(in, '\n', in_len)) != NULL || in_len == sizeof(in) - 1) {
				size_t ll = nl != NULL ? (size_t)(nl - in) : in_len;

				submit(e, srv, in, ll, &outstanding, &failures);
				ll += nl != NULL;
				memmove(in, in + ll, in_len - ll);
				in_len -= ll;
			}
		lines_done:
			if (stdin_watched && (!stdin_open || outstanding >= MAX_OUTSTANDING)) {
				epoll_ctl(ep, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
				stdin_watched = 0;
			}
		}
		if (stdin_open && !stdin_watched && outstanding < MAX_OUTSTANDING) {
			ev = (struct epoll_event){.events = EPOLLIN, .data.fd = STDIN_FILENO};
			epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
			stdin_watched = 1;
		}
	}
	fsesl_server_put(e, srv);
	fsesl_engine_stop(e);
	close(ep);
	close(done_pipe[0]);
	close(done_pipe[1]);
	return failures == 0 ? 0 : 1;
}
