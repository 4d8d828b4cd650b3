/* test_ctl_model.c: fleetd's model: metadata, rates, lookups, pre-checks,
 * and its configuration file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/ctl_conf.h"
#include "controller/ctl_model.h"

static void
test_meta_parse(void **state)
{
	struct ctl_vm_meta m;

	(void)state;
	/* As libvirt returns it (namespace prefix dropped or kept). */
	assert_int_equal(ctl_vm_meta_parse(
	    "<vm xmlns=\"http://proxyfleet.example.org/xmlns/vm/1\" id=\"px-1\" role=\"standby\" "
	    "peer=\"px-0\">\n  <ip>10.77.1.100/24</ip>\n  <ip>fd77:1::100/64</ip>\n</vm>", &m), 0);
	assert_string_equal(m.id, "px-1");
	assert_int_equal(m.role, ROLE_STANDBY);
	assert_string_equal(m.peer, "px-0");
	assert_int_equal(m.nips, 2);
	assert_string_equal(m.ips[0], "10.77.1.100/24");
	assert_string_equal(m.ips[1], "fd77:1::100/64");
	assert_int_equal(ctl_vm_meta_parse(
	    "<pf:vm xmlns:pf='x' id='a' role='primary'><pf:ip>10.0.0.1/32</pf:ip></pf:vm>", &m), 0);
	assert_string_equal(m.id, "a");
	assert_int_equal(m.role, ROLE_PRIMARY);
	assert_int_equal(m.nips, 1);
	assert_string_equal(m.ips[0], "10.0.0.1/32");
	/* No id: not ours. Attribute names must match whole (no "vmid"). */
	assert_int_equal(ctl_vm_meta_parse("<vm role='primary'/>", &m), -1);
	assert_int_equal(ctl_vm_meta_parse("<vm xid='q'/>", &m), -1);
	assert_int_equal(ctl_vm_meta_parse("", &m), -1);
}

static void
test_rate(void **state)
{
	struct ctl_rate r = { 0 };

	(void)state;
	ctl_rate_update(&r, 1000, 1000, 0.5);
	assert_true(r.per_s == 0);	/* primed, no rate yet */
	ctl_rate_update(&r, 3000, 2000, 0.5);
	assert_true(r.per_s > 1999 && r.per_s < 2001);	/* first rate taken whole */
	ctl_rate_update(&r, 3000, 3000, 0.5);
	assert_true(r.per_s > 999 && r.per_s < 1001);	/* EWMA: half of 2000 + half of 0 */
	ctl_rate_update(&r, 10, 4000, 0.5);	/* counter went back: restart */
	assert_true(r.per_s == 0);
	ctl_rate_update(&r, 510, 4500, 0.5);
	assert_true(r.per_s > 999 && r.per_s < 1001);
}

static struct ctl_conf_host test_hosts[3] = {
	{ "eu-1", "eu", "qemu+tcp://a/system", "10.77.1.11", "br0", 1LL << 30, 4, 1 << 20 },
	{ "eu-2", "eu", "qemu+tcp://b/system", "10.77.1.12", "br0", 1LL << 30, 4, 1 << 20 },
	{ "us-1", "us", "qemu+tcp://c/system", "10.77.2.11", "br0", 256LL << 20, 1, 1 << 20 },
};
static struct ctl_conf_region test_regions[2] = { { .name = "eu", .edge = "edge" },
    { .name = "us", .edge = "edge" } };

static void
model_setup(struct ctl_model *m, struct ctl_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->hosts = test_hosts;
	c->nhosts = 3;
	c->regions = test_regions;
	c->nregions = 2;
	assert_int_equal(ctl_model_init(m, c), 0);
	for (int i = 0; i < 3; i++) {
		m->hosts[i].connected = 1;
		m->hosts[i].lease_ok = 1;
		m->hosts[i].lease_read = 1;
	}
}

static struct ctl_vm *
add_vm(struct ctl_model *m, const char *name, int host, uint64_t mem)
{
	struct ctl_vm *vm = ctl_vm_get(m, name);

	assert_non_null(vm);
	vm->host = host;
	vm->state = VM_RUNNING;
	vm->mem_bytes = mem;
	vm->vcpus = 1;
	return vm;
}

