#!/usr/bin/env bash
# t_netmigrate_converge.sh: netmigrated keeps the kernel at the desired state
# fleetd states in pf:host:<host>:net, against a real Redis, in namespace
# pf-nmt-cv (Redis inside it, on its loopback), with a veth standing in for a
# VM's bridge port:
#   a statement written only to the hash (its order lost) is applied; a route
#   or a neighbour entry changed by hand comes back (netlink events); a
#   fenced port brought up by hand goes down again; a stray route of ours
#   stays while the hash has no marker and goes once it has one; an order
#   older than the held statement is superseded; of two VMs' statements for
#   one IP the newest decides; after a lapse a down port
#   comes up only for a statement of the new lease generation; a restarted
#   agent restores from the hash alone; Redis flushed: nothing is deleted.
. "$(dirname "$0")/lib.sh"
t_need_root

NS=pf-nmt-cv PORT=16482 H=nmt-cv1 MAC=52:54:00:78:50:01 IP=10.66.0.1
ip netns del $NS 2>/dev/null; ip netns add $NS; t_defer "ip netns del $NS"
ip -n $NS link set lo up
ip -n $NS link add nmc-br0 type bridge; ip -n $NS link set nmc-br0 up
# The "VM": a veth whose bridge end carries the guest's MAC with 0xfe first,
# as libvirt's taps do.
ip -n $NS link add nmc-vm1 address fe:54:00:78:50:01 type veth peer name nmc-guest
ip -n $NS link set nmc-vm1 master nmc-br0 up; ip -n $NS link set nmc-guest up

RDIR=$T_TMP/redis
mkdir -p $RDIR
rcli() { ip netns exec $NS redis-cli -p $PORT "$@"; }
ip netns exec $NS redis-server --port $PORT --bind 127.0.0.1 --dir $RDIR --save '' \
	--appendonly no --daemonize yes --pidfile $RDIR/pid --logfile $RDIR/log >/dev/null
t_defer 'kill $(cat '$RDIR'/pid)'
t_wait 5 rcli ping || { t_fail "redis starts in $NS"; t_done; }

cat >$T_TMP/nmd.conf <<CONF
[netmigrated]
host = $H
redis = 127.0.0.1:$PORT
lease = 1500ms
order_block = 200ms
converge = 300ms
vm_bridge = nmc-br0
[announce]
initial = 50ms
rounds = 2
CONF
LOG=$T_TMP/agent.log
AGENT=
agent_start() {
	ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/nmd.conf >>$LOG 2>&1 &
	AGENT=$!
	t_defer "kill $AGENT"
}
route_of() { ip -n $NS route show "$1" proto 77 | sed 's/ *$//'; }
neigh_of() { ip -n $NS neigh show "$1" dev nmc-br0 | sed 's/ *$//'; }
port_up() { ip -n $NS link show nmc-vm1 | grep -q '<[^>]*,UP[,>]'; }
port_down() { ! port_up; }
has_route() { [ -n "$(route_of "$1")" ]; }
no_route() { [ -z "$(route_of "$1")" ]; }
# stmt SEQ OP [GEN]: the statement fleetd would write for the VM (epoch 1).
stmt() { rcli HSET pf:host:$H:net vm1 "op=$2 ips=$IP mac=$MAC dev=nmc-br0 epoch=1 seq=$1 gen=${3:-0}" >/dev/null; }
mark() { rcli HSET pf:host:$H:net _ "1.$1" >/dev/null; }
gen_now() { rcli GET pf:host:$H:gen; }

t_eq "converge is a configuration key" "configuration OK" "$($PF_BIN/netmigrated -f $T_TMP/nmd.conf -n 2>&1)"
agent_start
t_check "agent takes the lease" t_wait 10 bash -c "[ -n \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:lease)\" ]"
t_check "the lease script counts a generation" t_wait 5 bash -c "[ \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:gen)\" -ge 1 ]"
G=$(gen_now)

