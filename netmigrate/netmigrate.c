/*
 * netmigrate.c: the command-line face of libnetmigrate.
 *
 *   netmigrate [-n NETNS] garp  -i DEV -m MAC [-f request|reply|both] [SCHED] IP...
 *   netmigrate [-n NETNS] na    -i DEV -m MAC [SCHED] IPV6...
 *   netmigrate [-n NETNS] route set|del IP [via GW] [dev DEV]
 *   netmigrate [-n NETNS] neigh set|del IP [lladdr MAC] dev DEV
 *   netmigrate [-n NETNS] neigh proxy-set|proxy-del IP dev DEV
 *   netmigrate handover --ips LIST [--mac MAC] [--dst-ns NS --dst-dev DEV [--gw IP]]
 *                       [--edge-ns NS --via IP [--edge-dev DEV]]
 *                       [--src-ns NS --src-dev DEV] [SCHED]
 *   SCHED: -r ROUNDS -I INITIAL_MS -S STEP_MS -M MAX_MS (QEMU's announce-*)
 *
 * Each command prints one line per thing it did, "<what> key=value ...
 * took_us=N", and exits 0; on error one line "netmigrate: <reason>" on
 * stderr and exit 1 (2 for a usage error). A CLI may sleep between burst
 * rounds; the agent uses timers instead.
 *
 * handover runs a whole plan in one process, each step in its own network
 * namespace (the lab's hosts and edge are namespaces): prepare on the
 * destination host, cutover (re-point the edge route, first announcement
 * round on the destination), withdraw on the source, then the remaining
 * announcement rounds. It reports the work time of each step and of the
 * cutover, the figure that decides how long the IP is unreachable.
 */
#include "netmigrate/nm.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NM_CLI_MAX_IPS 4096

struct cli {
	const char *netns;
	char err[512];
	struct nm_sched sched;
	enum nm_arp_form form;
	const char *dev;
	uint8_t mac[6];
	int has_mac;
};

static _Noreturn void
cli_die(const char *msg)
{
	fprintf(stderr, "netmigrate: %s\n", msg);
	exit(1);
}

static _Noreturn void
cli_usage(const char *msg)
{
	fprintf(stderr, "netmigrate: %s\n"
	    "usage: netmigrate [-n NETNS] garp|na -i DEV -m MAC [-f request|reply|both] "
	    "[-r ROUNDS -I INITIAL_MS -S STEP_MS -M MAX_MS] IP...\n"
	    "       netmigrate [-n NETNS] route set|del IP [via GW] [dev DEV]\n"
	    "       netmigrate [-n NETNS] neigh set|del|proxy-set|proxy-del IP [lladdr MAC] dev DEV\n"
	    "       netmigrate handover --ips IP,... [--mac MAC] [--dst-ns NS --dst-dev DEV "
	    "[--gw IP]] [--edge-ns NS --via IP [--edge-dev DEV]] [--src-ns NS --src-dev DEV] "
	    "[-r ROUNDS ...]\n", msg);
	exit(2);
}

static void
cli_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

static int
cli_int(const char *s, const char *what)
{
	char *end, msg[128];
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < 0 || v > 1000000) {
		snprintf(msg, sizeof(msg), "bad %s '%s'", what, s);
		cli_usage(msg);
	}
	return (int)v;
}

/* Options shared by garp, na and handover: the schedule and the form. */
static int
cli_common_opt(struct cli *c, int ch, const char *arg)
{
	switch (ch) {
	case 'r':
		c->sched.rounds = cli_int(arg, "rounds");
		return 1;
	case 'I':
		c->sched.initial_ms = cli_int(arg, "initial delay");
		return 1;
	case 'S':
		c->sched.step_ms = cli_int(arg, "step");
		return 1;
	case 'M':
		c->sched.max_ms = cli_int(arg, "max delay");
		return 1;
	case 'f':
		if (strcmp(arg, "request") == 0)
			c->form = NM_ARP_REQUEST;
		else if (strcmp(arg, "reply") == 0)
			c->form = NM_ARP_REPLY;
		else if (strcmp(arg, "both") == 0)
			c->form = NM_ARP_BOTH;
		else
			cli_usage("form is request, reply or both");
		return 1;
	case 'm':
		if (nm_mac_parse(arg, c->mac, c->err, sizeof(c->err)) < 0)
			cli_die(c->err);
		c->has_mac = 1;
		return 1;
	}
	return 0;
}

