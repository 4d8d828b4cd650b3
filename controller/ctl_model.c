/*
 * ctl_model.c: the fleet model (see ctl_model.h): lookups, telemetry rates,
 * metadata parsing and migration pre-checks. No I/O here: the libvirt,
 * Redis and API layers feed it and read it, all on the loop thread.
 */
#include "controller/ctl_model.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
ctl_rate_update(struct ctl_rate *r, uint64_t raw, int64_t now_ms, double alpha)
{
	if (!r->primed || raw < r->last_raw || now_ms <= r->last_ms) {
		if (!r->primed || raw < r->last_raw) {
			r->per_s = 0;
			r->primed = 1;
		}
		r->last_raw = raw;
		r->last_ms = now_ms;
		return;
	}
	double inst = (double)(raw - r->last_raw) * 1000.0 / (double)(now_ms - r->last_ms);

	r->per_s = r->per_s == 0 ? inst : alpha * inst + (1 - alpha) * r->per_s;
	r->last_raw = raw;
	r->last_ms = now_ms;
}

const char *
ctl_vm_state_name(enum ctl_vm_state s)
{
	static const char *const names[] = {
		[VM_UNKNOWN] = "unknown", [VM_RUNNING] = "running", [VM_PAUSED] = "paused",
		[VM_SHUTOFF] = "shutoff", [VM_GONE] = "gone",
	};

	return (unsigned)s < PF_ARRAY_LEN(names) ? names[s] : "unknown";
}

/* Copy the value of attribute name="..." or name='...' found in tag. */
static int
ctl_xml_attr(const char *tag, const char *end, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = tag; p && p < end; p = strstr(p + 1, name)) {
		if (p >= end)
			break;
		if (p > tag && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') &&
		    p[nl] == '=' && (p[nl + 1] == '\'' || p[nl + 1] == '"')) {
			char q = p[nl + 1];
			const char *v = p + nl + 2, *ve = strchr(v, q);

			if (!ve || ve > end || (size_t)(ve - v) >= outlen)
				return -1;
			memcpy(out, v, (size_t)(ve - v));
			out[ve - v] = '\0';
			return 0;
		}
	}
	return -1;
}

int
ctl_vm_meta_parse(const char *xml, struct ctl_vm_meta *out)
{
	const char *tag, *tag_end, *p;
	char role[32], pin[32];

	memset(out, 0, sizeof(*out));
	/* The element: <vm ...> or <pf:vm ...>. */
	tag = strstr(xml, "vm ");
	if (!tag || (tag > xml && tag[-1] != '<' && tag[-1] != ':'))
		return -1;
	tag_end = strchr(tag, '>');
	if (!tag_end)
		return -1;
	if (ctl_xml_attr(tag, tag_end, "id", out->id, sizeof(out->id)) < 0 || !out->id[0])
		return -1;
	out->role = ROLE_PRIMARY;
	if (ctl_xml_attr(tag, tag_end, "role", role, sizeof(role)) == 0 &&
	    strcmp(role, "standby") == 0)
		out->role = ROLE_STANDBY;
	ctl_xml_attr(tag, tag_end, "peer", out->peer, sizeof(out->peer));
	if (ctl_xml_attr(tag, tag_end, "protect", role, sizeof(role)) == 0)
		ctl_protect_parse(role, &out->protect);
	ctl_xml_attr(tag, tag_end, "standby_region", out->sb_region, sizeof(out->sb_region));
	ctl_xml_attr(tag, tag_end, "mgmt", out->mgmt, sizeof(out->mgmt));
	ctl_xml_attr(tag, tag_end, "replaces", out->replaces, sizeof(out->replaces));
	out->pin = PIN_NONE;
	if (ctl_xml_attr(tag, tag_end, "pin", pin, sizeof(pin)) == 0 && pin[0])
		out->pin = PIN_REGION;	/* 'region', or unknown: the strictest we know */
	/* Children <ip>A</ip> or <pf:ip>A</pf:ip>. */
	for (p = tag_end; (p = strstr(p, "ip>")) && out->nips < CTL_MAX_IPS; p += 3) {
		if (p[-1] == '/')
			continue;	/* a closing tag */
		if (p[-1] != '<' && p[-1] != ':')
			continue;
		const char *v = p + 3, *ve = strchr(v, '<');

		if (!ve || (size_t)(ve - v) >= CTL_IP_MAX || ve == v)
			continue;
		memcpy(out->ips[out->nips], v, (size_t)(ve - v));
		out->ips[out->nips][ve - v] = '\0';
		out->nips++;
	}
	return 0;
}

