/*
 * plan.c: the rebalancing planner (controller/ctl_plan.c) at fleet scale.
 *
 * Builds fleetd's own model for 1,000 hosts in 4 regions (1 Gbit/s NICs,
 * 64 GiB, 64 vCPUs each) and 10,000 VMs, 10 per host, with a skewed load:
 * host loads follow a Zipf-like curve over a random ranking of the hosts
 * (load = base + amp / (1 + rank / k)), and within a host the VMs share its
 * traffic Zipf-like too (the k-th VM gets a share proportional to 1 / k).
 * Memory is 128 MiB to 1 GiB; every 10th VM has a shut-off standby on
 * another host (anti-affinity) and every 20th is pinned to its region.
 *
 * For each scenario: the median and the worst time of one plan over RUNS
 * runs (ctl_model_tally + ctl_plan_make, as fleetd's tick does), the hot
 * hosts, the moves chosen against the lower bound (BOUND: per hot host the
 * fewest of its VMs whose traffic covers its excess, destinations ignored)
 * and against the same bound counting only the VMs that fit under the
 * target on the emptiest host at the start (FIT: a VM bigger than any room
 * cannot move in any plan), the hosts left hot, and stability: the plan
 * applied to the model and planned again gives "replan" moves (0
 * expected). Printed as a table.
 *
 * Then the geographic planner (controller/ctl_geo.c) on the mild fleet,
 * whose primaries sit 25% in each region, with targets of 40/30/20/10%:
 * 2,000 moves wanted, timed the same way, with the moves it finds, the
 * regions it leaves off target, and the replan after the moves.
 *
 * usage: fleetd_plan [RUNS]   (default 21)
 */
#include "controller/ctl_conf.h"
#include "controller/ctl_geo.h"
#include "controller/ctl_model.h"
#include "controller/ctl_plan.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_HOSTS 1000
#define BENCH_PER_HOST 10
#define BENCH_REGIONS 4
#define BENCH_NIC 125000000LL	/* 1 Gbit/s in bytes/s */

struct bench_scn {
	const char *name;
	double base, amp, k;
};

struct bench {
	struct ctl_conf conf;
	struct ctl_conf_region regions[BENCH_REGIONS];
	struct ctl_conf_host hosts[BENCH_HOSTS];
	struct ctl_model m;
};

static unsigned
bench_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

static double
bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Fill b's model for scenario s; 0 or -1. */
static int
bench_build(struct bench *b, const struct bench_scn *s)
{
	int rank[BENCH_HOSTS];
	unsigned seed = 42;
	double hsum = 0;

	memset(b, 0, sizeof(*b));
	for (int r = 0; r < BENCH_REGIONS; r++)
		snprintf(b->regions[r].name, CTL_NAME_MAX, "r%d", r);
	for (int h = 0; h < BENCH_HOSTS; h++) {
		struct ctl_conf_host *c = &b->hosts[h];

		snprintf(c->name, sizeof(c->name), "h%04d", h);
		snprintf(c->region, sizeof(c->region), "r%d", h % BENCH_REGIONS);
		c->memory = 64LL << 30;
		c->vcpus = 64;
		c->nic = BENCH_NIC;
		rank[h] = h;
	}
	for (int h = BENCH_HOSTS - 1; h > 0; h--) {	/* random ranking */
		int j = (int)(bench_rand(&seed) % (unsigned)(h + 1)), t = rank[h];

		rank[h] = rank[j];
		rank[j] = t;
	}
	b->conf.regions = b->regions;
	b->conf.nregions = BENCH_REGIONS;
	b->conf.hosts = b->hosts;
	b->conf.nhosts = BENCH_HOSTS;
	if (ctl_model_init(&b->m, &b->conf) < 0)
		return -1;
	for (int k = 1; k <= BENCH_PER_HOST; k++)
		hsum += 1.0 / k;
	for (int h = 0; h < BENCH_HOSTS; h++) {
		double load = s->base + s->amp / (1 + rank[h] / s->k);

		b->m.hosts[h].connected = 1;
		b->m.hosts[h].lease_ok = 1;
		b->m.hosts[h].lease_read = 1;
		for (int k = 1; k <= BENCH_PER_HOST; k++) {
			char name[CTL_NAME_MAX];
			struct ctl_vm *vm;
			double bps = load * (double)BENCH_NIC * (1.0 / k) / hsum;
			int i = h * BENCH_PER_HOST + k - 1;

			snprintf(name, sizeof(name), "px-%05d", i);
			vm = ctl_vm_get(&b->m, name);
			if (!vm)
				return -1;
			vm->host = h;
			vm->state = VM_RUNNING;
			vm->mem_bytes = (128ULL << (bench_rand(&seed) % 4)) << 20;
			vm->vcpus = 1 + (int)(bench_rand(&seed) % 2);
			vm->up.per_s = bps * 0.2;
			vm->down.per_s = bps * 0.8;
			vm->tel_ms = 1;
			if (i % 20 == 7)
				vm->meta.pin = PIN_REGION;
			if (i % 10 == 3) {	/* a standby on another host */
				struct ctl_vm *sb;
				char sbn[CTL_NAME_MAX];

				snprintf(sbn, sizeof(sbn), "sb-%05d", i);
				sb = ctl_vm_get(&b->m, sbn);
				vm = ctl_vm_find(&b->m, name);	/* the array may have moved */
				if (!sb || !vm)
					return -1;
				sb->host = (h + 1 + (int)(bench_rand(&seed) % 50)) % BENCH_HOSTS;
				sb->state = VM_SHUTOFF;
				sb->mem_bytes = vm->mem_bytes;
				sb->vcpus = vm->vcpus;
				sb->meta.role = ROLE_STANDBY;
				snprintf(sb->meta.peer, sizeof(sb->meta.peer), "%s", name);
				snprintf(vm->meta.peer, sizeof(vm->meta.peer), "%s", sbn);
			}
		}
	}
	return 0;
}

