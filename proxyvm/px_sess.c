/*
 * px_sess.c: one client connection, from accept to close.
 *
 * DESIGN
 * A session speaks the protocol of the listener it came in on:
 *
 *   http:   HEAD -> (auth) -> DIAL -> RELAY -> HEAD ...   (keep-alive)
 *                          \-> DIAL -> TUNNEL              (CONNECT)
 *   socks5: GREET -> (AUTH) -> REQUEST -> DIAL -> TUNNEL
 *
 * DIAL is common: resolve (px_dns), drop addresses the SSRF guard refuses,
 * then a non-blocking connect from the egress address, trying each address
 * until one answers, all under one connect timeout.
 *
 * HTTP messages are relayed with bufferevents on both sides. Heads are
 * parsed (px_http) and rewritten (hop-by-hop fields dropped, Host from the
 * URI); bodies are moved between evbuffers without copying, by
 * Content-Length or by the chunked scanner, so no body is ever held whole:
 * when the receiving side has more than PX_HIWAT queued, reading from the
 * sending side stops until it drains. The upstream connection is kept after
 * a response when both sides allow it and reused when the next request from
 * the same client goes to the same host and port.
 *
 * Tunnels (CONNECT, SOCKS5) drop the bufferevents and move bytes with
 * splice(2) through a pipe per direction: the kernel moves the pages and the
 * proxy touches no payload, which keeps bulk transfers near the speed of a
 * direct connection and an idle tunnel at a few hundred bytes of user
 * memory.
 *
 * Every session ends in px_sess_close(): the one exit path, which frees
 * everything the session holds whatever state it is in. Client-facing
 * errors go through px_sess_fail(), which counts the failure by kind and
 * answers through the protocol's one writer (px_http_status_write or
 * px_socks_reply_write).
 */
#include "proxyvm/px.h"
#include "proxyvm/px_http.h"
#include "proxyvm/px_socks.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PX_HIWAT (256 * 1024)	/* bytes queued toward one side before pausing */
#define PX_RESP_HEAD_MAX (64 * 1024)
#define PX_RESP_HDRS_MAX 256
#define PX_LINGER_MS 5000	/* to flush a final error before closing */
#define PX_SPLICE_MAX (4 << 20)	/* bytes moved per direction per wake-up */
#define PX_PIPE_SIZE (1 << 20)

enum px_state {
	S_HTTP_HEAD,	/* waiting for a request head */
	S_SOCKS_GREET,
	S_SOCKS_AUTH,
	S_SOCKS_REQ,
	S_DIAL,		/* resolving or connecting */
	S_RELAY,	/* HTTP request/response in flight */
	S_TUNNEL_FLUSH,	/* tunnel reply queued, switch when flushed */
	S_TUNNEL,
	S_LINGER,	/* final bytes queued, close when flushed */
};

struct px_flow {		/* one HTTP body in transit */
	int body;		/* enum px_body, PX_BODY_NONE when done */
	uint64_t left;
	struct px_chunk ck;
};

struct px_half {		/* one tunnel direction */
	struct px_sess *s;
	int from, to;
	int pipe[2];
	size_t inpipe;
	int eof, shut;
	int rd_on, wr_on;
	struct event *rd, *wr;
	uint64_t *ctr;		/* the env's counter */
	uint64_t *sctr;		/* the session's */
};

struct px_sess {
	struct px_env *env;
	TAILQ_ENTRY(px_sess) entry;
	enum px_state state;
	int proto;
	int auth_required;
	int egress_mode;
	struct sockaddr_storage egress;	/* auto: the local address */
	struct sockaddr_storage peer;
	char peer_text[64];
	char peer_ip[INET6_ADDRSTRLEN];	/* the rate-limit key of password checks */
	struct px_authq *authq;		/* a password check in flight */
	int cfd, ufd;
	struct bufferevent *cbev, *ubev;
	struct event *timer;
	struct event *connev;
	int64_t start_ms, last_ms;
	int head_started;
	struct px_usage *usage;
	char user[64];
	/* Destination. */
	char host[256];
	uint16_t port;
	struct px_dnsq *dnsq;
	struct px_dns_result addrs;
	int ai;
	int last_err;
	/* Current upstream (kept between HTTP requests). */
	char up_host[256];
	uint16_t up_port;
	/* HTTP exchange. */
	int is_connect, is_head_req;
	int client_minor;
	int client_keepalive;
	int resp_started;	/* response bytes reached the client */
	int resp_head_done;
	struct px_flow req, resp;
	struct evbuffer *pending;	/* request head waiting for the connect */
	/* Retry: a GET or HEAD without a body sent on a kept-alive upstream
	 * keeps a copy of its head; if that upstream closes before any byte
	 * of the response, the request goes once more on a fresh connection. */
	int up_reused;			/* this exchange runs on a kept-alive upstream */
	struct evbuffer *retry;		/* the head again, NULL: no retry */
	/* Tunnel. */
	struct px_half half[2];		/* 0: client -> upstream, 1: back */
	uint64_t up_bytes, down_bytes;
};

static void px_sess_close(struct px_sess *s, const char *why);
static void px_sess_fail(struct px_sess *s, enum px_fail kind, int code, const char *why);
static void px_http_head_try(struct px_sess *s);
static void px_socks_try(struct px_sess *s);
static void px_dial(struct px_sess *s);
static void px_dial_next(struct px_sess *s);
static void px_tunnel_start(struct px_sess *s);
static void px_relay_pump(struct px_sess *s);

static const char *const px_state_names[] = {
	"http-head", "socks-greet", "socks-auth", "socks-request", "dial", "relay",
	"tunnel-flush", "tunnel", "linger",
};

/* ---------------------------------------------------------------------------
 * Timers and helpers
 * ------------------------------------------------------------------------- */

static void
px_timer_arm(struct px_sess *s, long long ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(s->timer, &tv);
}

