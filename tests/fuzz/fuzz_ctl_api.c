/*
 * fuzz_ctl_api.c: libFuzzer target for what fleetd's API reads from a
 * client: the request bodies (controller/ctl_req.c, which ctl_api.c calls
 * before anything touches the fleet), the names split out of paths, and the
 * region target value ("3", "40%") that PUT /v1/regions/NAME/target hands
 * to ctl_geo_target_parse().
 *
 * The first byte picks the decoder: '0' migrate, '1' protect, '2' region
 * target, '3' path split, '4' target value (any byte: (byte - '0') modulo
 * 5, so the seeds stay readable); the rest is its input, in a heap block
 * of exactly its size and without a terminating NUL, as evhttp gives a
 * body, so ASan sees a read past the length.
 *
 * Invariants checked: a decoder answers 0, 400 or 500, a refusal has its
 * text and leaves nothing to free, an accepted body has the fields its
 * route needs (non-empty names, a known protect mode); a split name fits
 * its buffer, holds no '/', and rest points just past it; a target value
 * that parses is within its bounds and formats back to the same target.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl_geo.h"
#include "controller/ctl_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A decoded value as PUT .../target judges it: parse, bounds, round trip. */
static void
fz_target_value(const char *s)
{
	struct ctl_geo_target t, again;
	char why[256] = "", text[16];

	if (ctl_geo_target_parse(s, &t, why, sizeof(why)) < 0) {
		if (!why[0])
			abort();
		return;
	}
	if ((t.kind != GEO_COUNT && t.kind != GEO_SHARE) || t.value < 0 ||
	    t.value > (t.kind == GEO_SHARE ? 100 : CTL_GEO_MAX_COUNT))
		abort();
	ctl_geo_target_str(&t, text, sizeof(text));
	if (ctl_geo_target_parse(text, &again, why, sizeof(why)) < 0 ||
	    again.kind != t.kind || again.value != t.value)
		abort();
}

static void
fz_body(int which, const char *body, size_t len)
{
	static int (*const dec[])(const char *, size_t, struct ctl_req *, char *, size_t) = {
		ctl_req_migrate, ctl_req_protect, ctl_req_target,
	};
	struct ctl_req r;
	char err[256] = "";
	int code = dec[which](body, len, &r, err, sizeof(err));

	if (code) {
		if ((code != 400 && code != 500) || !err[0] || r.vm || r.to || r.reason ||
		    r.region || r.target)
			abort();
		return;
	}
	switch (which) {
	case 0:
		if (!r.vm || !r.vm[0] || !r.to || !r.to[0] || (r.reason && !r.reason[0]))
			abort();
		break;
	case 1:
		if ((r.mode != PROTECT_NONE && r.mode != PROTECT_HOT && r.mode != PROTECT_WARM) ||
		    (r.region && !r.region[0]))
			abort();
		break;
	default:
		if (r.target)
			fz_target_value(r.target);
		break;
	}
	ctl_req_clear(&r);
}

/* "PATH\0PREFIX" (no NUL: PATH under "/v1/hosts/"); the name buffer's size
 * comes from the path's length so every bound gets tried. */
static void
fz_split(const char *in, size_t len)
{
	char *path = malloc(len + 1), *name;
	const char *prefix, *rest = NULL;
	size_t namelen, plen;

	if (!path)
		return;
	memcpy(path, in, len);
	path[len] = '\0';
	prefix = strlen(path) < len ? path + strlen(path) + 1 : "/v1/hosts/";
	namelen = 1 + len % 70;
	name = malloc(namelen);
	if (name && ctl_req_split(path, prefix, name, namelen, &rest) == 0) {
		plen = strlen(prefix);
		if (strncmp(path, prefix, plen) != 0 || !name[0] || strlen(name) >= namelen ||
		    strchr(name, '/') || strncmp(path + plen, name, strlen(name)) != 0)
			abort();
		if (*rest && rest != path + plen + strlen(name) + 1)
			abort();
	}
	free(name);
	free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, text[65];
	int which;

	if (size < 1)
		return 0;
	which = (uint8_t)(data[0] - '0') % 5;
	size--;
	in = malloc(size ? size : 1);
	if (!in)
		return 0;
	memcpy(in, data + 1, size);
	if (which < 3) {
		fz_body(which, in, size);
	} else if (which == 3) {
		fz_split(in, size);
	} else {
		if (size >= sizeof(text))
			size = sizeof(text) - 1;
		memcpy(text, in, size);
		text[size] = '\0';
		fz_target_value(text);
	}
	free(in);
	return 0;
}
