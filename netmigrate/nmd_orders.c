/*
 * nmd_orders.c: reading pf:host:<host>:orders, executing each order, and
 * the announcement bursts an order starts.
 *
 * DESIGN
 * A dedicated Redis link runs one XREAD BLOCK (order_block, < RLINK_STALL_MS)
 * at a time, starting after the cursor: the id of the last entry this host
 * finished, kept in pf:host:<host>:cursor so a restarted agent resumes where
 * the last one stopped. An entry is executed, acknowledged in pf:acks, and
 * only then does the cursor move, so a crash in between replays the order:
 * at-least-once. Replays are harmless because every step is idempotent, and
 * an order id already done recently is acknowledged again without running
 * again (a ring of the last NMD_RECENT ids).
 *
 * Orders older than order_max_age (by their stream id's timestamp) are
 * refused: after a long outage, replaying a stale "announce" could pull an
 * IP back from where the controller has since moved it.
 *
 * Reading only runs while the host holds its lease; a fenced agent executes
 * nothing.
 *
 * Orders from fleetd carry its leader epoch, the fencing token of the
 * controller's lease (docs/design.md, "Several controllers"). The agent
 * keeps the highest epoch it has seen, from orders and from pf:ctl:epoch
 * (read with each lease renewal), in memory and in pf:host:<host>:epoch,
 * and refuses an order with a lower one: a controller that lost its lease
 * but does not know it yet cannot undo what the new leader did. Orders
 * without an epoch (the netmigrate CLI, older tools) are not checked.
 *
 * What an order does, by role:
 *   host: prepare  routes IP/32 dev vm_bridge (+ neighbour, + proxy via)
 *         announce prepare, then a GARP / NA burst (first round at once)
 *         withdraw stop the burst, delete the routes and neighbours
 *   edge: prepare  checks the order (nothing to install ahead)
 *         announce route IP/32 via <via> (replace: the re-pointing)
 *         withdraw delete IP/32 via <via> (required: that route only)
 *         unroute  delete netmigrate's IP/32 whatever its next hop (no via)
 */
#include "netmigrate/nmd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void nmd_read_next(struct nmd *env);

/* ------------------------------------------------------------------ */
/* Bursts */

static void
nmd_burst_free(struct nmd_burst *b)
{
	if (!b)
		return;
	if (b->ev)
		event_free(b->ev);
	free(b->ips);
	free(b);
}

static void
nmd_burst_unlink(struct nmd *env, struct nmd_burst *b)
{
	struct nmd_burst **pp;

	for (pp = &env->bursts; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			return;
		}
	}
}

static void
nmd_burst_cancel(struct nmd *env, const char *vm)
{
	struct nmd_burst *b, *next;

	for (b = env->bursts; b; b = next) {
		next = b->next;
		if (strcmp(b->vm, vm) == 0) {
			nmd_burst_unlink(env, b);
			nmd_burst_free(b);
		}
	}
}

void
nmd_bursts_stop(struct nmd *env)
{
	struct nmd_burst *b;

	while ((b = env->bursts)) {
		env->bursts = b->next;
		nmd_burst_free(b);
	}
}

/* Send one round; 0, or -1 with err (the burst should end). */
static int
nmd_burst_round(struct nmd_burst *b, int *frames, char *err, size_t errlen)
{
	struct nmd *env = b->env;
	int n, skipped;

	n = nm_announce(env->nm, b->dev, b->mac, b->ips, b->nips, env->form, &skipped, err,
	    errlen);
	if (n < 0)
		return -1;
	*frames = n;
	if (skipped) {
		snprintf(err, errlen, "skipped: '%s' is IFF_NOARP", b->dev);
		return -1;
	}
	return 0;
}

