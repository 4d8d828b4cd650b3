/*
 * ctl_leader.c: which fleetd leads, and its fencing token.
 *
 * DESIGN. Several fleetds may run against one Redis. The leader holds
 * pf:ctl:leader = "<instance> <epoch> <api_url>" with a TTL of
 * leader_lease; every fleetd runs one Lua script every lease/4 that
 *   - renews the key when it still holds exactly the value we set,
 *   - takes it when it is absent: INCR pf:ctl:epoch (raised above any epoch
 *     an agent has recorded, so a lost pf:ctl:epoch cannot hand out an old
 *     token again), SET the key with the new epoch,
 *   - otherwise returns the holder, which followers use for redirects.
 * One script, so acquiring, the epoch and the lease are one atomic step.
 *
 * The lease is counted from the send, not the reply: a good renewal moves
 * our deadline to "sent + lease", and Redis' own expiry, counted from when
 * it ran the script, can only be later. When the deadline passes without a
 * renewal (Redis unreachable or slow, this process stopped), we step down
 * at once: nothing new starts, no order is written, the migration records
 * are given up (the libvirt jobs run on in libvirtd), and the API turns
 * read-only. Every check asks the clock (ctl_leader_is), not a flag, so a
 * process that was stopped (SIGSTOP, a long page fault storm) and runs
 * again knows it is no longer the leader before its first callback acts.
 * A step-down gives up the epoch for good: leading again means taking the
 * key afresh, with a new epoch and a reconcile.
 *
 * A follower polls at the same period and takes the key as soon as it is
 * gone, so a takeover comes at most lease + lease/4 after the leader's
 * last renewal. A leader that stops cleanly deletes the key (only if still
 * its own) so a follower takes over at its next poll.
 *
 * The epoch is the fencing token: ctl_order.c writes it into every order
 * and the agents refuse orders carrying an epoch lower than one they have
 * seen (docs/netmigrate.md).
 */
#include "controller/fleetd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_LEADER_KEY "pf:ctl:leader"
#define CTL_EPOCH_KEY "pf:ctl:epoch"
#define CTL_RELEASED_KEY "pf:ctl:released"
#define CTL_LEADER_MAX_AGENTS 4096	/* agent epoch keys passed to the script */

/*
 * KEYS[1] leader, KEYS[2] epoch, KEYS[3] the epoch last released cleanly,
 * KEYS[4..] the agents' recorded epochs. ARGV[1] the value we hold (""
 * when none), ARGV[2] lease ms, ARGV[3] instance, ARGV[4] api_url, ARGV[5]
 * our floor (the highest epoch we have held or learnt of). Returns {1,
 * value} renewed, {2, value, incr, clean} acquired (incr: what INCR gave;
 * clean: the previous lease was released, not lost), {0, holder} held by
 * someone else.
 */
static const char ctl_leader_lua[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and v == ARGV[1] then "
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, v} end "
    "if v then return {0, v} end "
    "local prev = redis.call('GET', KEYS[2]) "
    "local clean = (prev and prev == redis.call('GET', KEYS[3])) and 1 or 0 "
    "local e = redis.call('INCR', KEYS[2]) "
    "local incr = e "
    "local f = tonumber(ARGV[5]) or 0 "
    "if f >= e then e = f + 1 end "
    "for i = 4, #KEYS do "
    "  local a = tonumber(redis.call('GET', KEYS[i]) or '0') or 0 "
    "  if a >= e then e = a + 1 end "
    "end "
    "redis.call('SET', KEYS[2], e) "
    "local nv = ARGV[3] .. ' ' .. e .. ' ' .. ARGV[4] "
    "redis.call('SET', KEYS[1], nv, 'PX', ARGV[2]) "
    "return {2, nv, incr, clean}";

/* Delete the key only while it still holds our value; ARGV[2], when not
 * "", is our epoch, recorded in KEYS[2] as released cleanly (we grant no
 * more heartbeats, so the next leader need not wait for our grants). */
