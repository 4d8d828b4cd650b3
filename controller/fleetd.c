/*
 * fleetd.c: the proxyfleet controller's main: configuration, the event
 * loop, and the glue between the modules listed in fleetd.h.
 *
 * One libevent loop owns the model. libvirt lives on its own threads
 * (ctl_virt), migrations on worker threads (ctl_mig); both report back
 * through ctl_post. Redis is reached asynchronously (common/rlink). A tick
 * (1 s by default) polls telemetry, judges staleness, advances drains and
 * runs the policies (rebalancing, geographic redistribution).
 *
 * usage: fleetd [-d] [-n] -f FILE
 */
#include "controller/fleetd.h"
#include "controller/ctl_post.h"
#include "controller/ctl_virt.h"
#include "controller/ctl_xml.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/sig.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLEETD_DRAIN_STOP_MS 30000

static void
fleetd_usage(void)
{
	fprintf(stderr, "usage: fleetd [-d] [-n] -f FILE\n"
	    "  -f FILE  configuration file (INI, see docs/config.md)\n"
	    "  -n       check the configuration and exit\n"
	    "  -d       debug logging\n");
	exit(2);
}

/* ----- libvirt results (loop thread) ------------------------------------ */

static void
fleetd_host_state(void *arg, int host, int up, const char *why)
{
	struct fleetd *env = arg;
	struct ctl_host *h = &env->model.hosts[host];

	if (up != h->connected)
		ctl_journal(env, "host", "%s host=%s uri=%s%s%s%s", up ? "libvirt-up" : "libvirt-down",
		    h->conf->name, h->conf->uri, up ? "" : " why=\"", up ? "" : why, up ? "" : "\"");
	else if (!up && strcmp(h->virt_error, why) != 0)
		log_debug("host libvirt still down host=%s why=\"%s\"", h->conf->name, why);
	h->connected = up;
	str_copy(h->virt_error, up ? "" : why, sizeof(h->virt_error));
}

static void
fleetd_snapshot(void *arg, int host, struct ctl_dom_info *doms, int ndoms)
{
	struct fleetd *env = arg;
	struct ctl_model *m = &env->model;
	int64_t gen = clock_mono_us();

	m->hosts[host].listed = 1;
	for (int i = 0; i < ndoms; i++) {
		struct ctl_dom_info *d = &doms[i];
		struct ctl_vm_meta meta;
		struct ctl_vm *vm;
		int was_new, was_running;

		if (!d->meta[0] || ctl_vm_meta_parse(d->meta, &meta) < 0)
			continue;	/* not a fleet VM */
		was_new = ctl_vm_find(m, d->name) == NULL;
		vm = ctl_vm_get(m, d->name);
		if (!vm)
			break;
		was_running = !was_new && vm->state == VM_RUNNING;
		if (!vm->meta_pending)
			vm->meta = meta;	/* else our write is on its way */
		str_copy(vm->mac, d->mac, sizeof(vm->mac));
		vm->mem_bytes = d->mem_bytes;
		vm->vcpus = d->vcpus;
		if (d->state == VM_RUNNING) {
			/* A follower cannot tell the leader's moves from others. */
			if (vm->host != host && vm->host >= 0 && !vm->migration && !was_new &&
			    !ctl_leader_is(env))
				log_debug("moved vm=%s from=%s to=%s (seen by a follower)", vm->name,
				    m->hosts[vm->host].conf->name, m->hosts[host].conf->name);
			else if (vm->host != host && vm->host >= 0 && !vm->migration && !was_new)
				ctl_journal(env, "vm", "moved vm=%s from=%s to=%s by=outside",
				    vm->name, m->hosts[vm->host].conf->name, m->hosts[host].conf->name);
			/* Remembered for a reconcile: the host it left may still
			 * route its IPs if whoever moved it died before withdrawing. */
			if (vm->host != host && vm->host >= 0)
				vm->prev_host = vm->host;
			vm->host = host;
			vm->state = VM_RUNNING;
		} else if (!d->migrating_in && (vm->host == host || vm->host < 0)) {
			vm->host = host;
			vm->state = (enum ctl_vm_state)d->state;
		}
		if (vm->host == host)
			vm->seen_ms = gen;
		if (was_new) {
			ctl_journal(env, "vm", "found vm=%s host=%s state=%s role=%s ips=%d", vm->name,
			    m->hosts[host].conf->name, ctl_vm_state_name(vm->state),
			    meta.role == ROLE_STANDBY ? "standby" : "primary", meta.nips);
			ctl_recon_found(env, vm, "found running");
		} else if (!was_running && vm->state == VM_RUNNING && vm->host == host) {
			/* Started (or back from a host that was unknown): the network
			 * is stated for it, whatever the statements said before. */
			ctl_recon_found(env, vm, "started");
		}
	}
	/* VMs this host had and no longer lists: gone (unless moving). */
	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *vm = m->vms[i];

		if (vm->host == host && vm->seen_ms != gen && !vm->migration) {
			ctl_journal(env, "vm", "vanished vm=%s host=%s", vm->name,
			    m->hosts[host].conf->name);
			ctl_recon_vanished(env, vm);
			ctl_vm_remove(m, vm);
			i--;
		}
	}
	free(doms);
	ctl_model_tally(m);
}

