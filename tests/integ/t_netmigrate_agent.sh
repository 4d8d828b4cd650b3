#!/usr/bin/env bash
# t_netmigrate_agent.sh: netmigrated against a real Redis, in namespace
# pf-nmt-ag (Redis runs inside it too, on its loopback):
#   lease and metrics appear; an order XADDed with redis-cli is executed and
#   acknowledged; duplicates are acknowledged, not re-run; bad orders get a
#   clear error ack and the agent keeps running; a restart resumes after the
#   cursor; killing Redis fences the host after the lease (routes withdrawn);
#   Redis coming back unfences it; SIGTERM exits cleanly (0, no leak);
#   fencing epochs: an order with a lower epoch than one seen is refused
#   (error ack "stale epoch N < M"), one without epoch is accepted, the agent
#   learns pf:ctl:epoch with its renewals and keeps its epoch across a restart.
. "$(dirname "$0")/lib.sh"
t_need_root

NS=pf-nmt-ag PORT=16481 H=nmt-h1 MAC=52:54:00:78:40:01
ip netns del $NS 2>/dev/null; ip netns add $NS; t_defer "ip netns del $NS"
ip -n $NS link set lo up
ip -n $NS link add nmt-br0 type bridge; ip -n $NS link set nmt-br0 up
ip -n $NS link add nmt-up type veth peer name nmt-peer
ip -n $NS link set nmt-up up; ip -n $NS link set nmt-peer up

RDIR=$T_TMP/redis
mkdir -p $RDIR
redis_start() {
	ip netns exec $NS redis-server --port $PORT --bind 127.0.0.1 --dir $RDIR --save '' \
		--appendonly no --daemonize yes --pidfile $RDIR/pid --logfile $RDIR/log >/dev/null
	t_wait 5 rcli ping
}
redis_stop() { kill "$(cat $RDIR/pid)"; t_wait 5 bash -c "! kill -0 $(cat $RDIR/pid) 2>/dev/null"; }
rcli() { ip netns exec $NS redis-cli -p $PORT "$@"; }
t_defer 'kill $(cat '$RDIR'/pid)'
redis_start || { t_fail "redis starts in $NS"; t_done; }

cat >$T_TMP/nmd.conf <<CONF
[netmigrated]
host = $H
redis = 127.0.0.1:$PORT
lease = 1500ms
order_block = 200ms
vm_bridge = nmt-br0
uplink = nmt-up
[announce]
initial = 50ms
rounds = 2
CONF
t_eq "netmigrated -n checks the configuration" "configuration OK" "$($PF_BIN/netmigrated -f $T_TMP/nmd.conf -n 2>&1)"
printf '[netmigrated]\nhost = x\nlease = 2 weeks\n' >$T_TMP/bad.conf
out=$($PF_BIN/netmigrated -f $T_TMP/bad.conf -n 2>&1); rc=$?
t_match "a bad configuration names file and line" "^netmigrated: $T_TMP/bad.conf:3: " "$out"
t_eq "... and exits 2" 2 $rc

LOG=$T_TMP/agent.log
AGENT=
agent_start() {
	ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/nmd.conf >>$LOG 2>&1 &
	AGENT=$!
	t_defer "kill $AGENT"
}
agent_stop() { kill -TERM $AGENT; wait $AGENT; }

# ack_field ID FIELD: FIELD of the last ack for order ID.
ack_field() {
	rcli XRANGE pf:acks - + | awk -v id="$1" -v f="$2" '
		NR % 11 == 1 { n = 0 } { v[NR % 11] = $0 }
		NR % 11 == 0 { if (v[3] == id) { for (i = 2; i <= 10; i += 2) if (v[i] == f) r = v[(i + 1) % 11] } }
		END { print r }'
}
ack_count() { rcli XRANGE pf:acks - + | awk -v id="$1" 'NR % 11 == 3 && $0 == id { n++ } END { print n + 0 }'; }
has_ack() { [ -n "$(ack_field "$1" status)" ]; }
order() { rcli XADD pf:host:$H:orders '*' "$@" >/dev/null; }
route_of() { ip -n $NS route show "$1" | sed 's/ *$//'; }

# A desired-state hash that cannot be read (not a hash): orders must still run.
rcli SET pf:host:$H:net not-a-hash >/dev/null
agent_start
t_check "agent takes the lease" t_wait 10 bash -c "[ -n \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:lease)\" ]"
ttl=$(rcli PTTL pf:host:$H:lease)
t_le "lease TTL within the configured 1500 ms" "$ttl" 1500
t_check "metrics published" t_wait 10 bash -c "[ -n \"\$(ip netns exec $NS redis-cli -p $PORT HGET pf:host:$H:metrics uplink_rx_bps)\" ]"
t_match "metrics hold CPU and memory" '^[0-9.]+ [0-9]+ [0-9]+$' "$(rcli HMGET pf:host:$H:metrics cpu_pct mem_total mem_free | tr '\n' ' ' | sed 's/ $//')"

