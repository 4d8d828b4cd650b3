#!/usr/bin/env bash
# t_heartbeat.sh: the second channel that keeps a Redis outage from fencing
# the fleet. A real fleetd (libvirt's test driver as its host) and a real
# netmigrated in namespace pf-nmt-hb, Redis inside it on its loopback; the
# agent heartbeats to fleetd over UDP (HMAC-signed):
#   - fleetd grants; the agent logs who grants;
#   - Redis stopped (SIGSTOP) for 4 s, longer than the agent's lease: the
#     agent does not fence (its route stays), and takes its lease again;
#   - only the agent cut off from Redis (iptables): fleetd sees the lease
#     gone but holds the failover (the agent still heartbeats), journaled;
#     the agent does not fence either;
#   - a heartbeat signed with another key gets no grant (counted refused);
#   - fleetd gone and Redis stopped: nothing grants, the agent fences
#     after its lease, as without heartbeats.
. "$(dirname "$0")/lib.sh"
t_need_root

NS=pf-nmt-hb PORT=16485 HB=17791 API=18595 H=nmt-h1 TOKEN=hb-$$ KEY=hb-key-$$
ip netns del $NS 2>/dev/null; ip netns add $NS; t_defer "ip netns del $NS"
ip -n $NS link set lo up
ip -n $NS addr add 127.0.0.2/8 dev lo 2>/dev/null
ip -n $NS link add nmt-br0 type bridge; ip -n $NS link set nmt-br0 up

RDIR=$T_TMP/redis
mkdir -p $RDIR
ip netns exec $NS redis-server --port $PORT --bind 127.0.0.1 127.0.0.2 --dir $RDIR --save '' \
	--appendonly no --daemonize yes --pidfile $RDIR/pid --logfile $RDIR/log >/dev/null
rcli() { ip netns exec $NS redis-cli -p $PORT "$@"; }
t_wait 5 rcli ping || { t_fail "redis starts in $NS"; t_done; }
t_defer 'kill -CONT $(cat '$RDIR'/pid); kill $(cat '$RDIR'/pid)'

echo "<node/>" >"$T_TMP/h1.xml"
cat >"$T_TMP/fleetd.conf" <<C
[fleetd]
api_listen = 127.0.0.1:$API
api_token = $TOKEN
redis = 127.0.0.1:$PORT
tick = 200ms
instance = fleetd-hb
leader_lease = 2s

[failover]
heartbeat_listen = 127.0.0.1:$HB
heartbeat_key = $KEY
heartbeat_grant = 2s
stall_grace = 10s

[region eu]
gateway = 10.78.50.1

[host $H]
region = eu
uri = test://$T_TMP/h1.xml
address = 127.0.0.1
C
t_eq "fleetd -n accepts the heartbeat keys" "configuration OK" \
	"$($PF_BIN/fleetd -n -f "$T_TMP/fleetd.conf" 2>&1)"
sed 's/^heartbeat_key = .*//' "$T_TMP/fleetd.conf" >"$T_TMP/nokey.conf"
t_match "heartbeat_listen without a key is refused" "heartbeat_listen needs heartbeat_key" \
	"$($PF_BIN/fleetd -n -f "$T_TMP/nokey.conf" 2>&1)"

agent_conf() { # KEY
	cat <<C
[netmigrated]
host = $H
redis = 127.0.0.2:$PORT
lease = 1500ms
# Orders here are written by hand, not stated by fleetd: convergence (which
# would remove their routes once fleetd marks the hash complete) is off; it
# has its own test (t_netmigrate_converge).
converge = 0
order_block = 200ms
vm_bridge = nmt-br0
controllers = 127.0.0.1:$HB
heartbeat_key = $1
C
}
agent_conf "$KEY" >"$T_TMP/nmd.conf"
printf '[netmigrated]\nhost = x\ncontrollers = 127.0.0.1:%s\n' $HB >"$T_TMP/bad.conf"
t_match "an agent with controllers but no key is refused" "controllers needs heartbeat_key" \
	"$($PF_BIN/netmigrated -n -f "$T_TMP/bad.conf" 2>&1)"

