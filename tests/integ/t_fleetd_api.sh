#!/usr/bin/env bash
# t_fleetd_api.sh: fleetd's API, CLI, config checks and fault handling, with
# a real Redis and libvirt's own test driver as the hosts (no lab needed):
# bad configs, auth, bad requests, telemetry ingest and staleness, pre-check
# refusals, a migration whose destination agent never answers, drain
# errors, /metrics, a Redis restart, SIGHUP reload, HTTPS, the rebalancing
# plan on a skewed synthetic load (dry run, then executed after a reload),
# geographic redistribution (region targets through the API and fleetctl,
# kept in Redis across a restart, the plan, and a bounded execution) and a
# clean SIGTERM. The test driver cannot migrate: executed moves are checked
# up to their start and their failure at the prepare (no agent answers).
. "$(dirname "$0")/lib.sh"

PORT=18480 RPORT=16379 TOKEN=t0ken-$$
API=http://127.0.0.1:$PORT
t_redis_start $RPORT || t_done
R() { redis-cli -p $RPORT "$@"; }
FC() { "$PF_BIN/fleetctl" --api $API --token "$TOKEN" "$@"; }
call() { # METHOD PATH [BODY] -> "CODE BODY"
	curl -s -o "$T_TMP/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+-d "$3"} "$API$2"; echo " $(cat "$T_TMP/body")"
}

# leases_seen API HOST...: fleetd has polled every host's agent lease since
# it started, and finds the named ones live.
leases_seen() {
	local api=$1; shift
	t_api_true "$api/v1/hosts" "all(h['lease_read'] for h in j) and all(h['lease'] for h in j if h['name'] in sys.argv[2:])" "$@"
}
# tel_seen API VM...: fleetd has read a telemetry sample of each VM.
tel_seen() {
	local api=$1; shift
	t_api_true "$api/v1/vms" "all(v['telemetry_age_ms'] >= 0 for v in j if v['name'] in sys.argv[2:])" "$@"
}

node_xml() { # NAME VM IP MAC
	cat <<X
<node><domain type='test'><name>$2</name><memory>131072</memory><vcpu>1</vcpu>
<metadata><pf:vm xmlns:pf='http://proxyfleet.example.org/xmlns/vm/1' id='$2' role='primary'><pf:ip>$3</pf:ip></pf:vm></metadata>
<os><type>hvm</type></os><devices><interface type='bridge'><mac address='$4'/><source bridge='br0'/></interface></devices>
</domain></node>
X
}
node_xml eu-1 px-a 10.77.1.100/24 52:54:00:aa:00:01 >"$T_TMP/eu-1.xml"
echo "<node/>" >"$T_TMP/eu-2.xml"

write_conf() { # MAX_CONCURRENT
	cat >"$T_TMP/fleetd.conf" <<C
[fleetd]
api_listen = 127.0.0.1:$PORT
api_token = $TOKEN
redis = 127.0.0.1:$RPORT
tick = 200ms
stale_after = 2s

[migration]
max_concurrent = $1

[region eu]
edge = edge

[host eu-1]
region = eu
uri = test://$T_TMP/eu-1.xml
address = 127.0.0.1

[host eu-2]
region = eu
uri = test://$T_TMP/eu-2.xml
address = 127.0.0.1
C
}
write_conf 2

# --- configuration checks ---
out=$("$PF_BIN/fleetd" -n -f "$T_TMP/fleetd.conf" 2>&1); rc=$?
t_eq "fleetd -n accepts a good file" "0 configuration OK" "$rc $out"
sed 's/^tick = /tcik = /' "$T_TMP/fleetd.conf" >"$T_TMP/bad.conf"
out=$("$PF_BIN/fleetd" -n -f "$T_TMP/bad.conf" 2>&1); rc=$?
t_eq "bad key: exit status 2" 2 "$rc"
t_eq "bad key: one line naming file, line and key" \
	"fleetd: $T_TMP/bad.conf:5: unknown key 'tcik' in section [fleetd]" "$out"

printf '[policy]\ntarget = 80\n' >>"$T_TMP/bad.conf"
sed 's/^tcik = /tick = /' "$T_TMP/bad.conf" >"$T_TMP/bad2.conf"
out=$("$PF_BIN/fleetd" -n -f "$T_TMP/bad2.conf" 2>&1); rc=$?
t_eq "policy: target at the high-water mark refused" \
	"2 fleetd: $T_TMP/bad2.conf: [policy] target (80) must be below high_water (80)" "$rc $out"

# --- start ---
"$PF_BIN/fleetd" -f "$T_TMP/fleetd.conf" >"$T_TMP/fleetd.log" 2>&1 &
FPID=$!
t_defer "kill -9 $FPID"
if ! t_wait 10 curl -sf $API/healthz || ! kill -0 $FPID 2>/dev/null; then
	t_fail "fleetd starts and answers /healthz" "$(tail -n 3 "$T_TMP/fleetd.log")"
	t_done
fi
t_wait 10 sh -c "FLEETCTL_TOKEN=$TOKEN '$PF_BIN/fleetctl' --api $API --json vms | grep -q px-a" ||
	t_fail "fleetd lists px-a from libvirt"

