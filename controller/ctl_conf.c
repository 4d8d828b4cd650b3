/*
 * ctl_conf.c: fleetd's configuration (see ctl_conf.h), described as a
 * common/conf.h key table. Regions and hosts are named sections kept in
 * growing arrays owned by the conf struct.
 */
#include "controller/ctl_conf.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_MAX_SECTIONS 100000

/* Find or make the element called name in a growing array. */
static void *
ctl_conf_grow(void **arr, int *n, size_t size, const char *name, char *err, size_t errlen)
{
	char *base = *arr;
	void *p;

	for (int i = 0; i < *n; i++) {
		if (strcmp(base + (size_t)i * size, name) == 0) {
			snprintf(err, errlen, "'%s' is defined twice", name);
			return NULL;
		}
	}
	if (*n >= CTL_MAX_SECTIONS || strlen(name) >= CTL_NAME_MAX) {
		snprintf(err, errlen, "too many sections or name too long");
		return NULL;
	}
	p = realloc(base, (size_t)(*n + 1) * size);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*arr = p;
	p = (char *)p + (size_t)(*n)++ * size;
	memset(p, 0, size);
	str_copy(p, name, CTL_NAME_MAX);	/* name is each struct's first field */
	return p;
}

static void *
ctl_conf_region(void *cfg, const char *name, char *err, size_t errlen)
{
	struct ctl_conf *c = cfg;

	return ctl_conf_grow((void **)&c->regions, &c->nregions, sizeof(*c->regions), name,
	    err, errlen);
}

static void *
ctl_conf_host(void *cfg, const char *name, char *err, size_t errlen)
{
	struct ctl_conf *c = cfg;
	struct ctl_conf_host *h;

	h = ctl_conf_grow((void **)&c->hosts, &c->nhosts, sizeof(*c->hosts), name, err, errlen);
	if (h) {
		str_copy(h->bridge, "br0", sizeof(h->bridge));
		h->memory = 4LL << 30;
		h->vcpus = 4;
		h->nic = 125000000;	/* 1 Gbit/s */
	}
	return h;
}

#define F(m) offsetof(struct ctl_conf, m)
#define H(m) offsetof(struct ctl_conf_host, m)
/* mgmt_pool = FIRST-LAST/PREFIX (IPv4): where standbys get their management
 * address. field points at pool_first; pool_last and pool_prefix follow. */
static int
ctl_conf_pool(void *field, const char *value, char *err, size_t errlen)
{
	struct ctl_conf_region *r = (struct ctl_conf_region *)((char *)field -
	    offsetof(struct ctl_conf_region, pool_first));
	char a[32], b[32];
	struct in_addr ia, ib;
	int prefix;

	if (sscanf(value, "%31[0-9.]-%31[0-9.]/%d", a, b, &prefix) != 3 ||
	    inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1 ||
	    prefix < 8 || prefix > 32 || ntohl(ia.s_addr) > ntohl(ib.s_addr)) {
		snprintf(err, errlen, "bad mgmt_pool '%s' (write 10.0.1.200-10.0.1.249/24)", value);
		return -1;
	}
	r->pool_first = ntohl(ia.s_addr);
	r->pool_last = ntohl(ib.s_addr);
	r->pool_prefix = prefix;
	return 0;
}

#define R(m) offsetof(struct ctl_conf_region, m)

static const struct conf_section ctl_sections[] = {
	{ "fleetd", 0, NULL },
	{ "migration", 0, NULL },
	{ "policy", 0, NULL },
	{ "failover", 0, NULL },
	{ "region", 1, ctl_conf_region },
	{ "host", 1, ctl_conf_host },
	{ NULL, 0, NULL },
};

