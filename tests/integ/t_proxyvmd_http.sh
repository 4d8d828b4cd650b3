#!/usr/bin/env bash
# t_proxyvmd_http: proxyvmd's HTTP side with real clients: curl forward
# requests (Content-Length, chunked, uploads, keep-alive reuse), CONNECT to
# an openssl TLS server, Basic auth (407), the SSRF guard (403), bad input
# (malformed line, oversized head, a slow client), counters in Redis,
# SIGHUP reload (good and bad), -n, and SIGTERM drain with a clean exit
# (no leak reports under SANITIZE=1).
. "$(dirname "$0")/lib.sh"

base=$((20000 + ($$ % 400) * 10))
P_HTTP=$base P_AUTH=$((base + 1)) P_ADMIN=$((base + 2)) P_BACK=$((base + 3))
P_TLS=$((base + 4)) P_REDIS=$((base + 5)) P_NEW=$((base + 6)) P_FLAKY=$((base + 7))
D=$T_TMP
PX=$PF_BIN/proxyvmd

# A small HTTP/1.1 keep-alive backend: /small, /chunked, /big, POST echoes
# the body length it read (by Content-Length or chunked); /held sends 1 MiB
# of a 4 MiB body, then the rest once the test writes to the FIFO argv[2].
cat >"$D/backend.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/held":
            body = b"x" * (4 << 20)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:1 << 20]); self.wfile.flush()
            with open(sys.argv[2]) as f: f.read()
            self.wfile.write(body[1 << 20:])
            return
        if self.path == "/big":
            body = b"x" * (4 << 20)
        else:
            body = b"small:" + self.headers.get("Host", "-").encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Conn-Seen", self.headers.get("Connection", "-"))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        n = 0
        if self.headers.get("Transfer-Encoding", "") == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""): pass
                    break
                n += len(self.rfile.read(size)); self.rfile.readline()
        else:
            n = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        body = b"got %d\n" % n
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
mkfifo "$D/release"
python3 "$D/backend.py" "$P_BACK" "$D/release" >"$D/backend.log" 2>&1 &
t_defer "kill $!"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/key.pem" -out "$D/cert.pem" \
	-days 1 -subj /CN=localhost >/dev/null 2>&1
openssl s_server -accept "$P_TLS" -cert "$D/cert.pem" -key "$D/key.pem" -www -quiet \
	>/dev/null 2>&1 &
t_defer "kill $!"
t_redis_start "$P_REDIS"

HASH=$(printf 'wonderland\n' | "$PX" -H)
t_match "proxyvmd -H prints a SHA-512 crypt hash" '^\$6\$' "$HASH"
# A deliberately slow hash (10^6 rounds, ~0.2 s a check): guessing its
# password would stall the loop for seconds if crypt(3) ran there.
SLOWHASH=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("slowpoke", "$6$rounds=1000000$pxtestsalt$"))')

write_conf() {	# write_conf FILE [EXTRA LISTENER]
	cat >"$1" <<EOF2
vm = t-http
[limits]
header_max = 8k
header_timeout = 2s
idle_timeout = 10s
connect_timeout = 3s
drain_timeout = 5s
[listener open]
listen = 127.0.0.1:$P_HTTP
auth = no
[listener auth]
listen = 127.0.0.1:$P_AUTH
auth = yes
[egress]
allow = 127.0.0.0/8
[admin]
listen = 127.0.0.1:$P_ADMIN
[redis]
address = 127.0.0.1:$P_REDIS
[user alice]
password = $HASH
[user slow]
password = $SLOWHASH
EOF2
	[ -n "${2:-}" ] && printf '[listener extra]\nlisten = 127.0.0.1:%s\nauth = no\n' "$2" >>"$1"
	return 0
}
write_conf "$D/px.conf"

# -n: a good file, a bad one (exit 2, one line naming file:line).
out=$("$PX" -n -f "$D/px.conf" 2>&1); rc=$?
t_eq "-n accepts a good config" "0 configuration OK" "$rc $out"
printf 'vm = x\n[listener a]\nlisten = 127.0.0.1:1\nlisen = oops\n' >"$D/bad.conf"
out=$("$PX" -n -f "$D/bad.conf" 2>&1); rc=$?
t_eq "-n refuses a bad config with exit 2" 2 "$rc"
t_eq "the error is one line with file:line" "$D/bad.conf:4: unknown key 'lisen' in section [listener a]" "$out"
printf 'vm = x\nlog_level = loud\n[listener a]\nlisten = 127.0.0.1:1\n' >"$D/bad3.conf"
out=$("$PX" -n -f "$D/bad3.conf" 2>&1); rc=$?
t_eq "an unknown log_level is a config error too" "2 $D/bad3.conf:2: bad log_level 'loud' (debug, info, warn, error)" "$rc $out"
printf 'vm = x\n[listener a]\nlisten = 999.0.0.1:80\n' >"$D/bad2.conf"
out=$("$PX" -n -f "$D/bad2.conf" 2>&1)
t_match "a bad listen address names its line" "bad2.conf:3: bad address" "$out"

