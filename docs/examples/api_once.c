/*
 * api_once.c - the smallest fsesl program: run one `api` command and print
 * its output.
 *
 *   ./api_once [URL] [COMMAND]      (default: fs://:ClueCon@127.0.0.1:8021 status)
 *
 * Exit status: 0 +OK output, 1 -ERR output, 2 the command did not complete.
 */
#include <stdio.h>

#include <fsesl.h>

int
main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : "fs://:ClueCon@127.0.0.1:8021";
	const char *cmd = argc > 2 ? argv[2] : "status";
	fsesl_engine *e;
	fsesl_server_t srv;
	fsesl_reply *r;
	const char *body;
	size_t len;
	int err, ok = 0;

	err = fsesl_engine_start(NULL, &e); /* NULL: the default settings */
	if (err != 0) {
		fprintf(stderr, "engine: %s\n", fsesl_strerror(err));
		return 2;
	}
	/* The connection opens in the background; the command below waits for
	 * it within its own timeout (esl_cmd_timeout, 5 s by default). */
	err = fsesl_server_get(e, url, &srv);
	if (err == 0) {
		err = fsesl_api(e, srv, cmd, NULL, &r);
		if (err == 0) {
			body = fsesl_reply_body(r, &len);
			fwrite(body, 1, len, stdout);
			ok = fsesl_reply_ok(r) == 1;
			fsesl_reply_free(r);
		}
		fsesl_server_put(e, srv);
	}
	if (err != 0)
		fprintf(stderr, "%s: %s\n", cmd, fsesl_strerror(err));
	fsesl_engine_stop(e);
	return err != 0 ? 2 : ok ? 0 : 1;
}
