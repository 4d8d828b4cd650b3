#!/usr/bin/env bash
# demo.sh: proxyfleet's main job on the local lab, narrated (make demo).
#
# Brings the fleet up (hosts, agents, Redis, fleetd), boots three proxy VMs,
# sends customer traffic through them from the client namespace, then lets
# fleetd move a proxy within a region and across regions while a client
# keeps connecting every 20 ms, drains a host, rebalances by traffic, gives
# two proxies hot standbys, and kills a host: the standbys serve the same
# IPs while the client keeps probing. Every figure printed is measured as
# it happens. The lab stays up afterwards; `make lab-down` removes it.
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
# A demo run before this one left its VMs, standbys and promoted copies:
# start from a clean fleet so the same names and IPs can be used again.
for h in eu-1 eu-2 us-1; do
	for d in $(timeout 10 virsh -q -c "qemu+tcp://$(case $h in us-1) echo 10.77.2.11 ;; eu-2) echo 10.77.1.12 ;;
		*) echo 10.77.1.11 ;; esac)/system" list --all --name 2>/dev/null | grep '^px-' || true); do
		$VM destroy "$h" "$d" >/dev/null
	done
done
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
# Both controllers get the policy: whichever leads applies it.
for f in fleetd fleetd-b; do
	conf=/run/proxyfleet-lab/$f/fleetd.conf
	fpid=$(awk -v n=$f '$1 == "pid" && $2 == n { p = $3 } END { print p }' /run/proxyfleet-lab/state)
	[ -f "$conf" ] || continue
	if ! grep -q '^\[policy\]' "$conf"; then
		sed -i 's/^nic = .*/nic = 8M/' "$conf"
		printf '\n[policy]\nrebalance = yes\nhigh_water = 80\ntarget = 70\nwindow = 3s\ngeo = on\n' >>"$conf"
		[ -n "$fpid" ] && kill -HUP "$fpid"
	fi
done
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

nus=$("$FC" --json regions | python3 -c 'import json,sys
print(next(r["vms"] for r in json.load(sys.stdin)["regions"] if r["name"] == "us"))')
step "8. Geographic redistribution: region us has $nus proxies, the operator wants $((nus + 1))"
geo0=$("$FC" events | grep -cE ' policy +geo move' || true)
"$FC" region-target us $((nus + 1))
for ((i = 0; i < 30; i++)); do
	[ "$("$FC" events | grep -cE ' policy +geo move' || true)" -gt "$geo0" ] && break
	sleep 1
done
"$FC" events | grep -E ' policy +geo move' | tail -n 1 || true
for ((i = 0; i < 60; i++)); do
	"$FC" --json migrations | grep -q '"phase": *"\(prepare\|migrating\|cutover\|verify\)"' || break
	sleep 1
done
"$FC" regions
"$FC" region-target us none >/dev/null

step "9. Standbys: px-2 and px-4 get hot standbys on other hosts, made from their own definitions"
vm_host() { "$FC" --json vms | python3 -c 'import json,sys
print(next((v["host"] for v in json.load(sys.stdin)["vms"] if v["name"] == sys.argv[1]), ""))' "$1"; }
vm_state() { "$FC" --json vms | python3 -c 'import json,sys
print(next((v["state"] for v in json.load(sys.stdin)["vms"] if v["name"] == sys.argv[1]), ""))' "$1"; }
"$FC" protect px-2
"$FC" protect px-4
for ((i = 0; i < 120; i++)); do
	[ "$(vm_state px-2-s1)" = running ] && [ "$(vm_state px-4-s1)" = running ] && break
	sleep 1
done
sleep 20	# the standbys' proxyvmd comes up (TCG boots slowly)
"$FC" vms

step "10. A host dies (its libvirtd, QEMU processes and agent killed): the standbys serve"
victim=$(vm_host px-2)
echo "killing $victim while a client connects through px-2 (10.77.1.102) every 20 ms"
last=$("$FC" --json events | sed -n 's/.*"seq":\([0-9]*\).*/\1/p' | tail -n 1)
"$FC" events --follow --since "${last:-0}" &
follow=$!
out=$(mktemp /tmp/pf-demo.XXXXXX)
ip netns exec pf-client "$BIN/pfprobe" -s 120 10.77.1.102 3128 "$PF_ORIGIN_URL" >"$out" &
probe=$!
sleep 2
$LAB kill-host "$victim"
for ((i = 0; i < 30; i++)); do
	"$FC" failovers | grep -q ' done ' && break
	sleep 0.5
done
sleep 2
kill -TERM $probe; wait $probe || true
sleep 1
kill $follow 2>/dev/null || true; wait $follow 2>/dev/null || true
echo
echo "client view of px-2's IP across the host's death: $(cat "$out")"
rm -f "$out"
"$FC" failovers
echo
"$FC" status

step "11. $victim comes back: the copies the failover replaced are removed"
$LAB revive-host "$victim"
sleep 8
"$FC" vms

step "12. What happened, as fleetd journaled it"
"$FC" events | grep -E 'migration|drain|policy|geo|failover|standby|dead' | tail -n 26

cat <<MSG

The lab stays up. Try:
  . build/lab/lab.env                       # FLEETCTL_API / FLEETCTL_TOKEN for fleetctl
  build/bin/fleetctl status                 # hosts and VMs
  build/bin/fleetctl migrate px-1 --to eu-1 # back home: the edge route goes away
  build/bin/fleetctl plan                   # what the rebalancer would do now, and why
  build/bin/fleetctl switchover px-2-s1     # planned failover back to its standby
  build/bin/fleetctl protect px-3 --region eu   # a standby in the other region
  deploy/lab/lab.sh isolate eu-2            # cut a host off the management side ...
  deploy/lab/lab.sh rejoin eu-2             # ... and back
  build/bin/fleetctl events --follow
  ip netns exec pf-client curl -x http://10.77.1.102:3128 $PF_ORIGIN_URL
  curl -s -H "Authorization: Bearer \$FLEETCTL_TOKEN" \$FLEETCTL_API/metrics
  make lab-status
When done: make lab-down (removes every namespace, process and file the lab made).
MSG
