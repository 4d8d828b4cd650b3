#!/usr/bin/env bash
# t_fleetd_leader.sh: two fleetds on one Redis, libvirt's test driver as the
# hosts (no lab needed). Exactly one leads; the other serves reads from its
# own model and redirects what only the leader can do (307 + Location);
# kill -9 the leader: the other leads within 3 s with a higher epoch; the
# old one started again follows; a SIGSTOPped leader (a partition, as far
# as it can tell) loses the lead and, woken, steps down without acting: the
# order its pending migration would send is never written; SIGTERM hands
# the lead over at once.
. "$(dirname "$0")/lib.sh"

RPORT=16390 PA=18490 PB=18491 TOKEN=t0ken-$$
APIA=http://127.0.0.1:$PA APIB=http://127.0.0.1:$PB
t_redis_start $RPORT || t_done
R() { redis-cli -p $RPORT "$@"; }
FC() { "$PF_BIN/fleetctl" --token "$TOKEN" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
leader_json() { curl -s --max-time 1 -H "Authorization: Bearer $TOKEN" "$1/v1/leader"; }
role() { leader_json "$1" | grep -o '"role":"[a-z]*"' | cut -d'"' -f4; }
epoch() { leader_json "$1" | grep -o '"epoch":[0-9]*' | cut -d: -f2; }
is_role() { [ "$(role "$1")" = "$2" ]; }

cat >"$T_TMP/eu-1.xml" <<X
<node><domain type='test'><name>px-a</name><memory>131072</memory><vcpu>1</vcpu>
<metadata><pf:vm xmlns:pf='http://proxyfleet.example.org/xmlns/vm/1' id='px-a' role='primary'><pf:ip>10.77.1.100/24</pf:ip></pf:vm></metadata>
<os><type>hvm</type></os><devices><interface type='bridge'><mac address='52:54:00:aa:00:01'/><source bridge='br0'/></interface></devices>
</domain></node>
X
echo "<node/>" >"$T_TMP/eu-2.xml"
conf() { # NAME PORT
	cat <<C
[fleetd]
api_listen = 127.0.0.1:$2
api_token = $TOKEN
redis = 127.0.0.1:$RPORT
tick = 200ms
instance = $1
leader_lease = 2s

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
conf fleetd-a $PA >"$T_TMP/a.conf"
conf fleetd-b $PB >"$T_TMP/b.conf"
start() { # NAME -> PID in $PID
	"$PF_BIN/fleetd" -f "$T_TMP/$1.conf" >>"$T_TMP/$1.log" 2>&1 &
	PID=$!
	t_defer "kill -CONT $PID; kill -9 $PID"
}

# --- one leader, one follower ---
start a; A=$PID
t_wait 10 is_role $APIA leader && t_ok "fleetd-a alone: leader" || t_fail "fleetd-a alone: leader" "$(leader_json $APIA)"
start b; B=$PID
t_wait 10 curl -sf $APIB/healthz || t_fail "fleetd-b starts" "$(tail -n 3 "$T_TMP/b.log")"
t_wait 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/leader | grep -q '\"leader\":\"fleetd-a\"'" ||
	t_fail "fleetd-b sees fleetd-a lead" "$(leader_json $APIB)"
E1=$(epoch $APIA)
t_match "fleetd-b: follower, names the leader, its epoch and URL" \
	"\"instance\":\"fleetd-b\",\"role\":\"follower\",\"leader\":\"fleetd-a\",\"leader_url\":\"http://127.0.0.1:$PA\",\"epoch\":$E1" "$(leader_json $APIB)"
t_eq "exactly one leader" "leader follower" "$(role $APIA) $(role $APIB)"
t_eq "the key holds the leader, its epoch and URL" "fleetd-a $E1 http://127.0.0.1:$PA" "$(R GET pf:ctl:leader)"
t_eq "pf:ctl:epoch is the leader's epoch" "$E1" "$(R GET pf:ctl:epoch)"
t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/vms | grep -q px-a" &&
	t_ok "follower serves GET /v1/vms from its own model" || t_fail "follower serves GET /v1/vms"
t_match "follower serves GET /v1/hosts" '"name":"eu-1"' "$(curl -s -H "Authorization: Bearer $TOKEN" $APIB/v1/hosts)"
out=$(curl -s -o "$T_TMP/body" -w '%{http_code} %{redirect_url}' -X POST -H "Authorization: Bearer $TOKEN" \
	-d '{"vm":"px-a","to":"eu-2"}' $APIB/v1/migrations)
t_eq "follower: POST /v1/migrations answers 307 with Location on the leader" "307 $APIA/v1/migrations" "$out"
t_match "307 body: JSON naming the leader" '"leader":"fleetd-a"' "$(cat "$T_TMP/body")"
t_eq "follower: GET /v1/migrations (the leader's state) redirects too" "307" \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" $APIB/v1/migrations)"
t_eq "follower: 401 before any redirect" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST $APIB/v1/migrations)"
# A new leader starts nothing until its reconcile is done (503 meanwhile).
t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIA/v1/leader | grep -q '\"reconciling\":false'" ||
	t_fail "fleetd-a's first reconcile ends" "$(leader_json $APIA)"
out=$(FC --api $APIB migrate px-a --to eu-2 2>&1)
t_match "fleetctl through the follower reaches the leader (its pre-check answers)" 'eu-2 has no live agent lease' "$out"
t_match "fleetctl status shows leader, epoch and this instance's role" \
	"^leader fleetd-a \(epoch $E1, http://127.0.0.1:$PA\); this instance fleetd-b: follower" "$(FC --api $APIB status | head -n1)"
m=$(curl -s -H "Authorization: Bearer $TOKEN" $APIA/metrics; curl -s -H "Authorization: Bearer $TOKEN" $APIB/metrics)
t_eq "metrics: fleetd_leader 1 on the leader, 0 on the follower" "fleetd_leader 1|fleetd_leader 0" "$(echo "$m" | grep '^fleetd_leader ' | paste -sd'|')"
t_eq "metrics: both report the epoch" "fleetd_epoch $E1|fleetd_epoch $E1" "$(echo "$m" | grep '^fleetd_epoch ' | paste -sd'|')"
t_match "leader journal: acquired with its epoch" "leader +acquired instance=fleetd-a epoch=$E1" "$(FC --api $APIA events)"

# --- what the leader keeps in Redis outlives it ---
# A host in maintenance and a region's target, set on the leader after the
# follower started: the follower shows them (it reads again every 5 s), and
# once it leads it acts on them (a host under maintenance must not take VMs
# again because the controller changed).
hostjson() { curl -s -H "Authorization: Bearer $TOKEN" "$1/v1/hosts" | tr -d ' \n'; }
t_match "leader: drain eu-2 (empty)" "^eu-2: " "$(FC --api $APIA drain eu-2 2>&1)"
t_wait 3 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIA/v1/hosts | tr -d ' \n' | grep -q '\"name\":\"eu-2\".*\"state\":\"maintenance\"'" ||
	t_fail "leader: eu-2 in maintenance" "$(hostjson $APIA)"
t_eq "leader: the drain is in pf:ctl:drain" maintenance "$(R HGET pf:ctl:drain eu-2)"
FC --api $APIA region-target eu 1 >/dev/null
t_eq "leader: the target is in pf:ctl:geo:targets" 1 "$(R HGET pf:ctl:geo:targets eu)"
t_wait 8 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/hosts | tr -d ' \n' | grep -q '\"name\":\"eu-2\".*\"state\":\"maintenance\"'" &&
	t_ok "follower shows the leader's drain" || t_fail "follower shows the leader's drain" "$(hostjson $APIB)"

# --- kill -9 the leader: the follower takes over within 3 s ---
t0=$(now_ms)
kill -9 $A
t_wait 5 is_role $APIB leader; t1=$(now_ms)
E2=$(epoch $APIB)
t_diag "takeover after kill -9 of the leader: $((t1 - t0)) ms (lease 2 s, poll 500 ms)"
t_le "kill -9: fleetd-b leads within 3 s (ms)" $((t1 - t0)) 3000
t_le "kill -9: the epoch increased ($E1 -> $E2)" $((E1 + 1)) "${E2:-0}"
t_wait 5 sh -c "grep -q 'reconcile done epoch=$E2' '$T_TMP/b.log'" &&
	t_ok "new leader reconciles from libvirt's state" || t_fail "new leader reconciles" "$(grep reconcile "$T_TMP/b.log")"
t_match "reconcile: px-a where libvirt runs it, announced there" "reconcile vm=px-a on=eu-1 action=announce" "$(grep 'reconcile vm=' "$T_TMP/b.log")"
t_match "reconcile order carries the new epoch" "\|op\|announce\|vm\|px-a\|.*\|epoch\|$E2\|" "$(R XRANGE pf:host:eu-1:orders - + | tr '\n' '|')"

t_wait 3 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/hosts | tr -d ' \n' | grep -q '\"name\":\"eu-2\".*\"state\":\"maintenance\"'" &&
	t_ok "new leader: eu-2 still in maintenance (read from Redis)" || t_fail "new leader: eu-2 in maintenance" "$(hostjson $APIB)"
t_match "new leader: the region target the old one set" '"name":"eu",.*"target":"1"' \
	"$(curl -s -H "Authorization: Bearer $TOKEN" $APIB/v1/regions | tr -d ' \n')"
R SET pf:host:eu-2:lease test PX 600000 >/dev/null
t_wait 3 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/hosts | tr -d ' \n' | grep -q '\"name\":\"eu-2\".*\"lease\":true'"
t_match "new leader: refuses a migration onto the host in maintenance" "eu-2 is in maintenance" \
	"$(FC --api $APIB migrate px-a --to eu-2 2>&1)"
FC --api $APIB undrain eu-2 >/dev/null
FC --api $APIB region-target eu none >/dev/null
t_eq "new leader: undrain and the cleared target leave Redis" "0 0" \
	"$(R HEXISTS pf:ctl:drain eu-2) $(R HEXISTS pf:ctl:geo:targets eu)"

# --- the old one again: it follows ---
start a; A=$PID
t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIA/v1/leader | grep -q '\"role\":\"follower\",\"leader\":\"fleetd-b\"'" &&
	t_ok "fleetd-a restarted: follows fleetd-b" || t_fail "fleetd-a restarted: follows fleetd-b" "$(leader_json $APIA)"
# Stability, a negative check: the roles must hold over two election polls
# (poll_ms 500), so this waits for time on purpose.
sleep 1
t_eq "still exactly one leader" "follower leader" "$(role $APIA) $(role $APIB)"

# --- a stopped leader: loses the lead, steps down without acting ---
# A migration in prepare on fleetd-b: its agent never answers, so after 3 s
# fleetd-b would order a withdraw. It is stopped before that and woken after
# fleetd-a took over: it must step down, give the migration up, and write
# no order (it would carry the old epoch).
R SET pf:host:eu-2:lease test PX 600000 >/dev/null
t_wait 3 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/hosts | tr -d ' \n' | grep -q '\"name\":\"eu-2\".*\"lease\":true'"
R DEL pf:host:eu-2:orders >/dev/null
t_wait 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $APIB/v1/leader | grep -q '\"reconciling\":false'"
out=$(FC --api $APIB migrate px-a --to eu-2 --no-wait 2>&1)
t_match "fleetd-b starts a migration (prepare ordered)" 'started: px-a -> eu-2' "$out"
kill -STOP $B
t0=$(now_ms)
t_wait 5 is_role $APIA leader; t1=$(now_ms)
E3=$(epoch $APIA)
t_diag "takeover from a SIGSTOPped leader: $((t1 - t0)) ms"
t_le "SIGSTOP: fleetd-a leads within 3 s (ms)" $((t1 - t0)) 3000
t_le "SIGSTOP: the epoch increased ($E2 -> $E3)" $((E2 + 1)) "${E3:-0}"
kill -CONT $B
t_wait 2 is_role $APIB follower && t_ok "SIGCONT: fleetd-b knows at once it no longer leads" ||
	t_fail "SIGCONT: fleetd-b follows" "$(leader_json $APIB)"
t_wait 10 grep -q "leader step-down instance=fleetd-b epoch=$E2" "$T_TMP/b.log" &&
	t_ok "SIGCONT: fleetd-b logs its step-down" ||
	t_fail "SIGCONT: fleetd-b logs its step-down" "$(tail -n 5 "$T_TMP/b.log")"
t_wait 10 grep -qE 'migration failed id=[0-9]+ vm=px-a .*error="given up: ' "$T_TMP/b.log" &&
	t_ok "SIGCONT: its migration is given up, left to the new leader" ||
	t_fail "SIGCONT: its migration is given up, left to the new leader" "$(tail -n 5 "$T_TMP/b.log")"
# A negative check: the withdraw a buggy fleetd-b would send goes out when
# the prepare's 3 s ack timer fires. Wait until well past that moment (4 s
# from the stop, by the clock the timer runs on), then look for it.
while [ $(($(now_ms) - t0)) -lt 4000 ]; do sleep 0.1; done
t_eq "eu-2's stream: only the prepare, no order with the old epoch after it" "prepare/$E2" \
	"$(R XRANGE pf:host:eu-2:orders - + | awk '$0=="op"{getline; op=$0} $0=="epoch"{getline; print op "/" $0}' | paste -sd, -)"
t_eq "SIGCONT: POST on fleetd-b now redirects to fleetd-a" "307 $APIA/v1/migrations" \
	"$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -X POST -H "Authorization: Bearer $TOKEN" -d '{}' $APIB/v1/migrations)"
t_eq "exactly one leader after the partition heals" "leader follower" "$(role $APIA) $(role $APIB)"

# --- Redis forgets everything: the epoch never goes backwards ---
lead_epoch() { R GET pf:ctl:leader | cut -d' ' -f2; }
above() { local e; e=$(lead_epoch); [ "${e:-0}" -gt "$1" ]; }
R FLUSHALL >/dev/null
t_check "Redis flushed: a leader again, its epoch above every one held before ($E3)" t_wait 10 above "$E3"
E4=$(lead_epoch)
t_diag "epoch after the flush: $E4 (pf:ctl:epoch alone would have given 1)"
# What an agent that saw a later epoch answers to this leader's orders: the
# reconcile after the flush sends eu-1 an announcement for px-a.
order_of() { R XRANGE pf:host:eu-1:orders - + | awk -v e="$1" '$0=="id"{getline; id=$0} $0=="epoch"{getline; if ($0==e) last=id} END{print last}'; }
t_check "the new leader's reconcile orders eu-1 with epoch $E4" t_wait 10 bash -c "[ -n \"\$(redis-cli -p $RPORT XRANGE pf:host:eu-1:orders - + | grep -x $E4)\" ]"
oid=$(order_of "$E4")
R XADD pf:acks '*' id "$oid" host eu-1 status error took_us 0 error "stale epoch $E4 < $((E4 + 10))" >/dev/null
t_check "an agent's stale-epoch refusal: the leader leads again above the agent's epoch" \
	t_wait 10 above $((E4 + 10))
t_match "... and says why" "leader step-down instance=fleetd-[ab] epoch=$E4 why=\"agent eu-1 refuses epoch $E4: it has seen $((E4 + 10))" \
	"$(cat "$T_TMP/a.log" "$T_TMP/b.log")"
t_eq "exactly one leader after the flush" "follower leader" "$(printf '%s\n' "$(role $APIA)" "$(role $APIB)" | sort | paste -sd' ')"

# --- SIGTERM: the leader hands over at once ---
if is_role $APIA leader; then L=$A LN=fleetd-a O=$B OAPI=$APIB; else L=$B LN=fleetd-b O=$A OAPI=$APIA; fi
t0=$(now_ms)
kill -TERM $L
rc=0; wait $L || rc=$?
t_wait 3 is_role $OAPI leader; t1=$(now_ms)
t_eq "SIGTERM: clean exit" 0 "$rc"
t_match "SIGTERM: the lease is deleted" "leader released instance=$LN deleted=1" "$(cat "$T_TMP/a.log" "$T_TMP/b.log")"
t_diag "takeover after SIGTERM of the leader: $((t1 - t0)) ms"
t_le "SIGTERM: the other leads within 1 s (ms)" $((t1 - t0)) 1000
kill -TERM $O
rc=0; wait $O || rc=$?
t_eq "the other: clean exit" 0 "$rc"
t_no_sanitizer_report "no sanitizer report" "$T_TMP/a.log" "$T_TMP/b.log"
t_done
