#!/usr/bin/env bash
# lab.sh: proxyfleet's local multi-region lab, on one machine, in namespaces.
#
#   root ns ── pfmgmt0 ── pf-edge (router) ─┬─ br-eu ── eu-1, eu-2 (hosts)
#   (Redis)                                  ├─ br-us ── us-1
#                                            └─ pfc0 ─── pf-client
#
# Each host is a network + mount namespace with its own virtlogd and libvirtd
# (TCP listener on its region address), private tmpfs state, a VM bridge br0
# that carries its address and its uplink to the region bridge, and (once
# built) its netmigrated agent; one more agent runs on the edge router. The
# address plan is fixed (docs/lab.md) and written to build/lab/lab.env for the
# other tools. docs/lab.md has the picture and the reasons.
#
# Every process the lab starts is recorded in $STATE (PID and start time, so a
# recycled PID is never hit) and stopped by that PID; lab-down also stops what
# is left inside the lab's own network namespaces (the QEMU processes that the
# host libvirtds spawned), found with `ip netns pids`. Nothing is killed by
# name. The state file is appended to as the lab comes up, so `down` also
# cleans a half-made lab after a crash.
#
# usage: lab.sh up|down|status|env|cpu [SECONDS]
#        lab.sh kill-host|revive-host|isolate|rejoin HOST   (failure drills)
#        lab.sh redis-restart | sentinel-failover | agent-restart HOST|edge
#                                                           (control-plane drills)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_DIR=${PF_LAB_DIR:-$ROOT/build/lab}
LAB_ENV=$LAB_DIR/lab.env
STATE_DIR=${PF_LAB_STATE_DIR:-/run/proxyfleet-lab}
STATE=$STATE_DIR/state
IMAGE_DIR=$ROOT/build/image

HOSTS=(eu-1 eu-2 us-1)
REGIONS=(eu us)
EDGE_NS=pf-edge
CLIENT_NS=pf-client
MGMT_IF=pfmgmt0
MGMT_ROOT_IP=10.77.254.1
MGMT_EDGE_IP=10.77.254.2
LAB_NET=10.77.0.0/16
GW_MAC=02:77:00:00:00:01
REDIS_PORT=6379
# Redis as production runs it: a master, a replica and three sentinels (all
# on the management address); every client finds the master through them.
REDIS_REPLICA_PORT=6380
SENTINEL_PORTS=(26379 26380 26381)
REDIS_MASTER_NAME=pf

die() { echo "lab: $*" >&2; exit 1; }
log() { echo "lab: $*"; }

# ---------------------------------------------------------------- address plan

region_index() { case $1 in eu) echo 1 ;; us) echo 2 ;; *) die "unknown region $1" ;; esac; }
region_bridge() { echo "br-$1"; }
region_gw() { echo "10.77.$(region_index "$1").1"; }
region_gw6() { echo "fd77:$(region_index "$1")::1"; }
host_region() { echo "${1%-*}"; }
host_ip() { echo "10.77.$(region_index "$(host_region "$1")").$((10 + ${1##*-}))"; }
host_ip6() { echo "fd77:$(region_index "$(host_region "$1")")::$((10 + ${1##*-}))"; }
host_netns() { echo "pf-$1"; }
host_uri() { echo "qemu+tcp://$(host_ip "$1")/system"; }
host_dir() { echo "$STATE_DIR/hosts/$1"; }
var_name() { echo "${1//-/_}"; }

# ---------------------------------------------------------------- state file
# Lines: "pid NAME PID STARTTIME" and "netns NAME"; appended as things appear.

state_add() { mkdir -p "$STATE_DIR"; echo "$*" >>"$STATE"; }

# pid_start PID: the process's start time (field 22 of /proc/PID/stat).
# A zombie (killed, not reaped yet: the lab's daemons are nobody's child)
# has no start time here: it no longer runs.
pid_start() { awk '{sub(/^.*\) /, ""); if ($1 != "Z") print $20}' "/proc/$1/stat" 2>/dev/null; }

# pid_is PID START: true when PID is alive and is the very process recorded.
pid_is() { [ -n "$1" ] && [ "$(pid_start "$1")" = "$2" ]; }

# state_pid NAME: the recorded PID of NAME if that process still runs.
state_pid() {
	[ -f "$STATE" ] || return 1
	local kind name pid start
	while read -r kind name pid start; do
		if [ "$kind" = pid ] && [ "$name" = "$1" ] && pid_is "$pid" "$start"; then
			echo "$pid"
			return 0
		fi
	done <"$STATE"
	return 1
}

# spawn NAME LOG CMD...: start CMD in its own session, detached, with only
# stdin/stdout/stderr open, and record its PID. CMD must exec (not fork) so
# that the PID we record is the daemon's.
spawn() {
	local name=$1 logf=$2 pidf
	shift 2
	pidf=$(mktemp "$STATE_DIR/.pid.XXXXXX")
	# Every descriptor above 2 is closed before the exec: a daemon that
	# inherited the caller's lock (flock /tmp/pf-lab.lock make lab-up, or
	# fd 9 of lab_lock) would hold it for the lab's whole life, and the
	# next `flock ... make lab-down` would wait for it forever. No
	# redirection on the loop: bash would save stderr in a descriptor the
	# loop then closes, and every daemon's log would go to /dev/null.
	setsid bash -c 'echo $$ >"$0"; for f in /proc/$$/fd/*; do f=${f##*/}
		if [ "$f" -gt 2 ] && [ -e "/proc/$$/fd/$f" ]; then exec {f}>&-; fi; done; exec "$@"' \
		"$pidf" "$@" </dev/null >>"$logf" 2>&1 9<&- &
	local i=0
	while [ ! -s "$pidf" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "$name did not start (see $logf)"
		sleep 0.02
	done
	local pid
	pid=$(cat "$pidf")
	rm -f "$pidf"
	sleep 0.05
	local start
	start=$(pid_start "$pid") || true
	[ -n "$start" ] || die "$name exited at once (see $logf)"
	state_add pid "$name" "$pid" "$start"
	echo "$pid"
}

# pid_gone PID: true when PID has exited (a zombie awaiting its reaper counts).
pid_gone() {
	local st
	st=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}

# kill_pids PID...: TERM to all, then KILL to those still there after 5 s.
kill_pids() {
	local pid i left
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		left=0
		for pid in "$@"; do pid_gone "$pid" || left=1; done
		[ $left -eq 0 ] && return 0
		sleep 0.1
	done
	for pid in "$@"; do pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true; done
}

# wait_for SECONDS CMD...: poll CMD every 100 ms; 1 on timeout.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.1
	done
}

