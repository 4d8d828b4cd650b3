/* test_conf.c: INI loading against a key table, and its error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/util.h"

struct tc_host {
	char name[32];
	char uri[128];
	long long mem;
};

struct tc_conf {
	char listen[64];
	long long workers;
	int verbose;
	long long tick_ms;
	long long buf;
	int port;	/* CONF_FUNC */
	struct tc_host hosts[4];
	int nhosts;
};

static int
tc_parse_port(void *field, const char *value, char *err, size_t errlen)
{
	int p = atoi(value);

	if (p <= 0 || p > 65535) {
		snprintf(err, errlen, "bad port '%s'", value);
		return -1;
	}
	*(int *)field = p;
	return 0;
}

static void *
tc_host_instance(void *cfg, const char *name, char *err, size_t errlen)
{
	struct tc_conf *c = cfg;

	for (int i = 0; i < c->nhosts; i++)
		if (strcmp(c->hosts[i].name, name) == 0) {
			snprintf(err, errlen, "host '%s' defined twice", name);
			return NULL;
		}
	if (c->nhosts == 4) {
		snprintf(err, errlen, "too many hosts");
		return NULL;
	}
	str_copy(c->hosts[c->nhosts].name, name, sizeof(c->hosts[0].name));
	return &c->hosts[c->nhosts++];
}

static const struct conf_section tc_sections[] = {
	{ "", 0, NULL },
	{ "main", 0, NULL },
	{ "host", 1, tc_host_instance },
	{ NULL, 0, NULL },
};

static const struct conf_key tc_keys[] = {
	{ "", "listen", CONF_STR, offsetof(struct tc_conf, listen), 0, 64, NULL },
	{ "main", "workers", CONF_INT, offsetof(struct tc_conf, workers), 1, 64, NULL },
	{ "main", "verbose", CONF_BOOL, offsetof(struct tc_conf, verbose), 0, 0, NULL },
	{ "main", "tick", CONF_MS, offsetof(struct tc_conf, tick_ms), 10, 60000, NULL },
	{ "main", "buffer", CONF_BYTES, offsetof(struct tc_conf, buf), 0, 0, NULL },
	{ "main", "port", CONF_FUNC, offsetof(struct tc_conf, port), 0, 0, tc_parse_port },
	{ "host", "uri", CONF_STR, offsetof(struct tc_host, uri), 0, 128, NULL },
	{ "host", "memory", CONF_BYTES, offsetof(struct tc_host, mem), 0, 0, NULL },
	{ NULL, NULL, 0, 0, 0, 0, NULL },
};

static char tc_path[64];

/* Write text to a fresh temporary file and load it. */
static int
tc_load(const char *text, struct tc_conf *c, char *err, size_t errlen)
{
	int fd;

	snprintf(tc_path, sizeof(tc_path), "/tmp/test_conf.XXXXXX");
	fd = mkstemp(tc_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	memset(c, 0, sizeof(*c));
	int r = conf_load(tc_path, tc_sections, tc_keys, c, err, errlen);
	unlink(tc_path);
	return r;
}

static void
test_good_file(void **state)
{
	struct tc_conf c;
	char err[256] = "";

	(void)state;
	assert_int_equal(tc_load("listen = 0.0.0.0:8080\n"
	    "; a comment\n"
	    "[main]\nworkers = 4\nverbose = yes\ntick = 250ms\nbuffer = 64k\nport = 9000\n"
	    "[host eu-1]\nuri = qemu+tcp://10.77.1.11/system\nmemory = 8G\n"
	    "[host \"us-1\"]\nuri = qemu+tcp://10.77.2.11/system\n",
	    &c, err, sizeof(err)), 0);
	assert_string_equal(c.listen, "0.0.0.0:8080");
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.verbose, 1);
	assert_int_equal(c.tick_ms, 250);
	assert_int_equal(c.buf, 65536);
	assert_int_equal(c.port, 9000);
	assert_int_equal(c.nhosts, 2);
	assert_string_equal(c.hosts[0].name, "eu-1");
	assert_int_equal(c.hosts[0].mem, 8LL << 30);
	assert_string_equal(c.hosts[1].name, "us-1");
	assert_string_equal(c.hosts[1].uri, "qemu+tcp://10.77.2.11/system");
}

