/*
 * px_tel.c: telemetry. Once a second the counters go to Redis as one
 * pipelined round trip (HSET pf:vm:<vm>:tel ..., SET pf:vm:<vm>:alive ... PX
 * 3000, and GET pf:users:rev when Redis users are on); the same counters are
 * rendered for Prometheus on the admin endpoint.
 *
 * Nothing here waits: commands go out through rlink, which refuses them at
 * once while Redis is down, so an outage costs nothing but skipped writes
 * (rlink logs the outage once). Counters are cumulative; readers derive
 * rates and notice restarts through boot_ms (docs/redis-keys.md).
 */
#include "proxyvm/px.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_metric {
	const char *name;	/* Redis field; Prometheus name is proxyvmd_<name> */
	const char *help;
	int gauge;
	size_t off;		/* in struct px_counters, or (size_t)-1 */
};

#define CT(f) offsetof(struct px_counters, f)

static const struct px_metric px_metrics[] = {
	{ "bytes_up", "Bytes relayed client to upstream.", 0, CT(bytes_up) },
	{ "bytes_down", "Bytes relayed upstream to client.", 0, CT(bytes_down) },
	{ "conns_active", "Client connections open.", 1, (size_t)-1 },
	{ "conns_total", "Client connections accepted.", 0, CT(conns_total) },
	{ "requests", "HTTP requests, CONNECT and SOCKS connects.", 0, CT(requests) },
	{ "auth_fail", "Failed or missing authentications.", 0, CT(auth_fail) },
	{ "err_parse", "Malformed client input.", 0, CT(err_parse) },
	{ "err_denied", "Destinations refused by the SSRF guard.", 0, CT(err_denied) },
	{ "err_connect", "Upstream connects that failed.", 0, CT(err_connect) },
	{ "err_dns", "Names that did not resolve.", 0, CT(err_dns) },
	{ "err_timeout", "Header, connect and idle timeouts.", 0, CT(err_timeout) },
	{ "err_limit", "Connections refused by a limit.", 0, CT(err_limit) },
	{ "err_upstream", "Bad or broken upstream responses.", 0, CT(err_upstream) },
};

static unsigned long long
px_metric_value(const struct px_env *env, const struct px_metric *m)
{
	if (m->off == (size_t)-1)
		return env->nsess;
	return *(const uint64_t *)((const char *)&env->ctr + m->off);
}

/* ---------------------------------------------------------------------------
 * Credentials from Redis
 * ------------------------------------------------------------------------- */

static void
px_users_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct px_env *env = priv;
	redisReply *reply = r;
	const char **names = NULL, **hashes = NULL;
	size_t n = 0;

	(void)ac;
	env->users_loading = 0;
	if (!reply) {
		env->users_rev = -1;	/* link lost: the next tick retries */
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY) {
		env->users_rev = -1;
		log_warnx("users load from=redis error=\"%s\"",
		    reply->type == REDIS_REPLY_ERROR ? reply->str : "not a hash");
		return;
	}
	n = reply->elements / 2;
	names = calloc(n + 1, sizeof(*names));
	hashes = calloc(n + 1, sizeof(*hashes));
	if (!names || !hashes)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (reply->element[2 * i]->type != REDIS_REPLY_STRING ||
		    reply->element[2 * i + 1]->type != REDIS_REPLY_STRING)
			goto out;
		names[i] = reply->element[2 * i]->str;
		hashes[i] = reply->element[2 * i + 1]->str;
	}
	if (px_auth_set_redis(env->auth, names, hashes, n) < 0)
		log_warnx("users load from=redis error=\"out of memory\"");
	else {
		env->cfg_rev = env->users_rev;
		env->cfg_ms = clock_wall_ms();
		log_info("users load from=redis users=%zu rev=%lld", n, env->users_rev);
	}
out:
	free(names);
	free(hashes);
}

static void
px_rev_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct px_env *env = priv;
	redisReply *reply = r;
	long long rev;

	(void)ac;
	if (!reply || env->users_loading)
		return;
	if (reply->type == REDIS_REPLY_NIL)
		rev = 0;
	else if (reply->type == REDIS_REPLY_STRING)
		rev = strtoll(reply->str, NULL, 10);
	else
		return;
	if (rev == env->users_rev)
		return;
	env->users_rev = rev;
	env->users_loading = 1;
	if (rlink_command(env->redis, px_users_cb, env, "HGETALL pf:users") < 0)
		env->users_loading = 0;
}

/* ---------------------------------------------------------------------------
 * The 1 Hz tick
 * ------------------------------------------------------------------------- */