# ---------------------------------------------------------------- edge, client

edge_up() {
	ip netns add "$EDGE_NS"
	state_add netns "$EDGE_NS"
	ip -n "$EDGE_NS" link set lo up
	ip netns exec "$EDGE_NS" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.forwarding=1
	local r br
	# Anycast gateway: every region's gateway answers with one MAC, so a VM
	# moved across regions keeps a valid gateway entry in its ARP cache (it
	# cannot know it moved). Providers do the same with a shared virtual
	# router MAC (docs/design.md).
	for r in "${REGIONS[@]}"; do
		br=$(region_bridge "$r")
		ip -n "$EDGE_NS" link add "$br" address "$GW_MAC" type bridge stp_state 0 forward_delay 0
		ip -n "$EDGE_NS" addr add "$(region_gw "$r")/24" dev "$br"
		ip -n "$EDGE_NS" addr add "$(region_gw6 "$r")/64" dev "$br" nodad
		ip -n "$EDGE_NS" link set "$br" up
	done

	ip netns add "$CLIENT_NS"
	state_add netns "$CLIENT_NS"
	ip -n "$CLIENT_NS" link set lo up
	ip -n "$EDGE_NS" link add pfc0 type veth peer name eth0 netns "$CLIENT_NS"
	ip -n "$EDGE_NS" addr add 10.77.0.1/24 dev pfc0
	ip -n "$EDGE_NS" addr add fd77::1/64 dev pfc0 nodad
	ip -n "$EDGE_NS" link set pfc0 up
	ip -n "$CLIENT_NS" addr add 10.77.0.2/24 dev eth0
	ip -n "$CLIENT_NS" addr add fd77::2/64 dev eth0 nodad
	ip -n "$CLIENT_NS" link set eth0 up
	ip -n "$CLIENT_NS" route add default via 10.77.0.1
	ip -n "$CLIENT_NS" -6 route add default via fd77::1

	# Root namespace <-> edge: management link; Redis listens on its root end.
	state_add link "$MGMT_IF"
	ip link add "$MGMT_IF" type veth peer name mgmt0 netns "$EDGE_NS"
	ip addr add "$MGMT_ROOT_IP/30" dev "$MGMT_IF"
	ip link set "$MGMT_IF" up
	ip -n "$EDGE_NS" addr add "$MGMT_EDGE_IP/30" dev mgmt0
	ip -n "$EDGE_NS" link set mgmt0 up
	ip route add "$LAB_NET" via "$MGMT_EDGE_IP" dev "$MGMT_IF"
}

# ---------------------------------------------------------------- origin
# The lab's stand-in for the internet: busybox httpd on the edge's client
# side, serving a small page and a 4 MiB object for throughput.

ORIGIN_IP=10.77.0.1
ORIGIN_PORT=8080

origin_up() {
	local dir="$STATE_DIR/origin"
	mkdir -p "$dir/www"
	echo "proxyfleet lab origin" >"$dir/www/index.html"
	head -c 4194304 /dev/zero >"$dir/www/4m.bin"
	spawn origin "$dir/origin.log" ip netns exec "$EDGE_NS" \
		busybox httpd -f -p "$ORIGIN_IP:$ORIGIN_PORT" -h "$dir/www" >/dev/null
}

# ---------------------------------------------------------------- redis

# redis_server NAME PORT [MASTER_PORT]: one redis-server (a replica of
# MASTER_PORT when given). masterauth on both, so either can follow the
# other after a failover.
redis_server() {
	local name=$1 port=$2 dir="$STATE_DIR/$1" pass
	mkdir -p "$dir"
	pass=$(lab_env_get PF_REDIS_PASS)
	umask 077
	{
		cat <<EOF
bind 127.0.0.1 $MGMT_ROOT_IP
port $port
protected-mode yes
requirepass $pass
masterauth $pass
dir $dir
save ""
appendonly no
daemonize no
logfile ""
EOF
		if [ -n "${3:-}" ]; then echo "replicaof $MGMT_ROOT_IP $3"; fi
	} >"$dir/redis.conf"
	umask 022
	spawn "$name" "$dir/redis.log" redis-server "$dir/redis.conf" >/dev/null
	wait_for 10 redis_ping "$port" || die "redis did not answer on $MGMT_ROOT_IP:$port (see $dir/redis.log)"
}

