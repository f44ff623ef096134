/*
 * bench.h - fsesl-bench internals: scenarios, results, histograms, and the
 * pieces each scenario family needs (simulator host, raw ESL client,
 * engine runs, reports). Nothing here is public API.
 */
#ifndef FSESL_BENCH_H
#define FSESL_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "wake.h"

#define BENCH_MAX_SERVERS 32
#define BENCH_MAX_WORKERS 1024
#define BENCH_TOKEN_MAX 64

/* ------------------------------------------------------------------ */
/* Log-linear latency histogram (HDR-like), in nanoseconds              */
/* ------------------------------------------------------------------ */

/*
 * 32 sub-buckets per power of two above 64 ns (~3 % relative error), exact
 * below; values up to 2^40 ns (18 min), larger ones clamp into the last
 * bucket. A fixed array: recording never allocates, so it can sit on the
 * hot path of every worker.
 */
#define HIST_SUB_BITS 5
#define HIST_LINEAR 64u
#define HIST_MAX_SHIFT 35u
#define HIST_BUCKETS (HIST_LINEAR + HIST_MAX_SHIFT * (1u << HIST_SUB_BITS))

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t min;
	uint64_t sum;
	uint64_t b[HIST_BUCKETS];
};

void hist_reset(struct hist *h);
void hist_record(struct hist *h, uint64_t ns);
void hist_merge(struct hist *dst, const struct hist *src);
/* Value (ns) at quantile q in [0,1]: the representative of its bucket,
 * never above the exact maximum. 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
/* Bucket i's representative value (ns), for plotting. */
uint64_t hist_bucket_value(unsigned i);

/* ------------------------------------------------------------------ */
/* Time                                                                 */
/* ------------------------------------------------------------------ */

uint64_t now_ns(void);
/* Sleeps until the CLOCK_MONOTONIC time t (ns). */
void sleep_until_ns(uint64_t t);
void sleep_ns(uint64_t ns);
/* User+system CPU of this process (ns); the simulator runs in a child.
 * csw (may be NULL) gets its context switches, voluntary + involuntary. */
uint64_t self_cpu_ns(uint64_t *csw);

/*
 * Client CPU over a measured window (cpu.c): the process's CPU clock less
 * the harness's own threads, and the part of it used by the threads that
 * registered as the application's (callers); the rest is the I/O side.
 * open and close must run on the same thread, the one timing the window.
 */
struct cpu_window {
	uint64_t proc0, self0, ru0, csw0;
	uint64_t client_ns; /* results, after close */
	uint64_t app_ns;
	uint64_t rusage_ns; /* getrusage over the same window: a cross-check */
	uint64_t csw;
};
/* The calling thread issues commands (a worker, an event consumer). */
void cpu_thread_app(void);
/* Thread t is the harness's for the whole run (the watchdog). Call it
 * before the first scenario. */
void cpu_thread_harness_permanent(pthread_t t);
/* Forgets the application threads of the previous scenario. */
void cpu_registry_reset(void);
void cpu_window_open(struct cpu_window *w);
void cpu_window_close(struct cpu_window *w);
/* Resident set size of this process in bytes (from /proc/self/statm). */
uint64_t self_rss_bytes(void);

/* ------------------------------------------------------------------ */
/* Scenarios                                                            */
/* ------------------------------------------------------------------ */

enum bench_kind {
	K_BARE = 0, /* raw pipelined client, one connection, window W */
	K_OPENSIPS, /* one manager thread + sleep-polling workers */
	K_PER_WORKER, /* one blocking connection per worker (libesl) */
	K_ENGINE, /* fsesl blocking API, futex or poll wait */
	K_ASYNC, /* fsesl_api_async with a window */
	K_MANY_CONNS, /* many connections, many in flight, one reactor */
	K_BLOCKING, /* hand-written N workers + one I/O thread, futex hand-off */
};

enum bench_mix {
	MIX_SMALL = 0, /* api echo <token> */
	MIX_LARGE, /* api echo <token><padding>: ~large_bytes replies */
	MIX_BGAPI, /* bgapi echo <token> (immediate reply checked) */
	MIX_MIXED, /* 80 % small, 10 % large, 10 % bgapi */
	MIX_JOB, /* bgapi echo <token> and wait for its BACKGROUND_JOB (engine only) */
};