static struct nm_ctx *
cli_ctx(struct cli *c, const char *netns)
{
	struct nm_ctx *ctx = nm_ctx_open(netns, c->err, sizeof(c->err));

	if (!ctx)
		cli_die(c->err);
	return ctx;
}

/* ------------------------------------------------------------------ */
/* garp, na */

static int
cli_announce(struct cli *c, int v6, int argc, char **argv)
{
	static struct nm_ip ips[NM_CLI_MAX_IPS];
	struct nm_ctx *ctx;
	char m[NM_MACSTR_MAX];
	int ch, nips = 0, round, n, skipped, frames = 0, delay;
	int64_t t0, work = 0, start;

	while ((ch = getopt(argc, argv, "i:m:f:r:I:S:M:")) != -1) {
		if (ch == 'i')
			c->dev = optarg;
		else if (!cli_common_opt(c, ch, optarg))
			cli_usage("unknown option");
	}
	if (!c->dev || !c->has_mac || optind >= argc)
		cli_usage(v6 ? "na needs -i DEV, -m MAC and at least one IPv6 address" :
		    "garp needs -i DEV, -m MAC and at least one IPv4 address");
	if (nm_sched_check(&c->sched, c->err, sizeof(c->err)) < 0)
		cli_usage(c->err);
	for (; optind < argc; optind++) {
		if (nips == NM_CLI_MAX_IPS)
			cli_usage("too many addresses");
		if (nm_ip_parse(argv[optind], &ips[nips], c->err, sizeof(c->err)) < 0)
			cli_die(c->err);
		if ((ips[nips].family == AF_INET6) != v6) {
			snprintf(c->err, sizeof(c->err), "'%s' is not an %s address", argv[optind],
			    v6 ? "IPv6" : "IPv4");
			cli_die(c->err);
		}
		nips++;
	}
	ctx = cli_ctx(c, c->netns);
	start = clock_mono_us();
	for (round = 0; round < c->sched.rounds; round++) {
		t0 = clock_mono_us();
		n = nm_announce(ctx, c->dev, c->mac, ips, nips, c->form, &skipped, c->err,
		    sizeof(c->err));
		work += clock_mono_us() - t0;
		if (n < 0) {
			nm_ctx_free(ctx);
			cli_die(c->err);
		}
		if (skipped) {
			printf("%s skipped dev=%s reason=IFF_NOARP took_us=%lld\n", v6 ? "na" : "garp",
			    c->dev, (long long)work);
			nm_ctx_free(ctx);
			return 0;
		}
		frames += n;
		delay = nm_sched_delay_ms(&c->sched, round);
		if (delay > 0)
			cli_sleep_ms(delay);
	}
	printf("%s dev=%s mac=%s ips=%d rounds=%d frames=%d took_us=%lld elapsed_ms=%lld\n",
	    v6 ? "na" : "garp", c->dev, nm_mac_fmt(c->mac, m, sizeof(m)), nips, c->sched.rounds,
	    frames, (long long)work, (long long)(clock_mono_us() - start) / 1000);
	nm_ctx_free(ctx);
	return 0;
}

/* ------------------------------------------------------------------ */
/* route, neigh */

/* Parse "IP[/32|/128]". */
static void
cli_host_ip(struct cli *c, const char *s, struct nm_ip *ip)
{
	char buf[64];
	char *slash;

	str_copy(buf, s, sizeof(buf));
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (nm_ip_parse(buf, ip, c->err, sizeof(c->err)) < 0)
		cli_die(c->err);
	if (slash && strcmp(slash + 1, ip->family == AF_INET ? "32" : "128") != 0) {
		snprintf(c->err, sizeof(c->err), "'%s': only host routes (/32, /128)", s);
		cli_die(c->err);
	}
}

