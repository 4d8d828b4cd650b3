/*
 * ctl_plan_view.h: what the two planners share, the rebalancing one
 * (ctl_plan.c) and the geographic one (ctl_geo.c). Internal to them.
 *
 * A plan works on a scratch view of the model: a copy of the host array
 * (VM count, memory and vCPUs updated move by move) and a copy of the
 * sorted VM pointer array in which a planned VM points at a private copy
 * placed on its destination. ctl_precheck then judges every later move of
 * the same plan against the fleet as the earlier moves leave it (capacity,
 * anti-affinity with a peer moved earlier). The model is never written.
 *
 * There is one destination choice for both planners (ctl_plan_dest), so a
 * geo move and a rebalancing move refuse exactly the same hosts.
 */
#ifndef CTL_PLAN_VIEW_H
#define CTL_PLAN_VIEW_H

#include <stddef.h>

#include "controller/ctl_plan.h"

struct ctl_plan_view {
	const struct ctl_model *m;	/* the real model: read only */
	struct ctl_model s;	/* scratch: own host and VM pointer arrays */
	struct ctl_limits lim;	/* the caller's, without the concurrency limits */
	double target;		/* a destination's load stays at or under this */
	unsigned char *stale_host;	/* runs a VM with stale telemetry: load unknown */
	struct ctl_vm **copies;	/* VMs placed by the plan, freed with the view */
	int ncopies;
	struct ctl_plan *out;
};

/*
 * Set up the view and out (zeroed, out->hosts allocated): per-host traffic
 * as the VMs in flight will leave it (bps, bps_after, load). 0, or -1 on
 * allocation failure (then free the view and the plan).
 */
int ctl_plan_view_init(struct ctl_plan_view *v, const struct ctl_model *m,
    const struct ctl_limits *lim, double target, struct ctl_plan *out);
void ctl_plan_view_free(struct ctl_plan_view *v);

/* A VM's traffic that counts for load: fresh telemetry of a running VM. */
double ctl_plan_vm_bps(const struct ctl_vm *vm);
/* Where a VM will be: its destination while it migrates. */
int ctl_plan_where(const struct ctl_model *m, const struct ctl_vm *vm);
double ctl_plan_nic(const struct ctl_host *h);

/*
 * Best destination for vm (a VM of the scratch view) carrying bps, or -1.
 * region < 0: any host, same region as the VM first; region >= 0: only
 * hosts of that region. A destination passes ctl_precheck on the scratch
 * view, has no stale telemetry, and stays at or under the target; among
 * those the fullest after the move wins (best fit), ties the lowest index.
 */
int ctl_plan_dest(struct ctl_plan_view *v, const struct ctl_vm *vm, double bps, int region);
/* Why ctl_plan_dest found nothing for vm in region (any when < 0). */
void ctl_plan_dest_why(struct ctl_plan_view *v, const struct ctl_vm *vm, double bps,
    int region, char *why, size_t whylen);

/* Record mv (the VM at index idx of the scratch view, to mv->to) in the
 * plan and place the VM there in the view. 0, or -1 on allocation failure. */
int ctl_plan_place(struct ctl_plan_view *v, int idx, const struct ctl_plan_move *mv);

/*
 * Mark which moves may start now, in plan order: at most budget of them
 * (the others wait with budget_why), within the concurrency limits of lim.
 */
void ctl_plan_mark_now(const struct ctl_model *m, const struct ctl_limits *lim, int budget,
    const char *budget_why, struct ctl_plan *out);

#endif
