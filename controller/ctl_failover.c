/*
 * ctl_failover.c: dead hosts and standby promotion.
 *
 * DESIGN. Every [failover] poll (100 ms) one PTTL per host reads the agents'
 * leases. A lease that was there and is gone starts a probe of the host's
 * libvirt port (off the loop, [failover] probe_timeout). Both failed: the
 * host is dead, and each protected primary on it fails over to its standby.
 * The agent of a host that is alive but cut off fenced itself before Redis
 * dropped its key (netmigrated fences at lease - lease/8, counted from the
 * send): the primaries' bridge ports are down, so by the time the loss is
 * seen here nothing on that host answers for the IPs. If libvirt still
 * answers (the agent died, or only Redis is out of its reach), fleetd does
 * not trust that the agent fenced: it destroys the primary through libvirt
 * first. Either way no moment has two copies answering.
 *
 * Promotion of standby S for primary P: (warm: start S, wait for its
 * telemetry), bind P's service IPs inside S (POST /service/bind on its
 * management address), then order S's host agent to announce them (GARP /
 * unsolicited NA from S's MAC) and the home region's edge to route them to
 * S's host when S is away from home. The ack of the announcement is the
 * moment S serves; the journal has heartbeat-to-serving (the lease's last
 * renewal, as read from its TTL, to that ack) and each step's time. S then
 * becomes the primary in its metadata (replaces=P), the replica policy gives
 * it a new standby, and P is removed once its host answers again.
 *
 * A switchover (planned failover) is the same walk started from a healthy
 * pair: P's agent fences P (port down, routes withdrawn) first, then S is
 * promoted. Failback is a switchover back, or a live migration.
 *
 * Guard: when most hosts lose their leases at once, the likely cause is
 * Redis (restarted without its data, or unreachable for the agents), not
 * the hosts; nothing fails over then, and the journal says why.
 */
#include "controller/fleetd.h"
#include "controller/ctl_handover.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_FO_KEEP 50
#define CTL_FO_BIND_TRIES 20
#define CTL_FO_UP_MS 60000	/* a warm standby has this long to boot */
#define CTL_FO_ORDER_MS 3000
#define CTL_FO_RETRY_MS 5000	/* a host's failed promotions are tried again */
#define CTL_FO_REPLAN_MS 1000	/* a host plan that left groups out: again after */

enum ctl_fo_phase { FO_FENCE, FO_START, FO_WAIT_UP, FO_BIND, FO_ANNOUNCE, FO_DONE, FO_FAILED };

static const char *const ctl_fo_phases[] = {
	"fence", "start", "wait-up", "bind", "announce", "done", "failed",
};

struct ctl_fo {
	struct ctl_fo *next;
	struct fleetd *env;
	unsigned id;
	char vm[CTL_NAME_MAX], sb[CTL_NAME_MAX];
	int from, to;
	int planned;
	int fence_libvirt;	/* libvirt answered: destroy P before promoting */
	char reason[200];
	enum ctl_fo_phase phase;
	int64_t wall_start_ms;
	int64_t t_heartbeat, t_detect, t_start, t_bound, t_serving, t_end;	/* mono ms */
	int bind_tries;
	int bind_code;		/* the standby's last answer other than 200 (0: none) */
	int bind_inflight;
	int pending;
	struct evhttp_connection *cn;
	char error[256];
};

struct ctl_fo_lease {
	struct fleetd *env;
	int host;
};

static struct ctl_fo_lease *ctl_fo_leases;

static struct ctl_fo *
ctl_fo_find(struct fleetd *env, unsigned id)
{
	for (struct ctl_fo *f = env->fos; f; f = f->next)
		if (f->id == id)
			return f;
	return NULL;
}

static const char *
ctl_hname(const struct fleetd *env, int h)
{
	return h >= 0 ? env->model.hosts[h].conf->name : "-";
}

static void ctl_fo_step(struct fleetd *env, struct ctl_fo *f);

/* How long a lease must stay away before fleetd fences through a libvirt
 * that still answers: an agent that restarts waits out its predecessor's
 * lease, so its key is absent for up to a third of a lease. */
static int64_t
ctl_fo_grace(const struct ctl_host *host)
{
	return (host->fo_lease_ms ? host->fo_lease_ms : 3000) / 2 + 100;
}

