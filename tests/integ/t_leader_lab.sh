#!/usr/bin/env bash
# t_leader_lab.sh: controller failover on the lab (issue 7): the leading
# fleetd is killed (kill -9) in the middle of a live migration; the standby
# fleetd takes the lead within 3 s, waits for the libvirt job the dead one
# left (a peer-to-peer migration runs inside the source libvirtd and does
# not need its client), and makes the network match where libvirt runs the
# VM. Checked: the takeover time; the VM runs on exactly one host; its IP
# answers through the proxy from the client namespace; routes only where it
# runs; fleetctl on the new leader shows it where libvirt has it; the
# journal has the reconcile line. The lab is left as it was found: the
# killed fleetd is started again, and the lead handed back (SIGTERM) to
# the lab's first fleetd.
. "$(dirname "$0")/lib.sh"
t_need_root

VM="bash $T_ROOT/deploy/lab/vm.sh"
LAB="bash $T_ROOT/deploy/lab/lab.sh"
STATE_DIR=/run/proxyfleet-lab
FC="$PF_BIN/fleetctl"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
in_client() { ip netns exec pf-client "$@"; }
uri() { echo "qemu+tcp://$1/system"; }
declare -A URI=([eu-1]=$(uri 10.77.1.11) [eu-2]=$(uri 10.77.1.12) [us-1]=$(uri 10.77.2.11))
running_on() { timeout 10 virsh -q -c "${URI[$1]}" list --name 2>/dev/null | grep -qx "$2"; }
serves() { in_client curl -sf --max-time 1 -o /dev/null -x "http://$1:3128" "$PF_ORIGIN_URL"; }
leader_of() { curl -s --max-time 1 -H "Authorization: Bearer $FLEETCTL_TOKEN" "$1/v1/leader"; }
is_leader() { leader_of "$1" | grep -q '"role":"leader"'; }
# lab_pid NAME: the running PID the lab recorded for NAME.
lab_pid() {
	local kind name pid start
	while read -r kind name pid start; do
		[ "$kind" = pid ] && [ "$name" = "$1" ] && kill -0 "$pid" 2>/dev/null && echo "$pid" && return 0
	done <"$STATE_DIR/state"
	return 1
}

# path_diag HOST: what stands between the client and the VM on HOST (printed
# when it does not answer): the edge's view, the VM's state and bridge port
# on HOST, a ping from HOST, the guest's console, the agent and the journal.
path_diag() {
	local h=$1 mac holder
	mac=$(timeout 5 virsh -q -c "${URI[$h]}" domiflist $V 2>&1 | awk '{print $5}')
	holder=$(awk -v n="holder-$h" '$1 == "pid" && $2 == n {print $3}' "$STATE_DIR/state")
	echo "edge: $(ip -n pf-edge neigh show $VIP) | $(ip -n pf-edge route get $VIP 2>&1 | head -n1)"
	echo "edge fdb: $(bridge -n pf-edge fdb show br br-eu 2>&1 | grep -i "$mac")"
	echo "$h: state $(timeout 5 virsh -c "${URI[$h]}" domstate --reason $V 2>&1) mac $mac"
	ip -n pf-$h -br link show master br0 2>&1 | sed "s/^/$h port: /"
	echo "$h fdb: $(bridge -n pf-$h fdb show br br0 2>&1 | grep -i "$mac")"
	echo "$h ping: $(ip netns exec pf-$h ping -c2 -W1 $VIP 2>&1 | grep -E 'transmitted')"
	echo "$h neigh: $(ip -n pf-$h neigh show $VIP)"
	[ -n "$holder" ] && nsenter -t "$holder" -m tail -n 8 /var/log/libvirt/qemu/$V.console.log 2>&1 |
		sed "s/^/console: /"
	[ -n "$holder" ] && nsenter -t "$holder" -m tail -n 5 /var/log/libvirt/qemu/$V.log 2>&1 |
		sed "s/^/qemu: /"
	tail -n 8 "$STATE_DIR/agents/$h/netmigrated.log" 2>&1 | sed "s/^/agent $h: /"
	"$FC" --api ${API[$OTHER]} events | tail -n 6
}

t_lab_up
APIA=$PF_API_URL APIB=$PF_API_URL_B
declare -A API=([fleetd]=$APIA [fleetd-b]=$APIB)
if is_leader $APIA; then LEAD=fleetd OTHER=fleetd-b; else LEAD=fleetd-b OTHER=fleetd; fi
t_match "the lab runs two fleetds: $LEAD leads, $OTHER follows" '"role":"follower"' "$(leader_of ${API[$OTHER]})"
E1=$(leader_of ${API[$LEAD]} | grep -o '"epoch":[0-9]*' | cut -d: -f2)

V=px-tll-1 VIP=10.77.1.170
for h in eu-1 eu-2 us-1; do t_defer "$VM destroy $h $V"; done
# Leave the lab as found: both fleetds up, the lab's first one leading.
t_defer "lab_pid fleetd >/dev/null || $LAB _fleetd-start fleetd; lab_pid fleetd-b >/dev/null || $LAB _fleetd-start fleetd-b"
t_check "VM $V starts on eu-1" $VM start eu-1 $V $VIP
t_wait 90 serves $VIP && t_ok "$V serves through proxyvmd" || t_fail "$V serves through proxyvmd"
t_wait 20 sh -c "FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --api ${API[$LEAD]} --json vms | tr -d ' \n\t' | grep -q '\"name\":\"$V\",\"host\":\"eu-1\",\"state\":\"running\"'" ||
	t_fail "the leader sees $V on eu-1"

