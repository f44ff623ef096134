/*
 * soak.c - fsesl-soak: the engine against a simulator that keeps failing.
 *
 *   fsesl-soak [--seconds N] [--workers N] [--seed S] [--verbose]
 *
 * Workers issue `api echo <unique token>` (blocking), one thread keeps a
 * window of async requests, one sends batches of 2-32 echoes through
 * fsesl_api_many(); a subscriber consumes HEARTBEAT and flood events. Meanwhile the main thread rotates through the simulator's faults:
 * inject one for a random while, clear it, and require a successful command
 * within a bound before the next. The invariants are checked as the run
 * goes, not only at the end:
 *   - a reply whose body is not the request's own token is a mismatch;
 *   - an async callback that runs twice is a double completion;
 *   - a fault after which no command succeeds within 15 s is unrecovered;
 *   - the password appearing in a log line is a leak.
 * Any of these makes the exit status 1. At the end every async request
 * must have completed exactly once (checked after the engine has stopped,
 * which completes whatever was still pending).
 *
 * Sleeps are fine here: this is a load generator, not a test; the fault
 * durations are meant to be random.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsesl.h"
#include "fsesl_sim.h"

#define SOAK_PASSWORD "soak-Pw-8c1e"
#define ASYNC_WINDOW 64
#define RECOVER_MS 15000u

enum outcome {
	O_OK = 0,
	O_MISMATCH,
	O_ETIMEDOUT,
	O_EDISCONNECTED,
	O_ENOTCONNECTED,
	O_EAUTH,
	O_EREJECTED,
	O_ECONNTIMEOUT,
	O_ECONNREFUSED,
	O_EPROTO,
	O_ESHUTDOWN,
	O_EAGAIN,
	O_ECONNRESET,
	O_OTHER,
	O__COUNT
};

static const char *const outcome_name[O__COUNT] = {
    "ok",
    "MISMATCH",
    "ETIMEDOUT",
    "EDISCONNECTED",
    "ENOTCONNECTED",
    "EAUTH",
    "EREJECTED",
    "ECONNTIMEOUT",
    "ECONNREFUSED",
    "EPROTO",
    "ESHUTDOWN",
    "EAGAIN",
    "ECONNRESET",
    "other",
};

static int
outcome_of(int rc)
{
	switch (rc) {
	case 0:
		return O_OK;
	case -ETIMEDOUT:
		return O_ETIMEDOUT;
	case FSESL_EDISCONNECTED:
		return O_EDISCONNECTED;
	case FSESL_ENOTCONNECTED:
		return O_ENOTCONNECTED;
	case FSESL_EAUTH:
		return O_EAUTH;
	case FSESL_EREJECTED:
		return O_EREJECTED;
	case FSESL_ECONNTIMEOUT:
		return O_ECONNTIMEOUT;
	case -ECONNREFUSED:
		return O_ECONNREFUSED;
	case FSESL_EPROTO:
		return O_EPROTO;
	case FSESL_ESHUTDOWN:
		return O_ESHUTDOWN;
	case -EAGAIN:
		return O_EAGAIN;
	case -ECONNRESET:
	case -EPIPE:
		return O_ECONNRESET; /* lost while connecting, before READY */
	default:
		return O_OTHER;
	}
}

/* The rotation. Faults that act on new connections are followed by a
 * KILL_ALL so that the engine has to reconnect into them. */
struct fault_kind {
	const char *name;
	enum fsesl_sim_fault f;
	uint64_t a_min, a_max, b;
	bool kill;
};