static void
ctl_fo_end(struct fleetd *env, struct ctl_fo *f, enum ctl_fo_phase end, const char *error)
{
	struct ctl_vm *p = ctl_vm_find(&env->model, f->vm), *s = ctl_vm_find(&env->model, f->sb);
	enum ctl_fo_phase at = f->phase;

	f->phase = end;
	f->t_end = clock_mono_ms();
	if (p)
		p->failover = 0;
	if (s)
		s->failover = 0;
	if (end == FO_FAILED) {
		/* A switchover that fenced the primary and then failed: the
		 * primary is still the one that serves, so its group's plan is
		 * sent again (its announcement brings the port back up). A
		 * leader that stepped down sends nothing; the next one's
		 * reconcile states the same plan. */
		if (f->planned && at > FO_FENCE && p && p->host == f->from)
			ctl_recon_found(env, p, "switchover failed: the primary serves on");
		str_copy(f->error, error, sizeof(f->error));
		env->stats.failovers_failed++;
		ctl_journal(env, "failover", "failed id=%u vm=%s standby=%s from=%s to=%s phase=%s "
		    "took_ms=%lld error=\"%s\"", f->id, f->vm, f->sb, ctl_hname(env, f->from),
		    ctl_hname(env, f->to), ctl_fo_phases[at], (long long)(f->t_end - f->t_detect),
		    error);
		return;
	}
	if (f->planned)
		env->stats.switchovers++;
	else
		env->stats.failovers++;
	env->stats.last_failover_ms = f->t_serving - (f->t_heartbeat ? f->t_heartbeat : f->t_detect);
	ctl_journal(env, "failover", "%s id=%u vm=%s standby=%s from=%s to=%s "
	    "heartbeat_to_serving_ms=%lld detect_to_serving_ms=%lld bind_ms=%lld announce_ms=%lld "
	    "reason=\"%s\"", f->planned ? "switched" : "served", f->id, f->vm, f->sb,
	    ctl_hname(env, f->from), ctl_hname(env, f->to),
	    f->t_heartbeat ? (long long)(f->t_serving - f->t_heartbeat) : -1LL,
	    (long long)(f->t_serving - f->t_detect), (long long)(f->t_bound - f->t_start),
	    (long long)(f->t_serving - f->t_bound), f->reason);
	/* The standby is the primary now; the old one is a stale copy. */
	if (s) {
		s->meta.role = ROLE_PRIMARY;
		s->meta.peer[0] = '\0';
		str_copy(s->meta.replaces, f->vm, sizeof(s->meta.replaces));
		if (p) {
			s->meta.protect = p->meta.protect;
			s->meta.pin = p->meta.pin;
			str_copy(s->meta.sb_region, p->meta.sb_region, sizeof(s->meta.sb_region));
		}
		if (ctl_meta_write(env, s) < 0) {
			/* The model keeps the new role; the tick writes it. */
			log_warnx("cannot record %s as primary in libvirt now; retrying on the tick",
			    s->name);
			s->meta_pending = s->meta_dirty = 1;
		}
	}
}

/* ----- steps ---------------------------------------------------------------- */

static void
ctl_fo_order_done(struct fleetd *env, void *arg, int ok, const char *error, int64_t took_us)
{
	unsigned id = (unsigned)(uintptr_t)arg >> 1;
	int host_ack = (int)((uintptr_t)arg & 1);
	struct ctl_fo *f = ctl_fo_find(env, id);

	if (!f || f->phase >= FO_DONE)
		return;
	f->pending--;
	if (!ok) {
		if (f->phase == FO_FENCE || host_ack) {
			char why[300];

			snprintf(why, sizeof(why), "%s order failed: %s", ctl_fo_phases[f->phase], error);
			ctl_fo_end(env, f, FO_FAILED, why);
			return;
		}
		log_warnx("failover id=%u edge order failed: %s (the VM serves on its segment)", id,
		    error);
	}
	if (f->phase == FO_FENCE) {
		log_info("failover id=%u fenced vm=%s on=%s agent_us=%lld", id, f->vm,
		    ctl_hname(env, f->from), (long long)took_us);
		f->phase = FO_START;
		ctl_fo_step(env, f);
		return;
	}
	if (host_ack && ok)
		f->t_serving = clock_mono_ms();
	if (f->pending == 0 && f->t_serving)
		ctl_fo_end(env, f, FO_DONE, NULL);
}

