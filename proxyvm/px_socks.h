/*
 * px_socks.h: SOCKS5 wire format (RFC 1928) and username/password
 * sub-negotiation (RFC 1929).
 *
 * Pure code: parsers over the bytes received so far, and one reply builder
 * with one errno-to-reply table, so every SOCKS5 answer the proxy sends is
 * made in one place. No I/O, no allocation, no logging.
 */
#ifndef PX_SOCKS_H
#define PX_SOCKS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { PX_SOCKS_ERR = -1, PX_SOCKS_DONE = 0, PX_SOCKS_MORE = 1 };

/* Methods (RFC 1928 section 3). */
#define PX_SOCKS_M_NOAUTH	0x00
#define PX_SOCKS_M_USERPASS	0x02
#define PX_SOCKS_M_NONE		0xff

/* Commands and address types (section 4). */
#define PX_SOCKS_CMD_CONNECT	0x01
#define PX_SOCKS_CMD_BIND	0x02
#define PX_SOCKS_CMD_UDP	0x03
#define PX_SOCKS_ATYP_IPV4	0x01
#define PX_SOCKS_ATYP_DOMAIN	0x03
#define PX_SOCKS_ATYP_IPV6	0x04

/* Reply codes (section 6). */
enum px_socks_rep {
	PX_SOCKS_OK = 0x00,
	PX_SOCKS_FAIL = 0x01,		/* general SOCKS server failure */
	PX_SOCKS_RULESET = 0x02,	/* connection not allowed by ruleset */
	PX_SOCKS_NETUNREACH = 0x03,
	PX_SOCKS_HOSTUNREACH = 0x04,
	PX_SOCKS_REFUSED = 0x05,
	PX_SOCKS_TTL = 0x06,
	PX_SOCKS_CMD_UNSUPP = 0x07,
	PX_SOCKS_ATYP_UNSUPP = 0x08,
};

/*
 * Greeting: VER NMETHODS METHODS. On PX_SOCKS_DONE, *used bytes were the
 * greeting and *methods has bit m set for every method m <= 7 offered.
 * PX_SOCKS_ERR when VER is not 5 or no method is offered.
 */
int px_socks_parse_greeting(const uint8_t *p, size_t n, size_t *used, unsigned *methods);

/*
 * RFC 1929 request: VER(1) ULEN UNAME PLEN PASSWD. user and pass receive
 * NUL-terminated copies (each up to 255 bytes, so 256-byte buffers).
 * PX_SOCKS_ERR on a wrong version, an empty name or a NUL inside either.
 */
int px_socks_parse_userpass(const uint8_t *p, size_t n, size_t *used,
    char user[256], char pass[256]);

struct px_socks_req {
	uint8_t cmd;
	uint8_t atyp;
	char host[256];		/* domain, or the address literal in text form */
	struct sockaddr_storage addr;	/* IPv4 / IPv6 requests (port set too) */
	uint16_t port;
};

/*
 * Request: VER CMD RSV ATYP DST.ADDR DST.PORT. On PX_SOCKS_ERR, *rep is the
 * reply to send before closing (0xff: close without a reply, bad version).
 * Commands other than CONNECT parse fine: the caller refuses them with
 * PX_SOCKS_CMD_UNSUPP so the decision stays visible where it is made.
 */
int px_socks_parse_request(const uint8_t *p, size_t n, size_t *used,
    struct px_socks_req *r, uint8_t *rep);

/* The reply for an errno value of a failed connect (or a proxy decision:
 * EACCES for a denied destination, EAI-style DNS failures map to EHOSTUNREACH). */
enum px_socks_rep px_socks_rep_from_errno(int err);
const char *px_socks_rep_str(enum px_socks_rep rep);

/* Write the reply VER REP RSV ATYP BND.ADDR BND.PORT into out (at least 22
 * bytes) for bound (NULL: 0.0.0.0:0). Returns its length. */
size_t px_socks_reply(uint8_t *out, enum px_socks_rep rep, const struct sockaddr *bound);

#endif
