/*
 * fsesl_cli.c - the `fsesl` command-line tool, built on the public API only.
 *
 * Four modes share one engine:
 *  - one-shot: `fsesl URL... [api|bgapi] CMD...` runs the command on every
 *    server at once (api: one fsesl_api_many() call; bgapi: a thread per
 *    server waiting for its job) and prints the replies in URL order;
 *  - interactive: no command words: a line editor (libedit) with history,
 *    every plain line run as `api` on every server, as fs_cli does;
 *  - events: `--events NAME,...` prints each event as one JSON line until
 *    SIGINT/SIGTERM (read through a signalfd, so no async-signal work);
 *  - --help/--version.
 * Several servers label each output line "[host:port] " so that the output
 * of a fleet can be grepped. The exit code is the contract scripts rely on
 * (see usage() and docs/fsesl.1): worst outcome over every server.
 * Passwords never reach stdout or stderr: labels and messages are built
 * from the parsed host and port only.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <editline/readline.h>

#include "complete.h"
#include "fsesl.h"

enum cli_exit {
	CLI_OK = 0, /* every server answered +OK / non-error output */
	CLI_CMDERR = 1, /* a server answered -ERR or -USAGE */
	CLI_USAGE = 2, /* bad arguments or URL: nothing was sent */
	CLI_CONN = 3, /* could not connect, log in, or the connection dropped */
	CLI_TIMEOUT = 4, /* no reply within the timeout */
	CLI_FAIL = 5, /* anything else: protocol error, no memory, unsupported */
};

#define CLI_DEFAULT_URL "fs://:ClueCon@127.0.0.1:8021"
#define CLI_MAX_SERVERS 256
#define CLI_LABEL_LEN 300

struct target {
	char label[CLI_LABEL_LEN]; /* "host:port" or "[v6]:port": no password */
	fsesl_server_t srv;
	/* one command's outcome, filled by the worker thread */
	pthread_t thread;
	bool threaded;
	int err; /* 0 or the call's negative code */
	char *out; /* output body (malloc'ed) */
	size_t out_len;
	int rc; /* enum cli_exit */
};

struct cli {
	fsesl_engine *e;
	struct target *t;
	size_t n;
	bool labels;
	bool bg; /* current command is bgapi */
	const char *cmd; /* current command */
	int job_timeout_ms;
	int verbose;
};

static const char *prog = "fsesl";
/* Static, so that an early usage exit leaves nothing allocated behind. */
static struct target targets[CLI_MAX_SERVERS];

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: %s [OPTIONS] [URL...] [api|bgapi] COMMAND [ARGS...]\n"
	    "       %s [OPTIONS] [URL...]                      (interactive)\n"
	    "       %s [OPTIONS] --events NAME[,NAME...] [URL...]\n"
	    "\n"
	    "Runs FreeSWITCH Event Socket commands on one or more servers.\n"
	    "URL is fs://[user]:password@host[:port] (port 8021 by default); without\n"
	    "one, $FSESL_URL or " CLI_DEFAULT_URL " is used. With several\n"
	    "URLs every output line is prefixed with \"[host:port] \".\n"
	    "Words after the URLs form the command, run as `api` unless the first\n"
	    "word is `bgapi` (which waits for and prints the job's result).\n"
	    "\n"
	    "Options:\n"
	    "  -t, --timeout MS          reply timeout per command (5000)\n"
	    "  -c, --connect-timeout MS  connect + greeting + login timeout (5000)\n"
	    "  -j, --job-timeout MS      bgapi: how long to wait for the result (60000)\n"
	    "  -e, --events LIST         print events (comma-separated names, e.g.\n"
	    "                            CHANNEL_CREATE,HEARTBEAT) as JSON lines until\n"
	    "                            interrupted\n"
	    "  -n, --count N             --events: stop after N events\n"
	    "  -l, --label               label lines even with a single server\n"
	    "  -s, --set NAME=VALUE      any engine setting (see fsesl_config_set)\n"
	    "  -v, --verbose             engine log on stderr (twice: debug)\n"
	    "  -V, --version             print the version and exit\n"
	    "  -h, --help                print this help and exit\n"
	    "\n"
	    "Interactive mode: plain lines run as api; /bgapi CMD, /help, /exit, /quit.\n"
	    "\n"
	    "Exit status (the worst over all servers):\n"
	    "  0 success   1 a server answered -ERR/-USAGE   2 usage error or bad URL\n"
	    "  3 connection, login or ACL failure, or connection lost\n"
	    "  4 timeout   5 other error\n",
	    prog, prog, prog);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", prog);
	exit(CLI_USAGE);
}