static const char ctl_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "  if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end "
    "  return redis.call('DEL', KEYS[1]) end "
    "return 0";

int
ctl_leader_is(const struct fleetd *env)
{
	return env->lead.held[0] && clock_mono_ms() < env->lead.deadline_ms;
}

const char *
ctl_leader_url(const struct fleetd *env)
{
	const struct ctl_lead *l = &env->lead;

	/* A holder not confirmed for two leases may be gone: unknown. */
	if (!l->seen_ms || clock_mono_ms() - l->seen_ms > 2 * env->conf->leader_lease_ms)
		return NULL;
	if (!l->seen_url[0] || strcmp(l->seen_id, l->instance) == 0)
		return NULL;
	return l->seen_url;
}

/* "<instance> <epoch> <url>" into its parts; -1 when malformed. */
static int
ctl_leader_parse(const char *v, char *id, size_t idlen, uint64_t *epoch, char *url,
    size_t urllen)
{
	const char *sp1 = strchr(v, ' '), *sp2;
	char *end;

	if (!sp1 || (size_t)(sp1 - v) >= idlen)
		return -1;
	*epoch = strtoull(sp1 + 1, &end, 10);
	sp2 = end;
	if (*sp2 != ' ' || *epoch == 0)
		return -1;
	memcpy(id, v, (size_t)(sp1 - v));
	id[sp1 - v] = '\0';
	str_copy(url, sp2 + 1, urllen);
	return 0;
}

static void
ctl_leader_seen(struct fleetd *env, const char *v)
{
	struct ctl_lead *l = &env->lead;
	char id[CTL_NAME_MAX], url[256];
	uint64_t epoch;

	if (ctl_leader_parse(v, id, sizeof(id), &epoch, url, sizeof(url)) < 0) {
		log_warnx("leader key %s holds '%.80s': not '<instance> <epoch> <url>'",
		    CTL_LEADER_KEY, v);
		return;
	}
	if (strcmp(id, l->seen_id) != 0 || epoch != l->seen_epoch) {
		if (strcmp(id, l->instance) != 0)
			log_info("leader is instance=%s epoch=%llu url=%s (this instance %s follows)",
			    id, (unsigned long long)epoch, url, l->instance);
		str_copy(l->seen_id, id, sizeof(l->seen_id));
		str_copy(l->seen_url, url, sizeof(l->seen_url));
		l->seen_epoch = epoch;
	}
	if (epoch > l->floor)
		l->floor = epoch;
	l->seen_ms = clock_mono_ms();
}

/* Fire and forget: delete the key if it is still ours. */
static int
ctl_leader_release_value(struct fleetd *env, const char *value, int clean, redisCallbackFn *fn,
    void *priv)
{
	char epoch[24] = "";

	if (clean)
		snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)env->lead.epoch);
	return rlink_command(env->redis, fn, priv, "EVAL %s 2 %s %s %s %s", ctl_release_lua,
	    CTL_LEADER_KEY, CTL_RELEASED_KEY, value, epoch);
}

static int
ctl_leader_release(struct fleetd *env, int clean, redisCallbackFn *fn, void *priv)
{
	return ctl_leader_release_value(env, env->lead.held, clean, fn, priv);
}

static void
ctl_leader_step_down(struct fleetd *env, const char *why)
{
	struct ctl_lead *l = &env->lead;
	int64_t led = clock_wall_ms() - l->since_wall_ms;

	if (!l->held[0])
		return;
	/* First stop acting, then say so: nothing below may send an order. */
	l->deadline_ms = 0;
	evtimer_del(l->deadline_ev);
	ctl_recon_stop(env);
	log_warnx("leader step-down instance=%s epoch=%llu why=\"%s\" led_ms=%lld in_flight=%d",
	    l->instance, (unsigned long long)l->epoch, why, (long long)led, env->mig_in_flight);
	ctl_mig_abandon(env, why);
	/* If the key is still ours (we only lost track of time), give it up
	 * now so a follower need not wait for it to expire. */
	ctl_leader_release(env, 0, NULL, NULL);
	l->held[0] = '\0';
	l->epoch = 0;
}