static int
cli_route(struct cli *c, int argc, char **argv)
{
	struct nm_ip dst, gw;
	struct nm_ctx *ctx;
	const char *dev = NULL, *gws = NULL;
	int has_gw = 0, i, r, gone = 0, set;
	int64_t t0, took;

	if (argc < 3 || (strcmp(argv[1], "set") && strcmp(argv[1], "del") &&
	    strcmp(argv[1], "add") && strcmp(argv[1], "replace")))
		cli_usage("route set|del IP [via GW] [dev DEV]");
	set = strcmp(argv[1], "del") != 0;
	cli_host_ip(c, argv[2], &dst);
	for (i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			cli_usage("route: a keyword without its value");
		if (strcmp(argv[i], "via") == 0) {
			if (nm_ip_parse(argv[i + 1], &gw, c->err, sizeof(c->err)) < 0)
				cli_die(c->err);
			has_gw = 1;
			gws = argv[i + 1];
		} else if (strcmp(argv[i], "dev") == 0) {
			dev = argv[i + 1];
		} else {
			cli_usage("route: expected via or dev");
		}
	}
	ctx = cli_ctx(c, c->netns);
	t0 = clock_mono_us();
	if (set)
		r = nm_route_set(ctx, &dst, has_gw ? &gw : NULL, dev, c->err, sizeof(c->err));
	else
		r = nm_route_del(ctx, &dst, has_gw ? &gw : NULL, dev, &gone, c->err,
		    sizeof(c->err));
	took = clock_mono_us() - t0;
	nm_ctx_free(ctx);
	if (r < 0)
		cli_die(c->err);
	printf("route %s %s%s%s%s%s took_us=%lld\n", set ? "set" : gone ? "absent" : "deleted",
	    argv[2], gws ? " via " : "", gws ? gws : "", dev ? " dev " : "", dev ? dev : "",
	    (long long)took);
	return 0;
}

static int
cli_neigh(struct cli *c, int argc, char **argv)
{
	struct nm_ip ip;
	struct nm_ctx *ctx;
	const char *dev = NULL, *verb;
	char m[NM_MACSTR_MAX];
	int i, r;
	int64_t t0, took;

	if (argc < 3)
		cli_usage("neigh set|del|proxy-set|proxy-del IP [lladdr MAC] dev DEV");
	verb = argv[1];
	if (nm_ip_parse(argv[2], &ip, c->err, sizeof(c->err)) < 0)
		cli_die(c->err);
	for (i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			cli_usage("neigh: a keyword without its value");
		if (strcmp(argv[i], "dev") == 0)
			dev = argv[i + 1];
		else if (strcmp(argv[i], "lladdr") == 0)
			cli_common_opt(c, 'm', argv[i + 1]);
		else
			cli_usage("neigh: expected lladdr or dev");
	}
	if (!dev)
		cli_usage("neigh: dev DEV is required");
	ctx = cli_ctx(c, c->netns);
	t0 = clock_mono_us();
	if (strcmp(verb, "set") == 0) {
		if (!c->has_mac) {
			nm_ctx_free(ctx);
			cli_usage("neigh set needs lladdr MAC");
		}
		r = nm_neigh_set(ctx, &ip, c->mac, dev, c->err, sizeof(c->err));
	} else if (strcmp(verb, "del") == 0) {
		r = nm_neigh_del(ctx, &ip, dev, c->err, sizeof(c->err));
	} else if (strcmp(verb, "proxy-set") == 0) {
		r = nm_proxy_set(ctx, &ip, dev, c->err, sizeof(c->err));
	} else if (strcmp(verb, "proxy-del") == 0) {
		r = nm_proxy_del(ctx, &ip, dev, c->err, sizeof(c->err));
	} else {
		nm_ctx_free(ctx);
		cli_usage("neigh set|del|proxy-set|proxy-del");
	}
	took = clock_mono_us() - t0;
	nm_ctx_free(ctx);
	if (r < 0)
		cli_die(c->err);
	printf("neigh %s %s%s%s dev=%s took_us=%lld\n", verb, argv[2], c->has_mac ? " lladdr=" : "",
	    c->has_mac ? nm_mac_fmt(c->mac, m, sizeof(m)) : "", dev, (long long)took);
	return 0;
}

