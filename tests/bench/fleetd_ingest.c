/*
 * fleetd_ingest.c: fleetd's telemetry ingest at fleet scale.
 *
 * Builds fleetd's own model for H hosts and V VMs (no libvirt: that side
 * needs real hosts and is not what this measures), connects to a real Redis
 * that a writer fills at 1 Hz with every VM's counters and every host's lease
 * and metrics, and runs fleetd's tick body (ctl_tel_poll, staleness,
 * tally) once a second for N seconds. Prints the CPU share of one core and
 * the peak RSS over the run, and checks that every VM got fresh rates.
 *
 * usage: fleetd_ingest REDIS_PORT HOSTS VMS SECONDS
 */
#include "controller/fleetd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct bench {
	struct fleetd env;
	int seconds, ticks;
	int64_t t_start;
	double cpu_start;
};

static double
bench_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long
bench_rss_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = atol(line + strlen(field));
	if (f)
		fclose(f);
	return v;
}

static void
bench_state(struct rlink *rl, int up, const char *why, void *arg)
{
	(void)rl;
	(void)arg;
	if (!up)
		fprintf(stderr, "redis: %s\n", why);
}

static void
bench_tick(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;
	struct fleetd *env = &b->env;

	(void)fd;
	(void)what;
	ctl_tel_poll(env);
	ctl_model_mark_stale(&env->model, clock_wall_ms(), env->conf->stale_ms);
	ctl_model_tally(&env->model);
	if (++b->ticks == 3) {	/* warm-up: rates primed, buffers grown */
		b->t_start = clock_mono_ms();
		b->cpu_start = bench_cpu_s();
	}
	if (b->ticks == 3 + b->seconds)
		event_base_loopbreak(env->base);
}

int
main(int argc, char **argv)
{
	struct bench b = { 0 };
	struct fleetd *env = &b.env;
	struct ctl_conf conf = { 0 };
	struct timeval sec = { 1, 0 };
	struct event *tick;
	int port, nhosts, nvms, fresh = 0, rated = 0;
	char name[64];

	if (argc != 5) {
		fprintf(stderr, "usage: fleetd_ingest REDIS_PORT HOSTS VMS SECONDS\n");
		return 2;
	}
	port = atoi(argv[1]);
	nhosts = atoi(argv[2]);
	nvms = atoi(argv[3]);
	b.seconds = atoi(argv[4]);
	log_init("fleetd_ingest", LOG_LVL_WARN);

	conf.stale_ms = 5000;
	conf.tick_ms = 1000;
	conf.nregions = 1;
	conf.regions = calloc(1, sizeof(*conf.regions));
	str_copy(conf.regions[0].name, "r", sizeof(conf.regions[0].name));
	conf.nhosts = nhosts;
	conf.hosts = calloc((size_t)nhosts, sizeof(*conf.hosts));
	for (int h = 0; h < nhosts; h++) {
		snprintf(conf.hosts[h].name, sizeof(conf.hosts[h].name), "h%d", h);
		str_copy(conf.hosts[h].region, "r", sizeof(conf.hosts[h].region));
		conf.hosts[h].memory = 64LL << 30;
		conf.hosts[h].vcpus = 64;
		conf.hosts[h].nic = 1250000000;
	}
	env->conf = &conf;
	env->base = event_base_new();
	ctl_model_init(&env->model, &conf);
	for (int i = 0; i < nvms; i++) {
		struct ctl_vm *vm;

		snprintf(name, sizeof(name), "vm%d", i);
		vm = ctl_vm_get(&env->model, name);
		vm->host = i % nhosts;
		vm->state = VM_RUNNING;
		vm->mem_bytes = 128 << 20;
		vm->vcpus = 1;
	}
	env->redis = rlink_new(env->base, "127.0.0.1", port, NULL, bench_state, NULL);
	tick = event_new(env->base, -1, EV_PERSIST, bench_tick, &b);
	event_add(tick, &sec);
	event_base_dispatch(env->base);

	double wall = (double)(clock_mono_ms() - b.t_start) / 1000.0;
	double cpu = bench_cpu_s() - b.cpu_start;

	for (int i = 0; i < env->model.nvms; i++) {
		fresh += !env->model.vms[i]->stale;
		rated += env->model.vms[i]->up.per_s > 0;
	}
	printf("hosts=%d vms=%d seconds=%.1f cpu_pct=%.1f rss_peak_mib=%.1f rss_mib=%.1f "
	    "fresh=%d rated=%d\n", nhosts, nvms, wall, 100.0 * cpu / wall,
	    (double)bench_rss_kib("VmHWM:") / 1024.0, (double)bench_rss_kib("VmRSS:") / 1024.0,
	    fresh, rated);
	event_free(tick);
	rlink_free(env->redis);
	ctl_model_free(&env->model);
	event_base_free(env->base);
	free(conf.hosts);
	free(conf.regions);
	return fresh == nvms && rated == nvms ? 0 : 1;
}
