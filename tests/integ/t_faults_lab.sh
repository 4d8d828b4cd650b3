#!/usr/bin/env bash
# t_faults_lab.sh: faults in the control plane itself never take a proxy
# offline (issue 12). On the lab, a protected proxy P (hot standby S on
# eu-2) and an unprotected one U, each probed by a client every 20 ms
# through every fault, a capture on the region bridges the whole time.
# The faults, each followed by: both proxies serve again (outage printed,
# at most one failed probe), no agent fenced, nothing failed over:
#   1. Redis stopped (SIGSTOP) for 10 s;
#   2. the same with P moved to us-1 first (away from home, routed by a /32
#      on the edge): after the stall the new lead's reconcile keeps the edge
#      route and never announces the standby;
#   3. Redis killed and started again empty: the leader's epoch rises above
#      every epoch the agents know, the agents follow it, fence sets back;
#   3b. a Sentinel failover of the master, and back: every client follows;
#   4. the leading fleetd killed (-9): the other takes over;
#   5. the agent of the host P runs on (away from home) killed (-9) and
#      started again;
#   6. the edge's agent killed and started again;
#   7. P's /32 on the edge deleted by hand: the edge agent restores it;
#   8. P's route on its host deleted by hand: the host agent restores it.
# At the end, the capture: every frame claiming P's or U's IP came from
# that VM's own MAC (never two MACs for one IP).
# Not here yet (issue 12, open): a host isolated and rejoined across a
# leader change; the leader killed during a failover.
. "$(dirname "$0")/lib.sh"
t_need_root

VM="bash $T_ROOT/deploy/lab/vm.sh"
LAB="bash $T_ROOT/deploy/lab/lab.sh"
FC="$PF_BIN/fleetctl"
RUN=/run/proxyfleet-lab
R() { REDISCLI_AUTH=$PF_REDIS_PASS redis-cli -h "$PF_REDIS_HOST" -p "$PF_REDIS_PORT" "$@"; }
lab_pid() { awk -v n="$1" '$1 == "pid" && $2 == n { p = $3 } END { print p }' $RUN/state; }
leader_of() { curl -s --max-time 1 -H "Authorization: Bearer $PF_API_TOKEN" "$1/v1/leader" |
	python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["leader"] if j.get("leader") else "", j.get("epoch", 0))' 2>/dev/null; }
