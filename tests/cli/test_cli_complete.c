/*
 * test_cli_complete.c - the fsesl tool's tab completion (bench/cli/complete.c),
 * tested as the pure function it is: no terminal needed.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "complete.h"
#include "fsesl.h"
#include "fsesl_sim.h"

/* The candidates as "a|b|c", freed. */
static char *
joined(char **v, int n)
{
	size_t len = 1;
	char *s;
	int i;

	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	s = calloc(1, len);
	for (i = 0; i < n; i++) {
		if (i)
			strcat(s, "|");
		strcat(s, v[i]);
		free(v[i]);
	}
	free(v);
	return s;
}

static void
expect(const struct cli_words *api, const char *line, const char *want)
{
	/* The word being completed runs from the last space to the end. */
	const char *sp = strrchr(line, ' ');
	size_t start = sp ? (size_t)(sp - line) + 1 : 0;
	char **v = NULL;
	int n = cli_complete(api, line, start, line + start, &v);
	char *got;

	cr_assert_geq(n, 0);
	if (n == 0)
		cr_assert_null(v);
	got = joined(v, n);
	cr_expect_str_eq(got, want, "completing \"%s\": got \"%s\"", line, got);
	free(got);
}

/* A `show api` body as FreeSWITCH prints it: a header, one row per
 * registration (the same name from two modules), descriptions with
 * commas, a blank line and the count. */
static const char show_api[] = "name,description,syntax,ikey\n"
                               "status,Show current status,,mod_commands\n"
                               "uuid_kill,Kill channel,<uuid> [cause],mod_commands\n"
                               "sofia,Sofia Controls,<cmd> <args>,mod_sofia\n"
                               "show,Show various reports,codec|application|api,mod_commands\n"
                               "status,Show current status,,mod_other\n"
                               "\n"
                               "5 total.\n";

Test(complete, show_api_names_sorted_and_distinct)
{
	struct cli_words w;

	cr_assert_eq(cli_words_from_show_api(show_api, &w), 4);
	cr_assert_str_eq(w.v[0], "show");
	cr_assert_str_eq(w.v[1], "sofia");
	cr_assert_str_eq(w.v[2], "status");
	cr_assert_str_eq(w.v[3], "uuid_kill");
	cli_words_free(&w);
	cr_assert_null(w.v);
	cr_assert_eq(w.n, 0);
}

Test(complete, crlf_rows_accepted)
{
	struct cli_words w;

	cr_assert_eq(cli_words_from_show_api(
	                 "name,description,syntax,ikey\r\nversion,Version,,mod_commands\r\n", &w),
	    1);
	cr_assert_str_eq(w.v[0], "version");
	cli_words_free(&w);
}

Test(complete, not_a_listing_gives_nothing)
{
	struct cli_words w;

	/* What the simulator and an old server answer; an error; nothing. */
	cr_assert_eq(cli_words_from_show_api("-USAGE: codec|endpoint|application|api\n", &w), 0);
	cr_assert_null(w.v);
	cr_assert_eq(cli_words_from_show_api("-ERR show Command not found!\n", &w), 0);
	cr_assert_eq(cli_words_from_show_api("", &w), 0);
	cr_assert_eq(cli_words_from_show_api(NULL, &w), 0);
	/* A header alone lists nothing. */
	cr_assert_eq(cli_words_from_show_api("name,description,syntax,ikey\n\n0 total.\n", &w), 0);
}

Test(complete, rows_with_bad_names_skipped)
{
	struct cli_words w;

	cr_assert_eq(cli_words_from_show_api("name,description,syntax,ikey\n"
	                                     "good_one,d,,m\n"
	                                     "bad name,d,,m\n"
	                                     ",empty,,m\n"
	                                     "no comma here\n",
	                 &w),
	    1);
	cr_assert_str_eq(w.v[0], "good_one");
	cli_words_free(&w);
}

Test(complete, builtin_list_sorted_distinct)
{
	struct cli_words w;
	size_t i;
	bool status = false;

	cr_assert_gt(cli_words_builtin(&w), 50);
	for (i = 1; i < w.n; i++)
		cr_assert_lt(strcmp(w.v[i - 1], w.v[i]), 0, "%s before %s", w.v[i - 1], w.v[i]);
	for (i = 0; i < w.n; i++)
		status |= strcmp(w.v[i], "status") == 0;
	cr_assert(status);
	cli_words_free(&w);
}

Test(complete, words_by_position)
{
	struct cli_words w;

	cr_assert_eq(cli_words_from_show_api(show_api, &w), 4);
	expect(&w, "s", "show|sofia|status");
	expect(&w, "st", "status");
	expect(&w, "", "show|sofia|status|uuid_kill");
	expect(&w, "x", "");
	/* Slash commands only where a line starts. */
	expect(&w, "/b", "/bgapi|/bye");
	expect(&w, "/", "/api|/bgapi|/bye|/exit|/help|/quit");
	expect(&w, "status /b", "");
	/* After /api and /bgapi: API names, then their second words. */
	expect(&w, "/api u", "uuid_kill");
	expect(&w, "/bgapi s", "show|sofia|status");
	expect(&w, "/bgapi show ch", "channels|chat");
	/* Second words of show, sofia, fsctl; the command in any case. */
	expect(&w, "show c", "calls|channels|chat|codec|complete");
	expect(&w, "SHOW reg", "registrations");
	expect(&w, "sofia st", "status");
	expect(&w, "fsctl sh", "shutdown");
	/* Nothing known beyond that. */
	expect(&w, "status x", "");
	expect(&w, "show channels l", "");
	expect(&w, "  show   chan", "channels");
	cli_words_free(&w);
}

Test(complete, no_api_list_still_completes_slash_commands)
{
	expect(NULL, "/h", "/help");
	expect(NULL, "st", "");
	expect(NULL, "show ch", "channels|chat");
}

/* What the tool asks a server at the first TAB, from the simulator. */
Test(complete, simulator_show_api_listing_parses)
{
	struct fsesl_sim_config sc;
	fsesl_sim *sim;
	fsesl_engine *e;
	fsesl_server_t h;
	fsesl_reply *r = NULL;
	struct cli_words w;
	uint16_t port;
	bool msleep = false;
	size_t i;

	fsesl_sim_config_init(&sc);
	cr_assert_eq(fsesl_sim_start(&sc, &sim, &port), 0);
	cr_assert_eq(fsesl_engine_start(NULL, &e), 0);
	cr_assert_eq(fsesl_server_get_by(e, "127.0.0.1", port, NULL, "ClueCon", &h), 0);
	cr_assert_eq(fsesl_api(e, h, "show api", NULL, &r), 0);
	cr_assert_gt(cli_words_from_show_api(fsesl_reply_body(r, NULL), &w), 10);
	for (i = 0; i < w.n; i++)
		msleep |= strcmp(w.v[i], "msleep") == 0;
	cr_assert(msleep);
	expect(&w, "ms", "msleep");
	cli_words_free(&w);
	fsesl_reply_free(r);
	fsesl_server_put(e, h);
	fsesl_engine_stop(e);
	fsesl_sim_stop(sim);
}
