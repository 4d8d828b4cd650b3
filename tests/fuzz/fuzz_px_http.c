/*
 * fuzz_px_http.c: libFuzzer target for the HTTP parser. The first byte picks
 * the mode (request, response, response to HEAD); the rest is parsed as a
 * head, its target split, every field asked whether it is hop-by-hop, and
 * whatever follows the head fed to the chunked scanner in uneven pieces.
 * Invariants checked: the head length fits the input, spans stay inside it,
 * the scanner never claims more bytes than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyvm/px_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
px_fuzz_span(struct px_span s, const char *buf, size_t len)
{
	if (s.n && (s.p < buf || s.p + s.n > buf + len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_hdr hdrs[64];
	struct px_http_head h;
	struct px_uri u;
	struct px_chunk ck;
	const char *why, *buf;
	char *copy;
	int flags, rc;

	if (size < 1)
		return 0;
	flags = data[0] % 3 == 0 ? 0 : data[0] % 3 == 1 ? PX_HTTP_RESPONSE :
	    PX_HTTP_RESPONSE | PX_HTTP_HEAD_REQ;
	/* An exact-size heap copy so ASan sees any read past the end. */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	buf = copy;
	size--;
	rc = px_http_parse_head(buf, size, flags, 2048, hdrs, 64, &h);
	if (rc == PX_HTTP_DONE) {
		if (h.len > size || h.nhdrs > 64)
			abort();
		for (size_t i = 0; i < h.nhdrs; i++) {
			px_fuzz_span(h.hdrs[i].name, buf, size);
			px_fuzz_span(h.hdrs[i].value, buf, size);
			(void)px_http_hdr_is_hop(&h, i);
		}
		if (!(flags & PX_HTTP_RESPONSE)) {
			px_fuzz_span(h.target, buf, size);
			if (px_http_parse_target(h.target, h.is_connect, &u, &why) == 0) {
				px_fuzz_span(u.host, buf, size);
				px_fuzz_span(u.authority, buf, size);
				if (u.port == 0)
					abort();
			}
		}
		memset(&ck, 0, sizeof(ck));
		for (size_t off = h.len, step = 1; off < size && !ck.done; step = step * 3 % 17 + 1) {
			size_t n = size - off < step ? size - off : step;
			ssize_t r = px_chunk_feed(&ck, buf + off, n);

			if (r < 0)
				break;
			if ((size_t)r > n)
				abort();
			off += (size_t)r;
		}
	} else if (rc == PX_HTTP_ERR) {
		if (h.err_status < 400 || !h.err_why)
			abort();
	}
	free(copy);
	return 0;
}
