/* test_px_socks.c: SOCKS5 greeting, RFC 1929 auth, requests, replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyvm/px_socks.h"

static void
test_greeting(void **state)
{
	const uint8_t g[] = { 5, 2, 0, 2, 0xee };
	size_t used = 0;
	unsigned m = 0;

	(void)state;
	assert_int_equal(px_socks_parse_greeting(g, 0, &used, &m), PX_SOCKS_MORE);
	assert_int_equal(px_socks_parse_greeting(g, 3, &used, &m), PX_SOCKS_MORE);
	assert_int_equal(px_socks_parse_greeting(g, sizeof(g), &used, &m), PX_SOCKS_DONE);
	assert_int_equal(used, 4);
	assert_int_equal(m, (1u << 0) | (1u << 2));
	assert_int_equal(px_socks_parse_greeting((const uint8_t *)"\x04\x01\x00", 3, &used, &m),
	    PX_SOCKS_ERR);
	assert_int_equal(px_socks_parse_greeting((const uint8_t *)"\x05\x00", 2, &used, &m),
	    PX_SOCKS_ERR);
	assert_int_equal(px_socks_parse_greeting((const uint8_t *)"GET / HTTP/1.1", 14, &used,
	    &m), PX_SOCKS_ERR);
}

static void
test_userpass(void **state)
{
	const uint8_t a[] = { 1, 5, 'a', 'l', 'i', 'c', 'e', 3, 'p', 'w', 'd' };
	char user[256], pass[256];
	size_t used = 0;

	(void)state;
	for (size_t n = 0; n < sizeof(a); n++)
		assert_int_equal(px_socks_parse_userpass(a, n, &used, user, pass), PX_SOCKS_MORE);
	assert_int_equal(px_socks_parse_userpass(a, sizeof(a), &used, user, pass),
	    PX_SOCKS_DONE);
	assert_int_equal(used, sizeof(a));
	assert_string_equal(user, "alice");
	assert_string_equal(pass, "pwd");
	/* Empty password is allowed, empty name is not, neither may hold NUL. */
	assert_int_equal(px_socks_parse_userpass((const uint8_t *)"\x01\x01u\x00", 4, &used,
	    user, pass), PX_SOCKS_DONE);
	assert_string_equal(pass, "");
	assert_int_equal(px_socks_parse_userpass((const uint8_t *)"\x01\x00\x00", 3, &used,
	    user, pass), PX_SOCKS_ERR);
	assert_int_equal(px_socks_parse_userpass((const uint8_t *)"\x01\x02u\x00\x00", 5, &used,
	    user, pass), PX_SOCKS_ERR);
	assert_int_equal(px_socks_parse_userpass((const uint8_t *)"\x05\x01u\x00", 4, &used,
	    user, pass), PX_SOCKS_ERR);
}

static void
test_request(void **state)
{
	const uint8_t v4[] = { 5, 1, 0, 1, 10, 0, 0, 1, 0x1f, 0x90 };
	const uint8_t v6[] = { 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
		0, 80 };
	const uint8_t dn[] = { 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c',
		'o', 'm', 1, 187 };
	struct px_socks_req r;
	size_t used;
	uint8_t rep;

	(void)state;
	for (size_t n = 0; n < sizeof(v4); n++)
		assert_int_equal(px_socks_parse_request(v4, n, &used, &r, &rep), PX_SOCKS_MORE);
	assert_int_equal(px_socks_parse_request(v4, sizeof(v4), &used, &r, &rep),
	    PX_SOCKS_DONE);
	assert_int_equal(used, sizeof(v4));
	assert_string_equal(r.host, "10.0.0.1");
	assert_int_equal(r.port, 8080);
	assert_int_equal(r.addr.ss_family, AF_INET);
	assert_int_equal(px_socks_parse_request(v6, sizeof(v6), &used, &r, &rep),
	    PX_SOCKS_DONE);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 80);
	assert_int_equal(px_socks_parse_request(dn, sizeof(dn), &used, &r, &rep),
	    PX_SOCKS_DONE);
	assert_string_equal(r.host, "example.com");
	assert_int_equal(r.port, 443);
	assert_int_equal(r.cmd, PX_SOCKS_CMD_CONNECT);
}

