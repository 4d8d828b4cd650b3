/*
 * ctl_post.h: hand work from any thread to the event loop.
 *
 * libvirt calls block, so they run on their own threads; their results come
 * back here and the loop thread applies them to the model. A post is a
 * function and an argument; the loop runs posts in the order they came.
 */
#ifndef CTL_POST_H
#define CTL_POST_H

struct event_base;
struct ctl_post;

typedef void ctl_post_fn(void *arg);

/* Make the queue on base (the loop thread). NULL on failure. Needs libevent
 * threading enabled first (evthread_use_pthreads()). */
struct ctl_post *ctl_post_new(struct event_base *base);

/* Queue fn(arg) to run on the loop thread. Any thread. arg is the callee's
 * to free. -1 on allocation failure (fn is not called). */
int ctl_post(struct ctl_post *p, ctl_post_fn *fn, void *arg);

/* Run what is queued now and free the queue (loop thread, at exit). */
void ctl_post_free(struct ctl_post *p);

#endif