has_leader() { [ -n "$(leader_of "$PF_API_URL" | cut -d' ' -f1)" ]; }
fences() { cat $RUN/agents/*/netmigrated.log 2>/dev/null | grep -c "fence host=.* reason="; }
# vmf_live VM FIELD: as vmf, asked until fleetd answers (a new leader's
# API may say 503 while it reconciles).
vmf_live() {
	local v i
	for i in $(seq 50); do
		v=$(vmf "$1" "$2" 2>/dev/null) && [ -n "$v" ] && echo "$v" && return 0
		sleep 0.2
	done
	echo "no-answer"
}

t_lab_up

P=px-tfa-1 PIP=10.77.1.180 U=px-tfa-2 UIP=10.77.1.181 S=px-tfa-1-s1
cleanup() { t_lab_destroy "px-tfa-"; }
t_defer cleanup
# Whatever happens, Redis runs again and both fleetds are up at the end.
t_defer 'kill -CONT $(lab_pid redis) 2>/dev/null
	for f in fleetd fleetd-b; do kill -0 $(lab_pid $f) 2>/dev/null || $LAB _fleetd-start $f >/dev/null 2>&1; done'

t_check "VM $P starts on eu-1" $VM start eu-1 $P $PIP
t_check "VM $U starts on eu-2" $VM start eu-2 $U $UIP
t_wait 90 serves $PIP && t_wait 90 serves $UIP && t_ok "$P and $U serve" || t_fail "$P and $U serve"
t_check "fleetctl protect $P" "$FC" protect $P
t_wait 60 state_is "$EU2" $S running && t_wait 60 vm_is $P peer $S && t_wait 60 vm_is $S bound False &&
	t_ok "hot standby $S runs on eu-2, IP unbound" || t_fail "hot standby $S runs on eu-2" "$("$FC" vms)"
MP=$(vmf $P mac) MU=$(vmf $U mac) MS=$(vmf $S mac)

ip netns exec pf-edge tshark -n -i br-eu -i br-us -a duration:900 -w "$T_TMP/faults.pcap" \
	>"$T_TMP/tshark.log" 2>&1 &
TSH=$!
t_defer "kill -INT $TSH 2>/dev/null"
t_wait 15 grep -q "Capturing on" "$T_TMP/tshark.log" || t_fail "tshark starts" "$(cat "$T_TMP/tshark.log")"

# fault NAME CMD...: the probes run, CMD is the fault (it returns once the
# fault has ended), then the checks.
SUMMARY=""
fault() {
	local name=$1 f0 op ou fp fu
	shift
	f0=$(fences)
	t_probe_start "$name-P" $PIP
	t_probe_start "$name-U" $UIP
	"$@"
	t_wait 20 has_leader || t_fail "$name: a leader again" "$(leader_of "$PF_API_URL_B")"
	t_probe_stop "$name-P"; op=$T_OUTAGE fp=$T_FAILED
	t_diag "$name: $P: $T_PROBE_LINE"
	t_probe_stop "$name-U"; ou=$T_OUTAGE fu=$T_FAILED
	t_diag "$name: $U: $T_PROBE_LINE"
	if [ -n "${FAULT_BREAKS:-}" ]; then
		# The fault itself cuts the path (a route deleted by hand): what
		# counts is how soon it is repaired (the issue's 2 s target).
		t_le "$name: $P served again within 2 s (outage ms)" "${op:-99999}" 2000
		t_le "$name: $U served throughout: failed probes" "${fu:-99}" 1
	else
		t_le "$name: $P (protected) served throughout: failed probes" "${fp:-99}" 1
		t_le "$name: $U (unprotected) served throughout: failed probes" "${fu:-99}" 1
	fi
	t_eq "$name: no agent fenced" "$f0" "$(fences)"
	[ "$f0" = "$(fences)" ] ||
		t_diag "$(grep -h 'fence host=\|not fencing\|lease lapsed\|unfence host\|granted by' $RUN/agents/*/netmigrated.log | tail -n 12)"
	t_eq "$name: nothing failed over ($P primary, $S its standby)" "primary standby $S" \
		"$(vmf_live $P role) $(vmf_live $S role) $(vmf_live $P peer)"
	SUMMARY+="| $name | ${op:-?} ms | ${ou:-?} ms |"$'\n'
}
redis_stall() {
	local pid
	pid=$(lab_pid redis)
	kill -STOP "$pid"
	sleep 10	# the fault itself: a 10 s stall
	kill -CONT "$pid"
}

# 1. -------------------------------------------------------------------------
fault redis-stall redis_stall

# 2. -------------------------------------------------------------------------
t_check "fleetctl migrate $P --to us-1 (away from home)" "$FC" migrate $P --to us-1
t_match "the edge routes $PIP to us-1" "via 10.77.2.11" "$(ip -n pf-edge route show $PIP)"
n_recon=$(grep -c "reconcile done" $RUN/fleetd/fleetd.log $RUN/fleetd-b/fleetd.log | awk -F: '{ s += $2 } END { print s }')
fault redis-stall-away redis_stall
recon_count() { grep -c "reconcile done" $RUN/fleetd/fleetd.log $RUN/fleetd-b/fleetd.log | awk -F: '{ s += $2 } END { print s }'; }
recon_more() { [ "$(recon_count)" -gt "$n_recon" ]; }
t_check "after the stall, the lead is taken again and reconciled" t_wait 20 recon_more
t_match "... the edge still routes $PIP to us-1" "via 10.77.2.11" "$(ip -n pf-edge route show $PIP)"
t_match "... the reconcile planned $P's group (primary and standby) once" \
	"reconcile vm=$P on=us-1 action=announce group=2 doubled=0" "$("$FC" events | tail -n 60)"
