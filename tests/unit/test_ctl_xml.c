/* test_ctl_xml.c: a standby's domain XML made from its primary's, and the
 * metadata element fleetd writes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_model.h"
#include "controller/ctl_xml.h"

/* What libvirt returns for a lab VM (deploy/templates/proxyvm.xml, defined). */
static const char primary_xml[] =
    "<domain type='qemu'>\n"
    "  <name>px-1</name>\n"
    "  <uuid>7b1c1f5e-8a51-4b8e-9d0e-1f2a3b4c5d6e</uuid>\n"
    "  <metadata>\n"
    "    <pf:vm xmlns:pf=\"http://proxyfleet.example.org/xmlns/vm/1\" id=\"px-1\" "
    "role=\"primary\" protect=\"hot\" standby_region=\"us\">\n"
    "      <pf:ip>10.77.1.100/24</pf:ip>\n"
    "    </pf:vm>\n"
    "  </metadata>\n"
    "  <memory unit='KiB'>131072</memory>\n"
    "  <os>\n"
    "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"
    "    <kernel>/img/vmlinuz</kernel>\n"
    "    <cmdline>console=ttyS0 quiet pf.vm=px-1 pf.ip=10.77.1.100/24 pf.gw=10.77.1.1 "
    "pf.role=primary pf.redis=10.77.254.1:6379</cmdline>\n"
    "  </os>\n"
    "  <devices>\n"
    "    <interface type='bridge'>\n"
    "      <mac address='52:54:00:aa:bb:01'/>\n"
    "      <source bridge='br0'/>\n"
    "      <target dev='vnet3'/>\n"
    "      <model type='virtio'/>\n"
    "    </interface>\n"
    "    <serial type='file'>\n"
    "      <source path='/var/log/libvirt/qemu/px-1.console.log'/>\n"
    "    </serial>\n"
    "  </devices>\n"
    "</domain>\n";

static void
spec_fill(struct ctl_standby_spec *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->meta.id, "px-1-s1");
	s->meta.role = ROLE_STANDBY;
	strcpy(s->meta.peer, "px-1");
	strcpy(s->meta.mgmt, "10.77.2.200/24");
	strcpy(s->meta.ips[0], "10.77.1.100/24");
	s->meta.nips = 1;
	strcpy(s->mac, "52:54:00:12:34:56");
	strcpy(s->bridge, "br1");
	strcpy(s->gateway, "10.77.2.1");
}

static void
test_standby_xml(void **state)
{
	struct ctl_standby_spec s;
	struct ctl_vm_meta m;
	char err[200], *x, *md;

	(void)state;
	spec_fill(&s);
	x = ctl_xml_standby(primary_xml, &s, err, sizeof(err));
	assert_non_null(x);
	assert_non_null(strstr(x, "<name>px-1-s1</name>"));
	assert_null(strstr(x, "<uuid>"));
	assert_non_null(strstr(x, "address=\"52:54:00:12:34:56\""));
	assert_null(strstr(x, "52:54:00:aa:bb:01"));
	assert_non_null(strstr(x, "bridge=\"br1\""));
	assert_null(strstr(x, "vnet3"));
	assert_non_null(strstr(x, "px-1-s1.console.log"));
	/* The command line: our keys replaced, the others kept in order. */
	assert_non_null(strstr(x, "<cmdline>console=ttyS0 quiet pf.ip=10.77.1.100/24 "
	    "pf.redis=10.77.254.1:6379 pf.vm=px-1-s1 pf.role=standby pf.mgmt=10.77.2.200/24 "
	    "pf.gw=10.77.2.1</cmdline>"));
	/* One metadata element, the standby's, and it parses back. */
	md = strstr(x, "<pf:vm");
	assert_non_null(md);
	assert_null(strstr(md + 1, "<pf:vm"));
	assert_int_equal(ctl_vm_meta_parse(md, &m), 0);
	assert_string_equal(m.id, "px-1-s1");
	assert_int_equal(m.role, ROLE_STANDBY);
	assert_string_equal(m.peer, "px-1");
	assert_string_equal(m.mgmt, "10.77.2.200/24");
	assert_int_equal(m.protect, PROTECT_NONE);
	assert_int_equal(m.nips, 1);
	assert_string_equal(m.ips[0], "10.77.1.100/24");
	free(x);
}

