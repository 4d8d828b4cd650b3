/*
 * nm.h: libnetmigrate, the network-state handover library.
 *
 * What a moving proxy VM needs from the network, as plain calls:
 *   - announcements on behalf of the VM's MAC: IPv4 gratuitous ARP (request
 *     and reply forms) and IPv6 unsolicited neighbour advertisements, sent in
 *     bursts on a schedule in the manner of QEMU's announce parameters;
 *   - host routes (/32, /128), neighbour and proxy-neighbour entries over
 *     netlink (libmnl), all idempotent;
 *   - the handover plan built on them: prepare, announce, withdraw.
 *
 * The library never logs and never exits: every call returns 0 (or a count)
 * or -1 with one line in the caller's error buffer. It keeps no globals; all
 * state lives in a struct nm_ctx. Calls are synchronous but local and short
 * (a netlink request and its ack, a sendto on a packet socket), so a daemon
 * may call them from its event loop; burst timing belongs to the caller
 * (nm_sched_delay_ms() says when the next round is due). Not thread-safe:
 * one thread per nm_ctx.
 */
#ifndef PF_NM_H
#define PF_NM_H

#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Addresses */

struct nm_ip {
	int family;	/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} a;
};

#define NM_IPSTR_MAX 46	/* INET6_ADDRSTRLEN */
#define NM_MACSTR_MAX 18

/* Parse a bare IPv4 or IPv6 address (no prefix). 0, or -1 with
 * "bad IP address 'x'" in err. */
int nm_ip_parse(const char *s, struct nm_ip *ip, char *err, size_t errlen);
/* Format ip into buf (at least NM_IPSTR_MAX bytes); returns buf. */
const char *nm_ip_fmt(const struct nm_ip *ip, char *buf, size_t len);
/* Parse "aa:bb:cc:dd:ee:ff". Refuses multicast and all-zero MACs, which can
 * never be a VM's address. 0, or -1 with a message in err. */