static int
ctl_fo_order(struct fleetd *env, struct ctl_fo *f, const char *agent, const char *op,
    const struct ctl_vm *vm, const char *dev, const char *via, int host_ack)
{
	void *arg = (void *)(((uintptr_t)f->id << 1) | (uintptr_t)(host_ack ? 1 : 0));

	if (ctl_order_send(env, agent, op, vm, dev, via, CTL_FO_ORDER_MS, ctl_fo_order_done, arg) < 0)
		return -1;
	f->pending++;
	return 0;
}

/* The handover plan with S promoted: S's host announces, the home edge
 * routes the IPs to S's host while S is away from home (or stops routing
 * them to the old host if that was away). What the plan cleans elsewhere
 * the walk has done already: the fence phase (switchover), or the dead
 * host's own fence. */
static void
ctl_fo_announce(struct fleetd *env, struct ctl_fo *f)
{
	struct ctl_vm *s = ctl_vm_find(&env->model, f->sb);
	struct ctl_ho_in in = { .at = f->to, .held = &f->from, .nheld = f->from >= 0 };
	struct ctl_ho_plan plan;

	if (!s) {
		ctl_fo_end(env, f, FO_FAILED, "the standby vanished");
		return;
	}
	f->phase = FO_ANNOUNCE;
	in.vm = in.promote = s;
	if (ctl_ho_plan(&env->model, &in, &plan) == 0) {
		ctl_fo_end(env, f, FO_FAILED, plan.why);
		return;
	}
	for (int i = 0; i < plan.n; i++) {
		const struct ctl_ho_order *o = &plan.o[i];
		struct ctl_ho_dest d;
		int owner = o->part == HO_PART_OWNER;

		if (o->part == HO_PART_CLEAN)
			continue;
		ctl_ho_dest(&env->model, &plan, o, &d);
		if (ctl_fo_order(env, f, d.agent, ctl_ho_op_name(o->op), o->vm, d.dev, d.via,
		    owner) < 0 && owner) {
			ctl_fo_end(env, f, FO_FAILED, "cannot send the announcement (redis down)");
			return;
		}
	}
}

static void
ctl_fo_bind_cb(struct evhttp_request *req, void *arg)
{
	/* f outlives its request: a record is freed only after its
	 * connection, which drops a pending request without calling back. */
	struct ctl_fo *f = arg;
	struct fleetd *env = f->env;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	f->bind_inflight = 0;
	if (f->phase != FO_BIND)
		return;
	if (code == 200) {
		f->t_bound = clock_mono_ms();
		ctl_fo_announce(env, f);
	} else if (code) {
		if (code != f->bind_code)	/* once per answer, not on every retry */
			log_warnx("failover id=%u vm=%s bind refused by standby=%s code=%d%s", f->id,
			    f->vm, f->sb, code, code == 401 ? " why=\"its admin token is not "
			    "[failover] guest_token\"" : "");
		f->bind_code = code;
	}
	/* Otherwise the next poll tries again (ctl_fo_tick counts the tries). */
}

static void
ctl_fo_bind(struct fleetd *env, struct ctl_fo *f)
{
	struct ctl_vm *s = ctl_vm_find(&env->model, f->sb);
	struct evhttp_request *req;
	char ip[CTL_IP_MAX];

	if (!s || !s->meta.mgmt[0]) {
		ctl_fo_end(env, f, FO_FAILED, "the standby has no management address");
		return;
	}
	str_copy(ip, s->meta.mgmt, sizeof(ip));
	ip[strcspn(ip, "/")] = '\0';
	if (!f->cn) {
		f->cn = evhttp_connection_base_new(env->base, NULL, ip, 9180);
		if (!f->cn) {
			ctl_fo_end(env, f, FO_FAILED, "out of memory");
			return;
		}
		evhttp_connection_set_timeout(f->cn, 1);
		evhttp_connection_set_retries(f->cn, 0);
	}
	if (!(req = evhttp_request_new(ctl_fo_bind_cb, f)))
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", ip);
	if (env->conf->fo_guest_token[0]) {
		char auth[160];

		snprintf(auth, sizeof(auth), "Bearer %s", env->conf->fo_guest_token);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization", auth);
	}
	/* Set first: a connect that fails at once calls back from inside. */
	f->bind_inflight = 1;
	if (evhttp_make_request(f->cn, req, EVHTTP_REQ_POST, "/service/bind") < 0) {
		f->bind_inflight = 0;
		log_warnx("failover id=%u bind request to %s failed to start", f->id, ip);
	}
}

