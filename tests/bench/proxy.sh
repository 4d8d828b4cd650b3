#!/usr/bin/env bash
# proxy.sh: proxyvmd against Debian's proxies, on loopback, in one run.
#
# Installs the peers (tinyproxy, squid, dante-server, microsocks) and the
# load tools (wrk, nginx) with apt, starts a local nginx backend and each
# proxy with a minimal fast config, and prints one Markdown table:
#   fwd req/s, p99   wrk, 50 connections, absolute-URI GETs of a 100-byte
#                    object through the proxy (keep-alive)
#   CONNECT MB/s     curl -p through the HTTP proxy, 64 MiB object
#   SOCKS5 MB/s      curl --socks5, 64 MiB object
#   idle / peak RSS  VmRSS after start, VmHWM after the runs
# plus the direct (no proxy) line and proxyvmd's ratios.
# The bulk columns here are one moment each (best of 2): for the bulk ratio
# against direct use tests/bench/proxy_bulk.sh (make bench-proxy-bulk), which
# interleaves the lines over several rounds and reports medians.
# Not part of make test. Loopback only; every run is bounded.
#
# env: BENCH_SECONDS (wrk duration, default 5), PF_BIN (build/bin).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PF_BIN=${PF_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECONDS:-5}
D=$(mktemp -d /tmp/pf-bench.XXXXXX)
chmod 755 "$D"	# nginx workers and squid run unprivileged
PIDS=()
cleanup() {
	exec 2>/dev/null	# no "Killed" job notices
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$D"
}
trap cleanup EXIT

need=()
for p in tinyproxy squid dante-server microsocks wrk nginx curl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}" >&2
	made=0
	[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >"$D/apt.log" 2>&1 ||
		{ tail "$D/apt.log"; exit 1; }
	[ $made = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
[ -x "$PF_BIN/proxyvmd" ] || { echo "bench: build proxyvmd first (make)" >&2; exit 1; }

B=31080 P_VMD=31081 P_VMS=31082 P_TINY=31083 P_SQUID=31084 P_DANTE=31085 P_MICRO=31086

# --- backend -------------------------------------------------------------
mkdir -p "$D/www" "$D/nginx"
head -c 100 /dev/zero | tr '\0' x >"$D/www/small"
head -c $((64 << 20)) /dev/zero >"$D/www/bulk"
cat >"$D/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $D/nginx/pid;
error_log $D/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	server { listen 127.0.0.1:$B; root $D/www; }
}
EOF
nginx -c "$D/nginx/nginx.conf" -p "$D/nginx" &
PIDS+=($!)

# --- proxies ---------------------------------------------------------------
cat >"$D/px.conf" <<EOF
vm = bench
log_level = warn
[limits]
max_conns = 10000
[listener http]
listen = 127.0.0.1:$P_VMD
[listener socks]
listen = 127.0.0.1:$P_VMS
proto = socks5
[egress]
allow = 127.0.0.0/8
EOF
cat >"$D/tiny.conf" <<EOF
Port $P_TINY
Listen 127.0.0.1
Timeout 600
MaxClients 1000
LogLevel Critical
Allow 127.0.0.1
DisableViaHeader Yes
EOF
mkdir -p "$D/squid" && chmod 777 "$D/squid"
cat >"$D/squid.conf" <<EOF
http_port 127.0.0.1:$P_SQUID
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_log $D/squid/cache.log
pid_filename $D/squid/pid
coredump_dir $D/squid
shutdown_lifetime 0 seconds
via off
forwarded_for delete
EOF
cat >"$D/sockd.conf" <<EOF
logoutput: $D/sockd.log
internal: 127.0.0.1 port = $P_DANTE
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
EOF
cat >"$D/abs.lua" <<EOF
request = function() return wrk.format("GET", "http://127.0.0.1:$B/small") end
EOF

declare -A PID
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() {	# start NAME PORT CMD...
	local name=$1 port=$2
	shift 2
	"$@" >"$D/$name.out" 2>&1 &
	PID[$name]=$!
	PIDS+=($!)
	for _ in $(seq 100); do
		port_up "$port" && return 0
		sleep 0.1
	done
	echo "bench: $name did not start: $(tail -n 3 "$D/$name.out")" >&2
	return 1
}
for _ in $(seq 50); do port_up $B && break; sleep 0.1; done
start proxyvmd $P_VMD "$PF_BIN/proxyvmd" -f "$D/px.conf"
start tinyproxy $P_TINY tinyproxy -d -c "$D/tiny.conf"
start squid $P_SQUID squid -N -f "$D/squid.conf"
start dante $P_DANTE danted -f "$D/sockd.conf"
start microsocks $P_MICRO microsocks -i 127.0.0.1 -p $P_MICRO
sleep 1

rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A IDLE
for n in proxyvmd tinyproxy squid dante microsocks; do IDLE[$n]=$(rss "${PID[$n]}" VmRSS); done

# wrk_run PORT [direct]: "req/s|p99_ms"
wrk_run() {
	local out rps p99 bad
	if [ "${2:-}" = direct ]; then
		out=$(wrk -t1 -c50 -d"${SECS}s" --latency "http://127.0.0.1:$1/small" 2>&1)
	else
		out=$(wrk -t1 -c50 -d"${SECS}s" --latency -s "$D/abs.lua" "http://127.0.0.1:$1/" 2>&1)
	fi
	rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
	p99=$(echo "$out" | awk '$1 == "99%" { v = $2; m = 1
		if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /s$/) m = 1000
		gsub(/[a-z]+$/, "", v); printf "%.2f", v * m }')
	bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
	[ -n "$bad" ] && rps="$rps (non-2xx: $bad)"
	echo "${rps:-0}|${p99:-?}"
}
# bulk MODE [PORT]: best MiB/s of 2 runs; MODE direct, connect or socks.
bulk() {
	local best=0 v i
	for i in 1 2; do
		case $1 in
		direct) v=$(curl -s -o /dev/null --max-time 60 -w '%{speed_download}' "http://127.0.0.1:$B/bulk") ;;
		connect) v=$(curl -s -o /dev/null --max-time 60 -p -x "http://127.0.0.1:$2" -w '%{speed_download}' "http://127.0.0.1:$B/bulk") ;;
		socks) v=$(curl -s -o /dev/null --max-time 60 --socks5 "127.0.0.1:$2" -w '%{speed_download}' "http://127.0.0.1:$B/bulk") ;;
		esac
		v=$(awk -v b="${v:-0}" 'BEGIN {printf "%d", b / 1048576}')
		[ "$v" -gt "$best" ] && best=$v
	done
	echo "$best"
}

