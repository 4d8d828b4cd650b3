/*
 * ctl_recon.c: reconcile after a takeover.
 *
 * DESIGN. A new leader knows nothing of what its predecessor was doing:
 * that fleetd may have died between starting a migration and ordering its
 * cutover, or between the cutover's announcement and the source's
 * withdrawal. Its memory is gone, so the truth is libvirt's. In rounds, a
 * thread asks every host's libvirtd for every domain, its state and
 * whether a job runs on it (virDomainGetJobInfo: the source of a migration
 * has one; the destination holds a paused incoming copy). While a job or
 * an incoming copy exists, nothing is decided: a p2p migration runs inside
 * the source libvirtd and carries on without the client that started it
 * (docs/design.md), so we wait for it to end, every second, up to the
 * migration timeout plus a margin. Hosts that are not connected are waited
 * for a few seconds, then left out (said so in the journal).
 *
 * Once the dust settles, the model takes what the scan saw (where each VM
 * runs, which are shut off or left paused), and the network is made to
 * match per group of VMs sharing IPs, not per VM: the handover plan
 * (ctl_handover.c) names the group's owner, the running primary no
 * failover replaced, and its orders, all idempotent, are sent: announce
 * where the owner runs, the home edge's /32 towards that host when it is
 * away from home (or the withdrawal of the /32 via each away host that may
 * hold it), withdraw on every other host that libvirt showed holding a
 * copy (where it ran before, where a job or an incoming copy was, where a
 * hot standby runs), and fence for any other running primary claiming the
 * IPs. A hot standby is never announced. A VM name that runs on two hosts
 * is reported loudly and its group left alone: guessing which copy is real
 * could cut the live one.
 *
 * While a reconcile runs the leader starts no migration (the API answers
 * 503, the policy and drains wait).
 */
#include "controller/fleetd.h"
#include "controller/ctl_handover.h"
#include "controller/ctl_post.h"
#include "controller/ctl_virt.h"
#include "common/log.h"
#include "common/util.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_RECON_ROUND_MS 1000	/* while a migration job runs */
#define CTL_RECON_LIST_MS 200	/* while a host's first listing is on its way */
#define CTL_RECON_HOST_WAIT_MS 10000	/* unconnected hosts, then go without them */
#define CTL_RECON_JOB_MARGIN_MS 10000	/* beyond the migration timeout */
#define CTL_RECON_ORDER_MS 3000

/* One domain as a scan saw it. */
struct ctl_recon_dom {
	char name[CTL_NAME_MAX];
	int host;
	int state;		/* enum ctl_vm_state */
	int incoming;		/* paused for an incoming migration */
	int job;		/* a libvirt job runs on it */
	int fleet;		/* carries proxyfleet metadata */
};

struct ctl_recon_scan {
	struct fleetd *env;	/* the loop's; the thread only reads r */
	struct ctl_recon *r;
	unsigned gen;
	int nhosts;
	int *host_ok;
	struct ctl_recon_dom *doms;
	int ndoms, cap;
};

/* A host that held a VM during the reconcile (job, incoming copy). */
struct ctl_recon_inv {
	char vm[CTL_NAME_MAX];
	int host;
};

struct ctl_recon {
	unsigned gen;
	struct ctl_virt *virt;
	struct ctl_post *post;
	int nhosts;
	pthread_t thread;
	int thread_running;
	atomic_int stop;
	struct event *round_ev;
	int64_t t0;		/* mono ms */
	int rounds;
	uint64_t epoch;
	struct ctl_recon_inv *inv;
	int ninv, capinv;
	int waited_jobs;	/* rounds that saw a job or incoming copy */
};

static unsigned ctl_recon_gen;

static void ctl_recon_on_scan(void *arg);

static void
ctl_recon_scan_free(struct ctl_recon_scan *s)
{
	if (!s)
		return;
	free(s->host_ok);
	free(s->doms);
	free(s);
}