# sentinel_up N: sentinel N of SENTINEL_PORTS, watching the master.
sentinel_up() {
	local port=${SENTINEL_PORTS[$1]} dir="$STATE_DIR/sentinel-$1"
	mkdir -p "$dir"
	umask 077
	# Sentinel rewrites its file as it learns (replicas, other sentinels).
	# down-after 15 s: longer than the 10 s Redis stall drill, which stays a
	# stall (the failover drill asks for one: lab.sh sentinel-failover).
	cat >"$dir/sentinel.conf" <<EOF
bind 127.0.0.1 $MGMT_ROOT_IP
port $port
dir $dir
daemonize no
logfile ""
requirepass $(lab_env_get PF_SENTINEL_PASS)
sentinel sentinel-pass $(lab_env_get PF_SENTINEL_PASS)
sentinel monitor $REDIS_MASTER_NAME $MGMT_ROOT_IP $REDIS_PORT 2
sentinel auth-pass $REDIS_MASTER_NAME $(lab_env_get PF_REDIS_PASS)
sentinel down-after-milliseconds $REDIS_MASTER_NAME 15000
sentinel failover-timeout $REDIS_MASTER_NAME 15000
EOF
	umask 022
	spawn "sentinel-$1" "$dir/sentinel.log" redis-sentinel "$dir/sentinel.conf" >/dev/null
	wait_for 10 sentinel_cli "$1" ping || die "sentinel on $MGMT_ROOT_IP:$port does not answer (see $dir/sentinel.log)"
}

sentinel_cli() {
	local i=$1
	shift
	REDISCLI_AUTH=$(lab_env_get PF_SENTINEL_PASS) redis-cli -h "$MGMT_ROOT_IP" -p "${SENTINEL_PORTS[$i]}" "$@"
}

# The sentinels' list, as every client's configuration takes it.
sentinel_list() {
	local p out=""
	for p in "${SENTINEL_PORTS[@]}"; do out+="${out:+,}$MGMT_ROOT_IP:$p"; done
	echo "$out"
}

redis_master_port() { sentinel_cli 0 SENTINEL get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null | sed -n 2p; }

# Every sentinel knows the replica and the two other sentinels.
sentinels_ready() {
	local i
	for i in 0 1 2; do
		sentinel_cli "$i" SENTINEL master "$REDIS_MASTER_NAME" 2>/dev/null | paste - - |
			grep -qP '^num-other-sentinels\t2$' || return 1
		sentinel_cli "$i" SENTINEL master "$REDIS_MASTER_NAME" 2>/dev/null | paste - - |
			grep -qP '^num-slaves\t1$' || return 1
	done
}

redis_up() {
	local i
	redis_server redis "$REDIS_PORT"
	redis_server redis-replica "$REDIS_REPLICA_PORT" "$REDIS_PORT"
	for i in 0 1 2; do sentinel_up "$i"; done
	wait_for 30 sentinels_ready || die "the sentinels do not see the replica and each other (see $STATE_DIR/sentinel-*/sentinel.log)"
}

redis_ping() {
	REDISCLI_AUTH=$(lab_env_get PF_REDIS_PASS) redis-cli -h "$MGMT_ROOT_IP" -p "${1:-$REDIS_PORT}" ping | grep -q PONG
}

# ---------------------------------------------------------------- hosts

# host_up HOST: namespaces, mounts, network, virtlogd, libvirtd (not waited for).
host_up() {
	local h=$1 dir ns holder region ip
	dir=$(host_dir "$h")
	ns=$(host_netns "$h")
	region=$(host_region "$h")
	ip=$(host_ip "$h")
	mkdir -p "$dir"

	# The namespace holder: a sleep in a fresh mount + net namespace. Its
	# netns gets a name so that `ip netns exec pf-HOST` works; the mount
	# namespace is entered with nsenter -t HOLDER -m -n.
	holder=$(spawn "holder-$h" "$dir/holder.log" unshare -m -n --propagation private sleep infinity)
	state_add netns "$ns"
	ip netns attach "$ns" "$holder"

	host_etc_make "$h" "$dir/etc-libvirt"
	nsenter -t "$holder" -m -n -- bash "$ROOT/deploy/lab/lab.sh" _host-mounts "$dir/etc-libvirt"

	ip -n "$ns" link set lo up
	ip -n "$EDGE_NS" link add "pfe-$h" type veth peer name eth0 netns "$ns"
	ip -n "$EDGE_NS" link set "pfe-$h" master "$(region_bridge "$region")" up
	ip -n "$ns" link add br0 type bridge stp_state 0 forward_delay 0
	ip -n "$ns" link set eth0 master br0 up
	ip -n "$ns" addr add "$ip/24" dev br0
	ip -n "$ns" addr add "$(host_ip6 "$h")/64" dev br0 nodad
	ip -n "$ns" link set br0 up
	ip -n "$ns" route add default via "$(region_gw "$region")"
	ip -n "$ns" -6 route add default via "$(region_gw6 "$region")"
	# A host delivers the service IPs of VMs away from their home region:
	# the edge routes them to the host, the host forwards them onto br0.
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	spawn "virtlogd-$h" "$dir/virtlogd.log" nsenter -t "$holder" -m -n -- virtlogd >/dev/null
	spawn "libvirtd-$h" "$dir/libvirtd.log" nsenter -t "$holder" -m -n -- libvirtd --listen >/dev/null
}

# host_etc_make HOST DIR: a private /etc/libvirt for HOST: TCP listener on
# its address without auth (lab only: production uses TLS), QEMU as root
# without relabelling, since the image files are shared by every host.
host_etc_make() {
	local h=$1 etc=$2
	rm -rf "$etc"
	cp -a /etc/libvirt "$etc"
	cat >>"$etc/libvirtd.conf" <<EOF

# proxyfleet lab ($h)
listen_tls = 0
listen_tcp = 1
auth_tcp = "none"
listen_addr = "$(host_ip "$h")"
log_outputs = "3:stderr"
EOF
	cat >>"$etc/qemu.conf" <<EOF

# proxyfleet lab ($h)
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
EOF
}

