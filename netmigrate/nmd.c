/*
 * nmd.c: netmigrated's start-up, configuration reloads and host lease (the
 * file's keys and checks are in nmd_conf.c).
 *
 * DESIGN
 * The lease is the host's right to carry IPs. pf:host:<host>:lease holds our
 * token with a TTL; every lease/3 we run one script that sets it again only
 * when it is absent or still ours, so an agent never steals a live lease
 * (after a restart it waits for its predecessor's lease to run out).
 *
 * Each successful renewal moves a deadline to "time the renewal was sent +
 * lease": counted from the send, not the reply, so our idea of the lease
 * always ends before Redis' does. If the deadline passes (Redis unreachable,
 * stalled, or someone else holds the key) the agent fences itself: it stops
 * every announcement burst and deletes every host route it installed
 * (all routes with protocol NM_RTPROT, so routes from an earlier run of the
 * agent go too), and executes no order until it holds the lease again. By
 * then the controller may have moved the IPs elsewhere. When the lease is
 * back, convergence (nmd_want.c) restores the routes fleetd's statements
 * still want; a VM whose port the fence took down comes up only for a
 * statement made after the lapse (the lease generation).
 *
 * The fence also silences the VMs whose standby the controller may promote
 * (pf:host:<host>:fence, a set of their MACs, written by fleetd and read
 * with every renewal, so the agent knows it while Redis is out of reach):
 * their bridge ports go down, so an isolated host's copy neither answers
 * ARP nor serves once the standby has the IPs. The agent never brings them
 * up by itself; fleetd sends "unfence" when the VM is to serve again.
 *
 * The deadline is "sent + lease - lease/8": the fence is in place before
 * Redis drops the key, which is what fleetd waits for before promoting.
 *
 * A graceful stop (SIGTERM) leaves routes and the lease alone: restarting
 * the agent must not disturb traffic.
 */
#include "netmigrate/nmd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/sig.h"
#include "common/util.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * KEYS[1] lease, KEYS[2] fence set, KEYS[3] our recorded epoch, KEYS[4] the
 * lease generation (one more each time the key is created: fleetd re-plans
 * a host whose generation moved, nmd_want.c).
 * ARGV[1] the token to hold it with, ARGV[2] lease ms, ARGV[3] "renew" or
 * "acquire", ARGV[4] (acquire) our last token, ARGV[5] our epoch, ARGV[6]
 * (acquire) the token of an attempt whose reply was lost ("" none): a key
 * holding it is ours, set when the lease had lapsed (kept 0). ARGV[7] the
 * generation we know (Redis may have lost it: it never goes below ours).
 * A renewal only extends our own key: it never creates one, so a renewal
 * that Redis runs late, after the key expired, cannot make it look as if
 * it never lapsed ({3}: lapsed). An acquisition takes an absent key (kept
 * 0) or one still holding our last token (kept 1: it never lapsed). Both
 * raise our recorded epoch to ours (Redis may have lost it) and return
 * {1, fence set members, kept, fence set exists, recorded epoch, generation};
 * {0}: the key holds someone else's token.
 */
