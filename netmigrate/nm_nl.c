/*
 * nm_nl.c: host routes, neighbour and proxy entries over rtnetlink (libmnl).
 *
 * Each call is one request and its ack on the context's netlink socket:
 * local, a few microseconds, so safe on an event loop. Idempotence comes
 * from the kernel's own flags: NLM_F_CREATE | NLM_F_REPLACE adds or
 * replaces, and a delete that finds nothing (ESRCH, ENOENT) counts as done.
 * Errors keep the kernel's extended-ack message when it sends one, and name
 * the object: "route 10.0.0.1/32 via 10.0.0.9: Nexthop has invalid gateway".
 */
#include "netmigrate/nm_int.h"

#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

/* Read the ack of the request just sent. 0, or -1 with errno set and the
 * kernel's extended-ack text (if any) in msg. */
static int
nm_nl_ack(struct nm_ctx *ctx, char *msg, size_t msglen)
{
	const struct nlmsghdr *nlh;
	const struct nlmsgerr *e;
	const struct nlattr *attr;
	ssize_t n;

	msg[0] = '\0';
	for (;;) {
		n = mnl_socket_recvfrom(ctx->nl, ctx->buf, sizeof(ctx->buf));
		if (n < 0)
			return -1;
		nlh = (const struct nlmsghdr *)ctx->buf;
		for (; mnl_nlmsg_ok(nlh, (int)n); nlh = mnl_nlmsg_next(nlh, (int *)&n)) {
			if (nlh->nlmsg_seq != ctx->seq || nlh->nlmsg_type != NLMSG_ERROR)
				continue;	/* a stale answer: not ours */
			e = mnl_nlmsg_get_payload(nlh);
			if (e->error == 0)
				return 0;
			if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
				/* TLVs follow the echoed request (its header only
				 * when NLM_F_CAPPED). */
				size_t off = sizeof(*e);

				if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
					off += e->msg.nlmsg_len - sizeof(e->msg);
				mnl_attr_for_each_payload((const void *)((const char *)e + off),
				    mnl_nlmsg_get_payload_len(nlh) - off) {
					if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
					    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
						snprintf(msg, msglen, "%s", mnl_attr_get_str(attr));
				}
			}
			errno = -e->error;
			return -1;
		}
	}
}

/* Send the request in ctx->buf and wait for its ack. */
static int
nm_nl_talk(struct nm_ctx *ctx, struct nlmsghdr *nlh, char *kmsg, size_t kmsglen)
{
	if (mnl_socket_sendto(ctx->nl, nlh, nlh->nlmsg_len) < 0) {
		kmsg[0] = '\0';
		return -1;
	}
	return nm_nl_ack(ctx, kmsg, kmsglen);
}

