/*
 * sim_api.c - the `api` and `bgapi` commands: the built-in api commands
 * (status, echo, originate, ...), the channel table they act on, and bgapi
 * jobs with their BACKGROUND_JOB events (docs/protocol.md §5.2, §6).
 */
#include "sim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uuid/uuid.h>

static void
sim_chan_event(struct fsesl_sim *s, int type, const struct sim_chan *ch, const char *state,
    const char *callstate, int state_no, const char *answer)
{
	if (!sim_anyone_wants(s, type))
		return;
	struct sim_event *ev =
	    sim_event_std(s, type, NULL, "switch_channel.c", "switch_channel_perform_event", 4000);
	if (!ev)
		return;
	sim_event_add(ev, "Channel-State", state);
	sim_event_add(ev, "Channel-Call-State", callstate);
	sim_event_addf(ev, "Channel-State-Number", "%d", state_no);
	sim_event_add(ev, "Channel-Name", ch->name);
	sim_event_add(ev, "Unique-ID", ch->uuid);
	sim_event_add(ev, "Call-Direction", "outbound");
	sim_event_add(ev, "Presence-Call-Direction", "outbound");
	sim_event_add(ev, "Answer-State", answer);
	sim_event_add(ev, "Caller-Direction", "outbound");
	sim_event_add(ev, "Caller-Destination-Number", ch->dest);
	sim_event_add(ev, "Caller-Unique-ID", ch->uuid);
	sim_event_add(ev, "Caller-Channel-Name", ch->name);
	sim_event_addf(
	    ev, "Caller-Channel-Created-Time", "%llu", (unsigned long long)ch->created_us);
	if (type == EV_CHANNEL_HANGUP || type == EV_CHANNEL_HANGUP_COMPLETE ||
	    type == EV_CHANNEL_DESTROY)
		sim_event_add(ev, "Hangup-Cause", "NORMAL_CLEARING");
	sim_dispatch(s, ev);
}

static void sim_api_split(char *buf, char **cmd, char **arg);

