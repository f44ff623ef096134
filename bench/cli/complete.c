/*
 * complete.c - tab completion for the fsesl tool (see complete.h).
 */
#include "complete.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Most used from fs_cli (mod_commands, mod_sofia, mod_conference, ...). */
static const char *const builtin_api[] = {"bg_system", "callcenter_config", "conference",
    "console_complete", "create_uuid", "db", "domain_exists", "echo", "eval", "expand", "fifo",
    "fsctl", "getenv", "global_getvar", "global_setvar", "group_call", "hash", "help", "hostname",
    "hupall", "interface_ip", "list_users", "load", "luarun", "md5", "module_exists", "msleep",
    "nat_map", "originate", "regex", "reload", "reloadacl", "reloadxml", "sched_api", "sched_del",
    "show", "sofia", "sofia_contact", "status", "strepoch", "strftime", "switchname", "system",
    "unsched_api", "uptime", "user_data", "user_exists", "uuid_answer", "uuid_break", "uuid_bridge",
    "uuid_broadcast", "uuid_buglist", "uuid_chat", "uuid_deflect", "uuid_displace", "uuid_dump",
    "uuid_exists", "uuid_flush_dtmf", "uuid_getvar", "uuid_hold", "uuid_kill", "uuid_media",
    "uuid_park", "uuid_pre_answer", "uuid_record", "uuid_send_dtmf", "uuid_setvar",
    "uuid_setvar_multi", "uuid_transfer", "version", "xml_locate"};

static const char *const slash_cmds[] = {"/api", "/bgapi", "/bye", "/exit", "/help", "/quit"};

/* The second word of a few commands. */
static const char *const show_args[] = {"aliases", "api", "application", "bridged_calls", "calls",
    "channels", "chat", "codec", "complete", "detailed_bridged_calls", "detailed_calls", "dialplan",
    "endpoint", "file", "interface_types", "interfaces", "limits", "management", "modules",
    "nat_map", "registrations", "say", "status", "tasks", "timer", NULL};
static const char *const sofia_args[] = {"flush_inbound_reg", "gateway", "global", "help",
    "jsonstatus", "loglevel", "profile", "recover", "status", "tracelevel", "xmlstatus", NULL};
static const char *const fsctl_args[] = {"debug_level", "flush_db_handles", "hupall", "loglevel",
    "max_sessions", "min_idle_cpu", "pause", "resume", "shutdown", "sps", "sync_clock",
    "verbose_events", NULL};
static const struct {
	const char *cmd;
	const char *const *args;
} second_words[] = {{"show", show_args}, {"sofia", sofia_args}, {"fsctl", fsctl_args}};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
cli_words_free(struct cli_words *w)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; i < w->n; i++)
		free(w->v[i]);
	free(w->v);
	w->v = NULL;
	w->n = 0;
}

/* Sorts and drops duplicates in place. */
static void
words_unique(struct cli_words *w)
{
	size_t i, k = 0;

	if (w->n == 0)
		return;
	qsort(w->v, w->n, sizeof(*w->v), cmp_str);
	for (i = 1; i < w->n; i++) {
		if (strcmp(w->v[i], w->v[k]) == 0)
			free(w->v[i]);
		else
			w->v[++k] = w->v[i];
	}
	w->n = k + 1;
}

static int
words_add(struct cli_words *w, size_t *cap, const char *s, size_t len)
{
	char *dup;

	if (w->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		char **v = realloc(w->v, ncap * sizeof(*v));

		if (!v)
			return -1;
		w->v = v;
		*cap = ncap;
	}
	dup = strndup(s, len);
	if (!dup)
		return -1;
	w->v[w->n++] = dup;
	return 0;
}

/* An API name: what FreeSWITCH registers (letters, digits, _ . -). */
static bool
api_name(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 64)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

