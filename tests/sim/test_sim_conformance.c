/*
 * test_sim_conformance.c - the simulator against real FreeSWITCH 1.10.12.
 *
 * Each test replays the client writes of one capture in
 * tests/vectors/real-1.10.12 (expected.json: client_writes) against a fresh
 * simulator configured like the captured server (host vm, 192.0.2.2,
 * fd00::2, the two directory users), and compares every frame the simulator
 * sends with the captured frame: content type, header names in order, values,
 * and bodies; for events the decoded inner headers and body. Values that
 * differ on every run are compared by shape only (UUIDs, times, sequence
 * numbers, CPU and uptime figures).
 *
 * Timing is replaced by causality: before write i the test waits for every
 * frame that arrived before write i in the capture, and when the next
 * expected frame is a HEARTBEAT it asks the simulator for one
 * (fsesl_sim_fire_heartbeat) instead of waiting a second.
 */
#include "sim_client.h"

#include <criterion/alloc.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static cJSON *
load_expected(void)
{
	const char *path = FSESL_TEST_DATA "/real-1.10.12/expected.json";
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	cr_assert(b);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = '\0';
	fclose(f);
	cJSON *j = cJSON_Parse(b);
	free(b);
	cr_assert(j, "expected.json does not parse");
	return j;
}

static bool
is_hex(char c)
{
	return isxdigit((unsigned char)c) != 0;
}

/* Replaces every 8-4-4-4-12 hex UUID with "<uuid>". */
static char *
norm(const char *s, size_t len)
{
	static const int groups[5] = {8, 4, 4, 4, 12};
	char *o = malloc(len + 1);
	size_t n = 0;

	cr_assert(o);
	for (size_t i = 0; i < len;) {
		size_t j = i;
		bool ok = true;
		for (int g = 0; g < 5 && ok; g++) {
			for (int k = 0; k < groups[g]; k++, j++)
				if (j >= len || !is_hex(s[j])) {
					ok = false;
					break;
				}
			if (ok && g < 4) {
				if (j >= len || s[j] != '-')
					ok = false;
				j++;
			}
		}
		if (ok) {
			memcpy(o + n, "<uuid>", 6);
			n += 6;
			i = j;
		} else {
			o[n++] = s[i++];
		}
	}
	o[n] = '\0';
	return o;
}

static bool
volatile_event_header(const char *name)
{
	static const char *const v[] = {"Core-UUID", "Event-Date-Local", "Event-Date-GMT",
	    "Event-Date-Timestamp", "Event-Sequence", "Up-Time", "Uptime-msec", "Idle-CPU",
	    "Session-Count", "Session-Per-Sec", "Session-Per-Sec-Last", "Session-Per-Sec-Max",
	    "Session-Per-Sec-FiveMin", "Session-Since-Startup", "Session-Peak-Max",
	    "Session-Peak-FiveMin", "Task-Runtime", NULL};
	for (int i = 0; v[i]; i++)
		if (!strcmp(v[i], name))
			return true;
	return false;
}

/* status and uptime outputs change with every run; compare their shape. */
static bool
volatile_body(const char *b)
{
	if (!strncmp(b, "UP ", 3))
		return true;
	size_t i = 0;
	while (isdigit((unsigned char)b[i]))
		i++;
	return i > 0 && b[i] == '\n' && b[i + 1] == '\0';
}

static void
cmp_text(const char *what, const char *exp, size_t elen, const char *got, size_t glen)
{
	char *a = norm(exp, elen), *b = norm(got, glen);
	cr_expect_str_eq(b, a, "%s: got [%s] want [%s]", what, b, a);
	free(a);
	free(b);
}

/* Expected decoded value: string, JSON array (multi-value), or hex bytes. */
static char *
exp_value(const cJSON *h, size_t *len)
{
	const cJSON *v = cJSON_GetArrayItem(h, 1);
	const cJSON *hex = cJSON_GetArrayItem(h, 2);
	char *o;

	if (hex && cJSON_IsObject(hex)) {
		const char *x = cJSON_GetObjectItem(hex, "hex")->valuestring;
		size_t n = strlen(x) / 2;
		o = malloc(n + 1);
		for (size_t i = 0; i < n; i++) {
			unsigned int byte;
			sscanf(x + 2 * i, "%2x", &byte);
			o[i] = (char)byte;
		}
		o[n] = '\0';
		*len = n;
		return o;
	}
	if (cJSON_IsArray(v)) {
		size_t cap = 16;
		for (const cJSON *it = v->child; it; it = it->next)
			cap += strlen(it->valuestring) + 2;
		o = malloc(cap);
		strcpy(o, "ARRAY::");
		for (const cJSON *it = v->child; it; it = it->next) {
			if (it != v->child)
				strcat(o, "|:");
			strcat(o, it->valuestring);
		}
		*len = strlen(o);
		return o;
	}
	o = strdup(v->valuestring);
	*len = strlen(o);
	return o;
}

