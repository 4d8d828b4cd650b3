#!/usr/bin/env bash
# run.sh: one libFuzzer target as one TAP test, for tests/run.sh (make test)
# and make fuzz.
#
# The target runs for FUZZ_TEST_SECONDS over two corpus dirs: a scratch one,
# $LOGDIR/NAME.corpus, made empty first (libFuzzer writes what it finds
# there), and the committed seeds tests/fuzz/seeds/NAME, which it only reads.
# Crash, leak, timeout and out-of-memory inputs land in LOGDIR as
# NAME-crash-<sha1> and so on, ready to be copied into the seeds as
# regression inputs; libFuzzer's own output is LOGDIR/NAME.libfuzzer.log.
# Prints "ok 1 - NAME: N runs in S s, no crash (corpus C inputs)", or
# "not ok 1 - NAME: crash ..." with the input's path, the seed it is when a
# seed crashed, and the first lines of the report. Exit status 1 on failure.
#
# usage: run.sh FUZZER LOGDIR
# env:   FUZZ_TEST_SECONDS (default 20), FUZZ_MAX_LEN (default 4096),
#        FUZZ_CORPUS=DIR: keep the corpus in DIR across runs (make fuzz)
#        instead of a scratch one.
set -u
fuzzer=$1 logdir=$2
name=$(basename "$fuzzer")
seeds=$(cd "$(dirname "$0")" && pwd)/seeds/$name
secs=${FUZZ_TEST_SECONDS:-20}
out=$logdir/$name.libfuzzer.log
art=$logdir/$name-

fail() {
	echo "not ok 1 - $name: $1"
	shift
	for l in "$@"; do echo "# $l"; done
	exit 1
}

echo "1..1"
mkdir -p "$logdir"
[ -x "$fuzzer" ] || fail "no fuzz binary $fuzzer (build it with make $fuzzer)"
[ -n "$(ls -A "$seeds" 2>/dev/null)" ] || fail "no seed corpus in $seeds"
corpus=${FUZZ_CORPUS:-$logdir/$name.corpus}
[ -n "${FUZZ_CORPUS:-}" ] || rm -rf "$corpus"
mkdir -p "$corpus"
rm -f "$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-*

start=$(date +%s%N)
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$fuzzer" -max_total_time="$secs" -max_len="${FUZZ_MAX_LEN:-4096}" -timeout=10 \
	-print_final_stats=1 -artifact_prefix="$art" "$corpus" "$seeds" >"$out" 2>&1
rc=$?
s=$((($(date +%s%N) - start) / 1000000000))

found=$(ls "$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-* 2>/dev/null | head -n 1)
if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
	kind=${found#"$art"}
	kind=${kind%%-*}
	what="crash after $s s"
	[ -z "$found" ] && what="$what: exit status $rc, no input saved"
	[ -n "$found" ] && [ "$kind" != crash ] && what="$what: $kind"
	for f in "$seeds"/*; do
		[ -n "$found" ] && cmp -s "$f" "$found" && what="$what, on the seed $f"
	done
	# The report, from the sanitizer's or libFuzzer's first error line to
	# its SUMMARY, without the frames of libFuzzer, the sanitizers and libc.
	report=$(grep -aE -m1 -A60 '^==[0-9]+== ?ERROR|runtime error:' "$out" | sed '/^SUMMARY: /q' |
		grep -avE ' in (__sanitizer_|fuzzer::|__pthread_kill|raise |abort |main |_start|__libc_start)|libc\.so|^NOTE: libFuzzer|Combine libFuzzer|^$' |
		head -n 16)
	mapfile -t lines <<<"$report"
	fail "$what" "input: ${found:-none}${found:+ (reproduce: $fuzzer $found)}" \
		"${found:+regression input once fixed: cp $found tests/fuzz/seeds/$name/}" \
		"libFuzzer output: $out" "${lines[@]}"
fi

runs=$(grep -ao 'stat::number_of_executed_units: [0-9]*' "$out" | grep -o '[0-9]*$')
ninputs=$(grep -aoE 'corp: [0-9]+' "$out" | tail -n 1 | grep -o '[0-9]*$')
echo "ok 1 - $name: ${runs:-?} runs in $s s, no crash (corpus ${ninputs:-?} inputs)"
