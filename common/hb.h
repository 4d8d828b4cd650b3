/*
 * hb.h: the heartbeat between host agents and the controller leader, the
 * second channel that keeps a Redis outage from fencing the fleet
 * (docs/design.md, "Fencing and Redis").
 *
 * One UDP datagram each way, text, authenticated with HMAC-SHA256 under a
 * key the agents and the controllers share:
 *   agent -> every controller: PFHB1 ping HOST NONCE TS_MS WANT_MS HMAC
 *   leader -> agent:           PFHB1 grant HOST NONCE EPOCH GRANT_MS INSTANCE HMAC
 * A grant says "I lead (epoch), and promote none of your VMs within
 * GRANT_MS of receiving your ping". The agent counts the grant from when
 * it sent the ping, which is before the leader received it, so its idea
 * of the grant always ends first. NONCE is random per ping: a grant
 * answers exactly one ping and cannot be replayed. TS_MS (the agent's wall
 * clock) lets a controller refuse old or replayed pings. WANT_MS is the
 * grant the agent needs to bridge the gap to its next ping; the leader
 * grants that, up to its heartbeat_grant.
 */
#ifndef PF_HB_H
#define PF_HB_H

#include <stddef.h>
#include <stdint.h>

#define HB_MAX 512
#define HB_NAME_MAX 64

enum hb_kind { HB_PING = 1, HB_GRANT };

struct hb_msg {
	enum hb_kind kind;
	char host[HB_NAME_MAX];
	uint64_t nonce;
	int64_t ts_ms;		/* ping */
	int64_t want_ms;	/* ping */
	uint64_t epoch;		/* grant */
	int64_t grant_ms;	/* grant */
	char instance[HB_NAME_MAX];	/* grant */
};

/* Format m (kind, and the fields of its kind) signed with key into buf:
 * its length, or -1 when a name is too long or has spaces. */
int hb_format(const struct hb_msg *m, const char *key, char *buf, size_t len);
/* Parse and verify n bytes: 0, or -1 with why (malformed, bad HMAC). */
int hb_parse(const char *buf, size_t n, const char *key, struct hb_msg *m, char *why,
    size_t whylen);

#endif
