/*
 * px_auth.c: proxy users, their password checks and connection limits.
 *
 * Users come from the config file and, optionally, from Redis (pf:users);
 * config users win when a name is in both. Each set is a sorted array,
 * replaced whole on reload, looked up with bsearch.
 *
 * DESIGN
 * crypt(3) SHA-512 costs milliseconds per check (5000 rounds), so it never
 * runs on the loop (Redis's bio.c model): one worker thread takes check jobs
 * from a queue, and posts verdicts back through an eventfd that the loop
 * watches. What the loop can answer at once, it does:
 *   - a verified credential is cached: each user keeps the SHA-256 of
 *     "user:pass" that last verified, and a matching check costs ~1 us;
 *   - a small ring remembers digests that failed, so a client retrying a
 *     wrong password costs nothing either;
 *   - an unknown user fails at once.
 * Only a new password reaches the worker, and those are rate-limited: a
 * token bucket per client IP and one per user name (PX_RL_BURST checks,
 * then PX_RL_PER_SEC a second; a token is given back when the password was
 * right), and at most PX_AUTH_QUEUE_MAX jobs wait. An attempt over a limit
 * is refused without crypt, so a password-guessing client can burn at most
 * the worker's one CPU for a burst, then a check a second, and the loop
 * none. A user whose credential is cached is never throttled.
 *
 * A verdict does not travel back as a value: the loop files it in the
 * caches above (when the user's hash is still the one checked; a reload in
 * between files nothing) and calls the session back, which checks again and
 * finds it there. So the session's path after a verdict is the same as for
 * a cached credential, and a reload between the two costs one more check.
 *
 * Connection limits count per user name in a table separate from the user
 * arrays, so a reload (which replaces the arrays) never loses the counts of
 * sessions still open.
 */
#include "proxyvm/px.h"
#include "common/util.h"

#include <crypt.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * SHA-256 (FIPS 180-4), only for the credential cache keys.
 * ------------------------------------------------------------------------- */

struct px_sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t nbuf;
};

static const uint32_t px_sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
px_sha256_block(struct px_sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		    (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
	e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
	for (int i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
		    px_sha_k[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1;
		d = c; c = b; b = a; a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void
px_sha256_init(struct px_sha256 *s)
{
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->nbuf = 0;
}

static void
px_sha256_update(struct px_sha256 *s, const void *data, size_t n)
{
	const uint8_t *p = data;

	s->len += n;
	while (n) {
		size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;

		memcpy(s->buf + s->nbuf, p, take);
		s->nbuf += take;
		p += take;
		n -= take;
		if (s->nbuf == 64) {
			px_sha256_block(s, s->buf);
			s->nbuf = 0;
		}
	}
}

static void
px_sha256_final(struct px_sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->len * 8;
	uint8_t pad = 0x80, zero = 0, lenb[8];

	px_sha256_update(s, &pad, 1);
	while (s->nbuf != 56)
		px_sha256_update(s, &zero, 1);
	for (int i = 0; i < 8; i++)
		lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
	px_sha256_update(s, lenb, 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

/* ---------------------------------------------------------------------------
 * Users and usage
 * ------------------------------------------------------------------------- */

struct px_user {
	char *name;
	char *hash;
	long long max_conns;	/* -1: default */
	uint8_t good[32];	/* SHA-256("user:pass") that last verified */
	int has_good;
};

struct px_usage {
	struct px_usage *next;
	unsigned active;
	char name[64];
};

#define PX_USAGE_BUCKETS 256
#define PX_BAD_RING 64
#define PX_AUTH_QUEUE_MAX 32	/* checks waiting for the worker */
#define PX_RL_SLOTS 1024	/* rate-limit buckets (direct-mapped) */
#define PX_RL_BURST 10		/* uncached checks a client IP or user may start at once */
#define PX_RL_PER_SEC 1		/* then this many a second */

/* One uncached check: filled on the loop, crypt on the worker, verdict
 * filed and called back on the loop. */
struct px_authq {
	struct px_authq *next;
	px_auth_cb *cb;		/* loop thread only; NULL: cancelled */
	void *arg;
	char user[64];
	char hash[160];
	char pass[512];		/* zeroed by the worker once used */
	char client[64];
	uint8_t dig[32];
	int ok;			/* the worker's verdict */
};

struct px_rl {			/* a token bucket */
	char key[72];		/* "ip:ADDR" or "user:NAME"; "": free */
	double tokens;
	int64_t t_ms;
};

struct px_auth {
	struct px_user *conf;
	size_t nconf;
	struct px_user *redis;
	size_t nredis;
	long long default_max;
	struct px_usage *usage[PX_USAGE_BUCKETS];
	uint8_t bad[PX_BAD_RING][32];
	unsigned nbad;
	struct px_rl rl[PX_RL_SLOTS];
	unsigned queued;	/* jobs submitted, verdict not yet filed */
	/* The worker. mu guards todo, done and stop; cd is the worker's. */
	pthread_t thr;
	int thr_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct px_authq *todo, **todo_tail, *done;
	int stop;
	int efd;		/* eventfd: verdicts are waiting in done */
	struct event *ev;
	struct crypt_data *cd;
};

static void
px_users_free(struct px_user *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(u[i].name);
		free(u[i].hash);
	}
	free(u);
}

static int
px_user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct px_user *)a)->name, ((const struct px_user *)b)->name);
}

static struct px_user *
px_user_find(struct px_user *arr, size_t n, const char *name)
{
	struct px_user key = { .name = (char *)name };

	return n ? bsearch(&key, arr, n, sizeof(*arr), px_user_cmp) : NULL;
}

static struct px_user *
px_auth_lookup(struct px_auth *a, const char *name)
{
	struct px_user *u = px_user_find(a->conf, a->nconf, name);

	return u ? u : px_user_find(a->redis, a->nredis, name);
}

/* Build a sorted array; keep cached digests of users whose hash is unchanged. */
static struct px_user *
px_users_build(const char *const *names, const char *const *hashes, const long long *max,
    size_t n, struct px_user *old, size_t nold)
{
	struct px_user *arr = calloc(n ? n : 1, sizeof(*arr));

	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		arr[i].name = strdup(names[i]);
		arr[i].hash = strdup(hashes[i]);
		arr[i].max_conns = max ? max[i] : -1;
		if (!arr[i].name || !arr[i].hash) {
			px_users_free(arr, i + 1);
			return NULL;
		}
	}
	qsort(arr, n, sizeof(*arr), px_user_cmp);
	for (size_t i = 0; i < n; i++) {
		struct px_user *o = px_user_find(old, nold, arr[i].name);

		if (o && o->has_good && strcmp(o->hash, arr[i].hash) == 0) {
			memcpy(arr[i].good, o->good, 32);
			arr[i].has_good = 1;
		}
	}
	return arr;
}

