/*
 * nmd_conf.c: netmigrated's configuration file (see docs/config.md), as a
 * common/conf.h key table, and the checks that need the whole file.
 *
 * It lives apart from nmd.c so that what reads untrusted text links without
 * the daemon (its main, libevent, Redis): the fuzz target tests/fuzz/
 * fuzz_conf.c loads files through nmd_conf_load() as the agent does on start
 * and on SIGHUP. Never logs: nmd.c decides whether a failure stops the start
 * or only refuses a reload.
 */
#include "netmigrate/nmd.h"
#include "common/conf.h"
#include "common/util.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int
nmd_parse_choice(void *field, const char *value, const char *const *choices, const char *what,
    char *err, size_t errlen)
{
	for (int i = 0; choices[i]; i++) {
		if (strcmp(value, choices[i]) == 0) {
			str_copy(field, value, 8);
			return 0;
		}
	}
	snprintf(err, errlen, "bad %s '%s'", what, value);
	return -1;
}

static int
nmd_parse_role(void *field, const char *value, char *err, size_t errlen)
{
	static const char *const c[] = { "host", "edge", NULL };

	return nmd_parse_choice(field, value, c, "role (host, edge)", err, errlen);
}

static int
nmd_parse_form(void *field, const char *value, char *err, size_t errlen)
{
	static const char *const c[] = { "request", "reply", "both", NULL };

	return nmd_parse_choice(field, value, c, "arp_form (request, reply, both)", err, errlen);
}

/* "IP:PORT,IP:PORT" (IPv6 as [IP]:PORT) into hb_addr. */
static int
nmd_conf_controllers(struct nmd_conf *c, char *err, size_t errlen)
{
	char list[sizeof(c->controllers)], *save = NULL;

	c->nhb = 0;
	str_copy(list, c->controllers, sizeof(list));
	for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		unsigned len;

		if (c->nhb == NMD_HB_MAX) {
			snprintf(err, errlen, "more than %d", NMD_HB_MAX);
			return -1;
		}
		if (sockaddr_parse(t, &c->hb_addr[c->nhb], &len) < 0) {
			snprintf(err, errlen, "'%s' is not IP:PORT", t);
			return -1;
		}
		c->hb_len[c->nhb++] = (socklen_t)len;
	}
	return 0;
}

#define F(m) offsetof(struct nmd_conf, m)

static const struct conf_section nmd_sections[] = {
	{ "netmigrated", 0, NULL },
	{ "announce", 0, NULL },
	{ NULL, 0, NULL },
};

