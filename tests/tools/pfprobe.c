/*
 * pfprobe.c: a customer's view of a proxy during a move, measured finely.
 *
 * Every INTERVAL ms, on a libevent timer (no fork, no drift), it opens a
 * new TCP connection to the proxy, sends one absolute-URI request with
 * "Connection: close", and waits up to TIMEOUT ms for a "HTTP/1.x 200"
 * status line. Each probe is judged by when it started. At the end (SIGTERM,
 * SIGINT, or SECONDS elapsed) it prints one line:
 *
 *   probes=N ok=N failed=N outage_ms=N max_gap_ms=N
 *
 * outage_ms: the longest span from the start of a failed probe to the start
 * of the next successful one (0 when nothing failed), which is the window in
 * which a new customer connection did not get through. max_gap_ms: the
 * longest span between the starts of two consecutive successful probes.
 * With -l FILE every probe is written as "START_US ok|fail LATENCY_US": live,
 * one flushed line as each probe ends (so a test can wait until the client
 * gets through, rather than for a guessed time), then rewritten in start
 * order at the end.
 *
 * usage: pfprobe [-i INTERVAL_MS] [-t TIMEOUT_MS] [-s SECONDS] [-l FILE]
 *                PROXY_IP PROXY_PORT URL
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct probe {
	struct pp *pp;
	int fd;
	int64_t start_us;
	struct event *ev, *timeout;
	char buf[64];
	size_t got, sent;
};

struct result {
	int64_t start_us, latency_us;
	int ok;
};

struct pp {
	struct event_base *base;
	struct sockaddr_in sa;
	char req[1024];
	size_t reqlen;
	int timeout_ms;
	struct result *res;
	size_t nres, cap;
	int live;
	FILE *lf;		/* -l: each result as it ends, or NULL */
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
probe_end(struct probe *p, int ok)
{
	struct pp *pp = p->pp;

	if (pp->nres == pp->cap) {
		pp->cap = pp->cap ? pp->cap * 2 : 1024;
		pp->res = realloc(pp->res, pp->cap * sizeof(*pp->res));
		if (!pp->res) {
			perror("pfprobe");
			exit(1);
		}
	}
	pp->res[pp->nres].start_us = p->start_us;
	pp->res[pp->nres].latency_us = now_us() - p->start_us;
	pp->res[pp->nres].ok = ok;
	if (pp->lf) {
		fprintf(pp->lf, "%lld %s %lld\n", (long long)p->start_us, ok ? "ok" : "fail",
		    (long long)pp->res[pp->nres].latency_us);
		fflush(pp->lf);
	}
	pp->nres++;
	event_free(p->ev);
	event_free(p->timeout);
	close(p->fd);
	free(p);
	pp->live--;
}

static void
probe_io(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	ssize_t n;

	if (what & EV_WRITE) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			probe_end(p, 0);
			return;
		}
		n = send(fd, p->pp->req + p->sent, p->pp->reqlen - p->sent, MSG_NOSIGNAL);
		if (n < 0) {
			probe_end(p, 0);
			return;
		}
		p->sent += (size_t)n;
		if (p->sent == p->pp->reqlen) {
			event_del(p->ev);
			event_assign(p->ev, p->pp->base, fd, EV_READ | EV_PERSIST, probe_io, p);
			event_add(p->ev, NULL);
		}
		return;
	}
	n = recv(fd, p->buf + p->got, sizeof(p->buf) - 1 - p->got, 0);
	if (n <= 0) {
		probe_end(p, 0);
		return;
	}
	p->got += (size_t)n;
	p->buf[p->got] = '\0';
	if (p->got >= 12)	/* "HTTP/1.1 200" */
		probe_end(p, strncmp(p->buf, "HTTP/1.", 7) == 0 && strncmp(p->buf + 9, "200", 3) == 0);
	else if (p->got == sizeof(p->buf) - 1)
		probe_end(p, 0);
}

static void
probe_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	probe_end(arg, 0);
}

