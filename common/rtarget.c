/*
 * rtarget.c: parsing where the Redis is (see rtarget.h).
 */
#include "common/rtarget.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

int
rlink_sentinels_parse(struct rlink_target *t, const char *list, char *err, size_t errlen)
{
	char buf[512], *save = NULL;

	t->nsentinels = 0;
	str_copy(buf, list, sizeof(buf));
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (t->nsentinels == RLINK_SENTINELS_MAX) {
			snprintf(err, errlen, "more than %d sentinels", RLINK_SENTINELS_MAX);
			return -1;
		}
		if (hostport_split(tok, t->sentinel_host[t->nsentinels],
		    sizeof(t->sentinel_host[0]), &t->sentinel_port[t->nsentinels]) < 0) {
			snprintf(err, errlen, "sentinel '%s' is not IP:PORT", tok);
			return -1;
		}
		t->nsentinels++;
	}
	return 0;
}

int
rlink_target_make(struct rlink_target *t, const char *redis, const char *password,
    const char *sentinels, const char *master, const char *sentinel_password, char *err,
    size_t errlen)
{
	memset(t, 0, sizeof(*t));
	str_copy(t->password, password ? password : "", sizeof(t->password));
	if (sentinels && *sentinels) {
		if (rlink_sentinels_parse(t, sentinels, err, errlen) < 0)
			return -1;
		if (!master || !*master) {
			snprintf(err, errlen, "sentinels need the master's name");
			return -1;
		}
		str_copy(t->master, master, sizeof(t->master));
		str_copy(t->sentinel_password, sentinel_password ? sentinel_password : "",
		    sizeof(t->sentinel_password));
		return 0;
	}
	if (!redis || hostport_split(redis, t->host, sizeof(t->host), &t->port) < 0) {
		snprintf(err, errlen, "redis address '%s' is not IP:PORT", redis ? redis : "");
		return -1;
	}
	return 0;
}

