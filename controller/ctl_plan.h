/*
 * ctl_plan.h: the rebalancing planner. Pure: it reads the model and returns
 * a list of moves, with no I/O and no change to the model. fleetd's policy
 * tick executes the moves (ctl_policy.c); GET /v1/plan shows them.
 */
#ifndef CTL_PLAN_H
#define CTL_PLAN_H

#include <stdint.h>

#include "controller/ctl_model.h"

struct ctl_plan_params {
	double high;		/* high-water mark, share of the NIC (0.80) */
	double target;		/* a destination stays at or under this after a move (0.70) */
	struct ctl_limits lim;	/* concurrency, now_ms for cooldowns */
};

/* Which policy wants a move: traffic (this file) or regions (ctl_geo.h). */
enum ctl_move_kind { MOVE_REBALANCE, MOVE_GEO };

struct ctl_plan_move {
	char vm[CTL_NAME_MAX];
	enum ctl_move_kind kind;
	int from, to;		/* host indices */
	double bps;		/* the VM's traffic, bytes/s */
	uint64_t mem_bytes;
	int now;		/* fits the concurrency limits now; 0: waits (see wait) */
	char wait[160];	/* why it waits, when it does */
	char reason[200];	/* "eu-1 at 92% of NIC > 80%: ..." */
};

/* Per region, filled by the geographic planner only (ctl_geo.h). */
struct ctl_plan_region {
	int hosts;		/* configured in the region */
	int vms;		/* primary VMs, one in flight counted where it goes */
	int want;		/* the target as a count, -1 when the region has none */
	int vms_after;		/* ... once every move has finished */
	int moves_in, moves_out;
	char blocked[200];	/* why it stays off its target, when it does */
};

struct ctl_plan_host {
	double bps;		/* traffic, VMs in flight counted on their destination */
	double bps_after;	/* ... once every move has finished */
	double load;		/* bps / NIC before the plan */
	double load_after;	/* ... and once every move has finished */
	int hot;		/* load > high */
	int min_moves;		/* lower bound for this host (0 unless hot) */
	int moves;		/* moves planned off it */
	char blocked[160];	/* why it stays hot after the plan, when it does */
};

struct ctl_plan {
	struct ctl_plan_move *moves;
	int nmoves, cap;
	struct ctl_plan_host *hosts;	/* parallel to model->hosts */
	int nhosts;
	int hot;		/* hosts above the mark before the plan */
	int still_hot;		/* ... and after it */
	int lower_bound;	/* sum of the hot hosts' min_moves */
	struct ctl_plan_region *regions;	/* parallel to conf->regions (geo plans) */
	int nregions;
	int fleet;		/* primary VMs in the fleet (geo plans) */
};

/*
 * Plan the fewest moves that bring every host to or under p->high.
 *
 * Host load is the traffic (bps_up + bps_down of its VMs with fresh
 * telemetry) over its NIC; a VM in flight counts on its destination. On
 * each hot host, hottest host first, VMs are taken largest traffic first
 * (ties: smaller memory); once one VM alone covers what is left of the
 * excess, the cheapest such VM is taken instead (smaller memory, then less
 * traffic). A destination passes ctl_precheck (anti-affinity, draining,
 * capacity, cooldown, region pin) against the model as the earlier moves
 * leave it, has no stale telemetry, and stays at or under p->target; same
 * region first, then the fullest such host (best fit). The concurrency
 * limits in p->lim do not shorten the plan: they mark which moves may
 * start now (move->now).
 *
 * The caller has run ctl_model_tally(m). Fills *out (free it with
 * ctl_plan_free); 0, or -1 on allocation failure with *out empty.
 */
int ctl_plan_make(const struct ctl_model *m, const struct ctl_plan_params *p,
    struct ctl_plan *out);
/* Frees what ctl_plan_make allocated; p may be NULL or already freed. */
void ctl_plan_free(struct ctl_plan *p);

#endif
