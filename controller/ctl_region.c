/*
 * ctl_region.c: the regions' targets for the geographic policy, and the
 * GET /v1/regions view.
 *
 * The targets live in fleetd's memory, which the policy reads every tick,
 * and in the Redis hash pf:ctl:geo:targets (field = region, value "3" or
 * "40%"), kept by ctl_keep.c: a change is refused (503) until the hash has
 * been read, and stored before it is applied.
 */
#include "controller/fleetd.h"
#include "controller/ctl_plan.h"
#include "common/log.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ctl_region_init(struct fleetd *env)
{
	size_t n = env->conf->nregions > 0 ? (size_t)env->conf->nregions : 1;

	env->geo_targets = calloc(n, sizeof(*env->geo_targets));
	env->geo_blocked = calloc(n, sizeof(*env->geo_blocked));
	return env->geo_targets && env->geo_blocked ? 0 : -1;
}

void
ctl_region_free(struct fleetd *env)
{
	free(env->geo_targets);
	free(env->geo_blocked);
	env->geo_targets = NULL;
	env->geo_blocked = NULL;
}

int
ctl_region_find(const struct fleetd *env, const char *name)
{
	for (int r = 0; r < env->conf->nregions; r++)
		if (strcmp(env->conf->regions[r].name, name) == 0)
			return r;
	return -1;
}

int
ctl_region_target(struct fleetd *env, const char *region, const char *value,
    char *was, size_t waslen, char *why, size_t whylen)
{
	struct ctl_geo_target t;
	int k = ctl_region_find(env, region), pct = 0, rc;
	char now[16];

	if (k < 0) {
		snprintf(why, whylen, "no region called '%s'", region);
		return 404;
	}
	memset(&t, 0, sizeof(t));
	if (value && ctl_geo_target_parse(value, &t, why, whylen) < 0)
		return 400;
	for (int r = 0; r < env->conf->nregions; r++)
		if (r != k && env->geo_targets[r].kind == GEO_SHARE)
			pct += env->geo_targets[r].value;
	if (t.kind == GEO_SHARE && pct + t.value > 100) {
		snprintf(why, whylen, "shares would add up to %d%% (at most 100%%): lower another "
		    "region's first", pct + t.value);
		return 400;
	}
	ctl_geo_target_str(&t, now, sizeof(now));
	if ((rc = ctl_keep_put(env, KEEP_GEO, region, value ? now : NULL, why, whylen)) != 0)
		return rc;
	ctl_geo_target_str(&env->geo_targets[k], was, waslen);
	env->geo_targets[k] = t;
	env->geo_blocked[k][0] = '\0';
	ctl_journal(env, "geo", "target region=%s target=%s was=%s", region, now[0] ? now : "none",
	    was[0] ? was : "none");
	return 0;
}

cJSON *
ctl_region_json(struct fleetd *env)
{
	struct ctl_model *mo = &env->model;
	struct ctl_plan plan;
	cJSON *o, *regions, *moves;
	char t[16];

	if (ctl_policy_geo_plan(env, &plan) < 0)
		return NULL;
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "geo", env->conf->pol_geo);
	cJSON_AddNumberToObject(o, "geo_max_moves", (double)env->conf->pol_geo_max_moves);
	cJSON_AddNumberToObject(o, "in_flight", ctl_mig_count(env, "geo:"));
	cJSON_AddBoolToObject(o, "targets_read", env->keep[KEEP_GEO].loaded);
	cJSON_AddNumberToObject(o, "fleet", plan.fleet);
	regions = cJSON_AddArrayToObject(o, "regions");
	moves = cJSON_AddArrayToObject(o, "moves");
	for (int r = 0; r < plan.nregions; r++) {
		const struct ctl_plan_region *pr = &plan.regions[r];
		cJSON *j = cJSON_CreateObject(), *hosts;

		cJSON_AddStringToObject(j, "name", env->conf->regions[r].name);
		cJSON_AddStringToObject(j, "edge", env->conf->regions[r].edge);
		hosts = cJSON_AddArrayToObject(j, "hosts");
		for (int h = 0; h < mo->nhosts; h++)
			if (mo->hosts[h].region == r)
				cJSON_AddItemToArray(hosts, cJSON_CreateString(mo->hosts[h].conf->name));
		cJSON_AddNumberToObject(j, "vms", pr->vms);
		ctl_geo_target_str(&env->geo_targets[r], t, sizeof(t));
		if (t[0])
			cJSON_AddStringToObject(j, "target", t);
		else
			cJSON_AddNullToObject(j, "target");
		if (pr->want >= 0)
			cJSON_AddNumberToObject(j, "target_vms", pr->want);
		else
			cJSON_AddNullToObject(j, "target_vms");
		cJSON_AddNumberToObject(j, "vms_after", pr->vms_after);
		cJSON_AddNumberToObject(j, "moves_in", pr->moves_in);
		cJSON_AddNumberToObject(j, "moves_out", pr->moves_out);
		cJSON_AddStringToObject(j, "blocked", pr->blocked);
		cJSON_AddItemToArray(regions, j);
	}
	for (int i = 0; i < plan.nmoves; i++)
		cJSON_AddItemToArray(moves, ctl_policy_move_json(env, &plan.moves[i]));
	ctl_plan_free(&plan);
	return o;
}