static void
test_vm_index(void **state)
{
	struct ctl_model m;
	struct ctl_conf c;
	char name[16];

	(void)state;
	model_setup(&m, &c);
	for (int i = 199; i >= 0; i--) {
		snprintf(name, sizeof(name), "vm-%03d", (i * 37) % 200);
		add_vm(&m, name, 0, 1);
	}
	assert_int_equal(m.nvms, 200);
	for (int i = 1; i < m.nvms; i++)
		assert_true(strcmp(m.vms[i - 1]->name, m.vms[i]->name) < 0);
	assert_ptr_equal(ctl_vm_get(&m, "vm-042"), ctl_vm_find(&m, "vm-042"));
	assert_int_equal(m.nvms, 200);
	ctl_vm_remove(&m, ctl_vm_find(&m, "vm-042"));
	assert_null(ctl_vm_find(&m, "vm-042"));
	assert_non_null(ctl_vm_find(&m, "vm-043"));
	assert_int_equal(m.nvms, 199);
	assert_int_equal(ctl_host_find(&m, "us-1"), 2);
	assert_int_equal(ctl_host_find(&m, "nope"), -1);
	ctl_model_free(&m);
}

#define EXPECT_REFUSED(vm, dest, text) do {                                        \
	char why_[256];                                                             \
	assert_int_equal(ctl_precheck(&m, (vm), (dest), &lim, why_, sizeof(why_)), -1); \
	if (!strstr(why_, (text)))                                                  \
		fail_msg("reason '%s' lacks '%s'", why_, (text));                    \
} while (0)

static void
test_precheck(void **state)
{
	struct ctl_model m;
	struct ctl_conf c;
	struct ctl_limits lim = { .max_concurrent = 2, .max_per_host = 1, .in_flight = 0 };
	struct ctl_vm *a, *b, *sb;
	char why[256];

	(void)state;
	model_setup(&m, &c);
	a = add_vm(&m, "a", 0, 128 << 20);
	b = add_vm(&m, "b", 2, 200 << 20);
	sb = add_vm(&m, "a-sb", 1, 128 << 20);
	snprintf(a->meta.peer, sizeof(a->meta.peer), "a-sb");
	ctl_model_tally(&m);

	assert_int_equal(ctl_precheck(&m, b, 0, &lim, why, sizeof(why)), 0);
	EXPECT_REFUSED(a, 0, "already runs on eu-1");
	EXPECT_REFUSED(a, 1, "anti-affinity: a's standby a-sb runs on eu-2");
	EXPECT_REFUSED(a, 2, "lacks memory");	/* us-1 has 256 MiB, 200 used */
	EXPECT_REFUSED(a, 7, "no such destination");
	sb->meta.peer[0] = '\0';
	a->meta.peer[0] = '\0';
	assert_int_equal(ctl_precheck(&m, a, 1, &lim, why, sizeof(why)), 0);
	m.hosts[1].draining = 1;
	EXPECT_REFUSED(a, 1, "destination eu-2 is draining");
	m.hosts[1].draining = 0;
	m.hosts[1].lease_ok = 0;
	EXPECT_REFUSED(a, 1, "no live agent lease");
	m.hosts[1].lease_read = 0;	/* not polled yet: unknown, not expired */
	EXPECT_REFUSED(a, 1, "destination eu-2: its agent lease is not read yet");
	m.hosts[1].lease_read = 1;
	m.hosts[1].lease_ok = 1;
	m.hosts[1].connected = 0;
	EXPECT_REFUSED(a, 1, "not reachable over libvirt");
	m.hosts[1].connected = 1;
	m.hosts[0].connected = 0;
	EXPECT_REFUSED(a, 1, "source eu-1 is not reachable");
	m.hosts[0].connected = 1;
	a->migration = 4;
	EXPECT_REFUSED(a, 1, "already migrating (migration 4)");
	a->migration = 0;
	a->state = VM_PAUSED;
	EXPECT_REFUSED(a, 1, "is paused: only running (live) or shut-off (offline) VMs move");
	a->state = VM_SHUTOFF;	/* a warm standby moves offline */
	assert_int_equal(ctl_precheck(&m, a, 1, &lim, why, sizeof(why)), 0);
	a->state = VM_RUNNING;
	/* Policy moves wait out the cooldown; operator moves do not. */
	a->cooldown_until_ms = 5000;
	lim.now_ms = 4000;
	assert_int_equal(ctl_precheck(&m, a, 1, &lim, why, sizeof(why)), 0);
	lim.use_cooldown = 1;
	EXPECT_REFUSED(a, 1, "cooldown 1000 ms left");
	lim.now_ms = 6000;
	assert_int_equal(ctl_precheck(&m, a, 1, &lim, why, sizeof(why)), 0);
	lim.use_cooldown = 0;
	lim.in_flight = 2;
	EXPECT_REFUSED(a, 1, "2 migrations in flight, the limit is 2");
	lim.in_flight = 1;
	m.hosts[1].migrations = 1;
	EXPECT_REFUSED(a, 1, "eu-2 already has 1 migration(s) in flight");
	m.hosts[1].migrations = 0;
	b->vcpus = 8;
	EXPECT_REFUSED(b, 0, "lacks vCPUs");
	b->vcpus = 1;

	/* Room is reserved on the destination of a VM in flight: eu-2 has
	 * 1 GiB; a-sb (128 MiB) lives there and c (800 MiB) is moving in. */
	struct ctl_vm *cvm = add_vm(&m, "c", 0, 800 << 20);
	cvm->migration = 9;
	cvm->mig_dst = 1;
	ctl_model_tally(&m);
	assert_int_equal(m.hosts[1].mem_used, (128 + 800) << 20);
	EXPECT_REFUSED(b, 1, "destination eu-2 lacks memory: 96 MiB free, 200 MiB needed");
	/* Anti-affinity also sees a peer on its way to the destination. */
	cvm->mig_dst = 2;
	snprintf(cvm->meta.peer, sizeof(cvm->meta.peer), "b");
	snprintf(b->meta.peer, sizeof(b->meta.peer), "c");
	b->host = 0;
	ctl_model_tally(&m);
	EXPECT_REFUSED(b, 2, "anti-affinity: b's standby c is moving to us-1");
	ctl_model_free(&m);
}

