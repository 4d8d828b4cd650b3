/*
 * ctl_mig.c: the migration executor.
 *
 * DESIGN. A migration is a record on the loop thread that walks through
 * phases: prepare (order the destination's agent to make the service IPs
 * deliverable there, without announcing them), migrating (a worker thread
 * runs the blocking virDomainMigrateToURI3 while a poller thread reads the
 * job statistics every 200 ms, posts progress, and aborts the job on
 * timeout or cancel), cutover (as soon as the destination reports the
 * domain resumed, order the announcement on the destination, the edge route
 * while the VM is away from its home region, and the withdrawal on the
 * source), verify (acks in, telemetry flowing again) and an end: done,
 * failed or cancelled. Only the loop thread touches the record's phase and
 * the model; the threads see a frozen copy of what they need (struct
 * ctl_mig_job) and report through ctl_post.
 *
 * A failed or aborted migration leaves the VM running on the source: the
 * libvirt job is aborted before the source is paused for good, and what a
 * prepare installed on the destination is withdrawn again. Should libvirt
 * report a failure after the destination already resumed, the outcome
 * follows where the VM really runs: on the destination it is a migration
 * that succeeded; back on the source, the source announces again. The
 * announcement only ever follows a resume, so two running copies never
 * announce the same IP.
 *
 * A shut-off VM (a warm standby) moves offline: its definition moves, with
 * no copy, no cutover and nothing to announce.
 */
#include "controller/fleetd.h"
#include "controller/ctl_handover.h"
#include "controller/ctl_post.h"
#include "controller/ctl_virt.h"
#include "common/log.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_MIG_POLL_MS 200
#define CTL_ORDER_TIMEOUT_MS 3000
#define CTL_VERIFY_MS 5000

enum ctl_mig_phase {
	MIG_PREPARE, MIG_MIGRATING, MIG_CUTOVER, MIG_VERIFY, MIG_DONE, MIG_FAILED, MIG_CANCELLED,
};

static const char *const ctl_mig_phases[] = {
	"prepare", "migrating", "cutover", "verify", "done", "failed", "cancelled",
};

/* What the threads may read: fixed when the job starts. */
struct ctl_mig_job {
	struct ctl_virt *virt;
	struct ctl_post *post;
	struct ctl_mig *m;
	char vm[CTL_NAME_MAX];
	int src, dst;
	char dst_uri[256];
	char migrate_uri[128];
	unsigned long flags;
	unsigned long long bandwidth;
	long long max_downtime_ms, timeout_ms, postcopy_after_ms;
	char postcopy_note[160];	/* written by the poller, read after its join */
	atomic_int cancel;	/* set by the loop */
	atomic_int timed_out;	/* set by the poller */
	atomic_int finished;	/* the migration call returned: poller stops */
};

struct ctl_mig {
	struct ctl_mig *next;
	struct fleetd *env;
	unsigned id;
	char vm[CTL_NAME_MAX];
	int src, dst;
	char reason[64];
	int offline;		/* a shut-off VM: definition only */
	int away;		/* dst is outside the VM's home region */
	int src_away;		/* ... and src was */
	int home;		/* the VM's home region, -1 unknown */
	enum ctl_mig_phase phase;
	int64_t wall_start_ms;
	int64_t t0, t_job, t_paused, t_resume, t_announced, t_end;	/* mono ms */
	double percent;
	uint64_t total, processed, remaining, bps;
	int64_t eta_ms, downtime_ms, libvirt_ms;
	int migrated;		/* the VM runs on the destination */
	int pending_orders;
	int orders_failed;
	int tel_resumed;
	char error[256];
	char note[200];
	char postcopy[160];	/* what a post-copy switch did, "" when none */
	struct ctl_mig_job *job;
	pthread_t thread;
	int thread_running;
};

/* ----- helpers --------------------------------------------------------- */

static struct ctl_mig *
ctl_mig_find(struct fleetd *env, unsigned id)
{
	for (struct ctl_mig *m = env->migs; m; m = m->next)
		if (m->id == id)
			return m;
	return NULL;
}

static int
ctl_mig_live(const struct ctl_mig *m)
{
	return m->phase < MIG_DONE;
}

/* The region whose hosts share the VM's first IP's prefix: its home. */
int
ctl_vm_home(const struct fleetd *env, const struct ctl_vm *vm)
{
	return ctl_ho_home(&env->model, vm);
}

const char *
ctl_edge_of_region(const struct fleetd *env, int region)
{
	if (region < 0 || !env->conf->regions[region].edge[0])
		return NULL;
	return env->conf->regions[region].edge;
}

static const struct ctl_conf_host *
ctl_hconf(const struct fleetd *env, int h)
{
	return env->model.hosts[h].conf;
}

/* ----- threads ---------------------------------------------------------- */

struct ctl_mig_msg {
	struct ctl_mig_job *job;
	int kind;	/* 0 progress, 1 result */
	uint64_t total, processed, remaining, bps;
	int64_t downtime_ms;
	int ok;
	int dst_running, src_running;
	char error[256];
};

static void ctl_mig_on_msg(void *arg);

