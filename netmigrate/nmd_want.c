/*
 * nmd_want.c: the agent's desired network state, and keeping the kernel at
 * it (convergence).
 *
 * DESIGN
 * Every order fleetd sends is also a statement of state: "VM v: announced
 * here with these IPs and this MAC", "fenced", "withdrawn"; on the edge
 * "routed via host X" or "not routed". fleetd writes the statement into
 * pf:host:<host>:net (field = VM, value = the order's fields as k=v words)
 * in the same script that appends the order to the stream, so the hash is
 * never behind the stream. Each statement carries a version, the leader's
 * (epoch, seq): epochs only grow and seq grows within one, so the newer of
 * two statements is the one with the larger pair whichever way it arrived.
 *
 * The agent keeps the newest statement per VM (env->want). Orders update
 * it as they run (an order older than what is held is superseded: not
 * run). Every `converge` interval, and soon after a netlink event that
 * touches an IP it holds, it:
 *   - reads the hash when its marker changed (HGET _, then HGETALL), and
 *     takes every statement newer than its own: an order lost in flight is
 *     applied from there;
 *   - compares the kernel with the statements and repairs the difference:
 *     host routes IP/32 dev bridge (edge: via host) with protocol 77,
 *     permanent neighbour entries IP -> MAC, the bridge ports of fenced VMs
 *     (down) and of announced ones (up). It writes only what differs, so its
 *     own writes never wake it again.
 *
 * Deleting. A route of ours that no statement wants is deleted only when
 * the hash is authoritative: its marker field "_" exists. fleetd writes the
 * marker once a reconcile has rewritten every statement of the host, and
 * moves it with every write after that; a Redis that lost its data has no
 * marker, so an agent deletes nothing on the strength of a hash that is
 * missing its statements (it keeps what it holds and keeps adding). IPs a
 * statement explicitly withdraws or fences go in either case. A statement
 * held here but absent from an authoritative hash whose marker is at least
 * as new was pruned by fleetd (the VM is gone) and is dropped.
 *
 * After a lapse. A VM whose port the self-fence took down may have been
 * replaced by its standby while this host was cut off. Its statement from
 * before cannot tell: only a plan made after fleetd saw the lapse can. The
 * lease script counts the host's lease generations (pf:host:<host>:gen, one
 * more each time the key is created); fleetd re-plans a host whose
 * generation moved and stamps its statements with it (gen). A port that is
 * down comes up only for a statement of the current generation; until then
 * the VM is held (logged once), never announced.
 *
 * Convergence runs only while the host holds its lease: a fenced agent
 * changes nothing.
 */
#include "netmigrate/nmd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NMD_SOON_MS 20		/* debounce of netlink events */
#define NMD_FULL_READ_MS 30000	/* the whole hash is read at least this often */
#define NMD_KROUTES 8192
#define NMD_KNEIGH 8192

/* ------------------------------------------------------------------ */
/* Statements */

static int
nmd_ver_cmp(uint64_t e1, uint64_t s1, uint64_t e2, uint64_t s2)
{
	if (e1 != e2)
		return e1 < e2 ? -1 : 1;
	return s1 < s2 ? -1 : s1 > s2;
}

static struct nmd_want *
nmd_want_find(struct nmd *env, const char *vm)
{
	for (int i = 0; i < env->nwant; i++)
		if (strcmp(env->want[i].vm, vm) == 0)
			return &env->want[i];
	return NULL;
}

static void
nmd_want_drop(struct nmd *env, struct nmd_want *w)
{
	free(w->ips);
	*w = env->want[--env->nwant];
}

/* Store o as vm's statement (replacing what was held). 0, or -1 (memory). */
static int
nmd_want_put(struct nmd *env, const struct nm_order *o, uint64_t epoch, uint64_t seq)
{
	struct nmd_want *w = nmd_want_find(env, o->vm);
	struct nm_ip *ips = malloc((size_t)(o->nips ? o->nips : 1) * sizeof(*ips));

	if (!ips)
		return -1;
	memcpy(ips, o->ips, (size_t)o->nips * sizeof(*ips));
	if (!w) {
		if (env->nwant == env->cwant) {
			int c = env->cwant ? env->cwant * 2 : 64;
			struct nmd_want *nw = realloc(env->want, (size_t)c * sizeof(*nw));

			if (!nw) {
				free(ips);
				return -1;
			}
			env->want = nw;
			env->cwant = c;
		}
		w = &env->want[env->nwant++];
		memset(w, 0, sizeof(*w));
		str_copy(w->vm, o->vm, sizeof(w->vm));
	}
	free(w->ips);
	w->ips = ips;
	w->nips = o->nips;
	w->op = o->op;
	w->has_mac = o->has_mac;
	memcpy(w->mac, o->mac, 6);
	str_copy(w->dev, o->dev, sizeof(w->dev));
	w->has_via = o->has_via;
	w->via = o->via;
	w->epoch = epoch;
	w->seq = seq;
	w->gen = o->gen;
	w->held = 0;
	return 0;
}