static int64_t
px_now_ms(struct px_sess *s)
{
	struct timeval tv;

	event_base_gettimeofday_cached(s->env->base, &tv);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
px_sockaddr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		port = ntohs(sin->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		port = ntohs(sin6->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

static void
px_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---------------------------------------------------------------------------
 * The one exit path
 * ------------------------------------------------------------------------- */

static void
px_half_free(struct px_half *h)
{
	if (h->rd)
		event_free(h->rd);
	if (h->wr)
		event_free(h->wr);
	if (h->pipe[0] >= 0)
		close(h->pipe[0]);
	if (h->pipe[1] >= 0)
		close(h->pipe[1]);
	h->rd = h->wr = NULL;
	h->pipe[0] = h->pipe[1] = -1;
}

static void
px_upstream_drop(struct px_sess *s)
{
	if (s->ubev) {
		bufferevent_free(s->ubev);	/* BEV_OPT_CLOSE_ON_FREE closes ufd */
		s->ubev = NULL;
		s->ufd = -1;
	}
	if (s->connev) {
		event_free(s->connev);
		s->connev = NULL;
	}
	if (s->ufd >= 0) {
		close(s->ufd);
		s->ufd = -1;
	}
	s->up_host[0] = '\0';
	s->up_port = 0;
}

static void
px_sess_close(struct px_sess *s, const char *why)
{
	struct px_env *env = s->env;

	log_debug("session close peer=%s user=%s state=%s dest=%s:%u up=%llu down=%llu "
	    "took_ms=%lld why=\"%s\"", s->peer_text, s->user[0] ? s->user : "-",
	    px_state_names[s->state], s->host[0] ? s->host : "-", s->port,
	    (unsigned long long)s->up_bytes, (unsigned long long)s->down_bytes,
	    (long long)(clock_mono_ms() - s->start_ms), why);
	if (s->dnsq)
		px_dns_cancel(s->dnsq);
	px_authq_cancel(s->authq);
	px_half_free(&s->half[0]);
	px_half_free(&s->half[1]);
	px_upstream_drop(s);
	if (s->cbev)
		bufferevent_free(s->cbev);
	if (s->cfd >= 0)
		close(s->cfd);
	if (s->timer)
		event_free(s->timer);
	if (s->pending)
		evbuffer_free(s->pending);
	if (s->retry)
		evbuffer_free(s->retry);
	px_usage_put(env->auth, s->usage);
	TAILQ_REMOVE(&env->sessions, s, entry);
	env->nsess--;
	free(s);
	if (env->draining && env->nsess == 0)
		event_base_loopexit(env->base, NULL);
}

/* Close once everything queued for the client has been written. */
static void
px_sess_linger(struct px_sess *s)
{
	s->state = S_LINGER;
	px_upstream_drop(s);
	bufferevent_disable(s->cbev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0) {
		px_sess_close(s, "done");
		return;
	}
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	px_timer_arm(s, PX_LINGER_MS);
}

/* ---------------------------------------------------------------------------
 * Client-facing errors: one writer per protocol
 * ------------------------------------------------------------------------- */

/* The HTTP status writer: every error response the proxy makes. */
static void
px_http_status_write(struct px_sess *s, int status, const char *why)
{
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	char body[256];
	int n;

	n = snprintf(body, sizeof(body), "%d %s: %s\n", status, px_http_reason(status), why);
	if (n < 0 || (size_t)n >= sizeof(body))
		n = (int)strlen(body);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: %d\r\n"
	    "%s"
	    "Connection: close\r\n\r\n%s",
	    status, px_http_reason(status), n,
	    status == 407 ? "Proxy-Authenticate: Basic realm=\"proxy\"\r\n" : "", body);
}

/* The SOCKS5 reply writer (RFC 1928 section 6). */
static void
px_socks_reply_write(struct px_sess *s, enum px_socks_rep rep, const struct sockaddr *bound)
{
	uint8_t buf[32];
	size_t n = px_socks_reply(buf, rep, bound);

	bufferevent_write(s->cbev, buf, n);
}

static void
px_count_fail(struct px_env *env, enum px_fail kind)
{
	struct px_counters *c = &env->ctr;

	switch (kind) {
	case PX_F_PARSE: c->err_parse++; break;
	case PX_F_AUTH: c->auth_fail++; break;
	case PX_F_DENIED: c->err_denied++; break;
	case PX_F_CONNECT: c->err_connect++; break;
	case PX_F_DNS: c->err_dns++; break;
	case PX_F_TIMEOUT: c->err_timeout++; break;
	case PX_F_LIMIT: c->err_limit++; break;
	case PX_F_UPSTREAM: c->err_upstream++; break;
	}
}

/*
 * Fail the session: count it, answer the client (HTTP status code, or SOCKS
 * reply code; -1: no answer, e.g. the client is gone or a response is
 * already under way) and close once the answer is out.
 */
static void
px_sess_fail(struct px_sess *s, enum px_fail kind, int code, const char *why)
{
	/* A password check still pending (e.g. at the header deadline) no
	 * longer matters. */
	px_authq_cancel(s->authq);
	s->authq = NULL;
	px_count_fail(s->env, kind);
	log_debug("session fail peer=%s dest=%s:%u code=%d why=\"%s\"", s->peer_text,
	    s->host[0] ? s->host : "-", s->port, code, why);
	if (!s->cbev) {
		px_sess_close(s, why);
		return;
	}
	if (code < 0 || s->resp_started) {
		/* No answer of ours; flush what is queued (a SOCKS refusal). */
		if (evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0 ||
		    s->state == S_RELAY)
			px_sess_close(s, why);
		else
			px_sess_linger(s);
		return;
	}
	if (s->proto == PX_PROTO_HTTP)
		px_http_status_write(s, code, why);
	else
		px_socks_reply_write(s, (enum px_socks_rep)code, NULL);
	px_sess_linger(s);
}

/* ---------------------------------------------------------------------------
 * Client bufferevent callbacks
 * ------------------------------------------------------------------------- */

static void
px_client_read(struct bufferevent *bev, void *arg)
{
	struct px_sess *s = arg;

	(void)bev;
	switch (s->state) {
	case S_HTTP_HEAD:
		px_http_head_try(s);
		break;
	case S_SOCKS_GREET:
	case S_SOCKS_AUTH:
	case S_SOCKS_REQ:
		px_socks_try(s);
		break;
	case S_RELAY:
		px_relay_pump(s);
		break;
	default:
		/* Reading is off in the other states. */
		bufferevent_disable(bev, EV_READ);
		break;
	}
}

static void
px_client_write(struct bufferevent *bev, void *arg)
{
	struct px_sess *s = arg;

	if (s->state == S_LINGER) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			px_sess_close(s, "done");
		return;
	}
	if (s->state == S_TUNNEL_FLUSH) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			px_tunnel_start(s);
		return;
	}
	if (s->state == S_RELAY)
		px_relay_pump(s);	/* the client drained: resume upstream reads */
}

