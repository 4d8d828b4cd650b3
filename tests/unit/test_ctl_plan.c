/* test_ctl_plan.c: the rebalancing planner (controller/ctl_plan.c): skewed
 * loads, hysteresis, anti-affinity, region pins, draining hosts, cooldowns,
 * VMs in flight, stale telemetry, the concurrency marks, stability (a plan
 * applied leaves nothing to plan) and the fewest moves against the lower
 * bound. */
#include "tests/unit/fx_fleet.h"

#define NIC 1000	/* bytes/s per host: a VM's traffic reads as tenths of a percent */

static void
fx_plan(struct fx *f)
{
	ctl_plan_free(&f->plan);
	ctl_model_tally(&f->m);
	assert_int_equal(ctl_plan_make(&f->m, &f->p, &f->plan), 0);
}

static void
test_pin_meta(void **state)
{
	struct ctl_vm_meta m;

	(void)state;
	assert_int_equal(ctl_vm_meta_parse("<vm id='a' pin='region'/>", &m), 0);
	assert_int_equal(m.pin, PIN_REGION);
	assert_int_equal(ctl_vm_meta_parse("<vm id='a' role='primary'/>", &m), 0);
	assert_int_equal(m.pin, PIN_NONE);
	/* An unknown pin reads as the strictest one known. */
	assert_int_equal(ctl_vm_meta_parse("<vm id='a' pin='rack'/>", &m), 0);
	assert_int_equal(m.pin, PIN_REGION);
}

static void
test_nothing_hot(void **state)
{
	struct fx *f = fx_new(NIC, 3, 0, 0);

	(void)state;
	fx_vm(f, "a", 0, MIB, 790);	/* 79%: under the mark */
	fx_vm(f, "b", 1, MIB, 100);
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_int_equal(f->plan.hot, 0);
	assert_int_equal(f->plan.lower_bound, 0);
	assert_int_equal(f->plan.still_hot, 0);
	assert_true(f->plan.hosts[0].load > 0.789 && f->plan.hosts[0].load < 0.791);
	fx_free(f);
}

static void
test_skewed_cheapest_cover(void **state)
{
	struct fx *f = fx_new(NIC, 2, 1, 0);
	const struct ctl_plan_move *mv;

	(void)state;
	/* eu-1 at 95%: 150 B/s too many. Both big VMs alone cover it; the one
	 * with less memory goes, to the same-region host. */
	fx_vm(f, "big", 0, 512 * MIB, 500);
	fx_vm(f, "mid", 0, 128 * MIB, 200);
	fx_vm(f, "s1", 0, 64 * MIB, 100);
	fx_vm(f, "s2", 0, 64 * MIB, 100);
	fx_vm(f, "s3", 0, 64 * MIB, 50);
	fx_plan(f);
	assert_int_equal(f->plan.hot, 1);
	assert_int_equal(f->plan.lower_bound, 1);
	assert_int_equal(f->plan.nmoves, 1);
	mv = fx_move(f, "mid");
	assert_non_null(mv);
	assert_int_equal(mv->from, 0);
	assert_int_equal(mv->to, 1);	/* eu-2: same region before us-1 */
	assert_true(mv->now);
	if (!strstr(mv->reason, "eu-1 at 95% of NIC > 80%"))
		fail_msg("reason '%s' lacks the figures", mv->reason);
	assert_true(f->plan.hosts[0].load_after <= 0.80);
	assert_int_equal(f->plan.still_hot, 0);
	fx_free(f);
}

static void
test_fewest_equals_lower_bound(void **state)
{
	struct fx *f = fx_new(NIC, 4, 0, 0);
	char name[16];

	(void)state;
	/* 10 x 95 = 95%: 150 over, two VMs needed; eu-2 hot too (3 x 300). */
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "a%d", i);
		fx_vm(f, name, 0, MIB, 95);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		fx_vm(f, name, 1, MIB, 300);
	}
	fx_plan(f);
	assert_int_equal(f->plan.hot, 2);
	assert_int_equal(f->plan.hosts[0].min_moves, 2);
	assert_int_equal(f->plan.hosts[1].min_moves, 1);
	assert_int_equal(f->plan.lower_bound, 3);
	assert_int_equal(f->plan.nmoves, 3);
	assert_int_equal(f->plan.still_hot, 0);
	for (int h = 0; h < 4; h++)
		assert_true(f->plan.hosts[h].load_after <= 0.80);
	for (int h = 2; h < 4; h++)
		assert_true(f->plan.hosts[h].load_after <= 0.70);
	fx_free(f);
}