static void
test_standby_xml_keeps_gateway(void **state)
{
	struct ctl_standby_spec s;
	char err[200], *x;

	(void)state;
	spec_fill(&s);
	s.gateway[0] = '\0';
	s.bridge[0] = '\0';
	x = ctl_xml_standby(primary_xml, &s, err, sizeof(err));
	assert_non_null(x);
	assert_non_null(strstr(x, "pf.gw=10.77.1.1"));
	assert_non_null(strstr(x, "bridge=\"br0\""));
	free(x);
}

static void
test_standby_xml_errors(void **state)
{
	struct ctl_standby_spec s;
	char err[200];

	(void)state;
	spec_fill(&s);
	assert_null(ctl_xml_standby("not xml <", &s, err, sizeof(err)));
	assert_string_equal(err, "primary's XML is not a <domain>");
	assert_null(ctl_xml_standby("<domain><name>a</name><os/></domain>", &s, err, sizeof(err)));
	assert_non_null(strstr(err, "cmdline"));
	assert_null(ctl_xml_standby("<domain><name>a</name><os><cmdline>x</cmdline></os>"
	    "<devices/></domain>", &s, err, sizeof(err)));
	assert_non_null(strstr(err, "interface"));
}

static void
test_role_sync(void **state)
{
	struct ctl_standby_spec s;
	char err[200], *sb, *pr, *again;

	(void)state;
	spec_fill(&s);
	sb = ctl_xml_standby(primary_xml, &s, err, sizeof(err));
	assert_non_null(sb);
	/* A promoted standby's definition boots as a primary... */
	pr = ctl_xml_role(sb, 0, err, sizeof(err));
	assert_non_null(pr);
	assert_non_null(strstr(pr, "pf.role=primary"));
	assert_null(strstr(pr, "pf.role=standby"));
	assert_non_null(strstr(pr, "pf.vm=px-1-s1"));
	assert_non_null(strstr(pr, "pf.mgmt=10.77.2.200/24"));
	/* ... and one that already does needs no new definition. */
	again = ctl_xml_role(pr, 0, err, sizeof(err));
	assert_null(again);
	assert_string_equal(err, "");
	assert_null(ctl_xml_role("<domain/>", 1, err, sizeof(err)));
	assert_non_null(strstr(err, "cmdline"));
	free(pr);
	free(sb);
}

static void
test_meta_format_roundtrip(void **state)
{
	struct ctl_vm_meta a, b;
	char buf[1024];

	(void)state;
	memset(&a, 0, sizeof(a));
	strcpy(a.id, "px-9");
	a.role = ROLE_PRIMARY;
	strcpy(a.peer, "px-9-s2");
	a.pin = PIN_REGION;
	a.protect = PROTECT_WARM;
	strcpy(a.sb_region, "us");
	strcpy(a.replaces, "px-9-s1");
	strcpy(a.ips[0], "10.0.0.9/24");
	strcpy(a.ips[1], "fd00::9/64");
	a.nips = 2;
	assert_int_equal(ctl_vm_meta_format(&a, 1, buf, sizeof(buf)), 0);
	assert_int_equal(ctl_vm_meta_parse(buf, &b), 0);
	assert_string_equal(b.id, "px-9");
	assert_int_equal(b.role, ROLE_PRIMARY);
	assert_string_equal(b.peer, "px-9-s2");
	assert_int_equal(b.pin, PIN_REGION);
	assert_int_equal(b.protect, PROTECT_WARM);
	assert_string_equal(b.sb_region, "us");
	assert_string_equal(b.replaces, "px-9-s1");
	assert_int_equal(b.nips, 2);
	assert_string_equal(b.ips[1], "fd00::9/64");
	/* Without the namespace, as virDomainSetMetadata takes it. */
	assert_int_equal(ctl_vm_meta_format(&a, 0, buf, sizeof(buf)), 0);
	assert_null(strstr(buf, "xmlns"));
	assert_int_equal(strncmp(buf, "<vm id='px-9'", 13), 0);
	assert_int_equal(ctl_vm_meta_parse(buf, &b), 0);
	assert_string_equal(b.replaces, "px-9-s1");
	assert_int_equal(b.nips, 2);
	/* Too small a buffer is an error, not a truncated element. */
	assert_int_equal(ctl_vm_meta_format(&a, 1, buf, 40), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_standby_xml),
		cmocka_unit_test(test_standby_xml_keeps_gateway),
		cmocka_unit_test(test_standby_xml_errors),
		cmocka_unit_test(test_role_sync),
		cmocka_unit_test(test_meta_format_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
