#!/usr/bin/env bash
# t_netmigrate_route.sh: cross-region re-pointing with `netmigrate handover`.
#
#   client pf-nmt-rc 10.78.10.2 --- edge pf-nmt-rr 10.78.10.1 | 10.78.20.1 (bridge)
#                                        /                         \
#                 host A pf-nmt-ra 10.78.20.11          host B pf-nmt-rb 10.78.20.12
#                   br0 -- VM copy pf-nmt-va              br0 -- VM copy pf-nmt-vb
#                   (10.78.30.150, gw 10.78.30.1)         (same IP, same MAC)
#
# The service IP lives in neither host's subnet: it is reachable only through
# the /32 routes the handover installs (edge: via the host; host: dev br0 plus
# a neighbour entry; a proxy entry for the VM's gateway). Pings from the
# client must reach the VM copy behind A before, behind B after.
. "$(dirname "$0")/lib.sh"
t_need_root

NM=$PF_BIN/netmigrate
C=pf-nmt-rc R=pf-nmt-rr A=pf-nmt-ra B=pf-nmt-rb VA=pf-nmt-va VB=pf-nmt-vb
IP=10.78.30.150 MAC=52:54:00:78:30:01
for ns in $C $R $A $B $VA $VB; do
	ip netns del $ns 2>/dev/null; ip netns add $ns; t_defer "ip netns del $ns"
	ip -n $ns link set lo up
done
# client <-> edge
ip -n $C link add nmt-c type veth peer name nmt-rc netns $R
ip -n $C addr add 10.78.10.2/24 dev nmt-c; ip -n $C link set nmt-c up
ip -n $C route add default via 10.78.10.1
ip -n $R addr add 10.78.10.1/24 dev nmt-rc; ip -n $R link set nmt-rc up
ip -n $R link add nmt-hbr type bridge; ip -n $R addr add 10.78.20.1/24 dev nmt-hbr
ip -n $R link set nmt-hbr up
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
# hosts and their VM copies
host() { # NS VMNS LAST-OCTET PORT
	ip -n $R link add $4 type veth peer name nmt-up netns $1
	ip -n $R link set $4 master nmt-hbr; ip -n $R link set $4 up
	ip -n $1 addr add 10.78.20.$3/24 dev nmt-up; ip -n $1 link set nmt-up up
	ip -n $1 route add default via 10.78.20.1
	ip -n $1 link add nmt-br0 type bridge; ip -n $1 link set nmt-br0 up
	ip -n $1 link add nmt-vif type veth peer name nmt-eth0 netns $2
	ip -n $1 link set nmt-vif master nmt-br0; ip -n $1 link set nmt-vif up
	ip netns exec $1 sysctl -qw net.ipv4.ip_forward=1
	ip -n $2 link set nmt-eth0 address $MAC; ip -n $2 link set nmt-eth0 up
	ip -n $2 addr add $IP/24 dev nmt-eth0; ip -n $2 route add default via 10.78.30.1
}
host $A $VA 11 nmt-ra
host $B $VB 12 nmt-rb

echos() { ip netns exec "$1" awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }' /proc/net/snmp; }
ping_ok() { ip netns exec $C ping -n -q -c 3 -i 0.2 -W 1 $IP >/dev/null; }

t_check "no route to $IP before any handover" bash -c "! ip netns exec $C ping -n -q -c 1 -W 1 $IP"

# --- first placement: on host A ---------------------------------------------
out=$($NM handover --ips $IP --mac $MAC --dst-ns $A --dst-dev nmt-br0 --gw 10.78.30.1 \
	--edge-ns $R --via 10.78.20.11 -r 1 2>&1)
t_match "handover to A reports each step" 'handover prepare ns=pf-nmt-ra objects=3 .*handover point ns=pf-nmt-rr objects=1 .*handover done ips=1' "$(echo $out)"
t_eq "edge route via A" "$IP via 10.78.20.11 dev nmt-hbr proto 77" "$(ip -n $R route show $IP | sed 's/ *$//')"
t_eq "A routes the IP to its VM bridge" "$IP dev nmt-br0 proto 77 scope link" "$(ip -n $A route show $IP | sed 's/ *$//')"
t_match "A has the VM's neighbour entry" "lladdr $MAC PERMANENT" "$(ip -n $A neigh show $IP dev nmt-br0)"
t_match "A answers for the VM's gateway" "10.78.30.1 dev nmt-br0 proxy" "$(ip -n $A neigh show proxy)"
a0=$(echos $VA) b0=$(echos $VB)
t_check "client pings the service IP (through A)" ping_ok
a1=$(echos $VA) b1=$(echos $VB)
t_le "the VM copy behind A answered" 3 $((a1 - a0))
t_eq "the copy behind B saw nothing" 0 $((b1 - b0))