/* The worker: crypt(3) one job at a time until told to stop. */
static void *
px_auth_worker(void *arg)
{
	struct px_auth *a = arg;
	struct px_authq *q;
	const char *out;
	uint64_t one = 1;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->stop && !a->todo)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop)
			break;
		q = a->todo;
		a->todo = q->next;
		if (!a->todo)
			a->todo_tail = &a->todo;
		pthread_mutex_unlock(&a->mu);

		out = crypt_r(q->pass, q->hash, a->cd);
		q->ok = out && out[0] != '*' && strcmp(out, q->hash) == 0;
		explicit_bzero(q->pass, sizeof(q->pass));

		pthread_mutex_lock(&a->mu);
		q->next = a->done;
		a->done = q;
		(void)!write(a->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void px_auth_file(struct px_auth *a, struct px_authq *q);

/* Loop side of the eventfd: file each verdict, then call its session back. */
static void
px_auth_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_auth *a = arg;
	struct px_authq *q, *next;
	uint64_t n;

	(void)what;
	(void)!read(fd, &n, sizeof(n));
	pthread_mutex_lock(&a->mu);
	q = a->done;
	a->done = NULL;
	pthread_mutex_unlock(&a->mu);
	for (; q; q = next) {
		next = q->next;
		a->queued--;
		px_auth_file(a, q);
		if (q->cb)
			q->cb(q->ok ? 0 : -1, q->arg);
		free(q);
	}
}