static void
probe_start(evutil_socket_t fd0, short what, void *arg)
{
	struct pp *pp = arg;
	struct probe *p = calloc(1, sizeof(*p));
	struct timeval tv = { pp->timeout_ms / 1000, (pp->timeout_ms % 1000) * 1000 };

	(void)fd0;
	(void)what;
	if (!p)
		return;
	p->pp = pp;
	p->start_us = now_us();
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	p->ev = event_new(pp->base, p->fd, EV_WRITE, probe_io, p);
	p->timeout = evtimer_new(pp->base, probe_timeout, p);
	pp->live++;
	if (p->fd < 0 || (connect(p->fd, (struct sockaddr *)&pp->sa, sizeof(pp->sa)) < 0 &&
	    errno != EINPROGRESS)) {
		probe_end(p, 0);
		return;
	}
	event_add(p->ev, NULL);
	evtimer_add(p->timeout, &tv);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static int
cmp_start(const void *a, const void *b)
{
	const struct result *x = a, *y = b;

	return (x->start_us > y->start_us) - (x->start_us < y->start_us);
}

int
main(int argc, char **argv)
{
	struct pp pp = { 0 };
	int ch, interval = 20, seconds = 120;
	const char *logf = NULL;
	struct event *tick, *sigterm, *sigint, *deadline;
	struct timeval tv;
	size_t ok = 0;
	int64_t outage = 0, gap = 0, fail_start = -1, last_ok = -1;

	pp.timeout_ms = 500;
	while ((ch = getopt(argc, argv, "i:t:s:l:")) != -1) {
		switch (ch) {
		case 'i': interval = atoi(optarg); break;
		case 't': pp.timeout_ms = atoi(optarg); break;
		case 's': seconds = atoi(optarg); break;
		case 'l': logf = optarg; break;
		default: goto usage;
		}
	}
	if (argc - optind != 3 || interval <= 0 || pp.timeout_ms <= 0) {
usage:
		fprintf(stderr, "usage: pfprobe [-i INTERVAL_MS] [-t TIMEOUT_MS] [-s SECONDS] "
		    "[-l FILE] PROXY_IP PROXY_PORT URL\n");
		return 2;
	}
	pp.sa.sin_family = AF_INET;
	pp.sa.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &pp.sa.sin_addr) != 1) {
		fprintf(stderr, "pfprobe: bad proxy address '%s'\n", argv[optind]);
		return 2;
	}
	{
		const char *url = argv[optind + 2], *h = strstr(url, "://");
		char host[256] = "";

		if (h)
			sscanf(h + 3, "%255[^/]", host);
		pp.reqlen = (size_t)snprintf(pp.req, sizeof(pp.req),
		    "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", url, host);
	}
	if (logf && !(pp.lf = fopen(logf, "w"))) {
		perror(logf);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	pp.base = event_base_new();
	tick = event_new(pp.base, -1, EV_PERSIST, probe_start, &pp);
	tv.tv_sec = interval / 1000;
	tv.tv_usec = (interval % 1000) * 1000;
	event_add(tick, &tv);
	sigterm = evsignal_new(pp.base, SIGTERM, stop_cb, pp.base);
	sigint = evsignal_new(pp.base, SIGINT, stop_cb, pp.base);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	deadline = evtimer_new(pp.base, stop_cb, pp.base);
	tv.tv_sec = seconds;
	tv.tv_usec = 0;
	evtimer_add(deadline, &tv);
	event_base_dispatch(pp.base);
	/* Let the probes in flight finish (each ends by its own timeout). */
	event_del(tick);
	event_del(deadline);
	event_del(sigterm);
	event_del(sigint);
	while (pp.live > 0)
		event_base_loop(pp.base, EVLOOP_ONCE);

	qsort(pp.res, pp.nres, sizeof(*pp.res), cmp_start);
	FILE *lf = pp.lf ? freopen(logf, "w", pp.lf) : NULL;

	for (size_t i = 0; i < pp.nres; i++) {
		struct result *r = &pp.res[i];

		if (lf)
			fprintf(lf, "%lld %s %lld\n", (long long)r->start_us, r->ok ? "ok" : "fail",
			    (long long)r->latency_us);
		if (r->ok) {
			ok++;
			if (last_ok >= 0 && r->start_us - last_ok > gap)
				gap = r->start_us - last_ok;
			if (fail_start >= 0 && r->start_us - fail_start > outage)
				outage = r->start_us - fail_start;
			fail_start = -1;
			last_ok = r->start_us;
		} else if (fail_start < 0) {
			fail_start = r->start_us;
		}
	}
	if (lf)
		fclose(lf);
	printf("probes=%zu ok=%zu failed=%zu outage_ms=%lld max_gap_ms=%lld\n", pp.nres, ok,
	    pp.nres - ok, (long long)(outage / 1000), (long long)(gap / 1000));
	event_free(tick);
	event_free(sigterm);
	event_free(sigint);
	event_free(deadline);
	event_base_free(pp.base);
	free(pp.res);
	return 0;
}
