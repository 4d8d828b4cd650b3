/*
 * nmd_metrics.c: the host's metrics, published to pf:host:<host>:metrics
 * every metrics_interval: CPU use from /proc/stat, memory from
 * /proc/meminfo, and the byte rates of the uplink and the VM bridge from
 * /sys/class/net/<dev>/statistics. These are in-memory files the kernel
 * fills on read: reading them on the loop costs microseconds.
 *
 * Rates are deltas over the time between two samples; the first sample only
 * sets the baseline. A missing interface reads as zero (the bridge may not
 * exist yet on a fresh host). While Redis is down, samples are taken but
 * not written, so the first write after an outage has honest rates.
 */
#include "netmigrate/nmd.h"
#include "common/log.h"
#include "common/rlink.h"
#include "common/util.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
nmd_cpu_read(unsigned long long *total, unsigned long long *idle)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	    &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return -1;
	*total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	*idle = v[3] + v[4];	/* idle + iowait */
	return 0;
}

static void
nmd_mem_read(unsigned long long *total, unsigned long long *avail)
{
	char line[256];
	unsigned long long kb;
	FILE *f = fopen("/proc/meminfo", "r");

	*total = *avail = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			*total = kb * 1024;
		else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			*avail = kb * 1024;
	}
	fclose(f);
}

static uint64_t
nmd_if_stat(const char *dev, const char *what)
{
	char path[160];
	unsigned long long v = 0;
	FILE *f;

	if (!dev[0])
		return 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", dev, what);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static void
nmd_metrics_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nmd *env = arg;
	unsigned long long total = 0, idle = 0, mtotal, mavail;
	uint64_t bytes[4];
	double cpu = 0, rate[4] = { 0 }, dt;
	int64_t now = clock_mono_ms();
	char v[12][32];
	const char *argv[18];
	size_t lens[18];
	int i, first;

	(void)fd;
	(void)what;
	first = env->m_prev_ms == 0;
	(void)nmd_cpu_read(&total, &idle);
	nmd_mem_read(&mtotal, &mavail);
	bytes[0] = nmd_if_stat(env->conf.uplink, "rx_bytes");
	bytes[1] = nmd_if_stat(env->conf.uplink, "tx_bytes");
	bytes[2] = nmd_if_stat(env->conf.vm_bridge, "rx_bytes");
	bytes[3] = nmd_if_stat(env->conf.vm_bridge, "tx_bytes");
	dt = (double)(now - env->m_prev_ms) / 1000.0;
	if (!first && total > env->m_cpu_total)
		cpu = 100.0 * (double)((total - env->m_cpu_total) - (idle - env->m_cpu_idle)) /
		    (double)(total - env->m_cpu_total);
	for (i = 0; i < 4 && !first && dt > 0; i++)
		rate[i] = bytes[i] >= env->m_bytes[i] ? (double)(bytes[i] - env->m_bytes[i]) / dt : 0;
	env->m_prev_ms = now;
	env->m_cpu_total = total;
	env->m_cpu_idle = idle;
	memcpy(env->m_bytes, bytes, sizeof(bytes));
	if (first || !rlink_is_up(env->wr))
		return;

	snprintf(v[0], sizeof(v[0]), "%lld", (long long)clock_wall_ms());
	snprintf(v[1], sizeof(v[1]), "%.1f", cpu);
	snprintf(v[2], sizeof(v[2]), "%llu", mtotal);
	snprintf(v[3], sizeof(v[3]), "%llu", mavail);
	for (i = 0; i < 4; i++)
		snprintf(v[4 + i], sizeof(v[4 + i]), "%.0f", rate[i]);
	argv[0] = "HSET";
	argv[1] = env->k_metrics;
	{
		static const char *const names[8] = { "ts_ms", "cpu_pct", "mem_total", "mem_free",
			"uplink_rx_bps", "uplink_tx_bps", "vmbr_rx_bps", "vmbr_tx_bps" };

		for (i = 0; i < 8; i++) {
			argv[2 + 2 * i] = names[i];
			argv[3 + 2 * i] = v[i];
		}
	}
	for (i = 0; i < 18; i++)
		lens[i] = strlen(argv[i]);
	if (rlink_command_argv(env->wr, NULL, NULL, 18, argv, lens) < 0)
		log_debug("metrics skipped: redis busy or down");
}

int
nmd_metrics_init(struct nmd *env)
{
	struct timeval tv = { env->conf.metrics_ms / 1000, (env->conf.metrics_ms % 1000) * 1000 };

	env->metrics_ev = event_new(env->base, -1, EV_PERSIST, nmd_metrics_cb, env);
	if (!env->metrics_ev)
		return -1;
	nmd_metrics_cb(-1, 0, env);	/* baseline */
	return evtimer_add(env->metrics_ev, &tv);
}

void
nmd_metrics_free(struct nmd *env)
{
	if (env->metrics_ev)
		event_free(env->metrics_ev);
	env->metrics_ev = NULL;
}