/* Output of an api command, built into *out; sets *msleep_ms for msleep. */
static void
sim_api_run(struct fsesl_sim *s, const char *cmd, const char *arg, struct sim_buf *out,
    long *msleep_ms, bool bg)
{
	if (!strcasecmp(cmd, "echo") || !strcasecmp(cmd, "eval")) {
		sim_buf_add(out, arg, strlen(arg));
	} else if (!strcasecmp(cmd, "version")) {
		sim_buf_add(out, SIM_VERSION_TEXT, sizeof(SIM_VERSION_TEXT) - 1);
	} else if (!strcasecmp(cmd, "hostname")) {
		sim_buf_add(out, s->hostname, strlen(s->hostname));
	} else if (!strcasecmp(cmd, "uptime")) {
		sim_buf_printf(
		    out, "%llu\n", (unsigned long long)((sim_wall_us() - s->start_us) / 1000000u));
	} else if (!strcasecmp(cmd, "status")) {
		char up[256];
		unsigned int n = sim_session_count(s);
		sim_uptime_text(s, up, sizeof(up), NULL);
		sim_buf_printf(out,
		    "UP %s\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n"
		    "%llu session(s) since startup\n%u session(s) - peak %u, last 5min %u \n"
		    "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
		    "%u session(s) max\nmin idle cpu 0.00/%.2f\n"
		    "Current Stack Size/Max 240K/8192K\n",
		    up, (unsigned long long)s->sessions_total, n, n, n,
		    s->load_set ? s->load.max_sessions : s->cfg.max_sessions,
		    s->load_set ? s->load.idle_cpu : 99.0);
	} else if (!strcasecmp(cmd, "msleep")) {
		*msleep_ms = atol(arg);
		if (*msleep_ms < 0)
			*msleep_ms = 0;
		sim_buf_add(out, "+OK", 3);
	} else if (!strcasecmp(cmd, "show") && !strcasecmp(arg, "api")) {
		/* mod_commands' listing (SELECT name, description, syntax, ikey
		 * FROM interfaces WHERE type = 'api' ORDER BY name), for the
		 * commands this simulator runs. */
		static const char *const rows[][3] = {
		    {"echo", "Echo", "<data>"},
		    {"eval", "eval (noop)", "[uuid:<uuid> ]<expression>"},
		    {"expand", "Execute an api with variable expansion",
		        "[uuid:<uuid> ]<cmd> <args>"},
		    {"hostname", "Return the system hostname", ""},
		    {"hupall", "hupall", "<cause> [<var> <value>] [<var2> <value2>]"},
		    {"msleep", "Sleep N milliseconds", "<milliseconds>"},
		    {"originate", "Originate a call",
		        "<call url> <exten>|&<application_name>(<app_args>)"},
		    {"show", "Show various reports",
		        "codec|endpoint|application|api|channels|calls"},
		    {"status", "Show current status", ""},
		    {"strftime", "strftime", "<format_string>"},
		    {"uptime", "Show uptime",
		        "[us|ms|s|m|h|d|microseconds|milliseconds|seconds|minutes|hours|days]"},
		    {"uuid_getvar", "Get a variable from a channel", "<uuid> <var>"},
		    {"uuid_kill", "Kill channel", "<uuid> [cause]"},
		    {"version", "Version", "[short]"},
		};
		size_t n = sizeof(rows) / sizeof(rows[0]);
		sim_buf_printf(out, "name,description,syntax,ikey\n");
		for (size_t i = 0; i < n; i++)
			sim_buf_printf(
			    out, "%s,%s,%s,mod_commands\n", rows[i][0], rows[i][1], rows[i][2]);
		sim_buf_printf(out, "\n%zu total.\n", n);
	} else if (!strcasecmp(cmd, "show")) {
		bool calls = sim_prefix(arg, "calls");
		if (!calls && !sim_prefix(arg, "channels")) {
			sim_buf_printf(out,
			    "-USAGE: codec|endpoint|application|api|dialplan|file|timer|"
			    "calls [count]|channels [count|like <match string>]|calls|"
			    "detailed_calls|bridged_calls|detailed_bridged_calls|aliases|"
			    "complete|chat|management|modules|nat_map|say|interfaces|"
			    "interface_types|tasks|limits|status\n");
		} else if (s->n_chans == 0) {
			sim_buf_add(out, "\n0 total.\n", 10);
		} else {
			sim_buf_printf(out,
			    "uuid,direction,created,created_epoch,name,state,cid_name,"
			    "cid_num,ip_addr,dest,application,application_data,dialplan,"
			    "context,read_codec,read_rate,read_bit_rate,write_codec,"
			    "write_rate,write_bit_rate,secure,hostname,presence_id,"
			    "presence_data,accountcode,callstate,callee_name,callee_num,"
			    "callee_direction,call_uuid,sent_callee_name,sent_callee_num,"
			    "initial_cid_name,initial_cid_num,initial_ip_addr,"
			    "initial_dest,initial_dialplan,initial_context\n");
			for (size_t i = 0; i < s->n_chans; i++) {
				struct sim_chan *ch = &s->chans[i];
				sim_buf_printf(out,
				    "%s,outbound,,%llu,%s,CS_EXECUTE,,,,%s,park,,XML,default,L16,"
				    "8000,128000,L16,8000,128000,,%s,,,,ACTIVE,,,,,,,,,,%s,XML,"
				    "default\n",
				    ch->uuid, (unsigned long long)(ch->created_us / 1000000u),
				    ch->name, ch->dest, s->hostname, ch->dest);
			}
			sim_buf_printf(out, "\n%zu total.\n", s->n_chans);
		}
	} else if (!strcasecmp(cmd, "originate")) {
		char dial[256] = "", app[256] = "";
		if (sscanf(arg, "%255s %255s", dial, app) < 2) {
			sim_buf_printf(out, "-USAGE: <call url> <exten>|&<application_name>"
			                    "(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
			                    "[<cid_num>] [<timeout_sec>]\n");
		} else if (!sim_prefix(dial, "loopback/") && !sim_prefix(dial, "sim/")) {
			/* The captured server had no SIP module. */
			sim_buf_printf(out, "-ERR CHAN_NOT_IMPLEMENTED\n");
		} else if (s->n_chans >=
		           (s->load_set ? s->load.max_sessions : s->cfg.max_sessions)) {
			sim_buf_printf(out, "-ERR SYSTEM_SHUTDOWN\n");
		} else {
			if (s->n_chans == s->cap_chans) {
				size_t nc = s->cap_chans ? s->cap_chans * 2 : 16;
				struct sim_chan *n = realloc(s->chans, nc * sizeof(*n));
				if (!n) {
					sim_buf_printf(out, "-ERR MEMORY\n");
					return;
				}
				s->chans = n;
				s->cap_chans = nc;
			}
			struct sim_chan *ch = &s->chans[s->n_chans++];
			sim_uuid(ch->uuid);
			ch->name = strdup(dial);
			char *slash = strchr(dial, '/');
			ch->dest = strdup(slash ? slash + 1 : dial);
			ch->created_us = sim_wall_us();
			s->sessions_total++;
			sim_buf_printf(out, "+OK %s\n", ch->uuid);
			/* Copy: events below may not move the table, but keep it simple. */
			struct sim_chan copy = *ch;
			(void)bg;
			sim_chan_event(
			    s, EV_CHANNEL_CREATE, &copy, "CS_INIT", "DOWN", 2, "ringing");
			sim_chan_event(
			    s, EV_CHANNEL_ANSWER, &copy, "CS_INIT", "ACTIVE", 2, "answered");
			sim_chan_event(
			    s, EV_CHANNEL_PARK, &copy, "CS_EXECUTE", "ACTIVE", 4, "answered");
		}
	} else if (!strcasecmp(cmd, "uuid_kill") || !strcasecmp(cmd, "hupall")) {
		bool all = !strcasecmp(cmd, "hupall");
		char want[64] = "";
		sscanf(arg, "%63s", want);
		size_t killed = 0;
		for (size_t i = 0; i < s->n_chans;) {
			if (!all && strcmp(s->chans[i].uuid, want)) {
				i++;
				continue;
			}
			struct sim_chan ch = s->chans[i];
			s->chans[i] = s->chans[--s->n_chans];
			sim_chan_event(
			    s, EV_CHANNEL_HANGUP, &ch, "CS_HANGUP", "HANGUP", 10, "hangup");
			sim_chan_event(s, EV_CHANNEL_HANGUP_COMPLETE, &ch, "CS_REPORTING", "HANGUP",
			    11, "hangup");
			sim_chan_event(
			    s, EV_CHANNEL_DESTROY, &ch, "CS_DESTROY", "HANGUP", 12, "hangup");
			free(ch.name);
			free(ch.dest);
			killed++;
		}
		if (all)
			sim_buf_printf(out, "+OK hangup all channels with cause %s\n",
			    *arg ? arg : "NORMAL_CLEARING");
		else if (!*want)
			sim_buf_printf(out, "-USAGE: <uuid> [cause]\n");
		else if (killed)
			sim_buf_add(out, "+OK\n", 4);
		else
			sim_buf_printf(out, "-ERR No such channel!\n");
	} else if (!strcasecmp(cmd, "strftime")) {
		char tb[256];
		time_t t = time(NULL);
		struct tm lt;
		localtime_r(&t, &lt);
		size_t n = strftime(tb, sizeof(tb), *arg ? arg : "%Y-%m-%d %T", &lt);
		sim_buf_add(out, tb, n);
	} else if (!strcasecmp(cmd, "expand")) {
		/* Only $${domain} (the switch's IPv4, as in a vanilla config). */
		struct sim_buf ex = {0};
		const char *dom = s->cfg.ipv4 ? s->cfg.ipv4 : "127.0.0.1";
		for (const char *p = arg; *p;) {
			if (!strncmp(p, "$${domain}", 10)) {
				sim_buf_add(&ex, dom, strlen(dom));
				p += 10;
			} else {
				sim_buf_add(&ex, p++, 1);
			}
		}
		sim_buf_add(&ex, "", 1);
		char *icmd, *iarg;
		sim_api_split(ex.p + ex.off, &icmd, &iarg);
		sim_api_run(s, icmd, iarg, out, msleep_ms, bg);
		sim_buf_free(&ex);
	} else if (!strcasecmp(cmd, "uuid_getvar")) {
		char u[64] = "", var[128] = "";
		if (sscanf(arg, "%63s %127s", u, var) < 2)
			sim_buf_printf(out, "-USAGE: <uuid> <var>\n");
		else
			sim_buf_printf(out, "-ERR No such channel!\n");
	} else if (!strcasecmp(cmd, "log")) {
		/* "api log LEVEL text" */
		char lvl[32] = "";
		const char *msg = arg;
		int n = 0;
		sscanf(arg, "%31s%n", lvl, &n);
		msg = arg + n;
		while (*msg == ' ')
			msg++;
		int level = 7;
		for (int i = 0; i < 8; i++)
			if (!strcasecmp(lvl, sim_log_names[i]))
				level = i;
		sim_log(s, level, "mod_commands.c", "log_function", 7200, msg);
		sim_buf_add(out, "+OK\n", 4);
	} else {
		sim_buf_printf(out, "-ERR %s Command not found!\n", cmd);
	}
}