static const struct conf_key nmd_keys[] = {
	{ "netmigrated", "host", CONF_STR, F(host), 0, 64, NULL },
	{ "netmigrated", "role", CONF_FUNC, F(role), 0, 0, nmd_parse_role },
	{ "netmigrated", "redis", CONF_FUNC, F(redis), 0, 0, conf_parse_hostport },
	{ "netmigrated", "redis_password", CONF_STR, F(redis_password), 0, 128, NULL },
	{ "netmigrated", "redis_sentinels", CONF_STR, F(redis_sentinels), 0, 256, NULL },
	{ "netmigrated", "redis_master", CONF_STR, F(redis_master), 0, 64, NULL },
	{ "netmigrated", "sentinel_password", CONF_STR, F(sentinel_password), 0, 128, NULL },
	{ "netmigrated", "lease", CONF_MS, F(lease_ms), 300, 600000, NULL },
	{ "netmigrated", "metrics_interval", CONF_MS, F(metrics_ms), 100, 60000, NULL },
	{ "netmigrated", "order_block", CONF_MS, F(block_ms), 10, 4000, NULL },
	{ "netmigrated", "order_max_age", CONF_MS, F(max_age_ms), 0, 86400000, NULL },
	{ "netmigrated", "vm_bridge", CONF_STR, F(vm_bridge), 0, IFNAMSIZ, NULL },
	{ "netmigrated", "uplink", CONF_STR, F(uplink), 0, IFNAMSIZ, NULL },
	{ "netmigrated", "dev", CONF_STR, F(dev), 0, IFNAMSIZ, NULL },
	{ "netmigrated", "fence", CONF_BOOL, F(fence), 0, 0, NULL },
	{ "netmigrated", "converge", CONF_MS, F(converge_ms), 0, 600000, NULL },
	{ "netmigrated", "log_level", CONF_FUNC, F(log_level), 0, 0, conf_parse_log_level },
	{ "netmigrated", "controllers", CONF_STR, F(controllers), 0, 256, NULL },
	{ "netmigrated", "heartbeat_key", CONF_STR, F(hb_key), 0, 128, NULL },
	{ "announce", "initial", CONF_MS, F(ann_initial_ms), 1, 100000, NULL },
	{ "announce", "step", CONF_MS, F(ann_step_ms), 0, 100000, NULL },
	{ "announce", "max", CONF_MS, F(ann_max_ms), 1, 100000, NULL },
	{ "announce", "rounds", CONF_INT, F(ann_rounds), 1, 100, NULL },
	{ "announce", "arp_form", CONF_FUNC, F(arp_form), 0, 0, nmd_parse_form },
	{ NULL, NULL, 0, 0, 0, 0, NULL },
};

static void
nmd_conf_defaults(struct nmd_conf *c)
{
	memset(c, 0, sizeof(*c));
	str_copy(c->role, "host", sizeof(c->role));
	str_copy(c->redis, "127.0.0.1:6379", sizeof(c->redis));
	c->lease_ms = 3000;
	c->metrics_ms = 1000;
	c->block_ms = 1000;
	c->max_age_ms = 60000;
	str_copy(c->vm_bridge, "br0", sizeof(c->vm_bridge));
	c->ann_initial_ms = 50;
	c->ann_step_ms = 100;
	c->ann_max_ms = 550;
	c->ann_rounds = 5;
	str_copy(c->arp_form, "both", sizeof(c->arp_form));
	c->fence = 1;
	c->converge_ms = 2000;
	str_copy(c->log_level, "info", sizeof(c->log_level));
}

struct nm_sched
nmd_conf_sched(const struct nmd_conf *c)
{
	struct nm_sched s = { (int)c->ann_initial_ms, (int)c->ann_step_ms, (int)c->ann_max_ms,
		(int)c->ann_rounds };

	return s;
}

int
nmd_conf_load(const char *path, struct nmd_conf *c, char *err, size_t errlen)
{
	struct nm_sched s;
	char e2[200];

	nmd_conf_defaults(c);
	if (conf_load(path, nmd_sections, nmd_keys, c, err, errlen) < 0)
		return -1;
	if (!c->host[0]) {
		snprintf(err, errlen, "%s: [netmigrated] host is required", path);
		return -1;
	}
	if (strcmp(c->role, "host") == 0 && !c->vm_bridge[0]) {
		snprintf(err, errlen, "%s: [netmigrated] vm_bridge is required for role host", path);
		return -1;
	}
	if (rlink_target_make(&c->target, c->redis, c->redis_password, c->redis_sentinels,
	    c->redis_master, c->sentinel_password, e2, sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: [netmigrated] redis_sentinels: %s", path, e2);
		return -1;
	}
	if (nmd_conf_controllers(c, e2, sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: [netmigrated] controllers: %s", path, e2);
		return -1;
	}
	if (c->nhb && !c->hb_key[0]) {
		snprintf(err, errlen, "%s: [netmigrated] controllers needs heartbeat_key (the key "
		    "fleetd checks the heartbeats with)", path);
		return -1;
	}
	s = nmd_conf_sched(c);
	if (nm_sched_check(&s, e2, sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: [announce] %s", path, e2);
		return -1;
	}
	return 0;
}
