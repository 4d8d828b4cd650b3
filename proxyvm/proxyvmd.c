/*
 * proxyvmd.c: the proxy that runs inside each proxy VM (docs/proxyvmd.md).
 *
 * main() owns the one environment struct: it loads the configuration, opens
 * the listeners, the resolver, the Redis link and the admin endpoint, and
 * runs the loop. Signals arrive through libevent (common/sig.c):
 *   SIGHUP   parse the file into a new config, validate, then swap: the
 *            listeners are reconciled (kept, opened, closed), users are
 *            replaced; open connections are not touched. A bad file leaves
 *            the old config running, with one log line saying why.
 *   SIGTERM  stop accepting, let exchanges in flight finish up to
 *            drain_timeout, then close what is left and exit 0.
 * Listeners bind with IP_FREEBIND, so a standby can listen on service IPs
 * it does not have yet.
 */
#include "proxyvm/px.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/sig.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct px_lsn {
	LIST_ENTRY(px_lsn) entry;
	struct px_env *env;
	struct px_listener_conf conf;
	struct evconnlistener *ev;
};

static void
usage(void)
{
	fprintf(stderr, "usage: proxyvmd [-dn] [-f file]\n"
	    "       proxyvmd -H    (read a password on stdin, print its hash)\n"
	    "  -f file  configuration (default /etc/proxyvmd.conf)\n"
	    "  -n       check the configuration and exit\n"
	    "  -d       debug logging\n");
	exit(2);
}

/* ---------------------------------------------------------------------------
 * Listeners
 * ------------------------------------------------------------------------- */

static void
px_lsn_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct px_lsn *l = arg;

	(void)ev;
	(void)sa;
	(void)salen;
	px_sess_accept(l->env, &l->conf, fd);
}

static void
px_lsn_error(struct evconnlistener *ev, void *arg)
{
	struct px_lsn *l = arg;

	(void)ev;
	/* EMFILE and friends: log, keep listening (libevent retries). */
	log_warn("accept listener=%s addr=%s", l->conf.name, l->conf.listen.text);
}

