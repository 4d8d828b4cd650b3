/*
 * nm_int.h: libnetmigrate's private parts, shared by its own files only.
 */
#ifndef PF_NM_INT_H
#define PF_NM_INT_H

#include <libmnl/libmnl.h>

#include "netmigrate/nm.h"

struct nm_ctx {
	struct mnl_socket *nl;	/* rtnetlink, in the context's namespace */
	struct mnl_socket *mon;	/* route and neighbour events (nm_monitor_open), or NULL */
	unsigned portid;
	unsigned seq;
	int pkt;		/* PF_PACKET, send-only */
	char buf[8192];		/* one request or ack at a time */
};

/* Interface index and flags of name through the packet socket (so in the
 * context's namespace). -1 with "no such device 'x'". */
int nm_if_lookup(struct nm_ctx *ctx, const char *name, int *ifindex, unsigned *flags,
    char *err, size_t errlen);

#endif