int nm_mac_parse(const char *s, uint8_t mac[6], char *err, size_t errlen);
const char *nm_mac_fmt(const uint8_t mac[6], char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Frames (pure functions, no I/O) */

#define NM_ARP_FRAME_LEN 42	/* Ethernet header + ARP for IPv4 over Ethernet */
#define NM_NA_FRAME_LEN 86	/* Ethernet + IPv6 + NA + target link-layer option */

enum nm_arp_form {
	NM_ARP_REQUEST = 1,	/* RFC 5227 section 3 announcement */
	NM_ARP_REPLY = 2,	/* RFC 5944 section 4.6 gratuitous reply */
	NM_ARP_BOTH = 3,
};

/* Build a broadcast gratuitous ARP frame: sender hardware = mac, sender IP =
 * target IP = ip. op is NM_ARP_REQUEST or NM_ARP_REPLY. Returns the frame
 * length (NM_ARP_FRAME_LEN), or -1 when len is too small. */
int nm_arp_build(uint8_t *buf, size_t len, const uint8_t mac[6], struct in_addr ip,
    enum nm_arp_form op);
/* Build an unsolicited neighbour advertisement from ip (on behalf of mac) to
 * ff02::1, hop limit 255, Override set, with the ICMPv6 checksum filled in.
 * Returns NM_NA_FRAME_LEN, or -1 when len is too small. */
int nm_na_build(uint8_t *buf, size_t len, const uint8_t mac[6], const struct in6_addr *ip);
/* The Internet checksum of an ICMPv6 message with its IPv6 pseudo-header
 * (RFC 8200 section 8.1); msg's checksum field must be zero, or the result
 * is 0 when it is already correct. */
uint16_t nm_icmp6_csum(const struct in6_addr *src, const struct in6_addr *dst,
    const uint8_t *msg, size_t len);

/* ------------------------------------------------------------------ */
/* Burst schedule, QEMU's announce-* parameters */

struct nm_sched {
	int initial_ms;	/* gap after the first round (sent at once) */
	int step_ms;	/* each further gap grows by step */
	int max_ms;	/* no gap is longer than max */
	int rounds;	/* rounds in all, >= 1 */
};

#define NM_SCHED_DEFAULT { 50, 100, 550, 5 }

/* 0, or -1 with a message when a field is out of range. */
int nm_sched_check(const struct nm_sched *s, char *err, size_t errlen);
/* The delay after round `round` (0-based) before the next one, or -1 when
 * round is the last: min(initial + round * step, max). */
int nm_sched_delay_ms(const struct nm_sched *s, int round);

/* ------------------------------------------------------------------ */
/* The context: a netlink socket and a packet socket */

struct nm_ctx;

/*
 * Open the sockets, inside network namespace netns (a name under
 * /run/netns) when it is not NULL, else in the caller's own. The sockets
 * stay in that namespace; the calling thread returns to its own before this
 * returns. NULL with a message in err (e.g. "operation not permitted"
 * without CAP_NET_ADMIN / CAP_NET_RAW). Free with nm_ctx_free (accepts NULL).
 */
struct nm_ctx *nm_ctx_open(const char *netns, char *err, size_t errlen);
void nm_ctx_free(struct nm_ctx *ctx);

/* Interface index of name in the context's namespace, or -1 with
 * "no such device 'x'". */
int nm_ifindex(struct nm_ctx *ctx, const char *name, char *err, size_t errlen);

/*
 * Send one announcement round on interface dev for each of ips, on behalf of
 * mac: gratuitous ARP in the given form(s) for IPv4, an unsolicited NA for
 * IPv6. Returns the number of frames sent (0 when dev is IFF_NOARP: nothing
 * to announce there, *skipped is set), or -1 with a message ("no such
 * device 'x'", "interface 'x' is down").
 */
int nm_announce(struct nm_ctx *ctx, const char *dev, const uint8_t mac[6],
    const struct nm_ip *ips, int nips, enum nm_arp_form form, int *skipped,
    char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Netlink: host routes, neighbours, proxy entries. All idempotent:
 * set = add or replace, del of something absent succeeds. */

/* The routing protocol number marking routes netmigrate installed. */
#define NM_RTPROT 77

/*
 * Route dst/32 (/128): via gw (may be NULL) and/or out of dev (may be NULL;
 * one of the two is required). 0 or -1 with a message.
 */
int nm_route_set(struct nm_ctx *ctx, const struct nm_ip *dst, const struct nm_ip *gw,
    const char *dev, char *err, size_t errlen);
/* Delete dst/32 (/128); when gw or dev is given, only a route through them.
 * 0 when deleted or already absent (*gone = 1 in that case when not NULL). */
int nm_route_del(struct nm_ctx *ctx, const struct nm_ip *dst, const struct nm_ip *gw,
    const char *dev, int *gone, char *err, size_t errlen);
/*
 * Delete every host route carrying protocol NM_RTPROT (all that netmigrate
 * installed, in this or an earlier run): the fencing hammer. The deleted
 * destinations go to dst (at most max of them). Returns how many, or -1.
 */
int nm_route_flush(struct nm_ctx *ctx, struct nm_ip *dst, int max, char *err,
    size_t errlen);
/*
 * Set the bridge port of the VM with this MAC up or down (the port is
 * named in port). Down is how a host fences a VM without the guest's help:
 * no frame in or out, so it neither answers ARP nor serves. 0, or -1 with
 * err ("no port of br0 carries 52:54:00:..").
 */
int nm_port_set(struct nm_ctx *ctx, const char *bridge, const uint8_t mac[6], int up,
    char *port, size_t portlen, char *err, size_t errlen);
/* A bridge port and whether it is up. */
struct nm_port {
	char name[IFNAMSIZ];
	uint8_t mac[6];
	int up;
};
/* The ports of bridge (at most max): how many, or -1 when there is no such
 * bridge. Read from sysfs, in the caller's namespace. */
int nm_ports_list(const char *bridge, struct nm_port *ports, int max);
/* The port carrying a VM's MAC (a tap has the guest's MAC with the first
 * octet 0xfe), or NULL. */
const struct nm_port *nm_port_find(const struct nm_port *ports, int n, const uint8_t mac[6]);
/* The same for many VMs, reading the bridge's ports once (the fence's
 * deadline is short): how many were set, or -1 with err. */
int nm_ports_set(struct nm_ctx *ctx, const char *bridge, const uint8_t (*macs)[6], int nmacs,
    int up, char *err, size_t errlen);
/* A host route netmigrate installed (protocol NM_RTPROT, main table). */
struct nm_route {
	struct nm_ip dst;
	int has_gw;
	struct nm_ip gw;
	int oif;	/* 0: none */
};
/* netmigrate's host routes (at most max): how many, or -1. */
int nm_route_list(struct nm_ctx *ctx, struct nm_route *out, int max, char *err,
    size_t errlen);
/* A neighbour entry of one device (proxy entries are not listed). */
struct nm_neigh {
	struct nm_ip ip;
	int has_mac;
	uint8_t mac[6];
	int permanent;
};
/* dev's neighbour entries (at most max): how many, or -1. */
int nm_neigh_list(struct nm_ctx *ctx, const char *dev, struct nm_neigh *out, int max,
    char *err, size_t errlen);

/*
 * Events: a second netlink socket, subscribed to host route and neighbour
 * changes, so a caller that keeps the kernel at a desired state hears at
 * once when something else changed it. Open it from the namespace the
 * context lives in; it is non-blocking (poll its fd, then read).
 */
enum nm_ev_kind { NM_EV_ROUTE_NEW, NM_EV_ROUTE_DEL, NM_EV_NEIGH_NEW, NM_EV_NEIGH_DEL,
	NM_EV_LOST };
struct nm_event {
	enum nm_ev_kind kind;	/* NM_EV_LOST: the kernel dropped events (look again) */
	struct nm_ip ip;	/* a /32 or /128 route's destination, a neighbour's IP */
	int ours;		/* route: protocol NM_RTPROT; neighbour: permanent */
};
typedef void nm_event_fn(const struct nm_event *ev, void *arg);
/* The monitor's fd (opened on the first call), or -1 with err. */
int nm_monitor_open(struct nm_ctx *ctx, char *err, size_t errlen);
/* Run fn on every pending event: how many, or -1 (not open, socket error). */
int nm_monitor_read(struct nm_ctx *ctx, nm_event_fn *fn, void *arg);

/* A permanent neighbour entry ip -> mac on dev. */
int nm_neigh_set(struct nm_ctx *ctx, const struct nm_ip *ip, const uint8_t mac[6],
    const char *dev, char *err, size_t errlen);
int nm_neigh_del(struct nm_ctx *ctx, const struct nm_ip *ip, const char *dev, char *err,
    size_t errlen);
/* A proxy entry: dev answers ARP / NS for ip (ip neigh add proxy). */
int nm_proxy_set(struct nm_ctx *ctx, const struct nm_ip *ip, const char *dev, char *err,
    size_t errlen);
int nm_proxy_del(struct nm_ctx *ctx, const struct nm_ip *ip, const char *dev, char *err,
    size_t errlen);

/* ------------------------------------------------------------------ */
/* Orders and the handover plan */

#define NM_ORDER_MAX_IPS 256
#define NM_ID_MAX 64

enum nm_op { NM_OP_PREPARE, NM_OP_ANNOUNCE, NM_OP_WITHDRAW, NM_OP_FENCE, NM_OP_UNFENCE, NM_OP_UNROUTE };

/* One handover order, as carried by pf:host:<host>:orders. */
struct nm_order {
	char id[NM_ID_MAX];
	enum nm_op op;
	char vm[NM_ID_MAX];
	int nips;
	struct nm_ip ips[NM_ORDER_MAX_IPS];
	int has_mac;
	uint8_t mac[6];
	char dev[IFNAMSIZ];	/* "" = the caller's default */
	int has_via;
	struct nm_ip via;
	uint64_t epoch;		/* the controller's fencing token; 0 = none given */
	uint64_t seq;		/* the statement's number within its epoch; 0 = none */
	uint64_t gen;		/* the host's lease generation the controller planned for */
};

const char *nm_op_name(enum nm_op op);
/* Parse "a,b,c" into ips (at most max). Returns the count or -1. */
int nm_ips_parse(const char *s, struct nm_ip *ips, int max, char *err, size_t errlen);
/*
 * Fill o from the field/value pairs of a stream entry (fv[0] = field,
 * fv[1] = value, ...; n = number of strings). Unknown fields are ignored
 * (forward compatibility); id, op, vm and ips are required; epoch, seq
 * and gen are optional (decimals > 0; absent or empty = 0). 0, or -1 with
 * the first problem in err ("missing field 'op'", "unknown op 'x'", ...).
 */
int nm_order_parse(struct nm_order *o, const char *const *fv, size_t n, char *err,
    size_t errlen);

/*
 * The plan's steps. A host's "dev" is its VM bridge; an edge's is optional.
 *
 * nm_plan_prepare (destination host): route each IP to dev; when the order
 *   has a mac, a permanent neighbour entry IP -> mac; when it has via (the
 *   VM's gateway), a proxy entry for via on dev so the VM still reaches it.
 * nm_plan_withdraw (source host): the inverse of prepare.
 * nm_plan_point (edge): route each IP via the order's via (required).
 * nm_plan_unpoint (edge): delete those routes (only through via, if given).
 * Each returns the number of kernel objects touched, or -1 at the first
 * error (with what was done so far left in place: every step is idempotent,
 * so the caller retries or withdraws).
 */
int nm_plan_prepare(struct nm_ctx *ctx, const struct nm_order *o, const char *dev,
    char *err, size_t errlen);
int nm_plan_withdraw(struct nm_ctx *ctx, const struct nm_order *o, const char *dev,
    char *err, size_t errlen);
int nm_plan_point(struct nm_ctx *ctx, const struct nm_order *o, const char *dev,
    char *err, size_t errlen);
int nm_plan_unpoint(struct nm_ctx *ctx, const struct nm_order *o, const char *dev,
    char *err, size_t errlen);

#endif
