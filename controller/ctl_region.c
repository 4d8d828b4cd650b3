/*
 * ctl_region.c: the regions' targets for the geographic policy, and the
 * GET /v1/regions view.
 *
 * The targets live in fleetd's memory, which the policy reads every tick,
 * and in the Redis hash pf:ctl:geo:targets (field = region, value "3" or
 * "40%"), so they survive a restart. The hash is read when the Redis link
 * first comes up; until then a change is refused (503) rather than let a
 * fresh fleetd overwrite what an operator set before. A change is written
 * at once and applied in memory once the write is on its way; when the
 * link drops before Redis answers, the whole set is written again on the
 * next connect, so Redis never keeps an older target than the one fleetd
 * acts on. Only this fleetd writes the hash: it reads it once, not on
 * every tick.
 */
#include "controller/fleetd.h"
#include "controller/ctl_plan.h"
#include "common/log.h"
#include "common/rlink.h"
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

static int
ctl_region_find(const struct fleetd *env, const char *name)
{
	for (int r = 0; r < env->conf->nregions; r++)
		if (strcmp(env->conf->regions[r].name, name) == 0)
			return r;
	return -1;
}

static void
ctl_region_read(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleetd *env = priv;
	redisReply *r = reply;
	struct ctl_geo_target t;
	char why[160];
	int n = 0;

	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		log_warnx("geo targets unread key=%s why=\"%s\" (read again on the next connect)",
		    CTL_GEO_KEY, !r ? "link lost" : r->type == REDIS_REPLY_ERROR ? r->str :
		    "not a hash");
		return;
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];
		int k;

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if ((k = ctl_region_find(env, f->str)) < 0) {
			log_warnx("geo target ignored region=%s target=%s why=\"no such region in the "
			    "configuration\"", f->str, v->str);
			continue;
		}
		if (ctl_geo_target_parse(v->str, &t, why, sizeof(why)) < 0) {
			log_warnx("geo target ignored region=%s why=\"%s\"", f->str, why);
			continue;
		}
		env->geo_targets[k] = t;
		n++;
	}
	env->geo_loaded = 1;
	log_info("geo targets read key=%s targets=%d took_ms=%lld", CTL_GEO_KEY, n,
	    (long long)(clock_mono_ms() - env->geo_read_ms));
}

static void
ctl_region_written(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleetd *env = priv;
	redisReply *r = reply;

	(void)ac;
	if (r && r->type != REDIS_REPLY_ERROR)
		return;
	env->geo_dirty = 1;
	log_warnx("geo targets unstored key=%s why=\"%s\" (stored again on the next connect)",
	    CTL_GEO_KEY, r ? r->str : "link lost");
}

/* Write the whole set: the hash, then every target in it. */
static void
ctl_region_store_all(struct fleetd *env)
{
	char v[16];
	int n = 0;

	env->geo_dirty = 0;
	if (rlink_command(env->redis, ctl_region_written, env, "DEL %s", CTL_GEO_KEY) < 0) {
		env->geo_dirty = 1;
		return;
	}
	for (int r = 0; r < env->conf->nregions; r++) {
		if (env->geo_targets[r].kind == GEO_NONE)
			continue;
		ctl_geo_target_str(&env->geo_targets[r], v, sizeof(v));
		if (rlink_command(env->redis, ctl_region_written, env, "HSET %s %s %s", CTL_GEO_KEY,
		    env->conf->regions[r].name, v) < 0)
			env->geo_dirty = 1;
		n++;
	}
	log_info("geo targets stored again key=%s targets=%d", CTL_GEO_KEY, n);
}

void
ctl_region_redis_up(struct fleetd *env)
{
	if (!env->geo_loaded) {
		env->geo_read_ms = clock_mono_ms();
		rlink_command(env->redis, ctl_region_read, env, "HGETALL %s", CTL_GEO_KEY);
	} else if (env->geo_dirty) {
		ctl_region_store_all(env);
	}
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
	if (!rlink_is_up(env->redis)) {
		snprintf(why, whylen, "redis is down: the target could not be stored");
		return 503;
	}
	if (!env->geo_loaded) {
		snprintf(why, whylen, "the stored targets are not read from redis yet: try again");
		return 503;
	}
	ctl_geo_target_str(&t, now, sizeof(now));
	if (value)
		rc = rlink_command(env->redis, ctl_region_written, env, "HSET %s %s %s", CTL_GEO_KEY,
		    region, now);
	else
		rc = rlink_command(env->redis, ctl_region_written, env, "HDEL %s %s", CTL_GEO_KEY,
		    region);
	if (rc < 0) {
		snprintf(why, whylen, "redis refused the write: the target could not be stored");
		return 503;
	}
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
	cJSON_AddBoolToObject(o, "targets_read", env->geo_loaded);
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
