/* test_ctl_geo.c: the geographic planner (controller/ctl_geo.c): target
 * parsing, share rounding, count and share targets, pins, standbys, VMs in
 * flight and cooling down, the bound on moves started at once, regions at
 * their target, draining destinations, a region with no host, the excess
 * of a region going to one without a target, and stability. */
#include "tests/unit/fx_fleet.h"

static void
fx_target(struct fx *f, int r, const char *s)
{
	char why[200];

	if (!s) {
		memset(&f->t[r], 0, sizeof(f->t[r]));
		return;
	}
	assert_int_equal(ctl_geo_target_parse(s, &f->t[r], why, sizeof(why)), 0);
}

static void
fx_plan(struct fx *f)
{
	ctl_plan_free(&f->plan);
	ctl_model_tally(&f->m);
	assert_int_equal(ctl_geo_make(&f->m, &f->g, &f->plan), 0);
}

static void
test_target_parse(void **state)
{
	static const char *const bad[] = { "", "x", "3x", "-1", "+3", " 3", "3 ", "3 %", "%",
	    "40%%", "101%", "1000001", "99999999999999999999" };
	struct ctl_geo_target t;
	char why[200], s[16];

	(void)state;
	assert_int_equal(ctl_geo_target_parse("3", &t, why, sizeof(why)), 0);
	assert_int_equal(t.kind, GEO_COUNT);
	assert_int_equal(t.value, 3);
	ctl_geo_target_str(&t, s, sizeof(s));
	assert_string_equal(s, "3");
	assert_int_equal(ctl_geo_target_parse("40%", &t, why, sizeof(why)), 0);
	assert_int_equal(t.kind, GEO_SHARE);
	assert_int_equal(t.value, 40);
	ctl_geo_target_str(&t, s, sizeof(s));
	assert_string_equal(s, "40%");
	assert_int_equal(ctl_geo_target_parse("0", &t, why, sizeof(why)), 0);
	assert_int_equal(ctl_geo_target_parse("100%", &t, why, sizeof(why)), 0);
	assert_int_equal(ctl_geo_target_parse("0%", &t, why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (ctl_geo_target_parse(bad[i], &t, why, sizeof(why)) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_true(strncmp(why, "bad target '", 12) == 0);
	}
	ctl_geo_target_parse("x", &t, why, sizeof(why));
	assert_string_equal(why, "bad target 'x': a count of VMs (\"3\") or a share of the fleet "
	    "in percent (\"40%\")");
	ctl_geo_target_parse("101%", &t, why, sizeof(why));
	assert_string_equal(why, "bad target '101%': a share is 0% to 100%");
	memset(&t, 0, sizeof(t));
	ctl_geo_target_str(&t, s, sizeof(s));
	assert_string_equal(s, "");
}

static void
fx_resolve(const char *a, const char *b, const char *c, int fleet, int *want)
{
	struct ctl_geo_target t[FX_NREGIONS];
	const char *s[FX_NREGIONS] = { a, b, c };
	char why[200];

	memset(t, 0, sizeof(t));
	for (int r = 0; r < FX_NREGIONS; r++)
		if (s[r])
			assert_int_equal(ctl_geo_target_parse(s[r], &t[r], why, sizeof(why)), 0);
	ctl_geo_resolve(t, FX_NREGIONS, fleet, want);
}

static void
test_share_rounding(void **state)
{
	static const char *const sets[][FX_NREGIONS] = {
		{ "33%", "33%", "34%" }, { "50%", "25%", "25%" }, { "1%", "1%", "98%" },
		{ "33%", "33%", "33%" }, { "0%", "50%", "50%" }, { "100%", "0%", "0%" },
	};
	int w[FX_NREGIONS];

	(void)state;
	/* 10 VMs at 33/33/34: 3.3, 3.3, 3.4; the largest remainder takes the tenth. */
	fx_resolve("33%", "33%", "34%", 10, w);
	assert_int_equal(w[0], 3);
	assert_int_equal(w[1], 3);
	assert_int_equal(w[2], 4);
	/* A tie goes to the lower region index. */
	fx_resolve("50%", "50%", NULL, 5, w);
	assert_int_equal(w[0], 3);
	assert_int_equal(w[1], 2);
	assert_int_equal(w[2], -1);
	/* 40% of 7 = 2.8 beats the rest's 4.2: 3, and the rest keeps 4. */
	fx_resolve("40%", NULL, NULL, 7, w);
	assert_int_equal(w[0], 3);
	/* 30% of 7 = 2.1 against the rest's 4.9: the rest's remainder wins. */
	fx_resolve("30%", NULL, NULL, 7, w);
	assert_int_equal(w[0], 2);
	/* Counts stay counts, next to shares. */
	fx_resolve("2", "50%", NULL, 7, w);
	assert_int_equal(w[0], 2);
	assert_int_equal(w[1], 4);	/* 3.5 vs the rest's 3.5: regions before the rest */
	/* Any 100% set adds up to the fleet, whatever its size; 99% to at most it. */
	for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		for (int fleet = 0; fleet <= 60; fleet++) {
			int sum = 0;

			fx_resolve(sets[k][0], sets[k][1], sets[k][2], fleet, w);
			for (int r = 0; r < FX_NREGIONS; r++)
				sum += w[r];
			if (k == 3 ? sum > fleet : sum != fleet)
				fail_msg("%s/%s/%s of %d: %d, %d, %d", sets[k][0], sets[k][1], sets[k][2],
				    fleet, w[0], w[1], w[2]);
		}
	}
	/* The same input, the same answer: no floating point in between. */
	fx_resolve("33%", "33%", "33%", 100, w);
	assert_int_equal(w[0] + w[1] + w[2], 99);
	assert_int_equal(w[0], 33);
}

static void
test_count_target(void **state)
{
	struct fx *f = fx_new(1000, 2, 2, 0);
	const struct ctl_plan_move *mv;

	(void)state;
	fx_vm(f, "big", 0, 512 * MIB, 10);
	fx_vm(f, "small", 0, 128 * MIB, 50);
	fx_vm(f, "quiet", 1, 128 * MIB, 10);	/* as small, less traffic: cheapest */
	fx_vm(f, "mid", 1, 256 * MIB, 10);
	fx_target(f, 1, "2");
	fx_plan(f);
	assert_int_equal(f->plan.fleet, 4);
	assert_int_equal(f->plan.regions[0].vms, 4);
	assert_int_equal(f->plan.regions[1].want, 2);
	assert_int_equal(f->plan.regions[0].want, -1);
	assert_int_equal(f->plan.nmoves, 2);
	assert_string_equal(f->plan.moves[0].vm, "quiet");
	assert_string_equal(f->plan.moves[1].vm, "small");
	mv = fx_move(f, "quiet");
	assert_int_equal(mv->kind, MOVE_GEO);
	assert_int_equal(mv->from, 1);
	assert_true(mv->to == 2 || mv->to == 3);
	assert_string_equal(mv->reason, "region us has 0 of target 2 VMs; eu has 4 VMs, no target");
	assert_string_equal(f->plan.moves[1].reason,
	    "region us has 1 of target 2 VMs; eu has 3 VMs, no target");
	assert_int_equal(f->plan.regions[1].vms_after, 2);
	assert_int_equal(f->plan.regions[1].moves_in, 2);
	assert_int_equal(f->plan.regions[0].moves_out, 2);
	assert_string_equal(f->plan.regions[1].blocked, "");
	/* Done, the plan is empty: the regions are at their targets. */
	fx_apply(f, 0);
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_int_equal(f->plan.regions[1].vms, 2);
	fx_free(f);
}

static void
test_share_target(void **state)
{
	struct fx *f = fx_new(1000, 1, 1, 1);
	char name[16];

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "vm-%d", i);
		fx_vm(f, name, 0, (uint64_t)(i + 1) * 64 * MIB, 0);
	}
	/* eu 50%, us 50% of 5: 2.5 each, the tie to eu: 3 and 2; ap keeps none. */
	fx_target(f, 0, "50%");
	fx_target(f, 1, "50%");
	fx_plan(f);
	assert_int_equal(f->plan.regions[0].want, 3);
	assert_int_equal(f->plan.regions[1].want, 2);
	assert_int_equal(f->plan.nmoves, 2);
	assert_string_equal(f->plan.moves[0].vm, "vm-0");
	assert_string_equal(f->plan.moves[1].vm, "vm-1");
	assert_int_equal(f->plan.moves[0].to, 1);
	assert_string_equal(f->plan.moves[0].reason,
	    "region us has 0 of target 2 VMs (50% of 5); eu has 5 of target 3 VMs (50% of 5)");
	/* 100% in eu with VMs elsewhere: they come home, from us and from ap. */
	fx_apply(f, 0);
	fx_vm(f, "vm-ap", 2, 64 * MIB, 0);
	fx_target(f, 0, "100%");
	fx_target(f, 1, "0%");
	fx_plan(f);
	assert_int_equal(f->plan.fleet, 6);
	assert_int_equal(f->plan.regions[0].want, 6);
	assert_int_equal(f->plan.regions[1].want, 0);
	assert_int_equal(f->plan.nmoves, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(f->plan.moves[i].to, 0);
	/* us, above its target, gives before ap, which has none. */
	assert_int_equal(f->plan.moves[0].from, 1);
	assert_int_equal(f->plan.moves[1].from, 1);
	assert_string_equal(f->plan.moves[2].vm, "vm-ap");
	fx_free(f);
}

