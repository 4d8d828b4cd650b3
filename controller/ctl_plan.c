/*
 * ctl_plan.c: the rebalancing planner (see ctl_plan.h).
 *
 * DESIGN. A host is hot when its proxies' traffic is above the high-water
 * share of its NIC. Every move takes one VM off one host and moves into a
 * hot host never help, so the fewest moves is at least, summed over the hot
 * hosts, the fewest of its VMs whose traffic covers its excess: the lower
 * bound. Taking VMs largest traffic first reaches that count whenever
 * destinations exist; the last VM of a host is the cheapest one that alone
 * covers what is left, so a host sheds no more traffic than it must.
 *
 * Destinations go through ctl_precheck, so the planner refuses exactly
 * what the executor would; among them the fullest that stays under the
 * target wins (best fit). The planner works on a scratch view of the
 * model: a copy of the host array (loads, memory and vCPUs updated move by
 * move) and a copy of the sorted VM pointer array in which a planned VM
 * points at a private copy placed on its destination. Anti-affinity with a
 * peer moved earlier in the same plan is then checked where the peer will
 * be. The model itself is never written.
 *
 * Cost: O(H log H + V log V) to set up, and per move one scan of the hosts
 * for a destination, so a plan over 10,000 VMs on 1,000 hosts takes a few
 * milliseconds (tests/bench/plan.c).
 */
#include "controller/ctl_plan.h"
#include "controller/ctl_plan_view.h"
#include "common/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A VM that could leave a hot host. */
struct ctl_plan_cand {
	int idx;		/* into the VM pointer array */
	double bps;
	uint64_t mem;
	int done;		/* moved, or has no destination */
};

struct ctl_plan_ctx {
	const struct ctl_plan_params *p;
	struct ctl_plan_view v;
	struct ctl_plan *out;
};

double
ctl_plan_vm_bps(const struct ctl_vm *vm)
{
	if (vm->stale || vm->state != VM_RUNNING)
		return 0;
	return vm->up.per_s + vm->down.per_s;
}

int
ctl_plan_where(const struct ctl_model *m, const struct ctl_vm *vm)
{
	if (vm->migration && vm->mig_dst >= 0 && vm->mig_dst < m->nhosts)
		return vm->mig_dst;
	return vm->host;
}

double
ctl_plan_nic(const struct ctl_host *h)
{
	return h->conf->nic > 0 ? (double)h->conf->nic : 1;
}

/* Largest traffic first; ties: smaller memory, then the array order. */
static int
ctl_plan_cand_cmp(const void *a, const void *b)
{
	const struct ctl_plan_cand *x = a, *y = b;

	if (x->bps != y->bps)
		return x->bps > y->bps ? -1 : 1;
	if (x->mem != y->mem)
		return x->mem < y->mem ? -1 : 1;
	return x->idx - y->idx;
}

/*
 * Best fit (see ctl_plan_view.h): the highest load after the move that
 * stays under the target keeps large rooms free for large VMs; on a skewed
 * fleet this reaches the bound where the lowest load after the move took
 * 26% more moves (tests/bench/plan.c).
 */
int
ctl_plan_dest(struct ctl_plan_view *v, const struct ctl_vm *vm, double bps, int region)
{
	const struct ctl_model *s = &v->s;
	int src = vm->host, best = -1, best_same = 0;
	double best_after = 0;
	char why[256];

	for (int d = 0; d < s->nhosts; d++) {
		const struct ctl_host *h = &s->hosts[d];
		double after = (v->out->hosts[d].bps_after + bps) / ctl_plan_nic(h);
		int same = region >= 0 || h->region == s->hosts[src].region;

		if (d == src || v->stale_host[d] || after > v->target ||
		    (region >= 0 && h->region != region))
			continue;
		if (best >= 0 && (best_same > same || (best_same == same && after <= best_after)))
			continue;
		if (ctl_precheck(s, vm, d, &v->lim, why, sizeof(why)) < 0)
			continue;
		best = d;
		best_same = same;
		best_after = after;
	}
	return best;
}