static void
ctl_mig_send(struct ctl_mig_job *j, struct ctl_mig_msg *msg)
{
	msg->job = j;
	/* A result must arrive, or the record never ends: retry on ENOMEM. */
	while (ctl_post(j->post, ctl_mig_on_msg, msg) < 0) {
		if (msg->kind == 0) {
			free(msg);
			return;
		}
		usleep(10000);
	}
}

static uint64_t
ctl_param_u64(virTypedParameterPtr p, int n, const char *name)
{
	unsigned long long v = 0;

	virTypedParamsGetULLong(p, n, name, &v);
	return v;
}

struct ctl_poller {
	struct ctl_mig_job *j;
	virDomainPtr dom;
};

static void *
ctl_mig_poller(void *arg)
{
	struct ctl_poller *p = arg;
	struct ctl_mig_job *j = p->j;
	int64_t start = clock_mono_ms();
	int aborted = 0, postcopy = 0;

	while (!atomic_load(&j->finished)) {
		virTypedParameterPtr params = NULL;
		int n = 0, type = 0;

		usleep(CTL_MIG_POLL_MS * 1000);
		if (atomic_load(&j->finished))
			break;
		/* Post-copy, where offered: a copy still running after
		 * postcopy_after switches; from then on the destination runs
		 * the guest and the job can no longer be aborted. */
		if ((j->flags & VIR_MIGRATE_POSTCOPY) && !postcopy && !aborted &&
		    clock_mono_ms() - start > j->postcopy_after_ms) {
			postcopy = 1;
			if (virDomainMigrateStartPostCopy(p->dom, 0) < 0) {
				snprintf(j->postcopy_note, sizeof(j->postcopy_note), " postcopy=\"%.120s\"",
				    virGetLastErrorMessage());
				virResetLastError();
			} else {
				snprintf(j->postcopy_note, sizeof(j->postcopy_note), " postcopy=switched");
			}
		}
		if (!aborted && !postcopy && clock_mono_ms() - start > j->timeout_ms)
			atomic_store(&j->timed_out, 1);
		if (!aborted && !postcopy &&
		    (atomic_load(&j->cancel) || atomic_load(&j->timed_out))) {
			/* Retried on the next poll when libvirt refuses. */
			if (virDomainAbortJob(p->dom) == 0)
				aborted = 1;
			virResetLastError();
			continue;
		}
		if (virDomainGetJobStats(p->dom, &type, &params, &n, 0) < 0) {
			virResetLastError();
			continue;
		}
		if (type != VIR_DOMAIN_JOB_NONE) {
			struct ctl_mig_msg *msg = calloc(1, sizeof(*msg));

			if (msg) {
				msg->kind = 0;
				msg->total = ctl_param_u64(params, n, VIR_DOMAIN_JOB_DATA_TOTAL);
				msg->processed = ctl_param_u64(params, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
				msg->remaining = ctl_param_u64(params, n, VIR_DOMAIN_JOB_DATA_REMAINING);
				msg->bps = ctl_param_u64(params, n, VIR_DOMAIN_JOB_MEMORY_BPS);
				ctl_mig_send(j, msg);
			}
		}
		virTypedParamsFree(params, n);
	}
	return NULL;
}

/* After the call returned: does the domain run on host? 1, 0, -1 unknown. */
static int
ctl_mig_running_on(struct ctl_virt *virt, int host, const char *vm)
{
	virConnectPtr c = ctl_virt_conn(virt, host);
	virDomainPtr d;
	int st = 0, reason = 0, running = -1;

	if (!c)
		return -1;
	d = virDomainLookupByName(c, vm);
	if (!d) {
		running = 0;
	} else {
		if (virDomainGetState(d, &st, &reason, 0) == 0)
			running = st == VIR_DOMAIN_RUNNING;
		virDomainFree(d);
	}
	virResetLastError();
	virConnectClose(c);
	return running;
}

/* Downtime as the destination's completed-job statistics report it (the
 * source forgets the job when it undefines the domain). */
static int64_t
ctl_mig_downtime(struct ctl_virt *virt, int host, const char *vm)
{
	virConnectPtr c = ctl_virt_conn(virt, host);
	virTypedParameterPtr params = NULL;
	virDomainPtr d;
	int n = 0, type = 0;
	int64_t dt = -1;

	if (!c)
		return -1;
	d = virDomainLookupByName(c, vm);
	if (d && virDomainGetJobStats(d, &type, &params, &n, VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
		unsigned long long v;

		if (virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_DOWNTIME, &v) == 1)
			dt = (int64_t)v;
		virTypedParamsFree(params, n);
	}
	if (d)
		virDomainFree(d);
	virResetLastError();
	virConnectClose(c);
	return dt;
}

static void *
ctl_mig_worker(void *arg)
{
	struct ctl_mig_job *j = arg;
	struct ctl_mig_msg *res;
	virTypedParameterPtr params = NULL;
	int n = 0, max = 0;
	virConnectPtr src;
	virDomainPtr dom = NULL;
	pthread_t poller;
	struct ctl_poller pd;
	int polling = 0;

	while (!(res = calloc(1, sizeof(*res))))
		usleep(10000);
	res->kind = 1;
	res->downtime_ms = -1;
	src = ctl_virt_conn(j->virt, j->src);
	if (!src) {
		str_copy(res->error, "source host is not connected", sizeof(res->error));
		goto out;
	}
	dom = virDomainLookupByName(src, j->vm);
	if (!dom) {
		ctl_virt_errmsg(res->error, sizeof(res->error));
		goto out;
	}
	if (!(j->flags & VIR_MIGRATE_OFFLINE) &&
	    virDomainMigrateSetMaxDowntime(dom, (unsigned long long)j->max_downtime_ms, 0) < 0)
		virResetLastError();	/* older QEMU: keep its default */
	virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_URI, j->migrate_uri);
	if (j->bandwidth)
		virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH, j->bandwidth);
	pd.j = j;
	pd.dom = dom;
	polling = pthread_create(&poller, NULL, ctl_mig_poller, &pd) == 0;
	if (virDomainMigrateToURI3(dom, j->dst_uri, params, (unsigned)n, j->flags) == 0) {
		res->ok = 1;
	} else {
		ctl_virt_errmsg(res->error, sizeof(res->error));
		if (atomic_load(&j->timed_out))
			snprintf(res->error, sizeof(res->error), "timed out after %lld ms: libvirt job aborted",
			    j->timeout_ms);
		else if (atomic_load(&j->cancel))
			str_copy(res->error, "cancelled by operator", sizeof(res->error));
	}
	atomic_store(&j->finished, 1);
	if (polling)
		pthread_join(poller, NULL);
	if (res->ok && !(j->flags & VIR_MIGRATE_OFFLINE))
		res->downtime_ms = ctl_mig_downtime(j->virt, j->dst, j->vm);
	res->dst_running = ctl_mig_running_on(j->virt, j->dst, j->vm);
	res->src_running = ctl_mig_running_on(j->virt, j->src, j->vm);
