# lib.sh: shared helpers for proxyfleet's integration tests (sourced, not run).
#
# Each tests/integ/t_<scenario>.sh sources this file and reports in TAP:
# one "ok N - what" or "not ok N - what" line per assertion, then t_done.
# tests/run.sh counts those lines; a script that dies before t_done counts as
# one failure. Cleanups registered with t_defer run on every exit path, last
# registered first, so a failing test leaves nothing behind. Processes are
# always stopped by the PID we started, never by name.

set -u

T_N=0
T_FAILED=0
T_DEFERRED=()
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PF_BIN=${PF_BIN:-$T_ROOT/build/bin}
T_TMP=$(mktemp -d "/tmp/pf-$(basename "$0" .sh).XXXXXX")

# t_defer CMD...: run CMD (as one eval string) when the script exits.
t_defer() { T_DEFERRED+=("$*"); }

_t_exit() {
	local rc=$? i
	for ((i = ${#T_DEFERRED[@]} - 1; i >= 0; i--)); do
		eval "${T_DEFERRED[$i]}" >/dev/null 2>&1 || true
	done
	if [ -n "${PF_KEEP_TMP:-}" ]; then
		echo "# kept $T_TMP (PF_KEEP_TMP)"
	else
		rm -rf "$T_TMP"
	fi
	exit $rc
}
trap _t_exit EXIT
trap 'exit 130' INT TERM

t_ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
t_fail() {
	T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1))
	echo "not ok $T_N - $1"
	shift; [ $# -gt 0 ] && printf '#   %s\n' "$@"
	return 0
}
t_skip() { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP $2"; }
t_diag() { printf '# %s\n' "$*"; }

# t_check DESC CMD...: ok when CMD exits 0.
t_check() {
	local desc=$1; shift
	local out
	if out=$("$@" 2>&1); then t_ok "$desc"; else t_fail "$desc" "command: $*" "${out:0:600}"; fi
}

# t_eq DESC EXPECTED ACTUAL: ok when both strings are equal; prints both when not.
t_eq() {
	if [ "$2" = "$3" ]; then t_ok "$1"; else t_fail "$1" "expected: '$2'" "actual:   '$3'"; fi
}

# t_le DESC A B: ok when integer A <= B.
t_le() {
	if [ "$2" -le "$3" ] 2>/dev/null; then t_ok "$1 ($2 <= $3)"; else t_fail "$1" "expected $2 <= $3"; fi
}

# t_match DESC REGEX TEXT: ok when TEXT matches the extended REGEX.
t_match() {
	if printf '%s' "$3" | grep -Eq -- "$2"; then t_ok "$1"; else t_fail "$1" "pattern: $2" "text: ${3:0:600}"; fi
}

# t_wait SECONDS CMD...: poll CMD every 50 ms until it succeeds; 1 on timeout.
t_wait() {
	local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000)); shift
	until "$@" >/dev/null 2>&1; do
		[ $(($(date +%s%N) / 1000000)) -ge $deadline ] && return 1
		sleep 0.05
	done
}

# t_api_true URL PYEXPR [ARG...]: GET URL from fleetd (bearer $TOKEN, else
# $FLEETCTL_TOKEN) and exit 0 when the Python expression PYEXPR is true of
# the parsed answer `j` (the ARGs are sys.argv[2:]). Made for t_wait: a
# check that follows a write waits until fleetd shows the write, not for a
# guessed time, e.g.
#   t_wait 10 t_api_true $API/v1/hosts 'all(h["lease_read"] for h in j)'
t_api_true() {
	curl -s --max-time 2 -H "Authorization: Bearer ${TOKEN:-${FLEETCTL_TOKEN:-}}" "$1" |
		python3 -c 'import json, sys
j = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "${@:2}" 2>/dev/null
}

# Predicates for t_wait on a client probe's live log (pfprobe -l, or
# probe.sh with PF_PROBE_LOG; one "START_US ok|fail ..." line per probe as
# it ends). t_probe_through LOG: a probe got through. t_probe_back LOG [N]:
# the last N (5) probes that ended all got through.
t_probe_through() { grep -q ' ok' "$1" 2>/dev/null; }
t_probe_back() {
	local n=${2:-5}
	[ "$(tail -n "$n" "$1" 2>/dev/null | grep -c ' ok')" -eq "$n" ]
}

# t_probe_start NAME IP: a client in the lab's client namespace probes the
# proxy at IP:3128 (pfprobe, a new connection every 20 ms, each result
# written to $T_TMP/probe-NAME.log as it ends), and gets through first.
declare -A T_PROBES
t_probe_start() {
	ip netns exec pf-client "$PF_BIN/pfprobe" -s 600 -l "$T_TMP/probe-$1.log" "$2" 3128 \
		"$PF_ORIGIN_URL" >"$T_TMP/probe-$1.out" 2>&1 &
	T_PROBES[$1]=$!
	t_defer "kill ${T_PROBES[$1]} 2>/dev/null"
	t_wait 30 t_probe_through "$T_TMP/probe-$1.log" || t_fail "client probes get through ($1)"
}
# t_probe_stop NAME: once the client has been served again for 25 probes
# (0.5 s), the probe stops; T_PROBE_LINE is its summary, T_OUTAGE its
# longest outage (ms), T_FAILED its failed probes.
t_probe_stop() {
	t_wait 30 t_probe_back "$T_TMP/probe-$1.log" 25
	kill -TERM "${T_PROBES[$1]}"
	wait "${T_PROBES[$1]}"
	T_PROBE_LINE=$(cat "$T_TMP/probe-$1.out")
	T_OUTAGE=$(sed -n 's/.*outage_ms=\([0-9]*\).*/\1/p' <<<"$T_PROBE_LINE")
	T_FAILED=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$T_PROBE_LINE")
}

t_need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		t_skip "$(basename "$0")" "needs root"
		t_done
	fi
}

