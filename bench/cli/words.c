/*
 * words.c - what a command line means before anything is sent: its verb,
 * and whether it is really a mistyped server URL.
 *
 * A command line reaches the server as `api <line>`. A URL typed wrong
 * (`fs:/:Secret@host`, `http://...`) is not recognised as a URL, so
 * without this check it would become a command and carry its password
 * to the default server. The rule is conservative in the direction of
 * never sending such a thing, and narrow enough for real commands:
 *
 *  - the FIRST word of a command is an API name (status, show, originate,
 *    ...), and API names are plain words. So a first word that starts
 *    with "fs" and a punctuation mark (fs:, fs/, fs., fs@ ...), or has a
 *    scheme ("word:" then "/", as in http://), or holds both '@' and ':'
 *    (credentials@host) is refused;
 *  - LATER words carry arguments, where dial strings
 *    (sofia/gw/1000@10.0.0.1:5080) and web addresses (curl http://...)
 *    are legitimate; only a word starting with "fs:" is refused there:
 *    that is a server URL written after the command.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static bool
blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

const char *
cli_skip_verb(const char *cmd, bool *bg)
{
	size_t n = strcspn(cmd, " \t");

	*bg = false;
	if (n == 5 && strncasecmp(cmd, "bgapi", 5) == 0)
		*bg = true;
	else if (n != 3 || strncasecmp(cmd, "api", 3) != 0)
		return cmd;
	cmd += n;
	while (blank(*cmd))
		cmd++;
	return cmd;
}

static bool
scheme_then_slash(const char *w, size_t n)
{
	size_t i = 0;

	if (n == 0 || !isalpha((unsigned char)w[0]))
		return false;
	while (i < n && (isalnum((unsigned char)w[i]) || w[i] == '+' || w[i] == '.' || w[i] == '-'))
		i++;
	return i + 1 < n && w[i] == ':' && w[i + 1] == '/';
}

const char *
cli_url_lookalike(const char *cmd)
{
	size_t n;

	while (blank(*cmd))
		cmd++;
	n = strcspn(cmd, " \t");
	if (n >= 3 && strncasecmp(cmd, "fs", 2) == 0 && ispunct((unsigned char)cmd[2]) &&
	    cmd[2] != '_' && cmd[2] != '-')
		return "it starts like a server URL but a URL starts with fs:// "
		       "(fs://[user]:password@host[:port])";
	if (scheme_then_slash(cmd, n))
		return "it starts with a URL scheme, and only fs:// URLs are understood";
	if (memchr(cmd, '@', n) != NULL && memchr(cmd, ':', n) != NULL)
		return "it looks like password@host without fs:// in front";
	for (cmd += n; *cmd != '\0'; cmd += n) {
		while (blank(*cmd))
			cmd++;
		n = strcspn(cmd, " \t");
		if (n >= 3 && strncasecmp(cmd, "fs:", 3) == 0)
			return "a word of it looks like a server URL, and URLs must come "
			       "before the command";
	}
	return NULL;
}
