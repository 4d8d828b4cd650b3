/*
 * px_http.c: HTTP/1.1 message heads and chunked bodies (see px_http.h).
 *
 * One pass over the head: start line, then one field per line. The grammar
 * is RFC 9112's, applied strictly where leniency would let a request mean
 * two things to two parsers (request smuggling): bare CR, white space before
 * the colon, obsolete line folding, Content-Length together with
 * Transfer-Encoding, or two different Content-Lengths are all refused. Bare LF
 * line ends are accepted (RFC 9112 section 2.2 allows it).
 */
#include "proxyvm/px_http.h"
#include "common/util.h"

#include <string.h>
#include <strings.h>

/* tchar of RFC 9110 section 5.6.2 */
static int
px_is_tchar(unsigned char c)
{
	if (c >= 'a' && c <= 'z')
		return 1;
	if (c >= 'A' && c <= 'Z')
		return 1;
	if (c >= '0' && c <= '9')
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value octets: VCHAR, SP, HTAB, obs-text. */
static int
px_is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

int
px_span_eq(struct px_span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

const char *
px_http_reason(int status)
{
	switch (status) {
	case 200: return "Connection established";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static int
px_http_fail(struct px_http_head *h, int status, const char *why)
{
	h->err_status = status;
	h->err_why = why;
	return PX_HTTP_ERR;
}

/*
 * Find the end of the line starting at p (bounded by end). Returns the
 * position after the line end and sets *eol to the position of the end (CR
 * or LF); NULL when the line is incomplete; *bad = 1 on a bare CR.
 */
static const char *
px_line(const char *p, const char *end, const char **eol, int *bad)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	const char *cr;

	*bad = 0;
	cr = memchr(p, '\r', (size_t)((lf ? lf : end) - p));
	if (cr && (cr + 1 < end || lf) && cr + 1 != lf) {
		*bad = 1;
		return NULL;
	}
	if (!lf)
		return NULL;
	*eol = (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
	return lf + 1;
}

/* Trim optional white space (SP, HTAB) on both sides. */
static struct px_span
px_trim(const char *p, const char *e)
{
	struct px_span s;

	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	s.p = p;
	s.n = (size_t)(e - p);
	return s;
}

/* "HTTP/1.x" at p[0, 8): the minor version, or -1. */
static int
px_version(const char *p, size_t n)
{
	if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
		return -1;
	return p[7] - '0';
}

static int
px_parse_request_line(const char *p, const char *eol, struct px_http_head *h)
{
	const char *sp1, *sp2;

	for (sp1 = p; sp1 < eol && px_is_tchar((unsigned char)*sp1); sp1++)
		;
	if (sp1 == p || sp1 >= eol || *sp1 != ' ')
		return px_http_fail(h, 400, "bad method");
	h->method.p = p;
	h->method.n = (size_t)(sp1 - p);
	for (sp2 = sp1 + 1; sp2 < eol && *sp2 != ' '; sp2++)
		if ((unsigned char)*sp2 <= 0x20 || (unsigned char)*sp2 == 0x7f)
			return px_http_fail(h, 400, "bad request target");
	if (sp2 == sp1 + 1 || sp2 >= eol)
		return px_http_fail(h, 400, "bad request line");
	h->target.p = sp1 + 1;
	h->target.n = (size_t)(sp2 - sp1 - 1);
	if (eol - sp2 - 1 >= 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0 &&
	    px_version(sp2 + 1, (size_t)(eol - sp2 - 1)) < 0)
		return px_http_fail(h, 505, "HTTP version not supported");
	h->minor = px_version(sp2 + 1, (size_t)(eol - sp2 - 1));
	if (h->minor < 0)
		return px_http_fail(h, 400, "bad HTTP version");
	h->is_connect = px_span_eq(h->method, "CONNECT");
	return 0;
}

static int
px_parse_status_line(const char *p, const char *eol, struct px_http_head *h)
{
	if (eol - p < 12 || px_version(p, 8) < 0 || p[8] != ' ')
		return px_http_fail(h, 502, "bad status line");
	h->minor = p[7] - '0';
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return px_http_fail(h, 502, "bad status code");
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (h->status < 100 || (eol - p > 12 && p[12] != ' '))
		return px_http_fail(h, 502, "bad status line");
	return 0;
}

/* Does the comma-separated list s contain token tok? */
static int
px_list_has(struct px_span s, const char *tok)
{
	const char *p = s.p, *e = s.p + s.n, *c;

	while (p < e) {
		c = memchr(p, ',', (size_t)(e - p));
		if (!c)
			c = e;
		if (px_span_eq(px_trim(p, c), tok))
			return 1;
		p = c + 1;
	}
	return 0;
}

/* The last coding of a Transfer-Encoding list is "chunked"? */
static int
px_te_chunked_last(struct px_span s)
{
	const char *e = s.p + s.n, *c = e;

	while (c > s.p && c[-1] != ',')
		c--;
	return px_span_eq(px_trim(c, e), "chunked");
}

/* Fields that shape framing and persistence (RFC 9112 sections 6 and 9). */
static int
px_semantics(struct px_http_head *h, int flags)
{
	int resp = flags & PX_HTTP_RESPONSE;
	int has_cl = 0, has_te = 0, te_chunked = 0, conn_close = 0, conn_ka = 0;
	uint64_t cl = 0;
	int bad = resp ? 502 : 400;

	for (size_t i = 0; i < h->nhdrs; i++) {
		struct px_hdr *f = &h->hdrs[i];

		if (px_span_eq(f->name, "content-length")) {
			uint64_t v = 0;

			if (f->value.n == 0 || f->value.n > 19)
				return px_http_fail(h, bad, "bad Content-Length");
			for (size_t k = 0; k < f->value.n; k++) {
				if (f->value.p[k] < '0' || f->value.p[k] > '9')
					return px_http_fail(h, bad, "bad Content-Length");
				v = v * 10 + (uint64_t)(f->value.p[k] - '0');
			}
			if (has_cl && v != cl)
				return px_http_fail(h, bad, "conflicting Content-Length");
			has_cl = 1;
			cl = v;
		} else if (px_span_eq(f->name, "transfer-encoding")) {
			if (has_te)
				return px_http_fail(h, bad, "repeated Transfer-Encoding");
			has_te = 1;
			te_chunked = px_te_chunked_last(f->value);
		} else if (px_span_eq(f->name, "connection")) {
			conn_close |= px_list_has(f->value, "close");
			conn_ka |= px_list_has(f->value, "keep-alive");
		} else if (!resp && px_span_eq(f->name, "proxy-authorization")) {
			h->proxy_auth = f->value;
		}
	}
	if (has_te && has_cl)
		return px_http_fail(h, bad, "both Content-Length and Transfer-Encoding");
	h->keepalive = h->minor >= 1 ? !conn_close : (conn_ka && !conn_close);
	if (!resp) {
		if (has_te && !te_chunked)
			return px_http_fail(h, 400, "unsupported Transfer-Encoding");
		h->body = te_chunked ? PX_BODY_CHUNKED : has_cl ? PX_BODY_LENGTH : PX_BODY_NONE;
		h->clen = cl;
		if (h->body == PX_BODY_LENGTH && cl == 0)
			h->body = PX_BODY_NONE;
		return 0;
	}
	/* Responses: RFC 9112 section 6.3, in its order. */
	if ((flags & PX_HTTP_HEAD_REQ) || h->status < 200 || h->status == 204 ||
	    h->status == 304) {
		h->body = PX_BODY_NONE;
	} else if ((flags & PX_HTTP_CONNECT_REQ) && h->status < 300) {
		h->body = PX_BODY_NONE;
	} else if (has_te) {
		h->body = te_chunked ? PX_BODY_CHUNKED : PX_BODY_CLOSE;
	} else if (has_cl) {
		h->body = cl ? PX_BODY_LENGTH : PX_BODY_NONE;
		h->clen = cl;
	} else {
		h->body = PX_BODY_CLOSE;
	}
	if (h->body == PX_BODY_CLOSE)
		h->keepalive = 0;
	return 0;
}

int
px_http_parse_head(const char *buf, size_t len, int flags, size_t maxhead,
    struct px_hdr *hdrs, size_t maxhdrs, struct px_http_head *h)
{
	const char *p = buf, *end, *eol, *next, *colon;
	int bad, resp = flags & PX_HTTP_RESPONSE;

	memset(h, 0, sizeof(*h));
	h->hdrs = hdrs;
	end = buf + (len > maxhead ? maxhead : len);
	if (!resp)
		while (p < end && (*p == '\r' || *p == '\n'))
			p++;
	next = px_line(p, end, &eol, &bad);
	if (bad)
		return px_http_fail(h, resp ? 502 : 400, "bare CR in start line");
	if (!next) {
		/* Refuse a non-HTTP stream (a TLS hello, a SOCKS greeting) at its
		 * first byte rather than waiting for a line that never comes. */
		for (const char *q = p; !resp && q < end && *q != ' '; q++)
			if (!px_is_tchar((unsigned char)*q))
				return px_http_fail(h, 400, "bad method");
		goto more;
	}
	if ((resp ? px_parse_status_line(p, eol, h) : px_parse_request_line(p, eol, h)) < 0)
		return PX_HTTP_ERR;
	for (p = next;; p = next) {
		next = px_line(p, end, &eol, &bad);
		if (bad)
			return px_http_fail(h, resp ? 502 : 400, "bare CR in header");
		if (!next)
			goto more;
		if (eol == p)
			break;	/* the empty line ends the head */
		if (*p == ' ' || *p == '\t')
			return px_http_fail(h, resp ? 502 : 400, "obsolete line folding");
		for (colon = p; colon < eol && px_is_tchar((unsigned char)*colon); colon++)
			;
		if (colon == p || colon >= eol || *colon != ':')
			return px_http_fail(h, resp ? 502 : 400, "bad header field name");
		for (const char *v = colon + 1; v < eol; v++)
			if (!px_is_vchar((unsigned char)*v))
				return px_http_fail(h, resp ? 502 : 400, "bad header field value");
		if (h->nhdrs == maxhdrs)
			return px_http_fail(h, resp ? 502 : 431, "too many header fields");
		hdrs[h->nhdrs].name.p = p;
		hdrs[h->nhdrs].name.n = (size_t)(colon - p);
		hdrs[h->nhdrs].value = px_trim(colon + 1, eol);
		h->nhdrs++;
	}
	h->len = (size_t)(next - buf);
	return px_semantics(h, flags) < 0 ? PX_HTTP_ERR : PX_HTTP_DONE;
more:
	if (len >= maxhead)
		return px_http_fail(h, resp ? 502 : 431, "header section too large");
	return PX_HTTP_MORE;
}

/* Parse "host[:port]" or "[v6]:port" at s; port defaults to defport (0: required). */
static int
px_authority(struct px_span s, uint16_t defport, struct px_uri *u, const char **why)
{
	const char *p = s.p, *e = s.p + s.n, *hp, *he, *c;
	unsigned long port = 0;

	u->authority = s;
	if (s.n == 0)
		return *why = "empty host", -1;
	if (memchr(s.p, '@', s.n))
		return *why = "userinfo in URI", -1;
	if (*p == '[') {
		c = memchr(p, ']', s.n);
		if (!c || c == p + 1)
			return *why = "bad IPv6 literal", -1;
		hp = p + 1;
		he = c;
		c++;
		if (c < e && *c != ':')
			return *why = "bad authority", -1;
		for (const char *q = hp; q < he; q++)
			if (!(*q == ':' || *q == '.' || (*q >= '0' && *q <= '9') ||
			    (*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F')))
				return *why = "bad IPv6 literal", -1;
	} else {
		hp = p;
		c = memchr(p, ':', s.n);
		he = c ? c : e;
		for (const char *q = hp; q < he; q++)
			if (!(px_is_tchar((unsigned char)*q) && *q != '%' && *q != '|' &&
			    *q != '^' && *q != '`'))
				return *why = "bad host name", -1;
		if (he == hp)
			return *why = "empty host", -1;
	}
	if (c && c < e) {	/* ":port" */
		if (c + 1 == e || e - c - 1 > 5)
			return *why = "bad port", -1;
		for (const char *q = c + 1; q < e; q++) {
			if (*q < '0' || *q > '9')
				return *why = "bad port", -1;
			port = port * 10 + (unsigned long)(*q - '0');
		}
		if (port == 0 || port > 65535)
			return *why = "bad port", -1;
	} else {
		if (!defport)
			return *why = "port required", -1;
		port = defport;
	}
	if (he - hp > 253)
		return *why = "host name too long", -1;
	u->host.p = hp;
	u->host.n = (size_t)(he - hp);
	u->port = (uint16_t)port;
	return 0;
}

int
px_http_parse_target(struct px_span t, int is_connect, struct px_uri *u, const char **why)
{
	static const char slash[] = "/";
	const char *p, *e = t.p + t.n, *a;
	struct px_span auth;

	memset(u, 0, sizeof(*u));
	if (is_connect)
		return px_authority(t, 0, u, why);
	if (t.n < 7 || strncasecmp(t.p, "http://", 7) != 0) {
		if (t.n >= 8 && strncasecmp(t.p, "https://", 8) == 0)
			return *why = "https URI: use CONNECT", -1;
		return *why = "not an absolute http URI", -1;
	}
	a = t.p + 7;
	for (p = a; p < e && *p != '/' && *p != '?' && *p != '#'; p++)
		;
	auth.p = a;
	auth.n = (size_t)(p - a);
	if (px_authority(auth, 80, u, why) < 0)
		return -1;
	if (memchr(p, '#', (size_t)(e - p)))
		return *why = "fragment in request target", -1;
	if (p == e) {
		u->path.p = slash;
		u->path.n = 1;
	} else if (*p == '?') {
		/* "http://h?q": origin form needs the leading slash; the caller
		 * writes "/" then the path. Mark it with a path that starts at '?'. */
		u->path.p = p;
		u->path.n = (size_t)(e - p);
	} else {
		u->path.p = p;
		u->path.n = (size_t)(e - p);
	}
	return 0;
}

int
px_http_hdr_is_hop(const struct px_http_head *h, size_t i)
{
	static const char *const hop[] = {
		"connection", "proxy-connection", "keep-alive", "te", "trailer",
		"upgrade", "proxy-authorization", "proxy-authenticate",
	};
	struct px_span name = h->hdrs[i].name;

	for (size_t k = 0; k < sizeof(hop) / sizeof(hop[0]); k++)
		if (px_span_eq(name, hop[k]))
			return 1;
	if (!h->status && px_span_eq(name, "host"))
		return 1;
	/* Fields the Connection field names are hop-by-hop too. */
	for (size_t k = 0; k < h->nhdrs; k++) {
		struct px_span v = h->hdrs[k].value;
		const char *p = v.p, *e = v.p + v.n, *c;

		if (!px_span_eq(h->hdrs[k].name, "connection"))
			continue;
		while (p < e) {
			c = memchr(p, ',', (size_t)(e - p));
			if (!c)
				c = e;
			struct px_span tok = px_trim(p, c);
			if (tok.n == name.n && tok.n && strncasecmp(tok.p, name.p, tok.n) == 0)
				return 1;
			p = c + 1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Chunked bodies (RFC 9112 section 7.1)
 * ------------------------------------------------------------------------- */

enum {
	CK_SIZE,	/* first hex digit of a chunk size */
	CK_SIZE_MORE,	/* more digits, or extension, or line end */
	CK_EXT,		/* chunk extension up to LF */
	CK_SIZE_LF,	/* after CR of the size line */
	CK_DATA,
	CK_DATA_CR,	/* CRLF after chunk data */
	CK_DATA_LF,
	CK_TRAILER,	/* start of a trailer line (or the final empty line) */
	CK_TRAILER_LINE,
	CK_END_LF,	/* after the CR of the final empty line */
};

#define PX_CHUNK_LINE_MAX 4096

static void
px_chunk_size_done(struct px_chunk *c)
{
	c->digits = 0;
	c->state = c->left ? CK_DATA : CK_TRAILER;
}

ssize_t
px_chunk_feed(struct px_chunk *c, const char *p, size_t n)
{
	size_t i = 0;
	int d;

	while (i < n && !c->done) {
		char ch = p[i];

		switch (c->state) {
		case CK_SIZE:
		case CK_SIZE_MORE:
			i++;
			d = str_hexval(ch);
			if (d >= 0) {
				if (++c->digits > 15)
					return -1;
				c->left = c->left * 16 + (uint64_t)d;
				c->state = CK_SIZE_MORE;
			} else if (c->state == CK_SIZE) {
				return -1;
			} else if (ch == ';' || ch == ' ' || ch == '\t') {
				c->state = CK_EXT;
				c->linelen = 0;
			} else if (ch == '\r') {
				c->state = CK_SIZE_LF;
			} else if (ch == '\n') {
				px_chunk_size_done(c);
			} else {
				return -1;
			}
			break;
		case CK_EXT:
			i++;
			if (ch == '\n')
				px_chunk_size_done(c);
			else if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (!px_is_vchar((unsigned char)ch) ||
			    ++c->linelen > PX_CHUNK_LINE_MAX)
				return -1;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return -1;
			i++;
			px_chunk_size_done(c);
			break;
		case CK_DATA: {
			size_t take = n - i;

			if (take > c->left)
				take = (size_t)c->left;
			c->left -= take;
			i += take;
			if (!c->left)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch == '\n') {
				c->state = CK_SIZE;
			} else if (ch == '\r') {
				c->state = CK_DATA_LF;
			} else {
				return -1;
			}
			i++;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return -1;
			c->state = CK_SIZE;
			i++;
			break;
		case CK_TRAILER:
			if (ch == '\n') {
				c->done = 1;
			} else if (ch == '\r') {
				c->state = CK_END_LF;
			} else {
				c->state = CK_TRAILER_LINE;
				c->linelen = 0;
				continue;
			}
			i++;
			break;
		case CK_TRAILER_LINE:
			if (ch == '\n')
				c->state = CK_TRAILER;
			else if (++c->linelen > PX_CHUNK_LINE_MAX ||
			    (ch != '\r' && !px_is_vchar((unsigned char)ch)))
				return -1;
			i++;
			break;
		case CK_END_LF:
			if (ch != '\n')
				return -1;
			c->done = 1;
			i++;
			break;
		default:
			return -1;
		}
	}
	return (ssize_t)i;
}
