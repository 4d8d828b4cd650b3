/*
 * rlink.c: a self-healing asynchronous Redis connection (see rlink.h).
 *
 * States: DOWN (a retry timer is armed) -> CONNECTING (connect timer armed)
 * -> AUTH (AUTH sent, when a password is set) -> UP. Any failure goes back
 * to DOWN with the next backoff. hiredis frees its context itself after the
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

enum rlink_state { RL_DOWN, RL_CONNECTING, RL_AUTH, RL_UP };

struct rlink {
	struct event_base *base;
	char host[64];
	int port;
	char password[128];
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
	rlink_up(rl);
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
		snprintf(why, sizeof(why), "connect %s:%d: %s", rl->host, rl->port, ac->errstr);
		rl->ac = NULL;
		evtimer_del(rl->timer);
		rlink_down(rl, why);
		return;
	}
	evtimer_del(rl->timer);
	if (rl->password[0]) {
		rl->state = RL_AUTH;
		rlink_arm(rl, RLINK_CONNECT_MS);
		redisAsyncCommand(rl->ac, rlink_auth_cb, rl, "AUTH %s", rl->password);
		return;
	}
	rlink_up(rl);
}

static void
rlink_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rlink *rl = ac->data;
	char why[160];

	if (!rl)
		return;	/* we dropped it ourselves */
	snprintf(why, sizeof(why), "connection to %s:%d lost: %s", rl->host, rl->port,
	    status == REDIS_OK ? "closed" : ac->errstr);
	rl->ac = NULL;	/* hiredis frees it after we return */
	evtimer_del(rl->timer);
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
	case RL_CONNECTING:
	case RL_AUTH:
		if (rl->ac) {
			snprintf(why, sizeof(why), "connect %s:%d: %s", rl->host, rl->port,
			    rl->state == RL_AUTH ? "AUTH failed or timed out" : "timed out");
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

static void
rlink_connect(struct rlink *rl)
{
	redisAsyncContext *ac;
	char why[160];

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
	struct rlink *rl = calloc(1, sizeof(*rl));
	struct timeval sec = { 1, 0 };

	if (!rl)
		return NULL;
	rl->base = base;
	str_copy(rl->host, host, sizeof(rl->host));
	rl->port = port;
	str_copy(rl->password, password ? password : "", sizeof(rl->password));
	rl->state_fn = state_fn;
	rl->arg = arg;
	rl->backoff_ms = RLINK_BACKOFF_MIN_MS;
	rl->timer = evtimer_new(base, rlink_timer_cb, rl);
	rl->watchdog = event_new(base, -1, EV_PERSIST, rlink_watchdog_cb, rl);
	if (!rl->timer || !rl->watchdog) {
		rlink_free(rl);
		return NULL;
	}
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
	if (rl->timer)
		event_free(rl->timer);
	if (rl->watchdog)
		event_free(rl->watchdog);
	free(rl);
}
