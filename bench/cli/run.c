/*
 * run.c - one command on every server at once, and what its outcome says.
 *
 * Commands are submitted with the engine's async calls (fsesl_api_async,
 * fsesl_bgapi_job_async) into a batch, and the tool waits on an eventfd
 * the last completion writes. That wait can be interrupted (Ctrl-C in the
 * interactive mode): the tool then abandons the batch, and the batch
 * frees itself when the engine completes its last request - with the late
 * reply, the timeout, or the engine's shutdown, each exactly once. A
 * reference count (the waiter + the completions as a group) decides who
 * frees it, so neither side touches it after the other let go.
 *
 * Output goes to stdout in server order; every failure goes to stderr as
 * one sentence that says what happened, with the server's label (never
 * its password).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"

struct batch;

struct slot {
	struct batch *b;
	int err; /* 0 or the request's negative code */
	bool refusal; /* out is a command/reply's Reply-Text, not output */
	char *out;
	size_t len;
};

struct batch {
	atomic_uint refs; /* the waiter, and the completions as a group */
	atomic_size_t left; /* completions still to come */
	int efd; /* written once, by the last completion */
	size_t n;
	struct slot s[];
};

static void
batch_put(struct batch *b)
{
	size_t i;

	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	for (i = 0; i < b->n; i++)
		free(b->s[i].out);
	close(b->efd);
	free(b);
}

static void
slot_done(struct slot *sl)
{
	struct batch *b = sl->b;
	uint64_t one = 1;

	if (atomic_fetch_sub(&b->left, 1) != 1)
		return;
	/* An eventfd write of 1 cannot fail short of a bad fd. */
	(void)!write(b->efd, &one, sizeof(one));
	batch_put(b);
}

static void
slot_set(struct slot *sl, const char *p, size_t len)
{
	sl->out = malloc(len + 1);
	if (sl->out == NULL) {
		sl->err = -ENOMEM;
		return;
	}
	memcpy(sl->out, p, len);
	sl->out[len] = '\0';
	sl->len = len;
}

/* Reactor thread: copy what is needed, never block. */
static void
api_done(int status, const fsesl_reply *r, void *ud)
{
	struct slot *sl = ud;
	const char *p;
	size_t len;

	sl->err = status;
	if (status == 0 && fsesl_reply_is_api(r)) {
		p = fsesl_reply_body(r, &len);
		slot_set(sl, p, len);
	} else if (status == 0) {
		/* A refused api (a restricted user) is answered with a
		 * command/reply whose only content is its Reply-Text. */
		p = fsesl_reply_text(r);
		sl->refusal = true;
		slot_set(sl, p != NULL ? p : "", p != NULL ? strlen(p) : 0);
	}
	slot_done(sl);
}

static void
job_done(int status, const struct fsesl_event *ev, void *ud)
{
	struct slot *sl = ud;

	sl->err = status;
	if (status == 0)
		slot_set(sl, ev->body != NULL ? ev->body : "", ev->body_len);
	slot_done(sl);
}

static struct batch *
batch_submit(struct cli *c, bool bg, const char *cmd)
{
	struct batch *b = calloc(1, sizeof(*b) + c->n * sizeof(b->s[0]));
	size_t i;
	int err;

	if (b == NULL)
		return NULL;
	b->efd = eventfd(0, EFD_CLOEXEC);
	if (b->efd < 0) {
		free(b);
		return NULL;
	}
	b->n = c->n;
	atomic_init(&b->refs, 2);
	atomic_init(&b->left, c->n);
	for (i = 0; i < c->n; i++) {
		struct slot *sl = &b->s[i];

		sl->b = b;
		if (bg)
			err = fsesl_bgapi_job_async(
			    c->e, c->t[i].srv, cmd, c->job_timeout_ms, NULL, job_done, sl);
		else
			err = fsesl_api_async(c->e, c->t[i].srv, cmd, NULL, api_done, sl);
		if (err != 0) {
			/* Refused at submission: no callback will run. */
			sl->err = err;
			slot_done(sl);
		}
	}
	return b;
}

