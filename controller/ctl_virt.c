/*
 * ctl_virt.c: libvirt connections and events on their own threads (see
 * ctl_virt.h).
 *
 * DESIGN. Each host thread sleeps on its condition variable and wakes for:
 * a refresh request (a lifecycle event or the API), the connection closing
 * (libvirt's close callback, driven by keepalive), the periodic resync, or
 * stop. Only the host thread opens and closes its connection; others borrow
 * it with virConnectRef() under the host lock, so a migration thread never
 * sees a freed pointer. The libvirt event thread only runs callbacks that
 * flip flags and post to the loop; it never calls into libvirt itself.
 */
#include "controller/ctl_virt.h"
#include "controller/ctl_model.h"
#include "common/util.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#define CTL_VIRT_RESYNC_MS 10000
#define CTL_VIRT_BACKOFF_MAX_MS 5000
#define CTL_VIRT_KEEPALIVE_S 1
#define CTL_VIRT_KEEPALIVE_COUNT 3
#define CTL_VIRT_STOP_WAIT_S 3
#define CTL_VIRT_PROBE_MS 2000

struct ctl_virt_host {
	struct ctl_virt *v;
	int idx;
	struct ctl_conf_host conf_copy;	/* a copy: the config may be swapped */
	const struct ctl_conf_host *conf;	/* = &conf_copy */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	virConnectPtr conn;	/* guarded by lock */
	int cb_id;
	int refresh, closed;
};

struct ctl_virt {
	struct ctl_post *post;
	struct ctl_virt_ops ops;
	struct ctl_virt_host *hosts;
	int nhosts;
	pthread_t ev_thread;
	int ev_started;
	atomic_int stop;
	int unjoined;		/* host threads still stuck at shutdown: keep v */
};

void
ctl_virt_errmsg(char *buf, size_t len)
{
	const char *m = virGetLastErrorMessage();

	str_copy(buf, m ? m : "unknown libvirt error", len);
}

/* ----- posts to the loop ------------------------------------------------ */

/* A message carries the ops by value: it may be delivered after
 * ctl_virt_stop() freed the ctl_virt (the post queue drains last). */
struct ctl_virt_msg {
	struct ctl_virt_ops ops;
	int host;
	int kind;	/* 0 state, 1 snapshot, 2 event */
	int up;
	char why[256];
	struct ctl_dom_info *doms;
	int ndoms;
	char name[CTL_NAME_MAX];
	int event, detail;
};

static void
ctl_virt_deliver(void *arg)
{
	struct ctl_virt_msg *m = arg;
	const struct ctl_virt_ops *ops = &m->ops;

	switch (m->kind) {
	case 0:
		ops->host_state(ops->env, m->host, m->up, m->why);
		break;
	case 1:
		ops->snapshot(ops->env, m->host, m->doms, m->ndoms);
		break;
	case 2:
		ops->dom_event(ops->env, m->host, m->name, m->event, m->detail);
		break;
	}
	free(m);
}

static void
ctl_virt_send(struct ctl_virt *v, struct ctl_virt_msg *m)
{
	m->ops = v->ops;
	if (ctl_post(v->post, ctl_virt_deliver, m) < 0) {
		free(m->doms);
		free(m);
	}
}

static void
ctl_virt_post_state(struct ctl_virt_host *h, int up, const char *why)
{
	struct ctl_virt_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return;
	m->host = h->idx;
	m->kind = 0;
	m->up = up;
	str_copy(m->why, why, sizeof(m->why));
	ctl_virt_send(h->v, m);
}

/* ----- libvirt event-thread callbacks ----------------------------------- */

static void
ctl_virt_wake(struct ctl_virt_host *h, int closed)
{
	pthread_mutex_lock(&h->lock);
	if (closed)
		h->closed = 1;
	else
		h->refresh = 1;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static int
ctl_virt_lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail,
    void *opaque)
{
	struct ctl_virt_host *h = opaque;
	struct ctl_virt_msg *m = calloc(1, sizeof(*m));

	(void)conn;
	if (m) {
		m->host = h->idx;
		m->kind = 2;
		str_copy(m->name, virDomainGetName(dom), sizeof(m->name));
		m->event = event;
		m->detail = detail;
		ctl_virt_send(h->v, m);
	}
	ctl_virt_wake(h, 0);
	return 0;
}

