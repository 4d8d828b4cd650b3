/*
 * ctl_order.c: handover orders to the host agents (netmigrated) and their
 * acknowledgements.
 *
 * An order is one entry in the agent's stream pf:host:<agent>:orders; the
 * agent acks it in pf:acks with its own timing (docs/redis-keys.md); an
 * absent field is sent empty, and every order carries the leader's epoch
 * (ctl_leader.c), the fencing token the agents check. fleetd
 * reads pf:acks on a second Redis link with XREAD BLOCK, so an ack wakes it
 * at once instead of at the next tick; each waiting order has its own
 * timeout event and one completion call, whichever comes first.
 */
#include "controller/fleetd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_ACK_BLOCK_MS 1000

struct ctl_order_wait {
	struct ctl_order_wait *next;
	struct fleetd *env;
	char id[48];
	char agent[CTL_NAME_MAX];
	char op[16];
	struct event *timer;
	int timeout_ms;
	ctl_order_done_fn *done;
	void *arg;
};

static void ctl_ack_read(struct fleetd *env);

static void
ctl_ack_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ctl_ack_read(arg);
}

/* Unlink w from the wait list, run its completion, free it. */
static void
ctl_order_finish(struct ctl_order_wait *w, int ok, const char *error, int64_t took_us)
{
	struct fleetd *env = w->env;
	struct ctl_order_wait **pp;

	for (pp = &env->waits; *pp && *pp != w; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = w->next;
	event_free(w->timer);
	if (w->done)
		w->done(env, w->arg, ok, error, took_us);
	free(w);
}

static void
ctl_order_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_order_wait *w = arg;
	char why[128];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no ack from agent %s in %d ms", w->agent, w->timeout_ms);
	ctl_order_finish(w, 0, why, 0);
}

int
ctl_order_send(struct fleetd *env, const char *agent, const char *op, const struct ctl_vm *vm,
    const char *dev, const char *via, int timeout_ms, ctl_order_done_fn *done, void *arg)
{
	char id[48], ips[CTL_MAX_IPS * CTL_IP_MAX] = "";
	struct ctl_order_wait *w;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	size_t n = 0;

	/* The fence: only the leader writes orders, each with its epoch, so an
	 * agent that has seen a newer leader refuses what an old one sends. */
	if (!ctl_leader_is(env)) {
		log_warnx("order not sent agent=%s op=%s vm=%s: this instance (%s) is not the leader",
		    agent, op, vm->name, env->lead.instance);
		return -1;
	}
	/* Host routes are /32 and /128: the agents take bare addresses. */
	for (int i = 0; i < vm->meta.nips; i++)
		n += (size_t)snprintf(ips + n, sizeof(ips) - n, "%s%.*s", i ? "," : "",
		    (int)strcspn(vm->meta.ips[i], "/"), vm->meta.ips[i]);
	snprintf(id, sizeof(id), "%lld-%llu", (long long)env->boot_ms,
	    (unsigned long long)++env->order_seq);
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	if (rlink_command(env->redis, NULL, NULL,
	    "XADD pf:host:%s:orders MAXLEN ~ 1000 * id %s op %s vm %s ips %s mac %s dev %s via %s "
	    "epoch %llu", agent, id, op, vm->name, ips, vm->mac, dev ? dev : "", via ? via : "",
	    (unsigned long long)env->lead.epoch) < 0) {
		free(w);
		return -1;
	}
	env->stats.orders_sent++;
	w->env = env;
	str_copy(w->id, id, sizeof(w->id));
	str_copy(w->agent, agent, sizeof(w->agent));
	str_copy(w->op, op, sizeof(w->op));
	w->timeout_ms = timeout_ms;
	w->done = done;
	w->arg = arg;
	w->timer = evtimer_new(env->base, ctl_order_timeout, w);
	if (!w->timer) {
		free(w);
		return -1;
	}
	evtimer_add(w->timer, &tv);
	w->next = env->waits;
	env->waits = w;
	log_debug("order sent agent=%s op=%s vm=%s id=%s ips=%s", agent, op, vm->name, id, ips);
	return 0;
}

