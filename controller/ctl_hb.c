/*
 * ctl_hb.c: the agents' heartbeats and the leader's grants.
 *
 * DESIGN (the timing argument is in docs/design.md, "Fencing and Redis").
 * Redis alone cannot tell an agent whether it is cut off or Redis is: in a
 * Redis stall every agent loses its lease at once, and fencing them all
 * would take every protected proxy down for nothing, since no controller
 * can promote without Redis either. So each agent also pings every
 * controller directly (UDP, HMAC-signed, common/hb.h), and fences only
 * when its Redis lease and its last grant have both run out.
 *
 * This fleetd answers a ping with a grant while it leads, and for
 * stall_grace after its last good lease renewal (a Redis stall makes it
 * step down, but nobody can take its place without Redis). A grant to
 * host h promises: none of h's VMs is promoted within heartbeat_grant of
 * receiving the ping (what the agent asks for, to bridge the gap to its
 * next ping, up to heartbeat_grant); it is kept in hb_grant_until_ms, which the failover
 * watch consults before promoting (ctl_hb_holds). A host that still
 * pings is alive and talking to us, whatever its lease says.
 *
 * Another instance may have granted up to its last renewal + stall_grace
 * + grant; a new leader cannot see those grants, so after acquiring it
 * promotes nothing for stall_grace + grant, unless pf:ctl:epoch shows that
 * no other instance acquired since our own last lease (its INCR is our
 * last epoch + 1): then every grant given was ours, and is in our table.
 */
#include "controller/fleetd.h"
#include "common/hb.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CTL_HB_MARGIN_MS 50	/* on our grants: the ping's flight and our timers */
#define CTL_HB_SKEW_MS 5000	/* pings whose wall clock is further off are refused */

static int
ctl_hb_may_grant(const struct fleetd *env)
{
	return ctl_leader_is(env) || clock_mono_ms() < env->lead.hb_until_ms;
}

static void
ctl_hb_read(evutil_socket_t fd, short what, void *arg)
{
	struct fleetd *env = arg;
	char buf[HB_MAX + 1], out[HB_MAX], why[160], from[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct hb_msg m, g;
	ssize_t n;
	int h, len;
	int64_t wall = clock_wall_ms();

	(void)what;
	/* One datagram per wake-up keeps the loop fair; the event fires
	 * again while more are queued. */
	n = recvfrom(fd, buf, HB_MAX, 0, (struct sockaddr *)&ss, &sl);
	if (n < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, from, sizeof(from));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, from, sizeof(from));
	if (hb_parse(buf, (size_t)n, env->conf->hb_key, &m, why, sizeof(why)) < 0 ||
	    m.kind != HB_PING) {
		env->stats.hb_refused++;
		log_debug("heartbeat refused from=%s: %s", from, m.kind == HB_PING ? why : "not a ping");
		return;
	}
	if ((h = ctl_host_find(&env->model, m.host)) < 0) {
		/* Edge agents ping too; they carry no VM, nothing to hold. */
		log_debug("heartbeat from=%s agent=%s: not a host of the fleet", from, m.host);
	} else {
		struct ctl_host *host = &env->model.hosts[h];

		if (m.ts_ms <= host->hb_last_ts || m.ts_ms < wall - CTL_HB_SKEW_MS ||
		    m.ts_ms > wall + CTL_HB_SKEW_MS) {
			env->stats.hb_refused++;
			log_debug("heartbeat refused host=%s from=%s: ts %lld is old or far from ours "
			    "(%lld)", m.host, from, (long long)m.ts_ms, (long long)wall);
			return;
		}
		host->hb_last_ts = m.ts_ms;
	}
	if (!ctl_hb_may_grant(env))
		return;	/* followers stay silent: the agent counts only grants */
	memset(&g, 0, sizeof(g));
	g.kind = HB_GRANT;
	str_copy(g.host, m.host, sizeof(g.host));
	g.nonce = m.nonce;
	g.epoch = env->lead.epoch ? env->lead.epoch : env->lead.last_epoch;
	g.grant_ms = m.want_ms < env->conf->hb_grant_ms ? m.want_ms : env->conf->hb_grant_ms;
	str_copy(g.instance, env->lead.instance, sizeof(g.instance));
	len = hb_format(&g, env->conf->hb_key, out, sizeof(out));
	if (len < 0)
		return;
	/* Recorded before it is sent: a grant we promised and lost on the
	 * way still holds promotions off, never the other way round. */
	if (h >= 0)
		env->model.hosts[h].hb_grant_until_ms = clock_mono_ms() + g.grant_ms +
		    CTL_HB_MARGIN_MS;
	if (sendto(fd, out, (size_t)len, 0, (struct sockaddr *)&ss, sl) < 0)
		log_debug("heartbeat grant to=%s host=%s: %s", from, m.host, strerror(errno));
	else
		env->stats.hb_grants++;
}