static const struct conf_key ctl_keys[] = {
	{ "fleetd", "api_listen", CONF_FUNC, F(api_listen), 0, 0, conf_parse_hostport },
	{ "fleetd", "api_token", CONF_STR, F(api_token), 0, 128, NULL },
	{ "fleetd", "tls_cert", CONF_STR, F(tls_cert), 0, 256, NULL },
	{ "fleetd", "tls_key", CONF_STR, F(tls_key), 0, 256, NULL },
	{ "fleetd", "redis", CONF_FUNC, F(redis), 0, 0, conf_parse_hostport },
	{ "fleetd", "redis_password", CONF_STR, F(redis_password), 0, 128, NULL },
	{ "fleetd", "redis_sentinels", CONF_STR, F(redis_sentinels), 0, 256, NULL },
	{ "fleetd", "redis_master", CONF_STR, F(redis_master), 0, 64, NULL },
	{ "fleetd", "sentinel_password", CONF_STR, F(sentinel_password), 0, 128, NULL },
	{ "fleetd", "tick", CONF_MS, F(tick_ms), 100, 60000, NULL },
	{ "fleetd", "stale_after", CONF_MS, F(stale_ms), 1000, 3600000, NULL },
	{ "fleetd", "log_level", CONF_FUNC, F(log_level), 0, 0, conf_parse_log_level },
	{ "fleetd", "instance", CONF_STR, F(instance), 0, CTL_NAME_MAX, NULL },
	{ "fleetd", "api_url", CONF_STR, F(api_url), 0, 256, NULL },
	{ "fleetd", "leader_lease", CONF_MS, F(leader_lease_ms), 400, 60000, NULL },
	{ "migration", "max_concurrent", CONF_INT, F(mig_max_concurrent), 1, 64, NULL },
	{ "migration", "max_per_host", CONF_INT, F(mig_max_per_host), 1, 16, NULL },
	{ "migration", "bandwidth", CONF_INT, F(mig_bandwidth), 0, 100000, NULL },
	{ "migration", "max_downtime", CONF_MS, F(mig_max_downtime_ms), 10, 60000, NULL },
	{ "migration", "timeout", CONF_MS, F(mig_timeout_ms), 1000, 3600000, NULL },
	{ "migration", "cooldown", CONF_MS, F(mig_cooldown_ms), 0, 86400000, NULL },
	{ "migration", "auto_converge", CONF_BOOL, F(mig_auto_converge), 0, 0, NULL },
	{ "migration", "compressed", CONF_BOOL, F(mig_compressed), 0, 0, NULL },
	{ "migration", "postcopy", CONF_BOOL, F(mig_postcopy), 0, 0, NULL },
	{ "migration", "postcopy_after", CONF_MS, F(mig_postcopy_after_ms), 0, 3600000, NULL },
	{ "policy", "rebalance", CONF_BOOL, F(pol_rebalance), 0, 0, NULL },
	{ "policy", "high_water", CONF_INT, F(pol_high_pct), 1, 100, NULL },
	{ "policy", "target", CONF_INT, F(pol_target_pct), 1, 100, NULL },
	{ "policy", "window", CONF_MS, F(pol_window_ms), 0, 3600000, NULL },
	{ "failover", "enable", CONF_BOOL, F(fo_enable), 0, 0, NULL },
	{ "failover", "poll", CONF_MS, F(fo_poll_ms), 20, 5000, NULL },
	{ "failover", "probe_timeout", CONF_MS, F(fo_probe_ms), 20, 10000, NULL },
	{ "failover", "guest_token", CONF_STR, F(fo_guest_token), 0, 128, NULL },
	{ "failover", "heartbeat_listen", CONF_FUNC, F(hb_listen), 0, 0, conf_parse_hostport },
	{ "failover", "heartbeat_key", CONF_STR, F(hb_key), 0, 128, NULL },
	{ "failover", "heartbeat_grant", CONF_MS, F(hb_grant_ms), 50, 60000, NULL },
	{ "failover", "stall_grace", CONF_MS, F(hb_stall_ms), 0, 600000, NULL },
	{ "policy", "geo", CONF_BOOL, F(pol_geo), 0, 0, NULL },
	{ "policy", "geo_max_moves", CONF_INT, F(pol_geo_max_moves), 1, 64, NULL },
	{ "region", "edge", CONF_STR, R(edge), 0, CTL_NAME_MAX, NULL },
	{ "region", "gateway", CONF_STR, R(gateway), 0, 48, NULL },
	{ "region", "mgmt_pool", CONF_FUNC, R(pool_first), 0, 0, ctl_conf_pool },
	{ "host", "region", CONF_STR, H(region), 0, CTL_NAME_MAX, NULL },
	{ "host", "uri", CONF_STR, H(uri), 0, 256, NULL },
	{ "host", "address", CONF_STR, H(address), 0, 64, NULL },
	{ "host", "bridge", CONF_STR, H(bridge), 0, 32, NULL },
	{ "host", "memory", CONF_BYTES, H(memory), 1 << 20, 1LL << 50, NULL },
	{ "host", "vcpus", CONF_INT, H(vcpus), 1, 4096, NULL },
	{ "host", "nic", CONF_BYTES, H(nic), 1, 1LL << 50, NULL },
	{ NULL, NULL, 0, 0, 0, 0, NULL },
};