static void
ctl_virt_close_cb(virConnectPtr conn, int reason, void *opaque)
{
	(void)conn;
	(void)reason;
	ctl_virt_wake(opaque, 1);
}

/* ----- host threads ----------------------------------------------------- */

static enum ctl_vm_state
ctl_virt_state(int st)
{
	switch (st) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
		return VM_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VM_PAUSED;
	default:
		return VM_SHUTOFF;
	}
}

/* The first <mac address='...'/> in a domain's XML. */
static void
ctl_virt_mac(virDomainPtr dom, char *mac, size_t len)
{
	char *xml = virDomainGetXMLDesc(dom, 0), *p;

	mac[0] = '\0';
	if (!xml)
		return;
	p = strstr(xml, "<mac address=");
	if (p && strlen(p) > 14 + 17)
		snprintf(mac, len, "%.17s", p + 14);
	free(xml);
}

static void
ctl_virt_list(struct ctl_virt_host *h, virConnectPtr conn)
{
	virDomainPtr *doms = NULL;
	struct ctl_virt_msg *m;
	int n, k = 0;
	char why[256];

	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0) {
		ctl_virt_errmsg(why, sizeof(why));
		virResetLastError();
		if (virConnectIsAlive(conn) != 1) {
			/* Dead link the close callback did not report (a local
			 * driver has none): reopen it. */
			pthread_mutex_lock(&h->lock);
			h->closed = 1;
			pthread_mutex_unlock(&h->lock);
		}
		return;
	}
	m = calloc(1, sizeof(*m));
	if (m)
		m->doms = calloc((size_t)(n ? n : 1), sizeof(*m->doms));
	for (int i = 0; i < n; i++) {
		virDomainPtr d = doms[i];
		struct ctl_dom_info *di;
		virDomainInfo info;
		char *meta;
		int st = 0, reason = 0;

		if (m && m->doms && virDomainGetState(d, &st, &reason, 0) == 0 &&
		    virDomainGetInfo(d, &info) == 0) {
			di = &m->doms[k];
			str_copy(di->name, virDomainGetName(d), sizeof(di->name));
			di->state = ctl_virt_state(st);
			di->migrating_in = st == VIR_DOMAIN_PAUSED &&
			    (reason == VIR_DOMAIN_PAUSED_MIGRATION ||
			     reason == VIR_DOMAIN_PAUSED_STARTING_UP);
			meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, CTL_META_NS, 0);
			if (meta) {
				str_copy(di->meta, meta, sizeof(di->meta));
				free(meta);
			}
			di->mem_bytes = (uint64_t)info.maxMem * 1024;
			di->vcpus = info.nrVirtCpu;
			ctl_virt_mac(d, di->mac, sizeof(di->mac));
			k++;
		}
		virDomainFree(d);
	}
	free(doms);
	virResetLastError();
	if (!m || !m->doms) {
		if (m)
			free(m);
		return;
	}
	m->host = h->idx;
	m->kind = 1;
	m->ndoms = k;
	ctl_virt_send(h->v, m);
}

/*
 * For qemu+tcp:// and qemu+tls:// URIs, check with a non-blocking connect
 * that libvirtd's port answers within timeout_ms. virConnectOpen()
 * connects blocking, and a host whose link is down would hold this thread
 * in the kernel's SYN retries for a minute, long after the link is back.
 * Other URIs (ssh, local) are not probed. 0 when reachable or not probed.
 * The failover's "libvirt keepalive failed" check is this probe too.
 */
