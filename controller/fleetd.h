/*
 * fleetd.h: the controller's one environment struct and the functions its
 * modules offer each other. Everything here lives on the event-loop
 * thread unless a comment says otherwise.
 *
 *   ctl_conf    configuration          ctl_model   hosts, VMs, rates, pre-checks
 *   ctl_virt    libvirt threads        ctl_post    thread -> loop hand-off
 *   ctl_tel     telemetry from Redis   ctl_order   handover orders and acks
 *   ctl_mig     migration executor     ctl_journal events (Redis + memory)
 *   ctl_api     HTTP(S) JSON API and /metrics
 *   ctl_req     API request bodies and path names, decoded (pure)
 *   ctl_plan    rebalancing planner    ctl_policy  runs both planners on the tick
 *   ctl_geo     geographic planner     ctl_region  region targets (Redis, API)
 *   ctl_standby standby replicas       ctl_failover dead hosts, promotion
 *   ctl_xml     standby domain XML
 *   ctl_leader  leader lease + epoch   ctl_recon   reconcile after a takeover
 */
#ifndef FLEETD_H
#define FLEETD_H

#include <stdint.h>

#include "controller/ctl_conf.h"
#include "controller/ctl_geo.h"
#include "controller/ctl_model.h"

struct event_base;
struct event;
struct rlink;
struct ctl_post;
struct ctl_virt;
struct ctl_api;
struct ctl_mig;
struct ctl_recon;
struct cJSON;
struct ctl_vjob;
struct ctl_fo;
struct ctl_plan;
struct ctl_plan_move;

#define CTL_GEO_KEY "pf:ctl:geo:targets"	/* hash: region -> "3" or "40%" */
#define CTL_DRAIN_KEY "pf:ctl:drain"	/* hash: host -> "draining" or "maintenance" */

/* What fleetd keeps in Redis (ctl_keep.c). */
enum ctl_keep_kind { KEEP_GEO, KEEP_DRAIN, KEEP_N };
struct ctl_keep {
	struct fleetd *env;
	enum ctl_keep_kind kind;
	int loaded;		/* read from Redis (since the start, since taking the lead) */
	int dirty;		/* a write was lost: store the whole hash on reconnect */
	int reading;		/* an HGETALL is on its way */
	int again;		/* ... sent too early: read again when it is back */
	int64_t read_ms;	/* when the last read was sent (monotonic) */
};

#define CTL_JOURNAL_KEEP 2000	/* events kept in memory for the API */
#define CTL_MIG_KEEP 200	/* finished migrations kept for the API */

struct ctl_event {
	uint64_t seq;
	int64_t ts_ms;
	char type[24];		/* "migration", "host", "drain", ... */
	char text[480];		/* key=value pairs */
};

/* Counters for /metrics. */
struct ctl_stats {
	uint64_t mig_ok, mig_failed, mig_cancelled, mig_refused;
	uint64_t downtime_le[8];	/* downtime histogram buckets, see ctl_api.c */
	uint64_t downtime_count;
	double downtime_sum_s;
	uint64_t orders_sent, acks_ok, acks_err;
	uint64_t failovers, failovers_failed, switchovers;
	uint64_t hb_grants, hb_refused;	/* heartbeats answered, refused (bad HMAC, old) */
	int64_t last_failover_ms;	/* heartbeat to serving of the last failover */
};

/*
 * Leadership (ctl_leader.c). Several fleetds may run; one holds the Redis
 * lease pf:ctl:leader = "<instance> <epoch> <api_url>" and only it starts
 * work and writes orders. The others keep their model and serve reads.
 */
struct ctl_lead {
	char instance[CTL_NAME_MAX];
	char api_url[256];
	char held[400];		/* our value of pf:ctl:leader while we lead, "" otherwise */
	uint64_t epoch;		/* our fencing token while we lead */
	int64_t deadline_ms;	/* mono: the last good renewal's send time + lease */
	int64_t sent_ms;	/* mono: when the poll in flight was sent */
	int polling;		/* a lease script is in flight */
	int64_t since_wall_ms;	/* when we became leader */
	uint64_t takeovers;	/* times this instance became leader */
	/* the leader as the last poll saw it (us included) */
	char seen_id[CTL_NAME_MAX];
	char seen_url[256];
	uint64_t seen_epoch;
	int64_t seen_ms;	/* mono, 0 = never */
	/* the highest epoch this process has held or learnt of (the leader
	 * key, an agent's "stale epoch" refusal): a new lease starts above
	 * it, so an epoch never goes backwards when Redis forgets its own */
	uint64_t floor;
	/* heartbeat grants (ctl_hb.c) */
	uint64_t last_epoch;	/* the epoch we held last (kept after a step-down) */
	int64_t hb_until_ms;	/* mono: we may grant until (last renewal + stall_grace) */
	int64_t hb_wait_until_ms;	/* mono: no promotion before (grants another
					 * instance may have given run out) */
	struct event *poll_ev;	/* every lease/4 */
	struct event *deadline_ev;	/* the lease's end, as we count it */
};