static void
fleetd_dom_event(void *arg, int host, const char *name, int event, int detail)
{
	struct fleetd *env = arg;

	log_debug("domain event host=%s vm=%s event=%d detail=%d",
	    env->model.hosts[host].conf->name, name, event, detail);
	ctl_mig_dom_event(env, host, name, event, detail);
}

/* ----- loop ------------------------------------------------------------- */

static void
fleetd_redis_state(struct rlink *rl, int up, const char *why, void *arg)
{
	struct fleetd *env = arg;

	(void)rl;
	if (up) {
		log_info("redis up addr=%s: %s", rlink_addr(rl), why);
		ctl_keep_redis_up(env);
		ctl_standby_redis_up(env);
		ctl_leader_poll(env);
		ctl_tel_poll(env);	/* leases and telemetry now, not a tick later */
	} else
		log_warnx("redis down: %s (telemetry and orders wait; retrying)", why);
}

static void
fleetd_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fleetd *env = arg;
	static int64_t stop_since;
	static int leaving;

	(void)fd;
	(void)what;
	ctl_tel_poll(env);
	ctl_model_mark_stale(&env->model, clock_wall_ms(), env->conf->stale_ms);
	ctl_keep_tick(env);
	ctl_mig_tick(env);
	ctl_standby_tick(env);
	ctl_policy_tick(env);
	if (env->stopping) {
		if (!stop_since)
			stop_since = clock_mono_ms();
		if (!leaving && (env->mig_in_flight == 0 ||
		    clock_mono_ms() - stop_since > FLEETD_DRAIN_STOP_MS)) {
			leaving = 1;
			ctl_leader_release_and_exit(env);	/* a follower takes over at once */
		}
	}
}

static void
fleetd_on_term(int signo, void *arg)
{
	struct fleetd *env = arg;

	if (env->stopping) {
		log_info("stop again signal=%d: leaving now", signo);
		event_base_loopexit(env->base, NULL);
		return;
	}
	env->stopping = 1;
	ctl_api_free(env->api);
	env->api = NULL;
	log_info("stop signal=%d in_flight=%d (waiting up to %d ms for migrations)", signo,
	    env->mig_in_flight, FLEETD_DRAIN_STOP_MS);
}

/* Hosts and regions must stay as they are: their threads and model entries
 * were made for them. Everything else may change on reload. */
static int
fleetd_same_topology(const struct ctl_conf *a, const struct ctl_conf *b)
{
	if (a->nhosts != b->nhosts || a->nregions != b->nregions)
		return 0;
	for (int i = 0; i < a->nregions; i++)
		if (strcmp(a->regions[i].name, b->regions[i].name))
			return 0;
	for (int i = 0; i < a->nhosts; i++)
		if (strcmp(a->hosts[i].name, b->hosts[i].name) ||
		    strcmp(a->hosts[i].uri, b->hosts[i].uri) ||
		    strcmp(a->hosts[i].region, b->hosts[i].region))
			return 0;
	return strcmp(a->redis, b->redis) == 0 && strcmp(a->api_listen, b->api_listen) == 0 &&
	    strcmp(a->instance, b->instance) == 0 && strcmp(a->api_url, b->api_url) == 0 &&
	    a->leader_lease_ms == b->leader_lease_ms &&
	    strcmp(a->redis_password, b->redis_password) == 0 &&
	    strcmp(a->tls_cert, b->tls_cert) == 0 && strcmp(a->tls_key, b->tls_key) == 0;
}

static void
fleetd_on_hup(void *arg)
{
	struct fleetd *env = arg;
	char err[512];
	struct ctl_conf *nc = ctl_conf_load(env->conf_path, err, sizeof(err));
	enum log_level lvl;

	if (!nc) {
		log_warnx("reload failed, keeping the running configuration: %s", err);
		return;
	}
	if (!fleetd_same_topology(env->conf, nc)) {
		log_warnx("reload refused: hosts, regions, redis, its password, the API address, "
		    "TLS files, instance, api_url or leader_lease changed (restart fleetd for that); "
		    "keeping the running configuration");
		ctl_conf_free(nc);
		return;
	}
	for (int i = 0; i < nc->nhosts; i++)
		env->model.hosts[i].conf = &nc->hosts[i];
	env->model.conf = nc;
	ctl_conf_free(env->conf);
	env->conf = nc;
	if (log_level_parse(nc->log_level, &lvl) == 0)
		log_set_level(lvl);
	{
		struct timeval tick = { nc->tick_ms / 1000, (nc->tick_ms % 1000) * 1000 };

		event_add(env->tick, &tick);	/* re-adding a pending event resets its period */
	}
	log_info("reload ok path=%s", env->conf_path);
}

