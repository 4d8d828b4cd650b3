/*
 * nm_order.c: handover orders (their wire form is in docs/redis-keys.md)
 * and the plan steps that carry them out.
 *
 * Parsing is strict about what it understands and lenient about what it
 * does not: a missing or bad required field is an error naming the field,
 * an unknown field is ignored so that fleetd can add fields before every
 * agent knows them.
 *
 * The plan steps are written so that each is idempotent and each is the
 * inverse of another (prepare / withdraw on hosts, point / unpoint on the
 * edge): a retried order, or an order replayed after an agent restart,
 * converges on the same kernel state.
 */
#include "netmigrate/nm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
nm_op_name(enum nm_op op)
{
	switch (op) {
	case NM_OP_PREPARE:
		return "prepare";
	case NM_OP_ANNOUNCE:
		return "announce";
	case NM_OP_WITHDRAW:
		return "withdraw";
	case NM_OP_FENCE:
		return "fence";
	case NM_OP_UNFENCE:
		return "unfence";
	case NM_OP_UNROUTE:
		return "unroute";
	}
	return "?";
}

int
nm_ips_parse(const char *s, struct nm_ip *ips, int max, char *err, size_t errlen)
{
	char one[64];
	const char *p = s, *comma;
	size_t len;
	int n = 0, i;

	for (;;) {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0 || len >= sizeof(one)) {
			snprintf(err, errlen, "bad IP list '%.80s'", s);
			return -1;
		}
		if (n == max) {
			snprintf(err, errlen, "too many IPs (at most %d)", max);
			return -1;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		if (nm_ip_parse(one, &ips[n], err, errlen) < 0)
			return -1;
		for (i = 0; i < n; i++) {
			if (memcmp(&ips[i], &ips[n], sizeof(ips[n])) == 0) {
				snprintf(err, errlen, "IP '%s' listed twice", one);
				return -1;
			}
		}
		n++;
		if (!comma)
			return n;
		p = comma + 1;
	}
}

static int
nm_field_copy(char *dst, size_t size, const char *name, const char *v, char *err,
    size_t errlen)
{
	size_t len = strlen(v);

	if (len == 0 || len >= size) {
		snprintf(err, errlen, "field '%s' is empty or longer than %zu", name, size - 1);
		return -1;
	}
	memcpy(dst, v, len + 1);
	return 0;
}

static int
nm_u64_parse(const char *name, const char *v, uint64_t *out, char *err, size_t errlen)
{
	char *end;

	if (*v < '1' || *v > '9') {
		snprintf(err, errlen, "bad %s '%.40s'", name, v);
		return -1;
	}
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (*end || errno == ERANGE) {
		snprintf(err, errlen, "bad %s '%.40s'", name, v);
		return -1;
	}
	return 0;
}