static int
bench_desc(const void *a, const void *b)
{
	return -bench_dbl_cmp(a, b);
}

/* The lower bound over the VMs no bigger than the largest room at the start. */
static int
bench_fit_bound(const struct ctl_model *m, const struct ctl_plan *plan,
    const struct ctl_plan_params *p)
{
	double room = 0, bps[BENCH_PER_HOST];
	int bound = 0;

	for (int h = 0; h < m->nhosts; h++)
		if (!plan->hosts[h].hot && (p->target - plan->hosts[h].load) * BENCH_NIC > room)
			room = (p->target - plan->hosts[h].load) * BENCH_NIC;
	for (int h = 0; h < m->nhosts; h++) {
		double need = (plan->hosts[h].load - p->high) * BENCH_NIC, sum = 0;
		int n = 0, k = 0;

		if (!plan->hosts[h].hot)
			continue;
		for (int i = 0; i < m->nvms && n < BENCH_PER_HOST; i++) {
			const struct ctl_vm *vm = m->vms[i];
			double v = vm->up.per_s + vm->down.per_s;

			if (vm->host == h && vm->state == VM_RUNNING && v > 0 && v <= room)
				bps[n++] = v;
		}
		qsort(bps, (size_t)n, sizeof(*bps), bench_desc);
		while (k < n && sum < need)
			sum += bps[k++];
		bound += k;
	}
	return bound;
}