static struct nlmsghdr *
nm_nl_new(struct nm_ctx *ctx, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(ctx->buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++ctx->seq;
	return nlh;
}

static size_t
nm_ip_len(const struct nm_ip *ip)
{
	return ip->family == AF_INET ? 4 : 16;
}

/* One message for a failed request: "<what>: <reason>". */
static int
nm_nl_fail(const char *what, const char *kmsg, char *err, size_t errlen)
{
	const char *why;

	switch (errno) {
	case EPERM:
	case EACCES:
		why = "operation not permitted (needs CAP_NET_ADMIN)";
		break;
	case ENODEV:
		why = "no such device";
		break;
	case ENETUNREACH:
		why = "gateway is not reachable from any interface";
		break;
	default:
		why = strerror(errno);
	}
	if (kmsg && kmsg[0] && errno != EPERM)
		snprintf(err, errlen, "%s: %s (%s)", what, kmsg, why);
	else
		snprintf(err, errlen, "%s: %s", what, why);
	return -1;
}

static void
nm_route_what(char *buf, size_t len, const char *verb, const struct nm_ip *dst,
    const struct nm_ip *gw, const char *dev)
{
	char d[NM_IPSTR_MAX], g[NM_IPSTR_MAX];

	snprintf(buf, len, "%s route %s/%d%s%s%s%s", verb, nm_ip_fmt(dst, d, sizeof(d)),
	    dst->family == AF_INET ? 32 : 128, gw ? " via " : "", gw ? nm_ip_fmt(gw, g, sizeof(g)) : "",
	    dev ? " dev " : "", dev ? dev : "");
}

static int
nm_route_msg(struct nm_ctx *ctx, int add, const struct nm_ip *dst, const struct nm_ip *gw,
    const char *dev, int *gone, char *err, size_t errlen)
{
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	char what[160], kmsg[200];
	int ifindex = 0;

	nm_route_what(what, sizeof(what), add ? "set" : "delete", dst, gw, dev);
	if (gone)
		*gone = 0;
	if (add && !gw && !dev) {
		snprintf(err, errlen, "%s: needs a gateway or a device", what);
		return -1;
	}
	if (gw && gw->family != dst->family) {
		snprintf(err, errlen, "%s: gateway and destination are not the same family", what);
		return -1;
	}
	if (dev) {
		char e2[120];

		ifindex = nm_ifindex(ctx, dev, e2, sizeof(e2));
		if (ifindex < 0) {
			/* Deleting through a vanished device: the route went with it. */
			if (!add && errno != EPERM) {
				if (gone)
					*gone = 1;
				return 0;
			}
			snprintf(err, errlen, "%s: %s", what, e2);
			return -1;
		}
	}
	nlh = nm_nl_new(ctx, add ? RTM_NEWROUTE : RTM_DELROUTE,
	    add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (unsigned char)dst->family;
	rtm->rtm_dst_len = dst->family == AF_INET ? 32 : 128;
	rtm->rtm_table = RT_TABLE_MAIN;
	/* Deletes match the protocol too: only routes netmigrate installed go,
	 * never an operator's static /32 for the same address. */
	rtm->rtm_protocol = NM_RTPROT;
	if (add) {
		rtm->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
		rtm->rtm_type = RTN_UNICAST;
	} else {
		rtm->rtm_scope = RT_SCOPE_NOWHERE;	/* match any scope */
	}
	mnl_attr_put(nlh, RTA_DST, nm_ip_len(dst), &dst->a);
	if (gw)
		mnl_attr_put(nlh, RTA_GATEWAY, nm_ip_len(gw), &gw->a);
	if (dev)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	if (nm_nl_talk(ctx, nlh, kmsg, sizeof(kmsg)) < 0) {
		if (!add && (errno == ESRCH || errno == ENOENT)) {
			if (gone)
				*gone = 1;
			return 0;
		}
		return nm_nl_fail(what, kmsg, err, errlen);
	}
	return 0;
}

int
nm_route_set(struct nm_ctx *ctx, const struct nm_ip *dst, const struct nm_ip *gw,
    const char *dev, char *err, size_t errlen)
{
	return nm_route_msg(ctx, 1, dst, gw, dev, NULL, err, errlen);
}

int
nm_route_del(struct nm_ctx *ctx, const struct nm_ip *dst, const struct nm_ip *gw,
    const char *dev, int *gone, char *err, size_t errlen)
{
	return nm_route_msg(ctx, 0, dst, gw, dev, gone, err, errlen);
}

/* Neighbour (proxy = 0) or proxy (proxy = 1) entry: add (mac != NULL or
 * proxy) or delete. */
static int
nm_neigh_msg(struct nm_ctx *ctx, int add, int proxy, const struct nm_ip *ip,
    const uint8_t *mac, const char *dev, char *err, size_t errlen)
{
	struct nlmsghdr *nlh;
	struct ndmsg *ndm;
	char what[160], kmsg[200], a[NM_IPSTR_MAX], m[NM_MACSTR_MAX], e2[120];
	int ifindex;

	snprintf(what, sizeof(what), "%s %s %s%s%s dev %s", add ? "set" : "delete",
	    proxy ? "proxy" : "neighbour", nm_ip_fmt(ip, a, sizeof(a)), mac ? " lladdr " : "",
	    mac ? nm_mac_fmt(mac, m, sizeof(m)) : "", dev ? dev : "");
	ifindex = nm_ifindex(ctx, dev, e2, sizeof(e2));
	if (ifindex < 0) {
		if (!add)
			return 0;	/* gone with its device */
		snprintf(err, errlen, "%s: %s", what, e2);
		return -1;
	}
	nlh = nm_nl_new(ctx, add ? RTM_NEWNEIGH : RTM_DELNEIGH,
	    add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = (unsigned char)ip->family;
	ndm->ndm_ifindex = ifindex;
	ndm->ndm_state = NUD_PERMANENT;
	ndm->ndm_flags = proxy ? NTF_PROXY : 0;
	mnl_attr_put(nlh, NDA_DST, nm_ip_len(ip), &ip->a);
	if (add && mac)
		mnl_attr_put(nlh, NDA_LLADDR, 6, mac);
	if (nm_nl_talk(ctx, nlh, kmsg, sizeof(kmsg)) < 0) {
		if (!add && (errno == ENOENT || errno == ESRCH))
			return 0;
		return nm_nl_fail(what, kmsg, err, errlen);
	}
	return 0;
}

int
nm_neigh_set(struct nm_ctx *ctx, const struct nm_ip *ip, const uint8_t mac[6], const char *dev,
    char *err, size_t errlen)
{
	return nm_neigh_msg(ctx, 1, 0, ip, mac, dev, err, errlen);
}

int
nm_neigh_del(struct nm_ctx *ctx, const struct nm_ip *ip, const char *dev, char *err,
    size_t errlen)
{
	return nm_neigh_msg(ctx, 0, 0, ip, NULL, dev, err, errlen);
}

int
nm_proxy_set(struct nm_ctx *ctx, const struct nm_ip *ip, const char *dev, char *err,
    size_t errlen)
{
	return nm_neigh_msg(ctx, 1, 1, ip, NULL, dev, err, errlen);
}

int
nm_proxy_del(struct nm_ctx *ctx, const struct nm_ip *ip, const char *dev, char *err,
    size_t errlen)
{
	return nm_neigh_msg(ctx, 0, 1, ip, NULL, dev, err, errlen);
}

/* ------------------------------------------------------------------ */
/* Dumps: netmigrate's routes (by protocol number), a device's neighbours */

static int
nm_rt_attr(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(attr, RTA_MAX) > 0)
		tb[mnl_attr_get_type(attr)] = attr;
	return MNL_CB_OK;
}

static int
nm_nd_attr(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_type_valid(attr, NDA_MAX) > 0)
		tb[mnl_attr_get_type(attr)] = attr;
	return MNL_CB_OK;
}

/* An address attribute of the family's length into ip: 0, or -1. */
static int
nm_attr_ip(const struct nlattr *a, int family, struct nm_ip *ip)
{
	size_t len = family == AF_INET ? 4 : 16;

	if (!a || mnl_attr_get_payload_len(a) != len)
		return -1;
	memset(ip, 0, sizeof(*ip));
	ip->family = family;
	memcpy(&ip->a, mnl_attr_get_payload(a), len);
	return 0;
}

struct nm_rlist {
	struct nm_route *out;
	int n, max;
};

static int
nm_rlist_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };
	struct nm_rlist *l = data;
	struct nm_route *r;

	if (rtm->rtm_protocol != NM_RTPROT || rtm->rtm_table != RT_TABLE_MAIN ||
	    (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) ||
	    rtm->rtm_dst_len != (rtm->rtm_family == AF_INET ? 32 : 128) || l->n == l->max)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*rtm), nm_rt_attr, tb);
	r = &l->out[l->n];
	memset(r, 0, sizeof(*r));
	if (nm_attr_ip(tb[RTA_DST], rtm->rtm_family, &r->dst) < 0)
		return MNL_CB_OK;
	r->has_gw = nm_attr_ip(tb[RTA_GATEWAY], rtm->rtm_family, &r->gw) == 0;
	if (tb[RTA_OIF] && mnl_attr_get_payload_len(tb[RTA_OIF]) == 4)
		r->oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	l->n++;
	return MNL_CB_OK;
}

