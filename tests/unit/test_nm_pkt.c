/* test_nm_pkt.c: the announcement frames byte by byte, the ICMPv6
 * checksum, address parsing and the QEMU-style burst schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "netmigrate/nm.h"

static const uint8_t vm_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void
test_arp_request(void **state)
{
	uint8_t f[64];
	struct in_addr ip;

	(void)state;
	inet_pton(AF_INET, "10.78.1.150", &ip);
	assert_int_equal(nm_arp_build(f, sizeof(f), vm_mac, ip, NM_ARP_REQUEST), 42);
	assert_memory_equal(f, "\xff\xff\xff\xff\xff\xff", 6);	/* broadcast */
	assert_memory_equal(f + 6, vm_mac, 6);			/* from the VM */
	assert_int_equal(f[12] << 8 | f[13], 0x0806);
	assert_int_equal(f[14] << 8 | f[15], 1);		/* Ethernet */
	assert_int_equal(f[16] << 8 | f[17], 0x0800);		/* IPv4 */
	assert_int_equal(f[18], 6);
	assert_int_equal(f[19], 4);
	assert_int_equal(f[20] << 8 | f[21], 1);		/* request */
	assert_memory_equal(f + 22, vm_mac, 6);			/* sender hw */
	assert_memory_equal(f + 28, &ip, 4);			/* sender IP */
	assert_memory_equal(f + 32, "\0\0\0\0\0\0", 6);	/* target hw zero */
	assert_memory_equal(f + 38, &ip, 4);			/* target IP = sender IP */
}

static void
test_arp_reply(void **state)
{
	uint8_t f[64];
	struct in_addr ip;

	(void)state;
	inet_pton(AF_INET, "10.78.1.151", &ip);
	assert_int_equal(nm_arp_build(f, sizeof(f), vm_mac, ip, NM_ARP_REPLY), 42);
	assert_int_equal(f[20] << 8 | f[21], 2);		/* reply */
	assert_memory_equal(f + 22, vm_mac, 6);
	assert_memory_equal(f + 28, &ip, 4);
	assert_memory_equal(f + 32, "\xff\xff\xff\xff\xff\xff", 6);
	assert_memory_equal(f + 38, &ip, 4);
	/* Short buffer and a bad form are refused. */
	assert_int_equal(nm_arp_build(f, 41, vm_mac, ip, NM_ARP_REPLY), -1);
	assert_int_equal(nm_arp_build(f, sizeof(f), vm_mac, ip, NM_ARP_BOTH), -1);
}

static void
test_na_frame(void **state)
{
	uint8_t f[128];
	struct in6_addr ip, all;

	(void)state;
	inet_pton(AF_INET6, "fd78::150", &ip);
	inet_pton(AF_INET6, "ff02::1", &all);
	assert_int_equal(nm_na_build(f, sizeof(f), vm_mac, &ip), 86);
	assert_memory_equal(f, "\x33\x33\x00\x00\x00\x01", 6);
	assert_memory_equal(f + 6, vm_mac, 6);
	assert_int_equal(f[12] << 8 | f[13], 0x86dd);
	assert_int_equal(f[14] >> 4, 6);			/* version */
	assert_int_equal(f[18] << 8 | f[19], 32);		/* payload length */
	assert_int_equal(f[20], 58);				/* ICMPv6 */
	assert_int_equal(f[21], 255);				/* hop limit */
	assert_memory_equal(f + 22, &ip, 16);			/* source: the target */
	assert_memory_equal(f + 38, &all, 16);			/* ff02::1 */
	assert_int_equal(f[54], 136);				/* NA */
	assert_int_equal(f[55], 0);
	assert_int_equal(f[58], 0x20);				/* O only: not R, not S */
	assert_memory_equal(f + 62, &ip, 16);			/* target */
	assert_int_equal(f[78], 2);				/* TLLA option */
	assert_int_equal(f[79], 1);
	assert_memory_equal(f + 80, vm_mac, 6);
	/* Summing a message with its checksum in place gives 0. */
	assert_int_equal(nm_icmp6_csum(&ip, &all, f + 54, 32), 0);
	/* A flipped bit breaks it. */
	f[70] ^= 1;
	assert_int_not_equal(nm_icmp6_csum(&ip, &all, f + 54, 32), 0);
	assert_int_equal(nm_na_build(f, 85, vm_mac, &ip), -1);
}