/* The geographic plan on scenario s with shares 40/30/20/10; 0 or -1. */
static int
bench_geo(struct bench *b, const struct bench_scn *s, int runs, double *ms)
{
	static const char *const share[BENCH_REGIONS] = { "40%", "30%", "20%", "10%" };
	struct ctl_geo_target t[BENCH_REGIONS];
	struct ctl_geo_params gp = { .targets = t, .max_moves = 1, .target = 0.70,
		.lim = { .max_concurrent = 2, .max_per_host = 1, .now_ms = 1, .use_cooldown = 1 } };
	struct ctl_plan plan;
	char why[160];
	int moves = 0, off = 0, wanted = 0, replan;

	for (int r = 0; r < BENCH_REGIONS; r++)
		if (ctl_geo_target_parse(share[r], &t[r], why, sizeof(why)) < 0)
			return -1;
	if (bench_build(b, s) < 0)
		return -1;
	for (int r = 0; r < runs; r++) {
		double t0 = bench_now_ms();

		ctl_model_tally(&b->m);
		if (ctl_geo_make(&b->m, &gp, &plan) < 0)
			return -1;
		ms[r] = bench_now_ms() - t0;
		moves = plan.nmoves;
		off = wanted = 0;
		for (int k = 0; k < plan.nregions; k++) {
			off += plan.regions[k].blocked[0] != '\0';
			if (plan.regions[k].want > plan.regions[k].vms)
				wanted += plan.regions[k].want - plan.regions[k].vms;
		}
		if (r < runs - 1)
			ctl_plan_free(&plan);
	}
	for (int i = 0; i < plan.nmoves; i++)
		ctl_vm_find(&b->m, plan.moves[i].vm)->host = plan.moves[i].to;
	ctl_plan_free(&plan);
	ctl_model_tally(&b->m);
	if (ctl_geo_make(&b->m, &gp, &plan) < 0)
		return -1;
	replan = plan.nmoves;
	ctl_plan_free(&plan);
	qsort(ms, (size_t)runs, sizeof(*ms), bench_dbl_cmp);
	printf("\ngeo: %s fleet, primaries 25%% per region, targets 40/30/20/10%%\n", s->name);
	printf("%-8s %6s %6s %9s %9s %5s %7s\n", "", "WANTED", "MOVES", "MEDIAN_MS", "MAX_MS",
	    "OFF", "REPLAN");
	printf("%-8s %6d %6d %9.2f %9.2f %5d %7d\n", "geo", wanted, moves, ms[runs / 2],
	    ms[runs - 1], off, replan);
	ctl_model_free(&b->m);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct bench_scn scns[] = {
		{ "mild", 0.30, 0.70, 50 },
		{ "skewed", 0.30, 0.90, 100 },
		{ "heavy", 0.35, 1.00, 200 },
	};
	int runs = argc > 1 ? atoi(argv[1]) : 21;
	struct bench *b = calloc(1, sizeof(*b));
	struct ctl_plan_params p = { .high = 0.80, .target = 0.70,
		.lim = { .max_concurrent = 2, .max_per_host = 1, .now_ms = 1, .use_cooldown = 1 } };
	double *ms = calloc((size_t)(runs > 0 ? runs : 1), sizeof(*ms));

	if (!b || !ms || runs < 1) {
		fprintf(stderr, "usage: fleetd_plan [RUNS]\n");
		return 2;
	}
	printf("planner: %d hosts, %d VMs + standbys, high-water 80%%, target 70%%, %d runs\n\n",
	    BENCH_HOSTS, BENCH_HOSTS * BENCH_PER_HOST, runs);
	printf("%-8s %6s %5s %6s %6s %6s %9s %9s %5s %7s\n", "LOAD", "VMS", "HOT", "MOVES",
	    "BOUND", "FIT", "MEDIAN_MS", "MAX_MS", "LEFT", "REPLAN");
	for (size_t s = 0; s < PF_ARRAY_LEN(scns); s++) {
		struct ctl_plan plan;
		int moves = 0, bound = 0, hot = 0, left = 0, fit = 0, replan;

		if (bench_build(b, &scns[s]) < 0) {
			fprintf(stderr, "fleetd_plan: out of memory\n");
			return 1;
		}
		for (int r = 0; r < runs; r++) {
			double t0 = bench_now_ms();

			ctl_model_tally(&b->m);
			if (ctl_plan_make(&b->m, &p, &plan) < 0) {
				fprintf(stderr, "fleetd_plan: out of memory\n");
				return 1;
			}
			ms[r] = bench_now_ms() - t0;
			moves = plan.nmoves;
			bound = plan.lower_bound;
			hot = plan.hot;
			left = plan.still_hot;
			if (r < runs - 1)
				ctl_plan_free(&plan);
		}
		fit = bench_fit_bound(&b->m, &plan, &p);
		/* Stability: apply the last plan, plan again. */
		for (int i = 0; i < plan.nmoves; i++)
			ctl_vm_find(&b->m, plan.moves[i].vm)->host = plan.moves[i].to;
		ctl_plan_free(&plan);
		ctl_model_tally(&b->m);
		if (ctl_plan_make(&b->m, &p, &plan) < 0)
			return 1;
		replan = plan.nmoves;
		ctl_plan_free(&plan);
		qsort(ms, (size_t)runs, sizeof(*ms), bench_dbl_cmp);
		printf("%-8s %6d %5d %6d %6d %6d %9.2f %9.2f %5d %7d\n", scns[s].name, b->m.nvms, hot,
		    moves, bound, fit, ms[runs / 2], ms[runs - 1], left, replan);
		ctl_model_free(&b->m);
	}
	if (bench_geo(b, &scns[0], runs, ms) < 0) {
		fprintf(stderr, "fleetd_plan: out of memory\n");
		return 1;
	}
	free(ms);
	free(b);
	return 0;
}
