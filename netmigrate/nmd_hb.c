/*
 * nmd_hb.c: netmigrated's heartbeats to the controllers.
 *
 * DESIGN (docs/design.md, "Fencing and Redis"). With every lease renewal
 * the agent pings every configured controller (common/hb.h); the leader
 * answers with a grant, "no promotion of your VMs for G ms". The agent
 * counts a grant from when it sent the ping it answers, so its idea of the
 * grant ends before the leader's. The fence (nmd.c) waits for both the
 * Redis lease and the last grant to run out: in a Redis outage the leader
 * still answers, so nobody fences; a host really cut off hears nothing and
 * fences when its lease runs out, before anything is promoted.
 *
 * With no controllers configured the agent pings nobody and fences on the
 * lease alone, as before.
 */
#include "netmigrate/nmd.h"
#include "common/hb.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static void
nmd_hb_read(evutil_socket_t fd, short what, void *arg)
{
	struct nmd *env = arg;
	char buf[HB_MAX + 1], why[160] = "";
	struct hb_msg m;
	ssize_t n;

	(void)what;
	n = recv(fd, buf, HB_MAX, 0);
	if (n < 0)
		return;
	if (hb_parse(buf, (size_t)n, env->conf.hb_key, &m, why, sizeof(why)) < 0 ||
	    m.kind != HB_GRANT || strcmp(m.host, env->conf.host) != 0) {
		log_debug("heartbeat answer refused: %s", m.kind == HB_GRANT ? why : "not a grant");
		return;
	}
	for (int i = 0; i < NMD_PINGS; i++) {
		struct nmd_ping *p = &env->pings[i];
		int64_t until;

		if (!p->sent_ms || p->nonce != m.nonce)
			continue;
		until = p->sent_ms + m.grant_ms;
		if (m.epoch < env->epoch) {
			/* An older leader still in its stall grace: the current one
			 * may answer the same ping. */
			log_debug("grant from=%s ignored: epoch %llu < %llu", m.instance,
			    (unsigned long long)m.epoch, (unsigned long long)env->epoch);
			return;
		}
		p->sent_ms = 0;	/* one grant per ping */
		if (strcmp(m.instance, env->grant_from) != 0 || m.epoch != env->grant_epoch)
			log_info("heartbeats granted by=%s epoch=%llu grant_ms=%lld", m.instance,
			    (unsigned long long)m.epoch, (long long)m.grant_ms);
		str_copy(env->grant_from, m.instance, sizeof(env->grant_from));
		env->grant_epoch = m.epoch;
		if (until > env->grant_until_ms)
			env->grant_until_ms = until;
		return;
	}
	log_debug("grant from=%s for an unknown or answered ping", m.instance);
}

void
nmd_hb_ping(struct nmd *env)
{
	struct hb_msg m;
	struct nmd_ping *p;
	char buf[HB_MAX];
	int n;

	if (env->hb_fd < 0)
		return;
	memset(&m, 0, sizeof(m));
	m.kind = HB_PING;
	str_copy(m.host, env->conf.host, sizeof(m.host));
	if (getrandom(&m.nonce, sizeof(m.nonce), GRND_NONBLOCK) != (ssize_t)sizeof(m.nonce))
		m.nonce = (uint64_t)clock_mono_us() * 6364136223846793005ULL + (uint64_t)getpid();
	m.ts_ms = clock_wall_ms();
	/* Enough to reach the next ping twice over (one may be lost). */
	m.want_ms = 2 * (env->conf.lease_ms / 3) + 100;
	n = hb_format(&m, env->conf.hb_key, buf, sizeof(buf));
	if (n < 0)
		return;
	p = &env->pings[env->ping_next];
	env->ping_next = (env->ping_next + 1) % NMD_PINGS;
	p->nonce = m.nonce;
	p->sent_ms = clock_mono_ms();
	for (int i = 0; i < env->conf.nhb; i++)
		if (sendto(env->hb_fd, buf, (size_t)n, 0, (struct sockaddr *)&env->conf.hb_addr[i],
		    env->conf.hb_len[i]) < 0)
			log_debug("heartbeat to controller %d: %s", i, strerror(errno));
}

int
nmd_hb_start(struct nmd *env, char *err, size_t errlen)
{
	env->hb_fd = -1;
	if (env->conf.nhb == 0)
		return 0;
	/* One socket for both families would need v4-mapped addresses; the
	 * first controller's family decides, and a mixed list is refused. */
	for (int i = 1; i < env->conf.nhb; i++)
		if (env->conf.hb_addr[i].ss_family != env->conf.hb_addr[0].ss_family) {
			snprintf(err, errlen, "controllers mixes IPv4 and IPv6 addresses");
			return -1;
		}
	env->hb_fd = socket(env->conf.hb_addr[0].ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (env->hb_fd < 0) {
		snprintf(err, errlen, "heartbeat socket: %s", strerror(errno));
		return -1;
	}
	env->hb_ev = event_new(env->base, env->hb_fd, EV_READ | EV_PERSIST, nmd_hb_read, env);
	if (!env->hb_ev || event_add(env->hb_ev, NULL) < 0) {
		snprintf(err, errlen, "heartbeat: out of memory");
		return -1;
	}
	log_info("heartbeats to=%s", env->conf.controllers);
	return 0;
}

void
nmd_hb_free(struct nmd *env)
{
	if (env->hb_ev)
		event_free(env->hb_ev);
	env->hb_ev = NULL;
	if (env->hb_fd >= 0)
		close(env->hb_fd);
	env->hb_fd = -1;
}
