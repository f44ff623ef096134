/*
 * heartbeat.c - strict extraction of HEARTBEAT load figures.
 *
 * Design: these numbers steer routing decisions (docs/protocol.md §7.6), so
 * a value we cannot read exactly is an error, never a silent 0 the way
 * atoi() would have it. We read lengths from the header array rather than
 * the C strings, so a value carrying "%00" cannot be cut short into a
 * number that looks fine.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsesl_proto.h"
#include "proto_util.h"

int
fsesl_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || len == 0)
		return FSESL_PERR_BAD_NUMBER;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return FSESL_PERR_BAD_NUMBER;
		if (v > (UINT64_MAX - d) / 10)
			return FSESL_PERR_BAD_NUMBER;
		v = v * 10 + d;
	}
	if (out)
		*out = v;
	return 0;
}

/* "digits" or "digits.digits" (what "%f" prints), as a double. */
static int
parse_percent(const char *s, size_t len, double *out)
{
	char tmp[64];
	size_t i = 0, dots = 0;
	char *end;

	if (len == 0 || len >= sizeof(tmp))
		return FSESL_PERR_BAD_NUMBER;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (dots++ || i == 0 || i == len - 1)
				return FSESL_PERR_BAD_NUMBER;
		} else if (s[i] < '0' || s[i] > '9') {
			return FSESL_PERR_BAD_NUMBER;
		}
	}
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	/* The format check above leaves strtod nothing to reject or to read
	 * as hex/inf/nan; the "C" decimal point is the only one accepted. */
	*out = strtod(tmp, &end);
	if (end != tmp + len)
		return FSESL_PERR_BAD_NUMBER;
	return 0;
}

static int
get_u64(const struct fsesl_event *ev, const char *name, bool required, uint64_t *out)
{
	const struct fsesl_header *h = fsesl_event_find(ev, name);

	if (h == NULL)
		return required ? FSESL_PERR_MISSING_FIELD : 0;
	return fsesl_parse_u64(h->value, h->value_len, out);
}

int
fsesl_heartbeat_parse(const struct fsesl_event *ev, struct fsesl_heartbeat *hb)
{
	static const struct {
		const char *name;
		bool required;
		size_t off;
	} fields[] = {
	    {"Session-Count", true, offsetof(struct fsesl_heartbeat, session_count)},
	    {"Max-Sessions", true, offsetof(struct fsesl_heartbeat, max_sessions)},
	    {"Session-Per-Sec", false, offsetof(struct fsesl_heartbeat, session_per_sec)},
	    {"Session-Per-Sec-Last", false, offsetof(struct fsesl_heartbeat, session_per_sec_last)},
	    {"Session-Per-Sec-Max", false, offsetof(struct fsesl_heartbeat, session_per_sec_max)},
	    {"Session-Per-Sec-FiveMin", false,
	        offsetof(struct fsesl_heartbeat, session_per_sec_fivemin)},
	    {"Session-Since-Startup", false,
	        offsetof(struct fsesl_heartbeat, session_since_startup)},
	    {"Session-Peak-Max", false, offsetof(struct fsesl_heartbeat, session_peak_max)},
	    {"Session-Peak-FiveMin", false, offsetof(struct fsesl_heartbeat, session_peak_fivemin)},
	    {"Uptime-msec", false, offsetof(struct fsesl_heartbeat, uptime_msec)},
	    {"Event-Date-Timestamp", false, offsetof(struct fsesl_heartbeat, event_timestamp_us)},
	};
	const struct fsesl_header *h;
	struct fsesl_heartbeat tmp;
	int rc;

	if (ev == NULL || hb == NULL)
		return FSESL_PERR_INVALID;
	if (ev->forged || ev->name == NULL || strcasecmp(ev->name, "HEARTBEAT") != 0)
		return FSESL_PERR_INVALID;
	memset(&tmp, 0, sizeof(tmp));

	h = fsesl_event_find(ev, "Idle-CPU");
	if (h == NULL)
		return FSESL_PERR_MISSING_FIELD;
	rc = parse_percent(h->value, h->value_len, &tmp.idle_cpu);
	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		rc = get_u64(ev, fields[i].name, fields[i].required,
		    (uint64_t *)((char *)&tmp + fields[i].off));
		if (rc)
			return rc;
	}
	h = fsesl_event_find(ev, "FreeSWITCH-Hostname");
	if (h) {
		/* Truncating would hand out a different host's name. */
		if (h->value_len >= sizeof(tmp.hostname))
			return FSESL_PERR_TOO_LONG;
		if (memchr(h->value, '\0', h->value_len))
			return FSESL_PERR_INVALID;
		memcpy(tmp.hostname, h->value, h->value_len);
		tmp.hostname[h->value_len] = '\0';
	}
	*hb = tmp; /* all or nothing: no half-filled result on error */
	return 0;
}