static struct ctl_recon_dom *
ctl_recon_add(struct ctl_recon_scan *s)
{
	if (s->ndoms == s->cap) {
		int cap = s->cap ? s->cap * 2 : 64;
		struct ctl_recon_dom *d = realloc(s->doms, (size_t)cap * sizeof(*d));

		if (!d)
			return NULL;
		s->doms = d;
		s->cap = cap;
	}
	memset(&s->doms[s->ndoms], 0, sizeof(s->doms[0]));
	return &s->doms[s->ndoms++];
}

static void
ctl_recon_scan_host(struct ctl_recon *r, struct ctl_recon_scan *s, int h)
{
	virConnectPtr c = ctl_virt_conn(r->virt, h);
	virDomainPtr *doms = NULL;
	int n;

	if (!c)
		return;
	n = virConnectListAllDomains(c, &doms, 0);
	if (n >= 0)
		s->host_ok[h] = 1;
	for (int i = 0; i < n; i++) {
		virDomainPtr d = doms[i];
		struct ctl_recon_dom *rd;
		virDomainJobInfo ji;
		int st = 0, reason = 0;
		char *meta;

		if (virDomainGetState(d, &st, &reason, 0) == 0 && (rd = ctl_recon_add(s))) {
			str_copy(rd->name, virDomainGetName(d), sizeof(rd->name));
			rd->host = h;
			rd->state = st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_BLOCKED ? VM_RUNNING :
			    st == VIR_DOMAIN_PAUSED || st == VIR_DOMAIN_PMSUSPENDED ? VM_PAUSED :
			    VM_SHUTOFF;
			rd->incoming = st == VIR_DOMAIN_PAUSED &&
			    (reason == VIR_DOMAIN_PAUSED_MIGRATION ||
			     reason == VIR_DOMAIN_PAUSED_STARTING_UP);
			/* The source of a migration has the job; drivers without
			 * job info (test://) say so with an error: no job. */
			if (rd->state != VM_SHUTOFF && virDomainGetJobInfo(d, &ji) == 0 &&
			    ji.type != VIR_DOMAIN_JOB_NONE)
				rd->job = 1;
			meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, CTL_META_NS, 0);
			rd->fleet = meta != NULL;
			free(meta);
		}
		virResetLastError();
		virDomainFree(d);
	}
	free(doms);
	virResetLastError();
	virConnectClose(c);
}

static void *
ctl_recon_thread(void *arg)
{
	struct ctl_recon_scan *s = arg;
	struct ctl_recon *r = s->r;

	for (int h = 0; h < s->nhosts && !atomic_load(&r->stop); h++)
		ctl_recon_scan_host(r, s, h);
	while (ctl_post(r->post, ctl_recon_on_scan, s) < 0)
		usleep(10000);	/* the result must arrive: it frees the scan */
	return NULL;
}

static void
ctl_recon_round(struct fleetd *env)
{
	struct ctl_recon *r = env->recon;
	struct ctl_recon_scan *s = calloc(1, sizeof(*s));

	if (s)
		s->host_ok = calloc((size_t)r->nhosts + 1, sizeof(*s->host_ok));
	if (!s || !s->host_ok) {
		ctl_recon_scan_free(s);
		log_warnx("reconcile: out of memory; trying again in %d ms", CTL_RECON_ROUND_MS);
		goto later;
	}
	s->env = env;
	s->r = r;
	s->gen = r->gen;
	s->nhosts = r->nhosts;
	r->rounds++;
	if (pthread_create(&r->thread, NULL, ctl_recon_thread, s) == 0) {
		r->thread_running = 1;
		return;
	}
	ctl_recon_scan_free(s);
	log_warnx("reconcile: cannot start the scan thread; trying again in %d ms",
	    CTL_RECON_ROUND_MS);
later:
	{
		struct timeval tv = { CTL_RECON_ROUND_MS / 1000, (CTL_RECON_ROUND_MS % 1000) * 1000 };

		evtimer_add(r->round_ev, &tv);
	}
}

static void
ctl_recon_round_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fleetd *env = arg;

	(void)fd;
	(void)what;
	if (env->recon)
		ctl_recon_round(env);
}

