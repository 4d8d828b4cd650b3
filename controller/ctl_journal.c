/*
 * ctl_journal.c: the controller's journal. Every action becomes one event:
 * a log line, an entry in an in-memory ring (what the API and `fleetctl
 * events` read, so they work while Redis is down), and an entry in the
 * capped Redis stream pf:events for other consumers (the leader's only).
 */
#include "controller/fleetd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
ctl_journal(struct fleetd *env, const char *type, const char *fmt, ...)
{
	struct ctl_event *e;
	va_list ap;
	char seq[24];

	if (!env->events)
		env->events = calloc(CTL_JOURNAL_KEEP, sizeof(*env->events));
	if (!env->events)
		return;
	e = &env->events[env->event_seq % CTL_JOURNAL_KEEP];
	memset(e, 0, sizeof(*e));
	e->seq = ++env->event_seq;
	e->ts_ms = clock_wall_ms();
	str_copy(e->type, type, sizeof(e->type));
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	log_info("%s %s", type, e->text);
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->seq);
	/* Only the leader writes the shared journal: a follower's view (its
	 * own libvirt observations, its step-down) stays in its log and ring. */
	if (env->redis && ctl_leader_is(env))
		rlink_command(env->redis, NULL, NULL,
		    "XADD pf:events MAXLEN ~ 100000 * seq %s ts_ms %lld type %s text %s", seq,
		    (long long)e->ts_ms, e->type, e->text);
}

cJSON *
ctl_journal_json(struct fleetd *env, uint64_t since, int limit)
{
	cJSON *arr = cJSON_CreateArray();
	uint64_t first = env->event_seq > CTL_JOURNAL_KEEP ? env->event_seq - CTL_JOURNAL_KEEP + 1 : 1;

	if (since + 1 > first)
		first = since + 1;
	if (limit > 0 && env->event_seq >= first && env->event_seq - first + 1 > (uint64_t)limit)
		first = env->event_seq - (uint64_t)limit + 1;
	for (uint64_t s = first; env->events && s <= env->event_seq; s++) {
		struct ctl_event *e = &env->events[(s - 1) % CTL_JOURNAL_KEEP];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "seq", (double)e->seq);
		cJSON_AddNumberToObject(o, "ts_ms", (double)e->ts_ms);
		cJSON_AddStringToObject(o, "type", e->type);
		cJSON_AddStringToObject(o, "text", e->text);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}