static const struct fault_kind faults[] = {
    {"delay", FSESL_SIM_FAULT_DELAY, 5, 1200, 0, false},
    {"stall", FSESL_SIM_FAULT_STALL, 0, 0, 0, false},
    {"close_mid_frame", FSESL_SIM_FAULT_CLOSE_MID_FRAME, 0, 0, 0, false},
    {"close_after_msgs", FSESL_SIM_FAULT_CLOSE_AFTER_MSGS, 1, 200, 0, false},
    {"close_after_bytes", FSESL_SIM_FAULT_CLOSE_AFTER_BYTES, 1, 4000, 0, false},
    {"garbage", FSESL_SIM_FAULT_GARBAGE, 1, 512, 0, false},
    {"tiny_writes", FSESL_SIM_FAULT_TINY_WRITES, 1, 7, 0, false},
    {"rude_reject", FSESL_SIM_FAULT_RUDE_REJECT, 0, 0, 0, true},
    {"refuse", FSESL_SIM_FAULT_REFUSE, 0, 0, 0, true},
    {"silent_accept", FSESL_SIM_FAULT_SILENT_ACCEPT, 0, 0, 0, true},
    {"no_heartbeat", FSESL_SIM_FAULT_NO_HEARTBEAT, 0, 0, 0, false},
    {"event_flood", FSESL_SIM_FAULT_EVENT_FLOOD, 1000, 30000, 0, false},
    {"kill_all", FSESL_SIM_FAULT_KILL_ALL, 0, 0, 0, false},
};
#define N_FAULTS (sizeof(faults) / sizeof(faults[0]))

static fsesl_engine *eng;
static fsesl_server_t srv;
static fsesl_sim *sim;
static _Atomic bool stop_flag;
static bool verbose;

static _Atomic uint64_t submitted, outcomes[O__COUNT];
static _Atomic uint64_t pw_leaks;
static _Atomic uint64_t ev_events, ev_dropped, ev_down, ev_up, ev_errors;

/* Async requests: slot i is reused only after its previous request
 * completed (the semaphore counts free slots), so issued/completed per slot
 * prove exactly-once without keeping one record per request. */
struct aslot {
	char token[48];
	_Atomic uint64_t issued, completed;
	_Atomic bool busy;
};
static struct aslot aslots[ASYNC_WINDOW];
static sem_t afree;
static _Atomic uint64_t a_issued, a_done, a_double, a_submit_err, a_outcomes[O__COUNT];

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t
rnd(uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (uint64_t)random() % (hi - lo + 1);
}

static void
log_fn(int level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	if (msg != NULL && strstr(msg, SOAK_PASSWORD) != NULL)
		atomic_fetch_add(&pw_leaks, 1);
}

static bool
matches(const fsesl_reply *r, const char *tok)
{
	size_t len = 0, tl = strlen(tok);
	const char *b = r ? fsesl_reply_body(r, &len) : NULL;

	if (b == NULL || !fsesl_reply_is_api(r))
		return false;
	if (len == tl + 1 && b[tl] == '\n')
		len = tl;
	return len == tl && memcmp(b, tok, tl) == 0;
}

static int
echo(const char *tok)
{
	fsesl_reply *r = NULL;
	char cmd[96];
	int rc, o;

	snprintf(cmd, sizeof(cmd), "echo %s", tok);
	atomic_fetch_add_explicit(&submitted, 1, memory_order_relaxed);
	rc = fsesl_api(eng, srv, cmd, NULL, &r);
	if (rc != 0) {
		o = outcome_of(rc);
		if (o == O_OTHER)
			fprintf(
			    stderr, "fsesl-soak: unexpected error %d %s\n", rc, fsesl_strerror(rc));
	} else {
		o = matches(r, tok) ? O_OK : O_MISMATCH;
		if (o == O_MISMATCH) {
			size_t len = 0;
			const char *b = fsesl_reply_body(r, &len);

			fprintf(stderr, "fsesl-soak: MISMATCH: sent '%s', got '%.*s'\n", tok,
			    (int)(len > 80 ? 80 : len), b ? b : "(null)");
		}
		fsesl_reply_free(r);
	}
	atomic_fetch_add_explicit(&outcomes[o], 1, memory_order_relaxed);
	return o;
}

static _Atomic int a_last;

/* What a sane caller does while a server is down: do not spin on errors
 * that come back at once (the engine fails fast while disconnected). */
static void
pace(int o)
{
	if (o != O_OK && o != O_ETIMEDOUT && o != O_MISMATCH)
		usleep(1000);
}

static void *
worker(void *arg)
{
	unsigned int id = (unsigned int)(uintptr_t)arg, seq = 0;
	unsigned int salt = (unsigned int)random();
	char tok[48];

	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		snprintf(tok, sizeof(tok), "w%u-%u-%08x", id, seq++, salt);
		pace(echo(tok));
	}
	return NULL;
}

