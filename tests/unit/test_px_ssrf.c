/* test_px_ssrf.c: CIDR parsing and matching, the destination guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyvm/px_ssrf.h"

static struct sockaddr_storage
sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	return ss;
}

static int
check(const struct px_ssrf *g, const char *ip, const char **why)
{
	struct sockaddr_storage ss = sa(ip);

	assert_true(ss.ss_family != 0);
	return px_ssrf_check(g, (struct sockaddr *)&ss, why);
}

static void
test_cidr(void **state)
{
	struct px_cidr c;
	char err[128];
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(px_cidr_parse("10.1.2.3/8", &c, err, sizeof(err)), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_int_equal(c.addr[1], 0);	/* host bits cleared */
	ss = sa("10.200.0.1");
	assert_true(px_cidr_match(&c, (struct sockaddr *)&ss));
	ss = sa("11.0.0.1");
	assert_false(px_cidr_match(&c, (struct sockaddr *)&ss));
	assert_int_equal(px_cidr_parse("100.64.0.0/10", &c, err, sizeof(err)), 0);
	ss = sa("100.127.255.255");
	assert_true(px_cidr_match(&c, (struct sockaddr *)&ss));
	ss = sa("100.128.0.0");
	assert_false(px_cidr_match(&c, (struct sockaddr *)&ss));
	assert_int_equal(px_cidr_parse("2001:db8::1", &c, err, sizeof(err)), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(px_cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), 0);
	ss = sa("8.8.8.8");
	assert_true(px_cidr_match(&c, (struct sockaddr *)&ss));
	ss = sa("::1");
	assert_false(px_cidr_match(&c, (struct sockaddr *)&ss));
	assert_int_equal(px_cidr_parse("10.0.0.0/33", &c, err, sizeof(err)), -1);
	assert_int_equal(px_cidr_parse("10.0.0/8", &c, err, sizeof(err)), -1);
	assert_int_equal(px_cidr_parse("fe80::/x", &c, err, sizeof(err)), -1);
	assert_int_equal(px_cidr_parse("", &c, err, sizeof(err)), -1);
}

static void
test_builtin(void **state)
{
	static const struct {
		const char *ip;
		const char *why;	/* NULL: allowed */
	} cases[] = {
		{ "8.8.8.8", NULL },
		{ "1.1.1.1", NULL },
		{ "2606:4700::1111", NULL },
		{ "127.0.0.1", "loopback" },
		{ "127.255.0.9", "loopback" },
		{ "10.1.2.3", "rfc1918" },
		{ "172.16.0.1", "rfc1918" },
		{ "172.31.255.255", "rfc1918" },
		{ "172.32.0.1", NULL },
		{ "192.168.1.1", "rfc1918" },
		{ "100.64.0.1", "cgnat" },
		{ "169.254.169.254", "metadata" },
		{ "169.254.1.1", "link-local" },
		{ "0.0.0.0", "this-network" },
		{ "224.0.0.1", "multicast" },
		{ "255.255.255.255", "reserved" },
		{ "::1", "loopback" },
		{ "::", "unspecified" },
		{ "fd12::1", "unique-local" },
		{ "fc00::1", "unique-local" },
		{ "fe80::1", "link-local" },
		{ "::ffff:127.0.0.1", "loopback" },	/* mapped: judged as IPv4 */
		{ "::ffff:10.0.0.1", "rfc1918" },
		{ "::ffff:8.8.8.8", NULL },
	};
	struct px_ssrf g;
	const char *why;

	(void)state;
	px_ssrf_init(&g);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		int rc = check(&g, cases[i].ip, &why);

		if (!cases[i].why) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(why, cases[i].why);
		}
	}
}

static void
test_lists(void **state)
{
	struct px_ssrf g;
	const char *why;
	char err[128];

	(void)state;
	px_ssrf_init(&g);
	assert_int_equal(px_ssrf_add(&g, 1, "127.0.0.0/8, ::1", err, sizeof(err)), 0);
	assert_int_equal(px_ssrf_add(&g, 0, "203.0.113.0/24 198.51.100.7", err, sizeof(err)),
	    0);
	assert_int_equal(g.nallow, 2);
	assert_int_equal(g.ndeny, 2);
	assert_int_equal(check(&g, "127.0.0.1", &why), 0);
	assert_int_equal(check(&g, "::1", &why), 0);
	assert_int_equal(check(&g, "203.0.113.9", &why), -1);
	assert_string_equal(why, "deny-list");
	assert_int_equal(check(&g, "198.51.100.7", &why), -1);
	assert_int_equal(check(&g, "198.51.100.8", &why), 0);
	assert_int_equal(check(&g, "10.0.0.1", &why), -1);
	/* The allow list wins over the deny list. */
	assert_int_equal(px_ssrf_add(&g, 1, "203.0.113.5", err, sizeof(err)), 0);
	assert_int_equal(check(&g, "203.0.113.5", &why), 0);
	assert_int_equal(px_ssrf_add(&g, 0, "bogus", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bogus"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