static void
test_pins_standbys_cooldown(void **state)
{
	struct fx *f = fx_new(1000, 1, 1, 0);
	struct ctl_vm *pin, *sb, *cool;

	(void)state;
	pin = fx_vm(f, "a-pinned", 0, 64 * MIB, 0);
	pin->meta.pin = PIN_REGION;
	sb = fx_vm(f, "b-standby", 0, 64 * MIB, 0);
	sb->state = VM_SHUTOFF;
	sb->meta.role = ROLE_STANDBY;
	cool = fx_vm(f, "c-cool", 0, 64 * MIB, 0);
	cool->cooldown_until_ms = f->g.lim.now_ms + 1;
	fx_vm(f, "d-free", 0, 512 * MIB, 0);
	fx_target(f, 1, "2");
	fx_plan(f);
	assert_int_equal(f->plan.fleet, 3);	/* the standby is not counted */
	assert_int_equal(f->plan.regions[0].vms, 3);
	assert_int_equal(f->plan.nmoves, 1);
	assert_string_equal(f->plan.moves[0].vm, "d-free");
	/* The second VM has nowhere to come from: the plan says why. */
	assert_string_equal(f->plan.regions[1].blocked, "region us has 1 of target 2 VMs; "
	    "blocked: no VM free to move from a region above its target or without one (the "
	    "others are pinned, standbys, in flight or cooling down)");
	fx_free(f);
}

