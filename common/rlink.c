/*
 * rlink.c: a self-healing asynchronous Redis connection (see rlink.h).
 *
 * States: DOWN (a retry timer is armed) -> [ASKING: a sentinel is asked for
 * the master's address, one sentinel after another] -> CONNECTING (connect
 * timer armed) -> AUTH (AUTH sent, when a password is set) -> [ROLE: with
 * sentinels, ROLE must say "master"] -> UP. Any failure goes back to DOWN
 * with the next backoff; a sentinel that fails hands over to the next, and
 * only when every one failed is the attempt a failure. hiredis frees its context itself after the
 * connect and disconnect callbacks return, so those callbacks only forget
 * the pointer; rlink frees a context itself only from its own timers and
 * from the AUTH reply (hiredis defers a free asked for inside a callback).
 *
 * Each command carries a small request record so that the pending count is
 * exact and the watchdog can tell a stalled Redis (replies overdue) from an
 * idle one.
 */
#include "common/rlink.h"
#include "common/util.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RLINK_BACKOFF_MIN_MS 100
#define RLINK_BACKOFF_MAX_MS 5000
#define RLINK_CONNECT_MS 2000

enum rlink_state { RL_DOWN, RL_ASKING, RL_CONNECTING, RL_AUTH, RL_ROLE, RL_UP };

struct rlink {
	struct event_base *base;
	struct rlink_target t;
	char host[64];		/* the Redis connected to: t's, or the sentinels' answer */
	int port;
	char addr[80];		/* "host:port" */
	char password[128];
	int sidx;		/* the sentinel asked now */
	redisAsyncContext *sub;	/* SUBSCRIBE +switch-master on a sentinel, or NULL */
	int sub_idx;		/* which sentinel */
	struct event *sub_timer;	/* (re)subscribe */
	int asked;		/* sentinels asked in this attempt */
	char ask_error[160];	/* the last sentinel's failure */
	rlink_state_fn *state_fn;
	void *arg;

	redisAsyncContext *ac;
	enum rlink_state state;
	int reported_down;	/* the owner heard of the current outage */
	int backoff_ms;
	unsigned long failures;	/* connection attempts that failed */
	struct event *timer;	/* retry (DOWN) or connect timeout (CONNECTING) */
	struct event *watchdog;	/* 1 Hz: overdue replies */
	unsigned pending;
	int64_t progress_ms;	/* last reply, or when pending left 0 */
};

struct rlink_req {
	struct rlink *rl;
	redisCallbackFn *fn;
	void *priv;
};

static void rlink_connect(struct rlink *rl);
static void rlink_connect_to(struct rlink *rl, const char *host, int port);
static void rlink_ask_next(struct rlink *rl, const char *why);
static void rlink_on_connect(const redisAsyncContext *ac, int status);
static void rlink_on_disconnect(const redisAsyncContext *ac, int status);

static void
rlink_arm(struct rlink *rl, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(rl->timer, &tv);
}

/* The link is lost or an attempt failed: tell the owner (once per outage)
 * and schedule the next attempt. */
static void
rlink_down(struct rlink *rl, const char *why)
{
	int was_up = rl->state == RL_UP;

	rl->state = RL_DOWN;
	if (!was_up)
		rl->failures++;
	if (was_up || !rl->reported_down) {
		rl->reported_down = 1;
		rl->state_fn(rl, 0, why, rl->arg);
	}
	if (was_up)
		rl->backoff_ms = RLINK_BACKOFF_MIN_MS;
	rlink_arm(rl, rl->backoff_ms);
	rl->backoff_ms = rl->backoff_ms * 2 > RLINK_BACKOFF_MAX_MS ?
	    RLINK_BACKOFF_MAX_MS : rl->backoff_ms * 2;
}

/* Drop our context from one of our own timers (not a hiredis callback). */
static void
rlink_drop(struct rlink *rl, const char *why)
{
	redisAsyncContext *ac = rl->ac;

	rl->ac = NULL;
	if (ac) {
		ac->data = NULL;	/* disconnect callback: nothing to do */
		redisAsyncFree(ac);	/* pending callbacks get NULL now */
	}
	rlink_down(rl, why);
}

/* Forget our context without reporting anything (hiredis frees it, at once
 * or after the callback it is inside). */
static void
rlink_release(struct rlink *rl)
{
	redisAsyncContext *ac = rl->ac;

	rl->ac = NULL;
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	evtimer_del(rl->timer);
}

