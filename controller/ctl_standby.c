/*
 * ctl_standby.c: standby replicas.
 *
 * DESIGN. A primary with protect='hot' or 'warm' in its metadata gets a
 * standby on another host: its own domain, made from the primary's
 * definition (ctl_xml.c) with a new name (<primary>-s<N>), MAC and a
 * management address from the destination region's mgmt_pool. Hot: the
 * standby runs, its proxyvmd up with the service IPs unbound; warm: it is
 * defined and shut off. Both copies say who the other is (peer=), so the
 * pair survives a fleetd restart: libvirt's metadata is the record.
 *
 * Configuration stays in step through Redis: credentials live in pf:users
 * (rev in pf:users:rev, its write time in pf:users:rev_ms) and every guest
 * loads them on its 1 Hz tick, standby or not; each reports the revision
 * in force (cfg_rev). The replication lag is the gap between the write and
 * the moment fleetd sees the new revision in a standby's telemetry (fleetd's
 * clock: a TCG guest's clock can be seconds off), or the write's age while
 * the standby is behind.
 *
 * The replica policy runs on the tick: a protected primary without a live
 * standby gets one (one creation at a time per primary); a VM replaced by
 * a failover (some running primary says replaces=<it>) is destroyed and
 * undefined once its host answers again; each host's pf:host:<h>:fence set
 * lists the MACs its agent silences if it loses its lease.
 *
 * Blocking libvirt work runs as jobs on their own threads (ctl_vjob) and
 * reports back through ctl_post, like migrations do.
 */
#include "controller/fleetd.h"
#include "controller/ctl_post.h"
#include "controller/ctl_virt.h"
#include "controller/ctl_xml.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CTL_SB_CREATING_MAX 4	/* standby creations at once, fleet-wide */

/* ----- libvirt jobs ------------------------------------------------------ */

struct ctl_vjob {
	struct ctl_vjob *next;
	struct fleetd *env;
	struct ctl_virt *virt;
	struct ctl_post *post;
	enum ctl_vjob_kind kind;
	int host, host2;
	char vm[CTL_NAME_MAX], vm2[CTL_NAME_MAX];
	struct ctl_standby_spec spec;	/* VJ_CREATE */
	char meta[2048], meta2[2048];	/* VJ_META: vm's element; VJ_CREATE: vm's new one */
	int start;			/* VJ_CREATE: start it too (hot) */
	int role_sync;			/* VJ_META: also make the boot role match (1 primary, 2 standby) */
	char uri[256];			/* VJ_PROBE: the libvirt URI to probe ... */
	int timeout_ms;			/* ... and how long to wait */
	ctl_vjob_done_fn *done;
	void *arg;
	int ok;
	char error[300];
	int64_t t0, took_ms;
	pthread_t thread;
	int joined;
};

static int
ctl_vjob_meta(virDomainPtr d, const char *meta, char *err, size_t errlen)
{
	if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, meta, "pf", CTL_META_NS,
	    VIR_DOMAIN_AFFECT_CONFIG | (virDomainIsActive(d) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0)) < 0) {
		ctl_virt_errmsg(err, errlen);
		return -1;
	}
	return 0;
}

/* The persistent definition boots in the role the metadata says: a promoted
 * standby that reboots must bind its IPs. The running guest is not touched. */
static int
ctl_vjob_role(virConnectPtr c, virDomainPtr d, int standby, char *err, size_t errlen)
{
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE), *nx;
	virDomainPtr nd;
	int rc = 0;

	if (!xml) {
		ctl_virt_errmsg(err, errlen);
		return -1;
	}
	nx = ctl_xml_role(xml, standby, err, errlen);
	if (!nx) {
		rc = err[0] ? -1 : 0;
	} else if (!(nd = virDomainDefineXML(c, nx))) {
		ctl_virt_errmsg(err, errlen);
		rc = -1;
	} else {
		virDomainFree(nd);
	}
	free(nx);
	free(xml);
	return rc;
}

static int
ctl_vjob_create(struct ctl_vjob *j, virConnectPtr c)
{
	virConnectPtr dc = ctl_virt_conn(j->virt, j->host2);
	virDomainPtr pd = NULL, sd = NULL;
	char *xml = NULL, *sxml = NULL;
	int rc = -1;

	if (!dc) {
		snprintf(j->error, sizeof(j->error), "destination libvirt is down");
		return -1;
	}
	if (!(pd = virDomainLookupByName(c, j->vm)) ||
	    !(xml = virDomainGetXMLDesc(pd, VIR_DOMAIN_XML_INACTIVE))) {
		ctl_virt_errmsg(j->error, sizeof(j->error));
		goto out;
	}
	if (!(sxml = ctl_xml_standby(xml, &j->spec, j->error, sizeof(j->error))))
		goto out;
	if (!(sd = virDomainDefineXML(dc, sxml)) || (j->start && virDomainCreate(sd) < 0)) {
		ctl_virt_errmsg(j->error, sizeof(j->error));
		if (sd)
			virDomainUndefine(sd);
		goto out;
	}
	/* The primary learns its peer last: a failed creation leaves it as it was. */
	rc = ctl_vjob_meta(pd, j->meta2, j->error, sizeof(j->error));
out:
	free(xml);
	free(sxml);
	if (pd)
		virDomainFree(pd);
	if (sd)
		virDomainFree(sd);
	virConnectClose(dc);
	return rc;
}