static void
ctl_fo_destroy_done(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok,
    const char *error, int64_t took_ms)
{
	struct ctl_fo *f = ctl_fo_find(env, (unsigned)(uintptr_t)arg);
	char why[400];

	(void)j;
	if (!f || f->phase != FO_FENCE)
		return;
	if (!ok) {
		snprintf(why, sizeof(why), "cannot fence %s through libvirt: %s", f->vm, error);
		ctl_fo_end(env, f, FO_FAILED, why);
		return;
	}
	log_info("failover id=%u fenced vm=%s on=%s by=libvirt took_ms=%lld", f->id, f->vm,
	    ctl_hname(env, f->from), (long long)took_ms);
	f->phase = FO_START;
	ctl_fo_step(env, f);
}

static void
ctl_fo_start_done(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok, const char *error,
    int64_t took_ms)
{
	struct ctl_fo *f = ctl_fo_find(env, (unsigned)(uintptr_t)arg);
	char why[400];

	(void)j;
	if (!f || f->phase != FO_START)
		return;
	if (!ok) {
		snprintf(why, sizeof(why), "cannot start the warm standby: %s", error);
		ctl_fo_end(env, f, FO_FAILED, why);
		return;
	}
	log_info("failover id=%u started warm standby=%s took_ms=%lld", f->id, f->sb,
	    (long long)took_ms);
	f->phase = FO_WAIT_UP;
}

static void
ctl_fo_step(struct fleetd *env, struct ctl_fo *f)
{
	struct ctl_vm *p = ctl_vm_find(&env->model, f->vm), *s = ctl_vm_find(&env->model, f->sb);

	switch (f->phase) {
	case FO_FENCE:
		if (f->planned) {
			if (!p || ctl_fo_order(env, f, ctl_hname(env, f->from), "fence", p,
			    env->model.hosts[f->from].conf->bridge, NULL, 0) < 0)
				ctl_fo_end(env, f, FO_FAILED, "cannot order the fence (redis down)");
		} else if (ctl_vjob(env, VJ_DESTROY, f->from, f->vm, ctl_fo_destroy_done,
		    (void *)(uintptr_t)f->id) < 0) {
			ctl_fo_end(env, f, FO_FAILED, "cannot start the libvirt fence");
		}
		return;
	case FO_START:
		if (!s) {
			ctl_fo_end(env, f, FO_FAILED, "the standby vanished");
			return;
		}
		f->t_start = clock_mono_ms();
		if (s->state == VM_RUNNING) {
			f->phase = FO_BIND;
			ctl_fo_bind(env, f);
		} else if (ctl_vjob(env, VJ_START, f->to, f->sb, ctl_fo_start_done,
		    (void *)(uintptr_t)f->id) < 0) {
			ctl_fo_end(env, f, FO_FAILED, "cannot start the warm standby");
		}
		return;
	default:
		return;
	}
}

/* Start promoting standby s of primary p. */
static void
ctl_fo_begin(struct fleetd *env, struct ctl_vm *p, struct ctl_vm *s, int planned,
    int fence_libvirt, int64_t t_heartbeat, const char *reason)
{
	struct ctl_fo *f = calloc(1, sizeof(*f)), **pp;
	int n = 0;

	if (!f)
		return;
	f->env = env;
	f->id = ++env->fo_seq;
	str_copy(f->vm, p->name, sizeof(f->vm));
	str_copy(f->sb, s->name, sizeof(f->sb));
	f->from = p->host;
	f->to = s->host;
	f->planned = planned;
	f->fence_libvirt = fence_libvirt;
	str_copy(f->reason, reason, sizeof(f->reason));
	f->wall_start_ms = clock_wall_ms();
	f->t_detect = f->t_start = clock_mono_ms();
	f->t_heartbeat = t_heartbeat;
	f->phase = planned || fence_libvirt ? FO_FENCE : FO_START;
	p->failover = s->failover = 1;
	f->next = env->fos;
	env->fos = f;
	/* Keep the newest CTL_FO_KEEP finished records. */
	for (pp = &env->fos; *pp;) {
		struct ctl_fo *x = *pp;

		if (++n > CTL_FO_KEEP && x->phase >= FO_DONE) {
			*pp = x->next;
			if (x->cn)
				evhttp_connection_free(x->cn);
			free(x);
		} else {
			pp = &x->next;
		}
	}
	ctl_journal(env, "failover", "%s id=%u vm=%s standby=%s from=%s to=%s mode=%s reason=\"%s\"",
	    planned ? "switchover" : "promote", f->id, f->vm, f->sb, ctl_hname(env, f->from),
	    ctl_hname(env, f->to), s->state == VM_RUNNING ? "hot" : "warm", reason);
	ctl_fo_step(env, f);
}

