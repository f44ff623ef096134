/*
 * complete.h - tab completion for the fsesl tool's interactive mode.
 *
 * Pure (strings in, strings out), so it is tested without a terminal; the
 * tool wires it to libedit. The API names come from the server's own
 * `show api` when it answers one, else from a built-in list of the common
 * FreeSWITCH commands.
 */
#ifndef FSESL_CLI_COMPLETE_H
#define FSESL_CLI_COMPLETE_H

#include <stddef.h>

/* A sorted set of distinct words (malloc'ed). */
struct cli_words {
	char **v;
	size_t n;
};

/*
 * The API names of a `show api` body ("name,description,syntax,ikey"
 * rows, a header, then "N total."), sorted and without duplicates.
 * Returns how many, 0 if the body is not such a listing (a -USAGE or -ERR
 * reply, say), or -1 on no memory. *out is left empty when 0 or -1.
 */
int cli_words_from_show_api(const char *body, struct cli_words *out);
/* The built-in list: the FreeSWITCH API commands most used from fs_cli. */
int cli_words_builtin(struct cli_words *out);
void cli_words_free(struct cli_words *w);

/*
 * The candidates for completing `word`, which starts at byte `start` of
 * `line` (what the line editor passes): slash commands and API names for
 * the first word, API names after /api or /bgapi, the known second words
 * of a few commands (show, sofia, ...). Returns how many were put in *out
 * (a malloc'ed array of malloc'ed strings, sorted; NULL when 0), or -1 on
 * no memory.
 */
int cli_complete(
    const struct cli_words *api, const char *line, size_t start, const char *word, char ***out);

#endif