# --- migrate, and kill the leader while the copy runs ---
out=$("$FC" --api ${API[$LEAD]} migrate $V --to eu-2 --no-wait --reason failover-test 2>&1)
id=$(sed -n 's/^migration \([0-9]*\) started.*/\1/p' <<<"$out")
t_match "migration started on the leader" 'started' "$out"
phase() { curl -s -H "Authorization: Bearer $FLEETCTL_TOKEN" "${API[$LEAD]}/v1/migrations/$id" | grep -o '"phase":"[a-z]*"' | cut -d'"' -f4; }
t_wait 30 sh -c "[ \"\$(curl -s -H 'Authorization: Bearer $FLEETCTL_TOKEN' ${API[$LEAD]}/v1/migrations/$id | grep -o '\"phase\":\"[a-z]*\"')\" = '\"phase\":\"migrating\"' ]" ||
	t_fail "migration $id reaches the copy phase" "$(phase)"
# Slow the copy down so the job outlives the takeover: the new leader must
# find it in libvirt and wait for it.
timeout 5 virsh -c "${URI[eu-1]}" migrate-setspeed $V 8 >/dev/null 2>&1 || t_diag "migrate-setspeed refused"
t_eq "still copying when the leader dies" migrating "$(phase)"
LPID=$(lab_pid $LEAD)
t0=$(now_ms)
kill -9 "$LPID"
t_wait 6 is_leader ${API[$OTHER]}; t1=$(now_ms)
t_diag "takeover after kill -9 of $LEAD mid-migration: $((t1 - t0)) ms"
t_le "$OTHER leads within 3 s of the leader's death (ms)" $((t1 - t0)) 3000
E2=$(leader_of ${API[$OTHER]} | grep -o '"epoch":[0-9]*' | cut -d: -f2)
t_le "the epoch increased ($E1 -> $E2)" $((E1 + 1)) "${E2:-0}"

# --- the new leader waits out the job, then reconciles ---
# Once it is seen waiting for the job, the copy may end: the speed limit
# comes off. Long throttled copies are where TCG guests came out with
# corrupted memory (with XBZRLE, now off: docs/lab.md, "XBZRLE under TCG"),
# and this test is about the controller, not QEMU.
t_wait 20 grep -q "reconcile wait vm=$V host=eu-1 job=1" "$STATE_DIR/$OTHER/fleetd.log" ||
	t_diag "the new leader was not seen waiting for the job"
timeout 5 virsh -c "${URI[eu-1]}" migrate-setspeed $V 8192 >/dev/null 2>&1 ||
	t_diag "migrate-setspeed (limit off) refused"
t_wait 90 sh -c "FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --api ${API[$OTHER]} events | grep -q 'reconcile done epoch=$E2'" &&
	t_ok "new leader: reconcile done" || t_fail "new leader: reconcile done" "$(tail -n 20 $STATE_DIR/$OTHER/fleetd.log)"
ev=$("$FC" --api ${API[$OTHER]} events --since 0)
t_diag "$(grep -o 'reconcile done.*' <<<"$ev" | tail -n 1)"
t_match "the new leader found the dead one's migration job in libvirt and waited for it" \
	"reconcile done epoch=$E2 .*waited_jobs=[1-9]" "$ev"
on=""
for h in eu-1 eu-2 us-1; do running_on $h $V && on+="$h "; done
on=${on% }
t_eq "$V runs on exactly one host (libvirt)" 1 "$(wc -w <<<"$on")"
t_diag "$V runs on: $on (the dead leader's migration was to eu-2)"
t_match "journal: the reconcile line for $V, where libvirt runs it" "reconcile vm=$V on=$on action=announce" "$ev"
t_match "fleetctl on the new leader shows $V where libvirt has it" "\"name\":\"$V\",\"host\":\"$on\",\"state\":\"running\"" \
	"$("$FC" --api ${API[$OTHER]} --json vms | tr -d ' \n\t')"
# 30 s: under the sanitizers everything on the lab is slower (one CI run
# missed 15 s once; the answer's path is printed when it fails).
t_wait 30 serves $VIP && t_ok "$VIP answers through the proxy from the client" ||
	t_fail "$VIP answers through the proxy" "$(path_diag "$on")"
t_match "$on routes $VIP onto its VM bridge" "^$VIP dev br0 proto 77" "$(ip -n pf-$on route show $VIP)"
for h in eu-1 eu-2 us-1; do
	[ "$h" = "$on" ] && continue
	t_eq "$h has no route for $VIP" "" "$(ip -n pf-$h route show $VIP)"
done
t_eq "the edge has no /32 for $VIP (it is home)" "" "$(ip -n pf-edge route show $VIP)"

# --- the dead one comes back as a follower; the lead goes home ---
t_check "$LEAD started again" $LAB _fleetd-start $LEAD
t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $FLEETCTL_TOKEN' ${API[$LEAD]}/v1/leader | grep -q '\"role\":\"follower\"'" &&
	t_ok "$LEAD back: follows" || t_fail "$LEAD back: follows" "$(leader_of ${API[$LEAD]})"
if [ $LEAD = fleetd ]; then
	OPID=$(lab_pid $OTHER)
	kill -TERM "$OPID"
	t_wait 5 is_leader $APIA && t_ok "fleetd leads again after $OTHER's SIGTERM" || t_fail "fleetd leads again"
	t_wait 40 sh -c "! kill -0 $OPID 2>/dev/null"
	t_check "$OTHER started again" $LAB _fleetd-start $OTHER
fi
t_no_sanitizer_report "no sanitizer report from the fleetds or the agents" \
	$STATE_DIR/fleetd/fleetd.log $STATE_DIR/fleetd-b/fleetd.log $STATE_DIR/agents/*/netmigrated.log
t_done
