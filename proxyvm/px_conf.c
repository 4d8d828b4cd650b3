/*
 * px_conf.c: proxyvmd's configuration file (see docs/proxyvmd.md).
 *
 * A key table for common/conf.c; values that need more than a type check
 * (addresses, networks, protocols) are parsed by CONF_FUNC callbacks so the
 * error carries the file and line. Checks that need the whole file (every
 * listener has an address, users have hashes) run after loading and name
 * the section. Never logs: errors go back to the caller, which decides
 * whether it is a failed start (-n, exit 2) or a refused reload.
 */
#include "proxyvm/px.h"
#include "common/conf.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
px_addr_parse(const char *s, struct px_addr *a, char *err, size_t errlen)
{
	char host[64];
	const char *colon, *hs, *he;
	char *end;
	long port;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

	memset(a, 0, sizeof(*a));
	if (*s == '[') {
		hs = s + 1;
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			goto bad;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto bad;
		hs = s;
		he = colon;
	}
	if ((size_t)(he - hs) >= sizeof(host))
		goto bad;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
		goto bad;
	if (host[0] == '\0' || strcmp(host, "*") == 0) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
		a->len = sizeof(*sin);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		a->len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*sin6);
	} else {
		goto bad;
	}
	str_copy(a->text, s, sizeof(a->text));
	return 0;
bad:
	snprintf(err, errlen, "bad address '%s' (write IP:PORT, [IPv6]:PORT or *:PORT)", s);
	return -1;
}

static int
px_conf_addr(void *field, const char *value, char *err, size_t errlen)
{
	return px_addr_parse(value, field, err, errlen);
}

static int
px_conf_proto(void *field, const char *value, char *err, size_t errlen)
{
	if (strcasecmp(value, "http") == 0)
		*(int *)field = PX_PROTO_HTTP;
	else if (strcasecmp(value, "socks5") == 0 || strcasecmp(value, "socks") == 0)
		*(int *)field = PX_PROTO_SOCKS5;
	else
		return snprintf(err, errlen, "bad proto '%s' (http or socks5)", value), -1;
	return 0;
}

static int
px_conf_auth(void *field, const char *value, char *err, size_t errlen)
{
	int b;

	if (strcasecmp(value, "auto") == 0) {
		*(int *)field = PX_AUTH_AUTO;
		return 0;
	}
	if (conf_parse_bool(value, &b, err, errlen) < 0) {
		snprintf(err, errlen, "bad auth '%s' (yes, no or auto)", value);
		return -1;
	}
	*(int *)field = b ? PX_AUTH_ON : PX_AUTH_OFF;
	return 0;
}

/* egress = auto | none | IP: the field is the listener struct's egress_mode;
 * the address lands in the egress member next to it. */
static int
px_conf_egress(void *field, const char *value, char *err, size_t errlen)
{
	struct px_listener_conf *l = (struct px_listener_conf *)
	    ((char *)field - offsetof(struct px_listener_conf, egress_mode));
	char buf[80];

	if (strcasecmp(value, "auto") == 0) {
		l->egress_mode = PX_EGRESS_AUTO;
		return 0;
	}
	if (strcasecmp(value, "none") == 0) {
		l->egress_mode = PX_EGRESS_NONE;
		return 0;
	}
	if (strchr(value, ':') && value[0] != '[')
		snprintf(buf, sizeof(buf), "[%s]:0", value);
	else
		snprintf(buf, sizeof(buf), "%s:0", value);
	if (px_addr_parse(buf, &l->egress, err, errlen) < 0) {
		snprintf(err, errlen, "bad egress '%s' (auto, none or an IP address)", value);
		return -1;
	}
	l->egress_mode = PX_EGRESS_ADDR;
	return 0;
}

static int
px_conf_allow(void *field, const char *value, char *err, size_t errlen)
{
	return px_ssrf_add(field, 1, value, err, errlen);
}

static int
px_conf_deny(void *field, const char *value, char *err, size_t errlen)
{
	return px_ssrf_add(field, 0, value, err, errlen);
}