static void
log_to_stderr(int level, const char *msg, void *ud)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)ud;
	fprintf(stderr, "%s: engine %s: %s\n", prog,
	    level >= 0 && level <= FSESL_LOG_DEBUG ? names[level] : "?", msg);
}

/* ---- outcome classification -------------------------------------- */

static int
exit_code_for(int err)
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
static int
refine_error(struct cli *c, struct target *t, int err)
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

static bool
body_is_error(const char *b, size_t len)
{
	return (len >= 4 && memcmp(b, "-ERR", 4) == 0) || (len >= 6 && memcmp(b, "-USAGE", 6) == 0);
}

/* ---- running one command on every server ---------------------------- */

static void
set_output(struct target *t, const char *b, size_t len)
{
	t->out = malloc(len + 1);
	if (t->out == NULL) {
		t->err = -ENOMEM;
		return;
	}
	memcpy(t->out, b, len);
	t->out[len] = '\0';
	t->out_len = len;
}

struct job {
	struct cli *c;
	struct target *t;
};

static void target_done(struct cli *c, struct target *t, int err);

/* A bgapi job on one server (a thread each: they wait for their results). */
static void *
run_one(void *arg)
{
	struct job *j = arg;
	struct fsesl_event *ev = NULL;
	int err;

	err = fsesl_bgapi_job(j->c->e, j->t->srv, j->c->cmd, j->c->job_timeout_ms, NULL, &ev);
	if (err == 0) {
		set_output(j->t, ev->body, ev->body_len);
		fsesl_event_free(ev);
	}
	target_done(j->c, j->t, err);
	return NULL;
}

/* The api command on every server at once: one call, one wait. */
static void
run_api_everywhere(struct cli *c)
{
	fsesl_server_t *srvs = calloc(c->n, sizeof(*srvs));
	const char **cmds = calloc(c->n, sizeof(*cmds));
	fsesl_reply **reps = calloc(c->n, sizeof(*reps));
	int *sts = calloc(c->n, sizeof(*sts));
	size_t i, len;
	int err;

	if (!srvs || !cmds || !reps || !sts) {
		err = -ENOMEM;
	} else {
		for (i = 0; i < c->n; i++) {
			srvs[i] = c->t[i].srv;
			cmds[i] = c->cmd;
		}
		err = fsesl_api_many(c->e, c->n, srvs, cmds, NULL, sts, reps);
	}
	for (i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];
		int e = err ? err : sts[i];

		if (e == 0) {
			const char *b = fsesl_reply_body(reps[i], &len);

			set_output(t, b, len);
			fsesl_reply_free(reps[i]);
		}
		target_done(c, t, e);
	}
	free(srvs);
	free(cmds);
	free(reps);
	free(sts);
}