/* Each bad file must fail with "path:line: message". */
static void
expect_error(const char *text, int line, const char *msg)
{
	struct tc_conf c;
	char err[512], want[512];

	assert_int_equal(tc_load(text, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%d: %s", tc_path, line, msg);
	assert_string_equal(err, want);
}

static void
test_errors_name_file_line_key(void **state)
{
	(void)state;
	expect_error("[main]\nworkers = 2\nwrokers = 3\n", 3,
	    "unknown key 'wrokers' in section [main]");
	expect_error("listen = x\nbogus = 1\n", 2, "unknown key 'bogus'");
	expect_error("[mian]\nworkers = 1\n", 2, "unknown section [mian]");
	expect_error("[main]\nworkers = 100\n", 2,
	    "value '100' for 'workers' out of range [1, 64]");
	expect_error("[main]\nworkers = four\n", 2, "bad integer 'four' for 'workers'");
	expect_error("[main]\ntick = 10\n", 2, "bad duration '10' (write e.g. 500ms, 10s, 5m)");
	expect_error("[main]\nbuffer = 3T\n", 2, "bad size '3T' (write e.g. 4096, 64k, 8M, 1G)");
	expect_error("[main]\nverbose = maybe\n", 2, "bad boolean 'maybe' (write yes or no)");
	expect_error("[main]\nport = 70000\n", 2, "bad port '70000'");
	expect_error("[host]\nuri = x\n", 2, "section [host] needs a name, as in [host NAME]");
	expect_error("[main x]\nworkers = 1\n", 2, "section [main] takes no name");
	expect_error("[host a]\nuri = x\n[host a]\nuri = y\n", 4,
	    "[host a]: host 'a' defined twice");
	expect_error("[main]\n\nthis line has no equals\n", 3,
	    "syntax error (expected 'key = value' or '[section]')");
	/* A syntax error before a bad key is the one reported. */
	expect_error("junk\n[main]\nbogus = 1\n", 1,
	    "syntax error (expected 'key = value' or '[section]')");
}

static void
test_string_too_long(void **state)
{
	char text[200];

	(void)state;
	snprintf(text, sizeof(text), "listen = %0100d\n", 1);
	expect_error(text, 1, "value for 'listen' longer than 63 characters");
}

static void
test_missing_file(void **state)
{
	struct tc_conf c;
	char err[256];

	(void)state;
	assert_int_equal(conf_load("/nonexistent/x.conf", tc_sections, tc_keys, &c, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/x.conf: cannot open: No such file or directory");
}

static void
test_value_parsers(void **state)
{
	long long v;
	int b;
	char err[128];

	(void)state;
	assert_int_equal(conf_parse_ms("0", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 0);
	assert_int_equal(conf_parse_ms("2m", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(conf_parse_ms("1h", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(conf_parse_ms("-5s", &v, err, sizeof(err)), -1);
	assert_int_equal(conf_parse_ms("5 s", &v, err, sizeof(err)), -1);
	assert_int_equal(conf_parse_bytes("1G", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 1LL << 30);
	assert_int_equal(conf_parse_bytes("99999999999999999G", &v, err, sizeof(err)), -1);
	assert_int_equal(conf_parse_bool("Off", &b, err, sizeof(err)), 0);
	assert_int_equal(b, 0);
}

static void
test_hostport(void **state)
{
	char h[64], field[128], lvl[16], err[128];
	int p;

	(void)state;
	assert_int_equal(hostport_split("10.0.0.1:6379", h, sizeof(h), &p), 0);
	assert_string_equal(h, "10.0.0.1");
	assert_int_equal(p, 6379);
	assert_int_equal(hostport_split("[fd77::1]:8480", h, sizeof(h), &p), 0);
	assert_string_equal(h, "fd77::1");
	assert_int_equal(p, 8480);
	assert_int_equal(hostport_split("10.0.0.1", h, sizeof(h), &p), -1);
	assert_int_equal(hostport_split("10.0.0.1:0", h, sizeof(h), &p), -1);
	assert_int_equal(hostport_split("10.0.0.1:", h, sizeof(h), &p), -1);
	assert_int_equal(hostport_split("10.0.0.1:70000", h, sizeof(h), &p), -1);
	assert_int_equal(hostport_split(":80", h, sizeof(h), &p), -1);
	assert_int_equal(hostport_split("[fd77::1]8480", h, sizeof(h), &p), -1);
	assert_int_equal(conf_parse_hostport(field, "127.0.0.1:8480", err, sizeof(err)), 0);
	assert_string_equal(field, "127.0.0.1:8480");
	assert_int_equal(conf_parse_hostport(field, "localhost", err, sizeof(err)), -1);
	assert_string_equal(err, "bad address 'localhost' (write IP:PORT)");
	assert_int_equal(conf_parse_log_level(lvl, "warn", err, sizeof(err)), 0);
	assert_string_equal(lvl, "warn");
	assert_int_equal(conf_parse_log_level(lvl, "loud", err, sizeof(err)), -1);
	assert_string_equal(err, "bad log_level 'loud' (debug, info, warn, error)");
}

static void
test_str_helpers(void **state)
{
	char buf[8], t[32];

	(void)state;
	assert_int_equal(str_copy(buf, "abcdefghij", sizeof(buf)), 10);
	assert_string_equal(buf, "abcdefg");
	strcpy(t, "  \tpadded value \n");
	assert_string_equal(str_trim(t), "padded value");
	strcpy(t, "   ");
	assert_string_equal(str_trim(t), "");
	assert_int_equal(str_hexval('0'), 0);
	assert_int_equal(str_hexval('a'), 10);
	assert_int_equal(str_hexval('F'), 15);
	assert_int_equal(str_hexval('g'), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_errors_name_file_line_key),
		cmocka_unit_test(test_string_too_long),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_value_parsers),
		cmocka_unit_test(test_str_helpers),
		cmocka_unit_test(test_hostport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