/* Waits for the batch, or for a signal on sigfd (returned; 0: done). */
static int
batch_wait(struct batch *b, int sigfd)
{
	struct pollfd pfd[2] = {
	    {.fd = b->efd, .events = POLLIN},
	    {.fd = sigfd, .events = POLLIN},
	};
	struct signalfd_siginfo si;

	for (;;) {
		if (poll(pfd, sigfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 0; /* cannot happen with valid fds; wait on the eventfd */
		}
		/* The acquire load pairs with the completions' decrements:
		 * every slot is complete once the count is seen at zero. */
		if (pfd[0].revents != 0 && atomic_load(&b->left) == 0)
			return 0;
		if (pfd[1].revents != 0 && read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			return (int)si.ssi_signo;
	}
}

/* ---- outcomes ---------------------------------------------------------- */

int
cli_exit_code(int err)
{
	switch (err) {
	case 0:
		return CLI_OK;
	case -ETIMEDOUT:
		return CLI_TIMEOUT;
	case FSESL_EAUTH:
	case FSESL_EREJECTED:
	case FSESL_ECONNTIMEOUT:
	case FSESL_ENOTCONNECTED:
	case FSESL_EDISCONNECTED:
	case FSESL_EJOBLOST:
	case FSESL_ERESOLVE:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ECONNABORTED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EADDRNOTAVAIL:
	case -EPIPE:
		return CLI_CONN;
	case FSESL_EREFUSED:
		return CLI_CMDERR;
	case FSESL_EURL:
	case FSESL_EINJECTION:
	case FSESL_EUNLOAD:
	case FSESL_ETOOBIG:
		return CLI_USAGE;
	default:
		return CLI_FAIL;
	}
}

/*
 * A command that times out before its server ever connected is a
 * connection failure, not a slow reply: scripts must be able to tell "the
 * box is down" (3) from "the box is busy" (4). The engine's stats say
 * which: no connect yet, and the last connect error if there was one.
 */
int
cli_refine_error(struct cli *c, const struct target *t, int err)
{
	fsesl_server_stats st;

	if (err != -ETIMEDOUT && err != FSESL_ENOTCONNECTED)
		return err;
	if (fsesl_server_stats_get(c->e, t->srv, &st) != 0)
		return err;
	if (st.connected_conns > 0 || st.connects > 0)
		return err;
	return st.last_error != 0 ? st.last_error : FSESL_ECONNTIMEOUT;
}

const char *
cli_describe(const struct cli *c, const struct target *t, int err, bool bg, char *buf, size_t len)
{
	switch (err) {
	case -ETIMEDOUT:
		if (bg)
			snprintf(buf, len, "no job result within %d ms (--job-timeout)",
			    c->job_timeout_ms);
		else
			snprintf(buf, len,
			    "command timed out after %d ms (--timeout, esl_cmd_timeout)",
			    c->cmd_timeout_ms);
		break;
	case FSESL_ERESOLVE:
		snprintf(buf, len, "cannot resolve host %s", t->host);
		break;
	case FSESL_EREFUSED:
		snprintf(buf, len, "%s refused by the server (-ERR)", bg ? "bgapi" : "request");
		break;
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ECONNABORTED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EADDRNOTAVAIL:
		snprintf(buf, len, "cannot connect: %s", fsesl_strerror(err));
		break;
	default:
		snprintf(buf, len, "%s", fsesl_strerror(err));
		break;
	}
	return buf;
}

static bool
body_is_error(const char *b, size_t len)
{
	return (len >= 4 && memcmp(b, "-ERR", 4) == 0) || (len >= 6 && memcmp(b, "-USAGE", 6) == 0);
}

static void
print_labelled(const char *label, const char *b, size_t len, FILE *f)
{
	while (len > 0) {
		const char *nl = memchr(b, '\n', len);
		size_t n = nl != NULL ? (size_t)(nl - b) : len;

		if (label != NULL)
			fprintf(f, "[%s] ", label);
		fwrite(b, 1, n, f);
		fputc('\n', f);
		if (nl == NULL)
			break;
		len -= n + 1;
		b = nl + 1;
	}
}

/* Prints one server's outcome; returns its exit code. */
static int
report(struct cli *c, struct target *t, struct slot *sl, bool bg)
{
	char why[512];
	int err = sl->err;

	if (err != 0) {
		err = cli_refine_error(c, t, err);
		fprintf(stderr, "%s: [%s] %s\n", cli_prog, t->label,
		    cli_describe(c, t, err, bg, why, sizeof(why)));
		return cli_exit_code(err);
	}
	if (sl->refusal && body_is_error(sl->out, sl->len)) {
		fprintf(
		    stderr, "%s: [%s] refused by the server: %s\n", cli_prog, t->label, sl->out);
		return CLI_CMDERR;
	}
	print_labelled(c->labels ? t->label : NULL, sl->out, sl->len, stdout);
	return body_is_error(sl->out, sl->len) ? CLI_CMDERR : CLI_OK;
}

int
cli_run(struct cli *c, bool bg, const char *cmd, int sigfd, int *sig)
{
	struct batch *b = batch_submit(c, bg, cmd);
	int worst = CLI_OK, rc;
	size_t i;

	*sig = 0;
	if (b == NULL) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		return CLI_FAIL;
	}
	*sig = batch_wait(b, sigfd);
	if (*sig != 0) {
		fprintf(stderr,
		    "\n%s: command cancelled; the server may still run it, "
		    "its reply will be discarded\n",
		    cli_prog);
		batch_put(b);
		return CLI_CANCELLED;
	}
	for (i = 0; i < c->n; i++) {
		rc = report(c, &c->t[i], &b->s[i], bg);
		if (rc > worst)
			worst = rc;
	}
	fflush(stdout);
	batch_put(b);
	return worst;
}