"$PX" -d -f "$D/px.conf" 2>"$D/px.log" &
PXPID=$!
t_defer "kill -9 $PXPID"
t_wait 15 curl -sf "http://127.0.0.1:$P_ADMIN/healthz" || t_fail "proxyvmd starts" "$(cat "$D/px.log")"
t_wait 15 python3 -c "import socket; socket.create_connection(('127.0.0.1', $P_BACK))"

X="-sS --max-time 10 -x http://127.0.0.1:$P_HTTP"
tel() { redis-cli -p "$P_REDIS" hget pf:vm:t-http:tel "$1"; }
alive() { [ -n "$(redis-cli -p "$P_REDIS" get pf:vm:t-http:alive)" ]; }
# tel_fresh: wait for the first telemetry write stamped (ts_ms) after this
# call. proxyvmd writes its counters once a second (a tick of its loop) and
# counts each request, refusal and byte in the loop turn that answers or
# moves it, so that write holds everything the clients that already ended
# were counted for.
tel_after() { [ "$(tel ts_ms)" -gt "$1" ] 2>/dev/null; }
tel_fresh() {
	local now; now=$(date +%s%3N)
	t_wait 15 tel_after "$now" || t_fail "a telemetry write after $now" "ts_ms=$(tel ts_ms)"
}
gone() { ! kill -0 "$1" 2>/dev/null; }
if t_wait 15 alive; then t_ok "alive key appears"; else t_fail "alive key appears"; fi
t_match "alive key has a TTL" '^[1-3][0-9]{3}$|^[0-9]{1,3}$' "$(redis-cli -p "$P_REDIS" pttl pf:vm:t-http:alive)"
req0=$(tel requests)

# --- forward proxying ------------------------------------------------------
t_eq "GET with Content-Length" "small:127.0.0.1:$P_BACK" "$(curl $X "http://127.0.0.1:$P_BACK/small")"
t_eq "GET by name (evdns, /etc/hosts)" "small:localhost:$P_BACK" "$(curl $X "http://localhost:$P_BACK/small")"
t_eq "chunked response streamed" "hello chunked world" "$(curl $X "http://127.0.0.1:$P_BACK/chunked")"
t_eq "4 MiB response intact" 4194304 "$(curl $X "http://127.0.0.1:$P_BACK/big" | wc -c)"
head -c 300000 /dev/urandom >"$D/up.bin"
t_eq "POST with Content-Length" "got 300000" "$(curl $X --data-binary @"$D/up.bin" "http://127.0.0.1:$P_BACK/post")"
t_eq "POST chunked" "got 300000" "$(curl $X -H 'Transfer-Encoding: chunked' --data-binary @"$D/up.bin" "http://127.0.0.1:$P_BACK/post")"
out=$(curl $X -v "http://127.0.0.1:$P_BACK/small" "http://127.0.0.1:$P_BACK/chunked" 2>&1)
t_match "client keep-alive: second request reuses the connection" "Re-using existing connection" "$out"
hdrs=$(curl $X -D - -o /dev/null -H 'Connection: X-Secret' -H 'X-Secret: 1' -H 'Proxy-Connection: keep-alive' "http://127.0.0.1:$P_BACK/small")
t_match "Connection field not forwarded (backend saw none)" "X-Conn-Seen: -" "$hdrs"
tel_fresh
t_eq "nine requests counted in Redis" 9 "$(( $(tel requests) - req0 ))"

# --- a kept-alive upstream closing under a request ------------------------------
# This origin answers the first request of each connection, keep-alive, and
# closes the connection when the second one arrives, without answering (an
# origin's idle timeout racing the request).
cat >"$D/flaky.py" <<'PY'
import socket, sys, threading
n = 0
def head(c):
    b = b""
    while b"\r\n\r\n" not in b:
        d = c.recv(65536)
        if not d: return None
        b += d
    return b
