/*
 * rlink.h: one asynchronous Redis connection that heals itself.
 *
 * Built on hiredis' async API and its libevent adapter, so nothing blocks
 * the loop. It connects (with a timeout), authenticates, and reconnects with
 * exponential backoff (100 ms doubling to 5 s) whenever the link drops or a
 * reply is overdue (hiredis 0.14 has no command timeout of its own). While
 * the link is down, rlink_command() refuses at once, so callers never queue
 * unbounded work behind a dead Redis: telemetry is simply skipped, and the
 * owner hears of each change of state once through its state callback.
 *
 * Request/response commands only: no SUBSCRIBE, and blocking commands
 * (XREAD BLOCK) must block for less than RLINK_STALL_MS.
 *
 * With Sentinel (a target with sentinels), every connection attempt first
 * asks the sentinels, one after another, for the master's address
 * (SENTINEL get-master-addr-by-name, with the sentinels' own AUTH), then
 * connects there, authenticates, and checks with ROLE that it is the master
 * before it counts as up. A failover reaches the link as a dropped
 * connection (Sentinel kills the old master's clients when it demotes it)
 * or as a READONLY error; either drops the link, and the next attempt asks
 * the sentinels again (the first retry after a lost link comes in 100 ms).
 * Every function runs on the loop thread of the base given to rlink_new().
 */
#ifndef PF_RLINK_H
#define PF_RLINK_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common/rtarget.h"

struct event_base;
struct rlink;

#define RLINK_STALL_MS 5000	/* a reply later than this drops the link */
#define RLINK_MAX_PENDING 100000	/* commands in flight before refusing */

/*
 * Called on every change of state: up = 1 once connected and
 * authenticated; up = 0 with a reason when the link is lost or a connection
 * attempt fails (only for the first failure in a row, so a long outage
 * gives one line, not one per retry).
 */
typedef void rlink_state_fn(struct rlink *rl, int up, const char *why, void *arg);

/* Connecting starts at once. NULL on allocation failure. */
struct rlink *rlink_open(struct event_base *base, const struct rlink_target *t,
    rlink_state_fn *state_fn, void *arg);
/* rlink_open of one address; password may be NULL or "". */
struct rlink *rlink_new(struct event_base *base, const char *host, int port,
    const char *password, rlink_state_fn *state_fn, void *arg);
/* The address connected to (or last tried), "IP:PORT". */
const char *rlink_addr(const struct rlink *rl);

/*
 * Send a command. fn (may be NULL) is called exactly once, with the reply,
 * or with a NULL reply when the link drops before the answer. Returns -1
 * without calling fn when the link is down or too many commands are pending.
 */
int rlink_command(struct rlink *rl, redisCallbackFn *fn, void *priv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int rlink_command_argv(struct rlink *rl, redisCallbackFn *fn, void *priv, int argc,
    const char **argv, const size_t *argvlen);

int rlink_is_up(const struct rlink *rl);

/* The value of field name in a flat [field, value, ...] array reply
 * (HGETALL, a stream entry's fields), or NULL. */
const char *rlink_field(const redisReply *r, const char *name);
/* Commands sent and not yet answered. */
unsigned rlink_pending(const struct rlink *rl);
/* Connection attempts that failed since rlink_new() (refused, timed out,
 * AUTH refused; a lost link is not one, the retries after it are): each
 * retry of an outage counts, though the state callback hears only the
 * first. */
unsigned long rlink_failures(const struct rlink *rl);

/* Close the link; pending callbacks get a NULL reply first. Accepts NULL. */
void rlink_free(struct rlink *rl);

#endif
