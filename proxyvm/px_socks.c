/*
 * px_socks.c: SOCKS5 parsing and replies (see px_socks.h).
 *
 * Each parser looks only at the bytes it is given and says MORE until a
 * whole frame is there, so the caller can feed whatever the socket returned
 * and never needs to know frame sizes itself.
 */
#include "proxyvm/px_socks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

int
px_socks_parse_greeting(const uint8_t *p, size_t n, size_t *used, unsigned *methods)
{
	if (n < 1)
		return PX_SOCKS_MORE;
	if (p[0] != 5)
		return PX_SOCKS_ERR;
	if (n < 2)
		return PX_SOCKS_MORE;
	if (p[1] == 0)
		return PX_SOCKS_ERR;
	if (n < 2u + p[1])
		return PX_SOCKS_MORE;
	*methods = 0;
	for (unsigned i = 0; i < p[1]; i++)
		if (p[2 + i] < 8)
			*methods |= 1u << p[2 + i];
	*used = 2u + p[1];
	return PX_SOCKS_DONE;
}

int
px_socks_parse_userpass(const uint8_t *p, size_t n, size_t *used, char user[256],
    char pass[256])
{
	size_t ulen, plen;

	if (n < 1)
		return PX_SOCKS_MORE;
	if (p[0] != 1)
		return PX_SOCKS_ERR;
	if (n < 2)
		return PX_SOCKS_MORE;
	ulen = p[1];
	if (ulen == 0)
		return PX_SOCKS_ERR;
	if (n < 3 + ulen)
		return PX_SOCKS_MORE;
	plen = p[2 + ulen];
	if (n < 3 + ulen + plen)
		return PX_SOCKS_MORE;
	if (memchr(p + 2, 0, ulen) || memchr(p + 3 + ulen, 0, plen))
		return PX_SOCKS_ERR;
	memcpy(user, p + 2, ulen);
	user[ulen] = '\0';
	memcpy(pass, p + 3 + ulen, plen);
	pass[plen] = '\0';
	*used = 3 + ulen + plen;
	return PX_SOCKS_DONE;
}

/* A domain name we are willing to resolve: LDH labels, dots, underscores. */
static int
px_socks_name_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return n > 0;
}

int
px_socks_parse_request(const uint8_t *p, size_t n, size_t *used, struct px_socks_req *r,
    uint8_t *rep)
{
	size_t alen, need;

	memset(r, 0, sizeof(*r));
	*rep = 0xff;
	if (n < 1)
		return PX_SOCKS_MORE;
	if (p[0] != 5)
		return PX_SOCKS_ERR;
	if (n < 5)
		return PX_SOCKS_MORE;
	r->cmd = p[1];
	r->atyp = p[3];
	switch (r->atyp) {
	case PX_SOCKS_ATYP_IPV4:
		alen = 4;
		need = 4 + 4 + 2;
		break;
	case PX_SOCKS_ATYP_IPV6:
		alen = 16;
		need = 4 + 16 + 2;
		break;
	case PX_SOCKS_ATYP_DOMAIN:
		alen = p[4];
		need = 5 + alen + 2;
		break;
	default:
		*rep = PX_SOCKS_ATYP_UNSUPP;
		return PX_SOCKS_ERR;
	}
	if (n < need)
		return PX_SOCKS_MORE;
	r->port = (uint16_t)(p[need - 2] << 8 | p[need - 1]);
	if (r->atyp == PX_SOCKS_ATYP_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&r->addr;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, p + 4, 4);
		sin->sin_port = htons(r->port);
		inet_ntop(AF_INET, &sin->sin_addr, r->host, sizeof(r->host));
	} else if (r->atyp == PX_SOCKS_ATYP_IPV6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->addr;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, p + 4, 16);
		sin6->sin6_port = htons(r->port);
		inet_ntop(AF_INET6, &sin6->sin6_addr, r->host, sizeof(r->host));
	} else {
		if (!px_socks_name_ok(p + 5, alen)) {
			*rep = PX_SOCKS_HOSTUNREACH;
			return PX_SOCKS_ERR;
		}
		memcpy(r->host, p + 5, alen);
		r->host[alen] = '\0';
	}
	(void)alen;
	if (r->port == 0) {
		*rep = PX_SOCKS_HOSTUNREACH;
		return PX_SOCKS_ERR;
	}
	*used = need;
	return PX_SOCKS_DONE;
}

/* The one errno-to-reply table. */
static const struct {
	int err;
	enum px_socks_rep rep;
} px_socks_errmap[] = {
	{ 0, PX_SOCKS_OK },
	{ EACCES, PX_SOCKS_RULESET },
	{ EPERM, PX_SOCKS_RULESET },
	{ ENETUNREACH, PX_SOCKS_NETUNREACH },
	{ ENETDOWN, PX_SOCKS_NETUNREACH },
	{ EHOSTUNREACH, PX_SOCKS_HOSTUNREACH },
	{ EHOSTDOWN, PX_SOCKS_HOSTUNREACH },
	{ ENOENT, PX_SOCKS_HOSTUNREACH },	/* name did not resolve */
	{ ECONNREFUSED, PX_SOCKS_REFUSED },
	{ ETIMEDOUT, PX_SOCKS_TTL },
	{ EAFNOSUPPORT, PX_SOCKS_ATYP_UNSUPP },
	{ EOPNOTSUPP, PX_SOCKS_CMD_UNSUPP },
};

enum px_socks_rep
px_socks_rep_from_errno(int err)
{
	for (size_t i = 0; i < sizeof(px_socks_errmap) / sizeof(px_socks_errmap[0]); i++)
		if (px_socks_errmap[i].err == err)
			return px_socks_errmap[i].rep;
	return PX_SOCKS_FAIL;
}

const char *
px_socks_rep_str(enum px_socks_rep rep)
{
	static const char *const s[] = {
		"succeeded", "general failure", "not allowed by ruleset",
		"network unreachable", "host unreachable", "connection refused",
		"TTL expired", "command not supported", "address type not supported",
	};

	return (unsigned)rep < sizeof(s) / sizeof(s[0]) ? s[rep] : "unknown";
}

size_t
px_socks_reply(uint8_t *out, enum px_socks_rep rep, const struct sockaddr *bound)
{
	out[0] = 5;
	out[1] = (uint8_t)rep;
	out[2] = 0;
	if (bound && bound->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)bound;

		out[3] = PX_SOCKS_ATYP_IPV6;
		memcpy(out + 4, &s6->sin6_addr, 16);
		memcpy(out + 20, &s6->sin6_port, 2);
		return 22;
	}
	out[3] = PX_SOCKS_ATYP_IPV4;
	if (bound && bound->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)bound;

		memcpy(out + 4, &s4->sin_addr, 4);
		memcpy(out + 8, &s4->sin_port, 2);
	} else {
		memset(out + 4, 0, 6);
	}
	return 10;
}