# --- leadership: alone on its Redis, this fleetd leads ---
t_wait 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $API/v1/leader | grep -q '\"role\":\"leader\"'" &&
	t_ok "the only fleetd becomes the leader" || t_fail "the only fleetd becomes the leader" "$(call GET /v1/leader)"
t_match "the leader has an epoch (orders carry it, checked below)" '"epoch":[1-9]' "$(call GET /v1/leader)"

# --- auth and bad requests ---
t_eq "no token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' $API/v1/hosts)"
t_match "no token: JSON error" '"error":"missing or wrong bearer token"' "$(curl -s $API/v1/hosts)"
t_eq "wrong token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' $API/v1/hosts)"
t_match "bad JSON: 400" '^400 .*not a JSON object' "$(call POST /v1/migrations '{oops')"
t_match "missing fields: 400" "^400 .*'vm' and 'to'" "$(call POST /v1/migrations '{"vm":"px-a"}')"
t_match "unknown VM: 404" '^404 .*no VM called .ghost.' "$(call POST /v1/migrations '{"vm":"ghost","to":"eu-2"}')"
t_match "unknown host: 404" "^404 .*no host called 'mars'" "$(call POST /v1/migrations '{"vm":"px-a","to":"mars"}')"
t_match "unknown endpoint: 404" '^404 .*no such endpoint' "$(call GET /v1/nothing)"
t_match "unknown migration: 404" '^404 .*no migration 99' "$(call DELETE /v1/migrations/99)"
t_match "bad migration id: 400" '^400 ' "$(call GET /v1/migrations/abc)"
t_match "drain unknown host: 404" '^404 ' "$(call POST /v1/hosts/mars/drain)"
t_check "fleetd still answers after bad requests" curl -sf $API/healthz

# --- model and telemetry ---
hosts=$(FC --json hosts)
t_match "both hosts connected over libvirt" '"name":"eu-1".*"libvirt":true.*"name":"eu-2".*"libvirt":true' "$(echo $hosts | tr -d ' \n\t')"
# Two samples one second apart (by the writer's clock), each read by a tick.
now=$(($(date +%s%N) / 1000000))
R HSET pf:vm:px-a:tel ts_ms $((now - 1000)) boot_ms 1 bytes_up 0 bytes_down 0 requests 0 conns_total 0 conns_active 1 >/dev/null
t_wait 5 tel_seen $API px-a || t_fail "telemetry: the first sample is read" "$(FC --json vms)"
R HSET pf:vm:px-a:tel ts_ms $now bytes_up 1000000 bytes_down 3000000 requests 50 conns_total 5 >/dev/null
vm_field() { FC --json vms | tr -d ' \n\t' | grep -o "\"$1\":[^,}]*" | head -n1 | cut -d: -f2; }
t_wait 3 sh -c "[ \"\$(FLEETCTL_TOKEN=$TOKEN '$PF_BIN/fleetctl' --api $API --json vms | tr -d ' \n\t' | grep -o '\"bps_down\":[0-9.e+]*' | cut -d: -f2)\" = 3000000 ]" ||
	t_fail "telemetry: rate derived from counters (bps_down)" "got $(vm_field bps_down)"
t_eq "telemetry: up rate" 1000000 "$(vm_field bps_up)"
t_eq "telemetry: requests/s" 50 "$(vm_field requests_per_s)"
t_eq "telemetry: not stale while fresh" false "$(vm_field stale)"
t_wait 5 sh -c "FLEETCTL_TOKEN=$TOKEN '$PF_BIN/fleetctl' --api $API --json vms | tr -d ' \n\t' | grep -q '\"stale\":true'" &&
	t_ok "telemetry: flagged stale when it stops" || t_fail "telemetry: flagged stale when it stops"
t_match "status table shows the VM as stale" 'px-a +eu-1 +running .*STALE' "$(FC status)"

# --- pre-checks and a migration whose agent never answers ---
t_wait 5 leases_seen $API || t_fail "fleetd has polled the leases" "$(FC --json hosts)"
t_match "no lease on the destination: refused (409)" '^409 .*eu-2 has no live agent lease' \
	"$(call POST /v1/migrations '{"vm":"px-a","to":"eu-2"}')"