static void
px_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct px_sess *s = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		px_sess_fail(s, PX_F_TIMEOUT, -1, "client idle timeout");
		return;
	}
	px_sess_close(s, (what & BEV_EVENT_EOF) ? "client closed" : "client error");
}

/* ---------------------------------------------------------------------------
 * Session timer: header deadline, idle keep-alive, connect deadline, tunnel
 * idle, linger.
 * ------------------------------------------------------------------------- */

static void
px_sess_timer(evutil_socket_t fd, short what, void *arg)
{
	struct px_sess *s = arg;
	const struct px_conf *c = s->env->conf;
	int64_t idle;

	(void)fd;
	(void)what;
	switch (s->state) {
	case S_HTTP_HEAD:
		if (!s->head_started) {
			px_sess_close(s, "keep-alive idle");
			return;
		}
		px_sess_fail(s, PX_F_TIMEOUT, 408, "request header timeout");
		return;
	case S_SOCKS_GREET:
	case S_SOCKS_AUTH:
	case S_SOCKS_REQ:
		px_sess_fail(s, PX_F_TIMEOUT, -1, "negotiation timeout");
		return;
	case S_DIAL:
		px_sess_fail(s, PX_F_TIMEOUT, s->proto == PX_PROTO_HTTP ? 504 : PX_SOCKS_TTL,
		    "connect timeout");
		return;
	case S_TUNNEL:
		idle = px_now_ms(s) - s->last_ms;
		if (idle < c->idle_timeout_ms) {
			px_timer_arm(s, c->idle_timeout_ms - idle + 1);
			return;
		}
		px_sess_fail(s, PX_F_TIMEOUT, -1, "tunnel idle timeout");
		return;
	case S_LINGER:
	case S_TUNNEL_FLUSH:
		px_sess_close(s, "client did not read");
		return;
	case S_RELAY:
		break;
	}
	px_sess_close(s, "timer");
}

/* ---------------------------------------------------------------------------
 * Accept
 * ------------------------------------------------------------------------- */

static void
px_wait_head(struct px_sess *s)
{
	const struct px_conf *c = s->env->conf;

	s->state = s->proto == PX_PROTO_HTTP ? S_HTTP_HEAD : S_SOCKS_GREET;
	s->head_started = s->proto != PX_PROTO_HTTP ||
	    evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0;
	px_timer_arm(s, s->head_started ? c->header_timeout_ms : c->idle_timeout_ms);
	bufferevent_set_timeouts(s->cbev, NULL, NULL);
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	bufferevent_enable(s->cbev, EV_READ);
}

void
px_sess_accept(struct px_env *env, const struct px_listener_conf *lc, int fd)
{
	const struct px_conf *c = env->conf;
	struct px_sess *s;
	socklen_t len;

	env->ctr.conns_total++;
	if (env->nsess >= (unsigned)c->max_conns || env->draining) {
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
		    "Content-Length: 0\r\nConnection: close\r\n\r\n";

		env->ctr.err_limit++;
		if (lc->proto == PX_PROTO_HTTP)
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return;
	}
	s->env = env;
	s->cfd = fd;
	s->ufd = -1;
	s->half[0].pipe[0] = s->half[0].pipe[1] = -1;
	s->half[1].pipe[0] = s->half[1].pipe[1] = -1;
	s->proto = lc->proto;
	s->egress_mode = lc->egress_mode;
	s->auth_required = lc->auth == PX_AUTH_ON ||
	    (lc->auth == PX_AUTH_AUTO && px_auth_count(env->auth) > 0);
	s->start_ms = clock_mono_ms();
	len = sizeof(s->peer);
	getpeername(fd, (struct sockaddr *)&s->peer, &len);
	px_sockaddr_text(&s->peer, s->peer_text, sizeof(s->peer_text));
	str_copy(s->peer_ip, s->peer_text, sizeof(s->peer_ip));
	if (s->peer.ss_family == AF_INET6 && s->peer_ip[0] == '[')
		memmove(s->peer_ip, s->peer_ip + 1, strlen(s->peer_ip));
	if (strrchr(s->peer_ip, s->peer.ss_family == AF_INET6 ? ']' : ':'))
		*strrchr(s->peer_ip, s->peer.ss_family == AF_INET6 ? ']' : ':') = '\0';
	if (lc->egress_mode == PX_EGRESS_ADDR) {
		memcpy(&s->egress, &lc->egress.ss, sizeof(s->egress));
	} else if (lc->egress_mode == PX_EGRESS_AUTO) {
		len = sizeof(s->egress);
		getsockname(fd, (struct sockaddr *)&s->egress, &len);
	}
	TAILQ_INSERT_TAIL(&env->sessions, s, entry);
	env->nsess++;
	px_nodelay(fd);
	s->cbev = bufferevent_socket_new(env->base, fd, 0);
	s->timer = evtimer_new(env->base, px_sess_timer, s);
	if (!s->cbev || !s->timer) {
		px_sess_close(s, "out of memory");
		return;
	}
	bufferevent_setcb(s->cbev, px_client_read, px_client_write, px_client_event, s);
	px_wait_head(s);
}

/* ---------------------------------------------------------------------------
 * Dial: resolve, guard, connect
 * ------------------------------------------------------------------------- */

/* The dial succeeded: hand over to the protocol. */
static void px_dial_done(struct px_sess *s);

static void
px_dial_failed(struct px_sess *s, enum px_fail kind, int err, const char *why)
{
	int code;

	if (s->proto == PX_PROTO_HTTP)
		code = kind == PX_F_DENIED ? 403 : kind == PX_F_TIMEOUT ? 504 : 502;
	else
		code = px_socks_rep_from_errno(err);
	px_sess_fail(s, kind, code, why);
}

