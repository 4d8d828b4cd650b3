#!/usr/bin/env bash
# t_policy_lab.sh: fleetd rebalances by proxy traffic on the lab.
#
# Two proxy VMs on eu-1, one on eu-2. Rebalancing is switched on by a reload
# (SIGHUP) with hosts' NIC capacity set to 8 MiB/s, high water 80%, target
# 70%, window 3 s. The client namespace then drives about 3.5 MiB/s through
# each VM on eu-1 (eu-1 ~ 90%, hot) and a little through eu-2. fleetd must
# move exactly the VMs its plan needs (the lower bound: one), journal the
# move with its reason, bring every host under the mark, and then stay still.
# Then geographic redistribution: with a target of one proxy in region us,
# fleetd moves the cheapest eu proxy to us-1 (one move, journaled with its
# reason), the edge re-points its /32, and it serves from there.
. "$(dirname "$0")/lib.sh"
t_need_root

VM="bash $T_ROOT/deploy/lab/vm.sh"
STATE_DIR=/run/proxyfleet-lab
FC="$PF_BIN/fleetctl"
RATE=3500k	# per VM on eu-1

in_client() { ip netns exec pf-client "$@"; }
serves() { in_client curl -sf --max-time 1 -o /dev/null -x "http://$1:3128" "$PF_ORIGIN_URL"; }
policy_moves() { "$FC" events | grep -c ' policy .*move ' || true; }

t_lab_up	# a reused lab gets its fleetd config back at exit (below)
CONF=$STATE_DIR/fleetd/fleetd.conf
FPID=$(awk '$1 == "pid" && $2 == "fleetd" { p = $3 } END { print p }' $STATE_DIR/state)
cp "$CONF" "$T_TMP/fleetd.conf.orig"
t_defer "cp '$T_TMP/fleetd.conf.orig' '$CONF'; kill -HUP $FPID"

A=px-tpl-1 AIP=10.77.1.170 B=px-tpl-2 BIP=10.77.1.171 C=px-tpl-3 CIP=10.77.1.172
for h in eu-1 eu-2 us-1; do t_defer "$VM destroy $h $A; $VM destroy $h $B; $VM destroy $h $C"; done
t_check "VM $A starts on eu-1" $VM start eu-1 $A $AIP
t_check "VM $B starts on eu-1" $VM start eu-1 $B $BIP
t_check "VM $C starts on eu-2" $VM start eu-2 $C $CIP
for ip in $AIP $BIP $CIP; do
	t_wait 90 serves $ip && t_ok "$ip serves" || t_fail "$ip serves"
done

# Rebalancing on, by reload: small NICs so that a few MiB/s make a hot host.
sed -i 's/^nic = .*/nic = 8M/' "$CONF"
printf '\n[policy]\nrebalance = yes\nhigh_water = 80\ntarget = 70\nwindow = 3s\ngeo = on\n' >>"$CONF"
kill -HUP "$FPID"
t_wait 5 grep -q 'reload ok' $STATE_DIR/fleetd/fleetd.log && t_ok "fleetd reloads with rebalancing on" ||
	t_fail "fleetd reloads with rebalancing on" "$(tail -n 3 $STATE_DIR/fleetd/fleetd.log)"
moves0=$(policy_moves)

# Traffic: 4 MiB objects in a loop, rate-limited, through each proxy.
load() { # IP RATE SECONDS
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		in_client curl -s -o /dev/null --max-time 10 --limit-rate "$2" -x "http://$1:3128" \
			"${PF_ORIGIN_URL}4m.bin" || sleep 0.2
	done
}
load $AIP $RATE 70 & L1=$!
load $BIP $RATE 70 & L2=$!
load $CIP 300k 70 & L3=$!
t_defer "kill $L1 $L2 $L3"

t_wait 45 sh -c "[ \$(FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' events | grep -c ' policy .*move ') -gt $moves0 ]" &&
	t_ok "eu-1 hot: fleetd starts a policy move" || t_fail "eu-1 hot: fleetd starts a policy move" "$("$FC" hosts)"