# --- a lost order: the statement alone -----------------------------------------
stmt 5 announce "$G"
t_check "a statement with no order behind it is applied (route)" t_wait 5 has_route $IP
t_match "... the route is IP/32 dev bridge, protocol 77" "^$IP dev nmc-br0 .*scope link" "$(route_of $IP)"
t_check "... and the neighbour entry IP -> the VM's MAC" t_wait 5 bash -c "ip -n $NS neigh show $IP dev nmc-br0 | grep -q '$MAC PERMANENT'"
t_check "the agent logged the repair" grep -q "converge host=$H why=.* routes_set=1" $LOG

# --- changed by hand ---------------------------------------------------------------
ip -n $NS route del $IP/32 proto 77
t0=$(date +%s%3N)
t_check "a route deleted by hand comes back" t_wait 5 has_route $IP
t_diag "back after $(($(date +%s%3N) - t0)) ms (converge interval 300 ms; netlink events wake it sooner)"
t_check "... woken by netlink, not only the interval" grep -q "converge host=$H why=netlink" $LOG
ip -n $NS neigh replace $IP lladdr 52:54:00:00:00:99 dev nmc-br0 nud permanent
t_check "a neighbour entry changed by hand gets the VM's MAC back" \
	t_wait 5 bash -c "ip -n $NS neigh show $IP dev nmc-br0 | grep -q '$MAC PERMANENT'"

# --- authority: the marker ------------------------------------------------------------
ip -n $NS route add 10.66.0.9/32 dev nmc-br0 proto 77
# A round has run since the stray route came when the stated route, deleted
# after it, is back.
ip -n $NS route del $IP/32 proto 77
t_check "(a convergence round ran)" t_wait 5 has_route $IP
t_check "a stray route of ours stays while the hash has no marker" has_route 10.66.0.9
mark 5
t_check "with the marker (hash complete) the stray route goes" t_wait 5 no_route 10.66.0.9
t_check "... the stated one stays" has_route $IP
t_check "the agent says the hash is authoritative" t_wait 5 grep -q "statements pf:host:$H:net=1 authoritative=yes" $LOG

# --- an order older than the held statement ------------------------------------------------
rcli XADD pf:host:$H:orders '*' id old-1 op withdraw vm vm1 ips $IP mac $MAC epoch 1 seq 4 >/dev/null
t_check "an order older than the held statement is superseded" \
	t_wait 5 bash -c "ip netns exec $NS redis-cli -p $PORT XRANGE pf:acks - + | grep -q superseded"
t_check "... and not run (the route stays)" has_route $IP

# --- two VMs' statements for one IP: the newest decides -------------------------------------
rcli HSET pf:host:$H:net vm2 "op=withdraw ips=$IP mac=52:54:00:78:50:02 dev=nmc-br0 epoch=1 seq=6" >/dev/null
mark 6
t_check "a newer statement of another VM for the same IP (withdraw) wins: the route goes" t_wait 5 no_route $IP
rcli HDEL pf:host:$H:net vm2 >/dev/null
mark 7
t_check "that statement pruned, the older one for the IP applies again" t_wait 5 has_route $IP

# --- fence by statement, lifted by hand ----------------------------------------------------
stmt 8 fence "$G"; mark 8
t_check "a fence statement takes the VM's port down" t_wait 5 port_down
t_check "... and its routes go" t_wait 5 no_route $IP
ip -n $NS link set nmc-vm1 up
t_check "a fenced port brought up by hand goes down again" t_wait 5 bash -c "sleep 0.1; ! ip -n $NS link show nmc-vm1 | grep -q ',UP'"

# --- after a lapse: the generation ----------------------------------------------------------
old=$G
rcli DEL pf:host:$H:lease >/dev/null   # the key lapses: the agent takes it again, a new generation
t_check "a lapsed lease is taken again with a new generation" t_wait 5 bash -c "[ \"\$(ip netns exec $NS redis-cli -p $PORT GET pf:host:$H:gen)\" -gt $old ]"
G=$(gen_now)
stmt 9 announce "$old"; mark 9
t_check "an announce planned before the lapse leaves the down port held" \
	t_wait 5 grep -q "converge vm=vm1 held: its port nmc-vm1 is down" $LOG