static void
cmp_event(const char *ctx, const cJSON *eev, const struct tc *t)
{
	const char *fmt = cJSON_GetObjectItem(eev, "format")->valuestring;
	enum fsesl_event_format f = !strcmp(fmt, "json")  ? FSESL_EVFMT_JSON
	                            : !strcmp(fmt, "xml") ? FSESL_EVFMT_XML
	                                                  : FSESL_EVFMT_PLAIN;
	struct fsesl_event *ev = NULL;
	int rc = fsesl_event_parse(f, t->msg.body, t->msg.body_len, NULL, &ev);
	cr_assert_eq(rc, 0, "%s: the simulator's event does not parse (%d)", ctx, rc);
	const cJSON *hs = cJSON_GetObjectItem(eev, "headers");
	const cJSON *eb = cJSON_GetObjectItem(eev, "body");
	bool vbody = eb && cJSON_IsString(eb) && volatile_body(eb->valuestring);
	size_t n = (size_t)cJSON_GetArraySize(hs);
	size_t i = 0;
	for (const cJSON *h = hs->child; h && i < ev->n_headers; h = h->next, i++) {
		const char *name = cJSON_GetArrayItem(h, 0)->valuestring;
		const struct fsesl_header *g = &ev->headers[i];
		char gname[256];
		snprintf(gname, sizeof(gname), "%.*s", (int)g->name_len, g->name);
		cr_expect_str_eq(
		    gname, name, "%s: event header %zu is %s, want %s", ctx, i, gname, name);
		if (strcmp(gname, name) || volatile_event_header(name) ||
		    (vbody && !strcmp(name, "Content-Length")))
			continue;
		size_t el;
		char *ev_val = exp_value(h, &el);
		char what[512];
		snprintf(what, sizeof(what), "%s: event header %s", ctx, name);
		cmp_text(what, ev_val, el, g->value, g->value_len);
		free(ev_val);
	}
	cr_expect_eq(ev->n_headers, n, "%s: %zu event headers, want %zu", ctx, ev->n_headers, n);
	if (eb && cJSON_IsString(eb) && !volatile_body(eb->valuestring)) {
		char what[256];
		snprintf(what, sizeof(what), "%s: event body", ctx);
		cmp_text(what, eb->valuestring, strlen(eb->valuestring), ev->body, ev->body_len);
	}
	fsesl_event_free(ev);
}

static void
cmp_frame(const char *cap, int k, const cJSON *ef, const struct tc *t)
{
	char ctx[128];
	const char *ct = cJSON_GetObjectItem(ef, "content_type")->valuestring;
	const cJSON *eev = cJSON_GetObjectItem(ef, "event");
	const cJSON *eb = cJSON_GetObjectItem(ef, "body");
	bool vol = eev || (eb && cJSON_IsString(eb) && volatile_body(eb->valuestring));

	snprintf(ctx, sizeof(ctx), "%s frame %d (%s)", cap, k, ct);
	char gct[128] = "";
	if (t->msg.content_type)
		snprintf(
		    gct, sizeof(gct), "%.*s", (int)t->msg.content_type_len, t->msg.content_type);
	cr_assert_str_eq(gct, ct, "%s: content type %s", ctx, gct);
	const cJSON *hs = cJSON_GetObjectItem(ef, "headers");
	size_t n = (size_t)cJSON_GetArraySize(hs);
	cr_expect_eq(t->msg.n_headers, n, "%s: %zu headers, want %zu", ctx, t->msg.n_headers, n);
	size_t i = 0;
	for (const cJSON *h = hs->child; h && i < t->msg.n_headers; h = h->next, i++) {
		const char *name = cJSON_GetArrayItem(h, 0)->valuestring;
		const char *val = cJSON_GetArrayItem(h, 1)->valuestring;
		const struct fsesl_header *g = &t->msg.headers[i];
		char gname[256];
		snprintf(gname, sizeof(gname), "%.*s", (int)g->name_len, g->name);
		cr_expect_str_eq(gname, name, "%s: header %zu is %s, want %s", ctx, i, gname, name);
		if (vol && !strcasecmp(name, "Content-Length"))
			continue;
		char what[256];
		snprintf(what, sizeof(what), "%s: header %s", ctx, name);
		cmp_text(what, val, strlen(val), g->value, g->value_len);
	}
	if (eev) {
		cmp_event(ctx, eev, t);
	} else if (eb && cJSON_IsString(eb)) {
		char what[256];
		snprintf(what, sizeof(what), "%s: body", ctx);
		if (volatile_body(eb->valuestring))
			cr_expect_eq(volatile_body(t->frame + t->msg.header_bytes), true,
			    "%s: body shape", ctx);
		else
			cmp_text(what, eb->valuestring, strlen(eb->valuestring),
			    t->msg.body ? t->msg.body : "", t->msg.body_len);
	}
}