static void
nmd_burst_arm(struct nmd_burst *b)
{
	int ms = nm_sched_delay_ms(&b->env->sched, b->round);
	struct timeval tv;

	if (ms < 0) {
		log_debug("announce done vm=%s rounds=%d", b->vm, b->round + 1);
		nmd_burst_unlink(b->env, b);
		nmd_burst_free(b);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(b->ev, &tv);
}

static void
nmd_burst_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nmd_burst *b = arg;
	char err[256];
	int frames;

	(void)fd;
	(void)what;
	b->round++;
	if (nmd_burst_round(b, &frames, err, sizeof(err)) < 0) {
		log_warnx("announce vm=%s round=%d stopped: %s", b->vm, b->round, err);
		nmd_burst_unlink(b->env, b);
		nmd_burst_free(b);
		return;
	}
	log_debug("announce vm=%s round=%d frames=%d", b->vm, b->round, frames);
	nmd_burst_arm(b);
}

int
nmd_burst_start(struct nmd *env, const struct nm_order *o, const char *dev, char *err,
    size_t errlen)
{
	struct nmd_burst *b;
	int frames;

	nmd_burst_cancel(env, o->vm);
	b = calloc(1, sizeof(*b));
	if (b)
		b->ips = calloc((size_t)o->nips, sizeof(*b->ips));
	if (!b || !b->ips || !(b->ev = evtimer_new(env->base, nmd_burst_cb, b))) {
		nmd_burst_free(b);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	b->env = env;
	str_copy(b->vm, o->vm, sizeof(b->vm));
	str_copy(b->dev, dev, sizeof(b->dev));
	memcpy(b->mac, o->mac, 6);
	b->nips = o->nips;
	memcpy(b->ips, o->ips, (size_t)o->nips * sizeof(*b->ips));
	if (nmd_burst_round(b, &frames, err, errlen) < 0) {
		nmd_burst_free(b);
		return -1;
	}
	b->next = env->bursts;
	env->bursts = b;
	nmd_burst_arm(b);
	return frames;
}

/* ------------------------------------------------------------------ */
/* Execution */

static int
nmd_exec(struct nmd *env, const struct nm_order *o, char *detail, size_t dlen, char *err,
    size_t errlen)
{
	const char *dev;
	char port[IFNAMSIZ];
	int n, frames;

	detail[0] = '\0';
	if (env->role == NMD_ROLE_EDGE) {
		dev = env->conf.dev[0] ? env->conf.dev : NULL;
		switch (o->op) {
		case NM_OP_PREPARE:
			if (!o->has_via) {
				snprintf(err, errlen, "edge order needs 'via' (the destination host)");
				return -1;
			}
			return 0;
		case NM_OP_ANNOUNCE:
			n = nm_plan_point(env->nm, o, dev, err, errlen);
			snprintf(detail, dlen, "routes=%d", n);
			return n < 0 ? -1 : 0;
		case NM_OP_WITHDRAW:
			/* Only the route via the host it names: a withdraw for where
			 * the VM was must not delete where another order points it. */
			if (!o->has_via) {
				snprintf(err, errlen, "edge withdraw needs 'via' (the host whose "
				    "route goes)");
				return -1;
			}
			n = nm_plan_unpoint(env->nm, o, dev, err, errlen);
			snprintf(detail, dlen, "routes=%d", n);
			return n < 0 ? -1 : 0;
		case NM_OP_UNROUTE:
			/* "Routed by nobody": netmigrate's /32 goes whatever its next
			 * hop (the reconcile's statement when the owner is home and
			 * where an earlier order pointed it is not known). */
			if (o->has_via) {
				snprintf(err, errlen, "unroute takes no 'via' (withdraw names one)");
				return -1;
			}
			n = nm_plan_unpoint(env->nm, o, dev, err, errlen);
			snprintf(detail, dlen, "routes=%d", n);
			return n < 0 ? -1 : 0;
		case NM_OP_FENCE:
		case NM_OP_UNFENCE:
			snprintf(err, errlen, "%s is a host order (the edge carries no VM)",
			    nm_op_name(o->op));
			return -1;
		}
		return -1;
	}
	dev = o->dev[0] ? o->dev : env->conf.vm_bridge;
	switch (o->op) {
	case NM_OP_PREPARE:
		n = nm_plan_prepare(env->nm, o, dev, err, errlen);
		snprintf(detail, dlen, "objects=%d", n);
		return n < 0 ? -1 : 0;
	case NM_OP_ANNOUNCE:
		if (!o->has_mac) {
			snprintf(err, errlen, "announce needs 'mac' (the VM's MAC)");
			return -1;
		}
		n = nm_plan_prepare(env->nm, o, dev, err, errlen);
		if (n < 0)
			return -1;
		frames = nmd_burst_start(env, o, dev, err, errlen);
		if (frames < 0)
			return -1;
		snprintf(detail, dlen, "objects=%d frames=%d rounds=%d", n, frames,
		    env->sched.rounds);
		return 0;
	case NM_OP_WITHDRAW:
		nmd_burst_cancel(env, o->vm);
		n = nm_plan_withdraw(env->nm, o, dev, err, errlen);
		snprintf(detail, dlen, "routes=%d", n);
		return n < 0 ? -1 : 0;
	case NM_OP_UNROUTE:
		snprintf(err, errlen, "unroute is an edge order");
		return -1;
	case NM_OP_FENCE:
	case NM_OP_UNFENCE:
		/* A planned switchover silences the old primary before the
		 * standby binds its IPs; unfence gives a fenced VM its port back. */
		if (!o->has_mac) {
			snprintf(err, errlen, "%s needs 'mac' (the VM's MAC)", nm_op_name(o->op));
			return -1;
		}
		if (o->op == NM_OP_FENCE) {
			nmd_burst_cancel(env, o->vm);
			if (nm_plan_withdraw(env->nm, o, dev, err, errlen) < 0)
				return -1;
		}
		if (nm_port_set(env->nm, env->conf.vm_bridge, o->mac, o->op == NM_OP_UNFENCE, port,
		    sizeof(port), err, errlen) < 0)
			return -1;
		snprintf(detail, dlen, "port=%s", port);
		return 0;
	}
	return -1;
}

static int
nmd_recent_has(struct nmd *env, const char *id)
{
	for (int i = 0; i < NMD_RECENT; i++)
		if (env->recent[i][0] && strcmp(env->recent[i], id) == 0)
			return 1;
	return 0;
}

static void
nmd_recent_add(struct nmd *env, const char *id)
{
	str_copy(env->recent[env->recent_next], id, NM_ID_MAX);
	env->recent_next = (env->recent_next + 1) % NMD_RECENT;
}

static void
nmd_ack(struct nmd *env, const char *id, int ok, long long took_us, const char *error)
{
	char took[32];
	const char *argv[16] = { "XADD", "pf:acks", "MAXLEN", "~", "10000", "*", "id", id,
		"host", env->conf.host, "status", ok ? "ok" : "error", "took_us", took,
		"error", error };
	size_t lens[16];

	snprintf(took, sizeof(took), "%lld", took_us);
	for (int i = 0; i < 16; i++)
		lens[i] = strlen(argv[i]);
	if (rlink_command_argv(env->wr, NULL, NULL, 16, argv, lens) < 0)
		log_warnx("ack id=%s lost: redis write link is down", id);
}

void
nmd_epoch_seen(struct nmd *env, uint64_t epoch, const char *where)
{
	char v[24];

	if (epoch <= env->epoch)
		return;
	log_info("epoch raised host=%s from=%llu to=%llu seen_in=%s", env->conf.host,
	    (unsigned long long)env->epoch, (unsigned long long)epoch, where);
	env->epoch = epoch;
	/* Kept next to the cursor, so a restarted agent still refuses what
	 * an old controller sends. */
	snprintf(v, sizeof(v), "%llu", (unsigned long long)epoch);
	rlink_command(env->wr, NULL, NULL, "SET %s %s", env->k_epoch, v);
}

/* Handle one stream entry: fv holds field/value strings. */
static void
nmd_entry(struct nmd *env, const char *sid, const char **fv, size_t n)
{
	static struct nm_order o;
	char err[400], detail[128];
	const char *id = sid;
	long long sid_ms = strtoll(sid, NULL, 10), age;
	int64_t t0 = clock_mono_us(), took;
	int r;

	for (size_t i = 0; i + 1 < n; i += 2)
		if (strcmp(fv[i], "id") == 0 && fv[i + 1][0])
			id = fv[i + 1];
	if (nm_order_parse(&o, fv, n, err, sizeof(err)) < 0) {
		log_warnx("order rejected entry=%s id=%s: %s", sid, id, err);
		env->orders_failed++;
		nmd_ack(env, id, 0, clock_mono_us() - t0, err);
		return;
	}
	age = clock_wall_ms() - sid_ms;
	if (env->conf.max_age_ms > 0 && age > env->conf.max_age_ms) {
		snprintf(err, sizeof(err), "order expired: %lld ms old (order_max_age %lld ms)", age,
		    env->conf.max_age_ms);
		log_warnx("order rejected id=%s op=%s vm=%s: %s", o.id, nm_op_name(o.op), o.vm, err);
		env->orders_failed++;
		nmd_ack(env, o.id, 0, clock_mono_us() - t0, err);
		return;
	}
	if (o.epoch && o.epoch < env->epoch) {
		snprintf(err, sizeof(err), "stale epoch %llu < %llu", (unsigned long long)o.epoch,
		    (unsigned long long)env->epoch);
		log_warnx("order refused id=%s op=%s vm=%s: %s (from a controller that is no longer "
		    "the leader)", o.id, nm_op_name(o.op), o.vm, err);
		env->orders_failed++;
		env->orders_stale++;
		nmd_ack(env, o.id, 0, clock_mono_us() - t0, err);
		return;
	}
	if (o.epoch)
		nmd_epoch_seen(env, o.epoch, "order");
	if (nmd_recent_has(env, o.id)) {
		log_info("order duplicate id=%s op=%s vm=%s: acknowledged again, not run", o.id,
		    nm_op_name(o.op), o.vm);
		nmd_ack(env, o.id, 1, 0, "duplicate");
		return;
	}
	if (nmd_want_superseded(env, &o)) {
		log_info("order superseded id=%s op=%s vm=%s epoch=%llu seq=%llu: a newer statement "
		    "for the VM is held (read from %s); not run", o.id, nm_op_name(o.op), o.vm,
		    (unsigned long long)o.epoch, (unsigned long long)o.seq, env->k_net);
		nmd_ack(env, o.id, 1, 0, "superseded");
		return;
	}
	r = nmd_exec(env, &o, detail, sizeof(detail), err, sizeof(err));
	took = clock_mono_us() - t0;
	if (r < 0) {
		env->orders_failed++;
		log_warnx("order failed id=%s op=%s vm=%s ips=%d took_us=%lld: %s", o.id,
		    nm_op_name(o.op), o.vm, o.nips, (long long)took, err);
		nmd_ack(env, o.id, 0, took, err);
		return;
	}
	env->orders_done++;
	nmd_recent_add(env, o.id);
	nmd_want_order(env, &o);	/* only what ran: a refused order states nothing */
	nmd_converge_soon(env);	/* ports and anything the order left to the statement */
	log_info("order id=%s op=%s vm=%s ips=%d %s took_us=%lld", o.id, nm_op_name(o.op), o.vm,
	    o.nips, detail, (long long)took);
	nmd_ack(env, o.id, 1, took, "");
}

/* ------------------------------------------------------------------ */
/* The stream */

static void
nmd_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	nmd_read_next(arg);
}