static void
acb(int status, const fsesl_reply *reply, void *ud)
{
	struct aslot *s = ud;
	int o;

	if (status == 0) {
		o = matches(reply, s->token) ? O_OK : O_MISMATCH;
		if (o == O_MISMATCH)
			fprintf(stderr, "fsesl-soak: async MISMATCH for '%s'\n", s->token);
	} else {
		o = outcome_of(status);
	}
	if (atomic_fetch_add(&s->completed, 1) + 1 > atomic_load(&s->issued)) {
		atomic_fetch_add(&a_double, 1);
		fprintf(stderr, "fsesl-soak: async request '%s' completed twice\n", s->token);
	}
	atomic_fetch_add(&a_outcomes[o], 1);
	atomic_fetch_add(&a_done, 1);
	atomic_store_explicit(&a_last, o, memory_order_relaxed);
	/* release: pairs with the acquire exchange in asubmitter(), so the
	 * slot's fields are ours again only after this callback is done. */
	atomic_store_explicit(&s->busy, false, memory_order_release);
	sem_post(&afree);
}

static void *
asubmitter(void *arg)
{
	uint64_t n = 0;
	char cmd[96];

	(void)arg;
	while (!atomic_load(&stop_flag)) {
		struct timespec ts;
		struct aslot *s = NULL;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (sem_timedwait(&afree, &ts) != 0)
			continue;
		for (unsigned int i = 0; i < ASYNC_WINDOW && s == NULL; i++) {
			bool expect = false;

			if (atomic_compare_exchange_strong_explicit(&aslots[i].busy, &expect, true,
			        memory_order_acquire, memory_order_relaxed))
				s = &aslots[i];
		}
		if (s == NULL) { /* cannot happen: the semaphore counts free slots */
			sem_post(&afree);
			continue;
		}
		snprintf(s->token, sizeof(s->token), "a-%llu-%08x", (unsigned long long)n++,
		    (unsigned int)random());
		snprintf(cmd, sizeof(cmd), "echo %s", s->token);
		atomic_fetch_add(&s->issued, 1);
		rc = fsesl_api_async(eng, srv, cmd, NULL, acb, s);
		if (rc != 0) {
			/* No callback for a failed call: undo and free the slot. */
			atomic_fetch_sub(&s->issued, 1);
			atomic_fetch_add(&a_submit_err, 1);
			atomic_store_explicit(&s->busy, false, memory_order_release);
			sem_post(&afree);
			continue;
		}
		atomic_fetch_add(&a_issued, 1);
		pace(atomic_load_explicit(&a_last, memory_order_relaxed));
	}
	return NULL;
}

/* Batches: every slot must come back final and with its own token. */
#define BATCH_MAX 32
static _Atomic uint64_t b_calls, b_items, b_outcomes[O__COUNT];

static void *
batcher(void *arg)
{
	unsigned int salt = (unsigned int)random();
	fsesl_server_t to[BATCH_MAX];
	char tok[BATCH_MAX][48], cmd[BATCH_MAX][96];
	const char *cmds[BATCH_MAX];
	fsesl_reply *rep[BATCH_MAX];
	int st[BATCH_MAX];
	uint64_t call = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		size_t n = (size_t)rnd(2, BATCH_MAX), j;
		int rc, last = O_OK;

		for (j = 0; j < n; j++) {
			snprintf(tok[j], sizeof(tok[j]), "b%llu-%zu-%08x", (unsigned long long)call,
			    j, salt);
			snprintf(cmd[j], sizeof(cmd[j]), "echo %.47s", tok[j]);
			cmds[j] = cmd[j];
			to[j] = srv;
		}
		call++;
		rc = fsesl_api_many(eng, n, to, cmds, NULL, st, rep);
		atomic_fetch_add(&b_calls, 1);
		if (rc != 0) {
			fprintf(stderr, "fsesl-soak: fsesl_api_many: %s\n", fsesl_strerror(rc));
			atomic_fetch_add(&b_outcomes[O_OTHER], 1);
			continue;
		}
		for (j = 0; j < n; j++) {
			int o = st[j] != 0                ? outcome_of(st[j])
			        : matches(rep[j], tok[j]) ? O_OK
			                                  : O_MISMATCH;

			if (o == O_MISMATCH)
				fprintf(stderr, "fsesl-soak: batch MISMATCH for '%s'\n", tok[j]);
			if (o == O_OTHER)
				fprintf(stderr, "fsesl-soak: batch slot error %d %s\n", st[j],
				    fsesl_strerror(st[j]));
			fsesl_reply_free(rep[j]);
			atomic_fetch_add(&b_outcomes[o], 1);
			atomic_fetch_add(&b_items, 1);
			if (o != O_OK)
				last = o;
		}
		pace(last);
	}
	return NULL;
}

