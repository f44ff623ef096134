/*
 * test_fork.c - an engine inherited across fork(): in the child every
 * call fails at once with FSESL_EFORKED (the parent's reactor thread does
 * not exist there; it used to time out), the parent's engine is
 * untouched, and the child can start an engine of its own and use it (the
 * pattern docs/migrating-from-opensips.md gives for multi-process hosts).
 *
 * The child reports through its exit status (one bit per check), never
 * through Criterion's assertions, which belong to the test's process.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_test.h"

enum {
	CHK_API = 1 << 0,
	CHK_ASYNC = 1 << 1,
	CHK_GET = 1 << 2,
	CHK_SUB = 1 << 3,
	CHK_STOP = 1 << 4,
	CHK_OWN_ENGINE = 1 << 5,
	CHK_OWN_API = 1 << 6,
	CHK_OWN_STOP = 1 << 7,
	CHK_LOAD = 1 << 8,
};

static void
never(int status, const fsesl_reply *r, void *ud)
{
	(void)status;
	(void)r;
	(void)ud;
	_exit(100); /* a callback for a refused call */
}

/* In the child: every check that fails sets its bit. */
static int
child_checks(fsesl_engine *inherited, fsesl_server_t h, uint16_t port)
{
	fsesl_subscriber *sub = NULL;
	fsesl_engine *own = NULL;
	fsesl_server_t h2 = 0;
	fsesl_reply *r = NULL;
	fsesl_load ld;
	int bad = 0;

	/* At once, not after esl_cmd_timeout: the wait below has a 60 s
	 * timeout, so a call that waited would also be noticed by its code. */
	fsesl_cmd_opts o = FSESL_CMD_OPTS_INIT;

	o.timeout_ms = 60000;
	if (fsesl_api(inherited, h, "echo child", &o, &r) != FSESL_EFORKED || r)
		bad |= CHK_API;
	if (fsesl_api_async(inherited, h, "echo child", &o, never, NULL) != FSESL_EFORKED)
		bad |= CHK_ASYNC;
	if (fsesl_server_get_by(inherited, "127.0.0.1", port, NULL, "ClueCon", &h2) !=
	    FSESL_EFORKED)
		bad |= CHK_GET;
	if (fsesl_subscriber_create(inherited, "c", NULL, &sub) != FSESL_EFORKED)
		bad |= CHK_SUB;
	if (fsesl_server_load(inherited, h, &ld) != FSESL_EFORKED)
		bad |= CHK_LOAD;
	if (fsesl_engine_stop(inherited) != FSESL_EFORKED)
		bad |= CHK_STOP;
	/* The pattern that works: an engine of the child's own. */
	if (fsesl_engine_start(NULL, &own) != 0)
		return bad | CHK_OWN_ENGINE | CHK_OWN_API | CHK_OWN_STOP;
	if (fsesl_server_get_by(own, "127.0.0.1", port, NULL, "ClueCon", &h2) != 0 ||
	    fsesl_api(own, h2, "echo mine", &o, &r) != 0 || !r ||
	    strcmp(fsesl_reply_body(r, NULL), "mine") != 0)
		bad |= CHK_OWN_API;
	fsesl_reply_free(r);
	if (fsesl_engine_stop(own) != 0)
		bad |= CHK_OWN_STOP;
	return bad;
}

static void
fork_and_check(fsesl_engine *e, fsesl_server_t h, uint16_t port)
{
	int status = 0;
	pid_t pid;

	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child_checks(e, h, port));
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "the child did not exit (status %#x)", status);
	cr_assert_eq(
	    WEXITSTATUS(status), 0, "checks that failed in the child: %#x", WEXITSTATUS(status));
}

Test(fork, inherited_engine_says_eforked, .timeout = 60)
{
	uint16_t port;
	fsesl_sim *sim = et_sim(&port);
	fsesl_engine *e = et_engine(NULL);
	fsesl_server_t h = et_server(e, port, "ClueCon");

	cr_assert_eq(et_echo(e, h, "before", NULL), 0);
	fork_and_check(e, h, port);
	/* The parent's engine goes on. */
	cr_assert_eq(et_echo(e, h, "after", NULL), 0);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(sim);
}

/* fork() while other threads keep the engine (and RCU) busy: the child
 * must still be able to start its own engine (liburcu-bp's fork hooks).
 * Not in the AddressSanitizer build: GCC 12's ASan allocator takes no lock
 * around fork(), so a child forked while another thread is inside malloc
 * inherits that lock held and its first malloc hangs (seen in gdb: the
 * child's reactor in SizeClassAllocator64::GetFromAllocator). glibc's
 * malloc is fork-safe; the plain, valgrind and TSan-free builds run it. */
#ifndef __SANITIZE_ADDRESS__
struct busy {
	fsesl_engine *e;
	fsesl_server_t h;
	_Atomic bool stop;
};

static void *
busy_main(void *arg)
{
	struct busy *b = arg;
	fsesl_server_stats st;

	while (!atomic_load(&b->stop)) {
		(void)et_echo(b->e, b->h, "busy", NULL);
		(void)fsesl_server_stats_get(b->e, b->h, &st);
	}
	return NULL;
}

Test(fork, fork_while_busy, .timeout = 90)
{
	uint16_t port;
	fsesl_sim *sim = et_sim(&port);
	fsesl_engine *e = et_engine(NULL);
	fsesl_server_t h = et_server(e, port, "ClueCon");
	struct busy b = {e, h, false};
	pthread_t th[4];

	cr_assert_eq(et_echo(e, h, "before", NULL), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, busy_main, &b), 0);
	for (int i = 0; i < 5; i++)
		fork_and_check(e, h, port);
	atomic_store(&b.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(fsesl_engine_stop(e), 0);
	fsesl_sim_stop(sim);
}
#endif /* __SANITIZE_ADDRESS__ */
