/*
 * fuzz_conf.c: libFuzzer target for the configuration files of the three
 * daemons: common/conf.c (libinih underneath) through each daemon's own
 * loader and checks, ctl_conf_load (fleetd), px_conf_load (proxyvmd) and
 * nmd_conf_load (netmigrated), plus the value parsers on short strings.
 *
 * The first byte picks what runs, modulo 4: '0' fleetd, '1' proxyvmd, '2'
 * netmigrated, '3' the value parsers; the rest is the file (or the
 * value). conf_load() takes a path, so the bytes go to a memfd made once
 * and are read back through /proc/self/fd/N, which keeps conf_load's API
 * and the disk out of it.
 * Whatever a loader returns is freed: a leak is a finding (LeakSanitizer).
 *
 * Invariants checked: a refusal names the file first ("path:line: ..." or
 * "path: ..."); an accepted file obeys what the loader promises its daemon
 * (fleetd: a token, every host in a defined region, target below
 * high_water; proxyvmd: 1 to 32 listeners with an address, users with a
 * crypt hash, lists within their arrays; netmigrated: a host, a schedule
 * nm_sched_check accepts); values parse to what their type allows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/util.h"
#include "controller/ctl_conf.h"
#include "netmigrate/nmd.h"
#include "proxyvm/px.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_path[64];

/* The refusal names the file, then a colon. */
static void
fz_refused(const char *err)
{
	size_t n = strlen(fz_path);

	if (strncmp(err, fz_path, n) != 0 || err[n] != ':')
		abort();
}

static void
fz_fleetd(char *err, size_t errlen)
{
	struct ctl_conf *c = ctl_conf_load(fz_path, err, errlen);

	if (!c) {
		fz_refused(err);
		return;
	}
	if (!c->api_token[0] || c->pol_target_pct >= c->pol_high_pct || c->nregions < 0 ||
	    c->nhosts < 0 || c->tick_ms < 100 || c->tick_ms > 60000)
		abort();
	for (int i = 0; i < c->nhosts; i++) {
		int found = 0;

		for (int r = 0; r < c->nregions; r++)
			found |= strcmp(c->regions[r].name, c->hosts[i].region) == 0;
		if (!found || !c->hosts[i].uri[0] || !c->hosts[i].name[0])
			abort();
	}
	ctl_conf_free(c);
}

static void
fz_proxyvmd(char *err, size_t errlen)
{
	struct px_conf *c = px_conf_load(fz_path, err, errlen);

	if (!c) {
		fz_refused(err);
		return;
	}
	if (c->nlisteners < 1 || c->nlisteners > PX_LISTENERS_MAX || c->nservice_ips < 0 ||
	    c->nservice_ips > PX_SERVICE_IPS_MAX || c->nusers > c->users_cap ||
	    c->ssrf.nallow > PX_SSRF_MAX || c->ssrf.ndeny > PX_SSRF_MAX)
		abort();
	for (int i = 0; i < c->nlisteners; i++)
		if (!c->listeners[i].listen.len)
			abort();
	for (int i = 0; i < c->nusers; i++)
		if (c->users[i].hash[0] != '$')
			abort();
	px_conf_free(c);
}

static void
fz_netmigrated(char *err, size_t errlen)
{
	struct nmd_conf c;
	struct nm_sched s;
	char e2[200];

	if (nmd_conf_load(fz_path, &c, err, errlen) < 0) {
		fz_refused(err);
		return;
	}
	s = nmd_conf_sched(&c);
	if (!c.host[0] || nm_sched_check(&s, e2, sizeof(e2)) < 0 ||
	    (strcmp(c.role, "host") != 0 && strcmp(c.role, "edge") != 0))
		abort();
}

/* The value parsers alone on one short string. */
static void
fz_values(const uint8_t *data, size_t size)
{
	char v[65], field[128], host[64], err[400];
	long long n;
	int b, port;

	if (size >= sizeof(v))
		size = sizeof(v) - 1;
	memcpy(v, data, size);
	v[size] = '\0';
	err[0] = '\0';
	if (conf_parse_ms(v, &n, err, sizeof(err)) == 0 ? n < 0 : !err[0])
		abort();
	err[0] = '\0';
	if (conf_parse_bytes(v, &n, err, sizeof(err)) == 0 ? n < 0 : !err[0])
		abort();
	err[0] = '\0';
	if (conf_parse_bool(v, &b, err, sizeof(err)) == 0 ? b != 0 && b != 1 : !err[0])
		abort();
	err[0] = '\0';
	memset(field, 'x', sizeof(field));
	if (conf_parse_hostport(field, v, err, sizeof(err)) == 0) {
		/* Kept as written, and it splits into a host and a port. */
		if (strcmp(field, v) != 0 || hostport_split(v, host, sizeof(host), &port) < 0 ||
		    port < 1 || port > 65535 || !host[0])
			abort();
	} else if (!err[0]) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char err[512];

	if (size < 1)
		return 0;
	if (data[0] % 4 == 3) {
		fz_values(data + 1, size - 1);
		return 0;
	}
	if (fd < 0) {
		fd = memfd_create("fuzz_conf", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(fz_path, sizeof(fz_path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
		abort();
	err[0] = '\0';
	switch (data[0] % 4) {
	case 0:
		fz_fleetd(err, sizeof(err));
		break;
	case 1:
		fz_proxyvmd(err, sizeof(err));
		break;
	default:
		fz_netmigrated(err, sizeof(err));
		break;
	}
	return 0;
}