out:
	atomic_store(&j->finished, 1);
	virTypedParamsFree(params, n);
	if (dom)
		virDomainFree(dom);
	if (src)
		virConnectClose(src);
	virResetLastError();
	ctl_mig_send(j, res);
	return NULL;
}

/* ----- loop side -------------------------------------------------------- */

static void
ctl_mig_journal_end(struct ctl_mig *m)
{
	struct fleetd *env = m->env;
	int64_t total = m->t_end - m->t0;
	int64_t handover = m->t_announced && m->t_resume ? m->t_announced - m->t_resume : -1;

	ctl_journal(env, "migration",
	    "%s id=%u vm=%s from=%s to=%s reason=%s mode=%s total_ms=%lld libvirt_ms=%lld "
	    "downtime_ms=%lld bytes=%llu handover_ms=%lld telemetry=%s%s%s%s%s%s",
	    ctl_mig_phases[m->phase], m->id, m->vm, ctl_hconf(env, m->src)->name,
	    ctl_hconf(env, m->dst)->name, m->reason, m->offline ? "offline" : "live",
	    (long long)total, (long long)m->libvirt_ms, (long long)m->downtime_ms,
	    (unsigned long long)m->processed, (long long)handover,
	    m->tel_resumed ? "resumed" : "not-seen",
	    m->error[0] ? " error=\"" : "", m->error, m->error[0] ? "\"" : "", m->note, m->postcopy);
}

static void
ctl_mig_finish(struct ctl_mig *m, enum ctl_mig_phase end, const char *error)
{
	struct fleetd *env = m->env;
	struct ctl_vm *vm = ctl_vm_find(&env->model, m->vm);

	if (!ctl_mig_live(m))
		return;
	m->phase = end;
	m->t_end = clock_mono_ms();
	if (error && !m->error[0])
		str_copy(m->error, error, sizeof(m->error));
	if (vm && vm->migration == m->id) {
		vm->migration = 0;
		vm->mig_dst = -1;
		vm->cooldown_until_ms = clock_mono_ms() + env->conf->mig_cooldown_ms;
	}
	env->model.hosts[m->src].migrations--;
	env->model.hosts[m->dst].migrations--;
	env->mig_in_flight--;
	if (end == MIG_DONE) {
		env->stats.mig_ok++;
		if (m->downtime_ms >= 0) {
			static const int64_t le[] = { 50, 100, 200, 300, 500, 1000, 2000 };
			size_t b = 0;

			while (b < PF_ARRAY_LEN(le) && m->downtime_ms > le[b])
				b++;
			env->stats.downtime_le[b]++;
			env->stats.downtime_count++;
			env->stats.downtime_sum_s += (double)m->downtime_ms / 1000.0;
		}
	} else if (end == MIG_CANCELLED) {
		env->stats.mig_cancelled++;
	} else {
		env->stats.mig_failed++;
	}
	ctl_mig_journal_end(m);
	ctl_virt_refresh(env->virt, m->src);
	ctl_virt_refresh(env->virt, m->dst);
}

/* Done when the VM runs on the destination, every order is answered, and
 * telemetry came back (or CTL_VERIFY_MS passed since the resume: the proxy
 * may not report). A failed handover order is an error of the migration. */
