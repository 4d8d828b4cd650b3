/*
 * test_rlink.c: the self-healing Redis link against a real redis-server,
 * started, stopped, frozen and restarted by the test itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/rlink.h"

struct tr {
	struct event_base *base;
	struct rlink *rl;
	pid_t redis;
	int port;
	int ups, downs;
	char why[256];
	char got[64];
	char hash[64];
	int replies, null_replies;
};

static int
tr_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
tr_redis_start(struct tr *t, const char *pass)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", t->port);
	t->redis = fork();
	assert_true(t->redis >= 0);
	if (t->redis == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 1);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		    "--save", "", "--appendonly", "no", "--dir", "/tmp",
		    "--requirepass", pass ? pass : "", (char *)NULL);
		_exit(127);
	}
	/* Wait until it accepts connections, so tests start from a live Redis. */
	for (int i = 0; i < 250; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(t->port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0), r;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (r == 0)
			return;
		usleep(20000);
	}
	fail_msg("redis-server did not start on port %d", t->port);
}

static void
tr_redis_stop(struct tr *t)
{
	if (t->redis > 0) {
		kill(t->redis, SIGKILL);
		waitpid(t->redis, NULL, 0);
		t->redis = 0;
	}
}

static void
tr_state(struct rlink *rl, int up, const char *why, void *arg)
{
	struct tr *t = arg;

	(void)rl;
	if (up)
		t->ups++;
	else
		t->downs++;
	snprintf(t->why, sizeof(t->why), "%s", why);
}

static void
tr_break(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop until *flag reaches want or ms pass; returns the flag. */
static int
tr_run_until(struct tr *t, int *flag, int want, int ms)
{
	struct timeval step = { 0, 20000 };
	int64_t waited = 0;

	while (*flag < want && waited < ms) {
		event_base_once(t->base, -1, EV_TIMEOUT, tr_break, t->base, &step);
		event_base_dispatch(t->base);
		waited += 20;
	}
	return *flag;
}

static void
tr_get_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct tr *t = priv;
	redisReply *reply = r;

	(void)ac;
	if (!reply) {
		t->null_replies++;
		return;
	}
	t->replies++;
	if (reply->type == REDIS_REPLY_STRING)
		snprintf(t->got, sizeof(t->got), "%s", reply->str);
}

/* HGETALL h: what rlink_field finds in it. */
static void
tr_hash_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct tr *t = priv;
	const char *a = rlink_field(r, "a"), *b = rlink_field(r, "b"), *c = rlink_field(r, "c");

	(void)ac;
	if (!r)
		return;
	t->replies++;
	snprintf(t->hash, sizeof(t->hash), "a=%s b=%s c=%s", a ? a : "(none)", b ? b : "(none)",
	    c ? c : "(none)");
}

static int
tr_setup(void **state)
{
	struct tr *t = calloc(1, sizeof(*t));

	t->base = event_base_new();
	t->port = tr_free_port();
	*state = t;
	return 0;
}

static int
tr_teardown(void **state)
{
	struct tr *t = *state;

	rlink_free(t->rl);
	tr_redis_stop(t);
	/* Nothing of the link may stay registered on the loop. */
	assert_int_equal(event_base_get_num_events(t->base, EVENT_BASE_COUNT_ADDED), 0);
	event_base_free(t->base);
	free(t);
	return 0;
}

