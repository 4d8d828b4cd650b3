/*
 * rtarget.h: where a daemon's Redis is, as its configuration says: one
 * address, or a master the sentinels know by name. Pure (no Redis, no
 * loop), so the configuration loaders and their fuzz target check it.
 */
#ifndef PF_RTARGET_H
#define PF_RTARGET_H

#include <stddef.h>

#define RLINK_SENTINELS_MAX 5

/* Where the Redis is: one address, or a master known to sentinels. */
struct rlink_target {
	char host[64];		/* IP address (no DNS on the loop); unused with sentinels */
	int port;
	char password[128];	/* the master's (and its replicas'); "" none */
	int nsentinels;		/* 0: connect to host:port */
	char sentinel_host[RLINK_SENTINELS_MAX][64];
	int sentinel_port[RLINK_SENTINELS_MAX];
	char master[64];	/* the name the sentinels monitor it under */
	char sentinel_password[128];	/* the sentinels' requirepass; "" none */
};

/* "IP:PORT,IP:PORT" into t's sentinels: 0, or -1 with err. */
int rlink_sentinels_parse(struct rlink_target *t, const char *list, char *err, size_t errlen);
/* The target a daemon's configuration describes: redis (IP:PORT, used when
 * sentinels is ""), its password, the sentinels' list, the master's name
 * and the sentinels' password. 0, or -1 with err. */
int rlink_target_make(struct rlink_target *t, const char *redis, const char *password,
    const char *sentinels, const char *master, const char *sentinel_password, char *err,
    size_t errlen);

#endif