struct fleetd {
	struct event_base *base;
	struct ctl_conf *conf;
	const char *conf_path;
	struct ctl_model model;
	struct rlink *redis;	/* telemetry, orders, events */
	struct rlink *acks;	/* XREAD BLOCK on pf:acks */
	struct ctl_post *post;
	struct ctl_virt *virt;
	struct ctl_api *api;
	struct event *tick;
	struct sig_watch *sig;
	int64_t boot_ms;
	int stopping;

	/* journal */
	struct ctl_event *events;	/* ring of CTL_JOURNAL_KEEP */
	uint64_t event_seq;

	/* migrations: in flight first, then the finished ones */
	struct ctl_mig *migs;
	unsigned mig_seq;
	int mig_in_flight;

	/* orders */
	uint64_t order_seq;
	char acks_cursor[64];
	struct ctl_order_wait *waits;

	/* standbys and failover */
	struct ctl_vjob *vjobs;		/* libvirt jobs in flight */
	long long users_rev;		/* pf:users:rev, pf:users:rev_ms */
	int64_t users_rev_ms;
	struct ctl_fo *fos;		/* promotions, newest first */
	unsigned fo_seq;
	struct event *fo_ev;		/* lease poll */
	int fo_mass;			/* mass lease loss journaled */
	int hb_fd;			/* heartbeat socket, -1 when off */
	struct event *hb_ev;
	/* geographic policy: targets parallel to conf->regions (ctl_region.c) */
	struct ctl_geo_target *geo_targets;
	char (*geo_blocked)[200];	/* why a region stays off its target (journaled once) */
	struct ctl_keep keep[KEEP_N];	/* geo targets and drains in Redis (ctl_keep.c) */

	struct ctl_stats stats;

	struct ctl_lead lead;
	struct ctl_recon *recon;	/* a reconcile in progress, NULL when none */
};

