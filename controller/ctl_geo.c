/*
 * ctl_geo.c: the geographic planner (see ctl_geo.h).
 *
 * DESIGN. The unit is a primary VM: standbys follow their primaries'
 * failover, not the customers. Targets become counts first (shares by
 * largest remainder, so the plan is the same on every tick and the counts
 * of a 100% set add up to the fleet). Then, one move at a time, the region
 * furthest below its target takes the cheapest VM that can go there, from
 * a region above its target, else from one without a target (those absorb
 * the rest of the fleet, both ways). When no region is below its target,
 * the excess of the one furthest above goes to the region without a target
 * that has the fewest VMs. Cheapest means least memory (the migration
 * copies it, and QEMU's pause grows with it), then least traffic (fewer
 * clients see the pause).
 *
 * Hosts are chosen by the rebalancing planner's own choice on the same kind
 * of scratch view (ctl_plan_view.h): the same pre-check refusals, no host
 * with stale telemetry, and the destination stays under the rebalancing
 * target, so a geo move never makes a host hot for the rebalancer to undo.
 *
 * Cost: per move one pass over the candidates, each asking at most once
 * per region for a host (a region that had no room for a VM has none later
 * in the same plan: rooms only fill up), so O(V * R * H) in the worst case
 * and a few scans of the hosts in the common one.
 */
#include "controller/ctl_geo.h"
#include "controller/ctl_plan_view.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ctl_geo_target_parse(const char *s, struct ctl_geo_target *t, char *why, size_t whylen)
{
	const char *p = s;
	long v = 0;

	memset(t, 0, sizeof(*t));
	for (; *p >= '0' && *p <= '9' && v <= CTL_GEO_MAX_COUNT; p++)
		v = v * 10 + (*p - '0');
	if (p == s || (*p && strcmp(p, "%") != 0)) {
		snprintf(why, whylen, "bad target '%.40s': a count of VMs (\"3\") or a share of the "
		    "fleet in percent (\"40%%\")", s);
		return -1;
	}
	if (*p == '%' && v > 100) {
		snprintf(why, whylen, "bad target '%.40s': a share is 0%% to 100%%", s);
		return -1;
	}
	if (v > CTL_GEO_MAX_COUNT) {
		snprintf(why, whylen, "bad target '%.40s': at most %d VMs", s, CTL_GEO_MAX_COUNT);
		return -1;
	}
	t->kind = *p == '%' ? GEO_SHARE : GEO_COUNT;
	t->value = (int)v;
	return 0;
}

void
ctl_geo_target_str(const struct ctl_geo_target *t, char *buf, size_t len)
{
	if (t->kind == GEO_NONE)
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%d%s", t->value, t->kind == GEO_SHARE ? "%" : "");
}

void
ctl_geo_resolve(const struct ctl_geo_target *t, int n, int fleet, int *want)
{
	long long left = fleet, rem_rest = 0, last_rem = 100;
	int pct = 0, last = -1, rest_done;

	for (int r = 0; r < n; r++)
		if (t[r].kind == GEO_SHARE)
			pct += t[r].value;
	/* Whole parts first; the rest of the fleet is a bucket of its own. */
	for (int r = 0; r < n; r++) {
		want[r] = -1;
		if (t[r].kind == GEO_COUNT)
			want[r] = t[r].value;
		if (t[r].kind == GEO_SHARE) {
			want[r] = (int)((long long)fleet * t[r].value / 100);
			left -= want[r];
		}
	}
	if (pct > 100)
		return;
	left -= (long long)fleet * (100 - pct) / 100;
	rem_rest = (long long)fleet * (100 - pct) % 100;
	rest_done = pct == 100;
	/*
	 * One more VM each to the largest remainders, in the order (remainder
	 * down, region index up, the rest last), until the fleet is shared
	 * out: fewer units are left than buckets, so each gets one at most.
	 */
	while (left > 0) {
		int best = -1;
		long long best_rem = -1;

		for (int r = 0; r < n; r++) {
			long long rem = (long long)fleet * t[r].value % 100;

			if (t[r].kind != GEO_SHARE || rem < best_rem || (rem == best_rem && best >= 0))
				continue;
			if (rem > last_rem || (rem == last_rem && r <= last))
				continue;	/* served already */
			best = r;
			best_rem = rem;
		}
		left--;
		if (!rest_done && (best < 0 || rem_rest > best_rem)) {
			rest_done = 1;	/* the unit stays with the regions without a share */
			continue;
		}
		if (best < 0)
			break;
		want[best]++;
		last = best;
		last_rem = best_rem;
	}
}