static void
rlink_up(struct rlink *rl)
{
	rl->state = RL_UP;
	rl->reported_down = 0;
	rl->backoff_ms = RLINK_BACKOFF_MIN_MS;
	evtimer_del(rl->timer);
	rl->state_fn(rl, 1, "connected", rl->arg);
}

static void
rlink_auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct rlink *rl = priv;
	redisReply *reply = r;
	char why[160];

	(void)ac;
	if (!reply)
		return;	/* link dropped: the disconnect path reports it */
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "%s:%d: AUTH refused: %s", rl->host, rl->port,
		    reply->str);
		/* Freeing from a reply callback is safe: hiredis defers it. */
		rlink_drop(rl, why);
		return;
	}
	if (rl->t.nsentinels)
		return;	/* ROLE, sent behind AUTH, decides */
	rlink_up(rl);
}

/* With sentinels: the address they gave must be the master now (a sentinel
 * may answer with the old master during a failover). */
static void
rlink_role_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct rlink *rl = priv;
	redisReply *reply = r;
	char why[200];

	(void)ac;
	if (!reply || rl->state == RL_DOWN)
		return;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(reply->element[0]->str, "master") == 0) {
		rlink_up(rl);
		return;
	}
	snprintf(why, sizeof(why), "%s:%d is not the master of '%s' (ROLE: %s); asking the "
	    "sentinels again", rl->host, rl->port, rl->t.master,
	    reply->type == REDIS_REPLY_ERROR ? reply->str :
	    reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	    reply->element[0]->type == REDIS_REPLY_STRING ? reply->element[0]->str : "?");
	rlink_drop(rl, why);
}

/* ----- Sentinel -------------------------------------------------------------- */

static void rlink_sub_start(struct rlink *rl);

static void
rlink_sub_retry(struct rlink *rl, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	rl->sub_idx = (rl->sub_idx + 1) % rl->t.nsentinels;
	evtimer_add(rl->sub_timer, &tv);
}

/* A message on +switch-master: "<name> <old ip> <old port> <new ip> <new port>".
 * Ours, and not where we are: the link goes now (the next attempt asks the
 * sentinels), instead of when the old master is demoted and kills its
 * clients, which can be seconds later. */
static void
rlink_sub_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct rlink *rl = priv;
	redisReply *reply = r;
	char name[64], oh[64], nh[64], why[240];
	int op, np;

	(void)ac;
	if (!reply || !rl)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		/* AUTH refused, or SUBSCRIBE: give this sentinel up for now. */
		redisAsyncContext *s = rl->sub;

		rl->sub = NULL;
		if (s) {
			s->data = NULL;
			redisAsyncFree(s);
		}
		rlink_sub_retry(rl, 1000);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(reply->element[0]->str, "message") != 0 ||
	    reply->element[2]->type != REDIS_REPLY_STRING)
		return;	/* the subscription's confirmation */
	if (sscanf(reply->element[2]->str, "%63s %63s %d %63s %d", name, oh, &op, nh, &np) != 5 ||
	    strcmp(name, rl->t.master) != 0)
		return;
	if (rl->state == RL_UP && (strcmp(nh, rl->host) != 0 || np != rl->port)) {
		snprintf(why, sizeof(why), "sentinel: +switch-master %s %s:%d -> %s:%d", name, oh, op,
		    nh, np);
		rlink_drop(rl, why);
		evtimer_del(rl->timer);
		rlink_arm(rl, 0);	/* ask at once, not after the backoff */
	} else if (rl->state == RL_DOWN) {
		rlink_arm(rl, 0);
	}
}

static void
rlink_sub_on_connect(const redisAsyncContext *ac, int status)
{
	struct rlink *rl = ac->data;

	if (!rl)
		return;
	if (status != REDIS_OK) {
		rl->sub = NULL;	/* hiredis frees it */
		rlink_sub_retry(rl, 1000);
		return;
	}
	if (rl->t.sentinel_password[0])
		redisAsyncCommand(rl->sub, rlink_sub_cb, rl, "AUTH %s", rl->t.sentinel_password);
	redisAsyncCommand(rl->sub, rlink_sub_cb, rl, "SUBSCRIBE +switch-master");
}

static void
rlink_sub_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rlink *rl = ac->data;

	(void)status;
	if (!rl)
		return;
	rl->sub = NULL;
	rlink_sub_retry(rl, 1000);
}

static void
rlink_sub_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rlink_sub_start(arg);
}

