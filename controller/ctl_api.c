/*
 * ctl_api.c: fleetd's HTTP(S) JSON API and Prometheus metrics, on evhttp.
 *
 * Versioned paths under /v1, bearer-token auth (compared in constant time),
 * one JSON error writer for every failure ({"error": "..."} with the right
 * status), and HTTPS through bufferevent_openssl when tls_cert and tls_key
 * are set (plain HTTP is meant for loopback and the lab). Handlers only
 * read the model or start work that finishes later; nothing here blocks.
 * The routes are documented in docs/api.md.
 */
#include "controller/fleetd.h"
#include "controller/ctl_req.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_API_MAX_BODY 65536
#define CTL_API_TIMEOUT_S 10

struct ctl_api {
	struct fleetd *env;
	struct evhttp *http;
	SSL_CTX *ssl;
};

/* ----- replies ---------------------------------------------------------- */

static void
ctl_api_send(struct evhttp_request *req, int code, const char *reason, const char *ctype,
    const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

/* Reply with j (consumed). */
static void
ctl_api_json(struct evhttp_request *req, int code, cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	static const char oom[] = "{\"error\":\"out of memory\"}";

	if (s) {
		size_t n = strlen(s);

		char *t = realloc(s, n + 2);

		if (t) {
			s = t;
			s[n++] = '\n';
		}
		ctl_api_send(req, code, code < 300 ? "OK" : code == 307 ? "Temporary Redirect" :
		    "Error", "application/json", s, n);
	} else {
		ctl_api_send(req, 500, "Error", "application/json", oom, sizeof(oom) - 1);
	}
	free(s);
	cJSON_Delete(j);
}

/* The one error writer: {"error": msg} with status code. */
static void
ctl_api_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ctl_api_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *j = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(j, "error", msg);
	if (code == 401)
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		    "Bearer realm=\"fleetd\"");
	ctl_api_json(req, code, j);
}

/* ----- views ------------------------------------------------------------ */

