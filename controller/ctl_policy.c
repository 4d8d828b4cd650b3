/*
 * ctl_policy.c: the policies that run the planners on fleetd's tick:
 * rebalancing by proxy traffic (ctl_plan.c) and geographic redistribution
 * (ctl_geo.c). Both start their moves through one function, as policy
 * moves journaled with their reason.
 *
 * Every tick the planner runs over the model (it is pure and takes a few
 * milliseconds at 10,000 VMs). A host that is above the high-water mark
 * notes since when; once some host has stayed above it for the configured
 * window, the moves off such hosts that fit the concurrency limits start
 * through ctl_mig_start as policy moves (they wait out cooldowns and keep
 * pins), each journaled with its reason. The next ticks start the rest as
 * migrations finish: a VM in flight already counts on its destination, so
 * a replan does not move more than the first plan wanted. Nothing starts
 * while fleetd stops or while Redis (the telemetry) is down; a host whose
 * telemetry is stale is never a destination (see ctl_plan.c).
 *
 * Geographic redistribution (when [policy] geo is on) needs no window: its
 * targets are an operator's decision, not a measurement. Each tick it
 * plans against the targets and starts at most geo_max_moves, and none
 * while a geo move is still in flight (their reasons start with "geo:"),
 * so a region fills a bounded number of VMs at a time. It waits until the
 * targets have been read from Redis, so a restart never acts on none.
 */
#include "controller/fleetd.h"
#include "controller/ctl_geo.h"
#include "controller/ctl_plan.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void
ctl_policy_params(struct fleetd *env, struct ctl_plan_params *p)
{
	memset(p, 0, sizeof(*p));
	p->high = (double)env->conf->pol_high_pct / 100.0;
	p->target = (double)env->conf->pol_target_pct / 100.0;
	p->lim.max_concurrent = (int)env->conf->mig_max_concurrent;
	p->lim.max_per_host = (int)env->conf->mig_max_per_host;
	p->lim.in_flight = env->mig_in_flight;
	p->lim.now_ms = clock_mono_ms();
	p->lim.use_cooldown = 1;
}

static void
ctl_policy_reset(struct fleetd *env)
{
	for (int h = 0; h < env->model.nhosts; h++) {
		env->model.hosts[h].hot_since_ms = 0;
		env->model.hosts[h].policy_blocked[0] = '\0';
	}
}

/* The one way a policy move starts: through the executor, journaled. */
static int
ctl_policy_start(struct fleetd *env, const struct ctl_plan_move *mv, const char *reason)
{
	struct ctl_model *mo = &env->model;
	const char *to = mo->hosts[mv->to].conf->name;
	char why[256];
	unsigned id;

	if (ctl_mig_start(env, mv->vm, to, reason, 1, &id, why, sizeof(why)) < 0) {
		log_info("policy move refused kind=%s vm=%s to=%s why=\"%s\"",
		    mv->kind == MOVE_GEO ? "geo" : "rebalance", mv->vm, to, why);
		return -1;
	}
	ctl_journal(env, "policy", "%smove id=%u vm=%s from=%s to=%s reason=\"%s\"",
	    mv->kind == MOVE_GEO ? "geo " : "", id, mv->vm, mo->hosts[mv->from].conf->name, to,
	    mv->reason);
	return 0;
}

