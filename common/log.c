/*
 * log.c: leveled logging to stderr, one write(2) per line (see log.h).
 *
 * The program name and level are the only state; they are set once at
 * start-up, before threads exist, so reading them needs no lock.
 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "proxyfleet";
static enum log_level log_min = LOG_LVL_INFO;

static const char *const log_names[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_ERR] = "error",
};

void
log_init(const char *prog, enum log_level level)
{
	log_prog = prog;
	log_min = level;
}

void
log_set_level(enum log_level level)
{
	log_min = level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Format one line and write it at once. errnum >= 0 appends strerror. */
static void
log_vline(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s prog=%s ",
	    ts.tv_nsec / 1000000, log_names[level], log_prog);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n = n + (size_t)r < sizeof(line) ? n + (size_t)r : sizeof(line) - 1;
	if (errnum >= 0 && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(errnum));
		if (r > 0)
			n = n + (size_t)r < sizeof(line) ? n + (size_t)r : sizeof(line) - 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write: lines from threads never interleave. Nothing to do
	 * if stderr is gone. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

#define LOG_BODY(level, errnum)                                           \
	do {                                                              \
		va_list ap;                                               \
		va_start(ap, fmt);                                        \
		log_vline((level), (errnum), fmt, ap);                    \
		va_end(ap);                                               \
	} while (0)

void log_debug(const char *fmt, ...) { LOG_BODY(LOG_LVL_DEBUG, -1); }
void log_info(const char *fmt, ...) { LOG_BODY(LOG_LVL_INFO, -1); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_LVL_WARN, -1); }
void log_error(const char *fmt, ...) { LOG_BODY(LOG_LVL_ERR, -1); }

void
log_warn(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY(LOG_LVL_WARN, e);
}

void
fatal(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY(LOG_LVL_ERR, e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERR, -1);
	exit(1);
}