/* Send a dump request (built in ctx->buf) and run cb on every answer. */
static int
nm_nl_dump(struct nm_ctx *ctx, struct nlmsghdr *nlh, mnl_cb_t cb, void *data,
    const char *what, char *err, size_t errlen)
{
	ssize_t n;
	int r;

	if (mnl_socket_sendto(ctx->nl, nlh, nlh->nlmsg_len) < 0)
		return nm_nl_fail(what, NULL, err, errlen);
	do {
		n = mnl_socket_recvfrom(ctx->nl, ctx->buf, sizeof(ctx->buf));
		if (n < 0)
			return nm_nl_fail(what, NULL, err, errlen);
		r = mnl_cb_run(ctx->buf, (size_t)n, ctx->seq, ctx->portid, cb, data);
	} while (r > MNL_CB_STOP);
	if (r < 0)
		return nm_nl_fail(what, NULL, err, errlen);
	return 0;
}

int
nm_route_list(struct nm_ctx *ctx, struct nm_route *out, int max, char *err, size_t errlen)
{
	struct nm_rlist l = { out, 0, max };
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;

	nlh = mnl_nlmsg_put_header(ctx->buf);
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = ++ctx->seq;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_UNSPEC;
	if (nm_nl_dump(ctx, nlh, nm_rlist_cb, &l, "dump routes", err, errlen) < 0)
		return -1;
	return l.n;
}