/* The first refusal, else the load: what an operator can act on. */
void
ctl_plan_dest_why(struct ctl_plan_view *v, const struct ctl_vm *vm, double bps, int region,
    char *why, size_t whylen)
{
	const struct ctl_model *s = &v->s;
	char first[200] = "", stale[CTL_NAME_MAX] = "", w[200];
	int any = 0, hosts = 0;

	for (int d = 0; d < s->nhosts; d++) {
		const struct ctl_host *h = &s->hosts[d];

		if (d == vm->host || (region >= 0 && h->region != region))
			continue;
		hosts++;
		if (ctl_precheck(s, vm, d, &v->lim, w, sizeof(w)) < 0) {
			if (!first[0])
				str_copy(first, w, sizeof(first));
		} else if (v->stale_host[d]) {
			if (!stale[0])
				str_copy(stale, h->conf->name, sizeof(stale));
		} else if ((v->out->hosts[d].bps_after + bps) / ctl_plan_nic(h) > v->target) {
			any = 1;
		}
	}
	if (hosts == 0)
		snprintf(why, whylen, "%s: no other host%s%s", vm->name, region >= 0 ? " in region " :
		    "", region >= 0 ? v->m->conf->regions[region].name : "");
	else if (any)
		snprintf(why, whylen, "%s: no host%s%s would stay under %.0f%% with it", vm->name,
		    region >= 0 ? " in " : "", region >= 0 ? v->m->conf->regions[region].name : "",
		    100 * v->target);
	else if (stale[0])
		snprintf(why, whylen, "%s: %s has stale telemetry (its load is unknown)", vm->name,
		    stale);
	else
		snprintf(why, whylen, "%s: %s", vm->name, first[0] ? first : "no host takes it");
}

static int
ctl_plan_push(struct ctl_plan *out, const struct ctl_plan_move *mv)
{
	if (out->nmoves == out->cap) {
		int cap = out->cap ? out->cap * 2 : 16;
		struct ctl_plan_move *n = realloc(out->moves, (size_t)cap * sizeof(*n));

		if (!n)
			return -1;
		out->moves = n;
		out->cap = cap;
	}
	out->moves[out->nmoves++] = *mv;
	return 0;
}

int
ctl_plan_place(struct ctl_plan_view *v, int idx, const struct ctl_plan_move *mv)
{
	struct ctl_model *s = &v->s;
	const struct ctl_vm *vm = s->vms[idx];
	struct ctl_plan_host *ph = v->out->hosts;
	struct ctl_host *hs = &s->hosts[mv->from], *hd = &s->hosts[mv->to];
	struct ctl_vm *copy = malloc(sizeof(*copy));

	if (!copy || ctl_plan_push(v->out, mv) < 0) {
		free(copy);
		return -1;
	}
	*copy = *vm;
	copy->host = mv->to;
	v->copies[v->ncopies++] = copy;
	s->vms[idx] = copy;
	ph[mv->from].bps_after -= mv->bps;
	ph[mv->to].bps_after += mv->bps;
	ph[mv->from].moves++;
	hs->nvms--;
	hs->mem_used -= hs->mem_used >= vm->mem_bytes ? vm->mem_bytes : hs->mem_used;
	hs->vcpus_used -= vm->vcpus;
	hd->nvms++;
	hd->mem_used += vm->mem_bytes;
	hd->vcpus_used += vm->vcpus;
	return 0;
}