static void
ctl_vjob_deliver(void *arg)
{
	struct ctl_vjob *j = arg, **pp;
	struct fleetd *env = j->env;

	if (!j->joined)
		pthread_join(j->thread, NULL);
	for (pp = &env->vjobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (!env->stopping && j->done)
		j->done(env, j, j->arg, j->ok, j->error, j->took_ms);
	free(j);
}

static void *
ctl_vjob_thread(void *arg)
{
	struct ctl_vjob *j = arg;
	virConnectPtr c = NULL;
	virDomainPtr d = NULL;
	int rc = -1;

	if (j->kind == VJ_PROBE) {
		rc = ctl_virt_probe(j->uri, j->timeout_ms, j->error, sizeof(j->error));
		goto out;
	}
	if (!(c = ctl_virt_conn(j->virt, j->host))) {
		snprintf(j->error, sizeof(j->error), "libvirt is down");
		goto out;
	}
	if (j->kind == VJ_CREATE) {
		rc = ctl_vjob_create(j, c);
		goto out;
	}
	if (!(d = virDomainLookupByName(c, j->vm))) {
		/* Removing or stopping what is not there is done; a lookup that
		 * failed for another reason (a dying connection) is not. */
		int gone = virGetLastErrorCode() == VIR_ERR_NO_DOMAIN;

		ctl_virt_errmsg(j->error, sizeof(j->error));
		rc = gone && (j->kind == VJ_REMOVE || j->kind == VJ_DESTROY) ? 0 : -1;
		goto out;
	}
	switch (j->kind) {
	case VJ_META:
		rc = ctl_vjob_meta(d, j->meta, j->error, sizeof(j->error));
		if (rc == 0 && j->role_sync)
			rc = ctl_vjob_role(c, d, j->role_sync == 2, j->error, sizeof(j->error));
		break;
	case VJ_START:
		rc = virDomainIsActive(d) == 1 || virDomainCreate(d) == 0 ? 0 : -1;
		break;
	case VJ_DESTROY:
	case VJ_REMOVE:
		rc = virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0 ? -1 : 0;
		if (rc == 0 && j->kind == VJ_REMOVE && virDomainUndefine(d) < 0)
			rc = -1;
		break;
	case VJ_CREATE:
	case VJ_PROBE:
		break;
	}
	if (rc < 0)
		ctl_virt_errmsg(j->error, sizeof(j->error));
out:
	if (d)
		virDomainFree(d);
	if (c)
		virConnectClose(c);
	virResetLastError();
	j->ok = rc == 0;
	if (j->ok && j->kind != VJ_PROBE)
		j->error[0] = '\0';
	j->took_ms = clock_mono_ms() - j->t0;
	if (ctl_post(j->post, ctl_vjob_deliver, j) < 0)
		log_warnx("vjob result lost vm=%s (out of memory)", j->vm);
	return NULL;
}

static const char *const ctl_vjob_names[] = {
	[VJ_CREATE] = "create", [VJ_META] = "metadata", [VJ_START] = "start",
	[VJ_DESTROY] = "destroy", [VJ_REMOVE] = "remove", [VJ_PROBE] = "probe",
};

/* Run kind on host's libvirt for vm; done runs on the loop with the result. */
static struct ctl_vjob *
ctl_vjob_new(struct fleetd *env, enum ctl_vjob_kind kind, int host, const char *vm,
    ctl_vjob_done_fn *done, void *arg)
{
	struct ctl_vjob *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->env = env;
	j->virt = env->virt;
	j->post = env->post;
	j->kind = kind;
	j->host = host;
	str_copy(j->vm, vm, sizeof(j->vm));
	j->done = done;
	j->arg = arg;
	return j;
}

static int
ctl_vjob_go(struct fleetd *env, struct ctl_vjob *j)
{
	j->t0 = clock_mono_ms();
	if (pthread_create(&j->thread, NULL, ctl_vjob_thread, j) != 0) {
		log_warnx("cannot start a libvirt job kind=%s vm=%s", ctl_vjob_names[j->kind], j->vm);
		free(j);
		return -1;
	}
	j->next = env->vjobs;
	env->vjobs = j;
	return 0;
}

int
ctl_vjob(struct fleetd *env, enum ctl_vjob_kind kind, int host, const char *vm,
    ctl_vjob_done_fn *done, void *arg)
{
	struct ctl_vjob *j = ctl_vjob_new(env, kind, host, vm, done, arg);

	if (!j || env->stopping) {
		free(j);
		return -1;
	}
	return ctl_vjob_go(env, j);
}

int
ctl_vjob_probe(struct fleetd *env, int host, int timeout_ms, ctl_vjob_done_fn *done,
    void *arg)
{
	struct ctl_vjob *j = ctl_vjob_new(env, VJ_PROBE, host, "", done, arg);

	if (!j || env->stopping) {
		free(j);
		return -1;
	}
	str_copy(j->uri, env->model.hosts[host].conf->uri, sizeof(j->uri));
	j->timeout_ms = timeout_ms;
	return ctl_vjob_go(env, j);
}

void
ctl_vjob_shutdown(struct fleetd *env)
{
	/* Each job ends on its own (libvirt calls have keepalive timeouts) and
	 * must, before the post queue it reports to goes; its result is freed
	 * when that queue drains. */
	for (struct ctl_vjob *j = env->vjobs; j; j = j->next) {
		log_info("stop: waiting for libvirt job kind=%s vm=%s", ctl_vjob_names[j->kind], j->vm);
		pthread_join(j->thread, NULL);
		j->joined = 1;
	}
}

int
ctl_vjob_busy(struct fleetd *env, const char *vm)
{
	for (struct ctl_vjob *j = env->vjobs; j; j = j->next)
		if (strcmp(j->vm, vm) == 0 || strcmp(j->vm2, vm) == 0)
			return 1;
	return 0;
}

/* ----- metadata writes ---------------------------------------------------- */

static void
ctl_meta_done(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok, const char *error,
    int64_t took_ms)
{
	struct ctl_vm *vm = ctl_vm_find(&env->model, j->vm);

	(void)arg;
	if (vm && j->kind == VJ_META && !ok) {
		/* Keep our copy winning over listings and write it again: a
		 * promoted standby must not turn back into one. */
		vm->meta_dirty = 1;
		vm->sb_retry_ms = clock_mono_ms() + 2000;
	} else if (vm) {
		vm->meta_pending = 0;
		if (j->kind == VJ_META)
			vm->meta_dirty = 0;
	}
	if (!ok)
		log_warnx("%s failed vm=%s: %s", ctl_vjob_names[j->kind], j->vm, error);
	else
		log_info("%s done vm=%s took_ms=%lld", ctl_vjob_names[j->kind], j->vm,
		    (long long)took_ms);
	ctl_virt_refresh(env->virt, j->host);
}

int
ctl_meta_write(struct fleetd *env, struct ctl_vm *vm)
{
	struct ctl_vjob *j;
	char meta[2048];

	if (vm->host < 0 || ctl_vm_meta_format(&vm->meta, 0, meta, sizeof(meta)) < 0)
		return -1;
	/* Until libvirt has it, the model's copy wins over listings. */
	vm->meta_pending = 1;
	if (!(j = ctl_vjob_new(env, VJ_META, vm->host, vm->name, ctl_meta_done, NULL))) {
		vm->meta_pending = 0;
		return -1;
	}
	str_copy(j->meta, meta, sizeof(j->meta));
	j->role_sync = vm->meta.role == ROLE_STANDBY ? 2 : 1;	/* and the boot role */
	if (ctl_vjob_go(env, j) < 0) {
		vm->meta_pending = 0;
		return -1;
	}
	return 0;
}

/* ----- placement ------------------------------------------------------------ */

/* A host a standby may live on: answering, leased, not leaving the fleet. */
int
ctl_host_usable(const struct fleetd *env, int h)
{
	const struct ctl_host *host = &env->model.hosts[h];

	return host->connected && host->lease_ok && !host->dead && !host->draining &&
	    !host->maintenance;
}

/* Memory the standbys being made on host h will take (not in the tally
 * until their host lists them). */
static int64_t
ctl_creating_mem(struct fleetd *env, int h)
{
	int64_t sum = 0;

	for (struct ctl_vjob *j = env->vjobs; j; j = j->next) {
		const struct ctl_vm *p;

		if (j->kind == VJ_CREATE && j->host2 == h && (p = ctl_vm_find(&env->model, j->vm)))
			sum += (int64_t)p->mem_bytes;
	}
	return sum;
}

static int
ctl_creating(struct fleetd *env)
{
	int n = 0;

	for (struct ctl_vjob *j = env->vjobs; j; j = j->next)
		n += j->kind == VJ_CREATE;
	return n;
}

static int
ctl_standby_host(struct fleetd *env, const struct ctl_vm *p)
{
	const struct ctl_model *m = &env->model;
	int best = -1, pass;
	int64_t best_free = 0;

	/* The standby region when one is asked for; else the primary's region
	 * first (a same-segment failover is one GARP), then any. */
	for (pass = 0; pass < 2 && best < 0; pass++) {
		for (int h = 0; h < m->nhosts; h++) {
			const struct ctl_host *host = &m->hosts[h];
			const char *rn = host->region >= 0 ? env->conf->regions[host->region].name : "";
			int64_t free_b = host->conf->memory - (int64_t)host->mem_used -
			    ctl_creating_mem(env, h);

			if (h == p->host || !ctl_host_usable(env, h) || free_b < (int64_t)p->mem_bytes)
				continue;
			if (p->meta.sb_region[0] && strcmp(rn, p->meta.sb_region) != 0)
				continue;
			if (!p->meta.sb_region[0] && pass == 0 && host->region != m->hosts[p->host].region)
				continue;
			if (best < 0 || free_b > best_free) {
				best = h;
				best_free = free_b;
			}
		}
		if (p->meta.sb_region[0])
			break;
	}
	return best;
}

/* The lowest free address of the region's pool ("IP/PREFIX"). */
static int
ctl_mgmt_alloc(struct fleetd *env, int region, char *out, size_t outlen)
{
	const struct ctl_conf_region *r = &env->conf->regions[region];

	for (uint32_t a = r->pool_first; r->pool_first && a <= r->pool_last; a++) {
		struct in_addr ia = { htonl(a) };
		char ip[INET_ADDRSTRLEN];
		size_t iplen;
		int used = 0;

		inet_ntop(AF_INET, &ia, ip, sizeof(ip));
		iplen = strlen(ip);
		for (int i = 0; i < env->model.nvms && !used; i++) {
			const char *mg = env->model.vms[i]->meta.mgmt;

			used = strncmp(mg, ip, iplen) == 0 && (mg[iplen] == '/' || !mg[iplen]);
		}
		for (struct ctl_vjob *j = env->vjobs; j && !used; j = j->next)
			used = j->kind == VJ_CREATE && strncmp(j->spec.meta.mgmt, ip, iplen) == 0 &&
			    j->spec.meta.mgmt[iplen] == '/';
		if (!used) {
			snprintf(out, outlen, "%s/%d", ip, r->pool_prefix);
			return 0;
		}
	}
	return -1;
}

/* <base>-s<N>, the lowest N no VM has; base is the name without "-sN". */
static void
ctl_standby_name(struct fleetd *env, const char *primary, char *out, size_t outlen)
{
	char base[CTL_NAME_MAX];
	const char *s = strrchr(primary, '-');
	size_t blen = strlen(primary);

	if (s && s[1] == 's' && s[2] && strspn(s + 2, "0123456789") == strlen(s + 2))
		blen = (size_t)(s - primary);
	snprintf(base, sizeof(base), "%.*s", (int)blen, primary);
	for (int n = 1; n < 1000; n++) {
		int taken;

		snprintf(out, outlen, "%.40s-s%d", base, n);
		taken = ctl_vm_find(&env->model, out) || ctl_vjob_busy(env, out);
		/* Nor a name some primary says it replaced: the new standby
		 * would be removed as that stale copy. */
		for (int i = 0; i < env->model.nvms && !taken; i++)
			taken = strcmp(env->model.vms[i]->meta.replaces, out) == 0;
		if (!taken)
			return;
	}
}

/* A random 52:54:00 MAC no VM of the fleet (or creation under way) has. */
static void
ctl_mac_random(struct fleetd *env, char *out, size_t outlen)
{
	for (int tries = 0; tries < 100; tries++) {
		unsigned char r[3] = { 0 };
		int used = 0;

		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r[0] = (unsigned char)clock_mono_us(), r[1] = (unsigned char)tries;
		snprintf(out, outlen, "52:54:00:%02x:%02x:%02x", r[0], r[1], r[2]);
		for (int i = 0; i < env->model.nvms && !used; i++)
			used = strcasecmp(env->model.vms[i]->mac, out) == 0;
		for (struct ctl_vjob *j = env->vjobs; j && !used; j = j->next)
			used = j->kind == VJ_CREATE && strcasecmp(j->spec.mac, out) == 0;
		if (!used)
			return;
	}
}

/* ----- creation --------------------------------------------------------------- */

static void
ctl_create_done(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok, const char *error,
    int64_t took_ms)
{
	struct ctl_vm *p = ctl_vm_find(&env->model, j->vm);

	(void)arg;
	if (p)
		p->meta_pending = 0;
	if (!ok) {
		ctl_journal(env, "standby", "create-failed vm=%s standby=%s on=%s took_ms=%lld "
		    "error=\"%s\"", j->vm, j->spec.meta.id, env->model.hosts[j->host2].conf->name,
		    (long long)took_ms, error);
		if (p) {
			p->meta.peer[0] = '\0';
			p->sb_retry_ms = clock_mono_ms() + 10000;
		}
	} else {
		struct ctl_vm *s;

		ctl_journal(env, "standby", "created vm=%s standby=%s on=%s mode=%s mgmt=%s "
		    "took_ms=%lld", j->vm, j->spec.meta.id, env->model.hosts[j->host2].conf->name,
		    j->start ? "hot" : "warm", j->spec.meta.mgmt, (long long)took_ms);
		/* In the model at once: the next tick must not make a second one
		 * before the host's listing shows this one. */
		if ((s = ctl_vm_get(&env->model, j->spec.meta.id))) {
			s->meta = j->spec.meta;
			s->host = j->host2;
			s->state = j->start ? VM_RUNNING : VM_SHUTOFF;
			str_copy(s->mac, j->spec.mac, sizeof(s->mac));
			if (p)
				s->mem_bytes = p->mem_bytes, s->vcpus = p->vcpus;
			s->seen_ms = clock_mono_us();
			ctl_model_tally(&env->model);
		}
	}
	ctl_virt_refresh(env->virt, j->host);
	ctl_virt_refresh(env->virt, j->host2);
}

static void
ctl_standby_create(struct fleetd *env, struct ctl_vm *p)
{
	struct ctl_vjob *j;
	struct ctl_vm_meta pm;
	int h = ctl_standby_host(env, p);
	const struct ctl_conf_region *r;

	if (h < 0) {
		if (!p->sb_blocked) {
			ctl_journal(env, "standby", "blocked vm=%s why=\"no usable host with room%s%s\"",
			    p->name, p->meta.sb_region[0] ? " in region " : "", p->meta.sb_region);
			p->sb_blocked = 1;
		}
		return;
	}
	p->sb_blocked = 0;
	if (!(j = ctl_vjob_new(env, VJ_CREATE, p->host, p->name, ctl_create_done, NULL)))
		return;
	j->host2 = h;
	r = &env->conf->regions[env->model.hosts[h].region];
	if (ctl_mgmt_alloc(env, env->model.hosts[h].region, j->spec.meta.mgmt,
	    sizeof(j->spec.meta.mgmt)) < 0) {
		ctl_journal(env, "standby", "blocked vm=%s why=\"region %s has no free address in "
		    "its mgmt_pool\"", p->name, r->name);
		p->sb_retry_ms = clock_mono_ms() + 10000;
		free(j);
		return;
	}
	ctl_standby_name(env, p->name, j->spec.meta.id, sizeof(j->spec.meta.id));
	str_copy(j->vm2, j->spec.meta.id, sizeof(j->vm2));
	j->spec.meta.role = ROLE_STANDBY;
	str_copy(j->spec.meta.peer, p->name, sizeof(j->spec.meta.peer));
	memcpy(j->spec.meta.ips, p->meta.ips, sizeof(p->meta.ips));
	j->spec.meta.nips = p->meta.nips;
	j->spec.meta.pin = p->meta.pin;
	ctl_mac_random(env, j->spec.mac, sizeof(j->spec.mac));
	str_copy(j->spec.bridge, env->model.hosts[h].conf->bridge, sizeof(j->spec.bridge));
	str_copy(j->spec.gateway, r->gateway, sizeof(j->spec.gateway));
	j->start = p->meta.protect == PROTECT_HOT;
	pm = p->meta;
	str_copy(pm.peer, j->spec.meta.id, sizeof(pm.peer));
	if (ctl_vm_meta_format(&pm, 0, j->meta2, sizeof(j->meta2)) < 0) {
		free(j);
		return;
	}
	log_info("standby create vm=%s standby=%s on=%s mode=%s", p->name, j->spec.meta.id,
	    env->model.hosts[h].conf->name, ctl_protect_name(p->meta.protect));
	{
		struct ctl_vm_meta was = p->meta;

		p->meta = pm;		/* peer set now: the tick makes no second one */
		p->meta_pending = 1;
		if (ctl_vjob_go(env, j) < 0) {
			p->meta = was;
			p->meta_pending = 0;
			p->sb_retry_ms = clock_mono_ms() + 10000;
		}
	}
}

/* ----- the replica policy -------------------------------------------------------- */


static void
ctl_remove_done(struct fleetd *env, struct ctl_vjob *j, void *arg, int ok, const char *error,
    int64_t took_ms)
{
	struct ctl_vm *vm = ctl_vm_find(&env->model, j->vm);

	(void)arg;
	ctl_journal(env, "standby", "%s vm=%s host=%s took_ms=%lld%s%s%s",
	    ok ? "removed" : "remove-failed", j->vm, env->model.hosts[j->host].conf->name,
	    (long long)took_ms, ok ? "" : " error=\"", ok ? "" : error, ok ? "" : "\"");
	if (vm && ok && vm->host == j->host) {
		ctl_vm_remove(&env->model, vm);	/* the listing would say so too */
		ctl_model_tally(&env->model);
		/* The stale copy is gone: whoever replaced it forgets its name. */
		for (int i = 0; i < env->model.nvms; i++) {
			struct ctl_vm *rep = env->model.vms[i];

			if (strcmp(rep->meta.replaces, j->vm) == 0) {
				rep->meta.replaces[0] = '\0';
				ctl_meta_write(env, rep);
			}
		}
	} else if (vm) {
		vm->sb_retry_ms = clock_mono_ms() + 10000;
	}
	ctl_virt_refresh(env->virt, j->host);
}

/* Destroy and undefine vm's domain, on a host that answers and holds its
 * lease (a host cut off is left alone: its agent fenced it, and a libvirt
 * call on a connection keepalive is about to drop helps nothing). */
int
ctl_vm_remove_domain(struct fleetd *env, struct ctl_vm *vm, const char *why)
{
	const struct ctl_host *h;

	if (vm->host < 0 || ctl_vjob_busy(env, vm->name) || clock_mono_ms() < vm->sb_retry_ms)
		return -1;
	h = &env->model.hosts[vm->host];
	if (!h->connected || !h->lease_ok || h->dead)
		return -1;
	log_info("remove vm=%s host=%s why=\"%s\"", vm->name, env->model.hosts[vm->host].conf->name,
	    why);
	return ctl_vjob(env, VJ_REMOVE, vm->host, vm->name, ctl_remove_done, NULL);
}

/* The MACs a host's agent silences when it fences: its protected primaries
 * that have a standby. One pass hashes each host's list; a host whose hash
 * differs from what Redis confirmed is written again in one MULTI/EXEC, and
 * the hash counts only once EXEC has answered. After a reconnect every set
 * is written again (ctl_standby_redis_up): Redis may have restarted empty. */
struct ctl_fence_w {
	struct fleetd *env;
	int host;
	uint64_t hash;
};

static int
ctl_fence_member(const struct ctl_vm *vm)
{
	return vm->host >= 0 && vm->meta.role == ROLE_PRIMARY && vm->meta.protect &&
	    vm->meta.peer[0] && vm->mac[0];
}

static void
ctl_fence_exec_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct ctl_fence_w *w = priv;
	redisReply *reply = r;
	struct ctl_host *host = &w->env->model.hosts[w->host];

	(void)ac;
	host->fence_writing = 0;
	if (reply && reply->type == REDIS_REPLY_ARRAY && !w->env->stopping) {
		host->fence_hash = w->hash;
		host->fence_known = 1;
		log_info("fence set host=%s written", host->conf->name);
	}
	free(w);
}