# --- handover A -> B --------------------------------------------------------
out=$($NM handover --ips $IP --mac $MAC --dst-ns $B --dst-dev nmt-br0 --gw 10.78.30.1 \
	--edge-ns $R --via 10.78.20.12 --src-ns $A --src-dev nmt-br0 -r 2 -I 50 2>&1)
rc=$?
t_eq "handover A -> B exits 0" 0 "$rc"
while IFS= read -r l; do t_diag "$l"; done <<<"$out"
cut=$(echo "$out" | sed -n 's/.*cutover_us=\([0-9]*\).*/\1/p')
t_diag "handover A -> B: cutover (edge re-point + first announcement) took ${cut} us"
t_le "cutover under 10 ms of work" "${cut:-999999}" 10000
t_eq "edge route now via B" "$IP via 10.78.20.12 dev nmt-hbr proto 77" "$(ip -n $R route show $IP | sed 's/ *$//')"
t_eq "A withdrew its route" "" "$(ip -n $A route show $IP)"
t_eq "A withdrew its neighbour entry" "" "$(ip -n $A neigh show $IP dev nmt-br0 | grep PERMANENT)"
t_eq "B routes the IP to its VM bridge" "$IP dev nmt-br0 proto 77 scope link" "$(ip -n $B route show $IP | sed 's/ *$//')"
a0=$(echos $VA) b0=$(echos $VB)
t0=$(date +%s%N)
t_check "client pings the service IP (through B)" ping_ok
t_diag "first ping round after handover: $((($(date +%s%N) - t0) / 1000000)) ms for 3 echoes"
a1=$(echos $VA) b1=$(echos $VB)
t_le "the VM copy behind B answered" 3 $((b1 - b0))
t_eq "the copy behind A saw nothing" 0 $((a1 - a0))

# --- idempotence and errors -------------------------------------------------
out=$($NM handover --ips $IP --mac $MAC --dst-ns $B --dst-dev nmt-br0 --gw 10.78.30.1 \
	--edge-ns $R --via 10.78.20.12 --src-ns $A --src-dev nmt-br0 -r 1 2>&1)
t_match "the same handover again succeeds (idempotent)" "handover withdraw ns=pf-nmt-ra objects=0" "$(echo $out)"
out=$($NM -n $R route del $IP via 10.78.20.11 2>&1)
t_match "deleting a route through the old host leaves the new one" "route absent" "$out"
t_eq "... and the route via B stays" "$IP via 10.78.20.12 dev nmt-hbr proto 77" "$(ip -n $R route show $IP | sed 's/ *$//')"
out=$($NM handover --ips $IP --edge-ns $R --via 10.78.99.1 2>&1); rc=$?
t_match "unreachable next hop: clear error" "^netmigrate: set route $IP/32 via 10.78.99.1: .*(gateway|unreachable)" "$out"
out=$($NM handover --ips $IP --dst-ns $B --dst-dev nmt-nope 2>&1)
t_eq "unknown device: clear error" "netmigrate: set route $IP/32 dev nmt-nope: no such device 'nmt-nope'" "$out"
out=$($NM handover --ips $IP --dst-ns pf-nmt-none --dst-dev nmt-br0 2>&1)
t_eq "unknown namespace: clear error" "netmigrate: no such network namespace 'pf-nmt-none'" "$out"
out=$($NM -n $R route set 10.78.30.1/24 dev nmt-hbr 2>&1)
t_eq "not a host route: refused" "netmigrate: '10.78.30.1/24': only host routes (/32, /128)" "$out"
t_eq "nothing changed by the failures" "$IP via 10.78.20.12 dev nmt-hbr proto 77" "$(ip -n $R route show $IP | sed 's/ *$//')"
t_done