static const char *
exp_event_name(const cJSON *frames, int k)
{
	const cJSON *f = cJSON_GetArrayItem(frames, k);
	const cJSON *ev = f ? cJSON_GetObjectItem(f, "event") : NULL;
	if (!ev)
		return NULL;
	for (const cJSON *h = cJSON_GetObjectItem(ev, "headers")->child; h; h = h->next)
		if (!strcmp(cJSON_GetArrayItem(h, 0)->valuestring, "Event-Name"))
			return cJSON_GetArrayItem(h, 1)->valuestring;
	return NULL;
}

/* A HEARTBEAT, or a RE_SCHEDULE not right after one (a filtered heartbeat). */
static bool
wants_heartbeat(const cJSON *frames, int k)
{
	const char *n = exp_event_name(frames, k);
	if (!n)
		return false;
	if (!strcmp(n, "HEARTBEAT"))
		return true;
	if (strcmp(n, "RE_SCHEDULE"))
		return false;
	const char *p = k > 0 ? exp_event_name(frames, k - 1) : NULL;
	return !p || strcmp(p, "HEARTBEAT");
}

struct replay {
	const char *name;
	fsesl_sim *sim;
	struct tc t;
	const cJSON *frames;
	int n_frames, got, fired;
	bool fs_like;
};

/* The heartbeat behind frame k fires as soon as frame k-1 is in, before any
 * later write: in the captures it was queued while frame k-1 was sent. */
static void
maybe_fire(struct replay *r)
{
	if (r->fired != r->got && wants_heartbeat(r->frames, r->got)) {
		r->fired = r->got;
		fsesl_sim_fire_heartbeat(r->sim);
		/* A connection thread that went back to its poll before the
		 * heartbeat was queued would hold it for up to 20 ms, and a write
		 * arriving meanwhile would put it behind that command's reply.
		 * In the capture it was queued before: a kick (a lone LF, no
		 * reply) lets it out first, as the real thread did. */
		if (r->fs_like)
			tc_sends(&r->t, "\n");
	}
}

static void
replay_read_one(struct replay *r)
{
	maybe_fire(r);
	int rc = tc_next(&r->t);
	cr_assert_eq(
	    rc, 1, "%s: frame %d of %d did not come (%d)", r->name, r->got, r->n_frames, rc);
	cmp_frame(r->name, r->got, cJSON_GetArrayItem(r->frames, r->got), &r->t);
	r->got++;
	maybe_fire(r);
}

static void
replay_until(struct replay *r, double t_ms)
{
	int need = 0;
	for (const cJSON *f = r->frames->child; f; f = f->next)
		if (cJSON_GetObjectItem(f, "t_ms")->valuedouble < t_ms)
			need++;
	while (r->got < need)
		replay_read_one(r);
}