static void
rlink_sub_start(struct rlink *rl)
{
	redisAsyncContext *ac;

	if (rl->sub)
		return;
	ac = redisAsyncConnect(rl->t.sentinel_host[rl->sub_idx], rl->t.sentinel_port[rl->sub_idx]);
	if (!ac || ac->err || redisLibeventAttach(ac, rl->base) != REDIS_OK) {
		if (ac)
			redisAsyncFree(ac);
		rlink_sub_retry(rl, 1000);
		return;
	}
	ac->data = rl;
	redisAsyncSetConnectCallback(ac, rlink_sub_on_connect);
	redisAsyncSetDisconnectCallback(ac, rlink_sub_on_disconnect);
	rl->sub = ac;
}

static void
rlink_ask_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct rlink *rl = priv;
	redisReply *reply = r;
	char why[200], host[64];
	int port;

	(void)ac;
	if (!reply || rl->state != RL_ASKING)
		return;	/* lost: the disconnect path asks the next one */
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, sizeof(why), "sentinel %s:%d: %s", rl->t.sentinel_host[rl->sidx],
		    rl->t.sentinel_port[rl->sidx], reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "does not know the master");
		rlink_release(rl);
		rlink_ask_next(rl, why);
		return;
	}
	str_copy(host, reply->element[0]->str, sizeof(host));
	port = atoi(reply->element[1]->str);
	rlink_release(rl);
	rlink_connect_to(rl, host, port);
}

/* Ask sentinel rl->sidx (its connection is up). */
static void
rlink_ask(struct rlink *rl)
{
	if (rl->t.sentinel_password[0])
		redisAsyncCommand(rl->ac, NULL, NULL, "AUTH %s", rl->t.sentinel_password);
	redisAsyncCommand(rl->ac, rlink_ask_cb, rl, "SENTINEL get-master-addr-by-name %s",
	    rl->t.master);
}

/* Open a connection to the next sentinel of this attempt, or fail it. */
static void
rlink_ask_start(struct rlink *rl)
{
	const char *h = rl->t.sentinel_host[rl->sidx];
	int p = rl->t.sentinel_port[rl->sidx];
	redisAsyncContext *ac = redisAsyncConnect(h, p);
	char why[200];

	if (!ac || ac->err || redisLibeventAttach(ac, rl->base) != REDIS_OK) {
		snprintf(why, sizeof(why), "sentinel %s:%d: %s", h, p, ac && ac->err ? ac->errstr :
		    "cannot connect");
		if (ac)
			redisAsyncFree(ac);
		rlink_ask_next(rl, why);
		return;
	}
	ac->data = rl;
	redisAsyncSetConnectCallback(ac, rlink_on_connect);
	redisAsyncSetDisconnectCallback(ac, rlink_on_disconnect);
	rl->ac = ac;
	rl->state = RL_ASKING;
	rlink_arm(rl, RLINK_CONNECT_MS);
}

/* The sentinel asked failed (why): the next, or the attempt failed. */
static void
rlink_ask_next(struct rlink *rl, const char *why)
{
	char msg[300];

	str_copy(rl->ask_error, why, sizeof(rl->ask_error));
	rl->sidx = (rl->sidx + 1) % rl->t.nsentinels;
	if (++rl->asked < rl->t.nsentinels) {
		rlink_ask_start(rl);
		return;
	}
	snprintf(msg, sizeof(msg), "no sentinel gave the master '%s' (%d asked; last: %s)",
	    rl->t.master, rl->asked, rl->ask_error);
	rl->state = RL_CONNECTING;	/* an attempt, not a lost link */
	rlink_down(rl, msg);
}

static void
rlink_on_connect(const redisAsyncContext *ac, int status)
{
	struct rlink *rl = ac->data;
	char why[160];

	if (!rl)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees ac after we return. */
		rl->ac = NULL;
		evtimer_del(rl->timer);
		if (rl->state == RL_ASKING) {
			snprintf(why, sizeof(why), "sentinel %s:%d: %s", rl->t.sentinel_host[rl->sidx],
			    rl->t.sentinel_port[rl->sidx], ac->errstr);
			rlink_ask_next(rl, why);
			return;
		}
		snprintf(why, sizeof(why), "connect %s:%d: %s", rl->host, rl->port, ac->errstr);
		rlink_down(rl, why);
		return;
	}
	if (rl->state == RL_ASKING) {
		rlink_ask(rl);	/* the connect timer still runs: it bounds the answer */
		return;
	}
	evtimer_del(rl->timer);
	if (rl->password[0] || rl->t.nsentinels)
		rlink_arm(rl, RLINK_CONNECT_MS);
	if (rl->password[0]) {
		rl->state = RL_AUTH;
		redisAsyncCommand(rl->ac, rlink_auth_cb, rl, "AUTH %s", rl->password);
	}
	if (rl->t.nsentinels) {
		rl->state = RL_ROLE;
		redisAsyncCommand(rl->ac, rlink_role_cb, rl, "ROLE");
		return;
	}
	if (!rl->password[0])
		rlink_up(rl);
}