/* Records one server's outcome and its exit code. */
static void
target_done(struct cli *c, struct target *t, int err)
{
	if (err != 0)
		err = refine_error(c, t, err);
	if (t->err == 0)
		t->err = err;
	if (t->err != 0)
		t->rc = exit_code_for(t->err);
	else
		t->rc = body_is_error(t->out, t->out_len) ? CLI_CMDERR : CLI_OK;
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

/* Runs c->cmd everywhere; returns the worst exit code. */
static int
run_everywhere(struct cli *c)
{
	struct job *jobs;
	int worst = CLI_OK;
	size_t i;

	jobs = calloc(c->n, sizeof(*jobs));
	if (jobs == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return CLI_FAIL;
	}
	for (i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		t->err = 0;
		t->out = NULL;
		t->out_len = 0;
		t->threaded = false;
		jobs[i] = (struct job){c, t};
		if (!c->bg)
			continue;
		/* One server: no thread, nothing to overlap with. */
		t->threaded = c->n > 1 && pthread_create(&t->thread, NULL, run_one, &jobs[i]) == 0;
		if (!t->threaded)
			run_one(&jobs[i]);
	}
	if (!c->bg)
		run_api_everywhere(c);
	for (i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		if (t->threaded)
			pthread_join(t->thread, NULL);
		if (t->err != 0)
			fprintf(stderr, "%s: [%s] %s\n", prog, t->label, fsesl_strerror(t->err));
		else
			print_labelled(c->labels ? t->label : NULL, t->out, t->out_len, stdout);
		free(t->out);
		t->out = NULL;
		if (t->rc > worst)
			worst = t->rc;
	}
	fflush(stdout);
	free(jobs);
	return worst;
}

/* ---- interactive ---------------------------------------------------- */

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static void
interactive_help(void)
{
	printf("Plain lines run as `api` on every server; TAB completes command names.\n"
	       "  /bgapi CMD   run CMD in the background and print its result\n"
	       "  /api CMD     same as a plain line\n"
	       "  /help        this text\n"
	       "  /exit, /quit, /bye  leave (so does end of input)\n");
}

/*
 * Tab completion. The API names are asked of the first server once, at the
 * first TAB (`show api`); a server that does not list them (or is down)
 * gets the built-in list. Runs on the main thread, inside readline().
 */
static struct cli *compl_cli;
static struct cli_words compl_api;
static bool compl_loaded;
static char **compl_v;
static size_t compl_n, compl_i;

static void
compl_load(void)
{
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;
	fsesl_reply *r = NULL;

	compl_loaded = true;
	o.timeout_ms = 2000;
	if (compl_cli && compl_cli->n &&
	    fsesl_api(compl_cli->e, compl_cli->t[0].srv, "show api", &o, &r) == 0 &&
	    cli_words_from_show_api(fsesl_reply_body(r, NULL), &compl_api) > 0) {
		fsesl_reply_free(r);
		return;
	}
	fsesl_reply_free(r);
	(void)cli_words_builtin(&compl_api);
}

static void
compl_clear(void)
{
	size_t i;

	for (i = 0; i < compl_n; i++)
		free(compl_v[i]);
	free(compl_v);
	compl_v = NULL;
	compl_n = compl_i = 0;
}

static char *
compl_next(const char *text, int state)
{
	(void)text;
	if (state == 0)
		compl_i = 0;
	return compl_i < compl_n ? strdup(compl_v[compl_i++]) : NULL;
}

static char **
compl_attempt(const char *text, int start, int end)
{
	int n;

	(void)end;
	rl_attempted_completion_over = 1; /* never file names */
	if (!compl_loaded)
		compl_load();
	compl_clear();
	n = cli_complete(&compl_api, rl_line_buffer, (size_t)start, text, &compl_v);
	if (n <= 0)
		return NULL;
	compl_n = (size_t)n;
	return rl_completion_matches(text, compl_next);
}

/* Returns -1 to leave, else the exit code of the line. */
static int
interactive_line(struct cli *c, char *line)
{
	char *s = trim(line);

	if (*s == '\0')
		return CLI_OK;
	c->bg = false;
	if (*s == '/') {
		if (!strcmp(s, "/exit") || !strcmp(s, "/quit") || !strcmp(s, "/bye"))
			return -1;
		if (!strcmp(s, "/help")) {
			interactive_help();
			return CLI_OK;
		}
		if (!strncmp(s, "/bgapi ", 7)) {
			c->bg = true;
			s = trim(s + 7);
		} else if (!strncmp(s, "/api ", 5)) {
			s = trim(s + 5);
		} else {
			fprintf(stderr, "%s: unknown command %s (try /help)\n", prog, s);
			return CLI_USAGE;
		}
		if (*s == '\0') {
			fprintf(stderr, "%s: missing command (try /help)\n", prog);
			return CLI_USAGE;
		}
	}
	c->cmd = s;
	return run_everywhere(c);
}

static int
interactive(struct cli *c)
{
	char prompt[CLI_LABEL_LEN + 16];
	char hist[4096] = "";
	const char *home = getenv("HOME");
	int rc = CLI_OK, r;

	if (!isatty(STDIN_FILENO)) {
		/* A script piped in: no editor, no prompt, no history. */
		char *line = NULL;
		size_t cap = 0;

		while (getline(&line, &cap, stdin) >= 0) {
			r = interactive_line(c, line);
			if (r < 0)
				break;
			rc = r;
		}
		free(line);
		return rc;
	}

	if (c->n == 1)
		snprintf(prompt, sizeof(prompt), "fsesl@%s> ", c->t[0].label);
	else
		snprintf(prompt, sizeof(prompt), "fsesl(%zu servers)> ", c->n);
	if (getenv("FSESL_HISTORY") != NULL)
		snprintf(hist, sizeof(hist), "%s", getenv("FSESL_HISTORY"));
	else if (home != NULL)
		snprintf(hist, sizeof(hist), "%s/.fsesl_history", home);
	using_history();
	stifle_history(1000);
	compl_cli = c;
	rl_attempted_completion_function = compl_attempt;
	if (hist[0] != '\0')
		read_history(hist);
	printf("Type /help for help, /exit to leave.\n");
	for (;;) {
		char *line = readline(prompt);

		if (line == NULL) {
			putchar('\n');
			break;
		}
		if (*trim(line) != '\0')
			add_history(trim(line));
		r = interactive_line(c, line);
		free(line);
		if (r < 0)
			break;
		rc = r;
	}
	if (hist[0] != '\0')
		write_history(hist);
	compl_clear();
	cli_words_free(&compl_api);
	return rc;
}

/* ---- events --------------------------------------------------------- */

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

/* Returns 1 to go on, 0 when the count is reached. */
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
		fprintf(stderr, "%s: [%s] %llu events dropped (queue full)\n", prog, label,
		    (unsigned long long)d->count);
		break;
	case FSESL_NOTICE_DOWN:
		fprintf(stderr, "%s: [%s] connection lost\n", prog, label);
		break;
	case FSESL_NOTICE_UP:
		fprintf(
		    stderr, "%s: [%s] connected, events in the gap may be missing\n", prog, label);
		break;
	case FSESL_NOTICE_REFUSED:
		fprintf(stderr, "%s: [%s] the server refused the subscription %s\n", prog, label,
		    d->subscription ? d->subscription : "?");
		break;
	}
	return 1;
}

