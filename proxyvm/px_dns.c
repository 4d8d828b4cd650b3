/*
 * px_dns.c: asynchronous name resolution (libevent's evdns) with a small
 * cache.
 *
 * The cache is set-associative: a name hashes to a set of 4 slots, a full
 * set evicts its oldest entry, so lookups and memory are bounded (size
 * entries of ~150 bytes) with no allocation per query. Entries live for the
 * configured TTL (evdns_getaddrinfo does not report record TTLs). Only
 * successes are cached. Address literals never reach evdns.
 *
 * A query is a small record that evdns's callback frees. Cancelling only
 * detaches the caller (cb = NULL) and asks evdns to cancel: evdns still
 * calls back, later, and the record is freed then.
 */
#include "proxyvm/px.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PX_DNS_WAYS 4

struct px_dns_entry {
	char name[128];		/* "" = free; longer names are not cached */
	int64_t expires_ms;
	int64_t born_ms;
	int n;
	uint8_t fam[PX_DNS_ADDRS];
	uint8_t addr[PX_DNS_ADDRS][16];
};

struct px_dns {
	struct event_base *base;
	struct evdns_base *evdns;
	struct px_dns_entry *cache;
	size_t nsets;
	int64_t ttl_ms;
};

struct px_dnsq {
	struct px_dns *d;
	struct evdns_getaddrinfo_request *req;
	px_dns_cb *cb;
	void *arg;
	char name[256];
};

struct px_dns *
px_dns_new(struct event_base *base, struct evdns_base *evdns, long long size,
    long long ttl_ms)
{
	struct px_dns *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->base = base;
	d->evdns = evdns;
	d->ttl_ms = ttl_ms;
	d->nsets = (size_t)(size + PX_DNS_WAYS - 1) / PX_DNS_WAYS;
	if (d->nsets && ttl_ms > 0) {
		d->cache = calloc(d->nsets * PX_DNS_WAYS, sizeof(*d->cache));
		if (!d->cache) {
			free(d);
			return NULL;
		}
	} else {
		d->nsets = 0;
	}
	return d;
}

void
px_dns_free(struct px_dns *d)
{
	if (!d)
		return;
	free(d->cache);
	free(d);
}

static struct px_dns_entry *
px_dns_set(struct px_dns *d, const char *name)
{
	unsigned h = 2166136261u;

	for (const char *s = name; *s; s++)
		h = (h ^ (unsigned char)(*s | 0x20)) * 16777619u;
	return &d->cache[(h % d->nsets) * PX_DNS_WAYS];
}

static int
px_dns_cache_get(struct px_dns *d, const char *name, struct px_dns_result *res)
{
	struct px_dns_entry *set;
	int64_t now = clock_mono_ms();

	if (!d->nsets)
		return -1;
	set = px_dns_set(d, name);
	for (int i = 0; i < PX_DNS_WAYS; i++) {
		struct px_dns_entry *e = &set[i];

		if (!e->name[0] || strcasecmp(e->name, name) != 0)
			continue;
		if (e->expires_ms <= now) {
			e->name[0] = '\0';
			return -1;
		}
		memset(res, 0, sizeof(*res));
		res->n = e->n;
		for (int k = 0; k < e->n; k++) {
			if (e->fam[k] == AF_INET) {
				struct sockaddr_in *sin = (struct sockaddr_in *)&res->addr[k];

				sin->sin_family = AF_INET;
				memcpy(&sin->sin_addr, e->addr[k], 4);
			} else {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&res->addr[k];

				sin6->sin6_family = AF_INET6;
				memcpy(&sin6->sin6_addr, e->addr[k], 16);
			}
		}
		return 0;
	}
	return -1;
}

static void
px_dns_cache_put(struct px_dns *d, const char *name, const struct px_dns_result *res)
{
	struct px_dns_entry *set, *e;
	int64_t now = clock_mono_ms();

	if (!d->nsets || strlen(name) >= sizeof(set->name))
		return;
	set = px_dns_set(d, name);
	e = &set[0];
	for (int i = 0; i < PX_DNS_WAYS; i++) {
		if (!set[i].name[0] || strcasecmp(set[i].name, name) == 0) {
			e = &set[i];
			break;
		}
		if (set[i].born_ms < e->born_ms)
			e = &set[i];
	}
	str_copy(e->name, name, sizeof(e->name));
	e->born_ms = now;
	e->expires_ms = now + d->ttl_ms;
	e->n = res->n;
	for (int k = 0; k < res->n; k++) {
		const struct sockaddr *sa = (const struct sockaddr *)&res->addr[k];

		e->fam[k] = (uint8_t)sa->sa_family;
		if (sa->sa_family == AF_INET)
			memcpy(e->addr[k], &((const struct sockaddr_in *)sa)->sin_addr, 4);
		else
			memcpy(e->addr[k], &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static int
px_dns_errno(int eai)
{
	switch (eai) {
	case EVUTIL_EAI_NONAME:
	case EVUTIL_EAI_NODATA:
		return ENOENT;
	case EVUTIL_EAI_AGAIN:
		return ETIMEDOUT;
	case EVUTIL_EAI_CANCEL:
		return ECANCELED;
	case EVUTIL_EAI_MEMORY:
		return ENOMEM;
	default:
		return EHOSTUNREACH;
	}
}

static void
px_dns_done(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct px_dnsq *q = arg;
	struct px_dns_result res;
	int err = 0;

	memset(&res, 0, sizeof(res));
	if (result == 0) {
		for (struct evutil_addrinfo *p = ai; p && res.n < PX_DNS_ADDRS; p = p->ai_next) {
			if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) ||
			    p->ai_addrlen > sizeof(res.addr[0]))
				continue;
			memcpy(&res.addr[res.n++], p->ai_addr, p->ai_addrlen);
		}
		if (res.n == 0)
			err = ENOENT;
	} else {
		err = px_dns_errno(result);
	}
	if (ai)
		evutil_freeaddrinfo(ai);
	if (!err && q->cb)
		px_dns_cache_put(q->d, q->name, &res);
	if (q->cb)
		q->cb(err, err ? NULL : &res, q->arg);
	free(q);
}

struct px_dnsq *
px_dns_resolve(struct px_dns *d, const char *host, px_dns_cb *cb, void *arg)
{
	struct px_dns_result res;
	struct evutil_addrinfo hints;
	struct px_dnsq *q;
	struct evdns_getaddrinfo_request *req;

	memset(&res, 0, sizeof(res));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&res.addr[0])->sin_addr) == 1) {
		res.addr[0].ss_family = AF_INET;
		res.n = 1;
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&res.addr[0])->sin6_addr) == 1) {
		res.addr[0].ss_family = AF_INET6;
		res.n = 1;
	} else if (px_dns_cache_get(d, host, &res) < 0) {
		res.n = 0;
	}
	if (res.n) {
		cb(0, &res, arg);
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		cb(ENOMEM, NULL, arg);
		return NULL;
	}
	q->d = d;
	q->cb = cb;
	q->arg = arg;
	str_copy(q->name, host, sizeof(q->name));
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	req = evdns_getaddrinfo(d->evdns, host, NULL, &hints, px_dns_done, q);
	if (!req)
		return NULL;	/* answered (and q freed) inside evdns_getaddrinfo */
	q->req = req;
	return q;
}

void
px_dns_cancel(struct px_dnsq *q)
{
	if (!q)
		return;
	q->cb = NULL;
	evdns_getaddrinfo_cancel(q->req);
}
