/*
 * ctl_req.c: fleetd's API request bodies and path names, decoded without
 * evhttp (see ctl_req.h).
 *
 * This is the part of the API that reads what a client sent, so it is kept
 * pure and small enough for a fuzz target to reach every branch. The rules
 * are the ones ctl_api.c had inline, kept to the byte because clients and
 * tests/integ/t_fleetd_api.sh read the answers: the body is copied and
 * NUL-terminated before cJSON sees it (a NUL byte ends it), anything but a
 * JSON object is "not a JSON object", an empty string counts as absent for
 * names, and the first of two equal keys wins (cJSON's lookup). Strings are
 * copied out so the caller holds no cJSON tree.
 */
#include "controller/ctl_req.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A body the route does not take: 400 with msg. */
static int
ctl_req_bad(const char *msg, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", msg);
	return 400;
}

static int
ctl_req_oom(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory");
	return 500;
}

/* Zero r and parse the body as a JSON object: the tree, or NULL with the
 * status in *code and the message in err. */
static cJSON *
ctl_req_object(const char *body, size_t len, struct ctl_req *r, int *code, char *err,
    size_t errlen)
{
	char *buf = len < SIZE_MAX ? malloc(len + 1) : NULL;
	cJSON *j;

	memset(r, 0, sizeof(*r));
	if (!buf) {
		*code = ctl_req_oom(err, errlen);
		return NULL;
	}
	if (len)
		memcpy(buf, body, len);
	buf[len] = '\0';
	j = cJSON_Parse(buf);
	free(buf);
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		*code = ctl_req_bad("request body is not a JSON object", err, errlen);
		return NULL;
	}
	return j;
}

/* The value of key when it is a non-empty string, else NULL. */
static const char *
ctl_req_str(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* *dst = a copy of s (NULL stays NULL). 0, or -1 when memory ran out. */
static int
ctl_req_dup(char **dst, const char *s)
{
	*dst = s ? strdup(s) : NULL;
	return s && !*dst ? -1 : 0;
}

/* Drop the tree; on failure also what was copied. Returns code. */
static int
ctl_req_done(cJSON *j, struct ctl_req *r, int code)
{
	cJSON_Delete(j);
	if (code)
		ctl_req_clear(r);
	return code;
}

int
ctl_req_migrate(const char *body, size_t len, struct ctl_req *r, char *err, size_t errlen)
{
	int code = 0;
	cJSON *j = ctl_req_object(body, len, r, &code, err, errlen);
	const char *vm, *to;

	if (!j)
		return code;
	vm = ctl_req_str(j, "vm");
	to = ctl_req_str(j, "to");
	if (!vm || !to)
		code = ctl_req_bad("fields 'vm' and 'to' (strings) are required", err, errlen);
	else if (ctl_req_dup(&r->vm, vm) < 0 || ctl_req_dup(&r->to, to) < 0 ||
	    ctl_req_dup(&r->reason, ctl_req_str(j, "reason")) < 0)
		code = ctl_req_oom(err, errlen);
	return ctl_req_done(j, r, code);
}

int
ctl_req_protect(const char *body, size_t len, struct ctl_req *r, char *err, size_t errlen)
{
	int code = 0;
	cJSON *j = ctl_req_object(body, len, r, &code, err, errlen);
	const char *mode;

	if (!j)
		return code;
	mode = ctl_req_str(j, "mode");
	if (!mode || ctl_protect_parse(mode, &r->mode) < 0)
		code = ctl_req_bad("field 'mode' must be \"hot\", \"warm\" or \"none\"", err,
		    errlen);
	else if (ctl_req_dup(&r->region, ctl_req_str(j, "region")) < 0)
		code = ctl_req_oom(err, errlen);
	return ctl_req_done(j, r, code);
}

int
ctl_req_target(const char *body, size_t len, struct ctl_req *r, char *err, size_t errlen)
{
	int code = 0;
	cJSON *j = ctl_req_object(body, len, r, &code, err, errlen);
	const cJSON *v;
	const char *text = NULL;
	char num[32];

	if (!j)
		return code;
	v = cJSON_GetObjectItemCaseSensitive(j, "target");
	if (cJSON_IsString(v)) {
		text = v->valuestring;
	} else if (cJSON_IsNumber(v)) {
		/* Judged as text, as if the client had sent the digits quoted. */
		snprintf(num, sizeof(num), "%.15g", v->valuedouble);
		text = num;
	} else if (!cJSON_IsNull(v)) {
		code = ctl_req_bad("field 'target' is required: a count (\"3\"), a share of the "
		    "fleet (\"40%\"), or null to clear", err, errlen);
	}
	if (text && ctl_req_dup(&r->target, text) < 0)
		code = ctl_req_oom(err, errlen);
	return ctl_req_done(j, r, code);
}

void
ctl_req_clear(struct ctl_req *r)
{
	free(r->vm);
	free(r->to);
	free(r->reason);
	free(r->region);
	free(r->target);
	memset(r, 0, sizeof(*r));
}

int
ctl_req_split(const char *path, const char *prefix, char *name, size_t namelen,
    const char **rest)
{
	size_t pl = strlen(prefix);
	const char *s, *e;

	if (strncmp(path, prefix, pl) != 0)
		return -1;
	s = path + pl;
	e = strchr(s, '/');
	if (!e)
		e = s + strlen(s);
	if (e == s || (size_t)(e - s) >= namelen)
		return -1;
	memcpy(name, s, (size_t)(e - s));
	name[e - s] = '\0';
	*rest = *e ? e + 1 : "";
	return 0;
}