/* A VM the plan may move: the cheapest of these go first. */
struct ctl_geo_cand {
	int idx;		/* into the scratch VM pointer array */
	int region;
	uint64_t mem;
	double bps;
	int done;
};

struct ctl_geo_ctx {
	const struct ctl_geo_params *p;
	struct ctl_plan_view v;
	struct ctl_plan *out;
	struct ctl_geo_cand *cand;
	int ncand, nr;
	unsigned char *nodest;	/* [cand * nr + region]: no host there, nor later */
	unsigned char *given_up;	/* [region]: blocked, not tried again */
	unsigned char *tried;	/* [region]: scratch of ctl_geo_step */
};

enum { SRC_ABOVE, SRC_FREE };	/* a region above its target; one without a target */

static int
ctl_geo_cand_cmp(const void *a, const void *b)
{
	const struct ctl_geo_cand *x = a, *y = b;

	if (x->mem != y->mem)
		return x->mem < y->mem ? -1 : 1;
	if (x->bps != y->bps)
		return x->bps < y->bps ? -1 : 1;
	return x->idx - y->idx;
}

static int
ctl_geo_region_of(const struct ctl_model *m, int host)
{
	return host >= 0 && host < m->nhosts ? m->hosts[host].region : -1;
}

static int
ctl_geo_movable(const struct ctl_vm *vm, const struct ctl_limits *lim)
{
	return vm->host >= 0 && vm->meta.role != ROLE_STANDBY && vm->meta.pin == PIN_NONE &&
	    !vm->migration && vm->cooldown_until_ms <= lim->now_ms &&
	    (vm->state == VM_RUNNING || vm->state == VM_SHUTOFF);
}

static int
ctl_geo_src_ok(const struct ctl_geo_ctx *g, int r, int kind)
{
	const struct ctl_plan_region *pr = &g->out->regions[r];

	return kind == SRC_ABOVE ? pr->want >= 0 && pr->vms_after > pr->want : pr->want < 0;
}

/*
 * The cheapest candidate that can go to region d, from a source region of
 * kind (or from region only when only >= 0): its index, with its host in
 * *host; -1 when none.
 */
static int
ctl_geo_pick(struct ctl_geo_ctx *g, int d, int kind, int only, int *host)
{
	for (int i = 0; i < g->ncand; i++) {
		struct ctl_geo_cand *c = &g->cand[i];
		unsigned char *nd = &g->nodest[(size_t)i * (size_t)g->nr + (size_t)d];
		int h;

		if (c->done || *nd || c->region == d)
			continue;
		if (only >= 0 ? c->region != only : !ctl_geo_src_ok(g, c->region, kind))
			continue;
		h = ctl_plan_dest(&g->v, g->v.s.vms[c->idx], c->bps, d);
		if (h < 0) {
			*nd = 1;
			continue;
		}
		*host = h;
		return i;
	}
	return -1;
}

/* "region us has 1 of target 2 VMs (40% of 5)" */
static void
ctl_geo_state(const struct ctl_geo_ctx *g, int r, char *buf, size_t len)
{
	const struct ctl_plan_region *pr = &g->out->regions[r];
	const struct ctl_geo_target *t = &g->p->targets[r];
	const char *name = g->v.m->conf->regions[r].name;

	if (pr->want < 0)
		snprintf(buf, len, "%s has %d VMs, no target", name, pr->vms_after);
	else if (t->kind == GEO_SHARE)
		snprintf(buf, len, "%s has %d of target %d VMs (%d%% of %d)", name, pr->vms_after,
		    pr->want, t->value, g->out->fleet);
	else
		snprintf(buf, len, "%s has %d of target %d VMs", name, pr->vms_after, pr->want);
}

