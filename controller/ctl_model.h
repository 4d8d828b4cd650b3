/*
 * ctl_model.h: fleetd's picture of the fleet: hosts (from the config, plus
 * what their agents and libvirt say), VMs (from libvirt's domain lists and
 * their <metadata>), and the traffic rates derived from proxy telemetry.
 *
 * The model is touched only on fleetd's event-loop thread. Host entries are
 * an array parallel to conf->hosts; VM entries are heap objects (stable
 * pointers) indexed by a name-sorted pointer array.
 */
#ifndef CTL_MODEL_H
#define CTL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "controller/ctl_conf.h"

/* The XML namespace of proxyfleet's domain <metadata> element. */
#define CTL_META_NS "http://proxyfleet.example.org/xmlns/vm/1"

#define CTL_MAX_IPS 8
#define CTL_IP_MAX 48

/* Exponentially weighted rate of a cumulative counter. */
struct ctl_rate {
	double per_s;
	uint64_t last_raw;
	int64_t last_ms;
	int primed;
};

/* A counter read at now_ms: update the rate (alpha in (0, 1], weight of the
 * newest sample). A counter that went backwards (writer restarted) re-primes. */
void ctl_rate_update(struct ctl_rate *r, uint64_t raw, int64_t now_ms, double alpha);

enum ctl_vm_state { VM_UNKNOWN, VM_RUNNING, VM_PAUSED, VM_SHUTOFF, VM_GONE };
enum ctl_role { ROLE_PRIMARY, ROLE_STANDBY };
/* pin='region': policy moves (rebalancing, drains) keep the VM in the region
 * of the host it runs on; an operator's move may still take it out. A pin
 * value fleetd does not know is read as the strictest pin it knows. */
enum ctl_pin { PIN_NONE, PIN_REGION };
/* protect='hot|warm' on a primary: keep a standby of it on another host,
 * running with its IPs unbound (hot) or defined and shut off (warm). */
enum ctl_protect { PROTECT_NONE, PROTECT_HOT, PROTECT_WARM };

const char *ctl_vm_state_name(enum ctl_vm_state s);

/* What a domain's proxyfleet <metadata> says. */
struct ctl_vm_meta {
	char id[CTL_NAME_MAX];
	enum ctl_role role;
	char peer[CTL_NAME_MAX];	/* standby of a primary, or primary of a standby */
	char ips[CTL_MAX_IPS][CTL_IP_MAX];	/* "10.77.1.100/24" */
	int nips;
	enum ctl_pin pin;
	enum ctl_protect protect;
	char sb_region[CTL_NAME_MAX];	/* standby_region: where its standby goes */
	char mgmt[CTL_IP_MAX];	/* management address (standbys), "IP/PREFIX" */
	char replaces[CTL_NAME_MAX];	/* the primary this VM took over from */
};

/* Parse the metadata element text; 0, or -1 when it has no id. */
int ctl_vm_meta_parse(const char *xml, struct ctl_vm_meta *out);
/* The metadata element; -1 if too long. ns = 1: <pf:vm xmlns:pf=...> as it
 * sits in a domain's XML; ns = 0: unprefixed, as virDomainSetMetadata takes
 * it (libvirt adds the namespace, and refuses an element that declares it). */
int ctl_vm_meta_format(const struct ctl_vm_meta *m, int ns, char *buf, size_t len);
const char *ctl_protect_name(enum ctl_protect p);
/* "hot", "warm", "none": 0, else -1. */
int ctl_protect_parse(const char *s, enum ctl_protect *p);

struct ctl_vm {
	char name[CTL_NAME_MAX];
	int host;		/* index into model->hosts, -1 when nowhere */
	enum ctl_vm_state state;
	struct ctl_vm_meta meta;
	char mac[18];
	uint64_t mem_bytes;
	int vcpus;
	int64_t seen_ms;	/* last time a domain list showed it */
	int prev_host;		/* where libvirt listed it running before, -1 none */

	/* telemetry */
	int64_t tel_ms;		/* writer's timestamp of the last sample */
	int64_t tel_boot_ms;
	int stale;
	uint64_t conns_active;
	struct ctl_rate up, down, reqs, conns;
	long long cfg_rev;	/* pf:users:rev in force in the guest */
	int64_t cfg_seen_ms;	/* wall ms fleetd saw it in force, fleetd's clock */
	int64_t tel_first_ms;	/* wall ms of this boot's first sample, fleetd's clock */
	int bound;		/* the guest has its service IPs */

	/* standbys and failover (ctl_standby.c, ctl_failover.c) */
	int meta_pending;	/* a metadata write is on its way: keep ours */
	int meta_dirty;		/* ... and failed: written again on the tick */
	int64_t sb_retry_ms;	/* no standby creation before (monotonic ms) */
	int sb_blocked;		/* "no host for a standby" journaled */
	int failover;		/* a promotion involves it */