static void
px_resolved(int err, const struct px_dns_result *res, void *arg)
{
	struct px_sess *s = arg;
	const struct px_ssrf *g = &s->env->conf->ssrf;
	const char *why = NULL;
	char msg[400];
	int n = 0;

	s->dnsq = NULL;
	if (err) {
		snprintf(msg, sizeof(msg), "cannot resolve %s: %s", s->host, strerror(err));
		px_dial_failed(s, PX_F_DNS, err == ENOENT ? ENOENT : EHOSTUNREACH, msg);
		return;
	}
	/* The guard runs on resolved addresses: a name pointing inside is caught. */
	for (int i = 0; i < res->n; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&res->addr[i];

		if (px_ssrf_check(g, sa, &why) < 0)
			continue;
		if (s->egress_mode != PX_EGRESS_NONE && s->egress.ss_family != sa->sa_family)
			continue;	/* cannot leave from the egress address */
		s->addrs.addr[n] = res->addr[i];
		if (sa->sa_family == AF_INET)
			((struct sockaddr_in *)&s->addrs.addr[n])->sin_port = htons(s->port);
		else
			((struct sockaddr_in6 *)&s->addrs.addr[n])->sin6_port = htons(s->port);
		n++;
	}
	s->addrs.n = n;
	s->ai = 0;
	if (n == 0) {
		if (why) {
			snprintf(msg, sizeof(msg), "destination %s denied (%s)", s->host, why);
			px_dial_failed(s, PX_F_DENIED, EACCES, msg);
		} else {
			snprintf(msg, sizeof(msg), "no address of %s matches the egress family",
			    s->host);
			px_dial_failed(s, PX_F_CONNECT, EAFNOSUPPORT, msg);
		}
		return;
	}
	px_dial_next(s);
}

static void
px_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_sess *s = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	event_free(s->connev);
	s->connev = NULL;
	if (err) {
		close(s->ufd);
		s->ufd = -1;
		s->last_err = err;
		s->ai++;
		px_dial_next(s);
		return;
	}
	px_dial_done(s);
}

/* Try the next address of s->addrs, or fail with the last error. */
static void
px_dial_next(struct px_sess *s)
{
	const struct sockaddr *sa;
	char msg[400];
	int fd, one = 1;

	for (; s->ai < s->addrs.n; s->ai++) {
		sa = (const struct sockaddr *)&s->addrs.addr[s->ai];
		fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			s->last_err = errno;
			continue;
		}
		if (s->egress_mode != PX_EGRESS_NONE) {
			struct sockaddr_storage eg = s->egress;
			socklen_t elen = eg.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
			    sizeof(struct sockaddr_in6);

			if (eg.ss_family == AF_INET)
				((struct sockaddr_in *)&eg)->sin_port = 0;
			else
				((struct sockaddr_in6 *)&eg)->sin6_port = 0;
			/* The port comes at connect time: no ephemeral-port exhaustion. */
			setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&eg, elen) < 0) {
				s->last_err = errno;
				close(fd);
				continue;
			}
		}
		if (connect(fd, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6)) == 0 || errno == EINPROGRESS) {
			s->ufd = fd;
			s->connev = event_new(s->env->base, fd, EV_WRITE, px_connect_cb, s);
			if (!s->connev || event_add(s->connev, NULL) < 0) {
				px_dial_failed(s, PX_F_CONNECT, ENOMEM, "out of memory");
				return;
			}
			return;
		}
		s->last_err = errno;
		close(fd);
	}
	snprintf(msg, sizeof(msg), "connect %s:%u: %s", s->host, s->port,
	    strerror(s->last_err ? s->last_err : EHOSTUNREACH));
	px_dial_failed(s, PX_F_CONNECT, s->last_err ? s->last_err : EHOSTUNREACH, msg);
}

/* Start the dial to s->host:s->port. May finish (even fail) before returning. */
static void
px_dial(struct px_sess *s)
{
	s->state = S_DIAL;
	s->last_err = 0;
	s->addrs.n = 0;
	bufferevent_disable(s->cbev, EV_READ);
	px_timer_arm(s, s->env->conf->connect_timeout_ms);
	s->dnsq = px_dns_resolve(s->env->dns, s->host, px_resolved, s);
}

/* ---------------------------------------------------------------------------
 * Tunnels: splice(2) through a pipe per direction
 * ------------------------------------------------------------------------- */

static void
px_half_set(struct px_half *h, int rd, int wr)
{
	if (rd != h->rd_on) {
		rd ? event_add(h->rd, NULL) : event_del(h->rd);
		h->rd_on = rd;
	}
	if (wr != h->wr_on) {
		wr ? event_add(h->wr, NULL) : event_del(h->wr);
		h->wr_on = wr;
	}
}

