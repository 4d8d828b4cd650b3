/*
 * nm_ctx.c: the context's two sockets, and sending announcements.
 *
 * One PF_PACKET socket sends every announcement on every interface (the
 * keepalived recipe, vrrp_arp.c): it is opened with protocol 0 and a BPF
 * program that drops everything, so the kernel never queues a received
 * frame on it; frames carry their own Ethernet header and go out with
 * sendto() to the interface index in a sockaddr_ll.
 *
 * IPv6 NAs go through the same socket rather than a raw ICMPv6 socket, for
 * the reason GARP does: a raw ICMPv6 socket would send from the host's MAC
 * and could not use the VM's address as source without IPV6_FREEBIND
 * games, while the point of the announcement is the VM's MAC in the frame.
 * The price is computing the ICMPv6 checksum ourselves (nm_pkt.c).
 *
 * A context may live in another network namespace (/run/netns/NAME): the
 * sockets are created after setns() and keep that namespace after the
 * thread switches back, so one process can drive several namespaces.
 */
#include "netmigrate/nm_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int
nm_ctx_sockets(struct nm_ctx *ctx, char *err, size_t errlen)
{
	struct sock_filter drop_all[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { 1, drop_all };
	int one = 1;

	ctx->nl = mnl_socket_open(NETLINK_ROUTE);
	if (!ctx->nl || mnl_socket_bind(ctx->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink socket: %s", strerror(errno));
		return -1;
	}
	/* Extended acks: the kernel's own words on a refused request. */
	(void)mnl_socket_setsockopt(ctx->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	ctx->portid = mnl_socket_get_portid(ctx->nl);
	ctx->pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (ctx->pkt < 0) {
		snprintf(err, errlen, "packet socket: %s%s", strerror(errno),
		    errno == EPERM ? " (needs CAP_NET_RAW)" : "");
		return -1;
	}
	if (setsockopt(ctx->pkt, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
		snprintf(err, errlen, "packet socket filter: %s", strerror(errno));
		return -1;
	}
	return 0;
}

struct nm_ctx *
nm_ctx_open(const char *netns, char *err, size_t errlen)
{
	struct nm_ctx *ctx;
	char path[300];
	int self = -1, target = -1, r;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctx->pkt = -1;
	ctx->seq = (unsigned)getpid() << 12;
	if (!netns || !*netns) {
		if (nm_ctx_sockets(ctx, err, errlen) < 0)
			goto fail;
		return ctx;
	}
	snprintf(path, sizeof(path), "/run/netns/%s", netns);
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		snprintf(err, errlen, "no such network namespace '%s'", netns);
		goto fail;
	}
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || setns(target, CLONE_NEWNET) < 0) {
		snprintf(err, errlen, "enter network namespace '%s': %s", netns, strerror(errno));
		goto fail;
	}
	r = nm_ctx_sockets(ctx, err, errlen);
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Stuck in the wrong namespace: nothing sane is left to do. */
		snprintf(err, errlen, "return from network namespace '%s': %s", netns,
		    strerror(errno));
		goto fail;
	}
	if (r < 0)
		goto fail;
	close(self);
	close(target);
	return ctx;
fail:
	if (self >= 0)
		close(self);
	if (target >= 0)
		close(target);
	nm_ctx_free(ctx);
	return NULL;
}

void
nm_ctx_free(struct nm_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->nl)
		mnl_socket_close(ctx->nl);
	if (ctx->mon)
		mnl_socket_close(ctx->mon);
	if (ctx->pkt >= 0)
		close(ctx->pkt);
	free(ctx);
}

int
nm_if_lookup(struct nm_ctx *ctx, const char *name, int *ifindex, unsigned *flags, char *err,
    size_t errlen)
{
	struct ifreq ifr;

	if (!name || !*name || strlen(name) >= IFNAMSIZ) {
		snprintf(err, errlen, "bad interface name '%s'", name ? name : "");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(ctx->pkt, SIOCGIFINDEX, &ifr) < 0) {
		if (errno == ENODEV)
			snprintf(err, errlen, "no such device '%s'", name);
		else
			snprintf(err, errlen, "interface '%s': %s", name, strerror(errno));
		return -1;
	}
	*ifindex = ifr.ifr_ifindex;
	if (flags) {
		if (ioctl(ctx->pkt, SIOCGIFFLAGS, &ifr) < 0) {
			snprintf(err, errlen, "interface '%s' flags: %s", name, strerror(errno));
			return -1;
		}
		*flags = (unsigned)(unsigned short)ifr.ifr_flags;
	}
	return 0;
}

int
nm_ifindex(struct nm_ctx *ctx, const char *name, char *err, size_t errlen)
{
	int ifindex;

	if (nm_if_lookup(ctx, name, &ifindex, NULL, err, errlen) < 0)
		return -1;
	return ifindex;
}

static int
nm_send_frame(struct nm_ctx *ctx, int ifindex, const char *dev, const uint8_t *frame,
    int len, char *err, size_t errlen)
{
	struct sockaddr_ll sll;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifindex;
	sll.sll_protocol = (uint16_t)(frame[12] << 8 | frame[13]);
	sll.sll_protocol = htons(sll.sll_protocol);
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, frame, 6);
	if (sendto(ctx->pkt, frame, (size_t)len, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		if (errno == ENETDOWN)
			snprintf(err, errlen, "interface '%s' is down", dev);
		else
			snprintf(err, errlen, "send on '%s': %s", dev, strerror(errno));
		return -1;
	}
	return 0;
}

int
nm_announce(struct nm_ctx *ctx, const char *dev, const uint8_t mac[6], const struct nm_ip *ips,
    int nips, enum nm_arp_form form, int *skipped, char *err, size_t errlen)
{
	uint8_t frame[NM_NA_FRAME_LEN];
	unsigned flags;
	int ifindex, i, n, sent = 0;

	if (skipped)
		*skipped = 0;
	if ((form & NM_ARP_BOTH) == 0) {
		snprintf(err, errlen, "no ARP form chosen");
		return -1;
	}
	if (nm_if_lookup(ctx, dev, &ifindex, &flags, err, errlen) < 0)
		return -1;
	/* An IFF_NOARP link (a tunnel, a point-to-point device) has no
	 * neighbour cache to update: nothing to announce, as keepalived does. */
	if (flags & IFF_NOARP) {
		if (skipped)
			*skipped = 1;
		return 0;
	}
	if (!(flags & IFF_UP)) {
		snprintf(err, errlen, "interface '%s' is down", dev);
		return -1;
	}
	for (i = 0; i < nips; i++) {
		if (ips[i].family == AF_INET6) {
			n = nm_na_build(frame, sizeof(frame), mac, &ips[i].a.v6);
			if (nm_send_frame(ctx, ifindex, dev, frame, n, err, errlen) < 0)
				return -1;
			sent++;
			continue;
		}
		if (form & NM_ARP_REQUEST) {
			n = nm_arp_build(frame, sizeof(frame), mac, ips[i].a.v4, NM_ARP_REQUEST);
			if (nm_send_frame(ctx, ifindex, dev, frame, n, err, errlen) < 0)
				return -1;
			sent++;
		}
		if (form & NM_ARP_REPLY) {
			n = nm_arp_build(frame, sizeof(frame), mac, ips[i].a.v4, NM_ARP_REPLY);
			if (nm_send_frame(ctx, ifindex, dev, frame, n, err, errlen) < 0)
				return -1;
			sent++;
		}
	}
	return sent;
}