static int
events_mode(struct cli *c, char *list, long count, int sfd)
{
	fsesl_sub_opts so = {0};
	fsesl_subscriber *s = NULL;
	fsesl_delivery d;
	struct pollfd pfd[2];
	char *save = NULL, *name;
	int err, rc = CLI_OK;
	size_t i;

	so.format = FSESL_EVFMT_JSON;
	err = fsesl_subscriber_create(c->e, "fsesl-cli", &so, &s);
	if (err != 0) {
		fprintf(stderr, "%s: cannot subscribe: %s\n", prog, fsesl_strerror(err));
		return exit_code_for(err);
	}
	for (name = strtok_r(list, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
		name = trim(name);
		if (*name == '\0')
			continue;
		for (i = 0; i < c->n; i++) {
			err = fsesl_subscribe(s, c->t[i].srv, name);
			if (err != 0) {
				fprintf(stderr, "%s: [%s] subscribe %s: %s\n", prog, c->t[i].label,
				    name, fsesl_strerror(err));
				rc = exit_code_for(err);
				goto out;
			}
		}
	}

	pfd[0] = (struct pollfd){.fd = fsesl_subscriber_fd(s), .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
	if (pfd[0].fd < 0) {
		fprintf(stderr, "%s: no subscriber fd: %s\n", prog, fsesl_strerror(pfd[0].fd));
		rc = CLI_FAIL;
		goto out;
	}
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = CLI_FAIL;
			break;
		}
		if (pfd[1].revents != 0)
			break; /* SIGINT/SIGTERM: a normal end */
		/* Drain: the fd stays readable while anything is queued. */
		while ((err = fsesl_subscriber_next(s, &d, 0)) == 1) {
			int more = deliver(c, &d, &count);

			fsesl_delivery_release(&d);
			if (!more)
				goto out;
		}
		if (err < 0) {
			fprintf(stderr, "%s: events: %s\n", prog, fsesl_strerror(err));
			rc = exit_code_for(err);
			break;
		}
	}
out:
	fsesl_subscriber_destroy(s);
	return rc;
}