t_match "same host: refused" '^409 .*already runs on eu-1' "$(call POST /v1/migrations '{"vm":"px-a","to":"eu-1"}')"
R SET pf:host:eu-2:lease test PX 60000 >/dev/null
t_wait 5 leases_seen $API eu-2 || t_fail "lease seen by fleetd" "$(FC --json hosts)"
out=$(FC migrate px-a --to eu-2 2>&1); rc=$?
t_eq "fleetctl migrate: exit 1 when the migration fails" 1 "$rc"
t_match "fleetctl migrate: one-line reason" 'migration 1 failed: prepare on eu-2 failed: no ack from agent eu-2 in 3000 ms' "$(echo "$out" | tail -n1)"
order=$(R XRANGE pf:host:eu-2:orders - + | tr '\n' '|')
t_match "prepare order written for eu-2's agent" '\|op\|prepare\|vm\|px-a\|ips\|10.77.1.100\|mac\|52:54:00:aa:00:01\|dev\|br0\|via\|\|epoch\|[1-9][0-9]*\|' "$order"
t_match "VM still on its source after the failed migration" 'px-a +eu-1 +running' "$(FC vms)"
t_match "a failed prepare is taken back (withdraw ordered)" '\|op\|withdraw\|vm\|px-a\|' "$(R XRANGE pf:host:eu-2:orders - + | tr '\n' '|')"
# Cancel while the destination has not answered the prepare yet.
out=$(FC migrate px-a --to eu-2 --reason test --no-wait)
t_match "migrate --no-wait returns at once" 'migration 2 started: px-a -> eu-2' "$out"
t_match "cancel in prepare: 202" '^202 .*"phase":"cancelled"' "$(call DELETE /v1/migrations/2)"
t_eq "cancel in prepare: a second withdraw ordered" 2 "$(R XRANGE pf:host:eu-2:orders - + | grep -c '^withdraw$')"
t_match "cancelled twice: 409" '^409 .*too late to cancel' "$(call DELETE /v1/migrations/2)"
t_match "migration listed as failed" '"phase":"failed"' "$(call GET /v1/migrations/1)"
t_match "journal has the failure with its reason" 'failed id=1 vm=px-a from=eu-1 to=eu-2 reason=operator' "$(FC events)"
t_match "drain: 202" '^202 .*"state":"drain"' "$(call POST /v1/hosts/eu-2/drain)"
t_wait 3 sh -c "FLEETCTL_TOKEN=$TOKEN '$PF_BIN/fleetctl' --api $API --json hosts | tr -d ' \n\t' | grep -q '\"name\":\"eu-2\".*\"state\":\"maintenance\"'" &&
	t_ok "drain of an empty host: straight to maintenance" || t_fail "drain of an empty host: straight to maintenance"
t_eq "the drain is kept in Redis (pf:ctl:drain)" maintenance "$(R HGET pf:ctl:drain eu-2)"
t_match "drain again: 409" '^409 .*already in maintenance' "$(call POST /v1/hosts/eu-2/drain)"
t_match "drain of an unknown host: 404" '^404 .*no host called' "$(call POST /v1/hosts/eu-9/drain)"
t_match "undrain: 202" '^202 ' "$(call POST /v1/hosts/eu-2/undrain)"
t_eq "undrain: gone from Redis" 0 "$(R HEXISTS pf:ctl:drain eu-2)"

# --- metrics ---
m=$(curl -s -H "Authorization: Bearer $TOKEN" $API/metrics)
t_match "metrics: failed migration counted" 'fleetd_migrations_total\{outcome="failed"\} 1' "$m"
t_match "metrics: cancelled migration counted" 'fleetd_migrations_total\{outcome="cancelled"\} 1' "$m"
t_match "metrics: refusals counted" 'fleetd_migrations_total\{outcome="refused"\} 2' "$m"
t_match "metrics: hosts" 'fleetd_hosts 2' "$m"
t_match "metrics: VMs per host" 'fleetd_host_vms\{host="eu-1",region="eu"\} 1' "$m"
t_match "metrics: histogram count" 'fleetd_migration_downtime_seconds_count 0' "$m"

# --- Redis restart: fleetd keeps serving and reconnects ---
kill "$(cat "$T_TMP/redis-$RPORT/pid")"
t_wait 10 grep -q 'redis down' "$T_TMP/fleetd.log" || t_fail "Redis down: fleetd notices" "$(tail -n 5 "$T_TMP/fleetd.log")"
t_check "Redis down: API still answers" curl -sf -H "Authorization: Bearer $TOKEN" $API/v1/hosts
t_match "Redis down: one log line" 'redis down' "$(grep -c 'redis down' "$T_TMP/fleetd.log") $(grep 'redis down' "$T_TMP/fleetd.log" | head -n1)"
redis-server --port $RPORT --bind 127.0.0.1 --dir "$T_TMP/redis-$RPORT" --save '' --daemonize yes \
	--pidfile "$T_TMP/redis-$RPORT/pid" --logfile "$T_TMP/redis-$RPORT/log" >/dev/null
t_wait 10 sh -c "[ \$(grep -c 'redis up' '$T_TMP/fleetd.log') -ge 2 ]" &&
	t_ok "Redis back: fleetd reconnects by itself" || t_fail "Redis back: fleetd reconnects by itself" "$(tail -n 5 "$T_TMP/fleetd.log")"
t_eq "Redis down: logged once per link, not every second" 2 "$(grep -c 'redis down\|redis acks link down' "$T_TMP/fleetd.log")"

# --- reload ---
cp "$T_TMP/fleetd.conf" "$T_TMP/good.conf"
echo "bogus = 1" >>"$T_TMP/fleetd.conf"
kill -HUP $FPID
t_wait 3 grep -q 'reload failed, keeping the running configuration' "$T_TMP/fleetd.log" &&
	t_ok "SIGHUP with a bad file: keeps the old configuration" || t_fail "SIGHUP with a bad file"
write_conf 3
kill -HUP $FPID
t_wait 3 grep -q 'reload ok' "$T_TMP/fleetd.log" && t_ok "SIGHUP with a good file: reloaded" || t_fail "SIGHUP reload"
t_check "still serving after reloads" curl -sf $API/healthz

