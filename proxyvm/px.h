/*
 * px.h: what proxyvmd's modules share: the configuration, the counters and
 * the one environment struct (relayd's "env"), plus each module's entry
 * points. The pure parsers (px_http, px_socks, px_ssrf) have their own
 * headers and know nothing of this one.
 *
 * Threading: proxyvmd is one thread around one libevent loop; every
 * function here runs on it. The one other thread is px_auth's crypt(3)
 * worker, private to px_auth.c.
 */
#ifndef PX_H
#define PX_H

#include "common/rtarget.h"
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "proxyvm/px_ssrf.h"

struct event_base;
struct evdns_base;
struct event;
struct evbuffer;
struct rlink;
struct sig_watch;

/* ---------------------------------------------------------------------------
 * Configuration (px_conf.c)
 * ------------------------------------------------------------------------- */

#define PX_LISTENERS_MAX 32
#define PX_SERVICE_IPS_MAX 16

enum px_proto { PX_PROTO_HTTP, PX_PROTO_SOCKS5 };
enum px_authmode { PX_AUTH_AUTO, PX_AUTH_ON, PX_AUTH_OFF };
enum px_egress { PX_EGRESS_AUTO, PX_EGRESS_NONE, PX_EGRESS_ADDR };

/* The configuration names a Redis (an address, or sentinels). */
#define PX_HAS_REDIS(c) ((c)->redis.len > 0 || (c)->redis_sentinels[0] != '\0')

struct px_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80];
};

struct px_listener_conf {
	char name[32];
	struct px_addr listen;
	int proto;		/* enum px_proto */
	int auth;		/* enum px_authmode */
	int egress_mode;	/* enum px_egress */
	struct px_addr egress;	/* PX_EGRESS_ADDR */
};

struct px_user_conf {
	char name[64];
	char hash[160];		/* crypt(3) hash, e.g. "$6$salt$..." */
	long long max_conns;	/* -1: the [limits] default */
};

struct px_conf {
	char path[256];
	char vm[64];
	char log_level[16];
	/* [limits] */
	long long max_conns, user_max_conns;
	long long header_max, header_count;
	long long header_timeout_ms, idle_timeout_ms, connect_timeout_ms;
	long long drain_timeout_ms;
	/* [redis] */
	struct px_addr redis;	/* len 0: no Redis (unless sentinels) */
	char redis_password[128];
	int redis_users;
	char redis_sentinels[256];	/* "IP:PORT,...": the master through them */
	char redis_master[64];
	char redis_sentinel_password[128];
	struct rlink_target redis_target;	/* with sentinels (validated) */
	/* [admin] */
	struct px_addr admin;	/* len 0: no admin endpoint */
	char admin_token[128];	/* bearer token for the POSTs to /service; "" = none */
	/* [egress] */
	struct px_ssrf ssrf;
	/* [dns] */
	long long dns_cache_size, dns_cache_ttl_ms;
	char nameserver[64];
	/* [service] */
	char service_dev[32];
	struct px_cidr service_ips[PX_SERVICE_IPS_MAX];
	int nservice_ips;
	/* [listener NAME] */
	struct px_listener_conf listeners[PX_LISTENERS_MAX];
	int nlisteners;
	/* [user NAME] */
	struct px_user_conf *users;
	int nusers, users_cap;
};

/* Load and validate path. NULL with "path:line: message" (or "path: ...")
 * in err. The caller owns the result: px_conf_free() (accepts NULL). */
struct px_conf *px_conf_load(const char *path, char *err, size_t errlen);
void px_conf_free(struct px_conf *c);
/* "1.2.3.4:80", "[::1]:80", "*:80": 0 or -1. */
int px_addr_parse(const char *s, struct px_addr *a, char *err, size_t errlen);

/* ---------------------------------------------------------------------------
 * Counters: cumulative since start, published to Redis and /metrics.
 * ------------------------------------------------------------------------- */

struct px_counters {
	uint64_t bytes_up;	/* client -> upstream */
	uint64_t bytes_down;	/* upstream -> client */
	uint64_t conns_total;
	uint64_t requests;
	uint64_t auth_fail;
	uint64_t err_parse, err_denied, err_connect, err_dns, err_timeout;
	uint64_t err_limit, err_upstream;
};

/* Why a session failed; selects the counter and the client-facing error. */
enum px_fail {
	PX_F_PARSE, PX_F_AUTH, PX_F_DENIED, PX_F_CONNECT, PX_F_DNS,
	PX_F_TIMEOUT, PX_F_LIMIT, PX_F_UPSTREAM,
};

/* ---------------------------------------------------------------------------
 * The environment: everything proxyvmd owns, in one place.
 * ------------------------------------------------------------------------- */

struct px_sess;
struct px_lsn;
struct px_auth;
struct px_dns;
struct px_admin;

struct px_env {
	struct event_base *base;
	const char *conf_path;
	struct px_conf *conf;
	struct evdns_base *evdns;
	struct px_dns *dns;
	struct px_auth *auth;
	struct rlink *redis;
	struct px_admin *admin;
	struct sig_watch *sig;
	struct event *tick;		/* 1 Hz telemetry */
	struct event *drain_timer;
	TAILQ_HEAD(, px_sess) sessions;
	unsigned nsess;
	LIST_HEAD(, px_lsn) lsns;
	struct px_counters ctr;
	int64_t boot_ms;
	int draining;
	long long users_rev;		/* last pf:users:rev loaded, -1: none */
	int users_loading;
	long long cfg_rev;		/* pf:users:rev in force (telemetry: replication lag) */
	int64_t cfg_ms;			/* wall ms it came into force */
	int service_bound;		/* service IPs bound by us (admin command) */
};