static void
rlink_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rlink *rl = ac->data;
	char why[160];

	if (!rl)
		return;	/* we dropped it ourselves */
	rl->ac = NULL;	/* hiredis frees it after we return */
	evtimer_del(rl->timer);
	if (rl->state == RL_ASKING) {
		snprintf(why, sizeof(why), "sentinel %s:%d: connection lost", rl->t.sentinel_host[rl->sidx],
		    rl->t.sentinel_port[rl->sidx]);
		rlink_ask_next(rl, why);
		return;
	}
	snprintf(why, sizeof(why), "connection to %s:%d lost: %s", rl->host, rl->port,
	    status == REDIS_OK ? "closed" : ac->errstr);
	rlink_down(rl, why);
}

static void
rlink_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rlink *rl = arg;
	char why[160];

	(void)fd;
	(void)what;
	switch (rl->state) {
	case RL_DOWN:
		rlink_connect(rl);
		break;
	case RL_ASKING:
		snprintf(why, sizeof(why), "sentinel %s:%d: no answer in %d ms",
		    rl->t.sentinel_host[rl->sidx], rl->t.sentinel_port[rl->sidx], RLINK_CONNECT_MS);
		rlink_release(rl);
		rlink_ask_next(rl, why);
		break;
	case RL_CONNECTING:
	case RL_AUTH:
	case RL_ROLE:
		if (rl->ac) {
			snprintf(why, sizeof(why), "connect %s:%d: %s", rl->host, rl->port,
			    rl->state == RL_AUTH ? "AUTH failed or timed out" :
			    rl->state == RL_ROLE ? "ROLE not answered" : "timed out");
			rlink_drop(rl, why);
		} else {
			rlink_down(rl, "connect failed");
		}
		break;
	case RL_UP:
		break;
	}
}

static void
rlink_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rlink *rl = arg;
	char why[160];

	(void)fd;
	(void)what;
	if (rl->state == RL_UP && rl->pending > 0 &&
	    clock_mono_ms() - rl->progress_ms > RLINK_STALL_MS) {
		snprintf(why, sizeof(why), "%s:%d: %u replies overdue by more than %d ms",
		    rl->host, rl->port, rl->pending, RLINK_STALL_MS);
		rlink_drop(rl, why);
	}
}

/* A connection attempt: through the sentinels, or to the one address. */
static void
rlink_connect(struct rlink *rl)
{
	if (!rl->t.nsentinels) {
		rlink_connect_to(rl, rl->t.host, rl->t.port);
		return;
	}
	rl->asked = 0;
	rlink_ask_start(rl);
}