int
nmd_want_superseded(struct nmd *env, const struct nm_order *o)
{
	struct nmd_want *w = nmd_want_find(env, o->vm);

	return o->seq && w && nmd_ver_cmp(o->epoch, o->seq, w->epoch, w->seq) < 0;
}

void
nmd_want_order(struct nmd *env, const struct nm_order *o)
{
	struct nmd_want *w = nmd_want_find(env, o->vm);
	uint64_t e = o->epoch, s = o->seq;

	if (!o->seq) {
		/* No version (the netmigrate CLI, a hand-written order): the
		 * newest statement until fleetd writes a newer one. */
		e = w ? w->epoch : 0;
		s = w ? w->seq : 0;
	}
	/* The edge: "withdraw via X" undoes a route via X only. The VM's
	 * route via another host stays its statement; with nothing held (a
	 * restarted agent before its first read of the hash), nothing is
	 * stored: the hash says what the VM's statement is. */
	if (env->role == NMD_ROLE_EDGE && o->op == NM_OP_WITHDRAW) {
		if (!w)
			return;
		if (w->op == NM_OP_ANNOUNCE &&
		    (!w->has_via || memcmp(&w->via, &o->via, sizeof(o->via)) != 0)) {
			w->epoch = e;
			w->seq = s;
			return;
		}
	}
	if (nmd_want_put(env, o, e, s) < 0)
		log_warnx("statement vm=%s not kept: out of memory", o->vm);
}

/* Split a statement value "op=announce ips=a,b mac=.. epoch=3 seq=9" into
 * field/value pairs for nm_order_parse. */
static int
nmd_stmt_parse(const char *vm, const char *value, struct nm_order *o, char *err, size_t errlen)
{
	char buf[8192], *save = NULL;
	const char *fv[40];
	size_t n = 0;

	if (strlen(value) >= sizeof(buf)) {
		snprintf(err, errlen, "statement longer than %zu bytes", sizeof(buf) - 1);
		return -1;
	}
	str_copy(buf, value, sizeof(buf));
	fv[n++] = "id";
	fv[n++] = "net";
	fv[n++] = "vm";
	fv[n++] = vm;
	for (char *t = strtok_r(buf, " ", &save); t && n + 2 <= PF_ARRAY_LEN(fv);
	    t = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(t, '=');

		if (!eq) {
			snprintf(err, errlen, "word '%.40s' is not key=value", t);
			return -1;
		}
		*eq = '\0';
		fv[n++] = t;
		fv[n++] = eq + 1;
	}
	return nm_order_parse(o, fv, n, err, errlen);
}

/* ------------------------------------------------------------------ */
/* The kernel, compared and repaired */

struct nmd_wip {
	struct nm_ip ip;
	const struct nmd_want *w;
	int on;			/* the statement installs the IP (else removes it) */
};

static int
nmd_ip_cmp(const struct nm_ip *a, const struct nm_ip *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(&a->a, &b->a, a->family == AF_INET ? 4 : 16);
}

/* By IP, the newest statement first. */
static int
nmd_wip_cmp(const void *x, const void *y)
{
	const struct nmd_wip *a = x, *b = y;
	int c = nmd_ip_cmp(&a->ip, &b->ip);

	if (c)
		return c;
	return -nmd_ver_cmp(a->w->epoch, a->w->seq, b->w->epoch, b->w->seq);
}