/* Region r stays off its target: say why, on its cheapest candidate. */
static void
ctl_geo_blocked(struct ctl_geo_ctx *g, int r, int as_source, int to)
{
	struct ctl_plan_region *pr = &g->out->regions[r];
	char state[120], why[160] = "";
	int cand = -1;

	ctl_geo_state(g, r, state, sizeof(state));
	for (int kind = SRC_ABOVE; kind <= SRC_FREE && cand < 0 && !as_source; kind++)
		for (int i = 0; i < g->ncand && cand < 0; i++)
			if (!g->cand[i].done && g->cand[i].region != r &&
			    ctl_geo_src_ok(g, g->cand[i].region, kind))
				cand = i;
	for (int i = 0; i < g->ncand && cand < 0 && as_source; i++)
		if (!g->cand[i].done && g->cand[i].region == r)
			cand = i;
	if (!as_source && pr->hosts == 0)
		snprintf(why, sizeof(why), "no host in region %s", g->v.m->conf->regions[r].name);
	else if (as_source && to < 0)
		snprintf(why, sizeof(why), "no region below its target or without one takes VMs");
	else if (cand < 0)
		snprintf(why, sizeof(why), "no VM free to move %s (the others are pinned, "
		    "standbys, in flight or cooling down)", as_source ? "out" :
		    "from a region above its target or without one");
	else
		ctl_plan_dest_why(&g->v, g->v.s.vms[g->cand[cand].idx], g->cand[cand].bps,
		    as_source ? to : r, why, sizeof(why));
	snprintf(pr->blocked, sizeof(pr->blocked), "region %s; blocked: %s", state, why);
	g->given_up[r] = 1;
}

/* Record the move of candidate i to host h, why, and count it. */
static int
ctl_geo_move(struct ctl_geo_ctx *g, int i, int h, int needy)
{
	struct ctl_geo_cand *c = &g->cand[i];
	const struct ctl_vm *vm = g->v.s.vms[c->idx];
	int to = g->v.m->hosts[h].region, other = needy == to ? c->region : to;
	struct ctl_plan_move mv;
	char a[95], b[95];	/* both fit the reason */

	memset(&mv, 0, sizeof(mv));
	str_copy(mv.vm, vm->name, sizeof(mv.vm));
	mv.kind = MOVE_GEO;
	mv.from = vm->host;
	mv.to = h;
	mv.bps = c->bps;
	mv.mem_bytes = c->mem;
	ctl_geo_state(g, needy, a, sizeof(a));
	ctl_geo_state(g, other, b, sizeof(b));
	snprintf(mv.reason, sizeof(mv.reason), "region %s; %s", a, b);
	if (ctl_plan_place(&g->v, c->idx, &mv) < 0)
		return -1;
	c->done = 1;
	g->out->regions[c->region].vms_after--;
	g->out->regions[c->region].moves_out++;
	g->out->regions[to].vms_after++;
	g->out->regions[to].moves_in++;
	return 0;
}

/* One step: 1 when a move was made or a region given up, 0 when done. */
static int
ctl_geo_step(struct ctl_geo_ctx *g)
{
	struct ctl_plan_region *pr = g->out->regions;
	int d = -1, src = -1, i = -1, h = -1, gap = 0, tried_to = -1;

	/* The region furthest below its target takes the next VM... */
	for (int r = 0; r < g->nr; r++)
		if (!g->given_up[r] && pr[r].want >= 0 && pr[r].want - pr[r].vms_after > gap) {
			gap = pr[r].want - pr[r].vms_after;
			d = r;
		}
	if (d >= 0) {
		if ((i = ctl_geo_pick(g, d, SRC_ABOVE, -1, &h)) < 0)
			i = ctl_geo_pick(g, d, SRC_FREE, -1, &h);
		if (i < 0) {
			ctl_geo_blocked(g, d, 0, -1);
			return 1;
		}
		return ctl_geo_move(g, i, h, d) < 0 ? -1 : 1;
	}
	/* ... else the one furthest above gives to a region without a target,
	 * the emptiest first. */
	for (int r = 0; r < g->nr; r++)
		if (!g->given_up[r] && pr[r].want >= 0 && pr[r].vms_after - pr[r].want > gap) {
			gap = pr[r].vms_after - pr[r].want;
			src = r;
		}
	if (src < 0)
		return 0;
	memset(g->tried, 0, (size_t)g->nr);
	while (i < 0) {
		int f = -1;

		for (int r = 0; r < g->nr; r++)
			if (!g->tried[r] && pr[r].want < 0 && (f < 0 || pr[r].vms_after < pr[f].vms_after))
				f = r;
		if (f < 0)
			break;
		g->tried[f] = 1;
		if (tried_to < 0)
			tried_to = f;
		i = ctl_geo_pick(g, f, SRC_ABOVE, src, &h);
	}
	if (i < 0) {
		ctl_geo_blocked(g, src, 1, tried_to);
		return 1;
	}
	return ctl_geo_move(g, i, h, src) < 0 ? -1 : 1;
}

