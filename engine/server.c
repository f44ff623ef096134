/*
 * server.c - the server registry and the handle table.
 *
 * Both are RCU lock-free hash tables (liburcu's bp flavour: no thread
 * registration, so any caller thread may read). Lookups never lock.
 *
 * Lifetime of a server entry: refs counts handles plus requests the
 * reactor has not finished with. Workers take a reference only with
 * "increment unless DEAD" inside a read-side section, so an entry that
 * the reactor has marked DEAD (CAS 0 -> DEAD, only when refs is 0) can
 * never come back; its memory is freed by call_rcu after it has left the
 * table, when no reader can still hold a pointer to it. A get that finds a
 * DEAD entry waits (yielding) until the reactor has unlinked it, then
 * inserts a fresh one.
 *
 * Handles are ids, not pointers: the handle table maps id -> entry. A put
 * unlinks the handle with cds_lfht_del, which exactly one caller can win,
 * so a second put (or any use after put) finds nothing: FSESL_EBADHANDLE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

static unsigned long
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (unsigned long)h;
}

static unsigned long
hash_id(uint64_t x)
{
	/* splitmix64 finaliser: handle ids are sequential. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (unsigned long)x;
}

static int
match_srv(struct cds_lfht_node *n, const void *key)
{
	struct fsesl_srv *s = caa_container_of(n, struct fsesl_srv, node);

	return strcmp(s->key, (const char *)key) == 0;
}

static int
match_handle(struct cds_lfht_node *n, const void *key)
{
	struct fsesl_handle *h = caa_container_of(n, struct fsesl_handle, node);

	return h->id == *(const uint64_t *)key;
}

int
fsesl_registry_init(struct fsesl_engine *e)
{

	e->servers = cds_lfht_new_flavor(
	    64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_bp_flavor, NULL);
	e->handles = cds_lfht_new_flavor(
	    256, 256, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_bp_flavor, NULL);
	if (!e->servers || !e->handles) {
		if (e->servers)
			cds_lfht_destroy(e->servers, NULL);
		if (e->handles)
			cds_lfht_destroy(e->handles, NULL);
		e->servers = e->handles = NULL;
		return -ENOMEM;
	}
	atomic_init(&e->next_handle, 1);
	return 0;
}

/* Increment unless DEAD. acq_rel: pairs with the reaper's CAS 0 -> DEAD. */
static bool
srv_ref_get(struct fsesl_srv *s)
{
	uint32_t v = atomic_load_explicit(&s->refs, memory_order_acquire);

	do {
		if (v & FSESL_SRV_DEAD)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    &s->refs, &v, v + 1, memory_order_acq_rel, memory_order_acquire));
	return true;
}

/* Reactor: an extra reference for a request it creates itself; the entry
 * cannot be DEAD while the reactor still works on it. */
void
fsesl_srv_ref_reactor(struct fsesl_srv *s)
{

	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void
fsesl_srv_unref(struct fsesl_srv *s)
{

	/* release: everything this holder did with the entry happens before
	 * the reaper's CAS (acquire) can see 0. */
	atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release);
}

void
fsesl_srv_creds(struct fsesl_srv *s, char *user, size_t ulen, char *pw, size_t plen)
{

	pthread_mutex_lock(&s->cred_lock);
	snprintf(user, ulen, "%s", s->user);
	snprintf(pw, plen, "%s", s->password);
	pthread_mutex_unlock(&s->cred_lock);
}

static void
srv_set_creds(struct fsesl_srv *s, const char *user, const char *password)
{

	pthread_mutex_lock(&s->cred_lock);
	snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
	snprintf(s->password, sizeof(s->password), "%s", password);
	pthread_mutex_unlock(&s->cred_lock);
}

/* Numeric addresses directly; names with getaddrinfo here, in the
 * caller's thread, because it may block and the reactor must not. */