static const struct nmd_wip *
nmd_wip_find(const struct nmd_wip *v, int n, const struct nm_ip *ip)
{
	int lo = 0, hi = n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = nmd_ip_cmp(&v[mid].ip, ip);

		if (c == 0)
			return &v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static const char *
nmd_want_dev(const struct nmd *env, const struct nmd_want *w)
{
	if (w->dev[0])
		return w->dev;
	if (env->role == NMD_ROLE_EDGE)
		return env->conf.dev[0] ? env->conf.dev : NULL;
	return env->conf.vm_bridge;
}

/* The nm_order form of w (for the plan steps and bursts). */
static const struct nm_order *
nmd_want_order_of(const struct nmd_want *w)
{
	static struct nm_order o;

	memset(&o, 0, sizeof(o));
	str_copy(o.id, "converge", sizeof(o.id));
	str_copy(o.vm, w->vm, sizeof(o.vm));
	o.op = w->op;
	o.nips = w->nips;
	memcpy(o.ips, w->ips, (size_t)w->nips * sizeof(*o.ips));
	o.has_mac = w->has_mac;
	memcpy(o.mac, w->mac, 6);
	str_copy(o.dev, w->dev, sizeof(o.dev));
	o.has_via = w->has_via;
	o.via = w->via;
	o.epoch = w->epoch;
	o.seq = w->seq;
	o.gen = w->gen;
	return &o;
}

struct nmd_fix {
	int routes_set, routes_del, neigh_set, neigh_del, ports_up, ports_down, held, bursts;
	int errors;
	char err[300];
};

static void
nmd_fix_err(struct nmd_fix *f, const char *err)
{
	if (!f->errors++)
		str_copy(f->err, err, sizeof(f->err));
}

/* Host role: the ports of fenced and announced VMs. Marks in active[i]
 * whether want[i]'s IPs are to be installed. */
static void
nmd_converge_ports(struct nmd *env, char *active, struct nmd_fix *f)
{
	static struct nm_port ports[4096];
	char err[300], port[IFNAMSIZ];
	int np = nm_ports_list(env->conf.vm_bridge, ports, (int)PF_ARRAY_LEN(ports));

	for (int i = 0; i < env->nwant; i++) {
		struct nmd_want *w = &env->want[i];
		const struct nm_port *p = np > 0 && w->has_mac ? nm_port_find(ports, np, w->mac) : NULL;
		int want_up;

		active[i] = w->op == NM_OP_ANNOUNCE || w->op == NM_OP_PREPARE;
		if (!p || (w->op != NM_OP_FENCE && w->op != NM_OP_ANNOUNCE && w->op != NM_OP_UNFENCE))
			continue;
		want_up = w->op != NM_OP_FENCE;
		if (p->up == want_up)
			continue;
		if (want_up && w->gen != env->gen) {
			/* Down since a fence, and this statement is from before
			 * the lease lapsed (another generation): fleetd has not
			 * re-planned yet. */
			if (!w->held)
				log_warnx("converge vm=%s held: its port %s is down and its statement "
				    "(gen %llu) is from before the lease lapsed (gen %llu); waiting "
				    "for fleetd's plan", w->vm, p->name, (unsigned long long)w->gen,
				    (unsigned long long)env->gen);
			w->held = 1;
			active[i] = 0;
			f->held++;
			continue;
		}
		if (nm_port_set(env->nm, env->conf.vm_bridge, w->mac, want_up, port, sizeof(port), err,
		    sizeof(err)) < 0) {
			nmd_fix_err(f, err);
			continue;
		}
		log_info("converge vm=%s port=%s %s (statement %s, epoch %llu seq %llu)", w->vm, port,
		    want_up ? "up" : "down again", nm_op_name(w->op), (unsigned long long)w->epoch,
		    (unsigned long long)w->seq);
		w->held = 0;
		if (want_up) {
			f->ports_up++;
			if (w->op == NM_OP_ANNOUNCE && nmd_burst_start(env, nmd_want_order_of(w),
			    nmd_want_dev(env, w), err, sizeof(err)) >= 0)
				f->bursts++;
		} else {
			f->ports_down++;
		}
	}
}

/* Routes (both roles) and neighbours (hosts) against the statements. */
static void
nmd_converge_net(struct nmd *env, const char *active, struct nmd_fix *f)
{
	static struct nm_route kr[NMD_KROUTES];
	static struct nm_neigh kn[NMD_KNEIGH];
	struct nmd_wip *wv = NULL, *uv = NULL;
	int nw = 0, nu = 0, total = 0, nkr, nkn = -1;
	char err[300];
	const char *ndev = NULL;

	for (int i = 0; i < env->nwant; i++)
		total += env->want[i].nips;
	wv = calloc((size_t)total + 1, sizeof(*wv));
	uv = calloc((size_t)total + 1, sizeof(*uv));
	if (!wv || !uv) {
		nmd_fix_err(f, "out of memory");
		goto out;
	}
	/* Per IP the newest statement naming it decides, whichever VM it is
	 * about (a promoted standby's "not routed" beats its old primary's
	 * "routed via"): wanted when it installs the IP (active; on an edge, an
	 * announce with a via), unwanted when it withdraws, fences, unroutes
	 * or holds the IP back. */
	for (int i = 0; i < env->nwant; i++) {
		const struct nmd_want *w = &env->want[i];
		int on = env->role == NMD_ROLE_EDGE ? w->op == NM_OP_ANNOUNCE && w->has_via : active[i];

		for (int k = 0; k < w->nips; k++) {
			uv[nu].ip = w->ips[k];
			uv[nu].w = w;
			uv[nu++].on = on;
		}
	}
	qsort(uv, (size_t)nu, sizeof(*uv), nmd_wip_cmp);
	{
		int j = 0;

		for (int i = 0; i < nu;) {
			int end = i, pick = i;

			while (end < nu && nmd_ip_cmp(&uv[end].ip, &uv[i].ip) == 0)
				end++;
			/* On an edge a "withdraw via X" only undoes a route via X:
			 * the newest announce wins unless a newer withdraw names
			 * its via, or a newer unroute (no via) clears it. */
			if (env->role == NMD_ROLE_EDGE) {
				for (pick = i; pick < end; pick++) {
					const struct nmd_want *w = uv[pick].w;
					int undone = 0;

					if (!uv[pick].on) {
						if (w->op == NM_OP_WITHDRAW && w->has_via)
							continue;	/* a via of its own */
						break;		/* unroute: nothing routed */
					}
					for (int k = i; k < pick && !undone; k++)
						undone = uv[k].w->has_via &&
						    nmd_ip_cmp(&uv[k].w->via, &w->via) == 0;
					if (undone)
						uv[pick].on = 0;
					break;
				}
				if (pick == end)
					pick = i;	/* only withdraws: not routed */
			}
			if (uv[pick].on)
				wv[nw++] = uv[pick];
			else
				uv[j++] = uv[pick];
			i = end;
		}
		nu = j;
	}
	nkr = nm_route_list(env->nm, kr, NMD_KROUTES, err, sizeof(err));
	if (nkr < 0) {
		nmd_fix_err(f, err);
		goto out;
	}
	/* Set what is missing or points elsewhere. */
	for (int i = 0; i < nw; i++) {
		const struct nmd_want *w = wv[i].w;
		const char *dev = nmd_want_dev(env, w);
		int oif = dev ? nm_ifindex(env->nm, dev, err, sizeof(err)) : 0, ok = 0;

		if (oif < 0) {
			nmd_fix_err(f, err);
			continue;
		}
		for (int k = 0; k < nkr && !ok; k++) {
			if (nmd_ip_cmp(&kr[k].dst, &wv[i].ip) != 0)
				continue;
			if (env->role == NMD_ROLE_EDGE)
				ok = kr[k].has_gw && nmd_ip_cmp(&kr[k].gw, &w->via) == 0 &&
				    (!dev || kr[k].oif == oif);
			else
				ok = !kr[k].has_gw && kr[k].oif == oif;
		}
		if (ok)
			continue;
		if (nm_route_set(env->nm, &wv[i].ip, env->role == NMD_ROLE_EDGE ? &w->via : NULL, dev,
		    err, sizeof(err)) < 0)
			nmd_fix_err(f, err);
		else
			f->routes_set++;
	}
	/* Delete ours that nothing wants: what a statement withdraws always,
	 * the rest only when the hash is authoritative. */
	for (int k = 0; k < nkr; k++) {
		int unwanted = 0, gone;

		const struct nmd_wip *u;

		if (nmd_wip_find(wv, nw, &kr[k].dst))
			continue;
		u = nmd_wip_find(uv, nu, &kr[k].dst);
		unwanted = u != NULL;
		/* "No route via X": a route via another host is not its business. */
		if (u && env->role == NMD_ROLE_EDGE && u->w->op == NM_OP_WITHDRAW && u->w->has_via &&
		    (!kr[k].has_gw || nmd_ip_cmp(&kr[k].gw, &u->w->via) != 0))
			unwanted = 0;
		if (!unwanted && !env->want_auth)
			continue;
		if (nm_route_del(env->nm, &kr[k].dst, NULL, NULL, &gone, err, sizeof(err)) < 0)
			nmd_fix_err(f, err);
		else if (!gone)
			f->routes_del++;
	}
	if (env->role == NMD_ROLE_EDGE)
		goto out;
	/* Neighbours: IP -> the VM's MAC, permanent, on its device. */
	for (int i = 0; i < nw; i++) {
		const struct nmd_want *w = wv[i].w;
		const char *dev = nmd_want_dev(env, w);
		int ok = 0;

		if (!w->has_mac || !dev)
			continue;
		if (!ndev || strcmp(ndev, dev) != 0) {
			ndev = dev;
			nkn = nm_neigh_list(env->nm, dev, kn, NMD_KNEIGH, err, sizeof(err));
			if (nkn < 0)
				nmd_fix_err(f, err);
		}
		if (nkn < 0)
			continue;
		for (int k = 0; k < nkn && !ok; k++)
			ok = nmd_ip_cmp(&kn[k].ip, &wv[i].ip) == 0 && kn[k].permanent && kn[k].has_mac &&
			    memcmp(kn[k].mac, w->mac, 6) == 0;
		if (ok)
			continue;
		if (nm_neigh_set(env->nm, &wv[i].ip, w->mac, dev, err, sizeof(err)) < 0)
			nmd_fix_err(f, err);
		else
			f->neigh_set++;
	}
	/* A permanent entry for a withdrawn VM's IP, with its MAC, goes. */
	for (int i = 0; i < nu; i++) {
		const struct nmd_want *w = uv[i].w;
		const char *dev = nmd_want_dev(env, w);

		if (!w->has_mac || !dev)
			continue;
		if (!ndev || strcmp(ndev, dev) != 0) {
			ndev = dev;
			nkn = nm_neigh_list(env->nm, dev, kn, NMD_KNEIGH, err, sizeof(err));
		}
		for (int k = 0; k < nkn; k++) {
			if (nmd_ip_cmp(&kn[k].ip, &uv[i].ip) != 0 || !kn[k].permanent || !kn[k].has_mac ||
			    memcmp(kn[k].mac, w->mac, 6) != 0)
				continue;
			if (nm_neigh_del(env->nm, &uv[i].ip, dev, err, sizeof(err)) < 0)
				nmd_fix_err(f, err);
			else
				f->neigh_del++;
			kn[k].permanent = 0;
		}
	}
out:
	free(wv);
	free(uv);
}

void
nmd_converge(struct nmd *env, const char *why)
{
	struct nmd_fix f;
	char *active;
	int64_t t0 = clock_mono_us();

	if (env->stopping || !env->held || env->fenced || env->conf.converge_ms <= 0)
		return;
	memset(&f, 0, sizeof(f));
	active = calloc((size_t)env->nwant + 1, 1);
	if (!active)
		return;
	if (env->role == NMD_ROLE_HOST)
		nmd_converge_ports(env, active, &f);
	nmd_converge_net(env, active, &f);
	free(active);
	env->converge_runs++;
	env->converge_fixes += (unsigned long)(f.routes_set + f.routes_del + f.neigh_set +
	    f.neigh_del + f.ports_up + f.ports_down);
	if (f.routes_set || f.routes_del || f.neigh_set || f.neigh_del || f.ports_up ||
	    f.ports_down || f.errors)
		log_info("converge host=%s why=%s statements=%d authoritative=%s routes_set=%d "
		    "routes_deleted=%d neigh_set=%d neigh_deleted=%d ports_up=%d ports_down=%d "
		    "bursts=%d held=%d errors=%d%s%s took_us=%lld", env->conf.host, why, env->nwant,
		    env->want_auth ? "yes" : "no", f.routes_set, f.routes_del, f.neigh_set,
		    f.neigh_del, f.ports_up, f.ports_down, f.bursts, f.held, f.errors,
		    f.errors ? " first_error=" : "", f.errors ? f.err : "",
		    (long long)(clock_mono_us() - t0));
}

/* ------------------------------------------------------------------ */
/* Reading the hash */

/* The first read of the statements is done (auth: the hash had its
 * marker): orders waited for it. */
static void
nmd_want_read_done(struct nmd *env, int auth)
{
	env->want_auth = auth;
	if (!env->want_read) {
		env->want_read = 1;
		nmd_orders_start(env);
	}
}

static void
nmd_want_merge(struct nmd *env, const redisReply *r)
{
	static struct nm_order o;
	uint64_t me = 0, ms = 0;
	int have_mark = 0, taken = 0, dropped = 0;
	char err[300];
	char *seen;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
		return;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    strcmp(k->str, "_") == 0) {
			have_mark = sscanf(v->str, "%llu.%llu", (unsigned long long *)&me,
			    (unsigned long long *)&ms) == 2;
		}
	}
	seen = calloc((size_t)env->nwant + r->elements + 1, 1);
	if (!seen)
		return;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];
		struct nmd_want *w;

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
		    strcmp(k->str, "_") == 0)
			continue;
		if (nmd_stmt_parse(k->str, v->str, &o, err, sizeof(err)) < 0) {
			log_warnx("statement %s vm=%s ignored: %s", env->k_net, k->str, err);
			if ((w = nmd_want_find(env, k->str)))
				seen[w - env->want] = 1;
			continue;
		}
		w = nmd_want_find(env, k->str);
		if (!w || nmd_ver_cmp(o.epoch, o.seq, w->epoch, w->seq) > 0) {
			if (w)
				log_info("statement vm=%s op=%s epoch=%llu seq=%llu from %s (newer than "
				    "the held %s seq=%llu: an order was lost or not read yet)", o.vm,
				    nm_op_name(o.op), (unsigned long long)o.epoch,
				    (unsigned long long)o.seq, env->k_net, nm_op_name(w->op),
				    (unsigned long long)w->seq);
			if (nmd_want_put(env, &o, o.epoch, o.seq) < 0)
				continue;
			taken++;
			w = nmd_want_find(env, k->str);
		}
		if (w)
			seen[w - env->want] = 1;
	}
	if (have_mark) {
		for (int i = env->nwant - 1; i >= 0; i--) {
			struct nmd_want *w = &env->want[i];

			if (seen[i] || nmd_ver_cmp(w->epoch, w->seq, me, ms) > 0)
				continue;
			log_info("statement vm=%s dropped: fleetd pruned it from %s", w->vm, env->k_net);
			nmd_want_drop(env, w);
			seen[i] = seen[env->nwant];
			dropped++;
		}
	}
	free(seen);
	if (have_mark != env->want_auth || !env->want_read)
		log_info("statements %s=%d authoritative=%s%s", env->k_net, env->nwant,
		    have_mark ? "yes" : "no", have_mark ? "" : " (no marker: Redis lost the hash or "
		    "no reconcile has written it yet; nothing is deleted on its strength)");
	nmd_want_read_done(env, have_mark);
	env->mark_e = me;
	env->mark_s = ms;
	env->full_read_ms = clock_mono_ms();
	if (taken || dropped)
		nmd_converge(env, "statements");
}