static void
ctl_mig_try_done(struct ctl_mig *m)
{
	if (m->phase != MIG_VERIFY || m->pending_orders > 0 || !m->migrated)
		return;
	if (!m->offline && !m->tel_resumed && clock_mono_ms() - m->t_resume < CTL_VERIFY_MS)
		return;
	ctl_mig_finish(m, MIG_DONE, m->orders_failed ?
	    "VM moved, but a handover order failed (see the log)" : NULL);
}

struct ctl_order_ctx {
	unsigned id;
	int announce_dst;	/* this ack marks the IPs announced at the destination */
	int prepare;
};

static void ctl_mig_launch(struct ctl_mig *m);
static int ctl_mig_order(struct ctl_mig *m, const struct ctl_vm *vm, const char *agent,
    const char *op, const char *dev, const char *via, int announce_dst, int prepare);

/* Take back what a prepare installed at the destination. */
static void
ctl_mig_unprepare(struct ctl_mig *m)
{
	if (!m->offline)
		ctl_mig_order(m, NULL, ctl_hconf(m->env, m->dst)->name, "withdraw",
		    ctl_hconf(m->env, m->dst)->bridge, NULL, 0, 0);
}

static void
ctl_mig_order_done(struct fleetd *env, void *arg, int ok, const char *error, int64_t took_us)
{
	struct ctl_order_ctx *c = arg;
	struct ctl_mig *m = ctl_mig_find(env, c->id);

	if (m) {
		m->pending_orders--;
		if (c->prepare) {
			if (m->phase != MIG_PREPARE) {
				;	/* cancelled meanwhile: already undone */
			} else if (!ok) {
				char why[300];

				snprintf(why, sizeof(why), "prepare on %s failed: %s",
				    ctl_hconf(env, m->dst)->name, error);
				ctl_mig_unprepare(m);
				ctl_mig_finish(m, MIG_FAILED, why);
			} else {
				ctl_mig_launch(m);
			}
		} else {
			if (!ok) {
				m->orders_failed++;
				log_warnx("handover order failed migration=%u vm=%s: %s", m->id, m->vm,
				    error);
			}
			if (c->announce_dst && ok) {
				m->t_announced = clock_mono_ms();
				log_info("announced vm=%s on=%s resume_to_announced_ms=%lld agent_us=%lld",
				    m->vm, ctl_hconf(env, m->dst)->name,
				    (long long)(m->t_announced - m->t_resume), (long long)took_us);
			}
			ctl_mig_try_done(m);
		}
	}
	free(c);
}

/* Order op for the IPs of vm (NULL: the migrating VM) to agent, naming
 * bridge dev (host orders) or via (edge orders). 0, or -1 (counted as a
 * failed order) when it cannot be sent. */
static int
ctl_mig_order(struct ctl_mig *m, const struct ctl_vm *vm, const char *agent, const char *op,
    const char *dev, const char *via, int announce_dst, int prepare)
{
	struct fleetd *env = m->env;
	struct ctl_order_ctx *c = calloc(1, sizeof(*c));

	if (!vm)
		vm = ctl_vm_find(&env->model, m->vm);
	if (!vm || !c ||
	    ctl_order_send(env, agent, op, vm, dev, via, CTL_ORDER_TIMEOUT_MS, ctl_mig_order_done,
	    c) < 0) {
		free(c);
		m->orders_failed++;
		log_warnx("cannot send order migration=%u agent=%s op=%s vm=%s: %s", m->id,
		    agent, op, m->vm, ctl_leader_is(env) ? "redis down" : "not the leader");
		return -1;
	}
	c->id = m->id;
	c->announce_dst = announce_dst;
	c->prepare = prepare;
	m->pending_orders++;
	return 0;
}

/* The handover plan for the VM at host at, the other end held: its orders
 * sent; the owner's announcement is the serving ack when at is the
 * destination. A VM that owns no IPs (a standby being moved) gets none. */
static int
ctl_mig_handover(struct ctl_mig *m, int at, int held)
{
	struct fleetd *env = m->env;
	struct ctl_vm *vm = ctl_vm_find(&env->model, m->vm);
	struct ctl_ho_in in = { .vm = vm, .at = at, .held = &held, .nheld = 1 };
	struct ctl_ho_plan plan;
	int rc = 0;

	if (!vm)
		return -1;
	ctl_ho_plan(&env->model, &in, &plan);
	if (plan.owner != vm) {
		log_info("migration=%u vm=%s handover: none (%s%s)", m->id, m->vm,
		    plan.owner ? "the IPs are owned by " : "", plan.owner ? plan.owner->name : plan.why);
		return 0;
	}
	for (int i = 0; i < plan.n; i++) {
		const struct ctl_ho_order *o = &plan.o[i];
		struct ctl_ho_dest d;

		ctl_ho_dest(&env->model, &plan, o, &d);
		if (ctl_mig_order(m, o->vm, d.agent, ctl_ho_op_name(o->op), d.dev, d.via,
		    o->part == HO_PART_OWNER && at == m->dst, 0) < 0 && o->part == HO_PART_OWNER)
			rc = -1;
	}
	return rc;
}