# --- a good order -------------------------------------------------------------
order id o-1 op announce vm px-1 ips 10.78.40.150,fd78:40::150 mac $MAC
t_check "order o-1 acknowledged" t_wait 10 has_ack o-1
t_eq "o-1 status ok" ok "$(ack_field o-1 status)"
t_match "o-1 ack carries its timing" '^[0-9]+$' "$(ack_field o-1 took_us)"
t_diag "o-1 (prepare + first announcement of 2 IPs) took_us=$(ack_field o-1 took_us)"
t_eq "route to the VM bridge present" "10.78.40.150 dev nmt-br0 proto 77 scope link" "$(route_of 10.78.40.150)"
t_match "IPv6 route present" "fd78:40::150 dev nmt-br0 proto 77" "$(ip -n $NS -6 route show fd78:40::150)"
t_match "agent logged the order with its time" "order id=o-1 op=announce vm=px-1 ips=2 .*took_us=[0-9]+" "$(cat $LOG)"
t_match "... although its statements hash could not be read (said so)" "statements pf:host:$H:net: WRONGTYPE" "$(cat $LOG)"
rcli DEL pf:host:$H:net >/dev/null

# --- duplicates and bad input ---------------------------------------------------
order id o-1 op announce vm px-1 ips 10.78.40.150,fd78:40::150 mac $MAC
t_check "a repeated order id is acknowledged again" t_wait 10 bash -c "[ \"\$(ip netns exec $NS redis-cli -p $PORT XLEN pf:acks)\" = 2 ]"
t_eq "... as a duplicate, not run again" "ok duplicate" "$(ack_field o-1 status) $(ack_field o-1 error)"
order id o-2 op prepare vm px-2 ips 10.78.40.151 dev nmt-nope
order id o-3 op prepare vm px-3 ips 10.78.40.300
order id o-4 vm px-4 ips 10.78.40.152
order id o-5 op announce vm px-5 ips 10.78.40.153
t_check "bad orders acknowledged" t_wait 10 has_ack o-5
t_eq "unknown interface" "error|set route 10.78.40.151/32 dev nmt-nope: no such device 'nmt-nope'" "$(ack_field o-2 status)|$(ack_field o-2 error)"
t_eq "bad IP" "error|bad IP address '10.78.40.300'" "$(ack_field o-3 status)|$(ack_field o-3 error)"
t_eq "malformed order" "error|missing field 'op'" "$(ack_field o-4 status)|$(ack_field o-4 error)"
t_eq "announce without a MAC" "error|announce needs 'mac' (the VM's MAC)" "$(ack_field o-5 status)|$(ack_field o-5 error)"
t_check "agent still running" kill -0 $AGENT
order id o-6 op withdraw vm px-1 ips 10.78.40.150,fd78:40::150
t_check "a good order after bad ones works" t_wait 10 has_ack o-6
t_eq "withdraw removed the route" "" "$(route_of 10.78.40.150)"
last=$(rcli XREVRANGE pf:host:$H:orders + - COUNT 1 | head -1)
t_check "cursor reaches the last entry" t_wait 10 bash -c "[ \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:cursor)\" = $last ]"

# --- the controller's fencing epoch ---------------------------------------------------
order id o-e1 op prepare vm px-e ips 10.78.40.170 epoch 5
t_check "order with epoch 5 acknowledged" t_wait 10 has_ack o-e1
t_eq "epoch 5: ok, and kept next to the cursor" "ok 5" "$(ack_field o-e1 status) $(rcli GET pf:host:$H:epoch)"
order id o-e2 op withdraw vm px-e ips 10.78.40.170 epoch 3
t_check "order with epoch 3 acknowledged" t_wait 10 has_ack o-e2
t_eq "epoch 3 after 5: refused as stale" "error|stale epoch 3 < 5" "$(ack_field o-e2 status)|$(ack_field o-e2 error)"
t_eq "... and not run (route still there)" "10.78.40.170 dev nmt-br0 proto 77 scope link" "$(route_of 10.78.40.170)"
t_match "... and logged" "level=warn .*order refused id=o-e2 op=withdraw vm=px-e: stale epoch 3 < 5" "$(cat $LOG)"
order id o-e3 op withdraw vm px-e ips 10.78.40.170
t_check "order without epoch acknowledged" t_wait 10 has_ack o-e3
t_eq "no epoch (CLI, older tools): accepted and run" "ok|" "$(ack_field o-e3 status)|$(route_of 10.78.40.170)"
rcli SET pf:ctl:epoch 9 >/dev/null
t_check "a new controller epoch in pf:ctl:epoch is learnt with a renewal" \
	t_wait 10 bash -c "[ \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:epoch)\" = 9 ]"

