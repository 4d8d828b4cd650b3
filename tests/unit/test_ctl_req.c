/* test_ctl_req.c: fleetd's API request decoders (controller/ctl_req.c): the
 * bodies of a migration, a protect and a region target, the exact error
 * texts the API answers with, bodies that stop at a NUL byte, and the path
 * splitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "controller/ctl_req.h"

static struct ctl_req r;
static char err[256];

#define NOT_OBJECT "request body is not a JSON object"

/* Decode the C string s with dec, expecting code and (when code) the text. */
static void
expect(int (*dec)(const char *, size_t, struct ctl_req *, char *, size_t), const char *s,
    int code, const char *text)
{
	err[0] = '\0';
	assert_int_equal(dec(s, strlen(s), &r, err, sizeof(err)), code);
	if (code) {
		assert_string_equal(err, text);
		assert_null(r.vm);
		assert_null(r.target);
	}
}

static void
test_migrate(void **state)
{
	(void)state;
	expect(ctl_req_migrate, "{\"vm\":\"px-a\",\"to\":\"eu-2\",\"reason\":\"test\"}", 0, NULL);
	assert_string_equal(r.vm, "px-a");
	assert_string_equal(r.to, "eu-2");
	assert_string_equal(r.reason, "test");
	ctl_req_clear(&r);
	assert_null(r.vm);
	expect(ctl_req_migrate, "{\"vm\":\"px-a\",\"to\":\"eu-2\",\"reason\":\"\"}", 0, NULL);
	assert_null(r.reason);
	ctl_req_clear(&r);
	expect(ctl_req_migrate, "{oops", 400, NOT_OBJECT);
	expect(ctl_req_migrate, "[1]", 400, NOT_OBJECT);
	expect(ctl_req_migrate, "", 400, NOT_OBJECT);
	expect(ctl_req_migrate, "{\"vm\":\"px-a\"}", 400,
	    "fields 'vm' and 'to' (strings) are required");
	expect(ctl_req_migrate, "{\"vm\":\"px-a\",\"to\":7}", 400,
	    "fields 'vm' and 'to' (strings) are required");
	expect(ctl_req_migrate, "{\"vm\":\"\",\"to\":\"eu-2\"}", 400,
	    "fields 'vm' and 'to' (strings) are required");
}

/* The body ends at its length, and at a NUL byte before it. */
static void
test_body_bounds(void **state)
{
	static const char two[] = "{\"vm\":\"a\",\"to\":\"b\"}{\"vm\":\"c\"}";
	static const char nul[] = "{\"vm\":\"a\0\",\"to\":\"b\"}";

	(void)state;
	assert_int_equal(ctl_req_migrate(two, 19, &r, err, sizeof(err)), 0);
	assert_string_equal(r.to, "b");
	ctl_req_clear(&r);
	assert_int_equal(ctl_req_migrate(nul, sizeof(nul) - 1, &r, err, sizeof(err)), 400);
	assert_string_equal(err, NOT_OBJECT);
	assert_int_equal(ctl_req_migrate(NULL, 0, &r, err, sizeof(err)), 400);
}

static void
test_protect(void **state)
{
	static const char bad[] = "field 'mode' must be \"hot\", \"warm\" or \"none\"";

	(void)state;
	expect(ctl_req_protect, "{\"mode\":\"hot\",\"region\":\"us\"}", 0, NULL);
	assert_int_equal(r.mode, PROTECT_HOT);
	assert_string_equal(r.region, "us");
	ctl_req_clear(&r);
	expect(ctl_req_protect, "{\"mode\":\"none\"}", 0, NULL);
	assert_int_equal(r.mode, PROTECT_NONE);
	assert_null(r.region);
	expect(ctl_req_protect, "{\"mode\":\"warm\",\"region\":\"\"}", 0, NULL);
	assert_int_equal(r.mode, PROTECT_WARM);
	assert_null(r.region);
	expect(ctl_req_protect, "{\"mode\":\"\"}", 400, bad);
	expect(ctl_req_protect, "{\"mode\":\"cold\"}", 400, bad);
	expect(ctl_req_protect, "{}", 400, bad);
	expect(ctl_req_protect, "null", 400, NOT_OBJECT);
}

static void
test_target(void **state)
{
	(void)state;
	expect(ctl_req_target, "{\"target\":\"40%\"}", 0, NULL);
	assert_string_equal(r.target, "40%");
	ctl_req_clear(&r);
	expect(ctl_req_target, "{\"target\":3}", 0, NULL);
	assert_string_equal(r.target, "3");
	ctl_req_clear(&r);
	expect(ctl_req_target, "{\"target\":-2.5}", 0, NULL);
	assert_string_equal(r.target, "-2.5");
	ctl_req_clear(&r);
	expect(ctl_req_target, "{\"target\":\"\"}", 0, NULL);
	assert_string_equal(r.target, "");	/* judged (and refused) by the parser */
	ctl_req_clear(&r);
	expect(ctl_req_target, "{\"target\":null}", 0, NULL);
	assert_null(r.target);
	expect(ctl_req_target, "{\"goal\":\"1\"}", 400, "field 'target' is required: a count "
	    "(\"3\"), a share of the fleet (\"40%\"), or null to clear");
	expect(ctl_req_target, "{\"target\":true}", 400, "field 'target' is required: a count "
	    "(\"3\"), a share of the fleet (\"40%\"), or null to clear");
	expect(ctl_req_target, "{oops", 400, NOT_OBJECT);
}

static void
test_split(void **state)
{
	char name[8];
	const char *rest;

	(void)state;
	assert_int_equal(ctl_req_split("/v1/hosts/eu-1/drain", "/v1/hosts/", name, sizeof(name),
	    &rest), 0);
	assert_string_equal(name, "eu-1");
	assert_string_equal(rest, "drain");
	assert_int_equal(ctl_req_split("/v1/migrations/12", "/v1/migrations/", name, sizeof(name),
	    &rest), 0);
	assert_string_equal(name, "12");
	assert_string_equal(rest, "");
	assert_int_equal(ctl_req_split("/v1/hosts//drain", "/v1/hosts/", name, sizeof(name),
	    &rest), -1);
	assert_int_equal(ctl_req_split("/v1/hosts/", "/v1/hosts/", name, sizeof(name), &rest), -1);
	assert_int_equal(ctl_req_split("/v1/vms/x", "/v1/hosts/", name, sizeof(name), &rest), -1);
	assert_int_equal(ctl_req_split("/v1/hosts/1234567", "/v1/hosts/", name, sizeof(name),
	    &rest), 0);
	assert_int_equal(ctl_req_split("/v1/hosts/12345678", "/v1/hosts/", name, sizeof(name),
	    &rest), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_body_bounds),
		cmocka_unit_test(test_protect),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
