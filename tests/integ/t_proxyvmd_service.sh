#!/usr/bin/env bash
# t_proxyvmd_service: the service-IP commands of the admin endpoint (POST
# /service/bind and /service/release, rtnetlink in px_svc.c), the standby
# promotion path of docs/proxyvmd.md: proxyvmd runs in a network namespace
# of its own (pf-pxt-<pid>, a veth pair inside), listening with IP_FREEBIND
# on a service IP the namespace does not hold; curl calls the admin
# endpoint; `ip addr` shows the addresses (IPv4 and IPv6) appear and go, and
# the listener serves exactly while they are bound, with egress leaving from
# the service IP (IP in = IP out); without [admin] token's bearer token (none,
# wrong, a prefix) the POSTs are refused and change nothing. The namespace is
# removed at the end.
. "$(dirname "$0")/lib.sh"
t_need_root

NS=pf-pxt-$$
D=$T_TMP
PX=$PF_BIN/proxyvmd
SVC4=10.99.0.5 SVC6=fd99::5 BACK=10.99.1.1
TOKEN=t0k-$$-svc
in_ns() { ip netns exec "$NS" "$@"; }
# Daemons: nsenter execs the program (ip netns exec forks), so $! is its PID.
in_ns_exec() { exec nsenter --net="/run/netns/$NS" -- "$@"; }	# only with &

ip netns add "$NS" || { t_fail "create namespace $NS"; t_done; }
t_defer "ip netns del $NS"
in_ns ip link set lo up
in_ns ip link add pxsvc0 type veth peer name pxback0
in_ns ip link set pxsvc0 up
in_ns ip link set pxback0 up
in_ns ip addr add "$BACK/24" dev pxback0

# The origin answers with the address the request came from.
cat >"$D/origin.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = ("from " + self.client_address[0] + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
PY
in_ns_exec python3 "$D/origin.py" "$BACK" 8080 >"$D/origin.log" 2>&1 &
t_defer "kill $!"

cat >"$D/px.conf" <<EOF
vm = t-svc
[listener v4]
listen = $SVC4:3128
[listener v6]
listen = [$SVC6]:3128
[egress]
allow = 10.99.0.0/16
[dns]
nameserver = 127.0.0.1
[admin]
listen = 127.0.0.1:9180
token = $TOKEN
[service]
dev = pxsvc0
ips = $SVC4/24, $SVC6/64
EOF
in_ns_exec "$PX" -d -f "$D/px.conf" 2>"$D/px.log" &
PXPID=$!
t_defer "kill -9 $PXPID"
admin() { in_ns curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "$@"; }
anon() { in_ns curl -s --max-time 5 "$@"; }
t_wait 15 admin -f http://127.0.0.1:9180/healthz || t_fail "proxyvmd starts in $NS" "$(cat "$D/px.log")"
t_wait 15 in_ns python3 -c "import socket; socket.create_connection(('$BACK', 8080))"

addrs() { in_ns ip -o addr show dev pxsvc0 | awk '$3 != "inet6" || $4 !~ /^fe80/ {print $4}' | sort | tr '\n' ' '; }
via() {	# via PROXY-IP: what the origin saw, through the listener on PROXY-IP
	in_ns curl -s --max-time 3 -x "http://$1:3128" "http://$BACK:8080/" || echo "no answer"
}

# --- standby: listening, not holding the addresses -------------------------------
t_eq "standby: no service IP on pxsvc0" "" "$(addrs)"
t_match "standby: listeners open on the service IPs (IP_FREEBIND)" "$SVC4:3128.*\[$SVC6\]:3128|\[$SVC6\]:3128.*$SVC4:3128" \
	"$(in_ns ss -ltnH | awk '{print $4}' | tr '\n' ' ')"
t_eq "standby: the IPv4 listener is unreachable" "no answer" "$(via $SVC4)"

# --- the token -------------------------------------------------------------------
t_eq "POST /service/bind without the token: 401" "bearer token required 401" \
	"$(anon -X POST -w ' %{http_code}' http://127.0.0.1:9180/service/bind | tr -d '\n')"