static int
px_conf_svc_ips(void *field, const char *value, char *err, size_t errlen)
{
	struct px_conf *c = (struct px_conf *)((char *)field - offsetof(struct px_conf, service_ips));
	char buf[1024], *tok, *save = NULL;

	if (str_copy(buf, value, sizeof(buf)) >= sizeof(buf))
		return snprintf(err, errlen, "service ips too long"), -1;
	c->nservice_ips = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (c->nservice_ips == PX_SERVICE_IPS_MAX)
			return snprintf(err, errlen, "more than %d service ips",
			    PX_SERVICE_IPS_MAX), -1;
		if (!strchr(tok, '/'))
			return snprintf(err, errlen, "service ip '%s' needs a prefix length "
			    "(e.g. 10.0.0.5/24)", tok), -1;
		if (px_cidr_parse(tok, &c->service_ips[c->nservice_ips], err, errlen) < 0)
			return -1;
		/* Keep the host bits: these are addresses, not networks. */
		struct px_cidr *ip = &c->service_ips[c->nservice_ips];
		char host[64];
		str_copy(host, tok, sizeof(host));
		*strchr(host, '/') = '\0';
		inet_pton(ip->family, host, ip->addr);
		c->nservice_ips++;
	}
	return 0;
}

static void *
px_conf_listener(void *cfg, const char *name, char *err, size_t errlen)
{
	struct px_conf *c = cfg;
	struct px_listener_conf *l;

	for (int i = 0; i < c->nlisteners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return snprintf(err, errlen, "listener '%s' defined twice", name), NULL;
	if (c->nlisteners == PX_LISTENERS_MAX)
		return snprintf(err, errlen, "more than %d listeners", PX_LISTENERS_MAX), NULL;
	if (strlen(name) >= sizeof(l->name))
		return snprintf(err, errlen, "listener name too long"), NULL;
	l = &c->listeners[c->nlisteners++];
	memset(l, 0, sizeof(*l));
	str_copy(l->name, name, sizeof(l->name));
	return l;
}

static void *
px_conf_user(void *cfg, const char *name, char *err, size_t errlen)
{
	struct px_conf *c = cfg;
	struct px_user_conf *u;

	if (strlen(name) >= sizeof(u->name) || strchr(name, ':'))
		return snprintf(err, errlen, "bad user name '%s'", name), NULL;
	for (int i = 0; i < c->nusers; i++)
		if (strcmp(c->users[i].name, name) == 0)
			return snprintf(err, errlen, "user '%s' defined twice", name), NULL;
	if (c->nusers == c->users_cap) {
		int cap = c->users_cap ? c->users_cap * 2 : 16;
		void *p = realloc(c->users, (size_t)cap * sizeof(*c->users));

		if (!p)
			return snprintf(err, errlen, "out of memory"), NULL;
		c->users = p;
		c->users_cap = cap;
	}
	u = &c->users[c->nusers++];
	memset(u, 0, sizeof(*u));
	str_copy(u->name, name, sizeof(u->name));
	u->max_conns = -1;
	return u;
}

#define C(f) offsetof(struct px_conf, f)
#define L(f) offsetof(struct px_listener_conf, f)
#define U(f) offsetof(struct px_user_conf, f)
#define DAY (24LL * 3600 * 1000)

static const struct conf_section px_sections[] = {
	{ "", 0, NULL },
	{ "limits", 0, NULL },
	{ "redis", 0, NULL },
	{ "admin", 0, NULL },
	{ "egress", 0, NULL },
	{ "dns", 0, NULL },
	{ "service", 0, NULL },
	{ "listener", 1, px_conf_listener },
	{ "user", 1, px_conf_user },
	{ NULL, 0, NULL },
};

static const struct conf_key px_keys[] = {
	{ "", "vm", CONF_STR, C(vm), 0, sizeof(((struct px_conf *)0)->vm), NULL },
	{ "", "log_level", CONF_FUNC, C(log_level), 0, 0, conf_parse_log_level },
	{ "limits", "max_conns", CONF_INT, C(max_conns), 1, 1000000, NULL },
	{ "limits", "user_max_conns", CONF_INT, C(user_max_conns), 0, 1000000, NULL },
	{ "limits", "header_max", CONF_BYTES, C(header_max), 512, 1 << 20, NULL },
	{ "limits", "header_count", CONF_INT, C(header_count), 8, 1000, NULL },
	{ "limits", "header_timeout", CONF_MS, C(header_timeout_ms), 100, DAY, NULL },
	{ "limits", "idle_timeout", CONF_MS, C(idle_timeout_ms), 100, DAY, NULL },
	{ "limits", "connect_timeout", CONF_MS, C(connect_timeout_ms), 100, DAY, NULL },
	{ "limits", "drain_timeout", CONF_MS, C(drain_timeout_ms), 0, DAY, NULL },
	{ "redis", "address", CONF_FUNC, C(redis), 0, 0, px_conf_addr },
	{ "redis", "password", CONF_STR, C(redis_password), 0, 128, NULL },
	{ "redis", "users", CONF_BOOL, C(redis_users), 0, 0, NULL },
	{ "redis", "sentinels", CONF_STR, C(redis_sentinels), 0, 256, NULL },
	{ "redis", "master", CONF_STR, C(redis_master), 0, 64, NULL },
	{ "redis", "sentinel_password", CONF_STR, C(redis_sentinel_password), 0, 128, NULL },
	{ "admin", "listen", CONF_FUNC, C(admin), 0, 0, px_conf_addr },
	{ "admin", "token", CONF_STR, C(admin_token), 0, 128, NULL },
	{ "egress", "allow", CONF_FUNC, C(ssrf), 0, 0, px_conf_allow },
	{ "egress", "deny", CONF_FUNC, C(ssrf), 0, 0, px_conf_deny },
	{ "dns", "cache_size", CONF_INT, C(dns_cache_size), 0, 65536, NULL },
	{ "dns", "cache_ttl", CONF_MS, C(dns_cache_ttl_ms), 0, DAY, NULL },
	{ "dns", "nameserver", CONF_STR, C(nameserver), 0, 64, NULL },
	{ "service", "dev", CONF_STR, C(service_dev), 0, 32, NULL },
	{ "service", "ips", CONF_FUNC, C(service_ips), 0, 0, px_conf_svc_ips },
	{ "listener", "listen", CONF_FUNC, L(listen), 0, 0, px_conf_addr },
	{ "listener", "proto", CONF_FUNC, L(proto), 0, 0, px_conf_proto },
	{ "listener", "auth", CONF_FUNC, L(auth), 0, 0, px_conf_auth },
	{ "listener", "egress", CONF_FUNC, L(egress_mode), 0, 0, px_conf_egress },
	{ "user", "password", CONF_STR, U(hash), 0, 160, NULL },
	{ "user", "max_conns", CONF_INT, U(max_conns), 0, 1000000, NULL },
	{ NULL, NULL, 0, 0, 0, 0, NULL },
};

static void
px_conf_defaults(struct px_conf *c)
{
	str_copy(c->log_level, "info", sizeof(c->log_level));
	c->max_conns = 4096;
	c->user_max_conns = 0;
	c->header_max = 16384;
	c->header_count = 100;
	c->header_timeout_ms = 10000;
	c->idle_timeout_ms = 300000;
	c->connect_timeout_ms = 10000;
	c->drain_timeout_ms = 10000;
	c->redis_users = 1;
	c->dns_cache_size = 256;
	c->dns_cache_ttl_ms = 30000;
	str_copy(c->service_dev, "eth0", sizeof(c->service_dev));
	px_ssrf_init(&c->ssrf);
}

void
px_conf_free(struct px_conf *c)
{
	if (!c)
		return;
	free(c->users);
	free(c);
}

struct px_conf *
px_conf_load(const char *path, char *err, size_t errlen)
{
	struct px_conf *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	px_conf_defaults(c);
	str_copy(c->path, path, sizeof(c->path));
	if (conf_load(path, px_sections, px_keys, c, err, errlen) < 0)
		goto fail;
	if (c->nlisteners == 0) {
		snprintf(err, errlen, "%s: no [listener NAME] section", path);
		goto fail;
	}
	for (int i = 0; i < c->nlisteners; i++) {
		struct px_listener_conf *l = &c->listeners[i];

		if (!l->listen.len) {
			snprintf(err, errlen, "%s: [listener %s]: 'listen' is required", path,
			    l->name);
			goto fail;
		}
		for (int k = 0; k < i; k++)
			if (strcmp(c->listeners[k].listen.text, l->listen.text) == 0) {
				snprintf(err, errlen, "%s: [listener %s]: address %s already used "
				    "by [listener %s]", path, l->name, l->listen.text,
				    c->listeners[k].name);
				goto fail;
			}
	}
	for (int i = 0; i < c->nusers; i++) {
		if (strncmp(c->users[i].hash, "$", 1) != 0) {
			snprintf(err, errlen, "%s: [user %s]: 'password' must be a crypt(3) hash "
			    "(make one with proxyvmd -H)", path, c->users[i].name);
			goto fail;
		}
	}
	if (c->redis_sentinels[0]) {
		char e2[200];

		if (rlink_target_make(&c->redis_target, NULL, c->redis_password, c->redis_sentinels,
		    c->redis_master, c->redis_sentinel_password, e2, sizeof(e2)) < 0) {
			snprintf(err, errlen, "%s: [redis] sentinels: %s", path, e2);
			goto fail;
		}
	}
	if (PX_HAS_REDIS(c) && !c->vm[0]) {
		snprintf(err, errlen, "%s: 'vm' is required when [redis] is set", path);
		goto fail;
	}
	return c;
fail:
	px_conf_free(c);
	return NULL;
}
