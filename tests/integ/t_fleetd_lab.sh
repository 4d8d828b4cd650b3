#!/usr/bin/env bash
# t_fleetd_lab.sh: fleetd moving real proxy VMs on the lab, through
# fleetctl, while a client keeps connecting through the proxy.
#
#  1. within a region (eu-1 -> eu-2) and 2. across regions (eu-2 -> us-1)
#     while pfprobe opens a connection through the proxy every 20 ms: the VM
#     ends on the destination only (virsh), the edge route follows it, and
#     the client-observed outage beyond libvirt's downtime is under 50 ms;
#  3. back home (us-1 -> eu-1): the edge route is withdrawn;
#  4. drain a host with two VMs: both land elsewhere, host in maintenance;
#  5. the destination's link cut during a migration: the migration fails,
#     the VM keeps serving from the source with its IP;
#  6. a VM stopped, started and migrated by hand with virsh: fleetd notices.
# Real everything: libvirtd, QEMU guests running proxyvmd, netmigrated on
# every host and the edge, fleetd, Redis, curl.
. "$(dirname "$0")/lib.sh"
t_need_root

VM="bash $T_ROOT/deploy/lab/vm.sh"
STATE_DIR=/run/proxyfleet-lab
FC="$PF_BIN/fleetctl"
# What the code controls is asserted: the handover, from the resume on the
# destination to the agent's ack of the announcement (fleetd's handover_ms;
# 1-6 ms here, while an announcement held back until a verify or the
# telemetry would cost seconds). The client's outage next to libvirt's
# downtime is printed, not asserted: on a quiet machine they match within
# 0-40 ms, but under TCG a migrating guest can stop answering a 0.5 s probe
# for seconds (measured: 237 failed probes from 0.7 s into a 3.4 s copy,
# well before the pause, to 2 s after the resume, under ASan with the other
# core busy), most likely because dirty-page tracking and auto-converge's
# throttle slow a TCG guest, a hardware-assisted one far less. Such a bound
# would measure the machine, not the handover (docs/lab.md).
HANDOVER_LIMIT_MS=1000

in_client() { ip netns exec pf-client "$@"; }
uri() { echo "qemu+tcp://$1/system"; }
EU1=$(uri 10.77.1.11) EU2=$(uri 10.77.1.12) US1=$(uri 10.77.2.11)
host_uri() { case $1 in eu-1) echo "$EU1" ;; eu-2) echo "$EU2" ;; us-1) echo "$US1" ;; esac; }
running_on() { timeout 10 virsh -q -c "$1" list --name 2>/dev/null | sed '/^$/d' | paste -sd, -; }
defined_on() { timeout 10 virsh -q -c "$1" list --all --name 2>/dev/null | sed '/^$/d' | paste -sd, -; }
serves() { in_client curl -sf --max-time 1 -o /dev/null -x "http://$1:3128" "$PF_ORIGIN_URL"; }
# mono_us: CLOCK_MONOTONIC in microseconds, pfprobe's clock for START_US.
mono_us() { python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)'; }
# fail_window LOG T0 T1: where the failed probes fall against the migrate
# call (T0..T1), in ms from the call's start.
fail_window() {
	awk -v t0="$2" -v t1="$3" '$2 == "fail" { n++; if (!f) f = $1; l = $1 }
		END { if (n) printf "%d failed probes from %+d to %+d ms of the migrate call (which took %d ms)", n, (f - t0) / 1000, (l - t0) / 1000, (t1 - t0) / 1000; else print "no failed probe" }' "$1"
}
mig_field() { "$FC" --json migrations | tr -d ' \n\t' | grep -o "{\"id\":$1,[^}]*}" | grep -o "\"$2\":[^,}]*" | cut -d: -f2 | tr -d '"'; }

t_lab_up