const char *
ctl_protect_name(enum ctl_protect p)
{
	return p == PROTECT_HOT ? "hot" : p == PROTECT_WARM ? "warm" : "none";
}

int
ctl_protect_parse(const char *s, enum ctl_protect *p)
{
	if (strcmp(s, "hot") == 0)
		*p = PROTECT_HOT;
	else if (strcmp(s, "warm") == 0)
		*p = PROTECT_WARM;
	else if (strcmp(s, "none") == 0 || !*s)
		*p = PROTECT_NONE;
	else
		return -1;
	return 0;
}

/* Append " name='value'" when value is set. Values are names and
 * addresses the parser accepted, so they carry no quote. */
static void
ctl_meta_attr(char *buf, size_t len, size_t *off, const char *name, const char *value)
{
	if (value && *value && *off < len)
		*off += (size_t)snprintf(buf + *off, len - *off, " %s='%s'", name, value);
}

int
ctl_vm_meta_format(const struct ctl_vm_meta *m, int ns, char *buf, size_t len)
{
	const char *pfx = ns ? "pf:" : "";
	size_t off = 0;

	off += (size_t)snprintf(buf, len, "<%svm%s", pfx, ns ? " xmlns:pf='" CTL_META_NS "'" : "");
	ctl_meta_attr(buf, len, &off, "id", m->id);
	ctl_meta_attr(buf, len, &off, "role", m->role == ROLE_STANDBY ? "standby" : "primary");
	ctl_meta_attr(buf, len, &off, "peer", m->peer);
	ctl_meta_attr(buf, len, &off, "pin", m->pin == PIN_REGION ? "region" : NULL);
	ctl_meta_attr(buf, len, &off, "protect", m->protect ? ctl_protect_name(m->protect) : NULL);
	ctl_meta_attr(buf, len, &off, "standby_region", m->sb_region);
	ctl_meta_attr(buf, len, &off, "mgmt", m->mgmt);
	ctl_meta_attr(buf, len, &off, "replaces", m->replaces);
	if (off < len)
		off += (size_t)snprintf(buf + off, len - off, ">");
	for (int i = 0; i < m->nips && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "<%sip>%s</%sip>", pfx, m->ips[i], pfx);
	if (off < len)
		off += (size_t)snprintf(buf + off, len - off, "</%svm>", pfx);
	return off < len ? 0 : -1;
}

int
ctl_model_init(struct ctl_model *m, const struct ctl_conf *conf)
{
	memset(m, 0, sizeof(*m));
	m->conf = conf;
	m->nhosts = conf->nhosts;
	m->hosts = calloc((size_t)(conf->nhosts ? conf->nhosts : 1), sizeof(*m->hosts));
	if (!m->hosts)
		return -1;
	for (int i = 0; i < conf->nhosts; i++) {
		m->hosts[i].conf = &conf->hosts[i];
		m->hosts[i].region = -1;
		for (int r = 0; r < conf->nregions; r++)
			if (strcmp(conf->regions[r].name, conf->hosts[i].region) == 0)
				m->hosts[i].region = r;
	}
	return 0;
}

void
ctl_model_free(struct ctl_model *m)
{
	for (int i = 0; i < m->nvms; i++)
		free(m->vms[i]);
	free(m->vms);
	free(m->hosts);
	memset(m, 0, sizeof(*m));
}

