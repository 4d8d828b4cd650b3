/*
 * ctl_keep.c: what the controller keeps in Redis so that a restarted
 * fleetd, or the next leader, carries on where the last one stopped: the
 * regions' targets (pf:ctl:geo:targets, region -> "3" or "40%") and the
 * hosts taken out of service (pf:ctl:drain, host -> "draining" or
 * "maintenance").
 *
 * DESIGN. Each is a Redis hash mirrored in fleetd's memory, which the
 * policy and the drain read every tick. A hash is read when the Redis link
 * first comes up, again whenever this fleetd takes the lead (the previous
 * leader may have changed it since), and every few seconds while it
 * follows (so its read-only API shows what the leader does). Until the
 * first read has arrived a change is refused (503) rather than let a fresh
 * fleetd overwrite what an operator set before; so it is while Redis is
 * down. A change is written at once and applied in memory once the write
 * is on its way; when the link drops before Redis answers, the whole hash
 * is written again on the next connect, so Redis never keeps an older
 * value than the one fleetd acts on. Only the leader writes.
 */
#include "controller/fleetd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_KEEP_FOLLOW_MS 5000	/* a follower reads again this often */

static const char *const ctl_keep_key[KEEP_N] = { CTL_GEO_KEY, CTL_DRAIN_KEY };
static const char *const ctl_keep_what[KEEP_N] = { "geo targets", "host drains" };

/* ----- the two kinds ---------------------------------------------------- */

/* Forget the in-memory values a fresh read replaces. */
static void
ctl_keep_clear(struct fleetd *env, enum ctl_keep_kind k)
{
	if (k == KEEP_GEO) {
		memset(env->geo_targets, 0, (size_t)env->conf->nregions * sizeof(*env->geo_targets));
		return;
	}
	for (int h = 0; h < env->model.nhosts; h++) {
		env->model.hosts[h].draining = 0;
		env->model.hosts[h].maintenance = 0;
	}
}

/* One field read from Redis; 0, or -1 with why when it is ignored. */
static int
ctl_keep_apply(struct fleetd *env, enum ctl_keep_kind k, const char *field, const char *value,
    char *why, size_t whylen)
{
	struct ctl_geo_target t;
	int i;

	if (k == KEEP_GEO) {
		if ((i = ctl_region_find(env, field)) < 0) {
			snprintf(why, whylen, "no such region in the configuration");
			return -1;
		}
		if (ctl_geo_target_parse(value, &t, why, whylen) < 0)
			return -1;
		env->geo_targets[i] = t;
		return 0;
	}
	if ((i = ctl_host_find(&env->model, field)) < 0) {
		snprintf(why, whylen, "no such host in the configuration");
		return -1;
	}
	if (strcmp(value, "draining") != 0 && strcmp(value, "maintenance") != 0) {
		snprintf(why, whylen, "state '%.20s' is neither draining nor maintenance", value);
		return -1;
	}
	env->model.hosts[i].draining = value[0] == 'd';
	env->model.hosts[i].maintenance = value[0] == 'm';
	return 0;
}

/* The value of entry i (a region, a host) as stored; NULL when it has none,
 * and *field NULL past the last entry. */
static const char *
ctl_keep_value(struct fleetd *env, enum ctl_keep_kind k, int i, const char **field,
    char *buf, size_t buflen)
{
	if (k == KEEP_GEO) {
		*field = i < env->conf->nregions ? env->conf->regions[i].name : NULL;
		if (!*field || env->geo_targets[i].kind == GEO_NONE)
			return NULL;
		ctl_geo_target_str(&env->geo_targets[i], buf, buflen);
		return buf;
	}
	*field = i < env->model.nhosts ? env->model.hosts[i].conf->name : NULL;
	if (!*field)
		return NULL;
	return env->model.hosts[i].maintenance ? "maintenance" :
	    env->model.hosts[i].draining ? "draining" : NULL;
}

/* ----- reading and writing ---------------------------------------------- */

static void ctl_keep_store_all(struct fleetd *env, enum ctl_keep_kind k);
static void ctl_keep_read(struct fleetd *env, enum ctl_keep_kind k);

static void
ctl_keep_read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct ctl_keep *kp = priv;
	struct fleetd *env = kp->env;
	enum ctl_keep_kind k = kp->kind;
	redisReply *r = reply;
	char why[160];
	int n = 0, first = !kp->loaded;

	(void)ac;
	kp->reading = 0;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		kp->again = 0;
		log_warnx("%s unread key=%s why=\"%s\" (read again on the next connect)",
		    ctl_keep_what[k], ctl_keep_key[k], !r ? "link lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "not a hash");
		return;
	}
	if (kp->again) {
		/* Sent before this fleetd took the lead: read what the last
		 * leader wrote up to its end. */
		kp->again = 0;
		ctl_keep_read(env, k);
		return;
	}
	if (kp->dirty && ctl_leader_is(env)) {
		/* A write of ours was lost meanwhile: what we hold is newer. */
		kp->loaded = 1;
		ctl_keep_store_all(env, k);
		return;
	}
	kp->dirty = 0;	/* a follower's lost write: the leader's hash is the truth */
	ctl_keep_clear(env, k);
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (ctl_keep_apply(env, k, f->str, v->str, why, sizeof(why)) < 0) {
			if (first)
				log_warnx("%s entry ignored key=%s field=%s value=%s why=\"%s\"",
				    ctl_keep_what[k], ctl_keep_key[k], f->str, v->str, why);
			continue;
		}
		n++;
	}
	kp->loaded = 1;
	if (first || ctl_leader_is(env))
		log_info("%s read key=%s entries=%d took_ms=%lld", ctl_keep_what[k], ctl_keep_key[k],
		    n, (long long)(clock_mono_ms() - kp->read_ms));
	if (k == KEEP_DRAIN)
		ctl_model_tally(&env->model);
}