struct px_auth *
px_auth_new(struct event_base *base)
{
	struct px_auth *a = calloc(1, sizeof(*a));
	sigset_t all, old;

	if (!a)
		return NULL;
	a->efd = -1;
	a->todo_tail = &a->todo;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->cd = calloc(1, sizeof(*a->cd));
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!a->cd || a->efd < 0)
		goto fail;
	a->ev = event_new(base, a->efd, EV_READ | EV_PERSIST, px_auth_done_cb, a);
	if (!a->ev || event_add(a->ev, NULL) < 0)
		goto fail;
	/* Signals stay with the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	a->thr_started = pthread_create(&a->thr, NULL, px_auth_worker, a) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!a->thr_started)
		goto fail;
	return a;
fail:
	px_auth_free(a);
	return NULL;
}

void
px_auth_free(struct px_auth *a)
{
	struct px_authq *q, *next;

	if (!a)
		return;
	if (a->thr_started) {
		pthread_mutex_lock(&a->mu);
		a->stop = 1;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thr, NULL);
	}
	for (q = a->todo; q; q = next) {
		next = q->next;
		explicit_bzero(q->pass, sizeof(q->pass));
		free(q);
	}
	for (q = a->done; q; q = next) {
		next = q->next;
		free(q);
	}
	if (a->ev)
		event_free(a->ev);
	if (a->efd >= 0)
		close(a->efd);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	px_users_free(a->conf, a->nconf);
	px_users_free(a->redis, a->nredis);
	for (int i = 0; i < PX_USAGE_BUCKETS; i++) {
		struct px_usage *u, *unext;

		for (u = a->usage[i]; u; u = unext) {
			unext = u->next;
			free(u);
		}
	}
	free(a->cd);
	free(a);
}

void
px_authq_cancel(struct px_authq *q)
{
	if (q)
		q->cb = NULL;
}

int
px_auth_set_conf(struct px_auth *a, const struct px_conf *c)
{
	const char **names = calloc((size_t)c->nusers + 1, sizeof(char *));
	const char **hashes = calloc((size_t)c->nusers + 1, sizeof(char *));
	long long *max = calloc((size_t)c->nusers + 1, sizeof(long long));
	struct px_user *arr = NULL;

	if (names && hashes && max) {
		for (int i = 0; i < c->nusers; i++) {
			names[i] = c->users[i].name;
			hashes[i] = c->users[i].hash;
			max[i] = c->users[i].max_conns;
		}
		arr = px_users_build(names, hashes, max, (size_t)c->nusers, a->conf, a->nconf);
	}
	free(names);
	free(hashes);
	free(max);
	if (!arr)
		return -1;
	px_users_free(a->conf, a->nconf);
	a->conf = arr;
	a->nconf = (size_t)c->nusers;
	a->default_max = c->user_max_conns;
	a->nbad = 0;
	memset(a->bad, 0, sizeof(a->bad));
	return 0;
}

int
px_auth_set_redis(struct px_auth *a, const char *const *names, const char *const *hashes,
    size_t n)
{
	struct px_user *arr = px_users_build(names, hashes, NULL, n, a->redis, a->nredis);

	if (!arr)
		return -1;
	px_users_free(a->redis, a->nredis);
	a->redis = arr;
	a->nredis = n;
	a->nbad = 0;
	memset(a->bad, 0, sizeof(a->bad));
	return 0;
}

size_t
px_auth_count(const struct px_auth *a)
{
	return a->nconf + a->nredis;
}

unsigned
px_auth_queued(const struct px_auth *a)
{
	return a->queued;
}

static unsigned
px_name_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % PX_USAGE_BUCKETS;
}

/* Take a connection slot of user name (limit max, 0: none). NULL when full. */
static struct px_usage *
px_usage_get(struct px_auth *a, const char *name, long long max)
{
	unsigned b = px_name_hash(name);
	struct px_usage *u;

	for (u = a->usage[b]; u; u = u->next)
		if (strcmp(u->name, name) == 0)
			break;
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return NULL;
		str_copy(u->name, name, sizeof(u->name));
		u->next = a->usage[b];
		a->usage[b] = u;
	}
	if (max > 0 && u->active >= (unsigned long long)max)
		return NULL;
	u->active++;
	return u;
}

void
px_usage_put(struct px_auth *a, struct px_usage *u)
{
	struct px_usage **pp;

	if (!u)
		return;
	if (--u->active > 0)
		return;
	for (pp = &a->usage[px_name_hash(u->name)]; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			free(u);
			return;
		}
}