/* Move what can move in one direction. 0, or -1 with errno (close). */
static int
px_half_pump(struct px_half *h)
{
	size_t moved = 0;
	ssize_t r;

	while (moved < PX_SPLICE_MAX) {
		if (h->inpipe > 0) {
			r = splice(h->pipe[0], NULL, h->to, NULL, h->inpipe,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (r > 0) {
				h->inpipe -= (size_t)r;
				*h->ctr += (uint64_t)r;
				*h->sctr += (uint64_t)r;
				moved += (size_t)r;
				continue;
			}
			if (r < 0 && errno == EAGAIN) {
				px_half_set(h, 0, 1);
				return 0;
			}
			if (r == 0)
				errno = EPIPE;
			return -1;
		}
		if (h->eof) {
			if (!h->shut) {
				shutdown(h->to, SHUT_WR);
				h->shut = 1;
			}
			px_half_set(h, 0, 0);
			return 0;
		}
		r = splice(h->from, NULL, h->pipe[1], NULL, PX_SPLICE_MAX,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (r > 0) {
			h->inpipe += (size_t)r;
			continue;
		}
		if (r == 0) {
			h->eof = 1;
			continue;
		}
		if (errno == EAGAIN) {
			px_half_set(h, 1, 0);
			return 0;
		}
		return -1;
	}
	/* Budget spent: come back on the next loop turn (level-triggered). */
	if (h->inpipe)
		px_half_set(h, 0, 1);
	else
		px_half_set(h, 1, 0);
	return 0;
}

static void
px_half_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_half *h = arg;
	struct px_sess *s = h->s;
	char why[96];

	(void)fd;
	(void)what;
	s->last_ms = px_now_ms(s);
	if (px_half_pump(h) < 0) {
		snprintf(why, sizeof(why), "tunnel %s: %s",
		    h == &s->half[0] ? "client->upstream" : "upstream->client",
		    strerror(errno));
		px_sess_close(s, why);
		return;
	}
	if (s->half[0].shut && s->half[1].shut)
		px_sess_close(s, "tunnel closed");
}

static int
px_half_init(struct px_sess *s, int d, int from, int to, uint64_t *ctr, uint64_t *sctr)
{
	struct px_half *h = &s->half[d];

	h->s = s;
	h->from = from;
	h->to = to;
	h->ctr = ctr;
	h->sctr = sctr;
	if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	/* A bigger pipe moves more per splice(2) (fewer wake-ups in bulk);
	 * the kernel allocates its pages only as data arrives, so an idle
	 * tunnel costs no more. Failure (pipe-max-size) just keeps 64 KiB. */
	(void)fcntl(h->pipe[1], F_SETPIPE_SZ, PX_PIPE_SIZE);
	h->rd = event_new(s->env->base, from, EV_READ | EV_PERSIST, px_half_cb, h);
	h->wr = event_new(s->env->base, to, EV_WRITE | EV_PERSIST, px_half_cb, h);
	return h->rd && h->wr ? 0 : -1;
}

/* The tunnel reply is out: switch the session to splice. */
static void
px_tunnel_start(struct px_sess *s)
{
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	size_t left = evbuffer_get_length(in);
	struct px_env *env = s->env;

	s->state = S_TUNNEL;
	if (px_half_init(s, 0, s->cfd, s->ufd, &env->ctr.bytes_up, &s->up_bytes) < 0 ||
	    px_half_init(s, 1, s->ufd, s->cfd, &env->ctr.bytes_down, &s->down_bytes) < 0) {
		px_sess_close(s, "cannot make tunnel pipes");
		return;
	}
	/* Bytes the client sent after its request (e.g. a TLS hello) go first. */
	if (left) {
		ssize_t w = write(s->half[0].pipe[1], evbuffer_pullup(in, -1), left);

		if (w != (ssize_t)left) {
			px_sess_close(s, "early tunnel data too large");
			return;
		}
		s->half[0].inpipe = left;
	}
	bufferevent_free(s->cbev);	/* fd stays open: no CLOSE_ON_FREE */
	s->cbev = NULL;
	s->last_ms = px_now_ms(s);
	px_timer_arm(s, env->conf->idle_timeout_ms);
	if (px_half_pump(&s->half[0]) < 0 || px_half_pump(&s->half[1]) < 0)
		px_sess_close(s, "tunnel error");
}

/* Queue the tunnel's success reply; the switch happens once it is written. */
static void
px_tunnel_reply(struct px_sess *s)
{
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);

	s->env->ctr.requests++;
	if (s->proto == PX_PROTO_HTTP) {
		evbuffer_add_printf(bufferevent_get_output(s->cbev),
		    "HTTP/1.1 200 Connection established\r\n\r\n");
	} else {
		memset(&bound, 0, sizeof(bound));
		getsockname(s->ufd, (struct sockaddr *)&bound, &len);
		px_socks_reply_write(s, PX_SOCKS_OK, (struct sockaddr *)&bound);
	}
	s->state = S_TUNNEL_FLUSH;
	evtimer_del(s->timer);
	px_timer_arm(s, PX_LINGER_MS);
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0)
		px_tunnel_start(s);
}

/* ---------------------------------------------------------------------------
 * HTTP: request heads
 * ------------------------------------------------------------------------- */

/*
 * A password check finished on the worker: its verdict is in px_auth's
 * caches, so going through the head (HTTP) or the negotiation (SOCKS) again
 * checks again and gets it at once. The input was left as it was.
 */
static void
px_sess_auth_cb(int ok, void *arg)
{
	struct px_sess *s = arg;

	(void)ok;
	s->authq = NULL;
	if (s->state != S_HTTP_HEAD && s->state != S_SOCKS_AUTH)
		return;
	bufferevent_enable(s->cbev, EV_READ);
	if (s->proto == PX_PROTO_HTTP)
		px_http_head_try(s);
	else
		px_socks_try(s);
}

/* 0: go on; 1: a check is pending (reading paused); -1: failed (answered). */
static int
px_http_auth(struct px_sess *s, const struct px_http_head *h)
{
	struct px_usage *u = NULL;
	char user[64] = "";
	int rc;

	if (!s->auth_required)
		return 0;
	if (h->proxy_auth.n == 0) {
		px_sess_fail(s, PX_F_AUTH, 407, "credentials required");
		return -1;
	}
	rc = px_auth_check_basic(s->env->auth, h->proxy_auth.p, h->proxy_auth.n, s->peer_ip,
	    &u, user, sizeof(user), px_sess_auth_cb, s, &s->authq);
	if (rc == PX_AUTH_PENDING) {
		bufferevent_disable(s->cbev, EV_READ);
		return 1;
	}
	if (rc == PX_AUTH_LIMIT) {
		px_sess_fail(s, PX_F_LIMIT, 429, "user connection limit reached");
		return -1;
	}
	if (rc == PX_AUTH_THROTTLED) {
		log_debug("auth throttled proto=http peer=%s user=%s", s->peer_text,
		    user[0] ? user : "-");
		px_sess_fail(s, PX_F_AUTH, 407, "too many password checks, retry later");
		return -1;
	}
	if (rc < 0) {
		log_info("auth fail proto=http peer=%s user=%s", s->peer_text,
		    user[0] ? user : "-");
		px_sess_fail(s, PX_F_AUTH, 407, "bad credentials");
		return -1;
	}
	/* One slot per session: keep the one held already for the same user. */
	if (s->usage && strcmp(s->user, user) == 0) {
		px_usage_put(s->env->auth, u);
	} else {
		px_usage_put(s->env->auth, s->usage);
		s->usage = u;
		str_copy(s->user, user, sizeof(s->user));
	}
	return 0;
}

/* Write the request head for upstream into out (origin form, no hop-by-hop). */
static void
px_http_req_rewrite(const struct px_http_head *h, const struct px_uri *u,
    struct evbuffer *out)
{
	evbuffer_add(out, h->method.p, h->method.n);
	evbuffer_add(out, " ", 1);
	if (u->path.p[0] == '?')
		evbuffer_add(out, "/", 1);
	evbuffer_add(out, u->path.p, u->path.n);
	evbuffer_add(out, " HTTP/1.1\r\nHost: ", 17);
	evbuffer_add(out, u->authority.p, u->authority.n);
	evbuffer_add(out, "\r\n", 2);
	for (size_t i = 0; i < h->nhdrs; i++) {
		if (px_http_hdr_is_hop(h, i))
			continue;
		evbuffer_add(out, h->hdrs[i].name.p, h->hdrs[i].name.n);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, h->hdrs[i].value.p, h->hdrs[i].value.n);
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add(out, "\r\n", 2);
}

