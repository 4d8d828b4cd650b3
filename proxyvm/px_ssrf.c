/*
 * px_ssrf.c: CIDR matching and the destination guard (see px_ssrf.h).
 *
 * The built-in table is short and scanned linearly: a dozen prefix
 * comparisons per connect cost nothing next to the connect itself.
 */
#include "proxyvm/px_ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
px_prefix_eq(const uint8_t *a, const uint8_t *b, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));

		return (a[full] & mask) == (b[full] & mask);
	}
	return 1;
}

/* The address bytes of sa, IPv4-mapped IPv6 unwrapped to IPv4. */
static int
px_sa_bytes(const struct sockaddr *sa, const uint8_t **bytes)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET) {
		*bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (memcmp(b, mapped, 12) == 0) {
			*bytes = b + 12;
			return AF_INET;
		}
		*bytes = b;
		return AF_INET6;
	}
	return -1;
}

int
px_cidr_match(const struct px_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *b = NULL;
	int fam = px_sa_bytes(sa, &b);

	return fam == c->family && px_prefix_eq(b, c->addr, c->prefix);
}

int
px_cidr_parse(const char *s, struct px_cidr *out, char *err, size_t errlen)
{
	char buf[64], *slash, *end;
	long prefix;
	int max;

	memset(out, 0, sizeof(*out));
	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "bad network '%s'", s);
		return -1;
	}
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		snprintf(err, errlen, "bad network '%s'", s);
		return -1;
	}
	prefix = max;
	if (slash) {
		prefix = strtol(slash, &end, 10);
		if (end == slash || *end != '\0' || prefix < 0 || prefix > max) {
			snprintf(err, errlen, "bad prefix length in '%s'", s);
			return -1;
		}
	}
	out->prefix = (int)prefix;
	/* Clear host bits so matching compares whole bytes safely. */
	for (int i = 0; i < 16; i++) {
		int keep = (int)prefix - i * 8;

		if (keep <= 0)
			out->addr[i] = 0;
		else if (keep < 8)
			out->addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
	return 0;
}

int
px_ssrf_add(struct px_ssrf *g, int allow, const char *list, char *err, size_t errlen)
{
	char buf[2048], *tok, *save = NULL;
	struct px_cidr *arr = allow ? g->allow : g->deny;
	size_t *n = allow ? &g->nallow : &g->ndeny;

	if (strlen(list) >= sizeof(buf)) {
		snprintf(err, errlen, "network list too long");
		return -1;
	}
	strcpy(buf, list);
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (*n == PX_SSRF_MAX) {
			snprintf(err, errlen, "more than %d networks", PX_SSRF_MAX);
			return -1;
		}
		if (px_cidr_parse(tok, &arr[*n], err, errlen) < 0)
			return -1;
		(*n)++;
	}
	return 0;
}

/* Ranges no customer may reach unless allowed explicitly. */
static const struct {
	const char *net;
	const char *why;
} px_ssrf_builtin[] = {
	{ "169.254.169.254/32", "metadata" },
	{ "fd00:ec2::254/128", "metadata" },
	{ "0.0.0.0/8", "this-network" },
	{ "127.0.0.0/8", "loopback" },
	{ "10.0.0.0/8", "rfc1918" },
	{ "172.16.0.0/12", "rfc1918" },
	{ "192.168.0.0/16", "rfc1918" },
	{ "100.64.0.0/10", "cgnat" },
	{ "169.254.0.0/16", "link-local" },
	{ "192.0.0.0/24", "ietf-special" },
	{ "198.18.0.0/15", "benchmarking" },
	{ "224.0.0.0/4", "multicast" },
	{ "240.0.0.0/4", "reserved" },
	{ "::/128", "unspecified" },
	{ "::1/128", "loopback" },
	{ "fc00::/7", "unique-local" },
	{ "fe80::/10", "link-local" },
	{ "ff00::/8", "multicast" },
	{ "64:ff9b::/96", "nat64" },
	{ "2001:db8::/32", "documentation" },
};

void
px_ssrf_init(struct px_ssrf *g)
{
	char err[64];

	memset(g, 0, sizeof(*g));
	for (size_t i = 0; i < sizeof(px_ssrf_builtin) / sizeof(px_ssrf_builtin[0]); i++)
		if (px_cidr_parse(px_ssrf_builtin[i].net, &g->builtin[i], err, sizeof(err)) == 0)
			g->builtin_why[g->nbuiltin++] = px_ssrf_builtin[i].why;
}

int
px_ssrf_check(const struct px_ssrf *g, const struct sockaddr *sa, const char **why)
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
		*why = "not an IP address";
		return -1;
	}
	for (size_t i = 0; i < g->nallow; i++)
		if (px_cidr_match(&g->allow[i], sa))
			return 0;
	for (size_t i = 0; i < g->ndeny; i++)
		if (px_cidr_match(&g->deny[i], sa)) {
			*why = "deny-list";
			return -1;
		}
	for (size_t i = 0; i < g->nbuiltin; i++) {
		if (px_cidr_match(&g->builtin[i], sa)) {
			*why = g->builtin_why[i];
			return -1;
		}
	}
	return 0;
}