static int
ctl_geo_run(struct ctl_geo_ctx *g)
{
	const struct ctl_model *m = g->v.m;
	struct ctl_plan *out = g->out;
	int *want, rc;
	char why[120];

	g->nr = m->conf->nregions;
	out->nregions = g->nr;
	out->regions = calloc((size_t)g->nr + 1, sizeof(*out->regions));
	g->cand = calloc((size_t)m->nvms + 1, sizeof(*g->cand));
	g->given_up = calloc((size_t)g->nr + 1, 1);
	g->tried = calloc((size_t)g->nr + 1, 1);
	want = calloc((size_t)g->nr + 1, sizeof(*want));
	if (!out->regions || !g->cand || !g->given_up || !g->tried || !want) {
		free(want);
		return -1;
	}
	for (int h = 0; h < m->nhosts; h++)
		if (m->hosts[h].region >= 0)
			out->regions[m->hosts[h].region].hosts++;
	for (int i = 0; i < m->nvms; i++) {
		const struct ctl_vm *vm = m->vms[i];
		int r = ctl_geo_region_of(m, ctl_plan_where(m, vm));

		if (r < 0 || vm->meta.role == ROLE_STANDBY || vm->state == VM_GONE)
			continue;
		out->regions[r].vms++;
		out->fleet++;
		if (ctl_geo_movable(vm, &g->p->lim))
			g->cand[g->ncand++] = (struct ctl_geo_cand){ i, r, vm->mem_bytes,
			    ctl_plan_vm_bps(vm), 0 };
	}
	ctl_geo_resolve(g->p->targets, g->nr, out->fleet, want);
	for (int r = 0; r < g->nr; r++) {
		out->regions[r].want = want[r];
		out->regions[r].vms_after = out->regions[r].vms;
	}
	free(want);
	qsort(g->cand, (size_t)g->ncand, sizeof(*g->cand), ctl_geo_cand_cmp);
	g->nodest = calloc((size_t)g->ncand * (size_t)g->nr + 1, 1);
	if (!g->nodest)
		return -1;
	while ((rc = ctl_geo_step(g)) > 0)
		;
	if (rc < 0)
		return -1;
	if (g->p->in_flight > 0)
		snprintf(why, sizeof(why), "geo: %d move(s) in flight, the next start when they end",
		    g->p->in_flight);
	else
		snprintf(why, sizeof(why), "geo: %d move(s) at a time (geo_max_moves)",
		    g->p->max_moves);
	ctl_plan_mark_now(m, &g->p->lim, g->p->in_flight > 0 ? 0 : g->p->max_moves, why, out);
	return 0;
}

int
ctl_geo_make(const struct ctl_model *m, const struct ctl_geo_params *p,
    struct ctl_plan *out)
{
	struct ctl_geo_ctx g;
	int rc = -1;

	memset(&g, 0, sizeof(g));
	g.p = p;
	g.out = out;
	if (ctl_plan_view_init(&g.v, m, &p->lim, p->target, out) == 0)
		rc = ctl_geo_run(&g);
	ctl_plan_view_free(&g.v);
	free(g.cand);
	free(g.nodest);
	free(g.given_up);
	free(g.tried);
	if (rc < 0)
		ctl_plan_free(out);
	return rc;
}
