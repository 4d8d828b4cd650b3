/* test_nm_order.c: parsing handover orders from stream entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "netmigrate/nm.h"

#define FV(...) ((const char *const[]){ __VA_ARGS__ }), \
	(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))

static struct nm_order o;
static char err[256];

static void
test_order_full(void **state)
{
	char buf[NM_IPSTR_MAX];

	(void)state;
	assert_int_equal(nm_order_parse(&o, FV("id", "o-1", "op", "announce", "vm", "px-7",
	    "ips", "10.78.1.150, 10.78.1.151,fd78::150", "mac", "52:54:00:00:00:07", "dev", "br0",
	    "via", "10.78.1.1", "future", "ignored"), err, sizeof(err)), 0);
	assert_string_equal(o.id, "o-1");
	assert_int_equal(o.op, NM_OP_ANNOUNCE);
	assert_string_equal(nm_op_name(o.op), "announce");
	assert_string_equal(o.vm, "px-7");
	assert_int_equal(o.nips, 3);
	assert_string_equal(nm_ip_fmt(&o.ips[1], buf, sizeof(buf)), "10.78.1.151");
	assert_int_equal(o.ips[2].family, AF_INET6);
	assert_int_equal(o.has_mac, 1);
	assert_int_equal(o.mac[5], 7);
	assert_string_equal(o.dev, "br0");
	assert_int_equal(o.has_via, 1);
}

static void
test_order_minimal(void **state)
{
	(void)state;
	assert_int_equal(nm_order_parse(&o, FV("op", "withdraw", "id", "o-2", "vm", "px-1",
	    "ips", "10.78.1.9", "mac", "", "dev", "", "via", ""), err, sizeof(err)), 0);
	assert_int_equal(o.op, NM_OP_WITHDRAW);
	assert_int_equal(o.has_mac, 0);
	assert_int_equal(o.has_via, 0);
	assert_string_equal(o.dev, "");
	assert_int_equal(o.epoch, 0);	/* no epoch: not checked by the agent */
}

/* The controller's fencing token: decimal, optional, empty = none. */
static void
test_order_epoch(void **state)
{
	(void)state;
	assert_int_equal(nm_order_parse(&o, FV("id", "o-3", "op", "prepare", "vm", "px-1",
	    "ips", "10.78.1.9", "epoch", "17"), err, sizeof(err)), 0);
	assert_int_equal(o.epoch, 17);
	assert_int_equal(nm_order_parse(&o, FV("id", "o-3", "op", "prepare", "vm", "px-1",
	    "ips", "10.78.1.9", "epoch", "18446744073709551615"), err, sizeof(err)), 0);
	assert_true(o.epoch == UINT64_MAX);
	assert_int_equal(nm_order_parse(&o, FV("id", "o-3", "op", "prepare", "vm", "px-1",
	    "ips", "10.78.1.9", "epoch", ""), err, sizeof(err)), 0);
	assert_int_equal(o.epoch, 0);
	/* The statement's version and generation: gen 0 is "none yet". */
	assert_int_equal(nm_order_parse(&o, FV("id", "1", "op", "announce", "vm", "v",
	    "ips", "10.78.1.9", "epoch", "4", "seq", "1234", "gen", "0"), err, sizeof(err)), 0);
	assert_true(o.epoch == 4 && o.seq == 1234 && o.gen == 0);
	assert_int_equal(nm_order_parse(&o, FV("id", "1", "op", "announce", "vm", "v",
	    "ips", "10.78.1.9", "gen", "7"), err, sizeof(err)), 0);
	assert_true(o.gen == 7 && o.seq == 0);
}

static void
expect_error(const char *const *fv, size_t n, const char *msg)
{
	assert_int_equal(nm_order_parse(&o, fv, n, err, sizeof(err)), -1);
	if (!strstr(err, msg))
		fail_msg("error '%s' lacks '%s'", err, msg);
}

static void
test_order_errors(void **state)
{
	(void)state;
	expect_error(FV("op", "announce", "vm", "v", "ips", "10.0.0.1"), "missing field 'id'");
	expect_error(FV("id", "1", "vm", "v", "ips", "10.0.0.1"), "missing field 'op'");
	expect_error(FV("id", "1", "op", "prepare", "ips", "10.0.0.1"), "missing field 'vm'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v"), "missing field 'ips'");
	expect_error(FV("id", "1", "op", "move", "vm", "v", "ips", "10.0.0.1"), "unknown op 'move'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.300"),
	    "bad IP address '10.0.0.300'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1,,10.0.0.2"),
	    "bad IP list");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1,10.0.0.1"),
	    "listed twice");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "mac", "nope"),
	    "bad MAC address 'nope'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "via", "x"),
	    "bad IP address 'x'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "dev",
	    "a-very-long-interface-name"), "field 'dev'");
	expect_error(FV("id", "1", "op"), "odd number");
	expect_error(FV("id", "", "op", "prepare", "vm", "v", "ips", "10.0.0.1"), "field 'id'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "epoch", "0"),
	    "bad epoch '0'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "gen", "07"),
	    "bad gen '07'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "seq", "x"),
	    "bad seq 'x'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "epoch", "-3"),
	    "bad epoch '-3'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "epoch", "7x"),
	    "bad epoch '7x'");
	expect_error(FV("id", "1", "op", "prepare", "vm", "v", "ips", "10.0.0.1", "epoch",
	    "99999999999999999999"), "bad epoch");
}

static void
test_ips_limit(void **state)
{
	static char list[NM_ORDER_MAX_IPS * 16 + 32];
	static struct nm_ip ips[NM_ORDER_MAX_IPS];
	size_t len = 0;
	int i;

	(void)state;
	for (i = 0; i <= NM_ORDER_MAX_IPS; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s10.78.%d.%d", i ? "," : "",
		    i / 200, i % 200);
	assert_int_equal(nm_ips_parse(list, ips, NM_ORDER_MAX_IPS, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too many IPs"));
	*strrchr(list, ',') = '\0';
	assert_int_equal(nm_ips_parse(list, ips, NM_ORDER_MAX_IPS, err, sizeof(err)),
	    NM_ORDER_MAX_IPS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_full),
		cmocka_unit_test(test_order_minimal),
		cmocka_unit_test(test_order_epoch),
		cmocka_unit_test(test_order_errors),
		cmocka_unit_test(test_ips_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