def serve(c, k):
    if head(c) is None: return
    body = b"conn %d req 1\n" % k
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    head(c)
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept(); n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
PY
python3 "$D/flaky.py" "$P_FLAKY" >"$D/flaky.log" 2>&1 &
t_defer "kill $!"
t_wait 15 python3 -c "import socket; socket.create_connection(('127.0.0.1', $P_FLAKY))"
F="http://127.0.0.1:$P_FLAKY"
out=$(curl $X "$F/a" "$F/b" 2>&1 | tr '\n' ' ')
t_match "GET on a reused upstream that closes: retried on a fresh one" "^conn [0-9]+ req 1 conn [0-9]+ req 1 $" "$out"
t_match "the retry is logged" "upstream retry .*dest=127.0.0.1:$P_FLAKY" "$(cat "$D/px.log")"
out=$(curl -s -o /dev/null -w '%{http_code} ' --max-time 10 -x "http://127.0.0.1:$P_HTTP" "$F/a" \
	--next -s -o /dev/null -w '%{http_code}' --max-time 10 -x "http://127.0.0.1:$P_HTTP" --data x "$F/b")
t_eq "POST on a reused upstream that closes: not retried (502)" "200 502" "$out"

# --- CONNECT -----------------------------------------------------------------
out=$(curl $X -k "https://127.0.0.1:$P_TLS/" 2>&1)
t_match "CONNECT to a local TLS server" "s_server|Ciphers|TLS" "$out"
out=$(curl $X -k -v "https://localhost:$P_TLS/" 2>&1)
t_match "CONNECT by name answered 200" "HTTP/1.1 200 Connection established" "$out"

# --- SSRF guard ----------------------------------------------------------------
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
den0=$(tel err_denied)
t_eq "RFC 1918 destination refused (403)" 403 "$(code -x "http://127.0.0.1:$P_HTTP" http://10.1.2.3/)"
t_eq "metadata address refused (403)" 403 "$(code -x "http://127.0.0.1:$P_HTTP" http://169.254.169.254/latest/meta-data/)"
t_eq "CONNECT to a private address refused (403)" 403 "$(curl -s -o /dev/null -w '%{http_connect}' --max-time 10 -p -x "http://127.0.0.1:$P_HTTP" http://192.168.1.1:443/)"
t_eq "IPv6 loopback refused (not allow-listed)" 403 "$(code -x "http://127.0.0.1:$P_HTTP" "http://[::1]:$P_BACK/")"
t_eq "https URIs need CONNECT (400)" 400 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --proxy-insecure -x "http://127.0.0.1:$P_HTTP" --request-target https://x/ http://127.0.0.1:$P_BACK/)"
t_eq "nothing listening: 502" 502 "$(code -x "http://127.0.0.1:$P_HTTP" http://127.0.0.1:1/)"

# --- authentication ----------------------------------------------------------
A="http://127.0.0.1:$P_AUTH"
af0=$(tel auth_fail)
t_eq "no credentials: 407" 407 "$(code -x "$A" "http://127.0.0.1:$P_BACK/small")"
hdrs=$(curl -s -D - -o /dev/null -x "$A" "http://127.0.0.1:$P_BACK/small")
t_match "407 carries Proxy-Authenticate" "Proxy-Authenticate: Basic" "$hdrs"
t_eq "wrong password: 407" 407 "$(code -x "$A" -U alice:wrong "http://127.0.0.1:$P_BACK/small")"
t_eq "unknown user: 407" 407 "$(code -x "$A" -U bob:wonderland "http://127.0.0.1:$P_BACK/small")"
t_eq "right password: 200" 200 "$(code -x "$A" -U alice:wonderland "http://127.0.0.1:$P_BACK/small")"
t_eq "right password again (cached): 200" 200 "$(code -x "$A" -U alice:wonderland "http://127.0.0.1:$P_BACK/small")"
t_eq "CONNECT with credentials" 0 "$(curl -sk -o /dev/null --max-time 10 -x "$A" -U alice:wonderland "https://127.0.0.1:$P_TLS/"; echo $?)"
tel_fresh
t_eq "auth_fail moved by 4 (missing or bad credentials)" 4 "$(( $(tel auth_fail) - af0 ))"
t_eq "err_denied moved by 4" 4 "$(( $(tel err_denied) - den0 ))"