/* ----- dead hosts ----------------------------------------------------------- */

/* Fail over every protected primary of host h (not yet replaced, not in a
 * promotion already). */
static void
ctl_fo_host(struct fleetd *env, int h, int libvirt_alive, const char *why)
{
	struct ctl_host *host = &env->model.hosts[h];
	int64_t hb = host->fo_lease_ms ? host->fo_expiry_ms - host->fo_lease_ms : 0;
	int n = 0;

	if (!host->fo_acted)
		ctl_journal(env, "host", "%s host=%s heartbeat_age_ms=%lld why=\"%s\"",
		    libvirt_alive ? "lease-lost-libvirt-up" : "dead", host->conf->name,
		    hb ? (long long)(clock_mono_ms() - hb) : -1LL, why);
	host->dead = 1;
	host->fo_acted = 1;
	/* What ran there is unknown until the host lists its domains again. */
	for (int i = 0; i < env->model.nvms; i++)
		if (env->model.vms[i]->host == h && !libvirt_alive)
			env->model.vms[i]->state = VM_UNKNOWN;
	host->fo_retry_ms = clock_mono_ms() + CTL_FO_RETRY_MS;
	for (int i = 0; i < env->model.nvms; i++) {
		struct ctl_vm *p = env->model.vms[i], *s;

		if (p->host != h || p->meta.role != ROLE_PRIMARY || !p->meta.protect || p->failover ||
		    ctl_ho_replaced(&env->model, p))
			continue;
		s = p->meta.peer[0] ? ctl_vm_find(&env->model, p->meta.peer) : NULL;
		if (!s || s->host < 0 || s->host == h || !ctl_host_usable(env, s->host) || s->failover) {
			ctl_journal(env, "failover", "impossible vm=%s host=%s why=\"%s\"", p->name,
			    host->conf->name, !s ? "no standby" : "its standby's host is not usable");
			continue;
		}
		ctl_fo_begin(env, p, s, 0, libvirt_alive, hb, why);
		n++;
	}
	log_info("host failover host=%s promotions=%d", host->conf->name, n);
}

/* The host's lease is back. What its agent fenced comes back through the
 * lease generation: the agent created its key again, so its generation
 * moved, and ctl_fo_gen_cb re-plans the host (the plan says who serves). */
static void
ctl_fo_host_back(struct fleetd *env, int h)
{
	struct ctl_host *host = &env->model.hosts[h];

	ctl_journal(env, "host", "back host=%s (lease renewed)", host->conf->name);
	host->fo_lost = host->fo_probed = host->fo_alive = host->fo_acted = 0;
	host->dead = 0;
}

/* pf:host:<host>:gen, read with each lease poll. A generation not planned
 * for yet (the agent started, or took its lease again after a lapse; a
 * lapse this instance never saw counts the same) gets the host's plan:
 * announcements for what it owns (which brings a fenced port back up),
 * fences for copies a failover replaced. */
static void
ctl_fo_gen_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct ctl_fo_lease *l = priv;
	struct fleetd *env = l->env;
	struct ctl_host *host = &env->model.hosts[l->host];
	redisReply *reply = r;
	int64_t now = clock_mono_ms();
	uint64_t g;
	char why[80];

	(void)ac;
	if (!reply || reply->type != REDIS_REPLY_STRING || env->stopping)
		return;
	/* The value read, not the highest: an agent restarted while Redis
	 * had lost the key counts from 1 again, and that is a new generation
	 * too. */
	g = strtoull(reply->str, NULL, 10);
	host->gen = g;
	if (host->gen == host->gen_planned || !ctl_leader_is(env) || env->recon ||
	    host->fo_expiry_ms <= now || now < host->replan_ms)
		return;
	snprintf(why, sizeof(why), "lease generation %llu (planned for %llu)",
	    (unsigned long long)host->gen, (unsigned long long)host->gen_planned);
	g = host->gen;
	/* VMs not listed yet since the host came back: again after a while
	 * (their state decides their plan). */
	if (ctl_recon_host(env, l->host, why) == 0)
		host->gen_planned = g;
	else
		host->replan_ms = now + CTL_FO_REPLAN_MS;
}