t_eq "... with a wrong one: 401" 401 "$(anon -o /dev/null -w '%{http_code}' -X POST \
	-H "Authorization: Bearer ${TOKEN}x" http://127.0.0.1:9180/service/bind)"
t_eq "... with a prefix of it: 401" 401 "$(anon -o /dev/null -w '%{http_code}' -X POST \
	-H "Authorization: Bearer ${TOKEN%?}" http://127.0.0.1:9180/service/bind)"
t_eq "refused binds bound nothing" "" "$(addrs)"
t_match "the refusal is logged" "service bind refused: no valid admin token" "$(cat "$D/px.log")"
t_eq "GET /healthz needs no token" 200 "$(anon -o /dev/null -w '%{http_code}' http://127.0.0.1:9180/healthz)"

# --- promotion ---------------------------------------------------------------------
t_eq "POST /service/bind: 200 bound" "bound 200" "$(admin -X POST -w ' %{http_code}' http://127.0.0.1:9180/service/bind | tr -d '\n')"
t_eq "both service IPs on pxsvc0" "$SVC4/24 $SVC6/64 " "$(addrs)"
t_match "IPv6 service IP bound without DAD (not tentative)" "$SVC6/64" "$(in_ns ip -6 -o addr show dev pxsvc0 | grep -v tentative)"
t_eq "the IPv4 listener serves at once, egress from the service IP" "from $SVC4" "$(via $SVC4)"
t_eq "POST /service/bind again: idempotent" 200 "$(admin -o /dev/null -X POST -w '%{http_code}' http://127.0.0.1:9180/service/bind)"
t_eq "still exactly the two addresses" "$SVC4/24 $SVC6/64 " "$(addrs)"
t_eq "GET /service/bind: 405" 405 "$(admin -o /dev/null -w '%{http_code}' http://127.0.0.1:9180/service/bind)"
t_match "bind logged with its duration" "service bind dev=pxsvc0 ips=2 took_us=[0-9]+" "$(cat "$D/px.log")"

# --- release (demotion, fencing) ----------------------------------------------------
t_eq "POST /service/release without the token: 401, still bound" "401 $SVC4/24 $SVC6/64 " \
	"$(anon -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:9180/service/release) $(addrs)"
t_eq "POST /service/release: 200 released" "released 200" "$(admin -X POST -w ' %{http_code}' http://127.0.0.1:9180/service/release | tr -d '\n')"
t_eq "service IPs gone from pxsvc0" "" "$(addrs)"
t_eq "the IPv4 listener is unreachable again" "no answer" "$(via $SVC4)"
t_eq "POST /service/release again: idempotent" 200 "$(admin -o /dev/null -X POST -w '%{http_code}' http://127.0.0.1:9180/service/release)"
t_eq "bind after release serves again" "from $SVC4" "$(admin -o /dev/null -X POST http://127.0.0.1:9180/service/bind; via $SVC4)"
admin -o /dev/null -X POST http://127.0.0.1:9180/service/release

# --- a missing interface is an error, named --------------------------------------
in_ns ip link set pxsvc0 name pxgone0
out=$(admin -X POST -w ' %{http_code}' http://127.0.0.1:9180/service/bind | tr -d '\n')
t_eq "bind on a missing dev: 500 naming it" "no interface 'pxsvc0' 500" "$out"
in_ns ip link set pxgone0 name pxsvc0

# --- clean exit ---------------------------------------------------------------------
kill -TERM $PXPID
gone() { ! kill -0 "$1" 2>/dev/null; }
t_wait 30 gone $PXPID || { t_fail "SIGTERM: gone within 30 s (drain_timeout 10 s)"; kill -9 $PXPID; }
wait $PXPID; rc=$?
t_eq "SIGTERM: exit 0" 0 "$rc"
t_no_sanitizer_report "no sanitizer reports" "$D/px.log"
t_done