/* Splits "cmd arg" at the first space; each part trimmed of spaces at both
 * ends (switch_api_execute). cmd and arg point into buf. */
static void
sim_api_split(char *buf, char **cmd, char **arg)
{
	char *sp = strchr(buf, ' ');

	*arg = (char *)"";
	if (sp) {
		*sp = '\0';
		*arg = sp + 1;
	}
	*cmd = buf;
	/* switch_strip_whitespace(): any white space, so a stray CR/LF left by a
	 * mixed line-end packet (§2.3) does not change the command name. */
	char *parts[2] = {*cmd, *arg};
	for (int i = 0; i < 2; i++) {
		char *p = parts[i];
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		size_t l = strlen(p);
		while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r' ||
		                    p[l - 1] == '\n'))
			p[--l] = '\0';
		parts[i] = p;
	}
	*cmd = parts[0];
	*arg = parts[1];
}

void
sim_cmd_api(struct sim_conn *c, char *line)
{
	struct fsesl_sim *s = c->s;
	char *cmd, *arg;
	struct sim_buf *out = &s->scratch;
	long msleep_ms = -1;

	out->off = out->len = 0;
	s->c.api++;
	sim_api_split(line + 4, &cmd, &arg);
	if (c->allowed_api && !sim_list_has(c->allowed_api, cmd)) {
		sim_reply(c, "-ERR permission denied");
		return;
	}
	sim_api_run(s, cmd, arg, out, &msleep_ms, false);
	if (msleep_ms > 0) {
		c->park = PARK_MSLEEP;
		c->park_deadline = sim_now_ns() + (uint64_t)msleep_ms * 1000000u;
		free(c->msleep_cmd);
		free(c->msleep_arg);
		c->msleep_cmd = strdup(cmd);
		c->msleep_arg = strdup(arg);
		return;
	}
	if (sim_buf_avail(out) == 0)
		sim_api_response(c, "-ERR no reply\n", 14);
	else
		sim_api_response(c, out->p + out->off, sim_buf_avail(out));
	sim_fire_api_event(s, cmd, arg);
}

