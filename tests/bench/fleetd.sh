#!/usr/bin/env bash
# fleetd.sh: fleetd's telemetry ingest with 1,000 hosts and 10,000 VMs of
# synthetic telemetry in a real Redis at 1 Hz (see fleetd_ingest.c).
# Targets: under 25% of one core and under 64 MiB RSS. Not part of make test.
# usage: tests/bench/fleetd.sh [HOSTS VMS SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
HOSTS=${1:-1000} VMS=${2:-10000} SECS=${3:-30} PORT=16399
make -s build/bin/bench/fleetd_ingest
dir=$(mktemp -d /tmp/pf-bench-fleetd.XXXXXX)
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
	--dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
writer=
cleanup() {
	[ -n "$writer" ] && kill "$writer" 2>/dev/null
	[ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
until redis-cli -p $PORT ping >/dev/null 2>&1; do sleep 0.05; done

# The writer: every second, one Lua call that updates every VM's counters
# (as proxyvmd would, each with its own HSET) and every host's lease and
# metrics (as netmigrated would).
lua='local now = ARGV[1]; local nv = tonumber(ARGV[2]); local nh = tonumber(ARGV[3]); local t = tonumber(ARGV[4])
for i = 0, nv - 1 do
  redis.call("HSET", "pf:vm:vm" .. i .. ":tel", "ts_ms", now, "boot_ms", 1, "bytes_up", t * (1000 + i),
    "bytes_down", t * (5000 + i), "requests", t * 10, "conns_total", t * 2, "conns_active", i % 50)
end
for h = 0, nh - 1 do
  redis.call("SET", "pf:host:h" .. h .. ":lease", "tok", "PX", 3000)
  redis.call("HSET", "pf:host:h" .. h .. ":metrics", "ts_ms", now, "cpu_pct", 12.5, "mem_total", 68719476736,
    "mem_free", 34359738368, "uplink_rx_bps", 1e6, "uplink_tx_bps", 2e6)
end
return nv'
(
	t=1
	while :; do
		redis-cli -p $PORT EVAL "$lua" 0 "$(($(date +%s%N) / 1000000))" "$VMS" "$HOSTS" "$t" >/dev/null
		t=$((t + 1))
		sleep 1
	done
) &
writer=$!
sleep 1.5
echo "fleetd ingest: $HOSTS hosts, $VMS VMs, $SECS s at 1 Hz (targets: cpu < 25%, rss < 64 MiB)"
build/bin/bench/fleetd_ingest $PORT "$HOSTS" "$VMS" "$SECS"
