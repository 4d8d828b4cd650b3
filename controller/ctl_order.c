/*
 * ctl_order.c: handover orders to the host agents (netmigrated) and their
 * acknowledgements.
 *
 * An order is one entry in the agent's stream pf:host:<agent>:orders; the
 * agent acks it in pf:acks with its own timing (docs/redis-keys.md); an
 * absent field is sent empty, and every order carries the leader's epoch
 * (ctl_leader.c), the fencing token the agents check.
 *
 * Every order is also a statement of desired state: one script appends it
 * to the stream and writes it into pf:host:<agent>:net (field = VM), with
 * its version (epoch, seq) and, for host agents, the lease generation it
 * was planned for. The agent converges on that hash, so an order lost in
 * flight is applied from there (netmigrate/nmd_want.c). The hash's marker
 * field "_" (the newest version) says it is complete: ctl_order_mark()
 * writes it once a reconcile or a host's re-plan has stated everything
 * for that agent; later writes move it only where it exists, so a Redis
 * that lost the hash stays "incomplete" until the next full statement. fleetd
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

/*
 * KEYS[1] pf:host:<agent>:net, KEYS[2] pf:host:<agent>:orders. ARGV[1] the
 * VM, ARGV[2] its statement, ARGV[3] the version "epoch.seq", ARGV[4] (edge
 * withdraw) the via it undoes, else ""; ARGV[5..] the order's fields. An
 * edge withdraw via X leaves a statement routing the VM via another host
 * alone (the agent applies the same rule to what it holds). A statement
 * older than the one stored (a late write of a leader that stepped down)
 * stores nothing, and the marker never moves back.
 */
static const char ctl_order_lua[] =
    "local function ver(s) "
    "  if not s then return 0, 0 end "
    "  local e, q = string.match(s, '^(%d+)%.(%d+)$') "
    "  if not e then e, q = string.match(s, 'epoch=(%d+) seq=(%d+)') end "
    "  return tonumber(e or '0'), tonumber(q or '0') "
    "end "
    "local function older(ae, aq, be, bq) return ae < be or (ae == be and aq < bq) end "
    "local me, mq = ver(ARGV[3]) "
    "local cur = redis.call('HGET', KEYS[1], ARGV[1]) "
    "local ce, cq = ver(cur) "
    "local keep = cur and older(me, mq, ce, cq) "
    "if ARGV[4] ~= '' and cur and not keep then "
    "  local c = ' ' .. cur .. ' ' "
    "  keep = string.find(c, ' op=announce ', 1, true) ~= nil and "
    "    string.find(c, ' via=' .. ARGV[4] .. ' ', 1, true) == nil "
    "end "
    "if not keep then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
    "local mark = redis.call('HGET', KEYS[1], '_') "
    "if mark then "
    "  local ke, kq = ver(mark) "
    "  if older(ke, kq, me, mq) then redis.call('HSET', KEYS[1], '_', ARGV[3]) end "
    "end "
    "return redis.call('XADD', KEYS[2], 'MAXLEN', '~', '1000', '*', unpack(ARGV, 5))";

/*
 * KEYS[1] pf:host:<agent>:net. ARGV[1] the version "epoch.seq", ARGV[2..]
 * the names of every VM the model knows: fields of other VMs go (pruned),
 * and the marker says the hash is complete. Returns how many went.
 */
