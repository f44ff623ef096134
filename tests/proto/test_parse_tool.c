/*
 * test_parse_tool.c - fsesl-parse end to end: one JSON line per frame for
 * real captures, and the documented exit codes for a framing error and a
 * stream cut inside a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "testutil.h"

/* Runs `fsesl-parse ARGS`, returns its exit code; *lines gets the output
 * lines parsed as JSON (array, caller frees). */
static int
run_tool(const char *args, cJSON **lines)
{
	char cmd[1024], line[1 << 16];
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s", FSESL_PARSE_TOOL, args);
	p = popen(cmd, "r");
	cr_assert(p != NULL);
	*lines = cJSON_CreateArray();
	while (fgets(line, sizeof(line), p)) {
		cJSON *j = cJSON_Parse(line);

		cr_assert(j != NULL, "not JSON: %s", line);
		cJSON_AddItemToArray(*lines, j);
	}
	st = pclose(p);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

Test(parse_tool, real_captures_one_line_per_frame)
{
	static const char *const caps[] = {
	    "bgapi-xml", "sendevent-variants", "log-stream", "call-events-json"};
	cJSON *exp = fsesl_test_read_json(FSESL_TEST_DATA "/real-1.10.12/expected.json");

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		char args[512];
		cJSON *lines,
		    *frames = cJSON_GetObjectItem(
		        cJSON_GetObjectItem(cJSON_GetObjectItem(exp, "captures"), caps[i]),
		        "frames");
		const cJSON *l, *f;
		int rc;

		snprintf(args, sizeof(args), "%s/real-1.10.12/%s.recv", FSESL_TEST_DATA, caps[i]);
		rc = run_tool(args, &lines);
		cr_assert(rc == 0, "%s: exit %d", caps[i], rc);
		cr_assert(cJSON_GetArraySize(lines) == cJSON_GetArraySize(frames), "%s", caps[i]);
		f = frames->child;
		cJSON_ArrayForEach(l, lines)
		{
			const cJSON *ev = cJSON_GetObjectItem(l, "event");

			cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "type")),
			    cJSON_GetStringValue(cJSON_GetObjectItem(f, "content_type")));
			cr_assert(cJSON_GetObjectItem(l, "body_len")->valuedouble ==
			          cJSON_GetObjectItem(f, "body_length")->valuedouble);
			cr_assert((ev != NULL) == (cJSON_GetObjectItem(f, "event") != NULL));
			if (ev)
				cr_assert_str_eq(
				    cJSON_GetStringValue(cJSON_GetObjectItem(ev, "name")),
				    cJSON_GetStringValue(cJSON_GetObjectItem(f, "event_name")));
			f = f->next;
		}
		cJSON_Delete(lines);
	}
	cJSON_Delete(exp);
}

Test(parse_tool, exit_codes)
{
	cJSON *lines, *last;
	int rc;

	rc = run_tool("--help > /dev/null", &lines);
	cr_assert(rc == 0);
	cJSON_Delete(lines);
	rc = run_tool("--no-such-option 2> /dev/null", &lines);
	cr_assert(rc == 1);
	cJSON_Delete(lines);

	rc = run_tool("< /dev/null", &lines);
	cr_assert(rc == 0 && cJSON_GetArraySize(lines) == 0);
	cJSON_Delete(lines);

	/* greeting, then a Content-Length with a sign */
	rc = run_tool("<<'EOF'\nContent-Type: auth/request\n\n"
	              "Content-Type: api/response\nContent-Length: -1\n\nEOF\n",
	    &lines);
	cr_assert(rc == 2);
	last = cJSON_GetArrayItem(lines, cJSON_GetArraySize(lines) - 1);
	cr_assert(cJSON_GetObjectItem(last, "error") != NULL);
	cr_assert(cJSON_GetObjectItem(last, "offset")->valuedouble == 28);
	cJSON_Delete(lines);

	/* a body announced but cut short */
	rc = run_tool("<<'EOF'\nContent-Type: auth/request\n\n"
	              "Content-Type: api/response\nContent-Length: 50\n\nshort\nEOF\n",
	    &lines);
	cr_assert(rc == 3);
	last = cJSON_GetArrayItem(lines, cJSON_GetArraySize(lines) - 1);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(last, "incomplete")));
	cr_assert(cJSON_GetObjectItem(last, "offset")->valuedouble == 28);
	cJSON_Delete(lines);
}