static void
test_stale(void **state)
{
	struct ctl_model m;
	struct ctl_conf c;
	struct ctl_vm *a;

	(void)state;
	model_setup(&m, &c);
	a = add_vm(&m, "a", 0, 1);
	a->tel_ms = 10000;
	a->up.per_s = 500;
	assert_int_equal(ctl_model_mark_stale(&m, 12000, 5000), 0);
	ctl_model_tally(&m);
	assert_true(m.hosts[0].bps == 500);
	assert_int_equal(ctl_model_mark_stale(&m, 16000, 5000), 1);
	assert_true(a->stale);
	ctl_model_tally(&m);
	assert_true(m.hosts[0].bps == 0);	/* stale traffic is not counted */
	ctl_model_free(&m);
}

static char cpath[64];

static struct ctl_conf *
load(const char *text, char *err, size_t errlen)
{
	int fd;

	snprintf(cpath, sizeof(cpath), "/tmp/test_ctl_conf.XXXXXX");
	fd = mkstemp(cpath);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct ctl_conf *c = ctl_conf_load(cpath, err, errlen);
	unlink(cpath);
	return c;
}

static void
test_conf(void **state)
{
	char err[512], want[512];
	struct ctl_conf *c;

	(void)state;
	c = load("[fleetd]\napi_token = t\nredis = 10.77.254.1:6379\n"
	    "[migration]\nmax_downtime = 200ms\ntimeout = 2m\n"
	    "[region eu]\nedge = edge\n"
	    "[host eu-1]\nregion = eu\nuri = qemu+tcp://10.77.1.11/system\naddress = 10.77.1.11\n"
	    "memory = 2G\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->nhosts, 1);
	assert_int_equal(c->hosts[0].memory, 2LL << 30);
	assert_string_equal(c->hosts[0].bridge, "br0");
	assert_int_equal(c->mig_max_downtime_ms, 200);
	assert_int_equal(c->mig_timeout_ms, 120000);
	ctl_conf_free(c);

	assert_null(load("[fleetd]\napi_token = t\nredis = nope\n", err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:3: bad address 'nope' (write IP:PORT)", cpath);
	assert_string_equal(err, want);
	assert_null(load("[fleetd]\napi_token = t\n[host x]\nregion = mars\nuri = u\naddress = a\n",
	    err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: [host x] region 'mars' is not defined", cpath);
	assert_string_equal(err, want);
	assert_null(load("[fleetd]\nredis = 1.2.3.4:5\n", err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: [fleetd] api_token is required", cpath);
	assert_string_equal(err, want);
	assert_null(load("[migration]\nmax_concurent = 3\n", err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: unknown key 'max_concurent' in section [migration]",
	    cpath);
	assert_string_equal(err, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meta_parse),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_vm_index),
		cmocka_unit_test(test_precheck),
		cmocka_unit_test(test_stale),
		cmocka_unit_test(test_conf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