# --- HTTPS: a second fleetd with a certificate ---
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$T_TMP/key.pem" -out "$T_TMP/cert.pem" 2>/dev/null
sed -e "s/^api_listen = .*/api_listen = 127.0.0.1:$((PORT + 1))/" \
	-e "s|^\[fleetd\]|[fleetd]\ntls_cert = $T_TMP/cert.pem\ntls_key = $T_TMP/key.pem|" \
	"$T_TMP/good.conf" >"$T_TMP/tls.conf"
"$PF_BIN/fleetd" -f "$T_TMP/tls.conf" >"$T_TMP/fleetd-tls.log" 2>&1 &
TPID=$!
t_defer "kill -9 $TPID"
HAPI=https://127.0.0.1:$((PORT + 1))
t_wait 10 curl -sf --cacert "$T_TMP/cert.pem" $HAPI/healthz && t_ok "HTTPS: /healthz with the CA" ||
	t_fail "HTTPS: /healthz with the CA" "$(tail -n 3 "$T_TMP/fleetd-tls.log")"
t_match "HTTPS: API answers with the token" '"name":"eu-1"' \
	"$(curl -s --cacert "$T_TMP/cert.pem" -H "Authorization: Bearer $TOKEN" $HAPI/v1/hosts)"
t_eq "HTTPS: plain HTTP on the TLS port gets no answer" 000 \
	"$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:$((PORT + 1))/healthz)"
out=$("$PF_BIN/fleetctl" --api $HAPI --token "$TOKEN" hosts 2>&1); rc=$?
t_match "HTTPS: fleetctl refuses an unverified certificate, one line" "^fleetctl: cannot reach fleetd at $HAPI: .*(certificate|SSL)" "$out ($rc)"
t_match "HTTPS: fleetctl --insecure works" '^eu-1 ' "$("$PF_BIN/fleetctl" --api $HAPI --token "$TOKEN" --insecure hosts | sed -n 2p)"
kill -TERM $TPID
rc=0; wait $TPID || rc=$?
t_eq "HTTPS fleetd: clean exit" 0 "$rc"

# --- rebalancing plan: a third fleetd over three hosts with a skewed load ---
# It has a Redis of its own: on the first one it would follow the first
# fleetd (the leader) and carry out no plan.
PRPORT=$((RPORT + 1))
t_redis_start $PRPORT || t_done
R() { redis-cli -p $PRPORT "$@"; }
dom_xml() { # VM IP MAC
	cat <<X
<domain type='test'><name>$1</name><memory>131072</memory><vcpu>1</vcpu>
<metadata><pf:vm xmlns:pf='http://proxyfleet.example.org/xmlns/vm/1' id='$1' role='primary'><pf:ip>$2</pf:ip></pf:vm></metadata>
<os><type>hvm</type></os><devices><interface type='bridge'><mac address='$3'/><source bridge='br0'/></interface></devices>
</domain>
X
}
{ echo "<node>"; dom_xml px-big 10.77.1.110/24 52:54:00:aa:01:01
  dom_xml px-mid 10.77.1.111/24 52:54:00:aa:01:02
  dom_xml px-small 10.77.1.112/24 52:54:00:aa:01:03; echo "</node>"; } >"$T_TMP/p-1.xml"
echo "<node/>" >"$T_TMP/p-2.xml"
echo "<node/>" >"$T_TMP/p-3.xml"
PPORT=$((PORT + 2)) PAPI=http://127.0.0.1:$((PORT + 2))
plan_conf() { # REBALANCE
	cat >"$T_TMP/plan.conf" <<C
[fleetd]
api_listen = 127.0.0.1:$PPORT
api_token = $TOKEN
redis = 127.0.0.1:$PRPORT
tick = 200ms
stale_after = 60s

[policy]
rebalance = $1
high_water = 80
target = 70
window = 1s

[region eu]
edge = edge
[region us]
edge = edge
C
	for h in p-1:eu p-2:eu p-3:us; do
		printf '[host %s]\nregion = %s\nuri = test://%s/%s.xml\naddress = 127.0.0.1\nnic = 10000000\n' \
			"${h%:*}" "${h#*:}" "$T_TMP" "${h%:*}" >>"$T_TMP/plan.conf"
	done
}
plan_conf no
"$PF_BIN/fleetd" -f "$T_TMP/plan.conf" >"$T_TMP/fleetd-plan.log" 2>&1 &
PLPID=$!
t_defer "kill -9 $PLPID"
PFC() { "$PF_BIN/fleetctl" --api $PAPI --token "$TOKEN" "$@"; }
pcall() { # METHOD PATH -> "CODE BODY"
	curl -s -o "$T_TMP/pbody" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" "$PAPI$2"
	echo " $(cat "$T_TMP/pbody")"
}
t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $PAPI/v1/vms | grep -q px-small" ||
	t_fail "plan fleetd lists the three VMs" "$(tail -n 3 "$T_TMP/fleetd-plan.log")"