static const char nmd_lease_lua[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local kept = 1 "
    "if ARGV[3] == 'renew' then "
    "  if v == false then return {3} end "
    "  if v ~= ARGV[1] then return {0} end "
    "elseif v == false or (ARGV[6] ~= '' and v == ARGV[6]) then kept = 0 "
    "elseif ARGV[4] == '' or v ~= ARGV[4] then return {0} end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "local e = tonumber(redis.call('GET', KEYS[3]) or '0') or 0 "
    "local mine = tonumber(ARGV[5]) or 0 "
    "if mine > e then redis.call('SET', KEYS[3], ARGV[5]) e = mine end "
    "local g = tonumber(redis.call('GET', KEYS[4]) or '0') or 0 "
    "local mg = tonumber(ARGV[7]) or 0 "
    "if kept == 0 then g = math.max(g, mg) + 1 redis.call('SET', KEYS[4], tostring(g)) "
    "elseif mg > g then redis.call('SET', KEYS[4], ARGV[7]) g = mg end "
    "return {1, redis.call('SMEMBERS', KEYS[2]), kept, redis.call('EXISTS', KEYS[2]), "
    "  tostring(e), tostring(g)}";

/* ------------------------------------------------------------------ */
/* Configuration */

static void
nmd_conf_apply(struct nmd *env)
{
	enum log_level l = LOG_LVL_INFO;

	env->role = strcmp(env->conf.role, "edge") == 0 ? NMD_ROLE_EDGE : NMD_ROLE_HOST;
	env->sched = nmd_conf_sched(&env->conf);
	env->form = strcmp(env->conf.arp_form, "request") == 0 ? NM_ARP_REQUEST :
	    strcmp(env->conf.arp_form, "reply") == 0 ? NM_ARP_REPLY : NM_ARP_BOTH;
	(void)log_level_parse(env->conf.log_level, &l);
	log_set_level(l);
}

/* SIGHUP: parse, validate, swap; identity and links need a restart. */
static void
nmd_reload(void *arg)
{
	struct nmd *env = arg;
	struct nmd_conf c;
	char err[512];

	if (nmd_conf_load(env->conf_path, &c, err, sizeof(err)) < 0) {
		log_warnx("reload failed, keeping the old configuration: %s", err);
		return;
	}
	if (strcmp(c.host, env->conf.host) || strcmp(c.role, env->conf.role) ||
	    strcmp(c.redis, env->conf.redis) || c.lease_ms != env->conf.lease_ms ||
	    strcmp(c.redis_sentinels, env->conf.redis_sentinels) ||
	    strcmp(c.redis_master, env->conf.redis_master) ||
	    strcmp(c.controllers, env->conf.controllers) || strcmp(c.hb_key, env->conf.hb_key)) {
		log_warnx("reload: host, role, redis, redis_sentinels, redis_master, lease, "
		    "controllers and heartbeat_key change only on restart; keeping the old "
		    "configuration");
		return;
	}
	env->conf = c;
	nmd_conf_apply(env);
	log_info("reload config=%s", env->conf_path);
}

/* ------------------------------------------------------------------ */
/* Lease and fencing */

static void
nmd_fence(struct nmd *env, const char *why)
{
	static struct nm_ip gone[4096];
	char err[300];
	int64_t t0 = clock_mono_us();
	int n = 0, vms = 0;

	env->held = 0;
	if (env->fenced)
		return;
	env->fenced = 1;
	env->fenced_at_ms = clock_mono_ms();
	env->lapsed = 0;	/* from now on: did the key lapse before we hold it again? */
	nmd_bursts_stop(env);
	if (!env->conf.fence) {
		log_warnx("lease lost host=%s reason=\"%s\" fence=off: routes kept", env->conf.host,
		    why);
		return;
	}
	vms = nm_ports_set(env->nm, env->conf.vm_bridge, (const uint8_t (*)[6])env->fence_macs,
	    env->nfence, 0, err, sizeof(err));
	if (vms < 0 || err[0])
		log_warnx("fence host=%s vm ports: %s", env->conf.host, err);
	if (vms < 0)
		vms = 0;
	memcpy(env->downed_macs, env->fence_macs, sizeof(env->downed_macs));
	env->ndowned = env->nfence;
	n = nm_route_flush(env->nm, gone, (int)PF_ARRAY_LEN(gone), err, sizeof(err));
	if (n < 0)
		log_warnx("fence host=%s withdraw failed: %s", env->conf.host, err);
	else
		log_warnx("fence host=%s reason=\"%s\" routes_withdrawn=%d vm_ports_down=%d "
		    "took_us=%lld", env->conf.host, why, n, vms,
		    (long long)(clock_mono_us() - t0));
}

/* A controller's grant still runs: 1, and the fence timer re-armed for
 * its end (the grant may be extended meanwhile; the timer looks again). */
static int
nmd_grant_holds(struct nmd *env, const char *what)
{
	int64_t left = env->grant_until_ms - clock_mono_ms();
	struct timeval tv;

	if (left <= 0)
		return 0;
	if (!env->grant_held)
		log_warnx("%s host=%s: not fencing, %s's grant (epoch %llu) runs %lld ms more: the "
		    "leader hears us, so Redis is what is out of reach", what, env->conf.host,
		    env->grant_from, (unsigned long long)env->grant_epoch, (long long)left);
	env->grant_held = 1;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(env->fence_ev, &tv);
	return 1;
}

static void
nmd_fence_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nmd *env = arg;
	char why[160];

	(void)fd;
	(void)what;
	if (nmd_grant_holds(env, "lease not renewed"))
		return;
	snprintf(why, sizeof(why), "lease not renewed for %lld ms%s", env->conf.lease_ms,
	    env->grant_held ? " and no grant since" : "");
	env->grant_held = 0;
	nmd_fence(env, why);
}

