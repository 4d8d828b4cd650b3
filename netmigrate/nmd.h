/*
 * nmd.h: netmigrated, the per-host agent. One env struct (struct nmd) holds
 * every piece of mutable state; the files split by role:
 *   nmd.c          start-up, reloads, the lease and self-fencing
 *   nmd_conf.c     the configuration file (pure: no loop, no Redis)
 *   nmd_orders.c   the order stream, order execution, announcement bursts
 *   nmd_want.c     the desired state (statements) and keeping the kernel at it
 *   nmd_hb.c       heartbeats to the controllers
 *   nmd_metrics.c  host metrics (CPU, memory, NIC byte rates)
 * Everything runs on one libevent loop; nothing on it blocks (Redis through
 * rlink, netlink and packet sends are local and take microseconds, burst
 * gaps are timers).
 */
#ifndef PF_NMD_H
#define PF_NMD_H

#include <net/if.h>
#include <stdint.h>
#include <sys/socket.h>

#define NMD_HB_MAX 4	/* controllers an agent pings */

#include "netmigrate/nm.h"
#include "common/rtarget.h"

struct event;
struct event_base;
struct rlink;
struct sig_watch;

enum nmd_role { NMD_ROLE_HOST, NMD_ROLE_EDGE };

struct nmd_conf {
	char host[64];
	char role[8];		/* "host" or "edge" */
	char redis[128];	/* IP:PORT */
	char redis_password[128];
	char redis_sentinels[256];	/* "IP:PORT,..."; "": redis is the master */
	char redis_master[64];
	char sentinel_password[128];
	struct rlink_target target;	/* from the four above (validated) */
	long long lease_ms;
	long long metrics_ms;
	long long block_ms;	/* XREAD BLOCK */
	long long max_age_ms;	/* orders older than this are refused; 0: never */
	char vm_bridge[IFNAMSIZ];
	char uplink[IFNAMSIZ];
	char dev[IFNAMSIZ];	/* edge: default output device ("" = by route) */
	long long ann_initial_ms, ann_step_ms, ann_max_ms, ann_rounds;
	char arp_form[8];	/* request, reply, both */
	int fence;
	long long converge_ms;	/* statements re-read, kernel re-checked; 0: never */
	char log_level[16];
	/* heartbeats to the controllers (nmd_hb.c) */
	char controllers[256];	/* "IP:PORT,IP:PORT"; "" = none: fence on the lease alone */
	char hb_key[128];
	struct sockaddr_storage hb_addr[NMD_HB_MAX];
	socklen_t hb_len[NMD_HB_MAX];
	int nhb;
};

/* A ping in flight: its nonce and when it left (grants count from then). */
struct nmd_ping {
	uint64_t nonce;
	int64_t sent_ms;
};
#define NMD_PINGS 8

/* An announcement burst in progress for one VM. */
struct nmd_burst {
	struct nmd_burst *next;
	struct nmd *env;
	char vm[NM_ID_MAX];
	char dev[IFNAMSIZ];
	uint8_t mac[6];
	int nips;
	struct nm_ip *ips;
	int round;
	struct event *ev;
};

/* The newest statement for one VM (nmd_want.c): an order's fields. */
struct nmd_want {
	char vm[NM_ID_MAX];
	enum nm_op op;
	int nips;
	struct nm_ip *ips;
	int has_mac;
	uint8_t mac[6];
	char dev[IFNAMSIZ];
	int has_via;
	struct nm_ip via;
	uint64_t epoch, seq;	/* its version: the leader's epoch, then seq */
	uint64_t gen;		/* the lease generation fleetd planned it for */
	int held;		/* its port stays down until a newer plan (logged once) */
};

#define NMD_RECENT 256
#define NMD_FENCE_MAX 4096

struct nmd {
	struct event_base *base;
	const char *conf_path;
	struct nmd_conf conf;
	enum nmd_role role;
	struct nm_sched sched;
	enum nm_arp_form form;
	struct sig_watch *sig;
	struct nm_ctx *nm;
	struct rlink *wr;	/* lease, metrics, acks, cursor */
	struct rlink *rd;	/* XREAD BLOCK on the order stream */
	char token[64];		/* the lease key's value while we hold it ("" never held) */
	char try_token[64];	/* the value an acquisition in flight sets */
	char lost_try[64];	/* an acquisition whose reply was lost: Redis may hold it */
	int acquiring;		/* the script in flight acquires (not renews) */
	unsigned token_seq;
	char k_lease[160], k_metrics[160], k_orders[160], k_cursor[160], k_fence[160];
	char k_epoch[160], k_gen[160], k_net[160];
	uint64_t gen;		/* the lease generation we hold (pf:host:<host>:gen) */