struct scenario {
	char name[64];
	enum bench_kind kind;
	const char *mode; /* stable text for JSON/CSV */
	unsigned workers;
	unsigned servers;
	unsigned conns_per_server;
	unsigned window; /* in flight per connection (bare/async) */
	enum bench_mix mix;
	unsigned event_rate; /* events/s flowing meanwhile, 0 none */
	unsigned open_rate; /* commands/s total, 0 = closed loop */
	int wait_mode; /* K_ENGINE: enum fsesl_wait_mode */
	unsigned batch; /* K_ENGINE: commands per fsesl_api_many() call, 0 single */
	unsigned polling_itv_us; /* OpenSIPS esl_cmd_polling_itv */
	enum wake_tech wake; /* K_BLOCKING: how its I/O thread wakes workers */
	bool enabled;
};

struct result {
	const struct scenario *sc;
	bool ran;
	char skip_reason[128];
	double seconds; /* measured window */
	uint64_t commands; /* completed inside the window */
	uint64_t total_commands; /* all completed, warm-up and drain too */
	double cmds_per_s;
	struct hist lat;
	double cpu_us_per_cmd; /* client CPU (cpu.c) */
	double io_cpu_us_per_cmd; /* its I/O side's share; < 0: no such side */
	double rusage_cpu_us_per_cmd; /* getrusage of the whole process */
	double wake_syscalls_per_cmd; /* hand-off syscalls per command, < 0 n/a */
	double csw_per_cmd; /* context switches of the client process */
	double submit_syscalls_per_cmd; /* < 0: not measured */
	double server_cpu_us_per_cmd; /* simulator's CPU, < 0 unknown */
	uint64_t errors;
	uint64_t mismatches;
	uint64_t lost;
	uint64_t events; /* events delivered to us meanwhile */
	double mem_per_conn_bytes; /* K_MANY_CONNS, else < 0 */
	unsigned connections; /* actually used */
	char first_error[160];
	char note[160]; /* how the scenario had to be run, if unusual */
};

/* How the embedded simulator behaves (--sim-mode). */
enum bench_sim_mode {
	SIM_MODE_FAST = 0, /* answers as fast as it can: the client is measured */
	SIM_MODE_FS_LIKE, /* like a real FreeSWITCH 1.10.12 (fsesl_sim_config_fs_like) */
};
#define SIM_KNOB_UNSET (~0u)
const char *sim_mode_name(enum bench_sim_mode m);

/* Run-wide settings from the command line. */
struct bench_opts {
	double duration_s; /* per scenario, warm-up included */
	double warmup_s;
	bool quick;
	bool json, csv;
	const char *plot_file;
	const char *urls[BENCH_MAX_SERVERS];
	unsigned n_urls;
	unsigned large_bytes;
	const char *password; /* sim password */
	bool progress;
	unsigned timeout_ms; /* per command, for loss detection */
	unsigned repeat; /* rounds over the plan; each scenario keeps its best run */
	bool full; /* the whole scenario matrix */
	/* The wake technique of the bare-blocking baseline that the engine
	 * is compared with ("fsesl vs its own technique"). */
	enum wake_tech engine_wake;
	/* Simulator behaviour: a mode, then knobs given explicitly on top
	 * (SIM_KNOB_UNSET: the mode's value; see simhost.c). */
	enum bench_sim_mode sim_mode;
	unsigned sim_api_cost_us;
	unsigned sim_bgapi_cost_us;
	unsigned sim_event_poll_ms;
};

/* Where the servers are: host/port/password (sim or --url). */
struct bench_target {
	char host[256];
	uint16_t port;
	char user[256];
	char password[256];
	char url[1024];
};

struct bench_env {
	const struct bench_opts *o;
	struct bench_target targets[BENCH_MAX_SERVERS];
	unsigned n_targets;
	bool sim; /* targets are our simulators */
};

/* Shared run-time state of one scenario, read by every worker thread. */
enum { PH_WARMUP = 0, PH_MEASURE = 1, PH_STOP = 2 };
struct run_ctl {
	_Atomic int phase;
	uint64_t t_measure, t_stop;
	/* Set by the first completion inside the window: the window is held
	 * open (up to the command timeout) until there is one, so a stalled
	 * moment never yields an empty, meaningless measurement. */
	_Atomic bool progress;
};

static inline bool
measuring(struct run_ctl *ctl)
{
	/* Acquire: pairs with run_window's release stores. */
	return atomic_load_explicit(&ctl->phase, memory_order_acquire) == PH_MEASURE;
}

static inline bool
stopping(struct run_ctl *ctl)
{
	/* Acquire: pairs with run_window's release store of PH_STOP. */
	return atomic_load_explicit(&ctl->phase, memory_order_acquire) == PH_STOP;
}

/* Called with every completion counted in the window. After the first,
 * a read of a line nobody writes: no contention between workers. */
