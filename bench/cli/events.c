/*
 * events.c - the event stream: every event of the chosen names, one JSON
 * line each, until SIGINT/SIGTERM/SIGHUP (read through a signalfd, so no
 * async-signal work) or --count.
 *
 * Nothing is streamed until every server is known to be usable: a server
 * that cannot be reached, refuses the login or refuses a subscription
 * ends the tool at once with a message and an exit code, instead of a
 * stream that stays silent forever. To learn that, each server is first
 * asked a harmless command (see probe()), which waits for the connection
 * and fails with its connect or login error; then each subscription is
 * made on a live connection, where fsesl_subscribe returns the server's
 * answer (FSESL_EREFUSED for -ERR). Once streaming, a lost connection is
 * reported on stderr and the engine reconnects and resubscribes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

static void
print_event_json(const char *label, const struct fsesl_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	char *s;
	size_t i;

	if (o == NULL)
		return;
	cJSON_AddStringToObject(o, "_server", label);
	for (i = 0; i < ev->n_headers; i++) {
		const struct fsesl_header *h = &ev->headers[i];

		/* Duplicate names are legal in ESL, not in a JSON object: the
		 * first one wins, as fsesl_event_get() does. */
		if (cJSON_GetObjectItemCaseSensitive(o, h->name) != NULL)
			continue;
		cJSON_AddStringToObject(o, h->name, h->value);
	}
	if (ev->body_len > 0)
		cJSON_AddStringToObject(o, "_body", ev->body);
	s = cJSON_PrintUnformatted(o);
	if (s != NULL) {
		puts(s);
		fflush(stdout);
		cJSON_free(s);
	}
	cJSON_Delete(o);
}

static const char *
label_of(struct cli *c, fsesl_server_t srv)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->t[i].srv == srv)
			return c->t[i].label;
	return "?";
}

/* Returns 1 to go on, 0 when the count is reached, -1 when a server
 * refused a subscription at a reconnect (the stream no longer carries what
 * was asked for: say so and end, as a refusal at the start does). */
static int
deliver(struct cli *c, fsesl_delivery *d, long *left)
{
	const char *label = label_of(c, d->server);

	switch (d->kind) {
	case FSESL_NOTICE_EVENT:
		print_event_json(label, d->event);
		if (*left > 0 && --*left == 0)
			return 0;
		break;
	case FSESL_NOTICE_DROPPED:
		fprintf(stderr, "%s: [%s] %llu events dropped (queue full)\n", cli_prog, label,
		    (unsigned long long)d->count);
		break;
	case FSESL_NOTICE_DOWN:
		fprintf(stderr, "%s: [%s] connection lost\n", cli_prog, label);
		break;
	case FSESL_NOTICE_UP:
		fprintf(stderr, "%s: [%s] connected, events in the gap may be missing\n", cli_prog,
		    label);
		break;
	case FSESL_NOTICE_REFUSED:
		fprintf(stderr, "%s: [%s] the server refused the subscription %s\n", cli_prog,
		    label, d->subscription ? d->subscription : "?");
		return -1;
	}
	return 1;
}

/*
 * Waits for t's connection: any command does (the engine queues it until
 * the connection is up, and fails it with the connect or login error).
 * `nolinger` is the one chosen because it has no effect at all on an
 * inbound connection (FreeSWITCH answers "-ERR not controlling a
 * session"), unlike an `api` (which runs, and fires an API event), and it
 * is not subject to a restricted user's api/event lists.
 */
static int
probe(struct cli *c, const struct target *t)
{
	struct fsesl_cmd cmd = {.line = "nolinger"};
	fsesl_reply *r = NULL;
	int err;

	err = fsesl_command(c->e, t->srv, &cmd, NULL, &r);
	fsesl_reply_free(r);
	return err != 0 ? cli_refine_error(c, t, err) : 0;
}