# _host-mounts ETC (runs inside the host's mount namespace): private /etc/libvirt,
# tmpfs over the daemon's state directories.
host_mounts() {
	local etc=$1 d
	mount --make-rprivate /
	mount --bind "$etc" /etc/libvirt
	# The root namespace's /run/netns mounts would pin other namespaces.
	umount -l /run/netns 2>/dev/null || true
	mount -t tmpfs -o mode=0755 pf-run /run
	mkdir -p /run/libvirt /run/lock
	for d in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
		mkdir -p "$d"
		mount -t tmpfs -o mode=0755 pf-lab "$d"
		mkdir -p "$d/qemu"
	done
	mkdir -p /var/lib/libvirt/qemu/channel/target /var/lib/libvirt/qemu/nvram \
		/var/lib/libvirt/qemu/save /var/lib/libvirt/qemu/snapshot /var/lib/libvirt/qemu/dump
}

host_answers() { timeout 5 virsh -c "$(host_uri "$1")" version >/dev/null 2>&1; }

# ---------------------------------------------------------------- agents

# The daemons come from PF_BIN when set: `make test SANITIZE=1` runs the
# lab's agents and controller under ASan and UBSan.
NETMIGRATED=${PF_BIN:-$ROOT/build/bin}/netmigrated

# agent_up NAME NETNS ROLE: netmigrated for NAME (a host, or the edge) in
# its network namespace, when the binary is built. `ip netns exec` gives it
# the namespace's /sys too, which its metrics read.
agent_up() {
	local name=$1 ns=$2 role=$3 dir="$STATE_DIR/agents/$1" fence=yes lease=600ms
	mkdir -p "$dir"
	# The edge keeps its routes when cut off from Redis: dropping every /32
	# would cut every moved IP off (docs/netmigrate.md). A host's lease is
	# short: its expiry is how fleetd learns the host died (failover < 1 s).
	[ "$role" = edge ] && fence=no lease=3s
	umask 077
	cat >"$dir/netmigrated.conf" <<CONF
[netmigrated]
host = $name
role = $role
redis_sentinels = $(sentinel_list)
redis_master = $REDIS_MASTER_NAME
sentinel_password = $(lab_env_get PF_SENTINEL_PASS)
redis_password = $(lab_env_get PF_REDIS_PASS)
lease = $lease
vm_bridge = br0
uplink = eth0
fence = $fence
# Statements re-read and the kernel re-checked every second (netlink events
# wake it sooner): a route deleted by hand is back within that.
converge = 1s
# Heartbeats to both fleetds: in a Redis outage the leader's grants keep
# the agent from fencing (docs/design.md, "Fencing and Redis").
controllers = $MGMT_ROOT_IP:$HB_PORT,$MGMT_ROOT_IP:$HB_PORT_B
heartbeat_key = $(lab_env_get PF_HB_KEY)

[announce]
initial = 50ms
step = 100ms
max = 550ms
rounds = 3
CONF
	umask 022
	spawn "netmigrated-$name" "$dir/netmigrated.log" \
		ip netns exec "$ns" "$NETMIGRATED" -f "$dir/netmigrated.conf" >/dev/null
}

agent_has_lease() {
	REDISCLI_AUTH=$(lab_env_get PF_REDIS_PASS) redis-cli -h "$MGMT_ROOT_IP" -p "$REDIS_PORT" \
		exists "pf:host:$1:lease" 2>/dev/null | grep -qx 1
}

# ---------------------------------------------------------------- controller

FLEETD=${PF_BIN:-$ROOT/build/bin}/fleetd
API_ADDR=127.0.0.1:8480
API_ADDR_B=127.0.0.1:8481
HB_PORT=7791
HB_PORT_B=7792

# fleetd_conf DIR LISTEN INSTANCE: a controller's configuration from the
# address plan. Both of the lab's fleetds share everything but their name
# and API address: one leads, the other stands by (docs/operations.md).
fleetd_conf() {
	local dir=$1 listen=$2 instance=$3 hb=$4 h r
	mkdir -p "$dir"
	umask 077
	{
		cat <<CONF
# fleetd for the proxyfleet lab, written by deploy/lab/lab.sh
[fleetd]
api_listen = $listen
api_url = http://$listen
instance = $instance
leader_lease = 2s
api_token = $(lab_env_get PF_API_TOKEN)
redis_sentinels = $(sentinel_list)
redis_master = $REDIS_MASTER_NAME
sentinel_password = $(lab_env_get PF_SENTINEL_PASS)
redis_password = $(lab_env_get PF_REDIS_PASS)
tick = 500ms
stale_after = 5s

[migration]
max_concurrent = 2
max_per_host = 1
max_downtime = 50ms
timeout = 40s
cooldown = 30s

[failover]
poll = 100ms
probe_timeout = 200ms
guest_token = $(lab_env_get PF_ADMIN_TOKEN)
heartbeat_listen = $MGMT_ROOT_IP:$hb
heartbeat_key = $(lab_env_get PF_HB_KEY)
heartbeat_grant = 1s
# A Redis stall up to this long fences nothing; a new leader waits this
# (plus a grant) before promoting standbys of a host it cannot hear.
stall_grace = 15s
CONF
		# Standbys take management addresses .200-.249 of their region.
		for r in "${REGIONS[@]}"; do
			printf '\n[region %s]\nedge = edge\ngateway = %s\nmgmt_pool = 10.77.%s.200-10.77.%s.249/24\n' \
				"$r" "$(region_gw "$r")" "$(region_index "$r")" "$(region_index "$r")"
		done
		for h in "${HOSTS[@]}"; do
			printf '\n[host %s]\nregion = %s\nuri = %s\naddress = %s\nbridge = br0\nmemory = 1G\nvcpus = 4\nnic = 125M\n' \
				"$h" "$(host_region "$h")" "$(host_uri "$h")" "$(host_ip "$h")"
		done
	} >"$dir/fleetd.conf"
	umask 022
	"$FLEETD" -n -f "$dir/fleetd.conf" >/dev/null || die "fleetd refuses $dir/fleetd.conf"
}