void
ctl_leader_stale(struct fleetd *env, const char *agent, uint64_t ours, uint64_t theirs)
{
	struct ctl_lead *l = &env->lead;
	char why[160];

	if (theirs > l->floor)
		l->floor = theirs;
	/* An order from an earlier lease of ours, run after the agent learnt
	 * the current one, is refused rightly: nothing to do. */
	if (!l->held[0] || ours != l->epoch || theirs < l->epoch)
		return;
	/* An agent has seen our epoch or a later one from someone else: Redis
	 * lost pf:ctl:epoch (restarted empty, a replica promoted) and handed
	 * out an old number, or another leader came and went. Either way our
	 * orders are refused; lead again from above what the agent knows. */
	snprintf(why, sizeof(why), "agent %s refuses epoch %llu: it has seen %llu (Redis forgot "
	    "the epoch?); leading again above it", agent, (unsigned long long)l->epoch,
	    (unsigned long long)theirs);
	ctl_leader_step_down(env, why);
	ctl_leader_poll(env);
}

static void
ctl_leader_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fleetd *env = arg;
	char why[96];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "lease not renewed within %lld ms", env->conf->leader_lease_ms);
	ctl_leader_step_down(env, why);
}

static void
ctl_leader_arm(struct fleetd *env)
{
	struct ctl_lead *l = &env->lead;
	int64_t left = l->deadline_ms - clock_mono_ms();
	struct timeval tv;

	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(l->deadline_ev, &tv);
}

static void
ctl_leader_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleetd *env = priv;
	struct ctl_lead *l = &env->lead;
	redisReply *r = reply;
	int64_t now = clock_mono_ms(), until = l->sent_ms + env->conf->leader_lease_ms;
	long long kind;
	const char *v;

	(void)ac;
	l->polling = 0;
	if (!r)
		return;	/* link lost: the deadline decides */
	if (r->type == REDIS_REPLY_ERROR) {
		log_warnx("leader lease script refused: %s", r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING)
		return;
	kind = r->element[0]->integer;
	v = r->element[1]->str;
	ctl_leader_seen(env, v);
	if (kind == 0) {
		/* The key names this instance but not the value we hold: an
		 * acquisition Redis ran after our link dropped its reply (a
		 * script queued during a stall). Nobody leads under it: give it
		 * back, and take the lease afresh at the next poll. */
		if (strcmp(l->seen_id, l->instance) == 0 && (!l->held[0] || strcmp(v, l->held))) {
			log_warnx("leader key holds this instance's '%.60s' from a reply that was lost: "
			    "released, to be taken afresh", v);
			if (l->held[0])
				ctl_leader_step_down(env, "the key holds another value of ours");
			ctl_leader_release_value(env, v, 0, NULL, NULL);
			return;
		}
		/* Someone else holds it; if we thought we did, our key expired. */
		if (l->held[0])
			ctl_leader_step_down(env, "another instance holds the lease");
		ctl_hb_stop_granting(env);
		return;
	}
	if (kind == 1) {
		if (!l->held[0] || strcmp(v, l->held) != 0)
			return;	/* we stepped down meanwhile: the key goes by itself */
		if (until <= now)
			return;	/* came back too late to count */
		l->deadline_ms = until;
		ctl_leader_arm(env);
		ctl_hb_on_lead(env, 0, 0, 0);
		return;
	}
	/* kind == 2: acquired with a fresh epoch. If we thought we held it,
	 * our key vanished (Redis restarted empty, or flushed): what we were
	 * doing belongs to the old epoch, so give it up before leading anew. */
	if (l->held[0])
		ctl_leader_step_down(env, "lease key vanished (Redis restarted or flushed?)");
	if (until <= now) {
		/* The reply took longer than the lease: by our count it has
		 * already ended. Give it back rather than lead on borrowed time. */
		str_copy(l->held, v, sizeof(l->held));
		ctl_leader_release(env, 0, NULL, NULL);
		l->held[0] = '\0';
		log_warnx("leader lease acquired too late (reply after %lld ms > lease %lld ms): "
		    "released", (long long)(now - l->sent_ms), env->conf->leader_lease_ms);
		return;
	}
	str_copy(l->held, v, sizeof(l->held));
	l->epoch = l->seen_epoch;
	l->deadline_ms = until;
	l->since_wall_ms = clock_wall_ms();
	l->takeovers++;
	ctl_leader_arm(env);
	{
		long long incr = r->elements > 2 && r->element[2]->type == REDIS_REPLY_INTEGER ?
		    r->element[2]->integer : 0;
		int clean = r->elements > 3 && r->element[3]->type == REDIS_REPLY_INTEGER &&
		    r->element[3]->integer == 1;

		ctl_hb_on_lead(env, 1, incr, clean);
	}
	ctl_journal(env, "leader", "acquired instance=%s epoch=%llu url=%s lease_ms=%lld took_ms=%lld",
	    l->instance, (unsigned long long)l->epoch, l->api_url, env->conf->leader_lease_ms,
	    (long long)(now - l->sent_ms));
	ctl_keep_reload(env);
	ctl_recon_start(env);
}