int
nm_order_parse(struct nm_order *o, const char *const *fv, size_t n, char *err, size_t errlen)
{
	int have_op = 0, have_ips = 0;
	size_t i;

	memset(o, 0, sizeof(*o));
	if (n % 2) {
		snprintf(err, errlen, "odd number of fields");
		return -1;
	}
	for (i = 0; i < n; i += 2) {
		const char *k = fv[i], *v = fv[i + 1];

		if (strcmp(k, "id") == 0) {
			if (nm_field_copy(o->id, sizeof(o->id), k, v, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "vm") == 0) {
			if (nm_field_copy(o->vm, sizeof(o->vm), k, v, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "dev") == 0) {
			if (*v && nm_field_copy(o->dev, sizeof(o->dev), k, v, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "op") == 0) {
			if (strcmp(v, "prepare") == 0)
				o->op = NM_OP_PREPARE;
			else if (strcmp(v, "announce") == 0)
				o->op = NM_OP_ANNOUNCE;
			else if (strcmp(v, "withdraw") == 0)
				o->op = NM_OP_WITHDRAW;
			else if (strcmp(v, "fence") == 0)
				o->op = NM_OP_FENCE;
			else if (strcmp(v, "unfence") == 0)
				o->op = NM_OP_UNFENCE;
			else if (strcmp(v, "unroute") == 0)
				o->op = NM_OP_UNROUTE;
			else {
				snprintf(err, errlen, "unknown op '%.40s' (prepare, announce, withdraw, "
				    "fence, unfence, unroute)", v);
				return -1;
			}
			have_op = 1;
		} else if (strcmp(k, "ips") == 0) {
			o->nips = nm_ips_parse(v, o->ips, NM_ORDER_MAX_IPS, err, errlen);
			if (o->nips < 0)
				return -1;
			have_ips = 1;
		} else if (strcmp(k, "mac") == 0) {
			if (*v) {
				if (nm_mac_parse(v, o->mac, err, errlen) < 0)
					return -1;
				o->has_mac = 1;
			}
		} else if (strcmp(k, "epoch") == 0 || strcmp(k, "seq") == 0 ||
		    strcmp(k, "gen") == 0) {
			/* The leader's fencing token and the statement's version:
			 * strictly decimal, so a garbled one is an error, not 0. */
			uint64_t *dst = k[0] == 'e' ? &o->epoch : k[0] == 's' ? &o->seq : &o->gen;

			/* seq and gen may be 0 (no generation yet); an epoch may not. */
			if (k[0] != 'e' && strcmp(v, "0") == 0)
				*dst = 0;
			else if (*v && nm_u64_parse(k, v, dst, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "via") == 0) {
			if (*v) {
				if (nm_ip_parse(v, &o->via, err, errlen) < 0)
					return -1;
				o->has_via = 1;
			}
		}
	}
	if (!o->id[0] || !have_op || !o->vm[0] || !have_ips) {
		snprintf(err, errlen, "missing field '%s'", !o->id[0] ? "id" : !have_op ? "op" :
		    !o->vm[0] ? "vm" : "ips");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Plan steps */

static const char *
nm_plan_dev(const struct nm_order *o, const char *dev)
{
	return o->dev[0] ? o->dev : dev && *dev ? dev : NULL;
}

int
nm_plan_prepare(struct nm_ctx *ctx, const struct nm_order *o, const char *dev, char *err,
    size_t errlen)
{
	const char *d = nm_plan_dev(o, dev);
	int i, done = 0;

	if (!d) {
		snprintf(err, errlen, "prepare: no device (the order has no dev, none configured)");
		return -1;
	}
	for (i = 0; i < o->nips; i++) {
		if (nm_route_set(ctx, &o->ips[i], NULL, d, err, errlen) < 0)
			return -1;
		done++;
		if (o->has_mac) {
			if (nm_neigh_set(ctx, &o->ips[i], o->mac, d, err, errlen) < 0)
				return -1;
			done++;
		}
	}
	if (o->has_via) {
		if (nm_proxy_set(ctx, &o->via, d, err, errlen) < 0)
			return -1;
		done++;
	}
	return done;
}

int
nm_plan_withdraw(struct nm_ctx *ctx, const struct nm_order *o, const char *dev, char *err,
    size_t errlen)
{
	const char *d = nm_plan_dev(o, dev);
	int i, gone, done = 0;

	if (!d) {
		snprintf(err, errlen, "withdraw: no device (the order has no dev, none configured)");
		return -1;
	}
	for (i = 0; i < o->nips; i++) {
		if (nm_route_del(ctx, &o->ips[i], NULL, d, &gone, err, errlen) < 0)
			return -1;
		done += !gone;
		if (nm_neigh_del(ctx, &o->ips[i], d, err, errlen) < 0)
			return -1;
	}
	/* The gateway's proxy entry is shared by every VM behind the same
	 * gateway: it stays (answering for a gateway is harmless), and a
	 * host that no longer hosts any of them may drop it by hand. */
	return done;
}

int
nm_plan_point(struct nm_ctx *ctx, const struct nm_order *o, const char *dev, char *err,
    size_t errlen)
{
	const char *d = nm_plan_dev(o, dev);
	int i;

	if (!o->has_via) {
		snprintf(err, errlen, "edge order needs 'via' (the destination host)");
		return -1;
	}
	for (i = 0; i < o->nips; i++) {
		if (o->ips[i].family != o->via.family) {
			char a[NM_IPSTR_MAX];

			snprintf(err, errlen, "IP %s and via are not the same family",
			    nm_ip_fmt(&o->ips[i], a, sizeof(a)));
			return -1;
		}
		if (nm_route_set(ctx, &o->ips[i], &o->via, d, err, errlen) < 0)
			return -1;
	}
	return o->nips;
}

int
nm_plan_unpoint(struct nm_ctx *ctx, const struct nm_order *o, const char *dev, char *err,
    size_t errlen)
{
	const char *d = nm_plan_dev(o, dev);
	int i, gone, done = 0;

	for (i = 0; i < o->nips; i++) {
		if (nm_route_del(ctx, &o->ips[i], o->has_via ? &o->via : NULL, d, &gone, err,
		    errlen) < 0)
			return -1;
		done += !gone;
	}
	return done;
}
