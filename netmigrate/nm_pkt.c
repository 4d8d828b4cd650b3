/*
 * nm_pkt.c: the pure parts of libnetmigrate: address parsing, the frames a
 * handover announces, and the burst schedule. No I/O here, so the unit tests
 * check every byte without privileges.
 *
 * Frames are built whole, Ethernet header included, because they go out on
 * a PF_PACKET socket (see nm_ctx.c): that is the only way to put the VM's
 * MAC, not the host's, in the Ethernet source, which is what makes switches
 * move the VM's MAC to the new port.
 */
#include "netmigrate/nm.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Addresses */

int
nm_ip_parse(const char *s, struct nm_ip *ip, char *err, size_t errlen)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, &ip->a.v4) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &ip->a.v6) == 1) {
		ip->family = AF_INET6;
		return 0;
	}
	snprintf(err, errlen, "bad IP address '%s'", s);
	return -1;
}

const char *
nm_ip_fmt(const struct nm_ip *ip, char *buf, size_t len)
{
	if (!inet_ntop(ip->family, &ip->a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

int
nm_mac_parse(const char *s, uint8_t mac[6], char *err, size_t errlen)
{
	const char *orig = s;
	int i, hi, lo, zero = 1;

	for (i = 0; i < 6; i++) {
		hi = str_hexval(s[0]);
		lo = hi < 0 ? -1 : str_hexval(s[1]);
		if (lo < 0 || (i < 5 && s[2] != ':') || (i == 5 && s[2] != '\0'))
			goto bad;
		mac[i] = (uint8_t)(hi << 4 | lo);
		zero &= mac[i] == 0;
		s += 3;
	}
	if (zero || (mac[0] & 1)) {
		snprintf(err, errlen, "MAC '%s' is %s, not a host's address",
		    nm_mac_fmt(mac, (char[NM_MACSTR_MAX]){ 0 }, NM_MACSTR_MAX),
		    zero ? "all zero" : "multicast");
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "bad MAC address '%.*s' (write aa:bb:cc:dd:ee:ff)", 64, orig);
	return -1;
}

const char *
nm_mac_fmt(const uint8_t mac[6], char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
	    mac[4], mac[5]);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Frames */

static uint8_t *
nm_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
nm_put(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/*
 * Gratuitous ARP, RFC 826 packet format. The request form is the "ARP
 * Announcement" of RFC 5227 section 3 (target hardware address zero, section
 * 2.1.1); the reply form is the gratuitous ARP of RFC 5944 section 4.6, which
 * some old stacks only learn from. In both, sender IP = target IP, so every
 * receiver that has the IP in its cache updates it to mac (RFC 826 "merge"),
 * and none answers.
 */
int
nm_arp_build(uint8_t *buf, size_t len, const uint8_t mac[6], struct in_addr ip,
    enum nm_arp_form op)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[6];
	uint8_t *p = buf;

	if (len < NM_ARP_FRAME_LEN || (op != NM_ARP_REQUEST && op != NM_ARP_REPLY))
		return -1;
	p = nm_put(p, bcast, 6);		/* Ethernet destination */
	p = nm_put(p, mac, 6);			/* Ethernet source: the VM */
	p = nm_put16(p, 0x0806);		/* ETH_P_ARP */
	p = nm_put16(p, 1);			/* hardware: Ethernet */
	p = nm_put16(p, 0x0800);		/* protocol: IPv4 */
	*p++ = 6;
	*p++ = 4;
	p = nm_put16(p, op == NM_ARP_REQUEST ? 1 : 2);
	p = nm_put(p, mac, 6);			/* sender hardware */
	p = nm_put(p, &ip, 4);			/* sender IP */
	p = nm_put(p, op == NM_ARP_REQUEST ? zero : bcast, 6);	/* target hardware */
	p = nm_put(p, &ip, 4);			/* target IP = sender IP */
	return (int)(p - buf);
}

uint16_t
nm_icmp6_csum(const struct in6_addr *src, const struct in6_addr *dst, const uint8_t *msg,
    size_t len)
{
	uint32_t sum = 0;
	size_t i;

	/* Pseudo-header, RFC 8200 section 8.1: src, dst, length, next header. */
	for (i = 0; i < 16; i += 2) {
		sum += (uint32_t)(src->s6_addr[i] << 8 | src->s6_addr[i + 1]);
		sum += (uint32_t)(dst->s6_addr[i] << 8 | dst->s6_addr[i + 1]);
	}
	sum += (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
	sum += 58;	/* IPPROTO_ICMPV6 */
	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(msg[i] << 8 | msg[i + 1]);
	if (len & 1)
		sum += (uint32_t)(msg[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * Unsolicited neighbour advertisement, RFC 4861 section 7.2.6: to the
 * all-nodes address ff02::1, Solicited flag clear (it must be, to a multicast
 * destination, section 7.1.2), Override set so receivers replace the cached
 * link-layer address, and the Target Link-Layer Address option carrying mac
 * (section 4.6.1). Hop limit 255 (section 7.1.2: receivers drop anything
 * else, proving the packet never crossed a router). The source address is
 * the target itself, the IPv6 counterpart of GARP's sender = target: the
 * host announces on the VM's behalf, with the VM's MAC as Ethernet source.
 */
int
nm_na_build(uint8_t *buf, size_t len, const uint8_t mac[6], const struct in6_addr *ip)
{
	static const uint8_t mcast[6] = { 0x33, 0x33, 0, 0, 0, 1 };
	struct in6_addr all_nodes = { .s6_addr = { 0xff, 0x02, [15] = 1 } };
	uint8_t *p = buf, *icmp;
	uint16_t csum;

	if (len < NM_NA_FRAME_LEN)
		return -1;
	memset(buf, 0, NM_NA_FRAME_LEN);
	p = nm_put(p, mcast, 6);		/* 33:33 + low 32 bits of ff02::1 */
	p = nm_put(p, mac, 6);
	p = nm_put16(p, 0x86dd);		/* ETH_P_IPV6 */
	*p = 0x60;				/* version 6, class 0, flow 0 */
	p += 4;
	p = nm_put16(p, 32);			/* payload: NA 24 + option 8 */
	*p++ = 58;				/* next header: ICMPv6 */
	*p++ = 255;				/* hop limit */
	p = nm_put(p, ip, 16);
	p = nm_put(p, &all_nodes, 16);
	icmp = p;
	*p++ = 136;				/* Neighbor Advertisement */
	*p++ = 0;				/* code */
	p += 2;					/* checksum, below */
	*p = 0x20;				/* R=0 S=0 O=1 */
	p += 4;
	p = nm_put(p, ip, 16);			/* target */
	*p++ = 2;				/* Target Link-Layer Address */
	*p++ = 1;				/* length in units of 8 octets */
	p = nm_put(p, mac, 6);
	csum = nm_icmp6_csum(ip, &all_nodes, icmp, (size_t)(p - icmp));
	nm_put16(icmp + 2, csum);
	return (int)(p - buf);
}

/* ------------------------------------------------------------------ */
/* Burst schedule */

int
nm_sched_check(const struct nm_sched *s, char *err, size_t errlen)
{
	if (s->rounds < 1 || s->rounds > 100) {
		snprintf(err, errlen, "announce rounds %d out of range [1, 100]", s->rounds);
		return -1;
	}
	if (s->initial_ms < 1 || s->initial_ms > 100000 || s->max_ms < 1 ||
	    s->max_ms > 100000 || s->step_ms < 0 || s->step_ms > 100000) {
		snprintf(err, errlen, "announce initial/max in [1, 100000] ms, step in [0, 100000] ms");
		return -1;
	}
	if (s->initial_ms > s->max_ms) {
		snprintf(err, errlen, "announce initial %d ms is above max %d ms", s->initial_ms,
		    s->max_ms);
		return -1;
	}
	return 0;
}

/*
 * As QEMU's qemu_announce_timer_step(): the first round goes out at once
 * (a resumed VM must be found without delay), then the gaps grow by step
 * from initial up to max.
 */
int
nm_sched_delay_ms(const struct nm_sched *s, int round)
{
	long long d;

	if (round < 0 || round >= s->rounds - 1)
		return -1;
	d = (long long)s->initial_ms + (long long)round * s->step_ms;
	return d > s->max_ms ? s->max_ms : (int)d;
}
