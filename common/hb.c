/*
 * hb.c: heartbeat datagrams (see hb.h).
 */
#include "common/hb.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB_MAC_HEX 64

static int
hb_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < HB_NAME_MAX && strcspn(s, " \t\r\n") == n;
}

/* The hex HMAC-SHA256 of data under key into hex (HB_MAC_HEX + 1). */
static int
hb_mac(const char *key, const char *data, size_t n, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, n, md, &mdlen) ||
	    mdlen != HB_MAC_HEX / 2)
		return -1;
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int
hb_format(const struct hb_msg *m, const char *key, char *buf, size_t len)
{
	char hex[HB_MAC_HEX + 1];
	int n;

	if (!hb_name_ok(m->host) || (m->kind == HB_GRANT && !hb_name_ok(m->instance)))
		return -1;
	if (m->kind == HB_PING)
		n = snprintf(buf, len, "PFHB1 ping %s %" PRIu64 " %" PRId64 " %" PRId64, m->host,
		    m->nonce, m->ts_ms, m->want_ms);
	else if (m->kind == HB_GRANT)
		n = snprintf(buf, len, "PFHB1 grant %s %" PRIu64 " %" PRIu64 " %" PRId64 " %s", m->host,
		    m->nonce, m->epoch, m->grant_ms, m->instance);
	else
		return -1;
	if (n < 0 || (size_t)n + 1 + HB_MAC_HEX + 1 > len || hb_mac(key, buf, (size_t)n, hex) < 0)
		return -1;
	return n + snprintf(buf + n, len - (size_t)n, " %s", hex);
}

int
hb_parse(const char *buf, size_t n, const char *key, struct hb_msg *m, char *why, size_t whylen)
{
	char text[HB_MAX + 1], kind[8], hex[HB_MAC_HEX + 1], *sp;
	int used = 0;

	memset(m, 0, sizeof(*m));
	if (n == 0 || n > HB_MAX || memchr(buf, '\0', n)) {
		snprintf(why, whylen, "malformed: %zu bytes", n);
		return -1;
	}
	memcpy(text, buf, n);
	text[n] = '\0';
	/* The MAC covers everything before the last space. */
	sp = strrchr(text, ' ');
	if (!sp || strlen(sp + 1) != HB_MAC_HEX || hb_mac(key, text, (size_t)(sp - text), hex) < 0 ||
	    CRYPTO_memcmp(hex, sp + 1, HB_MAC_HEX) != 0) {
		snprintf(why, whylen, "bad or missing HMAC (another heartbeat_key?)");
		return -1;
	}
	*sp = '\0';
	if (sscanf(text, "PFHB1 %7s %63s %" SCNu64 "%n", kind, m->host, &m->nonce, &used) != 3) {
		snprintf(why, whylen, "malformed: not 'PFHB1 KIND HOST NONCE ...'");
		return -1;
	}
	if (strcmp(kind, "ping") == 0) {
		int more = 0;

		m->kind = HB_PING;
		if (sscanf(text + used, " %" SCNd64 " %" SCNd64 "%n", &m->ts_ms, &m->want_ms,
		    &more) != 2 || text[used + more] != '\0' || m->want_ms < 0) {
			snprintf(why, whylen, "malformed ping");
			return -1;
		}
		return 0;
	}
	if (strcmp(kind, "grant") == 0) {
		int more = 0;

		m->kind = HB_GRANT;
		if (sscanf(text + used, " %" SCNu64 " %" SCNd64 " %63s%n", &m->epoch, &m->grant_ms,
		    m->instance, &more) != 3 || text[used + more] != '\0' || m->grant_ms < 0) {
			snprintf(why, whylen, "malformed grant");
			return -1;
		}
		return 0;
	}
	snprintf(why, whylen, "unknown kind '%s'", kind);
	return -1;
}