/* Remember the MACs of the VMs to silence on fencing (the set's members).
 * An absent key is Redis having lost it (fleetd always writes a marker
 * member): the last set is kept, not read as "none". */
static void
nmd_fence_set(struct nmd *env, const redisReply *set, int exists)
{
	int n = 0;

	if (set->type != REDIS_REPLY_ARRAY)
		return;
	if (!exists) {
		if (!env->fence_absent)
			log_warnx("fence set %s is absent in Redis: keeping the last one (%d VMs)",
			    env->k_fence, env->nfence);
		env->fence_absent = 1;
		return;
	}
	env->fence_absent = 0;
	for (size_t i = 0; i < set->elements && n < NMD_FENCE_MAX; i++) {
		const redisReply *e = set->element[i];

		if (e->type == REDIS_REPLY_STRING && nm_mac_parse(e->str, env->fence_macs[n], NULL, 0) == 0)
			n++;
	}
	env->nfence = n;
}

/* pf:ctl:epoch, read with each renewal: the agent learns of a new
 * controller leader within a renewal period, even before its first order. */
static void
nmd_ctl_epoch_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct nmd *env = priv;
	redisReply *reply = r;

	(void)ac;
	if (reply && !env->stopping && reply->type == REDIS_REPLY_STRING)
		nmd_epoch_seen(env, strtoull(reply->str, NULL, 10), "pf:ctl:epoch");
}

static void
nmd_lease_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct nmd *env = priv;
	redisReply *reply = r;
	struct timeval tv;
	int64_t left;

	(void)ac;
	env->renewing = 0;
	if (!reply && env->acquiring)	/* Redis may have run it: that key is ours */
		str_copy(env->lost_try, env->try_token, sizeof(env->lost_try));
	if (!reply || env->stopping)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warnx("lease renewal refused: %s", reply->str);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER) {
		log_warnx("lease renewal: unexpected reply type %d", reply->type);
		return;
	}
	if (reply->element[0]->integer == 3) {
		/* Our key expired in Redis before this renewal ran: fleetd may
		 * be promoting our standbys now, unless its grant says not. */
		if (env->grant_until_ms > clock_mono_ms()) {
			log_info("lease lapsed in Redis host=%s; %s's grant holds: taking it again, "
			    "not fencing", env->conf.host, env->grant_from);
			env->held = 0;	/* the next renewal acquires */
			return;
		}
		nmd_fence(env, "lease lapsed in Redis (the key was gone at renewal)");
		env->lapsed = 1;
		return;
	}
	if (reply->element[0]->integer != 1 || reply->elements < 6) {
		if (!env->other_holder)
			log_warnx("lease host=%s is held by another agent; waiting", env->conf.host);
		env->other_holder = 1;
		if (env->held)
			nmd_fence(env, "lease held by another token");
		return;
	}
	env->other_holder = 0;
	if (!env->held)
		str_copy(env->token, env->try_token, sizeof(env->token));	/* the key holds it */
	env->lost_try[0] = '\0';
	if (reply->element[2]->type != REDIS_REPLY_INTEGER || reply->element[2]->integer != 1)
		env->lapsed = 1;
	nmd_fence_set(env, reply->element[1], reply->element[3]->type == REDIS_REPLY_INTEGER &&
	    reply->element[3]->integer == 1);
	if (reply->element[4]->type == REDIS_REPLY_STRING)
		nmd_epoch_seen(env, strtoull(reply->element[4]->str, NULL, 10), env->k_epoch);
	if (reply->element[5]->type == REDIS_REPLY_STRING) {
		uint64_t g = strtoull(reply->element[5]->str, NULL, 10);

		if (g > env->gen) {
			log_info("lease generation host=%s gen=%llu (was %llu): the lease was created "
			    "again, so fleetd re-plans this host", env->conf.host,
			    (unsigned long long)g, (unsigned long long)env->gen);
			env->gen = g;
		}
	}
	rlink_command(env->wr, nmd_ctl_epoch_reply, env, "GET pf:ctl:epoch");
	left = env->renew_sent_ms + env->conf.lease_ms - env->conf.lease_ms / 8 - clock_mono_ms();
	if (left <= 0)
		return;	/* the reply came too late to count */
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(env->fence_ev, &tv);
	if (env->grant_held)
		log_info("lease renewed host=%s: Redis answers again (the grant held the fence off)",
		    env->conf.host);
	env->grant_held = 0;
	if (!env->held) {
		env->held = 1;
		if (env->fenced) {
			/* Our key never lapsed (Redis was slow, not gone): nobody
			 * can have promoted a standby, so the VM ports we took down
			 * come back. Had it lapsed at any moment since the fence
			 * (any reply said so), fleetd decides (unfence orders). */
			int kept = !env->lapsed, up = 0;
			char err[300];

			if (kept && env->ndowned > 0) {
				up = nm_ports_set(env->nm, env->conf.vm_bridge,
				    (const uint8_t (*)[6])env->downed_macs, env->ndowned, 1, err, sizeof(err));
				if (up < 0 || err[0])
					log_warnx("unfence host=%s vm ports: %s", env->conf.host, err);
			}
			env->ndowned = 0;
			log_info("unfence host=%s fenced_for_ms=%lld lease_lapsed=%s vm_ports_up=%d",
			    env->conf.host, (long long)(clock_mono_ms() - env->fenced_at_ms),
			    kept ? "no" : "yes", up > 0 ? up : 0);
			env->fenced = 0;
			env->lapsed = 0;
		} else {
			log_info("lease acquired host=%s token=%s lease_ms=%lld", env->conf.host,
			    env->token, env->conf.lease_ms);
		}
		nmd_want_read(env);
		nmd_orders_start(env);
		nmd_converge_soon(env);
	}
}

