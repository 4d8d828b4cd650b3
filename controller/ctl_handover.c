/*
 * ctl_handover.c: the handover plan (see ctl_handover.h).
 *
 * DESIGN. Orders for one IP are keyed by the IP on every agent (routes,
 * neighbour entries, the segment's ARP caches), so whichever order runs
 * last wins. Deciding per VM name, as each flow once did on its own, let a
 * hot standby's reconcile undo its primary's (they share the IPs and the
 * standby sorts later). Here the decision is per group and by role: the
 * plan names one owner and gives every other copy only withdrawals and
 * fences, so sending all of a plan's orders in its order is safe whatever
 * ran before. Every order is idempotent: sending a plan twice is harmless,
 * which is what lets a lost order be repaired by sending the plan again.
 *
 * Edge withdrawals always name the host the route points at: the edge
 * deletes that route only, never one a later order pointed elsewhere.
 * Only a reconcile, which cannot know where an earlier leader pointed the
 * route, states "routed by nobody" instead (unroute: netmigrate's /32,
 * whatever its next hop; the edge agent's orders run in order, and no
 * migration runs while a reconcile does).
 */
#include "controller/ctl_handover.h"

#include <stdio.h>
#include <string.h>

static const char *const ctl_ho_ops[] = {
	[HO_FENCE] = "fence",
	[HO_ANNOUNCE] = "announce",
	[HO_EDGE_POINT] = "announce",
	[HO_EDGE_UNPOINT] = "withdraw",
	[HO_WITHDRAW] = "withdraw",
	[HO_EDGE_CLEAR] = "unroute",
};

const char *
ctl_ho_op_name(enum ctl_ho_op op)
{
	return ctl_ho_ops[op];
}

/* The address part of "10.77.1.100/24". */
static size_t
ctl_ho_addr_len(const char *ip)
{
	return strcspn(ip, "/");
}

int
ctl_ho_shares(const struct ctl_vm *a, const struct ctl_vm *b)
{
	for (int i = 0; i < a->meta.nips; i++) {
		size_t la = ctl_ho_addr_len(a->meta.ips[i]);

		for (int j = 0; j < b->meta.nips; j++)
			if (ctl_ho_addr_len(b->meta.ips[j]) == la &&
			    strncmp(a->meta.ips[i], b->meta.ips[j], la) == 0)
				return 1;
	}
	return 0;
}

int
ctl_ip_same_net(const char *ip, const char *addr)
{
	const char *a = strrchr(ip, '.'), *b = strrchr(addr, '.');

	if (!a || !b || a - ip != b - addr || strchr(ip, ':'))
		return 0;
	return strncmp(ip, addr, (size_t)(a - ip)) == 0;
}

int
ctl_ho_home(const struct ctl_model *m, const struct ctl_vm *vm)
{
	if (vm->meta.nips == 0)
		return -1;
	for (int h = 0; h < m->nhosts; h++)
		if (ctl_ip_same_net(vm->meta.ips[0], m->hosts[h].conf->address))
			return m->hosts[h].region;
	return -1;
}

int
ctl_ho_replaced(const struct ctl_model *m, const struct ctl_vm *vm)
{
	for (int i = 0; i < m->nvms; i++) {
		const struct ctl_vm *o = m->vms[i];

		if (o != vm && o->meta.role == ROLE_PRIMARY && strcmp(o->meta.replaces, vm->name) == 0)
			return 1;
	}
	return 0;
}

/* Where v runs, as the plan sees it: the caller's "at" for its VM. */
static int
ctl_ho_at(const struct ctl_ho_in *in, const struct ctl_vm *v)
{
	if (v == in->vm && in->at >= 0)
		return in->at;
	return v->host;
}

/* The caller's VM runs where the caller says (a cutover's destination has
 * just resumed it, whatever the last listing said); the others as listed. */
static int
ctl_ho_live(const struct ctl_ho_in *in, const struct ctl_vm *v)
{
	if (v == in->vm && in->at >= 0)
		return 1;
	return v->state == VM_RUNNING && v->host >= 0;
}

static int
ctl_ho_eligible(const struct ctl_model *m, const struct ctl_ho_in *in, const struct ctl_vm *v)
{
	if (in->promote)
		return v == in->promote && ctl_ho_live(in, v);
	return v->meta.role == ROLE_PRIMARY && ctl_ho_live(in, v) && !v->failover &&
	    !ctl_ho_replaced(m, v);
}

/* Is a a better owner than b? Bound, then at home, then name. */
static int
ctl_ho_better(const struct ctl_model *m, const struct ctl_ho_in *in, const struct ctl_vm *a,
    const struct ctl_vm *b)
{
	int ha = ctl_ho_home(m, a), hb = ctl_ho_home(m, b);
	int home_a = ha >= 0 && m->hosts[ctl_ho_at(in, a)].region == ha;
	int home_b = hb >= 0 && m->hosts[ctl_ho_at(in, b)].region == hb;

	if (a->bound != b->bound)
		return a->bound > b->bound;
	if (home_a != home_b)
		return home_a > home_b;
	return strcmp(a->name, b->name) < 0;
}