static void
test_hysteresis(void **state)
{
	struct fx *f = fx_new(NIC, 2, 1, 0);
	const struct ctl_plan_move *mv;

	(void)state;
	fx_vm(f, "hot", 0, MIB, 200);
	fx_vm(f, "rest", 0, MIB, 750);	/* eu-1 at 95% */
	fx_vm(f, "warm", 1, MIB, 600);	/* eu-2 at 60%: +200 would be 80% > 70% */
	fx_plan(f);
	mv = fx_move(f, "hot");
	assert_non_null(mv);
	assert_int_equal(mv->to, 2);	/* us-1, though another region */
	assert_null(fx_move(f, "warm"));
	/* With us-1 also warm, nothing fits: no move, and the plan says why. */
	fx_vm(f, "warm2", 2, MIB, 600);
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_int_equal(f->plan.hot, 1);
	assert_int_equal(f->plan.still_hot, 1);
	assert_int_equal(f->plan.lower_bound, 1);
	if (!strstr(f->plan.hosts[0].blocked, "no host would stay under 70%"))
		fail_msg("blocked: '%s'", f->plan.hosts[0].blocked);
	fx_free(f);
}

/* Two hot hosts: the hotter cannot be helped, the other can; each is told apart. */
static void
test_blocked_per_host(void **state)
{
	struct fx *f = fx_new(NIC, 2, 1, 0);

	(void)state;
	fx_vm(f, "s", 0, MIB, 60);
	fx_vm(f, "t", 0, MIB, 790);	/* eu-1 at 85%: s covers it */
	fx_vm(f, "big", 1, MIB, 950);	/* eu-2 at 95%: big fits nowhere under 70% */
	fx_plan(f);
	assert_int_equal(f->plan.hot, 2);
	assert_int_equal(f->plan.nmoves, 1);
	assert_non_null(fx_move(f, "s"));
	assert_int_equal(f->plan.still_hot, 1);
	assert_string_equal(f->plan.hosts[0].blocked, "");
	assert_string_equal(f->plan.hosts[1].blocked, "big: no host would stay under 70% with it");
	fx_free(f);
}

static void
test_anti_affinity(void **state)
{
	struct fx *f = fx_new(NIC, 3, 0, 0);
	struct ctl_vm *a, *sb;
	const struct ctl_plan_move *mv;

	(void)state;
	a = fx_vm(f, "a", 0, MIB, 300);
	fx_vm(f, "z", 0, 2 * MIB, 550);	/* eu-1 at 85%: either covers, a is cheaper */
	sb = fx_vm(f, "a-sb", 1, MIB, 0);	/* its standby, on the emptiest host */
	sb->state = VM_SHUTOFF;
	snprintf(a->meta.peer, sizeof(a->meta.peer), "a-sb");
	snprintf(sb->meta.peer, sizeof(sb->meta.peer), "a");
	sb->meta.role = ROLE_STANDBY;
	fx_vm(f, "c", 2, MIB, 10);
	fx_plan(f);
	mv = fx_move(f, "a");
	assert_non_null(mv);
	assert_int_equal(mv->to, 2);
	fx_free(f);
}

static void
test_region_pin(void **state)
{
	struct fx *f = fx_new(NIC, 2, 1, 0);
	struct ctl_vm *a;

	(void)state;
	a = fx_vm(f, "a", 0, MIB, 300);
	fx_vm(f, "b", 0, MIB, 600);	/* eu-1 at 90% */
	fx_vm(f, "c", 1, MIB, 650);	/* eu-2 full for either */
	a->meta.pin = PIN_REGION;
	f->m.vms[1]->meta.pin = PIN_REGION;	/* "b" */
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_int_equal(f->plan.still_hot, 1);
	if (!strstr(f->plan.hosts[0].blocked, "no host would stay under 70%"))
		fail_msg("blocked: '%s'", f->plan.hosts[0].blocked);
	/* The pre-check says so for policy moves; an operator may still move it. */
	{
		char why[256];
		struct ctl_limits op = f->p.lim;

		assert_int_equal(ctl_precheck(&f->m, a, 2, &f->p.lim, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "a is pinned to region eu"));
		op.use_cooldown = 0;
		assert_int_equal(ctl_precheck(&f->m, a, 2, &op, why, sizeof(why)), 0);
	}
	/* Unpinned, it may leave for us-1. */
	a->meta.pin = PIN_NONE;
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 1);
	assert_non_null(fx_move(f, "a"));
	assert_int_equal(fx_move(f, "a")->to, 2);
	fx_free(f);
}

