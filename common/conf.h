/*
 * conf.h: INI configuration files, parsed by libinih against a key table.
 *
 * A daemon describes its file once, as a table of sections and keys with
 * their types and the offset of the field each one fills. conf_load() reads
 * the file into a struct the caller already filled with defaults, and on the
 * first error returns -1 with "file:line: message" in the error buffer, e.g.
 *
 *   /etc/proxyfleet/fleetd.conf:12: unknown key 'lisen' in section [api]
 *
 * Reload follows the relayd pattern: load into a new struct, validate, swap,
 * and keep the old one when anything fails. This module never logs.
 *
 * Sections are "[kind]" or, for repeated sections, "[kind NAME]" (one
 * instance per NAME, e.g. "[host eu-1]"). Keys before any header belong to
 * the section of kind "".
 */
#ifndef PF_CONF_H
#define PF_CONF_H

#include <stddef.h>

enum conf_type {
	CONF_STR,	/* char field[max]: the value, NUL-terminated */
	CONF_INT,	/* long long, within [min, max] */
	CONF_BOOL,	/* int: yes/no, true/false, on/off, 1/0 */
	CONF_MS,	/* long long milliseconds: "250ms", "10s", "5m", "1h" */
	CONF_BYTES,	/* long long bytes: "512", "64k", "8M", "1G" (powers of 1024) */
	CONF_FUNC,	/* custom: parse(field, value, err, errlen) */
};

struct conf_key {
	const char *section;	/* section kind this key belongs to */
	const char *name;
	enum conf_type type;
	size_t offset;		/* of the field in the section's struct */
	long long min, max;	/* bounds (INT, MS, BYTES; both 0: none); STR: field size */
	/* CONF_FUNC: parse value into field; 0 or -1 with a message in err. */
	int (*parse)(void *field, const char *value, char *err, size_t errlen);
};

struct conf_section {
	const char *kind;	/* "" for keys before any header */
	int named;		/* 1: "[kind NAME]", instance() gives each NAME a struct */
	/*
	 * Named sections only: return the struct that this NAME's keys fill
	 * (found or made by the caller, owned by cfg), or NULL with a message
	 * in err. Unnamed sections fill the cfg struct itself.
	 */
	void *(*instance)(void *cfg, const char *name, char *err, size_t errlen);
};

/*
 * Read path into cfg. sections and keys end with an entry whose kind / name
 * is NULL. Returns 0, or -1 with "path:line: message" in err. On error cfg
 * may be partly filled: load into a scratch struct, not the live one.
 */
int conf_load(const char *path, const struct conf_section *sections,
    const struct conf_key *keys, void *cfg, char *err, size_t errlen);

/* Value parsers conf_load uses, for callers parsing values of their own
 * (CONF_FUNC fields, API input). 0, or -1 with a message in err. */
int conf_parse_ms(const char *value, long long *out, char *err, size_t errlen);
int conf_parse_bytes(const char *value, long long *out, char *err, size_t errlen);
int conf_parse_bool(const char *value, int *out, char *err, size_t errlen);

/* CONF_FUNC parsers every daemon uses. conf_parse_hostport: "IP:PORT" or
 * "[IPV6]:PORT" into a char[128] field (no names: nothing may resolve on
 * an event loop). conf_parse_log_level: debug, info, warn or error into a
 * char[16] field. */
int conf_parse_hostport(void *field, const char *value, char *err, size_t errlen);
int conf_parse_log_level(void *field, const char *value, char *err, size_t errlen);

#endif