static void
test_in_flight_and_bound(void **state)
{
	struct fx *f = fx_new(1000, 1, 2, 0);
	struct ctl_vm *a;

	(void)state;
	a = fx_vm(f, "a", 0, 64 * MIB, 0);
	fx_vm(f, "b", 0, 128 * MIB, 0);
	fx_vm(f, "c", 0, 256 * MIB, 0);
	fx_target(f, 1, "3");
	f->g.max_moves = 1;
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 3);
	assert_true(f->plan.moves[0].now);
	assert_false(f->plan.moves[1].now);
	assert_false(f->plan.moves[2].now);
	assert_string_equal(f->plan.moves[1].wait, "geo: 1 move(s) at a time (geo_max_moves)");
	/* Two at a time, within the concurrency limits (one per host). */
	f->g.max_moves = 2;
	f->g.lim.max_per_host = 1;
	fx_plan(f);
	assert_true(f->plan.moves[0].now);
	assert_false(f->plan.moves[1].now);	/* eu-1 is busy with the first */
	assert_non_null(strstr(f->plan.moves[1].wait, "eu-1 has 1 migration(s) in flight"));
	/* a on its way to us-1: it counts in us, and while it flies none starts. */
	f->g.lim.max_per_host = 100;
	a->migration = 5;
	a->mig_dst = 1;
	f->m.hosts[0].migrations = f->m.hosts[1].migrations = 1;
	f->g.in_flight = 1;
	fx_plan(f);
	assert_int_equal(f->plan.regions[1].vms, 1);
	assert_int_equal(f->plan.nmoves, 2);
	assert_null(fx_move(f, "a"));
	for (int i = 0; i < f->plan.nmoves; i++) {
		assert_false(f->plan.moves[i].now);
		assert_string_equal(f->plan.moves[i].wait,
		    "geo: 1 move(s) in flight, the next start when they end");
	}
	fx_free(f);
}

static void
test_at_target(void **state)
{
	struct fx *f = fx_new(1000, 1, 1, 1);

	(void)state;
	fx_vm(f, "a", 0, 64 * MIB, 0);
	fx_vm(f, "b", 1, 64 * MIB, 0);
	fx_vm(f, "c", 2, 64 * MIB, 0);
	fx_target(f, 0, "1");
	fx_target(f, 1, "33%");
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	for (int r = 0; r < FX_NREGIONS; r++) {
		assert_string_equal(f->plan.regions[r].blocked, "");
		assert_int_equal(f->plan.regions[r].vms_after, 1);
	}
	/* No targets at all: nothing to do either. */
	memset(f->t, 0, sizeof(f->t));
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	fx_free(f);
}

