/*
 * px_ssrf.h: the destination guard. Decides, for an address the proxy is
 * about to connect to (after DNS resolution, so a name that resolves to an
 * internal address is caught: no rebinding bypass), whether it is allowed.
 *
 * Order: the allow list wins, then the deny list (management networks), then
 * the built-in ranges no customer may reach (loopback, link-local with the
 * cloud metadata address, RFC 1918, CGNAT, unique-local, multicast, ...).
 * IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 * Pure code: no I/O, no allocation, no logging.
 */
#ifndef PX_SSRF_H
#define PX_SSRF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct px_cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network byte order; 4 used for AF_INET */
	int prefix;
};

#define PX_SSRF_MAX 64

struct px_ssrf {
	struct px_cidr allow[PX_SSRF_MAX];
	size_t nallow;
	struct px_cidr deny[PX_SSRF_MAX];
	size_t ndeny;
	struct px_cidr builtin[24];	/* filled by px_ssrf_init() */
	const char *builtin_why[24];
	size_t nbuiltin;
};

/* Empty allow and deny lists plus the built-in ranges. Call first. */
void px_ssrf_init(struct px_ssrf *g);

/* "10.0.0.0/8", "fd00::/8", or a bare address (a host route). Host bits
 * are cleared. 0, or -1 with a message in err. */
int px_cidr_parse(const char *s, struct px_cidr *out, char *err, size_t errlen);

/* 1 when sa (AF_INET or AF_INET6, mapped addresses unwrapped) is inside c. */
int px_cidr_match(const struct px_cidr *c, const struct sockaddr *sa);

/* Add a comma- or space-separated list of CIDRs to the allow (allow = 1) or
 * deny list. 0, or -1 with a message in err (bad CIDR, list full). */
int px_ssrf_add(struct px_ssrf *g, int allow, const char *list, char *err, size_t errlen);

/*
 * 0 when the guard lets sa through; -1 when it refuses, with *why naming the
 * range ("loopback", "rfc1918", "metadata", "deny-list", ...).
 */
int px_ssrf_check(const struct px_ssrf *g, const struct sockaddr *sa, const char **why);

#endif