# --- password guessing: crypt(3) is off the loop, and rate-limited -------------
# A client tries 40 new wrong passwords for "slow" (8 at a time) while
# another client sends plain requests: those stay fast, since the loop never
# runs crypt; after a burst of 10 uncached checks per client IP (and per
# user) the guesses are refused without crypt.
out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 20 -x "$A" -U slow:slowpoke "http://127.0.0.1:$P_BACK/small")
t_eq "slow hash: right password (worker thread)" 200 "${out% *}"
# What one check of the slow hash costs on this machine, now: the bound on
# the guessing below is "faster than 40 checks in a row" (no throttle).
crypt_ms=$(awk -v t="${out#* }" 'BEGIN { printf "%d", t * 1000 }')
# The sleep paces the concurrent client (30 requests spread over the
# guessing); it waits for nothing.
(for i in $(seq 30); do
	curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 10 -x "http://127.0.0.1:$P_HTTP" \
		"http://127.0.0.1:$P_BACK/small"
	sleep 0.05
done) >"$D/lat.txt" &
latpid=$!
# The guessing starts once the concurrent client has had an answer.
t_wait 15 test -s "$D/lat.txt" || t_fail "concurrent client answered" "$(cat "$D/px.log" | tail -5)"
t0=$(date +%s%N)
seq 40 | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 -x "$A" \
	-U "slow:guess{}" "http://127.0.0.1:$P_BACK/small" >"$D/guess.txt"
guess_ms=$((($(date +%s%N) - t0) / 1000000))
wait $latpid
# 407, or 408 for a guess still queued for the worker at the 2 s header deadline.
t_eq "40 wrong guesses: all refused (407 or 408)" 40 "$(grep -cE '^40[78]$' "$D/guess.txt")"
guess_max=$((40 * crypt_ms > 8000 ? 40 * crypt_ms : 8000))
t_le "guesses answered within max(8 s, 40 checks) (at most a burst reaches crypt)" "$guess_ms" "$guess_max"
t_eq "concurrent client: 30 requests answered 200" 30 "$(grep -c '^200 ' "$D/lat.txt")"
max_ms=$(awk '{ v = $2 * 1000; if (v > m) m = v } END { printf "%d", m }' "$D/lat.txt")
t_le "concurrent client: slowest request under 500 ms during the guessing" "$max_ms" 500
t_diag "guessing took ${guess_ms} ms (one check ${crypt_ms} ms); concurrent client max ${max_ms} ms"
throttled=$(grep -c 'auth throttled proto=http' "$D/px.log")
t_le "most guesses throttled without crypt (>= 20 of 40)" 20 "$throttled"
# A guess still queued at the 2 s header deadline gets 408 (when the machine
# is slow enough); its check, finishing later, must not answer again. The
# answers are counted once the worker has filed every check (its queue on
# the admin endpoint is back to 0): a second answer would be in the log.
metric() { curl -s "http://127.0.0.1:$P_ADMIN/metrics" | awk -v m="$1" '$1 ~ "^" m "[{ ]" { print $2 }'; }
auth_idle() { [ "$(metric proxyvmd_auth_checks_queued)" = 0 ]; }
t_check "the password worker's queue drains (metrics)" t_wait 30 auth_idle
twice=$(awk '/session fail/ && /code=40[78] / { match($0, /peer=[^ ]+/); p = substr($0, RSTART, RLENGTH)
	n[p]++ } END { c = 0; for (p in n) if (n[p] > 1) c++; print c }' "$D/px.log")
t_eq "no session answered twice (408, then its pending check)" 0 "$twice"
t_eq "a cached user from the same IP is not throttled" 200 "$(code -x "$A" -U alice:wonderland "http://127.0.0.1:$P_BACK/small")"
t_eq "the guessed-at user, verified before, is not locked out" 200 "$(code -x "$A" -U slow:slowpoke "http://127.0.0.1:$P_BACK/small")"

# --- bad input ----------------------------------------------------------------
raw() { python3 - "$P_HTTP" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except Exception as e:
    out += b"EXC " + str(e).encode()
print(out.split(b"\r\n")[0].decode("latin-1"))
PY
}
t_match "malformed request line: 400" "^HTTP/1.1 400" "$(raw 'GET  / HTTP/1.1\r\n\r\n')"
t_match "origin-form request: 400" "^HTTP/1.1 400" "$(raw 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')"
t_match "binary garbage: 400" "^HTTP/1.1 400" "$(raw '\x16\x03\x01\x00\xa5\x01\x00')"
t_match "smuggling (CL + TE): 400" "^HTTP/1.1 400" "$(raw 'POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n')"
big=$(python3 -c "print('X-Big: ' + 'a' * 9000, end='')")
t_match "oversized head: 431" "^HTTP/1.1 431" "$(raw "GET http://127.0.0.1:$P_BACK/ HTTP/1.1\r\n$big\r\n\r\n")"
t0=$(date +%s%N)
out=$(python3 - "$P_HTTP" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
import select
resp = b""
try:
    for ch in b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n":
        s.send(bytes([ch]))
        if select.select([s], [], [], 1)[0]:
            break
    resp = s.recv(1000)
except Exception as e:
    resp = str(e).encode()
print(resp.split(b"\r\n")[0].decode())
PY
)
ms=$((($(date +%s%N) - t0) / 1000000))
t_match "one byte a second: 408 at the header deadline" "^HTTP/1.1 408" "$out"
t_le "slow client cut within 4 s" "$ms" 4000
t_eq "still serving after bad input" "small:127.0.0.1:$P_BACK" "$(curl $X "http://127.0.0.1:$P_BACK/small")"