static void
test_draining(void **state)
{
	struct fx *f = fx_new(NIC, 3, 0, 0);

	(void)state;
	fx_vm(f, "a", 0, MIB, 300);
	fx_vm(f, "z", 0, 2 * MIB, 600);
	fx_vm(f, "b", 2, MIB, 100);
	f->m.hosts[1].draining = 1;	/* the emptiest, but draining */
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 1);
	assert_int_equal(f->plan.moves[0].to, 2);
	/* A hot host that drains is left to its drain. */
	f->m.hosts[1].draining = 0;
	f->m.hosts[0].draining = 1;
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_int_equal(f->plan.hot, 1);
	assert_non_null(strstr(f->plan.hosts[0].blocked, "draining"));
	fx_free(f);
}

static void
test_cooldown_inflight_stale(void **state)
{
	struct fx *f = fx_new(NIC, 3, 0, 0);
	struct ctl_vm *a, *b;

	(void)state;
	a = fx_vm(f, "a", 0, MIB, 500);
	b = fx_vm(f, "b", 0, 2 * MIB, 400);	/* eu-1 at 90% */
	a->cooldown_until_ms = f->p.lim.now_ms + 1;	/* moved a moment ago */
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 1);
	assert_non_null(fx_move(f, "b"));
	/* b on its way to eu-3: eu-1 will be at 50%, nothing more to do. */
	b->migration = 7;
	b->mig_dst = 2;
	f->m.hosts[0].migrations = f->m.hosts[2].migrations = 1;
	fx_plan(f);
	assert_int_equal(f->plan.hot, 0);
	assert_int_equal(f->plan.nmoves, 0);
	assert_true(f->plan.hosts[2].load > 0.39);
	/* A host with stale telemetry has an unknown load: never a destination. */
	b->migration = 0;
	b->mig_dst = -1;
	f->m.hosts[0].migrations = f->m.hosts[2].migrations = 0;
	fx_vm(f, "quiet", 1, MIB, 0)->stale = 1;
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 1);
	assert_int_equal(f->plan.moves[0].to, 2);
	fx_free(f);
}

static void
test_concurrency_marks(void **state)
{
	struct fx *f = fx_new(NIC, 6, 0, 0);
	char name[16];

	(void)state;
	for (int h = 0; h < 3; h++) {
		snprintf(name, sizeof(name), "x%d", h);
		fx_vm(f, name, h, MIB, 500);
		snprintf(name, sizeof(name), "y%d", h);
		fx_vm(f, name, h, MIB, 400);
	}
	f->p.lim.max_concurrent = 2;
	f->p.lim.max_per_host = 1;
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 3);	/* the plan is whole... */
	assert_true(f->plan.moves[0].now);	/* ... but two start now */
	assert_true(f->plan.moves[1].now);
	assert_false(f->plan.moves[2].now);
	assert_non_null(strstr(f->plan.moves[2].wait, "2 migrations in flight, the limit is 2"));
	fx_free(f);
}

/* A skewed fleet: 40 hosts, 400 VMs, Zipf-like traffic, 5 hot hosts. */
static void
test_stability(void **state)
{
	struct fx *f = fx_new(NIC, 30, 10, 0);
	char name[16];
	unsigned seed = 12345;

	(void)state;
	for (int i = 0; i < 400; i++) {
		int h = i % 40;
		double bps = 20;

		seed = seed * 1103515245u + 12345u;
		if (h < 5)
			bps = 60 + 400.0 / (1 + i / 40) + (seed >> 16) % 20;
		snprintf(name, sizeof(name), "vm-%03d", i);
		fx_vm(f, name, h, (64 + (seed >> 20) % 4 * 64) * MIB, bps);
	}
	fx_plan(f);
	assert_true(f->plan.hot >= 3);
	assert_int_equal(f->plan.still_hot, 0);
	assert_int_equal(f->plan.nmoves, f->plan.lower_bound);
	fx_apply(f, 60000);
	fx_plan(f);
	assert_int_equal(f->plan.hot, 0);
	assert_int_equal(f->plan.nmoves, 0);
	for (int h = 0; h < 40; h++)
		assert_true(f->plan.hosts[h].load <= 0.80);
	fx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin_meta),
		cmocka_unit_test(test_nothing_hot),
		cmocka_unit_test(test_skewed_cheapest_cover),
		cmocka_unit_test(test_fewest_equals_lower_bound),
		cmocka_unit_test(test_hysteresis),
		cmocka_unit_test(test_blocked_per_host),
		cmocka_unit_test(test_anti_affinity),
		cmocka_unit_test(test_region_pin),
		cmocka_unit_test(test_draining),
		cmocka_unit_test(test_cooldown_inflight_stale),
		cmocka_unit_test(test_concurrency_marks),
		cmocka_unit_test(test_stability),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
