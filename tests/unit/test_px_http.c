/* test_px_http.c: HTTP/1.1 heads, targets, hop-by-hop fields, chunked bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxyvm/px_http.h"

static struct px_hdr hdrs[64];

static int
req(const char *s, struct px_http_head *h)
{
	return px_http_parse_head(s, strlen(s), 0, 16384, hdrs, 64, h);
}

static int
resp(const char *s, int flags, struct px_http_head *h)
{
	return px_http_parse_head(s, strlen(s), PX_HTTP_RESPONSE | flags, 16384, hdrs, 64, h);
}

static void
span_is(struct px_span s, const char *want)
{
	assert_int_equal(s.n, strlen(want));
	assert_memory_equal(s.p, want, s.n);
}

static void
test_request_basic(void **state)
{
	struct px_http_head h;
	const char *m = "GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n"
	    "Proxy-Authorization: Basic dTpw\r\nX-A:  v  \r\n\r\nBODY";

	(void)state;
	assert_int_equal(req(m, &h), PX_HTTP_DONE);
	span_is(h.method, "GET");
	span_is(h.target, "http://example.com/a?b");
	assert_int_equal(h.minor, 1);
	assert_int_equal(h.nhdrs, 3);
	span_is(h.hdrs[2].name, "X-A");
	span_is(h.hdrs[2].value, "v");
	span_is(h.proxy_auth, "Basic dTpw");
	assert_int_equal(h.len, strlen(m) - 4);
	assert_int_equal(h.body, PX_BODY_NONE);
	assert_true(h.keepalive);
}

static void
test_request_incomplete_and_limits(void **state)
{
	struct px_http_head h;
	char big[20000];

	(void)state;
	assert_int_equal(req("GET http://a/ HTTP/1.1\r\nHost: a\r\n", &h), PX_HTTP_MORE);
	assert_int_equal(req("GET http://a/ HTT", &h), PX_HTTP_MORE);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET http://a/ HTTP/1.1\r\nX: ", 27);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(px_http_parse_head(big, strlen(big), 0, 16384, hdrs, 64, &h),
	    PX_HTTP_ERR);
	assert_int_equal(h.err_status, 431);
	/* Too many fields. */
	char many[4096] = "GET http://a/ HTTP/1.1\r\n";
	for (int i = 0; i < 70; i++)
		strcat(many, "X: y\r\n");
	strcat(many, "\r\n");
	assert_int_equal(req(many, &h), PX_HTTP_ERR);
	assert_int_equal(h.err_status, 431);
}

static void
test_request_malformed(void **state)
{
	static const char *const bad[] = {
		"GET  http://a/ HTTP/1.1\r\n\r\n",	/* double space */
		"GET http://a/ HTTP/1.1\rX: y\r\n\r\n",	/* bare CR */
		"GET http://a/ HTTP/1.1\r\nX : y\r\n\r\n",	/* space before colon */
		"GET http://a/ HTTP/1.1\r\nX: y\r\n z\r\n\r\n",	/* obs-fold */
		"GET http://a/ FOO/1.1\r\n\r\n",
		"G@T http://a/ HTTP/1.1\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nX: a\x01z\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		"\x16\x03\x01\x02",	/* a TLS hello: refused before any line end */
		"\x05\x01",		/* a SOCKS greeting */
	};
	struct px_http_head h;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(req(bad[i], &h), PX_HTTP_ERR);
		assert_int_equal(h.err_status, 400);
	}
	assert_int_equal(req("GET http://a/ HTTP/2.0\r\n\r\n", &h), PX_HTTP_ERR);
	assert_int_equal(h.err_status, 505);
}

