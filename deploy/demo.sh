#!/usr/bin/env bash
# demo.sh: proxyfleet's main job on the local lab, narrated (make demo).
#
# Brings the fleet up (hosts, agents, Redis, fleetd), boots three proxy VMs,
# sends customer traffic through them from the client namespace, then lets
# fleetd move a proxy within a region and across regions while a client
# keeps connecting every 20 ms, and drains a host. Every figure printed is
# measured as it happens. The lab stays up afterwards; `make lab-down`
# removes it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PF_BIN:-$ROOT/build/bin}
LAB="bash $ROOT/deploy/lab/lab.sh"
VM="bash $ROOT/deploy/lab/vm.sh"
FC=$BIN/fleetctl

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (the lab makes namespaces)" >&2; exit 1; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_client() { ip netns exec pf-client "$@"; }
serves() { in_client curl -sf --max-time 1 -o /dev/null -x "http://$1:3128" "$PF_ORIGIN_URL"; }
wait_serving() {
	local i
	for ((i = 0; i < 120; i++)); do serves "$1" && return 0; sleep 0.5; done
	echo "demo: $1 does not serve; see the VM console under /run/proxyfleet-lab" >&2
	exit 1
}

# probed_move VM IP DEST: fleetctl migrate while pfprobe connects every 20 ms.
probed_move() {
	local vm=$1 ip=$2 dest=$3 out probe
	out=$(mktemp /tmp/pf-demo.XXXXXX)
	ip netns exec pf-client "$BIN/pfprobe" -s 120 "$ip" 3128 "$PF_ORIGIN_URL" >"$out" &
	local ppid=$!
	sleep 1
	"$FC" migrate "$vm" --to "$dest"
	sleep 1
	kill -TERM $ppid
	wait $ppid || true
	probe=$(cat "$out")
	rm -f "$out"
	echo "client view (a new connection through the proxy every 20 ms): $probe"
}

step "1. The fleet comes up: 3 libvirt hosts in 2 regions, an agent on each, Redis, fleetd"
make -C "$ROOT" --no-print-directory image >/dev/null
$LAB up
. "$ROOT/build/lab/lab.env"
export FLEETCTL_API FLEETCTL_TOKEN

step "2. Three proxy VMs boot (QEMU guests running proxyvmd)"
$VM start eu-1 px-1 10.77.1.101 || true
$VM start eu-1 px-2 10.77.1.102 || true
$VM start us-1 px-3 10.77.2.101 || true
for ip in 10.77.1.101 10.77.1.102 10.77.2.101; do wait_serving $ip; done
echo "all three answer through their service IPs"

step "3. Customers use them: HTTP through px-1, SOCKS5 through px-2, HTTP through px-3"
for i in 1 2 3 4 5; do
	in_client curl -s -o /dev/null -x http://10.77.1.101:3128 "${PF_ORIGIN_URL}4m.bin"
	in_client curl -s -o /dev/null --socks5 10.77.1.102:1080 "${PF_ORIGIN_URL}4m.bin"
	in_client curl -s -o /dev/null -x http://10.77.2.101:3128 "$PF_ORIGIN_URL"
done
echo "curl -x http://10.77.1.101:3128 $PF_ORIGIN_URL  ->  $(in_client curl -s -x http://10.77.1.101:3128 "$PF_ORIGIN_URL")"
sleep 2
"$FC" status

step "4. fleetd live-migrates px-1 within region eu (eu-1 -> eu-2); its IP follows by gratuitous ARP"
probed_move px-1 10.77.1.101 eu-2

step "5. ... and across regions (eu-2 -> us-1): the edge re-points px-1's /32 to us-1"
probed_move px-1 10.77.1.101 us-1
echo "edge route now: $(ip -n pf-edge route show 10.77.1.101)"

step "6. Host eu-1 goes into maintenance: fleetd drains it"
"$FC" drain eu-1 --wait
"$FC" status

step "7. Traffic rebalancing: eu-2 gets hot, fleetd moves what its plan needs and stops"
# Small NICs (8 MiB/s) so that a lab's worth of traffic makes a hot host;
# rebalancing is switched on by a reload (SIGHUP), as an operator would.
"$FC" undrain eu-1 >/dev/null
conf=/run/proxyfleet-lab/fleetd/fleetd.conf
fpid=$(awk '$1 == "pid" && $2 == "fleetd" { p = $3 } END { print p }' /run/proxyfleet-lab/state)
if ! grep -q '^\[policy\]' "$conf"; then
	sed -i 's/^nic = .*/nic = 8M/' "$conf"
	printf '\n[policy]\nrebalance = yes\nhigh_water = 80\ntarget = 70\nwindow = 3s\n' >>"$conf"
	kill -HUP "$fpid"
fi
$VM start eu-2 px-4 10.77.1.104 >/dev/null || true
wait_serving 10.77.1.104
load() { # IP SECONDS: rate-limited 4 MiB downloads through one proxy
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		in_client curl -s -o /dev/null --max-time 10 --limit-rate 3500k -x "http://$1:3128" \
			"${PF_ORIGIN_URL}4m.bin" || sleep 0.2
	done
}
load 10.77.1.102 40 & l1=$!
load 10.77.1.104 40 & l2=$!
moves0=$("$FC" events | grep -c ' policy .*move ' || true)
for ((i = 0; i < 40; i++)); do
	[ "$("$FC" events | grep -c ' policy .*move ' || true)" -gt "$moves0" ] && break
	sleep 1
done
"$FC" plan || true
sleep 12
kill $l1 $l2 2>/dev/null || true
wait $l1 $l2 2>/dev/null || true
"$FC" status

step "8. What happened, as fleetd journaled it"
"$FC" events | grep -E 'migration|drain|policy' | tail -n 14

cat <<MSG

The lab stays up. Try:
  . build/lab/lab.env                       # FLEETCTL_API / FLEETCTL_TOKEN for fleetctl
  build/bin/fleetctl status                 # hosts and VMs
  build/bin/fleetctl migrate px-1 --to eu-1 # back home: the edge route goes away
  build/bin/fleetctl plan                   # what the rebalancer would do now, and why
  build/bin/fleetctl events --follow
  ip netns exec pf-client curl -x http://10.77.1.102:3128 $PF_ORIGIN_URL
  curl -s -H "Authorization: Bearer \$FLEETCTL_TOKEN" \$FLEETCTL_API/metrics
  make lab-status
When done: make lab-down (removes every namespace, process and file the lab made).
MSG