R SET pf:host:p-2:lease test PX 600000 >/dev/null
R SET pf:host:p-3:lease test PX 600000 >/dev/null
t_wait 5 leases_seen $PAPI p-2 p-3 || t_fail "plan fleetd sees the leases" "$(PFC --json hosts)"
# p-1 at 90% of its 10 MB/s NIC: 4.5 + 3 + 1.5 MB/s, two samples a second apart.
now=$(($(date +%s%N) / 1000000))
for v in px-big px-mid px-small; do
	R HSET pf:vm:$v:tel ts_ms $((now - 1000)) boot_ms 1 bytes_up 0 bytes_down 0 requests 0 conns_total 0 >/dev/null
done
# The rate needs two samples: the second is written once fleetd has the first.
t_wait 5 tel_seen $PAPI px-big px-mid px-small || t_fail "plan fleetd reads the first samples" "$(PFC --json vms)"
R HSET pf:vm:px-big:tel ts_ms $now bytes_up 500000 bytes_down 4000000 >/dev/null
R HSET pf:vm:px-mid:tel ts_ms $now bytes_up 500000 bytes_down 2500000 >/dev/null
R HSET pf:vm:px-small:tel ts_ms $now bytes_up 500000 bytes_down 1000000 >/dev/null
t_wait 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $PAPI/v1/plan | grep -q '\"lower_bound\":1'" ||
	t_fail "plan: sees p-1 above the mark" "$(pcall GET /v1/plan)"
out=$(PFC plan); rc=$?
t_eq "fleetctl plan: exit 0" 0 "$rc"
t_match "fleetctl plan: table header" '^VM +FROM +TO +REASON' "$out"
t_match "fleetctl plan: the cheapest VM that covers the excess, same region, with figures" \
	'px-small +p-1 +p-2 +p-1 at 90% of NIC > 80%: 1.50 MB/s to p-2 \(0% -> 15%, target 70%\)' "$out"
t_eq "fleetctl plan: one move (header, row, summary)" 3 "$(echo "$out" | wc -l)"
t_match "fleetctl plan: summary line" \
	'^1 move\(s\), 1 now \(lower bound 1\); 1 host\(s\) above 80%, 0 after; target 70%; rebalance off' \
	"$(echo "$out" | tail -n1)"
p=$(pcall GET /v1/plan)
t_match "GET /v1/plan: 200 with the move" '^200 .*"moves":\[\{"vm":"px-small","from":"p-1","to":"p-2"' "$p"
t_match "GET /v1/plan: per-host loads" '"name":"p-1","region":"eu","traffic_bps":9000000,"nic_bps":10000000,"load":0.9,"load_after":0.75,"hot":true' "$p"
t_match "GET /v1/plan: lower bound and counts" '"hot":1,"still_hot":0,"lower_bound":1' "$p"
t_match "fleetctl --json plan: the API's object" '"lower_bound":[[:space:]]*1' "$(PFC --json plan)"
t_match "POST /v1/plan: 405 JSON error" '^405 \{"error":"method not allowed on /v1/plan' "$(pcall POST /v1/plan)"
t_match "DELETE /v1/plan: 405 JSON error" '^405 \{"error":' "$(pcall DELETE /v1/plan)"
t_eq "dry run: nothing moved" "[]" "$(curl -s -H "Authorization: Bearer $TOKEN" $PAPI/v1/migrations | tr -d ' \n')"
# Rebalance on: after the 1 s window the move starts as a policy move,
# journaled with its reason (it then fails: no agent answers the prepare).
plan_conf yes
kill -HUP $PLPID
t_wait 6 sh -c "'$PF_BIN/fleetctl' --api $PAPI --token $TOKEN events | grep -q 'policy .*move id=1 vm=px-small from=p-1 to=p-2'" &&
	t_ok "rebalance: the move is executed and journaled" ||
	t_fail "rebalance: the move is executed and journaled" "$(tail -n 5 "$T_TMP/fleetd-plan.log")"
t_match "rebalance: journal carries the reason with figures" \
	'reason="p-1 at 90% of NIC > 80%: 1.50 MB/s to p-2' "$(PFC events)"
t_match "rebalance: a policy migration with its reason" '"reason":"rebalance: p-1 at 90% > 80%"' \
	"$(pcall GET /v1/migrations/1)"
t_wait 8 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $PAPI/v1/migrations/1 | grep -q '\"phase\":\"failed\"'" ||
	t_fail "rebalance: the move fails without an agent"
kill -TERM $PLPID
rc=0; wait $PLPID || rc=$?
t_eq "plan fleetd: clean exit" 0 "$rc"

# --- geographic redistribution: a fourth fleetd over three regions ---
# eu: g-eu-1 (two primaries, a pinned primary, a standby) and g-eu-2; us:
# g-us-1; ap: no host. Nothing has telemetry: targets count VMs, not load.
gdom() { # VM MEM_KIB ROLE PIN IP MAC
	cat <<X
<domain type='test'><name>$1</name><memory>$2</memory><vcpu>1</vcpu>
<metadata><pf:vm xmlns:pf='http://proxyfleet.example.org/xmlns/vm/1' id='$1' role='$3'$4><pf:ip>$5</pf:ip></pf:vm></metadata>
<os><type>hvm</type></os><devices><interface type='bridge'><mac address='$6'/><source bridge='br0'/></interface></devices>
</domain>
X
}
{ echo "<node>"; gdom px-g1 131072 primary "" 10.77.1.120/24 52:54:00:aa:02:01
  gdom px-g2 262144 primary "" 10.77.1.121/24 52:54:00:aa:02:02
  gdom px-gpin 65536 primary " pin='region'" 10.77.1.122/24 52:54:00:aa:02:03
  gdom px-gsb 65536 standby "" 10.77.1.123/24 52:54:00:aa:02:04; echo "</node>"; } >"$T_TMP/g-eu-1.xml"
