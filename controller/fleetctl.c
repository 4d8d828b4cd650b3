/*
 * fleetctl.c: the operator's command-line client for fleetd's API.
 *
 *   fleetctl status | hosts | vms | migrations | leader
 *   fleetctl migrate VM --to HOST [--reason TEXT] [--no-wait]
 *   fleetctl cancel ID
 *   fleetctl drain HOST [--wait] | undrain HOST
 *   fleetctl events [--follow] [--since SEQ]
 *   fleetctl plan
 *   fleetctl regions | region-target REGION VALUE|none
 *
 * Global options: --api URL (or $FLEETCTL_API, default http://127.0.0.1:8480),
 * --token TOKEN (or $FLEETCTL_TOKEN), --token-file FILE, --json (raw JSON
 * out), --insecure (HTTPS without certificate checks, lab only).
 * Exit status 0 on success, 1 with a one-line reason on failure, 2 on
 * usage errors. A CLI may block, so this uses plain libcurl calls.
 *
 * A fleetd that is not the leader answers what only the leader can do with
 * 307 and the leader's URL; fleetctl follows (same method, body and token:
 * the leader's URL comes from the fleet's own Redis) and keeps talking to
 * the leader for the rest of the command.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FC_MAX_REDIRECTS 2

struct fc {
	const char *api;
	char api_buf[512];	/* the leader's base URL after a redirect */
	char token[256];
	int json, insecure;
	CURL *curl;
};

struct fc_buf {
	char *p;
	size_t n;
};

static _Noreturn void
fc_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fleetctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static size_t
fc_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fc_buf *b = arg;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->n + n + 1);

	if (!p)
		return 0;
	memcpy(p + b->n, data, n);
	b->p = p;
	b->n += n;
	p[b->n] = '\0';
	return n;
}

/*
 * One request. Returns the parsed JSON (caller frees) and the status in
 * *code; dies with a one-line reason when fleetd cannot be reached or the
 * answer is not JSON. Error statuses are returned for the caller to word.
 */
static cJSON *
fc_call(struct fc *c, const char *method, const char *path, const char *body, long *code)
{
	char url[1024], auth[300];
	struct curl_slist *hdr = NULL;
	struct fc_buf b = { 0 };
	CURLcode rc;
	cJSON *j;
	int hops = 0;

again:
	hdr = NULL;
	memset(&b, 0, sizeof(b));
	snprintf(url, sizeof(url), "%s%s", c->api, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
	hdr = curl_slist_append(hdr, auth);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, fc_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 15000L);
	if (body)
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	if (c->insecure) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	rc = curl_easy_perform(c->curl);
	curl_slist_free_all(hdr);
	if (rc != CURLE_OK) {
		free(b.p);
		fc_die("cannot reach fleetd at %s: %s", c->api, curl_easy_strerror(rc));
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, code);
	if ((*code == 307 || *code == 308) && hops < FC_MAX_REDIRECTS) {
		char *loc = NULL;
		size_t ll, pl = strlen(path);

		curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &loc);
		/* The leader's base is the Location without our path. */
		if (loc && (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0) &&
		    (ll = strlen(loc)) > pl && strcmp(loc + ll - pl, path) == 0 &&
		    ll - pl < sizeof(c->api_buf)) {
			memcpy(c->api_buf, loc, ll - pl);
			c->api_buf[ll - pl] = '\0';
			c->api = c->api_buf;
			free(b.p);
			hops++;
			goto again;
		}
	}
	j = b.p ? cJSON_Parse(b.p) : NULL;
	if (!j)
		fc_die("fleetd answered %ld with no JSON: %.200s", *code, b.p ? b.p : "");
	free(b.p);
	return j;
}

