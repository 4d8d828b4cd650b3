#!/usr/bin/env bash
# t_netmigrate_garp.sh: GARP and unsolicited NA bursts from `netmigrate`,
# captured with tshark on a second namespace across a bridge:
#   pf-nmt-gs (sender: bridge nmt-br, port nmt-s0) <-veth-> pf-nmt-gc (nmt-c0)
# Asserts gratuitous flag, MACs, IPs, both ARP forms, the burst count and
# spacing, NA fields (override, hop limit 255, ff02::1, checksum), the
# IFF_NOARP skip, and clear errors for bad input.
. "$(dirname "$0")/lib.sh"
t_need_root
command -v tshark >/dev/null || { t_skip "tshark" "not installed"; t_done; }

NM=$PF_BIN/netmigrate
S=pf-nmt-gs C=pf-nmt-gc
MAC=52:54:00:78:00:01
for ns in $S $C; do ip netns del $ns 2>/dev/null; ip netns add $ns; t_defer "ip netns del $ns"; done
ip -n $S link add nmt-br type bridge
ip -n $S link add nmt-s0 type veth peer name nmt-c0 netns $C
ip -n $S link set nmt-s0 master nmt-br
for d in lo nmt-br nmt-s0; do ip -n $S link set $d up; done
for d in lo nmt-c0; do ip -n $C link set $d up; done
# No IPv6 chatter of our own in the capture.
ip netns exec $C sysctl -qw net.ipv6.conf.all.disable_ipv6=1

# capture FILE: tshark on nmt-c0 in $C, waits until it is capturing.
# tshark prints "Capturing on" before it even starts dumpcap, so that line
# proves nothing; dumpcap writes the file's header (section and interface
# blocks) only once the interface is open and its filter set, and flushes
# it at once: a non-empty file is a capture under way.
cap_pid= cap_file=
capture() {
	cap_file=$1
	ip netns exec $C tshark -n -i nmt-c0 -a duration:120 -w "$1" >"$1.log" 2>&1 &
	cap_pid=$!
	t_defer "kill $cap_pid"
	t_wait 30 test -s "$1" || t_fail "tshark starts capturing" "$(cat "$1.log")"
}
# capture_stop FILTER N: stop once the file holds N frames matching FILTER
# (a stop right after the sender returns could lose frames dumpcap had not
# written yet), or after 20 s; the checks that follow say what was missing.
cap_has() { [ "$(tshark -r "$cap_file" -Y "$1" 2>/dev/null | wc -l)" -ge "$2" ]; }
capture_stop() {
	t_wait 20 cap_has "$1" "$2"
	kill -INT $cap_pid; wait $cap_pid 2>/dev/null
}

# --- GARP: 2 IPs, 3 rounds, both forms = 12 frames -------------------------
capture "$T_TMP/garp.pcap"
out=$($NM -n $S garp -i nmt-br -m $MAC -f both -r 3 -I 100 -S 100 -M 500 10.78.1.150 10.78.1.151 2>&1)
t_match "garp prints what it did and its time" \
	'^garp dev=nmt-br mac=52:54:00:78:00:01 ips=2 rounds=3 frames=12 took_us=[0-9]+ elapsed_ms=[0-9]+$' "$out"
capture_stop arp 12
f=$T_TMP/garp.pcap
n=$(tshark -r $f -Y arp 2>/dev/null | wc -l)
t_eq "12 ARP frames captured (2 IPs x 2 forms x 3 rounds)" 12 "$n"
t_eq "all gratuitous" 12 "$(tshark -r $f -Y 'arp.isgratuitous == 1' 2>/dev/null | wc -l)"
t_eq "6 requests, 6 replies" "6 6" "$(tshark -r $f -Y 'arp.opcode == 1' 2>/dev/null | wc -l) $(tshark -r $f -Y 'arp.opcode == 2' 2>/dev/null | wc -l)"
t_eq "sender MAC is the VM's, in ARP and Ethernet" 12 \
	"$(tshark -r $f -Y "arp.src.hw_mac == $MAC && eth.src == $MAC && eth.dst == ff:ff:ff:ff:ff:ff" 2>/dev/null | wc -l)"
t_eq "sender IP = target IP" 12 \
	"$(tshark -r $f -Y 'arp.src.proto_ipv4 == arp.dst.proto_ipv4' 2>/dev/null | wc -l)"