void
ctl_leader_poll(struct fleetd *env)
{
	struct ctl_lead *l = &env->lead;
	struct ctl_model *m = &env->model;
	const char **argv;
	size_t *lens;
	char lease[24], nkeys[16], floor[24];
	int argc = 0, n = 0, max;

	if (l->polling || !rlink_is_up(env->redis))
		return;
	/* The agents: every host and every region's edge (duplicates are harmless). */
	max = m->nhosts + env->conf->nregions;
	if (max > CTL_LEADER_MAX_AGENTS)
		max = CTL_LEADER_MAX_AGENTS;
	argv = calloc((size_t)max + 12, sizeof(*argv));
	lens = calloc((size_t)max + 12, sizeof(*lens));
	if (!argv || !lens)
		goto out;
	snprintf(lease, sizeof(lease), "%lld", env->conf->leader_lease_ms);
	snprintf(nkeys, sizeof(nkeys), "%d", 3 + max);
	argv[argc++] = "EVAL";
	argv[argc++] = ctl_leader_lua;
	argv[argc++] = nkeys;
	argv[argc++] = CTL_LEADER_KEY;
	argv[argc++] = CTL_EPOCH_KEY;
	argv[argc++] = CTL_RELEASED_KEY;
	{
		/* Key names live until the command is formatted (rlink copies). */
		char (*keys)[CTL_NAME_MAX + 24] = calloc((size_t)max + 1, sizeof(*keys));

		if (!keys)
			goto out;
		for (int h = 0; h < m->nhosts && n < max; h++)
			snprintf(keys[n++], sizeof(keys[0]), "pf:host:%s:epoch", m->hosts[h].conf->name);
		for (int r = 0; r < env->conf->nregions && n < max; r++)
			snprintf(keys[n++], sizeof(keys[0]), "pf:host:%s:epoch",
			    env->conf->regions[r].edge[0] ? env->conf->regions[r].edge :
			    env->conf->regions[r].name);
		for (int i = 0; i < n; i++)
			argv[argc++] = keys[i];
		argv[argc++] = l->held;
		argv[argc++] = lease;
		argv[argc++] = l->instance;
		argv[argc++] = l->api_url;
		snprintf(floor, sizeof(floor), "%llu", (unsigned long long)l->floor);
		argv[argc++] = floor;
		for (int i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		l->sent_ms = clock_mono_ms();
		if (rlink_command_argv(env->redis, ctl_leader_reply, env, argc, argv, lens) == 0)
			l->polling = 1;
		free(keys);
	}
out:
	free(argv);
	free(lens);
}

static void
ctl_leader_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fleetd *env = arg;

	(void)fd;
	(void)what;
	/* The deadline timer may not have run yet after a long stop: the
	 * clock is the authority. */
	if (env->lead.held[0] && !ctl_leader_is(env))
		ctl_leader_deadline_cb(-1, 0, env);
	ctl_leader_poll(env);
}