# --- restart: resumes after the cursor --------------------------------------------
order id o-7 op prepare vm px-7 ips 10.78.40.157 mac $MAC
t_check "o-7 acknowledged" t_wait 10 has_ack o-7
agent_stop; rc=$?
t_eq "SIGTERM: clean exit (no leak under ASan)" 0 $rc
t_eq "a stopped agent leaves routes alone" "10.78.40.157 dev nmt-br0 proto 77 scope link" "$(route_of 10.78.40.157)"
order id o-8 op prepare vm px-8 ips 10.78.40.158
agent_start
t_check "restarted agent runs the order queued while it was down" t_wait 15 has_ack o-8
t_eq "o-8 ok" ok "$(ack_field o-8 status)"
t_eq "earlier orders not replayed" "1 1" "$(ack_count o-7) $(ack_count o-6)"
rcli DEL pf:ctl:epoch >/dev/null
order id o-e4 op prepare vm px-e ips 10.78.40.171 epoch 8
t_check "restarted agent: order with epoch 8 acknowledged" t_wait 10 has_ack o-e4
t_eq "restarted agent keeps its epoch (9, from pf:host:$H:epoch): 8 refused" "error|stale epoch 8 < 9" \
	"$(ack_field o-e4 status)|$(ack_field o-e4 error)"

# --- Redis dies: fence after the lease ----------------------------------------------
order id o-9 op announce vm px-9 ips 10.78.40.159 mac $MAC
t_check "o-9 acknowledged" t_wait 10 has_ack o-9
t0=$(date +%s%3N)
redis_stop
t_check "routes withdrawn after the lease (fenced)" t_wait 10 bash -c "[ -z \"\$(ip -n $NS route show proto 77)\" ]"
# When the agent fenced: its log line's own time stamp, not when this
# script's polling noticed (that lags by the poll and the machine's speed).
fts=$(sed -n "s/^ts=\([^ ]*\) level=warn .*fence host=$H reason=.*/\1/p" $LOG | tail -1)
fence_ms=$(date -d "$fts" +%s%3N 2>/dev/null)
ms=$((${fence_ms:-0} - t0))
t_diag "fenced ${ms} ms after Redis was stopped (lease 1500 ms, renewal every 500 ms)"
# The agent fences lease/8 before its lease would lapse, counted from when
# the last renewal Redis answered was sent: at most one renewal period
# (lease/3) before Redis died, so no sooner than 1500 - 187 - 500 = 813 ms
# after t0 (100 ms below that for late timers on a busy machine), and at
# most 1313 ms after Redis' actual exit (it stops at its next cron tick).
t_le "not before lease - lease/8 - one renewal period (813 ms)" 713 $ms
t_le "soon after the lease" $ms 2500
t_match "fencing logged" "level=warn .*fence host=$H reason=\"lease not renewed for 1500 ms\" routes_withdrawn=[1-9]" "$(cat $LOG)"
t_check "agent still running while fenced" kill -0 $AGENT

# --- Redis returns: unfence, orders flow again ----------------------------------------
redis_start
t_check "agent takes its lease again" t_wait 15 bash -c "[ -n \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:lease)\" ]"
t_check "unfence logged" t_wait 10 grep -q "unfence host=$H" $LOG
order id o-10 op prepare vm px-10 ips 10.78.40.160 mac $MAC
t_check "orders flow again" t_wait 10 has_ack o-10
t_eq "route present after recovery" "10.78.40.160 dev nmt-br0 proto 77 scope link" "$(route_of 10.78.40.160)"
t_check "Redis came back empty: the agent's renewals put its epoch (9) back" \
	t_wait 5 bash -c "[ \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:epoch)\" = 9 ]"

# --- Redis stalls longer than the lease: the renewal it runs late must not
# re-create the key and pass for a lease that never lapsed ------------------------------
n0=$(grep -c "unfence host=$H" $LOG)
kill -STOP "$(cat $RDIR/pid)"
t_check "stalled Redis (SIGSTOP): the agent fences after the lease" \
	t_wait 10 bash -c "[ \$(grep -c 'fence host=$H reason=' $LOG) -ge 2 ]"