t_check "... and never announced the standby $S" bash -c "! $FC events | tail -n 60 | grep -q 'reconcile vm=$S '"

# 3. -------------------------------------------------------------------------
read -r _ E0 <<<"$(leader_of "$PF_API_URL")"
[ -n "$E0" ] || read -r _ E0 <<<"$(leader_of "$PF_API_URL_B")"
fault redis-restart-empty $LAB redis-restart
lead_epoch() { R GET pf:ctl:leader 2>/dev/null | cut -d' ' -f2; }
above_e0() { local e; e=$(lead_epoch); [ "${e:-0}" -gt "$E0" ]; }
t_check "Redis came back empty: the leader's epoch is above the one before ($E0)" t_wait 10 above_e0
E1=$(lead_epoch)
agents_follow() { for h in eu-1 eu-2 us-1; do [ "$(R GET pf:host:$h:epoch)" = "$E1" ] || return 1; done; }
t_check "... every agent has its epoch ($E1) again, so none refuses its orders" t_wait 10 agents_follow
fence_back() { R SMEMBERS pf:host:us-1:fence | grep -qx "$MP"; }
t_check "... the fence set of $P's host is written again" t_wait 10 fence_back

# 3b. -------------------------------------------------------------------------
# A Sentinel failover: the replica becomes the master; every client (fleetds,
# agents, the guests' proxyvmd) follows +switch-master. Then back, so the
# rest of the drills find the master where the lab put it.
master_port() { REDISCLI_AUTH=$PF_SENTINEL_PASS redis-cli -h "$PF_REDIS_HOST" -p "${PF_SENTINELS##*:}" \
	SENTINEL get-master-addr-by-name "$PF_REDIS_MASTER" | sed -n 2p; }
sentinel_failover() { $LAB sentinel-failover >/dev/null; }
t_eq "the sentinels name the lab's master" "$PF_REDIS_PORT" "$(master_port)"
fault sentinel-failover sentinel_failover
t_eq "sentinel-failover: the replica is the master now" "$PF_REDIS_REPLICA_PORT" "$(master_port)"
follows() { grep -q "redis up .*addr=$PF_REDIS_HOST:$PF_REDIS_REPLICA_PORT" "$@"; }
t_check "... both fleetds moved to it" t_wait 10 bash -c "grep -q 'redis up addr=$PF_REDIS_HOST:$PF_REDIS_REPLICA_PORT' $RUN/fleetd/fleetd.log && grep -q 'redis up addr=$PF_REDIS_HOST:$PF_REDIS_REPLICA_PORT' $RUN/fleetd-b/fleetd.log"
t_check "... every agent moved to it" t_wait 10 bash -c "for f in $RUN/agents/*/netmigrated.log; do grep -q 'redis up link=write addr=$PF_REDIS_HOST:$PF_REDIS_REPLICA_PORT' \$f || exit 1; done"
tel_on_new() { local v; v=$(REDISCLI_AUTH=$PF_REDIS_PASS redis-cli -h "$PF_REDIS_HOST" -p "$PF_REDIS_REPLICA_PORT" HGET pf:vm:$P:tel ts_ms); [ "${v:-0}" -gt "$1" ]; }
t_check "... and $P's proxyvmd writes its telemetry there" t_wait 15 tel_on_new "$(date +%s%3N)"
fault sentinel-failback sentinel_failover
t_eq "sentinel-failback: the lab's master again" "$PF_REDIS_PORT" "$(master_port)"