t_eq "each IP announced 6 times" "6 6" \
	"$(tshark -r $f -Y 'arp.src.proto_ipv4 == 10.78.1.150' 2>/dev/null | wc -l) $(tshark -r $f -Y 'arp.src.proto_ipv4 == 10.78.1.151' 2>/dev/null | wc -l)"
# Rounds at 0, 100, 300 ms (initial 100, step 100): the last frame comes
# ~300 ms after the first.
span=$(tshark -r $f -Y arp -T fields -e frame.time_relative 2>/dev/null | awk 'NR==1{a=$1} {b=$1} END{printf "%d", (b-a)*1000}')
t_le "burst spacing: last round >= 250 ms after the first" 250 "$span"
t_le "burst spacing: last round <= 600 ms after the first" "$span" 600

# --- NA: 1 IPv6, 2 rounds --------------------------------------------------
capture "$T_TMP/na.pcap"
out=$($NM -n $S na -i nmt-br -m $MAC -r 2 -I 50 fd78::150 2>&1)
t_match "na prints what it did" '^na dev=nmt-br .* frames=2 took_us=[0-9]+' "$out"
capture_stop 'icmpv6.type == 136' 2
f=$T_TMP/na.pcap
t_eq "2 NAs captured" 2 "$(tshark -r $f -Y 'icmpv6.type == 136' 2>/dev/null | wc -l)"
t_eq "override set, solicited and router clear" 2 \
	"$(tshark -r $f -Y 'icmpv6.nd.na.flag.o == 1 && icmpv6.nd.na.flag.s == 0 && icmpv6.nd.na.flag.r == 0' 2>/dev/null | wc -l)"
t_eq "to ff02::1 with hop limit 255 from the VM's MAC" 2 \
	"$(tshark -r $f -Y "ipv6.dst == ff02::1 && ipv6.hlim == 255 && eth.src == $MAC && eth.dst == 33:33:00:00:00:01" 2>/dev/null | wc -l)"
t_eq "target and its link-layer option" "fd78::150 $MAC" \
	"$(tshark -r $f -Y 'icmpv6.type == 136' -T fields -e icmpv6.nd.na.target_address -e icmpv6.opt.linkaddr 2>/dev/null | head -1 | tr '\t' ' ')"
# The NAs only: the sender's namespace has IPv6 on its bridge, whose own
# router solicitations and MLD reports may fall into the capture.
t_eq "ICMPv6 checksum verified good by tshark" 2 \
	"$(tshark -r $f -Y 'icmpv6.type == 136 && icmpv6.checksum.status == 1' 2>/dev/null | wc -l)"

# --- IFF_NOARP and bad input -----------------------------------------------
ip -n $S link set nmt-s0 arp off
out=$($NM -n $S garp -i nmt-s0 -m $MAC -r 1 10.78.1.150 2>&1)
t_match "IFF_NOARP interface is skipped" '^garp skipped dev=nmt-s0 reason=IFF_NOARP' "$out"
out=$($NM -n $S garp -i nmt-nope -m $MAC -r 1 10.78.1.150 2>&1); rc=$?
t_eq "unknown interface: exit 1" 1 "$rc"
t_eq "unknown interface: one clear line" "netmigrate: no such device 'nmt-nope'" "$out"
out=$($NM -n $S garp -i nmt-br -m $MAC -r 1 10.78.1.300 2>&1); rc=$?
t_eq "bad IP: clear error" "1 netmigrate: bad IP address '10.78.1.300'" "$rc $out"
out=$($NM -n $S na -i nmt-br -m 52:54:00 fd78::1 2>&1); rc=$?
t_match "bad MAC: clear error" "^netmigrate: bad MAC address '52:54:00'" "$out"
out=$($NM -n $S na -i nmt-br -m $MAC 10.78.1.1 2>&1); rc=$?
t_eq "IPv4 address to na: clear error" "1 netmigrate: '10.78.1.1' is not an IPv6 address" "$rc $out"
ip -n $S link set nmt-br down
out=$($NM -n $S garp -i nmt-br -m $MAC -r 1 10.78.1.150 2>&1)
t_eq "interface down: clear error" "netmigrate: interface 'nmt-br' is down" "$out"
t_done