int
ctl_hb_start(struct fleetd *env, char *err, size_t errlen)
{
	int one = 1;
	struct sockaddr_storage ss;
	unsigned sl;

	env->hb_fd = -1;
	if (!env->conf->hb_listen[0])
		return 0;
	if (sockaddr_parse(env->conf->hb_listen, &ss, &sl) < 0) {
		snprintf(err, errlen, "heartbeat_listen '%s': not IP:PORT", env->conf->hb_listen);
		return -1;
	}
	env->hb_fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (env->hb_fd < 0 ||
	    setsockopt(env->hb_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(env->hb_fd, (struct sockaddr *)&ss, (socklen_t)sl) < 0) {
		snprintf(err, errlen, "heartbeat_listen %s: %s", env->conf->hb_listen, strerror(errno));
		if (env->hb_fd >= 0)
			close(env->hb_fd);
		env->hb_fd = -1;
		return -1;
	}
	env->hb_ev = event_new(env->base, env->hb_fd, EV_READ | EV_PERSIST, ctl_hb_read, env);
	if (!env->hb_ev || event_add(env->hb_ev, NULL) < 0) {
		snprintf(err, errlen, "heartbeat: out of memory");
		return -1;
	}
	log_info("heartbeats listen=%s grant_ms=%lld stall_grace_ms=%lld", env->conf->hb_listen,
	    env->conf->hb_grant_ms, env->conf->hb_stall_ms);
	return 0;
}

void
ctl_hb_stop(struct fleetd *env)
{
	if (env->hb_ev)
		event_free(env->hb_ev);
	env->hb_ev = NULL;
	if (env->hb_fd >= 0)
		close(env->hb_fd);
	env->hb_fd = -1;
}

void
ctl_hb_on_lead(struct fleetd *env, int acquired, long long incr, int clean)
{
	struct ctl_lead *l = &env->lead;
	int64_t now = clock_mono_ms();

	if (acquired && env->hb_fd >= 0) {
		/* Another instance may have granted: wait its grants out, unless
		 * nobody else has acquired since our last lease, or the last
		 * holder released the lease (it stopped granting then: only its
		 * last grants run on). */
		int64_t until;

		if (l->last_epoch && (unsigned long long)incr == l->last_epoch + 1)
			until = 0;
		else if (clean)
			until = now + env->conf->hb_grant_ms + CTL_HB_MARGIN_MS;
		else
			until = now + env->conf->hb_stall_ms + env->conf->hb_grant_ms +
			    CTL_HB_MARGIN_MS;
		/* Never shortened: a wait begun under an earlier lease still
		 * covers grants given before it. */
		if (until > l->hb_wait_until_ms) {
			l->hb_wait_until_ms = until;
			log_info("leader waits %lld ms before any promotion: another instance may have "
			    "granted heartbeats until then", (long long)(until - now));
		}
	}
	if (l->epoch)
		l->last_epoch = l->epoch;
	l->hb_until_ms = l->sent_ms + env->conf->hb_stall_ms;
}

void
ctl_hb_stop_granting(struct fleetd *env)
{
	env->lead.hb_until_ms = 0;
}

int
ctl_hb_holds(struct fleetd *env, int h, char *why, size_t whylen)
{
	const struct ctl_host *host = &env->model.hosts[h];
	int64_t now = clock_mono_ms();

	if (env->hb_fd < 0)
		return 0;
	if (host->hb_grant_until_ms > now) {
		snprintf(why, whylen, "its agent still heartbeats to this fleetd (grant for %lld ms "
		    "more): alive, cut off from Redis only", (long long)(host->hb_grant_until_ms - now));
		return 1;
	}
	if (env->lead.hb_wait_until_ms > now) {
		snprintf(why, whylen, "a new leader waits %lld ms more for grants another instance may "
		    "have given", (long long)(env->lead.hb_wait_until_ms - now));
		return 1;
	}
	return 0;
}