echo "<node/>" >"$T_TMP/g-eu-2.xml"
echo "<node/>" >"$T_TMP/g-us-1.xml"
GPORT=$((PORT + 3)) GAPI=http://127.0.0.1:$((PORT + 3))
# A Redis of its own too, so that it leads (see the plan fleetd above).
GRPORT=$((RPORT + 2))
t_redis_start $GRPORT || t_done
R() { redis-cli -p $GRPORT "$@"; }
geo_conf() { # GEO
	cat >"$T_TMP/geo.conf" <<C
[fleetd]
api_listen = 127.0.0.1:$GPORT
api_token = $TOKEN
redis = 127.0.0.1:$GRPORT
tick = 200ms
stale_after = 60s

[policy]
geo = $1
geo_max_moves = 1

[region eu]
edge = edge
[region us]
edge = edge
[region ap]
edge = edge
C
	for h in g-eu-1:eu g-eu-2:eu g-us-1:us; do
		printf '[host %s]\nregion = %s\nuri = test://%s/%s.xml\naddress = 127.0.0.1\n' \
			"${h%:*}" "${h#*:}" "$T_TMP" "${h%:*}" >>"$T_TMP/geo.conf"
	done
}
GFC() { "$PF_BIN/fleetctl" --api $GAPI --token "$TOKEN" "$@"; }
gcall() { # METHOD PATH [BODY] -> "CODE BODY"
	curl -s -o "$T_TMP/gbody" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+-d "$3"} "$GAPI$2"; echo " $(cat "$T_TMP/gbody")"
}
geo_start() {
	"$PF_BIN/fleetd" -f "$T_TMP/geo.conf" >>"$T_TMP/fleetd-geo.log" 2>&1 &
	GPID=$!
	t_defer "kill -9 $GPID"
	t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $GAPI/v1/vms | grep -q px-gsb" ||
		t_fail "geo fleetd lists the four VMs" "$(tail -n 3 "$T_TMP/fleetd-geo.log")"
	# Its plan judges destinations by their leases: wait until it has them.
	t_wait 5 leases_seen $GAPI g-eu-2 g-us-1 ||
		t_fail "geo fleetd sees the agents' leases" "$(GFC --json hosts)"
}
R DEL pf:ctl:geo:targets >/dev/null
R SET pf:host:g-eu-2:lease test PX 600000 >/dev/null
R SET pf:host:g-us-1:lease test PX 600000 >/dev/null
geo_conf off
t_check "fleetd -n accepts [policy] geo and geo_max_moves" "$PF_BIN/fleetd" -n -f "$T_TMP/geo.conf"
sed 's/^geo_max_moves = 1/geo_max_moves = 0/' "$T_TMP/geo.conf" >"$T_TMP/geo-bad.conf"
t_match "geo_max_moves = 0 refused with file and line" "geo-bad.conf:1[0-9]: .*geo_max_moves" \
	"$("$PF_BIN/fleetd" -n -f "$T_TMP/geo-bad.conf" 2>&1)"
geo_start
t_wait 5 grep -q 'geo targets read key=pf:ctl:geo:targets entries=0' "$T_TMP/fleetd-geo.log" &&
	t_ok "geo: the targets are read from Redis at start" ||
	t_fail "geo: the targets are read from Redis at start" "$(tail -n 5 "$T_TMP/fleetd-geo.log")"
g=$(gcall GET /v1/regions)
t_match "GET /v1/regions: 200, geo off, primaries only (the standby is not counted)" \
	'^200 \{"geo":false,"geo_max_moves":1,"in_flight":0,"targets_read":true,"fleet":3,' "$g"
t_match "GET /v1/regions: eu with its hosts and VMs, no target" \
	'\{"name":"eu","edge":"edge","hosts":\["g-eu-1","g-eu-2"\],"vms":3,"target":null,"target_vms":null,"vms_after":3' "$g"
t_match "GET /v1/regions: ap without hosts" '\{"name":"ap","edge":"edge","hosts":\[\],"vms":0,"target":null' "$g"
t_match "GET /v1/regions: nothing to do without targets" '"moves":\[\]\}$' "$g"
out=$(GFC regions); rc=$?
t_eq "fleetctl regions: exit 0" 0 "$rc"
t_match "fleetctl regions: table header" '^REGION +HOSTS +VMS +TARGET +AFTER +PLAN +BLOCKED' "$out"
t_match "fleetctl regions: eu row" '^eu +2 +3 +- +3 +- *$' "$out"
t_match "fleetctl regions: summary" '0 move\(s\), 0 now \(at most 1 at a time, 0 in flight\); 3 primary VM\(s\); geo off \(dry run only\)$' "$out"

# Targets through the API: stored in Redis, journaled, planned.
t_eq "PUT a count: 200 with the old value" '200 {"region":"us","target":"1","was":null}' \
	"$(gcall PUT /v1/regions/us/target '{"target":"1"}')"
