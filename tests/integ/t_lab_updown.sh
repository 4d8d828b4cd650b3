#!/usr/bin/env bash
# t_lab_updown.sh: the lab's life cycle. lab up twice in a row is a no-op the
# second time; status shows every host with its URI and a live libvirtd;
# Redis answers with the lab.env password from the root namespace and from a
# host; after a crash (daemons killed with SIGKILL) lab down still removes
# everything, and a second down is harmless. Skipped when a lab is already up
# (it belongs to someone else).
. "$(dirname "$0")/lib.sh"
t_need_root

LAB="bash $T_ROOT/deploy/lab/lab.sh"
STATE_DIR=/run/proxyfleet-lab
STATE=$STATE_DIR/state

if [ -e $STATE ]; then
	t_skip "lab life cycle" "a lab is already up"
	t_done
fi

# leftovers: what of a lab remains (empty when nothing). $1: saved state.
leftovers() {
	local kind name pid start left=""
	while read -r kind name pid start; do
		[ "$kind" = pid ] && [ -d "/proc/$pid" ] || continue
		st=$(awk '{sub(/^.*\) /, ""); print $1 " " $20}' "/proc/$pid/stat" 2>/dev/null) || continue
		[ "${st%% *}" = Z ] && continue
		[ "${st#* }" = "$start" ] && left+=" pid:$name:$pid"
	done <"$1"
	left+=$(ip netns list | awk '$1 ~ /^pf-(edge|client|eu-1|eu-2|us-1)$/ {printf " netns:%s", $1}')
	left+=$(ip -br link | awk '$1 ~ /^(pfmgmt0|pfe-|pfc0|br-eu|br-us)/ {printf " link:%s", $1}')
	[ -n "$(ip route show 10.77.0.0/16)" ] && left+=" route:10.77.0.0/16"
	[ -e $STATE_DIR ] && left+=" $STATE_DIR"
	[ -e "$T_ROOT/build/lab" ] && left+=" build/lab"
	echo "${left# }"
}

t_check "image builds (make image)" make -C "$T_ROOT" --no-print-directory image
t_defer "$LAB down"
t_check "lab up" $LAB up
cp $STATE "$T_TMP/state.1"
out=$($LAB up 2>&1)
t_match "second lab up finds the lab up" '^lab: already up' "$out"
t_eq "second lab up starts nothing" "$(md5sum <"$T_TMP/state.1")" "$(md5sum <$STATE)"

status=$($LAB status 2>&1)
t_match "status: eu-1" '^eu-1 +eu +10\.77\.1\.11 +qemu\+tcp://10\.77\.1\.11/system +yes' "$status"
t_match "status: eu-2" '^eu-2 +eu +10\.77\.1\.12 +qemu\+tcp://10\.77\.1\.12/system +yes' "$status"
t_match "status: us-1" '^us-1 +us +10\.77\.2\.11 +qemu\+tcp://10\.77\.2\.11/system +yes' "$status"

# shellcheck source=/dev/null
. "$T_ROOT/build/lab/lab.env"
t_eq "lab.env: us-1 URI" "qemu+tcp://10.77.2.11/system" "${PF_HOST_us_1_URI:-}"
t_eq "redis answers with the password" "PONG" \
	"$(REDISCLI_AUTH=$PF_REDIS_PASS redis-cli -h "$PF_REDIS_HOST" -p "$PF_REDIS_PORT" ping 2>&1)"
t_match "redis refuses without it" 'NOAUTH' "$(redis-cli -h "$PF_REDIS_HOST" -p "$PF_REDIS_PORT" ping 2>&1)"
t_eq "redis answers from host us-1 (through the edge)" "PONG" \
	"$(ip netns exec pf-us-1 env REDISCLI_AUTH="$PF_REDIS_PASS" redis-cli -h "$PF_REDIS_HOST" -p "$PF_REDIS_PORT" ping 2>&1)"
t_check "client reaches a host across the edge" ip netns exec pf-client ping -c1 -W2 10.77.2.11

# Crash: daemons die without any cleanup, then lab down must still clean.
cp $STATE "$T_TMP/state.2"
for name in libvirtd-eu-2 holder-us-1 redis; do
	kill -KILL "$(awk -v n=$name '$2 == n {print $3}' $STATE)"
done
t_check "lab down after a crash" $LAB down
t_eq "nothing is left behind" "" "$(leftovers "$T_TMP/state.2")"
t_check "second lab down is harmless" $LAB down
t_match "status says down" '^lab: down' "$($LAB status 2>&1)"
t_done