t_check "... still down" port_down
t_check "... nothing routed for it" no_route $IP
stmt 10 announce "$G"; mark 10
t_check "the same statement for the new generation brings the port up" t_wait 5 port_up
t_check "... and its route back" t_wait 5 has_route $IP

# --- restart: the hash alone restores -------------------------------------------------------
kill -9 $AGENT; wait $AGENT 2>/dev/null
ip -n $NS route del $IP/32 proto 77
agent_start
t_check "a restarted agent restores the route from the hash, no order sent" t_wait 10 has_route $IP

# --- Redis forgets ---------------------------------------------------------------------------
# (FLUSHALL takes the lease too: with no controller's grant here, the agent
# fences and takes it again; what follows is after that.)
n=$(grep -c "authoritative=no (no marker" $LOG)
rcli FLUSHALL >/dev/null
t_check "after FLUSHALL the agent says the hash has no marker" \
	t_wait 10 bash -c "[ \$(grep -c 'authoritative=no (no marker' $LOG) -gt $n ]"
t_check "the held statement restores the route the fence flushed" t_wait 5 has_route $IP
ip -n $NS route add 10.66.0.9/32 dev nmc-br0 proto 77
ip -n $NS route del $IP/32 proto 77
t_check "... and a route deleted by hand" t_wait 5 has_route $IP
t_check "nothing is deleted on the strength of an empty hash" has_route 10.66.0.9
t_check "agent still running" kill -0 $AGENT

kill -TERM $AGENT; wait $AGENT; rc=$?
t_eq "SIGTERM exits 0" 0 $rc

# --- the edge: "withdraw via X" undoes a route via X only --------------------------
# (The host agent is stopped: one agent per namespace's routing table.)
E=nmt-cv-edge EIP=10.66.1.7 A=10.66.9.1 B=10.66.9.2
ip -n $NS addr add 10.66.9.254/24 dev nmc-br0
sed -e "s/^host = .*/host = $E/" -e "s/^vm_bridge = .*/role = edge/" $T_TMP/nmd.conf >$T_TMP/edge.conf
ELOG=$T_TMP/edge.log
edge_start() {
	ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/edge.conf >>$ELOG 2>&1 &
	EDGE=$!
	t_defer "kill $EDGE"
}
via_is() { ip -n $NS route show $EIP proto 77 | grep -q "via $1"; }
rcli HSET pf:host:$E:net va "op=announce ips=$EIP via=$B epoch=2 seq=30" _ "2.30" >/dev/null
edge_start
t_check "edge: the statement routes the IP via B" t_wait 10 via_is $B
kill -TERM $EDGE; wait $EDGE
# While the agent is down, fleetd cleans up where the VM was (via A).
rcli XADD pf:host:$E:orders '*' id e-31 op withdraw vm va ips $EIP via $A epoch 2 seq 31 >/dev/null
edge_start
t_check "a restarted edge agent runs the withdraw via A" t_wait 10 bash -c "ip netns exec $NS redis-cli -p $PORT XRANGE pf:acks - + | grep -q e-31"
ip -n $NS route del $EIP/32 proto 77
t_check "... and still routes the IP via B (a withdraw via A is not 'unrouted')" t_wait 5 via_is $B
rcli HSET pf:host:$E:net vb "op=withdraw ips=$EIP via=$A epoch=2 seq=32" _ "2.32" >/dev/null
ip -n $NS route del $EIP/32 proto 77
t_check "another VM's newer 'withdraw via A' leaves the route via B" t_wait 5 via_is $B
rcli HSET pf:host:$E:net vb "op=unroute ips=$EIP epoch=2 seq=33" _ "2.33" >/dev/null
t_check "another VM's newer 'unroute' (a promoted standby at home) clears it" \
	t_wait 5 bash -c "[ -z \"\$(ip -n $NS route show $EIP proto 77)\" ]"
kill -TERM $EDGE; wait $EDGE; rc=$?
t_eq "edge agent: SIGTERM exits 0" 0 $rc
t_no_sanitizer_report "no sanitizer reports" $LOG $ELOG
t_done