t_eq "the target is in Redis" 1 "$(R HGET pf:ctl:geo:targets us)"
t_match "the change is journaled" 'geo +target region=us target=1 was=none' "$(GFC events)"
p=$(gcall GET /v1/plan)
t_match "GET /v1/plan: the cheapest unpinned primary moves to us, kind geo, with its reason" \
	'"vm":"px-g1","from":"g-eu-1","to":"g-us-1","traffic_bps":0,"memory":134217728,"now":true,"wait":"","reason":"region us has 0 of target 1 VMs; eu has 3 VMs, no target","kind":"geo"' "$p"
t_eq "GET /v1/plan: one geo move" 1 "$(echo "$p" | grep -o '"kind":"geo"' | wc -l)"
out=$(GFC plan)
t_match "fleetctl plan: the geo move" '^px-g1 +g-eu-1 +g-us-1 +geo: region us has 0 of target 1 VMs; eu has 3 VMs, no target$' "$out"
t_match "fleetctl plan: geo summary" '^geo: 1 move\(s\), 1 now \(at most 1 at a time\); geo off \(dry run only\)$' \
	"$(echo "$out" | tail -n1)"
t_match "fleetctl plan: rebalancing summary counts no geo move" '^0 move\(s\), 0 now \(lower bound 0\)' "$out"
t_match "GET /v1/regions: us takes one" '"name":"us","edge":"edge","hosts":\["g-us-1"\],"vms":0,"target":"1","target_vms":1,"vms_after":1,"moves_in":1,"moves_out":0,"blocked":""' \
	"$(gcall GET /v1/regions)"
out=$(GFC regions)
t_match "fleetctl regions: us row with its plan" '^us +1 +0 +1 +1 +\+1 *$' "$out"
t_match "fleetctl regions: the move" '^px-g1 +g-eu-1 +g-us-1 +geo: region us' "$out"

# Refusals: each one line with the reason and the right status.
t_eq "PUT to an unknown region: 404" '404 {"error":"no region called '"'"'mars'"'"'"}' \
	"$(gcall PUT /v1/regions/mars/target '{"target":"3"}')"
t_eq "PUT a bad value: 400 saying what is expected" \
	'400 {"error":"bad target '"'"'4x'"'"': a count of VMs (\"3\") or a share of the fleet in percent (\"40%\")"}' \
	"$(gcall PUT /v1/regions/us/target '{"target":"4x"}')"
t_match "PUT a share above 100%: 400" '^400 \{"error":"bad target .140%.: a share is 0% to 100%"' \
	"$(gcall PUT /v1/regions/us/target '{"target":"140%"}')"
t_match "PUT a negative number: 400" '^400 \{"error":"bad target .-2.' "$(gcall PUT /v1/regions/us/target '{"target":-2}')"
t_match "PUT without the field: 400" "^400 \\{\"error\":\"field 'target' is required" \
	"$(gcall PUT /v1/regions/us/target '{"goal":"1"}')"
t_match "PUT bad JSON: 400" '^400 .*not a JSON object' "$(gcall PUT /v1/regions/us/target '{oops')"
t_match "GET on a target: 405" '^405 \{"error":"method not allowed on /v1/regions/us/target \(PUT only\)"' \
	"$(gcall GET /v1/regions/us/target)"
t_eq "a refused PUT leaves Redis as it was" 1 "$(R HGET pf:ctl:geo:targets us)"
t_match "PUT a number: taken as a count" '^200 \{"region":"us","target":"1","was":"1"\}' \
	"$(gcall PUT /v1/regions/us/target '{"target":1}')"
t_match "PUT a share: 200" '^200 \{"region":"us","target":"60%","was":"1"\}' \
	"$(gcall PUT /v1/regions/us/target '{"target":"60%"}')"
t_match "shares above 100% in total: 400" '^400 \{"error":"shares would add up to 110% \(at most 100%\)' \
	"$(gcall PUT /v1/regions/eu/target '{"target":"50%"}')"

# fleetctl region-target.
out=$(GFC region-target us 67%); rc=$?
t_eq "fleetctl region-target: a share" "0 region us: target 67% (was 60%)" "$rc $out"
t_eq "fleetctl region-target: in Redis" 67% "$(R HGET pf:ctl:geo:targets us)"
out=$(GFC regions)
t_match "fleetctl regions: 67% of 3 is 2" '^us +1 +0 +67%=2 +2 +\+2 *$' "$out"
t_match "fleetctl regions: one now, the next waits for the bound" \
	'^px-g2 +g-eu-1 +g-us-1 +geo: region us has 1 of target 2 VMs \(67% of 3\); eu has 2 VMs, no target \[waits: geo: 1 move\(s\) at a time \(geo_max_moves\)\]$' "$out"