static void
px_http_head_try(struct px_sess *s)
{
	const struct px_conf *c = s->env->conf;
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	size_t len = evbuffer_get_length(in), take;
	struct px_hdr hdrs[1000];
	struct px_http_head h;
	struct px_uri u;
	const char *why;
	const char *buf;
	int rc, idempotent;

	if (len == 0 || s->authq)
		return;
	if (!s->head_started) {
		s->head_started = 1;
		px_timer_arm(s, c->header_timeout_ms);
	}
	take = len < (size_t)c->header_max ? len : (size_t)c->header_max;
	buf = (const char *)evbuffer_pullup(in, (ssize_t)take);
	rc = px_http_parse_head(buf, take, 0, (size_t)c->header_max, hdrs,
	    (size_t)c->header_count, &h);
	if (rc == PX_HTTP_MORE)
		return;
	if (rc == PX_HTTP_ERR) {
		px_sess_fail(s, h.err_status == 431 ? PX_F_LIMIT : PX_F_PARSE, h.err_status,
		    h.err_why);
		return;
	}
	if (px_http_parse_target(h.target, h.is_connect, &u, &why) < 0) {
		px_sess_fail(s, PX_F_PARSE, 400, why);
		return;
	}
	/* The header deadline covers a pending password check too. */
	if (px_http_auth(s, &h) != 0)
		return;
	evtimer_del(s->timer);
	s->is_connect = h.is_connect;
	s->is_head_req = px_span_eq(h.method, "HEAD");
	s->client_minor = h.minor;
	s->client_keepalive = h.keepalive && !s->env->draining;
	s->resp_started = 0;
	s->resp_head_done = 0;
	memcpy(s->host, u.host.p, u.host.n);
	s->host[u.host.n] = '\0';
	s->port = u.port;
	if (!h.is_connect) {
		s->env->ctr.requests++;
		s->req.body = h.body;
		s->req.left = h.clen;
		memset(&s->req.ck, 0, sizeof(s->req.ck));
		if (!s->pending && !(s->pending = evbuffer_new())) {
			px_sess_close(s, "out of memory");
			return;
		}
		px_http_req_rewrite(&h, &u, s->pending);
	}
	/* h points into the input: decide before draining it. */
	idempotent = h.body == PX_BODY_NONE && (px_span_eq(h.method, "GET") ||
	    px_span_eq(h.method, "HEAD"));
	evbuffer_drain(in, h.len);
	if (s->retry) {
		evbuffer_free(s->retry);
		s->retry = NULL;
	}
	/* Reuse the upstream connection when it goes to the same place. */
	if (!h.is_connect && s->ubev && strcasecmp(s->up_host, s->host) == 0 &&
	    s->up_port == s->port) {
		/* A kept-alive upstream may close under the request (its idle
		 * timeout): an idempotent request without a body can go again
		 * (RFC 9110 9.2.2, RFC 9112 9.3.1). */
		if (idempotent && (s->retry = evbuffer_new()) &&
		    evbuffer_add_buffer_reference(s->retry, s->pending) < 0) {
			evbuffer_free(s->retry);
			s->retry = NULL;
		}
		s->up_reused = 1;
		px_dial_done(s);
		return;
	}
	s->up_reused = 0;
	px_upstream_drop(s);
	px_dial(s);
}

/* ---------------------------------------------------------------------------
 * HTTP: relay of one exchange
 * ------------------------------------------------------------------------- */

/* Move body bytes of flow f from in to out, adding them to both counters.
 * 0 (f->body NONE once complete), or -1 on a chunked syntax error. */
static int
px_flow_move(struct px_flow *f, struct evbuffer *in, struct evbuffer *out, uint64_t *ctr,
    uint64_t *sctr)
{
	size_t n = evbuffer_get_length(in), take = 0;

	if (f->body == PX_BODY_NONE || n == 0)
		return 0;
	if (f->body == PX_BODY_CLOSE) {
		take = n;
	} else if (f->body == PX_BODY_LENGTH) {
		take = n < f->left ? n : (size_t)f->left;
		f->left -= take;
		if (!f->left)
			f->body = PX_BODY_NONE;
	} else {
		struct evbuffer_iovec vec[8];
		int nv = evbuffer_peek(in, -1, NULL, vec, 8);

		for (int i = 0; i < nv && i < 8 && !f->ck.done; i++) {
			ssize_t r = px_chunk_feed(&f->ck, vec[i].iov_base, vec[i].iov_len);

			if (r < 0)
				return -1;
			take += (size_t)r;
		}
		if (f->ck.done)
			f->body = PX_BODY_NONE;
	}
	evbuffer_remove_buffer(in, out, take);
	*ctr += take;
	*sctr += take;
	return 0;
}

/* The exchange is complete: next request, or close. */
static void
px_relay_done(struct px_sess *s)
{
	if (!s->client_keepalive) {
		px_sess_linger(s);
		return;
	}
	if (s->ubev) {
		bufferevent_disable(s->ubev, EV_READ);
		bufferevent_enable(s->ubev, EV_READ);	/* notice a close while idle */
		bufferevent_set_timeouts(s->ubev, NULL, NULL);
	}
	px_wait_head(s);
	if (evbuffer_get_length(bufferevent_get_input(s->cbev)))
		px_http_head_try(s);
}

