/*
 * px_svc.c: bind and release the service IPs inside the guest, over
 * rtnetlink (RTM_NEWADDR / RTM_DELADDR with libmnl), for the failover work:
 * a hot standby runs proxyvmd with listeners on IP_FREEBIND sockets and no
 * addresses; promotion binds them (POST /service/bind), fencing releases
 * them (POST /service/release). Announcing the move (gratuitous ARP,
 * unsolicited NA) is netmigrate's job on the host side.
 *
 * One request per address, each acknowledged (NLM_F_ACK): the kernel answers
 * at once, so this runs on the loop. Adding an address that is present, or
 * removing one that is absent, counts as success (idempotent orders).
 */
#include "proxyvm/px.h"
#include "common/util.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

static int
px_svc_one(struct mnl_socket *nl, unsigned ifindex, const struct px_cidr *ip, int add,
    unsigned seq)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	int alen = ip->family == AF_INET ? 4 : 16;
	ssize_t n;

	nlh->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (unsigned char)ip->family;
	ifa->ifa_prefixlen = (unsigned char)ip->prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = ifindex;
	/* IPv6: no DAD, the address is ours the moment we are promoted. */
	ifa->ifa_flags = ip->family == AF_INET6 ? IFA_F_NODAD : 0;
	mnl_attr_put(nlh, IFA_LOCAL, (size_t)alen, ip->addr);
	mnl_attr_put(nlh, IFA_ADDRESS, (size_t)alen, ip->addr);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL) < 0) {
		if ((add && errno == EEXIST) || (!add && errno == EADDRNOTAVAIL))
			return 0;
		return -errno;
	}
	return 0;
}

int
px_svc_apply(const struct px_conf *c, int add, char *err, size_t errlen)
{
	struct mnl_socket *nl;
	unsigned ifindex, seq = (unsigned)time(NULL);
	int rc = 0, r;

	err[0] = '\0';
	if (c->nservice_ips == 0) {
		snprintf(err, errlen, "no [service] ips configured");
		return -1;
	}
	ifindex = if_nametoindex(c->service_dev);
	if (!ifindex) {
		snprintf(err, errlen, "no interface '%s'", c->service_dev);
		return -1;
	}
	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink: %s", strerror(errno));
		if (nl)
			mnl_socket_close(nl);
		return -1;
	}
	for (int i = 0; i < c->nservice_ips; i++) {
		r = px_svc_one(nl, ifindex, &c->service_ips[i], add, seq + (unsigned)i);
		if (r < 0) {
			size_t used = strlen(err);

			snprintf(err + used, errlen - used, "%saddress %d: %s", used ? "; " : "",
			    i + 1, strerror(-r));
			rc = -1;
		}
	}
	mnl_socket_close(nl);
	return rc;
}

int
px_svc_present(const struct px_conf *c)
{
	const struct px_cidr *ip;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, r;

	if (c->nservice_ips == 0)
		return 0;
	/* Binding a socket to an address the kernel does not have fails with
	 * EADDRNOTAVAIL (no IP_FREEBIND here): the cheapest "is it ours". */
	ip = &c->service_ips[0];
	memset(&ss, 0, sizeof(ss));
	if (ip->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ip->addr, 4);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ip->addr, 16);
		len = sizeof(*sin6);
	}
	if ((fd = socket(ip->family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	r = bind(fd, (struct sockaddr *)&ss, len);
	close(fd);
	return r == 0;
}
