/*
 * conf.c: table-driven INI loading on top of libinih (see conf.h).
 *
 * libinih calls conf_handler() once per "name = value" line and returns the
 * line number of the first line the handler refused. The handler keeps the
 * message of that first refusal; conf_load() joins file, line and message.
 * Section headers are split into a kind and an optional instance name; the
 * struct a section fills is looked up once per header line and cached. The
 * reader sees every raw line, so it counts lines and notices headers.
 */
#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct conf_run {
	const struct conf_section *sections;
	const struct conf_key *keys;
	void *cfg;
	char cur_section[256];	/* header the cache below belongs to */
	const struct conf_section *cur;
	void *cur_base;
	char cur_kind[128];
	char msg[512];		/* first error's message */
	int failed;		/* line of the first error the handler made, or 0 */
	FILE *fp;
	int line;		/* line the reader last returned */
	int at_line_start;
};

static int
conf_fail(struct conf_run *run, const char *fmt, ...)
{
	va_list ap;

	if (!run->failed) {
		va_start(ap, fmt);
		vsnprintf(run->msg, sizeof(run->msg), fmt, ap);
		va_end(ap);
		run->failed = run->line;
	}
	return 0;	/* tells inih this line is bad */
}

static int
conf_bounds(long long v, const struct conf_key *k, const char *value,
    char *err, size_t errlen)
{
	if ((k->min || k->max) && (v < k->min || v > k->max)) {
		snprintf(err, errlen, "value '%s' for '%s' out of range [%lld, %lld]",
		    value, k->name, k->min, k->max);
		return -1;
	}
	return 0;
}

/* Parse "<number><unit>" with units from table; bare numbers use mult0. */
struct conf_unit {
	const char *suffix;
	long long mult;
};

static int
conf_parse_scaled(const char *value, const struct conf_unit *units,
    long long mult0, long long *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(value, &end, 10);
	if (end == value || errno != 0 || n < 0)
		return -1;
	if (*end == '\0') {
		if (mult0 == 0 && n != 0)
			return -1;
		*out = n * (mult0 ? mult0 : 1);
		return 0;
	}
	for (; units->suffix; units++) {
		if (strcasecmp(end, units->suffix) == 0) {
			if (n > 0 && units->mult > __LONG_LONG_MAX__ / n)
				return -1;
			*out = n * units->mult;
			return 0;
		}
	}
	return -1;
}

int
conf_parse_ms(const char *value, long long *out, char *err, size_t errlen)
{
	static const struct conf_unit units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ NULL, 0 },
	};

	/* A bare number other than 0 is refused: "10" could mean ms or s. */
	if (conf_parse_scaled(value, units, 0, out) < 0) {
		snprintf(err, errlen, "bad duration '%s' (write e.g. 500ms, 10s, 5m)", value);
		return -1;
	}
	return 0;
}

int
conf_parse_bytes(const char *value, long long *out, char *err, size_t errlen)
{
	static const struct conf_unit units[] = {
		{ "k", 1LL << 10 }, { "m", 1LL << 20 }, { "g", 1LL << 30 },
		{ "kb", 1LL << 10 }, { "mb", 1LL << 20 }, { "gb", 1LL << 30 },
		{ NULL, 0 },
	};

	if (conf_parse_scaled(value, units, 1, out) < 0) {
		snprintf(err, errlen, "bad size '%s' (write e.g. 4096, 64k, 8M, 1G)", value);
		return -1;
	}
	return 0;
}

int
conf_parse_bool(const char *value, int *out, char *err, size_t errlen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < PF_ARRAY_LEN(yes); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	snprintf(err, errlen, "bad boolean '%s' (write yes or no)", value);
	return -1;
}

int
conf_parse_hostport(void *field, const char *value, char *err, size_t errlen)
{
	char host[64];
	int port;

	if (hostport_split(value, host, sizeof(host), &port) < 0 ||
	    str_copy(field, value, 128) >= 128) {
		snprintf(err, errlen, "bad address '%s' (write IP:PORT)", value);
		return -1;
	}
	return 0;
}

int
conf_parse_log_level(void *field, const char *value, char *err, size_t errlen)
{
	enum log_level l;

	if (log_level_parse(value, &l) < 0) {
		snprintf(err, errlen, "bad log_level '%s' (debug, info, warn, error)", value);
		return -1;
	}
	str_copy(field, value, 16);
	return 0;
}