static void
ctl_fence_sets(struct fleetd *env)
{
	struct ctl_model *m = &env->model;
	uint64_t *hash = calloc((size_t)(m->nhosts ? m->nhosts : 1), sizeof(*hash));

	if (!hash || !rlink_is_up(env->redis)) {
		free(hash);
		return;
	}
	for (int h = 0; h < m->nhosts; h++)
		hash[h] = 1469598103934665603ULL;	/* FNV-1a offset basis */
	for (int i = 0; i < m->nvms; i++) {
		const struct ctl_vm *vm = m->vms[i];

		if (!ctl_fence_member(vm))
			continue;
		for (const char *c = vm->mac; *c; c++)
			hash[vm->host] = (hash[vm->host] ^ (uint8_t)*c) * 1099511628211ULL;
	}
	for (int h = 0; h < m->nhosts; h++) {
		struct ctl_host *host = &m->hosts[h];
		struct ctl_fence_w *w;
		char key[160];
		int n = 0;

		/* Never from a model that has not seen the host's domains: an
		 * empty set written then would make its agent forget its MACs. */
		if ((host->fence_known && host->fence_hash == hash[h]) || host->fence_writing ||
		    !host->listed || !(w = calloc(1, sizeof(*w))))
			continue;
		w->env = env;
		w->host = h;
		w->hash = hash[h];
		snprintf(key, sizeof(key), "pf:host:%s:fence", host->conf->name);
		rlink_command(env->redis, NULL, NULL, "MULTI");
		rlink_command(env->redis, NULL, NULL, "DEL %s", key);
		/* The marker keeps the key in existence when no VM is in it: an
		 * absent key then means Redis lost it, and the agent keeps the
		 * set it had (netmigrate/nmd.c), instead of reading "none". */
		rlink_command(env->redis, NULL, NULL, "SADD %s %s", key, CTL_FENCE_MARKER);
		for (int i = 0; i < m->nvms; i++)
			if (m->vms[i]->host == h && ctl_fence_member(m->vms[i]) && ++n)
				rlink_command(env->redis, NULL, NULL, "SADD %s %s", key, m->vms[i]->mac);
		if (rlink_command(env->redis, ctl_fence_exec_cb, w, "EXEC") < 0) {
			free(w);
			continue;
		}
		host->fence_writing = 1;
		log_info("fence set host=%s vms=%d", host->conf->name, n);
	}
	free(hash);
}

