#!/usr/bin/env bash
# repeat.sh: the flake hunt. Runs the tests whose name matches T (a regex,
# as for `make test T=`) N times each on the current build, round by round
# (every matching test once, then again: a test then runs after different
# neighbours and on a machine in a different state each time), through the
# same runner as `make test`, and prints per test how many runs failed and
# which checks failed, with the log of every failed run kept.
#
# usage: repeat.sh LOGDIR N TEST...   (TEST as for run.sh)
# env:   T=REGEX (required: a whole-suite repeat is asked for with T=.),
#        TEST_TIMEOUT as for run.sh.
# Exit status 1 when any run of any test failed.
set -u
logdir=$1 n=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${T:-}" ]; then
	echo "repeat: T=REGEX is required (T=. repeats every test)" >&2
	exit 2
fi
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
	echo "repeat: N must be a positive number, not '$n'" >&2
	exit 2
fi

names=()
for t in "$@"; do
	name=$(basename "$t" .sh)
	[[ $name =~ $T ]] && names+=("$name")
done
if [ ${#names[@]} -eq 0 ]; then
	echo "repeat: no test matches T=$T" >&2
	exit 2
fi

rm -rf "$logdir"
mkdir -p "$logdir"
declare -A failed checks secs
for name in "${names[@]}"; do failed[$name]=0 checks[$name]="" secs[$name]=0; done

start=$SECONDS
for ((i = 1; i <= n; i++)); do
	echo "repeat: round $i of $n (${#names[@]} test(s), $((SECONDS - start)) s so far)"
	out=$(bash "$here/run.sh" "$logdir/$i" "$@" 2>&1)
	echo "$out" | grep -E '^(ok|FAIL) ' | sed 's/^/  /'
	for name in "${names[@]}"; do
		log="$logdir/$i/$name.log"
		line=$(echo "$out" | grep -E "^(ok|FAIL) +$name " | head -n1)
		ms=$(sed -n 's/.* \([0-9]*\) ms.*/\1/p' <<<"$line")
		secs[$name]=$((${secs[$name]} + ${ms:-0} / 1000))
		if [[ $line == FAIL* ]] || [ -z "$line" ]; then
			failed[$name]=$((${failed[$name]} + 1))
			# Which checks: "not ok N - what", without the number.
			what=$(grep -aE '^not ok' "$log" 2>/dev/null | sed -E 's/^not ok [0-9]* *-? *//' |
				head -n 3 | paste -sd';' -)
			checks[$name]+="  run $i: ${what:-no result} ($log)"$'\n'
		else
			# Only the failed runs' logs are worth keeping.
			rm -f "$log"
		fi
	done
done

echo
printf '%-28s %5s %6s %8s\n' TEST RUNS FAILED 'MEAN S'
bad=0
for name in "${names[@]}"; do
	printf '%-28s %5d %6d %8d\n' "$name" "$n" "${failed[$name]}" $((${secs[$name]} / n))
	[ "${failed[$name]}" -gt 0 ] && { bad=1; printf '%s' "${checks[$name]}"; }
done
echo "repeat: $n round(s) in $((SECONDS - start)) s; $([ $bad -eq 0 ] && echo 'no test failed' || echo 'some tests failed')"
exit $bad