fleetd_api() { # NAME -> its API address
	case $1 in fleetd) echo "$API_ADDR" ;; fleetd-b) echo "$API_ADDR_B" ;; *) die "no fleetd $1" ;; esac
}

# fleetd_is_leader ADDR: that fleetd holds the leader lease.
fleetd_is_leader() {
	curl -sf -H "Authorization: Bearer $(lab_env_get PF_API_TOKEN)" "http://$1/v1/leader" |
		grep -q '"role":"leader"'
}

# fleetd_start NAME: start one of the lab's fleetds from its written
# configuration (tests use it to bring back one they killed).
fleetd_start() {
	local name=$1 dir="$STATE_DIR/$1" addr
	addr=$(fleetd_api "$name")
	[ -f "$dir/fleetd.conf" ] || die "no $dir/fleetd.conf (is the lab up?)"
	state_pid "$name" >/dev/null && die "$name already runs"
	spawn "$name" "$dir/fleetd.log" "$FLEETD" -f "$dir/fleetd.conf" >/dev/null
	wait_for 10 curl -sf "http://$addr/healthz" || die "$name does not answer (see $dir/fleetd.log)"
}

# fleetd_up: two controllers in the root namespace (they reach every host's
# libvirtd and Redis through the management link): fleetd (API 8480) is
# started first and leads; fleetd-b (API 8481) follows, ready to take over.
# Their API token is made once per lab, like Redis's password.
fleetd_up() {
	[ -x "$FLEETD" ] || { log "no $FLEETD: the lab runs without a controller (run make first)"; return 0; }
	fleetd_conf "$STATE_DIR/fleetd" "$API_ADDR" fleetd-a "$HB_PORT"
	fleetd_conf "$STATE_DIR/fleetd-b" "$API_ADDR_B" fleetd-b "$HB_PORT_B"
	fleetd_start fleetd
	wait_for 10 fleetd_is_leader "$API_ADDR" || die "fleetd does not take the lead (see $STATE_DIR/fleetd/fleetd.log)"
	fleetd_start fleetd-b
}

agents_up() {
	local h
	if [ ! -x "$NETMIGRATED" ]; then
		log "no $NETMIGRATED: hosts run without agents (run make first)"
		return 0
	fi
	agent_up edge "$EDGE_NS" edge
	for h in "${HOSTS[@]}"; do
		agent_up "$h" "$(host_netns "$h")" host
	done
	for h in edge "${HOSTS[@]}"; do
		wait_for 10 agent_has_lease "$h" ||
			die "netmigrated for $h holds no lease (see $STATE_DIR/agents/$h/netmigrated.log)"
	done
}

# ---------------------------------------------------------------- lab.env

lab_env_get() { [ -f "$LAB_ENV" ] && sed -n "s/^$1=//p" "$LAB_ENV" | tr -d "'\"" || true; }

# lab_secret NAME: the lab.env value of NAME, or a new random one.
lab_secret() {
	local v
	v=$(lab_env_get "$1")
	[ -n "$v" ] || v=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
	echo "$v"
}