static void
test_request_bad(void **state)
{
	struct px_socks_req r;
	size_t used;
	uint8_t rep;

	(void)state;
	assert_int_equal(px_socks_parse_request((const uint8_t *)"\x05\x01\x00\x09\x00", 5,
	    &used, &r, &rep), PX_SOCKS_ERR);
	assert_int_equal(rep, PX_SOCKS_ATYP_UNSUPP);
	assert_int_equal(px_socks_parse_request((const uint8_t *)"\x04\x01\x00\x01", 4, &used,
	    &r, &rep), PX_SOCKS_ERR);
	assert_int_equal(rep, 0xff);
	/* A name with a NUL or a slash is refused. */
	assert_int_equal(px_socks_parse_request((const uint8_t *)"\x05\x01\x00\x03\x03" "a\x00" "b\x00\x50",
	    10, &used, &r, &rep), PX_SOCKS_ERR);
	assert_int_equal(rep, PX_SOCKS_HOSTUNREACH);
	assert_int_equal(px_socks_parse_request((const uint8_t *)"\x05\x01\x00\x03\x00\x00\x50",
	    7, &used, &r, &rep), PX_SOCKS_ERR);
	/* Port 0. */
	assert_int_equal(px_socks_parse_request((const uint8_t *)"\x05\x01\x00\x01\x01\x02\x03\x04\x00\x00",
	    10, &used, &r, &rep), PX_SOCKS_ERR);
	/* BIND parses; the caller refuses it. */
	assert_int_equal(px_socks_parse_request((const uint8_t *)"\x05\x02\x00\x01\x01\x02\x03\x04\x00\x50",
	    10, &used, &r, &rep), PX_SOCKS_DONE);
	assert_int_equal(r.cmd, PX_SOCKS_CMD_BIND);
}

static void
test_reply(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(1080) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	uint8_t out[32];

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_int_equal(px_socks_reply(out, PX_SOCKS_OK, (struct sockaddr *)&sin), 10);
	assert_memory_equal(out, "\x05\x00\x00\x01\xc0\x00\x02\x07\x04\x38", 10);
	assert_int_equal(px_socks_reply(out, PX_SOCKS_RULESET, NULL), 10);
	assert_memory_equal(out, "\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00", 10);
	assert_int_equal(px_socks_reply(out, PX_SOCKS_OK, (struct sockaddr *)&sin6), 22);
	assert_int_equal(out[3], PX_SOCKS_ATYP_IPV6);
	assert_int_equal(out[21], 443 & 0xff);
}

static void
test_errno_table(void **state)
{
	(void)state;
	assert_int_equal(px_socks_rep_from_errno(0), PX_SOCKS_OK);
	assert_int_equal(px_socks_rep_from_errno(EACCES), PX_SOCKS_RULESET);
	assert_int_equal(px_socks_rep_from_errno(ECONNREFUSED), PX_SOCKS_REFUSED);
	assert_int_equal(px_socks_rep_from_errno(ENETUNREACH), PX_SOCKS_NETUNREACH);
	assert_int_equal(px_socks_rep_from_errno(EHOSTUNREACH), PX_SOCKS_HOSTUNREACH);
	assert_int_equal(px_socks_rep_from_errno(ENOENT), PX_SOCKS_HOSTUNREACH);
	assert_int_equal(px_socks_rep_from_errno(ETIMEDOUT), PX_SOCKS_TTL);
	assert_int_equal(px_socks_rep_from_errno(EAFNOSUPPORT), PX_SOCKS_ATYP_UNSUPP);
	assert_int_equal(px_socks_rep_from_errno(EIO), PX_SOCKS_FAIL);
	assert_string_equal(px_socks_rep_str(PX_SOCKS_RULESET), "not allowed by ruleset");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_userpass),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_errno_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
