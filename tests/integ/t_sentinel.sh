#!/usr/bin/env bash
# t_sentinel.sh: every Redis client finds the master through Sentinel and
# follows a failover. In namespace pf-nmt-sn: a Redis master and a replica
# (AUTH on both), three real redis-sentinel processes (AUTH on them too), a
# netmigrated agent and a proxyvmd configured with the sentinels only:
#   both find the master; `SENTINEL FAILOVER` makes the replica the master
#   and both write there (lease renewals, telemetry), with no fence; an order
#   written to the new master is run and acknowledged; with one sentinel
#   stopped a restarted agent still finds the master; a wrong sentinel
#   password is a clear error and the agent keeps running; a configuration
#   with sentinels and no master name is refused.
. "$(dirname "$0")/lib.sh"
t_need_root
command -v redis-sentinel >/dev/null || { t_fail "redis-sentinel is installed (make deps)"; t_done; }

NS=pf-nmt-sn M=16591 R2=16592 S1=26591 S2=26592 S3=26593 H=nmt-sn1
PASS=redis-s3cret SPASS=sentinel-s3cret
ip netns del $NS 2>/dev/null; ip netns add $NS; t_defer "ip netns del $NS"
ip -n $NS link set lo up
ip -n $NS link add nms-br0 type bridge; ip -n $NS link set nms-br0 up
in_ns() { ip netns exec $NS "$@"; }
rc() { local p=$1; shift; in_ns env REDISCLI_AUTH=$PASS redis-cli -p "$p" "$@"; }
sc() { local p=$1; shift; in_ns env REDISCLI_AUTH=$SPASS redis-cli -p "$p" "$@"; }

redis_up() {	# redis_up PORT [replicaof PORT]
	local d=$T_TMP/redis-$1
	mkdir -p "$d"
	in_ns redis-server --port "$1" --bind 127.0.0.1 --dir "$d" --save '' --appendonly no \
		--requirepass $PASS --masterauth $PASS ${2:+--replicaof 127.0.0.1 $3} \
		--daemonize yes --pidfile "$d/pid" --logfile "$d/log" >/dev/null
	t_defer "kill \$(cat $d/pid)"
	t_wait 5 rc "$1" ping
}
sentinel_up() {
	local d=$T_TMP/sentinel-$1
	mkdir -p "$d"
	cat >"$d/sentinel.conf" <<CONF
port $1
bind 127.0.0.1
dir $d
pidfile $d/pid
logfile $d/log
daemonize yes
requirepass $SPASS
sentinel sentinel-pass $SPASS
sentinel monitor pf 127.0.0.1 $M 2
sentinel auth-pass pf $PASS
sentinel down-after-milliseconds pf 1000
sentinel failover-timeout pf 10000
CONF
	in_ns redis-sentinel "$d/sentinel.conf" >/dev/null
	t_defer "kill \$(cat $d/pid)"
	t_wait 5 sc "$1" ping
}
redis_up $M || { t_fail "the master starts"; t_done; }
redis_up $R2 replicaof $M || { t_fail "the replica starts"; t_done; }
t_check "the replica is in sync" t_wait 15 bash -c "ip netns exec $NS env REDISCLI_AUTH=$PASS redis-cli -p $R2 INFO replication | grep -q 'master_link_status:up'"
for s in $S1 $S2 $S3; do sentinel_up $s || t_fail "sentinel $s starts"; done
know_all() { for s in $S1 $S2 $S3; do
	sc $s SENTINEL master pf | paste - - | grep -qP '^num-other-sentinels\t2$' || return 1
	sc $s SENTINEL master pf | paste - - | grep -qP '^num-slaves\t1$' || return 1
done; }
t_check "each sentinel knows the other two and the replica" t_wait 30 know_all
master_port() { sc $S1 SENTINEL get-master-addr-by-name pf | sed -n 2p; }
t_eq "the sentinels name the master" "$M" "$(master_port)"

SENT=127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3
agent_conf() {	# agent_conf FILE SENTINEL_PASSWORD
	cat >"$1" <<CONF
[netmigrated]
host = $H
redis_sentinels = $SENT
redis_master = pf
redis_password = $PASS
sentinel_password = $2
lease = 3s
order_block = 200ms
vm_bridge = nms-br0
CONF
}
agent_conf $T_TMP/nmd.conf $SPASS
t_eq "netmigrated -n takes the sentinel keys" "configuration OK" "$($PF_BIN/netmigrated -f $T_TMP/nmd.conf -n 2>&1)"
printf '[netmigrated]\nhost = x\nredis_sentinels = 127.0.0.1:1\n' >$T_TMP/bad.conf
t_match "sentinels without a master name are refused" "redis_sentinels: sentinels need the master's name" \
	"$($PF_BIN/netmigrated -f $T_TMP/bad.conf -n 2>&1)"

