/*
 * fuzz_nm_order.c: libFuzzer target for handover orders (netmigrate/
 * nm_order.c), fed the way netmigrated feeds them: the input is split at
 * every NUL byte into the field/value strings of one Redis stream entry
 * (field, value, field, value, ...; a NUL is also where the agent's C
 * strings end), at most 64 of them as nmd_entries() takes, each in a heap
 * block of its own size so ASan sees a read past its end.
 *
 * Invariants checked: a refusal always says why; an accepted order has an
 * id and a vm that fit their fields and are the last values given for
 * them, an op that has a name, 1 to NM_ORDER_MAX_IPS addresses that are
 * all IPv4 or IPv6 and all different, a host MAC, and an epoch exactly
 * when one was given. Every string is also run through nm_ips_parse()
 * directly, with the agent's bound and with a bound of 2: counts stay
 * within the bound, and each address formats and parses back to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netmigrate/nm.h"

#define FZ_MAX_FIELDS 64	/* nmd_entries' fv[64] */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_check_ips(const struct nm_ip *ips, int n)
{
	char text[NM_IPSTR_MAX], err[128];
	struct nm_ip back;

	for (int i = 0; i < n; i++) {
		if (ips[i].family != AF_INET && ips[i].family != AF_INET6)
			abort();
		for (int k = 0; k < i; k++)
			if (memcmp(&ips[k], &ips[i], sizeof(ips[i])) == 0)
				abort();
		nm_ip_fmt(&ips[i], text, sizeof(text));
		if (nm_ip_parse(text, &back, err, sizeof(err)) < 0 ||
		    memcmp(&back, &ips[i], sizeof(back)) != 0)
			abort();
	}
}

/* nm_ips_parse alone, bounded by max. */
static void
fz_ips(const char *s, int max)
{
	static struct nm_ip ips[NM_ORDER_MAX_IPS];
	char err[400] = "";
	int n = nm_ips_parse(s, ips, max, err, sizeof(err));

	if (n < 0 ? n != -1 || !err[0] : n < 1 || n > max)
		abort();
	if (n > 0)
		fz_check_ips(ips, n);
}

/* The last value given for field k, or NULL. */
static const char *
fz_last(const char *const *fv, size_t n, const char *k)
{
	const char *v = NULL;

	for (size_t i = 0; i + 1 < n; i += 2)
		if (strcmp(fv[i], k) == 0)
			v = fv[i + 1];
	return v;
}

static void
fz_check_order(const struct nm_order *o, const char *const *fv, size_t n)
{
	const char *id = fz_last(fv, n, "id"), *vm = fz_last(fv, n, "vm");
	int epoch_given = 0;

	if (!id || strnlen(o->id, sizeof(o->id)) == sizeof(o->id) || strcmp(o->id, id) != 0)
		abort();
	if (!vm || strnlen(o->vm, sizeof(o->vm)) == sizeof(o->vm) || strcmp(o->vm, vm) != 0)
		abort();
	if (strcmp(nm_op_name(o->op), "?") == 0)
		abort();
	if (o->nips < 1 || o->nips > NM_ORDER_MAX_IPS)
		abort();
	fz_check_ips(o->ips, o->nips);
	if (strnlen(o->dev, sizeof(o->dev)) == sizeof(o->dev))
		abort();
	if (o->has_mac && ((o->mac[0] & 1) || !memcmp(o->mac, "\0\0\0\0\0\0", 6)))
		abort();
	if (o->has_via && o->via.family != AF_INET && o->via.family != AF_INET6)
		abort();
	for (size_t i = 0; i + 1 < n; i += 2)
		epoch_given |= strcmp(fv[i], "epoch") == 0 && fv[i + 1][0];
	if (epoch_given != (o->epoch != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nm_order o;
	char *fv[FZ_MAX_FIELDS];
	char err[400];
	size_t n = 0, off = 0;
	int rc;

	/* Split at every NUL: "a\0b" is two strings, "a\0" is "a" and "". */
	while (n < FZ_MAX_FIELDS) {
		const uint8_t *nul = memchr(data + off, 0, size - off);
		size_t len = nul ? (size_t)(nul - (data + off)) : size - off;

		fv[n] = malloc(len + 1);
		if (!fv[n])
			break;
		memcpy(fv[n], data + off, len);
		fv[n++][len] = '\0';
		if (!nul)
			break;
		off += len + 1;
	}
	err[0] = '\0';
	rc = nm_order_parse(&o, (const char *const *)fv, n, err, sizeof(err));
	if (rc == 0)
		fz_check_order(&o, (const char *const *)fv, n);
	else if (rc != -1 || !err[0])
		abort();
	for (size_t i = 0; i < n; i++) {
		fz_ips(fv[i], NM_ORDER_MAX_IPS);
		fz_ips(fv[i], 2);
		free(fv[i]);
	}
	return 0;
}