/* The VM runs at the destination now: carry its IPs over. */
static void
ctl_mig_cutover(struct ctl_mig *m)
{
	if (m->phase != MIG_MIGRATING)
		return;
	m->phase = MIG_CUTOVER;
	if (!m->t_resume)
		m->t_resume = clock_mono_ms();
	if (ctl_mig_handover(m, m->dst, m->src) < 0)
		str_copy(m->error, "cannot order the announcement at the destination",
		    sizeof(m->error));
	m->phase = MIG_VERIFY;
}

/* libvirt failed after the destination resumed and the cutover ran, and
 * the VM is back on the source: the source announces again. */
static void
ctl_mig_cutback(struct ctl_mig *m)
{
	ctl_mig_handover(m, m->src, m->dst);
}

static void
ctl_mig_landed(struct ctl_mig *m, int64_t downtime_ms)
{
	struct ctl_vm *vm = ctl_vm_find(&m->env->model, m->vm);

	m->migrated = 1;
	m->downtime_ms = downtime_ms;
	m->percent = 100;
	m->remaining = 0;
	if (vm) {
		vm->host = m->dst;
		vm->state = m->offline ? VM_SHUTOFF : VM_RUNNING;
	}
	if (m->offline)
		m->phase = MIG_VERIFY;	/* nothing to carry over */
	else
		ctl_mig_cutover(m);	/* no-op when the resume event came first */
	ctl_mig_try_done(m);
}

static void
ctl_mig_on_msg(void *arg)
{
	struct ctl_mig_msg *msg = arg;
	struct ctl_mig_job *j = msg->job;
	struct ctl_mig *m = j->m;

	if (msg->kind == 0) {
		if (ctl_mig_live(m)) {
			m->total = msg->total;
			m->processed = msg->processed;
			m->remaining = msg->remaining;
			m->bps = msg->bps;
			m->percent = msg->total ? 100.0 * (double)(msg->total - msg->remaining) /
			    (double)msg->total : 0;
			m->eta_ms = msg->bps ? (int64_t)(msg->remaining * 1000 / msg->bps) : -1;
		}
		free(msg);
		return;
	}
	/* The worker is done: reap it (unless shutdown already did). */
	if (m->thread_running) {
		pthread_join(m->thread, NULL);
		m->thread_running = 0;
	}
	m->job = NULL;
	if (!ctl_mig_live(m)) {
		/* Given up when this fleetd stepped down: the leader owns the
		 * outcome now. Say what libvirt did, act on nothing. */
		log_info("migration result after step-down id=%u vm=%s ok=%d dst_running=%d "
		    "src_running=%d libvirt_ms=%lld error=\"%s\" (left to the leader)", m->id, m->vm,
		    msg->ok, msg->dst_running, msg->src_running,
		    (long long)(clock_mono_ms() - m->t_job), msg->error);
		free(j);
		free(msg);
		return;
	}
	m->libvirt_ms = clock_mono_ms() - m->t_job;
	str_copy(m->postcopy, j->postcopy_note, sizeof(m->postcopy));
	if (msg->ok) {
		if (msg->dst_running == 0 && !m->offline)
			snprintf(m->note, sizeof(m->note), " verify=\"not running on the destination\"");
		if (msg->src_running == 1)
			snprintf(m->note, sizeof(m->note), " verify=\"still running on the source\"");
		ctl_mig_landed(m, msg->downtime_ms);
	} else if (m->phase >= MIG_CUTOVER && msg->dst_running == 1) {
		/* The VM resumed on the destination and runs there: it moved,
		 * whatever libvirt said after that. */
		snprintf(m->note, sizeof(m->note), " libvirt_after_resume=\"%.150s\"", msg->error);
		ctl_mig_landed(m, -1);
	} else {
		snprintf(m->note, sizeof(m->note), " still_on_source=%s",
		    msg->src_running == 1 ? "running" : msg->src_running == 0 ? "NOT-RUNNING" :
		    "unknown");
		if (m->phase >= MIG_CUTOVER)
			ctl_mig_cutback(m);
		else
			ctl_mig_unprepare(m);
		ctl_mig_finish(m, atomic_load(&j->cancel) && !atomic_load(&j->timed_out) ?
		    MIG_CANCELLED : MIG_FAILED, msg->error);
	}
	free(j);
	free(msg);
}

