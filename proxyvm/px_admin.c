/*
 * px_admin.c: the admin endpoint (libevent's evhttp), for operators and the
 * controller, never for customers: bind it to a management address.
 *
 *   GET  /metrics          Prometheus text (px_tel_prom)
 *   GET  /healthz          "ok" (200) or "draining" (503)
 *   POST /service/bind     add the [service] ips to [service] dev (promotion)
 *   POST /service/release  remove them (demotion, fencing)
 *
 * The two POSTs change what the VM answers for, so with [admin] token set
 * they need "Authorization: Bearer <token>" (401 otherwise); the GETs stay
 * open (read-only, for scrapers and probes). Without a token they are open
 * to whoever reaches the port, said once at start.
 *
 * Requests are tiny and answered at once; netlink to the local kernel does
 * not block in any way that matters (px_svc.c).
 */
#include "proxyvm/px.h"
#include "common/log.h"
#include "common/util.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_admin {
	struct px_env *env;
	struct evhttp *http;
};

static void
px_admin_reply(struct evhttp_request *req, int code, const char *reason, const char *body)
{
	struct evbuffer *out = evbuffer_new();

	if (!out) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(out, "%s\n", body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain");
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

static void
px_admin_metrics(struct evhttp_request *req, void *arg)
{
	struct px_admin *a = arg;
	struct evbuffer *out;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		px_admin_reply(req, 405, "Method Not Allowed", "use GET");
		return;
	}
	out = evbuffer_new();
	if (!out) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	px_tel_prom(a->env, out);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void
px_admin_health(struct evhttp_request *req, void *arg)
{
	struct px_admin *a = arg;

	if (a->env->draining)
		px_admin_reply(req, 503, "Service Unavailable", "draining");
	else
		px_admin_reply(req, 200, "OK", "ok");
}

/* No token configured, or the request carries it. */
static int
px_admin_authorized(struct evhttp_request *req, const char *token)
{
	const char *h;

	if (!token[0])
		return 1;
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	return h && strncmp(h, "Bearer ", 7) == 0 && str_secret_eq(h + 7, token);
}

static void
px_admin_service(struct evhttp_request *req, struct px_admin *a, int add)
{
	char err[512];
	int64_t t0 = clock_mono_us();

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		px_admin_reply(req, 405, "Method Not Allowed", "use POST");
		return;
	}
	if (!px_admin_authorized(req, a->env->conf->admin_token)) {
		log_warnx("service %s refused: no valid admin token", add ? "bind" : "release");
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		    "Bearer realm=\"proxyvmd\"");
		px_admin_reply(req, 401, "Unauthorized", "bearer token required");
		return;
	}
	if (px_svc_apply(a->env->conf, add, err, sizeof(err)) < 0) {
		log_warnx("service %s dev=%s error=\"%s\"", add ? "bind" : "release",
		    a->env->conf->service_dev, err);
		px_admin_reply(req, 500, "Internal Server Error", err);
		return;
	}
	a->env->service_bound = add;
	log_info("service %s dev=%s ips=%d took_us=%lld", add ? "bind" : "release",
	    a->env->conf->service_dev, a->env->conf->nservice_ips,
	    (long long)(clock_mono_us() - t0));
	px_admin_reply(req, 200, "OK", add ? "bound" : "released");
}

static void
px_admin_bind(struct evhttp_request *req, void *arg)
{
	px_admin_service(req, arg, 1);
}

static void
px_admin_release(struct evhttp_request *req, void *arg)
{
	px_admin_service(req, arg, 0);
}

static void
px_admin_other(struct evhttp_request *req, void *arg)
{
	(void)arg;
	px_admin_reply(req, 404, "Not Found", "try /metrics, /healthz, "
	    "POST /service/bind, POST /service/release");
}

struct px_admin *
px_admin_new(struct px_env *env, const struct px_addr *addr, char *err, size_t errlen)
{
	struct px_admin *a = calloc(1, sizeof(*a));
	char host[64];
	const char *p = addr->text, *colon = strrchr(p, ':');
	size_t hl;

	if (!a || !(a->http = evhttp_new(env->base))) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->env = env;
	if (*p == '[')
		p++;
	hl = (size_t)(colon - p);
	if (hl && p[hl - 1] == ']')
		hl--;
	if (hl >= sizeof(host))
		hl = sizeof(host) - 1;
	memcpy(host, p, hl);
	host[hl] = '\0';
	if (!host[0] || strcmp(host, "*") == 0)
		str_copy(host, "0.0.0.0", sizeof(host));
	evhttp_set_timeout(a->http, 10);
	evhttp_set_max_headers_size(a->http, 8192);
	evhttp_set_max_body_size(a->http, 4096);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_cb(a->http, "/metrics", px_admin_metrics, a);
	evhttp_set_cb(a->http, "/healthz", px_admin_health, a);
	evhttp_set_cb(a->http, "/service/bind", px_admin_bind, a);
	evhttp_set_cb(a->http, "/service/release", px_admin_release, a);
	evhttp_set_gencb(a->http, px_admin_other, a);
	if (evhttp_bind_socket(a->http, host, (ev_uint16_t)atoi(colon + 1)) < 0) {
		snprintf(err, errlen, "cannot listen on %s", addr->text);
		px_admin_free(a);
		return NULL;
	}
	if (!env->conf->admin_token[0])
		log_warnx("admin listen=%s token=none: POST /service/bind and /service/release "
		    "are open to whoever reaches it (set [admin] token)", addr->text);
	return a;
}

void
px_admin_free(struct px_admin *a)
{
	if (!a)
		return;
	if (a->http)
		evhttp_free(a->http);
	free(a);
}