static void
ctl_keep_read(struct fleetd *env, enum ctl_keep_kind k)
{
	struct ctl_keep *kp = &env->keep[k];

	if (kp->reading || !rlink_is_up(env->redis))
		return;
	kp->read_ms = clock_mono_ms();
	if (rlink_command(env->redis, ctl_keep_read_cb, kp, "HGETALL %s", ctl_keep_key[k]) == 0)
		kp->reading = 1;
}

static void
ctl_keep_written_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct ctl_keep *kp = priv;
	redisReply *r = reply;

	(void)ac;
	if (r && r->type != REDIS_REPLY_ERROR)
		return;
	kp->dirty = 1;
	log_warnx("%s unstored key=%s why=\"%s\" (stored again on the next connect)",
	    ctl_keep_what[kp->kind], ctl_keep_key[kp->kind], r ? r->str : "link lost");
}

/* The whole hash again: DEL, then every entry that has a value. */
static void
ctl_keep_store_all(struct fleetd *env, enum ctl_keep_kind k)
{
	struct ctl_keep *kp = &env->keep[k];
	const char *field, *v;
	char buf[32];
	int n = 0;

	kp->dirty = 0;
	if (rlink_command(env->redis, ctl_keep_written_cb, kp, "DEL %s", ctl_keep_key[k]) < 0) {
		kp->dirty = 1;
		return;
	}
	for (int i = 0; (v = ctl_keep_value(env, k, i, &field, buf, sizeof(buf))) || field; i++) {
		if (!v)
			continue;
		if (rlink_command(env->redis, ctl_keep_written_cb, kp, "HSET %s %s %s",
		    ctl_keep_key[k], field, v) < 0)
			kp->dirty = 1;
		n++;
	}
	log_info("%s stored again key=%s entries=%d", ctl_keep_what[k], ctl_keep_key[k], n);
}

/* ----- the interface ---------------------------------------------------- */

void
ctl_keep_init(struct fleetd *env)
{
	for (int k = 0; k < KEEP_N; k++) {
		env->keep[k].env = env;
		env->keep[k].kind = (enum ctl_keep_kind)k;
	}
}

void
ctl_keep_redis_up(struct fleetd *env)
{
	for (int k = 0; k < KEEP_N; k++) {
		if (!env->keep[k].loaded)
			ctl_keep_read(env, (enum ctl_keep_kind)k);
		else if (env->keep[k].dirty && ctl_leader_is(env))
			ctl_keep_store_all(env, (enum ctl_keep_kind)k);
	}
}

void
ctl_keep_reload(struct fleetd *env)
{
	for (int k = 0; k < KEEP_N; k++) {
		env->keep[k].loaded = 0;
		env->keep[k].dirty = 0;
		env->keep[k].again = env->keep[k].reading;
		ctl_keep_read(env, (enum ctl_keep_kind)k);
	}
}

void
ctl_keep_tick(struct fleetd *env)
{
	if (ctl_leader_is(env))
		return;
	for (int k = 0; k < KEEP_N; k++)
		if (clock_mono_ms() - env->keep[k].read_ms >= CTL_KEEP_FOLLOW_MS)
			ctl_keep_read(env, (enum ctl_keep_kind)k);
}

int
ctl_keep_put(struct fleetd *env, enum ctl_keep_kind k, const char *field, const char *value,
    char *why, size_t whylen)
{
	struct ctl_keep *kp = &env->keep[k];
	int rc;

	if (!rlink_is_up(env->redis)) {
		snprintf(why, whylen, "redis is down: the change could not be stored");
		return 503;
	}
	if (!kp->loaded) {
		snprintf(why, whylen, "the stored %s are not read from redis yet: try again",
		    ctl_keep_what[k]);
		return 503;
	}
	if (value)
		rc = rlink_command(env->redis, ctl_keep_written_cb, kp, "HSET %s %s %s",
		    ctl_keep_key[k], field, value);
	else
		rc = rlink_command(env->redis, ctl_keep_written_cb, kp, "HDEL %s %s",
		    ctl_keep_key[k], field);
	if (rc < 0) {
		snprintf(why, whylen, "redis refused the write: the change could not be stored");
		return 503;
	}
	return 0;
}

void
ctl_keep_note(struct fleetd *env, enum ctl_keep_kind k, const char *field, const char *value)
{
	char why[160];

	if (ctl_keep_put(env, k, field, value, why, sizeof(why)) != 0) {
		env->keep[k].dirty = 1;
		log_warnx("%s unstored key=%s field=%s why=\"%s\" (stored again on the next connect)",
		    ctl_keep_what[k], ctl_keep_key[k], field, why);
	}
}
