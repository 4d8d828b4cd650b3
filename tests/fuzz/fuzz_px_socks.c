/*
 * fuzz_px_socks.c: libFuzzer target for the SOCKS5 parsers, run the way the
 * proxy runs them: greeting, then (per the first byte) user/password, then
 * the request, each on the bytes the previous one left; every prefix length
 * is tried so MORE answers are exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyvm/px_socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_socks_req r;
	char user[256], pass[256];
	uint8_t *copy, rep, out[32];
	size_t used = 0, off;
	unsigned methods;
	int auth;

	if (size < 1)
		return 0;
	auth = data[0] & 1;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	size--;
	for (size_t n = 0; n <= size && n < 64; n++)
		(void)px_socks_parse_greeting(copy, n, &used, &methods);
	if (px_socks_parse_greeting(copy, size, &used, &methods) != PX_SOCKS_DONE)
		goto out;
	if (used > size)
		abort();
	off = used;
	if (auth) {
		if (px_socks_parse_userpass(copy + off, size - off, &used, user, pass) !=
		    PX_SOCKS_DONE)
			goto out;
		if (used > size - off || strlen(user) > 255 || strlen(pass) > 255)
			abort();
		off += used;
	}
	if (px_socks_parse_request(copy + off, size - off, &used, &r, &rep) == PX_SOCKS_DONE) {
		if (used > size - off || strlen(r.host) > 255)
			abort();
		if (px_socks_reply(out, PX_SOCKS_OK, (struct sockaddr *)&r.addr) > 22)
			abort();
	}
	(void)px_socks_rep_str((enum px_socks_rep)rep);
out:
	free(copy);
	return 0;
}