static fsesl_subscriber *sub;

static void *
subscriber(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_flag)) {
		fsesl_delivery d;
		int rc = fsesl_subscriber_next(sub, &d, 100);

		if (rc < 0) {
			atomic_fetch_add(&ev_errors, 1);
			break;
		}
		if (rc == 0)
			continue;
		switch (d.kind) {
		case FSESL_NOTICE_EVENT:
			atomic_fetch_add(&ev_events, 1);
			break;
		case FSESL_NOTICE_DROPPED:
			atomic_fetch_add(&ev_dropped, d.count);
			break;
		case FSESL_NOTICE_DOWN:
			atomic_fetch_add(&ev_down, 1);
			break;
		case FSESL_NOTICE_UP:
			atomic_fetch_add(&ev_up, 1);
			break;
		case FSESL_NOTICE_REFUSED:
			break;
		}
		fsesl_delivery_release(&d);
	}
	return NULL;
}

static bool
recover(unsigned int *attempts)
{
	static unsigned int seq;
	uint64_t end = now_ms() + RECOVER_MS;
	char tok[48];

	*attempts = 0;
	while (now_ms() < end) {
		snprintf(tok, sizeof(tok), "recover-%u", seq++);
		int o;

		(*attempts)++;
		o = echo(tok);
		if (o == O_OK)
			return true;
		pace(o);
	}
	return false;
}