# 4. -------------------------------------------------------------------------
kill_leader() {
	local who api other
	for api in "$PF_API_URL" "$PF_API_URL_B"; do
		who=$(leader_of "$api" | cut -d' ' -f1)
		[ -n "$who" ] && break
	done
	case $who in fleetd-a) KILLED=fleetd other=$PF_API_URL_B ;; *) KILLED=fleetd-b other=$PF_API_URL ;; esac
	local pid
	pid=$(lab_pid $KILLED)
	kill -9 "$pid"
	t_wait 10 bash -c "! kill -0 $pid 2>/dev/null || grep -q '^State:.*Z' /proc/$pid/status"
	# From here on fleetctl and the checks ask the one that is left.
	PF_API_URL=$other FLEETCTL_API=$other
	t_wait 15 has_leader || t_fail "the other fleetd takes the lead"
}
fault leader-kill kill_leader
t_check "the killed fleetd ($KILLED) starts again and follows" $LAB _fleetd-start $KILLED

# 5. and 6. --------------------------------------------------------------------
fault agent-restart-away $LAB agent-restart us-1
fault edge-agent-restart $LAB agent-restart edge

# 7. and 8. --------------------------------------------------------------------
# A service route deleted by hand, on the edge (P is away: its eu address
# is routed to us-1 by a /32) and on the host P runs on: the agents hold
# the state fleetd stated and put it back (netlink wakes them).
route_back() { ip -n "$1" route show "$PIP" proto 77 | grep -q "$2"; }
del_route() {
	ip -n "$1" route del "$PIP/32" proto 77
	t_wait 10 route_back "$1" "$2"
}
# The edge agent restarted in 6. keeps the kernel only once it holds its
# lease again (it waits out its predecessor's) and has read its statements.
edge_ready() {
	awk '/ start host=edge /{ r = 0 } / statements pf:host:edge:net=[0-9]+ authoritative=yes/{ r = 1 }
		END { exit !r }' $RUN/agents/edge/netmigrated.log
}
t_check "the restarted edge agent holds its lease and has its statements" t_wait 20 edge_ready
t_match "the edge routes $PIP to us-1 (before)" "via 10.77.2.11" "$(ip -n pf-edge route show $PIP)"
FAULT_BREAKS=1 fault edge-route-deleted del_route pf-edge "via 10.77.2.11"
t_check "edge-route-deleted: the edge's route is back" route_back pf-edge "via 10.77.2.11"
t_match "... the edge agent logged the repair" "converge host=edge why=netlink .*routes_set=1" \
	"$(grep 'converge host=edge' $RUN/agents/edge/netmigrated.log | tail -n 3)"
FAULT_BREAKS=1 fault host-route-deleted del_route pf-us-1 "dev br0"
t_check "host-route-deleted: us-1's route to $P is back" route_back pf-us-1 "dev br0"

# The capture ---------------------------------------------------------------------
kill -INT $TSH 2>/dev/null
wait $TSH
# ARP claims only: once P is away, its packets reach the edge routed by us-1.
claims() { # IP -> the MACs of ARP frames claiming it, with counts
	tshark -n -r "$T_TMP/faults.pcap" -T fields -e arp.src.hw_mac \
		-Y "arp.src.proto_ipv4==$1" 2>/dev/null | sort | uniq -c |
		awk '{ print $2 "(" $1 ")" }' | paste -sd' ' -
}
cp=$(claims $PIP) cu=$(claims $UIP)
t_diag "frames claiming $PIP: $cp; claiming $UIP: $cu (P=$MP S=$MS U=$MU)"
t_match "only $P's MAC ever claimed $PIP (never two MACs for one IP)" "^$MP\([0-9]+\)$" "$cp"
t_match "only $U's MAC ever claimed $UIP" "^$MU\([0-9]+\)$" "$cu"
t_diag "longest outage per fault:"
t_diag "| fault | $P (protected) | $U (unprotected) |"
t_diag "|---|---|---|"
while IFS= read -r line; do [ -n "$line" ] && t_diag "$line"; done <<<"$SUMMARY"
t_done