void
ctl_standby_redis_up(struct fleetd *env)
{
	for (int h = 0; h < env->model.nhosts; h++)
		env->model.hosts[h].fence_known = 0;
}

static void
ctl_users_rev_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct fleetd *env = priv;
	redisReply *reply = r;
	long long rev;

	(void)ac;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
		return;
	rev = reply->element[0]->type == REDIS_REPLY_STRING ?
	    strtoll(reply->element[0]->str, NULL, 10) : 0;
	/* The writer's time when it left one (pf:users:rev_ms); else when we
	 * first saw the revision, one tick late at most. */
	if (rev != env->users_rev) {
		int64_t ms = reply->element[1]->type == REDIS_REPLY_STRING ?
		    strtoll(reply->element[1]->str, NULL, 10) : 0;

		env->users_rev_ms = ms > env->users_rev_ms ? ms : clock_wall_ms();
	}
	env->users_rev = rev;
}

void
ctl_standby_tick(struct fleetd *env)
{
	struct ctl_model *m = &env->model;
	int64_t now = clock_mono_ms();

	if (rlink_is_up(env->redis))
		rlink_command(env->redis, ctl_users_rev_cb, env, "MGET pf:users:rev pf:users:rev_ms");
	if (!ctl_leader_is(env))
		return;
	/* The agents' fence sets are rewritten from the model at once, also
	 * while a reconcile runs: after Redis comes back empty, they are what
	 * an agent cut off next relies on. */
	ctl_fence_sets(env);
	/* Only the leader makes, starts, stops and removes domains. */
	if (env->recon)
		return;
	/* Copies some failover replaced, on hosts that answer again. */
	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *rep = m->vms[i], *old;
		char why[160];

		if (rep->meta.role != ROLE_PRIMARY || !rep->meta.replaces[0] ||
		    !(old = ctl_vm_find(m, rep->meta.replaces)) || old == rep || old->host < 0 ||
		    old->failover || strcmp(rep->meta.peer, old->name) == 0)
			continue;
		snprintf(why, sizeof(why), "replaced by %s in a failover", rep->name);
		ctl_vm_remove_domain(env, old, why);
	}
	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *vm = m->vms[i], *sb;

		if (vm->host < 0 || ctl_vjob_busy(env, vm->name) || vm->migration || vm->failover)
			continue;
		if (vm->meta_dirty) {
			if (now >= vm->sb_retry_ms && m->hosts[vm->host].connected)
				ctl_meta_write(env, vm);
			continue;
		}
		/* A standby its primary no longer names (replaced after its host
		 * died, or protection moved elsewhere). */
		if (vm->meta.role == ROLE_STANDBY && vm->meta.peer[0] &&
		    (sb = ctl_vm_find(m, vm->meta.peer)) && !sb->meta_pending &&
		    strcmp(sb->meta.peer, vm->name) != 0 && !sb->failover) {
			ctl_vm_remove_domain(env, vm, "its primary has another standby");
			continue;
		}
		if (vm->meta.role != ROLE_PRIMARY || !vm->meta.protect || vm->state != VM_RUNNING ||
		    vm->meta_pending || now < vm->sb_retry_ms || !ctl_host_usable(env, vm->host))
			continue;
		sb = vm->meta.peer[0] ? ctl_vm_find(m, vm->meta.peer) : NULL;
		if (sb && sb->host >= 0 && !m->hosts[sb->host].dead) {
			/* Warm to hot: start it; hot to warm: stop it, keep it defined. */
			if (!ctl_vjob_busy(env, sb->name) && ctl_host_usable(env, sb->host) &&
			    sb->meta.role == ROLE_STANDBY && strcmp(sb->meta.peer, vm->name) == 0 &&
			    ((vm->meta.protect == PROTECT_HOT && sb->state == VM_SHUTOFF) ||
			    (vm->meta.protect == PROTECT_WARM && sb->state == VM_RUNNING))) {
				int start = vm->meta.protect == PROTECT_HOT;

				log_info("standby %s vm=%s standby=%s mode=%s", start ? "start" : "stop",
				    vm->name, sb->name, ctl_protect_name(vm->meta.protect));
				ctl_vjob(env, start ? VJ_START : VJ_DESTROY, sb->host, sb->name,
				    ctl_meta_done, NULL);
			}
			continue;
		}
		if (sb && sb->host >= 0 && m->hosts[sb->host].dead)
			ctl_journal(env, "standby", "lost vm=%s standby=%s host=%s (dead)", vm->name,
			    sb->name, m->hosts[sb->host].conf->name);
		/* A few at a time: each is a thread and a guest booting. */
		if (ctl_creating(env) < CTL_SB_CREATING_MAX)
			ctl_standby_create(env, vm);
	}
}

