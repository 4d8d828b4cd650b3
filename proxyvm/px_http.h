/*
 * px_http.h: HTTP/1.1 message-head parser and chunked-body scanner.
 *
 * Pure code: no I/O, no allocation, no logging, so it can be unit-tested and
 * fuzzed on its own. The parser works on a contiguous buffer holding the start
 * of a message; it never copies: every field is a span into that buffer, valid
 * as long as the buffer is. The proxy streams bodies verbatim, so the chunked
 * scanner only finds where a chunked body ends; it never decodes into memory.
 */
#ifndef PX_HTTP_H
#define PX_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { PX_HTTP_ERR = -1, PX_HTTP_DONE = 0, PX_HTTP_MORE = 1 };

/* How the body of a message is delimited (RFC 9112 section 6.3). */
enum px_body {
	PX_BODY_NONE,
	PX_BODY_LENGTH,		/* Content-Length bytes */
	PX_BODY_CHUNKED,	/* chunked transfer coding, ends with its last chunk */
	PX_BODY_CLOSE,		/* until the sender closes (responses only) */
};

struct px_span {
	const char *p;
	size_t n;
};

struct px_hdr {
	struct px_span name, value;
};

/* Parse flags. */
#define PX_HTTP_RESPONSE	0x1	/* parse a status line, not a request line */
#define PX_HTTP_HEAD_REQ	0x2	/* response to HEAD (no body) */
#define PX_HTTP_CONNECT_REQ	0x4	/* response to CONNECT */

struct px_http_head {
	/* Start line. */
	struct px_span method, target;	/* requests */
	int status;			/* responses */
	int minor;			/* HTTP/1.minor */
	/* Header fields, in order; hdrs points at the caller's array. */
	struct px_hdr *hdrs;
	size_t nhdrs;
	size_t len;			/* bytes of the head, final empty line included */
	/* Derived from the fields. */
	enum px_body body;
	uint64_t clen;			/* PX_BODY_LENGTH */
	int keepalive;			/* the connection may carry another message */
	int is_connect;
	struct px_span proxy_auth;	/* Proxy-Authorization value, or n == 0 */
	/* On PX_HTTP_ERR: the status to answer (400, 431, 501, 505) and why. */
	int err_status;
	const char *err_why;
};

/*
 * Parse the head at buf[0, len). hdrs[maxhdrs] receives the fields.
 * Returns PX_HTTP_DONE (h filled; the head is h->len bytes), PX_HTTP_MORE
 * (incomplete and still under maxhead bytes) or PX_HTTP_ERR (h->err_status
 * and h->err_why set; 431 when the head or field count is over its limit).
 * Empty lines before a request line are skipped (RFC 9112 section 2.2).
 */
int px_http_parse_head(const char *buf, size_t len, int flags, size_t maxhead,
    struct px_hdr *hdrs, size_t maxhdrs, struct px_http_head *h);

/*
 * A request target split for forwarding. Absolute form "http://host[:port]/p"
 * or, for CONNECT, authority form "host:port". host has no IPv6 brackets;
 * authority is what the Host field must carry; path is origin form ("/" when
 * the URI had none: path.p then points at a static "/").
 */
struct px_uri {
	struct px_span host, authority, path;
	uint16_t port;
};

/* 0, or -1 with *why (the caller answers 400). */
int px_http_parse_target(struct px_span target, int is_connect, struct px_uri *u,
    const char **why);

/*
 * 1 when field i must not be forwarded: hop-by-hop fields (RFC 9110 section
 * 7.6.1: Connection and every field it lists, Proxy-Connection, Keep-Alive,
 * TE, Trailer, Transfer-Encoding is kept, Upgrade, Proxy-Authorization,
 * Proxy-Authenticate) and Host in requests (the proxy rewrites it).
 */
int px_http_hdr_is_hop(const struct px_http_head *h, size_t i);

/* Case-insensitive comparison of a span with a NUL-terminated string. */
int px_span_eq(struct px_span s, const char *lit);

/* The reason phrase the proxy uses for a status it writes. */
const char *px_http_reason(int status);

/*
 * Chunked-body scanner. Zero it before the body; feed the body's bytes in
 * order. px_chunk_feed() returns how many of the n bytes belong to the body
 * (less than n only once the body ended: c->done is then 1), or -1 on a
 * syntax error. Chunk data is skipped in bulk, so feeding is cheap.
 */
struct px_chunk {
	int state;
	int done;
	unsigned digits;
	uint64_t left;
	size_t linelen;
};

ssize_t px_chunk_feed(struct px_chunk *c, const char *p, size_t n);

#endif