/* Parse the response head waiting in the upstream input; 0 when handled. */
static int
px_resp_head(struct px_sess *s)
{
	struct evbuffer *uin = bufferevent_get_input(s->ubev);
	struct evbuffer *cout = bufferevent_get_output(s->cbev);
	size_t len = evbuffer_get_length(uin);
	size_t take = len < PX_RESP_HEAD_MAX ? len : PX_RESP_HEAD_MAX;
	struct px_hdr hdrs[PX_RESP_HDRS_MAX];
	struct px_http_head h;
	const char *buf;
	int rc, close_client;

	if (len == 0)
		return 1;
	buf = (const char *)evbuffer_pullup(uin, (ssize_t)take);
	rc = px_http_parse_head(buf, take, PX_HTTP_RESPONSE |
	    (s->is_head_req ? PX_HTTP_HEAD_REQ : 0), PX_RESP_HEAD_MAX, hdrs,
	    PX_RESP_HDRS_MAX, &h);
	if (rc == PX_HTTP_MORE)
		return 1;
	if (rc == PX_HTTP_ERR) {
		px_sess_fail(s, PX_F_UPSTREAM, 502, h.err_why);
		return -1;
	}
	if (h.status == 101) {
		px_sess_fail(s, PX_F_UPSTREAM, 502, "upstream switched protocols");
		return -1;
	}
	close_client = !s->client_keepalive || h.body == PX_BODY_CLOSE || s->env->draining;
	/* Status line with our version, then the end-to-end fields. */
	evbuffer_add(cout, "HTTP/1.1", 8);
	{
		const char *eol = memchr(buf, '\n', h.len);
		size_t n = (size_t)(eol - buf) + 1;

		if (n >= 2 && buf[n - 2] == '\r')
			n--;
		evbuffer_add(cout, buf + 8, n - 9);
		evbuffer_add(cout, "\r\n", 2);
	}
	for (size_t i = 0; i < h.nhdrs; i++) {
		if (px_http_hdr_is_hop(&h, i))
			continue;
		evbuffer_add(cout, hdrs[i].name.p, hdrs[i].name.n);
		evbuffer_add(cout, ": ", 2);
		evbuffer_add(cout, hdrs[i].value.p, hdrs[i].value.n);
		evbuffer_add(cout, "\r\n", 2);
	}
	if (h.status >= 200) {
		if (close_client)
			evbuffer_add(cout, "Connection: close\r\n", 19);
		else if (s->client_minor == 0)
			evbuffer_add(cout, "Connection: keep-alive\r\n", 24);
		s->client_keepalive = !close_client;
	}
	evbuffer_add(cout, "\r\n", 2);
	s->env->ctr.bytes_down += h.len;
	s->down_bytes += h.len;
	evbuffer_drain(uin, h.len);
	s->resp_started = 1;
	if (h.status < 200)
		return 0;	/* 1xx: another head follows */
	s->resp_head_done = 1;
	s->resp.body = h.body;
	s->resp.left = h.clen;
	memset(&s->resp.ck, 0, sizeof(s->resp.ck));
	if (!h.keepalive) {
		/* Upstream will close: do not reuse it. */
		s->up_port = 0;
	}
	return 0;
}

/* Move whatever can move in both directions, then decide what is next. */
static void
px_relay_pump(struct px_sess *s)
{
	struct evbuffer *cin, *cout, *uin, *uout;

	if (s->state != S_RELAY || !s->ubev)
		return;
	cin = bufferevent_get_input(s->cbev);
	cout = bufferevent_get_output(s->cbev);
	uin = bufferevent_get_input(s->ubev);
	uout = bufferevent_get_output(s->ubev);

	/* Request body, client -> upstream. */
	if (px_flow_move(&s->req, cin, uout, &s->env->ctr.bytes_up, &s->up_bytes) < 0) {
		px_sess_fail(s, PX_F_PARSE, 400, "bad chunked request body");
		return;
	}
	if (s->req.body != PX_BODY_NONE && evbuffer_get_length(uout) < PX_HIWAT)
		bufferevent_enable(s->cbev, EV_READ);
	else
		bufferevent_disable(s->cbev, EV_READ);

	/* Response, upstream -> client. */
	while (!s->resp_head_done) {
		int rc = px_resp_head(s);

		if (rc < 0)
			return;
		if (rc > 0)
			break;
	}
	if (s->resp_head_done) {
		if (px_flow_move(&s->resp, uin, cout, &s->env->ctr.bytes_down,
		    &s->down_bytes) < 0) {
			px_sess_fail(s, PX_F_UPSTREAM, -1, "bad chunked response body");
			return;
		}
	}
	if (s->resp_head_done && s->resp.body == PX_BODY_NONE) {
		if (s->req.body != PX_BODY_NONE) {
			/* Answered before the request body ended: cannot reuse either side. */
			s->client_keepalive = 0;
		}
		if (!s->up_port || evbuffer_get_length(uin)) {
			px_upstream_drop(s);
		}
		px_relay_done(s);
		return;
	}
	if (evbuffer_get_length(cout) < PX_HIWAT)
		bufferevent_enable(s->ubev, EV_READ);
	else
		bufferevent_disable(s->ubev, EV_READ);
}

static void
px_up_read(struct bufferevent *bev, void *arg)
{
	struct px_sess *s = arg;

	if (s->state != S_RELAY) {
		/* Data from an idle kept-alive upstream: it is out of sync. */
		(void)bev;
		px_upstream_drop(s);
		return;
	}
	px_relay_pump(s);
}

static void
px_up_write(struct bufferevent *bev, void *arg)
{
	struct px_sess *s = arg;

	(void)bev;
	if (s->state == S_RELAY)
		px_relay_pump(s);
}

static void
px_up_event(struct bufferevent *bev, short what, void *arg)
{
	struct px_sess *s = arg;

	(void)bev;
	if (s->state != S_RELAY) {
		px_upstream_drop(s);	/* an idle upstream went away */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		px_sess_fail(s, PX_F_TIMEOUT, s->resp_started ? -1 : 504, "upstream timeout");
		return;
	}
	if ((what & BEV_EVENT_EOF) && s->resp_head_done && s->resp.body == PX_BODY_CLOSE) {
		/* Close-delimited body: its end. Flush what is left, then close. */
		px_flow_move(&s->resp, bufferevent_get_input(s->ubev),
		    bufferevent_get_output(s->cbev), &s->env->ctr.bytes_down, &s->down_bytes);
		s->client_keepalive = 0;
		px_upstream_drop(s);
		px_relay_done(s);
		return;
	}
	if (s->up_reused && s->retry && !s->resp_started &&
	    evbuffer_get_length(bufferevent_get_input(s->ubev)) == 0) {
		/* The kept-alive upstream went away before answering: once more,
		 * on a fresh connection. */
		log_debug("upstream retry peer=%s dest=%s:%u why=\"%s\"", s->peer_text, s->host,
		    s->port, (what & BEV_EVENT_EOF) ? "closed" : "error");
		evbuffer_drain(s->pending, evbuffer_get_length(s->pending));
		evbuffer_add_buffer(s->pending, s->retry);
		evbuffer_free(s->retry);
		s->retry = NULL;
		s->up_reused = 0;
		px_upstream_drop(s);
		px_dial(s);
		return;
	}
	if (!s->resp_head_done && (what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_input(s->ubev))) {
		px_relay_pump(s);	/* the head may be complete now */
		if (s->state != S_RELAY || s->resp_head_done)
			return;
	}
	px_sess_fail(s, PX_F_UPSTREAM, s->resp_started ? -1 : 502,
	    (what & BEV_EVENT_EOF) ? "upstream closed early" : "upstream error");
}