static void
nmd_lease_renew(struct nmd *env)
{
	char lease[32], epoch[24], gen[24];
	const char *tok = env->token;

	if (env->renewing || !rlink_is_up(env->wr))
		return;
	snprintf(lease, sizeof(lease), "%lld", env->conf.lease_ms);
	snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)env->epoch);
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)env->gen);
	/* Not holding: a fresh token for this attempt, so that an attempt
	 * Redis runs late can never pass for our key having been kept. */
	if (!env->held) {
		snprintf(env->try_token, sizeof(env->try_token), "%lld-%d-%u",
		    (long long)clock_wall_ms(), (int)getpid(), ++env->token_seq);
		tok = env->try_token;
	}
	if (rlink_command(env->wr, nmd_lease_reply, env, "EVAL %s 4 %s %s %s %s %s %s %s %s %s %s %s",
	    nmd_lease_lua, env->k_lease, env->k_fence, env->k_epoch, env->k_gen, tok, lease,
	    env->held ? "renew" : "acquire", env->token, epoch, env->lost_try, gen) == 0) {
		env->acquiring = !env->held;
		env->renewing = 1;
		env->renew_sent_ms = clock_mono_ms();
	}
}

static void
nmd_lease_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	nmd_hb_ping(arg);
	nmd_lease_renew(arg);
}

static void
nmd_link_state(struct rlink *rl, int up, const char *why, void *arg)
{
	struct nmd *env = arg;
	const char *name = rl == env->wr ? "write" : "orders";

	if (env->stopping)
		return;
	if (up)
		log_info("redis up link=%s addr=%s", name, rlink_addr(rl));
	else
		log_warnx("redis down link=%s reason=\"%s\"", name, why);
	if (rl == env->wr && up)
		nmd_lease_renew(env);
	if (rl == env->rd)
		nmd_orders_on_link(env, up);
}

/* ------------------------------------------------------------------ */
/* Start-up and shutdown */

static void
nmd_term(int signo, void *arg)
{
	struct nmd *env = arg;

	log_info("stop signal=%d orders_done=%lu orders_failed=%lu", signo, env->orders_done,
	    env->orders_failed);
	env->stopping = 1;
	event_base_loopexit(env->base, NULL);
}

static _Noreturn void
nmd_usage(void)
{
	fprintf(stderr, "usage: netmigrated -f FILE [-n] [-d]\n"
	    "  -f FILE  configuration (INI, see docs/netmigrate.md)\n"
	    "  -n       check the configuration, print \"configuration OK\" and exit\n"
	    "  -d       debug logging\n");
	exit(2);
}