static void
ctl_recon_free(struct fleetd *env)
{
	struct ctl_recon *r = env->recon;

	if (!r)
		return;
	atomic_store(&r->stop, 1);
	if (r->thread_running) {
		pthread_join(r->thread, NULL);
		r->thread_running = 0;
	}
	if (r->round_ev)
		event_free(r->round_ev);
	free(r->inv);
	free(r);
	env->recon = NULL;
}

void
ctl_recon_stop(struct fleetd *env)
{
	if (env->recon)
		log_info("reconcile stopped rounds=%d", env->recon->rounds);
	ctl_recon_free(env);
}

void
ctl_recon_start(struct fleetd *env)
{
	struct ctl_recon *r;

	ctl_recon_free(env);
	r = calloc(1, sizeof(*r));
	if (!r || !(r->round_ev = evtimer_new(env->base, ctl_recon_round_cb, env))) {
		free(r);
		log_error("reconcile: out of memory: the network is NOT reconciled");
		return;
	}
	r->gen = ++ctl_recon_gen;
	r->virt = env->virt;
	r->post = env->post;
	r->nhosts = env->model.nhosts;
	r->t0 = clock_mono_ms();
	r->epoch = env->lead.epoch;
	env->recon = r;
	log_info("reconcile start epoch=%llu hosts=%d vms_known=%d", (unsigned long long)r->epoch,
	    r->nhosts, env->model.nvms);
	ctl_recon_round(env);
}

static void
ctl_recon_inv_add(struct ctl_recon *r, const char *vm, int host)
{
	for (int i = 0; i < r->ninv; i++)
		if (r->inv[i].host == host && strcmp(r->inv[i].vm, vm) == 0)
			return;
	if (r->ninv == r->capinv) {
		int cap = r->capinv ? r->capinv * 2 : 16;
		struct ctl_recon_inv *p = realloc(r->inv, (size_t)cap * sizeof(*p));

		if (!p)
			return;
		r->inv = p;
		r->capinv = cap;
	}
	str_copy(r->inv[r->ninv].vm, vm, sizeof(r->inv[0].vm));
	r->inv[r->ninv++].host = host;
}

static int
ctl_recon_cmp(const void *a, const void *b)
{
	const struct ctl_recon_dom *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : x->host - y->host;
}

struct ctl_recon_order {
	char vm[CTL_NAME_MAX];
	char agent[CTL_NAME_MAX];
	char op[16];
};

static void
ctl_recon_order_done(struct fleetd *env, void *arg, int ok, const char *error, int64_t took_us)
{
	struct ctl_recon_order *o = arg;

	(void)env;
	if (!ok)
		log_warnx("reconcile order failed vm=%s agent=%s op=%s error=\"%s\"", o->vm, o->agent,
		    o->op, error);
	else
		log_debug("reconcile order ok vm=%s agent=%s op=%s agent_us=%lld", o->vm, o->agent,
		    o->op, (long long)took_us);
	free(o);
}

/* One order; appends "agent:op" to what (for the journal). 0 or -1. */
static int
ctl_recon_order(struct fleetd *env, const struct ctl_vm *vm, const char *agent, const char *op,
    const char *dev, const char *via, char *what, size_t wlen)
{
	struct ctl_recon_order *o = calloc(1, sizeof(*o));
	size_t n = strlen(what);

	if (!o)
		return -1;
	str_copy(o->vm, vm->name, sizeof(o->vm));
	str_copy(o->agent, agent, sizeof(o->agent));
	str_copy(o->op, op, sizeof(o->op));
	if (ctl_order_send(env, agent, op, vm, dev, via, CTL_RECON_ORDER_MS, ctl_recon_order_done,
	    o) < 0) {
		free(o);
		snprintf(what + n, wlen - n, "%s%s:%s(NOT-SENT)", n ? "," : "", agent, op);
		return -1;
	}
	snprintf(what + n, wlen - n, "%s%s:%s", n ? "," : "", agent, op);
	return 0;
}