A=px-tfl-1 AIP=10.77.1.160 B=px-tfl-2 BIP=10.77.1.161
for h in eu-1 eu-2 us-1; do t_defer "$VM destroy $h $A; $VM destroy $h $B"; done
t_defer "'$FC' undrain eu-1"
t_defer "ip -n pf-edge link set pfe-eu-1 up"
t_check "VM $A starts on eu-1" $VM start eu-1 $A $AIP
t_check "VM $B starts on eu-1" $VM start eu-1 $B $BIP
t_wait 90 serves $AIP && t_ok "$A serves through proxyvmd" || t_fail "$A serves through proxyvmd"
t_wait 90 serves $BIP && t_ok "$B serves through proxyvmd" || t_fail "$B serves through proxyvmd"
t_wait 20 sh -c "'$FC' --json vms | tr -d ' \n\t' | grep -q '\"name\":\"$A\",\"host\":\"eu-1\",\"state\":\"running\"'" &&
	t_ok "fleetd sees $A running on eu-1" || t_fail "fleetd sees $A running on eu-1" "$("$FC" vms)"
t_wait 10 sh -c "'$FC' --json vms | tr -d ' \n\t' | grep -A0 -o '\"name\":\"$A\"[^}]*\"stale\":false'" &&
	t_ok "$A telemetry reaches fleetd" || t_fail "$A telemetry reaches fleetd" "$("$FC" vms)"

# move VM IP DEST: migrate with fleetctl while pfprobe runs; asserts and
# prints the client's view against libvirt's downtime. Sets MIG_ID.
move() {
	local vm=$1 ip=$2 dest=$3 out probe outage downtime handover id
	id=$vm-$dest
	# `ip netns exec` execs pfprobe: $! is the probe itself.
	ip netns exec pf-client "$PF_BIN/pfprobe" -s 60 -l "$T_TMP/probe-$id.log" "$ip" 3128 \
		"$PF_ORIGIN_URL" >"$T_TMP/probe-$id.out" 2>&1 &
	local ppid=$!
	t_wait 30 t_probe_through "$T_TMP/probe-$id.log" || t_fail "client probes get through before the move ($vm)"
	local c0 c1 job
	c0=$(mono_us)
	if out=$("$FC" migrate "$vm" --to "$dest" 2>&1); then
		t_ok "fleetctl migrate $vm --to $dest"
	else
		t_fail "fleetctl migrate $vm --to $dest" "$(echo "$out" | tail -n 3)"
	fi
	c1=$(mono_us)
	# Until the client has been served again for a while (25 probes, 0.5 s).
	t_wait 30 t_probe_back "$T_TMP/probe-$id.log" 25
	kill -TERM $ppid
	wait $ppid
	probe=$(cat "$T_TMP/probe-$id.out")
	outage=$(sed -n 's/.*outage_ms=\([0-9]*\).*/\1/p' <<<"$probe")
	MIG_ID=$(sed -n 's/^migration \([0-9]*\): .*/\1/p' <<<"$out" | head -n1)
	downtime=$(mig_field "${MIG_ID:-0}" downtime_ms)
	t_diag "$vm -> $dest: $(echo "$out" | tail -n 1)"
	t_diag "client (new connection every 20 ms, 0.5 s timeout): $probe; libvirt downtime ${downtime} ms"
	t_match "client probes recover after the move" 'ok=[1-9]' "ok=$(tail -n 5 "$T_TMP/probe-$id.log" | grep -c ' ok ')"
	handover=$(mig_field "${MIG_ID:-0}" handover_ms)	# -1: never announced
	if [ "${handover:--1}" -ge 0 ] 2>/dev/null; then
		t_le "handover: the resume to the announcement's ack (ms, limit $HANDOVER_LIMIT_MS)" \
			"$handover" $HANDOVER_LIMIT_MS
	else
		t_fail "handover: the destination announced $vm's IP" "handover_ms=${handover:-none}"
	fi
	if [ $((${outage:-9999} - ${downtime:-0})) -gt 200 ]; then
		# Was the guest slow (auto-converge's throttle before the pause, a
		# guest starved after it) or the network late? The failures' place
		# against the call, libvirt's own account, and fleetd's journal.
		job=$(timeout 10 virsh -c "$(host_uri "$dest")" domjobinfo "$vm" --completed 2>&1 |
			grep -E 'Time elapsed|downtime|Iteration|throttle|Dirty rate|Memory bandwidth' | paste -sd';' -)
		t_diag "$(fail_window "$T_TMP/probe-$id.log" "$c0" "$c1")"
		t_diag "libvirt's completed job on $dest: ${job:-none}"
		t_diag "journal: $(timeout 10 "$FC" events | grep -E " id=$MIG_ID | vm=$vm " | tail -n 4 | paste -sd'|' -)"
	fi
}