# lab_env_write: the address plan, for the other tools to source. The Redis
# password, the API token and the guests' admin token are made once per lab
# and kept while the lab lives.
lab_env_write() {
	local pass token admin hbkey spass h r v
	pass=$(lab_secret PF_REDIS_PASS)
	token=$(lab_secret PF_API_TOKEN)
	admin=$(lab_secret PF_ADMIN_TOKEN)
	hbkey=$(lab_secret PF_HB_KEY)
	spass=$(lab_secret PF_SENTINEL_PASS)
	mkdir -p "$LAB_DIR"
	{
		echo "# proxyfleet lab address plan, written by deploy/lab/lab.sh; source it."
		echo "PF_LAB_HOSTS='${HOSTS[*]}'"
		echo "PF_LAB_REGIONS='${REGIONS[*]}'"
		echo "PF_LAB_STATE=$STATE"
		echo "PF_LAB_DIR=$LAB_DIR"
		echo "PF_EDGE_NETNS=$EDGE_NS"
		echo "PF_CLIENT_NETNS=$CLIENT_NS"
		echo "PF_CLIENT_IP=10.77.0.2"
		echo "PF_CLIENT_GW=10.77.0.1"
		echo "PF_ORIGIN_URL=http://$ORIGIN_IP:$ORIGIN_PORT/"
		echo "PF_ORIGIN_NET=10.77.0.0/24"
		echo "PF_MGMT_IF=$MGMT_IF"
		echo "PF_MGMT_ROOT_IP=$MGMT_ROOT_IP"
		echo "PF_MGMT_EDGE_IP=$MGMT_EDGE_IP"
		echo "PF_VM_BRIDGE=br0"
		echo "PF_REDIS_HOST=$MGMT_ROOT_IP"
		echo "PF_REDIS_PORT=$REDIS_PORT"
		echo "PF_REDIS_ADDR=$MGMT_ROOT_IP:$REDIS_PORT"
		echo "PF_REDIS_PASS=$pass"
		echo "PF_REDIS_REPLICA_PORT=$REDIS_REPLICA_PORT"
		echo "PF_SENTINELS=$(sentinel_list)"
		echo "PF_SENTINEL_PASS=$spass"
		echo "PF_REDIS_MASTER=$REDIS_MASTER_NAME"
		echo "PF_API_TOKEN=$token"
		echo "PF_ADMIN_TOKEN=$admin"
		echo "PF_HB_KEY=$hbkey"
		echo "PF_API_URL=http://$API_ADDR"
		echo "PF_API_URL_B=http://$API_ADDR_B"
		echo "export FLEETCTL_API=http://$API_ADDR FLEETCTL_TOKEN=$token"
		echo "PF_IMAGE_KERNEL=$IMAGE_DIR/vmlinuz"
		echo "PF_IMAGE_INITRD=$IMAGE_DIR/initrd.img"
		for r in "${REGIONS[@]}"; do
			echo "PF_REGION_${r}_BRIDGE=$(region_bridge "$r")"
			echo "PF_REGION_${r}_GW=$(region_gw "$r")"
			echo "PF_REGION_${r}_GW6=$(region_gw6 "$r")"
			echo "PF_REGION_${r}_PREFIX=10.77.$(region_index "$r").0/24"
			echo "PF_REGION_${r}_SERVICE_FIRST=10.77.$(region_index "$r").100"
			echo "PF_REGION_${r}_SERVICE_LAST=10.77.$(region_index "$r").199"
		done
		for h in "${HOSTS[@]}"; do
			v=$(var_name "$h")
			echo "PF_HOST_${v}_REGION=$(host_region "$h")"
			echo "PF_HOST_${v}_IP=$(host_ip "$h")"
			echo "PF_HOST_${v}_IP6=$(host_ip6 "$h")"
			echo "PF_HOST_${v}_URI=$(host_uri "$h")"
			echo "PF_HOST_${v}_NETNS=$(host_netns "$h")"
			echo "PF_HOST_${v}_PID=$(state_pid "holder-$h" || true)"
		done
	} >"$LAB_ENV.tmp"
	chmod 600 "$LAB_ENV.tmp"
	mv "$LAB_ENV.tmp" "$LAB_ENV"
}

# ---------------------------------------------------------------- up / down

# lab_healthy: every recorded daemon runs and every libvirtd answers.
lab_healthy() {
	[ -f "$STATE" ] && [ -f "$LAB_ENV" ] || return 1
	state_pid redis >/dev/null || return 1
	state_pid origin >/dev/null || return 1
	redis_ping || return 1
	local h
	for h in "${HOSTS[@]}"; do
		state_pid "holder-$h" >/dev/null || return 1
		state_pid "libvirtd-$h" >/dev/null || return 1
		state_pid "virtlogd-$h" >/dev/null || return 1
		host_answers "$h" || return 1
		if [ -x "$NETMIGRATED" ]; then state_pid "netmigrated-$h" >/dev/null || return 1; fi
	done
	if [ -x "$NETMIGRATED" ]; then state_pid netmigrated-edge >/dev/null || return 1; fi
	if [ -x "$FLEETD" ]; then
		state_pid fleetd >/dev/null || return 1
		state_pid fleetd-b >/dev/null || return 1
	fi
	return 0
}

# lab_netns_names: the names of every namespace the lab makes.
lab_netns_names() {
	local h
	echo "$EDGE_NS" "$CLIENT_NS"
	for h in "${HOSTS[@]}"; do host_netns "$h"; done
}

# lab_netns_present: the lab's namespaces that exist now.
lab_netns_present() {
	local ns
	for ns in $(lab_netns_names); do
		[ -e "/run/netns/$ns" ] && echo "$ns"
	done
	return 0
}

# lab_leftovers: true when anything of a lab exists (state, namespaces, links).
lab_leftovers() {
	[ -e "$STATE" ] && return 0
	[ -n "$(lab_netns_present)" ] && return 0
	ip link show "$MGMT_IF" >/dev/null 2>&1 && return 0
	return 1
}

cmd_up() {
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	[ -f "$IMAGE_DIR/vmlinuz" ] && [ -f "$IMAGE_DIR/initrd.img" ] ||
		die "no image in $IMAGE_DIR: run make image"
	if lab_healthy; then
		log "already up"
		cmd_status
		return 0
	fi
	if lab_leftovers; then
		log "found a partial lab; removing it first"
		cmd_down
	fi
	local t0=$SECONDS h
	mkdir -p "$STATE_DIR" "$LAB_DIR"
	: >"$STATE"
	lab_env_write
	edge_up
	origin_up
	redis_up
	for h in "${HOSTS[@]}"; do
		host_up "$h"
	done
	for h in "${HOSTS[@]}"; do
		wait_for 60 host_answers "$h" ||
			die "libvirtd on $h does not answer at $(host_uri "$h") (see $(host_dir "$h")/libvirtd.log)"
	done
	agents_up
	fleetd_up
	lab_env_write
	log "up in $((SECONDS - t0)) s; address plan in $LAB_ENV"
	cmd_status
}

# host_vms_destroy HOST: stop its running VMs through libvirt (quick, clean).
host_vms_destroy() {
	local h=$1 d
	host_answers "$h" || return 0
	for d in $(timeout 10 virsh -c "$(host_uri "$h")" list --name 2>/dev/null); do
		timeout 10 virsh -c "$(host_uri "$h")" destroy "$d" >/dev/null 2>&1 || true
	done
}