	/* lease and fencing */
	struct event *lease_ev;	/* every lease/3 */
	struct event *fence_ev;	/* the lease's deadline */
	int held;		/* our last renewal succeeded and has not expired */
	int fenced;		/* we withdrew because the lease ran out */
	int renewing;		/* a renewal is in flight */
	int other_holder;	/* reported "held by another" once */
	int lapsed;		/* since the fence, Redis said our key was gone */
	int fence_absent;	/* the fence set key is absent (reported once) */
	int64_t renew_sent_ms;
	int64_t fenced_at_ms;
	uint8_t fence_macs[NMD_FENCE_MAX][6];	/* VMs to silence on fencing */
	int nfence;
	uint8_t downed_macs[NMD_FENCE_MAX][6];	/* the ports the last fence took down */
	int ndowned;

	/* heartbeats (nmd_hb.c) */
	int hb_fd;		/* -1: no controllers configured */
	struct event *hb_ev;
	struct nmd_ping pings[NMD_PINGS];
	int ping_next;
	int64_t grant_until_ms;	/* mono: a controller promised no promotion before */
	uint64_t grant_epoch;
	char grant_from[64];	/* the instance of the last grant */
	int grant_held;		/* the fence was held off by a grant (logged once) */

	/* orders */
	char cursor[64];
	int cursor_loaded;
	int reading;		/* a GET cursor or XREAD is in flight */
	struct event *retry_ev;
	char recent[NMD_RECENT][NM_ID_MAX];
	int recent_next;
	struct nmd_burst *bursts;
	unsigned long orders_done, orders_failed, orders_stale;
	uint64_t epoch;		/* highest controller epoch seen (fencing) */

	/* desired state (nmd_want.c) */
	struct nmd_want *want;
	int nwant, cwant;
	int want_auth;		/* the hash had its marker at the last read */
	int want_read;		/* read once */
	int want_reading;
	uint64_t mark_e, mark_s;	/* the marker at the last read */
	int64_t full_read_ms;
	struct event *conv_ev, *conv_soon, *mon_ev;
	unsigned long converge_runs, converge_fixes;

	/* metrics */
	struct event *metrics_ev;
	int64_t m_prev_ms;
	unsigned long long m_cpu_total, m_cpu_idle;
	uint64_t m_bytes[4];	/* uplink rx, tx, vm bridge rx, tx */

	int stopping;
};

/* nmd_conf.c */
/* Fill c with the defaults, then load and validate path into it: 0, or -1
 * with "path:line: message" (or "path: [section] ...") in err. Never logs;
 * on failure c is partly filled, so load into a scratch struct. */
int nmd_conf_load(const char *path, struct nmd_conf *c, char *err, size_t errlen);
/* The announcement schedule c describes. */
struct nm_sched nmd_conf_sched(const struct nmd_conf *c);

/* nmd_orders.c */
void nmd_orders_start(struct nmd *env);
/* A controller epoch seen (an order, pf:ctl:epoch): raise ours, keep it. */
void nmd_epoch_seen(struct nmd *env, uint64_t epoch, const char *where);
void nmd_orders_on_link(struct nmd *env, int up);
/* Cancel every burst (fencing, shutdown). */
void nmd_bursts_stop(struct nmd *env);
/* Start a burst for o on dev (replacing the VM's) and send its first round:
 * frames sent, or -1 with err. */
int nmd_burst_start(struct nmd *env, const struct nm_order *o, const char *dev, char *err,
    size_t errlen);
void nmd_orders_free(struct nmd *env);

/* nmd_want.c */
int nmd_want_start(struct nmd *env, char *err, size_t errlen);
/* A newer statement for the order's VM is held: the order is superseded. */
int nmd_want_superseded(struct nmd *env, const struct nm_order *o);
/* An order that ran is the VM's newest statement: kept. */
void nmd_want_order(struct nmd *env, const struct nm_order *o);
/* Read the statements (the whole hash the first time, after that when its
 * marker moved). */
void nmd_want_read(struct nmd *env);
/* Compare the kernel with the statements and repair it (why: for the log). */
void nmd_converge(struct nmd *env, const char *why);
/* The same, a few ms from now (coalesces bursts of netlink events). */
void nmd_converge_soon(struct nmd *env);
void nmd_want_free(struct nmd *env);

/* nmd_hb.c */
int nmd_hb_start(struct nmd *env, char *err, size_t errlen);
/* Ping every controller (with each lease renewal). */
void nmd_hb_ping(struct nmd *env);
void nmd_hb_free(struct nmd *env);

/* nmd_metrics.c */
int nmd_metrics_init(struct nmd *env);
void nmd_metrics_free(struct nmd *env);

#endif