static void
replay_opts(const char *name, unsigned int auth_timeout_ms, bool fs_like)
{
	cJSON *root = load_expected();
	const cJSON *cap = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "captures"), name);
	cr_assert(cap, "no capture %s", name);

	struct fsesl_sim_user users[2] = {
	    {.user = "eslprobe@192.0.2.2", .password = "probepw", .allow_log = true},
	    {.user = "eslrestricted@192.0.2.2",
	        .password = "probepw",
	        .allowed_events = "HEARTBEAT,BACKGROUND_JOB",
	        .allowed_api = "status,show,uptime",
	        .allow_log = false},
	};
	struct fsesl_sim_config cfg;
	fsesl_sim_config_init(&cfg);
	cfg.heartbeat_interval_ms = 0;
	cfg.hostname = "vm";
	cfg.ipv4 = "192.0.2.2";
	cfg.ipv6 = "fd00::2";
	cfg.users = users;
	cfg.n_users = 2;
	cfg.auth_timeout_ms = auth_timeout_ms;
	if (fs_like)
		fsesl_sim_config_fs_like(&cfg);

	struct replay r = {.name = name, .fired = -1, .fs_like = fs_like};
	uint16_t port;
	r.sim = tc_sim_start(&cfg, &port);
	r.frames = cJSON_GetObjectItem(cap, "frames");
	r.n_frames = cJSON_GetArraySize(r.frames);
	cr_assert_eq(tc_connect(&r.t, port, 5000), 0);

	/* Writes and the client's half-close, in time order. */
	const cJSON *writes = cJSON_GetObjectItem(cap, "client_writes");
	const cJSON *cev = cJSON_GetObjectItem(cap, "client_events");
	double shut_at = -1;
	for (const cJSON *e = cev ? cev->child : NULL; e; e = e->next)
		if (!strcmp(cJSON_GetArrayItem(e, 1)->valuestring, "shutdown-write"))
			shut_at = cJSON_GetArrayItem(e, 0)->valuedouble;
	for (const cJSON *w = writes->child; w; w = w->next) {
		double t = cJSON_GetObjectItem(w, "t_ms")->valuedouble;
		replay_until(&r, t);
		const cJSON *txt = cJSON_GetObjectItem(w, "text");
		if (txt) {
			tc_sends(&r.t, txt->valuestring);
		} else {
			const char *hx = cJSON_GetObjectItem(w, "text_hex")->valuestring;
			size_t n = strlen(hx) / 2;
			char *b = malloc(n);
			for (size_t i = 0; i < n; i++) {
				unsigned int byte;
				sscanf(hx + 2 * i, "%2x", &byte);
				b[i] = (char)byte;
			}
			tc_send(&r.t, b, n);
			free(b);
		}
	}
	if (shut_at >= 0) {
		replay_until(&r, shut_at);
		shutdown(r.t.fd, SHUT_WR);
	}
	while (r.got < r.n_frames)
		replay_read_one(&r);
	if (cJSON_IsTrue(cJSON_GetObjectItem(cap, "server_closed")))
		cr_expect_eq(tc_next(&r.t), 0, "%s: extra frames or no close", name);
	tc_close(&r.t);
	fsesl_sim_stop(r.sim);
	cJSON_Delete(root);
}

static void
replay(const char *name)
{
	replay_opts(name, 25000, false);
}

TestSuite(conformance, .timeout = 30);

