/*
 * ctl_virt.h: fleetd's libvirt side.
 *
 * libvirt calls block and libvirt needs its own event loop running for
 * keepalive and domain events, so none of it touches fleetd's libevent
 * loop: one thread runs libvirt's default event implementation, and one
 * thread per host owns that host's connection (connect with backoff,
 * keepalive, close detection, domain listing on every lifecycle event and
 * every 10 s). Results reach the loop through ctl_post as calls of the ops
 * below, so the model is only ever touched on the loop thread.
 */
#ifndef CTL_VIRT_H
#define CTL_VIRT_H

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/ctl_conf.h"
#include "controller/ctl_post.h"


/* One domain as a host listing saw it. */
struct ctl_dom_info {
	char name[CTL_NAME_MAX];
	int state;		/* enum ctl_vm_state */
	int migrating_in;	/* paused for an incoming migration */
	char meta[1024];	/* the proxyfleet metadata element, "" when absent */
	char mac[18];
	uint64_t mem_bytes;
	int vcpus;
};

/* Called on the loop thread. */
struct ctl_virt_ops {
	void (*host_state)(void *env, int host, int up, const char *why);
	/* doms belongs to the callee (free()). */
	void (*snapshot)(void *env, int host, struct ctl_dom_info *doms, int ndoms);
	void (*dom_event)(void *env, int host, const char *name, int event, int detail);
	void *env;
};

struct ctl_virt;

/* Start the event thread and one thread per configured host. */
struct ctl_virt *ctl_virt_start(const struct ctl_conf *conf, struct ctl_post *post,
    const struct ctl_virt_ops *ops, char *err, size_t errlen);

/* Ask host's thread to list its domains again (any thread). */
void ctl_virt_refresh(struct ctl_virt *v, int host);

/* A new reference to host's connection, or NULL when it is down. The caller
 * releases it with virConnectClose(). Any thread. */
virConnectPtr ctl_virt_conn(struct ctl_virt *v, int host);

/* Stop every thread and close every connection (loop thread, at exit).
 * Returns how many host threads are still inside libvirt after a bounded
 * wait (a connect to a dead host): then v stays allocated and those threads
 * may still post, so the caller must not free what they use. */
int ctl_virt_stop(struct ctl_virt *v);

/* Does the libvirt port of a qemu+tcp/tls URI accept a connection within
 * timeout_ms? 0 (also for URIs it cannot probe), or -1 with why. Blocks:
 * call it off the loop. */
int ctl_virt_probe(const char *uri, int timeout_ms, char *why, size_t whylen);

/* Fill a libvirt error's message into buf (thread-local last error). */
void ctl_virt_errmsg(char *buf, size_t len);

#endif