static void
ctl_ack_entry(struct fleetd *env, redisReply *fields)
{
	const char *id = rlink_field(fields, "id"), *status = rlink_field(fields, "status");
	const char *error = rlink_field(fields, "error"), *took_s = rlink_field(fields, "took_us");
	int64_t took = took_s ? strtoll(took_s, NULL, 10) : 0;

	if (!id || !status)
		return;
	if (!error)
		error = "";
	for (struct ctl_order_wait *w = env->waits; w; w = w->next) {
		if (strcmp(w->id, id) == 0) {
			int ok = strcmp(status, "ok") == 0;
			unsigned long long ours, theirs;
			char agent[CTL_NAME_MAX];

			ok ? env->stats.acks_ok++ : env->stats.acks_err++;
			str_copy(agent, w->agent, sizeof(agent));
			ctl_order_finish(w, ok, error, took);
			/* After the completion: stepping down fails what still waits. */
			if (!ok && sscanf(error, "stale epoch %llu < %llu", &ours, &theirs) == 2)
				ctl_leader_stale(env, agent, ours, theirs);
			return;
		}
	}
}

static void
ctl_ack_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleetd *env = priv;
	redisReply *r = reply;

	(void)ac;
	if (!r)
		return;	/* link dropped: ctl_ack_state restarts the loop */
	if (r->type == REDIS_REPLY_ERROR) {
		/* WRONGTYPE, LOADING...: try again in a second, not in a spin. */
		struct timeval sec = { 1, 0 };

		log_warnx("reading pf:acks: %s", r->str);
		event_base_once(env->base, -1, EV_TIMEOUT, ctl_ack_retry, env, &sec);
		return;
	}
	/* [[stream, [[id, [k, v, ...]], ...]]] or nil on timeout */
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
		redisReply *entries = r->element[0]->element[1];

		for (size_t i = 0; i < entries->elements; i++) {
			redisReply *e = entries->element[i];

			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
				continue;
			str_copy(env->acks_cursor, e->element[0]->str, sizeof(env->acks_cursor));
			ctl_ack_entry(env, e->element[1]);
		}
	}
	ctl_ack_read(env);
}

static void
ctl_ack_read(struct fleetd *env)
{
	rlink_command(env->acks, ctl_ack_reply, env, "XREAD COUNT 100 BLOCK %d STREAMS pf:acks %s",
	    CTL_ACK_BLOCK_MS, env->acks_cursor);
}

/* The newest ack id, so reading starts after it and loses nothing later. */
static void
ctl_ack_cursor_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleetd *env = priv;
	redisReply *r = reply;

	(void)ac;
	if (!r)
		return;
	if (!env->acks_cursor[0]) {
		str_copy(env->acks_cursor, "0-0", sizeof(env->acks_cursor));
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
			str_copy(env->acks_cursor, r->element[0]->element[0]->str,
			    sizeof(env->acks_cursor));
	}
	ctl_ack_read(env);
}

static void
ctl_ack_state(struct rlink *rl, int up, const char *why, void *arg)
{
	struct fleetd *env = arg;

	(void)rl;
	if (!up) {
		log_warnx("redis acks link down: %s", why);
		return;
	}
	if (env->acks_cursor[0])
		ctl_ack_read(env);
	else
		rlink_command(env->acks, ctl_ack_cursor_reply, env, "XREVRANGE pf:acks + - COUNT 1");
}

void
ctl_order_start(struct fleetd *env)
{
	char host[64];
	int port;

	hostport_split(env->conf->redis, host, sizeof(host), &port);
	env->acks = rlink_new(env->base, host, port, env->conf->redis_password, ctl_ack_state, env);
}

void
ctl_order_stop(struct fleetd *env)
{
	while (env->waits)
		ctl_order_finish(env->waits, 0, "fleetd is stopping", 0);
	rlink_free(env->acks);
	env->acks = NULL;
}
