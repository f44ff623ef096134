/*
 * fsesl_cli.c - the `fsesl` command-line tool, built on the public API only.
 *
 * Three modes share one engine:
 *  - one-shot: `fsesl URL... [api|bgapi] CMD...` runs the command on every
 *    server at once (run.c) and prints the replies in URL order;
 *  - events: `--events NAME,...`, or URLs that carry their own event list
 *    (fs://...?HEARTBEAT,CHANNEL_CREATE) and no command: one JSON line per
 *    event (events.c);
 *  - interactive: no command words and no events: a line editor with
 *    history (interactive.c);
 *  - and --help/--version.
 * This file reads the options and the URLs and picks the mode. Every check
 * on the arguments is made before the engine starts, so a usage error
 * (exit 2) has sent nothing anywhere. Passwords never reach stdout or
 * stderr: labels and messages are built from the parsed host and port only.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"

#define CLI_DEFAULT_URL "fs://:ClueCon@127.0.0.1:8021"
#define CLI_MAX_SERVERS 256

const char *const cli_prog = "fsesl";
/* Static, so that an early usage exit leaves nothing allocated behind. */
static struct target targets[CLI_MAX_SERVERS];

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: %s [OPTIONS] [URL...] [api|bgapi] COMMAND [ARGS...]\n"
	    "       %s [OPTIONS] [URL...]                      (interactive)\n"
	    "       %s [OPTIONS] --events NAME[,NAME...] [URL...]\n"
	    "       %s [OPTIONS] URL?NAME[,NAME...]...             (events)\n"
	    "\n"
	    "Runs FreeSWITCH Event Socket commands on one or more servers.\n"
	    "URL is fs://[user]:password@host[:port][?EVENTS] (port 8021 by default);\n"
	    "without one, $FSESL_URL or " CLI_DEFAULT_URL " is used. With\n"
	    "several URLs every output line is prefixed with \"[host:port] \".\n"
	    "Words after the URLs form the command, run as `api` unless the first\n"
	    "word is `bgapi` (which waits for and prints the job's result). A word\n"
	    "that looks like a mistyped URL (fs:/..., http://..., pw@host:port) where\n"
	    "the command starts is an error, and nothing is sent.\n"
	    "A URL's ?EVENTS list streams those events (as --events) when no command\n"
	    "is given; with a command it is an error.\n"
	    "\n"
	    "Options:\n"
	    "  -t, --timeout MS          reply timeout per command (5000)\n"
	    "  -c, --connect-timeout MS  connect + greeting + login timeout (5000)\n"
	    "  -j, --job-timeout MS      bgapi: how long to wait for the result (60000)\n"
	    "  -e, --events LIST         print events (comma-separated names, e.g.\n"
	    "                            CHANNEL_CREATE,HEARTBEAT) as JSON lines until\n"
	    "                            interrupted\n"
	    "  -n, --count N             events: stop after N events\n"
	    "  -l, --label               label lines even with a single server\n"
	    "  -s, --set NAME=VALUE      any engine setting (see fsesl_config_set)\n"
	    "  -v, --verbose             engine log on stderr (twice: debug)\n"
	    "  -V, --version             print the version and exit\n"
	    "  -h, --help                print this help and exit\n"
	    "\n"
	    "Interactive mode: plain lines (or `api CMD`) run as api; `bgapi CMD`;\n"
	    "/help, /exit. Ctrl-C drops the line or stops waiting for a command.\n"
	    "\n"
	    "Exit status (the worst over all servers); every failure is also\n"
	    "described on stderr:\n"
	    "  0 success   1 a server answered -ERR/-USAGE or refused (permission,\n"
	    "  subscription)   2 usage error or bad URL: nothing was sent\n"
	    "  3 cannot resolve, connect or log in (ACL, password), or connection lost\n"
	    "  4 timeout   5 other error   130 interactive: last command cancelled\n",
	    cli_prog, cli_prog, cli_prog, cli_prog);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", cli_prog);
	exit(CLI_USAGE);
}

static void
log_to_stderr(int level, const char *msg, void *ud)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)ud;
	fprintf(stderr, "%s: engine %s: %s\n", cli_prog,
	    level >= 0 && level <= FSESL_LOG_DEBUG ? names[level] : "?", msg);
}

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

/* Checks a URL and keeps its label, host and event list, before anything
 * is started, so that a usage error exits with nothing to clean up. */
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
	snprintf(t->host, sizeof(t->host), "%s", u.host);
	if (u.n_events > 0) {
		t->events = calloc(u.n_events, sizeof(t->events[0]));
		if (t->events == NULL) {
			fsesl_url_clear(&u);
			fprintf(stderr, "%s: out of memory\n", cli_prog);
			exit(CLI_FAIL);
		}
		memcpy(t->events, u.events, u.n_events * sizeof(t->events[0]));
		t->n_events = u.n_events;
	}
	fsesl_url_clear(&u);
}