static const char ctl_mark_lua[] =
    "local known = {} "
    "for i = 2, #ARGV do known[ARGV[i]] = true end "
    "local n = 0 "
    "for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do "
    "  if f ~= '_' and not known[f] then redis.call('HDEL', KEYS[1], f) n = n + 1 end "
    "end "
    "local m = redis.call('HGET', KEYS[1], '_') "
    "local e, q = string.match(m or '', '^(%d+)%.(%d+)$') "
    "local ae, aq = string.match(ARGV[1], '^(%d+)%.(%d+)$') "
    "e, q, ae, aq = tonumber(e or '0'), tonumber(q or '0'), tonumber(ae), tonumber(aq) "
    "if e < ae or (e == ae and q < aq) then redis.call('HSET', KEYS[1], '_', ARGV[1]) end "
    "return n";

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
	char id[48], ips[CTL_MAX_IPS * CTL_IP_MAX] = "", stmt[CTL_MAX_IPS * CTL_IP_MAX + 400];
	char key_net[CTL_NAME_MAX + 16], key_orders[CTL_NAME_MAX + 24], ver[48], epoch[24],
	    seq[24], gen[24];
	const char *argv[32];
	size_t lens[32];
	struct ctl_order_wait *w;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	size_t n = 0, sl;
	uint64_t s;
	int h, argc = 0, edge_withdraw;

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
	s = ++env->order_seq;
	snprintf(id, sizeof(id), "%lld-%llu", (long long)env->boot_ms, (unsigned long long)s);
	h = ctl_host_find(&env->model, agent);
	snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)env->lead.epoch);
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)s);
	/* Edges have no generation: the field stays empty. */
	if (h >= 0 && env->model.hosts[h].gen)
		snprintf(gen, sizeof(gen), "%llu", (unsigned long long)env->model.hosts[h].gen);
	else
		gen[0] = '\0';
	snprintf(ver, sizeof(ver), "%s.%s", epoch, seq);
	snprintf(key_net, sizeof(key_net), "pf:host:%s:net", agent);
	snprintf(key_orders, sizeof(key_orders), "pf:host:%s:orders", agent);
	/* The statement: the order's fields as k=v words, empty ones left out. */
	sl = (size_t)snprintf(stmt, sizeof(stmt), "op=%s ips=%s", op, ips);
	if (vm->mac[0])
		sl += (size_t)snprintf(stmt + sl, sizeof(stmt) - sl, " mac=%s", vm->mac);
	if (dev && *dev)
		sl += (size_t)snprintf(stmt + sl, sizeof(stmt) - sl, " dev=%s", dev);
	if (via && *via)
		sl += (size_t)snprintf(stmt + sl, sizeof(stmt) - sl, " via=%s", via);
	sl += (size_t)snprintf(stmt + sl, sizeof(stmt) - sl, " epoch=%s seq=%s", epoch, seq);
	if (gen[0])
		snprintf(stmt + sl, sizeof(stmt) - sl, " gen=%s", gen);
	edge_withdraw = h < 0 && strcmp(op, "withdraw") == 0 && via && *via;
	{
		const char *fixed[] = { "EVAL", ctl_order_lua, "2", key_net, key_orders, vm->name,
			stmt, ver, edge_withdraw ? via : "",
			"id", id, "op", op, "vm", vm->name, "ips", ips, "mac", vm->mac,
			"dev", dev ? dev : "", "via", via ? via : "", "epoch", epoch, "seq", seq,
			"gen", gen };

		for (size_t i = 0; i < PF_ARRAY_LEN(fixed); i++) {
			argv[argc] = fixed[i];
			lens[argc] = strlen(fixed[i]);
			argc++;
		}
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	if (rlink_command_argv(env->redis, NULL, NULL, argc, argv, lens) < 0) {
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
ctl_mark_reply(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	char *agent = priv;

	(void)ac;
	if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
		log_info("statements agent=%s pruned=%lld (VMs fleetd no longer knows)", agent,
		    (long long)reply->integer);
	else if (reply && reply->type == REDIS_REPLY_ERROR)
		log_warnx("statements agent=%s: marker not written: %s", agent, reply->str);
	free(agent);
}

int
ctl_order_mark(struct fleetd *env, const char *agent)
{
	const struct ctl_model *m = &env->model;
	int argc = 5 + m->nvms, r;
	const char **argv = calloc((size_t)argc, sizeof(*argv));
	size_t *lens = calloc((size_t)argc, sizeof(*lens));
	char key[CTL_NAME_MAX + 16], ver[48], *priv = strdup(agent);

	if (!argv || !lens || !priv || !ctl_leader_is(env)) {
		free(argv);
		free(lens);
		free(priv);
		return -1;
	}
	snprintf(key, sizeof(key), "pf:host:%s:net", agent);
	/* After every statement sent so far: the marker is the newest version. */
	snprintf(ver, sizeof(ver), "%llu.%llu", (unsigned long long)env->lead.epoch,
	    (unsigned long long)++env->order_seq);
	argv[0] = "EVAL";
	argv[1] = ctl_mark_lua;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = ver;
	for (int i = 0; i < m->nvms; i++)
		argv[5 + i] = m->vms[i]->name;
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	r = rlink_command_argv(env->redis, ctl_mark_reply, priv, argc, argv, lens);
	if (r < 0)
		free(priv);
	free(argv);
	free(lens);
	return r;
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
	env->acks = rlink_open(env->base, &env->conf->redis_target, ctl_ack_state, env);
}

void
ctl_order_stop(struct fleetd *env)
{
	while (env->waits)
		ctl_order_finish(env->waits, 0, "fleetd is stopping", 0);
	rlink_free(env->acks);
	env->acks = NULL;
}