cmd_down() {
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	local h kind name pid start ns
	if [ -f "$STATE" ]; then
		for h in "${HOSTS[@]}"; do
			if state_pid "libvirtd-$h" >/dev/null; then host_vms_destroy "$h"; fi
		done
		# The recorded daemons.
		local pids=()
		while read -r kind name pid start; do
			[ "$kind" = pid ] || continue
			if pid_is "$pid" "$start"; then pids+=("$pid"); fi
		done <"$STATE"
		kill_pids "${pids[@]}"
	fi
	# Whatever still lives in the lab's namespaces (QEMU spawned by a libvirtd).
	local left=()
	for ns in $(lab_netns_present); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			pid_gone "$pid" || left+=("$pid")
		done
	done
	kill_pids "${left[@]}"
	for ns in $(lab_netns_present); do
		ip netns del "$ns" 2>/dev/null || true
	done
	ip link del "$MGMT_IF" 2>/dev/null || true
	rm -rf "$STATE_DIR" "$LAB_DIR"
	log "down"
}

cmd_status() {
	if [ ! -f "$STATE" ]; then
		log "down"
		return 0
	fi
	local h v uri ok vms
	printf '%-6s %-6s %-12s %-30s %-9s %s\n' HOST REGION ADDRESS URI LIBVIRTD VMS
	for h in "${HOSTS[@]}"; do
		uri=$(host_uri "$h")
		ok=no vms=-
		if host_answers "$h"; then
			ok=yes
			vms=$(timeout 10 virsh -c "$uri" list --name 2>/dev/null | sed '/^$/d' | paste -sd, -)
			[ -n "$vms" ] || vms=-
		fi
		printf '%-6s %-6s %-12s %-30s %-9s %s\n' "$h" "$(host_region "$h")" "$(host_ip "$h")" "$uri" "$ok" "$vms"
	done
	local agents=""
	for h in edge "${HOSTS[@]}"; do
		if agent_has_lease "$h"; then agents+=" $h:lease"; else agents+=" $h:none"; fi
	done
	echo "agents (netmigrated):$agents"
	if curl -sf "http://$API_ADDR/healthz" >/dev/null 2>&1; then
		echo "fleetd: http://$API_ADDR (. $LAB_ENV; build/bin/fleetctl status)"
	else
		echo "fleetd: not running"
	fi
	local n a role
	for n in fleetd fleetd-b; do
		a=$(fleetd_api "$n")
		role=$(curl -sf -H "Authorization: Bearer $(lab_env_get PF_API_TOKEN)" "http://$a/v1/leader" 2>/dev/null |
			grep -o '"role":"[a-z]*"' | cut -d'"' -f4) || true
		echo "controller $n: http://$a ${role:-not running}"
	done
	if redis_ping 2>/dev/null; then v=yes; else v=no; fi
	echo "redis $MGMT_ROOT_IP:$REDIS_PORT answers: $v; client netns $CLIENT_NS (10.77.0.2); edge $EDGE_NS; env $LAB_ENV"
}