# --- SIGHUP ----------------------------------------------------------------
# A download runs across the reloads: it must finish intact. The origin
# holds it open (3 of its 4 MiB) until both reloads are done, so it spans
# them however long they take; they start once its first bytes are in.
curl -sS --max-time 60 -x "http://127.0.0.1:$P_HTTP" -o "$D/slow.out" \
	"http://127.0.0.1:$P_BACK/held" &
slow=$!
t_wait 15 test -s "$D/slow.out" || t_fail "the held download starts"
write_conf "$D/px.conf" "$P_NEW"
kill -HUP $PXPID
t_wait 15 curl -sf -o /dev/null -x "http://127.0.0.1:$P_NEW" "http://127.0.0.1:$P_BACK/small"
t_eq "SIGHUP opened the new listener" "small:127.0.0.1:$P_BACK" "$(curl -sS -x "http://127.0.0.1:$P_NEW" "http://127.0.0.1:$P_BACK/small")"
cp "$D/px.conf" "$D/px.good"
echo "bogus line without equals" >>"$D/px.conf"
kill -HUP $PXPID
t_wait 15 grep -q "reload refused" "$D/px.log"
t_match "a bad reload is refused with file:line" "reload refused error=\"$D/px.conf:[0-9]+:" "$(grep 'reload refused' "$D/px.log")"
t_eq "old config still serves" "small:127.0.0.1:$P_BACK" "$(curl $X "http://127.0.0.1:$P_BACK/small")"
t_check "the download is still open after both reloads" kill -0 $slow
timeout 15 sh -c 'echo go >"$1"' - "$D/release" || t_fail "the origin takes the go for the rest"
wait $slow
t_eq "download across two reloads finished intact" 4194304 "$(wc -c <"$D/slow.out")"
cp "$D/px.good" "$D/px.conf"

# --- telemetry and metrics ---------------------------------------------------
tel_fresh
t_match "tel hash carries the documented fields" "bytes_up.*bytes_down.*conns_active.*conns_total.*requests" \
	"$(redis-cli -p "$P_REDIS" hkeys pf:vm:t-http:tel | tr '\n' ' ')"
t_le "bytes_down counts the 4 MiB bodies" 8388608 "$(tel bytes_down)"
t_le "bytes_up counts the uploads" 600000 "$(tel bytes_up)"
m=$(curl -s "http://127.0.0.1:$P_ADMIN/metrics")
t_match "Prometheus endpoint" 'proxyvmd_requests_total\{vm="t-http"\} [0-9]+' "$m"
t_match "Prometheus redis_up" 'proxyvmd_redis_up\{vm="t-http"\} 1' "$m"

# --- Redis down and back -------------------------------------------------------
redis-cli -p "$P_REDIS" shutdown nosave >/dev/null 2>&1
if t_wait 15 grep -q 'redis down' "$D/px.log"; then t_ok "Redis down: logged"; else t_fail "Redis down: logged"; fi
t_eq "Redis down: still proxying" "small:127.0.0.1:$P_BACK" "$(curl $X "http://127.0.0.1:$P_BACK/small")"
# One line per outage, not one per retry: wait until proxyvmd has failed
# 4 more retries (100, 200, 400, 800 ms of backoff), then count the lines.
rfail_ge() { [ "$(metric proxyvmd_redis_connect_failures_total)" -ge "$1" ] 2>/dev/null; }
f0=$(metric proxyvmd_redis_connect_failures_total)
t_check "retries while Redis is down are counted (metrics)" t_wait 20 rfail_ge $((${f0:-0} + 4))
t_eq "one 'redis down' line, not one per retry" 1 "$(grep -c 'redis down' "$D/px.log")"

# --- SIGTERM drain -----------------------------------------------------------
kill -TERM $PXPID
t_wait 20 gone $PXPID || { t_fail "SIGTERM: gone within 20 s (drain_timeout 5 s)"; kill -9 $PXPID; }
wait $PXPID; rc=$?
t_eq "SIGTERM: exit 0" 0 "$rc"
t_match "drain logged" "drain start" "$(cat "$D/px.log")"
t_no_sanitizer_report "no sanitizer reports" "$D/px.log"
t_done
