/*
 * ctl_req.h: fleetd's API requests decoded, apart from evhttp: the JSON
 * bodies of the routes that take one, and the names inside paths. Pure (no
 * I/O, no model, no logging), so the fuzz target tests/fuzz/fuzz_ctl_api.c
 * and the unit tests run it on bytes alone; ctl_api.c sends what it returns.
 *
 * A decoder takes the body as it arrived (len bytes, not NUL-terminated; it
 * stops at a NUL byte, as a C string would) and fills a struct ctl_req with
 * strings it owns. It returns 0, or the HTTP status to answer (400 for a
 * body that is not what the route takes, 500 when memory ran out) with the
 * text of the API's {"error": ...} in err; on failure nothing is left to
 * free. docs/api.md lists the bodies and their errors.
 */
#ifndef CTL_REQ_H
#define CTL_REQ_H

#include <stddef.h>

#include "controller/ctl_model.h"

/* What a request body said. A decoder fills its own fields and leaves the
 * others NULL; ctl_req_clear() frees them all. */
struct ctl_req {
	/* POST /v1/migrations {"vm": V, "to": HOST, "reason": R} */
	char *vm, *to;		/* non-empty */
	char *reason;		/* NULL: not given (or empty) */
	/* POST /v1/vms/NAME/protect {"mode": "hot|warm|none", "region": R} */
	enum ctl_protect mode;
	char *region;		/* NULL: not given (or empty) */
	/* PUT /v1/regions/NAME/target {"target": "3" | "40%" | 3 | null} */
	char *target;		/* as text (a JSON number as %.15g); NULL: null, clear it */
};

int ctl_req_migrate(const char *body, size_t len, struct ctl_req *r, char *err,
    size_t errlen);
int ctl_req_protect(const char *body, size_t len, struct ctl_req *r, char *err,
    size_t errlen);
int ctl_req_target(const char *body, size_t len, struct ctl_req *r, char *err,
    size_t errlen);
/* Free what a decoder filled in and zero r. r may be all zero. */
void ctl_req_clear(struct ctl_req *r);

/*
 * "/v1/hosts/eu-1/drain" with prefix "/v1/hosts/": name "eu-1" (at most
 * namelen - 1 characters, none of them '/'), *rest "drain" (points into
 * path; "" when nothing follows the name). 0, or -1 when path does not
 * start with prefix or the name is empty or too long.
 */
int ctl_req_split(const char *path, const char *prefix, char *name, size_t namelen,
    const char **rest);

#endif
