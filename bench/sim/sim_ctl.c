/*
 * sim_ctl.c - control from other threads: each public call becomes an
 * operation run by the loop thread and waited for, so a fault set before
 * connect() is in force when the connection arrives. The faults themselves
 * and the event flood live here too.
 */
#include "sim_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sim_conn *
sim_conn_by_id(struct fsesl_sim *s, uint64_t id)
{
	for (struct sim_conn *c = s->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
sim_kill_all(struct fsesl_sim *s)
{
	/* Closed by the pump of this turn: connections are only freed there, so
	 * no epoll event of this batch can point at freed memory. */
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		c->hard_close = true;
		sim_conn_poke(c);
	}
	/* A restart: new Core-UUID, empty channel table. */
	sim_uuid(s->core_uuid);
	for (size_t i = 0; i < s->n_chans; i++) {
		free(s->chans[i].name);
		free(s->chans[i].dest);
	}
	s->n_chans = 0;
}

/* What a counting fault counts from: the messages or bytes written so
 * far. A threaded connection's thread counts its bytes itself and takes
 * the fault when it next looks, before any further write: from there. */
static uint64_t
sim_fault_base(const struct sim_conn *c, enum fsesl_sim_fault f)
{
	if (f != FSESL_SIM_FAULT_CLOSE_AFTER_BYTES)
		return c->msgs_written;
	return c->threaded ? SIM_BASE_LATER : c->bytes_written;
}

static int
sim_apply_fault(struct fsesl_sim *s, uint64_t conn, enum fsesl_sim_fault f, uint64_t a, uint64_t b)
{
	switch (f) {
	case FSESL_SIM_FAULT_NONE:
		return 0;
	case FSESL_SIM_FAULT_REFUSE:
		sim_unlisten(s);
		s->refused = true;
		s->c.faults[f]++;
		return 0;
	case FSESL_SIM_FAULT_SILENT_ACCEPT:
		s->silent_accept = true;
		return 0;
	case FSESL_SIM_FAULT_RUDE_REJECT:
		s->rude_reject = true;
		return 0;
	case FSESL_SIM_FAULT_NO_HEARTBEAT:
		s->no_heartbeat = true;
		return 0;
	case FSESL_SIM_FAULT_EVENT_FLOOD:
		sim_flood_stop(s);
		s->flood_rate = a;
		s->flood_deadline = a ? sim_now_ns() : 0;
		s->flood_tick = 0;
		return 0;
	case FSESL_SIM_FAULT_KILL_ALL:
		s->c.faults[f]++;
		sim_kill_all(s);
		return 0;
	default:
		break;
	}
	if ((unsigned)f >= FSESL_SIM_FAULT__COUNT)
		return -EINVAL;
	if (f == FSESL_SIM_FAULT_INJECT_REPLY && a > FSESL_SIM_INJECT_API_RESPONSE)
		return -EINVAL;
	struct sim_fault_state st = {.on = true, .a = a, .b = b};
	bool one_shot = f == FSESL_SIM_FAULT_CLOSE_MID_FRAME || f == FSESL_SIM_FAULT_GARBAGE ||
	                f == FSESL_SIM_FAULT_DROP_REPLY || f == FSESL_SIM_FAULT_INJECT_REPLY;
	if (conn == 0) {
		/* One-shot faults hit the connections open now, not new ones: a
		 * client must be able to reconnect (and authenticate) after them. */
		if (!one_shot)
			s->tmpl[f] = st;
		for (struct sim_conn *c = s->conns; c; c = c->next) {
			c->f[f] = st;
			c->f[f].base = sim_fault_base(c, f);
			if (f == FSESL_SIM_FAULT_DROP_REPLY)
				c->drop_countdown = 0;
			if (f == FSESL_SIM_FAULT_INJECT_REPLY)
				c->inject_countdown = 0;
			sim_ep_update(c);
			sim_conn_poke(c);
		}
		if (f == FSESL_SIM_FAULT_STALL)
			s->c.faults[f]++;
		return 0;
	}
	struct sim_conn *c = sim_conn_by_id(s, conn);
	if (!c)
		return -ENOENT;
	c->f[f] = st;
	c->f[f].base = sim_fault_base(c, f);
	if (f == FSESL_SIM_FAULT_STALL)
		s->c.faults[f]++;
	if (f == FSESL_SIM_FAULT_DROP_REPLY)
		c->drop_countdown = 0;
	if (f == FSESL_SIM_FAULT_INJECT_REPLY)
		c->inject_countdown = 0;
	sim_ep_update(c);
	sim_conn_poke(c);
	return 0;
}

static void
sim_clear_faults(struct fsesl_sim *s)
{
	memset(s->tmpl, 0, sizeof(s->tmpl));
	s->silent_accept = s->rude_reject = s->no_heartbeat = false;
	sim_flood_stop(s);
	for (struct sim_conn *c = s->conns; c; c = c->next) {
		memset(c->f, 0, sizeof(c->f));
		c->pause_deadline = 0;
		c->reading = !c->closing;
		sim_ep_update(c);
		sim_conn_poke(c);
	}
	if (s->refused) {
		s->refused = false;
		sim_listen(s);
	}
}

static int
sim_fire_user_event(struct fsesl_sim *s, const struct sim_op *op)
{
	int type = op->u.fire.name ? sim_ev_lookup(op->u.fire.name) : -1;

	if (type < 0 || type == EV_ALL)
		return -EINVAL;
	struct sim_event *ev =
	    sim_event_std(s, type, op->u.fire.subclass, "fsesl_sim.c", "fsesl_sim_fire_event", 1);
	if (!ev)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < op->u.fire.n_kv; i += 2)
		sim_event_add(ev, op->u.fire.kv[i], op->u.fire.kv[i + 1]);
	if (op->u.fire.body)
		sim_event_set_body(ev, op->u.fire.body, strlen(op->u.fire.body));
	sim_dispatch(s, ev);
	return 0;
}