	/* policy state */
	int64_t cooldown_until_ms;	/* monotonic ms */
	unsigned migration;	/* id of the migration moving it, 0 = none */
	int mig_dst;		/* its destination while migration != 0 */
};

struct ctl_host {
	const struct ctl_conf_host *conf;
	int region;		/* index into conf->regions */
	int connected;		/* libvirt connection up */
	int listed;		/* a domain list has arrived since fleetd started */
	char virt_error[160];	/* why not, when not */
	int lease_ok;		/* agent lease present at the last poll */
	int lease_read;		/* a poll has answered since fleetd started: until
				 * then lease_ok says nothing (not "expired") */
	int64_t lease_seen_ms;
	/* failover watch (ctl_failover.c): the lease polled every [failover] poll */
	int fo_seen;		/* its lease was there once: its loss means something */
	int64_t fo_expiry_ms;	/* monotonic ms the lease runs out, as last read */
	int64_t fo_lease_ms;	/* the longest TTL seen: the agent's lease length */
	int fo_probing;		/* a libvirt port probe is out */
	int fo_lost;		/* the lease is gone (noticed at fo_lost_ms), not back yet */
	int64_t fo_lost_ms;
	int fo_probed, fo_alive;	/* probed since; libvirt answered */
	int fo_acted;		/* promotions started for this loss */
	int64_t fo_retry_ms;	/* failed promotions tried again after this */
	int dead;		/* lease gone and libvirt unreachable: failed over */
	/* lease generations (pf:host:<host>:gen): one more each time the agent
	 * creates its lease; a new one is re-planned (ctl_recon_host) */
	uint64_t gen;		/* the highest read */
	uint64_t gen_planned;	/* the generation the last full plan was for */
	int64_t replan_ms;	/* mono: a plan that left groups out is tried again then */
	/* heartbeats (ctl_hb.c): its agent's pings to this fleetd */
	int64_t hb_grant_until_ms;	/* mono: no promotion of its VMs before (our grant) */
	int64_t hb_last_ts;	/* the agent's wall ms of the last ping accepted */
	int hb_held;		/* a lease loss held off by its grant was journaled */
	/* the fence set (ctl_standby.c): a hash of what Redis confirmed holding */
	uint64_t fence_hash;
	int fence_known;	/* fence_hash is what Redis has (0: write it again) */
	int fence_writing;	/* a MULTI/EXEC is out */
	int draining, maintenance;
	char drain_blocked[160];	/* why the drain cannot move a VM now */
	/* agent metrics */
	int64_t metrics_ms;
	double cpu_pct;
	uint64_t mem_total, mem_free;
	double uplink_rx_bps, uplink_tx_bps;
	/* derived, recomputed by ctl_model_tally() */
	int nvms;
	uint64_t mem_used;
	int vcpus_used;
	double bps;		/* sum of its VMs' traffic */
	int migrations;		/* in flight, as source or destination */
	/* rebalancing policy (ctl_policy.c) */
	int64_t hot_since_ms;	/* monotonic ms it went above the mark, 0 = not above */
	char policy_blocked[160];	/* why the plan leaves it hot (journaled once) */
};

struct ctl_model {
	const struct ctl_conf *conf;
	struct ctl_host *hosts;
	int nhosts;
	struct ctl_vm **vms;	/* sorted by name */
	int nvms, cap;
};

int ctl_model_init(struct ctl_model *m, const struct ctl_conf *conf);
void ctl_model_free(struct ctl_model *m);

int ctl_host_find(const struct ctl_model *m, const char *name);
struct ctl_vm *ctl_vm_find(const struct ctl_model *m, const char *name);
/* Find or add; NULL on allocation failure. */
struct ctl_vm *ctl_vm_get(struct ctl_model *m, const char *name);
void ctl_vm_remove(struct ctl_model *m, struct ctl_vm *vm);

/* Recompute per-host sums (VM count, memory, vCPUs, traffic). A VM in
 * flight is counted on its destination too: its room is reserved there. */
void ctl_model_tally(struct ctl_model *m);
/* Flag VMs whose telemetry is older than stale_ms; returns how many changed. */
int ctl_model_mark_stale(struct ctl_model *m, int64_t now_ms, int64_t stale_ms);

struct ctl_limits {
	int max_concurrent, max_per_host;
	int in_flight;
	int64_t now_ms;		/* monotonic, for cooldowns */
	int use_cooldown;	/* policy moves: wait out a VM's cooldown, keep its pin */
};

/*
 * May vm move to host dest now? 0, or -1 with the reason in why
 * ("destination eu-2 is draining"). Running VMs move live; shut-off ones
 * (warm standbys) move offline. Capacity counts the VMs already on their
 * way to dest (see ctl_model_tally). Pure: reads the model only.
 */
int ctl_precheck(const struct ctl_model *m, const struct ctl_vm *vm, int dest,
    const struct ctl_limits *lim, char *why, size_t whylen);

#endif