struct nm_nlist {
	struct nm_neigh *out;
	int n, max, ifindex;
};

static int
nm_nlist_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1] = { 0 };
	struct nm_nlist *l = data;
	struct nm_neigh *e;

	if (ndm->ndm_ifindex != l->ifindex || (ndm->ndm_flags & NTF_PROXY) || l->n == l->max ||
	    (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ndm), nm_nd_attr, tb);
	e = &l->out[l->n];
	memset(e, 0, sizeof(*e));
	if (nm_attr_ip(tb[NDA_DST], ndm->ndm_family, &e->ip) < 0)
		return MNL_CB_OK;
	if (tb[NDA_LLADDR] && mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6) {
		memcpy(e->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
		e->has_mac = 1;
	}
	e->permanent = (ndm->ndm_state & NUD_PERMANENT) != 0;
	l->n++;
	return MNL_CB_OK;
}

int
nm_neigh_list(struct nm_ctx *ctx, const char *dev, struct nm_neigh *out, int max, char *err,
    size_t errlen)
{
	struct nm_nlist l = { out, 0, max, 0 };
	struct nlmsghdr *nlh;
	struct ndmsg *ndm;

	if ((l.ifindex = nm_ifindex(ctx, dev, err, errlen)) < 0)
		return -1;
	nlh = mnl_nlmsg_put_header(ctx->buf);
	nlh->nlmsg_type = RTM_GETNEIGH;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = ++ctx->seq;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = AF_UNSPEC;
	if (nm_nl_dump(ctx, nlh, nm_nlist_cb, &l, "dump neighbours", err, errlen) < 0)
		return -1;
	return l.n;
}

/* ------------------------------------------------------------------ */
/* Flush: every route netmigrate installed, found by its protocol number */