void
px_tel_tick(struct px_env *env)
{
	const char *argv[2 + 2 * (PF_ARRAY_LEN(px_metrics) + 5)];
	size_t argvlen[PF_ARRAY_LEN(argv)];
	char vals[PF_ARRAY_LEN(px_metrics) + 5][24];
	char key[128], alive[128];
	int argc = 0, k = 0;
	int64_t now = clock_wall_ms();

	if (!env->redis || !rlink_is_up(env->redis))
		return;
	snprintf(key, sizeof(key), "pf:vm:%s:tel", env->conf->vm);
	snprintf(alive, sizeof(alive), "pf:vm:%s:alive", env->conf->vm);
	argv[argc++] = "HSET";
	argv[argc++] = key;
	argv[argc++] = "ts_ms";
	snprintf(vals[k], sizeof(vals[k]), "%lld", (long long)now);
	argv[argc++] = vals[k++];
	argv[argc++] = "boot_ms";
	snprintf(vals[k], sizeof(vals[k]), "%lld", (long long)env->boot_ms);
	argv[argc++] = vals[k++];
	/* What fleetd needs for standbys: the configuration revision in force
	 * (replication lag) and whether the service IPs are bound here. */
	argv[argc++] = "cfg_rev";
	snprintf(vals[k], sizeof(vals[k]), "%lld", env->cfg_rev);
	argv[argc++] = vals[k++];
	argv[argc++] = "cfg_ms";
	snprintf(vals[k], sizeof(vals[k]), "%lld", (long long)env->cfg_ms);
	argv[argc++] = vals[k++];
	argv[argc++] = "bound";
	snprintf(vals[k], sizeof(vals[k]), "%d", px_svc_present(env->conf));
	argv[argc++] = vals[k++];
	for (size_t i = 0; i < PF_ARRAY_LEN(px_metrics); i++) {
		argv[argc++] = px_metrics[i].name;
		snprintf(vals[k], sizeof(vals[k]), "%llu", px_metric_value(env, &px_metrics[i]));
		argv[argc++] = vals[k++];
	}
	for (int i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	/* hiredis writes all three on the next loop turn: one round trip. */
	if (rlink_command_argv(env->redis, NULL, NULL, argc, argv, argvlen) < 0)
		return;
	rlink_command(env->redis, NULL, NULL, "SET %s %lld PX 3000", alive, (long long)now);
	if (env->conf->redis_users)
		rlink_command(env->redis, px_rev_cb, env, "GET pf:users:rev");
}

void
px_tel_prom(const struct px_env *env, struct evbuffer *out)
{
	for (size_t i = 0; i < PF_ARRAY_LEN(px_metrics); i++) {
		const struct px_metric *m = &px_metrics[i];
		const char *type = m->gauge ? "gauge" : "counter";
		size_t nl = strlen(m->name);
		const char *suffix = m->gauge || (nl > 6 && strcmp(m->name + nl - 6, "_total") == 0)
		    ? "" : "_total";

		evbuffer_add_printf(out, "# HELP proxyvmd_%s%s %s\n# TYPE proxyvmd_%s%s %s\n"
		    "proxyvmd_%s%s{vm=\"%s\"} %llu\n", m->name, suffix, m->help, m->name,
		    suffix, type, m->name, suffix, env->conf->vm, px_metric_value(env, m));
	}
	evbuffer_add_printf(out, "# HELP proxyvmd_redis_up Telemetry link to Redis is up.\n"
	    "# TYPE proxyvmd_redis_up gauge\nproxyvmd_redis_up{vm=\"%s\"} %d\n",
	    env->conf->vm, env->redis && rlink_is_up(env->redis));
	evbuffer_add_printf(out, "# HELP proxyvmd_auth_checks_queued Password checks waiting for "
	    "or in crypt(3) on the worker.\n# TYPE proxyvmd_auth_checks_queued gauge\n"
	    "proxyvmd_auth_checks_queued{vm=\"%s\"} %u\n", env->conf->vm, px_auth_queued(env->auth));
	/* Every failed retry of an outage, though the log has one line for it. */
	evbuffer_add_printf(out, "# HELP proxyvmd_redis_connect_failures_total Failed Redis "
	    "connection attempts.\n# TYPE proxyvmd_redis_connect_failures_total counter\n"
	    "proxyvmd_redis_connect_failures_total{vm=\"%s\"} %lu\n", env->conf->vm,
	    env->redis ? rlink_failures(env->redis) : 0UL);
}