int
ctl_virt_probe(const char *uri, int timeout_ms, char *why, size_t whylen)
{
	const char *p = strstr(uri, "://"), *end;
	char host[256], port[8];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	int fd, r, tls = strncmp(uri, "qemu+tls", 8) == 0;
	struct pollfd pfd;

	if (!p || (strncmp(uri, "qemu+tcp", 8) != 0 && !tls))
		return 0;
	p += 3;
	end = p + strcspn(p, "/?");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (!rb)
			return 0;
		snprintf(host, sizeof(host), "%.*s", (int)(rb - p - 1), p + 1);
		p = rb + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));

		snprintf(host, sizeof(host), "%.*s", (int)((colon ? colon : end) - p), p);
		p = colon ? colon : end;
	}
	if (*p == ':')
		snprintf(port, sizeof(port), "%.*s", (int)(end - p - 1), p + 1);
	else
		snprintf(port, sizeof(port), "%s", tls ? "16514" : "16509");
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return 0;	/* a name: let libvirt resolve it */
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	r = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (r < 0 && fd >= 0 && errno == EINPROGRESS) {
		int err = 0;
		socklen_t len = sizeof(err);

		pfd.fd = fd;
		pfd.events = POLLOUT;
		r = poll(&pfd, 1, timeout_ms) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
		if (r < 0)
			errno = err ? err : ETIMEDOUT;
	}
	if (r < 0)
		snprintf(why, whylen, "cannot reach %.100s:%.7s: %.80s", host, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

static virConnectPtr
ctl_virt_open(struct ctl_virt_host *h, char *why, size_t whylen)
{
	virConnectPtr c;

	if (ctl_virt_probe(h->conf->uri, CTL_VIRT_PROBE_MS, why, whylen) < 0)
		return NULL;
	c = virConnectOpen(h->conf->uri);

	if (!c) {
		ctl_virt_errmsg(why, whylen);
		return NULL;
	}
	/* Keepalive and close callbacks exist on remote connections only; a
	 * local driver (test:///, qemu:///system on the host itself) has no
	 * link to lose, so "not supported" is fine there. Each is tried on
	 * its own: one unsupported must not skip the other. */
	if (virConnectSetKeepAlive(c, CTL_VIRT_KEEPALIVE_S, CTL_VIRT_KEEPALIVE_COUNT) < 0 &&
	    virGetLastErrorCode() != VIR_ERR_NO_SUPPORT) {
		ctl_virt_errmsg(why, whylen);
		virConnectClose(c);
		return NULL;
	}
	virResetLastError();
	if (virConnectRegisterCloseCallback(c, ctl_virt_close_cb, h, NULL) < 0 &&
	    virGetLastErrorCode() != VIR_ERR_NO_SUPPORT) {
		ctl_virt_errmsg(why, whylen);
		virConnectClose(c);
		return NULL;
	}
	virResetLastError();
	h->cb_id = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(ctl_virt_lifecycle_cb), h, NULL);
	if (h->cb_id < 0) {
		ctl_virt_errmsg(why, whylen);
		virConnectUnregisterCloseCallback(c, ctl_virt_close_cb);
		virConnectClose(c);
		return NULL;
	}
	return c;
}

static void
ctl_virt_close(struct ctl_virt_host *h)
{
	virConnectPtr c;

	pthread_mutex_lock(&h->lock);
	c = h->conn;
	h->conn = NULL;
	pthread_mutex_unlock(&h->lock);
	if (!c)
		return;
	virConnectDomainEventDeregisterAny(c, h->cb_id);
	virConnectUnregisterCloseCallback(c, ctl_virt_close_cb);
	virConnectClose(c);
	virResetLastError();
}

/* Sleep on the host's condition for ms or until woken. Returns with lock held. */
static void
ctl_virt_wait(struct ctl_virt_host *h, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);	/* the cond uses this clock */
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (!atomic_load(&h->v->stop) && !h->refresh && !h->closed)
		if (pthread_cond_timedwait(&h->cond, &h->lock, &ts) == ETIMEDOUT)
			break;
}