static void
nmd_want_all_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct nmd *env = priv;
	redisReply *reply = r;

	(void)ac;
	env->want_reading = 0;
	if (!reply || env->stopping)
		return;
	if (reply->type != REDIS_REPLY_ARRAY) {
		log_warnx("statements %s: %s", env->k_net, reply->type == REDIS_REPLY_ERROR ?
		    reply->str : "not a hash");
		/* Orders must not wait on a hash that cannot be read: they run,
		 * and nothing is deleted on the strength of what was not read. */
		if (!env->want_read)
			nmd_want_read_done(env, 0);
		return;
	}
	nmd_want_merge(env, reply);
}

static void
nmd_want_mark_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct nmd *env = priv;
	redisReply *reply = r;
	unsigned long long e = 0, s = 0;
	int have = 0;

	(void)ac;
	env->want_reading = 0;
	if (!reply || env->stopping || reply->type == REDIS_REPLY_ERROR)
		return;
	if (reply->type == REDIS_REPLY_STRING)
		have = sscanf(reply->str, "%llu.%llu", &e, &s) == 2;
	/* Nothing written since the last read. A hash without its marker is
	 * read whole every time: its writes do not move a marker. */
	if (env->want_read && have && env->want_auth && e == env->mark_e && s == env->mark_s &&
	    clock_mono_ms() - env->full_read_ms < NMD_FULL_READ_MS)
		return;
	if (rlink_command(env->wr, nmd_want_all_reply, env, "HGETALL %s", env->k_net) == 0)
		env->want_reading = 1;
}