# The stall itself (the fault, not a wait for something): 2 s more, so the
# key's 1500 ms run out while Redis is stopped (Redis expires by the clock);
# the renewal queued before the stop is the first thing it runs.
sleep 2
kill -CONT "$(cat $RDIR/pid)"
t_check "Redis resumed: the agent holds its lease again" \
	t_wait 10 bash -c "[ \$(grep -c 'unfence host=$H' $LOG) -gt $n0 ]"
t_match "... and knows it lapsed (the late renewal did not re-create the key)" \
	"unfence host=$H fenced_for_ms=[0-9]+ lease_lapsed=yes" "$(grep "unfence host=$H" $LOG | tail -1)"
# --- withdrawals remove only netmigrate's own routes ------------------------------------
ip -n $NS route add 10.78.40.161/32 dev nmt-br0 proto static
order id o-11 op withdraw vm px-11 ips 10.78.40.161
t_check "withdraw of an address netmigrate never routed acknowledged" t_wait 10 has_ack o-11
t_eq "... ok, and the operator's static /32 for it is still there" \
	"ok|10.78.40.161 dev nmt-br0 proto static scope link" "$(ack_field o-11 status)|$(route_of 10.78.40.161)"

# --- an edge agent: a withdraw names the route it removes --------------------------------
ip -n $NS addr add 10.78.41.1/24 dev nmt-up
cat >$T_TMP/edge.conf <<CONF
[netmigrated]
host = nmt-edge
role = edge
redis = 127.0.0.1:$PORT
lease = 1500ms
order_block = 200ms
CONF
ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/edge.conf >>$T_TMP/edge.log 2>&1 &
EDGE=$!
t_defer "kill $EDGE"
eorder() { rcli XADD pf:host:nmt-edge:orders '*' "$@" >/dev/null; }
eorder id e-1 op announce vm px-9 ips 10.78.40.162 via 10.78.41.11
t_check "edge: route order acknowledged" t_wait 10 has_ack e-1
t_eq "edge: the /32 points at the host" "ok|10.78.40.162 via 10.78.41.11 dev nmt-up proto 77" \
	"$(ack_field e-1 status)|$(route_of 10.78.40.162)"
eorder id e-2 op withdraw vm px-9 ips 10.78.40.162
t_check "edge: withdraw without via acknowledged" t_wait 10 has_ack e-2
t_eq "... refused, the route kept" \
	"error|edge withdraw needs 'via' (the host whose route goes)|10.78.40.162 via 10.78.41.11 dev nmt-up proto 77" \
	"$(ack_field e-2 status)|$(ack_field e-2 error)|$(route_of 10.78.40.162)"
eorder id e-3 op withdraw vm px-9 ips 10.78.40.162 via 10.78.41.12
t_check "edge: withdraw via another host acknowledged" t_wait 10 has_ack e-3
t_eq "... the route via the host it points at is kept" "ok|10.78.40.162 via 10.78.41.11 dev nmt-up proto 77" \
	"$(ack_field e-3 status)|$(route_of 10.78.40.162)"
eorder id e-4 op withdraw vm px-9 ips 10.78.40.162 via 10.78.41.11
t_check "edge: withdraw via that host acknowledged" t_wait 10 has_ack e-4
t_eq "... and that removes it" "ok|" "$(ack_field e-4 status)|$(route_of 10.78.40.162)"
eorder id e-5 op announce vm px-9 ips 10.78.40.162 via 10.78.41.11
eorder id e-6 op unroute vm px-9 ips 10.78.40.162 via 10.78.41.11
eorder id e-7 op unroute vm px-9 ips 10.78.40.162
t_check "edge: unroute orders acknowledged" t_wait 10 has_ack e-7
t_eq "... unroute naming a via is refused (withdraw names one)" \
	"error|unroute takes no 'via' (withdraw names one)" "$(ack_field e-6 status)|$(ack_field e-6 error)"
t_eq "... without: netmigrate's /32 goes, whatever its next hop" "ok|" "$(ack_field e-7 status)|$(route_of 10.78.40.162)"
kill -TERM $EDGE; wait $EDGE; rc=$?
t_eq "edge agent: clean exit" 0 $rc
t_check "edge agent: no sanitizer reports" bash -c "! grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' $T_TMP/edge.log"

agent_stop; rc=$?
t_eq "final SIGTERM: clean exit" 0 $rc
t_check "no sanitizer reports" bash -c "! grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' $LOG"
t_done