t_eq "fleetctl regions: the pinned VM never moves" 0 "$(echo "$out" | grep -c px-gpin)"
t_match "fleetctl --json regions: the API's object" '"target":[[:space:]]*"67%"' "$(GFC --json regions)"
out=$(GFC region-target mars 3 2>&1); rc=$?
t_eq "fleetctl region-target, unknown region: exit 1, one line" "1 fleetctl: no region called 'mars' (HTTP 404)" "$rc $out"
out=$(GFC region-target us 4x 2>&1); rc=$?
t_match "fleetctl region-target, bad value: exit 1, one line" '^1 fleetctl: bad target .4x.: a count of VMs .* \(HTTP 400\)$' "$rc $out"
out=$(GFC region-target us none); rc=$?
t_eq "fleetctl region-target none: cleared" "0 region us: target none (was 67%)" "$rc $out"
t_eq "cleared: gone from Redis" 0 "$(R HEXISTS pf:ctl:geo:targets us)"
t_match "fleetctl --json region-target: the API's answer" '"was":[[:space:]]*null' "$(GFC --json region-target ap 1)"
out=$(GFC plan)
t_match "a region with no host: blocked, and the plan says why" \
	'^- +ap +- +geo: region ap has 0 of target 1 VMs; blocked: no host in region ap$' "$out"
t_match "GET /v1/regions: the same reason" '"name":"ap".*"blocked":"region ap has 0 of target 1 VMs; blocked: no host in region ap"' \
	"$(gcall GET /v1/regions)"
GFC region-target ap none >/dev/null

# Persistence: a restart reads the targets back (an unknown region is
# ignored with a line), and with geo on the moves start one at a time.
GFC region-target us 2 >/dev/null
R HSET pf:ctl:geo:targets mars 3 >/dev/null
kill -TERM $GPID
rc=0; wait $GPID || rc=$?
t_eq "geo fleetd: clean exit" 0 "$rc"
geo_conf on
geo_start
t_wait 5 grep -q 'geo targets read key=pf:ctl:geo:targets entries=1' "$T_TMP/fleetd-geo.log" &&
	t_ok "restart: the target is read back from Redis" ||
	t_fail "restart: the target is read back from Redis" "$(tail -n 5 "$T_TMP/fleetd-geo.log")"
t_match "restart: an unknown region in Redis is ignored, with its reason" \
	'geo targets entry ignored key=pf:ctl:geo:targets field=mars value=3 why="no such region in the configuration"' "$(cat "$T_TMP/fleetd-geo.log")"
t_match "restart: GET /v1/regions shows it" '"name":"us","edge":"edge","hosts":\["g-us-1"\],"vms":[01],"target":"2"' \
	"$(gcall GET /v1/regions)"
t_wait 5 sh -c "'$PF_BIN/fleetctl' --api $GAPI --token $TOKEN events | grep -q 'policy .*geo move id=1 vm=px-g1 from=g-eu-1 to=g-us-1'" &&
	t_ok "geo on: the first move starts, journaled" ||
	t_fail "geo on: the first move starts, journaled" "$(tail -n 5 "$T_TMP/fleetd-geo.log")"
t_match "geo on: journaled with its reason" \
	'geo move id=1 vm=px-g1 from=g-eu-1 to=g-us-1 reason="region us has 0 of target 2 VMs; eu has 3 VMs, no target"' "$(GFC events)"
t_match "geo on: a policy migration whose reason says geo" '"reason":"geo: region us has 0 of target 2 VMs; eu has 3 VMs' \
	"$(gcall GET /v1/migrations/1)"
t_wait 5 t_api_true $GAPI/v1/regions "j['in_flight'] == 1 and any(r['name'] == 'us' and r['vms'] == 1 for r in j['regions'])" &&
	t_ok "GET /v1/regions: one geo move in flight, counted in us" ||
	t_fail "GET /v1/regions: one geo move in flight, counted in us" "$(gcall GET /v1/regions)"
# No agent answers the prepare: it fails after 3 s, px-g1 cools down, and
# the next tick moves the next cheapest.
t_wait 8 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $GAPI/v1/migrations/2 | grep -q '\"vm\":\"px-g2\".*\"reason\":\"geo: '" &&
	t_ok "geo on: the next move starts once the first has ended" ||
	t_fail "geo on: the next move starts once the first has ended" "$(gcall GET /v1/migrations)"
t_match "geo on: the first ended failed (no agent)" '"phase":"failed"' "$(gcall GET /v1/migrations/1)"
# At most one at a time, whatever the machine's speed: the second started
# only once the first had ended (both times from one answer).
t_api_true $GAPI/v1/migrations "(m1 := next(m for m in j if m['id'] == 1))['phase'] == 'failed' and all(m['started_ms'] >= m1['started_ms'] + m1['elapsed_ms'] - 1 for m in j if m['id'] != 1)" &&
	t_ok "geo on: while the first was in flight, no second one started" ||
	t_fail "geo on: while the first was in flight, no second one started" "$(gcall GET /v1/migrations)"
kill -TERM $GPID
rc=0; wait $GPID || rc=$?
t_eq "geo fleetd: clean exit with a move in flight" 0 "$rc"
t_no_sanitizer_report "geo fleetd: no sanitizer report" "$T_TMP/fleetd-geo.log"

# --- graceful stop (under ASan a leak makes the exit status non-zero) ---
kill -TERM $FPID
rc=0; wait $FPID || rc=$?
t_eq "SIGTERM: clean exit" 0 "$rc"
t_match "SIGTERM: logs its stop" 'level=info prog=fleetd stopped' "$(tail -n 3 "$T_TMP/fleetd.log")"
t_done