static int
nmd_free(struct nmd *env)
{
	int left = 0;

	env->stopping = 1;
	/* Links first: their pending callbacks run (with NULL) while all
	 * else still exists. */
	rlink_free(env->rd);
	rlink_free(env->wr);
	nmd_orders_free(env);
	nmd_want_free(env);
	nmd_metrics_free(env);
	nmd_hb_free(env);
	if (env->lease_ev)
		event_free(env->lease_ev);
	if (env->fence_ev)
		event_free(env->fence_ev);
	sig_watch_free(env->sig);
	nm_ctx_free(env->nm);
	if (env->base) {
		left = event_base_get_num_events(env->base, EVENT_BASE_COUNT_ADDED);
		if (left > 0)
			log_error("leak: %d events still registered at exit", left);
		event_base_free(env->base);
	}
	return left > 0 ? -1 : 0;
}

int
main(int argc, char **argv)
{
	static struct nmd env;
	struct sig_handlers sh = { nmd_term, nmd_reload, &env };
	struct timeval tv;
	char err[512];
	int ch, check = 0, debug = 0, rc;

	while ((ch = getopt(argc, argv, "f:nd")) != -1) {
		switch (ch) {
		case 'f': env.conf_path = optarg; break;
		case 'n': check = 1; break;
		case 'd': debug = 1; break;
		default: nmd_usage();
		}
	}
	if (!env.conf_path || optind != argc)
		nmd_usage();
	log_init("netmigrated", LOG_LVL_INFO);
	if (nmd_conf_load(env.conf_path, &env.conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "netmigrated: %s\n", err);
		return 2;
	}
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	nmd_conf_apply(&env);
	if (debug)
		log_set_level(LOG_LVL_DEBUG);

	snprintf(env.k_lease, sizeof(env.k_lease), "pf:host:%s:lease", env.conf.host);
	snprintf(env.k_fence, sizeof(env.k_fence), "pf:host:%s:fence", env.conf.host);
	snprintf(env.k_metrics, sizeof(env.k_metrics), "pf:host:%s:metrics", env.conf.host);
	snprintf(env.k_orders, sizeof(env.k_orders), "pf:host:%s:orders", env.conf.host);
	snprintf(env.k_cursor, sizeof(env.k_cursor), "pf:host:%s:cursor", env.conf.host);
	snprintf(env.k_epoch, sizeof(env.k_epoch), "pf:host:%s:epoch", env.conf.host);
	snprintf(env.k_gen, sizeof(env.k_gen), "pf:host:%s:gen", env.conf.host);
	str_copy(env.cursor, "0", sizeof(env.cursor));

	env.nm = nm_ctx_open(NULL, err, sizeof(err));
	if (!env.nm)
		fatalx("start: %s", err);
	env.base = event_base_new();
	if (!env.base)
		fatalx("start: cannot make an event base");
	env.sig = sig_watch_new(env.base, &sh);
	env.lease_ev = event_new(env.base, -1, EV_PERSIST, nmd_lease_cb, &env);
	env.fence_ev = evtimer_new(env.base, nmd_fence_cb, &env);
	if (!env.sig || !env.lease_ev || !env.fence_ev || nmd_metrics_init(&env) < 0)
		fatalx("start: out of memory");
	if (nmd_hb_start(&env, err, sizeof(err)) < 0 || nmd_want_start(&env, err, sizeof(err)) < 0)
		fatalx("start: %s", err);
	tv.tv_sec = env.conf.lease_ms / 3 / 1000;
	tv.tv_usec = (env.conf.lease_ms / 3 % 1000) * 1000;
	evtimer_add(env.lease_ev, &tv);

	env.wr = rlink_open(env.base, &env.conf.target, nmd_link_state, &env);
	env.rd = rlink_open(env.base, &env.conf.target, nmd_link_state, &env);
	if (!env.wr || !env.rd)
		fatalx("start: out of memory");
	log_info("start host=%s role=%s redis=%s%s lease_ms=%lld vm_bridge=%s uplink=%s",
	    env.conf.host, env.conf.role, env.conf.redis_sentinels[0] ? "sentinels:" : "",
	    env.conf.redis_sentinels[0] ? env.conf.redis_sentinels : env.conf.redis,
	    env.conf.lease_ms, env.conf.vm_bridge,
	    env.conf.uplink[0] ? env.conf.uplink : "-");

	rc = event_base_dispatch(env.base);
	if (rc < 0)
		log_error("event loop failed");
	return nmd_free(&env) < 0 || rc < 0 ? 1 : 0;
}