int
ctl_host_find(const struct ctl_model *m, const char *name)
{
	for (int i = 0; i < m->nhosts; i++)
		if (strcmp(m->hosts[i].conf->name, name) == 0)
			return i;
	return -1;
}

/* Index of name in the sorted array, or where it would go (as -1 - pos). */
static int
ctl_vm_index(const struct ctl_model *m, const char *name)
{
	int lo = 0, hi = m->nvms - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(m->vms[mid]->name, name);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1 - lo;
}

struct ctl_vm *
ctl_vm_find(const struct ctl_model *m, const char *name)
{
	int i = ctl_vm_index(m, name);

	return i >= 0 ? m->vms[i] : NULL;
}

struct ctl_vm *
ctl_vm_get(struct ctl_model *m, const char *name)
{
	int i = ctl_vm_index(m, name), pos;
	struct ctl_vm *vm;

	if (i >= 0)
		return m->vms[i];
	pos = -1 - i;
	if (m->nvms == m->cap) {
		int cap = m->cap ? m->cap * 2 : 64;
		struct ctl_vm **v = realloc(m->vms, (size_t)cap * sizeof(*v));

		if (!v)
			return NULL;
		m->vms = v;
		m->cap = cap;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	str_copy(vm->name, name, sizeof(vm->name));
	vm->host = -1;
	vm->prev_host = -1;
	vm->mig_dst = -1;
	memmove(&m->vms[pos + 1], &m->vms[pos], (size_t)(m->nvms - pos) * sizeof(*m->vms));
	m->vms[pos] = vm;
	m->nvms++;
	return vm;
}

void
ctl_vm_remove(struct ctl_model *m, struct ctl_vm *vm)
{
	int i = ctl_vm_index(m, vm->name);

	if (i < 0)
		return;
	memmove(&m->vms[i], &m->vms[i + 1], (size_t)(m->nvms - i - 1) * sizeof(*m->vms));
	m->nvms--;
	free(vm);
}

void
ctl_model_tally(struct ctl_model *m)
{
	for (int h = 0; h < m->nhosts; h++) {
		m->hosts[h].nvms = 0;
		m->hosts[h].mem_used = 0;
		m->hosts[h].vcpus_used = 0;
		m->hosts[h].bps = 0;
	}
	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *vm = m->vms[i];
		struct ctl_host *h;

		if (vm->host < 0 || vm->state == VM_GONE)
			continue;
		h = &m->hosts[vm->host];
		h->nvms++;
		h->mem_used += vm->mem_bytes;
		h->vcpus_used += vm->vcpus;
		if (!vm->stale)
			h->bps += vm->up.per_s + vm->down.per_s;
		if (vm->migration && vm->mig_dst >= 0 && vm->mig_dst < m->nhosts &&
		    vm->mig_dst != vm->host) {
			m->hosts[vm->mig_dst].mem_used += vm->mem_bytes;
			m->hosts[vm->mig_dst].vcpus_used += vm->vcpus;
		}
	}
}

int
ctl_model_mark_stale(struct ctl_model *m, int64_t now_ms, int64_t stale_ms)
{
	int changed = 0;

	for (int i = 0; i < m->nvms; i++) {
		struct ctl_vm *vm = m->vms[i];
		int stale = vm->tel_ms == 0 || now_ms - vm->tel_ms > stale_ms;

		if (stale != vm->stale) {
			vm->stale = stale;
			changed++;
		}
	}
	return changed;
}