# lab_ticks: CPU ticks (utime + stime) used so far by every process of the
# lab: those in the hosts' namespaces (holders, virtlogd, libvirtd, QEMU)
# and Redis.
lab_ticks() {
	local h pids p sum=0 t
	pids=$(state_pid redis || true)
	for h in "${HOSTS[@]}"; do
		pids+=" $(ip netns pids "$(host_netns "$h")" 2>/dev/null | paste -sd' ' -)"
	done
	for p in $pids; do
		t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

# cmd_cpu [SECONDS]: the lab's CPU use over SECONDS (10), in % of one core.
cmd_cpu() {
	local secs=${1:-10} t0 t1 hz vms=0 h
	[ -f "$STATE" ] || die "lab is down"
	hz=$(getconf CLK_TCK)
	for h in "${HOSTS[@]}"; do
		vms=$((vms + $(timeout 10 virsh -q -c "$(host_uri "$h")" list --name 2>/dev/null | sed '/^$/d' | wc -l)))
	done
	t0=$(lab_ticks)
	sleep "$secs"
	t1=$(lab_ticks)
	awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" -v n="$vms" \
		'BEGIN { printf "lab CPU over %d s with %d VMs: %.1f%% of one core\n", s, n, 100 * d / hz / s }'
}

# lab_lock: one up or down at a time. The lock is on this script's folder,
# so there is no lock file to leave behind; spawn() closes fd 9 so that
# the daemons do not inherit the lock.
lab_lock() {
	exec 9<"$ROOT/deploy/lab"
	flock -w 120 9 || die "another lab.sh up/down holds the lock"
}

# ---------------------------------------------------------------- faults

# cmd_kill_host HOST: the host dies: SIGKILL to its agent, its libvirtd and
# its QEMU processes (everything in its namespace but the holder and
# virtlogd), at once.
cmd_kill_host() {
	local h=$1 ns keep=() pids=() pid
	ns=$(host_netns "$h")
	ip netns pids "$ns" >/dev/null 2>&1 || die "no host $h"
	keep+=("$(state_pid "holder-$h" || true)" "$(state_pid "virtlogd-$h" || true)")
	for pid in $(ip netns pids "$ns"); do
		[[ " ${keep[*]} " == *" $pid "* ]] || pids+=("$pid")
	done
	[ ${#pids[@]} -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null
	log "killed host $h (${#pids[@]} processes)"
}

# cmd_revive_host HOST: libvirtd and the agent again, after kill-host. Its
# persistent domains come back defined and shut off.
cmd_revive_host() {
	local h=$1 holder dir
	holder=$(state_pid "holder-$h") || die "no host $h"
	dir=$(host_dir "$h")
	state_pid "libvirtd-$h" >/dev/null ||
		spawn "libvirtd-$h" "$dir/libvirtd.log" nsenter -t "$holder" -m -n -- libvirtd --listen >/dev/null
	wait_for 20 host_answers "$h" || die "libvirtd on $h does not answer"
	state_pid "netmigrated-$h" >/dev/null || agent_up "$h" "$(host_netns "$h")" host
	wait_for 10 agent_has_lease "$h" || die "the agent on $h holds no lease"
	log "revived host $h"
}

# cmd_isolate HOST / cmd_rejoin HOST: cut the host off from the management
# side (Redis and fleetd, both at $MGMT_ROOT_IP) but not from clients: its
# VMs' traffic is bridged and never crosses these chains.
cmd_isolate() {
	local ns
	ns=$(host_netns "$1")
	ip netns exec "$ns" iptables -I INPUT -s "$MGMT_ROOT_IP" -j DROP
	ip netns exec "$ns" iptables -I OUTPUT -d "$MGMT_ROOT_IP" -j DROP
	log "isolated host $1 from $MGMT_ROOT_IP"
}

cmd_rejoin() {
	local ns
	ns=$(host_netns "$1")
	while ip netns exec "$ns" iptables -D INPUT -s "$MGMT_ROOT_IP" -j DROP 2>/dev/null; do :; done
	while ip netns exec "$ns" iptables -D OUTPUT -d "$MGMT_ROOT_IP" -j DROP 2>/dev/null; do :; done
	log "host $1 rejoined"
}

# cmd_redis_restart: Redis killed (-9) and started again. The lab's Redis
# keeps nothing on disk, so it comes back empty, as a Redis without
# persistence or a promoted replica that missed writes does (a fault drill).
# It is the master (whichever server that is now) that restarts; its
# replica then copies the empty data set, and the restart is quicker than
# the sentinels' down-after, so no failover hides the loss.
cmd_redis_restart() {
	local pid name=redis port
	port=$(redis_master_port)
	[ "$port" = "$REDIS_REPLICA_PORT" ] && name=redis-replica
	pid=$(state_pid "$name") || die "no $name"
	kill -KILL "$pid"
	wait_for 10 sh -c "! kill -0 $pid 2>/dev/null" || die "redis $pid does not die"
	redis_server "$name" "${port:-$REDIS_PORT}"
	log "redis restarted empty: $name on port ${port:-$REDIS_PORT} (was pid $pid)"
}

# cmd_sentinel_failover: the sentinels hand the master role to the replica
# (SENTINEL FAILOVER, as an operator or a dying master would cause); returns
# once the clients can have moved: the sentinels name the new master and
# the old one replicates from it.
cmd_sentinel_failover() {
	local old new t0=$SECONDS
	old=$(redis_master_port)
	[ -n "$old" ] || die "the sentinels name no master"
	sentinel_cli 0 SENTINEL FAILOVER "$REDIS_MASTER_NAME" >/dev/null
	wait_for 30 sh -c "[ \"\$(REDISCLI_AUTH=$(lab_env_get PF_SENTINEL_PASS) redis-cli -h $MGMT_ROOT_IP -p ${SENTINEL_PORTS[0]} SENTINEL get-master-addr-by-name $REDIS_MASTER_NAME | sed -n 2p)\" != $old ]" ||
		die "the sentinels did not fail over from port $old"
	new=$(redis_master_port)
	wait_for 30 sh -c "REDISCLI_AUTH=$(lab_env_get PF_REDIS_PASS) redis-cli -h $MGMT_ROOT_IP -p $old INFO replication | grep -q 'master_link_status:up'" ||
		die "the old master (port $old) does not replicate from the new one"
	log "sentinel failover: master port $old -> $new in $((SECONDS - t0)) s"
}

# cmd_agent_restart NAME: the agent of host NAME (or the edge) killed (-9)
# and started again, as a crash and a supervisor's restart would.
cmd_agent_restart() {
	local name=$1 pid ns role=host
	pid=$(state_pid "netmigrated-$name") || die "no agent $name"
	if [ "$name" = edge ]; then ns=$EDGE_NS role=edge; else ns=$(host_netns "$name"); fi
	kill -KILL "$pid"
	wait_for 10 sh -c "! kill -0 $pid 2>/dev/null" || die "agent $pid does not die"
	agent_up "$name" "$ns" "$role"
	log "agent $name restarted (was pid $pid)"
}

main() {
	case "${1:-}" in
	kill-host) cmd_kill_host "${2:?host}" ;;
	redis-restart) cmd_redis_restart ;;
	sentinel-failover) cmd_sentinel_failover ;;
	agent-restart) cmd_agent_restart "${2:?host or edge}" ;;
	revive-host) cmd_revive_host "${2:?host}" ;;
	isolate) cmd_isolate "${2:?host}" ;;
	rejoin) cmd_rejoin "${2:?host}" ;;
	up) lab_lock; cmd_up ;;
	down) lab_lock; cmd_down ;;
	status) cmd_status ;;
	env) lab_env_write; cat "$LAB_ENV" ;;
	cpu) cmd_cpu "${2:-10}" ;;
	_host-mounts) host_mounts "$2" ;;
	_fleetd-start) fleetd_start "$2" ;;
	*) die "usage: lab.sh up|down|status|env|cpu [SECONDS]|kill-host H|revive-host H|isolate H|rejoin H|redis-restart|sentinel-failover|agent-restart H|edge" ;;
	esac
}

main "$@"
