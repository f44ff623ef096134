/*
 * sim_exec.c - one command packet, run in parse_command's order
 * (docs/protocol.md §5.1): login (auth, userauth), exit, the unload trap
 * (§10.2), then the command table. Also the recording of command lines.
 */
#include "sim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct fsesl_sim_user *
sim_user_find(struct fsesl_sim *s, const char *user)
{
	for (size_t i = 0; i < s->n_users; i++)
		if (!strcasecmp(s->users[i].user, user))
			return &s->users[i];
	return NULL;
}

static void
sim_auth_failed(struct sim_conn *c)
{
	c->s->c.auth_failed++;
	sim_reply(c, "-ERR invalid");
	sim_goodbye(c, SIM_NOTICE_BYE);
}

static void
sim_cmd_userauth(struct sim_conn *c, char *line)
{
	char *spec = line + 9;
	char user[512], *pass;
	/* user@domain:pass, or user:pass@domain */
	char *colon = strchr(spec, ':');

	if (!colon) {
		sim_auth_failed(c);
		return;
	}
	char *at = strchr(spec, '@');
	if (at && at < colon) {
		snprintf(user, sizeof(user), "%.*s", (int)(colon - spec), spec);
		pass = colon + 1;
	} else if (at) {
		snprintf(user, sizeof(user), "%.*s%s", (int)(colon - spec), spec, at);
		*at = '\0';
		pass = colon + 1;
	} else {
		sim_auth_failed(c);
		return;
	}
	const struct fsesl_sim_user *u = sim_user_find(c->s, user);
	if (!u || !u->password || strcmp(u->password, pass)) {
		sim_auth_failed(c);
		return;
	}
	c->authed = true;
	c->s->c.auth_ok++;
	if (u->allowed_events && strcasecmp(u->allowed_events, "all"))
		c->allowed_events = strdup(u->allowed_events);
	if (u->allowed_api && strcasecmp(u->allowed_api, "all"))
		c->allowed_api = strdup(u->allowed_api);
	c->allow_log = u->allow_log;
	char buf[1024];
	int n = snprintf(buf, sizeof(buf),
	    "Content-Type: command/reply\nReply-Text: +OK accepted\nAllowed-Events: %s\n"
	    "Allowed-API: %s\nAllowed-LOG: %s\n\n",
	    u->allowed_events ? u->allowed_events : "all", u->allowed_api ? u->allowed_api : "all",
	    u->allow_log ? "true" : "false");
	if (n > 0)
		sim_emit_reply(c, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
sim_record(struct fsesl_sim *s, const char *line)
{
	if (s->n_rec == s->cap_rec) {
		size_t nc = s->cap_rec ? s->cap_rec * 2 : 64;
		char **n = realloc(s->rec, nc * sizeof(*n));
		if (!n)
			return;
		s->rec = n;
		s->cap_rec = nc;
	}
	s->rec[s->n_rec] = strdup(line);
	if (s->rec[s->n_rec])
		s->n_rec++;
}

/* `word` is lower case. Only offsets that start with its first letter
 * (either case) pay for a comparison: a 4 KB command used to cost ~48 us
 * of strncasecmp calls, one per byte. */
static bool
sim_ci_has(const char *s, size_t n, const char *word)
{
	size_t wl = strlen(word);
	char lo = word[0], up = (char)(lo - 'a' + 'A');

	for (size_t i = 0; i + wl <= n; i++)
		if ((s[i] == lo || s[i] == up) && !strncasecmp(s + i, word, wl))
			return true;
	return false;
}

/* 0, 'u' (unload) or 'r' (reload): the words anywhere in the header block,
 * any case, turn any command into `api bgapi unload|reload
 * mod_event_socket` (docs/protocol.md §10.2). */
static int
sim_trap_kind(const struct fsesl_client_packet *pkt)
{
	bool mod = sim_ci_has(pkt->line, pkt->line_len, "mod_event_socket");
	bool un = false, re = false;

	for (size_t i = 0; i < pkt->n_headers && !mod; i++)
		mod = sim_ci_has(
		          pkt->headers[i].name, pkt->headers[i].name_len, "mod_event_socket") ||
		      sim_ci_has(
		          pkt->headers[i].value, pkt->headers[i].value_len, "mod_event_socket");
	if (!mod)
		return 0;
	un = sim_ci_has(pkt->line, pkt->line_len, "unload");
	re = sim_ci_has(pkt->line, pkt->line_len, "reload");
	for (size_t i = 0; i < pkt->n_headers; i++) {
		const struct fsesl_header *h = &pkt->headers[i];
		un = un || sim_ci_has(h->name, h->name_len, "unload") ||
		     sim_ci_has(h->value, h->value_len, "unload");
		re = re || sim_ci_has(h->name, h->name_len, "reload") ||
		     sim_ci_has(h->value, h->value_len, "reload");
	}
	return un ? 'u' : re ? 'r' : 0;
}

/* The module goes away: every connection gets the shutdown notice; after
 * an unload the port refuses connections until fsesl_sim_clear_faults(). */
static void
sim_spring_trap(struct sim_conn *c, int kind)
{
	struct fsesl_sim *s = c->s;
	char uuid[37], body[64];

	s->c.unload_traps++;
	sim_uuid(uuid);
	int n = snprintf(body, sizeof(body), "+OK Job-UUID: %s\n", uuid);
	sim_api_response(c, body, (size_t)n);
	for (struct sim_conn *x = s->conns; x; x = x->next)
		if (!x->closing && !x->hard_close)
			sim_goodbye(x, SIM_NOTICE_SHUTDOWN);
	if (kind == 'u') {
		sim_unlisten(s);
		s->refused = true;
	}
}

/* Runs one command packet (docs/protocol.md §5; parse_command's order). */
void
sim_exec(struct sim_conn *c, const struct fsesl_client_packet *pkt)
{
	struct fsesl_sim *s = c->s;
	char stack[1024];
	char *line = pkt->line_len < sizeof(stack) ? stack : malloc(pkt->line_len + 1);

	if (!line) {
		c->hard_close = true;
		return;
	}
	memcpy(line, pkt->line, pkt->line_len);
	line[pkt->line_len] = '\0';
	s->c.commands++;
	if (s->recording)
		sim_record(s, line);

	bool first = !c->first_cmd_seen;
	c->first_cmd_seen = true;
	c->auth_deadline = 0; /* only the first command is waited for (§4.4) */

	/* The replacement is an api command, so it needs auth like any other. */
	int trap = c->authed ? sim_trap_kind(pkt) : 0;
	if (trap) {
		sim_spring_trap(c, trap);
		goto out;
	}

	if (sim_prefix(line, "exit") || sim_prefix(line, "...")) {
		sim_reply(c, "+OK bye");
		sim_goodbye(c, SIM_NOTICE_BYE);
		goto out;
	}
	if (!c->authed) {
		(void)first;
		if (sim_prefix(line, "auth ")) {
			if (strcmp(line + 5, s->password)) {
				sim_auth_failed(c);
			} else {
				c->authed = true;
				c->allow_log = true;
				s->c.auth_ok++;
				sim_reply(c, "+OK accepted");
			}
		} else if (sim_prefix(line, "userauth ")) {
			sim_cmd_userauth(c, line);
		} else {
			sim_reply(c, "-ERR command not found");
		}
		goto out;
	}

	if (sim_prefix(line, "filter "))
		sim_cmd_filter(c, line);
	else if (sim_prefix(line, "sendevent"))
		sim_cmd_sendevent(c, line, pkt);
	else if (sim_prefix(line, "api "))
		sim_cmd_api(c, line);
	else if (sim_prefix(line, "bgapi "))
		sim_cmd_bgapi(c, line, pkt);
	else if (sim_prefix(line, "nolog"))
		sim_cmd_nolog(c);
	else if (sim_prefix(line, "log"))
		sim_cmd_log(c, line);
	else if (sim_prefix(line, "nolinger") || sim_prefix(line, "linger"))
		sim_reply(c, "-ERR not controlling a session");
	else if (sim_prefix(line, "divert_events"))
		sim_reply(c, "-ERR not controlling a session.");
	else if (sim_prefix(line, "sendmsg"))
		sim_cmd_sendmsg(c, line, pkt);
	else if (sim_prefix(line, "myevents "))
		sim_cmd_myevents(c, line);
	else if (sim_prefix(line, "nixevent"))
		sim_cmd_nixevent(c, line);
	else if (sim_prefix(line, "noevents"))
		sim_cmd_noevents(c);
	else if (sim_prefix(line, "event"))
		sim_cmd_event(c, line);
	else
		sim_reply(c, "-ERR command not found");
out:
	if (line != stack)
		free(line);
}
