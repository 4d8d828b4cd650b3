/*
 * sig.h: the daemons' signal conventions, delivered through libevent so
 * that handlers run on the event loop like everything else:
 *   SIGTERM, SIGINT  graceful stop (stop accepting, drain, exit)
 *   SIGHUP           reload configuration (parse, validate, swap)
 *   SIGPIPE          ignored (writes to closed sockets return EPIPE)
 */
#ifndef PF_SIG_H
#define PF_SIG_H

struct event_base;

struct sig_handlers {
	void (*on_term)(int signo, void *arg);	/* SIGTERM or SIGINT */
	void (*on_hup)(void *arg);		/* SIGHUP; may be NULL */
	void *arg;
};

struct sig_watch;

/* Install the handlers on base. Returns NULL with errno set on failure.
 * Free with sig_watch_free() before the base (accepts NULL). */
struct sig_watch *sig_watch_new(struct event_base *base, const struct sig_handlers *h);
void sig_watch_free(struct sig_watch *sw);

#endif
