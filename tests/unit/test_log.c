/* test_log.c: log lines are single key=value lines, filtered by level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* Run fn with stderr redirected to a pipe; return what it wrote. */
static void
capture(void (*fn)(void), char *out, size_t outlen)
{
	int p[2], saved;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], out, outlen - 1);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
}

static void emit_info(void) { log_info("migrate vm=%s took_ms=%d", "px-1", 812); }
static void emit_debug(void) { log_debug("noise"); }
static void emit_warn(void) { errno = ENOENT; log_warn("open %s", "/x"); }

static void
test_line_format(void **state)
{
	char buf[512];

	(void)state;
	log_init("testprog", LOG_LVL_INFO);
	capture(emit_info, buf, sizeof(buf));
	assert_non_null(strstr(buf, "level=info prog=testprog migrate vm=px-1 took_ms=812\n"));
	assert_int_equal(strncmp(buf, "ts=", 3), 0);
	/* exactly one line */
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void
test_level_filter(void **state)
{
	char buf[512];

	(void)state;
	log_init("testprog", LOG_LVL_INFO);
	capture(emit_debug, buf, sizeof(buf));
	assert_string_equal(buf, "");
	log_set_level(LOG_LVL_DEBUG);
	capture(emit_debug, buf, sizeof(buf));
	assert_non_null(strstr(buf, "level=debug"));
}

static void
test_warn_appends_errno(void **state)
{
	char buf[512];

	(void)state;
	log_init("testprog", LOG_LVL_INFO);
	capture(emit_warn, buf, sizeof(buf));
	assert_non_null(strstr(buf, "level=warn prog=testprog open /x: No such file or directory\n"));
}

static void
test_level_parse(void **state)
{
	enum log_level l;

	(void)state;
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("error", &l), 0);
	assert_int_equal(l, LOG_LVL_ERR);
	assert_int_equal(log_level_parse("loud", &l), -1);
}

static void emit_long(void)
{
	char big[5000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("big=%s", big);
}

static void
test_long_line_truncated(void **state)
{
	char buf[8192];

	(void)state;
	log_init("testprog", LOG_LVL_INFO);
	capture(emit_long, buf, sizeof(buf));
	assert_true(strlen(buf) < 2048);
	assert_int_equal(buf[strlen(buf) - 1], '\n');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format),
		cmocka_unit_test(test_level_filter),
		cmocka_unit_test(test_warn_appends_errno),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_long_line_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
