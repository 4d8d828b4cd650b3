/* test_ctl_handover.c: the handover plan, who announces an IP and the
 * orders that make it so, for the cases the flows meet. */
#include "tests/unit/fx_fleet.h"
#include "controller/ctl_handover.h"

#define IP "10.1.0.100/24"	/* eu's prefix: eu is home */

/* eu-1, eu-2, us-1, us-2; eu has an edge, hosts have addresses 10.1.R.(11+i). */
static struct fx *
ho_fleet(void)
{
	struct fx *f = fx_new(1e9, 2, 2, 0);

	for (int h = 0; h < f->conf.nhosts; h++) {
		snprintf(f->hosts[h].address, sizeof(f->hosts[h].address), "10.1.%d.%d",
		    f->m.hosts[h].region, 11 + h % 2);
		snprintf(f->hosts[h].bridge, sizeof(f->hosts[h].bridge), "br-%.20s", f->hosts[h].name);
	}
	snprintf(f->regions[0].edge, sizeof(f->regions[0].edge), "edge-eu");
	return f;
}

static struct ctl_vm *
ho_vm(struct fx *f, const char *name, int host, enum ctl_role role, const char *ip)
{
	struct ctl_vm *vm = fx_vm(f, name, host, 128 * MIB, 0);

	vm->meta.role = role;
	snprintf(vm->meta.ips[0], CTL_IP_MAX, "%s", ip);
	vm->meta.nips = 1;
	snprintf(vm->mac, sizeof(vm->mac), "52:54:00:00:00:%02x", (unsigned)(strlen(name) * 7 + (unsigned)host));
	return vm;
}

static int
ho_plan(struct fx *f, const struct ctl_vm *vm, int at, const int *held, int nheld,
    const struct ctl_vm *promote, struct ctl_ho_plan *p)
{
	struct ctl_ho_in in = { .vm = vm, .at = at, .held = held, .nheld = nheld, .promote = promote };

	return ctl_ho_plan(&f->m, &in, p);
}

/* The orders as "op@host(vm)" joined by spaces, edge orders "edge-op@via". */
static const char *
ho_str(struct fx *f, const struct ctl_ho_plan *p)
{
	static char buf[1024];
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < p->n; i++) {
		const struct ctl_ho_order *o = &p->o[i];
		int edge = o->op == HO_EDGE_POINT || o->op == HO_EDGE_UNPOINT || o->op == HO_EDGE_CLEAR;

		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s%s@%s(%s)", n ? " " : "",
		    edge ? "edge-" : "", ctl_ho_op_name(o->op), f->m.hosts[o->host].conf->name,
		    o->vm->name);
	}
	return buf;
}

/* A home primary and its hot standby: whichever the caller starts from,
 * the primary announces and the standby's host only withdraws. */
static void
t_home_primary_hot_standby(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *p = ho_vm(f, "px-4", 0, ROLE_PRIMARY, IP);
	struct ctl_vm *s = ho_vm(f, "px-4-s1", 1, ROLE_STANDBY, IP);
	struct ctl_ho_plan plan;

	(void)state;
	assert_int_equal(ho_plan(f, s, -1, NULL, 0, NULL, &plan), 2);
	assert_ptr_equal(plan.owner, p);
	assert_string_equal(ho_str(f, &plan), "announce@eu-1(px-4) withdraw@eu-2(px-4-s1)");
	assert_int_equal(plan.ngroup, 2);
	assert_int_equal(ho_plan(f, p, -1, NULL, 0, NULL, &plan), 2);
	assert_string_equal(ho_str(f, &plan), "announce@eu-1(px-4) withdraw@eu-2(px-4-s1)");
	fx_free(f);
}

/* The scenario 2: the primary away in us-1, its standby at home on
 * eu-2. The edge points at us-1 and nothing withdraws it; the standby is
 * never announced. */
static void
t_away_primary_home_standby(void **state)
{
	struct fx *f = ho_fleet();
	int held[] = { 0 };
	struct ctl_ho_plan plan;

	(void)state;
	ho_vm(f, "px-4", 2, ROLE_PRIMARY, IP);
	ho_vm(f, "px-4-s1", 1, ROLE_STANDBY, IP);
	ho_plan(f, ctl_vm_find(&f->m, "px-4-s1"), -1, held, 1, NULL, &plan);
	assert_string_equal(ho_str(f, &plan),
	    "announce@us-1(px-4) edge-announce@us-1(px-4) withdraw@eu-1(px-4) "
	    "withdraw@eu-2(px-4-s1)");
	assert_int_equal(plan.edge, 1);
	fx_free(f);
}

/* A standby away from home: the edge drops its route via the standby's
 * host (that route only), the home primary announces. */