static int
conf_set(const struct conf_key *k, void *base, const char *value, char *err,
    size_t errlen)
{
	void *field = (char *)base + k->offset;
	long long v;
	char *end;

	switch (k->type) {
	case CONF_STR:
		if (str_copy(field, value, (size_t)k->max) >= (size_t)k->max) {
			snprintf(err, errlen, "value for '%s' longer than %lld characters",
			    k->name, k->max - 1);
			return -1;
		}
		return 0;
	case CONF_INT:
		errno = 0;
		v = strtoll(value, &end, 10);
		if (end == value || *end != '\0' || errno != 0) {
			snprintf(err, errlen, "bad integer '%s' for '%s'", value, k->name);
			return -1;
		}
		break;
	case CONF_BOOL:
		return conf_parse_bool(value, field, err, errlen);
	case CONF_MS:
		if (conf_parse_ms(value, &v, err, errlen) < 0)
			return -1;
		break;
	case CONF_BYTES:
		if (conf_parse_bytes(value, &v, err, errlen) < 0)
			return -1;
		break;
	case CONF_FUNC:
		return k->parse(field, value, err, errlen);
	default:
		snprintf(err, errlen, "key '%s' has no type", k->name);
		return -1;
	}
	if (conf_bounds(v, k, value, err, errlen) < 0)
		return -1;
	*(long long *)field = v;
	return 0;
}

/* Find the section struct for a header like "host eu-1" (cached). */
static int
conf_enter(struct conf_run *run, const char *header)
{
	char buf[256], *name;
	const struct conf_section *s;
	char err[256];

	if (run->cur && strcmp(run->cur_section, header) == 0)
		return 0;
	if (str_copy(buf, header, sizeof(buf)) >= sizeof(buf))
		return conf_fail(run, "section name too long"), -1;
	name = strpbrk(buf, " \t");
	if (name) {
		*name++ = '\0';
		name = str_trim(name);
		size_t len = strlen(name);
		if (len >= 2 && name[0] == '"' && name[len - 1] == '"') {
			name[len - 1] = '\0';
			name++;
		}
	}
	for (s = run->sections; s->kind; s++)
		if (strcmp(s->kind, buf) == 0)
			break;
	if (!s->kind)
		return conf_fail(run, "unknown section [%s]", header), -1;
	if (s->named && (!name || !*name))
		return conf_fail(run, "section [%s] needs a name, as in [%s NAME]", buf, buf), -1;
	if (!s->named && name && *name)
		return conf_fail(run, "section [%s] takes no name", buf), -1;
	if (s->named) {
		run->cur_base = s->instance(run->cfg, name, err, sizeof(err));
		if (!run->cur_base)
			return conf_fail(run, "[%s]: %s", header, err), -1;
	} else {
		run->cur_base = run->cfg;
	}
	run->cur = s;
	str_copy(run->cur_section, header, sizeof(run->cur_section));
	str_copy(run->cur_kind, buf, sizeof(run->cur_kind));
	return 0;
}

static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_run *run = user;
	const struct conf_key *k;
	char err[400];

	if (run->failed)
		return 1;	/* report only the first error */
	if (conf_enter(run, section) < 0)
		return 0;
	for (k = run->keys; k->name; k++)
		if (strcmp(k->section, run->cur_kind) == 0 && strcmp(k->name, name) == 0)
			break;
	if (!k->name) {
		if (*section)
			return conf_fail(run, "unknown key '%s' in section [%s]", name, section);
		return conf_fail(run, "unknown key '%s'", name);
	}
	if (conf_set(k, run->cur_base, value, err, sizeof(err)) < 0)
		return conf_fail(run, "%s", err);
	return 1;
}

/* inih's line reader, counting lines so every error can name its line. */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_run *run = stream;
	char *s = fgets(str, num, run->fp);

	if (s) {
		if (run->at_line_start) {
			run->line++;
			/* A header starts a new section even when its text repeats
			 * the one before ("[host a]" twice): look it up afresh. */
			if (s[strspn(s, " \t")] == '[')
				run->cur = NULL;
		}
		run->at_line_start = strchr(s, '\n') != NULL;
	}
	return s;
}

int
conf_load(const char *path, const struct conf_section *sections,
    const struct conf_key *keys, void *cfg, char *err, size_t errlen)
{
	struct conf_run run = {
		.sections = sections, .keys = keys, .cfg = cfg, .at_line_start = 1,
	};
	int line;

	run.fp = fopen(path, "r");
	if (!run.fp) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	line = ini_parse_stream(conf_reader, &run, conf_handler, &run);
	fclose(run.fp);
	if (line == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (line > 0 && (!run.failed || line < run.failed)) {
		/* inih refused a line itself (no '=', unclosed '['). */
		snprintf(err, errlen, "%s:%d: syntax error (expected 'key = value' or '[section]')",
		    path, line);
		return -1;
	}
	if (run.failed) {
		snprintf(err, errlen, "%s:%d: %s", path, run.failed, run.msg);
		return -1;
	}
	return 0;
}