static void
sim_run_op(struct fsesl_sim *s, struct sim_op *op)
{
	op->rc = 0;
	switch (op->kind) {
	case OP_LOAD:
		s->load = op->u.load;
		s->load_set = true;
		break;
	case OP_HB_INTERVAL:
		s->hb_ms = op->u.ms;
		s->hb_deadline = s->hb_ms ? sim_now_ns() + (uint64_t)s->hb_ms * 1000000u : 0;
		break;
	case OP_FIRE_HB:
		sim_heartbeat(s);
		break;
	case OP_FIRE_EVENT:
		op->rc = sim_fire_user_event(s, op);
		break;
	case OP_FAULT:
		op->rc = sim_apply_fault(
		    s, op->u.fault.conn, op->u.fault.f, op->u.fault.a, op->u.fault.b);
		break;
	case OP_CLEAR_FAULTS:
		sim_clear_faults(s);
		break;
	case OP_COUNTERS:
		*op->u.counters = s->c;
		break;
	case OP_RECORD:
		s->recording = op->u.on;
		break;
	case OP_RECORDED:
		*op->u.rec.lines = s->rec;
		op->u.rec.n = s->n_rec;
		s->rec = NULL;
		s->n_rec = s->cap_rec = 0;
		break;
	case OP_CONN_IDS: {
		size_t n = 0;
		for (struct sim_conn *c = s->conns; c; c = c->next)
			if (n < op->u.ids.max)
				op->u.ids.ids[n++] = c->id;
		op->u.ids.n = n;
		break;
	}
	case OP_STOP:
		s->running = false;
		break;
	}
}

void
sim_drain_ops(struct fsesl_sim *s)
{
	uint64_t v;
	ssize_t r = read(s->efd, &v, sizeof(v));
	(void)r;

	pthread_mutex_lock(&s->mu);
	struct sim_op *list = s->ops;
	s->ops = s->ops_tail = NULL;
	pthread_mutex_unlock(&s->mu);
	while (list) {
		struct sim_op *next = list->next;
		sim_run_op(s, list);
		pthread_mutex_lock(&s->mu);
		list->done = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		list = next;
	}
}

/* Runs op on the server's thread and waits for it. */
int
sim_call(fsesl_sim *s, struct sim_op *op)
{
	uint64_t one = 1;

	op->done = false;
	op->next = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->ops_tail)
		s->ops_tail->next = op;
	else
		s->ops = op;
	s->ops_tail = op;
	ssize_t w = write(s->efd, &one, sizeof(one));
	(void)w;
	while (!op->done)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return op->rc;
}