static void
ctl_mig_launch(struct ctl_mig *m)
{
	struct fleetd *env = m->env;
	const struct ctl_conf *c = env->conf;
	const struct ctl_conf_host *dst = ctl_hconf(env, m->dst);
	struct ctl_mig_job *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl_mig_unprepare(m);
		ctl_mig_finish(m, MIG_FAILED, "out of memory");
		return;
	}
	j->virt = env->virt;
	j->post = env->post;
	j->m = m;
	str_copy(j->vm, m->vm, sizeof(j->vm));
	j->src = m->src;
	j->dst = m->dst;
	str_copy(j->dst_uri, dst->uri, sizeof(j->dst_uri));
	snprintf(j->migrate_uri, sizeof(j->migrate_uri), strchr(dst->address, ':') ?
	    "tcp://[%s]" : "tcp://%s", dst->address);
	if (m->offline) {
		j->flags = VIR_MIGRATE_OFFLINE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
		    VIR_MIGRATE_UNDEFINE_SOURCE;
	} else {
		j->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
		    VIR_MIGRATE_UNDEFINE_SOURCE;
		if (c->mig_auto_converge)
			j->flags |= VIR_MIGRATE_AUTO_CONVERGE;
		if (c->mig_compressed)
			j->flags |= VIR_MIGRATE_COMPRESSED;
		if (c->mig_postcopy)
			j->flags |= VIR_MIGRATE_POSTCOPY;
	}
	j->bandwidth = (unsigned long long)c->mig_bandwidth;
	j->max_downtime_ms = c->mig_max_downtime_ms;
	j->timeout_ms = c->mig_timeout_ms;
	j->postcopy_after_ms = c->mig_postcopy_after_ms;
	m->job = j;
	m->phase = MIG_MIGRATING;
	m->t_job = clock_mono_ms();
	if (pthread_create(&m->thread, NULL, ctl_mig_worker, j) != 0) {
		m->job = NULL;
		free(j);
		ctl_mig_unprepare(m);
		ctl_mig_finish(m, MIG_FAILED, "cannot start the migration thread");
		return;
	}
	m->thread_running = 1;
	log_info("migrate start id=%u vm=%s from=%s to=%s uri=%s flags=0x%lx prepare_ms=%lld",
	    m->id, m->vm, ctl_hconf(env, m->src)->name, dst->name, j->migrate_uri, j->flags,
	    (long long)(m->t_job - m->t0));
}

/* Forget finished migrations beyond what the API keeps. */
static void
ctl_mig_trim(struct fleetd *env)
{
	int kept = 0;

	for (struct ctl_mig **pp = &env->migs; *pp;) {
		struct ctl_mig *m = *pp;

		if (!ctl_mig_live(m) && ++kept > CTL_MIG_KEEP) {
			*pp = m->next;
			free(m);
			continue;
		}
		pp = &m->next;
	}
}

static void
ctl_mig_limits(struct fleetd *env, int policy, struct ctl_limits *lim)
{
	lim->max_concurrent = (int)env->conf->mig_max_concurrent;
	lim->max_per_host = (int)env->conf->mig_max_per_host;
	lim->in_flight = env->mig_in_flight;
	lim->now_ms = clock_mono_ms();
	lim->use_cooldown = policy;
}

