/*
 * ctl_geo.h: geographic redistribution, the planner. Pure, like the
 * rebalancing planner next to it (ctl_plan.h): it reads the model and the
 * per-region targets and returns moves, with no I/O.
 *
 * A region's target is a count of primary VMs ("3") or a share of the
 * fleet's primaries in percent ("40%"); a region without one is not
 * constrained and absorbs the rest. fleetd keeps the targets in Redis
 * (pf:ctl:geo:targets) and runs the plan on its policy tick (ctl_policy.c).
 */
#ifndef CTL_GEO_H
#define CTL_GEO_H

#include <stddef.h>

#include "controller/ctl_plan.h"

#define CTL_GEO_MAX_COUNT 1000000

enum ctl_geo_kind { GEO_NONE, GEO_COUNT, GEO_SHARE };

struct ctl_geo_target {
	enum ctl_geo_kind kind;
	int value;		/* VMs, or percent (0-100) */
};

/* "3" or "40%" (digits only, no sign or space). 0, or -1 with why. */
int ctl_geo_target_parse(const char *s, struct ctl_geo_target *t, char *why, size_t whylen);
/* "3", "40%", or "" for none. */
void ctl_geo_target_str(const struct ctl_geo_target *t, char *buf, size_t len);

/*
 * The targets of n regions as counts for a fleet of fleet primaries:
 * want[r] = -1 where a region has no target. Shares are apportioned by
 * largest remainder over the shares and the rest of the fleet (100% less
 * the shares), ties to the lower region index and the rest last: integer
 * arithmetic only, so the result is the same on every run, and shares that
 * add up to 100% give counts that add up to the fleet exactly. Shares above
 * 100% in total are each rounded down (the API refuses such a set).
 */
void ctl_geo_resolve(const struct ctl_geo_target *t, int n, int fleet, int *want);

struct ctl_geo_params {
	const struct ctl_geo_target *targets;	/* one per conf region */
	int max_moves;		/* geo moves started at once (geo_max_moves) */
	int in_flight;		/* geo moves in flight now: none more start */
	double target;		/* a destination's load stays at or under this */
	struct ctl_limits lim;	/* concurrency, now_ms for cooldowns */
};

/*
 * Plan the moves that bring every region's count of primary VMs to its
 * target. Standbys are not counted and never moved; a VM in flight counts
 * in the region it goes to. Moves go from regions above their target (else
 * from regions without one) to the region furthest below its target; when
 * none is below, the excess goes to the region without a target that has
 * the fewest VMs. The VM is the cheapest that can go (least memory, then
 * least traffic), never one pinned to its region, in flight or cooling
 * down; its host is chosen as the rebalancing planner chooses
 * (ctl_plan_view.h: pre-check, fresh telemetry, load under the target,
 * best fit). Each move has a reason ("region us has 1 of target 2 VMs");
 * a region left off its target says why in out->regions[r].blocked.
 *
 * The plan is whole; move->now marks the first p->max_moves that fit the
 * concurrency limits, none while p->in_flight > 0. The caller has run
 * ctl_model_tally(m). 0, or -1 on allocation failure with *out empty.
 */
int ctl_geo_make(const struct ctl_model *m, const struct ctl_geo_params *p,
    struct ctl_plan *out);

#endif