static void
ctl_policy_rebalance(struct fleetd *env)
{
	struct ctl_model *mo = &env->model;
	struct ctl_plan_params p;
	struct ctl_plan plan;
	int64_t now = clock_mono_ms();
	int due = 0;

	ctl_policy_params(env, &p);
	if (ctl_plan_make(mo, &p, &plan) < 0) {
		log_warnx("%s: cannot plan: out of memory", __func__);
		return;
	}
	for (int h = 0; h < mo->nhosts; h++) {
		struct ctl_host *host = &mo->hosts[h];

		if (!plan.hosts[h].hot) {
			if (host->hot_since_ms)
				log_info("policy cool host=%s load=%.0f%%", host->conf->name,
				    100 * plan.hosts[h].load);
			host->hot_since_ms = 0;
			host->policy_blocked[0] = '\0';
			continue;
		}
		if (!host->hot_since_ms) {
			host->hot_since_ms = now;
			log_info("policy hot host=%s load=%.0f%% high_water=%lld%% window_ms=%lld",
			    host->conf->name, 100 * plan.hosts[h].load, env->conf->pol_high_pct,
			    env->conf->pol_window_ms);
		}
		if (now - host->hot_since_ms >= env->conf->pol_window_ms)
			due = 1;
	}
	for (int i = 0; due && i < plan.nmoves; i++) {
		struct ctl_plan_move *mv = &plan.moves[i];
		struct ctl_host *from = &mo->hosts[mv->from];
		char reason[128];	/* the migration record keeps 63 chars */

		if (!mv->now || now - from->hot_since_ms < env->conf->pol_window_ms)
			continue;
		snprintf(reason, sizeof(reason), "rebalance: %s at %.0f%% > %lld%%", from->conf->name,
		    100 * plan.hosts[mv->from].load, env->conf->pol_high_pct);
		ctl_policy_start(env, mv, reason);
	}
	/* Say once why a hot host stays hot, not on every tick. */
	for (int h = 0; due && h < mo->nhosts; h++) {
		struct ctl_host *host = &mo->hosts[h];
		const char *b = plan.hosts[h].blocked;

		if (!plan.hosts[h].hot || now - host->hot_since_ms < env->conf->pol_window_ms ||
		    strcmp(b, host->policy_blocked) == 0)
			continue;
		str_copy(host->policy_blocked, b, sizeof(host->policy_blocked));
		if (b[0])
			ctl_journal(env, "policy", "blocked host=%s load=%.0f%% why=\"%s\"",
			    host->conf->name, 100 * plan.hosts[h].load, b);
	}
	ctl_plan_free(&plan);
}

int
ctl_policy_geo_plan(struct fleetd *env, struct ctl_plan *out)
{
	struct ctl_geo_params gp;
	struct ctl_plan_params p;

	ctl_policy_params(env, &p);
	memset(&gp, 0, sizeof(gp));
	gp.targets = env->geo_targets;
	gp.max_moves = (int)env->conf->pol_geo_max_moves;
	gp.in_flight = ctl_mig_count(env, "geo:");
	gp.target = p.target;
	gp.lim = p.lim;
	ctl_model_tally(&env->model);
	return ctl_geo_make(&env->model, &gp, out);
}

static void
ctl_policy_geo(struct fleetd *env)
{
	struct ctl_plan plan;

	if (!env->keep[KEEP_GEO].loaded)
		return;	/* the targets are not read yet: none is not the same as unknown */
	if (ctl_policy_geo_plan(env, &plan) < 0) {
		log_warnx("%s: cannot plan: out of memory", __func__);
		return;
	}
	for (int i = 0; i < plan.nmoves; i++) {
		char reason[sizeof(plan.moves[i].reason) + 8];	/* the record keeps 63 chars */

		if (!plan.moves[i].now)
			continue;
		snprintf(reason, sizeof(reason), "geo: %s", plan.moves[i].reason);
		ctl_policy_start(env, &plan.moves[i], reason);
	}
	/* Say once why a region stays off its target, not on every tick. */
	for (int r = 0; r < plan.nregions; r++) {
		const char *b = plan.regions[r].blocked;

		if (strcmp(b, env->geo_blocked[r]) == 0)
			continue;
		str_copy(env->geo_blocked[r], b, sizeof(env->geo_blocked[r]));
		if (b[0])
			ctl_journal(env, "policy", "geo blocked region=%s why=\"%s\"",
			    env->conf->regions[r].name, b);
	}
	ctl_plan_free(&plan);
}

void
ctl_policy_tick(struct fleetd *env)
{
	/* Only the leader plans for real; a follower's window starts over
	 * when it takes the lead, as after a Redis outage. */
	if (env->stopping || !rlink_is_up(env->redis) || !ctl_leader_is(env) || env->recon) {
		ctl_policy_reset(env);	/* no telemetry, no policy: the window starts over */
		return;
	}
	ctl_model_tally(&env->model);
	if (env->conf->pol_rebalance)
		ctl_policy_rebalance(env);
	else
		ctl_policy_reset(env);
	if (env->conf->pol_geo)
		ctl_policy_geo(env);
}