static void
t_home_primary_away_standby(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_ho_plan plan;

	(void)state;
	ho_vm(f, "px-1", 0, ROLE_PRIMARY, IP);
	ho_vm(f, "px-1-s1", 3, ROLE_STANDBY, IP);
	ho_plan(f, ctl_vm_find(&f->m, "px-1"), -1, NULL, 0, NULL, &plan);
	assert_string_equal(ho_str(f, &plan),
	    "announce@eu-1(px-1) edge-withdraw@us-2(px-1) withdraw@us-2(px-1-s1)");
	fx_free(f);
}

/* A primary a failover replaced, still running (fenced) where its host came
 * back: fenced again, before the new primary's announcement. */
static void
t_replaced_primary(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *s = ho_vm(f, "px-2-s1", 1, ROLE_PRIMARY, IP);
	struct ctl_ho_plan plan;

	(void)state;
	ho_vm(f, "px-2", 0, ROLE_PRIMARY, IP);
	snprintf(s->meta.replaces, sizeof(s->meta.replaces), "px-2");
	assert_true(ctl_ho_replaced(&f->m, ctl_vm_find(&f->m, "px-2")));
	assert_false(ctl_ho_replaced(&f->m, s));
	ho_plan(f, ctl_vm_find(&f->m, "px-2"), -1, NULL, 0, NULL, &plan);
	assert_ptr_equal(plan.owner, s);
	assert_int_equal(plan.ndoubled, 0);
	assert_string_equal(ho_str(f, &plan),
	    "fence@eu-1(px-2) announce@eu-2(px-2-s1) withdraw@eu-1(px-2)");
	fx_free(f);
}

/* Two primaries under other names claim one IP: the bound one wins, however
 * they sort, and the other is fenced first. */
static void
t_doubled_bound_wins(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *a = ho_vm(f, "px-a", 0, ROLE_PRIMARY, IP);
	struct ctl_vm *z = ho_vm(f, "px-z", 1, ROLE_PRIMARY, IP);
	struct ctl_ho_plan plan;

	(void)state;
	z->bound = 1;
	ho_plan(f, a, -1, NULL, 0, NULL, &plan);
	assert_ptr_equal(plan.owner, z);
	assert_int_equal(plan.ndoubled, 1);
	assert_string_equal(ho_str(f, &plan),
	    "fence@eu-1(px-a) announce@eu-2(px-z) withdraw@eu-1(px-a)");
	/* Both bound: the one at home wins over the one away. */
	a->bound = 1;
	a->host = 2;
	ho_plan(f, a, -1, NULL, 0, NULL, &plan);
	assert_ptr_equal(plan.owner, z);
	assert_string_equal(ho_str(f, &plan),
	    "fence@us-1(px-a) announce@eu-2(px-z) edge-withdraw@us-1(px-z) withdraw@us-1(px-a)");
	fx_free(f);
}

/* A cutover (running at the destination, the source held) and its cut-back. */
static void
t_cutover_and_cutback(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *p = ho_vm(f, "px-3", 0, ROLE_PRIMARY, IP);
	int src[] = { 0 }, dst[] = { 2 };
	struct ctl_ho_plan plan;

	(void)state;
	ho_plan(f, p, 2, src, 1, NULL, &plan);
	assert_int_equal(plan.at, 2);
	assert_string_equal(ho_str(f, &plan),
	    "announce@us-1(px-3) edge-announce@us-1(px-3) withdraw@eu-1(px-3)");
	/* The last listing saw it paused (the end of the copy): the caller's
	 * word that it runs at the destination counts. */
	p->state = VM_PAUSED;
	assert_int_equal(ho_plan(f, p, 2, src, 1, NULL, &plan), 3);
	p->state = VM_RUNNING;
	ho_plan(f, p, 0, dst, 1, NULL, &plan);
	assert_string_equal(ho_str(f, &plan),
	    "announce@eu-1(px-3) edge-withdraw@us-1(px-3) withdraw@us-1(px-3)");
	fx_free(f);
}

/* A reconcile cannot know where an earlier leader pointed the edge's
 * route: a home owner's plan clears it whatever it is; away, it points. */
static void
t_reconcile_sweep(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *p = ho_vm(f, "px-8", 0, ROLE_PRIMARY, IP);
	struct ctl_ho_in in = { .vm = p, .at = 0, .sweep = 1 };
	struct ctl_ho_plan plan;
	struct ctl_ho_dest d;

	(void)state;
	ho_vm(f, "px-8-s1", 1, ROLE_STANDBY, IP);
	ctl_ho_plan(&f->m, &in, &plan);
	assert_string_equal(ho_str(f, &plan),
	    "announce@eu-1(px-8) edge-unroute@eu-1(px-8) withdraw@eu-2(px-8-s1)");
	ctl_ho_dest(&f->m, &plan, &plan.o[1], &d);
	assert_string_equal(d.agent, "edge-eu");
	assert_null(d.via);
	in.at = 2;
	ctl_ho_plan(&f->m, &in, &plan);
	assert_string_equal(ho_str(f, &plan),
	    "announce@us-1(px-8) edge-announce@us-1(px-8) withdraw@eu-2(px-8-s1)");
	fx_free(f);
}