# 1. within the region
move $A $AIP eu-2
t_eq "$A runs on eu-2 only (eu-1 has none of it)" "$A|" "$(running_on "$EU2" | tr ',' '\n' | grep -x $A)|$(defined_on "$EU1" | tr ',' '\n' | grep -x $A)"
out=$($VM start eu-1 $A $AIP 2>&1); rc=$?
t_match "the lab refuses a second copy of $A on another host" "^1 .*$A already exists on eu-2" "$rc $out"
t_match "journal: migration done with timings" "done id=$MIG_ID vm=$A from=eu-1 to=eu-2 .*downtime_ms=[0-9]+ .*handover_ms=[0-9]+ telemetry=(resumed|not-seen)" "$("$FC" events)"
# telemetry=resumed when the proxy reported within the verify's 5 s of the
# resume; a TCG guest slowed by the copy may report later (not-seen).

# 2. across regions: the edge routes the /32 to us-1
move $A $AIP us-1
t_eq "$A runs on us-1 only" "$A|" "$(running_on "$US1" | tr ',' '\n' | grep -x $A)|$(defined_on "$EU2" | tr ',' '\n' | grep -x $A)"
t_match "edge routes $AIP to us-1" "^$AIP via 10.77.2.11 dev br-us proto 77" "$(ip -n pf-edge route show $AIP)"
t_match "us-1 delivers $AIP onto its VM bridge" "^$AIP dev br0 proto 77" "$(ip -n pf-us-1 route show $AIP)"

# 3. home again: the edge route goes
move $A $AIP eu-1
t_eq "edge /32 withdrawn once home" "" "$(ip -n pf-edge route show $AIP)"
t_eq "us-1 route withdrawn" "" "$(ip -n pf-us-1 route show $AIP)"

# 4. drain eu-1 (A and B on it)
# Bounded: a drain that stalls fails here with what blocks it, not at the
# runner's timeout with nothing to read.
out=$(timeout 180 "$FC" drain eu-1 --wait 2>&1); rc=$?
if [[ $out == *'eu-1: drained, in maintenance'* ]]; then
	t_ok "drain eu-1 --wait ends in maintenance"
else
	t_fail "drain eu-1 --wait ends in maintenance" "exit $rc: $(echo "$out" | tail -n 5)" \
		"$(timeout 10 "$FC" hosts 2>&1)" "$(timeout 10 "$FC" vms 2>&1)" \
		"$(timeout 10 "$FC" migrations 2>&1 | tail -n 5)" "$(timeout 10 "$FC" events 2>&1 | tail -n 15)" \
		"$(tail -n 30 $STATE_DIR/fleetd/fleetd.log $STATE_DIR/fleetd-b/fleetd.log 2>&1)"
fi
t_eq "eu-1 runs no VM after the drain" "" "$(running_on "$EU1")"
t_eq "both VMs stay in the region (eu-2)" "$A,$B" "$(running_on "$EU2" | tr ',' '\n' | grep -E "^($A|$B)$" | sort | paste -sd, -)"
t_check "$A serves after the drain" serves $AIP
t_check "$B serves after the drain" serves $BIP
t_match "migrations to eu-1 refused while in maintenance" "destination eu-1 is in maintenance" "$("$FC" migrate $B --to eu-1 2>&1)"
t_check "undrain eu-1" "$FC" undrain eu-1