static int
px_lsn_socket(const struct px_addr *a, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A standby listens on service IPs it does not hold yet. */
	setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "listen %s: %s", a->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int
px_lsn_open(struct px_env *env, const struct px_listener_conf *lc)
{
	struct px_lsn *l;
	char err[256];
	int fd;

	fd = px_lsn_socket(&lc->listen, err, sizeof(err));
	if (fd < 0) {
		log_warnx("listener open name=%s error=\"%s\"", lc->name, err);
		return -1;
	}
	l = calloc(1, sizeof(*l));
	if (!l || !(l->ev = evconnlistener_new(env->base, px_lsn_accept, l,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd))) {
		log_warnx("listener open name=%s error=\"out of memory\"", lc->name);
		free(l);
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(l->ev, px_lsn_error);
	l->env = env;
	l->conf = *lc;
	LIST_INSERT_HEAD(&env->lsns, l, entry);
	log_info("listener open name=%s addr=%s proto=%s", lc->name, lc->listen.text,
	    lc->proto == PX_PROTO_HTTP ? "http" : "socks5");
	return 0;
}

static void
px_lsn_close(struct px_lsn *l)
{
	LIST_REMOVE(l, entry);
	evconnlistener_free(l->ev);
	free(l);
}

/* Make the open listeners match c: keep, update, open, close. -1 when one
 * could not be opened (the others still are). */
static int
px_lsn_reconcile(struct px_env *env, const struct px_conf *c)
{
	struct px_lsn *l, *next;
	int rc = 0;

	for (l = LIST_FIRST(&env->lsns); l; l = next) {
		int keep = 0;

		next = LIST_NEXT(l, entry);
		for (int i = 0; i < c->nlisteners; i++)
			if (strcmp(c->listeners[i].listen.text, l->conf.listen.text) == 0) {
				l->conf = c->listeners[i];
				keep = 1;
			}
		if (!keep) {
			log_info("listener close name=%s addr=%s", l->conf.name,
			    l->conf.listen.text);
			px_lsn_close(l);
		}
	}
	for (int i = 0; i < c->nlisteners; i++) {
		int open = 0;

		LIST_FOREACH(l, &env->lsns, entry)
			if (strcmp(c->listeners[i].listen.text, l->conf.listen.text) == 0)
				open = 1;
		if (!open && px_lsn_open(env, &c->listeners[i]) < 0)
			rc = -1;
	}
	return rc;
}

/* ---------------------------------------------------------------------------
 * Redis, admin, reload
 * ------------------------------------------------------------------------- */

static void
px_redis_state(struct rlink *rl, int up, const char *why, void *arg)
{
	struct px_env *env = arg;

	(void)rl;
	if (up) {
		log_info("redis up vm=%s addr=%s", env->conf->vm, rlink_addr(rl));
		env->users_rev = -1;	/* reload users after an outage */
	} else {
		log_warnx("redis down vm=%s why=\"%s\" telemetry=skipped", env->conf->vm, why);
	}
}

static int
px_redis_open(struct px_env *env)
{
	const struct px_conf *c = env->conf;
	char host[INET6_ADDRSTRLEN];
	int port;

	if (c->redis_sentinels[0]) {
		env->redis = rlink_open(env->base, &c->redis_target, px_redis_state, env);
		return env->redis ? 0 : -1;
	}
	if (!c->redis.len)
		return 0;
	if (c->redis.ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->redis.ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->redis.ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
	}
	env->redis = rlink_new(env->base, host, port, c->redis_password, px_redis_state, env);
	return env->redis ? 0 : -1;
}

static void
px_log_level(const struct px_conf *c, int debug)
{
	enum log_level lvl = LOG_LVL_INFO;

	/* The config loader accepted only known levels. */
	if (debug)
		lvl = LOG_LVL_DEBUG;
	else
		log_level_parse(c->log_level, &lvl);
	log_set_level(lvl);
}

static void
px_reload(struct px_env *env)
{
	struct px_conf *nc, *old = env->conf;
	char err[512];
	int64_t t0 = clock_mono_ms();
	int redis_changed, admin_changed;

	nc = px_conf_load(env->conf_path, err, sizeof(err));
	if (!nc) {
		log_warnx("reload refused error=\"%s\" config=kept", err);
		return;
	}
	if (px_auth_set_conf(env->auth, nc) < 0) {
		log_warnx("reload refused error=\"out of memory\" config=kept");
		px_conf_free(nc);
		return;
	}
	redis_changed = nc->redis.len != old->redis.len ||
	    strcmp(nc->redis.text, old->redis.text) != 0 ||
	    strcmp(nc->redis_sentinels, old->redis_sentinels) != 0 ||
	    strcmp(nc->redis_master, old->redis_master) != 0 ||
	    strcmp(nc->redis_sentinel_password, old->redis_sentinel_password) != 0 ||
	    strcmp(nc->redis_password, old->redis_password) != 0 ||
	    strcmp(nc->vm, old->vm) != 0;
	admin_changed = strcmp(nc->admin.text, old->admin.text) != 0;
	env->conf = nc;
	px_lsn_reconcile(env, nc);
	px_log_level(nc, 0);
	if (redis_changed) {
		rlink_free(env->redis);
		env->redis = NULL;
		env->users_rev = -1;
		if (px_redis_open(env) < 0)
			log_warnx("reload redis error=\"out of memory\"");
	}
	if (!nc->redis_users || !PX_HAS_REDIS(nc))
		px_auth_set_redis(env->auth, NULL, NULL, 0);
	else
		env->users_rev = -1;	/* SIGHUP reloads credentials too */
	if (admin_changed) {
		px_admin_free(env->admin);
		env->admin = NULL;
		if (nc->admin.len && !(env->admin = px_admin_new(env, &nc->admin, err,
		    sizeof(err))))
			log_warnx("reload admin error=\"%s\"", err);
	}
	px_conf_free(old);
	log_info("reload ok listeners=%d users=%d sessions=%u took_ms=%lld", nc->nlisteners,
	    nc->nusers, env->nsess, (long long)(clock_mono_ms() - t0));
}

/* ---------------------------------------------------------------------------
 * Signals and the tick
 * ------------------------------------------------------------------------- */

static void
px_on_hup(void *arg)
{
	px_reload(arg);
}

static void
px_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct px_env *env = arg;

	(void)fd;
	(void)what;
	log_info("drain timeout sessions=%u closing=all", env->nsess);
	px_sess_close_all(env);
	event_base_loopexit(env->base, NULL);
}

static void
px_on_term(int signo, void *arg)
{
	struct px_env *env = arg;
	struct px_lsn *l;
	struct timeval tv;

	if (env->draining) {
		log_info("stop signal=%d again sessions=%u", signo, env->nsess);
		px_sess_close_all(env);
		event_base_loopexit(env->base, NULL);
		return;
	}
	env->draining = 1;
	while ((l = LIST_FIRST(&env->lsns)))
		px_lsn_close(l);
	px_sess_drain(env);
	log_info("drain start signal=%d sessions=%u timeout_ms=%lld", signo, env->nsess,
	    env->conf->drain_timeout_ms);
	if (env->nsess == 0) {
		event_base_loopexit(env->base, NULL);
		return;
	}
	tv.tv_sec = (time_t)(env->conf->drain_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(env->conf->drain_timeout_ms % 1000) * 1000;
	env->drain_timer = evtimer_new(env->base, px_drain_timeout, env);
	if (!env->drain_timer || evtimer_add(env->drain_timer, &tv) < 0)
		px_drain_timeout(-1, 0, env);
}

static void
px_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	px_tel_tick(arg);
}

/* ---------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------- */

static int
px_hash_stdin(void)
{
	char pass[512], out[256];
	size_t n;

	if (!fgets(pass, sizeof(pass), stdin)) {
		fprintf(stderr, "proxyvmd: no password on stdin\n");
		return 2;
	}
	n = strcspn(pass, "\r\n");
	pass[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "proxyvmd: empty password\n");
		return 2;
	}
	if (px_auth_hash(pass, out, sizeof(out)) < 0) {
		fprintf(stderr, "proxyvmd: cannot hash the password\n");
		return 1;
	}
	explicit_bzero(pass, sizeof(pass));
	printf("%s\n", out);
	return 0;
}