cJSON *
ctl_policy_move_json(struct fleetd *env, const struct ctl_plan_move *mv)
{
	struct ctl_model *mo = &env->model;
	cJSON *m = cJSON_CreateObject();

	cJSON_AddStringToObject(m, "vm", mv->vm);
	cJSON_AddStringToObject(m, "from", mo->hosts[mv->from].conf->name);
	cJSON_AddStringToObject(m, "to", mo->hosts[mv->to].conf->name);
	cJSON_AddNumberToObject(m, "traffic_bps", mv->bps);
	cJSON_AddNumberToObject(m, "memory", (double)mv->mem_bytes);
	cJSON_AddBoolToObject(m, "now", mv->now);
	cJSON_AddStringToObject(m, "wait", mv->wait);
	cJSON_AddStringToObject(m, "reason", mv->reason);
	cJSON_AddStringToObject(m, "kind", mv->kind == MOVE_GEO ? "geo" : "rebalance");
	return m;
}

cJSON *
ctl_policy_json(struct fleetd *env)
{
	struct ctl_model *mo = &env->model;
	struct ctl_plan_params p;
	struct ctl_plan plan, geo;
	int64_t now = clock_mono_ms();
	cJSON *o, *moves, *hosts, *geo_blocked;

	ctl_model_tally(mo);
	ctl_policy_params(env, &p);
	if (ctl_plan_make(mo, &p, &plan) < 0)
		return NULL;
	o = cJSON_CreateObject();
	moves = cJSON_AddArrayToObject(o, "moves");
	hosts = cJSON_AddArrayToObject(o, "hosts");
	cJSON_AddBoolToObject(o, "rebalance", env->conf->pol_rebalance);
	cJSON_AddNumberToObject(o, "high_water", p.high);
	cJSON_AddNumberToObject(o, "target", p.target);
	cJSON_AddNumberToObject(o, "window_ms", (double)env->conf->pol_window_ms);
	cJSON_AddNumberToObject(o, "hot", plan.hot);
	cJSON_AddNumberToObject(o, "still_hot", plan.still_hot);
	cJSON_AddNumberToObject(o, "lower_bound", plan.lower_bound);
	for (int i = 0; i < plan.nmoves; i++)
		cJSON_AddItemToArray(moves, ctl_policy_move_json(env, &plan.moves[i]));
	/* The geographic moves after the rebalancing ones, each marked by kind. */
	cJSON_AddBoolToObject(o, "geo", env->conf->pol_geo);
	cJSON_AddNumberToObject(o, "geo_max_moves", (double)env->conf->pol_geo_max_moves);
	geo_blocked = cJSON_AddArrayToObject(o, "geo_blocked");
	if (ctl_policy_geo_plan(env, &geo) == 0) {
		for (int i = 0; i < geo.nmoves; i++)
			cJSON_AddItemToArray(moves, ctl_policy_move_json(env, &geo.moves[i]));
		for (int r = 0; r < geo.nregions; r++) {
			cJSON *b;

			if (!geo.regions[r].blocked[0])
				continue;
			b = cJSON_CreateObject();
			cJSON_AddStringToObject(b, "region", env->conf->regions[r].name);
			cJSON_AddStringToObject(b, "blocked", geo.regions[r].blocked);
			cJSON_AddItemToArray(geo_blocked, b);
		}
		ctl_plan_free(&geo);
	}
	for (int h = 0; h < mo->nhosts; h++) {
		struct ctl_plan_host *ph = &plan.hosts[h];
		struct ctl_host *host = &mo->hosts[h];
		cJSON *j = cJSON_CreateObject();

		cJSON_AddStringToObject(j, "name", host->conf->name);
		cJSON_AddStringToObject(j, "region", host->conf->region);
		cJSON_AddNumberToObject(j, "traffic_bps", ph->bps);
		cJSON_AddNumberToObject(j, "nic_bps", (double)host->conf->nic);
		cJSON_AddNumberToObject(j, "load", ph->load);
		cJSON_AddNumberToObject(j, "load_after", ph->load_after);
		cJSON_AddBoolToObject(j, "hot", ph->hot);
		cJSON_AddNumberToObject(j, "hot_for_ms",
		    host->hot_since_ms ? (double)(now - host->hot_since_ms) : 0);
		cJSON_AddNumberToObject(j, "min_moves", ph->min_moves);
		cJSON_AddNumberToObject(j, "moves", ph->moves);
		cJSON_AddStringToObject(j, "blocked", ph->blocked);
		cJSON_AddItemToArray(hosts, j);
	}
	ctl_plan_free(&plan);
	return o;
}