/* A standby being moved owns nothing: no orders of its own. */
static void
t_standby_moving(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *p = ho_vm(f, "px-5", 0, ROLE_PRIMARY, IP);
	struct ctl_vm *s = ho_vm(f, "px-5-s1", 1, ROLE_STANDBY, IP);
	int src[] = { 1 };
	struct ctl_ho_plan plan;

	(void)state;
	ho_plan(f, s, 3, src, 1, NULL, &plan);
	assert_ptr_equal(plan.owner, p);
	fx_free(f);
}

/* A failover: the standby promoted at its host, the dead host's primary
 * left to its own fence (not running as far as the model knows). */
static void
t_promotion(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *p = ho_vm(f, "px-6", 0, ROLE_PRIMARY, IP);
	struct ctl_vm *s = ho_vm(f, "px-6-s1", 2, ROLE_STANDBY, IP);
	int from[] = { 0 };
	struct ctl_ho_plan plan;

	(void)state;
	p->state = VM_UNKNOWN;
	p->failover = s->failover = 1;
	ho_plan(f, s, 2, from, 1, s, &plan);
	assert_ptr_equal(plan.owner, s);
	assert_string_equal(ho_str(f, &plan),
	    "announce@us-1(px-6-s1) edge-announce@us-1(px-6-s1) withdraw@eu-1(px-6-s1)");
	assert_int_equal(plan.o[0].part, HO_PART_OWNER);
	assert_int_equal(plan.o[1].part, HO_PART_EDGE);
	assert_int_equal(plan.o[2].part, HO_PART_CLEAN);
	/* Without the promotion, nobody owns the IPs while it runs. */
	assert_int_equal(ho_plan(f, s, -1, NULL, 0, NULL, &plan), 0);
	assert_null(plan.owner);
	assert_non_null(strstr(plan.why, "promoting"));
	fx_free(f);
}

/* Where each order goes: host orders name the bridge, edge orders the via. */
static void
t_dest(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *p = ho_vm(f, "px-7", 3, ROLE_PRIMARY, IP);
	struct ctl_ho_plan plan;
	struct ctl_ho_dest d;

	(void)state;
	assert_int_equal(ho_plan(f, p, -1, NULL, 0, NULL, &plan), 2);
	ctl_ho_dest(&f->m, &plan, &plan.o[0], &d);
	assert_string_equal(d.agent, "us-2");
	assert_string_equal(d.dev, "br-us-2");
	assert_null(d.via);
	ctl_ho_dest(&f->m, &plan, &plan.o[1], &d);
	assert_string_equal(d.agent, "edge-eu");
	assert_null(d.dev);
	assert_string_equal(d.via, "10.1.1.12");
	assert_string_equal(ctl_ho_op_name(plan.o[1].op), "announce");
	fx_free(f);
}

/* Group membership: any common address, prefixes aside; no IPs, no plan. */
static void
t_shares_and_no_ips(void **state)
{
	struct fx *f = ho_fleet();
	struct ctl_vm *a = ho_vm(f, "a", 0, ROLE_PRIMARY, "10.1.0.5/24");
	struct ctl_vm *b = ho_vm(f, "b", 1, ROLE_PRIMARY, "10.1.0.50/24");
	struct ctl_vm *c = ho_vm(f, "c", 1, ROLE_PRIMARY, "10.1.0.5/32");
	struct ctl_ho_plan plan;

	(void)state;
	assert_false(ctl_ho_shares(a, b));
	assert_true(ctl_ho_shares(a, c));
	snprintf(b->meta.ips[1], CTL_IP_MAX, "10.1.0.5/24");
	b->meta.nips = 2;
	assert_true(ctl_ho_shares(a, b));
	a->meta.nips = 0;
	assert_int_equal(ho_plan(f, a, -1, NULL, 0, NULL, &plan), 0);
	assert_non_null(strstr(plan.why, "no service IPs"));
	fx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_home_primary_hot_standby),
		cmocka_unit_test(t_away_primary_home_standby),
		cmocka_unit_test(t_home_primary_away_standby),
		cmocka_unit_test(t_replaced_primary),
		cmocka_unit_test(t_doubled_bound_wins),
		cmocka_unit_test(t_cutover_and_cutback),
		cmocka_unit_test(t_standby_moving),
		cmocka_unit_test(t_reconcile_sweep),
		cmocka_unit_test(t_promotion),
		cmocka_unit_test(t_dest),
		cmocka_unit_test(t_shares_and_no_ips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