/* Record the move of the VM at idx to d, with the figures that justify it. */
static int
ctl_plan_apply(struct ctl_plan_ctx *c, int idx, int d, double bps, double hot_load)
{
	const struct ctl_vm *vm = c->v.s.vms[idx];
	const struct ctl_host *hs = &c->v.s.hosts[vm->host], *hd = &c->v.s.hosts[d];
	double to_before = c->out->hosts[d].bps_after / ctl_plan_nic(hd);
	struct ctl_plan_move mv;

	memset(&mv, 0, sizeof(mv));
	str_copy(mv.vm, vm->name, sizeof(mv.vm));
	mv.kind = MOVE_REBALANCE;
	mv.from = vm->host;
	mv.to = d;
	mv.bps = bps;
	mv.mem_bytes = vm->mem_bytes;
	snprintf(mv.reason, sizeof(mv.reason),
	    "%s at %.0f%% of NIC > %.0f%%: %.2f MB/s to %s (%.0f%% -> %.0f%%, target %.0f%%)",
	    hs->conf->name, 100 * hot_load, 100 * c->p->high, bps / 1e6, hd->conf->name,
	    100 * to_before, 100 * (c->out->hosts[d].bps_after + bps) / ctl_plan_nic(hd),
	    100 * c->p->target);
	return ctl_plan_place(&c->v, idx, &mv);
}

/* Shed the excess of hot host h; 0, or -1 on allocation failure. */
static int
ctl_plan_host_shed(struct ctl_plan_ctx *c, int h, struct ctl_plan_cand *cand, int n)
{
	struct ctl_plan_host *ph = &c->out->hosts[h];
	double nic = ctl_plan_nic(&c->v.s.hosts[h]), hot_load = ph->load;
	double need = ph->bps_after - c->p->high * nic, sum = 0;

	qsort(cand, (size_t)n, sizeof(*cand), ctl_plan_cand_cmp);
	/* Lower bound: the fewest VMs whose traffic covers the excess. */
	for (int i = 0; i < n && sum < need; i++) {
		sum += cand[i].bps;
		ph->min_moves++;
	}
	while (need > 0) {
		int pick = -1, d = -1;

		/* The cheapest VM that alone covers what is left... */
		for (int i = 0; i < n; i++) {
			struct ctl_plan_cand *x = &cand[i];
			int xd;

			if (x->done || x->bps < need)
				continue;
			if (pick >= 0 && (x->mem > cand[pick].mem ||
			    (x->mem == cand[pick].mem && x->bps >= cand[pick].bps)))
				continue;
			xd = ctl_plan_dest(&c->v, c->v.s.vms[x->idx], x->bps, -1);
			if (xd < 0) {
				x->done = 1;	/* destinations only fill up: none later either */
			} else {
				pick = i;
				d = xd;
			}
		}
		/* ... else the largest one that has somewhere to go. */
		for (int i = 0; pick < 0 && i < n; i++) {
			if (cand[i].done)
				continue;
			d = ctl_plan_dest(&c->v, c->v.s.vms[cand[i].idx], cand[i].bps, -1);
			if (d >= 0)
				pick = i;
			else
				cand[i].done = 1;
		}
		if (pick < 0)
			break;
		cand[pick].done = 1;
		if (ctl_plan_apply(c, cand[pick].idx, d, cand[pick].bps, hot_load) < 0)
			return -1;
		need -= cand[pick].bps;
	}
	return 0;
}

/* Why host h keeps its excess, told on its first unmoved candidate. */
static void
ctl_plan_blocked(struct ctl_plan_ctx *c, int h, struct ctl_plan_cand *cand, int n)
{
	struct ctl_plan_host *ph = &c->out->hosts[h];

	for (int i = 0; i < n; i++) {
		const struct ctl_vm *vm = c->v.s.vms[cand[i].idx];

		if (vm->host != h)
			continue;	/* moved by this plan */
		ctl_plan_dest_why(&c->v, vm, cand[i].bps, -1, ph->blocked, sizeof(ph->blocked));
		return;
	}
	snprintf(ph->blocked, sizeof(ph->blocked), "no VM with fresh traffic left to move");
}

