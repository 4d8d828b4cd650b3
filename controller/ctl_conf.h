/*
 * ctl_conf.h: fleetd's configuration file.
 *
 *   [fleetd]            api_listen, api_token, tls_cert, tls_key, redis,
 *                       redis_password, tick, log_level, stale_after,
 *                       instance, api_url, leader_lease
 *   [migration]         max_concurrent, max_per_host, bandwidth, max_downtime,
 *                       timeout, auto_converge, compressed, postcopy, cooldown
 *   [policy]            rebalance, high_water, target, window, geo, geo_max_moves
 *   [failover]          enable, poll, probe_timeout, guest_token
 *   [region NAME]       edge (the netmigrated instance that routes the region),
 *                       gateway, mgmt_pool (standbys' management addresses)
 *   [host NAME]         region, uri, address, bridge, memory, vcpus, nic
 *
 * ctl_conf_load() fills a fresh struct with defaults, reads the file and
 * validates cross-references (a host's region exists, ...). Errors come back
 * as one "file:line: message" string; fleetd prints it and exits 2.
 */
#ifndef CTL_CONF_H
#define CTL_CONF_H

#include "common/rtarget.h"
#include <stddef.h>
#include <stdint.h>

#define CTL_NAME_MAX 64

struct ctl_conf_region {
	char name[CTL_NAME_MAX];
	char edge[CTL_NAME_MAX];	/* agent name that owns the region's routes */
	char gateway[48];	/* the VMs' default gateway in this region */
	uint32_t pool_first, pool_last;	/* mgmt_pool, host order; 0 = none */
	int pool_prefix;
};

struct ctl_conf_host {
	char name[CTL_NAME_MAX];
	char region[CTL_NAME_MAX];
	char uri[256];		/* libvirt URI, e.g. qemu+tcp://10.77.1.11/system */
	char address[64];	/* migration data address (tcp://ADDRESS) */
	char bridge[32];	/* VM bridge on the host */
	long long memory;	/* bytes available to VMs */
	long long vcpus;
	long long nic;		/* bytes/s the host's uplink carries */
};

struct ctl_conf {
	/* [fleetd] */
	char api_listen[128];	/* HOST:PORT */
	char api_token[128];
	char tls_cert[256], tls_key[256];	/* both set: the API speaks HTTPS */
	char redis[128];	/* IP:PORT */
	char redis_password[128];
	char redis_sentinels[256];	/* "IP:PORT,..."; "": redis is the master */
	char redis_master[64];	/* the name the sentinels monitor */
	char sentinel_password[128];
	struct rlink_target redis_target;	/* from the four above (validated) */
	long long tick_ms;
	long long stale_ms;	/* telemetry older than this is stale */
	char log_level[16];
	char instance[CTL_NAME_MAX];	/* this fleetd's name in the leader lease */
	char api_url[256];	/* where other fleetds send clients to reach this one */
	long long leader_lease_ms;	/* the leader lease; renewed every lease/4 */
	/* [migration] */
	long long mig_max_concurrent;
	long long mig_max_per_host;
	long long mig_bandwidth;	/* MiB/s, 0 = unlimited */
	long long mig_max_downtime_ms;
	long long mig_timeout_ms;
	long long mig_cooldown_ms;
	int mig_auto_converge;
	int mig_compressed;
	int mig_postcopy;
	long long mig_postcopy_after_ms;	/* switch to post-copy after this long */
	/* [policy] */
	int pol_rebalance;		/* execute rebalancing plans (GET /v1/plan works either way) */
	long long pol_high_pct;		/* a host above this share of its NIC is hot */
	long long pol_target_pct;	/* a destination stays at or under this share */
	long long pol_window_ms;	/* hot for this long, sustained, before a plan runs */
	/* [failover] */
	int fo_enable;			/* promote standbys of dead hosts' VMs */
	long long fo_poll_ms;		/* host lease poll */
	long long fo_probe_ms;		/* libvirt port probe timeout */
	char fo_guest_token[128];	/* bearer token for the proxies' admin POSTs; "" = none */
	char hb_listen[128];		/* heartbeats from the agents, IP:PORT; "" = off */
	char hb_key[128];		/* their HMAC key, shared with the agents */
	long long hb_grant_ms;		/* the most one grant promises */
	long long hb_stall_ms;		/* grants go on this long after the last renewal */
	int pol_geo;			/* execute geographic plans (the plan is shown either way) */
	long long pol_geo_max_moves;	/* geo moves started at once; none while one is in flight */
	/* sections */
	struct ctl_conf_region *regions;
	int nregions;
	struct ctl_conf_host *hosts;
	int nhosts;
};

/* Load path into a new conf. NULL with the message in err on failure. */
struct ctl_conf *ctl_conf_load(const char *path, char *err, size_t errlen);
void ctl_conf_free(struct ctl_conf *c);

#endif