static cJSON *
ctl_api_hosts(struct fleetd *env)
{
	struct ctl_model *m = &env->model;
	cJSON *arr = cJSON_CreateArray();

	ctl_model_tally(m);
	for (int i = 0; i < m->nhosts; i++) {
		struct ctl_host *h = &m->hosts[i];
		cJSON *o = cJSON_CreateObject();
		const char *health = h->connected && h->lease_ok ? "up" :
		    h->connected ? "no-lease" : h->lease_ok ? "no-libvirt" : "down";

		cJSON_AddStringToObject(o, "name", h->conf->name);
		cJSON_AddStringToObject(o, "region", h->conf->region);
		cJSON_AddStringToObject(o, "uri", h->conf->uri);
		cJSON_AddStringToObject(o, "health", health);
		cJSON_AddBoolToObject(o, "libvirt", h->connected);
		cJSON_AddStringToObject(o, "libvirt_error", h->virt_error);
		cJSON_AddBoolToObject(o, "lease", h->lease_ok);
		cJSON_AddBoolToObject(o, "lease_read", h->lease_read);
		cJSON_AddStringToObject(o, "state", h->maintenance ? "maintenance" :
		    h->draining ? "draining" : "active");
		cJSON_AddStringToObject(o, "drain_blocked", h->drain_blocked);
		cJSON_AddNumberToObject(o, "vms", h->nvms);
		cJSON_AddNumberToObject(o, "mem_used", (double)h->mem_used);
		cJSON_AddNumberToObject(o, "mem_capacity", (double)h->conf->memory);
		cJSON_AddNumberToObject(o, "vcpus_used", h->vcpus_used);
		cJSON_AddNumberToObject(o, "vcpus", (double)h->conf->vcpus);
		cJSON_AddNumberToObject(o, "traffic_bps", h->bps);
		cJSON_AddNumberToObject(o, "nic_bps", (double)h->conf->nic);
		cJSON_AddNumberToObject(o, "load", h->bps / (double)h->conf->nic);
		cJSON_AddNumberToObject(o, "cpu_pct", h->cpu_pct);
		cJSON_AddNumberToObject(o, "migrations", h->migrations);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *
ctl_api_vms(struct fleetd *env)
{
	struct ctl_model *m = &env->model;
	cJSON *arr = cJSON_CreateArray();
	int64_t now = clock_wall_ms();

	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *vm = m->vms[i];
		cJSON *o = cJSON_CreateObject(), *ips = cJSON_CreateArray();

		cJSON_AddStringToObject(o, "name", vm->name);
		cJSON_AddStringToObject(o, "host", vm->host >= 0 ? m->hosts[vm->host].conf->name : "");
		cJSON_AddStringToObject(o, "state", ctl_vm_state_name(vm->state));
		ctl_standby_json(env, vm, o);
		for (int k = 0; k < vm->meta.nips; k++)
			cJSON_AddItemToArray(ips, cJSON_CreateString(vm->meta.ips[k]));
		cJSON_AddItemToObject(o, "ips", ips);
		cJSON_AddStringToObject(o, "mac", vm->mac);
		cJSON_AddNumberToObject(o, "memory", (double)vm->mem_bytes);
		cJSON_AddNumberToObject(o, "vcpus", vm->vcpus);
		cJSON_AddBoolToObject(o, "stale", vm->stale);
		cJSON_AddNumberToObject(o, "telemetry_age_ms", vm->tel_ms ? (double)(now - vm->tel_ms) : -1);
		cJSON_AddNumberToObject(o, "bps_up", vm->up.per_s);
		cJSON_AddNumberToObject(o, "bps_down", vm->down.per_s);
		cJSON_AddNumberToObject(o, "requests_per_s", vm->reqs.per_s);
		cJSON_AddNumberToObject(o, "conns_per_s", vm->conns.per_s);
		cJSON_AddNumberToObject(o, "conns_active", (double)vm->conns_active);
		cJSON_AddNumberToObject(o, "migration", vm->migration);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static void
ctl_api_metrics(struct ctl_api *api, struct evhttp_request *req)
{
	struct fleetd *env = api->env;
	struct ctl_model *m = &env->model;
	struct ctl_stats *st = &env->stats;
	static const char *const le[] = { "0.05", "0.1", "0.2", "0.3", "0.5", "1", "2", "+Inf" };
	struct evbuffer *b = evbuffer_new();
	int64_t now = clock_wall_ms();
	uint64_t cum = 0;
	int up = 0;

	ctl_model_tally(m);
	evbuffer_add_printf(b,
	    "# HELP fleetd_migrations_total Migrations by outcome.\n"
	    "# TYPE fleetd_migrations_total counter\n"
	    "fleetd_migrations_total{outcome=\"done\"} %llu\n"
	    "fleetd_migrations_total{outcome=\"failed\"} %llu\n"
	    "fleetd_migrations_total{outcome=\"cancelled\"} %llu\n"
	    "fleetd_migrations_total{outcome=\"refused\"} %llu\n"
	    "# HELP fleetd_migrations_in_flight Migrations running now.\n"
	    "# TYPE fleetd_migrations_in_flight gauge\n"
	    "fleetd_migrations_in_flight %d\n",
	    (unsigned long long)st->mig_ok, (unsigned long long)st->mig_failed,
	    (unsigned long long)st->mig_cancelled, (unsigned long long)st->mig_refused,
	    env->mig_in_flight);
	evbuffer_add_printf(b, "# HELP fleetd_migration_downtime_seconds Guest downtime per "
	    "completed migration, as libvirt reports it.\n"
	    "# TYPE fleetd_migration_downtime_seconds histogram\n");
	for (size_t i = 0; i < PF_ARRAY_LEN(le); i++) {
		cum += st->downtime_le[i];
		evbuffer_add_printf(b, "fleetd_migration_downtime_seconds_bucket{le=\"%s\"} %llu\n",
		    le[i], (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "fleetd_migration_downtime_seconds_sum %.3f\n"
	    "fleetd_migration_downtime_seconds_count %llu\n", st->downtime_sum_s,
	    (unsigned long long)st->downtime_count);
	for (int i = 0; i < m->nhosts; i++)
		up += m->hosts[i].connected && m->hosts[i].lease_ok;
	evbuffer_add_printf(b, "# HELP fleetd_hosts_up Hosts with libvirt and an agent lease.\n"
	    "# TYPE fleetd_hosts_up gauge\nfleetd_hosts_up %d\n"
	    "# HELP fleetd_hosts Hosts configured.\n# TYPE fleetd_hosts gauge\nfleetd_hosts %d\n",
	    up, m->nhosts);
	evbuffer_add_printf(b, "# HELP fleetd_host_vms VMs per host.\n# TYPE fleetd_host_vms gauge\n");
	for (int i = 0; i < m->nhosts; i++)
		evbuffer_add_printf(b, "fleetd_host_vms{host=\"%s\",region=\"%s\"} %d\n",
		    m->hosts[i].conf->name, m->hosts[i].conf->region, m->hosts[i].nvms);
	evbuffer_add_printf(b, "# HELP fleetd_host_traffic_bytes_per_second Proxy traffic per host.\n"
	    "# TYPE fleetd_host_traffic_bytes_per_second gauge\n");
	for (int i = 0; i < m->nhosts; i++)
		evbuffer_add_printf(b, "fleetd_host_traffic_bytes_per_second{host=\"%s\"} %.0f\n",
		    m->hosts[i].conf->name, m->hosts[i].bps);
	evbuffer_add_printf(b, "# HELP fleetd_vm_telemetry_age_seconds Age of each VM's last "
	    "telemetry sample.\n# TYPE fleetd_vm_telemetry_age_seconds gauge\n");
	for (int i = 0; i < m->nvms; i++)
		if (m->vms[i]->tel_ms)
			evbuffer_add_printf(b, "fleetd_vm_telemetry_age_seconds{vm=\"%s\"} %.3f\n",
			    m->vms[i]->name, (double)(now - m->vms[i]->tel_ms) / 1000.0);
	evbuffer_add_printf(b, "# HELP fleetd_redis_up Whether fleetd's Redis link is up.\n"
	    "# TYPE fleetd_redis_up gauge\nfleetd_redis_up %d\n"
	    "# HELP fleetd_orders_total Handover orders sent and acks by status.\n"
	    "# TYPE fleetd_orders_total counter\n"
	    "fleetd_orders_total{what=\"sent\"} %llu\n"
	    "fleetd_orders_total{what=\"ack_ok\"} %llu\n"
	    "fleetd_orders_total{what=\"ack_error\"} %llu\n",
	    rlink_is_up(env->redis), (unsigned long long)st->orders_sent,
	    (unsigned long long)st->acks_ok, (unsigned long long)st->acks_err);
	evbuffer_add_printf(b, "# HELP fleetd_heartbeats_total Agent heartbeats granted and refused.\n"
	    "# TYPE fleetd_heartbeats_total counter\n"
	    "fleetd_heartbeats_total{what=\"granted\"} %llu\n"
	    "fleetd_heartbeats_total{what=\"refused\"} %llu\n",
	    (unsigned long long)st->hb_grants, (unsigned long long)st->hb_refused);
	evbuffer_add_printf(b, "# HELP fleetd_failovers_total Standby promotions by kind.\n"
	    "# TYPE fleetd_failovers_total counter\n"
	    "fleetd_failovers_total{kind=\"failover\"} %llu\n"
	    "fleetd_failovers_total{kind=\"switchover\"} %llu\n"
	    "fleetd_failovers_total{kind=\"failed\"} %llu\n"
	    "# HELP fleetd_last_failover_seconds Last heartbeat to serving, last failover.\n"
	    "# TYPE fleetd_last_failover_seconds gauge\nfleetd_last_failover_seconds %.3f\n",
	    (unsigned long long)st->failovers, (unsigned long long)st->switchovers,
	    (unsigned long long)st->failovers_failed, (double)st->last_failover_ms / 1000.0);
	{
		int me = ctl_leader_is(env);

		evbuffer_add_printf(b, "# HELP fleetd_leader Whether this instance leads the fleet.\n"
		    "# TYPE fleetd_leader gauge\nfleetd_leader %d\n"
		    "# HELP fleetd_epoch The leader's fencing token as this instance knows it "
		    "(0: unknown).\n# TYPE fleetd_epoch gauge\nfleetd_epoch %llu\n", me,
		    (unsigned long long)(me ? env->lead.epoch : ctl_leader_url(env) ?
		    env->lead.seen_epoch : 0));
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* ----- request handling ------------------------------------------------- */

static int
ctl_api_authorized(struct ctl_api *api, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	const char *tok = api->env->conf->api_token;
	size_t n = strlen(tok);

	if (!h || strncmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	return strlen(h) == n && CRYPTO_memcmp(h, tok, n) == 0;
}

/* Decode the request body into r with dec, one of ctl_req.c's decoders: 0,
 * or -1 with the error sent (and nothing in r to free). */
static int
ctl_api_decode(struct evhttp_request *req, int (*dec)(const char *, size_t, struct ctl_req *,
    char *, size_t), struct ctl_req *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	char why[256];
	int code;

	if (!body) {
		memset(r, 0, sizeof(*r));
		ctl_api_error(req, 500, "out of memory");
		return -1;
	}
	if ((code = dec(body, len, r, why, sizeof(why))) != 0) {
		ctl_api_error(req, code, "%s", why);
		return -1;
	}
	return 0;
}

static void
ctl_api_migrate(struct ctl_api *api, struct evhttp_request *req)
{
	struct ctl_req r;
	cJSON *out;
	char why[256];
	unsigned id;

	if (ctl_api_decode(req, ctl_req_migrate, &r) < 0)
		return;
	if (ctl_mig_start(api->env, r.vm, r.to, r.reason ? r.reason : "operator", 0, &id, why,
	    sizeof(why)) < 0) {
		int code = strncmp(why, "no VM", 5) == 0 || strncmp(why, "no host", 7) == 0 ? 404 :
		    strcmp(why, "out of memory") == 0 ? 500 : strncmp(why, "fleetd is ", 10) == 0 ||
		    strncmp(why, "this fleetd is not", 18) == 0 ? 503 : 409;

		ctl_api_error(req, code, "%s", why);
	} else {
		out = cJSON_CreateObject();
		cJSON_AddNumberToObject(out, "id", id);
		ctl_api_json(req, 201, out);
	}
	ctl_req_clear(&r);
}

/* POST /v1/vms/NAME/protect {"mode": "hot|warm|none", "region": R}, and
 * POST /v1/vms/NAME/switchover. */
static void
ctl_api_vm_action(struct ctl_api *api, struct evhttp_request *req, const char *name,
    const char *action)
{
	struct ctl_req r = { 0 };
	cJSON *o;
	char why[256];
	int rc;

	if (strcmp(action, "switchover") == 0) {
		rc = ctl_switchover(api->env, name, why, sizeof(why));
	} else {
		if (ctl_api_decode(req, ctl_req_protect, &r) < 0)
			return;
		rc = ctl_protect(api->env, name, r.mode, r.region, why, sizeof(why));
	}
	ctl_req_clear(&r);
	if (rc < 0) {
		ctl_api_error(req, strncmp(why, "no VM", 5) == 0 ? 404 :
		    strncmp(why, "no region", 9) == 0 ? 400 : 409, "%s", why);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "vm", name);
	cJSON_AddStringToObject(o, "action", action);
	ctl_api_json(req, 202, o);
}

/* PUT /v1/regions/NAME/target {"target": "3" | "40%" | null} */
static void
ctl_api_region_target(struct ctl_api *api, struct evhttp_request *req, const char *region)
{
	struct ctl_req r;
	cJSON *out;
	char was[16], why[256];
	const char *val;
	int code;

	if (ctl_api_decode(req, ctl_req_target, &r) < 0)
		return;
	val = r.target;
	code = ctl_region_target(api->env, region, val, was, sizeof(was), why, sizeof(why));
	if (code) {
		ctl_api_error(req, code, "%s", why);
	} else {
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "region", region);
		if (val)
			cJSON_AddStringToObject(out, "target", val);
		else
			cJSON_AddNullToObject(out, "target");
		if (was[0])
			cJSON_AddStringToObject(out, "was", was);
		else
			cJSON_AddNullToObject(out, "was");
		ctl_api_json(req, 200, out);
	}
	ctl_req_clear(&r);
}

/*
 * What only the leader can answer: every change, and the state that lives
 * in the leader alone (its migrations, its plan, its journal). Hosts, VMs,
 * metrics and /v1/leader come from any instance's own model.
 */
static int
ctl_api_leader_only(enum evhttp_cmd_type method, const char *path)
{
	return method != EVHTTP_REQ_GET || strncmp(path, "/v1/migrations", 14) == 0 ||
	    strcmp(path, "/v1/events") == 0 || strcmp(path, "/v1/plan") == 0 ||
	    strcmp(path, "/v1/failovers") == 0;
}

/* A follower's answer to what only the leader can do: 307 to the leader,
 * or 503 naming who we know when the leader is unknown. 1 when answered. */
static int
ctl_api_follower(struct ctl_api *api, struct evhttp_request *req, enum evhttp_cmd_type method,
    const char *path)
{
	struct fleetd *env = api->env;
	const char *url = ctl_leader_url(env), *uri = evhttp_request_get_uri(req);
	char loc[1024];
	size_t n;
	cJSON *j;

	if (ctl_leader_is(env) || !ctl_api_leader_only(method, path))
		return 0;
	if (!url) {
		if (method == EVHTTP_REQ_GET)
			return 0;	/* reads: what we have beats nothing */
		log_info("api refused path=%s reason=\"not the leader, leader unknown\"", path);
		ctl_api_error(req, 503, "this fleetd (%s) is not the leader and no leader is known "
		    "now (pf:ctl:leader absent or unreadable); try again in a few seconds",
		    env->lead.instance);
		return 1;
	}
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	snprintf(loc, sizeof(loc), "%.*s%s", (int)n, url, uri ? uri : path);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "error", "not the leader: ask the leader");
	cJSON_AddStringToObject(j, "leader", env->lead.seen_id);
	cJSON_AddNumberToObject(j, "epoch", (double)env->lead.seen_epoch);
	cJSON_AddStringToObject(j, "location", loc);
	log_debug("api redirect method=%d path=%s to=%s", (int)method, path, loc);
	ctl_api_json(req, 307, j);
	return 1;
}

static void
ctl_api_route(struct evhttp_request *req, void *arg)
{
	struct ctl_api *api = arg;
	struct fleetd *env = api->env;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	int is_get = method == EVHTTP_REQ_GET, is_post = method == EVHTTP_REQ_POST;
	char name[CTL_NAME_MAX], why[256];
	const char *rest;
	int64_t t0 = clock_mono_us();

	if (!path) {
		ctl_api_error(req, 400, "bad request URI");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		ctl_api_send(req, 200, "OK", "text/plain", "ok\n", 3);
		return;
	}
	if (!ctl_api_authorized(api, req)) {
		log_info("api refused path=%s reason=\"missing or wrong bearer token\"", path);
		ctl_api_error(req, 401, "missing or wrong bearer token");
		return;
	}
	if (ctl_api_follower(api, req, method, path))
		return;
	if (strcmp(path, "/metrics") == 0 && is_get) {
		ctl_api_metrics(api, req);
	} else if (strcmp(path, "/v1/leader") == 0 && is_get) {
		ctl_api_json(req, 200, ctl_leader_json(env));
	} else if (strcmp(path, "/v1/hosts") == 0 && is_get) {
		ctl_api_json(req, 200, ctl_api_hosts(env));
	} else if (strcmp(path, "/v1/vms") == 0 && is_get) {
		ctl_api_json(req, 200, ctl_api_vms(env));
	} else if (strcmp(path, "/v1/migrations") == 0 && is_get) {
		ctl_api_json(req, 200, ctl_mig_json(env, 0));
	} else if (strcmp(path, "/v1/migrations") == 0 && is_post) {
		ctl_api_migrate(api, req);
	} else if (strcmp(path, "/v1/plan") == 0) {
		cJSON *plan;

		if (!is_get) {
			ctl_api_error(req, 405, "method not allowed on %s (GET only: the plan is a dry run)",
			    path);
		} else if (!(plan = ctl_policy_json(env))) {
			ctl_api_error(req, 500, "out of memory");
		} else {
			ctl_api_json(req, 200, plan);
		}
	} else if (strcmp(path, "/v1/regions") == 0 && is_get) {
		cJSON *r = ctl_region_json(env);

		if (r)
			ctl_api_json(req, 200, r);
		else
			ctl_api_error(req, 500, "out of memory");
	} else if (ctl_req_split(path, "/v1/regions/", name, sizeof(name), &rest) == 0 &&
	    strcmp(rest, "target") == 0) {
		if (method == EVHTTP_REQ_PUT)
			ctl_api_region_target(api, req, name);
		else
			ctl_api_error(req, 405, "method not allowed on %s (PUT only)", path);
	} else if (strcmp(path, "/v1/events") == 0 && is_get) {
		struct evkeyvalq q;
		const char *since, *limit;

		memset(&q, 0, sizeof(q));
		evhttp_parse_query_str(query ? query : "", &q);
		since = evhttp_find_header(&q, "since");
		limit = evhttp_find_header(&q, "limit");
		ctl_api_json(req, 200, ctl_journal_json(env, since ? strtoull(since, NULL, 10) : 0,
		    limit ? atoi(limit) : 100));
		evhttp_clear_headers(&q);
	} else if (ctl_req_split(path, "/v1/migrations/", name, sizeof(name), &rest) == 0 &&
	    !*rest) {
		char *end;
		unsigned long id = strtoul(name, &end, 10);
		cJSON *arr;

		if (*end || id == 0) {
			ctl_api_error(req, 400, "bad migration id '%s'", name);
		} else if (method == EVHTTP_REQ_DELETE) {
			if (ctl_mig_cancel(env, (unsigned)id, why, sizeof(why)) < 0)
				ctl_api_error(req, strncmp(why, "no migration", 12) ? 409 : 404, "%s", why);
			else
				ctl_api_json(req, 202, ctl_mig_json(env, (unsigned)id));
		} else if (is_get) {
			arr = ctl_mig_json(env, (unsigned)id);
			if (cJSON_GetArraySize(arr) == 0) {
				cJSON_Delete(arr);
				ctl_api_error(req, 404, "no migration %lu", id);
			} else {
				cJSON *one = cJSON_DetachItemFromArray(arr, 0);

				cJSON_Delete(arr);
				ctl_api_json(req, 200, one);
			}
		} else {
			ctl_api_error(req, 405, "method not allowed on %s", path);
		}
	} else if (strcmp(path, "/v1/failovers") == 0 && is_get) {
		ctl_api_json(req, 200, ctl_failover_json(env));
	} else if (ctl_req_split(path, "/v1/vms/", name, sizeof(name), &rest) == 0 && is_post &&
	    (strcmp(rest, "protect") == 0 || strcmp(rest, "switchover") == 0)) {
		ctl_api_vm_action(api, req, name, rest);
	} else if (ctl_req_split(path, "/v1/hosts/", name, sizeof(name), &rest) == 0 && is_post &&
	    (strcmp(rest, "drain") == 0 || strcmp(rest, "undrain") == 0)) {
		int code = ctl_drain(env, name, strcmp(rest, "drain") == 0, why, sizeof(why));

		if (code) {
			ctl_api_error(req, code, "%s", why);
		} else {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddStringToObject(o, "host", name);
			cJSON_AddStringToObject(o, "state", rest);
			ctl_api_json(req, 202, o);
		}
	} else {
		ctl_api_error(req, 404, "no such endpoint: %s %s",
		    is_get ? "GET" : is_post ? "POST" : method == EVHTTP_REQ_PUT ? "PUT" : "method",
		    path);
		return;
	}
	if (!is_get)
		log_info("api method=%d path=%s took_us=%lld", (int)method, path,
		    (long long)(clock_mono_us() - t0));
}

static struct bufferevent *
ctl_api_bev_ssl(struct event_base *base, void *arg)
{
	struct ctl_api *api = arg;

	return bufferevent_openssl_socket_new(base, -1, SSL_new(api->ssl),
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

struct ctl_api *
ctl_api_start(struct fleetd *env, char *err, size_t errlen)
{
	struct ctl_api *api = calloc(1, sizeof(*api));
	char host[64];
	int port;

	if (!api) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	api->env = env;
	api->http = evhttp_new(env->base);
	if (!api->http) {
		snprintf(err, errlen, "cannot make the HTTP server");
		goto fail;
	}
	evhttp_set_max_body_size(api->http, CTL_API_MAX_BODY);
	evhttp_set_timeout(api->http, CTL_API_TIMEOUT_S);
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_PUT);
	evhttp_set_gencb(api->http, ctl_api_route, api);
	if (env->conf->tls_cert[0]) {
		api->ssl = SSL_CTX_new(TLS_server_method());
		if (!api->ssl ||
		    SSL_CTX_use_certificate_chain_file(api->ssl, env->conf->tls_cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(api->ssl, env->conf->tls_key, SSL_FILETYPE_PEM) != 1) {
			snprintf(err, errlen, "TLS: cannot load %s / %s: %s", env->conf->tls_cert,
			    env->conf->tls_key, ERR_reason_error_string(ERR_get_error()));
			goto fail;
		}
		SSL_CTX_set_min_proto_version(api->ssl, TLS1_2_VERSION);
		evhttp_set_bevcb(api->http, ctl_api_bev_ssl, api);
	}
	hostport_split(env->conf->api_listen, host, sizeof(host), &port);
	if (!evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port)) {
		snprintf(err, errlen, "cannot listen on %s", env->conf->api_listen);
		goto fail;
	}
	return api;
fail:
	ctl_api_free(api);
	return NULL;
}

void
ctl_api_free(struct ctl_api *api)
{
	if (!api)
		return;
	if (api->http)
		evhttp_free(api->http);
	if (api->ssl)
		SSL_CTX_free(api->ssl);
	free(api);
}