/* ---- main ----------------------------------------------------------- */

static bool
is_url(const char *s)
{
	return strncasecmp(s, "fs://", 5) == 0; /* schemes are case-insensitive */
}

/* A positive decimal, at most 86400000 (a day in ms). */
static int
parse_pos(const char *opt, const char *what, const char *v)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n <= 0 || n > 86400000)
		die_usage("%s: expected %s (1..86400000), got '%s'", opt, what, v);
	return (int)n;
}

static int
parse_ms(const char *opt, const char *v)
{
	return parse_pos(opt, "milliseconds", v);
}

/* Checks a URL and makes its label, before anything is started, so that a
 * usage error exits with nothing to clean up. */
static void
label_target(struct target *t, const char *url, size_t idx)
{
	struct fsesl_url u;
	char why[256] = "";

	/* The reason never contains the password (fsesl_url_parse's promise),
	 * and the URL itself is not echoed for the same reason. */
	if (fsesl_url_parse(url, &u, why, sizeof(why)) != 0) {
		fsesl_url_clear(&u);
		die_usage("URL #%zu: %s", idx + 1, why[0] != '\0' ? why : "malformed");
	}
	if (u.ipv6)
		snprintf(t->label, sizeof(t->label), "[%s]:%u", u.host, (unsigned)u.port);
	else
		snprintf(t->label, sizeof(t->label), "%s:%u", u.host, (unsigned)u.port);
	fsesl_url_clear(&u);
}

