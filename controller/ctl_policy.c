/*
 * ctl_policy.c: rebalancing by proxy traffic, the policy that runs the
 * planner (ctl_plan.c) on fleetd's tick.
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
 */
#include "controller/fleetd.h"
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

void
ctl_policy_tick(struct fleetd *env)
{
	struct ctl_model *mo = &env->model;
	struct ctl_plan_params p;
	struct ctl_plan plan;
	int64_t now = clock_mono_ms();
	int due = 0;

	/* Only the leader plans for real; a follower's window starts over
	 * when it takes the lead, as after a Redis outage. */
	if (env->stopping || !env->conf->pol_rebalance || !rlink_is_up(env->redis) ||
	    !ctl_leader_is(env) || env->recon) {
		ctl_policy_reset(env);	/* no telemetry, no policy: the window starts over */
		return;
	}
	ctl_model_tally(mo);
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
		char why[256], reason[128];	/* the migration record keeps 63 chars */
		unsigned id;

		if (!mv->now || now - from->hot_since_ms < env->conf->pol_window_ms)
			continue;
		snprintf(reason, sizeof(reason), "rebalance: %s at %.0f%% > %lld%%", from->conf->name,
		    100 * plan.hosts[mv->from].load, env->conf->pol_high_pct);
		if (ctl_mig_start(env, mv->vm, mo->hosts[mv->to].conf->name, reason, 1, &id, why,
		    sizeof(why)) < 0) {
			log_info("policy move refused vm=%s to=%s why=\"%s\"", mv->vm,
			    mo->hosts[mv->to].conf->name, why);
			continue;
		}
		ctl_journal(env, "policy", "move id=%u vm=%s from=%s to=%s reason=\"%s\"", id, mv->vm,
		    from->conf->name, mo->hosts[mv->to].conf->name, mv->reason);
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

cJSON *
ctl_policy_json(struct fleetd *env)
{
	struct ctl_model *mo = &env->model;
	struct ctl_plan_params p;
	struct ctl_plan plan;
	int64_t now = clock_mono_ms();
	cJSON *o, *moves, *hosts;

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
	for (int i = 0; i < plan.nmoves; i++) {
		struct ctl_plan_move *mv = &plan.moves[i];
		cJSON *m = cJSON_CreateObject();

		cJSON_AddStringToObject(m, "vm", mv->vm);
		cJSON_AddStringToObject(m, "from", mo->hosts[mv->from].conf->name);
		cJSON_AddStringToObject(m, "to", mo->hosts[mv->to].conf->name);
		cJSON_AddNumberToObject(m, "traffic_bps", mv->bps);
		cJSON_AddNumberToObject(m, "memory", (double)mv->mem_bytes);
		cJSON_AddBoolToObject(m, "now", mv->now);
		cJSON_AddStringToObject(m, "wait", mv->wait);
		cJSON_AddStringToObject(m, "reason", mv->reason);
		cJSON_AddItemToArray(moves, m);
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