static void
px_dial_done(struct px_sess *s)
{
	const struct px_conf *c = s->env->conf;
	struct timeval idle = { (time_t)(c->idle_timeout_ms / 1000),
		(suseconds_t)(c->idle_timeout_ms % 1000) * 1000 };

	evtimer_del(s->timer);
	if (s->proto == PX_PROTO_SOCKS5 || s->is_connect) {
		px_nodelay(s->ufd);
		px_tunnel_reply(s);
		return;
	}
	if (!s->ubev) {
		px_nodelay(s->ufd);
		s->ubev = bufferevent_socket_new(s->env->base, s->ufd, BEV_OPT_CLOSE_ON_FREE);
		if (!s->ubev) {
			px_sess_close(s, "out of memory");
			return;
		}
		bufferevent_setcb(s->ubev, px_up_read, px_up_write, px_up_event, s);
		bufferevent_setwatermark(s->ubev, EV_WRITE, PX_HIWAT / 2, 0);
		str_copy(s->up_host, s->host, sizeof(s->up_host));
		s->up_port = s->port;
	}
	s->state = S_RELAY;
	bufferevent_set_timeouts(s->ubev, &idle, &idle);
	bufferevent_set_timeouts(s->cbev, &idle, &idle);
	bufferevent_setwatermark(s->cbev, EV_WRITE, PX_HIWAT / 2, 0);
	s->env->ctr.bytes_up += evbuffer_get_length(s->pending);
	s->up_bytes += evbuffer_get_length(s->pending);
	bufferevent_write_buffer(s->ubev, s->pending);
	bufferevent_enable(s->ubev, EV_READ);
	px_relay_pump(s);
}

/* ---------------------------------------------------------------------------
 * SOCKS5 negotiation
 * ------------------------------------------------------------------------- */

static void
px_socks_try(struct px_sess *s)
{
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	size_t len = evbuffer_get_length(in), used = 0;
	const uint8_t *p;
	struct px_socks_req req;
	char user[256], pass[256];
	unsigned methods;
	uint8_t rep, out[2];
	int rc;

	while (len > 0 && !s->authq && (s->state == S_SOCKS_GREET || s->state == S_SOCKS_AUTH ||
	    s->state == S_SOCKS_REQ)) {
		p = evbuffer_pullup(in, (ssize_t)(len < 600 ? len : 600));
		switch (s->state) {
		case S_SOCKS_GREET:
			rc = px_socks_parse_greeting(p, len, &used, &methods);
			if (rc == PX_SOCKS_MORE)
				return;
			if (rc == PX_SOCKS_ERR) {
				px_sess_fail(s, PX_F_PARSE, -1, "bad SOCKS greeting");
				return;
			}
			out[0] = 5;
			if (s->auth_required && (methods & (1u << PX_SOCKS_M_USERPASS))) {
				out[1] = PX_SOCKS_M_USERPASS;
				s->state = S_SOCKS_AUTH;
			} else if (!s->auth_required && (methods & (1u << PX_SOCKS_M_NOAUTH))) {
				out[1] = PX_SOCKS_M_NOAUTH;
				s->state = S_SOCKS_REQ;
			} else {
				out[1] = PX_SOCKS_M_NONE;
				bufferevent_write(s->cbev, out, 2);
				px_sess_fail(s, PX_F_AUTH, -1, "no acceptable SOCKS method");
				return;
			}
			bufferevent_write(s->cbev, out, 2);
			break;
		case S_SOCKS_AUTH: {
			struct px_usage *u = NULL;

			rc = px_socks_parse_userpass(p, len, &used, user, pass);
			if (rc == PX_SOCKS_MORE)
				return;
			out[0] = 1;
			out[1] = 1;
			if (rc == PX_SOCKS_ERR) {
				bufferevent_write(s->cbev, out, 2);
				px_sess_fail(s, PX_F_PARSE, -1, "bad SOCKS auth request");
				return;
			}
			rc = px_auth_check(s->env->auth, user, pass, s->peer_ip, &u,
			    px_sess_auth_cb, s, &s->authq);
			explicit_bzero(pass, sizeof(pass));
			if (rc == PX_AUTH_PENDING) {
				/* The frame stays in the input for the second pass. */
				bufferevent_disable(s->cbev, EV_READ);
				return;
			}
			if (rc < 0) {
				if (rc == PX_AUTH_BAD)
					log_info("auth fail proto=socks5 peer=%s user=%s", s->peer_text,
					    user);
				else if (rc == PX_AUTH_THROTTLED)
					log_debug("auth throttled proto=socks5 peer=%s user=%s",
					    s->peer_text, user);
				bufferevent_write(s->cbev, out, 2);
				px_sess_fail(s, rc == PX_AUTH_LIMIT ? PX_F_LIMIT : PX_F_AUTH, -1,
				    rc == PX_AUTH_LIMIT ? "user connection limit reached" :
				    rc == PX_AUTH_THROTTLED ? "too many password checks" :
				    "bad credentials");
				return;
			}
			s->usage = u;
			str_copy(s->user, user, sizeof(s->user));
			out[1] = 0;
			bufferevent_write(s->cbev, out, 2);
			s->state = S_SOCKS_REQ;
			break;
		}
		case S_SOCKS_REQ:
			rc = px_socks_parse_request(p, len, &used, &req, &rep);
			if (rc == PX_SOCKS_MORE)
				return;
			if (rc == PX_SOCKS_ERR) {
				px_sess_fail(s, PX_F_PARSE, rep == 0xff ? -1 : rep,
				    "bad SOCKS request");
				return;
			}
			evbuffer_drain(in, used);
			if (req.cmd != PX_SOCKS_CMD_CONNECT) {
				px_sess_fail(s, PX_F_PARSE, PX_SOCKS_CMD_UNSUPP,
				    "SOCKS command not supported");
				return;
			}
			str_copy(s->host, req.host, sizeof(s->host));
			s->port = req.port;
			evtimer_del(s->timer);
			px_dial(s);
			return;
		default:
			return;
		}
		evbuffer_drain(in, used);
		len = evbuffer_get_length(in);
	}
}

/* ---------------------------------------------------------------------------
 * Drain and shutdown
 * ------------------------------------------------------------------------- */

void
px_sess_drain(struct px_env *env)
{
	struct px_sess *s, *next;

	for (s = TAILQ_FIRST(&env->sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == S_HTTP_HEAD && !s->head_started)
			px_sess_close(s, "draining");
		else if (s->state == S_RELAY)
			s->client_keepalive = 0;
	}
}

void
px_sess_close_all(struct px_env *env)
{
	while (!TAILQ_EMPTY(&env->sessions))
		px_sess_close(TAILQ_FIRST(&env->sessions), "shutdown");
}