/* ----- protect ------------------------------------------------------------------------ */

int
ctl_protect(struct fleetd *env, const char *name, enum ctl_protect mode, const char *region,
    char *why, size_t whylen)
{
	struct ctl_vm *vm = ctl_vm_find(&env->model, name), *sb;

	if (!vm) {
		snprintf(why, whylen, "no VM '%s'", name);
		return -1;
	}
	if (vm->meta.role != ROLE_PRIMARY) {
		snprintf(why, whylen, "%s is a standby; protect its primary %s", name, vm->meta.peer);
		return -1;
	}
	if (region && *region) {
		int found = 0;

		for (int r = 0; r < env->conf->nregions; r++)
			found |= strcmp(env->conf->regions[r].name, region) == 0;
		if (!found) {
			snprintf(why, whylen, "no region '%s'", region);
			return -1;
		}
	}
	if (vm->host < 0 || !env->model.hosts[vm->host].connected) {
		snprintf(why, whylen, "%s's host does not answer (libvirt is down)", name);
		return -1;
	}
	if (ctl_vjob_busy(env, vm->name) || vm->meta_pending) {
		snprintf(why, whylen, "%s has a libvirt job in progress; try again", name);
		return -1;
	}
	sb = vm->meta.peer[0] ? ctl_vm_find(&env->model, vm->meta.peer) : NULL;
	vm->meta.protect = mode;
	str_copy(vm->meta.sb_region, region ? region : "", sizeof(vm->meta.sb_region));
	if (mode == PROTECT_NONE) {
		if (sb)
			ctl_vm_remove_domain(env, sb, "protection turned off");
		vm->meta.peer[0] = '\0';
	}
	if (ctl_meta_write(env, vm) < 0) {
		snprintf(why, whylen, "cannot write %s's metadata", name);
		return -1;
	}
	ctl_journal(env, "standby", "protect vm=%s mode=%s%s%s", name, ctl_protect_name(mode),
	    region && *region ? " region=" : "", region ? region : "");
	return 0;
}