int
ctl_precheck(const struct ctl_model *m, const struct ctl_vm *vm, int dest,
    const struct ctl_limits *lim, char *why, size_t whylen)
{
	const struct ctl_host *d;

	if (dest < 0 || dest >= m->nhosts) {
		snprintf(why, whylen, "no such destination host");
		return -1;
	}
	d = &m->hosts[dest];
	if (vm->host < 0) {
		snprintf(why, whylen, "%s runs on no known host", vm->name);
		return -1;
	}
	if (vm->host == dest) {
		snprintf(why, whylen, "%s already runs on %s", vm->name, d->conf->name);
		return -1;
	}
	if (vm->state != VM_RUNNING && vm->state != VM_SHUTOFF) {
		snprintf(why, whylen, "%s is %s: only running (live) or shut-off (offline) VMs move",
		    vm->name, ctl_vm_state_name(vm->state));
		return -1;
	}
	if (lim->use_cooldown && vm->cooldown_until_ms > lim->now_ms) {
		snprintf(why, whylen, "%s moved or failed to move recently (cooldown %lld ms left)",
		    vm->name, (long long)(vm->cooldown_until_ms - lim->now_ms));
		return -1;
	}
	if (lim->use_cooldown && vm->meta.pin == PIN_REGION &&
	    d->region != m->hosts[vm->host].region) {
		snprintf(why, whylen, "%s is pinned to region %s", vm->name,
		    m->hosts[vm->host].conf->region);
		return -1;
	}
	if (vm->migration) {
		snprintf(why, whylen, "%s is already migrating (migration %u)", vm->name,
		    vm->migration);
		return -1;
	}
	if (!m->hosts[vm->host].connected) {
		snprintf(why, whylen, "source %s is not reachable over libvirt",
		    m->hosts[vm->host].conf->name);
		return -1;
	}
	if (!d->connected) {
		snprintf(why, whylen, "destination %s is not reachable over libvirt%s%s",
		    d->conf->name, d->virt_error[0] ? ": " : "", d->virt_error);
		return -1;
	}
	if (!d->lease_read) {
		snprintf(why, whylen, "destination %s: its agent lease is not read yet (fleetd "
		    "just started)", d->conf->name);
		return -1;
	}
	if (!d->lease_ok) {
		snprintf(why, whylen, "destination %s has no live agent lease", d->conf->name);
		return -1;
	}
	if (d->draining || d->maintenance) {
		snprintf(why, whylen, "destination %s is %s", d->conf->name,
		    d->draining ? "draining" : "in maintenance");
		return -1;
	}
	/* Anti-affinity: a VM and its peer (standby or primary) never share a host. */
	if (vm->meta.peer[0]) {
		const struct ctl_vm *peer = ctl_vm_find(m, vm->meta.peer);

		if (peer && (peer->host == dest || (peer->migration && peer->mig_dst == dest))) {
			snprintf(why, whylen, "anti-affinity: %s's %s %s %s %s", vm->name,
			    vm->meta.role == ROLE_PRIMARY ? "standby" : "primary", peer->name,
			    peer->host == dest ? "runs on" : "is moving to", d->conf->name);
			return -1;
		}
	}
	if (d->mem_used + vm->mem_bytes > (uint64_t)d->conf->memory) {
		uint64_t cap = (uint64_t)d->conf->memory;

		snprintf(why, whylen, "destination %s lacks memory: %llu MiB free, %llu MiB needed",
		    d->conf->name,
		    (unsigned long long)((cap > d->mem_used ? cap - d->mem_used : 0) >> 20),
		    (unsigned long long)(vm->mem_bytes >> 20));
		return -1;
	}
	if (d->vcpus_used + vm->vcpus > d->conf->vcpus) {
		snprintf(why, whylen, "destination %s lacks vCPUs: %lld free, %d needed",
		    d->conf->name, d->conf->vcpus - d->vcpus_used, vm->vcpus);
		return -1;
	}
	if (lim->in_flight >= lim->max_concurrent) {
		snprintf(why, whylen, "%d migrations in flight, the limit is %d", lim->in_flight,
		    lim->max_concurrent);
		return -1;
	}
	if (d->migrations >= lim->max_per_host ||
	    m->hosts[vm->host].migrations >= lim->max_per_host) {
		snprintf(why, whylen, "%s already has %d migration(s) in flight (limit %d per host)",
		    d->migrations >= lim->max_per_host ? d->conf->name : m->hosts[vm->host].conf->name,
		    d->migrations >= lim->max_per_host ? d->migrations : m->hosts[vm->host].migrations,
		    lim->max_per_host);
		return -1;
	}
	return 0;
}