void
ctl_plan_mark_now(const struct ctl_model *m, const struct ctl_limits *lim, int budget,
    const char *budget_why, struct ctl_plan *out)
{
	int *busy = calloc(m->nhosts > 0 ? (size_t)m->nhosts : 1, sizeof(*busy));
	int running = lim->in_flight;

	for (int h = 0; busy && h < m->nhosts; h++)
		busy[h] = m->hosts[h].migrations;
	for (int i = 0; i < out->nmoves; i++) {
		struct ctl_plan_move *mv = &out->moves[i];

		if (!busy) {
			snprintf(mv->wait, sizeof(mv->wait), "out of memory");
		} else if (budget <= 0) {
			str_copy(mv->wait, budget_why, sizeof(mv->wait));
		} else if (running >= lim->max_concurrent) {
			snprintf(mv->wait, sizeof(mv->wait), "%d migrations in flight, the limit is %d",
			    running, lim->max_concurrent);
		} else if (busy[mv->from] >= lim->max_per_host || busy[mv->to] >= lim->max_per_host) {
			int h = busy[mv->from] >= lim->max_per_host ? mv->from : mv->to;

			snprintf(mv->wait, sizeof(mv->wait), "%s has %d migration(s) in flight (limit %d)",
			    m->hosts[h].conf->name, busy[h], lim->max_per_host);
		} else {
			mv->now = 1;
			budget--;
			running++;
			busy[mv->from]++;
			busy[mv->to]++;
		}
	}
	free(busy);
}

/* A hot host and its candidates' slice of the candidate array. */
struct ctl_plan_hot {
	int h;
	double load;
	int first, n;
};

/* Highest load first, then host index. */
static int
ctl_plan_hot_cmp(const void *a, const void *b)
{
	const struct ctl_plan_hot *x = a, *y = b;

	if (x->load != y->load)
		return x->load > y->load ? -1 : 1;
	return x->h - y->h;
}

static int
ctl_plan_run(struct ctl_plan_ctx *c)
{
	const struct ctl_model *m = c->v.m;
	struct ctl_plan *out = c->out;
	struct ctl_plan_hot *hot = NULL;
	struct ctl_plan_cand *cand = NULL;
	int *slot = NULL, nhot = 0, ncand = 0, rc = -1;

	slot = calloc((size_t)m->nhosts + 1, sizeof(*slot));
	hot = calloc((size_t)m->nhosts + 1, sizeof(*hot));
	if (!slot || !hot)
		goto done;
	for (int h = 0; h < m->nhosts; h++) {
		struct ctl_plan_host *ph = &out->hosts[h];

		ph->hot = ph->load > c->p->high;
		slot[h] = -1;
		if (!ph->hot)
			continue;
		out->hot++;
		if (m->hosts[h].draining || m->hosts[h].maintenance) {
			snprintf(ph->blocked, sizeof(ph->blocked), "draining: its drain moves its VMs");
			continue;
		}
		slot[h] = nhot;
		hot[nhot].h = h;
		hot[nhot].load = ph->load;
		nhot++;
	}
	/* Candidates: running VMs with traffic, not in flight, grouped by hot host. */
	for (int pass = 0; pass < 2; pass++) {
		int k = 0;

		for (int t = 0; pass == 1 && t < nhot; t++) {
			hot[t].first = k;
			k += hot[t].n;
			hot[t].n = 0;
		}
		for (int i = 0; i < m->nvms; i++) {
			const struct ctl_vm *vm = m->vms[i];
			double bps = ctl_plan_vm_bps(vm);
			int t;

			if (vm->host < 0 || vm->migration || bps <= 0 || (t = slot[vm->host]) < 0)
				continue;
			if (pass == 0) {
				hot[t].n++;
				ncand++;
				continue;
			}
			cand[hot[t].first + hot[t].n++] = (struct ctl_plan_cand){ i, bps,
			    vm->mem_bytes, 0 };
		}
		if (pass == 0 && !(cand = calloc((size_t)ncand + 1, sizeof(*cand))))
			goto done;
	}
	qsort(hot, (size_t)nhot, sizeof(*hot), ctl_plan_hot_cmp);
	for (int t = 0; t < nhot; t++)
		slot[hot[t].h] = t;
	for (int t = 0; t < nhot; t++)
		if (ctl_plan_host_shed(c, hot[t].h, cand + hot[t].first, hot[t].n) < 0)
			goto done;
	for (int h = 0; h < m->nhosts; h++) {
		struct ctl_plan_host *ph = &out->hosts[h];

		ph->load_after = ph->bps_after / ctl_plan_nic(&m->hosts[h]);
		if (ph->hot)
			out->lower_bound += ph->min_moves;
		if (ph->load_after > c->p->high) {
			out->still_hot++;
			if (!ph->blocked[0] && slot[h] >= 0)
				ctl_plan_blocked(c, h, cand + hot[slot[h]].first, hot[slot[h]].n);
		}
	}
	ctl_plan_mark_now(m, &c->p->lim, INT_MAX, "", out);
	rc = 0;
done:
	free(slot);
	free(hot);
	free(cand);
	return rc;
}