static void
px_env_free(struct px_env *env)
{
	struct px_lsn *l;

	px_sess_close_all(env);
	while ((l = LIST_FIRST(&env->lsns)))
		px_lsn_close(l);
	px_admin_free(env->admin);
	rlink_free(env->redis);
	if (env->tick)
		event_free(env->tick);
	if (env->drain_timer)
		event_free(env->drain_timer);
	sig_watch_free(env->sig);
	/* Cancelled DNS queries call back on a later loop turn: let them. */
	for (int i = 0; i < 4; i++)
		event_base_loop(env->base, EVLOOP_NONBLOCK);
	if (env->evdns)
		evdns_base_free(env->evdns, 1);
	event_base_loop(env->base, EVLOOP_NONBLOCK);
	px_dns_free(env->dns);
	px_auth_free(env->auth);
	px_conf_free(env->conf);
	event_base_free(env->base);
}

int
main(int argc, char **argv)
{
	struct px_env env;
	const char *path = "/etc/proxyvmd.conf";
	int ch, check = 0, debug = 0;
	char err[512];
	struct sig_handlers sh;
	struct timeval sec = { 1, 0 };
	struct rlimit rl;

	while ((ch = getopt(argc, argv, "df:nH")) != -1) {
		switch (ch) {
		case 'd': debug = 1; break;
		case 'f': path = optarg; break;
		case 'n': check = 1; break;
		case 'H': return px_hash_stdin();
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("proxyvmd", debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);

	memset(&env, 0, sizeof(env));
	TAILQ_INIT(&env.sessions);
	LIST_INIT(&env.lsns);
	env.conf_path = path;
	env.users_rev = -1;
	env.conf = px_conf_load(path, err, sizeof(err));
	if (!env.conf) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (check) {
		printf("configuration OK\n");
		px_conf_free(env.conf);
		return 0;
	}
	px_log_level(env.conf, debug);
	/* One fd per client, one per upstream, two pipes per tunnel. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	env.boot_ms = clock_wall_ms();
	env.base = event_base_new();
	if (!env.base)
		fatalx("event_base_new failed");
	env.auth = px_auth_new(env.base);
	if (!env.auth || px_auth_set_conf(env.auth, env.conf) < 0)
		fatalx("out of memory");
	if (env.conf->nameserver[0]) {
		env.evdns = evdns_base_new(env.base, 0);
		if (env.evdns && (evdns_base_nameserver_ip_add(env.evdns, env.conf->nameserver) ||
		    evdns_base_load_hosts(env.evdns, NULL)))
			fatalx("dns nameserver=%s is not an IP address", env.conf->nameserver);
	} else {
		env.evdns = evdns_base_new(env.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		if (!env.evdns) {
			/* No usable /etc/resolv.conf (an appliance without pf.dns):
			 * keep proxying; requests by IP work, names fail as DNS errors. */
			log_warnx("dns: no nameserver in /etc/resolv.conf; names will not "
			    "resolve, IP literals still work");
			env.evdns = evdns_base_new(env.base, 0);
		}
	}
	if (!env.evdns)
		fatalx("cannot start the resolver");
	env.dns = px_dns_new(env.base, env.evdns, env.conf->dns_cache_size,
	    env.conf->dns_cache_ttl_ms);
	if (!env.dns)
		fatalx("out of memory");
	if (px_lsn_reconcile(&env, env.conf) < 0)
		fatalx("cannot open every listener");
	if (px_redis_open(&env) < 0)
		fatalx("out of memory");
	if (env.conf->admin.len && !(env.admin = px_admin_new(&env, &env.conf->admin, err,
	    sizeof(err))))
		fatalx("admin: %s", err);
	sh.on_term = px_on_term;
	sh.on_hup = px_on_hup;
	sh.arg = &env;
	env.sig = sig_watch_new(env.base, &sh);
	env.tick = event_new(env.base, -1, EV_PERSIST, px_tick, &env);
	if (!env.sig || !env.tick || evtimer_add(env.tick, &sec) < 0)
		fatalx("cannot set up signals and timers");
	log_info("start vm=%s listeners=%d users=%d redis=%s admin=%s pid=%d",
	    env.conf->vm[0] ? env.conf->vm : "-", env.conf->nlisteners, env.conf->nusers,
	    env.conf->redis_sentinels[0] ? env.conf->redis_sentinels :
	    env.conf->redis.len ? env.conf->redis.text : "none",
	    env.conf->admin.len ? env.conf->admin.text : "none", (int)getpid());
	event_base_dispatch(env.base);
	log_info("stop sessions=%u conns_total=%llu requests=%llu", env.nsess,
	    (unsigned long long)env.ctr.conns_total, (unsigned long long)env.ctr.requests);
	px_env_free(&env);
	return 0;
}