/* ---------------------------------------------------------------------------
 * Sessions (px_sess.c): one per client connection.
 * ------------------------------------------------------------------------- */

/* Take over an accepted, non-blocking socket fd arriving on listener lc. */
void px_sess_accept(struct px_env *env, const struct px_listener_conf *lc, int fd);
/* Draining: close sessions waiting for a request; others close when their
 * exchange ends. */
void px_sess_drain(struct px_env *env);
/* Close every session now (shutdown). */
void px_sess_close_all(struct px_env *env);

/* ---------------------------------------------------------------------------
 * Authentication (px_auth.c)
 * ------------------------------------------------------------------------- */

struct px_usage;
struct px_authq;

/* Verdicts of px_auth_check(). */
enum {
	PX_AUTH_PENDING = 1,	/* crypt(3) runs on the worker; cb follows */
	PX_AUTH_OK = 0,
	PX_AUTH_BAD = -1,	/* unknown user or wrong password */
	PX_AUTH_LIMIT = -2,	/* user at its connection limit */
	PX_AUTH_THROTTLED = -3,	/* too many uncached checks from this client or for this user */
};

/*
 * Called on the loop thread when a pending check has its verdict (ok: 0 or
 * -1). The verdict is filed in the caches first: the caller checks again
 * (px_auth_check) and gets it at once, with its usage slot.
 */
typedef void px_auth_cb(int ok, void *arg);

/* Users, caches, and the crypt(3) worker thread, whose verdicts arrive as
 * events on base. px_auth_free() (accepts NULL) joins the worker. */
struct px_auth *px_auth_new(struct event_base *base);
void px_auth_free(struct px_auth *a);
/* Replace the users from the config file (on start and reload). 0 / -1. */
int px_auth_set_conf(struct px_auth *a, const struct px_conf *c);
/* Replace the users from Redis: n names and hashes. 0 / -1 (no memory). */
int px_auth_set_redis(struct px_auth *a, const char *const *names,
    const char *const *hashes, size_t n);
/* Users known (config + Redis). */
size_t px_auth_count(const struct px_auth *a);
/* Password checks handed to the worker whose verdict is not filed yet
 * (waiting or in crypt; a cancelled one counts until it is done). */
unsigned px_auth_queued(const struct px_auth *a);
/*
 * Check user/pass for a client at address client (its IP, the rate-limit
 * key). Never blocks. PX_AUTH_OK: *usage is a slot already counted against
 * the user's connection limit (give it back with px_usage_put()).
 * PX_AUTH_PENDING: *q is the job; cb(arg) is called later unless
 * px_authq_cancel(*q) is called first. Anything else is a refusal.
 */
int px_auth_check(struct px_auth *a, const char *user, const char *pass,
    const char *client, struct px_usage **usage, px_auth_cb *cb, void *arg,
    struct px_authq **q);
/* The same for an HTTP "Basic <base64>" credential; the user name goes to
 * user (empty when the credential does not decode). */
int px_auth_check_basic(struct px_auth *a, const char *value, size_t len,
    const char *client, struct px_usage **usage, char *user, size_t userlen,
    px_auth_cb *cb, void *arg, struct px_authq **q);
/* The callback of q will not be called (loop thread; accepts NULL). */
void px_authq_cancel(struct px_authq *q);
void px_usage_put(struct px_auth *a, struct px_usage *u);
/* crypt(3) SHA-512 hash of pass into out (>= 128 bytes). 0 / -1. */
int px_auth_hash(const char *pass, char *out, size_t outlen);

/* ---------------------------------------------------------------------------
 * DNS (px_dns.c): evdns with a small cache.
 * ------------------------------------------------------------------------- */

#define PX_DNS_ADDRS 4

struct px_dns_result {
	int n;
	struct sockaddr_storage addr[PX_DNS_ADDRS];	/* port 0 */
};

struct px_dnsq;
/* err: 0, or an errno value (ENOENT: no such name, ETIMEDOUT, ...). */
typedef void px_dns_cb(int err, const struct px_dns_result *res, void *arg);

struct px_dns *px_dns_new(struct event_base *base, struct evdns_base *evdns,
    long long size, long long ttl_ms);
void px_dns_free(struct px_dns *d);
/*
 * Resolve host. Returns a query handle, or NULL when cb was already called
 * (cache hit, literal, immediate failure): the caller must not touch state
 * cb may have freed after a NULL return. px_dns_cancel() guarantees cb is
 * never called for that query.
 */
struct px_dnsq *px_dns_resolve(struct px_dns *d, const char *host, px_dns_cb *cb,
    void *arg);
void px_dns_cancel(struct px_dnsq *q);

/* ---------------------------------------------------------------------------
 * Telemetry (px_tel.c), admin endpoint (px_admin.c), service IPs (px_svc.c).
 * ------------------------------------------------------------------------- */

void px_tel_tick(struct px_env *env);
/* Prometheus text exposition of the counters, appended to out. */
void px_tel_prom(const struct px_env *env, struct evbuffer *out);

struct px_admin *px_admin_new(struct px_env *env, const struct px_addr *addr,
    char *err, size_t errlen);
void px_admin_free(struct px_admin *a);

/* Add (add = 1) or remove the configured service IPs on service_dev, over
 * netlink. 0, or -1 with a message in err (per-address failures named). */
int px_svc_apply(const struct px_conf *c, int add, char *err, size_t errlen);
/* 1 when the first service IP is an address of this machine now. */
int px_svc_present(const struct px_conf *c);

#endif