/* ----- the API's view ---------------------------------------------------------------- */

void
ctl_standby_json(struct fleetd *env, const struct ctl_vm *vm, struct cJSON *o)
{
	int64_t now = clock_wall_ms();

	cJSON_AddStringToObject(o, "role", vm->meta.role == ROLE_STANDBY ? "standby" : "primary");
	cJSON_AddStringToObject(o, "peer", vm->meta.peer);
	cJSON_AddStringToObject(o, "protect", ctl_protect_name(vm->meta.protect));
	if (vm->meta.sb_region[0])
		cJSON_AddStringToObject(o, "standby_region", vm->meta.sb_region);
	if (vm->meta.mgmt[0])
		cJSON_AddStringToObject(o, "mgmt", vm->meta.mgmt);
	if (vm->meta.replaces[0])
		cJSON_AddStringToObject(o, "replaces", vm->meta.replaces);
	cJSON_AddBoolToObject(o, "bound", vm->bound);
	cJSON_AddNumberToObject(o, "cfg_rev", (double)vm->cfg_rev);
	/* Replication lag: from the write to fleetd seeing it in force (an
	 * upper bound: it includes up to one telemetry period and one tick,
	 * and uses no guest clock); the write's age while behind. A guest
	 * that booted after the write counts from its first sample. */
	if (env->users_rev > 0 && vm->tel_ms) {
		int in_step = vm->cfg_rev >= env->users_rev;
		int64_t from = env->users_rev_ms > vm->tel_first_ms ? env->users_rev_ms :
		    vm->tel_first_ms;
		int64_t lag = in_step ? vm->cfg_seen_ms - from : now - env->users_rev_ms;

		cJSON_AddBoolToObject(o, "cfg_in_step", in_step);
		cJSON_AddNumberToObject(o, "cfg_lag_ms", (double)(lag < 0 ? 0 : lag));
	}
}