Test(conformance, login_ok)
{
	replay("login-ok");
}
Test(conformance, login_fail)
{
	replay("login-fail");
}
Test(conformance, login_pipelined)
{
	replay("login-pipelined");
}
Test(conformance, auth_trailing_space)
{
	replay("auth-trailing-space");
}
Test(conformance, api_replies)
{
	replay("api-replies");
}
Test(conformance, bgapi_plain)
{
	replay("bgapi-plain");
}
Test(conformance, bgapi_json)
{
	replay("bgapi-json");
}
Test(conformance, bgapi_xml)
{
	replay("bgapi-xml");
}
Test(conformance, bgapi_long_job_uuid)
{
	replay("bgapi-long-job-uuid");
}
Test(conformance, body_on_api)
{
	replay("body-on-api");
}
Test(conformance, body_slow_spin)
{
	replay("body-slow-spin");
}
Test(conformance, event_sub_replies)
{
	replay("event-sub-replies");
}
Test(conformance, event_misc)
{
	replay("event-misc");
}
Test(conformance, event_all)
{
	replay("event-all");
}
Test(conformance, event_api)
{
	replay("event-api");
}
Test(conformance, filter_replies)
{
	replay("filter-replies");
}
Test(conformance, filter_semantics)
{
	replay("filter-semantics");
}
Test(conformance, exit_dots)
{
	replay("exit-dots");
}
Test(conformance, exit_drops_queued_events)
{
	replay("exit-drops-queued-events");
}
Test(conformance, exit_then_more)
{
	replay("exit-then-more");
}
Test(conformance, half_close)
{
	replay("half-close");
}
Test(conformance, heartbeat_formats)
{
	replay("heartbeat-formats");
}
Test(conformance, noevents_drops_queued_events)
{
	replay("noevents-drops-queued-events");
}
Test(conformance, pipeline_100_echo)
{
	replay("pipeline-100-echo");
}
Test(conformance, pipeline_mixed)
{
	replay("pipeline-mixed");
}
Test(conformance, pipeline_starves_events)
{
	replay("pipeline-starves-events");
}
Test(conformance, preauth_command_no_timeout)
{
	replay("preauth-command-no-timeout");
}
Test(conformance, preauth_exit)
{
	replay("preauth-exit");
}
/* The real wait is 25 s; the frames are the same with a short timeout. */
Test(conformance, preauth_idle_timeout)
{
	replay_opts("preauth-idle-timeout", 100, false);
}
Test(conformance, replay_req_pipelined)
{
	replay("replay-req-pipelined");
}
Test(conformance, sendevent_variants)
{
	replay("sendevent-variants");
}
Test(conformance, session_commands_inbound)
{
	replay("session-commands-inbound");
}
Test(conformance, userauth_ok)
{
	replay("userauth-ok");
}
Test(conformance, userauth_restricted)
{
	replay("userauth-restricted");
}
Test(conformance, userauth_invalid)
{
	replay("userauth-invalid");
}
Test(conformance, userauth_wrong_password)
{
	replay("userauth-wrong-password");
}
Test(conformance, crlf)
{
	replay("crlf");
}

/* ---- the same captures against the FreeSWITCH-like mode ---- */

/* A thread per connection reading one byte per recv(), api run inline,
 * every event through the dispatch thread (fsesl_sim_config_fs_like()):
 * the bytes must be the same. */
static const struct {
	const char *name;
	unsigned int auth_timeout_ms;
} fs_captures[] = {
    {"login-ok", 25000},
    {"login-fail", 25000},
    {"login-pipelined", 25000},
    {"auth-trailing-space", 25000},
    {"api-replies", 25000},
    {"bgapi-plain", 25000},
    {"bgapi-json", 25000},
    {"bgapi-xml", 25000},
    {"bgapi-long-job-uuid", 25000},
    {"body-on-api", 25000},
    {"body-slow-spin", 25000},
    {"event-sub-replies", 25000},
    {"event-misc", 25000},
    {"event-all", 25000},
    {"event-api", 25000},
    {"filter-replies", 25000},
    {"filter-semantics", 25000},
    {"exit-dots", 25000},
    {"exit-drops-queued-events", 25000},
    {"exit-then-more", 25000},
    {"half-close", 25000},
    {"heartbeat-formats", 25000},
    {"noevents-drops-queued-events", 25000},
    {"pipeline-100-echo", 25000},
    {"pipeline-mixed", 25000},
    {"pipeline-starves-events", 25000},
    {"preauth-command-no-timeout", 25000},
    {"preauth-exit", 25000},
    {"preauth-idle-timeout", 100},
    {"replay-req-pipelined", 25000},
    {"sendevent-variants", 25000},
    {"session-commands-inbound", 25000},
    {"userauth-ok", 25000},
    {"userauth-restricted", 25000},
    {"userauth-invalid", 25000},
    {"userauth-wrong-password", 25000},
    {"crlf", 25000},
};

static void
free_indices(struct criterion_test_params *crp)
{
	cr_free(crp->params);
}

/* Row numbers, not rows: Criterion copies parameters into each test's
 * process, where the rows' pointers would not be valid. */
ParameterizedTestParameters(conformance, fs_like)
{
	size_t n = sizeof(fs_captures) / sizeof(fs_captures[0]);
	size_t *idx = cr_malloc(n * sizeof(*idx));

	for (size_t i = 0; idx != NULL && i < n; i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, idx != NULL ? n : 0, free_indices);
}

ParameterizedTest(size_t *i, conformance, fs_like)
{
	cr_log_info("fs_like: %s", fs_captures[*i].name);
	replay_opts(fs_captures[*i].name, fs_captures[*i].auth_timeout_ms, true);
}
