/*
 * fx_fleet.h: a model fleet for the planners' unit tests (test_ctl_plan.c,
 * test_ctl_geo.c). Regions eu, us and ap with a given number of hosts each
 * ("eu-1", "eu-2", ..., 4 GiB, 64 vCPUs, the NIC given), every host connected
 * and leased; VMs placed by hand; the parameters of both planners with
 * limits that never bind; a plan, and its moves applied as finished
 * migrations would apply them.
 */
#ifndef FX_FLEET_H
#define FX_FLEET_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_conf.h"
#include "controller/ctl_geo.h"
#include "controller/ctl_model.h"
#include "controller/ctl_plan.h"

#define MIB (1ULL << 20)
#define FX_NREGIONS 3

struct fx {
	struct ctl_conf conf;
	struct ctl_conf_region regions[FX_NREGIONS];
	struct ctl_conf_host *hosts;
	struct ctl_model m;
	struct ctl_plan_params p;	/* the rebalancer's */
	struct ctl_geo_params g;	/* the geographic planner's; its targets are t */
	struct ctl_geo_target t[FX_NREGIONS];
	struct ctl_plan plan;
};

static const char *const fx_region[FX_NREGIONS] = { "eu", "us", "ap" };

static inline void
fx_limits(struct ctl_limits *lim)
{
	lim->max_concurrent = 100;
	lim->max_per_host = 100;
	lim->now_ms = 1000000;
	lim->use_cooldown = 1;
}

/* neu hosts in eu, then nus in us, then nap in ap; nic bytes/s each. */
static inline struct fx *
fx_new(double nic, int neu, int nus, int nap)
{
	struct fx *f = calloc(1, sizeof(*f));
	int n = neu + nus + nap, k = 0, per[FX_NREGIONS] = { neu, nus, nap };

	assert_non_null(f);
	f->hosts = calloc((size_t)n + 1, sizeof(*f->hosts));
	assert_non_null(f->hosts);
	for (int r = 0; r < FX_NREGIONS; r++) {
		snprintf(f->regions[r].name, CTL_NAME_MAX, "%s", fx_region[r]);
		for (int i = 0; i < per[r]; i++, k++) {
			struct ctl_conf_host *h = &f->hosts[k];

			snprintf(h->name, sizeof(h->name), "%s-%d", fx_region[r], i + 1);
			snprintf(h->region, sizeof(h->region), "%s", fx_region[r]);
			h->memory = 4LL << 30;
			h->vcpus = 64;
			h->nic = nic;
		}
	}
	f->conf.hosts = f->hosts;
	f->conf.nhosts = n;
	f->conf.regions = f->regions;
	f->conf.nregions = FX_NREGIONS;
	assert_int_equal(ctl_model_init(&f->m, &f->conf), 0);
	for (int i = 0; i < n; i++) {
		f->m.hosts[i].connected = 1;
		f->m.hosts[i].lease_ok = 1;
		f->m.hosts[i].lease_read = 1;
	}
	f->p.high = 0.80;
	f->p.target = 0.70;
	fx_limits(&f->p.lim);
	f->g.targets = f->t;
	f->g.max_moves = 100;
	f->g.target = 0.70;
	fx_limits(&f->g.lim);
	return f;
}

static inline void
fx_free(struct fx *f)
{
	ctl_plan_free(&f->plan);
	ctl_model_free(&f->m);
	free(f->hosts);
	free(f);
}

/* A running VM with mem bytes of memory and bps bytes/s of traffic (a
 * quarter up, the rest down). */
static inline struct ctl_vm *
fx_vm(struct fx *f, const char *name, int host, uint64_t mem, double bps)
{
	struct ctl_vm *vm = ctl_vm_get(&f->m, name);

	assert_non_null(vm);
	vm->host = host;
	vm->state = VM_RUNNING;
	vm->mem_bytes = mem;
	vm->vcpus = 1;
	vm->up.per_s = bps / 4;
	vm->down.per_s = bps - bps / 4;
	vm->tel_ms = 1;
	snprintf(vm->meta.id, sizeof(vm->meta.id), "%s", name);
	return vm;
}

static inline const struct ctl_plan_move *
fx_move(struct fx *f, const char *vm)
{
	for (int i = 0; i < f->plan.nmoves; i++)
		if (strcmp(f->plan.moves[i].vm, vm) == 0)
			return &f->plan.moves[i];
	return NULL;
}

/* Every planned VM on its destination, as finished migrations would leave
 * it; cooldown_ms > 0 also starts its cooldown. */
static inline void
fx_apply(struct fx *f, int64_t cooldown_ms)
{
	for (int i = 0; i < f->plan.nmoves; i++) {
		struct ctl_vm *vm = ctl_vm_find(&f->m, f->plan.moves[i].vm);

		assert_non_null(vm);
		assert_int_equal(vm->host, f->plan.moves[i].from);
		vm->host = f->plan.moves[i].to;
		if (cooldown_ms > 0)
			vm->cooldown_until_ms = f->p.lim.now_ms + cooldown_ms;
	}
}

#endif