static void
test_icmp6_csum_known(void **state)
{
	/* An echo request fe80::1 -> fe80::2, id 1 seq 1, no data, checked
	 * against a second, naive implementation of RFC 1071's sum. */
	struct in6_addr s, d;
	uint8_t msg[8] = { 128, 0, 0, 0, 0, 1, 0, 1 };
	uint32_t sum = 0;
	int i;

	(void)state;
	inet_pton(AF_INET6, "fe80::1", &s);
	inet_pton(AF_INET6, "fe80::2", &d);
	for (i = 0; i < 16; i += 2)
		sum += (uint32_t)((s.s6_addr[i] << 8) + s.s6_addr[i + 1]) +
		    (uint32_t)((d.s6_addr[i] << 8) + d.s6_addr[i + 1]);
	sum += 8 + 58;
	for (i = 0; i < 8; i += 2)
		sum += (uint32_t)((msg[i] << 8) + msg[i + 1]);
	while (sum > 0xffff)
		sum = (sum >> 16) + (sum & 0xffff);
	assert_int_equal(nm_icmp6_csum(&s, &d, msg, 8), (uint16_t)~sum);
	/* Odd length pads with a zero byte; only the pseudo-header's length
	 * differs (7 instead of 8): one less in the sum, one more in ~sum. */
	msg[7] = 0;
	assert_int_equal(nm_icmp6_csum(&s, &d, msg, 7), nm_icmp6_csum(&s, &d, msg, 8) + 1);
}

static void
test_sched_qemu(void **state)
{
	struct nm_sched s = NM_SCHED_DEFAULT;
	int expect[] = { 50, 150, 250, 350, -1 }, i, t = 0;
	int at[] = { 0, 50, 200, 450, 800 };
	char err[128];

	(void)state;
	assert_int_equal(nm_sched_check(&s, err, sizeof(err)), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(t, at[i]);
		assert_int_equal(nm_sched_delay_ms(&s, i), expect[i]);
		t += expect[i];
	}
	/* Capped at max. */
	s.rounds = 10;
	assert_int_equal(nm_sched_delay_ms(&s, 8), 550);
	assert_int_equal(nm_sched_delay_ms(&s, 9), -1);
	/* One round: nothing after it. */
	s.rounds = 1;
	assert_int_equal(nm_sched_delay_ms(&s, 0), -1);
	s.rounds = 0;
	assert_int_equal(nm_sched_check(&s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rounds 0"));
	s.rounds = 3;
	s.initial_ms = 600;
	assert_int_equal(nm_sched_check(&s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "above max"));
}

static void
test_addr_parse(void **state)
{
	struct nm_ip ip;
	uint8_t mac[6];
	char err[128], buf[NM_IPSTR_MAX];

	(void)state;
	assert_int_equal(nm_ip_parse("10.78.1.1", &ip, err, sizeof(err)), 0);
	assert_int_equal(ip.family, AF_INET);
	assert_string_equal(nm_ip_fmt(&ip, buf, sizeof(buf)), "10.78.1.1");
	assert_int_equal(nm_ip_parse("fd78::1", &ip, err, sizeof(err)), 0);
	assert_int_equal(ip.family, AF_INET6);
	assert_int_equal(nm_ip_parse("10.78.1.300", &ip, err, sizeof(err)), -1);
	assert_string_equal(err, "bad IP address '10.78.1.300'");
	assert_int_equal(nm_ip_parse("10.78.1.1/32", &ip, err, sizeof(err)), -1);

	assert_int_equal(nm_mac_parse("52:54:00:12:34:56", mac, err, sizeof(err)), 0);
	assert_memory_equal(mac, vm_mac, 6);
	assert_int_equal(nm_mac_parse("52:54:00:12:34", mac, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad MAC address '52:54:00:12:34'"));
	assert_int_equal(nm_mac_parse("52:54:00:12:34:567", mac, err, sizeof(err)), -1);
	assert_int_equal(nm_mac_parse("zz:54:00:12:34:56", mac, err, sizeof(err)), -1);
	assert_int_equal(nm_mac_parse("ff:ff:ff:ff:ff:ff", mac, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "multicast"));
	assert_int_equal(nm_mac_parse("00:00:00:00:00:00", mac, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "all zero"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp_request),
		cmocka_unit_test(test_arp_reply),
		cmocka_unit_test(test_na_frame),
		cmocka_unit_test(test_icmp6_csum_known),
		cmocka_unit_test(test_sched_qemu),
		cmocka_unit_test(test_addr_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