int
ctl_plan_view_init(struct ctl_plan_view *v, const struct ctl_model *m,
    const struct ctl_limits *lim, double target, struct ctl_plan *out)
{
	size_t nh = m->nhosts > 0 ? (size_t)m->nhosts : 1;
	size_t nv = m->nvms > 0 ? (size_t)m->nvms : 1;

	memset(out, 0, sizeof(*out));
	memset(v, 0, sizeof(*v));
	v->m = m;
	v->out = out;
	v->s = *m;
	v->target = target;
	v->lim = *lim;
	v->lim.max_concurrent = INT_MAX;	/* concurrency says when, not whether */
	v->lim.max_per_host = INT_MAX;
	v->lim.in_flight = 0;
	v->lim.use_cooldown = 1;
	out->nhosts = m->nhosts;
	out->hosts = calloc(nh, sizeof(*out->hosts));
	v->s.hosts = malloc(nh * sizeof(*v->s.hosts));
	v->s.vms = malloc(nv * sizeof(*v->s.vms));
	v->stale_host = calloc(nh, 1);
	v->copies = calloc(nv, sizeof(*v->copies));	/* a plan moves a VM once at most */
	if (!out->hosts || !v->s.hosts || !v->s.vms || !v->stale_host || !v->copies)
		return -1;
	memcpy(v->s.hosts, m->hosts, (size_t)m->nhosts * sizeof(*v->s.hosts));
	memcpy(v->s.vms, m->vms, (size_t)m->nvms * sizeof(*v->s.vms));
	/* Loads, as the VMs in flight will leave them. */
	for (int i = 0; i < m->nvms; i++) {
		const struct ctl_vm *vm = m->vms[i];
		int w = ctl_plan_where(m, vm);

		if (w < 0 || vm->state == VM_GONE)
			continue;
		out->hosts[w].bps += ctl_plan_vm_bps(vm);
		if (vm->stale && vm->state == VM_RUNNING)
			v->stale_host[w] = 1;
	}
	for (int h = 0; h < m->nhosts; h++) {
		out->hosts[h].bps_after = out->hosts[h].bps;
		out->hosts[h].load = out->hosts[h].bps / ctl_plan_nic(&m->hosts[h]);
	}
	return 0;
}

void
ctl_plan_view_free(struct ctl_plan_view *v)
{
	for (int i = 0; i < v->ncopies; i++)
		free(v->copies[i]);
	free(v->copies);
	free(v->s.hosts);
	free(v->s.vms);
	free(v->stale_host);
	memset(v, 0, sizeof(*v));
}

int
ctl_plan_make(const struct ctl_model *m, const struct ctl_plan_params *p,
    struct ctl_plan *out)
{
	struct ctl_plan_ctx c;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.p = p;
	c.out = out;
	if (ctl_plan_view_init(&c.v, m, &p->lim, p->target, out) == 0)
		rc = ctl_plan_run(&c);
	ctl_plan_view_free(&c.v);
	if (rc < 0)
		ctl_plan_free(out);
	return rc;
}

void
ctl_plan_free(struct ctl_plan *p)
{
	if (!p)
		return;
	free(p->moves);
	free(p->hosts);
	free(p->regions);
	memset(p, 0, sizeof(*p));
}