LOG=$T_TMP/agent.log
ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/nmd.conf >>$LOG 2>&1 &
AGENT=$!
t_defer "kill $AGENT"
t_check "the agent finds the master through the sentinels and takes its lease" \
	t_wait 10 bash -c "[ -n \"\$(ip netns exec $NS env REDISCLI_AUTH=$PASS redis-cli -p $M GET pf:host:$H:lease)\" ]"
t_check "... its log names the master's address" grep -q "redis up link=write addr=127.0.0.1:$M" $LOG

cat >$T_TMP/px.conf <<CONF
vm = t-sn
[listener open]
listen = 127.0.0.1:16593
auth = no
[redis]
sentinels = $SENT
master = pf
password = $PASS
sentinel_password = $SPASS
CONF
PXLOG=$T_TMP/px.log
ip netns exec $NS $PF_BIN/proxyvmd -f $T_TMP/px.conf >>$PXLOG 2>&1 &
PXP=$!
t_defer "kill $PXP"
tel_ts() { rc "$1" HGET pf:vm:t-sn:tel ts_ms; }
t_check "proxyvmd finds the master and writes its telemetry there" t_wait 10 bash -c "[ -n \"\$(ip netns exec $NS env REDISCLI_AUTH=$PASS redis-cli -p $M HGET pf:vm:t-sn:tel ts_ms)\" ]"

# --- the failover --------------------------------------------------------------
T0=$(date +%s%3N)
sc $S1 SENTINEL FAILOVER pf >/dev/null
t_check "SENTINEL FAILOVER makes the replica the master" t_wait 20 bash -c "[ \"\$(ip netns exec $NS env REDISCLI_AUTH=$SPASS redis-cli -p $S1 SENTINEL get-master-addr-by-name pf | sed -n 2p)\" = $R2 ]"
t_check "the agent follows: it connects to the new master" t_wait 15 grep -q "redis up link=write addr=127.0.0.1:$R2" $LOG
t_check "... and its orders link too" t_wait 15 grep -q "redis up link=orders addr=127.0.0.1:$R2" $LOG
renewed_after() { local v; v=$(rc $R2 PTTL pf:host:$H:lease); [ "${v:-0}" -gt 2500 ]; }
t_check "its lease is renewed on the new master" t_wait 10 renewed_after
t_diag "agent: $(grep -c 'redis down' $LOG) link losses, reconnected $(( $(date +%s%3N) - T0 )) ms after the failover was asked for at most"
tel_after() { local v; v=$(tel_ts $R2); [ "${v:-0}" -gt "$T0" ]; }
t_check "proxyvmd follows: telemetry written on the new master after the failover" t_wait 15 tel_after
t_check "... its log names it" grep -q "redis up vm=t-sn addr=127.0.0.1:$R2" $PXLOG
t_check "no fence during the failover" bash -c "! grep -q 'fence host=$H reason=' $LOG"
rc $R2 XADD pf:host:$H:orders '*' id sn-1 op prepare vm v1 ips 10.66.1.1 dev nms-br0 >/dev/null
acked() { rc $R2 XRANGE pf:acks - + | grep -q sn-1; }
t_check "an order written to the new master is run and acknowledged" t_wait 10 acked

# --- one sentinel down, a restart ---------------------------------------------------
kill "$(cat $T_TMP/sentinel-$S1/pid)"
kill -TERM $AGENT; wait $AGENT
ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/nmd.conf >>$LOG 2>&1 &
AGENT=$!
t_defer "kill $AGENT"
n=$(grep -c "lease acquired host=$H" $LOG)
t_check "with the first sentinel gone, a restarted agent asks the next and gets its lease" \
	t_wait 15 bash -c "[ \$(grep -c 'lease acquired host=$H' $LOG) -gt $n ]"

# --- a wrong sentinel password ----------------------------------------------------------
agent_conf $T_TMP/bad-pass.conf wrong
sed -i "s/^host = .*/host = nmt-sn2/" $T_TMP/bad-pass.conf
BLOG=$T_TMP/bad.log
ip netns exec $NS $PF_BIN/netmigrated -f $T_TMP/bad-pass.conf >>$BLOG 2>&1 &
BAD=$!
t_defer "kill $BAD"
t_check "a wrong sentinel password is a clear error" t_wait 10 grep -q "no sentinel gave the master 'pf'" $BLOG
t_match "... naming a sentinel's answer" "WRONGPASS|NOAUTH|invalid password" "$(grep "no sentinel gave" $BLOG | head -1)"
t_check "... and the agent keeps running" kill -0 $BAD

kill -TERM $AGENT; wait $AGENT; r1=$?
kill -TERM $BAD; wait $BAD; r2=$?
kill -TERM $PXP; wait $PXP; r3=$?
t_eq "agents and proxyvmd exit 0 on SIGTERM" "0 0 0" "$r1 $r2 $r3"
t_no_sanitizer_report "no sanitizer reports" $LOG $BLOG $PXLOG
t_done
