/*
 * log.h: one line per event on stderr, in key=value form.
 *
 *   ts=2026-11-22T03:55:00.123Z level=info prog=fleetd migrate vm=px-1 took_ms=812
 *
 * The message itself follows the convention "<action> key=value ...". Each
 * line is built in a local buffer and written with one write(2), so lines
 * from several threads never interleave. Libraries never log: they fill an
 * error buffer and the daemon decides how loud to be.
 */
#ifndef PF_LOG_H
#define PF_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_DEBUG,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERR,
};

#define PF_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Set the program name shown on every line and the lowest level printed.
 * Call once at start-up, before any thread is made. */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
/* Parse "debug", "info", "warn" or "error"; -1 on anything else. */
int log_level_parse(const char *s, enum log_level *out);

void log_debug(const char *fmt, ...) PF_PRINTF(1, 2);
void log_info(const char *fmt, ...) PF_PRINTF(1, 2);
/* log_warn appends ": <strerror(errno)>"; log_warnx does not. */
void log_warn(const char *fmt, ...) PF_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) PF_PRINTF(1, 2);
void log_error(const char *fmt, ...) PF_PRINTF(1, 2);
/* Log at error level and exit(1); fatal appends strerror(errno). */
_Noreturn void fatal(const char *fmt, ...) PF_PRINTF(1, 2);
_Noreturn void fatalx(const char *fmt, ...) PF_PRINTF(1, 2);

#endif
