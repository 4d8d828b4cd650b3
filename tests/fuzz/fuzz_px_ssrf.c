/*
 * fuzz_px_ssrf.c: libFuzzer target for the CIDR parser and the guard. The
 * input is split at its first NUL: the text before it is a network list
 * for the allow list (parsed as the config would), the bytes after it an
 * address (4 bytes: IPv4, 16: IPv6) checked against the guard. Invariant:
 * a refusal always names its reason; a parsed CIDR matches its own address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyvm/px_ssrf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct px_ssrf g;
	struct sockaddr_storage ss;
	const uint8_t *nul = memchr(data, 0, size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	char text[512], err[128];
	const char *why = NULL;
	struct px_cidr c;

	if (tlen >= sizeof(text))
		return 0;
	memcpy(text, data, tlen);
	text[tlen] = '\0';
	px_ssrf_init(&g);
	(void)px_ssrf_add(&g, 1, text, err, sizeof(err));
	if (px_cidr_parse(text, &c, err, sizeof(err)) == 0) {
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)c.family;
		if (c.family == AF_INET)
			memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c.addr, 4);
		else
			memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c.addr, 16);
		/* A mapped IPv6 network is matched as IPv4: skip those. */
		if (!(c.family == AF_INET6 && c.addr[10] == 0xff && c.addr[11] == 0xff &&
		    !memcmp(c.addr, "\0\0\0\0\0\0\0\0\0\0", 10)) &&
		    !px_cidr_match(&c, (struct sockaddr *)&ss))
			abort();
	}
	if (!nul)
		return 0;
	memset(&ss, 0, sizeof(ss));
	size -= tlen + 1;
	if (size == 4) {
		ss.ss_family = AF_INET;
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, nul + 1, 4);
	} else if (size == 16) {
		ss.ss_family = AF_INET6;
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, nul + 1, 16);
	} else {
		return 0;
	}
	if (px_ssrf_check(&g, (struct sockaddr *)&ss, &why) < 0 && !why)
		abort();
	return 0;
}
