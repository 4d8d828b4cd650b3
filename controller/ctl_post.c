/*
 * ctl_post.c: a mutex-protected FIFO drained by one libevent event that other
 * threads activate with event_active() (safe across threads once libevent
 * threading is on). A burst of posts wakes the loop once.
 */
#include "controller/ctl_post.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

struct ctl_post_item {
	struct ctl_post_item *next;
	ctl_post_fn *fn;
	void *arg;
};

struct ctl_post {
	pthread_mutex_t lock;
	struct ctl_post_item *head, *tail;
	struct event *ev;
};

static void
ctl_post_drain(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_post *p = arg;
	struct ctl_post_item *it, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&p->lock);
	it = p->head;
	p->head = p->tail = NULL;
	pthread_mutex_unlock(&p->lock);
	for (; it; it = next) {
		next = it->next;
		it->fn(it->arg);
		free(it);
	}
}

struct ctl_post *
ctl_post_new(struct event_base *base)
{
	struct ctl_post *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	p->ev = event_new(base, -1, 0, ctl_post_drain, p);
	if (!p->ev) {
		free(p);
		return NULL;
	}
	return p;
}

int
ctl_post(struct ctl_post *p, ctl_post_fn *fn, void *arg)
{
	struct ctl_post_item *it = malloc(sizeof(*it));

	if (!it)
		return -1;
	it->next = NULL;
	it->fn = fn;
	it->arg = arg;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = it;
	else
		p->head = it;
	p->tail = it;
	pthread_mutex_unlock(&p->lock);
	event_active(p->ev, EV_READ, 0);
	return 0;
}

void
ctl_post_free(struct ctl_post *p)
{
	if (!p)
		return;
	ctl_post_drain(-1, 0, p);
	event_free(p->ev);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