static void
test_roundtrip_and_reconnect(void **state)
{
	struct tr *t = *state;

	tr_redis_start(t, NULL);
	t->rl = rlink_new(t->base, "127.0.0.1", t->port, NULL, tr_state, t);
	assert_non_null(t->rl);
	assert_int_equal(tr_run_until(t, &t->ups, 1, 5000), 1);
	assert_true(rlink_is_up(t->rl));

	assert_int_equal(rlink_command(t->rl, NULL, NULL, "SET k %s", "v1"), 0);
	assert_int_equal(rlink_command(t->rl, NULL, NULL, "HSET h a 1 b two"), 0);
	assert_int_equal(rlink_command(t->rl, tr_hash_cb, t, "HGETALL h"), 0);
	assert_int_equal(rlink_command(t->rl, tr_get_cb, t, "GET k"), 0);
	assert_int_equal(tr_run_until(t, &t->replies, 2, 2000), 2);
	assert_string_equal(t->got, "v1");
	assert_string_equal(t->hash, "a=1 b=two c=(none)");
	assert_int_equal(rlink_pending(t->rl), 0);

	/* Redis dies: one down report, commands refused at once. */
	tr_redis_stop(t);
	assert_int_equal(tr_run_until(t, &t->downs, 1, 3000), 1);
	assert_false(rlink_is_up(t->rl));
	assert_int_equal(rlink_command(t->rl, tr_get_cb, t, "GET k"), -1);
	/* Retries while down must not report again; they are counted (the
	 * first one is due 100 ms after the loss). */
	assert_int_equal(rlink_failures(t->rl), 0);
	tr_run_until(t, &t->ups, 1 << 30, 800);
	assert_int_equal(t->downs, 1);
	assert_true(rlink_failures(t->rl) >= 1);

	/* Redis is back: the link heals by itself. */
	tr_redis_start(t, NULL);
	assert_int_equal(tr_run_until(t, &t->ups, 2, 8000), 2);
	assert_int_equal(rlink_command(t->rl, tr_get_cb, t, "PING"), 0);
	assert_int_equal(tr_run_until(t, &t->replies, 3, 2000), 3);
}

static void
test_auth(void **state)
{
	struct tr *t = *state;

	tr_redis_start(t, "s3cret");
	t->rl = rlink_new(t->base, "127.0.0.1", t->port, "wrong", tr_state, t);
	assert_int_equal(tr_run_until(t, &t->downs, 1, 5000), 1);
	assert_non_null(strstr(t->why, "AUTH refused"));
	assert_int_equal(t->ups, 0);
	rlink_free(t->rl);

	t->rl = rlink_new(t->base, "127.0.0.1", t->port, "s3cret", tr_state, t);
	assert_int_equal(tr_run_until(t, &t->ups, 1, 5000), 1);
	assert_int_equal(rlink_command(t->rl, tr_get_cb, t, "SET a %d", 1), 0);
	assert_int_equal(tr_run_until(t, &t->replies, 1, 2000), 1);
}

static void
test_stalled_redis_is_dropped(void **state)
{
	struct tr *t = *state;

	tr_redis_start(t, NULL);
	t->rl = rlink_new(t->base, "127.0.0.1", t->port, NULL, tr_state, t);
	assert_int_equal(tr_run_until(t, &t->ups, 1, 5000), 1);
	kill(t->redis, SIGSTOP);
	assert_int_equal(rlink_command(t->rl, tr_get_cb, t, "PING"), 0);
	/* The watchdog drops the link; the pending callback sees NULL. */
	assert_int_equal(tr_run_until(t, &t->downs, 1, RLINK_STALL_MS + 3000), 1);
	assert_non_null(strstr(t->why, "overdue"));
	assert_int_equal(t->null_replies, 1);
	assert_int_equal(rlink_pending(t->rl), 0);
	kill(t->redis, SIGCONT);
	assert_int_equal(tr_run_until(t, &t->ups, 2, 8000), 2);
}

static void
test_nothing_listening(void **state)
{
	struct tr *t = *state;

	t->rl = rlink_new(t->base, "127.0.0.1", t->port, NULL, tr_state, t);
	assert_int_equal(tr_run_until(t, &t->downs, 1, 3000), 1);
	assert_non_null(strstr(t->why, "connect 127.0.0.1"));
	/* Backoff retries stay quiet. */
	tr_run_until(t, &t->ups, 1, 1000);
	assert_int_equal(t->downs, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_and_reconnect, tr_setup, tr_teardown),
		cmocka_unit_test_setup_teardown(test_auth, tr_setup, tr_teardown),
		cmocka_unit_test_setup_teardown(test_stalled_redis_is_dropped, tr_setup, tr_teardown),
		cmocka_unit_test_setup_teardown(test_nothing_listening, tr_setup, tr_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
