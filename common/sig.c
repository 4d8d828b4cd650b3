/*
 * sig.c: signals as libevent events (see sig.h). libevent turns a signal
 * into a write on its internal socketpair, so the handlers below run on the
 * loop thread with no async-signal-safety constraints.
 */
#include "common/sig.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>

struct sig_watch {
	struct sig_handlers h;
	struct event *ev_term, *ev_int, *ev_hup;
};

static void
sig_cb(evutil_socket_t signo, short what, void *arg)
{
	struct sig_watch *sw = arg;

	(void)what;
	if (signo == SIGHUP) {
		if (sw->h.on_hup)
			sw->h.on_hup(sw->h.arg);
		return;
	}
	if (sw->h.on_term)
		sw->h.on_term((int)signo, sw->h.arg);
}

struct sig_watch *
sig_watch_new(struct event_base *base, const struct sig_handlers *h)
{
	struct sig_watch *sw;
	struct sigaction sa = { .sa_handler = SIG_IGN };

	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return NULL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return NULL;
	sw->h = *h;
	sw->ev_term = evsignal_new(base, SIGTERM, sig_cb, sw);
	sw->ev_int = evsignal_new(base, SIGINT, sig_cb, sw);
	sw->ev_hup = evsignal_new(base, SIGHUP, sig_cb, sw);
	if (!sw->ev_term || !sw->ev_int || !sw->ev_hup ||
	    evsignal_add(sw->ev_term, NULL) < 0 || evsignal_add(sw->ev_int, NULL) < 0 ||
	    evsignal_add(sw->ev_hup, NULL) < 0) {
		sig_watch_free(sw);
		errno = ENOMEM;
		return NULL;
	}
	return sw;
}

void
sig_watch_free(struct sig_watch *sw)
{
	if (!sw)
		return;
	if (sw->ev_term)
		event_free(sw->ev_term);
	if (sw->ev_int)
		event_free(sw->ev_int);
	if (sw->ev_hup)
		event_free(sw->ev_hup);
	free(sw);
}