declare -A FWD CON SOC
FWD[direct]=$(wrk_run $B direct); CON[direct]=$(bulk direct); SOC[direct]=${CON[direct]}
FWD[proxyvmd]=$(wrk_run $P_VMD); CON[proxyvmd]=$(bulk connect $P_VMD); SOC[proxyvmd]=$(bulk socks $P_VMS)
FWD[tinyproxy]=$(wrk_run $P_TINY); CON[tinyproxy]=$(bulk connect $P_TINY); SOC[tinyproxy]=-
FWD[squid]=$(wrk_run $P_SQUID); CON[squid]=$(bulk connect $P_SQUID); SOC[squid]=-
FWD[dante]="-|-"; CON[dante]=-; SOC[dante]=$(bulk socks $P_DANTE)
FWD[microsocks]="-|-"; CON[microsocks]=-; SOC[microsocks]=$(bulk socks $P_MICRO)

printf '\n| proxy | fwd req/s | fwd p99 ms | CONNECT MiB/s | SOCKS5 MiB/s | idle RSS KiB | peak RSS KiB |\n'
printf '|---|---|---|---|---|---|---|\n'
for n in direct proxyvmd tinyproxy squid dante microsocks; do
	if [ $n = direct ]; then idle=- peak=-; else idle=${IDLE[$n]}; peak=$(rss "${PID[$n]}" VmHWM); fi
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${FWD[$n]%%|*}" "${FWD[$n]##*|}" \
		"${CON[$n]}" "${SOC[$n]}" "$idle" "$peak"
done
best_fwd=0 best_bulk=0
for n in tinyproxy squid; do
	v=${FWD[$n]%%|*}; v=${v%% *}
	[ "${v:-0}" -gt $best_fwd ] && best_fwd=$v
done
vmd=${FWD[proxyvmd]%%|*}; vmd=${vmd%% *}
echo
awk -v a="$vmd" -v b="$best_fwd" -v c="${CON[proxyvmd]}" -v s="${SOC[proxyvmd]}" -v d="${CON[direct]}" \
	'BEGIN { printf "proxyvmd: fwd req/s %.2fx the best peer; CONNECT %.0f%% and SOCKS5 %.0f%% of direct\n",
	(b ? a / b : 0), (d ? 100 * c / d : 0), (d ? 100 * s / d : 0) }'
