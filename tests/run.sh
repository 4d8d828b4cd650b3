#!/usr/bin/env bash
# run.sh: proxyfleet's test runner. Runs the unit-test binaries (cmocka, TAP
# output) and the integration scripts (TAP through tests/integ/lib.sh), each
# isolated with a timeout and its output kept in $LOGDIR/<name>.log, then
# prints one closing line "N passed, N failed, N skipped" counted over the
# TAP results. Exit status 1 when anything failed.
#
# usage: run.sh LOGDIR TEST... (a TEST is an executable, a .sh script, or
#        a fuzz target build/fuzz/fuzz_*, run by tests/fuzz/run.sh for
#        FUZZ_TEST_SECONDS, default 20)
# env:   T=REGEX runs only the tests whose name matches; TEST_TIMEOUT seconds.
set -u
logdir=$1; shift
mkdir -p "$logdir"
timeout_s=${TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
failed_names=()

for t in "$@"; do
	name=$(basename "$t" .sh)
	if [ -n "${T:-}" ] && ! [[ $name =~ $T ]]; then continue; fi
	log="$logdir/$name.log"
	start=$(date +%s%N)
	if [[ $t == *.sh ]]; then
		timeout -k 10 "$timeout_s" bash "$t" >"$log" 2>&1; rc=$?
	elif [[ $t == */fuzz/fuzz_* ]]; then
		# A libFuzzer target (build/fuzz/fuzz_*): tests/fuzz/run.sh runs it
		# for FUZZ_TEST_SECONDS over a scratch corpus in $logdir, TAP out.
		timeout -k 10 "$timeout_s" bash "$(dirname "$0")/fuzz/run.sh" "$t" "$logdir" \
			>"$log" 2>&1; rc=$?
	else
		CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 "$timeout_s" "$t" >"$log" 2>&1; rc=$?
	fi
	ms=$((($(date +%s%N) - start) / 1000000))
	p=$(grep -cE '^ok [0-9]+' "$log" | tr -d ' ')
	s=$(grep -cE '^ok [0-9]+.*# (SKIP|skip)' "$log" | tr -d ' ')
	f=$(grep -cE '^not ok [0-9]+' "$log" | tr -d ' ')
	p=$((p - s))
	# A crash, a timeout or a non-zero exit without a failed assertion
	# still counts as one failure: the script did not finish.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		why="exited with status $rc"
		[ "$rc" -eq 124 ] && why="timed out after ${timeout_s}s"
		echo "not ok - $name $why" >>"$log"
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
	if [ "$f" -gt 0 ]; then
		failed_names+=("$name")
		printf 'FAIL %-28s %4d passed %3d failed  %6d ms  (%s)\n' "$name" "$p" "$f" "$ms" "$log"
		grep -aE '^not ok|^#' "$log" | head -n 40 | sed 's/^/    /'
		tail -n 15 "$log" | grep -avE '^(ok|not ok|#)' | sed 's/^/    | /'
	else
		printf 'ok   %-28s %4d passed %3d skipped %6d ms\n' "$name" "$p" "$s" "$ms"
		# A fuzz target's one result line says how many inputs it ran.
		[[ $t == */fuzz/fuzz_* ]] && grep -a -m1 '^ok 1 - ' "$log" | sed 's/^ok 1 - /     /'
	fi
done

[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