static void
ctl_ho_add(struct ctl_ho_plan *p, enum ctl_ho_op op, enum ctl_ho_part part, int host,
    const struct ctl_vm *vm)
{
	if (p->n == CTL_HO_MAX) {
		p->truncated = 1;
		return;
	}
	p->o[p->n].op = op;
	p->o[p->n].part = part;
	p->o[p->n].host = host;
	p->o[p->n].vm = vm;
	p->n++;
}

static int
ctl_ho_has(const int *set, int n, int v)
{
	for (int i = 0; i < n; i++)
		if (set[i] == v)
			return 1;
	return 0;
}

int
ctl_ho_plan(const struct ctl_model *m, const struct ctl_ho_in *in, struct ctl_ho_plan *p)
{
	const struct ctl_vm *owner = NULL;
	int where[CTL_HO_GROUP_MAX + CTL_HO_MAX], nwhere = 0, region;

	memset(p, 0, sizeof(*p));
	p->at = -1;
	p->home = -1;
	if (in->vm->meta.nips == 0) {
		snprintf(p->why, sizeof(p->why), "%s has no service IPs", in->vm->name);
		return 0;
	}
	for (int i = 0; i < m->nvms; i++) {
		const struct ctl_vm *v = m->vms[i];

		if (v != in->vm && !ctl_ho_shares(v, in->vm))
			continue;
		if (p->ngroup == CTL_HO_GROUP_MAX) {
			snprintf(p->why, sizeof(p->why), "more than %d VMs share the IPs of %s",
			    CTL_HO_GROUP_MAX, in->vm->name);
			return 0;
		}
		p->group[p->ngroup++] = v;
		if (!ctl_ho_eligible(m, in, v))
			continue;
		if (owner) {
			p->ndoubled++;
			if (!ctl_ho_better(m, in, v, owner))
				continue;
		}
		owner = v;
	}
	if (!owner) {
		snprintf(p->why, sizeof(p->why), "no running primary of %s's IPs that a failover "
		    "has not replaced or is not promoting now", in->vm->name);
		return 0;
	}
	p->owner = owner;
	p->at = ctl_ho_at(in, owner);
	p->home = ctl_ho_home(m, owner);
	p->edge = p->home >= 0 && m->conf->regions[p->home].edge[0];
	region = m->hosts[p->at].region;

	/* Every other running primary (replaced, or a double) is silenced
	 * first; on the owner's own host the announcement that follows puts
	 * back the routes its fence removed. */
	for (int i = 0; i < p->ngroup; i++) {
		const struct ctl_vm *v = p->group[i];

		if (v != owner && v->meta.role == ROLE_PRIMARY && ctl_ho_live(in, v) && v->mac[0])
			ctl_ho_add(p, HO_FENCE, HO_PART_CLEAN, ctl_ho_at(in, v), v);
	}
	ctl_ho_add(p, HO_ANNOUNCE, HO_PART_OWNER, p->at, owner);

	/* Hosts that may hold the IPs' routes: the caller's, and where the
	 * group's other copies run. */
	for (int i = 0; i < in->nheld; i++)
		if (in->held[i] >= 0 && in->held[i] < m->nhosts && in->held[i] != p->at &&
		    !ctl_ho_has(where, nwhere, in->held[i]))
			where[nwhere++] = in->held[i];
	for (int i = 0; i < p->ngroup; i++) {
		int h = ctl_ho_at(in, p->group[i]);

		if (p->group[i] != owner && ctl_ho_live(in, p->group[i]) && h != p->at &&
		    !ctl_ho_has(where, nwhere, h))
			where[nwhere++] = h;
	}

	if (p->edge && region != p->home) {
		ctl_ho_add(p, HO_EDGE_POINT, HO_PART_EDGE, p->at, owner);
	} else if (p->edge && in->sweep) {
		ctl_ho_add(p, HO_EDGE_CLEAR, HO_PART_EDGE, p->at, owner);
	} else if (p->edge) {
		for (int i = 0; i < nwhere; i++)
			if (m->hosts[where[i]].region != p->home)
				ctl_ho_add(p, HO_EDGE_UNPOINT, HO_PART_EDGE, where[i], owner);
	}
	for (int i = 0; i < nwhere; i++) {
		const struct ctl_vm *named = owner;

		/* Named after the copy that runs there, so its agent stops
		 * that copy's announcement burst too. */
		for (int k = 0; k < p->ngroup; k++)
			if (p->group[k] != owner && ctl_ho_live(in, p->group[k]) &&
			    ctl_ho_at(in, p->group[k]) == where[i])
				named = p->group[k];
		ctl_ho_add(p, HO_WITHDRAW, HO_PART_CLEAN, where[i], named);
	}
	return p->n;
}

void
ctl_ho_dest(const struct ctl_model *m, const struct ctl_ho_plan *p, const struct ctl_ho_order *o,
    struct ctl_ho_dest *d)
{
	const struct ctl_conf_host *hc = m->hosts[o->host].conf;

	if (o->op == HO_EDGE_POINT || o->op == HO_EDGE_UNPOINT || o->op == HO_EDGE_CLEAR) {
		d->agent = m->conf->regions[p->home].edge;
		d->dev = NULL;
		d->via = o->op == HO_EDGE_CLEAR ? NULL : hc->address;
	} else {
		d->agent = hc->name;
		d->dev = hc->bridge;
		d->via = NULL;
	}
}