static void
test_request_framing(void **state)
{
	struct px_http_head h;

	(void)state;
	assert_int_equal(req("POST http://a/ HTTP/1.1\r\nContent-Length: 12\r\n"
	    "Content-Length: 12\r\n\r\n", &h), PX_HTTP_DONE);
	assert_int_equal(h.body, PX_BODY_LENGTH);
	assert_int_equal(h.clen, 12);
	assert_int_equal(req("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    &h), PX_HTTP_DONE);
	assert_int_equal(h.body, PX_BODY_CHUNKED);
	assert_int_equal(req("GET http://a/ HTTP/1.0\r\n\r\n", &h), PX_HTTP_DONE);
	assert_false(h.keepalive);
	assert_int_equal(req("GET http://a/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h),
	    PX_HTTP_DONE);
	assert_true(h.keepalive);
	assert_int_equal(req("GET http://a/ HTTP/1.1\r\nConnection: foo, close\r\n\r\n", &h),
	    PX_HTTP_DONE);
	assert_false(h.keepalive);
	/* Leading empty lines and bare LF are accepted. */
	assert_int_equal(req("\r\n\nGET http://a/ HTTP/1.1\nX: y\n\n", &h), PX_HTTP_DONE);
	assert_int_equal(h.nhdrs, 1);
}

static void
test_response(void **state)
{
	struct px_http_head h;

	(void)state;
	assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0, &h),
	    PX_HTTP_DONE);
	assert_int_equal(h.status, 200);
	assert_int_equal(h.body, PX_BODY_LENGTH);
	assert_int_equal(h.clen, 3);
	assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", PX_HTTP_HEAD_REQ,
	    &h), PX_HTTP_DONE);
	assert_int_equal(h.body, PX_BODY_NONE);
	assert_int_equal(resp("HTTP/1.1 304 Not Modified\r\n\r\n", 0, &h), PX_HTTP_DONE);
	assert_int_equal(h.body, PX_BODY_NONE);
	assert_int_equal(resp("HTTP/1.0 200 OK\r\n\r\n", 0, &h), PX_HTTP_DONE);
	assert_int_equal(h.body, PX_BODY_CLOSE);
	assert_false(h.keepalive);
	assert_int_equal(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &h),
	    PX_HTTP_DONE);
	assert_int_equal(h.body, PX_BODY_CHUNKED);
	assert_int_equal(resp("HTTP/1.1 100 Continue\r\n\r\n", 0, &h), PX_HTTP_DONE);
	assert_int_equal(h.status, 100);
	assert_int_equal(resp("HTTP/1.1 20 OK\r\n\r\n", 0, &h), PX_HTTP_ERR);
	assert_int_equal(h.err_status, 502);
	assert_int_equal(resp("HTTP/1.1 200\r\n\r\n", 0, &h), PX_HTTP_DONE);
}

static void
test_target(void **state)
{
	struct px_uri u;
	const char *why;
	struct px_span t;

	(void)state;
#define T(s) (t.p = (s), t.n = strlen(s), t)
	assert_int_equal(px_http_parse_target(T("http://Example.com:8080/x/y?z=1"), 0, &u, &why),
	    0);
	span_is(u.host, "Example.com");
	span_is(u.authority, "Example.com:8080");
	span_is(u.path, "/x/y?z=1");
	assert_int_equal(u.port, 8080);
	assert_int_equal(px_http_parse_target(T("http://a.b"), 0, &u, &why), 0);
	span_is(u.path, "/");
	assert_int_equal(u.port, 80);
	assert_int_equal(px_http_parse_target(T("http://[::1]:81/"), 0, &u, &why), 0);
	span_is(u.host, "::1");
	assert_int_equal(u.port, 81);
	assert_int_equal(px_http_parse_target(T("example.com:443"), 1, &u, &why), 0);
	span_is(u.host, "example.com");
	assert_int_equal(u.port, 443);
	assert_int_equal(px_http_parse_target(T("/relative"), 0, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("https://a/"), 0, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("http://u:p@a/"), 0, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("http://a:0/"), 0, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("http://a:65536/"), 0, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("http://a:/"), 0, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("example.com"), 1, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("[zz]:443"), 1, &u, &why), -1);
	assert_int_equal(px_http_parse_target(T("http://a/#frag"), 0, &u, &why), -1);
#undef T
}

static void
test_hop_by_hop(void **state)
{
	struct px_http_head h;
	const char *m = "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, close\r\n"
	    "X-Foo: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: ws\r\n"
	    "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\n"
	    "Accept: */*\r\nTransfer-Encoding: chunked\r\n\r\n";
	int kept = 0;

	(void)state;
	assert_int_equal(req(m, &h), PX_HTTP_DONE);
	for (size_t i = 0; i < h.nhdrs; i++) {
		if (!px_http_hdr_is_hop(&h, i)) {
			kept++;
			assert_true(px_span_eq(h.hdrs[i].name, "accept") ||
			    px_span_eq(h.hdrs[i].name, "transfer-encoding"));
		}
	}
	assert_int_equal(kept, 2);
}

static void
test_chunked(void **state)
{
	const char *body = "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	    "0\r\nX-T: 1\r\n\r\nNEXT";
	size_t n = strlen(body);
	struct px_chunk c;
	ssize_t r;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(px_chunk_feed(&c, body, n), n - 4);
	assert_true(c.done);
	/* Byte by byte gives the same answer. */
	memset(&c, 0, sizeof(c));
	size_t total = 0;
	for (size_t i = 0; i < n && !c.done; i++) {
		r = px_chunk_feed(&c, body + i, 1);
		assert_true(r >= 0);
		total += (size_t)r;
	}
	assert_int_equal(total, n - 4);
	/* Bare LF line ends, no trailers. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(px_chunk_feed(&c, "3\nabc\n0\n\n", 9), 9);
	assert_true(c.done);
	/* Errors. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(px_chunk_feed(&c, "zz\r\n", 4), -1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(px_chunk_feed(&c, "3\r\nabcX", 7), -1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(px_chunk_feed(&c, "10000000000000000\r\n", 19), -1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(px_chunk_feed(&c, "3\r\nab", 5), 5);
	assert_false(c.done);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_basic),
		cmocka_unit_test(test_request_incomplete_and_limits),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_request_framing),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_chunked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