/* Dies with fleetd's error message unless the status is 2xx. */
static cJSON *
fc_ok(struct fc *c, const char *method, const char *path, const char *body)
{
	long code = 0;
	cJSON *j = fc_call(c, method, path, body, &code);

	if (code < 200 || code > 299) {
		cJSON *e = cJSON_GetObjectItem(j, "error");
		char msg[512];

		/* Freed before exit: LeakSanitizer checks the failure paths too. */
		snprintf(msg, sizeof(msg), "%s", cJSON_IsString(e) ? e->valuestring : "request failed");
		cJSON_Delete(j);
		fc_die("%s (HTTP %ld)", msg, code);
	}
	return j;
}

static void
fc_print_json(cJSON *j)
{
	char *s = cJSON_Print(j);

	puts(s);
	free(s);
}

static const char *
fc_s(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double
fc_n(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *
fc_rate(double bps, char *buf, size_t len)
{
	if (bps >= 1 << 20)
		snprintf(buf, len, "%.1f MiB/s", bps / (1 << 20));
	else if (bps >= 1 << 10)
		snprintf(buf, len, "%.1f KiB/s", bps / (1 << 10));
	else
		snprintf(buf, len, "%.0f B/s", bps);
	return buf;
}

/* ----- commands --------------------------------------------------------- */

/* "leader fleetd-a (epoch 3, http://...); this instance fleetd-b: follower" */
static void
fc_leader_line(cJSON *l)
{
	const char *who = fc_s(l, "leader");

	if (*who)
		printf("leader %s (epoch %.0f, %s); this instance %s: %s%s\n", who,
		    fc_n(l, "epoch"), fc_s(l, "leader_url"), fc_s(l, "instance"), fc_s(l, "role"),
		    cJSON_IsTrue(cJSON_GetObjectItem(l, "reconciling")) ? ", reconciling" : "");
	else
		printf("leader unknown (no live lease); this instance %s: %s\n", fc_s(l, "instance"),
		    fc_s(l, "role"));
}

static int
fc_status(struct fc *c, int hosts, int vms)
{
	cJSON *l = hosts && vms ? fc_ok(c, "GET", "/v1/leader", NULL) : NULL;
	cJSON *h = hosts ? fc_ok(c, "GET", "/v1/hosts", NULL) : NULL;
	cJSON *v = vms ? fc_ok(c, "GET", "/v1/vms", NULL) : NULL;
	cJSON *it;
	char r[32];

	if (c->json) {
		cJSON *o = cJSON_CreateObject();

		if (l)
			cJSON_AddItemToObject(o, "leader", l);
		if (h)
			cJSON_AddItemToObject(o, "hosts", h);
		if (v)
			cJSON_AddItemToObject(o, "vms", v);
		fc_print_json(o);
		cJSON_Delete(o);
		return 0;
	}
	if (l) {
		fc_leader_line(l);
		putchar('\n');
		cJSON_Delete(l);
	}
	if (h) {
		printf("%-12s %-8s %-10s %-12s %4s %8s %6s %12s %6s\n", "HOST", "REGION", "HEALTH",
		    "STATE", "VMS", "MEM%", "LOAD%", "TRAFFIC", "CPU%");
		cJSON_ArrayForEach(it, h) {
			double cap = fc_n(it, "mem_capacity");

			printf("%-12s %-8s %-10s %-12s %4.0f %7.0f%% %5.1f%% %12s %5.1f%%\n",
			    fc_s(it, "name"), fc_s(it, "region"), fc_s(it, "health"), fc_s(it, "state"),
			    fc_n(it, "vms"), cap ? 100 * fc_n(it, "mem_used") / cap : 0,
			    100 * fc_n(it, "load"), fc_rate(fc_n(it, "traffic_bps"), r, sizeof(r)),
			    fc_n(it, "cpu_pct"));
		}
	}
	if (h && v)
		putchar('\n');
	if (v) {
		printf("%-16s %-10s %-9s %-8s %-16s %-20s %12s %8s %-16s %s\n", "VM", "HOST", "STATE",
		    "ROLE", "PEER", "IPS", "TRAFFIC", "REQ/S", "TELEMETRY", "CONFIG");
		cJSON_ArrayForEach(it, v) {
			cJSON *ips = cJSON_GetObjectItem(it, "ips"), *ip;
			char ipl[128] = "", age[32], cfg[64], role[24];
			size_t n = 0;
			double a = fc_n(it, "telemetry_age_ms");
			cJSON *step = cJSON_GetObjectItem(it, "cfg_in_step");

			cJSON_ArrayForEach(ip, ips) {
				if (n >= sizeof(ipl))
					break;
				n += (size_t)snprintf(ipl + n, sizeof(ipl) - n, "%s%s", n ? "," : "",
				    ip->valuestring);
			}
			if (a < 0)
				snprintf(age, sizeof(age), "none");
			else
				snprintf(age, sizeof(age), "%s %.1fs ago",
				    cJSON_IsTrue(cJSON_GetObjectItem(it, "stale")) ? "STALE" : "ok", a / 1000);
			/* Replication: the credentials revision in force, and its lag. */
			if (!step)
				snprintf(cfg, sizeof(cfg), "rev %.0f", fc_n(it, "cfg_rev"));
			else
				snprintf(cfg, sizeof(cfg), "rev %.0f %s %.0f ms", fc_n(it, "cfg_rev"),
				    cJSON_IsTrue(step) ? "lag" : "BEHIND", fc_n(it, "cfg_lag_ms"));
			snprintf(role, sizeof(role), "%s%s", fc_s(it, "role"),
			    strcmp(fc_s(it, "protect"), "none") && fc_s(it, "protect")[0] ?
			    (!strcmp(fc_s(it, "protect"), "hot") ? "+h" : "+w") : "");
			printf("%-16s %-10s %-9s %-8s %-16s %-20s %12s %8.1f %-16s %s\n",
			    fc_s(it, "name"), fc_s(it, "host"), fc_s(it, "state"), role,
			    fc_s(it, "peer")[0] ? fc_s(it, "peer") : "-", ipl,
			    fc_rate(fc_n(it, "bps_up") + fc_n(it, "bps_down"), r, sizeof(r)),
			    fc_n(it, "requests_per_s"), age, cfg);
		}
	}
	cJSON_Delete(h);
	cJSON_Delete(v);
	return 0;
}

static void
fc_progress(cJSON *m, int tty)
{
	double pct = fc_n(m, "percent"), eta = fc_n(m, "eta_ms");
	char bar[31], r[32];
	int fill = (int)(pct * 30 / 100);

	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	printf("%s[%s] %5.1f%%  %10s  remaining %6.1f MiB  eta %5.1fs  %-9s%s",
	    tty ? "\r" : "", bar, pct, fc_rate(fc_n(m, "rate_bps"), r, sizeof(r)),
	    fc_n(m, "bytes_remaining") / (1 << 20), eta < 0 ? 0 : eta / 1000, fc_s(m, "phase"),
	    tty ? "" : "\n");
	fflush(stdout);
}

static int
fc_migrate(struct fc *c, const char *vm, const char *to, const char *reason, int wait)
{
	cJSON *body = cJSON_CreateObject(), *r, *m = NULL;
	char *s, path[64];
	int id, tty = isatty(STDOUT_FILENO) && !c->json;
	const char *phase = "";
	char last_phase[16] = "";

	cJSON_AddStringToObject(body, "vm", vm);
	cJSON_AddStringToObject(body, "to", to);
	if (reason)
		cJSON_AddStringToObject(body, "reason", reason);
	s = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	r = fc_ok(c, "POST", "/v1/migrations", s);
	free(s);
	id = (int)fc_n(r, "id");
	cJSON_Delete(r);
	if (!wait) {
		if (c->json)
			printf("{\"id\": %d}\n", id);
		else
			printf("migration %d started: %s -> %s\n", id, vm, to);
		return 0;
	}
	snprintf(path, sizeof(path), "/v1/migrations/%d", id);
	if (!c->json)
		printf("migration %d: %s -> %s\n", id, vm, to);
	for (;;) {
		cJSON_Delete(m);
		m = fc_ok(c, "GET", path, NULL);
		phase = fc_s(m, "phase");
		if (!c->json && (tty || strcmp(phase, last_phase) != 0))
			fc_progress(m, tty);
		snprintf(last_phase, sizeof(last_phase), "%s", phase);
		if (!strcmp(phase, "done") || !strcmp(phase, "failed") || !strcmp(phase, "cancelled"))
			break;
		usleep(250000);
	}
	if (tty)
		putchar('\n');
	if (c->json) {
		fc_print_json(m);
	} else if (!strcmp(phase, "done")) {
		printf("done: %s now on %s  total %.0f ms  downtime %.0f ms  handover %.0f ms  "
		    "%.1f MiB copied\n", vm, to, fc_n(m, "elapsed_ms"), fc_n(m, "downtime_ms"),
		    fc_n(m, "handover_ms"), fc_n(m, "bytes_processed") / (1 << 20));
	}
	if (strcmp(phase, "done") != 0 || fc_s(m, "error")[0]) {
		char why[300];

		/* phase and the error live in m: copy them before freeing it. */
		snprintf(why, sizeof(why), "%s", fc_s(m, "error"));
		snprintf(last_phase, sizeof(last_phase), "%s", phase);
		cJSON_Delete(m);
		fc_die("migration %d %s: %s", id, last_phase, why[0] ? why : "no reason given");
	}
	cJSON_Delete(m);
	return 0;
}

static int
fc_drain(struct fc *c, const char *host, int on, int wait)
{
	char path[128];
	cJSON *r;

	snprintf(path, sizeof(path), "/v1/hosts/%s/%s", host, on ? "drain" : "undrain");
	r = fc_ok(c, "POST", path, NULL);
	if (c->json && !wait)
		fc_print_json(r);
	else if (!c->json)
		printf("%s: %s\n", host, on ? "draining" : "active again");
	cJSON_Delete(r);
	while (on && wait) {
		cJSON *hosts = fc_ok(c, "GET", "/v1/hosts", NULL), *it;
		const char *state = "";
		double vms = 0;

		cJSON_ArrayForEach(it, hosts)
			if (!strcmp(fc_s(it, "name"), host)) {
				state = fc_s(it, "state");
				vms = fc_n(it, "vms");
				if (!strcmp(state, "maintenance")) {
					if (c->json)
						fc_print_json(it);
					else
						printf("%s: drained, in maintenance\n", host);
					cJSON_Delete(hosts);
					return 0;
				}
			}
		if (!strcmp(state, "active")) {
			cJSON_Delete(hosts);
			fc_die("%s: drain stopped (host undrained)", host);
		}
		if (!c->json) {
			const char *blocked = "";

			cJSON_ArrayForEach(it, hosts)
				if (!strcmp(fc_s(it, "name"), host))
					blocked = fc_s(it, "drain_blocked");
			printf("%s: %s, %.0f VM(s) left%s%s\n", host, state, vms,
			    blocked[0] ? "; blocked: " : "", blocked);
		}
		cJSON_Delete(hosts);
		sleep(1);
	}
	return 0;
}

static int
fc_events(struct fc *c, int follow, long long since)
{
	char path[96];

	do {
		cJSON *ev, *it;

		snprintf(path, sizeof(path), "/v1/events?since=%lld&limit=1000", since);
		ev = fc_ok(c, "GET", path, NULL);
		cJSON_ArrayForEach(it, ev) {
			time_t t = (time_t)(fc_n(it, "ts_ms") / 1000);
			struct tm tm;
			char ts[32];

			since = (long long)fc_n(it, "seq");
			if (c->json) {
				char *s = cJSON_PrintUnformatted(it);

				puts(s);
				free(s);
				continue;
			}
			localtime_r(&t, &tm);
			strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
			printf("%s.%03d %-9s %s\n", ts, (int)fmod(fc_n(it, "ts_ms"), 1000),
			    fc_s(it, "type"), fc_s(it, "text"));
		}
		fflush(stdout);
		cJSON_Delete(ev);
		if (follow)
			usleep(500000);
	} while (follow);
	return 0;
}

/* One planned move: a geo move's reason says so. */
static int
fc_plan_row(cJSON *it)
{
	int ready = cJSON_IsTrue(cJSON_GetObjectItem(it, "now"));
	int geo = !strcmp(fc_s(it, "kind"), "geo");

	printf("%-16s %-10s %-10s %s%s%s%s%s\n", fc_s(it, "vm"), fc_s(it, "from"), fc_s(it, "to"),
	    geo ? "geo: " : "", fc_s(it, "reason"), ready ? "" : " [waits: ",
	    ready ? "" : fc_s(it, "wait"), ready ? "" : "]");
	return ready;
}

/* The plan (dry run): one row per move, then a summary line per policy. */
static int
fc_plan(struct fc *c)
{
	cJSON *p = fc_ok(c, "GET", "/v1/plan", NULL), *it;
	int n = 0, now = 0, gn = 0, gnow = 0, gblocked = 0;

	if (c->json) {
		fc_print_json(p);
		cJSON_Delete(p);
		return 0;
	}
	printf("%-16s %-10s %-10s %s\n", "VM", "FROM", "TO", "REASON");
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(p, "moves")) {
		int ready = fc_plan_row(it);

		if (!strcmp(fc_s(it, "kind"), "geo")) {
			gn++;
			gnow += ready;
		} else {
			n++;
			now += ready;
		}
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(p, "hosts"))
		if (fc_s(it, "blocked")[0])
			printf("%-16s %-10s %-10s stays at %.0f%%: %s\n", "-", fc_s(it, "name"), "-",
			    100 * fc_n(it, "load_after"), fc_s(it, "blocked"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(p, "geo_blocked")) {
		printf("%-16s %-10s %-10s geo: %s\n", "-", fc_s(it, "region"), "-",
		    fc_s(it, "blocked"));
		gblocked++;
	}
	printf("%d move(s), %d now (lower bound %.0f); %.0f host(s) above %.0f%%, %.0f after; "
	    "target %.0f%%; rebalance %s\n", n, now, fc_n(p, "lower_bound"), fc_n(p, "hot"),
	    100 * fc_n(p, "high_water"), fc_n(p, "still_hot"), 100 * fc_n(p, "target"),
	    cJSON_IsTrue(cJSON_GetObjectItem(p, "rebalance")) ? "on" : "off (dry run only)");
	if (gn || gblocked)
		printf("geo: %d move(s), %d now (at most %.0f at a time); geo %s\n", gn, gnow,
		    fc_n(p, "geo_max_moves"),
		    cJSON_IsTrue(cJSON_GetObjectItem(p, "geo")) ? "on" : "off (dry run only)");
	cJSON_Delete(p);
	return 0;
}

static int
fc_vm_action(struct fc *c, const char *vm, const char *action, const char *mode,
    const char *region)
{
	char path[160];
	cJSON *body = cJSON_CreateObject(), *r;
	char *bs;

	if (!strcmp(action, "protect")) {
		cJSON_AddStringToObject(body, "mode", mode);
		if (region)
			cJSON_AddStringToObject(body, "region", region);
	}
	bs = cJSON_PrintUnformatted(body);
	snprintf(path, sizeof(path), "/v1/vms/%s/%s", vm, action);
	r = fc_ok(c, "POST", path, bs);
	if (c->json)
		fc_print_json(r);
	else if (!strcmp(action, "protect"))
		printf("%s: protect %s%s%s\n", vm, mode, region ? ", standby in " : "",
		    region ? region : "");
	else
		printf("%s: switchover started (fleetctl failovers)\n", vm);
	free(bs);
	cJSON_Delete(body);
	cJSON_Delete(r);
	return 0;
}

/* Regions with their targets and what the geographic plan would do. */
static int
fc_regions(struct fc *c)
{
	cJSON *p = fc_ok(c, "GET", "/v1/regions", NULL), *it, *h;
	int n = 0, now = 0;

	if (c->json) {
		fc_print_json(p);
		cJSON_Delete(p);
		return 0;
	}
	printf("%-10s %-5s %4s %-12s %5s %-6s %s\n", "REGION", "HOSTS", "VMS", "TARGET", "AFTER",
	    "PLAN", "BLOCKED");
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(p, "regions")) {
		cJSON *t = cJSON_GetObjectItem(it, "target");
		double in = fc_n(it, "moves_in"), out = fc_n(it, "moves_out");
		char target[40], plan[16], line[512];
		int nh = 0;

		cJSON_ArrayForEach(h, cJSON_GetObjectItem(it, "hosts"))
			nh++;
		if (!cJSON_IsString(t))
			snprintf(target, sizeof(target), "-");
		else if (strchr(t->valuestring, '%'))
			snprintf(target, sizeof(target), "%s=%.0f", t->valuestring,
			    fc_n(it, "target_vms"));
		else
			snprintf(target, sizeof(target), "%s", t->valuestring);
		if (in || out)
			snprintf(plan, sizeof(plan), "%+.0f", in - out);
		else
			snprintf(plan, sizeof(plan), "-");
		snprintf(line, sizeof(line), "%-10s %5d %4.0f %-12s %5.0f %-6s %s", fc_s(it, "name"),
		    nh, fc_n(it, "vms"), target, fc_n(it, "vms_after"), plan, fc_s(it, "blocked"));
		for (size_t k = strlen(line); k > 0 && line[k - 1] == ' '; k--)
			line[k - 1] = '\0';
		puts(line);
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(p, "moves")) {
		int ready = cJSON_IsTrue(cJSON_GetObjectItem(it, "now"));

		if (!n++)
			printf("\n%-16s %-10s %-10s %s\n", "VM", "FROM", "TO", "REASON");
		fc_plan_row(it);
		now += ready;
	}
	printf("%s%d move(s), %d now (at most %.0f at a time, %.0f in flight); %.0f primary "
	    "VM(s); geo %s\n", n ? "" : "\n", n, now, fc_n(p, "geo_max_moves"),
	    fc_n(p, "in_flight"), fc_n(p, "fleet"),
	    cJSON_IsTrue(cJSON_GetObjectItem(p, "geo")) ? "on" : "off (dry run only)");
	cJSON_Delete(p);
	return 0;
}

static int
fc_region_target(struct fc *c, const char *region, const char *value)
{
	cJSON *body = cJSON_CreateObject(), *r;
	char *s, *esc, path[256];
	const char *was;

	if (!strcmp(value, "none"))
		cJSON_AddNullToObject(body, "target");
	else
		cJSON_AddStringToObject(body, "target", value);
	s = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	esc = curl_easy_escape(c->curl, region, 0);
	if (!s || !esc)
		fc_die("out of memory");
	snprintf(path, sizeof(path), "/v1/regions/%s/target", esc);
	curl_free(esc);
	r = fc_ok(c, "PUT", path, s);
	free(s);
	if (c->json) {
		fc_print_json(r);
	} else {
		was = fc_s(r, "was");
		printf("region %s: target %s (was %s)\n", region,
		    strcmp(value, "none") ? fc_s(r, "target") : "none", was[0] ? was : "none");
	}
	cJSON_Delete(r);
	return 0;
}

static int
fc_failovers(struct fc *c)
{
	cJSON *f = fc_ok(c, "GET", "/v1/failovers", NULL), *it;

	if (c->json) {
		fc_print_json(f);
	} else {
		printf("%-4s %-10s %-14s %-14s %-8s %-8s %-9s %12s %s\n", "ID", "KIND", "VM",
		    "STANDBY", "FROM", "TO", "PHASE", "SERVING_MS", "REASON / ERROR");
		cJSON_ArrayForEach(it, f) {
			cJSON *hb = cJSON_GetObjectItem(it, "heartbeat_to_serving_ms");
			cJSON *d = cJSON_GetObjectItem(it, "detect_to_serving_ms");
			char ms[24] = "-";

			if (cJSON_IsNumber(hb) || cJSON_IsNumber(d))
				snprintf(ms, sizeof(ms), "%.0f", cJSON_IsNumber(hb) ? hb->valuedouble :
				    d->valuedouble);
			printf("%-4.0f %-10s %-14s %-14s %-8s %-8s %-9s %12s %s\n", fc_n(it, "id"),
			    fc_s(it, "kind"), fc_s(it, "vm"), fc_s(it, "standby"), fc_s(it, "from"),
			    fc_s(it, "to"), fc_s(it, "phase"), ms,
			    fc_s(it, "error")[0] ? fc_s(it, "error") : fc_s(it, "reason"));
		}
	}
	cJSON_Delete(f);
	return 0;
}

static _Noreturn void
fc_usage(void)
{
	fprintf(stderr,
	    "usage: fleetctl [--api URL] [--token T | --token-file F] [--json] [--insecure] CMD\n"
	    "  status                     the leader, hosts and VMs as tables\n"
	    "  leader                     which instance leads, its epoch, this one's role\n"
	    "  hosts | vms | migrations   one table (or JSON)\n"
	    "  migrate VM --to HOST [--reason TEXT] [--no-wait]\n"
	    "  cancel ID                  abort a running migration\n"
	    "  drain HOST [--wait]        move every VM away, then maintenance\n"
	    "  undrain HOST\n"
	    "  events [--follow] [--since SEQ]\n"
	    "  plan                       what the policies would move now, and why\n"
	    "  regions                    regions, their targets and the geographic plan\n"
	    "  region-target REGION VALUE|none   a count (3) or a share (40%%), or none\n"
	    "  protect VM [--mode hot|warm|none] [--region R]   keep a standby of VM\n"
	    "  switchover VM              planned failover to VM's standby\n"
	    "  failovers                  promotions so far, with their timings\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "api", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "to", required_argument, NULL, 'o' },
		{ "reason", required_argument, NULL, 'r' },
		{ "no-wait", no_argument, NULL, 'N' },
		{ "wait", no_argument, NULL, 'w' },
		{ "follow", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "region", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fc c = { 0 };
	const char *to = NULL, *reason = NULL, *cmd, *env_tok = getenv("FLEETCTL_TOKEN");
	const char *mode = "hot", *region = NULL;
	int ch, nowait = 0, wait = 0, follow = 0, rc = 2;
	long long since = 0;
	FILE *f;

	c.api = getenv("FLEETCTL_API") ? getenv("FLEETCTL_API") : "http://127.0.0.1:8480";
	if (env_tok)
		snprintf(c.token, sizeof(c.token), "%s", env_tok);
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': c.api = optarg; break;
		case 't': snprintf(c.token, sizeof(c.token), "%s", optarg); break;
		case 'T':
			f = fopen(optarg, "r");
			if (!f || !fgets(c.token, sizeof(c.token), f))
				fc_die("cannot read token file %s", optarg);
			fclose(f);
			c.token[strcspn(c.token, "\r\n")] = '\0';
			break;
		case 'j': c.json = 1; break;
		case 'k': c.insecure = 1; break;
		case 'o': to = optarg; break;
		case 'r': reason = optarg; break;
		case 'N': nowait = 1; break;
		case 'w': wait = 1; break;
		case 'f': follow = 1; break;
		case 's': since = atoll(optarg); break;
		case 'm': mode = optarg; break;
		case 'R': region = optarg; break;
		default: fc_usage();
		}
	}
	if (optind >= argc)
		fc_usage();
	cmd = argv[optind++];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c.curl = curl_easy_init();
	if (!c.curl)
		fc_die("cannot initialise libcurl");
#define ARGS(n) if (argc - optind != (n)) fc_usage()
	if (!strcmp(cmd, "status")) {
		ARGS(0);
		rc = fc_status(&c, 1, 1);
	} else if (!strcmp(cmd, "leader")) {
		cJSON *l;

		ARGS(0);
		l = fc_ok(&c, "GET", "/v1/leader", NULL);
		if (c.json)
			fc_print_json(l);
		else
			fc_leader_line(l);
		cJSON_Delete(l);
		rc = 0;
	} else if (!strcmp(cmd, "hosts")) {
		ARGS(0);
		rc = fc_status(&c, 1, 0);
	} else if (!strcmp(cmd, "vms")) {
		ARGS(0);
		rc = fc_status(&c, 0, 1);
	} else if (!strcmp(cmd, "migrations")) {
		cJSON *m, *it;

		ARGS(0);
		m = fc_ok(&c, "GET", "/v1/migrations", NULL);
		if (c.json) {
			fc_print_json(m);
		} else {
			printf("%-5s %-16s %-10s %-10s %-10s %7s %9s %9s %s\n", "ID", "VM", "FROM", "TO",
			    "PHASE", "PCT", "TOTAL_MS", "DOWN_MS", "ERROR");
			cJSON_ArrayForEach(it, m)
				printf("%-5.0f %-16s %-10s %-10s %-10s %6.1f%% %9.0f %9.0f %s\n",
				    fc_n(it, "id"), fc_s(it, "vm"), fc_s(it, "from"), fc_s(it, "to"),
				    fc_s(it, "phase"), fc_n(it, "percent"), fc_n(it, "elapsed_ms"),
				    fc_n(it, "downtime_ms"), fc_s(it, "error"));
		}
		cJSON_Delete(m);
		rc = 0;
	} else if (!strcmp(cmd, "migrate")) {
		ARGS(1);
		if (!to)
			fc_usage();
		rc = fc_migrate(&c, argv[optind], to, reason, !nowait);
	} else if (!strcmp(cmd, "cancel")) {
		char path[64];
		cJSON *r;

		ARGS(1);
		snprintf(path, sizeof(path), "/v1/migrations/%s", argv[optind]);
		r = fc_ok(&c, "DELETE", path, NULL);
		if (c.json)
			fc_print_json(r);
		else
			printf("migration %s: cancel requested\n", argv[optind]);
		cJSON_Delete(r);
		rc = 0;
	} else if (!strcmp(cmd, "drain") || !strcmp(cmd, "undrain")) {
		ARGS(1);
		rc = fc_drain(&c, argv[optind], !strcmp(cmd, "drain"), wait);
	} else if (!strcmp(cmd, "events")) {
		ARGS(0);
		rc = fc_events(&c, follow, since);
	} else if (!strcmp(cmd, "plan")) {
		ARGS(0);
		rc = fc_plan(&c);
	} else if (!strcmp(cmd, "protect") || !strcmp(cmd, "switchover")) {
		ARGS(1);
		rc = fc_vm_action(&c, argv[optind], cmd, mode, region);
	} else if (!strcmp(cmd, "failovers")) {
		ARGS(0);
		rc = fc_failovers(&c);
	} else if (!strcmp(cmd, "regions")) {
		ARGS(0);
		rc = fc_regions(&c);
	} else if (!strcmp(cmd, "region-target")) {
		ARGS(2);
		rc = fc_region_target(&c, argv[optind], argv[optind + 1]);
	} else {
		fc_usage();
	}
	curl_easy_cleanup(c.curl);
	curl_global_cleanup();
	return rc;
}