static void
nmd_retry_later(struct nmd *env)
{
	struct timeval tv = { 1, 0 };

	evtimer_add(env->retry_ev, &tv);
}

static void
nmd_entries(struct nmd *env, redisReply *streams)
{
	const char *fv[64];

	for (size_t s = 0; s < streams->elements; s++) {
		redisReply *st = streams->element[s], *entries;

		if (st->type != REDIS_REPLY_ARRAY || st->elements != 2)
			continue;
		entries = st->element[1];
		for (size_t e = 0; e < entries->elements; e++) {
			redisReply *en = entries->element[e], *fields;
			size_t n = 0;

			if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
			    en->element[0]->type != REDIS_REPLY_STRING)
				continue;
			fields = en->element[1];
			for (size_t f = 0; fields->type == REDIS_REPLY_ARRAY &&
			    f < fields->elements && n < PF_ARRAY_LEN(fv); f++)
				fv[n++] = fields->element[f]->type == REDIS_REPLY_STRING ?
				    fields->element[f]->str : "";
			/* Fenced while the read was in flight: leave the rest for
			 * later (order_max_age guards against stale ones). */
			if (!env->held)
				return;
			nmd_entry(env, en->element[0]->str, fv, n);
			str_copy(env->cursor, en->element[0]->str, sizeof(env->cursor));
			rlink_command(env->wr, NULL, NULL, "SET %s %s", env->k_cursor, env->cursor);
		}
	}
}

