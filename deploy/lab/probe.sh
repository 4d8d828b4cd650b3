#!/usr/bin/env bash
# probe.sh: a customer's view of a proxy during a move. Sends one HTTP
# request (a fresh curl, so a fresh connection) every INTERVAL ms, each with a
# 0.5 s timeout, until STOPFILE exists or MAXSEC seconds pass, then prints
#
#   probes=N ok=N failed=N max_gap_ms=N
#
# max_gap_ms is the longest time between the starts of two consecutive
# successful requests: what a client saw as an outage (about INTERVAL plus
# one request time when nothing went wrong). Run it inside the client
# namespace: ip netns exec pf-client bash probe.sh URL STOPFILE.
#
# usage: probe.sh URL STOPFILE [INTERVAL_MS=20] [MAXSEC=120]
# env:   PF_PROBE_MODE=serial (default) | grid, see main()
#        PF_PROBE_LOG=FILE keeps every probe ("START_US ok|fail") in FILE,
#        written as each ends and sorted at the end
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: probe.sh URL STOPFILE [INTERVAL_MS] [MAXSEC]" >&2; exit 2; }
url=$1 stop=$2 interval=${3:-20} maxsec=${4:-120}
mode=${PF_PROBE_MODE:-serial}
case "$mode" in serial | grid) ;; *) echo "probe: PF_PROBE_MODE must be serial or grid" >&2; exit 2 ;; esac

# probe_one T: one request; appends "T ok" or "T fail" to the results file.
probe_one() {
	if curl -s -o /dev/null --max-time 0.5 "$url"; then echo "$1 ok"; else echo "$1 fail"; fi >>"$results"
}

# Requests start on a fixed INTERVAL grid. serial: one request at a time, as
# a client with one connection would (a timed-out request delays the next);
# grid: every tick starts a request in the background, so an outage of T ms
# costs about T/INTERVAL failed probes. Results are summed at the end.
main() {
	local t next end step s fd
	# A never-written pipe: `read -t` on it is a sleep without a fork.
	exec {fd}<> <(:)
	# With PF_PROBE_LOG the results go there as they come (a test waits on
	# them), then sorted at the end.
	if [ -n "${PF_PROBE_LOG:-}" ]; then
		results=$PF_PROBE_LOG
		: >"$results"
	else
		results=$(mktemp /tmp/pf-probe.XXXXXX)
		trap 'rm -f "$results"' EXIT
	fi
	step=$((interval * 1000))
	end=$((SECONDS + maxsec))
	next=${EPOCHREALTIME/[.,]/}
	while [ ! -e "$stop" ] && [ $SECONDS -lt $end ]; do
		t=${EPOCHREALTIME/[.,]/} # microseconds, without a fork
		if [ "$t" -lt "$next" ]; then
			printf -v s '0.%06d' $((next - t))
			read -r -t "$s" -u "$fd" _ || true
			continue
		fi
		if [ "$mode" = grid ]; then
			probe_one "$next" &
		else
			probe_one "$t"
			t=${EPOCHREALTIME/[.,]/}
		fi
		next=$((next + step))
		# Fell behind (slow answer, busy machine): skip ticks, never burst.
		[ "$next" -lt "$t" ] && next=$((t + step))
	done
	wait
	if [ -n "${PF_PROBE_LOG:-}" ]; then
		sort -n "$results" -o "$results"
	fi
	sort -n "$results" | awk '
		{ n++ }
		$2 == "ok" { ok++; if (last && $1 - last > gap) gap = $1 - last; last = $1 }
		$2 != "ok" { failed++ }
		END { printf "probes=%d ok=%d failed=%d max_gap_ms=%d\n", n, ok, failed, gap / 1000 }'
}

main