static int
add_target(struct cli *c, const char *url)
{
	struct target *t = &c->t[c->n];
	int err;

	err = fsesl_server_get(c->e, url, &t->srv);
	if (err != 0) {
		fprintf(stderr, "%s: [%s] %s\n", prog, t->label, fsesl_strerror(err));
		return exit_code_for(err);
	}
	c->n++;
	return CLI_OK;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"connect-timeout", required_argument, NULL, 'c'},
	    {"job-timeout", required_argument, NULL, 'j'},
	    {"events", required_argument, NULL, 'e'},
	    {"count", required_argument, NULL, 'n'},
	    {"label", no_argument, NULL, 'l'},
	    {"set", required_argument, NULL, 's'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli c = {.job_timeout_ms = 60000};
	fsesl_config cfg;
	char errbuf[256], num[32];
	char *events = NULL;
	const char *urls[CLI_MAX_SERVERS];
	size_t n_urls = 0, len, i;
	char *cmd = NULL;
	long count = 0;
	bool force_label = false;
	int opt, first, rc, sfd = -1, err;
	sigset_t sigs;

	fsesl_config_init(&cfg);
	/* '+': stop at the first non-option, so command words such as
	 * `show channels -x` are never taken for our options. */
	while ((opt = getopt_long(argc, argv, "+t:c:j:e:n:ls:vVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
		case 'c':
			snprintf(num, sizeof(num), "%d",
			    parse_ms(opt == 't' ? "--timeout" : "--connect-timeout", optarg));
			if (fsesl_config_set(&cfg,
			        opt == 't' ? "esl_cmd_timeout" : "esl_connect_timeout", num, errbuf,
			        sizeof(errbuf)) != 0)
				die_usage("%s", errbuf);
			break;
		case 'j':
			c.job_timeout_ms = parse_ms("--job-timeout", optarg);
			break;
		case 'e':
			events = optarg;
			break;
		case 'n':
			count = parse_pos("--count", "a number of events", optarg);
			break;
		case 'l':
			force_label = true;
			break;
		case 's': {
			char *eq = strchr(optarg, '=');

			if (eq == NULL || eq == optarg)
				die_usage("--set: expected NAME=VALUE");
			*eq = '\0';
			if (fsesl_config_set(&cfg, optarg, eq + 1, errbuf, sizeof(errbuf)) != 0)
				die_usage("--set %s: %s", optarg, errbuf);
			break;
		}
		case 'v':
			c.verbose++;
			break;
		case 'V':
			printf("fsesl %s (built against %d.%d.%d)\n", fsesl_version(),
			    FSESL_VERSION_MAJOR, FSESL_VERSION_MINOR, FSESL_VERSION_PATCH);
			return CLI_OK;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			fprintf(stderr, "Try '%s --help'.\n", prog);
			return CLI_USAGE;
		}
	}

	for (first = optind; first < argc && is_url(argv[first]); first++) {
		if (n_urls == CLI_MAX_SERVERS)
			die_usage("at most %d URLs", CLI_MAX_SERVERS);
		urls[n_urls++] = argv[first];
	}
	if (n_urls == 0)
		urls[n_urls++] =
		    getenv("FSESL_URL") != NULL ? getenv("FSESL_URL") : CLI_DEFAULT_URL;
	c.t = targets;
	for (i = 0; i < n_urls; i++)
		label_target(&c.t[i], urls[i], i);

	if (first < argc) {
		if (events != NULL)
			die_usage("--events takes no command");
		if (!strcmp(argv[first], "bgapi")) {
			c.bg = true;
			first++;
		} else if (!strcmp(argv[first], "api")) {
			first++;
		}
		if (first == argc)
			die_usage("%s: missing command", argv[first - 1]);
		for (len = 0, i = (size_t)first; i < (size_t)argc; i++)
			len += strlen(argv[i]) + 1;
		cmd = malloc(len);
		if (cmd == NULL)
			return CLI_FAIL;
		cmd[0] = '\0';
		for (i = (size_t)first; i < (size_t)argc; i++) {
			if (i > (size_t)first)
				strcat(cmd, " ");
			strcat(cmd, argv[i]);
		}
	}
	if (events != NULL) {
		/* Blocked before the engine starts so that its threads inherit
		 * the mask and the signals reach only the signalfd. */
		sigemptyset(&sigs);
		sigaddset(&sigs, SIGINT);
		sigaddset(&sigs, SIGTERM);
		pthread_sigmask(SIG_BLOCK, &sigs, NULL);
		sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
		if (sfd < 0) {
			perror("fsesl: signalfd");
			return CLI_FAIL;
		}
	}

	if (c.verbose > 0) {
		cfg.log_fn = log_to_stderr;
		cfg.log_level = c.verbose > 1 ? FSESL_LOG_DEBUG : FSESL_LOG_INFO;
	}
	err = fsesl_engine_start(&cfg, &c.e);
	if (err != 0) {
		fprintf(stderr, "%s: cannot start the engine: %s\n", prog, fsesl_strerror(err));
		free(cmd);
		return CLI_FAIL;
	}
	rc = CLI_OK;
	for (i = 0; i < n_urls && rc == CLI_OK; i++)
		rc = add_target(&c, urls[i]);
	c.labels = force_label || c.n > 1;

	if (rc != CLI_OK)
		; /* a server could not even be registered */
	else if (events != NULL)
		rc = events_mode(&c, events, count, sfd);
	else if (cmd != NULL) {
		c.cmd = cmd;
		rc = run_everywhere(&c);
	} else
		rc = interactive(&c);

	for (i = 0; i < c.n; i++)
		fsesl_server_put(c.e, c.t[i].srv);
	fsesl_engine_stop(c.e);
	if (sfd >= 0)
		close(sfd);
	free(cmd);
	return rc;
}