int
ctl_leader_start(struct fleetd *env, char *err, size_t errlen)
{
	struct ctl_lead *l = &env->lead;
	long long period = env->conf->leader_lease_ms / 4;
	struct timeval tv = { period / 1000, (period % 1000) * 1000 };

	str_copy(l->instance, env->conf->instance, sizeof(l->instance));
	str_copy(l->api_url, env->conf->api_url, sizeof(l->api_url));
	l->poll_ev = event_new(env->base, -1, EV_PERSIST, ctl_leader_poll_cb, env);
	l->deadline_ev = evtimer_new(env->base, ctl_leader_deadline_cb, env);
	if (!l->poll_ev || !l->deadline_ev || event_add(l->poll_ev, &tv) < 0) {
		snprintf(err, errlen, "cannot make the leader lease timers");
		return -1;
	}
	log_info("leader election instance=%s url=%s lease_ms=%lld poll_ms=%lld", l->instance,
	    l->api_url, env->conf->leader_lease_ms, period);
	ctl_leader_poll(env);
	return 0;
}

static void
ctl_leader_released(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleetd *env = priv;
	redisReply *r = reply;

	(void)ac;
	log_info("leader released instance=%s deleted=%lld", env->lead.instance,
	    r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL);
	event_base_loopexit(env->base, NULL);
}

void
ctl_leader_release_and_exit(struct fleetd *env)
{
	struct ctl_lead *l = &env->lead;
	struct timeval grace = { 1, 0 };

	event_del(l->poll_ev);
	ctl_hb_stop_granting(env);
	if (ctl_leader_is(env)) {
		l->deadline_ms = 0;	/* act no more */
		if (ctl_leader_release(env, 1, ctl_leader_released, env) == 0) {
			/* Should Redis not answer, leave anyway: the key expires. */
			event_base_loopexit(env->base, &grace);
			return;
		}
	}
	event_base_loopexit(env->base, NULL);
}

void
ctl_leader_free(struct fleetd *env)
{
	if (env->lead.poll_ev)
		event_free(env->lead.poll_ev);
	if (env->lead.deadline_ev)
		event_free(env->lead.deadline_ev);
	env->lead.poll_ev = env->lead.deadline_ev = NULL;
}

cJSON *
ctl_leader_json(struct fleetd *env)
{
	struct ctl_lead *l = &env->lead;
	cJSON *o = cJSON_CreateObject();
	int me = ctl_leader_is(env);
	const char *url = ctl_leader_url(env);

	cJSON_AddStringToObject(o, "instance", l->instance);
	cJSON_AddStringToObject(o, "role", me ? "leader" : "follower");
	cJSON_AddStringToObject(o, "leader", me ? l->instance : url ? l->seen_id : "");
	cJSON_AddStringToObject(o, "leader_url", me ? l->api_url : url ? url : "");
	cJSON_AddNumberToObject(o, "epoch", me ? (double)l->epoch : url ? (double)l->seen_epoch : 0);
	cJSON_AddNumberToObject(o, "lease_ms", (double)env->conf->leader_lease_ms);
	cJSON_AddNumberToObject(o, "leader_since_ms", me ? (double)l->since_wall_ms : 0);
	cJSON_AddBoolToObject(o, "reconciling", env->recon != NULL);
	{
		/* How long promotions still wait after a takeover (heartbeat
		 * grants another instance may have given). */
		int64_t left = me ? l->hb_wait_until_ms - clock_mono_ms() : 0;

		cJSON_AddNumberToObject(o, "promotion_hold_ms", left > 0 ? (double)left : 0);
	}
	cJSON_AddNumberToObject(o, "takeovers", (double)l->takeovers);
	return o;
}