static void
nmd_xread_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct nmd *env = priv;
	redisReply *reply = r;

	(void)ac;
	env->reading = 0;
	if (!reply || env->stopping)
		return;	/* link lost: nmd_orders_on_link restarts */
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warnx("order stream %s: %s", env->k_orders, reply->str);
		nmd_retry_later(env);
		return;
	}
	if (reply->type == REDIS_REPLY_ARRAY)
		nmd_entries(env, reply);
	nmd_read_next(env);
}

static void
nmd_cursor_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct nmd *env = priv;
	redisReply *reply = r;

	(void)ac;
	env->reading = 0;
	if (!reply || env->stopping)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warnx("cursor %s: %s", env->k_cursor, reply->str);
		nmd_retry_later(env);
		return;
	}
	/* MGET cursor epoch */
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
		if (reply->element[0]->type == REDIS_REPLY_STRING)
			str_copy(env->cursor, reply->element[0]->str, sizeof(env->cursor));
		if (reply->element[1]->type == REDIS_REPLY_STRING)
			nmd_epoch_seen(env, strtoull(reply->element[1]->str, NULL, 10), env->k_epoch);
	}
	env->cursor_loaded = 1;
	log_info("orders stream=%s after=%s epoch=%llu", env->k_orders, env->cursor,
	    (unsigned long long)env->epoch);
	nmd_read_next(env);
}