static void
test_draining_and_no_host(void **state)
{
	struct fx *f = fx_new(1000, 1, 2, 0);

	(void)state;
	fx_vm(f, "a", 0, 64 * MIB, 0);
	fx_vm(f, "b", 0, 64 * MIB, 0);
	fx_target(f, 1, "1");
	f->m.hosts[1].draining = 1;	/* us-1 */
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 1);
	assert_int_equal(f->plan.moves[0].to, 2);	/* us-2 */
	f->m.hosts[2].maintenance = 1;
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_string_equal(f->plan.regions[1].blocked,
	    "region us has 0 of target 1 VMs; blocked: a: destination us-1 is draining");
	/* A region with no host at all. */
	fx_target(f, 1, NULL);
	fx_target(f, 2, "1");
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_string_equal(f->plan.regions[2].blocked,
	    "region ap has 0 of target 1 VMs; blocked: no host in region ap");
	/* A host with room but too much traffic for one more VM. */
	f->m.hosts[1].draining = 0;
	f->m.hosts[2].maintenance = 0;
	fx_vm(f, "busy1", 1, 64 * MIB, 680);
	fx_vm(f, "busy2", 2, 64 * MIB, 690);
	ctl_vm_find(&f->m, "a")->up.per_s = 50;
	ctl_vm_find(&f->m, "b")->up.per_s = 50;
	fx_target(f, 2, NULL);
	fx_target(f, 1, "3");
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_string_equal(f->plan.regions[1].blocked,
	    "region us has 2 of target 3 VMs; blocked: a: no host in us would stay under 70% with it");
	fx_free(f);
}

static void
test_excess_to_free_region(void **state)
{
	struct fx *f = fx_new(1000, 1, 1, 1);
	char name[16];

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		fx_vm(f, name, 0, 64 * MIB, 0);
	}
	fx_vm(f, "u0", 1, 64 * MIB, 0);
	fx_target(f, 0, "1");
	fx_plan(f);
	/* Three leave eu, the emptiest region without a target first. */
	assert_int_equal(f->plan.nmoves, 3);
	assert_int_equal(f->plan.moves[0].to, 2);	/* ap had 0 */
	assert_string_equal(f->plan.moves[0].reason,
	    "region eu has 4 of target 1 VMs; ap has 0 VMs, no target");
	assert_int_equal(f->plan.regions[0].vms_after, 1);
	assert_int_equal(f->plan.regions[1].vms_after + f->plan.regions[2].vms_after, 4);
	assert_true(abs(f->plan.regions[1].vms_after - f->plan.regions[2].vms_after) <= 1);
	/* Every region targeted, too many VMs for the counts: eu cannot shed. */
	fx_target(f, 1, "1");
	fx_target(f, 2, "0");
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	assert_string_equal(f->plan.regions[0].blocked, "region eu has 4 of target 1 VMs; "
	    "blocked: no region below its target or without one takes VMs");
	fx_free(f);
}

/* 3 regions x 10 hosts, 300 VMs all in eu; shares 20/30/50: stable after. */
static void
test_stability(void **state)
{
	struct fx *f = fx_new(1000, 10, 10, 10);
	char name[16];

	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "vm-%03d", i);
		fx_vm(f, name, i % 10, (uint64_t)(64 + i % 4 * 64) * MIB, i % 7);
	}
	fx_target(f, 0, "20%");
	fx_target(f, 1, "30%");
	fx_target(f, 2, "50%");
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 240);
	assert_int_equal(f->plan.regions[0].vms_after, 60);
	assert_int_equal(f->plan.regions[1].vms_after, 90);
	assert_int_equal(f->plan.regions[2].vms_after, 150);
	/* The cheapest went: the 60 that stay are all of the largest size. */
	{
		int large = 0;

		for (int i = 0; i < f->plan.nmoves; i++)
			large += f->plan.moves[i].mem_bytes == 256 * MIB;
		assert_int_equal(large, 75 - 60);
	}
	fx_apply(f, 0);
	fx_plan(f);
	assert_int_equal(f->plan.nmoves, 0);
	fx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_parse),
		cmocka_unit_test(test_share_rounding),
		cmocka_unit_test(test_count_target),
		cmocka_unit_test(test_share_target),
		cmocka_unit_test(test_pins_standbys_cooldown),
		cmocka_unit_test(test_in_flight_and_bound),
		cmocka_unit_test(test_at_target),
		cmocka_unit_test(test_draining_and_no_host),
		cmocka_unit_test(test_excess_to_free_region),
		cmocka_unit_test(test_stability),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