static void
rlink_connect_to(struct rlink *rl, const char *host, int port)
{
	redisAsyncContext *ac;
	char why[160];

	if (rl->host != host)
		str_copy(rl->host, host, sizeof(rl->host));
	rl->port = port;
	snprintf(rl->addr, sizeof(rl->addr), "%s:%d", host, port);
	rl->state = RL_CONNECTING;
	ac = redisAsyncConnect(rl->host, rl->port);
	if (!ac || ac->err) {
		snprintf(why, sizeof(why), "connect %s:%d: %s", rl->host, rl->port,
		    ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		rlink_down(rl, why);
		return;
	}
	ac->data = rl;
	if (redisLibeventAttach(ac, rl->base) != REDIS_OK) {
		redisAsyncFree(ac);
		rlink_down(rl, "cannot attach to the event loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, rlink_on_connect);
	redisAsyncSetDisconnectCallback(ac, rlink_on_disconnect);
	rl->ac = ac;
	rl->state = RL_CONNECTING;
	rlink_arm(rl, RLINK_CONNECT_MS);
}

struct rlink *
rlink_new(struct event_base *base, const char *host, int port, const char *password,
    rlink_state_fn *state_fn, void *arg)
{
	struct rlink_target t;

	memset(&t, 0, sizeof(t));
	str_copy(t.host, host, sizeof(t.host));
	t.port = port;
	str_copy(t.password, password ? password : "", sizeof(t.password));
	return rlink_open(base, &t, state_fn, arg);
}

const char *
rlink_addr(const struct rlink *rl)
{
	return rl->addr;
}

struct rlink *
rlink_open(struct event_base *base, const struct rlink_target *t, rlink_state_fn *state_fn,
    void *arg)
{
	struct rlink *rl = calloc(1, sizeof(*rl));
	struct timeval sec = { 1, 0 };

	if (!rl)
		return NULL;
	rl->base = base;
	rl->t = *t;
	str_copy(rl->host, t->host, sizeof(rl->host));
	rl->port = t->port;
	snprintf(rl->addr, sizeof(rl->addr), "%s:%d", t->host, t->port);
	str_copy(rl->password, t->password, sizeof(rl->password));
	rl->state_fn = state_fn;
	rl->arg = arg;
	rl->backoff_ms = RLINK_BACKOFF_MIN_MS;
	rl->timer = evtimer_new(base, rlink_timer_cb, rl);
	rl->watchdog = event_new(base, -1, EV_PERSIST, rlink_watchdog_cb, rl);
	rl->sub_timer = evtimer_new(base, rlink_sub_timer_cb, rl);
	if (!rl->timer || !rl->watchdog || !rl->sub_timer) {
		rlink_free(rl);
		return NULL;
	}
	if (t->nsentinels)
		rlink_sub_start(rl);
	evtimer_add(rl->watchdog, &sec);
	rlink_connect(rl);
	return rl;
}

static void
rlink_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rlink_req *req = priv;
	struct rlink *rl = req->rl;

	rl->pending--;
	rl->progress_ms = clock_mono_ms();
	if (req->fn)
		req->fn(ac, reply, req->priv);
	free(req);
	/* A master that became a replica (a failover we did not hear of):
	 * drop the link, the next attempt asks the sentinels. */
	if (reply && ((redisReply *)reply)->type == REDIS_REPLY_ERROR &&
	    strncmp(((redisReply *)reply)->str, "READONLY", 8) == 0 && rl->state == RL_UP &&
	    rl->ac == ac) {
		char why[200];

		snprintf(why, sizeof(why), "%s:%d answers READONLY: no longer the master%s", rl->host,
		    rl->port, rl->t.nsentinels ? "; asking the sentinels" : "");
		rlink_drop(rl, why);
	}
}

static struct rlink_req *
rlink_req_new(struct rlink *rl, redisCallbackFn *fn, void *priv)
{
	struct rlink_req *req;

	if (rl->state != RL_UP || !rl->ac || rl->pending >= RLINK_MAX_PENDING)
		return NULL;
	req = malloc(sizeof(*req));
	if (!req)
		return NULL;
	req->rl = rl;
	req->fn = fn;
	req->priv = priv;
	return req;
}

static void
rlink_sent(struct rlink *rl)
{
	if (rl->pending++ == 0)
		rl->progress_ms = clock_mono_ms();
}

int
rlink_command(struct rlink *rl, redisCallbackFn *fn, void *priv, const char *fmt, ...)
{
	struct rlink_req *req = rlink_req_new(rl, fn, priv);
	va_list ap;
	int r;

	if (!req)
		return -1;
	va_start(ap, fmt);
	r = redisvAsyncCommand(rl->ac, rlink_reply_cb, req, fmt, ap);
	va_end(ap);
	if (r != REDIS_OK) {
		free(req);
		return -1;
	}
	rlink_sent(rl);
	return 0;
}

int
rlink_command_argv(struct rlink *rl, redisCallbackFn *fn, void *priv, int argc,
    const char **argv, const size_t *argvlen)
{
	struct rlink_req *req = rlink_req_new(rl, fn, priv);

	if (!req)
		return -1;
	if (redisAsyncCommandArgv(rl->ac, rlink_reply_cb, req, argc, argv, argvlen) != REDIS_OK) {
		free(req);
		return -1;
	}
	rlink_sent(rl);
	return 0;
}

const char *
rlink_field(const redisReply *r, const char *name)
{
	if (!r || r->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    strcmp(k->str, name) == 0)
			return v->str;
	}
	return NULL;
}

int
rlink_is_up(const struct rlink *rl)
{
	return rl->state == RL_UP;
}

unsigned
rlink_pending(const struct rlink *rl)
{
	return rl->pending;
}

unsigned long
rlink_failures(const struct rlink *rl)
{
	return rl->failures;
}

void
rlink_free(struct rlink *rl)
{
	redisAsyncContext *ac;

	if (!rl)
		return;
	ac = rl->ac;
	rl->ac = NULL;
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	ac = rl->sub;
	rl->sub = NULL;
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	if (rl->timer)
		event_free(rl->timer);
	if (rl->watchdog)
		event_free(rl->watchdog);
	if (rl->sub_timer)
		event_free(rl->sub_timer);
	free(rl);
}