static int
ctl_conf_validate(struct ctl_conf *c, const char *path, char *err, size_t errlen)
{
	char e2[200];

	if (!c->api_token[0]) {
		snprintf(err, errlen, "%s: [fleetd] api_token is required", path);
		return -1;
	}
	if (rlink_target_make(&c->redis_target, c->redis, c->redis_password, c->redis_sentinels,
	    c->redis_master, c->sentinel_password, e2, sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: [fleetd] redis_sentinels: %s", path, e2);
		return -1;
	}
	if (!c->tls_cert[0] != !c->tls_key[0]) {
		snprintf(err, errlen, "%s: [fleetd] tls_cert and tls_key go together", path);
		return -1;
	}
	if (c->hb_listen[0] && !c->hb_key[0]) {
		snprintf(err, errlen, "%s: [failover] heartbeat_listen needs heartbeat_key (the key "
		    "the agents sign their heartbeats with)", path);
		return -1;
	}
	/* The lease value is "<instance> <epoch> <api_url>": no spaces inside. */
	if (strpbrk(c->instance, " \t") || strpbrk(c->api_url, " \t")) {
		snprintf(err, errlen, "%s: [fleetd] instance and api_url cannot contain spaces", path);
		return -1;
	}
	if (!c->instance[0]) {
		char host[48] = "fleetd";

		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(c->instance, sizeof(c->instance), "%s-%d", host, (int)getpid());
	}
	if (!c->api_url[0])
		snprintf(c->api_url, sizeof(c->api_url), "%s://%s", c->tls_cert[0] ? "https" : "http",
		    c->api_listen);
	if (c->pol_target_pct >= c->pol_high_pct) {
		snprintf(err, errlen, "%s: [policy] target (%lld) must be below high_water (%lld)",
		    path, c->pol_target_pct, c->pol_high_pct);
		return -1;
	}
	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_conf_host *h = &c->hosts[i];
		int found = 0;

		for (int r = 0; r < c->nregions; r++)
			found |= strcmp(c->regions[r].name, h->region) == 0;
		if (!found) {
			snprintf(err, errlen, "%s: [host %s] region '%s' is not defined", path,
			    h->name, h->region);
			return -1;
		}
		if (!h->uri[0] || !h->address[0]) {
			snprintf(err, errlen, "%s: [host %s] needs uri and address", path, h->name);
			return -1;
		}
	}
	return 0;
}

struct ctl_conf *
ctl_conf_load(const char *path, char *err, size_t errlen)
{
	struct ctl_conf *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	str_copy(c->api_listen, "127.0.0.1:8480", sizeof(c->api_listen));
	str_copy(c->redis, "127.0.0.1:6379", sizeof(c->redis));
	str_copy(c->log_level, "info", sizeof(c->log_level));
	c->tick_ms = 1000;
	c->stale_ms = 5000;
	c->leader_lease_ms = 2000;
	c->mig_max_concurrent = 2;
	c->mig_max_per_host = 1;
	c->mig_max_downtime_ms = 300;
	c->mig_timeout_ms = 120000;
	c->mig_cooldown_ms = 60000;
	c->mig_auto_converge = 1;
	c->mig_compressed = 0;	/* XBZRLE: see docs/config.md */
	c->mig_postcopy_after_ms = 10000;
	c->fo_enable = 1;
	c->fo_poll_ms = 100;
	c->fo_probe_ms = 300;
	c->hb_grant_ms = 5000;
	c->hb_stall_ms = 12000;
	c->pol_high_pct = 80;
	c->pol_target_pct = 70;
	c->pol_window_ms = 10000;
	c->pol_geo_max_moves = 1;
	if (conf_load(path, ctl_sections, ctl_keys, c, err, errlen) < 0 ||
	    ctl_conf_validate(c, path, err, errlen) < 0) {
		ctl_conf_free(c);
		return NULL;
	}
	return c;
}

void
ctl_conf_free(struct ctl_conf *c)
{
	if (!c)
		return;
	free(c->regions);
	free(c->hosts);
	free(c);
}