# t_redis_start PORT: a private redis-server on 127.0.0.1:PORT, stopped at exit.
t_redis_start() {
	local port=$1 dir="$T_TMP/redis-$1"
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
		--appendonly no --daemonize yes --pidfile "$dir/pid" \
		--logfile "$dir/log" >/dev/null
	t_wait 5 redis-cli -p "$port" ping || { t_fail "redis on $port starts"; return 1; }
	t_defer "kill \$(cat $dir/pid)"
}

# t_no_sanitizer_report DESC LOG...: ok when no log carries an ASan, LSan or
# UBSan report (the daemons run sanitized under SANITIZE=1); otherwise the
# first reports are shown.
t_no_sanitizer_report() {
	local desc=$1 pat='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error' f
	shift
	# An empty or missing log would pass unread: each must have lines.
	for f in "$@"; do
		if [ ! -s "$f" ]; then
			t_fail "$desc" "$f is empty or missing: the daemon's output went elsewhere"
			return
		fi
	done
	if grep -qE "$pat" "$@" 2>/dev/null; then
		t_fail "$desc" "$(grep -A20 -E 'ERROR: |runtime error' "$@" 2>/dev/null | head -40)"
	else
		t_ok "$desc"
	fi
}

# t_lab_up: the lab (hosts, agents, fleetd) for a test. A lab that is up is
# reused and stays up; otherwise one is brought up and taken down at exit.
# Sources build/lab/lab.env (addresses, FLEETCTL_API and FLEETCTL_TOKEN).
t_lab_up() {
	local lab="bash $T_ROOT/deploy/lab/lab.sh"

	t_check "build and image" make -C "$T_ROOT" --no-print-directory all image
	if [ -f /run/proxyfleet-lab/state ] && $lab status 2>/dev/null | grep -q '^fleetd: http'; then
		t_diag "reusing the lab that is already up; it stays up"
	else
		t_defer "$lab down"
		t_check "lab up (hosts, agents, fleetd)" $lab up
	fi
	. "$T_ROOT/build/lab/lab.env"
	export FLEETCTL_API FLEETCTL_TOKEN
}

# Lab helpers the lab tests share: each host's libvirt URI, what a host has
# defined, whether a proxy serves the client, a field of a VM as fleetd
# shows it, and the removal of every copy of a test's VMs.
uri() { echo "qemu+tcp://$1/system"; }
EU1=$(uri 10.77.1.11) EU2=$(uri 10.77.1.12) US1=$(uri 10.77.2.11)
defined_on() { timeout 10 virsh -q -c "$1" list --all --name 2>/dev/null | sed '/^$/d' | paste -sd, -; }
serves() { ip netns exec pf-client curl -sf --max-time 1 -o /dev/null -x "http://$1:3128" "$PF_ORIGIN_URL"; }
# vmf VM FIELD: a field of VM in fleetctl --json vms.
vmf() {
	"$PF_BIN/fleetctl" --json vms | python3 -c 'import json,sys
for v in json.load(sys.stdin)["vms"]:
    if v["name"] == sys.argv[1]: print(v.get(sys.argv[2], ""))' "$1" "$2"
}
# Predicates for t_wait (it runs them in this shell).
state_is() { [ "$(virsh -q -c "$1" domstate "$2" 2>/dev/null)" = "$3" ]; }
vm_is() { [ "$(vmf "$1" "$2")" = "$3" ]; }
# t_lab_destroy PREFIX: every VM whose name starts with PREFIX, on every
# host (fleetd may make one more standby while the others go: two rounds).
t_lab_destroy() {
	local r h u d
	for r in 1 2; do
		for h in eu-1:$EU1 eu-2:$EU2 us-1:$US1; do
			u=${h#*:}
			for d in $(defined_on "$u" | tr ',' '\n' | grep "^$1" || true); do
				bash "$T_ROOT/deploy/lab/vm.sh" destroy "${h%%:*}" "$d" >/dev/null 2>&1
			done
		done
		sleep 2
	done
}

t_done() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
	exit $?
}
