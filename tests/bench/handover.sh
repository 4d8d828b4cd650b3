#!/usr/bin/env bash
# handover.sh: the benchmark of issue 5: hand 100 service IPs over from host
# A to host B (and back), each time a whole plan: prepare on the destination
# (100 routes, 100 neighbour entries, 1 proxy entry), re-point 100 routes on
# the edge, announce (100 IPs x GARP request + reply = 200 frames), withdraw
# on the source (100 routes, 100 neighbours). Prints the work time of each
# step, as measured by `netmigrate handover` around the library calls (no
# process start-up, no burst gaps), and the median over RUNS handovers.
#
# usage: tests/bench/handover.sh [BIN_DIR]   (root; makes and removes
#        namespaces pf-nmt-be, pf-nmt-ba, pf-nmt-bb)   env: RUNS (default 21)
set -euo pipefail
BIN=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
RUNS=${RUNS:-21}
E=pf-nmt-be A=pf-nmt-ba B=pf-nmt-bb
MAC=52:54:00:78:50:01
cleanup() { for ns in $E $A $B; do ip netns del $ns 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup
for ns in $E $A $B; do ip netns add $ns; ip -n $ns link set lo up; done
ip -n $E link add nmt-hbr type bridge; ip -n $E addr add 10.78.50.1/24 dev nmt-hbr
ip -n $E link set nmt-hbr up
n=11
for h in $A $B; do
	ip -n $E link add nmt-p$n type veth peer name nmt-up netns $h
	ip -n $E link set nmt-p$n master nmt-hbr; ip -n $E link set nmt-p$n up
	ip -n $h addr add 10.78.50.$n/24 dev nmt-up; ip -n $h link set nmt-up up
	ip -n $h link add nmt-br0 type bridge; ip -n $h link set nmt-br0 up
	n=$((n + 1))
done
ips=$(seq -s, -f '10.78.60.%g' 1 100)

run() { # SRC DST VIA
	"$BIN/netmigrate" handover --ips "$ips" --mac $MAC --gw 10.78.60.254 \
		--dst-ns "$2" --dst-dev nmt-br0 --edge-ns $E --via "$3" \
		--src-ns "$1" --src-dev nmt-br0 -r 1 -f both
}
run $B $A 10.78.50.11 >/dev/null	# first placement on A, warms caches
: >/tmp/pf-nmt-bench.$$
for i in $(seq 1 "$RUNS"); do
	if [ $((i % 2)) -eq 1 ]; then out=$(run $A $B 10.78.50.12); else out=$(run $B $A 10.78.50.11); fi
	echo "$out" | sed -n 's/^handover done .*prepare_us=\([0-9]*\) cutover_us=\([0-9]*\) withdraw_us=\([0-9]*\) work_us=\([0-9]*\)$/\1 \2 \3 \4/p' >>/tmp/pf-nmt-bench.$$
done
[ "$(ip -n $E route show proto 77 | wc -l)" = 100 ] || { echo "bench: edge lacks its 100 routes" >&2; exit 1; }
echo "$out" | sed 's/^/  last run: /'
sort -n -k4 /tmp/pf-nmt-bench.$$ | awk -v runs="$RUNS" '
	{ p[NR] = $1; c[NR] = $2; w[NR] = $3; t[NR] = $4 }
	END {
		m = int((NR + 1) / 2)
		printf "handover of 100 service IPs, median of %d runs (by total):\n", runs
		printf "  prepare %d us, cutover %d us (edge re-point + 200 GARP frames), withdraw %d us\n", p[m], c[m], w[m]
		printf "  work total %d us (min %d us, max %d us); target < 10000 us: %s\n", t[m], t[1], t[NR], t[m] < 10000 ? "met" : "MISSED"
	}'
rm -f /tmp/pf-nmt-bench.$$