/* Issue the next read, if we should be reading and are not already. */
static void
nmd_read_next(struct nmd *env)
{
	char block[32];
	int r;

	if (env->stopping || env->reading || !env->held || !rlink_is_up(env->rd))
		return;
	/* The statements first: an order must not run against a state the
	 * agent has not read (a withdraw after a restart, a stale replay). */
	if (env->conf.converge_ms > 0 && !env->want_read) {
		nmd_want_read(env);
		return;
	}
	if (!env->cursor_loaded) {
		r = rlink_command(env->rd, nmd_cursor_reply, env, "MGET %s %s", env->k_cursor,
		    env->k_epoch);
	} else {
		snprintf(block, sizeof(block), "%lld", env->conf.block_ms);
		r = rlink_command(env->rd, nmd_xread_reply, env, "XREAD COUNT 64 BLOCK %s STREAMS %s %s",
		    block, env->k_orders, env->cursor);
	}
	if (r == 0)
		env->reading = 1;
}

void
nmd_orders_start(struct nmd *env)
{
	if (!env->retry_ev)
		env->retry_ev = evtimer_new(env->base, nmd_retry_cb, env);
	nmd_read_next(env);
}

void
nmd_orders_on_link(struct nmd *env, int up)
{
	if (!up) {
		env->reading = 0;
		return;
	}
	nmd_orders_start(env);
}

void
nmd_orders_free(struct nmd *env)
{
	nmd_bursts_stop(env);
	if (env->retry_ev)
		event_free(env->retry_ev);
	env->retry_ev = NULL;
}
