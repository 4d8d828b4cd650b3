/*
 * util.h: tiny helpers every component uses: clocks and bounded strings.
 */
#ifndef PF_UTIL_H
#define PF_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds on the monotonic clock: for durations and deadlines. */
static inline int64_t
clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds on the monotonic clock. */
static inline int64_t
clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds since the epoch: for timestamps others read (Redis, logs). */
static inline int64_t
clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Copy src into dst of size dstsize, always NUL-terminated (when dstsize > 0).
 * Returns strlen(src): a result >= dstsize means src was truncated.
 */
size_t str_copy(char *dst, const char *src, size_t dstsize);

/* Remove leading and trailing white space in place; returns s. */
char *str_trim(char *s);

/* 1 when given equals secret, 0 otherwise, in a time that depends on the
 * secret's length only (bearer tokens). */
int str_secret_eq(const char *given, const char *secret);

/* Value of a hexadecimal digit, or -1. */
int str_hexval(char c);

/* Split "HOST:PORT" or "[IPV6]:PORT" into host (hostlen bytes) and a port in
 * 1..65535. 0, or -1 when s is not of that form. */
int hostport_split(const char *s, char *host, size_t hostlen, int *port);

struct sockaddr_storage;
/* "IP:PORT" or "[IPV6]:PORT" (numeric, no DNS) into ss and its length: 0,
 * or -1 when s is not of that form. */
int sockaddr_parse(const char *s, struct sockaddr_storage *ss, unsigned *len);

#endif