# 5. the destination's link cut in the middle of a migration
out=$("$FC" migrate $B --to eu-1 --no-wait --reason fault-test 2>&1)
id=$(sed -n 's/^migration \([0-9]*\) started.*/\1/p' <<<"$out")
t_wait 30 sh -c "[ \"\$(FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --json migrations | tr -d ' \n\t' | grep -o '{\"id\":$id,[^}]*}' | grep -o '\"phase\":\"[a-z]*\"')\" = '\"phase\":\"migrating\"' ]" ||
	t_fail "migration $id reaches the copy phase"
ip -n pf-edge link set pfe-eu-1 down
t0=$(date +%s%N)
t_wait 60 sh -c "FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --json migrations | tr -d ' \n\t' | grep -o '{\"id\":$id,[^}]*}' | grep -q '\"phase\":\"failed\"'" &&
	t_ok "link cut: migration $id fails" || t_fail "link cut: migration $id fails" "$("$FC" migrations)"
t_diag "link cut: migration failed $((($(date +%s%N) - t0) / 1000000)) ms after the cut: $("$FC" migrations | awk -v id=$id '$1 == id')"
t_match "VM $B still runs on eu-2" "(^|,)$B(,|$)" "$(running_on "$EU2")"
t_check "VM $B still serves from eu-2 with its IP" serves $BIP
t_match "journal: failure says the VM stayed" "failed id=$id vm=$B .*still_on_source=running" "$("$FC" events)"
ip -n pf-edge link set pfe-eu-1 up

# 6. Changes made by hand, outside fleetd, reach its model through libvirt's
# lifecycle events: a VM stopped, started, and moved with virsh.
vm_state() { "$FC" --json vms | tr -d ' \n\t' | grep -o "\"name\":\"$1\",\"host\":\"[a-z0-9-]*\",\"state\":\"[a-z]*\""; }
virsh -q -c "$EU2" destroy $B >/dev/null
t_wait 5 sh -c "FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --json vms | tr -d ' \n\t' | grep -q '\"name\":\"$B\",\"host\":\"eu-2\",\"state\":\"shutoff\"'" &&
	t_ok "VM stopped by hand: fleetd sees it shut off" || t_fail "VM stopped by hand: fleetd sees it shut off" "$(vm_state $B)"
virsh -q -c "$EU2" start $B >/dev/null
t_wait 5 sh -c "FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --json vms | tr -d ' \n\t' | grep -q '\"name\":\"$B\",\"host\":\"eu-2\",\"state\":\"running\"'" &&
	t_ok "VM started by hand: fleetd sees it running" || t_fail "VM started by hand: fleetd sees it running" "$(vm_state $B)"
virsh -q -c "$EU2" migrate --live --persistent --undefinesource --migrateuri tcp://10.77.1.11 $B "$EU1" >/dev/null 2>&1 ||
	t_fail "virsh migrate by hand"
t_wait 10 sh -c "FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' --json vms | tr -d ' \n\t' | grep -q '\"name\":\"$B\",\"host\":\"eu-1\",\"state\":\"running\"'" &&
	t_ok "VM moved by hand: fleetd sees it on eu-1" || t_fail "VM moved by hand: fleetd sees it on eu-1" "$(vm_state $B)"
t_match "journal: the move by hand is noted" "moved vm=$B from=eu-2 to=eu-1 by=outside" "$("$FC" events)"

# The controller and the agents ran all of this; under SANITIZE=1 they are
# the ASan/UBSan builds, and any report in their logs is a failure.
t_no_sanitizer_report "no sanitizer report from fleetd or the agents" \
	$STATE_DIR/fleetd/fleetd.log $STATE_DIR/agents/*/netmigrated.log
t_done