int
main(int argc, char **argv)
{
	struct fleetd env = { 0 };
	struct ctl_virt_ops ops = { fleetd_host_state, fleetd_snapshot, fleetd_dom_event, &env };
	struct sig_handlers sh = { fleetd_on_term, fleetd_on_hup, &env };
	char err[512];
	int ch, check = 0, debug = 0, stuck;
	enum log_level lvl = LOG_LVL_INFO;
	struct timeval tick;

	while ((ch = getopt(argc, argv, "df:n")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			env.conf_path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		default:
			fleetd_usage();
		}
	}
	if (!env.conf_path || optind != argc)
		fleetd_usage();
	log_init("fleetd", LOG_LVL_INFO);
	env.conf = ctl_conf_load(env.conf_path, err, sizeof(err));
	if (!env.conf) {
		fprintf(stderr, "fleetd: %s\n", err);
		return 2;
	}
	if (check) {
		printf("configuration OK\n");
		ctl_conf_free(env.conf);
		return 0;
	}
	log_level_parse(env.conf->log_level, &lvl);
	log_set_level(debug ? LOG_LVL_DEBUG : lvl);

	ctl_xml_init();
	if (evthread_use_pthreads() < 0)
		fatalx("libevent has no pthreads support");
	env.base = event_base_new();
	env.boot_ms = clock_wall_ms();
	if (!env.base || ctl_model_init(&env.model, env.conf) < 0 || ctl_region_init(&env) < 0)
		fatalx("out of memory");
	ctl_keep_init(&env);
	env.post = ctl_post_new(env.base);
	if (!env.post)
		fatalx("cannot make the post queue");
	env.redis = rlink_open(env.base, &env.conf->redis_target, fleetd_redis_state, &env);
	ctl_order_start(&env);
	env.virt = ctl_virt_start(env.conf, env.post, &ops, err, sizeof(err));
	if (!env.virt)
		fatalx("libvirt: %s", err);
	ctl_failover_start(&env);
	if (ctl_hb_start(&env, err, sizeof(err)) < 0)
		fatalx("heartbeat: %s", err);
	if (ctl_leader_start(&env, err, sizeof(err)) < 0)
		fatalx("leader: %s", err);
	env.api = ctl_api_start(&env, err, sizeof(err));
	if (!env.api)
		fatalx("api: %s", err);
	env.sig = sig_watch_new(env.base, &sh);
	env.tick = event_new(env.base, -1, EV_PERSIST, fleetd_tick, &env);
	tick.tv_sec = env.conf->tick_ms / 1000;
	tick.tv_usec = (env.conf->tick_ms % 1000) * 1000;
	if (!env.sig || !env.tick || event_add(env.tick, &tick) < 0)
		fatalx("cannot set up the event loop");
	log_info("start hosts=%d regions=%d api=%s%s redis=%s instance=%s pid=%d",
	    env.conf->nhosts, env.conf->nregions, env.conf->tls_cert[0] ? "https://" : "http://",
	    env.conf->api_listen, env.conf->redis, env.conf->instance, (int)getpid());

	event_base_dispatch(env.base);

	/* Shutdown: threads first, then what they post to, then the rest. */
	env.stopping = 1;
	ctl_mig_shutdown(&env);
	ctl_vjob_shutdown(&env);
	ctl_recon_stop(&env);	/* its thread uses the libvirt connections */
	if ((stuck = ctl_virt_stop(env.virt)) > 0) {
		/* Threads still in libvirt may post at any moment: free nothing. */
		log_warnx("stopped, leaving %d host thread(s) inside libvirt connects", stuck);
		_exit(0);
	}
	env.virt = NULL;
	ctl_post_free(env.post);
	ctl_mig_free_all(&env);
	ctl_order_stop(&env);
	ctl_leader_free(&env);
	ctl_api_free(env.api);
	rlink_free(env.redis);
	ctl_failover_stop(&env);
	ctl_hb_stop(&env);
	event_free(env.tick);
	sig_watch_free(env.sig);
	ctl_model_free(&env.model);
	ctl_region_free(&env);
	free(env.events);
	log_info("stopped");
	ctl_conf_free(env.conf);
	event_base_free(env.base);
	libevent_global_shutdown();
	ctl_xml_fini();
	return 0;
}