/*
 * Registers the server from its parsed parts, without the event list: the
 * tool subscribes to those events itself (events.c), so what the engine
 * does with a URL's list is of no concern here.
 */
static int
add_target(struct cli *c, const char *url)
{
	struct target *t = &c->t[c->n];
	struct fsesl_url u;
	char why[256];
	int err;

	if (fsesl_url_parse(url, &u, NULL, 0) != 0)
		err = FSESL_EURL; /* parsed once already: cannot happen */
	else
		err = fsesl_server_get_by(
		    c->e, u.host, u.port, u.user[0] ? u.user : NULL, u.password, &t->srv);
	fsesl_url_clear(&u);
	if (err != 0) {
		fprintf(stderr, "%s: [%s] %s\n", cli_prog, t->label,
		    cli_describe(c, t, err, false, why, sizeof(why)));
		return cli_exit_code(err);
	}
	c->n++;
	return CLI_OK;
}

/* The command words joined by spaces (malloc'ed), its verb skipped. */
static char *
join_command(char **words, int n, bool *bg)
{
	size_t len = 1;
	char *cmd, *p;
	const char *rest;
	int i;

	for (i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	cmd = malloc(len);
	if (cmd == NULL) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		exit(CLI_FAIL);
	}
	for (p = cmd, i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i > 0 ? " " : "", words[i]);
	*p = '\0';
	rest = cli_skip_verb(cmd, bg);
	memmove(cmd, rest, strlen(rest) + 1);
	return cmd;
}

/* SIGINT/SIGTERM/SIGHUP, blocked in every thread (set before the engine
 * starts its threads, which inherit the mask) and read from a signalfd. */
static int
signals_to_fd(void)
{
	sigset_t sigs;
	int fd;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (fd < 0) {
		perror("fsesl: signalfd");
		exit(CLI_FAIL);
	}
	return fd;
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
	char *events = NULL, *cmd = NULL;
	const char *urls[CLI_MAX_SERVERS], *why;
	size_t n_urls = 0, i, url_events = 0;
	long count = 0;
	bool force_label = false, bg = false;
	int opt, first, rc, sig, sfd = -1, err, verbose = 0;

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
			verbose++;
			break;
		case 'V':
			printf("fsesl %s (built against %d.%d.%d)\n", fsesl_version(),
			    FSESL_VERSION_MAJOR, FSESL_VERSION_MINOR, FSESL_VERSION_PATCH);
			return CLI_OK;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			fprintf(stderr, "Try '%s --help'.\n", cli_prog);
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
	for (i = 0; i < n_urls; i++) {
		label_target(&c.t[i], urls[i], i);
		if (c.t[i].n_events > 0 && url_events == 0)
			url_events = i + 1;
	}

	if (first < argc) {
		if (events != NULL)
			die_usage("--events takes no command");
		if (url_events != 0)
			die_usage("URL #%zu has an event list (?EVENTS), which streams events and "
			          "takes no command: drop the list, or the command",
			    url_events);
		cmd = join_command(argv + first, argc - first, &bg);
		if (*cmd == '\0')
			die_usage("%s: missing command", bg ? "bgapi" : "api");
		why = cli_url_lookalike(cmd);
		if (why != NULL)
			die_usage("the command looks like a server URL, so nothing was sent: %s "
			          "(URLs: fs://[user]:password@host[:port], before the command)",
			    why);
	}
	if (cmd == NULL && (events != NULL || url_events != 0 || isatty(STDIN_FILENO)))
		sfd = signals_to_fd();

	if (verbose > 0) {
		cfg.log_fn = log_to_stderr;
		cfg.log_level = verbose > 1 ? FSESL_LOG_DEBUG : FSESL_LOG_INFO;
	}
	c.cmd_timeout_ms = (int)cfg.esl_cmd_timeout;
	err = fsesl_engine_start(&cfg, &c.e);
	if (err != 0) {
		fprintf(stderr, "%s: cannot start the engine: %s\n", cli_prog, fsesl_strerror(err));
		free(cmd);
		return CLI_FAIL;
	}
	rc = CLI_OK;
	for (i = 0; i < n_urls && rc == CLI_OK; i++)
		rc = add_target(&c, urls[i]);
	c.labels = force_label || c.n > 1;

	if (rc != CLI_OK)
		; /* a server could not even be registered */
	else if (cmd != NULL)
		rc = cli_run(&c, bg, cmd, -1, &sig);
	else if (events != NULL || url_events != 0)
		rc = cli_events(&c, events, count, sfd);
	else
		rc = cli_interactive(&c, sfd);

	for (i = 0; i < c.n; i++)
		fsesl_server_put(c.e, c.t[i].srv);
	fsesl_engine_stop(c.e);
	for (i = 0; i < n_urls; i++)
		free(c.t[i].events);
	if (sfd >= 0)
		close(sfd);
	free(cmd);
	return rc;
}