/* ------------------------------------------------------------------ */
/* Timers and netlink events */

void
nmd_want_read(struct nmd *env)
{
	if (env->conf.converge_ms <= 0 || env->want_reading || !rlink_is_up(env->wr))
		return;
	if (!env->want_read) {
		/* The first read is the whole hash, before any order runs. */
		if (rlink_command(env->wr, nmd_want_all_reply, env, "HGETALL %s", env->k_net) == 0)
			env->want_reading = 1;
		return;
	}
	if (rlink_command(env->wr, nmd_want_mark_reply, env, "HGET %s _", env->k_net) == 0)
		env->want_reading = 1;
}

static void
nmd_conv_tick(evutil_socket_t fd, short what, void *arg)
{
	struct nmd *env = arg;

	(void)fd;
	(void)what;
	if (!env->held || env->fenced || env->stopping)
		return;
	nmd_want_read(env);
	nmd_converge(env, "interval");
}

static void
nmd_conv_soon_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	nmd_converge(arg, "netlink");
}

void
nmd_converge_soon(struct nmd *env)
{
	struct timeval tv = { 0, NMD_SOON_MS * 1000 };

	if (env->conv_soon && !evtimer_pending(env->conv_soon, NULL))
		evtimer_add(env->conv_soon, &tv);
}

