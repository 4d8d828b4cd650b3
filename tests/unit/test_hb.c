/* test_hb.c: heartbeat datagrams: round trips, and what a receiver refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/hb.h"

static void
t_round_trips(void **state)
{
	struct hb_msg p = { .kind = HB_PING, .host = "eu-1", .nonce = 18446744073709551615ULL,
		.ts_ms = 1764650000123LL, .want_ms = 500 }, g = { .kind = HB_GRANT, .host = "eu-1", .nonce = 7,
		.epoch = 42, .grant_ms = 300, .instance = "fleetd-a" }, out;
	char buf[HB_MAX], why[128];
	int n;

	(void)state;
	n = hb_format(&p, "k3y", buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(hb_parse(buf, (size_t)n, "k3y", &out, why, sizeof(why)), 0);
	assert_int_equal(out.kind, HB_PING);
	assert_string_equal(out.host, "eu-1");
	assert_true(out.nonce == p.nonce);
	assert_true(out.ts_ms == p.ts_ms && out.want_ms == 500);
	n = hb_format(&g, "k3y", buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(hb_parse(buf, (size_t)n, "k3y", &out, why, sizeof(why)), 0);
	assert_int_equal(out.kind, HB_GRANT);
	assert_true(out.epoch == 42 && out.grant_ms == 300 && out.nonce == 7);
	assert_string_equal(out.instance, "fleetd-a");
}

static void
t_refused(void **state)
{
	struct hb_msg g = { .kind = HB_GRANT, .host = "eu-1", .nonce = 7, .epoch = 42,
		.grant_ms = 300, .instance = "fleetd-a" }, out;
	char buf[HB_MAX], bad[HB_MAX], why[128];
	int n;

	(void)state;
	n = hb_format(&g, "k3y", buf, sizeof(buf));
	assert_int_equal(hb_parse(buf, (size_t)n, "other", &out, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "HMAC"));
	/* A longer grant, same MAC: refused. */
	memcpy(bad, buf, (size_t)n);
	memcpy(strstr(bad, " 300 "), " 900 ", 5);
	assert_int_equal(hb_parse(bad, (size_t)n, "k3y", &out, why, sizeof(why)), -1);
	assert_int_equal(hb_parse(buf, (size_t)n - 1, "k3y", &out, why, sizeof(why)), -1);
	assert_int_equal(hb_parse("", 0, "k3y", &out, why, sizeof(why)), -1);
	assert_int_equal(hb_parse("PFHB1 ping", 10, "k3y", &out, why, sizeof(why)), -1);
	/* Names that would break the format are not sent. */
	snprintf(g.host, sizeof(g.host), "eu 1");
	assert_int_equal(hb_format(&g, "k3y", buf, sizeof(buf)), -1);
	g.host[0] = '\0';
	assert_int_equal(hb_format(&g, "k3y", buf, sizeof(buf)), -1);
	/* A buffer too small: -1, never a cut message. */
	snprintf(g.host, sizeof(g.host), "eu-1");
	assert_int_equal(hb_format(&g, "k3y", buf, 40), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_round_trips),
		cmocka_unit_test(t_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