int
nm_route_flush(struct nm_ctx *ctx, struct nm_ip *dst, int max, char *err, size_t errlen)
{
	static struct nm_route found[4096];
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	char kmsg[200], what[160];
	int n, i;

	if (max > (int)(sizeof(found) / sizeof(found[0])))
		max = (int)(sizeof(found) / sizeof(found[0]));
	n = nm_route_list(ctx, found, max, err, errlen);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		dst[i] = found[i].dst;
		nlh = nm_nl_new(ctx, RTM_DELROUTE, 0);
		rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
		rtm->rtm_family = (unsigned char)dst[i].family;
		rtm->rtm_dst_len = dst[i].family == AF_INET ? 32 : 128;
		rtm->rtm_table = RT_TABLE_MAIN;
		rtm->rtm_protocol = NM_RTPROT;	/* only ours */
		rtm->rtm_scope = RT_SCOPE_NOWHERE;
		mnl_attr_put(nlh, RTA_DST, nm_ip_len(&dst[i]), &dst[i].a);
		if (nm_nl_talk(ctx, nlh, kmsg, sizeof(kmsg)) < 0 && errno != ESRCH) {
			nm_route_what(what, sizeof(what), "flush", &dst[i], NULL, NULL);
			return nm_nl_fail(what, kmsg, err, errlen);
		}
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Events: what changes routes and neighbours under the agent */

int
nm_monitor_open(struct nm_ctx *ctx, char *err, size_t errlen)
{
	unsigned groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_NEIGH;

	if (ctx->mon)
		return mnl_socket_get_fd(ctx->mon);
	ctx->mon = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!ctx->mon || mnl_socket_bind(ctx->mon, groups, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink monitor socket: %s", strerror(errno));
		if (ctx->mon)
			mnl_socket_close(ctx->mon);
		ctx->mon = NULL;
		return -1;
	}
	return mnl_socket_get_fd(ctx->mon);
}

struct nm_mon {
	nm_event_fn *fn;
	void *arg;
	int n;
};

static int
nm_mon_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nm_mon *m = data;
	struct nm_event ev;

	memset(&ev, 0, sizeof(ev));
	if (nlh->nlmsg_type == RTM_NEWROUTE || nlh->nlmsg_type == RTM_DELROUTE) {
		const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
		const struct nlattr *tb[RTA_MAX + 1] = { 0 };

		if (rtm->rtm_table != RT_TABLE_MAIN ||
		    (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) ||
		    rtm->rtm_dst_len != (rtm->rtm_family == AF_INET ? 32 : 128))
			return MNL_CB_OK;
		mnl_attr_parse(nlh, sizeof(*rtm), nm_rt_attr, tb);
		if (nm_attr_ip(tb[RTA_DST], rtm->rtm_family, &ev.ip) < 0)
			return MNL_CB_OK;
		ev.kind = nlh->nlmsg_type == RTM_NEWROUTE ? NM_EV_ROUTE_NEW : NM_EV_ROUTE_DEL;
		ev.ours = rtm->rtm_protocol == NM_RTPROT;
	} else if (nlh->nlmsg_type == RTM_NEWNEIGH || nlh->nlmsg_type == RTM_DELNEIGH) {
		const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
		const struct nlattr *tb[NDA_MAX + 1] = { 0 };

		if ((ndm->ndm_flags & NTF_PROXY) ||
		    (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6))
			return MNL_CB_OK;
		mnl_attr_parse(nlh, sizeof(*ndm), nm_nd_attr, tb);
		if (nm_attr_ip(tb[NDA_DST], ndm->ndm_family, &ev.ip) < 0)
			return MNL_CB_OK;
		ev.kind = nlh->nlmsg_type == RTM_NEWNEIGH ? NM_EV_NEIGH_NEW : NM_EV_NEIGH_DEL;
		ev.ours = (ndm->ndm_state & NUD_PERMANENT) != 0;
	} else {
		return MNL_CB_OK;
	}
	m->fn(&ev, m->arg);
	m->n++;
	return MNL_CB_OK;
}

int
nm_monitor_read(struct nm_ctx *ctx, nm_event_fn *fn, void *arg)
{
	struct nm_mon m = { fn, arg, 0 };
	struct nm_event lost;
	ssize_t n;

	if (!ctx->mon)
		return -1;
	for (;;) {
		n = mnl_socket_recvfrom(ctx->mon, ctx->buf, sizeof(ctx->buf));
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return m.n;
			if (errno == ENOBUFS) {
				/* The kernel dropped events: the caller looks at
				 * everything again. */
				memset(&lost, 0, sizeof(lost));
				lost.kind = NM_EV_LOST;
				fn(&lost, arg);
				m.n++;
				continue;
			}
			return -1;
		}
		(void)mnl_cb_run(ctx->buf, (size_t)n, 0, 0, nm_mon_cb, &m);
	}
}