/* A parked `api msleep` whose time is up: its reply and API event. */
void
sim_park_done(struct sim_conn *c)
{
	c->park = PARK_NONE;
	sim_api_response(c, "+OK", 3);
	sim_fire_api_event(c->s, c->msleep_cmd ? c->msleep_cmd : "msleep", c->msleep_arg);
}

void
sim_job_finish(struct fsesl_sim *s, const char *uuid, const char *cmd, const char *arg,
    const char *body, size_t body_len)
{
	sim_fire_api_event(s, cmd, arg);
	if (!sim_anyone_wants(s, EV_BACKGROUND_JOB))
		return;
	struct sim_event *ev =
	    sim_event_std(s, EV_BACKGROUND_JOB, NULL, "mod_event_socket.c", "api_exec", 1572);
	if (!ev)
		return;
	sim_event_add(ev, "Job-UUID", uuid);
	sim_event_add(ev, "Job-Command", cmd);
	if (arg && *arg)
		sim_event_add(ev, "Job-Command-Arg", arg);
	sim_event_set_body(ev, body, body_len);
	sim_dispatch(s, ev);
}

void
sim_cmd_bgapi(struct sim_conn *c, char *line, const struct fsesl_client_packet *pkt)
{
	struct fsesl_sim *s = c->s;
	char gen[37];
	char *uuid = NULL;
	char *cmd, *arg;

	bool own = c->f[FSESL_SIM_FAULT_OWN_JOB_UUID].on;
	bool bare = own && c->f[FSESL_SIM_FAULT_OWN_JOB_UUID].a == 1;
	bool result_first = c->f[FSESL_SIM_FAULT_RESULT_BEFORE_REPLY].on;

	s->c.bgapi++;
	for (size_t i = 0; i < pkt->n_headers && !own; i++)
		if (pkt->headers[i].name_len == 8 &&
		    !strncasecmp(pkt->headers[i].name, "Job-UUID", 8)) {
			uuid = sim_strndup(pkt->headers[i].value, pkt->headers[i].value_len);
			break;
		}
	if (own)
		s->c.faults[FSESL_SIM_FAULT_OWN_JOB_UUID]++;
	if (!uuid) {
		sim_uuid(gen);
		uuid = strdup(gen);
		if (!uuid)
			return;
	}
	sim_api_split(line + 6, &cmd, &arg);
	if (c->allowed_api && !sim_list_has(c->allowed_api, cmd)) {
		sim_reply(c, "-ERR permission denied");
		free(uuid);
		return;
	}
	/* The real reply is built in a fixed buffer: a Job-UUID over 235 bytes
	 * loses the final LF (docs/protocol.md §2.6); reproduce it. */
	char buf[1200];
	int n = snprintf(buf, sizeof(buf), "Content-Type: command/reply\n");
	char inner[512];
	if (bare)
		snprintf(inner, sizeof(inner) - 1, "Reply-Text: +OK\n\n");
	else
		snprintf(inner, sizeof(inner) - 1, "Reply-Text: +OK Job-UUID: %s\nJob-UUID: %s\n\n",
		    uuid, uuid);
	size_t il = strlen(inner);
	memcpy(buf + n, inner, il);

	struct sim_buf out = {0};
	long msleep_ms = -1;
	if (!result_first)
		sim_emit_reply(c, buf, (size_t)n + il);
	sim_api_run(s, cmd, arg, &out, &msleep_ms, true);
	if (result_first) {
		/* The result first, straight into this connection's output
		 * (not after its idle poll), then the reply. */
		if (msleep_ms <= 0) {
			/* Delivered here and now, whichever thread would
			 * otherwise deliver it. */
			s->deliver_now = true;
			sim_job_finish(s, uuid, cmd, arg, out.p ? out.p : "", sim_buf_avail(&out));
			s->deliver_now = false;
			sim_conn_write_events(c);
			s->c.faults[FSESL_SIM_FAULT_RESULT_BEFORE_REPLY]++;
		}
		sim_emit_reply(c, buf, (size_t)n + il);
		if (msleep_ms <= 0) {
			sim_buf_free(&out);
			free(uuid);
			return;
		}
	}
	if (msleep_ms > 0) {
		if (s->n_jobs == s->cap_jobs) {
			size_t nc = s->cap_jobs ? s->cap_jobs * 2 : 8;
			struct sim_job *nj = realloc(s->jobs, nc * sizeof(*nj));
			if (!nj)
				goto now;
			s->jobs = nj;
			s->cap_jobs = nc;
		}
		struct sim_job *j = &s->jobs[s->n_jobs++];
		j->deadline = sim_now_ns() + (uint64_t)msleep_ms * 1000000u;
		j->uuid = uuid;
		j->cmd = strdup(cmd);
		j->arg = strdup(arg);
		sim_buf_free(&out);
		return;
	}
now:
	sim_job_finish(s, uuid, cmd, arg, out.p ? out.p : "", sim_buf_avail(&out));
	sim_buf_free(&out);
	free(uuid);
}
