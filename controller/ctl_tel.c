/*
 * ctl_tel.c: telemetry ingest. Every tick, one pipelined burst of reads:
 * HGETALL pf:vm:<vm>:tel for each known VM, PTTL pf:host:<h>:lease and
 * HGETALL pf:host:<h>:metrics for each host (key schema: docs/redis-keys.md).
 * Replies update the model's counters and EWMA rates; staleness is judged
 * on the writer's timestamp, so a proxy whose telemetry stops is flagged
 * rather than kept at its last value.
 *
 * One batch record per tick carries the names the replies belong to (VMs
 * may vanish from the model between the request and its reply), and is
 * freed when its last reply has come back.
 */
#include "controller/fleetd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_TEL_ALPHA 0.3

struct ctl_tel_item {
	struct ctl_tel_batch *b;
	int kind;	/* 0 vm telemetry, 1 host lease, 2 host metrics */
	int host;
	char name[CTL_NAME_MAX];
};

struct ctl_tel_batch {
	struct fleetd *env;
	int outstanding;
	int64_t sent_ms;
	int n;
	struct ctl_tel_item items[];
};

/* A numeric field of a hash reply; 0 when absent. */
static uint64_t
ctl_tel_num(const redisReply *r, const char *name)
{
	const char *v = rlink_field(r, name);

	return v ? strtoull(v, NULL, 10) : 0;
}

static void
ctl_tel_vm(struct fleetd *env, struct ctl_vm *vm, redisReply *r)
{
	int64_t ts = (int64_t)ctl_tel_num(r, "ts_ms"), boot = (int64_t)ctl_tel_num(r, "boot_ms");
	uint64_t up = ctl_tel_num(r, "bytes_up"), down = ctl_tel_num(r, "bytes_down");
	uint64_t reqs = ctl_tel_num(r, "requests"), conns = ctl_tel_num(r, "conns_total");
	uint64_t active = ctl_tel_num(r, "conns_active");
	const char *rev = rlink_field(r, "cfg_rev");

	if (ts <= vm->tel_ms)
		return;	/* no new sample */
	if (boot != vm->tel_boot_ms && vm->tel_boot_ms) {
		/* The proxy restarted: counters start over. */
		memset(&vm->up, 0, sizeof(vm->up));
		memset(&vm->down, 0, sizeof(vm->down));
		memset(&vm->reqs, 0, sizeof(vm->reqs));
		memset(&vm->conns, 0, sizeof(vm->conns));
	}
	if (boot != vm->tel_boot_ms)
		vm->tel_first_ms = clock_wall_ms();	/* this boot's first sample, our clock */
	vm->tel_boot_ms = boot;
	vm->tel_ms = ts;
	vm->conns_active = active;
	{
		long long nrev = rev ? strtoll(rev, NULL, 10) : 0;

		/* When we saw a new revision in force, by our clock: the guest's
		 * own clock may be off by seconds under TCG. */
		if (nrev != vm->cfg_rev)
			vm->cfg_seen_ms = clock_wall_ms();
		vm->cfg_rev = nrev;
	}
	vm->bound = ctl_tel_num(r, "bound") != 0;
	ctl_rate_update(&vm->up, up, ts, CTL_TEL_ALPHA);
	ctl_rate_update(&vm->down, down, ts, CTL_TEL_ALPHA);
	ctl_rate_update(&vm->reqs, reqs, ts, CTL_TEL_ALPHA);
	ctl_rate_update(&vm->conns, conns, ts, CTL_TEL_ALPHA);
	if (vm->stale) {
		vm->stale = 0;
		log_info("telemetry resumed vm=%s", vm->name);
	}
	(void)env;
}

static void
ctl_tel_lease(struct fleetd *env, struct ctl_host *h, redisReply *r)
{
	int ok = r->type == REDIS_REPLY_INTEGER && r->integer > 0;

	if (ok)
		h->lease_seen_ms = clock_wall_ms();
	if (ok != h->lease_ok)
		ctl_journal(env, "host", "%s host=%s lease=%s", ok ? "lease-up" : "lease-lost",
		    h->conf->name, ok ? "present" : "expired");
	h->lease_ok = ok;
	h->lease_read = 1;
}

static double
ctl_tel_real(const redisReply *r, const char *name)
{
	const char *v = rlink_field(r, name);

	return v ? strtod(v, NULL) : 0;
}

static void
ctl_tel_metrics(struct ctl_host *h, redisReply *r)
{
	if (!rlink_field(r, "ts_ms"))
		return;
	h->metrics_ms = (int64_t)ctl_tel_num(r, "ts_ms");
	h->cpu_pct = ctl_tel_real(r, "cpu_pct");
	h->mem_total = ctl_tel_num(r, "mem_total");
	h->mem_free = ctl_tel_num(r, "mem_free");
	h->uplink_rx_bps = ctl_tel_real(r, "uplink_rx_bps");
	h->uplink_tx_bps = ctl_tel_real(r, "uplink_tx_bps");
}

static void
ctl_tel_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct ctl_tel_item *it = priv;
	struct ctl_tel_batch *b = it->b;
	struct fleetd *env = b->env;
	redisReply *r = reply;

	(void)ac;
	if (r) {
		if (it->kind == 0) {
			struct ctl_vm *vm = ctl_vm_find(&env->model, it->name);

			if (vm)
				ctl_tel_vm(env, vm, r);
		} else if (it->host < env->model.nhosts) {
			struct ctl_host *h = &env->model.hosts[it->host];

			if (it->kind == 1)
				ctl_tel_lease(env, h, r);
			else
				ctl_tel_metrics(h, r);
		}
	}
	if (--b->outstanding == 0)
		free(b);
}

void
ctl_tel_poll(struct fleetd *env)
{
	struct ctl_model *m = &env->model;
	int n = m->nvms + 2 * m->nhosts, k = 0;
	struct ctl_tel_batch *b;

	if (!rlink_is_up(env->redis) || n == 0)
		return;
	b = calloc(1, sizeof(*b) + (size_t)n * sizeof(b->items[0]));
	if (!b)
		return;
	b->env = env;
	b->sent_ms = clock_mono_ms();
	b->outstanding = 1;	/* held until every command is sent */
	for (int i = 0; i < m->nvms; i++) {
		struct ctl_tel_item *it = &b->items[k++];

		it->b = b;
		it->kind = 0;
		str_copy(it->name, m->vms[i]->name, sizeof(it->name));
		if (rlink_command(env->redis, ctl_tel_reply, it, "HGETALL pf:vm:%s:tel", it->name) == 0)
			b->outstanding++;
	}
	for (int h = 0; h < m->nhosts; h++) {
		const char *name = m->hosts[h].conf->name;
		struct ctl_tel_item *lease = &b->items[k++], *met = &b->items[k++];

		lease->b = met->b = b;
		lease->kind = 1;
		met->kind = 2;
		lease->host = met->host = h;
		if (rlink_command(env->redis, ctl_tel_reply, lease, "PTTL pf:host:%s:lease", name) == 0)
			b->outstanding++;
		if (rlink_command(env->redis, ctl_tel_reply, met, "HGETALL pf:host:%s:metrics",
		    name) == 0)
			b->outstanding++;
	}
	if (--b->outstanding == 0)
		free(b);
}