int
cli_words_from_show_api(const char *body, struct cli_words *out)
{
	static const char header[] = "name,description,syntax,ikey";
	const char *p = body, *nl, *comma;
	size_t cap = 0, len;
	bool seen_header = false;

	out->v = NULL;
	out->n = 0;
	if (!body)
		return 0;
	for (; *p; p = *nl ? nl + 1 : nl) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		if (!seen_header) {
			/* Anything before the header (a -USAGE, -ERR): not a listing. */
			if (len == sizeof(header) - 1 && strncmp(p, header, len) == 0) {
				seen_header = true;
				continue;
			}
			if (len == 0)
				continue;
			break;
		}
		comma = memchr(p, ',', len);
		if (!comma || !api_name(p, (size_t)(comma - p)))
			continue; /* the blank line, "N total." */
		if (words_add(out, &cap, p, (size_t)(comma - p)) != 0) {
			cli_words_free(out);
			return -1;
		}
	}
	words_unique(out);
	return (int)out->n;
}

int
cli_words_builtin(struct cli_words *out)
{
	size_t cap = 0, i;

	out->v = NULL;
	out->n = 0;
	for (i = 0; i < sizeof(builtin_api) / sizeof(builtin_api[0]); i++) {
		if (words_add(out, &cap, builtin_api[i], strlen(builtin_api[i])) != 0) {
			cli_words_free(out);
			return -1;
		}
	}
	words_unique(out);
	return (int)out->n;
}

/* Appends the words of v[0..n) (or up to NULL if n is SIZE_MAX) that start
 * with prefix. */
static int
add_matching(struct cli_words *res, size_t *cap, const char *const *v, size_t n, const char *prefix)
{
	size_t i, plen = strlen(prefix);

	for (i = 0; i < n && v[i]; i++)
		if (strncmp(v[i], prefix, plen) == 0 &&
		    words_add(res, cap, v[i], strlen(v[i])) != 0)
			return -1;
	return 0;
}

int
cli_complete(
    const struct cli_words *api, const char *line, size_t start, const char *word, char ***out)
{
	struct cli_words res = {NULL, 0};
	const char *tok[3];
	size_t toklen[3], ntok = 0, cap = 0, i, first = 0;
	const char *p = line, *end = line + start;
	int rc = 0;

	*out = NULL;
	/* The words before the one being completed (at most 3 matter). */
	while (p < end) {
		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end)
			break;
		if (ntok < 3) {
			tok[ntok] = p;
			toklen[ntok] = 0;
		}
		while (p < end && !isspace((unsigned char)*p))
			p++;
		if (ntok < 3)
			toklen[ntok] = (size_t)(p - tok[ntok]);
		ntok++;
	}
	/* "/api CMD" and "/bgapi CMD" complete like a plain "CMD". */
	if (ntok > 0 && ((toklen[0] == 4 && strncmp(tok[0], "/api", 4) == 0) ||
	                    (toklen[0] == 6 && strncmp(tok[0], "/bgapi", 6) == 0)))
		first = 1;
	if (ntok == 0) {
		if (word[0] == '/')
			rc = add_matching(&res, &cap, slash_cmds,
			    sizeof(slash_cmds) / sizeof(slash_cmds[0]), word);
		else if (api)
			rc = add_matching(&res, &cap, (const char *const *)api->v, api->n, word);
	} else if (ntok == first) {
		if (api)
			rc = add_matching(&res, &cap, (const char *const *)api->v, api->n, word);
	} else if (ntok == first + 1) {
		for (i = 0; i < sizeof(second_words) / sizeof(second_words[0]); i++)
			if (toklen[first] == strlen(second_words[i].cmd) &&
			    strncasecmp(tok[first], second_words[i].cmd, toklen[first]) == 0)
				rc = add_matching(&res, &cap, second_words[i].args, SIZE_MAX, word);
	}
	if (rc != 0) {
		cli_words_free(&res);
		return -1;
	}
	words_unique(&res);
	*out = res.v;
	return (int)res.n;
}