static void *
ctl_virt_host_main(void *arg)
{
	struct ctl_virt_host *h = arg;
	int64_t backoff = 250;
	char why[256];

	for (;;) {
		pthread_mutex_lock(&h->lock);
		int stop = atomic_load(&h->v->stop), closed = h->closed, connected = h->conn != NULL;

		h->closed = 0;
		h->refresh = 0;
		pthread_mutex_unlock(&h->lock);
		if (stop)
			break;
		if (closed && connected) {
			ctl_virt_close(h);
			connected = 0;
			ctl_virt_post_state(h, 0, "connection closed (keepalive timeout or libvirtd gone)");
		}
		if (!connected) {
			virConnectPtr c = ctl_virt_open(h, why, sizeof(why));

			if (!c) {
				ctl_virt_post_state(h, 0, why);
				pthread_mutex_lock(&h->lock);
				ctl_virt_wait(h, backoff);
				pthread_mutex_unlock(&h->lock);
				backoff = backoff * 2 > CTL_VIRT_BACKOFF_MAX_MS ?
				    CTL_VIRT_BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			backoff = 250;
			pthread_mutex_lock(&h->lock);
			h->conn = c;
			pthread_mutex_unlock(&h->lock);
			ctl_virt_post_state(h, 1, "connected");
		}
		ctl_virt_list(h, h->conn);
		pthread_mutex_lock(&h->lock);
		ctl_virt_wait(h, CTL_VIRT_RESYNC_MS);
		pthread_mutex_unlock(&h->lock);
	}
	ctl_virt_close(h);
	return NULL;
}

static void *
ctl_virt_event_main(void *arg)
{
	struct ctl_virt *v = arg;

	while (!atomic_load(&v->stop))
		virEventRunDefaultImpl();
	return NULL;
}

static void
ctl_virt_noop_timer(int timer, void *opaque)
{
	(void)opaque;
	virEventRemoveTimeout(timer);
}

/* Silence libvirt's default error printing: errors are reported by us. */
static void
ctl_virt_quiet(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

struct ctl_virt *
ctl_virt_start(const struct ctl_conf *conf, struct ctl_post *post,
    const struct ctl_virt_ops *ops, char *err, size_t errlen)
{
	struct ctl_virt *v = calloc(1, sizeof(*v));
	pthread_attr_t attr;

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->post = post;
	v->ops = *ops;
	virSetErrorFunc(NULL, ctl_virt_quiet);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		ctl_virt_errmsg(err, errlen);
		free(v);
		return NULL;
	}
	if (pthread_create(&v->ev_thread, NULL, ctl_virt_event_main, v) != 0) {
		snprintf(err, errlen, "cannot start the libvirt event thread");
		free(v);
		return NULL;
	}
	v->ev_started = 1;
	v->hosts = calloc((size_t)(conf->nhosts ? conf->nhosts : 1), sizeof(*v->hosts));
	if (!v->hosts) {
		ctl_virt_stop(v);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < conf->nhosts; i++) {
		struct ctl_virt_host *h = &v->hosts[i];

		h->v = v;
		h->idx = i;
		h->conf_copy = conf->hosts[i];
		h->conf = &h->conf_copy;
		pthread_condattr_t ca;

		pthread_mutex_init(&h->lock, NULL);
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->cond, &ca);
		pthread_condattr_destroy(&ca);
		if (pthread_create(&h->thread, &attr, ctl_virt_host_main, h) != 0) {
			pthread_attr_destroy(&attr);
			ctl_virt_stop(v);
			snprintf(err, errlen, "cannot start the thread of host %s", h->conf->name);
			return NULL;
		}
		v->nhosts = i + 1;
	}
	pthread_attr_destroy(&attr);
	return v;
}

void
ctl_virt_refresh(struct ctl_virt *v, int host)
{
	if (v && host >= 0 && host < v->nhosts)
		ctl_virt_wake(&v->hosts[host], 0);
}

virConnectPtr
ctl_virt_conn(struct ctl_virt *v, int host)
{
	struct ctl_virt_host *h;
	virConnectPtr c = NULL;

	if (host < 0 || host >= v->nhosts)
		return NULL;
	h = &v->hosts[host];
	pthread_mutex_lock(&h->lock);
	if (h->conn && virConnectRef(h->conn) == 0)
		c = h->conn;
	pthread_mutex_unlock(&h->lock);
	return c;
}

int
ctl_virt_stop(struct ctl_virt *v)
{
	if (!v)
		return 0;
	atomic_store(&v->stop, 1);
	for (int i = 0; i < v->nhosts; i++)
		ctl_virt_wake(&v->hosts[i], 0);
	for (int i = 0; i < v->nhosts; i++) {
		struct timespec ts;

		/* A thread inside virConnectOpen() towards a dead host may sit
		 * there for a TCP timeout: do not wait that out at exit. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += CTL_VIRT_STOP_WAIT_S;
		if (pthread_timedjoin_np(v->hosts[i].thread, NULL, &ts) != 0)
			v->unjoined++;
	}
	if (v->ev_started && !v->unjoined) {
		/* Wake virEventRunDefaultImpl() so it sees stop. */
		virEventAddTimeout(0, ctl_virt_noop_timer, NULL, NULL);
		pthread_join(v->ev_thread, NULL);
	}
	if (v->unjoined)
		return v->unjoined;	/* the process is exiting; stuck threads still use v */
	for (int i = 0; i < v->nhosts; i++) {
		pthread_mutex_destroy(&v->hosts[i].lock);
		pthread_cond_destroy(&v->hosts[i].cond);
	}
	free(v->hosts);
	free(v);
	return 0;
}