static int
px_digest_eq(const uint8_t *x, const uint8_t *y)
{
	uint8_t d = 0;

	for (int i = 0; i < 32; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* ---------------------------------------------------------------------------
 * Rate limits of uncached checks
 * ------------------------------------------------------------------------- */

static struct px_rl *
px_rl_slot(struct px_auth *a, const char *kind, const char *name, int create)
{
	char key[72];
	unsigned h = 2166136261u;
	struct px_rl *r;

	snprintf(key, sizeof(key), "%s:%s", kind, name);
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	r = &a->rl[h % PX_RL_SLOTS];
	if (strcmp(r->key, key) != 0) {
		if (!create)
			return NULL;
		/* A collision evicts the other key: it starts over with a full
		 * bucket, which is the lenient side. */
		str_copy(r->key, key, sizeof(r->key));
		r->tokens = PX_RL_BURST;
		r->t_ms = clock_mono_ms();
	}
	return r;
}

/* Take a token from the bucket of kind:name; -1 when it is empty. */
static int
px_rl_take(struct px_auth *a, const char *kind, const char *name)
{
	struct px_rl *r = px_rl_slot(a, kind, name, 1);
	int64_t now = clock_mono_ms();

	r->tokens += (double)(now - r->t_ms) * PX_RL_PER_SEC / 1000.0;
	if (r->tokens > PX_RL_BURST)
		r->tokens = PX_RL_BURST;
	r->t_ms = now;
	if (r->tokens < 1)
		return -1;
	r->tokens -= 1;
	return 0;
}

static void
px_rl_give(struct px_auth *a, const char *kind, const char *name)
{
	struct px_rl *r = px_rl_slot(a, kind, name, 0);

	if (r && r->tokens + 1 <= PX_RL_BURST)
		r->tokens += 1;
}

/* File a verdict in the caches, if the user still has the hash checked. */
static void
px_auth_file(struct px_auth *a, struct px_authq *q)
{
	struct px_user *u = px_auth_lookup(a, q->user);

	if (q->ok) {
		px_rl_give(a, "ip", q->client);
		px_rl_give(a, "user", q->user);
	}
	if (!u || strcmp(u->hash, q->hash) != 0)
		return;
	if (q->ok) {
		memcpy(u->good, q->dig, 32);
		u->has_good = 1;
	} else {
		memcpy(a->bad[a->nbad++ % PX_BAD_RING], q->dig, 32);
	}
}

int
px_auth_check(struct px_auth *a, const char *user, const char *pass, const char *client,
    struct px_usage **usage, px_auth_cb *cb, void *arg, struct px_authq **qp)
{
	struct px_sha256 sh;
	uint8_t dig[32];
	struct px_user *u = px_auth_lookup(a, user);
	struct px_authq *q;
	long long max;

	*usage = NULL;
	*qp = NULL;
	if (!u)
		return PX_AUTH_BAD;
	px_sha256_init(&sh);
	px_sha256_update(&sh, user, strlen(user));
	px_sha256_update(&sh, ":", 1);
	px_sha256_update(&sh, pass, strlen(pass));
	px_sha256_final(&sh, dig);
	if (!(u->has_good && px_digest_eq(u->good, dig))) {
		for (unsigned i = 0; i < PX_BAD_RING; i++)
			if (px_digest_eq(a->bad[i], dig))
				return PX_AUTH_BAD;
		if (strlen(pass) >= sizeof(q->pass) || strlen(u->hash) >= sizeof(q->hash))
			return PX_AUTH_BAD;
		if (a->queued >= PX_AUTH_QUEUE_MAX)
			return PX_AUTH_THROTTLED;
		if (px_rl_take(a, "ip", client) < 0)
			return PX_AUTH_THROTTLED;
		if (px_rl_take(a, "user", user) < 0) {
			px_rl_give(a, "ip", client);
			return PX_AUTH_THROTTLED;
		}
		q = calloc(1, sizeof(*q));
		if (!q)
			return PX_AUTH_BAD;
		q->cb = cb;
		q->arg = arg;
		str_copy(q->user, user, sizeof(q->user));
		str_copy(q->hash, u->hash, sizeof(q->hash));
		str_copy(q->pass, pass, sizeof(q->pass));
		str_copy(q->client, client, sizeof(q->client));
		memcpy(q->dig, dig, 32);
		pthread_mutex_lock(&a->mu);
		*a->todo_tail = q;
		a->todo_tail = &q->next;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		a->queued++;
		*qp = q;
		return PX_AUTH_PENDING;
	}
	max = u->max_conns >= 0 ? u->max_conns : a->default_max;
	*usage = px_usage_get(a, user, max);
	return *usage ? PX_AUTH_OK : PX_AUTH_LIMIT;
}

/* Decode base64 (RFC 4648, padding optional) into out; -1 on bad input. */
static ssize_t
px_b64_decode(const char *in, size_t n, char *out, size_t outlen)
{
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int v;

		if (c >= 'A' && c <= 'Z') v = c - 'A';
		else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
		else if (c >= '0' && c <= '9') v = c - '0' + 52;
		else if (c == '+') v = 62;
		else if (c == '/') v = 63;
		else if (c == '=') break;
		else return -1;
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

int
px_auth_check_basic(struct px_auth *a, const char *value, size_t len, const char *client,
    struct px_usage **usage, char *user, size_t userlen, px_auth_cb *cb, void *arg,
    struct px_authq **qp)
{
	char buf[512], *colon;
	ssize_t n;

	*usage = NULL;
	*qp = NULL;
	if (len < 6 || strncasecmp(value, "basic ", 6) != 0)
		return -1;
	value += 6;
	len -= 6;
	while (len && *value == ' ') {
		value++;
		len--;
	}
	n = px_b64_decode(value, len, buf, sizeof(buf));
	if (n < 0 || memchr(buf, '\0', (size_t)n))
		return -1;
	colon = strchr(buf, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	str_copy(user, buf, userlen);
	n = px_auth_check(a, buf, colon + 1, client, usage, cb, arg, qp);
	explicit_bzero(buf, sizeof(buf));
	return (int)n;
}

int
px_auth_hash(const char *pass, char *out, size_t outlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;
	int rc = -1;

	if (!cd)
		return -1;
	if (crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt))) {
		h = crypt_r(pass, salt, cd);
		if (h && h[0] == '$' && str_copy(out, h, outlen) < outlen)
			rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}