/* ------------------------------------------------------------------ */
/* VM ports: the fence that needs nothing from the guest */

/* The bridge's ports and their MACs, read once (sysfs). libvirt gives a
 * tap the guest's MAC with the first octet set to 0xfe, so a VM matches on
 * the last five octets (the uplink never matches a 52:54:00 guest MAC). */
int
nm_ports_list(const char *bridge, struct nm_port *ports, int max)
{
	char path[128], line[32];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/sys/class/net/%s/brif", bridge);
	if (!(dir = opendir(path)))
		return -1;
	while (n < max && (d = readdir(dir))) {
		unsigned m[6];
		FILE *f;

		if (d->d_name[0] == '.' || strlen(d->d_name) >= IFNAMSIZ)
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%.*s/address", IFNAMSIZ, d->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(line, sizeof(line), f) &&
		    sscanf(line, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6) {
			unsigned flags = 0;
			FILE *ff;

			snprintf(ports[n].name, sizeof(ports[n].name), "%s", d->d_name);
			for (int i = 0; i < 6; i++)
				ports[n].mac[i] = (uint8_t)m[i];
			snprintf(path, sizeof(path), "/sys/class/net/%.*s/flags", IFNAMSIZ, d->d_name);
			if ((ff = fopen(path, "r"))) {
				if (fscanf(ff, "%x", &flags) != 1)
					flags = 0;
				fclose(ff);
			}
			ports[n].up = (flags & IFF_UP) != 0;
			n++;
		}
		fclose(f);
	}
	closedir(dir);
	return n;
}

const struct nm_port *
nm_port_find(const struct nm_port *ports, int n, const uint8_t mac[6])
{
	for (int i = 0; i < n; i++)
		if (memcmp(ports[i].mac + 1, mac + 1, 5) == 0 &&
		    (ports[i].mac[0] == 0xfe || ports[i].mac[0] == mac[0]))
			return &ports[i];
	return NULL;
}

static int
nm_link_up(struct nm_ctx *ctx, const char *port, int up, char *err, size_t errlen)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	char kmsg[160], what[96];
	int ifindex;

	if ((ifindex = nm_ifindex(ctx, port, err, errlen)) < 0)
		return -1;
	nlh = nm_nl_new(ctx, RTM_NEWLINK, 0);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	if (nm_nl_talk(ctx, nlh, kmsg, sizeof(kmsg)) < 0) {
		snprintf(what, sizeof(what), "set %s %s", port, up ? "up" : "down");
		return nm_nl_fail(what, kmsg, err, errlen);
	}
	return 0;
}

#define NM_PORTS_MAX 4096

int
nm_ports_set(struct nm_ctx *ctx, const char *bridge, const uint8_t (*macs)[6], int nmacs,
    int up, char *err, size_t errlen)
{
	static struct nm_port ports[NM_PORTS_MAX];
	int n = nm_ports_list(bridge, ports, NM_PORTS_MAX), done = 0;

	if (n < 0) {
		snprintf(err, errlen, "no bridge %s", bridge);
		return -1;
	}
	err[0] = '\0';
	for (int i = 0; i < nmacs; i++) {
		const struct nm_port *p = nm_port_find(ports, n, macs[i]);

		if (p && nm_link_up(ctx, p->name, up, err, errlen) == 0)
			done++;
	}
	return done;
}

int
nm_port_set(struct nm_ctx *ctx, const char *bridge, const uint8_t mac[6], int up, char *port,
    size_t portlen, char *err, size_t errlen)
{
	static struct nm_port ports[NM_PORTS_MAX];
	int n = nm_ports_list(bridge, ports, NM_PORTS_MAX);
	const struct nm_port *p = n > 0 ? nm_port_find(ports, n, mac) : NULL;

	if (!p) {
		snprintf(err, errlen, "no port of %s carries %02x:%02x:%02x:%02x:%02x:%02x", bridge,
		    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		return -1;
	}
	snprintf(port, portlen, "%s", p->name);
	return nm_link_up(ctx, p->name, up, err, errlen);
}