static void
ctl_fo_probe_done(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok, const char *error,
    int64_t took_ms)
{
	int h = (int)(intptr_t)arg;
	struct ctl_host *host = &env->model.hosts[h];
	char why[400];

	(void)j;
	host->fo_probing = 0;
	if (!host->fo_lost || host->fo_acted)
		return;	/* the lease came back meanwhile, or we acted already */
	host->fo_probed = 1;
	host->fo_alive = ok;
	if (!env->conf->fo_enable) {
		ctl_journal(env, "host", "lease-lost host=%s libvirt=%s failover=off", host->conf->name,
		    ok ? "up" : "down");
		host->fo_acted = 1;	/* nothing more until the lease returns */
		host->dead = !ok;
		return;
	}
	if (ok) {
		/* libvirt answers: an agent restarting is absent for a moment
		 * too; the poll acts once the lease has stayed away long enough. */
		log_info("lease gone host=%s but libvirt answers (probe %lld ms): waiting %lld ms "
		    "before fencing through libvirt", host->conf->name, (long long)took_ms,
		    (long long)ctl_fo_grace(host));
		return;
	}
	if (ctl_hb_holds(env, h, why, sizeof(why)))
		return;	/* the next poll acts, once nothing holds it */
	snprintf(why, sizeof(why), "lease expired; libvirt unreachable: %s", error);
	ctl_fo_host(env, h, 0, why);
}

static void
ctl_fo_lease_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct ctl_fo_lease *l = priv;
	struct fleetd *env = l->env;
	struct ctl_host *host = &env->model.hosts[l->host];
	redisReply *reply = r;
	int64_t now = clock_mono_ms();
	int missing = 0;

	(void)ac;
	if (!reply || reply->type != REDIS_REPLY_INTEGER || env->stopping)
		return;
	if (reply->integer > 0) {
		if (host->fo_lost && ctl_leader_is(env))
			ctl_fo_host_back(env, l->host);
		host->fo_lost = 0;
		host->dead = 0;
		host->fo_seen = 1;
		host->fo_expiry_ms = now + reply->integer;
		if (reply->integer > host->fo_lease_ms)
			host->fo_lease_ms = reply->integer;
		return;
	}
	/* Every instance follows the leases, so a new leader knows them at
	 * once; only the leader acts on a loss, also while it reconciles: a
	 * reconcile may wait for a libvirt job for minutes, and the plan it
	 * ends with leaves alone a group a promotion involves. */
	if (reply->integer != -2 || !host->fo_seen || !ctl_leader_is(env))
		return;
	if (!host->fo_lost) {
		host->fo_lost = 1;
		host->fo_lost_ms = now;
		host->fo_probed = host->fo_alive = host->fo_acted = 0;
	}
	if (host->fo_acted) {
		char why[200];

		/* Promotions that failed are tried again, now and then, unless
		 * the host heartbeats again (alive: its lease will follow). */
		if (host->dead && env->conf->fo_enable && now >= host->fo_retry_ms &&
		    !ctl_hb_holds(env, l->host, why, sizeof(why)))
			ctl_fo_host(env, l->host, host->fo_alive, "retry: promotions left after a failure");
		return;
	}
	for (int h = 0; h < env->model.nhosts; h++)
		missing += env->model.hosts[h].fo_seen && env->model.hosts[h].fo_expiry_ms <= now;
	if (env->model.nhosts > 2 && missing * 2 > env->model.nhosts) {
		if (!env->fo_mass) {
			ctl_journal(env, "host", "mass-lease-loss hosts=%d of=%d: holding failover "
			    "(Redis lost its data or the agents lost Redis)", missing, env->model.nhosts);
			env->fo_mass = 1;
		}
		return;
	}
	env->fo_mass = 0;
	{
		char why[200];

		/* The agent still heartbeats to us (cut off from Redis only), or
		 * another leader's grants may still run: nothing is promoted. */
		if (ctl_hb_holds(env, l->host, why, sizeof(why))) {
			if (!host->hb_held)
				ctl_journal(env, "host", "lease-lost host=%s failover=held why=\"%s\"",
				    host->conf->name, why);
			host->hb_held = 1;
			/* What a probe said before, and the grace, count from the end
			 * of the hold: by then they would be stale. */
			host->fo_probed = host->fo_alive = 0;
			host->fo_lost_ms = now;
			return;
		}
		if (host->hb_held)
			log_info("lease still gone host=%s and nothing holds its failover now",
			    host->conf->name);
		host->hb_held = 0;
	}
	if (host->fo_probing)
		return;
	if (!host->fo_probed) {
		log_info("lease gone host=%s: probing libvirt (timeout %lld ms)", host->conf->name,
		    env->conf->fo_probe_ms);
		host->fo_probing = 1;
		if (ctl_vjob_probe(env, l->host, (int)env->conf->fo_probe_ms, ctl_fo_probe_done,
		    (void *)(intptr_t)l->host) < 0)
			host->fo_probing = 0;
		return;
	}
	if (!host->fo_alive) {
		/* The probe found libvirt unreachable while something held the
		 * failover off: act now that nothing does. */
		ctl_fo_host(env, l->host, 0, "lease expired; libvirt unreachable");
		return;
	}
	if (now - host->fo_lost_ms >= ctl_fo_grace(host)) {
		char why[200];

		snprintf(why, sizeof(why), "lease expired and stayed away %lld ms; libvirt answers: "
		    "the agent is gone or cut off from Redis", (long long)(now - host->fo_lost_ms));
		ctl_fo_host(env, l->host, 1, why);
	}
}