static int
set(fsesl_config *cfg, const char *name, const char *value)
{
	char err[160];

	if (fsesl_config_set(cfg, name, value, err, sizeof(err)) != 0) {
		fprintf(stderr, "fsesl-soak: %s=%s: %s\n", name, value, err);
		return -1;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: fsesl-soak [--seconds N] [--workers N] [--seed S] [--verbose]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {"workers", required_argument, NULL, 'w'},
	    {"seed", required_argument, NULL, 'r'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long seconds = 60, nworkers = 16;
	unsigned long seed = (unsigned long)time(NULL) ^ (unsigned long)getpid();
	uint64_t injected[N_FAULTS] = {0}, survived = 0, unrecovered = 0;
	struct fsesl_sim_config sc;
	fsesl_server_stats st;
	fsesl_sub_opts so = {0};
	fsesl_config cfg;
	pthread_t *wt, at, bt, stid = 0;
	char url[128];
	uint64_t start, end, errors = 0, sum = 0;
	uint16_t port = 0;
	int c, rc, status = 0;

	while ((c = getopt_long(argc, argv, "s:w:r:vh", opts, NULL)) != -1) {
		char *ep = NULL;

		switch (c) {
		case 's':
			seconds = strtoul(optarg, &ep, 10);
			break;
		case 'w':
			nworkers = strtoul(optarg, &ep, 10);
			break;
		case 'r':
			seed = strtoul(optarg, &ep, 10);
			break;
		case 'v':
			verbose = true;
			continue;
		default:
			usage();
		}
		if (ep == NULL || *ep != '\0' || ep == optarg)
			usage();
	}
	if (optind != argc || seconds == 0 || nworkers == 0 || nworkers > 1024)
		usage();
	srandom((unsigned int)seed);
	printf("fsesl-soak: %lu s, %lu workers, seed %lu\n", seconds, nworkers, seed);

	fsesl_sim_config_init(&sc);
	sc.password = SOAK_PASSWORD;
	sc.heartbeat_interval_ms = 250;
	rc = fsesl_sim_start(&sc, &sim, &port);
	if (rc != 0) {
		fprintf(stderr, "fsesl-soak: fsesl_sim_start: %d\n", rc);
		return 1;
	}

	fsesl_config_init(&cfg);
	if (set(&cfg, "esl_cmd_timeout", "500") || set(&cfg, "esl_connect_timeout", "500") ||
	    set(&cfg, "backoff", "0,1") || set(&cfg, "backoff_step_every", "50") ||
	    set(&cfg, "max_abandoned", "32") || set(&cfg, "event_heartbeat_interval", "1") ||
	    set(&cfg, "heartbeat_miss_limit", "2") || set(&cfg, "log_level", "debug"))
		return 1;
	cfg.log_fn = log_fn;
	rc = fsesl_engine_start(&cfg, &eng);
	if (rc != 0) {
		fprintf(stderr, "fsesl-soak: fsesl_engine_start: %s\n", fsesl_strerror(rc));
		return 1;
	}
	snprintf(url, sizeof(url), "fs://:%s@127.0.0.1:%u", SOAK_PASSWORD, (unsigned)port);
	rc = fsesl_server_get(eng, url, &srv);
	if (rc != 0) {
		fprintf(stderr, "fsesl-soak: fsesl_server_get: %s\n", fsesl_strerror(rc));
		return 1;
	}

	/* Connected first: a subscribe issued while the first connect is
	 * still in progress waits for it within esl_cmd_timeout, which a slow
	 * (sanitized) start can exceed. */
	{
		unsigned int tries = 0;

		if (!recover(&tries)) {
			fprintf(stderr, "fsesl-soak: the engine never connected\n");
			return 1;
		}
	}
	so.format = FSESL_EVFMT_PLAIN;
	so.queue_size = 1024;
	rc = fsesl_subscriber_create(eng, "soak", &so, &sub);
	if (rc == 0)
		rc = fsesl_subscribe(sub, srv, "HEARTBEAT");
	if (rc == 0)
		rc = fsesl_subscribe(sub, srv, "CUSTOM sim::flood");
	if (rc == -ENOSYS) {
		/* An engine without subscriptions yet: soak the command path. */
		printf("fsesl-soak: subscriptions not available (%s); commands only\n",
		    fsesl_strerror(rc));
		if (sub != NULL)
			fsesl_subscriber_destroy(sub);
		sub = NULL;
	} else if (rc != 0) {
		fprintf(stderr, "fsesl-soak: subscriber: %s\n", fsesl_strerror(rc));
		return 1;
	}

	sem_init(&afree, 0, ASYNC_WINDOW);
	wt = calloc(nworkers, sizeof(*wt));
	if (wt == NULL)
		return 1;
	for (unsigned long i = 0; i < nworkers; i++)
		pthread_create(&wt[i], NULL, worker, (void *)(uintptr_t)i);
	pthread_create(&at, NULL, asubmitter, NULL);
	pthread_create(&bt, NULL, batcher, NULL);
	if (sub != NULL)
		pthread_create(&stid, NULL, subscriber, NULL);

	start = now_ms();
	end = start + seconds * 1000u;
	for (unsigned int round = 0; now_ms() < end; round++) {
		const struct fault_kind *fk = &faults[round % N_FAULTS];
		uint64_t a = rnd(fk->a_min, fk->a_max);
		unsigned int hold = (unsigned int)rnd(100, 1500), attempts = 0;
		uint64_t t0;

		if (fsesl_sim_fault(sim, 0, fk->f, a, fk->b) != 0) {
			fprintf(stderr, "fsesl-soak: fsesl_sim_fault(%s) failed\n", fk->name);
			status = 1;
			break;
		}
		if (fk->kill)
			fsesl_sim_fault(sim, 0, FSESL_SIM_FAULT_KILL_ALL, 0, 0);
		injected[round % N_FAULTS]++;
		usleep(hold * 1000u);
		fsesl_sim_clear_faults(sim);
		t0 = now_ms();
		if (recover(&attempts)) {
			survived++;
		} else {
			unrecovered++;
			fprintf(stderr, "fsesl-soak: no recovery within %u ms after %s\n",
			    RECOVER_MS, fk->name);
		}
		if (verbose)
			printf("  %-18s a=%-6llu held %4u ms, recovered in %llu ms (%u tries)\n",
			    fk->name, (unsigned long long)a, hold,
			    (unsigned long long)(now_ms() - t0), attempts);
		/* A calm stretch between faults, so that steady-state
		 * traffic is part of the mix too. */
		usleep((unsigned int)rnd(50, 300) * 1000u);
	}

	atomic_store(&stop_flag, true);
	for (unsigned long i = 0; i < nworkers; i++)
		pthread_join(wt[i], NULL);
	pthread_join(at, NULL);
	pthread_join(bt, NULL);
	if (sub != NULL)
		pthread_join(stid, NULL);
	free(wt);

	memset(&st, 0, sizeof(st));
	fsesl_server_stats_get(eng, srv, &st);
	if (sub != NULL)
		fsesl_subscriber_destroy(sub);
	fsesl_server_put(eng, srv);
	/* Completes every async request still pending (FSESL_ESHUTDOWN). */
	rc = fsesl_engine_stop(eng);
	if (rc != 0) {
		fprintf(stderr, "fsesl-soak: fsesl_engine_stop: %s\n", fsesl_strerror(rc));
		status = 1;
	}
	fsesl_sim_stop(sim);

	for (unsigned int i = 0; i < ASYNC_WINDOW; i++) {
		if (atomic_load(&aslots[i].issued) != atomic_load(&aslots[i].completed)) {
			fprintf(stderr, "fsesl-soak: async slot %u: %llu issued, %llu completed\n",
			    i, (unsigned long long)aslots[i].issued,
			    (unsigned long long)aslots[i].completed);
			status = 1;
		}
	}
	for (int o = 0; o < O__COUNT; o++) {
		sum += outcomes[o];
		if (o != O_OK && o != O_MISMATCH)
			errors += outcomes[o];
	}

	printf("duration        %.1f s\n", (double)(now_ms() - start) / 1000.0);
	printf("commands        %llu\n", (unsigned long long)submitted);
	printf("ok              %llu\n", (unsigned long long)outcomes[O_OK]);
	printf("errors          %llu", (unsigned long long)errors);
	for (int o = O_ETIMEDOUT; o < O__COUNT; o++)
		if (outcomes[o])
			printf(" %s=%llu", outcome_name[o], (unsigned long long)outcomes[o]);
	printf("\n");
	printf("mismatches      %llu\n",
	    (unsigned long long)(outcomes[O_MISMATCH] + a_outcomes[O_MISMATCH] +
	                         b_outcomes[O_MISMATCH]));
	printf("async           issued %llu completed %llu double %llu refused %llu ok %llu\n",
	    (unsigned long long)a_issued, (unsigned long long)a_done, (unsigned long long)a_double,
	    (unsigned long long)a_submit_err, (unsigned long long)a_outcomes[O_OK]);
	printf("batch           calls %llu items %llu ok %llu mismatches %llu\n",
	    (unsigned long long)b_calls, (unsigned long long)b_items,
	    (unsigned long long)b_outcomes[O_OK], (unsigned long long)b_outcomes[O_MISMATCH]);
	printf("faults          injected %llu survived %llu unrecovered %llu:",
	    (unsigned long long)(survived + unrecovered), (unsigned long long)survived,
	    (unsigned long long)unrecovered);
	for (size_t i = 0; i < N_FAULTS; i++)
		printf(" %s=%llu", faults[i].name, (unsigned long long)injected[i]);
	printf("\n");
	printf("engine          connects %llu reconnects %llu connect_failures %llu "
	       "timeouts %llu late_replies %llu forged %llu\n",
	    (unsigned long long)st.connects, (unsigned long long)st.reconnects,
	    (unsigned long long)st.connect_failures, (unsigned long long)st.timeouts,
	    (unsigned long long)st.late_replies, (unsigned long long)st.forged_events);
	printf("events          delivered %llu dropped %llu down %llu up %llu\n",
	    (unsigned long long)ev_events, (unsigned long long)ev_dropped,
	    (unsigned long long)ev_down, (unsigned long long)ev_up);
	printf("password leaks  %llu\n", (unsigned long long)pw_leaks);

	if (sum != submitted || outcomes[O_MISMATCH] || a_outcomes[O_MISMATCH] || a_double ||
	    a_done != a_issued || unrecovered || pw_leaks || ev_errors || outcomes[O_OTHER] ||
	    a_outcomes[O_OTHER] || outcomes[O_OK] == 0 || b_outcomes[O_MISMATCH] ||
	    b_outcomes[O_OTHER] || b_outcomes[O_OK] == 0)
		status = 1;
	printf("result          %s\n", status ? "FAIL" : "PASS");
	return status;
}