t_match "the move is journaled with its reason" "policy +move .*from=eu-1 .*reason=\".*eu-1 at [0-9]+% of NIC > 80%" "$("$FC" events)"
t_wait 30 sh -c "FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' migrations | awk 'NR > 1 && \$5 ~ /prepare|migrating|cutover|verify/' | grep -q . && exit 1 || exit 0" ||
	t_fail "the policy migration finishes"
t_match "it completed" ' done ' "$("$FC" migrations | sed -n 2p)"
# Then the fleet must stay still: keep the load on and watch (a negative
# check: four rebalancing windows of 3 s pass on purpose).
sleep 12
t_eq "exactly one move (the plan's lower bound)" $((moves0 + 1)) "$(policy_moves)"
plan=$("$FC" plan)
t_match "fleetctl plan: nothing left to move" '^0 move\(s\)' "$plan"
hosts=$("$FC" --json hosts | tr -d ' \n\t')
t_diag "loads after rebalancing: $(echo "$hosts" | grep -o '"name":"[a-z0-9-]*"\|"load":[0-9.e-]*' | paste -sd' ' -)"
over=$(echo "$hosts" | grep -o '"load":[0-9.e-]*' | cut -d: -f2 | awk '$1 > 0.8' | wc -l)
t_eq "no host over the high-water mark" 0 "$over"

# Geographic redistribution.
geo_moves() { "$FC" events | grep -cE ' policy +geo move ' || true; }
on_host() { "$FC" --json vms | python3 -c 'import json,sys
print(" ".join(v["name"] for v in json.load(sys.stdin)["vms"] if v["host"] == sys.argv[1]))' "$1"; }
g0=$(geo_moves)
# Rebalancing may have put a proxy in us already (or be moving one there:
# the regions' counts include VMs in flight): ask for one more.
nus=$("$FC" --json regions | python3 -c 'import json,sys
print(next(r["vms"] for r in json.load(sys.stdin)["regions"] if r["name"] == "us"))')
want=$((nus + 1))
t_defer "'$FC' region-target us none"
t_check "fleetctl region-target us $want" "$FC" region-target us $want
t_wait 30 sh -c "[ \$(FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' events | grep -cE ' policy +geo move ') -gt $g0 ]" &&
	t_ok "fleetd starts a geo move" || t_fail "fleetd starts a geo move" "$("$FC" regions)"
t_match "journaled with its reason" "policy +geo move .*to=us-1 reason=\".*us has $nus of target $want" "$("$FC" events)"
t_wait 60 sh -c "! FLEETCTL_API=$FLEETCTL_API FLEETCTL_TOKEN=$FLEETCTL_TOKEN '$FC' migrations | awk 'NR > 1 && \$5 ~ /prepare|migrating|cutover|verify/' | grep -q ." ||
	t_fail "the geo migration finishes"
moved=$("$FC" events | sed -n 's/.* policy  *geo move .* vm=\([^ ]*\) .*/\1/p' | tail -n 1)
t_match "the geo move's proxy now runs on us-1" "(^| )$moved( |$)" "$(on_host us-1)"
case $moved in $A) mip=$AIP ;; $B) mip=$BIP ;; *) mip=$CIP ;; esac
t_match "the edge routes its IP to us-1" "$mip via 10.77.2.11" "$(ip -n pf-edge route show "$mip")"
t_wait 10 serves "$mip" && t_ok "$mip serves from us-1" || t_fail "$mip serves from us-1"
# The policy starts what the plan says: once the regions' plan has nothing
# left for us (at its target, no move), no second geo move can start.
t_wait 10 t_api_true "$FLEETCTL_API/v1/regions" "j['in_flight'] == 0 and any(r['name'] == 'us' and r['vms'] == int(sys.argv[2]) and r['moves_in'] == 0 for r in j['regions'])" "$want" ||
	t_fail "the regions' plan: us at its target, nothing to move" "$("$FC" regions)"
t_eq "one geo move, no more (the target is met)" $((g0 + 1)) "$(geo_moves)"
t_match "fleetctl regions: us at its target" "^us +1 +$want +$want " "$("$FC" regions)"
t_done