int
ctl_mig_start(struct fleetd *env, const char *vmname, const char *dest, const char *reason,
    int policy, unsigned *id, char *why, size_t whylen)
{
	struct ctl_vm *vm = ctl_vm_find(&env->model, vmname);
	int d = ctl_host_find(&env->model, dest);
	struct ctl_limits lim;
	struct ctl_mig *m;

	if (!vm) {
		snprintf(why, whylen, "no VM called '%s'", vmname);
		return -1;
	}
	if (d < 0) {
		snprintf(why, whylen, "no host called '%s'", dest);
		return -1;
	}
	if (env->stopping) {
		snprintf(why, whylen, "fleetd is stopping");
		return -1;
	}
	if (!ctl_leader_is(env)) {
		snprintf(why, whylen, "this fleetd is not the leader");
		return -1;
	}
	if (env->recon) {
		snprintf(why, whylen, "fleetd is reconciling after a takeover; try again shortly");
		return -1;
	}
	ctl_mig_limits(env, policy, &lim);
	ctl_model_tally(&env->model);
	if (ctl_precheck(&env->model, vm, d, &lim, why, whylen) < 0) {
		env->stats.mig_refused++;
		log_info("migrate refused vm=%s to=%s reason=\"%s\"", vmname, dest, why);
		return -1;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	m->env = env;
	m->id = ++env->mig_seq;
	str_copy(m->vm, vm->name, sizeof(m->vm));
	m->src = vm->host;
	m->dst = d;
	str_copy(m->reason, reason, sizeof(m->reason));
	m->offline = vm->state == VM_SHUTOFF;
	m->home = ctl_vm_home(env, vm);
	m->away = m->home >= 0 && env->model.hosts[d].region != m->home;
	m->src_away = m->home >= 0 && env->model.hosts[vm->host].region != m->home;
	m->wall_start_ms = clock_wall_ms();
	m->t0 = clock_mono_ms();
	m->downtime_ms = -1;
	m->eta_ms = -1;
	m->phase = MIG_PREPARE;
	m->next = env->migs;
	env->migs = m;
	vm->migration = m->id;
	vm->mig_dst = d;
	env->model.hosts[m->src].migrations++;
	env->model.hosts[m->dst].migrations++;
	env->mig_in_flight++;
	*id = m->id;
	ctl_journal(env, "migration", "start id=%u vm=%s from=%s to=%s reason=%s mode=%s away=%d",
	    m->id, m->vm, ctl_hconf(env, m->src)->name, dest, reason,
	    m->offline ? "offline" : "live", m->away);
	/* Prepare: the destination's agent checks its bridge and installs the
	 * host route, without announcing. A shut-off VM needs none. */
	if (m->offline)
		ctl_mig_launch(m);
	else if (ctl_mig_order(m, NULL, dest, "prepare", ctl_hconf(env, d)->bridge, NULL, 0, 1) < 0)
		ctl_mig_finish(m, MIG_FAILED, "cannot order prepare: redis is down");
	ctl_mig_trim(env);
	return 0;
}

int
ctl_mig_cancel(struct fleetd *env, unsigned id, char *why, size_t whylen)
{
	struct ctl_mig *m = ctl_mig_find(env, id);

	if (!m) {
		snprintf(why, whylen, "no migration %u", id);
		return -1;
	}
	if (m->phase == MIG_PREPARE) {
		ctl_mig_unprepare(m);
		ctl_mig_finish(m, MIG_CANCELLED, "cancelled by operator before the copy started");
		return 0;
	}
	if (m->phase != MIG_MIGRATING || !m->job) {
		snprintf(why, whylen, "migration %u is %s: too late to cancel", id,
		    ctl_mig_phases[m->phase]);
		return -1;
	}
	atomic_store(&m->job->cancel, 1);
	log_info("migrate cancel id=%u vm=%s", m->id, m->vm);
	return 0;
}

void
ctl_mig_dom_event(struct fleetd *env, int host, const char *name, int event, int detail)
{
	for (struct ctl_mig *m = env->migs; m; m = m->next) {
		if (!ctl_mig_live(m) || strcmp(m->vm, name) != 0)
			continue;
		if (host == m->src && event == VIR_DOMAIN_EVENT_SUSPENDED &&
		    detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED) {
			m->t_paused = clock_mono_ms();
		} else if (host == m->dst && event == VIR_DOMAIN_EVENT_RESUMED &&
		    (detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED ||
		     detail == VIR_DOMAIN_EVENT_RESUMED_POSTCOPY) && m->phase == MIG_MIGRATING) {
			/* Post-copy: the guest runs on the destination from here. */
			m->t_resume = clock_mono_ms();
			log_info("resumed vm=%s on=%s paused_ms=%lld", name,
			    ctl_hconf(env, host)->name,
			    m->t_paused ? (long long)(m->t_resume - m->t_paused) : -1LL);
			ctl_mig_cutover(m);
		}
	}
}

/* ----- drain ------------------------------------------------------------ */

int
ctl_drain(struct fleetd *env, const char *name, int on, char *why, size_t whylen)
{
	int h = ctl_host_find(&env->model, name), rc;
	struct ctl_host *host;

	if (h < 0) {
		snprintf(why, whylen, "no host called '%s'", name);
		return 404;
	}
	host = &env->model.hosts[h];
	if (on && (host->draining || host->maintenance)) {
		snprintf(why, whylen, "host %s is already %s", name,
		    host->draining ? "draining" : "in maintenance");
		return 409;
	}
	/* Stored first: a new leader must not put a host under maintenance
	 * back into service. */
	if ((rc = ctl_keep_put(env, KEEP_DRAIN, name, on ? "draining" : NULL, why, whylen)) != 0)
		return rc;
	if (on) {
		host->draining = 1;
		host->drain_blocked[0] = '\0';
		ctl_journal(env, "drain", "start host=%s vms=%d", name, host->nvms);
	} else {
		host->draining = 0;
		host->maintenance = 0;
		host->drain_blocked[0] = '\0';
		ctl_journal(env, "drain", "undrain host=%s", name);
	}
	return 0;
}

/* Best destination for vm leaving its host: passes the pre-check, same
 * region first, then the lowest traffic share, then the fewest VMs. */
static int
ctl_drain_pick(struct fleetd *env, struct ctl_vm *vm, char *why, size_t whylen)
{
	struct ctl_model *mo = &env->model;
	struct ctl_limits lim;
	int best = -1;
	double best_score = 0;

	ctl_mig_limits(env, 1, &lim);
	for (int d = 0; d < mo->nhosts; d++) {
		struct ctl_host *h = &mo->hosts[d];
		double score;

		if (d == vm->host || ctl_precheck(mo, vm, d, &lim, why, whylen) < 0)
			continue;
		score = h->bps / (double)h->conf->nic + 0.001 * h->nvms;
		if (h->region != mo->hosts[vm->host].region)
			score += 1000;	/* other regions only as a last resort */
		if (best < 0 || score < best_score) {
			best = d;
			best_score = score;
		}
	}
	if (best < 0 && !why[0])
		snprintf(why, whylen, "no other host");
	return best;
}

static void
ctl_drain_host(struct fleetd *env, int h)
{
	struct ctl_model *mo = &env->model;
	struct ctl_host *host = &mo->hosts[h];
	char why[256] = "", blocked[160] = "";
	int left = 0;

	for (int i = 0; i < mo->nvms; i++) {
		struct ctl_vm *vm = mo->vms[i];
		unsigned id;
		int d;

		if (vm->host != h || vm->state == VM_GONE)
			continue;
		left++;
		if (vm->migration)
			continue;
		why[0] = '\0';
		d = ctl_drain_pick(env, vm, why, sizeof(why));
		if (d >= 0 && ctl_mig_start(env, vm->name, mo->hosts[d].conf->name, "drain", 1, &id,
		    why, sizeof(why)) == 0) {
			ctl_model_tally(mo);
			continue;
		}
		if (!blocked[0])
			snprintf(blocked, sizeof(blocked), "%s: %s", vm->name, why);
	}
	/* Done once nothing is left and every move out has finished. */
	if (left == 0 && host->migrations == 0) {
		host->draining = 0;
		host->maintenance = 1;
		host->drain_blocked[0] = '\0';
		ctl_keep_note(env, KEEP_DRAIN, host->conf->name, "maintenance");
		ctl_journal(env, "drain", "done host=%s state=maintenance", host->conf->name);
		return;
	}
	/* Say once why the drain is stuck, not on every tick. */
	if (strcmp(blocked, host->drain_blocked) != 0) {
		str_copy(host->drain_blocked, blocked, sizeof(host->drain_blocked));
		if (blocked[0])
			ctl_journal(env, "drain", "blocked host=%s left=%d why=\"%s\"", host->conf->name,
			    left, blocked);
	}
}

void
ctl_mig_tick(struct fleetd *env)
{
	struct ctl_model *mo = &env->model;

	for (struct ctl_mig *m = env->migs; m; m = m->next) {
		if (m->phase == MIG_VERIFY) {
			struct ctl_vm *vm = ctl_vm_find(mo, m->vm);
			int64_t resume_wall = m->wall_start_ms + (m->t_resume - m->t0);

			if (vm && m->t_resume && vm->tel_ms > resume_wall)
				m->tel_resumed = 1;
			ctl_mig_try_done(m);
		}
	}
	if (env->stopping || !ctl_leader_is(env) || env->recon)
		return;	/* no new work while stopping, following or reconciling */
	if (!env->keep[KEEP_DRAIN].loaded)
		return;	/* the drains are not read yet (a fresh leader) */
	ctl_model_tally(mo);
	for (int h = 0; h < mo->nhosts; h++)
		if (mo->hosts[h].draining)
			ctl_drain_host(env, h);
}

void
ctl_mig_abandon(struct fleetd *env, const char *why)
{
	char err[200];

	snprintf(err, sizeof(err), "given up: %s (the libvirt job runs on; the next leader "
	    "reconciles)", why);
	for (struct ctl_mig *m = env->migs; m; m = m->next)
		if (ctl_mig_live(m))
			ctl_mig_finish(m, MIG_FAILED, err);
}

void
ctl_mig_shutdown(struct fleetd *env)
{
	/* Abort what runs: the VMs stay on their sources. */
	for (struct ctl_mig *m = env->migs; m; m = m->next)
		if (m->job)
			atomic_store(&m->job->cancel, 1);
	for (struct ctl_mig *m = env->migs; m; m = m->next) {
		if (m->thread_running) {
			pthread_join(m->thread, NULL);
			m->thread_running = 0;
		}
	}
}

void
ctl_mig_free_all(struct fleetd *env)
{
	while (env->migs) {
		struct ctl_mig *m = env->migs;

		env->migs = m->next;
		free(m);
	}
}

int
ctl_mig_count(struct fleetd *env, const char *prefix)
{
	size_t len = strlen(prefix);
	int n = 0;

	for (struct ctl_mig *m = env->migs; m; m = m->next)
		n += ctl_mig_live(m) && strncmp(m->reason, prefix, len) == 0;
	return n;
}

cJSON *
ctl_mig_json(struct fleetd *env, unsigned id)
{
	cJSON *arr = cJSON_CreateArray();

	for (struct ctl_mig *m = env->migs; m; m = m->next) {
		cJSON *o;
		int64_t now = clock_mono_ms();

		if (id && m->id != id)
			continue;
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", m->id);
		cJSON_AddStringToObject(o, "vm", m->vm);
		cJSON_AddStringToObject(o, "from", ctl_hconf(env, m->src)->name);
		cJSON_AddStringToObject(o, "to", ctl_hconf(env, m->dst)->name);
		cJSON_AddStringToObject(o, "reason", m->reason);
		cJSON_AddStringToObject(o, "mode", m->offline ? "offline" : "live");
		cJSON_AddStringToObject(o, "phase", ctl_mig_phases[m->phase]);
		cJSON_AddNumberToObject(o, "started_ms", (double)m->wall_start_ms);
		cJSON_AddNumberToObject(o, "elapsed_ms", (double)((m->t_end ? m->t_end : now) - m->t0));
		cJSON_AddNumberToObject(o, "percent", m->percent);
		cJSON_AddNumberToObject(o, "bytes_total", (double)m->total);
		cJSON_AddNumberToObject(o, "bytes_processed", (double)m->processed);
		cJSON_AddNumberToObject(o, "bytes_remaining", (double)m->remaining);
		cJSON_AddNumberToObject(o, "rate_bps", (double)m->bps);
		cJSON_AddNumberToObject(o, "eta_ms", (double)m->eta_ms);
		cJSON_AddNumberToObject(o, "downtime_ms", (double)m->downtime_ms);
		cJSON_AddNumberToObject(o, "handover_ms", m->t_announced && m->t_resume ?
		    (double)(m->t_announced - m->t_resume) : -1);
		cJSON_AddStringToObject(o, "error", m->error);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}