static int
srv_resolve(struct fsesl_srv *s)
{
	struct sockaddr_in *a4;
	struct sockaddr_in6 *a6;
	struct addrinfo hints, *res = NULL;
	char port[8];

	s->addr = calloc(1, sizeof(*s->addr));
	if (!s->addr)
		return -ENOMEM;
	a4 = (struct sockaddr_in *)s->addr;
	a6 = (struct sockaddr_in6 *)s->addr;
	if (inet_pton(AF_INET, s->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(s->port);
		s->addrlen = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, s->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(s->port);
		s->addrlen = sizeof(*a6);
		return 0;
	}
	if (fsesl_on_reactor) {
		/* getaddrinfo may block: not on the reactor (a callback). */
		free(s->addr);
		s->addr = NULL;
		return FSESL_EINCALLBACK;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", (unsigned)s->port);
	if (getaddrinfo(s->host, port, &hints, &res) != 0 || !res) {
		/* Its own code: -EHOSTUNREACH would read "No route to host",
		 * which sends the user looking at routes, not at the name. */
		free(s->addr);
		s->addr = NULL;
		return FSESL_ERESOLVE;
	}
	memcpy(s->addr, res->ai_addr, res->ai_addrlen);
	s->addrlen = (unsigned int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static struct fsesl_srv *
srv_new(struct fsesl_engine *e, const char *key, const char *host, unsigned int port,
    const char *user, const char *password, int *err)
{
	struct fsesl_srv *s;
	unsigned int i;

	s = calloc(1, sizeof(*s));
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->e = e;
	snprintf(s->key, sizeof(s->key), "%s", key);
	snprintf(s->host, sizeof(s->host), "%s", host);
	s->port = (uint16_t)port;
	s->hash = hash_str(key);
	pthread_mutex_init(&s->cred_lock, NULL);
	srv_set_creds(s, user, password);
	atomic_init(&s->refs, 1); /* the caller's handle */
	cds_lfht_node_init(&s->node);
	s->n_conns = e->cfg.connections_per_server;
	s->conns = calloc(s->n_conns, sizeof(*s->conns));
	if (!s->conns) {
		*err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < s->n_conns; i++) {
		s->conns[i].srv = s;
		s->conns[i].index = i;
		s->conns[i].fd = -1;
		s->conns[i].timer.idx = ~0u;
	}
	*err = srv_resolve(s);
	if (*err)
		goto out_free;
	s->kick.idx = ~0u;
	s->attach.kind = FSESL_REQ_ATTACH;
	s->attach.srv = s;
	return s;
out_free:
	fsesl_srv_free_now(s);
	return NULL;
}

void
fsesl_srv_free_now(struct fsesl_srv *s)
{
	unsigned int i;

	if (s->conns) {
		for (i = 0; i < s->n_conns; i++) {
			free(s->conns[i].in.p);
			free(s->conns[i].out.p);
		}
	}
	free(s->conns);
	fsesl_load_free(s);
	free(s->addr);
	explicit_bzero(s->password, sizeof(s->password));
	pthread_mutex_destroy(&s->cred_lock);
	free(s);
}

static void
srv_free_rcu(struct rcu_head *head)
{

	fsesl_srv_free_now(caa_container_of(head, struct fsesl_srv, rcu));
}

static void
handle_free_rcu(struct rcu_head *head)
{

	free(caa_container_of(head, struct fsesl_handle, rcu));
}

/* Reactor only (its thread uses the engine's call_rcu worker). */
void
fsesl_handle_retire(struct fsesl_req *r)
{
	struct fsesl_handle *h = caa_container_of(r, struct fsesl_handle, retire);

	urcu_bp_call_rcu(&h->rcu, handle_free_rcu);
}

int
fsesl_server_get_by(fsesl_engine *ref, const char *host, unsigned int port, const char *user,
    const char *password, fsesl_server_t *out)
{
	struct fsesl_srv *s = NULL, *fresh = NULL;
	struct fsesl_engine *e;
	struct fsesl_handle *h;
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	char key[300], bare[256];
	bool created = false;
	int err;

	/* The URL's rules: a password is required, and the host is what
	 * fsesl_host_check() accepts, never whatever the resolver makes of it. */
	if (!ref || !host || !*host || !password || !*password || !out)
		return -EINVAL;
	if (port == 0)
		port = FSESL_DEFAULT_PORT;
	if (port > 65535 || strlen(host) >= 256 || strlen(password) >= 256 ||
	    (user && strlen(user) >= 256))
		return -EINVAL;
	if (fsesl_check_line(password, strlen(password)) != 0 ||
	    (user && fsesl_check_line(user, strlen(user)) != 0) ||
	    fsesl_check_line(host, strlen(host)) != 0)
		return FSESL_EINJECTION;
	/* "[::1]" and "::1" are one entry, the one fs://...@[::1] names. */
	if (fsesl_host_check(host, strlen(host), bare, sizeof(bare), NULL, 0) != 0)
		return -EINVAL;
	host = bare;
	*out = 0;
	snprintf(key, sizeof(key), "%s:%u", host, port);
	/* Inside the window to the end: a name is resolved here (it may
	 * block), and stop waits for that rather than free e under it. */
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	for (;;) {
		urcu_bp_read_lock();
		cds_lfht_lookup(e->servers, hash_str(key), match_srv, key, &it);
		n = cds_lfht_iter_get_node(&it);
		if (n) {
			s = caa_container_of(n, struct fsesl_srv, node);
			if (srv_ref_get(s)) {
				urcu_bp_read_unlock();
				/* OpenSIPS semantics: the latest credentials win,
				 * used from the next connect on. */
				srv_set_creds(s, user, password);
				break;
			}
			/* DEAD: the reactor is about to unlink it. */
			urcu_bp_read_unlock();
			sched_yield();
			continue;
		}
		urcu_bp_read_unlock();
		if (!fresh) {
			fresh = srv_new(e, key, host, port, user, password, &err);
			if (!fresh)
				goto out_leave;
		}
		urcu_bp_read_lock();
		n = cds_lfht_add_unique(e->servers, fresh->hash, match_srv, key, &fresh->node);
		urcu_bp_read_unlock();
		if (n == &fresh->node) {
			s = fresh;
			fresh = NULL;
			created = true;
			atomic_fetch_add_explicit(&e->n_servers, 1, memory_order_relaxed);
			break;
		}
		/* Lost the race to another get: use theirs. */
	}
	if (fresh)
		fsesl_srv_free_now(fresh);
	if (created) {
		/* The reactor learns about the entry and opens connections in
		 * the background. Cannot fail for lack of memory (embedded). */
		atomic_store_explicit(&s->attach_sent, true, memory_order_relaxed);
		err = fsesl_submit(e, &s->attach, false, NULL);
		if (err)
			goto out_unref;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		err = -ENOMEM;
		goto out_unref;
	}
	cds_lfht_node_init(&h->node);
	h->srv = s;
	h->id = atomic_fetch_add_explicit(&e->next_handle, 1, memory_order_relaxed);
	urcu_bp_read_lock();
	cds_lfht_add(e->handles, hash_id(h->id), &h->node);
	urcu_bp_read_unlock();
	*out = h->id;
	fsesl_window_leave(e);
	return 0;
out_unref:
	fsesl_srv_unref(s);
out_leave:
	fsesl_window_leave(e);
	return err;
}

int
fsesl_server_get(fsesl_engine *ref, const char *url, fsesl_server_t *out)
{
	struct fsesl_url *u;
	int err;

	if (!ref || !url || !out)
		return -EINVAL;
	u = malloc(sizeof(*u));
	if (!u)
		return -ENOMEM;
	if (fsesl_url_parse(url, u, NULL, 0) != 0) {
		err = FSESL_EURL;
	} else if (!u->password[0]) {
		err = FSESL_EURL; /* a password is required (OpenSIPS too) */
	} else if (u->n_events) {
		/* A handle has no subscriber to receive them: taking the URL
		 * and dropping its events would fail silently. */
		err = FSESL_EURLEVENTS;
	} else {
		err = fsesl_server_get_by(
		    ref, u->host, u->port, u->user[0] ? u->user : NULL, u->password, out);
	}
	fsesl_url_clear(u);
	free(u);
	return err;
}

int
fsesl_srv_acquire(struct fsesl_engine *e, fsesl_server_t id, struct fsesl_srv **out)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	struct fsesl_handle *h;
	int err = FSESL_EBADHANDLE;

	if (id == 0)
		return FSESL_EBADHANDLE;
	urcu_bp_read_lock();
	cds_lfht_lookup(e->handles, hash_id(id), match_handle, &id, &it);
	n = cds_lfht_iter_get_node(&it);
	if (n) {
		h = caa_container_of(n, struct fsesl_handle, node);
		if (srv_ref_get(h->srv)) {
			*out = h->srv;
			err = 0;
		}
	}
	urcu_bp_read_unlock();
	return err;
}

int
fsesl_server_put(fsesl_engine *ref, fsesl_server_t id)
{
	struct fsesl_handle *h = NULL;
	struct fsesl_srv *s = NULL;
	struct fsesl_engine *e;
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	int err;

	if (!ref)
		return -EINVAL;
	if (id == 0)
		return FSESL_EBADHANDLE;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	err = FSESL_EBADHANDLE;
	urcu_bp_read_lock();
	cds_lfht_lookup(e->handles, hash_id(id), match_handle, &id, &it);
	n = cds_lfht_iter_get_node(&it);
	if (n && cds_lfht_del(e->handles, n) == 0) {
		/* We won the unlink: this put owns the handle's reference. */
		h = caa_container_of(n, struct fsesl_handle, node);
		s = h->srv;
		err = 0;
	}
	urcu_bp_read_unlock();
	if (h) {
		fsesl_srv_unref(s);
		h->retire.kind = FSESL_REQ_RETIRE;
		h->retire.timer.idx = ~0u;
		/* Cannot fail: blocking submit without deadline, inside the
		 * window (the reactor drains until the window is empty). */
		(void)fsesl_submit(e, &h->retire, false, NULL);
	}
	fsesl_window_leave(e);
	return err;
}

/* Reactor only. Marks an unreferenced entry DEAD and unlinks it; the
 * caller has closed its connections. */
bool
fsesl_srv_try_reap(struct fsesl_engine *e, struct fsesl_srv *s)
{
	uint32_t zero = 0;

	/* acquire: pairs with the release in fsesl_srv_unref(). */
	if (!atomic_compare_exchange_strong_explicit(
	        &s->refs, &zero, FSESL_SRV_DEAD, memory_order_acq_rel, memory_order_relaxed))
		return false;
	urcu_bp_read_lock();
	(void)cds_lfht_del(e->servers, &s->node);
	urcu_bp_read_unlock();
	atomic_fetch_sub_explicit(&e->n_servers, 1, memory_order_relaxed);
	urcu_bp_call_rcu(&s->rcu, srv_free_rcu);
	return true;
}

int
fsesl_server_stats_get(fsesl_engine *ref, fsesl_server_t id, fsesl_server_stats *out)
{
	struct fsesl_srv_stats *st;
	struct fsesl_engine *e;
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	int i, err;

	if (!ref || !out)
		return -EINVAL;
	if (id == 0)
		return FSESL_EBADHANDLE;
	err = fsesl_window_enter(ref, &e);
	if (err)
		return err;
	urcu_bp_read_lock();
	cds_lfht_lookup(e->handles, hash_id(id), match_handle, &id, &it);
	n = cds_lfht_iter_get_node(&it);
	if (!n) {
		urcu_bp_read_unlock();
		fsesl_window_leave(e);
		return FSESL_EBADHANDLE;
	}
	/* The entry's memory stays valid for the read-side section. */
	st = &caa_container_of(n, struct fsesl_handle, node)->srv->st;
#define R(f) out->f = atomic_load_explicit(&st->f, memory_order_relaxed)
	R(commands_sent);
	R(replies);
	R(timeouts);
	R(late_replies);
	R(in_flight);
	R(queued);
	R(connects);
	R(reconnects);
	R(connect_failures);
	R(bytes_in);
	R(bytes_out);
	R(events_in);
	R(forged_events);
	R(unknown_jobs);
	R(connected_conns);
	R(last_error);
#undef R
	for (i = 0; i < FSESL_LATENCY_BUCKETS; i++)
		out->latency_us_hist[i] = atomic_load_explicit(&st->hist[i], memory_order_relaxed);
	urcu_bp_read_unlock();
	fsesl_window_leave(e);
	return 0;
}

/* After the reactor has exited and its call_rcu worker has been drained
 * and stopped: no reader, no writer is left, so frees are direct. */
void
fsesl_registry_destroy(struct fsesl_engine *e)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	struct fsesl_handle *h;
	struct fsesl_srv *s;

	/* Step the iterator past a node before freeing it; and no
	 * for_each_entry: its end test computes container_of(NULL). */
	urcu_bp_read_lock();
	cds_lfht_first(e->handles, &it);
	while ((n = cds_lfht_iter_get_node(&it)) != NULL) {
		h = caa_container_of(n, struct fsesl_handle, node);
		cds_lfht_next(e->handles, &it);
		if (cds_lfht_del(e->handles, n) == 0)
			free(h);
	}
	cds_lfht_first(e->servers, &it);
	while ((n = cds_lfht_iter_get_node(&it)) != NULL) {
		s = caa_container_of(n, struct fsesl_srv, node);
		cds_lfht_next(e->servers, &it);
		if (cds_lfht_del(e->servers, n) == 0)
			fsesl_srv_free_now(s);
	}
	urcu_bp_read_unlock();
	cds_lfht_destroy(e->handles, NULL);
	cds_lfht_destroy(e->servers, NULL);
	e->handles = e->servers = NULL;
}