/* Some statement names ip (as wanted or not). */
static int
nmd_want_names(const struct nmd *env, const struct nm_ip *ip)
{
	for (int i = 0; i < env->nwant; i++)
		for (int k = 0; k < env->want[i].nips; k++)
			if (nmd_ip_cmp(&env->want[i].ips[k], ip) == 0)
				return 1;
	return 0;
}

static void
nmd_mon_event(const struct nm_event *ev, void *arg)
{
	struct nmd *env = arg;

	switch (ev->kind) {
	case NM_EV_LOST:
		nmd_converge_soon(env);
		return;
	case NM_EV_ROUTE_NEW:
	case NM_EV_NEIGH_NEW:
		if (ev->ours)
			return;	/* what convergence itself writes */
		break;
	case NM_EV_ROUTE_DEL:
	case NM_EV_NEIGH_DEL:
		break;
	}
	if (env->role == NMD_ROLE_EDGE && (ev->kind == NM_EV_NEIGH_NEW || ev->kind == NM_EV_NEIGH_DEL))
		return;
	if (nmd_want_names(env, &ev->ip))
		nmd_converge_soon(env);
}

static void
nmd_mon_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nmd *env = arg;

	(void)fd;
	(void)what;
	if (nm_monitor_read(env->nm, nmd_mon_event, env) < 0)
		log_warnx("netlink monitor: read failed; converging on the interval only");
}