/* Promotions waiting on something the poll sees: a warm standby's first
 * telemetry (by fleetd's clock), a bind to retry. A fleetd that is no
 * longer the leader gives its promotions up (the new one decides). */
static void
ctl_fo_tick(struct fleetd *env)
{
	int lead = ctl_leader_is(env);

	for (struct ctl_fo *f = env->fos; f; f = f->next) {
		struct ctl_vm *s = ctl_vm_find(&env->model, f->sb);

		if (f->phase >= FO_DONE)
			continue;
		if (!lead) {
			ctl_fo_end(env, f, FO_FAILED, "this fleetd stepped down");
		} else if (f->phase == FO_WAIT_UP) {
			if (s && s->tel_first_ms >= f->wall_start_ms) {
				f->phase = FO_BIND;
				ctl_fo_bind(env, f);
			} else if (clock_mono_ms() - f->t_start > CTL_FO_UP_MS) {
				ctl_fo_end(env, f, FO_FAILED, "the warm standby did not come up in 60 s");
			}
		} else if (f->phase == FO_BIND && !f->bind_inflight) {
			if (++f->bind_tries > CTL_FO_BIND_TRIES) {
				char why[160];

				if (f->bind_code == 401)
					snprintf(why, sizeof(why), "the standby refused the bind (401): "
					    "its admin token is not [failover] guest_token");
				else if (f->bind_code)
					snprintf(why, sizeof(why), "the standby's admin endpoint did "
					    "not bind the IPs (last answer: HTTP %d)", f->bind_code);
				else
					snprintf(why, sizeof(why), "the standby's admin endpoint did "
					    "not bind the IPs (no answer)");
				ctl_fo_end(env, f, FO_FAILED, why);
			} else
				ctl_fo_bind(env, f);
		}
	}
}

static void
ctl_fo_poll(evutil_socket_t fd, short what, void *arg)
{
	struct fleetd *env = arg;

	(void)fd;
	(void)what;
	if (env->stopping || !rlink_is_up(env->redis))
		return;
	for (int h = 0; h < env->model.nhosts; h++) {
		rlink_command(env->redis, ctl_fo_lease_cb, &ctl_fo_leases[h], "PTTL pf:host:%s:lease",
		    env->model.hosts[h].conf->name);
		rlink_command(env->redis, ctl_fo_gen_cb, &ctl_fo_leases[h], "GET pf:host:%s:gen",
		    env->model.hosts[h].conf->name);
	}
	ctl_fo_tick(env);
}

