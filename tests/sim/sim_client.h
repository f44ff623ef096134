/*
 * sim_client.h - a tiny blocking ESL client for the simulator's tests.
 *
 * Blocking sockets with SO_RCVTIMEO (a safety net only: a test that waits
 * for a frame that never comes fails after the timeout instead of hanging).
 */
#ifndef FSESL_TEST_SIM_CLIENT_H
#define FSESL_TEST_SIM_CLIENT_H

#include "fsesl_proto.h"
#include "fsesl_sim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tc {
	int fd;
	char *buf;
	size_t len, cap;
	bool eof;
	/* last frame, copied out of buf so it survives further reads */
	char *frame;
	size_t frame_len;
	struct fsesl_msg msg;
};

/* Connects to 127.0.0.1:port; timeout_ms is the SO_RCVTIMEO safety net. */
int tc_connect(struct tc *t, uint16_t port, int timeout_ms);
void tc_close(struct tc *t);
void tc_send(struct tc *t, const char *data, size_t len);
void tc_sends(struct tc *t, const char *s);
/* Next frame into t->msg (pointers into t->frame). 1 frame, 0 EOF, -1
 * timeout or error. */
int tc_next(struct tc *t);
/* Reads the greeting and authenticates with ClueCon; asserts. */
void tc_login(struct tc *t);
/* tc_connect (5 s safety net) then tc_login; asserts. */
void tc_open(struct tc *t, uint16_t port);
/* Reads frames until EOF; returns how many were read. */
int tc_drain(struct tc *t);
/* True if the peer closed (EOF) within timeout_ms without sending a frame. */
bool tc_quiet_for(struct tc *t, int timeout_ms);
/* Helpers on t->msg. */
bool tc_reply_is(const struct tc *t, const char *reply_text);
bool tc_body_is(const struct tc *t, const char *body);
const char *tc_header(const struct tc *t, const char *name, char *buf, size_t cap);

/* A simulator with test defaults (port 0, no heartbeat). */
fsesl_sim *tc_sim_start(struct fsesl_sim_config *cfg, uint16_t *port);

#endif