/* What the scan says of one model VM (parallel to model->vms). */
struct ctl_recon_seen {
	int live[8], nlive;	/* hosts where it runs */
	int paused;		/* paused, not for an incoming copy: holds IPs, serves not */
	int busy;		/* a job or an incoming copy */
	int held[12], nheld;	/* where it ran or was: routes to take back */
	char on[200];
};

static int
ctl_recon_index(const struct ctl_model *m, const char *name)
{
	for (int lo = 0, hi = m->nvms; lo < hi;) {
		int mid = (lo + hi) / 2, c = strcmp(m->vms[mid]->name, name);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void
ctl_recon_held_add(struct ctl_recon_seen *sv, int h)
{
	if (h < 0)
		return;
	for (int i = 0; i < sv->nheld; i++)
		if (sv->held[i] == h)
			return;
	if (sv->nheld < (int)PF_ARRAY_LEN(sv->held))
		sv->held[sv->nheld++] = h;
}

/* Pass 1: the scan's view of vm, and the model brought to it. */
static void
ctl_recon_see(struct fleetd *env, struct ctl_recon_scan *s, struct ctl_vm *vm,
    struct ctl_recon_seen *sv)
{
	struct ctl_recon *r = env->recon;
	struct ctl_model *m = &env->model;
	struct ctl_recon_dom key, *d = NULL;
	size_t on_n = 0;
	int shutoff = 0;

	memset(&key, 0, sizeof(key));
	str_copy(key.name, vm->name, sizeof(key.name));
	key.host = -1;
	/* The first entry for this name, then its neighbours. */
	for (int lo = 0, hi = s->ndoms; lo < hi;) {
		int mid = (lo + hi) / 2;

		if (ctl_recon_cmp(&s->doms[mid], &key) < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
			if (strcmp(s->doms[mid].name, vm->name) == 0)
				d = &s->doms[mid];
		}
	}
	for (; d && d < s->doms + s->ndoms && strcmp(d->name, vm->name) == 0; d++) {
		if (d->job || d->incoming)
			sv->busy = 1;
		if (d->state == VM_PAUSED && !d->incoming)
			sv->paused = 1;
		if (d->state == VM_SHUTOFF)
			shutoff = 1;
		if (d->state == VM_RUNNING && sv->nlive < (int)PF_ARRAY_LEN(sv->live)) {
			sv->live[sv->nlive++] = d->host;
			on_n += (size_t)snprintf(sv->on + on_n, sizeof(sv->on) - on_n, "%s%s",
			    on_n ? "," : "", m->hosts[d->host].conf->name);
			if (on_n >= sizeof(sv->on))
				on_n = sizeof(sv->on) - 1;
		}
	}
	ctl_recon_held_add(sv, vm->prev_host);
	ctl_recon_held_add(sv, vm->host);
	for (int k = 0; k < r->ninv; k++)
		if (strcmp(r->inv[k].vm, vm->name) == 0)
			ctl_recon_held_add(sv, r->inv[k].host);
	if (sv->busy || sv->nlive > 1)
		return;
	if (sv->nlive == 1) {
		if (vm->host != sv->live[0] && vm->host >= 0)
			vm->prev_host = vm->host;
		vm->host = sv->live[0];
		vm->state = VM_RUNNING;
	} else if (sv->paused) {
		vm->state = VM_PAUSED;	/* a source left paused: it serves nobody */
	} else if (shutoff) {
		vm->state = VM_SHUTOFF;
	} else if (vm->host >= 0 && vm->host < s->nhosts && s->host_ok[vm->host]) {
		/* Listed nowhere, its host answered: gone, not an owner (the
		 * next listing removes it). */
		vm->state = VM_UNKNOWN;
	}
}

/* Pass 2: the handover plan of vm's group, sent when vm owns the IPs.
 * 1 when it announced, 0 when it is not the group's turn, -1 unsettled. */
static int
ctl_recon_group(struct fleetd *env, struct ctl_vm *vm, struct ctl_recon_seen *seen,
    int64_t waited)
{
	struct ctl_model *m = &env->model;
	struct ctl_recon_seen *sv = &seen[ctl_recon_index(m, vm->name)];
	struct ctl_recon_seen all = { .nheld = 0 };
	struct ctl_ho_in in = { .vm = vm, .at = sv->live[0], .sweep = 1 };
	struct ctl_ho_plan plan;
	char what[600] = "", fenced[200] = "";
	size_t fn = 0;
	int failed = 0;

	if (ctl_ho_plan(m, &in, &plan) == 0 || plan.owner != vm)
		return 0;
	/* The routes any copy of the group left anywhere go too. */
	for (int i = 0; i < plan.ngroup; i++) {
		int k = ctl_recon_index(m, plan.group[i]->name);

		if (k < 0)
			continue;
		if (seen[k].busy || seen[k].nlive > 1) {
			ctl_journal(env, "vm", "reconcile vm=%s on=%s action=none why=\"%s of its group "
			    "is %s\"", vm->name, sv->on, plan.group[i]->name, seen[k].busy ?
			    "in a libvirt migration job" : "running on two hosts");
			return -1;
		}
		for (int h = 0; h < seen[k].nheld; h++)
			ctl_recon_held_add(&all, seen[k].held[h]);
	}
	in.held = all.held;
	in.nheld = all.nheld;
	ctl_ho_plan(m, &in, &plan);
	for (int i = 0; i < plan.n; i++) {
		const struct ctl_ho_order *o = &plan.o[i];
		struct ctl_ho_dest d;

		ctl_ho_dest(m, &plan, o, &d);
		failed |= ctl_recon_order(env, o->vm, d.agent,
		    ctl_ho_op_name(o->op), d.dev, d.via, what, sizeof(what)) < 0;
		if (o->op == HO_FENCE) {
			fn += (size_t)snprintf(fenced + fn, sizeof(fenced) - fn, "%s%s@%s", fn ? "," : "",
			    o->vm->name, m->hosts[o->host].conf->name);
			if (fn >= sizeof(fenced))
				fn = sizeof(fenced) - 1;
		}
	}
	if (plan.ndoubled)
		log_error("reconcile vm=%s: %d other running primar%s claim its IPs; fenced %s",
		    vm->name, plan.ndoubled, plan.ndoubled == 1 ? "y" : "ies", fenced);
	ctl_journal(env, "vm", "reconcile vm=%s on=%s action=announce group=%d doubled=%d fenced=%s "
	    "orders=%s waited_ms=%lld%s%s", vm->name, m->hosts[plan.at].conf->name, plan.ngroup,
	    plan.ndoubled, fn ? fenced : "-", what, (long long)waited,
	    plan.truncated ? " truncated=1" : "",
	    failed ? " error=\"some orders could not be sent\"" : "");
	return 1;
}

/* Send every order of plan (appending "agent:op" to what). */
static void
ctl_recon_send(struct fleetd *env, const struct ctl_ho_plan *plan, char *what, size_t wlen)
{
	for (int i = 0; i < plan->n; i++) {
		struct ctl_ho_dest d;

		ctl_ho_dest(&env->model, plan, &plan->o[i], &d);
		ctl_recon_order(env, plan->o[i].vm, d.agent, ctl_ho_op_name(plan->o[i].op), d.dev,
		    d.via, what, wlen);
	}
}

/* Send the plan of vm's group (vm any member), unless something in the
 * group is moving or being promoted. 1 sent, 0 nothing to send (no owner),
 * -1 left out (busy). */
static int
ctl_recon_replan(struct fleetd *env, const struct ctl_vm *vm, const struct ctl_vm **owner,
    char *what, size_t wlen)
{
	struct ctl_ho_in in = { .vm = vm, .at = -1, .sweep = 1 };
	struct ctl_ho_plan plan;

	*owner = NULL;
	if (ctl_ho_plan(&env->model, &in, &plan) == 0)
		return 0;
	*owner = plan.owner;
	for (int i = 0; i < plan.ngroup; i++)
		if (plan.group[i]->migration || plan.group[i]->failover)
			return -1;
	ctl_recon_send(env, &plan, what, wlen);
	return 1;
}

int
ctl_recon_host(struct fleetd *env, int h, const char *why)
{
	struct ctl_model *m = &env->model;
	const struct ctl_vm **done = calloc((size_t)m->nvms + 1, sizeof(*done));
	char what[1200] = "";
	int ndone = 0, groups = 0, skipped = 0, unknown = 0;
	int64_t t0 = clock_mono_ms();

	if (!done || !ctl_leader_is(env) || env->recon) {
		free(done);
		return -1;
	}
	/* What runs on h must be known first: a host whose libvirt has not
	 * listed its domains since it came back would be stated empty, and
	 * its agent would delete every route. */
	if (!m->hosts[h].connected || !m->hosts[h].listed) {
		free(done);
		return 1;
	}
	for (int i = 0; i < m->nvms; i++) {
		const struct ctl_vm *vm = m->vms[i], *owner;
		int seen = 0, r;

		if (vm->host == h && vm->state == VM_UNKNOWN) {
			unknown++;	/* not listed since the host came back */
			continue;
		}
		if (vm->host != h || (vm->state != VM_RUNNING && vm->state != VM_PAUSED))
			continue;
		/* One plan per group: skip a VM whose group's owner was done. */
		for (int k = 0; k < ndone && !seen; k++)
			seen = done[k] == vm || (ctl_ho_shares(done[k], vm));
		if (seen)
			continue;
		r = ctl_recon_replan(env, vm, &owner, what, sizeof(what));
		if (r < 0) {
			skipped++;
			continue;
		}
		done[ndone++] = owner ? owner : vm;
		groups += r > 0;
	}
	free(done);
	/* Everything this agent should carry has been stated: the marker. A
	 * group left out (moving, in a promotion) is stated by its own
	 * executor when it ends; the hash stays unmarked until then. */
	if (!skipped && !unknown)
		ctl_order_mark(env, m->hosts[h].conf->name);
	ctl_journal(env, "host", "replan host=%s gen=%llu why=\"%s\" groups=%d left_out=%d "
	    "unknown=%d orders=%s took_ms=%lld", m->hosts[h].conf->name,
	    (unsigned long long)m->hosts[h].gen, why, groups, skipped, unknown,
	    what[0] ? what : "-", (long long)(clock_mono_ms() - t0));
	return unknown;
}

void
ctl_recon_found(struct fleetd *env, struct ctl_vm *vm, const char *why)
{
	struct ctl_ho_in in = { .vm = vm, .at = vm->host, .sweep = 1 };
	struct ctl_ho_plan plan;
	char what[600] = "";

	if (!ctl_leader_is(env) || env->recon || vm->state != VM_RUNNING || vm->host < 0 ||
	    vm->migration || vm->failover)
		return;
	if (ctl_ho_plan(&env->model, &in, &plan) == 0 || plan.owner != vm)
		return;	/* a standby, a replaced copy: nothing of its own to carry */
	ctl_recon_send(env, &plan, what, sizeof(what));
	ctl_journal(env, "vm", "network vm=%s on=%s why=\"%s\" orders=%s", vm->name,
	    env->model.hosts[vm->host].conf->name, why, what);
}

void
ctl_recon_vanished(struct fleetd *env, struct ctl_vm *vm)
{
	const struct ctl_conf_host *hc;
	int home;
	char what[300] = "";

	/* Shut off counts too: its statements must not outlive it (a VM
	 * destroyed, then undefined, would leave the edge routing its IPs to
	 * a host where nothing serves them, against a new VM at home). */
	if (!ctl_leader_is(env) || env->recon || (vm->state != VM_RUNNING &&
	    vm->state != VM_SHUTOFF && vm->state != VM_PAUSED) || vm->host < 0 ||
	    vm->migration || vm->failover || vm->meta.role != ROLE_PRIMARY || vm->meta.nips == 0)
		return;
	/* Another copy of its IPs runs on that host (a promoted standby): the
	 * routes there are that copy's now. */
	for (int i = 0; i < env->model.nvms; i++) {
		const struct ctl_vm *o = env->model.vms[i];

		if (o != vm && o->host == vm->host && o->state == VM_RUNNING && ctl_ho_shares(o, vm))
			return;
	}
	/* Its routes where it ran, and the edge's /32 towards that host. */
	hc = env->model.hosts[vm->host].conf;
	home = ctl_ho_home(&env->model, vm);
	ctl_recon_order(env, vm, hc->name, "withdraw", hc->bridge, NULL, what, sizeof(what));
	if (home >= 0 && env->conf->regions[home].edge[0] && env->model.hosts[vm->host].region != home)
		ctl_recon_order(env, vm, env->conf->regions[home].edge, "withdraw", NULL, hc->address,
		    what, sizeof(what));
	ctl_journal(env, "vm", "network vm=%s on=%s why=\"vanished\" orders=%s", vm->name,
	    hc->name, what);
}

static void
ctl_recon_finish(struct fleetd *env, struct ctl_recon_scan *s, int64_t waited, int timed_out)
{
	struct ctl_recon *r = env->recon;
	struct ctl_model *m = &env->model;
	int announced = 0, doubled = 0, unsettled = 0, none = 0;
	struct ctl_recon_seen *seen = calloc((size_t)m->nvms + 1, sizeof(*seen));

	if (!seen) {
		log_error("reconcile: out of memory: the network is NOT reconciled");
		return;
	}
	if (s->ndoms > 1)	/* no domains at all: doms is NULL, which qsort may not take */
		qsort(s->doms, (size_t)s->ndoms, sizeof(*s->doms), ctl_recon_cmp);
	for (int h = 0; h < s->nhosts; h++)
		if (!s->host_ok[h])
			ctl_journal(env, "vm", "reconcile host=%s skipped why=\"libvirt not connected\"",
			    m->hosts[h].conf->name);
	for (int i = 0; i < m->nvms; i++)
		ctl_recon_see(env, s, m->vms[i], &seen[i]);
	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *vm = m->vms[i];
		struct ctl_recon_seen *sv = &seen[i];

		if (sv->busy) {
			unsettled++;
			ctl_journal(env, "vm", "reconcile vm=%s on=%s action=none why=\"a libvirt "
			    "migration job is still active after %lld ms\"", vm->name,
			    sv->nlive ? sv->on : "-", (long long)waited);
		} else if (sv->nlive > 1) {
			doubled++;
			log_error("reconcile vm=%s runs on %d hosts (%s): two live copies, nothing "
			    "announced; an operator must decide", vm->name, sv->nlive, sv->on);
			ctl_journal(env, "vm", "reconcile vm=%s on=%s action=none why=\"running on "
			    "%d hosts: not guessing which copy is real\"", vm->name, sv->on, sv->nlive);
		} else if (sv->nlive == 0) {
			none++;	/* shut off (a warm standby), paused or gone */
			if (sv->paused)
				ctl_journal(env, "vm", "reconcile vm=%s action=none why=\"paused: not "
				    "announced\"", vm->name);
		} else {
			int rc = ctl_recon_group(env, vm, seen, waited);

			announced += rc > 0;
			unsettled += rc < 0;
		}
	}
	/* Agents whose statements are now complete get their marker: a host
	 * listed by this scan with nothing of its own left unsettled, and the
	 * edges when nothing anywhere was. */
	{
		int *open = calloc((size_t)m->nhosts + 1, sizeof(*open)), any = 0, marked = 0;

		/* A fleet VM the scan saw and the model does not know yet: its
		 * host's statements are not complete. */
		for (int i = 0; open && i < s->ndoms; i++) {
			if (s->doms[i].fleet && s->doms[i].state != VM_SHUTOFF &&
			    !ctl_vm_find(m, s->doms[i].name) && s->doms[i].host < m->nhosts) {
				open[s->doms[i].host] = 1;
				any = 1;
			}
		}

		for (int i = 0; open && i < m->nvms; i++) {
			struct ctl_recon_seen *sv = &seen[i];

			if (!sv->busy && sv->nlive <= 1 && !m->vms[i]->migration && !m->vms[i]->failover)
				continue;
			any = 1;
			if (m->vms[i]->host >= 0 && m->vms[i]->host < m->nhosts)
				open[m->vms[i]->host] = 1;
			for (int k = 0; k < sv->nlive; k++)
				open[sv->live[k]] = 1;
			for (int k = 0; k < sv->nheld; k++)
				open[sv->held[k]] = 1;
		}
		for (int h = 0; open && h < m->nhosts && h < s->nhosts; h++) {
			/* Planned by this reconcile, marked or not: a re-plan of the
			 * host must not undo what it chose to leave alone. */
			if (s->host_ok[h])
				m->hosts[h].gen_planned = m->hosts[h].gen;
			if (!s->host_ok[h] || open[h] || unsettled) {
				any = 1;
				continue;
			}
			marked += ctl_order_mark(env, m->hosts[h].conf->name) == 0;
		}
		for (int g = 0; open && !any && g < env->conf->nregions; g++)
			if (env->conf->regions[g].edge[0])
				marked += ctl_order_mark(env, env->conf->regions[g].edge) == 0;
		log_info("reconcile statements marked complete for %d agents%s", marked,
		    any ? " (not for those with something unsettled)" : "");
		free(open);
	}
	free(seen);
	ctl_model_tally(m);
	ctl_journal(env, "leader", "reconcile done epoch=%llu vms=%d announced=%d two_hosts=%d "
	    "unsettled=%d not_running=%d rounds=%d waited_jobs=%d took_ms=%lld%s",
	    (unsigned long long)r->epoch, m->nvms, announced, doubled, unsettled, none, r->rounds,
	    r->waited_jobs, (long long)waited, timed_out ? " timed_out=1" : "");
}

static void
ctl_recon_on_scan(void *arg)
{
	struct ctl_recon_scan *s = arg;
	struct fleetd *env = s->env;
	struct ctl_recon *r = env->recon;
	int64_t waited;
	int hosts_missing = 0, busy = 0, unknown = 0, timed_out = 0;
	struct timeval tv = { CTL_RECON_ROUND_MS / 1000, (CTL_RECON_ROUND_MS % 1000) * 1000 };

	if (!r || r->gen != s->gen) {
		ctl_recon_scan_free(s);	/* a reconcile that was stopped */
		return;
	}
	if (r->thread_running) {
		pthread_join(r->thread, NULL);
		r->thread_running = 0;
	}
	waited = clock_mono_ms() - r->t0;
	/* A host whose libvirt does not answer is waited for while its agent
	 * holds its lease (it may be restarting); one without a lease is
	 * dead or cut off, and the failover watch, not the reconcile, acts. */
	for (int h = 0; h < s->nhosts; h++)
		hosts_missing += !s->host_ok[h] && env->model.hosts[h].lease_ok;
	for (int i = 0; i < s->ndoms; i++) {
		struct ctl_recon_dom *d = &s->doms[i];

		if (!d->fleet)
			continue;
		if (d->job || d->incoming) {
			busy++;
			ctl_recon_inv_add(r, d->name, d->host);
			log_info("reconcile wait vm=%s host=%s job=%d incoming=%d waited_ms=%lld",
			    d->name, env->model.hosts[d->host].conf->name, d->job, d->incoming,
			    (long long)waited);
		}
		/* A fleet VM the model has not listed yet: the host's first
		 * listing is still on its way. */
		if (d->state != VM_SHUTOFF && !ctl_vm_find(&env->model, d->name))
			unknown++;
	}
	if (busy)
		r->waited_jobs++;
	if (busy && waited > env->conf->mig_timeout_ms + CTL_RECON_JOB_MARGIN_MS)
		timed_out = 1;
	else if (busy)
		goto again;
	if ((hosts_missing || unknown) && waited < CTL_RECON_HOST_WAIT_MS) {
		tv.tv_sec = 0;
		tv.tv_usec = CTL_RECON_LIST_MS * 1000;
		goto again;
	}
	ctl_recon_finish(env, s, waited, timed_out);
	ctl_recon_scan_free(s);
	ctl_recon_free(env);
	return;
again:
	ctl_recon_scan_free(s);
	evtimer_add(r->round_ev, &tv);
}