void
ctl_failover_start(struct fleetd *env)
{
	struct timeval tv = { env->conf->fo_poll_ms / 1000, (env->conf->fo_poll_ms % 1000) * 1000 };

	ctl_fo_leases = calloc((size_t)(env->model.nhosts ? env->model.nhosts : 1),
	    sizeof(*ctl_fo_leases));
	env->fo_ev = event_new(env->base, -1, EV_PERSIST, ctl_fo_poll, env);
	if (!ctl_fo_leases || !env->fo_ev || event_add(env->fo_ev, &tv) < 0)
		fatalx("cannot start the failover watch");
	for (int h = 0; h < env->model.nhosts; h++) {
		ctl_fo_leases[h].env = env;
		ctl_fo_leases[h].host = h;
		/* No fence set written yet: the first tick writes every host's,
		 * replacing what an earlier fleetd left. */
		env->model.hosts[h].fence_known = 0;
	}
}

/* After the Redis links are freed (their callbacks point at the leases). */
void
ctl_failover_stop(struct fleetd *env)
{
	struct ctl_fo *f, *next;

	if (env->fo_ev)
		event_free(env->fo_ev);
	env->fo_ev = NULL;
	for (f = env->fos; f; f = next) {
		next = f->next;
		if (f->cn)
			evhttp_connection_free(f->cn);
		free(f);
	}
	env->fos = NULL;
	free(ctl_fo_leases);
	ctl_fo_leases = NULL;
}

/* ----- switchover and the API ------------------------------------------------ */

int
ctl_switchover(struct fleetd *env, const char *name, char *why, size_t whylen)
{
	struct ctl_vm *p = ctl_vm_find(&env->model, name), *s;

	if (!p) {
		snprintf(why, whylen, "no VM '%s'", name);
		return -1;
	}
	if (p->meta.role != ROLE_PRIMARY) {
		snprintf(why, whylen, "%s is a standby; switch over its primary %s", name,
		    p->meta.peer);
		return -1;
	}
	s = p->meta.peer[0] ? ctl_vm_find(&env->model, p->meta.peer) : NULL;
	if (!s || s->host < 0) {
		snprintf(why, whylen, "%s has no standby", name);
		return -1;
	}
	if (p->failover || s->failover || p->migration || s->migration || ctl_vjob_busy(env, name) ||
	    ctl_vjob_busy(env, s->name)) {
		snprintf(why, whylen, "%s or its standby is busy (migration, failover or libvirt job)",
		    name);
		return -1;
	}
	if (p->state != VM_RUNNING || p->host < 0 || !env->model.hosts[p->host].lease_ok) {
		snprintf(why, whylen, "%s is not running on a leased host: that is a failover, "
		    "not a switchover", name);
		return -1;
	}
	if (!ctl_host_usable(env, s->host)) {
		snprintf(why, whylen, "the standby's host %s is not usable",
		    env->model.hosts[s->host].conf->name);
		return -1;
	}
	ctl_fo_begin(env, p, s, 1, 0, 0, "switchover by the operator");
	return 0;
}

cJSON *
ctl_failover_json(struct fleetd *env)
{
	cJSON *arr = cJSON_CreateArray();

	for (struct ctl_fo *f = env->fos; f && arr; f = f->next) {
		cJSON *o = cJSON_CreateObject();

		if (!o)
			break;
		cJSON_AddNumberToObject(o, "id", f->id);
		cJSON_AddStringToObject(o, "vm", f->vm);
		cJSON_AddStringToObject(o, "standby", f->sb);
		cJSON_AddStringToObject(o, "from", ctl_hname(env, f->from));
		cJSON_AddStringToObject(o, "to", ctl_hname(env, f->to));
		cJSON_AddStringToObject(o, "kind", f->planned ? "switchover" : "failover");
		cJSON_AddStringToObject(o, "phase", ctl_fo_phases[f->phase]);
		cJSON_AddStringToObject(o, "reason", f->reason);
		cJSON_AddNumberToObject(o, "started_ms", (double)f->wall_start_ms);
		if (f->t_serving) {
			cJSON_AddNumberToObject(o, "detect_to_serving_ms",
			    (double)(f->t_serving - f->t_detect));
			if (f->t_heartbeat)
				cJSON_AddNumberToObject(o, "heartbeat_to_serving_ms",
				    (double)(f->t_serving - f->t_heartbeat));
		}
		if (f->error[0])
			cJSON_AddStringToObject(o, "error", f->error);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}