int
nmd_want_start(struct nmd *env, char *err, size_t errlen)
{
	struct timeval tv;
	int fd;

	snprintf(env->k_net, sizeof(env->k_net), "pf:host:%s:net", env->conf.host);
	if (env->conf.converge_ms <= 0)
		return 0;
	env->conv_ev = event_new(env->base, -1, EV_PERSIST, nmd_conv_tick, env);
	env->conv_soon = evtimer_new(env->base, nmd_conv_soon_cb, env);
	if (!env->conv_ev || !env->conv_soon) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	tv.tv_sec = env->conf.converge_ms / 1000;
	tv.tv_usec = (env->conf.converge_ms % 1000) * 1000;
	evtimer_add(env->conv_ev, &tv);
	fd = nm_monitor_open(env->nm, err, errlen);
	if (fd < 0)
		return -1;
	env->mon_ev = event_new(env->base, fd, EV_READ | EV_PERSIST, nmd_mon_cb, env);
	if (!env->mon_ev || event_add(env->mon_ev, NULL) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void
nmd_want_free(struct nmd *env)
{
	if (env->conv_ev)
		event_free(env->conv_ev);
	if (env->conv_soon)
		event_free(env->conv_soon);
	if (env->mon_ev)
		event_free(env->mon_ev);
	env->conv_ev = env->conv_soon = env->mon_ev = NULL;
	for (int i = 0; i < env->nwant; i++)
		free(env->want[i].ips);
	free(env->want);
	env->want = NULL;
	env->nwant = env->cwant = 0;
}