/* ctl_journal.c: record an event (log line, memory ring, pf:events). */
void ctl_journal(struct fleetd *env, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Events with seq > since, oldest first, as a JSON array. */
struct cJSON *ctl_journal_json(struct fleetd *env, uint64_t since, int limit);

/* ctl_tel.c: poll telemetry, leases and metrics (called every tick). */
void ctl_tel_poll(struct fleetd *env);

/* ctl_order.c: handover orders to host agents, and their acks. */
typedef void ctl_order_done_fn(struct fleetd *env, void *arg, int ok, const char *error,
    int64_t took_us);
/*
 * Send op (prepare, announce, withdraw) for vm's service IPs to the agent
 * called agent; done (may be NULL) runs once with the ack, or with ok = 0
 * and "no ack in N ms" after timeout_ms. Returns -1 when Redis is down.
 */
int ctl_order_send(struct fleetd *env, const char *agent, const char *op,
    const struct ctl_vm *vm, const char *dev, const char *via, int timeout_ms,
    ctl_order_done_fn *done, void *arg);
/* Say that agent's statements (pf:host:<agent>:net) are complete: prune
 * those of VMs the model does not know and write the marker. Call after
 * every statement for that agent has been sent. 0, or -1. */
int ctl_order_mark(struct fleetd *env, const char *agent);
void ctl_order_start(struct fleetd *env);
void ctl_order_stop(struct fleetd *env);

/* ctl_mig.c: the migration executor. */
/* Start moving vm to dest. policy = 1 for the controller's own moves
 * (they wait out a VM's cooldown), 0 for an operator's. 0 with *id set, or
 * -1 with the reason (pre-check refusals carry the pre-check's sentence). */
int ctl_mig_start(struct fleetd *env, const char *vm, const char *dest, const char *reason,
    int policy, unsigned *id, char *why, size_t whylen);
int ctl_mig_cancel(struct fleetd *env, unsigned id, char *why, size_t whylen);
struct cJSON *ctl_mig_json(struct fleetd *env, unsigned id);	/* id 0: all */
/* A domain lifecycle event from a host (the cutover trigger). */
void ctl_mig_dom_event(struct fleetd *env, int host, const char *name, int event, int detail);
/* Drain: move every VM off host (planned one at a time by the tick), or
 * (on = 0) put it back in service. 0, or an HTTP status with why (404 no
 * such host, 409 already draining, 503 the change cannot be stored). */
int ctl_drain(struct fleetd *env, const char *host, int on, char *why, size_t whylen);
void ctl_mig_tick(struct fleetd *env);
/* Shutdown: cancel and join the threads (their results stay posted)... */
void ctl_mig_shutdown(struct fleetd *env);
/* ... and, once the post queue is drained, free the records. */
void ctl_mig_free_all(struct fleetd *env);
/* Migrations in flight whose reason starts with prefix ("geo:"). */
int ctl_mig_count(struct fleetd *env, const char *prefix);

/* ctl_policy.c: rebalancing by traffic and geographic redistribution
 * (called every tick after ctl_mig_tick). */
void ctl_policy_tick(struct fleetd *env);
/* The plan the policy would carry out now (dry run), as a JSON object for
 * GET /v1/plan; NULL when out of memory. The caller owns the object. */
struct cJSON *ctl_policy_json(struct fleetd *env);
/* The geographic plan now (free it with ctl_plan_free); 0, or -1 when out
 * of memory. */
int ctl_policy_geo_plan(struct fleetd *env, struct ctl_plan *out);
/* One planned move as the API shows it. */
struct cJSON *ctl_policy_move_json(struct fleetd *env, const struct ctl_plan_move *mv);

/* ctl_keep.c: geo targets and drains mirrored in Redis hashes. */
void ctl_keep_init(struct fleetd *env);
/* The Redis link is up: read what is not read yet, store again what a lost
 * write left behind. */
void ctl_keep_redis_up(struct fleetd *env);
/* This fleetd takes the lead: read everything again (the last leader may
 * have changed it). */
void ctl_keep_reload(struct fleetd *env);
/* Every tick: a follower reads again every few seconds. */
void ctl_keep_tick(struct fleetd *env);
/* Store field = value (NULL: delete) in kind's hash: 0, or 503 with why
 * (Redis down, the hash not read yet, the write refused). The caller
 * changes its memory only on 0. */
int ctl_keep_put(struct fleetd *env, enum ctl_keep_kind k, const char *field,
    const char *value, char *why, size_t whylen);
/* The same for a change fleetd made by itself (a drain finished): when it
 * cannot be stored now, the whole hash is on the next connect. */
void ctl_keep_note(struct fleetd *env, enum ctl_keep_kind k, const char *field,
    const char *value);

/* ctl_region.c: the regions' targets (kept by ctl_keep.c). */
int ctl_region_init(struct fleetd *env);
void ctl_region_free(struct fleetd *env);
/* The index of the region called name in conf->regions, or -1. */
int ctl_region_find(const struct fleetd *env, const char *name);
/* Set (value "3", "40%") or clear (value NULL) a region's target: 0 with
 * the old value in was ("" when none), or an HTTP status (404 unknown
 * region, 400 bad value, 503 Redis down or not read yet) with why. */
int ctl_region_target(struct fleetd *env, const char *region, const char *value,
    char *was, size_t waslen, char *why, size_t whylen);
/* GET /v1/regions; NULL when out of memory. */
struct cJSON *ctl_region_json(struct fleetd *env);

/* ctl_mig.c helpers the failover shares. */
int ctl_vm_home(const struct fleetd *env, const struct ctl_vm *vm);
const char *ctl_edge_of_region(const struct fleetd *env, int region);

/* ctl_standby.c: libvirt jobs on their own threads, and the replica policy. */
enum ctl_vjob_kind { VJ_CREATE, VJ_META, VJ_START, VJ_DESTROY, VJ_REMOVE, VJ_PROBE };
typedef void ctl_vjob_done_fn(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok,
    const char *error, int64_t took_ms);
/* Run kind (start, destroy, remove) for vm on host's libvirt; done runs on
 * the loop. -1 when it cannot start. */
int ctl_vjob(struct fleetd *env, enum ctl_vjob_kind kind, int host, const char *vm,
    ctl_vjob_done_fn *done, void *arg);
int ctl_vjob_busy(struct fleetd *env, const char *vm);
/* Probe host's libvirt port off the loop (ok = it answers). */
int ctl_vjob_probe(struct fleetd *env, int host, int timeout_ms, ctl_vjob_done_fn *done,
    void *arg);
void ctl_vjob_shutdown(struct fleetd *env);
/* Write vm's model metadata to libvirt (the model's copy wins meanwhile). */
int ctl_meta_write(struct fleetd *env, struct ctl_vm *vm);
int ctl_host_usable(const struct fleetd *env, int h);
int ctl_vm_remove_domain(struct fleetd *env, struct ctl_vm *vm, const char *why);
void ctl_standby_tick(struct fleetd *env);
/* A member of every fence set fleetd writes, so the key exists even when
 * no VM is in it: its absence then means Redis lost it. */
#define CTL_FENCE_MARKER "fleetd"
/* The Redis link came back: write every host's fence set again. */
void ctl_standby_redis_up(struct fleetd *env);
int ctl_protect(struct fleetd *env, const char *vm, enum ctl_protect mode, const char *region,
    char *why, size_t whylen);
void ctl_standby_json(struct fleetd *env, const struct ctl_vm *vm, struct cJSON *o);

/* ctl_hb.c: the agents' heartbeats, answered with grants while this
 * instance leads or has led within stall_grace. */
int ctl_hb_start(struct fleetd *env, char *err, size_t errlen);
void ctl_hb_stop(struct fleetd *env);
/* Promotions of host h's VMs wait: 1 with why while a grant or a
 * takeover's wait holds them off. */
int ctl_hb_holds(struct fleetd *env, int h, char *why, size_t whylen);
/* The lead was acquired (incr: what pf:ctl:epoch's INCR gave; clean: its
 * previous holder released it) or renewed. */
void ctl_hb_on_lead(struct fleetd *env, int acquired, long long incr, int clean);
/* Another instance holds the lead, or we release it: stop granting. */
void ctl_hb_stop_granting(struct fleetd *env);

/* ctl_failover.c: the lease watch, dead hosts, promotions. */
void ctl_failover_start(struct fleetd *env);
void ctl_failover_stop(struct fleetd *env);
/* Planned: fence the primary, promote its hot standby. */
int ctl_switchover(struct fleetd *env, const char *vm, char *why, size_t whylen);
struct cJSON *ctl_failover_json(struct fleetd *env);

/* ctl_leader.c: the leader lease and its fencing token. */
int ctl_leader_start(struct fleetd *env, char *err, size_t errlen);
/* Leader now, by the clock (a process that was stopped knows at once). */
int ctl_leader_is(const struct fleetd *env);
/* Agent refused an order of epoch ours as "stale epoch ours < theirs":
 * raise the floor and, when ours is the epoch we lead with now (not an
 * order left from before), step down and lead again above theirs. */
void ctl_leader_stale(struct fleetd *env, const char *agent, uint64_t ours, uint64_t theirs);
/* The leader's API URL as last seen, or NULL when unknown or ourselves. */
const char *ctl_leader_url(const struct fleetd *env);
/* Poll the lease now (after Redis comes back). */
void ctl_leader_poll(struct fleetd *env);
/* Stopping: give the lease back if we hold it, then leave the loop. */
void ctl_leader_release_and_exit(struct fleetd *env);
void ctl_leader_free(struct fleetd *env);
struct cJSON *ctl_leader_json(struct fleetd *env);

/* ctl_recon.c: after a takeover, make the network match where libvirt
 * runs each VM (waiting out migration jobs the old leader left). */
void ctl_recon_start(struct fleetd *env);
/* Stop and join the scanning thread (step-down, shutdown). */
void ctl_recon_stop(struct fleetd *env);
/* A VM that appeared running (started outside fleetd), or that vanished:
 * the network of its group is made to match at once, as a reconcile
 * would (leader only, not while a reconcile runs). */
void ctl_recon_found(struct fleetd *env, struct ctl_vm *vm, const char *why);
/* Host h's agent created its lease again (a new generation): send the
 * plan of every group with a VM on h, and mark h's statements complete.
 * Returns the groups left out (moving, in a promotion: tried again
 * later), or -1 when this instance may not act now. */
int ctl_recon_host(struct fleetd *env, int h, const char *why);
void ctl_recon_vanished(struct fleetd *env, struct ctl_vm *vm);

/* ctl_mig.c: a leader that steps down gives up its migrations' records
 * (the libvirt jobs run on; the next leader reconciles). */
void ctl_mig_abandon(struct fleetd *env, const char *why);
/* The region whose hosts share the VM's first IP's prefix (its home), -1. */
int ctl_mig_vm_home(const struct fleetd *env, const struct ctl_vm *vm);

/* ctl_api.c */
struct ctl_api *ctl_api_start(struct fleetd *env, char *err, size_t errlen);
void ctl_api_free(struct ctl_api *api);

#endif