static int
subscribe(struct cli *c, fsesl_subscriber *s, const struct target *t, const char *name)
{
	char why[512];
	int err = fsesl_subscribe(s, t->srv, name);

	if (err == FSESL_EREFUSED)
		fprintf(stderr, "%s: [%s] the server refused the subscription to %s\n", cli_prog,
		    t->label, name);
	else if (err != 0)
		fprintf(stderr, "%s: [%s] cannot subscribe to %s: %s\n", cli_prog, t->label, name,
		    cli_describe(c, t, cli_refine_error(c, t, err), false, why, sizeof(why)));
	return err != 0 ? cli_exit_code(cli_refine_error(c, t, err)) : CLI_OK;
}

/* Every server reachable and every subscription accepted, or the worst
 * exit code after a message for each failure. */
static int
start(struct cli *c, fsesl_subscriber *s, char *extra)
{
	char why[512], *save = NULL, *name;
	int worst = CLI_OK, rc, err;
	size_t i, k;

	for (i = 0; i < c->n; i++) {
		err = probe(c, &c->t[i]);
		if (err != 0) {
			fprintf(stderr, "%s: [%s] %s\n", cli_prog, c->t[i].label,
			    cli_describe(c, &c->t[i], err, false, why, sizeof(why)));
			rc = cli_exit_code(err);
			worst = rc > worst ? rc : worst;
		}
	}
	if (worst != CLI_OK)
		return worst;
	for (name = extra != NULL ? strtok_r(extra, ",", &save) : NULL; name != NULL;
	     name = strtok_r(NULL, ",", &save)) {
		while (*name == ' ' || *name == '\t')
			name++;
		for (k = strlen(name); k > 0 && (name[k - 1] == ' ' || name[k - 1] == '\t'); k--)
			name[k - 1] = '\0';
		if (*name == '\0')
			continue;
		for (i = 0; i < c->n; i++) {
			rc = subscribe(c, s, &c->t[i], name);
			worst = rc > worst ? rc : worst;
		}
	}
	for (i = 0; i < c->n; i++) {
		for (k = 0; k < c->t[i].n_events; k++) {
			rc = subscribe(c, s, &c->t[i], c->t[i].events[k]);
			worst = rc > worst ? rc : worst;
		}
	}
	return worst;
}

int
cli_events(struct cli *c, char *extra, long count, int sigfd)
{
	fsesl_sub_opts so = {0};
	fsesl_subscriber *s = NULL;
	fsesl_delivery d;
	struct pollfd pfd[2];
	int err, rc;

	so.format = FSESL_EVFMT_JSON;
	err = fsesl_subscriber_create(c->e, "fsesl-cli", &so, &s);
	if (err != 0) {
		fprintf(stderr, "%s: cannot subscribe: %s\n", cli_prog, fsesl_strerror(err));
		return cli_exit_code(err);
	}
	rc = start(c, s, extra);
	if (rc != CLI_OK)
		goto out;

	pfd[0] = (struct pollfd){.fd = fsesl_subscriber_fd(s), .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
	if (pfd[0].fd < 0) {
		fprintf(stderr, "%s: no subscriber fd: %s\n", cli_prog, fsesl_strerror(pfd[0].fd));
		rc = CLI_FAIL;
		goto out;
	}
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll: %s\n", cli_prog, strerror(errno));
			rc = CLI_FAIL;
			break;
		}
		if (pfd[1].revents != 0)
			break; /* SIGINT/SIGTERM/SIGHUP: a normal end */
		/* Drain: the fd stays readable while anything is queued. */
		while ((err = fsesl_subscriber_next(s, &d, 0)) == 1) {
			int more = deliver(c, &d, &count);

			fsesl_delivery_release(&d);
			if (more < 0)
				rc = CLI_CMDERR;
			if (more <= 0)
				goto out;
		}
		if (err < 0) {
			fprintf(stderr, "%s: events: %s\n", cli_prog, fsesl_strerror(err));
			rc = cli_exit_code(err);
			break;
		}
	}
out:
	fsesl_subscriber_destroy(s);
	return rc;
}