FLOG=$T_TMP/fleetd.log ALOG=$T_TMP/agent.log
ip netns exec $NS $PF_BIN/fleetd -f "$T_TMP/fleetd.conf" >>$FLOG 2>&1 &
FPID=$!
t_defer "kill -9 $FPID"
t_check "fleetd leads" t_wait 10 grep -q "acquired instance=fleetd-hb" $FLOG
ip netns exec $NS $PF_BIN/netmigrated -f "$T_TMP/nmd.conf" >>$ALOG 2>&1 &
APID=$!
t_defer "kill $APID"
t_check "the agent takes its lease" t_wait 10 grep -q "lease acquired host=$H" $ALOG
t_check "the leader grants the agent's heartbeats" \
	t_wait 10 grep -q "heartbeats granted by=fleetd-hb epoch=1 grant_ms=1100" $ALOG
rcli XADD pf:host:$H:orders '*' id hb-1 op prepare vm px-1 ips 10.78.50.10 >/dev/null
t_check "an order is carried out (a route to keep)" \
	t_wait 10 bash -c "ip -n $NS route show 10.78.50.10 | grep -q 'proto 77'"
fences() { grep -c "fence host=$H reason=" $ALOG; }

# --- Redis stalls for longer than the lease -------------------------------------
kill -STOP "$(cat $RDIR/pid)"
t_check "Redis stopped: the lease runs out, the grant holds the fence off" \
	t_wait 10 grep -q "lease not renewed host=$H: not fencing, fleetd-hb's grant" $ALOG
# The stall itself (the fault): 4 s in all, well past the 1.5 s lease.
sleep 3
t_eq "4 s into the stall: no fence, the route is still there" "0|10.78.50.10 dev nmt-br0 proto 77 scope link" \
	"$(fences)|$(ip -n $NS route show 10.78.50.10 | sed 's/ *$//')"
kill -CONT "$(cat $RDIR/pid)"
t_check "Redis back: the agent holds its lease again" \
	t_wait 10 grep -q "lease renewed host=$H: Redis answers again\|lease lapsed in Redis host=$H; fleetd-hb's grant holds" $ALOG
t_check "... and orders run again" t_wait 10 bash -c \
	"ip netns exec $NS redis-cli -p $PORT XADD pf:host:$H:orders '*' id hb-2 op prepare vm px-2 ips 10.78.50.11 >/dev/null; ip -n $NS route show 10.78.50.11 | grep -q 'proto 77'"
t_eq "... never fenced" 0 "$(fences)"

# --- only the agent is cut off from Redis --------------------------------------
ip netns exec $NS iptables -I INPUT -d 127.0.0.2 -p tcp --dport $PORT -j DROP
t_defer "ip netns exec $NS iptables -D INPUT -d 127.0.0.2 -p tcp --dport $PORT -j DROP 2>/dev/null"
t_check "fleetd sees the lease gone and holds the failover: the agent still heartbeats" \
	t_wait 15 grep -q "lease-lost host=$H failover=held why=\"its agent still heartbeats" $FLOG
t_eq "... and the agent, granted, has not fenced" 0 "$(fences)"
ip netns exec $NS iptables -D INPUT -d 127.0.0.2 -p tcp --dport $PORT -j DROP
t_check "the agent's Redis path back: its lease again" \
	t_wait 20 bash -c "[ -n \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:lease)\" ]"

# --- a heartbeat under another key ----------------------------------------------
refused() { ip netns exec $NS curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$API/metrics |
	sed -n 's/^fleetd_heartbeats_total{what="refused"} //p'; }
agent_conf wrong-key | sed "s/^host = .*/host = nmt-h2/" >"$T_TMP/wrong.conf"
ip netns exec $NS $PF_BIN/netmigrated -f "$T_TMP/wrong.conf" >>$T_TMP/wrong.log 2>&1 &
WPID=$!
t_defer "kill $WPID"
some_refused() { [ "$(refused)" -gt 0 ] 2>/dev/null; }
t_check "a heartbeat signed with another key is refused (counted)" t_wait 10 some_refused
t_check "... and gets no grant" bash -c "! grep -q 'heartbeats granted' $T_TMP/wrong.log"
kill $WPID; wait $WPID

# --- nobody grants: fencing as before -----------------------------------------------
kill -9 $FPID; wait $FPID 2>/dev/null
kill -STOP "$(cat $RDIR/pid)"
t_check "fleetd gone, Redis stopped: the agent fences after its lease" \
	t_wait 10 grep -q "fence host=$H reason=\"lease not renewed for 1500 ms" $ALOG
t_eq "... and its routes went" "" "$(ip -n $NS route show proto 77)"
kill -CONT "$(cat $RDIR/pid)"
kill -TERM $APID; wait $APID; rc=$?
t_eq "agent: clean exit" 0 $rc
t_no_sanitizer_report "no sanitizer report" $ALOG $FLOG
t_done