static inline void
ctl_progress(struct run_ctl *ctl)
{
	/* Relaxed both: only run_window reads it, and it only needs to see
	 * the flag eventually (it polls). */
	if (!atomic_load_explicit(&ctl->progress, memory_order_relaxed))
		atomic_store_explicit(&ctl->progress, true, memory_order_relaxed);
}

/* Per-thread accounting; each worker owns one, merged at the end. */
struct wstats {
	struct hist lat;
	uint64_t commands; /* completed during PH_MEASURE */
	uint64_t total;
	uint64_t errors;
	uint64_t mismatches;
	uint64_t lost;
	uint64_t submit_syscalls;
	char first_error[160];
} __attribute__((aligned(64)));

void wstats_error(struct wstats *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wstats_mismatch(struct wstats *w, const char *want, const char *got, size_t got_len);
/* Adds w into r (histograms and counters). */
void result_add(struct result *r, const struct wstats *w);

/*
 * The shared measuring procedure: waits the warm-up, snapshots CPU, opens
 * the measured window, waits, closes it. The caller starts its threads
 * before and joins them after. Fills r->seconds and r->cpu_us_per_cmd
 * later (result_finish).
 */
struct window_snap {
	struct cpu_window cpu;
	uint64_t t0, t1;
	uint64_t srv_cpu0, srv_cpu1;
};
/* hook (may be NULL) runs right after the opening (which 0) and the
 * closing (which 1) snapshots: engine statistics, RSS. */
typedef void (*window_hook)(void *ud, int which);
void run_window(const struct bench_env *env, struct run_ctl *ctl, struct window_snap *snap,
    window_hook hook, void *ud);
void result_finish(struct result *r, const struct window_snap *snap);

/* Open loop pacing: worker k of n, total rate R: its i-th command is due
 * at base + (k + i*n) / R. Sleeps until then; returns the intended send
 * time (now, in a closed loop). */
uint64_t pace(const struct scenario *sc, uint64_t base, unsigned k, uint64_t i);

/* Tokens: unique per run, scenario, thread and sequence number. */
int make_token(char *buf, size_t cap, unsigned scen, unsigned thread, uint64_t seq);
/* Checks a reply body against its token for the mix; 0 ok, -1 mismatch. */
int check_echo(const char *token, const char *body, size_t len, unsigned pad);
/* Fills `pad` bytes of padding for the large mix (deterministic letters). */
const char *large_padding(unsigned n);
/* Mix selection for command number seq. */
enum bench_mix mix_pick(enum bench_mix m, uint64_t seq);

/* ------------------------------------------------------------------ */
/* Simulator host (child process)                                       */
/* ------------------------------------------------------------------ */

bool simhost_available(void);
/* The simulator's pacing for these options: the mode's, then the knobs
 * given on the command line. */
struct sim_knobs {
	unsigned api_cost_us, bgapi_cost_us, event_poll_ms;
	unsigned byte_cost_ns, dispatch_cost_us; /* fs-like only */
};
void simhost_knobs(const struct bench_opts *o, struct sim_knobs *k);
/* Forks the child, starts n simulators in it; fills targets. 0 or -errno. */
int simhost_start(unsigned n, const struct bench_opts *o, struct bench_target *targets);
/* Events per second of CUSTOM sim::flood on every connection (0 stops). */
/* Events at `rate` per second from the first `servers` simulators (0: stop). */
int simhost_flood(unsigned rate, unsigned servers);
/* CUSTOM/other events the simulators have written so far, all servers. */
uint64_t simhost_events_sent(void);
/* CPU time (ns) used by the simulator process so far; 0 if unknown. */
uint64_t simhost_cpu_ns(void);
void simhost_stop(void);

/* ------------------------------------------------------------------ */
/* Raw ESL client (baselines)                                           */
/* ------------------------------------------------------------------ */

struct rawconn {
	int fd;
	char *buf;
	size_t cap, len, off, last_len;
	uint64_t writes;
};

/* Connects, reads the greeting, authenticates. 0 or -errno/-1 with msg. */
int rawconn_open(struct rawconn *c, const struct bench_target *t, char *err, size_t errlen);
void rawconn_close(struct rawconn *c);
/* Writes all of buf (blocking socket). */
int rawconn_write(struct rawconn *c, const char *buf, size_t len);
/*
 * Next reply (command/reply or api/response; events are skipped and
 * counted in *events). Blocks up to timeout_ms. Returns 1 with body/text
 * views valid until the next call, 0 on timeout, negative on error.
 */
struct rawreply {
	bool api;
	const char *body;
	size_t body_len;
	const char *reply_text;
	size_t reply_text_len;
	const char *job_uuid;
	size_t job_uuid_len;
};
int rawconn_next(struct rawconn *c, struct rawreply *rep, int timeout_ms, uint64_t *events);
/* The same from the bytes already read only: 1, 0 (need more), < 0. For an
 * I/O thread that reads on readiness (blocking.c). */
int rawconn_parse(struct rawconn *c, struct rawreply *rep, uint64_t *events);
/* One non-blocking recv: bytes read (0: nothing there), < 0 error or EOF.
 * *room (may be NULL) gets the space it had: a read that filled it all
 * may have left more in the socket. */
ssize_t rawconn_recv(struct rawconn *c, size_t *room);
/* Encodes the command for token/mix into dst; returns length or < 0. */
ssize_t encode_request(
    char *dst, size_t cap, enum bench_mix kind, const char *token, unsigned large_bytes);
/* Checks a raw reply against its request; 0 ok, -1 mismatch (w updated). */
int check_raw_reply(struct wstats *w, enum bench_mix kind, const char *token,
    const struct rawreply *rep, unsigned large_bytes);

/* ------------------------------------------------------------------ */
/* Events on a real server (--url): paced sendevent (flood.c)           */
/* ------------------------------------------------------------------ */

#define FLOOD_SUBCLASS "sim::flood" /* the simulator's EVENT_FLOOD uses it too */

struct flood {
	struct rawconn c;
	pthread_t tid;
	_Atomic bool stop;
	bool running;
	unsigned rate;
	uint64_t sent; /* read after flood_stop */
	uint64_t errors; /* read after flood_stop */
	char err[160];
};
/* Opens its own connection to t and fires CUSTOM FLOOD_SUBCLASS events at
 * `rate` per second until flood_stop. 0 or negative (f->err says why). */
int flood_start(struct flood *f, const struct bench_target *t, unsigned rate);
void flood_stop(struct flood *f);

/* ------------------------------------------------------------------ */
/* Scenario runners                                                     */
/* ------------------------------------------------------------------ */

void run_bare(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);
void run_opensips(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);
void run_per_worker(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);
void run_engine(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);
void run_async(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);
void run_many_conns(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);
void run_blocking(
    const struct bench_env *env, unsigned idx, const struct scenario *sc, struct result *r);

/* ------------------------------------------------------------------ */
/* Reports                                                              */
/* ------------------------------------------------------------------ */

struct ratios {
	/* Targets (docs/benchmarks.md, issue 15 and before). */
	double futex_vs_bare_window_16;
	double futex_vs_bare_window_64;
	double futex_64w_vs_16w;
	double futex_cpu_us_per_cmd_16w;
	double futex_cpu_us_per_cmd_64w;
	double serial_p50_vs_bare_rtt;
	double futex_vs_blocking_16w; /* vs the baseline with the engine's wake */
	double futex_vs_blocking_64w;
	double futex_vs_opensips_16w;
	double futex_vs_opensips_64w;
	double futex_p50_vs_opensips_16w; /* p50 ratio: lower is better */
	double futex_p50_vs_opensips_64w;
	double futex_vs_per_worker_16w;
	double futex_p99_vs_per_worker_16w;
	double async_vs_bare_pipeline;
	double futex_submit_syscalls_64w;
	/* Context, no target: where the engine's technique itself stands. */
	double blocking_vs_bare_window_16;
	double blocking_vs_bare_window_64;
	double blocking_p50_vs_bare_rtt;
	double blocking_uring_vs_blocking_16w;
	double blocking_uring_vs_blocking_64w;
	/* Not ratios: how they were computed. */
	enum wake_tech engine_wake; /* the baseline variant used above */
	bool fs_like; /* the simulator was FreeSWITCH-like: other goals */
};
void compute_ratios(const struct result *res, size_t n, const struct bench_opts *o, bool uring_ok,
    struct ratios *out);
/* The bare-blocking twin of an engine scenario (same workers, connections,
 * servers, events; the engine's wake technique): its name, or NULL. */
const char *blocking_twin(const char *name, enum wake_tech t, char *buf, size_t cap);
void report_table(FILE *f, const struct result *res, size_t n, const struct ratios *ra);
int report_json(FILE *f, const struct bench_env *env, const struct result *res, size_t n,
    const struct ratios *ra, bool uring_ok, const char *uring_why);
void report_csv(FILE *f, const struct result *res, size_t n);
int report_plot(const char *path, const struct result *res, size_t n);

#endif /* FSESL_BENCH_H */