/* ------------------------------------------------------------------ */
/* handover */

struct cli_plan {
	const char *dst_ns, *dst_dev, *edge_ns, *edge_dev, *src_ns, *src_dev;
	int has_dst, has_edge, has_src;
};

static void
cli_step(struct cli *c, const char *step, const char *ns, int n, int64_t took)
{
	if (n < 0)
		cli_die(c->err);
	printf("handover %s ns=%s objects=%d took_us=%lld\n", step, ns ? ns : "-", n,
	    (long long)took);
}

static int
cli_handover(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ips", required_argument, NULL, 'i' },
		{ "mac", required_argument, NULL, 'm' },
		{ "vm", required_argument, NULL, 'v' },
		{ "dst-ns", required_argument, NULL, 1 },
		{ "dst-dev", required_argument, NULL, 2 },
		{ "gw", required_argument, NULL, 3 },
		{ "edge-ns", required_argument, NULL, 4 },
		{ "edge-dev", required_argument, NULL, 5 },
		{ "via", required_argument, NULL, 6 },
		{ "src-ns", required_argument, NULL, 7 },
		{ "src-dev", required_argument, NULL, 8 },
		{ NULL, 0, NULL, 0 },
	};
	static struct nm_order host, edge;
	struct cli_plan p = { 0 };
	struct nm_ctx *dst = NULL, *ed = NULL, *src = NULL;
	const char *ips = NULL;
	int ch, n, round, frames = 0, delay;
	int64_t t0, t_prep = 0, t_cut = 0, t_wd = 0, t_ann = 0, start;

	memset(&host, 0, sizeof(host));
	while ((ch = getopt_long(argc, argv, "i:m:f:r:I:S:M:v:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i': ips = optarg; break;
		case 'v': str_copy(host.vm, optarg, sizeof(host.vm)); break;
		case 1: p.dst_ns = optarg; p.has_dst = 1; break;
		case 2: p.dst_dev = optarg; p.has_dst = 1; break;
		case 3:
			if (nm_ip_parse(optarg, &host.via, c->err, sizeof(c->err)) < 0)
				cli_die(c->err);
			host.has_via = 1;
			break;
		case 4: p.edge_ns = optarg; p.has_edge = 1; break;
		case 5: p.edge_dev = optarg; break;
		case 6:
			if (nm_ip_parse(optarg, &edge.via, c->err, sizeof(c->err)) < 0)
				cli_die(c->err);
			edge.has_via = 1;
			p.has_edge = 1;
			break;
		case 7: p.src_ns = optarg; p.has_src = 1; break;
		case 8: p.src_dev = optarg; p.has_src = 1; break;
		default:
			if (!cli_common_opt(c, ch, optarg))
				cli_usage("unknown option");
		}
	}
	if (!ips)
		cli_usage("handover needs --ips");
	if (nm_sched_check(&c->sched, c->err, sizeof(c->err)) < 0)
		cli_usage(c->err);
	host.nips = nm_ips_parse(ips, host.ips, NM_ORDER_MAX_IPS, c->err, sizeof(c->err));
	if (host.nips < 0)
		cli_die(c->err);
	if (p.has_dst && !p.dst_dev)
		cli_usage("--dst-dev is required with a destination");
	if (p.has_src && !p.src_dev)
		cli_usage("--src-dev is required with a source");
	if (p.has_edge && !edge.has_via)
		cli_usage("--via is required with an edge");
	if (!p.has_dst && !p.has_edge && !p.has_src)
		cli_usage("nothing to do: give a destination, an edge or a source");
	host.has_mac = c->has_mac;
	memcpy(host.mac, c->mac, 6);
	edge.nips = host.nips;
	memcpy(edge.ips, host.ips, sizeof(edge.ips));

	/* Open every namespace first: a typo fails before anything changes. */
	if (p.has_dst)
		dst = cli_ctx(c, p.dst_ns);
	if (p.has_edge)
		ed = cli_ctx(c, p.edge_ns);
	if (p.has_src)
		src = cli_ctx(c, p.src_ns);

	start = clock_mono_us();
	if (dst) {
		t0 = clock_mono_us();
		n = nm_plan_prepare(dst, &host, p.dst_dev, c->err, sizeof(c->err));
		t_prep = clock_mono_us() - t0;
		cli_step(c, "prepare", p.dst_ns, n, t_prep);
	}
	/* Cutover: the edge re-points, the destination announces. */
	if (ed) {
		t0 = clock_mono_us();
		n = nm_plan_point(ed, &edge, p.edge_dev, c->err, sizeof(c->err));
		t_cut += clock_mono_us() - t0;
		cli_step(c, "point", p.edge_ns, n, t_cut);
	}
	if (dst && host.has_mac) {
		t0 = clock_mono_us();
		n = nm_announce(dst, p.dst_dev, host.mac, host.ips, host.nips, c->form, NULL,
		    c->err, sizeof(c->err));
		t_ann = clock_mono_us() - t0;
		t_cut += t_ann;
		frames += n > 0 ? n : 0;
		cli_step(c, "announce", p.dst_ns, n, t_ann);
	}
	if (src) {
		t0 = clock_mono_us();
		n = nm_plan_withdraw(src, &host, p.src_dev, c->err, sizeof(c->err));
		t_wd = clock_mono_us() - t0;
		cli_step(c, "withdraw", p.src_ns, n, t_wd);
	}
	printf("handover done ips=%d prepare_us=%lld cutover_us=%lld withdraw_us=%lld "
	    "work_us=%lld\n", host.nips, (long long)t_prep, (long long)t_cut, (long long)t_wd,
	    (long long)(t_prep + t_cut + t_wd));
	fflush(stdout);
	/* The rest of the burst. */
	for (round = 1; dst && host.has_mac && round < c->sched.rounds; round++) {
		cli_sleep_ms(nm_sched_delay_ms(&c->sched, round - 1));
		t0 = clock_mono_us();
		n = nm_announce(dst, p.dst_dev, host.mac, host.ips, host.nips, c->form, NULL,
		    c->err, sizeof(c->err));
		t_ann += clock_mono_us() - t0;
		if (n < 0)
			cli_die(c->err);
		frames += n;
	}
	delay = (int)((clock_mono_us() - start) / 1000);
	if (dst && host.has_mac)
		printf("handover announced frames=%d rounds=%d took_us=%lld elapsed_ms=%d\n", frames,
		    c->sched.rounds, (long long)t_ann, delay);
	nm_ctx_free(dst);
	nm_ctx_free(ed);
	nm_ctx_free(src);
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli c = { .sched = NM_SCHED_DEFAULT, .form = NM_ARP_BOTH };
	const char *cmd;
	int ch;

	while ((ch = getopt(argc, argv, "+n:h")) != -1) {
		if (ch == 'n')
			c.netns = optarg;
		else
			cli_usage("bad option");
	}
	if (optind >= argc)
		cli_usage("no command");
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	optind = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "garp") == 0)
		return cli_announce(&c, 0, argc, argv);
	if (strcmp(cmd, "na") == 0)
		return cli_announce(&c, 1, argc, argv);
	if (strcmp(cmd, "route") == 0)
		return cli_route(&c, argc, argv);
	if (strcmp(cmd, "neigh") == 0)
		return cli_neigh(&c, argc, argv);
	if (strcmp(cmd, "handover") == 0)
		return cli_handover(&c, argc, argv);
	cli_usage("unknown command");
}
