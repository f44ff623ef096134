/*
 * engine.c - start, stop and engine-wide statistics.
 *
 * Stop goes through the engine's reference (ref.c): it sets STOPPING in
 * the slot word that also counts the callers inside the engine, so from
 * then on no call gets in, and the reactor waits for the count to reach 0
 * before its last drain. So no request is ever stranded in a ring that
 * nobody drains again, and nothing is freed while a caller still reads it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"

static int
config_check(const fsesl_config *c)
{
	unsigned int i;

	if (c->ring_size < 4 || (c->ring_size & (c->ring_size - 1)))
		return FSESL_ECONFIG;
	if (!c->max_in_flight || !c->connections_per_server || c->connections_per_server > 64)
		return FSESL_ECONFIG;
	if (!c->esl_connect_timeout || !c->esl_cmd_timeout || !c->esl_cmd_polling_itv)
		return FSESL_ECONFIG;
	if (!c->backoff_steps || c->backoff_steps > FSESL_MAX_BACKOFF_STEPS ||
	    !c->backoff_step_every)
		return FSESL_ECONFIG;
	for (i = 0; i < c->backoff_steps; i++)
		if (c->backoff_s[i] > 86400)
			return FSESL_ECONFIG;
	if (c->wait_mode != FSESL_WAIT_FUTEX && c->wait_mode != FSESL_WAIT_POLL)
		return FSESL_ECONFIG;
	if (c->max_body_bytes < 1024)
		return FSESL_ECONFIG;
	return 0;
}

int
fsesl_engine_start(const fsesl_config *cfg, fsesl_engine **out)
{
	struct fsesl_engine *e;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	if (cfg)
		e->cfg = *cfg;
	else
		fsesl_config_init(&e->cfg);
	err = config_check(&e->cfg);
	if (err)
		goto out_free;
	fsesl_limits_init(&e->lim);
	e->lim.max_body_bytes = e->cfg.max_body_bytes;
	e->ops = &fsesl_wait_ops_linux;
	e->epfd = -1;
	err = fsesl_registry_init(e);
	if (err)
		goto out_free;
	err = fsesl_sq_init(&e->sq, e->cfg.ring_shards, e->cfg.ring_size, e->ops);
	if (err)
		goto out_registry;
	/* Before the reactor: its callbacks may call in with e->ref. */
	err = fsesl_ref_alloc(e, out);
	if (err)
		goto out_sq;
	err = fsesl_reactor_start(e);
	if (err)
		goto out_ref;
	return 0;
out_ref:
	*out = NULL;
	fsesl_ref_release(e);
out_sq:
	fsesl_sq_destroy(&e->sq);
out_registry:
	fsesl_registry_destroy(e);
out_free:
	free(e);
	return err;
}

int
fsesl_engine_stop(fsesl_engine *ref)
{
	struct fsesl_engine *e;
	int err;

	if (!ref)
		return -EINVAL;
	if (fsesl_on_reactor)
		return FSESL_EINCALLBACK;
	err = fsesl_ref_stop(ref, &e);
	if (err)
		return err;
	/* seq_cst: the reactor's loop test; it then waits for the callers
	 * the slot counted before STOPPING (fsesl_window_callers). */
	atomic_store_explicit(&e->stopping, true, memory_order_seq_cst);
	fsesl_doorbell_ring(&e->sq.db);
	pthread_join(e->thread, NULL);
	/* Dispatchers of subscribers destroyed from callbacks: their
	 * callbacks have seen FSESL_ESHUTDOWN by now, if they waited on us. */
	fsesl_retired_reap(e, true);
	/* Stops the engine's call_rcu worker (drained by the reactor's
	 * barrier before it exited). liburcu's free waits for the worker to
	 * say it stopped but does not join it: join it here, or every
	 * start/stop cycle would leave a thread's stack behind. */
	{
		pthread_t rcu_tid = urcu_bp_get_call_rcu_thread(e->crdp);

		urcu_bp_call_rcu_data_free(e->crdp);
		pthread_join(rcu_tid, NULL);
	}
	close(e->epfd);
	fsesl_registry_destroy(e);
	fsesl_sq_destroy(&e->sq);
	free(e->timers.v);
	/* Last: from here every token of e is stale. */
	fsesl_ref_release(e);
	free(e);
	return 0;
}

void
fsesl_engine_stats_get(fsesl_engine *ref, fsesl_engine_stats *out)
{
	struct fsesl_engine *e;

	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (fsesl_window_enter(ref, &e) != 0)
		return;
	out->submitted = atomic_load_explicit(&e->submitted, memory_order_relaxed);
	out->doorbell_writes = atomic_load_explicit(&e->sq.db.writes, memory_order_relaxed);
	out->loop_iterations = atomic_load_explicit(&e->loop_iterations, memory_order_relaxed);
	out->futex_wakes = atomic_load_explicit(&e->futex_wakes, memory_order_relaxed) +
	                   atomic_load_explicit(&e->wakes.wakes, memory_order_relaxed);
	out->wake_flushes = atomic_load_explicit(&e->wakes.flushes, memory_order_relaxed);
	out->wake_syscalls = atomic_load_explicit(&e->wakes.syscalls, memory_order_relaxed) +
	                     atomic_load_explicit(&e->futex_wakes, memory_order_relaxed);
	out->wake_uring = fsesl_wakeb_backend(&e->wakes) == FSESL_WAKEB_URING;
	out->servers = atomic_load_explicit(&e->n_servers, memory_order_relaxed);
	fsesl_window_leave(e);
}
